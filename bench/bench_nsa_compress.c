/* SPDX-License-Identifier: Apache-2.0 */
/* nsa_compress against a streaming read of the same bytes, and nsa_compress_attention against
 * cblas_sgemm, both measured in this run (targets: 0.6 of each ceiling).
 *   compress:           T = 65536 (scaled), N = 16, D = 192, l = 32, d = 16, bf16
 *   compress_attention: T1 = 8192 (scaled), 511 compressed keys, N1 = 16, N2 = 1, D = 192,
 *                       Dv = 128, bf16, (l, d, l', k) = (32, 16, 64, 16) */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "bench_cases.h"
#include "bench_util.h"

typedef struct compress_arg {
    nsa_tensor in, w, out;
    nsa_compress_params p;
} compress_arg;

static nsa_status run_compress(void *arg, nsa_context *ctx)
{
    compress_arg *a = (compress_arg *)arg;
    return nsa_compress(ctx, &a->in, &a->w, &a->p, &a->out);
}

typedef struct cattn_arg {
    nsa_tensor q, k, v, out, topk, smax, ssum;
    nsa_compress_attention_params p;
} cattn_arg;

static nsa_status run_cattn(void *arg, nsa_context *ctx)
{
    cattn_arg *a = (cattn_arg *)arg;
    return nsa_compress_attention(ctx, &a->q, &a->k, &a->v, NULL, NULL, &a->p, &a->out,
                                  &a->topk, &a->smax, &a->ssum);
}

static int run(const bench_env *env, bench_row *rows, int cap)
{
    const int64_t T = bench_len(65536), N = 16, D = 192;
    const int64_t T1 = bench_len(8192), S2 = 511, N1 = 16, Dv = 128;
    int n = 0;
    if (cap < 2)
        return 0;
    { /* nsa_compress */
        compress_arg a;
        int64_t seq[1], rows_out, shape[3];
        double sec, bytes, ratio;
        seq[0] = T;
        a.p = nsa_compress_params_default();
        a.p.actual_seq_len = seq;
        a.p.actual_seq_len_count = 1;
        nsa_compress_output_rows(&a.p, &rows_out);
        shape[0] = T, shape[1] = N, shape[2] = D;
        a.in = nsa_tensor_contiguous(bench_values((size_t)(T * N * D), 1, NSA_DTYPE_BF16),
                                     NSA_DTYPE_BF16, 3, shape);
        shape[0] = 32;
        a.w = nsa_tensor_contiguous(bench_values((size_t)(32 * N), 2, NSA_DTYPE_BF16),
                                    NSA_DTYPE_BF16, 2, shape);
        shape[0] = rows_out;
        a.out = nsa_tensor_contiguous(bench_alloc((size_t)(rows_out * N * D) * 2), NSA_DTYPE_BF16,
                                      3, shape);
        bytes = (double)(T * N * D) * 2 + (double)(rows_out * N * D) * 2;
        { /* op and stream passes in alternation: the ratio is taken per round */
            const bench_op_fn fns[2] = {run_compress, NULL};
            void *const args[2] = {&a, NULL};
            bench_stream *st = bench_stream_new((size_t)bytes, env->threads);
            double t[2 * 64];
            int reps = bench_time_rounds(2, fns, args, env->ctx, bench_stream_pass, st, 0, t);
            double sbytes = (double)bench_stream_bytes(st);
            bench_stream_free(st);
            /* (bytes / t_op) / (sbytes / t_stream), per round (before the median sorts t) */
            ratio = reps ? bench_median_ratio(t + reps, t, reps) * bytes / sbytes : NAN;
            sec = reps ? bench_median(t, reps) : NAN;
        }
        bench_set_row(&rows[n++], bytes / sec * 1e-9, "GB", ratio, 0.6, 0,
                      "nsa_compress bf16 T=64K N=16 D=192 (GB/s; / stream read)");
        free(a.in.data);
        free(a.w.data);
        free(a.out.data);
    }
    { /* nsa_compress_attention */
        cattn_arg a;
        int64_t qlen[1], kvlen[1], shape[3];
        double sec, gf, flops, ratio;
        qlen[0] = T1;
        kvlen[0] = S2;
        a.p = nsa_compress_attention_params_default();
        a.p.head_num = N1;
        a.p.scale_value = 0.07;
        a.p.actual_seq_qlen = qlen;
        a.p.actual_seq_qlen_count = 1;
        a.p.actual_cmp_seq_kvlen = kvlen;
        a.p.actual_cmp_seq_kvlen_count = 1;
        shape[0] = T1, shape[1] = N1, shape[2] = D;
        a.q = nsa_tensor_contiguous(bench_values((size_t)(T1 * N1 * D), 3, NSA_DTYPE_BF16),
                                    NSA_DTYPE_BF16, 3, shape);
        shape[2] = Dv;
        a.out = nsa_tensor_contiguous(bench_alloc((size_t)(T1 * N1 * Dv) * 2), NSA_DTYPE_BF16, 3,
                                      shape);
        shape[2] = 8;
        a.smax = nsa_tensor_contiguous(bench_alloc((size_t)(T1 * N1 * 8) * 4), NSA_DTYPE_F32, 3,
                                       shape);
        a.ssum = nsa_tensor_contiguous(bench_alloc((size_t)(T1 * N1 * 8) * 4), NSA_DTYPE_F32, 3,
                                       shape);
        shape[1] = 1, shape[2] = 16;
        a.topk = nsa_tensor_contiguous(bench_alloc((size_t)T1 * 16 * 4), NSA_DTYPE_I32, 3, shape);
        shape[0] = S2, shape[2] = D;
        a.k = nsa_tensor_contiguous(bench_values((size_t)(S2 * D), 4, NSA_DTYPE_BF16),
                                    NSA_DTYPE_BF16, 3, shape);
        shape[2] = Dv;
        a.v = nsa_tensor_contiguous(bench_values((size_t)(S2 * Dv), 5, NSA_DTYPE_BF16),
                                    NSA_DTYPE_BF16, 3, shape);
        flops = 2.0 * (double)T1 * (double)N1 * (double)S2 * (double)(D + Dv);
        sec = bench_time_vs_sgemm(env, run_cattn, &a, flops, &ratio);
        gf = flops / sec * 1e-9;
        bench_set_row(&rows[n++], gf, "GF", ratio, 0.6, 0,
                      "nsa_compress_attention bf16 T1=8K S2=511 G=16 (GF; / sgemm)");
        free(a.q.data);
        free(a.k.data);
        free(a.v.data);
        free(a.out.data);
        free(a.topk.data);
        free(a.smax.data);
        free(a.ssum.data);
    }
    return n;
}

const bench_case bench_nsa_compress = {"nsa_compress", run, 0};
