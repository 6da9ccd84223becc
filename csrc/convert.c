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

static void q4_0_to_f32(const uint8_t *b, float *y) { wren_dequantize(WREN_Q4_0, b, 18, 1, 32, y, 32); }
static void q4_1_to_f32(const uint8_t *b, float *y) { wren_dequantize(WREN_Q4_1, b, 20, 1, 32, y, 32); }
static void q8_0_to_f32(const uint8_t *b, float *y) { wren_dequantize(WREN_Q8_0, b, 34, 1, 32, y, 32); }

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

static void q4_k_to_f32(const uint8_t *b, float *y) {
    blk_q4_k blk;
    memcpy(&blk, b, sizeof blk);
    const float d = wren_fp16_to_f32(blk.d), dmin = wren_fp16_to_f32(blk.dmin);
    for (int p = 0; p < 4; p++) {               /* sub-blocks 2p (low nibbles) and 2p+1 (high) share 32 bytes */
        int sc, m;
        const uint8_t *q = blk.qs + 32 * p;
        wren_k_scale_min(2 * p, blk.scales, &sc, &m);
        const float d1 = d * (float)sc, m1 = dmin * (float)m;
        wren_k_scale_min(2 * p + 1, blk.scales, &sc, &m);
        const float d2 = d * (float)sc, m2 = dmin * (float)m;
        for (int l = 0; l < 32; l++) y[64 * p + l] = d1 * (float)(q[l] & 15) - m1;
        for (int l = 0; l < 32; l++) y[64 * p + 32 + l] = d2 * (float)(q[l] >> 4) - m2;
    }
}

static void q5_k_to_f32(const uint8_t *b, float *y) {
    blk_q5_k blk;
    memcpy(&blk, b, sizeof blk);
    const float d = wren_fp16_to_f32(blk.d), dmin = wren_fp16_to_f32(blk.dmin);
    for (int p = 0; p < 4; p++) {
        int sc, m;
        const uint8_t *q = blk.qs + 32 * p;
        wren_k_scale_min(2 * p, blk.scales, &sc, &m);
        const float d1 = d * (float)sc, m1 = dmin * (float)m;
        wren_k_scale_min(2 * p + 1, blk.scales, &sc, &m);
        const float d2 = d * (float)sc, m2 = dmin * (float)m;
        const int u1 = 1 << (2 * p), u2 = 2 << (2 * p);   /* the fifth bits of this pair in qh */
        for (int l = 0; l < 32; l++) y[64 * p + l] = d1 * (float)((q[l] & 15) + (blk.qh[l] & u1 ? 16 : 0)) - m1;
        for (int l = 0; l < 32; l++) y[64 * p + 32 + l] = d2 * (float)((q[l] >> 4) + (blk.qh[l] & u2 ? 16 : 0)) - m2;
    }
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

static void q6_k_to_f32(const uint8_t *b, float *y) {
    blk_q6_k blk;
    memcpy(&blk, b, sizeof blk);
    const float d = wren_fp16_to_f32(blk.d);
    int8_t q[256];
    wren_q6_k_quants(&blk, q);
    for (int j = 0; j < 256; j++) y[j] = (d * (float)blk.scales[j / 16]) * (float)q[j];   /* (d sc) q */
}

static const ggml_traits traits[] = {
    {WREN_GGML_F32, 1, 4, f32_to_f32},     {WREN_GGML_F16, 1, 2, f16_to_f32},     {WREN_GGML_BF16, 1, 2, bf16_to_f32},
    {WREN_GGML_Q4_0, 32, 18, q4_0_to_f32}, {WREN_GGML_Q4_1, 32, 20, q4_1_to_f32}, {WREN_GGML_Q5_0, 32, 22, q5_0_to_f32},
    {WREN_GGML_Q5_1, 32, 24, q5_1_to_f32}, {WREN_GGML_Q8_0, 32, 34, q8_0_to_f32}, {WREN_GGML_Q4_K, 256, 144, q4_k_to_f32},
    {WREN_GGML_Q5_K, 256, 176, q5_k_to_f32}, {WREN_GGML_Q6_K, 256, 210, q6_k_to_f32},
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
    if (!t || format < 0 || format >= WREN_N_FORMATS) return WREN_E_FORMAT;
    const int piece = t->block >= 256 ? t->block : 256;        /* a multiple of 32 and of the type's block */
    const int64_t step = n % piece == 0 ? piece : WREN_QK;      /* small tensors: blocks of 32 (t->block <= 32) */
    if (n <= 0 || n % WREN_QK || n % t->block || step % t->block) return WREN_E_SHAPE;
    const size_t out_block = wren_format_block_bytes(format);
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

int wren_q4_k_to_q4_1(const void *src, size_t src_bytes, int64_t n, void *dst, size_t dst_bytes) {
    if (!src || !dst) return WREN_E_NULL;
    if (n <= 0 || n % 256) return WREN_E_SHAPE;
    if (src_bytes < (size_t)(n / 256) * 144 || dst_bytes < (size_t)(n / 32) * 20) return WREN_E_BUFFER;
    const uint8_t *s = src;
    uint8_t *out = dst;
    for (int64_t sb = 0; sb < n / 256; sb++, s += 144, out += 8 * sizeof(wren_block_q4_1)) {
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
    return WREN_OK;
}

int wren_q6_k_to_q8_16(const void *src, size_t src_bytes, int64_t n, void *dst, size_t dst_bytes) {
    if (!src || !dst) return WREN_E_NULL;
    if (n <= 0 || n % 256) return WREN_E_SHAPE;
    if (src_bytes < (size_t)(n / 256) * sizeof(blk_q6_k) || dst_bytes < (size_t)(n / 32) * sizeof(wren_block_q8_16))
        return WREN_E_BUFFER;
    const uint8_t *s = src;
    uint8_t *out = dst;
    for (int64_t sb = 0; sb < n / 256; sb++) {
        blk_q6_k blk;
        memcpy(&blk, s + sb * sizeof blk, sizeof blk);
        int8_t q[256];
        wren_q6_k_quants(&blk, q);
        for (int b = 0; b < 8; b++) {
            wren_block_q8_16 o;
            o.d = blk.d;
            o.sc[0] = blk.scales[2 * b];
            o.sc[1] = blk.scales[2 * b + 1];
            memcpy(o.qs, q + 32 * b, 32);
            memcpy(out + (sb * 8 + b) * sizeof o, &o, sizeof o);
        }
    }
    return WREN_OK;
}

int wren_q5_0_to_q8_0(const void *src, size_t src_bytes, int64_t n, void *dst, size_t dst_bytes) {
    if (!src || !dst) return WREN_E_NULL;
    if (n <= 0 || n % 32) return WREN_E_SHAPE;
    if (src_bytes < (size_t)(n / 32) * sizeof(blk_q5_0) || dst_bytes < (size_t)(n / 32) * sizeof(wren_block_q8_0))
        return WREN_E_BUFFER;
    const uint8_t *s = src;
    wren_block_q8_0 *out = dst;
    for (int64_t b = 0; b < n / 32; b++) {
        blk_q5_0 blk;
        memcpy(&blk, s + b * sizeof blk, sizeof blk);
        uint32_t qh;
        memcpy(&qh, blk.qh, 4);
        wren_block_q8_0 o;
        o.d = blk.d;                                    /* the same scale: q - 16 in -16..15 is an int8 */
        for (int j = 0; j < 16; j++) {
            o.qs[j] = (int8_t)(((blk.qs[j] & 15) | (((qh >> j) & 1) << 4)) - 16);
            o.qs[j + 16] = (int8_t)(((blk.qs[j] >> 4) | (((qh >> (j + 16)) & 1) << 4)) - 16);
        }
        memcpy(&out[b], &o, sizeof o);
    }
    return WREN_OK;
}
