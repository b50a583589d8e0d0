/* SPDX-License-Identifier: Apache-2.0 */
/* BlockMask: create_block_mask, from_kv_blocks, the q-side transpose, selection, accessors,
 * to_dense, sparsity and to_string, with PyTorch's exact conventions. */
#if defined(__linux__) && !defined(_DEFAULT_SOURCE)
#define _DEFAULT_SOURCE /* madvise(MADV_HUGEPAGE) */
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#if defined(__linux__)
#include <sys/mman.h>
#endif

#include "flex/flex_internal.h"
#include "tensor/tensor.h"

struct nsa_block_mask {
    nsa_block_mask_info info;
    /* index arrays (int32, contiguous), in nsa_block_mask_array order */
    int32_t *arr[8];
    uint8_t *cls; /* (B, H, nQ, nKV) block classes NSA_BLK_* */
    void *mem;    /* one allocation holding arr[] and cls */
    nsa_mask_mod *mask_mod;
    int64_t b_offset, h_offset;
};

/* Elements of array `which` (row count * row length). */
static size_t array_len(const nsa_block_mask_info *in, int which)
{
    size_t bh = (size_t)in->batch * (size_t)in->heads;
    size_t nq = (size_t)in->num_q_blocks, nk = (size_t)in->num_kv_blocks;
    switch (which) {
    case NSA_BM_KV_NUM_BLOCKS:
    case NSA_BM_FULL_KV_NUM_BLOCKS:
        return bh * nq;
    case NSA_BM_Q_NUM_BLOCKS:
    case NSA_BM_FULL_Q_NUM_BLOCKS:
        return bh * nk;
    default:
        return bh * nq * nk;
    }
}

void nsa_block_mask_free(nsa_block_mask *bm)
{
    if (!bm)
        return;
    nsa_heap_free(bm->mem);
    nsa_mask_mod_free(bm->mask_mod);
    nsa_heap_free(bm);
}

#define HUGE_BYTES ((size_t)2 << 20)

/* Allocate a block mask with info filled in and every array allocated. */
static nsa_status bm_alloc(const nsa_block_mask_info *info, const nsa_mask_mod *mask_mod,
                           nsa_block_mask **out)
{
    nsa_block_mask *bm = (nsa_block_mask *)nsa_heap_calloc(1, sizeof(*bm));
    size_t total;
    int i, ok = bm != NULL;
    /* every array fits in memory only if the largest one's size does not overflow */
    if (!nsa_mul_size((size_t)info->batch * (size_t)info->heads, (size_t)info->num_q_blocks,
                      &total) ||
        !nsa_mul_size(total, (size_t)info->num_kv_blocks, &total) ||
        !nsa_mul_size(total, sizeof(int32_t), &total) || total > (size_t)INT64_MAX / 4) {
        nsa_heap_free(bm);
        return nsa_error(NSA_ERR_INVALID_ARGUMENT,
                         "block mask of %lld x %lld x %lld x %lld blocks is too large",
                         (long long)info->batch, (long long)info->heads,
                         (long long)info->num_q_blocks, (long long)info->num_kv_blocks);
    }
    if (ok) {
        size_t off[9], bytes = 0;
        bm->info = *info;
        for (i = 0; i < 9; i++) {
            off[i] = bytes;
            bytes += nsa_align64(i < 8 ? array_len(info, i) * sizeof(int32_t)
                                       : array_len(info, NSA_BM_KV_INDICES));
        }
        /* Large masks (a 131072^2 causal mask holds 16 MB of indices) spend most of their
         * build time in page faults; 2 MB-aligned memory can use transparent huge pages. */
        bm->mem = nsa_heap_alloc(bytes, bytes >= HUGE_BYTES ? HUGE_BYTES : 64);
        ok = bm->mem != NULL;
#if defined(__linux__) && defined(MADV_HUGEPAGE)
        if (ok && bytes >= HUGE_BYTES)
            (void)madvise(bm->mem, bytes - bytes % HUGE_BYTES, MADV_HUGEPAGE);
#endif
        for (i = 0; ok && i < 8; i++)
            bm->arr[i] = (int32_t *)(void *)((char *)bm->mem + off[i]);
        if (ok)
            bm->cls = (uint8_t *)bm->mem + off[8];
        if (ok && mask_mod) {
            /* a failed clone is out of memory, never "no mask_mod" */
            bm->mask_mod = nsa_mask_mod_clone(mask_mod);
            ok = bm->mask_mod != NULL;
        } else if (ok) {
            nsa_mask_mod *noop = NULL;
            ok = nsa_mask_mod_noop(&noop) == NSA_SUCCESS;
            bm->mask_mod = noop;
        }
    }
    if (!ok) {
        nsa_block_mask_free(bm);
        return nsa_error(NSA_ERR_OUT_OF_MEMORY, "out of memory allocating a block mask");
    }
    *out = bm;
    return NSA_SUCCESS;
}

/* PyTorch's _dense_to_ordered (a stable descending argsort) on one row of classes, for the
 * partial and the full blocks at once: each list holds the blocks of its class ascending,
 * then the other blocks ascending. Branch-free: block c goes to slot `got` if it belongs,
 * else to slot count + (c - got). */
static void ordered_pair(const uint8_t *cls, int64_t n, int32_t *part_idx, int32_t *part_num,
                         int32_t *full_idx, int32_t *full_num)
{
    int64_t c, np = 0, nf = 0, gp = 0, gf = 0;
    for (c = 0; c < n; c++) {
        np += cls[c] == NSA_BLK_PARTIAL;
        nf += cls[c] == NSA_BLK_FULL;
    }
    for (c = 0; c < n; c++) {
        const int64_t ip = cls[c] == NSA_BLK_PARTIAL, jf = cls[c] == NSA_BLK_FULL;
        part_idx[ip ? gp : np + c - gp] = (int32_t)c;
        full_idx[jf ? gf : nf + c - gf] = (int32_t)c;
        gp += ip;
        gf += jf;
    }
    *part_num = (int32_t)np;
    *full_num = (int32_t)nf;
}

/* kv side, row i = (bh, qb), when the class map is built from mask_mod (create): classify,
 * then order. */
static void build_kv_row(void *arg, size_t i)
{
    nsa_block_mask *bm = (nsa_block_mask *)arg;
    const nsa_block_mask_info *in = &bm->info;
    const int64_t nk = in->num_kv_blocks;
    uint8_t *cls = bm->cls + i * (size_t)nk;
    const int64_t bh = (int64_t)i / in->num_q_blocks, qb = (int64_t)i % in->num_q_blocks;
    const int64_t b = bh / in->heads, h = bh % in->heads;
    const int64_t q0 = qb * in->q_block;
    const int64_t q1 = (q0 + in->q_block < in->q_len ? q0 + in->q_block : in->q_len) - 1;
    nsa_mask_mod_classify_row(bm->mask_mod, b, h, q0, q1, in->kv_block, in->kv_len, nk, cls);
    /* PyTorch pads with False: a ragged block is never full */
    if (q1 - q0 + 1 != in->q_block) {
        int64_t kb;
        for (kb = 0; kb < nk; kb++)
            cls[kb] = cls[kb] == NSA_BLK_FULL ? NSA_BLK_PARTIAL : cls[kb];
    } else if (nk * in->kv_block != in->kv_len && cls[nk - 1] == NSA_BLK_FULL) {
        cls[nk - 1] = NSA_BLK_PARTIAL;
    }
    ordered_pair(cls, nk, bm->arr[NSA_BM_KV_INDICES] + i * (size_t)nk,
                 &bm->arr[NSA_BM_KV_NUM_BLOCKS][i],
                 bm->arr[NSA_BM_FULL_KV_INDICES] + i * (size_t)nk,
                 &bm->arr[NSA_BM_FULL_KV_NUM_BLOCKS][i]);
}

/* Columns of the class map handled per q-side task: they are transposed as one tile so
 * that the column scans read contiguous memory (a strided scan of a large map misses the
 * cache on every element). */
#define COL_TILE 64

typedef struct q_side_job {
    nsa_block_mask *bm;
    uint8_t *tmp; /* COL_TILE x nQ per task slot */
    size_t tiles_per_bh;
} q_side_job;

/* q side: column tile i = (bh, tile) of the class map, transposed, then ordered. */
static void build_q_tile(void *arg, size_t i)
{
    const q_side_job *job = (const q_side_job *)arg;
    nsa_block_mask *bm = job->bm;
    const size_t nq = (size_t)bm->info.num_q_blocks, nk = (size_t)bm->info.num_kv_blocks;
    const size_t bh = i / job->tiles_per_bh, c0 = i % job->tiles_per_bh * COL_TILE;
    const size_t nc = nk - c0 < COL_TILE ? nk - c0 : COL_TILE;
    const uint8_t *map = bm->cls + bh * nq * nk;
    uint8_t *t = job->tmp + i * COL_TILE * nq;
    size_t r, r0, c;
    /* 64 x 64 sub-tiles: strided reads from 64 lines, contiguous writes (a power-of-two
     * write stride would thrash the cache's sets) */
    for (r0 = 0; r0 < nq; r0 += COL_TILE) {
        const size_t r1 = nq - r0 < COL_TILE ? nq : r0 + COL_TILE;
        for (c = 0; c < nc; c++)
            for (r = r0; r < r1; r++)
                t[c * nq + r] = map[r * nk + c0 + c];
    }
    for (c = 0; c < nc; c++) {
        const size_t col = bh * nk + c0 + c;
        ordered_pair(t + c * nq, (int64_t)nq, bm->arr[NSA_BM_Q_INDICES] + col * nq,
                     &bm->arr[NSA_BM_Q_NUM_BLOCKS][col], bm->arr[NSA_BM_FULL_Q_INDICES] + col * nq,
                     &bm->arr[NSA_BM_FULL_Q_NUM_BLOCKS][col]);
    }
}

static nsa_status build(nsa_context *ctx, nsa_block_mask *bm, int kv_side_from_cls)
{
    q_side_job qj;
    const size_t bh = (size_t)bm->info.batch * (size_t)bm->info.heads;
    /* 0: the kv arrays were given (from_kv_blocks) */
    if (kv_side_from_cls)
        nsa_parallel_for(ctx, build_kv_row, bm, array_len(&bm->info, NSA_BM_KV_NUM_BLOCKS));
    qj.bm = bm;
    qj.tiles_per_bh = (size_t)nsa_cdiv(bm->info.num_kv_blocks, COL_TILE);
    /* one transposed tile per task: the map's size rounded up to whole tiles */
    qj.tmp = (uint8_t *)nsa_heap_alloc(
        bh * qj.tiles_per_bh * COL_TILE * (size_t)bm->info.num_q_blocks, 16);
    if (!qj.tmp)
        return nsa_error(NSA_ERR_OUT_OF_MEMORY, "out of memory building a block mask");
    nsa_parallel_for(ctx, build_q_tile, &qj, bh * qj.tiles_per_bh);
    nsa_heap_free(qj.tmp);
    return NSA_SUCCESS;
}

static nsa_status check_block_sizes(int64_t q_block, int64_t kv_block)
{
    if (q_block < 1 || kv_block < 1 || q_block > INT32_MAX || kv_block > INT32_MAX)
        return nsa_error(NSA_ERR_INVALID_ARGUMENT,
                         "q_block and kv_block must be in [1, 2^31), got %lld, %lld",
                         (long long)q_block, (long long)kv_block);
    return NSA_SUCCESS;
}

/* Build the derived arrays and hand the mask out (freed on failure). */
static nsa_status finish(nsa_context *ctx, nsa_block_mask *bm, int kv_side_from_cls,
                         nsa_block_mask **out)
{
    nsa_status st = build(ctx, bm, kv_side_from_cls);
    if (st != NSA_SUCCESS) {
        nsa_block_mask_free(bm);
        return st;
    }
    *out = bm;
    return NSA_SUCCESS;
}

nsa_status nsa_block_mask_create(nsa_context *ctx, const nsa_mask_mod *mask_mod, int64_t batch,
                                 int64_t heads, int64_t q_len, int64_t kv_len, int64_t q_block,
                                 int64_t kv_block, nsa_block_mask **out)
{
    nsa_block_mask_info in;
    nsa_block_mask *bm = NULL;
    nsa_status st;
    nsa_clear_error();
    if (!out)
        return nsa_error(NSA_ERR_NULL_POINTER, "out must not be NULL");
    *out = NULL;
    if (batch < 1 || heads < 1)
        return nsa_error(NSA_ERR_INVALID_ARGUMENT, "batch and heads must be >= 1, got %lld, %lld",
                         (long long)batch, (long long)heads);
    if (q_len < 1 || kv_len < 1)
        return nsa_error(NSA_ERR_INVALID_ARGUMENT, "q_len and kv_len must be >= 1, got %lld, %lld",
                         (long long)q_len, (long long)kv_len);
    if ((st = check_block_sizes(q_block, kv_block)) != NSA_SUCCESS)
        return st;
    if (q_len > INT64_MAX / kv_len / batch / heads)
        return nsa_error(NSA_ERR_INVALID_ARGUMENT, "batch * heads * q_len * kv_len overflows");
    if (mask_mod) {
        st = nsa_mask_mod_check_lengths(mask_mod, q_len, kv_len);
        if (st != NSA_SUCCESS)
            return st;
    }
    ctx = nsa_context_resolve(ctx); /* NULL = the default context (its threads) */
    if (!ctx)
        return nsa_error(NSA_ERR_OUT_OF_MEMORY, "out of memory creating the default context");
    memset(&in, 0, sizeof(in));
    in.batch = batch;
    in.heads = heads;
    in.q_len = q_len;
    in.kv_len = kv_len;
    in.q_block = q_block;
    in.kv_block = kv_block;
    in.num_q_blocks = nsa_cdiv(q_len, q_block);
    in.num_kv_blocks = nsa_cdiv(kv_len, kv_block);
    in.numel = batch * heads * q_len * kv_len;
    in.has_full = 1;
    if (in.num_q_blocks > INT32_MAX || in.num_kv_blocks > INT32_MAX)
        return nsa_error(NSA_ERR_INVALID_ARGUMENT, "more than 2^31 blocks along one axis");
    st = bm_alloc(&in, mask_mod, &bm);
    if (st != NSA_SUCCESS)
        return st;
    return finish(ctx, bm, 1, out);
}

/* Element (i0, i1, i2[, i3]) of an int32 / int64 tensor. */
static int64_t int_at(const nsa_tensor *t, int64_t i0, int64_t i1, int64_t i2, int64_t i3)
{
    return nsa_flex_int_at(t, nsa_tensor_offset(t, i0, i1, i2, i3));
}

/* Copy one (num, indices) pair into the mask, marking its blocks in cls with `mark`. */
static nsa_status load_blocks(nsa_block_mask *bm, const nsa_tensor *num, const nsa_tensor *idx,
                              const char *num_name, const char *idx_name, int arr_num,
                              int arr_idx, uint8_t mark)
{
    const nsa_block_mask_info *in = &bm->info;
    const int64_t nq = in->num_q_blocks, nk = in->num_kv_blocks;
    int64_t b, h, r, k;
    for (b = 0; b < in->batch; b++)
        for (h = 0; h < in->heads; h++)
            for (r = 0; r < nq; r++) {
                const size_t row = (size_t)((b * in->heads + h) * nq + r);
                const int64_t n = int_at(num, b, h, r, 0);
                uint8_t *cls = bm->cls + row * (size_t)nk;
                if (n < 0 || n > nk)
                    return nsa_error(NSA_ERR_INVALID_ARGUMENT,
                                     "%s[%lld, %lld, %lld] must be in [0, %lld], got %lld",
                                     num_name, (long long)b, (long long)h, (long long)r,
                                     (long long)nk, (long long)n);
                bm->arr[arr_num][row] = (int32_t)n;
                for (k = 0; k < nk; k++) {
                    const int64_t v = int_at(idx, b, h, r, k);
                    /* entries at or after the count are kept verbatim (PyTorch may put -1) */
                    bm->arr[arr_idx][row * (size_t)nk + (size_t)k] = (int32_t)v;
                    if (k >= n)
                        continue;
                    if (v < 0 || v >= nk)
                        return nsa_error(NSA_ERR_INVALID_ARGUMENT,
                                         "%s[%lld, %lld, %lld, %lld] must be in [0, %lld), got "
                                         "%lld",
                                         idx_name, (long long)b, (long long)h, (long long)r,
                                         (long long)k, (long long)nk, (long long)v);
                    if (cls[v] != NSA_BLK_EMPTY)
                        return nsa_error(NSA_ERR_INVALID_ARGUMENT,
                                         "%s[%lld, %lld, %lld, %lld] = %lld is already listed "
                                         "as a %s block of that row",
                                         idx_name, (long long)b, (long long)h, (long long)r,
                                         (long long)k, (long long)v,
                                         cls[v] == NSA_BLK_FULL ? "full" : "partial");
                    cls[v] = mark;
                }
            }
    return NSA_SUCCESS;
}

static nsa_status check_index_pair(const nsa_tensor *num, const nsa_tensor *idx,
                                   const char *num_name, const char *idx_name)
{
    const uint32_t ints = NSA_DT(NSA_DTYPE_I32) | NSA_DT(NSA_DTYPE_I64);
    nsa_status st = nsa_check_tensor(num, num_name, 3, ints);
    if (st == NSA_SUCCESS)
        st = nsa_check_tensor(idx, idx_name, 4, ints);
    if (st == NSA_SUCCESS && (idx->shape[0] < 1 || idx->shape[1] < 1 || idx->shape[2] < 1 ||
                              idx->shape[3] < 1))
        st = nsa_error(NSA_ERR_INVALID_ARGUMENT,
                       "%s must have non-empty (B, H, nQ, nKV) dims, got (%lld, %lld, %lld, %lld)",
                       idx_name, (long long)idx->shape[0], (long long)idx->shape[1],
                       (long long)idx->shape[2], (long long)idx->shape[3]);
    if (st == NSA_SUCCESS)
        st = nsa_check_dim(num, num_name, 0, idx->shape[0], "kv_indices.shape[0]");
    if (st == NSA_SUCCESS)
        st = nsa_check_dim(num, num_name, 1, idx->shape[1], "kv_indices.shape[1]");
    if (st == NSA_SUCCESS)
        st = nsa_check_dim(num, num_name, 2, idx->shape[2], "kv_indices.shape[2]");
    return st;
}

nsa_status nsa_block_mask_from_kv_blocks(nsa_context *ctx, const nsa_tensor *kv_num_blocks,
                                         const nsa_tensor *kv_indices,
                                         const nsa_tensor *full_kv_num_blocks,
                                         const nsa_tensor *full_kv_indices,
                                         const nsa_mask_mod *mask_mod, int64_t q_block,
                                         int64_t kv_block, int64_t q_len, int64_t kv_len,
                                         nsa_block_mask **out)
{
    nsa_block_mask_info in;
    nsa_block_mask *bm = NULL;
    nsa_status st;
    nsa_clear_error();
    if (!out)
        return nsa_error(NSA_ERR_NULL_POINTER, "out must not be NULL");
    *out = NULL;
    st = check_index_pair(kv_num_blocks, kv_indices, "kv_num_blocks", "kv_indices");
    if (st != NSA_SUCCESS)
        return st;
    if ((full_kv_num_blocks == NULL) != (full_kv_indices == NULL))
        return nsa_error(NSA_ERR_INVALID_ARGUMENT,
                         "full_kv_num_blocks and full_kv_indices must be given together");
    if (full_kv_num_blocks) {
        int ax;
        st = check_index_pair(full_kv_num_blocks, full_kv_indices, "full_kv_num_blocks",
                              "full_kv_indices");
        for (ax = 0; ax < 4 && st == NSA_SUCCESS; ax++)
            st = nsa_check_dim(full_kv_indices, "full_kv_indices", ax, kv_indices->shape[ax],
                               "the matching kv_indices dim");
        if (st != NSA_SUCCESS)
            return st;
    }
    if ((st = check_block_sizes(q_block, kv_block)) != NSA_SUCCESS)
        return st;
    memset(&in, 0, sizeof(in));
    in.batch = kv_indices->shape[0];
    in.heads = kv_indices->shape[1];
    in.num_q_blocks = kv_indices->shape[2];
    in.num_kv_blocks = kv_indices->shape[3];
    in.q_block = q_block;
    in.kv_block = kv_block;
    if (in.num_q_blocks > INT32_MAX || in.num_kv_blocks > INT32_MAX ||
        in.num_q_blocks > INT64_MAX / q_block || in.num_kv_blocks > INT64_MAX / kv_block)
        return nsa_error(NSA_ERR_INVALID_ARGUMENT, "kv_indices has too many blocks");
    in.q_len = q_len == 0 ? in.num_q_blocks * q_block : q_len;
    in.kv_len = kv_len == 0 ? in.num_kv_blocks * kv_block : kv_len;
    if (in.q_len < 0 || nsa_cdiv(in.q_len, q_block) != in.num_q_blocks)
        return nsa_error(NSA_ERR_INVALID_ARGUMENT,
                         "q_len must satisfy ceil(q_len / q_block) == kv_indices.shape[2] (%lld), "
                         "got q_len %lld with q_block %lld",
                         (long long)in.num_q_blocks, (long long)q_len, (long long)q_block);
    if (in.kv_len < 0 || nsa_cdiv(in.kv_len, kv_block) != in.num_kv_blocks)
        return nsa_error(NSA_ERR_INVALID_ARGUMENT,
                         "kv_len must satisfy ceil(kv_len / kv_block) == kv_indices.shape[3] "
                         "(%lld), got kv_len %lld with kv_block %lld",
                         (long long)in.num_kv_blocks, (long long)kv_len, (long long)kv_block);
    if (in.q_len > INT64_MAX / in.kv_len / in.batch / in.heads)
        return nsa_error(NSA_ERR_INVALID_ARGUMENT, "batch * heads * q_len * kv_len overflows");
    in.numel = in.batch * in.heads * in.q_len * in.kv_len;
    in.has_full = full_kv_num_blocks != NULL;
    if (mask_mod) {
        st = nsa_mask_mod_check_lengths(mask_mod, in.q_len, in.kv_len);
        if (st != NSA_SUCCESS)
            return st;
    }
    ctx = nsa_context_resolve(ctx); /* NULL = the default context (its threads) */
    if (!ctx)
        return nsa_error(NSA_ERR_OUT_OF_MEMORY, "out of memory creating the default context");
    st = bm_alloc(&in, mask_mod, &bm);
    if (st != NSA_SUCCESS)
        return st;
    memset(bm->cls, NSA_BLK_EMPTY, array_len(&in, NSA_BM_KV_INDICES));
    st = load_blocks(bm, kv_num_blocks, kv_indices, "kv_num_blocks", "kv_indices",
                     NSA_BM_KV_NUM_BLOCKS, NSA_BM_KV_INDICES, NSA_BLK_PARTIAL);
    if (st == NSA_SUCCESS && full_kv_num_blocks)
        st = load_blocks(bm, full_kv_num_blocks, full_kv_indices, "full_kv_num_blocks",
                         "full_kv_indices", NSA_BM_FULL_KV_NUM_BLOCKS, NSA_BM_FULL_KV_INDICES,
                         NSA_BLK_FULL);
    if (st != NSA_SUCCESS) {
        nsa_block_mask_free(bm);
        return st;
    }
    if (!full_kv_num_blocks) { /* no full blocks: what _dense_to_ordered gives for zeros */
        const size_t rows = array_len(&in, NSA_BM_KV_NUM_BLOCKS);
        size_t r;
        int32_t k;
        memset(bm->arr[NSA_BM_FULL_KV_NUM_BLOCKS], 0, rows * sizeof(int32_t));
        for (r = 0; r < rows; r++)
            for (k = 0; k < (int32_t)in.num_kv_blocks; k++)
                bm->arr[NSA_BM_FULL_KV_INDICES][r * (size_t)in.num_kv_blocks + (size_t)k] = k;
    }
    return finish(ctx, bm, 0, out);
}

nsa_status nsa_block_mask_select(const nsa_block_mask *src, int64_t b, int64_t h,
                                 nsa_block_mask **out)
{
    nsa_block_mask_info in;
    nsa_block_mask *bm = NULL;
    nsa_status st;
    int64_t ob, oh;
    int a;
    nsa_clear_error();
    if (!out)
        return nsa_error(NSA_ERR_NULL_POINTER, "out must not be NULL");
    *out = NULL;
    if (!src)
        return nsa_error(NSA_ERR_NULL_POINTER, "mask must not be NULL");
    if (b < -1 || b >= src->info.batch)
        return nsa_error(NSA_ERR_INVALID_ARGUMENT, "b must be -1 or in [0, %lld), got %lld",
                         (long long)src->info.batch, (long long)b);
    if (h < -1 || h >= src->info.heads)
        return nsa_error(NSA_ERR_INVALID_ARGUMENT, "h must be -1 or in [0, %lld), got %lld",
                         (long long)src->info.heads, (long long)h);
    in = src->info;
    in.batch = b < 0 ? in.batch : 1;
    in.heads = h < 0 ? in.heads : 1;
    in.numel = in.batch * in.heads * in.q_len * in.kv_len;
    st = bm_alloc(&in, src->mask_mod, &bm);
    if (st != NSA_SUCCESS)
        return st;
    bm->b_offset = src->b_offset + (b < 0 ? 0 : b);
    bm->h_offset = src->h_offset + (h < 0 ? 0 : h);
    for (ob = 0; ob < in.batch; ob++)
        for (oh = 0; oh < in.heads; oh++) {
            const int64_t sbh = (b < 0 ? ob : b) * src->info.heads + (h < 0 ? oh : h);
            const int64_t dbh = ob * in.heads + oh;
            for (a = 0; a < 8; a++) {
                const size_t per = array_len(&src->info, a) /
                                   ((size_t)src->info.batch * (size_t)src->info.heads);
                memcpy(bm->arr[a] + (size_t)dbh * per, src->arr[a] + (size_t)sbh * per,
                       per * sizeof(int32_t));
            }
            {
                const size_t per = (size_t)in.num_q_blocks * (size_t)in.num_kv_blocks;
                memcpy(bm->cls + (size_t)dbh * per, src->cls + (size_t)sbh * per, per);
            }
        }
    *out = bm;
    return NSA_SUCCESS;
}

nsa_status nsa_block_mask_get_info(const nsa_block_mask *bm, nsa_block_mask_info *info)
{
    nsa_clear_error();
    if (!bm || !info)
        return nsa_error(NSA_ERR_NULL_POINTER, "%s must not be NULL", bm ? "info" : "mask");
    *info = bm->info;
    return NSA_SUCCESS;
}

nsa_status nsa_block_mask_array_view(const nsa_block_mask *bm, nsa_block_mask_array which,
                                     nsa_tensor *view)
{
    int64_t shape[4];
    int32_t ndim;
    const nsa_block_mask_info *in;
    nsa_clear_error();
    if (!bm || !view)
        return nsa_error(NSA_ERR_NULL_POINTER, "%s must not be NULL", bm ? "view" : "mask");
    if ((int)which < 0 || (int)which > 7)
        return nsa_error(NSA_ERR_INVALID_ARGUMENT, "which must be an nsa_block_mask_array, got %d",
                         (int)which);
    in = &bm->info;
    shape[0] = in->batch;
    shape[1] = in->heads;
    if (which < NSA_BM_Q_NUM_BLOCKS) {
        shape[2] = in->num_q_blocks;
        shape[3] = in->num_kv_blocks;
    } else {
        shape[2] = in->num_kv_blocks;
        shape[3] = in->num_q_blocks;
    }
    ndim = (which == NSA_BM_KV_NUM_BLOCKS || which == NSA_BM_FULL_KV_NUM_BLOCKS ||
            which == NSA_BM_Q_NUM_BLOCKS || which == NSA_BM_FULL_Q_NUM_BLOCKS)
               ? 3
               : 4;
    *view = nsa_tensor_contiguous(bm->arr[which], NSA_DTYPE_I32, ndim, shape);
    return NSA_SUCCESS;
}

void nsa_block_mask_get_view(const nsa_block_mask *bm, nsa_block_mask_view *view)
{
    view->info = bm->info;
    view->kv_num = bm->arr[NSA_BM_KV_NUM_BLOCKS];
    view->kv_idx = bm->arr[NSA_BM_KV_INDICES];
    view->full_num = bm->arr[NSA_BM_FULL_KV_NUM_BLOCKS];
    view->full_idx = bm->arr[NSA_BM_FULL_KV_INDICES];
    view->mask_mod = bm->mask_mod;
    view->b_offset = bm->b_offset;
    view->h_offset = bm->h_offset;
}

nsa_status nsa_block_mask_to_dense(const nsa_block_mask *bm, const nsa_tensor *out)
{
    const nsa_block_mask_info *in;
    int64_t b, h, r, c;
    nsa_status st;
    nsa_clear_error();
    if (!bm)
        return nsa_error(NSA_ERR_NULL_POINTER, "mask must not be NULL");
    in = &bm->info;
    st = nsa_check_output(out, "out", 4, NSA_DT(NSA_DTYPE_I32));
    if (st == NSA_SUCCESS)
        st = nsa_check_dim(out, "out", 0, in->batch, "the mask's batch");
    if (st == NSA_SUCCESS)
        st = nsa_check_dim(out, "out", 1, in->heads, "the mask's heads");
    if (st == NSA_SUCCESS)
        st = nsa_check_dim(out, "out", 2, in->num_q_blocks, "the number of query blocks");
    if (st == NSA_SUCCESS)
        st = nsa_check_dim(out, "out", 3, in->num_kv_blocks, "the number of kv blocks");
    if (st != NSA_SUCCESS)
        return st;
    for (b = 0; b < in->batch; b++)
        for (h = 0; h < in->heads; h++)
            for (r = 0; r < in->num_q_blocks; r++) {
                const uint8_t *cls =
                    bm->cls + ((b * in->heads + h) * in->num_q_blocks + r) * in->num_kv_blocks;
                for (c = 0; c < in->num_kv_blocks; c++)
                    *(int32_t *)nsa_tensor_at(out, nsa_tensor_offset(out, b, h, r, c)) =
                        cls[c] != NSA_BLK_EMPTY;
            }
    return NSA_SUCCESS;
}

nsa_status nsa_block_mask_sparsity(const nsa_block_mask *bm, double *sparsity)
{
    size_t rows, r;
    int64_t blocks = 0;
    nsa_clear_error();
    if (!bm || !sparsity)
        return nsa_error(NSA_ERR_NULL_POINTER, "%s must not be NULL", bm ? "sparsity" : "mask");
    rows = array_len(&bm->info, NSA_BM_KV_NUM_BLOCKS);
    for (r = 0; r < rows; r++)
        blocks += (int64_t)bm->arr[NSA_BM_KV_NUM_BLOCKS][r] +
                  (int64_t)bm->arr[NSA_BM_FULL_KV_NUM_BLOCKS][r];
    /* Python: 100 * (1 - computed_size / numel), true division of two ints */
    *sparsity = 100.0 * (1.0 - (double)(blocks * bm->info.q_block * bm->info.kv_block) /
                                   (double)bm->info.numel);
    return NSA_SUCCESS;
}

/* ---- to_string --------------------------------------------------------------------------- */

typedef struct text_out {
    char *buf;
    size_t cap, len;
} text_out;

static void put(text_out *t, const char *s)
{
    size_t n = strlen(s), i;
    for (i = 0; i < n; i++, t->len++)
        if (t->len + 1 < t->cap)
            t->buf[t->len] = s[i];
}

nsa_status nsa_block_mask_to_string(const nsa_block_mask *bm, int64_t max_rows, int64_t max_cols,
                                    int64_t limit, char *buf, size_t cap, size_t *length)
{
    static const char full[] = "\xe2\x96\x88\xe2\x96\x88";  /* U+2588 twice */
    static const char some[] = "\xe2\x96\x91\xe2\x96\x91";  /* U+2591 twice */
    const nsa_block_mask_info *in;
    int64_t nq, nk, rs, cs, idx = 0, b, h, r, c, i, j;
    text_out t;
    nsa_clear_error();
    if (!bm || !length)
        return nsa_error(NSA_ERR_NULL_POINTER, "%s must not be NULL", bm ? "length" : "mask");
    if (!buf && cap > 0)
        return nsa_error(NSA_ERR_NULL_POINTER, "buf must not be NULL when cap (%zu) > 0", cap);
    if (max_rows == 0 || max_cols == 0)
        return nsa_error(NSA_ERR_INVALID_ARGUMENT,
                         "max_rows and max_cols must be nonzero (negative = uncompressed), got "
                         "%lld, %lld",
                         (long long)max_rows, (long long)max_cols);
    if (limit < 0)
        return nsa_error(NSA_ERR_INVALID_ARGUMENT, "limit must be >= 0, got %lld",
                         (long long)limit);
    in = &bm->info;
    nq = in->num_q_blocks;
    nk = in->num_kv_blocks;
    /* row_step = max(1, ceil(nq / max_rows)); Python's floor division makes negative grids 1 */
    rs = max_rows < 0 ? 1 : nsa_cdiv(nq, max_rows);
    cs = max_cols < 0 ? 1 : nsa_cdiv(nk, max_cols);
    rs = rs < 1 ? 1 : rs;
    cs = cs < 1 ? 1 : cs;
    t.buf = buf;
    t.cap = cap;
    t.len = 0;
    for (b = 0; b < in->batch; b++)
        for (h = 0; h < in->heads; h++, idx++) {
            char head[64];
            if (idx > 0)
                put(&t, "\n");
            if (idx == limit) {
                put(&t, "...\nTo print out more, set BlockMask.to_string(limit=N)\nYou can also "
                        "index (BlockMask[batch, head]) to choose a specific batch or head");
                goto done;
            }
            snprintf(head, sizeof(head), "(%lld, %lld)\n", (long long)b, (long long)h);
            put(&t, head);
            for (r = 0; r < nq; r += rs) {
                for (c = 0; c < nk; c += cs) {
                    int64_t on = 0, cells = 0;
                    for (i = r; i < r + rs && i < nq; i++)
                        for (j = c; j < c + cs && j < nk; j++, cells++)
                            on += bm->cls[((b * in->heads + h) * nq + i) * nk + j] != NSA_BLK_EMPTY;
                    put(&t, on == cells ? full : on == 0 ? "  " : some);
                }
                put(&t, "\n");
            }
        }
done:
    if (cap > 0)
        t.buf[t.len < cap ? t.len : cap - 1] = '\0';
    *length = t.len;
    return NSA_SUCCESS;
}
