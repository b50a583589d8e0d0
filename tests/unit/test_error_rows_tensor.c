/* SPDX-License-Identifier: Apache-2.0 */
/* docs/errors.md, src/tensor/tensor.c and src/dtype/convert.c: one case per rule (see
 * tests/common/error_rows.h). The tensor checks are reached through nsa_flex_attention, the
 * prefix-sum checks through nsa_select_attention. */
#include <stdint.h>
#include <string.h>

#include "error_rows.h"

/* ---- layout names ------------------------------------------------------------------------ */

static nsa_status layout_null_text(err_call *c)
{
    nsa_layout *layout = (nsa_layout *)err_alloc(c, sizeof *layout);
    err_watch(c, layout, sizeof *layout);
    return nsa_layout_from_string(NULL, layout);
}

static nsa_status layout_unknown(err_call *c)
{
    nsa_layout *layout = (nsa_layout *)err_alloc(c, sizeof *layout);
    err_watch(c, layout, sizeof *layout);
    return nsa_layout_from_string("NTD", layout);
}

/* ---- tensor checks: nsa_flex_attention with B=1, H=2, L=S=8, E=4 ------------------------- */

typedef struct flex_fx {
    float q[64], k[64], v[64], out[64];
    nsa_tensor tq, tk, tv, to;
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
    return f;
}

/* Watch out, then run the (broken) problem. */
static nsa_status flex_run(err_call *c, flex_fx *f, const nsa_tensor *q)
{
    err_watch(c, f->out, sizeof f->out);
    return nsa_flex_attention(NULL, q, &f->tk, &f->tv, NULL, NULL, NULL, &f->to, NULL);
}

/* q reshaped to (1, 1, n, 1) with unit strides: one long row of n elements. */
static void make_row(nsa_tensor *t, int64_t n)
{
    t->shape[1] = t->shape[3] = 1;
    t->shape[2] = n;
    t->stride[0] = t->stride[1] = n;
    t->stride[2] = t->stride[3] = 1;
}

static nsa_status tensor_null(err_call *c)
{
    return flex_run(c, flex_setup(c), NULL);
}

static nsa_status tensor_rank(err_call *c)
{
    flex_fx *f = flex_setup(c);
    f->tq.ndim = 3;
    return flex_run(c, f, &f->tq);
}

static nsa_status tensor_dtype(err_call *c)
{
    flex_fx *f = flex_setup(c);
    f->tq.dtype = NSA_DTYPE_I32;
    return flex_run(c, f, &f->tq);
}

static nsa_status tensor_negative_shape(err_call *c)
{
    flex_fx *f = flex_setup(c);
    f->tq.shape[2] = -1;
    return flex_run(c, f, &f->tq);
}

static nsa_status tensor_negative_stride(err_call *c)
{
    flex_fx *f = flex_setup(c);
    f->tq.stride[2] = -4;
    return flex_run(c, f, &f->tq);
}

static nsa_status tensor_numel_overflow(err_call *c)
{
    flex_fx *f = flex_setup(c);
    f->tq.shape[0] = f->tq.shape[2] = (int64_t)1 << 32;
    return flex_run(c, f, &f->tq);
}

static nsa_status tensor_stride_overflow(err_call *c)
{
    flex_fx *f = flex_setup(c);
    f->tq.shape[2] = (int64_t)1 << 32;
    f->tq.stride[2] = (int64_t)1 << 32;
    return flex_run(c, f, &f->tq);
}

/* 2^61 f32 elements: the last element's offset fits in int64, its byte offset does not. */
static nsa_status tensor_bytes_overflow(err_call *c)
{
    flex_fx *f = flex_setup(c);
    make_row(&f->tq, (int64_t)1 << 61);
    return flex_run(c, f, &f->tq);
}

static nsa_status tensor_null_data(err_call *c)
{
    flex_fx *f = flex_setup(c);
    f->tq.data = NULL;
    return flex_run(c, f, &f->tq);
}

static nsa_status tensor_misaligned(err_call *c)
{
    flex_fx *f = flex_setup(c);
    f->tq.data = (char *)f->q + 1;
    return flex_run(c, f, &f->tq);
}

/* 64 elements starting 64 bytes below the top of the address space (never dereferenced). */
static nsa_status tensor_past_address_space(err_call *c)
{
    flex_fx *f = flex_setup(c);
    f->tq.data = (void *)(UINTPTR_MAX - 63);
    return flex_run(c, f, &f->tq);
}

static nsa_status dim_mismatch(err_call *c)
{
    flex_fx *f = flex_setup(c);
    f->tk.shape[3] = 3;
    return flex_run(c, f, &f->tq);
}

static nsa_status output_self_overlap(err_call *c)
{
    flex_fx *f = flex_setup(c);
    f->to.stride[2] = 0;
    return flex_run(c, f, &f->tq);
}

static nsa_status output_overlaps_input(err_call *c)
{
    flex_fx *f = flex_setup(c);
    f->tq.data = f->out;
    return flex_run(c, f, &f->tq);
}

/* ---- prefix sums: nsa_select_attention, T1 = 2 queries, T2 = 64 keys, 1 head, D = 16 ------ */

typedef struct select_fx {
    float q[2 * 16], kv[64 * 16], out[2 * 16];
    int32_t topk[2];
    int64_t qlen[2], kvlen[2];
    nsa_tensor tq, tk, tv, ttopk, tout;
    nsa_select_attention_params p;
} select_fx;

/* Two batches: queries {1, 1}, keys {32, 32}. */
static select_fx *select_setup(err_call *c)
{
    int64_t qsh[3] = {2, 1, 16}, kvsh[3] = {64, 1, 16}, tsh[3] = {2, 1, 1};
    select_fx *s = (select_fx *)err_alloc(c, sizeof *s);
    s->tq = nsa_tensor_contiguous(s->q, NSA_DTYPE_F32, 3, qsh);
    s->tk = nsa_tensor_contiguous(s->kv, NSA_DTYPE_F32, 3, kvsh);
    s->tv = s->tk;
    s->ttopk = nsa_tensor_contiguous(s->topk, NSA_DTYPE_I32, 3, tsh);
    s->tout = nsa_tensor_contiguous(s->out, NSA_DTYPE_F32, 3, qsh);
    s->p = nsa_select_attention_params_default();
    s->p.select_block_size = 16;
    s->p.select_block_count = 1;
    s->qlen[0] = 1;
    s->qlen[1] = 2;
    s->kvlen[0] = 32;
    s->kvlen[1] = 64;
    s->p.actual_seq_qlen = s->qlen;
    s->p.actual_seq_kvlen = s->kvlen;
    s->p.actual_seq_qlen_count = s->p.actual_seq_kvlen_count = 2;
    return s;
}

static nsa_status select_run(err_call *c, select_fx *s)
{
    err_watch(c, s->out, sizeof s->out);
    return nsa_select_attention(NULL, &s->tq, &s->tk, &s->tv, &s->ttopk, &s->p, &s->tout, NULL,
                                NULL);
}

static nsa_status prefix_decreasing(err_call *c)
{
    select_fx *s = select_setup(c);
    s->qlen[1] = 0;
    return select_run(c, s);
}

static nsa_status prefix_wrong_total(err_call *c)
{
    select_fx *s = select_setup(c);
    s->kvlen[1] = 63;
    return select_run(c, s);
}

/* ---- nsa_convert: 4 f32 to f16 ----------------------------------------------------------- */

typedef struct convert_fx {
    float src[4];
    uint16_t dst[4];
} convert_fx;

static convert_fx *convert_setup(err_call *c)
{
    convert_fx *v = (convert_fx *)err_alloc(c, sizeof *v);
    err_watch(c, v->dst, sizeof v->dst);
    return v;
}

static nsa_status convert_negative_n(err_call *c)
{
    convert_fx *v = convert_setup(c);
    return nsa_convert(v->src, NSA_DTYPE_F32, 1, v->dst, NSA_DTYPE_F16, 1, -1,
                       NSA_ROUND_NEAREST_EVEN);
}

static nsa_status convert_null_src(err_call *c)
{
    convert_fx *v = convert_setup(c);
    return nsa_convert(NULL, NSA_DTYPE_F32, 1, v->dst, NSA_DTYPE_F16, 1, 4,
                       NSA_ROUND_NEAREST_EVEN);
}

static nsa_status convert_bad_src_dtype(err_call *c)
{
    convert_fx *v = convert_setup(c);
    return nsa_convert(v->src, NSA_DTYPE_I32, 1, v->dst, NSA_DTYPE_F16, 1, 4,
                       NSA_ROUND_NEAREST_EVEN);
}

static nsa_status convert_bad_dst_dtype(err_call *c)
{
    convert_fx *v = convert_setup(c);
    return nsa_convert(v->src, NSA_DTYPE_F32, 1, v->dst, NSA_DTYPE_U8, 1, 4,
                       NSA_ROUND_NEAREST_EVEN);
}

static nsa_status convert_bad_stride(err_call *c)
{
    convert_fx *v = convert_setup(c);
    return nsa_convert(v->src, NSA_DTYPE_F32, 1, v->dst, NSA_DTYPE_F16, 0, 4,
                       NSA_ROUND_NEAREST_EVEN);
}

static nsa_status convert_bad_rounding(err_call *c)
{
    convert_fx *v = convert_setup(c);
    return nsa_convert(v->src, NSA_DTYPE_F32, 1, v->dst, NSA_DTYPE_F16, 1, 4, (nsa_rounding)7);
}

static nsa_status convert_src_overflow(err_call *c)
{
    convert_fx *v = convert_setup(c);
    return nsa_convert(v->src, NSA_DTYPE_F32, (int64_t)1 << 40, v->dst, NSA_DTYPE_F16, 1,
                       (int64_t)1 << 40, NSA_ROUND_NEAREST_EVEN);
}

/* A broadcast source (stride 0) into a destination whose stride overflows. */
static nsa_status convert_dst_overflow(err_call *c)
{
    convert_fx *v = convert_setup(c);
    return nsa_convert(v->src, NSA_DTYPE_F32, 0, v->dst, NSA_DTYPE_F16, (int64_t)1 << 40,
                       (int64_t)1 << 40, NSA_ROUND_NEAREST_EVEN);
}

static const err_case cases[] = {
    {"nsa_layout_from_string", "must not be NULL", layout_null_text},
    {"nsa_layout_from_string", "must be one of", layout_unknown},
    {"nsa_check_tensor", "%s must not be NULL", tensor_null},
    {"nsa_check_tensor", "dimensions", tensor_rank},
    {"nsa_check_tensor", "dtype must be one of", tensor_dtype},
    {"nsa_check_tensor", ".shape[%d] must be >= 0", tensor_negative_shape},
    {"nsa_check_tensor", ".stride[%d] must be >= 0", tensor_negative_stride},
    {"nsa_check_tensor", "shape product overflows", tensor_numel_overflow},
    {"nsa_check_tensor", "strides overflow", tensor_stride_overflow},
    {"nsa_check_tensor", "spans more bytes", tensor_bytes_overflow},
    {"nsa_check_tensor", ".data must not be NULL", tensor_null_data},
    {"nsa_check_tensor", "must be aligned", tensor_misaligned},
    {"nsa_check_tensor", "past the end of the address space", tensor_past_address_space},
    {"nsa_check_dim", "must be %s", dim_mismatch},
    {"nsa_check_output", "overlap itself", output_self_overlap},
    {"nsa_check_no_overlap", "in memory", output_overlaps_input},
    {"nsa_check_prefix_sums", "non-decreasing", prefix_decreasing},
    {"nsa_check_prefix_sums", "(the last)", prefix_wrong_total},
    {"nsa_convert", "n must be >= 0", convert_negative_n},
    {"nsa_convert", "src and dst", convert_null_src},
    {"nsa_convert", "src_dtype", convert_bad_src_dtype},
    {"nsa_convert", "dst_dtype", convert_bad_dst_dtype},
    {"nsa_convert", "strides must be", convert_bad_stride},
    {"nsa_convert", "rounding", convert_bad_rounding},
    {"nsa_convert", "src_stride (%lld) elements", convert_src_overflow},
    {"nsa_convert", "dst_stride (%lld) elements", convert_dst_overflow},
};

int main(void)
{
    static const char *const files[] = {"src/tensor/tensor.c", "src/dtype/convert.c"};
    return err_rows_main(files, ERR_COUNT(files), cases, ERR_COUNT(cases), NULL, 0);
}
