/* SPDX-License-Identifier: Apache-2.0 */
/* The bandwidth ceiling on its own: a streaming read of 1 GiB (DRAM, past any cache). */
#include <stdio.h>

#include "bench_cases.h"
#include "bench_util.h"

static int run(const bench_env *env, bench_row *rows, int cap)
{
    double bw = bench_stream_read((size_t)1 << 30, env->threads, bench_reps());
    if (cap < 1)
        return 0;
    snprintf(rows[0].label, sizeof rows[0].label, "ceiling: stream read 1 GiB (GB/s)");
    rows[0].measured = bw * 1e-9;
    rows[0].unit = "GB";
    rows[0].figure = 1.0;
    rows[0].target = 0.0;
    rows[0].lower_is_better = 0;
    return 1;
}

const bench_case bench_stream_ceiling = {"ceiling_stream", run, 0};
