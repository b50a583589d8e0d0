/* SPDX-License-Identifier: Apache-2.0 */
/* nsa-run's .npy reader and writer: every accepted type and header form, every malformed-file
 * case (each must fail with a message, never crash), every truncation of a valid file, files
 * written by numpy, and the writer's bytes against numpy's. Files are built by hand here, not
 * by the writer under test. */
#include "../../tools/nsa-run/npy.c"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "test_util.h"

/* ---- hand-made files ----------------------------------------------------------------------- */

typedef struct blob {
    unsigned char *p;
    size_t len;
} blob;

/* magic, version major.0, little-endian header length (2 bytes for 1.0, 4 otherwise), the
 * dict padded with spaces and '\n' to a multiple of 16, then `nbytes` of data. */
static blob make_file(int major, const char *dict, const void *data, size_t nbytes)
{
    size_t pre = major == 1 ? 10 : 12, dl = strlen(dict);
    size_t hlen = ((pre + dl + 1 + 15) / 16) * 16 - pre;
    blob b;
    b.len = pre + hlen + nbytes;
    b.p = (unsigned char *)malloc(b.len ? b.len : 1);
    assert_non_null(b.p);
    memcpy(b.p, "\x93NUMPY", 6);
    b.p[6] = (unsigned char)major;
    b.p[7] = 0;
    b.p[8] = (unsigned char)(hlen & 0xff);
    b.p[9] = (unsigned char)(hlen >> 8);
    if (major != 1) {
        b.p[10] = (unsigned char)(hlen >> 16);
        b.p[11] = (unsigned char)(hlen >> 24);
    }
    memcpy(b.p + pre, dict, dl);
    memset(b.p + pre + dl, ' ', hlen - dl - 1);
    b.p[pre + hlen - 1] = '\n';
    if (nbytes)
        memcpy(b.p + pre + hlen, data, nbytes);
    return b;
}

static void expect_ok(blob b, npy_array *a)
{
    char err[NPY_ERR_LEN] = "";
    int rc = npy_decode(b.p, b.len, a, err);
    if (rc != 0)
        fail_msg("expected success, got: %s", err);
    free(b.p);
}

/* Decoding must fail with a message containing `expect`. */
static void expect_fail(blob b, const char *expect)
{
    char err[NPY_ERR_LEN] = "";
    npy_array a;
    int rc = npy_decode(b.p, b.len, &a, err);
    free(b.p);
    if (rc == 0) {
        npy_free(&a);
        fail_msg("expected failure '%s', the file was accepted", expect);
    }
    if (!strstr(err, expect))
        fail_msg("expected a message with '%s', got '%s'", expect, err);
    assert_null(strchr(err, '\n')); /* one line */
}

#define HDR(descr, shape) "{'descr': '" descr "', 'fortran_order': False, 'shape': " shape ", }"

/* ---- valid files --------------------------------------------------------------------------- */

static void test_every_type(void **state)
{
    npy_array a;
    /* little-endian bytes written out by hand */
    const unsigned char f4[] = {0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x00, 0xc0}; /* 1, -2 */
    const unsigned char f2[] = {0x00, 0x3c, 0x00, 0xc0, 0x01, 0x00};             /* 1, -2, 2^-24 */
    const unsigned char f8[] = {0, 0, 0, 0, 0, 0, 0xf0, 0x3f};                   /* 1.0 */
    const unsigned char i1[] = {0x80, 0x7f, 0xff};
    const unsigned char u1[] = {0x00, 0xff};
    const unsigned char b1[] = {0x00, 0x01, 0x02}; /* any nonzero byte is True */
    const unsigned char i4[] = {0xff, 0xff, 0xff, 0x7f, 0x00, 0x00, 0x00, 0x80};
    const unsigned char i8[] = {0x01, 0, 0, 0, 0, 0, 0, 0x80};
    (void)state;

    expect_ok(make_file(1, HDR("<f4", "(2,)"), f4, sizeof f4), &a);
    assert_int_equal(a.h.type, NPY_F4);
    assert_true(((float *)a.data)[0] == 1.0f && ((float *)a.data)[1] == -2.0f);
    npy_free(&a);

    expect_ok(make_file(1, HDR("<f2", "(3,)"), f2, sizeof f2), &a);
    assert_int_equal(a.h.type, NPY_F2);
    assert_int_equal(((uint16_t *)a.data)[0], 0x3c00);
    assert_int_equal(((uint16_t *)a.data)[1], 0xc000);
    assert_int_equal(((uint16_t *)a.data)[2], 0x0001);
    npy_free(&a);

    expect_ok(make_file(1, HDR("<f8", "(1,)"), f8, sizeof f8), &a);
    assert_true(((double *)a.data)[0] == 1.0);
    npy_free(&a);

    expect_ok(make_file(1, HDR("|i1", "(3,)"), i1, sizeof i1), &a);
    assert_int_equal(((int8_t *)a.data)[0], -128);
    assert_int_equal(((int8_t *)a.data)[1], 127);
    assert_int_equal(((int8_t *)a.data)[2], -1);
    npy_free(&a);

    expect_ok(make_file(1, HDR("|u1", "(2,)"), u1, sizeof u1), &a);
    assert_int_equal(((uint8_t *)a.data)[1], 255);
    npy_free(&a);

    expect_ok(make_file(1, HDR("|b1", "(3,)"), b1, sizeof b1), &a);
    assert_int_equal(a.h.type, NPY_B1);
    assert_int_equal(((uint8_t *)a.data)[0], 0);
    assert_int_equal(((uint8_t *)a.data)[1], 1);
    assert_int_equal(((uint8_t *)a.data)[2], 1);
    npy_free(&a);

    expect_ok(make_file(1, HDR("<i4", "(2,)"), i4, sizeof i4), &a);
    assert_int_equal(((int32_t *)a.data)[0], INT32_MAX);
    assert_int_equal(((int32_t *)a.data)[1], INT32_MIN);
    npy_free(&a);

    expect_ok(make_file(1, HDR("<i8", "(1,)"), i8, sizeof i8), &a);
    assert_true(((int64_t *)a.data)[0] == INT64_MIN + 1);
    npy_free(&a);

    /* single-byte types do not care about the byte-order mark */
    expect_ok(make_file(1, HDR("<u1", "(2,)"), u1, sizeof u1), &a);
    npy_free(&a);
}

static void test_header_forms(void **state)
{
    npy_array a;
    const unsigned char z[48] = {0};
    (void)state;
    /* format 2.0 and 3.0 (4-byte header length) */
    expect_ok(make_file(2, HDR("<f4", "(2, 3)"), z, 24), &a);
    assert_int_equal(a.h.ndim, 2);
    assert_int_equal(a.h.shape[1], 3);
    npy_free(&a);
    expect_ok(make_file(3, HDR("<f4", "(2, 3)"), z, 24), &a);
    npy_free(&a);
    /* a scalar, an empty array, keys in another order, double quotes, no spaces, no trailing
     * comma, Python 2 'L' suffixes, a 1-tuple without its comma */
    expect_ok(make_file(1, HDR("<f4", "()"), z, 4), &a);
    assert_int_equal(a.h.ndim, 0);
    assert_int_equal(a.h.numel, 1);
    npy_free(&a);
    expect_ok(make_file(1, HDR("<f4", "(0, 5)"), z, 0), &a);
    assert_int_equal(a.h.numel, 0);
    npy_free(&a);
    expect_ok(make_file(1, "{'shape': (4,), 'descr': '<i8', 'fortran_order': False}", z, 32), &a);
    assert_int_equal(a.h.type, NPY_I8);
    npy_free(&a);
    expect_ok(make_file(1, "{\"descr\":\"<f8\",\"fortran_order\":False,\"shape\":(2,3)}", z, 48),
              &a);
    assert_int_equal(a.h.numel, 6);
    npy_free(&a);
    expect_ok(make_file(1, HDR("<f4", "(2L, 3L)"), z, 24), &a);
    npy_free(&a);
    expect_ok(make_file(1, HDR("<i4", "(2)"), z, 8), &a);
    npy_free(&a);
    /* eight dimensions is the limit */
    expect_ok(make_file(1, HDR("|u1", "(1, 1, 1, 1, 1, 1, 1, 2)"), z, 2), &a);
    assert_int_equal(a.h.ndim, 8);
    npy_free(&a);
}

/* ---- malformed files ----------------------------------------------------------------------- */

static void test_malformed(void **state)
{
    const unsigned char z[64] = {0};
    blob b;
    (void)state;

    b.p = (unsigned char *)malloc(1);
    b.len = 0;
    expect_fail(b, "bad magic"); /* empty file */
    b = make_file(1, HDR("<f4", "(2,)"), z, 8);
    b.p[1] = 'n';
    expect_fail(b, "bad magic");
    b = make_file(1, HDR("<f4", "(2,)"), z, 8);
    b.len = 7;
    expect_fail(b, "truncated");
    b = make_file(1, HDR("<f4", "(2,)"), z, 8);
    b.p[6] = 4;
    expect_fail(b, "version 4.0");
    b = make_file(1, HDR("<f4", "(2,)"), z, 8);
    b.p[7] = 1;
    expect_fail(b, "version 1.1");
    b = make_file(2, HDR("<f4", "(2,)"), z, 8);
    b.len = 11;
    expect_fail(b, "truncated");

    /* lying header lengths */
    b = make_file(1, HDR("<f4", "(2,)"), z, 8);
    b.p[8] = 0xff;
    b.p[9] = 0xff;
    expect_fail(b, "runs past the end");
    b = make_file(2, HDR("<f4", "(2,)"), z, 8);
    b.p[8] = b.p[9] = b.p[10] = b.p[11] = 0xff;
    expect_fail(b, "absurd");
    b = make_file(1, HDR("<f4", "(2,)"), z, 8);
    b.p[8] = 20; /* shorter than the dict: the header is cut in the middle */
    b.p[9] = 0;
    expect_fail(b, "malformed header");

    /* the dict */
    expect_fail(make_file(1, "descr: <f4", z, 0), "not a Python dict");
    expect_fail(make_file(1, "{'descr': '<f4', 'shape': (2,)}", z, 8), "missing key 'fortran_order'");
    expect_fail(make_file(1, "{'descr': '<f4', 'fortran_order': False}", z, 8), "missing key 'shape'");
    expect_fail(make_file(1, "{'fortran_order': False, 'shape': (2,)}", z, 8), "missing key 'descr'");
    expect_fail(make_file(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'x': 1}",
                          z, 8),
                "unexpected or repeated key 'x'");
    expect_fail(make_file(1, "{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, "
                             "'shape': (2,)}",
                          z, 8),
                "repeated key 'descr'");
    expect_fail(make_file(1, "{'descr': '<f4' 'fortran_order': False, 'shape': (2,)}", z, 8),
                "expected ',' or '}'");
    expect_fail(make_file(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,)} x", z, 8),
                "after the dict");
    expect_fail(make_file(1, "{'descr': '<f4, 'fortran_order': False, 'shape': (2,)}", z, 8),
                "malformed header");
    expect_fail(make_file(1, "{'descr': '<f4\\', 'fortran_order': False, 'shape': (2,)}", z, 8),
                "escapes");
    expect_fail(make_file(1, "{'descr': '<f4', 'fortran_order': false, 'shape': (2,)}", z, 8),
                "True or False");
    expect_fail(make_file(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,)", z, 8),
                "malformed header");
    b = make_file(1, HDR("<f4", "(2,)"), z, 8);
    b.p[10 + strlen(HDR("<f4", "(2,)"))] = '\0'; /* a NUL byte in the padding is not a space */
    expect_fail(b, "after the dict");

    /* fortran order, byte order, dtypes */
    expect_fail(make_file(1, "{'descr': '<f4', 'fortran_order': True, 'shape': (2,)}", z, 8),
                "Fortran-order");
    expect_fail(make_file(1, HDR(">f4", "(2,)"), z, 8), "big-endian");
    expect_fail(make_file(1, HDR(">i8", "(2,)"), z, 16), "big-endian");
    expect_fail(make_file(1, HDR("<c8", "(2,)"), z, 16), "unsupported dtype '<c8'");
    expect_fail(make_file(1, HDR("|f4", "(2,)"), z, 8), "unsupported dtype");
    expect_fail(make_file(1, HDR("<f4x", "(2,)"), z, 8), "unsupported dtype");
    expect_fail(make_file(1, HDR("<U3", "(2,)"), z, 24), "unsupported dtype");
    expect_fail(make_file(1, "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2,)}",
                          z, 8),
                "structured");

    /* shapes */
    expect_fail(make_file(1, HDR("<f4", "(-2,)"), z, 8), "negative dimension");
    expect_fail(make_file(1, HDR("<f4", "(2.5,)"), z, 8), "expected ',' or ')'");
    expect_fail(make_file(1, HDR("<f4", "[2]"), z, 8), "must be a tuple");
    expect_fail(make_file(1, HDR("<f4", "(,)"), z, 8), "non-negative integers");
    expect_fail(make_file(1, HDR("<f4", "(2,,)"), z, 8), "non-negative integers");
    expect_fail(make_file(1, HDR("<f4", "(99999999999999999999,)"), z, 8), "exceeds 2^63-1");
    expect_fail(make_file(1, HDR("<f4", "(4294967296, 4294967296)"), z, 8), "overflows");
    /* a zero extent does not hide an overflowing product of the others */
    expect_fail(make_file(1, HDR("<f4", "(0, 4294967296, 4294967296)"), z, 0), "overflows");
    expect_fail(make_file(1, HDR("<f8", "(4611686018427387904,)"), z, 8), "do not fit");
    expect_fail(make_file(1, HDR("|u1", "(1, 1, 1, 1, 1, 1, 1, 1, 1)"), z, 1),
                "more than 8 dimensions");

    /* data shorter or longer than the shape says (a huge shape must not be allocated) */
    expect_fail(make_file(1, HDR("<f4", "(3,)"), z, 8), "truncated");
    expect_fail(make_file(1, HDR("<f4", "(1000000000000,)"), z, 8), "truncated");
    expect_fail(make_file(1, HDR("<f4", "(1,)"), z, 8), "unexpected bytes after");
}

/* Every prefix of a valid file is rejected, and nothing reads past the prefix (ASan). */
static void test_every_truncation(void **state)
{
    const unsigned char z[24] = {0};
    blob whole = make_file(1, HDR("<i4", "(2, 3)"), z, 24);
    size_t n;
    (void)state;
    for (n = 0; n < whole.len; ++n) {
        char err[NPY_ERR_LEN] = "";
        npy_array a;
        unsigned char *copy = (unsigned char *)malloc(n ? n : 1);
        assert_non_null(copy);
        memcpy(copy, whole.p, n);
        if (npy_decode(copy, n, &a, err) == 0)
            fail_msg("a %lu-byte prefix of a %lu-byte file was accepted", (unsigned long)n,
                     (unsigned long)whole.len);
        assert_true(err[0] != '\0');
        free(copy);
    }
    free(whole.p);
}

/* ---- files on disk ------------------------------------------------------------------------- */

static char tmpdir[64];

static int make_tmpdir(void **state)
{
    (void)state;
    strcpy(tmpdir, "/tmp/nsa_test_npy_XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int remove_tmpdir(void **state)
{
    char cmd[128];
    (void)state;
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

static void write_blob(const char *path, blob b)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(b.p, 1, b.len, f), b.len);
    assert_int_equal(fclose(f), 0);
    free(b.p);
}

static void test_load_files(void **state)
{
    char path[128], err[NPY_ERR_LEN];
    const unsigned char z[64] = {1, 2, 3};
    char dict[400];
    npy_array a;
    blob b;
    (void)state;
    snprintf(path, sizeof path, "%s/ok.npy", tmpdir);
    write_blob(path, make_file(1, HDR("|u1", "(3,)"), z, 3));
    assert_int_equal(npy_load(path, &a, err), 0);
    assert_int_equal(((uint8_t *)a.data)[2], 3);
    npy_free(&a);

    /* a header longer than the first bytes read: the reader's second read */
    snprintf(dict, sizeof dict, "{'descr': '|u1', 'fortran_order': False, 'shape': (3,), %300s}",
             "");
    snprintf(path, sizeof path, "%s/long.npy", tmpdir);
    write_blob(path, make_file(2, dict, z, 3));
    assert_int_equal(npy_load(path, &a, err), 0);
    assert_int_equal(((uint8_t *)a.data)[1], 2);
    npy_free(&a);

    snprintf(path, sizeof path, "%s/missing.npy", tmpdir);
    assert_int_equal(npy_load(path, &a, err), -1);
    assert_non_null(strstr(err, "cannot open"));
    assert_int_equal(npy_load(tmpdir, &a, err), -1);
    assert_non_null(strstr(err, "not a regular file"));

    b = make_file(1, HDR("<f4", "(100,)"), z, 64);
    snprintf(path, sizeof path, "%s/short.npy", tmpdir);
    write_blob(path, b);
    assert_int_equal(npy_load(path, &a, err), -1);
    assert_non_null(strstr(err, "truncated"));

    b = make_file(1, HDR("<f4", "(1,)"), z, 4);
    b.p[9] = 0x7f; /* header length beyond the file */
    snprintf(path, sizeof path, "%s/lying.npy", tmpdir);
    write_blob(path, b);
    assert_int_equal(npy_load(path, &a, err), -1);
    assert_non_null(strstr(err, "runs past the end"));
}

/* The writer's files: numpy's exact header bytes, data little-endian, read back. */
static void test_writer(void **state)
{
    char path[128], err[NPY_ERR_LEN], head[256];
    const int64_t shape[2] = {2, 3}, shape1[1] = {5}, bad[1] = {-1};
    const int32_t data[6] = {1, -2, 3, -4, 5, INT32_MIN};
    const char *expect = "{'descr': '<i4', 'fortran_order': False, 'shape': (2, 3), }";
    unsigned char file[256];
    size_t len, hl;
    FILE *f;
    npy_array a;
    (void)state;
    snprintf(path, sizeof path, "%s/w.npy", tmpdir);
    assert_int_equal(npy_save(path, NPY_I4, 2, shape, data, err), 0);
    f = fopen(path, "rb");
    assert_non_null(f);
    len = fread(file, 1, sizeof file, f);
    fclose(f);
    assert_int_equal(len, 128 + 24); /* numpy pads the header so the data starts at 64*k */
    assert_memory_equal(file, "\x93NUMPY\x01\x00\x76\x00", 10);
    assert_memory_equal(file + 10, expect, strlen(expect));
    assert_int_equal(file[127], '\n');
    assert_int_equal(file[10 + strlen(expect)], ' ');
    assert_memory_equal(file + 128, "\x01\x00\x00\x00\xfe\xff\xff\xff", 8);
    assert_int_equal(npy_load(path, &a, err), 0);
    assert_memory_equal(a.data, data, sizeof data);
    npy_free(&a);

    /* a 1-tuple keeps its comma; a scalar has () */
    hl = npy_format_header(head, sizeof head, NPY_F4, 1, shape1);
    assert_int_equal(hl, 128); /* 10 + 60-odd header bytes: the data starts at 128, as numpy */
    assert_non_null(strstr(head + 10, "'shape': (5,), }"));
    hl = npy_format_header(head, sizeof head, NPY_F8, 0, NULL);
    assert_int_equal(hl, 128); /* 10 + 60-odd header bytes: the data starts at 128, as numpy */
    assert_non_null(strstr(head + 10, "'shape': (), }"));
    assert_int_equal(npy_format_header(head, sizeof head, NPY_F4, 1, bad), 0);
    assert_int_equal(npy_format_header(head, 32, NPY_F4, 1, shape1), 0);
    assert_int_equal(npy_save(path, NPY_F4, 1, bad, data, err), -1);
    snprintf(path, sizeof path, "%s/no/such/dir/x.npy", tmpdir);
    assert_int_equal(npy_save(path, NPY_I4, 2, shape, data, err), -1);
    assert_non_null(strstr(err, "cannot create"));
}

/* Files written by numpy: the reader agrees with the test suite's own loader, and the writer
 * produces numpy's header bytes for the same dtype and shape. */
static void test_numpy_files(void **state)
{
    static const char *names[] = {"antiquant_scale.npy", "ref_int8.npy", "atten_mask.npy",
                                  "block_table.npy",     "alibi_slopes.npy", "weight.npy"};
    size_t i;
    (void)state;
    for (i = 0; i < sizeof names / sizeof names[0]; ++i) {
        char path[1024], err[NPY_ERR_LEN], head[256];
        unsigned char numpy_head[256];
        test_npy ref;
        npy_array a;
        int64_t k;
        size_t hl;
        FILE *f;
        snprintf(path, sizeof path, "%s/cli/%s", NSA_TEST_DATA_DIR, names[i]);
        if (npy_load(path, &a, err) != 0)
            fail_msg("%s: %s", names[i], err);
        assert_int_equal(test_npy_load("cli", names[i], &ref), 0);
        assert_int_equal(a.h.ndim, ref.ndim);
        for (k = 0; k < ref.ndim; ++k)
            assert_int_equal(a.h.shape[k], ref.shape[k]);
        assert_int_equal(a.h.numel, ref.numel);
        for (k = 0; k < ref.numel; ++k) {
            double got = a.h.type == NPY_F8   ? ((double *)a.data)[k]
                         : a.h.type == NPY_F4 ? (double)((float *)a.data)[k]
                         : a.h.type == NPY_I4 ? (double)((int32_t *)a.data)[k]
                         : a.h.type == NPY_I1 ? (double)((int8_t *)a.data)[k]
                                              : (double)((uint8_t *)a.data)[k];
            assert_true(got == test_npy_get(&ref, k));
        }
        hl = npy_format_header(head, sizeof head, a.h.type, a.h.ndim, a.h.shape);
        assert_int_equal(hl, a.h.data_offset);
        f = fopen(path, "rb");
        assert_non_null(f);
        assert_int_equal(fread(numpy_head, 1, hl, f), hl);
        fclose(f);
        if (memcmp(head, numpy_head, hl) != 0)
            fail_msg("%s: header differs from numpy's", names[i]);
        test_npy_free(&ref);
        npy_free(&a);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_type),      cmocka_unit_test(test_header_forms),
        cmocka_unit_test(test_malformed),       cmocka_unit_test(test_every_truncation),
        cmocka_unit_test(test_load_files),      cmocka_unit_test(test_writer),
        cmocka_unit_test(test_numpy_files),
    };
    return cmocka_run_group_tests(tests, make_tmpdir, remove_tmpdir);
}
