/* SPDX-License-Identifier: Apache-2.0 */
/* libnsa's benchmark: every performance target as a ratio measured in this run, on 1 and 2
 * threads, median of several repetitions, next to the machine's own ceilings (cblas_sgemm on
 * large squares; a streaming read of a buffer as large as the data a case reads).
 *
 *   nsa_bench [--reps N] [--threads LIST] [--scale F] [--small-pages] [CASE...]
 *
 * --scale shrinks sequence lengths (e.g. 0.25 for a quick look); CASE names select rows.
 * Large buffers, the ceilings' and the cases' alike, go on transparent huge pages unless
 * --small-pages (bench_alloc). */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_cases.h"
#include "bench_util.h"

static int g_reps = 5;
static double g_scale = 1.0;

int bench_reps(void)
{
    return g_reps;
}

int64_t bench_len(int64_t full)
{
    int64_t v = (int64_t)((double)full * g_scale);
    return v < 256 ? 256 : v - v % 256;
}

double bench_time_op(nsa_status (*run)(void *arg, nsa_context *ctx), void *arg,
                     nsa_context *ctx)
{
    double t[64];
    int reps = bench_time_rounds(1, &run, &arg, ctx, NULL, NULL, 0, t);
    return reps ? bench_median(t, reps) : NAN;
}

int bench_time_rounds(int nops, const bench_op_fn *run, void *const *arg, nsa_context *ctx,
                      double (*pass)(void *), void *pass_arg, int min_reps, double *t)
{
    int r, i, reps = g_reps > min_reps ? g_reps : min_reps;
    if (reps > 64)
        reps = 64;
    for (r = -1; r < reps; r++) /* round -1 warms up */
        for (i = 0; i < nops; i++) {
            double t0, dt;
            if (!run[i]) {
                dt = pass(pass_arg);
            } else {
                t0 = bench_now();
                if (run[i](arg[i], ctx) != NSA_SUCCESS) {
                    fprintf(stderr, "nsa_bench: %s\n", nsa_last_error());
                    return 0;
                }
                dt = bench_now() - t0;
            }
            if (r >= 0)
                t[i * reps + r] = dt;
        }
    return reps;
}

int bench_rounds_vs_sgemm(const bench_env *env, int nops, const bench_op_fn *run,
                          void *const *arg, double *t, double *sgemm_flops)
{
    bench_op_fn fns[8];
    void *args[8];
    bench_sgemm *g;
    int i, reps;
    if (nops < 1 || nops > 7)
        return 0;
    for (i = 0; i < nops; i++) {
        fns[i] = run[i];
        args[i] = arg[i];
    }
    fns[nops] = NULL; /* the sgemm pass */
    args[nops] = NULL;
    g = bench_sgemm_new(2048, env->threads);
    reps = g ? bench_time_rounds(nops + 1, fns, args, env->ctx, bench_sgemm_pass, g, 0, t) : 0;
    *sgemm_flops = g ? bench_sgemm_flops(g) : 0.0;
    bench_sgemm_free(g);
    return reps;
}

double bench_time_vs_sgemm(const bench_env *env, bench_op_fn run, void *arg, double flops,
                           double *ratio)
{
    double t[2 * 64], sgemm_flops;
    const int reps = bench_rounds_vs_sgemm(env, 1, &run, &arg, t, &sgemm_flops);
    if (!reps) {
        *ratio = NAN;
        return NAN;
    }
    /* (flops / t_op) / (sgemm_flops / t_sgemm), per round */
    *ratio = bench_median_ratio(t + reps, t, reps) * flops / sgemm_flops;
    return bench_median(t, reps);
}

double bench_median_ratio(const double *num, const double *den, int reps)
{
    double q[64];
    int r;
    for (r = 0; r < reps; r++)
        q[r] = num[r] / den[r];
    return bench_median(q, reps);
}

void bench_set_row(bench_row *r, double measured, const char *unit, double figure, double target,
                   int lower_is_better, const char *label_fmt, ...)
{
    va_list ap;
    va_start(ap, label_fmt);
    vsnprintf(r->label, sizeof r->label, label_fmt, ap);
    va_end(ap);
    r->measured = measured;
    r->unit = unit;
    r->figure = figure;
    r->target = target;
    r->lower_is_better = lower_is_better;
}

void bench_fill(float *x, size_t n, unsigned seed)
{
    size_t i;
    uint32_t s = seed * 2654435761u + 1u;
    for (i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        x[i] = (float)((int32_t)(s >> 8) % 2001) * 0.0005f;
    }
}

void *bench_values(size_t n, unsigned seed, nsa_dtype dt)
{
    float *f = (float *)bench_alloc(n * sizeof(float));
    void *out;
    bench_fill(f, n, seed);
    if (dt == NSA_DTYPE_F32)
        return f;
    out = bench_alloc(n * nsa_dtype_size(dt));
    nsa_convert(f, NSA_DTYPE_F32, 1, out, dt, 1, (int64_t)n, NSA_ROUND_NEAREST_EVEN);
    free(f);
    return out;
}

static const bench_case *g_cases[] = {
#define BENCH_CASE(name) &name,
#include "bench_case_list.h"
#undef BENCH_CASE
};

static int selected(const bench_case *c, int argc, char **argv, int first)
{
    const char *name = c->name;
    int i;
    if (first >= argc)
        return !c->on_request;
    for (i = first; i < argc; i++)
        if (strstr(name, argv[i]))
            return 1;
    return 0;
}

int main(int argc, char **argv)
{
    int threads[4] = {1, 2, 0, 0}, nthreads = 2, i, first = 1, t;
    size_t c;
    while (first < argc && strncmp(argv[first], "--", 2) == 0) {
        if (!strcmp(argv[first], "--small-pages")) {
            bench_set_small_pages(1);
            first += 1;
            continue;
        }
        if (!strcmp(argv[first], "--reps") && first + 1 < argc) {
            g_reps = atoi(argv[first + 1]);
        } else if (!strcmp(argv[first], "--scale") && first + 1 < argc) {
            g_scale = atof(argv[first + 1]);
        } else if (!strcmp(argv[first], "--threads") && first + 1 < argc) {
            char *p = argv[first + 1];
            nthreads = 0;
            while (*p && nthreads < 4) {
                threads[nthreads++] = (int)strtol(p, &p, 10);
                if (*p == ',')
                    p++;
            }
        } else {
            fprintf(stderr, "usage: nsa_bench [--reps N] [--threads 1,2] [--scale F] "
                            "[--small-pages] [CASE...]\n");
            return 2;
        }
        first += 2;
    }
    if (g_reps < 1)
        g_reps = 1;
    printf("libnsa %s  %s\n", nsa_version_string(), nsa_build_info());
    printf("median of %d runs; sequence scale %.3g; buffers of 2 MiB or more on %s\n\n", g_reps,
           g_scale, bench_small_pages() ? "the system's default pages" : "huge pages (advised)");
    printf("%-58s %3s %12s %9s %8s %s\n", "case", "thr", "measured", "figure", "target",
           "");
    for (t = 0; t < nthreads; t++) {
        nsa_context_config cfg = NSA_CONTEXT_CONFIG_INIT;
        nsa_context *ctx = NULL;
        bench_env env;
        cfg.num_threads = threads[t];
        if (nsa_context_create(&cfg, &ctx) != NSA_SUCCESS) {
            fprintf(stderr, "nsa_bench: %s\n", nsa_last_error());
            return 1;
        }
        env.ctx = ctx;
        env.threads = threads[t];
        env.sgemm_gflops = bench_sgemm_gflops(2048, threads[t], g_reps);
        printf("%-58s %3d %9.1f GF %9s %8s\n", "ceiling: cblas_sgemm 2048^3", threads[t],
               env.sgemm_gflops, "", "");
        for (c = 0; c < sizeof g_cases / sizeof g_cases[0]; c++) {
            bench_row rows[8];
            int n;
            if (!selected(g_cases[c], argc, argv, first))
                continue;
            n = g_cases[c]->run(&env, rows, 8);
            for (i = 0; i < n; i++) {
                int ok = rows[i].lower_is_better ? rows[i].figure <= rows[i].target
                                                 : rows[i].figure >= rows[i].target;
                printf("%-58s %3d %9.2f %-2s %9.3f %s%7.2f %s\n", rows[i].label, threads[t],
                       rows[i].measured, rows[i].unit, rows[i].figure,
                       rows[i].lower_is_better ? "<=" : ">=", rows[i].target,
                       isnan(rows[i].figure) ? "n/a" : ok ? "ok" : "MISSED");
            }
        }
        nsa_context_destroy(ctx);
    }
    return 0;
}
