/* SPDX-License-Identifier: Apache-2.0 */
/* Checking a failed call: its status and the message nsa_last_error() gives for it. */
#ifndef NSA_TEST_STATUS_H
#define NSA_TEST_STATUS_H

#include "nsa/nsa.h"

/* Fail the test unless `got` is `want` and nsa_last_error() contains `needle`. */
void test_expect_status(nsa_status got, nsa_status want, const char *needle);

#endif
