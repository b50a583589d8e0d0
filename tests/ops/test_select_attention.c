/* SPDX-License-Identifier: Apache-2.0 */
/* nsa_select_attention: semantics (duplicates, the diagonal block's causal cut, fully masked
 * rows, prefix-sum batches), every validation error, randomised comparison with the float64
 * reference of select_ref.h, and the reliability checks (thread counts, concurrency,
 * allocation failures, caller workspace). */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reliability.h"
#include "test_util.h"

#include "select_ref.h"

/* Output tolerance: 2 ulps of the output dtype, or the fp32 floor (see select_assert_output). */
#define OUT_ULPS 2.0
/* Statistics are fp32: ~1e-6 relative, plus the fp32 floor of near-zero maxima. */
#define STAT_RTOL 1e-5

/* ---- a test case: inputs as floats (already rounded to their dtype), views, outputs ------ */

typedef struct sel_case {
    select_ref_case rc; /* shapes, parameters and contiguous float inputs for the reference */
    int64_t cum_q[8], cum_kv[8];
    nsa_dtype in_dt, out_dt;
    int strided; /* give the op non-contiguous views */
    float *q, *k, *v;
    int32_t *topk;
    /* what the op sees */
    void *qbuf, *kbuf, *vbuf, *obuf;
    int32_t *topkbuf;
    float *smax, *ssum;
    nsa_tensor tq, tk, tv, ttopk, tout, tmax, tsum;
    nsa_select_attention_params params;
} sel_case;

/* A view of `vals` ([a, b, c] floats) in dtype dt; strided: channels every 2 elements, rows
 * and tokens padded. */
static void *make_view(const float *vals, int64_t a, int64_t b, int64_t c, nsa_dtype dt,
                       int strided, nsa_tensor *t)
{
    const int64_t shape[3] = {a, b, c};
    const int64_t cs = strided ? 2 : 1, hs = strided ? c * cs + 3 : c, ts = strided ? b * hs + 5 : b * c;
    const int64_t n = a * ts + 8;
    const size_t es = nsa_dtype_size(dt);
    char *buf = (char *)calloc((size_t)n, es);
    int64_t i, j, l;
    int64_t stride[3];
    stride[0] = ts;
    stride[1] = hs;
    stride[2] = cs;
    assert_non_null(buf);
    for (i = 0; i < a; i++)
        for (j = 0; j < b; j++)
            for (l = 0; l < c; l++) {
                const float x = vals[(i * b + j) * c + l];
                char *dst = buf + (size_t)(i * ts + j * hs + l * cs) * es;
                if (dt == NSA_DTYPE_F32)
                    memcpy(dst, &x, 4);
                else {
                    uint16_t h16 = dt == NSA_DTYPE_F16 ? nsa_f32_to_f16(x, NSA_ROUND_NEAREST_EVEN)
                                                       : nsa_f32_to_bf16(x, NSA_ROUND_NEAREST_EVEN);
                    memcpy(dst, &h16, 2);
                }
            }
    *t = nsa_tensor_strided(buf, dt, 3, shape, stride);
    return buf;
}

static float get_out(const sel_case *sc, int64_t t, int64_t h, int64_t e)
{
    const nsa_tensor *o = &sc->tout;
    const char *p = (const char *)o->data +
                    (t * o->stride[0] + h * o->stride[1] + e * o->stride[2]) *
                        (int64_t)nsa_dtype_size(o->dtype);
    uint16_t h16;
    float f;
    if (o->dtype == NSA_DTYPE_F32) {
        memcpy(&f, p, 4);
        return f;
    }
    memcpy(&h16, p, 2);
    return o->dtype == NSA_DTYPE_F16 ? nsa_f16_to_f32(h16) : nsa_bf16_to_f32(h16);
}

/* Fill random inputs (rounded to in_dt) for the shapes already in sc->rc; topk uniformly
 * from each batch's whole blocks, runs of identical rows with probability `p_repeat`. */
static void fill_random(sel_case *sc, test_rng *rng, double p_repeat)
{
    select_ref_case *rc = &sc->rc;
    int64_t i, b, t, n2, c;
    sc->q = (float *)malloc((size_t)(rc->t1 * rc->n1 * rc->d + 1) * sizeof(float));
    sc->k = (float *)malloc((size_t)(rc->t2 * rc->n2 * rc->d + 1) * sizeof(float));
    sc->v = (float *)malloc((size_t)(rc->t2 * rc->n2 * rc->dv + 1) * sizeof(float));
    sc->topk = (int32_t *)malloc((size_t)(rc->t1 * rc->n2 * rc->block_count + 1) * sizeof(int32_t));
    for (i = 0; i < rc->t1 * rc->n1 * rc->d; i++)
        sc->q[i] = test_rng_uniform(rng, -2.0f, 2.0f);
    for (i = 0; i < rc->t2 * rc->n2 * rc->d; i++)
        sc->k[i] = test_rng_uniform(rng, -2.0f, 2.0f);
    for (i = 0; i < rc->t2 * rc->n2 * rc->dv; i++)
        sc->v[i] = test_rng_uniform(rng, -3.0f, 3.0f);
    test_round_to_dtype(sc->q, rc->t1 * rc->n1 * rc->d, sc->in_dt);
    test_round_to_dtype(sc->k, rc->t2 * rc->n2 * rc->d, sc->in_dt);
    test_round_to_dtype(sc->v, rc->t2 * rc->n2 * rc->dv, sc->in_dt);
    for (b = 0; b < rc->batches; b++) {
        const int64_t q0 = b ? rc->cum_q[b - 1] : 0, kv0 = b ? rc->cum_kv[b - 1] : 0;
        const int64_t nblocks = (rc->cum_kv[b] - kv0) / rc->block_size;
        for (t = q0; t < rc->cum_q[b]; t++)
            for (n2 = 0; n2 < rc->n2; n2++) {
                int32_t *row = sc->topk + (t * rc->n2 + n2) * rc->block_count;
                if (t > q0 && test_rng_uniform(rng, 0.0f, 1.0f) < (float)p_repeat) {
                    memcpy(row, row - rc->n2 * rc->block_count,
                           (size_t)rc->block_count * sizeof(int32_t));
                    continue;
                }
                for (c = 0; c < rc->block_count; c++)
                    row[c] = (int32_t)test_rng_int(rng, 0, nblocks - 1);
            }
    }
}

/* Build the op's views and outputs from the float inputs. */
static void make_views(sel_case *sc)
{
    select_ref_case *rc = &sc->rc;
    const int64_t stat_shape[3] = {rc->t1, rc->n1, 8};
    const int64_t topk_shape[3] = {rc->t1, rc->n2, rc->block_count};
    float *zeros = (float *)calloc((size_t)(rc->t1 * rc->n1 * rc->dv + 1), sizeof(float));
    sc->qbuf = make_view(sc->q, rc->t1, rc->n1, rc->d, sc->in_dt, sc->strided, &sc->tq);
    sc->kbuf = make_view(sc->k, rc->t2, rc->n2, rc->d, sc->in_dt, sc->strided, &sc->tk);
    sc->vbuf = make_view(sc->v, rc->t2, rc->n2, rc->dv, sc->in_dt, sc->strided, &sc->tv);
    sc->obuf = make_view(zeros, rc->t1, rc->n1, rc->dv, sc->out_dt, sc->strided, &sc->tout);
    free(zeros);
    sc->topkbuf = (int32_t *)malloc((size_t)(rc->t1 * rc->n2 * rc->block_count + 1) * sizeof(int32_t));
    memcpy(sc->topkbuf, sc->topk, (size_t)(rc->t1 * rc->n2 * rc->block_count) * sizeof(int32_t));
    sc->ttopk = nsa_tensor_contiguous(sc->topkbuf, NSA_DTYPE_I32, 3, topk_shape);
    sc->smax = (float *)calloc((size_t)(rc->t1 * rc->n1 * 8 + 1), sizeof(float));
    sc->ssum = (float *)calloc((size_t)(rc->t1 * rc->n1 * 8 + 1), sizeof(float));
    sc->tmax = nsa_tensor_contiguous(sc->smax, NSA_DTYPE_F32, 3, stat_shape);
    sc->tsum = nsa_tensor_contiguous(sc->ssum, NSA_DTYPE_F32, 3, stat_shape);
    sc->params = nsa_select_attention_params_default();
    sc->params.scale_value = rc->scale;
    sc->params.select_block_size = rc->block_size;
    sc->params.select_block_count = rc->block_count;
    sc->params.actual_seq_qlen = rc->cum_q;
    sc->params.actual_seq_qlen_count = rc->batches;
    sc->params.actual_seq_kvlen = rc->cum_kv;
    sc->params.actual_seq_kvlen_count = rc->batches;
    sc->params.sparse_mode = rc->causal ? 2 : 0;
}

/* Shapes of a case; sequence lengths are per batch (not cumulative). */
static void set_shapes(sel_case *sc, int64_t n1, int64_t n2, int64_t d, int64_t dv, int64_t bs,
                       int64_t bc, const int64_t *len_q, const int64_t *len_kv, int64_t batches,
                       double scale, int causal)
{
    select_ref_case *rc = &sc->rc;
    int64_t b;
    rc->n1 = n1;
    rc->n2 = n2;
    rc->d = d;
    rc->dv = dv;
    rc->block_size = bs;
    rc->block_count = bc;
    rc->batches = batches;
    rc->scale = scale;
    rc->causal = causal;
    for (b = 0; b < batches; b++) {
        sc->cum_q[b] = (b ? sc->cum_q[b - 1] : 0) + len_q[b];
        sc->cum_kv[b] = (b ? sc->cum_kv[b - 1] : 0) + len_kv[b];
    }
    rc->cum_q = sc->cum_q;
    rc->cum_kv = sc->cum_kv;
    rc->t1 = sc->cum_q[batches - 1];
    rc->t2 = sc->cum_kv[batches - 1];
}

static void finish_inputs(sel_case *sc)
{
    sc->rc.q = sc->q;
    sc->rc.k = sc->k;
    sc->rc.v = sc->v;
    sc->rc.topk = sc->topk;
    make_views(sc);
}

static void free_case(sel_case *sc)
{
    free(sc->q);
    free(sc->k);
    free(sc->v);
    free(sc->topk);
    free(sc->qbuf);
    free(sc->kbuf);
    free(sc->vbuf);
    free(sc->obuf);
    free(sc->topkbuf);
    free(sc->smax);
    free(sc->ssum);
}

static nsa_status run_op(sel_case *sc, nsa_context *ctx)
{
    return nsa_select_attention(ctx, &sc->tq, &sc->tk, &sc->tv, &sc->ttopk, &sc->params,
                                &sc->tout, &sc->tmax, &sc->tsum);
}

/* Run the op and compare everything with the float64 reference. */
static void check_against_reference(sel_case *sc, const char *name)
{
    select_ref_case *rc = &sc->rc;
    const int64_t rows = rc->t1 * rc->n1, out_n = rows * rc->dv;
    double *ref = (double *)malloc((size_t)(out_n + 1) * sizeof(double));
    double *mag = (double *)malloc((size_t)(out_n + 1) * sizeof(double));
    double *mx = (double *)malloc((size_t)(rows + 1) * sizeof(double));
    double *sm = (double *)malloc((size_t)(rows + 1) * sizeof(double));
    double *smag = (double *)malloc((size_t)(rows + 1) * sizeof(double));
    float *got = (float *)malloc((size_t)(out_n + 1) * sizeof(float));
    double *sum_ref8 = (double *)malloc((size_t)(rows * 8 + 1) * sizeof(double));
    char what[160];
    int64_t t, h, e, i;
    nsa_status st = run_op(sc, NULL);
    if (st != NSA_SUCCESS)
        fail_msg("%s: %s: %s", name, nsa_status_string(st), nsa_last_error());
    select_ref(rc, ref, mx, sm, mag, smag);
    for (t = 0; t < rc->t1; t++)
        for (h = 0; h < rc->n1; h++)
            for (e = 0; e < rc->dv; e++)
                got[(t * rc->n1 + h) * rc->dv + e] = get_out(sc, t, h, e);
    snprintf(what, sizeof what, "%s attention_out", name);
    select_assert_output(what, got, ref, mag, smag, rc->dv, out_n, sc->out_dt, OUT_ULPS);
    snprintf(what, sizeof what, "%s softmax_max", name);
    select_assert_stat(what, sc->smax, mx, smag, rows, STAT_RTOL);
    for (i = 0; i < rows * 8; i++)
        sum_ref8[i] = sm[i / 8];
    snprintf(what, sizeof what, "%s softmax_sum", name);
    test_assert_close(what, sc->ssum, sum_ref8, rows * 8, 0.0, STAT_RTOL);
    free(ref);
    free(mag);
    free(mx);
    free(sm);
    free(smag);
    free(got);
    free(sum_ref8);
}

/* ---- semantics --------------------------------------------------------------------------- */

/* nsa-research.md §9 example 4: l' = 64, query position s = 70, topk = [1, 0, 2]: slot 0
 * keeps keys 64..70 of block 1, slot 1 all of block 0, slot 2 is fully masked. So the row is
 * exactly dense attention over keys 0..70 (masked scores contribute exp(-huge) = 0), which
 * this test computes directly, without select_ref. */
static void diagonal_block_causal_cut(void **state)
{
    sel_case sc;
    test_rng rng;
    const int64_t len_q = 71, len_kv = 192;
    int64_t h, e, u, j;
    (void)state;
    memset(&sc, 0, sizeof sc);
    test_rng_seed(&rng, 4);
    sc.in_dt = sc.out_dt = NSA_DTYPE_F32;
    set_shapes(&sc, 2, 1, 32, 16, 64, 3, &len_q, &len_kv, 1, 0.125, 1);
    fill_random(&sc, &rng, 0.0);
    sc.topk[70 * 3 + 0] = 1;
    sc.topk[70 * 3 + 1] = 0;
    sc.topk[70 * 3 + 2] = 2;
    finish_inputs(&sc);
    assert_int_equal(run_op(&sc, NULL), NSA_SUCCESS);
    for (h = 0; h < 2; h++) {
        double x[71], m = -INFINITY, z = 0.0;
        for (u = 0; u <= 70; u++) {
            double dot = 0.0;
            for (e = 0; e < 32; e++)
                dot += (double)sc.q[(70 * 2 + h) * 32 + e] * (double)sc.k[u * 32 + e];
            x[u] = dot * 0.125;
            m = x[u] > m ? x[u] : m;
        }
        for (u = 0; u <= 70; u++)
            z += exp(x[u] - m);
        for (e = 0; e < 16; e++) {
            double o = 0.0, mag = 0.0;
            for (u = 0; u <= 70; u++) {
                o += exp(x[u] - m) / z * sc.v[u * 16 + e];
                mag += exp(x[u] - m) / z * fabs(sc.v[u * 16 + e]);
            }
            assert_true(fabs(get_out(&sc, 70, h, e) - o) <= 4.0 * ldexp(mag, -24));
        }
        for (j = 0; j < 8; j++) {
            assert_true(fabs(sc.smax[(70 * 2 + h) * 8 + j] - m) <= 1e-6 * fabs(m) + 1e-6);
            assert_true(fabs(sc.ssum[(70 * 2 + h) * 8 + j] - z) <= STAT_RTOL * z);
        }
    }
    /* and every other row of the case agrees with the reference */
    check_against_reference(&sc, "causal cut");
    free_case(&sc);
}

/* A block listed twice is gathered twice: the softmax weights of its keys double. Listing
 * [3, 3] gives the same output as [3] and twice its softmax_sum; [3, 3, 5] equals one list
 * [3, 5] where block 3's probabilities are doubled before normalising. */
static void duplicates_counted_twice(void **state)
{
    sel_case a, b;
    test_rng rng;
    const int64_t len_q = 4, len_kv = 8 * 16;
    int64_t t, h, e;
    (void)state;
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    test_rng_seed(&rng, 33);
    a.in_dt = a.out_dt = b.in_dt = b.out_dt = NSA_DTYPE_F32;
    set_shapes(&a, 2, 1, 16, 8, 16, 2, &len_q, &len_kv, 1, 0.25, 0);
    set_shapes(&b, 2, 1, 16, 8, 16, 1, &len_q, &len_kv, 1, 0.25, 0);
    fill_random(&a, &rng, 0.0);
    fill_random(&b, &rng, 0.0);
    memcpy(b.q, a.q, sizeof(float) * 4 * 2 * 16);
    memcpy(b.k, a.k, sizeof(float) * 128 * 16);
    memcpy(b.v, a.v, sizeof(float) * 128 * 8);
    for (t = 0; t < 4; t++) {
        a.topk[t * 2] = a.topk[t * 2 + 1] = 3;
        b.topk[t] = 3;
    }
    finish_inputs(&a);
    finish_inputs(&b);
    assert_int_equal(run_op(&a, NULL), NSA_SUCCESS);
    assert_int_equal(run_op(&b, NULL), NSA_SUCCESS);
    for (t = 0; t < 4; t++)
        for (h = 0; h < 2; h++) {
            const int64_t r = (t * 2 + h) * 8;
            /* same probabilities; fp32 sums over 32 vs 16 keys differ by a few ulps */
            for (e = 0; e < 8; e++)
                assert_true(fabsf(get_out(&a, t, h, e) - get_out(&b, t, h, e)) <= 1e-6f * 3.0f);
            assert_true(a.smax[r] == b.smax[r]);
            assert_true(fabs((double)a.ssum[r] - 2.0 * (double)b.ssum[r]) <= 1e-6 * a.ssum[r]);
        }
    free_case(&b);
    /* [3, 3, 5] against the reference (which gathers slot by slot) */
    free_case(&a);
    memset(&a, 0, sizeof a);
    a.in_dt = NSA_DTYPE_BF16;
    a.out_dt = NSA_DTYPE_F32;
    set_shapes(&a, 4, 2, 16, 8, 16, 3, &len_q, &len_kv, 1, 0.25, 0);
    fill_random(&a, &rng, 0.0);
    for (t = 0; t < 4 * 2; t++) {
        a.topk[t * 3] = 3;
        a.topk[t * 3 + 1] = 5;
        a.topk[t * 3 + 2] = 3;
    }
    finish_inputs(&a);
    check_against_reference(&a, "duplicates");
    free_case(&a);
}

/* Batches of different lengths, an empty query batch, an empty kv batch with no queries, and
 * indices that are batch-local (block 0 of batch 2 starts at its own first key). */
static void prefix_sum_batches(void **state)
{
    static const int64_t len_q[5] = {5, 0, 37, 1, 12};
    static const int64_t len_kv[5] = {32, 0, 112, 48, 64};
    int causal;
    (void)state;
    for (causal = 0; causal <= 1; causal++) {
        sel_case sc;
        test_rng rng;
        memset(&sc, 0, sizeof sc);
        test_rng_seed(&rng, 50 + (uint64_t)causal);
        sc.in_dt = NSA_DTYPE_F16;
        sc.out_dt = NSA_DTYPE_F16;
        set_shapes(&sc, 6, 3, 24, 20, 16, 2, len_q, len_kv, 5, 0.2, causal);
        fill_random(&sc, &rng, 0.3);
        finish_inputs(&sc);
        check_against_reference(&sc, causal ? "batches causal" : "batches");
        free_case(&sc);
    }
}

/* Query position 0 selecting only future blocks: every score is masked. With scale <= 1 the
 * masked logit -FLT_MAX*scale is finite, so probabilities are uniform over the k*l' gathered
 * keys (vendor kernel behaviour): out = mean of V, max = -FLT_MAX*scale, sum = k*l'. With
 * scale > 1 it is -inf and the vendor computes NaN. */
static void fully_masked_rows(void **state)
{
    int pass;
    (void)state;
    for (pass = 0; pass < 2; pass++) {
        sel_case sc;
        test_rng rng;
        const int64_t len_q = 3, len_kv = 64;
        const double scale = pass ? 2.0 : 0.5;
        int64_t h, e, u, j;
        memset(&sc, 0, sizeof sc);
        test_rng_seed(&rng, 7);
        sc.in_dt = NSA_DTYPE_BF16;
        sc.out_dt = NSA_DTYPE_F32;
        set_shapes(&sc, 2, 1, 16, 8, 16, 2, &len_q, &len_kv, 1, scale, 1);
        fill_random(&sc, &rng, 0.0);
        sc.topk[0] = 1; /* token 0: blocks 1 and 3, keys 16.. and 48.. */
        sc.topk[1] = 3;
        finish_inputs(&sc);
        assert_int_equal(run_op(&sc, NULL), NSA_SUCCESS);
        for (h = 0; h < 2; h++) {
            for (e = 0; e < 8; e++) {
                double mean = 0.0;
                for (u = 0; u < 16; u++)
                    mean += (sc.v[(16 + u) * 8 + e] + sc.v[(48 + u) * 8 + e]) / 32.0;
                if (pass)
                    assert_true(isnan(get_out(&sc, 0, h, e)));
                else
                    assert_true(fabs(get_out(&sc, 0, h, e) - mean) <= 4e-7 * 3.0);
            }
            for (j = 0; j < 8; j++) {
                if (pass) {
                    assert_true(sc.smax[h * 8 + j] == -INFINITY);
                    assert_true(isnan(sc.ssum[h * 8 + j]));
                } else {
                    assert_true(sc.smax[h * 8 + j] == -FLT_MAX * 0.5f);
                    assert_true(sc.ssum[h * 8 + j] == 32.0f);
                }
            }
        }
        check_against_reference(&sc, pass ? "fully masked, scale 2" : "fully masked, scale 0.5");
        free_case(&sc);
    }
}

/* The MindSpore form: any atten_mask (values never read, even an empty one) means causal,
 * NULL means no mask; params.sparse_mode is ignored. */
static void mask_wrapper(void **state)
{
    sel_case sc;
    test_rng rng;
    const int64_t len_q = 20, len_kv = 64, mshape[2] = {20, 64}, eshape[2] = {0, 0};
    uint8_t *ones = (uint8_t *)malloc(20 * 64);
    float *causal_out, *plain_out;
    nsa_tensor mask, empty_mask;
    const size_t out_bytes = 20 * 4 * 8 * sizeof(float);
    (void)state;
    memset(ones, 1, 20 * 64);
    memset(&sc, 0, sizeof sc);
    test_rng_seed(&rng, 11);
    sc.in_dt = sc.out_dt = NSA_DTYPE_F32;
    set_shapes(&sc, 4, 2, 8, 8, 16, 3, &len_q, &len_kv, 1, 0.3, 1);
    fill_random(&sc, &rng, 0.0);
    finish_inputs(&sc);
    check_against_reference(&sc, "causal");
    causal_out = (float *)malloc(out_bytes);
    plain_out = (float *)malloc(out_bytes);
    memcpy(causal_out, sc.obuf, out_bytes);
    sc.params.sparse_mode = 0;
    sc.rc.causal = 0;
    check_against_reference(&sc, "no mask");
    memcpy(plain_out, sc.obuf, out_bytes);
    assert_true(memcmp(causal_out, plain_out, out_bytes) != 0);

    mask = nsa_tensor_contiguous(ones, NSA_DTYPE_U8, 2, mshape);
    empty_mask = nsa_tensor_contiguous(NULL, NSA_DTYPE_BOOL, 2, eshape);
    sc.params.sparse_mode = 0; /* ignored by the wrapper */
    assert_int_equal(nsa_select_attention_with_mask(NULL, &sc.tq, &sc.tk, &sc.tv, &sc.ttopk, &mask,
                                                    &sc.params, &sc.tout, &sc.tmax, &sc.tsum),
                     NSA_SUCCESS);
    assert_memory_equal(sc.obuf, causal_out, out_bytes);
    assert_int_equal(nsa_select_attention_with_mask(NULL, &sc.tq, &sc.tk, &sc.tv, &sc.ttopk,
                                                    &empty_mask, &sc.params, &sc.tout, &sc.tmax,
                                                    &sc.tsum),
                     NSA_SUCCESS);
    assert_memory_equal(sc.obuf, causal_out, out_bytes);
    sc.params.sparse_mode = 2; /* ignored too: no mask means no masking */
    assert_int_equal(nsa_select_attention_with_mask(NULL, &sc.tq, &sc.tk, &sc.tv, &sc.ttopk, NULL,
                                                    &sc.params, &sc.tout, &sc.tmax, &sc.tsum),
                     NSA_SUCCESS);
    assert_memory_equal(sc.obuf, plain_out, out_bytes);
    free(ones);
    free(causal_out);
    free(plain_out);
    free_case(&sc);
}

/* Optional statistics; T1 = 0 is a valid empty call. */
static void optional_outputs_and_empty(void **state)
{
    sel_case sc;
    test_rng rng;
    const int64_t len_q = 9, len_kv = 32, zero = 0;
    (void)state;
    memset(&sc, 0, sizeof sc);
    test_rng_seed(&rng, 12);
    sc.in_dt = NSA_DTYPE_BF16;
    sc.out_dt = NSA_DTYPE_BF16;
    set_shapes(&sc, 2, 2, 8, 8, 16, 2, &len_q, &len_kv, 1, 0.3, 1);
    fill_random(&sc, &rng, 0.0);
    finish_inputs(&sc);
    assert_int_equal(nsa_select_attention(NULL, &sc.tq, &sc.tk, &sc.tv, &sc.ttopk, &sc.params,
                                          &sc.tout, NULL, NULL),
                     NSA_SUCCESS);
    assert_string_equal(nsa_last_error(), "");
    free_case(&sc);

    memset(&sc, 0, sizeof sc);
    sc.in_dt = sc.out_dt = NSA_DTYPE_F32;
    set_shapes(&sc, 2, 2, 8, 8, 16, 2, &zero, &len_kv, 1, 0.3, 1);
    fill_random(&sc, &rng, 0.0);
    finish_inputs(&sc);
    assert_int_equal(run_op(&sc, NULL), NSA_SUCCESS);
    free_case(&sc);
}

/* Many random shapes, dtypes, views and masks against the float64 reference. */
static void randomized_against_reference(void **state)
{
    static const nsa_dtype dts[3] = {NSA_DTYPE_F32, NSA_DTYPE_F16, NSA_DTYPE_BF16};
    test_rng rng;
    int iter;
    (void)state;
    test_rng_seed(&rng, 2024);
    for (iter = 0; iter < 60; iter++) {
        sel_case sc;
        int64_t len_q[4], len_kv[4], b, batches = test_rng_int(&rng, 1, 4);
        const int64_t n2 = test_rng_int(&rng, 1, 3), g = test_rng_int(&rng, 1, 9);
        const int64_t bs = 16 * test_rng_int(&rng, 1, 4), bc = test_rng_int(&rng, 1, 6);
        const int64_t d = test_rng_int(&rng, 1, 48), dv = test_rng_int(&rng, 1, 40);
        const double scales[4] = {0.05, 0.17, 1.0, 1.7};
        char name[96];
        memset(&sc, 0, sizeof sc);
        for (b = 0; b < batches; b++) {
            len_q[b] = test_rng_int(&rng, 0, 24);
            len_kv[b] = test_rng_int(&rng, 1, 4) * bs + test_rng_int(&rng, 0, bs - 1);
        }
        sc.in_dt = dts[test_rng_int(&rng, 0, 2)];
        sc.out_dt = test_rng_int(&rng, 0, 1) ? sc.in_dt : NSA_DTYPE_F32;
        sc.strided = (int)test_rng_int(&rng, 0, 1);
        set_shapes(&sc, n2 * g, n2, d, dv, bs, bc, len_q, len_kv, batches,
                   scales[test_rng_int(&rng, 0, 3)], (int)test_rng_int(&rng, 0, 1));
        if (sc.rc.t1 == 0) {
            len_q[0] = 3;
            set_shapes(&sc, n2 * g, n2, d, dv, bs, bc, len_q, len_kv, batches, sc.rc.scale,
                       sc.rc.causal);
        }
        fill_random(&sc, &rng, 0.4);
        finish_inputs(&sc);
        snprintf(name, sizeof name, "random case %d (%s->%s, G=%lld, l'=%lld, k=%lld%s%s)", iter,
                 nsa_dtype_name(sc.in_dt), nsa_dtype_name(sc.out_dt), (long long)g, (long long)bs,
                 (long long)bc, sc.rc.causal ? ", causal" : "", sc.strided ? ", strided" : "");
        check_against_reference(&sc, name);
        free_case(&sc);
    }
}

/* The worked example of docs/nsa_select.md, value for value. */
static void docs_worked_example(void **state)
{
    float q[4] = {2, 0, 2, 0}, k[64], v[32], out[2], mx[16], sm[16];
    int32_t topk[4] = {1, 1, 1, 0};
    const int64_t qs[3] = {2, 1, 2}, ks[3] = {32, 1, 2}, vs[3] = {32, 1, 1};
    const int64_t tsh[3] = {2, 1, 2}, os[3] = {2, 1, 1}, ss[3] = {2, 1, 8};
    nsa_tensor tq = nsa_tensor_contiguous(q, NSA_DTYPE_F32, 3, qs);
    nsa_tensor tk = nsa_tensor_contiguous(k, NSA_DTYPE_F32, 3, ks);
    nsa_tensor tv = nsa_tensor_contiguous(v, NSA_DTYPE_F32, 3, vs);
    nsa_tensor tt = nsa_tensor_contiguous(topk, NSA_DTYPE_I32, 3, tsh);
    nsa_tensor to = nsa_tensor_contiguous(out, NSA_DTYPE_F32, 3, os);
    nsa_tensor tm = nsa_tensor_contiguous(mx, NSA_DTYPE_F32, 3, ss);
    nsa_tensor tsum = nsa_tensor_contiguous(sm, NSA_DTYPE_F32, 3, ss);
    nsa_select_attention_params p = nsa_select_attention_params_default();
    const double z = 16.0 + 16.0 / exp(1.0);
    int i;
    (void)state;
    for (i = 0; i < 32; i++) {
        k[2 * i] = i < 16 ? 1.0f : 0.0f;
        k[2 * i + 1] = i < 16 ? 0.0f : 1.0f;
        v[i] = i < 16 ? 1.0f : 3.0f;
    }
    p.scale_value = 0.5;
    p.select_block_size = 16;
    p.select_block_count = 2;
    assert_int_equal(nsa_select_attention(NULL, &tq, &tk, &tv, &tt, &p, &to, &tm, &tsum),
                     NSA_SUCCESS);
    assert_true(out[0] == 3.0f && mx[0] == 0.0f && sm[0] == 32.0f);
    assert_true(fabs(mx[8] - 1.0) < 1e-7 && fabs(sm[8] - z) < 1e-5 * z);
    assert_true(fabs(out[1] - (16.0 + 48.0 / exp(1.0)) / z) < 1e-6);
    p.sparse_mode = 2;
    assert_int_equal(nsa_select_attention(NULL, &tq, &tk, &tv, &tt, &p, &to, &tm, &tsum),
                     NSA_SUCCESS);
    assert_true(out[0] == 3.0f && mx[0] == -FLT_MAX * 0.5f && sm[0] == 32.0f);
    assert_true(out[1] == 1.0f && mx[8] == 1.0f && sm[8] == 2.0f);
    topk[2] = 9;
    assert_int_equal(nsa_select_attention(NULL, &tq, &tk, &tv, &tt, &p, &to, &tm, &tsum),
                     NSA_ERR_INVALID_ARGUMENT);
    assert_string_equal(nsa_last_error(),
                        "topk_indices[1, 0, 0] = 9 is out of range: batch 0 has 32 keys, so "
                        "whole blocks of select_block_size 16 are 0..1");
}

/* ---- reliability ------------------------------------------------------------------------- */

static nsa_status rel_run(void *user, nsa_context *ctx, void *out, size_t out_size)
{
    sel_case *sc = (sel_case *)user;
    const size_t ob = (size_t)(sc->rc.t1 * sc->rc.n1 * sc->rc.dv) * nsa_dtype_size(sc->out_dt);
    const size_t sb = (size_t)(sc->rc.t1 * sc->rc.n1 * 8) * sizeof(float);
    nsa_tensor o = sc->tout, m = sc->tmax, s = sc->tsum;
    assert_int_equal(out_size, ob + 2 * sb);
    o.data = out;
    m.data = (char *)out + ob;
    s.data = (char *)out + ob + sb;
    return nsa_select_attention(ctx, &sc->tq, &sc->tk, &sc->tv, &sc->ttopk, &sc->params, &o, &m,
                                &s);
}

static void make_rel_case(sel_case *sc, rel_op *op)
{
    test_rng rng;
    static const int64_t len_q[2] = {70, 45}, len_kv[2] = {256, 192};
    memset(sc, 0, sizeof *sc);
    test_rng_seed(&rng, 99);
    sc->in_dt = NSA_DTYPE_BF16;
    sc->out_dt = NSA_DTYPE_BF16;
    set_shapes(sc, 8, 2, 32, 16, 32, 4, len_q, len_kv, 2, 0.2, 1);
    fill_random(sc, &rng, 0.5);
    finish_inputs(sc);
    op->name = "nsa_select_attention";
    op->run = rel_run;
    op->user = sc;
    op->out_size = (size_t)(sc->rc.t1 * sc->rc.n1) * (16 * 2 + 16 * sizeof(float));
}

static void thread_counts_bit_identical(void **state)
{
    sel_case sc;
    rel_op op;
    (void)state;
    make_rel_case(&sc, &op);
    rel_check_thread_counts(&op);
    free_case(&sc);
}

static void concurrent_callers(void **state)
{
    sel_case sc;
    rel_op op;
    (void)state;
    make_rel_case(&sc, &op);
    rel_check_concurrent(&op);
    free_case(&sc);
}

static void allocation_failures(void **state)
{
    sel_case sc;
    rel_op op;
    (void)state;
    make_rel_case(&sc, &op);
    rel_check_alloc_failures(&op);
    free_case(&sc);
}

/* A caller workspace of exactly workspace_size() bytes works (same bits); one byte less is
 * NSA_ERR_WORKSPACE_TOO_SMALL. */
static void caller_workspace(void **state)
{
    sel_case sc;
    rel_op op;
    nsa_context_config cfg = NSA_CONTEXT_CONFIG_INIT;
    nsa_context *ctx = NULL;
    size_t ws_size = 0;
    void *ws, *ref, *got;
    (void)state;
    make_rel_case(&sc, &op);
    cfg.num_threads = 2;
    assert_int_equal(nsa_context_create(&cfg, &ctx), NSA_SUCCESS);
    assert_int_equal(nsa_select_attention_workspace_size(ctx, &sc.tq, &sc.tk, &sc.tv, &sc.ttopk,
                                                         &sc.params, &ws_size),
                     NSA_SUCCESS);
    assert_true(ws_size > 0);
    ref = malloc(op.out_size);
    got = malloc(op.out_size);
    assert_int_equal(rel_run(&sc, ctx, ref, op.out_size), NSA_SUCCESS);
    assert_int_equal(posix_memalign(&ws, 64, ws_size), 0);
    assert_int_equal(nsa_context_set_workspace(ctx, ws, ws_size), NSA_SUCCESS);
    assert_int_equal(rel_run(&sc, ctx, got, op.out_size), NSA_SUCCESS);
    assert_memory_equal(ref, got, op.out_size);
    assert_int_equal(nsa_context_set_workspace(ctx, ws, ws_size - 1), NSA_SUCCESS);
    assert_int_equal(rel_run(&sc, ctx, got, op.out_size), NSA_ERR_WORKSPACE_TOO_SMALL);
    nsa_context_destroy(ctx);
    free(ws);
    free(ref);
    free(got);
    free_case(&sc);
}

/* ---- validation -------------------------------------------------------------------------- */

/* A small valid call every error case breaks in one way. */
typedef struct fixture {
    sel_case sc;
    nsa_tensor *q, *k, *v, *topk, *out, *smax, *ssum, *mask;
    nsa_tensor mask_view;
    uint8_t mask_byte;
    int use_wrapper;
} fixture;

static void fx_init(fixture *fx)
{
    test_rng rng;
    static const int64_t len_q[2] = {3, 5}, len_kv[2] = {64, 48};
    const int64_t mshape[2] = {1, 1};
    memset(fx, 0, sizeof *fx);
    test_rng_seed(&rng, 5);
    fx->sc.in_dt = fx->sc.out_dt = NSA_DTYPE_F32;
    set_shapes(&fx->sc, 4, 2, 16, 8, 16, 2, len_q, len_kv, 2, 0.25, 1);
    fill_random(&fx->sc, &rng, 0.0);
    finish_inputs(&fx->sc);
    fx->q = &fx->sc.tq;
    fx->k = &fx->sc.tk;
    fx->v = &fx->sc.tv;
    fx->topk = &fx->sc.ttopk;
    fx->out = &fx->sc.tout;
    fx->smax = &fx->sc.tmax;
    fx->ssum = &fx->sc.tsum;
    fx->mask_view = nsa_tensor_contiguous(&fx->mask_byte, NSA_DTYPE_BOOL, 2, mshape);
    fx->mask = &fx->mask_view;
}

static nsa_status fx_run(fixture *fx, nsa_select_attention_params *p)
{
    if (fx->use_wrapper)
        return nsa_select_attention_with_mask(NULL, fx->q, fx->k, fx->v, fx->topk, fx->mask, p,
                                              fx->out, fx->smax, fx->ssum);
    return nsa_select_attention(NULL, fx->q, fx->k, fx->v, fx->topk, p, fx->out, fx->smax,
                                fx->ssum);
}

typedef struct error_case {
    const char *name;
    nsa_status status;
    const char *message; /* a substring of nsa_last_error() */
} error_case;

/* Apply error case `i` to the fixture; returns the parameters to use. */
static nsa_select_attention_params *fx_break(fixture *fx, int i)
{
    nsa_select_attention_params *p = &fx->sc.params;
    static const int64_t bad_q[2] = {-1, 8}, bad_kv[2] = {64, 120}, decreasing[2] = {5, 3};
    static const int64_t short_q[2] = {3, 7};
    switch (i) {
    case 0: return NULL;
    case 1: fx->q = NULL; break;
    case 2: fx->q->ndim = 2; break;
    case 3: fx->q->dtype = NSA_DTYPE_I32; break;
    case 4: fx->k->dtype = NSA_DTYPE_F16; break;
    case 5: fx->v->dtype = NSA_DTYPE_BF16; break;
    case 6: fx->topk->dtype = NSA_DTYPE_I64; break;
    case 7: p->select_block_size = 20; break;
    case 8: p->select_block_size = 144; break;
    case 9: p->select_block_count = 0; break;
    case 50: p->select_block_size = 0; break;
    case 51: fx->q->shape[1] = 65538; fx->q->stride[1] = 0; fx->k->shape[1] = 2; break;
    case 10: p->select_block_count = 33; break;
    case 11: p->sparse_mode = 1; break;
    case 12: p->validation = (nsa_validation)7; break;
    case 13: p->scale_value = NAN; break;
    case 14: p->scale_value = 1e39; break;
    case 15: fx->k->shape[1] = 0; break;
    case 16: fx->q->shape[2] = 0; break;
    case 17: fx->v->shape[2] = 0; break;
    case 18: p->head_num = 3; break;
    case 19: fx->q->shape[1] = 3; break;
    case 20: fx->k->shape[2] = 12; break;
    case 21: fx->v->shape[0] = 100; break;
    case 22: fx->v->shape[1] = 1; break;
    case 23: fx->topk->shape[0] = 7; break;
    case 24: fx->topk->shape[1] = 1; break;
    case 25: p->select_block_count = 3; break;
    case 26: fx->k->stride[0] = -1; break;
    case 27: p->actual_seq_qlen = NULL; break;
    case 28: p->actual_seq_kvlen = NULL; break;
    case 29: p->actual_seq_qlen_count = 0; p->actual_seq_kvlen_count = 0; break;
    case 30: p->actual_seq_kvlen_count = 1; break;
    case 31: p->actual_seq_qlen = decreasing; break;
    case 32: p->actual_seq_qlen = bad_q; break;
    case 33: p->actual_seq_kvlen = bad_kv; break;
    case 34: fx->out = NULL; break;
    case 35: fx->out->shape[2] = 7; break;
    case 36: fx->out->dtype = NSA_DTYPE_I32; break;
    case 37: fx->smax->dtype = NSA_DTYPE_F16; break;
    case 38: fx->ssum->shape[2] = 4; break;
    case 39: fx->ssum->data = fx->smax->data; break;
    case 40: fx->out->data = fx->q->data; break;
    case 41: fx->out->stride[0] = 0; break;
    case 42: fx->sc.topkbuf[(4 * 2 + 1) * 2 + 0] = -1; break; /* t=4, n2=1, c=0 */
    case 43: fx->sc.topkbuf[(6 * 2 + 0) * 2 + 1] = 3; break;  /* batch 1 has blocks 0..2 */
    case 44: p->actual_seq_qlen = short_q; break;             /* T1 = 8 but the last is 7 */
    case 45: fx->use_wrapper = 1; fx->mask->ndim = 3; break;
    case 46: fx->use_wrapper = 1; fx->mask->dtype = NSA_DTYPE_F32; break;
    case 47: fx->q->data = NULL; break;
    case 48: fx->topk->stride[2] = (int64_t)-1; break;
    case 49: p->head_num = -1; break;
    default: fail_msg("no error case %d", i);
    }
    return p;
}

static const error_case error_cases[] = {
    {"params NULL", NSA_ERR_NULL_POINTER, "params must not be NULL"},
    {"query NULL", NSA_ERR_NULL_POINTER, "query must not be NULL"},
    {"query rank", NSA_ERR_INVALID_ARGUMENT, "query must have 3 dimensions, got 2"},
    {"query dtype", NSA_ERR_INVALID_ARGUMENT, "query dtype must be one of"},
    {"key dtype", NSA_ERR_INVALID_ARGUMENT, "key dtype must equal query dtype (f32), got f16"},
    {"value dtype", NSA_ERR_INVALID_ARGUMENT, "value dtype must equal query dtype (f32), got bf16"},
    {"topk dtype", NSA_ERR_INVALID_ARGUMENT, "topk_indices dtype must be one of {i32}, got i64"},
    {"block size 20", NSA_ERR_INVALID_ARGUMENT,
     "select_block_size must be a multiple of 16, got 20"},
    {"block size 144", NSA_ERR_INVALID_ARGUMENT, "select_block_size must be in [16, 128], got 144"},
    {"block count 0", NSA_ERR_INVALID_ARGUMENT, "select_block_count must be in [1, 32], got 0"},
    {"block count 33", NSA_ERR_INVALID_ARGUMENT, "select_block_count must be in [1, 32], got 33"},
    {"sparse_mode 1", NSA_ERR_INVALID_ARGUMENT, "sparse_mode must be 0 (no mask) or 2 (top-left causal), got 1"},
    {"validation 7", NSA_ERR_INVALID_ARGUMENT, "validation must be NSA_VALIDATE_DEFAULT or NSA_VALIDATE_STRICT, got 7"},
    {"scale NaN", NSA_ERR_INVALID_ARGUMENT, "scale_value must be a finite float32 value"},
    {"scale 1e39", NSA_ERR_INVALID_ARGUMENT, "scale_value must be a finite float32 value, got 1e+39"},
    {"N2 0", NSA_ERR_INVALID_ARGUMENT, "key.shape[1] (N2) must be >= 1, got 0"},
    {"D 0", NSA_ERR_INVALID_ARGUMENT, "query.shape[2] (D) must be in [1, 65536], got 0"},
    {"Dv 0", NSA_ERR_INVALID_ARGUMENT, "value.shape[2] (Dv) must be in [1, 65536], got 0"},
    {"head_num 3", NSA_ERR_INVALID_ARGUMENT, "head_num must equal query.shape[1] (4) (or be 0), got 3"},
    {"N1 % N2", NSA_ERR_INVALID_ARGUMENT, "must be a positive multiple of key.shape[1] (N2 = 2)"},
    {"key D", NSA_ERR_INVALID_ARGUMENT, "key.shape[2] must be query.shape[2] (D) (16), got 12"},
    {"value T2", NSA_ERR_INVALID_ARGUMENT, "value.shape[0] must be key.shape[0] (T2) (112), got 100"},
    {"value N2", NSA_ERR_INVALID_ARGUMENT, "value.shape[1] must be key.shape[1] (N2) (2), got 1"},
    {"topk T1", NSA_ERR_INVALID_ARGUMENT, "topk_indices.shape[0] must be query.shape[0] (T1) (8), got 7"},
    {"topk N2", NSA_ERR_INVALID_ARGUMENT, "topk_indices.shape[1] must be key.shape[1] (N2) (2), got 1"},
    {"topk k", NSA_ERR_INVALID_ARGUMENT, "topk_indices.shape[2] must be select_block_count (3), got 2"},
    {"key row stride", NSA_ERR_INVALID_ARGUMENT, "key.stride[0] must be >= 0, got -1"},
    {"qlen NULL", NSA_ERR_NULL_POINTER, "actual_seq_qlen must not be NULL when actual_seq_kvlen is given"},
    {"kvlen NULL", NSA_ERR_NULL_POINTER, "actual_seq_kvlen must not be NULL when actual_seq_qlen is given"},
    {"qlen count 0", NSA_ERR_INVALID_ARGUMENT, "actual_seq_qlen_count must be >= 1, got 0"},
    {"counts differ", NSA_ERR_INVALID_ARGUMENT, "actual_seq_kvlen_count must equal actual_seq_qlen_count (2), got 1"},
    {"decreasing qlen", NSA_ERR_INVALID_ARGUMENT, "actual_seq_qlen must be non-decreasing prefix sums"},
    {"negative qlen", NSA_ERR_INVALID_ARGUMENT, "actual_seq_qlen[0] = -1 < 0"},
    {"kvlen total", NSA_ERR_INVALID_ARGUMENT, "actual_seq_kvlen[1] (the last) must equal key.shape[0] (T2) (112), got 120"},
    {"out NULL", NSA_ERR_NULL_POINTER, "attention_out must not be NULL"},
    {"out Dv", NSA_ERR_INVALID_ARGUMENT, "attention_out.shape[2] must be value.shape[2] (Dv) (8), got 7"},
    {"out dtype", NSA_ERR_INVALID_ARGUMENT, "attention_out dtype must be one of"},
    {"max dtype", NSA_ERR_INVALID_ARGUMENT, "softmax_max dtype must be one of {f32}, got f16"},
    {"sum shape", NSA_ERR_INVALID_ARGUMENT, "softmax_sum.shape[2] must be 8 (8), got 4"},
    {"max and sum overlap", NSA_ERR_INVALID_ARGUMENT, "softmax_max must not overlap softmax_sum in memory"},
    {"out overlaps query", NSA_ERR_INVALID_ARGUMENT, "attention_out must not overlap query in memory"},
    {"out self overlap", NSA_ERR_INVALID_ARGUMENT, "attention_out must not overlap itself"},
    {"negative index", NSA_ERR_INVALID_ARGUMENT, "topk_indices[4, 1, 0] must be >= 0, got -1"},
    {"index past batch", NSA_ERR_INVALID_ARGUMENT,
     "topk_indices[6, 0, 1] = 3 is out of range: batch 1 has 48 keys, so whole blocks of "
     "select_block_size 16 are 0..2"},
    {"qlen last", NSA_ERR_INVALID_ARGUMENT, "actual_seq_qlen[1] (the last) must equal query.shape[0] (T1) (8), got 7"},
    {"mask rank", NSA_ERR_INVALID_ARGUMENT, "atten_mask must have 2 dimensions, got 3"},
    {"mask dtype", NSA_ERR_INVALID_ARGUMENT, "atten_mask dtype must be one of"},
    {"query data NULL", NSA_ERR_NULL_POINTER, "query.data must not be NULL"},
    {"topk negative stride", NSA_ERR_INVALID_ARGUMENT, "topk_indices.stride[2] must be >= 0, got -1"},
    {"head_num -1", NSA_ERR_INVALID_ARGUMENT, "head_num must equal query.shape[1] (4) (or be 0), got -1"},
    {"block size 0", NSA_ERR_INVALID_ARGUMENT, "select_block_size must be in [16, 128], got 0"},
    {"N1 too large", NSA_ERR_INVALID_ARGUMENT, "query.shape[1] (N1) must be <= 65536, got 65538"},
};

static void validation_errors(void **state)
{
    size_t i;
    (void)state;
    for (i = 0; i < sizeof error_cases / sizeof error_cases[0]; i++) {
        fixture fx;
        nsa_select_attention_params *p;
        nsa_status st;
        const error_case *ec = &error_cases[i];
        fx_init(&fx);
        assert_int_equal(fx_run(&fx, &fx.sc.params), NSA_SUCCESS);
        memset(fx.sc.obuf, 0x5a, 16);
        p = fx_break(&fx, (int)i);
        st = fx_run(&fx, p);
        if (st != ec->status || !strstr(nsa_last_error(), ec->message))
            fail_msg("error case '%s': got %s \"%s\", expected %s containing \"%s\"", ec->name,
                     nsa_status_string(st), nsa_last_error(), nsa_status_string(ec->status),
                     ec->message);
        if (i >= 42 && i <= 43) { /* topk errors are found before anything is written */
            const unsigned char *o = (const unsigned char *)fx.sc.obuf;
            assert_true(o[0] == 0x5a && o[15] == 0x5a);
        }
        free_case(&fx.sc);
    }
}

/* The strict level: the MindSpore shape passes; each documented hardware limit is
 * NSA_ERR_UNSUPPORTED, while the default level accepts the same call. */
static void strict_validation(void **state)
{
    int i;
    (void)state;
    for (i = 0; i <= 11; i++) {
        sel_case sc;
        test_rng rng;
        int64_t len_q[2] = {2, 3}, len_kv[2] = {1024, 1088};
        int64_t n1 = 4, n2 = 1, d = 192, dv = 128, bs = 64, bc = 16;
        const char *expect = NULL;
        nsa_status st;
        memset(&sc, 0, sizeof sc);
        test_rng_seed(&rng, 100 + (uint64_t)i);
        sc.in_dt = sc.out_dt = NSA_DTYPE_F16;
        switch (i) {
        case 0: break;
        case 1: sc.in_dt = sc.out_dt = NSA_DTYPE_F32; expect = "query dtype must be f16 or bf16 under strict validation, got f32"; break;
        case 2: sc.out_dt = NSA_DTYPE_F32; expect = "attention_out dtype must equal query dtype (f16) under strict validation, got f32"; break;
        case 3: bs = 32; expect = "select_block_size must be 64 under strict validation, got 32"; break;
        case 4: bc = 8; expect = "select_block_count must be 16 under strict validation, got 8"; break;
        case 5: d = 128; expect = "query.shape[2] (D) must be 192 under strict validation, got 128"; break;
        case 6: dv = 64; expect = "value.shape[2] (Dv) must be 128 under strict validation, got 64"; break;
        case 7: n1 = 33; expect = "head_num / N2 (G) must be <= 32 under strict validation, got 33"; break;
        case 8: n1 = 130; n2 = 5; expect = "head_num must be <= 128 under strict validation, got 130"; break;
        case 9: len_kv[1] = 1100; expect = "batch 1 key length (1100) must be a multiple of select_block_size (64) under strict validation"; break;
        case 10: len_kv[0] = 960; expect = "batch 0 key length (960) must be >= select_block_size * select_block_count (1024) under strict validation"; break;
        case 11: len_q[0] = 0; len_kv[0] = 0; expect = "batch 0 key length (0) must be >= select_block_size * select_block_count (1024) under strict validation"; break;
        }
        set_shapes(&sc, n1, n2, d, dv, bs, bc, len_q, len_kv, 2, 0.07, 1);
        fill_random(&sc, &rng, 0.0);
        finish_inputs(&sc);
        sc.params.validation = NSA_VALIDATE_STRICT;
        st = run_op(&sc, NULL);
        if (!expect) {
            assert_int_equal(st, NSA_SUCCESS);
        } else if (st != NSA_ERR_UNSUPPORTED || !strstr(nsa_last_error(), expect)) {
            fail_msg("strict case %d: got %s \"%s\", expected \"%s\"", i, nsa_status_string(st),
                     nsa_last_error(), expect);
        }
        sc.params.validation = NSA_VALIDATE_DEFAULT;
        assert_int_equal(run_op(&sc, NULL), NSA_SUCCESS);
        free_case(&sc);
    }
}

/* Strict limits on batch count and sequence length, with broadcast (stride 0) inputs so the
 * shapes cost no memory: checked before any data is read. */
static void strict_limits_large(void **state)
{
    static int64_t cum_q[1025], cum_kv[1025];
    const int64_t qshape[3] = {1025, 1, 192}, qstride[3] = {0, 0, 1};
    const int64_t kshape[3] = {1025 * 1024, 1, 192}, kstride[3] = {0, 0, 1};
    const int64_t vshape[3] = {1025 * 1024, 1, 128}, vstride[3] = {0, 0, 1};
    const int64_t tshape[3] = {1025, 1, 16}, tstride[3] = {0, 0, 1};
    const int64_t oshape[3] = {1025, 1, 128};
    uint16_t *qk = (uint16_t *)calloc(192, 2);
    int32_t topk[16] = {0};
    uint16_t *out = (uint16_t *)calloc(1025 * 128, 2);
    nsa_tensor q, k, v, t, o;
    nsa_select_attention_params p = nsa_select_attention_params_default();
    int64_t b;
    (void)state;
    for (b = 0; b < 1025; b++) {
        cum_q[b] = b + 1;
        cum_kv[b] = (b + 1) * 1024;
    }
    q = nsa_tensor_strided(qk, NSA_DTYPE_F16, 3, qshape, qstride);
    k = nsa_tensor_strided(qk, NSA_DTYPE_F16, 3, kshape, kstride);
    v = nsa_tensor_strided(qk, NSA_DTYPE_F16, 3, vshape, vstride);
    t = nsa_tensor_strided(topk, NSA_DTYPE_I32, 3, tshape, tstride);
    o = nsa_tensor_contiguous(out, NSA_DTYPE_F16, 3, oshape);
    p.actual_seq_qlen = cum_q;
    p.actual_seq_kvlen = cum_kv;
    p.actual_seq_qlen_count = p.actual_seq_kvlen_count = 1025;
    p.validation = NSA_VALIDATE_STRICT;
    assert_int_equal(nsa_select_attention(NULL, &q, &k, &v, &t, &p, &o, NULL, NULL),
                     NSA_ERR_UNSUPPORTED);
    assert_non_null(strstr(nsa_last_error(), "the batch count (actual_seq_qlen_count) must be <= 1024 under strict validation, got 1025"));
    /* one batch of 131136 keys: longer than 128K */
    cum_kv[0] = 131136;
    {
        const int64_t k1[3] = {131136, 1, 192}, v1[3] = {131136, 1, 128}, t1[3] = {1, 1, 16},
                      q1[3] = {1, 1, 192}, o1[3] = {1, 1, 128};
        k = nsa_tensor_strided(qk, NSA_DTYPE_F16, 3, k1, kstride);
        v = nsa_tensor_strided(qk, NSA_DTYPE_F16, 3, v1, vstride);
        t = nsa_tensor_strided(topk, NSA_DTYPE_I32, 3, t1, tstride);
        q = nsa_tensor_strided(qk, NSA_DTYPE_F16, 3, q1, qstride);
        o = nsa_tensor_contiguous(out, NSA_DTYPE_F16, 3, o1);
        p.actual_seq_qlen_count = p.actual_seq_kvlen_count = 1;
        assert_int_equal(nsa_select_attention(NULL, &q, &k, &v, &t, &p, &o, NULL, NULL),
                         NSA_ERR_UNSUPPORTED);
        assert_non_null(strstr(nsa_last_error(), "batch 0 key length must be <= 131072 under strict validation, got 131136"));
        p.validation = NSA_VALIDATE_DEFAULT;
        assert_int_equal(nsa_select_attention(NULL, &q, &k, &v, &t, &p, &o, NULL, NULL),
                         NSA_SUCCESS);
    }
    free(qk);
    free(out);
}

/* The workspace query validates like the op; a failed query leaves *size as it was. */
static void workspace_size_query(void **state)
{
    fixture fx;
    size_t size = 1;
    (void)state;
    fx_init(&fx);
    assert_int_equal(nsa_select_attention_workspace_size(NULL, fx.q, fx.k, fx.v, fx.topk,
                                                         &fx.sc.params, NULL),
                     NSA_ERR_NULL_POINTER);
    fx.sc.params.select_block_size = 24;
    assert_int_equal(nsa_select_attention_workspace_size(NULL, fx.q, fx.k, fx.v, fx.topk,
                                                         &fx.sc.params, &size),
                     NSA_ERR_INVALID_ARGUMENT);
    assert_int_equal(size, 1);
    assert_non_null(strstr(nsa_last_error(), "select_block_size"));
    free_case(&fx.sc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(diagonal_block_causal_cut),
        cmocka_unit_test(duplicates_counted_twice),
        cmocka_unit_test(prefix_sum_batches),
        cmocka_unit_test(fully_masked_rows),
        cmocka_unit_test(mask_wrapper),
        cmocka_unit_test(optional_outputs_and_empty),
        cmocka_unit_test(randomized_against_reference),
        cmocka_unit_test(docs_worked_example),
        cmocka_unit_test(thread_counts_bit_identical),
        cmocka_unit_test(concurrent_callers),
        cmocka_unit_test(allocation_failures),
        cmocka_unit_test(caller_workspace),
        cmocka_unit_test(validation_errors),
        cmocka_unit_test(strict_validation),
        cmocka_unit_test(strict_limits_large),
        cmocka_unit_test(workspace_size_query),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
