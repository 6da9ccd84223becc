/* avx2_vec.c - the forward pass's float vector operations with AVX2 + FMA. */
#if defined(__x86_64__)
#pragma GCC target("avx2,fma,f16c")
#include <immintrin.h>
#include <math.h>
#include "../../internal.h"

static float dot_f32_avx2(const float *a, const float *b, int n) {
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    int d = 0;
    for (; d + 16 <= n; d += 16) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + d), _mm256_loadu_ps(b + d), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + d + 8), _mm256_loadu_ps(b + d + 8), s1);
    }
    for (; d + 8 <= n; d += 8) s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + d), _mm256_loadu_ps(b + d), s0);
    s0 = _mm256_add_ps(s0, s1);
    __m128 h = _mm_add_ps(_mm256_castps256_ps128(s0), _mm256_extractf128_ps(s0, 1));
    h = _mm_add_ps(h, _mm_movehl_ps(h, h));
    h = _mm_add_ss(h, _mm_movehdup_ps(h));
    float s = _mm_cvtss_f32(h);
    for (; d < n; d++) s += a[d] * b[d];
    return s;
}

static void axpy_f32_avx2(float *y, float a, const float *x, int n) {
    const __m256 va = _mm256_set1_ps(a);
    int d = 0;
    for (; d + 8 <= n; d += 8) _mm256_storeu_ps(y + d, _mm256_fmadd_ps(va, _mm256_loadu_ps(x + d), _mm256_loadu_ps(y + d)));
    for (; d < n; d++) y[d] += a * x[d];
}

static inline __m256 load_f16(const uint16_t *p) { return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p)); }

static float dot_f16_avx2(const float *a, const uint16_t *b, int n) {
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    int d = 0;
    for (; d + 16 <= n; d += 16) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + d), load_f16(b + d), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + d + 8), load_f16(b + d + 8), s1);
    }
    for (; d + 8 <= n; d += 8) s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + d), load_f16(b + d), s0);
    s0 = _mm256_add_ps(s0, s1);
    __m128 h = _mm_add_ps(_mm256_castps256_ps128(s0), _mm256_extractf128_ps(s0, 1));
    h = _mm_add_ps(h, _mm_movehl_ps(h, h));
    h = _mm_add_ss(h, _mm_movehdup_ps(h));
    float s = _mm_cvtss_f32(h);
    for (; d < n; d++) s += a[d] * wren_fp16_to_f32(b[d]);
    return s;
}

static void axpy_f16_avx2(float *y, float a, const uint16_t *x, int n) {
    const __m256 va = _mm256_set1_ps(a);
    int d = 0;
    for (; d + 8 <= n; d += 8) _mm256_storeu_ps(y + d, _mm256_fmadd_ps(va, load_f16(x + d), _mm256_loadu_ps(y + d)));
    for (; d < n; d++) y[d] += a * wren_fp16_to_f32(x[d]);
}

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

static inline float hsum8(__m256 s) {     /* dot_f16_avx2's reduction order */
    __m128 h = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
    h = _mm_add_ps(h, _mm_movehl_ps(h, h));
    h = _mm_add_ss(h, _mm_movehdup_ps(h));
    return _mm_cvtss_f32(h);
}

/* four rows per pass share the loads of a; each row keeps dot_f16_avx2's two accumulators, its order and its tail */
static void dot_f16_rows_avx2(float *out, const float *a, const uint16_t *b, size_t stride, int n_keys, int n) {
    int j = 0;
    for (; j + 4 <= n_keys; j += 4) {
        const uint16_t *r0 = b + j * stride, *r1 = r0 + stride, *r2 = r1 + stride, *r3 = r2 + stride;
        __m256 s00 = _mm256_setzero_ps(), s01 = s00, s10 = s00, s11 = s00, s20 = s00, s21 = s00, s30 = s00, s31 = s00;
        int d = 0;
        for (; d + 16 <= n; d += 16) {
            const __m256 a0 = _mm256_loadu_ps(a + d), a1 = _mm256_loadu_ps(a + d + 8);
            s00 = _mm256_fmadd_ps(a0, load_f16(r0 + d), s00);
            s01 = _mm256_fmadd_ps(a1, load_f16(r0 + d + 8), s01);
            s10 = _mm256_fmadd_ps(a0, load_f16(r1 + d), s10);
            s11 = _mm256_fmadd_ps(a1, load_f16(r1 + d + 8), s11);
            s20 = _mm256_fmadd_ps(a0, load_f16(r2 + d), s20);
            s21 = _mm256_fmadd_ps(a1, load_f16(r2 + d + 8), s21);
            s30 = _mm256_fmadd_ps(a0, load_f16(r3 + d), s30);
            s31 = _mm256_fmadd_ps(a1, load_f16(r3 + d + 8), s31);
        }
        for (; d + 8 <= n; d += 8) {
            const __m256 a0 = _mm256_loadu_ps(a + d);
            s00 = _mm256_fmadd_ps(a0, load_f16(r0 + d), s00);
            s10 = _mm256_fmadd_ps(a0, load_f16(r1 + d), s10);
            s20 = _mm256_fmadd_ps(a0, load_f16(r2 + d), s20);
            s30 = _mm256_fmadd_ps(a0, load_f16(r3 + d), s30);
        }
        float t0 = hsum8(_mm256_add_ps(s00, s01)), t1 = hsum8(_mm256_add_ps(s10, s11));
        float t2 = hsum8(_mm256_add_ps(s20, s21)), t3 = hsum8(_mm256_add_ps(s30, s31));
        for (; d < n; d++) {
            t0 += a[d] * wren_fp16_to_f32(r0[d]);
            t1 += a[d] * wren_fp16_to_f32(r1[d]);
            t2 += a[d] * wren_fp16_to_f32(r2[d]);
            t3 += a[d] * wren_fp16_to_f32(r3[d]);
        }
        out[j] = t0, out[j + 1] = t1, out[j + 2] = t2, out[j + 3] = t3;
    }
    for (; j < n_keys; j++) out[j] = dot_f16_avx2(a, b + j * stride, n);
}

/* the output stays in registers over all keys, 64 values at a time (8 accumulators); per element the same fused
 * multiply-adds in the same key order as axpy_f16_avx2 into a zeroed row */
static void attn_pv_f16_avx2(float *out, const float *p, const uint16_t *v, size_t stride, int n_keys, int n) {
    int d = 0;
    for (; d + 64 <= n; d += 64) {
        __m256 acc[8];
        for (int c = 0; c < 8; c++) acc[c] = _mm256_setzero_ps();
        const uint16_t *x = v + d;
        for (int j = 0; j < n_keys; j++, x += stride) {
            const __m256 pj = _mm256_set1_ps(p[j]);
            for (int c = 0; c < 8; c++) acc[c] = _mm256_fmadd_ps(pj, load_f16(x + 8 * c), acc[c]);
        }
        for (int c = 0; c < 8; c++) _mm256_storeu_ps(out + d + 8 * c, acc[c]);
    }
    for (; d + 8 <= n; d += 8) {
        __m256 acc = _mm256_setzero_ps();
        for (int j = 0; j < n_keys; j++) acc = _mm256_fmadd_ps(_mm256_set1_ps(p[j]), load_f16(v + j * stride + d), acc);
        _mm256_storeu_ps(out + d, acc);
    }
    for (; d < n; d++) {
        float y = 0.0f;
        for (int j = 0; j < n_keys; j++) y += p[j] * wren_fp16_to_f32(v[j * stride + d]);
        out[d] = y;
    }
}

/* e^x for four lanes in double, the steps of glibc's expf as x86-64 runs it on FMA CPUs (internal.h) */
static inline __m128 exp_f64x4(__m128 x) {
    const __m256d xd = _mm256_cvtps_pd(x), invln2n = _mm256_set1_pd(WREN_EXP_INVLN2N);
    const __m256d shift = _mm256_set1_pd(WREN_EXP_SHIFT);
    const __m256d kds = _mm256_fmadd_pd(invln2n, xd, shift);   /* k in the low bits, rounded to nearest even */
    const __m256i ki = _mm256_castpd_si256(kds);
    const __m256d r = _mm256_fmsub_pd(invln2n, xd, _mm256_sub_pd(kds, shift));
    const __m256i t = _mm256_i64gather_epi64((const long long *)wren_exp2_tab,
                                             _mm256_and_si256(ki, _mm256_set1_epi64x(31)), 8);
    const __m256d s = _mm256_castsi256_pd(_mm256_add_epi64(t, _mm256_slli_epi64(ki, 47)));
    const __m256d p = _mm256_fmadd_pd(r, _mm256_set1_pd(WREN_EXP_C0), _mm256_set1_pd(WREN_EXP_C1));
    const __m256d y0 = _mm256_fmadd_pd(r, _mm256_set1_pd(WREN_EXP_C2), _mm256_set1_pd(1.0));
    return _mm256_cvtpd_ps(_mm256_mul_pd(_mm256_fmadd_pd(p, _mm256_mul_pd(r, r), y0), s));
}

void wren_exp_avx2(float *dst, const float *src, int n) {
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 x = _mm256_loadu_ps(src + i);
        const __m256i a = _mm256_and_si256(_mm256_castps_si256(x), _mm256_set1_epi32(0x7fffffff));
        const int big = _mm256_movemask_ps(_mm256_castsi256_ps(
            _mm256_cmpgt_epi32(a, _mm256_set1_epi32((int)WREN_EXP_BIG - 1))));
        _mm256_storeu_ps(dst + i, _mm256_set_m128(exp_f64x4(_mm256_extractf128_ps(x, 1)),
                                                  exp_f64x4(_mm256_castps256_ps128(x))));
        if (big) {                                              /* |x| >= 88, inf, nan: expf itself */
            float xs[8];
            _mm256_storeu_ps(xs, x);
            for (int l = 0; l < 8; l++)
                if (big >> l & 1) dst[i + l] = expf(xs[l]);
        }
    }
    for (; i < n; i++) dst[i] = expf(src[i]);
}

const wren_vec_ops wren_vec_avx2 = {"avx2", dot_f32_avx2, axpy_f32_avx2, dot_f16_avx2, axpy_f16_avx2, to_f16_avx2,
                                    dot_f16_rows_avx2, attn_pv_f16_avx2, round_f16_avx2};
#endif
