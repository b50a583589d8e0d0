/* SPDX-License-Identifier: Apache-2.0 */
/* The shared tiled online-softmax kernel (see attn_tile.h for the contract). */
#include "kernel/attn_tile.h"

#include <math.h>
#include <string.h>

#include "blas/blas.h"
#include "dtype/convert.h"
#include "kernel/attn_fused.h"
#include "kernel/simd.h"

/* Scratch carving, in floats, each part 64-byte aligned. */
typedef struct tile_scratch {
    float *q;     /* [m][d]     packed queries */
    float *k;     /* [max(kc, 16)][d] keys converted to fp32 rows */
    float *v;     /* [kc][dv]   values */
    float *s;     /* [m][kc]    scores, then probabilities */
    float *o;     /* [m][dv]    unnormalised output accumulator */
    float *mx;    /* [m]        running max */
    float *sum;   /* [m]        running sum */
    uint16_t *qb; /* [m][d]     queries as bf16 (few-row path with bf16 dot products) */
} tile_scratch;

/* The next part of `floats` floats at *off (NULL when only sizing); advances *off. */
static void *take(char *base, size_t *off, size_t floats)
{
    void *p = base ? base + *off : NULL;
    *off += nsa_align64(floats * sizeof(float));
    return p;
}

/* The one scratch layout: carves `base` (NULL: only sizes it) and returns its bytes. A tile of a
 * group (fused only) needs no fp32 K or V chunk: only the 16 rows the few-row path widens. */
static size_t layout(char *base, size_t mm, size_t dd, size_t vv, size_t kc, int fused_only,
                     tile_scratch *t)
{
    size_t off = 0;
    t->q = (float *)take(base, &off, mm * dd);
    t->k = (float *)take(base, &off, dd * (kc > 16 && !fused_only ? kc : 16));
    t->v = (float *)take(base, &off, fused_only ? 0 : kc * vv);
    t->s = (float *)take(base, &off, mm * kc);
    t->o = (float *)take(base, &off, mm * vv);
    t->mx = (float *)take(base, &off, mm);
    t->sum = (float *)take(base, &off, mm);
    t->qb = (uint16_t *)take(base, &off, (mm * dd + 1) / 2);
    return off;
}

/* Keys per chunk: the tile's kv_chunk, or the default. */
static int32_t chunk_keys(int32_t kv_chunk)
{
    return kv_chunk > 0 ? kv_chunk : NSA_ATTN_KV_CHUNK;
}

static size_t scratch_bytes(int32_t m, int32_t d, int32_t dv, int32_t kv_chunk, int fused_only)
{
    tile_scratch t;
    return layout(NULL, (size_t)(m > 0 ? m : 1), (size_t)(d > 0 ? d : 1),
                  (size_t)(dv > 0 ? dv : 1), (size_t)chunk_keys(kv_chunk), fused_only, &t);
}

size_t nsa_attn_scratch_size(int32_t m, int32_t d, int32_t dv, int32_t kv_chunk)
{
    return scratch_bytes(m, d, dv, kv_chunk, 0);
}

size_t nsa_attn_group_scratch_size(int32_t count, int32_t m, int32_t d, int32_t dv,
                                   int32_t kv_chunk)
{
    const size_t one = scratch_bytes(m, d, dv, kv_chunk, 0);
    const size_t group = (size_t)(count > 0 ? count : 1) * scratch_bytes(m, d, dv, kv_chunk, 1);
    return one > group ? one : group;
}

static tile_scratch carve(void *base, int32_t m, int32_t d, int32_t dv, int32_t kc, int fused_only)
{
    tile_scratch t;
    layout((char *)base, (size_t)m, (size_t)d, (size_t)dv, (size_t)kc, fused_only, &t);
    return t;
}

/* Convert one K or V row (channels at col_stride) to fp32, dequantising int8. */
static void load_row(const nsa_attn_tile *tile, const nsa_dequant *dq, const void *src,
                     int64_t col_stride, float *dst, int32_t n)
{
    if (tile->kv_dtype == NSA_DTYPE_I8)
        nsa_load_i8_dequant((const int8_t *)src, col_stride, dq->scale, dq->scale_stride,
                            dq->offset, dq->offset_stride, dst, n);
    else
        nsa_load_f32(src, tile->kv_dtype, col_stride, dst, n);
}

/* Where a chunk's K and V rows live for the GEMMs: the caller's memory itself when they are
 * fp32 with unit channel stride, else fp32 rows converted into scratch. Q.K^T is an NT GEMM
 * against row-major K: measured faster here than transposing K into a d-major panel (see
 * docs/architecture.md), and it needs no transpose. */
typedef struct chunk_view {
    const float *k;
    int64_t k_ld;
    const float *v;
    int64_t v_ld;
} chunk_view;

/* Whether rows of one side of a block can be a GEMM operand where they are: fp32 rows that
 * form a valid one (width <= ld <= INT32_MAX, as CBLAS takes int). Views may legally broadcast
 * (stride 0), overlap rows or stride far apart; those are copied like any other. */
static int gemm_operand(const nsa_attn_tile *tile, int64_t row_stride, int64_t col_stride,
                        int32_t width)
{
    return tile->kv_dtype == NSA_DTYPE_F32 && col_stride == 1 && row_stride >= width &&
           row_stride <= INT32_MAX;
}

/* Rows [j0, j0 + n) of one side (K or V) of a block. */
static const float *chunk_rows(const nsa_attn_tile *tile, const nsa_dequant *dq, const void *base,
                               int64_t row_stride, int64_t col_stride, int32_t j0, int32_t n,
                               int32_t width, float *scratch, int64_t *ld)
{
    const size_t esize = nsa_dtype_size(tile->kv_dtype);
    int32_t j;
    if (gemm_operand(tile, row_stride, col_stride, width)) {
        *ld = row_stride;
        return (const float *)base + (int64_t)j0 * row_stride;
    }
    for (j = 0; j < n; j++)
        load_row(tile, dq, (const char *)base + (int64_t)(j0 + j) * row_stride * (int64_t)esize,
                 col_stride, scratch + (size_t)j * (size_t)width, width);
    *ld = width;
    return scratch;
}

/* Ask for rows [j0, j0 + n) of one side of a block ahead of use. Rows strided through memory
 * (one kv head of a BSH cache, gathered blocks) defeat the hardware stream prefetchers, which
 * stay inside a 4 KiB page: measured 3x slower decode on BSH than on BNSD before this. */
static void prefetch_rows(const void *base, int64_t row_stride, int64_t col_stride, size_t esize,
                          int32_t j0, int32_t n, int32_t width)
{
#if defined(__GNUC__) || defined(__clang__)
    const size_t span = (size_t)((int64_t)(width - 1) * col_stride + 1) * esize;
    int32_t j;
    size_t off;
    for (j = j0; j < j0 + n; j++) {
        const char *row = (const char *)base + (int64_t)j * row_stride * (int64_t)esize;
        for (off = 0; off < span; off += 64)
            __builtin_prefetch(row + off, 0, 0);
        __builtin_prefetch(row + span - 1, 0, 0);
    }
#else
    (void)base, (void)row_stride, (void)col_stride, (void)esize, (void)j0, (void)n, (void)width;
#endif
}

/* Prefetch the chunk after [j0, j0 + n) of this block, or the first chunk of the next one. */
static void prefetch_next_chunk(const nsa_attn_tile *tile, int32_t b, int32_t j0, int32_t n,
                                int32_t kc)
{
    const size_t esize = nsa_dtype_size(tile->kv_dtype);
    const nsa_kv_block *blk = &tile->blocks[b];
    int32_t next = j0 + n, len;
    if (next >= blk->len) {
        if (b + 1 >= tile->nblocks)
            return;
        blk = &tile->blocks[b + 1];
        next = 0;
    }
    len = blk->len - next < kc ? blk->len - next : kc;
    prefetch_rows(blk->k, blk->k_row_stride, blk->k_col_stride, esize, next, len, tile->d);
    prefetch_rows(blk->v, blk->v_row_stride, blk->v_col_stride, esize, next, len, tile->dv);
}

static chunk_view pack_chunk(const nsa_attn_tile *tile, const nsa_kv_block *blk, int32_t j0,
                             int32_t n, tile_scratch *sc)
{
    chunk_view cv;
    cv.k = chunk_rows(tile, &tile->k_dequant, blk->k, blk->k_row_stride, blk->k_col_stride, j0, n,
                      tile->d, sc->k, &cv.k_ld);
    cv.v = chunk_rows(tile, &tile->v_dequant, blk->v, blk->v_row_stride, blk->v_col_stride, j0, n,
                      tile->dv, sc->v, &cv.v_ld);
    return cv;
}

/* Online-softmax update of every row with the n probabilities-to-be in s. */
static void softmax_update(const nsa_attn_tile *tile, int32_t n, int32_t kc, tile_scratch *sc)
{
    int32_t r;
    for (r = 0; r < tile->m; r++) {
        float *s = sc->s + (size_t)r * (size_t)kc;
        float m_old = sc->mx[r];
        float m_new = nsa_vmax(s, n);
        float alpha;
        if (m_new < m_old || m_new != m_new)
            m_new = m_old;
        if (m_new == -INFINITY) {
            /* nothing seen yet: every probability of this chunk is 0, unless the chunk holds
             * NaN scores (the max skips them), which must poison the row */
            int32_t j;
            for (j = 0; j < n; j++)
                if (s[j] != s[j])
                    sc->sum[r] = NAN;
            memset(s, 0, (size_t)n * sizeof(float));
            continue;
        }
        alpha = m_old == -INFINITY ? 0.0f : expf(m_old - m_new);
        sc->sum[r] = sc->sum[r] * alpha + nsa_vexp_sum(s, n, m_new);
        sc->mx[r] = m_new;
        if (alpha != 1.0f)
            nsa_vscale(sc->o + (size_t)r * (size_t)tile->dv, tile->dv, alpha);
    }
}

static void finish(const nsa_attn_tile *tile, tile_scratch *sc)
{
    int32_t r;
    for (r = 0; r < tile->m; r++) {
        float *o = sc->o + (size_t)r * (size_t)tile->dv;
        float l = sc->sum[r];
        if (l == 0.0f) {
            memset(o, 0, (size_t)tile->dv * sizeof(float));
            if (tile->row_max)
                tile->row_max[r] = sc->mx[r];
            if (tile->row_sum)
                tile->row_sum[r] = 0.0f;
            if (tile->row_lse)
                tile->row_lse[r] = -INFINITY;
        } else {
            nsa_vscale(o, tile->dv, 1.0f / l);
            if (tile->row_max)
                tile->row_max[r] = sc->mx[r];
            if (tile->row_sum)
                tile->row_sum[r] = l;
            if (tile->row_lse)
                tile->row_lse[r] = sc->mx[r] + logf(l);
        }
        nsa_store_f32(o, tile->o_rows[r], tile->o_dtype, tile->o_col_stride, tile->dv,
                      NSA_ROUND_NEAREST_EVEN);
    }
}

/* The tile's hooks on the scores of keys [j0, j0 + n) of block b. */
static void apply_hooks(const nsa_attn_tile *tile, int32_t b, int32_t j0, int32_t n, float *s,
                        int64_t lds)
{
    const nsa_kv_block *blk = &tile->blocks[b];
    if (tile->score_hook)
        tile->score_hook(tile, b, blk->kv_start + j0, n, s, lds);
    if (tile->mask_hook && (blk->flags & NSA_KV_BLOCK_PARTIAL))
        tile->mask_hook(tile, b, blk->kv_start + j0, n, s, lds);
}

/* The block read after block b of tile t, which the loops prefetch into: the next tile's, or
 * the first tile's next block. */
static const nsa_kv_block *read_next(const nsa_attn_tile *tiles, int32_t count, int32_t t,
                                     int32_t b)
{
    if (t + 1 < count)
        return &tiles[t + 1].blocks[b];
    return b + 1 < tiles[0].nblocks ? &tiles[0].blocks[b + 1] : NULL;
}

/* Keys per turn of tiles side by side (the kv heads of a BSH cache row) on AVX2 CPUs: a turn of
 * the whole piece reads each head's slice of 1024 token rows, 2 MiB apart from the next
 * head's reads, so that every row comes from L3 once per head. bf16 BSH decode, Zen 3, one
 * thread, ab_decode medians of 20 pairs against whole-piece turns, four runs each: 4 keys
 * 0.93-0.98, 8 keys 0.81-0.91, 16 keys 0.92-0.99, 32 keys 0.98-1.04. */
#ifndef SIDE_BY_SIDE_KEYS
#define SIDE_BY_SIDE_KEYS 8
#endif

/* The few-row path (see attn_fused.c) for `count` tiles with the same blocks' lengths: no BLAS,
 * K and V read in place. A chunk of up to kc keys may span blocks (the pages of a paged cache),
 * so that the loops switch between K and V once per kc keys: each switch restarts the hardware
 * prefetchers' streams, and bf16 decode from DRAM ran at 20-21 GB/s on one thread with 128-key
 * chunks, 23-26 with 1024. Each piece of a chunk is read for every tile before the next piece,
 * so tiles whose keys lie side by side (the kv heads of a page) are read in address order;
 * tiles whose rows share token rows (BSH/BSND) go a few keys at a time through the piece
 * (nsa_fused_heads_usable on AVX-512, turns of SIDE_BY_SIDE_KEYS on AVX2). */
static void run_fused(const nsa_attn_tile *tiles, int32_t count, tile_scratch *sc,
                      const uint16_t *const *qb, int32_t kc)
{
    const nsa_attn_tile *lead = &tiles[0]; /* every tile's blocks have its lengths */
    const int heads = nsa_fused_heads_usable(tiles, count);
    /* on AVX2 (no heads loops) tiles side by side take turns every few keys */
    const int32_t step = !heads && !nsa_cpu_has_avx512() && nsa_fused_side_by_side(tiles, count)
                             ? SIDE_BY_SIDE_KEYS
                             : kc;
    float *part[NSA_ATTN_MAX_GROUP], *acc[NSA_ATTN_MAX_GROUP];
    const float *qf[NSA_ATTN_MAX_GROUP];
    int32_t b = 0, j = 0; /* the next key: row j of block b */
    int32_t t, s0;
    for (t = 0; t < count; t++) {
        acc[t] = sc[t].o;
        qf[t] = sc[t].q;
    }
    while (b < lead->nblocks) {
        const int32_t b0 = b, j0 = j;
        int32_t n = 0, done, pb, pj;
        /* scores of the chunk's pieces, block by block; the loops prefetch as they go, into
         * the next block too */
        for (; b < lead->nblocks && n < kc; b++, j = 0) {
            const int32_t blen = lead->blocks[b].len;
            const int32_t len = blen - j < kc - n ? blen - j : kc - n;
            if (len > 0) {
                for (t = 0; t < count; t++)
                    part[t] = sc[t].s + n;
                if (heads)
                    nsa_fused_scores_heads(tiles, count, qf, qb, b, j, len, part, kc);
                else
                    for (s0 = 0; s0 < len; s0 += step)
                        for (t = 0; t < count; t++)
                            nsa_fused_scores(&tiles[t], sc[t].q, qb[t], &tiles[t].blocks[b],
                                             read_next(tiles, count, t, b), j + s0,
                                             len - s0 < step ? len - s0 : step, part[t] + s0,
                                             kc, sc[t].k);
                for (t = 0; t < count; t++)
                    apply_hooks(&tiles[t], b, j, len, part[t], kc);
                n += len;
                j += len;
            }
            if (j < blen)
                break; /* the chunk is full inside this block */
        }
        if (n == 0)
            break;
        for (t = 0; t < count; t++)
            softmax_update(&tiles[t], n, kc, &sc[t]);
        /* P.V over the same pieces */
        for (pb = b0, pj = j0, done = 0; done < n; pb++, pj = 0) {
            const int32_t blen = lead->blocks[pb].len;
            const int32_t len = blen - pj < n - done ? blen - pj : n - done;
            if (len > 0) {
                for (t = 0; t < count; t++)
                    part[t] = sc[t].s + done;
                if (heads)
                    nsa_fused_accumulate_heads(tiles, count, (const float *const *)part, kc, pb,
                                               pj, len, acc);
                else
                    for (s0 = 0; s0 < len; s0 += step)
                        for (t = 0; t < count; t++)
                            nsa_fused_accumulate(&tiles[t], part[t] + s0, kc,
                                                 &tiles[t].blocks[pb],
                                                 read_next(tiles, count, t, pb), pj + s0,
                                                 len - s0 < step ? len - s0 : step, acc[t]);
                done += len;
            }
        }
    }
}

/* Every other tile: per block, chunks of up to kc keys through two BLAS calls. */
static void run_blas(const nsa_attn_tile *tile, tile_scratch *sc, int32_t kc)
{
    int32_t b;
    for (b = 0; b < tile->nblocks; b++) {
        const nsa_kv_block *blk = &tile->blocks[b];
        int32_t j0;
        for (j0 = 0; j0 < blk->len; j0 += kc) {
            const int32_t n = blk->len - j0 < kc ? blk->len - j0 : kc;
            const chunk_view cv = pack_chunk(tile, blk, j0, n, sc);
            prefetch_next_chunk(tile, b, j0, n, kc);
            /* S = scale * Q.K^T: the scale rides on the GEMM's alpha */
            nsa_sgemm(0, 1, tile->m, n, tile->d, tile->scale, sc->q, tile->d, cv.k, cv.k_ld, 0.0f,
                      sc->s, kc);
            apply_hooks(tile, b, j0, n, sc->s, kc);
            softmax_update(tile, n, kc, sc);
            nsa_sgemm(0, 0, tile->m, tile->dv, n, 1.0f, sc->s, kc, cv.v, cv.v_ld, 1.0f, sc->o,
                      tile->dv);
        }
    }
}

/* Packed queries, empty statistics and accumulator. */
static void start_tile(const nsa_attn_tile *tile, tile_scratch *sc)
{
    int32_t r;
    for (r = 0; r < tile->m; r++) {
        nsa_load_f32(tile->q_rows[r], tile->q_dtype, tile->q_col_stride,
                     sc->q + (size_t)r * (size_t)tile->d, tile->d);
        sc->mx[r] = -INFINITY;
        sc->sum[r] = 0.0f;
    }
    memset(sc->o, 0, (size_t)tile->m * (size_t)tile->dv * sizeof(float));
}

/* 1..NSA_ATTN_MAX_GROUP few-row tiles in lockstep, each with its own fused-only scratch. */
static void fused_tiles(const nsa_attn_tile *tiles, int32_t count, char *scratch, int32_t kc)
{
    const size_t per = scratch_bytes(tiles[0].m, tiles[0].d, tiles[0].dv, kc, 1);
    tile_scratch sc[NSA_ATTN_MAX_GROUP];
    const uint16_t *qb[NSA_ATTN_MAX_GROUP] = {NULL}; /* set below; gcc -O2 cannot tell */
    int32_t t;
    for (t = 0; t < count; t++) {
        sc[t] = carve(scratch + (size_t)t * per, tiles[t].m, tiles[t].d, tiles[t].dv, kc, 1);
        start_tile(&tiles[t], &sc[t]);
        qb[t] = nsa_fused_prepare(&tiles[t], sc[t].q, sc[t].qb);
    }
    run_fused(tiles, count, sc, qb, kc);
    for (t = 0; t < count; t++) {
        nsa_fused_finish(&tiles[t], sc[t].o);
        finish(&tiles[t], &sc[t]);
    }
}

nsa_attn_tile nsa_attn_tile_shape(int32_t m, int32_t d, int32_t dv, nsa_dtype q_dtype,
                                  nsa_dtype kv_dtype, const nsa_kv_block *blk)
{
    nsa_attn_tile tile;
    memset(&tile, 0, sizeof tile);
    tile.m = m;
    tile.d = d;
    tile.dv = dv;
    tile.q_dtype = q_dtype;
    tile.kv_dtype = kv_dtype;
    tile.blocks = blk;
    tile.nblocks = 1;
    return tile;
}

int nsa_attn_tile_reads_in_place(const nsa_attn_tile *tile)
{
    int32_t b;
    if (nsa_fused_usable(tile))
        return 1;
    for (b = 0; b < tile->nblocks; b++) {
        const nsa_kv_block *blk = &tile->blocks[b];
        if (!gemm_operand(tile, blk->k_row_stride, blk->k_col_stride, tile->d) ||
            !gemm_operand(tile, blk->v_row_stride, blk->v_col_stride, tile->dv))
            return 0;
    }
    return 1;
}

/* Keys per block up to which, on CPUs without AVX-512, few-row tiles beat bigger BLAS tiles:
 * there the AVX2 loops run at about half the FMA peak, OpenBLAS's AVX2 kernels at three
 * quarters, so only blocks too short for a GEMM call to pay off go to the loops (Zen 3, one
 * thread, nsa_bench: select attention's 64-key blocks 0.39 -> 0.52 of sgemm on 16-row tiles;
 * compress attention's 511 keys 0.60 -> 0.47 and dense flex 0.69 -> 0.54 when they took them). */
#define SHORT_BLOCK_KEYS 128

int32_t nsa_attn_tile_rows(const nsa_attn_tile *like, int32_t limit)
{
    const int32_t few = nsa_fused_max_rows();
    const int32_t keys = like->nblocks > 0 ? like->blocks[0].len : 0;
    if (nsa_blas_avx512_kernels() || !nsa_fused_usable(like))
        return limit;
    if (!nsa_cpu_has_avx512() && (keys < 1 || keys > SHORT_BLOCK_KEYS))
        return limit;
    return few < limit ? few : limit;
}

void nsa_attn_tile_run(const nsa_attn_tile *tile, void *scratch)
{
    const int32_t kc = chunk_keys(tile->kv_chunk);
    tile_scratch sc;
    if (nsa_fused_usable(tile)) {
        fused_tiles(tile, 1, (char *)scratch, kc);
        return;
    }
    sc = carve(scratch, tile->m, tile->d, tile->dv, kc, 0);
    start_tile(tile, &sc);
    run_blas(tile, &sc, kc);
    finish(tile, &sc);
}

void nsa_attn_group_run(const nsa_attn_tile *tiles, int32_t count, void *scratch)
{
    int32_t t;
    for (t = 0; t < count; t++)
        if (!nsa_fused_usable(&tiles[t]))
            break;
    if (t < count) { /* BLAS tiles gain nothing from the lockstep */
        for (t = 0; t < count; t++)
            nsa_attn_tile_run(&tiles[t], scratch);
        return;
    }
    fused_tiles(tiles, count, (char *)scratch, chunk_keys(tiles[0].kv_chunk));
}
