/* convert.c - GGUF tensor types into floats, Q4_K folded losslessly-but-for-fp16 into Q4_1 blocks of 32, Q5_0 into
 * Q8_0 blocks and Q6_K into Q8_16 blocks exactly.
 *
 * Block layouts are GGML's (the file format): each dequantizer below mirrors the maths of one block type. */
#include <math.h>
#include "internal.h"

typedef struct { uint16_t d; uint8_t qh[4]; uint8_t qs[16]; } blk_q5_0;
typedef struct { uint16_t d, m; uint8_t qh[4]; uint8_t qs[16]; } blk_q5_1;
typedef wren_block_q4_k blk_q4_k;
typedef struct { uint16_t d, dmin; uint8_t scales[12]; uint8_t qh[32]; uint8_t qs[128]; } blk_q5_k;
typedef wren_block_q6_k blk_q6_k;
static_assert(sizeof(blk_q5_0) == 22, "q5_0");
static_assert(sizeof(blk_q5_1) == 24, "q5_1");
static_assert(sizeof(blk_q5_k) == 176, "q5_k");

/* one row of the traits table: GGML type id, weights per block, bytes per block, block -> floats */
typedef void (*to_f32_fn)(const uint8_t *blk, float *y);
typedef struct { int id; int block; int bytes; to_f32_fn to_f32; } ggml_traits;

static void f32_to_f32(const uint8_t *b, float *y) { memcpy(y, b, 4); }
static void f16_to_f32(const uint8_t *b, float *y) {
    uint16_t h;
    memcpy(&h, b, 2);
    *y = wren_fp16_to_f32(h);
}
static void bf16_to_f32(const uint8_t *b, float *y) {
    uint16_t h;
    memcpy(&h, b, 2);
    const uint32_t bits = (uint32_t)h << 16;
    memcpy(y, &bits, 4);
}

static void q5_0_to_f32(const uint8_t *b, float *y) {
    blk_q5_0 blk;
    memcpy(&blk, b, sizeof blk);
    uint32_t qh;
    memcpy(&qh, blk.qh, 4);
    const float d = wren_fp16_to_f32(blk.d);
    for (int j = 0; j < 16; j++) {
        const int hi0 = (qh >> j) & 1, hi1 = (qh >> (j + 16)) & 1;   /* the fifth bit of weights j and j + 16 */
        y[j] = (float)(((blk.qs[j] & 15) | (hi0 << 4)) - 16) * d;
        y[j + 16] = (float)(((blk.qs[j] >> 4) | (hi1 << 4)) - 16) * d;
    }
}

static void q5_1_to_f32(const uint8_t *b, float *y) {
    blk_q5_1 blk;
    memcpy(&blk, b, sizeof blk);
    uint32_t qh;
    memcpy(&qh, blk.qh, 4);
    const float d = wren_fp16_to_f32(blk.d), m = wren_fp16_to_f32(blk.m);
    for (int j = 0; j < 16; j++) {
        const int hi0 = (qh >> j) & 1, hi1 = (qh >> (j + 16)) & 1;
        y[j] = (float)((blk.qs[j] & 15) | (hi0 << 4)) * d + m;
        y[j + 16] = (float)((blk.qs[j] >> 4) | (hi1 << 4)) * d + m;
    }
}

/* the 6-bit scale and min of sub-block j (0..7) of a K-quant super-block */
void wren_k_scale_min(int j, const uint8_t *q, int *sc, int *m) {
    if (j < 4) {
        *sc = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *sc = (q[j + 4] & 15) | ((q[j - 4] >> 6) << 4);
        *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
    }
}

/* Q4_K and Q5_K: sub-blocks 2p (low nibbles) and 2p+1 (high) share 32 bytes of qs; Q5_K's fifth bits are in qh
 * (NULL for Q4_K), those of the pair p at bits 2p and 2p + 1 */
static void k_quant_to_f32(uint16_t dh, uint16_t mh, const uint8_t *scales, const uint8_t *qs, const uint8_t *qh,
                           float *y) {
    const float d = wren_fp16_to_f32(dh), dmin = wren_fp16_to_f32(mh);
    for (int p = 0; p < 4; p++) {
        int sc, m;
        const uint8_t *q = qs + 32 * p;
        wren_k_scale_min(2 * p, scales, &sc, &m);
        const float d1 = d * (float)sc, m1 = dmin * (float)m;
        wren_k_scale_min(2 * p + 1, scales, &sc, &m);
        const float d2 = d * (float)sc, m2 = dmin * (float)m;
        const int u1 = 1 << (2 * p), u2 = 2 << (2 * p);
        for (int l = 0; l < 32; l++) {
            const int h1 = qh && (qh[l] & u1) ? 16 : 0, h2 = qh && (qh[l] & u2) ? 16 : 0;
            y[64 * p + l] = d1 * (float)((q[l] & 15) + h1) - m1;
            y[64 * p + 32 + l] = d2 * (float)((q[l] >> 4) + h2) - m2;
        }
    }
}

void wren_dequantize_block_q4_k(const uint8_t *b, float *y) {
    blk_q4_k blk;
    memcpy(&blk, b, sizeof blk);
    k_quant_to_f32(blk.d, blk.dmin, blk.scales, blk.qs, NULL, y);
}

static void q5_k_to_f32(const uint8_t *b, float *y) {
    blk_q5_k blk;
    memcpy(&blk, b, sizeof blk);
    k_quant_to_f32(blk.d, blk.dmin, blk.scales, blk.qs, blk.qh, y);
}

/* the 256 quants of a Q6_K super-block, q - 32 in weight order; weight j has the scale scales[j / 16] */
void wren_q6_k_quants(const blk_q6_k *blk, int8_t *q) {
    for (int half = 0; half < 2; half++) {      /* two halves of 128 weights: 64 bytes of ql, 32 of qh */
        const uint8_t *ql = blk->ql + 64 * half, *qh = blk->qh + 32 * half;
        int8_t *qo = q + 128 * half;
        for (int l = 0; l < 32; l++) {
            qo[l] = (int8_t)(((ql[l] & 15) | (((qh[l] >> 0) & 3) << 4)) - 32);
            qo[l + 32] = (int8_t)(((ql[l + 32] & 15) | (((qh[l] >> 2) & 3) << 4)) - 32);
            qo[l + 64] = (int8_t)(((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32);
            qo[l + 96] = (int8_t)(((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32);
        }
    }
}

void wren_dequantize_block_q6_k(const uint8_t *b, float *y) {
    blk_q6_k blk;
    memcpy(&blk, b, sizeof blk);
    const float d = wren_fp16_to_f32(blk.d);
    int8_t q[256];
    wren_q6_k_quants(&blk, q);
    for (int j = 0; j < 256; j++) y[j] = (d * (float)blk.scales[j / 16]) * (float)q[j];   /* (d sc) q */
}

static const ggml_traits traits[] = {
    {WREN_GGML_F32, 1, 4, f32_to_f32},     {WREN_GGML_F16, 1, 2, f16_to_f32},     {WREN_GGML_BF16, 1, 2, bf16_to_f32},
    {WREN_GGML_Q4_0, 32, 18, wren_dequantize_block_q4_0}, {WREN_GGML_Q4_1, 32, 20, wren_dequantize_block_q4_1},
    {WREN_GGML_Q5_0, 32, 22, q5_0_to_f32}, {WREN_GGML_Q5_1, 32, 24, q5_1_to_f32},
    {WREN_GGML_Q8_0, 32, 34, wren_dequantize_block_q8_0}, {WREN_GGML_Q4_K, 256, 144, wren_dequantize_block_q4_k},
    {WREN_GGML_Q5_K, 256, 176, q5_k_to_f32}, {WREN_GGML_Q6_K, 256, 210, wren_dequantize_block_q6_k},
};

static const ggml_traits *find(int type) {
    for (size_t i = 0; i < sizeof traits / sizeof traits[0]; i++)
        if (traits[i].id == type) return &traits[i];
    return NULL;
}

size_t wren_ggml_bytes(int ggml_type, int64_t n) {
    const ggml_traits *t = find(ggml_type);
    if (!t || n <= 0 || n % t->block) return 0;
    return (size_t)(n / t->block) * (size_t)t->bytes;
}

int wren_ggml_to_f32(int ggml_type, const void *src, size_t src_bytes, int64_t n, float *dst, size_t dst_len) {
    if (!src || !dst) return WREN_E_NULL;
    const ggml_traits *t = find(ggml_type);
    if (!t) return WREN_E_FORMAT;
    if (n <= 0 || n % t->block) return WREN_E_SHAPE;
    if (src_bytes < wren_ggml_bytes(ggml_type, n) || dst_len < (size_t)n) return WREN_E_BUFFER;
    const uint8_t *s = src;
    for (int64_t b = 0; b < n / t->block; b++) t->to_f32(s + (size_t)b * t->bytes, dst + b * t->block);
    return WREN_OK;
}

int wren_ggml_requantize(int ggml_type, const void *src, size_t src_bytes, int64_t n, int format, void *dst,
                         size_t dst_bytes) {
    if (!src || !dst) return WREN_E_NULL;
    const ggml_traits *t = find(ggml_type);
    if (!t || !wren_format_ok(format)) return WREN_E_FORMAT;
    const int piece = t->block >= 256 ? t->block : 256;        /* a multiple of 32 and of the type's block */
    const int64_t step = n % piece == 0 ? piece : WREN_QK;      /* small tensors: blocks of 32 (t->block <= 32) */
    if (n <= 0 || n % WREN_QK || n % t->block || step % t->block) return WREN_E_SHAPE;
    const size_t out_block = (size_t)wren_formats[format].block_bytes;
    if (src_bytes < wren_ggml_bytes(ggml_type, n) || dst_bytes < (size_t)(n / WREN_QK) * out_block)
        return WREN_E_BUFFER;
    const uint8_t *s = src;
    uint8_t *out = dst;
    float tmp[256];
    for (int64_t i = 0; i < n; i += step) {
        for (int64_t b = 0; b < step / t->block; b++)
            t->to_f32(s + (size_t)((i / t->block + b) * t->bytes), tmp + b * t->block);
        const int st = wren_quantize(format, tmp, 1, step, out + (size_t)(i / WREN_QK) * out_block,
                                     (size_t)(step / WREN_QK) * out_block);
        if (st) return st;
    }
    return WREN_OK;
}

int wren_ggml_convert(int ggml_type, const void *src, size_t src_bytes, int64_t n, int format, void *dst,
                      size_t dst_bytes) {
    if (!src || !dst) return WREN_E_NULL;
    const ggml_traits *t = find(ggml_type);
    if (!t || !wren_format_ok(format)) return WREN_E_FORMAT;       /* so neither -1 below matches */
    const wren_format_traits *f = &wren_formats[format];
    if (ggml_type != f->file_type && ggml_type != f->convert_from)
        return wren_ggml_requantize(ggml_type, src, src_bytes, n, format, dst, dst_bytes);
    if (n <= 0 || n % t->block) return WREN_E_SHAPE;               /* a whole number of the file's blocks */
    const int64_t nb = n / t->block;
    const size_t out_bytes = (size_t)(n / f->block_weights) * (size_t)f->block_bytes;
    if (src_bytes < (size_t)nb * (size_t)t->bytes || dst_bytes < out_bytes) return WREN_E_BUFFER;
    if (ggml_type == f->file_type) {
        memcpy(dst, src, out_bytes);
        return WREN_OK;
    }
    const uint8_t *s = src;
    uint8_t *out = dst;
    const size_t out_step = out_bytes / (size_t)nb;                /* one file block's worth of the format's */
    for (int64_t b = 0; b < nb; b++) f->convert(s + (size_t)b * t->bytes, out + (size_t)b * out_step);
    return WREN_OK;
}

/* ---- GGUF blocks turned straight into a runtime format's blocks (formats.h: each format's convert_from) ---- */

/* a Q4_K super-block as 8 Q4_1 blocks */
void wren_convert_block_q4_k_q4_1(const uint8_t *s, uint8_t *out) {
    const blk_q4_k *blk = (const blk_q4_k *)s;    /* read through memcpy and byte loads only */
    uint16_t dh, mh;
    memcpy(&dh, &blk->d, 2);
    memcpy(&mh, &blk->dmin, 2);
    const float d = wren_fp16_to_f32(dh), dmin = wren_fp16_to_f32(mh);
    for (int p = 0; p < 4; p++) {                   /* 32 bytes: sub-block 2p in the low nibbles, 2p+1 high */
        const uint8_t *q = blk->qs + 32 * p;
        uint8_t lo[16], hi[16];
        for (int l = 0; l < 16; l++) {              /* Q4_1: weight l low, weight l + 16 high */
            lo[l] = (uint8_t)((q[l] & 15) | (q[l + 16] << 4));
            hi[l] = (uint8_t)((q[l] >> 4) | (q[l + 16] & 0xf0));
        }
        memcpy(out + (2 * p) * sizeof(wren_block_q4_1) + 4, lo, 16);
        memcpy(out + (2 * p + 1) * sizeof(wren_block_q4_1) + 4, hi, 16);
    }
    for (int j = 0; j < 8; j++) {
        int sc, m;
        wren_k_scale_min(j, blk->scales, &sc, &m);
        const uint16_t dm[2] = {wren_f32_to_fp16(d * (float)sc),       /* w = q d sc - dmin m = q d' + m' */
                                wren_f32_to_fp16(-(dmin * (float)m))};
        memcpy(out + j * sizeof(wren_block_q4_1), dm, 4);
    }
}

/* a Q6_K super-block as 8 Q8_16 blocks */
void wren_convert_block_q6_k_q8_16(const uint8_t *s, uint8_t *out) {
    blk_q6_k blk;
    memcpy(&blk, s, sizeof blk);
    int8_t q[256];
    wren_q6_k_quants(&blk, q);
    for (int b = 0; b < 8; b++) {
        wren_block_q8_16 o;
        o.d = blk.d;
        o.sc[0] = blk.scales[2 * b];
        o.sc[1] = blk.scales[2 * b + 1];
        memcpy(o.qs, q + 32 * b, 32);
        memcpy(out + b * sizeof o, &o, sizeof o);
    }
}

/* a Q5_0 block as a Q8_0 block */
void wren_convert_block_q5_0_q8_0(const uint8_t *s, uint8_t *out) {
    blk_q5_0 blk;
    memcpy(&blk, s, sizeof blk);
    uint32_t qh;
    memcpy(&qh, blk.qh, 4);
    wren_block_q8_0 o;
    o.d = blk.d;                                    /* the same scale: q - 16 in -16..15 is an int8 */
    for (int j = 0; j < 16; j++) {
        o.qs[j] = (int8_t)(((blk.qs[j] & 15) | (((qh >> j) & 1) << 4)) - 16);
        o.qs[j + 16] = (int8_t)(((blk.qs[j] >> 4) | (((qh >> (j + 16)) & 1) << 4)) - 16);
    }
    memcpy(out, &o, sizeof o);
}

int wren_q4_k_to_q4_1(const void *src, size_t src_bytes, int64_t n, void *dst, size_t dst_bytes) {
    return wren_ggml_convert(WREN_GGML_Q4_K, src, src_bytes, n, WREN_Q4_1, dst, dst_bytes);
}
int wren_q6_k_to_q8_16(const void *src, size_t src_bytes, int64_t n, void *dst, size_t dst_bytes) {
    return wren_ggml_convert(WREN_GGML_Q6_K, src, src_bytes, n, WREN_Q8_16, dst, dst_bytes);
}
int wren_q5_0_to_q8_0(const void *src, size_t src_bytes, int64_t n, void *dst, size_t dst_bytes) {
    return wren_ggml_convert(WREN_GGML_Q5_0, src, src_bytes, n, WREN_Q8_0, dst, dst_bytes);
}
