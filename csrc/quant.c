/* quant.c - the weight formats: reference quantization, packing into SIMD tiles, activation quantization. */
#include <math.h>
#include <stdlib.h>
#include "internal.h"

/* A product x * id is rounded to float before it is rounded to an integer, as the SIMD quantizers do: no FMA may
 * fuse it into round_even's addition (GCC contracts by default where the target has FMA, e.g. aarch64). */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("fp-contract=off")
#elif defined(__clang__)
#pragma clang fp contract(off)
#endif

/* round half to even for |x| < 2^22 in the default rounding mode, as cvtps2dq and FCVTNS do; inline, unlike lrintf.
 * Anything else (NaN, inf, |x| >= 2^22: only from non-finite activations or weights, or a scale of inf) is first
 * clamped to +-2^22 (NaN to 0), so that the conversion is defined and 32 such values still sum within an int; an
 * x in range goes through unchanged. */
static inline int round_even(float x) {
    const float magic = 12582912.0f;   /* 1.5 * 2^23: adding it leaves the rounded integer in the low bits */
    const float big = 4194304.0f;      /* 2^22 */
    if (!(fabsf(x) < big)) x = x > 0.0f ? big : x < 0.0f ? -big : 0.0f;
    return (int)((x + magic) - magic);
}

/* the largest |x| of a block (NaN never wins a comparison): eight running maxima, which vectorize, then their
 * maximum; as max is order-free on non-NaN values, the same value as one running maximum */
static inline float max_abs32(const float *x) {
    float m[8] = {0};
    for (int j = 0; j < WREN_QK; j += 8)
        for (int l = 0; l < 8; l++) {
            const float a = fabsf(x[j + l]);
            m[l] = a > m[l] ? a : m[l];
        }
    for (int w = 4; w > 0; w /= 2)
        for (int l = 0; l < w; l++) m[l] = m[l + w] > m[l] ? m[l + w] : m[l];
    return m[0];
}

/* n_rows x k of a plain format, or 0 when the shape is invalid or the size overflows */
static size_t plain_bytes(int format, int64_t n_rows, int64_t k) {
    if (!wren_format_ok(format) || n_rows <= 0 || k <= 0 || k % wren_block_qk(format)) return 0;
    const int64_t per_row = k / wren_block_qk(format);
    uint64_t blocks = (uint64_t)n_rows * (uint64_t)per_row;
    if (blocks / (uint64_t)n_rows != (uint64_t)per_row || blocks > SIZE_MAX / 256) return 0;
    return (size_t)blocks * (size_t)wren_formats[format].block_bytes;
}

static int check_shape(int format, int64_t n_rows, int64_t k) {
    if (!wren_format_ok(format)) return WREN_E_FORMAT;
    if (n_rows <= 0 || k <= 0 || k % wren_block_qk(format) || plain_bytes(format, n_rows, k) == 0)
        return WREN_E_SHAPE;
    return WREN_OK;
}

/* ---- reference quantization of one block, and back (the table's codecs, formats.h) ---- */

/* (int)v clamped to 0..15, the float compared first so that NaN (to 0) and huge values never meet the conversion */
static inline int nibble(float v) { return v >= 15.0f ? 15 : v > 0.0f ? (int)v : 0; }

void wren_quantize_block_q4_0(const float *x, uint8_t *blk) {
    wren_block_q4_0 *b = (wren_block_q4_0 *)blk;
    float amax = 0.0f, max = 0.0f;                  /* the value of largest magnitude, with its sign */
    for (int j = 0; j < WREN_QK; j++) {
        if (fabsf(x[j]) > amax) { amax = fabsf(x[j]); max = x[j]; }
    }
    const float d = max / -8.0f;                    /* that value maps to q = 0, i.e. -8 d */
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    b->d = wren_f32_to_fp16(d);
    for (int j = 0; j < 16; j++) {
        const int lo = nibble(x[j] * id + 8.5f), hi = nibble(x[j + 16] * id + 8.5f);
        b->qs[j] = (uint8_t)(lo | (hi << 4));
    }
}

void wren_quantize_block_q4_1(const float *x, uint8_t *blk) {
    wren_block_q4_1 *b = (wren_block_q4_1 *)blk;
    float min = x[0], max = x[0];
    for (int j = 1; j < WREN_QK; j++) {
        if (x[j] < min) min = x[j];
        if (x[j] > max) max = x[j];
    }
    const float d = (max - min) / 15.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    b->d = wren_f32_to_fp16(d);
    b->m = wren_f32_to_fp16(min);
    for (int j = 0; j < 16; j++) {
        const int lo = nibble((x[j] - min) * id + 0.5f), hi = nibble((x[j + 16] - min) * id + 0.5f);
        b->qs[j] = (uint8_t)(lo | (hi << 4));
    }
}

void wren_quantize_block_q8_0(const float *x, uint8_t *blk) {
    wren_block_q8_0 *b = (wren_block_q8_0 *)blk;
    const float amax = max_abs32(x);
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    b->d = wren_f32_to_fp16(d);
    for (int j = 0; j < WREN_QK; j++) b->qs[j] = (int8_t)round_even(x[j] * id);
}

/* Q8_16 from floats (the models' Q6_K load exactly through wren_q6_k_to_q8_16 instead): d = max|x| / 127^2 in fp16,
 * each half's scale sc = max|x_half| / (127 d) rounded (at most 127), q = x / (d sc) rounded. A block whose d rounds
 * to 0 in fp16 (max|x| below about 1e-3) becomes zeros, and a small d loses precision as an fp16 subnormal, as
 * Q6_K's own d does. */
void wren_quantize_block_q8_16(const float *x, uint8_t *blk) {
    wren_block_q8_16 *b = (wren_block_q8_16 *)blk;
    float ah[2];
    for (int h = 0; h < 2; h++) {
        ah[h] = 0.0f;
        for (int j = 0; j < 16; j++) ah[h] = fabsf(x[16 * h + j]) > ah[h] ? fabsf(x[16 * h + j]) : ah[h];
    }
    const float amax = ah[0] > ah[1] ? ah[0] : ah[1];
    b->d = wren_f32_to_fp16(amax / (127.0f * 127.0f));
    const float d = wren_fp16_to_f32(b->d);
    for (int h = 0; h < 2; h++) {
        int sc = d > 0.0f ? round_even(ah[h] / (127.0f * d)) : 0;
        sc = sc > 127 ? 127 : sc;
        b->sc[h] = (int8_t)sc;
        const float id = sc > 0 ? 1.0f / (d * (float)sc) : 0.0f;
        for (int j = 0; j < 16; j++) {
            int q = round_even(x[16 * h + j] * id);
            b->qs[16 * h + j] = (int8_t)(q > 127 ? 127 : q < -127 ? -127 : q);
        }
    }
}

void wren_dequantize_block_q4_0(const uint8_t *blk, float *y) {
    const wren_block_q4_0 *b = (const wren_block_q4_0 *)blk;
    const float d = wren_fp16_to_f32(b->d);
    for (int j = 0; j < 16; j++) {
        y[j] = (float)((b->qs[j] & 15) - 8) * d;
        y[j + 16] = (float)((b->qs[j] >> 4) - 8) * d;
    }
}

void wren_dequantize_block_q4_1(const uint8_t *blk, float *y) {
    const wren_block_q4_1 *b = (const wren_block_q4_1 *)blk;
    const float d = wren_fp16_to_f32(b->d), m = wren_fp16_to_f32(b->m);
    for (int j = 0; j < 16; j++) {
        y[j] = (float)(b->qs[j] & 15) * d + m;
        y[j + 16] = (float)(b->qs[j] >> 4) * d + m;
    }
}

void wren_dequantize_block_q8_0(const uint8_t *blk, float *y) {
    const wren_block_q8_0 *b = (const wren_block_q8_0 *)blk;
    const float d = wren_fp16_to_f32(b->d);
    for (int j = 0; j < WREN_QK; j++) y[j] = (float)b->qs[j] * d;
}

void wren_dequantize_block_q8_16(const uint8_t *blk, float *y) {   /* (d sc) q, the order of Q6_K's dequantization */
    const wren_block_q8_16 *b = (const wren_block_q8_16 *)blk;
    const float d = wren_fp16_to_f32(b->d);
    for (int j = 0; j < WREN_QK; j++) y[j] = (d * (float)b->sc[j / 16]) * (float)b->qs[j];
}

int wren_quantize(int format, const float *x, int64_t n_rows, int64_t k, void *dst, size_t dst_bytes) {
    if (!x || !dst) return WREN_E_NULL;
    int st = check_shape(format, n_rows, k);
    if (st) return st;
    if (dst_bytes < plain_bytes(format, n_rows, k)) return WREN_E_BUFFER;
    const wren_format_traits *f = &wren_formats[format];
    if (!f->quantize) return WREN_E_FORMAT;           /* K-quant blocks come from files only */
    const int64_t nb = n_rows * (k / f->block_weights);
    uint8_t *out = dst;
    for (int64_t b = 0; b < nb; b++) f->quantize(x + b * f->block_weights, out + b * f->block_bytes);
    return WREN_OK;
}

int wren_dequantize(int format, const void *src, size_t src_bytes, int64_t n_rows, int64_t k, float *dst,
                    size_t dst_len) {
    if (!src || !dst) return WREN_E_NULL;
    int st = check_shape(format, n_rows, k);
    if (st) return st;
    if (src_bytes < plain_bytes(format, n_rows, k) || dst_len < (size_t)(n_rows * k)) return WREN_E_BUFFER;
    const wren_format_traits *f = &wren_formats[format];
    const int64_t nb = n_rows * (k / f->block_weights);
    const uint8_t *in = src;
    for (int64_t b = 0; b < nb; b++) f->dequantize(in + b * f->block_bytes, dst + b * f->block_weights);
    return WREN_OK;
}

/* ---- packing into tiles of R interleaved rows ---- */

static int tile_geometry(int variant, int *rows, int *interleave) {
    const wren_kernel_set *ks = wren_kernel_set_get(variant);
    if (!ks) return WREN_E_VARIANT;
    *rows = ks->rows;
    *interleave = ks->interleave;
    return WREN_OK;
}

size_t wren_packed_bytes(int variant, int format, int64_t n, int64_t k) {
    int rows, il;
    if (tile_geometry(variant, &rows, &il) || check_shape(format, n, k)) return 0;
    const uint64_t tiles = (uint64_t)((n + rows - 1) / rows) * (uint64_t)(k / wren_block_qk(format));
    if (tiles > SIZE_MAX / 1024) return 0;
    return (size_t)tiles * wren_tile_bytes(format, rows);
}

/* copies one plain block of row r into / out of tile `t` (pack = 1: block -> tile); inlined with a constant
 * interleave, the copies of its units are moves rather than calls to memcpy */
static inline __attribute__((always_inline)) void tile_io_il(int format, int rows, const int il, uint8_t *t, int r,
                                                             uint8_t *blk, int pack) {
    const int sb = wren_scale_bytes(format), qb = wren_quant_bytes(format);
    uint8_t *qs = t + (size_t)rows * sb;
    /* scales: d at t[2 r], m (Q4_1) at t[2 R + 2 r]; the plain block has d then m */
    for (int s = 0; s < sb / 2; s++) {
        uint8_t *ts = t + (size_t)s * rows * 2 + (size_t)r * 2;
        if (pack) memcpy(ts, blk + 2 * s, 2); else memcpy(blk + 2 * s, ts, 2);
    }
    for (int j = 0; j < qb; j += il) {           /* one interleave unit (il bytes, il divides qb) at a time */
        uint8_t *tq = qs + (size_t)(j / il) * rows * il + (size_t)r * il;
        if (pack) memcpy(tq, blk + sb + j, (size_t)il); else memcpy(blk + sb + j, tq, (size_t)il);
    }
}

static void tile_io(int format, int rows, int il, uint8_t *t, int r, uint8_t *blk, int pack) {
    if (wren_is_super(format)) {
        if (rows == 1) {
            const size_t bb = (size_t)wren_formats[format].block_bytes;
            if (pack) memcpy(t, blk, bb); else memcpy(blk, t, bb);
        } else {
            wren_super_tile_io(format, rows, t, r, blk, pack);
        }
        return;
    }
    const int unit = il <= 0 ? wren_quant_bytes(format) : il;      /* 0: the whole row block (plain) */
    switch (unit) {
    case 4: tile_io_il(format, rows, 4, t, r, blk, pack); break;
    case 8: tile_io_il(format, rows, 8, t, r, blk, pack); break;
    case 16: tile_io_il(format, rows, 16, t, r, blk, pack); break;
    case 32: tile_io_il(format, rows, 32, t, r, blk, pack); break;
    default: tile_io_il(format, rows, unit, t, r, blk, pack); break;
    }
}

static int pack_unpack(int variant, int format, const void *src, size_t src_bytes, int64_t n, int64_t k, void *dst,
                       size_t dst_bytes, int pack) {
    if (!src || !dst) return WREN_E_NULL;
    int rows, il;
    int st = tile_geometry(variant, &rows, &il);
    if (st) return st;
    if ((st = check_shape(format, n, k))) return st;
    const size_t plain = plain_bytes(format, n, k), packed = wren_packed_bytes(variant, format, n, k);
    if (packed == 0) return WREN_E_SHAPE;
    if ((pack ? src_bytes : dst_bytes) < plain || (pack ? dst_bytes : src_bytes) < packed) return WREN_E_BUFFER;
    const int64_t nb = k / wren_block_qk(format), n_tiles = (n + rows - 1) / rows;
    const size_t bb = (size_t)wren_formats[format].block_bytes, tb = wren_tile_bytes(format, rows);
    if (pack) memset(dst, 0, packed);              /* rows past n stay zero: scale 0, quants 0 */
    for (int64_t t = 0; t < n_tiles; t++) {
        for (int r = 0; r < rows && t * rows + r < n; r++) {
            const int64_t row = t * rows + r;
            for (int64_t b = 0; b < nb; b++) {
                uint8_t *tile = (uint8_t *)(pack ? dst : src) + (size_t)(t * nb + b) * tb;
                uint8_t *blk = (uint8_t *)(pack ? src : dst) + (size_t)(row * nb + b) * bb;
                tile_io(format, rows, il, tile, r, blk, pack);
            }
        }
    }
    return WREN_OK;
}

int wren_repack(int variant, int format, const void *src, size_t src_bytes, int64_t n, int64_t k, void *dst,
                size_t dst_bytes) {
    return pack_unpack(variant, format, src, src_bytes, n, k, dst, dst_bytes, 1);
}

int wren_unpack(int variant, int format, const void *src, size_t src_bytes, int64_t n, int64_t k, void *dst,
                size_t dst_bytes) {
    return pack_unpack(variant, format, src, src_bytes, n, k, dst, dst_bytes, 0);
}

/* ---- activations ---- */

static size_t align64(size_t x) { return (x + 63) & ~(size_t)63; }

size_t wren_act_bytes(int64_t m, int64_t k) {
    if (m <= 0 || k <= 0 || k % WREN_QK || m > (int64_t)1 << 24 || k > (int64_t)1 << 24) return 0;
    const size_t nb = (size_t)m * (size_t)(k / WREN_QK);
    return align64((size_t)m * (size_t)k) + 2 * align64(nb * sizeof(float)) + align64(nb * sizeof(int32_t));
}

int wren_act_init(wren_act *act, void *buf, size_t bytes, int64_t m, int64_t k) {
    if (!act || !buf) return WREN_E_NULL;
    const size_t need = wren_act_bytes(m, k);
    if (need == 0) return WREN_E_SHAPE;
    if (bytes < need) return WREN_E_BUFFER;
    if ((uintptr_t)buf % 64) return WREN_E_ALIGN;
    const size_t nb = (size_t)m * (size_t)(k / WREN_QK);
    uint8_t *p = buf;
    act->q = (int8_t *)p;
    act->d = (float *)(p + align64((size_t)m * (size_t)k));
    act->sum = (int32_t *)(p + align64((size_t)m * (size_t)k) + align64(nb * sizeof(float)));
    act->s = (float *)(p + align64((size_t)m * (size_t)k) + align64(nb * sizeof(float)) + align64(nb * sizeof(int32_t)));
    act->m = m;
    act->k = k;
    return WREN_OK;
}

void wren_quantize_act_row_ref(const float *x, int64_t k, int8_t *q, float *d, int32_t *sum, float *sq) {
    for (int64_t b = 0; b < k / WREN_QK; b++) {
        const float *xb = x + b * WREN_QK;
        const float amax = max_abs32(xb);
        const float db = wren_fp16_to_f32(wren_f32_to_fp16(amax / 127.0f));   /* Q8_0 semantics: an fp16 scale */
        const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
        int32_t s = 0;
        for (int j = 0; j < WREN_QK; j++) {
            const int v = round_even(xb[j] * id);
            q[b * WREN_QK + j] = (int8_t)v;
            s += v;
        }
        d[b] = db;
        sum[b] = s;
        sq[b] = wren_fp16_to_f32(wren_f32_to_fp16(amax / 127.0f * (float)s));
    }
}

/* Blocks of 32 that share one scale per 256 values (the Q8_K scheme llama.cpp uses for the activations of K-quant
 * matrices): id = 127 / max|x| over the 256, q = round_half_even(x id), d = 1 / id kept in fp32 (not rounded to
 * fp16) and written into each of the 8 block slots, so every kernel reads it as it reads a block's own scale. */
void wren_quantize_act_row_k_ref(const float *x, int64_t k, int8_t *q, float *d, int32_t *sum, float *sq) {
    for (int64_t g = 0; g < k / WREN_QK_K; g++) {
        const float *xg = x + g * WREN_QK_K;
        float amax = 0.0f;
        for (int j = 0; j < WREN_QK_K; j++) {
            const float a = fabsf(xg[j]);
            amax = a > amax ? a : amax;
        }
        const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
        const float dg = amax != 0.0f ? 1.0f / id : 0.0f;
        for (int b = 0; b < WREN_QK_K / WREN_QK; b++) {
            const float *xb = xg + b * WREN_QK;
            int8_t *qb = q + g * WREN_QK_K + b * WREN_QK;
            int32_t s = 0;
            for (int j = 0; j < WREN_QK; j++) {
                const int v = round_even(xb[j] * id);
                qb[j] = (int8_t)v;
                s += v;
            }
            d[g * (WREN_QK_K / WREN_QK) + b] = dg;
            sum[g * (WREN_QK_K / WREN_QK) + b] = s;
            sq[g * (WREN_QK_K / WREN_QK) + b] = dg * (float)s;
        }
    }
}

/* the same, with the SIMD twin the CPU runs (bit for bit the same result) */
void wren_quantize_act_row_k(const float *x, int64_t k, int8_t *q, float *d, int32_t *sum, float *s) {
    wren_quantize_act_k_get()(x, k, q, d, sum, s);
}

int wren_quantize_act(int variant, const float *x, size_t x_len, wren_act *act) {
    if (!x || !act || !act->q || !act->d || !act->sum || !act->s) return WREN_E_NULL;
    const wren_kernel_set *ks = wren_kernel_set_get(variant);
    if (!ks) return WREN_E_VARIANT;
    if (act->m <= 0 || act->k <= 0 || act->k % WREN_QK) return WREN_E_SHAPE;
    if (x_len < (size_t)(act->m * act->k)) return WREN_E_BUFFER;
    const int64_t nb = act->k / WREN_QK;
    for (int64_t i = 0; i < act->m; i++)
        ks->quantize_act(x + i * act->k, act->k, act->q + i * act->k, act->d + i * nb, act->sum + i * nb,
                         act->s + i * nb);
    return WREN_OK;
}

int wren_quantize_act_k(const float *x, size_t x_len, wren_act *act) {
    if (!x || !act || !act->q || !act->d || !act->sum || !act->s) return WREN_E_NULL;
    if (act->m <= 0 || act->k <= 0 || act->k % WREN_QK_K) return WREN_E_SHAPE;
    if (x_len < (size_t)(act->m * act->k)) return WREN_E_BUFFER;
    const int64_t nb = act->k / WREN_QK;
    for (int64_t i = 0; i < act->m; i++)
        wren_quantize_act_row_k(x + i * act->k, act->k, act->q + i * act->k, act->d + i * nb, act->sum + i * nb,
                                act->s + i * nb);
    return WREN_OK;
}

int wren_weights_row(const wren_weights *w, int64_t r, float *out, int64_t out_len) {
    if (!w || !w->data || !out) return WREN_E_NULL;
    int rows, il;
    int st = tile_geometry(w->variant, &rows, &il);
    if (st) return st;
    if ((st = check_shape(w->format, w->n, w->k))) return st;
    if (r < 0 || r >= w->n) return WREN_E_SHAPE;
    if (out_len < w->k || w->bytes < wren_packed_bytes(w->variant, w->format, w->n, w->k)) return WREN_E_BUFFER;
    const int qk = wren_block_qk(w->format);
    const int64_t nb = w->k / qk, t = r / rows;
    const size_t tb = wren_tile_bytes(w->format, rows);
    uint8_t blk[256];
    for (int64_t b = 0; b < nb; b++) {
        tile_io(w->format, rows, il, (uint8_t *)w->data + (size_t)(t * nb + b) * tb, (int)(r % rows), blk, 0);
        wren_formats[w->format].dequantize(blk, out + b * qk);
    }
    return WREN_OK;
}
