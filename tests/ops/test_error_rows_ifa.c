/* SPDX-License-Identifier: Apache-2.0 */
/* docs/errors.md, src/ops/incre_flash_attention.c: one case per rule (see
 * tests/common/error_rows.h). Every case builds a small valid problem with fix_new() and
 * breaks one thing; validation fails before any tensor is read, so a case may grow a shape
 * beyond the buffer behind it. */
#include <stdint.h>
#include <stdlib.h>

#include "core/internal.h"
#include "error_rows.h"
#include "nsa/nsa_ifa.h"

/* ---- the valid problem ------------------------------------------------------------------- */

/* Batches, query heads, kv heads, head dim, key length, page size (two pages per sequence). */
enum { NB = 3, NH = 2, KVH = 1, HD = 16, SEQ = 32, BLOCK = 16, MAXB = SEQ / BLOCK };
enum { NBLK = NB * MAXB, NLIST = NB + 1 }; /* cache pages; list entries (one spare) */

enum { KV_DENSE, KV_PAGED3, KV_PAGED4, KV_LIST };

/* What fix() adds to the problem. */
enum {
    W_MASK = 1,    /* u8 atten_mask (B,1,1,S) */
    W_PSE = 2,     /* pse_shift (B,N,1,S) */
    W_I8 = 4,      /* i8 K/V with per-tensor antiquant scale and offset */
    W_QUANT = 8,   /* i8 output with per-tensor quant_scale2 and quant_offset2 */
    W_STRICT = 16, /* NSA_VALIDATE_STRICT */
    W_BF16 = 32,   /* bf16 query (f16 otherwise) */
    W_D8 = 64      /* head dim 8 instead of HD */
};

typedef struct fix {
    nsa_tensor q, k, v, out, mask, pse, aqs, aqo, bt, qs, qo;
    nsa_tensor keys[NLIST], values[NLIST];
    const nsa_tensor *query, *key, *value, *attention_out, *key_list, *value_list;
    int64_t kv_count, lens[NLIST];
    size_t out_bytes;
    nsa_ifa_optional opt;
    nsa_ifa_params prm;
} fix;

/* A zeroed contiguous tensor (unused trailing extents are ignored), with room for 4-byte
 * elements so that a case may change its dtype. */
static nsa_tensor mk(err_call *c, nsa_dtype dt, int nd, int64_t d0, int64_t d1, int64_t d2,
                     int64_t d3)
{
    int64_t shape[4] = {d0, d1, d2, d3}, n = 1;
    for (int i = 0; i < nd; i++)
        n *= shape[i];
    return nsa_tensor_contiguous(err_alloc(c, (size_t)n * 4), dt, nd, shape);
}

/* (b, n heads, s tokens, d channels) in a query/output/K/V layout. */
static nsa_tensor mk_layout(err_call *c, nsa_dtype dt, nsa_layout l, int64_t b, int64_t n,
                            int64_t s, int64_t d)
{
    if (l == NSA_LAYOUT_BSH)
        return mk(c, dt, 3, b, s, n * d, 0);
    if (l == NSA_LAYOUT_BNSD)
        return mk(c, dt, 4, b, n, s, d);
    return mk(c, dt, 4, b, s, n, d);
}

/* `count` actual_seq_lengths, all `len`. */
static void lengths(fix *f, int64_t count, int64_t len)
{
    for (int i = 0; i < NLIST; i++)
        f->lens[i] = len;
    f->prm.actual_seq_lengths = f->lens;
    f->prm.actual_seq_lengths_count = count;
}

static fix *fix_new(err_call *c, int kv, nsa_layout layout, unsigned with)
{
    fix *f = (fix *)err_alloc(c, sizeof *f);
    nsa_dtype dt = with & W_BF16 ? NSA_DTYPE_BF16 : NSA_DTYPE_F16;
    nsa_dtype kdt = with & W_I8 ? NSA_DTYPE_I8 : dt;
    int64_t d = with & W_D8 ? 8 : HD;
    f->prm = nsa_ifa_params_default();
    f->prm.num_heads = NH;
    f->prm.num_key_value_heads = KVH;
    f->prm.input_layout = layout;
    f->prm.validation = with & W_STRICT ? NSA_VALIDATE_STRICT : NSA_VALIDATE_DEFAULT;
    f->q = mk_layout(c, dt, layout, NB, NH, 1, d);
    f->out = mk_layout(c, with & W_QUANT ? NSA_DTYPE_I8 : dt, layout, NB, NH, 1, d);
    f->out_bytes = (size_t)(NB * NH * d * 4);
    if (kv == KV_DENSE) {
        f->k = mk_layout(c, kdt, layout, NB, KVH, SEQ, d);
        f->v = mk_layout(c, kdt, layout, NB, KVH, SEQ, d);
    } else if (kv == KV_LIST) {
        for (int i = 0; i < NLIST; i++) {
            f->keys[i] = mk_layout(c, kdt, layout, 1, KVH, SEQ, d);
            f->values[i] = mk_layout(c, kdt, layout, 1, KVH, SEQ, d);
        }
        f->key_list = f->keys;
        f->value_list = f->values;
        f->kv_count = NB;
    } else {
        if (kv == KV_PAGED3) {
            f->k = mk(c, kdt, 3, NBLK, BLOCK, KVH * d, 0);
            f->v = mk(c, kdt, 3, NBLK, BLOCK, KVH * d, 0);
        } else {
            f->k = mk(c, kdt, 4, NBLK, KVH, BLOCK, d);
            f->v = mk(c, kdt, 4, NBLK, KVH, BLOCK, d);
        }
        f->bt = mk(c, NSA_DTYPE_I32, 2, NB, MAXB, 0, 0);
        for (int i = 0; i < NBLK; i++)
            ((int32_t *)f->bt.data)[i] = i;
        f->opt.block_table = &f->bt;
        f->prm.block_size = BLOCK;
        lengths(f, NB, SEQ); /* page attention requires them */
    }
    if (with & W_MASK) {
        f->mask = mk(c, NSA_DTYPE_U8, 4, NB, 1, 1, SEQ);
        f->opt.atten_mask = &f->mask;
    }
    if (with & W_PSE) {
        f->pse = mk(c, dt, 4, NB, NH, 1, SEQ);
        f->opt.pse_shift = &f->pse;
    }
    if (with & W_I8) {
        f->aqs = mk(c, dt, 1, 2, 0, 0, 0);
        f->aqo = mk(c, dt, 1, 2, 0, 0, 0);
        f->opt.antiquant_scale = &f->aqs;
        f->opt.antiquant_offset = &f->aqo;
    }
    if (with & W_QUANT) {
        f->qs = mk(c, NSA_DTYPE_F32, 1, 1, 0, 0, 0);
        f->qo = mk(c, NSA_DTYPE_F32, 1, 1, 0, 0, 0);
        f->opt.quant_scale2 = &f->qs;
        f->opt.quant_offset2 = &f->qo;
    }
    f->query = &f->q;
    f->key = &f->k;
    f->value = &f->v;
    f->attention_out = &f->out;
    return f;
}

static fix *dense(err_call *c, unsigned with)
{
    return fix_new(c, KV_DENSE, NSA_LAYOUT_BSH, with);
}

static fix *bnsd(err_call *c, unsigned with)
{
    return fix_new(c, KV_DENSE, NSA_LAYOUT_BNSD, with);
}

static fix *paged(err_call *c, unsigned with)
{
    return fix_new(c, KV_PAGED3, NSA_LAYOUT_BSH, with);
}

static fix *list(err_call *c, unsigned with)
{
    return fix_new(c, KV_LIST, NSA_LAYOUT_BSH, with);
}

/* Watch the output, then make the call in the fixture's form (the list form with a list). */
static nsa_status call(err_call *c, fix *f)
{
    err_watch(c, f->out.data, f->out_bytes);
    if (f->key_list)
        return nsa_incre_flash_attention_kv_list(NULL, f->query, f->key_list, f->value_list,
                                                 f->kv_count, &f->opt, &f->prm, f->attention_out);
    return nsa_incre_flash_attention(NULL, f->query, f->key, f->value, &f->opt, &f->prm,
                                     f->attention_out);
}

/* ---- check_params ------------------------------------------------------------------------ */

static nsa_status bad_validation(err_call *c)
{
    fix *f = dense(c, 0);
    f->prm.validation = (nsa_validation)7;
    return call(c, f);
}

static nsa_status zero_heads(err_call *c)
{
    fix *f = dense(c, 0);
    f->prm.num_heads = 0;
    return call(c, f);
}

static nsa_status negative_kv_heads(err_call *c)
{
    fix *f = dense(c, 0);
    f->prm.num_key_value_heads = -1;
    return call(c, f);
}

static nsa_status kv_heads_above_heads(err_call *c)
{
    fix *f = dense(c, 0);
    f->prm.num_key_value_heads = NH + 1;
    return call(c, f);
}

static nsa_status heads_not_multiple(err_call *c)
{
    fix *f = dense(c, 0);
    f->prm.num_heads = 3;
    f->prm.num_key_value_heads = 2;
    return call(c, f);
}

static nsa_status group_above_64(err_call *c)
{
    fix *f = dense(c, 0);
    f->prm.num_heads = 65;
    return call(c, f);
}

static nsa_status layout_tnd(err_call *c)
{
    fix *f = dense(c, 0);
    f->prm.input_layout = NSA_LAYOUT_TND;
    return call(c, f);
}

static nsa_status layout_unknown(err_call *c)
{
    fix *f = dense(c, 0);
    f->prm.input_layout = (nsa_layout)99;
    return call(c, f);
}

static nsa_status scale_inf_in_f32(err_call *c)
{
    fix *f = dense(c, 0);
    f->prm.scale_value = 1e39; /* finite as a double, infinite as a float */
    return call(c, f);
}

static nsa_status bad_inner_precise(err_call *c)
{
    fix *f = dense(c, 0);
    f->prm.inner_precise = 2;
    return call(c, f);
}

static nsa_status negative_lengths_count(err_call *c)
{
    fix *f = dense(c, 0);
    f->prm.actual_seq_lengths_count = -1;
    return call(c, f);
}

static nsa_status null_lengths(err_call *c)
{
    fix *f = dense(c, 0);
    f->prm.actual_seq_lengths_count = 1;
    return call(c, f);
}

/* ---- check_query ------------------------------------------------------------------------- */

static nsa_status null_query(err_call *c)
{
    fix *f = dense(c, 0);
    f->query = NULL;
    return call(c, f);
}

static nsa_status i8_query(err_call *c)
{
    fix *f = dense(c, 0);
    f->q.dtype = NSA_DTYPE_I8;
    return call(c, f);
}

static nsa_status strict_f32_query(err_call *c)
{
    fix *f = dense(c, W_STRICT);
    f->q.dtype = NSA_DTYPE_F32;
    return call(c, f);
}

static nsa_status empty_query(err_call *c)
{
    fix *f = dense(c, 0);
    f->q.shape[0] = 0;
    return call(c, f);
}

static nsa_status two_query_tokens(err_call *c)
{
    fix *f = dense(c, 0);
    f->q.shape[1] = 2;
    return call(c, f);
}

static nsa_status hidden_not_multiple(err_call *c)
{
    fix *f = dense(c, 0);
    f->q.shape[2] = NH * HD + 1;
    return call(c, f);
}

static nsa_status query_heads_axis(err_call *c)
{
    fix *f = bnsd(c, 0);
    f->q.shape[1] = NH + 1;
    return call(c, f);
}

static nsa_status head_dim_too_big(err_call *c)
{
    fix *f = dense(c, 0);
    f->q.shape[2] = NH * 65537;
    return call(c, f);
}

static nsa_status strict_batch(err_call *c)
{
    fix *f = dense(c, W_STRICT);
    f->q.shape[0] = 65537;
    return call(c, f);
}

static nsa_status strict_head_dim(err_call *c)
{
    fix *f = dense(c, W_STRICT);
    f->q.shape[2] = NH * 513;
    return call(c, f);
}

static nsa_status strict_heads(err_call *c)
{
    fix *f = dense(c, W_STRICT);
    f->prm.num_heads = f->prm.num_key_value_heads = 257;
    f->q.shape[2] = 257 * HD;
    return call(c, f);
}

/* ---- check_kv_tensor, same_shape, check_kv_dtype ----------------------------------------- */

static nsa_status key_batch(err_call *c)
{
    fix *f = dense(c, 0);
    f->k.shape[0] = NB - 1;
    return call(c, f);
}

static nsa_status key_hidden(err_call *c)
{
    fix *f = dense(c, 0);
    f->k.shape[2] = KVH * HD + 1;
    return call(c, f);
}

static nsa_status key_heads_axis(err_call *c)
{
    fix *f = bnsd(c, 0);
    f->k.shape[1] = KVH + 1;
    return call(c, f);
}

static nsa_status key_head_dim(err_call *c)
{
    fix *f = bnsd(c, 0);
    f->k.shape[3] = HD / 2;
    return call(c, f);
}

static nsa_status value_length(err_call *c)
{
    fix *f = dense(c, 0);
    f->v.shape[1] = SEQ - 1;
    return call(c, f);
}

static nsa_status value_dtype(err_call *c)
{
    fix *f = dense(c, 0);
    f->v.dtype = NSA_DTYPE_I8;
    return call(c, f);
}

static nsa_status kv_not_query_dtype(err_call *c)
{
    fix *f = dense(c, 0);
    f->k.dtype = f->v.dtype = NSA_DTYPE_BF16;
    return call(c, f);
}

/* ---- check_paged_cache ------------------------------------------------------------------- */

static nsa_status table_batch(err_call *c)
{
    fix *f = paged(c, 0);
    f->bt.shape[0] = NB - 1;
    return call(c, f);
}

static nsa_status table_empty(err_call *c)
{
    fix *f = paged(c, 0);
    f->bt.shape[1] = 0;
    return call(c, f);
}

static nsa_status paged_zero_block_size(err_call *c)
{
    fix *f = paged(c, 0);
    f->prm.block_size = 0;
    return call(c, f);
}

static nsa_status paged_huge_block_size(err_call *c)
{
    fix *f = paged(c, 0);
    f->prm.block_size = (int64_t)INT32_MAX + 1;
    return call(c, f);
}

static nsa_status paged_null_key(err_call *c)
{
    fix *f = paged(c, 0);
    f->key = NULL;
    return call(c, f);
}

static nsa_status paged3_block_axis(err_call *c)
{
    fix *f = paged(c, 0);
    f->k.shape[1] = BLOCK / 2;
    return call(c, f);
}

static nsa_status paged3_hidden(err_call *c)
{
    fix *f = paged(c, 0);
    f->k.shape[2] = KVH * HD + 1;
    return call(c, f);
}

static nsa_status paged4_not_bnsd(err_call *c)
{
    return call(c, fix_new(c, KV_PAGED4, NSA_LAYOUT_BSND, 0));
}

static nsa_status paged4_heads(err_call *c)
{
    fix *f = fix_new(c, KV_PAGED4, NSA_LAYOUT_BNSD, 0);
    f->k.shape[1] = KVH + 1;
    return call(c, f);
}

static nsa_status paged4_block_axis(err_call *c)
{
    fix *f = fix_new(c, KV_PAGED4, NSA_LAYOUT_BNSD, 0);
    f->k.shape[2] = BLOCK / 2;
    return call(c, f);
}

static nsa_status paged4_head_dim(err_call *c)
{
    fix *f = fix_new(c, KV_PAGED4, NSA_LAYOUT_BNSD, 0);
    f->k.shape[3] = HD / 2;
    return call(c, f);
}

static nsa_status paged_rank(err_call *c)
{
    fix *f = paged(c, 0);
    f->k.ndim = 2;
    return call(c, f);
}

static nsa_status paged_length_overflow(err_call *c)
{
    fix *f = paged(c, 0);
    f->prm.block_size = f->k.shape[1] = f->v.shape[1] = INT32_MAX;
    f->bt.shape[1] = (int64_t)1 << 33;
    return call(c, f);
}

static nsa_status strict_i8_block_size(err_call *c)
{
    return call(c, paged(c, W_I8 | W_STRICT)); /* i8 pages hold a multiple of 32 tokens */
}

static nsa_status strict_table_width(err_call *c)
{
    fix *f = paged(c, W_STRICT);
    f->bt.shape[1] = 16385;
    return call(c, f);
}

static nsa_status strict_paged3_hidden(err_call *c)
{
    fix *f = paged(c, W_STRICT);
    f->prm.num_heads = f->prm.num_key_value_heads = 256;
    f->q.shape[2] = f->k.shape[2] = f->v.shape[2] = 256 * 512;
    return call(c, f);
}

static nsa_status strict_paged_numel(err_call *c)
{
    fix *f = paged(c, W_STRICT);
    f->k.shape[0] = f->v.shape[0] = (int64_t)1 << 24;
    return call(c, f);
}

/* ---- check_lengths, check_block_ids ------------------------------------------------------ */

static nsa_status lengths_count(err_call *c)
{
    fix *f = dense(c, 0);
    lengths(f, NB - 1, SEQ);
    return call(c, f);
}

static nsa_status strict_lengths_count(err_call *c)
{
    fix *f = dense(c, W_STRICT);
    lengths(f, NB + 1, SEQ);
    return call(c, f);
}

static nsa_status paged_without_lengths(err_call *c)
{
    fix *f = paged(c, 0);
    f->prm.actual_seq_lengths_count = 0;
    return call(c, f);
}

static nsa_status negative_length(err_call *c)
{
    fix *f = dense(c, 0);
    lengths(f, 1, -1);
    return call(c, f);
}

static nsa_status length_above_key(err_call *c)
{
    fix *f = dense(c, 0);
    lengths(f, 1, SEQ + 1);
    return call(c, f);
}

static nsa_status length_above_pages(err_call *c)
{
    fix *f = paged(c, 0);
    lengths(f, NB, SEQ + 1);
    return call(c, f);
}

static nsa_status padding_paged(err_call *c)
{
    fix *f = paged(c, 0);
    f->prm.has_kv_padding_size = 1;
    return call(c, f);
}

static nsa_status padding_list(err_call *c)
{
    fix *f = list(c, 0);
    f->prm.has_kv_padding_size = 1;
    return call(c, f);
}

static nsa_status padding_without_lengths(err_call *c)
{
    fix *f = dense(c, 0);
    f->prm.has_kv_padding_size = 1;
    return call(c, f);
}

static nsa_status strict_padding(err_call *c)
{
    fix *f = dense(c, W_STRICT);
    lengths(f, 1, SEQ);
    f->prm.has_kv_padding_size = 1;
    f->prm.kv_padding_size = 1;
    return call(c, f);
}

static nsa_status block_id(err_call *c)
{
    fix *f = paged(c, 0);
    ((int32_t *)f->bt.data)[1] = NBLK;
    return call(c, f);
}

/* ---- check_mask, check_pse --------------------------------------------------------------- */

static nsa_status mask_rank(err_call *c)
{
    fix *f = dense(c, W_MASK);
    f->mask.ndim = 1;
    return call(c, f);
}

static nsa_status mask_batch(err_call *c)
{
    fix *f = dense(c, W_MASK);
    f->mask.shape[0] = NB - 1;
    return call(c, f);
}

static nsa_status mask_middle_axis(err_call *c)
{
    fix *f = dense(c, W_MASK);
    f->mask.shape[1] = 2;
    return call(c, f);
}

static nsa_status mask_short(err_call *c)
{
    fix *f = dense(c, W_MASK);
    f->mask.shape[3] = SEQ - 1;
    return call(c, f);
}

/* Covers the keys read (lengths of half a sequence) but not every page. */
static nsa_status strict_mask_paged(err_call *c)
{
    fix *f = paged(c, W_MASK | W_STRICT);
    lengths(f, 1, SEQ / 2);
    f->mask.shape[3] = SEQ / 2;
    return call(c, f);
}

static nsa_status strict_mask_value(err_call *c)
{
    fix *f = dense(c, W_MASK | W_STRICT);
    ((uint8_t *)f->mask.data)[5] = 2;
    return call(c, f);
}

static nsa_status pse_dtype(err_call *c)
{
    fix *f = dense(c, W_PSE);
    f->pse.dtype = NSA_DTYPE_BF16;
    return call(c, f);
}

static nsa_status pse_batch(err_call *c)
{
    fix *f = dense(c, W_PSE);
    f->pse.shape[0] = NB - 1;
    return call(c, f);
}

static nsa_status pse_heads(err_call *c)
{
    fix *f = dense(c, W_PSE);
    f->pse.shape[1] = NH - 1;
    return call(c, f);
}

static nsa_status pse_query_axis(err_call *c)
{
    fix *f = dense(c, W_PSE);
    f->pse.shape[2] = 2;
    return call(c, f);
}

static nsa_status pse_short(err_call *c)
{
    fix *f = dense(c, W_PSE);
    f->pse.shape[3] = SEQ - 1;
    return call(c, f);
}

static nsa_status strict_pse_short(err_call *c)
{
    fix *f = dense(c, W_PSE | W_STRICT);
    lengths(f, 1, SEQ / 2);
    f->pse.shape[3] = SEQ / 2;
    return call(c, f);
}

static nsa_status strict_pse_head_dim(err_call *c)
{
    return call(c, dense(c, W_PSE | W_STRICT | W_D8));
}

/* ---- check_antiquant --------------------------------------------------------------------- */

static nsa_status antiquant_not_i8(err_call *c)
{
    fix *f = dense(c, W_I8);
    f->k.dtype = f->v.dtype = NSA_DTYPE_F16;
    return call(c, f);
}

static nsa_status antiquant_missing(err_call *c)
{
    fix *f = dense(c, W_I8);
    f->opt.antiquant_scale = NULL;
    return call(c, f);
}

static nsa_status antiquant_rank(err_call *c)
{
    fix *f = dense(c, W_I8);
    f->aqs.ndim = 0;
    return call(c, f);
}

static nsa_status antiquant_sides(err_call *c)
{
    fix *f = dense(c, W_I8);
    f->aqs.shape[0] = 3;
    return call(c, f);
}

static nsa_status antiquant_channels(err_call *c)
{
    fix *f = dense(c, W_I8);
    f->aqs = mk(c, NSA_DTYPE_F16, 2, 2, KVH * HD + 1, 0, 0);
    return call(c, f);
}

static nsa_status antiquant_offset_rank(err_call *c)
{
    fix *f = dense(c, W_I8);
    f->aqo = mk(c, NSA_DTYPE_F16, 2, 2, KVH * HD, 0, 0);
    return call(c, f);
}

static nsa_status antiquant_offset_dtype(err_call *c)
{
    fix *f = dense(c, W_I8);
    f->aqo.dtype = NSA_DTYPE_F32;
    return call(c, f);
}

/* ---- check_quant2_one, check_output ------------------------------------------------------ */

static nsa_status quant_rank(err_call *c)
{
    fix *f = dense(c, W_QUANT);
    f->qs.ndim = 0;
    return call(c, f);
}

static nsa_status quant_numel(err_call *c)
{
    fix *f = dense(c, W_QUANT);
    f->qs.shape[0] = 2;
    return call(c, f);
}

static nsa_status null_out(err_call *c)
{
    fix *f = dense(c, 0);
    f->attention_out = NULL;
    return call(c, f);
}

static nsa_status out_shape(err_call *c)
{
    fix *f = dense(c, 0);
    f->out.shape[0] = NB - 1;
    return call(c, f);
}

static nsa_status offset_without_scale(err_call *c)
{
    fix *f = dense(c, W_QUANT);
    f->opt.quant_scale2 = NULL;
    return call(c, f);
}

static nsa_status quant_out_not_i8(err_call *c)
{
    fix *f = dense(c, W_QUANT);
    f->out.dtype = NSA_DTYPE_F16;
    return call(c, f);
}

static nsa_status quant_offset_dtype(err_call *c)
{
    fix *f = dense(c, W_QUANT | W_BF16); /* a bf16 query allows bf16 quant parameters */
    f->qo.dtype = NSA_DTYPE_BF16;
    return call(c, f);
}

static nsa_status quant_mixed_granularity(err_call *c)
{
    fix *f = dense(c, W_QUANT);
    f->qo = mk(c, NSA_DTYPE_F32, 1, NH * HD, 0, 0, 0);
    return call(c, f);
}

static nsa_status strict_quant_channel_paged(err_call *c)
{
    fix *f = paged(c, W_QUANT | W_STRICT);
    f->qs = mk(c, NSA_DTYPE_F32, 1, NH * HD, 0, 0, 0);
    f->qo = mk(c, NSA_DTYPE_F32, 1, NH * HD, 0, 0, 0);
    return call(c, f);
}

static nsa_status i8_out_without_scale(err_call *c)
{
    fix *f = dense(c, 0);
    f->out.dtype = NSA_DTYPE_I8;
    return call(c, f);
}

static nsa_status out_dtype(err_call *c)
{
    fix *f = dense(c, 0);
    f->out.dtype = NSA_DTYPE_BF16;
    return call(c, f);
}

static nsa_status strict_f32_out(err_call *c)
{
    fix *f = dense(c, W_STRICT);
    f->out.dtype = NSA_DTYPE_F32;
    return call(c, f);
}

/* ---- plan_work --------------------------------------------------------------------------- */

/* `kvh` kv heads of `group` query heads, D = 1, one key: the query and K/V repeat one element
 * (stride 0); the output really spans 2 bytes per head, so it is placed at 2^62, an address no
 * allocation uses (never dereferenced, hence not watched). */
typedef struct huge {
    nsa_tensor q, k, v, out;
    nsa_ifa_params prm;
    int64_t len;
    size_t size;
} huge;

static huge *huge_new(err_call *c, int64_t kvh, int64_t group)
{
    huge *h = (huge *)err_alloc(c, sizeof *h);
    const int64_t qshape[3] = {1, 1, kvh * group}, kshape[3] = {1, 1, kvh}, zero[3] = {0};
    h->q = nsa_tensor_strided(err_alloc(c, 2), NSA_DTYPE_F16, 3, qshape, zero);
    h->k = nsa_tensor_strided(err_alloc(c, 2), NSA_DTYPE_F16, 3, kshape, zero);
    h->v = nsa_tensor_strided(err_alloc(c, 2), NSA_DTYPE_F16, 3, kshape, zero);
    h->out = nsa_tensor_contiguous((void *)((uintptr_t)1 << 62), NSA_DTYPE_F16, 3, qshape);
    h->prm = nsa_ifa_params_default();
    h->prm.num_heads = kvh * group;
    h->prm.num_key_value_heads = kvh;
    return h;
}

/* One task per kv head, each with a partial output of 768 bytes: 2^64.6 bytes in all. */
static nsa_status workspace_overflow_partials(err_call *c)
{
    huge *h = huge_new(c, (int64_t)1 << 55, 64);
    return nsa_incre_flash_attention(NULL, &h->q, &h->k, &h->v, NULL, &h->prm, &h->out);
}

/* No task (length 0), but the fp32 copies of per-channel parameters would take 2^66 bytes. */
static nsa_status workspace_overflow_params(err_call *c)
{
    huge *h = huge_new(c, (int64_t)1 << 61, 1);
    h->prm.actual_seq_lengths = &h->len;
    h->prm.actual_seq_lengths_count = 1;
    return nsa_incre_flash_attention_workspace_size(NULL, &h->q, &h->k, &h->v, NULL, &h->prm,
                                                    &h->out, &h->size);
}

/* ---- prepare ----------------------------------------------------------------------------- */

static nsa_status null_key(err_call *c)
{
    fix *f = dense(c, 0);
    f->key = NULL;
    return call(c, f);
}

static nsa_status null_value_list(err_call *c)
{
    fix *f = list(c, 0);
    f->value_list = NULL;
    return call(c, f);
}

static nsa_status short_list(err_call *c)
{
    fix *f = list(c, 0);
    f->kv_count = NB - 1;
    return call(c, f);
}

static nsa_status strict_long_list(err_call *c)
{
    fix *f = list(c, W_STRICT);
    f->kv_count = NB + 1;
    return call(c, f);
}

/* The check fires before any list entry is read, so NLIST entries are enough. */
static nsa_status strict_list_batch(err_call *c)
{
    fix *f = list(c, W_STRICT);
    f->q.shape[0] = f->kv_count = 257;
    return call(c, f);
}

static nsa_status list_with_table(err_call *c)
{
    fix *f = list(c, 0);
    f->opt.block_table = &f->bt;
    return call(c, f);
}

static nsa_status list_mixed_dtypes(err_call *c)
{
    fix *f = list(c, 0);
    f->keys[1].dtype = f->values[1].dtype = NSA_DTYPE_I8;
    return call(c, f);
}

static nsa_status strict_block_size_unpaged(err_call *c)
{
    fix *f = dense(c, W_STRICT);
    f->prm.block_size = BLOCK;
    return call(c, f);
}

static nsa_status strict_key_length(err_call *c)
{
    fix *f = dense(c, W_STRICT);
    f->k.shape[1] = f->v.shape[1] = 262145;
    return call(c, f);
}

/* ---- entry points ------------------------------------------------------------------------ */

/* The default context is created again, from a process allocator that fails. */
static nsa_status default_context_oom(err_call *c)
{
    fix *f = dense(c, 0);
    err_fail_default_context(c);
    return call(c, f);
}

static nsa_status size_null(err_call *c)
{
    fix *f = dense(c, 0);
    err_watch(c, f->out.data, f->out_bytes);
    return nsa_incre_flash_attention_workspace_size(NULL, f->query, f->key, f->value, &f->opt,
                                                    &f->prm, f->attention_out, NULL);
}

static nsa_status list_size_null(err_call *c)
{
    fix *f = list(c, 0);
    err_watch(c, f->out.data, f->out_bytes);
    return nsa_incre_flash_attention_kv_list_workspace_size(
        NULL, f->query, f->key_list, f->value_list, f->kv_count, &f->opt, &f->prm,
        f->attention_out, NULL);
}

static const err_case cases[] = {
    {"check_params", "params.validation", bad_validation},
    {"check_params", "num_heads must be > 0", zero_heads},
    {"check_params", "must be >= 0 (0 means num_heads)", negative_kv_heads},
    {"check_params", "must be <= num_heads", kv_heads_above_heads},
    {"check_params", "must be a multiple of num_key_value_heads", heads_not_multiple},
    {"check_params", "must be <= 64", group_above_64},
    {"check_params", "input_layout TND", layout_tnd},
    {"check_params", "input_layout must be", layout_unknown},
    {"check_params", "scale_value", scale_inf_in_f32},
    {"check_params", "inner_precise", bad_inner_precise},
    {"check_params", "actual_seq_lengths_count must be >= 0", negative_lengths_count},
    {"check_params", "actual_seq_lengths must not be NULL", null_lengths},
    {"check_query", "query must not be NULL", null_query},
    {"check_query", "query dtype i8", i8_query},
    {"check_query", "f16 or bf16 at the strict level", strict_f32_query},
    {"check_query", "must not be empty", empty_query},
    {"check_query", "sequence length must be 1", two_query_tokens},
    {"check_query", "hidden size H", hidden_not_multiple},
    {"check_query", "heads axis", query_heads_axis},
    {"check_query", "<= 65536, got", head_dim_too_big},
    {"check_query", "batch must be <= 65536", strict_batch},
    {"check_query", "<= 512 at the strict level", strict_head_dim},
    {"check_query", "num_heads must be <= 256", strict_heads},
    {"check_kv_tensor", "batch dim", key_batch},
    {"check_kv_tensor", "hidden size", key_hidden},
    {"check_kv_tensor", "heads axis", key_heads_axis},
    {"check_kv_tensor", "head dim", key_head_dim},
    {"same_shape", "must equal", value_length},
    {"check_kv_dtype", "same dtype", value_dtype},
    {"check_kv_dtype", "or i8 (antiquant)", kv_not_query_dtype},
    {"check_paged_cache", "block_table.shape[0]", table_batch},
    {"check_paged_cache", "must not be empty", table_empty},
    {"check_paged_cache", "block_size must be > 0", paged_zero_block_size},
    {"check_paged_cache", "block_size must be <= %lld", paged_huge_block_size},
    {"check_paged_cache", "%s must not be NULL", paged_null_key},
    {"check_paged_cache", "shape[1] must be block_size", paged3_block_axis},
    {"check_paged_cache", "shape[2] must be num_key_value_heads", paged3_hidden},
    {"check_paged_cache", "needs input_layout BNSD", paged4_not_bnsd},
    {"check_paged_cache", "shape[1] must be num_key_value_heads", paged4_heads},
    {"check_paged_cache", "shape[2] must be block_size", paged4_block_axis},
    {"check_paged_cache", "shape[3] must be the query's D", paged4_head_dim},
    {"check_paged_cache", "must have 3 dimensions", paged_rank},
    {"check_paged_cache", "overflows int64", paged_length_overflow},
    {"check_paged_cache", "block_size must be a multiple", strict_i8_block_size},
    {"check_paged_cache", "max_blocks_per_seq) must be <= 16384", strict_table_width},
    {"check_paged_cache", "3-D paged cache needs", strict_paged3_hidden},
    {"check_paged_cache", "paged key cache must have", strict_paged_numel},
    {"check_lengths", "entries, got", lengths_count},
    {"check_lengths", "entries at the strict level", strict_lengths_count},
    {"check_lengths", "required with block_table", paged_without_lengths},
    {"check_lengths", "must be >= 0", negative_length},
    {"check_lengths", "key length S of batch", length_above_key},
    {"check_lengths", "block_size * max_blocks_per_seq", length_above_pages},
    {"check_lengths", "combined with block_table", padding_paged},
    {"check_lengths", "per-batch key/value tensors", padding_list},
    {"check_lengths", "requires actual_seq_lengths", padding_without_lengths},
    {"check_lengths", "S - max(actual_seq_lengths)", strict_padding},
    {"check_block_ids", "block_table[", block_id},
    {"check_mask", "2, 3 or 4 dimensions", mask_rank},
    {"check_mask", "shape[0] must be the batch", mask_batch},
    {"check_mask", "must be 1 (one mask row", mask_middle_axis},
    {"check_mask", "cover every KV position", mask_short},
    {"check_mask", "max_blocks_per_seq * block_size", strict_mask_paged},
    {"check_mask", "values must be 0 or 1", strict_mask_value},
    {"check_pse", "dtype", pse_dtype},
    {"check_pse", "shape[0]", pse_batch},
    {"check_pse", "shape[1]", pse_heads},
    {"check_pse", "shape[2]", pse_query_axis},
    {"check_pse", "cover every KV position", pse_short},
    {"check_pse", "the key length S", strict_pse_short},
    {"check_pse", "multiple of 16", strict_pse_head_dim},
    {"check_antiquant", "are given but", antiquant_not_i8},
    {"check_antiquant", "is required", antiquant_missing},
    {"check_antiquant", "1 to 4 dimensions", antiquant_rank},
    {"check_antiquant", "shape[0] must be 2", antiquant_sides},
    {"check_antiquant", "per-channel shape", antiquant_channels},
    {"check_antiquant", "rank of antiquant_scale", antiquant_offset_rank},
    {"check_antiquant", "antiquant_offset dtype", antiquant_offset_dtype},
    {"check_quant2_one", "1 to 4 dimensions", quant_rank},
    {"check_quant2_one", "per-channel shape", quant_numel},
    {"check_output", "must not be NULL", null_out},
    {"check_output", "must be the query's (%lld)", out_shape},
    {"check_output", "without quant_scale2", offset_without_scale},
    {"check_output", "must be i8 when", quant_out_not_i8},
    {"check_output", "quant_offset2 dtype", quant_offset_dtype},
    {"check_output", "both be per tensor", quant_mixed_granularity},
    {"check_output", "combined with block_table", strict_quant_channel_paged},
    {"check_output", "is not given", i8_out_without_scale},
    {"check_output", "or f32", out_dtype},
    {"check_output", "query's (%s) at the strict level", strict_f32_out},
    {"plan_work", "overflows size_t", workspace_overflow_partials},
    {"plan_work", "overflows size_t", workspace_overflow_params},
    {"prepare", "%s must not be NULL", null_key},
    {"prepare", "%s must not be NULL", null_value_list},
    {"prepare", "must be >= the batch", short_list},
    {"prepare", "kv_count must equal", strict_long_list},
    {"prepare", "at most 256 batches", strict_list_batch},
    {"prepare", "block_table cannot be combined", list_with_table},
    {"prepare", "keys[0]'s", list_mixed_dtypes},
    {"prepare", "block_size must be 0", strict_block_size_unpaged},
    {"prepare", "262144", strict_key_length},
    {"ifa_entry", "default context", default_context_oom},
    {"nsa_incre_flash_attention_workspace_size", "size must not be NULL", size_null},
    {"nsa_incre_flash_attention_kv_list_workspace_size", "size must not be NULL",
     list_size_null},
};

static const err_unreachable skip[] = {
    {"same_shape", "must have the rank of",
     "every caller fixes both ranks first: check_kv_tensor gives key and value the layout's "
     "rank, the paged value is checked with the key's rank, and check_antiquant compares the "
     "offset's rank before"},
};

int main(void)
{
    static const char *const files[] = {"src/ops/incre_flash_attention.c"};
    return err_rows_main(files, ERR_COUNT(files), cases, ERR_COUNT(cases), skip, ERR_COUNT(skip));
}
