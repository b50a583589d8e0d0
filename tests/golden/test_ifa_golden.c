/* SPDX-License-Identifier: Apache-2.0 */
/* Replays every case of tests/data/ifa (independent float64 NumPy goldens, see the README
 * there) through nsa_incre_flash_attention in the case's dtype, and once more with an f32
 * output. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_util.h"

typedef struct golden {
    const char *name;
} golden;

/* A loaded .npy as a tensor in the op's dtype (floats converted to `dt` when dt != 0). */
typedef struct arr {
    test_npy npy;
    void *conv;
    nsa_tensor t;
    int present;
} arr;

static void load(const char *dir, const char *name, nsa_dtype float_as, int required, arr *a)
{
    char file[64];
    memset(a, 0, sizeof *a);
    snprintf(file, sizeof file, "%s.npy", name);
    if (test_npy_load(dir, file, &a->npy) != 0) {
        if (required)
            fail_msg("%s/%s missing", dir, file);
        return;
    }
    a->present = 1;
    if (a->npy.dtype == NSA_DTYPE_F32 && float_as != NSA_DTYPE_F32 && float_as != 0) {
        a->conv = test_to_dtype((const float *)a->npy.data, a->npy.numel, float_as);
        a->t = nsa_tensor_contiguous(a->conv, float_as, a->npy.ndim, a->npy.shape);
    } else {
        a->t = nsa_tensor_contiguous(a->npy.data, a->npy.dtype, a->npy.ndim, a->npy.shape);
    }
}

static void release(arr *a)
{
    if (a->present)
        test_npy_free(&a->npy);
    free(a->conv);
}

static nsa_dtype dtype_of(const char *s)
{
    if (strcmp(s, "f16") == 0)
        return NSA_DTYPE_F16;
    if (strcmp(s, "bf16") == 0)
        return NSA_DTYPE_BF16;
    return NSA_DTYPE_F32;
}

static int64_t case_int(const char *dir, const char *key, int64_t dflt)
{
    char buf[256];
    if (test_case_get(dir, key, buf, sizeof buf) != 0 || strcmp(buf, "none") == 0)
        return dflt;
    return strtoll(buf, NULL, 10);
}

static void replay(const char *name, int f32_out)
{
    char dir[128], buf[1024];
    arr q, k, v, mask, pse, aqs, aqo, bt, qs2, qo2, ref, ref8;
    arr kl[8], vl[8];
    nsa_tensor klist[8], vlist[8];
    nsa_ifa_params prm = nsa_ifa_params_default();
    nsa_ifa_optional opt = NSA_IFA_OPTIONAL_INIT;
    nsa_dtype dt, odt;
    int64_t asl[64], nasl = 0, n, i, B;
    nsa_tensor out;
    void *obuf;
    int is_list = 0, quant;
    nsa_status st;

    snprintf(dir, sizeof dir, "ifa/%s", name);
    assert_int_equal(test_case_get(dir, "dtype", buf, sizeof buf), 0);
    dt = dtype_of(buf);
    B = case_int(dir, "B", 0);
    prm.num_heads = case_int(dir, "num_heads", 1);
    prm.num_key_value_heads = case_int(dir, "num_key_value_heads", 0);
    assert_int_equal(test_case_get(dir, "input_layout", buf, sizeof buf), 0);
    assert_int_equal(nsa_layout_from_string(buf, &prm.input_layout), NSA_SUCCESS);
    assert_int_equal(test_case_get(dir, "scale_value", buf, sizeof buf), 0);
    prm.scale_value = strtod(buf, NULL);
    if (test_case_get(dir, "actual_seq_lengths", buf, sizeof buf) == 0 &&
        strcmp(buf, "none") != 0) {
        char *p = buf;
        while (*p) {
            asl[nasl++] = strtoll(p, &p, 10);
            if (*p == ',')
                p++;
        }
        prm.actual_seq_lengths = asl;
        prm.actual_seq_lengths_count = nasl;
    }
    if (case_int(dir, "kv_padding_size", -1) >= 0) {
        prm.has_kv_padding_size = 1;
        prm.kv_padding_size = case_int(dir, "kv_padding_size", 0);
    }
    prm.block_size = case_int(dir, "block_size", 0);

    load(dir, "query", dt, 1, &q);
    load(dir, "key", dt, 0, &k);
    load(dir, "value", dt, 0, &v);
    if (!k.present) { /* per-batch list key.<b> */
        is_list = 1;
        assert_true(B <= 8);
        for (i = 0; i < B; i++) {
            char kn[16], vn[16];
            snprintf(kn, sizeof kn, "key.%d", (int)i);
            snprintf(vn, sizeof vn, "value.%d", (int)i);
            load(dir, kn, dt, 1, &kl[i]);
            load(dir, vn, dt, 1, &vl[i]);
            klist[i] = kl[i].t;
            vlist[i] = vl[i].t;
        }
    }
    load(dir, "atten_mask", 0, 0, &mask);
    load(dir, "pse_shift", dt, 0, &pse);
    load(dir, "antiquant_scale", 0, 0, &aqs); /* kept f32: the goldens' scales are f32 */
    load(dir, "antiquant_offset", 0, 0, &aqo);
    load(dir, "block_table", 0, 0, &bt);
    load(dir, "quant_scale2", 0, 0, &qs2);
    load(dir, "quant_offset2", 0, 0, &qo2);
    load(dir, "ref", 0, 1, &ref);
    load(dir, "ref_int8", 0, 0, &ref8);
    opt.atten_mask = mask.present ? &mask.t : NULL;
    opt.pse_shift = pse.present ? &pse.t : NULL;
    opt.antiquant_scale = aqs.present ? &aqs.t : NULL;
    opt.antiquant_offset = aqo.present ? &aqo.t : NULL;
    opt.block_table = bt.present ? &bt.t : NULL;
    quant = qs2.present && !f32_out;
    opt.quant_scale2 = quant ? &qs2.t : NULL;
    opt.quant_offset2 = quant && qo2.present ? &qo2.t : NULL;

    odt = quant ? NSA_DTYPE_I8 : f32_out ? NSA_DTYPE_F32 : dt;
    n = ref.npy.numel;
    obuf = calloc((size_t)n, nsa_dtype_size(odt));
    out = nsa_tensor_contiguous(obuf, odt, q.t.ndim, q.t.shape);
    if (is_list)
        st = nsa_incre_flash_attention_kv_list(NULL, &q.t, klist, vlist, B, &opt, &prm, &out);
    else
        st = nsa_incre_flash_attention(NULL, &q.t, &k.t, &v.t, &opt, &prm, &out);
    if (st != NSA_SUCCESS)
        fail_msg("%s: %s: %s", name, nsa_status_string(st), nsa_last_error());

    if (quant) {
        /* int8 outputs: within 1 of ref_int8 (the README's rule: x*qs + qo may land on the
         * other side of a .5 boundary between fp32 and float64) */
        const int8_t *o = (const int8_t *)obuf;
        assert_true(ref8.present);
        for (i = 0; i < n; i++) {
            int d = (int)o[i] - (int)((const int8_t *)ref8.npy.data)[i];
            if (d < -1 || d > 1)
                fail_msg("%s: int8 out[%lld] = %d, ref_int8 %d", name, (long long)i, o[i],
                         ((const int8_t *)ref8.npy.data)[i]);
        }
    } else {
        float *got = test_to_f32(obuf, n, odt);
        if (f32_out)
            /* fp32 output: float32 arithmetic over <= 1000 keys against a float64 reference;
             * 8 ulps of f32 relative (~5e-7) plus 1e-6 absolute for outputs near 0 */
            test_assert_close(name, got, (const double *)ref.npy.data, n, 1e-6, 5e-7 * 8);
        else
            /* fp16/bf16: 2 ulps of the dtype (the bound; fp32 error is far below) */
            test_assert_ulps(name, got, (const double *)ref.npy.data, n, dt, 2.0);
        free(got);
    }

    free(obuf);
    release(&q);
    release(&k);
    release(&v);
    if (is_list)
        for (i = 0; i < B; i++) {
            release(&kl[i]);
            release(&vl[i]);
        }
    release(&mask);
    release(&pse);
    release(&aqs);
    release(&aqo);
    release(&bt);
    release(&qs2);
    release(&qo2);
    release(&ref);
    release(&ref8);
}

static const char *const k_cases[] = {"ifa_antiquant_per_channel",
                                      "ifa_antiquant_per_tensor",
                                      "ifa_bnsd_gqa_lens",
                                      "ifa_bsh_basic",
                                      "ifa_bsh_gqa_broadcast_len",
                                      "ifa_kv_left_padding",
                                      "ifa_mask",
                                      "ifa_paged_3d_bsh",
                                      "ifa_paged_4d_bnsd",
                                      "ifa_pse",
                                      "ifa_quant_out_per_channel",
                                      "ifa_quant_out_per_tensor",
                                      "ifa_tensor_list"};

static void golden_dtype(void **state)
{
    size_t i;
    (void)state;
    for (i = 0; i < sizeof k_cases / sizeof k_cases[0]; i++)
        replay(k_cases[i], 0);
}

static void golden_f32_output(void **state)
{
    size_t i;
    (void)state;
    for (i = 0; i < sizeof k_cases / sizeof k_cases[0]; i++)
        replay(k_cases[i], 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(golden_dtype),
                                       cmocka_unit_test(golden_f32_output)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
