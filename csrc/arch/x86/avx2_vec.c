/* avx2_vec.c - the forward pass's float vector operations with AVX2 + FMA. */
#if defined(__x86_64__)
#pragma GCC target("avx2,fma,f16c")
#include <immintrin.h>
#include <math.h>
#include "../../internal.h"

static inline __m256 load_f16(const uint16_t *p) { return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p)); }

static void to_f16_avx2(uint16_t *dst, const float *src, int n) {
    int d = 0;
    for (; d + 8 <= n; d += 8)
        _mm_storeu_si128((__m128i *)(dst + d), _mm256_cvtps_ph(_mm256_loadu_ps(src + d), _MM_FROUND_TO_NEAREST_INT));
    for (; d < n; d++) dst[d] = wren_f32_to_fp16(src[d]);
}

static void round_f16_avx2(float *dst, const float *src, int n) {
    int d = 0;
    for (; d + 8 <= n; d += 8)
        _mm256_storeu_ps(dst + d, _mm256_cvtph_ps(_mm256_cvtps_ph(_mm256_loadu_ps(src + d), _MM_FROUND_TO_NEAREST_INT)));
    for (; d < n; d++) dst[d] = wren_fp16_to_f32(wren_f32_to_fp16(src[d]));
}

static inline float hsum8(__m256 x) {      /* ((x0 + x4) + (x2 + x6)) + ((x1 + x5) + (x3 + x7)) */
    __m128 h = _mm_add_ps(_mm256_extractf128_ps(x, 1), _mm256_castps256_ps128(x));
    h = _mm_add_ps(h, _mm_movehl_ps(h, h));
    h = _mm_add_ss(h, _mm_movehdup_ps(h));
    return _mm_cvtss_f32(h);
}

static inline float reduce32(__m256 a0, __m256 a1, __m256 a2, __m256 a3) {
    const __m256 v = _mm256_add_ps(_mm256_add_ps(a0, a2), _mm256_add_ps(a1, a3));
    const __m128 t = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    const __m128 t1 = _mm_hadd_ps(t, t);
    return _mm_cvtss_f32(_mm_hadd_ps(t1, t1));
}

/* four keys per pass share the loads of q; each key's sums are those of the reference */
static void kq_avx2(float *out, const float *q, const uint16_t *k, size_t stride, int j0, int j1, int n, int lanes) {
    int j = j0;
    if (lanes == 8) {
        for (; j + 4 <= j1; j += 4) {
            const uint16_t *r0 = k + (size_t)j * stride, *r1 = r0 + stride, *r2 = r1 + stride, *r3 = r2 + stride;
            __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
            for (int d = 0; d + 8 <= n; d += 8) {
                const __m256 qd = _mm256_loadu_ps(q + d);
                s0 = _mm256_fmadd_ps(load_f16(r0 + d), qd, s0);
                s1 = _mm256_fmadd_ps(load_f16(r1 + d), qd, s1);
                s2 = _mm256_fmadd_ps(load_f16(r2 + d), qd, s2);
                s3 = _mm256_fmadd_ps(load_f16(r3 + d), qd, s3);
            }
            out[j] = hsum8(s0), out[j + 1] = hsum8(s1), out[j + 2] = hsum8(s2), out[j + 3] = hsum8(s3);
        }
        for (; j < j1; j++) {
            const uint16_t *r = k + (size_t)j * stride;
            __m256 s = _mm256_setzero_ps();
            for (int d = 0; d + 8 <= n; d += 8) s = _mm256_fmadd_ps(load_f16(r + d), _mm256_loadu_ps(q + d), s);
            out[j] = hsum8(s);
        }
        return;
    }
    const int np = n & ~31;
    for (; j < j1; j++) {
        const uint16_t *r = k + (size_t)j * stride;
        __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        for (int d = 0; d < np; d += 32) {
            a0 = _mm256_fmadd_ps(load_f16(r + d), _mm256_loadu_ps(q + d), a0);
            a1 = _mm256_fmadd_ps(load_f16(r + d + 8), _mm256_loadu_ps(q + d + 8), a1);
            a2 = _mm256_fmadd_ps(load_f16(r + d + 16), _mm256_loadu_ps(q + d + 16), a2);
            a3 = _mm256_fmadd_ps(load_f16(r + d + 24), _mm256_loadu_ps(q + d + 24), a3);
        }
        double s = reduce32(a0, a1, a2, a3);
        for (int d = np; d < n; d++) s += (double)(wren_fp16_to_f32(r[d]) * q[d]);
        out[j] = (float)s;
    }
}

/* eight output values at a time, their lanes' accumulators in registers (8 lanes) or on the stack (32) */
static void pv_avx2(float *out, const float *p, const uint16_t *v, size_t stride, int j0, int j1, int n, int lanes,
                    float *work) {
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 acc[32];
        for (int l = 0; l < lanes; l++) acc[l] = _mm256_setzero_ps();
        const uint16_t *x = v + (size_t)j0 * stride + i;
        if (lanes == 8) {
            for (int j = j0; j < j1; j++, x += stride)
                acc[j & 7] = _mm256_fmadd_ps(load_f16(x), _mm256_set1_ps(p[j]), acc[j & 7]);
            const __m256 t0 = _mm256_add_ps(acc[0], acc[4]), t1 = _mm256_add_ps(acc[2], acc[6]);
            const __m256 t2 = _mm256_add_ps(acc[1], acc[5]), t3 = _mm256_add_ps(acc[3], acc[7]);
            _mm256_storeu_ps(out + i, _mm256_add_ps(_mm256_add_ps(t0, t1), _mm256_add_ps(t2, t3)));
        } else {
            for (int j = j0; j < j1; j++, x += stride)
                acc[j & 31] = _mm256_fmadd_ps(load_f16(x), _mm256_set1_ps(p[j]), acc[j & 31]);
            __m256 vv[8];
            for (int l = 0; l < 8; l++)
                vv[l] = _mm256_add_ps(_mm256_add_ps(acc[l], acc[16 + l]), _mm256_add_ps(acc[8 + l], acc[24 + l]));
            float t[8][8], res[8];
            for (int l = 0; l < 8; l++) _mm256_storeu_ps(t[l], vv[l]);
            for (int e = 0; e < 8; e++) {     /* output i + e: lanes l = t[l][e] */
                const float u0 = t[0][e] + t[4][e], u1 = t[1][e] + t[5][e], u2 = t[2][e] + t[6][e];
                const float u3 = t[3][e] + t[7][e];
                res[e] = (u0 + u1) + (u2 + u3);
            }
            _mm256_storeu_ps(out + i, _mm256_loadu_ps(res));
        }
    }
    if (i < n) {    /* the last n mod 8 values: the reference on them */
        float tail[32 * 8];
        wren_vec_ref.pv(out + i, p, v + i, stride, j0, j1, n - i, lanes, work ? work : tail);
    }
}

/* ggml_v_expf in eight lanes (vec.c has it in words) */
static inline __m256 exp8(__m256 x) {
    const __m256 r = _mm256_set1_ps(0x1.8p23f);
    const __m256 z = _mm256_fmadd_ps(x, _mm256_set1_ps(0x1.715476p+0f), r);
    const __m256 n = _mm256_sub_ps(z, r);
    const __m256 b = _mm256_fnmadd_ps(n, _mm256_set1_ps(0x1.7f7d1cp-20f),
                                      _mm256_fnmadd_ps(n, _mm256_set1_ps(0x1.62e4p-1f), x));
    const __m256i e = _mm256_slli_epi32(_mm256_castps_si256(z), 23);
    const __m256 k = _mm256_castsi256_ps(_mm256_add_epi32(e, _mm256_castps_si256(_mm256_set1_ps(1.0f))));
    const __m256 an = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), n);
    const __m256 c = _mm256_cmp_ps(an, _mm256_set1_ps(126.0f), _CMP_GT_OQ);
    const __m256 u = _mm256_mul_ps(b, b);
    const __m256 j = _mm256_fmadd_ps(
        _mm256_fmadd_ps(_mm256_fmadd_ps(_mm256_set1_ps(0x1.0e4020p-7f), b, _mm256_set1_ps(0x1.573e2ep-5f)), u,
                        _mm256_fmadd_ps(_mm256_set1_ps(0x1.555e66p-3f), b, _mm256_set1_ps(0x1.fffdb6p-2f))),
        u, _mm256_mul_ps(_mm256_set1_ps(0x1.ffffecp-1f), b));
    if (!_mm256_movemask_ps(c)) return _mm256_fmadd_ps(j, k, k);
    const __m256i g = _mm256_and_si256(_mm256_castps_si256(_mm256_cmp_ps(n, _mm256_setzero_ps(), _CMP_LE_OQ)),
                                       _mm256_set1_epi32((int)0x82000000u));
    const __m256 s1 = _mm256_castsi256_ps(_mm256_add_epi32(g, _mm256_set1_epi32(0x7f000000)));
    const __m256 s2 = _mm256_castsi256_ps(_mm256_sub_epi32(e, g));
    const __m256 dd = _mm256_cmp_ps(an, _mm256_set1_ps(192.0f), _CMP_GT_OQ);
    return _mm256_or_ps(_mm256_and_ps(dd, _mm256_mul_ps(s1, s1)),
                        _mm256_andnot_ps(dd, _mm256_or_ps(_mm256_and_ps(c, _mm256_mul_ps(_mm256_fmadd_ps(s2, j, s2), s1)),
                                                          _mm256_andnot_ps(c, _mm256_fmadd_ps(j, k, k)))));
}

static void exp_avx2(float *dst, const float *src, int n) {
    int i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, exp8(_mm256_loadu_ps(src + i)));
    for (; i < n; i++) dst[i] = wren_exp_ggml(src[i]);
}

static void silu_mul_avx2(float *g, const float *u, int n) {
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 x = _mm256_loadu_ps(g + i);
        const __m256 e = exp8(_mm256_sub_ps(_mm256_setzero_ps(), x));
        _mm256_storeu_ps(g + i, _mm256_mul_ps(_mm256_div_ps(x, _mm256_add_ps(_mm256_set1_ps(1.0f), e)),
                                              _mm256_loadu_ps(u + i)));
    }
    if (i < n) wren_vec_ref.silu_mul(g + i, u + i, n - i);
}

const wren_vec_ops wren_vec_avx2 = {"avx2", to_f16_avx2, round_f16_avx2, kq_avx2, pv_avx2, exp_avx2, silu_mul_avx2};
#endif
