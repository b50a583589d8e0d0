/* SPDX-License-Identifier: Apache-2.0 */
/* docs/errors.md, src/flex/{block_mask,mask_mods,score_mods}.c and src/ops/flex_attention.c:
 * one case per rule (see tests/common/error_rows.h). */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "error_rows.h"

/* A serial context for every call that takes one: nothing else is allocated behind a case's
 * back (the default context would be, through the process allocator). */
static nsa_context *g_ctx;

/* An output handle (initially NULL) that outlives the case, watched. */
static void *out_handle(err_call *c)
{
    void **h = (void **)err_alloc(c, sizeof *h);
    err_watch_handle(c, h);
    return h;
}

/* ---- allocation failures ----------------------------------------------------------------- */


/* ---- shared objects ---------------------------------------------------------------------- */

/* A no-op block mask of batch x heads x q_len x kv_len tokens in 4 x 4 blocks. */
static nsa_block_mask *mask_of(int64_t batch, int64_t heads, int64_t q_len, int64_t kv_len)
{
    nsa_block_mask *bm = NULL;
    nsa_block_mask_create(g_ctx, NULL, batch, heads, q_len, kv_len, 4, 4, &bm);
    return bm;
}

static nsa_mask_mod *causal(void)
{
    nsa_mask_mod *m = NULL;
    nsa_mask_mod_causal(&m);
    return m;
}

/* Two documents over 8 tokens: positions 0-2 and 3-7, as ids and as offsets. */
typedef struct doc_fx {
    int32_t ids[8];
    int64_t off[3];
    nsa_tensor tids;
} doc_fx;

static doc_fx *doc_setup(err_call *c, int64_t len)
{
    static const int32_t ids[8] = {0, 0, 0, 1, 1, 1, 1, 1};
    doc_fx *d = (doc_fx *)err_alloc(c, sizeof *d);
    memcpy(d->ids, ids, sizeof ids);
    d->off[1] = 3;
    d->off[2] = 8;
    d->tids = nsa_tensor_contiguous(d->ids, NSA_DTYPE_I32, 1, &len);
    return d;
}

/* ---- mask_mods --------------------------------------------------------------------------- */

static nsa_status causal_oom(err_call *c)
{
    nsa_mask_mod **out = (nsa_mask_mod **)out_handle(c);
    err_fail_process_allocator(c, 0);
    return nsa_mask_mod_causal(out);
}

static nsa_status causal_null_out(err_call *c)
{
    (void)c;
    return nsa_mask_mod_causal(NULL);
}

static nsa_status sliding_zero_window(err_call *c)
{
    return nsa_mask_mod_sliding_window(0, (nsa_mask_mod **)out_handle(c));
}

static nsa_status prefix_negative(err_call *c)
{
    return nsa_mask_mod_prefix_lm(-1, (nsa_mask_mod **)out_handle(c));
}

static nsa_status mask_callback_null_fn(err_call *c)
{
    return nsa_mask_mod_callback(NULL, NULL, (nsa_mask_mod **)out_handle(c));
}

/* The mask_mod is allocated, the copy of its ids is not. */
static nsa_status document_ids_oom(err_call *c)
{
    doc_fx *d = doc_setup(c, 8);
    nsa_mask_mod **out = (nsa_mask_mod **)out_handle(c);
    err_fail_process_allocator(c, 1);
    return nsa_mask_mod_document(&d->tids, NULL, out);
}

/* 2^61 broadcast ids: their int64 copy does not fit in size_t bytes. */
static nsa_status document_ids_too_many(err_call *c)
{
    doc_fx *d = doc_setup(c, 8);
    d->tids.shape[0] = (int64_t)1 << 61;
    d->tids.stride[0] = 0;
    return nsa_mask_mod_document(&d->tids, NULL, (nsa_mask_mod **)out_handle(c));
}

static nsa_status document_null_out(err_call *c)
{
    doc_fx *d = doc_setup(c, 8);
    return nsa_mask_mod_document(&d->tids, NULL, NULL);
}

static nsa_status document_oom(err_call *c)
{
    doc_fx *d = doc_setup(c, 8);
    nsa_mask_mod **out = (nsa_mask_mod **)out_handle(c);
    err_fail_process_allocator(c, 0);
    return nsa_mask_mod_document(&d->tids, NULL, out);
}

static nsa_status offsets_nonzero_start(err_call *c)
{
    doc_fx *d = doc_setup(c, 8);
    d->off[0] = 1;
    return nsa_mask_mod_document_offsets(d->off, NULL, 2, NULL, (nsa_mask_mod **)out_handle(c));
}

static nsa_status offsets_decreasing(err_call *c)
{
    doc_fx *d = doc_setup(c, 8);
    d->off[2] = 2;
    return nsa_mask_mod_document_offsets(d->off, NULL, 2, NULL, (nsa_mask_mod **)out_handle(c));
}

static nsa_status offsets_null_out(err_call *c)
{
    doc_fx *d = doc_setup(c, 8);
    return nsa_mask_mod_document_offsets(d->off, d->off, 2, NULL, NULL);
}

static nsa_status offsets_null_q(err_call *c)
{
    doc_fx *d = doc_setup(c, 8);
    return nsa_mask_mod_document_offsets(NULL, d->off, 2, NULL, (nsa_mask_mod **)out_handle(c));
}

static nsa_status offsets_no_seqs(err_call *c)
{
    doc_fx *d = doc_setup(c, 8);
    return nsa_mask_mod_document_offsets(d->off, NULL, 0, NULL, (nsa_mask_mod **)out_handle(c));
}

static nsa_status offsets_oom(err_call *c)
{
    doc_fx *d = doc_setup(c, 8);
    nsa_mask_mod **out = (nsa_mask_mod **)out_handle(c);
    err_fail_process_allocator(c, 0);
    return nsa_mask_mod_document_offsets(d->off, NULL, 2, NULL, out);
}

/* Runs nsa_mask_mod_and over `count` copies of a causal mask_mod (NULL when `null_mod`). */
static nsa_status and_of(err_call *c, int32_t count, int null_mod, int fail)
{
    nsa_mask_mod *m = null_mod ? NULL : causal();
    const nsa_mask_mod **mods = (const nsa_mask_mod **)err_alloc(c, 2 * sizeof *mods);
    nsa_mask_mod **out = (nsa_mask_mod **)out_handle(c);
    nsa_status st;
    mods[0] = mods[1] = m;
    if (fail)
        err_fail_process_allocator(c, 0);
    st = nsa_mask_mod_and(mods, count, out);
    nsa_mask_mod_free(m);
    return st;
}

static nsa_status and_null_out(err_call *c)
{
    (void)c;
    return nsa_mask_mod_and(NULL, 0, NULL);
}

static nsa_status and_negative_count(err_call *c)
{
    return and_of(c, -1, 0, 0);
}

static nsa_status and_null_mods(err_call *c)
{
    return nsa_mask_mod_and(NULL, 2, (nsa_mask_mod **)out_handle(c));
}

static nsa_status and_null_mod(err_call *c)
{
    return and_of(c, 2, 1, 0);
}

static nsa_status and_oom(err_call *c)
{
    return and_of(c, 2, 0, 1);
}

static nsa_status not_null_mod(err_call *c)
{
    return nsa_mask_mod_not(NULL, (nsa_mask_mod **)out_handle(c));
}

/* A document mask_mod checked against an 8 x 8 block mask. */
static nsa_status mask_for_8x8(err_call *c, nsa_mask_mod *m)
{
    nsa_status st = nsa_block_mask_create(g_ctx, m, 1, 1, 8, 8, 4, 4,
                                          (nsa_block_mask **)out_handle(c));
    nsa_mask_mod_free(m);
    return st;
}

static nsa_status cover_short_ids(err_call *c)
{
    doc_fx *d = doc_setup(c, 6);
    nsa_mask_mod *m = NULL;
    nsa_mask_mod_document(&d->tids, NULL, &m);
    return mask_for_8x8(c, m);
}

static nsa_status cover_short_kv_ids(err_call *c)
{
    doc_fx *d = doc_setup(c, 8), *kv = doc_setup(c, 6);
    nsa_mask_mod *m = NULL;
    nsa_mask_mod_document(&d->tids, &kv->tids, &m);
    return mask_for_8x8(c, m);
}

static nsa_status cover_short_q_offsets(err_call *c)
{
    doc_fx *d = doc_setup(c, 8), *q = doc_setup(c, 8);
    nsa_mask_mod *m = NULL;
    q->off[2] = 6;
    nsa_mask_mod_document_offsets(q->off, d->off, 2, NULL, &m);
    return mask_for_8x8(c, m);
}

static nsa_status cover_short_kv_offsets(err_call *c)
{
    doc_fx *d = doc_setup(c, 8), *kv = doc_setup(c, 8);
    nsa_mask_mod *m = NULL;
    kv->off[2] = 6;
    nsa_mask_mod_document_offsets(d->off, kv->off, 2, NULL, &m);
    return mask_for_8x8(c, m);
}

/* Evaluates a document mask_mod over 4 keys into a watched buffer. */
static nsa_status eval_doc(err_call *c, int null_mod, int null_keep, int64_t q_idx, int64_t kv0)
{
    doc_fx *d = doc_setup(c, 8);
    uint8_t *keep = null_keep ? NULL : (uint8_t *)err_alloc(c, 4);
    nsa_mask_mod *m = NULL;
    nsa_status st;
    if (!null_mod)
        nsa_mask_mod_document(&d->tids, NULL, &m);
    if (keep)
        err_watch(c, keep, 4);
    st = nsa_mask_mod_eval(m, 0, 0, q_idx, kv0, 4, keep);
    nsa_mask_mod_free(m);
    return st;
}

static nsa_status eval_null_mod(err_call *c)
{
    return eval_doc(c, 1, 0, 0, 0);
}

static nsa_status eval_null_keep(err_call *c)
{
    return eval_doc(c, 0, 1, 0, 0);
}

static nsa_status eval_negative(err_call *c)
{
    return eval_doc(c, 0, 0, -1, 0);
}

/* q_idx + 1 would wrap to a negative length and pass the coverage check. */
static nsa_status eval_last_q_idx(err_call *c)
{
    return eval_doc(c, 0, 0, INT64_MAX, 0);
}

static nsa_status eval_kv_wraps(err_call *c)
{
    return eval_doc(c, 0, 0, 0, INT64_MAX - 1);
}

/* ---- score_mods -------------------------------------------------------------------------- */

static nsa_status softcap_null_out(err_call *c)
{
    (void)c;
    return nsa_score_mod_softcap(20.0f, NULL);
}

static nsa_status softcap_oom(err_call *c)
{
    nsa_score_mod **out = (nsa_score_mod **)out_handle(c);
    err_fail_process_allocator(c, 0);
    return nsa_score_mod_softcap(20.0f, out);
}

static nsa_status softcap_infinite(err_call *c)
{
    return nsa_score_mod_softcap(INFINITY, (nsa_score_mod **)out_handle(c));
}

static nsa_status score_callback_null_fn(err_call *c)
{
    return nsa_score_mod_callback(NULL, NULL, (nsa_score_mod **)out_handle(c));
}

/* A rel_bias table of rows x cols (zeros), contiguous over 64 floats unless cols > 64. */
static nsa_tensor *table_of(err_call *c, int64_t rows, int64_t cols)
{
    int64_t shape[2];
    nsa_tensor *t = (nsa_tensor *)err_alloc(c, sizeof *t);
    shape[0] = rows;
    shape[1] = cols;
    *t = nsa_tensor_contiguous(err_alloc(c, 64 * sizeof(float)), NSA_DTYPE_F32, 2, shape);
    return t;
}

static nsa_status rel_bias_empty(err_call *c)
{
    return nsa_score_mod_rel_bias(table_of(c, 2, 0), (nsa_score_mod **)out_handle(c));
}

static nsa_status rel_bias_oom(err_call *c)
{
    nsa_tensor *t = table_of(c, 1, 15);
    nsa_score_mod **out = (nsa_score_mod **)out_handle(c);
    err_fail_process_allocator(c, 1);
    return nsa_score_mod_rel_bias(t, out);
}

/* 2^31 x 2^31 broadcast floats: the copy does not fit in size_t bytes. */
static nsa_status rel_bias_too_large(err_call *c)
{
    nsa_tensor *t = table_of(c, (int64_t)1 << 31, (int64_t)1 << 31);
    t->stride[0] = t->stride[1] = 0;
    return nsa_score_mod_rel_bias(t, (nsa_score_mod **)out_handle(c));
}

static nsa_status alibi_no_heads(err_call *c)
{
    return nsa_score_mod_alibi(NULL, 0, (nsa_score_mod **)out_handle(c));
}

static nsa_status alibi_wrong_slopes(err_call *c)
{
    int64_t three = 3;
    nsa_tensor *t = (nsa_tensor *)err_alloc(c, sizeof *t);
    *t = nsa_tensor_contiguous(err_alloc(c, 3 * sizeof(float)), NSA_DTYPE_F32, 1, &three);
    return nsa_score_mod_alibi(t, 4, (nsa_score_mod **)out_handle(c));
}

static nsa_status alibi_oom(err_call *c)
{
    nsa_score_mod **out = (nsa_score_mod **)out_handle(c);
    err_fail_process_allocator(c, 1);
    return nsa_score_mod_alibi(NULL, 4, out);
}

/* 2^62 heads: their slopes do not fit in size_t bytes. */
static nsa_status alibi_too_many_heads(err_call *c)
{
    return nsa_score_mod_alibi(NULL, (int64_t)1 << 62, (nsa_score_mod **)out_handle(c));
}

/* ---- block masks ------------------------------------------------------------------------- */

static nsa_status create_with(err_call *c, int64_t batch, int64_t heads, int64_t q_len,
                              int64_t kv_len, int64_t q_block)
{
    return nsa_block_mask_create(g_ctx, NULL, batch, heads, q_len, kv_len, q_block, 4,
                                 (nsa_block_mask **)out_handle(c));
}

/* 2^62 blocks of 1 x 1 tokens: their int32 indices do not fit in size_t bytes. */
static nsa_status create_too_large(err_call *c)
{
    return nsa_block_mask_create(g_ctx, NULL, (int64_t)1 << 20, (int64_t)1 << 20, 2048, 2048, 1,
                                 1, (nsa_block_mask **)out_handle(c));
}

static nsa_status create_oom(err_call *c)
{
    err_fail_process_allocator(c, 0);
    return create_with(c, 1, 1, 8, 8, 4);
}

/* The mask, its index arrays and its no-op mask_mod are allocated; the transpose's scratch
 * is not. */
static nsa_status create_build_oom(err_call *c)
{
    nsa_block_mask **out = (nsa_block_mask **)out_handle(c);
    err_fail_process_allocator(c, 3);
    return nsa_block_mask_create(g_ctx, NULL, 1, 1, 8, 8, 4, 4, out);
}

static nsa_status create_zero_block(err_call *c)
{
    return create_with(c, 1, 1, 8, 8, 0);
}

static nsa_status create_null_out(err_call *c)
{
    (void)c;
    return nsa_block_mask_create(g_ctx, NULL, 1, 1, 8, 8, 4, 4, NULL);
}

static nsa_status create_no_heads(err_call *c)
{
    return create_with(c, 1, 0, 8, 8, 4);
}

static nsa_status create_no_queries(err_call *c)
{
    return create_with(c, 1, 1, 0, 8, 4);
}

static nsa_status create_numel_overflow(err_call *c)
{
    return create_with(c, (int64_t)1 << 40, (int64_t)1 << 40, 8, 8, 4);
}

static nsa_status create_no_default_context(err_call *c)
{
    nsa_block_mask **out = (nsa_block_mask **)out_handle(c);
    err_fail_default_context(c);
    return nsa_block_mask_create(NULL, NULL, 1, 1, 8, 8, 4, 4, out);
}

/* INT64_MAX queries in blocks of 2 (ceil of a length this close to the limit must not
 * overflow either). */
static nsa_status create_too_many_blocks(err_call *c)
{
    return create_with(c, 1, 1, INT64_MAX, 1, 2);
}

/* from_kv_blocks arguments for B = H = 1 and 2 x 2 blocks of 4 x 4 tokens: query block 0
 * lists kv block 0, query block 1 lists kv blocks 1 and 0. */
typedef struct kv_fx {
    int32_t num[2], idx[4];
    nsa_tensor tnum, tidx;
    const nsa_tensor *full_num, *full_idx;
    nsa_context *ctx;
    int64_t q_block, q_len, kv_len;
} kv_fx;

static kv_fx *kv_setup(err_call *c)
{
    int64_t shape[4] = {1, 1, 2, 2};
    kv_fx *k = (kv_fx *)err_alloc(c, sizeof *k);
    k->num[0] = 1;
    k->num[1] = 2;
    k->idx[2] = 1;
    k->tnum = nsa_tensor_contiguous(k->num, NSA_DTYPE_I32, 3, shape);
    k->tidx = nsa_tensor_contiguous(k->idx, NSA_DTYPE_I32, 4, shape);
    k->ctx = g_ctx;
    k->q_block = 4;
    k->q_len = k->kv_len = 8;
    return k;
}

static nsa_status kv_run(err_call *c, kv_fx *k)
{
    return nsa_block_mask_from_kv_blocks(k->ctx, &k->tnum, &k->tidx, k->full_num, k->full_idx,
                                         NULL, k->q_block, k->q_block, k->q_len, k->kv_len,
                                         (nsa_block_mask **)out_handle(c));
}

static nsa_status kv_count_too_big(err_call *c)
{
    kv_fx *k = kv_setup(c);
    k->num[1] = 3;
    return kv_run(c, k);
}

static nsa_status kv_index_out_of_range(err_call *c)
{
    kv_fx *k = kv_setup(c);
    k->idx[0] = 2;
    return kv_run(c, k);
}

static nsa_status kv_index_twice(err_call *c)
{
    kv_fx *k = kv_setup(c);
    k->idx[2] = 0;
    return kv_run(c, k);
}

static nsa_status kv_empty_dims(err_call *c)
{
    kv_fx *k = kv_setup(c);
    k->tidx.shape[3] = 0;
    return kv_run(c, k);
}

static nsa_status kv_null_out(err_call *c)
{
    kv_fx *k = kv_setup(c);
    return nsa_block_mask_from_kv_blocks(g_ctx, &k->tnum, &k->tidx, NULL, NULL, NULL, 4, 4, 8, 8,
                                         NULL);
}

static nsa_status kv_full_num_alone(err_call *c)
{
    kv_fx *k = kv_setup(c);
    k->full_num = &k->tnum;
    return kv_run(c, k);
}

/* 2^31 query blocks (broadcast rows). */
static nsa_status kv_too_many_blocks(err_call *c)
{
    kv_fx *k = kv_setup(c);
    k->tnum.shape[2] = k->tidx.shape[2] = (int64_t)1 << 31;
    k->tnum.stride[2] = k->tidx.stride[2] = 0;
    k->q_len = 0;
    return kv_run(c, k);
}

static nsa_status kv_wrong_q_len(err_call *c)
{
    kv_fx *k = kv_setup(c);
    k->q_len = 3;
    return kv_run(c, k);
}

static nsa_status kv_wrong_kv_len(err_call *c)
{
    kv_fx *k = kv_setup(c);
    k->kv_len = 100;
    return kv_run(c, k);
}

/* Two blocks of 2^31 - 1 tokens on each side: 2^64 elements. */
static nsa_status kv_numel_overflow(err_call *c)
{
    kv_fx *k = kv_setup(c);
    k->q_block = INT32_MAX;
    k->q_len = k->kv_len = 2 * (int64_t)INT32_MAX;
    return kv_run(c, k);
}

static nsa_status kv_no_default_context(err_call *c)
{
    kv_fx *k = kv_setup(c);
    k->ctx = NULL;
    err_fail_default_context(c);
    return kv_run(c, k);
}

/* nsa_block_mask_select on a 2 x 2-head mask. */
static nsa_status select_of(err_call *c, int null_mask, int64_t b, int64_t h)
{
    nsa_block_mask *bm = null_mask ? NULL : mask_of(2, 2, 8, 8);
    nsa_status st = nsa_block_mask_select(bm, b, h, (nsa_block_mask **)out_handle(c));
    nsa_block_mask_free(bm);
    return st;
}

static nsa_status select_null_out(err_call *c)
{
    nsa_block_mask *bm = mask_of(2, 2, 8, 8);
    nsa_status st = nsa_block_mask_select(bm, 0, 0, NULL);
    (void)c;
    nsa_block_mask_free(bm);
    return st;
}

static nsa_status select_null_mask(err_call *c)
{
    return select_of(c, 1, 0, 0);
}

static nsa_status select_bad_batch(err_call *c)
{
    return select_of(c, 0, 2, 0);
}

static nsa_status select_bad_head(err_call *c)
{
    return select_of(c, 0, 0, -2);
}

static nsa_status info_null_mask(err_call *c)
{
    nsa_block_mask_info *info = (nsa_block_mask_info *)err_alloc(c, sizeof *info);
    err_watch(c, info, sizeof *info);
    return nsa_block_mask_get_info(NULL, info);
}

static nsa_status view_null_mask(err_call *c)
{
    nsa_tensor *view = (nsa_tensor *)err_alloc(c, sizeof *view);
    err_watch(c, view, sizeof *view);
    return nsa_block_mask_array_view(NULL, NSA_BM_KV_INDICES, view);
}

static nsa_status view_bad_array(err_call *c)
{
    nsa_block_mask *bm = mask_of(1, 1, 8, 8);
    nsa_tensor *view = (nsa_tensor *)err_alloc(c, sizeof *view);
    nsa_status st;
    err_watch(c, view, sizeof *view);
    st = nsa_block_mask_array_view(bm, (nsa_block_mask_array)8, view);
    nsa_block_mask_free(bm);
    return st;
}

static nsa_status dense_null_mask(err_call *c)
{
    int64_t shape[4] = {1, 1, 2, 2};
    int32_t *dense = (int32_t *)err_alloc(c, 4 * sizeof *dense);
    nsa_tensor *t = (nsa_tensor *)err_alloc(c, sizeof *t);
    *t = nsa_tensor_contiguous(dense, NSA_DTYPE_I32, 4, shape);
    err_watch(c, dense, 4 * sizeof *dense);
    return nsa_block_mask_to_dense(NULL, t);
}

static nsa_status sparsity_null_mask(err_call *c)
{
    double *sparsity = (double *)err_alloc(c, sizeof *sparsity);
    err_watch(c, sparsity, sizeof *sparsity);
    return nsa_block_mask_sparsity(NULL, sparsity);
}

/* to_string of an 8 x 8 mask into a watched 64-byte buffer and length. */
static nsa_status to_string(err_call *c, int null_mask, int null_buf, int64_t max_rows,
                            int64_t limit)
{
    nsa_block_mask *bm = null_mask ? NULL : mask_of(1, 1, 8, 8);
    char *buf = null_buf ? NULL : (char *)err_alloc(c, 64);
    size_t *len = (size_t *)err_alloc(c, sizeof *len);
    nsa_status st;
    if (buf)
        err_watch(c, buf, 64);
    err_watch(c, len, sizeof *len);
    st = nsa_block_mask_to_string(bm, max_rows, 8, limit, buf, 64, len);
    nsa_block_mask_free(bm);
    return st;
}

static nsa_status string_null_mask(err_call *c)
{
    return to_string(c, 1, 0, 8, 4);
}

static nsa_status string_null_buf(err_call *c)
{
    return to_string(c, 0, 1, 8, 4);
}

static nsa_status string_zero_rows(err_call *c)
{
    return to_string(c, 0, 0, 0, 4);
}

static nsa_status string_negative_limit(err_call *c)
{
    return to_string(c, 0, 0, 8, -1);
}

/* ---- flex_attention: B = 1, H = 2, L = S = 8, E = 4 -------------------------------------- */

typedef struct flex_fx {
    float q[64], k[64], v[64], out[64];
    size_t size;
    nsa_tensor tq, tk, tv, to;
    nsa_flex_params p;
} flex_fx;

static flex_fx *flex_setup(err_call *c)
{
    int64_t shape[4] = {1, 2, 8, 4};
    flex_fx *f = (flex_fx *)err_alloc(c, sizeof *f);
    for (int i = 0; i < 64; i++) {
        f->q[i] = 0.01f * (float)i;
        f->k[i] = 0.02f * (float)(i % 7);
        f->v[i] = 0.03f * (float)(i % 5);
    }
    f->tq = nsa_tensor_contiguous(f->q, NSA_DTYPE_F32, 4, shape);
    f->tk = nsa_tensor_contiguous(f->k, NSA_DTYPE_F32, 4, shape);
    f->tv = nsa_tensor_contiguous(f->v, NSA_DTYPE_F32, 4, shape);
    f->to = nsa_tensor_contiguous(f->out, NSA_DTYPE_F32, 4, shape);
    f->p = nsa_flex_params_default();
    return f;
}

/* Runs the problem on `ctx` into a watched out, then frees the mask and the score_mod. */
static nsa_status flex_run(err_call *c, flex_fx *f, nsa_context *ctx, nsa_block_mask *bm,
                           nsa_score_mod *sm)
{
    nsa_status st;
    err_watch(c, f->out, sizeof f->out);
    st = nsa_flex_attention(ctx, &f->tq, &f->tk, &f->tv, bm, sm, &f->p, &f->to, NULL);
    nsa_block_mask_free(bm);
    nsa_score_mod_free(sm);
    return st;
}

static nsa_status flex_k_dtype(err_call *c)
{
    flex_fx *f = flex_setup(c);
    f->tk.dtype = NSA_DTYPE_F16;
    return flex_run(c, f, g_ctx, NULL, NULL);
}

static nsa_status flex_zero_e(err_call *c)
{
    flex_fx *f = flex_setup(c);
    f->tq.shape[3] = 0;
    return flex_run(c, f, g_ctx, NULL, NULL);
}

static nsa_status flex_k_batch(err_call *c)
{
    flex_fx *f = flex_setup(c);
    f->tk.shape[0] = 2;
    f->tk.stride[0] = 0;
    return flex_run(c, f, g_ctx, NULL, NULL);
}

static nsa_status flex_zero_heads(err_call *c)
{
    flex_fx *f = flex_setup(c);
    f->tq.shape[1] = f->tk.shape[1] = f->tv.shape[1] = f->to.shape[1] = 0;
    return flex_run(c, f, g_ctx, NULL, NULL);
}

static nsa_status flex_heads_without_gqa(err_call *c)
{
    flex_fx *f = flex_setup(c);
    f->tk.shape[1] = f->tv.shape[1] = 1;
    return flex_run(c, f, g_ctx, NULL, NULL);
}

static nsa_status flex_gqa_not_multiple(err_call *c)
{
    flex_fx *f = flex_setup(c);
    f->tk.shape[1] = f->tv.shape[1] = 3;
    f->tk.stride[1] = f->tv.stride[1] = 0;
    f->p.enable_gqa = 1;
    return flex_run(c, f, g_ctx, NULL, NULL);
}

static nsa_status flex_bad_gqa_flag(err_call *c)
{
    flex_fx *f = flex_setup(c);
    f->p.enable_gqa = 2;
    return flex_run(c, f, g_ctx, NULL, NULL);
}

static nsa_status flex_bad_mask_mod_only(err_call *c)
{
    flex_fx *f = flex_setup(c);
    f->p.mask_mod_only = -1;
    return flex_run(c, f, g_ctx, NULL, NULL);
}

static nsa_status flex_nan_scale(err_call *c)
{
    flex_fx *f = flex_setup(c);
    f->p.scale = NAN;
    return flex_run(c, f, g_ctx, NULL, NULL);
}

static nsa_status flex_mask_batch(err_call *c)
{
    return flex_run(c, flex_setup(c), g_ctx, mask_of(2, 1, 8, 8), NULL);
}

static nsa_status flex_mask_heads(err_call *c)
{
    return flex_run(c, flex_setup(c), g_ctx, mask_of(1, 3, 8, 8), NULL);
}

static nsa_status flex_mask_lengths(err_call *c)
{
    return flex_run(c, flex_setup(c), g_ctx, mask_of(1, 1, 8, 12), NULL);
}

static nsa_status flex_alibi_heads(err_call *c)
{
    nsa_score_mod *sm = NULL;
    nsa_score_mod_alibi(NULL, 3, &sm);
    return flex_run(c, flex_setup(c), g_ctx, NULL, sm);
}

static nsa_status flex_rel_bias(err_call *c, int64_t rows, int64_t cols)
{
    nsa_score_mod *sm = NULL;
    nsa_score_mod_rel_bias(table_of(c, rows, cols), &sm);
    return flex_run(c, flex_setup(c), g_ctx, NULL, sm);
}

static nsa_status flex_rel_bias_heads(err_call *c)
{
    return flex_rel_bias(c, 3, 15);
}

static nsa_status flex_rel_bias_short(err_call *c)
{
    return flex_rel_bias(c, 1, 14);
}

static nsa_status flex_null_out(err_call *c)
{
    flex_fx *f = flex_setup(c);
    return nsa_flex_attention(g_ctx, &f->tq, &f->tk, &f->tv, NULL, NULL, NULL, NULL, NULL);
}

static nsa_status flex_no_default_context(err_call *c)
{
    flex_fx *f = flex_setup(c);
    err_fail_default_context(c);
    return flex_run(c, f, NULL, NULL, NULL);
}

static nsa_status size_null(err_call *c)
{
    flex_fx *f = flex_setup(c);
    return nsa_flex_attention_workspace_size(g_ctx, &f->tq, &f->tk, &f->tv, NULL, NULL, NULL);
}

/* A user pool that claims 1024 threads (the calls under test fail before using it). */
static int many_threads(void *user)
{
    (void)user;
    return 1024;
}

static void serial_for(void *user, nsa_task_fn task, void *arg, size_t n)
{
    (void)user;
    for (size_t i = 0; i < n; i++)
        task(arg, i);
}

/* 1024 one-row query heads (GQA over one kv head) against INT64_MAX broadcast keys on 1024
 * threads: each task lists ~2^51 kv blocks, 1024 tasks of that overflow size_t. */
static flex_fx *flex_huge(err_call *c, nsa_context **ctx)
{
    static const nsa_thread_pool pool = {NULL, many_threads, serial_for};
    int64_t qsh[4] = {1, 1024, 1, 1}, kvsh[4] = {1, 1, INT64_MAX, 1}, none[4] = {0, 0, 0, 0};
    nsa_context_config cfg = NSA_CONTEXT_CONFIG_INIT;
    flex_fx *f = flex_setup(c);
    float *q = (float *)err_alloc(c, 1024 * sizeof *q), *out = (float *)err_alloc(c, 4096);
    f->tq = nsa_tensor_contiguous(q, NSA_DTYPE_F32, 4, qsh);
    f->tk = nsa_tensor_strided(f->k, NSA_DTYPE_F32, 4, kvsh, none);
    f->tv = nsa_tensor_strided(f->v, NSA_DTYPE_F32, 4, kvsh, none);
    f->to = nsa_tensor_contiguous(out, NSA_DTYPE_F32, 4, qsh);
    f->p.enable_gqa = 1;
    cfg.thread_pool = &pool;
    if (nsa_context_create(&cfg, ctx) != NSA_SUCCESS)
        *ctx = NULL;
    err_watch(c, out, 4096);
    return f;
}

static nsa_status size_overflow(err_call *c)
{
    nsa_context *ctx;
    flex_fx *f = flex_huge(c, &ctx);
    nsa_status st;
    err_watch(c, &f->size, sizeof f->size);
    st = nsa_flex_attention_workspace_size(ctx, &f->tq, &f->tk, &f->tv, NULL, &f->p, &f->size);
    nsa_context_destroy(ctx);
    return st;
}

static nsa_status flex_workspace_overflow(err_call *c)
{
    nsa_context *ctx;
    flex_fx *f = flex_huge(c, &ctx);
    nsa_status st =
        nsa_flex_attention(ctx, &f->tq, &f->tk, &f->tv, NULL, NULL, &f->p, &f->to, NULL);
    nsa_context_destroy(ctx);
    return st;
}

static const err_case cases[] = {
    /* mask_mods.c */
    {"finish_new", "out of memory", causal_oom},
    {"simple", "out must not be NULL", causal_null_out},
    {"nsa_mask_mod_sliding_window", "window", sliding_zero_window},
    {"nsa_mask_mod_prefix_lm", "prefix_len", prefix_negative},
    {"nsa_mask_mod_callback", "fn must not be NULL", mask_callback_null_fn},
    {"load_ids", "out of memory copying", document_ids_oom},
    {"load_ids", "out of memory copying", document_ids_too_many},
    {"nsa_mask_mod_document", "out must not be NULL", document_null_out},
    {"nsa_mask_mod_document", "out of memory", document_oom},
    {"check_offsets", "[0] must be 0", offsets_nonzero_start},
    {"check_offsets", "non-decreasing", offsets_decreasing},
    {"nsa_mask_mod_document_offsets", "out must not be NULL", offsets_null_out},
    {"nsa_mask_mod_document_offsets", "q_offsets must not be NULL", offsets_null_q},
    {"nsa_mask_mod_document_offsets", "num_seqs", offsets_no_seqs},
    {"nsa_mask_mod_document_offsets", "out of memory", offsets_oom},
    {"combine", "out must not be NULL", and_null_out},
    {"combine", "count must be >= 0", and_negative_count},
    {"combine", "mods must not be NULL", and_null_mods},
    {"combine", "mods[%d]", and_null_mod},
    {"combine", "out of memory", and_oom},
    {"nsa_mask_mod_not", "mod must not be NULL", not_null_mod},
    {"check_cover", "doc_ids must hold an id for each of the %lld query", cover_short_ids},
    {"check_cover", "kv_doc_ids must hold", cover_short_kv_ids},
    {"check_cover", "q_offsets[num_seqs]", cover_short_q_offsets},
    {"check_cover", "kv_offsets[num_seqs]", cover_short_kv_offsets},
    {"nsa_mask_mod_eval", "mod must not be NULL", eval_null_mod},
    {"nsa_mask_mod_eval", "keep must not be NULL", eval_null_keep},
    {"nsa_mask_mod_eval", "must be >= 0", eval_negative},
    {"nsa_mask_mod_eval", "overflow", eval_last_q_idx},
    {"nsa_mask_mod_eval", "overflow", eval_kv_wraps},
    /* score_mods.c */
    {"sm_new", "out must not be NULL", softcap_null_out},
    {"sm_new", "out of memory", softcap_oom},
    {"copy_table", "must not be empty", rel_bias_empty},
    {"copy_table", "out of memory", rel_bias_oom},
    {"copy_table", "out of memory", rel_bias_too_large},
    {"nsa_score_mod_alibi", "num_heads must be >= 1", alibi_no_heads},
    {"nsa_score_mod_alibi", "slopes.shape[0]", alibi_wrong_slopes},
    {"nsa_score_mod_alibi", "out of memory", alibi_oom},
    {"nsa_score_mod_alibi", "out of memory", alibi_too_many_heads},
    {"nsa_score_mod_softcap", "cap must be", softcap_infinite},
    {"nsa_score_mod_callback", "fn must not be NULL", score_callback_null_fn},
    {"nsa_score_mod_check", "ALiBi", flex_alibi_heads},
    {"nsa_score_mod_check", "table.shape[0]", flex_rel_bias_heads},
    {"nsa_score_mod_check", "table.shape[1]", flex_rel_bias_short},
    /* block_mask.c */
    {"bm_alloc", "too large", create_too_large},
    {"bm_alloc", "out of memory", create_oom},
    {"build", "out of memory", create_build_oom},
    {"check_block_sizes", "q_block and kv_block", create_zero_block},
    {"nsa_block_mask_create", "out must not be NULL", create_null_out},
    {"nsa_block_mask_create", "batch and heads", create_no_heads},
    {"nsa_block_mask_create", "q_len and kv_len", create_no_queries},
    {"nsa_block_mask_create", "overflows", create_numel_overflow},
    {"nsa_block_mask_create", "default context", create_no_default_context},
    {"nsa_block_mask_create", "2^31 blocks", create_too_many_blocks},
    {"load_blocks", "must be in [0, %lld], got", kv_count_too_big},
    {"load_blocks", "must be in [0, %lld), got", kv_index_out_of_range},
    {"load_blocks", "already listed", kv_index_twice},
    {"check_index_pair", "non-empty", kv_empty_dims},
    {"nsa_block_mask_from_kv_blocks", "out must not be NULL", kv_null_out},
    {"nsa_block_mask_from_kv_blocks", "given together", kv_full_num_alone},
    {"nsa_block_mask_from_kv_blocks", "too many blocks", kv_too_many_blocks},
    {"nsa_block_mask_from_kv_blocks", "q_len must satisfy", kv_wrong_q_len},
    {"nsa_block_mask_from_kv_blocks", "kv_len must satisfy", kv_wrong_kv_len},
    {"nsa_block_mask_from_kv_blocks", "overflows", kv_numel_overflow},
    {"nsa_block_mask_from_kv_blocks", "default context", kv_no_default_context},
    {"nsa_block_mask_select", "out must not be NULL", select_null_out},
    {"nsa_block_mask_select", "mask must not be NULL", select_null_mask},
    {"nsa_block_mask_select", "b must be", select_bad_batch},
    {"nsa_block_mask_select", "h must be", select_bad_head},
    {"nsa_block_mask_get_info", "must not be NULL", info_null_mask},
    {"nsa_block_mask_array_view", "must not be NULL", view_null_mask},
    {"nsa_block_mask_array_view", "which must be", view_bad_array},
    {"nsa_block_mask_to_dense", "mask must not be NULL", dense_null_mask},
    {"nsa_block_mask_sparsity", "must not be NULL", sparsity_null_mask},
    {"nsa_block_mask_to_string", "%s must not be NULL", string_null_mask},
    {"nsa_block_mask_to_string", "buf must not be NULL", string_null_buf},
    {"nsa_block_mask_to_string", "max_rows and max_cols", string_zero_rows},
    {"nsa_block_mask_to_string", "limit", string_negative_limit},
    /* flex_attention.c */
    {"check_same_dtype", "dtype must equal", flex_k_dtype},
    {"validate", "(E) and v.shape[3]", flex_zero_e},
    {"validate", "k.shape[0]", flex_k_batch},
    {"validate", "(heads) must be >= 1", flex_zero_heads},
    {"validate", "unless params->enable_gqa", flex_heads_without_gqa},
    {"validate", "multiple of k.shape[1]", flex_gqa_not_multiple},
    {"validate", "enable_gqa must be 0 or 1", flex_bad_gqa_flag},
    {"validate", "mask_mod_only", flex_bad_mask_mod_only},
    {"validate", "scale must be finite", flex_nan_scale},
    {"validate", "block_mask batch", flex_mask_batch},
    {"validate", "block_mask heads", flex_mask_heads},
    {"validate", "seq_lengths", flex_mask_lengths},
    {"nsa_flex_attention_workspace_size", "size must not be NULL", size_null},
    {"nsa_flex_attention_workspace_size", "overflows", size_overflow},
    {"nsa_flex_attention", "out must not be NULL", flex_null_out},
    {"nsa_flex_attention", "default context", flex_no_default_context},
    {"nsa_flex_attention", "overflows", flex_workspace_overflow},
};

int main(void)
{
    static const char *const files[] = {"src/flex/block_mask.c", "src/flex/mask_mods.c",
                                        "src/flex/score_mods.c", "src/ops/flex_attention.c"};
    nsa_context_config cfg = NSA_CONTEXT_CONFIG_INIT;
    int rc;
    cfg.num_threads = 1;
    if (nsa_context_create(&cfg, &g_ctx) != NSA_SUCCESS)
        return 1;
    rc = err_rows_main(files, ERR_COUNT(files), cases, ERR_COUNT(cases), NULL, 0);
    nsa_context_destroy(g_ctx);
    return rc;
}
