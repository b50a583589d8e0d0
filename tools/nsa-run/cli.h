/* SPDX-License-Identifier: Apache-2.0 */
/* The nsa-run framework every subcommand uses (contract: ../shared/spec/cli.md).
 * Functions returning int give 0 on success, or the process exit code to return (2 for a
 * usage error, 3 for an operator error) after printing the one-line error themselves. */
#ifndef NSA_RUN_CLI_H
#define NSA_RUN_CLI_H

#include <stdint.h>

#include "nsa/nsa.h"

typedef struct cli_args cli_args;

/* How an input is converted when loaded. */
#define CLI_AS_RUN_DTYPE ((nsa_dtype)0) /* float files -> the --dtype the op runs in */
#define CLI_AS_STORED ((nsa_dtype)-1)   /* keep the file's type (ints, masks, int8 caches) */

const char *cli_op(const cli_args *a);
/* The --dtype the op runs in (f32 default). */
nsa_dtype cli_dtype(const cli_args *a);
/* 1 when --strict was given. */
int cli_strict(const cli_args *a);
/* A context with --threads threads (owned by the framework). */
nsa_context *cli_context(const cli_args *a);

/* Raw value of --NAME (name without dashes, e.g. "scale-value"); NULL when absent. Marks the
 * option as used: main reports options no subcommand used as unknown (exit 2). Ask for every
 * option and input before cli_run: it checks for unknown ones first. `--NAME VALUE` and
 * `--NAME=VALUE` are both accepted; an option followed by another `--option` (or by nothing)
 * has the value "" (a flag, see cli_flag). */
const char *cli_param(cli_args *a, const char *name);
/* Numeric options. When absent and not required, *out is left as it was (pre-set the default);
 * when required and absent, or not a number, print a usage error and return 2. */
int cli_param_double(cli_args *a, const char *name, double *out, int required);
int cli_param_int64(cli_args *a, const char *name, int64_t *out, int required);
/* Comma-separated integers ("128,256"); *vals is owned by the framework. When absent and not
 * required, *vals = NULL and *count = 0. */
int cli_param_int64_list(cli_args *a, const char *name, int64_t **vals, int64_t *count,
                         int required);
/* A value-less option such as --enable-gqa: *on = 1 when given, else 0. Returns 2 (usage
 * error) when it was given a value. */
int cli_flag(cli_args *a, const char *name, int *on);

/* Load --in NAME=FILE as a contiguous tensor, converted per `as` (CLI_AS_RUN_DTYPE,
 * CLI_AS_STORED or a specific nsa_dtype). *present is 0 when the input was not given (and
 * not required). Memory is owned by the framework. */
int cli_input(cli_args *a, const char *name, nsa_dtype as, int required, nsa_tensor *t,
              int *present);

/* Allocate a zeroed contiguous output tensor (owned by the framework). */
int cli_alloc_output(cli_args *a, nsa_dtype dtype, int32_t ndim, const int64_t *shape,
                     nsa_tensor *t);
/* Write an output as DIR/NAME.npy: floats as <f4, i32 as <i4, i8 as |i1, u8 as |u1 (bool as
 * |b1, i64 as <i8). Any strides; written in C order of the view. */
int cli_write_output(cli_args *a, const char *name, const nsa_tensor *t);
/* Write DIR/NAME as text. */
int cli_write_text(cli_args *a, const char *name, const char *text);

/* Print "nsa-run: <op>: <message>" and return 2 (usage error). */
int cli_usage_error(cli_args *a, const char *fmt, ...);

/* Print "nsa-run: <op>: <STATUS_NAME>: <message>" for a failed libnsa call (the message made
 * one line, "(no message)" when empty) and return 3 (operator error). */
int cli_op_error(cli_args *a, nsa_status st);

/* Run `fn(arg)` once, then --repeat more times with the timing line; on failure print
 * "nsa-run: <op>: <STATUS_NAME>: <message>" and return 3. Before the first run it reports
 * options and inputs nobody asked for (exit 2). `fn` must give the same outputs when rerun. */
int cli_run(cli_args *a, nsa_status (*fn)(void *arg), void *arg);

/* ---- used by main.c only ---- */
/* Parse argv (argv[1] is the OP) and create the context; returns 0 or 2 (message printed). */
int cli_parse(int argc, char **argv, cli_args **out);
/* Report an option or input no subcommand asked for (exit 2), else 0. */
int cli_check_unused(cli_args *a);
/* Create the --out directory (and its parents) if needed; 0 or 2. */
int cli_make_out_dir(cli_args *a);
void cli_free(cli_args *a);
/* Hidden operator used by the tests of nsa-run itself (selftest.c). */
int cmd_selftest(cli_args *a);

/* Subcommands (one file each). */
int cmd_compress(cli_args *a);
int cmd_compress_attention(cli_args *a);
int cmd_select_attention(cli_args *a);
int cmd_incre_flash_attention(cli_args *a);
int cmd_flex_attention(cli_args *a);
int cmd_block_mask(cli_args *a);

#endif /* NSA_RUN_CLI_H */
