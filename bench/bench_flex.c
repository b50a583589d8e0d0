/* SPDX-License-Identifier: Apache-2.0 */
/* Flex-attention targets (issue 3): dense fp32 flex attention against the sgemm ceiling,
 * causal at most 0.55x dense, a sliding window costing in proportion to its blocks, and a
 * causal 131072^2 block mask built in at most 10 ms. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_cases.h"
#include "bench_util.h"

typedef struct flex_run {
    nsa_tensor q, k, v, out;
    const nsa_block_mask *bm;
} flex_run;

static nsa_status run_flex(void *arg, nsa_context *ctx)
{
    flex_run *r = (flex_run *)arg;
    return nsa_flex_attention(ctx, &r->q, &r->k, &r->v, r->bm, NULL, NULL, &r->out, NULL);
}

typedef struct mask_run {
    int64_t len;
    nsa_mask_mod *mm;
} mask_run;

static nsa_status run_mask(void *arg, nsa_context *ctx)
{
    mask_run *m = (mask_run *)arg;
    nsa_block_mask *bm = NULL;
    nsa_status st = nsa_block_mask_create(ctx, m->mm, 1, 1, m->len, m->len, 128, 128, &bm);
    nsa_block_mask_free(bm);
    return st;
}

/* Allocate q/k/v/out for (1, H, L, E) and time one mask. */
static double time_flex(const bench_env *env, int64_t H, int64_t L, int64_t E,
                        const nsa_mask_mod *mm, int64_t *blocks)
{
    int64_t shape[4];
    size_t n = (size_t)(H * L * E);
    float *q = (float *)bench_alloc(n * 4), *k = (float *)bench_alloc(n * 4);
    float *v = (float *)bench_alloc(n * 4), *o = (float *)bench_alloc(n * 4);
    nsa_block_mask *bm = NULL;
    flex_run r;
    double t;
    shape[0] = 1;
    shape[1] = H;
    shape[2] = L;
    shape[3] = E;
    bench_fill(q, n, 1);
    bench_fill(k, n, 2);
    bench_fill(v, n, 3);
    r.q = nsa_tensor_contiguous(q, NSA_DTYPE_F32, 4, shape);
    r.k = nsa_tensor_contiguous(k, NSA_DTYPE_F32, 4, shape);
    r.v = nsa_tensor_contiguous(v, NSA_DTYPE_F32, 4, shape);
    r.out = nsa_tensor_contiguous(o, NSA_DTYPE_F32, 4, shape);
    r.bm = NULL;
    *blocks = (L / 128) * (L / 128);
    if (mm && nsa_block_mask_create(env->ctx, mm, 1, 1, L, L, 128, 128, &bm) == NSA_SUCCESS) {
        nsa_block_mask_info info;
        nsa_tensor num, full;
        int64_t i;
        nsa_block_mask_get_info(bm, &info);
        nsa_block_mask_array_view(bm, NSA_BM_KV_NUM_BLOCKS, &num);
        nsa_block_mask_array_view(bm, NSA_BM_FULL_KV_NUM_BLOCKS, &full);
        *blocks = 0;
        for (i = 0; i < info.num_q_blocks; i++)
            *blocks += ((int32_t *)num.data)[i] + ((int32_t *)full.data)[i];
        r.bm = bm;
    }
    t = bench_time_op(run_flex, &r, env->ctx);
    nsa_block_mask_free(bm);
    free(q);
    free(k);
    free(v);
    free(o);
    return t;
}

static int run(const bench_env *env, bench_row *rows, int cap)
{
    const int64_t H = 8, E = 128, L = bench_len(4096);
    const int64_t Lsw = bench_len(32768), Lc = bench_len(8192);
    nsa_mask_mod *causal = NULL, *sw = NULL;
    int64_t nb_dense, nb_causal, nb_sw, nb_c1;
    double t_dense, t_causal, t_sw, t_c1, gflops;
    mask_run mr;
    int n = 0;
    if (cap < 4)
        return 0;
    nsa_mask_mod_causal(&causal);
    nsa_mask_mod_sliding_window(1024, &sw);

    t_dense = time_flex(env, H, L, E, NULL, &nb_dense);
    gflops = 4.0 * (double)H * (double)L * (double)L * (double)E / t_dense * 1e-9;
    snprintf(rows[n].label, sizeof rows[n].label,
             "flex dense f32 H=8 L=S=%lld E=128: GFLOP/s / sgemm", (long long)L);
    rows[n].measured = gflops;
    rows[n].unit = "GF";
    rows[n].figure = gflops / env->sgemm_gflops;
    rows[n].target = 0.6;
    rows[n].lower_is_better = 0;
    n++;

    t_causal = time_flex(env, H, L, E, causal, &nb_causal);
    snprintf(rows[n].label, sizeof rows[n].label, "flex causal / dense time, L=%lld",
             (long long)L);
    rows[n].measured = t_causal * 1e3;
    rows[n].unit = "ms";
    rows[n].figure = t_causal / t_dense;
    rows[n].target = 0.55;
    rows[n].lower_is_better = 1;
    n++;

    /* cost per visited block: sliding window 1024 on Lsw vs causal on Lc (H = 1) */
    t_sw = time_flex(env, 1, Lsw, E, sw, &nb_sw);
    t_c1 = time_flex(env, 1, Lc, E, causal, &nb_c1);
    snprintf(rows[n].label, sizeof rows[n].label,
             "flex window 1024 on %lld: time per block / causal's", (long long)Lsw);
    rows[n].measured = t_sw * 1e3;
    rows[n].unit = "ms";
    rows[n].figure = (t_sw / (double)nb_sw) / (t_c1 / (double)nb_c1);
    rows[n].target = 1.25;
    rows[n].lower_is_better = 1;
    n++;

    mr.len = 131072;
    mr.mm = causal;
    rows[n].measured = bench_time_op(run_mask, &mr, env->ctx) * 1e3;
    snprintf(rows[n].label, sizeof rows[n].label, "block mask causal 131072^2, 128-blocks");
    rows[n].unit = "ms";
    rows[n].figure = rows[n].measured;
    rows[n].target = 10.0;
    rows[n].lower_is_better = 1;
    n++;

    nsa_mask_mod_free(causal);
    nsa_mask_mod_free(sw);
    return n;
}

const bench_case bench_flex = {"flex", run};
