/* vec.c - small float vector operations of the forward pass (attention), portable; SIMD twins in arch/. */
#include <math.h>
#include "internal.h"

const uint64_t wren_exp2_tab[32] = {
    0x3ff0000000000000, 0x3fefd9b0d3158574, 0x3fefb5586cf9890f, 0x3fef9301d0125b51,
    0x3fef72b83c7d517b, 0x3fef54873168b9aa, 0x3fef387a6e756238, 0x3fef1e9df51fdee1,
    0x3fef06fe0a31b715, 0x3feef1a7373aa9cb, 0x3feedea64c123422, 0x3feece086061892d,
    0x3feebfdad5362a27, 0x3feeb42b569d4f82, 0x3feeab07dd485429, 0x3feea47eb03a5585,
    0x3feea09e667f3bcd, 0x3fee9f75e8ec5f74, 0x3feea11473eb0187, 0x3feea589994cce13,
    0x3feeace5422aa0db, 0x3feeb737b0cdc5e5, 0x3feec49182a3f090, 0x3feed503b23e255d,
    0x3feee89f995ad3ad, 0x3feeff76f2fb5e47, 0x3fef199bdd85529c, 0x3fef3720dcef9069,
    0x3fef5818dcfba487, 0x3fef7c97337b9b5f, 0x3fefa4afa2a490da, 0x3fefd0765b6e4540,
};

void wren_exp_ref(float *dst, const float *src, int n) {
    for (int i = 0; i < n; i++) dst[i] = expf(src[i]);
}

/* eight partial sums: a single running sum would be one long dependency chain */
static float dot_f32_ref(const float *a, const float *b, int n) {
    float acc[8] = {0};
    int d = 0;
    for (; d + 8 <= n; d += 8)
        for (int l = 0; l < 8; l++) acc[l] += a[d + l] * b[d + l];
    float s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (; d < n; d++) s += a[d] * b[d];
    return s;
}

static void axpy_f32_ref(float *y, float a, const float *x, int n) {
    for (int d = 0; d < n; d++) y[d] += a * x[d];
}

static float dot_f16_ref(const float *a, const uint16_t *b, int n) {
    float acc[8] = {0};
    int d = 0;
    for (; d + 8 <= n; d += 8)
        for (int l = 0; l < 8; l++) acc[l] += a[d + l] * wren_fp16_to_f32(b[d + l]);
    float s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (; d < n; d++) s += a[d] * wren_fp16_to_f32(b[d]);
    return s;
}

static void axpy_f16_ref(float *y, float a, const uint16_t *x, int n) {
    for (int d = 0; d < n; d++) y[d] += a * wren_fp16_to_f32(x[d]);
}

static void to_f16_ref(uint16_t *dst, const float *src, int n) {
    for (int d = 0; d < n; d++) dst[d] = wren_f32_to_fp16(src[d]);
}

static void dot_f16_rows_ref(float *out, const float *a, const uint16_t *b, size_t stride, int n_keys, int n) {
    for (int j = 0; j < n_keys; j++) out[j] = dot_f16_ref(a, b + j * stride, n);
}

static void attn_pv_f16_ref(float *out, const float *p, const uint16_t *v, size_t stride, int n_keys, int n) {
    for (int d = 0; d < n; d++) out[d] = 0.0f;
    for (int j = 0; j < n_keys; j++) axpy_f16_ref(out, p[j], v + j * stride, n);
}

static void round_f16_ref(float *dst, const float *src, int n) {
    for (int d = 0; d < n; d++) dst[d] = wren_fp16_to_f32(wren_f32_to_fp16(src[d]));
}

const wren_vec_ops wren_vec_ref = {"reference", dot_f32_ref, axpy_f32_ref, dot_f16_ref, axpy_f16_ref, to_f16_ref,
                                   dot_f16_rows_ref, attn_pv_f16_ref, round_f16_ref};
