/* SPDX-License-Identifier: Apache-2.0 */
/* Mask expressions and score_mod names shared by `nsa-run flex-attention` and
 * `nsa-run block-mask` (contract: ../shared/spec/cli.md). */
#ifndef NSA_RUN_FLEX_MODS_H
#define NSA_RUN_FLEX_MODS_H

#include "cli.h"

/* What --mask / --score-mod produced. Free with flex_mods_free(). */
typedef struct flex_mods {
    int no_mask;             /* --mask none: no block mask at all */
    int from_kv_blocks;      /* --mask from_kv_blocks: the kv_* inputs give the blocks */
    nsa_mask_mod *mask;      /* the parsed expression otherwise */
    nsa_score_mod *score;    /* NULL = none */
    int64_t late_start[16];  /* parameters of late_start:N callbacks (stable addresses) */
    int num_late;
} flex_mods;

/* Parse --mask (default "none"), --doc-lengths and the doc_ids input. Returns 0 or the exit
 * code after printing the error. */
int flex_mods_mask(cli_args *a, flex_mods *m);

/* Parse --score-mod (default "none") with the alibi_slopes / bias_table inputs. */
int flex_mods_score(cli_args *a, flex_mods *m, int64_t heads);

/* --block-size Q[,KV] (default 128). */
int flex_mods_block_size(cli_args *a, int64_t *q_block, int64_t *kv_block);

/* Build the block mask of a from_kv_blocks run from the kv_* inputs. */
int flex_mods_kv_blocks(cli_args *a, int64_t q_block, int64_t kv_block, int64_t q_len,
                        int64_t kv_len, nsa_block_mask **out);

void flex_mods_free(flex_mods *m);

#endif
