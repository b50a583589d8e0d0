/* SPDX-License-Identifier: Apache-2.0 */
/* nsa-run compress: nsa_compress on .npy files (contract: spec/cli.md). */
#include "cli.h"

typedef struct compress_call {
    nsa_context *ctx;
    nsa_tensor input, weight, output;
    nsa_compress_params params;
} compress_call;

static nsa_status run_compress(void *arg)
{
    compress_call *c = (compress_call *)arg;
    return nsa_compress(c->ctx, &c->input, &c->weight, &c->params, &c->output);
}

int cmd_compress(cli_args *a)
{
    compress_call c;
    int64_t rows = 0, shape[3];
    int rc, present;

    c.params = nsa_compress_params_default();
    c.ctx = cli_context(a);
    if ((rc = cli_param_int64(a, "compress-block-size", &c.params.compress_block_size, 1)) ||
        (rc = cli_param_int64(a, "compress-stride", &c.params.compress_stride, 1)) ||
        (rc = cli_param_int64_list(a, "actual-seq-len", (int64_t **)&c.params.actual_seq_len,
                                   &c.params.actual_seq_len_count, 1)))
        return rc;
    if (cli_strict(a))
        c.params.validation = NSA_VALIDATE_STRICT;
    if ((rc = cli_input(a, "input", CLI_AS_RUN_DTYPE, 1, &c.input, &present)) ||
        (rc = cli_input(a, "weight", CLI_AS_RUN_DTYPE, 1, &c.weight, &present)))
        return rc;

    /* The output row count comes from the prefix sums; a bad array is the op's error. */
    if (nsa_compress_output_rows(&c.params, &rows) != NSA_SUCCESS)
        rows = 0;
    shape[0] = rows;
    shape[1] = c.input.ndim == 3 ? c.input.shape[1] : 0;
    shape[2] = c.input.ndim == 3 ? c.input.shape[2] : 0;
    if ((rc = cli_alloc_output(a, cli_dtype(a), 3, shape, &c.output)))
        return rc;
    if ((rc = cli_run(a, run_compress, &c)))
        return rc;
    return cli_write_output(a, "output", &c.output);
}
