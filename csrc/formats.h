/* formats.h - one row per runtime weight format (included by internal.h; cffi does not see it).
 *
 * The table is `static const` in this header so that a kernel that names its format as a constant reads the row's
 * numbers as constants (its branches and offsets fold at compile time, as hand-written numbers would); the block
 * codecs it points at live in formats.c (plain blocks of 32) and convert.c (K-quant super-blocks, GGUF types).
 * wren_format_describe (formats.c) hands a row to Python. */
#ifndef WREN_FORMATS_H
#define WREN_FORMATS_H
#include <assert.h>
#include <stddef.h>
#include <stdint.h>
#include "wren.h"

/* ---- plain blocks (GGUF layout) ---- */
typedef struct { uint16_t d; uint8_t qs[16]; } wren_block_q4_0;
typedef struct { uint16_t d; uint16_t m; uint8_t qs[16]; } wren_block_q4_1;
typedef struct { uint16_t d; int8_t qs[32]; } wren_block_q8_0;
typedef struct { uint16_t d; int8_t sc[2]; int8_t qs[32]; } wren_block_q8_16;
/* GGUF's K-quant super-blocks of 256 weights (the plain blocks of Q4_K and Q6_K) */
typedef struct { uint16_t d, dmin; uint8_t scales[12]; uint8_t qs[128]; } wren_block_q4_k;
typedef struct { uint8_t ql[128]; uint8_t qh[64]; int8_t scales[16]; uint16_t d; } wren_block_q6_k;
static_assert(sizeof(wren_block_q4_0) == 18, "q4_0 block is 18 bytes");
static_assert(sizeof(wren_block_q4_1) == 20, "q4_1 block is 20 bytes");
static_assert(sizeof(wren_block_q8_0) == 34, "q8_0 block is 34 bytes");
static_assert(sizeof(wren_block_q8_16) == 36, "q8_16 block is 36 bytes");
static_assert(sizeof(wren_block_q4_k) == 144, "q4_k block is 144 bytes");
static_assert(sizeof(wren_block_q6_k) == 210, "q6_k block is 210 bytes");

/* ---- K-quant tiles of R > 1 rows (with R = 1 the tile is the plain block); every offset below is in units of R
 * bytes, so field F of row r starts at F * R + (its place for row r).
 * Q4_K: fp16 d[R]; fp16 dmin[R]; uint8 sc[8][R] (sub-block major); the mins in pairs, (m[2p], m[2p + 1]) of row r at
 * 2 R p + 2 r; then per sub-block j (16 R bytes each) its 32 weights as a Q4_0 block's 16 bytes (weight t low nibble,
 * t + 16 high) interleaved in units of 4 bytes: 148 bytes per row.
 * Q6_K: fp16 d[R]; per 32-weight chunk c the scale pairs (sc[2c], sc[2c + 1]) of the R rows (2R bytes, row r at 2r;
 * 16 R bytes in all); then per chunk c (24 R bytes each) the low 4 bits of its weights as a Q4_0 block's 16 bytes,
 * interleaved by 4, then two vectors of 4-byte units H0, H1 whose byte t of row r holds the top 2 bits of weight
 * 4u + t (H0) or 16 + 4u + t (H1) at bits 2u, 2u + 1 (u = 0..3): 210 bytes per row, as in the file. */
enum {
    WREN_Q4K_T_D = 0, WREN_Q4K_T_DMIN = 2, WREN_Q4K_T_SC = 4, WREN_Q4K_T_M = 12, WREN_Q4K_T_QS = 20,
    WREN_Q4K_T_SUB = 16, WREN_Q4K_ROW_BYTES = 148
};
enum {
    WREN_Q6K_T_D = 0, WREN_Q6K_T_SC = 2, WREN_Q6K_T_QS = 18, WREN_Q6K_T_CHUNK = 24, WREN_Q6K_T_H0 = 16,
    WREN_Q6K_T_H1 = 20, WREN_Q6K_ROW_BYTES = 210
};

/* ---- the table ---- */
typedef void (*wren_quantize_block_fn)(const float *x, uint8_t *blk);        /* 32 floats -> one plain block */
typedef void (*wren_dequantize_block_fn)(const uint8_t *blk, float *y);      /* one plain block -> floats */
typedef void (*wren_convert_block_fn)(const uint8_t *src, uint8_t *dst);   /* one GGML block -> plain blocks */

typedef struct {
    const char *name;           /* "q4_0", ... */
    int block_weights;          /* weights per plain block: 32, or 256 for the K-quant super-blocks */
    int block_bytes;            /* bytes per plain block */
    int bits;                   /* bits per quant */
    int scale_bytes;            /* blocks of 32, per row of a tile: fp16 d, then Q4_1's fp16 m or Q8_16's sc[2] */
    int quant_bytes;            /* blocks of 32, per row of a tile: the quants (0 for super-blocks) */
    int tile_row_bytes;         /* bytes of one row in a tile of R > 1 rows */
    int act_group;              /* the activations it pairs with: 32 (Q8_0 / Q8_1 blocks; 256 also read) or 256 (Q8_K,
                                 * required) */
    int file_type;              /* the GGML type whose blocks are its plain blocks, or -1 */
    int convert_from;           /* the GGML type `convert` turns straight into its blocks (no float pass), or -1 */
    wren_convert_block_fn convert;
    wren_quantize_block_fn quantize;        /* NULL: blocks come from files only */
    wren_dequantize_block_fn dequantize;
} wren_format_traits;

void wren_quantize_block_q4_0(const float *x, uint8_t *blk);
void wren_quantize_block_q4_1(const float *x, uint8_t *blk);
void wren_quantize_block_q8_0(const float *x, uint8_t *blk);
void wren_quantize_block_q8_16(const float *x, uint8_t *blk);
void wren_dequantize_block_q4_0(const uint8_t *blk, float *y);
void wren_dequantize_block_q4_1(const uint8_t *blk, float *y);
void wren_dequantize_block_q8_0(const uint8_t *blk, float *y);
void wren_dequantize_block_q8_16(const uint8_t *blk, float *y);
void wren_dequantize_block_q4_k(const uint8_t *blk, float *y);     /* llama.cpp's dequantize_row_q4_K (convert.c) */
void wren_dequantize_block_q6_k(const uint8_t *blk, float *y);     /* and _q6_K */
void wren_convert_block_q4_k_q4_1(const uint8_t *src, uint8_t *dst);   /* convert.c; exact but for fp16 d sc, dmin m */
void wren_convert_block_q5_0_q8_0(const uint8_t *src, uint8_t *dst);   /* exact */
void wren_convert_block_q6_k_q8_16(const uint8_t *src, uint8_t *dst);  /* exact */

static const wren_format_traits wren_formats[WREN_N_FORMATS] = {
    [WREN_Q4_0] = {"q4_0", WREN_QK, sizeof(wren_block_q4_0), 4, 2, 16, 18, WREN_QK, WREN_GGML_Q4_0, -1, NULL,
                   wren_quantize_block_q4_0, wren_dequantize_block_q4_0},
    [WREN_Q4_1] = {"q4_1", WREN_QK, sizeof(wren_block_q4_1), 4, 4, 16, 20, WREN_QK, WREN_GGML_Q4_1, WREN_GGML_Q4_K,
                   wren_convert_block_q4_k_q4_1, wren_quantize_block_q4_1, wren_dequantize_block_q4_1},
    [WREN_Q8_0] = {"q8_0", WREN_QK, sizeof(wren_block_q8_0), 8, 2, 32, 34, WREN_QK, WREN_GGML_Q8_0, WREN_GGML_Q5_0,
                   wren_convert_block_q5_0_q8_0, wren_quantize_block_q8_0, wren_dequantize_block_q8_0},
    [WREN_Q8_16] = {"q8_16", WREN_QK, sizeof(wren_block_q8_16), 8, 4, 32, 36, WREN_QK, -1, WREN_GGML_Q6_K,
                    wren_convert_block_q6_k_q8_16, wren_quantize_block_q8_16, wren_dequantize_block_q8_16},
    [WREN_Q4_K] = {"q4_k", WREN_QK_SUPER, sizeof(wren_block_q4_k), 4, 0, 0, WREN_Q4K_ROW_BYTES, WREN_QK_SUPER,
                   WREN_GGML_Q4_K, -1, NULL, NULL, wren_dequantize_block_q4_k},
    [WREN_Q6_K] = {"q6_k", WREN_QK_SUPER, sizeof(wren_block_q6_k), 6, 0, 0, WREN_Q6K_ROW_BYTES, WREN_QK_SUPER,
                   WREN_GGML_Q6_K, -1, NULL, NULL, wren_dequantize_block_q6_k},
};

static inline int wren_format_ok(int format) { return format >= 0 && format < WREN_N_FORMATS; }
static inline int wren_is_q8(int format) { return wren_formats[format].bits == 8; }
static inline int wren_is_super(int format) { return wren_formats[format].block_weights > WREN_QK; }
static inline int wren_block_qk(int format) { return wren_formats[format].block_weights; }
static inline int wren_scale_bytes(int format) { return wren_formats[format].scale_bytes; }
static inline int wren_quant_bytes(int format) { return wren_formats[format].quant_bytes; }

/* A packed tile of R rows for one block column (32 weights; K-quants: 256, above): fp16 d[R]; (Q4_1: fp16 m[R];
 * Q8_16: the pair sc[0], sc[1] of row r at byte 2 R + 2 r); quants qs[R * quant_bytes], where byte j of row r's quants
 * sits at qs[(j / I) * R * I + r * I + j % I]. */
static inline size_t wren_tile_bytes(int format, int rows) {
    return rows == 1 ? (size_t)wren_formats[format].block_bytes : (size_t)rows * wren_formats[format].tile_row_bytes;
}

#endif
