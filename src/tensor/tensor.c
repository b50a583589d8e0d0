/* SPDX-License-Identifier: Apache-2.0 */
/* Tensor views: constructors, dtype / layout names, and the checks every op front-end runs. */
#include "tensor/tensor.h"

#include <string.h>

size_t nsa_dtype_size(nsa_dtype dtype)
{
    switch (dtype) {
    case NSA_DTYPE_F32:
    case NSA_DTYPE_I32:
        return 4;
    case NSA_DTYPE_F16:
    case NSA_DTYPE_BF16:
        return 2;
    case NSA_DTYPE_I8:
    case NSA_DTYPE_U8:
    case NSA_DTYPE_BOOL:
        return 1;
    case NSA_DTYPE_I64:
        return 8;
    }
    return 0;
}

const char *nsa_dtype_name(nsa_dtype dtype)
{
    switch (dtype) {
    case NSA_DTYPE_F32:
        return "f32";
    case NSA_DTYPE_F16:
        return "f16";
    case NSA_DTYPE_BF16:
        return "bf16";
    case NSA_DTYPE_I8:
        return "i8";
    case NSA_DTYPE_U8:
        return "u8";
    case NSA_DTYPE_BOOL:
        return "bool";
    case NSA_DTYPE_I32:
        return "i32";
    case NSA_DTYPE_I64:
        return "i64";
    }
    return "invalid";
}

static const char *const k_layout_names[] = {"invalid", "TND", "BSH", "BSND", "BNSD"};

nsa_status nsa_layout_from_string(const char *text, nsa_layout *layout)
{
    int i;
    nsa_clear_error();
    if (!text || !layout)
        return nsa_error(NSA_ERR_NULL_POINTER, "text and layout must not be NULL");
    for (i = 1; i <= 4; i++) {
        if (strcmp(text, k_layout_names[i]) == 0) {
            *layout = (nsa_layout)i;
            return NSA_SUCCESS;
        }
    }
    return nsa_error(NSA_ERR_INVALID_ARGUMENT,
                     "layout must be one of TND, BSH, BSND, BNSD, got \"%.32s\"", text);
}

const char *nsa_layout_name(nsa_layout layout)
{
    if (layout >= NSA_LAYOUT_TND && layout <= NSA_LAYOUT_BNSD)
        return k_layout_names[layout];
    return k_layout_names[0];
}

nsa_tensor nsa_tensor_contiguous(void *data, nsa_dtype dtype, int32_t ndim, const int64_t *shape)
{
    nsa_tensor t;
    int i;
    int64_t s = 1;
    memset(&t, 0, sizeof t);
    t.data = data;
    t.dtype = dtype;
    t.ndim = ndim;
    if (ndim < 0 || ndim > NSA_MAX_DIMS || !shape)
        return t;
    for (i = ndim - 1; i >= 0; i--) {
        int64_t extent = shape[i] > 0 ? shape[i] : 1;
        t.shape[i] = shape[i];
        t.stride[i] = s;
        /* saturate instead of overflowing: nsa_check_tensor rejects such a shape anyway */
        s = s > INT64_MAX / extent ? INT64_MAX : s * extent;
    }
    return t;
}

nsa_tensor nsa_tensor_strided(void *data, nsa_dtype dtype, int32_t ndim, const int64_t *shape,
                              const int64_t *stride)
{
    nsa_tensor t;
    int i;
    memset(&t, 0, sizeof t);
    t.data = data;
    t.dtype = dtype;
    t.ndim = ndim;
    if (ndim < 0 || ndim > NSA_MAX_DIMS || !shape || !stride)
        return t;
    for (i = 0; i < ndim; i++) {
        t.shape[i] = shape[i];
        t.stride[i] = stride[i];
    }
    return t;
}

int64_t nsa_tensor_numel(const nsa_tensor *t)
{
    int64_t n = 1;
    int i;
    if (!t || t->ndim < 0 || t->ndim > NSA_MAX_DIMS)
        return -1;
    for (i = 0; i < t->ndim; i++) {
        if (t->shape[i] < 0)
            return -1;
        if (t->shape[i] == 0)
            return 0;
        if (n > INT64_MAX / t->shape[i])
            return -1;
        n *= t->shape[i];
    }
    return n;
}

int nsa_tensor_is_contiguous(const nsa_tensor *t)
{
    int64_t s = 1, numel = nsa_tensor_numel(t);
    int i;
    if (numel < 0) /* NULL, bad rank, negative or overflowing shape */
        return 0;
    if (numel == 0) /* nothing is stored: any strides describe the same (empty) memory */
        return 1;
    for (i = t->ndim - 1; i >= 0; i--) {
        if (t->shape[i] != 1 && t->stride[i] != s)
            return 0;
        s *= t->shape[i]; /* cannot overflow: the product of all extents fits */
    }
    return 1;
}

static const char *dtype_list(uint32_t dtypes, char *buf, size_t cap)
{
    int dt;
    size_t len = 0;
    buf[0] = '\0';
    for (dt = NSA_DTYPE_F32; dt <= NSA_DTYPE_I64; dt++) {
        if (dtypes & NSA_DT(dt)) {
            const char *name = nsa_dtype_name((nsa_dtype)dt);
            size_t n = strlen(name);
            if (len + n + 3 >= cap)
                break;
            if (len) {
                buf[len++] = ',';
                buf[len++] = ' ';
            }
            memcpy(buf + len, name, n + 1);
            len += n;
        }
    }
    return buf;
}

nsa_status nsa_check_tensor(const nsa_tensor *t, const char *name, int32_t ndim, uint32_t dtypes)
{
    int i;
    int64_t numel, extent = 0;
    size_t esize;
    char buf[96];
    if (!t)
        return nsa_error(NSA_ERR_NULL_POINTER, "%s must not be NULL", name);
    if (t->ndim != ndim)
        return nsa_error(NSA_ERR_INVALID_ARGUMENT, "%s must have %d dimensions, got %d", name,
                         (int)ndim, (int)t->ndim);
    esize = nsa_dtype_size(t->dtype);
    if (esize == 0 || !(dtypes & NSA_DT(t->dtype)))
        return nsa_error(NSA_ERR_INVALID_ARGUMENT, "%s dtype must be one of {%s}, got %s", name,
                         dtype_list(dtypes, buf, sizeof buf), nsa_dtype_name(t->dtype));
    for (i = 0; i < ndim; i++) {
        if (t->shape[i] < 0)
            return nsa_error(NSA_ERR_INVALID_ARGUMENT, "%s.shape[%d] must be >= 0, got %lld",
                             name, i, (long long)t->shape[i]);
        if (t->stride[i] < 0)
            return nsa_error(NSA_ERR_INVALID_ARGUMENT, "%s.stride[%d] must be >= 0, got %lld",
                             name, i, (long long)t->stride[i]);
    }
    numel = nsa_tensor_numel(t);
    if (numel < 0)
        return nsa_error(NSA_ERR_INVALID_ARGUMENT,
                         "%s has more elements than int64 can count (shape product overflows)",
                         name);
    if (numel == 0)
        return NSA_SUCCESS;
    /* The last element's offset must fit, in elements and in bytes. */
    for (i = 0; i < ndim; i++) {
        int64_t span = t->shape[i] - 1;
        if (t->stride[i] != 0 && span > (INT64_MAX - extent) / t->stride[i])
            return nsa_error(NSA_ERR_INVALID_ARGUMENT,
                             "%s spans more memory than int64 can address (strides overflow)",
                             name);
        extent += span * t->stride[i];
    }
    if (extent >= INT64_MAX / (int64_t)esize)
        return nsa_error(NSA_ERR_INVALID_ARGUMENT,
                         "%s spans more bytes than int64 can address", name);
    if (!t->data)
        return nsa_error(NSA_ERR_NULL_POINTER, "%s.data must not be NULL (%lld elements)", name,
                         (long long)numel);
    /* reading a misaligned element is undefined behaviour in C */
    if ((uintptr_t)t->data % esize != 0)
        return nsa_error(NSA_ERR_INVALID_ARGUMENT,
                         "%s.data must be aligned to %zu bytes (the size of %s), got address %p",
                         name, esize, nsa_dtype_name(t->dtype), t->data);
    if ((uint64_t)((extent + 1) * (int64_t)esize) > (uint64_t)(UINTPTR_MAX - (uintptr_t)t->data))
        return nsa_error(NSA_ERR_INVALID_ARGUMENT,
                         "%s spans past the end of the address space (data %p, %lld bytes)", name,
                         t->data, (long long)((extent + 1) * (int64_t)esize));
    return NSA_SUCCESS;
}

nsa_status nsa_check_optional(const nsa_tensor *t, const char *name, int32_t ndim,
                              uint32_t dtypes)
{
    return t ? nsa_check_tensor(t, name, ndim, dtypes) : NSA_SUCCESS;
}

nsa_status nsa_check_dim(const nsa_tensor *t, const char *name, int axis, int64_t expected,
                         const char *what)
{
    if (t->shape[axis] != expected)
        return nsa_error(NSA_ERR_INVALID_ARGUMENT, "%s.shape[%d] must be %s (%lld), got %lld",
                         name, axis, what, (long long)expected, (long long)t->shape[axis]);
    return NSA_SUCCESS;
}

/* Distinct indices map to distinct elements iff, with axes sorted by stride, each stride is
 * at least the extent spanned by the smaller ones (a sufficient check, exact for the
 * layouts people use). Axes of size 1 are ignored. */
static int self_overlaps(const nsa_tensor *t)
{
    int idx[NSA_MAX_DIMS], n = 0, i, j;
    int64_t span = 1;
    for (i = 0; i < t->ndim; i++)
        if (t->shape[i] > 1)
            idx[n++] = i;
    for (i = 1; i < n; i++) /* insertion sort by stride */
        for (j = i; j > 0 && t->stride[idx[j]] < t->stride[idx[j - 1]]; j--) {
            int tmp = idx[j];
            idx[j] = idx[j - 1];
            idx[j - 1] = tmp;
        }
    for (i = 0; i < n; i++) {
        if (t->stride[idx[i]] < span)
            return 1;
        span = t->stride[idx[i]] * (t->shape[idx[i]] - 1) + span;
    }
    return 0;
}

nsa_status nsa_check_output(const nsa_tensor *t, const char *name, int32_t ndim, uint32_t dtypes)
{
    nsa_status st = nsa_check_tensor(t, name, ndim, dtypes);
    if (st != NSA_SUCCESS)
        return st;
    if (nsa_tensor_numel(t) > 0 && self_overlaps(t))
        return nsa_error(NSA_ERR_INVALID_ARGUMENT,
                         "%s must not overlap itself (its strides map two indices to one element)",
                         name);
    return NSA_SUCCESS;
}

void nsa_tensor_span(const nsa_tensor *t, uintptr_t *lo, uintptr_t *hi)
{
    int i;
    int64_t extent = 0;
    *lo = *hi = (uintptr_t)t->data;
    if (nsa_tensor_numel(t) <= 0)
        return;
    for (i = 0; i < t->ndim; i++)
        extent += (t->shape[i] - 1) * t->stride[i];
    *hi = *lo + (uintptr_t)((extent + 1) * (int64_t)nsa_dtype_size(t->dtype));
}

nsa_status nsa_check_no_overlap(const nsa_tensor *a, const char *name_a, const nsa_tensor *b,
                                const char *name_b)
{
    uintptr_t alo, ahi, blo, bhi;
    if (!a || !b)
        return NSA_SUCCESS;
    nsa_tensor_span(a, &alo, &ahi);
    nsa_tensor_span(b, &blo, &bhi);
    if (alo < ahi && blo < bhi && alo < bhi && blo < ahi)
        return nsa_error(NSA_ERR_INVALID_ARGUMENT, "%s must not overlap %s in memory", name_a,
                         name_b);
    return NSA_SUCCESS;
}

nsa_status nsa_check_prefix_sums(const int64_t *cum, int64_t count, const char *name,
                                 int64_t total, const char *total_what)
{
    int64_t i;
    for (i = 0; i < count; i++) {
        int64_t prev = i ? cum[i - 1] : 0;
        if (cum[i] < prev)
            return nsa_error(NSA_ERR_INVALID_ARGUMENT,
                             "%s must be non-decreasing prefix sums, but %s[%lld] = %lld < %lld",
                             name, name, (long long)i, (long long)cum[i], (long long)prev);
    }
    if (total >= 0 && count > 0 && cum[count - 1] != total)
        return nsa_error(NSA_ERR_INVALID_ARGUMENT, "%s[%lld] (the last) must equal %s (%lld), got %lld",
                         name, (long long)(count - 1), total_what, (long long)total,
                         (long long)cum[count - 1]);
    return NSA_SUCCESS;
}
