/* SPDX-License-Identifier: Apache-2.0 */
/* `nsa-run selftest`: a hidden operator that exercises the framework without a real op, for
 * the tests of nsa-run itself. It loads --in x=FILE (as the run dtype, or as --as says),
 * copies it to an output and writes it back as x.npy (transposed with --transpose, which
 * writes a strided view), plus info.txt with the dtype, shape, threads and strict level; an
 * optional --in y=FILE is written back unchanged as y.npy.
 * --number, --count, --list and --flag are echoed on stdout; --fail makes the run fail with a
 * real libnsa error (exit 3). */
#include <stdio.h>
#include <string.h>

#include "cli.h"

typedef struct selftest_job {
    nsa_tensor in, out, y;
    size_t bytes;
    int fail;
} selftest_job;

static nsa_status selftest_run(void *arg)
{
    selftest_job *job = (selftest_job *)arg;
    if (job->fail) /* n < 0 is rejected: gives a status and a message */
        return nsa_convert(job->in.data, NSA_DTYPE_F32, 1, job->out.data, NSA_DTYPE_F32, 1, -1,
                           NSA_ROUND_NEAREST_EVEN);
    memcpy(job->out.data, job->in.data, job->bytes);
    return NSA_SUCCESS;
}

static int parse_as(cli_args *a, nsa_dtype *as)
{
    static const struct {
        const char *name;
        nsa_dtype dtype;
    } kinds[] = {{"run", CLI_AS_RUN_DTYPE}, {"stored", CLI_AS_STORED}, {"f32", NSA_DTYPE_F32},
                 {"f16", NSA_DTYPE_F16},    {"bf16", NSA_DTYPE_BF16},  {"i8", NSA_DTYPE_I8},
                 {"u8", NSA_DTYPE_U8},      {"bool", NSA_DTYPE_BOOL},  {"i32", NSA_DTYPE_I32},
                 {"i64", NSA_DTYPE_I64}};
    const char *s = cli_param(a, "as");
    size_t i;
    *as = CLI_AS_RUN_DTYPE;
    if (!s)
        return 0;
    for (i = 0; i < sizeof kinds / sizeof kinds[0]; ++i)
        if (strcmp(s, kinds[i].name) == 0) {
            *as = kinds[i].dtype;
            return 0;
        }
    return cli_usage_error(a, "--as must be run, stored, f32, f16, bf16, i8, u8, bool, i32 or "
                              "i64, got '%s'",
                           s);
}

int cmd_selftest(cli_args *a)
{
    selftest_job job;
    nsa_dtype as;
    double number = 0.0;
    int64_t count = 0, *list = NULL, n_list = 0, i;
    int flag = 0, transpose = 0, rc, k;
    char info[256];
    size_t len;
    memset(&job, 0, sizeof job);
    if ((rc = parse_as(a, &as)) || (rc = cli_param_double(a, "number", &number, 0)) ||
        (rc = cli_param_int64(a, "count", &count, 0)) ||
        (rc = cli_param_int64_list(a, "list", &list, &n_list, 0)) ||
        (rc = cli_flag(a, "flag", &flag)) || (rc = cli_flag(a, "fail", &job.fail)) ||
        (rc = cli_flag(a, "transpose", &transpose)))
        return rc;
    if ((rc = cli_input(a, "x", as, 1, &job.in, NULL)) ||
        (rc = cli_alloc_output(a, job.in.dtype, job.in.ndim, job.in.shape, &job.out)))
        return rc;
    if ((rc = cli_input(a, "y", CLI_AS_STORED, 0, &job.y, NULL)))
        return rc;
    job.bytes = (size_t)nsa_tensor_numel(&job.in) * nsa_dtype_size(job.in.dtype);
    printf("number=%.17g count=%lld flag=%d list=", number, (long long)count, flag);
    for (i = 0; i < n_list; ++i)
        printf("%s%lld", i ? "," : "", (long long)list[i]);
    printf("\n");
    fflush(stdout);
    if ((rc = cli_run(a, selftest_run, &job)))
        return rc;
    if (transpose) { /* the same bytes seen with the axes reversed: a strided view */
        nsa_tensor t = job.out;
        for (k = 0; k < job.out.ndim; ++k) {
            t.shape[k] = job.out.shape[job.out.ndim - 1 - k];
            t.stride[k] = job.out.stride[job.out.ndim - 1 - k];
        }
        job.out = t;
    }
    len = (size_t)snprintf(info, sizeof info, "dtype = %s\nshape = (",
                           nsa_dtype_name(job.out.dtype));
    for (k = 0; k < job.out.ndim && len < sizeof info; ++k)
        len += (size_t)snprintf(info + len, sizeof info - len, "%s%lld", k ? ", " : "",
                                (long long)job.out.shape[k]);
    if (len < sizeof info)
        snprintf(info + len, sizeof info - len, ")\nthreads = %d\nstrict = %d\n",
                 nsa_context_num_threads(cli_context(a)), cli_strict(a));
    if ((rc = cli_write_output(a, "x", &job.out)) || (rc = cli_write_text(a, "info.txt", info)))
        return rc;
    if (job.y.data && (rc = cli_write_output(a, "y", &job.y)))
        return rc;
    return 0;
}
