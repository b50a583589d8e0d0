/* SPDX-License-Identifier: Apache-2.0 */
#include "reliability.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blas/blas.h"
#include "test_util.h"

static void *run_ref(const rel_op *op)
{
    nsa_context_config cfg = NSA_CONTEXT_CONFIG_INIT;
    nsa_context *ctx = NULL;
    void *ref = calloc(1, op->out_size ? op->out_size : 1);
    assert_non_null(ref);
    cfg.num_threads = 1;
    assert_int_equal(nsa_context_create(&cfg, &ctx), NSA_SUCCESS);
    if (op->run(op->user, ctx, ref, op->out_size) != NSA_SUCCESS)
        fail_msg("%s: serial run failed: %s", op->name, nsa_last_error());
    nsa_context_destroy(ctx);
    return ref;
}

static void expect_same(const rel_op *op, const void *ref, const void *got, const char *what)
{
    if (memcmp(ref, got, op->out_size) != 0) {
        size_t i = 0;
        while (((const unsigned char *)ref)[i] == ((const unsigned char *)got)[i])
            i++;
        fail_msg("%s: %s differs from the serial run at output byte %zu", op->name, what, i);
    }
}

void rel_check_thread_counts(const rel_op *op)
{
    static const int counts[] = {1, 2, 3, 8, 0};
    void *ref = run_ref(op), *got = malloc(op->out_size ? op->out_size : 1);
    size_t i;
    char what[64];
    assert_non_null(got);
    for (i = 0; i < sizeof counts / sizeof counts[0]; i++) {
        nsa_context_config cfg = NSA_CONTEXT_CONFIG_INIT;
        nsa_context *ctx = NULL;
        cfg.num_threads = counts[i];
        assert_int_equal(nsa_context_create(&cfg, &ctx), NSA_SUCCESS);
        memset(got, 0xa5, op->out_size);
        if (op->run(op->user, ctx, got, op->out_size) != NSA_SUCCESS)
            fail_msg("%s: run with %d threads failed: %s", op->name, counts[i], nsa_last_error());
        snprintf(what, sizeof what, "the run with %d threads", counts[i]);
        expect_same(op, ref, got, what);
        nsa_context_destroy(ctx);
    }
    memset(got, 0xa5, op->out_size);
    assert_int_equal(op->run(op->user, NULL, got, op->out_size), NSA_SUCCESS);
    expect_same(op, ref, got, "the run on the default context");
    free(got);
    free(ref);
}

void rel_check_backends(const rel_op *op)
{
    void *ref = run_ref(op), *got;
    nsa_blas_force_builtin(1);
    got = run_ref(op);
    nsa_blas_force_builtin(0);
    expect_same(op, ref, got, "the run on the built-in GEMM");
    free(got);
    free(ref);
}

typedef struct conc_arg {
    const rel_op *op;
    nsa_context *ctx;
    void *out;
    nsa_status status;
} conc_arg;

static void *conc_main(void *p)
{
    conc_arg *a = (conc_arg *)p;
    a->status = a->op->run(a->op->user, a->ctx, a->out, a->op->out_size);
    return NULL;
}

void rel_check_concurrent(const rel_op *op)
{
    enum { NT = 8 };
    nsa_context_config cfg = NSA_CONTEXT_CONFIG_INIT;
    nsa_context *shared = NULL;
    pthread_t th[NT];
    conc_arg args[NT];
    void *ref = run_ref(op);
    int i;
    cfg.num_threads = 2;
    assert_int_equal(nsa_context_create(&cfg, &shared), NSA_SUCCESS);
    for (i = 0; i < NT; i++) {
        args[i].op = op;
        args[i].ctx = i % 2 ? shared : NULL;
        args[i].out = malloc(op->out_size ? op->out_size : 1);
        assert_non_null(args[i].out);
        assert_int_equal(pthread_create(&th[i], NULL, conc_main, &args[i]), 0);
    }
    for (i = 0; i < NT; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
        if (args[i].status != NSA_SUCCESS)
            fail_msg("%s: concurrent run %d failed: %s", op->name, i,
                     nsa_status_string(args[i].status));
        expect_same(op, ref, args[i].out, "a concurrent run");
        free(args[i].out);
    }
    nsa_context_destroy(shared);
    free(ref);
}

/* An allocator that counts live blocks and fails allocation number `fail_at` (1-based). */
typedef struct fail_alloc {
    int calls, fail_at, live;
} fail_alloc;

static void *fa_alloc(void *user, size_t size, size_t alignment)
{
    fail_alloc *fa = (fail_alloc *)user;
    void *p = NULL;
    if (++fa->calls == fa->fail_at)
        return NULL;
    if (alignment < sizeof(void *))
        alignment = sizeof(void *);
    if (posix_memalign(&p, alignment, size ? size : 1) != 0)
        return NULL;
    fa->live++;
    return p;
}

static void fa_free(void *user, void *ptr)
{
    fail_alloc *fa = (fail_alloc *)user;
    if (ptr) {
        fa->live--;
        free(ptr);
    }
}

void rel_check_alloc_failures(const rel_op *op)
{
    fail_alloc fa = {0, 0, 0};
    nsa_allocator alloc;
    nsa_context_config cfg = NSA_CONTEXT_CONFIG_INIT;
    nsa_context *ctx = NULL;
    void *ref = run_ref(op), *got = malloc(op->out_size ? op->out_size : 1);
    int total, n;
    assert_non_null(got);
    alloc.user = &fa;
    alloc.alloc = fa_alloc;
    alloc.free = fa_free;
    cfg.num_threads = 2;
    cfg.allocator = &alloc;
    assert_int_equal(nsa_context_create(&cfg, &ctx), NSA_SUCCESS);
    /* Count the allocations of one successful run (the context's own one is done). */
    fa.calls = 0;
    assert_int_equal(op->run(op->user, ctx, got, op->out_size), NSA_SUCCESS);
    total = fa.calls;
    assert_int_equal(fa.live, 1); /* only the context itself remains */
    for (n = 1; n <= total; n++) {
        nsa_status st;
        fa.calls = 0;
        fa.fail_at = n;
        st = op->run(op->user, ctx, got, op->out_size);
        if (st != NSA_ERR_OUT_OF_MEMORY)
            fail_msg("%s: failing allocation %d of %d returned %s, not NSA_ERR_OUT_OF_MEMORY",
                     op->name, n, total, nsa_status_string(st));
        if (fa.live != 1)
            fail_msg("%s: failing allocation %d of %d leaked %d blocks", op->name, n, total,
                     fa.live - 1);
    }
    fa.fail_at = 0;
    memset(got, 0, op->out_size);
    assert_int_equal(op->run(op->user, ctx, got, op->out_size), NSA_SUCCESS);
    expect_same(op, ref, got, "the run after failed allocations");
    nsa_context_destroy(ctx);
    assert_int_equal(fa.live, 0);
    free(got);
    free(ref);
}

void rel_check_process_alloc_failures(const char *name, rel_make_fn make,
                                      void (*destroy)(void *obj), void *user)
{
    fail_alloc fa = {0, 0, 0};
    nsa_allocator alloc;
    void *obj = NULL;
    int total, n;
    alloc.user = &fa;
    alloc.alloc = fa_alloc;
    alloc.free = fa_free;
    assert_int_equal(nsa_set_allocator(&alloc), NSA_SUCCESS);
    if (make(user, &obj) != NSA_SUCCESS) {
        nsa_set_allocator(NULL);
        fail_msg("%s: run failed: %s", name, nsa_last_error());
    }
    total = fa.calls;
    destroy(obj);
    if (fa.live != 0)
        fail_msg("%s: %d blocks left after freeing the object", name, fa.live);
    for (n = 1; n <= total; n++) {
        nsa_status st;
        fa.calls = 0;
        fa.fail_at = n;
        obj = NULL;
        st = make(user, &obj);
        if (st != NSA_ERR_OUT_OF_MEMORY || obj != NULL || fa.live != 0)
            nsa_set_allocator(NULL); /* fail_msg leaves the test: restore first */
        if (st != NSA_ERR_OUT_OF_MEMORY || obj != NULL)
            fail_msg("%s: failing allocation %d of %d returned %s%s", name, n, total,
                     nsa_status_string(st), obj ? " and an object" : "");
        if (fa.live != 0)
            fail_msg("%s: failing allocation %d of %d leaked %d blocks", name, n, total,
                     fa.live);
    }
    assert_int_equal(nsa_set_allocator(NULL), NSA_SUCCESS);
}
