/* SPDX-License-Identifier: Apache-2.0 */
/* Contexts: thread pool, allocator, caller workspace; the process-wide default context. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "blas/blas.h"
#include "core/internal.h"
#include "thread/pool.h"

struct nsa_context {
    int num_threads;
    nsa_thread_pool user_pool; /* valid when has_user_pool */
    int has_user_pool;
    nsa_pthread_pool *pool; /* built-in pool (NULL when serial or user pool) */
    nsa_allocator allocator;
    int has_allocator;
    void *workspace;
    size_t workspace_size;
};

int nsa_default_num_threads(void)
{
    const char *env = getenv("NSA_NUM_THREADS");
    if (env && *env) {
        char *end = NULL;
        long n = strtol(env, &end, 10);
        if (end && *end == '\0' && n >= 1 && n <= 1024)
            return (int)n;
    }
    return nsa_online_cpus();
}

nsa_status nsa_context_create(const nsa_context_config *config, nsa_context **out)
{
    nsa_context_config cfg = NSA_CONTEXT_CONFIG_INIT;
    nsa_context *ctx;
    nsa_clear_error();
    if (!out)
        return nsa_error(NSA_ERR_NULL_POINTER, "out must not be NULL");
    *out = NULL;
    if (config) {
        if (config->struct_size < sizeof(uint32_t) || config->struct_size > sizeof cfg)
            return nsa_error(NSA_ERR_INVALID_ARGUMENT,
                             "config->struct_size must be sizeof(nsa_context_config) (%u), got %u",
                             (unsigned)sizeof cfg, (unsigned)config->struct_size);
        memcpy(&cfg, config, config->struct_size);
    }
    if (cfg.num_threads < 0 || cfg.num_threads > 1024)
        return nsa_error(NSA_ERR_INVALID_ARGUMENT,
                         "config->num_threads must be in [0, 1024], got %d", (int)cfg.num_threads);
    if (cfg.thread_pool && (!cfg.thread_pool->parallel_for || !cfg.thread_pool->num_threads))
        return nsa_error(NSA_ERR_NULL_POINTER,
                         "config->thread_pool must provide num_threads and parallel_for");
    if (cfg.allocator && (!cfg.allocator->alloc || !cfg.allocator->free))
        return nsa_error(NSA_ERR_NULL_POINTER, "config->allocator must provide alloc and free");

    if (cfg.allocator)
        ctx = (nsa_context *)cfg.allocator->alloc(cfg.allocator->user, sizeof *ctx, 64);
    else
        ctx = (nsa_context *)nsa_heap_alloc(sizeof *ctx, 64);
    if (!ctx)
        return nsa_error(NSA_ERR_OUT_OF_MEMORY, "could not allocate the context");
    memset(ctx, 0, sizeof *ctx);
    if (cfg.allocator) {
        ctx->allocator = *cfg.allocator;
        ctx->has_allocator = 1;
    }
    if (cfg.thread_pool) {
        int n = cfg.thread_pool->num_threads(cfg.thread_pool->user);
        ctx->user_pool = *cfg.thread_pool;
        ctx->has_user_pool = 1;
        ctx->num_threads = n < 1 ? 1 : n;
    } else {
        ctx->num_threads = cfg.num_threads == 0 ? nsa_default_num_threads() : cfg.num_threads;
        if (ctx->num_threads > 1) {
            ctx->pool = nsa_pthread_pool_create(ctx->num_threads);
            if (!ctx->pool) {
                int n = ctx->num_threads;
                nsa_context_destroy(ctx);
                return nsa_error(NSA_ERR_OUT_OF_MEMORY, "could not start %d threads", n);
            }
        }
    }
    *out = ctx;
    return NSA_SUCCESS;
}

void nsa_context_destroy(nsa_context *ctx)
{
    if (!ctx)
        return;
    nsa_pthread_pool_destroy(ctx->pool);
    nsa_ctx_free(ctx, ctx); /* its own allocator, or the process allocator */
}

int nsa_context_num_threads(const nsa_context *ctx)
{
    if (!ctx) {
        nsa_context *def = nsa_context_resolve(NULL);
        return def ? def->num_threads : 1;
    }
    return ctx->num_threads;
}

size_t nsa_worker_count(const nsa_context *ctx, int64_t items)
{
    const int threads = nsa_context_num_threads(ctx); /* >= 1 */
    if (items < 1)
        return 1;
    return items < (int64_t)threads ? (size_t)items : (size_t)threads;
}

nsa_status nsa_context_set_workspace(nsa_context *ctx, void *workspace, size_t size)
{
    nsa_clear_error();
    if (!ctx)
        return nsa_error(NSA_ERR_NULL_POINTER, "ctx must not be NULL");
    if (!workspace && size != 0)
        return nsa_error(NSA_ERR_NULL_POINTER, "workspace must not be NULL when size (%zu) > 0",
                         size);
    if (((uintptr_t)workspace & 63u) != 0)
        return nsa_error(NSA_ERR_INVALID_ARGUMENT, "workspace must be 64-byte aligned");
    ctx->workspace = workspace;
    ctx->workspace_size = size;
    return NSA_SUCCESS;
}

static nsa_context *g_default_ctx;
static pthread_mutex_t g_default_lock = PTHREAD_MUTEX_INITIALIZER;
static int g_default_atexit;

static void destroy_default(void)
{
    nsa_default_context_reset();
}

void nsa_default_context_reset(void)
{
    pthread_mutex_lock(&g_default_lock);
    nsa_context_destroy(g_default_ctx);
    g_default_ctx = NULL;
    pthread_mutex_unlock(&g_default_lock);
}

/* Created on first use; a failed creation (out of memory) is retried on the next use. */
nsa_context *nsa_context_resolve(nsa_context *ctx)
{
    nsa_context *def;
    if (ctx)
        return ctx;
    pthread_mutex_lock(&g_default_lock);
    if (!g_default_ctx && nsa_context_create(NULL, &g_default_ctx) == NSA_SUCCESS &&
        !g_default_atexit) {
        g_default_atexit = 1;
        atexit(destroy_default);
    }
    def = g_default_ctx;
    pthread_mutex_unlock(&g_default_lock);
    return def;
}

void *nsa_ctx_alloc(nsa_context *ctx, size_t size, size_t alignment)
{
    if (ctx && ctx->has_allocator)
        return ctx->allocator.alloc(ctx->allocator.user, size, alignment);
    return nsa_heap_alloc(size, alignment);
}

void nsa_ctx_free(nsa_context *ctx, void *ptr)
{
    if (!ptr)
        return;
    if (ctx && ctx->has_allocator)
        ctx->allocator.free(ctx->allocator.user, ptr);
    else
        nsa_heap_free(ptr);
}

nsa_status nsa_workspace_acquire(nsa_context *ctx, size_t size, void **ptr)
{
    *ptr = NULL;
    if (ctx && ctx->workspace) {
        if (size > ctx->workspace_size)
            return nsa_error(NSA_ERR_WORKSPACE_TOO_SMALL,
                             "workspace must hold %zu bytes, the context's has %zu", size,
                             ctx->workspace_size);
        *ptr = ctx->workspace;
        return NSA_SUCCESS;
    }
    if (size == 0)
        return NSA_SUCCESS;
    *ptr = nsa_ctx_alloc(ctx, size, 64);
    if (!*ptr)
        return nsa_error(NSA_ERR_OUT_OF_MEMORY, "could not allocate %zu bytes of workspace",
                         size);
    return NSA_SUCCESS;
}

void nsa_workspace_release(nsa_context *ctx, void *ptr)
{
    if (ptr && !(ctx && ptr == ctx->workspace))
        nsa_ctx_free(ctx, ptr);
}

void nsa_parallel_for(nsa_context *ctx, nsa_task_fn fn, void *arg, size_t n)
{
    size_t i;
    ctx = nsa_context_resolve(ctx); /* NULL means the default context here too */
    nsa_blas_single_thread_begin();
    if (ctx && ctx->has_user_pool && n > 1)
        ctx->user_pool.parallel_for(ctx->user_pool.user, fn, arg, n);
    else if (ctx && ctx->pool)
        nsa_pthread_pool_run(ctx->pool, fn, arg, n);
    else
        for (i = 0; i < n; i++)
            fn(arg, i);
    nsa_blas_single_thread_end();
}
