/* vec.c - the float vector operations of the forward pass, portable: the definition the SIMD twins in arch/ match
 * bit for bit (internal.h describes the arithmetic: llama.cpp's, as its CPU backend runs on x86-64 with AVX2). */
#include <math.h>
#include <pthread.h>
#include "internal.h"

static inline float reduce32(const float a[32]) {
    float v[8], t[4];
    for (int l = 0; l < 8; l++) v[l] = (a[l] + a[16 + l]) + (a[8 + l] + a[24 + l]);
    for (int l = 0; l < 4; l++) t[l] = v[l] + v[l + 4];
    return (t[0] + t[1]) + (t[2] + t[3]);
}

static float dot_lanes(const float *q, const uint16_t *k, int n, int lanes) {
    float acc[32] = {0};
    if (lanes == 8) {
        for (int d = 0; d + 8 <= n; d += 8)
            for (int l = 0; l < 8; l++) acc[l] = fmaf(wren_fp16_to_f32(k[d + l]), q[d + l], acc[l]);
        return wren_hsum8(acc);
    }
    const int np = n & ~31;
    for (int d = 0; d < np; d += 32)
        for (int l = 0; l < 32; l++) acc[l] = fmaf(wren_fp16_to_f32(k[d + l]), q[d + l], acc[l]);
    double s = reduce32(acc);
    for (int d = np; d < n; d++) s += (double)(wren_fp16_to_f32(k[d]) * q[d]);
    return (float)s;
}

static void kq_ref(float *out, const float *q, const uint16_t *k, size_t stride, int j0, int j1, int n, int lanes) {
    for (int j = j0; j < j1; j++) out[j] = dot_lanes(q, k + (size_t)j * stride, n, lanes);
}

static void pv_ref(float *out, const float *p, const uint16_t *v, size_t stride, int j0, int j1, int n, int lanes,
                   float *work) {
    for (int i = 0; i < lanes * n; i++) work[i] = 0.0f;
    for (int j = j0; j < j1; j++) {
        float *acc = work + (size_t)(j % lanes) * n;
        const uint16_t *vj = v + (size_t)j * stride;
        for (int i = 0; i < n; i++) acc[i] = fmaf(wren_fp16_to_f32(vj[i]), p[j], acc[i]);
    }
    for (int i = 0; i < n; i++) {
        float a[32];
        for (int l = 0; l < lanes; l++) a[l] = work[(size_t)l * n + i];
        out[i] = lanes == 8 ? wren_hsum8(a) : reduce32(a);
    }
}

static inline float bits_f(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }
static inline uint32_t f_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }

/* ggml_v_expf: n = round(x / ln 2) by the 1.5 * 2^23 shift, b = x - n ln 2 in two fused steps, 2^n from the
 * exponent bits, a degree-5 polynomial in b; |n| > 126 scales in two factors (and past 192 saturates) */
float wren_exp_ggml(float x) {
    const float r = 0x1.8p23f;
    const float z = fmaf(x, 0x1.715476p+0f, r);
    const float n = z - r;
    const float b = fmaf(-n, 0x1.7f7d1cp-20f, fmaf(-n, 0x1.62e4p-1f, x));
    const uint32_t e = f_bits(z) << 23;
    const float k = bits_f(e + f_bits(1.0f));
    const float u = b * b;
    const float j = fmaf(fmaf(fmaf(0x1.0e4020p-7f, b, 0x1.573e2ep-5f), u, fmaf(0x1.555e66p-3f, b, 0x1.fffdb6p-2f)), u,
                         0x1.ffffecp-1f * b);
    if (!(fabsf(n) > 126.0f)) return fmaf(j, k, k);
    const uint32_t g = n <= 0.0f ? 0x82000000u : 0u;
    const float s1 = bits_f(g + 0x7f000000u), s2 = bits_f(e - g);
    if (fabsf(n) > 192.0f) return s1 * s1;
    return fmaf(s2, j, s2) * s1;
}

static void exp_ref(float *dst, const float *src, int n) {
    for (int i = 0; i < n; i++) dst[i] = wren_exp_ggml(src[i]);
}

static void silu_mul_ref(float *g, const float *u, int n) {
    const int nv = n & ~7;
    for (int i = 0; i < nv; i++) g[i] = g[i] / (1.0f + wren_exp_ggml(0.0f - g[i])) * u[i];
    for (int i = nv; i < n; i++) g[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}

/* GELU (tanh form) of every fp16 value, rounded to fp16: ggml's table, 0.5 x (1 + tanh(sqrt(2 / pi) x (1 + 0.044715 x^2)))
 * with the fused step its build takes (1 + (0.044715 x) x in one rounding) */
static uint16_t gelu_table[1 << 16];
static pthread_once_t gelu_once = PTHREAD_ONCE_INIT;

static void gelu_init(void) {
    for (uint32_t i = 0; i < (1u << 16); i++) {
        const float x = wren_fp16_to_f32((uint16_t)i);
        const float inner = fmaf(0.044715f * x, x, 1.0f);
        const float t = tanhf(0.79788456080286535587989211986876f * x * inner);
        gelu_table[i] = wren_f32_to_fp16(0.5f * x * (1.0f + t));
    }
}

const uint16_t *wren_gelu_table(void) {
    pthread_once(&gelu_once, gelu_init);
    return gelu_table;
}

/* g = gelu(g) u as ggml_vec_geglu_f32: 0 at or below -10, g itself at or above 10, the table between */
void wren_gelu_mul(float *g, const float *u, int n) {
    const uint16_t *t = wren_gelu_table();
    for (int i = 0; i < n; i++) {
        const float x = g[i];
        if (x <= -10.0f) g[i] = 0.0f;
        else if (x >= 10.0f) g[i] = x * u[i];
        else g[i] = wren_fp16_to_f32(t[wren_f32_to_fp16(x)]) * u[i];
    }
}

static void to_f16_ref(uint16_t *dst, const float *src, int n) {
    for (int d = 0; d < n; d++) dst[d] = wren_f32_to_fp16(src[d]);
}

static void round_f16_ref(float *dst, const float *src, int n) {
    for (int d = 0; d < n; d++) dst[d] = wren_fp16_to_f32(wren_f32_to_fp16(src[d]));
}

const wren_vec_ops wren_vec_ref = {"reference", to_f16_ref, round_f16_ref, kq_ref, pv_ref, exp_ref, silu_mul_ref};
