/* SPDX-License-Identifier: Apache-2.0 */
/* nsa-run compress-attention: nsa_compress_attention on .npy files (contract: spec/cli.md). */
#include "cli.h"

typedef struct cattn_call {
    nsa_context *ctx;
    nsa_tensor query, key, value, atten_mask, topk_mask;
    int has_atten_mask, has_topk_mask;
    nsa_compress_attention_params params;
    nsa_tensor out, topk, smax, ssum;
} cattn_call;

static nsa_status run_cattn(void *arg)
{
    cattn_call *c = (cattn_call *)arg;
    return nsa_compress_attention(c->ctx, &c->query, &c->key, &c->value,
                                  c->has_atten_mask ? &c->atten_mask : NULL,
                                  c->has_topk_mask ? &c->topk_mask : NULL, &c->params, &c->out,
                                  &c->topk, &c->smax, &c->ssum);
}

static int64_t dim(const nsa_tensor *t, int axis)
{
    return t->ndim > axis ? t->shape[axis] : 0;
}

int cmd_compress_attention(cli_args *a)
{
    cattn_call c;
    int64_t shape[3];
    int rc, present;

    c.params = nsa_compress_attention_params_default();
    c.ctx = cli_context(a);
    if ((rc = cli_param_double(a, "scale-value", &c.params.scale_value, 1)) ||
        (rc = cli_param_int64(a, "head-num", &c.params.head_num, 1)) ||
        (rc = cli_param_int64(a, "compress-block-size", &c.params.compress_block_size, 1)) ||
        (rc = cli_param_int64(a, "compress-stride", &c.params.compress_stride, 1)) ||
        (rc = cli_param_int64(a, "select-block-size", &c.params.select_block_size, 1)) ||
        (rc = cli_param_int64(a, "select-block-count", &c.params.select_block_count, 1)) ||
        (rc = cli_param_int64_list(a, "actual-seq-qlen", (int64_t **)&c.params.actual_seq_qlen,
                                   &c.params.actual_seq_qlen_count, 1)) ||
        (rc = cli_param_int64_list(a, "actual-cmp-seq-kvlen",
                                   (int64_t **)&c.params.actual_cmp_seq_kvlen,
                                   &c.params.actual_cmp_seq_kvlen_count, 1)) ||
        (rc = cli_param_int64_list(a, "actual-sel-seq-kvlen",
                                   (int64_t **)&c.params.actual_sel_seq_kvlen,
                                   &c.params.actual_sel_seq_kvlen_count, 0)))
        return rc;
    if (cli_strict(a))
        c.params.validation = NSA_VALIDATE_STRICT;
    if ((rc = cli_input(a, "query", CLI_AS_RUN_DTYPE, 1, &c.query, &present)) ||
        (rc = cli_input(a, "key", CLI_AS_RUN_DTYPE, 1, &c.key, &present)) ||
        (rc = cli_input(a, "value", CLI_AS_RUN_DTYPE, 1, &c.value, &present)) ||
        (rc = cli_input(a, "atten_mask", CLI_AS_STORED, 0, &c.atten_mask, &c.has_atten_mask)) ||
        (rc = cli_input(a, "topk_mask", CLI_AS_STORED, 0, &c.topk_mask, &c.has_topk_mask)))
        return rc;

    /* Output shapes from the inputs; inconsistent inputs are reported by the op itself. */
    shape[0] = dim(&c.query, 0);
    shape[1] = dim(&c.query, 1);
    shape[2] = dim(&c.value, 2);
    if ((rc = cli_alloc_output(a, cli_dtype(a), 3, shape, &c.out)))
        return rc;
    shape[1] = dim(&c.key, 1);
    shape[2] = c.params.select_block_count > 0 ? c.params.select_block_count : 0;
    if ((rc = cli_alloc_output(a, NSA_DTYPE_I32, 3, shape, &c.topk)))
        return rc;
    shape[1] = dim(&c.query, 1);
    shape[2] = 8;
    if ((rc = cli_alloc_output(a, NSA_DTYPE_F32, 3, shape, &c.smax)) ||
        (rc = cli_alloc_output(a, NSA_DTYPE_F32, 3, shape, &c.ssum)))
        return rc;
    if ((rc = cli_run(a, run_cattn, &c)))
        return rc;
    if ((rc = cli_write_output(a, "attention_out", &c.out)) ||
        (rc = cli_write_output(a, "topk_indices", &c.topk)) ||
        (rc = cli_write_output(a, "softmax_max", &c.smax)))
        return rc;
    return cli_write_output(a, "softmax_sum", &c.ssum);
}
