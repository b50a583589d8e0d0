/* SPDX-License-Identifier: Apache-2.0 */
#include <string.h>

#include "test_util.h"

static void version_matches(void **state)
{
    (void)state;
    assert_int_equal(nsa_version_number(), NSA_VERSION_NUMBER);
    assert_string_equal(nsa_version_string(), NSA_VERSION_STRING);
    assert_non_null(strstr(nsa_build_info(), "blas="));
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(version_matches)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
