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
    bench_set_row(&rows[0], bw * 1e-9, "GB", 1.0, 0.0, 0, "ceiling: stream read 1 GiB (GB/s)");
    return 1;
}

const bench_case bench_stream_ceiling = {"ceiling_stream", run, 0};
