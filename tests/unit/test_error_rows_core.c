/* SPDX-License-Identifier: Apache-2.0 */
/* docs/errors.md, src/core/{context,heap}.c: one case per rule (see tests/common/error_rows.h). */
#include <stdlib.h>
#include <string.h>

#include "error_rows.h"

/* ---- contexts ---------------------------------------------------------------------------- */

static nsa_status create_null_out(err_call *c)
{
    (void)c;
    return nsa_context_create(NULL, NULL);
}

static nsa_status create_bad_struct_size(err_call *c)
{
    nsa_context_config cfg = NSA_CONTEXT_CONFIG_INIT;
    nsa_context **ctx = (nsa_context **)err_alloc(c, sizeof *ctx);
    cfg.struct_size = sizeof cfg + 8;
    err_watch_handle(c, ctx);
    return nsa_context_create(&cfg, ctx);
}

static nsa_status create_bad_threads(err_call *c)
{
    nsa_context_config cfg = NSA_CONTEXT_CONFIG_INIT;
    nsa_context **ctx = (nsa_context **)err_alloc(c, sizeof *ctx);
    cfg.num_threads = 1025;
    err_watch_handle(c, ctx);
    return nsa_context_create(&cfg, ctx);
}

static nsa_status create_bad_pool(err_call *c)
{
    nsa_thread_pool pool;
    nsa_context_config cfg = NSA_CONTEXT_CONFIG_INIT;
    nsa_context **ctx = (nsa_context **)err_alloc(c, sizeof *ctx);
    memset(&pool, 0, sizeof pool);
    cfg.thread_pool = &pool;
    err_watch_handle(c, ctx);
    return nsa_context_create(&cfg, ctx);
}

static nsa_status create_bad_allocator(err_call *c)
{
    nsa_allocator a;
    nsa_context_config cfg = NSA_CONTEXT_CONFIG_INIT;
    nsa_context **ctx = (nsa_context **)err_alloc(c, sizeof *ctx);
    memset(&a, 0, sizeof a);
    cfg.allocator = &a;
    err_watch_handle(c, ctx);
    return nsa_context_create(&cfg, ctx);
}

static nsa_status create_oom(err_call *c)
{
    nsa_context_config cfg = NSA_CONTEXT_CONFIG_INIT;
    nsa_context **ctx = (nsa_context **)err_alloc(c, sizeof *ctx);
    cfg.allocator = err_allocator_failing_after(0);
    err_watch_handle(c, ctx);
    return nsa_context_create(&cfg, ctx);
}

static nsa_status workspace_null_ctx(err_call *c)
{
    (void)c;
    return nsa_context_set_workspace(NULL, NULL, 0);
}

static nsa_status workspace_null_buffer(err_call *c)
{
    nsa_context *ctx = NULL;
    nsa_status st;
    (void)c;
    if (nsa_context_create(NULL, &ctx) != NSA_SUCCESS)
        return NSA_ERR_INTERNAL;
    st = nsa_context_set_workspace(ctx, NULL, 64);
    nsa_context_destroy(ctx);
    return st;
}

static nsa_status workspace_misaligned(err_call *c)
{
    unsigned char *buf = NULL;
    nsa_context *ctx = NULL;
    nsa_status st;
    (void)c;
    if (posix_memalign((void **)&buf, 64, 256) != 0 ||
        nsa_context_create(NULL, &ctx) != NSA_SUCCESS)
        return NSA_ERR_INTERNAL;
    st = nsa_context_set_workspace(ctx, buf + 1, 128);
    nsa_context_destroy(ctx);
    free(buf);
    return st;
}

/* ---- workspace of an op call: nsa_compress on a 64-token, 1-head, 16-channel input --------- */

typedef struct small_compress {
    float in[64 * 16], w[32], out[3 * 16];
    int64_t cum[1];
    nsa_tensor tin, tw, tout;
    nsa_compress_params p;
} small_compress;

static void small_compress_init(small_compress *s)
{
    int64_t ish[3] = {64, 1, 16}, wsh[2] = {32, 1}, osh[3] = {3, 1, 16};
    for (int i = 0; i < 64 * 16; i++)
        s->in[i] = (float)(i % 7) - 3.0f;
    for (int i = 0; i < 32; i++)
        s->w[i] = 1.0f / 32.0f;
    s->cum[0] = 64;
    s->tin = nsa_tensor_contiguous(s->in, NSA_DTYPE_F32, 3, ish);
    s->tw = nsa_tensor_contiguous(s->w, NSA_DTYPE_F32, 2, wsh);
    s->tout = nsa_tensor_contiguous(s->out, NSA_DTYPE_F32, 3, osh);
    s->p = nsa_compress_params_default();
    s->p.actual_seq_len = s->cum;
    s->p.actual_seq_len_count = 1;
}

static nsa_status workspace_too_small(err_call *c)
{
    void *ws = NULL;
    small_compress *s = (small_compress *)err_alloc(c, sizeof *s);
    nsa_context *ctx = NULL;
    nsa_context_config cfg = NSA_CONTEXT_CONFIG_INIT;
    nsa_status st;
    cfg.num_threads = 1;
    small_compress_init(s);
    if (posix_memalign(&ws, 64, 64) != 0 || nsa_context_create(&cfg, &ctx) != NSA_SUCCESS ||
        nsa_context_set_workspace(ctx, ws, 64) != NSA_SUCCESS)
        return NSA_ERR_INTERNAL;
    err_watch(c, s->out, sizeof s->out);
    st = nsa_compress(ctx, &s->tin, &s->tw, &s->p, &s->tout);
    nsa_context_destroy(ctx);
    free(ws);
    return st;
}

static nsa_status workspace_oom(err_call *c)
{
    small_compress *s = (small_compress *)err_alloc(c, sizeof *s);
    nsa_context_config cfg = NSA_CONTEXT_CONFIG_INIT;
    nsa_context *ctx = NULL;
    nsa_status st;
    cfg.num_threads = 1;
    cfg.allocator = err_allocator_failing_after(1); /* the context, then nothing */
    small_compress_init(s);
    if (nsa_context_create(&cfg, &ctx) != NSA_SUCCESS)
        return NSA_ERR_INTERNAL;
    err_watch(c, s->out, sizeof s->out);
    st = nsa_compress(ctx, &s->tin, &s->tw, &s->p, &s->tout);
    nsa_context_destroy(ctx);
    return st;
}

/* The process allocator serves the context, then fails the built-in pool's allocation. */
static nsa_status create_pool_oom(err_call *c)
{
    nsa_context_config cfg = NSA_CONTEXT_CONFIG_INIT;
    nsa_context **ctx = (nsa_context **)err_alloc(c, sizeof *ctx);
    cfg.num_threads = 2;
    err_fail_process_allocator(c, 1);
    err_watch_handle(c, ctx);
    return nsa_context_create(&cfg, ctx);
}

static nsa_status set_allocator_incomplete(err_call *c)
{
    nsa_allocator a = *err_allocator_failing_after(0);
    (void)c;
    a.free = NULL;
    return nsa_set_allocator(&a);
}

static const err_case cases[] = {
    {"nsa_context_create", "could not start", create_pool_oom},
    {"nsa_set_allocator", "must provide alloc and free", set_allocator_incomplete},
    {"nsa_context_create", "out must not be NULL", create_null_out},
    {"nsa_context_create", "struct_size", create_bad_struct_size},
    {"nsa_context_create", "num_threads must be in", create_bad_threads},
    {"nsa_context_create", "thread_pool must provide", create_bad_pool},
    {"nsa_context_create", "allocator must provide", create_bad_allocator},
    {"nsa_context_create", "could not allocate the context", create_oom},
    {"nsa_context_set_workspace", "ctx must not be NULL", workspace_null_ctx},
    {"nsa_context_set_workspace", "workspace must not be NULL", workspace_null_buffer},
    {"nsa_context_set_workspace", "64-byte aligned", workspace_misaligned},
    {"nsa_workspace_acquire", "workspace must hold", workspace_too_small},
    {"nsa_workspace_acquire", "could not allocate", workspace_oom},
};


int main(void)
{
    static const char *const files[] = {"src/core/context.c", "src/core/heap.c"};
    return err_rows_main(files, ERR_COUNT(files), cases, ERR_COUNT(cases), NULL, 0);
}
