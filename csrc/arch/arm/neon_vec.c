/* neon_vec.c - the forward pass's float vector operations with NEON (armv8.0). */
#if defined(__aarch64__)
#include <arm_neon.h>
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

const wren_vec_ops wren_vec_neon = {"neon", dot_f32_neon, axpy_f32_neon, dot_f16_neon, axpy_f16_neon, to_f16_neon};
#endif
