/* SPDX-License-Identifier: Apache-2.0 */
/* nsa-run select-attention: nsa_select_attention on .npy files (contract: spec cli.md).
 *
 *   nsa-run select-attention --in query=q.npy --in key=k.npy --in value=v.npy
 *       --in topk_indices=topk.npy [--in atten_mask=mask.npy]
 *       --scale-value S --head-num N1 --select-block-size 64 --select-block-count 16
 *       --actual-seq-qlen 128,256 --actual-seq-kvlen 512,1024 [--sparse-mode 0|2] --out DIR
 *
 * Without --sparse-mode the MindSpore rule applies: an atten_mask input (values not read)
 * means top-left causal, none means no mask. --sparse-mode chooses explicitly (a mask, if
 * given, is then only validated). Outputs: attention_out (the run dtype), softmax_max and
 * softmax_sum (f32, [T1, N1, 8]). */
#include <stddef.h>

#include "cli.h"

typedef struct select_cli {
    nsa_context *ctx;
    nsa_tensor query, key, value, topk, mask, out, smax, ssum;
    int has_mask, explicit_mode;
    nsa_select_attention_params params;
} select_cli;

static nsa_status run_select(void *arg)
{
    select_cli *s = (select_cli *)arg;
    if (s->explicit_mode)
        return nsa_select_attention(s->ctx, &s->query, &s->key, &s->value, &s->topk, &s->params,
                                    &s->out, &s->smax, &s->ssum);
    return nsa_select_attention_with_mask(s->ctx, &s->query, &s->key, &s->value, &s->topk,
                                          s->has_mask ? &s->mask : NULL, &s->params, &s->out,
                                          &s->smax, &s->ssum);
}

/* Extent of axis i of a rank-3 input, 0 when the input has another rank (the op then reports
 * the rank error itself). */
static int64_t dim3(const nsa_tensor *t, int axis)
{
    return t->ndim == 3 ? t->shape[axis] : 0;
}

int cmd_select_attention(cli_args *a)
{
    select_cli s;
    int rc, present;
    double scale = 0.0;
    int64_t head_num = 0, block_size = 0, block_count = 0, mode = 0;
    int64_t *cum_q = NULL, *cum_kv = NULL, nq = 0, nkv = 0;
    int64_t out_shape[3], stat_shape[3];

    s.ctx = cli_context(a);
    s.has_mask = 0;
    s.params = nsa_select_attention_params_default();
    if ((rc = cli_input(a, "query", CLI_AS_RUN_DTYPE, 1, &s.query, &present)) != 0 ||
        (rc = cli_input(a, "key", CLI_AS_RUN_DTYPE, 1, &s.key, &present)) != 0 ||
        (rc = cli_input(a, "value", CLI_AS_RUN_DTYPE, 1, &s.value, &present)) != 0 ||
        (rc = cli_input(a, "topk_indices", CLI_AS_STORED, 1, &s.topk, &present)) != 0 ||
        (rc = cli_input(a, "atten_mask", CLI_AS_STORED, 0, &s.mask, &s.has_mask)) != 0)
        return rc;
    if ((rc = cli_param_double(a, "scale-value", &scale, 1)) != 0 ||
        (rc = cli_param_int64(a, "head-num", &head_num, 1)) != 0 ||
        (rc = cli_param_int64(a, "select-block-size", &block_size, 1)) != 0 ||
        (rc = cli_param_int64(a, "select-block-count", &block_count, 1)) != 0 ||
        (rc = cli_param_int64_list(a, "actual-seq-qlen", &cum_q, &nq, 1)) != 0 ||
        (rc = cli_param_int64_list(a, "actual-seq-kvlen", &cum_kv, &nkv, 1)) != 0)
        return rc;
    s.explicit_mode = cli_param(a, "sparse-mode") != NULL;
    if ((rc = cli_param_int64(a, "sparse-mode", &mode, 0)) != 0)
        return rc;

    s.params.scale_value = scale;
    s.params.head_num = head_num;
    s.params.select_block_size = block_size;
    s.params.select_block_count = block_count;
    s.params.actual_seq_qlen = cum_q;
    s.params.actual_seq_qlen_count = nq;
    s.params.actual_seq_kvlen = cum_kv;
    s.params.actual_seq_kvlen_count = nkv;
    s.params.sparse_mode = mode;
    s.params.validation = cli_strict(a) ? NSA_VALIDATE_STRICT : NSA_VALIDATE_DEFAULT;

    out_shape[0] = stat_shape[0] = dim3(&s.query, 0);
    out_shape[1] = stat_shape[1] = dim3(&s.query, 1);
    out_shape[2] = dim3(&s.value, 2);
    stat_shape[2] = 8;
    if ((rc = cli_alloc_output(a, cli_dtype(a), 3, out_shape, &s.out)) != 0 ||
        (rc = cli_alloc_output(a, NSA_DTYPE_F32, 3, stat_shape, &s.smax)) != 0 ||
        (rc = cli_alloc_output(a, NSA_DTYPE_F32, 3, stat_shape, &s.ssum)) != 0)
        return rc;
    if ((rc = cli_run(a, run_select, &s)) != 0)
        return rc;
    if ((rc = cli_write_output(a, "attention_out", &s.out)) != 0 ||
        (rc = cli_write_output(a, "softmax_max", &s.smax)) != 0 ||
        (rc = cli_write_output(a, "softmax_sum", &s.ssum)) != 0)
        return rc;
    return 0;
}
