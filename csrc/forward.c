/* forward.c - the transformer forward pass: every layer for a batch of tokens in one call, on the pool.
 *
 * Pipeline per layer (the maths of llama / qwen2 / gemma3 / phi3, differences marked):
 *   xn = rmsnorm(x) * attn_norm
 *   q, k, v = xn Wq^T (+ bq), xn Wk^T (+ bk), xn Wv^T (+ bv)      (qwen2: biases)
 *   q, k = rmsnorm per head * q_norm, k_norm                       (gemma3)
 *   q, k = rope(q, k, pos)                                          (pairs (i, i+1) for llama; (i, i+d/2) otherwise;
 *                                                                    frequencies divided by rope_freqs (llama3;
 *                                                                    LongRoPE: long factors for a long context),
 *                                                                    scaled by rope_freq_scale (linear); cos and
 *                                                                    sin times rope_attn_factor (LongRoPE);
 *                                                                    none in no_rope layers (smollm3))
 *   cache k, v at pos; o = softmax(q k^T * scale, causal [, sliding window]) v
 *   o = o Wo^T; o = rmsnorm(o) * post_attn_norm                    (gemma3)
 *   x += o
 *   xn = rmsnorm(x) * ffn_norm; h = act(xn Wg^T) * (xn Wu^T); f = h Wd^T; f = rmsnorm(f) * post_ffn_norm (gemma3)
 *   x += f
 * then logits = (rmsnorm(x) * output_norm) Wout^T for the last token or for all of them.
 * Each product's input is quantized to int8 blocks of 32, with an fp16 scale per block, or with one fp32 scale per 256
 * values for weights whose act_group is 256 (llama.cpp's Q8_K for K-quant matrices); a step whose matrices differ
 * quantizes its input both ways. Attention rounds q and the softmax probabilities to fp16 as llama.cpp does.
 * Every step is a parallel loop over rows, heads or weight tiles, separated by barriers. */
#include <math.h>
#include <stdlib.h>
#include "internal.h"

struct wren_ctx {
    int32_t n_ctx, n_batch, n_threads;
    wren_config cfg;
    uint16_t *k_cache;      /* (n_layers, n_kv_heads, n_ctx, head_dim) fp16, as llama.cpp keeps it */
    uint16_t *v_cache;      /* (n_layers, n_kv_heads, n_ctx, head_dim) fp16 */
    float *scratch;         /* the float buffers below live in this one allocation */
    float *x;               /* (n_batch, dim)         residual stream */
    float *xn;              /* (n_batch, max(dim, q_dim)) normed input / attention output */
    float *q, *k, *v;       /* (n_batch, q_dim), (n_batch, kv_dim) x2 */
    float *o;               /* (n_batch, dim)         attention or ffn output before the residual add */
    float *gate, *up;       /* (n_batch, ffn_dim) */
    float *scores;          /* (n_threads, n_ctx) */
    float *pv_work;         /* (n_threads, 32 head_dim): p.v's lanes */
    void *act_buf[2];       /* quantized activations of up to n_batch rows of max(dim, q_dim, ffn_dim): */
    size_t act_bytes;       /* [0] blocks of 32 with their own scales, [1] scales shared by 256 values */
    wren_act act[2];
    float *rope_cos, *rope_sin;    /* (n_batch, rope_dim / 2) for the global base, then for the sliding base */
    const volatile int32_t *abort_flag;  /* set by another thread to stop a batch between layers */
    int32_t aborted;                /* what one thread read from it, for all threads to act on alike */
    wren_trace_fn trace;            /* development: see wren_ctx_set_trace */
    void *trace_user;
};

static int64_t q_dim(const wren_config *c) { return (int64_t)c->n_heads * c->head_dim; }
static int64_t kv_dim(const wren_config *c) { return (int64_t)c->n_kv_heads * c->head_dim; }

/* ---- checks ---- */

static int check_weights(const wren_weights *w, int64_t n, int64_t k) {
    const int st = wren_check_weights(w);
    if (st) return st;
    const int group_ok = w->act_group == WREN_QK_K ? k % WREN_QK_K == 0
                                                   : !wren_is_super(w->format) && (w->act_group == 0 || w->act_group == WREN_QK);
    return w->n == n && w->k == k && group_ok ? WREN_OK : WREN_E_SHAPE;
}

int wren_model_check(const wren_model *m) {
    if (!m || !m->layers || !m->output_norm) return WREN_E_NULL;
    const wren_config *c = &m->cfg;
    if (c->n_layers < 1 || c->n_layers > 4096 || c->dim < 32 || c->dim % 32 || c->n_heads < 1 || c->n_kv_heads < 1 ||
        c->n_heads % c->n_kv_heads || c->head_dim < 2 || c->head_dim % 2 || c->head_dim > 1024 ||
        c->ffn_dim < 32 || c->ffn_dim % 32 || c->vocab < 1 || c->rope_dim < 0 || c->rope_dim > c->head_dim ||
        c->rope_dim % 2 || q_dim(c) % 32 || c->sliding_window < 0 || (c->act != WREN_ACT_SILU && c->act != WREN_ACT_GELU_TANH))
        return WREN_E_SHAPE;
    int st;
    if ((st = check_weights(&m->tok_embd, c->vocab, c->dim)) || (st = check_weights(&m->output, c->vocab, c->dim)))
        return st;
    for (int l = 0; l < c->n_layers; l++) {
        const wren_layer *L = &m->layers[l];
        if (!L->attn_norm || !L->ffn_norm) return WREN_E_NULL;
        if ((st = check_weights(&L->wq, q_dim(c), c->dim)) || (st = check_weights(&L->wk, kv_dim(c), c->dim)) ||
            (st = check_weights(&L->wv, kv_dim(c), c->dim)) || (st = check_weights(&L->wo, c->dim, q_dim(c))) ||
            (st = check_weights(&L->w_gate, c->ffn_dim, c->dim)) || (st = check_weights(&L->w_up, c->ffn_dim, c->dim)) ||
            (st = check_weights(&L->w_down, c->dim, c->ffn_dim)))
            return st;
    }
    return WREN_OK;
}

/* ---- context ---- */

static size_t ctx_floats(const wren_config *c, int64_t n_ctx, int64_t n_batch, int64_t n_threads) {
    const int64_t qd = q_dim(c), kvd = kv_dim(c), wide = qd > c->dim ? qd : c->dim;
    return (size_t)(n_batch * (c->dim + wide + qd + 2 * kvd + c->dim) + 2 * n_batch * (int64_t)c->ffn_dim +
                    n_threads * n_ctx + 2 * n_batch * c->rope_dim + n_threads * 32 * (int64_t)c->head_dim);
}

static size_t cache_values(const wren_config *c, int64_t n_ctx) {   /* of K, and as many of V */
    return (size_t)c->n_layers * (size_t)kv_dim(c) * (size_t)n_ctx;
}

size_t wren_ctx_bytes(const wren_model *m, int32_t n_ctx, int32_t n_batch, int32_t n_threads) {
    if (!m || n_ctx < 1 || n_batch < 1 || n_threads < 1) return 0;
    const wren_config *c = &m->cfg;
    int64_t widest = c->dim > q_dim(c) ? c->dim : q_dim(c);
    if (c->ffn_dim > widest) widest = c->ffn_dim;
    return ctx_floats(c, n_ctx, n_batch, n_threads) * sizeof(float) + 2 * cache_values(c, n_ctx) * sizeof(uint16_t) +
           2 * wren_act_bytes(n_batch, widest) + 64 * 16;
}

void wren_ctx_set_abort(wren_ctx *c, const int32_t *flag) {
    if (c) c->abort_flag = flag;
}

void wren_ctx_set_trace(wren_ctx *c, wren_trace_fn fn, void *user) {
    if (c) c->trace = fn, c->trace_user = user;
}

/* One thread reads the flag; the barrier after it gives every thread the same answer. */
static void read_abort(void *p, int64_t b, int64_t e, int ith) {
    (void)b, (void)e, (void)ith;
    wren_ctx *c = p;
    c->aborted = c->abort_flag && *c->abort_flag;
}

void wren_ctx_destroy(wren_ctx *c) {
    if (!c) return;
    free(c->k_cache);
    free(c->scratch);
    free(c->act_buf[0]);
    free(c->act_buf[1]);
    free(c);
}

int wren_ctx_create(const wren_model *m, int32_t n_ctx, int32_t n_batch, int32_t n_threads, wren_ctx **out) {
    if (!m || !out) return WREN_E_NULL;
    *out = NULL;
    int st = wren_model_check(m);
    if (st) return st;
    if (n_ctx < 1 || n_ctx > (1 << 22) || n_batch < 1 || n_batch > n_ctx || n_batch > (1 << 16)) return WREN_E_SHAPE;
    if (n_threads < 1 || n_threads > WREN_MAX_THREADS) return WREN_E_THREADS;
    const wren_config *c = &m->cfg;
    wren_ctx *ctx = calloc(1, sizeof *ctx);
    if (!ctx) return WREN_E_NOMEM;
    ctx->n_ctx = n_ctx;
    ctx->n_batch = n_batch;
    ctx->n_threads = n_threads;
    ctx->cfg = *c;
    const int64_t qd = q_dim(c), kvd = kv_dim(c), wide = qd > c->dim ? qd : c->dim;
    const size_t floats = ctx_floats(c, n_ctx, n_batch, n_threads);
    float *p = aligned_alloc(64, (floats * sizeof(float) + 63) & ~(size_t)63);
    const size_t cache_bytes = 2 * cache_values(c, n_ctx) * sizeof(uint16_t);
    uint16_t *kv = aligned_alloc(64, (cache_bytes + 63) & ~(size_t)63);
    int64_t widest = wide > c->ffn_dim ? wide : c->ffn_dim;
    ctx->act_bytes = wren_act_bytes(n_batch, widest);
    ctx->act_buf[0] = aligned_alloc(64, (ctx->act_bytes + 63) & ~(size_t)63);
    ctx->act_buf[1] = aligned_alloc(64, (ctx->act_bytes + 63) & ~(size_t)63);
    if (!p || !kv || !ctx->act_buf[0] || !ctx->act_buf[1]) {
        free(p);
        free(kv);
        free(ctx->act_buf[0]);
        free(ctx->act_buf[1]);
        free(ctx);
        return WREN_E_NOMEM;
    }
    ctx->k_cache = kv;
    ctx->v_cache = kv + cache_values(c, n_ctx);
    ctx->scratch = p;
    ctx->x = p; p += (size_t)n_batch * c->dim;
    ctx->xn = p; p += (size_t)n_batch * wide;
    ctx->q = p; p += (size_t)n_batch * qd;
    ctx->k = p; p += (size_t)n_batch * kvd;
    ctx->v = p; p += (size_t)n_batch * kvd;
    ctx->o = p; p += (size_t)n_batch * c->dim;
    ctx->gate = p; p += (size_t)n_batch * c->ffn_dim;
    ctx->up = p; p += (size_t)n_batch * c->ffn_dim;
    ctx->scores = p; p += (size_t)n_threads * n_ctx;
    ctx->pv_work = p; p += (size_t)n_threads * 32 * c->head_dim;
    ctx->rope_cos = p; p += (size_t)n_batch * c->rope_dim;   /* rope_dim / 2 per base, two bases */
    ctx->rope_sin = p;
    *out = ctx;
    return WREN_OK;
}

/* ---- one forward call ---- */

typedef struct {
    wren_ctx *c;
    const wren_model *m;
    const int32_t *tokens;
    int32_t n, pos0;
    float *logits;
    int32_t all_logits;
    int64_t out_first;      /* the row of x that the first output row's logits come from */
    int layer;              /* the layer of the step: each thread runs the steps with its own copy of this struct */
} fwd;

/* llama.cpp's rounding: squares in float, summed in double, the mean rounded to float, 1 / sqrtf in float */
static inline float rms_scale(const float *x, int64_t n, float eps) {
    double ss = 0.0;
    for (int64_t i = 0; i < n; i++) ss += (double)(x[i] * x[i]);
    const float mean = (float)(ss / (double)n);
    return 1.0f / sqrtf(mean + eps);
}

static inline void rmsnorm(float *out, const float *x, const float *w, int64_t n, float eps) {
    const float s = rms_scale(x, n, eps);
    for (int64_t i = 0; i < n; i++) out[i] = x[i] * s * w[i];
}

/* step bodies: ranges over token rows unless noted */

static void embed_rows(void *p, int64_t b, int64_t e, int ith) {
    (void)ith;
    const fwd *f = p;
    const wren_config *c = &f->m->cfg;
    for (int64_t t = b; t < e; t++) {
        float *x = f->c->x + t * c->dim;
        wren_weights_row(&f->m->tok_embd, f->tokens[t], x, c->dim);
        if (c->embed_scale != 1.0f)
            for (int i = 0; i < c->dim; i++) x[i] *= c->embed_scale;
    }
}

/* llama.cpp's rope cache: theta from the position, multiplied by base^(-2 / rope_dim) in float from pair to pair,
 * divided by the pair's frequency factor when the model has them (ggml_rope_cache_init's theta / ff), multiplied by
 * the linear scale in global layers when there is one (rope_yarn's freq_scale * theta), cosf and sinf of it, times
 * the attention factor when there is one (rope_yarn's mscale). LongRoPE takes the long factors when the context
 * holds more than rope_orig_ctx positions (llama.cpp's get_rope_factors, by n_ctx: not by the position) */
static void rope_tables(void *p, int64_t b, int64_t e, int ith) {
    (void)ith;
    const fwd *f = p;
    const wren_config *c = &f->m->cfg;
    const int half = c->rope_dim / 2;
    const int long_ctx = f->m->rope_freqs_long && f->c->n_ctx > c->rope_orig_ctx;
    const float *ff = long_ctx ? f->m->rope_freqs_long : f->m->rope_freqs;
    const float mscale = c->rope_attn_factor > 0.0f ? c->rope_attn_factor : 1.0f;
    for (int64_t t = b; t < e; t++) {
        for (int base_i = 0; base_i < 2; base_i++) {
            const float base = base_i == 0 || c->rope_base_swa <= 0 ? c->rope_base : c->rope_base_swa;
            const float theta_scale = powf(base, -2.0f / (float)c->rope_dim);
            const float fs = base_i == 0 && c->rope_freq_scale > 0.0f ? c->rope_freq_scale : 1.0f;
            float *cs = f->c->rope_cos + ((size_t)base_i * f->c->n_batch + t) * half;
            float *sn = f->c->rope_sin + ((size_t)base_i * f->c->n_batch + t) * half;
            float theta = (float)(f->pos0 + t);
            for (int i = 0; i < half; i++) {
                float th = ff ? theta / ff[i] : theta;
                if (fs != 1.0f) th *= fs;
                cs[i] = cosf(th);
                sn[i] = sinf(th);
                if (mscale != 1.0f) cs[i] *= mscale, sn[i] *= mscale;
                theta *= theta_scale;
            }
        }
    }
}

/* xn = rmsnorm(x) * weight, row by row */
typedef struct { const fwd *f; const float *weight; } norm_step;

static void norm_rows(void *p, int64_t b, int64_t e, int ith) {
    (void)ith;
    const norm_step *s = p;
    const wren_config *c = &s->f->m->cfg;
    for (int64_t t = b; t < e; t++)
        rmsnorm(s->f->c->xn + t * c->dim, s->f->c->x + t * c->dim, s->weight, c->dim, c->norm_eps);
}

typedef struct { const fwd *f; const float *src; int64_t k; int g; } quant_step;

static void quantize_rows(void *p, int64_t b, int64_t e, int ith) {
    (void)ith;
    const quant_step *s = p;
    const wren_kernel_set *ks = wren_kernel_set_get(s->f->m->layers[0].wq.variant);
    wren_act *a = &s->f->c->act[s->g];
    const int64_t nb = s->k / WREN_QK;
    for (int64_t t = b; t < e; t++) {
        if (s->g) wren_quantize_act_row_k(s->src + t * s->k, s->k, a->q + t * s->k, a->d + t * nb, a->sum + t * nb,
                                          a->s + t * nb);
        else ks->quantize_act(s->src + t * s->k, s->k, a->q + t * s->k, a->d + t * nb, a->sum + t * nb, a->s + t * nb);
    }
}

static int act_slot(const wren_weights *w) { return w->act_group == WREN_QK_K ? 1 : 0; }

/* quantize m rows of k floats into the context's activation buffers that the weights w[0..n_w) read (parallel over
 * rows), then run their products */
static void job_products(wren_job *job, const fwd *f, const float *src, int64_t m, int64_t k, int n_w,
                         const wren_weights *const *w, float *const *y) {
    for (int g = 0; g < 2; g++) {
        const wren_weights *ws[WREN_MAX_MATMULS];
        float *ys[WREN_MAX_MATMULS];
        int n = 0;
        for (int i = 0; i < n_w; i++)
            if (act_slot(w[i]) == g) { ws[n] = w[i]; ys[n] = y[i]; n++; }
        if (!n) continue;
        wren_act *a = &f->c->act[g];
        if (job->ith == 0) wren_act_init(a, f->c->act_buf[g], f->c->act_bytes, m, k);
        wren_job_barrier(job);
        quant_step s = {f, src, k, g};
        wren_job_for(job, m, 1, quantize_rows, &s);
        wren_job_matmuls(job, a, n, ws, ys);
    }
}

static void job_product(wren_job *job, const fwd *f, const float *src, int64_t m, int64_t k, const wren_weights *w,
                        float *y) {
    job_products(job, f, src, m, k, 1, &w, &y);
}

static void rope_vec(float *x, const float *cs, const float *sn, int rope_dim, int neox) {
    const int half = rope_dim / 2;
    if (neox) {
        for (int i = 0; i < half; i++) {
            const float a = x[i], b = x[i + half];
            x[i] = fmaf(a, cs[i], -(b * sn[i]));
            x[i + half] = fmaf(a, sn[i], b * cs[i]);
        }
    } else {
        for (int i = 0; i < half; i++) {
            const float a = x[2 * i], b = x[2 * i + 1];
            x[2 * i] = fmaf(a, cs[i], -(b * sn[i]));
            x[2 * i + 1] = fmaf(a, sn[i], b * cs[i]);
        }
    }
}

/* biases, per-head norms, rope, and the k/v rows into the cache */
static void qkv_post(void *p, int64_t b, int64_t e, int ith) {
    (void)ith;
    const fwd *f = p;
    const wren_config *c = &f->m->cfg;
    const wren_layer *L = &f->m->layers[f->layer];
    wren_ctx *ctx = f->c;
    const int hd = c->head_dim, half = c->rope_dim / 2;
    const int64_t qd = q_dim(c), kvd = kv_dim(c);
    const int base_i = L->swa && c->rope_base_swa > 0 ? 1 : 0;
    const wren_vec_ops *vec = wren_vec_ops_get();
    for (int64_t t = b; t < e; t++) {
        float *q = ctx->q + t * qd, *k = ctx->k + t * kvd, *v = ctx->v + t * kvd;
        if (L->bq) for (int64_t i = 0; i < qd; i++) q[i] += L->bq[i];
        if (L->bk) for (int64_t i = 0; i < kvd; i++) k[i] += L->bk[i];
        if (L->bv) for (int64_t i = 0; i < kvd; i++) v[i] += L->bv[i];
        if (L->q_norm) for (int h = 0; h < c->n_heads; h++) rmsnorm(q + h * hd, q + h * hd, L->q_norm, hd, c->norm_eps);
        if (L->k_norm) for (int h = 0; h < c->n_kv_heads; h++) rmsnorm(k + h * hd, k + h * hd, L->k_norm, hd, c->norm_eps);
        const float *cs = ctx->rope_cos + ((size_t)base_i * ctx->n_batch + t) * half;
        const float *sn = ctx->rope_sin + ((size_t)base_i * ctx->n_batch + t) * half;
        if (c->rope_dim > 0 && !L->no_rope) {
            for (int h = 0; h < c->n_heads; h++) rope_vec(q + h * hd, cs, sn, c->rope_dim, c->rope_neox);
            for (int h = 0; h < c->n_kv_heads; h++) rope_vec(k + h * hd, cs, sn, c->rope_dim, c->rope_neox);
        }
        if (c->scale_q)
            for (int64_t i = 0; i < qd; i++) q[i] *= c->attn_scale;
        const int64_t pos = f->pos0 + t;
        for (int h = 0; h < c->n_kv_heads; h++) {
            const size_t row = (((size_t)f->layer * c->n_kv_heads + h) * ctx->n_ctx + pos) * hd;
            vec->to_f16(ctx->k_cache + row, k + h * hd, hd);
            vec->to_f16(ctx->v_cache + row, v + h * hd, hd);
        }
    }
}

/* attention for (token, head) pairs: index i = t * n_heads + h; output into xn (n, q_dim). llama.cpp's arithmetic
 * (internal.h): q to fp16; q.k in 8 lanes for a batch of two tokens or more, 32 for one; the scale; softmax with
 * ggml's exp, each 8 keys (from key 0 on) added in float and those sums in double; the probabilities to fp16; p.v
 * in the same lanes over the keys. */
static void attention(void *p, int64_t b, int64_t e, int ith) {
    const fwd *f = p;
    const wren_config *c = &f->m->cfg;
    const wren_layer *L = &f->m->layers[f->layer];
    wren_ctx *ctx = f->c;
    const int hd = c->head_dim, group = c->n_heads / c->n_kv_heads;
    float *scores = ctx->scores + (size_t)ith * ctx->n_ctx;
    float *work = ctx->pv_work + (size_t)ith * 32 * hd;
    const wren_vec_ops *vec = wren_vec_ops_get();
    const int kq_lanes = f->n >= 2 && hd % 8 == 0 ? 8 : 32, pv_lanes = f->n >= 2 && hd % 4 == 0 ? 8 : 32;
    for (int64_t i = b; i < e; i++) {
        const int64_t t = i / c->n_heads;
        const int h = (int)(i % c->n_heads), kvh = h / group;
        const int64_t pos = f->pos0 + t;
        int64_t start = 0;
        if (L->swa && c->sliding_window > 0 && pos - c->sliding_window + 1 > 0) start = pos - c->sliding_window + 1;
        const float *q = ctx->q + t * q_dim(c) + (size_t)h * hd;
        const uint16_t *kc = ctx->k_cache + ((size_t)f->layer * c->n_kv_heads + kvh) * ctx->n_ctx * hd;
        const uint16_t *vc = ctx->v_cache + ((size_t)f->layer * c->n_kv_heads + kvh) * ctx->n_ctx * hd;
        float qh[1024];     /* head_dim <= 1024 (wren_model_check) */
        vec->round_f16(qh, q, hd);
        const int j0 = (int)start, j1 = (int)pos + 1;
        vec->kq(scores, qh, kc, (size_t)hd, j0, j1, hd, kq_lanes);
        float mx = -INFINITY;
        const float scale = c->scale_q ? 1.0f : c->attn_scale;
        for (int j = j0; j < j1; j++) {
            const float s = scores[j] * scale;
            scores[j] = s;
            if (s > mx) mx = s;
        }
        for (int j = j0; j < j1; j++) scores[j] -= mx;
        vec->exp(scores + j0, scores + j0, j1 - j0);
        double sum = 0.0;
        for (int g = j0 & ~7; g < j1; g += 8) {
            float v[8];
            for (int l = 0; l < 8; l++) v[l] = g + l >= j0 && g + l < j1 ? scores[g + l] : 0.0f;
            sum += (double)wren_hsum8(v);
        }
        const float inv = (float)(1.0 / sum);
        for (int j = j0; j < j1; j++) scores[j] *= inv;
        vec->round_f16(scores + j0, scores + j0, j1 - j0);
        float *out = ctx->xn + t * q_dim(c) + (size_t)h * hd;
        vec->pv(out, scores, vc, (size_t)hd, j0, j1, hd, pv_lanes, work);
    }
}

/* x += norm(o) (gemma3 post norms) or x += o */
typedef struct { const fwd *f; const float *post_norm; } residual_step;

static void residual_rows(void *p, int64_t b, int64_t e, int ith) {
    (void)ith;
    const residual_step *s = p;
    const wren_config *c = &s->f->m->cfg;
    for (int64_t t = b; t < e; t++) {
        float *o = s->f->c->o + t * c->dim, *x = s->f->c->x + t * c->dim;
        if (s->post_norm) rmsnorm(o, o, s->post_norm, c->dim, c->norm_eps);
        for (int i = 0; i < c->dim; i++) x[i] += o[i];
    }
}

static void glu_rows(void *p, int64_t b, int64_t e, int ith) {
    (void)ith;
    const fwd *f = p;
    const wren_config *c = &f->m->cfg;
    const wren_vec_ops *vec = wren_vec_ops_get();
    for (int64_t t = b; t < e; t++) {
        float *g = f->c->gate + t * c->ffn_dim;
        const float *u = f->c->up + t * c->ffn_dim;
        if (c->act == WREN_ACT_SILU) vec->silu_mul(g, u, c->ffn_dim);
        else wren_gelu_mul(g, u, c->ffn_dim);
    }
}

static void final_norm_rows(void *p, int64_t b, int64_t e, int ith) {
    (void)ith;
    const fwd *f = p;
    const wren_config *c = &f->m->cfg;
    for (int64_t t = b; t < e; t++)
        rmsnorm(f->c->xn + t * c->dim, f->c->x + (f->out_first + t) * c->dim, f->m->output_norm, c->dim, c->norm_eps);
}

/* the last layer needs only the rows whose logits are wanted after attention (llama.cpp's inp_out_ids): the last
 * token's row of the attention output and of the residual stream moves to row 0 */
static void select_last_row(void *p, int64_t b, int64_t e, int ith) {
    (void)b, (void)e, (void)ith;
    const fwd *f = p;
    const int64_t dim = f->m->cfg.dim, last = f->n - 1;
    memmove(f->c->o, f->c->o + last * dim, sizeof(float) * (size_t)dim);
    memmove(f->c->x, f->c->x + last * dim, sizeof(float) * (size_t)dim);
}

/* the trace call of a step: every thread has finished it, one reports it, the others wait for that */
static void trace(wren_job *job, const fwd *f, const char *name, int layer, const float *data, int64_t rows,
                  int64_t cols, int64_t stride) {
    if (!f->c->trace) return;
    wren_job_barrier(job);
    if (job->ith == 0) f->c->trace(f->c->trace_user, name, layer, data, rows, cols, stride);
    wren_job_barrier(job);
}

static void forward_job(wren_job *job, void *p) {
    fwd local = *(const fwd *)p, *f = &local;
    const wren_config *c = &f->m->cfg;
    wren_ctx *ctx = f->c;
    const int64_t n = f->n;
    const int64_t qd = q_dim(c), kvd = kv_dim(c);
    const int64_t n_out = !f->logits ? 0 : f->all_logits ? n : 1;
    int64_t rows = n;       /* rows of the residual stream still needed */
    wren_job_for(job, n, 1, embed_rows, f);
    trace(job, f, "inp_embd", -1, ctx->x, n, c->dim, c->dim);
    wren_job_for(job, n, 1, rope_tables, f);
    for (int l = 0; l < c->n_layers; l++) {
        if (n > 1 && ctx->abort_flag) {  /* a prompt batch may stop between layers; a decode step is short */
            wren_job_for(job, 1, 1, read_abort, ctx);
            if (ctx->aborted) return;
        }
        f->layer = l;
        const wren_layer *L = &f->m->layers[l];
        norm_step n1 = {f, L->attn_norm};
        wren_job_for(job, n, 1, norm_rows, &n1);
        trace(job, f, "attn_norm", l, ctx->xn, n, c->dim, c->dim);
        const wren_weights *qkv[] = {&L->wq, &L->wk, &L->wv};
        float *const qkv_out[] = {ctx->q, ctx->k, ctx->v};
        job_products(job, f, ctx->xn, n, c->dim, 3, qkv, qkv_out);
        trace(job, f, "Qmat", l, ctx->q, n, qd, qd);
        trace(job, f, "Kmat", l, ctx->k, n, kvd, kvd);
        trace(job, f, "Vcur", l, ctx->v, n, kvd, kvd);
        wren_job_for(job, n, 1, qkv_post, f);
        trace(job, f, "Qcur", l, ctx->q, n, qd, qd);
        trace(job, f, "Kcur", l, ctx->k, n, kvd, kvd);
        const int last = l == c->n_layers - 1;
        if (last && n_out == 0) return;     /* the cache holds this batch; no logits wanted */
        wren_job_for(job, n * c->n_heads, 1, attention, f);
        trace(job, f, "kqv_out", l, ctx->xn, n, qd, qd);
        job_product(job, f, ctx->xn, n, qd, &L->wo, ctx->o);
        trace(job, f, "attn_out", l, ctx->o, n, c->dim, c->dim);
        if (last && n_out < n) {
            wren_job_for(job, 1, 1, select_last_row, f);
            rows = n_out;
        }
        residual_step r1 = {f, L->post_attn_norm};
        wren_job_for(job, rows, 1, residual_rows, &r1);
        trace(job, f, "ffn_inp", l, ctx->x, rows, c->dim, c->dim);
        norm_step n2 = {f, L->ffn_norm};
        wren_job_for(job, rows, 1, norm_rows, &n2);
        trace(job, f, "ffn_norm", l, ctx->xn, rows, c->dim, c->dim);
        const wren_weights *gate_up[] = {&L->w_gate, &L->w_up};
        float *const gate_up_out[] = {ctx->gate, ctx->up};
        job_products(job, f, ctx->xn, rows, c->dim, 2, gate_up, gate_up_out);
        trace(job, f, "ffn_gate", l, ctx->gate, rows, c->ffn_dim, c->ffn_dim);
        trace(job, f, "ffn_up", l, ctx->up, rows, c->ffn_dim, c->ffn_dim);
        wren_job_for(job, rows, 1, glu_rows, f);
        trace(job, f, "ffn_glu", l, ctx->gate, rows, c->ffn_dim, c->ffn_dim);
        job_product(job, f, ctx->gate, rows, c->ffn_dim, &L->w_down, ctx->o);
        trace(job, f, "ffn_down", l, ctx->o, rows, c->dim, c->dim);
        residual_step r2 = {f, L->post_ffn_norm};
        wren_job_for(job, rows, 1, residual_rows, &r2);
        trace(job, f, "l_out", l, ctx->x, rows, c->dim, c->dim);
    }
    if (!f->logits) return;
    f->out_first = rows - n_out;
    wren_job_for(job, n_out, 1, final_norm_rows, f);
    trace(job, f, "result_norm", -1, ctx->xn, n_out, c->dim, c->dim);
    job_product(job, f, ctx->xn, n_out, c->dim, &f->m->output, f->logits);
    trace(job, f, "result_output", -1, f->logits, n_out, c->vocab, c->vocab);
}

int wren_forward(wren_ctx *ctx, const wren_model *m, wren_pool *pool, const int32_t *tokens, int32_t n_tokens,
                 int32_t pos0, float *logits, size_t logits_len, int32_t all_logits) {
    if (!ctx || !m || !tokens) return WREN_E_NULL;
    if (memcmp(&ctx->cfg, &m->cfg, sizeof ctx->cfg) != 0) return WREN_E_SHAPE;
    if (n_tokens < 1 || n_tokens > ctx->n_batch || pos0 < 0 || (int64_t)pos0 + n_tokens > ctx->n_ctx)
        return WREN_E_SHAPE;
    if (pool && wren_pool_n_threads(pool) > ctx->n_threads) return WREN_E_THREADS;
    for (int32_t i = 0; i < n_tokens; i++)
        if (tokens[i] < 0 || tokens[i] >= m->cfg.vocab) return WREN_E_SHAPE;
    if (logits && logits_len < (size_t)(all_logits ? n_tokens : 1) * (size_t)m->cfg.vocab) return WREN_E_BUFFER;
    fwd f = {ctx, m, tokens, n_tokens, pos0, logits, all_logits, 0, 0};
    ctx->aborted = 0;
    const int status = wren_pool_run(pool, forward_job, &f);
    return status == WREN_OK && ctx->aborted ? WREN_E_ABORTED : status;
}
