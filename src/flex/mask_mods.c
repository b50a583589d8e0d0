/* SPDX-License-Identifier: Apache-2.0 */
/* Built-in mask_mods, combinators and callbacks: row evaluation and exact block
 * classification (analytic for built-ins, cell by cell only where it cannot be avoided). */
#include <stdlib.h>
#include <string.h>

#include "flex/flex_internal.h"
#include "tensor/tensor.h"

/* Keys evaluated per combinator / brute-force step (stack buffers, no VLAs). */
#define ROW_CHUNK 256

static nsa_mask_mod *mm_new(mm_kind kind)
{
    nsa_mask_mod *m = (nsa_mask_mod *)nsa_heap_calloc(1, sizeof(*m));
    if (m)
        m->kind = kind;
    return m;
}

void nsa_mask_mod_free(nsa_mask_mod *mod)
{
    int32_t i;
    if (!mod)
        return;
    for (i = 0; i < mod->nchild; i++)
        nsa_mask_mod_free(mod->child[i]);
    nsa_heap_free(mod->child);
    if (mod->kv_ids != mod->q_ids)
        nsa_heap_free(mod->kv_ids);
    nsa_heap_free(mod->q_ids);
    if (mod->kv_off != mod->q_off)
        nsa_heap_free(mod->kv_off);
    nsa_heap_free(mod->q_off);
    nsa_heap_free(mod);
}

static int64_t *dup_i64(const int64_t *src, int64_t n)
{
    int64_t *d = (int64_t *)nsa_heap_alloc((size_t)(n > 0 ? n : 1) * sizeof(int64_t), 16);
    if (d && n > 0)
        memcpy(d, src, (size_t)n * sizeof(int64_t));
    return d;
}

nsa_mask_mod *nsa_mask_mod_clone(const nsa_mask_mod *mod)
{
    nsa_mask_mod *m = mm_new(mod->kind);
    int32_t i;
    if (!m)
        return NULL;
    *m = *mod;
    m->q_ids = m->kv_ids = NULL;
    m->q_off = m->kv_off = NULL;
    m->child = NULL;
    m->nchild = 0;
    if (mod->q_ids) {
        m->q_ids = dup_i64(mod->q_ids, mod->q_ids_len);
        m->kv_ids = mod->kv_ids == mod->q_ids ? m->q_ids : dup_i64(mod->kv_ids, mod->kv_ids_len);
        if (!m->q_ids || !m->kv_ids)
            goto fail;
    }
    if (mod->q_off) {
        m->q_off = dup_i64(mod->q_off, mod->num_seqs + 1);
        m->kv_off = mod->kv_off == mod->q_off ? m->q_off : dup_i64(mod->kv_off, mod->num_seqs + 1);
        if (!m->q_off || !m->kv_off)
            goto fail;
    }
    if (mod->nchild > 0) {
        m->child =
            (nsa_mask_mod **)nsa_heap_calloc((size_t)mod->nchild, sizeof(nsa_mask_mod *));
        if (!m->child)
            goto fail;
        for (i = 0; i < mod->nchild; i++) {
            m->child[i] = nsa_mask_mod_clone(mod->child[i]);
            m->nchild = i + 1;
            if (!m->child[i])
                goto fail;
        }
    }
    return m;
fail:
    nsa_mask_mod_free(m);
    return NULL;
}

/* ---- constructors ------------------------------------------------------------------------ */

static nsa_status finish_new(nsa_mask_mod *m, nsa_mask_mod **out)
{
    if (!m)
        return nsa_error(NSA_ERR_OUT_OF_MEMORY, "out of memory allocating a mask_mod");
    *out = m;
    return NSA_SUCCESS;
}

static nsa_status simple(mm_kind kind, int64_t param, nsa_mask_mod **out)
{
    nsa_mask_mod *m;
    if (!out)
        return nsa_error(NSA_ERR_NULL_POINTER, "out must not be NULL");
    *out = NULL;
    m = mm_new(kind);
    if (m)
        m->param = param;
    return finish_new(m, out);
}

nsa_status nsa_mask_mod_noop(nsa_mask_mod **out)
{
    nsa_clear_error();
    return simple(MM_NOOP, 0, out);
}

nsa_status nsa_mask_mod_causal(nsa_mask_mod **out)
{
    nsa_clear_error();
    return simple(MM_CAUSAL, 0, out);
}

nsa_status nsa_mask_mod_sliding_window(int64_t window, nsa_mask_mod **out)
{
    nsa_clear_error();
    if (window < 1)
        return nsa_error(NSA_ERR_INVALID_ARGUMENT, "window must be >= 1, got %lld",
                         (long long)window);
    return simple(MM_SLIDING, window, out);
}

nsa_status nsa_mask_mod_prefix_lm(int64_t prefix_len, nsa_mask_mod **out)
{
    nsa_clear_error();
    if (prefix_len < 0)
        return nsa_error(NSA_ERR_INVALID_ARGUMENT, "prefix_len must be >= 0, got %lld",
                         (long long)prefix_len);
    return simple(MM_PREFIX, prefix_len, out);
}

nsa_status nsa_mask_mod_callback(nsa_mask_mod_fn fn, void *user, nsa_mask_mod **out)
{
    nsa_status st;
    nsa_clear_error();
    if (!fn)
        return nsa_error(NSA_ERR_NULL_POINTER, "fn must not be NULL");
    st = simple(MM_CALLBACK, 0, out);
    if (st == NSA_SUCCESS) {
        (*out)->fn = fn;
        (*out)->user = user;
    }
    return st;
}

/* Copy a 1-D integer id tensor to int64; *sorted &= non-decreasing. */
static nsa_status load_ids(const nsa_tensor *t, const char *name, int64_t **ids, int64_t *len,
                           int *sorted)
{
    int64_t i;
    nsa_status st = nsa_check_tensor(t, name, 1, NSA_DT(NSA_DTYPE_I32) | NSA_DT(NSA_DTYPE_I64));
    if (st != NSA_SUCCESS)
        return st;
    *len = t->shape[0];
    /* a broadcast (stride 0) tensor can list more ids than size_t bytes can hold */
    *ids = (uint64_t)*len > SIZE_MAX / sizeof(int64_t)
               ? NULL
               : (int64_t *)nsa_heap_alloc((size_t)(*len > 0 ? *len : 1) * sizeof(int64_t), 16);
    if (!*ids)
        return nsa_error(NSA_ERR_OUT_OF_MEMORY, "out of memory copying %s", name);
    for (i = 0; i < *len; i++) {
        (*ids)[i] = nsa_flex_int_at(t, i * t->stride[0]);
        if (i > 0 && (*ids)[i] < (*ids)[i - 1])
            *sorted = 0;
    }
    return NSA_SUCCESS;
}

nsa_status nsa_mask_mod_document(const nsa_tensor *doc_ids, const nsa_tensor *kv_doc_ids,
                                 nsa_mask_mod **out)
{
    nsa_mask_mod *m;
    nsa_status st;
    nsa_clear_error();
    if (!out)
        return nsa_error(NSA_ERR_NULL_POINTER, "out must not be NULL");
    *out = NULL;
    m = mm_new(MM_DOC_IDS);
    if (!m)
        return nsa_error(NSA_ERR_OUT_OF_MEMORY, "out of memory allocating a mask_mod");
    m->ids_sorted = 1;
    st = load_ids(doc_ids, "doc_ids", &m->q_ids, &m->q_ids_len, &m->ids_sorted);
    if (st == NSA_SUCCESS) {
        if (kv_doc_ids) {
            st = load_ids(kv_doc_ids, "kv_doc_ids", &m->kv_ids, &m->kv_ids_len, &m->ids_sorted);
        } else {
            m->kv_ids = m->q_ids;
            m->kv_ids_len = m->q_ids_len;
        }
    }
    if (st != NSA_SUCCESS) {
        nsa_mask_mod_free(m);
        return st;
    }
    *out = m;
    return NSA_SUCCESS;
}

static nsa_status check_offsets(const int64_t *off, int64_t n, const char *name)
{
    int64_t i;
    if (off[0] != 0)
        return nsa_error(NSA_ERR_INVALID_ARGUMENT, "%s[0] must be 0, got %lld", name,
                         (long long)off[0]);
    for (i = 1; i <= n; i++)
        if (off[i] < off[i - 1])
            return nsa_error(NSA_ERR_INVALID_ARGUMENT,
                             "%s must be non-decreasing, but %s[%lld] = %lld < %s[%lld] = %lld",
                             name, name, (long long)i, (long long)off[i], name,
                             (long long)(i - 1), (long long)off[i - 1]);
    return NSA_SUCCESS;
}

nsa_status nsa_mask_mod_document_offsets(const int64_t *q_offsets, const int64_t *kv_offsets,
                                         int64_t num_seqs, const nsa_mask_mod *inner,
                                         nsa_mask_mod **out)
{
    nsa_mask_mod *m;
    nsa_status st;
    nsa_clear_error();
    if (!out)
        return nsa_error(NSA_ERR_NULL_POINTER, "out must not be NULL");
    *out = NULL;
    if (!q_offsets)
        return nsa_error(NSA_ERR_NULL_POINTER, "q_offsets must not be NULL");
    if (num_seqs < 1)
        return nsa_error(NSA_ERR_INVALID_ARGUMENT, "num_seqs must be >= 1, got %lld",
                         (long long)num_seqs);
    st = check_offsets(q_offsets, num_seqs, "q_offsets");
    if (st == NSA_SUCCESS && kv_offsets)
        st = check_offsets(kv_offsets, num_seqs, "kv_offsets");
    if (st != NSA_SUCCESS)
        return st;
    m = mm_new(MM_DOC_OFFSETS);
    if (!m)
        return nsa_error(NSA_ERR_OUT_OF_MEMORY, "out of memory allocating a mask_mod");
    m->num_seqs = num_seqs;
    m->q_off = dup_i64(q_offsets, num_seqs + 1);
    m->kv_off = kv_offsets ? dup_i64(kv_offsets, num_seqs + 1) : m->q_off;
    m->child = (nsa_mask_mod **)nsa_heap_calloc(1, sizeof(nsa_mask_mod *));
    if (m->child) {
        m->child[0] = inner ? nsa_mask_mod_clone(inner) : mm_new(MM_NOOP);
        m->nchild = 1;
    }
    if (!m->q_off || !m->kv_off || !m->child || !m->child[0]) {
        nsa_mask_mod_free(m);
        return nsa_error(NSA_ERR_OUT_OF_MEMORY, "out of memory allocating a mask_mod");
    }
    *out = m;
    return NSA_SUCCESS;
}

static nsa_status combine(mm_kind kind, const nsa_mask_mod *const *mods, int32_t count,
                          nsa_mask_mod **out)
{
    nsa_mask_mod tmp, *m;
    int32_t i;
    if (!out)
        return nsa_error(NSA_ERR_NULL_POINTER, "out must not be NULL");
    *out = NULL;
    if (count < 0)
        return nsa_error(NSA_ERR_INVALID_ARGUMENT, "count must be >= 0, got %d", (int)count);
    if (count > 0 && !mods)
        return nsa_error(NSA_ERR_NULL_POINTER, "mods must not be NULL when count (%d) > 0",
                         (int)count);
    for (i = 0; i < count; i++)
        if (!mods[i])
            return nsa_error(NSA_ERR_NULL_POINTER, "mods[%d] must not be NULL", (int)i);
    /* a combinator is its kind and its children; cloning one made on the stack deep-copies
     * mods (the cast drops const only for the struct field: clone reads the children) */
    memset(&tmp, 0, sizeof(tmp));
    tmp.kind = kind;
    tmp.child = (nsa_mask_mod **)mods;
    tmp.nchild = count;
    m = nsa_mask_mod_clone(&tmp);
    if (!m)
        return nsa_error(NSA_ERR_OUT_OF_MEMORY, "out of memory allocating a mask_mod");
    *out = m;
    return NSA_SUCCESS;
}

nsa_status nsa_mask_mod_and(const nsa_mask_mod *const *mods, int32_t count, nsa_mask_mod **out)
{
    nsa_clear_error();
    return combine(MM_AND, mods, count, out);
}

nsa_status nsa_mask_mod_or(const nsa_mask_mod *const *mods, int32_t count, nsa_mask_mod **out)
{
    nsa_clear_error();
    return combine(MM_OR, mods, count, out);
}

nsa_status nsa_mask_mod_not(const nsa_mask_mod *mod, nsa_mask_mod **out)
{
    nsa_clear_error();
    if (!mod)
        return nsa_error(NSA_ERR_NULL_POINTER, "mod must not be NULL");
    return combine(MM_NOT, &mod, 1, out);
}

/* ---- evaluation -------------------------------------------------------------------------- */

/* Sequence holding position t: the last s in [0, n) with off[s] <= t (searchsorted right). */
static int64_t seq_of(const int64_t *off, int64_t n, int64_t t)
{
    int64_t lo = 0, hi = n - 1;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo + 1) / 2;
        if (off[mid] <= t)
            lo = mid;
        else
            hi = mid - 1;
    }
    return lo;
}

static void offsets_row(const nsa_mask_mod *m, int64_t h, int64_t q, int64_t kv0, int32_t n,
                        uint8_t *keep)
{
    int64_t sq = seq_of(m->q_off, m->num_seqs, q);
    int64_t lo = m->kv_off[sq], hi = m->kv_off[sq + 1]; /* keys of q's sequence */
    int64_t a = kv0 > lo ? kv0 : lo, e = kv0 + n < hi ? kv0 + n : hi;
    memset(keep, 0, (size_t)n);
    if (a < e)
        nsa_mask_mod_row(m->child[0], sq, h, q - m->q_off[sq], a - lo, (int32_t)(e - a),
                         keep + (a - kv0));
}

void nsa_mask_mod_row(const nsa_mask_mod *m, int64_t b, int64_t h, int64_t q, int64_t kv0,
                      int32_t n, uint8_t *keep)
{
    int32_t j, c, j0;
    uint8_t tmp[ROW_CHUNK];
    switch (m->kind) {
    case MM_NOOP:
        memset(keep, 1, (size_t)n);
        break;
    case MM_CAUSAL:
        for (j = 0; j < n; j++)
            keep[j] = kv0 + j <= q;
        break;
    case MM_SLIDING:
        for (j = 0; j < n; j++)
            keep[j] = kv0 + j <= q && q - (kv0 + j) < m->param;
        break;
    case MM_PREFIX:
        for (j = 0; j < n; j++)
            keep[j] = kv0 + j < m->param || kv0 + j <= q;
        break;
    case MM_DOC_IDS:
        for (j = 0; j < n; j++)
            keep[j] = m->q_ids[q] == m->kv_ids[kv0 + j];
        break;
    case MM_DOC_OFFSETS:
        offsets_row(m, h, q, kv0, n, keep);
        break;
    case MM_AND:
    case MM_OR:
        memset(keep, m->kind == MM_AND, (size_t)n);
        for (j0 = 0; j0 < n; j0 += ROW_CHUNK) {
            int32_t len = n - j0 < ROW_CHUNK ? n - j0 : ROW_CHUNK;
            for (c = 0; c < m->nchild; c++) {
                nsa_mask_mod_row(m->child[c], b, h, q, kv0 + j0, len, tmp);
                for (j = 0; j < len; j++)
                    keep[j0 + j] = m->kind == MM_AND ? (keep[j0 + j] & tmp[j])
                                                     : (keep[j0 + j] | tmp[j]);
            }
        }
        break;
    case MM_NOT:
        nsa_mask_mod_row(m->child[0], b, h, q, kv0, n, keep);
        for (j = 0; j < n; j++)
            keep[j] = !keep[j];
        break;
    case MM_CALLBACK:
        m->fn(m->user, b, h, q, kv0, n, keep);
        for (j = 0; j < n; j++) /* any nonzero byte means "attend" */
            keep[j] = keep[j] != 0;
        break;
    }
}

/* Cell-by-cell class of a rectangle, stopping as soon as both values were seen. */
static int classify_cells(const nsa_mask_mod *m, int64_t b, int64_t h, int64_t q0, int64_t q1,
                          int64_t k0, int64_t k1)
{
    uint8_t buf[ROW_CHUNK];
    int seen_true = 0, seen_false = 0;
    int64_t q, k;
    int32_t j;
    for (q = q0; q <= q1; q++) {
        for (k = k0; k <= k1; k += ROW_CHUNK) {
            int32_t n = k1 - k + 1 < ROW_CHUNK ? (int32_t)(k1 - k + 1) : ROW_CHUNK;
            nsa_mask_mod_row(m, b, h, q, k, n, buf);
            for (j = 0; j < n; j++) {
                seen_true |= buf[j] != 0;
                seen_false |= buf[j] == 0;
            }
            if (seen_true && seen_false)
                return NSA_BLK_PARTIAL;
        }
    }
    return seen_true ? NSA_BLK_FULL : NSA_BLK_EMPTY;
}

/* First index i in [lo, hi] with ids[i] >= v (ids non-decreasing), hi + 1 if none. */
static int64_t first_ge(const int64_t *ids, int64_t lo, int64_t hi, int64_t v)
{
    int64_t end = hi + 1;
    while (lo < end) {
        int64_t mid = lo + (end - lo) / 2;
        if (ids[mid] < v)
            lo = mid + 1;
        else
            end = mid;
    }
    return lo;
}

static int classify_sorted_ids(const nsa_mask_mod *m, int64_t q0, int64_t q1, int64_t k0,
                               int64_t k1)
{
    const int64_t *qi = m->q_ids, *ki = m->kv_ids;
    int64_t v;
    if (qi[q0] == qi[q1] && ki[k0] == ki[k1] && qi[q0] == ki[k0])
        return NSA_BLK_FULL;
    /* some cell differs; look for an id present on both sides */
    v = qi[q0] > ki[k0] ? qi[q0] : ki[k0];
    for (;;) {
        int64_t iq = first_ge(qi, q0, q1, v), ik = first_ge(ki, k0, k1, v);
        if (iq > q1 || ik > k1)
            return NSA_BLK_EMPTY;
        if (qi[iq] == ki[ik])
            return NSA_BLK_PARTIAL;
        v = qi[iq] > ki[ik] ? qi[iq] : ki[ik];
    }
}

static int classify_offsets(const nsa_mask_mod *m, int64_t h, int64_t q0, int64_t q1, int64_t k0,
                            int64_t k1)
{
    int64_t sq0 = seq_of(m->q_off, m->num_seqs, q0), sq1 = seq_of(m->q_off, m->num_seqs, q1);
    int64_t sk0 = seq_of(m->kv_off, m->num_seqs, k0), sk1 = seq_of(m->kv_off, m->num_seqs, k1);
    int64_t s, lo = sq0 > sk0 ? sq0 : sk0, hi = sq1 < sk1 ? sq1 : sk1;
    if (sq0 == sq1 && sk0 == sk1 && sq0 == sk0)
        return nsa_mask_mod_classify(m->child[0], sq0, h, q0 - m->q_off[sq0], q1 - m->q_off[sq0],
                                     k0 - m->kv_off[sq0], k1 - m->kv_off[sq0]);
    /* cross-sequence cells exist, so the block is never full */
    for (s = lo; s <= hi; s++) {
        int64_t a0 = q0 > m->q_off[s] ? q0 : m->q_off[s];
        int64_t a1 = q1 < m->q_off[s + 1] - 1 ? q1 : m->q_off[s + 1] - 1;
        int64_t c0 = k0 > m->kv_off[s] ? k0 : m->kv_off[s];
        int64_t c1 = k1 < m->kv_off[s + 1] - 1 ? k1 : m->kv_off[s + 1] - 1;
        if (a0 > a1 || c0 > c1)
            continue;
        if (nsa_mask_mod_classify(m->child[0], s, h, a0 - m->q_off[s], a1 - m->q_off[s],
                                  c0 - m->kv_off[s], c1 - m->kv_off[s]) != NSA_BLK_EMPTY)
            return NSA_BLK_PARTIAL;
    }
    return NSA_BLK_EMPTY;
}

/* and / or: decided from the children's classes when possible, else cell by cell. */
static int classify_combinator(const nsa_mask_mod *m, int64_t b, int64_t h, int64_t q0,
                               int64_t q1, int64_t k0, int64_t k1)
{
    const int absorbing = m->kind == MM_AND ? NSA_BLK_EMPTY : NSA_BLK_FULL;
    const int neutral = m->kind == MM_AND ? NSA_BLK_FULL : NSA_BLK_EMPTY;
    int32_t c, undecided = 0;
    for (c = 0; c < m->nchild; c++) {
        int cls = nsa_mask_mod_classify(m->child[c], b, h, q0, q1, k0, k1);
        if (cls == absorbing)
            return absorbing;
        undecided += cls != neutral;
    }
    if (undecided == 0)
        return neutral;
    if (undecided == 1)
        return NSA_BLK_PARTIAL; /* the one partial child decides */
    return classify_cells(m, b, h, q0, q1, k0, k1);
}

int nsa_mask_mod_classify(const nsa_mask_mod *m, int64_t b, int64_t h, int64_t q0, int64_t q1,
                          int64_t k0, int64_t k1)
{
    int cls;
    switch (m->kind) {
    case MM_NOOP:
        return NSA_BLK_FULL;
    case MM_CAUSAL: /* kv <= q */
        if (k1 <= q0)
            return NSA_BLK_FULL;
        return k0 > q1 ? NSA_BLK_EMPTY : NSA_BLK_PARTIAL;
    case MM_SLIDING: /* 0 <= q - kv < W; q - kv spans [q0 - k1, q1 - k0] */
        if (q0 - k1 >= 0 && q1 - k0 < m->param)
            return NSA_BLK_FULL;
        return (q1 - k0 < 0 || q0 - k1 >= m->param) ? NSA_BLK_EMPTY : NSA_BLK_PARTIAL;
    case MM_PREFIX: /* kv < P or kv <= q */
        if (k1 < m->param || k1 <= q0)
            return NSA_BLK_FULL;
        return (k0 >= m->param && k0 > q1) ? NSA_BLK_EMPTY : NSA_BLK_PARTIAL;
    case MM_DOC_IDS:
        if (m->ids_sorted)
            return classify_sorted_ids(m, q0, q1, k0, k1);
        return classify_cells(m, b, h, q0, q1, k0, k1);
    case MM_DOC_OFFSETS:
        return classify_offsets(m, h, q0, q1, k0, k1);
    case MM_AND:
    case MM_OR:
        return classify_combinator(m, b, h, q0, q1, k0, k1);
    case MM_NOT:
        cls = nsa_mask_mod_classify(m->child[0], b, h, q0, q1, k0, k1);
        return cls == NSA_BLK_PARTIAL ? cls : (cls == NSA_BLK_FULL ? NSA_BLK_EMPTY : NSA_BLK_FULL);
    case MM_CALLBACK:
        break;
    }
    return classify_cells(m, b, h, q0, q1, k0, k1);
}

int nsa_mask_mod_is_analytic(const nsa_mask_mod *m)
{
    switch (m->kind) {
    case MM_NOOP:
    case MM_CAUSAL:
    case MM_SLIDING:
    case MM_PREFIX:
        return 1;
    case MM_DOC_IDS:
        return m->ids_sorted;
    case MM_DOC_OFFSETS:
    case MM_NOT:
        return nsa_mask_mod_is_analytic(m->child[0]);
    default:
        return 0;
    }
}

void nsa_mask_mod_classify_row(const nsa_mask_mod *m, int64_t b, int64_t h, int64_t q0,
                               int64_t q1, int64_t kv_block, int64_t kv_len, int64_t nk,
                               uint8_t *cls)
{
    int64_t kb;
    if (m->kind == MM_CAUSAL) {
        /* full while the block's last key <= q0, empty once its first key > q1 */
        int64_t nfull = (q0 + 1) / kv_block, nsome = q1 / kv_block + 1;
        nfull = nfull < nk ? nfull : nk;
        nsome = nsome < nk ? nsome : nk;
        memset(cls, NSA_BLK_FULL, (size_t)nfull);
        memset(cls + nfull, NSA_BLK_PARTIAL, (size_t)(nsome - nfull));
        memset(cls + nsome, NSA_BLK_EMPTY, (size_t)(nk - nsome));
        /* a ragged last block ends at kv_len - 1, not at its padded end */
        cls[nk - 1] = (uint8_t)nsa_mask_mod_classify(m, b, h, q0, q1, (nk - 1) * kv_block,
                                                     kv_len - 1);
        return;
    }
    for (kb = 0; kb < nk; kb++) {
        const int64_t k0 = kb * kv_block;
        const int64_t k1 = (k0 + kv_block < kv_len ? k0 + kv_block : kv_len) - 1;
        cls[kb] = (uint8_t)nsa_mask_mod_classify(m, b, h, q0, q1, k0, k1);
    }
}

/* Coverage check; `exact`: offsets must end exactly at the lengths (block masks and
 * attention), otherwise they must reach them (single evaluations). */
static nsa_status check_cover(const nsa_mask_mod *m, int64_t q_len, int64_t kv_len, int exact)
{
    int32_t c;
    switch (m->kind) {
    case MM_DOC_IDS:
        if (m->q_ids_len < q_len)
            return nsa_error(NSA_ERR_INVALID_ARGUMENT,
                             "doc_ids must hold an id for each of the %lld query positions, got "
                             "%lld",
                             (long long)q_len, (long long)m->q_ids_len);
        if (m->kv_ids_len < kv_len)
            return nsa_error(NSA_ERR_INVALID_ARGUMENT,
                             "kv_doc_ids must hold an id for each of the %lld key positions, got "
                             "%lld",
                             (long long)kv_len, (long long)m->kv_ids_len);
        return NSA_SUCCESS;
    case MM_DOC_OFFSETS: {
        int64_t qe = m->q_off[m->num_seqs], ke = m->kv_off[m->num_seqs], s, mq = 0, mk = 0;
        if (exact ? qe != q_len : qe < q_len)
            return nsa_error(NSA_ERR_INVALID_ARGUMENT,
                             "q_offsets[num_seqs] must equal the query length %lld, got %lld",
                             (long long)q_len, (long long)qe);
        if (exact ? ke != kv_len : ke < kv_len)
            return nsa_error(NSA_ERR_INVALID_ARGUMENT,
                             "kv_offsets[num_seqs] must equal the key length %lld, got %lld",
                             (long long)kv_len, (long long)ke);
        for (s = 0; s < m->num_seqs; s++) {
            if (m->q_off[s + 1] - m->q_off[s] > mq)
                mq = m->q_off[s + 1] - m->q_off[s];
            if (m->kv_off[s + 1] - m->kv_off[s] > mk)
                mk = m->kv_off[s + 1] - m->kv_off[s];
        }
        return check_cover(m->child[0], mq, mk, 0);
    }
    default:
        for (c = 0; c < m->nchild; c++) {
            nsa_status st = check_cover(m->child[c], q_len, kv_len, exact);
            if (st != NSA_SUCCESS)
                return st;
        }
        return NSA_SUCCESS;
    }
}

nsa_status nsa_mask_mod_check_lengths(const nsa_mask_mod *mod, int64_t q_len, int64_t kv_len)
{
    return check_cover(mod, q_len, kv_len, 1);
}

nsa_status nsa_mask_mod_eval(const nsa_mask_mod *mod, int64_t b, int64_t h, int64_t q_idx,
                             int64_t kv0, int32_t n, uint8_t *keep)
{
    nsa_status st;
    nsa_clear_error();
    if (!mod)
        return nsa_error(NSA_ERR_NULL_POINTER, "mod must not be NULL");
    if (!keep && n > 0)
        return nsa_error(NSA_ERR_NULL_POINTER, "keep must not be NULL");
    if (b < 0 || h < 0 || q_idx < 0 || kv0 < 0 || n < 0)
        return nsa_error(NSA_ERR_INVALID_ARGUMENT,
                         "b, h, q_idx, kv0 and n must be >= 0, got %lld, %lld, %lld, %lld, %d",
                         (long long)b, (long long)h, (long long)q_idx, (long long)kv0, (int)n);
    /* the coverage check and the row take q_idx + 1 and kv0 + n */
    if (q_idx == INT64_MAX || kv0 > INT64_MAX - n)
        return nsa_error(NSA_ERR_INVALID_ARGUMENT,
                         "q_idx + 1 and kv0 + n must not overflow int64, got %lld and %lld + %d",
                         (long long)q_idx, (long long)kv0, (int)n);
    st = check_cover(mod, q_idx + 1, kv0 + n, 0);
    if (st != NSA_SUCCESS)
        return st;
    if (n > 0)
        nsa_mask_mod_row(mod, b, h, q_idx, kv0, n, keep);
    return NSA_SUCCESS;
}
