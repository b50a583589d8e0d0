/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ab_decode: two builds of libnsa, one decode case, their calls alternated in one process.
 *
 *   ab_decode LIB_A LIB_B [threads [S [pairs]]]
 *
 * Loads both shared libraries (dlopen), runs incre_flash_attention (B=1, N=32, kvN=8, D=128,
 * BNSD, S keys) with each in turn, a streaming read of another buffer as large as the cache
 * before every call so that each call reads the cache from DRAM, and prints both medians and
 * the median of the per-pair ratios B/A with its quartiles. On a shared machine whose memory
 * speed moves from minute to minute, separate runs of two builds differ by 10-20 % with no
 * change in the code; pairs a few milliseconds apart resolve 1 %. Environment: KVN (kv heads),
 * I8=1 (int8 K/V), F16=1 (f16 query and K/V), BSH=1 (BSH layout), PAGED=1 (pages of 128
 * keys, shuffled), SMALL_PAGES=1 (buffers on the system's default pages rather than advised onto
 * huge pages, bench_alloc), IN_CACHE=1 (no stream read between calls: with a small S the
 * cache stays in L2/L3, which times the loops rather than memory).
 */
#include <dlfcn.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"
#include "nsa/nsa.h"

typedef nsa_status (*ifa_fn)(nsa_context *, const nsa_tensor *, const nsa_tensor *,
                             const nsa_tensor *, const nsa_ifa_optional *,
                             const nsa_ifa_params *, nsa_tensor *);
typedef nsa_status (*ctx_fn)(const nsa_context_config *, nsa_context **);

/* A function from a library: dlsym returns an object pointer, which ISO C does not convert to
 * a function pointer; copying the bits is what POSIX guarantees works. */
static void *symbol(void *lib, const char *name, void *fn, size_t size)
{
    void *p = dlsym(lib, name);
    if (p)
        memcpy(fn, &p, size);
    return p;
}

int main(int argc, char **argv)
{
    const int64_t N = 32, D = 128, BLK = 128;
    const int64_t KVN = getenv("KVN") ? atoll(getenv("KVN")) : 8;
    const int threads = argc > 3 ? atoi(argv[3]) : 1;
    const int64_t S = argc > 4 ? atoll(argv[4]) : 32768;
    const int pairs = argc > 5 ? atoi(argv[5]) : 60;
    const int i8 = getenv("I8") != NULL, f16 = getenv("F16") != NULL;
    const int bsh = getenv("BSH") != NULL, paged = getenv("PAGED") != NULL;
    const int in_cache = getenv("IN_CACHE") != NULL;
    const nsa_dtype kd = i8 ? NSA_DTYPE_I8 : f16 ? NSA_DTYPE_F16 : NSA_DTYPE_BF16;
    const nsa_dtype qd = f16 ? NSA_DTYPE_F16 : NSA_DTYPE_BF16;
    const size_t kv = (size_t)(KVN * S * D), es = i8 ? 1 : 2;
    int64_t qs[4] = {1, N, 1, D}, ks[4] = {1, KVN, S, D}, qs3[3] = {1, 1, N * D},
            ks3[3] = {1, S, KVN * D}, as[4] = {2, KVN, 1, D}, nblk = S / BLK, asl = S;
    int64_t ps[4] = {nblk, KVN, BLK, D}, bts[2] = {1, nblk};
    ifa_fn run[2];
    nsa_context *ctx[2];
    nsa_tensor tq, to, tk, tv, ta, tbt;
    nsa_ifa_optional opt;
    nsa_ifa_params prm;
    uint16_t *q, *out;
    char *k, *v;
    float *aq;
    int32_t *table;
    uint64_t *sb;
    volatile uint64_t sink = 0; /* keeps the stream read */
    size_t sn, j;
    double *t[2], *ratio, med_a, med_b, med_r;
    int w, r;
    if (argc < 3 || pairs < 1 || S < BLK) {
        fprintf(stderr, "usage: ab_decode LIB_A LIB_B [threads [S >= 128 [pairs]]]\n");
        return 2;
    }
    bench_set_small_pages(getenv("SMALL_PAGES") != NULL);
    for (w = 0; w < 2; w++) {
        nsa_context_config cfg = NSA_CONTEXT_CONFIG_INIT;
        ctx_fn create;
        void *lib = dlopen(argv[1 + w], RTLD_NOW | RTLD_LOCAL);
        if (!lib || !symbol(lib, "nsa_incre_flash_attention", &run[w], sizeof run[w]) ||
            !symbol(lib, "nsa_context_create", &create, sizeof create)) {
            fprintf(stderr, "ab_decode: %s: %s\n", argv[1 + w], lib ? "no symbol" : dlerror());
            return 1;
        }
        cfg.num_threads = threads;
        if (create(&cfg, &ctx[w]) != NSA_SUCCESS)
            return 1;
    }
    q = (uint16_t *)bench_alloc((size_t)(N * D) * 2);
    out = (uint16_t *)bench_alloc((size_t)(N * D) * 2);
    k = (char *)bench_alloc(kv * es);
    v = (char *)bench_alloc(kv * es);
    aq = (float *)bench_alloc((size_t)(2 * KVN * D) * sizeof(float));
    table = (int32_t *)bench_alloc((size_t)nblk * sizeof(int32_t));
    for (j = 0; j < (size_t)(N * D); j++) /* about 1.0-1.9 in bf16 and f16 */
        q[j] = (uint16_t)(f16 ? 0x3c00 + (j * 37) % 0x3ff : 0x3f80 + (j * 37) % 0x7f);
    for (j = 0; j < kv * es; j += es) {
        if (i8) {
            k[j] = (char)(j * 7);
            v[j] = (char)(j * 13);
        } else { /* 0x3c00 + small: about 0.008 in bf16, 1.0 in f16 */
            const uint16_t a = (uint16_t)(0x3c00 + (j / 2) % 97),
                           b = (uint16_t)(0x3c00 + (j / 2) % 89);
            memcpy(k + j, &a, 2);
            memcpy(v + j, &b, 2);
        }
    }
    for (j = 0; j < (size_t)(2 * KVN * D); j++)
        aq[j] = 0.004f;
    tq = bsh ? nsa_tensor_contiguous(q, qd, 3, qs3) : nsa_tensor_contiguous(q, qd, 4, qs);
    to = bsh ? nsa_tensor_contiguous(out, qd, 3, qs3) : nsa_tensor_contiguous(out, qd, 4, qs);
    tk = bsh ? nsa_tensor_contiguous(k, kd, 3, ks3) : nsa_tensor_contiguous(k, kd, 4, ks);
    tv = bsh ? nsa_tensor_contiguous(v, kd, 3, ks3) : nsa_tensor_contiguous(v, kd, 4, ks);
    ta = nsa_tensor_contiguous(aq, NSA_DTYPE_F32, 4, as);
    memset(&opt, 0, sizeof opt);
    if (i8)
        opt.antiquant_scale = &ta;
    prm = nsa_ifa_params_default();
    prm.num_heads = N;
    prm.num_key_value_heads = KVN;
    prm.input_layout = bsh ? NSA_LAYOUT_BSH : NSA_LAYOUT_BNSD;
    prm.scale_value = 1.0 / sqrt((double)D);
    if (paged) { /* the cache's blocks in shuffled pages [nblk, KVN, BLK, D] */
        char *kp = (char *)bench_alloc(kv * es), *vp = (char *)bench_alloc(kv * es);
        bench_shuffle_pages(table, nblk);
        bench_page_cache(k, kp, table, nblk, KVN, S, BLK, D, es);
        bench_page_cache(v, vp, table, nblk, KVN, S, BLK, D, es);
        tk = nsa_tensor_contiguous(kp, kd, 4, ps);
        tv = nsa_tensor_contiguous(vp, kd, 4, ps);
        tbt = nsa_tensor_contiguous(table, NSA_DTYPE_I32, 2, bts);
        opt.block_table = &tbt;
        prm.block_size = BLK;
        prm.actual_seq_lengths = &asl;
        prm.actual_seq_lengths_count = 1;
    }
    sn = 2 * kv * es / 8;
    sb = (uint64_t *)bench_alloc(sn * 8);
    t[0] = (double *)malloc((size_t)pairs * sizeof(double));
    t[1] = (double *)malloc((size_t)pairs * sizeof(double));
    ratio = (double *)malloc((size_t)pairs * sizeof(double));
    if (!t[0] || !t[1] || !ratio)
        return 1;
    memset(sb, 1, sn * 8);
    for (r = 0; r < pairs; r++)
        for (w = 0; w < 2; w++) {
            const int lib = (r & 1) ? 1 - w : w; /* A B, B A, A B, ... */
            double t0;
            if (!in_cache)
                for (j = 0; j < sn; j++)
                    sink = sink + sb[j];
            t0 = bench_now();
            if (run[lib](ctx[lib], &tq, &tk, &tv, &opt, &prm, &to) != NSA_SUCCESS) {
                fprintf(stderr, "ab_decode: %s failed\n", argv[1 + lib]);
                return 1;
            }
            t[lib][r] = bench_now() - t0;
        }
    for (r = 0; r < pairs; r++)
        ratio[r] = t[1][r] / t[0][r];
    med_a = bench_median(t[0], pairs);
    med_b = bench_median(t[1], pairs);
    med_r = bench_median(ratio, pairs); /* sorts in place: the quartiles are read after it */
    printf("A %.3f ms  B %.3f ms (medians)  B/A per pair: median %.3f, quartiles %.3f-%.3f"
           "  [%d pairs, %d threads, S=%lld]\n",
           med_a * 1e3, med_b * 1e3, med_r, ratio[pairs / 4], ratio[3 * pairs / 4], pairs,
           threads, (long long)S);
    return 0;
}
