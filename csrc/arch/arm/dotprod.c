/* dotprod.c - Arm kernels with SDOT (armv8.2-a+dotprod: Cortex-A55, A76 and later).
 *
 * Layout (.rows = 4, .interleave = 4; tile sizes as in arm_common.h): tile (t, b) = rows 4t..4t+3 of block column b
 * at w + (t * (k / 32) + b) * wren_tile_bytes(fmt, 4) holds fp16 d[4]; (Q4_1 only: fp16 m[4]; Q8_16 only: the rows'
 * int8 pairs (sc[0], sc[1]), row r's at bytes 8 + 2r, 9 + 2r); then the quants, byte j of row r's plain quants at
 * qs[(j / 4) * 16 + r * 4 + j % 4]. So each 16-byte vector v holds plain bytes 4v..4v+3 of the 4 rows, one row per
 * 32-bit lane, and SDOT by element (vdotq_laneq_s32: the 4 activation bytes of one lane against every row's 4 bytes)
 * adds each row's 4 products to that row's own lane. 8 SDOT per block and activation row give the 4 row sums, with
 * no pairwise add:
 *   Q4_0 / Q4_1: 4 vectors; low nibbles of v = weights 4v..4v+3 (activation bytes 0..15, lane v), high nibbles =
 *                weights 16+4v..16+4v+3 (activation bytes 16..31, lane v).
 *   Q8_0, Q8_16: 8 vectors; vector v = weights 4v..4v+3 (activation vector v / 4, lane v % 4).
 * Q8_16: vectors 0..3 (weights 0..15, activation vector 0) and 4..7 (16..31, vector 1) go to two accumulators, lo and
 * hi, and the block sum sc0 lo + sc1 hi is a MUL and an MLA in int32 (exact: arm_common.h); per tile and activation
 * row 3 instructions more than Q8_0 (the second zeroing, MUL, MLA), and 4 per tile for the sc pairs.
 * Rows >= n are zero (scale 0, quants 0): kernels compute them and never store them.
 *
 * Q4_1 unpacks with AND 0x0f / USHR 4 (unsigned nibbles). Q4_0: u = byte ^ 0x88 holds q - 8 in 4-bit two's
 * complement per nibble, so u << 4 and u & 0xf0 are 16 (q - 8) as int8 and the sums 16 (isum - 8 sum_x), made exact
 * floats by SCVTF #4. Per block: (d_w d_x) * isum, plus for Q4_1 m_w * s_x (Q8_1's s).
 *
 * GEMM: activation rows 8 at a time (then the 1..7 left), each unpacked weight tile serving all of them. The rows'
 * block scales are gathered first into 4-row vectors (d_x; for Q4_1 also s_x), one LD1 per block. */
#if defined(__aarch64__)
#pragma GCC target("arch=armv8.2-a+dotprod")
/* GCC 12's scheduling before register allocation interleaves the 8 rows of the GEMM until they spill (137
 * instructions per block of 8 rows instead of 127); out-of-order cores reorder by themselves */
#pragma GCC optimize("no-schedule-insns")
#include <arm_neon.h>
#include "arm_common.h"


/* the 8 weight vectors of one tile's block, unpacked, into v, and its scales into d (and m; Q8_16: the rows' sc[0],
 * sc[1] into sc0, sc1); *p moves on */
WREN_ARM_INLINE void load_tile(const int fmt, const uint8_t **p, int8x16_t v[8], float32x4_t *d, float32x4_t *m,
                               int32x4_t *sc0, int32x4_t *sc1, const int plain_q4_0) {
    if (fmt == WREN_Q8_16) {        /* the quants as Q8_0's */
        *d = *m = wren_arm_ld_q8_16_head(p, sc0, sc1);
        const int8x16x4_t a = wren_arm_ld1x4(p), b = wren_arm_ld1x4(p);
#pragma GCC unroll 4
        for (int j = 0; j < 4; j++) v[j] = a.val[j], v[4 + j] = b.val[j];
        return;
    }
    if (fmt == WREN_Q4_1) {
        const float32x4x2_t dm = wren_arm_ld_f16x8(p);
        *d = dm.val[0];
        *m = dm.val[1];
    } else {
        *d = *m = wren_arm_ld_f16x4(p);
    }
    if (fmt == WREN_Q8_0) {
        const int8x16x4_t a = wren_arm_ld1x4(p), b = wren_arm_ld1x4(p);
#pragma GCC unroll 4
        for (int j = 0; j < 4; j++) v[j] = a.val[j], v[4 + j] = b.val[j];
    } else {
        const int8x16x4_t q = wren_arm_ld1x4(p);
#pragma GCC unroll 4
        for (int j = 0; j < 4; j++) {
            const uint8x16_t b = vreinterpretq_u8_s8(q.val[j]);
            if (fmt == WREN_Q4_0 && !plain_q4_0) {
                const uint8x16_t u = veorq_u8(b, vdupq_n_u8(0x88));
                v[j] = vreinterpretq_s8_u8(vshlq_n_u8(u, 4));
                v[4 + j] = vreinterpretq_s8_u8(vandq_u8(u, vdupq_n_u8(0xf0)));
            } else {
                v[j] = vreinterpretq_s8_u8(vandq_u8(b, vdupq_n_u8(0x0f)));
                v[4 + j] = vreinterpretq_s8_u8(vshrq_n_u8(b, 4));
            }
        }
    }
}

/* the 4 rows' block sums against one activation row's block x (as float: exact), starting from s0 (Q8_16: from 0,
 * each row's sum sc0 lo + sc1 hi) */
WREN_ARM_INLINE float32x4_t block_sums(const int fmt, const int8x16_t v[8], int8x16_t x0, int8x16_t x1, int32x4_t s0,
                                       int32x4_t sc0, int32x4_t sc1, const int plain_q4_0) {
    int32x4_t s = s0;
    s = vdotq_laneq_s32(s, v[0], x0, 0);
    s = vdotq_laneq_s32(s, v[1], x0, 1);
    s = vdotq_laneq_s32(s, v[2], x0, 2);
    s = vdotq_laneq_s32(s, v[3], x0, 3);
    if (fmt == WREN_Q8_16) {
        int32x4_t h = vdupq_n_s32(0);
        h = vdotq_laneq_s32(h, v[4], x1, 0);
        h = vdotq_laneq_s32(h, v[5], x1, 1);
        h = vdotq_laneq_s32(h, v[6], x1, 2);
        h = vdotq_laneq_s32(h, v[7], x1, 3);
        return vcvtq_f32_s32(vmlaq_s32(vmulq_s32(s, sc0), h, sc1));
    }
    s = vdotq_laneq_s32(s, v[4], x1, 0);
    s = vdotq_laneq_s32(s, v[5], x1, 1);
    s = vdotq_laneq_s32(s, v[6], x1, 2);
    s = vdotq_laneq_s32(s, v[7], x1, 3);
    return fmt == WREN_Q4_0 && !plain_q4_0 ? vcvtq_n_f32_s32(s, 4) : vcvtq_f32_s32(s);
}

/* acc += (d_w * dx[lane]) * fs (+ m_w * mx[lane] for Q4_1) */
#define ADD_BLOCK(fmt, acc, dw, mw, fs, dxv, mxv, lane)                                                            \
    do {                                                                                                           \
        (acc) = vfmaq_f32((acc), vmulq_laneq_f32((dw), (dxv), (lane)), (fs));                                      \
        if ((fmt) == WREN_Q4_1) (acc) = vfmaq_laneq_f32((acc), (mw), (mxv), (lane));                              \
    } while (0)

/* ---- GEMV: one activation row, NT tiles (1 or 2) per pass, over [t0, t1), (t1 - t0) % NT == 0. Q4_0 takes its
 * nibbles as they are and starts each block's sums at -8 sum_x (one LD1R and MUL per block for all the tiles, instead
 * of an EOR per weight vector). ---- */
WREN_ARM_INLINE void gemv_tiles(const int fmt, const uint8_t *w, int64_t n, int64_t k, int64_t t0, int64_t t1,
                                const wren_act *a, float *y, const int NT) {
    const int64_t nb = k / WREN_QK;
    const size_t tb = wren_tile_bytes(fmt, WREN_ARM_ROWS);
    const int32x4_t cm8 = wren_arm_opaque_s32(vdupq_n_s32(-8));
    for (int64_t t = t0; t < t1; t += NT) {
        const uint8_t *p[2];
        p[0] = w + (size_t)(t * nb) * tb;
        p[1] = p[0] + (size_t)nb * tb;
        const uint8_t *const end = p[1];
        const int8_t *xq = a->q;
        const float *xd = a->d;
        const int32_t *xs = a->sum;
        const float *xm = a->s;
        float32x4_t acc[2] = {vdupq_n_f32(0.0f), vdupq_n_f32(0.0f)};
        do {
            const int8x16x2_t x = wren_arm_ld1x2(&xq);
            const float32x4_t dx = wren_arm_ld_f32(&xd);
            float32x4_t mx = dx;
            int32x4_t s0 = vdupq_n_s32(0);
            if (fmt == WREN_Q4_1) mx = wren_arm_ld_f32(&xm);       /* Q8_1's s */
            if (fmt == WREN_Q4_0) s0 = vmulq_s32(wren_arm_ld1r_s32(&xs), cm8);
#pragma GCC unroll 2
            for (int j = 0; j < NT; j++) {
                int8x16_t v[8];
                float32x4_t dw, mw;
                int32x4_t sc0 = vdupq_n_s32(0), sc1 = vdupq_n_s32(0);
                load_tile(fmt, &p[j], v, &dw, &mw, &sc0, &sc1, 1);
                const float32x4_t fs = block_sums(fmt, v, x.val[0], x.val[1], s0, sc0, sc1, 1);
                ADD_BLOCK(fmt, acc[j], dw, mw, fs, dx, mx, 0);
            }
        } while (p[0] != end);
#pragma GCC unroll 2
        for (int j = 0; j < NT; j++) wren_arm_store_tile(y, (t + j) * WREN_ARM_ROWS, n, acc[j]);
    }
}

WREN_ARM_INLINE void gemv(const int fmt, const uint8_t *w, int64_t n, int64_t k, int64_t t0, int64_t t1,
                          const wren_act *a, float *y) {
    const int64_t t2 = t1 - (t1 - t0) % 2;
    if (t2 > t0) gemv_tiles(fmt, w, n, k, t0, t2, a, y, 2);
    if (t2 < t1) gemv_tiles(fmt, w, n, k, t2, t1, a, y, 1);
}

/* ---- GEMM ---- */

/* MR (1..8) activation rows from i0 against tiles [t0, t1), blocks [b0, b0 + nc) (sc: their gathered scales);
 * first: the outputs start at 0, otherwise at what y holds */
WREN_ARM_INLINE void gemm_rows(const int fmt, const uint8_t *w, int64_t n, int64_t k, int64_t t0, int64_t t1,
                               const wren_act *a, int64_t i0, const int MR, int64_t b0, int64_t nc, const float *sc,
                               int first, float *y, int64_t ldy) {
    const int64_t nb = k / WREN_QK;
    const size_t tb = wren_tile_bytes(fmt, WREN_ARM_ROWS);
    for (int64_t t = t0; t < t1; t++) {
        const uint8_t *p = w + (size_t)(t * nb + b0) * tb;
        const uint8_t *const end = p + (size_t)nc * tb;
        const int8_t *xq[8];
        const float *s = sc;
        float32x4_t acc[8];
#pragma GCC unroll 8
        for (int r = 0; r < MR; r++) {
            xq[r] = a->q + (i0 + r) * k + b0 * WREN_QK;
            acc[r] = first ? vdupq_n_f32(0.0f) : wren_arm_load_tile(y + (i0 + r) * ldy, t * WREN_ARM_ROWS, n);
        }
        do {
            int8x16_t v[8];
            float32x4_t dw, mw, dx[2], mx[2];
            int32x4_t sc0 = vdupq_n_s32(0), sc1 = vdupq_n_s32(0);
            load_tile(fmt, &p, v, &dw, &mw, &sc0, &sc1, 0);
            wren_arm_ld_scales(fmt, MR, &s, dx, mx);
#pragma GCC unroll 8
            for (int r = 0; r < MR; r++) {
                const int8x16x2_t x = wren_arm_ld1x2(&xq[r]);
                const float32x4_t fs = block_sums(fmt, v, x.val[0], x.val[1], vdupq_n_s32(0), sc0, sc1, 0);
                ADD_BLOCK(fmt, acc[r], dw, mw, fs, dx[r / 4], mx[r / 4], r % 4);
            }
        } while (p != end);
#pragma GCC unroll 8
        for (int r = 0; r < MR; r++) wren_arm_store_tile(y + (i0 + r) * ldy, t * WREN_ARM_ROWS, n, acc[r]);
    }
}

WREN_ARM_INLINE void gemm_group(const int fmt, const uint8_t *w, int64_t n, int64_t k, int64_t t0, int64_t t1,
                                const wren_act *a, int64_t i0, const int MR, float *y, int64_t ldy) {
    const int64_t nb = k / WREN_QK;
    float sc[WREN_ARM_CHUNK * 16];
    for (int64_t b0 = 0; b0 < nb; b0 += WREN_ARM_CHUNK) {
        const int64_t nc = nb - b0 < WREN_ARM_CHUNK ? nb - b0 : WREN_ARM_CHUNK;
        wren_arm_gather_scales(fmt, a, i0, MR, b0, nc, sc);
        gemm_rows(fmt, w, n, k, t0, t1, a, i0, MR, b0, nc, sc, b0 == 0, y, ldy);
    }
}

/* activation rows 8 at a time, then the rest together (a single row through the GEMV) */
WREN_ARM_INLINE void gemm(const int fmt, const uint8_t *w, int64_t n, int64_t k, int64_t t0, int64_t t1,
                          const wren_act *a, float *y, int64_t ldy) {
    int64_t i = 0;
    for (; i + 8 <= a->m; i += 8) gemm_group(fmt, w, n, k, t0, t1, a, i, 8, y, ldy);
    switch (a->m - i) {
    case 7: gemm_group(fmt, w, n, k, t0, t1, a, i, 7, y, ldy); break;
    case 6: gemm_group(fmt, w, n, k, t0, t1, a, i, 6, y, ldy); break;
    case 5: gemm_group(fmt, w, n, k, t0, t1, a, i, 5, y, ldy); break;
    case 4: gemm_group(fmt, w, n, k, t0, t1, a, i, 4, y, ldy); break;
    case 3: gemm_group(fmt, w, n, k, t0, t1, a, i, 3, y, ldy); break;
    case 2: gemm_group(fmt, w, n, k, t0, t1, a, i, 2, y, ldy); break;
    case 1: {
        const wren_act row = wren_arm_act_row(a, i);
        gemv(fmt, w, n, k, t0, t1, &row, y + i * ldy);
        break;
    }
    default: break;
    }
}

WREN_ENTRY_POINTS(gemv, gemm)

const wren_kernel_set wren_kernels_dotprod = {
    .name = "dotprod",
    .rows = WREN_ARM_ROWS,
    .interleave = 4,
    .quantize_act = wren_arm_quantize_act,
    .gemv = {gemv_q4_0, gemv_q4_1, gemv_q8_0, gemv_q8_16},
    .gemm = {gemm_q4_0, gemm_q4_1, gemm_q8_0, gemm_q8_16},
};
#endif
