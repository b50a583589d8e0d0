/* SPDX-License-Identifier: Apache-2.0 */
/* The built-in pthread pool behind contexts that bring none of their own. */
#ifndef NSA_THREAD_POOL_H
#define NSA_THREAD_POOL_H

#include <stddef.h>

#include "core/internal.h"

typedef struct nsa_pthread_pool nsa_pthread_pool;

/* A pool running work on the caller plus `num_threads - 1` workers. NULL on failure. */
NSA_INTERNAL nsa_pthread_pool *nsa_pthread_pool_create(int num_threads);
NSA_INTERNAL void nsa_pthread_pool_destroy(nsa_pthread_pool *pool);

/* Run fn(arg, i) for every i in [0, n). Items are handed out in a fixed round-robin order
 * (item i on participant i % threads), so per-item results never depend on timing. A call
 * made while the pool is busy (from another thread) runs serially on its caller. */
NSA_INTERNAL void nsa_pthread_pool_run(nsa_pthread_pool *pool, nsa_task_fn fn, void *arg,
                                       size_t n);

/* Online processors, at least 1. */
NSA_INTERNAL int nsa_online_cpus(void);

#endif /* NSA_THREAD_POOL_H */
