/* SPDX-License-Identifier: Apache-2.0 */
/* nsa_select_attention: attention over the top-k selected key blocks of each query
 * (semantics: docs/nsa_select.md, spec nsa-research.md §4).
 *
 * Mapping onto the shared kernel: one tile = the G query heads of one kv head for a run of
 * consecutive tokens of one batch whose topk rows are identical (usually a single token; a
 * run batches tokens only when that is exact, because every row of a tile sees the same
 * blocks). The tile's KV blocks are the k selected blocks, pointing straight into the strided
 * key / value tensors, so the cost is T1 * k * l' whatever T2 is. The causal cut is the
 * kernel's mask hook, called only on blocks reaching past the run's first query position.
 *
 * f16 / bf16 (or channel-strided) keys and values must be widened to fp32 for the GEMMs. A
 * token's k blocks are mostly the blocks its neighbours chose too (the first block, the local
 * blocks, and nearby tokens rank blocks alike), so each task keeps the blocks it converted
 * last in a small cache and hands them to the kernel as fp32 rows; a hit skips the
 * conversion. The kernel sees the same fp32 values either way, so results do not depend on
 * hits (nor on the thread count). */
#include <float.h>
#include <math.h>
#include <string.h>

#include "nsa/nsa_select.h"

#include "core/internal.h"
#include "dtype/convert.h"
#include "kernel/attn_tile.h"
#include "tensor/tensor.h"

/* Most query rows one tile holds when several tokens share a topk row (the kernel's
 * preferred tile height). */
#define SELECT_TILE_ROWS NSA_ATTN_Q_TILE
/* Statistics are written this many times per row (one 32-byte block on Ascend). */
#define SELECT_STAT_COPIES 8
/* Converted-block cache of one task: about this many bytes, at least k and at most 2k
 * blocks (all k blocks of a tile must be resident together); not used when k blocks would
 * exceed the upper bound. */
#define SELECT_CACHE_BYTES ((size_t)2 << 20)
#define SELECT_CACHE_MAX_BYTES ((size_t)64 << 20)
/* Work items span up to this many tiles of tokens (cache locality), fewer when that leaves
 * under ~64 items; the split depends only on shapes, never on the thread count. */
#define SELECT_ITEM_TILES 16
#define SELECT_MIN_ITEMS 64
/* Sanity bounds on head dims and head counts: keep every kernel size in int32. */
#define SELECT_MAX_HEAD_DIM 65536
#define SELECT_MAX_HEADS 65536

/* Vendor limits only the strict level enforces (nsa-research.md §4.7). */
#define STRICT_BLOCK_SIZE 64
#define STRICT_BLOCK_COUNT 16
#define STRICT_D 192
#define STRICT_DV 128
#define STRICT_MAX_G 32
#define STRICT_MAX_HEADS 128
#define STRICT_MAX_BATCH 1024
#define STRICT_MAX_SEQ 131072

nsa_select_attention_params nsa_select_attention_params_default(void)
{
    nsa_select_attention_params p = NSA_SELECT_ATTENTION_PARAMS_INIT;
    return p;
}

/* Everything the validated call needs. */
typedef struct select_plan {
    int64_t t1, t2, n1, n2, group, d, dv;
    int64_t block_size, block_count;
    int64_t batches;
    const int64_t *cum_q, *cum_kv; /* prefix sums, `batches` entries */
    int64_t one_q, one_kv;         /* the single batch when no arrays were given */
    float scale;
    int causal;
    int64_t tokens_per_tile; /* most tokens a tile holds */
    int64_t item_tokens;     /* tokens of one work item (a multiple of tokens_per_tile) */
    int32_t rows_max;        /* query rows of the largest tile */
    int64_t items;           /* work items: kv heads x token chunks */
    int32_t cache_slots;     /* converted-block cache slots per task; 0 = no cache */
    size_t ntasks;           /* parallel tasks, one scratch each */
    size_t task_bytes;       /* scratch of one task */
} select_plan;

static int64_t batch_start(const int64_t *cum, int64_t b)
{
    return b > 0 ? cum[b - 1] : 0;
}

static nsa_status check_same_dtype(const nsa_tensor *t, const char *name, const nsa_tensor *q)
{
    if (t->dtype != q->dtype)
        return nsa_error(NSA_ERR_INVALID_ARGUMENT, "%s dtype must equal query dtype (%s), got %s",
                         name, nsa_dtype_name(q->dtype), nsa_dtype_name(t->dtype));
    return NSA_SUCCESS;
}

static nsa_status check_params(const nsa_select_attention_params *p)
{
    if (p->select_block_size % 16)
        return nsa_error(NSA_ERR_INVALID_ARGUMENT,
                         "select_block_size must be a multiple of 16, got %lld",
                         (long long)p->select_block_size);
    if (p->select_block_size < 16 || p->select_block_size > 128)
        return nsa_error(NSA_ERR_INVALID_ARGUMENT, "select_block_size must be in [16, 128], got %lld",
                         (long long)p->select_block_size);
    if (p->select_block_count < 1 || p->select_block_count > 32)
        return nsa_error(NSA_ERR_INVALID_ARGUMENT, "select_block_count must be in [1, 32], got %lld",
                         (long long)p->select_block_count);
    if (p->sparse_mode != 0 && p->sparse_mode != 2)
        return nsa_error(NSA_ERR_INVALID_ARGUMENT,
                         "sparse_mode must be 0 (no mask) or 2 (top-left causal), got %lld",
                         (long long)p->sparse_mode);
    if (p->validation != NSA_VALIDATE_DEFAULT && p->validation != NSA_VALIDATE_STRICT)
        return nsa_error(NSA_ERR_INVALID_ARGUMENT, "validation must be NSA_VALIDATE_DEFAULT or "
                                                   "NSA_VALIDATE_STRICT, got %d",
                         (int)p->validation);
    if (!(p->scale_value == p->scale_value) || fabs(p->scale_value) > (double)FLT_MAX)
        return nsa_error(NSA_ERR_INVALID_ARGUMENT,
                         "scale_value must be a finite float32 value, got %g", p->scale_value);
    return NSA_SUCCESS;
}

static nsa_status check_sequences(const nsa_select_attention_params *p, select_plan *pl)
{
    nsa_status st;
    if (!p->actual_seq_qlen && !p->actual_seq_kvlen && p->actual_seq_qlen_count == 0 &&
        p->actual_seq_kvlen_count == 0) {
        pl->one_q = pl->t1;
        pl->one_kv = pl->t2;
        pl->cum_q = &pl->one_q;
        pl->cum_kv = &pl->one_kv;
        pl->batches = 1;
        return NSA_SUCCESS;
    }
    if (!p->actual_seq_qlen)
        return nsa_error(NSA_ERR_NULL_POINTER,
                         "actual_seq_qlen must not be NULL when actual_seq_kvlen is given");
    if (!p->actual_seq_kvlen)
        return nsa_error(NSA_ERR_NULL_POINTER,
                         "actual_seq_kvlen must not be NULL when actual_seq_qlen is given");
    if (p->actual_seq_qlen_count < 1)
        return nsa_error(NSA_ERR_INVALID_ARGUMENT, "actual_seq_qlen_count must be >= 1, got %lld",
                         (long long)p->actual_seq_qlen_count);
    if (p->actual_seq_kvlen_count != p->actual_seq_qlen_count)
        return nsa_error(NSA_ERR_INVALID_ARGUMENT,
                         "actual_seq_kvlen_count must equal actual_seq_qlen_count (%lld), got %lld",
                         (long long)p->actual_seq_qlen_count, (long long)p->actual_seq_kvlen_count);
    st = nsa_check_prefix_sums(p->actual_seq_qlen, p->actual_seq_qlen_count, "actual_seq_qlen",
                               pl->t1, "query.shape[0] (T1)");
    if (st != NSA_SUCCESS)
        return st;
    st = nsa_check_prefix_sums(p->actual_seq_kvlen, p->actual_seq_kvlen_count,
                               "actual_seq_kvlen", pl->t2, "key.shape[0] (T2)");
    if (st != NSA_SUCCESS)
        return st;
    pl->cum_q = p->actual_seq_qlen;
    pl->cum_kv = p->actual_seq_kvlen;
    pl->batches = p->actual_seq_qlen_count;
    return NSA_SUCCESS;
}

/* What the MindSpore / torch_npu docs forbid on Ascend hardware. */
static nsa_status check_strict(const nsa_tensor *query, const nsa_tensor *attention_out,
                               const select_plan *pl)
{
    int64_t b;
    if (query->dtype != NSA_DTYPE_F16 && query->dtype != NSA_DTYPE_BF16)
        return nsa_error(NSA_ERR_UNSUPPORTED,
                         "query dtype must be f16 or bf16 under strict validation, got %s",
                         nsa_dtype_name(query->dtype));
    if (attention_out && attention_out->dtype != query->dtype)
        return nsa_error(NSA_ERR_UNSUPPORTED,
                         "attention_out dtype must equal query dtype (%s) under strict "
                         "validation, got %s",
                         nsa_dtype_name(query->dtype), nsa_dtype_name(attention_out->dtype));
    if (pl->block_size != STRICT_BLOCK_SIZE)
        return nsa_error(NSA_ERR_UNSUPPORTED,
                         "select_block_size must be %d under strict validation, got %lld",
                         STRICT_BLOCK_SIZE, (long long)pl->block_size);
    if (pl->block_count != STRICT_BLOCK_COUNT)
        return nsa_error(NSA_ERR_UNSUPPORTED,
                         "select_block_count must be %d under strict validation, got %lld",
                         STRICT_BLOCK_COUNT, (long long)pl->block_count);
    if (pl->d != STRICT_D)
        return nsa_error(NSA_ERR_UNSUPPORTED,
                         "query.shape[2] (D) must be %d under strict validation, got %lld",
                         STRICT_D, (long long)pl->d);
    if (pl->dv != STRICT_DV)
        return nsa_error(NSA_ERR_UNSUPPORTED,
                         "value.shape[2] (Dv) must be %d under strict validation, got %lld",
                         STRICT_DV, (long long)pl->dv);
    if (pl->group > STRICT_MAX_G)
        return nsa_error(NSA_ERR_UNSUPPORTED,
                         "head_num / N2 (G) must be <= %d under strict validation, got %lld",
                         STRICT_MAX_G, (long long)pl->group);
    if (pl->n1 > STRICT_MAX_HEADS)
        return nsa_error(NSA_ERR_UNSUPPORTED,
                         "head_num must be <= %d under strict validation, got %lld",
                         STRICT_MAX_HEADS, (long long)pl->n1);
    if (pl->batches > STRICT_MAX_BATCH)
        return nsa_error(NSA_ERR_UNSUPPORTED,
                         "the batch count (actual_seq_qlen_count) must be <= %d under strict "
                         "validation, got %lld",
                         STRICT_MAX_BATCH, (long long)pl->batches);
    for (b = 0; b < pl->batches; b++) {
        int64_t s1 = pl->cum_q[b] - batch_start(pl->cum_q, b);
        int64_t s2 = pl->cum_kv[b] - batch_start(pl->cum_kv, b);
        if (s1 > STRICT_MAX_SEQ)
            return nsa_error(NSA_ERR_UNSUPPORTED,
                             "batch %lld query length must be <= %d under strict validation, "
                             "got %lld",
                             (long long)b, STRICT_MAX_SEQ, (long long)s1);
        if (s2 > STRICT_MAX_SEQ)
            return nsa_error(NSA_ERR_UNSUPPORTED,
                             "batch %lld key length must be <= %d under strict validation, "
                             "got %lld",
                             (long long)b, STRICT_MAX_SEQ, (long long)s2);
        if (s2 % pl->block_size)
            return nsa_error(NSA_ERR_UNSUPPORTED,
                             "batch %lld key length (%lld) must be a multiple of "
                             "select_block_size (%lld) under strict validation",
                             (long long)b, (long long)s2, (long long)pl->block_size);
        if (s2 < pl->block_size * pl->block_count)
            return nsa_error(NSA_ERR_UNSUPPORTED,
                             "batch %lld key length (%lld) must be >= select_block_size * "
                             "select_block_count (%lld) under strict validation",
                             (long long)b, (long long)s2,
                             (long long)(pl->block_size * pl->block_count));
    }
    return NSA_SUCCESS;
}

/* Bytes of one cached block (fp32 keys and values). */
static size_t cache_slot_bytes(const select_plan *pl)
{
    return nsa_align64((size_t)(pl->block_size * pl->d) * sizeof(float)) +
           nsa_align64((size_t)(pl->block_size * pl->dv) * sizeof(float));
}

/* Work split and scratch sizes. */
static nsa_status size_work(nsa_context *ctx, const nsa_tensor *key, const nsa_tensor *value,
                            select_plan *pl)
{
    size_t bytes = 0, total, slot_bytes = cache_slot_bytes(pl);
    int64_t tiles, per_item, chunks, rows = SELECT_TILE_ROWS;
    nsa_kv_block blk;
    nsa_attn_tile like; /* the tiles' shape, for the kernel's answers */
    memset(&blk, 0, sizeof blk);
    blk.k_row_stride = key->stride[0];
    blk.k_col_stride = key->stride[2];
    blk.v_row_stride = value->stride[0];
    blk.v_col_stride = value->stride[2];
    blk.len = (int32_t)pl->block_size; /* short blocks: the kernel's loops may beat BLAS */
    like = nsa_attn_tile_shape(1, (int32_t)pl->d, (int32_t)pl->dv, key->dtype, key->dtype, &blk);
    if (pl->group < rows) { /* how many rows pay, in units of one token's */
        like.m = (int32_t)pl->group;
        rows = nsa_attn_tile_rows(&like, SELECT_TILE_ROWS);
    }
    pl->tokens_per_tile = pl->group >= rows ? 1 : rows / pl->group;
    pl->rows_max = (int32_t)(pl->tokens_per_tile * pl->group);
    tiles = nsa_cdiv(pl->t1, pl->tokens_per_tile);
    per_item = tiles * pl->n2 / SELECT_MIN_ITEMS;
    per_item = per_item < 1 ? 1 : per_item > SELECT_ITEM_TILES ? SELECT_ITEM_TILES : per_item;
    pl->item_tokens = per_item * pl->tokens_per_tile;
    chunks = nsa_cdiv(pl->t1, pl->item_tokens);
    pl->items = chunks * pl->n2;
    pl->ntasks = pl->items ? nsa_worker_count(ctx, pl->items) : 0;

    /* the block cache, for tiles the kernel would otherwise convert (the largest decides) */
    like.m = pl->rows_max;
    pl->cache_slots = 0;
    if (!nsa_attn_tile_reads_in_place(&like) &&
        slot_bytes * (size_t)pl->block_count <= SELECT_CACHE_MAX_BYTES) {
        size_t slots = SELECT_CACHE_BYTES / slot_bytes;
        if (slots < (size_t)pl->block_count)
            slots = (size_t)pl->block_count;
        if (slots > 2 * (size_t)pl->block_count)
            slots = 2 * (size_t)pl->block_count;
        pl->cache_slots = (int32_t)slots;
    }
    if (!nsa_add_size(bytes, slot_bytes * (size_t)pl->cache_slots, &bytes) ||
        !nsa_add_size(bytes, 2 * nsa_align64((size_t)pl->cache_slots * sizeof(int64_t)),
                      &bytes) ||
        !nsa_add_size(bytes,
                      nsa_attn_scratch_size(pl->rows_max, (int32_t)pl->d, (int32_t)pl->dv,
                                            (int32_t)pl->block_size),
                      &bytes) ||
        !nsa_add_size(bytes, nsa_align64((size_t)pl->block_count * sizeof(nsa_kv_block)),
                      &bytes) ||
        !nsa_add_size(bytes, 2 * nsa_align64((size_t)pl->rows_max * sizeof(void *)), &bytes) ||
        !nsa_add_size(bytes, 2 * nsa_align64((size_t)pl->rows_max * sizeof(float)), &bytes) ||
        !nsa_add_size(bytes, nsa_align64((size_t)pl->dv * sizeof(float)), &bytes) ||
        !nsa_mul_size(bytes, pl->ntasks, &total))
        return nsa_error(NSA_ERR_INVALID_ARGUMENT, "the workspace size overflows size_t");
    pl->task_bytes = bytes;
    return NSA_SUCCESS;
}

/* Shapes, dtypes and parameters (not the outputs, not the topk values). */
static nsa_status check_inputs(nsa_context *ctx, const nsa_tensor *query, const nsa_tensor *key,
                               const nsa_tensor *value, const nsa_tensor *topk_indices,
                               const nsa_select_attention_params *p, select_plan *pl)
{
    nsa_status st;
    memset(pl, 0, sizeof *pl);
    if (!p)
        return nsa_error(NSA_ERR_NULL_POINTER, "params must not be NULL");
    if ((st = nsa_check_tensor(query, "query", 3, NSA_DT_FLOAT)) != NSA_SUCCESS ||
        (st = nsa_check_tensor(key, "key", 3, NSA_DT_FLOAT)) != NSA_SUCCESS ||
        (st = nsa_check_tensor(value, "value", 3, NSA_DT_FLOAT)) != NSA_SUCCESS ||
        (st = nsa_check_tensor(topk_indices, "topk_indices", 3, NSA_DT(NSA_DTYPE_I32))) !=
            NSA_SUCCESS ||
        (st = check_same_dtype(key, "key", query)) != NSA_SUCCESS ||
        (st = check_same_dtype(value, "value", query)) != NSA_SUCCESS ||
        (st = check_params(p)) != NSA_SUCCESS)
        return st;

    pl->t1 = query->shape[0];
    pl->n1 = query->shape[1];
    pl->d = query->shape[2];
    pl->t2 = key->shape[0];
    pl->n2 = key->shape[1];
    pl->dv = value->shape[2];
    pl->block_size = p->select_block_size;
    pl->block_count = p->select_block_count;
    if (pl->n2 < 1)
        return nsa_error(NSA_ERR_INVALID_ARGUMENT, "key.shape[1] (N2) must be >= 1, got %lld",
                         (long long)pl->n2);
    if (pl->d < 1 || pl->d > SELECT_MAX_HEAD_DIM)
        return nsa_error(NSA_ERR_INVALID_ARGUMENT, "query.shape[2] (D) must be in [1, %d], got %lld",
                         SELECT_MAX_HEAD_DIM, (long long)pl->d);
    if (pl->dv < 1 || pl->dv > SELECT_MAX_HEAD_DIM)
        return nsa_error(NSA_ERR_INVALID_ARGUMENT, "value.shape[2] (Dv) must be in [1, %d], got %lld",
                         SELECT_MAX_HEAD_DIM, (long long)pl->dv);
    if (p->head_num < 0 || (p->head_num > 0 && p->head_num != pl->n1))
        return nsa_error(NSA_ERR_INVALID_ARGUMENT,
                         "head_num must equal query.shape[1] (%lld) (or be 0), got %lld",
                         (long long)pl->n1, (long long)p->head_num);
    if (pl->n1 > SELECT_MAX_HEADS)
        return nsa_error(NSA_ERR_INVALID_ARGUMENT, "query.shape[1] (N1) must be <= %d, got %lld",
                         SELECT_MAX_HEADS, (long long)pl->n1);
    if (pl->n1 < 1 || pl->n1 % pl->n2)
        return nsa_error(NSA_ERR_INVALID_ARGUMENT,
                         "head_num (query.shape[1] = %lld) must be a positive multiple of "
                         "key.shape[1] (N2 = %lld)",
                         (long long)pl->n1, (long long)pl->n2);
    pl->group = pl->n1 / pl->n2;
    if ((st = nsa_check_dim(key, "key", 2, pl->d, "query.shape[2] (D)")) != NSA_SUCCESS ||
        (st = nsa_check_dim(value, "value", 0, pl->t2, "key.shape[0] (T2)")) != NSA_SUCCESS ||
        (st = nsa_check_dim(value, "value", 1, pl->n2, "key.shape[1] (N2)")) != NSA_SUCCESS ||
        (st = nsa_check_dim(topk_indices, "topk_indices", 0, pl->t1, "query.shape[0] (T1)")) !=
            NSA_SUCCESS ||
        (st = nsa_check_dim(topk_indices, "topk_indices", 1, pl->n2, "key.shape[1] (N2)")) !=
            NSA_SUCCESS ||
        (st = nsa_check_dim(topk_indices, "topk_indices", 2, pl->block_count,
                            "select_block_count")) != NSA_SUCCESS ||
        (st = check_sequences(p, pl)) != NSA_SUCCESS)
        return st;
    pl->scale = (float)p->scale_value;
    pl->causal = p->sparse_mode == 2;
    return size_work(nsa_context_resolve(ctx), key, value, pl);
}

static nsa_status check_outputs(const nsa_tensor *query, const nsa_tensor *key,
                                const nsa_tensor *value, const nsa_tensor *topk_indices,
                                const nsa_tensor *out, const nsa_tensor *smax,
                                const nsa_tensor *ssum, const select_plan *pl)
{
    const nsa_tensor *outs[3];
    const char *out_names[3] = {"attention_out", "softmax_max", "softmax_sum"};
    const nsa_tensor *ins[4];
    const char *in_names[4] = {"query", "key", "value", "topk_indices"};
    nsa_status st;
    int i, j;
    outs[0] = out;
    outs[1] = smax;
    outs[2] = ssum;
    ins[0] = query;
    ins[1] = key;
    ins[2] = value;
    ins[3] = topk_indices;
    if ((st = nsa_check_output(out, "attention_out", 3, NSA_DT_FLOAT)) != NSA_SUCCESS ||
        (st = nsa_check_dim(out, "attention_out", 0, pl->t1, "query.shape[0] (T1)")) !=
            NSA_SUCCESS ||
        (st = nsa_check_dim(out, "attention_out", 1, pl->n1, "query.shape[1] (N1)")) !=
            NSA_SUCCESS ||
        (st = nsa_check_dim(out, "attention_out", 2, pl->dv, "value.shape[2] (Dv)")) !=
            NSA_SUCCESS)
        return st;
    for (i = 1; i < 3; i++) {
        if (!outs[i])
            continue;
        if ((st = nsa_check_output(outs[i], out_names[i], 3, NSA_DT(NSA_DTYPE_F32))) !=
                NSA_SUCCESS ||
            (st = nsa_check_dim(outs[i], out_names[i], 0, pl->t1, "query.shape[0] (T1)")) !=
                NSA_SUCCESS ||
            (st = nsa_check_dim(outs[i], out_names[i], 1, pl->n1, "query.shape[1] (N1)")) !=
                NSA_SUCCESS ||
            (st = nsa_check_dim(outs[i], out_names[i], 2, SELECT_STAT_COPIES, "8")) !=
                NSA_SUCCESS)
            return st;
    }
    for (i = 0; i < 3; i++) {
        for (j = i + 1; j < 3; j++)
            if ((st = nsa_check_no_overlap(outs[i], out_names[i], outs[j], out_names[j])) !=
                NSA_SUCCESS)
                return st;
        for (j = 0; j < 4; j++)
            if ((st = nsa_check_no_overlap(outs[i], out_names[i], ins[j], in_names[j])) !=
                NSA_SUCCESS)
                return st;
    }
    return NSA_SUCCESS;
}

static int32_t topk_at(const nsa_tensor *topk, int64_t t, int64_t n2, int64_t c)
{
    return *(const int32_t *)nsa_tensor_at(topk, nsa_tensor_offset(topk, t, n2, c, 0));
}

/* Every index must name a whole block inside its batch: the vendor reads out of bounds
 * otherwise. Checked before anything is written. */
static nsa_status check_topk_values(const nsa_tensor *topk, const select_plan *pl)
{
    int64_t b, t, n2, c;
    for (b = 0; b < pl->batches; b++) {
        const int64_t s2 = pl->cum_kv[b] - batch_start(pl->cum_kv, b);
        const int64_t nblocks = s2 / pl->block_size;
        for (t = batch_start(pl->cum_q, b); t < pl->cum_q[b]; t++)
            for (n2 = 0; n2 < pl->n2; n2++)
                for (c = 0; c < pl->block_count; c++) {
                    const int32_t idx = topk_at(topk, t, n2, c);
                    if (idx < 0)
                        return nsa_error(NSA_ERR_INVALID_ARGUMENT,
                                         "topk_indices[%lld, %lld, %lld] must be >= 0, got %d",
                                         (long long)t, (long long)n2, (long long)c, (int)idx);
                    if (idx >= nblocks)
                        return nsa_error(
                            NSA_ERR_INVALID_ARGUMENT,
                            "topk_indices[%lld, %lld, %lld] = %d is out of range: batch %lld "
                            "has %lld keys, so whole blocks of select_block_size %lld are "
                            "0..%lld",
                            (long long)t, (long long)n2, (long long)c, (int)idx, (long long)b,
                            (long long)s2, (long long)pl->block_size, (long long)nblocks - 1);
                }
    }
    return NSA_SUCCESS;
}

/* ---- execution --------------------------------------------------------------------------- */

typedef struct select_run {
    const select_plan *pl;
    const nsa_tensor *query, *key, *value, *topk, *out, *smax, *ssum;
    char *workspace;
} select_run;

/* Blocks a task converted to fp32 lately (see the file comment). */
typedef struct block_cache {
    int32_t slots;
    int64_t tick;  /* counts tiles */
    int64_t *tag;  /* kv head * T2 + first key row of the block a slot holds; -1 = empty */
    int64_t *used; /* tick of the last tile that used the slot */
    char *data;    /* slot i: keys [l'][D] then values [l'][Dv], fp32 */
} block_cache;

/* One task's scratch, carved from its share of the workspace. */
typedef struct select_scratch {
    block_cache cache;
    void *kernel;
    nsa_kv_block *blocks;
    const void **q_rows;
    void **o_rows;
    float *row_max, *row_sum;
    float *nan_row;
} select_scratch;

static select_scratch carve_scratch(const select_plan *pl, char *base)
{
    select_scratch s;
    char *p = base;
    int32_t i;
    s.cache.slots = pl->cache_slots;
    s.cache.tick = 0;
    s.cache.data = p;
    p += cache_slot_bytes(pl) * (size_t)pl->cache_slots;
    s.cache.tag = (int64_t *)(void *)p;
    p += nsa_align64((size_t)pl->cache_slots * sizeof(int64_t));
    s.cache.used = (int64_t *)(void *)p;
    p += nsa_align64((size_t)pl->cache_slots * sizeof(int64_t));
    for (i = 0; i < pl->cache_slots; i++) {
        s.cache.tag[i] = -1;
        s.cache.used[i] = 0;
    }
    s.kernel = p;
    p += nsa_attn_scratch_size(pl->rows_max, (int32_t)pl->d, (int32_t)pl->dv,
                               (int32_t)pl->block_size);
    s.blocks = (nsa_kv_block *)(void *)p;
    p += nsa_align64((size_t)pl->block_count * sizeof(nsa_kv_block));
    s.q_rows = (const void **)(void *)p;
    p += nsa_align64((size_t)pl->rows_max * sizeof(void *));
    s.o_rows = (void **)(void *)p;
    p += nsa_align64((size_t)pl->rows_max * sizeof(void *));
    s.row_max = (float *)(void *)p;
    p += nsa_align64((size_t)pl->rows_max * sizeof(float));
    s.row_sum = (float *)(void *)p;
    p += nsa_align64((size_t)pl->rows_max * sizeof(float));
    s.nan_row = (float *)(void *)p;
    return s;
}

/* Mask hook: key position > query position gets the masked logit. The vendor replaces the
 * unscaled logit by -FLT_MAX and then scales, so the scaled score is fl(-FLT_MAX * scale)
 * (finite when scale <= 1, so a fully masked row averages V; -inf when scale > 1). Rows are
 * token-major: row r belongs to token q_start + r / G. */
static void causal_cut(const nsa_attn_tile *tile, int32_t block, int64_t kv_start, int32_t n,
                       float *s, int64_t lds)
{
    const int32_t group = *(const int32_t *)tile->user;
    const float masked = -FLT_MAX * tile->scale;
    int32_t r, j;
    (void)block;
    for (r = 0; r < tile->m; r++) {
        const int64_t pos = tile->q_start + r / group;
        int64_t keep = pos - kv_start + 1;
        float *row = s + (int64_t)r * lds;
        if (keep < 0)
            keep = 0;
        for (j = (int32_t)(keep < n ? keep : n); j < n; j++)
            row[j] = masked;
    }
}

static int same_topk_row(const nsa_tensor *topk, int64_t ta, int64_t tb, int64_t n2, int64_t k)
{
    int64_t c;
    for (c = 0; c < k; c++)
        if (topk_at(topk, ta, n2, c) != topk_at(topk, tb, n2, c))
            return 0;
    return 1;
}

/* Widen `rows` rows of `width` channels (row stride rs, channel stride cs, elements) to
 * contiguous fp32; one call when the rows are contiguous themselves. */
static void widen_rows(const void *src, nsa_dtype dt, int64_t rs, int64_t cs, int64_t rows,
                       int64_t width, float *dst)
{
    const size_t es = nsa_dtype_size(dt);
    int64_t j;
    if (cs == 1 && rs == width) {
        nsa_load_f32(src, dt, 1, dst, rows * width);
        return;
    }
    for (j = 0; j < rows; j++)
        nsa_load_f32((const char *)src + (size_t)(j * rs) * es, dt, cs, dst + j * width, width);
}

/* Point `blk` at the fp32 copy of the block whose first key is global row `row` of kv head
 * n2, converting it into the least recently used slot on a miss. Slots used by the current
 * tile (used == tick) are never evicted: there are at least k slots. */
static void cached_block(const select_run *run, block_cache *cache, int64_t n2, int64_t row,
                         nsa_kv_block *blk)
{
    const select_plan *pl = run->pl;
    const nsa_tensor *k = run->key, *v = run->value;
    const int64_t tag = n2 * pl->t2 + row;
    const size_t k_bytes = nsa_align64((size_t)(pl->block_size * pl->d) * sizeof(float));
    int32_t i, slot = -1, victim = 0;
    char *data;
    for (i = 0; i < cache->slots; i++) {
        if (cache->tag[i] == tag) {
            slot = i;
            break;
        }
        if (cache->used[i] < cache->used[victim])
            victim = i;
    }
    data = cache->data + (size_t)(slot >= 0 ? slot : victim) * cache_slot_bytes(pl);
    if (slot < 0) {
        slot = victim;
        cache->tag[slot] = tag;
        widen_rows(nsa_tensor_at(k, nsa_tensor_offset(k, row, n2, 0, 0)), k->dtype, k->stride[0],
                   k->stride[2], pl->block_size, pl->d, (float *)(void *)data);
        widen_rows(nsa_tensor_at(v, nsa_tensor_offset(v, row, n2, 0, 0)), v->dtype, v->stride[0],
                   v->stride[2], pl->block_size, pl->dv, (float *)(void *)(data + k_bytes));
    }
    cache->used[slot] = cache->tick;
    blk->k = data;
    blk->v = data + k_bytes;
    blk->k_row_stride = pl->d;
    blk->k_col_stride = 1;
    blk->v_row_stride = pl->dv;
    blk->v_col_stride = 1;
}

/* Write the 8 copies of a row statistic. */
static void store_stat(const nsa_tensor *t, int64_t tok, int64_t h, float value)
{
    int c;
    if (!t)
        return;
    for (c = 0; c < SELECT_STAT_COPIES; c++)
        *(float *)nsa_tensor_at(t, nsa_tensor_offset(t, tok, h, c, 0)) = value;
}

/* Tokens [t0, t1) of batch b, kv head n2, all with the same topk row. */
static void run_tile(const select_run *run, select_scratch *sc, int64_t b, int64_t n2, int64_t t0,
                     int64_t t1)
{
    const select_plan *pl = run->pl;
    const nsa_tensor *q = run->query, *k = run->key, *v = run->value, *o = run->out;
    const int64_t q_base = batch_start(pl->cum_q, b), kv_base = batch_start(pl->cum_kv, b);
    const int64_t s0 = t0 - q_base; /* query-local position of the first token */
    const int32_t group = (int32_t)pl->group;
    nsa_attn_tile tile;
    int64_t t, c;
    int32_t r, g;

    for (t = t0, r = 0; t < t1; t++)
        for (g = 0; g < group; g++, r++) {
            const int64_t h = n2 * pl->group + g;
            sc->q_rows[r] = nsa_tensor_at(q, nsa_tensor_offset(q, t, h, 0, 0));
            sc->o_rows[r] = nsa_tensor_at(o, nsa_tensor_offset(o, t, h, 0, 0));
        }
    for (c = 0; c < pl->block_count; c++) {
        nsa_kv_block *blk = &sc->blocks[c];
        const int64_t first = (int64_t)topk_at(run->topk, t0, n2, c) * pl->block_size;
        blk->k = nsa_tensor_at(k, nsa_tensor_offset(k, kv_base + first, n2, 0, 0));
        blk->v = nsa_tensor_at(v, nsa_tensor_offset(v, kv_base + first, n2, 0, 0));
        blk->k_row_stride = k->stride[0];
        blk->k_col_stride = k->stride[2];
        blk->v_row_stride = v->stride[0];
        blk->v_col_stride = v->stride[2];
        blk->kv_start = first;
        blk->len = (int32_t)pl->block_size;
        /* only blocks reaching past the first token's position need the cut */
        blk->flags = pl->causal && first + pl->block_size - 1 > s0 ? NSA_KV_BLOCK_PARTIAL : 0u;
    }

    memset(&tile, 0, sizeof tile);
    tile.m = (int32_t)((t1 - t0) * pl->group);
    tile.q_rows = sc->q_rows;
    tile.q_col_stride = q->stride[2];
    tile.q_dtype = q->dtype;
    tile.d = (int32_t)pl->d;
    tile.dv = (int32_t)pl->dv;
    tile.scale = pl->scale;
    tile.kv_dtype = k->dtype;
    tile.blocks = sc->blocks;
    tile.nblocks = (int32_t)pl->block_count;
    tile.kv_chunk = (int32_t)pl->block_size;
    tile.mask_hook = pl->causal ? causal_cut : NULL;
    tile.user = (void *)&group;
    tile.q_start = s0;
    tile.o_rows = sc->o_rows;
    tile.o_col_stride = o->stride[2];
    tile.o_dtype = o->dtype;
    tile.row_max = sc->row_max;
    tile.row_sum = sc->row_sum;
    if (sc->cache.slots > 0 && !nsa_attn_tile_reads_in_place(&tile)) {
        /* the kernel would convert every block for this tile: take converted copies */
        sc->cache.tick++;
        for (c = 0; c < pl->block_count; c++)
            cached_block(run, &sc->cache, n2, kv_base + sc->blocks[c].kv_start, &sc->blocks[c]);
        tile.kv_dtype = NSA_DTYPE_F32;
    }
    nsa_attn_tile_run(&tile, sc->kernel);

    for (t = t0, r = 0; t < t1; t++)
        for (g = 0; g < group; g++, r++) {
            const int64_t h = n2 * pl->group + g;
            float sum = sc->row_sum[r];
            if (sum == 0.0f) {
                /* Every score was -inf (masked with scale > 1): the vendor computes
                 * exp(-inf - (-inf)) = NaN, where the kernel reports an empty row. */
                sum = NAN;
                nsa_store_f32(sc->nan_row, sc->o_rows[r], o->dtype, o->stride[2], pl->dv,
                              NSA_ROUND_NEAREST_EVEN);
            }
            store_stat(run->smax, t, h, sc->row_max[r]);
            store_stat(run->ssum, t, h, sum);
        }
}

/* Work item: kv head n2, tokens [t_begin, t_end); split into runs of at most
 * tokens_per_tile tokens with identical topk rows inside one batch. */
static void run_item(const select_run *run, select_scratch *sc, int64_t n2, int64_t t_begin,
                     int64_t t_end)
{
    const select_plan *pl = run->pl;
    int64_t lo = 0, hi = pl->batches - 1, t = t_begin;
    while (lo < hi) { /* first batch whose end is past t_begin */
        int64_t mid = lo + (hi - lo) / 2;
        if (pl->cum_q[mid] > t_begin)
            hi = mid;
        else
            lo = mid + 1;
    }
    while (t < t_end) {
        int64_t end = t + 1, limit;
        while (pl->cum_q[lo] <= t)
            lo++;
        limit = pl->cum_q[lo] < t_end ? pl->cum_q[lo] : t_end;
        if (limit > t + pl->tokens_per_tile)
            limit = t + pl->tokens_per_tile;
        while (end < limit && same_topk_row(run->topk, t, end, n2, pl->block_count))
            end++;
        run_tile(run, sc, lo, n2, t, end);
        t = end;
    }
}

static void select_task(void *arg, size_t task)
{
    const select_run *run = (const select_run *)arg;
    const select_plan *pl = run->pl;
    const int64_t chunks = pl->items / pl->n2;
    select_scratch sc = carve_scratch(pl, run->workspace + task * pl->task_bytes);
    int64_t item;
    int64_t i;
    for (i = 0; i < pl->dv; i++)
        sc.nan_row[i] = NAN;
    for (item = (int64_t)task; item < pl->items; item += (int64_t)pl->ntasks) {
        const int64_t n2 = item / chunks, chunk = item % chunks;
        const int64_t t_begin = chunk * pl->item_tokens;
        const int64_t t_end =
            t_begin + pl->item_tokens < pl->t1 ? t_begin + pl->item_tokens : pl->t1;
        run_item(run, &sc, n2, t_begin, t_end);
    }
}

/* ---- public entry points ----------------------------------------------------------------- */

nsa_status nsa_select_attention_workspace_size(nsa_context *ctx, const nsa_tensor *query,
                                               const nsa_tensor *key, const nsa_tensor *value,
                                               const nsa_tensor *topk_indices,
                                               const nsa_select_attention_params *params,
                                               size_t *size)
{
    select_plan pl;
    nsa_status st;
    nsa_clear_error();
    if (!size)
        return nsa_error(NSA_ERR_NULL_POINTER, "size must not be NULL");
    if (!nsa_context_resolve(ctx))
        return nsa_error(NSA_ERR_OUT_OF_MEMORY, "could not create the default context");
    st = check_inputs(ctx, query, key, value, topk_indices, params, &pl);
    if (st == NSA_SUCCESS && params->validation == NSA_VALIDATE_STRICT)
        st = check_strict(query, NULL, &pl);
    if (st != NSA_SUCCESS)
        return st;
    *size = pl.ntasks * pl.task_bytes;
    return NSA_SUCCESS;
}

nsa_status nsa_select_attention(nsa_context *ctx, const nsa_tensor *query, const nsa_tensor *key,
                                const nsa_tensor *value, const nsa_tensor *topk_indices,
                                const nsa_select_attention_params *params,
                                const nsa_tensor *attention_out, const nsa_tensor *softmax_max,
                                const nsa_tensor *softmax_sum)
{
    select_plan pl;
    select_run run;
    void *ws = NULL;
    nsa_status st;
    nsa_clear_error();
    ctx = nsa_context_resolve(ctx);
    if (!ctx)
        return nsa_error(NSA_ERR_OUT_OF_MEMORY, "could not create the default context");
    st = check_inputs(ctx, query, key, value, topk_indices, params, &pl);
    if (st == NSA_SUCCESS)
        st = check_outputs(query, key, value, topk_indices, attention_out, softmax_max,
                           softmax_sum, &pl);
    if (st == NSA_SUCCESS && params->validation == NSA_VALIDATE_STRICT)
        st = check_strict(query, attention_out, &pl);
    if (st == NSA_SUCCESS)
        st = check_topk_values(topk_indices, &pl);
    if (st != NSA_SUCCESS || pl.items == 0)
        return st;

    st = nsa_workspace_acquire(ctx, pl.ntasks * pl.task_bytes, &ws);
    if (st != NSA_SUCCESS)
        return st;
    run.pl = &pl;
    run.query = query;
    run.key = key;
    run.value = value;
    run.topk = topk_indices;
    run.out = attention_out;
    run.smax = softmax_max;
    run.ssum = softmax_sum;
    run.workspace = (char *)ws;
    nsa_parallel_for(ctx, select_task, &run, pl.ntasks);
    nsa_workspace_release(ctx, ws);
    return NSA_SUCCESS;
}

nsa_status nsa_select_attention_with_mask(nsa_context *ctx, const nsa_tensor *query,
                                          const nsa_tensor *key, const nsa_tensor *value,
                                          const nsa_tensor *topk_indices,
                                          const nsa_tensor *atten_mask,
                                          const nsa_select_attention_params *params,
                                          const nsa_tensor *attention_out,
                                          const nsa_tensor *softmax_max,
                                          const nsa_tensor *softmax_sum)
{
    nsa_select_attention_params p;
    nsa_status st;
    nsa_clear_error();
    if (!params)
        return nsa_error(NSA_ERR_NULL_POINTER, "params must not be NULL");
    /* only the mask's presence matters: its values are never read (as in the vendor kernel) */
    st = nsa_check_optional(atten_mask, "atten_mask", 2,
                            NSA_DT(NSA_DTYPE_BOOL) | NSA_DT(NSA_DTYPE_U8));
    if (st != NSA_SUCCESS)
        return st;
    p = *params;
    p.sparse_mode = atten_mask ? 2 : 0;
    return nsa_select_attention(ctx, query, key, value, topk_indices, &p, attention_out,
                                softmax_max, softmax_sum);
}
