/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The shared tiled online-softmax kernel. Every operator reduces to: for a tile of query rows,
 * run online softmax over a list of KV blocks. The op decides which rows form a tile and which
 * blocks it visits; this kernel does the arithmetic, once:
 *
 *   pack Q rows to fp32 (gather + convert), for each block (split into chunks of <= kv_chunk
 *   keys): convert K and V rows to fp32 unless they are fp32 rows already (dequantising int8
 *   on the way), S = Q.K^T (BLAS, NT), S *= scale, score hook (bias, pse, masks, score/mask mods), running
 *   max / sum update with a vectorised exp, O += P.V (BLAS); finally O /= sum and the per-row
 *   statistics.
 *
 * Conventions:
 *  - A score of -INFINITY contributes nothing. A row whose scores are all -INFINITY (or that
 *    sees no block) gets O = 0, max = -INFINITY, sum = 0, lse = -INFINITY. Ops that want the
 *    vendor's "uniform row" behaviour mask with a finite value (-FLT_MAX, -1e12) instead.
 *  - NaN scores propagate to the row's outputs.
 *  - Results depend only on the tile description, never on the thread that runs it.
 */
#ifndef NSA_KERNEL_ATTN_TILE_H
#define NSA_KERNEL_ATTN_TILE_H

#include <stddef.h>
#include <stdint.h>

#include "core/internal.h"

/* Default tile sizes (see docs/architecture.md: OpenBLAS's small-matrix path ends at
 * M*N*K = 1e6, so 64 x 64 tiles at D <= 192 stay on it). */
#define NSA_ATTN_Q_TILE 64
#define NSA_ATTN_KV_CHUNK 64

/* int8 dequantisation of K or V rows while packing: x_f32 = (x + offset[c]) * scale[c]
 * for channel c; scale_stride / offset_stride 0 = per tensor; offset NULL = 0. */
typedef struct nsa_dequant {
    const float *scale;
    int64_t scale_stride;
    const float *offset;
    int64_t offset_stride;
} nsa_dequant;

/* Block flags. */
#define NSA_KV_BLOCK_PARTIAL 1u /* call the tile's mask hook on this block's scores */

/* One block of keys/values: `len` consecutive logical keys starting at `kv_start`. Key j of
 * the block is at k + j*k_row_stride (+ c*k_col_stride for channel c), in the tile's kv_dtype;
 * likewise V. Strides are in elements. */
typedef struct nsa_kv_block {
    const void *k;
    const void *v;
    int64_t k_row_stride, k_col_stride;
    int64_t v_row_stride, v_col_stride;
    int64_t kv_start; /* logical index of key 0, passed to the hooks */
    int32_t len;
    uint32_t flags;
} nsa_kv_block;

typedef struct nsa_attn_tile nsa_attn_tile;

/* Score hook: modify the scaled scores s[r*lds + j] of rows r in [0, tile->m) and keys
 * j in [0, n) (logical keys kv_start + j). Called for every chunk; `block` is the index of
 * the block in tile->blocks. Set a score to -INFINITY to drop it. */
typedef void (*nsa_score_hook)(const nsa_attn_tile *tile, int32_t block, int64_t kv_start,
                               int32_t n, float *s, int64_t lds);

struct nsa_attn_tile {
    /* Query rows: row r, channel c at q_rows[r] + c*q_col_stride, dtype q_dtype. */
    int32_t m;
    const void *const *q_rows;
    int64_t q_col_stride;
    nsa_dtype q_dtype;
    int32_t d;  /* Q/K channels */
    int32_t dv; /* V / output channels */
    float scale;

    /* Keys and values. */
    nsa_dtype kv_dtype;        /* f32, f16, bf16, or i8 with dequant below */
    nsa_dequant k_dequant;     /* used when kv_dtype == NSA_DTYPE_I8 */
    nsa_dequant v_dequant;
    const nsa_kv_block *blocks;
    int32_t nblocks;
    int32_t kv_chunk; /* max keys per GEMM chunk; 0 = NSA_ATTN_KV_CHUNK */

    /* Hooks: `score_hook` runs on every chunk, then `mask_hook` on chunks of blocks flagged
     * NSA_KV_BLOCK_PARTIAL. Either may be NULL. `user` is for the op. */
    nsa_score_hook score_hook;
    nsa_score_hook mask_hook;
    void *user;
    int64_t q_start; /* op-defined identity of row 0 (e.g. query position); for hooks */

    /* Outputs (all optional but o_rows): row r of O at o_rows[r] + c*o_col_stride, in o_dtype
     * (f32, f16, bf16; rounded to nearest even). Statistics are per row, fp32. */
    void *const *o_rows;
    int64_t o_col_stride;
    nsa_dtype o_dtype;
    float *row_max; /* final running max of the scores */
    float *row_sum; /* sum of exp(score - max) */
    float *row_lse; /* max + log(sum), natural log; -INFINITY for an empty row */
};

/* Bytes of scratch nsa_attn_tile_run needs for a tile of at most `m` rows. */
NSA_INTERNAL size_t nsa_attn_scratch_size(int32_t m, int32_t d, int32_t dv, int32_t kv_chunk);

/* A tile of m rows with these shapes and dtypes over the one block `blk` (whose strides
 * matter), for the two questions below; `blk` must outlive it. */
NSA_INTERNAL nsa_attn_tile nsa_attn_tile_shape(int32_t m, int32_t d, int32_t dv, nsa_dtype q_dtype,
                                              nsa_dtype kv_dtype, const nsa_kv_block *blk);

/* Whether nsa_attn_tile_run reads the tile's K and V where they are (the few-row path, which
 * converts in registers, or fp32 rows that BLAS takes as they are). Otherwise it converts them
 * to fp32 rows chunk by chunk, for every tile; an op whose tiles share blocks can convert each
 * block once instead and pass fp32 copies (select attention's block cache). */
NSA_INTERNAL int nsa_attn_tile_reads_in_place(const nsa_attn_tile *tile);

/* The most query rows for tiles made of units of `like->m` rows (one token's query heads, a
 * query row) with like's shapes, dtypes and block strides: the few-row path's limit when it
 * takes such tiles and BLAS runs AVX2 kernels, else `limit`. On an AVX-512 CPU that path
 * outruns BLAS's AVX2 kernels even where bigger tiles would share each block among more rows
 * (select attention, 16 heads, every four tokens with the same blocks, one thread: 116 -> 58
 * us per token in bf16, 121 -> 87 in f32, 64-row tiles against 16); OpenBLAS's AVX-512 kernels
 * outrun it (dense flex fp32 with OPENBLAS_CORETYPE=SkylakeX: 173 GFLOP/s on 128-row tiles,
 * 132 on 8). On a CPU without AVX-512 its AVX2 loops win only over short blocks: the limit
 * applies only when like->blocks[0].len, the keys per block the tiles will see, is set and at
 * most 128 (attn_tile.c). */
NSA_INTERNAL int32_t nsa_attn_tile_rows(const nsa_attn_tile *like, int32_t limit);

/* Run one tile. `scratch` is 64-byte aligned and at least nsa_attn_scratch_size() bytes. */
NSA_INTERNAL void nsa_attn_tile_run(const nsa_attn_tile *tile, void *scratch);

/* The most tiles nsa_attn_group_run takes. */
#define NSA_ATTN_MAX_GROUP 16

/* Bytes of scratch nsa_attn_group_run needs for `count` tiles of at most `m` rows. */
NSA_INTERNAL size_t nsa_attn_group_scratch_size(int32_t count, int32_t m, int32_t d, int32_t dv,
                                                int32_t kv_chunk);

/* Run 1..NSA_ATTN_MAX_GROUP tiles that share m, d, dv, kv_chunk, kv_dtype and the lengths of
 * their blocks (the kv heads of one stretch of keys), with the results of nsa_attn_tile_run on
 * each. Few-row tiles run in lockstep: each piece of keys is read for every tile before the
 * next piece, so a cache that stores the tiles' keys side by side (the kv heads of a page) is
 * read in address order. `scratch`: nsa_attn_group_scratch_size() bytes, 64-byte aligned. */
NSA_INTERNAL void nsa_attn_group_run(const nsa_attn_tile *tiles, int32_t count, void *scratch);

#endif /* NSA_KERNEL_ATTN_TILE_H */
