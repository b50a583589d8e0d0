/* SPDX-License-Identifier: Apache-2.0 */
/**
 * @file nsa_ifa.h
 * @brief incre_flash_attention: decode attention (one query token per batch) over a KV
 * cache, as Huawei CANN / MindSpore define it (`mindspore.ops.incre_flash_attention`,
 * `aclnnIncreFlashAttentionV4`).
 *
 * For batch b and query head n (kv head n2 = n / (N / kvN)):
 *
 *     x_j = fp32(scale_value) * q[b][n] . k[b][n2][s_j] + pse[b][n][s_j]
 *     x_j = -1e12 where atten_mask[b][s_j] != 0        (replaced, not added)
 *     out[b][n] = sum_j softmax(x)_j * v[b][n2][s_j]
 *
 * over the positions s_j of [start, start + len_b): len_b from actual_seq_lengths (one value
 * broadcast, or one per batch; default the key's S), start = S - pad - len_b with kv left
 * padding, else 0. A batch with len_b == 0, or a negative start, gives a zero output (int8
 * output: the quantised value of 0). int8 K/V are dequantised as (x + offset) * scale
 * (index 0 of the antiquant parameters is the key's, index 1 the value's). With quant_scale2
 * the output is int8: sat_int8(round_half_even(out * qs + qo)). See
 * docs/incre_flash_attention.md for every rule and where libnsa departs from the vendor.
 */
#ifndef NSA_IFA_H
#define NSA_IFA_H

#include "nsa_core.h"

#ifdef __cplusplus
extern "C" {
#endif

/** @defgroup ifa incre_flash_attention
 *  @{ */

/** Scalar parameters of nsa_incre_flash_attention(). Initialise with
 *  nsa_ifa_params_default() (or NSA_IFA_PARAMS_INIT), then set fields. */
typedef struct nsa_ifa_params {
    int64_t num_heads;           /**< N, query heads, > 0 (default 1) */
    int64_t num_key_value_heads; /**< kvN; 0 (default) means N. N % kvN == 0, N/kvN <= 64 */
    nsa_layout input_layout;     /**< BSH (default), BNSD or BSND: the query/output layout,
                                      and the K/V layout when they are not paged */
    double scale_value;          /**< multiplies q.k (default 1.0); converted to fp32 */
    int64_t block_size;          /**< tokens per page with block_table (default 0) */
    int64_t inner_precise;       /**< 0 or 1 (default 1); validated, no numeric effect */
    /** Per-batch KV lengths: NULL / 0 entries = not given (the key's S), 1 entry = the same
     *  length for every batch, >= B entries = one per batch (strict: exactly B). */
    const int64_t *actual_seq_lengths;
    int64_t actual_seq_lengths_count;
    /** kv left padding: when has_kv_padding_size is nonzero, batch b reads
     *  [S - pad - len_b, S - pad) with pad = max(kv_padding_size, 0). Requires
     *  actual_seq_lengths, contiguous (not paged, not per-batch list) K/V. */
    int32_t has_kv_padding_size;
    int64_t kv_padding_size;
    nsa_validation validation; /**< DEFAULT or STRICT (also reject what Ascend forbids) */
} nsa_ifa_params;

/** Initialiser with the documented defaults (N = 1, kvN = N, BSH, scale 1, block_size 0,
 *  inner_precise 1, no actual_seq_lengths, no padding, default validation). */
#define NSA_IFA_PARAMS_INIT                                                                      \
    {1, 0, NSA_LAYOUT_BSH, 1.0, 0, 1, NULL, 0, 0, 0, NSA_VALIDATE_DEFAULT}

/** The defaults of NSA_IFA_PARAMS_INIT as a value. */
NSA_API nsa_ifa_params nsa_ifa_params_default(void);

/**
 * The optional tensors of incre_flash_attention; every field may be NULL (absent).
 * Initialise with NSA_IFA_OPTIONAL_INIT (all NULL). Shapes use B batches, N query heads,
 * kvN kv heads, D channels, S_m / S_p the mask / pse length.
 */
typedef struct nsa_ifa_optional {
    /** bool / u8 / i8, (B,S_m), (B,1,S_m) or (B,1,1,S_m); nonzero = masked. Indexed by the
     *  absolute KV position (padding start included). */
    const nsa_tensor *atten_mask;
    /** query dtype, (B,N,1,S_p) or (1,N,1,S_p); added to the scaled score, per query head. */
    const nsa_tensor *pse_shift;
    /** int8 K/V dequantisation, f32 or the query dtype. Per tensor: (2,); per channel:
     *  (2,kvN,1,D), (2,1,kvN,D), (2,kvN,D) or (2,kvN*D). [0] = key, [1] = value. */
    const nsa_tensor *antiquant_scale;
    const nsa_tensor *antiquant_offset; /**< same shape and dtype as antiquant_scale */
    /** i32 (B, max_blocks_per_seq): page ids; switches K/V to paged caches
     *  (blockNum, block_size, kvN*D) or, with a BNSD query, (blockNum, kvN, block_size, D). */
    const nsa_tensor *block_table;
    /** f32 (or bf16 with a bf16 query): int8 output quantisation, numel 1 or N*D
     *  (index n*D + d, n a query head). Requires an int8 attention_out. */
    const nsa_tensor *quant_scale2;
    const nsa_tensor *quant_offset2; /**< same dtype as quant_scale2; numel 1 or N*D */
} nsa_ifa_optional;

/** All optional tensors absent. */
#define NSA_IFA_OPTIONAL_INIT {NULL, NULL, NULL, NULL, NULL, NULL, NULL}

/**
 * Decode attention of one query token per batch over a KV cache held in one tensor per side
 * (`key`/`value`, batch-major, or paged caches with opt->block_table).
 *
 * @param ctx           context (NULL = default threads and malloc)
 * @param query         f16 / bf16 (f32 at the default level): BSH (B,1,N*D), BNSD (B,N,1,D)
 *                      or BSND (B,1,N,D)
 * @param key           the query's dtype or i8 (antiquant): BSH (B,S,kvN*D), BNSD
 *                      (B,kvN,S,D), BSND (B,S,kvN,D); or a paged cache (see block_table)
 * @param value         same dtype and shape as key
 * @param opt           optional tensors (NULL = none)
 * @param params        scalar parameters (NULL = defaults)
 * @param attention_out the query's shape; the query's dtype or f32, or i8 with quant_scale2
 * @return NSA_SUCCESS; NSA_ERR_NULL_POINTER (a required tensor or its data is NULL);
 *         NSA_ERR_INVALID_ARGUMENT (shapes, dtypes, parameters, lengths, block ids);
 *         NSA_ERR_UNSUPPORTED (TND layout, int8 query, or what STRICT forbids);
 *         NSA_ERR_WORKSPACE_TOO_SMALL; NSA_ERR_OUT_OF_MEMORY.
 */
NSA_API nsa_status nsa_incre_flash_attention(nsa_context *ctx, const nsa_tensor *query,
                                             const nsa_tensor *key, const nsa_tensor *value,
                                             const nsa_ifa_optional *opt,
                                             const nsa_ifa_params *params,
                                             const nsa_tensor *attention_out);

/**
 * The same with K/V given as a list of per-batch tensors of different lengths (the vendor's
 * non-contiguous TensorList): keys[b] / values[b] have batch dimension 1 and the layout of
 * the query; they may differ only in S. kv_count >= B (the first B are used; strict: == B).
 * Paging and kv padding are not available in this form.
 *
 * @param keys      array of kv_count key tensors
 * @param values    array of kv_count value tensors (values[b] has the shape of keys[b])
 * @param kv_count  number of entries of both arrays
 * Other parameters and the statuses are those of nsa_incre_flash_attention().
 */
NSA_API nsa_status nsa_incre_flash_attention_kv_list(nsa_context *ctx, const nsa_tensor *query,
                                                     const nsa_tensor *keys,
                                                     const nsa_tensor *values, int64_t kv_count,
                                                     const nsa_ifa_optional *opt,
                                                     const nsa_ifa_params *params,
                                                     const nsa_tensor *attention_out);

/**
 * Bytes of workspace nsa_incre_flash_attention() needs with these arguments on `ctx` (it
 * depends on the context's thread count). Validates the arguments like the op does.
 * @param size receives the size in bytes
 * @return NSA_SUCCESS or the status the op would return for invalid arguments.
 */
NSA_API nsa_status nsa_incre_flash_attention_workspace_size(
    nsa_context *ctx, const nsa_tensor *query, const nsa_tensor *key, const nsa_tensor *value,
    const nsa_ifa_optional *opt, const nsa_ifa_params *params, const nsa_tensor *attention_out,
    size_t *size);

/** Workspace query of nsa_incre_flash_attention_kv_list() (see
 *  nsa_incre_flash_attention_workspace_size()). */
NSA_API nsa_status nsa_incre_flash_attention_kv_list_workspace_size(
    nsa_context *ctx, const nsa_tensor *query, const nsa_tensor *keys, const nsa_tensor *values,
    int64_t kv_count, const nsa_ifa_optional *opt, const nsa_ifa_params *params,
    const nsa_tensor *attention_out, size_t *size);

/** @} */

#ifdef __cplusplus
}
#endif

#endif /* NSA_IFA_H */
