/* SPDX-License-Identifier: Apache-2.0 */
/* nsa_compress_attention: randomised comparisons with a float64 reference written here (masks,
 * fully masked rows, forced blocks, GQA, D != Dv, strided views, f16 / bf16 / f32), the worked
 * examples of nsa-research.md section 9, top-k ties, reliability, and every validation error. */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blas/blas.h"
#include "test_status.h"
#include "reliability.h"
#include "test_util.h"

/* ---- a case and its float64 reference ---------------------------------------------------- */

typedef struct acase {
    int64_t B, qlen[6], kvlen[6], sellen[6];
    int64_t T1, T2, N1, N2, G, D, Dv, l, d, ls, k;
    int64_t maxS1, maxS2, maxSel;
    double scale;
    nsa_dtype dt, out_dt;
    int use_amask, use_tmask, q_strided;
    float *q, *kf, *vf;  /* fp32 values, exact in dt; contiguous [T][N][D] */
    uint8_t *am, *tm;
    void *qin, *kin, *vin;
    nsa_tensor query, key, value, amask, tmask;
} acase;

static int64_t segl(const int64_t *cum, int64_t b)
{
    return cum[b] - (b ? cum[b - 1] : 0);
}

static nsa_compress_attention_params case_params(const acase *c)
{
    nsa_compress_attention_params p = nsa_compress_attention_params_default();
    p.scale_value = c->scale;
    p.head_num = c->N1;
    p.compress_block_size = c->l;
    p.compress_stride = c->d;
    p.select_block_size = c->ls;
    p.select_block_count = c->k;
    p.actual_seq_qlen = c->qlen;
    p.actual_seq_qlen_count = c->B;
    p.actual_cmp_seq_kvlen = c->kvlen;
    p.actual_cmp_seq_kvlen_count = c->B;
    p.actual_sel_seq_kvlen = c->sellen;
    p.actual_sel_seq_kvlen_count = c->B;
    return p;
}

static float *rand_vals(test_rng *rng, int64_t n, float lo, float hi, nsa_dtype dt)
{
    float *x = malloc((size_t)(n + 1) * sizeof(float));
    int64_t i;
    for (i = 0; i < n; i++)
        x[i] = test_rng_uniform(rng, lo, hi);
    test_round_to_dtype(x, n, dt);
    return x;
}

/* Fill the derived fields and the tensors of a case whose sizes are set. */
static void build_case(acase *c, test_rng *rng)
{
    const int64_t m = c->ls / c->d;
    int64_t b, i, shape[3];
    c->T1 = c->qlen[c->B - 1];
    c->T2 = c->kvlen[c->B - 1];
    c->G = c->N1 / c->N2;
    c->maxS1 = c->maxS2 = 0;
    for (b = 0; b < c->B; b++) {
        if (segl(c->qlen, b) > c->maxS1)
            c->maxS1 = segl(c->qlen, b);
        if (segl(c->kvlen, b) > c->maxS2)
            c->maxS2 = segl(c->kvlen, b);
        c->sellen[b] = (b ? c->sellen[b - 1] : 0) + (segl(c->kvlen, b) + m - 1) / m;
    }
    c->maxSel = (c->maxS2 + m - 1) / m;
    c->q = rand_vals(rng, c->T1 * c->N1 * c->D, -1, 1, c->dt);
    c->kf = rand_vals(rng, c->T2 * c->N2 * c->D, -1, 1, c->dt);
    c->vf = rand_vals(rng, c->T2 * c->N2 * c->Dv, -1, 1, c->dt);
    c->am = calloc((size_t)(c->maxS1 * c->maxS2 + 1), 1);
    c->tm = calloc((size_t)(c->maxS1 * c->maxSel + 1), 1);
    for (i = 0; i < c->maxS1 * c->maxS2; i++) {
        int64_t s = i / c->maxS2, j = i % c->maxS2;
        /* causal-like staircase, plus random holes, plus every 5th row fully masked */
        c->am[i] = (uint8_t)(j > 2 * s + 3 || test_rng_int(rng, 0, 9) == 0 || s % 5 == 4);
    }
    for (i = 0; i < c->maxS1 * c->maxSel; i++)
        c->tm[i] = (uint8_t)(test_rng_int(rng, 0, 11) == 0);
    if (c->q_strided) {
        /* query with channel stride 2 and padded rows */
        const int64_t cs = 2, hs = 2 * c->D, rs = hs * c->N1 + 5;
        float *tmp = calloc((size_t)(c->T1 * rs + 1), sizeof(float));
        int64_t t, h, e, stride[3];
        for (t = 0; t < c->T1; t++)
            for (h = 0; h < c->N1; h++)
                for (e = 0; e < c->D; e++)
                    tmp[t * rs + h * hs + e * cs] = c->q[(t * c->N1 + h) * c->D + e];
        c->qin = test_to_dtype(tmp, c->T1 * rs + 1, c->dt);
        free(tmp);
        shape[0] = c->T1, shape[1] = c->N1, shape[2] = c->D;
        stride[0] = rs, stride[1] = hs, stride[2] = cs;
        c->query = nsa_tensor_strided(c->qin, c->dt, 3, shape, stride);
    } else {
        c->qin = test_to_dtype(c->q, c->T1 * c->N1 * c->D, c->dt);
        shape[0] = c->T1, shape[1] = c->N1, shape[2] = c->D;
        c->query = nsa_tensor_contiguous(c->qin, c->dt, 3, shape);
    }
    c->kin = test_to_dtype(c->kf, c->T2 * c->N2 * c->D, c->dt);
    c->vin = test_to_dtype(c->vf, c->T2 * c->N2 * c->Dv, c->dt);
    shape[0] = c->T2, shape[1] = c->N2, shape[2] = c->D;
    c->key = nsa_tensor_contiguous(c->kin, c->dt, 3, shape);
    shape[2] = c->Dv;
    c->value = nsa_tensor_contiguous(c->vin, c->dt, 3, shape);
    shape[0] = c->maxS1, shape[1] = c->maxS2;
    c->amask = nsa_tensor_contiguous(c->am, NSA_DTYPE_U8, 2, shape);
    shape[1] = c->maxSel;
    c->tmask = nsa_tensor_contiguous(c->tm, NSA_DTYPE_BOOL, 2, shape);
}

static void free_case(acase *c)
{
    free(c->q);
    free(c->kf);
    free(c->vf);
    free(c->am);
    free(c->tm);
    free(c->qin);
    free(c->kin);
    free(c->vin);
}

/* Output buffers of one run, in one allocation (for the reliability harness). */
typedef struct outs {
    void *out;
    int32_t *topk;
    float *smax, *ssum;
} outs;

static size_t out_bytes(const acase *c, size_t *o_topk, size_t *o_smax, size_t *o_ssum)
{
    size_t a = (size_t)(c->T1 * c->N1 * c->Dv) * nsa_dtype_size(c->out_dt);
    a = (a + 7) & ~(size_t)7;
    *o_topk = a;
    a += (size_t)(c->T1 * c->N2 * c->k) * 4;
    *o_smax = a;
    a += (size_t)(c->T1 * c->N1 * 8) * 4;
    *o_ssum = a;
    return a + (size_t)(c->T1 * c->N1 * 8) * 4;
}

static nsa_status run_case(void *user, nsa_context *ctx, void *buf, size_t size)
{
    const acase *c = (const acase *)user;
    nsa_compress_attention_params p = case_params(c);
    size_t ot, om, os;
    int64_t shape[3];
    nsa_tensor out, topk, smax, ssum;
    (void)size;
    out_bytes(c, &ot, &om, &os);
    shape[0] = c->T1, shape[1] = c->N1, shape[2] = c->Dv;
    out = nsa_tensor_contiguous(buf, c->out_dt, 3, shape);
    shape[1] = c->N2, shape[2] = c->k;
    topk = nsa_tensor_contiguous((char *)buf + ot, NSA_DTYPE_I32, 3, shape);
    shape[1] = c->N1, shape[2] = 8;
    smax = nsa_tensor_contiguous((char *)buf + om, NSA_DTYPE_F32, 3, shape);
    ssum = nsa_tensor_contiguous((char *)buf + os, NSA_DTYPE_F32, 3, shape);
    return nsa_compress_attention(ctx, &c->query, &c->key, &c->value,
                                  c->use_amask ? &c->amask : NULL,
                                  c->use_tmask ? &c->tmask : NULL, &p, &out, &topk, &smax, &ssum);
}

/* Check every output of a run against a float64 evaluation of the semantics. */
static void check_case(const acase *c, const void *buf)
{
    const int64_t m = c->ls / c->d, n = c->l / c->d, inner = m + n - 1;
    const double scale = (double)(float)c->scale; /* the op uses the scale as float32 */
    size_t ot, om, os;
    float *got;
    const int32_t *topk;
    const float *smax, *ssum;
    double *x = malloc((size_t)c->maxS2 * sizeof(double)), *imp, *sorted;
    double w[16];
    int64_t b, n2, s, g, j, e, i, J;
    out_bytes(c, &ot, &om, &os);
    got = test_to_f32(buf, c->T1 * c->N1 * c->Dv, c->out_dt);
    topk = (const int32_t *)(const void *)((const char *)buf + ot);
    smax = (const float *)(const void *)((const char *)buf + om);
    ssum = (const float *)(const void *)((const char *)buf + os);
    imp = malloc((size_t)(c->maxSel + 1) * sizeof(double));
    sorted = malloc((size_t)(c->maxSel + 1) * sizeof(double));
    for (i = 0; i < inner; i++) /* w_i = #{(a, c): a < m, c < n, a + c = i} */
        w[i] = 0;
    for (i = 0; i < m; i++)
        for (j = 0; j < n; j++)
            w[i + j] += 1;

    for (b = 0; b < c->B; b++) {
        const int64_t q0 = b ? c->qlen[b - 1] : 0, k0 = b ? c->kvlen[b - 1] : 0;
        const int64_t S1 = segl(c->qlen, b), S2 = segl(c->kvlen, b), sel = (S2 + m - 1) / m;
        for (n2 = 0; n2 < c->N2; n2++)
            for (s = 0; s < S1; s++) {
                const int64_t t = q0 + s;
                for (J = 0; J < sel; J++)
                    imp[J] = 0;
                for (g = 0; g < c->G; g++) {
                    const int64_t h = n2 * c->G + g;
                    double M = -INFINITY, Z = 0, flat;
                    for (j = 0; j < S2; j++) {
                        double dot = 0;
                        for (e = 0; e < c->D; e++)
                            dot += (double)c->q[(t * c->N1 + h) * c->D + e] *
                                   (double)c->kf[((k0 + j) * c->N2 + n2) * c->D + e];
                        x[j] = dot * scale;
                        if (c->use_amask && c->am[s * c->maxS2 + j])
                            x[j] = -FLT_MAX;
                        if (x[j] > M)
                            M = x[j];
                    }
                    for (j = 0; j < S2; j++)
                        Z += exp(x[j] - M);
                    for (e = 0; e < c->Dv; e++) {
                        double o = 0;
                        for (j = 0; j < S2; j++)
                            o += exp(x[j] - M) / Z *
                                 (double)c->vf[((k0 + j) * c->N2 + n2) * c->Dv + e];
                        {
                            float gv = got[(t * c->N1 + h) * c->Dv + e];
                            if (c->out_dt == NSA_DTYPE_F32) {
                                /* fp32 exp / sums over <= a few hundred keys of |v| <= 1 */
                                if (fabs(gv - o) > 2e-6 + 2e-5 * fabs(o))
                                    fail_msg("out[%lld,%lld,%lld]: got %.9g want %.9g",
                                             (long long)t, (long long)h, (long long)e, gv, o);
                            } else if (test_ulp_diff(gv, o, c->out_dt) > 2.0) {
                                /* 2 ulps of the dtype, as for the goldens */
                                fail_msg("out[%lld,%lld,%lld]: got %.9g want %.9g (%s)",
                                         (long long)t, (long long)h, (long long)e, gv, o,
                                         nsa_dtype_name(c->out_dt));
                            }
                        }
                    }
                    /* statistics: per batch [N1, S1_b, 8] */
                    flat = (double)(q0 * c->N1 + h * S1 + s);
                    for (i = 0; i < 8; i++) {
                        float gm = smax[(int64_t)flat * 8 + i], gs = ssum[(int64_t)flat * 8 + i];
                        /* fp32 statistics: 1e-5 relative (atol 1e-6 for maxima near 0) */
                        if (fabs(gm - M) > 1e-6 + 1e-5 * fabs(M) || fabs(gs - Z) > 1e-5 * Z)
                            fail_msg("stats b%lld h%lld s%lld: got max %.9g sum %.9g "
                                     "want %.9g %.9g",
                                     (long long)b, (long long)h, (long long)s, gm, gs, M, Z);
                    }
                    /* importance with the +1 shift */
                    for (J = 0; J < sel; J++)
                        for (i = 0; i < inner; i++) {
                            int64_t pidx = (J + 1) * m - i;
                            if (pidx >= 0 && pidx < S2)
                                imp[J] += w[i] * exp(x[pidx] - M) / Z;
                        }
                }
                if (c->use_tmask)
                    for (J = 0; J < sel; J++)
                        if (c->tm[s * c->maxSel + J])
                            imp[J] = FLT_MAX;
                /* sorted copy, descending */
                memcpy(sorted, imp, (size_t)sel * sizeof(double));
                for (i = 1; i < sel; i++)
                    for (j = i; j > 0 && sorted[j] > sorted[j - 1]; j--) {
                        double tmp = sorted[j];
                        sorted[j] = sorted[j - 1];
                        sorted[j - 1] = tmp;
                    }
                /* The chosen blocks must be distinct, in range, and each rank's score equal to
                 * the reference's score of that rank up to fp32 rounding (swaps only among
                 * near-ties); ties in the reference itself must come in ascending order. */
                for (i = 0; i < c->k; i++) {
                    int32_t idx = topk[(t * c->N2 + n2) * c->k + i];
                    double want = sorted[i];
                    if (idx < 0 || idx >= sel)
                        fail_msg("topk[%lld,%lld,%lld] = %d out of [0, %lld)", (long long)t,
                                 (long long)n2, (long long)i, idx, (long long)sel);
                    for (j = 0; j < i; j++)
                        assert_int_not_equal(idx, topk[(t * c->N2 + n2) * c->k + j]);
                    if (fabs(imp[idx] - want) > 1e-5 * fabs(want) + 1e-7)
                        fail_msg("topk[%lld,%lld,%lld] = %d has score %.9g, rank %lld of the "
                                 "reference has %.9g", (long long)t, (long long)n2, (long long)i,
                                 idx, imp[idx], (long long)i, want);
                    if (i > 0 && imp[idx] == imp[topk[(t * c->N2 + n2) * c->k + i - 1]])
                        assert_true(idx > topk[(t * c->N2 + n2) * c->k + i - 1]);
                }
            }
    }
    free(got);
    free(x);
    free(imp);
    free(sorted);
}

static void run_and_check(const acase *c)
{
    size_t a, b2, c2, bytes = out_bytes(c, &a, &b2, &c2);
    void *buf = calloc(bytes + 8, 1);
    if (run_case((void *)c, NULL, buf, bytes) != NSA_SUCCESS)
        fail_msg("%s", nsa_last_error());
    check_case(c, buf);
    free(buf);
}

/* Random sizes: GQA groups 1..8, D != Dv, several batches, random (l, d, l'), masks. */
static void randomised(void **state)
{
    static const int64_t lds[5][3] = {{32, 16, 64}, {16, 16, 16}, {64, 16, 64}, {32, 32, 64},
                                      {48, 16, 96}};
    const nsa_dtype dts[3] = {NSA_DTYPE_F32, NSA_DTYPE_F16, NSA_DTYPE_BF16};
    test_rng rng;
    int it;
    (void)state;
    test_rng_seed(&rng, 2024);
    for (it = 0; it < 15; it++) {
        acase c;
        int64_t b, tq = 0, tk = 0, minsel = 1 << 30, m;
        memset(&c, 0, sizeof c);
        c.l = lds[it % 5][0];
        c.d = lds[it % 5][1];
        c.ls = lds[it % 5][2];
        m = c.ls / c.d;
        c.dt = dts[it % 3];
        c.out_dt = it % 4 == 1 ? NSA_DTYPE_F32 : c.dt;
        c.N2 = test_rng_int(&rng, 1, 2);
        c.N1 = c.N2 << test_rng_int(&rng, 0, 3);
        c.D = test_rng_int(&rng, 4, 40);
        c.Dv = test_rng_int(&rng, 1, c.D);
        c.B = test_rng_int(&rng, 1, 3);
        c.scale = test_rng_uniform(&rng, 0.05f, 0.5f);
        c.use_amask = it % 3 != 0;
        c.use_tmask = it % 2 == 0;
        c.q_strided = it % 4 == 2;
        for (b = 0; b < c.B; b++) {
            int64_t s2 = test_rng_int(&rng, 1, 150);
            tq += test_rng_int(&rng, 0, 40);
            tk += s2;
            c.qlen[b] = tq;
            c.kvlen[b] = tk;
            if ((s2 + m - 1) / m < minsel)
                minsel = (s2 + m - 1) / m;
        }
        c.k = test_rng_int(&rng, 1, minsel < 32 ? minsel : 32);
        build_case(&c, &rng);
        nsa_blas_force_builtin(it % 5 == 3); /* both GEMM backends */
        run_and_check(&c);
        nsa_blas_force_builtin(0);
        free_case(&c);
    }
}

/* A larger group (G = 16: tiles of 8 positions x 16 heads), several kernel chunks of keys
 * (S2 up to 300), the vendor's default block sizes. */
static void large_group_many_chunks(void **state)
{
    test_rng rng;
    acase c;
    (void)state;
    memset(&c, 0, sizeof c);
    test_rng_seed(&rng, 11);
    c.B = 2;
    c.qlen[0] = 37, c.qlen[1] = 60;
    c.kvlen[0] = 300, c.kvlen[1] = 520;
    c.N1 = 32, c.N2 = 2, c.D = 48, c.Dv = 32, c.l = 32, c.d = 16, c.ls = 64, c.k = 16;
    c.scale = 0.3;
    c.dt = c.out_dt = NSA_DTYPE_BF16;
    c.use_amask = c.use_tmask = 1;
    build_case(&c, &rng);
    run_and_check(&c);
    free_case(&c);
}

/* Example 5 of section 9: B = 2, S1 = [3, 2], N1 = 2: (b = 1, h = 1, s = 0) is at flat row
 * 3*2 + 1*2 + 0 = 8, i.e. element 64. Checked against the reference row max of t = 3, h = 1. */
static void softmax_layout_example(void **state)
{
    test_rng rng;
    acase c;
    size_t ot, om, os, bytes;
    float *buf, M = -FLT_MAX;
    int64_t j, e;
    (void)state;
    memset(&c, 0, sizeof c);
    test_rng_seed(&rng, 5);
    c.B = 2;
    c.qlen[0] = 3, c.qlen[1] = 5;
    c.kvlen[0] = 10, c.kvlen[1] = 17;
    c.N1 = 2, c.N2 = 1, c.D = 8, c.Dv = 8, c.l = 32, c.d = 16, c.ls = 64, c.k = 2;
    c.scale = 0.25;
    c.dt = c.out_dt = NSA_DTYPE_F32;
    build_case(&c, &rng);
    bytes = out_bytes(&c, &ot, &om, &os);
    buf = calloc(bytes, 1);
    assert_int_equal(run_case(&c, NULL, buf, bytes), NSA_SUCCESS);
    for (j = 0; j < 7; j++) { /* t = 3 (b = 1, s = 0), h = 1, batch-1 keys 10..16 */
        double dot = 0;
        for (e = 0; e < 8; e++)
            dot += (double)c.q[(3 * 2 + 1) * 8 + e] * c.kf[(10 + j) * 8 + e];
        if ((float)(dot * 0.25) > M)
            M = (float)(dot * 0.25);
    }
    assert_true(fabs(((float *)(void *)((char *)buf + om))[64] - M) <= 1e-6 + 1e-5 * fabs(M));
    assert_true(((float *)(void *)((char *)buf + om))[64 + 7] ==
                ((float *)(void *)((char *)buf + om))[64]);
    check_case(&c, buf);
    free(buf);
    free_case(&c);
}

/* Example 3 of section 9 and the +1 shift: (l, d, l') = (32, 16, 64), S2 = 63 -> 16 blocks,
 * w = [1, 2, 2, 2, 1]. With all probability on one compressed key j*, block J scores
 * w_i for (J+1)*4 - i = j*: j* = 61 -> only block 15 (i = 3); j* = 60 -> blocks 14 (i = 0)
 * and 15 (i = 4) tie at weight 1, so 14 comes first. */
static void importance_shift_example(void **state)
{
    const int64_t jstars[2] = {61, 60};
    const int32_t first[2][2] = {{15, -1}, {14, 15}};
    int it;
    (void)state;
    for (it = 0; it < 2; it++) {
        float q[16], k[63 * 16], v[63 * 16], out[16], smax[8], ssum[8];
        int32_t topk[16];
        int64_t qlen = 1, kvlen = 63, shape[3], j;
        nsa_compress_attention_params p = nsa_compress_attention_params_default();
        nsa_tensor tq, tk, tv, to, tt, tmx, tsm;
        memset(q, 0, sizeof q);
        memset(k, 0, sizeof k);
        for (j = 0; j < 63 * 16; j++)
            v[j] = 1.0f;
        q[0] = 100.0f;
        k[jstars[it] * 16] = 1.0f; /* score 100 for j*, 0 elsewhere */
        p.head_num = 1;
        p.actual_seq_qlen = &qlen;
        p.actual_seq_qlen_count = 1;
        p.actual_cmp_seq_kvlen = &kvlen;
        p.actual_cmp_seq_kvlen_count = 1;
        shape[0] = 1, shape[1] = 1, shape[2] = 16;
        tq = nsa_tensor_contiguous(q, NSA_DTYPE_F32, 3, shape);
        to = nsa_tensor_contiguous(out, NSA_DTYPE_F32, 3, shape);
        tt = nsa_tensor_contiguous(topk, NSA_DTYPE_I32, 3, shape);
        shape[2] = 8;
        tmx = nsa_tensor_contiguous(smax, NSA_DTYPE_F32, 3, shape);
        tsm = nsa_tensor_contiguous(ssum, NSA_DTYPE_F32, 3, shape);
        shape[0] = 63, shape[2] = 16;
        tk = nsa_tensor_contiguous(k, NSA_DTYPE_F32, 3, shape);
        tv = nsa_tensor_contiguous(v, NSA_DTYPE_F32, 3, shape);
        assert_int_equal(nsa_compress_attention(NULL, &tq, &tk, &tv, NULL, NULL, &p, &to, &tt,
                                                &tmx, &tsm), NSA_SUCCESS);
        assert_int_equal(topk[0], first[it][0]);
        if (first[it][1] >= 0)
            assert_int_equal(topk[1], first[it][1]);
        assert_true(smax[0] == 100.0f);
    }
}

/* Fully masked rows: uniform probabilities (output = mean of V, max = -FLT_MAX, sum = S2);
 * all-equal scores rank in ascending block order; forced blocks come first, ascending. */
static void uniform_rows_ties_and_forced_blocks(void **state)
{
    float q[2 * 16], k[40 * 16], v[40 * 4], out[2 * 4], smax[2 * 8], ssum[2 * 8];
    uint8_t am[2 * 40], tm[2 * 10];
    int32_t topk[2 * 4];
    int64_t qlen = 2, kvlen = 40, shape[3], j, e;
    nsa_compress_attention_params p = nsa_compress_attention_params_default();
    nsa_tensor tq, tk, tv, to, tt, tmx, tsm, tam, ttm;
    test_rng rng;
    (void)state;
    test_rng_seed(&rng, 3);
    for (j = 0; j < 32; j++)
        q[j] = test_rng_uniform(&rng, -1, 1);
    for (j = 0; j < 40 * 16; j++)
        k[j] = test_rng_uniform(&rng, -1, 1);
    for (j = 0; j < 40 * 4; j++)
        v[j] = test_rng_uniform(&rng, -1, 1);
    memset(am, 1, sizeof am); /* every key masked for both rows */
    memset(tm, 0, sizeof tm);
    tm[1 * 10 + 7] = tm[1 * 10 + 3] = 1; /* row 1 forces blocks 3 and 7 */
    p.head_num = 1;
    p.select_block_count = 4;
    p.actual_seq_qlen = &qlen;
    p.actual_seq_qlen_count = 1;
    p.actual_cmp_seq_kvlen = &kvlen;
    p.actual_cmp_seq_kvlen_count = 1;
    shape[0] = 2, shape[1] = 1, shape[2] = 16;
    tq = nsa_tensor_contiguous(q, NSA_DTYPE_F32, 3, shape);
    shape[2] = 4;
    to = nsa_tensor_contiguous(out, NSA_DTYPE_F32, 3, shape);
    tt = nsa_tensor_contiguous(topk, NSA_DTYPE_I32, 3, shape);
    shape[2] = 8;
    tmx = nsa_tensor_contiguous(smax, NSA_DTYPE_F32, 3, shape);
    tsm = nsa_tensor_contiguous(ssum, NSA_DTYPE_F32, 3, shape);
    shape[0] = 40, shape[2] = 16;
    tk = nsa_tensor_contiguous(k, NSA_DTYPE_F32, 3, shape);
    shape[2] = 4;
    tv = nsa_tensor_contiguous(v, NSA_DTYPE_F32, 3, shape);
    shape[0] = 2, shape[1] = 40;
    tam = nsa_tensor_contiguous(am, NSA_DTYPE_U8, 2, shape);
    shape[1] = 10;
    ttm = nsa_tensor_contiguous(tm, NSA_DTYPE_U8, 2, shape);
    assert_int_equal(nsa_compress_attention(NULL, &tq, &tk, &tv, &tam, &ttm, &p, &to, &tt, &tmx,
                                            &tsm), NSA_SUCCESS);
    for (e = 0; e < 4; e++) {
        double mean = 0;
        for (j = 0; j < 40; j++)
            mean += v[j * 4 + e];
        mean /= 40;
        /* uniform P = 1/40 in fp32 over 40 values of |v| <= 1 */
        assert_true(fabs(out[e] - mean) < 1e-6 && fabs(out[4 + e] - mean) < 1e-6);
    }
    assert_true(smax[0] == -FLT_MAX && smax[8] == -FLT_MAX);
    assert_true(fabs(ssum[0] - 40.0f) < 1e-5f);
    /* uniform P: blocks 0..8 all score 8/40, block 9 (p = 40 out of range) 7/40 */
    assert_int_equal(topk[0], 0);
    assert_int_equal(topk[1], 1);
    assert_int_equal(topk[2], 2);
    assert_int_equal(topk[3], 3);
    assert_int_equal(topk[4], 3);
    assert_int_equal(topk[5], 7);
    assert_int_equal(topk[6], 0);
    assert_int_equal(topk[7], 1);
}

/* Bit-identical for any thread count; concurrent callers; clean out-of-memory failures. */
static void reliability(void **state)
{
    test_rng rng;
    acase c;
    rel_op op;
    size_t a, b, d;
    (void)state;
    memset(&c, 0, sizeof c);
    test_rng_seed(&rng, 77);
    c.B = 2;
    c.qlen[0] = 70, c.qlen[1] = 150;
    c.kvlen[0] = 90, c.kvlen[1] = 200;
    c.N1 = 8, c.N2 = 2, c.D = 32, c.Dv = 24, c.l = 32, c.d = 16, c.ls = 64, c.k = 8;
    c.scale = 0.2;
    c.dt = c.out_dt = NSA_DTYPE_BF16;
    c.use_amask = c.use_tmask = 1;
    build_case(&c, &rng);
    op.name = "nsa_compress_attention";
    op.run = run_case;
    op.user = &c;
    op.out_size = out_bytes(&c, &a, &b, &d);
    rel_check_thread_counts(&op);
    rel_check_concurrent(&op);
    rel_check_alloc_failures(&op);
    free_case(&c);
}

/* ---- validation ------------------------------------------------------------------------- */

/* A valid f16 call: B = 2, S1 = [3, 5], S2 = [64, 70] (16 and 18 blocks), N1 = 4, N2 = 2. */
typedef struct vcall {
    uint16_t q[8 * 4 * 16], k[134 * 2 * 16], v[134 * 2 * 16], obuf[8 * 4 * 16];
    int32_t topk[8 * 2 * 16];
    float smax[8 * 4 * 8], ssum[8 * 4 * 8];
    uint8_t am[5 * 70], tm[5 * 18];
    int64_t qlen[2], kvlen[2], sellen[2];
    nsa_tensor query, key, value, amask, tmask, out, topkt, smaxt, ssumt;
    nsa_compress_attention_params p;
} vcall;

static void vcall_init(vcall *c)
{
    int64_t shape[3];
    memset(c, 0, sizeof *c);
    c->qlen[0] = 3, c->qlen[1] = 8;
    c->kvlen[0] = 64, c->kvlen[1] = 134;
    c->sellen[0] = 16, c->sellen[1] = 34;
    c->p = nsa_compress_attention_params_default();
    c->p.head_num = 4;
    c->p.scale_value = 0.25;
    c->p.actual_seq_qlen = c->qlen;
    c->p.actual_seq_qlen_count = 2;
    c->p.actual_cmp_seq_kvlen = c->kvlen;
    c->p.actual_cmp_seq_kvlen_count = 2;
    c->p.actual_sel_seq_kvlen = c->sellen;
    c->p.actual_sel_seq_kvlen_count = 2;
    shape[0] = 8, shape[1] = 4, shape[2] = 16;
    c->query = nsa_tensor_contiguous(c->q, NSA_DTYPE_F16, 3, shape);
    c->out = nsa_tensor_contiguous(c->obuf, NSA_DTYPE_F16, 3, shape);
    shape[2] = 8;
    c->smaxt = nsa_tensor_contiguous(c->smax, NSA_DTYPE_F32, 3, shape);
    c->ssumt = nsa_tensor_contiguous(c->ssum, NSA_DTYPE_F32, 3, shape);
    shape[1] = 2, shape[2] = 16;
    c->topkt = nsa_tensor_contiguous(c->topk, NSA_DTYPE_I32, 3, shape);
    shape[0] = 134;
    c->key = nsa_tensor_contiguous(c->k, NSA_DTYPE_F16, 3, shape);
    c->value = nsa_tensor_contiguous(c->v, NSA_DTYPE_F16, 3, shape);
    shape[0] = 5, shape[1] = 70;
    c->amask = nsa_tensor_contiguous(c->am, NSA_DTYPE_BOOL, 2, shape);
    shape[1] = 18;
    c->tmask = nsa_tensor_contiguous(c->tm, NSA_DTYPE_U8, 2, shape);
}

static nsa_status vrun(const vcall *c)
{
    return nsa_compress_attention(NULL, &c->query, &c->key, &c->value, &c->amask, &c->tmask,
                                  &c->p, &c->out, &c->topkt, &c->smaxt, &c->ssumt);
}

#define EXPECT(mutation, status, text)                                                          \
    do {                                                                                       \
        vcall_init(c);                                                                         \
        mutation;                                                                              \
        test_expect_status(vrun(c), status, text);                                              \
    } while (0)

static void validation_errors(void **state)
{
    vcall *c = malloc(sizeof *c);
    (void)state;
    vcall_init(c);
    assert_int_equal(vrun(c), NSA_SUCCESS);
    c->p.validation = NSA_VALIDATE_STRICT;
    assert_int_equal(vrun(c), NSA_SUCCESS);

    test_expect_status(nsa_compress_attention(NULL, NULL, &c->key, &c->value, NULL, NULL, &c->p,
                                        &c->out, &c->topkt, &c->smaxt, &c->ssumt),
                 NSA_ERR_NULL_POINTER, "query must not be NULL");
    test_expect_status(nsa_compress_attention(NULL, &c->query, NULL, &c->value, NULL, NULL, &c->p,
                                        &c->out, &c->topkt, &c->smaxt, &c->ssumt),
                 NSA_ERR_NULL_POINTER, "key must not be NULL");
    test_expect_status(nsa_compress_attention(NULL, &c->query, &c->key, NULL, NULL, NULL, &c->p,
                                        &c->out, &c->topkt, &c->smaxt, &c->ssumt),
                 NSA_ERR_NULL_POINTER, "value must not be NULL");
    test_expect_status(nsa_compress_attention(NULL, &c->query, &c->key, &c->value, NULL, NULL, NULL,
                                        &c->out, &c->topkt, &c->smaxt, &c->ssumt),
                 NSA_ERR_NULL_POINTER, "params must not be NULL");
    test_expect_status(nsa_compress_attention(NULL, &c->query, &c->key, &c->value, NULL, NULL, &c->p,
                                        NULL, &c->topkt, &c->smaxt, &c->ssumt),
                 NSA_ERR_NULL_POINTER, "attention_out must not be NULL");
    test_expect_status(nsa_compress_attention(NULL, &c->query, &c->key, &c->value, NULL, NULL, &c->p,
                                        &c->out, NULL, &c->smaxt, &c->ssumt),
                 NSA_ERR_NULL_POINTER, "topk_indices must not be NULL");
    test_expect_status(nsa_compress_attention(NULL, &c->query, &c->key, &c->value, NULL, NULL, &c->p,
                                        &c->out, &c->topkt, NULL, &c->ssumt),
                 NSA_ERR_NULL_POINTER, "softmax_max must not be NULL");
    test_expect_status(nsa_compress_attention(NULL, &c->query, &c->key, &c->value, NULL, NULL, &c->p,
                                        &c->out, &c->topkt, &c->smaxt, NULL),
                 NSA_ERR_NULL_POINTER, "softmax_sum must not be NULL");

    /* tensors */
    EXPECT(c->key.dtype = NSA_DTYPE_BF16, NSA_ERR_INVALID_ARGUMENT,
           "query, key and value must have one dtype");
    EXPECT(c->query.ndim = 2, NSA_ERR_INVALID_ARGUMENT, "query must have 3 dimensions");
    EXPECT(c->value.dtype = NSA_DTYPE_I8, NSA_ERR_INVALID_ARGUMENT, "value dtype must be one of");
    /* heads */
    EXPECT(c->p.head_num = 0, NSA_ERR_INVALID_ARGUMENT, "head_num must be >= 1, got 0");
    EXPECT(c->p.head_num = 3, NSA_ERR_INVALID_ARGUMENT,
           "head_num (3) must equal query.shape[1] (4)");
    EXPECT((c->key.shape[1] = 3, c->value.shape[1] = 3), NSA_ERR_INVALID_ARGUMENT,
           "must be a multiple of key heads N2 (3)");
    EXPECT((c->key.shape[1] = 0, c->value.shape[1] = 0), NSA_ERR_INVALID_ARGUMENT,
           "key.shape[1] (N2) must be >= 1");
    EXPECT((c->query.shape[1] = 6, c->query.stride[1] = 0, c->p.head_num = 6, c->key.shape[1] = 1),
           NSA_ERR_INVALID_ARGUMENT, "power of two <= 64");
    EXPECT((c->query.shape[1] = 128, c->query.stride[1] = 0, c->p.head_num = 128,
            c->key.shape[1] = 1),
           NSA_ERR_INVALID_ARGUMENT, "power of two <= 64 (the kernel's pairwise GQA sum), got 128");
    /* head dims */
    EXPECT((c->query.shape[2] = 800, c->query.stride[2] = 0), NSA_ERR_INVALID_ARGUMENT,
           "query.shape[2] (D) must be in [1, 768], got 800");
    EXPECT(c->key.shape[2] = 8, NSA_ERR_INVALID_ARGUMENT, "key.shape[2] must be query.shape[2]");
    EXPECT(c->value.shape[0] = 100, NSA_ERR_INVALID_ARGUMENT,
           "value.shape[0] must be key.shape[0]");
    EXPECT((c->value.shape[2] = 32, c->value.stride[2] = 0), NSA_ERR_INVALID_ARGUMENT,
           "value.shape[2] (D2) must be in [1, D = 16], got 32");
    /* block parameters */
    EXPECT(c->p.compress_block_size = 40, NSA_ERR_INVALID_ARGUMENT,
           "compress_block_size must be a multiple of 16 in [16, 128], got 40");
    EXPECT(c->p.compress_block_size = 144, NSA_ERR_INVALID_ARGUMENT,
           "compress_block_size must be a multiple of 16 in [16, 128], got 144");
    EXPECT(c->p.compress_stride = 80, NSA_ERR_INVALID_ARGUMENT,
           "compress_stride must be a multiple of 16 in [16, 64], got 80");
    EXPECT(c->p.compress_stride = 0, NSA_ERR_INVALID_ARGUMENT,
           "compress_stride must be a multiple of 16 in [16, 64], got 0");
    EXPECT(c->p.select_block_size = 20, NSA_ERR_INVALID_ARGUMENT,
           "select_block_size must be a multiple of 16 in [16, 128], got 20");
    EXPECT(c->p.select_block_size = 144, NSA_ERR_INVALID_ARGUMENT,
           "select_block_size must be a multiple of 16 in [16, 128], got 144");
    EXPECT((c->p.compress_block_size = 16, c->p.compress_stride = 32), NSA_ERR_INVALID_ARGUMENT,
           "compress_block_size (16) must be >= compress_stride (32)");
    EXPECT(c->p.compress_block_size = 128, NSA_ERR_INVALID_ARGUMENT,
           "select_block_size (64) must be >= compress_block_size (128)");
    EXPECT((c->p.select_block_size = 80, c->p.compress_stride = 32), NSA_ERR_INVALID_ARGUMENT,
           "select_block_size (80) must be a multiple of compress_stride (32)");
    EXPECT(c->p.select_block_count = 0, NSA_ERR_INVALID_ARGUMENT,
           "select_block_count must be in [1, 32], got 0");
    EXPECT(c->p.select_block_count = 33, NSA_ERR_INVALID_ARGUMENT,
           "select_block_count must be in [1, 32], got 33");
    /* sequence arrays */
    EXPECT(c->p.actual_seq_qlen = NULL, NSA_ERR_NULL_POINTER, "actual_seq_qlen must not be NULL");
    EXPECT(c->p.actual_cmp_seq_kvlen = NULL, NSA_ERR_NULL_POINTER,
           "actual_cmp_seq_kvlen must not be NULL");
    EXPECT(c->p.actual_seq_qlen_count = 0, NSA_ERR_INVALID_ARGUMENT,
           "actual_seq_qlen_count must be >= 1");
    EXPECT(c->p.actual_cmp_seq_kvlen_count = 1, NSA_ERR_INVALID_ARGUMENT,
           "actual_cmp_seq_kvlen_count (1) must equal actual_seq_qlen_count (2)");
    EXPECT(c->qlen[0] = 9, NSA_ERR_INVALID_ARGUMENT, "actual_seq_qlen must be non-decreasing");
    EXPECT(c->qlen[1] = 7, NSA_ERR_INVALID_ARGUMENT,
           "actual_seq_qlen[1] (the last) must equal query.shape[0] (8), got 7");
    EXPECT(c->kvlen[1] = 130, NSA_ERR_INVALID_ARGUMENT,
           "actual_cmp_seq_kvlen[1] (the last) must equal key.shape[0] (134), got 130");
    EXPECT(c->kvlen[0] = 200, NSA_ERR_INVALID_ARGUMENT,
           "actual_cmp_seq_kvlen must be non-decreasing");
    EXPECT(c->p.actual_sel_seq_kvlen_count = 1, NSA_ERR_INVALID_ARGUMENT,
           "actual_sel_seq_kvlen_count (1) must equal actual_seq_qlen_count (2)");
    EXPECT(c->sellen[1] = 35, NSA_ERR_INVALID_ARGUMENT,
           "actual_sel_seq_kvlen: batch 1 has 19 selection blocks, must be ceil(compressed length "
           "70");
    EXPECT((c->kvlen[0] = 40, c->sellen[0] = 10), NSA_ERR_INVALID_ARGUMENT,
           "select_block_count (16) must be <= the selection blocks of every batch; batch 0 has "
           "ceil(40 / 4) = 10");
    /* masks */
    EXPECT(c->amask.shape[1] = 64, NSA_ERR_INVALID_ARGUMENT,
           "atten_mask.shape[1] must be max compressed kv length maxS2 (70), got 64");
    EXPECT(c->amask.shape[0] = 4, NSA_ERR_INVALID_ARGUMENT,
           "atten_mask.shape[0] must be max query length maxS1 (5), got 4");
    EXPECT(c->amask.dtype = NSA_DTYPE_F32, NSA_ERR_INVALID_ARGUMENT,
           "atten_mask dtype must be one of");
    EXPECT(c->amask.ndim = 3, NSA_ERR_INVALID_ARGUMENT, "atten_mask must have 2 dimensions");
    EXPECT(c->tmask.shape[1] = 17, NSA_ERR_INVALID_ARGUMENT,
           "topk_mask.shape[1] must be ceil(maxS2 / (select_block_size / compress_stride)) (18), "
           "got 17");
    EXPECT(c->tmask.dtype = NSA_DTYPE_I32, NSA_ERR_INVALID_ARGUMENT,
           "topk_mask dtype must be one of");
    /* outputs */
    EXPECT(c->out.shape[2] = 8, NSA_ERR_INVALID_ARGUMENT,
           "attention_out.shape[2] must be value.shape[2] (16), got 8");
    EXPECT(c->out.dtype = NSA_DTYPE_I32, NSA_ERR_INVALID_ARGUMENT,
           "attention_out dtype must be one of");
    EXPECT(c->topkt.dtype = NSA_DTYPE_I64, NSA_ERR_INVALID_ARGUMENT,
           "topk_indices dtype must be one of");
    EXPECT(c->topkt.shape[2] = 8, NSA_ERR_INVALID_ARGUMENT,
           "topk_indices.shape[2] must be select_block_count (16), got 8");
    EXPECT(c->topkt.shape[1] = 1, NSA_ERR_INVALID_ARGUMENT,
           "topk_indices.shape[1] must be key.shape[1] (2), got 1");
    EXPECT(c->smaxt.shape[2] = 4, NSA_ERR_INVALID_ARGUMENT,
           "softmax_max.shape[2] must be 8 (8), got 4");
    EXPECT(c->ssumt.dtype = NSA_DTYPE_F16, NSA_ERR_INVALID_ARGUMENT,
           "softmax_sum dtype must be one of");
    EXPECT(c->ssumt.shape[0] = 9, NSA_ERR_INVALID_ARGUMENT,
           "softmax_sum.shape[0] must be query.shape[0] (8), got 9");
    EXPECT(c->ssumt.data = c->smax, NSA_ERR_INVALID_ARGUMENT,
           "softmax_max must not overlap softmax_sum");
    EXPECT(c->out.data = c->q, NSA_ERR_INVALID_ARGUMENT, "attention_out must not overlap query");
    /* strict level: Ascend-only limits */
    EXPECT((c->p.validation = NSA_VALIDATE_STRICT,
            c->query.dtype = c->key.dtype = c->value.dtype = NSA_DTYPE_F32,
            c->query.shape[2] = c->key.shape[2] = c->value.shape[2] = c->out.shape[2] = 8),
           NSA_ERR_UNSUPPORTED, "query dtype must be f16 or bf16 under strict validation");
    EXPECT((c->p.validation = NSA_VALIDATE_STRICT, c->value.shape[2] = c->out.shape[2] = 8),
           NSA_ERR_UNSUPPORTED,
           "head dims must be multiples of 16 under strict validation, got D = 16, D2 = 8");
    EXPECT((c->p.validation = NSA_VALIDATE_STRICT, c->p.select_block_count = 8,
            c->topkt.shape[2] = 8),
           NSA_ERR_UNSUPPORTED,
           "strict validation supports only compress_block_size 32, compress_stride 16, "
           "select_block_size 64, select_block_count 16; got 32, 16, 64, 8");
    {
        /* 14001 compressed keys: broadcast K/V rows (stride 0) keep the buffers small */
        vcall_init(c);
        c->p.validation = NSA_VALIDATE_STRICT;
        c->kvlen[1] = 64 + 14001;
        c->p.actual_sel_seq_kvlen = NULL;
        c->key.shape[0] = c->value.shape[0] = c->kvlen[1];
        c->key.stride[0] = c->value.stride[0] = 0;
        c->amask.shape[1] = 14001;
        c->amask.stride[0] = 0;
        c->amask.stride[1] = 0;
        c->tmask.shape[1] = (14001 + 3) / 4;
        c->tmask.stride[0] = c->tmask.stride[1] = 0;
        test_expect_status(vrun(c), NSA_ERR_UNSUPPORTED,
               "batch 1 has 14001 compressed keys; strict validation allows at most 14000");
        c->p.validation = NSA_VALIDATE_DEFAULT;
        assert_int_equal(vrun(c), NSA_SUCCESS);
    }
    /* no query rows at all: success, nothing written */
    vcall_init(c);
    c->qlen[0] = c->qlen[1] = 0;
    c->query.shape[0] = c->out.shape[0] = c->topkt.shape[0] = 0;
    c->smaxt.shape[0] = c->ssumt.shape[0] = 0;
    c->amask.shape[0] = c->tmask.shape[0] = 0;
    assert_int_equal(vrun(c), NSA_SUCCESS);
    free(c);
}

/* Workspace query and a caller workspace: exact size works, one byte less fails cleanly. */
static void caller_workspace(void **state)
{
    vcall *c = malloc(sizeof *c);
    nsa_context_config cfg = NSA_CONTEXT_CONFIG_INIT;
    nsa_context *ctx;
    size_t size = 0;
    void *buf;
    (void)state;
    vcall_init(c);
    cfg.num_threads = 2;
    assert_int_equal(nsa_context_create(&cfg, &ctx), NSA_SUCCESS);
    assert_int_equal(nsa_compress_attention_workspace_size(ctx, &c->query, &c->key, &c->value,
                                                           &c->p, &size), NSA_SUCCESS);
    assert_int_equal(posix_memalign(&buf, 64, size), 0); /* workspaces are 64-byte aligned */
    assert_int_equal(nsa_context_set_workspace(ctx, buf, size), NSA_SUCCESS);
    assert_int_equal(nsa_compress_attention(ctx, &c->query, &c->key, &c->value, &c->amask,
                                            &c->tmask, &c->p, &c->out, &c->topkt, &c->smaxt,
                                            &c->ssumt), NSA_SUCCESS);
    assert_int_equal(nsa_context_set_workspace(ctx, buf, size - 1), NSA_SUCCESS);
    assert_int_equal(nsa_compress_attention(ctx, &c->query, &c->key, &c->value, &c->amask,
                                            &c->tmask, &c->p, &c->out, &c->topkt, &c->smaxt,
                                            &c->ssumt), NSA_ERR_WORKSPACE_TOO_SMALL);
    nsa_context_destroy(ctx);
    free(buf);
    free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(randomised),
        cmocka_unit_test(large_group_many_chunks),
        cmocka_unit_test(softmax_layout_example),
        cmocka_unit_test(importance_shift_example),
        cmocka_unit_test(uniform_rows_ties_and_forced_blocks),
        cmocka_unit_test(reliability),
        cmocka_unit_test(validation_errors),
        cmocka_unit_test(caller_workspace),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
