/* SPDX-License-Identifier: Apache-2.0 */
/* nsa-run flex-attention: q, k, v (+ mod inputs) -> out, lse (see ../shared/spec/cli.md). */
#include <string.h>

#include "cli.h"
#include "flex_mods.h"

typedef struct flex_call {
    nsa_context *ctx;
    nsa_tensor q, k, v, out, lse;
    const nsa_block_mask *bm;
    const nsa_score_mod *sm;
    nsa_flex_params params;
} flex_call;

static nsa_status run(void *arg)
{
    flex_call *c = (flex_call *)arg;
    return nsa_flex_attention(c->ctx, &c->q, &c->k, &c->v, c->bm, c->sm, &c->params, &c->out,
                              &c->lse);
}

int cmd_flex_attention(cli_args *a)
{
    flex_call c;
    flex_mods m;
    nsa_block_mask *bm = NULL;
    int64_t shape[4], q_block, kv_block;
    double scale = 0.0;
    int present = 0, rc, gqa = 0;
    memset(&c, 0, sizeof c);
    memset(&m, 0, sizeof m);
    c.params = nsa_flex_params_default();
    c.ctx = cli_context(a);
    if ((rc = cli_input(a, "q", CLI_AS_RUN_DTYPE, 1, &c.q, &present)) != 0 ||
        (rc = cli_input(a, "k", CLI_AS_RUN_DTYPE, 1, &c.k, &present)) != 0 ||
        (rc = cli_input(a, "v", CLI_AS_RUN_DTYPE, 1, &c.v, &present)) != 0 ||
        (rc = cli_param_double(a, "scale", &scale, 0)) != 0 ||
        (rc = flex_mods_block_size(a, &q_block, &kv_block)) != 0)
        return rc;
    if (c.q.ndim != 4 || c.k.ndim != 4 || c.v.ndim != 4)
        return cli_usage_error(a, "q, k and v must be 4-D (B, H, L, E) arrays");
    if ((rc = cli_flag(a, "enable-gqa", &gqa)) != 0)
        return rc;
    c.params.enable_gqa = gqa;
    c.params.scale = (float)scale;

    rc = flex_mods_mask(a, &m);
    if (!rc)
        rc = flex_mods_score(a, &m, c.q.shape[1]);
    if (!rc && m.from_kv_blocks) {
        rc = flex_mods_kv_blocks(a, q_block, kv_block, c.q.shape[2], c.k.shape[2], &bm);
    } else if (!rc && !m.no_mask) {
        nsa_status st = nsa_block_mask_create(c.ctx, m.mask, 1, 1, c.q.shape[2], c.k.shape[2],
                                              q_block, kv_block, &bm);
        if (st != NSA_SUCCESS)
            rc = cli_op_error(a, st);
    }
    if (!rc) {
        shape[0] = c.q.shape[0];
        shape[1] = c.q.shape[1];
        shape[2] = c.q.shape[2];
        shape[3] = c.v.shape[3];
        c.bm = bm;
        c.sm = m.score;
        if ((rc = cli_alloc_output(a, cli_dtype(a), 4, shape, &c.out)) == 0 &&
            (rc = cli_alloc_output(a, NSA_DTYPE_F32, 3, shape, &c.lse)) == 0 &&
            (rc = cli_run(a, run, &c)) == 0 && (rc = cli_write_output(a, "out", &c.out)) == 0)
            rc = cli_write_output(a, "lse", &c.lse);
    }
    nsa_block_mask_free(bm);
    flex_mods_free(&m);
    return rc;
}
