/* SPDX-License-Identifier: Apache-2.0 */
/* A small pthread pool: one job at a time, items split round-robin over participants. */
#include "thread/pool.h"

#include "core/internal.h"

#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

struct nsa_pthread_pool {
    pthread_mutex_t run_lock; /* held by the caller of a job for its whole duration */
    pthread_mutex_t lock;
    pthread_cond_t start;
    pthread_cond_t done;
    pthread_t *workers;
    int num_threads; /* participants, caller included */
    int started;     /* workers successfully created */
    unsigned long generation;
    int pending; /* workers still running the current job */
    int stop;
    nsa_task_fn fn;
    void *arg;
    size_t n;
};

typedef struct worker_arg {
    nsa_pthread_pool *pool;
    int index;
} worker_arg;

static void run_share(nsa_pthread_pool *pool, int participant)
{
    size_t i;
    for (i = (size_t)participant; i < pool->n; i += (size_t)pool->num_threads)
        pool->fn(pool->arg, i);
}

static void *worker_main(void *p)
{
    worker_arg *wa = (worker_arg *)p;
    nsa_pthread_pool *pool = wa->pool;
    int index = wa->index;
    unsigned long seen = 0;
    nsa_heap_free(wa);
    for (;;) {
        pthread_mutex_lock(&pool->lock);
        while (!pool->stop && pool->generation == seen)
            pthread_cond_wait(&pool->start, &pool->lock);
        if (pool->stop) {
            pthread_mutex_unlock(&pool->lock);
            return NULL;
        }
        seen = pool->generation;
        pthread_mutex_unlock(&pool->lock);

        run_share(pool, index);

        pthread_mutex_lock(&pool->lock);
        if (--pool->pending == 0)
            pthread_cond_signal(&pool->done);
        pthread_mutex_unlock(&pool->lock);
    }
}

int nsa_online_cpus(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : (n > 1024 ? 1024 : (int)n);
}

nsa_pthread_pool *nsa_pthread_pool_create(int num_threads)
{
    nsa_pthread_pool *pool;
    int i;
    if (num_threads < 1)
        num_threads = 1;
    pool = (nsa_pthread_pool *)nsa_heap_calloc(1, sizeof *pool);
    if (!pool)
        return NULL;
    pool->num_threads = num_threads;
    if (pthread_mutex_init(&pool->run_lock, NULL) != 0) {
        nsa_heap_free(pool);
        return NULL;
    }
    pthread_mutex_init(&pool->lock, NULL);
    pthread_cond_init(&pool->start, NULL);
    pthread_cond_init(&pool->done, NULL);
    if (num_threads > 1) {
        pool->workers =
            (pthread_t *)nsa_heap_calloc((size_t)num_threads - 1, sizeof(pthread_t));
        if (!pool->workers) {
            nsa_pthread_pool_destroy(pool);
            return NULL;
        }
        for (i = 1; i < num_threads; i++) {
            worker_arg *wa = (worker_arg *)nsa_heap_alloc(sizeof *wa, 16);
            if (!wa)
                break;
            wa->pool = pool;
            wa->index = i;
            if (pthread_create(&pool->workers[i - 1], NULL, worker_main, wa) != 0) {
                nsa_heap_free(wa);
                break;
            }
            pool->started++;
        }
        if (pool->started != num_threads - 1) {
            nsa_pthread_pool_destroy(pool);
            return NULL;
        }
    }
    return pool;
}

void nsa_pthread_pool_destroy(nsa_pthread_pool *pool)
{
    int i;
    if (!pool)
        return;
    pthread_mutex_lock(&pool->lock);
    pool->stop = 1;
    pthread_cond_broadcast(&pool->start);
    pthread_mutex_unlock(&pool->lock);
    for (i = 0; i < pool->started; i++)
        pthread_join(pool->workers[i], NULL);
    nsa_heap_free(pool->workers);
    pthread_cond_destroy(&pool->done);
    pthread_cond_destroy(&pool->start);
    pthread_mutex_destroy(&pool->lock);
    pthread_mutex_destroy(&pool->run_lock);
    nsa_heap_free(pool);
}

void nsa_pthread_pool_run(nsa_pthread_pool *pool, nsa_task_fn fn, void *arg, size_t n)
{
    size_t i;
    if (n == 0)
        return;
    /* Serial when there is nothing to share or the pool is busy with another caller's job:
     * results are the same either way, and a busy pool must never deadlock a caller. */
    if (pool->num_threads == 1 || n == 1 || pthread_mutex_trylock(&pool->run_lock) != 0) {
        for (i = 0; i < n; i++)
            fn(arg, i);
        return;
    }
    pthread_mutex_lock(&pool->lock);
    pool->fn = fn;
    pool->arg = arg;
    pool->n = n;
    pool->pending = pool->num_threads - 1;
    pool->generation++;
    pthread_cond_broadcast(&pool->start);
    pthread_mutex_unlock(&pool->lock);

    run_share(pool, 0);

    pthread_mutex_lock(&pool->lock);
    while (pool->pending > 0)
        pthread_cond_wait(&pool->done, &pool->lock);
    pthread_mutex_unlock(&pool->lock);
    pthread_mutex_unlock(&pool->run_lock);
}
