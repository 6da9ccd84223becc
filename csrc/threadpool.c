/* threadpool.c - persistent workers with CPU affinity, jobs, chunked parallel loops and barriers.
 *
 * The caller publishes a job by bumping `generation` and sleeps until the last worker is done. Idle workers spin
 * for spin_us (a decode step hands out a job every few milliseconds) and then sleep on a condition variable.
 * Inside a job, every parallel step takes chunks from an atomic counter: a slower core simply takes fewer chunks.
 * A worker that reaches a barrier first spins a bounded number of times, then yields, then sleeps on a futex: when
 * other programs take cores (or there are more workers than cores), the late worker may be off its core for a whole
 * time slice, and spinning against it would only keep it off longer. */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include "internal.h"

#if defined(__x86_64__)
#include <immintrin.h>
static inline void cpu_relax(void) { _mm_pause(); }
#elif defined(__aarch64__)
static inline void cpu_relax(void) { __asm__ volatile("yield" ::: "memory"); }
#else
static inline void cpu_relax(void) {}
#endif

/* an atomic alone on its cache line, so threads polling one do not slow writers of another */
typedef struct { _Alignas(64) atomic_llong v; } line_atomic;
typedef struct { _Alignas(64) atomic_uint v; } line_atomic32;  /* 32 bits: a futex word */

/* Waiting at a barrier: BARRIER_SPINS pauses (the others are microseconds behind when each has a core; 4096 made 3
 * threads on 2 CPUs 5x slower than this), then BARRIER_YIELDS sched_yield calls (a worker of ours may be queued on
 * this core), then a futex sleep. */
enum { BARRIER_SPINS = 256, BARRIER_YIELDS = 2 };

typedef struct {
    wren_pool *pool;
    pthread_t thread;
    int ith;
    int pin;                /* 1 when `cpus` must be applied */
    cpu_set_t cpus;
    int32_t tid;
} worker;

struct wren_pool {
    line_atomic generation;         /* number of the job published last */
    line_atomic n_done;             /* workers done with the current job */
    line_atomic counter[2];         /* chunk counters, alternating between parallel steps */
    line_atomic barrier_count;
    line_atomic32 barrier_phase;    /* futex word: bumped by the last worker to reach a barrier */
    line_atomic barrier_sleepers;   /* workers asleep on barrier_phase (or about to be) */
    line_atomic stop;
    wren_job_fn fn;
    void *ctx;
    int n_threads;
    int spin_us;
    pthread_mutex_t mu;             /* guards the sleeps below */
    pthread_cond_t cv_work;
    pthread_cond_t cv_done;
    pthread_mutex_t run_mu;         /* one job at a time */
    int n_started;
    int start_error;
    worker *workers;
};

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* ---- jobs ---- */

/* Step s of a job takes chunks from counter[s % 2]. At the start of every step, thread 0 zeroes the counter the
 * next step will use: the step before (its last user) has ended for every thread, and the barrier that ends this
 * step publishes the zero before anyone takes from it. */
static inline void step_begin(wren_job *job) {
    if (job->pool && job->ith == 0)
        atomic_store_explicit(&job->pool->counter[(job->step + 1) & 1].v, 0, memory_order_relaxed);
}

static void futex_wait(atomic_uint *word, unsigned expected) {
    syscall(SYS_futex, word, FUTEX_WAIT_PRIVATE, expected, NULL, NULL, 0);  /* returns at once if *word moved on */
}

static void futex_wake_all(atomic_uint *word) { syscall(SYS_futex, word, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0); }

static void barrier_wait(wren_job *job) {
    wren_pool *p = job->pool;
    atomic_uint *phase_word = &p->barrier_phase.v;
    const unsigned phase = atomic_load_explicit(phase_word, memory_order_acquire);
    if (atomic_fetch_add_explicit(&p->barrier_count.v, 1, memory_order_acq_rel) == job->nth - 1) {
        atomic_store_explicit(&p->barrier_count.v, 0, memory_order_relaxed);
        /* seq_cst on both sides: either a sleeper sees the new phase, or this sees the sleeper */
        atomic_fetch_add(phase_word, 1);
        if (atomic_load(&p->barrier_sleepers.v) > 0) futex_wake_all(phase_word);
        return;
    }
    for (int i = 0; i < BARRIER_SPINS; i++) {
        if (atomic_load_explicit(phase_word, memory_order_acquire) != phase) return;
        cpu_relax();
    }
    for (int i = 0; i < BARRIER_YIELDS; i++) {
        if (atomic_load_explicit(phase_word, memory_order_acquire) != phase) return;
        sched_yield();
    }
    atomic_fetch_add(&p->barrier_sleepers.v, 1);
    while (atomic_load(phase_word) == phase) futex_wait(phase_word, phase);
    atomic_fetch_sub(&p->barrier_sleepers.v, 1);
}

void wren_job_barrier(wren_job *job) {
    if (job->pool && job->nth > 1) {
        step_begin(job);
        barrier_wait(job);
    }
    job->step++;
}

void wren_job_for(wren_job *job, int64_t n, int64_t chunk, wren_range_fn body, void *ctx) {
    if (chunk < 1) chunk = 1;
    wren_pool *p = job->pool;
    if (!p || job->nth == 1) {
        for (int64_t b = 0; b < n; b += chunk) body(ctx, b, b + chunk < n ? b + chunk : n, job->ith);
        job->step++;
        return;
    }
    step_begin(job);
    atomic_llong *counter = &p->counter[job->step & 1].v;
    for (;;) {
        const int64_t b = atomic_fetch_add_explicit(counter, chunk, memory_order_relaxed);
        if (b >= n) break;
        body(ctx, b, b + chunk < n ? b + chunk : n, job->ith);
    }
    barrier_wait(job);
    job->step++;
}

/* ---- workers ---- */

static long long wait_for_job(wren_pool *p, long long seen) {
    long long g;
    const int64_t deadline = now_ns() + (int64_t)p->spin_us * 1000;
    for (unsigned i = 0;; i++) {
        g = atomic_load_explicit(&p->generation.v, memory_order_acquire);
        if (g != seen) return g;
        cpu_relax();
        if ((i & 255) == 255 && now_ns() > deadline) break;
    }
    pthread_mutex_lock(&p->mu);
    while ((g = atomic_load_explicit(&p->generation.v, memory_order_acquire)) == seen)
        pthread_cond_wait(&p->cv_work, &p->mu);
    pthread_mutex_unlock(&p->mu);
    return g;
}

static void *worker_main(void *arg) {
    worker *w = arg;
    wren_pool *p = w->pool;
    const int err = w->pin ? pthread_setaffinity_np(pthread_self(), sizeof w->cpus, &w->cpus) : 0;
    w->tid = (int32_t)syscall(SYS_gettid);
    pthread_mutex_lock(&p->mu);
    if (err) p->start_error = WREN_E_CPU;
    p->n_started++;
    pthread_cond_broadcast(&p->cv_done);
    pthread_mutex_unlock(&p->mu);

    long long seen = 0;
    for (;;) {
        seen = wait_for_job(p, seen);
        if (atomic_load_explicit(&p->stop.v, memory_order_acquire)) break;
        wren_job job = {p, w->ith, p->n_threads, 0};
        p->fn(&job, p->ctx);
        if (atomic_fetch_add_explicit(&p->n_done.v, 1, memory_order_acq_rel) + 1 == p->n_threads) {
            pthread_mutex_lock(&p->mu);
            pthread_cond_signal(&p->cv_done);
            pthread_mutex_unlock(&p->mu);
        }
    }
    return NULL;
}

int wren_pool_run(wren_pool *p, wren_job_fn fn, void *ctx) {
    if (!fn) return WREN_E_NULL;
    if (!p) {
        wren_job job = {NULL, 0, 1, 0};
        fn(&job, ctx);
        return WREN_OK;
    }
    pthread_mutex_lock(&p->run_mu);
    p->fn = fn;
    p->ctx = ctx;
    atomic_store_explicit(&p->counter[0].v, 0, memory_order_relaxed);
    atomic_store_explicit(&p->counter[1].v, 0, memory_order_relaxed);
    atomic_store_explicit(&p->n_done.v, 0, memory_order_relaxed);
    pthread_mutex_lock(&p->mu);
    atomic_fetch_add_explicit(&p->generation.v, 1, memory_order_release);
    pthread_cond_broadcast(&p->cv_work);
    while (atomic_load_explicit(&p->n_done.v, memory_order_acquire) < p->n_threads)
        pthread_cond_wait(&p->cv_done, &p->mu);
    pthread_mutex_unlock(&p->mu);
    pthread_mutex_unlock(&p->run_mu);
    return WREN_OK;
}

/* ---- create / destroy ---- */

static void stop_workers(wren_pool *p, int n_created) {
    pthread_mutex_lock(&p->mu);
    atomic_store_explicit(&p->stop.v, 1, memory_order_release);
    atomic_fetch_add_explicit(&p->generation.v, 1, memory_order_release);
    pthread_cond_broadcast(&p->cv_work);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < n_created; i++) pthread_join(p->workers[i].thread, NULL);
}

static void free_pool(wren_pool *p) {
    pthread_mutex_destroy(&p->mu);
    pthread_mutex_destroy(&p->run_mu);
    pthread_cond_destroy(&p->cv_work);
    pthread_cond_destroy(&p->cv_done);
    free(p->workers);
    free(p);
}

int wren_pool_create(const wren_pool_params *params, wren_pool **out) {
    if (!params || !out) return WREN_E_NULL;
    *out = NULL;
    const int n = params->n_threads;
    if (n < 1 || n > WREN_MAX_THREADS) return WREN_E_THREADS;
    if (params->cpus && (params->n_cpus < 1 || params->n_cpus > CPU_SETSIZE)) return WREN_E_CPU;

    /* the CPUs to use: the ones asked for, each of which must be one this process may run on */
    cpu_set_t allowed, chosen;
    CPU_ZERO(&chosen);
    if (sched_getaffinity(0, sizeof allowed, &allowed) != 0) return WREN_E_SYSTEM;
    int list[CPU_SETSIZE], n_list = 0;
    if (params->cpus) {
        for (int i = 0; i < params->n_cpus; i++) {
            const int c = params->cpus[i];
            if (c < 0 || c >= CPU_SETSIZE || !CPU_ISSET(c, &allowed) || CPU_ISSET(c, &chosen)) return WREN_E_CPU;
            CPU_SET(c, &chosen);
            list[n_list++] = c;
        }
    } else {
        for (int c = 0; c < CPU_SETSIZE; c++)
            if (CPU_ISSET(c, &allowed)) { CPU_SET(c, &chosen); list[n_list++] = c; }
    }
    if (params->strict && n > n_list) return WREN_E_THREADS;    /* strict: one CPU per worker */

    wren_pool *p = aligned_alloc(64, (sizeof *p + 63) & ~(size_t)63);
    if (!p) return WREN_E_NOMEM;
    memset(p, 0, sizeof *p);
    p->workers = calloc((size_t)n, sizeof(worker));
    if (!p->workers) { free(p); return WREN_E_NOMEM; }
    p->n_threads = n;
    p->spin_us = params->spin_us < 0 ? 0 : params->spin_us > 1000000 ? 1000000 : params->spin_us;
    pthread_mutex_init(&p->mu, NULL);
    pthread_mutex_init(&p->run_mu, NULL);
    pthread_cond_init(&p->cv_work, NULL);
    pthread_cond_init(&p->cv_done, NULL);

    int created = 0, status = WREN_OK;
    for (int i = 0; i < n; i++) {
        worker *w = &p->workers[i];
        w->pool = p;
        w->ith = i;
        CPU_ZERO(&w->cpus);
        if (params->strict) {
            CPU_SET(list[i], &w->cpus);
            w->pin = 1;
        } else if (params->cpus) {
            w->cpus = chosen;
            w->pin = 1;
        }
        if (pthread_create(&w->thread, NULL, worker_main, w) != 0) { status = WREN_E_SYSTEM; break; }
        created++;
    }
    pthread_mutex_lock(&p->mu);
    while (p->n_started < created) pthread_cond_wait(&p->cv_done, &p->mu);
    if (status == WREN_OK) status = p->start_error;
    pthread_mutex_unlock(&p->mu);
    if (status != WREN_OK) {
        stop_workers(p, created);
        free_pool(p);
        return status;
    }
    *out = p;
    return WREN_OK;
}

void wren_pool_destroy(wren_pool *p) {
    if (!p) return;
    pthread_mutex_lock(&p->run_mu);                 /* let a running job finish */
    pthread_mutex_unlock(&p->run_mu);
    stop_workers(p, p->n_threads);
    free_pool(p);
}

int wren_pool_n_threads(const wren_pool *p) { return p ? p->n_threads : 0; }

int wren_pool_thread_ids(const wren_pool *p, int32_t *tids, int32_t n) {
    if (!p || !tids) return WREN_E_NULL;
    if (n < p->n_threads) return WREN_E_BUFFER;
    for (int i = 0; i < p->n_threads; i++) tids[i] = p->workers[i].tid;
    return WREN_OK;
}

/* ---- probes for tests and `wren info` ---- */

static void probe_job(wren_job *job, void *ctx) { ((int32_t *)ctx)[job->ith] = (int32_t)sched_getcpu(); }

int wren_pool_probe_cpus(wren_pool *p, int32_t *cpus, int32_t n) {
    if (!p || !cpus) return WREN_E_NULL;
    if (n < p->n_threads) return WREN_E_BUFFER;
    return wren_pool_run(p, probe_job, cpus);
}

/* Worker 0 reaches the barrier only once every other worker is asleep in it: a pool whose barrier spun without
 * bound would never get there. */
static void sleep_job(wren_job *job, void *ctx) {
    wren_pool *p = job->pool;
    if (job->ith == 0) {
        const struct timespec pause = {0, 100000};
        while (atomic_load(&p->barrier_sleepers.v) < job->nth - 1) nanosleep(&pause, NULL);
        *(int32_t *)ctx = (int32_t)atomic_load(&p->barrier_sleepers.v);
    }
    wren_job_barrier(job);
}

int wren_pool_probe_sleep(wren_pool *p, int32_t *sleepers) {
    if (!p || !sleepers) return WREN_E_NULL;
    *sleepers = 0;
    return wren_pool_run(p, sleep_job, sleepers);
}

typedef struct {
    int64_t n_chunks;
    int32_t work;
    const int32_t *costs;
    int64_t *taken;
    uint64_t *sink;
} chunk_probe;

/* `iters` steps of a dependent chain of multiplies: a fixed number of instructions, however busy the machine */
static uint64_t busy_work(uint64_t x, int64_t iters) {
    for (int64_t i = 0; i < iters; i++) x = x * 6364136223846793005ull + 1442695040888963407ull;
    return x;
}

static void chunk_body(void *ctx, int64_t b, int64_t e, int ith) {
    chunk_probe *c = ctx;
    const int64_t iters = (int64_t)c->work * (c->costs ? c->costs[ith] : 1);
    for (int64_t i = b; i < e; i++) {
        c->sink[ith] = busy_work(c->sink[ith] + (uint64_t)i, iters);
        c->taken[ith]++;
    }
}

static void chunk_job(wren_job *job, void *ctx) {
    chunk_probe *c = ctx;
    wren_job_for(job, c->n_chunks, 1, chunk_body, c);
}

/* Runs n_chunks chunks and reports how many each worker took. A chunk is `work` steps of busy work, repeated
 * costs[i] times by worker i (costs NULL: once each): a worker of cost 4 is a core four times slower. */
int wren_pool_chunk_counts(wren_pool *p, int64_t n_chunks, int32_t work, const int32_t *costs, int64_t *taken,
                           int32_t n) {
    if (!p || !taken) return WREN_E_NULL;
    if (n < p->n_threads) return WREN_E_BUFFER;
    if (n_chunks < 0 || work < 0) return WREN_E_SHAPE;
    for (int i = 0; costs && i < p->n_threads; i++)
        if (costs[i] < 1 || costs[i] > 1000) return WREN_E_SHAPE;
    uint64_t *sink = calloc((size_t)p->n_threads, sizeof *sink);
    if (!sink) return WREN_E_NOMEM;
    for (int i = 0; i < p->n_threads; i++) taken[i] = 0;
    chunk_probe c = {n_chunks, work, costs, taken, sink};
    const int status = wren_pool_run(p, chunk_job, &c);
    free(sink);
    return status;
}
