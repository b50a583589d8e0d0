/* SPDX-License-Identifier: Apache-2.0 */
/* A validation rule of docs/errors.md that the operators' own tests do not reach: the missing
 * size pointer of nsa_compress_workspace_size. (The flex and mod cases that lived here are
 * row cases of tests/unit/test_error_rows_flex.c now.) */
#include "test_status.h"
#include "test_util.h"

static void compress_size_query_needs_size(void **state)
{
    float in[64 * 2 * 16];
    int64_t shape[3] = {64, 2, 16}, cum[1] = {64};
    nsa_tensor t = nsa_tensor_contiguous(in, NSA_DTYPE_F32, 3, shape);
    nsa_compress_params p = nsa_compress_params_default();
    (void)state;
    p.actual_seq_len = cum;
    p.actual_seq_len_count = 1;
    test_expect_status(nsa_compress_workspace_size(NULL, &t, &p, NULL), NSA_ERR_NULL_POINTER,
                       "size must not be NULL");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(compress_size_query_needs_size),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
