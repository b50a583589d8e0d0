/* SPDX-License-Identifier: Apache-2.0 */
/* nsa_compress against the streaming-read bandwidth of the same bytes, and
 * nsa_compress_attention against cblas_sgemm, measured in the same run.
 * Usage: bench_nsa_compress [reps] [T] [T1]
 * Defaults: compress T = 65536, N = 16, D = 192, l = 32, d = 16, bf16;
 *           compress_attention T1 = 8192, 511 compressed keys, N1 = 16, N2 = 1, D = 192,
 *           Dv = 128, bf16, l = 32, d = 16, l' = 64, k = 16. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"
#include "nsa/nsa.h"

static void *fill_bf16(size_t n, unsigned seed)
{
    uint16_t *x = malloc(n * 2);
    size_t i;
    for (i = 0; i < n; i++) {
        seed = seed * 1103515245u + 12345u;
        x[i] = nsa_f32_to_bf16((float)((seed >> 8) & 0xffff) / 65536.0f - 0.5f,
                               NSA_ROUND_NEAREST_EVEN);
    }
    return x;
}

int main(int argc, char **argv)
{
    const int reps = argc > 1 ? atoi(argv[1]) : 3;
    const int64_t T = argc > 2 ? atoll(argv[2]) : 65536, N = 16, D = 192;
    const int64_t T1 = argc > 3 ? atoll(argv[3]) : 8192, S2 = 511, N1 = 16, Dv = 128;
    const int threads = nsa_default_num_threads();
    double times[32], t0, med, bw, gf, sg;
    int r;

    { /* nsa_compress */
        int64_t seq[1], rows, shape[3];
        nsa_compress_params p = nsa_compress_params_default();
        void *in = fill_bf16((size_t)(T * N * D), 1), *w = fill_bf16(32 * (size_t)N, 2), *out;
        nsa_tensor ti, tw, to;
        size_t bytes;
        seq[0] = T;
        p.actual_seq_len = seq;
        p.actual_seq_len_count = 1;
        nsa_compress_output_rows(&p, &rows);
        out = malloc((size_t)(rows * N * D) * 2);
        shape[0] = T, shape[1] = N, shape[2] = D;
        ti = nsa_tensor_contiguous(in, NSA_DTYPE_BF16, 3, shape);
        shape[0] = 32;
        tw = nsa_tensor_contiguous(w, NSA_DTYPE_BF16, 2, shape);
        shape[0] = rows;
        to = nsa_tensor_contiguous(out, NSA_DTYPE_BF16, 3, shape);
        for (r = 0; r < reps && r < 32; r++) {
            t0 = bench_now();
            if (nsa_compress(NULL, &ti, &tw, &p, &to) != NSA_SUCCESS) {
                fprintf(stderr, "nsa_compress: %s\n", nsa_last_error());
                return 1;
            }
            times[r] = bench_now() - t0;
        }
        med = bench_median(times, r);
        bytes = (size_t)(T * N * D) * 2 + (size_t)(rows * N * D) * 2;
        bw = bench_stream_read(bytes, threads, reps);
        printf("nsa_compress T=%lld N=%lld D=%lld l=32 d=16 bf16, %d threads: %.2f ms, %.1f GB/s; "
               "stream read of the same %.0f MB: %.1f GB/s; ratio %.2f\n",
               (long long)T, (long long)N, (long long)D, threads, med * 1e3, bytes / med / 1e9,
               bytes / 1e6, bw / 1e9, bytes / med / bw);
        free(in);
        free(w);
        free(out);
    }
    { /* nsa_compress_attention */
        int64_t qlen[1], kvlen[1], shape[3];
        nsa_compress_attention_params p = nsa_compress_attention_params_default();
        void *q = fill_bf16((size_t)(T1 * N1 * D), 3), *k = fill_bf16((size_t)(S2 * D), 4);
        void *v = fill_bf16((size_t)(S2 * Dv), 5), *o = malloc((size_t)(T1 * N1 * Dv) * 2);
        int32_t *topk = malloc((size_t)T1 * 16 * 4);
        float *smax = malloc((size_t)(T1 * N1 * 8) * 4), *ssum = malloc((size_t)(T1 * N1 * 8) * 4);
        nsa_tensor tq, tk, tv, to, tt, tm, ts;
        qlen[0] = T1;
        kvlen[0] = S2;
        p.head_num = N1;
        p.scale_value = 0.07;
        p.actual_seq_qlen = qlen;
        p.actual_seq_qlen_count = 1;
        p.actual_cmp_seq_kvlen = kvlen;
        p.actual_cmp_seq_kvlen_count = 1;
        shape[0] = T1, shape[1] = N1, shape[2] = D;
        tq = nsa_tensor_contiguous(q, NSA_DTYPE_BF16, 3, shape);
        shape[2] = Dv;
        to = nsa_tensor_contiguous(o, NSA_DTYPE_BF16, 3, shape);
        shape[2] = 8;
        tm = nsa_tensor_contiguous(smax, NSA_DTYPE_F32, 3, shape);
        ts = nsa_tensor_contiguous(ssum, NSA_DTYPE_F32, 3, shape);
        shape[1] = 1, shape[2] = 16;
        tt = nsa_tensor_contiguous(topk, NSA_DTYPE_I32, 3, shape);
        shape[0] = S2, shape[2] = D;
        tk = nsa_tensor_contiguous(k, NSA_DTYPE_BF16, 3, shape);
        shape[2] = Dv;
        tv = nsa_tensor_contiguous(v, NSA_DTYPE_BF16, 3, shape);
        for (r = 0; r < reps && r < 32; r++) {
            t0 = bench_now();
            if (nsa_compress_attention(NULL, &tq, &tk, &tv, NULL, NULL, &p, &to, &tt, &tm, &ts) !=
                NSA_SUCCESS) {
                fprintf(stderr, "nsa_compress_attention: %s\n", nsa_last_error());
                return 1;
            }
            times[r] = bench_now() - t0;
        }
        med = bench_median(times, r);
        gf = 2.0 * (double)T1 * (double)N1 * (double)S2 * (double)(D + Dv) / med / 1e9;
        sg = bench_sgemm_gflops(1024, threads, reps);
        printf("nsa_compress_attention T1=%lld S2=%lld N1=%lld N2=1 D=%lld Dv=%lld bf16, %d threads: "
               "%.2f ms, %.1f GFLOP/s (QK^T + PV); sgemm 1024^3: %.1f GFLOP/s; ratio %.2f\n",
               (long long)T1, (long long)S2, (long long)N1, (long long)D, (long long)Dv, threads,
               med * 1e3, gf, sg, gf / sg);
        free(q);
        free(k);
        free(v);
        free(o);
        free(topk);
        free(smax);
        free(ssum);
    }
    return 0;
}
