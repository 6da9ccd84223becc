/* neon_vec.c - the forward pass's float vector operations with NEON (armv8.0). */
#if defined(__aarch64__)
#include <arm_neon.h>
#include <math.h>
#include "../../internal.h"

static float dot_f32_neon(const float *a, const float *b, int n) {
    float32x4_t s0 = vdupq_n_f32(0.0f), s1 = s0, s2 = s0, s3 = s0;
    int d = 0;
    for (; d + 16 <= n; d += 16) {
        s0 = vfmaq_f32(s0, vld1q_f32(a + d), vld1q_f32(b + d));
        s1 = vfmaq_f32(s1, vld1q_f32(a + d + 4), vld1q_f32(b + d + 4));
        s2 = vfmaq_f32(s2, vld1q_f32(a + d + 8), vld1q_f32(b + d + 8));
        s3 = vfmaq_f32(s3, vld1q_f32(a + d + 12), vld1q_f32(b + d + 12));
    }
    for (; d + 4 <= n; d += 4) s0 = vfmaq_f32(s0, vld1q_f32(a + d), vld1q_f32(b + d));
    float s = vaddvq_f32(vaddq_f32(vaddq_f32(s0, s1), vaddq_f32(s2, s3)));
    for (; d < n; d++) s += a[d] * b[d];
    return s;
}

static void axpy_f32_neon(float *y, float a, const float *x, int n) {
    int d = 0;
    for (; d + 4 <= n; d += 4) vst1q_f32(y + d, vfmaq_n_f32(vld1q_f32(y + d), vld1q_f32(x + d), a));
    for (; d < n; d++) y[d] += a * x[d];
}

static inline float32x4_t load_f16(const uint16_t *p) { return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(p))); }

static float dot_f16_neon(const float *a, const uint16_t *b, int n) {
    float32x4_t s0 = vdupq_n_f32(0.0f), s1 = s0, s2 = s0, s3 = s0;
    int d = 0;
    for (; d + 16 <= n; d += 16) {
        s0 = vfmaq_f32(s0, vld1q_f32(a + d), load_f16(b + d));
        s1 = vfmaq_f32(s1, vld1q_f32(a + d + 4), load_f16(b + d + 4));
        s2 = vfmaq_f32(s2, vld1q_f32(a + d + 8), load_f16(b + d + 8));
        s3 = vfmaq_f32(s3, vld1q_f32(a + d + 12), load_f16(b + d + 12));
    }
    for (; d + 4 <= n; d += 4) s0 = vfmaq_f32(s0, vld1q_f32(a + d), load_f16(b + d));
    float s = vaddvq_f32(vaddq_f32(vaddq_f32(s0, s1), vaddq_f32(s2, s3)));
    for (; d < n; d++) s += a[d] * wren_fp16_to_f32(b[d]);
    return s;
}

static void axpy_f16_neon(float *y, float a, const uint16_t *x, int n) {
    int d = 0;
    for (; d + 4 <= n; d += 4) vst1q_f32(y + d, vfmaq_n_f32(vld1q_f32(y + d), load_f16(x + d), a));
    for (; d < n; d++) y[d] += a * wren_fp16_to_f32(x[d]);
}

static void to_f16_neon(uint16_t *dst, const float *src, int n) {
    int d = 0;
    for (; d + 4 <= n; d += 4) vst1_u16(dst + d, vreinterpret_u16_f16(vcvt_f16_f32(vld1q_f32(src + d))));
    for (; d < n; d++) dst[d] = wren_f32_to_fp16(src[d]);
}

static void round_f16_neon(float *dst, const float *src, int n) {
    int d = 0;
    for (; d + 4 <= n; d += 4) vst1q_f32(dst + d, vcvt_f32_f16(vcvt_f16_f32(vld1q_f32(src + d))));
    for (; d < n; d++) dst[d] = wren_fp16_to_f32(wren_f32_to_fp16(src[d]));
}

/* two rows per pass share the loads of a; each row keeps dot_f16_neon's four accumulators, its order and its tail */
static void dot_f16_rows_neon(float *out, const float *a, const uint16_t *b, size_t stride, int n_keys, int n) {
    int j = 0;
    for (; j + 2 <= n_keys; j += 2) {
        const uint16_t *r0 = b + j * stride, *r1 = r0 + stride;
        float32x4_t s00 = vdupq_n_f32(0.0f), s01 = s00, s02 = s00, s03 = s00;
        float32x4_t s10 = s00, s11 = s00, s12 = s00, s13 = s00;
        int d = 0;
        for (; d + 16 <= n; d += 16) {
            const float32x4_t a0 = vld1q_f32(a + d), a1 = vld1q_f32(a + d + 4);
            const float32x4_t a2 = vld1q_f32(a + d + 8), a3 = vld1q_f32(a + d + 12);
            const float16x8_t l0 = vreinterpretq_f16_u16(vld1q_u16(r0 + d));
            const float16x8_t h0 = vreinterpretq_f16_u16(vld1q_u16(r0 + d + 8));
            const float16x8_t l1 = vreinterpretq_f16_u16(vld1q_u16(r1 + d));
            const float16x8_t h1 = vreinterpretq_f16_u16(vld1q_u16(r1 + d + 8));
            s00 = vfmaq_f32(s00, a0, vcvt_f32_f16(vget_low_f16(l0)));
            s01 = vfmaq_f32(s01, a1, vcvt_high_f32_f16(l0));
            s02 = vfmaq_f32(s02, a2, vcvt_f32_f16(vget_low_f16(h0)));
            s03 = vfmaq_f32(s03, a3, vcvt_high_f32_f16(h0));
            s10 = vfmaq_f32(s10, a0, vcvt_f32_f16(vget_low_f16(l1)));
            s11 = vfmaq_f32(s11, a1, vcvt_high_f32_f16(l1));
            s12 = vfmaq_f32(s12, a2, vcvt_f32_f16(vget_low_f16(h1)));
            s13 = vfmaq_f32(s13, a3, vcvt_high_f32_f16(h1));
        }
        for (; d + 4 <= n; d += 4) {
            const float32x4_t a0 = vld1q_f32(a + d);
            s00 = vfmaq_f32(s00, a0, load_f16(r0 + d));
            s10 = vfmaq_f32(s10, a0, load_f16(r1 + d));
        }
        float t0 = vaddvq_f32(vaddq_f32(vaddq_f32(s00, s01), vaddq_f32(s02, s03)));
        float t1 = vaddvq_f32(vaddq_f32(vaddq_f32(s10, s11), vaddq_f32(s12, s13)));
        for (; d < n; d++) {
            t0 += a[d] * wren_fp16_to_f32(r0[d]);
            t1 += a[d] * wren_fp16_to_f32(r1[d]);
        }
        out[j] = t0;
        out[j + 1] = t1;
    }
    for (; j < n_keys; j++) out[j] = dot_f16_neon(a, b + j * stride, n);
}

/* the output stays in registers over all keys, 64 values at a time (16 accumulators); per element the same fused
 * multiply-adds in the same key order as axpy_f16_neon into a zeroed row */
static void attn_pv_f16_neon(float *out, const float *p, const uint16_t *v, size_t stride, int n_keys, int n) {
    int d = 0;
    for (; d + 64 <= n; d += 64) {
        float32x4_t acc[16];
        for (int c = 0; c < 16; c++) acc[c] = vdupq_n_f32(0.0f);
        const uint16_t *x = v + d;
        for (int j = 0; j < n_keys; j++, x += stride) {
            const float pj = p[j];
            for (int c = 0; c < 8; c++) {
                const float16x8_t h = vreinterpretq_f16_u16(vld1q_u16(x + 8 * c));
                acc[2 * c] = vfmaq_n_f32(acc[2 * c], vcvt_f32_f16(vget_low_f16(h)), pj);
                acc[2 * c + 1] = vfmaq_n_f32(acc[2 * c + 1], vcvt_high_f32_f16(h), pj);
            }
        }
        for (int c = 0; c < 16; c++) vst1q_f32(out + d + 4 * c, acc[c]);
    }
    for (; d + 16 <= n; d += 16) {
        float32x4_t acc[4];
        for (int c = 0; c < 4; c++) acc[c] = vdupq_n_f32(0.0f);
        const uint16_t *x = v + d;
        for (int j = 0; j < n_keys; j++, x += stride)
            for (int c = 0; c < 4; c++) acc[c] = vfmaq_n_f32(acc[c], load_f16(x + 4 * c), p[j]);
        for (int c = 0; c < 4; c++) vst1q_f32(out + d + 4 * c, acc[c]);
    }
    for (; d + 4 <= n; d += 4) {
        float32x4_t acc = vdupq_n_f32(0.0f);
        for (int j = 0; j < n_keys; j++) acc = vfmaq_n_f32(acc, load_f16(v + j * stride + d), p[j]);
        vst1q_f32(out + d, acc);
    }
    for (; d < n; d++) {
        float y = 0.0f;
        for (int j = 0; j < n_keys; j++) y += p[j] * wren_fp16_to_f32(v[j * stride + d]);
        out[d] = y;
    }
}

/* e^x for two lanes in double, the steps of glibc's expf as aarch64 builds it (internal.h) */
static inline float64x2_t exp_f64x2(float64x2_t xd) {
    const float64x2_t z = vmulq_n_f64(xd, WREN_EXP_INVLN2N);
    const float64x2_t kd = vrndaq_f64(z);                       /* round half away, as glibc's round() */
    const int64x2_t ki = vcvtaq_s64_f64(z);                     /* lround() */
    const float64x2_t r = vsubq_f64(z, kd);
    const uint64x2_t t = vcombine_u64(vld1_u64(&wren_exp2_tab[vgetq_lane_s64(ki, 0) & 31]),
                                      vld1_u64(&wren_exp2_tab[vgetq_lane_s64(ki, 1) & 31]));
    const float64x2_t s = vreinterpretq_f64_u64(vaddq_u64(t, vshlq_n_u64(vreinterpretq_u64_s64(ki), 47)));
    const float64x2_t p = vfmaq_f64(vdupq_n_f64(WREN_EXP_C1), vdupq_n_f64(WREN_EXP_C0), r);
    const float64x2_t y0 = vfmaq_f64(vdupq_n_f64(1.0), vdupq_n_f64(WREN_EXP_C2), r);
    return vmulq_f64(vfmaq_f64(y0, p, vmulq_f64(r, r)), s);
}

void wren_exp_neon(float *dst, const float *src, int n) {
    int i = 0;
    for (; i + 4 <= n; i += 4) {
        const float32x4_t x = vld1q_f32(src + i);
        const uint32x4_t big = vcgeq_u32(vandq_u32(vreinterpretq_u32_f32(x), vdupq_n_u32(0x7fffffffu)),
                                         vdupq_n_u32(WREN_EXP_BIG));
        const float32x2_t lo = vcvt_f32_f64(exp_f64x2(vcvt_f64_f32(vget_low_f32(x))));
        vst1q_f32(dst + i, vcvt_high_f32_f64(lo, exp_f64x2(vcvt_high_f64_f32(x))));
        if (vmaxvq_u32(big)) {                                  /* |x| >= 88, inf, nan: expf itself */
            float xs[4];
            uint32_t bs[4];
            vst1q_f32(xs, x);
            vst1q_u32(bs, big);
            for (int l = 0; l < 4; l++)
                if (bs[l]) dst[i + l] = expf(xs[l]);
        }
    }
    for (; i < n; i++) dst[i] = expf(src[i]);
}

const wren_vec_ops wren_vec_neon = {"neon", dot_f32_neon, axpy_f32_neon, dot_f16_neon, axpy_f16_neon, to_f16_neon,
                                    dot_f16_rows_neon, attn_pv_f16_neon, round_f16_neon};
#endif
