/* SPDX-License-Identifier: Apache-2.0 */
/* nsa-run block-mask: create_block_mask (or from_kv_blocks) and write every BlockMask tensor,
 * to_dense, to_string.txt and info.txt (see ../shared/spec/cli.md). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "flex_mods.h"

typedef struct bm_call {
    nsa_context *ctx;
    const nsa_mask_mod *mm;
    int64_t B, H, L, S, bq, bk;
    nsa_block_mask *bm;
} bm_call;

static nsa_status run(void *arg)
{
    bm_call *c = (bm_call *)arg;
    nsa_block_mask_free(c->bm);
    c->bm = NULL;
    return nsa_block_mask_create(c->ctx, c->mm, c->B, c->H, c->L, c->S, c->bq, c->bk, &c->bm);
}

/* Python's repr of a float: the shortest "%.*g" that reads back exactly, with ".0" for
 * integral values. */
static void py_repr(double x, char *buf, size_t cap)
{
    int prec;
    for (prec = 1; prec <= 17; prec++) {
        snprintf(buf, cap, "%.*g", prec, x);
        if (strtod(buf, NULL) == x)
            break;
    }
    if (!strpbrk(buf, ".eni"))
        strncat(buf, ".0", cap - strlen(buf) - 1);
}

static int write_all(cli_args *a, const nsa_block_mask *bm)
{
    static const char *const names[8] = {
        "kv_num_blocks", "kv_indices", "full_kv_num_blocks", "full_kv_indices",
        "q_num_blocks",  "q_indices",  "full_q_num_blocks",  "full_q_indices"};
    nsa_block_mask_info info;
    nsa_tensor view, dense;
    int64_t shape[4];
    double sp;
    char *text, num[64], info_text[256];
    size_t len = 0;
    int i, rc;
    nsa_block_mask_get_info(bm, &info);
    for (i = 0; i < 8; i++) {
        nsa_block_mask_array_view(bm, (nsa_block_mask_array)i, &view);
        if ((rc = cli_write_output(a, names[i], &view)) != 0)
            return rc;
    }
    shape[0] = info.batch;
    shape[1] = info.heads;
    shape[2] = info.num_q_blocks;
    shape[3] = info.num_kv_blocks;
    if ((rc = cli_alloc_output(a, NSA_DTYPE_I32, 4, shape, &dense)) != 0)
        return rc;
    nsa_block_mask_to_dense(bm, &dense);
    if ((rc = cli_write_output(a, "to_dense", &dense)) != 0)
        return rc;
    /* PyTorch's default to_string(): grid (20, 20), limit 4 */
    nsa_block_mask_to_string(bm, 20, 20, 4, NULL, 0, &len);
    text = (char *)malloc(len + 1);
    if (!text)
        return cli_usage_error(a, "out of memory");
    nsa_block_mask_to_string(bm, 20, 20, 4, text, len + 1, &len);
    rc = cli_write_text(a, "to_string.txt", text);
    free(text);
    if (rc)
        return rc;
    nsa_block_mask_sparsity(bm, &sp);
    py_repr(sp, num, sizeof num);
    snprintf(info_text, sizeof info_text, "sparsity = %s\nnumel = %lld\nshape = (%lld, %lld, %lld, %lld)\n",
             num, (long long)info.numel, (long long)info.batch, (long long)info.heads,
             (long long)info.q_len, (long long)info.kv_len);
    return cli_write_text(a, "info.txt", info_text);
}

int cmd_block_mask(cli_args *a)
{
    bm_call c;
    flex_mods m;
    int rc;
    memset(&c, 0, sizeof c);
    memset(&m, 0, sizeof m);
    c.ctx = cli_context(a);
    c.B = c.H = 1;
    if ((rc = cli_param_int64(a, "batch", &c.B, 0)) != 0 ||
        (rc = cli_param_int64(a, "heads", &c.H, 0)) != 0 ||
        (rc = cli_param_int64(a, "q-len", &c.L, 1)) != 0 ||
        (rc = cli_param_int64(a, "kv-len", &c.S, 1)) != 0 ||
        (rc = flex_mods_block_size(a, &c.bq, &c.bk)) != 0 ||
        (rc = flex_mods_mask(a, &m)) != 0) {
        flex_mods_free(&m);
        return rc;
    }
    if (m.from_kv_blocks) {
        rc = flex_mods_kv_blocks(a, c.bq, c.bk, c.L, c.S, &c.bm);
    } else {
        c.mm = m.mask; /* "none" is the noop mask here */
        rc = cli_run(a, run, &c);
    }
    if (!rc)
        rc = write_all(a, c.bm);
    nsa_block_mask_free(c.bm);
    flex_mods_free(&m);
    return rc;
}
