/* avx2.c - AVX2 kernels (x86-64 with AVX2, FMA and F16C) on tiles of 8 rows interleaved by 4 bytes.
 *
 * Tile (8 rows, one block column of 32): fp16 d[8]; (Q4_1: fp16 m[8]); quants, byte j of row r's plain quants at
 * qs[(j / 4) * 32 + r * 4 + j % 4]. So each 32-byte quant vector c has row r's plain bytes 4c..4c+3 in 32-bit lane r:
 *   Q4_0/Q4_1: 4 vectors; the low nibbles are weights 4c..4c+3, the high nibbles weights 16+4c..16+4c+3;
 *   Q8_0, Q8_16: 8 vectors; int8 weights 4c..4c+3 (Q8_16: the rows' sc pairs sit before the quants).
 * Multiplying vector c by the matching 4-byte activation group broadcast to all lanes (vpmaddubsw) and folding pairs
 * (vpmaddwd with ones) leaves the 8 rows' block sums in the 8 int32 lanes: one tile gives one vector of 8 outputs,
 * stored once per tile row (masked for the last tile when n is not a multiple of 8; padding rows are never written).
 *
 * Exactness of the integer sums:
 *   Q4: nibble (0..15) x int8: a vpmaddubsw pair is at most 2 * 15 * 128 = 3840 in magnitude, so the 8 products of
 *       a tile add up in int16 (<= 30720) before one vpmaddwd.
 *   Q8_0: |w| x sign(x, w): |w| <= 128 as unsigned (exact for w = -128), |x| <= 127, a pair <= 32512; each product
 *       goes to int32 through its own vpmaddwd (two would overflow int16).
 * Then per block: Q4_0 (d_w d_x) * (float)(isum - 8 sum_x); Q4_1 (d_w d_x) * isum + m_w * (d_x sum_x);
 * Q8_0 (d_w d_x) * isum, added over the blocks in order with FMA.
 *
 * Per tile and block, hot in cache, on Zen 4: Q4_0 GEMV ~11.5 cycles (144 bytes), Q4_1 ~12, Q8_0 ~19 (272 bytes);
 * GEMM ~10 / 11 / 15 cycles per tile and activation row. The limit is the vector issue rate (about 3 per cycle here),
 * not the multiplier: 8 vpmaddubsw + 12 unpack + 7 adds + ~7 scale operations per Q4 tile.
 *
 * GEMM reuses each tile's unpacked weights for 4 activation rows (the last group 3, 2 or 1); GEMV is the one row
 * case. Every output goes through the same operations in the same order whatever the grouping, so results do not
 * depend on how rows and tiles are split between threads. */
#if defined(__x86_64__)
#pragma GCC target("avx2,fma,f16c")
#include <immintrin.h>
#include "../../internal.h"

#define AI static inline __attribute__((always_inline))

enum { TR = 8, TI = 4 };    /* rows per tile, interleave */

AI __m256i bcast32(const int8_t *p) {    /* vpbroadcastd from memory */
    int32_t v;
    memcpy(&v, p, 4);
    return _mm256_set1_epi32(v);
}

AI __m256 load_fp16x8(const uint8_t *p) { return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p)); }

/* stores the 8 lanes of v into y[0 .. nr), nr <= 8 */
AI void store_rows(float *y, __m256 v, int64_t nr) {
    if (nr >= TR) {
        _mm256_storeu_ps(y, v);
    } else {
        const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        const __m256i mask = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)nr), idx);
        _mm256_maskstore_ps(y, mask, v);
    }
}

/* ---- activations ---- */

static void quantize_act_avx2(const float *x, int64_t k, int8_t *q, float *d, int32_t *sum, float *s) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    const __m256i perm = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    for (int64_t b = 0; b < k / WREN_QK; b++) {
        const float *xb = x + b * WREN_QK;
        __m256 v0 = _mm256_loadu_ps(xb), v1 = _mm256_loadu_ps(xb + 8);
        __m256 v2 = _mm256_loadu_ps(xb + 16), v3 = _mm256_loadu_ps(xb + 24);
        /* max |x|: NaN lanes are ignored as fmaxf does (vmaxps returns its second operand on NaN) */
        __m256 m = _mm256_max_ps(_mm256_andnot_ps(sign, v0), _mm256_setzero_ps());
        m = _mm256_max_ps(_mm256_andnot_ps(sign, v1), m);
        m = _mm256_max_ps(_mm256_andnot_ps(sign, v2), m);
        m = _mm256_max_ps(_mm256_andnot_ps(sign, v3), m);
        __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
        h = _mm_max_ps(h, _mm_movehl_ps(h, h));
        h = _mm_max_ss(h, _mm_movehdup_ps(h));
        const float amax = _mm_cvtss_f32(h);
        const float db = _cvtsh_ss(_cvtss_sh(amax / 127.0f, 0));   /* fp16 scale, rounded to nearest even */
        const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
        const __m256 vid = _mm256_set1_ps(id);
        const __m256i i0 = _mm256_cvtps_epi32(_mm256_mul_ps(v0, vid));
        const __m256i i1 = _mm256_cvtps_epi32(_mm256_mul_ps(v1, vid));
        const __m256i i2 = _mm256_cvtps_epi32(_mm256_mul_ps(v2, vid));
        const __m256i i3 = _mm256_cvtps_epi32(_mm256_mul_ps(v3, vid));
        __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(i0, i1), _mm256_packs_epi32(i2, i3));
        p = _mm256_permutevar8x32_epi32(p, perm);
        /* |x id| <= 127 for finite x and id; -128 only comes from cvtps2dq's 0x80000000 (NaN, inf, id = inf),
         * where the reference's lrintf gives something else: let the reference do such a block */
        if (!_mm256_testz_si256(_mm256_cmpeq_epi8(p, _mm256_set1_epi8(-128)), _mm256_set1_epi8(-1))) {
            wren_quantize_act_row_ref(xb, WREN_QK, q + b * WREN_QK, d + b, sum + b, s + b);
            continue;
        }
        _mm256_storeu_si256((__m256i *)(q + b * WREN_QK), p);
        __m256i s8 = _mm256_add_epi32(_mm256_add_epi32(i0, i1), _mm256_add_epi32(i2, i3));
        __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(s8), _mm256_extracti128_si256(s8, 1));
        s4 = _mm_add_epi32(s4, _mm_unpackhi_epi64(s4, s4));
        s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 1));
        d[b] = db;
        sum[b] = _mm_cvtsi128_si32(s4);
        s[b] = _cvtsh_ss(_cvtss_sh(amax / 127.0f * (float)sum[b], 0));
    }
}

/* Q8_K-style rows (wren_quantize_act_row_k_ref): one scale per 256 values. max|x| is exact in any order, and the
 * product x id is rounded to float before cvtps2dq rounds it half to even, as in the reference. A group where
 * cvtps2dq gives 0x80000000 (NaN or inf) is left to the reference, as quantize_act_avx2 does for a block. */
void wren_quantize_act_k_avx2(const float *x, int64_t k, int8_t *q, float *d, int32_t *sum, float *s) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    const __m256i perm = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    for (int64_t g = 0; g < k / WREN_QK_K; g++) {
        const float *xg = x + g * WREN_QK_K;
        int8_t *qg = q + g * WREN_QK_K;
        __m256 m = _mm256_setzero_ps();
        for (int j = 0; j < WREN_QK_K; j += 8) m = _mm256_max_ps(_mm256_andnot_ps(sign, _mm256_loadu_ps(xg + j)), m);
        __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
        h = _mm_max_ps(h, _mm_movehl_ps(h, h));
        h = _mm_max_ss(h, _mm_movehdup_ps(h));
        const float amax = _mm_cvtss_f32(h);
        const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
        const float dg = amax != 0.0f ? 1.0f / id : 0.0f;
        const __m256 vid = _mm256_set1_ps(id);
        __m256i bad = _mm256_setzero_si256();
        for (int b = 0; b < WREN_QK_K / WREN_QK; b++) {
            const float *xb = xg + b * WREN_QK;
            const __m256i i0 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(xb), vid));
            const __m256i i1 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(xb + 8), vid));
            const __m256i i2 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(xb + 16), vid));
            const __m256i i3 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(xb + 24), vid));
            __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(i0, i1), _mm256_packs_epi32(i2, i3));
            p = _mm256_permutevar8x32_epi32(p, perm);
            bad = _mm256_or_si256(bad, _mm256_cmpeq_epi8(p, _mm256_set1_epi8(-128)));
            _mm256_storeu_si256((__m256i *)(qg + b * WREN_QK), p);
            __m256i s8 = _mm256_add_epi32(_mm256_add_epi32(i0, i1), _mm256_add_epi32(i2, i3));
            __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(s8), _mm256_extracti128_si256(s8, 1));
            s4 = _mm_add_epi32(s4, _mm_unpackhi_epi64(s4, s4));
            s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 1));
            d[g * (WREN_QK_K / WREN_QK) + b] = dg;
            sum[g * (WREN_QK_K / WREN_QK) + b] = _mm_cvtsi128_si32(s4);
            s[g * (WREN_QK_K / WREN_QK) + b] = dg * (float)sum[g * (WREN_QK_K / WREN_QK) + b];
        }
        if (!_mm256_testz_si256(bad, bad))
            wren_quantize_act_row_k_ref(xg, WREN_QK_K, qg, d + g * (WREN_QK_K / WREN_QK), sum + g * (WREN_QK_K / WREN_QK),
                                        s + g * (WREN_QK_K / WREN_QK));
    }
}

/* ---- activation operands ----
 * A kernel reads activation row j of block b either straight from the wren_act (RAW: vpbroadcastd of each 4-byte
 * group, the scalars broadcast) or, for GEMV over a short row, from an expanded copy (EXP): the eight groups already
 * broadcast into whole vectors next to the block's scalars as vectors, so that vpmaddubsw / vpsubd / vmulps take them
 * as memory operands and a tile costs no broadcast instruction. The 4-bit formats' per-block scalar of a row (Q4_0:
 * 8 sum_x; Q4_1: d_x sum_x, a float product) is otherwise formed again for every tile; PRE reads the groups as RAW
 * does and that scalar from a table made once per range of tiles (a GEMV call, a GEMM slab; up to XT_BLOCKS blocks),
 * which takes three instructions per row, tile and block off Q4_1's GEMM (+14% GOPS). All three give the same bits. */
enum { RAW = 0, EXP = 1, PRE = 2 };

typedef struct {
    __m256i x[8];       /* x[c] = bytes 4c..4c+3 of the block in every lane */
    __m256i s;          /* Q4_0: 8 sum_x (int32 lanes); Q4_1: d_x sum_x (float lanes) */
    __m256 d;           /* d_x */
} xq4;

typedef struct {        /* activation row i0 + j at block 0 */
    const int8_t *q;
    const float *d;
    const int32_t *s;
    const int32_t *t;   /* PRE: per block, Q4_0 8 sum_x; Q4_1 the bits of d_x sum_x */
} xrow;

enum {
    XBUF_BYTES = 20480,         /* an expanded row of up to 64 blocks (k <= 2048), well inside a 32 KB L1 */
    EXP_MIN_TILES = 32,         /* GEMV ranges shorter than this read the activations RAW */
    XT_BLOCKS = 1024            /* PRE's table: up to 4 rows of k <= 32768 (16 KB on the stack) */
};

static void expand_q4(int fmt, const xrow *r, int64_t nb, xq4 *e) {
    for (int64_t b = 0; b < nb; b++) {
        const int8_t *xq = r->q + b * WREN_QK;
#pragma GCC unroll 8
        for (int c = 0; c < 8; c++) e[b].x[c] = bcast32(xq + 4 * c);
        const float dx = r->d[b];
        const int32_t sx = r->s[b];
        e[b].d = _mm256_set1_ps(dx);
        e[b].s = fmt == WREN_Q4_0 ? _mm256_set1_epi32((int32_t)(8u * (uint32_t)sx)) : _mm256_castps_si256(_mm256_set1_ps(dx * (float)sx));
    }
}

/* a 32-byte load the compiler must keep in a register (it would otherwise fold it into two instructions and load
 * the same bytes twice) */
AI __m256i load_reg(const void *p) {
    __m256i v = _mm256_loadu_si256((const __m256i *)p);
    __asm__("" : "+x"(v));
    return v;
}

/* ---- 4-bit tiles ----
 * Quant vector c unpacks to lo = weights 4c..4c+3 of each row and hi = weights 16+4c..16+4c+3, which pair with
 * activation groups c and 4 + c. The eight vpmaddubsw products are summed in int16 as a tree, then vpmaddwd with
 * ones folds each row's pair of int16 lanes into its int32 lane. */
AI __m256i q4_isum(const __m256i w[8], const int src, const __m256i *xe, const int8_t *xr) {
    __m256i p[8];
#pragma GCC unroll 8
    for (int c = 0; c < 8; c++) p[c] = _mm256_maddubs_epi16(w[c], src == EXP ? xe[c] : bcast32(xr + 4 * c));
    p[0] = _mm256_add_epi16(p[0], p[1]);
    p[2] = _mm256_add_epi16(p[2], p[3]);
    p[4] = _mm256_add_epi16(p[4], p[5]);
    p[6] = _mm256_add_epi16(p[6], p[7]);
    p[0] = _mm256_add_epi16(p[0], p[2]);
    p[4] = _mm256_add_epi16(p[4], p[6]);
    return _mm256_madd_epi16(_mm256_add_epi16(p[0], p[4]), _mm256_set1_epi16(1));
}

/* block b of one tile against NR activation rows (EXP: e = the expanded entries of this block, NR == 1) */
AI void q4_block(const int fmt, const int src, const uint8_t *tile, const xq4 *e, const xrow *r, int64_t b,
                 const int NR, __m256 acc[4]) {
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    const uint8_t *qs = tile + (size_t)TR * wren_scale_bytes(fmt);
    __m256i w[8];
#pragma GCC unroll 4
    for (int c = 0; c < 4; c++) {
        const __m256i v = load_reg(qs + 32 * c);
        w[c] = _mm256_and_si256(v, m4);
        w[4 + c] = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
    }
    const __m256 dw = load_fp16x8(tile);
#pragma GCC unroll 4
    for (int j = 0; j < NR; j++) {
        __m256i isum = q4_isum(w, src, src == EXP ? e[j].x : NULL, src != EXP ? r[j].q + b * WREN_QK : NULL);
        __m256 dx, s;
        if (src == EXP) {
            dx = e[j].d;
            if (fmt == WREN_Q4_0) isum = _mm256_sub_epi32(isum, e[j].s);
            s = _mm256_castsi256_ps(e[j].s);
        } else {
            dx = _mm256_broadcast_ss(r[j].d + b);
            if (src == PRE) {
                if (fmt == WREN_Q4_0) isum = _mm256_sub_epi32(isum, bcast32((const int8_t *)(r[j].t + b)));
                s = _mm256_broadcast_ss((const float *)(r[j].t + b));
            } else {
                if (fmt == WREN_Q4_0)
                    isum = _mm256_sub_epi32(isum, _mm256_slli_epi32(bcast32((const int8_t *)(r[j].s + b)), 3));
                s = _mm256_set1_ps(r[j].d[b] * (float)r[j].s[b]);
            }
        }
        acc[j] = _mm256_fmadd_ps(_mm256_mul_ps(dw, dx), _mm256_cvtepi32_ps(isum), acc[j]);
        if (fmt == WREN_Q4_1) acc[j] = _mm256_fmadd_ps(load_fp16x8(tile + 2 * TR), s, acc[j]);
    }
}

/* ---- Q8_0 and Q8_16 tiles ----
 * |w| x sign(x, w): |w| as unsigned is exact even for w = -128, and computed once per tile for all rows; each
 * vpmaddubsw result goes to int32 through its own vpmaddwd, against ones (Q8_0) or, for Q8_16, against the row's
 * multiplier of that half of the block (sc[0] for vectors 0-3, weights 0-15; sc[1] for 4-7) in both int16 lanes of
 * the row: the block sum sc0 lo + sc1 hi comes out of the same instructions as Q8_0's. Exact: a vpmaddubsw lane is at
 * most 2 * 128 * 127 = 32512 in magnitude, times |sc| <= 128, twice, is below 2^23. */
AI void q8_block(const int fmt, const uint8_t *tile, const xrow *r, int64_t b, const int NR, __m256 acc[4]) {
    const __m256i *qv = (const __m256i *)(tile + (size_t)TR * wren_scale_bytes(fmt));
    __m256i aw[8];
#pragma GCC unroll 8
    for (int c = 0; c < 8; c++) aw[c] = _mm256_abs_epi8(_mm256_loadu_si256(qv + c));
    const __m256 dw = load_fp16x8(tile);
    __m256i mul[2] = {_mm256_set1_epi16(1), _mm256_set1_epi16(1)};
    if (fmt == WREN_Q8_16) {    /* 32-bit lane r = row r's (sc[0], sc[1]) as int16; each copied into both halves */
        const __m256i pairs = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(tile + 2 * TR)));
        mul[0] = _mm256_shuffle_epi8(pairs, _mm256_setr_epi8(0, 1, 0, 1, 4, 5, 4, 5, 8, 9, 8, 9, 12, 13, 12, 13, 0, 1,
                                                             0, 1, 4, 5, 4, 5, 8, 9, 8, 9, 12, 13, 12, 13));
        mul[1] = _mm256_shuffle_epi8(pairs, _mm256_setr_epi8(2, 3, 2, 3, 6, 7, 6, 7, 10, 11, 10, 11, 14, 15, 14, 15, 2,
                                                             3, 2, 3, 6, 7, 6, 7, 10, 11, 10, 11, 14, 15, 14, 15));
    }
#pragma GCC unroll 4
    for (int j = 0; j < NR; j++) {
        const int8_t *x = r[j].q + b * WREN_QK;
        __m256i p[8];
#pragma GCC unroll 8
        for (int c = 0; c < 8; c++) {
            const __m256i sx = _mm256_sign_epi8(bcast32(x + 4 * c), _mm256_loadu_si256(qv + c));
            p[c] = _mm256_madd_epi16(_mm256_maddubs_epi16(aw[c], sx), mul[c / 4]);
        }
        p[0] = _mm256_add_epi32(p[0], p[1]);
        p[2] = _mm256_add_epi32(p[2], p[3]);
        p[4] = _mm256_add_epi32(p[4], p[5]);
        p[6] = _mm256_add_epi32(p[6], p[7]);
        p[0] = _mm256_add_epi32(_mm256_add_epi32(p[0], p[2]), _mm256_add_epi32(p[4], p[6]));
        acc[j] = _mm256_fmadd_ps(_mm256_mul_ps(dw, _mm256_broadcast_ss(r[j].d + b)), _mm256_cvtepi32_ps(p[0]),
                                 acc[j]);
    }
}

/* ---- tile loops ----
 * Tiles [t0, t1) against activation rows i0 .. i0 + NR - 1 into y[(i0 + j) * ldy + 8 t + r]. The tiles of a range
 * are contiguous, so the weights stream in address order. */
AI void run_tiles(const int fmt, const int src, const uint8_t *w, int64_t n, int64_t k, int64_t t0, int64_t t1,
                  const xrow *r, const int NR, const xq4 *ex, int64_t i0, float *y, int64_t ldy) {
    const int64_t nb = k / WREN_QK;
    const size_t tb = wren_tile_bytes(fmt, TR);
    const uint8_t *tile = w + (size_t)(t0 * nb) * tb;
    for (int64_t t = t0; t < t1; t++) {
        __m256 acc[4];
#pragma GCC unroll 4
        for (int j = 0; j < NR; j++) acc[j] = _mm256_setzero_ps();
        for (int64_t b = 0; b < nb; b++, tile += tb) {
            if (wren_is_q8(fmt)) q8_block(fmt, tile, r, b, NR, acc);
            else q4_block(fmt, src, tile, src == EXP ? ex + b : NULL, r, b, NR, acc);
        }
#pragma GCC unroll 4
        for (int j = 0; j < NR; j++) store_rows(y + (i0 + j) * ldy + t * TR, acc[j], n - t * TR);
    }
}

/* RAW for the 4-bit formats goes through PRE when the row is short enough for its table */
AI void run(const int fmt, const int src, const uint8_t *w, int64_t n, int64_t k, int64_t t0, int64_t t1,
            const wren_act *a, int64_t i0, const int NR, const xq4 *ex, float *y, int64_t ldy) {
    const int64_t nb = k / WREN_QK;
    xrow r[4];
#pragma GCC unroll 4
    for (int j = 0; j < NR; j++)
        r[j] = (xrow){a->q + (i0 + j) * k, a->d + (i0 + j) * nb, a->sum + (i0 + j) * nb, NULL};
    if (wren_is_q8(fmt) || src != RAW || nb > XT_BLOCKS) {
        run_tiles(fmt, src, w, n, k, t0, t1, r, NR, ex, i0, y, ldy);
        return;
    }
    int32_t xt[4][XT_BLOCKS];
#pragma GCC unroll 4
    for (int j = 0; j < NR; j++) {
        for (int64_t b = 0; b < nb; b++) {
            if (fmt == WREN_Q4_0) {
                xt[j][b] = (int32_t)(8u * (uint32_t)r[j].s[b]);   /* wraps as the SIMD sums do, never UB */
            } else {
                const float f = r[j].d[b] * (float)r[j].s[b];
                memcpy(&xt[j][b], &f, sizeof f);
            }
        }
        r[j].t = xt[j];
    }
    run_tiles(fmt, PRE, w, n, k, t0, t1, r, NR, ex, i0, y, ldy);
}

/* ---- Q4_1 and Q8_0 in llama.cpp's lanes (ref.c) ----
 * Tile vector g (quants c = g, Q4_1's low nibbles of c = g or high of c = g - 4) holds weights 4g..4g+3 of each
 * row: against activation group g it gives lane g of every row at once, so accumulator g is that lane of the 8 rows,
 * fed by one fused multiply-add per block as in ggml_vec_dot_q4_1_q8_1 / ggml_vec_dot_q8_0_q8_0; the lanes add up in
 * hsum_float_8's order at the end. Eight accumulators (and Q4_1's min sums) per activation row fill the registers:
 * one row at a time. */
AI void lanes_tiles(const int fmt, const uint8_t *w, int64_t n, int64_t k, int64_t t0, int64_t t1, const wren_act *a,
                    int64_t i, float *y) {
    const int64_t nb = k / WREN_QK;
    const size_t tb = wren_tile_bytes(fmt, TR);
    const int8_t *xq = a->q + i * k;
    const float *xd = a->d + i * nb, *xs = a->s + i * nb;
    const __m256i m4 = _mm256_set1_epi8(0x0f), ones = _mm256_set1_epi16(1);
    const uint8_t *tile = w + (size_t)(t0 * nb) * tb;
    for (int64_t t = t0; t < t1; t++) {
        __m256 acc[8], mins = _mm256_setzero_ps();
#pragma GCC unroll 8
        for (int g = 0; g < 8; g++) acc[g] = _mm256_setzero_ps();
        for (int64_t b = 0; b < nb; b++, tile += tb) {
            const int8_t *x = xq + b * WREN_QK;
            const __m256 dd = _mm256_mul_ps(load_fp16x8(tile), _mm256_broadcast_ss(xd + b));
            if (fmt == WREN_Q4_1) {
                const uint8_t *qs = tile + (size_t)TR * wren_scale_bytes(fmt);
#pragma GCC unroll 4
                for (int c = 0; c < 4; c++) {
                    const __m256i v = _mm256_loadu_si256((const __m256i *)(qs + 32 * c));
                    const __m256i lo = _mm256_and_si256(v, m4), hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
                    const __m256i plo = _mm256_madd_epi16(_mm256_maddubs_epi16(lo, bcast32(x + 4 * c)), ones);
                    const __m256i phi = _mm256_madd_epi16(_mm256_maddubs_epi16(hi, bcast32(x + 16 + 4 * c)), ones);
                    acc[c] = _mm256_fmadd_ps(dd, _mm256_cvtepi32_ps(plo), acc[c]);
                    acc[4 + c] = _mm256_fmadd_ps(dd, _mm256_cvtepi32_ps(phi), acc[4 + c]);
                }
                mins = _mm256_fmadd_ps(load_fp16x8(tile + 2 * TR), _mm256_broadcast_ss(xs + b), mins);
            } else {
                const __m256i *qv = (const __m256i *)(tile + (size_t)TR * wren_scale_bytes(fmt));
#pragma GCC unroll 8
                for (int c = 0; c < 8; c++) {
                    const __m256i wv = _mm256_loadu_si256(qv + c);
                    const __m256i sx = _mm256_sign_epi8(bcast32(x + 4 * c), wv);
                    const __m256i p = _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_abs_epi8(wv), sx), ones);
                    acc[c] = _mm256_fmadd_ps(dd, _mm256_cvtepi32_ps(p), acc[c]);
                }
            }
        }
        const __m256 u = _mm256_add_ps(_mm256_add_ps(acc[4], acc[0]), _mm256_add_ps(acc[6], acc[2]));
        const __m256 v = _mm256_add_ps(_mm256_add_ps(acc[5], acc[1]), _mm256_add_ps(acc[7], acc[3]));
        __m256 res = _mm256_add_ps(u, v);
        if (fmt == WREN_Q4_1) res = _mm256_add_ps(res, mins);
        store_rows(y + t * TR, res, n - t * TR);
    }
}

/* GEMM in lanes: slabs of tiles (kept in L2) that every activation row passes over in turn */
AI void lanes_gemm(const int fmt, const uint8_t *w, int64_t n, int64_t k, int64_t t0, int64_t t1, const wren_act *a,
                   float *y, int64_t ldy) {
    for (int64_t s0 = t0; s0 < t1; s0 += 16) {
        const int64_t s1 = s0 + 16 < t1 ? s0 + 16 : t1;
        for (int64_t i = 0; i < a->m; i++) lanes_tiles(fmt, w, n, k, s0, s1, a, i, y + i * ldy);
    }
}

static void gemv_q4(const int fmt, const uint8_t *w, int64_t n, int64_t k, int64_t t0, int64_t t1,
                    const wren_act *a, float *y) {
    const int64_t nb = k / WREN_QK;
    /* expanding costs about as much as 8 tiles gain from it: only for a long range of tiles and a short row */
    if (t1 - t0 >= EXP_MIN_TILES && nb * (int64_t)sizeof(xq4) <= XBUF_BYTES) {
        _Alignas(32) xq4 ex[XBUF_BYTES / sizeof(xq4)];
        const xrow r = {a->q, a->d, a->sum, NULL};
        expand_q4(fmt, &r, nb, ex);
        run(fmt, EXP, w, n, k, t0, t1, a, 0, 1, ex, y, 0);
    } else {
        run(fmt, RAW, w, n, k, t0, t1, a, 0, 1, NULL, y, 0);
    }
}

WREN_GEMV_ENTRY(gemv_q4_0, gemv_q4, WREN_Q4_0)
static void gemv_q4_1(const uint8_t *w, int64_t n, int64_t k, int64_t t0, int64_t t1, const wren_act *a, float *y) {
    lanes_tiles(WREN_Q4_1, w, n, k, t0, t1, a, 0, y);
}
static void gemv_q8_0(const uint8_t *w, int64_t n, int64_t k, int64_t t0, int64_t t1, const wren_act *a, float *y) {
    lanes_tiles(WREN_Q8_0, w, n, k, t0, t1, a, 0, y);
}
static void gemv_q8_16(const uint8_t *w, int64_t n, int64_t k, int64_t t0, int64_t t1, const wren_act *a, float *y) {
    run(WREN_Q8_16, RAW, w, n, k, t0, t1, a, 0, 1, NULL, y, 0);
}

/* GEMM: tiles in slabs of GEMM_TILES (a slab's weights stay in L2) that every activation row passes over in groups
 * of 4 rows, each tile's weights unpacked once per group; the last group has 3, 2 or 1 rows. */
enum { GEMM_TILES = 16 };

AI void gemm_any(const int fmt, const uint8_t *w, int64_t n, int64_t k, int64_t t0, int64_t t1, const wren_act *a,
                 float *y, int64_t ldy) {
    for (int64_t s0 = t0; s0 < t1; s0 += GEMM_TILES) {
        const int64_t s1 = s0 + GEMM_TILES < t1 ? s0 + GEMM_TILES : t1;
        int64_t i = 0;
        for (; i + 4 <= a->m; i += 4) run(fmt, RAW, w, n, k, s0, s1, a, i, 4, NULL, y, ldy);
        switch (a->m - i) {
        case 3: run(fmt, RAW, w, n, k, s0, s1, a, i, 3, NULL, y, ldy); break;
        case 2: run(fmt, RAW, w, n, k, s0, s1, a, i, 2, NULL, y, ldy); break;
        case 1: run(fmt, RAW, w, n, k, s0, s1, a, i, 1, NULL, y, ldy); break;
        default: break;
        }
    }
}

WREN_GEMM_ENTRY(gemm_q4_0, gemm_any, WREN_Q4_0)
WREN_GEMM_ENTRY(gemm_q4_1, lanes_gemm, WREN_Q4_1)
WREN_GEMM_ENTRY(gemm_q8_0, lanes_gemm, WREN_Q8_0)
WREN_GEMM_ENTRY(gemm_q8_16, gemm_any, WREN_Q8_16)

/* ---- Q4_K and Q6_K super-blocks (kquant.c has the arithmetic in words; these give its bits) ----
 * Tiles of 8 rows (formats.h), lane r of every vector = row r. */
AI __m256i pair16(__m256i v) {      /* int32 lanes holding an int16 value -> that value in both int16 halves */
    return _mm256_or_si256(_mm256_and_si256(v, _mm256_set1_epi32(0xffff)), _mm256_slli_epi32(v, 16));
}

AI void q4k_tiles(const int gemm, const uint8_t *w, int64_t n, int64_t k, int64_t t0, int64_t t1, const wren_act *a,
                  int64_t i, float *y) {
    const int64_t nsb = k / WREN_QK_SUPER, nb = k / WREN_QK;
    const size_t tb = wren_tile_bytes(WREN_Q4_K, TR);
    const int8_t *xq = a->q + i * k;
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    const uint8_t *tile = w + (size_t)(t0 * nsb) * tb;
    for (int64_t t = t0; t < t1; t++) {
        __m256 acc = _mm256_setzero_ps(), mins = _mm256_setzero_ps();
        for (int64_t sb = 0; sb < nsb; sb++, tile += tb) {
            const __m256 dx = _mm256_broadcast_ss(a->d + i * nb + 8 * sb);
            const __m256 dd = _mm256_mul_ps(load_fp16x8(tile + WREN_Q4K_T_D * TR), dx);
            const __m256 dm = _mm256_mul_ps(load_fp16x8(tile + WREN_Q4K_T_DMIN * TR), dx);
            __m256i iacc = _mm256_setzero_si256(), imin = _mm256_setzero_si256();
            for (int j = 0; j < 8; j++) {
                const int8_t *x = xq + 256 * sb + 32 * j;
                const uint8_t *qs = tile + (WREN_Q4K_T_QS + WREN_Q4K_T_SUB * j) * TR;
                __m256i p = _mm256_setzero_si256();
#pragma GCC unroll 4
                for (int c = 0; c < 4; c++) {
                    const __m256i v = _mm256_loadu_si256((const __m256i *)(qs + 32 * c));
                    p = _mm256_add_epi16(p, _mm256_maddubs_epi16(_mm256_and_si256(v, m4), bcast32(x + 4 * c)));
                    p = _mm256_add_epi16(p, _mm256_maddubs_epi16(_mm256_and_si256(_mm256_srli_epi16(v, 4), m4),
                                                                 bcast32(x + 16 + 4 * c)));
                }
                /* row r's sc_j in both int16 halves of lane r: the 8 bytes in both 128-bit halves, then picked */
                const __m256i sc = _mm256_shuffle_epi8(
                    _mm256_castpd_si256(_mm256_broadcast_sd((const double *)(tile + (WREN_Q4K_T_SC + j) * TR))),
                    _mm256_setr_epi8(0, -1, 0, -1, 1, -1, 1, -1, 2, -1, 2, -1, 3, -1, 3, -1, 4, -1, 4, -1, 5, -1, 5, -1,
                                     6, -1, 6, -1, 7, -1, 7, -1));
                iacc = _mm256_add_epi32(iacc, _mm256_madd_epi16(p, sc));
                if (j & 1) {    /* the pair of sub-blocks j - 1, j: m_(j-1) sum_(j-1) + m_j sum_j in one madd */
                    const int32_t *sx = a->sum + i * nb + 8 * sb + j - 1;
                    const __m256i mp = _mm256_cvtepu8_epi16(
                        _mm_loadu_si128((const __m128i *)(tile + (WREN_Q4K_T_M + j - 1) * TR)));
                    imin = _mm256_add_epi32(imin, _mm256_madd_epi16(mp, _mm256_set1_epi32(
                        (int32_t)(((uint32_t)sx[0] & 0xffffu) | ((uint32_t)sx[1] << 16)))));
                }
                if (gemm && (j & 1)) {
                    acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(iacc), dd, acc);
                    mins = _mm256_fmadd_ps(_mm256_cvtepi32_ps(imin), dm, mins);
                    iacc = imin = _mm256_setzero_si256();
                }
            }
            if (!gemm) {
                acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(iacc), dd, acc);
                mins = _mm256_fmadd_ps(_mm256_cvtepi32_ps(imin), dm, mins);
            }
        }
        store_rows(y + t * TR, _mm256_sub_ps(acc, mins), n - t * TR);
    }
}

/* the 6-bit quants of chunk c (at base) for weights 4u..4u+3 (lo) and 16+4u..16+4u+3 (hi) of the 8 rows: the low
 * nibbles from the quant vector, the top 2 bits moved from bits 2u of H0 / H1 to bits 4-5 */
AI void q6k_unpack(const uint8_t *base, const int u, __m256i *lo, __m256i *hi) {
    const __m256i m4 = _mm256_set1_epi8(0x0f), m30 = _mm256_set1_epi8(0x30);
    const __m256i v = _mm256_loadu_si256((const __m256i *)(base + 32 * u));
    const __m256i h0 = _mm256_loadu_si256((const __m256i *)(base + WREN_Q6K_T_H0 * TR));
    const __m256i h1 = _mm256_loadu_si256((const __m256i *)(base + WREN_Q6K_T_H1 * TR));
    __m256i t0, t1;
    switch (u) {
    case 0: t0 = _mm256_slli_epi16(h0, 4); t1 = _mm256_slli_epi16(h1, 4); break;
    case 1: t0 = _mm256_slli_epi16(h0, 2); t1 = _mm256_slli_epi16(h1, 2); break;
    case 2: t0 = h0; t1 = h1; break;
    default: t0 = _mm256_srli_epi16(h0, 2); t1 = _mm256_srli_epi16(h1, 2); break;
    }
    *lo = _mm256_or_si256(_mm256_and_si256(v, m4), _mm256_and_si256(t0, m30));
    *hi = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(v, 4), m4), _mm256_and_si256(t1, m30));
}

/* row r's scale pair (sc[2c], sc[2c + 1]) as int16 in 32-bit lane r; the low one or the high one in both halves */
AI __m256i q6k_pairs(const uint8_t *tile, int c) {
    return _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(tile + (WREN_Q6K_T_SC + 2 * c) * TR)));
}
AI __m256i dup_lo16(__m256i p) {
    return _mm256_shuffle_epi8(p, _mm256_setr_epi8(0, 1, 0, 1, 4, 5, 4, 5, 8, 9, 8, 9, 12, 13, 12, 13, 0, 1, 0, 1, 4, 5,
                                                   4, 5, 8, 9, 8, 9, 12, 13, 12, 13));
}
AI __m256i dup_hi16(__m256i p) {
    return _mm256_shuffle_epi8(p, _mm256_setr_epi8(2, 3, 2, 3, 6, 7, 6, 7, 10, 11, 10, 11, 14, 15, 14, 15, 2, 3, 2, 3, 6,
                                                   7, 6, 7, 10, 11, 10, 11, 14, 15, 14, 15));
}

/* bsum pair (sums of activations 32c..32c+15 and 32c+16..32c+31 of a super-block) as int16 in every 32-bit lane */
AI __m256i bsum_pair(const int32_t *bs, int c) {
    return _mm256_set1_epi32((int32_t)(((uint32_t)bs[2 * c] & 0xffffu) | ((uint32_t)bs[2 * c + 1] << 16)));
}

static void q6k_bsums(const int8_t *xq, int64_t k, int32_t *bsum) {
    for (int64_t s = 0; s < k / 16; s++) {
        int32_t v = 0;
        for (int j = 0; j < 16; j++) v += xq[16 * s + j];
        bsum[s] = v;
    }
}

/* below 8 rows (ggml_vec_dot_q6_K_q8_K): 8 integer lanes per super-block, lane l less 32 (sc[2l] bsum[2l] +
 * sc[2l + 1] bsum[2l + 1]) (chunk l's pair), each into its float lane; one activation row, its sums of 16 in bsum */
AI void q6k_tiles_lanes(const uint8_t *w, int64_t n, int64_t k, int64_t t0, int64_t t1, const wren_act *a, int64_t i,
                        const int32_t *bsum, float *y) {
    const int64_t nsb = k / WREN_QK_SUPER, nb = k / WREN_QK;
    const size_t tb = wren_tile_bytes(WREN_Q6_K, TR);
    const int8_t *xq = a->q + i * k;
    const uint8_t *tile = w + (size_t)(t0 * nsb) * tb;
    for (int64_t t = t0; t < t1; t++) {
        __m256 acc[8];
        for (int l = 0; l < 8; l++) acc[l] = _mm256_setzero_ps();
        for (int64_t sb = 0; sb < nsb; sb++, tile += tb) {
            const __m256 dd = _mm256_mul_ps(_mm256_set1_ps(a->d[i * nb + 8 * sb]), load_fp16x8(tile + WREN_Q6K_T_D * TR));
            const int32_t *bs = bsum + 16 * sb;
            const int8_t *xs = xq + 256 * sb;
            __m256i s_lo[8], s_hi[8], sub[8];   /* per chunk: the scales of its two halves; lane c's offset term */
            for (int c = 0; c < 8; c++) {
                const __m256i p = q6k_pairs(tile, c);
                s_lo[c] = dup_lo16(p);
                s_hi[c] = dup_hi16(p);
                sub[c] = _mm256_slli_epi32(_mm256_madd_epi16(p, bsum_pair(bs, c)), 5);
            }
            /* lanes u and 4 + u over the 8 chunks at a time: two integer accumulators live */
#pragma GCC unroll 4
            for (int u = 0; u < 4; u++) {
                __m256i lu = _mm256_sub_epi32(_mm256_setzero_si256(), sub[u]);
                __m256i hu = _mm256_sub_epi32(_mm256_setzero_si256(), sub[4 + u]);
#pragma GCC unroll 8
                for (int c = 0; c < 8; c++) {
                    __m256i lo, hi;
                    q6k_unpack(tile + (WREN_Q6K_T_QS + WREN_Q6K_T_CHUNK * c) * TR, u, &lo, &hi);
                    lu = _mm256_add_epi32(lu, _mm256_madd_epi16(_mm256_maddubs_epi16(lo, bcast32(xs + 32 * c + 4 * u)),
                                                                s_lo[c]));
                    hu = _mm256_add_epi32(hu, _mm256_madd_epi16(
                        _mm256_maddubs_epi16(hi, bcast32(xs + 32 * c + 16 + 4 * u)), s_hi[c]));
                }
                acc[u] = _mm256_fmadd_ps(dd, _mm256_cvtepi32_ps(lu), acc[u]);
                acc[4 + u] = _mm256_fmadd_ps(dd, _mm256_cvtepi32_ps(hu), acc[4 + u]);
            }
        }
        const __m256 u = _mm256_add_ps(_mm256_add_ps(acc[4], acc[0]), _mm256_add_ps(acc[6], acc[2]));
        const __m256 v = _mm256_add_ps(_mm256_add_ps(acc[5], acc[1]), _mm256_add_ps(acc[7], acc[3]));
        store_rows(y + t * TR, _mm256_add_ps(u, v), n - t * TR);
    }
}

/* from 8 rows (the tiled kernel): one exact integer per row and super-block, so NR activation rows share each
 * unpacked weight vector */
AI void q6k_tiles_tiled(const uint8_t *w, int64_t n, int64_t k, int64_t t0, int64_t t1, const wren_act *a, int64_t i0,
                        const int NR, const int32_t *bsums, float *y, int64_t ldy) {
    const int64_t nsb = k / WREN_QK_SUPER, nb = k / WREN_QK;
    const size_t tb = wren_tile_bytes(WREN_Q6_K, TR);
    const uint8_t *tile = w + (size_t)(t0 * nsb) * tb;
    for (int64_t t = t0; t < t1; t++) {
        __m256 yv[4];
        for (int j = 0; j < NR; j++) yv[j] = _mm256_setzero_ps();
        for (int64_t sb = 0; sb < nsb; sb++, tile += tb) {
            __m256i tot[4];
            for (int j = 0; j < NR; j++) tot[j] = _mm256_setzero_si256();
            for (int c = 0; c < 8; c++) {
                const uint8_t *base = tile + (WREN_Q6K_T_QS + WREN_Q6K_T_CHUNK * c) * TR;
                const __m256i p = q6k_pairs(tile, c), s_lo = dup_lo16(p), s_hi = dup_hi16(p);
                for (int j = 0; j < NR; j++)
                    tot[j] = _mm256_sub_epi32(tot[j], _mm256_slli_epi32(
                        _mm256_madd_epi16(p, bsum_pair(bsums + (size_t)j * (k / 16) + 16 * sb, c)), 5));
#pragma GCC unroll 4
                for (int u = 0; u < 4; u++) {
                    __m256i lo, hi;
                    q6k_unpack(base, u, &lo, &hi);
#pragma GCC unroll 4
                    for (int j = 0; j < NR; j++) {
                        const int8_t *x = a->q + (i0 + j) * k + 256 * sb + 32 * c;
                        tot[j] = _mm256_add_epi32(tot[j], _mm256_add_epi32(
                            _mm256_madd_epi16(_mm256_maddubs_epi16(lo, bcast32(x + 4 * u)), s_lo),
                            _mm256_madd_epi16(_mm256_maddubs_epi16(hi, bcast32(x + 16 + 4 * u)), s_hi)));
                    }
                }
            }
            const __m256 dw = load_fp16x8(tile + WREN_Q6K_T_D * TR);
            for (int j = 0; j < NR; j++)
                yv[j] = _mm256_fmadd_ps(_mm256_mul_ps(dw, _mm256_cvtepi32_ps(tot[j])),
                                        _mm256_set1_ps(a->d[(i0 + j) * nb + 8 * sb]), yv[j]);
        }
        for (int j = 0; j < NR; j++) store_rows(y + (i0 + j) * ldy + t * TR, yv[j], n - t * TR);
    }
}

static void gemv_q4_k(const uint8_t *w, int64_t n, int64_t k, int64_t t0, int64_t t1, const wren_act *a, float *y) {
    q4k_tiles(0, w, n, k, t0, t1, a, 0, y);
}
static void gemv_q6_k(const uint8_t *w, int64_t n, int64_t k, int64_t t0, int64_t t1, const wren_act *a, float *y) {
    int32_t bsum[4096];         /* k / 16 sums, k <= 65536 (wren_check_weights) */
    q6k_bsums(a->q, k, bsum);
    q6k_tiles_lanes(w, n, k, t0, t1, a, 0, bsum, y);
}

/* GEMM: slabs of tiles that every activation row passes over; each row with the arithmetic llama.cpp gives a row of
 * its batch (Q4_K: whole groups of 4 rows the GEMM kernel's, the rest the GEMV's; Q6_K: the tiled kernel's from 8) */
static void gemm_q4_k(const uint8_t *w, int64_t n, int64_t k, int64_t t0, int64_t t1, const wren_act *a, float *y,
                      int64_t ldy) {
    for (int64_t s0 = t0; s0 < t1; s0 += 4) {
        const int64_t s1 = s0 + 4 < t1 ? s0 + 4 : t1;
        for (int64_t i = 0; i < a->m; i++) {
            if (i < a->m - a->m % 4) q4k_tiles(1, w, n, k, s0, s1, a, i, y + i * ldy);
            else q4k_tiles(0, w, n, k, s0, s1, a, i, y + i * ldy);
        }
    }
}
static void gemm_q6_k(const uint8_t *w, int64_t n, int64_t k, int64_t t0, int64_t t1, const wren_act *a, float *y,
                      int64_t ldy) {
    int32_t bsums[7 * 4096];    /* up to seven rows of k / 16 sums, k <= 65536 */
    if (a->m < 8) {
        for (int64_t i = 0; i < a->m; i++) q6k_bsums(a->q + i * k, k, bsums + (size_t)i * (k / 16));
        for (int64_t s0 = t0; s0 < t1; s0 += 4) {
            const int64_t s1 = s0 + 4 < t1 ? s0 + 4 : t1;
            for (int64_t i = 0; i < a->m; i++)
                q6k_tiles_lanes(w, n, k, s0, s1, a, i, bsums + (size_t)i * (k / 16), y + i * ldy);
        }
        return;
    }
    for (int64_t i = 0; i < a->m; i += 4) {
        const int nr = a->m - i < 4 ? (int)(a->m - i) : 4;
        for (int j = 0; j < nr; j++) q6k_bsums(a->q + (i + j) * k, k, bsums + (size_t)j * (k / 16));
        switch (nr) {
        case 4: q6k_tiles_tiled(w, n, k, t0, t1, a, i, 4, bsums, y, ldy); break;
        case 3: q6k_tiles_tiled(w, n, k, t0, t1, a, i, 3, bsums, y, ldy); break;
        case 2: q6k_tiles_tiled(w, n, k, t0, t1, a, i, 2, bsums, y, ldy); break;
        default: q6k_tiles_tiled(w, n, k, t0, t1, a, i, 1, bsums, y, ldy); break;
        }
    }
}

const wren_kernel_set wren_kernels_avx2 = {
    .name = "avx2",
    .rows = TR,
    .interleave = TI,
    .quantize_act = quantize_act_avx2,
    .gemv = {gemv_q4_0, gemv_q4_1, gemv_q8_0, gemv_q8_16, gemv_q4_k, gemv_q6_k},
    .gemm = {gemm_q4_0, gemm_q4_1, gemm_q8_0, gemm_q8_16, gemm_q4_k, gemm_q6_k},
};
#endif
