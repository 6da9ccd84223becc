/* ref.c - the scalar reference kernels: the definition every SIMD variant is checked against.
 *
 * For weight row w and activation row x, block b contributes (integers exact, then one float step):
 *   Q4_0: (d_w d_x) * (sum q_w q_x - 8 sum q_x)
 *   Q8_16: (d_w d_x) * (sc_0 sum_{j<16} q_w q_x + sc_1 sum_{j>=16} q_w q_x)   (exact in int32: |.| < 2^26)
 * and the blocks are added in order. Q4_1 and Q8_0 add as llama.cpp does on x86 (ggml_vec_dot_q4_1_q8_1,
 * ggml_vec_dot_q8_0_q8_0 and tinyBLAS with AVX2), in 8 lanes: lane l takes the integer sum of the block's weights
 * 4l..4l+3 times its activations, by acc_l = fma(d_w d_x, (float)isum_l, acc_l), block after block; the result is
 *   hsum8(acc) = ((acc_0 + acc_4) + (acc_2 + acc_6)) + ((acc_1 + acc_5) + (acc_3 + acc_7)),
 * plus, for Q4_1, the min terms summed in order as fma(m_w, s_x, .) (s_x: the activations' fp16 d sum).
 * SIMD variants compute the same integers; the AVX2 set also gives these exact bits, the others may round
 * differently. */
#include <math.h>
#include "internal.h"

/* one block of one row inside a tile of `rows` rows interleaved by `il` bytes */
static inline int32_t tile_row_isum(int format, const uint8_t *tile, int rows, int il, int r, const int8_t *x) {
    const uint8_t *qs = tile + (size_t)rows * wren_scale_bytes(format);
    int32_t s = 0;
    if (format == WREN_Q8_0) {
        for (int j = 0; j < 32; j++) {
            const int8_t q = (int8_t)qs[(j / il) * rows * il + r * il + j % il];
            s += q * x[j];
        }
    } else if (format == WREN_Q8_16) {
        const int8_t *sc = (const int8_t *)tile + 2 * rows + 2 * r;
        for (int h = 0; h < 2; h++) {
            int32_t sh = 0;
            for (int j = 16 * h; j < 16 * h + 16; j++) {
                const int8_t q = (int8_t)qs[(j / il) * rows * il + r * il + j % il];
                sh += q * x[j];
            }
            s += sc[h] * sh;
        }
    } else {
        for (int j = 0; j < 16; j++) {
            const uint8_t q = qs[(j / il) * rows * il + r * il + j % il];
            s += (q & 15) * x[j] + (q >> 4) * x[j + 16];
        }
    }
    return s;
}

static inline float block_term(int format, const uint8_t *tile, int rows, int r, int32_t isum, float dx,
                               int32_t sumx) {
    const uint16_t *scales = (const uint16_t *)tile;
    const float dw = wren_fp16_to_f32(scales[r]);
    switch (format) {
    case WREN_Q4_0: return (dw * dx) * (float)(isum - 8 * sumx);
    default: return (dw * dx) * (float)isum;
    }
}

/* the integer sum of weights 4l..4l+3 of one row of a tile block times x */
static inline int32_t lane_isum(int format, const uint8_t *tile, int rows, int il, int r, const int8_t *x, int l) {
    const uint8_t *qs = tile + (size_t)rows * wren_scale_bytes(format);
    int32_t s = 0;
    for (int j = 4 * l; j < 4 * l + 4; j++) {
        if (format == WREN_Q8_0) {
            s += (int8_t)qs[(j / il) * rows * il + r * il + j % il] * x[j];
        } else {   /* Q4_1: weight j is the low nibble of plain byte j (j < 16) or the high one of byte j - 16 */
            const int byte = j % 16;
            const uint8_t q = qs[(byte / il) * rows * il + r * il + byte % il];
            s += (j < 16 ? q & 15 : q >> 4) * x[j];
        }
    }
    return s;
}

float wren_dot_tile_row_ref(int format, const uint8_t *w, int rows, int interleave, int64_t k, int r,
                            const wren_act *a, int64_t i) {
    const int64_t nb = k / WREN_QK;
    const size_t tb = wren_tile_bytes(format, rows);
    const int il = interleave > 0 ? interleave : wren_quant_bytes(format);
    const int8_t *xq = a->q + i * k;
    const float *xd = a->d + i * nb;
    const int32_t *xs = a->sum + i * nb;
    if (format == WREN_Q4_1 || format == WREN_Q8_0) {
        float acc[8] = {0}, mins = 0.0f;
        for (int64_t b = 0; b < nb; b++) {
            const uint8_t *tile = w + b * tb;
            const uint16_t *scales = (const uint16_t *)tile;
            const float dd = wren_fp16_to_f32(scales[r]) * xd[b];
            for (int l = 0; l < 8; l++)
                acc[l] = fmaf(dd, (float)lane_isum(format, tile, rows, il, r, xq + b * WREN_QK, l), acc[l]);
            if (format == WREN_Q4_1) mins = fmaf(wren_fp16_to_f32(scales[rows + r]), a->s[i * nb + b], mins);
        }
        const float h = wren_hsum8(acc);
        return format == WREN_Q4_1 ? h + mins : h;
    }
    float acc = 0.0f;
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *tile = w + b * tb;
        const int32_t isum = tile_row_isum(format, tile, rows, il, r, xq + b * WREN_QK);
        acc += block_term(format, tile, rows, r, isum, xd[b], xs[b]);
    }
    return acc;
}

static void gemm_ref(int format, const uint8_t *w, int64_t n, int64_t k, int64_t t0, int64_t t1, const wren_act *a,
                     float *y, int64_t ldy) {
    const size_t row_bytes = (size_t)(k / WREN_QK) * wren_tile_bytes(format, 1);
    for (int64_t i = 0; i < a->m; i++)
        for (int64_t r = t0; r < t1 && r < n; r++)
            y[i * ldy + r] = wren_dot_tile_row_ref(format, w + r * row_bytes, 1, 0, k, 0, a, i);
}

static void gemv_ref(int format, const uint8_t *w, int64_t n, int64_t k, int64_t t0, int64_t t1, const wren_act *a,
                     float *y) {
    const size_t row_bytes = (size_t)(k / WREN_QK) * wren_tile_bytes(format, 1);
    for (int64_t r = t0; r < t1 && r < n; r++) y[r] = wren_dot_tile_row_ref(format, w + r * row_bytes, 1, 0, k, 0, a, 0);
}

WREN_ENTRY_POINTS(gemv_ref, gemm_ref)

const wren_kernel_set wren_kernels_ref = {
    .name = "reference",
    .rows = 1,
    .interleave = 0,
    .quantize_act = wren_quantize_act_row_ref,
    .gemv = {gemv_q4_0, gemv_q4_1, gemv_q8_0, gemv_q8_16, wren_gemv_q4_k_ref, wren_gemv_q6_k_ref},
    .gemm = {gemm_q4_0, gemm_q4_1, gemm_q8_0, gemm_q8_16, wren_gemm_q4_k_ref, wren_gemm_q6_k_ref},
};
