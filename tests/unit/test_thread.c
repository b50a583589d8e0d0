/* SPDX-License-Identifier: Apache-2.0 */
/* The thread layer and contexts: nsa_parallel_for runs every index exactly once with the
 * documented round-robin split, caller thread pools are used, concurrent callers neither
 * deadlock nor mix up work, bad configs fail with their status and message, allocators and
 * caller workspaces are honoured, and NSA_NUM_THREADS sets the default context's size. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/internal.h"
#include "test_status.h"
#include "test_util.h"

#define ENV_THREADS 3 /* main() sets NSA_NUM_THREADS to this before anything else runs */

static nsa_context *make_ctx(int threads)
{
    nsa_context_config cfg = NSA_CONTEXT_CONFIG_INIT;
    nsa_context *ctx = NULL;
    cfg.num_threads = threads;
    assert_int_equal(nsa_context_create(&cfg, &ctx), NSA_SUCCESS);
    assert_non_null(ctx);
    return ctx;
}

/* ---- every index exactly once ----------------------------------------------------------- */

typedef struct count_job {
    int *hits;      /* per index, incremented atomically (a double run shows as 2) */
    pthread_t *who; /* which thread ran each index */
} count_job;

static void count_task(void *arg, size_t i)
{
    count_job *job = (count_job *)arg;
    __atomic_fetch_add(&job->hits[i], 1, __ATOMIC_RELAXED);
    if (job->who)
        job->who[i] = pthread_self();
}

static void run_and_check(nsa_context *ctx, size_t n, int threads, int check_split)
{
    count_job job;
    size_t i, j;
    job.hits = calloc(n + 1, sizeof *job.hits);
    job.who = calloc(n + 1, sizeof *job.who);
    assert_non_null(job.hits);
    assert_non_null(job.who);
    nsa_parallel_for(ctx, count_task, &job, n);
    for (i = 0; i <= n; i++) /* hits[n] guards against an index past the end */
        if (job.hits[i] != (i < n))
            fail_msg("threads=%d n=%zu: index %zu ran %d times", threads, n, i, job.hits[i]);
    /* Static round-robin: item i runs on participant i % threads, the caller being 0. */
    if (check_split)
        for (i = 0; i < n; i++) {
            if (i < (size_t)threads && n > 1)
                assert_true(pthread_equal(job.who[i], pthread_self()) == (i == 0));
            for (j = 0; j < i && j < (size_t)threads; j++)
                if ((i % (size_t)threads == j) != (pthread_equal(job.who[i], job.who[j]) != 0))
                    fail_msg("threads=%d n=%zu: items %zu and %zu not split round-robin", threads,
                             n, i, j);
        }
    free(job.hits);
    free(job.who);
}

static void parallel_for_every_index(void **state)
{
    static const int threads[] = {1, 2, 3, 8};
    static const size_t ns[] = {0, 1, 2, 3, 7, 100};
    size_t t, k;
    (void)state;
    for (t = 0; t < sizeof threads / sizeof threads[0]; t++) {
        nsa_context *ctx = make_ctx(threads[t]);
        assert_int_equal(nsa_context_num_threads(ctx), threads[t]);
        for (k = 0; k < sizeof ns / sizeof ns[0]; k++)
            run_and_check(ctx, ns[k], threads[t], 1);
        nsa_context_destroy(ctx);
    }
    /* the default context (NULL), sized by NSA_NUM_THREADS */
    for (k = 0; k < sizeof ns / sizeof ns[0]; k++)
        run_and_check(NULL, ns[k], ENV_THREADS, 1);
}

/* ---- a caller's thread pool ----------------------------------------------------------- */

typedef struct user_pool {
    int threads;
    int num_threads_calls;
    int parallel_for_calls;
    size_t last_n;
} user_pool;

static int user_num_threads(void *user)
{
    user_pool *p = (user_pool *)user;
    p->num_threads_calls++;
    return p->threads;
}

/* Runs the items serially in reverse: any order is allowed. */
static void user_parallel_for(void *user, nsa_task_fn task, void *arg, size_t n)
{
    user_pool *p = (user_pool *)user;
    size_t i;
    p->parallel_for_calls++;
    p->last_n = n;
    for (i = n; i-- > 0;)
        task(arg, i);
}

static void user_thread_pool(void **state)
{
    static const size_t ns[] = {0, 1, 2, 3, 7, 100};
    user_pool up = {5, 0, 0, 0};
    nsa_thread_pool pool;
    nsa_context_config cfg = NSA_CONTEXT_CONFIG_INIT;
    nsa_context *ctx = NULL;
    size_t k;
    int calls = 0;
    (void)state;
    pool.user = &up;
    pool.num_threads = user_num_threads;
    pool.parallel_for = user_parallel_for;
    cfg.thread_pool = &pool;
    cfg.num_threads = 2; /* ignored: the pool decides */
    assert_int_equal(nsa_context_create(&cfg, &ctx), NSA_SUCCESS);
    assert_int_equal(up.num_threads_calls, 1);
    assert_int_equal(nsa_context_num_threads(ctx), 5);
    for (k = 0; k < sizeof ns / sizeof ns[0]; k++) {
        run_and_check(ctx, ns[k], 1, 0);
        if (ns[k] > 1) { /* 0 or 1 items are not worth a hand-off */
            calls++;
            assert_int_equal(up.last_n, ns[k]);
        }
        assert_int_equal(up.parallel_for_calls, calls);
    }
    nsa_context_destroy(ctx);
    /* a pool reporting nonsense counts as one thread */
    up.threads = -4;
    assert_int_equal(nsa_context_create(&cfg, &ctx), NSA_SUCCESS);
    assert_int_equal(nsa_context_num_threads(ctx), 1);
    nsa_context_destroy(ctx);
}

/* ---- concurrent callers ---------------------------------------------------------------- */

typedef struct caller_arg {
    nsa_context *ctx;
    int ok;
} caller_arg;

typedef struct nest_job {
    nsa_context *ctx;
    int *hits;
} nest_job;

static void nested_task(void *arg, size_t i)
{
    nest_job *job = (nest_job *)arg;
    count_job inner;
    int local[5] = {0, 0, 0, 0, 0};
    size_t k;
    inner.hits = local;
    inner.who = NULL;
    /* a task may itself run a parallel loop on the same context: it runs serially */
    nsa_parallel_for(job->ctx, count_task, &inner, 5);
    for (k = 0; k < 5; k++)
        if (local[k] != 1)
            return;
    __atomic_fetch_add(&job->hits[i], 1, __ATOMIC_RELAXED);
}

static void *caller_main(void *p)
{
    caller_arg *ca = (caller_arg *)p;
    int rep;
    size_t i, n;
    ca->ok = 1;
    for (rep = 0; rep < 40 && ca->ok; rep++) {
        count_job job;
        nest_job nj;
        n = 50 + (size_t)rep * 7;
        job.hits = calloc(n, sizeof *job.hits);
        job.who = NULL;
        if (!job.hits) {
            ca->ok = 0;
            break;
        }
        nsa_parallel_for(ca->ctx, count_task, &job, n);
        for (i = 0; i < n; i++)
            if (job.hits[i] != 1)
                ca->ok = 0;
        memset(job.hits, 0, n * sizeof *job.hits);
        nj.ctx = ca->ctx;
        nj.hits = job.hits;
        nsa_parallel_for(ca->ctx, nested_task, &nj, n);
        for (i = 0; i < n; i++)
            if (job.hits[i] != 1)
                ca->ok = 0;
        free(job.hits);
    }
    return NULL;
}

static void concurrent_callers(void **state)
{
    nsa_context *shared[3];
    int c, t;
    (void)state;
    shared[0] = make_ctx(2);
    shared[1] = make_ctx(8);
    shared[2] = NULL; /* the default context */
    for (c = 0; c < 3; c++) {
        pthread_t th[8];
        caller_arg args[8];
        for (t = 0; t < 8; t++) {
            args[t].ctx = shared[c];
            args[t].ok = 0;
            assert_int_equal(pthread_create(&th[t], NULL, caller_main, &args[t]), 0);
        }
        for (t = 0; t < 8; t++) {
            assert_int_equal(pthread_join(th[t], NULL), 0);
            if (!args[t].ok)
                fail_msg("context %d: caller thread %d saw an index run twice or never", c, t);
        }
    }
    nsa_context_destroy(shared[0]);
    nsa_context_destroy(shared[1]);
}

/* ---- configs, allocators, workspaces ----------------------------------------------------- */

typedef struct counting_alloc {
    int allocs, frees;
    int fail_from; /* the allocation with this 1-based number and later ones fail; 0 = never */
    size_t last_size, last_alignment;
} counting_alloc;

static void *ca_alloc(void *user, size_t size, size_t alignment)
{
    counting_alloc *a = (counting_alloc *)user;
    void *p = NULL;
    if (a->fail_from && a->allocs + 1 >= a->fail_from)
        return NULL;
    if (posix_memalign(&p, alignment < sizeof(void *) ? sizeof(void *) : alignment,
                       size ? size : 1) != 0)
        return NULL;
    a->allocs++;
    a->last_size = size;
    a->last_alignment = alignment;
    return p;
}

static void ca_free(void *user, void *ptr)
{
    counting_alloc *a = (counting_alloc *)user;
    a->frees++;
    free(ptr);
}

/* A config whose allocator counts through `ca` (fail_from as given). */
static nsa_context_config counting_config(counting_alloc *ca, nsa_allocator *alloc, int fail_from)
{
    nsa_context_config cfg = NSA_CONTEXT_CONFIG_INIT;
    memset(ca, 0, sizeof *ca);
    ca->fail_from = fail_from;
    alloc->user = ca;
    alloc->alloc = ca_alloc;
    alloc->free = ca_free;
    cfg.allocator = alloc;
    return cfg;
}

static void bad_configs(void **state)
{
    nsa_context_config cfg = NSA_CONTEXT_CONFIG_INIT;
    nsa_context *ctx = (nsa_context *)&cfg; /* must be reset to NULL on failure */
    nsa_thread_pool pool = {NULL, user_num_threads, NULL};
    nsa_allocator alloc = {NULL, ca_alloc, NULL};
    char want[96];
    (void)state;
    test_expect_status(nsa_context_create(&cfg, NULL), NSA_ERR_NULL_POINTER,
                       "out must not be NULL");

    cfg.struct_size = 0;
    snprintf(want, sizeof want,
             "config->struct_size must be sizeof(nsa_context_config) (%u), got 0",
             (unsigned)sizeof(nsa_context_config));
    test_expect_status(nsa_context_create(&cfg, &ctx), NSA_ERR_INVALID_ARGUMENT, want);
    assert_null(ctx);
    cfg.struct_size = (uint32_t)sizeof cfg + 8;
    test_expect_status(nsa_context_create(&cfg, &ctx), NSA_ERR_INVALID_ARGUMENT,
                       "config->struct_size must be sizeof(nsa_context_config)");
    cfg.struct_size = (uint32_t)sizeof cfg;

    cfg.num_threads = -1;
    test_expect_status(nsa_context_create(&cfg, &ctx), NSA_ERR_INVALID_ARGUMENT,
                       "config->num_threads must be in [0, 1024], got -1");
    cfg.num_threads = 1025;
    test_expect_status(nsa_context_create(&cfg, &ctx), NSA_ERR_INVALID_ARGUMENT,
                       "config->num_threads must be in [0, 1024], got 1025");
    cfg.num_threads = 0;

    cfg.thread_pool = &pool;
    test_expect_status(nsa_context_create(&cfg, &ctx), NSA_ERR_NULL_POINTER,
                       "config->thread_pool must provide num_threads and parallel_for");
    pool.parallel_for = user_parallel_for;
    pool.num_threads = NULL;
    test_expect_status(nsa_context_create(&cfg, &ctx), NSA_ERR_NULL_POINTER,
                       "config->thread_pool must provide num_threads and parallel_for");
    cfg.thread_pool = NULL;

    cfg.allocator = &alloc;
    test_expect_status(nsa_context_create(&cfg, &ctx), NSA_ERR_NULL_POINTER,
                       "config->allocator must provide alloc and free");
    alloc.alloc = NULL;
    alloc.free = ca_free;
    test_expect_status(nsa_context_create(&cfg, &ctx), NSA_ERR_NULL_POINTER,
                       "config->allocator must provide alloc and free");
    assert_null(ctx);

    /* NULL config: defaults; destroy(NULL) is a no-op */
    assert_int_equal(nsa_context_create(NULL, &ctx), NSA_SUCCESS);
    assert_string_equal(nsa_last_error(), "");
    assert_int_equal(nsa_context_num_threads(ctx), ENV_THREADS);
    nsa_context_destroy(ctx);
    nsa_context_destroy(NULL);
}

static void custom_allocator(void **state)
{
    counting_alloc ca;
    nsa_allocator alloc;
    nsa_context_config cfg = counting_config(&ca, &alloc, 0);
    nsa_context *ctx = NULL;
    void *p = NULL;
    (void)state;
    cfg.num_threads = 2;
    assert_int_equal(nsa_context_create(&cfg, &ctx), NSA_SUCCESS);
    assert_int_equal(ca.allocs, 1); /* the context itself */
    assert_int_equal(nsa_workspace_acquire(ctx, 1000, &p), NSA_SUCCESS);
    assert_non_null(p);
    assert_int_equal(ca.allocs, 2);
    assert_int_equal(ca.last_size, 1000);
    assert_int_equal(ca.last_alignment, 64);
    assert_int_equal((uintptr_t)p % 64, 0);
    memset(p, 1, 1000);
    nsa_workspace_release(ctx, p);
    assert_int_equal(ca.frees, 1);
    /* size 0: nothing to allocate */
    assert_int_equal(nsa_workspace_acquire(ctx, 0, &p), NSA_SUCCESS);
    assert_null(p);
    nsa_workspace_release(ctx, p);
    p = nsa_ctx_alloc(ctx, 24, 128);
    assert_int_equal((uintptr_t)p % 128, 0);
    nsa_ctx_free(ctx, p);
    nsa_context_destroy(ctx);
    assert_int_equal(ca.allocs, 3);
    assert_int_equal(ca.frees, 3);
}

static void failing_allocator(void **state)
{
    counting_alloc ca;
    nsa_allocator alloc;
    nsa_context_config cfg = counting_config(&ca, &alloc, 1);
    nsa_context *ctx = (nsa_context *)&ca;
    void *p = &ca;
    (void)state;
    test_expect_status(nsa_context_create(&cfg, &ctx), NSA_ERR_OUT_OF_MEMORY,
                       "could not allocate the context");
    assert_null(ctx);
    /* the context is allocated, the workspace is not */
    ca.fail_from = 2;
    assert_int_equal(nsa_context_create(&cfg, &ctx), NSA_SUCCESS);
    test_expect_status(nsa_workspace_acquire(ctx, 4096, &p), NSA_ERR_OUT_OF_MEMORY,
                       "could not allocate 4096 bytes of workspace");
    assert_null(p);
    nsa_context_destroy(ctx);
    assert_int_equal(ca.allocs, ca.frees);
}

static void caller_workspace(void **state)
{
    counting_alloc ca;
    nsa_allocator alloc;
    nsa_context_config cfg = counting_config(&ca, &alloc, 0);
    nsa_context *ctx = NULL;
    void *ws = NULL, *p = NULL;
    (void)state;
    assert_int_equal(posix_memalign(&ws, 64, 4096), 0);
    assert_int_equal(nsa_context_create(&cfg, &ctx), NSA_SUCCESS);

    test_expect_status(nsa_context_set_workspace(NULL, ws, 4096), NSA_ERR_NULL_POINTER,
                       "ctx must not be NULL");
    test_expect_status(nsa_context_set_workspace(ctx, NULL, 4096), NSA_ERR_NULL_POINTER,
                       "workspace must not be NULL when size (4096) > 0");
    test_expect_status(nsa_context_set_workspace(ctx, (char *)ws + 8, 4000),
                       NSA_ERR_INVALID_ARGUMENT, "workspace must be 64-byte aligned");

    assert_int_equal(nsa_context_set_workspace(ctx, ws, 4096), NSA_SUCCESS);
    assert_int_equal(nsa_workspace_acquire(ctx, 4096, &p), NSA_SUCCESS);
    assert_ptr_equal(p, ws);
    nsa_workspace_release(ctx, p); /* the caller's memory is never freed */
    test_expect_status(nsa_workspace_acquire(ctx, 4097, &p), NSA_ERR_WORKSPACE_TOO_SMALL,
                       "workspace must hold 4097 bytes, the context's has 4096");
    assert_null(p);
    assert_int_equal(ca.allocs, 1); /* only the context: a workspace means no allocation */

    /* back to allocating */
    assert_int_equal(nsa_context_set_workspace(ctx, NULL, 0), NSA_SUCCESS);
    assert_int_equal(nsa_workspace_acquire(ctx, 4097, &p), NSA_SUCCESS);
    assert_true(p != ws);
    nsa_workspace_release(ctx, p);
    nsa_context_destroy(ctx);
    assert_int_equal(ca.allocs, 2);
    assert_int_equal(ca.frees, 2);
    free(ws);
}

static void thread_counts_and_env(void **state)
{
    static const char *const bad[] = {"0", "-2", "abc", "4x", "1025", ""};
    int online = (int)sysconf(_SC_NPROCESSORS_ONLN);
    size_t i;
    char info[64];
    nsa_context *ctx;
    (void)state;
    if (online < 1)
        online = 1;
    assert_int_equal(nsa_default_num_threads(), ENV_THREADS);
    assert_int_equal(nsa_context_num_threads(NULL), ENV_THREADS);
    snprintf(info, sizeof info, "threads=%d", ENV_THREADS);
    assert_non_null(strstr(nsa_build_info(), info));
    ctx = make_ctx(0); /* 0 = the default count */
    assert_int_equal(nsa_context_num_threads(ctx), ENV_THREADS);
    nsa_context_destroy(ctx);
    ctx = make_ctx(1);
    assert_int_equal(nsa_context_num_threads(ctx), 1);
    nsa_context_destroy(ctx);
    /* unusable values fall back to the online processors */
    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        setenv("NSA_NUM_THREADS", bad[i], 1);
        if (nsa_default_num_threads() != online)
            fail_msg("NSA_NUM_THREADS=\"%s\": %d threads, want %d online cpus", bad[i],
                     nsa_default_num_threads(), online);
    }
    unsetenv("NSA_NUM_THREADS");
    assert_int_equal(nsa_default_num_threads(), online);
    setenv("NSA_NUM_THREADS", "7", 1);
    assert_int_equal(nsa_default_num_threads(), 7);
    /* the default context keeps the count it was created with */
    assert_int_equal(nsa_context_num_threads(NULL), ENV_THREADS);
    setenv("NSA_NUM_THREADS", "3", 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(thread_counts_and_env), cmocka_unit_test(parallel_for_every_index),
        cmocka_unit_test(user_thread_pool),      cmocka_unit_test(concurrent_callers),
        cmocka_unit_test(bad_configs),           cmocka_unit_test(custom_allocator),
        cmocka_unit_test(failing_allocator),     cmocka_unit_test(caller_workspace),
    };
    /* Before the default context exists: it must pick this up. */
    setenv("NSA_NUM_THREADS", "3", 1);
    alarm(300); /* a deadlock ends the process instead of hanging the suite */
    return cmocka_run_group_tests(tests, NULL, NULL);
}
