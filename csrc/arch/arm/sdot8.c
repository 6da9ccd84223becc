/* sdot8.c - the SDOT GEMV on arm_common.h's layout (rows interleaved by 8 bytes), for the i8mm set: SMMLA needs
 * that layout, and its GEMV (one activation row) and the odd last row of its GEMM are SDOT work. The dotprod set has
 * its own layout (dotprod.c).
 *
 * SDOT of a weight vector (rows 2p, 2p+1 of one 8-byte unit) with the matching 8 activation bytes duplicated into
 * both halves (LD4R {.2d} loads the 4 groups of a block at once) leaves lanes [row 2p: 2 partial sums, row 2p+1: 2];
 * one ADDP of the two row-pair accumulators gives the 4 row sums of the block. 2 tiles per pass (one activation load
 * and scale serve both; a last odd tile goes alone). */
#if defined(__aarch64__)
#pragma GCC target("arch=armv8.2-a+dotprod")
#include <arm_neon.h>
#include "arm_common.h"

/* The kernels below take MR activation rows from i0 and NT tiles at a time over [t0, t1), (t1 - t0) % NT == 0;
 * (MR, NT) is (1, 1) or (1, 2).
 *
 * 4-bit formats: nibbles unsigned (AND 0x0f, USHR 4). Q4_0's -8 sum_x starts the accumulators: both row-pair
 * accumulators begin at -4 sum_x in every lane, so after the ADDP each row sum is isum - 8 sum_x (LD1R + MUL + MOV in
 * place of 2 zeroings and a correction). */
WREN_ARM_INLINE void q4_rows(const int fmt, const uint8_t *w, int64_t n, int64_t k, int64_t t0, int64_t t1,
                             const wren_act *a, int64_t i0, float *y, int64_t ldy, const int MR, const int NT) {
    const int64_t nb = k / WREN_QK;
    const size_t tb = wren_tile_bytes(fmt, WREN_ARM_ROWS);
    const uint8x16_t m0f = vdupq_n_u8(0x0f);
    const int32x4_t cm4 = wren_arm_opaque_s32(vdupq_n_s32(-4));
    for (int64_t t = t0; t < t1; t += NT) {
        const uint8_t *p[2];
        p[0] = w + (size_t)(t * nb) * tb;
        p[1] = p[0] + (size_t)nb * tb;                 /* the next tile (NT = 2) */
        const uint8_t *const end = p[1];
        const int8_t *xq[4];
        const float *xd[4];
        const int32_t *xs[4];
        const float *xm[4];
        float32x4_t acc[4][2];
#pragma GCC unroll 4
        for (int r = 0; r < MR; r++) {
            xq[r] = a->q + (i0 + r) * k;
            xd[r] = a->d + (i0 + r) * nb;
            xs[r] = a->sum + (i0 + r) * nb;
            xm[r] = a->s + (i0 + r) * nb;
#pragma GCC unroll 2
            for (int j = 0; j < NT; j++) acc[r][j] = vdupq_n_f32(0.0f);
        }
        do {
            float32x4_t dw[2], mw[2];
            int8x16_t lo[2][4], hi[2][4];
#pragma GCC unroll 4
            for (int r = 0; r < MR; r++) {
                const int8x16x4_t x = wren_arm_ld4r(&xq[r]);
                const float32x4_t dx = wren_arm_ld_f32(&xd[r]);
                int32x4_t init = vdupq_n_s32(0);
                float32x4_t sx = vdupq_n_f32(0.0f);
                if (fmt == WREN_Q4_0) init = vmulq_s32(wren_arm_ld1r_s32(&xs[r]), cm4);
                else sx = wren_arm_ld_f32(&xm[r]);      /* Q8_1's s */
#pragma GCC unroll 2
                for (int j = 0; j < NT; j++) {
                    if (r == 0) {                      /* load and unpack tile j of this block */
                        if (fmt == WREN_Q4_1) {
                            const float32x4x2_t dm = wren_arm_ld_f16x8(&p[j]);
                            dw[j] = dm.val[0];
                            mw[j] = dm.val[1];
                        } else {
                            dw[j] = mw[j] = wren_arm_ld_f16x4(&p[j]);
                        }
                        const int8x16x4_t qv = wren_arm_ld1x4(&p[j]);
#pragma GCC unroll 4
                        for (int v = 0; v < 4; v++) {
                            lo[j][v] = vreinterpretq_s8_u8(vandq_u8(vreinterpretq_u8_s8(qv.val[v]), m0f));
                            hi[j][v] = vreinterpretq_s8_u8(vshrq_n_u8(vreinterpretq_u8_s8(qv.val[v]), 4));
                        }
                    }
                    int32x4_t s01 = init, s23 = init;
                    s01 = vdotq_s32(s01, lo[j][0], x.val[0]);   /* unit 0 low nibbles: group 0 */
                    s23 = vdotq_s32(s23, lo[j][1], x.val[0]);
                    s01 = vdotq_s32(s01, hi[j][0], x.val[2]);   /* unit 0 high nibbles: group 2 */
                    s23 = vdotq_s32(s23, hi[j][1], x.val[2]);
                    s01 = vdotq_s32(s01, lo[j][2], x.val[1]);   /* unit 1 low: group 1 */
                    s23 = vdotq_s32(s23, lo[j][3], x.val[1]);
                    s01 = vdotq_s32(s01, hi[j][2], x.val[3]);   /* unit 1 high: group 3 */
                    s23 = vdotq_s32(s23, hi[j][3], x.val[3]);
                    const float32x4_t fs = vcvtq_f32_s32(vpaddq_s32(s01, s23));
                    acc[r][j] = vfmaq_f32(acc[r][j], vmulq_laneq_f32(dw[j], dx, 0), fs);
                    /* m_w s_x: the order of the GEMMs (i8mm.c, dotprod.c) and of avx2.c, so that a
                     * prompt's batch and one token at a time round alike */
                    if (fmt == WREN_Q4_1) acc[r][j] = vfmaq_laneq_f32(acc[r][j], mw[j], sx, 0);
                }
            }
        } while (p[0] != end);
#pragma GCC unroll 4
        for (int r = 0; r < MR; r++)
#pragma GCC unroll 2
            for (int j = 0; j < NT; j++)
                wren_arm_store_tile(y + (i0 + r) * ldy, (t + j) * WREN_ARM_ROWS, n, acc[r][j]);
    }
}

/* Q8_0: the 8 weight vectors as they are. Q8_16: the same SDOT, and one ADDP more halfway through (units 0, 1 done)
 * takes the rows' lo, the sums of weights 0..15; the final ADDP gives lo + hi, and the block sum is
 * sc1 (lo + hi) + (sc0 - sc1) lo = sc0 lo + sc1 hi, a MUL and an MLA in int32: |sc1 (lo + hi)| <= 128 * 2^19 and
 * |(sc0 - sc1) lo| < 255 * 2^18, so every step is exact (arm_common.h). Per tile 3 instructions more than Q8_0
 * (ADDP, MUL, MLA) and 5 for the sc pairs (the head's 4 and a SUB). */
WREN_ARM_INLINE void q8_rows(const int fmt, const uint8_t *w, int64_t n, int64_t k, int64_t t0, int64_t t1,
                             const wren_act *a, int64_t i0, float *y, int64_t ldy, const int MR, const int NT) {
    const int64_t nb = k / WREN_QK;
    const size_t tb = wren_tile_bytes(fmt, WREN_ARM_ROWS);
    for (int64_t t = t0; t < t1; t += NT) {
        const uint8_t *p[2];
        p[0] = w + (size_t)(t * nb) * tb;
        p[1] = p[0] + (size_t)nb * tb;
        const uint8_t *const end = p[1];
        const int8_t *xq[4];
        const float *xd[4];
        float32x4_t acc[4][2];
#pragma GCC unroll 4
        for (int r = 0; r < MR; r++) {
            xq[r] = a->q + (i0 + r) * k;
            xd[r] = a->d + (i0 + r) * nb;
#pragma GCC unroll 2
            for (int j = 0; j < NT; j++) acc[r][j] = vdupq_n_f32(0.0f);
        }
        do {
            float32x4_t dw[2];
            int32x4_t dsc[2], sc1[2];         /* Q8_16: the rows' sc0 - sc1 and sc1 */
            int8x16x4_t wa[2], wb[2];
#pragma GCC unroll 4
            for (int r = 0; r < MR; r++) {
                const int8x16x4_t x = wren_arm_ld4r(&xq[r]);
                const float32x4_t dx = wren_arm_ld_f32(&xd[r]);
#pragma GCC unroll 2
                for (int j = 0; j < NT; j++) {
                    if (r == 0) {
                        if (fmt == WREN_Q8_16) {
                            int32x4_t sc0;
                            dw[j] = wren_arm_ld_q8_16_head(&p[j], &sc0, &sc1[j]);
                            dsc[j] = vsubq_s32(sc0, sc1[j]);
                        } else {
                            dw[j] = wren_arm_ld_f16x4(&p[j]);
                        }
                        wa[j] = wren_arm_ld1x4(&p[j]);
                        wb[j] = wren_arm_ld1x4(&p[j]);
                    }
                    int32x4_t s01 = vdupq_n_s32(0), s23 = vdupq_n_s32(0);
                    s01 = vdotq_s32(s01, wa[j].val[0], x.val[0]);
                    s23 = vdotq_s32(s23, wa[j].val[1], x.val[0]);
                    s01 = vdotq_s32(s01, wa[j].val[2], x.val[1]);
                    s23 = vdotq_s32(s23, wa[j].val[3], x.val[1]);
                    int32x4_t lo = vdupq_n_s32(0);
                    if (fmt == WREN_Q8_16) {
                        lo = vpaddq_s32(s01, s23);
                        /* no code: ties the SDOTs below to lo, so that the ADDP comes first and s01, s23 go on in
                         * place (scheduled after those SDOTs, it would cost a copy of each accumulator) */
                        __asm__("" : "+w"(s01), "+w"(s23), "+w"(lo));
                    }
                    s01 = vdotq_s32(s01, wb[j].val[0], x.val[2]);
                    s23 = vdotq_s32(s23, wb[j].val[1], x.val[2]);
                    s01 = vdotq_s32(s01, wb[j].val[2], x.val[3]);
                    s23 = vdotq_s32(s23, wb[j].val[3], x.val[3]);
                    int32x4_t isum = vpaddq_s32(s01, s23);
                    if (fmt == WREN_Q8_16) isum = vmlaq_s32(vmulq_s32(isum, sc1[j]), lo, dsc[j]);
                    const float32x4_t fs = vcvtq_f32_s32(isum);
                    acc[r][j] = vfmaq_f32(acc[r][j], vmulq_laneq_f32(dw[j], dx, 0), fs);
                }
            }
        } while (p[0] != end);
#pragma GCC unroll 4
        for (int r = 0; r < MR; r++)
#pragma GCC unroll 2
            for (int j = 0; j < NT; j++)
                wren_arm_store_tile(y + (i0 + r) * ldy, (t + j) * WREN_ARM_ROWS, n, acc[r][j]);
    }
}

/* ---- entry points ---- */
WREN_ARM_INLINE void rows(const int fmt, const uint8_t *w, int64_t n, int64_t k, int64_t t0, int64_t t1,
                          const wren_act *a, float *y, const int NT) {
    if (wren_is_q8(fmt)) q8_rows(fmt, w, n, k, t0, t1, a, 0, y, 0, 1, NT);
    else q4_rows(fmt, w, n, k, t0, t1, a, 0, y, 0, 1, NT);
}

/* one activation row: 2 tiles per pass, a last odd tile alone */
WREN_ARM_INLINE void gemv(const int fmt, const uint8_t *w, int64_t n, int64_t k, int64_t t0, int64_t t1,
                          const wren_act *a, float *y) {
    const int64_t t2 = t1 - (t1 - t0) % 2;
    if (t2 > t0) rows(fmt, w, n, k, t0, t2, a, y, 2);
    if (t2 < t1) rows(fmt, w, n, k, t2, t1, a, y, 1);
}

void wren_arm_sdot8_gemv_q4_0(const uint8_t *w, int64_t n, int64_t k, int64_t t0, int64_t t1, const wren_act *a,
                              float *y) {
    gemv(WREN_Q4_0, w, n, k, t0, t1, a, y);
}
void wren_arm_sdot8_gemv_q4_1(const uint8_t *w, int64_t n, int64_t k, int64_t t0, int64_t t1, const wren_act *a,
                              float *y) {
    gemv(WREN_Q4_1, w, n, k, t0, t1, a, y);
}
void wren_arm_sdot8_gemv_q8_0(const uint8_t *w, int64_t n, int64_t k, int64_t t0, int64_t t1, const wren_act *a,
                              float *y) {
    gemv(WREN_Q8_0, w, n, k, t0, t1, a, y);
}
void wren_arm_sdot8_gemv_q8_16(const uint8_t *w, int64_t n, int64_t k, int64_t t0, int64_t t1, const wren_act *a,
                               float *y) {
    gemv(WREN_Q8_16, w, n, k, t0, t1, a, y);
}
#endif
