/* kquant.c - GGUF's K-quant super-blocks kept as they are: Q4_K and Q6_K plain blocks are the file's bytes; packing
 * into tiles of R interleaved rows (formats.h); the reference products, whose arithmetic is llama.cpp's on x86 with
 * AVX2 (the build of the reference outputs), which the AVX2 kernels reproduce bit for bit.
 *
 * Activations come in llama.cpp's Q8_K: int8 with one fp32 scale d_x per 256 values (wren_quantize_act_k), sums of
 * each 32 in act->sum. Which arithmetic llama.cpp applies depends on how many activation rows m the product has:
 *
 * Q4_K (its repacked 8x8 kernels): per super-block the integers isum = sum_j sc_j (q . x)_j and imin = sum_j m_j
 *   sum_j(x) over the 8 sub-blocks j, then acc = fma((float)isum, d d_x, acc) and mins = fma((float)imin, dmin d_x,
 *   mins); y = acc - mins. Rows in whole groups of four (i < m - m % 4) take the GEMM kernel, which does the same per
 *   pair of sub-blocks (four fused steps per super-block) instead of per super-block.
 * Q6_K, m < 8 (ggml_vec_dot_q6_K_q8_K): 8 lanes; lane l of a super-block is the integer
 *   sum over the 8 chunks c of 32 weights of sc[2c + (l >= 4)] (q . x) over weights 32c + 4l .. 32c + 4l + 3 (q the
 *   unsigned 6-bit value), less 32 (sc[2l] bsum[2l] + sc[2l + 1] bsum[2l + 1]) (bsum: sums of 16 activations);
 *   acc_l = fma(d_x d, (float)lane_l, acc_l); y = hsum8(acc).
 * Q6_K, m >= 8 (the tiled kernel): S = sum_s sc_s ((q - 32) . x)_s over the super-block, exactly; y = fma(d (float)S,
 *   d_x, y) super-block after super-block. */
#include <math.h>
#include "internal.h"

typedef wren_block_q4_k kq4;
typedef wren_block_q6_k kq6;

/* ---- the weights of a plain block ---- */

static void pack_scales(const int sc[8], const int m[8], uint8_t *q) {
    for (int j = 0; j < 4; j++) {
        q[j] = (uint8_t)((sc[j] & 63) | ((sc[j + 4] >> 4) << 6));
        q[j + 4] = (uint8_t)((m[j] & 63) | ((m[j + 4] >> 4) << 6));
        q[j + 8] = (uint8_t)((sc[j + 4] & 15) | ((m[j + 4] & 15) << 4));
    }
}

/* 4-bit quant of weight w (0..255): sub-block 2p in the low nibbles of qs[32p ..], 2p + 1 in the high ones */
static inline int q4k_quant(const kq4 *b, int w) {
    const int j = w / 32, l = w % 32;
    const uint8_t v = b->qs[32 * (j / 2) + l];
    return j % 2 ? v >> 4 : v & 15;
}

/* the 256 unsigned 6-bit quants of a Q6_K block, in weight order */
static void q6k_quants(const kq6 *b, uint8_t *u) {
    int8_t q[256];
    wren_q6_k_quants(b, q);
    for (int j = 0; j < 256; j++) u[j] = (uint8_t)(q[j] + 32);
}

static void q6k_from_quants(const uint8_t *u, kq6 *b) {
    for (int h = 0; h < 2; h++) {
        const uint8_t *w = u + 128 * h;
        for (int l = 0; l < 32; l++) {
            b->ql[64 * h + l] = (uint8_t)((w[l] & 15) | ((w[l + 64] & 15) << 4));
            b->ql[64 * h + l + 32] = (uint8_t)((w[l + 32] & 15) | ((w[l + 96] & 15) << 4));
            b->qh[32 * h + l] = (uint8_t)((w[l] >> 4) | ((w[l + 32] >> 4) << 2) | ((w[l + 64] >> 4) << 4) |
                                          ((w[l + 96] >> 4) << 6));
        }
    }
}

/* ---- tiles ---- */

/* byte t (0..15) of a Q4_0-ordered 16-byte group, row r, in a run of 4-byte units interleaved over R rows */
static inline size_t unit_at(int rows, int r, int t) { return (size_t)(t / 4) * 4 * rows + (size_t)r * 4 + t % 4; }

void wren_super_tile_io(int format, int rows, uint8_t *tile, int r, uint8_t *blk, int pack) {
    const size_t R = (size_t)rows;
    if (format == WREN_Q4_K) {
        kq4 b;
        if (pack) memcpy(&b, blk, sizeof b);
        uint8_t *sc_t = tile + WREN_Q4K_T_SC * R, *m_t = tile + WREN_Q4K_T_M * R, *q_t = tile + WREN_Q4K_T_QS * R;
        int sc[8], m[8];
        if (pack) {
            memcpy(tile + WREN_Q4K_T_D * R + 2 * r, &b.d, 2);
            memcpy(tile + WREN_Q4K_T_DMIN * R + 2 * r, &b.dmin, 2);
            for (int j = 0; j < 8; j++) {
                wren_k_scale_min(j, b.scales, &sc[j], &m[j]);
                sc_t[j * R + r] = (uint8_t)sc[j];
                m_t[(j / 2) * 2 * R + 2 * r + j % 2] = (uint8_t)m[j];
                for (int t = 0; t < 16; t++)
                    q_t[j * WREN_Q4K_T_SUB * R + unit_at(rows, r, t)] =
                        (uint8_t)(q4k_quant(&b, 32 * j + t) | (q4k_quant(&b, 32 * j + t + 16) << 4));
            }
        } else {
            memcpy(&b.d, tile + WREN_Q4K_T_D * R + 2 * r, 2);
            memcpy(&b.dmin, tile + WREN_Q4K_T_DMIN * R + 2 * r, 2);
            for (int j = 0; j < 8; j++) {
                sc[j] = sc_t[j * R + r];
                m[j] = m_t[(j / 2) * 2 * R + 2 * r + j % 2];
                for (int t = 0; t < 16; t++) {
                    const uint8_t v = q_t[j * WREN_Q4K_T_SUB * R + unit_at(rows, r, t)];
                    const int lo = v & 15, hi = v >> 4;    /* weights t and t + 16 of sub-block j */
                    uint8_t *q0 = &b.qs[32 * (j / 2) + t], *q1 = &b.qs[32 * (j / 2) + t + 16];
                    if (j % 2) {
                        *q0 = (uint8_t)((*q0 & 15) | (lo << 4));
                        *q1 = (uint8_t)((*q1 & 15) | (hi << 4));
                    } else {
                        *q0 = (uint8_t)((*q0 & 0xf0) | lo);
                        *q1 = (uint8_t)((*q1 & 0xf0) | hi);
                    }
                }
            }
            pack_scales(sc, m, b.scales);
            memcpy(blk, &b, sizeof b);
        }
        return;
    }
    kq6 b;
    uint8_t u[256];
    int8_t *sc_t = (int8_t *)tile + WREN_Q6K_T_SC * R;  /* sub-block s = 2c + h of row r at 2 R c + 2 r + h */
    if (pack) {
        memcpy(&b, blk, sizeof b);
        q6k_quants(&b, u);
        memcpy(tile + WREN_Q6K_T_D * R + 2 * r, &b.d, 2);
        for (int s = 0; s < 16; s++) sc_t[(s / 2) * 2 * R + 2 * r + s % 2] = b.scales[s];
        for (int c = 0; c < 8; c++) {
            uint8_t *base = tile + WREN_Q6K_T_QS * R + (size_t)c * WREN_Q6K_T_CHUNK * R;
            const uint8_t *w = u + 32 * c;
            for (int t = 0; t < 16; t++) base[unit_at(rows, r, t)] = (uint8_t)((w[t] & 15) | ((w[t + 16] & 15) << 4));
            for (int t = 0; t < 4; t++) {
                uint8_t h0 = 0, h1 = 0;
                for (int v = 0; v < 4; v++) {
                    h0 |= (uint8_t)((w[4 * v + t] >> 4) << (2 * v));
                    h1 |= (uint8_t)((w[16 + 4 * v + t] >> 4) << (2 * v));
                }
                base[WREN_Q6K_T_H0 * R + (size_t)r * 4 + t] = h0;
                base[WREN_Q6K_T_H1 * R + (size_t)r * 4 + t] = h1;
            }
        }
    } else {
        memcpy(&b.d, tile + WREN_Q6K_T_D * R + 2 * r, 2);
        for (int s = 0; s < 16; s++) b.scales[s] = sc_t[(s / 2) * 2 * R + 2 * r + s % 2];
        for (int c = 0; c < 8; c++) {
            const uint8_t *base = tile + WREN_Q6K_T_QS * R + (size_t)c * WREN_Q6K_T_CHUNK * R;
            uint8_t *w = u + 32 * c;
            for (int t = 0; t < 16; t++) {
                const uint8_t v = base[unit_at(rows, r, t)];
                w[t] = v & 15;
                w[t + 16] = v >> 4;
            }
            for (int t = 0; t < 4; t++) {
                const uint8_t h0 = base[WREN_Q6K_T_H0 * R + (size_t)r * 4 + t], h1 = base[WREN_Q6K_T_H1 * R + (size_t)r * 4 + t];
                for (int v = 0; v < 4; v++) {
                    w[4 * v + t] |= (uint8_t)(((h0 >> (2 * v)) & 3) << 4);
                    w[16 + 4 * v + t] |= (uint8_t)(((h1 >> (2 * v)) & 3) << 4);
                }
            }
        }
        q6k_from_quants(u, &b);
        memcpy(blk, &b, sizeof b);
    }
}

/* ---- reference products ---- */

static float dot_q4_k(const uint8_t *w, int64_t nsb, const wren_act *a, int64_t i, int gemm) {
    const int64_t nb = a->k / WREN_QK;
    const int8_t *x = a->q + i * a->k;
    float acc = 0.0f, mins = 0.0f;
    for (int64_t sb = 0; sb < nsb; sb++) {
        kq4 b;
        memcpy(&b, w + sb * sizeof b, sizeof b);
        const float dx = a->d[i * nb + 8 * sb];
        const float dd = wren_fp16_to_f32(b.d) * dx, dm = wren_fp16_to_f32(b.dmin) * dx;
        int32_t isum = 0, imin = 0;
        for (int j = 0; j < 8; j++) {
            int sc, m;
            wren_k_scale_min(j, b.scales, &sc, &m);
            int32_t dot = 0;
            for (int l = 0; l < 32; l++) dot += q4k_quant(&b, 32 * j + l) * x[256 * sb + 32 * j + l];
            isum += sc * dot;
            imin += m * a->sum[i * nb + 8 * sb + j];
            if (gemm && j % 2) {            /* the GEMM kernel: one fused step per pair of sub-blocks */
                acc = fmaf((float)isum, dd, acc);
                mins = fmaf((float)imin, dm, mins);
                isum = imin = 0;
            }
        }
        if (!gemm) {
            acc = fmaf((float)isum, dd, acc);
            mins = fmaf((float)imin, dm, mins);
        }
    }
    return acc - mins;
}

static float dot_q6_k(const uint8_t *w, int64_t nsb, const wren_act *a, int64_t i, int tiled) {
    const int64_t nb = a->k / WREN_QK;
    const int8_t *xr = a->q + i * a->k;
    float acc[8] = {0}, y = 0.0f;
    for (int64_t sb = 0; sb < nsb; sb++) {
        kq6 b;
        memcpy(&b, w + sb * sizeof b, sizeof b);
        uint8_t u[256];
        q6k_quants(&b, u);
        const int8_t *x = xr + 256 * sb;
        const float dx = a->d[i * nb + 8 * sb], d = wren_fp16_to_f32(b.d);
        if (tiled) {
            int32_t s = 0;
            for (int j = 0; j < 256; j++) s += b.scales[j / 16] * (u[j] - 32) * x[j];
            y = fmaf(d * (float)s, dx, y);
            continue;
        }
        int32_t bsum[16];
        for (int s = 0; s < 16; s++) {
            bsum[s] = 0;
            for (int j = 0; j < 16; j++) bsum[s] += x[16 * s + j];
        }
        const float dd = dx * d;
        for (int l = 0; l < 8; l++) {
            int32_t lane = 0;
            for (int c = 0; c < 8; c++) {
                int32_t p = 0;
                for (int t = 0; t < 4; t++) p += u[32 * c + 4 * l + t] * x[32 * c + 4 * l + t];
                lane += b.scales[2 * c + (l >= 4)] * p;
            }
            lane -= 32 * (b.scales[2 * l] * bsum[2 * l] + b.scales[2 * l + 1] * bsum[2 * l + 1]);
            acc[l] = fmaf(dd, (float)lane, acc[l]);
        }
    }
    return tiled ? y : wren_hsum8(acc);
}

/* the arithmetic of activation row i of m (see the top of the file) */
static float dot_super(int format, const uint8_t *w, int64_t k, const wren_act *a, int64_t i) {
    const int64_t m = a->m;
    if (format == WREN_Q4_K) return dot_q4_k(w, k / WREN_QK_SUPER, a, i, i < m - m % 4);
    return dot_q6_k(w, k / WREN_QK_SUPER, a, i, m >= 8);
}

static void gemm_super(int format, const uint8_t *w, int64_t n, int64_t k, int64_t t0, int64_t t1,
                       const wren_act *a, float *y, int64_t ldy) {
    const size_t row_bytes = (size_t)(k / WREN_QK_SUPER) * wren_tile_bytes(format, 1);
    for (int64_t i = 0; i < a->m; i++)
        for (int64_t r = t0; r < t1 && r < n; r++) y[i * ldy + r] = dot_super(format, w + r * row_bytes, k, a, i);
}

void wren_gemv_q4_k_ref(const uint8_t *w, int64_t n, int64_t k, int64_t t0, int64_t t1, const wren_act *a, float *y) {
    gemm_super(WREN_Q4_K, w, n, k, t0, t1, a, y, 0);
}
void wren_gemm_q4_k_ref(const uint8_t *w, int64_t n, int64_t k, int64_t t0, int64_t t1, const wren_act *a, float *y,
                        int64_t ldy) {
    gemm_super(WREN_Q4_K, w, n, k, t0, t1, a, y, ldy);
}
void wren_gemv_q6_k_ref(const uint8_t *w, int64_t n, int64_t k, int64_t t0, int64_t t1, const wren_act *a, float *y) {
    gemm_super(WREN_Q6_K, w, n, k, t0, t1, a, y, 0);
}
void wren_gemm_q6_k_ref(const uint8_t *w, int64_t n, int64_t k, int64_t t0, int64_t t1, const wren_act *a, float *y,
                        int64_t ldy) {
    gemm_super(WREN_Q6_K, w, n, k, t0, t1, a, y, ldy);
}
