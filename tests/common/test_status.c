/* SPDX-License-Identifier: Apache-2.0 */
#include "test_status.h"

#include <string.h>

#include "test_util.h"

void test_expect_status(nsa_status got, nsa_status want, const char *needle)
{
    if (got != want)
        fail_msg("status %s, want %s (message \"%s\")", nsa_status_string(got),
                 nsa_status_string(want), nsa_last_error());
    if (!strstr(nsa_last_error(), needle))
        fail_msg("message \"%s\" does not contain \"%s\"", nsa_last_error(), needle);
}
