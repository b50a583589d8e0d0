/* SPDX-License-Identifier: Apache-2.0 */
/* The kernel's few-row path: Q.K^T and P.V of a chunk for tiles of at most
 * NSA_FUSED_MAX_ROWS query rows, computed without BLAS from the caller's K and V
 * rows (f32, f16, bf16 or int8 with dequantisation). Used by nsa_attn_tile_run only. */
#ifndef NSA_KERNEL_ATTN_FUSED_H
#define NSA_KERNEL_ATTN_FUSED_H

#include "kernel/attn_tile.h"

/* Tiles of up to this many query rows (decode, GQA groups, a select-attention token's heads)
 * may skip BLAS; nsa_fused_max_rows() says how many do on this machine. */
#ifndef NSA_FUSED_MAX_ROWS
#define NSA_FUSED_MAX_ROWS 16
#endif
/* Keys ahead of use whose K (V) rows the loops ask for. With the channel-major loops it took
 * the bf16 decode benchmark from 12 to 8.3 ms on one thread; BSH caches (15.7-17.4 against
 * 14.7-14.9 GB/s, min of 20 calls) and paged blocks (8.6-8.8 against 9.5-10 ms), which the
 * hardware does not follow, need it. Since the loops spread their prefetches over the keys
 * (attn_fused.c), 32 keys measured best for contiguous bf16 decode on one thread (medians of
 * 5-6 alternations: 16 keys 4.03, 32 3.71-4.17, 48 3.83, 64 3.93-4.46, 96 4.64, 128 4.85 ms;
 * nsa_bench ifa 0.84 against 0.76 of a stream read), and the same as 64 for int8, paged and
 * two threads. Eleventh session, two builds' calls alternated in one process (time against
 * 32 keys, medians of 60 pairs): one thread 16 keys 1.05, 20 1.02, 24 1.00-1.01, 48 1.07; two
 * threads 16-24 keys 0.94-0.96 while the machine read slowly (50 GB/s), 24 keys 1.01-1.02
 * while it read fast (75 GB/s). */
#ifndef NSA_FUSED_PREFETCH
#define NSA_FUSED_PREFETCH 32
#endif

/* The most rows a tile may have to take the path. Decode tiles (up to 8 rows) are faster here
 * than on any BLAS (measured 14.3 against 9.3 GB/s even on OpenBLAS's AVX-512 kernels); at
 * 16 rows x 64 keys the path beats OpenBLAS's AVX2 kernels (select attention 63 -> 101
 * GFLOP/s on one thread) but not its AVX-512 ones (143 against 109): 16, or 8 when
 * nsa_blas_avx512_kernels(). */
NSA_INTERNAL int nsa_fused_max_rows(void);
/* 1 when the tile can take the path: 1..nsa_fused_max_rows() rows, d and dv multiples of 16,
 * channel stride 1 in every block, a CPU with AVX-512 or with AVX2, FMA and F16C (the loops
 * of attn_fused_avx2.c). */
NSA_INTERNAL int nsa_fused_usable(const nsa_attn_tile *tile);
/* 1 when the scores use bf16 dot products (bf16 K, bf16 queries, AVX512-BF16). */
NSA_INTERNAL int nsa_fused_uses_bf16_dot(const nsa_attn_tile *tile);

/* Before the first chunk, on the fp32 queries `q` ([m][d]): when the scores use bf16 dot
 * products, write them as bf16 into `q_bf16` ([m][d]) and return it; else fold int8 key
 * scales into `q` and return NULL. Pass the result to nsa_fused_scores. */
NSA_INTERNAL const uint16_t *nsa_fused_prepare(const nsa_attn_tile *tile, float *q,
                                               uint16_t *q_bf16);
/* After the last chunk: apply int8 value scales to the accumulator `o` ([m][dv]). */
NSA_INTERNAL void nsa_fused_finish(const nsa_attn_tile *tile, float *o);

/* s[r*lds + j] = scale * q_r . k_(j0+j) of block `blk` for the tile's rows and j in [0, n).
 * `q` is [m][d] fp32, `q_bf16` what nsa_fused_prepare returned (bf16 rows, or
 * NULL); `tmp` holds 16 x d floats. `next` (the following block, or NULL) is only prefetched. */
NSA_INTERNAL void nsa_fused_scores(const nsa_attn_tile *tile, const float *q,
                                   const uint16_t *q_bf16, const nsa_kv_block *blk,
                                   const nsa_kv_block *next, int32_t j0, int32_t n, float *s,
                                   int64_t lds, float *tmp);
/* o[r][c] += sum_j p[r*ldp + j] * v_(j0+j)[c] for the tile's rows, c in [0, dv). */
NSA_INTERNAL void nsa_fused_accumulate(const nsa_attn_tile *tile, const float *p, int64_t ldp,
                                       const nsa_kv_block *blk, const nsa_kv_block *next,
                                       int32_t j0, int32_t n, float *o);

/* 1 when `count` (>= 2) tiles share d, dv and kv_dtype and in every block each tile's K and V
 * rows come right after the previous tile's in the same token row (the kv heads of a BSH/BSND
 * cache or page). */
NSA_INTERNAL int nsa_fused_side_by_side(const nsa_attn_tile *tiles, int32_t count);
/* 1 when `count` (>= 2) tiles can run heads-in-lockstep (the two calls below): four rows, bf16
 * dot products or int8 K/V, d <= 192, dv 128, one scale, side by side (above); AVX-512 only. */
NSA_INTERNAL int nsa_fused_heads_usable(const nsa_attn_tile *tiles, int32_t count);
/* nsa_fused_scores of every tile on keys [j0, j0 + n) of its block b, a few keys of one head
 * after another, with the group's token rows prefetched whole; s[t] is tile t's scores, q[t]
 * and qb[t] what nsa_fused_scores takes. The same values as a call per tile. */
NSA_INTERNAL void nsa_fused_scores_heads(const nsa_attn_tile *tiles, int32_t count,
                                         const float *const *q, const uint16_t *const *qb,
                                         int32_t b, int32_t j0, int32_t n, float *const *s,
                                         int64_t lds);
/* nsa_fused_accumulate likewise: o[t] += P_t . V_t for p[t] (ldp apart), the same values. */
NSA_INTERNAL void nsa_fused_accumulate_heads(const nsa_attn_tile *tiles, int32_t count,
                                             const float *const *p, int64_t ldp, int32_t b,
                                             int32_t j0, int32_t n, float *const *o);

#endif /* NSA_KERNEL_ATTN_FUSED_H */
