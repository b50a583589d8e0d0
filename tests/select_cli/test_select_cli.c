/* SPDX-License-Identifier: Apache-2.0 */
/* `nsa-run select-attention` on every nsa_select golden case: exit status 0, and outputs
 * bit-identical to nsa_select_attention called in process on the same inputs (whose accuracy
 * against the goldens tests/golden/test_select_golden.c checks). Also the MindSpore rule
 * (atten_mask present = causal) and an operator error's exit status. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "test_util.h"

static const char *const cases[] = {"nsa_select_bf16_dv_lt_d", "nsa_select_causal",
                                     "nsa_select_mindspore_shape",
                                     "nsa_select_small_blocks_gqa8"};

static void get(const char *dir, const char *key, char *buf, size_t cap)
{
    if (test_case_get(dir, key, buf, cap) != 0)
        fail_msg("%s/case.txt has no '%s'", dir, key);
}

static int64_t parse_list(const char *text, int64_t *out, int64_t cap)
{
    int64_t n = 0;
    char *end;
    while (*text && n < cap) {
        out[n++] = strtoll(text, &end, 10);
        text = *end == ',' ? end + 1 : end;
        if (*end != ',')
            break;
    }
    return n;
}

/* Run nsa-run on case `name`; extra arguments appended (may be ""). Returns the exit code. */
static int run_cli(const char *name, const char *extra, const char *out_sub)
{
    char dir[160], cmd[4096], dtype[16], scale[64], heads[16], bs[16], bc[16], mode[16];
    char cq[256], ckv[256], data[512];
    int rc;
    snprintf(dir, sizeof dir, "nsa/%s", name);
    get(dir, "dtype", dtype, sizeof dtype);
    get(dir, "scale_value", scale, sizeof scale);
    get(dir, "head_num", heads, sizeof heads);
    get(dir, "select_block_size", bs, sizeof bs);
    get(dir, "select_block_count", bc, sizeof bc);
    get(dir, "sparse_mode", mode, sizeof mode);
    get(dir, "actual_seq_qlen", cq, sizeof cq);
    get(dir, "actual_seq_kvlen", ckv, sizeof ckv);
    snprintf(data, sizeof data, "%s/%s", NSA_TEST_DATA_DIR, dir);
    snprintf(cmd, sizeof cmd,
             "'%s' select-attention --dtype %s --in query=%s/query.npy --in key=%s/key.npy "
             "--in value=%s/value.npy --in topk_indices=%s/topk_indices.npy --scale-value %s "
             "--head-num %s --select-block-size %s --select-block-count %s "
             "--actual-seq-qlen %s --actual-seq-kvlen %s %s --out '%s/%s' 2>'%s/%s.err'",
             NSA_RUN_EXE, dtype, data, data, data, data, scale, heads, bs, bc, cq, ckv,
             strcmp(extra, "") ? extra : (strcmp(mode, "2") ? "--sparse-mode 0" : "--sparse-mode 2"),
             NSA_SELECT_CLI_OUT, out_sub, NSA_SELECT_CLI_OUT, out_sub);
    rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

/* The library on the same inputs; compare with the files nsa-run wrote into out_sub. */
static void compare(const char *name, const char *out_sub, int causal)
{
    char dir[160], buf[256], odir[512];
    test_npy q, k, v, topk, o, mx, sm;
    nsa_dtype dt;
    int64_t cq[16], ckv[16], nb;
    nsa_select_attention_params p = nsa_select_attention_params_default();
    int64_t out_shape[3], stat_shape[3], out_n, stat_n;
    void *qd, *kd, *vd, *od;
    float *o32, *smax, *ssum;
    nsa_tensor tq, tk, tv, tt, to, tm, ts;
    snprintf(dir, sizeof dir, "nsa/%s", name);
    snprintf(odir, sizeof odir, "%s/%s", NSA_SELECT_CLI_REL, out_sub);
    get(dir, "dtype", buf, sizeof buf);
    dt = strcmp(buf, "bf16") == 0 ? NSA_DTYPE_BF16 : NSA_DTYPE_F16;
    get(dir, "scale_value", buf, sizeof buf);
    p.scale_value = atof(buf);
    get(dir, "select_block_size", buf, sizeof buf);
    p.select_block_size = atoll(buf);
    get(dir, "select_block_count", buf, sizeof buf);
    p.select_block_count = atoll(buf);
    get(dir, "actual_seq_qlen", buf, sizeof buf);
    nb = parse_list(buf, cq, 16);
    get(dir, "actual_seq_kvlen", buf, sizeof buf);
    assert_int_equal(parse_list(buf, ckv, 16), nb);
    p.actual_seq_qlen = cq;
    p.actual_seq_kvlen = ckv;
    p.actual_seq_qlen_count = p.actual_seq_kvlen_count = nb;
    p.sparse_mode = causal ? 2 : 0;
    assert_int_equal(test_npy_load(dir, "query.npy", &q), 0);
    assert_int_equal(test_npy_load(dir, "key.npy", &k), 0);
    assert_int_equal(test_npy_load(dir, "value.npy", &v), 0);
    assert_int_equal(test_npy_load(dir, "topk_indices.npy", &topk), 0);
    if (test_npy_load(odir, "attention_out.npy", &o) || test_npy_load(odir, "softmax_max.npy", &mx) ||
        test_npy_load(odir, "softmax_sum.npy", &sm))
        fail_msg("%s: nsa-run outputs missing in %s", name, odir);
    out_shape[0] = stat_shape[0] = q.shape[0];
    out_shape[1] = stat_shape[1] = q.shape[1];
    out_shape[2] = v.shape[2];
    stat_shape[2] = 8;
    out_n = out_shape[0] * out_shape[1] * out_shape[2];
    stat_n = stat_shape[0] * stat_shape[1] * 8;
    assert_int_equal(o.numel, out_n);
    assert_int_equal(mx.numel, stat_n);
    assert_int_equal(o.dtype, NSA_DTYPE_F32);
    qd = test_to_dtype((const float *)q.data, q.numel, dt);
    kd = test_to_dtype((const float *)k.data, k.numel, dt);
    vd = test_to_dtype((const float *)v.data, v.numel, dt);
    od = calloc((size_t)out_n, 2);
    smax = (float *)calloc((size_t)stat_n, sizeof(float));
    ssum = (float *)calloc((size_t)stat_n, sizeof(float));
    tq = nsa_tensor_contiguous(qd, dt, 3, q.shape);
    tk = nsa_tensor_contiguous(kd, dt, 3, k.shape);
    tv = nsa_tensor_contiguous(vd, dt, 3, v.shape);
    tt = nsa_tensor_contiguous(topk.data, NSA_DTYPE_I32, 3, topk.shape);
    to = nsa_tensor_contiguous(od, dt, 3, out_shape);
    tm = nsa_tensor_contiguous(smax, NSA_DTYPE_F32, 3, stat_shape);
    ts = nsa_tensor_contiguous(ssum, NSA_DTYPE_F32, 3, stat_shape);
    assert_int_equal(nsa_select_attention(NULL, &tq, &tk, &tv, &tt, &p, &to, &tm, &ts),
                     NSA_SUCCESS);
    o32 = test_to_f32(od, out_n, dt);
    if (memcmp(o32, o.data, (size_t)out_n * sizeof(float)) != 0)
        fail_msg("%s (%s): attention_out differs from the library's", name, out_sub);
    if (memcmp(smax, mx.data, (size_t)stat_n * sizeof(float)) != 0 ||
        memcmp(ssum, sm.data, (size_t)stat_n * sizeof(float)) != 0)
        fail_msg("%s (%s): statistics differ from the library's", name, out_sub);
    free(qd);
    free(kd);
    free(vd);
    free(od);
    free(o32);
    free(smax);
    free(ssum);
    test_npy_free(&q);
    test_npy_free(&k);
    test_npy_free(&v);
    test_npy_free(&topk);
    test_npy_free(&o);
    test_npy_free(&mx);
    test_npy_free(&sm);
}

static void replays_goldens(void **state)
{
    size_t i;
    (void)state;
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char dir[160], mode[16];
        snprintf(dir, sizeof dir, "nsa/%s", cases[i]);
        get(dir, "sparse_mode", mode, sizeof mode);
        if (run_cli(cases[i], "", cases[i]) != 0)
            fail_msg("nsa-run failed on %s (see %s/%s.err)", cases[i], NSA_SELECT_CLI_OUT,
                     cases[i]);
        compare(cases[i], cases[i], strcmp(mode, "2") == 0);
    }
}

/* Without --sparse-mode an atten_mask input (any rank-2 u8/bool file) means causal. */
static void mask_means_causal(void **state)
{
    /* a 1 x 1 uint8 .npy: 10 bytes of preamble, the header padded to 128 bytes, one byte */
    static const char header[] = "{'descr': '|u1', 'fortran_order': False, 'shape': (1, 1), }";
    static const unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, 118, 0};
    char path[256], extra[320];
    size_t j;
    FILE *f;
    (void)state;
    snprintf(path, sizeof path, "%s/mask.npy", NSA_SELECT_CLI_OUT);
    f = fopen(path, "wb");
    assert_non_null(f);
    fwrite(pre, 1, sizeof pre, f);
    fwrite(header, 1, sizeof header - 1, f);
    for (j = sizeof pre + sizeof header - 1; j < 127; j++)
        fputc(' ', f);
    fputc('\n', f);
    fputc(1, f);
    assert_int_equal(fclose(f), 0);
    snprintf(extra, sizeof extra, "--in atten_mask=%s", path);
    assert_int_equal(run_cli("nsa_select_causal", extra, "mask_causal"), 0);
    compare("nsa_select_causal", "mask_causal", 1);
    assert_int_equal(run_cli("nsa_select_bf16_dv_lt_d", "--sparse-mode 0", "no_mask"), 0);
    compare("nsa_select_bf16_dv_lt_d", "no_mask", 0);
}

static void operator_error_exit_3(void **state)
{
    char path[512], text[512] = {0};
    FILE *f;
    (void)state;
    /* strict validation rejects l' = 32 */
    assert_int_equal(run_cli("nsa_select_small_blocks_gqa8", "--sparse-mode 0 --strict", "strict"), 3);
    snprintf(path, sizeof path, "%s/strict.err", NSA_SELECT_CLI_OUT);
    f = fopen(path, "r");
    assert_non_null(f);
    if (!fgets(text, sizeof text, f))
        text[0] = '\0';
    fclose(f);
    assert_non_null(strstr(text, "nsa-run: select-attention: NSA_ERR_UNSUPPORTED: "
                                 "select_block_size must be 64 under strict validation, got 32"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(replays_goldens),
        cmocka_unit_test(mask_means_causal),
        cmocka_unit_test(operator_error_exit_3),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
