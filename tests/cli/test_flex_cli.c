/* SPDX-License-Identifier: Apache-2.0 */
/* `nsa-run flex-attention` and `nsa-run block-mask` replaying the PyTorch goldens of
 * tests/data/torch (see its README) end to end, including the callback mods (late_start,
 * head_batch_scale), mask expressions and --doc-lengths, plus their exit statuses. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test_util.h"

/* Same bound as tests/golden/test_flex_golden.c (the acceptance bound). */
#define FLEX_ATOL 2e-5

static char tmpdir[64];
static char err_text[4096];

static int run(const char *const *args)
{
    char errp[128];
    const char *argv[48];
    int n = 0, status = 0;
    pid_t pid;
    FILE *f;
    size_t len;
    argv[n++] = NSA_RUN_EXE;
    while (args[n - 1])
        argv[n] = args[n - 1], n++;
    argv[n] = NULL;
    snprintf(errp, sizeof errp, "%s/stderr.txt", tmpdir);
    fflush(NULL);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (!freopen(errp, "w", stderr))
            _exit(127);
        execv(NSA_RUN_EXE, (char *const *)argv);
        _exit(127);
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    f = fopen(errp, "rb");
    len = f ? fread(err_text, 1, sizeof err_text - 1, f) : 0;
    if (f)
        fclose(f);
    err_text[len] = '\0';
    return WEXITSTATUS(status);
}

/* Data of an nsa-run output (<f4 or <i4, format 1.0) as doubles. */
static double *load_out(const char *dir, const char *name, int64_t *n)
{
    char path[512];
    unsigned char pre[10];
    FILE *f;
    long size;
    size_t hlen, i, count;
    double *d;
    int is_int;
    char header[512];
    snprintf(path, sizeof path, "%s/%s/%s", tmpdir, dir, name);
    f = fopen(path, "rb");
    if (!f)
        fail_msg("nsa-run wrote no %s", path);
    assert_int_equal(fread(pre, 1, 10, f), 10);
    hlen = (size_t)pre[8] | (size_t)pre[9] << 8;
    assert_true(hlen < sizeof header);
    assert_int_equal(fread(header, 1, hlen, f), hlen);
    header[hlen] = '\0';
    is_int = strstr(header, "<i4") != NULL;
    assert_true(is_int || strstr(header, "<f4") != NULL);
    fseek(f, 0, SEEK_END);
    size = ftell(f);
    count = (size_t)(size - 10 - (long)hlen) / 4;
    fseek(f, 10 + (long)hlen, SEEK_SET);
    d = (double *)malloc((count ? count : 1) * sizeof(double));
    for (i = 0; i < count; i++) {
        unsigned char b[4];
        uint32_t u;
        assert_int_equal(fread(b, 1, 4, f), 4);
        u = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
        if (is_int) {
            d[i] = (double)(int32_t)u;
        } else {
            float x;
            memcpy(&x, &u, 4);
            d[i] = (double)x;
        }
    }
    fclose(f);
    *n = (int64_t)count;
    return d;
}

static const char *gpath(const char *gcase, const char *file)
{
    static char paths[32][512];
    static int next;
    char *p = paths[next++ % 32];
    snprintf(p, 512, "%s/torch/%s/%s", NSA_TEST_DATA_DIR, gcase, file);
    return p;
}

static const char *bind(const char *name, const char *gcase, const char *file)
{
    static char binds[32][600];
    static int next;
    char *p = binds[next++ % 32];
    snprintf(p, 600, "%s=%s", name, gpath(gcase, file));
    return p;
}

static const char *outdir(const char *gcase)
{
    static char d[256];
    snprintf(d, sizeof d, "%s/%s", tmpdir, gcase);
    return d;
}

/* Compare out.npy / lse.npy with the float64 references (same -inf rows). */
static void check_flex(const char *gcase)
{
    static const char *const files[2] = {"out.npy", "lse.npy"};
    int f;
    for (f = 0; f < 2; f++) {
        test_npy ref;
        int64_t n, i;
        double *got = load_out(gcase, files[f], &n);
        char where[128];
        snprintf(where, sizeof where, "torch/%s", gcase);
        assert_int_equal(test_npy_load(where, files[f], &ref), 0);
        assert_int_equal(ref.numel, n);
        for (i = 0; i < n; i++) {
            const double r = test_npy_get(&ref, i);
            if (isinf(r) || isinf(got[i])) {
                if (!(r == got[i]))
                    fail_msg("%s %s[%lld] = %g, reference %g", gcase, files[f], (long long)i,
                             got[i], r);
            } else if (fabs(got[i] - r) > FLEX_ATOL) {
                fail_msg("%s %s[%lld] = %.9g, reference %.9g", gcase, files[f], (long long)i,
                         got[i], r);
            }
        }
        free(got);
        test_npy_free(&ref);
    }
}

#define QKV(c) "--in", bind("q", c, "q.npy"), "--in", bind("k", c, "k.npy"), "--in", \
               bind("v", c, "v.npy"), "--out", outdir(c)

static void flex_goldens(void **state)
{
    (void)state;
    {
        const char *a[] = {"flex-attention", QKV("flex_causal"), "--mask", "causal", NULL};
        assert_int_equal(run(a), 0);
        check_flex("flex_causal");
    }
    {
        const char *a[] = {"flex-attention", QKV("flex_alibi_causal"), "--mask", "causal",
                           "--score-mod", "alibi", "--in",
                           bind("alibi_slopes", "flex_alibi_causal", "alibi_slopes.npy"), NULL};
        assert_int_equal(run(a), 0);
        check_flex("flex_alibi_causal");
    }
    {
        const char *a[] = {"flex-attention", QKV("flex_cross_dv"), NULL};
        assert_int_equal(run(a), 0);
        check_flex("flex_cross_dv");
    }
    {
        const char *a[] = {"flex-attention", QKV("flex_document"), "--mask", "document",
                           "--doc-lengths", "120,56,182", NULL};
        assert_int_equal(run(a), 0);
        check_flex("flex_document");
    }
    {
        const char *a[] = {"flex-attention", QKV("flex_document"), "--mask", "document", "--in",
                           bind("doc_ids", "flex_document", "doc_ids.npy"), NULL};
        assert_int_equal(run(a), 0);
        check_flex("flex_document");
    }
    {
        const char *a[] = {"flex-attention", QKV("flex_from_kv_blocks"), "--mask",
                           "from_kv_blocks", "--block-size", "64", "--in",
                           bind("kv_num_blocks", "flex_from_kv_blocks", "kv_num_blocks.npy"),
                           "--in", bind("kv_indices", "flex_from_kv_blocks", "kv_indices.npy"),
                           NULL};
        assert_int_equal(run(a), 0);
        check_flex("flex_from_kv_blocks");
    }
    {
        const char *a[] = {"flex-attention", QKV("flex_fully_masked_rows"), "--mask",
                           "late_start:10", NULL};
        assert_int_equal(run(a), 0);
        check_flex("flex_fully_masked_rows");
    }
    {
        const char *a[] = {"flex-attention", QKV("flex_gqa_causal"), "--mask", "causal",
                           "--enable-gqa", NULL};
        assert_int_equal(run(a), 0);
        check_flex("flex_gqa_causal");
    }
    {
        const char *a[] = {"flex-attention", QKV("flex_head_batch_scoremod"), "--mask", "causal",
                           "--score-mod", "head_batch_scale", NULL};
        assert_int_equal(run(a), 0);
        check_flex("flex_head_batch_scoremod");
    }
    {
        const char *a[] = {"flex-attention", QKV("flex_noop"), "--mask", "none", NULL};
        assert_int_equal(run(a), 0);
        check_flex("flex_noop");
    }
    {
        const char *a[] = {"flex-attention", QKV("flex_prefix_lm"), "--mask", "prefix_lm:80",
                           NULL};
        assert_int_equal(run(a), 0);
        check_flex("flex_prefix_lm");
    }
    {
        const char *a[] = {"flex-attention", QKV("flex_rel_bias"), "--score-mod", "rel_bias",
                           "--in", bind("bias_table", "flex_rel_bias", "bias_table.npy"), NULL};
        assert_int_equal(run(a), 0);
        check_flex("flex_rel_bias");
    }
    {
        const char *a[] = {"flex-attention", QKV("flex_sliding_window"), "--mask",
                           "sliding_window:64", "--threads", "2", NULL};
        assert_int_equal(run(a), 0);
        check_flex("flex_sliding_window");
    }
    {
        const char *a[] = {"flex-attention", QKV("flex_softcap"), "--score-mod", "softcap:30",
                           "--scale", "0.2", NULL};
        assert_int_equal(run(a), 0);
        check_flex("flex_softcap");
    }
}

static char *slurp_text(const char *path)
{
    FILE *f = fopen(path, "rb");
    long len;
    char *s;
    if (!f)
        fail_msg("cannot open %s", path);
    fseek(f, 0, SEEK_END);
    len = ftell(f);
    fseek(f, 0, SEEK_SET);
    s = (char *)malloc((size_t)len + 1);
    assert_int_equal(fread(s, 1, (size_t)len, f), (size_t)len);
    s[len] = '\0';
    fclose(f);
    return s;
}

static void check_bm(const char *gcase)
{
    static const char *const files[9] = {
        "kv_num_blocks.npy", "kv_indices.npy", "full_kv_num_blocks.npy", "full_kv_indices.npy",
        "q_num_blocks.npy",  "q_indices.npy",  "full_q_num_blocks.npy",  "full_q_indices.npy",
        "to_dense.npy"};
    char where[128], path[512], line[128], sparsity[64];
    char *got, *want;
    int f;
    snprintf(where, sizeof where, "torch/%s", gcase);
    for (f = 0; f < 9; f++) {
        test_npy ref;
        int64_t n, i;
        double *d = load_out(gcase, files[f], &n);
        assert_int_equal(test_npy_load(where, files[f], &ref), 0);
        assert_int_equal(ref.numel, n);
        for (i = 0; i < n; i++)
            if (d[i] != test_npy_get(&ref, i))
                fail_msg("%s %s[%lld] = %g, expected %g", gcase, files[f], (long long)i, d[i],
                         test_npy_get(&ref, i));
        free(d);
        test_npy_free(&ref);
    }
    snprintf(path, sizeof path, "%s/%s/to_string.txt", tmpdir, gcase);
    got = slurp_text(path);
    want = slurp_text(gpath(gcase, "to_string.txt"));
    assert_string_equal(got, want);
    free(got);
    free(want);
    snprintf(path, sizeof path, "%s/%s/info.txt", tmpdir, gcase);
    got = slurp_text(path);
    assert_int_equal(test_case_get(where, "sparsity", sparsity, sizeof sparsity), 0);
    snprintf(line, sizeof line, "sparsity = %s\n", sparsity);
    if (!strstr(got, line))
        fail_msg("%s info.txt:\n%s\nhas no line '%s'", gcase, got, line);
    free(got);
}

static void block_mask_goldens(void **state)
{
    (void)state;
    {
        const char *a[] = {"block-mask", "--mask", "causal", "--q-len", "998", "--kv-len", "998",
                           "--out", outdir("bm_causal"), NULL};
        assert_int_equal(run(a), 0);
        check_bm("bm_causal");
    }
    {
        const char *a[] = {"block-mask", "--mask", "sliding_window:256", "--q-len", "2020",
                           "--kv-len", "2020", "--out", outdir("bm_sliding_window"), NULL};
        assert_int_equal(run(a), 0);
        check_bm("bm_sliding_window");
    }
    {
        const char *a[] = {"block-mask", "--mask", "document", "--doc-lengths", "230,98,401",
                           "--q-len", "729", "--kv-len", "729", "--block-size", "128,64",
                           "--out", outdir("bm_document_rect_blocks"), NULL};
        assert_int_equal(run(a), 0);
        check_bm("bm_document_rect_blocks");
    }
    {
        const char *a[] = {"block-mask", "--mask", "none", "--q-len", "333", "--kv-len", "257",
                           "--out", outdir("bm_broadcast_noop"), NULL};
        assert_int_equal(run(a), 0);
        check_bm("bm_broadcast_noop");
    }
    {
        const char *a[] = {"block-mask", "--mask", "or(and(causal, sliding_window:96),prefix_lm:32)",
                           "--q-len", "700", "--kv-len", "700", "--block-size", "64", "--out",
                           outdir("bm_or_and"), NULL};
        assert_int_equal(run(a), 0);
        check_bm("bm_or_and");
    }
}

static void exit_statuses(void **state)
{
    (void)state;
    {
        const char *a[] = {"flex-attention", QKV("flex_causal"), "--mask", "sliding_window:0",
                           NULL};
        assert_int_equal(run(a), 3);
        assert_non_null(strstr(err_text, "nsa-run: flex-attention: NSA_ERR_INVALID_ARGUMENT: "
                                         "window must be >= 1, got 0"));
    }
    {
        const char *a[] = {"flex-attention", QKV("flex_causal"), "--mask", "and(causal,", NULL};
        assert_int_equal(run(a), 2);
        assert_non_null(strstr(err_text, "--mask"));
    }
    {
        const char *a[] = {"flex-attention", QKV("flex_causal"), "--mask", "bogus", NULL};
        assert_int_equal(run(a), 2);
        assert_non_null(strstr(err_text, "unknown mask"));
    }
    {
        const char *a[] = {"flex-attention", QKV("flex_causal"), "--score-mod", "tanh", NULL};
        assert_int_equal(run(a), 2);
        assert_non_null(strstr(err_text, "--score-mod"));
    }
    {
        const char *a[] = {"flex-attention", QKV("flex_gqa_causal"), NULL};
        assert_int_equal(run(a), 3);
        assert_non_null(strstr(err_text, "enable_gqa"));
    }
    {
        const char *a[] = {"flex-attention", QKV("flex_causal"), "--mask", "document", NULL};
        assert_int_equal(run(a), 2);
        assert_non_null(strstr(err_text, "doc_ids"));
    }
    {
        const char *a[] = {"block-mask", "--mask", "causal", "--q-len", "10", "--out",
                           outdir("bm_missing"), NULL};
        assert_int_equal(run(a), 2);
        assert_non_null(strstr(err_text, "kv-len"));
    }
}

static int setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/nsa_flex_cli_XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
    char cmd[128];
    (void)state;
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(flex_goldens),
                                       cmocka_unit_test(block_mask_goldens),
                                       cmocka_unit_test(exit_statuses)};
    return cmocka_run_group_tests(tests, setup, teardown);
}
