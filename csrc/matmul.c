/* matmul.c - matrix products on the pool, and the benchmarks that time them. */
#define _GNU_SOURCE
#include <stdlib.h>
#include <time.h>
#include "internal.h"

int wren_check_weights(const wren_weights *w) {
    if (!w || !w->data) return WREN_E_NULL;
    if (w->format < 0 || w->format >= WREN_N_FORMATS) return WREN_E_FORMAT;
    if (!wren_kernel_set_get(w->variant) || !wren_variant_supports(w->variant, w->format)) return WREN_E_VARIANT;
    if (w->n <= 0 || w->k <= 0 || w->k % wren_block_qk(w->format)) return WREN_E_SHAPE;
    if (wren_is_super(w->format) && w->k > 65536) return WREN_E_SHAPE;    /* the Q6_K kernel's sums table */
    const size_t need = wren_packed_bytes(w->variant, w->format, w->n, w->k);
    if (need == 0) return WREN_E_SHAPE;
    if (w->bytes < need) return WREN_E_BUFFER;
    if ((uintptr_t)w->data % 16) return WREN_E_ALIGN;
    return WREN_OK;
}

int wren_check_matmul(const wren_weights *w, const wren_act *a, size_t y_len) {
    if (!w || !a || !w->data || !a->q || !a->d || !a->sum || !a->s) return WREN_E_NULL;
    const int st = wren_check_weights(w);
    if (st) return st;
    if (a->m <= 0 || a->k != w->k) return WREN_E_SHAPE;
    if ((uintptr_t)a->q % 32 || (uintptr_t)a->d % 4 || (uintptr_t)a->sum % 4 || (uintptr_t)a->s % 4) return WREN_E_ALIGN;
    if ((uint64_t)a->m > SIZE_MAX / (uint64_t)w->n || y_len < (size_t)a->m * (size_t)w->n) return WREN_E_BUFFER;
    return WREN_OK;
}

static int64_t matmul_chunk(int64_t n_tiles, size_t tile_row_bytes, int nth) {
    /* About eight chunks per thread, so a slower core takes fewer; but at least MIN_CHUNK_BYTES of weights each, so
     * the hardware prefetcher streams instead of restarting on every small piece; and a chunk count that is a
     * multiple of the thread count, so small matrices split evenly. */
    enum { MIN_CHUNK_BYTES = 64 * 1024 };
    if (n_tiles < 1) return 1;
    int64_t chunk = n_tiles / ((int64_t)nth * 8);
    const int64_t min_tiles = (int64_t)((MIN_CHUNK_BYTES + tile_row_bytes - 1) / (tile_row_bytes ? tile_row_bytes : 1));
    if (chunk < min_tiles) chunk = min_tiles;
    if (chunk < 1) chunk = 1;
    int64_t n_chunks = (n_tiles + chunk - 1) / chunk;
    n_chunks = (n_chunks + nth - 1) / nth * nth;
    chunk = (n_tiles + n_chunks - 1) / n_chunks;
    return chunk < 1 ? 1 : chunk;
}

/* several products sharing one activation batch, split over the union of their tiles in one parallel step */
typedef struct {
    const wren_weights *const *w;
    float *const *y;
    int n_w;
    const wren_act *a;
    int64_t tiles[WREN_MAX_MATMULS];
} matmuls_ctx;

static void matmuls_range(void *ctx, int64_t b, int64_t e, int ith) {
    (void)ith;
    const matmuls_ctx *c = ctx;
    int64_t base = 0;
    for (int i = 0; i < c->n_w; i++) {
        const int64_t lo = b > base ? b - base : 0, hi = e - base < c->tiles[i] ? e - base : c->tiles[i];
        if (lo < hi) {
            const wren_weights *w = c->w[i];
            const wren_kernel_set *ks = wren_kernel_set_get(w->variant);
            if (c->a->m == 1) ks->gemv[w->format](w->data, w->n, w->k, lo, hi, c->a, c->y[i]);
            else ks->gemm[w->format](w->data, w->n, w->k, lo, hi, c->a, c->y[i], w->n);
        }
        base += c->tiles[i];
    }
}

void wren_job_matmuls(wren_job *job, const wren_act *act, int n_w, const wren_weights *const *w, float *const *y) {
    matmuls_ctx c = {w, y, n_w, act, {0}};
    int64_t total = 0;
    size_t row_bytes = 0;
    for (int i = 0; i < n_w; i++) {
        const int rows = wren_variant_rows(w[i]->variant);
        c.tiles[i] = (w[i]->n + rows - 1) / rows;
        total += c.tiles[i];
        row_bytes = (size_t)(w[i]->k / wren_block_qk(w[i]->format)) * wren_tile_bytes(w[i]->format, rows);
    }
    wren_job_for(job, total, matmul_chunk(total, row_bytes, job->nth), matmuls_range, &c);
}

void wren_job_matmul(wren_job *job, const wren_weights *w, const wren_act *act, float *y) {
    wren_job_matmuls(job, act, 1, &w, &y);
}

typedef struct {
    const wren_weights *w;
    int32_t n_w;
    const wren_act *a;
    float *y;
    int32_t iters;
} matmul_job_ctx;

static void matmul_job(wren_job *job, void *ctx) {
    const matmul_job_ctx *c = ctx;
    for (int32_t i = 0; i < c->iters; i++) wren_job_matmul(job, &c->w[i % c->n_w], c->a, c->y);
}

int wren_matmul(wren_pool *pool, const wren_weights *w, const wren_act *act, float *y, size_t y_len) {
    if (!y) return WREN_E_NULL;
    const int st = wren_check_matmul(w, act, y_len);
    if (st) return st;
    matmul_job_ctx c = {w, 1, act, y, 1};
    return wren_pool_run(pool, matmul_job, &c);
}

/* ---- benchmarks ---- */

static double elapsed_ns(const struct timespec *a, const struct timespec *b) {
    return (double)(b->tv_sec - a->tv_sec) * 1e9 + (double)(b->tv_nsec - a->tv_nsec);
}

int wren_bench_matmul(wren_pool *pool, const wren_weights *w, int32_t n_w, const wren_act *act, float *y,
                      size_t y_len, int32_t iters, double *ns) {
    if (!w || !y || !ns) return WREN_E_NULL;
    if (n_w < 1 || iters < 1) return WREN_E_SHAPE;
    for (int32_t i = 0; i < n_w; i++) {
        const int st = wren_check_matmul(&w[i], act, y_len);
        if (st) return st;
        if (w[i].n != w[0].n || w[i].variant != w[0].variant || w[i].format != w[0].format) return WREN_E_SHAPE;
    }
    matmul_job_ctx c = {w, n_w, act, y, iters};
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    const int st = wren_pool_run(pool, matmul_job, &c);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    *ns = elapsed_ns(&t0, &t1);
    return st;
}

typedef struct {
    const uint64_t *words;
    int64_t n_words;
    int32_t iters;
    uint64_t partial[WREN_MAX_THREADS];
} read_ctx;

enum { READ_CHUNK_WORDS = 8192 };   /* 64 KiB per chunk */

static void read_range(void *ctx, int64_t c0, int64_t c1, int ith) {
    read_ctx *c = ctx;
    const int64_t end = c1 * READ_CHUNK_WORDS < c->n_words ? c1 * READ_CHUNK_WORDS : c->n_words;
    uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    int64_t i = c0 * READ_CHUNK_WORDS;
    for (; i + 4 <= end; i += 4) {          /* four independent sums: the compiler widens this to SIMD loads */
        s0 += c->words[i];
        s1 += c->words[i + 1];
        s2 += c->words[i + 2];
        s3 += c->words[i + 3];
    }
    for (; i < end; i++) s0 += c->words[i];
    c->partial[ith] += s0 + s1 + s2 + s3;
}

static void read_job(wren_job *job, void *ctx) {
    read_ctx *c = ctx;
    const int64_t n_chunks = (c->n_words + READ_CHUNK_WORDS - 1) / READ_CHUNK_WORDS;
    int64_t chunk = n_chunks / ((int64_t)job->nth * 8);
    for (int32_t i = 0; i < c->iters; i++) wren_job_for(job, n_chunks, chunk < 1 ? 1 : chunk, read_range, c);
}

int wren_bench_read(wren_pool *pool, const void *buf, size_t bytes, int32_t iters, double *ns, uint64_t *checksum) {
    if (!buf || !ns || !checksum) return WREN_E_NULL;
    if (bytes < 8 || iters < 1) return WREN_E_SHAPE;
    if ((uintptr_t)buf % 8) return WREN_E_ALIGN;
    read_ctx *c = calloc(1, sizeof *c);
    if (!c) return WREN_E_NOMEM;
    c->words = buf;
    c->n_words = (int64_t)(bytes / 8);
    c->iters = iters;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    const int st = wren_pool_run(pool, read_job, c);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    *ns = elapsed_ns(&t0, &t1);
    uint64_t sum = 0;
    for (int i = 0; i < WREN_MAX_THREADS; i++) sum += c->partial[i];
    *checksum = sum;
    free(c);
    return st;
}
