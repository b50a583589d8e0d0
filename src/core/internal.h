/* SPDX-License-Identifier: Apache-2.0 */
/* Internal helpers shared by every layer: errors, contexts, workspace, parallel loops. */
#ifndef NSA_CORE_INTERNAL_H
#define NSA_CORE_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "nsa/nsa_core.h"

#if defined(__GNUC__) || defined(__clang__)
#define NSA_INTERNAL __attribute__((visibility("hidden")))
#define NSA_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define NSA_INTERNAL
#define NSA_PRINTF(f, a)
#endif

/* ---- errors ------------------------------------------------------------------------------ */

/* Record `status` with a printf-style message for nsa_last_error() and return `status`.
 * Messages name the argument and the condition: "head_num must be > 0, got -1". */
NSA_INTERNAL nsa_status nsa_error(nsa_status status, const char *fmt, ...) NSA_PRINTF(2, 3);
/* Clear the thread's last error (every public entry point calls this first). */
NSA_INTERNAL void nsa_clear_error(void);
/* The printf format of the thread's last error (NULL after nsa_clear_error()): lets the tests
 * match a failure to its row of docs/errors.md exactly. */
NSA_INTERNAL const char *nsa_last_error_format(void);

/* ---- the process allocator (nsa_set_allocator) ------------------------------------------- */

/* Memory that outlives a call. NULL on failure; nsa_heap_calloc zeroes and checks count*size
 * for overflow. Free with nsa_heap_free (NULL is a no-op). */
NSA_INTERNAL void *nsa_heap_alloc(size_t size, size_t alignment);
NSA_INTERNAL void *nsa_heap_calloc(size_t count, size_t size);
NSA_INTERNAL void nsa_heap_free(void *ptr);

/* ---- contexts ---------------------------------------------------------------------------- */

/* Resolve a caller context: NULL means the process-wide default context (created on first
 * use). Returns NULL only when the default context cannot be created (out of memory). */
NSA_INTERNAL nsa_context *nsa_context_resolve(nsa_context *ctx);
/* Destroy the default context, so the next nsa_context_resolve(NULL) creates it again (tests
 * of its creation failing). Not thread-safe against running ops. */
NSA_INTERNAL void nsa_default_context_reset(void);

/* Allocate through the context's allocator; alignment is a power of two (>= 64 is used for
 * kernel scratch). Returns NULL on failure (the caller reports NSA_ERR_OUT_OF_MEMORY). */
NSA_INTERNAL void *nsa_ctx_alloc(nsa_context *ctx, size_t size, size_t alignment);
NSA_INTERNAL void nsa_ctx_free(nsa_context *ctx, void *ptr);

/* Scratch for one op call: the caller's workspace when one is set (error if too small),
 * else an allocation. `*ptr` is 64-byte aligned. Pair with nsa_workspace_release(). */
NSA_INTERNAL nsa_status nsa_workspace_acquire(nsa_context *ctx, size_t size, void **ptr);
NSA_INTERNAL void nsa_workspace_release(nsa_context *ctx, void *ptr);

/* Workers an op splits `items` independent items over (one scratch slice each): the context's
 * threads, no more than the items, at least 1. Worker w takes items w, w + workers, ...; the
 * split never changes what an item computes. */
NSA_INTERNAL size_t nsa_worker_count(const nsa_context *ctx, int64_t items);

/* Run fn(arg, i) for i in [0, n) on the context's threads (serially when it has one). */
NSA_INTERNAL void nsa_parallel_for(nsa_context *ctx, nsa_task_fn fn, void *arg, size_t n);

/* Round `x` up to a multiple of 64 bytes (scratch carving). */
static inline size_t nsa_align64(size_t x)
{
    return (x + 63u) & ~(size_t)63u;
}

/* ceil(a / b) for a >= 0, b >= 1; unlike (a + b - 1) / b it cannot overflow near INT64_MAX. */
static inline int64_t nsa_cdiv(int64_t a, int64_t b)
{
    return a / b + (a % b != 0);
}

/* Overflow-checked size arithmetic: return 0 on overflow, else store the result. */
static inline int nsa_mul_size(size_t a, size_t b, size_t *out)
{
    if (a != 0 && b > SIZE_MAX / a)
        return 0;
    *out = a * b;
    return 1;
}

static inline int nsa_add_size(size_t a, size_t b, size_t *out)
{
    if (b > SIZE_MAX - a)
        return 0;
    *out = a + b;
    return 1;
}

#endif /* NSA_CORE_INTERNAL_H */
