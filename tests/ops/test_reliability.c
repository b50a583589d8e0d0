/* SPDX-License-Identifier: Apache-2.0 */
/* Reliability of every operator: bit-identical results for any thread count, 8 concurrent
 * callers, failing allocations (tests/common/reliability.h), and numerics at the edges
 * (NaN inputs, scores near +-1e38, fully masked rows) as docs/numerics.md documents them.
 * Expected edge values come from the semantics, not from the code under test: a NaN reaches
 * exactly the outputs that depend on it (every other output keeps the bits of a clean run),
 * a one-hot softmax returns the winning value row exactly, a uniform row returns the mean. */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernel/simd.h"
#include "reliability.h"
#include "test_util.h"

/* ---- helpers ------------------------------------------------------------------------------ */

static float *rnd_f32(test_rng *r, size_t n, float lo, float hi)
{
    float *x = (float *)malloc(n * sizeof *x);
    size_t i;
    assert_non_null(x);
    for (i = 0; i < n; i++)
        x[i] = test_rng_uniform(r, lo, hi);
    return x;
}

static void *dup_bytes(const void *p, size_t n)
{
    void *q = malloc(n ? n : 1);
    assert_non_null(q);
    memcpy(q, p, n);
    return q;
}

static nsa_tensor view(void *data, nsa_dtype dt, int32_t ndim, int64_t a, int64_t b, int64_t c,
                       int64_t d)
{
    int64_t shape[4];
    shape[0] = a;
    shape[1] = b;
    shape[2] = c;
    shape[3] = d;
    return nsa_tensor_contiguous(data, dt, ndim, shape);
}

/* which: 0 thread counts, 1 concurrent callers, 2 allocation failures, 3 BLAS backends */
static void run_rel(const rel_op *op, int which)
{
    if (which == 0)
        rel_check_thread_counts(op);
    else if (which == 1)
        rel_check_concurrent(op);
    else if (which == 2)
        rel_check_alloc_failures(op);
    else
        rel_check_backends(op);
}

/* Tiles of at most NSA_FUSED_MAX_ROWS rows skip BLAS on AVX2 (and AVX-512) CPUs: only there
 * do decode and select promise the same bits on both GEMM backends. */
static int few_row_path_runs(void **state)
{
    (void)state;
    return nsa_cpu_has_avx2();
}

/* Every float of `got` in [0, n) is NaN where affected(i) is true and has the bits of
 * `clean` elsewhere. */
typedef int (*affected_fn)(const void *ctx, int64_t i);

static void expect_nan_exactly(const char *what, const float *clean, const float *got, int64_t n,
                               affected_fn affected, const void *ctx)
{
    int64_t i, hit = 0;
    for (i = 0; i < n; i++) {
        if (affected(ctx, i)) {
            if (!isnan(got[i]))
                fail_msg("%s[%lld] = %g, expected NaN (it depends on the NaN input)", what,
                         (long long)i, (double)got[i]);
            hit++;
        } else if (memcmp(&clean[i], &got[i], sizeof(float)) != 0) {
            fail_msg("%s[%lld] = %g changed (clean run %g) though it does not depend on the NaN "
                     "input",
                     what, (long long)i, (double)got[i], (double)clean[i]);
        }
    }
    assert_true(hit > 0);
}

static void expect_all_finite(const char *what, const float *x, int64_t n)
{
    int64_t i;
    for (i = 0; i < n; i++)
        if (!isfinite(x[i]))
            fail_msg("%s[%lld] = %g is not finite", what, (long long)i, (double)x[i]);
}


/* ================================================================================================
 * nsa_compress: T = 100 tokens in segments of 40 and 60, l = 32, d = 16 -> 1 + 2 windows.
 * ============================================================================================= */

enum { CP_T = 100, CP_N = 2, CP_D = 16, CP_L = 32, CP_S = 16, CP_ROWS = 3 };

typedef struct cp_case {
    float *in, *w;
    int64_t seq[2];
} cp_case;

static nsa_status cp_run(void *user, nsa_context *ctx, void *out, size_t size)
{
    const cp_case *c = (const cp_case *)user;
    nsa_compress_params p = nsa_compress_params_default();
    nsa_tensor in = view(c->in, NSA_DTYPE_F32, 3, CP_T, CP_N, CP_D, 0);
    nsa_tensor w = view(c->w, NSA_DTYPE_F32, 2, CP_L, CP_N, 0, 0);
    nsa_tensor o = view(out, NSA_DTYPE_F32, 3, CP_ROWS, CP_N, CP_D, 0);
    (void)size;
    p.compress_block_size = CP_L;
    p.compress_stride = CP_S;
    p.actual_seq_len = c->seq;
    p.actual_seq_len_count = 2;
    return nsa_compress(ctx, &in, &w, &p, &o);
}

static void cp_init(cp_case *c, uint64_t seed)
{
    test_rng r;
    test_rng_seed(&r, seed);
    c->in = rnd_f32(&r, (size_t)CP_T * CP_N * CP_D, -2.0f, 2.0f);
    c->w = rnd_f32(&r, (size_t)CP_L * CP_N, -1.0f, 1.0f);
    c->seq[0] = 40;
    c->seq[1] = CP_T;
}

static void cp_free(cp_case *c)
{
    free(c->in);
    free(c->w);
}

static void cp_rel(int which)
{
    cp_case c;
    rel_op op;
    cp_init(&c, 11);
    op.name = "nsa_compress";
    op.run = cp_run;
    op.user = &c;
    op.out_size = (size_t)CP_ROWS * CP_N * CP_D * sizeof(float);
    run_rel(&op, which);
    cp_free(&c);
}

static void test_compress_threads(void **s) { (void)s; cp_rel(0); }
static void test_compress_concurrent(void **s) { (void)s; cp_rel(1); }
static void test_compress_alloc(void **s) { (void)s; cp_rel(2); }
static void test_compress_backends(void **s) { (void)s; cp_rel(3); }

/* Window j of segment b covers tokens start_b + j*d .. + l - 1: row 0 = tokens [0, 32),
 * rows 1, 2 = tokens [40, 72) and [56, 88). */
typedef struct cp_nan_at {
    int64_t t, n, e;
} cp_nan_at;

static int cp_affected(const void *p, int64_t i)
{
    const cp_nan_at *a = (const cp_nan_at *)p;
    static const int64_t start[CP_ROWS] = {0, 40, 56};
    int64_t row = i / (CP_N * CP_D), n = (i / CP_D) % CP_N, e = i % CP_D;
    return n == a->n && e == a->e && a->t >= start[row] && a->t < start[row] + CP_L;
}

static void test_compress_edges(void **s)
{
    cp_case c;
    float clean[CP_ROWS * CP_N * CP_D], got[CP_ROWS * CP_N * CP_D];
    cp_nan_at at = {60, 1, 5}; /* inside windows 1 and 2 */
    int64_t i;
    (void)s;
    cp_init(&c, 12);
    assert_int_equal(cp_run(&c, NULL, clean, sizeof clean), NSA_SUCCESS);
    /* NaN input: exactly the windows containing the token, that head and channel. */
    c.in[(at.t * CP_N + at.n) * CP_D + at.e] = NAN;
    assert_int_equal(cp_run(&c, NULL, got, sizeof got), NSA_SUCCESS);
    expect_nan_exactly("compress output", clean, got, CP_ROWS * CP_N * CP_D, cp_affected, &at);
    /* +inf input: +inf where its weight is positive, -inf where negative (IEEE sums). */
    c.in[(at.t * CP_N + at.n) * CP_D + at.e] = INFINITY;
    c.w[(at.t - 40) * CP_N + at.n] = 0.5f;
    c.w[(at.t - 56) * CP_N + at.n] = -0.5f;
    assert_int_equal(cp_run(&c, NULL, got, sizeof got), NSA_SUCCESS);
    assert_true(isinf(got[(1 * CP_N + at.n) * CP_D + at.e]) && got[(1 * CP_N + at.n) * CP_D + at.e] > 0);
    assert_true(isinf(got[(2 * CP_N + at.n) * CP_D + at.e]) && got[(2 * CP_N + at.n) * CP_D + at.e] < 0);
    /* Huge inputs: sums beyond FLT_MAX overflow to inf, those below stay finite and exact. */
    for (i = 0; i < CP_T * CP_N * CP_D; i++)
        c.in[i] = 3e38f;
    for (i = 0; i < CP_L * CP_N; i++)
        c.w[i] = 0.0f;
    c.w[0] = 1.0f; /* window sums of one term, head 0: exactly 3e38 */
    c.w[1] = 1.0f; /* head 1: two terms of 3e38 -> overflow to +inf */
    c.w[3] = 1.0f;
    assert_int_equal(cp_run(&c, NULL, got, sizeof got), NSA_SUCCESS);
    for (i = 0; i < CP_ROWS * CP_D; i++) {
        assert_true(got[(i / CP_D) * CP_N * CP_D + i % CP_D] == 3e38f);
        assert_true(isinf(got[((i / CP_D) * CP_N + 1) * CP_D + i % CP_D]));
    }
    cp_free(&c);
}

/* ================================================================================================
 * nsa_compress_attention: batches of 5 and 7 queries over 8 and 12 compressed keys, N1 = 4,
 * N2 = 2, D = D2 = 16, l = 32, d = 16, l' = 64 (m = 4 -> 2 and 3 selection blocks), k = 2.
 * ============================================================================================= */

enum { CA_T1 = 12, CA_T2 = 20, CA_N1 = 4, CA_N2 = 2, CA_D = 16, CA_K = 2, CA_MS1 = 7, CA_MS2 = 12 };
enum {
    CA_OUT = CA_T1 * CA_N1 * CA_D,
    CA_TOPK = CA_T1 * CA_N2 * CA_K,
    CA_STAT = CA_T1 * CA_N1 * 8
};

typedef struct ca_case {
    float *q, *k, *v;
    uint8_t *mask; /* NULL = none */
    float scale;
    int64_t qseq[2], kseq[2];
} ca_case;

typedef struct ca_out {
    float out[CA_OUT];
    int32_t topk[CA_TOPK];
    float smax[CA_STAT], ssum[CA_STAT];
} ca_out;

static nsa_status ca_run(void *user, nsa_context *ctx, void *outp, size_t size)
{
    const ca_case *c = (const ca_case *)user;
    ca_out *o = (ca_out *)outp;
    nsa_compress_attention_params p = nsa_compress_attention_params_default();
    nsa_tensor q = view(c->q, NSA_DTYPE_F32, 3, CA_T1, CA_N1, CA_D, 0);
    nsa_tensor k = view(c->k, NSA_DTYPE_F32, 3, CA_T2, CA_N2, CA_D, 0);
    nsa_tensor v = view(c->v, NSA_DTYPE_F32, 3, CA_T2, CA_N2, CA_D, 0);
    nsa_tensor m = view(c->mask, NSA_DTYPE_U8, 2, CA_MS1, CA_MS2, 0, 0);
    nsa_tensor ao = view(o->out, NSA_DTYPE_F32, 3, CA_T1, CA_N1, CA_D, 0);
    nsa_tensor ti = view(o->topk, NSA_DTYPE_I32, 3, CA_T1, CA_N2, CA_K, 0);
    nsa_tensor sm = view(o->smax, NSA_DTYPE_F32, 3, CA_T1, CA_N1, 8, 0);
    nsa_tensor ss = view(o->ssum, NSA_DTYPE_F32, 3, CA_T1, CA_N1, 8, 0);
    (void)size;
    p.scale_value = c->scale;
    p.head_num = CA_N1;
    p.compress_block_size = 32;
    p.compress_stride = 16;
    p.select_block_size = 64;
    p.select_block_count = CA_K;
    p.actual_seq_qlen = c->qseq;
    p.actual_seq_qlen_count = 2;
    p.actual_cmp_seq_kvlen = c->kseq;
    p.actual_cmp_seq_kvlen_count = 2;
    return nsa_compress_attention(ctx, &q, &k, &v, c->mask ? &m : NULL, NULL, &p, &ao, &ti, &sm,
                                  &ss);
}

static void ca_init(ca_case *c, uint64_t seed, int with_mask)
{
    test_rng r;
    size_t i;
    test_rng_seed(&r, seed);
    c->q = rnd_f32(&r, (size_t)CA_T1 * CA_N1 * CA_D, -1.0f, 1.0f);
    c->k = rnd_f32(&r, (size_t)CA_T2 * CA_N2 * CA_D, -1.0f, 1.0f);
    c->v = rnd_f32(&r, (size_t)CA_T2 * CA_N2 * CA_D, -1.0f, 1.0f);
    c->mask = NULL;
    if (with_mask) {
        c->mask = (uint8_t *)malloc(CA_MS1 * CA_MS2);
        assert_non_null(c->mask);
        for (i = 0; i < CA_MS1 * CA_MS2; i++)
            c->mask[i] = test_rng_int(&r, 0, 4) == 0;
    }
    c->scale = 0.25f;
    c->qseq[0] = 5;
    c->qseq[1] = CA_T1;
    c->kseq[0] = 8;
    c->kseq[1] = CA_T2;
}

static void ca_free(ca_case *c)
{
    free(c->q);
    free(c->k);
    free(c->v);
    free(c->mask);
}

static void ca_rel(int which)
{
    ca_case c;
    rel_op op;
    ca_init(&c, 21, 1);
    op.name = "nsa_compress_attention";
    op.run = ca_run;
    op.user = &c;
    op.out_size = sizeof(ca_out);
    run_rel(&op, which);
    ca_free(&c);
}

static void test_compress_attention_threads(void **s) { (void)s; ca_rel(0); }
static void test_compress_attention_concurrent(void **s) { (void)s; ca_rel(1); }
static void test_compress_attention_alloc(void **s) { (void)s; ca_rel(2); }

/* Token t's batch-local position, batch and selection-block count. */
static void ca_where(int64_t t, int64_t *b, int64_t *s)
{
    *b = t >= 5;
    *s = t - (*b ? 5 : 0);
}

/* Index of (t, h, 0) in the statistics: per batch [N1, S1_b, 8], batches concatenated. */
static int64_t ca_stat_row(int64_t t, int64_t h)
{
    int64_t b, s;
    ca_where(t, &b, &s);
    return b == 0 ? (h * 5 + s) * 8 : (5 * CA_N1 + h * 7 + s) * 8;
}

typedef struct ca_nan_at {
    int64_t t, h;
} ca_nan_at;

static int ca_out_affected(const void *p, int64_t i)
{
    const ca_nan_at *a = (const ca_nan_at *)p;
    return i / (CA_N1 * CA_D) == a->t && (i / CA_D) % CA_N1 == a->h;
}

static int ca_stat_affected(const void *p, int64_t i)
{
    const ca_nan_at *a = (const ca_nan_at *)p;
    return i / 8 == ca_stat_row(a->t, a->h) / 8;
}

static void test_compress_attention_nan(void **s)
{
    ca_case c;
    ca_out *clean = (ca_out *)malloc(sizeof(ca_out)), *got = (ca_out *)malloc(sizeof(ca_out));
    ca_nan_at at = {7, 3}; /* batch 1, s = 2, head 3 (group 1) */
    int64_t i;
    (void)s;
    assert_non_null(clean);
    assert_non_null(got);
    ca_init(&c, 22, 0);
    assert_int_equal(ca_run(&c, NULL, clean, sizeof *clean), NSA_SUCCESS);
    c.q[(at.t * CA_N1 + at.h) * CA_D + 3] = NAN;
    assert_int_equal(ca_run(&c, NULL, got, sizeof *got), NSA_SUCCESS);
    /* topk: other rows unchanged; the NaN row's group still lists valid, distinct blocks. */
    for (i = 0; i < CA_TOPK; i++) {
        if (i / (CA_N2 * CA_K) == at.t && (i / CA_K) % CA_N2 == at.h / 2) {
            assert_true(got->topk[i] >= 0 && got->topk[i] < 3);
        } else {
            assert_int_equal(got->topk[i], clean->topk[i]);
        }
    }
    assert_int_not_equal(got->topk[(at.t * CA_N2 + 1) * CA_K], got->topk[(at.t * CA_N2 + 1) * CA_K + 1]);
    expect_nan_exactly("attention_out", clean->out, got->out, CA_OUT, ca_out_affected, &at);
    /* softmax_max ignores NaN scores: -inf (no other score) or NaN are both accepted. */
    for (i = 0; i < CA_STAT; i++)
        if (ca_stat_affected(&at, i))
            assert_true(isnan(got->smax[i]) || got->smax[i] == -INFINITY);
        else
            assert_memory_equal(&got->smax[i], &clean->smax[i], sizeof(float));
    expect_nan_exactly("softmax_sum", clean->ssum, got->ssum, CA_STAT, ca_stat_affected, &at);
    ca_free(&c);
    free(clean);
    free(got);
}

static void test_compress_attention_huge_and_masked(void **s)
{
    ca_case c;
    ca_out *o = (ca_out *)malloc(sizeof(ca_out));
    int64_t t, h, e, j;
    (void)s;
    assert_non_null(o);
    ca_init(&c, 23, 1);
    /* Scores +-1e38: channel 0 only, q = 1e19, k = +1e19 for compressed key 3 of each batch
     * and -1e19 elsewhere, scale 1. Softmax is one-hot: out = V[key 3] exactly, max = 1e38
     * (float(1e19)^2), sum = 1 (exp(-2e38) = 0). */
    memset(c.mask, 0, CA_MS1 * CA_MS2);
    c.scale = 1.0f;
    for (t = 0; t < CA_T1 * CA_N1 * CA_D; t++)
        c.q[t] = (t % CA_D == 0) ? 1e19f : 0.0f;
    for (t = 0; t < CA_T2; t++)
        for (h = 0; h < CA_N2; h++)
            for (e = 0; e < CA_D; e++)
                c.k[(t * CA_N2 + h) * CA_D + e] = e ? 0.0f : (t == 3 || t == 8 + 3) ? 1e19f : -1e19f;
    assert_int_equal(ca_run(&c, NULL, o, sizeof *o), NSA_SUCCESS);
    expect_all_finite("attention_out (scores +-1e38)", o->out, CA_OUT);
    expect_all_finite("softmax_max (scores +-1e38)", o->smax, CA_STAT);
    for (t = 0; t < CA_T1; t++) {
        int64_t key = t < 5 ? 3 : 8 + 3;
        for (h = 0; h < CA_N1; h++) {
            for (e = 0; e < CA_D; e++)
                assert_true(o->out[(t * CA_N1 + h) * CA_D + e] ==
                            c.v[(key * CA_N2 + h / 2) * CA_D + e]);
            assert_true(o->smax[ca_stat_row(t, h)] == 1e19f * 1e19f);
            assert_true(o->ssum[ca_stat_row(t, h)] == 1.0f);
        }
    }
    /* A fully masked row (atten_mask row s = 1 all set): P uniform over the batch's keys, so
     * out = mean of V, max = -FLT_MAX, sum = S2_b. */
    ca_free(&c);
    ca_init(&c, 24, 1);
    memset(c.mask, 0, CA_MS1 * CA_MS2);
    memset(c.mask + 1 * CA_MS2, 1, CA_MS2);
    assert_int_equal(ca_run(&c, NULL, o, sizeof *o), NSA_SUCCESS);
    for (t = 1; t <= 6; t += 5) { /* s = 1 of batch 0 (t = 1) and of batch 1 (t = 6) */
        int64_t k0 = t < 5 ? 0 : 8, n = t < 5 ? 8 : 12;
        for (h = 0; h < CA_N1; h++) {
            for (e = 0; e < CA_D; e++) {
                double mean = 0;
                for (j = 0; j < n; j++)
                    mean += c.v[((k0 + j) * CA_N2 + h / 2) * CA_D + e];
                mean /= (double)n;
                /* fp32 accumulation of n <= 12 terms of |v| <= 1: a few ulps of 1. */
                if (!(fabs(o->out[(t * CA_N1 + h) * CA_D + e] - mean) < 1e-6))
                    fail_msg("t %lld h %lld e %lld: out %g, mean %g", (long long)t, (long long)h, (long long)e, (double)o->out[(t * CA_N1 + h) * CA_D + e], mean);
            }
            assert_true(o->smax[ca_stat_row(t, h)] == -FLT_MAX);
            assert_true(o->ssum[ca_stat_row(t, h)] == (float)n);
        }
    }
    ca_free(&c);
    free(o);
}

/* ================================================================================================
 * nsa_select_attention: batches of 6 and 10 queries over 128 and 192 keys, N1 = 4, N2 = 2,
 * D = Dv = 16, l' = 32 (4 and 6 blocks), k = 3; bf16 in, bf16 out; with and without causal.
 * ============================================================================================= */

enum { SE_T1 = 16, SE_T2 = 320, SE_N1 = 4, SE_N2 = 2, SE_D = 16, SE_L = 32, SE_K = 3 };
enum { SE_OUT = SE_T1 * SE_N1 * SE_D, SE_STAT = SE_T1 * SE_N1 * 8 };

typedef struct se_case {
    void *q, *k, *v; /* se_dt */
    nsa_dtype dt;
    int32_t topk[SE_T1 * SE_N2 * SE_K];
    int64_t qseq[2], kseq[2];
    int64_t sparse_mode;
    float scale;
} se_case;

/* Outputs: attention_out in the case's dtype, then softmax_max and softmax_sum (f32). The
 * edge tests run f32 cases, whose buffers have exactly this layout. */
typedef struct se_out {
    float out[SE_OUT];
    float smax[SE_STAT], ssum[SE_STAT];
} se_out;

static size_t se_out_size(nsa_dtype dt)
{
    return SE_OUT * nsa_dtype_size(dt) + 2 * SE_STAT * sizeof(float);
}

static nsa_status se_run(void *user, nsa_context *ctx, void *outp, size_t size)
{
    const se_case *c = (const se_case *)user;
    unsigned char *o = (unsigned char *)outp;
    size_t out_bytes = SE_OUT * nsa_dtype_size(c->dt);
    nsa_select_attention_params p = nsa_select_attention_params_default();
    nsa_tensor q = view(c->q, c->dt, 3, SE_T1, SE_N1, SE_D, 0);
    nsa_tensor k = view(c->k, c->dt, 3, SE_T2, SE_N2, SE_D, 0);
    nsa_tensor v = view(c->v, c->dt, 3, SE_T2, SE_N2, SE_D, 0);
    nsa_tensor ti = view((void *)c->topk, NSA_DTYPE_I32, 3, SE_T1, SE_N2, SE_K, 0);
    nsa_tensor ao = view(o, c->dt, 3, SE_T1, SE_N1, SE_D, 0);
    nsa_tensor sm = view(o + out_bytes, NSA_DTYPE_F32, 3, SE_T1, SE_N1, 8, 0);
    nsa_tensor ss = view(o + out_bytes + SE_STAT * sizeof(float), NSA_DTYPE_F32, 3, SE_T1, SE_N1,
                         8, 0);
    assert_true(size >= se_out_size(c->dt));
    p.scale_value = c->scale;
    p.head_num = SE_N1;
    p.select_block_size = SE_L;
    p.select_block_count = SE_K;
    p.actual_seq_qlen = c->qseq;
    p.actual_seq_qlen_count = 2;
    p.actual_seq_kvlen = c->kseq;
    p.actual_seq_kvlen_count = 2;
    p.sparse_mode = c->sparse_mode;
    return nsa_select_attention(ctx, &q, &k, &v, &ti, &p, &ao, &sm, &ss);
}

static void se_init(se_case *c, uint64_t seed, nsa_dtype dt, int64_t sparse_mode)
{
    test_rng r;
    int64_t t, i;
    float *q, *k, *v;
    test_rng_seed(&r, seed);
    q = rnd_f32(&r, (size_t)SE_T1 * SE_N1 * SE_D, -1.0f, 1.0f);
    k = rnd_f32(&r, (size_t)SE_T2 * SE_N2 * SE_D, -1.0f, 1.0f);
    v = rnd_f32(&r, (size_t)SE_T2 * SE_N2 * SE_D, -1.0f, 1.0f);
    c->dt = dt;
    if (dt == NSA_DTYPE_F32) {
        c->q = q;
        c->k = k;
        c->v = v;
    } else {
        c->q = test_to_dtype(q, SE_T1 * SE_N1 * SE_D, dt);
        c->k = test_to_dtype(k, SE_T2 * SE_N2 * SE_D, dt);
        c->v = test_to_dtype(v, SE_T2 * SE_N2 * SE_D, dt);
        free(q);
        free(k);
        free(v);
    }
    for (t = 0; t < SE_T1; t++)
        for (i = 0; i < SE_N2 * SE_K; i++)
            c->topk[t * SE_N2 * SE_K + i] = (int32_t)test_rng_int(&r, 0, t < 6 ? 3 : 5);
    c->qseq[0] = 6;
    c->qseq[1] = SE_T1;
    c->kseq[0] = 128;
    c->kseq[1] = SE_T2;
    c->sparse_mode = sparse_mode;
    c->scale = 0.25f;
}

static void se_free(se_case *c)
{
    free(c->q);
    free(c->k);
    free(c->v);
}

static void se_rel(int which, int64_t sparse_mode)
{
    se_case c;
    rel_op op;
    se_init(&c, 31 + (uint64_t)sparse_mode, NSA_DTYPE_BF16, sparse_mode);
    op.name = sparse_mode ? "nsa_select_attention (causal)" : "nsa_select_attention";
    op.run = se_run;
    op.user = &c;
    op.out_size = se_out_size(c.dt);
    run_rel(&op, which);
    se_free(&c);
}

static void test_select_threads(void **s) { (void)s; se_rel(0, 0); }
static void test_select_concurrent(void **s) { (void)s; se_rel(1, 0); }
static void test_select_alloc(void **s) { (void)s; se_rel(2, 0); }
static void test_select_backends(void **s)
{
    if (!few_row_path_runs(s))
        skip();
    se_rel(3, 0);
    se_rel(3, 2);
}
static void test_select_causal_threads(void **s) { (void)s; se_rel(0, 2); }
static void test_select_causal_concurrent(void **s) { (void)s; se_rel(1, 2); }
static void test_select_causal_alloc(void **s) { (void)s; se_rel(2, 2); }

typedef struct row_at {
    int64_t row; /* t * heads + h */
    int64_t width;
} row_at;

static int row_affected(const void *p, int64_t i)
{
    const row_at *a = (const row_at *)p;
    return i / a->width == a->row;
}

static void test_select_edges(void **s)
{
    se_case c;
    se_out *clean = (se_out *)malloc(sizeof(se_out)), *got = (se_out *)malloc(sizeof(se_out));
    row_at at_out = {9 * SE_N1 + 2, SE_D}, at_stat = {9 * SE_N1 + 2, 8};
    float *q, *k, *v;
    int64_t h, e, c2, u;
    (void)s;
    assert_non_null(clean);
    assert_non_null(got);

    /* NaN in query (t 9, head 2, channel 0): exactly that row's output and statistics. */
    se_init(&c, 34, NSA_DTYPE_F32, 2);
    q = (float *)c.q;
    k = (float *)c.k;
    v = (float *)c.v;
    assert_int_equal(se_run(&c, NULL, clean, sizeof *clean), NSA_SUCCESS);
    q[(9 * SE_N1 + 2) * SE_D] = NAN;
    assert_int_equal(se_run(&c, NULL, got, sizeof *got), NSA_SUCCESS);
    expect_nan_exactly("select attention_out", clean->out, got->out, SE_OUT, row_affected, &at_out);
    /* softmax_max ignores NaN scores: with causal masking, query s = 3 has masked keys in
     * every selected block, so its max is the masked logit -FLT_MAX * scale. */
    for (e = 0; e < SE_STAT; e++)
        if (row_affected(&at_stat, e))
            assert_true(got->smax[e] == -FLT_MAX * 0.25f);
        else
            assert_memory_equal(&got->smax[e], &clean->smax[e], sizeof(float));
    expect_nan_exactly("select softmax_sum", clean->ssum, got->ssum, SE_STAT, row_affected, &at_stat);
    q[(9 * SE_N1 + 2) * SE_D] = 0.5f;

    /* Scores +-1e38 (scale 1): token 12 (batch 1), group 0 selects blocks 5, 1, 2; key 1
     * of block 1 (batch key 33 = global 128 + 33) scores +1e38, every other key -1e38:
     * out = V[that key] exactly, max = float(1e19)^2, sum = 1. No causal cut (mode 0). */
    c.sparse_mode = 0;
    c.scale = 1.0f;
    c.topk[(12 * SE_N2 + 0) * SE_K + 0] = 5;
    c.topk[(12 * SE_N2 + 0) * SE_K + 1] = 1;
    c.topk[(12 * SE_N2 + 0) * SE_K + 2] = 2;
    for (e = 0; e < SE_D; e++)
        for (h = 0; h < 2; h++)
            q[(12 * SE_N1 + h) * SE_D + e] = e ? 0.0f : 1e19f;
    for (u = 128; u < SE_T2; u++)
        for (e = 0; e < SE_D; e++)
            k[(u * SE_N2 + 0) * SE_D + e] = e ? 0.0f : (u == 128 + 33 ? 1e19f : -1e19f);
    assert_int_equal(se_run(&c, NULL, got, sizeof *got), NSA_SUCCESS);
    expect_all_finite("select attention_out (scores +-1e38)", got->out, SE_OUT);
    for (h = 0; h < 2; h++) {
        for (e = 0; e < SE_D; e++)
            assert_true(got->out[(12 * SE_N1 + h) * SE_D + e] == v[((128 + 33) * SE_N2) * SE_D + e]);
        assert_true(got->smax[(12 * SE_N1 + h) * 8] == 1e19f * 1e19f);
        assert_true(got->ssum[(12 * SE_N1 + h) * 8] == 1.0f);
    }

    /* Fully masked row under causal (mode 2): query s = 0 of batch 0 (t 0) selects blocks
     * 1, 3, 1 (keys >= 32 > 0): every logit is -FLT_MAX before scaling, so P is uniform over
     * the 3 * 32 gathered keys (block 1 counted twice), max = -FLT_MAX * scale, sum = 96. */
    se_free(&c);
    se_init(&c, 35, NSA_DTYPE_F32, 2);
    v = (float *)c.v;
    c.topk[0] = 1;
    c.topk[1] = 3;
    c.topk[2] = 1;
    assert_int_equal(se_run(&c, NULL, got, sizeof *got), NSA_SUCCESS);
    for (h = 0; h < 2; h++) {
        for (e = 0; e < SE_D; e++) {
            double mean = 0;
            for (c2 = 0; c2 < SE_K; c2++)
                for (u = 0; u < SE_L; u++)
                    mean += v[((c.topk[c2] * SE_L + u) * SE_N2) * SE_D + e];
            mean /= SE_K * SE_L;
            /* fp32 sums of 96 terms |v| <= 1: well within 1e-5 absolute. */
            assert_true(fabs(got->out[h * SE_D + e] - mean) < 1e-5);
        }
        assert_true(got->smax[h * 8] == -FLT_MAX * 0.25f);
        assert_true(got->ssum[h * 8] == 96.0f);
    }
    se_free(&c);
    free(clean);
    free(got);
}

/* ================================================================================================
 * incre_flash_attention: B = 3, N = 4, kvN = 2, D = 16, BSH; dense f16 K/V with a mask and
 * per-batch lengths, and a paged int8 cache with per-channel antiquant.
 * ============================================================================================= */

enum { IF_B = 3, IF_N = 4, IF_KVN = 2, IF_D = 16, IF_S = 48, IF_BS = 16, IF_PAGES = 10 };
enum { IF_OUT = IF_B * IF_N * IF_D };

typedef struct if_case {
    void *q;          /* (B, 1, N*D) in q_dt */
    void *k, *v;      /* dense (B, S, kvN*D) q_dt, or paged (PAGES, BS, kvN*D) i8 */
    nsa_dtype q_dt;
    int paged;
    uint8_t mask[IF_B * IF_S];
    int use_mask;
    int64_t lens[IF_B];
    int32_t table[IF_B * 3];
    float aqs[2 * IF_KVN * IF_D], aqo[2 * IF_KVN * IF_D];
    float scale;
} if_case;

static nsa_status if_run(void *user, nsa_context *ctx, void *out, size_t size)
{
    const if_case *c = (const if_case *)user;
    nsa_ifa_params p = nsa_ifa_params_default();
    nsa_ifa_optional opt = NSA_IFA_OPTIONAL_INIT;
    nsa_tensor q = view(c->q, c->q_dt, 3, IF_B, 1, IF_N * IF_D, 0);
    nsa_tensor k, v, m, bt, as, ao;
    nsa_tensor o = view(out, NSA_DTYPE_F32, 3, IF_B, 1, IF_N * IF_D, 0);
    (void)size;
    p.num_heads = IF_N;
    p.num_key_value_heads = IF_KVN;
    p.scale_value = c->scale;
    p.actual_seq_lengths = c->lens;
    p.actual_seq_lengths_count = IF_B;
    if (c->use_mask) {
        m = view((void *)c->mask, NSA_DTYPE_U8, 2, IF_B, IF_S, 0, 0);
        opt.atten_mask = &m;
    }
    if (c->paged) {
        k = view(c->k, NSA_DTYPE_I8, 3, IF_PAGES, IF_BS, IF_KVN * IF_D, 0);
        v = view(c->v, NSA_DTYPE_I8, 3, IF_PAGES, IF_BS, IF_KVN * IF_D, 0);
        bt = view((void *)c->table, NSA_DTYPE_I32, 2, IF_B, 3, 0, 0);
        as = view((void *)c->aqs, NSA_DTYPE_F32, 3, 2, IF_KVN, IF_D, 0);
        ao = view((void *)c->aqo, NSA_DTYPE_F32, 3, 2, IF_KVN, IF_D, 0);
        opt.block_table = &bt;
        opt.antiquant_scale = &as;
        opt.antiquant_offset = &ao;
        p.block_size = IF_BS;
    } else {
        k = view(c->k, c->q_dt, 3, IF_B, IF_S, IF_KVN * IF_D, 0);
        v = view(c->v, c->q_dt, 3, IF_B, IF_S, IF_KVN * IF_D, 0);
    }
    return nsa_incre_flash_attention(ctx, &q, &k, &v, &opt, &p, &o);
}

static void if_init(if_case *c, uint64_t seed, nsa_dtype q_dt, int paged)
{
    test_rng r;
    size_t nkv = paged ? (size_t)IF_PAGES * IF_BS * IF_KVN * IF_D : (size_t)IF_B * IF_S * IF_KVN * IF_D;
    float *q, *k, *v;
    size_t i;
    static const int32_t pages[IF_B * 3] = {7, 2, 9, 0, 5, 3, 8, 1, 6};
    test_rng_seed(&r, seed);
    memset(c, 0, sizeof *c);
    c->q_dt = q_dt;
    c->paged = paged;
    q = rnd_f32(&r, (size_t)IF_B * IF_N * IF_D, -1.0f, 1.0f);
    k = rnd_f32(&r, nkv, -1.0f, 1.0f);
    v = rnd_f32(&r, nkv, -1.0f, 1.0f);
    c->q = q_dt == NSA_DTYPE_F32 ? dup_bytes(q, (size_t)IF_B * IF_N * IF_D * sizeof(float))
                                 : test_to_dtype(q, IF_B * IF_N * IF_D, q_dt);
    if (paged) {
        int8_t *k8 = (int8_t *)malloc(nkv), *v8 = (int8_t *)malloc(nkv);
        assert_non_null(k8);
        assert_non_null(v8);
        for (i = 0; i < nkv; i++) {
            k8[i] = (int8_t)test_rng_int(&r, -128, 127);
            v8[i] = (int8_t)test_rng_int(&r, -128, 127);
        }
        c->k = k8;
        c->v = v8;
        for (i = 0; i < 2 * IF_KVN * IF_D; i++) {
            c->aqs[i] = test_rng_uniform(&r, 0.001f, 0.02f);
            c->aqo[i] = test_rng_uniform(&r, -3.0f, 3.0f);
        }
        memcpy(c->table, pages, sizeof pages);
    } else if (q_dt == NSA_DTYPE_F32) {
        c->k = dup_bytes(k, nkv * sizeof(float));
        c->v = dup_bytes(v, nkv * sizeof(float));
    } else {
        c->k = test_to_dtype(k, (int64_t)nkv, q_dt);
        c->v = test_to_dtype(v, (int64_t)nkv, q_dt);
    }
    free(q);
    free(k);
    free(v);
    for (i = 0; i < IF_B * IF_S; i++)
        c->mask[i] = test_rng_int(&r, 0, 4) == 0;
    c->use_mask = 1;
    c->lens[0] = IF_S;
    c->lens[1] = 17;
    c->lens[2] = 33;
    c->scale = 0.25f;
}

static void if_free(if_case *c)
{
    free(c->q);
    free(c->k);
    free(c->v);
}

static void if_rel(int which, int paged)
{
    if_case c;
    rel_op op;
    if_init(&c, 41 + (uint64_t)paged, NSA_DTYPE_F16, paged);
    op.name = paged ? "incre_flash_attention (paged int8)" : "incre_flash_attention";
    op.run = if_run;
    op.user = &c;
    op.out_size = IF_OUT * sizeof(float);
    run_rel(&op, which);
    if_free(&c);
}

static void test_ifa_threads(void **s) { (void)s; if_rel(0, 0); }
static void test_ifa_concurrent(void **s) { (void)s; if_rel(1, 0); }
static void test_ifa_alloc(void **s) { (void)s; if_rel(2, 0); }
static void test_ifa_backends(void **s)
{
    if (!few_row_path_runs(s))
        skip();
    if_rel(3, 0);
    if_rel(3, 1);
}
static void test_ifa_paged_int8_threads(void **s) { (void)s; if_rel(0, 1); }
static void test_ifa_paged_int8_concurrent(void **s) { (void)s; if_rel(1, 1); }
static void test_ifa_paged_int8_alloc(void **s) { (void)s; if_rel(2, 1); }

/* kv head group of a flat output index (b, n, d) */
typedef struct if_nan_at {
    int64_t b, n2; /* NaN in the key of batch b, kv head n2 */
} if_nan_at;

static int if_key_affected(const void *p, int64_t i)
{
    const if_nan_at *a = (const if_nan_at *)p;
    return i / (IF_N * IF_D) == a->b && (i / IF_D) % IF_N / (IF_N / IF_KVN) == a->n2;
}

static void test_ifa_edges(void **s)
{
    if_case c;
    float clean[IF_OUT], got[IF_OUT];
    row_at at = {1 * IF_N + 3, IF_D};
    if_nan_at kat = {2, 1};
    float *q, *k, *v;
    int64_t n, e, j;
    (void)s;
    if_init(&c, 44, NSA_DTYPE_F32, 0);
    q = (float *)c.q;
    k = (float *)c.k;
    v = (float *)c.v;
    assert_int_equal(if_run(&c, NULL, clean, sizeof clean), NSA_SUCCESS);
    /* NaN in the query of batch 1, head 3: exactly that output row. */
    q[(1 * IF_N + 3) * IF_D + 7] = NAN;
    assert_int_equal(if_run(&c, NULL, got, sizeof got), NSA_SUCCESS);
    expect_nan_exactly("ifa attention_out (NaN query)", clean, got, IF_OUT, row_affected, &at);
    q[(1 * IF_N + 3) * IF_D + 7] = 0.0f;
    assert_int_equal(if_run(&c, NULL, clean, sizeof clean), NSA_SUCCESS);
    /* NaN in an attended key of batch 2 (position 5, unmasked), kv head 1: the heads 2, 3 of
     * batch 2. A masked key's score is replaced (-1e12), so only attended positions count. */
    c.mask[2 * IF_S + 5] = 0;
    assert_int_equal(if_run(&c, NULL, clean, sizeof clean), NSA_SUCCESS);
    k[((2 * IF_S + 5) * IF_KVN + 1) * IF_D + 2] = NAN;
    assert_int_equal(if_run(&c, NULL, got, sizeof got), NSA_SUCCESS);
    expect_nan_exactly("ifa attention_out (NaN key)", clean, got, IF_OUT, if_key_affected, &kat);
    /* ... and a NaN key at a masked position changes nothing. */
    c.mask[2 * IF_S + 5] = 1;
    assert_int_equal(if_run(&c, NULL, clean, sizeof clean), NSA_SUCCESS);
    k[((2 * IF_S + 5) * IF_KVN + 1) * IF_D + 2] = 0.0f;
    assert_int_equal(if_run(&c, NULL, got, sizeof got), NSA_SUCCESS);
    assert_memory_equal(clean, got, sizeof clean);

    /* Scores +-1e38 (scale 1, channel 0): batch 0 position 10 scores +1e38, all others
     * -1e38; no mask: out = V[10] exactly for every head. */
    c.use_mask = 0;
    c.scale = 1.0f;
    for (n = 0; n < IF_N; n++)
        for (e = 0; e < IF_D; e++)
            q[n * IF_D + e] = e ? 0.0f : 1e19f;
    for (j = 0; j < IF_S; j++)
        for (n = 0; n < IF_KVN; n++)
            for (e = 0; e < IF_D; e++)
                k[(j * IF_KVN + n) * IF_D + e] = e ? 0.0f : (j == 10 ? 1e19f : -1e19f);
    assert_int_equal(if_run(&c, NULL, got, sizeof got), NSA_SUCCESS);
    expect_all_finite("ifa attention_out (scores +-1e38)", got, IF_OUT);
    for (n = 0; n < IF_N; n++)
        for (e = 0; e < IF_D; e++)
            assert_true(got[n * IF_D + e] == v[(10 * IF_KVN + n / 2) * IF_D + e]);
    /* The vendor's finite mask value: a masked key scores -1e12, which beats real scores of
     * -1e38. Mask only position 20 of batch 0 with all real scores -1e38: out = V[20]. */
    for (j = 0; j < IF_S; j++)
        k[(j * IF_KVN + 0) * IF_D] = k[(j * IF_KVN + 1) * IF_D] = -1e19f;
    memset(c.mask, 0, sizeof c.mask);
    c.mask[20] = 1;
    c.use_mask = 1;
    assert_int_equal(if_run(&c, NULL, got, sizeof got), NSA_SUCCESS);
    for (n = 0; n < IF_N; n++)
        for (e = 0; e < IF_D; e++)
            assert_true(got[n * IF_D + e] == v[(20 * IF_KVN + n / 2) * IF_D + e]);
    if_free(&c);

    /* Fully masked batch (every position of batch 1 masked, len 17): uniform over its 17
     * keys, out = mean of V[0..17). */
    if_init(&c, 45, NSA_DTYPE_F32, 0);
    v = (float *)c.v;
    memset(c.mask + IF_S, 1, IF_S);
    assert_int_equal(if_run(&c, NULL, got, sizeof got), NSA_SUCCESS);
    for (n = 0; n < IF_N; n++)
        for (e = 0; e < IF_D; e++) {
            double mean = 0;
            for (j = 0; j < 17; j++)
                mean += v[((IF_S + j) * IF_KVN + n / 2) * IF_D + e];
            mean /= 17.0;
            /* fp32 sums of 17 terms |v| <= 1 */
            assert_true(fabs(got[(IF_N + n) * IF_D + e] - mean) < 1e-6);
        }
    if_free(&c);
}

/* ================================================================================================
 * flex_attention: B = 2, Hq = 4, Hkv = 2 (GQA), L = 50, S = 70, E = Ev = 16, causal block
 * mask with 16 x 16 blocks (full and partial blocks, ragged tails); out f32 and lse.
 * ============================================================================================= */

enum { FX_B = 2, FX_HQ = 4, FX_HKV = 2, FX_L = 50, FX_S = 70, FX_E = 16 };
enum { FX_OUT = FX_B * FX_HQ * FX_L * FX_E, FX_LSE = FX_B * FX_HQ * FX_L };

typedef struct fx_case {
    float *q, *k, *v;
    nsa_block_mask *bm;  /* used as is, or NULL */
    int build_mask;      /* build a causal block mask inside the run (with the run's ctx) */
    float scale;
} fx_case;

typedef struct fx_out {
    float out[FX_OUT];
    float lse[FX_LSE];
} fx_out;

static nsa_status fx_make_causal(nsa_context *ctx, nsa_block_mask **bm)
{
    nsa_mask_mod *causal = NULL;
    nsa_status st = nsa_mask_mod_causal(&causal);
    if (st == NSA_SUCCESS)
        st = nsa_block_mask_create(ctx, causal, 1, 1, FX_L, FX_S, 16, 16, bm);
    nsa_mask_mod_free(causal);
    return st;
}

static nsa_status fx_run(void *user, nsa_context *ctx, void *outp, size_t size)
{
    const fx_case *c = (const fx_case *)user;
    fx_out *o = (fx_out *)outp;
    nsa_flex_params p = nsa_flex_params_default();
    nsa_tensor q = view(c->q, NSA_DTYPE_F32, 4, FX_B, FX_HQ, FX_L, FX_E);
    nsa_tensor k = view(c->k, NSA_DTYPE_F32, 4, FX_B, FX_HKV, FX_S, FX_E);
    nsa_tensor v = view(c->v, NSA_DTYPE_F32, 4, FX_B, FX_HKV, FX_S, FX_E);
    nsa_tensor ot = view(o->out, NSA_DTYPE_F32, 4, FX_B, FX_HQ, FX_L, FX_E);
    nsa_tensor lt = view(o->lse, NSA_DTYPE_F32, 3, FX_B, FX_HQ, FX_L, 0);
    nsa_block_mask *bm = c->bm;
    nsa_status st;
    (void)size;
    p.enable_gqa = 1;
    p.scale = c->scale;
    if (c->build_mask && (st = fx_make_causal(ctx, &bm)) != NSA_SUCCESS)
        return st;
    st = nsa_flex_attention(ctx, &q, &k, &v, bm, NULL, &p, &ot, &lt);
    if (c->build_mask)
        nsa_block_mask_free(bm);
    return st;
}

static void fx_init(fx_case *c, uint64_t seed)
{
    test_rng r;
    test_rng_seed(&r, seed);
    c->q = rnd_f32(&r, (size_t)FX_B * FX_HQ * FX_L * FX_E, -1.0f, 1.0f);
    c->k = rnd_f32(&r, (size_t)FX_B * FX_HKV * FX_S * FX_E, -1.0f, 1.0f);
    c->v = rnd_f32(&r, (size_t)FX_B * FX_HKV * FX_S * FX_E, -1.0f, 1.0f);
    c->bm = NULL;
    c->build_mask = 0;
    c->scale = 0.0f;
    assert_int_equal(fx_make_causal(NULL, &c->bm), NSA_SUCCESS);
}

static void fx_free(fx_case *c)
{
    free(c->q);
    free(c->k);
    free(c->v);
    nsa_block_mask_free(c->bm);
}

static void fx_rel(int which, int build_mask)
{
    fx_case c;
    rel_op op;
    fx_init(&c, 51);
    c.build_mask = build_mask;
    op.name = build_mask ? "nsa_block_mask_create + nsa_flex_attention" : "nsa_flex_attention";
    op.run = fx_run;
    op.user = &c;
    op.out_size = sizeof(fx_out);
    run_rel(&op, which);
    fx_free(&c);
}

static void test_flex_threads(void **s) { (void)s; fx_rel(0, 0); }
static void test_flex_concurrent(void **s) { (void)s; fx_rel(1, 0); }
static void test_flex_alloc(void **s) { (void)s; fx_rel(2, 0); }
static void test_flex_block_mask_threads(void **s) { (void)s; fx_rel(0, 1); }
static void test_flex_block_mask_concurrent(void **s) { (void)s; fx_rel(1, 1); }
static void test_flex_block_mask_alloc(void **s) { (void)s; fx_rel(2, 1); }

typedef struct fx_key_at {
    int64_t b, hkv, j; /* NaN at key j of (b, hkv) */
} fx_key_at;

/* Causal: query i sees key j iff j <= i; kv head of query head h is h / 2. */
static int fx_key_affected(const void *p, int64_t i)
{
    const fx_key_at *a = (const fx_key_at *)p;
    int64_t row = i / FX_E, qi = row % FX_L, h = row / FX_L % FX_HQ, b = row / (FX_L * FX_HQ);
    return b == a->b && h / 2 == a->hkv && qi >= a->j;
}

static int fx_lse_key_affected(const void *p, int64_t i)
{
    return fx_key_affected(p, i * FX_E);
}

/* NaN query (b 0, h 3, i 44): that row's output and lse are NaN, every other bit unchanged. */
static void test_flex_nan_query(void **s)
{
    fx_case c;
    fx_out *clean = (fx_out *)malloc(sizeof(fx_out)), *got = (fx_out *)malloc(sizeof(fx_out));
    row_at at_out = {(0 * FX_HQ + 3) * FX_L + 44, FX_E}, at_lse = {(0 * FX_HQ + 3) * FX_L + 44, 1};
    (void)s;
    assert_non_null(clean);
    assert_non_null(got);
    fx_init(&c, 52);
    assert_int_equal(fx_run(&c, NULL, clean, sizeof *clean), NSA_SUCCESS);
    c.q[((0 * FX_HQ + 3) * FX_L + 44) * FX_E + 1] = NAN;
    assert_int_equal(fx_run(&c, NULL, got, sizeof *got), NSA_SUCCESS);
    fx_free(&c);
    expect_nan_exactly("flex out (NaN query)", clean->out, got->out, FX_OUT, row_affected, &at_out);
    expect_nan_exactly("flex lse (NaN query)", clean->lse, got->lse, FX_LSE, row_affected, &at_lse);
    free(clean);
    free(got);
}

static void test_flex_edges(void **s)
{
    fx_case c;
    fx_out *clean = (fx_out *)malloc(sizeof(fx_out)), *got = (fx_out *)malloc(sizeof(fx_out));
    fx_key_at kat = {1, 0, 30};
    int64_t h, i, e;
    nsa_tensor knb, kix;
    int32_t nb[4], ix[4 * 5];
    (void)s;
    assert_non_null(clean);
    assert_non_null(got);
    fx_init(&c, 52);
    assert_int_equal(fx_run(&c, NULL, clean, sizeof *clean), NSA_SUCCESS);
    /* NaN key (b 1, kv head 0, j 30): the queries i >= 30 of heads 0, 1 of batch 1 (causal). */
    c.k[((1 * FX_HKV + 0) * FX_S + 30) * FX_E + 4] = NAN;
    assert_int_equal(fx_run(&c, NULL, got, sizeof *got), NSA_SUCCESS);
    expect_nan_exactly("flex out (NaN key)", clean->out, got->out, FX_OUT, fx_key_affected, &kat);
    expect_nan_exactly("flex lse (NaN key)", clean->lse, got->lse, FX_LSE, fx_lse_key_affected,
                       &kat);
    c.k[((1 * FX_HKV + 0) * FX_S + 30) * FX_E + 4] = 0.0f;

    /* Scores +-1e38 (scale 1): key 5 of every (b, kv head) scores +1e38 for query 40, the
     * others -1e38: out = V[5] exactly, lse = 1e38 (log(1) = 0 added). */
    c.scale = 1.0f;
    for (h = 0; h < FX_B * FX_HQ; h++)
        for (e = 0; e < FX_E; e++)
            c.q[(h * FX_L + 40) * FX_E + e] = e ? 0.0f : 1e19f;
    for (h = 0; h < FX_B * FX_HKV; h++)
        for (i = 0; i < FX_S; i++)
            for (e = 0; e < FX_E; e++)
                c.k[(h * FX_S + i) * FX_E + e] = e ? 0.0f : (i == 5 ? 1e19f : -1e19f);
    assert_int_equal(fx_run(&c, NULL, got, sizeof *got), NSA_SUCCESS);
    expect_all_finite("flex out (scores +-1e38)", got->out, FX_OUT);
    expect_all_finite("flex lse (scores +-1e38)", got->lse, FX_LSE);
    for (h = 0; h < FX_B * FX_HQ; h++) {
        int64_t kvh = (h / FX_HQ) * FX_HKV + (h % FX_HQ) / 2;
        for (e = 0; e < FX_E; e++)
            assert_true(got->out[(h * FX_L + 40) * FX_E + e] == c.v[(kvh * FX_S + 5) * FX_E + e]);
        assert_true(got->lse[h * FX_L + 40] == 1e19f * 1e19f);
    }
    /* Scores beyond float32: q = 1e20 makes key 5 score +inf (1e40) and the others -inf.
     * A +inf score makes the row NaN (inf - inf); -inf scores are dropped like masked keys,
     * so when every score is -inf the row is empty: out = 0, lse = -inf. */
    for (h = 0; h < FX_B * FX_HQ; h++)
        c.q[(h * FX_L + 40) * FX_E] = 1e20f;
    for (h = 0; h < FX_B * FX_HKV; h++)
        c.k[(h * FX_S + 5) * FX_E] = 1e20f;
    assert_int_equal(fx_run(&c, NULL, got, sizeof *got), NSA_SUCCESS);
    for (h = 0; h < FX_B * FX_HQ; h++) {
        for (e = 0; e < FX_E; e++)
            assert_true(isnan(got->out[(h * FX_L + 40) * FX_E + e]));
        assert_true(isnan(got->lse[h * FX_L + 40]));
    }
    for (h = 0; h < FX_B * FX_HKV; h++)
        c.k[(h * FX_S + 5) * FX_E] = -1e20f;
    assert_int_equal(fx_run(&c, NULL, got, sizeof *got), NSA_SUCCESS);
    for (h = 0; h < FX_B * FX_HQ; h++) {
        for (e = 0; e < FX_E; e++)
            assert_true(got->out[(h * FX_L + 40) * FX_E + e] == 0.0f);
        assert_true(got->lse[h * FX_L + 40] == -INFINITY);
    }
    fx_free(&c);

    /* Fully masked rows: a block mask whose q-block 1 (queries 16..31) lists no kv block:
     * those rows give out = 0 and lse = -inf; the others attend every key (full blocks). */
    fx_init(&c, 53);
    nsa_block_mask_free(c.bm);
    c.bm = NULL;
    for (i = 0; i < 4; i++) {
        nb[i] = i == 1 ? 0 : 5;
        for (e = 0; e < 5; e++)
            ix[i * 5 + e] = (int32_t)e;
    }
    knb = view(nb, NSA_DTYPE_I32, 3, 1, 1, 4, 0);
    kix = view(ix, NSA_DTYPE_I32, 4, 1, 1, 4, 5);
    assert_int_equal(nsa_block_mask_from_kv_blocks(NULL, &knb, &kix, NULL, NULL, NULL, 16, 16,
                                                   FX_L, FX_S, &c.bm),
                     NSA_SUCCESS);
    assert_int_equal(fx_run(&c, NULL, got, sizeof *got), NSA_SUCCESS);
    for (h = 0; h < FX_B * FX_HQ; h++)
        for (i = 0; i < FX_L; i++) {
            int masked = i >= 16 && i < 32;
            for (e = 0; e < FX_E; e++)
                assert_true(masked ? got->out[(h * FX_L + i) * FX_E + e] == 0.0f
                                   : isfinite(got->out[(h * FX_L + i) * FX_E + e]));
            assert_true(masked ? (isinf(got->lse[h * FX_L + i]) && got->lse[h * FX_L + i] < 0)
                               : isfinite(got->lse[h * FX_L + i]));
        }
    fx_free(&c);
    free(clean);
    free(got);
}

/* ================================================================================================
 * Broadcast views: nsa_core allows stride 0 ("0 broadcasts"). A value tensor whose key axis
 * has stride 0 holds one row for every key, so every output row must be that row (the
 * probabilities sum to 1; fp32 rounding of sum(p) * v / sum(p): a few ulps).
 * ============================================================================================= */

static void expect_rows_equal_to(const char *what, const float *got, int64_t rows,
                                 const float *row, int64_t width)
{
    int64_t r, e;
    for (r = 0; r < rows; r++)
        for (e = 0; e < width; e++)
            if (fabs(got[r * width + e] - row[e]) > 4 * FLT_EPSILON * fabs(row[e]))
                fail_msg("%s: row %lld channel %lld = %g, expected the broadcast value %g", what,
                         (long long)r, (long long)e, (double)got[r * width + e], (double)row[e]);
}

/* Objects from the process allocator: block masks (causal, document), mask and score mods. */
static nsa_status make_causal_mask(void *user, void **obj)
{
    nsa_mask_mod *causal = NULL;
    nsa_status st;
    (void)user;
    if (nsa_mask_mod_causal(&causal) != NSA_SUCCESS)
        return NSA_ERR_OUT_OF_MEMORY;
    st = nsa_block_mask_create(NULL, causal, 2, 2, 300, 260, 64, 32, (nsa_block_mask **)obj);
    nsa_mask_mod_free(causal);
    return st;
}

static nsa_status make_document_mod(void *user, void **obj)
{
    return nsa_mask_mod_document((const nsa_tensor *)user, NULL, (nsa_mask_mod **)obj);
}

static nsa_status make_document_mask(void *user, void **obj)
{
    nsa_mask_mod *doc = NULL;
    nsa_status st = nsa_mask_mod_document((const nsa_tensor *)user, NULL, &doc);
    if (st != NSA_SUCCESS)
        return st;
    st = nsa_block_mask_create(NULL, doc, 1, 1, 200, 200, 32, 32, (nsa_block_mask **)obj);
    nsa_mask_mod_free(doc);
    return st;
}

/* document AND causal: a composed mod, cloned into the mask with its children */
static nsa_status make_composed_mask(void *user, void **obj)
{
    nsa_mask_mod *parts[2] = {NULL, NULL}, *both = NULL;
    nsa_status st = nsa_mask_mod_document((const nsa_tensor *)user, NULL, &parts[0]);
    if (st == NSA_SUCCESS)
        st = nsa_mask_mod_causal(&parts[1]);
    if (st == NSA_SUCCESS)
        st = nsa_mask_mod_and((const nsa_mask_mod *const *)parts, 2, &both);
    if (st == NSA_SUCCESS)
        st = nsa_block_mask_create(NULL, both, 1, 2, 200, 200, 32, 64, (nsa_block_mask **)obj);
    nsa_mask_mod_free(both);
    nsa_mask_mod_free(parts[0]);
    nsa_mask_mod_free(parts[1]);
    return st;
}

static nsa_status make_alibi(void *user, void **obj)
{
    (void)user;
    return nsa_score_mod_alibi(NULL, 12, (nsa_score_mod **)obj);
}

static void free_block_mask(void *obj) { nsa_block_mask_free((nsa_block_mask *)obj); }
static void free_mask_mod(void *obj) { nsa_mask_mod_free((nsa_mask_mod *)obj); }
static void free_score_mod(void *obj) { nsa_score_mod_free((nsa_score_mod *)obj); }

static void test_flex_objects_alloc(void **s)
{
    int32_t ids[200];
    int64_t shape[1] = {200};
    nsa_tensor tids = nsa_tensor_contiguous(ids, NSA_DTYPE_I32, 1, shape);
    int i;
    (void)s;
    for (i = 0; i < 200; i++)
        ids[i] = i / 70;
    (void)nsa_context_num_threads(NULL); /* the default context exists before counting */
    rel_check_process_alloc_failures("block mask (causal)", make_causal_mask, free_block_mask,
                                     NULL);
    rel_check_process_alloc_failures("mask_mod_document", make_document_mod, free_mask_mod,
                                     &tids);
    rel_check_process_alloc_failures("block mask (document)", make_document_mask,
                                     free_block_mask, &tids);
    rel_check_process_alloc_failures("block mask (document and causal)", make_composed_mask,
                                     free_block_mask, &tids);
    rel_check_process_alloc_failures("score_mod_alibi", make_alibi, free_score_mod, NULL);
}

static void test_broadcast_value_rows(void **s)
{
    enum { L = 5, S = 70, E = 8 };
    float q[L * E], k[S * E], v1[E], o[L * E], qi[2 * E], ki[S * 2 * E], v2[2 * E], oi[2 * E];
    int64_t qs[4] = {1, 1, L, E}, ks[4] = {1, 1, S, E}, vstride[4] = {0, 0, 0, 1};
    int64_t iq[3] = {1, 1, 2 * E}, ik[3] = {1, S, 2 * E}, ivs[3] = {0, 0, 1};
    nsa_tensor tq, tk, tv, to;
    nsa_ifa_params ip = nsa_ifa_params_default();
    test_rng r;
    int64_t i;
    (void)s;
    test_rng_seed(&r, 61);
    for (i = 0; i < L * E; i++)
        q[i] = test_rng_uniform(&r, -1.0f, 1.0f);
    for (i = 0; i < S * E; i++)
        k[i] = test_rng_uniform(&r, -1.0f, 1.0f);
    for (i = 0; i < E; i++)
        v1[i] = (float)(i + 1);
    tq = nsa_tensor_contiguous(q, NSA_DTYPE_F32, 4, qs);
    tk = nsa_tensor_contiguous(k, NSA_DTYPE_F32, 4, ks);
    tv = nsa_tensor_strided(v1, NSA_DTYPE_F32, 4, ks, vstride);
    to = nsa_tensor_contiguous(o, NSA_DTYPE_F32, 4, qs);
    assert_int_equal(nsa_flex_attention(NULL, &tq, &tk, &tv, NULL, NULL, NULL, &to, NULL),
                     NSA_SUCCESS);

    /* incre_flash_attention, f32 BSH: value (1, S, 2*E) with stride 0 along S. */
    for (i = 0; i < 2 * E; i++) {
        qi[i] = test_rng_uniform(&r, -1.0f, 1.0f);
        v2[i] = (float)(i + 1);
    }
    for (i = 0; i < S * 2 * E; i++)
        ki[i] = test_rng_uniform(&r, -1.0f, 1.0f);
    ip.num_heads = 2;
    tq = nsa_tensor_contiguous(qi, NSA_DTYPE_F32, 3, iq);
    tk = nsa_tensor_contiguous(ki, NSA_DTYPE_F32, 3, ik);
    tv = nsa_tensor_strided(v2, NSA_DTYPE_F32, 3, ik, ivs);
    to = nsa_tensor_contiguous(oi, NSA_DTYPE_F32, 3, iq);
    assert_int_equal(nsa_incre_flash_attention(NULL, &tq, &tk, &tv, NULL, &ip, &to), NSA_SUCCESS);
    expect_rows_equal_to("flex_attention, broadcast value", o, L, v1, E);
    expect_rows_equal_to("incre_flash_attention, broadcast value", oi, 1, v2, 2 * E);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_compress_threads),
        cmocka_unit_test(test_compress_concurrent),
        cmocka_unit_test(test_compress_alloc),
        cmocka_unit_test(test_compress_backends),
        cmocka_unit_test(test_compress_edges),
        cmocka_unit_test(test_compress_attention_threads),
        cmocka_unit_test(test_compress_attention_concurrent),
        cmocka_unit_test(test_compress_attention_alloc),
        cmocka_unit_test(test_compress_attention_nan),
        cmocka_unit_test(test_compress_attention_huge_and_masked),
        cmocka_unit_test(test_select_threads),
        cmocka_unit_test(test_select_concurrent),
        cmocka_unit_test(test_select_alloc),
        cmocka_unit_test(test_select_backends),
        cmocka_unit_test(test_select_causal_threads),
        cmocka_unit_test(test_select_causal_concurrent),
        cmocka_unit_test(test_select_causal_alloc),
        cmocka_unit_test(test_select_edges),
        cmocka_unit_test(test_ifa_threads),
        cmocka_unit_test(test_ifa_concurrent),
        cmocka_unit_test(test_ifa_alloc),
        cmocka_unit_test(test_ifa_backends),
        cmocka_unit_test(test_ifa_paged_int8_threads),
        cmocka_unit_test(test_ifa_paged_int8_concurrent),
        cmocka_unit_test(test_ifa_paged_int8_alloc),
        cmocka_unit_test(test_ifa_edges),
        cmocka_unit_test(test_flex_threads),
        cmocka_unit_test(test_flex_concurrent),
        cmocka_unit_test(test_flex_alloc),
        cmocka_unit_test(test_flex_block_mask_threads),
        cmocka_unit_test(test_flex_block_mask_concurrent),
        cmocka_unit_test(test_flex_block_mask_alloc),
        cmocka_unit_test(test_flex_objects_alloc),
        cmocka_unit_test(test_flex_nan_query),
        cmocka_unit_test(test_flex_edges),
        cmocka_unit_test(test_broadcast_value_rows),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
