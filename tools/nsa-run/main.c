/* SPDX-License-Identifier: Apache-2.0 */
/* nsa-run: run one libnsa operator on .npy files (contract: spec/cli.md, docs/nsa-run.md). */
#include <stdio.h>
#include <string.h>

#include "cli.h"

typedef struct nsa_run_op {
    const char *name;
    int (*run)(cli_args *a);
    const char *inputs, *params, *outputs;
} nsa_run_op;

static const nsa_run_op ops[] = {
    {"compress", cmd_compress, "input (T,N,D), weight (l,N)",
     "--compress-block-size, --compress-stride, --actual-seq-len", "output"},
    {"compress-attention", cmd_compress_attention,
     "query, key, value, [atten_mask], [topk_mask]",
     "--scale-value, --head-num, --compress-block-size, --compress-stride, --select-block-size, "
     "--select-block-count, --actual-seq-qlen, --actual-cmp-seq-kvlen, [--actual-sel-seq-kvlen]",
     "attention_out, topk_indices, softmax_max, softmax_sum"},
    {"select-attention", cmd_select_attention, "query, key, value, topk_indices, [atten_mask]",
     "--scale-value, --head-num, --select-block-size, --select-block-count, --actual-seq-qlen, "
     "--actual-seq-kvlen, [--sparse-mode 0|2]",
     "attention_out, softmax_max, softmax_sum"},
    {"incre-flash-attention", cmd_incre_flash_attention,
     "query, key, value (or key.0, key.1, ... and value.0, ...), [atten_mask], [pse_shift], "
     "[antiquant_scale], [antiquant_offset], [block_table], [quant_scale2], [quant_offset2]",
     "--num-heads, --num-key-value-heads, --input-layout BSH|BNSD|BSND, --scale-value, "
     "[--actual-seq-lengths], [--block-size], [--kv-padding-size], [--inner-precise]",
     "attention_out (int8 when quant_scale2 is given)"},
    {"flex-attention", cmd_flex_attention,
     "q (B,Hq,L,E), k, v; plus what a mod needs: doc_ids, alibi_slopes, bias_table, "
     "kv_num_blocks, kv_indices, full_kv_num_blocks, full_kv_indices",
     "--mask none|causal|sliding_window:W|prefix_lm:P|document|late_start:N|from_kv_blocks "
     "(or and(...)/or(...) expressions), --score-mod "
     "none|alibi|softcap:C|rel_bias|head_batch_scale, --block-size Q[,KV], [--scale S], "
     "[--enable-gqa], [--doc-lengths L,...]",
     "out, lse"},
    {"block-mask", cmd_block_mask, "the mod inputs of flex-attention",
     "--mask ..., --batch B, --heads H, --q-len L, --kv-len S, --block-size Q[,KV]",
     "kv_num_blocks, kv_indices, full_kv_num_blocks, full_kv_indices, q_num_blocks, q_indices, "
     "full_q_num_blocks, full_q_indices, to_dense, to_string.txt, info.txt"},
    {"selftest", cmd_selftest, "x",
     "[--as run|stored|f32|f16|bf16|i8|u8|bool|i32|i64], [--number X], [--count N], "
     "[--list A,B,...], [--flag], [--transpose], [--fail]",
     "x, info.txt (for testing nsa-run itself: writes the loaded input back)"},
};

#define NUM_OPS (sizeof ops / sizeof ops[0])

static void usage(FILE *f)
{
    size_t i;
    fprintf(f,
            "usage: nsa-run OP [--PARAM VALUE]... --in NAME=FILE.npy [--in NAME=FILE.npy]... "
            "--out DIR\n"
            "       nsa-run OP --help | nsa-run --help | nsa-run --version\n\n"
            "Runs one libnsa operator on NumPy .npy inputs and writes one NAME.npy per "
            "output into DIR.\n\nOperators:\n");
    for (i = 0; i < NUM_OPS; ++i)
        fprintf(f, "  %s%s\n", ops[i].name,
                strcmp(ops[i].name, "selftest") == 0 ? "  (for testing nsa-run itself)" : "");
    fprintf(f,
            "\nOptions of every operator:\n"
            "  --in NAME=FILE     bind an input (.npy 1.0/2.0/3.0, little-endian, C order;\n"
            "                     <f4 <f2 <f8 |i1 |u1 |b1 <i4 <i8)\n"
            "  --out DIR          output directory (created if needed)\n"
            "  --dtype f32|f16|bf16  dtype the op runs in (default f32); float inputs are\n"
            "                     rounded to it (nearest even), ints and masks are kept\n"
            "  --threads N        worker threads (default: all cores)\n"
            "  --strict           the strict validation level\n"
            "  --repeat N         run N more times after the first and print, last on stderr,\n"
            "                     'time: median=<ms> ms min=<ms> ms runs=N'\n"
            "  --help             this text; 'nsa-run OP --help' lists OP's inputs\n\n"
            "Outputs: floats as <f4 (exactly the op's f16/bf16 values), ints as <i4, |i1, |u1.\n"
            "Exit status: 0 success, 2 usage error (unknown option, missing input,\n"
            "unreadable file), 3 the operator failed: 'nsa-run: OP: STATUS: message'.\n");
}

static void op_usage(const nsa_run_op *op)
{
    printf("usage: nsa-run %s [--PARAM VALUE]... --in NAME=FILE.npy ... --out DIR\n\n"
           "inputs (--in NAME=FILE):\n  %s\nparameters:\n  %s\noutputs (in --out DIR):\n  "
           "%s\n\nCommon options: --dtype f32|f16|bf16, --threads N, --strict, --repeat N "
           "(see nsa-run --help).\n",
           op->name, op->inputs, op->params, op->outputs);
}

int main(int argc, char **argv)
{
    const nsa_run_op *op = NULL;
    cli_args *a = NULL;
    size_t i;
    int k, rc;
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("nsa-run %s (%s)\n", nsa_version_string(), nsa_build_info());
        return 0;
    }
    for (i = 0; i < NUM_OPS; ++i)
        if (strcmp(argv[1], ops[i].name) == 0)
            op = &ops[i];
    if (!op) {
        fprintf(stderr, "nsa-run: unknown operator '%s' (see nsa-run --help)\n", argv[1]);
        return 2;
    }
    for (k = 2; k < argc; ++k)
        if (strcmp(argv[k], "--help") == 0 || strcmp(argv[k], "-h") == 0) {
            op_usage(op);
            return 0;
        }
    rc = cli_parse(argc, argv, &a);
    if (rc == 0)
        rc = cli_make_out_dir(a);
    if (rc == 0)
        rc = op->run(a);
    if (rc == 0) /* a subcommand that never called cli_run */
        rc = cli_check_unused(a);
    cli_free(a);
    return rc;
}
