/* SPDX-License-Identifier: Apache-2.0 */
/* On request (`nsa_bench select_scaling`, slow: the dense runs take tens of seconds):
 * nsa_select_attention per token at T = 8k, 16k, 32k next to a causal dense attention of the
 * same size through flex (GQA 16:1, D = 192, Dv = 128, bf16). Selection follows what
 * compress_attention's forced blocks give: the first block and the 15 local ones. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "bench_cases.h"
#include "bench_util.h"

enum { N1 = 16, D = 192, DV = 128, BLK = 64, CNT = 16 };

typedef struct scale_case {
    nsa_tensor q, k, v, idx, out, fq, fk, fv, fo;
    nsa_select_attention_params p;
    nsa_block_mask *causal;
    nsa_flex_params fp;
    int64_t cum[1];
} scale_case;

static nsa_status run_select(void *arg, nsa_context *ctx)
{
    scale_case *c = (scale_case *)arg;
    return nsa_select_attention(ctx, &c->q, &c->k, &c->v, &c->idx, &c->p, &c->out, NULL, NULL);
}

static nsa_status run_dense(void *arg, nsa_context *ctx)
{
    scale_case *c = (scale_case *)arg;
    return nsa_flex_attention(ctx, &c->fq, &c->fk, &c->fv, c->causal, NULL, &c->fp, &c->fo, NULL);
}

/* Microseconds per token of select and of causal dense attention at T tokens, and dense time /
 * select time: the two run in the same rounds (this VM's speed drifts for minutes at a time,
 * so timing them apart could move one and not the other), the ratio a median of per-round
 * ratios. */
static void measure(const bench_env *env, int64_t t, double *sel_us, double *dense_us,
                    double *ratio)
{
    const size_t nq = (size_t)(t * N1 * D), nk = (size_t)(t * D), nv = (size_t)(t * DV);
    const size_t no = (size_t)(t * N1 * DV);
    int64_t sq[3] = {t, N1, D}, sk[3] = {t, 1, D}, sv[3] = {t, 1, DV}, so[3] = {t, N1, DV};
    int64_t si[3] = {t, 1, CNT}, i, c;
    /* the same TND memory seen as (1, H, T, E) for flex */
    int64_t fq[4] = {1, N1, t, D}, fqs[4] = {t * N1 * D, D, N1 * D, 1};
    int64_t fk[4] = {1, 1, t, D}, fks[4] = {t * D, D, D, 1};
    int64_t fv[4] = {1, 1, t, DV}, fvs[4] = {t * DV, DV, DV, 1};
    int64_t fo[4] = {1, N1, t, DV}, fos[4] = {t * N1 * DV, DV, N1 * DV, 1};
    void *q = bench_values(nq, 31, NSA_DTYPE_BF16), *k = bench_values(nk, 32, NSA_DTYPE_BF16);
    void *v = bench_values(nv, 33, NSA_DTYPE_BF16), *o = bench_alloc(no * 2);
    int32_t *idx = bench_alloc(sizeof(int32_t) * (size_t)(t * CNT));
    nsa_mask_mod *mm = NULL;
    scale_case sc;
    for (i = 0; i < t; i++)
        for (c = 0; c < CNT; c++) {
            int64_t b = c == 0 ? 0 : i / BLK - (c - 1);
            idx[i * CNT + c] = (int32_t)(b < 0 ? 0 : b);
        }
    sc.q = nsa_tensor_contiguous(q, NSA_DTYPE_BF16, 3, sq);
    sc.k = nsa_tensor_contiguous(k, NSA_DTYPE_BF16, 3, sk);
    sc.v = nsa_tensor_contiguous(v, NSA_DTYPE_BF16, 3, sv);
    sc.out = nsa_tensor_contiguous(o, NSA_DTYPE_BF16, 3, so);
    sc.idx = nsa_tensor_contiguous(idx, NSA_DTYPE_I32, 3, si);
    sc.fq = nsa_tensor_strided(q, NSA_DTYPE_BF16, 4, fq, fqs);
    sc.fk = nsa_tensor_strided(k, NSA_DTYPE_BF16, 4, fk, fks);
    sc.fv = nsa_tensor_strided(v, NSA_DTYPE_BF16, 4, fv, fvs);
    sc.fo = nsa_tensor_strided(o, NSA_DTYPE_BF16, 4, fo, fos);
    sc.p = nsa_select_attention_params_default();
    sc.p.scale_value = 0.07;
    sc.p.select_block_size = BLK;
    sc.p.select_block_count = CNT;
    sc.p.sparse_mode = 2;
    sc.cum[0] = t;
    sc.p.actual_seq_qlen = sc.cum;
    sc.p.actual_seq_qlen_count = 1;
    sc.p.actual_seq_kvlen = sc.cum;
    sc.p.actual_seq_kvlen_count = 1;
    sc.fp = nsa_flex_params_default();
    sc.fp.scale = 0.07f;
    sc.fp.enable_gqa = 1;
    nsa_mask_mod_causal(&mm);
    sc.causal = NULL;
    nsa_block_mask_create(env->ctx, mm, 1, 1, t, t, 128, 128, &sc.causal);
    {
        const bench_op_fn fns[2] = {run_select, run_dense};
        void *const args[2] = {&sc, &sc};
        double times[2 * 64];
        const int reps = bench_time_rounds(2, fns, args, env->ctx, NULL, NULL, 0, times);
        *ratio = reps ? bench_median_ratio(times + reps, times, reps) : NAN;
        *sel_us = reps ? bench_median(times, reps) / (double)t * 1e6 : NAN;
        *dense_us = reps ? bench_median(times + reps, reps) / (double)t * 1e6 : NAN;
    }
    nsa_block_mask_free(sc.causal);
    nsa_mask_mod_free(mm);
    free(q);
    free(k);
    free(v);
    free(o);
    free(idx);
}

static int run(const bench_env *env, bench_row *rows, int cap)
{
    static const int64_t full[3] = {8192, 16384, 32768};
    double sel[3], dense[3], ratio[3];
    int i;
    if (cap < 3)
        return 0;
    for (i = 0; i < 3; i++) {
        const int64_t t = bench_len(full[i]);
        measure(env, t, &sel[i], &dense[i], &ratio[i]);
        bench_set_row(&rows[i], sel[i], "us", ratio[i], 1.0, 0,
                      "select us/token T=%lld; figure: causal dense us/token / select's",
                      (long long)t);
    }
    return 3;
}

const bench_case bench_select_scaling = {"select_scaling", run, 1};
