/* i8mm.c - Arm kernels with SMMLA (armv8.6-a+i8mm: Cortex-A510/A710/X2, Neoverse V1/N2 and later).
 * Layout: arm_common.h.
 *
 * SMMLA multiplies a 2x8 int8 matrix by the transpose of another: with A = [act row i group g | act row i+1 group g]
 * and B = a weight vector (rows 2p, 2p+1 of the unit meeting group g) it adds the 2x2 block
 * [i.w2p, i.w2p+1, i+1.w2p, i+1.w2p+1] of dot products. Two LD4 (single structure, .d lanes 0 and 1) build the 4
 * A vectors of a pair; two accumulators (p = 0, 1) per pair, whose 64-bit halves ZIP1/ZIP2 regroup into row i's and
 * row i+1's 4 sums. The GEMM takes activation rows 8 at a time (4 pairs, each unpacked weight tile serving all of
 * them; the rows' block scales gathered first, as in dotprod.c), then the pairs left together, and an odd last row
 * goes to the SDOT GEMV of sdot8.c, which is also this set's GEMV (SMMLA would waste half its work on one row).
 *
 * Q8_16: each SMMLA covers 8 bytes of K, so groups 0, 1 (weights 0..15) are the first 2 of each accumulator's 4; a
 * ZIP1/ZIP2 pair taken there gives the rows' lo, the last gives lo + hi, and the block sum is
 * sc1 (lo + hi) + (sc0 - sc1) lo = sc0 lo + sc1 hi, a MUL and an MLA in int32, exact as in sdot8.c (arm_common.h).
 * Per activation pair and tile 6 instructions more than Q8_0 (2 ZIP, 2 MUL, 2 MLA), and 5 per tile for the sc pairs. */
#if defined(__aarch64__)
#pragma GCC target("arch=armv8.6-a+i8mm")
#pragma GCC optimize("no-schedule-insns")     /* as in dotprod.c: keeps the 8-row GEMM from spilling */
#include <arm_neon.h>
#include "arm_common.h"

/* groups 0..3 of act rows (i, i+1) of one block, paired: vector g = [row i bytes 8g..8g+7 | row i+1 bytes 8g..8g+7].
 * LD4 (single structure, 64-bit elements) puts the 4 groups of a row in one lane of 4 consecutive registers, so two
 * of them build the 4 pairs; *pa += 32, *pb += 32. */
WREN_ARM_INLINE int8x16x4_t act_pair(const int8_t **pa, const int8_t **pb) {
    int8x16x4_t g;
    __asm__("ld4 {%S0.d - %V0.d}[0], [%1], #32\n\t"
            "ld4 {%S0.d - %V0.d}[1], [%2], #32"
            : "=w"(g), "+r"(*pa), "+r"(*pb)
            : WREN_ARM_MEM(*pa, 32), WREN_ARM_MEM(*pb, 32));
    return g;
}

/* fmt: Q4_0, Q4_1, Q8_0 or Q8_16; MP activation pairs (1..4) starting at act row i0, tiles [t0, t1), blocks
 * [b0, b0 + nc) (sc: the rows' gathered scales); first: the outputs start at 0, otherwise at what y holds */
WREN_ARM_INLINE void pair_rows(const int fmt, const uint8_t *w, int64_t n, int64_t k, int64_t t0, int64_t t1,
                               const wren_act *a, int64_t i0, const int MP, int64_t b0, int64_t nc, const float *sc,
                               int first, float *y, int64_t ldy) {
    const int64_t nb = k / WREN_QK;
    const size_t tb = wren_tile_bytes(fmt, WREN_ARM_ROWS);
    const int MR = 2 * MP;
    for (int64_t t = t0; t < t1; t++) {
        const uint8_t *p = w + (size_t)(t * nb + b0) * tb, *const end = p + (size_t)nc * tb;
        const int8_t *xq[8];
        const float *s = sc;
        float32x4_t acc[8];
#pragma GCC unroll 8
        for (int r = 0; r < MR; r++) {
            xq[r] = a->q + (i0 + r) * k + b0 * WREN_QK;
            acc[r] = first ? vdupq_n_f32(0.0f) : wren_arm_load_tile(y + (i0 + r) * ldy, t * WREN_ARM_ROWS, n);
        }
        do {
            float32x4_t dw, mw, dx[2], mx[2];
            int32x4_t dsc = vdupq_n_s32(0), sc1 = vdupq_n_s32(0);    /* Q8_16: the rows' sc0 - sc1 and sc1 */
            if (fmt == WREN_Q8_16) {
                int32x4_t sc0;
                dw = mw = wren_arm_ld_q8_16_head(&p, &sc0, &sc1);
                dsc = vsubq_s32(sc0, sc1);
            } else if (fmt == WREN_Q4_1) {
                const float32x4x2_t dm = wren_arm_ld_f16x8(&p);
                dw = dm.val[0];
                mw = dm.val[1];
            } else {
                dw = mw = wren_arm_ld_f16x4(&p);
            }
            /* wv[g][p]: the weight vector of row pair p that meets activation group g */
            int8x16_t wv[4][2];
            if (wren_is_q8(fmt)) {
                const int8x16x4_t wa = wren_arm_ld1x4(&p), wb = wren_arm_ld1x4(&p);
                wv[0][0] = wa.val[0], wv[0][1] = wa.val[1], wv[1][0] = wa.val[2], wv[1][1] = wa.val[3];
                wv[2][0] = wb.val[0], wv[2][1] = wb.val[1], wv[3][0] = wb.val[2], wv[3][1] = wb.val[3];
            } else {
                /* Q4_0: u = byte ^ 0x88 holds q - 8 in 4-bit two's complement per nibble; u << 4 and u & 0xf0 are
                 * 16 (q - 8) as int8, so the sums are 16 (isum - 8 sum_x), made exact floats by SCVTF #4.
                 * Q4_1: unsigned nibbles. */
                const int8x16x4_t qv = wren_arm_ld1x4(&p);
#pragma GCC unroll 4
                for (int v = 0; v < 4; v++) {
                    const int c = v / 2, pr = v % 2;
                    const uint8x16_t q = vreinterpretq_u8_s8(qv.val[v]);
                    if (fmt == WREN_Q4_0) {
                        const uint8x16_t u = veorq_u8(q, vdupq_n_u8(0x88));
                        wv[c][pr] = vreinterpretq_s8_u8(vshlq_n_u8(u, 4));
                        wv[2 + c][pr] = vreinterpretq_s8_u8(vandq_u8(u, vdupq_n_u8(0xf0)));
                    } else {
                        wv[c][pr] = vreinterpretq_s8_u8(vandq_u8(q, vdupq_n_u8(0x0f)));
                        wv[2 + c][pr] = vreinterpretq_s8_u8(vshrq_n_u8(q, 4));
                    }
                }
            }
            wren_arm_ld_scales(fmt, MR, &s, dx, mx);
#pragma GCC unroll 4
            for (int ip = 0; ip < MP; ip++) {
                const int8x16x4_t g = act_pair(&xq[2 * ip], &xq[2 * ip + 1]);
                int32x4_t c0 = vdupq_n_s32(0), c1 = vdupq_n_s32(0);
                c0 = vmmlaq_s32(c0, g.val[0], wv[0][0]);
                c1 = vmmlaq_s32(c1, g.val[0], wv[0][1]);
                c0 = vmmlaq_s32(c0, g.val[1], wv[1][0]);
                c1 = vmmlaq_s32(c1, g.val[1], wv[1][1]);
                int32x4_t lo[2] = {vdupq_n_s32(0), vdupq_n_s32(0)};
                if (fmt == WREN_Q8_16) {
                    lo[0] = vreinterpretq_s32_s64(vzip1q_s64(vreinterpretq_s64_s32(c0), vreinterpretq_s64_s32(c1)));
                    lo[1] = vreinterpretq_s32_s64(vzip2q_s64(vreinterpretq_s64_s32(c0), vreinterpretq_s64_s32(c1)));
                    /* no code: the SMMLA below go on from c0, c1 after both ZIP, in place (else: a copy of each) */
                    __asm__("" : "+w"(c0), "+w"(c1), "+w"(lo[0]), "+w"(lo[1]));
                }
                c0 = vmmlaq_s32(c0, g.val[2], wv[2][0]);
                c1 = vmmlaq_s32(c1, g.val[2], wv[2][1]);
                c0 = vmmlaq_s32(c0, g.val[3], wv[3][0]);
                c1 = vmmlaq_s32(c1, g.val[3], wv[3][1]);
                int32x4_t is[2];
                is[0] = vreinterpretq_s32_s64(vzip1q_s64(vreinterpretq_s64_s32(c0), vreinterpretq_s64_s32(c1)));
                is[1] = vreinterpretq_s32_s64(vzip2q_s64(vreinterpretq_s64_s32(c0), vreinterpretq_s64_s32(c1)));
#pragma GCC unroll 2
                for (int h = 0; h < 2; h++) {
                    const int r = 2 * ip + h;
                    if (fmt == WREN_Q8_16) is[h] = vmlaq_s32(vmulq_s32(is[h], sc1), lo[h], dsc);
                    const float32x4_t fs = fmt == WREN_Q4_0 ? vcvtq_n_f32_s32(is[h], 4) : vcvtq_f32_s32(is[h]);
                    acc[r] = vfmaq_f32(acc[r], vmulq_laneq_f32(dw, dx[r / 4], r % 4), fs);
                    if (fmt == WREN_Q4_1) acc[r] = vfmaq_laneq_f32(acc[r], mw, mx[r / 4], r % 4);
                }
            }
        } while (p != end);
#pragma GCC unroll 8
        for (int r = 0; r < MR; r++) wren_arm_store_tile(y + (i0 + r) * ldy, t * WREN_ARM_ROWS, n, acc[r]);
    }
}

WREN_ARM_INLINE void pair_group(const int fmt, const uint8_t *w, int64_t n, int64_t k, int64_t t0, int64_t t1,
                                const wren_act *a, int64_t i0, const int MP, float *y, int64_t ldy) {
    const int64_t nb = k / WREN_QK;
    float sc[WREN_ARM_CHUNK * 16];
    for (int64_t b0 = 0; b0 < nb; b0 += WREN_ARM_CHUNK) {
        const int64_t nc = nb - b0 < WREN_ARM_CHUNK ? nb - b0 : WREN_ARM_CHUNK;
        wren_arm_gather_scales(fmt, a, i0, 2 * MP, b0, nc, sc);
        pair_rows(fmt, w, n, k, t0, t1, a, i0, MP, b0, nc, sc, b0 == 0, y, ldy);
    }
}

/* activation rows 8 at a time (4 pairs), then the pairs left together, and an odd last row through the GEMV */
WREN_ARM_INLINE void gemm(const int fmt, const uint8_t *w, int64_t n, int64_t k, int64_t t0, int64_t t1,
                          const wren_act *a, float *y, int64_t ldy) {
    int64_t i = 0;
    for (; i + 8 <= a->m; i += 8) pair_group(fmt, w, n, k, t0, t1, a, i, 4, y, ldy);
    switch ((a->m - i) / 2) {
    case 3: pair_group(fmt, w, n, k, t0, t1, a, i, 3, y, ldy); break;
    case 2: pair_group(fmt, w, n, k, t0, t1, a, i, 2, y, ldy); break;
    case 1: pair_group(fmt, w, n, k, t0, t1, a, i, 1, y, ldy); break;
    default: break;
    }
    i += (a->m - i) / 2 * 2;
    if (i < a->m) {
        const wren_act row = wren_arm_act_row(a, i);
        if (fmt == WREN_Q4_0) wren_arm_sdot8_gemv_q4_0(w, n, k, t0, t1, &row, y + i * ldy);
        else if (fmt == WREN_Q4_1) wren_arm_sdot8_gemv_q4_1(w, n, k, t0, t1, &row, y + i * ldy);
        else if (fmt == WREN_Q8_0) wren_arm_sdot8_gemv_q8_0(w, n, k, t0, t1, &row, y + i * ldy);
        else wren_arm_sdot8_gemv_q8_16(w, n, k, t0, t1, &row, y + i * ldy);
    }
}

WREN_GEMM_ENTRY(gemm_q4_0, gemm, WREN_Q4_0)
WREN_GEMM_ENTRY(gemm_q4_1, gemm, WREN_Q4_1)
WREN_GEMM_ENTRY(gemm_q8_0, gemm, WREN_Q8_0)
WREN_GEMM_ENTRY(gemm_q8_16, gemm, WREN_Q8_16)

const wren_kernel_set wren_kernels_i8mm = {
    .name = "i8mm",
    .rows = WREN_ARM_ROWS,
    .interleave = WREN_ARM_IL,
    .quantize_act = wren_arm_quantize_act,
    .gemv = {wren_arm_sdot8_gemv_q4_0, wren_arm_sdot8_gemv_q4_1, wren_arm_sdot8_gemv_q8_0, wren_arm_sdot8_gemv_q8_16},
    .gemm = {gemm_q4_0, gemm_q4_1, gemm_q8_0, gemm_q8_16},
};
#endif
