/* SPDX-License-Identifier: Apache-2.0 */
/* Replays the nsa_compress and nsa_compress_attention golden cases of tests/data/nsa (float64
 * references from an independent implementation, see the README there).
 * Built twice: as test_nsa_compress_golden (the C API) and, when nsa-run is built, with
 * NSA_RUN_EXE defined as test_nsa_run_compress_golden (the same cases through
 * `nsa-run compress` / `nsa-run compress-attention`, tests/nsa_compress_cli.cmake). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef NSA_RUN_EXE
#include <sys/wait.h>
#endif

#include "test_util.h"

/* ---- case.txt ----------------------------------------------------------------------------- */

/* Read a "key = 1,2,3" list of case.txt; returns the count. */
static int64_t case_list(const char *dir, const char *key, int64_t *vals, int64_t cap)
{
    char buf[1024], *p, *end;
    int64_t n = 0;
    if (test_case_get(dir, key, buf, sizeof buf) != 0)
        return 0;
    for (p = buf; *p && n < cap; p = end) {
        vals[n++] = strtoll(p, &end, 10);
        if (end == p)
            break;
        if (*end == ',')
            end++;
    }
    return n;
}

static int64_t case_int(const char *dir, const char *key)
{
    int64_t v = 0;
    assert_int_equal(case_list(dir, key, &v, 1), 1);
    return v;
}

static nsa_dtype case_dtype(const char *dir)
{
    char buf[32];
    assert_int_equal(test_case_get(dir, "dtype", buf, sizeof buf), 0);
    if (strcmp(buf, "f16") == 0)
        return NSA_DTYPE_F16;
    if (strcmp(buf, "bf16") == 0)
        return NSA_DTYPE_BF16;
    return NSA_DTYPE_F32;
}

static void load(const char *dir, const char *name, test_npy *a)
{
    if (test_npy_load(dir, name, a) != 0)
        fail_msg("cannot load %s/%s", dir, name);
}

static double *as_f64(const test_npy *a)
{
    double *r = (double *)malloc((size_t)a->numel * sizeof(double));
    int64_t i;
    for (i = 0; i < a->numel; i++)
        r[i] = test_npy_get(a, i);
    return r;
}

/* The outputs of one run, as fp32 (values exact in the case's dtype) and int32. */
typedef struct results {
    float *out, *smax, *sum;
    int32_t *topk;
} results;

#ifdef NSA_RUN_EXE
/* ---- through nsa-run ---------------------------------------------------------------------- */

static char g_out[64];

static void list_arg(char *buf, size_t cap, const char *name, const int64_t *v, int64_t n)
{
    size_t len = (size_t)snprintf(buf, cap, " --%s ", name);
    int64_t i;
    for (i = 0; i < n && len < cap; i++)
        len += (size_t)snprintf(buf + len, cap - len, i ? ",%lld" : "%lld", (long long)v[i]);
}

/* Run nsa-run OP ARGS --out <tmp>; its output goes to <tmp>/log.txt. Returns the exit status. */
static int nsa_run(const char *op, const char *args)
{
    char cmd[8192];
    int st;
    if (!g_out[0]) {
        strcpy(g_out, "/tmp/nsa_run_golden_XXXXXX");
        assert_non_null(mkdtemp(g_out));
    }
    snprintf(cmd, sizeof cmd, "'%s' %s %s --out '%s' > '%s/log.txt' 2>&1", NSA_RUN_EXE, op, args,
             g_out, g_out);
    st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* An output .npy of the last run. test_npy_load reads below the data directory, so climb to
 * the root first ("/.." stays at "/"). */
static void *load_output(const char *name, nsa_dtype want, int64_t numel)
{
    char rel[256];
    test_npy a;
    void *data;
    snprintf(rel, sizeof rel, "../../../../../../../../../../../../../../../..%s", g_out);
    load(rel, name, &a);
    assert_int_equal(a.dtype, want);
    assert_int_equal(a.numel, numel);
    data = a.data;
    return data; /* the caller frees it */
}

static void input_arg(char *buf, size_t cap, const char *dir, const char *name)
{
    size_t len = strlen(buf);
    snprintf(buf + len, cap - len, " --in %s=%s/%s/%s.npy", name, NSA_TEST_DATA_DIR, dir, name);
}

static float *produce_compress(const char *dir, nsa_dtype dt, const nsa_compress_params *p,
                               int64_t numel)
{
    char args[4096];
    snprintf(args, sizeof args, "--dtype %s --compress-block-size %lld --compress-stride %lld",
             nsa_dtype_name(dt), (long long)p->compress_block_size,
             (long long)p->compress_stride);
    list_arg(args + strlen(args), sizeof args - strlen(args), "actual-seq-len",
             p->actual_seq_len, p->actual_seq_len_count);
    input_arg(args, sizeof args, dir, "input");
    input_arg(args, sizeof args, dir, "weight");
    if (nsa_run("compress", args) != 0)
        fail_msg("%s: nsa-run compress failed (see %s/log.txt)", dir, g_out);
    return (float *)load_output("output.npy", NSA_DTYPE_F32, numel);
}

static void produce_cmp_attn(const char *dir, nsa_dtype dt,
                             const nsa_compress_attention_params *p, const char *scale,
                             int has_am, int has_tm, int threads, const int64_t *numel,
                             results *r)
{
    char args[4096];
    snprintf(args, sizeof args,
             "--dtype %s --threads %d --scale-value %s --head-num %lld --compress-block-size %lld"
             " --compress-stride %lld --select-block-size %lld --select-block-count %lld",
             nsa_dtype_name(dt), threads, scale, (long long)p->head_num,
             (long long)p->compress_block_size, (long long)p->compress_stride,
             (long long)p->select_block_size, (long long)p->select_block_count);
    list_arg(args + strlen(args), sizeof args - strlen(args), "actual-seq-qlen",
             p->actual_seq_qlen, p->actual_seq_qlen_count);
    list_arg(args + strlen(args), sizeof args - strlen(args), "actual-cmp-seq-kvlen",
             p->actual_cmp_seq_kvlen, p->actual_cmp_seq_kvlen_count);
    list_arg(args + strlen(args), sizeof args - strlen(args), "actual-sel-seq-kvlen",
             p->actual_sel_seq_kvlen, p->actual_sel_seq_kvlen_count);
    input_arg(args, sizeof args, dir, "query");
    input_arg(args, sizeof args, dir, "key");
    input_arg(args, sizeof args, dir, "value");
    if (has_am)
        input_arg(args, sizeof args, dir, "atten_mask");
    if (has_tm)
        input_arg(args, sizeof args, dir, "topk_mask");
    if (nsa_run("compress-attention", args) != 0)
        fail_msg("%s: nsa-run compress-attention failed (see %s/log.txt)", dir, g_out);
    r->out = (float *)load_output("attention_out.npy", NSA_DTYPE_F32, numel[0]);
    r->topk = (int32_t *)load_output("topk_indices.npy", NSA_DTYPE_I32, numel[1]);
    r->smax = (float *)load_output("softmax_max.npy", NSA_DTYPE_F32, numel[2]);
    r->sum = (float *)load_output("softmax_sum.npy", NSA_DTYPE_F32, numel[2]);
}

#else
/* ---- through the C API -------------------------------------------------------------------- */

/* A float32 .npy (values exact in dt by construction) converted to a tensor of dtype dt. */
static nsa_tensor tensor_in(const char *dir, const char *name, nsa_dtype dt)
{
    test_npy a;
    nsa_tensor t;
    load(dir, name, &a);
    assert_int_equal(a.dtype, NSA_DTYPE_F32);
    t = nsa_tensor_contiguous(test_to_dtype((const float *)a.data, a.numel, dt), dt,
                              (int32_t)a.ndim, a.shape);
    test_npy_free(&a);
    return t;
}

static float *produce_compress(const char *dir, nsa_dtype dt, const nsa_compress_params *p,
                               int64_t numel)
{
    nsa_tensor input = tensor_in(dir, "input.npy", dt), weight = tensor_in(dir, "weight.npy", dt);
    nsa_tensor output;
    int64_t shape[3];
    void *obuf = calloc((size_t)numel, 2);
    float *got;
    shape[0] = numel / (input.shape[1] * input.shape[2]);
    shape[1] = input.shape[1];
    shape[2] = input.shape[2];
    output = nsa_tensor_contiguous(obuf, dt, 3, shape);
    if (nsa_compress(NULL, &input, &weight, p, &output) != NSA_SUCCESS)
        fail_msg("%s: %s", dir, nsa_last_error());
    got = test_to_f32(obuf, numel, dt);
    free(obuf);
    free(input.data);
    free(weight.data);
    return got;
}

static void produce_cmp_attn(const char *dir, nsa_dtype dt,
                             const nsa_compress_attention_params *p, const char *scale,
                             int has_am, int has_tm, int threads, const int64_t *numel,
                             results *r)
{
    nsa_tensor query = tensor_in(dir, "query.npy", dt), key = tensor_in(dir, "key.npy", dt);
    nsa_tensor value = tensor_in(dir, "value.npy", dt), amask, tmask, out, topk, smax, ssum;
    test_npy am, tm;
    nsa_context *ctx = NULL;
    nsa_context_config cfg = NSA_CONTEXT_CONFIG_INIT;
    int64_t shape[3];
    void *obuf = calloc((size_t)numel[0], 2);
    (void)scale;
    if (has_am) {
        load(dir, "atten_mask.npy", &am);
        amask = nsa_tensor_contiguous(am.data, NSA_DTYPE_U8, 2, am.shape);
    }
    if (has_tm) {
        load(dir, "topk_mask.npy", &tm);
        tmask = nsa_tensor_contiguous(tm.data, NSA_DTYPE_U8, 2, tm.shape);
    }
    shape[0] = query.shape[0];
    shape[1] = query.shape[1];
    shape[2] = value.shape[2];
    out = nsa_tensor_contiguous(obuf, dt, 3, shape);
    shape[2] = 8;
    r->smax = (float *)calloc((size_t)numel[2], sizeof(float));
    r->sum = (float *)calloc((size_t)numel[2], sizeof(float));
    smax = nsa_tensor_contiguous(r->smax, NSA_DTYPE_F32, 3, shape);
    ssum = nsa_tensor_contiguous(r->sum, NSA_DTYPE_F32, 3, shape);
    shape[1] = key.shape[1];
    shape[2] = p->select_block_count;
    r->topk = (int32_t *)calloc((size_t)numel[1], sizeof(int32_t));
    topk = nsa_tensor_contiguous(r->topk, NSA_DTYPE_I32, 3, shape);
    cfg.num_threads = threads;
    assert_int_equal(nsa_context_create(&cfg, &ctx), NSA_SUCCESS);
    if (nsa_compress_attention(ctx, &query, &key, &value, has_am ? &amask : NULL,
                               has_tm ? &tmask : NULL, p, &out, &topk, &smax,
                               &ssum) != NSA_SUCCESS)
        fail_msg("%s: %s", dir, nsa_last_error());
    nsa_context_destroy(ctx);
    r->out = test_to_f32(obuf, numel[0], dt);
    free(obuf);
    free(query.data);
    free(key.data);
    free(value.data);
    if (has_am)
        test_npy_free(&am);
    if (has_tm)
        test_npy_free(&tm);
}
#endif

/* ---- the replays ---------------------------------------------------------------------------- */

static void replay_compress(const char *dir)
{
    const nsa_dtype dt = case_dtype(dir);
    nsa_compress_params p = nsa_compress_params_default();
    int64_t seq[64], rows;
    test_npy ref;
    float *got;
    double *refd;

    load(dir, "ref.npy", &ref);
    p.compress_block_size = case_int(dir, "compress_block_size");
    p.compress_stride = case_int(dir, "compress_stride");
    p.actual_seq_len = seq;
    p.actual_seq_len_count = case_list(dir, "actual_seq_len", seq, 64);
    assert_int_equal(nsa_compress_output_rows(&p, &rows), NSA_SUCCESS);
    assert_int_equal(rows, case_int(dir, "output_rows"));
    assert_int_equal(rows, ref.shape[0]);

    got = produce_compress(dir, dt, &p, ref.numel);
    refd = as_f64(&ref);
    /* 1 ulp of the dtype: the fp32 sum is rounded once to f16/bf16 (ties away from zero),
     * while the float64 reference is rounded to nearest. */
    test_assert_ulps(dir, got, refd, ref.numel, dt, 1.0);
    free(got);
    free(refd);
    test_npy_free(&ref);
}

static void replay_cmp_attn(const char *dir, int threads)
{
    const nsa_dtype dt = case_dtype(dir);
    nsa_compress_attention_params p = nsa_compress_attention_params_default();
    int64_t qlen[64], kvlen[64], sellen[64], numel[3], i, mism = 0;
    test_npy ref, rmax, rsum, rtopk, probe;
    int has_am, has_tm;
    char scale[64];
    results r;
    double *refd;

    load(dir, "ref.npy", &ref);
    load(dir, "ref_softmax_max.npy", &rmax);
    load(dir, "ref_softmax_sum.npy", &rsum);
    load(dir, "ref_topk_indices.npy", &rtopk);
    has_am = test_npy_load(dir, "atten_mask.npy", &probe) == 0;
    if (has_am)
        test_npy_free(&probe);
    has_tm = test_npy_load(dir, "topk_mask.npy", &probe) == 0;
    if (has_tm)
        test_npy_free(&probe);
    assert_int_equal(test_case_get(dir, "scale_value", scale, sizeof scale), 0);
    p.scale_value = strtod(scale, NULL);
    p.head_num = case_int(dir, "head_num");
    p.compress_block_size = case_int(dir, "compress_block_size");
    p.compress_stride = case_int(dir, "compress_stride");
    p.select_block_size = case_int(dir, "select_block_size");
    p.select_block_count = case_int(dir, "select_block_count");
    p.actual_seq_qlen = qlen;
    p.actual_seq_qlen_count = case_list(dir, "actual_seq_qlen", qlen, 64);
    p.actual_cmp_seq_kvlen = kvlen;
    p.actual_cmp_seq_kvlen_count = case_list(dir, "actual_cmp_seq_kvlen", kvlen, 64);
    p.actual_sel_seq_kvlen = sellen;
    p.actual_sel_seq_kvlen_count = case_list(dir, "actual_sel_seq_kvlen", sellen, 64);
    numel[0] = ref.numel;
    numel[1] = rtopk.numel;
    numel[2] = rmax.numel;

    produce_cmp_attn(dir, dt, &p, scale, has_am, has_tm, threads, numel, &r);

    refd = as_f64(&ref);
    /* 2 ulps of the dtype: fp32 logits, exp and P.V sums differ from float64 by a few fp32
     * ulps, which can move the final rounding to f16/bf16 by one step beyond the 1 ulp of the
     * cast itself. */
    test_assert_ulps("attention_out", r.out, refd, ref.numel, dt, 2.0);
    free(refd);
    /* Softmax statistics are fp32 (row max of fp32 dot products, sum of fp32 exps):
     * 1e-5 relative leaves room for ~100 fp32 roundings; atol 1e-6 for maxima near zero. */
    refd = as_f64(&rmax);
    test_assert_close("softmax_max", r.smax, refd, rmax.numel, 1e-6, 1e-5);
    free(refd);
    refd = as_f64(&rsum);
    test_assert_close("softmax_sum", r.sum, refd, rsum.numel, 1e-6, 1e-5);
    free(refd);
    /* Top-k rows identical to the reference (order included). */
    for (i = 0; i < rtopk.numel; i++)
        if (r.topk[i] != (int32_t)test_npy_get(&rtopk, i)) {
            if (mism++ < 5)
                print_message("%s: topk element %lld (row %lld): got %d, want %d\n", dir,
                              (long long)i, (long long)(i / p.select_block_count), r.topk[i],
                              (int)test_npy_get(&rtopk, i));
        }
    assert_int_equal(mism, 0);

    free(r.out);
    free(r.topk);
    free(r.smax);
    free(r.sum);
    test_npy_free(&ref);
    test_npy_free(&rmax);
    test_npy_free(&rsum);
    test_npy_free(&rtopk);
}

static void compress_mindspore_example(void **s)
{
    (void)s;
    replay_compress("nsa/nsa_compress_mindspore_example");
}
static void compress_short_segments(void **s)
{
    (void)s;
    replay_compress("nsa/nsa_compress_short_segments");
}
static void compress_stride_eq_block(void **s)
{
    (void)s;
    replay_compress("nsa/nsa_compress_stride_eq_block");
}
static void compress_wide(void **s)
{
    (void)s;
    replay_compress("nsa/nsa_compress_wide");
}
static void cmp_attn_gqa8_l_eq_d(void **s)
{
    (void)s;
    replay_cmp_attn("nsa/nsa_cmp_attn_gqa8_l_eq_d", 1);
    replay_cmp_attn("nsa/nsa_cmp_attn_gqa8_l_eq_d", 2);
}
static void cmp_attn_masks(void **s)
{
    (void)s;
    replay_cmp_attn("nsa/nsa_cmp_attn_masks", 1);
    replay_cmp_attn("nsa/nsa_cmp_attn_masks", 3);
}
static void cmp_attn_nomask_g1(void **s)
{
    (void)s;
    replay_cmp_attn("nsa/nsa_cmp_attn_nomask_g1", 2);
}

#ifdef NSA_RUN_EXE
/* The op's own errors come back as exit status 3 with the library's message. */
static void cli_operator_error(void **s)
{
    char args[1024], log[4096];
    FILE *f;
    size_t n;
    (void)s;
    snprintf(args, sizeof args,
             "--compress-block-size 40 --compress-stride 16 --actual-seq-len 256"
             " --in input=%s/nsa/nsa_compress_mindspore_example/input.npy"
             " --in weight=%s/nsa/nsa_compress_mindspore_example/weight.npy",
             NSA_TEST_DATA_DIR, NSA_TEST_DATA_DIR);
    assert_int_equal(nsa_run("compress", args), 3);
    snprintf(args, sizeof args, "%s/log.txt", g_out);
    f = fopen(args, "r");
    assert_non_null(f);
    n = fread(log, 1, sizeof log - 1, f);
    fclose(f);
    log[n] = '\0';
    assert_non_null(strstr(log, "nsa-run: compress: NSA_ERR_INVALID_ARGUMENT: "
                                "compress_block_size must be a multiple of 16, got 40"));
}

/* Remove the output directory of the nsa-run calls. */
static int remove_outputs(void **s)
{
    char cmd[128];
    (void)s;
    if (g_out[0]) {
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_out);
        return system(cmd) == 0 ? 0 : -1;
    }
    return 0;
}
#endif

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(compress_mindspore_example), cmocka_unit_test(compress_short_segments),
        cmocka_unit_test(compress_stride_eq_block),   cmocka_unit_test(compress_wide),
        cmocka_unit_test(cmp_attn_gqa8_l_eq_d),       cmocka_unit_test(cmp_attn_masks),
        cmocka_unit_test(cmp_attn_nomask_g1),
#ifdef NSA_RUN_EXE
        cmocka_unit_test(cli_operator_error),
#endif
    };
#ifdef NSA_RUN_EXE
    return cmocka_run_group_tests(tests, NULL, remove_outputs);
#else
    return cmocka_run_group_tests(tests, NULL, NULL);
#endif
}
