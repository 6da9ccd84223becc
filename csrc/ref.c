/* ref.c - the scalar reference kernels: the definition every SIMD variant is checked against.
 *
 * For weight row w and activation row x, block b contributes (integers exact, then one float step):
 *   Q4_0: (d_w d_x) * (sum q_w q_x - 8 sum q_x)
 *   Q4_1: (d_w d_x) * sum q_w q_x + (m_w d_x) * sum q_x
 *   Q8_0: (d_w d_x) * sum q_w q_x
 *   Q8_16: (d_w d_x) * (sc_0 sum_{j<16} q_w q_x + sc_1 sum_{j>=16} q_w q_x)   (exact in int32: |.| < 2^26)
 * and the blocks are added in order. SIMD variants compute the same integers; only float rounding may differ. */
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
    case WREN_Q4_1: return (dw * dx) * (float)isum + (wren_fp16_to_f32(scales[rows + r]) * dx) * (float)sumx;
    default: return (dw * dx) * (float)isum;
    }
}

float wren_dot_tile_row_ref(int format, const uint8_t *w, int rows, int interleave, int64_t k, int r,
                            const wren_act *a, int64_t i) {
    const int64_t nb = k / WREN_QK;
    const size_t tb = wren_tile_bytes(format, rows);
    const int il = interleave > 0 ? interleave : wren_quant_bytes(format);
    const int8_t *xq = a->q + i * k;
    const float *xd = a->d + i * nb;
    const int32_t *xs = a->sum + i * nb;
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

#define REF_WRAPPERS(fmt, FMT)                                                                                       \
    static void gemv_ref_##fmt(const uint8_t *w, int64_t n, int64_t k, int64_t t0, int64_t t1, const wren_act *a, \
                               float *y) {                                                                           \
        gemv_ref(FMT, w, n, k, t0, t1, a, y);                                                                        \
    }                                                                                                                \
    static void gemm_ref_##fmt(const uint8_t *w, int64_t n, int64_t k, int64_t t0, int64_t t1, const wren_act *a, \
                               float *y, int64_t ldy) {                                                              \
        gemm_ref(FMT, w, n, k, t0, t1, a, y, ldy);                                                                   \
    }
REF_WRAPPERS(q4_0, WREN_Q4_0)
REF_WRAPPERS(q4_1, WREN_Q4_1)
REF_WRAPPERS(q8_0, WREN_Q8_0)
REF_WRAPPERS(q8_16, WREN_Q8_16)

const wren_kernel_set wren_kernels_ref = {
    .name = "reference",
    .rows = 1,
    .interleave = 0,
    .quantize_act = wren_quantize_act_row_ref,
    .gemv = {gemv_ref_q4_0, gemv_ref_q4_1, gemv_ref_q8_0, gemv_ref_q8_16},
    .gemm = {gemm_ref_q4_0, gemm_ref_q4_1, gemm_ref_q8_0, gemm_ref_q8_16},
};
