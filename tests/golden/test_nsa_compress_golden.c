/* SPDX-License-Identifier: Apache-2.0 */
/* Replays the nsa_compress and nsa_compress_attention golden cases of tests/data/nsa (float64
 * references from an independent implementation, see the README there). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_util.h"

/* Read a "key = 1,2,3" list of case.txt; returns the count. */
static int64_t case_list(const char *dir, const char *key, int64_t *vals, int64_t cap)
{
    char buf[1024], *p, *end;
    int64_t n = 0;
    if (test_case_get(dir, key, buf, sizeof buf) != 0)
        return 0;
    for (p = buf; *p && n < cap; p = end) {
        vals[n++] = strtoll(p, &end, 10);
        if (end == p)
            break;
        if (*end == ',')
            end++;
    }
    return n;
}

static int64_t case_int(const char *dir, const char *key)
{
    int64_t v = 0;
    assert_int_equal(case_list(dir, key, &v, 1), 1);
    return v;
}

static nsa_dtype case_dtype(const char *dir)
{
    char buf[32];
    assert_int_equal(test_case_get(dir, "dtype", buf, sizeof buf), 0);
    if (strcmp(buf, "f16") == 0)
        return NSA_DTYPE_F16;
    if (strcmp(buf, "bf16") == 0)
        return NSA_DTYPE_BF16;
    return NSA_DTYPE_F32;
}

static void load(const char *dir, const char *name, test_npy *a)
{
    if (test_npy_load(dir, name, a) != 0)
        fail_msg("cannot load %s/%s", dir, name);
}

/* A float32 .npy as a tensor of dtype dt (values are exact in dt by construction). */
static nsa_tensor tensor_in(const test_npy *a, nsa_dtype dt)
{
    assert_int_equal(a->dtype, NSA_DTYPE_F32);
    return nsa_tensor_contiguous(test_to_dtype((const float *)a->data, a->numel, dt), dt,
                                 (int32_t)a->ndim, a->shape);
}

static double *as_f64(const test_npy *a)
{
    double *r = (double *)malloc((size_t)a->numel * sizeof(double));
    int64_t i;
    for (i = 0; i < a->numel; i++)
        r[i] = test_npy_get(a, i);
    return r;
}

static void replay_compress(const char *dir)
{
    const nsa_dtype dt = case_dtype(dir);
    nsa_compress_params p = nsa_compress_params_default();
    int64_t seq[64], rows, shape[3];
    test_npy in, w, ref;
    nsa_tensor input, weight, output;
    float *got;
    double *refd;
    void *obuf;

    load(dir, "input.npy", &in);
    load(dir, "weight.npy", &w);
    load(dir, "ref.npy", &ref);
    p.compress_block_size = case_int(dir, "compress_block_size");
    p.compress_stride = case_int(dir, "compress_stride");
    p.actual_seq_len = seq;
    p.actual_seq_len_count = case_list(dir, "actual_seq_len", seq, 64);
    assert_int_equal(nsa_compress_output_rows(&p, &rows), NSA_SUCCESS);
    assert_int_equal(rows, case_int(dir, "output_rows"));
    assert_int_equal(rows, ref.shape[0]);

    input = tensor_in(&in, dt);
    weight = tensor_in(&w, dt);
    shape[0] = rows;
    shape[1] = in.shape[1];
    shape[2] = in.shape[2];
    obuf = calloc((size_t)ref.numel, 2);
    output = nsa_tensor_contiguous(obuf, dt, 3, shape);
    if (nsa_compress(NULL, &input, &weight, &p, &output) != NSA_SUCCESS)
        fail_msg("%s: %s", dir, nsa_last_error());
    got = test_to_f32(obuf, ref.numel, dt);
    refd = as_f64(&ref);
    /* 1 ulp of the dtype: the fp32 sum is rounded once to f16/bf16 (ties away from zero),
     * while the float64 reference is rounded to nearest. */
    test_assert_ulps(dir, got, refd, ref.numel, dt, 1.0);

    free(got);
    free(refd);
    free(obuf);
    free(input.data);
    free(weight.data);
    test_npy_free(&in);
    test_npy_free(&w);
    test_npy_free(&ref);
}

static void replay_cmp_attn(const char *dir, int threads)
{
    const nsa_dtype dt = case_dtype(dir);
    nsa_compress_attention_params p = nsa_compress_attention_params_default();
    int64_t qlen[64], kvlen[64], sellen[64], shape[3], i, mism = 0;
    test_npy q, k, v, am, tm, ref, rmax, rsum, rtopk;
    int has_am, has_tm;
    nsa_tensor query, key, value, amask, tmask, out, topk, smax, ssum;
    char buf[64];
    nsa_context *ctx = NULL;
    nsa_context_config cfg = NSA_CONTEXT_CONFIG_INIT;
    float *got;
    double *refd;
    void *obuf;
    int32_t *tbuf;
    float *mbuf, *sbuf;

    load(dir, "query.npy", &q);
    load(dir, "key.npy", &k);
    load(dir, "value.npy", &v);
    load(dir, "ref.npy", &ref);
    load(dir, "ref_softmax_max.npy", &rmax);
    load(dir, "ref_softmax_sum.npy", &rsum);
    load(dir, "ref_topk_indices.npy", &rtopk);
    has_am = test_npy_load(dir, "atten_mask.npy", &am) == 0;
    has_tm = test_npy_load(dir, "topk_mask.npy", &tm) == 0;
    assert_int_equal(test_case_get(dir, "scale_value", buf, sizeof buf), 0);
    p.scale_value = strtod(buf, NULL);
    p.head_num = case_int(dir, "head_num");
    p.compress_block_size = case_int(dir, "compress_block_size");
    p.compress_stride = case_int(dir, "compress_stride");
    p.select_block_size = case_int(dir, "select_block_size");
    p.select_block_count = case_int(dir, "select_block_count");
    p.actual_seq_qlen = qlen;
    p.actual_seq_qlen_count = case_list(dir, "actual_seq_qlen", qlen, 64);
    p.actual_cmp_seq_kvlen = kvlen;
    p.actual_cmp_seq_kvlen_count = case_list(dir, "actual_cmp_seq_kvlen", kvlen, 64);
    p.actual_sel_seq_kvlen = sellen;
    p.actual_sel_seq_kvlen_count = case_list(dir, "actual_sel_seq_kvlen", sellen, 64);

    query = tensor_in(&q, dt);
    key = tensor_in(&k, dt);
    value = tensor_in(&v, dt);
    if (has_am) {
        assert_true(am.dtype == NSA_DTYPE_U8 || am.dtype == NSA_DTYPE_BOOL);
        amask = nsa_tensor_contiguous(am.data, NSA_DTYPE_U8, 2, am.shape);
    }
    if (has_tm) {
        assert_true(tm.dtype == NSA_DTYPE_U8 || tm.dtype == NSA_DTYPE_BOOL);
        tmask = nsa_tensor_contiguous(tm.data, NSA_DTYPE_U8, 2, tm.shape);
    }
    obuf = calloc((size_t)ref.numel, 2);
    out = nsa_tensor_contiguous(obuf, dt, 3, ref.shape);
    tbuf = (int32_t *)calloc((size_t)rtopk.numel, sizeof(int32_t));
    topk = nsa_tensor_contiguous(tbuf, NSA_DTYPE_I32, 3, rtopk.shape);
    shape[0] = q.shape[0];
    shape[1] = q.shape[1];
    shape[2] = 8;
    mbuf = (float *)calloc((size_t)rmax.numel, sizeof(float));
    sbuf = (float *)calloc((size_t)rsum.numel, sizeof(float));
    smax = nsa_tensor_contiguous(mbuf, NSA_DTYPE_F32, 3, shape);
    ssum = nsa_tensor_contiguous(sbuf, NSA_DTYPE_F32, 3, shape);
    cfg.num_threads = threads;
    assert_int_equal(nsa_context_create(&cfg, &ctx), NSA_SUCCESS);
    if (nsa_compress_attention(ctx, &query, &key, &value, has_am ? &amask : NULL,
                               has_tm ? &tmask : NULL, &p, &out, &topk, &smax,
                               &ssum) != NSA_SUCCESS)
        fail_msg("%s: %s", dir, nsa_last_error());
    nsa_context_destroy(ctx);

    got = test_to_f32(obuf, ref.numel, dt);
    refd = as_f64(&ref);
    /* 2 ulps of the dtype: fp32 logits, exp and P.V sums differ from float64 by a few fp32
     * ulps, which can move the final rounding to f16/bf16 by one step beyond the 1 ulp of the
     * cast itself. */
    test_assert_ulps("attention_out", got, refd, ref.numel, dt, 2.0);
    free(got);
    free(refd);
    /* Softmax statistics are fp32 (row max of fp32 dot products, sum of fp32 exps):
     * 1e-5 relative leaves room for ~100 fp32 roundings; atol 1e-6 for maxima near zero. */
    refd = as_f64(&rmax);
    test_assert_close("softmax_max", mbuf, refd, rmax.numel, 1e-6, 1e-5);
    free(refd);
    refd = as_f64(&rsum);
    test_assert_close("softmax_sum", sbuf, refd, rsum.numel, 1e-6, 1e-5);
    free(refd);
    /* Top-k rows identical to the reference (order included). */
    for (i = 0; i < rtopk.numel; i++)
        if (tbuf[i] != (int32_t)test_npy_get(&rtopk, i)) {
            if (mism++ < 5)
                print_message("%s: topk element %lld (row %lld): got %d, want %d\n", dir,
                              (long long)i, (long long)(i / p.select_block_count), tbuf[i],
                              (int)test_npy_get(&rtopk, i));
        }
    assert_int_equal(mism, 0);

    free(obuf);
    free(tbuf);
    free(mbuf);
    free(sbuf);
    free(query.data);
    free(key.data);
    free(value.data);
    test_npy_free(&q);
    test_npy_free(&k);
    test_npy_free(&v);
    test_npy_free(&ref);
    test_npy_free(&rmax);
    test_npy_free(&rsum);
    test_npy_free(&rtopk);
    if (has_am)
        test_npy_free(&am);
    if (has_tm)
        test_npy_free(&tm);
}

static void compress_mindspore_example(void **s)
{
    (void)s;
    replay_compress("nsa/nsa_compress_mindspore_example");
}
static void compress_short_segments(void **s)
{
    (void)s;
    replay_compress("nsa/nsa_compress_short_segments");
}
static void compress_stride_eq_block(void **s)
{
    (void)s;
    replay_compress("nsa/nsa_compress_stride_eq_block");
}
static void compress_wide(void **s)
{
    (void)s;
    replay_compress("nsa/nsa_compress_wide");
}
static void cmp_attn_gqa8_l_eq_d(void **s)
{
    (void)s;
    replay_cmp_attn("nsa/nsa_cmp_attn_gqa8_l_eq_d", 1);
    replay_cmp_attn("nsa/nsa_cmp_attn_gqa8_l_eq_d", 2);
}
static void cmp_attn_masks(void **s)
{
    (void)s;
    replay_cmp_attn("nsa/nsa_cmp_attn_masks", 1);
    replay_cmp_attn("nsa/nsa_cmp_attn_masks", 3);
}
static void cmp_attn_nomask_g1(void **s)
{
    (void)s;
    replay_cmp_attn("nsa/nsa_cmp_attn_nomask_g1", 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(compress_mindspore_example), cmocka_unit_test(compress_short_segments),
        cmocka_unit_test(compress_stride_eq_block),   cmocka_unit_test(compress_wide),
        cmocka_unit_test(cmp_attn_gqa8_l_eq_d),       cmocka_unit_test(cmp_attn_masks),
        cmocka_unit_test(cmp_attn_nomask_g1),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
