/* SPDX-License-Identifier: Apache-2.0 */
/* Software prefetch of K / V rows ahead of the few-row loops (attn_fused.c and its AVX2
 * variant, attn_fused_avx2.c). Only for gcc and clang on x86-64, which those loops need. */
#ifndef NSA_KERNEL_FUSED_PREFETCH_H
#define NSA_KERNEL_FUSED_PREFETCH_H

#include <stddef.h>

#include "kernel/attn_fused.h"

/* Ask for `count` rows from `from` of one side (K, or V when `values`) ahead of use: rows of
 * this block, or past its end the first rows of the next one (the pages of a paged cache).
 * The loops reading from DRAM ask for a row or a few per step rather than a 16-key group at
 * once: a burst of 64 prefetches stalls the loop while they wait for miss buffers, and bf16
 * decode from DRAM ran 10-25 % faster with them spread (one thread). Inlined: in the int8
 * loops, which are compute-bound, the call alone cost 5-10 %. */
static inline __attribute__((always_inline)) void
prefetch_ahead(const nsa_kv_block *blk, const nsa_kv_block *next, int values, size_t esize,
               int32_t from, int32_t count, size_t span)
{
    int32_t j, to;
    size_t off;
    if (from >= blk->len) {
        if (!next)
            return;
        from -= blk->len;
        blk = next;
    }
    to = from + count < blk->len ? from + count : blk->len;
    for (j = from; j < to; j++) {
        const char *row = values ? (const char *)blk->v +
                                       (int64_t)j * blk->v_row_stride * (int64_t)esize
                                 : (const char *)blk->k +
                                       (int64_t)j * blk->k_row_stride * (int64_t)esize;
        for (off = 0; off < span; off += 64)
            __builtin_prefetch(row + off, 0, 3);
    }
}

/* Keys ahead for rows of `esize` bytes a channel: int8 rows are half the length of bf16 ones,
 * and asking for the same bytes ahead (twice the keys) took int8 decode from DRAM from 3.41 to
 * 3.22 ms on one thread (96 keys: 3.34; medians of 4 alternations). */
#define PREFETCH_KEYS(esize) ((esize) == 1 ? 2 * NSA_FUSED_PREFETCH : NSA_FUSED_PREFETCH)

#endif /* NSA_KERNEL_FUSED_PREFETCH_H */
