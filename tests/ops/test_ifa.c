/* SPDX-License-Identifier: Apache-2.0 */
/* incre_flash_attention against a float64 naive reference written here, on randomised cases
 * covering every feature and their combinations (GQA, lengths, mask, pse, int8 K/V, int8
 * output, paged caches in both layouts with shuffled pages, per-batch K/V lists, left
 * padding, strided views, every layout), thread-count determinism, and every validation
 * error with its message. */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reliability.h"
#include "test_util.h"

/* ---- a random case, held logically ------------------------------------------------------ */

enum { KV_BATCH = 0, KV_PAGED3 = 1, KV_PAGED4 = 2, KV_LIST = 3 };

typedef struct icase {
    int B, N, kvN, D, S; /* S: the key's S (batch tensor) / the longest list entry */
    nsa_layout layout;
    nsa_dtype dt;
    int kv_form;    /* KV_* */
    int block_size; /* paged */
    int int8;       /* 0 none, 1 per tensor, 2 per channel */
    int aq_offset;  /* antiquant offset present */
    int quant;      /* 0 none, 1 per tensor, 2 per channel */
    int q_offset;   /* quant_offset2 present */
    int mask;       /* atten_mask: 0 none, 1 u8 (B,1,1,S), 2 i8 (B,S), 3 bool (B,1,S) */
    int pse;        /* 0 none, 1 batch-broadcast (1,N,1,S), 2 (B,N,1,S) */
    int asl;        /* 0 none, 1 one broadcast value, 2 one per batch */
    int pad;        /* left padding: -1 none, else the value */
    int strided;    /* views with channel stride 2 and padded rows */
    int f32_out;
} icase;

typedef struct idata {
    icase c;
    int G, Sm;   /* mask / pse length */
    int s_b[16]; /* per-batch S of the list form */
    int64_t lens[16];
    float *q;     /* [B][N][D], rounded to dt */
    float *k, *v; /* [B][kvN][S][D]: dt-rounded floats, or int8 values */
    float aqs[2][4096], aqo[2][4096]; /* [2][kvN*D] */
    uint8_t *mask; /* [B][Sm] */
    float *pse;    /* [PB][N][Sm] */
    float qs[16384], qo[16384]; /* N*D */
    int nblk, maxb; /* paged: cache blocks, blocks per sequence */
    int32_t *table; /* [B][maxb] */
} idata;

static float rnd_dt(test_rng *r, float lo, float hi, nsa_dtype dt)
{
    float x = test_rng_uniform(r, lo, hi);
    test_round_to_dtype(&x, 1, dt);
    return x;
}

/* Position range of batch b as the op's semantics define it; len 0 = zero output. */
static void ref_range(const idata *g, int b, int64_t *start, int64_t *len)
{
    const icase *c = &g->c;
    int64_t l = g->lens[b], s0 = 0;
    if (c->pad >= 0) {
        s0 = c->S - c->pad - l;
        if (s0 < 0)
            l = 0;
    }
    *start = s0 < 0 ? 0 : s0;
    *len = l;
}

static double kval(const idata *g, int side, int b, int n2, int s, int d)
{
    const icase *c = &g->c;
    const float *src = side ? g->v : g->k;
    double x = src[(((size_t)b * c->kvN + n2) * c->S + s) * c->D + d];
    if (c->int8) {
        int ch = c->int8 == 2 ? n2 * c->D + d : 0;
        x = (x + (c->aq_offset ? g->aqo[side][ch] : 0.0)) * g->aqs[side][ch];
    }
    return x;
}

/* Float64 reference: out[b][n][d] before the final cast. */
/* out: the attention output in float64; mag: sum_j p_j |v_j| per element, the scale of the
 * fp32 rounding error of a weighted sum whose terms cancel. */
static void reference(const idata *g, double *out, double *mag)
{
    const icase *c = &g->c;
    double *x = (double *)malloc(sizeof(double) * (size_t)(c->S + 1));
    int b, n, d, j;
    const float scale = (float)(1.0 / sqrt((double)c->D));
    for (b = 0; b < c->B; b++)
        for (n = 0; n < c->N; n++) {
            int n2 = n / g->G;
            int64_t start, len;
            double mx = -INFINITY, sum = 0.0;
            double *o = out + ((size_t)b * c->N + n) * c->D;
            double *m = mag + ((size_t)b * c->N + n) * c->D;
            ref_range(g, b, &start, &len);
            for (d = 0; d < c->D; d++)
                o[d] = m[d] = 0.0;
            if (len == 0)
                continue;
            for (j = 0; j < len; j++) {
                int s = (int)start + j;
                double dot = 0.0;
                for (d = 0; d < c->D; d++)
                    dot +=
                        (double)g->q[((size_t)b * c->N + n) * c->D + d] * kval(g, 0, b, n2, s, d);
                x[j] = (double)scale * dot;
                if (c->pse)
                    x[j] += g->pse[((size_t)(c->pse == 1 ? 0 : b) * c->N + n) * g->Sm + s];
                if (c->mask && g->mask[(size_t)b * g->Sm + s])
                    x[j] = -1e12;
                mx = x[j] > mx ? x[j] : mx;
            }
            for (j = 0; j < len; j++) {
                x[j] = exp(x[j] - mx);
                sum += x[j];
            }
            for (j = 0; j < len; j++)
                for (d = 0; d < c->D; d++) {
                    const double pv = x[j] / sum * kval(g, 1, b, n2, (int)start + j, d);
                    o[d] += pv;
                    m[d] += fabs(pv);
                }
        }
    free(x);
}

/* ---- physical tensors ------------------------------------------------------------------- */

typedef struct view {
    void *buf;
    nsa_tensor t;
} view;

/* A view of `shape` in `dt`; strided: channels 2 apart and 3 spare elements per row. */
static void make_view(view *v, nsa_dtype dt, int ndim, const int64_t *shape, int strided)
{
    int64_t stride[4], span = 1, size;
    int i;
    for (i = ndim - 1; i >= 0; i--) {
        int64_t step = (i == ndim - 1 && strided) ? 2 : 1;
        stride[i] = span * step;
        span = stride[i] * (shape[i] > 0 ? shape[i] : 1) + (strided && i == ndim - 1 ? 3 : 0);
    }
    size = span * (ndim > 0 ? 1 : 1);
    v->buf = calloc((size_t)size + 1, nsa_dtype_size(dt));
    assert_non_null(v->buf);
    v->t = nsa_tensor_strided(v->buf, dt, ndim, shape, stride);
}

static void put(const view *v, const int64_t *idx, double x)
{
    const nsa_tensor *t = &v->t;
    int64_t off = 0;
    int i;
    for (i = 0; i < t->ndim; i++)
        off += idx[i] * t->stride[i];
    switch (t->dtype) {
    case NSA_DTYPE_F32: ((float *)t->data)[off] = (float)x; break;
    case NSA_DTYPE_F16:
        ((uint16_t *)t->data)[off] = nsa_f32_to_f16((float)x, NSA_ROUND_NEAREST_EVEN);
        break;
    case NSA_DTYPE_BF16:
        ((uint16_t *)t->data)[off] = nsa_f32_to_bf16((float)x, NSA_ROUND_NEAREST_EVEN);
        break;
    case NSA_DTYPE_I32: ((int32_t *)t->data)[off] = (int32_t)x; break;
    default: ((int8_t *)t->data)[off] = (int8_t)x; break;
    }
}

static double get(const view *v, const int64_t *idx)
{
    const nsa_tensor *t = &v->t;
    int64_t off = 0;
    int i;
    for (i = 0; i < t->ndim; i++)
        off += idx[i] * t->stride[i];
    switch (t->dtype) {
    case NSA_DTYPE_F32: return ((float *)t->data)[off];
    case NSA_DTYPE_F16: return nsa_f16_to_f32(((uint16_t *)t->data)[off]);
    case NSA_DTYPE_BF16: return nsa_bf16_to_f32(((uint16_t *)t->data)[off]);
    default: return ((int8_t *)t->data)[off];
    }
}

/* Query-layout shape and the index of (b, n, d). */
static int q_shape(const icase *c, int64_t *shape)
{
    shape[0] = c->B;
    if (c->layout == NSA_LAYOUT_BSH) {
        shape[1] = 1;
        shape[2] = (int64_t)c->N * c->D;
        return 3;
    }
    shape[1] = c->layout == NSA_LAYOUT_BNSD ? c->N : 1;
    shape[2] = c->layout == NSA_LAYOUT_BNSD ? 1 : c->N;
    shape[3] = c->D;
    return 4;
}

static void q_index(const icase *c, int b, int n, int d, int64_t *idx)
{
    idx[0] = b;
    if (c->layout == NSA_LAYOUT_BSH) {
        idx[1] = 0;
        idx[2] = (int64_t)n * c->D + d;
    } else if (c->layout == NSA_LAYOUT_BNSD) {
        idx[1] = n;
        idx[2] = 0;
        idx[3] = d;
    } else {
        idx[1] = 0;
        idx[2] = n;
        idx[3] = d;
    }
}

/* K/V batch-tensor shape (batch dim nb, length s) and the index of (b, n2, s, d). */
static int kv_shape(const icase *c, int64_t nb, int64_t s, int64_t *shape)
{
    shape[0] = nb;
    if (c->layout == NSA_LAYOUT_BSH) {
        shape[1] = s;
        shape[2] = (int64_t)c->kvN * c->D;
        return 3;
    }
    shape[1] = c->layout == NSA_LAYOUT_BNSD ? c->kvN : s;
    shape[2] = c->layout == NSA_LAYOUT_BNSD ? s : c->kvN;
    shape[3] = c->D;
    return 4;
}

static void kv_index(const icase *c, int64_t b, int n2, int64_t s, int d, int64_t *idx)
{
    idx[0] = b;
    if (c->layout == NSA_LAYOUT_BSH) {
        idx[1] = s;
        idx[2] = (int64_t)n2 * c->D + d;
    } else if (c->layout == NSA_LAYOUT_BNSD) {
        idx[1] = n2;
        idx[2] = s;
        idx[3] = d;
    } else {
        idx[1] = s;
        idx[2] = n2;
        idx[3] = d;
    }
}

/* ---- case generation -------------------------------------------------------------------- */

static void gen(idata *g, const icase *c, uint64_t seed)
{
    test_rng r;
    int b, i, side, smin;
    nsa_dtype kdt = c->int8 ? NSA_DTYPE_I8 : c->dt;
    size_t kvn = (size_t)c->B * c->kvN * c->S * c->D;
    memset(g, 0, sizeof *g);
    assert_true(c->N * c->D <= 16384 && c->kvN * c->D <= 4096 && c->B <= 16);
    g->c = *c;
    g->G = c->N / c->kvN;
    test_rng_seed(&r, seed);
    for (b = 0; b < c->B; b++) {
        g->s_b[b] = c->kv_form == KV_LIST ? (int)test_rng_int(&r, 1, c->S) : c->S;
        if (c->kv_form == KV_LIST && b == 0)
            g->s_b[b] = c->S; /* the longest */
    }
    smin = c->S;
    for (b = 0; b < c->B; b++)
        smin = g->s_b[b] < smin ? g->s_b[b] : smin;
    for (b = 0; b < c->B; b++) {
        int64_t cap = g->s_b[b];
        if (c->asl == 1) /* one length for every batch: at most the shortest S */
            g->lens[b] = b == 0 ? test_rng_int(&r, 0, smin) : g->lens[0];
        else if (c->asl == 2)
            g->lens[b] = test_rng_int(&r, 0, cap);
        else
            g->lens[b] = cap;
    }
    if (c->asl == 2 && c->B > 1)
        g->lens[1] = 0; /* always one empty batch */
    g->q = (float *)malloc(sizeof(float) * (size_t)c->B * c->N * c->D);
    g->k = (float *)calloc(kvn + 1, sizeof(float));
    g->v = (float *)calloc(kvn + 1, sizeof(float));
    for (i = 0; i < c->B * c->N * c->D; i++)
        g->q[i] = rnd_dt(&r, -1.0f, 1.0f, c->dt);
    for (i = 0; i < (int)kvn; i++) {
        if (kdt == NSA_DTYPE_I8) {
            g->k[i] = (float)test_rng_int(&r, -128, 127);
            g->v[i] = (float)test_rng_int(&r, -128, 127);
        } else {
            g->k[i] = rnd_dt(&r, -1.5f, 1.5f, kdt);
            g->v[i] = rnd_dt(&r, -1.0f, 1.0f, kdt);
        }
    }
    for (side = 0; side < 2; side++)
        for (i = 0; i < c->kvN * c->D; i++) {
            g->aqs[side][i] = rnd_dt(&r, 0.002f, 0.02f, c->dt);
            g->aqo[side][i] = rnd_dt(&r, -4.0f, 4.0f, c->dt);
        }
    g->Sm = c->S + 3;
    if (c->kv_form == KV_PAGED3 || c->kv_form == KV_PAGED4) {
        g->maxb = (c->S + c->block_size - 1) / c->block_size;
        g->Sm = g->maxb * c->block_size;
    }
    g->mask = (uint8_t *)calloc((size_t)c->B * g->Sm, 1);
    for (i = 0; i < c->B * g->Sm; i++)
        g->mask[i] = test_rng_int(&r, 0, 3) == 0;
    if (c->mask && c->B > 2) /* one fully masked batch: its row is the mean of V */
        memset(g->mask + 2 * (size_t)g->Sm, 1, (size_t)g->Sm);
    g->pse = (float *)malloc(sizeof(float) * (size_t)c->B * c->N * g->Sm);
    for (i = 0; i < c->B * c->N * g->Sm; i++)
        g->pse[i] = rnd_dt(&r, -2.0f, 2.0f, c->dt);
    for (i = 0; i < c->N * c->D; i++) {
        g->qs[i] = test_rng_uniform(&r, 50.0f, 300.0f);
        g->qo[i] = test_rng_uniform(&r, -20.0f, 20.0f);
    }
    if (g->maxb) { /* shuffled pages, 3 spare ones */
        int *perm;
        g->nblk = c->B * g->maxb + 3;
        perm = (int *)malloc(sizeof(int) * (size_t)g->nblk);
        for (i = 0; i < g->nblk; i++)
            perm[i] = i;
        for (i = g->nblk - 1; i > 0; i--) {
            int j = (int)test_rng_int(&r, 0, i), t = perm[i];
            perm[i] = perm[j];
            perm[j] = t;
        }
        g->table = (int32_t *)malloc(sizeof(int32_t) * (size_t)c->B * g->maxb);
        for (i = 0; i < c->B * g->maxb; i++)
            g->table[i] = perm[i];
        free(perm);
    }
}

static void free_data(idata *g)
{
    free(g->q);
    free(g->k);
    free(g->v);
    free(g->mask);
    free(g->pse);
    free(g->table);
}

/* Every tensor of a call. */
typedef struct call {
    view q, k, v, kl[16], vl[16], mask, pse, aqs, aqo, bt, qs, qo, out;
    nsa_tensor klist[16], vlist[16];
    nsa_ifa_optional opt;
    nsa_ifa_params prm;
    nsa_dtype odt;
} call;

static void build(call *cl, const idata *g)
{
    const icase *c = &g->c;
    nsa_dtype kdt = c->int8 ? NSA_DTYPE_I8 : c->dt;
    int64_t shape[4], idx[4];
    int nd, b, n, d, s, i, side;
    memset(cl, 0, sizeof *cl);
    cl->prm = nsa_ifa_params_default();
    cl->prm.num_heads = c->N;
    cl->prm.num_key_value_heads = c->kvN == c->N ? 0 : c->kvN;
    cl->prm.input_layout = c->layout;
    cl->prm.scale_value = 1.0 / sqrt((double)c->D);
    if (c->asl) {
        cl->prm.actual_seq_lengths = g->lens;
        cl->prm.actual_seq_lengths_count = c->asl == 1 ? 1 : c->B;
    }
    if (c->pad >= 0) {
        cl->prm.has_kv_padding_size = 1;
        cl->prm.kv_padding_size = c->pad;
    }
    cl->opt = (nsa_ifa_optional)NSA_IFA_OPTIONAL_INIT;

    nd = q_shape(c, shape);
    make_view(&cl->q, c->dt, nd, shape, c->strided);
    for (b = 0; b < c->B; b++)
        for (n = 0; n < c->N; n++)
            for (d = 0; d < c->D; d++) {
                q_index(c, b, n, d, idx);
                put(&cl->q, idx, g->q[((size_t)b * c->N + n) * c->D + d]);
            }
    cl->odt = c->quant ? NSA_DTYPE_I8 : c->f32_out ? NSA_DTYPE_F32 : c->dt;
    make_view(&cl->out, cl->odt, nd, shape, c->strided);

    if (c->kv_form == KV_BATCH || c->kv_form == KV_LIST) {
        int lists = c->kv_form == KV_LIST ? c->B : 1;
        for (i = 0; i < lists; i++) {
            view *kv = c->kv_form == KV_LIST ? &cl->kl[i] : &cl->k;
            view *vv = c->kv_form == KV_LIST ? &cl->vl[i] : &cl->v;
            int nb = c->kv_form == KV_LIST ? 1 : c->B;
            int slen = c->kv_form == KV_LIST ? g->s_b[i] : c->S;
            nd = kv_shape(c, nb, slen, shape);
            make_view(kv, kdt, nd, shape, c->strided);
            make_view(vv, kdt, nd, shape, c->strided);
            for (b = 0; b < nb; b++) {
                int lb = c->kv_form == KV_LIST ? i : b;
                for (n = 0; n < c->kvN; n++)
                    for (s = 0; s < slen; s++)
                        for (d = 0; d < c->D; d++) {
                            size_t at = (((size_t)lb * c->kvN + n) * c->S + s) * c->D + d;
                            kv_index(c, b, n, s, d, idx);
                            put(kv, idx, g->k[at]);
                            put(vv, idx, g->v[at]);
                        }
            }
            cl->klist[i] = kv->t;
            cl->vlist[i] = vv->t;
        }
    } else {
        int bs = c->block_size;
        test_rng r;
        if (c->kv_form == KV_PAGED3) {
            shape[0] = g->nblk;
            shape[1] = bs;
            shape[2] = (int64_t)c->kvN * c->D;
            nd = 3;
        } else {
            shape[0] = g->nblk;
            shape[1] = c->kvN;
            shape[2] = bs;
            shape[3] = c->D;
            nd = 4;
        }
        make_view(&cl->k, kdt, nd, shape, c->strided);
        make_view(&cl->v, kdt, nd, shape, c->strided);
        /* garbage in every slot first: unused pages and page tails must not be read */
        test_rng_seed(&r, 99);
        for (i = 0; i < g->nblk; i++)
            for (n = 0; n < c->kvN; n++)
                for (s = 0; s < bs; s++)
                    for (d = 0; d < c->D; d++) {
                        int64_t ix[4] = {i, s, (int64_t)n * c->D + d, 0};
                        if (nd == 4) {
                            ix[1] = n;
                            ix[2] = s;
                            ix[3] = d;
                        }
                        put(&cl->k, ix, kdt == NSA_DTYPE_I8 ? 100.0 : 1e4);
                        put(&cl->v, ix, kdt == NSA_DTYPE_I8 ? 100.0 : 1e4);
                    }
        for (b = 0; b < c->B; b++)
            for (s = 0; s < c->S; s++) {
                int page = g->table[b * g->maxb + s / bs], t = s % bs;
                for (n = 0; n < c->kvN; n++)
                    for (d = 0; d < c->D; d++) {
                        size_t at = (((size_t)b * c->kvN + n) * c->S + s) * c->D + d;
                        int64_t ix[4] = {page, t, (int64_t)n * c->D + d, 0};
                        if (nd == 4) {
                            ix[1] = n;
                            ix[2] = t;
                            ix[3] = d;
                        }
                        put(&cl->k, ix, g->k[at]);
                        put(&cl->v, ix, g->v[at]);
                    }
            }
        shape[0] = c->B;
        shape[1] = g->maxb;
        make_view(&cl->bt, NSA_DTYPE_I32, 2, shape, c->strided);
        for (b = 0; b < c->B; b++)
            for (i = 0; i < g->maxb; i++) {
                int64_t ix[2] = {b, i};
                put(&cl->bt, ix, g->table[b * g->maxb + i]);
            }
        cl->opt.block_table = &cl->bt.t;
        cl->prm.block_size = bs;
    }
    if (c->mask) {
        static const nsa_dtype mdt[4] = {NSA_DTYPE_U8, NSA_DTYPE_U8, NSA_DTYPE_I8, NSA_DTYPE_BOOL};
        int mrank = c->mask == 1 ? 4 : c->mask == 2 ? 2 : 3;
        shape[0] = c->B;
        shape[1] = 1;
        shape[2] = 1;
        shape[mrank - 1] = g->Sm;
        make_view(&cl->mask, mdt[c->mask], mrank, shape, c->strided);
        for (b = 0; b < c->B; b++)
            for (s = 0; s < g->Sm; s++) {
                int64_t ix[4] = {b, 0, 0, 0};
                int on = g->mask[(size_t)b * g->Sm + s];
                ix[mrank - 1] = s;
                /* any nonzero byte masks (bool holds 1) */
                put(&cl->mask, ix, on ? (c->mask == 3 || s % 2 ? 1 : c->mask == 2 ? -3 : 7) : 0);
            }
        cl->opt.atten_mask = &cl->mask.t;
    }
    if (c->pse) {
        int pb = c->pse == 1 ? 1 : c->B;
        shape[0] = pb;
        shape[1] = c->N;
        shape[2] = 1;
        shape[3] = g->Sm;
        make_view(&cl->pse, c->dt, 4, shape, c->strided);
        for (b = 0; b < pb; b++)
            for (n = 0; n < c->N; n++)
                for (s = 0; s < g->Sm; s++) {
                    int64_t ix[4] = {b, n, 0, s};
                    put(&cl->pse, ix, g->pse[((size_t)b * c->N + n) * g->Sm + s]);
                }
        cl->opt.pse_shift = &cl->pse.t;
    }
    if (c->int8) {
        /* per channel as (2, kvN, 1, D) in BNSD, (2, kvN*D) otherwise */
        if (c->int8 == 1) {
            shape[0] = 2;
            nd = 1;
        } else if (c->layout == NSA_LAYOUT_BNSD) {
            shape[0] = 2;
            shape[1] = c->kvN;
            shape[2] = 1;
            shape[3] = c->D;
            nd = 4;
        } else {
            shape[0] = 2;
            shape[1] = (int64_t)c->kvN * c->D;
            nd = 2;
        }
        make_view(&cl->aqs, c->dt, nd, shape, c->strided);
        make_view(&cl->aqo, c->dt, nd, shape, c->strided);
        for (side = 0; side < 2; side++)
            for (i = 0; i < (c->int8 == 1 ? 1 : c->kvN * c->D); i++) {
                int64_t ix[4] = {side, 0, 0, 0};
                if (nd == 2)
                    ix[1] = i;
                else if (nd == 4) {
                    ix[1] = i / c->D;
                    ix[3] = i % c->D;
                }
                put(&cl->aqs, ix, g->aqs[side][i]);
                put(&cl->aqo, ix, g->aqo[side][i]);
            }
        cl->opt.antiquant_scale = &cl->aqs.t;
        cl->opt.antiquant_offset = c->aq_offset ? &cl->aqo.t : NULL;
    }
    if (c->quant) {
        if (c->quant == 1) {
            shape[0] = 1;
            nd = 1;
        } else {
            shape[0] = c->N;
            shape[1] = c->D;
            nd = 2;
        }
        make_view(&cl->qs, NSA_DTYPE_F32, nd, shape, c->strided);
        make_view(&cl->qo, NSA_DTYPE_F32, nd, shape, c->strided);
        for (i = 0; i < (c->quant == 1 ? 1 : c->N * c->D); i++) {
            int64_t ix[2] = {c->quant == 1 ? i : i / c->D, i % c->D};
            put(&cl->qs, ix, g->qs[i]);
            put(&cl->qo, ix, g->qo[i]);
        }
        cl->opt.quant_scale2 = &cl->qs.t;
        cl->opt.quant_offset2 = c->q_offset ? &cl->qo.t : NULL;
    }
}

static void free_call(call *cl)
{
    int i;
    free(cl->q.buf);
    free(cl->k.buf);
    free(cl->v.buf);
    for (i = 0; i < 16; i++) {
        free(cl->kl[i].buf);
        free(cl->vl[i].buf);
    }
    free(cl->mask.buf);
    free(cl->pse.buf);
    free(cl->aqs.buf);
    free(cl->aqo.buf);
    free(cl->bt.buf);
    free(cl->qs.buf);
    free(cl->qo.buf);
    free(cl->out.buf);
}

static nsa_status run_call(call *cl, const icase *c, nsa_context *ctx)
{
    if (c->kv_form == KV_LIST)
        return nsa_incre_flash_attention_kv_list(ctx, &cl->q.t, cl->klist, cl->vlist, c->B,
                                                 &cl->opt, &cl->prm, &cl->out.t);
    return nsa_incre_flash_attention(ctx, &cl->q.t, &cl->k.t, &cl->v.t, &cl->opt, &cl->prm,
                                     &cl->out.t);
}

/* The context check_case runs on (NULL: the default one). */
static nsa_context *g_check_ctx;

static void check_case(const icase *c, uint64_t seed)
{
    idata g;
    call cl;
    double *ref, *mag;
    int b, n, d;
    nsa_status st;
    char what[160];
    gen(&g, c, seed);
    build(&cl, &g);
    ref = (double *)malloc(sizeof(double) * (size_t)c->B * c->N * c->D);
    mag = (double *)malloc(sizeof(double) * (size_t)c->B * c->N * c->D);
    reference(&g, ref, mag);
    st = run_call(&cl, c, g_check_ctx);
    snprintf(what, sizeof what,
             "seed %llu B%d N%d kvN%d D%d S%d layout %s %s form %d bs %d int8 %d quant %d mask "
             "%d pse %d asl %d pad %d strided %d",
             (unsigned long long)seed, c->B, c->N, c->kvN, c->D, c->S, nsa_layout_name(c->layout),
             nsa_dtype_name(c->dt), c->kv_form, c->block_size, c->int8, c->quant, c->mask, c->pse,
             c->asl, c->pad, c->strided);
    if (st != NSA_SUCCESS)
        fail_msg("%s: %s: %s", what, nsa_status_string(st), nsa_last_error());
    for (b = 0; b < c->B; b++)
        for (n = 0; n < c->N; n++)
            for (d = 0; d < c->D; d++) {
                int64_t idx[4];
                double want = ref[((size_t)b * c->N + n) * c->D + d];
                double got;
                q_index(c, b, n, d, idx);
                got = get(&cl.out, idx);
                if (c->quant) {
                    int ch = c->quant == 2 ? n * c->D + d : 0;
                    double y = want * g.qs[ch] + (c->q_offset ? g.qo[ch] : 0.0);
                    y = nearbyint(y);
                    y = y > 127 ? 127 : y < -128 ? -128 : y;
                    /* within 1: fp32 vs float64 may round to either side of a .5 */
                    if (fabs(got - y) > 1.0)
                        fail_msg("%s: out[%d][%d][%d] = %g, want %g", what, b, n, d, got, y);
                } else if (cl.odt == NSA_DTYPE_F32) {
                    /* fp32 arithmetic over <= a few hundred keys: 1e-5 relative + 1e-6 abs;
                     * int8 dequant products lose a little more */
                    if (fabs(got - want) > 1e-6 + 1e-5 * fabs(want))
                        fail_msg("%s: out[%d][%d][%d] = %.9g, want %.9g", what, b, n, d, got, want);
                } else {
                    /* f16/bf16: within 2 ulps of the dtype (the final rounding is 0.5), or,
                     * where the terms cancel, within the fp32 arithmetic's own error: 1e-5 of
                     * sum p|v| (scores rounded to fp32 move p by ~1e-6; sums of <= 4096 terms),
                     * 400 times below a bf16 ulp of that sum */
                    double u = test_ulp_diff((float)got, want, c->dt);
                    size_t at = ((size_t)b * c->N + n) * c->D + d;
                    if (u > 2.0 && fabs(got - want) > 1e-5 * mag[at])
                        fail_msg("%s: out[%d][%d][%d] = %.9g, want %.9g (%.2f ulps)", what, b, n, d,
                                 got, want, u);
                }
            }
    free(ref);
    free(mag);
    free_call(&cl);
    free_data(&g);
}

static icase base_case(void)
{
    icase c;
    memset(&c, 0, sizeof c);
    c.B = 2;
    c.N = 4;
    c.kvN = 2;
    c.D = 32;
    c.S = 77;
    c.layout = NSA_LAYOUT_BNSD;
    c.dt = NSA_DTYPE_F16;
    c.pad = -1;
    return c;
}

/* ---- feature tests ---------------------------------------------------------------------- */

static void each_layout_and_dtype(void **state)
{
    static const nsa_layout layouts[] = {NSA_LAYOUT_BSH, NSA_LAYOUT_BNSD, NSA_LAYOUT_BSND};
    static const nsa_dtype dts[] = {NSA_DTYPE_F16, NSA_DTYPE_BF16, NSA_DTYPE_F32};
    int i, j;
    (void)state;
    for (i = 0; i < 3; i++)
        for (j = 0; j < 3; j++) {
            icase c = base_case();
            c.layout = layouts[i];
            c.dt = dts[j];
            c.N = 8;
            c.kvN = i == 0 ? 8 : 2; /* MHA and GQA */
            check_case(&c, 10 + (uint64_t)(i * 3 + j));
        }
}

static void features_alone(void **state)
{
    int f;
    (void)state;
    for (f = 0; f < 14; f++) {
        icase c = base_case();
        c.B = 3;
        switch (f) {
        case 0: c.mask = 1; break;
        case 1: c.pse = 1; break;
        case 2: c.pse = 2; break;
        case 3: c.asl = 1; break;
        case 4: c.asl = 2; break;
        case 5: c.int8 = 1; break;
        case 6:
            c.int8 = 2;
            c.aq_offset = 1;
            break;
        case 7: c.quant = 1; break;
        case 8:
            c.quant = 2;
            c.q_offset = 1;
            c.dt = NSA_DTYPE_BF16;
            break;
        case 9:
            c.kv_form = KV_PAGED3;
            c.block_size = 16;
            c.asl = 2;
            break;
        case 10:
            c.kv_form = KV_PAGED4;
            c.block_size = 32;
            c.asl = 2;
            break;
        case 11: c.kv_form = KV_LIST; break;
        case 12:
            c.asl = 2;
            c.pad = 9;
            break;
        default: c.strided = 1; break;
        }
        check_case(&c, 100 + (uint64_t)f);
    }
}

static void combinations(void **state)
{
    int f;
    (void)state;
    for (f = 0; f < 8; f++) {
        icase c = base_case();
        c.B = 3;
        switch (f) {
        case 0: /* paged + int8 + GQA + mask */
            c.N = 8;
            c.kvN = 2;
            c.kv_form = KV_PAGED3;
            c.block_size = 32;
            c.asl = 2;
            c.int8 = 2;
            c.aq_offset = 1;
            c.mask = 1;
            c.layout = NSA_LAYOUT_BSH;
            break;
        case 1: /* tensor list + pse */
            c.kv_form = KV_LIST;
            c.pse = 2;
            c.dt = NSA_DTYPE_BF16;
            break;
        case 2: /* 4-D paged + int8 per tensor + quant out + pse + strided */
            c.kv_form = KV_PAGED4;
            c.block_size = 16;
            c.asl = 1;
            c.int8 = 1;
            c.aq_offset = 1;
            c.quant = 2;
            c.pse = 1;
            c.strided = 1;
            break;
        case 3: /* left padding + mask + pse + int8 + quant per tensor */
            c.asl = 2;
            c.pad = 5;
            c.mask = 1;
            c.pse = 2;
            c.int8 = 2;
            c.quant = 1;
            c.q_offset = 1;
            c.layout = NSA_LAYOUT_BSND;
            break;
        case 4: /* list + int8 + mask + lengths, BSH */
            c.kv_form = KV_LIST;
            c.int8 = 2;
            c.mask = 1;
            c.asl = 1;
            c.layout = NSA_LAYOUT_BSH;
            break;
        case 5: /* padding larger than S - len: negative start for some batches */
            c.asl = 2;
            c.pad = 60;
            c.strided = 1;
            break;
        case 6: /* G = 1 at D = 128, strided paged bf16 */
            c.N = 2;
            c.kvN = 2;
            c.D = 128;
            c.kv_form = KV_PAGED3;
            c.block_size = 48;
            c.asl = 2;
            c.dt = NSA_DTYPE_BF16;
            c.strided = 1;
            break;
        default: /* long sequence, B = 1: split over chunks and merged */
            c.B = 1;
            c.N = 8;
            c.kvN = 1;
            c.S = 3000;
            c.D = 16;
            c.mask = 1;
            c.pse = 1;
            c.f32_out = 1;
            break;
        }
        check_case(&c, 200 + (uint64_t)f);
    }
}

static void randomized(void **state)
{
    int it;
    test_rng r;
    (void)state;
    test_rng_seed(&r, 4242);
    for (it = 0; it < 40; it++) {
        icase c;
        static const int gs[] = {1, 2, 4, 8};
        static const nsa_layout layouts[] = {NSA_LAYOUT_BSH, NSA_LAYOUT_BNSD, NSA_LAYOUT_BSND};
        memset(&c, 0, sizeof c);
        c.B = (int)test_rng_int(&r, 1, 4);
        c.kvN = (int)test_rng_int(&r, 1, 3);
        c.N = c.kvN * gs[test_rng_int(&r, 0, 3)];
        c.D = (int)(8 * test_rng_int(&r, 1, 8));
        c.S = (int)test_rng_int(&r, 1, 700);
        c.layout = layouts[test_rng_int(&r, 0, 2)];
        c.dt = test_rng_int(&r, 0, 1) ? NSA_DTYPE_F16 : NSA_DTYPE_BF16;
        c.kv_form = (int)test_rng_int(&r, 0, 3);
        if (c.kv_form == KV_PAGED4 && c.layout != NSA_LAYOUT_BNSD)
            c.kv_form = KV_PAGED3;
        c.block_size = (int)(16 * test_rng_int(&r, 1, 8));
        c.int8 = (int)test_rng_int(&r, 0, 2);
        c.aq_offset = (int)test_rng_int(&r, 0, 1);
        c.quant = (int)test_rng_int(&r, 0, 2);
        c.q_offset = (int)test_rng_int(&r, 0, 1);
        c.mask = (int)test_rng_int(&r, 0, 3);
        c.pse = (int)test_rng_int(&r, 0, 2);
        c.asl = (int)test_rng_int(&r, 0, 2);
        if (c.kv_form == KV_PAGED3 || c.kv_form == KV_PAGED4)
            c.asl = c.asl ? c.asl : 2;
        c.pad = -1;
        if (c.kv_form == KV_BATCH && c.asl && test_rng_int(&r, 0, 2) == 0)
            c.pad = (int)test_rng_int(&r, 0, c.S);
        c.strided = (int)test_rng_int(&r, 0, 1);
        c.f32_out = !c.quant && test_rng_int(&r, 0, 3) == 0;
        check_case(&c, 1000 + (uint64_t)it);
    }
}

/* ---- determinism, concurrency, allocation failures -------------------------------------- */

typedef struct rel_user {
    icase c;
    idata g;
    call cl;
} rel_user;

static nsa_status rel_run(void *user, nsa_context *ctx, void *out, size_t out_size)
{
    rel_user *u = (rel_user *)user;
    call local = u->cl;
    int64_t shape[4];
    int nd = q_shape(&u->c, shape);
    nsa_status st;
    /* a private contiguous output over `out` */
    assert_int_equal(out_size, (size_t)(u->c.B * u->c.N * u->c.D) * nsa_dtype_size(local.odt));
    local.out.t = nsa_tensor_contiguous(out, local.odt, nd, shape);
    if (local.opt.block_table)
        local.opt.block_table = &local.bt.t;
    st = run_call(&local, &u->c, ctx);
    return st;
}

/* Thread counts, concurrency and allocation failures on a paged int8 case where one thread runs
 * the kv heads in lockstep and more threads run them alone: G = 2 (the per-head loops in
 * lockstep pairs or fours) and G = 4 at D = 128 (a few keys of each head in turn). */
static void reliability_case(int wide)
{
    rel_user *u = (rel_user *)calloc(1, sizeof *u);
    rel_op op;
    u->c = base_case();
    u->c.B = 1;
    u->c.N = wide ? 32 : 16;
    u->c.D = wide ? 128 : u->c.D;
    u->c.kvN = 8;  /* 8 or more tasks: kv heads in lockstep on one thread */
    u->c.S = 2500; /* split into chunks */
    u->c.kv_form = KV_PAGED3;
    u->c.block_size = 64;
    u->c.asl = 1;
    u->c.int8 = 2;
    u->c.mask = 1;
    u->c.pse = 1;
    gen(&u->g, &u->c, 77);
    build(&u->cl, &u->g);
    u->cl.opt.block_table = &u->cl.bt.t;
    u->cl.opt.atten_mask = &u->cl.mask.t;
    u->cl.opt.pse_shift = &u->cl.pse.t;
    u->cl.opt.antiquant_scale = &u->cl.aqs.t;
    op.name = "incre_flash_attention";
    op.run = rel_run;
    op.user = u;
    op.out_size = (size_t)(u->c.B * u->c.N * u->c.D) * nsa_dtype_size(u->cl.odt);
    rel_check_thread_counts(&op);
    rel_check_concurrent(&op);
    rel_check_alloc_failures(&op);
    free_call(&u->cl);
    free_data(&u->g);
    free(u);
}

static void reliability(void **state)
{
    (void)state;
    reliability_case(0);
    reliability_case(1);
}

static void workspace_query(void **state)
{
    icase c = base_case();
    idata g;
    call cl;
    size_t size = 0;
    nsa_context *ctx = NULL;
    void *ws = NULL;
    (void)state;
    c.S = 1500;
    gen(&g, &c, 5);
    build(&cl, &g);
    assert_int_equal(nsa_context_create(NULL, &ctx), NSA_SUCCESS);
    assert_int_equal(nsa_incre_flash_attention_workspace_size(ctx, &cl.q.t, &cl.k.t, &cl.v.t,
                                                              &cl.opt, &cl.prm, &cl.out.t, &size),
                     NSA_SUCCESS);
    assert_true(size > 0);
    assert_int_equal(posix_memalign(&ws, 64, size), 0); /* workspaces are 64-byte aligned */
    assert_int_equal(nsa_context_set_workspace(ctx, ws, size - 1), NSA_SUCCESS);
    assert_int_equal(run_call(&cl, &c, ctx), NSA_ERR_WORKSPACE_TOO_SMALL);
    assert_int_equal(nsa_context_set_workspace(ctx, ws, size), NSA_SUCCESS);
    assert_int_equal(run_call(&cl, &c, ctx), NSA_SUCCESS);
    nsa_context_destroy(ctx);
    free(ws);
    free_call(&cl);
    free_data(&g);
}

/* ---- validation: every error, with its status and message --------------------------------- */

enum {
    K_BASE,
    K_BSH,
    K_PAGED,
    K_PAGED4_BSH,
    K_INT8,
    K_QUANT,
    K_LIST,
    K_D8,
    K_PAGED_INT8,
    K_QUANT_PAGED,
    K_PAGED4
};

static icase kind_case(int kind)
{
    icase c = base_case();
    c.B = 3;
    c.D = 16;
    c.S = 40;
    switch (kind) {
    case K_BASE:
        c.mask = 1;
        c.pse = 2;
        c.asl = 2;
        break;
    case K_BSH: c.layout = NSA_LAYOUT_BSH; break;
    case K_PAGED:
        c.kv_form = KV_PAGED3;
        c.block_size = 16;
        c.asl = 2;
        c.mask = 1;
        break;
    case K_PAGED4_BSH:
        c.kv_form = KV_PAGED4;
        c.block_size = 16;
        c.asl = 2;
        c.layout = NSA_LAYOUT_BSH;
        break;
    case K_INT8:
        c.int8 = 2;
        c.aq_offset = 1;
        break;
    case K_QUANT:
        c.quant = 2;
        c.q_offset = 1;
        c.dt = NSA_DTYPE_BF16;
        break;
    case K_LIST:
        c.kv_form = KV_LIST;
        c.asl = 1;
        break;
    case K_D8:
        c.D = 8;
        c.pse = 1;
        break;
    case K_PAGED_INT8:
        c.kv_form = KV_PAGED3;
        c.block_size = 16;
        c.asl = 2;
        c.int8 = 1;
        break;
    case K_PAGED4:
        c.kv_form = KV_PAGED4;
        c.block_size = 16;
        c.asl = 2;
        break;
    default: /* K_QUANT_PAGED */
        c.kv_form = KV_PAGED3;
        c.block_size = 16;
        c.asl = 2;
        c.quant = 2;
        break;
    }
    return c;
}

/* What a mutated call passes. */
typedef struct vargs {
    const nsa_tensor *q, *k, *v, *out, *klist, *vlist;
    int64_t count;
    int list;
    int size_null;
} vargs;

typedef struct vcase {
    int kind;
    int id;
    nsa_status status;
    const char *msg;
} vcase;

static int64_t g_bad_lens[4] = {5, 3, 2, 1};
static int32_t g_bad_table[64];
static float g_f32[8];

static void mutate(call *cl, vargs *a, const icase *c, int id)
{
    nsa_ifa_params *p = &cl->prm;
    nsa_ifa_optional *o = &cl->opt;
    nsa_tensor *q = &cl->q.t, *k = &cl->k.t, *v = &cl->v.t, *out = &cl->out.t;
    (void)c;
    switch (id) {
    case 1: p->validation = (nsa_validation)7; break;
    case 2: p->num_heads = 0; break;
    case 3: p->num_key_value_heads = -1; break;
    case 4: p->num_key_value_heads = 8; break;
    case 5: p->num_key_value_heads = 3; break;
    case 6:
        p->num_heads = 130;
        p->num_key_value_heads = 2;
        break;
    case 7: p->input_layout = NSA_LAYOUT_TND; break;
    case 8: p->input_layout = (nsa_layout)99; break;
    case 9: p->scale_value = NAN; break;
    case 10: p->scale_value = 1e300; break;
    case 11: p->inner_precise = 2; break;
    case 12: p->actual_seq_lengths_count = -1; break;
    case 13: p->actual_seq_lengths = NULL; break;
    case 14: a->q = NULL; break;
    case 15: q->dtype = NSA_DTYPE_I8; break;
    case 16: q->dtype = NSA_DTYPE_I32; break;
    case 17:
        p->validation = NSA_VALIDATE_STRICT;
        q->dtype = NSA_DTYPE_F32;
        break;
    case 18: q->shape[0] = 0; break;
    case 19: q->shape[2] = 2; break;
    case 20:
        p->num_heads = 3;
        p->num_key_value_heads = 1;
        break; /* BSH: H = 64 */
    case 21: q->shape[1] = 3; break;
    case 22: q->shape[3] = 70000; break;
    case 23:
        p->validation = NSA_VALIDATE_STRICT;
        q->shape[0] = 70000;
        break;
    case 24:
        p->validation = NSA_VALIDATE_STRICT;
        q->shape[3] = 600;
        break;
    case 25:
        p->validation = NSA_VALIDATE_STRICT;
        q->shape[1] = 300;
        p->num_heads = 300;
        p->num_key_value_heads = 300;
        break;
    case 26: a->k = NULL; break;
    case 27: a->v = NULL; break;
    case 28: k->ndim = 3; break;
    case 29: k->shape[0] = 2; break;
    case 30: k->shape[1] = 3; break;
    case 31: k->shape[3] = 8; break;
    case 32: v->shape[2] = 30; break;
    case 33: v->dtype = NSA_DTYPE_BF16; break;
    case 34:
        k->dtype = NSA_DTYPE_BF16;
        v->dtype = NSA_DTYPE_BF16;
        break;
    case 35: k->shape[2] = 16; break; /* BSH key hidden */
    case 36:
        p->validation = NSA_VALIDATE_STRICT;
        p->actual_seq_lengths_count = 4;
        break;
    case 37: p->actual_seq_lengths_count = 2; break;
    case 38:
        g_bad_lens[0] = -1;
        p->actual_seq_lengths = g_bad_lens;
        break;
    case 39:
        g_bad_lens[0] = 41;
        p->actual_seq_lengths = g_bad_lens;
        break;
    case 40:
        p->actual_seq_lengths = NULL;
        p->actual_seq_lengths_count = 0;
        break;
    case 41:
        g_bad_lens[0] = 49;
        p->actual_seq_lengths = g_bad_lens;
        break;
    case 42: p->has_kv_padding_size = 1; break;
    case 43:
        p->actual_seq_lengths = NULL;
        p->actual_seq_lengths_count = 0;
        p->has_kv_padding_size = 1;
        break;
    case 44:
        g_bad_lens[0] = 30;
        g_bad_lens[1] = 3;
        g_bad_lens[2] = 3;
        p->actual_seq_lengths = g_bad_lens;
        p->has_kv_padding_size = 1;
        p->kv_padding_size = 11;
        p->validation = NSA_VALIDATE_STRICT;
        o->atten_mask = NULL;
        o->pse_shift = NULL;
        break;
    case 45: cl->bt.t.dtype = NSA_DTYPE_I64; break;
    case 46: cl->bt.t.shape[0] = 2; break;
    case 47: cl->bt.t.shape[1] = 0; break;
    case 48: p->block_size = 0; break;
    case 49: p->block_size = (int64_t)1 << 40; break;
    case 50: k->shape[1] = 32; break;
    case 51: k->shape[2] = 16; break;
    case 52: break; /* 4-D cache with a BSH query */
    case 53: k->shape[1] = 1; break;
    case 54: k->shape[2] = 32; break;
    case 55: k->shape[3] = 8; break;
    case 56: k->ndim = 2; break;
    case 57: {
        int i;
        for (i = 0; i < 64; i++)
            g_bad_table[i] = 0;
        g_bad_table[3] = 1000;              /* batch 1, entry 0 */
        p->actual_seq_lengths = g_bad_lens; /* 5, 3, 2: batch 1 reads its entry 0 */
        cl->bt.t = nsa_tensor_contiguous(g_bad_table, NSA_DTYPE_I32, 2, cl->bt.t.shape);
        break;
    }
    case 58:
        p->validation = NSA_VALIDATE_STRICT;
        p->block_size = 8;
        k->shape[1] = 8;
        v->shape[1] = 8;
        break;
    case 59: p->validation = NSA_VALIDATE_STRICT; break; /* int8 cache, block 16 */
    case 60:
        p->validation = NSA_VALIDATE_STRICT;
        cl->bt.t.shape[1] = 16385;
        cl->bt.t.stride[0] = 0;
        break;
    case 61:
        p->validation = NSA_VALIDATE_STRICT;
        k->shape[0] = 5000000;
        v->shape[0] = 5000000;
        o->atten_mask = NULL;
        break;
    case 62:
        p->validation = NSA_VALIDATE_STRICT;
        p->block_size = 16;
        o->atten_mask = NULL;
        o->pse_shift = NULL;
        break;
    case 63:
        p->validation = NSA_VALIDATE_STRICT;
        k->shape[2] = 300000;
        v->shape[2] = 300000;
        o->atten_mask = NULL;
        o->pse_shift = NULL;
        break;
    case 64: cl->mask.t.ndim = 1; break;
    case 65: cl->mask.t.dtype = NSA_DTYPE_F16; break;
    case 66: cl->mask.t.shape[0] = 2; break;
    case 67: cl->mask.t.shape[1] = 2; break;
    case 68:
        cl->mask.t.shape[3] = 10;
        p->actual_seq_lengths = NULL;
        p->actual_seq_lengths_count = 0;
        break;
    case 69:
        p->validation = NSA_VALIDATE_STRICT;
        ((uint8_t *)cl->mask.t.data)[5] = 2;
        o->pse_shift = NULL;
        break;
    case 70:
        p->validation = NSA_VALIDATE_STRICT;
        cl->mask.t.shape[3] = 40;
        break;
    case 71: cl->pse.t.ndim = 3; break;
    case 72: cl->pse.t.dtype = NSA_DTYPE_BF16; break;
    case 73: cl->pse.t.shape[0] = 2; break;
    case 74: cl->pse.t.shape[1] = 3; break;
    case 75: cl->pse.t.shape[2] = 2; break;
    case 76:
        cl->pse.t.shape[3] = 10;
        p->actual_seq_lengths = NULL;
        p->actual_seq_lengths_count = 0;
        o->atten_mask = NULL;
        break;
    case 77:
        p->validation = NSA_VALIDATE_STRICT;
        g_bad_lens[0] = 10;
        g_bad_lens[1] = 10;
        g_bad_lens[2] = 10;
        p->actual_seq_lengths = g_bad_lens;
        o->atten_mask = NULL;
        cl->pse.t.shape[3] = 20;
        break;
    case 78: p->validation = NSA_VALIDATE_STRICT; break; /* D = 8 with pse */
    case 79: o->antiquant_scale = &cl->pse.t; break;     /* f16 K/V with antiquant */
    case 80: o->antiquant_scale = NULL; break;
    case 81: cl->aqs.t.ndim = 0; break;
    case 82: cl->aqs.t.dtype = NSA_DTYPE_BF16; break;
    case 83:
        cl->aqs.t.shape[0] = 1;
        cl->aqo.t.shape[0] = 1;
        break;
    case 84: cl->aqs.t.shape[3] = 8; break;
    case 85:
        cl->aqo.t.ndim = 2;
        cl->aqo.t.shape[1] = 32;
        break;
    case 86: cl->aqo.t.dtype = NSA_DTYPE_F32; break;
    case 87:
        cl->aqo.t.shape[1] = 1;
        cl->aqo.t.shape[2] = 2;
        break;
    case 88:
        o->quant_scale2 = NULL;
        out->dtype = NSA_DTYPE_BF16;
        break;
    case 89: out->dtype = NSA_DTYPE_BF16; break;
    case 90:
        o->quant_scale2 = NULL;
        o->quant_offset2 = NULL;
        break;
    case 91: cl->qs.t.dtype = NSA_DTYPE_F16; break;
    case 92: cl->qs.t.ndim = 0; break;
    case 93:
        cl->qs.t.shape[1] = 15;
        cl->qo.t.shape[1] = 15;
        break;
    case 94: cl->qo.t.dtype = NSA_DTYPE_BF16; break;
    case 95:
        g_f32[0] = 1.0f;
        cl->qo.t = nsa_tensor_contiguous(g_f32, NSA_DTYPE_F32, 1, cl->qo.t.shape);
        cl->qo.t.shape[0] = 1;
        break;
    case 96: p->validation = NSA_VALIDATE_STRICT; break; /* per-channel quant + paged */
    case 97: a->out = NULL; break;
    case 98: out->shape[3] = 8; break;
    case 99: out->dtype = NSA_DTYPE_BF16; break;
    case 100:
        p->validation = NSA_VALIDATE_STRICT;
        out->dtype = NSA_DTYPE_F32;
        o->pse_shift = NULL;
        break;
    case 101:
        *out = *q;
        out->dtype = NSA_DTYPE_F16;
        break;
    case 102: out->stride[3] = 0; break;
    case 103: a->klist = NULL; break;
    case 104: a->count = 2; break;
    case 105:
        p->validation = NSA_VALIDATE_STRICT;
        a->count = 2;
        break; /* B = 2 below */
    case 106: o->block_table = &cl->mask.t; break;
    case 107: cl->klist[1].shape[0] = 2; break;
    case 108: cl->vlist[1].shape[3] = 8; break;
    case 109:
        cl->klist[1].dtype = NSA_DTYPE_BF16;
        cl->vlist[1].dtype = NSA_DTYPE_BF16;
        break;
    case 110: a->size_null = 1; break;
    case 111:
        o->antiquant_offset = &cl->aqo.t;
        o->antiquant_scale = NULL;
        break;
    default: fail_msg("unknown mutation %d", id);
    }
}

static const vcase k_vcases[] = {
    {K_BASE, 1, NSA_ERR_INVALID_ARGUMENT, "params.validation must be"},
    {K_BASE, 2, NSA_ERR_INVALID_ARGUMENT, "num_heads must be > 0, got 0"},
    {K_BASE, 3, NSA_ERR_INVALID_ARGUMENT, "num_key_value_heads must be >= 0"},
    {K_BASE, 4, NSA_ERR_INVALID_ARGUMENT, "num_key_value_heads must be <= num_heads (4), got 8"},
    {K_BASE, 5, NSA_ERR_INVALID_ARGUMENT, "must be a multiple of num_key_value_heads (3)"},
    {K_BASE, 6, NSA_ERR_INVALID_ARGUMENT, "num_heads / num_key_value_heads must be <= 64, got 65"},
    {K_BASE, 7, NSA_ERR_UNSUPPORTED, "input_layout TND is only for MLA"},
    {K_BASE, 8, NSA_ERR_INVALID_ARGUMENT, "input_layout must be BSH, BNSD or BSND"},
    {K_BASE, 9, NSA_ERR_INVALID_ARGUMENT, "scale_value must be finite"},
    {K_BASE, 10, NSA_ERR_INVALID_ARGUMENT, "scale_value must be finite in float32"},
    {K_BASE, 11, NSA_ERR_INVALID_ARGUMENT, "inner_precise must be 0 or 1, got 2"},
    {K_BASE, 12, NSA_ERR_INVALID_ARGUMENT, "actual_seq_lengths_count must be >= 0"},
    {K_BASE, 13, NSA_ERR_NULL_POINTER, "actual_seq_lengths must not be NULL"},
    {K_BASE, 14, NSA_ERR_NULL_POINTER, "query must not be NULL"},
    {K_BASE, 15, NSA_ERR_UNSUPPORTED, "query dtype i8 is only for MLA"},
    {K_BASE, 16, NSA_ERR_INVALID_ARGUMENT, "query dtype must be one of"},
    {K_BASE, 17, NSA_ERR_UNSUPPORTED, "query dtype must be f16 or bf16 at the strict level"},
    {K_BASE, 18, NSA_ERR_INVALID_ARGUMENT, "query must not be empty"},
    {K_BASE, 19, NSA_ERR_INVALID_ARGUMENT, "query sequence length must be 1"},
    {K_BSH, 20, NSA_ERR_INVALID_ARGUMENT,
     "query hidden size H (64) must be a multiple of num_heads (3)"},
    {K_BASE, 21, NSA_ERR_INVALID_ARGUMENT, "query heads axis must equal num_heads (4), got 3"},
    {K_BASE, 22, NSA_ERR_INVALID_ARGUMENT, "head dim D must be <= 65536"},
    {K_BASE, 23, NSA_ERR_UNSUPPORTED, "batch must be <= 65536 at the strict level"},
    {K_BASE, 24, NSA_ERR_UNSUPPORTED, "head dim D must be <= 512 at the strict level"},
    {K_BASE, 25, NSA_ERR_UNSUPPORTED, "num_heads must be <= 256 at the strict level"},
    {K_BASE, 26, NSA_ERR_NULL_POINTER, "key must not be NULL"},
    {K_BASE, 27, NSA_ERR_NULL_POINTER, "value must not be NULL"},
    {K_BASE, 28, NSA_ERR_INVALID_ARGUMENT, "key must have 4 dimensions, got 3"},
    {K_BASE, 29, NSA_ERR_INVALID_ARGUMENT, "key batch dim must be 3, got 2"},
    {K_BASE, 30, NSA_ERR_INVALID_ARGUMENT, "key heads axis must equal num_key_value_heads (2)"},
    {K_BASE, 31, NSA_ERR_INVALID_ARGUMENT, "key head dim must equal the query's D (16)"},
    {K_BASE, 32, NSA_ERR_INVALID_ARGUMENT, "value.shape[2] must equal key.shape[2] (40), got 30"},
    {K_BASE, 33, NSA_ERR_INVALID_ARGUMENT, "key and value must have the same dtype"},
    {K_BASE, 34, NSA_ERR_INVALID_ARGUMENT, "key dtype must be the query's (f16) or i8"},
    {K_BSH, 35, NSA_ERR_INVALID_ARGUMENT, "key hidden size must be num_key_value_heads * D"},
    {K_BASE, 36, NSA_ERR_UNSUPPORTED,
     "actual_seq_lengths must have 1 or batch (3) entries at the strict level"},
    {K_BASE, 37, NSA_ERR_INVALID_ARGUMENT,
     "actual_seq_lengths must have 1 or batch (3) entries, got 2"},
    {K_BASE, 38, NSA_ERR_INVALID_ARGUMENT, "actual_seq_lengths[0] must be >= 0, got -1"},
    {K_BASE, 39, NSA_ERR_INVALID_ARGUMENT,
     "actual_seq_lengths[0] (41) must be <= the key length S of batch 0 (40)"},
    {K_PAGED, 40, NSA_ERR_INVALID_ARGUMENT, "actual_seq_lengths is required with block_table"},
    {K_PAGED, 41, NSA_ERR_INVALID_ARGUMENT, "must be <= block_size * max_blocks_per_seq (48)"},
    {K_PAGED, 42, NSA_ERR_INVALID_ARGUMENT, "kv_padding_size cannot be combined with block_table"},
    {K_LIST, 42, NSA_ERR_INVALID_ARGUMENT,
     "kv_padding_size cannot be used with per-batch key/value tensors"},
    {K_BASE, 43, NSA_ERR_INVALID_ARGUMENT, "kv_padding_size requires actual_seq_lengths"},
    {K_BASE, 44, NSA_ERR_UNSUPPORTED,
     "kv_padding_size must be <= S - max(actual_seq_lengths) (10) at the strict level, got 11"},
    {K_PAGED, 45, NSA_ERR_INVALID_ARGUMENT, "block_table dtype must be one of {i32}"},
    {K_PAGED, 46, NSA_ERR_INVALID_ARGUMENT, "block_table.shape[0] must be the batch (3), got 2"},
    {K_PAGED, 47, NSA_ERR_INVALID_ARGUMENT, "block_table must not be empty"},
    {K_PAGED, 48, NSA_ERR_INVALID_ARGUMENT, "block_size must be > 0 with block_table, got 0"},
    {K_PAGED, 49, NSA_ERR_INVALID_ARGUMENT, "block_size must be <= 2147483647"},
    {K_PAGED, 50, NSA_ERR_INVALID_ARGUMENT,
     "key (paged cache) shape[1] must be block_size (16), got 32"},
    {K_PAGED, 51, NSA_ERR_INVALID_ARGUMENT,
     "key (paged cache) shape[2] must be num_key_value_heads * D (32)"},
    {K_PAGED4_BSH, 52, NSA_ERR_INVALID_ARGUMENT, "needs input_layout BNSD, got BSH"},
    {K_PAGED4, 53, NSA_ERR_INVALID_ARGUMENT,
     "key (paged cache) shape[1] must be num_key_value_heads (2), got 1"},
    {K_PAGED4, 54, NSA_ERR_INVALID_ARGUMENT,
     "key (paged cache) shape[2] must be block_size (16), got 32"},
    {K_PAGED4, 55, NSA_ERR_INVALID_ARGUMENT,
     "key (paged cache) shape[3] must be the query's D (16), got 8"},
    {K_PAGED, 56, NSA_ERR_INVALID_ARGUMENT, "key (paged cache) must have 3 dimensions"},
    {K_PAGED, 57, NSA_ERR_INVALID_ARGUMENT, "block_table[1][0] must be in [0, "},
    {K_PAGED, 58, NSA_ERR_UNSUPPORTED,
     "block_size must be a multiple of 16 and <= 512 at the strict level, got 8"},
    {K_PAGED_INT8, 59, NSA_ERR_UNSUPPORTED, "block_size must be a multiple of 32"},
    {K_PAGED, 60, NSA_ERR_UNSUPPORTED, "max_blocks_per_seq) must be <= 16384 at the strict level"},
    {K_PAGED, 61, NSA_ERR_UNSUPPORTED, "the paged key cache must have <= 2147483647 elements"},
    {K_BASE, 62, NSA_ERR_UNSUPPORTED,
     "block_size must be 0 without block_table at the strict level"},
    {K_BASE, 63, NSA_ERR_UNSUPPORTED, "the key length S must be <= 262144 at the strict level"},
    {K_BASE, 64, NSA_ERR_INVALID_ARGUMENT, "atten_mask must have 2, 3 or 4 dimensions"},
    {K_BASE, 65, NSA_ERR_INVALID_ARGUMENT, "atten_mask dtype must be one of"},
    {K_BASE, 66, NSA_ERR_INVALID_ARGUMENT, "atten_mask.shape[0] must be the batch (3), got 2"},
    {K_BASE, 67, NSA_ERR_INVALID_ARGUMENT, "atten_mask.shape[1] must be 1"},
    {K_BASE, 68, NSA_ERR_INVALID_ARGUMENT,
     "atten_mask last dim must cover every KV position read (>= 40), got 10"},
    {K_BASE, 69, NSA_ERR_UNSUPPORTED, "atten_mask values must be 0 or 1 at the strict level"},
    {K_PAGED, 70, NSA_ERR_UNSUPPORTED,
     "atten_mask last dim must be >= max_blocks_per_seq * block_size (48)"},
    {K_BASE, 71, NSA_ERR_INVALID_ARGUMENT, "pse_shift must have 4 dimensions"},
    {K_BASE, 72, NSA_ERR_INVALID_ARGUMENT, "pse_shift dtype must be the query's (f16), got bf16"},
    {K_BASE, 73, NSA_ERR_INVALID_ARGUMENT, "pse_shift.shape[0] must be 1 or the batch (3), got 2"},
    {K_BASE, 74, NSA_ERR_INVALID_ARGUMENT, "pse_shift.shape[1] must be num_heads (4), got 3"},
    {K_BASE, 75, NSA_ERR_INVALID_ARGUMENT, "pse_shift.shape[2] must be 1"},
    {K_BASE, 76, NSA_ERR_INVALID_ARGUMENT,
     "pse_shift.shape[3] must cover every KV position read (>= 40), got 10"},
    {K_BASE, 77, NSA_ERR_UNSUPPORTED,
     "pse_shift.shape[3] must be >= the key length S (40) at the strict level, got 20"},
    {K_D8, 78, NSA_ERR_UNSUPPORTED, "pse_shift needs D to be a multiple of 16 at the strict level"},
    {K_BASE, 79, NSA_ERR_INVALID_ARGUMENT,
     "antiquant_scale/antiquant_offset are given but key/value are f16"},
    {K_INT8, 80, NSA_ERR_NULL_POINTER, "antiquant_scale is required when key/value are i8"},
    {K_INT8, 111, NSA_ERR_NULL_POINTER, "antiquant_scale is required when key/value are i8"},
    {K_INT8, 81, NSA_ERR_INVALID_ARGUMENT, "antiquant_scale must have 1 to 4 dimensions"},
    {K_INT8, 82, NSA_ERR_INVALID_ARGUMENT, "antiquant_scale dtype must be one of"},
    {K_INT8, 83, NSA_ERR_INVALID_ARGUMENT,
     "antiquant_scale.shape[0] must be 2 (key, value), got 1"},
    {K_INT8, 84, NSA_ERR_INVALID_ARGUMENT, "antiquant_scale per-channel shape must be"},
    {K_INT8, 85, NSA_ERR_INVALID_ARGUMENT,
     "antiquant_offset must have the rank of antiquant_scale (4), got 2"},
    {K_INT8, 86, NSA_ERR_INVALID_ARGUMENT,
     "antiquant_offset dtype must be antiquant_scale's (f16), got f32"},
    {K_INT8, 87, NSA_ERR_INVALID_ARGUMENT,
     "antiquant_offset.shape[1] must equal antiquant_scale.shape[1]"},
    {K_QUANT, 88, NSA_ERR_INVALID_ARGUMENT, "quant_offset2 is given without quant_scale2"},
    {K_QUANT, 89, NSA_ERR_INVALID_ARGUMENT,
     "attention_out must be i8 when quant_scale2 is given, got bf16"},
    {K_QUANT, 90, NSA_ERR_INVALID_ARGUMENT, "attention_out is i8 but quant_scale2 is not given"},
    {K_QUANT, 91, NSA_ERR_INVALID_ARGUMENT, "quant_scale2 dtype must be one of"},
    {K_QUANT, 92, NSA_ERR_INVALID_ARGUMENT, "quant_scale2 must have 1 to 4 dimensions"},
    {K_QUANT, 93, NSA_ERR_INVALID_ARGUMENT,
     "quant_scale2 must have 1 element (per tensor) or N*D = 64"},
    {K_QUANT, 94, NSA_ERR_INVALID_ARGUMENT,
     "quant_offset2 dtype must be quant_scale2's (f32), got bf16"},
    {K_QUANT, 95, NSA_ERR_INVALID_ARGUMENT,
     "quant_scale2 and quant_offset2 must both be per tensor or both per channel"},
    {K_QUANT_PAGED, 96, NSA_ERR_UNSUPPORTED,
     "per-channel quant_scale2 cannot be combined with block_table"},
    {K_BASE, 97, NSA_ERR_NULL_POINTER, "attention_out must not be NULL"},
    {K_BASE, 98, NSA_ERR_INVALID_ARGUMENT, "attention_out.shape[3] must be the query's (16)"},
    {K_BASE, 99, NSA_ERR_INVALID_ARGUMENT,
     "attention_out dtype must be the query's (f16) or f32, got bf16"},
    {K_BSH, 100, NSA_ERR_UNSUPPORTED,
     "attention_out dtype must be the query's (f16) at the strict level, got f32"},
    {K_BASE, 101, NSA_ERR_INVALID_ARGUMENT, "attention_out must not overlap query"},
    {K_BASE, 102, NSA_ERR_INVALID_ARGUMENT, "attention_out must not overlap itself"},
    {K_LIST, 103, NSA_ERR_NULL_POINTER, "keys must not be NULL"},
    {K_LIST, 104, NSA_ERR_INVALID_ARGUMENT,
     "kv_count (the key/value list length) must be >= the batch (3), got 2"},
    {K_LIST, 105, NSA_ERR_UNSUPPORTED,
     "kv_count must equal the batch (3) at the strict level, got 4"},
    {K_LIST, 106, NSA_ERR_INVALID_ARGUMENT,
     "block_table cannot be combined with per-batch key/value tensors"},
    {K_LIST, 107, NSA_ERR_INVALID_ARGUMENT, "keys[1] batch dim must be 1, got 2"},
    {K_LIST, 108, NSA_ERR_INVALID_ARGUMENT,
     "values[1] head dim must equal the query's D (16), got 8"},
    {K_LIST, 109, NSA_ERR_INVALID_ARGUMENT, "keys[1] dtype must be keys[0]'s (f16), got bf16"},
    {K_BASE, 110, NSA_ERR_NULL_POINTER, "size must not be NULL"},
};

static void validation_errors(void **state)
{
    size_t i;
    (void)state;
    for (i = 0; i < sizeof k_vcases / sizeof k_vcases[0]; i++) {
        const vcase *vc = &k_vcases[i];
        icase c = kind_case(vc->kind);
        idata g;
        call cl;
        vargs a;
        nsa_status st;
        nsa_tensor klist4[4], vlist4[4];
        gen(&g, &c, 7 + i);
        build(&cl, &g);
        memset(&a, 0, sizeof a);
        a.q = &cl.q.t;
        a.k = &cl.k.t;
        a.v = &cl.v.t;
        a.out = &cl.out.t;
        a.list = c.kv_form == KV_LIST;
        a.klist = cl.klist;
        a.vlist = cl.vlist;
        a.count = c.B;
        g_bad_lens[0] = 5;
        g_bad_lens[1] = 3;
        g_bad_lens[2] = 2;
        mutate(&cl, &a, &c, vc->id);
        if (vc->id == 105) { /* one extra list entry */
            memcpy(klist4, cl.klist, 3 * sizeof(nsa_tensor));
            memcpy(vlist4, cl.vlist, 3 * sizeof(nsa_tensor));
            klist4[3] = cl.klist[0];
            vlist4[3] = cl.vlist[0];
            a.klist = klist4;
            a.vlist = vlist4;
            a.count = 4;
        }
        if (a.size_null)
            st = nsa_incre_flash_attention_workspace_size(NULL, a.q, a.k, a.v, &cl.opt, &cl.prm,
                                                          a.out, NULL);
        else if (a.list)
            st = nsa_incre_flash_attention_kv_list(NULL, a.q, a.klist, a.vlist, a.count, &cl.opt,
                                                   &cl.prm, a.out);
        else
            st = nsa_incre_flash_attention(NULL, a.q, a.k, a.v, &cl.opt, &cl.prm, a.out);
        if (st != vc->status || !strstr(nsa_last_error(), vc->msg))
            fail_msg("mutation %d: got %s \"%s\", want %s containing \"%s\"", vc->id,
                     nsa_status_string(st), nsa_last_error(), nsa_status_string(vc->status),
                     vc->msg);
        free_call(&cl);
        free_data(&g);
    }
}

/* The same cases without the mutation run (each base is valid). */
static void validation_bases_run(void **state)
{
    int kind;
    (void)state;
    for (kind = K_BASE; kind <= K_PAGED4; kind++) {
        icase c = kind_case(kind);
        if (kind == K_PAGED4_BSH)
            continue; /* invalid by design */
        check_case(&c, 500 + (uint64_t)kind);
    }
}

/* Empty caches: S = 0 gives a zero output (int8: the quantised 0), and a NaN in one chunk of
 * a split row reaches the output. */
static void empty_and_nan(void **state)
{
    int16_t q[2 * 4 * 8];
    uint16_t kv[1];
    int8_t out8[2 * 4 * 8];
    float out[2 * 4 * 8], qs = 2.0f, qo = 3.4f;
    int64_t qshape[4] = {2, 4, 1, 8}, kshape[4] = {2, 2, 0, 8}, one = 1;
    nsa_tensor tq, tk, tv, to, to8, tqs, tqo;
    nsa_ifa_params prm = nsa_ifa_params_default();
    nsa_ifa_optional opt = NSA_IFA_OPTIONAL_INIT;
    int i;
    (void)state;
    memset(q, 0, sizeof q);
    prm.num_heads = 4;
    prm.num_key_value_heads = 2;
    prm.input_layout = NSA_LAYOUT_BNSD;
    tq = nsa_tensor_contiguous(q, NSA_DTYPE_F16, 4, qshape);
    tk = nsa_tensor_contiguous(kv, NSA_DTYPE_F16, 4, kshape);
    tv = tk;
    to = nsa_tensor_contiguous(out, NSA_DTYPE_F32, 4, qshape);
    for (i = 0; i < 64; i++)
        out[i] = 5.0f;
    assert_int_equal(nsa_incre_flash_attention(NULL, &tq, &tk, &tv, &opt, &prm, &to), NSA_SUCCESS);
    for (i = 0; i < 64; i++)
        assert_true(out[i] == 0.0f);
    to8 = nsa_tensor_contiguous(out8, NSA_DTYPE_I8, 4, qshape);
    tqs = nsa_tensor_contiguous(&qs, NSA_DTYPE_F32, 1, &one);
    tqo = nsa_tensor_contiguous(&qo, NSA_DTYPE_F32, 1, &one);
    opt.quant_scale2 = &tqs;
    opt.quant_offset2 = &tqo;
    assert_int_equal(nsa_incre_flash_attention(NULL, &tq, &tk, &tv, &opt, &prm, &to8), NSA_SUCCESS);
    for (i = 0; i < 64; i++)
        assert_int_equal(out8[i], 3); /* round_half_even(0 * 2 + 3.4) */
    {
        /* B = 1, one kv head, 3000 keys: split into chunks; a NaN key in the last chunk */
        int64_t q1[4] = {1, 1, 1, 8}, k1[4] = {1, 1, 3000, 8};
        float qf[8], *kf = (float *)calloc(3000 * 8, sizeof(float)), o1[8];
        nsa_ifa_params p1 = nsa_ifa_params_default();
        nsa_ifa_optional none = NSA_IFA_OPTIONAL_INIT;
        nsa_tensor a, k, o;
        for (i = 0; i < 8; i++)
            qf[i] = 1.0f;
        kf[2990 * 8] = NAN;
        p1.input_layout = NSA_LAYOUT_BNSD;
        a = nsa_tensor_contiguous(qf, NSA_DTYPE_F32, 4, q1);
        k = nsa_tensor_contiguous(kf, NSA_DTYPE_F32, 4, k1);
        o = nsa_tensor_contiguous(o1, NSA_DTYPE_F32, 4, q1);
        assert_int_equal(nsa_incre_flash_attention(NULL, &a, &k, &k, &none, &p1, &o), NSA_SUCCESS);
        for (i = 0; i < 8; i++)
            assert_true(isnan(o1[i]));
        free(kf);
    }
}

/* Wide tiles: G = 16, D = 256, and the largest group G = 64. */
static void wide_groups(void **state)
{
    icase c = base_case();
    (void)state;
    c.N = 32;
    c.kvN = 2;
    c.D = 256;
    c.S = 300;
    c.mask = 2;
    c.pse = 2;
    c.asl = 2;
    c.B = 3;
    check_case(&c, 300);
    c = base_case();
    c.N = 64;
    c.kvN = 1;
    c.D = 16;
    c.S = 900;
    c.mask = 3;
    c.int8 = 2;
    c.kv_form = KV_PAGED4;
    c.block_size = 64;
    c.asl = 1;
    check_case(&c, 301);
}

/* Sequences long enough that a worker runs several kv heads in lockstep (nsa_attn_group_run:
 * paged caches and BSH/BSND rows, where the heads of a token lie side by side): on one thread,
 * 8 kv heads x 1-2 chunks per batch run in groups of 2-8. Against the reference; the
 * reliability test checks that the grouping (it depends on the thread count) never changes a
 * bit. */
static void lockstep_heads(void **state)
{
    static const int forms[7] = {KV_PAGED4, KV_PAGED3, KV_BATCH, KV_BATCH, KV_PAGED3,
                                 KV_BATCH,  KV_PAGED3};
    nsa_context_config cfg = NSA_CONTEXT_CONFIG_INIT;
    int i;
    (void)state;
    cfg.num_threads = 1;
    assert_int_equal(nsa_context_create(&cfg, &g_check_ctx), NSA_SUCCESS);
    for (i = 0; i < 7; i++) {
        icase c = base_case();
        c.B = 2;
        c.N = 16;
        c.kvN = 8;
        c.D = 32;
        c.S = 2600;
        c.dt = i == 1 ? NSA_DTYPE_F16 : NSA_DTYPE_BF16;
        c.kv_form = forms[i];
        c.layout = i == 2 ? NSA_LAYOUT_BSH : NSA_LAYOUT_BNSD;
        if (i < 2) {
            c.block_size = 128;
            c.asl = 2;
        }
        c.int8 = i == 1 ? 2 : 0;
        c.mask = i == 2 ? 1 : 0;
        if (i >= 3) { /* G = 4, dv 128: the heads-in-lockstep loops (BSH rows, BSH pages), bf16
                       * then int8 (per channel with offsets; per tensor) */
            c.N = 32;
            c.D = 128;
            c.S = 1100;
            c.layout = i % 2 ? NSA_LAYOUT_BSND : NSA_LAYOUT_BSH;
            c.mask = i == 3 ? 1 : 0;
            c.pse = i == 3 ? 2 : 0;
            c.int8 = i == 5 ? 2 : i == 6 ? 1 : 0;
            c.aq_offset = i == 5;
            if (forms[i] == KV_PAGED3) {
                c.block_size = 64;
                c.asl = 2;
            }
        }
        check_case(&c, 400 + (uint64_t)i);
    }
    nsa_context_destroy(g_check_ctx);
    g_check_ctx = NULL;
}

/* A BSH cache (G = 4, D = 128, bf16) gives the same bits with padded token rows as without
 * (each row read through its stride), and on one thread, where a worker runs kv heads in
 * lockstep a few keys at a time (nsa_fused_scores_heads), the same bits as on two, where each
 * kv head runs alone. */
static void padded_token_rows(void **state)
{
    enum { N = 32, KVN = 8, D = 128, S = 700, H = KVN * D, PAD = 32 };
    const size_t n = (size_t)S * H;
    int64_t qshape[3] = {1, 1, N * D}, kshape[3] = {1, S, H};
    int64_t pstride[3] = {(int64_t)S * (H + PAD), H + PAD, 1}; /* rows 2 KiB + 64 bytes apart */
    nsa_context_config cfg = NSA_CONTEXT_CONFIG_INIT;
    nsa_context *ctx = NULL;
    nsa_ifa_params prm = nsa_ifa_params_default();
    nsa_ifa_optional opt;
    nsa_tensor q, k, v, kp, vp, o1, o2;
    float *x = (float *)malloc(sizeof(float) * n);
    uint16_t *kb, *vb, *qb, *kpad, *vpad;
    uint16_t out1[N * D], out2[N * D];
    test_rng rng;
    size_t i, s;
    (void)state;
    test_rng_seed(&rng, 77);
    for (i = 0; i < n; i++)
        x[i] = test_rng_uniform(&rng, -1.0f, 1.0f);
    kb = (uint16_t *)test_to_dtype(x, (int64_t)n, NSA_DTYPE_BF16);
    for (i = 0; i < n; i++)
        x[i] = test_rng_uniform(&rng, -1.0f, 1.0f);
    vb = (uint16_t *)test_to_dtype(x, (int64_t)n, NSA_DTYPE_BF16);
    qb = (uint16_t *)test_to_dtype(x, N * D, NSA_DTYPE_BF16);
    kpad = (uint16_t *)calloc((size_t)S * (H + PAD), sizeof(uint16_t));
    vpad = (uint16_t *)calloc((size_t)S * (H + PAD), sizeof(uint16_t));
    assert_non_null(kpad);
    assert_non_null(vpad);
    for (s = 0; s < S; s++) {
        memcpy(kpad + s * (H + PAD), kb + s * H, sizeof(uint16_t) * H);
        memcpy(vpad + s * (H + PAD), vb + s * H, sizeof(uint16_t) * H);
    }
    q = nsa_tensor_contiguous(qb, NSA_DTYPE_BF16, 3, qshape);
    k = nsa_tensor_contiguous(kb, NSA_DTYPE_BF16, 3, kshape);
    v = nsa_tensor_contiguous(vb, NSA_DTYPE_BF16, 3, kshape);
    kp = nsa_tensor_strided(kpad, NSA_DTYPE_BF16, 3, kshape, pstride);
    vp = nsa_tensor_strided(vpad, NSA_DTYPE_BF16, 3, kshape, pstride);
    o1 = nsa_tensor_contiguous(out1, NSA_DTYPE_BF16, 3, qshape);
    o2 = nsa_tensor_contiguous(out2, NSA_DTYPE_BF16, 3, qshape);
    memset(&opt, 0, sizeof opt);
    prm.num_heads = N;
    prm.num_key_value_heads = KVN;
    prm.input_layout = NSA_LAYOUT_BSH;
    prm.scale_value = 0.088388;
    cfg.num_threads = 1; /* one worker runs the kv heads in lockstep, 2 at a time */
    assert_int_equal(nsa_context_create(&cfg, &ctx), NSA_SUCCESS);
    assert_int_equal(nsa_incre_flash_attention(ctx, &q, &k, &v, &opt, &prm, &o1), NSA_SUCCESS);
    assert_int_equal(nsa_incre_flash_attention(ctx, &q, &kp, &vp, &opt, &prm, &o2), NSA_SUCCESS);
    assert_memory_equal(out1, out2, sizeof out1);
    nsa_context_destroy(ctx);
    cfg.num_threads = 2; /* 8 tasks: too few to group, each kv head runs alone */
    assert_int_equal(nsa_context_create(&cfg, &ctx), NSA_SUCCESS);
    memset(out2, 0, sizeof out2);
    assert_int_equal(nsa_incre_flash_attention(ctx, &q, &k, &v, &opt, &prm, &o2), NSA_SUCCESS);
    assert_memory_equal(out1, out2, sizeof out1);
    nsa_context_destroy(ctx);
    free(x);
    free(kb);
    free(vb);
    free(qb);
    free(kpad);
    free(vpad);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(each_layout_and_dtype), cmocka_unit_test(features_alone),
        cmocka_unit_test(combinations),          cmocka_unit_test(randomized),
        cmocka_unit_test(reliability),           cmocka_unit_test(workspace_query),
        cmocka_unit_test(validation_bases_run),  cmocka_unit_test(validation_errors),
        cmocka_unit_test(empty_and_nan),         cmocka_unit_test(wide_groups),
        cmocka_unit_test(lockstep_heads),        cmocka_unit_test(padded_token_rows),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
