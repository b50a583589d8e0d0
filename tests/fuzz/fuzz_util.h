/* SPDX-License-Identifier: Apache-2.0 */
/* Shared decoding for the operator fuzz targets (tests/fuzz/fuzz_op_*.c).
 *
 * A fuzz input is read as a stream of bytes; reading past the end yields zeros, so every
 * input decodes to some call. Decoding is biased towards valid calls: shapes, parameters and
 * prefix sums are built valid first and only then, when a "corrupt" byte says so (about one
 * input in eight), one of them is broken. Tensor contents come from a PRNG seeded by the
 * input, then the remaining bytes place special values (NaN, +-inf, +-1e38, FLT_MAX, -0,
 * subnormals, f16 extremes) at chosen positions. Every tensor gets its own allocation of
 * exactly the bytes its view spans (row padding and channel strides are chosen by the input),
 * so AddressSanitizer sees any read or write outside a view.
 *
 * Invariants checked on every call (abort() = a finding): a failing call sets a message for
 * nsa_last_error(); a failing call writes no output byte (outputs are pre-filled with a
 * canary and compared); the status is one of nsa_status. */
#ifndef NSA_FUZZ_UTIL_H
#define NSA_FUZZ_UTIL_H

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nsa/nsa.h"

typedef struct fz {
    const uint8_t *p;
    size_t n;
    uint64_t rng;
} fz;

static inline uint8_t fz_u8(fz *f)
{
    if (f->n == 0)
        return 0;
    f->n--;
    return *f->p++;
}

static inline uint16_t fz_u16(fz *f)
{
    uint16_t lo = fz_u8(f);
    return (uint16_t)(lo | (uint16_t)(fz_u8(f) << 8));
}

/* An integer in [lo, hi] from one byte. */
static inline int64_t fz_range(fz *f, int64_t lo, int64_t hi)
{
    return lo + (int64_t)(fz_u8(f) % (uint64_t)(hi - lo + 1));
}

/* True with probability about num / 256 (false once the input is exhausted). */
static inline int fz_chance(fz *f, int num)
{
    return (int)fz_u8(f) > 255 - num;
}

/* A head dimension: about half the time 16, 32 or 48 (the kernel's few-row path wants channel
 * counts that are multiples of 16), else 1..hi. */
static inline int64_t fz_dim(fz *f, int64_t hi)
{
    return fz_chance(f, 128) ? 16 * fz_range(f, 1, 3) : fz_range(f, 1, hi);
}

static inline uint64_t fz_next(fz *f)
{
    /* xorshift64* */
    f->rng ^= f->rng >> 12;
    f->rng ^= f->rng << 25;
    f->rng ^= f->rng >> 27;
    return f->rng * 2685821657736338717ull;
}

static inline void fz_seed(fz *f)
{
    f->rng = 0x9e3779b97f4a7c15ull ^ ((uint64_t)fz_u16(f) << 17) ^ fz_u16(f);
    if (f->rng == 0)
        f->rng = 1;
}

/* A value in [-1, 1) from the PRNG. */
static inline float fz_unit(fz *f)
{
    return (float)(fz_next(f) >> 40) / (float)(1u << 23) - 1.0f;
}

static inline float fz_special(uint8_t which)
{
    static const float values[] = {0.0f, -0.0f, 1.0f, -1.0f, 1e38f, -1e38f, FLT_MAX, -FLT_MAX,
                                   1e19f, -1e19f, 65504.0f, -65504.0f, 1e-45f, 1e-40f,
                                   3e38f, 100.0f};
    if (which < 3)
        return which == 0 ? NAN : which == 1 ? INFINITY : -INFINITY;
    return values[which % (sizeof values / sizeof values[0])];
}

/* ---- tensors -------------------------------------------------------------------------------- */

typedef struct fz_tensor {
    nsa_tensor t;
    void *buf;    /* malloc'd, exactly `bytes` long */
    size_t bytes; /* span of the view */
} fz_tensor;

static inline size_t fz_span(const nsa_tensor *t)
{
    size_t span = 1;
    int i;
    for (i = 0; i < t->ndim; i++) {
        if (t->shape[i] == 0)
            return 0;
        span += (size_t)(t->shape[i] - 1) * (size_t)t->stride[i];
    }
    return span;
}

/* A view of `ndim` dims with the given shape; the input picks a layout: contiguous (most
 * often), padded rows, channel stride 2, or (inputs only, rarely) a broadcast axis. */
static inline void fz_make(fz *f, fz_tensor *ft, nsa_dtype dt, int32_t ndim, const int64_t *shape,
                           int is_output)
{
    int64_t s = 1;
    int i;
    uint8_t mode = fz_u8(f);
    size_t es = nsa_dtype_size(dt);
    memset(ft, 0, sizeof *ft);
    ft->t.dtype = dt;
    ft->t.ndim = ndim;
    for (i = ndim - 1; i >= 0; i--) {
        ft->t.shape[i] = shape[i];
        if (i == ndim - 1 && mode >= 200 && mode < 230)
            s = 2; /* channel stride 2 */
        ft->t.stride[i] = s;
        s *= shape[i] > 0 ? shape[i] : 1;
        if (mode >= 170 && mode < 200 && i == ndim - 1)
            s += 3; /* padded rows */
    }
    if (!is_output && mode >= 250 && ndim > 1)
        ft->t.stride[0] = 0; /* broadcast the outer axis */
    ft->bytes = fz_span(&ft->t) * es;
    ft->buf = malloc(ft->bytes ? ft->bytes : 1);
    if (!ft->buf)
        abort();
    ft->t.data = ft->buf;
}

static inline void fz_store(void *buf, nsa_dtype dt, size_t i, float x)
{
    switch (dt) {
    case NSA_DTYPE_F32:
        memcpy((char *)buf + i * 4, &x, 4);
        break;
    case NSA_DTYPE_F16: {
        uint16_t h = nsa_f32_to_f16(x, NSA_ROUND_NEAREST_EVEN);
        memcpy((char *)buf + i * 2, &h, 2);
        break;
    }
    case NSA_DTYPE_BF16: {
        uint16_t h = nsa_f32_to_bf16(x, NSA_ROUND_NEAREST_EVEN);
        memcpy((char *)buf + i * 2, &h, 2);
        break;
    }
    case NSA_DTYPE_I8:
        ((int8_t *)buf)[i] = (int8_t)(x * 127.0f);
        break;
    case NSA_DTYPE_U8:
    case NSA_DTYPE_BOOL:
        ((uint8_t *)buf)[i] = x > 0.5f;
        break;
    default:
        break;
    }
}

/* Fill every element of the buffer (the view and its padding) with PRNG values in
 * [-scale, scale); masks get about 1/4 ones. */
static inline void fz_fill(fz *f, fz_tensor *ft, float scale)
{
    size_t es = nsa_dtype_size(ft->t.dtype), n = ft->bytes / (es ? es : 1), i;
    for (i = 0; i < n; i++) {
        float x = fz_unit(f);
        if (ft->t.dtype == NSA_DTYPE_U8 || ft->t.dtype == NSA_DTYPE_BOOL)
            x = x > 0.5f ? 1.0f : 0.0f;
        else
            x *= scale;
        fz_store(ft->buf, ft->t.dtype, i, x);
    }
}

/* Place up to `count` special values at input-chosen positions of float tensors. */
static inline void fz_specials(fz *f, fz_tensor *const *ts, int nts, int count)
{
    int c;
    for (c = 0; c < count && f->n >= 4; c++) {
        fz_tensor *ft = ts[fz_u8(f) % (unsigned)nts];
        size_t es = nsa_dtype_size(ft->t.dtype), n = ft->bytes / (es ? es : 1);
        uint16_t pos = fz_u16(f);
        uint8_t which = fz_u8(f);
        if (n && (ft->t.dtype == NSA_DTYPE_F32 || ft->t.dtype == NSA_DTYPE_F16 ||
                  ft->t.dtype == NSA_DTYPE_BF16))
            fz_store(ft->buf, ft->t.dtype, pos % n, fz_special(which));
    }
}

static inline nsa_dtype fz_float_dtype(fz *f)
{
    static const nsa_dtype dts[] = {NSA_DTYPE_F32, NSA_DTYPE_F16, NSA_DTYPE_BF16, NSA_DTYPE_F32};
    return dts[fz_u8(f) & 3];
}

static inline void fz_free(fz_tensor *ft)
{
    free(ft->buf);
    ft->buf = NULL;
}

/* ---- outputs and invariants ---------------------------------------------------------------- */

#define FZ_CANARY 0xA7

static inline void fz_canary(fz_tensor *const *outs, int n)
{
    int i;
    for (i = 0; i < n; i++)
        if (outs[i])
            memset(outs[i]->buf, FZ_CANARY, outs[i]->bytes);
}

/* After a call: a failure must have a message and must not have written an output byte. */
static inline void fz_check(nsa_status st, fz_tensor *const *outs, int n)
{
    int i;
    size_t j;
    if (st < NSA_SUCCESS || st > NSA_ERR_INTERNAL) {
        fprintf(stderr, "fuzz: status %d is not an nsa_status\n", (int)st);
        abort();
    }
    if (st == NSA_ERR_INTERNAL) {
        fprintf(stderr, "fuzz: NSA_ERR_INTERNAL: %s\n", nsa_last_error());
        abort();
    }
    if (st == NSA_SUCCESS)
        return;
    if (nsa_last_error()[0] == '\0') {
        fprintf(stderr, "fuzz: status %s without a message\n", nsa_status_string(st));
        abort();
    }
    for (i = 0; i < n; i++)
        if (outs[i])
            for (j = 0; j < outs[i]->bytes; j++)
                if (((const uint8_t *)outs[i]->buf)[j] != FZ_CANARY) {
                    fprintf(stderr, "fuzz: failed call (%s: %s) wrote output %d byte %zu\n",
                            nsa_status_string(st), nsa_last_error(), i, j);
                    abort();
                }
}

/* Prefix sums of `count` segment lengths in [lo, hi] (lengths from the input). */
static inline void fz_prefix(fz *f, int64_t *seq, int count, int64_t lo, int64_t hi)
{
    int i;
    int64_t acc = 0;
    for (i = 0; i < count; i++) {
        acc += fz_range(f, lo, hi);
        seq[i] = acc;
    }
}

/* Break one prefix sum (rarely): decreasing, negative, or a wrong total. */
static inline void fz_corrupt_prefix(fz *f, int64_t *seq, int count)
{
    int i = (int)fz_range(f, 0, count - 1);
    switch (fz_u8(f) % 4) {
    case 0:
        seq[i] = -1;
        break;
    case 1:
        seq[i] += 1;
        break;
    case 2:
        if (i > 0)
            seq[i] = seq[i - 1] - 1;
        else
            seq[i] = INT64_MAX;
        break;
    default:
        seq[i] -= 1;
        break;
    }
}

/* Statistics: with FUZZ_STATS set in the environment, print at exit how many calls returned
 * each status (to show the kernel is reached). */
static long fz_counts[NSA_ERR_INTERNAL + 1];

static inline void fz_print_counts(void)
{
    int i;
    fprintf(stderr, "fuzz stats:");
    for (i = 0; i <= NSA_ERR_INTERNAL; i++)
        fprintf(stderr, " %s=%ld", nsa_status_string((nsa_status)i), fz_counts[i]);
    fprintf(stderr, "\n");
}

static inline void fz_count(nsa_status st)
{
    static int registered;
    if (!registered) {
        registered = 1;
        if (getenv("FUZZ_STATS"))
            atexit(fz_print_counts);
    }
    if (st >= NSA_SUCCESS && st <= NSA_ERR_INTERNAL)
        fz_counts[st]++;
}


/* ---- describing a call (FUZZ_VERBOSE=1 in the environment, to reproduce a finding) ------- */

static inline int fz_verbose(void)
{
    static int v = -1;
    if (v < 0)
        v = getenv("FUZZ_VERBOSE") != NULL;
    return v;
}

static inline void fz_print_view(const char *name, const nsa_tensor *t)
{
    int i;
    if (!fz_verbose())
        return;
    fprintf(stderr, "  %s: %s%s ndim %d shape (", name, nsa_dtype_name(t->dtype),
            t->data ? "" : " data=NULL", (int)t->ndim);
    for (i = 0; i < t->ndim && i < NSA_MAX_DIMS; i++)
        fprintf(stderr, "%s%lld", i ? ", " : "", (long long)t->shape[i]);
    fprintf(stderr, ") stride (");
    for (i = 0; i < t->ndim && i < NSA_MAX_DIMS; i++)
        fprintf(stderr, "%s%lld", i ? ", " : "", (long long)t->stride[i]);
    fprintf(stderr, ")\n");
}

static inline void fz_print_ints(const char *name, const int64_t *x, int64_t n)
{
    int64_t i;
    if (!fz_verbose())
        return;
    fprintf(stderr, "  %s:", name);
    for (i = 0; x && i < n && i < 16; i++)
        fprintf(stderr, " %lld", (long long)x[i]);
    fprintf(stderr, x ? "\n" : " NULL\n");
}

static inline void fz_print_result(nsa_status st)
{
    if (fz_verbose())
        fprintf(stderr, "  -> %s %s\n", nsa_status_string(st), nsa_last_error());
}

/* ---- contexts and corrupted views ---------------------------------------------------------- */

/* One of two long-lived contexts (1 or 2 threads), chosen by the input. */
static inline nsa_context *fz_ctx(fz *f)
{
    static nsa_context *ctx[2];
    int which = fz_u8(f) & 1;
    if (!ctx[which]) {
        nsa_context_config cfg = NSA_CONTEXT_CONFIG_INIT;
        cfg.num_threads = which + 1;
        if (nsa_context_create(&cfg, &ctx[which]) != NSA_SUCCESS)
            abort();
    }
    return ctx[which];
}

/* Break one view so that it can only shrink or become invalid (never point past its buffer
 * while looking valid): NULL data, a smaller / negative / zero extent, an extent whose span
 * overflows int64, a negative
 * stride, a zero stride (overlap for outputs), a wrong rank, an unknown or narrower dtype. */
static inline void fz_corrupt_view(fz *f, nsa_tensor *t)
{
    int ax = t->ndim > 0 ? (int)fz_range(f, 0, t->ndim - 1) : 0;
    switch (fz_u8(f) % 10) {
    case 0:
        t->data = NULL;
        break;
    case 1:
        t->shape[ax] = t->shape[ax] > 0 ? t->shape[ax] - 1 : -1;
        break;
    case 2:
        t->shape[ax] = -t->shape[ax] - 1;
        break;
    case 3:
        /* an extent whose span (extent - 1) * stride overflows int64: no valid view has it
         * (a merely huge extent can be legal, e.g. a mask longer than needed) */
        t->shape[ax] = INT64_MAX / 3;
        t->stride[ax] = t->stride[ax] > 4 ? t->stride[ax] : 4;
        break;
    case 4:
        t->stride[ax] = -1;
        break;
    case 5:
        t->stride[ax] = 0;
        break;
    case 6:
        t->ndim = fz_chance(f, 128) ? 0 : NSA_MAX_DIMS + 1;
        break;
    case 7:
        if (t->ndim < NSA_MAX_DIMS) {
            t->shape[t->ndim] = 1;
            t->stride[t->ndim] = 1;
            t->ndim++;
        } else {
            t->ndim--;
        }
        break;
    case 8:
        t->dtype = fz_chance(f, 128) ? (nsa_dtype)0 : (nsa_dtype)99;
        break;
    default:
        t->dtype = NSA_DTYPE_I8;
        break;
    }
}

/* With probability about 1/8, corrupt one of the `n` views (an index chosen by the input).
 * Returns 1 when something was corrupted. */
static inline int fz_maybe_corrupt(fz *f, nsa_tensor *const *views, int n)
{
    nsa_tensor *t;
    if (!fz_chance(f, 32))
        return 0;
    t = views[fz_u8(f) % (unsigned)n];
    if (t)
        fz_corrupt_view(f, t);
    return 1;
}

/* A bad value for an integer parameter. */
static inline int64_t fz_bad_int(fz *f, int64_t good)
{
    static const int64_t bad[] = {0, -1, 1, 3, 15, 17, 20, 33, 129, 256, 1 << 20, INT32_MAX,
                                  INT64_MAX, INT64_MIN};
    uint8_t b = fz_u8(f);
    if (b < 32)
        return good + 1;
    if (b < 64)
        return good - 1;
    return bad[b % (sizeof bad / sizeof bad[0])];
}

/* A scale: mostly 1/sqrt(d), sometimes a special value (NaN, inf, 0, huge). */
static inline double fz_scale(fz *f, int64_t d)
{
    uint8_t b = fz_u8(f);
    if (b < 232)
        return 1.0 / sqrt((double)(d > 0 ? d : 1));
    return (double)fz_special(b);
}

#endif
