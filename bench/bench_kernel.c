/* SPDX-License-Identifier: Apache-2.0 */
/* The shared kernel alone on a dense attention (B=1, H heads, L = S, D = Dv), next to
 * cblas_sgemm on large squares in the same run. Usage: bench_kernel [L] [H] [D] [reps] */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "bench_util.h"
#include "kernel/attn_tile.h"

typedef struct dense {
    int h, l, d, threads;
    int qt, kv_chunk; /* query rows per tile ($QT) and the tile's kv_chunk ($KC) */
    const float *q, *k, *v;
    float *o;
    char *scratch;
    size_t scratch_size;
} dense;

static void worker(void *arg, size_t w)
{
    const dense *p = (const dense *)arg;
    const int qt = p->qt, ntiles_per_head = (p->l + qt - 1) / qt;
    const int ntiles = ntiles_per_head * p->h;
    const void *qrows[512];
    void *orows[512];
    int t, r;
    for (t = (int)w; t < ntiles; t += p->threads) {
        int h = t / ntiles_per_head, q0 = (t % ntiles_per_head) * qt;
        int m = p->l - q0 < qt ? p->l - q0 : qt;
        nsa_kv_block blk = {0};
        nsa_attn_tile tile = {0};
        for (r = 0; r < m; r++) {
            qrows[r] = p->q + ((size_t)h * p->l + q0 + r) * p->d;
            orows[r] = p->o + ((size_t)h * p->l + q0 + r) * p->d;
        }
        blk.k = p->k + (size_t)h * p->l * p->d;
        blk.v = p->v + (size_t)h * p->l * p->d;
        blk.k_row_stride = blk.v_row_stride = p->d;
        blk.k_col_stride = blk.v_col_stride = 1;
        blk.len = p->l;
        tile.m = m;
        tile.q_rows = qrows;
        tile.q_col_stride = 1;
        tile.q_dtype = NSA_DTYPE_F32;
        tile.d = tile.dv = p->d;
        tile.scale = 1.0f / sqrtf((float)p->d);
        tile.kv_dtype = NSA_DTYPE_F32;
        tile.blocks = &blk;
        tile.nblocks = 1;
        tile.kv_chunk = p->kv_chunk;
        tile.o_rows = orows;
        tile.o_col_stride = 1;
        tile.o_dtype = NSA_DTYPE_F32;
        nsa_attn_tile_run(&tile, p->scratch + w * p->scratch_size);
    }
}

int main(int argc, char **argv)
{
    int l = argc > 1 ? atoi(argv[1]) : 2048, h = argc > 2 ? atoi(argv[2]) : 8;
    int d = argc > 3 ? atoi(argv[3]) : 128, reps = argc > 4 ? atoi(argv[4]) : 5;
    /* read once here: getenv in the workers would run inside the timed region */
    const int qt = getenv("QT") ? atoi(getenv("QT")) : NSA_ATTN_Q_TILE;
    const int kv_chunk = getenv("KC") ? atoi(getenv("KC")) : 0;
    size_t n = (size_t)h * l * d, i;
    float *q = malloc(n * 4), *k = malloc(n * 4), *v = malloc(n * 4), *o = malloc(n * 4);
    double flops = 4.0 * h * (double)l * l * d, t[32];
    int threads, rep;
    for (i = 0; i < n; i++) {
        q[i] = (float)((i * 7) % 13) * 0.05f;
        k[i] = (float)((i * 5) % 11) * 0.05f;
        v[i] = (float)((i * 3) % 17) * 0.05f;
    }
    if (reps > 32)
        reps = 32;
    printf("dense attention B=1 H=%d L=S=%d D=Dv=%d fp32 (%.1f GFLOP per call)\n", h, l, d,
           flops * 1e-9);
    for (threads = 1; threads <= 2; threads++) {
        nsa_context_config cfg = NSA_CONTEXT_CONFIG_INIT;
        nsa_context *ctx;
        dense p;
        double sg, gf;
        cfg.num_threads = threads;
        if (getenv("ONLY") && atoi(getenv("ONLY")) != threads)
            continue;
        nsa_context_create(&cfg, &ctx);
        p.h = h;
        p.l = l;
        p.d = d;
        p.threads = threads;
        p.qt = qt;
        p.kv_chunk = kv_chunk;
        p.q = q;
        p.k = k;
        p.v = v;
        p.o = o;
        p.scratch_size = nsa_attn_scratch_size(512, d, d, 1024);
        if (posix_memalign((void **)&p.scratch, 64, p.scratch_size * (size_t)threads) != 0)
            return 1;
        for (rep = 0; rep <= reps; rep++) {
            double t0 = bench_now();
            nsa_parallel_for(ctx, worker, &p, (size_t)threads);
            if (rep > 0)
                t[rep - 1] = bench_now() - t0;
        }
        gf = flops / bench_median(t, reps) * 1e-9;
        sg = bench_sgemm_gflops(2048, threads, reps);
        printf("threads=%d kernel %.1f GFLOP/s  sgemm(2048^3) %.1f GFLOP/s  ratio %.2f\n",
               threads, gf, sg, gf / sg);
        free(p.scratch);
        nsa_context_destroy(ctx);
    }
    free(q);
    free(k);
    free(v);
    free(o);
    return 0;
}
