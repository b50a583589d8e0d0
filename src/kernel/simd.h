/* SPDX-License-Identifier: Apache-2.0 */
/* Vectorised row primitives of the softmax, chosen at run time (AVX-512 or portable C). */
#ifndef NSA_KERNEL_SIMD_H
#define NSA_KERNEL_SIMD_H

#include <stdint.h>

#include "core/internal.h"

/* "avx512", "avx2" or "portable": the path the row primitives take on this CPU. */
NSA_INTERNAL const char *nsa_simd_name(void);
/* 1 when the AVX-512 (F, BW, VL, DQ) paths can run on this CPU. */
NSA_INTERNAL int nsa_cpu_has_avx512(void);
/* 1 when AVX2, FMA and F16C can run (every AVX-512 CPU too). */
NSA_INTERNAL int nsa_cpu_has_avx2(void);
/* 1 when, in addition, AVX512-BF16 (vdpbf16ps) can run. */
NSA_INTERNAL int nsa_cpu_has_avx512bf16(void);
/* Tests only: report no AVX-512 (on) so that an AVX-512 CPU takes the AVX2 paths (not
 * thread-safe; set it before running ops). */
NSA_INTERNAL void nsa_simd_force_avx2(int on);

/* Largest of x[0..n) (-INFINITY for n == 0). NaN elements are ignored here; they still
 * propagate through exp into the row's sum. */
NSA_INTERNAL float nsa_vmax(const float *x, int64_t n);
/* x[i] = exp(x[i] - m) in place; returns the sum of the results (fixed lane order). */
NSA_INTERNAL float nsa_vexp_sum(float *x, int64_t n, float m);
/* y[i] *= a */
NSA_INTERNAL void nsa_vscale(float *y, int64_t n, float a);

#endif /* NSA_KERNEL_SIMD_H */
