/* SPDX-License-Identifier: Apache-2.0 */
/* docs/errors.md, src/ops/{compress,compress_attention,select_attention}.c: one case per rule
 * (see tests/common/error_rows.h). */
#include <limits.h>
#include <stdlib.h>

#include "core/internal.h"
#include "error_rows.h"

/* ---- shared ------------------------------------------------------------------------------ */

/* Every input broadcasts this one zero (all strides 0): no rule reads input values, and long
 * sequences cost no memory. */
static float g_zero[1];

static nsa_tensor bcast(void *data, nsa_dtype dt, int32_t ndim, int64_t a, int64_t b, int64_t d)
{
    const int64_t shape[3] = {a, b, d}, stride[3] = {0, 0, 0};
    return nsa_tensor_strided(data, dt, ndim, shape, stride);
}

static nsa_tensor input(nsa_dtype dt, int64_t a, int64_t b, int64_t d)
{
    return bcast(g_zero, dt, 3, a, b, d);
}

/* A zeroed contiguous (a, b, d) output. */
static nsa_tensor output(err_call *c, nsa_dtype dt, int64_t a, int64_t b, int64_t d)
{
    const int64_t shape[3] = {a, b, d};
    return nsa_tensor_contiguous(err_alloc(c, (size_t)(a * b * d) * nsa_dtype_size(dt)), dt, 3,
                                 shape);
}

static void watch(err_call *c, const nsa_tensor *t)
{
    err_watch(c, t->data, (size_t)nsa_tensor_numel(t) * nsa_dtype_size(t->dtype));
}

static nsa_dtype dtype_of(int strict)
{
    return strict ? NSA_DTYPE_F16 : NSA_DTYPE_F32;
}

static nsa_validation level_of(int strict)
{
    return strict ? NSA_VALIDATE_STRICT : NSA_VALIDATE_DEFAULT;
}

/* ---- nsa_compress: 64 tokens, 1 head, D = 16, l = 32, d = 16 (3 windows) ------------------ */

typedef struct cp_fx {
    int64_t cum[2];
    nsa_tensor in, w, out;
    nsa_compress_params p;
} cp_fx;

/* f16 at the strict level, which rejects f32. */
static cp_fx *cp_new(err_call *c, int strict)
{
    cp_fx *f = (cp_fx *)err_alloc(c, sizeof *f);
    f->cum[0] = 64;
    f->in = input(dtype_of(strict), 64, 1, 16);
    f->w = bcast(g_zero, dtype_of(strict), 2, 32, 1, 1);
    f->out = output(c, NSA_DTYPE_F32, 3, 1, 16);
    f->p = nsa_compress_params_default();
    f->p.actual_seq_len = f->cum;
    f->p.actual_seq_len_count = 1;
    f->p.validation = level_of(strict);
    return f;
}

/* N heads of D channels, the weight and the output to match. */
static void cp_shape(err_call *c, cp_fx *f, int64_t n, int64_t d)
{
    f->in.shape[1] = f->w.shape[1] = n;
    f->in.shape[2] = d;
    f->out = output(c, NSA_DTYPE_F32, 3, n, d);
}

static nsa_status cp_run(err_call *c, cp_fx *f)
{
    watch(c, &f->out);
    return nsa_compress(NULL, &f->in, &f->w, &f->p, &f->out);
}

static nsa_status cp_params_null(err_call *c)
{
    cp_fx *f = cp_new(c, 0);
    watch(c, &f->out);
    return nsa_compress(NULL, &f->in, &f->w, NULL, &f->out);
}

static nsa_status cp_seq_null(err_call *c)
{
    cp_fx *f = cp_new(c, 0);
    f->p.actual_seq_len = NULL;
    return cp_run(c, f);
}

static nsa_status cp_seq_count(err_call *c)
{
    cp_fx *f = cp_new(c, 0);
    f->p.actual_seq_len_count = 0;
    return cp_run(c, f);
}

static nsa_status cp_l_not16(err_call *c)
{
    cp_fx *f = cp_new(c, 0);
    f->p.compress_block_size = 40;
    return cp_run(c, f);
}

static nsa_status cp_d_not16(err_call *c)
{
    cp_fx *f = cp_new(c, 0);
    f->p.compress_stride = 24;
    return cp_run(c, f);
}

static nsa_status cp_d_zero(err_call *c)
{
    cp_fx *f = cp_new(c, 0);
    f->p.compress_stride = 0;
    return cp_run(c, f);
}

static nsa_status cp_l_big(err_call *c)
{
    cp_fx *f = cp_new(c, 0);
    f->p.compress_block_size = 144;
    return cp_run(c, f);
}

static nsa_status cp_d_over_l(err_call *c)
{
    cp_fx *f = cp_new(c, 0);
    f->p.compress_stride = 48;
    return cp_run(c, f);
}

static nsa_status cp_rows_null(err_call *c)
{
    return nsa_compress_output_rows(&cp_new(c, 0)->p, NULL);
}

/* Only nsa_compress_output_rows reaches this: nsa_compress checks l and d more strictly. */
static nsa_status cp_rows_l_zero(err_call *c)
{
    cp_fx *f = cp_new(c, 0);
    int64_t *rows = (int64_t *)err_alloc(c, sizeof *rows);
    f->p.compress_block_size = 0;
    err_watch(c, rows, sizeof *rows);
    return nsa_compress_output_rows(&f->p, rows);
}

static nsa_status cp_weight_dtype(err_call *c)
{
    cp_fx *f = cp_new(c, 0);
    f->w.dtype = NSA_DTYPE_F16;
    return cp_run(c, f);
}

static nsa_status cp_no_heads(err_call *c)
{
    cp_fx *f = cp_new(c, 0);
    cp_shape(c, f, 0, 16);
    return cp_run(c, f);
}

static nsa_status cp_no_dim(err_call *c)
{
    cp_fx *f = cp_new(c, 0);
    cp_shape(c, f, 1, 0);
    return cp_run(c, f);
}

static nsa_status cp_seq_short(err_call *c)
{
    cp_fx *f = cp_new(c, 0);
    f->cum[0] = 48;
    return cp_run(c, f);
}

static nsa_status cp_strict_f32(err_call *c)
{
    cp_fx *f = cp_new(c, 0);
    f->p.validation = NSA_VALIDATE_STRICT;
    return cp_run(c, f);
}

static nsa_status cp_strict_d16(err_call *c)
{
    cp_fx *f = cp_new(c, 1);
    cp_shape(c, f, 1, 8);
    return cp_run(c, f);
}

static nsa_status cp_strict_d256(err_call *c)
{
    cp_fx *f = cp_new(c, 1);
    cp_shape(c, f, 1, 272);
    return cp_run(c, f);
}

static nsa_status cp_strict_heads(err_call *c)
{
    cp_fx *f = cp_new(c, 1);
    cp_shape(c, f, 129, 16);
    return cp_run(c, f);
}

static nsa_status cp_strict_empty(err_call *c)
{
    cp_fx *f = cp_new(c, 1);
    f->cum[0] = 0;
    f->cum[1] = 64;
    f->p.actual_seq_len_count = 2;
    return cp_run(c, f);
}

static nsa_status cp_ws_null(err_call *c)
{
    cp_fx *f = cp_new(c, 0);
    return nsa_compress_workspace_size(NULL, &f->in, &f->p, NULL);
}

static nsa_status cp_ws_oom(err_call *c)
{
    cp_fx *f = cp_new(c, 0);
    size_t *size = (size_t *)err_alloc(c, sizeof *size);
    err_watch(c, size, sizeof *size);
    err_fail_default_context(c);
    return nsa_compress_workspace_size(NULL, &f->in, &f->p, size);
}

static nsa_status cp_oom(err_call *c)
{
    cp_fx *f = cp_new(c, 0);
    err_fail_default_context(c);
    return cp_run(c, f);
}

/* ---- nsa_compress_attention: 2 tokens, 2 query heads over 1 kv head, D = Dv = 16, 64
 * compressed keys; the default l = 32, d = 16, l' = 64, k = 16 (16 selection blocks) ------- */

typedef struct ca_fx {
    int64_t cum_q[1], cum_kv[1], cum_sel[2];
    nsa_tensor q, k, v, out, topk, smax, ssum;
    nsa_compress_attention_params p;
} ca_fx;

/* Outputs shaped for the current inputs and k. */
static void ca_outputs(err_call *c, ca_fx *f)
{
    const int64_t t1 = f->q.shape[0], n1 = f->q.shape[1];
    f->out = output(c, f->q.dtype, t1, n1, f->v.shape[2]);
    f->topk = output(c, NSA_DTYPE_I32, t1, f->k.shape[1], f->p.select_block_count);
    f->smax = output(c, NSA_DTYPE_F32, t1, n1, 8);
    f->ssum = output(c, NSA_DTYPE_F32, t1, n1, 8);
}

/* N1 query heads (head_num too) over N2 kv heads, head dims D and Dv, outputs to match. */
static void ca_shape(err_call *c, ca_fx *f, int64_t n1, int64_t n2, int64_t d, int64_t dv)
{
    f->q.shape[1] = f->p.head_num = n1;
    f->k.shape[1] = f->v.shape[1] = n2;
    f->q.shape[2] = f->k.shape[2] = d;
    f->v.shape[2] = dv;
    ca_outputs(c, f);
}

static ca_fx *ca_new(err_call *c, int strict)
{
    ca_fx *f = (ca_fx *)err_alloc(c, sizeof *f);
    const nsa_dtype dt = dtype_of(strict);
    f->cum_q[0] = 2;
    f->cum_kv[0] = 64;
    f->q = input(dt, 2, 2, 16);
    f->k = input(dt, 64, 1, 16);
    f->v = input(dt, 64, 1, 16);
    f->p = nsa_compress_attention_params_default();
    f->p.head_num = 2;
    f->p.actual_seq_qlen = f->cum_q;
    f->p.actual_cmp_seq_kvlen = f->cum_kv;
    f->p.actual_seq_qlen_count = f->p.actual_cmp_seq_kvlen_count = 1;
    f->p.validation = level_of(strict);
    ca_outputs(c, f);
    return f;
}

static nsa_status ca_call(err_call *c, ca_fx *f, const nsa_compress_attention_params *p)
{
    watch(c, &f->out);
    watch(c, &f->topk);
    watch(c, &f->smax);
    watch(c, &f->ssum);
    return nsa_compress_attention(NULL, &f->q, &f->k, &f->v, NULL, NULL, p, &f->out, &f->topk,
                                  &f->smax, &f->ssum);
}

static nsa_status ca_run(err_call *c, ca_fx *f)
{
    return ca_call(c, f, &f->p);
}

/* The compressed keys of the one batch. */
static void ca_keys(ca_fx *f, int64_t t2)
{
    f->k.shape[0] = f->v.shape[0] = f->cum_kv[0] = t2;
}

static nsa_status ca_l_bad(err_call *c)
{
    ca_fx *f = ca_new(c, 0);
    f->p.compress_block_size = 40;
    return ca_run(c, f);
}

static nsa_status ca_d_bad(err_call *c)
{
    ca_fx *f = ca_new(c, 0);
    f->p.compress_stride = 80;
    return ca_run(c, f);
}

static nsa_status ca_ls_bad(err_call *c)
{
    ca_fx *f = ca_new(c, 0);
    f->p.select_block_size = 144;
    return ca_run(c, f);
}

static nsa_status ca_l_under_d(err_call *c)
{
    ca_fx *f = ca_new(c, 0);
    f->p.compress_block_size = 16;
    f->p.compress_stride = 32;
    return ca_run(c, f);
}

static nsa_status ca_ls_under_l(err_call *c)
{
    ca_fx *f = ca_new(c, 0);
    f->p.compress_block_size = 128;
    return ca_run(c, f);
}

static nsa_status ca_ls_not_d(err_call *c)
{
    ca_fx *f = ca_new(c, 0);
    f->p.compress_block_size = f->p.compress_stride = 48;
    return ca_run(c, f);
}

static nsa_status ca_k_bad(err_call *c)
{
    ca_fx *f = ca_new(c, 0);
    f->p.select_block_count = 0;
    return ca_run(c, f);
}

static nsa_status ca_qlen_null(err_call *c)
{
    ca_fx *f = ca_new(c, 0);
    f->p.actual_seq_qlen = NULL;
    return ca_run(c, f);
}

static nsa_status ca_kvlen_null(err_call *c)
{
    ca_fx *f = ca_new(c, 0);
    f->p.actual_cmp_seq_kvlen = NULL;
    return ca_run(c, f);
}

static nsa_status ca_qlen_count(err_call *c)
{
    ca_fx *f = ca_new(c, 0);
    f->p.actual_seq_qlen_count = 0;
    return ca_run(c, f);
}

static nsa_status ca_kvlen_count(err_call *c)
{
    ca_fx *f = ca_new(c, 0);
    f->p.actual_cmp_seq_kvlen_count = 2;
    return ca_run(c, f);
}

static nsa_status ca_sel_count(err_call *c)
{
    ca_fx *f = ca_new(c, 0);
    f->cum_sel[0] = 16;
    f->p.actual_sel_seq_kvlen = f->cum_sel;
    f->p.actual_sel_seq_kvlen_count = 2;
    return ca_run(c, f);
}

static nsa_status ca_sel_value(err_call *c)
{
    ca_fx *f = ca_new(c, 0);
    f->cum_sel[0] = 15; /* ceil(64 / (64 / 16)) = 16 */
    f->p.actual_sel_seq_kvlen = f->cum_sel;
    f->p.actual_sel_seq_kvlen_count = 1;
    return ca_run(c, f);
}

static nsa_status ca_keys_int32(err_call *c)
{
    ca_fx *f = ca_new(c, 0);
    ca_keys(f, (int64_t)1 << 31);
    return ca_run(c, f);
}

static nsa_status ca_k_over_blocks(err_call *c)
{
    ca_fx *f = ca_new(c, 0);
    ca_keys(f, 32); /* 8 selection blocks */
    return ca_run(c, f);
}

static nsa_status ca_strict_f32(err_call *c)
{
    ca_fx *f = ca_new(c, 0);
    f->p.validation = NSA_VALIDATE_STRICT;
    return ca_run(c, f);
}

static nsa_status ca_strict_dims(err_call *c)
{
    ca_fx *f = ca_new(c, 1);
    ca_shape(c, f, 2, 1, 16, 8);
    return ca_run(c, f);
}

static nsa_status ca_strict_params(err_call *c)
{
    ca_fx *f = ca_new(c, 1);
    f->p.select_block_count = 8;
    ca_outputs(c, f);
    return ca_run(c, f);
}

static nsa_status ca_strict_keys(err_call *c)
{
    ca_fx *f = ca_new(c, 1);
    ca_keys(f, 14001);
    return ca_run(c, f);
}

static nsa_status ca_params_null(err_call *c)
{
    return ca_call(c, ca_new(c, 0), NULL);
}

static nsa_status ca_dtypes(err_call *c)
{
    ca_fx *f = ca_new(c, 0);
    f->k.dtype = NSA_DTYPE_F16;
    return ca_run(c, f);
}

static nsa_status ca_head_num_zero(err_call *c)
{
    ca_fx *f = ca_new(c, 0);
    f->p.head_num = 0;
    return ca_run(c, f);
}

static nsa_status ca_head_num_diff(err_call *c)
{
    ca_fx *f = ca_new(c, 0);
    f->p.head_num = 4;
    return ca_run(c, f);
}

static nsa_status ca_no_kv_heads(err_call *c)
{
    ca_fx *f = ca_new(c, 0);
    ca_shape(c, f, 2, 0, 16, 16);
    return ca_run(c, f);
}

static nsa_status ca_heads_ratio(err_call *c)
{
    ca_fx *f = ca_new(c, 0);
    ca_shape(c, f, 2, 3, 16, 16);
    return ca_run(c, f);
}

static nsa_status ca_group_pow2(err_call *c)
{
    ca_fx *f = ca_new(c, 0);
    ca_shape(c, f, 3, 1, 16, 16);
    return ca_run(c, f);
}

static nsa_status ca_d_range(err_call *c)
{
    ca_fx *f = ca_new(c, 0);
    ca_shape(c, f, 2, 1, 769, 16);
    return ca_run(c, f);
}

static nsa_status ca_dv_range(err_call *c)
{
    ca_fx *f = ca_new(c, 0);
    ca_shape(c, f, 2, 1, 16, 32);
    return ca_run(c, f);
}

static nsa_status ca_ws_null(err_call *c)
{
    ca_fx *f = ca_new(c, 0);
    return nsa_compress_attention_workspace_size(NULL, &f->q, &f->k, &f->v, &f->p, NULL);
}

static nsa_status ca_ws_oom(err_call *c)
{
    ca_fx *f = ca_new(c, 0);
    size_t *size = (size_t *)err_alloc(c, sizeof *size);
    err_watch(c, size, sizeof *size);
    err_fail_default_context(c);
    return nsa_compress_attention_workspace_size(NULL, &f->q, &f->k, &f->v, &f->p, size);
}

static nsa_status ca_oom(err_call *c)
{
    ca_fx *f = ca_new(c, 0);
    err_fail_default_context(c);
    return ca_run(c, f);
}

/* ---- nsa_select_attention: default level 2 tokens, 2 query heads over 1 kv head, D = Dv =
 * 16, 128 keys (2 blocks of l' = 64, k = 16); strict level 1 token, 1 head, f16, D = 192,
 * Dv = 128, 1024 keys (its only l', k, D and Dv; 16 blocks) ------------------------------- */

typedef struct sa_fx {
    int64_t cum_q[1025], cum_kv[1025];
    int32_t idx; /* every topk index: topk_indices broadcasts it */
    nsa_tensor q, k, v, topk, out, smax, ssum;
    nsa_select_attention_params p;
} sa_fx;

/* Outputs shaped for the current query and value. */
static void sa_outputs(err_call *c, sa_fx *f)
{
    const int64_t t1 = f->q.shape[0], n1 = f->q.shape[1];
    f->out = output(c, f->q.dtype, t1, n1, f->v.shape[2]);
    f->smax = output(c, NSA_DTYPE_F32, t1, n1, 8);
    f->ssum = output(c, NSA_DTYPE_F32, t1, n1, 8);
}

/* N1 query heads over N2 kv heads, head dims D and Dv, outputs to match. */
static void sa_shape(err_call *c, sa_fx *f, int64_t n1, int64_t n2, int64_t d, int64_t dv)
{
    f->q.shape[1] = n1;
    f->k.shape[1] = f->v.shape[1] = f->topk.shape[1] = n2;
    f->q.shape[2] = f->k.shape[2] = d;
    f->v.shape[2] = dv;
    sa_outputs(c, f);
}

static sa_fx *sa_new(err_call *c, int strict)
{
    sa_fx *f = (sa_fx *)err_alloc(c, sizeof *f);
    const nsa_dtype dt = dtype_of(strict);
    const int64_t t1 = strict ? 1 : 2, n1 = t1, d = strict ? 192 : 16, dv = strict ? 128 : 16;
    f->cum_q[0] = t1;
    f->cum_kv[0] = strict ? 1024 : 128;
    f->q = input(dt, t1, n1, d);
    f->k = input(dt, f->cum_kv[0], 1, d);
    f->v = input(dt, f->cum_kv[0], 1, dv);
    f->topk = bcast(&f->idx, NSA_DTYPE_I32, 3, t1, 1, 16);
    sa_outputs(c, f);
    f->p = nsa_select_attention_params_default();
    f->p.actual_seq_qlen = f->cum_q;
    f->p.actual_seq_kvlen = f->cum_kv;
    f->p.actual_seq_qlen_count = f->p.actual_seq_kvlen_count = 1;
    f->p.validation = level_of(strict);
    return f;
}

static nsa_status sa_call(err_call *c, nsa_context *ctx, sa_fx *f,
                          const nsa_select_attention_params *p)
{
    watch(c, &f->out);
    watch(c, &f->smax);
    watch(c, &f->ssum);
    return nsa_select_attention(ctx, &f->q, &f->k, &f->v, &f->topk, p, &f->out, &f->smax,
                                &f->ssum);
}

static nsa_status sa_run(err_call *c, sa_fx *f)
{
    return sa_call(c, NULL, f, &f->p);
}

/* Query tokens of the one batch. */
static void sa_tokens(err_call *c, sa_fx *f, int64_t t1)
{
    f->q.shape[0] = f->topk.shape[0] = f->cum_q[0] = t1;
    sa_outputs(c, f);
}

static void sa_keys(sa_fx *f, int64_t t2)
{
    f->k.shape[0] = f->v.shape[0] = f->cum_kv[0] = t2;
}

static nsa_status sa_dtypes(err_call *c)
{
    sa_fx *f = sa_new(c, 0);
    f->k.dtype = NSA_DTYPE_F16;
    return sa_run(c, f);
}

static nsa_status sa_ls_not16(err_call *c)
{
    sa_fx *f = sa_new(c, 0);
    f->p.select_block_size = 24;
    return sa_run(c, f);
}

static nsa_status sa_ls_range(err_call *c)
{
    sa_fx *f = sa_new(c, 0);
    f->p.select_block_size = 144;
    return sa_run(c, f);
}

static nsa_status sa_k_range(err_call *c)
{
    sa_fx *f = sa_new(c, 0);
    f->p.select_block_count = 33;
    return sa_run(c, f);
}

static nsa_status sa_sparse_mode(err_call *c)
{
    sa_fx *f = sa_new(c, 0);
    f->p.sparse_mode = 1;
    return sa_run(c, f);
}

static nsa_status sa_validation(err_call *c)
{
    sa_fx *f = sa_new(c, 0);
    f->p.validation = (nsa_validation)7;
    return sa_run(c, f);
}

static nsa_status sa_scale(err_call *c)
{
    sa_fx *f = sa_new(c, 0);
    f->p.scale_value = 1e39; /* finite as a double, not as a float32 */
    return sa_run(c, f);
}

static nsa_status sa_qlen_null(err_call *c)
{
    sa_fx *f = sa_new(c, 0);
    f->p.actual_seq_qlen = NULL;
    return sa_run(c, f);
}

static nsa_status sa_kvlen_null(err_call *c)
{
    sa_fx *f = sa_new(c, 0);
    f->p.actual_seq_kvlen = NULL;
    return sa_run(c, f);
}

static nsa_status sa_qlen_count(err_call *c)
{
    sa_fx *f = sa_new(c, 0);
    f->p.actual_seq_qlen_count = 0;
    return sa_run(c, f);
}

static nsa_status sa_kvlen_count(err_call *c)
{
    sa_fx *f = sa_new(c, 0);
    f->p.actual_seq_kvlen_count = 2;
    return sa_run(c, f);
}

static nsa_status sa_strict_f32(err_call *c)
{
    sa_fx *f = sa_new(c, 0);
    f->p.validation = NSA_VALIDATE_STRICT;
    return sa_run(c, f);
}

static nsa_status sa_strict_out_dtype(err_call *c)
{
    sa_fx *f = sa_new(c, 1);
    f->out = output(c, NSA_DTYPE_F32, 1, 1, 128);
    return sa_run(c, f);
}

static nsa_status sa_strict_ls(err_call *c)
{
    sa_fx *f = sa_new(c, 1);
    f->p.select_block_size = 32;
    return sa_run(c, f);
}

static nsa_status sa_strict_k(err_call *c)
{
    sa_fx *f = sa_new(c, 1);
    f->p.select_block_count = f->topk.shape[2] = 8;
    return sa_run(c, f);
}

static nsa_status sa_strict_d(err_call *c)
{
    sa_fx *f = sa_new(c, 1);
    sa_shape(c, f, 1, 1, 128, 128);
    return sa_run(c, f);
}

static nsa_status sa_strict_dv(err_call *c)
{
    sa_fx *f = sa_new(c, 1);
    sa_shape(c, f, 1, 1, 192, 64);
    return sa_run(c, f);
}

static nsa_status sa_strict_group(err_call *c)
{
    sa_fx *f = sa_new(c, 1);
    sa_shape(c, f, 64, 1, 192, 128);
    return sa_run(c, f);
}

static nsa_status sa_strict_heads(err_call *c)
{
    sa_fx *f = sa_new(c, 1);
    sa_shape(c, f, 256, 8, 192, 128); /* G = 32 */
    return sa_run(c, f);
}

/* 1025 batches of 1 token and 1024 keys. */
static nsa_status sa_strict_batches(err_call *c)
{
    sa_fx *f = sa_new(c, 1);
    for (int b = 0; b < 1025; b++) {
        f->cum_q[b] = b + 1;
        f->cum_kv[b] = (b + 1) * 1024;
    }
    f->p.actual_seq_qlen_count = f->p.actual_seq_kvlen_count = 1025;
    f->q.shape[0] = f->topk.shape[0] = 1025;
    f->k.shape[0] = f->v.shape[0] = 1025 * 1024;
    sa_outputs(c, f);
    return sa_run(c, f);
}

static nsa_status sa_strict_qlen(err_call *c)
{
    sa_fx *f = sa_new(c, 1);
    sa_tokens(c, f, 131073);
    return sa_run(c, f);
}

static nsa_status sa_strict_kvlen(err_call *c)
{
    sa_fx *f = sa_new(c, 1);
    sa_keys(f, 131072 + 64);
    return sa_run(c, f);
}

static nsa_status sa_strict_kv_blocks(err_call *c)
{
    sa_fx *f = sa_new(c, 1);
    sa_keys(f, 1000);
    return sa_run(c, f);
}

static nsa_status sa_strict_kv_short(err_call *c)
{
    sa_fx *f = sa_new(c, 1);
    sa_keys(f, 960);
    return sa_run(c, f);
}

static int huge_pool_threads(void *user)
{
    (void)user;
    return INT_MAX;
}

static void serial_for(void *user, nsa_task_fn fn, void *arg, size_t n)
{
    (void)user;
    for (size_t i = 0; i < n; i++)
        fn(arg, i);
}

/* A caller's pool may report 2^31 - 1 threads; 2^35 tokens make 2^31 work items of 16, so as
 * many tasks, each with 2^34 bytes of scratch (65536 query heads x Dv 65536 floats). The rule
 * fires before the outputs are checked, so the fixture's small ones stay. */
static nsa_status sa_ws_overflow(err_call *c)
{
    static const nsa_thread_pool pool = {NULL, huge_pool_threads, serial_for};
    nsa_context_config cfg = NSA_CONTEXT_CONFIG_INIT;
    nsa_context *ctx = NULL;
    sa_fx *f = sa_new(c, 0);
    const int64_t t1 = (int64_t)1 << 35;
    nsa_status st;
    cfg.thread_pool = &pool;
    if (nsa_context_create(&cfg, &ctx) != NSA_SUCCESS)
        return NSA_ERR_INTERNAL;
    f->q.shape[0] = f->topk.shape[0] = f->cum_q[0] = t1;
    f->q.shape[1] = 65536;
    f->v.shape[2] = 65536;
    st = sa_call(c, ctx, f, &f->p);
    nsa_context_destroy(ctx);
    return st;
}

static nsa_status sa_params_null(err_call *c)
{
    return sa_call(c, NULL, sa_new(c, 0), NULL);
}

static nsa_status sa_no_kv_heads(err_call *c)
{
    sa_fx *f = sa_new(c, 0);
    sa_shape(c, f, 2, 0, 16, 16);
    return sa_run(c, f);
}

static nsa_status sa_d_range(err_call *c)
{
    sa_fx *f = sa_new(c, 0);
    sa_shape(c, f, 2, 1, 0, 16);
    return sa_run(c, f);
}

static nsa_status sa_dv_range(err_call *c)
{
    sa_fx *f = sa_new(c, 0);
    sa_shape(c, f, 2, 1, 16, 65537);
    return sa_run(c, f);
}

static nsa_status sa_head_num(err_call *c)
{
    sa_fx *f = sa_new(c, 0);
    f->p.head_num = 4;
    return sa_run(c, f);
}

static nsa_status sa_heads_max(err_call *c)
{
    sa_fx *f = sa_new(c, 0);
    sa_shape(c, f, 65537, 1, 16, 16);
    return sa_run(c, f);
}

static nsa_status sa_heads_ratio(err_call *c)
{
    sa_fx *f = sa_new(c, 0);
    sa_shape(c, f, 2, 3, 16, 16);
    return sa_run(c, f);
}

static nsa_status sa_topk_negative(err_call *c)
{
    sa_fx *f = sa_new(c, 0);
    f->idx = -1;
    return sa_run(c, f);
}

static nsa_status sa_topk_range(err_call *c)
{
    sa_fx *f = sa_new(c, 0);
    f->idx = 2; /* 128 keys: blocks 0 and 1 */
    return sa_run(c, f);
}

static nsa_status sa_ws_null(err_call *c)
{
    sa_fx *f = sa_new(c, 0);
    return nsa_select_attention_workspace_size(NULL, &f->q, &f->k, &f->v, &f->topk, &f->p,
                                               NULL);
}

static nsa_status sa_ws_oom(err_call *c)
{
    sa_fx *f = sa_new(c, 0);
    size_t *size = (size_t *)err_alloc(c, sizeof *size);
    err_watch(c, size, sizeof *size);
    err_fail_default_context(c);
    return nsa_select_attention_workspace_size(NULL, &f->q, &f->k, &f->v, &f->topk, &f->p,
                                               size);
}

static nsa_status sa_oom(err_call *c)
{
    sa_fx *f = sa_new(c, 0);
    err_fail_default_context(c);
    return sa_run(c, f);
}

static nsa_status sa_mask_params_null(err_call *c)
{
    sa_fx *f = sa_new(c, 0);
    watch(c, &f->out);
    watch(c, &f->smax);
    watch(c, &f->ssum);
    return nsa_select_attention_with_mask(NULL, &f->q, &f->k, &f->v, &f->topk, NULL, NULL,
                                          &f->out, &f->smax, &f->ssum);
}

static const err_case cases[] = {
    /* src/ops/compress.c */
    {"check_seq", "params must not be NULL", cp_params_null},
    {"check_seq", "actual_seq_len must not be NULL", cp_seq_null},
    {"check_seq", "actual_seq_len_count must be >= 1", cp_seq_count},
    {"check_block_params", "compress_block_size must be a multiple of 16", cp_l_not16},
    {"check_block_params", "compress_stride must be a multiple of 16", cp_d_not16},
    {"check_block_params", "compress_stride must be >= 16", cp_d_zero},
    {"check_block_params", "compress_block_size must be <= 128", cp_l_big},
    {"check_block_params", "must be <= compress_block_size", cp_d_over_l},
    {"nsa_compress_output_rows", "rows must not be NULL", cp_rows_null},
    {"nsa_compress_output_rows", "must be >= 1, got", cp_rows_l_zero},
    {"check_inputs", "weight dtype", cp_weight_dtype},
    {"check_inputs", "(head count N) must be >= 1", cp_no_heads},
    {"check_inputs", "(head dim D) must be >= 1", cp_no_dim},
    {"check_inputs", "(the last) must equal input.shape[0]", cp_seq_short},
    {"check_inputs", "input dtype must be f16 or bf16", cp_strict_f32},
    {"check_inputs", "must be a multiple of 16 under strict", cp_strict_d16},
    {"check_inputs", "(D) must be <= 256", cp_strict_d256},
    {"check_inputs", "(N) must be <= 128", cp_strict_heads},
    {"check_inputs", "segment %lld is empty", cp_strict_empty},
    {"nsa_compress_workspace_size", "size must not be NULL", cp_ws_null},
    {"nsa_compress_workspace_size", "default context", cp_ws_oom},
    {"nsa_compress", "default context", cp_oom},
    /* src/ops/compress_attention.c */
    {"check_params", "compress_block_size must be a multiple of 16 in", ca_l_bad},
    {"check_params", "compress_stride must be a multiple of 16 in", ca_d_bad},
    {"check_params", "select_block_size must be a multiple of 16 in", ca_ls_bad},
    {"check_params", "must be >= compress_stride", ca_l_under_d},
    {"check_params", "must be >= compress_block_size", ca_ls_under_l},
    {"check_params", "must be a multiple of compress_stride", ca_ls_not_d},
    {"check_params", "select_block_count must be in [1, 32]", ca_k_bad},
    {"check_seq_arrays", "actual_seq_qlen must not be NULL", ca_qlen_null},
    {"check_seq_arrays", "actual_cmp_seq_kvlen must not be NULL", ca_kvlen_null},
    {"check_seq_arrays", "actual_seq_qlen_count must be >= 1", ca_qlen_count},
    {"check_seq_arrays", "actual_cmp_seq_kvlen_count (%lld) must equal", ca_kvlen_count},
    {"check_seq_arrays", "actual_sel_seq_kvlen_count (%lld) must equal", ca_sel_count},
    {"check_seq_arrays", "selection blocks, must be ceil", ca_sel_value},
    {"check_seq_arrays", "more than 2^31 - 1", ca_keys_int32},
    {"check_seq_arrays", "must be <= the selection blocks", ca_k_over_blocks},
    {"check_strict", "under strict validation, got f32", ca_strict_f32},
    {"check_strict", "head dims must be multiples of 16", ca_strict_dims},
    {"check_strict", "supports only compress_block_size 32", ca_strict_params},
    {"check_strict", "allows at most 14000", ca_strict_keys},
    {"check_inputs", "params must not be NULL", ca_params_null},
    {"check_inputs", "query, key and value must have one dtype", ca_dtypes},
    {"check_inputs", "head_num must be >= 1", ca_head_num_zero},
    {"check_inputs", "head_num (%lld) must equal query.shape[1]", ca_head_num_diff},
    {"check_inputs", "key.shape[1] (N2) must be >= 1", ca_no_kv_heads},
    {"check_inputs", "must be a multiple of key heads", ca_heads_ratio},
    {"check_inputs", "must be a power of two <= 64", ca_group_pow2},
    {"check_inputs", "query.shape[2] (D) must be in [1, 768]", ca_d_range},
    {"check_inputs", "value.shape[2] (D2) must be in", ca_dv_range},
    {"nsa_compress_attention_workspace_size", "size must not be NULL", ca_ws_null},
    {"nsa_compress_attention_workspace_size", "default context", ca_ws_oom},
    {"nsa_compress_attention", "default context", ca_oom},
    /* src/ops/select_attention.c */
    {"check_same_dtype", "dtype must equal query dtype", sa_dtypes},
    {"check_params", "select_block_size must be a multiple of 16, got", sa_ls_not16},
    {"check_params", "select_block_size must be in [16, 128]", sa_ls_range},
    {"check_params", "select_block_count must be in [1, 32]", sa_k_range},
    {"check_params", "sparse_mode must be 0", sa_sparse_mode},
    {"check_params", "validation must be", sa_validation},
    {"check_params", "scale_value must be a finite", sa_scale},
    {"check_sequences", "actual_seq_qlen must not be NULL", sa_qlen_null},
    {"check_sequences", "actual_seq_kvlen must not be NULL", sa_kvlen_null},
    {"check_sequences", "actual_seq_qlen_count must be >= 1", sa_qlen_count},
    {"check_sequences", "actual_seq_kvlen_count must equal", sa_kvlen_count},
    {"check_strict", "f16 or bf16 under strict validation, got %s", sa_strict_f32},
    {"check_strict", "attention_out dtype must equal", sa_strict_out_dtype},
    {"check_strict", "select_block_size must be %d", sa_strict_ls},
    {"check_strict", "select_block_count must be %d", sa_strict_k},
    {"check_strict", "(D) must be %d", sa_strict_d},
    {"check_strict", "(Dv) must be %d", sa_strict_dv},
    {"check_strict", "(G) must be <= %d", sa_strict_group},
    {"check_strict", "head_num must be <= %d", sa_strict_heads},
    {"check_strict", "the batch count", sa_strict_batches},
    {"check_strict", "query length must be <=", sa_strict_qlen},
    {"check_strict", "key length must be <=", sa_strict_kvlen},
    {"check_strict", "must be a multiple of select_block_size", sa_strict_kv_blocks},
    {"check_strict", "must be >= select_block_size * select_block_count", sa_strict_kv_short},
    {"size_work", "overflows size_t", sa_ws_overflow},
    {"check_inputs", "params must not be NULL", sa_params_null},
    {"check_inputs", "key.shape[1] (N2) must be >= 1", sa_no_kv_heads},
    {"check_inputs", "query.shape[2] (D) must be in [1, %d]", sa_d_range},
    {"check_inputs", "value.shape[2] (Dv) must be in", sa_dv_range},
    {"check_inputs", "(or be 0)", sa_head_num},
    {"check_inputs", "query.shape[1] (N1) must be <=", sa_heads_max},
    {"check_inputs", "must be a positive multiple", sa_heads_ratio},
    {"check_topk_values", "must be >= 0", sa_topk_negative},
    {"check_topk_values", "is out of range", sa_topk_range},
    {"nsa_select_attention_workspace_size", "size must not be NULL", sa_ws_null},
    {"nsa_select_attention_workspace_size", "default context", sa_ws_oom},
    {"nsa_select_attention", "default context", sa_oom},
    {"nsa_select_attention_with_mask", "params must not be NULL", sa_mask_params_null},
};

int main(void)
{
    static const char *const files[] = {"src/ops/compress.c", "src/ops/compress_attention.c",
                                        "src/ops/select_attention.c"};
    return err_rows_main(files, ERR_COUNT(files), cases, ERR_COUNT(cases), NULL, 0);
}
