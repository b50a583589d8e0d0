/* SPDX-License-Identifier: Apache-2.0 */
/* nsa_select_attention at the paper's shape: N1 = 16 query heads on N2 = 1 kv head, D = 192,
 * Dv = 128, l' = 64, k = 16, causal, bf16 and f32. The topk rows are random per token (the
 * worst case for block reuse; real NSA selections overlap between neighbouring tokens).
 * Targets: GFLOP/s >= 0.70x cblas_sgemm at T = 32768, and time per token at T = 32768 <=
 * 1.15x that at T = 8192 (the cost follows T * k * l', not T^2). FLOPs counted:
 * 2 * T * N1 * k * l' * (D + Dv), every gathered key included. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "bench_cases.h"
#include "bench_util.h"

#define SEL_N1 16
#define SEL_D 192
#define SEL_DV 128
#define SEL_BS 64
#define SEL_BC 16

typedef struct sel_bench {
    nsa_tensor q, k, v, topk, out;
    nsa_select_attention_params params;
    int64_t cum_q, cum_kv;
} sel_bench;

static nsa_status run_select(void *arg, nsa_context *ctx)
{
    sel_bench *b = (sel_bench *)arg;
    return nsa_select_attention(ctx, &b->q, &b->k, &b->v, &b->topk, &b->params, &b->out, NULL,
                                NULL);
}

/* The inputs of one call at t tokens (T1 = T2 = t); sel_free releases them. */
static void sel_setup(sel_bench *b, int64_t t, nsa_dtype dt)
{
    const int64_t qs[3] = {t, SEL_N1, SEL_D}, ks[3] = {t, 1, SEL_D}, vs[3] = {t, 1, SEL_DV};
    const int64_t ts[3] = {t, 1, SEL_BC}, os[3] = {t, SEL_N1, SEL_DV};
    void *q = bench_values((size_t)(t * SEL_N1 * SEL_D), 1, dt);
    void *k = bench_values((size_t)(t * SEL_D), 2, dt);
    void *v = bench_values((size_t)(t * SEL_DV), 3, dt);
    int32_t *topk = (int32_t *)bench_alloc((size_t)(t * SEL_BC) * sizeof(int32_t));
    void *out = bench_alloc((size_t)(t * SEL_N1 * SEL_DV) * nsa_dtype_size(dt));
    uint32_t s = 12345u;
    int64_t i, c;
    /* as NSA selects: the first block, the query's own (diagonal) block, then random blocks
     * at or before it (duplicates possible for early tokens) */
    for (i = 0; i < t; i++) {
        const int64_t diag = i / SEL_BS;
        topk[i * SEL_BC] = 0;
        topk[i * SEL_BC + 1] = (int32_t)diag;
        for (c = 2; c < SEL_BC; c++) {
            s = s * 1664525u + 1013904223u;
            topk[i * SEL_BC + c] = (int32_t)((s >> 8) % (uint32_t)(diag + 1));
        }
    }
    b->q = nsa_tensor_contiguous(q, dt, 3, qs);
    b->k = nsa_tensor_contiguous(k, dt, 3, ks);
    b->v = nsa_tensor_contiguous(v, dt, 3, vs);
    b->topk = nsa_tensor_contiguous(topk, NSA_DTYPE_I32, 3, ts);
    b->out = nsa_tensor_contiguous(out, dt, 3, os);
    b->params = nsa_select_attention_params_default();
    b->params.scale_value = 1.0 / sqrt((double)SEL_D);
    b->params.select_block_size = SEL_BS;
    b->params.select_block_count = SEL_BC;
    b->params.sparse_mode = 2;
    b->cum_q = b->cum_kv = t;
    b->params.actual_seq_qlen = &b->cum_q;
    b->params.actual_seq_kvlen = &b->cum_kv;
    b->params.actual_seq_qlen_count = b->params.actual_seq_kvlen_count = 1;
}

static void sel_free(sel_bench *b)
{
    free(b->q.data);
    free(b->k.data);
    free(b->v.data);
    free(b->topk.data);
    free(b->out.data);
}

/* A causal dense attention of the same size, for the speed-up row. */
typedef struct dense_bench {
    nsa_tensor q, k, v, out;
    nsa_block_mask *mask;
    nsa_flex_params params;
} dense_bench;

static nsa_status run_dense(void *arg, nsa_context *ctx)
{
    dense_bench *b = (dense_bench *)arg;
    return nsa_flex_attention(ctx, &b->q, &b->k, &b->v, b->mask, NULL, &b->params, &b->out,
                              NULL);
}

/* Seconds of a causal dense attention of the same size through the flex engine (the TND
 * buffers seen as (1, H, T, E)); NAN on failure. */
static double dense_time_at(const bench_env *env, int64_t t)
{
    const int64_t qs[4] = {1, SEL_N1, t, SEL_D}, qst[4] = {0, SEL_D, SEL_N1 * SEL_D, 1};
    const int64_t ks[4] = {1, 1, t, SEL_D}, kst[4] = {0, SEL_D, SEL_D, 1};
    const int64_t vs[4] = {1, 1, t, SEL_DV}, vst[4] = {0, SEL_DV, SEL_DV, 1};
    const int64_t os[4] = {1, SEL_N1, t, SEL_DV}, ost[4] = {0, SEL_DV, SEL_N1 * SEL_DV, 1};
    void *q = bench_values((size_t)(t * SEL_N1 * SEL_D), 1, NSA_DTYPE_BF16);
    void *k = bench_values((size_t)(t * SEL_D), 2, NSA_DTYPE_BF16);
    void *v = bench_values((size_t)(t * SEL_DV), 3, NSA_DTYPE_BF16);
    void *out = bench_alloc((size_t)(t * SEL_N1 * SEL_DV) * 2);
    nsa_mask_mod *causal = NULL;
    dense_bench b;
    double sec = NAN;
    b.q = nsa_tensor_strided(q, NSA_DTYPE_BF16, 4, qs, qst);
    b.k = nsa_tensor_strided(k, NSA_DTYPE_BF16, 4, ks, kst);
    b.v = nsa_tensor_strided(v, NSA_DTYPE_BF16, 4, vs, vst);
    b.out = nsa_tensor_strided(out, NSA_DTYPE_BF16, 4, os, ost);
    b.params = nsa_flex_params_default();
    b.params.scale = 1.0f / sqrtf((float)SEL_D);
    b.params.enable_gqa = 1;
    b.mask = NULL;
    if (nsa_mask_mod_causal(&causal) == NSA_SUCCESS &&
        nsa_block_mask_create(env->ctx, causal, 1, 1, t, t, 128, 128, &b.mask) == NSA_SUCCESS)
        sec = bench_time_op(run_dense, &b, env->ctx);
    nsa_block_mask_free(b.mask);
    nsa_mask_mod_free(causal);
    free(q);
    free(k);
    free(v);
    free(out);
    return sec;
}

/* Two rows per dtype: GFLOP/s against sgemm at the long length, and time per token long vs
 * short. Both lengths and an sgemm pass run in every round, so a slow phase of a shared
 * machine (seen here to move either length alone by 1.7x) hits all three alike; both figures
 * are medians of per-round ratios. */
static int rows_for(const bench_env *env, nsa_dtype dt, bench_row *rows, double *s_short_out)
{
    const int64_t t_long = bench_len(32768), t_short = bench_len(8192);
    const double flop = 2.0 * (double)t_long * SEL_N1 * SEL_BC * SEL_BS * (SEL_D + SEL_DV);
    const bench_op_fn fns[2] = {run_select, run_select};
    sel_bench b_short, b_long;
    void *const args[2] = {&b_short, &b_long};
    double t[3 * 64], sgemm_flop, per_token = NAN, ratio = NAN, s_long = NAN, s_short = NAN;
    int reps;
    sel_setup(&b_short, t_short, dt);
    sel_setup(&b_long, t_long, dt);
    reps = bench_rounds_vs_sgemm(env, 2, fns, args, t, &sgemm_flop);
    if (reps) {
        /* (flop / t_long) / (sgemm flop / t_sgemm) and (t_long / T_long) / (t_short / T_short) */
        ratio = bench_median_ratio(t + 2 * reps, t + reps, reps) * flop / sgemm_flop;
        per_token = bench_median_ratio(t + reps, t, reps) * (double)t_short / (double)t_long;
        s_short = bench_median(t, reps);
        s_long = bench_median(t + reps, reps);
    }
    sel_free(&b_short);
    sel_free(&b_long);
    bench_set_row(&rows[0], flop / s_long * 1e-9, "GF", ratio, 0.70, 0,
                  "select_attention T=%lld N1=16 D=192 l'=64 k=16 %s GF vs sgemm",
                  (long long)t_long, nsa_dtype_name(dt));
    bench_set_row(&rows[1], s_long / (double)t_long * 1e6, "us", per_token, 1.15, 1,
                  "select_attention %s us/token T=%lld vs T=%lld", nsa_dtype_name(dt),
                  (long long)t_long, (long long)t_short);
    *s_short_out = s_short;
    return 2;
}

/* Rows: bf16 and f32 (2 each), then the speed-up over causal dense attention at the short
 * length (dense at the long length would take minutes; its cost per token grows with T). */
static int run(const bench_env *env, bench_row *rows, int cap)
{
    const int64_t t_short = bench_len(8192);
    double sel_bf16, sel_f32, dense;
    if (cap < 5)
        return 0;
    rows_for(env, NSA_DTYPE_BF16, rows, &sel_bf16);
    rows_for(env, NSA_DTYPE_F32, rows + 2, &sel_f32);
    dense = dense_time_at(env, t_short);
    bench_set_row(&rows[4], dense / (double)t_short * 1e6, "us", dense / sel_bf16, 1.0, 0,
                  "causal dense (flex) bf16 us/token T=%lld; speed-up of select",
                  (long long)t_short);
    return 5;
}

const bench_case bench_select_attention = {"select_attention", run, 0};
