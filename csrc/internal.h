/* internal.h - what the C files share and cffi does not see: fp16 conversion, the kernel table, pool jobs. */
#ifndef WREN_INTERNAL_H
#define WREN_INTERNAL_H
#include <assert.h>
#include <stdint.h>
#include <string.h>
#include "formats.h"
#include "wren.h"

/* ---- fp16 <-> f32, portable (the SIMD files use their own conversion instructions) ---- */
static inline float wren_fp16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t man = h & 0x3ff;
    uint32_t bits;
    if (exp == 0) {
        if (man == 0) {
            bits = sign;
        } else {                                    /* subnormal: renormalise */
            exp = 127 - 15 + 1;
            while (!(man & 0x400)) { man <<= 1; exp--; }
            man &= 0x3ff;
            bits = sign | (exp << 23) | (man << 13);
        }
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | (man << 13);    /* inf, nan */
    } else {
        bits = sign | ((exp + 127 - 15) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

static inline uint16_t wren_f32_to_fp16(float f) {  /* round to nearest even, as F16C and FCVT do */
    uint32_t x;
    memcpy(&x, &f, sizeof x);
    uint32_t sign = (x >> 16) & 0x8000;
    uint32_t absx = x & 0x7fffffff;
    if (absx >= 0x7f800000u) return (uint16_t)(sign | 0x7c00 | (absx > 0x7f800000u ? 0x200 : 0));
    if (absx >= 0x477ff000u) return (uint16_t)(sign | 0x7c00);           /* overflows to inf */
    if (absx < 0x38800000u) {                                             /* result subnormal or zero */
        if (absx < 0x33000000u) return (uint16_t)sign;
        uint32_t e = absx >> 23;
        uint32_t m = (absx & 0x7fffff) | 0x800000;
        uint32_t shift = 126 - e;                                          /* 14 + (112 - e) + ... */
        uint32_t half = 1u << (shift - 1);
        uint32_t r = m >> shift;
        uint32_t rem = m & ((1u << shift) - 1);
        if (rem > half || (rem == half && (r & 1))) r++;
        return (uint16_t)(sign | r);
    }
    uint32_t r = ((absx >> 13) - ((127 - 15) << 10));
    uint32_t rem = absx & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (r & 1))) r++;
    return (uint16_t)(sign | r);
}

/* the 6-bit scale and min of sub-block j (0..7) of a Q4_K / Q5_K super-block (convert.c) */
void wren_k_scale_min(int j, const uint8_t *scales, int *sc, int *m);
/* the 256 quants of a Q6_K super-block, q - 32, in weight order; weight j has the scale scales[j / 16] */
void wren_q6_k_quants(const wren_block_q6_k *blk, int8_t *q);

/* ggml's hsum_float_8: eight float lanes added as ((a0 + a4) + (a2 + a6)) + ((a1 + a5) + (a3 + a7)) */
static inline float wren_hsum8(const float a[8]) {
    return ((a[0] + a[4]) + (a[2] + a[6])) + ((a[1] + a[5]) + (a[3] + a[7]));
}

/* K-quant tiles (formats.h): one row r of a tile of `rows` rows to or from its plain block (pack = 1: into the tile) */
void wren_super_tile_io(int format, int rows, uint8_t *tile, int r, uint8_t *blk, int pack);
void wren_gemv_q4_k_ref(const uint8_t *w, int64_t n, int64_t k, int64_t t0, int64_t t1, const wren_act *a, float *y);
void wren_gemm_q4_k_ref(const uint8_t *w, int64_t n, int64_t k, int64_t t0, int64_t t1, const wren_act *a, float *y,
                        int64_t ldy);
void wren_gemv_q6_k_ref(const uint8_t *w, int64_t n, int64_t k, int64_t t0, int64_t t1, const wren_act *a, float *y);
void wren_gemm_q6_k_ref(const uint8_t *w, int64_t n, int64_t k, int64_t t0, int64_t t1, const wren_act *a, float *y,
                        int64_t ldy);

/* ---- kernels ----
 * gemv: y[r] for rows r of tiles [t0, t1) (only r < n is written), activation row 0.
 * gemm: y[i * ldy + r] for every activation row i and rows r of tiles [t0, t1).
 * w points at the first tile of the matrix; tile (t, b) is at w + (t * k / 32 + b) * tile_bytes. */
typedef void (*wren_gemv_fn)(const uint8_t *w, int64_t n, int64_t k, int64_t t0, int64_t t1, const wren_act *a,
                             float *y);
typedef void (*wren_gemm_fn)(const uint8_t *w, int64_t n, int64_t k, int64_t t0, int64_t t1, const wren_act *a,
                             float *y, int64_t ldy);
typedef void (*wren_quantize_act_fn)(const float *x, int64_t k, int8_t *q, float *d, int32_t *sum, float *s);
/* A kernel set's entry point for one format: `name` calls the file's template `fn` with the format as a constant. */
#define WREN_GEMV_ENTRY(name, fn, FMT)                                                                               \
    static void name(const uint8_t *w, int64_t n, int64_t k, int64_t t0, int64_t t1, const wren_act *a, float *y) {  \
        fn(FMT, w, n, k, t0, t1, a, y);                                                                              \
    }
#define WREN_GEMM_ENTRY(name, fn, FMT)                                                                               \
    static void name(const uint8_t *w, int64_t n, int64_t k, int64_t t0, int64_t t1, const wren_act *a, float *y,    \
                     int64_t ldy) {                                                                                  \
        fn(FMT, w, n, k, t0, t1, a, y, ldy);                                                                         \
    }
/* gemv_q4_0, gemm_q4_0, ... gemm_q8_16: both entry points of each format of blocks of 32 */
#define WREN_ENTRY_POINTS(gemv, gemm)                                                                                \
    WREN_GEMV_ENTRY(gemv_q4_0, gemv, WREN_Q4_0) WREN_GEMM_ENTRY(gemm_q4_0, gemm, WREN_Q4_0)                          \
    WREN_GEMV_ENTRY(gemv_q4_1, gemv, WREN_Q4_1) WREN_GEMM_ENTRY(gemm_q4_1, gemm, WREN_Q4_1)                          \
    WREN_GEMV_ENTRY(gemv_q8_0, gemv, WREN_Q8_0) WREN_GEMM_ENTRY(gemm_q8_0, gemm, WREN_Q8_0)                          \
    WREN_GEMV_ENTRY(gemv_q8_16, gemv, WREN_Q8_16) WREN_GEMM_ENTRY(gemm_q8_16, gemm, WREN_Q8_16)

typedef struct {
    const char *name;       /* "avx2", ... */
    int rows;               /* R */
    int interleave;         /* I, bytes of one row per interleaved unit; 0 = the whole row block (plain) */
    wren_quantize_act_fn quantize_act;
    wren_gemv_fn gemv[WREN_N_FORMATS];    /* NULL for a format the set has no kernels for */
    wren_gemm_fn gemm[WREN_N_FORMATS];
} wren_kernel_set;

/* Reference kernels (quant.c, ref.c), and the helpers SIMD tails may call. */
extern const wren_kernel_set wren_kernels_ref;
void wren_quantize_act_row_ref(const float *x, int64_t k, int8_t *q, float *d, int32_t *sum, float *s);
/* one fp32 scale per 256 values (k a multiple of 256), replicated into the 8 block slots: Q8_K's rounding */
enum { WREN_QK_K = 256 };
void wren_quantize_act_row_k(const float *x, int64_t k, int8_t *q, float *d, int32_t *sum, float *s);
/* its scalar definition, and the implementation this CPU runs (avx2.c, neon.c: bit-identical to it) */
void wren_quantize_act_row_k_ref(const float *x, int64_t k, int8_t *q, float *d, int32_t *sum, float *s);
wren_quantize_act_fn wren_quantize_act_k_get(void);
#if defined(__x86_64__) || defined(_M_X64)
void wren_quantize_act_k_avx2(const float *x, int64_t k, int8_t *q, float *d, int32_t *sum, float *s);
#endif
#if defined(__aarch64__)
void wren_quantize_act_k_neon(const float *x, int64_t k, int8_t *q, float *d, int32_t *sum, float *s);
#endif
/* one row r (0 <= r < R) of a packed tile column range, against activation row i: the scalar twin of the SIMD
 * inner loop, for tails and tests */
float wren_dot_tile_row_ref(int format, const uint8_t *w, int rows, int interleave, int64_t k, int r,
                            const wren_act *a, int64_t i);

#if defined(__x86_64__) || defined(_M_X64)
extern const wren_kernel_set wren_kernels_avx2;
#endif
#if defined(__aarch64__)
extern const wren_kernel_set wren_kernels_neon;
extern const wren_kernel_set wren_kernels_dotprod;
extern const wren_kernel_set wren_kernels_i8mm;
#endif

const wren_kernel_set *wren_kernel_set_get(int variant);   /* NULL when unknown or not available */

/* ---- float vector operations of the forward pass (attention, activations), chosen with the kernels ----
 * The arithmetic is llama.cpp's (ggml's CPU backend as it runs on x86-64 with AVX2 and FMA, without flash attention),
 * so that the logits come out with its bits: each SIMD twin gives the reference's bits on every input.
 *
 * Dot products of the attention add in "lanes": with 8 lanes, value i goes to lane i mod 8 by one fused multiply-add
 * (llamafile's tinyBLAS, which ggml runs for a batch of two tokens or more), and the lanes add up as
 *   hsum8(a) = ((a0 + a4) + (a2 + a6)) + ((a1 + a5) + (a3 + a7));
 * with 32 lanes (ggml_vec_dot_f16, one token), value i < n - n mod 32 goes to lane i mod 32, lanes 8c..8c+7 being
 * accumulator c, and
 *   reduce32(a) = v = (acc0 + acc2) + (acc1 + acc3) lane by lane, t_l = v_l + v_(l+4), (t0 + t1) + (t2 + t3),
 * then the values past the last multiple of 32 are added in double ((double)(x y)) and the sum rounded to float.
 * kq: out[j] = q . k_j over n values for keys j in [j0, j1) (rows `stride` values apart); lanes over the n values.
 * pv: out[i] = sum over keys j in [j0, j1) of p[j] v_j[i]; lane of key j: j mod lanes (the key's position in the
 *     cache: keys outside [j0, j1) have p = 0 and add nothing). work: lanes * n floats.
 * exp: ggml_v_expf, a polynomial after a 2^n split, all in float with fused multiply-adds.
 * silu_mul: g[i] = g[i] / (1 + exp(0 - g[i])) * u[i] (ggml_vec_swiglu_f32), the last n mod 8 values with libm's expf
 *     as ggml's scalar tail. */
typedef struct {
    const char *name;
    void (*to_f16)(uint16_t *dst, const float *src, int n);         /* round to nearest even */
    void (*round_f16)(float *dst, const float *src, int n);        /* to the nearest fp16 value (even), as floats */
    void (*kq)(float *out, const float *q, const uint16_t *k, size_t stride, int j0, int j1, int n, int lanes);
    void (*pv)(float *out, const float *p, const uint16_t *v, size_t stride, int j0, int j1, int n, int lanes,
               float *work);
    void (*exp)(float *dst, const float *src, int n);              /* dst may be src */
    void (*silu_mul)(float *g, const float *u, int n);
} wren_vec_ops;
extern const wren_vec_ops wren_vec_ref;
float wren_exp_ggml(float x);                   /* one value of the reference exp */
const uint16_t *wren_gelu_table(void);          /* fp16 gelu of each fp16 value (ggml's table) */
void wren_gelu_mul(float *g, const float *u, int n);   /* g = gelu(g) u, ggml_vec_geglu_f32 */
#if defined(__x86_64__) || defined(_M_X64)
extern const wren_vec_ops wren_vec_avx2;
#endif
#if defined(__aarch64__)
extern const wren_vec_ops wren_vec_neon;
#endif
const wren_vec_ops *wren_vec_ops_get(void);

/* ---- pool jobs ----
 * A job runs on every worker at once; inside it, wren_job_for splits [0, n) into chunks taken from an atomic counter
 * and ends with a barrier, so a job can chain several parallel steps. */
typedef struct wren_job {
    wren_pool *pool;        /* NULL when the caller runs the job alone */
    int ith, nth;
    int64_t step;           /* how many wren_job_for/barrier steps this thread has passed */
} wren_job;

typedef void (*wren_job_fn)(wren_job *job, void *ctx);
typedef void (*wren_range_fn)(void *ctx, int64_t begin, int64_t end, int ith);

int wren_pool_run(wren_pool *pool, wren_job_fn fn, void *ctx);     /* pool NULL: run fn on this thread */
void wren_job_barrier(wren_job *job);
void wren_job_for(wren_job *job, int64_t n, int64_t chunk, wren_range_fn body, void *ctx);

/* matmuls inside a job (all threads call them; each ends with a barrier). wren_job_matmuls runs up to
 * WREN_MAX_MATMULS products of one activation batch (q, k, v; gate, up) as a single parallel step. */
enum { WREN_MAX_MATMULS = 4 };
void wren_job_matmul(wren_job *job, const wren_weights *w, const wren_act *act, float *y);
void wren_job_matmuls(wren_job *job, const wren_act *act, int n_w, const wren_weights *const *w, float *const *y);
int wren_check_weights(const wren_weights *w);
int wren_check_matmul(const wren_weights *w, const wren_act *act, size_t y_len);

#endif
