/* SPDX-License-Identifier: Apache-2.0 */
/* The few-row path's loops for CPUs with AVX2, FMA and F16C but no AVX-512 (Zen 2/3, Intel
 * client cores): the same contract as nsa_fused_scores / nsa_fused_accumulate (attn_fused.h),
 * which call these there. Only compiled for x86-64 with gcc or clang. */
#ifndef NSA_KERNEL_ATTN_FUSED_AVX2_H
#define NSA_KERNEL_ATTN_FUSED_AVX2_H

#include "kernel/attn_tile.h"

/* s[r*lds + j] = scale * q_r . k_(j0+j), r < m, j < n; q is [m][d] fp32 with int8 key scales
 * already folded in (nsa_fused_prepare). */
NSA_INTERNAL void nsa_fused_avx2_scores(const nsa_attn_tile *tile, const float *q,
                                        const nsa_kv_block *blk, const nsa_kv_block *next,
                                        int32_t j0, int32_t n, float *s, int64_t lds);
/* o[r][c] += sum_j p[r*ldp + j] * v_(j0+j)[c] (int8: x + offset; the scale comes later, in
 * nsa_fused_finish). */
NSA_INTERNAL void nsa_fused_avx2_accumulate(const nsa_attn_tile *tile, const float *p,
                                            int64_t ldp, const nsa_kv_block *blk,
                                            const nsa_kv_block *next, int32_t j0, int32_t n,
                                            float *o);

#endif /* NSA_KERNEL_ATTN_FUSED_AVX2_H */
