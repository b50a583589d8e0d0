/* SPDX-License-Identifier: Apache-2.0 */
/* End-to-end tests of the nsa-run framework through its hidden `selftest` operator (which
 * loads --in x, copies it and writes it back as x.npy): dtype conversion on load with round
 * to nearest even (expected bits worked out by hand at the ties, not computed by libnsa),
 * output formats, strided outputs, option forms, parameter parsing, exit statuses and the
 * --repeat line. Input files are written byte by byte here, not by nsa-run's writer. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test_util.h"

static char tmpdir[64];
static char out_text[8192], err_text[8192];

/* ---- helpers ------------------------------------------------------------------------------- */

static void slurp(const char *path, char *buf, size_t cap)
{
    FILE *f = fopen(path, "rb");
    size_t n = 0;
    if (f) {
        n = fread(buf, 1, cap - 1, f);
        fclose(f);
    }
    buf[n] = '\0';
}

/* Run nsa-run with the given arguments (NULL-terminated); returns its exit status and leaves
 * its stdout and stderr in out_text and err_text. */
static int run(const char *const *args)
{
    char outp[128], errp[128];
    const char *argv[64];
    int n = 0, status = 0;
    pid_t pid;
    argv[n++] = NSA_RUN_EXE;
    while (args[n - 1])
        argv[n] = args[n - 1], n++;
    argv[n] = NULL;
    snprintf(outp, sizeof outp, "%s/stdout.txt", tmpdir);
    snprintf(errp, sizeof errp, "%s/stderr.txt", tmpdir);
    fflush(NULL);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (!freopen(outp, "w", stdout) || !freopen(errp, "w", stderr))
            _exit(127);
        execv(NSA_RUN_EXE, (char *const *)argv);
        _exit(127);
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    slurp(outp, out_text, sizeof out_text);
    slurp(errp, err_text, sizeof err_text);
    assert_true(WIFEXITED(status)); /* never a crash */
    return WEXITSTATUS(status);
}

static const char *path_in_tmp(const char *name)
{
    static char paths[128][256]; /* never reused within a run: callers keep them */
    static int next;
    char *p = paths[next++ % 128];
    snprintf(p, 256, "%s/%s", tmpdir, name);
    return p;
}

/* A .npy file with header dict `dict` (format 1.0) and raw little-endian data. */
static void write_npy(const char *name, const char *dict, const void *data, size_t nbytes)
{
    unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, 0, 0};
    size_t dl = strlen(dict), hlen = ((10 + dl + 1 + 63) / 64) * 64 - 10, i;
    FILE *f = fopen(path_in_tmp(name), "wb");
    assert_non_null(f);
    pre[8] = (unsigned char)(hlen & 0xff);
    pre[9] = (unsigned char)(hlen >> 8);
    fwrite(pre, 1, 10, f);
    fwrite(dict, 1, dl, f);
    for (i = dl; i + 1 < hlen; ++i)
        fputc(' ', f);
    fputc('\n', f);
    if (nbytes)
        fwrite(data, 1, nbytes, f);
    assert_int_equal(fclose(f), 0);
}

/* Read an output file: checks the exact numpy header and returns the data (caller frees). */
static void *read_output(const char *dir, const char *name, const char *descr, const char *shape,
                         size_t nbytes)
{
    char path[256], expect[160];
    unsigned char *buf = (unsigned char *)malloc(4096);
    size_t n, hlen;
    FILE *f;
    assert_non_null(buf);
    snprintf(path, sizeof path, "%s/%s", dir, name);
    f = fopen(path, "rb");
    if (!f)
        fail_msg("no output %s", path);
    n = fread(buf, 1, 4096, f);
    fclose(f);
    assert_true(n >= 10 && memcmp(buf, "\x93NUMPY\x01\x00", 8) == 0);
    hlen = (size_t)buf[8] | (size_t)buf[9] << 8;
    assert_int_equal((10 + hlen) % 64, 0);
    snprintf(expect, sizeof expect, "{'descr': '%s', 'fortran_order': False, 'shape': %s, }",
             descr, shape);
    if (memcmp(buf + 10, expect, strlen(expect)) != 0)
        fail_msg("%s: header '%.*s', expected '%s'", name, (int)strlen(expect), buf + 10, expect);
    assert_int_equal(n, 10 + hlen + nbytes);
    memmove(buf, buf + 10 + hlen, nbytes);
    return buf;
}

static float bits_f32(uint32_t b)
{
    float f;
    memcpy(&f, &b, 4);
    return f;
}

static uint32_t f32_bits(float f)
{
    uint32_t b;
    memcpy(&b, &f, 4);
    return b;
}

#define F4_HDR(shape) "{'descr': '<f4', 'fortran_order': False, 'shape': " shape ", }"

/* ---- tests --------------------------------------------------------------------------------- */

static int setup(void **state)
{
    const uint16_t one = 1;
    unsigned char first;
    (void)state;
    memcpy(&first, &one, 1);
    if (first != 1) /* the files below are written in host order */
        return -1;
    strcpy(tmpdir, "/tmp/nsa_test_cli_XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
    char cmd[128];
    (void)state;
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

/* f32 values at and beside the rounding ties of f16 and bf16. */
static const uint32_t tie_bits[] = {
    0x3f801000u, /* 1 + 2^-11: f16 tie between 1 and 1+2^-10 -> even: 1 */
    0x3f803000u, /* 1 + 3*2^-11: f16 tie -> even: 1 + 2^-9 */
    0x3f801001u, /* just above the f16 tie: 1 + 2^-10 */
    0x3f808000u, /* 1 + 2^-8: bf16 tie -> even: 1; f16 exact */
    0x3f818000u, /* 1 + 3*2^-8: bf16 tie -> even: 1 + 2^-6; f16 exact */
    0x477ff000u, /* 65520: f16 tie between 65504 and 2^16 -> inf; bf16: 65536 */
    0x33000001u, /* 2^-25 + tiny: f16 subnormal, rounds up to 2^-24 */
    0x7fc00000u, /* NaN stays NaN */
};

static void test_f16_bf16_rounding(void **state)
{
    static const char *args_f16[] = {"selftest", "--in", NULL, "--dtype", "f16", "--out", NULL,
                                     NULL};
    float in[8];
    float *got;
    const float expect_f16[8] = {1.0f, 1.0f + 0x1p-9f, 1.0f + 0x1p-10f, 1.0f + 0x1p-8f,
                                 1.0f + 3 * 0x1p-8f, INFINITY, 0x1p-24f, NAN};
    const float expect_bf16[8] = {1.0f, 1.0f, 1.0f, 1.0f, 1.0f + 0x1p-6f, 65536.0f, 0x1p-25f, NAN};
    char xarg[300];
    const char *out = path_in_tmp("round_out");
    int i;
    (void)state;
    for (i = 0; i < 8; ++i)
        in[i] = bits_f32(tie_bits[i]);
    write_npy("ties.npy", F4_HDR("(2, 4)"), in, sizeof in);
    snprintf(xarg, sizeof xarg, "x=%s", path_in_tmp("ties.npy"));
    args_f16[2] = xarg;
    args_f16[6] = out;
    assert_int_equal(run(args_f16), 0);
    got = (float *)read_output(out, "x.npy", "<f4", "(2, 4)", sizeof in);
    for (i = 0; i < 7; ++i)
        if (f32_bits(got[i]) != f32_bits(expect_f16[i]))
            fail_msg("f16 element %d: got %a, expected %a", i, (double)got[i],
                     (double)expect_f16[i]);
    assert_true(isnan(got[7]));
    free(got);
    slurp(path_in_tmp("round_out/info.txt"), out_text, sizeof out_text);
    assert_non_null(strstr(out_text, "dtype = f16\nshape = (2, 4)\n"));

    args_f16[4] = "bf16";
    assert_int_equal(run(args_f16), 0);
    got = (float *)read_output(out, "x.npy", "<f4", "(2, 4)", sizeof in);
    /* 2^-25 + 2^-48 in bf16: 8 significant bits: 2^-25 exactly (the tiny part is lost) */
    for (i = 0; i < 7; ++i)
        if (f32_bits(got[i]) != f32_bits(expect_bf16[i]))
            fail_msg("bf16 element %d: got %a, expected %a", i, (double)got[i],
                     (double)expect_bf16[i]);
    assert_true(isnan(got[7]));
    free(got);
}

/* <f8 input rounded once, not twice: 1 + 2^-11 + 2^-40 rounds to f32 as the exact f16 tie
 * 1 + 2^-11, which a double rounding would send to 1; correctly rounded it is 1 + 2^-10. */
static void test_f64_single_rounding(void **state)
{
    const double in[3] = {1.0 + 0x1p-11 + 0x1p-40, 1.0 + 0x1p-8 + 0x1p-40, 1e300};
    const char *args[] = {"selftest", "--in", NULL, "--dtype", "f16", "--out", NULL, NULL};
    char xarg[300];
    const char *out = path_in_tmp("f64_out");
    float *got;
    (void)state;
    write_npy("f64.npy", "{'descr': '<f8', 'fortran_order': False, 'shape': (3,), }", in,
              sizeof in);
    snprintf(xarg, sizeof xarg, "x=%s", path_in_tmp("f64.npy"));
    args[2] = xarg;
    args[6] = out;
    assert_int_equal(run(args), 0);
    got = (float *)read_output(out, "x.npy", "<f4", "(3,)", 12);
    assert_true(got[0] == 1.0f + 0x1p-10f);
    assert_true(got[1] == 1.0f + 0x1p-8f); /* exact in f16 */
    assert_true(isinf(got[2]) && got[2] > 0);
    free(got);
    args[4] = "bf16";
    assert_int_equal(run(args), 0);
    got = (float *)read_output(out, "x.npy", "<f4", "(3,)", 12);
    assert_true(got[0] == 1.0f);
    assert_true(got[1] == 1.0f + 0x1p-7f); /* above the bf16 tie */
    assert_true(isinf(got[2]));
    free(got);
    args[4] = "f32";
    assert_int_equal(run(args), 0);
    got = (float *)read_output(out, "x.npy", "<f4", "(3,)", 12);
    assert_true(got[0] == (float)in[0]);
    free(got);
}

/* Integer files keep their type under --dtype; outputs as <i4, |i1, |u1, |b1, <i8. */
static void test_integer_inputs(void **state)
{
    const int32_t i4[4] = {1, -2, 300, INT32_MIN};
    const int64_t i8[2] = {INT64_MAX, -5};
    const unsigned char b1[3] = {0, 1, 1};
    const char *args[] = {"selftest", "--in", NULL, "--dtype", "bf16", "--as", "run", "--out",
                          NULL, NULL};
    char xarg[300];
    const char *out = path_in_tmp("int_out");
    void *got;
    (void)state;
    args[8] = out;
    write_npy("i4.npy", "{'descr': '<i4', 'fortran_order': False, 'shape': (4,), }", i4,
              sizeof i4);
    snprintf(xarg, sizeof xarg, "x=%s", path_in_tmp("i4.npy"));
    args[2] = xarg;
    assert_int_equal(run(args), 0);
    got = read_output(out, "x.npy", "<i4", "(4,)", sizeof i4);
    assert_memory_equal(got, i4, sizeof i4);
    free(got);

    /* i4 -> i8 fails on 300 with the value and index named; -> i64 widens */
    args[6] = "i8";
    assert_int_equal(run(args), 2);
    assert_non_null(strstr(err_text, "input 'x': value 300 at flat index 2 does not fit i8"));
    args[6] = "i64";
    assert_int_equal(run(args), 0);
    got = read_output(out, "x.npy", "<i8", "(4,)", 32);
    assert_true(((int64_t *)got)[3] == INT32_MIN);
    free(got);
    args[6] = "bool";
    assert_int_equal(run(args), 0);
    got = read_output(out, "x.npy", "|b1", "(4,)", 4);
    assert_memory_equal(got, "\1\1\1\1", 4);
    free(got);
    args[6] = "f32"; /* ints may be asked for as floats */
    assert_int_equal(run(args), 0);
    got = read_output(out, "x.npy", "<f4", "(4,)", 16);
    assert_true(((float *)got)[2] == 300.0f && ((float *)got)[3] == -2147483648.0f);
    free(got);

    write_npy("i8.npy", "{'descr': '<i8', 'fortran_order': False, 'shape': (2,), }", i8,
              sizeof i8);
    snprintf(xarg, sizeof xarg, "x=%s", path_in_tmp("i8.npy"));
    args[6] = "stored";
    assert_int_equal(run(args), 0);
    got = read_output(out, "x.npy", "<i8", "(2,)", 16);
    assert_memory_equal(got, i8, sizeof i8);
    free(got);
    args[6] = "i32";
    assert_int_equal(run(args), 2);
    assert_non_null(strstr(err_text, "does not fit i32"));

    write_npy("b1.npy", "{'descr': '|b1', 'fortran_order': False, 'shape': (3,), }", b1, 3);
    snprintf(xarg, sizeof xarg, "x=%s", path_in_tmp("b1.npy"));
    args[6] = "u8";
    assert_int_equal(run(args), 0);
    got = read_output(out, "x.npy", "|u1", "(3,)", 3);
    assert_memory_equal(got, b1, 3);
    free(got);

    /* a float file where integers are required */
    snprintf(xarg, sizeof xarg, "x=%s", path_in_tmp("ties.npy"));
    write_npy("ties.npy", F4_HDR("(1,)"), "\0\0\x80\x3f", 4);
    args[6] = "i32";
    assert_int_equal(run(args), 2);
    if (!strstr(err_text, "input 'x' must hold integers (i32), the file holds <f4"))
        fail_msg("unexpected message: %s", err_text);
}

/* A strided output view (the input seen transposed) is written in C order of the view. */
static void test_strided_output_and_f16_file(void **state)
{
    const uint16_t f2[6] = {0x3c00, 0x4000, 0x4200, 0x4400, 0x4500, 0x4600}; /* 1..6 */
    const float expect[6] = {1, 4, 2, 5, 3, 6};
    const char *args[] = {"selftest", "--in", NULL, "--as", "stored", "--transpose", "--out",
                          NULL, "--in", NULL, NULL};
    char yarg[300];
    const float expect_y[6] = {1, 2, 3, 4, 5, 6};
    char xarg[300];
    const char *out = path_in_tmp("strided_out");
    float *got;
    (void)state;
    write_npy("f2.npy", "{'descr': '<f2', 'fortran_order': False, 'shape': (2, 3), }", f2,
              sizeof f2);
    snprintf(xarg, sizeof xarg, "x=%s", path_in_tmp("f2.npy"));
    args[2] = xarg;
    args[7] = out;
    snprintf(yarg, sizeof yarg, "y=%s", path_in_tmp("f2.npy"));
    args[9] = yarg; /* an optional input (cli_input, not required), written back as stored */
    assert_int_equal(run(args), 0);
    got = (float *)read_output(out, "x.npy", "<f4", "(3, 2)", 24);
    assert_memory_equal(got, expect, sizeof expect);
    free(got);
    got = (float *)read_output(out, "y.npy", "<f4", "(2, 3)", 24);
    assert_memory_equal(got, expect_y, sizeof expect_y);
    free(got);
}

static void test_parameters(void **state)
{
    const char *args[] = {"selftest", "--in", NULL, "--number=-2.5e-3", "--count", "-7", "--list",
                          "128,256,-1", "--flag", "--threads", "1", "--strict", "--out", NULL,
                          NULL};
    char xarg[300];
    const char *out = path_in_tmp("param_out");
    (void)state;
    write_npy("p.npy", F4_HDR("()"), "\0\0\x80\x3f", 4);
    snprintf(xarg, sizeof xarg, "x=%s", path_in_tmp("p.npy"));
    args[2] = xarg;
    args[13] = out;
    assert_int_equal(run(args), 0);
    assert_non_null(strstr(out_text, "number=-0.0025000000000000001 count=-7 flag=1 "
                                     "list=128,256,-1"));
    slurp(path_in_tmp("param_out/info.txt"), out_text, sizeof out_text);
    /* a 0-d array is loaded as one element */
    assert_non_null(strstr(out_text, "shape = (1)\nthreads = 1\nstrict = 1\n"));
    free(read_output(out, "x.npy", "<f4", "(1,)", 4));

    /* malformed values */
    args[3] = "--number=abc";
    assert_int_equal(run(args), 2);
    assert_non_null(strstr(err_text, "--number expects a number, got 'abc'"));
    args[3] = "--number=1";
    args[5] = "7x";
    assert_int_equal(run(args), 2);
    assert_non_null(strstr(err_text, "--count expects an integer, got '7x'"));
    args[5] = "99999999999999999999";
    assert_int_equal(run(args), 2);
    args[5] = "7";
    args[7] = "1,,2";
    assert_int_equal(run(args), 2);
    assert_non_null(strstr(err_text, "--list expects comma-separated integers, got '1,,2'"));
    args[7] = "1,2";
    args[8] = "--flag=yes";
    assert_int_equal(run(args), 2);
    assert_non_null(strstr(err_text, "--flag takes no value, got 'yes'"));
    args[8] = "--flag";
    args[10] = "0";
    assert_int_equal(run(args), 2);
    assert_non_null(strstr(err_text, "--threads expects an integer in [1, 4096], got '0'"));
    args[10] = "1";
    args[11] = "--count"; /* given twice */
    assert_int_equal(run(args), 2);
    assert_non_null(strstr(err_text, "option --count is given more than once"));
}

static void test_usage_errors(void **state)
{
    char xarg[300], yarg[300];
    const char *out = path_in_tmp("usage_out");
    const char *dup[] = {"selftest", "--in", xarg, "--in", xarg, "--out", out, NULL};
    const char *stray[] = {"selftest", "--in", xarg, "stray", "--out", out, NULL};
    const char *bad_in[] = {"selftest", "--in", "x", "--out", out, NULL};
    const char *five_d[] = {"selftest", "--in", yarg, "--out", out, NULL};
    const char *not_dir[] = {"selftest", "--in", xarg, "--out", NULL, NULL};
    const unsigned char z[32] = {0};
    (void)state;
    write_npy("u.npy", F4_HDR("(2,)"), z, 8);
    snprintf(xarg, sizeof xarg, "x=%s", path_in_tmp("u.npy"));
    assert_int_equal(run(dup), 2);
    assert_non_null(strstr(err_text, "input 'x' is given more than once"));
    assert_int_equal(run(stray), 2);
    assert_non_null(strstr(err_text, "unexpected argument 'stray'"));
    assert_int_equal(run(bad_in), 2);
    assert_non_null(strstr(err_text, "--in expects NAME=FILE.npy, got 'x'"));
    write_npy("5d.npy", "{'descr': '|u1', 'fortran_order': False, 'shape': (1, 1, 1, 1, 2), }", z,
              2);
    snprintf(yarg, sizeof yarg, "x=%s", path_in_tmp("5d.npy"));
    assert_int_equal(run(five_d), 2);
    assert_non_null(strstr(err_text, "has 5 dimensions, at most 4 are supported"));
    not_dir[4] = path_in_tmp("u.npy"); /* --out names a file */
    assert_int_equal(run(not_dir), 2);
    assert_non_null(strstr(err_text, "is not a directory"));
    /* every error is one line on stderr, nothing on stdout before it */
    assert_non_null(strchr(err_text, '\n'));
    assert_true(strchr(err_text, '\n')[1] == '\0');
}

/* --out creates nested directories; --repeat prints the timing line last on stderr. */
static void test_repeat_and_out_dir(void **state)
{
    char xarg[300];
    const char *out = path_in_tmp("a/b/c");
    const char *args[] = {"selftest", "--in", xarg, "--repeat", "4", "--out", out, NULL};
    const unsigned char z[8] = {0};
    double median = -1, min = -1;
    int runs = 0;
    const char *line;
    (void)state;
    write_npy("r.npy", F4_HDR("(2,)"), z, 8);
    snprintf(xarg, sizeof xarg, "x=%s", path_in_tmp("r.npy"));
    assert_int_equal(run(args), 0);
    line = strstr(err_text, "time: ");
    assert_non_null(line);
    assert_int_equal(sscanf(line, "time: median=%lf ms min=%lf ms runs=%d", &median, &min, &runs),
                     3);
    assert_int_equal(runs, 4);
    assert_true(min >= 0 && median >= min);
    assert_true(strchr(line, '\n')[1] == '\0'); /* the last line */
    free(read_output(out, "x.npy", "<f4", "(2,)", 8));
    args[4] = "-1";
    assert_int_equal(run(args), 2);
    args[4] = "0"; /* no extra runs: no timing line */
    assert_int_equal(run(args), 0);
    assert_null(strstr(err_text, "time:"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_f16_bf16_rounding),
        cmocka_unit_test(test_f64_single_rounding),
        cmocka_unit_test(test_integer_inputs),
        cmocka_unit_test(test_strided_output_and_f16_file),
        cmocka_unit_test(test_parameters),
        cmocka_unit_test(test_usage_errors),
        cmocka_unit_test(test_repeat_and_out_dir),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
