/* SPDX-License-Identifier: Apache-2.0 */
/* nsa-run incre-flash-attention: decode attention on .npy inputs (contract: spec cli.md).
 * key/value come as one tensor each, or as a per-batch list key.0, key.1, ... / value.0, ...
 * Float inputs run in --dtype; int8 caches, masks and block tables keep their type;
 * antiquant scale/offset keep their file type (f32 is accepted by the op whatever the
 * query dtype, so f32 scales are not rounded); quant_scale2/offset2 are f32. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

#define IFA_CLI_MAX_LIST 4096

typedef struct ifa_cli {
    nsa_context *ctx;
    nsa_tensor query, key, value, out;
    nsa_tensor keys[IFA_CLI_MAX_LIST], values[IFA_CLI_MAX_LIST];
    int64_t count; /* list entries; 0 = one key/value tensor */
    nsa_tensor mask, pse, aqs, aqo, bt, qs2, qo2;
    nsa_ifa_optional opt;
    nsa_ifa_params prm;
} ifa_cli;

static nsa_status run_ifa(void *arg)
{
    ifa_cli *c = (ifa_cli *)arg;
    if (c->count > 0)
        return nsa_incre_flash_attention_kv_list(c->ctx, &c->query, c->keys, c->values, c->count,
                                                 &c->opt, &c->prm, &c->out);
    return nsa_incre_flash_attention(c->ctx, &c->query, &c->key, &c->value, &c->opt, &c->prm,
                                     &c->out);
}

/* Load an optional input into *t and point *slot at it when present. */
static int optional_input(cli_args *a, const char *name, nsa_dtype as, nsa_tensor *t,
                          const nsa_tensor **slot)
{
    int present = 0, rc = cli_input(a, name, as, 0, t, &present);
    if (rc)
        return rc;
    *slot = present ? t : NULL;
    return 0;
}

static int load_kv(cli_args *a, ifa_cli *c)
{
    int present = 0, rc = cli_input(a, "key", CLI_AS_RUN_DTYPE, 0, &c->key, &present);
    if (rc)
        return rc;
    if (present)
        return cli_input(a, "value", CLI_AS_RUN_DTYPE, 1, &c->value, &present);
    for (c->count = 0; c->count < IFA_CLI_MAX_LIST; c->count++) {
        char kn[32], vn[32];
        snprintf(kn, sizeof kn, "key.%lld", (long long)c->count);
        snprintf(vn, sizeof vn, "value.%lld", (long long)c->count);
        rc = cli_input(a, kn, CLI_AS_RUN_DTYPE, 0, &c->keys[c->count], &present);
        if (rc)
            return rc;
        if (!present)
            break;
        rc = cli_input(a, vn, CLI_AS_RUN_DTYPE, 1, &c->values[c->count], &present);
        if (rc)
            return rc;
    }
    if (c->count == 0)
        return cli_usage_error(a, "missing input key (or key.0, key.1, ... for a per-batch "
                                  "list)");
    return 0;
}

int cmd_incre_flash_attention(cli_args *a)
{
    static ifa_cli c; /* large (the list arrays); one command per process */
    const char *layout;
    int64_t *asl = NULL, nasl = 0;
    int rc, present = 0;

    memset(&c, 0, sizeof c);
    c.ctx = cli_context(a);
    c.prm = nsa_ifa_params_default();
    /* optional parameters keep the op's default when absent */
    if ((rc = cli_param_int64(a, "num-heads", &c.prm.num_heads, 1)) != 0 ||
        (rc = cli_param_int64(a, "num-key-value-heads", &c.prm.num_key_value_heads, 0)) != 0 ||
        (rc = cli_param_double(a, "scale-value", &c.prm.scale_value, 0)) != 0 ||
        (rc = cli_param_int64(a, "block-size", &c.prm.block_size, 0)) != 0 ||
        (rc = cli_param_int64(a, "inner-precise", &c.prm.inner_precise, 0)) != 0 ||
        (rc = cli_param_int64(a, "kv-padding-size", &c.prm.kv_padding_size, 0)) != 0)
        return rc;
    c.prm.has_kv_padding_size = cli_param(a, "kv-padding-size") != NULL;
    layout = cli_param(a, "input-layout");
    if (layout && nsa_layout_from_string(layout, &c.prm.input_layout) != NSA_SUCCESS)
        return cli_usage_error(a, "--input-layout must be BSH, BNSD or BSND, got %s", layout);
    if ((rc = cli_param_int64_list(a, "actual-seq-lengths", &asl, &nasl, 0)) != 0)
        return rc;
    c.prm.actual_seq_lengths = asl;
    c.prm.actual_seq_lengths_count = asl ? nasl : 0;
    if (cli_strict(a))
        c.prm.validation = NSA_VALIDATE_STRICT;

    if ((rc = cli_input(a, "query", CLI_AS_RUN_DTYPE, 1, &c.query, &present)) != 0)
        return rc;
    if ((rc = load_kv(a, &c)) != 0)
        return rc;
    if ((rc = optional_input(a, "atten_mask", CLI_AS_STORED, &c.mask, &c.opt.atten_mask)) ||
        (rc = optional_input(a, "pse_shift", CLI_AS_RUN_DTYPE, &c.pse, &c.opt.pse_shift)) ||
        (rc =
             optional_input(a, "antiquant_scale", CLI_AS_STORED, &c.aqs, &c.opt.antiquant_scale)) ||
        (rc = optional_input(a, "antiquant_offset", CLI_AS_STORED, &c.aqo,
                             &c.opt.antiquant_offset)) ||
        (rc = optional_input(a, "block_table", CLI_AS_STORED, &c.bt, &c.opt.block_table)) ||
        (rc = optional_input(a, "quant_scale2", NSA_DTYPE_F32, &c.qs2, &c.opt.quant_scale2)) ||
        (rc = optional_input(a, "quant_offset2", NSA_DTYPE_F32, &c.qo2, &c.opt.quant_offset2)))
        return rc;

    rc = cli_alloc_output(a, c.opt.quant_scale2 ? NSA_DTYPE_I8 : cli_dtype(a), c.query.ndim,
                          c.query.shape, &c.out);
    if (rc)
        return rc;
    if ((rc = cli_run(a, run_ifa, &c)) != 0)
        return rc;
    return cli_write_output(a, "attention_out", &c.out);
}
