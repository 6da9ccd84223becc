/* arm_common.h - private to csrc/arch/arm: the packed layout of the neon and i8mm sets (dotprod.c has its own,
 * rows interleaved by 4 bytes, with the same tile sizes), the loads all three use, and the few functions one set
 * borrows from another.
 *
 * Include it after the file's `#pragma GCC target(...)` and <arm_neon.h>: the inline helpers below are compiled for
 * the ISA of the including file.
 *
 * Layout (wren_kernel_set .rows = 4, .interleave = 8). Tile (t, b) = rows 4t..4t+3 of block column b sits at
 * w + (t * (k / 32) + b) * wren_tile_bytes(fmt, 4) (72, 80, 136 and 144 bytes for Q4_0, Q4_1, Q8_0, Q8_16):
 *   fp16 d[4]; (Q4_1 only: fp16 m[4]; Q8_16 only: int8 sc[4][2], row r's pair at bytes 8 + 2r, 9 + 2r); quants,
 *   byte j of row r's plain quants at qs[(j / 8) * 32 + r * 8 + j % 8].
 * So the quants are 16-byte vectors v = 2 c + p holding rows 2p and 2p+1 (8 bytes each) of byte unit c (plain
 * bytes 8c..8c+7):
 *   Q4_0 / Q4_1:  4 vectors, c = 0, 1; low nibbles = weights 8c..8c+7, high nibbles = weights 16+8c..16+8c+7.
 *   Q8_0 / Q8_16: 8 vectors, c = 0..3; weights 8c..8c+7 (Q8_16: units 0, 1 are the half of sc[0], 2, 3 of sc[1]).
 * Rows >= n are zero (scale 0, quants 0): kernels compute them and never store them.
 * Activation bytes 8g..8g+7 of a block are "group" g (g = 0..3): Q4 low nibbles of unit c meet group c, high nibbles
 * group 2 + c; Q8_0 / Q8_16 unit c meets group c.
 *
 * Q8_16 (all three sets): each row's block sum is sc[0] lo + sc[1] hi, lo and hi the integer sums of weights 0..15
 * and 16..31, formed with MUL + MLA in int32 before the one conversion to float: |lo|, |hi| <= 16 * 128 * 127 < 2^18
 * and |sc| <= 128, so each product is below 2^25 and the sum below 2^26, exact as the reference's. sdot8.c and
 * i8mm.c take the same sum as sc[1] (lo + hi) + (sc[0] - sc[1]) lo, which their accumulators give with fewer
 * instructions: |sc[1] (lo + hi)| <= 128 * 2^19 and |(sc[0] - sc[1]) lo| < 255 * 2^18 are below 2^26 too, so every
 * step is exact (no int32 wrap-around). */
#ifndef WREN_ARM_COMMON_H
#define WREN_ARM_COMMON_H
#if defined(__aarch64__)
#include <arm_neon.h>
#include "../../internal.h"

enum {
    WREN_ARM_ROWS = 4,
    WREN_ARM_IL = 8
};

#define WREN_ARM_INLINE static inline __attribute__((always_inline))

/* neon.c: activation quantization (armv8.0), shared by all three sets */
void wren_arm_quantize_act(const float *x, int64_t k, int8_t *q, float *d, int32_t *sum, float *s);

/* sdot8.c: the SDOT GEMV on this layout, which i8mm.c uses for GEMV and for the odd activation row of its GEMM */
void wren_arm_sdot8_gemv_q4_0(const uint8_t *w, int64_t n, int64_t k, int64_t t0, int64_t t1, const wren_act *a,
                                float *y);
void wren_arm_sdot8_gemv_q4_1(const uint8_t *w, int64_t n, int64_t k, int64_t t0, int64_t t1, const wren_act *a,
                                float *y);
void wren_arm_sdot8_gemv_q8_0(const uint8_t *w, int64_t n, int64_t k, int64_t t0, int64_t t1, const wren_act *a,
                                float *y);
void wren_arm_sdot8_gemv_q8_16(const uint8_t *w, int64_t n, int64_t k, int64_t t0, int64_t t1, const wren_act *a,
                               float *y);

/* activation row i of a as a one-row batch, so a GEMV kernel can serve a GEMM's leftover row */
WREN_ARM_INLINE wren_act wren_arm_act_row(const wren_act *a, int64_t i) {
    const int64_t nb = a->k / WREN_QK;
    wren_act r = {a->q + i * a->k, a->d + i * nb, a->sum + i * nb, a->s + i * nb, 1, a->k};
    return r;
}

/* the 4 outputs of tile rows r0..r0+3 as stored (rows >= n read as 0) */
WREN_ARM_INLINE float32x4_t wren_arm_load_tile(const float *y, int64_t r0, int64_t n) {
    if (r0 + 4 <= n) return vld1q_f32(y + r0);
    float tmp[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    for (int64_t r = 0; r < n - r0; r++) tmp[r] = y[r0 + r];
    return vld1q_f32(tmp);
}

/* the 4 outputs of tile rows r0..r0+3; rows >= n are padding and are not written */
WREN_ARM_INLINE void wren_arm_store_tile(float *y, int64_t r0, int64_t n, float32x4_t v) {
    if (r0 + 4 <= n) {
        vst1q_f32(y + r0, v);
    } else {
        float tmp[4];
        vst1q_f32(tmp, v);
        for (int64_t r = 0; r < n - r0; r++) y[r0 + r] = tmp[r];
    }
}

/* ---- loads that advance their pointer (post-index addressing) ----
 * GCC 12 emits a separate ADD per pointer and block for LD1 {4 regs} / LD4R / scalar loads in these loops; these
 * helpers fold the increment into the load, so a block loop pays only CMP + B.NE for its control. Register tuples
 * are printed with the %S..%V operand modifiers (consecutive registers); the "m" operand tells the compiler which
 * bytes are read. */
#define WREN_ARM_MEM(p, n) "m"(*(const uint8_t(*)[n])(const void *)(p))

/* fp16 x4 at *p (d[4] or m[4] of a tile), as 4 floats (FCVTL: armv8.0); *p += 8 */
WREN_ARM_INLINE float32x4_t wren_arm_ld_f16x4(const uint8_t **p) {
    uint16x4_t h;
    __asm__("ldr %d0, [%1], #8" : "=w"(h), "+r"(*p) : WREN_ARM_MEM(*p, 8));
    return vcvt_f32_f16(vreinterpret_f16_u16(h));
}

/* fp16 x8 at *p (d[4], m[4] of a Q4_1 tile), as 2 x 4 floats (FCVTL, FCVTL2); *p += 16 */
WREN_ARM_INLINE float32x4x2_t wren_arm_ld_f16x8(const uint8_t **p) {
    uint16x8_t h;
    __asm__("ldr %q0, [%1], #16" : "=w"(h), "+r"(*p) : WREN_ARM_MEM(*p, 16));
    const float16x8_t f = vreinterpretq_f16_u16(h);
    float32x4x2_t r = {{vcvt_f32_f16(vget_low_f16(f)), vcvt_high_f32_f16(f)}};
    return r;
}

/* the 16-byte head of a Q8_16 tile at *p (the same in dotprod.c's layout): fp16 d[4] as 4 floats (returned), and the
 * 4 rows' int8 pairs (sc[0], sc[1]) as int32 lanes, row r's sc[0] in lane r of *sc0 and its sc[1] in lane r of *sc1.
 * LDR q, FCVTL, then SXTL2 widens the pairs to int16, so 32-bit lane r holds sc[0] in its low half and sc[1] in its
 * high half: SSHR #16 gives sc[1], SHL #16 + SSHR #16 sc[0] (4 instructions per tile); *p += 16 */
WREN_ARM_INLINE float32x4_t wren_arm_ld_q8_16_head(const uint8_t **p, int32x4_t *sc0, int32x4_t *sc1) {
    int8x16_t h;
    __asm__("ldr %q0, [%1], #16" : "=w"(h), "+r"(*p) : WREN_ARM_MEM(*p, 16));
    const int32x4_t pairs = vreinterpretq_s32_s16(vmovl_high_s8(h));
    *sc0 = vshrq_n_s32(vshlq_n_s32(pairs, 16), 16);
    *sc1 = vshrq_n_s32(pairs, 16);
    return vcvt_f32_f16(vreinterpret_f16_s8(vget_low_s8(h)));
}

/* 64 bytes at *p as 4 vectors; *p += 64 */
WREN_ARM_INLINE int8x16x4_t wren_arm_ld1x4(const uint8_t **p) {
    int8x16x4_t r;
    __asm__("ld1 {%S0.16b - %V0.16b}, [%1], #64" : "=w"(r), "+r"(*p) : WREN_ARM_MEM(*p, 64));
    return r;
}

/* 32 bytes at *p as 2 vectors; *p += 32 */
WREN_ARM_INLINE int8x16x2_t wren_arm_ld1x2(const int8_t **p) {
    int8x16x2_t r;
    __asm__("ld1 {%S0.16b - %T0.16b}, [%1], #32" : "=w"(r), "+r"(*p) : WREN_ARM_MEM(*p, 32));
    return r;
}

/* 4, 8 or 16 floats at *p as 1, 2 or 4 vectors; *p advances past them */
WREN_ARM_INLINE float32x4_t wren_arm_ld1_f32x1(const float **p) {
    float32x4_t r;
    __asm__("ld1 {%0.4s}, [%1], #16" : "=w"(r), "+r"(*p) : WREN_ARM_MEM(*p, 16));
    return r;
}
WREN_ARM_INLINE float32x4x2_t wren_arm_ld1_f32x2(const float **p) {
    float32x4x2_t r;
    __asm__("ld1 {%S0.4s - %T0.4s}, [%1], #32" : "=w"(r), "+r"(*p) : WREN_ARM_MEM(*p, 32));
    return r;
}
WREN_ARM_INLINE float32x4x4_t wren_arm_ld1_f32x4(const float **p) {
    float32x4x4_t r;
    __asm__("ld1 {%S0.4s - %V0.4s}, [%1], #64" : "=w"(r), "+r"(*p) : WREN_ARM_MEM(*p, 64));
    return r;
}

/* 32 activation bytes at *p: group g (bytes 8g..8g+7) duplicated into both halves of vector g (LD4R .2d); *p += 32 */
WREN_ARM_INLINE int8x16x4_t wren_arm_ld4r(const int8_t **p) {
    int8x16x4_t r;
    __asm__("ld4r {%S0.2d - %V0.2d}, [%1], #32" : "=w"(r), "+r"(*p) : WREN_ARM_MEM(*p, 32));
    return r;
}

/* one float at *p (in lane 0, for by-element multiplies); *p += 1 */
WREN_ARM_INLINE float32x4_t wren_arm_ld_f32(const float **p) {
    float32x4_t r;
    __asm__("ldr %s0, [%1], #4" : "=w"(r), "+r"(*p) : WREN_ARM_MEM(*p, 4));
    return r;
}

/* one int32 at *p, in lane 0; *p += 1 */
WREN_ARM_INLINE int32x4_t wren_arm_ld_s32(const int32_t **p) {
    int32x4_t r;
    __asm__("ldr %s0, [%1], #4" : "=w"(r), "+r"(*p) : WREN_ARM_MEM(*p, 4));
    return r;
}

/* one int32 at *p in all 4 lanes (LD1R); *p += 1 */
WREN_ARM_INLINE int32x4_t wren_arm_ld1r_s32(const int32_t **p) {
    int32x4_t r;
    __asm__("ld1r {%0.4s}, [%1], #4" : "=w"(r), "+r"(*p) : WREN_ARM_MEM(*p, 4));
    return r;
}

/* v, opaque to the optimizer: keeps a constant multiplier a MUL (GCC would expand x * -4 into SHL + NEG) */
WREN_ARM_INLINE int32x4_t wren_arm_opaque_s32(int32x4_t v) {
    __asm__("" : "+w"(v));
    return v;
}

/* For GEMMs that take up to 8 activation rows at a time, blocks WREN_ARM_CHUNK at a time: the block scales of MR
 * activation rows from i0, blocks [b0, b0 + nc), gathered so one LD1 loads a block's: per block, d_x of the rows in
 * 4-row vectors (rows past MR 0), then for Q4_1 s_x (Q8_1's s) the same way (at most 16 floats per block). */
enum { WREN_ARM_CHUNK = 128 };
WREN_ARM_INLINE void wren_arm_gather_scales(const int fmt, const wren_act *a, int64_t i0, const int MR, int64_t b0, int64_t nc,
                                            float *sc) {
    const int64_t nb = a->k / WREN_QK;
    const int NG = (MR + 3) / 4, SV = fmt == WREN_Q4_1 ? 2 * NG : NG;
    for (int64_t b = 0; b < nc; b++) {
        float *s = sc + b * SV * 4;
        for (int r = 0; r < 4 * NG; r++) {
            const float dx = r < MR ? a->d[(i0 + r) * nb + b0 + b] : 0.0f;
            s[r] = dx;
            if (fmt == WREN_Q4_1) s[4 * NG + r] = r < MR ? a->s[(i0 + r) * nb + b0 + b] : 0.0f;
        }
    }
}

/* one block's gathered scales (*s advances past them): dx[g], mx[g] = rows 4g..4g+3's d_x and s_x */
WREN_ARM_INLINE void wren_arm_ld_scales(const int fmt, const int MR, const float **s, float32x4_t dx[2],
                                        float32x4_t mx[2]) {
    if (MR > 4 && fmt == WREN_Q4_1) {
        const float32x4x4_t v = wren_arm_ld1_f32x4(s);
        dx[0] = v.val[0], dx[1] = v.val[1], mx[0] = v.val[2], mx[1] = v.val[3];
    } else if (MR > 4 || fmt == WREN_Q4_1) {
        const float32x4x2_t v = wren_arm_ld1_f32x2(s);
        dx[0] = v.val[0], dx[1] = v.val[1];
        mx[0] = mx[1] = v.val[1];         /* Q4_1 with one group of rows: [d_x | s_x] */
    } else {
        dx[0] = dx[1] = mx[0] = mx[1] = wren_arm_ld1_f32x1(s);
    }
}

#endif
#endif
