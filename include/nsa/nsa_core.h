/* SPDX-License-Identifier: Apache-2.0 */
/**
 * @file nsa_core.h
 * @brief libnsa core: status codes, version, tensor views, dtypes, contexts, threads.
 *
 * Every operator of libnsa takes its tensors as `const nsa_tensor *` views (any strides, in
 * elements), its scalar parameters in a params struct with a documented default, and an
 * optional `nsa_context *` (NULL means: the process-wide default context, which uses the
 * built-in thread pool and malloc). Every call returns an `nsa_status`; on failure
 * nsa_last_error() names the argument and the condition that was violated.
 */
#ifndef NSA_CORE_H
#define NSA_CORE_H

#include <stddef.h>
#include <stdint.h>

#include "nsa_export.h"
#include "nsa/nsa_version.h" /* generated into the build tree */

#ifdef __cplusplus
extern "C" {
#endif

/** @defgroup core Status, version and build information
 *  @{ */

/** Status returned by every libnsa call. */
typedef enum nsa_status {
    NSA_SUCCESS = 0,
    NSA_ERR_NULL_POINTER = 1,        /**< a required tensor, data pointer or argument is NULL */
    NSA_ERR_INVALID_ARGUMENT = 2,    /**< inconsistent shapes, strides, dtypes or parameters */
    NSA_ERR_UNSUPPORTED = 3,         /**< valid, but not implemented (or forbidden by strict) */
    NSA_ERR_WORKSPACE_TOO_SMALL = 4, /**< the context's workspace is smaller than required */
    NSA_ERR_OUT_OF_MEMORY = 5,       /**< an allocation failed; no output claims success */
    NSA_ERR_INTERNAL = 6             /**< a bug in libnsa; please report it */
} nsa_status;

/** Upper-case name of a status, e.g. "NSA_ERR_INVALID_ARGUMENT". Never NULL. */
NSA_API const char *nsa_status_string(nsa_status status);

/**
 * The message of the last failed call on this thread, naming the argument and the broken
 * condition ("select_block_size must be a multiple of 16, got 20"). Empty when the last call
 * succeeded. Valid until the next libnsa call on the same thread.
 */
NSA_API const char *nsa_last_error(void);

/** Runtime version as NSA_VERSION_NUMBER (to detect a header / library mismatch). */
NSA_API unsigned nsa_version_number(void);
/** Runtime version as "MAJOR.MINOR.PATCH". */
NSA_API const char *nsa_version_string(void);
/** One line describing the build: "version=0.1.0 blas=openblas simd=avx512 threads=2". */
NSA_API const char *nsa_build_info(void);

/** Which GEMM backend the library was built with. */
typedef enum nsa_blas_backend {
    NSA_BLAS_BUILTIN = 0, /**< libnsa's own blocked C GEMM */
    NSA_BLAS_CBLAS = 1    /**< an external CBLAS (OpenBLAS) */
} nsa_blas_backend;
NSA_API nsa_blas_backend nsa_blas_backend_used(void);

/** Number of threads the default context uses: NSA_NUM_THREADS if set, else online cores. */
NSA_API int nsa_default_num_threads(void);

/** @} */

/** @defgroup tensor Tensor views, dtypes and layouts
 *  @{ */

/** Element types. Sizes: f32 4, f16 2, bf16 2, i8 1, u8 1, bool 1, i32 4, i64 8. */
typedef enum nsa_dtype {
    NSA_DTYPE_F32 = 1,
    NSA_DTYPE_F16 = 2,
    NSA_DTYPE_BF16 = 3,
    NSA_DTYPE_I8 = 4,
    NSA_DTYPE_U8 = 5,
    NSA_DTYPE_BOOL = 6,
    NSA_DTYPE_I32 = 7,
    NSA_DTYPE_I64 = 8
} nsa_dtype;

/** Size of one element in bytes; 0 for an unknown dtype. */
NSA_API size_t nsa_dtype_size(nsa_dtype dtype);
/** Lower-case name ("f32", "bf16", ...); "invalid" for an unknown dtype. */
NSA_API const char *nsa_dtype_name(nsa_dtype dtype);

/**
 * How an operator reads the logical axes of a tensor:
 * TND = [tokens, heads, dim] with cumulative sequence lengths; BSH = [batch, seq, heads*dim];
 * BSND = [batch, seq, heads, dim]; BNSD = [batch, heads, seq, dim].
 */
typedef enum nsa_layout {
    NSA_LAYOUT_TND = 1,
    NSA_LAYOUT_BSH = 2,
    NSA_LAYOUT_BSND = 3,
    NSA_LAYOUT_BNSD = 4
} nsa_layout;

/** Parse "TND", "BSH", "BSND", "BNSD" (case-sensitive, as aclnn). */
NSA_API nsa_status nsa_layout_from_string(const char *text, nsa_layout *layout);
/** "TND", "BSH", ...; "invalid" for an unknown layout. */
NSA_API const char *nsa_layout_name(nsa_layout layout);

#define NSA_MAX_DIMS 4

/**
 * A strided view of caller memory. `data` points at element [0,0,...]; `stride[i]` is the
 * distance in *elements* between neighbours along axis i (0 broadcasts; negative strides are
 * rejected). Views are small values: copy them freely. libnsa never frees `data`.
 */
typedef struct nsa_tensor {
    void *data;
    nsa_dtype dtype;
    int32_t ndim;                  /**< 1..NSA_MAX_DIMS */
    int64_t shape[NSA_MAX_DIMS];   /**< extents; unused axes are ignored */
    int64_t stride[NSA_MAX_DIMS];  /**< in elements */
} nsa_tensor;

/** A row-major (C-contiguous) view of `data` with the given shape. */
NSA_API nsa_tensor nsa_tensor_contiguous(void *data, nsa_dtype dtype, int32_t ndim,
                                         const int64_t *shape);
/** A view with explicit strides (in elements). */
NSA_API nsa_tensor nsa_tensor_strided(void *data, nsa_dtype dtype, int32_t ndim,
                                      const int64_t *shape, const int64_t *stride);
/** Number of elements (product of the shape); -1 if it overflows int64. */
NSA_API int64_t nsa_tensor_numel(const nsa_tensor *tensor);
/** 1 if the view is row-major contiguous, else 0. */
NSA_API int nsa_tensor_is_contiguous(const nsa_tensor *tensor);

/** Rounding of a conversion to a narrower float type. */
typedef enum nsa_rounding {
    NSA_ROUND_NEAREST_EVEN = 0, /**< IEEE round to nearest, ties to even (the default) */
    NSA_ROUND_NEAREST_AWAY = 1  /**< round to nearest, ties away from zero (nsa_compress) */
} nsa_rounding;

/**
 * Convert `n` elements between dtypes: f32 <-> f16, bf16, and f16/bf16/i8/u8 -> f32.
 * Float-to-int8 conversion rounds half to even and saturates to [-128, 127].
 * `src_stride` and `dst_stride` are in elements. NaN stays NaN (quiet) in float targets and
 * becomes 0 in int8 targets.
 */
NSA_API nsa_status nsa_convert(const void *src, nsa_dtype src_dtype, int64_t src_stride,
                               void *dst, nsa_dtype dst_dtype, int64_t dst_stride, int64_t n,
                               nsa_rounding rounding);

/** Scalar helpers, exact IEEE conversions. */
NSA_API float nsa_f16_to_f32(uint16_t bits);
NSA_API float nsa_bf16_to_f32(uint16_t bits);
NSA_API uint16_t nsa_f32_to_f16(float value, nsa_rounding rounding);
NSA_API uint16_t nsa_f32_to_bf16(float value, nsa_rounding rounding);

/** @} */

/** @defgroup context Contexts, allocators and thread pools
 *  @{ */

/** Memory hooks. `alloc` returns memory aligned to at least `alignment` (a power of 2). */
typedef struct nsa_allocator {
    void *user;
    void *(*alloc)(void *user, size_t size, size_t alignment);
    void (*free)(void *user, void *ptr);
} nsa_allocator;

/** A task of a parallel loop: run item `index` of the loop. */
typedef void (*nsa_task_fn)(void *arg, size_t index);

/**
 * A caller-supplied thread pool (the oneDNN threadpool / pthreadpool idea). `parallel_for`
 * must run task(arg, i) exactly once for every i in [0, n) and return when all are done;
 * items may run in any order on any threads. libnsa splits work statically, so results are
 * bit-identical whatever the pool does.
 */
typedef struct nsa_thread_pool {
    void *user;
    int (*num_threads)(void *user);
    void (*parallel_for)(void *user, nsa_task_fn task, void *arg, size_t n);
} nsa_thread_pool;

/** Options of a context. Initialise with NSA_CONTEXT_CONFIG_INIT, then set fields. */
typedef struct nsa_context_config {
    uint32_t struct_size;               /**< sizeof(nsa_context_config) */
    int32_t num_threads;                /**< 0 = nsa_default_num_threads(); 1 = serial */
    const nsa_thread_pool *thread_pool; /**< NULL = the built-in pthread pool */
    const nsa_allocator *allocator;     /**< NULL = malloc / free */
} nsa_context_config;

#define NSA_CONTEXT_CONFIG_INIT {(uint32_t)sizeof(nsa_context_config), 0, NULL, NULL}

/** Opaque context: thread pool, allocator and optional caller workspace. */
typedef struct nsa_context nsa_context;

/**
 * Set the process allocator (NULL = posix_memalign / free). It allocates what outlives a call:
 * block masks, mask and score mods, the default context, contexts created without their own
 * allocator and the built-in thread pool (per-call scratch comes from the context's allocator).
 * Call it before any other libnsa function, as with XNNPACK's xnn_initialize(): memory is freed
 * with the allocator that is current then, and the setting is not synchronised.
 * @return NSA_SUCCESS, or NSA_ERR_NULL_POINTER when alloc or free is missing.
 */
NSA_API nsa_status nsa_set_allocator(const nsa_allocator *allocator);

/** Create a context. `config` may be NULL (defaults). */
NSA_API nsa_status nsa_context_create(const nsa_context_config *config, nsa_context **out);
/** Destroy a context (NULL is a no-op). Must not run concurrently with an op using it. */
NSA_API void nsa_context_destroy(nsa_context *ctx);
/** Number of threads the context runs work on (>= 1). */
NSA_API int nsa_context_num_threads(const nsa_context *ctx);
/**
 * Give the context a caller-owned scratch buffer. From then on ops never allocate: an op
 * whose `*_workspace_size()` exceeds `size` fails with NSA_ERR_WORKSPACE_TOO_SMALL. Pass
 * NULL, 0 to go back to allocating. Ops using one workspace must not run concurrently.
 */
NSA_API nsa_status nsa_context_set_workspace(nsa_context *ctx, void *workspace, size_t size);

/** Validation level of an operator call. */
typedef enum nsa_validation {
    NSA_VALIDATE_DEFAULT = 0, /**< reject what is inconsistent or unsafe */
    NSA_VALIDATE_STRICT = 1   /**< also reject what the vendor forbids on Ascend hardware */
} nsa_validation;

/** @} */

#ifdef __cplusplus
}
#endif

#endif /* NSA_CORE_H */
