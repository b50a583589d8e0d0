/* SPDX-License-Identifier: Apache-2.0 */
/* Tensor views: constructors, numel / contiguity, dtype and layout names, and every failure
 * of the nsa_check_* helpers with its status and message. */
#include <stdint.h>
#include <string.h>

#include "tensor/tensor.h"
#include "test_status.h"
#include "test_util.h"

static nsa_tensor make(void *data, nsa_dtype dt, int32_t ndim, int64_t s0, int64_t s1, int64_t s2)
{
    const int64_t shape[3] = {s0, s1, s2};
    return nsa_tensor_contiguous(data, dt, ndim, shape);
}

static void constructors(void **state)
{
    float buf[64];
    const int64_t shape[4] = {2, 3, 4, 5}, stride[4] = {1, 2, 6, 24};
    nsa_tensor t;
    (void)state;
    t = nsa_tensor_contiguous(buf, NSA_DTYPE_F32, 4, shape);
    assert_ptr_equal(t.data, buf);
    assert_int_equal(t.dtype, NSA_DTYPE_F32);
    assert_int_equal(t.ndim, 4);
    assert_int_equal(t.stride[0], 60);
    assert_int_equal(t.stride[1], 20);
    assert_int_equal(t.stride[2], 5);
    assert_int_equal(t.stride[3], 1);
    assert_int_equal(nsa_tensor_numel(&t), 120);
    assert_true(nsa_tensor_is_contiguous(&t));

    t = nsa_tensor_strided(buf, NSA_DTYPE_F16, 4, shape, stride);
    assert_int_equal(t.shape[3], 5);
    assert_int_equal(t.stride[3], 24);
    assert_int_equal(nsa_tensor_numel(&t), 120);
    assert_false(nsa_tensor_is_contiguous(&t));

    /* rank 0 is a scalar; bad ranks or a NULL shape give an empty-shaped view */
    t = nsa_tensor_contiguous(buf, NSA_DTYPE_F32, 0, shape);
    assert_int_equal(nsa_tensor_numel(&t), 1);
    assert_true(nsa_tensor_is_contiguous(&t));
    t = nsa_tensor_contiguous(buf, NSA_DTYPE_F32, 5, shape);
    assert_int_equal(t.shape[0], 0);
    assert_int_equal(nsa_tensor_numel(&t), -1);
    assert_false(nsa_tensor_is_contiguous(&t));
    t = nsa_tensor_strided(buf, NSA_DTYPE_F32, 2, NULL, stride);
    assert_int_equal(t.shape[0], 0);
    assert_int_equal(t.stride[0], 0);
    t = nsa_tensor_contiguous(buf, NSA_DTYPE_F32, -1, shape);
    assert_int_equal(nsa_tensor_numel(&t), -1);
}

static void numel_and_contiguity(void **state)
{
    const int64_t big[3] = {INT64_MAX / 2, 3, 1};
    const int64_t perm_shape[2] = {3, 4}, perm_stride[2] = {1, 3};
    const int64_t ones_shape[3] = {1, 4, 1}, ones_stride[3] = {99, 1, 7};
    nsa_tensor t;
    (void)state;
    assert_int_equal(nsa_tensor_numel(NULL), -1);
    assert_false(nsa_tensor_is_contiguous(NULL));
    /* empty views: numel 0 and contiguous, whatever their strides */
    t = make(NULL, NSA_DTYPE_F32, 3, 2, 0, 3);
    assert_int_equal(nsa_tensor_numel(&t), 0);
    assert_true(nsa_tensor_is_contiguous(&t));
    t.stride[0] = 1000;
    assert_true(nsa_tensor_is_contiguous(&t));
    /* negative extent */
    t = make(NULL, NSA_DTYPE_F32, 2, 4, -1, 0);
    assert_int_equal(nsa_tensor_numel(&t), -1);
    assert_false(nsa_tensor_is_contiguous(&t));
    /* the product overflows int64 (and building the view must not overflow either) */
    t = nsa_tensor_contiguous(NULL, NSA_DTYPE_F32, 3, big);
    assert_int_equal(nsa_tensor_numel(&t), -1);
    assert_false(nsa_tensor_is_contiguous(&t));
    /* a permuted view is not contiguous; size-1 axes may have any stride */
    t = nsa_tensor_strided(NULL, NSA_DTYPE_F32, 2, perm_shape, perm_stride);
    assert_int_equal(nsa_tensor_numel(&t), 12);
    assert_false(nsa_tensor_is_contiguous(&t));
    t = nsa_tensor_strided(NULL, NSA_DTYPE_F32, 3, ones_shape, ones_stride);
    assert_true(nsa_tensor_is_contiguous(&t));
    t.stride[1] = 2;
    assert_false(nsa_tensor_is_contiguous(&t));
    /* a bad rank never reads past the arrays */
    t.ndim = 9;
    assert_false(nsa_tensor_is_contiguous(&t));
}

static void dtype_and_layout_names(void **state)
{
    static const struct {
        nsa_dtype dt;
        size_t size;
        const char *name;
    } dts[] = {{NSA_DTYPE_F32, 4, "f32"}, {NSA_DTYPE_F16, 2, "f16"}, {NSA_DTYPE_BF16, 2, "bf16"},
               {NSA_DTYPE_I8, 1, "i8"},   {NSA_DTYPE_U8, 1, "u8"},   {NSA_DTYPE_BOOL, 1, "bool"},
               {NSA_DTYPE_I32, 4, "i32"}, {NSA_DTYPE_I64, 8, "i64"}};
    static const char *const layouts[] = {"TND", "BSH", "BSND", "BNSD"};
    static const nsa_layout ids[] = {NSA_LAYOUT_TND, NSA_LAYOUT_BSH, NSA_LAYOUT_BSND,
                                     NSA_LAYOUT_BNSD};
    size_t i;
    nsa_layout l = NSA_LAYOUT_BSH;
    (void)state;
    for (i = 0; i < sizeof dts / sizeof dts[0]; i++) {
        assert_int_equal(nsa_dtype_size(dts[i].dt), dts[i].size);
        assert_string_equal(nsa_dtype_name(dts[i].dt), dts[i].name);
    }
    assert_int_equal(nsa_dtype_size((nsa_dtype)0), 0);
    assert_int_equal(nsa_dtype_size((nsa_dtype)9), 0);
    assert_string_equal(nsa_dtype_name((nsa_dtype)-1), "invalid");
    for (i = 0; i < 4; i++) {
        assert_int_equal(nsa_layout_from_string(layouts[i], &l), NSA_SUCCESS);
        assert_int_equal(l, ids[i]);
        assert_string_equal(nsa_layout_name(ids[i]), layouts[i]);
        assert_string_equal(nsa_last_error(), "");
    }
    assert_string_equal(nsa_layout_name((nsa_layout)0), "invalid");
    assert_string_equal(nsa_layout_name((nsa_layout)5), "invalid");
    l = NSA_LAYOUT_BSH;
    test_expect_status(nsa_layout_from_string("tnd", &l), NSA_ERR_INVALID_ARGUMENT,
                       "layout must be one of TND, BSH, BSND, BNSD, got \"tnd\"");
    assert_int_equal(l, NSA_LAYOUT_BSH); /* untouched on failure */
    test_expect_status(nsa_layout_from_string("", &l), NSA_ERR_INVALID_ARGUMENT, "got \"\"");
    test_expect_status(nsa_layout_from_string(NULL, &l), NSA_ERR_NULL_POINTER,
                       "text and layout must not be NULL");
    test_expect_status(nsa_layout_from_string("TND", NULL), NSA_ERR_NULL_POINTER,
                       "text and layout must not be NULL");
}

static void check_tensor_failures(void **state)
{
    static float buf[64];
    const uint32_t half = NSA_DT(NSA_DTYPE_F16) | NSA_DT(NSA_DTYPE_BF16);
    nsa_tensor t;
    (void)state;
    t = make(buf, NSA_DTYPE_F32, 3, 2, 3, 4);
    assert_int_equal(nsa_check_tensor(&t, "query", 3, NSA_DT_FLOAT), NSA_SUCCESS);

    test_expect_status(nsa_check_tensor(NULL, "query", 3, NSA_DT_FLOAT), NSA_ERR_NULL_POINTER,
                       "query must not be NULL");
    test_expect_status(nsa_check_tensor(&t, "query", 2, NSA_DT_FLOAT), NSA_ERR_INVALID_ARGUMENT,
                       "query must have 2 dimensions, got 3");
    test_expect_status(nsa_check_tensor(&t, "key", 3, half), NSA_ERR_INVALID_ARGUMENT,
                       "key dtype must be one of {f16, bf16}, got f32");
    t.dtype = (nsa_dtype)42;
    test_expect_status(nsa_check_tensor(&t, "key", 3, NSA_DT_FLOAT), NSA_ERR_INVALID_ARGUMENT,
                       "key dtype must be one of {f32, f16, bf16}, got invalid");

    t = make(buf, NSA_DTYPE_F32, 3, 2, 3, 4);
    t.shape[1] = -2;
    test_expect_status(nsa_check_tensor(&t, "value", 3, NSA_DT_FLOAT), NSA_ERR_INVALID_ARGUMENT,
                       "value.shape[1] must be >= 0, got -2");
    t = make(buf, NSA_DTYPE_F32, 3, 2, 3, 4);
    t.stride[2] = -1;
    test_expect_status(nsa_check_tensor(&t, "value", 3, NSA_DT_FLOAT), NSA_ERR_INVALID_ARGUMENT,
                       "value.stride[2] must be >= 0, got -1");

    /* int64 overflow of the element count */
    t = make(buf, NSA_DTYPE_F32, 3, INT64_MAX / 4, 8, 1);
    test_expect_status(nsa_check_tensor(&t, "q", 3, NSA_DT_FLOAT), NSA_ERR_INVALID_ARGUMENT,
                       "q has more elements than int64 can count (shape product overflows)");
    /* the count fits but the strides reach past int64 elements */
    t = make(buf, NSA_DTYPE_F32, 3, 3, 1, 1);
    t.stride[0] = INT64_MAX / 2 + 1;
    test_expect_status(nsa_check_tensor(&t, "q", 3, NSA_DT_FLOAT), NSA_ERR_INVALID_ARGUMENT,
                       "q spans more memory than int64 can address (strides overflow)");
    /* elements fit, bytes do not */
    t = make(buf, NSA_DTYPE_F32, 3, 2, 1, 1);
    t.stride[0] = INT64_MAX / 4;
    test_expect_status(nsa_check_tensor(&t, "q", 3, NSA_DT_FLOAT), NSA_ERR_INVALID_ARGUMENT,
                       "q spans more bytes than int64 can address");
    /* fits int64 but wraps around the address space */
    t = make((void *)(UINTPTR_MAX - 15), NSA_DTYPE_F32, 3, 8, 1, 1);
    test_expect_status(nsa_check_tensor(&t, "q", 3, NSA_DT_FLOAT), NSA_ERR_INVALID_ARGUMENT,
                       "q spans past the end of the address space");

    /* NULL data: an error unless the view is empty */
    t = make(NULL, NSA_DTYPE_F32, 3, 2, 3, 4);
    test_expect_status(nsa_check_tensor(&t, "k", 3, NSA_DT_FLOAT), NSA_ERR_NULL_POINTER,
                       "k.data must not be NULL (24 elements)");
    t = make(NULL, NSA_DTYPE_F32, 3, 2, 0, 4);
    assert_int_equal(nsa_check_tensor(&t, "k", 3, NSA_DT_FLOAT), NSA_SUCCESS);
    /* a misaligned element pointer */
    t = make((char *)buf + 2, NSA_DTYPE_F32, 3, 2, 3, 4);
    test_expect_status(nsa_check_tensor(&t, "k", 3, NSA_DT_FLOAT), NSA_ERR_INVALID_ARGUMENT,
                       "k.data must be aligned to 4 bytes (the size of f32)");
    t.dtype = NSA_DTYPE_F16; /* 2-byte elements: aligned */
    assert_int_equal(nsa_check_tensor(&t, "k", 3, NSA_DT_FLOAT), NSA_SUCCESS);
}

static void check_optional_and_dim(void **state)
{
    static float buf[24];
    nsa_tensor t = make(buf, NSA_DTYPE_F32, 2, 4, 6, 0);
    (void)state;
    assert_int_equal(nsa_check_optional(NULL, "bias", 2, NSA_DT_FLOAT), NSA_SUCCESS);
    assert_int_equal(nsa_check_optional(&t, "bias", 2, NSA_DT_FLOAT), NSA_SUCCESS);
    test_expect_status(nsa_check_optional(&t, "bias", 3, NSA_DT_FLOAT), NSA_ERR_INVALID_ARGUMENT,
                       "bias must have 3 dimensions, got 2");
    assert_int_equal(nsa_check_dim(&t, "bias", 1, 6, "head_dim"), NSA_SUCCESS);
    test_expect_status(nsa_check_dim(&t, "bias", 0, 8, "batch"), NSA_ERR_INVALID_ARGUMENT,
                       "bias.shape[0] must be batch (8), got 4");
}

static void check_output_and_overlap(void **state)
{
    static float buf[256];
    const int64_t shape[2] = {4, 8};
    nsa_tensor t, a, b;
    uintptr_t lo, hi;
    (void)state;
    t = nsa_tensor_contiguous(buf, NSA_DTYPE_F32, 2, shape);
    assert_int_equal(nsa_check_output(&t, "out", 2, NSA_DT_FLOAT), NSA_SUCCESS);
    /* the basic failures come from nsa_check_tensor */
    test_expect_status(nsa_check_output(NULL, "out", 2, NSA_DT_FLOAT), NSA_ERR_NULL_POINTER,
                       "out must not be NULL");
    /* a broadcast (stride 0) output writes one element twice */
    t.stride[0] = 0;
    test_expect_status(nsa_check_output(&t, "out", 2, NSA_DT_FLOAT), NSA_ERR_INVALID_ARGUMENT,
                       "out must not overlap itself");
    /* rows closer than a row's length */
    t.stride[0] = 7;
    test_expect_status(nsa_check_output(&t, "out", 2, NSA_DT_FLOAT), NSA_ERR_INVALID_ARGUMENT,
                       "out must not overlap itself");
    /* padded rows and transposed views are fine; so is stride 0 on a size-1 axis */
    t.stride[0] = 9;
    assert_int_equal(nsa_check_output(&t, "out", 2, NSA_DT_FLOAT), NSA_SUCCESS);
    t.stride[0] = 1;
    t.stride[1] = 4;
    assert_int_equal(nsa_check_output(&t, "out", 2, NSA_DT_FLOAT), NSA_SUCCESS);
    t.shape[0] = 1;
    t.stride[0] = 0;
    t.stride[1] = 1;
    assert_int_equal(nsa_check_output(&t, "out", 2, NSA_DT_FLOAT), NSA_SUCCESS);
    /* an empty output never overlaps */
    t.shape[1] = 0;
    assert_int_equal(nsa_check_output(&t, "out", 2, NSA_DT_FLOAT), NSA_SUCCESS);

    /* two outputs: spans [buf, buf+32) and [buf+31, ...) intersect; [buf+32, ...) touches */
    a = nsa_tensor_contiguous(buf, NSA_DTYPE_F32, 2, shape);
    b = nsa_tensor_contiguous(buf + 31, NSA_DTYPE_F32, 2, shape);
    nsa_tensor_span(&a, &lo, &hi);
    assert_int_equal(hi - lo, 32 * sizeof(float));
    test_expect_status(nsa_check_no_overlap(&a, "attention_out", &b, "softmax_max"),
                       NSA_ERR_INVALID_ARGUMENT,
                       "attention_out must not overlap softmax_max in memory");
    test_expect_status(nsa_check_no_overlap(&b, "softmax_max", &a, "attention_out"),
                       NSA_ERR_INVALID_ARGUMENT,
                       "softmax_max must not overlap attention_out in memory");
    b.data = buf + 32;
    assert_int_equal(nsa_check_no_overlap(&a, "a", &b, "b"), NSA_SUCCESS);
    assert_int_equal(nsa_check_no_overlap(&a, "a", NULL, "b"), NSA_SUCCESS);
    /* an empty view overlaps nothing, even at the same address */
    b.data = buf;
    b.shape[0] = 0;
    nsa_tensor_span(&b, &lo, &hi);
    assert_true(lo == hi);
    assert_int_equal(nsa_check_no_overlap(&a, "a", &b, "b"), NSA_SUCCESS);
    /* a strided view spans from its first to one past its last element */
    b = nsa_tensor_contiguous(buf + 100, NSA_DTYPE_F16, 2, shape);
    b.stride[0] = 20;
    nsa_tensor_span(&b, &lo, &hi);
    assert_int_equal(hi - lo, (3 * 20 + 7 + 1) * 2);
}

static void prefix_sums(void **state)
{
    const int64_t good[4] = {0, 3, 3, 10};
    const int64_t down[4] = {2, 5, 3, 10};
    const int64_t negative[2] = {-1, 4};
    (void)state;
    assert_int_equal(nsa_check_prefix_sums(good, 4, "actual_seq_qlen", 10, "T"), NSA_SUCCESS);
    assert_int_equal(nsa_check_prefix_sums(good, 4, "actual_seq_qlen", -1, "T"), NSA_SUCCESS);
    assert_int_equal(nsa_check_prefix_sums(NULL, 0, "actual_seq_qlen", 10, "T"), NSA_SUCCESS);
    test_expect_status(
        nsa_check_prefix_sums(down, 4, "actual_seq_qlen", 10, "T"), NSA_ERR_INVALID_ARGUMENT,
        "actual_seq_qlen must be non-decreasing prefix sums, but actual_seq_qlen[2] = 3 "
        "< 5");
    test_expect_status(nsa_check_prefix_sums(negative, 2, "cu_seqlens", 4, "T"),
                       NSA_ERR_INVALID_ARGUMENT, "cu_seqlens[0] = -1 < 0");
    test_expect_status(nsa_check_prefix_sums(good, 4, "actual_seq_kvlen", 12, "key.shape[0]"),
                       NSA_ERR_INVALID_ARGUMENT,
                       "actual_seq_kvlen[3] (the last) must equal key.shape[0] (12), got 10");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(constructors),
        cmocka_unit_test(numel_and_contiguity),
        cmocka_unit_test(dtype_and_layout_names),
        cmocka_unit_test(check_tensor_failures),
        cmocka_unit_test(check_optional_and_dim),
        cmocka_unit_test(check_output_and_overlap),
        cmocka_unit_test(prefix_sums),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
