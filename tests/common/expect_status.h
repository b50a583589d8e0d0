/* SPDX-License-Identifier: Apache-2.0 */
/* Checking an error path: the status and a fragment of nsa_last_error(). */
#ifndef NSA_TEST_EXPECT_STATUS_H
#define NSA_TEST_EXPECT_STATUS_H

#include "nsa/nsa.h"

/* Fail the test unless `got == want` and nsa_last_error() contains `substring`. */
void test_expect_error(nsa_status got, nsa_status want, const char *substring);

#endif
