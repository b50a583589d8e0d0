/* SPDX-License-Identifier: Apache-2.0 */
/* flex attention: dense fp32 and bf16 (B=1, H=8, L=S=4096, E=128) against sgemm, causal against
 * dense, 2 threads against 1, a sliding window of 1024 on 32768 tokens per visited block
 * against dense per block, and building a causal 131072^2 block mask. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_cases.h"
#include "bench_util.h"

typedef struct flex_case {
    nsa_tensor q, k, v, out;
    nsa_block_mask *mask;
    nsa_flex_params p;
    nsa_context *ctx; /* run on this context, not the round's, when set */
} flex_case;

static nsa_status run_flex(void *arg, nsa_context *ctx)
{
    flex_case *c = (flex_case *)arg;
    return nsa_flex_attention(c->ctx ? c->ctx : ctx, &c->q, &c->k, &c->v, c->mask, NULL, &c->p,
                              &c->out, NULL);
}

/* Set up case `c` (free it with free_flex); *blocks gets the number of (q block, kv block)
 * pairs it visits. Returns 0 on failure. */
static int make_flex(const bench_env *env, int64_t h, int64_t l, nsa_dtype dt, nsa_mask_mod *mod,
                     flex_case *c, double *blocks)
{
    const int64_t e = 128, n = h * l * e;
    int64_t shape[4] = {1, h, l, e}, nb, i;
    nsa_tensor kvn;
    c->q = nsa_tensor_contiguous(bench_values((size_t)n, 21, dt), dt, 4, shape);
    c->k = nsa_tensor_contiguous(bench_values((size_t)n, 22, dt), dt, 4, shape);
    c->v = nsa_tensor_contiguous(bench_values((size_t)n, 23, dt), dt, 4, shape);
    c->out = nsa_tensor_contiguous(bench_alloc((size_t)n * nsa_dtype_size(dt)), dt, 4, shape);
    c->p = nsa_flex_params_default();
    c->mask = NULL;
    c->ctx = NULL;
    if (nsa_block_mask_create(env->ctx, mod, 1, 1, l, l, 128, 128, &c->mask) != NSA_SUCCESS) {
        fprintf(stderr, "nsa_bench: %s\n", nsa_last_error());
        return 0;
    }
    /* visited blocks: partial + full, summed over the q blocks (B = H = 1 broadcast) */
    *blocks = 0.0;
    nb = (l + 127) / 128;
    if (nsa_block_mask_array_view(c->mask, NSA_BM_KV_NUM_BLOCKS, &kvn) == NSA_SUCCESS)
        for (i = 0; i < nb; i++)
            *blocks += ((const int32_t *)kvn.data)[i];
    if (nsa_block_mask_array_view(c->mask, NSA_BM_FULL_KV_NUM_BLOCKS, &kvn) == NSA_SUCCESS)
        for (i = 0; i < nb; i++)
            *blocks += ((const int32_t *)kvn.data)[i];
    *blocks *= (double)h;
    return 1;
}

static void free_flex(flex_case *c)
{
    nsa_block_mask_free(c->mask);
    free(c->q.data);
    free(c->k.data);
    free(c->v.data);
    free(c->out.data);
}

/* The cases of one round, in this order. ONE_THREAD, the dense case on a one-thread context,
 * runs only with more threads. */
enum { DENSE, BF16, CAUSAL, WINDOW, ONE_THREAD, NCASES };

static int run(const bench_env *env, bench_row *rows, int cap)
{
    const int64_t l = bench_len(4096), lw = bench_len(32768), lm = bench_len(131072);
    const double flops = 4.0 * 8.0 * (double)l * (double)l * 128.0;
    nsa_mask_mod *noop = NULL, *causal = NULL, *sw = NULL;
    flex_case c[NCASES];
    double blocks[NCASES], t[(NCASES + 1) * 64], sgemm_flops, t0, tm[32];
    const int nops = env->threads > 1 ? NCASES : ONE_THREAD;
    nsa_context_config cfg = NSA_CONTEXT_CONFIG_INIT;
    int n = 0, r, i, reps = 0, made = 0;
    nsa_block_mask *bm;
    if (cap < 6)
        return 0;
    memset(c, 0, sizeof c);
    nsa_mask_mod_noop(&noop);
    nsa_mask_mod_causal(&causal);
    nsa_mask_mod_sliding_window(1024, &sw);
    /* Every case and an sgemm pass run in the same rounds and every figure is a median of
     * per-round ratios: this shared machine's speed drifts for minutes at a time. */
    made += make_flex(env, 8, l, NSA_DTYPE_F32, noop, &c[DENSE], &blocks[DENSE]);
    made += make_flex(env, 8, l, NSA_DTYPE_BF16, noop, &c[BF16], &blocks[BF16]);
    made += make_flex(env, 8, l, NSA_DTYPE_F32, causal, &c[CAUSAL], &blocks[CAUSAL]);
    made += make_flex(env, 8, lw, NSA_DTYPE_F32, sw, &c[WINDOW], &blocks[WINDOW]);
    c[ONE_THREAD] = c[DENSE];
    cfg.num_threads = 1;
    if (made == 4 && (nops == ONE_THREAD || nsa_context_create(&cfg, &c[ONE_THREAD].ctx) ==
                                               NSA_SUCCESS)) {
        bench_op_fn fns[NCASES];
        void *args[NCASES];
        for (i = 0; i < nops; i++) {
            fns[i] = run_flex;
            args[i] = &c[i];
        }
        reps = bench_rounds_vs_sgemm(env, nops, fns, args, t, &sgemm_flops);
        if (nops > ONE_THREAD)
            nsa_context_destroy(c[ONE_THREAD].ctx);
    }
    if (reps) {
        /* ratios first: bench_median sorts its input */
        double *td = t + DENSE * reps, *tw = t + WINDOW * reps, q[64];
        const double vs_sgemm = bench_median_ratio(t + nops * reps, td, reps) * flops / sgemm_flops;
        const double bf16 = bench_median_ratio(td, t + BF16 * reps, reps);
        const double causal_r = bench_median_ratio(t + CAUSAL * reps, td, reps);
        const double speedup =
            nops > ONE_THREAD ? bench_median_ratio(t + ONE_THREAD * reps, td, reps) : 0.0;
        double window;
        for (r = 0; r < reps; r++) /* per visited block */
            q[r] = (tw[r] / blocks[WINDOW]) / (td[r] / blocks[DENSE]);
        window = bench_median(q, reps);
        bench_set_row(&rows[n++], flops / bench_median(td, reps) * 1e-9, "GF", vs_sgemm, 0.85, 0,
                      "flex dense fp32 B=1 H=8 L=S=%lld E=128: GFLOP/s / sgemm", (long long)l);
        bench_set_row(&rows[n++], flops / bench_median(t + BF16 * reps, reps) * 1e-9, "GF", bf16,
                      0.95, 0, "flex dense bf16 inputs: GFLOP/s / the fp32 case");
        bench_set_row(&rows[n++], bench_median(t + CAUSAL * reps, reps) * 1e3, "ms", causal_r,
                      0.55, 1, "flex causal: time / dense time (ms)");
        if (nops > ONE_THREAD)
            bench_set_row(&rows[n++], speedup, "x", speedup, 1.85, 0,
                          "flex dense: speed-up over 1 thread");
        bench_set_row(&rows[n++], bench_median(tw, reps) * 1e3, "ms", window, 1.25, 1,
                      "flex sliding window 1024 on %lld: time per block / dense's (ms)",
                      (long long)lw);
    }
    for (i = 0; i < WINDOW + 1; i++)
        free_flex(&c[i]);
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
