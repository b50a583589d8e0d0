/* SPDX-License-Identifier: Apache-2.0 */
#include "expect_status.h"

#include <string.h>

#include "test_util.h"

void test_expect_error(nsa_status got, nsa_status want, const char *substring)
{
    if (got != want || !strstr(nsa_last_error(), substring))
        fail_msg("want %s with \"%s\", got %s: \"%s\"", nsa_status_string(want), substring,
                 nsa_status_string(got), nsa_last_error());
}
