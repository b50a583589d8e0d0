/* SPDX-License-Identifier: Apache-2.0 */
/* flex attention: dense fp32 and bf16 (B=1, H=8, L=S=4096, E=128) against sgemm, causal against
 * dense, 2 threads against 1, a sliding window of 1024 on 32768 tokens per visited block
 * against dense per block, and building a causal 131072^2 block mask. */
#include <stdio.h>
#include <stdlib.h>

#include "bench_cases.h"
#include "bench_util.h"

typedef struct flex_case {
    nsa_tensor q, k, v, out;
    nsa_block_mask *mask;
    nsa_flex_params p;
} flex_case;

static nsa_status run_flex(void *arg, nsa_context *ctx)
{
    flex_case *c = (flex_case *)arg;
    return nsa_flex_attention(ctx, &c->q, &c->k, &c->v, c->mask, NULL, &c->p, &c->out, NULL);
}

/* Seconds per call; *blocks gets the number of (q block, kv block) pairs visited. With
 * `ratio`, the calls alternate with sgemm passes and *ratio is the dense case's GFLOP/s over
 * sgemm's, per round. */
static double time_flex(const bench_env *env, int64_t h, int64_t l, nsa_dtype dt,
                        nsa_mask_mod *mod, double *blocks, double *ratio)
{
    const int64_t e = 128, n = h * l * e;
    int64_t shape[4] = {1, h, l, e}, nb, i;
    const size_t es = nsa_dtype_size(dt);
    void *q = bench_values((size_t)n, 21, dt), *k = bench_values((size_t)n, 22, dt);
    void *v = bench_values((size_t)n, 23, dt), *o = bench_alloc((size_t)n * es);
    flex_case c;
    nsa_tensor kvn;
    double sec;
    c.q = nsa_tensor_contiguous(q, dt, 4, shape);
    c.k = nsa_tensor_contiguous(k, dt, 4, shape);
    c.v = nsa_tensor_contiguous(v, dt, 4, shape);
    c.out = nsa_tensor_contiguous(o, dt, 4, shape);
    c.p = nsa_flex_params_default();
    c.mask = NULL;
    if (nsa_block_mask_create(env->ctx, mod, 1, 1, l, l, 128, 128, &c.mask) != NSA_SUCCESS) {
        fprintf(stderr, "nsa_bench: %s\n", nsa_last_error());
        return -1.0;
    }
    /* visited blocks: partial + full, summed over the q blocks (B = H = 1 broadcast) */
    *blocks = 0.0;
    nb = (l + 127) / 128;
    if (nsa_block_mask_array_view(c.mask, NSA_BM_KV_NUM_BLOCKS, &kvn) == NSA_SUCCESS)
        for (i = 0; i < nb; i++)
            *blocks += ((const int32_t *)kvn.data)[i];
    if (nsa_block_mask_array_view(c.mask, NSA_BM_FULL_KV_NUM_BLOCKS, &kvn) == NSA_SUCCESS)
        for (i = 0; i < nb; i++)
            *blocks += ((const int32_t *)kvn.data)[i];
    *blocks *= (double)h;
    sec = ratio ? bench_time_vs_sgemm(env, run_flex, &c, 4.0 * (double)h * (double)l * (double)l *
                                                             (double)e, ratio)
                : bench_time_op(run_flex, &c, env->ctx);
    nsa_block_mask_free(c.mask);
    free(q);
    free(k);
    free(v);
    free(o);
    return sec;
}

static double g_dense_1thread; /* seconds of the dense fp32 case on one thread */

static int run(const bench_env *env, bench_row *rows, int cap)
{
    const int64_t l = bench_len(4096), lw = bench_len(32768), lm = bench_len(131072);
    const double flops = 4.0 * 8.0 * (double)l * (double)l * 128.0;
    nsa_mask_mod *noop = NULL, *causal = NULL, *sw = NULL;
    double bd, bc, bb, bw, t_dense, t_bf16, t_causal, t_sw, t0, tm[32], dense_ratio;
    int n = 0, r;
    nsa_block_mask *bm;
    if (cap < 6)
        return 0;
    nsa_mask_mod_noop(&noop);
    nsa_mask_mod_causal(&causal);
    nsa_mask_mod_sliding_window(1024, &sw);
    t_dense = time_flex(env, 8, l, NSA_DTYPE_F32, noop, &bd, &dense_ratio);
    t_bf16 = time_flex(env, 8, l, NSA_DTYPE_BF16, noop, &bb, NULL);
    t_causal = time_flex(env, 8, l, NSA_DTYPE_F32, causal, &bc, NULL);
    t_sw = time_flex(env, 8, lw, NSA_DTYPE_F32, sw, &bw, NULL);
    bench_set_row(&rows[n++], flops / t_dense * 1e-9, "GF", dense_ratio, 0.85, 0,
                  "flex dense fp32 B=1 H=8 L=S=%lld E=128: GFLOP/s / sgemm", (long long)l);
    bench_set_row(&rows[n++], flops / t_bf16 * 1e-9, "GF", t_dense / t_bf16, 0.95, 0,
                  "flex dense bf16 inputs: GFLOP/s / the fp32 case");
    bench_set_row(&rows[n++], t_causal * 1e3, "ms", t_causal / t_dense, 0.55, 1,
                  "flex causal: time / dense time (ms)");
    if (env->threads == 1)
        g_dense_1thread = t_dense;
    else if (g_dense_1thread > 0.0)
        bench_set_row(&rows[n++], g_dense_1thread / t_dense, "x", g_dense_1thread / t_dense,
                      1.85, 0, "flex dense: speed-up over 1 thread");
    bench_set_row(&rows[n++], t_sw * 1e3, "ms", (t_sw / bw) / (t_dense / bd), 1.25, 1,
                  "flex sliding window 1024 on %lld: time per block / dense's (ms)",
                  (long long)lw);
    /* building the block mask alone */
    for (r = 0; r < bench_reps() && r < 32; r++) {
        t0 = bench_now();
        nsa_block_mask_create(env->ctx, causal, 1, 1, lm, lm, 128, 128, &bm);
        tm[r] = bench_now() - t0;
        nsa_block_mask_free(bm);
    }
    t0 = bench_median(tm, r) * 1e3;
    bench_set_row(&rows[n++], t0, "ms", t0, 10.0, 1,
                  "create_block_mask causal %lld^2, 128-blocks (ms)", (long long)lm);
    nsa_mask_mod_free(noop);
    nsa_mask_mod_free(causal);
    nsa_mask_mod_free(sw);
    return n;
}

const bench_case bench_flex = {"flex", run, 0};
