/* SPDX-License-Identifier: Apache-2.0 */
/* nsa_compress internals the tests reach. */
#ifndef NSA_OPS_COMPRESS_H
#define NSA_OPS_COMPRESS_H

#include "core/internal.h"

/* Tests only: run nsa_compress on the portable ring-and-tree path even where the fused
 * AVX-512 or AVX2 kernel applies (not thread-safe; set it before running ops). */
NSA_INTERNAL void nsa_compress_force_portable(int on);

#endif /* NSA_OPS_COMPRESS_H */
