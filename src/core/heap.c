/* SPDX-License-Identifier: Apache-2.0 */
/* The process allocator: what outlives a call (block masks, mask / score mods, contexts made
 * without their own allocator, the built-in thread pool) is allocated here, so a caller can
 * route it, or fail it in a test, with nsa_set_allocator(). */
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"

static nsa_allocator g_heap; /* alloc == NULL: posix_memalign / free */

nsa_status nsa_set_allocator(const nsa_allocator *allocator)
{
    nsa_clear_error();
    if (allocator && (!allocator->alloc || !allocator->free))
        return nsa_error(NSA_ERR_NULL_POINTER, "allocator must provide alloc and free");
    if (allocator)
        g_heap = *allocator;
    else
        memset(&g_heap, 0, sizeof g_heap);
    return NSA_SUCCESS;
}

void *nsa_heap_alloc(size_t size, size_t alignment)
{
    void *p = NULL;
    if (alignment < sizeof(void *))
        alignment = sizeof(void *);
    if (g_heap.alloc)
        return g_heap.alloc(g_heap.user, size ? size : 1, alignment);
    if (posix_memalign(&p, alignment, size ? size : 1) != 0)
        return NULL;
    return p;
}

void *nsa_heap_calloc(size_t count, size_t size)
{
    size_t bytes;
    void *p;
    if (!nsa_mul_size(count, size, &bytes))
        return NULL;
    p = nsa_heap_alloc(bytes, 16);
    if (p)
        memset(p, 0, bytes);
    return p;
}

void nsa_heap_free(void *ptr)
{
    if (!ptr)
        return;
    if (g_heap.free)
        g_heap.free(g_heap.user, ptr);
    else
        free(ptr);
}
