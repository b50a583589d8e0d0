/* SPDX-License-Identifier: Apache-2.0 */
/* Tensor-view checks and addressing shared by every operator front-end. */
#ifndef NSA_TENSOR_TENSOR_H
#define NSA_TENSOR_TENSOR_H

#include <stdint.h>

#include "core/internal.h"

/* Bit of a dtype in an "allowed dtypes" mask. */
#define NSA_DT(dt) (1u << (unsigned)(dt))
#define NSA_DT_FLOAT (NSA_DT(NSA_DTYPE_F32) | NSA_DT(NSA_DTYPE_F16) | NSA_DT(NSA_DTYPE_BF16))
#define NSA_DT_MASK (NSA_DT(NSA_DTYPE_BOOL) | NSA_DT(NSA_DTYPE_U8) | NSA_DT(NSA_DTYPE_I8))

/* Check a required tensor: not NULL, rank `ndim`, dtype in `dtypes`, shapes >= 0, strides
 * >= 0, element count and byte extent fit int64, data != NULL unless it is empty.
 * On failure records "<name> ..." and returns the status. */
NSA_INTERNAL nsa_status nsa_check_tensor(const nsa_tensor *t, const char *name, int32_t ndim,
                                         uint32_t dtypes);

/* The same for an optional tensor: NULL passes. */
NSA_INTERNAL nsa_status nsa_check_optional(const nsa_tensor *t, const char *name, int32_t ndim,
                                           uint32_t dtypes);

/* Require t->shape[axis] == expected, else "<name>.shape[axis] must be <what> (= expected),
 * got actual". */
NSA_INTERNAL nsa_status nsa_check_dim(const nsa_tensor *t, const char *name, int axis,
                                      int64_t expected, const char *what);

/* An output view: also rejects a view whose distinct elements share memory. */
NSA_INTERNAL nsa_status nsa_check_output(const nsa_tensor *t, const char *name, int32_t ndim,
                                         uint32_t dtypes);

/* Error if the memory spans of `a` and `b` intersect (NULL tensors never overlap). Used for
 * output/output and output/input pairs. */
NSA_INTERNAL nsa_status nsa_check_no_overlap(const nsa_tensor *a, const char *name_a,
                                             const nsa_tensor *b, const char *name_b);

/* Byte span [lo, hi) a view touches; lo == hi for an empty view. */
NSA_INTERNAL void nsa_tensor_span(const nsa_tensor *t, uintptr_t *lo, uintptr_t *hi);

/* Element offset of index (i0, i1, i2, i3) (unused trailing indices are 0). */
static inline int64_t nsa_tensor_offset(const nsa_tensor *t, int64_t i0, int64_t i1, int64_t i2,
                                        int64_t i3)
{
    return i0 * t->stride[0] + i1 * t->stride[1] + i2 * t->stride[2] + i3 * t->stride[3];
}

/* Address of element offset `off` of `t`. */
static inline void *nsa_tensor_at(const nsa_tensor *t, int64_t off)
{
    return (char *)t->data + off * (int64_t)nsa_dtype_size(t->dtype);
}

/* Check a cumulative (prefix-sum) length array: non-decreasing, starting >= 0, last == total
 * (total < 0: no total check). `name` is the parameter name. The caller has checked, with
 * its own message, that cum is not NULL and count >= 1. */
NSA_INTERNAL nsa_status nsa_check_prefix_sums(const int64_t *cum, int64_t count, const char *name,
                                              int64_t total, const char *total_what);

#endif /* NSA_TENSOR_TENSOR_H */
