/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The Native Sparse Attention pipeline on random data, as one layer of an NSA model runs it:
 *
 *   1. nsa_compress            K, V (T tokens)  ->  block summaries Kc, Vc (T' blocks)
 *   2. nsa_compress_attention  queries over Kc, Vc (NSA causal mask), plus the top-k
 *                              selection blocks per token (first and local blocks forced)
 *   3. nsa_select_attention    queries over the selected 64-token blocks of K, V (causal)
 *   4. nsa_flex_attention      a sliding window of 512 tokens over K, V
 *   5. the gated sum of the three branches
 *
 * It prints the shapes, the time of each step and a checksum of the output.
 * Usage: nsa_demo [T] [threads]     (T a multiple of 64, default 4096)
 */
#define _POSIX_C_SOURCE 200809L /* clock_gettime */

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "nsa/nsa.h"

enum { N1 = 16, N2 = 1, D = 128, DV = 128, CMP_L = 32, CMP_D = 16, SEL_L = 64, SEL_K = 16 };
#define WINDOW 512

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static float *random_floats(size_t n, unsigned seed)
{
    float *x = malloc(n * sizeof *x);
    size_t i;
    uint32_t s = seed;
    if (!x)
        exit(1);
    for (i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        x[i] = (float)(s >> 8) / 16777216.0f - 0.5f;
    }
    return x;
}

static int check(nsa_status st, const char *what)
{
    if (st != NSA_SUCCESS) {
        fprintf(stderr, "nsa_demo: %s failed: %s: %s\n", what, nsa_status_string(st),
                nsa_last_error());
        exit(1);
    }
    return 0;
}

int main(int argc, char **argv)
{
    const int64_t t = argc > 1 ? atoll(argv[1]) : 4096;
    const int threads = argc > 2 ? atoi(argv[2]) : 0;
    const int64_t tc = (t - CMP_L) / CMP_D + 1;         /* compressed blocks */
    const int64_t nsel = (tc + SEL_L / CMP_D - 1) / (SEL_L / CMP_D); /* selection blocks */
    const float scale = 1.0f / sqrtf((float)D);
    nsa_context_config cfg = NSA_CONTEXT_CONFIG_INIT;
    nsa_context *ctx = NULL;
    float *q, *k, *v, *w, *kc, *vc, *o_cmp, *o_sel, *o_win, *gate, *smax, *ssum;
    uint8_t *amask, *tmask;
    int32_t *topk;
    int64_t i, j, h, c;
    int64_t cum_t[1], cum_c[1];
    double t0, t_cmp, t_catt, t_sel, t_win, checksum = 0.0;

    if (t < 256 || t % 64 != 0) {
        fprintf(stderr, "nsa_demo: T must be a multiple of 64, at least 256\n");
        return 2;
    }
    cfg.num_threads = threads;
    check(nsa_context_create(&cfg, &ctx), "nsa_context_create");
    printf("libnsa %s (%s), %d threads\n", nsa_version_string(), nsa_build_info(),
           nsa_context_num_threads(ctx));
    printf("NSA layer: T=%lld tokens, %d query heads on %d kv head, D=%d, Dv=%d\n",
           (long long)t, N1, N2, D, DV);

    q = random_floats((size_t)(t * N1 * D), 1);
    k = random_floats((size_t)(t * N2 * D), 2);
    v = random_floats((size_t)(t * N2 * DV), 3);
    w = random_floats((size_t)(CMP_L * N2), 4);
    for (i = 0; i < CMP_L * N2; i++)
        w[i] = 1.0f / CMP_L + 0.01f * w[i]; /* roughly a mean over the window */
    kc = malloc(sizeof(float) * (size_t)(tc * N2 * D));
    vc = malloc(sizeof(float) * (size_t)(tc * N2 * DV));
    o_cmp = malloc(sizeof(float) * (size_t)(t * N1 * DV));
    o_sel = malloc(sizeof(float) * (size_t)(t * N1 * DV));
    o_win = malloc(sizeof(float) * (size_t)(t * N1 * DV));
    smax = malloc(sizeof(float) * (size_t)(t * N1 * 8));
    ssum = malloc(sizeof(float) * (size_t)(t * N1 * 8));
    topk = malloc(sizeof(int32_t) * (size_t)(t * N2 * SEL_K));
    amask = malloc((size_t)(t * tc));
    tmask = malloc((size_t)(t * nsel));
    gate = random_floats((size_t)(t * N1 * 3), 5);
    if (!kc || !vc || !o_cmp || !o_sel || !o_win || !smax || !ssum || !topk || !amask || !tmask)
        return 1;
    cum_t[0] = t;
    cum_c[0] = tc;

    /* 1. compress K and V */
    {
        int64_t sk[3] = {t, N2, D}, sv[3] = {t, N2, DV}, sw[2] = {CMP_L, N2};
        int64_t skc[3] = {tc, N2, D}, svc[3] = {tc, N2, DV};
        nsa_tensor tk = nsa_tensor_contiguous(k, NSA_DTYPE_F32, 3, sk);
        nsa_tensor tv = nsa_tensor_contiguous(v, NSA_DTYPE_F32, 3, sv);
        nsa_tensor tw = nsa_tensor_contiguous(w, NSA_DTYPE_F32, 2, sw);
        nsa_tensor tkc = nsa_tensor_contiguous(kc, NSA_DTYPE_F32, 3, skc);
        nsa_tensor tvc = nsa_tensor_contiguous(vc, NSA_DTYPE_F32, 3, svc);
        nsa_compress_params p = nsa_compress_params_default();
        p.compress_block_size = CMP_L;
        p.compress_stride = CMP_D;
        p.actual_seq_len = cum_t;
        p.actual_seq_len_count = 1;
        t0 = now();
        check(nsa_compress(ctx, &tk, &tw, &p, &tkc), "nsa_compress(key)");
        check(nsa_compress(ctx, &tv, &tw, &p, &tvc), "nsa_compress(value)");
        t_cmp = now() - t0;
    }
    printf("  1. compress       K %lldx%dx%d -> %lldx%dx%d, V -> %lldx%dx%d   %8.2f ms\n",
           (long long)t, N2, D, (long long)tc, N2, D, (long long)tc, N2, DV, t_cmp * 1e3);

    /* 2. compressed attention with top-k selection. Compressed block j covers tokens
     * [j*d, j*d + l): a query at position s may see it when j*d + l <= s + 1. The paper always
     * attends the first selection block and the local ones (the block of s and the one before),
     * which topk_mask forces. */
    for (i = 0; i < t; i++) {
        for (j = 0; j < tc; j++)
            amask[i * tc + j] = (uint8_t)(j * CMP_D + CMP_L > i + 1);
        for (j = 0; j < nsel; j++)
            tmask[i * nsel + j] = (uint8_t)(j == 0 || j == i / SEL_L || j == i / SEL_L - 1);
    }
    {
        int64_t sq[3] = {t, N1, D}, skc[3] = {tc, N2, D}, svc[3] = {tc, N2, DV};
        int64_t so[3] = {t, N1, DV}, sam[2] = {t, tc}, stm[2] = {t, nsel};
        int64_t sidx[3] = {t, N2, SEL_K}, sst[3] = {t, N1, 8};
        nsa_tensor tq = nsa_tensor_contiguous(q, NSA_DTYPE_F32, 3, sq);
        nsa_tensor tkc = nsa_tensor_contiguous(kc, NSA_DTYPE_F32, 3, skc);
        nsa_tensor tvc = nsa_tensor_contiguous(vc, NSA_DTYPE_F32, 3, svc);
        nsa_tensor to = nsa_tensor_contiguous(o_cmp, NSA_DTYPE_F32, 3, so);
        nsa_tensor tam = nsa_tensor_contiguous(amask, NSA_DTYPE_U8, 2, sam);
        nsa_tensor ttm = nsa_tensor_contiguous(tmask, NSA_DTYPE_U8, 2, stm);
        nsa_tensor tidx = nsa_tensor_contiguous(topk, NSA_DTYPE_I32, 3, sidx);
        nsa_tensor tmax = nsa_tensor_contiguous(smax, NSA_DTYPE_F32, 3, sst);
        nsa_tensor tsum = nsa_tensor_contiguous(ssum, NSA_DTYPE_F32, 3, sst);
        nsa_compress_attention_params p = nsa_compress_attention_params_default();
        p.scale_value = (double)scale;
        p.head_num = N1;
        p.compress_block_size = CMP_L;
        p.compress_stride = CMP_D;
        p.select_block_size = SEL_L;
        p.select_block_count = SEL_K;
        p.actual_seq_qlen = cum_t;
        p.actual_seq_qlen_count = 1;
        p.actual_cmp_seq_kvlen = cum_c;
        p.actual_cmp_seq_kvlen_count = 1;
        t0 = now();
        check(nsa_compress_attention(ctx, &tq, &tkc, &tvc, &tam, &ttm, &p, &to, &tidx, &tmax,
                                     &tsum),
              "nsa_compress_attention");
        t_catt = now() - t0;
    }
    printf("  2. compress_attn  Q %lldx%dx%d over %lld blocks -> out %lldx%dx%d, top-%d of %lld"
           "   %8.2f ms\n",
           (long long)t, N1, D, (long long)tc, (long long)t, N1, DV, SEL_K, (long long)nsel,
           t_catt * 1e3);

    /* 3. selected attention over the chosen 64-token blocks, causal */
    {
        int64_t sq[3] = {t, N1, D}, sk[3] = {t, N2, D}, sv[3] = {t, N2, DV};
        int64_t so[3] = {t, N1, DV}, sidx[3] = {t, N2, SEL_K};
        nsa_tensor tq = nsa_tensor_contiguous(q, NSA_DTYPE_F32, 3, sq);
        nsa_tensor tk = nsa_tensor_contiguous(k, NSA_DTYPE_F32, 3, sk);
        nsa_tensor tv = nsa_tensor_contiguous(v, NSA_DTYPE_F32, 3, sv);
        nsa_tensor to = nsa_tensor_contiguous(o_sel, NSA_DTYPE_F32, 3, so);
        nsa_tensor tidx = nsa_tensor_contiguous(topk, NSA_DTYPE_I32, 3, sidx);
        nsa_select_attention_params p = nsa_select_attention_params_default();
        p.scale_value = (double)scale;
        p.head_num = N1;
        p.select_block_size = SEL_L;
        p.select_block_count = SEL_K;
        p.actual_seq_qlen = cum_t;
        p.actual_seq_qlen_count = 1;
        p.actual_seq_kvlen = cum_t;
        p.actual_seq_kvlen_count = 1;
        p.sparse_mode = 2;
        t0 = now();
        check(nsa_select_attention(ctx, &tq, &tk, &tv, &tidx, &p, &to, NULL, NULL),
              "nsa_select_attention");
        t_sel = now() - t0;
    }
    printf("  3. select_attn    %d blocks of %d keys per token and kv head -> %lldx%dx%d"
           "   %8.2f ms\n",
           SEL_K, SEL_L, (long long)t, N1, DV, t_sel * 1e3);

    /* 4. sliding window through the flex engine: the TND tensors seen as (1, H, T, E) */
    {
        int64_t sq[4] = {1, N1, t, D}, stq[4] = {t * N1 * D, D, N1 * D, 1};
        int64_t sk[4] = {1, N2, t, D}, stk[4] = {t * N2 * D, D, N2 * D, 1};
        int64_t sv[4] = {1, N2, t, DV}, stv[4] = {t * N2 * DV, DV, N2 * DV, 1};
        int64_t so[4] = {1, N1, t, DV}, sto[4] = {t * N1 * DV, DV, N1 * DV, 1};
        nsa_tensor tq = nsa_tensor_strided(q, NSA_DTYPE_F32, 4, sq, stq);
        nsa_tensor tk = nsa_tensor_strided(k, NSA_DTYPE_F32, 4, sk, stk);
        nsa_tensor tv = nsa_tensor_strided(v, NSA_DTYPE_F32, 4, sv, stv);
        nsa_tensor to = nsa_tensor_strided(o_win, NSA_DTYPE_F32, 4, so, sto);
        nsa_mask_mod *window = NULL;
        nsa_block_mask *bm = NULL;
        nsa_flex_params p = nsa_flex_params_default();
        p.scale = scale;
        p.enable_gqa = 1;
        t0 = now();
        check(nsa_mask_mod_sliding_window(WINDOW, &window), "nsa_mask_mod_sliding_window");
        check(nsa_block_mask_create(ctx, window, 1, 1, t, t, 128, 128, &bm),
              "nsa_block_mask_create");
        check(nsa_flex_attention(ctx, &tq, &tk, &tv, bm, NULL, &p, &to, NULL),
              "nsa_flex_attention");
        t_win = now() - t0;
        nsa_block_mask_free(bm);
        nsa_mask_mod_free(window);
    }
    printf("  4. sliding window %d tokens through flex_attention -> %lldx%dx%d"
           "   %8.2f ms\n",
           WINDOW, (long long)t, N1, DV, t_win * 1e3);

    /* 5. gated sum: each token and head mixes the branches with sigmoid gates */
    for (i = 0; i < t; i++)
        for (h = 0; h < N1; h++) {
            const float *g = gate + (i * N1 + h) * 3;
            float g0 = 1.0f / (1.0f + expf(-4.0f * g[0])), g1 = 1.0f / (1.0f + expf(-4.0f * g[1]));
            float g2 = 1.0f / (1.0f + expf(-4.0f * g[2]));
            for (c = 0; c < DV; c++) {
                int64_t at = (i * N1 + h) * DV + c;
                checksum += (double)(g0 * o_cmp[at] + g1 * o_sel[at] + g2 * o_win[at]);
            }
        }
    printf("  5. gated sum of the three branches -> %lldx%dx%d\n", (long long)t, N1, DV);
    printf("total %.2f ms, checksum %.6f\n", (t_cmp + t_catt + t_sel + t_win) * 1e3, checksum);

    free(q);
    free(k);
    free(v);
    free(w);
    free(kc);
    free(vc);
    free(o_cmp);
    free(o_sel);
    free(o_win);
    free(smax);
    free(ssum);
    free(topk);
    free(amask);
    free(tmask);
    free(gate);
    nsa_context_destroy(ctx);
    return isfinite(checksum) ? 0 : 1;
}
