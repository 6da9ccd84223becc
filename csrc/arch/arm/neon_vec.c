/* neon_vec.c - the forward pass's float vector operations with NEON (armv8.0). */
#if defined(__aarch64__)
#include <arm_neon.h>
#include <math.h>
#include "../../internal.h"

static inline float32x4_t load_f16(const uint16_t *p) { return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(p))); }

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

/* the attention's lanes (internal.h) as ggml lays them out on x86: eight accumulators per output, as two NEON
 * registers each */
static void kq_neon(float *out, const float *q, const uint16_t *k, size_t stride, int j0, int j1, int n, int lanes) {
    if (lanes != 8 || n % 8) {
        wren_vec_ref.kq(out, q, k, stride, j0, j1, n, lanes);
        return;
    }
    for (int j = j0; j < j1; j++) {
        const uint16_t *r = k + (size_t)j * stride;
        float32x4_t lo = vdupq_n_f32(0.0f), hi = lo;
        for (int d = 0; d < n; d += 8) {
            lo = vfmaq_f32(lo, load_f16(r + d), vld1q_f32(q + d));
            hi = vfmaq_f32(hi, load_f16(r + d + 4), vld1q_f32(q + d + 4));
        }
        const float32x4_t h = vaddq_f32(hi, lo);                 /* x_l + x_(l+4) */
        out[j] = (vgetq_lane_f32(h, 0) + vgetq_lane_f32(h, 2)) + (vgetq_lane_f32(h, 1) + vgetq_lane_f32(h, 3));
    }
}

/* ggml_v_expf in four lanes (vec.c has it in words) */
static inline float32x4_t exp4(float32x4_t x) {
    const float32x4_t r = vdupq_n_f32(0x1.8p23f);
    const float32x4_t z = vfmaq_f32(r, x, vdupq_n_f32(0x1.715476p+0f));
    const float32x4_t n = vsubq_f32(z, r);
    const float32x4_t b = vfmsq_f32(vfmsq_f32(x, n, vdupq_n_f32(0x1.62e4p-1f)), n, vdupq_n_f32(0x1.7f7d1cp-20f));
    const uint32x4_t e = vshlq_n_u32(vreinterpretq_u32_f32(z), 23);
    const float32x4_t k = vreinterpretq_f32_u32(vaddq_u32(e, vreinterpretq_u32_f32(vdupq_n_f32(1.0f))));
    const float32x4_t an = vabsq_f32(n);
    const uint32x4_t c = vcgtq_f32(an, vdupq_n_f32(126.0f));
    const float32x4_t u = vmulq_f32(b, b);
    const float32x4_t j = vfmaq_f32(vmulq_f32(vdupq_n_f32(0x1.ffffecp-1f), b),
                                    vfmaq_f32(vfmaq_f32(vdupq_n_f32(0x1.fffdb6p-2f), vdupq_n_f32(0x1.555e66p-3f), b),
                                              vfmaq_f32(vdupq_n_f32(0x1.573e2ep-5f), vdupq_n_f32(0x1.0e4020p-7f), b), u),
                                    u);
    const float32x4_t plain = vfmaq_f32(k, j, k);
    if (!vmaxvq_u32(c)) return plain;
    const uint32x4_t g = vandq_u32(vcleq_f32(n, vdupq_n_f32(0.0f)), vdupq_n_u32(0x82000000u));
    const float32x4_t s1 = vreinterpretq_f32_u32(vaddq_u32(g, vdupq_n_u32(0x7f000000u)));
    const float32x4_t s2 = vreinterpretq_f32_u32(vsubq_u32(e, g));
    const uint32x4_t dd = vcgtq_f32(an, vdupq_n_f32(192.0f));
    const float32x4_t big = vmulq_f32(vfmaq_f32(s2, s2, j), s1);
    return vbslq_f32(dd, vmulq_f32(s1, s1), vbslq_f32(c, big, plain));
}

static void exp_neon(float *dst, const float *src, int n) {
    int i = 0;
    for (; i + 4 <= n; i += 4) vst1q_f32(dst + i, exp4(vld1q_f32(src + i)));
    for (; i < n; i++) dst[i] = wren_exp_ggml(src[i]);
}

static void silu_mul_neon(float *g, const float *u, int n) {
    const int nv = n & ~7;
    for (int i = 0; i < nv; i += 4) {
        const float32x4_t x = vld1q_f32(g + i);
        const float32x4_t e = exp4(vsubq_f32(vdupq_n_f32(0.0f), x));
        vst1q_f32(g + i, vmulq_f32(vdivq_f32(x, vaddq_f32(vdupq_n_f32(1.0f), e)), vld1q_f32(u + i)));
    }
    if (nv < n) wren_vec_ref.silu_mul(g + nv, u + nv, n - nv);
}

static void pv_neon(float *out, const float *p, const uint16_t *v, size_t stride, int j0, int j1, int n, int lanes,
                    float *work) {
    wren_vec_ref.pv(out, p, v, stride, j0, j1, n, lanes, work);
}

const wren_vec_ops wren_vec_neon = {"neon", to_f16_neon, round_f16_neon, kq_neon, pv_neon, exp_neon, silu_mul_neon};
#endif
