/* SPDX-License-Identifier: Apache-2.0 */
/* nsa_flex_attention against a float64 reference written here: random shapes (GQA, E != Ev,
 * L != S, ragged tail blocks, broadcast K/V batch and block-mask B/H), strided inputs,
 * f32/f16/bf16, every built-in mod and user callbacks, blocks whose class disagrees with the
 * mask_mod (the compiled-kernel semantics), thread-count invariance and every bad input. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "test_util.h"

/* f32: float32 accumulation over at most a few hundred keys of O(1) values against exact
 * float64; the same bound the PyTorch goldens use. */
#define F32_ATOL 2e-5
/* f16 / bf16 outputs: the float32 result rounded once to the dtype, so at most 1 ulp from
 * the correctly rounded reference plus float32 noise near a rounding boundary: 2 ulps. */
#define HALF_ULPS 2.0
/* ... except where the output cancels to nearly 0: a dtype ulp there is far below what the
 * float32 computation resolves, so such elements are held to the bound the f32 outputs are
 * held to, F32_ATOL (the f16/bf16 output is that float32 result rounded once). The float32
 * error is not just a few ulps of |v| <= 1: a score error d (float32 dot of E <= 80 terms,
 * scale up to 1, scores up to ~10: d ~ 4e-6 measured) moves the output by up to
 * d * 2 max|v|; a case with E=75, scale 0.97 landed 1.02e-6 from the float64 reference. */
#define HALF_CANCEL_ATOL F32_ATOL

enum { MK_NONE, MK_CAUSAL, MK_SLIDING, MK_PREFIX, MK_DOC, MK_DOC_OFFSETS, MK_OR_AND, MK_CALLBACK,
       MK_KV_BLOCKS, MK_COUNT };
enum { SK_NONE, SK_ALIBI, SK_SOFTCAP, SK_REL_BIAS, SK_CALLBACK, SK_COUNT };

typedef struct fcase {
    int64_t B, Bk, Hq, Hkv, L, S, E, Ev, bq, bk, mB, mH;
    nsa_dtype dt;
    int mask, score, strided;
    int eager; /* the reference applies the mask everywhere (mask_mod_only) */
    int64_t window, prefix;
    float scale; /* 0 = default */
    float cap;
    int64_t *doc;      /* doc id per position (L == S for document masks) */
    int64_t offs[6];   /* sequence offsets for MK_DOC_OFFSETS */
    int64_t nseq;
    float *table;      /* rel bias (Hq, L + S - 1) */
    uint8_t *blk;      /* MK_KV_BLOCKS: class per (qb, kb): 0 none, 1 partial, 2 full */
} fcase;

/* ---- the test's own mods ----------------------------------------------------------------- */

static int ref_mask(const fcase *c, int64_t b, int64_t h, int64_t q, int64_t k)
{
    switch (c->mask) {
    case MK_CAUSAL:
        return k <= q;
    case MK_SLIDING:
        return k <= q && q - k < c->window;
    case MK_PREFIX:
        return k < c->prefix || k <= q;
    case MK_DOC:
    case MK_DOC_OFFSETS:
        return c->doc[q] == c->doc[k] && (c->mask == MK_DOC || k <= q);
    case MK_OR_AND:
        return (k <= q && q - k < c->window) || (k < c->prefix && k > q);
    case MK_CALLBACK: /* depends on b and h: a per-(b, h) window, rows before b+h see nothing */
        return q >= b + h && k <= q && q - k < 5 + 7 * h + 3 * b;
    case MK_KV_BLOCKS: /* applied inside partial blocks only */
        return (q + 2 * k) % 3 != 0;
    default:
        return 1;
    }
}

static void cb_mask(void *user, int64_t b, int64_t h, int64_t q, int64_t kv0, int32_t n,
                    uint8_t *keep)
{
    const fcase *c = (const fcase *)user;
    int32_t j;
    for (j = 0; j < n; j++)
        keep[j] = (uint8_t)ref_mask(c, b, h, q, kv0 + j);
}

static void cb_score(void *user, int64_t b, int64_t h, int64_t q, int64_t kv0, int32_t n,
                     float *s)
{
    int32_t j;
    (void)user;
    for (j = 0; j < n; j++) /* a score_mod that also masks: -inf on one diagonal */
        s[j] = (q - (kv0 + j)) == 3 ? -INFINITY : s[j] * (1.0f + 0.1f * (float)h) + 0.01f * (float)b;
}

static double ref_score(const fcase *c, double s, int64_t b, int64_t h, int64_t q, int64_t k)
{
    switch (c->score) {
    case SK_ALIBI:
        return s + exp2(-8.0 * (double)(h + 1) / (double)c->Hq) * (double)(k - q);
    case SK_SOFTCAP:
        return c->cap * tanh(s / c->cap);
    case SK_REL_BIAS:
        return s + c->table[h * (c->L + c->S - 1) + (q - k + c->S - 1)];
    case SK_CALLBACK:
        return q - k == 3 ? -INFINITY : s * (1.0 + 0.1 * (double)h) + 0.01 * (double)b;
    default:
        return s;
    }
}

/* ---- data -------------------------------------------------------------------------------- */

/* A (B, H, N, D) tensor stored either contiguously or as (B, N, H, D + 3) (BSND with a
 * padded row), filled with dtype-exact values; `vals` gets the logical values. */
typedef struct tens {
    void *buf;
    nsa_tensor t;
    float *vals;
} tens;

static void make_tens(tens *x, test_rng *rng, int64_t B, int64_t H, int64_t N, int64_t D,
                      nsa_dtype dt, int strided)
{
    int64_t shape[4], stride[4], b, h, n, d, total, pad = strided ? 3 : 0;
    float *raw;
    shape[0] = B;
    shape[1] = H;
    shape[2] = N;
    shape[3] = D;
    if (strided) {
        stride[3] = 1;
        stride[1] = D + pad;
        stride[2] = H * (D + pad);
        stride[0] = N * H * (D + pad);
    } else {
        stride[3] = 1;
        stride[2] = D;
        stride[1] = N * D;
        stride[0] = H * N * D;
    }
    total = B * stride[0];
    raw = (float *)malloc((size_t)(total > 0 ? total : 1) * sizeof(float));
    x->vals = (float *)malloc((size_t)(B * H * N * D > 0 ? B * H * N * D : 1) * sizeof(float));
    for (b = 0; b < total; b++)
        raw[b] = test_rng_uniform(rng, -1.0f, 1.0f);
    test_round_to_dtype(raw, total, dt);
    for (b = 0; b < B; b++)
        for (h = 0; h < H; h++)
            for (n = 0; n < N; n++)
                for (d = 0; d < D; d++)
                    x->vals[((b * H + h) * N + n) * D + d] =
                        raw[b * stride[0] + h * stride[1] + n * stride[2] + d];
    x->buf = dt == NSA_DTYPE_F32 ? (void *)raw : test_to_dtype(raw, total, dt);
    if (dt != NSA_DTYPE_F32)
        free(raw);
    x->t = nsa_tensor_strided(x->buf, dt, 4, shape, stride);
}

static void free_tens(tens *x)
{
    free(x->buf);
    free(x->vals);
}

/* Reference output (B, Hq, L, Ev) and lse (B, Hq, L) in float64. */
static void reference(const fcase *c, const tens *q, const tens *k, const tens *v, double *out,
                      double *lse)
{
    const double scale = c->scale != 0.0f ? (double)c->scale : 1.0 / sqrt((double)c->E);
    double *s = (double *)malloc((size_t)(c->S > 0 ? c->S : 1) * sizeof(double));
    int64_t b, h, i, j, e;
    for (b = 0; b < c->B; b++)
        for (h = 0; h < c->Hq; h++) {
            const int64_t hk = h / (c->Hq / c->Hkv), bk = c->Bk == 1 ? 0 : b;
            for (i = 0; i < c->L; i++) {
                double m = -INFINITY, sum = 0.0;
                double *o = out + ((b * c->Hq + h) * c->L + i) * c->Ev;
                for (j = 0; j < c->S; j++) {
                    const float *qr = q->vals + ((b * c->Hq + h) * c->L + i) * c->E;
                    const float *kr = k->vals + ((bk * c->Hkv + hk) * c->S + j) * c->E;
                    double dot = 0.0;
                    int allowed;
                    for (e = 0; e < c->E; e++)
                        dot += (double)qr[e] * (double)kr[e];
                    if (c->mask == MK_KV_BLOCKS && !c->eager) {
                        const uint8_t cls = c->blk[(i / c->bq) * ((c->S + c->bk - 1) / c->bk) +
                                                   j / c->bk];
                        allowed = cls == 2 || (cls == 1 && ref_mask(c, b, h, i, j));
                    } else {
                        allowed = ref_mask(c, b, h, i, j);
                    }
                    s[j] = allowed ? ref_score(c, dot * scale, b, h, i, j) : -INFINITY;
                    if (s[j] > m)
                        m = s[j];
                }
                for (e = 0; e < c->Ev; e++)
                    o[e] = 0.0;
                if (m == -INFINITY) {
                    lse[(b * c->Hq + h) * c->L + i] = -INFINITY;
                    continue;
                }
                for (j = 0; j < c->S; j++) {
                    const double p = exp(s[j] - m);
                    const float *vr = v->vals + ((bk * c->Hkv + hk) * c->S + j) * c->Ev;
                    sum += p;
                    for (e = 0; e < c->Ev; e++)
                        o[e] += p * (double)vr[e];
                }
                for (e = 0; e < c->Ev; e++)
                    o[e] /= sum;
                lse[(b * c->Hq + h) * c->L + i] = m + log(sum);
            }
        }
    free(s);
}

/* ---- building the library objects --------------------------------------------------------- */

static nsa_block_mask *build_mask(fcase *c, test_rng *rng)
{
    nsa_mask_mod *mm = NULL, *a = NULL;
    const nsa_mask_mod *pair[2];
    nsa_block_mask *bm = NULL;
    nsa_tensor ids;
    int64_t n = c->L;
    switch (c->mask) {
    case MK_NONE:
        return NULL;
    case MK_CAUSAL:
        assert_int_equal(nsa_mask_mod_causal(&mm), NSA_SUCCESS);
        break;
    case MK_SLIDING:
        assert_int_equal(nsa_mask_mod_sliding_window(c->window, &mm), NSA_SUCCESS);
        break;
    case MK_PREFIX:
        assert_int_equal(nsa_mask_mod_prefix_lm(c->prefix, &mm), NSA_SUCCESS);
        break;
    case MK_DOC:
        ids = nsa_tensor_contiguous(c->doc, NSA_DTYPE_I64, 1, &n);
        assert_int_equal(nsa_mask_mod_document(&ids, NULL, &mm), NSA_SUCCESS);
        break;
    case MK_DOC_OFFSETS: /* nested: causal inside each sequence */
        assert_int_equal(nsa_mask_mod_causal(&a), NSA_SUCCESS);
        assert_int_equal(nsa_mask_mod_document_offsets(c->offs, NULL, c->nseq, a, &mm),
                         NSA_SUCCESS);
        break;
    case MK_OR_AND: {
        /* or(and(causal, window), and(prefix_lm, not(causal))) */
        nsa_mask_mod *causal = NULL, *sw = NULL, *pre = NULL, *notc = NULL, *win = NULL,
                     *pre_only = NULL;
        assert_int_equal(nsa_mask_mod_causal(&causal), NSA_SUCCESS);
        assert_int_equal(nsa_mask_mod_sliding_window(c->window, &sw), NSA_SUCCESS);
        assert_int_equal(nsa_mask_mod_prefix_lm(c->prefix, &pre), NSA_SUCCESS);
        assert_int_equal(nsa_mask_mod_not(causal, &notc), NSA_SUCCESS);
        pair[0] = causal;
        pair[1] = sw;
        assert_int_equal(nsa_mask_mod_and(pair, 2, &win), NSA_SUCCESS);
        pair[0] = pre;
        pair[1] = notc;
        assert_int_equal(nsa_mask_mod_and(pair, 2, &pre_only), NSA_SUCCESS);
        pair[0] = win;
        pair[1] = pre_only;
        assert_int_equal(nsa_mask_mod_or(pair, 2, &mm), NSA_SUCCESS);
        nsa_mask_mod_free(causal);
        nsa_mask_mod_free(sw);
        nsa_mask_mod_free(pre);
        nsa_mask_mod_free(notc);
        nsa_mask_mod_free(win);
        nsa_mask_mod_free(pre_only);
        break;
    }
    case MK_CALLBACK:
        assert_int_equal(nsa_mask_mod_callback(cb_mask, c, &mm), NSA_SUCCESS);
        break;
    case MK_KV_BLOCKS: {
        /* random partial / full lists in random order with -1 padding after the counts */
        const int64_t nq = (c->L + c->bq - 1) / c->bq, nk = (c->S + c->bk - 1) / c->bk;
        int64_t shape4[4], r, kk;
        int32_t *num = (int32_t *)calloc((size_t)nq, 4), *fnum = (int32_t *)calloc((size_t)nq, 4);
        int32_t *idx = (int32_t *)malloc((size_t)(nq * nk) * 4);
        int32_t *fidx = (int32_t *)malloc((size_t)(nq * nk) * 4);
        nsa_tensor tn, ti, tfn, tfi;
        c->blk = (uint8_t *)calloc((size_t)(nq * nk), 1);
        for (r = 0; r < nq; r++) {
            for (kk = 0; kk < nk; kk++) {
                idx[r * nk + kk] = fidx[r * nk + kk] = -1;
                c->blk[r * nk + kk] = (uint8_t)test_rng_int(rng, 0, 2);
            }
            for (kk = nk - 1; kk >= 0; kk--) { /* descending: order must not matter */
                if (c->blk[r * nk + kk] == 1)
                    idx[r * nk + num[r]++] = (int32_t)kk;
                if (c->blk[r * nk + kk] == 2)
                    fidx[r * nk + fnum[r]++] = (int32_t)kk;
            }
        }
        shape4[0] = shape4[1] = 1;
        shape4[2] = nq;
        shape4[3] = nk;
        tn = nsa_tensor_contiguous(num, NSA_DTYPE_I32, 3, shape4);
        ti = nsa_tensor_contiguous(idx, NSA_DTYPE_I32, 4, shape4);
        tfn = nsa_tensor_contiguous(fnum, NSA_DTYPE_I32, 3, shape4);
        tfi = nsa_tensor_contiguous(fidx, NSA_DTYPE_I32, 4, shape4);
        assert_int_equal(nsa_mask_mod_callback(cb_mask, c, &mm), NSA_SUCCESS);
        if (nsa_block_mask_from_kv_blocks(NULL, &tn, &ti, &tfn, &tfi, mm, c->bq, c->bk, c->L,
                                          c->S, &bm) != NSA_SUCCESS)
            fail_msg("from_kv_blocks: %s", nsa_last_error());
        free(num);
        free(fnum);
        free(idx);
        free(fidx);
        nsa_mask_mod_free(mm);
        return bm;
    }
    }
    nsa_mask_mod_free(a);
    if (nsa_block_mask_create(NULL, mm, c->mB, c->mH, c->L, c->S, c->bq, c->bk, &bm) !=
        NSA_SUCCESS)
        fail_msg("create: %s", nsa_last_error());
    nsa_mask_mod_free(mm);
    return bm;
}

static nsa_score_mod *build_score(fcase *c, test_rng *rng)
{
    nsa_score_mod *sm = NULL;
    int64_t shape[2], i;
    nsa_tensor t;
    switch (c->score) {
    case SK_ALIBI:
        assert_int_equal(nsa_score_mod_alibi(NULL, c->Hq, &sm), NSA_SUCCESS);
        break;
    case SK_SOFTCAP:
        assert_int_equal(nsa_score_mod_softcap(c->cap, &sm), NSA_SUCCESS);
        break;
    case SK_REL_BIAS:
        shape[0] = c->Hq;
        shape[1] = c->L + c->S - 1;
        c->table = (float *)malloc((size_t)(shape[0] * shape[1]) * sizeof(float));
        for (i = 0; i < shape[0] * shape[1]; i++)
            c->table[i] = test_rng_uniform(rng, -1.0f, 1.0f);
        t = nsa_tensor_contiguous(c->table, NSA_DTYPE_F32, 2, shape);
        assert_int_equal(nsa_score_mod_rel_bias(&t, &sm), NSA_SUCCESS);
        break;
    case SK_CALLBACK:
        assert_int_equal(nsa_score_mod_callback(cb_score, NULL, &sm), NSA_SUCCESS);
        break;
    default:
        break;
    }
    return sm;
}

/* ---- one random case ---------------------------------------------------------------------- */

static void random_case(test_rng *rng, nsa_dtype dt, nsa_context *ctx1, nsa_context *ctx3)
{
    fcase c;
    tens q, k, v;
    nsa_block_mask *bm;
    nsa_score_mod *sm;
    nsa_flex_params prm = NSA_FLEX_PARAMS_INIT;
    int64_t shape[4], n, nl, i;
    void *out1, *out3;
    float *lse1, *lse3, *got;
    double *ref, *ref_lse;
    nsa_tensor to1, to3, tl1, tl3;
    const int64_t G = test_rng_int(rng, 1, 3);

    memset(&c, 0, sizeof c);
    c.dt = dt;
    c.mask = (int)test_rng_int(rng, 0, MK_COUNT - 1);
    c.score = (int)test_rng_int(rng, 0, SK_COUNT - 1);
    c.B = test_rng_int(rng, 1, 2);
    c.Bk = test_rng_int(rng, 0, 1) ? 1 : c.B;
    c.Hkv = test_rng_int(rng, 1, 2);
    c.Hq = c.Hkv * G;
    c.L = test_rng_int(rng, 1, 200);
    c.S = (c.mask == MK_DOC || c.mask == MK_DOC_OFFSETS) ? c.L : test_rng_int(rng, 1, 200);
    c.E = test_rng_int(rng, 1, 80);
    c.Ev = test_rng_int(rng, 1, 80);
    c.bq = test_rng_int(rng, 1, 4) * 16 + test_rng_int(rng, 0, 1) * 5; /* not always 2^k */
    if (test_rng_int(rng, 0, 3) == 0)
        c.bq = test_rng_int(rng, 129, 200); /* q blocks split into several kernel tiles */
    if (test_rng_int(rng, 0, 3) == 0)
        c.bq = test_rng_int(rng, 129, 200); /* q blocks split into several kernel tiles */
    c.bk = test_rng_int(rng, 1, 4) * 16 + test_rng_int(rng, 0, 1) * 3;
    c.mB = c.mask == MK_CALLBACK || test_rng_int(rng, 0, 1) ? c.B : 1;
    c.mH = c.mask == MK_CALLBACK || test_rng_int(rng, 0, 1) ? c.Hq : 1;
    c.strided = (int)test_rng_int(rng, 0, 1);
    c.window = test_rng_int(rng, 1, 60);
    c.prefix = test_rng_int(rng, 0, 40);
    c.cap = test_rng_uniform(rng, 0.5f, 3.0f);
    c.scale = test_rng_int(rng, 0, 1) ? 0.0f : test_rng_uniform(rng, 0.05f, 1.0f);
    if (c.mask == MK_DOC || c.mask == MK_DOC_OFFSETS) {
        int64_t d = 0;
        c.doc = (int64_t *)malloc((size_t)c.L * sizeof(int64_t));
        c.nseq = test_rng_int(rng, 1, 5);
        c.offs[0] = 0;
        for (i = 1; i < c.nseq; i++)
            c.offs[i] = c.offs[i - 1] + test_rng_int(rng, 0, c.L - c.offs[i - 1]);
        c.offs[c.nseq] = c.L;
        for (i = 0; i < c.L; i++) {
            while (c.offs[d + 1] <= i)
                d++;
            c.doc[i] = d;
        }
    }
    prm.enable_gqa = G > 1 || test_rng_int(rng, 0, 1);
    prm.scale = c.scale;

    make_tens(&q, rng, c.B, c.Hq, c.L, c.E, dt, c.strided);
    make_tens(&k, rng, c.Bk, c.Hkv, c.S, c.E, dt, c.strided);
    make_tens(&v, rng, c.Bk, c.Hkv, c.S, c.Ev, dt, !c.strided);
    bm = build_mask(&c, rng);
    sm = build_score(&c, rng);

    n = c.B * c.Hq * c.L * c.Ev;
    nl = c.B * c.Hq * c.L;
    shape[0] = c.B;
    shape[1] = c.Hq;
    shape[2] = c.L;
    shape[3] = c.Ev;
    out1 = calloc((size_t)n, 4);
    out3 = calloc((size_t)n, 4);
    lse1 = (float *)calloc((size_t)nl, 4);
    lse3 = (float *)calloc((size_t)nl, 4);
    to1 = nsa_tensor_contiguous(out1, dt, 4, shape);
    to3 = nsa_tensor_contiguous(out3, dt, 4, shape);
    tl1 = nsa_tensor_contiguous(lse1, NSA_DTYPE_F32, 3, shape);
    tl3 = nsa_tensor_contiguous(lse3, NSA_DTYPE_F32, 3, shape);
    /* pass 1 (block lists that disagree with the mask_mod only): PyTorch's eager semantics */
    for (c.eager = 0; c.eager <= (c.mask == MK_KV_BLOCKS); c.eager++) {
        prm.mask_mod_only = c.eager;
        if (nsa_flex_attention(ctx1, &q.t, &k.t, &v.t, bm, sm, &prm, &to1, &tl1) != NSA_SUCCESS)
            fail_msg("flex (mask %d score %d): %s", c.mask, c.score, nsa_last_error());
        assert_int_equal(nsa_flex_attention(ctx3, &q.t, &k.t, &v.t, bm, sm, &prm, &to3, &tl3),
                         NSA_SUCCESS);
        /* bit-identical for any thread count */
        assert_memory_equal(out1, out3, (size_t)n * nsa_dtype_size(dt));
        assert_memory_equal(lse1, lse3, (size_t)nl * 4);

        ref = (double *)malloc((size_t)n * sizeof(double));
        ref_lse = (double *)malloc((size_t)nl * sizeof(double));
        reference(&c, &q, &k, &v, ref, ref_lse);
        for (i = 0; i < nl; i++) {
            if (isinf(ref_lse[i]) || isinf(lse1[i])) {
                if (!(isinf(ref_lse[i]) && isinf(lse1[i]) && lse1[i] < 0))
                    fail_msg("lse[%lld] = %g, reference %g (mask %d)", (long long)i, (double)lse1[i],
                             ref_lse[i], c.mask);
                ref_lse[i] = 0.0;
                lse1[i] = 0.0f;
            }
        }
        got = test_to_f32(out1, n, dt);
        if (dt == NSA_DTYPE_F32)
            test_assert_close("out", got, ref, n, F32_ATOL, 0.0);
        else
            for (i = 0; i < n; i++)
                if (test_ulp_diff(got[i], ref[i], dt) > HALF_ULPS &&
                    fabs((double)got[i] - ref[i]) > HALF_CANCEL_ATOL)
                    fail_msg("out[%lld] = %.9g, reference %.9g: %g ulps of %s (mask %d score %d)",
                             (long long)i, (double)got[i], ref[i], test_ulp_diff(got[i], ref[i], dt),
                             nsa_dtype_name(dt), c.mask, c.score);
        /* lse is float32 whatever the dtype: log-sum-exp of scores of size O(10) */
        test_assert_close("lse", lse1, ref_lse, nl, F32_ATOL, 1e-6);
        free(got);
        free(ref);
        free(ref_lse);
    }
    free(out1);
    free(out3);
    free(lse1);
    free(lse3);
    free(c.doc);
    free(c.table);
    free(c.blk);
    nsa_block_mask_free(bm);
    nsa_score_mod_free(sm);
    free_tens(&q);
    free_tens(&k);
    free_tens(&v);
}

static nsa_context *make_ctx(int threads)
{
    nsa_context_config cfg = NSA_CONTEXT_CONFIG_INIT;
    nsa_context *ctx = NULL;
    cfg.num_threads = threads;
    assert_int_equal(nsa_context_create(&cfg, &ctx), NSA_SUCCESS);
    return ctx;
}

static void random_dtype(nsa_dtype dt, uint64_t seed, int count)
{
    test_rng rng;
    nsa_context *c1 = make_ctx(1), *c3 = make_ctx(3);
    int i;
    test_rng_seed(&rng, seed);
    for (i = 0; i < count; i++)
        random_case(&rng, dt, c1, c3);
    nsa_context_destroy(c1);
    nsa_context_destroy(c3);
}

static void random_f32(void **state)
{
    (void)state;
    random_dtype(NSA_DTYPE_F32, 11, 120);
}

static void random_f16(void **state)
{
    (void)state;
    random_dtype(NSA_DTYPE_F16, 12, 40);
}

static void random_bf16(void **state)
{
    (void)state;
    random_dtype(NSA_DTYPE_BF16, 13, 40);
}

/* A caller workspace: exactly the reported size works, one byte less is refused. */
static void workspace(void **state)
{
    test_rng rng;
    tens q, k, v;
    nsa_context *ctx = make_ctx(2);
    nsa_mask_mod *mm = NULL;
    nsa_block_mask *bm = NULL;
    size_t size = 0;
    void *ws = NULL;
    float *o = (float *)calloc(2 * 100 * 16, 4);
    int64_t shape[4] = {1, 2, 100, 16};
    nsa_tensor to = nsa_tensor_contiguous(o, NSA_DTYPE_F32, 4, shape);
    (void)state;
    test_rng_seed(&rng, 5);
    make_tens(&q, &rng, 1, 2, 100, 16, NSA_DTYPE_F32, 0);
    make_tens(&k, &rng, 1, 2, 100, 16, NSA_DTYPE_F32, 0);
    make_tens(&v, &rng, 1, 2, 100, 16, NSA_DTYPE_F32, 0);
    assert_int_equal(nsa_mask_mod_causal(&mm), NSA_SUCCESS);
    assert_int_equal(nsa_block_mask_create(ctx, mm, 1, 1, 100, 100, 32, 32, &bm), NSA_SUCCESS);
    assert_int_equal(nsa_flex_attention_workspace_size(ctx, &q.t, &k.t, &v.t, bm, NULL, &size),
                     NSA_SUCCESS);
    assert_true(size > 0);
    assert_int_equal(posix_memalign(&ws, 64, size), 0);
    assert_int_equal(nsa_context_set_workspace(ctx, ws, size - 64), NSA_SUCCESS);
    assert_int_equal(nsa_flex_attention(ctx, &q.t, &k.t, &v.t, bm, NULL, NULL, &to, NULL),
                     NSA_ERR_WORKSPACE_TOO_SMALL);
    assert_int_equal(nsa_context_set_workspace(ctx, ws, size), NSA_SUCCESS);
    assert_int_equal(nsa_flex_attention(ctx, &q.t, &k.t, &v.t, bm, NULL, NULL, &to, NULL),
                     NSA_SUCCESS);
    free(ws);
    free(o);
    nsa_block_mask_free(bm);
    nsa_mask_mod_free(mm);
    free_tens(&q);
    free_tens(&k);
    free_tens(&v);
    nsa_context_destroy(ctx);
}

/* Selecting one batch / head keeps the mask_mod meaningful (called with the original b, h)
 * and equals running the full mask on that slice. */
static void select_slice(void **state)
{
    test_rng rng;
    fcase c;
    tens q, k, v;
    nsa_mask_mod *mm = NULL;
    nsa_block_mask *bm = NULL, *one = NULL;
    float *full, *part;
    int64_t shape[4] = {2, 3, 70, 8}, s1[4] = {1, 1, 70, 8};
    nsa_tensor tf, tp, qs, ks, vs;
    int64_t i;
    (void)state;
    memset(&c, 0, sizeof c);
    c.mask = MK_CALLBACK;
    test_rng_seed(&rng, 9);
    make_tens(&q, &rng, 2, 3, 70, 8, NSA_DTYPE_F32, 0);
    make_tens(&k, &rng, 2, 3, 70, 8, NSA_DTYPE_F32, 0);
    make_tens(&v, &rng, 2, 3, 70, 8, NSA_DTYPE_F32, 0);
    assert_int_equal(nsa_mask_mod_callback(cb_mask, &c, &mm), NSA_SUCCESS);
    assert_int_equal(nsa_block_mask_create(NULL, mm, 2, 3, 70, 70, 16, 16, &bm), NSA_SUCCESS);
    assert_int_equal(nsa_block_mask_select(bm, 1, 2, &one), NSA_SUCCESS);
    full = (float *)calloc(2 * 3 * 70 * 8, 4);
    part = (float *)calloc(70 * 8, 4);
    tf = nsa_tensor_contiguous(full, NSA_DTYPE_F32, 4, shape);
    tp = nsa_tensor_contiguous(part, NSA_DTYPE_F32, 4, s1);
    assert_int_equal(nsa_flex_attention(NULL, &q.t, &k.t, &v.t, bm, NULL, NULL, &tf, NULL),
                     NSA_SUCCESS);
    qs = q.t;
    ks = k.t;
    vs = v.t;
    qs.data = (float *)q.buf + 1 * q.t.stride[0] + 2 * q.t.stride[1];
    ks.data = (float *)k.buf + 1 * k.t.stride[0] + 2 * k.t.stride[1];
    vs.data = (float *)v.buf + 1 * v.t.stride[0] + 2 * v.t.stride[1];
    qs.shape[0] = ks.shape[0] = vs.shape[0] = 1;
    qs.shape[1] = ks.shape[1] = vs.shape[1] = 1;
    assert_int_equal(nsa_flex_attention(NULL, &qs, &ks, &vs, one, NULL, NULL, &tp, NULL),
                     NSA_SUCCESS);
    for (i = 0; i < 70 * 8; i++)
        assert_true(part[i] == full[(1 * 3 + 2) * 70 * 8 + i]);
    free(full);
    free(part);
    nsa_block_mask_free(bm);
    nsa_block_mask_free(one);
    nsa_mask_mod_free(mm);
    free_tens(&q);
    free_tens(&k);
    free_tens(&v);
}

/* ---- bad inputs --------------------------------------------------------------------------- */

static void expect(nsa_status got, nsa_status want, const char *needle)
{
    if (got != want)
        fail_msg("status %s, expected %s (message: %s)", nsa_status_string(got),
                 nsa_status_string(want), nsa_last_error());
    if (needle && !strstr(nsa_last_error(), needle))
        fail_msg("message \"%s\" does not mention \"%s\"", nsa_last_error(), needle);
}

static void bad_inputs(void **state)
{
    float qb[2 * 4 * 10 * 8], kb[2 * 2 * 12 * 8], vb[2 * 2 * 12 * 6], ob[2 * 4 * 10 * 6],
        lb[2 * 4 * 10];
    int64_t sq[4] = {2, 4, 10, 8}, sk[4] = {2, 2, 12, 8}, sv[4] = {2, 2, 12, 6},
            so[4] = {2, 4, 10, 6};
    nsa_tensor q, k, v, o, l, t;
    nsa_flex_params prm = NSA_FLEX_PARAMS_INIT, p2;
    nsa_block_mask *bm = NULL;
    nsa_mask_mod *mm = NULL;
    nsa_score_mod *sm = NULL;
    float table[4 * 5];
    int64_t st2[2] = {4, 5};
    (void)state;
    memset(qb, 0, sizeof qb);
    memset(kb, 0, sizeof kb);
    memset(vb, 0, sizeof vb);
    q = nsa_tensor_contiguous(qb, NSA_DTYPE_F32, 4, sq);
    k = nsa_tensor_contiguous(kb, NSA_DTYPE_F32, 4, sk);
    v = nsa_tensor_contiguous(vb, NSA_DTYPE_F32, 4, sv);
    o = nsa_tensor_contiguous(ob, NSA_DTYPE_F32, 4, so);
    l = nsa_tensor_contiguous(lb, NSA_DTYPE_F32, 3, so);
    prm.enable_gqa = 1;
    expect(nsa_flex_attention(NULL, &q, &k, &v, NULL, NULL, &prm, &o, &l), NSA_SUCCESS, NULL);

    expect(nsa_flex_attention(NULL, NULL, &k, &v, NULL, NULL, &prm, &o, NULL),
           NSA_ERR_NULL_POINTER, "q");
    expect(nsa_flex_attention(NULL, &q, &k, &v, NULL, NULL, &prm, NULL, NULL),
           NSA_ERR_NULL_POINTER, "out");
    t = q;
    t.ndim = 3;
    expect(nsa_flex_attention(NULL, &t, &k, &v, NULL, NULL, &prm, &o, NULL),
           NSA_ERR_INVALID_ARGUMENT, "q");
    t = q;
    t.dtype = NSA_DTYPE_I32;
    expect(nsa_flex_attention(NULL, &t, &k, &v, NULL, NULL, &prm, &o, NULL),
           NSA_ERR_INVALID_ARGUMENT, "q");
    t = k;
    t.dtype = NSA_DTYPE_F16;
    expect(nsa_flex_attention(NULL, &q, &t, &v, NULL, NULL, &prm, &o, NULL),
           NSA_ERR_INVALID_ARGUMENT, "k.dtype must equal q.dtype");
    t = k;
    t.shape[3] = 4;
    expect(nsa_flex_attention(NULL, &q, &t, &v, NULL, NULL, &prm, &o, NULL),
           NSA_ERR_INVALID_ARGUMENT, "k.shape[3]");
    t = v;
    t.shape[2] = 11;
    expect(nsa_flex_attention(NULL, &q, &k, &t, NULL, NULL, &prm, &o, NULL),
           NSA_ERR_INVALID_ARGUMENT, "v.shape[2]");
    t = q;
    t.shape[0] = 1; /* k batch 2 vs q batch 1 */
    expect(nsa_flex_attention(NULL, &t, &k, &v, NULL, NULL, &prm, &o, NULL),
           NSA_ERR_INVALID_ARGUMENT, "k.shape[0]");
    expect(nsa_flex_attention(NULL, &q, &k, &v, NULL, NULL, NULL, &o, NULL),
           NSA_ERR_INVALID_ARGUMENT, "enable_gqa");
    t = q;
    t.shape[1] = 3;
    expect(nsa_flex_attention(NULL, &t, &k, &v, NULL, NULL, &prm, &o, NULL),
           NSA_ERR_INVALID_ARGUMENT, "multiple");
    p2 = prm;
    p2.enable_gqa = 2;
    expect(nsa_flex_attention(NULL, &q, &k, &v, NULL, NULL, &p2, &o, NULL),
           NSA_ERR_INVALID_ARGUMENT, "enable_gqa must be 0 or 1");
    p2 = prm;
    p2.mask_mod_only = -1;
    expect(nsa_flex_attention(NULL, &q, &k, &v, NULL, NULL, &p2, &o, NULL),
           NSA_ERR_INVALID_ARGUMENT, "mask_mod_only must be 0 or 1");
    p2 = prm;
    p2.scale = NAN;
    expect(nsa_flex_attention(NULL, &q, &k, &v, NULL, NULL, &p2, &o, NULL),
           NSA_ERR_INVALID_ARGUMENT, "scale");
    t = o;
    t.shape[3] = 5;
    expect(nsa_flex_attention(NULL, &q, &k, &v, NULL, NULL, &prm, &t, NULL),
           NSA_ERR_INVALID_ARGUMENT, "out.shape[3]");
    t = o;
    t.data = qb;
    expect(nsa_flex_attention(NULL, &q, &k, &v, NULL, NULL, &prm, &t, NULL),
           NSA_ERR_INVALID_ARGUMENT, "out");
    t = o;
    t.stride[2] = 0; /* distinct output rows sharing memory */
    expect(nsa_flex_attention(NULL, &q, &k, &v, NULL, NULL, &prm, &t, NULL),
           NSA_ERR_INVALID_ARGUMENT, "out");
    t = l;
    t.dtype = NSA_DTYPE_F16;
    expect(nsa_flex_attention(NULL, &q, &k, &v, NULL, NULL, &prm, &o, &t),
           NSA_ERR_INVALID_ARGUMENT, "lse");
    t = l;
    t.shape[2] = 9;
    expect(nsa_flex_attention(NULL, &q, &k, &v, NULL, NULL, &prm, &o, &t),
           NSA_ERR_INVALID_ARGUMENT, "lse.shape[2]");
    t = l;
    t.data = ob;
    expect(nsa_flex_attention(NULL, &q, &k, &v, NULL, NULL, &prm, &o, &t),
           NSA_ERR_INVALID_ARGUMENT, "lse");
    t = k;
    t.stride[2] = -8;
    expect(nsa_flex_attention(NULL, &q, &t, &v, NULL, NULL, &prm, &o, NULL),
           NSA_ERR_INVALID_ARGUMENT, "k");

    assert_int_equal(nsa_mask_mod_causal(&mm), NSA_SUCCESS);
    assert_int_equal(nsa_block_mask_create(NULL, mm, 3, 1, 10, 12, 4, 4, &bm), NSA_SUCCESS);
    expect(nsa_flex_attention(NULL, &q, &k, &v, bm, NULL, &prm, &o, NULL),
           NSA_ERR_INVALID_ARGUMENT, "block_mask batch");
    nsa_block_mask_free(bm);
    assert_int_equal(nsa_block_mask_create(NULL, mm, 1, 2, 10, 12, 4, 4, &bm), NSA_SUCCESS);
    expect(nsa_flex_attention(NULL, &q, &k, &v, bm, NULL, &prm, &o, NULL),
           NSA_ERR_INVALID_ARGUMENT, "block_mask heads");
    nsa_block_mask_free(bm);
    assert_int_equal(nsa_block_mask_create(NULL, mm, 1, 1, 10, 13, 4, 4, &bm), NSA_SUCCESS);
    expect(nsa_flex_attention(NULL, &q, &k, &v, bm, NULL, &prm, &o, NULL),
           NSA_ERR_INVALID_ARGUMENT, "seq_lengths");
    nsa_block_mask_free(bm);
    nsa_mask_mod_free(mm);

    assert_int_equal(nsa_score_mod_alibi(NULL, 3, &sm), NSA_SUCCESS);
    expect(nsa_flex_attention(NULL, &q, &k, &v, NULL, sm, &prm, &o, NULL),
           NSA_ERR_INVALID_ARGUMENT, "ALiBi");
    nsa_score_mod_free(sm);
    memset(table, 0, sizeof table);
    t = nsa_tensor_contiguous(table, NSA_DTYPE_F32, 2, st2);
    assert_int_equal(nsa_score_mod_rel_bias(&t, &sm), NSA_SUCCESS);
    expect(nsa_flex_attention(NULL, &q, &k, &v, NULL, sm, &prm, &o, NULL),
           NSA_ERR_INVALID_ARGUMENT, "rel_bias table.shape[1]");
    nsa_score_mod_free(sm);
    {
        size_t size;
        expect(nsa_flex_attention_workspace_size(NULL, &q, &k, &v, NULL, &prm, NULL),
               NSA_ERR_NULL_POINTER, "size");
        expect(nsa_flex_attention_workspace_size(NULL, &q, &k, &v, NULL, NULL, &size),
               NSA_ERR_INVALID_ARGUMENT, "enable_gqa");
    }
}

/* Rows that see no key and an empty key axis: out 0, lse -inf. */
static void empty_rows(void **state)
{
    float qb[1 * 1 * 4 * 2] = {1, 2, 3, 4, 5, 6, 7, 8}, ob[8], lb[4];
    int64_t sq[4] = {1, 1, 4, 2}, sk[4] = {1, 1, 0, 2};
    nsa_tensor q = nsa_tensor_contiguous(qb, NSA_DTYPE_F32, 4, sq);
    nsa_tensor k = nsa_tensor_contiguous(qb, NSA_DTYPE_F32, 4, sk);
    nsa_tensor o = nsa_tensor_contiguous(ob, NSA_DTYPE_F32, 4, sq);
    nsa_tensor l = nsa_tensor_contiguous(lb, NSA_DTYPE_F32, 3, sq);
    int i;
    (void)state;
    memset(ob, 0x7f, sizeof ob);
    assert_int_equal(nsa_flex_attention(NULL, &q, &k, &k, NULL, NULL, NULL, &o, &l), NSA_SUCCESS);
    for (i = 0; i < 8; i++)
        assert_true(ob[i] == 0.0f);
    for (i = 0; i < 4; i++)
        assert_true(isinf(lb[i]) && lb[i] < 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(random_f32),   cmocka_unit_test(random_f16),
        cmocka_unit_test(random_bf16),  cmocka_unit_test(workspace),
        cmocka_unit_test(select_slice), cmocka_unit_test(bad_inputs),
        cmocka_unit_test(empty_rows)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
