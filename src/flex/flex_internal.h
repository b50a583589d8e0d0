/* SPDX-License-Identifier: Apache-2.0 */
/* Internals of the flex-attention engine shared by src/flex and src/ops/flex_attention.c. */
#ifndef NSA_FLEX_INTERNAL_H
#define NSA_FLEX_INTERNAL_H

#include <stdint.h>

#include "core/internal.h"
#include "nsa/nsa_flex.h"
#include "tensor/tensor.h"

/* Element offset `off` of an int32 or int64 tensor, widened to int64. */
static inline int64_t nsa_flex_int_at(const nsa_tensor *t, int64_t off)
{
    const void *p = nsa_tensor_at(t, off);
    return t->dtype == NSA_DTYPE_I32 ? (int64_t) * (const int32_t *)p : *(const int64_t *)p;
}

/* Block classes (also the values of the dense class map a block mask is built from). */
#define NSA_BLK_EMPTY 0
#define NSA_BLK_PARTIAL 1
#define NSA_BLK_FULL 2

typedef enum mm_kind {
    MM_NOOP,
    MM_CAUSAL,
    MM_SLIDING,
    MM_PREFIX,
    MM_DOC_IDS,
    MM_DOC_OFFSETS,
    MM_AND,
    MM_OR,
    MM_NOT,
    MM_CALLBACK
} mm_kind;

struct nsa_mask_mod {
    mm_kind kind;
    int64_t param; /* window / prefix length */
    /* document ids (MM_DOC_IDS): kv_ids == q_ids when they share storage */
    int64_t *q_ids, *kv_ids;
    int64_t q_ids_len, kv_ids_len;
    int ids_sorted; /* both non-decreasing: blocks are classified from runs */
    /* sequence offsets (MM_DOC_OFFSETS): num_seqs + 1 values each */
    int64_t *q_off, *kv_off;
    int64_t num_seqs;
    /* children (combinators; MM_DOC_OFFSETS keeps its inner mask as child 0) */
    nsa_mask_mod **child;
    int32_t nchild;
    nsa_mask_mod_fn fn;
    void *user;
};

typedef enum sm_kind { SM_ALIBI, SM_SOFTCAP, SM_REL_BIAS, SM_CALLBACK } sm_kind;

struct nsa_score_mod {
    sm_kind kind;
    float cap;
    float *table; /* ALiBi slopes [heads] or bias table [heads][table_len] */
    int64_t heads, table_len;
    int default_slopes; /* ALiBi slopes from the head count */
    nsa_score_mod_fn fn;
    void *user;
};

/* keep[j] = mod(b, h, q, kv0 + j); indices already validated. */
NSA_INTERNAL void nsa_mask_mod_row(const nsa_mask_mod *mod, int64_t b, int64_t h, int64_t q,
                                   int64_t kv0, int32_t n, uint8_t *keep);

/* Exact class of the in-range rectangle q in [q0, q1], kv in [k0, k1] (inclusive):
 * NSA_BLK_EMPTY (no cell attends), NSA_BLK_FULL (every cell) or NSA_BLK_PARTIAL. */
NSA_INTERNAL int nsa_mask_mod_classify(const nsa_mask_mod *mod, int64_t b, int64_t h, int64_t q0,
                                       int64_t q1, int64_t k0, int64_t k1);

/* 1 when nsa_mask_mod_classify() never evaluates cells (built-ins without combinators or
 * callbacks, document ids in sorted order): classifying costs O(1)-ish per rectangle. */
NSA_INTERNAL int nsa_mask_mod_is_analytic(const nsa_mask_mod *mod);

/* Classes of the nk key blocks [kb*kv_block, min((kb+1)*kv_block, kv_len)) of the query rows
 * [q0, q1] (in-range cells only; the caller handles PyTorch's padding rule). */
NSA_INTERNAL void nsa_mask_mod_classify_row(const nsa_mask_mod *mod, int64_t b, int64_t h,
                                            int64_t q0, int64_t q1, int64_t kv_block,
                                            int64_t kv_len, int64_t nk, uint8_t *cls);

/* Check that a mask_mod can be evaluated for every q < q_len, kv < kv_len (document ids and
 * offsets cover the lengths). Records the error. */
NSA_INTERNAL nsa_status nsa_mask_mod_check_lengths(const nsa_mask_mod *mod, int64_t q_len,
                                                   int64_t kv_len);

/* Deep copy (NULL on out of memory). */
NSA_INTERNAL nsa_mask_mod *nsa_mask_mod_clone(const nsa_mask_mod *mod);

/* Apply a score_mod to score[j] of (b, h, q, kv0 + j); kv_len is the call's KV length. */
NSA_INTERNAL void nsa_score_mod_row(const nsa_score_mod *mod, int64_t b, int64_t h, int64_t q,
                                    int64_t kv0, int32_t n, int64_t kv_len, float *score);

/* Check a score_mod against an attention call's sizes. Records the error. */
NSA_INTERNAL nsa_status nsa_score_mod_check(const nsa_score_mod *mod, int64_t heads,
                                            int64_t q_len, int64_t kv_len);

/* What flex_attention reads from a block mask. Rows are indexed
 * ((b * H + h) * nq + qb); arrays as in nsa_block_mask_array. */
typedef struct nsa_block_mask_view {
    nsa_block_mask_info info;
    const int32_t *kv_num, *kv_idx, *full_num, *full_idx;
    const nsa_mask_mod *mask_mod; /* never NULL */
    int64_t b_offset, h_offset;   /* added to b / h before calling mask_mod (select()) */
} nsa_block_mask_view;

NSA_INTERNAL void nsa_block_mask_get_view(const nsa_block_mask *mask, nsa_block_mask_view *view);

#endif /* NSA_FLEX_INTERNAL_H */
