/* SPDX-License-Identifier: Apache-2.0 */
/* flex_attention on the shared kernel: one tile = up to FLEX_Q_TILE query rows of one
 * (batch, head) inside one query block of the block mask; its KV blocks are the block mask's
 * partial blocks (mask_mod applied) followed by its full blocks, as PyTorch's kernel does. */
#include <math.h>
#include <string.h>

#include "flex/flex_internal.h"
#include "kernel/attn_tile.h"
#include "tensor/tensor.h"

/* Query rows per tile and keys per GEMM chunk. On the dense 4096^2 case (one thread, Zen 5,
 * ratios to sgemm in the same run): chunks of 128 keys measured 3-5 % faster than 64, and
 * tiles of 128 rows 4-6 % faster than 64 (0.84 -> 0.87-0.89 with OpenBLAS's AVX2 kernels,
 * 0.70 -> 0.75 with its AVX-512 ones): each GEMM call packs its K or V chunk once for twice
 * the rows. 256 x 64 and 128 x 256 measured no better. */
#ifndef FLEX_Q_TILE
#define FLEX_Q_TILE 128
#endif
#ifndef FLEX_KV_CHUNK
#define FLEX_KV_CHUNK 128
#endif

/* Without a block mask every key is visited, in blocks of this many keys. */
#define DENSE_KV_BLOCK 4096

nsa_flex_params nsa_flex_params_default(void)
{
    nsa_flex_params p = NSA_FLEX_PARAMS_INIT;
    return p;
}

/* Everything a call needs after validation. */
typedef struct flex_plan {
    const nsa_tensor *q, *k, *v, *out, *lse;
    const nsa_score_mod *score_mod;
    nsa_block_mask_view bm;
    int has_mask;
    int64_t B, Hq, Hkv, L, S, E, Ev, Bk;
    float scale;
    int64_t q_block;  /* rows per query block (the mask's, or the tile size) */
    int64_t nq;       /* query blocks */
    int64_t nsub;     /* tiles per query block */
    int64_t tile_rows; /* query rows per tile: the kernel's choice, at most FLEX_Q_TILE */
    int64_t max_blocks;
    int refine;       /* split partial blocks per tile with the mask_mod's analytic classes */
    int mask_mod_only; /* eager semantics: every kv block is partial */
    int64_t items;    /* B * Hq * nq * nsub */
    size_t task_bytes;
    int64_t tasks;
    char *scratch;
} flex_plan;

/* Query rows per tile: as many as pay on the kernel's path for these shapes and dtypes. */
static int64_t tile_rows(const flex_plan *p)
{
    nsa_kv_block blk;
    nsa_attn_tile like;
    memset(&blk, 0, sizeof blk);
    blk.k_row_stride = p->k->stride[2];
    blk.k_col_stride = p->k->stride[3];
    blk.v_row_stride = p->v->stride[2];
    blk.v_col_stride = p->v->stride[3];
    like = nsa_attn_tile_shape(1, (int32_t)p->E, (int32_t)p->Ev, p->q->dtype, p->k->dtype, &blk);
    return nsa_attn_tile_rows(&like, FLEX_Q_TILE);
}

static nsa_status check_same_dtype(const nsa_tensor *t, const char *name, nsa_dtype dt)
{
    if (t->dtype != dt)
        return nsa_error(NSA_ERR_INVALID_ARGUMENT, "%s.dtype must equal q.dtype (%s), got %s",
                         name, nsa_dtype_name(dt), nsa_dtype_name(t->dtype));
    return NSA_SUCCESS;
}

static nsa_status validate(nsa_context *ctx, const nsa_tensor *q, const nsa_tensor *k,
                           const nsa_tensor *v, const nsa_block_mask *block_mask,
                           const nsa_score_mod *score_mod, const nsa_flex_params *params,
                           const nsa_tensor *out, const nsa_tensor *lse, flex_plan *p)
{
    nsa_flex_params prm = params ? *params : nsa_flex_params_default();
    nsa_status st;
    memset(p, 0, sizeof(*p));
    if ((st = nsa_check_tensor(q, "q", 4, NSA_DT_FLOAT)) != NSA_SUCCESS ||
        (st = nsa_check_tensor(k, "k", 4, NSA_DT_FLOAT)) != NSA_SUCCESS ||
        (st = nsa_check_tensor(v, "v", 4, NSA_DT_FLOAT)) != NSA_SUCCESS ||
        (st = check_same_dtype(k, "k", q->dtype)) != NSA_SUCCESS ||
        (st = check_same_dtype(v, "v", q->dtype)) != NSA_SUCCESS)
        return st;
    p->B = q->shape[0];
    p->Hq = q->shape[1];
    p->L = q->shape[2];
    p->E = q->shape[3];
    p->Bk = k->shape[0];
    p->Hkv = k->shape[1];
    p->S = k->shape[2];
    p->Ev = v->shape[3];
    if (p->E < 1 || p->Ev < 1 || p->E > INT32_MAX || p->Ev > INT32_MAX)
        return nsa_error(NSA_ERR_INVALID_ARGUMENT,
                         "q.shape[3] (E) and v.shape[3] (Ev) must be in [1, 2^31), got %lld, %lld",
                         (long long)p->E, (long long)p->Ev);
    if ((st = nsa_check_dim(k, "k", 3, p->E, "q.shape[3] (E)")) != NSA_SUCCESS)
        return st;
    if (p->Bk != p->B && p->Bk != 1)
        return nsa_error(NSA_ERR_INVALID_ARGUMENT,
                         "k.shape[0] must be q.shape[0] (%lld) or 1, got %lld", (long long)p->B,
                         (long long)p->Bk);
    if ((st = nsa_check_dim(v, "v", 0, p->Bk, "k.shape[0]")) != NSA_SUCCESS ||
        (st = nsa_check_dim(v, "v", 1, p->Hkv, "k.shape[1]")) != NSA_SUCCESS ||
        (st = nsa_check_dim(v, "v", 2, p->S, "k.shape[2]")) != NSA_SUCCESS)
        return st;
    if (p->Hkv < 1 || p->Hq < 1)
        return nsa_error(NSA_ERR_INVALID_ARGUMENT,
                         "q.shape[1] and k.shape[1] (heads) must be >= 1, got %lld, %lld",
                         (long long)p->Hq, (long long)p->Hkv);
    if (!prm.enable_gqa && p->Hq != p->Hkv)
        return nsa_error(NSA_ERR_INVALID_ARGUMENT,
                         "q.shape[1] (%lld) must equal k.shape[1] (%lld) unless "
                         "params->enable_gqa is set",
                         (long long)p->Hq, (long long)p->Hkv);
    if (p->Hq % p->Hkv != 0)
        return nsa_error(NSA_ERR_INVALID_ARGUMENT,
                         "q.shape[1] (%lld) must be a multiple of k.shape[1] (%lld) for GQA",
                         (long long)p->Hq, (long long)p->Hkv);
    if (prm.enable_gqa != 0 && prm.enable_gqa != 1)
        return nsa_error(NSA_ERR_INVALID_ARGUMENT, "params->enable_gqa must be 0 or 1, got %d",
                         (int)prm.enable_gqa);
    if (prm.mask_mod_only != 0 && prm.mask_mod_only != 1)
        return nsa_error(NSA_ERR_INVALID_ARGUMENT, "params->mask_mod_only must be 0 or 1, got %d",
                         (int)prm.mask_mod_only);
    p->mask_mod_only = prm.mask_mod_only;
    if (!isfinite(prm.scale))
        return nsa_error(NSA_ERR_INVALID_ARGUMENT, "params->scale must be finite, got %g",
                         (double)prm.scale);
    p->scale = prm.scale != 0.0f ? prm.scale : (float)(1.0 / sqrt((double)p->E));

    if (out) {
        if ((st = nsa_check_output(out, "out", 4, NSA_DT_FLOAT)) != NSA_SUCCESS ||
            (st = nsa_check_dim(out, "out", 0, p->B, "q.shape[0]")) != NSA_SUCCESS ||
            (st = nsa_check_dim(out, "out", 1, p->Hq, "q.shape[1]")) != NSA_SUCCESS ||
            (st = nsa_check_dim(out, "out", 2, p->L, "q.shape[2]")) != NSA_SUCCESS ||
            (st = nsa_check_dim(out, "out", 3, p->Ev, "v.shape[3]")) != NSA_SUCCESS ||
            (st = nsa_check_no_overlap(out, "out", q, "q")) != NSA_SUCCESS ||
            (st = nsa_check_no_overlap(out, "out", k, "k")) != NSA_SUCCESS ||
            (st = nsa_check_no_overlap(out, "out", v, "v")) != NSA_SUCCESS)
            return st;
    }
    if (lse) {
        if ((st = nsa_check_output(lse, "lse", 3, NSA_DT(NSA_DTYPE_F32))) != NSA_SUCCESS ||
            (st = nsa_check_dim(lse, "lse", 0, p->B, "q.shape[0]")) != NSA_SUCCESS ||
            (st = nsa_check_dim(lse, "lse", 1, p->Hq, "q.shape[1]")) != NSA_SUCCESS ||
            (st = nsa_check_dim(lse, "lse", 2, p->L, "q.shape[2]")) != NSA_SUCCESS ||
            (st = nsa_check_no_overlap(lse, "lse", out, "out")) != NSA_SUCCESS ||
            (st = nsa_check_no_overlap(lse, "lse", q, "q")) != NSA_SUCCESS ||
            (st = nsa_check_no_overlap(lse, "lse", k, "k")) != NSA_SUCCESS ||
            (st = nsa_check_no_overlap(lse, "lse", v, "v")) != NSA_SUCCESS)
            return st;
    }

    if (block_mask) {
        nsa_block_mask_get_view(block_mask, &p->bm);
        p->has_mask = 1;
        if (p->bm.info.batch != 1 && p->bm.info.batch != p->B)
            return nsa_error(NSA_ERR_INVALID_ARGUMENT,
                             "block_mask batch must be 1 or q.shape[0] (%lld), got %lld",
                             (long long)p->B, (long long)p->bm.info.batch);
        if (p->bm.info.heads != 1 && p->bm.info.heads != p->Hq)
            return nsa_error(NSA_ERR_INVALID_ARGUMENT,
                             "block_mask heads must be 1 or q.shape[1] (%lld), got %lld",
                             (long long)p->Hq, (long long)p->bm.info.heads);
        if (p->bm.info.q_len != p->L || p->bm.info.kv_len != p->S)
            return nsa_error(NSA_ERR_INVALID_ARGUMENT,
                             "block_mask seq_lengths (%lld, %lld) must equal (q.shape[2], "
                             "k.shape[2]) = (%lld, %lld); create a new block mask",
                             (long long)p->bm.info.q_len, (long long)p->bm.info.kv_len,
                             (long long)p->L, (long long)p->S);
        p->q_block = p->bm.info.q_block;
        p->nq = p->bm.info.num_q_blocks;
        p->refine = nsa_mask_mod_is_analytic(p->bm.mask_mod);
        /* partial blocks may be split into kernel chunks: at most nKV + ceil(S / chunk) */
        p->max_blocks = 2 * p->bm.info.num_kv_blocks + nsa_cdiv(p->S, FLEX_KV_CHUNK);
    } else {
        p->q_block = FLEX_Q_TILE;
        p->nq = nsa_cdiv(p->L, FLEX_Q_TILE);
        p->max_blocks = nsa_cdiv(p->S, DENSE_KV_BLOCK);
    }
    if (score_mod && (st = nsa_score_mod_check(score_mod, p->Hq, p->L, p->S)) != NSA_SUCCESS)
        return st;

    p->q = q;
    p->k = k;
    p->v = v;
    p->out = out;
    p->lse = lse;
    p->score_mod = score_mod;
    p->tile_rows = tile_rows(p);
    {
        const int64_t rows = p->q_block < p->L ? p->q_block : p->L;
        p->nsub = rows > 0 ? nsa_cdiv(rows, p->tile_rows) : 0;
    }
    p->items = p->B * p->Hq * p->nq * p->nsub;
    {
        /* asked even for no items: the context is resolved here whatever the shapes */
        const int64_t workers = (int64_t)nsa_worker_count(nsa_context_resolve(ctx), p->items);
        p->tasks = p->items ? workers : 0;
    }
    p->task_bytes =
        nsa_attn_scratch_size((int32_t)p->tile_rows, (int32_t)p->E, (int32_t)p->Ev,
                              FLEX_KV_CHUNK) +
        nsa_align64((size_t)(p->max_blocks > 0 ? p->max_blocks : 1) * sizeof(nsa_kv_block)) +
        2 * nsa_align64((size_t)p->tile_rows * sizeof(void *)) +
        nsa_align64((size_t)p->tile_rows * sizeof(float));
    return NSA_SUCCESS;
}

/* State the hooks see through tile->user. */
typedef struct hook_state {
    const flex_plan *p;
    int64_t b, h;
    uint8_t keep[FLEX_KV_CHUNK];
} hook_state;

static void score_hook(const nsa_attn_tile *tile, int32_t block, int64_t kv_start, int32_t n,
                       float *s, int64_t lds)
{
    const hook_state *hs = (const hook_state *)tile->user;
    int32_t r;
    (void)block;
    for (r = 0; r < tile->m; r++)
        nsa_score_mod_row(hs->p->score_mod, hs->b, hs->h, tile->q_start + r, kv_start, n,
                          hs->p->S, s + (int64_t)r * lds);
}

static void mask_hook(const nsa_attn_tile *tile, int32_t block, int64_t kv_start, int32_t n,
                      float *s, int64_t lds)
{
    hook_state *hs = (hook_state *)tile->user;
    const nsa_block_mask_view *bm = &hs->p->bm;
    int32_t r, j;
    (void)block;
    /* the kernel calls hooks per chunk, n <= tile->kv_chunk == FLEX_KV_CHUNK: keep holds a row */
    for (r = 0; r < tile->m; r++) {
        float *row = s + (int64_t)r * lds;
        nsa_mask_mod_row(bm->mask_mod, hs->b + bm->b_offset, hs->h + bm->h_offset,
                         tile->q_start + r, kv_start, n, hs->keep);
        for (j = 0; j < n; j++)
            if (!hs->keep[j])
                row[j] = -INFINITY;
    }
}

static void set_block(const flex_plan *p, int64_t kb_batch, int64_t hk, int64_t start,
                      int64_t len, uint32_t flags, nsa_kv_block *blk)
{
    const nsa_tensor *k = p->k, *v = p->v;
    blk->k = nsa_tensor_at(k, nsa_tensor_offset(k, kb_batch, hk, start, 0));
    blk->v = nsa_tensor_at(v, nsa_tensor_offset(v, kb_batch, hk, start, 0));
    blk->k_row_stride = k->stride[2];
    blk->k_col_stride = k->stride[3];
    blk->v_row_stride = v->stride[2];
    blk->v_col_stride = v->stride[3];
    blk->kv_start = start;
    blk->len = (int32_t)len;
    blk->flags = flags;
}

/* The KV blocks rows [r0, r1) of query block `qb` of (b, h) visit: the partial blocks, then
 * the full blocks (PyTorch's kernel order). With an analytic mask_mod a partial block is cut
 * at the kernel's chunk boundaries and each piece is classified for these rows: empty pieces
 * are skipped, full ones skip the mask. Results are unchanged (a chunk of -inf scores
 * contributes exactly nothing), the work is what the tile really needs. Returns the count. */
static int32_t collect_blocks(const flex_plan *p, int64_t b, int64_t h, int64_t qb, int64_t r0,
                              int64_t r1, nsa_kv_block *blocks)
{
    const int64_t kb_batch = p->Bk == 1 ? 0 : b, hk = h / (p->Hq / p->Hkv);
    int32_t n = 0, pass, i;
    if (!p->has_mask) {
        for (i = 0; i < (int32_t)nsa_cdiv(p->S, DENSE_KV_BLOCK); i++) {
            const int64_t start = (int64_t)i * DENSE_KV_BLOCK;
            set_block(p, kb_batch, hk, start, p->S - start < DENSE_KV_BLOCK ? p->S - start
                                                                            : DENSE_KV_BLOCK,
                      0u, &blocks[n++]);
        }
        return n;
    }
    for (pass = 0; pass < 2; pass++) {
        const nsa_block_mask_view *bm = &p->bm;
        const int64_t row = ((bm->info.batch == 1 ? 0 : b) * bm->info.heads +
                             (bm->info.heads == 1 ? 0 : h)) * bm->info.num_q_blocks + qb;
        /* eager semantics: every block once, as a partial block */
        const int32_t count = p->mask_mod_only ? (pass == 0 ? (int32_t)bm->info.num_kv_blocks : 0)
                                               : (pass == 0 ? bm->kv_num[row] : bm->full_num[row]);
        const int32_t *idx = (pass == 0 ? bm->kv_idx : bm->full_idx) + row * bm->info.num_kv_blocks;
        const int64_t kv_block = bm->info.kv_block;
        for (i = 0; i < count; i++) {
            const int64_t start = (p->mask_mod_only ? i : idx[i]) * kv_block;
            const int64_t len = p->S - start < kv_block ? p->S - start : kv_block;
            int64_t j0;
            if (pass == 1 || !p->refine) {
                set_block(p, kb_batch, hk, start, len, pass == 0 ? NSA_KV_BLOCK_PARTIAL : 0u,
                          &blocks[n++]);
                continue;
            }
            for (j0 = 0; j0 < len; j0 += FLEX_KV_CHUNK) {
                const int64_t pl = len - j0 < FLEX_KV_CHUNK ? len - j0 : FLEX_KV_CHUNK;
                const int cls = nsa_mask_mod_classify(bm->mask_mod, b + bm->b_offset,
                                                      h + bm->h_offset, r0, r1 - 1, start + j0,
                                                      start + j0 + pl - 1);
                if (cls != NSA_BLK_EMPTY)
                    set_block(p, kb_batch, hk, start + j0, pl,
                              cls == NSA_BLK_PARTIAL ? NSA_KV_BLOCK_PARTIAL : 0u, &blocks[n++]);
            }
        }
    }
    return n;
}

static void run_item(const flex_plan *p, int64_t item, char *scratch)
{
    const size_t kernel_bytes =
        nsa_attn_scratch_size((int32_t)p->tile_rows, (int32_t)p->E, (int32_t)p->Ev, FLEX_KV_CHUNK);
    nsa_kv_block *blocks = (nsa_kv_block *)(scratch + kernel_bytes);
    const void **q_rows =
        (const void **)((char *)blocks +
                        nsa_align64((size_t)(p->max_blocks > 0 ? p->max_blocks : 1) *
                                    sizeof(nsa_kv_block)));
    void **o_rows = (void **)((char *)q_rows + nsa_align64((size_t)p->tile_rows * sizeof(void *)));
    float *lse_tmp =
        (float *)((char *)o_rows + nsa_align64((size_t)p->tile_rows * sizeof(void *)));
    const int64_t sub = item % p->nsub, qb = item / p->nsub % p->nq;
    const int64_t h = item / p->nsub / p->nq % p->Hq, b = item / p->nsub / p->nq / p->Hq;
    const int64_t blk_end = (qb + 1) * p->q_block < p->L ? (qb + 1) * p->q_block : p->L;
    const int64_t r0 = qb * p->q_block + sub * p->tile_rows;
    const int64_t r1 = r0 + p->tile_rows < blk_end ? r0 + p->tile_rows : blk_end;
    nsa_attn_tile tile;
    hook_state hs;
    int64_t r;
    if (r0 >= r1)
        return;
    memset(&tile, 0, sizeof(tile));
    for (r = r0; r < r1; r++) {
        q_rows[r - r0] = nsa_tensor_at(p->q, nsa_tensor_offset(p->q, b, h, r, 0));
        o_rows[r - r0] = nsa_tensor_at(p->out, nsa_tensor_offset(p->out, b, h, r, 0));
    }
    hs.p = p;
    hs.b = b;
    hs.h = h;
    tile.m = (int32_t)(r1 - r0);
    tile.q_rows = q_rows;
    tile.q_col_stride = p->q->stride[3];
    tile.q_dtype = p->q->dtype;
    tile.d = (int32_t)p->E;
    tile.dv = (int32_t)p->Ev;
    tile.scale = p->scale;
    tile.kv_dtype = p->k->dtype;
    tile.kv_chunk = FLEX_KV_CHUNK;
    tile.blocks = blocks;
    tile.nblocks = collect_blocks(p, b, h, qb, r0, r1, blocks);
    tile.score_hook = p->score_mod ? score_hook : NULL;
    tile.mask_hook = p->has_mask ? mask_hook : NULL;
    tile.user = &hs;
    tile.q_start = r0;
    tile.o_rows = o_rows;
    tile.o_col_stride = p->out->stride[3];
    tile.o_dtype = p->out->dtype;
    tile.row_lse = p->lse ? lse_tmp : NULL;
    nsa_attn_tile_run(&tile, scratch);
    if (p->lse)
        for (r = r0; r < r1; r++)
            *(float *)nsa_tensor_at(p->lse, nsa_tensor_offset(p->lse, b, h, r, 0)) =
                lse_tmp[r - r0];
}

/* Task t runs items t, t + tasks, ...: each item is computed the same way whatever thread
 * runs it, so results do not depend on the thread count. */
static void run_task(void *arg, size_t t)
{
    const flex_plan *p = (const flex_plan *)arg;
    int64_t item;
    for (item = (int64_t)t; item < p->items; item += p->tasks)
        run_item(p, item, p->scratch + t * p->task_bytes);
}

nsa_status nsa_flex_attention_workspace_size(nsa_context *ctx, const nsa_tensor *q,
                                             const nsa_tensor *k, const nsa_tensor *v,
                                             const nsa_block_mask *block_mask,
                                             const nsa_flex_params *params, size_t *size)
{
    flex_plan p;
    nsa_status st;
    nsa_clear_error();
    if (!size)
        return nsa_error(NSA_ERR_NULL_POINTER, "size must not be NULL");
    st = validate(ctx, q, k, v, block_mask, NULL, params, NULL, NULL, &p);
    if (st != NSA_SUCCESS)
        return st;
    if (!nsa_mul_size(p.task_bytes, (size_t)p.tasks, size))
        return nsa_error(NSA_ERR_INVALID_ARGUMENT, "workspace size overflows");
    return NSA_SUCCESS;
}

nsa_status nsa_flex_attention(nsa_context *ctx, const nsa_tensor *q, const nsa_tensor *k,
                              const nsa_tensor *v, const nsa_block_mask *block_mask,
                              const nsa_score_mod *score_mod, const nsa_flex_params *params,
                              const nsa_tensor *out, const nsa_tensor *lse)
{
    flex_plan p;
    nsa_status st;
    size_t bytes;
    void *ws = NULL;
    nsa_context *rc;
    nsa_clear_error();
    if (!out)
        return nsa_error(NSA_ERR_NULL_POINTER, "out must not be NULL");
    st = validate(ctx, q, k, v, block_mask, score_mod, params, out, lse, &p);
    if (st != NSA_SUCCESS)
        return st;
    if (p.items == 0)
        return NSA_SUCCESS;
    rc = nsa_context_resolve(ctx);
    if (!rc)
        return nsa_error(NSA_ERR_OUT_OF_MEMORY, "out of memory creating the default context");
    if (!nsa_mul_size(p.task_bytes, (size_t)p.tasks, &bytes))
        return nsa_error(NSA_ERR_INVALID_ARGUMENT, "workspace size overflows");
    st = nsa_workspace_acquire(rc, bytes, &ws);
    if (st != NSA_SUCCESS)
        return st;
    p.scratch = (char *)ws;
    nsa_parallel_for(rc, run_task, &p, (size_t)p.tasks);
    nsa_workspace_release(rc, ws);
    return NSA_SUCCESS;
}
