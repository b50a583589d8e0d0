/* SPDX-License-Identifier: Apache-2.0 */
/* The interface between nsa_bench and its cases (one file per operator, bench_<op>.c). */
#ifndef NSA_BENCH_CASES_H
#define NSA_BENCH_CASES_H

#include <stddef.h>
#include <stdint.h>

#include "nsa/nsa.h"

typedef struct bench_env {
    nsa_context *ctx;
    int threads;
    double sgemm_gflops; /* the compute ceiling at this thread count */
} bench_env;

/* One printed row: `measured` in `unit`, and the figure compared with the target. */
typedef struct bench_row {
    char label[96];
    double measured;
    const char *unit;
    double figure;
    double target;
    int lower_is_better;
} bench_row;

/* A case fills up to `cap` rows and returns how many. */
typedef struct bench_case {
    const char *name;
    int (*run)(const bench_env *env, bench_row *rows, int cap);
    int on_request; /* 1: slow; runs only when named on the command line */
} bench_case;

int bench_reps(void);
/* A sequence length scaled by --scale (multiple of 256, at least 256). */
int64_t bench_len(int64_t full);
/* Median seconds of `run` over the repetitions, after one warm-up; NAN if it fails. */
double bench_time_op(nsa_status (*run)(void *arg, nsa_context *ctx), void *arg,
                     nsa_context *ctx);
/* Rounds of the ops in turn: round r runs run[i](arg[i]) for every i, so a slow phase of a
 * shared machine hits them alike; ratios are taken per round (after one warm-up round). The
 * rounds are --reps, at least min_reps (cases of a few milliseconds take more: their ratios
 * scatter more), at most 64. t[i * reps + r] = seconds; returns reps, 0 if an op fails. A NULL
 * run[i] is one pass of the ceiling instead: `pass(pass_arg)` returns its seconds
 * (bench_stream_pass, bench_sgemm_pass). */
typedef nsa_status (*bench_op_fn)(void *arg, nsa_context *ctx);
int bench_time_rounds(int nops, const bench_op_fn *run, void *const *arg, nsa_context *ctx,
                      double (*pass)(void *), void *pass_arg, int min_reps, double *t);
/* bench_time_rounds of the nops ops (at most 7) and a 2048^3 sgemm pass on the env's threads
 * (the compute ceiling), whose seconds go to t[nops * reps + r]; *sgemm_flops = one pass's
 * flops. Returns reps, 0 on failure. */
struct bench_env;
int bench_rounds_vs_sgemm(const struct bench_env *env, int nops, const bench_op_fn *run,
                          void *const *arg, double *t, double *sgemm_flops);
/* Median seconds of `run` and, from the same rounds, the median of its GFLOP/s (`flops` per
 * run) divided by the sgemm's: *ratio. NAN if it fails. */
double bench_time_vs_sgemm(const struct bench_env *env, bench_op_fn run, void *arg, double flops,
                           double *ratio);
/* Median over rounds r of num[r] / den[r] (bench_median sorts its input: take ratios first). */
double bench_median_ratio(const double *num, const double *den, int reps);
/* Fill a row; the label is a printf format. */
void bench_set_row(bench_row *r, double measured, const char *unit, double figure, double target,
                   int lower_is_better, const char *label_fmt, ...);
/* Deterministic values in [-0.5, 0.5]. */
void bench_fill(float *x, size_t n, unsigned seed);
/* n elements of dt (bench_alloc'ed, free them): bench_fill(seed) converted round to nearest
 * even. */
void *bench_values(size_t n, unsigned seed, nsa_dtype dt);

/* The cases (defined in bench_<op>.c, listed in bench_case_list.h). */
#define BENCH_CASE(name) extern const bench_case name;
#include "bench_case_list.h"
#undef BENCH_CASE

#endif
