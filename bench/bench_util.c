/* SPDX-License-Identifier: Apache-2.0 */
#define _DEFAULT_SOURCE /* madvise */
#include "bench_util.h"

#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef __linux__
#include <sys/mman.h>
#endif

#ifdef NSA_HAVE_CBLAS
#include <cblas.h>
#endif
#include "blas/blas.h"

double bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int g_small_pages;

void bench_set_small_pages(int on)
{
    g_small_pages = on;
}

int bench_small_pages(void)
{
    return g_small_pages;
}

void *bench_alloc(size_t bytes)
{
    const size_t huge = (size_t)2 << 20;
    const int big = !g_small_pages && bytes >= huge;
    void *p = NULL;
    if (posix_memalign(&p, big ? huge : 64, bytes ? bytes : 1) != 0) {
        fprintf(stderr, "bench: out of memory (%zu bytes)\n", bytes);
        exit(1);
    }
#ifdef MADV_HUGEPAGE
    if (big)
        (void)madvise(p, bytes, MADV_HUGEPAGE); /* a hint: where it is refused, small pages */
#endif
    return p;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

double bench_median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

#ifdef NSA_HAVE_CBLAS
void openblas_set_num_threads(int);
#endif


typedef struct stream_arg {
    const uint64_t *p;
    size_t n;
    uint64_t sum;
} stream_arg;

static void *stream_part(void *v)
{
    stream_arg *a = (stream_arg *)v;
    uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    size_t i;
    for (i = 0; i + 4 <= a->n; i += 4) {
        s0 += a->p[i];
        s1 += a->p[i + 1];
        s2 += a->p[i + 2];
        s3 += a->p[i + 3];
    }
    a->sum = s0 + s1 + s2 + s3;
    return NULL;
}

struct bench_sgemm {
    float *a, *b, *c;
    int n, threads;
};

bench_sgemm *bench_sgemm_new(int n, int threads)
{
    bench_sgemm *g = calloc(1, sizeof *g);
    size_t i, nn = (size_t)n * (size_t)n;
    if (!g)
        return NULL;
    g->n = n;
    g->threads = threads;
    g->a = malloc(sizeof(float) * nn);
    g->b = malloc(sizeof(float) * nn);
    g->c = malloc(sizeof(float) * nn);
    if (!g->a || !g->b || !g->c) {
        bench_sgemm_free(g);
        return NULL;
    }
    for (i = 0; i < nn; i++) {
        g->a[i] = (float)(i % 7) * 0.1f;
        g->b[i] = (float)(i % 5) * 0.1f;
    }
    return g;
}

double bench_sgemm_pass(void *sgemm)
{
    bench_sgemm *g = (bench_sgemm *)sgemm;
    const int n = g->n;
    double t0;
#ifdef NSA_HAVE_CBLAS
    openblas_set_num_threads(g->threads);
    t0 = bench_now();
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, g->a, n, g->b, n, 0.0f,
                g->c, n);
    t0 = bench_now() - t0;
    openblas_set_num_threads(1);
#else
    t0 = bench_now();
    nsa_sgemm(0, 0, n, n, n, 1.0f, g->a, n, g->b, n, 0.0f, g->c, n);
    t0 = bench_now() - t0;
#endif
    return t0;
}

double bench_sgemm_flops(const bench_sgemm *g)
{
    return 2.0 * (double)g->n * (double)g->n * (double)g->n;
}

void bench_sgemm_free(bench_sgemm *g)
{
    if (g) {
        free(g->a);
        free(g->b);
        free(g->c);
        free(g);
    }
}

double bench_sgemm_gflops(int n, int threads, int reps)
{
    bench_sgemm *g = bench_sgemm_new(n, threads);
    double t[32], flops;
    int i;
    if (!g)
        return NAN;
    if (reps > 32)
        reps = 32;
    bench_sgemm_pass(g); /* warm-up */
    for (i = 0; i < reps; i++)
        t[i] = bench_sgemm_pass(g);
    flops = bench_sgemm_flops(g);
    bench_sgemm_free(g);
    return flops / bench_median(t, reps) * 1e-9;
}

struct bench_stream {
    uint64_t *buf;
    size_t per; /* words per thread */
    int threads;
};

bench_stream *bench_stream_new(size_t bytes, int threads)
{
    bench_stream *s = calloc(1, sizeof *s);
    size_t n = bytes / sizeof(uint64_t);
    if (!s)
        return NULL;
    s->threads = threads < 1 ? 1 : threads > 64 ? 64 : threads;
    s->buf = (uint64_t *)bench_alloc(n * sizeof(uint64_t) + 1);
    memset(s->buf, 1, n * sizeof(uint64_t)); /* pages the buffer in */
    s->per = n / (size_t)s->threads;
    return s;
}

double bench_stream_pass(void *stream)
{
    bench_stream *s = (bench_stream *)stream;
    pthread_t th[64];
    stream_arg args[64];
    volatile uint64_t sink = 0;
    double t0 = bench_now();
    int i;
    for (i = 0; i < s->threads; i++) {
        args[i].p = s->buf + (size_t)i * s->per;
        args[i].n = s->per;
        pthread_create(&th[i], NULL, stream_part, &args[i]);
    }
    for (i = 0; i < s->threads; i++) {
        pthread_join(th[i], NULL);
        sink += args[i].sum;
    }
    (void)sink;
    return bench_now() - t0;
}

size_t bench_stream_bytes(const bench_stream *s)
{
    return s->per * (size_t)s->threads * sizeof(uint64_t);
}

void bench_stream_free(bench_stream *s)
{
    if (s) {
        free(s->buf);
        free(s);
    }
}

double bench_stream_read(size_t bytes, int threads, int reps)
{
    bench_stream *s = bench_stream_new(bytes, threads);
    double t[32];
    int r;
    if (reps > 32)
        reps = 32;
    for (r = 0; r < reps; r++)
        t[r] = bench_stream_pass(s);
    bytes = bench_stream_bytes(s);
    bench_stream_free(s);
    return (double)bytes / bench_median(t, reps);
}

void bench_shuffle_pages(int32_t *table, int64_t nblk)
{
    int64_t i;
    for (i = 0; i < nblk; i++)
        table[i] = (int32_t)i;
    for (i = nblk - 1; i > 0; i--) {
        const int64_t j = (i * 7919 + 13) % (i + 1);
        const int32_t t = table[i];
        table[i] = table[j];
        table[j] = t;
    }
}

void bench_page_cache(const void *src, void *dst, const int32_t *table, int64_t nblk,
                      int64_t kvn, int64_t S, int64_t blk, int64_t d, size_t esize)
{
    const size_t piece = (size_t)(blk * d) * esize;
    int64_t i, h;
    for (i = 0; i < nblk; i++)
        for (h = 0; h < kvn; h++)
            memcpy((char *)dst + (size_t)(table[i] * kvn + h) * piece,
                   (const char *)src + (size_t)((h * S + i * blk) * d) * esize, piece);
}
