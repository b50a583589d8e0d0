/* SPDX-License-Identifier: Apache-2.0 */
/*
 * incre_flash_attention (decode): one query token per batch against a KV cache.
 *
 * Work is split over (batch, kv head, KV chunk). A task is one kernel tile: its rows are the
 * G query heads sharing the kv head, its blocks the chunk's keys (contiguous segments, or the
 * pages of the block table), int8 K/V dequantised by the kernel as it reads them. Each task
 * writes an fp32 partial output with its row max and sum; a second pass merges the chunks of
 * a row by log-sum-exp and writes the output (cast, or int8 post-quantisation). The chunk
 * split is a fixed function of the shape, so the result is bit-identical for any number of
 * threads.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "nsa/nsa_ifa.h"

#include "core/internal.h"
#include "dtype/convert.h"
#include "kernel/attn_tile.h"
#include "tensor/tensor.h"

/* Below this many (batch, kv head) tiles, long sequences are split into chunks so that even
 * B = 1 spreads over every core; chunks hold at least IFA_MIN_SPLIT keys so the merge stays
 * negligible. Each task starts on cold K and V rows the prefetchers have not reached yet:
 * chunks of 512 keys cost about a fifth of bf16 decode's time (14.5 against 16.5-17 GB/s on
 * one thread with 2048 or 4096). Both are constants: the split never depends on the thread
 * count. */
#define IFA_TARGET_TASKS 1024
#define IFA_MIN_SPLIT 2048
/* Longest kernel block (keys); contiguous ranges are cut into segments of this length so a
 * block length always fits the kernel's int32. */
#define IFA_SEG 65536
/* Keys per kernel chunk (the kernel alternates between K and V once per chunk, across pages:
 * bf16 decode 20-21 GB/s on one thread with 128, 23-26 with 1024; the BLAS path for large GQA
 * groups measured no slower). */
#define IFA_KV_CHUNK 1024
/* The vendor's fill value for masked scores (BOOL_ATTEN_MASK_SCALAR_VALUE). */
#define IFA_MASK_VALUE (-1.0e12f)

/* Strides (elements) of the logical axes of a query/output or K/V view. */
typedef struct ifa_axes {
    int64_t b, n, s, d;
} ifa_axes;

typedef struct ifa_plan {
    int64_t B, N, kvN, G, D;
    nsa_layout layout;
    float scale;
    nsa_validation level;
    const nsa_tensor *query, *out;
    const nsa_tensor *keys, *values; /* kv_count entries (1 for a batch tensor / paged cache) */
    int is_list;
    int64_t S; /* key S (batch tensor), max S_b (list), max_blocks*block_size (paged) */
    nsa_dtype kv_dtype;
    /* paging */
    const nsa_tensor *block_table;
    int64_t block_size, max_blocks, num_blocks;
    /* lengths */
    const int64_t *asl;
    int64_t asl_count;
    int has_pad;
    int64_t pad;
    /* optional tensors */
    const nsa_tensor *mask, *pse;
    const nsa_tensor *aq_scale, *aq_offset;
    int aq_per_channel;
    const nsa_tensor *q2_scale, *q2_offset;
    int q2_per_channel;
    /* work split */
    int64_t ntasks, max_chunk, max_blocks_per_task;
    int64_t group; /* kv heads run in lockstep by one worker (divides kvN) */
    int threads;
    size_t sz_tasks, sz_partial, sz_aq, sz_q2, sz_worker, sz_attn, sz_blocks, sz_rows, total;
} ifa_plan;

/* ---- lengths ---------------------------------------------------------------------------- */

static int64_t seq_axis_len(const ifa_plan *p, const nsa_tensor *k)
{
    return p->layout == NSA_LAYOUT_BNSD ? k->shape[2] : k->shape[1];
}

/* S of batch b's keys (the paged maximum with a block table). */
static int64_t batch_s(const ifa_plan *p, int64_t b)
{
    if (p->block_table)
        return p->S;
    return p->is_list ? seq_axis_len(p, &p->keys[b]) : p->S;
}

/* KV range [*start, *start + *len) of batch b; *len = 0 when the batch has no keys (length 0
 * or a negative left-padding start): its output is zero. */
static void batch_range(const ifa_plan *p, int64_t b, int64_t *start, int64_t *len)
{
    int64_t l = p->asl_count > 0 ? p->asl[p->asl_count == 1 ? 0 : b] : batch_s(p, b);
    int64_t s0 = 0;
    if (p->has_pad) {
        s0 = p->S - p->pad - l;
        if (s0 < 0)
            l = 0;
    }
    *start = s0 < 0 ? 0 : s0;
    *len = l;
}

/* Chunks per kv head of a batch with `len` keys, and keys per chunk (a multiple of the
 * kernel's chunk). A function of the shape only. */
static int64_t split_count(const ifa_plan *p, int64_t len, int64_t *chunk)
{
    int64_t tiles = p->B * p->kvN, want, n, c;
    if (len == 0) {
        *chunk = 0;
        return 0;
    }
    want = tiles >= IFA_TARGET_TASKS ? 1 : nsa_cdiv(IFA_TARGET_TASKS, tiles);
    n = nsa_cdiv(len, IFA_MIN_SPLIT);
    if (n > want)
        n = want;
    c = nsa_cdiv(nsa_cdiv(len, n), IFA_KV_CHUNK) * IFA_KV_CHUNK;
    *chunk = c;
    return nsa_cdiv(len, c);
}

/* ---- addressing ------------------------------------------------------------------------- */

static ifa_axes query_axes(const ifa_plan *p, const nsa_tensor *t)
{
    ifa_axes a;
    a.b = t->stride[0];
    a.s = 0;
    if (p->layout == NSA_LAYOUT_BSH) {
        a.n = p->D * t->stride[2];
        a.d = t->stride[2];
    } else if (p->layout == NSA_LAYOUT_BSND) {
        a.n = t->stride[2];
        a.d = t->stride[3];
    } else {
        a.n = t->stride[1];
        a.d = t->stride[3];
    }
    return a;
}

/* Axes of a K/V tensor; for a paged cache `b` is the page axis and `s` the token in a page. */
static ifa_axes kv_axes(const ifa_plan *p, const nsa_tensor *t)
{
    ifa_axes a;
    a.b = t->stride[0];
    if (t->ndim == 3) { /* BSH, or a (blocks, block_size, kvN*D) cache */
        a.s = t->stride[1];
        a.n = p->D * t->stride[2];
        a.d = t->stride[2];
    } else if (p->block_table || p->layout == NSA_LAYOUT_BNSD) {
        a.n = t->stride[1];
        a.s = t->stride[2];
        a.d = t->stride[3];
    } else { /* BSND */
        a.s = t->stride[1];
        a.n = t->stride[2];
        a.d = t->stride[3];
    }
    return a;
}

static const void *row_ptr(const nsa_tensor *t, const ifa_axes *a, int64_t b, int64_t n, int64_t s)
{
    return nsa_tensor_at(t, b * a->b + n * a->n + s * a->s);
}

/* ---- validation ------------------------------------------------------------------------- */

#define TRY(x)                                                                                     \
    do {                                                                                           \
        nsa_status st_ = (x);                                                                      \
        if (st_ != NSA_SUCCESS)                                                                    \
            return st_;                                                                            \
    } while (0)

#define INVAL(...) nsa_error(NSA_ERR_INVALID_ARGUMENT, __VA_ARGS__)
#define STRICT(...) nsa_error(NSA_ERR_UNSUPPORTED, __VA_ARGS__)

static nsa_status check_params(ifa_plan *p, const nsa_ifa_params *prm)
{
    if (prm->validation != NSA_VALIDATE_DEFAULT && prm->validation != NSA_VALIDATE_STRICT)
        return INVAL("params.validation must be NSA_VALIDATE_DEFAULT or NSA_VALIDATE_STRICT, "
                     "got %lld",
                     (long long)prm->validation);
    p->level = prm->validation;
    if (prm->num_heads <= 0)
        return INVAL("num_heads must be > 0, got %lld", (long long)prm->num_heads);
    if (prm->num_key_value_heads < 0)
        return INVAL("num_key_value_heads must be >= 0 (0 means num_heads), got %lld",
                     (long long)prm->num_key_value_heads);
    p->N = prm->num_heads;
    p->kvN = prm->num_key_value_heads == 0 ? p->N : prm->num_key_value_heads;
    if (p->kvN > p->N)
        return INVAL("num_key_value_heads must be <= num_heads (%lld), got %lld", (long long)p->N,
                     (long long)p->kvN);
    if (p->N % p->kvN != 0)
        return INVAL("num_heads (%lld) must be a multiple of num_key_value_heads (%lld)",
                     (long long)p->N, (long long)p->kvN);
    p->G = p->N / p->kvN;
    if (p->G > 64)
        return INVAL("num_heads / num_key_value_heads must be <= 64, got %lld", (long long)p->G);
    if (prm->input_layout == NSA_LAYOUT_TND)
        return nsa_error(NSA_ERR_UNSUPPORTED,
                         "input_layout TND is only for MLA, which incre_flash_attention does "
                         "not implement; use BSH, BNSD or BSND");
    if (prm->input_layout != NSA_LAYOUT_BSH && prm->input_layout != NSA_LAYOUT_BNSD &&
        prm->input_layout != NSA_LAYOUT_BSND)
        return INVAL("input_layout must be BSH, BNSD or BSND, got %lld",
                     (long long)prm->input_layout);
    p->layout = prm->input_layout;
    if (!isfinite(prm->scale_value) || !isfinite((float)prm->scale_value))
        return nsa_error(NSA_ERR_INVALID_ARGUMENT, "scale_value must be finite in float32, got %g",
                         prm->scale_value);
    p->scale = (float)prm->scale_value;
    if (prm->inner_precise != 0 && prm->inner_precise != 1)
        return INVAL("inner_precise must be 0 or 1, got %lld", (long long)prm->inner_precise);
    if (prm->actual_seq_lengths_count < 0)
        return INVAL("actual_seq_lengths_count must be >= 0, got %lld",
                     (long long)prm->actual_seq_lengths_count);
    if (prm->actual_seq_lengths_count > 0 && !prm->actual_seq_lengths)
        return nsa_error(NSA_ERR_NULL_POINTER,
                         "actual_seq_lengths must not be NULL when actual_seq_lengths_count "
                         "is %lld",
                         (long long)prm->actual_seq_lengths_count);
    p->asl = prm->actual_seq_lengths;
    p->asl_count = prm->actual_seq_lengths_count;
    p->has_pad = prm->has_kv_padding_size != 0;
    p->pad = prm->kv_padding_size > 0 ? prm->kv_padding_size : 0;
    p->block_size = prm->block_size;
    return NSA_SUCCESS;
}

static nsa_status check_query(ifa_plan *p, const nsa_tensor *q)
{
    int32_t rank = p->layout == NSA_LAYOUT_BSH ? 3 : 4;
    int64_t sq;
    if (!q)
        return nsa_error(NSA_ERR_NULL_POINTER, "query must not be NULL");
    if (q->dtype == NSA_DTYPE_I8)
        return nsa_error(NSA_ERR_UNSUPPORTED,
                         "query dtype i8 is only for MLA; incre_flash_attention takes f16 or bf16");
    TRY(nsa_check_tensor(q, "query", rank, NSA_DT_FLOAT));
    if (q->dtype == NSA_DTYPE_F32 && p->level == NSA_VALIDATE_STRICT)
        return STRICT("query dtype must be f16 or bf16 at the strict level (Ascend has "
                      "no f32 incre_flash_attention), got f32");
    if (nsa_tensor_numel(q) == 0)
        return INVAL("query must not be empty, got B = %lld, last dim %lld", (long long)q->shape[0],
                     (long long)q->shape[rank - 1]);
    p->B = q->shape[0];
    sq = p->layout == NSA_LAYOUT_BNSD ? q->shape[2] : q->shape[1];
    if (sq != 1)
        return INVAL("query sequence length must be 1 (one decode token), got %lld", (long long)sq);
    if (p->layout == NSA_LAYOUT_BSH) {
        if (q->shape[2] % p->N != 0)
            return INVAL("query hidden size H (%lld) must be a multiple of num_heads (%lld)",
                         (long long)q->shape[2], (long long)p->N);
        p->D = q->shape[2] / p->N;
    } else {
        int axis = p->layout == NSA_LAYOUT_BNSD ? 1 : 2;
        if (q->shape[axis] != p->N)
            return INVAL("query heads axis must equal num_heads (%lld), got %lld", (long long)p->N,
                         (long long)q->shape[axis]);
        p->D = q->shape[3];
    }
    if (p->D > 65536)
        return INVAL("head dim D must be <= 65536, got %lld", (long long)p->D);
    if (p->level == NSA_VALIDATE_STRICT) {
        if (p->B > 65536)
            return STRICT("batch must be <= 65536 at the strict level, got %lld", (long long)p->B);
        if (p->D > 512)
            return STRICT("head dim D must be <= 512 at the strict level, got %lld",
                          (long long)p->D);
        if (p->N > 256)
            return STRICT("num_heads must be <= 256 at the strict level, got %lld",
                          (long long)p->N);
    }
    return NSA_SUCCESS;
}

/* Shape of one K or V tensor of the batch-tensor or list form. `bexp` is the expected batch
 * dim; returns its S in *s. */
static nsa_status check_kv_tensor(const ifa_plan *p, const nsa_tensor *t, const char *name,
                                  int64_t bexp, int64_t *s)
{
    int32_t rank = p->layout == NSA_LAYOUT_BSH ? 3 : 4;
    TRY(nsa_check_tensor(t, name, rank, NSA_DT_FLOAT | NSA_DT(NSA_DTYPE_I8)));
    if (t->shape[0] != bexp)
        return nsa_error(NSA_ERR_INVALID_ARGUMENT, "%s batch dim must be %lld, got %lld", name,
                         (long long)bexp, (long long)t->shape[0]);
    if (p->layout == NSA_LAYOUT_BSH) {
        if (t->shape[2] != p->kvN * p->D)
            return nsa_error(NSA_ERR_INVALID_ARGUMENT,
                             "%s hidden size must be num_key_value_heads * D = %lld * %lld, "
                             "got %lld",
                             name, (long long)p->kvN, (long long)p->D, (long long)t->shape[2]);
    } else {
        int axis = p->layout == NSA_LAYOUT_BNSD ? 1 : 2;
        if (t->shape[axis] != p->kvN)
            return nsa_error(NSA_ERR_INVALID_ARGUMENT,
                             "%s heads axis must equal num_key_value_heads (%lld), got %lld", name,
                             (long long)p->kvN, (long long)t->shape[axis]);
        if (t->shape[3] != p->D)
            return nsa_error(NSA_ERR_INVALID_ARGUMENT,
                             "%s head dim must equal the query's D (%lld), got %lld", name,
                             (long long)p->D, (long long)t->shape[3]);
    }
    *s = seq_axis_len(p, t);
    return NSA_SUCCESS;
}

static nsa_status same_shape(const nsa_tensor *a, const char *na, const nsa_tensor *b,
                             const char *nb)
{
    int i;
    if (a->ndim != b->ndim)
        return nsa_error(NSA_ERR_INVALID_ARGUMENT, "%s must have the rank of %s (%d), got %d", nb,
                         na, (int)a->ndim, (int)b->ndim);
    for (i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i])
            return nsa_error(NSA_ERR_INVALID_ARGUMENT,
                             "%s.shape[%d] must equal %s.shape[%d] (%lld), got %lld", nb, i, na, i,
                             (long long)a->shape[i], (long long)b->shape[i]);
    return NSA_SUCCESS;
}

static nsa_status check_kv_dtype(ifa_plan *p, const nsa_tensor *k, const nsa_tensor *v)
{
    if (k->dtype != v->dtype)
        return nsa_error(NSA_ERR_INVALID_ARGUMENT,
                         "key and value must have the same dtype, got %s and %s",
                         nsa_dtype_name(k->dtype), nsa_dtype_name(v->dtype));
    if (k->dtype != p->query->dtype && k->dtype != NSA_DTYPE_I8)
        return nsa_error(NSA_ERR_INVALID_ARGUMENT,
                         "key dtype must be the query's (%s) or i8 (antiquant), got %s",
                         nsa_dtype_name(p->query->dtype), nsa_dtype_name(k->dtype));
    p->kv_dtype = k->dtype;
    return NSA_SUCCESS;
}

static nsa_status check_paged_cache(ifa_plan *p, const nsa_tensor *k, const nsa_tensor *v,
                                    const nsa_tensor *bt)
{
    int64_t bs = p->block_size;
    TRY(nsa_check_tensor(bt, "block_table", 2, NSA_DT(NSA_DTYPE_I32)));
    if (bt->shape[0] != p->B)
        return INVAL("block_table.shape[0] must be the batch (%lld), got %lld", (long long)p->B,
                     (long long)bt->shape[0]);
    if (bt->shape[1] == 0)
        return INVAL("block_table must not be empty (max_blocks_per_seq is %lld)",
                     (long long)bt->shape[1]);
    if (bs <= 0)
        return INVAL("block_size must be > 0 with block_table, got %lld", (long long)bs);
    if (bs > INT32_MAX)
        return INVAL("block_size must be <= %lld, got %lld", (long long)INT32_MAX, (long long)bs);
    if (!k || !v)
        return nsa_error(NSA_ERR_NULL_POINTER, "%s must not be NULL", k ? "value" : "key");
    if (k->ndim == 3) {
        TRY(nsa_check_tensor(k, "key", 3, NSA_DT_FLOAT | NSA_DT(NSA_DTYPE_I8)));
        if (k->shape[1] != bs)
            return INVAL("key (paged cache) shape[1] must be block_size (%lld), got %lld",
                         (long long)bs, (long long)k->shape[1]);
        if (k->shape[2] != p->kvN * p->D)
            return INVAL("key (paged cache) shape[2] must be num_key_value_heads * D (%lld), "
                         "got %lld",
                         (long long)(p->kvN * p->D), (long long)k->shape[2]);
    } else if (k->ndim == 4) {
        TRY(nsa_check_tensor(k, "key", 4, NSA_DT_FLOAT | NSA_DT(NSA_DTYPE_I8)));
        if (p->layout != NSA_LAYOUT_BNSD)
            return nsa_error(NSA_ERR_INVALID_ARGUMENT,
                             "a 4-D paged cache (blocks, kvN, block_size, D) needs "
                             "input_layout BNSD, got %s",
                             nsa_layout_name(p->layout));
        if (k->shape[1] != p->kvN)
            return INVAL("key (paged cache) shape[1] must be num_key_value_heads (%lld), got "
                         "%lld",
                         (long long)p->kvN, (long long)k->shape[1]);
        if (k->shape[2] != bs)
            return INVAL("key (paged cache) shape[2] must be block_size (%lld), got %lld",
                         (long long)bs, (long long)k->shape[2]);
        if (k->shape[3] != p->D)
            return INVAL("key (paged cache) shape[3] must be the query's D (%lld), got %lld",
                         (long long)p->D, (long long)k->shape[3]);
    } else {
        return INVAL("key (paged cache) must have 3 dimensions (blocks, block_size, kvN*D) or "
                     "4 (blocks, kvN, block_size, D), got %lld",
                     (long long)k->ndim);
    }
    TRY(nsa_check_tensor(v, "value", k->ndim, NSA_DT_FLOAT | NSA_DT(NSA_DTYPE_I8)));
    TRY(same_shape(k, "key", v, "value"));
    TRY(check_kv_dtype(p, k, v));
    p->max_blocks = bt->shape[1];
    p->num_blocks = k->shape[0];
    if (p->max_blocks > INT64_MAX / bs)
        return INVAL("max_blocks_per_seq * block_size overflows int64 (%lld * %lld)",
                     (long long)p->max_blocks, (long long)bs);
    p->S = p->max_blocks * bs;
    if (p->level == NSA_VALIDATE_STRICT) {
        int64_t align = p->kv_dtype == NSA_DTYPE_I8 ? 32 : 16;
        if (bs > 512 || bs % align != 0)
            return STRICT("block_size must be a multiple of %lld and <= 512 at the strict "
                          "level, got %lld",
                          (long long)align, (long long)bs);
        if (p->max_blocks > 16384)
            return STRICT("block_table.shape[1] (max_blocks_per_seq) must be <= 16384 at "
                          "the strict level, got %lld",
                          (long long)p->max_blocks);
        if (k->ndim == 3 && p->kvN * p->D > 65535)
            return STRICT("a 3-D paged cache needs num_key_value_heads * D <= 65535 at "
                          "the strict level, got %lld",
                          (long long)(p->kvN * p->D));
        if (nsa_tensor_numel(k) > INT32_MAX)
            return STRICT("the paged key cache must have <= %lld elements at the strict "
                          "level, got %lld",
                          (long long)INT32_MAX, (long long)nsa_tensor_numel(k));
    }
    return NSA_SUCCESS;
}

static nsa_status check_lengths(ifa_plan *p)
{
    int64_t b, i;
    if (p->asl_count > 0 && p->asl_count != 1 && p->asl_count < p->B)
        return INVAL("actual_seq_lengths must have 1 or batch (%lld) entries, got %lld",
                     (long long)p->B, (long long)p->asl_count);
    if (p->asl_count > p->B && p->asl_count != 1 && p->level == NSA_VALIDATE_STRICT)
        return STRICT("actual_seq_lengths must have 1 or batch (%lld) entries at the "
                      "strict level, got %lld",
                      (long long)p->B, (long long)p->asl_count);
    if (p->block_table && p->asl_count == 0)
        return INVAL("actual_seq_lengths is required with block_table (page attention)");
    for (i = 0; i < p->asl_count && i < p->B; i++) {
        int64_t l = p->asl[i];
        int64_t limit = p->block_table ? p->S : 0;
        if (l < 0)
            return INVAL("actual_seq_lengths[%lld] must be >= 0, got %lld", (long long)i,
                         (long long)l);
        if (!p->block_table) {
            /* a broadcast length must fit every batch */
            int64_t b0 = p->asl_count == 1 ? 0 : i, b1 = p->asl_count == 1 ? p->B : i + 1;
            for (b = b0; b < b1; b++) {
                limit = batch_s(p, b);
                if (l > limit)
                    return nsa_error(NSA_ERR_INVALID_ARGUMENT,
                                     "actual_seq_lengths[%lld] (%lld) must be <= the key "
                                     "length S of batch %lld (%lld)",
                                     (long long)i, (long long)l, (long long)b, (long long)limit);
            }
        } else if (l > limit) {
            return nsa_error(NSA_ERR_INVALID_ARGUMENT,
                             "actual_seq_lengths[%lld] (%lld) must be <= block_size * "
                             "max_blocks_per_seq (%lld)",
                             (long long)i, (long long)l, (long long)limit);
        }
    }
    if (p->has_pad) {
        if (p->block_table)
            return INVAL("kv_padding_size cannot be combined with block_table (the vendor "
                         "ignores it there)");
        if (p->is_list)
            return INVAL("kv_padding_size cannot be used with per-batch key/value tensors "
                         "(the vendor ignores it there)");
        if (p->asl_count == 0)
            return INVAL("kv_padding_size requires actual_seq_lengths (the vendor ignores it "
                         "without)");
        if (p->level == NSA_VALIDATE_STRICT) {
            int64_t mx = 0;
            for (i = 0; i < p->asl_count && i < p->B; i++)
                mx = p->asl[i] > mx ? p->asl[i] : mx;
            if (p->pad > p->S - mx)
                return STRICT("kv_padding_size must be <= S - max(actual_seq_lengths) "
                              "(%lld) at the strict level, got %lld",
                              (long long)(p->S - mx), (long long)p->pad);
        }
    }
    return NSA_SUCCESS;
}

/* Ids of the pages each batch reads must exist in the cache. */
static nsa_status check_block_ids(const ifa_plan *p)
{
    const nsa_tensor *bt = p->block_table;
    int64_t b, i;
    for (b = 0; b < p->B; b++) {
        int64_t start, len, used;
        batch_range(p, b, &start, &len);
        used = nsa_cdiv(len, p->block_size);
        for (i = 0; i < used; i++) {
            int32_t id = *(const int32_t *)nsa_tensor_at(bt, b * bt->stride[0] + i * bt->stride[1]);
            if (id < 0 || id >= p->num_blocks)
                return nsa_error(NSA_ERR_INVALID_ARGUMENT,
                                 "block_table[%lld][%lld] must be in [0, %lld) (the cache's "
                                 "blocks), got %ld",
                                 (long long)b, (long long)i, (long long)p->num_blocks, (long)id);
        }
    }
    return NSA_SUCCESS;
}

/* The largest KV position + 1 any batch reads (mask and pse must cover it). */
static int64_t max_end(const ifa_plan *p)
{
    int64_t b, e = 0;
    for (b = 0; b < p->B; b++) {
        int64_t start, len;
        batch_range(p, b, &start, &len);
        if (len > 0 && start + len > e)
            e = start + len;
    }
    return e;
}

static nsa_status check_mask(const ifa_plan *p, const nsa_tensor *m, int64_t need)
{
    int32_t r;
    int64_t sm;
    if (!m)
        return NSA_SUCCESS;
    if (m->ndim < 2 || m->ndim > 4)
        return INVAL("atten_mask must have 2, 3 or 4 dimensions ((B,S), (B,1,S), (B,1,1,S)), "
                     "got %lld",
                     (long long)m->ndim);
    TRY(nsa_check_tensor(m, "atten_mask", m->ndim, NSA_DT_MASK));
    if (m->shape[0] != p->B)
        return INVAL("atten_mask.shape[0] must be the batch (%lld), got %lld", (long long)p->B,
                     (long long)m->shape[0]);
    for (r = 1; r + 1 < m->ndim; r++)
        if (m->shape[r] != 1)
            return INVAL("atten_mask.shape[%lld] must be 1 (one mask row per batch, shared by "
                         "all heads), got %lld",
                         (long long)r, (long long)m->shape[r]);
    sm = m->shape[m->ndim - 1];
    if (sm < need)
        return INVAL("atten_mask last dim must cover every KV position read (>= %lld), got "
                     "%lld",
                     (long long)need, (long long)sm);
    if (p->level == NSA_VALIDATE_STRICT) {
        int64_t b, s;
        if (p->block_table && sm < p->S)
            return STRICT("atten_mask last dim must be >= max_blocks_per_seq * block_size "
                          "(%lld) at the strict level, got %lld",
                          (long long)p->S, (long long)sm);
        for (b = 0; b < p->B; b++)
            for (s = 0; s < sm; s++) {
                uint8_t v = *(const uint8_t *)nsa_tensor_at(m, b * m->stride[0] +
                                                                   s * m->stride[m->ndim - 1]);
                if (v > 1)
                    return STRICT("atten_mask values must be 0 or 1 at the strict level, "
                                  "got %lld at batch %lld",
                                  (long long)(int8_t)v, (long long)b);
            }
    }
    return NSA_SUCCESS;
}

static nsa_status check_pse(const ifa_plan *p, const nsa_tensor *t, int64_t need)
{
    if (!t)
        return NSA_SUCCESS;
    TRY(nsa_check_tensor(t, "pse_shift", 4, NSA_DT_FLOAT));
    if (t->dtype != p->query->dtype)
        return nsa_error(NSA_ERR_INVALID_ARGUMENT,
                         "pse_shift dtype must be the query's (%s), got %s",
                         nsa_dtype_name(p->query->dtype), nsa_dtype_name(t->dtype));
    if (t->shape[0] != 1 && t->shape[0] != p->B)
        return INVAL("pse_shift.shape[0] must be 1 or the batch (%lld), got %lld", (long long)p->B,
                     (long long)t->shape[0]);
    if (t->shape[1] != p->N)
        return INVAL("pse_shift.shape[1] must be num_heads (%lld), got %lld", (long long)p->N,
                     (long long)t->shape[1]);
    if (t->shape[2] != 1)
        return INVAL("pse_shift.shape[2] must be 1 (the query token), got %lld",
                     (long long)t->shape[2]);
    if (t->shape[3] < need)
        return INVAL("pse_shift.shape[3] must cover every KV position read (>= %lld), got "
                     "%lld",
                     (long long)need, (long long)t->shape[3]);
    if (p->level == NSA_VALIDATE_STRICT) {
        if (t->shape[3] < p->S)
            return STRICT("pse_shift.shape[3] must be >= the key length S (%lld) at the "
                          "strict level, got %lld",
                          (long long)p->S, (long long)t->shape[3]);
        if (p->D % 16 != 0)
            return STRICT("pse_shift needs D to be a multiple of 16 at the strict level, "
                          "got D = %lld",
                          (long long)p->D);
    }
    return NSA_SUCCESS;
}

static nsa_status check_antiquant(ifa_plan *p, const nsa_tensor *sc, const nsa_tensor *off)
{
    uint32_t dts = NSA_DT(NSA_DTYPE_F32) | NSA_DT(p->query->dtype);
    int64_t kvh = p->kvN * p->D;
    if (p->kv_dtype != NSA_DTYPE_I8) {
        if (sc || off)
            return nsa_error(NSA_ERR_INVALID_ARGUMENT,
                             "antiquant_scale/antiquant_offset are given but key/value are %s, "
                             "not i8",
                             nsa_dtype_name(p->kv_dtype));
        return NSA_SUCCESS;
    }
    if (!sc)
        return nsa_error(NSA_ERR_NULL_POINTER, "antiquant_scale is required when key/value are i8");
    if (sc->ndim < 1 || sc->ndim > 4)
        return INVAL("antiquant_scale must have 1 to 4 dimensions, got %lld", (long long)sc->ndim);
    TRY(nsa_check_tensor(sc, "antiquant_scale", sc->ndim, dts));
    if (sc->shape[0] != 2)
        return INVAL("antiquant_scale.shape[0] must be 2 (key, value), got %lld",
                     (long long)sc->shape[0]);
    if (sc->ndim == 1) {
        p->aq_per_channel = 0;
    } else {
        int ok =
            (sc->ndim == 2 && sc->shape[1] == kvh) ||
            (sc->ndim == 3 && sc->shape[1] == p->kvN && sc->shape[2] == p->D) ||
            (sc->ndim == 4 && sc->shape[1] == p->kvN && sc->shape[2] == 1 &&
             sc->shape[3] == p->D) ||
            (sc->ndim == 4 && sc->shape[1] == 1 && sc->shape[2] == p->kvN && sc->shape[3] == p->D);
        if (!ok)
            return INVAL("antiquant_scale per-channel shape must be (2,kvN,1,D), (2,1,kvN,D), "
                         "(2,kvN,D) or (2,kvN*D) with kvN = %lld, D = %lld",
                         (long long)p->kvN, (long long)p->D);
        p->aq_per_channel = 1;
    }
    if (off) {
        if (off->ndim != sc->ndim)
            return INVAL("antiquant_offset must have the rank of antiquant_scale (%lld), got "
                         "%lld",
                         (long long)sc->ndim, (long long)off->ndim);
        TRY(nsa_check_tensor(off, "antiquant_offset", off->ndim, dts));
        if (off->dtype != sc->dtype)
            return nsa_error(NSA_ERR_INVALID_ARGUMENT,
                             "antiquant_offset dtype must be antiquant_scale's (%s), got %s",
                             nsa_dtype_name(sc->dtype), nsa_dtype_name(off->dtype));
        TRY(same_shape(sc, "antiquant_scale", off, "antiquant_offset"));
    }
    p->aq_scale = sc;
    p->aq_offset = off;
    return NSA_SUCCESS;
}

/* Per-channel post-quant shapes: [H], [1,H], [N,D], [N,1,D], [1,N,D], [1,1,H], [1,N,1,D],
 * [1,1,N,D]. */
static int q2_channel_shape(const ifa_plan *p, const nsa_tensor *t)
{
    const int64_t *s = t->shape;
    int64_t N = p->N, D = p->D, H = N * D;
    switch (t->ndim) {
    case 1: return s[0] == H;
    case 2: return (s[0] == 1 && s[1] == H) || (s[0] == N && s[1] == D);
    case 3:
        return (s[0] == N && s[1] == 1 && s[2] == D) || (s[0] == 1 && s[1] == N && s[2] == D) ||
               (s[0] == 1 && s[1] == 1 && s[2] == H);
    case 4:
        return s[0] == 1 &&
               ((s[1] == N && s[2] == 1 && s[3] == D) || (s[1] == 1 && s[2] == N && s[3] == D));
    default: return 0;
    }
}

static nsa_status check_quant2_one(const ifa_plan *p, const nsa_tensor *t, const char *name,
                                   int *per_channel)
{
    uint32_t dts = NSA_DT(NSA_DTYPE_F32);
    if (p->query->dtype == NSA_DTYPE_BF16)
        dts |= NSA_DT(NSA_DTYPE_BF16);
    if (t->ndim < 1 || t->ndim > 4)
        return nsa_error(NSA_ERR_INVALID_ARGUMENT, "%s must have 1 to 4 dimensions, got %d", name,
                         (int)t->ndim);
    TRY(nsa_check_tensor(t, name, t->ndim, dts));
    if (nsa_tensor_numel(t) == 1) {
        *per_channel = 0;
        return NSA_SUCCESS;
    }
    if (!q2_channel_shape(p, t))
        return nsa_error(NSA_ERR_INVALID_ARGUMENT,
                         "%s must have 1 element (per tensor) or N*D = %lld in a per-channel "
                         "shape ([H], [1,H], [N,D], [N,1,D], [1,N,D], [1,1,H], [1,N,1,D], "
                         "[1,1,N,D]; N = num_heads)",
                         name, (long long)(p->N * p->D));
    *per_channel = 1;
    return NSA_SUCCESS;
}

static nsa_status check_output(ifa_plan *p, const nsa_tensor *out, const nsa_tensor *qs,
                               const nsa_tensor *qo)
{
    const nsa_tensor *q = p->query;
    int i;
    if (!out)
        return nsa_error(NSA_ERR_NULL_POINTER, "attention_out must not be NULL");
    TRY(nsa_check_output(out, "attention_out", q->ndim, NSA_DT_FLOAT | NSA_DT(NSA_DTYPE_I8)));
    for (i = 0; i < q->ndim; i++)
        if (out->shape[i] != q->shape[i])
            return INVAL("attention_out.shape[%lld] must be the query's (%lld)", (long long)i,
                         (long long)q->shape[i]);
    if (qo && !qs)
        return nsa_error(NSA_ERR_INVALID_ARGUMENT, "quant_offset2 is given without quant_scale2");
    if (qs) {
        int pc_s = 0, pc_o = 0;
        if (out->dtype != NSA_DTYPE_I8)
            return nsa_error(NSA_ERR_INVALID_ARGUMENT,
                             "attention_out must be i8 when quant_scale2 is given, got %s",
                             nsa_dtype_name(out->dtype));
        TRY(check_quant2_one(p, qs, "quant_scale2", &pc_s));
        if (qo) {
            TRY(check_quant2_one(p, qo, "quant_offset2", &pc_o));
            if (qo->dtype != qs->dtype)
                return nsa_error(NSA_ERR_INVALID_ARGUMENT,
                                 "quant_offset2 dtype must be quant_scale2's (%s), got %s",
                                 nsa_dtype_name(qs->dtype), nsa_dtype_name(qo->dtype));
            if (pc_o != pc_s)
                return nsa_error(NSA_ERR_INVALID_ARGUMENT,
                                 "quant_scale2 and quant_offset2 must both be per tensor or "
                                 "both per channel (got %s and %s)",
                                 pc_s ? "per channel" : "per tensor",
                                 pc_o ? "per channel" : "per tensor");
        }
        if (pc_s && p->block_table && p->level == NSA_VALIDATE_STRICT)
            return STRICT("per-channel quant_scale2 cannot be combined with block_table at "
                          "the strict level");
        p->q2_scale = qs;
        p->q2_offset = qo;
        p->q2_per_channel = pc_s;
    } else if (out->dtype == NSA_DTYPE_I8) {
        return nsa_error(NSA_ERR_INVALID_ARGUMENT,
                         "attention_out is i8 but quant_scale2 is not given");
    } else if (out->dtype != q->dtype && out->dtype != NSA_DTYPE_F32) {
        return nsa_error(NSA_ERR_INVALID_ARGUMENT,
                         "attention_out dtype must be the query's (%s) or f32, got %s",
                         nsa_dtype_name(q->dtype), nsa_dtype_name(out->dtype));
    } else if (out->dtype != q->dtype && p->level == NSA_VALIDATE_STRICT) {
        return nsa_error(NSA_ERR_UNSUPPORTED,
                         "attention_out dtype must be the query's (%s) at the strict level, "
                         "got %s",
                         nsa_dtype_name(q->dtype), nsa_dtype_name(out->dtype));
    }
    return NSA_SUCCESS;
}

static nsa_status check_no_overlaps(const ifa_plan *p, int64_t kv_count)
{
    int64_t i;
    const nsa_tensor *out = p->out;
    TRY(nsa_check_no_overlap(out, "attention_out", p->query, "query"));
    for (i = 0; i < kv_count; i++) {
        TRY(nsa_check_no_overlap(out, "attention_out", &p->keys[i], "key"));
        TRY(nsa_check_no_overlap(out, "attention_out", &p->values[i], "value"));
    }
    TRY(nsa_check_no_overlap(out, "attention_out", p->mask, "atten_mask"));
    TRY(nsa_check_no_overlap(out, "attention_out", p->pse, "pse_shift"));
    TRY(nsa_check_no_overlap(out, "attention_out", p->block_table, "block_table"));
    TRY(nsa_check_no_overlap(out, "attention_out", p->aq_scale, "antiquant_scale"));
    TRY(nsa_check_no_overlap(out, "attention_out", p->aq_offset, "antiquant_offset"));
    TRY(nsa_check_no_overlap(out, "attention_out", p->q2_scale, "quant_scale2"));
    TRY(nsa_check_no_overlap(out, "attention_out", p->q2_offset, "quant_offset2"));
    return NSA_SUCCESS;
}

/* Kv heads one worker runs in lockstep (nsa_attn_group_run). Where the kv heads of a token lie
 * side by side (the pages of a paged cache; BSH/BSND rows) the lockstep reads them in address
 * order instead of one 32 KiB piece per page and head: bf16 decode with shuffled 128-key pages,
 * one thread, medians 8.3-8.9 -> 5.9-7.3 ms (contiguous 6.1-7.6), two threads 5.5-6.3 ->
 * 4.1-5.2 (contiguous 3.6-5.1); BSH 8.5-9.8 -> 7.6-8.6 ms on one thread, the same on two. The
 * largest divisor of kvN up to NSA_ATTN_MAX_GROUP that leaves 4 tasks per thread; results do
 * not depend on it (each tile's arithmetic is the same in any group). */
static int64_t lockstep_group(const ifa_plan *p)
{
    int64_t g, best = 1;
    if (!p->block_table && p->layout == NSA_LAYOUT_BNSD)
        return 1;
    for (g = 2; g <= p->kvN && g <= NSA_ATTN_MAX_GROUP; g++)
        if (p->kvN % g == 0 && p->ntasks / g >= 4 * (int64_t)p->threads)
            best = g;
    return best;
}

/* Task count and workspace layout. */
static nsa_status plan_work(ifa_plan *p, nsa_context *ctx)
{
    int64_t b, unit;
    size_t n, acc = 0;
    p->ntasks = 0;
    p->max_chunk = 0;
    for (b = 0; b < p->B; b++) {
        int64_t start, len, chunk, ns;
        batch_range(p, b, &start, &len);
        ns = split_count(p, len, &chunk);
        p->ntasks += ns * p->kvN;
        if (chunk > p->max_chunk)
            p->max_chunk = chunk;
    }
    unit = p->block_table ? (p->block_size < IFA_SEG ? p->block_size : IFA_SEG) : IFA_SEG;
    p->max_blocks_per_task = nsa_cdiv(p->max_chunk, unit) + 2;
    p->threads = nsa_context_num_threads(ctx);
    if (p->threads < 1)
        p->threads = 1;
    p->group = lockstep_group(p);

    p->sz_tasks = nsa_align64((size_t)(p->B + 1) * sizeof(int64_t));
    if (!nsa_mul_size((size_t)p->ntasks, (size_t)(p->G * p->D + 2 * p->G) * sizeof(float), &n))
        goto overflow;
    p->sz_partial = nsa_align64(n);
    /* kvN * D and N * D fit (they count query elements); the copies of 2 or 4 rows need not */
    if (!nsa_mul_size((size_t)(p->kvN * p->D) + 1, 4 * sizeof(float), &n))
        goto overflow;
    p->sz_aq = nsa_align64(n);
    if (!nsa_mul_size((size_t)(p->N * p->D) + 1, 2 * sizeof(float), &n))
        goto overflow;
    p->sz_q2 = nsa_align64(n);
    p->sz_attn = nsa_align64(nsa_attn_group_scratch_size((int32_t)p->group, (int32_t)p->G,
                                                         (int32_t)p->D, (int32_t)p->D,
                                                         IFA_KV_CHUNK));
    if (!nsa_mul_size((size_t)p->max_blocks_per_task, sizeof(nsa_kv_block), &n))
        goto overflow;
    p->sz_blocks = nsa_align64(n);
    p->sz_rows = nsa_align64((size_t)(2 * p->G) * sizeof(void *));
    p->sz_worker = p->sz_attn + (size_t)p->group * (p->sz_blocks + p->sz_rows) +
                   nsa_align64((size_t)IFA_KV_CHUNK * sizeof(float));
    if (!nsa_mul_size(p->sz_worker, (size_t)p->threads, &n) ||
        !nsa_add_size(n, p->sz_tasks, &acc) || !nsa_add_size(acc, p->sz_partial, &acc) ||
        !nsa_add_size(acc, p->sz_aq, &acc) || !nsa_add_size(acc, p->sz_q2, &acc))
        goto overflow;
    p->total = acc;
    return NSA_SUCCESS;
overflow:
    return nsa_error(NSA_ERR_INVALID_ARGUMENT,
                     "the workspace size overflows size_t (batch %lld, %lld tasks)",
                     (long long)p->B, (long long)p->ntasks);
}

static nsa_status prepare(ifa_plan *p, nsa_context *ctx, const nsa_tensor *query,
                          const nsa_tensor *keys, const nsa_tensor *values, int64_t kv_count,
                          int is_list, const nsa_ifa_optional *opt, const nsa_ifa_params *prm,
                          const nsa_tensor *out)
{
    nsa_ifa_params defaults = nsa_ifa_params_default();
    nsa_ifa_optional none = NSA_IFA_OPTIONAL_INIT;
    int64_t need;
    memset(p, 0, sizeof *p);
    if (!prm)
        prm = &defaults;
    if (!opt)
        opt = &none;
    TRY(check_params(p, prm));
    TRY(check_query(p, query));
    p->query = query;
    p->is_list = is_list;
    p->block_table = opt->block_table;
    if (is_list) {
        int64_t b;
        if (!keys || !values)
            return nsa_error(NSA_ERR_NULL_POINTER, "%s must not be NULL", keys ? "values" : "keys");
        if (kv_count < p->B)
            return INVAL("kv_count (the key/value list length) must be >= the batch (%lld), "
                         "got %lld",
                         (long long)p->B, (long long)kv_count);
        if (kv_count != p->B && p->level == NSA_VALIDATE_STRICT)
            return STRICT("kv_count must equal the batch (%lld) at the strict level, got "
                          "%lld",
                          (long long)p->B, (long long)kv_count);
        if (p->B > 256 && p->level == NSA_VALIDATE_STRICT)
            return STRICT("per-batch key/value lists hold at most 256 batches at the "
                          "strict level, got %lld",
                          (long long)p->B);
        if (opt->block_table)
            return INVAL("block_table cannot be combined with per-batch key/value tensors "
                         "(pass the paged cache as key/value)");
        for (b = 0; b < kv_count; b++) {
            char kn[40], vn[40];
            int64_t sk, sv;
            snprintf(kn, sizeof kn, "keys[%lld]", (long long)b);
            snprintf(vn, sizeof vn, "values[%lld]", (long long)b);
            TRY(check_kv_tensor(p, &keys[b], kn, 1, &sk));
            TRY(check_kv_tensor(p, &values[b], vn, 1, &sv));
            TRY(same_shape(&keys[b], kn, &values[b], vn));
            if (keys[b].dtype != keys[0].dtype)
                return nsa_error(NSA_ERR_INVALID_ARGUMENT,
                                 "keys[%lld] dtype must be keys[0]'s (%s), got %s", (long long)b,
                                 nsa_dtype_name(keys[0].dtype), nsa_dtype_name(keys[b].dtype));
            TRY(check_kv_dtype(p, &keys[b], &values[b]));
            if (b < p->B && sk > p->S)
                p->S = sk;
        }
    } else if (opt->block_table) {
        kv_count = 1;
        TRY(check_paged_cache(p, keys, values, opt->block_table));
    } else {
        int64_t sv;
        kv_count = 1;
        if (!keys || !values)
            return nsa_error(NSA_ERR_NULL_POINTER, "%s must not be NULL", keys ? "value" : "key");
        TRY(check_kv_tensor(p, keys, "key", p->B, &p->S));
        TRY(check_kv_tensor(p, values, "value", p->B, &sv));
        TRY(same_shape(keys, "key", values, "value"));
        TRY(check_kv_dtype(p, keys, values));
    }
    p->keys = keys;
    p->values = values;
    if (p->block_size != 0 && !p->block_table && p->level == NSA_VALIDATE_STRICT)
        return STRICT("block_size must be 0 without block_table at the strict level, got "
                      "%lld",
                      (long long)p->block_size);
    if (p->S > 262144 && p->level == NSA_VALIDATE_STRICT)
        return STRICT("the key length S must be <= 262144 at the strict level, got "
                      "%lld",
                      (long long)p->S);
    TRY(check_lengths(p));
    if (p->block_table)
        TRY(check_block_ids(p));
    need = max_end(p);
    p->mask = opt->atten_mask;
    p->pse = opt->pse_shift;
    TRY(check_mask(p, opt->atten_mask, need));
    TRY(check_pse(p, opt->pse_shift, need));
    TRY(check_antiquant(p, opt->antiquant_scale, opt->antiquant_offset));
    TRY(check_output(p, out, opt->quant_scale2, opt->quant_offset2));
    p->out = out;
    TRY(check_no_overlaps(p, kv_count));
    return plan_work(p, ctx);
}

/* ---- execution -------------------------------------------------------------------------- */

typedef struct ifa_run {
    const ifa_plan *p;
    int64_t *task0;  /* [B+1]: first task of each batch */
    float *partial;  /* per task: G rows of D, then G maxima, then G sums */
    float *aq_scale; /* [2][kvN*D] or [2] */
    float *aq_offset;
    float *q2_scale; /* [N*D] or [1] */
    float *q2_offset;
    char *workers;
} ifa_run;

/* What a tile's score hook needs. */
typedef struct ifa_hook {
    const ifa_plan *p;
    int64_t b, n0;
    float *tmp; /* IFA_KV_CHUNK floats */
} ifa_hook;

static void score_hook(const nsa_attn_tile *tile, int32_t block, int64_t kv_start, int32_t n,
                       float *s, int64_t lds)
{
    const ifa_hook *h = (const ifa_hook *)tile->user;
    const ifa_plan *p = h->p;
    int32_t r, j;
    (void)block;
    if (p->pse) {
        const nsa_tensor *t = p->pse;
        int64_t pb = t->shape[0] == 1 ? 0 : h->b;
        for (r = 0; r < tile->m; r++) {
            float *row = s + r * lds;
            nsa_load_f32(nsa_tensor_at(t, nsa_tensor_offset(t, pb, h->n0 + r, 0, kv_start)),
                         t->dtype, t->stride[3], h->tmp, n);
            for (j = 0; j < n; j++)
                row[j] += h->tmp[j];
        }
    }
    if (p->mask) {
        const nsa_tensor *m = p->mask;
        const uint8_t *mrow = (const uint8_t *)nsa_tensor_at(m, h->b * m->stride[0]);
        int64_t ms = m->stride[m->ndim - 1];
        for (j = 0; j < n; j++)
            if (mrow[(kv_start + j) * ms] != 0)
                for (r = 0; r < tile->m; r++)
                    s[r * lds + j] = IFA_MASK_VALUE;
    }
}

/* Fill `blocks` with the keys [c0, c1) of batch b, kv head n2; returns the count. */
static int32_t build_blocks(const ifa_plan *p, int64_t b, int64_t n2, int64_t c0, int64_t c1,
                            nsa_kv_block *blocks)
{
    const nsa_tensor *k = p->is_list ? &p->keys[b] : p->keys;
    const nsa_tensor *v = p->is_list ? &p->values[b] : p->values;
    ifa_axes ka = kv_axes(p, k), va = kv_axes(p, v);
    int64_t kb = p->is_list ? 0 : b, pos = c0;
    int32_t nb = 0;
    while (pos < c1) {
        nsa_kv_block *blk = &blocks[nb++];
        int64_t len = c1 - pos, page = kb, t = pos;
        if (p->block_table) {
            const nsa_tensor *bt = p->block_table;
            int64_t i = pos / p->block_size;
            t = pos - i * p->block_size;
            page = *(const int32_t *)nsa_tensor_at(bt, b * bt->stride[0] + i * bt->stride[1]);
            if (len > p->block_size - t)
                len = p->block_size - t;
        }
        if (len > IFA_SEG)
            len = IFA_SEG;
        blk->k = row_ptr(k, &ka, page, n2, t);
        blk->v = row_ptr(v, &va, page, n2, t);
        blk->k_row_stride = ka.s;
        blk->k_col_stride = ka.d;
        blk->v_row_stride = va.s;
        blk->v_col_stride = va.d;
        blk->kv_start = pos;
        blk->len = (int32_t)len;
        blk->flags = 0;
        pos += len;
    }
    return nb;
}

static void set_dequant(const ifa_run *run, int side, int64_t n2, nsa_dequant *dq)
{
    const ifa_plan *p = run->p;
    int64_t kvh = p->kvN * p->D;
    int64_t off = p->aq_per_channel ? side * kvh + n2 * p->D : side;
    dq->scale = run->aq_scale + off;
    dq->scale_stride = p->aq_per_channel ? 1 : 0;
    dq->offset = p->aq_offset ? run->aq_offset + off : NULL;
    dq->offset_stride = dq->scale_stride;
}

/* Tasks first..first+count-1: kv heads n2..n2+count-1 of one chunk of one batch (tasks are
 * chunk-major), run in lockstep. */
static void run_tasks(const ifa_run *run, int64_t first, int64_t count, char *ws)
{
    const ifa_plan *p = run->p;
    const int64_t G = p->G, D = p->D;
    int64_t lo = 0, hi = p->B, b, rel, n2, c, start, len, chunk, c0, c1, r, t;
    ifa_hook hooks[NSA_ATTN_MAX_GROUP];
    nsa_attn_tile tiles[NSA_ATTN_MAX_GROUP];
    ifa_axes qa = query_axes(p, p->query);
    char *per_head = ws + p->sz_attn;
    float *hook_tmp = (float *)(per_head + (size_t)count * (p->sz_blocks + p->sz_rows));

    while (hi - lo > 1) { /* batch b with task0[b] <= first < task0[b+1] */
        int64_t mid = (lo + hi) / 2;
        if (run->task0[mid] <= first)
            lo = mid;
        else
            hi = mid;
    }
    b = lo;
    batch_range(p, b, &start, &len);
    split_count(p, len, &chunk);
    rel = first - run->task0[b];
    /* chunk-major: the kv heads of one chunk are neighbouring tasks, so a BSH/BSND cache (all
     * kv heads in each token row) is swept once, not once per head */
    n2 = rel % p->kvN;
    c = rel / p->kvN;
    c0 = start + c * chunk;
    c1 = c0 + chunk < start + len ? c0 + chunk : start + len;

    for (t = 0; t < count; t++, n2++) {
        char *mine = per_head + (size_t)t * (p->sz_blocks + p->sz_rows);
        nsa_kv_block *blocks = (nsa_kv_block *)mine;
        const void **q_rows = (const void **)(mine + p->sz_blocks);
        void **o_rows = (void **)(q_rows + G);
        float *part = run->partial + (first + t) * (G * D + 2 * G);
        nsa_attn_tile *tile = &tiles[t];
        for (r = 0; r < G; r++) {
            q_rows[r] = row_ptr(p->query, &qa, b, n2 * G + r, 0);
            o_rows[r] = part + r * D;
        }
        hooks[t].p = p;
        hooks[t].b = b;
        hooks[t].n0 = n2 * G;
        hooks[t].tmp = hook_tmp;

        memset(tile, 0, sizeof *tile);
        tile->m = (int32_t)G;
        tile->q_rows = q_rows;
        tile->q_col_stride = qa.d;
        tile->q_dtype = p->query->dtype;
        tile->d = (int32_t)D;
        tile->dv = (int32_t)D;
        tile->scale = p->scale;
        tile->kv_dtype = p->kv_dtype;
        if (p->kv_dtype == NSA_DTYPE_I8) {
            set_dequant(run, 0, n2, &tile->k_dequant);
            set_dequant(run, 1, n2, &tile->v_dequant);
        }
        tile->kv_chunk = IFA_KV_CHUNK;
        tile->blocks = blocks;
        tile->nblocks = build_blocks(p, b, n2, c0, c1, blocks);
        tile->score_hook = (p->pse || p->mask) ? score_hook : NULL;
        tile->user = &hooks[t];
        tile->q_start = b;
        tile->o_rows = o_rows;
        tile->o_col_stride = 1;
        tile->o_dtype = NSA_DTYPE_F32;
        tile->row_max = part + G * D;
        tile->row_sum = part + G * D + G;
    }
    nsa_attn_group_run(tiles, (int32_t)count, ws);
}

static void attend_worker(void *arg, size_t w)
{
    const ifa_run *run = (const ifa_run *)arg;
    const ifa_plan *p = run->p;
    char *ws = run->workers + w * p->sz_worker;
    int64_t t;
    /* groups never straddle batches or chunks: group divides kvN and so every batch's tasks */
    for (t = (int64_t)w * p->group; t < p->ntasks; t += p->threads * p->group)
        run_tasks(run, t, p->group, ws);
}

/* Merge the chunks of output row (b, n) and store it. */
static void combine_row(const ifa_run *run, int64_t b, int64_t n, float *acc)
{
    const ifa_plan *p = run->p;
    const int64_t G = p->G, D = p->D, n2 = n / G, r = n % G;
    const int64_t stride = G * D + 2 * G;
    int64_t start, len, chunk, ns, c, d;
    ifa_axes oa = query_axes(p, p->out);
    void *dst = (void *)row_ptr(p->out, &oa, b, n, 0);

    batch_range(p, b, &start, &len);
    ns = split_count(p, len, &chunk);
    memset(acc, 0, (size_t)D * sizeof(float));
    if (ns > 0) {
        const float *first = run->partial + (run->task0[b] + n2) * stride;
        const int64_t chunk_stride = p->kvN * stride; /* tasks are chunk-major */
        if (ns == 1) {
            memcpy(acc, first + r * D, (size_t)D * sizeof(float));
        } else {
            float mx = -INFINITY, total = 0.0f;
            for (c = 0; c < ns; c++) {
                const float *pc = first + c * chunk_stride;
                if (pc[G * D + G + r] > 0.0f && pc[G * D + r] > mx)
                    mx = pc[G * D + r];
            }
            for (c = 0; c < ns; c++) {
                const float *pc = first + c * chunk_stride;
                float l = pc[G * D + G + r], wgt;
                if (l == 0.0f) /* an empty chunk; a NaN sum still propagates */
                    continue;
                wgt = expf(pc[G * D + r] - mx) * l;
                total += wgt;
                for (d = 0; d < D; d++)
                    acc[d] += wgt * pc[r * D + d];
            }
            if (total != 0.0f)
                for (d = 0; d < D; d++)
                    acc[d] /= total;
        }
    }
    if (p->q2_scale) {
        int64_t cs = p->q2_per_channel ? 1 : 0;
        nsa_store_i8_quant(acc, (int8_t *)dst, oa.d, run->q2_scale + cs * n * D, cs,
                           p->q2_offset ? run->q2_offset + cs * n * D : NULL, cs, D);
    } else {
        nsa_store_f32(acc, dst, p->out->dtype, oa.d, D, NSA_ROUND_NEAREST_EVEN);
    }
}

static void combine_worker(void *arg, size_t w)
{
    const ifa_run *run = (const ifa_run *)arg;
    const ifa_plan *p = run->p;
    float *acc = (float *)(run->workers + w * p->sz_worker);
    int64_t row;
    for (row = (int64_t)w; row < p->B * p->N; row += p->threads)
        combine_row(run, row / p->N, row % p->N, acc);
}

/* Copy a small parameter tensor in C order into fp32 (strides honoured), a row of the last
 * axis per call: element by element it cost 2-3 % of an int8 decode call at S = 4096. */
static void load_flat(const nsa_tensor *t, float *dst)
{
    int64_t idx[NSA_MAX_DIMS] = {0, 0, 0, 0}, i, total = nsa_tensor_numel(t);
    const int last = t->ndim - 1;
    const int64_t width = t->ndim > 0 ? t->shape[last] : 1;
    int axis;
    for (i = 0; i < total; i += width) {
        int64_t off = 0;
        for (axis = 0; axis < last; axis++)
            off += idx[axis] * t->stride[axis];
        nsa_load_f32(nsa_tensor_at(t, off), t->dtype, t->ndim > 0 ? t->stride[last] : 1, dst + i,
                     width);
        for (axis = last - 1; axis >= 0; axis--) {
            if (++idx[axis] < t->shape[axis])
                break;
            idx[axis] = 0;
        }
    }
}

static nsa_status execute(const ifa_plan *p, nsa_context *ctx)
{
    ifa_run run;
    void *ws = NULL;
    char *base;
    int64_t b;
    nsa_status st = nsa_workspace_acquire(ctx, p->total, &ws);
    if (st != NSA_SUCCESS)
        return st;
    base = (char *)ws;
    run.p = p;
    run.task0 = (int64_t *)base;
    base += p->sz_tasks;
    run.partial = (float *)base;
    base += p->sz_partial;
    run.aq_scale = (float *)base;
    run.aq_offset = run.aq_scale + 2 * p->kvN * p->D + 2;
    base += p->sz_aq;
    run.q2_scale = (float *)base;
    run.q2_offset = run.q2_scale + p->N * p->D + 1;
    base += p->sz_q2;
    run.workers = base;

    run.task0[0] = 0;
    for (b = 0; b < p->B; b++) {
        int64_t start, len, chunk;
        batch_range(p, b, &start, &len);
        run.task0[b + 1] = run.task0[b] + split_count(p, len, &chunk) * p->kvN;
    }
    if (p->aq_scale)
        load_flat(p->aq_scale, run.aq_scale);
    if (p->aq_offset)
        load_flat(p->aq_offset, run.aq_offset);
    if (p->q2_scale)
        load_flat(p->q2_scale, run.q2_scale);
    if (p->q2_offset)
        load_flat(p->q2_offset, run.q2_offset);

    if (p->ntasks > 0)
        nsa_parallel_for(ctx, attend_worker, &run, (size_t)p->threads);
    nsa_parallel_for(ctx, combine_worker, &run, (size_t)p->threads);
    nsa_workspace_release(ctx, ws);
    return NSA_SUCCESS;
}

/* ---- public entry points ---------------------------------------------------------------- */

nsa_ifa_params nsa_ifa_params_default(void)
{
    nsa_ifa_params p = NSA_IFA_PARAMS_INIT;
    return p;
}

static nsa_status ifa_entry(nsa_context *ctx, const nsa_tensor *query, const nsa_tensor *keys,
                            const nsa_tensor *values, int64_t kv_count, int is_list,
                            const nsa_ifa_optional *opt, const nsa_ifa_params *params,
                            const nsa_tensor *out, size_t *size)
{
    ifa_plan plan;
    nsa_context *c;
    nsa_status st;
    nsa_clear_error();
    c = nsa_context_resolve(ctx);
    if (!c)
        return nsa_error(NSA_ERR_OUT_OF_MEMORY, "could not create the default context");
    st = prepare(&plan, c, query, keys, values, kv_count, is_list, opt, params, out);
    if (st != NSA_SUCCESS)
        return st;
    if (size) {
        *size = plan.total;
        return NSA_SUCCESS;
    }
    return execute(&plan, c);
}

nsa_status nsa_incre_flash_attention(nsa_context *ctx, const nsa_tensor *query,
                                     const nsa_tensor *key, const nsa_tensor *value,
                                     const nsa_ifa_optional *opt, const nsa_ifa_params *params,
                                     const nsa_tensor *attention_out)
{
    return ifa_entry(ctx, query, key, value, 1, 0, opt, params, attention_out, NULL);
}

nsa_status nsa_incre_flash_attention_kv_list(nsa_context *ctx, const nsa_tensor *query,
                                             const nsa_tensor *keys, const nsa_tensor *values,
                                             int64_t kv_count, const nsa_ifa_optional *opt,
                                             const nsa_ifa_params *params,
                                             const nsa_tensor *attention_out)
{
    return ifa_entry(ctx, query, keys, values, kv_count, 1, opt, params, attention_out, NULL);
}

nsa_status nsa_incre_flash_attention_workspace_size(nsa_context *ctx, const nsa_tensor *query,
                                                    const nsa_tensor *key, const nsa_tensor *value,
                                                    const nsa_ifa_optional *opt,
                                                    const nsa_ifa_params *params,
                                                    const nsa_tensor *attention_out, size_t *size)
{
    if (!size) {
        nsa_clear_error();
        return nsa_error(NSA_ERR_NULL_POINTER, "size must not be NULL");
    }
    return ifa_entry(ctx, query, key, value, 1, 0, opt, params, attention_out, size);
}

nsa_status nsa_incre_flash_attention_kv_list_workspace_size(
    nsa_context *ctx, const nsa_tensor *query, const nsa_tensor *keys, const nsa_tensor *values,
    int64_t kv_count, const nsa_ifa_optional *opt, const nsa_ifa_params *params,
    const nsa_tensor *attention_out, size_t *size)
{
    if (!size) {
        nsa_clear_error();
        return nsa_error(NSA_ERR_NULL_POINTER, "size must not be NULL");
    }
    return ifa_entry(ctx, query, keys, values, kv_count, 1, opt, params, attention_out, size);
}
