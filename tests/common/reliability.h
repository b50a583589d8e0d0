/* SPDX-License-Identifier: Apache-2.0 */
/* Generic reliability checks any operator plugs into: bit-identical results for any thread
 * count, concurrent callers, and failing allocations. An operator is described by a
 * callback that runs it once with a context and writes its outputs into `out`. */
#ifndef NSA_TEST_RELIABILITY_H
#define NSA_TEST_RELIABILITY_H

#include <stddef.h>

#include "nsa/nsa.h"

/* Run the op under test with `ctx` (which may be NULL), writing every output byte into
 * out[0 .. out_size). Return the op's status. */
typedef nsa_status (*rel_op_fn)(void *user, nsa_context *ctx, void *out, size_t out_size);

typedef struct rel_op {
    const char *name;
    rel_op_fn run;
    void *user;
    size_t out_size; /* bytes of all outputs together */
} rel_op;

/* Outputs are bit-identical for contexts of 1, 2, 3 and 8 threads and the default context. */
void rel_check_thread_counts(const rel_op *op);

/* 8 threads run the op at once (shared inputs, private outputs, one shared 2-thread context
 * and the default context), each result bit-identical to a serial run. */
void rel_check_concurrent(const rel_op *op);

/* Outputs are bit-identical on the built-in GEMM and on the default (OpenBLAS) backend: for
 * ops that promise it (docs/reliability.md, "Bit stability across BLAS backends"). */
void rel_check_backends(const rel_op *op);

/* With an allocator that fails the n-th allocation, for every n up to the number of
 * allocations a successful run makes: the op returns NSA_ERR_OUT_OF_MEMORY, frees everything
 * it allocated, and a later successful run still gives the reference bits. */
void rel_check_alloc_failures(const rel_op *op);

/* The same for what allocates from the process allocator (nsa_set_allocator): `make` builds
 * an object (a block mask, a mask or score mod) and `destroy` frees it. For every n up to the
 * allocations of a successful make, failing the n-th gives NSA_ERR_OUT_OF_MEMORY, leaves
 * `*obj` NULL and leaks nothing. Uses the default context, which must exist already. */
typedef nsa_status (*rel_make_fn)(void *user, void **obj);
void rel_check_process_alloc_failures(const char *name, rel_make_fn make,
                                      void (*destroy)(void *obj), void *user);

#endif
