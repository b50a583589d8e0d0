/* SPDX-License-Identifier: Apache-2.0 */
/* The matmul-tile interface: row-major single-precision GEMM on one thread. */
#ifndef NSA_BLAS_BLAS_H
#define NSA_BLAS_BLAS_H

#include <stdint.h>

#include "core/internal.h"

/* C = alpha * op(A) * op(B) + beta * C, row-major; op(X) = X or X^T (trans != 0).
 * op(A) is M x K, op(B) is K x N. beta == 0 ignores C's prior contents (even NaN).
 * Runs on the calling thread: libnsa owns parallelism. */
NSA_INTERNAL void nsa_sgemm(int trans_a, int trans_b, int64_t m, int64_t n, int64_t k,
                            float alpha, const float *a, int64_t lda, const float *b, int64_t ldb,
                            float beta, float *c, int64_t ldc);

/* The built-in blocked C GEMM (always compiled, so tests can compare it with CBLAS). */
NSA_INTERNAL void nsa_sgemm_builtin(int trans_a, int trans_b, int64_t m, int64_t n, int64_t k,
                                    float alpha, const float *a, int64_t lda, const float *b,
                                    int64_t ldb, float beta, float *c, int64_t ldc);

/* libnsa owns parallelism: while any op runs, OpenBLAS (when that is the backend) is held at
 * one thread, and its previous thread count is restored when the last concurrent op ends.
 * Without this, tile GEMMs from several libnsa threads each fan out over OpenBLAS's own
 * threads and run 2x slower on two cores (measured; docs/kernel.md). */
NSA_INTERNAL void nsa_blas_single_thread_begin(void);
NSA_INTERNAL void nsa_blas_single_thread_end(void);

/* Tests only: route nsa_sgemm to the built-in GEMM even in a CBLAS build (not thread-safe;
 * set it before running ops). */
NSA_INTERNAL void nsa_blas_force_builtin(int on);

/* 1 when nsa_sgemm runs OpenBLAS's AVX-512 kernels (SkylakeX, Cooperlake, SapphireRapids):
 * the kernel then leaves tiles of more than 8 rows to BLAS (docs/kernel.md). */
NSA_INTERNAL int nsa_blas_avx512_kernels(void);

/* Name of the backend nsa_sgemm uses ("openblas" or "builtin"). */
NSA_INTERNAL const char *nsa_blas_name(void);

#endif /* NSA_BLAS_BLAS_H */
