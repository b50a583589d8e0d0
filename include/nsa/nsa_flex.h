/* SPDX-License-Identifier: Apache-2.0 */
#ifndef NSA_FLEX_H
#define NSA_FLEX_H

#include "nsa_core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* (operator declarations go here) */

#ifdef __cplusplus
}
#endif

#endif /* NSA_FLEX_H */
