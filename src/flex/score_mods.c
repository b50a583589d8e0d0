/* SPDX-License-Identifier: Apache-2.0 */
/* Built-in score_mods (ALiBi, tanh soft-cap, relative-position bias table) and callbacks. */
#include <math.h>
#include <stdlib.h>

#include "flex/flex_internal.h"
#include "tensor/tensor.h"

static nsa_status sm_new(sm_kind kind, nsa_score_mod **out, nsa_score_mod **m)
{
    if (!out)
        return nsa_error(NSA_ERR_NULL_POINTER, "out must not be NULL");
    *out = NULL;
    *m = (nsa_score_mod *)nsa_heap_calloc(1, sizeof(**m));
    if (!*m)
        return nsa_error(NSA_ERR_OUT_OF_MEMORY, "out of memory allocating a score_mod");
    (*m)->kind = kind;
    return NSA_SUCCESS;
}

void nsa_score_mod_free(nsa_score_mod *mod)
{
    if (!mod)
        return;
    nsa_heap_free(mod->table);
    nsa_heap_free(mod);
}

/* Copy a float32 tensor of rank 1 or 2 into a row-major table. */
static nsa_status copy_table(const nsa_tensor *t, const char *name, int32_t ndim,
                             nsa_score_mod *m)
{
    int64_t rows = ndim == 2 ? t->shape[0] : 1, cols = t->shape[ndim - 1], r, c;
    nsa_status st = nsa_check_tensor(t, name, ndim, NSA_DT(NSA_DTYPE_F32));
    if (st != NSA_SUCCESS)
        return st;
    if (t->shape[0] < 1 || t->shape[ndim - 1] < 1)
        return nsa_error(NSA_ERR_INVALID_ARGUMENT, "%s must not be empty", name);
    /* a broadcast (stride 0) table can hold more floats than size_t bytes can */
    m->table = (uint64_t)rows * (uint64_t)cols > SIZE_MAX / sizeof(float)
                   ? NULL
                   : (float *)nsa_heap_alloc((size_t)rows * (size_t)cols * sizeof(float), 16);
    if (!m->table)
        return nsa_error(NSA_ERR_OUT_OF_MEMORY, "out of memory copying %s", name);
    for (r = 0; r < rows; r++)
        for (c = 0; c < cols; c++)
            m->table[r * cols + c] =
                *(const float *)nsa_tensor_at(t, ndim == 2 ? r * t->stride[0] + c * t->stride[1]
                                                           : c * t->stride[0]);
    m->heads = ndim == 2 ? rows : cols;
    m->table_len = cols;
    return NSA_SUCCESS;
}

nsa_status nsa_score_mod_alibi(const nsa_tensor *slopes, int64_t num_heads, nsa_score_mod **out)
{
    nsa_score_mod *m;
    nsa_status st;
    int64_t h;
    nsa_clear_error();
    if (num_heads < 1)
        return nsa_error(NSA_ERR_INVALID_ARGUMENT, "num_heads must be >= 1, got %lld",
                         (long long)num_heads);
    if (slopes && slopes->ndim == 1 && slopes->shape[0] != num_heads)
        return nsa_error(NSA_ERR_INVALID_ARGUMENT,
                         "slopes.shape[0] must equal num_heads (= %lld), got %lld",
                         (long long)num_heads, (long long)slopes->shape[0]);
    st = sm_new(SM_ALIBI, out, &m);
    if (st != NSA_SUCCESS)
        return st;
    if (slopes) {
        st = copy_table(slopes, "slopes", 1, m);
    } else {
        m->table = (uint64_t)num_heads > SIZE_MAX / sizeof(float)
                       ? NULL
                       : (float *)nsa_heap_alloc((size_t)num_heads * sizeof(float), 16);
        if (!m->table)
            st = nsa_error(NSA_ERR_OUT_OF_MEMORY, "out of memory allocating ALiBi slopes");
        for (h = 0; m->table && h < num_heads; h++) /* attention-gym's 2^(-8 (h+1) / H) */
            m->table[h] = (float)exp2(-8.0 * (double)(h + 1) / (double)num_heads);
        m->heads = num_heads;
        m->default_slopes = 1;
    }
    if (st != NSA_SUCCESS) {
        nsa_score_mod_free(m);
        return st;
    }
    *out = m;
    return NSA_SUCCESS;
}

nsa_status nsa_score_mod_softcap(float cap, nsa_score_mod **out)
{
    nsa_score_mod *m;
    nsa_status st;
    nsa_clear_error();
    if (!(cap > 0.0f) || isinf(cap))
        return nsa_error(NSA_ERR_INVALID_ARGUMENT, "cap must be positive and finite, got %g",
                         (double)cap);
    st = sm_new(SM_SOFTCAP, out, &m);
    if (st != NSA_SUCCESS)
        return st;
    m->cap = cap;
    *out = m;
    return NSA_SUCCESS;
}

nsa_status nsa_score_mod_rel_bias(const nsa_tensor *table, nsa_score_mod **out)
{
    nsa_score_mod *m;
    nsa_status st;
    nsa_clear_error();
    st = sm_new(SM_REL_BIAS, out, &m);
    if (st != NSA_SUCCESS)
        return st;
    st = copy_table(table, "table", 2, m);
    if (st != NSA_SUCCESS) {
        nsa_score_mod_free(m);
        return st;
    }
    *out = m;
    return NSA_SUCCESS;
}

nsa_status nsa_score_mod_callback(nsa_score_mod_fn fn, void *user, nsa_score_mod **out)
{
    nsa_score_mod *m;
    nsa_status st;
    nsa_clear_error();
    if (!fn)
        return nsa_error(NSA_ERR_NULL_POINTER, "fn must not be NULL");
    st = sm_new(SM_CALLBACK, out, &m);
    if (st != NSA_SUCCESS)
        return st;
    m->fn = fn;
    m->user = user;
    *out = m;
    return NSA_SUCCESS;
}

nsa_status nsa_score_mod_check(const nsa_score_mod *m, int64_t heads, int64_t q_len,
                               int64_t kv_len)
{
    if (m->kind == SM_ALIBI && m->heads != heads)
        return nsa_error(NSA_ERR_INVALID_ARGUMENT,
                         "score_mod: ALiBi was made for %lld heads, the query has %lld",
                         (long long)m->heads, (long long)heads);
    if (m->kind == SM_REL_BIAS) {
        if (m->heads != 1 && m->heads != heads)
            return nsa_error(NSA_ERR_INVALID_ARGUMENT,
                             "score_mod: rel_bias table.shape[0] must be 1 or the query heads "
                             "(%lld), got %lld",
                             (long long)heads, (long long)m->heads);
        if (m->table_len < q_len + kv_len - 1)
            return nsa_error(NSA_ERR_INVALID_ARGUMENT,
                             "score_mod: rel_bias table.shape[1] must be >= L + S - 1 (= %lld), "
                             "got %lld",
                             (long long)(q_len + kv_len - 1), (long long)m->table_len);
    }
    return NSA_SUCCESS;
}

void nsa_score_mod_row(const nsa_score_mod *m, int64_t b, int64_t h, int64_t q, int64_t kv0,
                       int32_t n, int64_t kv_len, float *s)
{
    int32_t j;
    switch (m->kind) {
    case SM_ALIBI: {
        const float slope = m->table[h];
        for (j = 0; j < n; j++)
            s[j] += slope * (float)(kv0 + j - q);
        break;
    }
    case SM_SOFTCAP: {
        const float cap = m->cap;
        for (j = 0; j < n; j++)
            s[j] = cap * tanhf(s[j] / cap);
        break;
    }
    case SM_REL_BIAS: {
        /* table[h, q - kv + S - 1]: the index falls by one per key */
        const float *row = m->table + (m->heads == 1 ? 0 : h) * m->table_len + (q - kv0 + kv_len - 1);
        for (j = 0; j < n; j++)
            s[j] += row[-j];
        break;
    }
    case SM_CALLBACK:
        m->fn(m->user, b, h, q, kv0, n, s);
        break;
    }
}
