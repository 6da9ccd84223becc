/* neon.c - Arm kernels for plain armv8-a (cores without dotprod: Cortex-A53, A57, A72, A73): int8 dot products with
 * SMULL/SMLAL into int16 lanes, reduced with ADDP/SADDLP/SADALP. Also the activation quantizer all three Arm sets use.
 * Layout: arm_common.h. GEMV takes 2 tiles per pass (one activation load serves both); GEMM reuses each unpacked
 * weight vector for 4 activation rows (then 3, 2 or 1 for the rows left over). */
#if defined(__aarch64__)
#pragma GCC target("arch=armv8-a")
/* no pre-register-allocation scheduling: it hoists the LD4R of the next activation row above the last uses of the
 * previous one, and as LD4R needs 4 consecutive registers that costs moves and spills in the 4-row GEMM */
#pragma GCC optimize("no-schedule-insns")
#include <arm_neon.h>
#include <math.h>
#include "arm_common.h"

/* ---- activation quantization: bit-identical to wren_quantize_act_row_ref ----
 * amax by FMAXNM (exact, so the order of the maxima does not matter; the final max with 0 makes an all-NaN block
 * give 0 as fmaxf from 0 does), d and id by true divisions, q = FCVTNS(x * id) (ties to even, like lrintf). */
/* q = FCVTNS(x * id) for one block of 32 values (u: the first 16, v: the last 16); returns sum(q) */
static inline int32_t quantize_block(float32x4x4_t u, float32x4x4_t v, float id, int8_t *q) {
    const int32x4_t q0 = vcvtnq_s32_f32(vmulq_n_f32(u.val[0], id)), q1 = vcvtnq_s32_f32(vmulq_n_f32(u.val[1], id));
    const int32x4_t q2 = vcvtnq_s32_f32(vmulq_n_f32(u.val[2], id)), q3 = vcvtnq_s32_f32(vmulq_n_f32(u.val[3], id));
    const int32x4_t q4 = vcvtnq_s32_f32(vmulq_n_f32(v.val[0], id)), q5 = vcvtnq_s32_f32(vmulq_n_f32(v.val[1], id));
    const int32x4_t q6 = vcvtnq_s32_f32(vmulq_n_f32(v.val[2], id)), q7 = vcvtnq_s32_f32(vmulq_n_f32(v.val[3], id));
    /* |q| <= 127: the low halves are the values */
    const int16x8_t h0 = vuzp1q_s16(vreinterpretq_s16_s32(q0), vreinterpretq_s16_s32(q1));
    const int16x8_t h1 = vuzp1q_s16(vreinterpretq_s16_s32(q2), vreinterpretq_s16_s32(q3));
    const int16x8_t h2 = vuzp1q_s16(vreinterpretq_s16_s32(q4), vreinterpretq_s16_s32(q5));
    const int16x8_t h3 = vuzp1q_s16(vreinterpretq_s16_s32(q6), vreinterpretq_s16_s32(q7));
    int8x16x2_t out;
    out.val[0] = vuzp1q_s8(vreinterpretq_s8_s16(h0), vreinterpretq_s8_s16(h1));
    out.val[1] = vuzp1q_s8(vreinterpretq_s8_s16(h2), vreinterpretq_s8_s16(h3));
    vst1q_s8_x2(q, out);
    return vaddlvq_s16(vaddq_s16(vaddq_s16(h0, h1), vaddq_s16(h2, h3)));
}

void wren_arm_quantize_act(const float *x, int64_t k, int8_t *q, float *d, int32_t *sum, float *s) {
    const int64_t nb = k / WREN_QK;
    for (int64_t b = 0; b < nb; b++, x += WREN_QK, q += WREN_QK) {
        const float32x4x4_t u = vld1q_f32_x4(x), v = vld1q_f32_x4(x + 16);
        const float32x4_t m0 = vmaxnmq_f32(vabsq_f32(u.val[0]), vabsq_f32(u.val[1]));
        const float32x4_t m1 = vmaxnmq_f32(vabsq_f32(u.val[2]), vabsq_f32(u.val[3]));
        const float32x4_t m2 = vmaxnmq_f32(vabsq_f32(v.val[0]), vabsq_f32(v.val[1]));
        const float32x4_t m3 = vmaxnmq_f32(vabsq_f32(v.val[2]), vabsq_f32(v.val[3]));
        const float amax = fmaxf(vmaxnmvq_f32(vmaxnmq_f32(vmaxnmq_f32(m0, m1), vmaxnmq_f32(m2, m3))), 0.0f);
        const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
        d[b] = (float)(__fp16)(amax / 127.0f);     /* an fp16 scale, as the reference (Q8_0 semantics) */
        sum[b] = quantize_block(u, v, id, q);
        s[b] = (float)(__fp16)(amax / 127.0f * (float)sum[b]);
    }
}

/* Q8_K-style rows (wren_quantize_act_row_k_ref): one scale per 256 values; max|x| is exact in any order, and the
 * product x id is rounded to float before FCVTNS rounds it half to even, as in the reference. */
void wren_quantize_act_k_neon(const float *x, int64_t k, int8_t *q, float *d, int32_t *sum, float *s) {
    for (int64_t g = 0; g < k / WREN_QK_K; g++) {
        const float *xg = x + g * WREN_QK_K;
        float32x4_t m = vdupq_n_f32(0.0f);
        for (int j = 0; j < WREN_QK_K; j += 4) m = vmaxnmq_f32(m, vabsq_f32(vld1q_f32(xg + j)));
        const float amax = fmaxf(vmaxnmvq_f32(m), 0.0f);
        const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
        const float dg = amax != 0.0f ? 1.0f / id : 0.0f;
        for (int b = 0; b < WREN_QK_K / WREN_QK; b++) {
            const float *xb = xg + b * WREN_QK;
            const float32x4x4_t u = vld1q_f32_x4(xb), v = vld1q_f32_x4(xb + 16);
            d[g * (WREN_QK_K / WREN_QK) + b] = dg;
            sum[g * (WREN_QK_K / WREN_QK) + b] = quantize_block(u, v, id, q + g * WREN_QK_K + b * WREN_QK);
            s[g * (WREN_QK_K / WREN_QK) + b] = dg * (float)sum[g * (WREN_QK_K / WREN_QK) + b];
        }
    }
}

/* The kernels below take MR activation rows from i0 and NT tiles at a time over [t0, t1), (t1 - t0) % NT == 0;
 * (MR, NT) is (1..4, 1) or (1, 2). Per block: activation row 0, then tile j loaded, unpacked and used at once (so the
 * two tiles of the GEMV are not live together), then the other activation rows on the unpacked tile.
 *
 * 4-bit formats: row r's 32 products land in one int16x8 (SMULL + 3 SMLAL: 4 products per lane, |.| <= 4 * 15 * 127),
 * then ADDP, ADDP (16 products, <= 30480) and SADDLP give the 4 row sums in int32. Nibbles are unsigned; Q4_0
 * subtracts 8 sum_x (MLS). */
WREN_ARM_INLINE void q4_rows(const int fmt, const uint8_t *w, int64_t n, int64_t k, int64_t t0, int64_t t1,
                             const wren_act *a, int64_t i0, float *y, int64_t ldy, const int MR, const int NT) {
    const int64_t nb = k / WREN_QK;
    const size_t tb = wren_tile_bytes(fmt, WREN_ARM_ROWS);
    const uint8x16_t m4 = vdupq_n_u8(15);
    const int32x4_t c8 = vdupq_n_s32(8);
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
                /* groups 0..3 of the activation, each 8 bytes duplicated into both halves */
                const int8x16x4_t x = wren_arm_ld4r(&xq[r]);
                const int8x16_t x0 = x.val[0], x1 = x.val[1], x2 = x.val[2], x3 = x.val[3];
                const int8x8_t y0 = vget_low_s8(x0), y1 = vget_low_s8(x1), y2 = vget_low_s8(x2), y3 = vget_low_s8(x3);
                const float32x4_t dx = wren_arm_ld_f32(&xd[r]);
                int32x4_t sxv = vdupq_n_s32(0);
                float32x4_t sx = vdupq_n_f32(0.0f);
                if (fmt == WREN_Q4_0) sxv = wren_arm_ld1r_s32(&xs[r]);
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
                            lo[j][v] = vreinterpretq_s8_u8(vandq_u8(vreinterpretq_u8_s8(qv.val[v]), m4));
                            hi[j][v] = vreinterpretq_s8_u8(vshrq_n_u8(vreinterpretq_u8_s8(qv.val[v]), 4));
                        }
                    }
                    const int8x16_t *l = lo[j], *h = hi[j];
                    /* row 0: low halves of v0 (unit 0) and v2 (unit 1); row 1: high halves; rows 2, 3: v1, v3 */
                    int16x8_t p0 = vmull_s8(vget_low_s8(l[0]), y0);
                    int16x8_t p1 = vmull_high_s8(l[0], x0);
                    int16x8_t p2 = vmull_s8(vget_low_s8(l[1]), y0);
                    int16x8_t p3 = vmull_high_s8(l[1], x0);
                    p0 = vmlal_s8(p0, vget_low_s8(h[0]), y2);
                    p1 = vmlal_high_s8(p1, h[0], x2);
                    p2 = vmlal_s8(p2, vget_low_s8(h[1]), y2);
                    p3 = vmlal_high_s8(p3, h[1], x2);
                    p0 = vmlal_s8(p0, vget_low_s8(l[2]), y1);
                    p1 = vmlal_high_s8(p1, l[2], x1);
                    p2 = vmlal_s8(p2, vget_low_s8(l[3]), y1);
                    p3 = vmlal_high_s8(p3, l[3], x1);
                    p0 = vmlal_s8(p0, vget_low_s8(h[2]), y3);
                    p1 = vmlal_high_s8(p1, h[2], x3);
                    p2 = vmlal_s8(p2, vget_low_s8(h[3]), y3);
                    p3 = vmlal_high_s8(p3, h[3], x3);
                    int32x4_t isum = vpaddlq_s16(vpaddq_s16(vpaddq_s16(p0, p1), vpaddq_s16(p2, p3)));
                    if (fmt == WREN_Q4_0) isum = vmlsq_s32(isum, sxv, c8);
                    acc[r][j] = vfmaq_f32(acc[r][j], vmulq_laneq_f32(dw[j], dx, 0), vcvtq_f32_s32(isum));
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

/* Q8_0: products of two units per int16 lane (<= 2 * 128 * 127), widened with SADDLP + SADALP, then 3 ADDP.
 * Q8_16: units 0, 1 (weights 0..15) and 2, 3 (16..31) each widened with SADDLP and kept apart, 3 ADDP for each half
 * give the rows' lo and hi, and sc0 lo + sc1 hi is a MUL and an MLA in int32 (exact: arm_common.h); per tile and
 * activation row 5 instructions more than Q8_0 (3 ADDP, MUL, MLA), and 4 per tile for the sc pairs. */
/* Q8_16: the 4 rows' sums of one half of the block (weights 0..15: va..vd = v0..v3 against groups xa, xb = x0, x1;
 * 16..31: v4..v7 against x2, x3); rows 0, 1 then 2, 3, each pair's partial sums added at once so that few of them
 * are live together */
WREN_ARM_INLINE int32x4_t q8_half_sums(int8x16_t va, int8x16_t vb, int8x16_t vc, int8x16_t vd, int8x16_t xa,
                                       int8x16_t xb) {
    const int8x8_t ya = vget_low_s8(xa), yb = vget_low_s8(xb);
    int32x4_t l0 = vpaddlq_s16(vmlal_s8(vmull_s8(vget_low_s8(va), ya), vget_low_s8(vc), yb));
    int32x4_t l1 = vpaddlq_s16(vmlal_high_s8(vmull_high_s8(va, xa), vc, xb));
    const int32x4_t r01 = vpaddq_s32(l0, l1);
    l0 = vpaddlq_s16(vmlal_s8(vmull_s8(vget_low_s8(vb), ya), vget_low_s8(vd), yb));
    l1 = vpaddlq_s16(vmlal_high_s8(vmull_high_s8(vb, xa), vd, xb));
    return vpaddq_s32(r01, vpaddq_s32(l0, l1));
}

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
            int32x4_t sc0[2], sc1[2];
            int8x16x4_t wa[2], wb[2];
#pragma GCC unroll 4
            for (int r = 0; r < MR; r++) {
                const int8x16x4_t x = wren_arm_ld4r(&xq[r]);
                const int8x16_t x0 = x.val[0], x1 = x.val[1], x2 = x.val[2], x3 = x.val[3];
                const int8x8_t y0 = vget_low_s8(x0), y1 = vget_low_s8(x1), y2 = vget_low_s8(x2), y3 = vget_low_s8(x3);
                const float32x4_t dx = wren_arm_ld_f32(&xd[r]);
#pragma GCC unroll 2
                for (int j = 0; j < NT; j++) {
                    if (r == 0) {
                        if (fmt == WREN_Q8_16) dw[j] = wren_arm_ld_q8_16_head(&p[j], &sc0[j], &sc1[j]);
                        else dw[j] = wren_arm_ld_f16x4(&p[j]);
                        wa[j] = wren_arm_ld1x4(&p[j]);
                        wb[j] = wren_arm_ld1x4(&p[j]);
                    }
                    const int8x16_t v0 = wa[j].val[0], v1 = wa[j].val[1], v2 = wa[j].val[2], v3 = wa[j].val[3];
                    const int8x16_t v4 = wb[j].val[0], v5 = wb[j].val[1], v6 = wb[j].val[2], v7 = wb[j].val[3];
                    /* row 0: low halves of v0 v2 v4 v6; row 1: their high halves; rows 2, 3: v1 v3 v5 v7 */
                    int32x4_t isum;
                    if (fmt == WREN_Q8_16) {
                        /* rows 0, 1 then 2, 3: 4 partial sums each of weights 0..15 (lo), then of 16..31 (hi),
                         * paired at once so that few of them are live together */
                        const int32x4_t lo = q8_half_sums(v0, v1, v2, v3, x0, x1);
                        const int32x4_t hi = q8_half_sums(v4, v5, v6, v7, x2, x3);
                        isum = vmlaq_s32(vmulq_s32(lo, sc0[j]), hi, sc1[j]);
                    } else {
                        int32x4_t s0 = vpaddlq_s16(vmlal_s8(vmull_s8(vget_low_s8(v0), y0), vget_low_s8(v2), y1));
                        s0 = vpadalq_s16(s0, vmlal_s8(vmull_s8(vget_low_s8(v4), y2), vget_low_s8(v6), y3));
                        int32x4_t s1 = vpaddlq_s16(vmlal_high_s8(vmull_high_s8(v0, x0), v2, x1));
                        s1 = vpadalq_s16(s1, vmlal_high_s8(vmull_high_s8(v4, x2), v6, x3));
                        int32x4_t s2 = vpaddlq_s16(vmlal_s8(vmull_s8(vget_low_s8(v1), y0), vget_low_s8(v3), y1));
                        s2 = vpadalq_s16(s2, vmlal_s8(vmull_s8(vget_low_s8(v5), y2), vget_low_s8(v7), y3));
                        int32x4_t s3 = vpaddlq_s16(vmlal_high_s8(vmull_high_s8(v1, x0), v3, x1));
                        s3 = vpadalq_s16(s3, vmlal_high_s8(vmull_high_s8(v5, x2), v7, x3));
                        isum = vpaddq_s32(vpaddq_s32(s0, s1), vpaddq_s32(s2, s3));
                    }
                    acc[r][j] = vfmaq_f32(acc[r][j], vmulq_laneq_f32(dw[j], dx, 0), vcvtq_f32_s32(isum));
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
                          const wren_act *a, int64_t i0, float *y, int64_t ldy, const int MR, const int NT) {
    if (wren_is_q8(fmt)) q8_rows(fmt, w, n, k, t0, t1, a, i0, y, ldy, MR, NT);
    else q4_rows(fmt, w, n, k, t0, t1, a, i0, y, ldy, MR, NT);
}

/* one activation row: 2 tiles per pass, a last odd tile alone */
WREN_ARM_INLINE void gemv(const int fmt, const uint8_t *w, int64_t n, int64_t k, int64_t t0, int64_t t1,
                          const wren_act *a, float *y) {
    const int64_t t2 = t1 - (t1 - t0) % 2;
    if (t2 > t0) rows(fmt, w, n, k, t0, t2, a, 0, y, 0, 1, 2);
    if (t2 < t1) rows(fmt, w, n, k, t2, t1, a, 0, y, 0, 1, 1);
}

/* activation rows 4 at a time, then 3 or 2 together, or a last one through the GEMV */
WREN_ARM_INLINE void gemm(const int fmt, const uint8_t *w, int64_t n, int64_t k, int64_t t0, int64_t t1,
                          const wren_act *a, float *y, int64_t ldy) {
    int64_t i = 0;
    for (; i + 4 <= a->m; i += 4) rows(fmt, w, n, k, t0, t1, a, i, y, ldy, 4, 1);
    switch (a->m - i) {
    case 3: rows(fmt, w, n, k, t0, t1, a, i, y, ldy, 3, 1); break;
    case 2: rows(fmt, w, n, k, t0, t1, a, i, y, ldy, 2, 1); break;
    case 1: {
        const wren_act row = wren_arm_act_row(a, i);
        gemv(fmt, w, n, k, t0, t1, &row, y + i * ldy);
        break;
    }
    default: break;
    }
}

WREN_ENTRY_POINTS(gemv, gemm)

const wren_kernel_set wren_kernels_neon = {
    .name = "neon",
    .rows = WREN_ARM_ROWS,
    .interleave = WREN_ARM_IL,
    .quantize_act = wren_arm_quantize_act,
    .gemv = {gemv_q4_0, gemv_q4_1, gemv_q8_0, gemv_q8_16},
    .gemm = {gemm_q4_0, gemm_q4_1, gemm_q8_0, gemm_q8_16},
};
#endif
