/* vec.c - small float vector operations of the forward pass (attention), portable; SIMD twins in arch/. */
#include "internal.h"

/* eight partial sums: a single running sum would be one long dependency chain */
static float dot_f32_ref(const float *a, const float *b, int n) {
    float acc[8] = {0};
    int d = 0;
    for (; d + 8 <= n; d += 8)
        for (int l = 0; l < 8; l++) acc[l] += a[d + l] * b[d + l];
    float s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (; d < n; d++) s += a[d] * b[d];
    return s;
}

static void axpy_f32_ref(float *y, float a, const float *x, int n) {
    for (int d = 0; d < n; d++) y[d] += a * x[d];
}

static float dot_f16_ref(const float *a, const uint16_t *b, int n) {
    float acc[8] = {0};
    int d = 0;
    for (; d + 8 <= n; d += 8)
        for (int l = 0; l < 8; l++) acc[l] += a[d + l] * wren_fp16_to_f32(b[d + l]);
    float s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (; d < n; d++) s += a[d] * wren_fp16_to_f32(b[d]);
    return s;
}

static void axpy_f16_ref(float *y, float a, const uint16_t *x, int n) {
    for (int d = 0; d < n; d++) y[d] += a * wren_fp16_to_f32(x[d]);
}

static void to_f16_ref(uint16_t *dst, const float *src, int n) {
    for (int d = 0; d < n; d++) dst[d] = wren_f32_to_fp16(src[d]);
}

static void dot_f16_rows_ref(float *out, const float *a, const uint16_t *b, size_t stride, int n_keys, int n) {
    for (int j = 0; j < n_keys; j++) out[j] = dot_f16_ref(a, b + j * stride, n);
}

static void attn_pv_f16_ref(float *out, const float *p, const uint16_t *v, size_t stride, int n_keys, int n) {
    for (int d = 0; d < n; d++) out[d] = 0.0f;
    for (int j = 0; j < n_keys; j++) axpy_f16_ref(out, p[j], v + j * stride, n);
}

const wren_vec_ops wren_vec_ref = {"reference", dot_f32_ref, axpy_f32_ref, dot_f16_ref, axpy_f16_ref, to_f16_ref,
                                   dot_f16_rows_ref, attn_pv_f16_ref};
