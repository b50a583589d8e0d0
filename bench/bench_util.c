/* SPDX-License-Identifier: Apache-2.0 */
#include "bench_util.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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

double bench_sgemm_gflops(int n, int threads, int reps)
{
    float *a = malloc(sizeof(float) * (size_t)n * (size_t)n);
    float *b = malloc(sizeof(float) * (size_t)n * (size_t)n);
    float *c = malloc(sizeof(float) * (size_t)n * (size_t)n);
    double t[32];
    int i;
    if (reps > 32)
        reps = 32;
    for (i = 0; i < n * n; i++) {
        a[i] = (float)(i % 7) * 0.1f;
        b[i] = (float)(i % 5) * 0.1f;
    }
#ifdef NSA_HAVE_CBLAS
    openblas_set_num_threads(threads);
#else
    (void)threads; /* the built-in GEMM is single-threaded */
#endif
    nsa_sgemm(0, 0, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n); /* warm-up */
    for (i = 0; i < reps; i++) {
        double t0 = bench_now();
#ifdef NSA_HAVE_CBLAS
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f,
                    c, n);
#else
        nsa_sgemm(0, 0, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
#endif
        t[i] = bench_now() - t0;
    }
#ifdef NSA_HAVE_CBLAS
    openblas_set_num_threads(1);
#endif
    free(a);
    free(b);
    free(c);
    return 2.0 * (double)n * (double)n * (double)n / bench_median(t, reps) * 1e-9;
}

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
    s->buf = malloc(n * sizeof(uint64_t) + 1);
    if (!s->buf) {
        free(s);
        return NULL;
    }
    memset(s->buf, 1, n * sizeof(uint64_t)); /* pages the buffer in */
    s->per = n / (size_t)s->threads;
    return s;
}

double bench_stream_pass(bench_stream *s)
{
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
