/* harness.c - the kernel checks in C, run natively and, cross-compiled for aarch64, under qemu-aarch64.
 *
 * For every variant this CPU runs and every format: packing round-trips, activation quantization equals the
 * reference bit for bit, GEMV and GEMM equal the exact result (float64 over the exact integer block sums) within
 * (nb + 2) * 2^-23 * sum_b |term_b| - the rounding of nb float additions and two products per block - and
 * 1, 2 and 3 threads give identical bits. Prints what it exercised and "N passed, N failed".
 *
 * Build: cc -O2 -std=gnu11 -Icsrc csrc/[all .c] csrc/arch/x86/[.c] csrc/arch/arm/[.c] tests/c/harness.c -lm -lpthread */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "../../csrc/internal.h"

static int n_pass, n_fail;
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rng(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}
static float frand(void) { return (float)((rng() >> 40) * (1.0 / 16777216.0)) * 2.0f - 1.0f; }

static void check(int ok, const char *what) {
    if (ok) n_pass++;
    else { n_fail++; printf("FAIL %s\n", what); }
}

/* kinds of block contents: 0 random, 1 all zero, 2 near the fp16 limit, 3 tiny (subnormal fp16 scales), 4 one spike */
static void fill(float *x, int64_t n, int kind_mix) {
    for (int64_t b = 0; b < n / WREN_QK; b++) {
        const int kind = kind_mix ? (int)(rng() % 5) : 0;
        const float scale = kind == 2 ? 6.0e4f : kind == 3 ? 2.0e-6f : 1.0f;
        for (int j = 0; j < WREN_QK; j++) {
            float v = frand() * scale;
            if (kind == 1) v = 0.0f;
            if (kind == 4) v = j == 5 ? 4.0f : 0.01f * frand();
            x[b * WREN_QK + j] = v;
        }
    }
}

static void *xalloc(size_t n) {
    void *p = aligned_alloc(64, (n + 63) & ~(size_t)63);
    if (!p) { printf("out of memory\n"); exit(2); }
    memset(p, 0, (n + 63) & ~(size_t)63);
    return p;
}

/* exact value and error budget of output (i, r) from the plain blocks */
static void exact(int format, const uint8_t *plain, int64_t k, int64_t r, const wren_act *a, int64_t i,
                  double *value, double *budget) {
    const int64_t nb = k / WREN_QK;
    const size_t bb = wren_format_block_bytes(format);
    double sum = 0.0, abs_sum = 0.0;
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *blk = plain + (size_t)(r * nb + b) * bb;
        uint16_t dh, mh = 0;
        memcpy(&dh, blk, 2);
        if (format == WREN_Q4_1) memcpy(&mh, blk + 2, 2);
        const double dw = wren_fp16_to_f32(dh), mw = wren_fp16_to_f32(mh);
        const int8_t *x = a->q + i * k + b * WREN_QK;
        const double dx = a->d[i * nb + b];
        int64_t isum = 0, lane[8] = {0};
        if (format == WREN_Q8_0) {
            for (int j = 0; j < 32; j++) lane[j / 4] += (int8_t)blk[2 + j] * x[j];
        } else if (format == WREN_Q8_16) {
            for (int j = 0; j < 32; j++) isum += (int8_t)blk[2 + j / 16] * (int8_t)blk[4 + j] * x[j];
        } else {
            const uint8_t *qs = blk + (format == WREN_Q4_1 ? 4 : 2);
            for (int j = 0; j < 16; j++) {
                lane[j / 4] += (qs[j] & 15) * x[j];
                lane[4 + j / 4] += (qs[j] >> 4) * x[j + 16];
            }
        }
        double lanes_abs = 0.0;      /* Q4_1 and Q8_0 add in 8 lanes (ref.c): their rounding follows the lanes */
        for (int l = 0; l < 8; l++) {
            isum += lane[l];
            lanes_abs += fabs(dw * dx * (double)lane[l]);
        }
        double t;
        if (format == WREN_Q4_0) t = dw * dx * (double)(isum - 8 * a->sum[i * nb + b]);
        else if (format == WREN_Q4_1) t = dw * dx * (double)isum + mw * (double)a->s[i * nb + b];
        else t = dw * dx * (double)isum;
        sum += t;
        if (format == WREN_Q4_1 || format == WREN_Q8_0)
            abs_sum += lanes_abs + (format == WREN_Q4_1 ? fabs(mw * (double)a->s[i * nb + b]) : 0.0);
        else
            abs_sum += fabs(t);
    }
    *value = sum;
    *budget = (double)(nb + 4) * ldexp(1.0, -23) * abs_sum + 1e-35;
}

static void test_variant(int variant, int format, int64_t n, int64_t k, int64_t m, int kind_mix) {
    char what[160];
    snprintf(what, sizeof what, "%s %s n=%lld k=%lld m=%lld", wren_variant_name(variant), wren_format_name(format),
             (long long)n, (long long)k, (long long)m);
    float *wf = xalloc(sizeof(float) * n * k), *xf = xalloc(sizeof(float) * m * k);
    fill(wf, n * k, kind_mix);
    fill(xf, m * k, kind_mix);
    const size_t plain_bytes = (size_t)n * (k / WREN_QK) * wren_format_block_bytes(format);
    uint8_t *plain = xalloc(plain_bytes), *back = xalloc(plain_bytes);
    check(wren_quantize(format, wf, n, k, plain, plain_bytes) == WREN_OK, what);
    if (kind_mix && wren_is_q8(format)) {
        /* what a quantizer of floats never writes but a converted file may hold: the quants -128 and 127, and
         * Q8_16's multipliers of either sign up to -128 */
        const size_t bb = wren_format_block_bytes(format);
        for (size_t b = 0; b < plain_bytes / bb; b += 3) {
            uint8_t *blk = plain + b * bb;
            const int sb = wren_scale_bytes(format);
            for (int j = 0; j < 32; j += 1 + (int)(rng() % 4)) blk[sb + j] = rng() % 2 ? 0x80 : 0x7f;
            if (format == WREN_Q8_16) {
                blk[2] = (uint8_t)(rng() % 3 == 0 ? 0x80 : rng());
                blk[3] = (uint8_t)rng();
            }
        }
    }

    const size_t pb = wren_packed_bytes(variant, format, n, k);
    uint8_t *packed = xalloc(pb);
    check(wren_repack(variant, format, plain, plain_bytes, n, k, packed, pb) == WREN_OK, what);
    check(wren_unpack(variant, format, packed, pb, n, k, back, plain_bytes) == WREN_OK, what);
    check(memcmp(plain, back, plain_bytes) == 0, "pack/unpack round trip");

    /* activations: the variant's quantizer equals the reference bit for bit */
    const size_t ab = wren_act_bytes(m, k);
    wren_act a_ref, a_var;
    void *abuf_ref = xalloc(ab), *abuf_var = xalloc(ab);
    wren_act_init(&a_ref, abuf_ref, ab, m, k);
    wren_act_init(&a_var, abuf_var, ab, m, k);
    check(wren_quantize_act(WREN_REF, xf, (size_t)(m * k), &a_ref) == WREN_OK, what);
    check(wren_quantize_act(variant, xf, (size_t)(m * k), &a_var) == WREN_OK, what);
    const int64_t nb = k / WREN_QK;
    int act_same = memcmp(a_ref.q, a_var.q, (size_t)(m * k)) == 0 &&
                   memcmp(a_ref.d, a_var.d, sizeof(float) * m * nb) == 0 &&
                   memcmp(a_ref.sum, a_var.sum, sizeof(int32_t) * m * nb) == 0 &&
                   memcmp(a_ref.s, a_var.s, sizeof(float) * m * nb) == 0;
    snprintf(what + strlen(what), sizeof what - strlen(what), " act");
    check(act_same, what);
    what[strlen(what) - 4] = 0;

    /* products: reference on plain rows, the variant on its tiles, serial and on 1, 2, 3 threads */
    wren_weights w_ref = {format, WREN_REF, n, k, plain, plain_bytes};
    wren_weights w_var = {format, variant, n, k, packed, pb};
    float *y_ref = xalloc(sizeof(float) * m * n), *y_var = xalloc(sizeof(float) * m * n);
    float *y_thr = xalloc(sizeof(float) * m * n);
    check(wren_matmul(NULL, &w_ref, &a_ref, y_ref, (size_t)(m * n)) == WREN_OK, what);
    check(wren_matmul(NULL, &w_var, &a_ref, y_var, (size_t)(m * n)) == WREN_OK, what);
    int within = 1;
    for (int64_t i = 0; i < m; i++) {
        for (int64_t r = 0; r < n; r++) {
            double v, budget;
            exact(format, plain, k, r, &a_ref, i, &v, &budget);
            const double e_ref = fabs(y_ref[i * n + r] - v), e_var = fabs(y_var[i * n + r] - v);
            /* Q8_1's s is fp16, as llama.cpp keeps it: past 65504 it is inf, and so is the output (or nan) */
            const int nonfinite_alike = !isfinite(v) && (isnan(v) ? isnan(y_ref[i * n + r]) && isnan(y_var[i * n + r])
                                                                  : y_ref[i * n + r] == v && y_var[i * n + r] == v);
            if (!(e_ref <= budget && e_var <= budget) && !nonfinite_alike) {
                if (within) printf("  %s: y[%lld,%lld] exact %.9g ref %.9g variant %.9g budget %.3g\n", what,
                                   (long long)i, (long long)r, v, y_ref[i * n + r], y_var[i * n + r], budget);
                within = 0;
            }
        }
    }
    check(within, what);
    /* Q4_1 and Q8_0 add in llama.cpp's lanes (ref.c): AVX2 gives the reference's bits */
    if (variant == WREN_AVX2 && (format == WREN_Q4_1 || format == WREN_Q8_0)) {
        snprintf(what + strlen(what), sizeof what - strlen(what), " lanes");
        check(memcmp(y_ref, y_var, sizeof(float) * m * n) == 0, what);
        what[strlen(what) - 6] = 0;
    }
    /* a batch and single tokens round alike: GEMV of each activation row gives its GEMM row's bits */
    if (m > 1) {
        int same = 1;
        float *y_one = xalloc(sizeof(float) * n);
        for (int64_t i = 0; i < m && same; i++) {
            wren_act row = {a_ref.q + i * k, a_ref.d + i * nb, a_ref.sum + i * nb, a_ref.s + i * nb, 1, k};
            check(wren_matmul(NULL, &w_var, &row, y_one, (size_t)n) == WREN_OK, what);
            same = memcmp(y_one, y_var + i * n, sizeof(float) * n) == 0;
        }
        snprintf(what + strlen(what), sizeof what - strlen(what), " gemv=gemm");
        check(same, what);
        what[strlen(what) - 10] = 0;
        free(y_one);
    }
    for (int nt = 1; nt <= 3; nt++) {
        wren_pool_params pp = {nt, NULL, 0, 0, 50};
        wren_pool *pool = NULL;
        check(wren_pool_create(&pp, &pool) == WREN_OK, "pool create");
        memset(y_thr, 0xff, sizeof(float) * m * n);
        check(wren_matmul(pool, &w_var, &a_ref, y_thr, (size_t)(m * n)) == WREN_OK, what);
        check(memcmp(y_thr, y_var, sizeof(float) * m * n) == 0, "same bits on 1, 2, 3 threads");
        wren_pool_destroy(pool);
    }
    free(wf); free(xf); free(plain); free(back); free(packed); free(abuf_ref); free(abuf_var);
    free(y_ref); free(y_var); free(y_thr);
}

/* the activation quantizer of K-quant matrices (one scale per 256 values): the SIMD one equals the reference bit
 * for bit, on every kind of block content, with and without a whole group of zeros */
static void test_act_k(void) {
    const wren_quantize_act_fn fn = wren_quantize_act_k_get();
    enum { K = 256 * 7 };
    float *x = xalloc(sizeof(float) * K), *d1 = xalloc(sizeof(float) * K / 32), *d2 = xalloc(sizeof(float) * K / 32);
    int8_t *q1 = xalloc(K), *q2 = xalloc(K);
    int32_t *s1 = xalloc(sizeof(int32_t) * K / 32), *s2 = xalloc(sizeof(int32_t) * K / 32);
    float *f1 = xalloc(sizeof(float) * K / 32), *f2 = xalloc(sizeof(float) * K / 32);
    for (int trial = 0; trial < 40; trial++) {
        fill(x, K, trial % 2);
        if (trial % 5 == 4) memset(x + 256, 0, sizeof(float) * 256);
        if (trial % 7 == 3) x[trial] = 127.5f * (trial % 2 ? 1 : -1);     /* ties of x id at the group's max */
        fn(x, K, q1, d1, s1, f1);
        wren_quantize_act_row_k_ref(x, K, q2, d2, s2, f2);
        check(memcmp(q1, q2, K) == 0 && memcmp(d1, d2, sizeof(float) * K / 32) == 0 &&
              memcmp(s1, s2, sizeof(int32_t) * K / 32) == 0 && memcmp(f1, f2, sizeof(float) * K / 32) == 0,
              "quantize_act_k bit-identical to the reference");
    }
    free(x); free(d1); free(d2); free(q1); free(q2); free(s1); free(s2); free(f1); free(f2);
}

/* the forward pass's vector operations against the portable ones, bit for bit */
static void test_vec_ops(void) {
    const wren_vec_ops *v = wren_vec_ops_get(), *r = &wren_vec_ref;
    enum { N = 300 };
    float a[N], b[N];
    uint16_t h1[N], h2[N];
    for (int i = 0; i < N; i++) {
        a[i] = frand() * 4.0f;
        b[i] = i % 17 == 0 ? 1e-7f * frand() : frand() * 70000.0f / (1 + i);   /* subnormal and large fp16 */
    }
    for (int n = 1; n <= N; n += 37) {
        v->to_f16(h1, b, n);
        r->to_f16(h2, b, n);
        check(memcmp(h1, h2, sizeof(uint16_t) * n) == 0, "to_f16 bit-identical");
        float f1[N], f2[N];
        v->round_f16(f1, b, n);
        r->round_f16(f2, b, n);
        check(memcmp(f1, f2, sizeof(float) * n) == 0, "round_f16 bit-identical");
    }
    /* attention: q.k and p.v over key ranges that start and end anywhere, for head sizes that reach every chunk
     * width and tail, in 8 and 32 lanes; and the sums are those of their definition (one exact check) */
    static const int sizes[] = {4, 8, 16, 24, 64, 96, 128, 136, 256};
    enum { KEYS = 70, STRIDE = 260 };
    static uint16_t kv[KEYS * STRIDE];
    static float work1[32 * STRIDE], work2[32 * STRIDE];
    float p[KEYS], out1[STRIDE], out2[STRIDE], sc1[KEYS], sc2[KEYS];
    for (int i = 0; i < KEYS * STRIDE; i++) kv[i] = wren_f32_to_fp16(frand() * (i % 13 == 0 ? 60.0f : 2.0f));
    for (int j = 0; j < KEYS; j++) p[j] = wren_fp16_to_f32(wren_f32_to_fp16(frand() * frand()));
    int kq_same = 1, pv_same = 1;
    for (int lanes = 8; lanes <= 32; lanes += 24)
        for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++)
            for (int j0 = 0; j0 < KEYS; j0 += 13)
                for (int j1 = j0 + 1; j1 <= KEYS; j1 += 9) {
                    const int n = sizes[si];
                    v->kq(sc1, a, kv, STRIDE, j0, j1, n, lanes);
                    r->kq(sc2, a, kv, STRIDE, j0, j1, n, lanes);
                    kq_same &= memcmp(sc1 + j0, sc2 + j0, sizeof(float) * (j1 - j0)) == 0;
                    v->pv(out1, p, kv, STRIDE, j0, j1, n, lanes, work1);
                    r->pv(out2, p, kv, STRIDE, j0, j1, n, lanes, work2);
                    pv_same &= memcmp(out1, out2, sizeof(float) * n) == 0;
                }
    check(kq_same, "kq: the reference's bits");
    check(pv_same, "pv: the reference's bits");
    /* q.k over 8 lanes written out for n = 16: lane l holds k_l q_l then fma(k_(8+l), q_(8+l), .) */
    {
        float acc[8], q[16];
        for (int i = 0; i < 16; i++) q[i] = a[i];
        for (int l = 0; l < 8; l++)
            acc[l] = fmaf(wren_fp16_to_f32(kv[8 + l]), q[8 + l], wren_fp16_to_f32(kv[l]) * q[l]);
        const float want = ((acc[0] + acc[4]) + (acc[2] + acc[6])) + ((acc[1] + acc[5]) + (acc[3] + acc[7]));
        v->kq(sc1, q, kv, STRIDE, 0, 1, 16, 8);
        check(memcmp(&want, &sc1[0], sizeof want) == 0, "kq in 8 lanes: its definition");
    }
    printf("vector ops: %s\n", v->name);
}

/* ggml's vector e^x (internal.h): the SIMD twin gives the reference's bits over a sweep of float bit patterns of
 * both signs up to and past the range where it saturates, in place and with tails; a few values against expf; and
 * silu_mul likewise */
static void test_exp(void) {
    const wren_vec_ops *v = wren_vec_ops_get(), *r = &wren_vec_ref;
    enum { N = 4096 };
    static float x[N], y1[N], y2[N];
    int same = 1;
    long checked = 0;
    for (uint64_t bits = 0; bits < 0x43400000u && same;) {
        int m = 0;
        for (; m < N && bits < 0x43400000u; m++, bits += 509u) {
            const uint32_t b = (uint32_t)bits | (m & 1 ? 0x80000000u : 0u);
            memcpy(&x[m], &b, sizeof b);
        }
        v->exp(y1, x, m);
        r->exp(y2, x, m);
        same &= memcmp(y1, y2, sizeof(float) * m) == 0;
        checked += m;
    }
    check(same, "exp: the reference's bits");
    int close = 1;
    for (int i = 0; i < 1000; i++) {
        const float z = (frand() - 0.5f) * 170.0f, e = wren_exp_ggml(z), want = expf(z);
        close &= fabsf(e - want) <= 2e-6f * want || (want < 1e-37f && e < 1e-37f);
    }
    check(close, "exp: within 2e-6 of expf");
    check(wren_exp_ggml(-INFINITY) == 0.0f && wren_exp_ggml(0.0f) == 1.0f, "exp(-inf) = 0, exp(0) = 1");
    int in_place = 1;
    for (int n = 0; n <= 40; n++) {
        float z[40], ref[40], g1[40], g2[40], u[40];
        for (int i = 0; i < n; i++) {
            z[i] = frand() * 30.0f;
            if (i % 7 == 3) z[i] = (i % 2 ? -1.0f : 1.0f) * (88.0f + (float)i);
            if (i == 13) z[i] = -INFINITY;
            g1[i] = g2[i] = (frand() - 0.5f) * 20.0f;
            u[i] = frand();
        }
        r->exp(ref, z, n);
        v->exp(z, z, n);
        in_place &= memcmp(z, ref, sizeof(float) * n) == 0;
        v->silu_mul(g1, u, n);
        r->silu_mul(g2, u, n);
        in_place &= memcmp(g1, g2, sizeof(float) * n) == 0;
    }
    check(in_place, "exp in place and silu_mul, every length to 40: the reference's bits");
    printf("exp: %s, %ld inputs checked\n", v->name, checked);
}

/* Q4_K and Q6_K super-blocks, random as a file may hold them: packing round trip on every variant that has the
 * kernels, and products whose bits equal the reference's (llama.cpp's arithmetic, kquant.c) for batches of 1 to 9
 * rows (Q4_K: groups of 4 and the rest; Q6_K: below and from 8), and within float rounding of the exact sums */
static void test_super(int format, int64_t n, int64_t k) {
    char what[160];
    const size_t bb = wren_format_block_bytes(format), plain_bytes = (size_t)n * (size_t)(k / 256) * bb;
    uint8_t *plain = xalloc(plain_bytes), *back = xalloc(plain_bytes);
    for (size_t i = 0; i < plain_bytes; i++) plain[i] = (uint8_t)rng();
    for (int64_t b = 0; b < n * (k / 256); b++) {          /* finite fp16 scales of moderate size */
        uint8_t *blk = plain + (size_t)b * bb;
        const uint16_t d = wren_f32_to_fp16(1e-3f + 1e-2f * frand()), dmin = wren_f32_to_fp16(1e-3f * frand());
        if (format == WREN_Q4_K) {
            memcpy(blk, &d, 2);
            memcpy(blk + 2, &dmin, 2);
        } else {
            memcpy(blk + 208, &d, 2);
        }
    }
    float *y_ref = xalloc(sizeof(float) * 9 * n), *y_var = xalloc(sizeof(float) * 9 * n);
    float *wf = xalloc(sizeof(float) * n * k), *xf = xalloc(sizeof(float) * 9 * k);
    check(wren_dequantize(format, plain, plain_bytes, n, k, wf, (size_t)(n * k)) == WREN_OK, "dequantize super");
    for (int v = 0; v < WREN_N_VARIANTS; v++) {
        if (!wren_variant_available(v) || !wren_variant_supports(v, format)) continue;
        snprintf(what, sizeof what, "%s %s n=%lld k=%lld", wren_variant_name(v), wren_format_name(format),
                 (long long)n, (long long)k);
        const size_t pb = wren_packed_bytes(v, format, n, k);
        uint8_t *packed = xalloc(pb), *ref_packed = xalloc(wren_packed_bytes(WREN_REF, format, n, k));
        check(wren_repack(v, format, plain, plain_bytes, n, k, packed, pb) == WREN_OK, what);
        check(wren_unpack(v, format, packed, pb, n, k, back, plain_bytes) == WREN_OK, what);
        check(memcmp(plain, back, plain_bytes) == 0, "super pack/unpack round trip");
        check(wren_repack(WREN_REF, format, plain, plain_bytes, n, k, ref_packed, plain_bytes) == WREN_OK, what);
        const wren_weights w_var = {format, v, n, k, packed, pb, 256};
        const wren_weights w_ref = {format, WREN_REF, n, k, ref_packed, plain_bytes, 256};
        for (int64_t m = 1; m <= 9; m++) {
            fill(xf, m * k, 0);
            const size_t ab = wren_act_bytes(m, k);
            void *abuf = xalloc(ab);
            wren_act a;
            wren_act_init(&a, abuf, ab, m, k);
            check(wren_quantize_act_k(xf, (size_t)(m * k), &a) == WREN_OK, what);
            check(wren_matmul(NULL, &w_ref, &a, y_ref, (size_t)(m * n)) == WREN_OK, what);
            check(wren_matmul(NULL, &w_var, &a, y_var, (size_t)(m * n)) == WREN_OK, what);
            int same = memcmp(y_ref, y_var, sizeof(float) * m * n) == 0, within = 1;
            if (!same) printf("  %s m=%lld: y[0] ref %.9g variant %.9g\n", what, (long long)m, y_ref[0], y_var[0]);
            for (int64_t i = 0; i < m; i++)
                for (int64_t r = 0; r < n; r++) {
                    double e = 0.0, mag = 0.0;
                    for (int64_t j = 0; j < k; j++) {
                        const double t = (double)wf[r * k + j] * a.q[i * k + j] * a.d[i * (k / 32) + j / 32];
                        e += t;
                        mag += fabs(t);
                    }
                    within &= fabs(y_ref[i * n + r] - e) <= 1e-5 * mag + 1e-30;
                }
            char w2[200];
            snprintf(w2, sizeof w2, "%s m=%lld: the reference's bits", what, (long long)m);
            check(same, w2);
            snprintf(w2, sizeof w2, "%s m=%lld: near the exact sum", what, (long long)m);
            check(within, w2);
            free(abuf);
        }
        free(packed);
        free(ref_packed);
    }
    free(plain); free(back); free(y_ref); free(y_var); free(wf); free(xf);
}

static void test_bad_arguments(void) {
    uint8_t buf[4096] __attribute__((aligned(64)));
    wren_act a;
    check(wren_act_init(&a, buf + 1, sizeof buf - 1, 1, 32) == WREN_E_ALIGN, "misaligned activations");
    check(wren_act_init(&a, buf, sizeof buf, 1, 33) == WREN_E_SHAPE, "k not a multiple of 32");
    check(wren_act_init(&a, buf, 16, 1, 32) == WREN_E_BUFFER, "short activation buffer");
    check(wren_quantize(WREN_Q4_0, (float *)buf, 1, 64, buf, 10) == WREN_E_BUFFER, "short quantize buffer");
    check(wren_quantize(7, (float *)buf, 1, 64, buf, 1000) == WREN_E_FORMAT, "unknown format");
    wren_pool *pool = NULL;
    wren_pool_params pp = {WREN_MAX_THREADS + 1, NULL, 0, 0, 0};
    check(wren_pool_create(&pp, &pool) == WREN_E_THREADS && !pool, "too many threads");
    int32_t cpu = 100000;
    wren_pool_params pc = {1, &cpu, 1, 1, 0};
    check(wren_pool_create(&pc, &pool) == WREN_E_CPU && !pool, "CPU id that does not exist");
}

int main(void) {
    const uint64_t feat = wren_cpu_features();
    printf("cpu features:");
    for (uint64_t bit = 1; bit <= WREN_CPU_ASIMDHP; bit <<= 1)
        if ((feat & bit) && wren_cpu_feature_name(bit)) printf(" %s", wren_cpu_feature_name(bit));
    printf("\n");
    for (int f = 0; f < WREN_N_FORMATS; f++)
        printf("chosen %s: %s\n", wren_format_name(f), wren_variant_name(wren_variant_chosen(f)));

    static const int64_t shapes[][3] = {{1, 32, 1}, {7, 64, 3}, {8, 32, 1},   {13, 96, 5},  {33, 160, 2},
                                        {64, 256, 9}, {100, 320, 4}, {17, 32, 17}, {576, 576, 1}, {96, 1536, 6},
                                        {20, 96, 7},  {12, 4352, 11}, {9, 33024, 2}};   /* k > 32768: RAW */
    char exercised[256] = "";
    for (int v = 0; v < WREN_N_VARIANTS; v++) {
        if (!wren_variant_available(v)) continue;
        const int before = n_fail;
        for (int f = 0; f < WREN_N_FORMATS; f++) {
            if (!wren_variant_supports(v, f) || wren_format_block_weights(f) != WREN_QK) continue;
            for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
                test_variant(v, f, shapes[s][0], shapes[s][1], shapes[s][2], (int)(s % 2));
        }
        snprintf(exercised + strlen(exercised), sizeof exercised - strlen(exercised), " %s%s", wren_variant_name(v),
                 n_fail > before ? "(FAILED)" : "");
    }
    printf("variants exercised:%s\n", exercised);
    test_super(WREN_Q4_K, 24, 512);
    test_super(WREN_Q4_K, 13, 256);
    test_super(WREN_Q6_K, 24, 512);
    test_super(WREN_Q6_K, 9, 1536);
    test_vec_ops();
    test_exp();
    test_act_k();
    test_bad_arguments();
    printf("%d passed, %d failed\n", n_pass, n_fail);
    return n_fail ? 1 : 0;
}
