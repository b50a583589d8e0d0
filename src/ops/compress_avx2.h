/* SPDX-License-Identifier: Apache-2.0 */
/* nsa_compress's fused window kernels for CPUs with AVX2 and F16C but no AVX-512: the same
 * contract and the same sums, bit for bit, as the AVX-512 kernels in compress.c. Only
 * compiled for x86-64 with gcc or clang; elsewhere the getters return NULL. */
#ifndef NSA_OPS_COMPRESS_AVX2_H
#define NSA_OPS_COMPRESS_AVX2_H

#include <stddef.h>

#include "core/internal.h"

/* One head of one window: x = its row 0 (channel 0), rs = row stride in bytes, w = its l fp32
 * weights; out[0..D) = the window sums in the kernel's ReduceBlock order. */
typedef void (*nsa_compress_window_fn)(const char *x, ptrdiff_t rs, const float *w, int32_t D,
                                       float *out);
/* Two windows a rows apart, a the largest power of two below l (NSA's l = 32, d = 16): out2
 * takes the second window's sums. */
typedef void (*nsa_compress_window2_fn)(const char *x, ptrdiff_t rs, const float *w, int32_t D,
                                        float *out, float *out2);

/* The kernels for l (a multiple of 16 in [16, 128]) and the input dtype's column (0 bf16, 1 f16,
 * 2 f32, as in compress.c's tables), or NULL when this CPU lacks AVX2 / F16C (window2: also
 * for l = 16, which has no pair). */
NSA_INTERNAL nsa_compress_window_fn nsa_compress_avx2_window(int64_t l, int column);
NSA_INTERNAL nsa_compress_window2_fn nsa_compress_avx2_window2(int64_t l, int column);

#endif /* NSA_OPS_COMPRESS_AVX2_H */
