/* SPDX-License-Identifier: Apache-2.0 */
/* Timing and machine-ceiling helpers shared by the benchmark programs. */
#ifndef NSA_BENCH_UTIL_H
#define NSA_BENCH_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* Buffers for ops and ceilings alike (64-byte aligned; exits when out of memory). Those of
 * 2 MiB or more are 2 MiB aligned and advised onto transparent huge pages (MADV_HUGEPAGE), so
 * that an op and the stream read it is measured against read through the same page size
 * whatever the system's THP default ("madvise" on the development machine gives 4 KiB pages
 * unless asked); bench_set_small_pages(1) leaves every buffer on the system's default pages. */
void *bench_alloc(size_t bytes);
void bench_set_small_pages(int on);
int bench_small_pages(void);
/* Monotonic seconds. */
double bench_now(void);
/* Median of n values (sorts in place). */
double bench_median(double *v, int n);
/* GFLOP/s of single-precision GEMM on n x n x n squares with `threads` BLAS threads
 * (median of reps). The compute ceiling. */
double bench_sgemm_gflops(int n, int threads, int reps);
/* Bytes per second of a streaming read of `bytes` bytes on `threads` threads (median of
 * reps). The bandwidth ceiling for a case that reads that much. */
double bench_stream_read(size_t bytes, int threads, int reps);

/* A buffer for single streaming-read passes, to interleave with the op being measured. */
typedef struct bench_stream bench_stream;
bench_stream *bench_stream_new(size_t bytes, int threads);
/* Seconds of one read of the whole buffer. */
double bench_stream_pass(void *stream); /* a bench_stream */
/* Bytes one pass reads. */
size_t bench_stream_bytes(const bench_stream *s);
void bench_stream_free(bench_stream *s);

/* Square single-precision GEMMs on `threads` BLAS threads, one pass at a time, to interleave
 * with the op being measured (the compute ceiling). */
typedef struct bench_sgemm bench_sgemm;
bench_sgemm *bench_sgemm_new(int n, int threads);
/* Seconds of one n x n x n GEMM. */
double bench_sgemm_pass(void *sgemm); /* a bench_sgemm */
/* Floating-point operations of one pass. */
double bench_sgemm_flops(const bench_sgemm *g);
void bench_sgemm_free(bench_sgemm *g);

/* table[i] = the page holding logical block i of a sequence: a fixed shuffle of 0..nblk-1. */
void bench_shuffle_pages(int32_t *table, int64_t nblk);
/* The first nblk * blk keys of a BNSD cache [kvn][S][d] (esize bytes an element) copied into
 * pages [nblk][kvn][blk][d]: block i of head h into page table[i]. */
void bench_page_cache(const void *src, void *dst, const int32_t *table, int64_t nblk,
                      int64_t kvn, int64_t S, int64_t blk, int64_t d, size_t esize);

#endif
