/* SPDX-License-Identifier: Apache-2.0 */
/* Replays every nsa_select_attention golden case of tests/data/nsa (see the README there):
 * float64 references from an independent implementation of the vendor semantics. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_util.h"

#include "../ops/select_ref.h"

/* Outputs: the op computes in fp32 and rounds once to the dtype, so it may land one ulp of
 * the dtype from the rounded float64 reference; 2 ulps allows for fp32 accumulation error
 * that pushes a value across a rounding boundary. Outputs that are the small difference of
 * large terms (|out| << sum p|v|) also get the fp32 floor of select_assert_output: no fp32
 * computation gets those within 2 ulps of the dtype. */
#define OUT_MAX_ULPS 2.0
/* softmax_max / softmax_sum are fp32 statistics: ~1e-6 relative from fp32 dot products and
 * sums over at most 32 * 128 keys (a max near 0 also gets the fp32 floor of its dot
 * product, see select_assert_stat). */
#define STAT_RTOL 1e-5

typedef struct golden_case {
    char dir[128];
    nsa_dtype dtype;
    int64_t cum_q[16], cum_kv[16], batches;
    nsa_select_attention_params params;
    test_npy q, k, v, topk, ref, ref_max, ref_sum;
    double *mag;  /* sum_u p_u |v_u| per output element, from the float64 reference */
    double *smag; /* score magnitude per row, likewise */
    double *max1; /* ref_softmax_max, one value per row */
} golden_case;

static int64_t parse_list(const char *text, int64_t *out, int64_t cap)
{
    int64_t n = 0;
    const char *p = text;
    while (*p && n < cap) {
        char *end;
        out[n++] = strtoll(p, &end, 10);
        p = *end == ',' ? end + 1 : end;
        if (end == p && *p != ',')
            break;
    }
    return n;
}

static const char *get(const char *dir, const char *key, char *buf, size_t cap)
{
    if (test_case_get(dir, key, buf, cap) != 0)
        fail_msg("%s/case.txt has no '%s'", dir, key);
    return buf;
}

/* The test's own float64 reference (select_ref.h, also used by the randomised tests) must
 * agree with the golden one; it supplies the magnitudes for the fp32 floor. */
static void check_own_reference(golden_case *gc)
{
    select_ref_case rc;
    const int64_t rows = gc->q.shape[0] * gc->q.shape[1], out_n = rows * gc->v.shape[2];
    double *out = (double *)malloc((size_t)out_n * sizeof(double));
    double *mx = (double *)malloc((size_t)rows * sizeof(double));
    double *sm = (double *)malloc((size_t)rows * sizeof(double));
    const double *ref = (const double *)gc->ref.data;
    int64_t i;
    gc->mag = (double *)malloc((size_t)out_n * sizeof(double));
    gc->smag = (double *)malloc((size_t)rows * sizeof(double));
    gc->max1 = (double *)malloc((size_t)rows * sizeof(double));
    for (i = 0; i < rows; i++)
        gc->max1[i] = test_npy_get(&gc->ref_max, i * 8);
    rc.t1 = gc->q.shape[0];
    rc.n1 = gc->q.shape[1];
    rc.d = gc->q.shape[2];
    rc.t2 = gc->k.shape[0];
    rc.n2 = gc->k.shape[1];
    rc.dv = gc->v.shape[2];
    rc.block_size = gc->params.select_block_size;
    rc.block_count = gc->params.select_block_count;
    rc.batches = gc->batches;
    rc.cum_q = gc->cum_q;
    rc.cum_kv = gc->cum_kv;
    rc.scale = gc->params.scale_value;
    rc.causal = gc->params.sparse_mode == 2;
    rc.q = (const float *)gc->q.data;
    rc.k = (const float *)gc->k.data;
    rc.v = (const float *)gc->v.data;
    rc.topk = (const int32_t *)gc->topk.data;
    select_ref(&rc, out, mx, sm, gc->mag, gc->smag);
    for (i = 0; i < out_n; i++)
        if (fabs(out[i] - ref[i]) > 1e-9 * (gc->mag[i] + 1e-30))
            fail_msg("%s: own reference differs from ref[%lld]: %.12g vs %.12g", gc->dir,
                     (long long)i, out[i], ref[i]);
    for (i = 0; i < rows; i++)
        if (fabs(mx[i] - test_npy_get(&gc->ref_max, i * 8)) > 1e-9 * fabs(mx[i]) ||
            fabs(sm[i] - test_npy_get(&gc->ref_sum, i * 8)) > 1e-9 * fabs(sm[i]))
            fail_msg("%s: own reference statistics differ at row %lld", gc->dir, (long long)i);
    free(out);
    free(mx);
    free(sm);
}

static void load_case(const char *name, golden_case *gc)
{
    char buf[512];
    memset(gc, 0, sizeof *gc);
    snprintf(gc->dir, sizeof gc->dir, "nsa/%s", name);
    get(gc->dir, "dtype", buf, sizeof buf);
    gc->dtype = strcmp(buf, "bf16") == 0 ? NSA_DTYPE_BF16
                : strcmp(buf, "f16") == 0 ? NSA_DTYPE_F16
                                          : NSA_DTYPE_F32;
    gc->params = nsa_select_attention_params_default();
    gc->params.scale_value = atof(get(gc->dir, "scale_value", buf, sizeof buf));
    gc->params.head_num = atoll(get(gc->dir, "head_num", buf, sizeof buf));
    gc->params.select_block_size = atoll(get(gc->dir, "select_block_size", buf, sizeof buf));
    gc->params.select_block_count = atoll(get(gc->dir, "select_block_count", buf, sizeof buf));
    gc->params.sparse_mode = atoll(get(gc->dir, "sparse_mode", buf, sizeof buf));
    gc->batches = parse_list(get(gc->dir, "actual_seq_qlen", buf, sizeof buf), gc->cum_q, 16);
    assert_int_equal(parse_list(get(gc->dir, "actual_seq_kvlen", buf, sizeof buf), gc->cum_kv, 16),
                     gc->batches);
    gc->params.actual_seq_qlen = gc->cum_q;
    gc->params.actual_seq_qlen_count = gc->batches;
    gc->params.actual_seq_kvlen = gc->cum_kv;
    gc->params.actual_seq_kvlen_count = gc->batches;
    assert_int_equal(test_npy_load(gc->dir, "query.npy", &gc->q), 0);
    assert_int_equal(test_npy_load(gc->dir, "key.npy", &gc->k), 0);
    assert_int_equal(test_npy_load(gc->dir, "value.npy", &gc->v), 0);
    assert_int_equal(test_npy_load(gc->dir, "topk_indices.npy", &gc->topk), 0);
    assert_int_equal(test_npy_load(gc->dir, "ref.npy", &gc->ref), 0);
    assert_int_equal(test_npy_load(gc->dir, "ref_softmax_max.npy", &gc->ref_max), 0);
    assert_int_equal(test_npy_load(gc->dir, "ref_softmax_sum.npy", &gc->ref_sum), 0);
    assert_int_equal(gc->topk.dtype, NSA_DTYPE_I32);
    assert_true(gc->ref.is_f64 && gc->ref_max.is_f64 && gc->ref_sum.is_f64);
    check_own_reference(gc);
}

static void free_case(golden_case *gc)
{
    test_npy_free(&gc->q);
    test_npy_free(&gc->k);
    test_npy_free(&gc->v);
    test_npy_free(&gc->topk);
    test_npy_free(&gc->ref);
    test_npy_free(&gc->ref_max);
    test_npy_free(&gc->ref_sum);
    free(gc->mag);
    free(gc->smag);
    free(gc->max1);
}

/* Run the case with inputs in `in_dt` and the output in `out_dt`; `use_mask_form` goes
 * through the MindSpore-style wrapper (a dummy mask when the case is causal). */
static void replay(const golden_case *gc, nsa_dtype in_dt, nsa_dtype out_dt, int use_mask_form)
{
    const int64_t t1 = gc->q.shape[0], n1 = gc->q.shape[1], dv = gc->v.shape[2];
    const int64_t out_shape[3] = {t1, n1, dv}, stat_shape[3] = {t1, n1, 8};
    const int64_t out_n = t1 * n1 * dv, stat_n = t1 * n1 * 8;
    void *q = test_to_dtype((const float *)gc->q.data, gc->q.numel, in_dt);
    void *k = test_to_dtype((const float *)gc->k.data, gc->k.numel, in_dt);
    void *v = test_to_dtype((const float *)gc->v.data, gc->v.numel, in_dt);
    void *out = calloc((size_t)out_n, nsa_dtype_size(out_dt));
    float *smax = (float *)calloc((size_t)stat_n, sizeof(float));
    float *ssum = (float *)calloc((size_t)stat_n, sizeof(float));
    float *out32;
    uint8_t mask_byte = 0;
    const int64_t mask_shape[2] = {1, 1};
    nsa_tensor tq = nsa_tensor_contiguous(q, in_dt, 3, gc->q.shape);
    nsa_tensor tk = nsa_tensor_contiguous(k, in_dt, 3, gc->k.shape);
    nsa_tensor tv = nsa_tensor_contiguous(v, in_dt, 3, gc->v.shape);
    nsa_tensor ttopk = nsa_tensor_contiguous(gc->topk.data, NSA_DTYPE_I32, 3, gc->topk.shape);
    nsa_tensor tout = nsa_tensor_contiguous(out, out_dt, 3, out_shape);
    nsa_tensor tmax = nsa_tensor_contiguous(smax, NSA_DTYPE_F32, 3, stat_shape);
    nsa_tensor tsum = nsa_tensor_contiguous(ssum, NSA_DTYPE_F32, 3, stat_shape);
    nsa_tensor tmask = nsa_tensor_contiguous(&mask_byte, NSA_DTYPE_U8, 2, mask_shape);
    nsa_status st;
    char what[256];

    assert_non_null(out);
    if (use_mask_form)
        st = nsa_select_attention_with_mask(NULL, &tq, &tk, &tv, &ttopk,
                                            gc->params.sparse_mode == 2 ? &tmask : NULL,
                                            &gc->params, &tout, &tmax, &tsum);
    else
        st = nsa_select_attention(NULL, &tq, &tk, &tv, &ttopk, &gc->params, &tout, &tmax, &tsum);
    if (st != NSA_SUCCESS)
        fail_msg("%s: %s: %s", gc->dir, nsa_status_string(st), nsa_last_error());

    out32 = test_to_f32(out, out_n, out_dt);
    snprintf(what, sizeof what, "%s attention_out (%s in, %s out)", gc->dir,
             nsa_dtype_name(in_dt), nsa_dtype_name(out_dt));
    if (out_dt == NSA_DTYPE_F32)
        /* f32 output: absolute error of fp32 sums of <= 1024 terms p*v with |v| < 8 and
         * p summing to 1 stays below 1e-6; ulps would be meaningless near 0 */
        test_assert_close(what, out32, (const double *)gc->ref.data, out_n, 1e-6, 1e-5);
    else
        select_assert_output(what, out32, (const double *)gc->ref.data, gc->mag, gc->smag, dv,
                             out_n, out_dt, OUT_MAX_ULPS);
    snprintf(what, sizeof what, "%s softmax_max", gc->dir);
    select_assert_stat(what, smax, gc->max1, gc->smag, t1 * n1, STAT_RTOL);
    snprintf(what, sizeof what, "%s softmax_sum", gc->dir);
    test_assert_close(what, ssum, (const double *)gc->ref_sum.data, stat_n, 0.0, STAT_RTOL);
    free(out32);
    free(q);
    free(k);
    free(v);
    free(out);
    free(smax);
    free(ssum);
}

static void run_golden(const char *name)
{
    golden_case gc;
    load_case(name, &gc);
    /* as the vendor runs it: inputs and output in the case's dtype */
    replay(&gc, gc.dtype, gc.dtype, 0);
    /* the MindSpore form (atten_mask presence = causal) gives the same result */
    replay(&gc, gc.dtype, gc.dtype, 1);
    /* the same (exactly representable) inputs in f32 with an f32 output */
    replay(&gc, NSA_DTYPE_F32, NSA_DTYPE_F32, 0);
    free_case(&gc);
}

static void golden_bf16_dv_lt_d(void **state)
{
    (void)state;
    run_golden("nsa_select_bf16_dv_lt_d");
}

static void golden_causal(void **state)
{
    (void)state;
    run_golden("nsa_select_causal");
}

static void golden_mindspore_shape(void **state)
{
    (void)state;
    run_golden("nsa_select_mindspore_shape");
}

static void golden_small_blocks_gqa8(void **state)
{
    (void)state;
    run_golden("nsa_select_small_blocks_gqa8");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(golden_bf16_dv_lt_d),
        cmocka_unit_test(golden_causal),
        cmocka_unit_test(golden_mindspore_shape),
        cmocka_unit_test(golden_small_blocks_gqa8),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
