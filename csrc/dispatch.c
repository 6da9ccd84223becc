/* dispatch.c - CPU features, detected once, and the kernel variant chosen for each format. */
#define _GNU_SOURCE
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include "internal.h"

#if defined(__x86_64__)
#include <cpuid.h>
#elif defined(__aarch64__)
#include <sys/auxv.h>
#ifndef HWCAP_ASIMD
#define HWCAP_ASIMD (1 << 1)
#endif
#ifndef HWCAP_ASIMDHP
#define HWCAP_ASIMDHP (1 << 10)
#endif
#ifndef HWCAP_ASIMDDP
#define HWCAP_ASIMDDP (1 << 20)
#endif
#ifndef HWCAP_SVE
#define HWCAP_SVE (1 << 22)
#endif
#ifndef HWCAP2_I8MM
#define HWCAP2_I8MM (1 << 13)
#endif
#endif

const char *wren_strerror(int status) {
    switch (status) {
    case WREN_OK: return "ok";
    case WREN_E_NULL: return "a required buffer or pointer is missing";
    case WREN_E_SHAPE: return "invalid shape (dimensions must be positive and k a multiple of 32)";
    case WREN_E_BUFFER: return "a buffer is smaller than the shape needs";
    case WREN_E_ALIGN: return "a buffer is not aligned as required (64 bytes)";
    case WREN_E_FORMAT: return "unknown weight format";
    case WREN_E_VARIANT: return "kernel variant unknown or not supported by this CPU";
    case WREN_E_THREADS: return "thread count out of range";
    case WREN_E_CPU: return "a CPU id does not exist or is not available to this process";
    case WREN_E_NOMEM: return "out of memory";
    case WREN_E_SYSTEM: return "a system call failed";
    case WREN_E_ABORTED: return "stopped by request";
    default: return "unknown error";
    }
}

/* ---- features ---- */

static uint64_t detect_features(void) {
    uint64_t f = 0;
#if defined(__x86_64__)
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    const int has_fma = (c >> 12) & 1, has_osxsave = (c >> 27) & 1, has_avx = (c >> 28) & 1, has_f16c = (c >> 29) & 1;
    if (!has_osxsave || !has_avx) return 0;
    unsigned xlo, xhi;
    __asm__ volatile("xgetbv" : "=a"(xlo), "=d"(xhi) : "c"(0));
    const int os_ymm = (xlo & 6) == 6;                  /* XMM and YMM state saved by the OS */
    const int os_zmm = (xlo & 0xe6) == 0xe6;            /* plus opmask and ZMM state */
    if (!os_ymm) return 0;
    if (has_fma) f |= WREN_CPU_FMA;
    if (has_f16c) f |= WREN_CPU_F16C;
    if (__get_cpuid_count(7, 0, &a, &b, &c, &d)) {
        if ((b >> 5) & 1) f |= WREN_CPU_AVX2;
        if (os_zmm && ((b >> 16) & 1)) f |= WREN_CPU_AVX512F;
        if (os_zmm && ((c >> 11) & 1)) f |= WREN_CPU_AVX512VNNI;
    }
    if (__get_cpuid_count(7, 1, &a, &b, &c, &d) && ((a >> 4) & 1)) f |= WREN_CPU_AVXVNNI;
#elif defined(__aarch64__)
    const unsigned long hw = getauxval(AT_HWCAP), hw2 = getauxval(AT_HWCAP2);
    if (hw & HWCAP_ASIMD) f |= WREN_CPU_ASIMD;
    if (hw & HWCAP_ASIMDHP) f |= WREN_CPU_ASIMDHP;
    if (hw & HWCAP_ASIMDDP) f |= WREN_CPU_ASIMDDP;
    if (hw & HWCAP_SVE) f |= WREN_CPU_SVE;
    if (hw2 & HWCAP2_I8MM) f |= WREN_CPU_I8MM;
#endif
    return f;
}

static const struct { uint64_t bit; const char *name; } feature_names[] = {
    {WREN_CPU_AVX2, "avx2"}, {WREN_CPU_FMA, "fma"}, {WREN_CPU_F16C, "f16c"}, {WREN_CPU_AVX512F, "avx512f"},
    {WREN_CPU_AVX512VNNI, "avx512vnni"}, {WREN_CPU_AVXVNNI, "avxvnni"}, {WREN_CPU_ASIMD, "asimd"},
    {WREN_CPU_ASIMDDP, "asimddp"}, {WREN_CPU_I8MM, "i8mm"}, {WREN_CPU_SVE, "sve"}, {WREN_CPU_ASIMDHP, "asimdhp"},
};

const char *wren_cpu_feature_name(uint64_t bit) {
    for (size_t i = 0; i < sizeof feature_names / sizeof feature_names[0]; i++)
        if (feature_names[i].bit == bit) return feature_names[i].name;
    return NULL;
}

/* ---- variants ---- */

static pthread_once_t once = PTHREAD_ONCE_INIT;
static uint64_t features;
static int forced_reference;
static int chosen[WREN_N_FORMATS];

static int cpu_runs(int variant) {
    switch (variant) {
    case WREN_REF: return 1;
#if defined(__x86_64__)
    case WREN_AVX2: {
        const uint64_t need = WREN_CPU_AVX2 | WREN_CPU_FMA | WREN_CPU_F16C;
        return (features & need) == need;
    }
#elif defined(__aarch64__)
    case WREN_NEON: return (features & WREN_CPU_ASIMD) != 0;
    case WREN_DOTPROD: return (features & (WREN_CPU_ASIMD | WREN_CPU_ASIMDDP)) == (WREN_CPU_ASIMD | WREN_CPU_ASIMDDP);
    case WREN_I8MM:
        return (features & (WREN_CPU_ASIMD | WREN_CPU_ASIMDDP | WREN_CPU_I8MM)) ==
               (WREN_CPU_ASIMD | WREN_CPU_ASIMDDP | WREN_CPU_I8MM);
#endif
    default: return 0;
    }
}

static const wren_kernel_set *compiled(int variant);

static int has_kernels(int variant, int format) {
    const wren_kernel_set *ks = compiled(variant);
    return ks && ks->gemv[format] && ks->gemm[format];
}

static void init_once(void) {
    features = detect_features();
    const char *env = getenv("WREN_KERNELS");
    forced_reference = env && (strcmp(env, "reference") == 0 || strcmp(env, "ref") == 0);
    /* best first: the most capable variant this CPU runs */
    static const int order[] = {WREN_I8MM, WREN_DOTPROD, WREN_NEON, WREN_AVX2, WREN_REF};
    for (int f = 0; f < WREN_N_FORMATS; f++) {
        chosen[f] = WREN_REF;
        if (forced_reference) continue;
        for (size_t i = 0; i < sizeof order / sizeof order[0]; i++) {
            if (cpu_runs(order[i]) && has_kernels(order[i], f)) { chosen[f] = order[i]; break; }
        }
    }
}

uint64_t wren_cpu_features(void) {
    pthread_once(&once, init_once);
    return features;
}

int wren_kernels_forced_reference(void) {
    pthread_once(&once, init_once);
    return forced_reference;
}

static const wren_kernel_set *compiled(int variant) {
    switch (variant) {
    case WREN_REF: return &wren_kernels_ref;
#if defined(__x86_64__)
    case WREN_AVX2: return &wren_kernels_avx2;
#endif
#if defined(__aarch64__)
    case WREN_NEON: return &wren_kernels_neon;
    case WREN_DOTPROD: return &wren_kernels_dotprod;
    case WREN_I8MM: return &wren_kernels_i8mm;
#endif
    default: return NULL;
    }
}

const wren_kernel_set *wren_kernel_set_get(int variant) {
    pthread_once(&once, init_once);
    return cpu_runs(variant) ? compiled(variant) : NULL;
}

const char *wren_variant_name(int variant) {
    static const char *const names[WREN_N_VARIANTS] = {"reference", "avx2", "neon", "dotprod", "i8mm"};
    return variant >= 0 && variant < WREN_N_VARIANTS ? names[variant] : NULL;
}

int wren_variant_available(int variant) { return wren_kernel_set_get(variant) != NULL; }

int wren_variant_rows(int variant) {
    const wren_kernel_set *ks = compiled(variant);
    return ks ? ks->rows : 0;
}

int wren_variant_supports(int variant, int format) {
    return format >= 0 && format < WREN_N_FORMATS && has_kernels(variant, format);
}

int wren_variant_chosen(int format) {
    pthread_once(&once, init_once);
    if (format < 0 || format >= WREN_N_FORMATS) return WREN_E_FORMAT;
    return chosen[format];
}

const wren_vec_ops *wren_vec_ops_get(void) {
    pthread_once(&once, init_once);
    if (forced_reference) return &wren_vec_ref;
#if defined(__x86_64__)
    if (cpu_runs(WREN_AVX2)) return &wren_vec_avx2;
#elif defined(__aarch64__)
    if (cpu_runs(WREN_NEON)) return &wren_vec_neon;
#endif
    return &wren_vec_ref;
}

wren_quantize_act_fn wren_quantize_act_k_get(void) {
    pthread_once(&once, init_once);
    if (forced_reference) return wren_quantize_act_row_k_ref;
#if defined(__x86_64__)
    if (cpu_runs(WREN_AVX2)) return wren_quantize_act_k_avx2;
#elif defined(__aarch64__)
    if (cpu_runs(WREN_NEON)) return wren_quantize_act_k_neon;
#endif
    return wren_quantize_act_row_k_ref;
}

