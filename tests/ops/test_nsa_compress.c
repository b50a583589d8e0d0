/* SPDX-License-Identifier: Apache-2.0 */
/* nsa_compress: worked examples (nsa-research.md section 9), zero-length segments, ties-away
 * rounding, randomised shapes against a float64 reference, the fused kernel against the
 * portable path, thread-count determinism and reliability, and every validation error. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernel/simd.h"
#include "ops/compress.h"
#include "test_status.h"
#include "reliability.h"
#include "test_util.h"

/* float64 reference of one output element, computed from fp32 copies of the inputs. */
static double ref_elem(const float *x, const float *w, int64_t N, int64_t D, int64_t l,
                       int64_t row0, int64_t n, int64_t e, double *abs_sum)
{
    double s = 0.0, a = 0.0;
    int64_t i;
    for (i = 0; i < l; i++) {
        double p = (double)w[i * N + n] * (double)x[((row0 + i) * N + n) * D + e];
        s += p;
        a += fabs(p);
    }
    if (abs_sum)
        *abs_sum = a;
    return s;
}

static nsa_compress_params params(int64_t l, int64_t d, const int64_t *seq, int64_t count)
{
    nsa_compress_params p = nsa_compress_params_default();
    p.compress_block_size = l;
    p.compress_stride = d;
    p.actual_seq_len = seq;
    p.actual_seq_len_count = count;
    return p;
}

/* Example 1: segments [80, 96, 80], l = 64, d = 16 -> W = [2, 3, 2], T' = 7; window 0 of
 * batch 1 starts at global row 80. Input row t holds the value t, weights are 1 / 64. */
static void example_mindspore(void **state)
{
    const int64_t seq[3] = {80, 176, 256}, N = 2, D = 16;
    nsa_compress_params p = params(64, 16, seq, 3);
    int64_t rows = -1, shape[3], t, i;
    float *x = malloc(256 * N * D * sizeof(float)), w[64 * 2], out[7 * 2 * 16];
    nsa_tensor in, wt, o;
    (void)state;
    assert_int_equal(nsa_compress_output_rows(&p, &rows), NSA_SUCCESS);
    assert_int_equal(rows, 7);
    for (t = 0; t < 256 * N * D; t++)
        x[t] = (float)(t / (N * D));
    for (i = 0; i < 128; i++)
        w[i] = 1.0f / 64.0f;
    shape[0] = 256, shape[1] = N, shape[2] = D;
    in = nsa_tensor_contiguous(x, NSA_DTYPE_F32, 3, shape);
    shape[0] = 64, shape[1] = N;
    wt = nsa_tensor_contiguous(w, NSA_DTYPE_F32, 2, shape);
    shape[0] = 7, shape[1] = N, shape[2] = D;
    o = nsa_tensor_contiguous(out, NSA_DTYPE_F32, 3, shape);
    assert_int_equal(nsa_compress(NULL, &in, &wt, &p, &o), NSA_SUCCESS);
    /* mean of rows [s, s + 64) = s + 31.5: window starts 0, 16 | 80, 96, 112 | 176, 192 */
    {
        const float starts[7] = {0, 16, 80, 96, 112, 176, 192};
        for (i = 0; i < 7; i++)
            assert_true(out[i * N * D] == starts[i] + 31.5f && out[i * N * D + N * D - 1] ==
                        starts[i] + 31.5f);
    }
    free(x);
}

/* Example 2: B = 1, L = 64, l = 32, d = 32, N = 4, D = 32, all ones -> T' = 2, every output
 * 32.0 exactly, in every dtype. */
static void example_aclnn(void **state)
{
    const int64_t seq[1] = {64};
    const nsa_dtype dts[3] = {NSA_DTYPE_F16, NSA_DTYPE_BF16, NSA_DTYPE_F32};
    nsa_compress_params p = params(32, 32, seq, 1);
    float ones[64 * 4 * 32];
    int64_t shape[3], i;
    int k;
    (void)state;
    for (i = 0; i < 64 * 4 * 32; i++)
        ones[i] = 1.0f;
    for (k = 0; k < 3; k++) {
        void *xin = test_to_dtype(ones, 64 * 4 * 32, dts[k]);
        void *win = test_to_dtype(ones, 32 * 4, dts[k]);
        void *obuf = calloc(2 * 4 * 32, 4);
        float *got;
        nsa_tensor in, wt, o;
        shape[0] = 64, shape[1] = 4, shape[2] = 32;
        in = nsa_tensor_contiguous(xin, dts[k], 3, shape);
        shape[0] = 32;
        wt = nsa_tensor_contiguous(win, dts[k], 2, shape);
        shape[0] = 2;
        o = nsa_tensor_contiguous(obuf, dts[k], 3, shape);
        assert_int_equal(nsa_compress(NULL, &in, &wt, &p, &o), NSA_SUCCESS);
        got = test_to_f32(obuf, 2 * 4 * 32, dts[k]);
        for (i = 0; i < 2 * 4 * 32; i++)
            assert_true(got[i] == 32.0f);
        free(got);
        free(obuf);
        free(win);
        free(xin);
    }
}

/* Zero-length segments emit nothing and do not shift the others; an all-empty result is a
 * valid zero-row output. */
static void zero_length_segments(void **state)
{
    const int64_t seq[5] = {0, 40, 40, 100, 100}, N = 3, D = 20, T = 100;
    nsa_compress_params p = params(32, 16, seq, 5);
    test_rng rng;
    float *x = malloc((size_t)(T * N * D) * sizeof(float)), w[32 * 3], out[3 * 3 * 20];
    int64_t rows, shape[3], i, j, n, e;
    const int64_t starts[3] = {0, 40, 56}; /* W = [0, 1, 0, 2, 0] */
    nsa_tensor in, wt, o;
    (void)state;
    test_rng_seed(&rng, 7);
    for (i = 0; i < T * N * D; i++)
        x[i] = test_rng_uniform(&rng, -1, 1);
    for (i = 0; i < 32 * N; i++)
        w[i] = test_rng_uniform(&rng, -1, 1);
    assert_int_equal(nsa_compress_output_rows(&p, &rows), NSA_SUCCESS);
    assert_int_equal(rows, 3);
    shape[0] = T, shape[1] = N, shape[2] = D;
    in = nsa_tensor_contiguous(x, NSA_DTYPE_F32, 3, shape);
    shape[0] = 32;
    wt = nsa_tensor_contiguous(w, NSA_DTYPE_F32, 2, shape);
    shape[0] = 3;
    o = nsa_tensor_contiguous(out, NSA_DTYPE_F32, 3, shape);
    assert_int_equal(nsa_compress(NULL, &in, &wt, &p, &o), NSA_SUCCESS);
    for (j = 0; j < 3; j++)
        for (n = 0; n < N; n++)
            for (e = 0; e < D; e++) {
                double a, r = ref_elem(x, w, N, D, 32, starts[j], n, e, &a);
                /* fp32 sum of 32 products: error <= 32 * 2^-24 * sum |products| */
                assert_true(fabs(out[(j * N + n) * D + e] - r) <= 32 * 0x1p-24 * a);
            }
    /* every segment shorter than l: zero rows, success */
    {
        const int64_t seq2[2] = {20, 40};
        nsa_compress_params p2 = params(32, 16, seq2, 2);
        shape[0] = 40, shape[1] = N, shape[2] = D;
        in = nsa_tensor_contiguous(x, NSA_DTYPE_F32, 3, shape);
        shape[0] = 0;
        o = nsa_tensor_contiguous(out, NSA_DTYPE_F32, 3, shape);
        assert_int_equal(nsa_compress_output_rows(&p2, &rows), NSA_SUCCESS);
        assert_int_equal(rows, 0);
        assert_int_equal(nsa_compress(NULL, &in, &wt, &p2, &o), NSA_SUCCESS);
    }
    free(x);
}

/* The final cast rounds ties away from zero: 1 + 2^-11 is halfway between two f16 values and
 * must become 1 + 2^-10 (ties-to-even would give 1). Likewise for bf16 with 1 + 2^-8. */
static void ties_away_from_zero(void **state)
{
    const int64_t seq[1] = {16};
    nsa_compress_params p = params(16, 16, seq, 1);
    float x[16 * 2], w[16];
    uint16_t xin[32], win[16], out[2];
    int64_t shape[3], i;
    nsa_tensor in, wt, o;
    (void)state;
    memset(x, 0, sizeof x);
    for (i = 0; i < 16; i++)
        w[i] = 1.0f;
    x[0] = 1.0f, x[1] = -1.0f;       /* row 0, channels 0 and 1 */
    x[2] = 0x1p-11f, x[3] = -0x1p-11f; /* row 1 */
    for (i = 0; i < 32; i++)
        xin[i] = nsa_f32_to_f16(x[i], NSA_ROUND_NEAREST_EVEN);
    for (i = 0; i < 16; i++)
        win[i] = nsa_f32_to_f16(w[i], NSA_ROUND_NEAREST_EVEN);
    shape[0] = 16, shape[1] = 1, shape[2] = 2;
    in = nsa_tensor_contiguous(xin, NSA_DTYPE_F16, 3, shape);
    shape[0] = 16, shape[1] = 1;
    wt = nsa_tensor_contiguous(win, NSA_DTYPE_F16, 2, shape);
    shape[0] = 1, shape[1] = 1, shape[2] = 2;
    o = nsa_tensor_contiguous(out, NSA_DTYPE_F16, 3, shape);
    assert_int_equal(nsa_compress(NULL, &in, &wt, &p, &o), NSA_SUCCESS);
    assert_int_equal(out[0], 0x3C01);
    assert_int_equal(out[1], 0xBC01);

    x[2] = 0x1p-8f, x[3] = -0x1p-8f;
    for (i = 0; i < 32; i++)
        xin[i] = nsa_f32_to_bf16(x[i], NSA_ROUND_NEAREST_EVEN);
    for (i = 0; i < 16; i++)
        win[i] = nsa_f32_to_bf16(w[i], NSA_ROUND_NEAREST_EVEN);
    in.dtype = wt.dtype = o.dtype = NSA_DTYPE_BF16;
    assert_int_equal(nsa_compress(NULL, &in, &wt, &p, &o), NSA_SUCCESS);
    assert_int_equal(out[0], 0x3F81);
    assert_int_equal(out[1], 0xBF81);
}

/* f16 special values pass through a window whose other rows are zero: subnormals, the
 * largest finite value, infinities and NaN (checks the vectorised f16 widening). */
static void f16_special_values(void **state)
{
    static const uint16_t vals[8] = {0x0001, 0x03ff, 0x8001, 0x7bff, 0xfbff, 0x7c00, 0xfc00,
                                     0x7e00};
    const int64_t seq[1] = {16};
    nsa_compress_params p = params(16, 16, seq, 1);
    uint16_t x[16 * 8], w[16], out[8];
    int64_t shape[3], i;
    nsa_tensor in, wt, o;
    (void)state;
    memset(x, 0, sizeof x);
    memcpy(x + 3 * 8, vals, sizeof vals); /* row 3 holds the values, every other row 0 */
    for (i = 0; i < 16; i++)
        w[i] = 0x3c00; /* 1.0 */
    shape[0] = 16, shape[1] = 1, shape[2] = 8;
    in = nsa_tensor_contiguous(x, NSA_DTYPE_F16, 3, shape);
    shape[0] = 16, shape[1] = 1;
    wt = nsa_tensor_contiguous(w, NSA_DTYPE_F16, 2, shape);
    shape[0] = 1, shape[1] = 1, shape[2] = 8;
    o = nsa_tensor_contiguous(out, NSA_DTYPE_F16, 3, shape);
    assert_int_equal(nsa_compress(NULL, &in, &wt, &p, &o), NSA_SUCCESS);
    for (i = 0; i < 7; i++)
        assert_int_equal(out[i], vals[i]);
    assert_true((out[7] & 0x7c00) == 0x7c00 && (out[7] & 0x03ff) != 0); /* NaN */
}

/* ---- randomised against float64 ------------------------------------------------------- */

typedef struct rcase {
    int64_t T, N, D, l, d, B, seq[8];
    nsa_dtype dt, out_dt;
    int strided;  /* 1: padded rows, channel stride 2; 2: padded heads and rows (fill_case) */
    int specials; /* sprinkle infinities, NaNs, subnormals and huge values */
    float *x, *w;  /* fp32 values (exact in dt) */
    void *xin, *win;
    nsa_tensor in, wt;
    int64_t rows;
} rcase;

/* Random values and the tensors of a case whose sizes and segments are set. */
static void fill_case(rcase *c, test_rng *rng);

static void make_case(rcase *c, test_rng *rng)
{
    static const int64_t ls[4] = {16, 32, 64, 128};
    int64_t i, total = 0;
    c->l = ls[test_rng_int(rng, 0, 3)];
    c->d = 16 * test_rng_int(rng, 1, c->l / 16);
    c->N = test_rng_int(rng, 1, 5);
    c->D = test_rng_int(rng, 1, 70);
    c->B = test_rng_int(rng, 1, 5);
    for (i = 0; i < c->B; i++) {
        total += test_rng_int(rng, 0, 3) == 0 ? test_rng_int(rng, 0, c->l)
                                               : test_rng_int(rng, 0, 300);
        c->seq[i] = total;
    }
    fill_case(c, rng);
}

static void fill_case(rcase *c, test_rng *rng)
{
    int64_t i, n, e, t;
    c->T = c->seq[c->B - 1];
    c->x = malloc((size_t)(c->T * c->N * c->D + 1) * sizeof(float));
    c->w = malloc((size_t)(c->l * c->N) * sizeof(float));
    for (i = 0; i < c->T * c->N * c->D; i++)
        c->x[i] = test_rng_uniform(rng, -2, 2);
    for (i = 0; i < c->l * c->N; i++)
        c->w[i] = test_rng_uniform(rng, -0.2f, 0.2f);
    if (c->specials) {
        /* inf * 0 and inf - inf make NaNs, huge * huge overflows, tiny * tiny underflows */
        const float sp[8] = {INFINITY, -INFINITY, NAN, 0.0f, 6e4f, -3e38f, 1e-7f, 1e-39f};
        for (i = 0; i < c->T * c->N * c->D; i++)
            if (test_rng_int(rng, 0, 49) == 0)
                c->x[i] = sp[test_rng_int(rng, 0, 7)];
        for (i = 0; i < c->l * c->N; i++)
            if (test_rng_int(rng, 0, 19) == 0)
                c->w[i] = sp[test_rng_int(rng, 0, 7)];
    }
    test_round_to_dtype(c->x, c->T * c->N * c->D, c->dt);
    test_round_to_dtype(c->w, c->l * c->N, c->dt);
    if (c->strided) {
        /* 1: channel stride 2, row stride padded by 3 elements; 2: unit channel stride (the
         * fused kernel's case) with padded heads and rows, one element in (unaligned) */
        const int64_t cs = c->strided == 1 ? 2 : 1;
        const int64_t hs = cs * c->D + (c->strided == 1 ? 1 : 3);
        const int64_t rs = hs * c->N + (c->strided == 1 ? 3 : 5), off = c->strided == 2;
        const size_t es = nsa_dtype_size(c->dt);
        int64_t shape[3], stride[3];
        char *buf = calloc((size_t)(c->T * rs + 1 + off), es);
        for (t = 0; t < c->T; t++)
            for (n = 0; n < c->N; n++)
                for (e = 0; e < c->D; e++) {
                    float v = c->x[(t * c->N + n) * c->D + e];
                    void *dst = buf + (size_t)(off + t * rs + n * hs + e * cs) * es;
                    if (c->dt == NSA_DTYPE_F32)
                        memcpy(dst, &v, 4);
                    else {
                        uint16_t h = c->dt == NSA_DTYPE_F16
                                         ? nsa_f32_to_f16(v, NSA_ROUND_NEAREST_EVEN)
                                         : nsa_f32_to_bf16(v, NSA_ROUND_NEAREST_EVEN);
                        memcpy(dst, &h, 2);
                    }
                }
        shape[0] = c->T, shape[1] = c->N, shape[2] = c->D;
        stride[0] = rs, stride[1] = hs, stride[2] = cs;
        c->xin = buf;
        c->in = nsa_tensor_strided(buf + off * (int64_t)es, c->dt, 3, shape, stride);
    } else {
        int64_t shape[3];
        shape[0] = c->T, shape[1] = c->N, shape[2] = c->D;
        c->xin = test_to_dtype(c->x, c->T * c->N * c->D, c->dt);
        c->in = nsa_tensor_contiguous(c->xin, c->dt, 3, shape);
    }
    {
        int64_t shape[2];
        shape[0] = c->l, shape[1] = c->N;
        c->win = test_to_dtype(c->w, c->l * c->N, c->dt);
        c->wt = nsa_tensor_contiguous(c->win, c->dt, 2, shape);
    }
    {
        nsa_compress_params p = params(c->l, c->d, c->seq, c->B);
        assert_int_equal(nsa_compress_output_rows(&p, &c->rows), NSA_SUCCESS);
    }
}

static void free_case(rcase *c)
{
    free(c->x);
    free(c->w);
    free(c->xin);
    free(c->win);
}

static nsa_status run_rcase(void *user, nsa_context *ctx, void *out, size_t out_size)
{
    rcase *c = (rcase *)user;
    nsa_compress_params p = params(c->l, c->d, c->seq, c->B);
    int64_t shape[3];
    nsa_tensor o;
    (void)out_size;
    shape[0] = c->rows, shape[1] = c->N, shape[2] = c->D;
    o = nsa_tensor_contiguous(out, c->out_dt, 3, shape);
    return nsa_compress(ctx, &c->in, &c->wt, &p, &o);
}

static void check_against_reference(const rcase *c, const void *out)
{
    float *got = test_to_f32(out, c->rows * c->N * c->D, c->out_dt);
    int64_t b, j, n, e, row = 0;
    for (b = 0; b < c->B; b++) {
        int64_t start = b ? c->seq[b - 1] : 0, len = c->seq[b] - start;
        int64_t W = len >= c->l ? (len - c->l) / c->d + 1 : 0;
        for (j = 0; j < W; j++, row++)
            for (n = 0; n < c->N; n++)
                for (e = 0; e < c->D; e++) {
                    double a, r = ref_elem(c->x, c->w, c->N, c->D, c->l, start + j * c->d, n,
                                           e, &a);
                    float g = got[(row * c->N + n) * c->D + e];
                    if (c->out_dt == NSA_DTYPE_F32) {
                        /* fp32 sum of l products (exact for f16/bf16 inputs, one rounding
                         * each for f32): |err| <= (l + 1) * 2^-24 * sum |products| */
                        if (fabs(g - r) > (double)(c->l + 1) * 0x1p-24 * a)
                            fail_msg("row %lld head %lld ch %lld: got %.9g want %.9g",
                                     (long long)row, (long long)n, (long long)e, g, r);
                    } else if (test_ulp_diff(g, r, c->out_dt) > 1.0) {
                        /* 1 ulp: one rounding (ties away) of an fp32 sum accurate to far
                         * less than half an ulp of f16/bf16 */
                        fail_msg("row %lld head %lld ch %lld: got %.9g want %.9g (%s)",
                                 (long long)row, (long long)n, (long long)e, g, r,
                                 nsa_dtype_name(c->out_dt));
                    }
                }
    }
    assert_int_equal(row, c->rows);
    free(got);
}

static void randomised(void **state)
{
    const nsa_dtype dts[3] = {NSA_DTYPE_F16, NSA_DTYPE_BF16, NSA_DTYPE_F32};
    test_rng rng;
    int it;
    (void)state;
    test_rng_seed(&rng, 12345);
    for (it = 0; it < 24; it++) {
        rcase c;
        void *out;
        size_t bytes;
        memset(&c, 0, sizeof c);
        c.dt = dts[it % 3];
        c.out_dt = it % 4 == 3 ? NSA_DTYPE_F32 : c.dt;
        c.strided = it % 2;
        make_case(&c, &rng);
        bytes = (size_t)(c.rows * c.N * c.D) * nsa_dtype_size(c.out_dt);
        out = calloc(bytes + 1, 1);
        if (run_rcase(&c, NULL, out, bytes) != NSA_SUCCESS)
            fail_msg("case %d: %s", it, nsa_last_error());
        check_against_reference(&c, out);
        free(out);
        free_case(&c);
    }
}

/* Element i of an output buffer is a NaN. Which NaN a sum of two NaNs gives depends on the
 * operand order the compiler picked (x86 returns the first), which IEEE 754 leaves open; the
 * comparison below accepts any NaN for a NaN and compares every other value bit for bit. */
static int is_nan_elem(const void *buf, size_t i, nsa_dtype dt)
{
    if (dt == NSA_DTYPE_F32) {
        float f;
        memcpy(&f, (const char *)buf + i * 4, 4);
        return f != f;
    } else {
        uint16_t h;
        memcpy(&h, (const char *)buf + i * 2, 2);
        return dt == NSA_DTYPE_F16 ? (h & 0x7c00) == 0x7c00 && (h & 0x03ff) != 0
                                   : (h & 0x7f80) == 0x7f80 && (h & 0x007f) != 0;
    }
}

/* The fused kernels (AVX-512, or AVX2 with `avx2`) against the portable ring-and-tree path,
 * bit for bit: every l, several d, D a multiple of 16 or not, 1..20 heads, empty and short
 * segments, every dtype pair, contiguous, padded (unit channel stride, unaligned) and
 * channel-strided inputs, special values, 1 or 2 threads. Where the CPU lacks the ISA both runs
 * take the portable path. */
static void check_fast_matches_portable(int avx2)
{
    const nsa_dtype dts[3] = {NSA_DTYPE_BF16, NSA_DTYPE_F16, NSA_DTYPE_F32};
    nsa_context_config cfg = NSA_CONTEXT_CONFIG_INIT;
    nsa_context *ctx2;
    test_rng rng;
    int it;
    nsa_simd_force_avx2(avx2);
    cfg.num_threads = 2;
    assert_int_equal(nsa_context_create(&cfg, &ctx2), NSA_SUCCESS);
    test_rng_seed(&rng, 2024);
    for (it = 0; it < 96; it++) {
        rcase c;
        void *ref, *got;
        size_t bytes;
        int64_t b, total = 0;
        memset(&c, 0, sizeof c);
        c.l = 16 * (1 + it % 8);
        c.d = 16 * test_rng_int(&rng, 1, c.l / 16);
        c.dt = dts[(it / 8) % 3];
        c.out_dt = dts[(it / 24) % 3];
        c.strided = it % 5 == 4 ? 1 : it % 5 >= 2 ? 2 : 0;
        c.specials = it % 7 == 3;
        c.N = test_rng_int(&rng, 1, 20);
        c.D = it % 2 ? 16 * test_rng_int(&rng, 1, 8) : test_rng_int(&rng, 1, 100);
        c.B = test_rng_int(&rng, 1, 4);
        for (b = 0; b < c.B; b++) { /* empty, shorter than l, or a few windows */
            const int kind = test_rng_int(&rng, 0, 3);
            total += kind == 0 ? 0 : kind == 1 ? test_rng_int(&rng, 1, c.l - 1)
                                               : test_rng_int(&rng, c.l, 3 * c.l + 20);
            c.seq[b] = total;
        }
        fill_case(&c, &rng);
        bytes = (size_t)(c.rows * c.N * c.D) * nsa_dtype_size(c.out_dt);
        ref = calloc(bytes + 1, 1);
        got = calloc(bytes + 1, 1);
        nsa_compress_force_portable(1);
        if (run_rcase(&c, NULL, ref, bytes) != NSA_SUCCESS)
            fail_msg("case %d: %s", it, nsa_last_error());
        nsa_compress_force_portable(0);
        if (run_rcase(&c, it % 3 ? NULL : ctx2, got, bytes) != NSA_SUCCESS)
            fail_msg("case %d: %s", it, nsa_last_error());
        {
            const size_t es = nsa_dtype_size(c.out_dt), n = bytes / es;
            size_t i;
            for (i = 0; i < n; i++)
                if (memcmp((char *)ref + i * es, (char *)got + i * es, es) != 0 &&
                    !(is_nan_elem(ref, i, c.out_dt) && is_nan_elem(got, i, c.out_dt)))
                    fail_msg("case %d (l %lld d %lld N %lld D %lld %s -> %s, strided %d): "
                             "element %zu differs", it, (long long)c.l, (long long)c.d,
                             (long long)c.N, (long long)c.D, nsa_dtype_name(c.dt),
                             nsa_dtype_name(c.out_dt), c.strided, i);
        }
        free(ref);
        free(got);
        free_case(&c);
    }
    nsa_context_destroy(ctx2);
    nsa_simd_force_avx2(0);
}

static void fast_matches_portable(void **state)
{
    (void)state;
    check_fast_matches_portable(0);
}

/* The AVX2 kernels, also on an AVX-512 CPU (nsa_simd_force_avx2). */
static void fast_matches_portable_avx2(void **state)
{
    (void)state;
    check_fast_matches_portable(1);
}

/* Rows wider than the op's ring (l * N * D > 2^21 floats) are processed in head groups. */
static void head_groups(void **state)
{
    test_rng rng;
    rcase c;
    void *out;
    size_t bytes;
    (void)state;
    memset(&c, 0, sizeof c);
    test_rng_seed(&rng, 5);
    c.l = 128, c.d = 16, c.N = 20, c.D = 1024, c.B = 1, c.seq[0] = 160;
    c.dt = NSA_DTYPE_BF16;
    c.out_dt = NSA_DTYPE_F32;
    fill_case(&c, &rng);
    bytes = (size_t)(c.rows * c.N * c.D) * 4;
    out = malloc(bytes);
    assert_int_equal(run_rcase(&c, NULL, out, bytes), NSA_SUCCESS);
    check_against_reference(&c, out);
    free(out);
    free_case(&c);
}

/* Bit-identical for any thread count; concurrent callers; clean out-of-memory failures. */
static void reliability(void **state)
{
    test_rng rng;
    rcase c;
    rel_op op;
    (void)state;
    memset(&c, 0, sizeof c);
    test_rng_seed(&rng, 99);
    c.dt = NSA_DTYPE_BF16;
    c.out_dt = NSA_DTYPE_BF16;
    make_case(&c, &rng);
    while (c.rows < 20) { /* make sure there is work for several threads */
        free_case(&c);
        make_case(&c, &rng);
    }
    op.name = "nsa_compress";
    op.run = run_rcase;
    op.user = &c;
    op.out_size = (size_t)(c.rows * c.N * c.D) * 2;
    rel_check_thread_counts(&op);
    rel_check_concurrent(&op);
    rel_check_alloc_failures(&op);
    free_case(&c);
}

/* ---- validation ------------------------------------------------------------------------- */

static void validation_errors(void **state)
{
    static uint16_t x[64 * 2 * 16], w[32 * 2], out[3 * 2 * 16];
    int64_t seq[2] = {32, 64}, shape[3], rows;
    nsa_tensor in, wt, o, bad;
    nsa_compress_params p = params(32, 16, seq, 2), q;
    (void)state;
    shape[0] = 64, shape[1] = 2, shape[2] = 16;
    in = nsa_tensor_contiguous(x, NSA_DTYPE_F16, 3, shape);
    shape[0] = 32;
    wt = nsa_tensor_contiguous(w, NSA_DTYPE_F16, 2, shape);
    shape[0] = 2; /* W = 1 + 1 */
    o = nsa_tensor_contiguous(out, NSA_DTYPE_F16, 3, shape);
    assert_int_equal(nsa_compress(NULL, &in, &wt, &p, &o), NSA_SUCCESS);
    assert_string_equal(nsa_last_error(), "");

    test_expect_status(nsa_compress(NULL, NULL, &wt, &p, &o), NSA_ERR_NULL_POINTER,
           "input must not be NULL");
    test_expect_status(nsa_compress(NULL, &in, NULL, &p, &o), NSA_ERR_NULL_POINTER,
           "weight must not be NULL");
    test_expect_status(nsa_compress(NULL, &in, &wt, &p, NULL), NSA_ERR_NULL_POINTER,
           "output must not be NULL");
    test_expect_status(nsa_compress(NULL, &in, &wt, NULL, &o), NSA_ERR_NULL_POINTER, "params");
    q = p;
    q.actual_seq_len = NULL;
    test_expect_status(nsa_compress(NULL, &in, &wt, &q, &o), NSA_ERR_NULL_POINTER,
           "actual_seq_len must not be NULL");
    q = p;
    q.actual_seq_len_count = 0;
    test_expect_status(nsa_compress(NULL, &in, &wt, &q, &o), NSA_ERR_INVALID_ARGUMENT,
           "actual_seq_len_count must be >= 1");
    /* dtypes */
    bad = wt;
    bad.dtype = NSA_DTYPE_BF16;
    test_expect_status(nsa_compress(NULL, &in, &bad, &p, &o), NSA_ERR_INVALID_ARGUMENT,
           "weight dtype (bf16) must equal input dtype (f16)");
    bad = in;
    bad.dtype = NSA_DTYPE_I8;
    test_expect_status(nsa_compress(NULL, &bad, &wt, &p, &o), NSA_ERR_INVALID_ARGUMENT,
           "input dtype must be one of");
    /* ranks */
    bad = in;
    bad.ndim = 2;
    test_expect_status(nsa_compress(NULL, &bad, &wt, &p, &o), NSA_ERR_INVALID_ARGUMENT,
           "input must have 3 dimensions");
    bad = wt;
    bad.ndim = 3;
    bad.shape[2] = 1;
    bad.stride[2] = 1;
    test_expect_status(nsa_compress(NULL, &in, &bad, &p, &o), NSA_ERR_INVALID_ARGUMENT,
           "weight must have 2 dimensions");
    /* N, D */
    bad = in;
    bad.shape[1] = 0;
    test_expect_status(nsa_compress(NULL, &bad, &wt, &p, &o), NSA_ERR_INVALID_ARGUMENT,
           "head count N) must be >= 1");
    bad = in;
    bad.shape[2] = 0;
    test_expect_status(nsa_compress(NULL, &bad, &wt, &p, &o), NSA_ERR_INVALID_ARGUMENT,
           "head dim D) must be >= 1");
    /* weight shape */
    bad = wt;
    bad.shape[0] = 16;
    test_expect_status(nsa_compress(NULL, &in, &bad, &p, &o), NSA_ERR_INVALID_ARGUMENT,
           "weight.shape[0] must be compress_block_size");
    bad = wt;
    bad.shape[1] = 1;
    test_expect_status(nsa_compress(NULL, &in, &bad, &p, &o), NSA_ERR_INVALID_ARGUMENT,
           "weight.shape[1] must be input.shape[1]");
    /* l and d */
    q = p;
    q.compress_block_size = 40;
    test_expect_status(nsa_compress(NULL, &in, &wt, &q, &o), NSA_ERR_INVALID_ARGUMENT,
           "compress_block_size must be a multiple of 16, got 40");
    q = p;
    q.compress_stride = 24;
    test_expect_status(nsa_compress(NULL, &in, &wt, &q, &o), NSA_ERR_INVALID_ARGUMENT,
           "compress_stride must be a multiple of 16, got 24");
    q = p;
    q.compress_stride = 0;
    test_expect_status(nsa_compress(NULL, &in, &wt, &q, &o), NSA_ERR_INVALID_ARGUMENT,
           "compress_stride must be >= 16, got 0");
    q = p;
    q.compress_block_size = 144;
    test_expect_status(nsa_compress(NULL, &in, &wt, &q, &o), NSA_ERR_INVALID_ARGUMENT,
           "compress_block_size must be <= 128, got 144");
    q = p;
    q.compress_stride = 48;
    test_expect_status(nsa_compress(NULL, &in, &wt, &q, &o), NSA_ERR_INVALID_ARGUMENT,
           "compress_stride (48) must be <= compress_block_size (32)");
    /* prefix sums */
    seq[0] = 70;
    test_expect_status(nsa_compress(NULL, &in, &wt, &p, &o), NSA_ERR_INVALID_ARGUMENT,
           "actual_seq_len must be non-decreasing");
    seq[0] = -1;
    test_expect_status(nsa_compress(NULL, &in, &wt, &p, &o), NSA_ERR_INVALID_ARGUMENT,
           "actual_seq_len must be non-decreasing");
    seq[0] = 32;
    seq[1] = 60;
    test_expect_status(nsa_compress(NULL, &in, &wt, &p, &o), NSA_ERR_INVALID_ARGUMENT,
           "actual_seq_len[1] (the last) must equal input.shape[0] (64), got 60");
    seq[1] = 64;
    /* output */
    bad = o;
    bad.shape[0] = 3;
    test_expect_status(nsa_compress(NULL, &in, &wt, &p, &bad), NSA_ERR_INVALID_ARGUMENT,
           "output.shape[0] must be the window count");
    bad = o;
    bad.shape[2] = 8;
    test_expect_status(nsa_compress(NULL, &in, &wt, &p, &bad), NSA_ERR_INVALID_ARGUMENT,
           "output.shape[2] must be input.shape[2]");
    bad = o;
    bad.dtype = NSA_DTYPE_I32;
    test_expect_status(nsa_compress(NULL, &in, &wt, &p, &bad), NSA_ERR_INVALID_ARGUMENT,
           "output dtype must be one of");
    bad = o;
    bad.data = x;
    test_expect_status(nsa_compress(NULL, &in, &wt, &p, &bad), NSA_ERR_INVALID_ARGUMENT,
           "output must not overlap input");
    /* output_rows helper */
    test_expect_status(nsa_compress_output_rows(&p, NULL), NSA_ERR_NULL_POINTER,
           "rows must not be NULL");
    q = p;
    q.compress_stride = 0;
    test_expect_status(nsa_compress_output_rows(&q, &rows), NSA_ERR_INVALID_ARGUMENT,
           "must be >= 1");

    /* strict level */
    p.validation = NSA_VALIDATE_STRICT;
    assert_int_equal(nsa_compress(NULL, &in, &wt, &p, &o), NSA_SUCCESS);
    bad = in;
    bad.shape[2] = 8;
    bad.stride[1] = 8; /* keep the view inside the buffer */
    bad.stride[0] = 16;
    {
        nsa_tensor o8 = o;
        o8.shape[2] = 8;
        test_expect_status(nsa_compress(NULL, &bad, &wt, &p, &o8), NSA_ERR_UNSUPPORTED,
               "(D) must be a multiple of 16 under strict");
        p.validation = NSA_VALIDATE_DEFAULT;
        assert_int_equal(nsa_compress(NULL, &bad, &wt, &p, &o8), NSA_SUCCESS);
        p.validation = NSA_VALIDATE_STRICT;
    }
    {
        /* D = 272 and N = 129 only need valid views: use broadcast (stride 0) inputs */
        nsa_tensor big = in, wbig = wt, obig = o;
        big.shape[2] = 272, big.stride[2] = 0, big.stride[1] = 0, big.stride[0] = 0;
        test_expect_status(nsa_compress(NULL, &big, &wt, &p, &o), NSA_ERR_UNSUPPORTED,
               "(D) must be <= 256 under strict");
        big = in;
        big.shape[1] = 129, big.stride[1] = 0;
        wbig.shape[1] = 129, wbig.stride[1] = 0;
        obig.shape[1] = 129;
        test_expect_status(nsa_compress(NULL, &big, &wbig, &p, &obig), NSA_ERR_UNSUPPORTED,
               "(N) must be <= 128 under strict");
    }
    bad = in;
    bad.dtype = NSA_DTYPE_F32;
    {
        nsa_tensor w32 = wt;
        w32.dtype = NSA_DTYPE_F32;
        test_expect_status(nsa_compress(NULL, &bad, &w32, &p, &o), NSA_ERR_UNSUPPORTED,
               "f16 or bf16 under strict");
    }
    {
        int64_t seq0[3] = {32, 32, 64};
        nsa_compress_params z = params(32, 16, seq0, 3);
        z.validation = NSA_VALIDATE_STRICT;
        test_expect_status(nsa_compress(NULL, &in, &wt, &z, &o), NSA_ERR_UNSUPPORTED,
               "segment 1 is empty");
    }
}

/* Workspace query and a caller workspace: exact size works, one byte less fails cleanly. */
static void caller_workspace(void **state)
{
    static uint16_t x[64 * 2 * 16], w[32 * 2], out[3 * 2 * 16];
    int64_t seq[1] = {64}, shape[3];
    nsa_compress_params p = params(32, 16, seq, 1);
    nsa_context_config cfg = NSA_CONTEXT_CONFIG_INIT;
    nsa_context *ctx;
    nsa_tensor in, wt, o;
    size_t size = 0;
    void *buf;
    (void)state;
    shape[0] = 64, shape[1] = 2, shape[2] = 16;
    in = nsa_tensor_contiguous(x, NSA_DTYPE_F16, 3, shape);
    shape[0] = 32;
    wt = nsa_tensor_contiguous(w, NSA_DTYPE_F16, 2, shape);
    shape[0] = 3;
    o = nsa_tensor_contiguous(out, NSA_DTYPE_F16, 3, shape);
    cfg.num_threads = 2;
    assert_int_equal(nsa_context_create(&cfg, &ctx), NSA_SUCCESS);
    assert_int_equal(nsa_compress_workspace_size(ctx, &in, &p, &size), NSA_SUCCESS);
    assert_true(size > 0);
    assert_int_equal(posix_memalign(&buf, 64, size), 0); /* workspaces are 64-byte aligned */
    assert_int_equal(nsa_context_set_workspace(ctx, buf, size), NSA_SUCCESS);
    assert_int_equal(nsa_compress(ctx, &in, &wt, &p, &o), NSA_SUCCESS);
    assert_int_equal(nsa_context_set_workspace(ctx, buf, size - 1), NSA_SUCCESS);
    assert_int_equal(nsa_compress(ctx, &in, &wt, &p, &o), NSA_ERR_WORKSPACE_TOO_SMALL);
    nsa_context_destroy(ctx);
    free(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(example_mindspore),  cmocka_unit_test(example_aclnn),
        cmocka_unit_test(zero_length_segments), cmocka_unit_test(ties_away_from_zero),
        cmocka_unit_test(f16_special_values),
        cmocka_unit_test(randomised),         cmocka_unit_test(head_groups),
        cmocka_unit_test(fast_matches_portable),
        cmocka_unit_test(fast_matches_portable_avx2),
        cmocka_unit_test(reliability),
        cmocka_unit_test(validation_errors),  cmocka_unit_test(caller_workspace),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
