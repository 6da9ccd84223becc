/* wren.h - the C interface of Wren's native core.
 *
 * The only header cffi sees: engine/_build.py hands this file to ffi.cdef with its '#' lines removed, so it holds
 * nothing but enums, structs and prototypes. Every function that can fail returns WREN_OK or a negative WREN_E_*
 * status; C never prints, exits or aborts on bad input.
 *
 * Shapes follow the maths of y = W x: a weight matrix has n rows (outputs) and k columns (inputs, a multiple of 32);
 * an activation batch has m rows of k values; the result y is (m, n), row-major.
 */
#ifndef WREN_H
#define WREN_H
#include <stddef.h>
#include <stdint.h>

/* ---- status codes ---------------------------------------------------------------------------------------------- */
enum {
    WREN_OK = 0,
    WREN_E_NULL = -1,       /* a required pointer is NULL */
    WREN_E_SHAPE = -2,      /* a dimension is out of range, or k is not a multiple of 32 */
    WREN_E_BUFFER = -3,     /* a buffer is smaller than the shape needs */
    WREN_E_ALIGN = -4,      /* a buffer is not aligned as the call requires */
    WREN_E_FORMAT = -5,     /* unknown weight format */
    WREN_E_VARIANT = -6,    /* unknown kernel variant, or one this CPU or build cannot run */
    WREN_E_THREADS = -7,    /* thread count out of range */
    WREN_E_CPU = -8,        /* a CPU id that does not exist or that this process may not use */
    WREN_E_NOMEM = -9,      /* an allocation failed */
    WREN_E_SYSTEM = -10,    /* a system call failed (pthread_create, affinity) */
    WREN_E_ABORTED = -11    /* a forward pass stopped early because its abort flag was set */
};
const char *wren_strerror(int status);

/* ---- formats ----------------------------------------------------------------------------------------------------
 * Plain blocks are byte-identical to GGUF's, so Q4_0/Q4_1/Q8_0 tensors load bit-exactly:
 *   Q4_0: fp16 d; uint8 qs[16]          w = (q - 8) * d            18 bytes / 32 weights
 *   Q4_1: fp16 d; fp16 m; uint8 qs[16]  w = q * d + m              20 bytes / 32 weights
 *   Q8_0: fp16 d; int8 qs[32]           w = q * d                  34 bytes / 32 weights
 * In the 4-bit formats weight j of a block is the low nibble of qs[j] (j < 16) or the high nibble of qs[j - 16].
 * One more int8 format holds Q6_K exactly (its 16-value sub-blocks keep their own int8 scale):
 *   Q8_16: fp16 d; int8 sc[2]; int8 qs[32]   w = q * d * sc[j / 16]   36 bytes / 32 weights
 * And two formats keep GGUF's K-quant super-blocks of 256 weights as the file has them (plain blocks are the file's
 * bytes); their products follow llama.cpp's x86 arithmetic bit for bit (csrc/kquant.c). Only the reference and AVX2
 * sets have kernels for them:
 *   Q4_K: fp16 d, dmin; 6-bit sc, m for 8 sub-blocks of 32; 4-bit q   w = d sc q - dmin m   144 bytes / 256
 *   Q6_K: 6-bit q (low 4 bits, high 2); int8 sc per 16; fp16 d        w = d sc (q - 32)     210 bytes / 256 */
enum { WREN_QK = 32, WREN_QK_SUPER = 256 };
typedef enum { WREN_Q4_0 = 0, WREN_Q4_1 = 1, WREN_Q8_0 = 2, WREN_Q8_16 = 3, WREN_Q4_K = 4, WREN_Q6_K = 5 } wren_format;
enum { WREN_N_FORMATS = 6 };

const char *wren_format_name(int format);          /* "q4_0", ...; NULL when unknown */
size_t wren_format_block_bytes(int format);        /* 18, 20, 34, 36, 144, 210; 0 when unknown */
int wren_format_block_weights(int format);         /* 32, or 256 for Q4_K and Q6_K; 0 when unknown */
/* One format's row of the table (csrc/formats.h), as Python sees it. */
typedef struct {
    const char *name;           /* "q4_0", ... */
    int32_t block_weights;      /* weights per plain block */
    int32_t block_bytes;        /* bytes per plain block */
    int32_t bits;               /* bits per quant: 4, 6 or 8 */
    int32_t tile_row_bytes;     /* bytes of one row in a packed tile of more than one row */
    int32_t act_group;          /* values per activation scale it pairs with: 32 (256 also read) or 256 (required) */
    int32_t file_type;          /* the WREN_GGML_* type whose blocks are its plain blocks, or -1 */
    int32_t convert_from;       /* the WREN_GGML_* type turned straight into its blocks (no float pass), or -1 */
    int32_t quantizes;          /* 1 when wren_quantize makes it from floats; 0: blocks come from files only */
} wren_format_info;
int wren_format_describe(int format, wren_format_info *out);    /* WREN_E_FORMAT when unknown */

/* Reference quantization of n_rows x k floats into plain blocks, and back. */
int wren_quantize(int format, const float *x, int64_t n_rows, int64_t k, void *dst, size_t dst_bytes);
int wren_dequantize(int format, const void *src, size_t src_bytes, int64_t n_rows, int64_t k,
                    float *dst, size_t dst_len);

/* ---- kernel variants ------------------------------------------------------------------------------------------
 * A variant is a set of kernels and the packed weight layout they read: tiles of R rows interleaved in units of
 * I bytes (the reference reads plain rows: R = 1). One variant per format is chosen once at start from the CPU's
 * features (WREN_KERNELS=reference in the environment forces the reference). */
typedef enum { WREN_REF = 0, WREN_AVX2 = 1, WREN_NEON = 2, WREN_DOTPROD = 3, WREN_I8MM = 4 } wren_variant;
enum { WREN_N_VARIANTS = 5 };

/* CPU feature bits, as detected (cpuid + xgetbv on x86; getauxval HWCAP/HWCAP2 on Arm). */
enum {
    WREN_CPU_AVX2 = 1, WREN_CPU_FMA = 2, WREN_CPU_F16C = 4, WREN_CPU_AVX512F = 8, WREN_CPU_AVX512VNNI = 16,
    WREN_CPU_AVXVNNI = 32, WREN_CPU_ASIMD = 256, WREN_CPU_ASIMDDP = 512, WREN_CPU_I8MM = 1024, WREN_CPU_SVE = 2048,
    WREN_CPU_ASIMDHP = 4096
};
uint64_t wren_cpu_features(void);
const char *wren_cpu_feature_name(uint64_t bit);   /* "avx2", "asimddp", ...; NULL for an unknown bit */

const char *wren_variant_name(int variant);        /* "reference", "avx2", "neon", "dotprod", "i8mm"; NULL if unknown */
int wren_variant_available(int variant);           /* 1 when compiled in and this CPU can run it, else 0 */
int wren_variant_rows(int variant);                /* R, rows per packed tile; 0 when unknown */
int wren_variant_supports(int variant, int format); /* 1 when the variant has kernels for the format, else 0 */
int wren_variant_chosen(int format);               /* the variant this process packs `format` for; < 0 if unknown */
int wren_kernels_forced_reference(void);           /* 1 when WREN_KERNELS=reference chose the reference */

/* ---- packed weights ---------------------------------------------------------------------------------------- */
typedef struct {
    int32_t format;         /* wren_format */
    int32_t variant;        /* wren_variant whose layout `data` holds */
    int64_t n;              /* rows (outputs) */
    int64_t k;              /* columns (inputs), a multiple of 32 */
    const void *data;       /* (ceil(n / R), k / 32) tiles; rows past n are zero */
    size_t bytes;
    int32_t act_group;      /* values per activation scale in the forward pass: 32 (0 means 32) or 256 */
} wren_weights;

size_t wren_packed_bytes(int variant, int format, int64_t n, int64_t k);   /* 0 when the arguments are invalid */
int wren_repack(int variant, int format, const void *src, size_t src_bytes, int64_t n, int64_t k,
                void *dst, size_t dst_bytes);
int wren_unpack(int variant, int format, const void *src, size_t src_bytes, int64_t n, int64_t k,
                void *dst, size_t dst_bytes);

/* ---- activations ----------------------------------------------------------------------------------------------
 * Activations are quantized on the fly, per row, to int8 blocks of 32 (llama.cpp's Q8_0 / Q8_1): q =
 * round_half_even(x * 127 / max|x|), d = max|x| / 127 rounded to fp16, with the block sum of q kept for Q4_0
 * (d_w d_x (sum q_w q_x - 8 sum q_x)) and s = d sum(q), d before its rounding, rounded to fp16, for Q4_1's min term
 * (d_w d_x sum q_w q_x + m_w s). */
typedef struct {
    int8_t *q;              /* (m, k)       |q| <= 127 */
    float *d;               /* (m, k / 32)  scale of each block */
    int32_t *sum;           /* (m, k / 32)  sum of the block's q */
    float *s;               /* (m, k / 32)  Q8_1's s: fp16(max|x| / 127 * sum), or d * sum for shared scales */
    int64_t m;
    int64_t k;
} wren_act;

size_t wren_act_bytes(int64_t m, int64_t k);      /* 0 when the arguments are invalid */
int wren_act_init(wren_act *act, void *buf, size_t bytes, int64_t m, int64_t k);   /* buf: 64-byte aligned */
int wren_quantize_act(int variant, const float *x, size_t x_len, wren_act *act);
/* The same blocks of 32, but every 256 values (k a multiple of 256) share one scale d = 1 / (127 / max|x|), kept in
 * fp32 and written into each of the 8 blocks' slots: llama.cpp's Q8_K rounding for the inputs of K-quant matrices.
 * Any variant's kernels read it as they read blocks of 32. */
int wren_quantize_act_k(const float *x, size_t x_len, wren_act *act);

/* ---- thread pool ------------------------------------------------------------------------------------------------
 * Persistent workers; the caller hands out a job and sleeps until it is done. Workers take work in chunks from an
 * atomic counter, so a slower core takes fewer chunks, and spin for spin_us between jobs before they sleep. At a
 * barrier a worker spins a bounded number of times, yields, then sleeps until the last one arrives. */
typedef struct wren_pool wren_pool;
enum { WREN_MAX_THREADS = 512 };
typedef struct {
    int32_t n_threads;      /* 1 .. WREN_MAX_THREADS */
    const int32_t *cpus;    /* CPU ids to run on; NULL: any CPU this process may use */
    int32_t n_cpus;
    int32_t strict;         /* 1: worker i pinned alone to cpus[i] (n_threads <= n_cpus); 0: workers share the set */
    int32_t spin_us;        /* 0 .. 1000000 */
} wren_pool_params;

int wren_pool_create(const wren_pool_params *params, wren_pool **out);
void wren_pool_destroy(wren_pool *pool);
int wren_pool_n_threads(const wren_pool *pool);
int wren_pool_thread_ids(const wren_pool *pool, int32_t *tids, int32_t n);  /* kernel ids of the workers */
int wren_pool_probe_cpus(wren_pool *pool, int32_t *cpus, int32_t n);        /* sched_getcpu() seen by each worker */
/* one barrier that worker 0 enters only once the others sleep in it; *sleepers: how many did (n_threads - 1) */
int wren_pool_probe_sleep(wren_pool *pool, int32_t *sleepers);
/* n_chunks chunks of `work` steps of busy work, worker i repeating each costs[i] (1..1000) times (NULL: once) */
int wren_pool_chunk_counts(wren_pool *pool, int64_t n_chunks, int32_t work, const int32_t *costs, int64_t *taken,
                           int32_t n);

/* ---- matrix products ------------------------------------------------------------------------------------------
 * y (act->m, w->n) = act . W^T with the kernels of w->variant; GEMV when act->m == 1, GEMM otherwise.
 * pool NULL runs on the calling thread. */
int wren_matmul(wren_pool *pool, const wren_weights *w, const wren_act *act, float *y, size_t y_len);

/* ---- benchmarks -------------------------------------------------------------------------------------------------
 * Each runs `iters` times inside one pool job (as a forward pass would) and reports the elapsed nanoseconds. */
int wren_bench_read(wren_pool *pool, const void *buf, size_t bytes, int32_t iters, double *ns, uint64_t *checksum);
int wren_bench_matmul(wren_pool *pool, const wren_weights *w, int32_t n_w, const wren_act *act, float *y,
                      size_t y_len, int32_t iters, double *ns);

/* ---- GGUF tensor types, converted at load ------------------------------------------------------------------
 * GGML type ids as they appear in GGUF files. wren_ggml_to_f32 turns n values (a multiple of the type's block) into
 * floats; wren_q4_k_to_q4_1 folds Q4_K super-blocks into Q4_1 blocks of 32 (only the fp16 rounding of each
 * sub-block's scale d*sc and min -dmin*m changes a value). */
enum {
    WREN_GGML_F32 = 0, WREN_GGML_F16 = 1, WREN_GGML_Q4_0 = 2, WREN_GGML_Q4_1 = 3, WREN_GGML_Q5_0 = 6,
    WREN_GGML_Q5_1 = 7, WREN_GGML_Q8_0 = 8, WREN_GGML_Q4_K = 12, WREN_GGML_Q5_K = 13, WREN_GGML_Q6_K = 14,
    WREN_GGML_BF16 = 30
};
size_t wren_ggml_bytes(int ggml_type, int64_t n);          /* 0 when unknown or n is not whole blocks */
int wren_ggml_to_f32(int ggml_type, const void *src, size_t src_bytes, int64_t n, float *dst, size_t dst_len);
int wren_q4_k_to_q4_1(const void *src, size_t src_bytes, int64_t n, void *dst, size_t dst_bytes);
/* n values of a GGML type as plain blocks of a runtime format: each piece of 256 (or of the type's block, or 32)
 * values turned into floats and quantized at once, with the same arithmetic as wren_ggml_to_f32 then wren_quantize */
int wren_ggml_requantize(int ggml_type, const void *src, size_t src_bytes, int64_t n, int format, void *dst,
                         size_t dst_bytes);
/* n values of a GGML type as plain blocks of a runtime format: the file's own bytes (the type is the format's
 * file_type), its direct conversion (convert_from: wren_q4_k_to_q4_1, wren_q5_0_to_q8_0, wren_q6_k_to_q8_16), else
 * wren_ggml_requantize */
int wren_ggml_convert(int ggml_type, const void *src, size_t src_bytes, int64_t n, int format, void *dst,
                      size_t dst_bytes);
/* Q6_K super-blocks as Q8_16 blocks: d copied, each 16-value sub-block's int8 scale kept, q - 32 as int8: exact */
int wren_q6_k_to_q8_16(const void *src, size_t src_bytes, int64_t n, void *dst, size_t dst_bytes);
/* Q5_0 blocks as Q8_0 blocks with the same fp16 scale (q - 16 fits an int8): exact */
int wren_q5_0_to_q8_0(const void *src, size_t src_bytes, int64_t n, void *dst, size_t dst_bytes);

/* Row r of packed weights as floats (embedding lookup from a matrix that is also the tied output layer). */
int wren_weights_row(const wren_weights *w, int64_t r, float *out, int64_t out_len);

/* ---- models and the forward pass -------------------------------------------------------------------------------
 * Python fills these structs from a GGUF file (engine/models/ has one small module per architecture) and keeps
 * every buffer alive; C runs all layers of a batch of tokens in one call, on the pool. */
enum { WREN_ACT_SILU = 0, WREN_ACT_GELU_TANH = 1 };

typedef struct {
    int32_t n_layers, dim, n_heads, n_kv_heads, head_dim, ffn_dim, vocab;
    int32_t rope_dim;           /* rotated values per head, <= head_dim */
    int32_t rope_neox;          /* 1: rotate (i, i + rope_dim/2); 0: adjacent pairs (2i, 2i+1) */
    float rope_base;            /* frequency base of global layers */
    float rope_base_swa;        /* of sliding-window layers (0: the same) */
    float rope_freq_scale;      /* linear rope scaling of global layers: 1 / factor (0 or 1: none) */
    float rope_attn_factor;     /* multiplies rope's cos and sin (0 or 1: none) */
    int32_t rope_orig_ctx;      /* LongRoPE: a context of more positions takes rope_freqs_long */
    int32_t sliding_window;     /* tokens a sliding-window layer sees, 0 when none */
    float norm_eps;
    float attn_scale;           /* multiplies q.k: usually 1 / sqrt(head_dim) */
    float embed_scale;          /* multiplies the embeddings: 1, or sqrt(dim) for gemma */
    int32_t act;                /* WREN_ACT_*: the gate's activation in act(x Wg) * (x Wu) */
    int32_t scale_q;            /* 1: attn_scale multiplies q (after rope, before its fp16 rounding), not q.k
                                   (gemma3, phi3) */
} wren_config;

typedef struct {
    wren_weights wq, wk, wv, wo;            /* (q_dim, dim), (kv_dim, dim) x2, (dim, q_dim) */
    wren_weights w_gate, w_up, w_down;      /* (ffn, dim) x2, (dim, ffn) */
    const float *bq, *bk, *bv;              /* attention biases (qwen2) or NULL */
    const float *attn_norm, *ffn_norm;      /* (dim) */
    const float *post_attn_norm, *post_ffn_norm;   /* (dim) gemma3, or NULL */
    const float *q_norm, *k_norm;           /* (head_dim) gemma3, or NULL */
    int32_t swa;                            /* 1: a sliding-window layer */
    int32_t no_rope;                        /* 1: no rotary embedding in this layer (smollm3) */
} wren_layer;

typedef struct {
    wren_config cfg;
    const wren_layer *layers;               /* (n_layers) */
    wren_weights tok_embd;                  /* (vocab, dim) */
    wren_weights output;                    /* (vocab, dim); the same data as tok_embd when tied */
    const float *output_norm;               /* (dim) */
    const float *rope_freqs;                /* (rope_dim / 2) divisors of the rotary frequencies (llama3; LongRoPE's
                                               short factors), or NULL */
    const float *rope_freqs_long;           /* (rope_dim / 2) LongRoPE's long factors (phi3), or NULL */
} wren_model;

/* A context: one sequence's KV cache (fp16, n_ctx positions) and the scratch of a batch of up to n_batch tokens. */
typedef struct wren_ctx wren_ctx;
int wren_model_check(const wren_model *m);
size_t wren_ctx_bytes(const wren_model *m, int32_t n_ctx, int32_t n_batch, int32_t n_threads);
int wren_ctx_create(const wren_model *m, int32_t n_ctx, int32_t n_batch, int32_t n_threads, wren_ctx **out);
void wren_ctx_destroy(wren_ctx *ctx);
/* A flag the caller may set from another thread: a forward pass of more than one token reads it before each layer
 * and, when it is non-zero, stops with WREN_E_ABORTED (the cache then holds the positions before pos0 only). */
void wren_ctx_set_abort(wren_ctx *ctx, const int32_t *flag);
/* Development: a function called after each step of a forward pass with the step's name (as llama.cpp names its
 * tensors: "attn_norm", "Qcur", ...), its layer (-1 outside the layers) and its output, rows x cols floats, row-major
 * (one row per token). It runs on one pool thread while the others wait; NULL turns it off. */
typedef void (*wren_trace_fn)(void *user, const char *name, int32_t layer, const float *data, int64_t rows,
                              int64_t cols, int64_t stride);
void wren_ctx_set_trace(wren_ctx *ctx, wren_trace_fn fn, void *user);
/* Runs tokens[0..n_tokens) at positions pos0.. (the cache keeps positions < pos0 and is overwritten from pos0 on);
 * logits (vocab floats, or n_tokens * vocab when all_logits) may be NULL. */
int wren_forward(wren_ctx *ctx, const wren_model *m, wren_pool *pool, const int32_t *tokens, int32_t n_tokens,
                 int32_t pos0, float *logits, size_t logits_len, int32_t all_logits);

#endif
