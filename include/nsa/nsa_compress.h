/* SPDX-License-Identifier: Apache-2.0 */
/**
 * @file nsa_compress.h
 * @brief NSA part 1: nsa_compress (block summaries of the KV sequence) and
 *        nsa_compress_attention (attention over them plus top-k selection blocks).
 *
 * Semantics follow Huawei CANN's aclnnNsaCompress / aclnnNsaCompressAttention kernels
 * (docs/nsa.md lists every vendor quirk reproduced on purpose). Layout is TND: tensors are
 * [tokens, heads, dim] with the batches concatenated along tokens and described by prefix
 * sums of their lengths.
 */
#ifndef NSA_COMPRESS_H
#define NSA_COMPRESS_H

#include "nsa_core.h"

#ifdef __cplusplus
extern "C" {
#endif

/** @defgroup nsa_compress nsa_compress
 *  @{ */

/** Scalar parameters of nsa_compress. Initialise with NSA_COMPRESS_PARAMS_INIT or
 *  nsa_compress_params_default(). */
typedef struct nsa_compress_params {
    int64_t compress_block_size;   /**< l: tokens per window (default 32) */
    int64_t compress_stride;       /**< d: tokens between window starts (default 16) */
    const int64_t *actual_seq_len; /**< prefix sums of the segment lengths, last == T (required) */
    int64_t actual_seq_len_count;  /**< number of segments B (>= 1) */
    nsa_validation validation;     /**< NSA_VALIDATE_DEFAULT or NSA_VALIDATE_STRICT */
} nsa_compress_params;

/** Defaults: l = 32, d = 16 (DeepSeek NSA), no sequence array, default validation. */
#define NSA_COMPRESS_PARAMS_INIT {32, 16, NULL, 0, NSA_VALIDATE_DEFAULT}

/** The values of NSA_COMPRESS_PARAMS_INIT. */
NSA_API nsa_compress_params nsa_compress_params_default(void);

/**
 * Number of output rows T' = sum over segments b of W_b, W_b = (L_b - l)/d + 1 when
 * L_b >= l, else 0 (L_b = actual_seq_len[b] - actual_seq_len[b-1]).
 * @param params  l, d and the prefix sums (checked: non-decreasing, d >= 1).
 * @param rows    receives T'.
 * @return NSA_SUCCESS, NSA_ERR_NULL_POINTER, NSA_ERR_INVALID_ARGUMENT.
 */
NSA_API nsa_status nsa_compress_output_rows(const nsa_compress_params *params, int64_t *rows);

/**
 * Bytes of scratch nsa_compress needs (for nsa_context_set_workspace).
 * @param ctx     the context the call will use (the size depends on its thread count).
 * @param input   the (T, N, D) input (only its shape is read).
 * @param params  as for nsa_compress.
 * @param size    receives the size in bytes.
 * @return NSA_SUCCESS, NSA_ERR_NULL_POINTER, NSA_ERR_INVALID_ARGUMENT, NSA_ERR_OUT_OF_MEMORY.
 */
NSA_API nsa_status nsa_compress_workspace_size(nsa_context *ctx, const nsa_tensor *input,
                                               const nsa_compress_params *params, size_t *size);

/**
 * Compress every segment into overlapping windows:
 * `output[base_b + j, n, e] = sum_{i<l} weight[i, n] * input[start_b + j*d + i, n, e]`,
 * summed in fp32 (the kernel's ReduceBlock tree), the final cast rounding ties away from zero.
 * Segments are concatenated in batch order; a segment shorter than l emits nothing.
 *
 * @param ctx     context (NULL = default).
 * @param input   (T, N, D), f16 / bf16 / f32.
 * @param weight  (l, N), the same dtype as input.
 * @param params  l, d, prefix sums, validation level.
 * @param output  (T', N, D), any float dtype (T' from nsa_compress_output_rows()).
 * @return NSA_SUCCESS; NSA_ERR_NULL_POINTER (missing tensor, data or sequence array);
 *         NSA_ERR_INVALID_ARGUMENT (ranks, dtypes, shapes, l / d ranges, prefix sums);
 *         NSA_ERR_UNSUPPORTED (strict level: D % 16, D > 256, N > 128, f32, empty segment);
 *         NSA_ERR_WORKSPACE_TOO_SMALL; NSA_ERR_OUT_OF_MEMORY.
 */
NSA_API nsa_status nsa_compress(nsa_context *ctx, const nsa_tensor *input,
                                const nsa_tensor *weight, const nsa_compress_params *params,
                                const nsa_tensor *output);

/** @} */

/** @defgroup nsa_compress_attention nsa_compress_attention
 *  @{ */

/** Scalar parameters of nsa_compress_attention. Initialise with
 *  NSA_COMPRESS_ATTENTION_PARAMS_INIT or nsa_compress_attention_params_default(). */
typedef struct nsa_compress_attention_params {
    double scale_value;                 /**< score scale, used as float32 (default 1.0) */
    int64_t head_num;                   /**< N1, must equal query.shape[1] (required) */
    int64_t compress_block_size;        /**< l (default 32) */
    int64_t compress_stride;            /**< d (default 16) */
    int64_t select_block_size;          /**< l' (default 64) */
    int64_t select_block_count;         /**< k (default 16) */
    const int64_t *actual_seq_qlen;     /**< prefix sums of query lengths, last == T1 */
    int64_t actual_seq_qlen_count;      /**< B */
    const int64_t *actual_cmp_seq_kvlen; /**< prefix sums of compressed kv lengths, last == T2 */
    int64_t actual_cmp_seq_kvlen_count; /**< B */
    const int64_t *actual_sel_seq_kvlen; /**< optional (NULL): prefix sums of ceil(S2_b/(l'/d)) */
    int64_t actual_sel_seq_kvlen_count; /**< B when given */
    nsa_validation validation;          /**< NSA_VALIDATE_DEFAULT or NSA_VALIDATE_STRICT */
} nsa_compress_attention_params;

/** Defaults: scale 1, head_num 0 (must be set), l = 32, d = 16, l' = 64, k = 16, no
 *  sequence arrays, default validation. */
#define NSA_COMPRESS_ATTENTION_PARAMS_INIT \
    {1.0, 0, 32, 16, 64, 16, NULL, 0, NULL, 0, NULL, 0, NSA_VALIDATE_DEFAULT}

/** The values of NSA_COMPRESS_ATTENTION_PARAMS_INIT. */
NSA_API nsa_compress_attention_params nsa_compress_attention_params_default(void);

/**
 * Bytes of scratch nsa_compress_attention needs (for nsa_context_set_workspace).
 * @param ctx     the context the call will use (the size depends on its thread count).
 * @param query   (T1, N1, D).
 * @param key     (T2, N2, D).
 * @param value   (T2, N2, D2).
 * @param params  as for nsa_compress_attention.
 * @param size    receives the size in bytes.
 * @return NSA_SUCCESS or the error nsa_compress_attention would return for these arguments.
 */
NSA_API nsa_status nsa_compress_attention_workspace_size(
    nsa_context *ctx, const nsa_tensor *query, const nsa_tensor *key, const nsa_tensor *value,
    const nsa_compress_attention_params *params, size_t *size);

/**
 * Attention of every query over its batch's compressed keys, and the top-k selection blocks.
 * Per batch b, kv head n2 = h / G, query-local row s:
 *  - `x[j] = scale * q[t,h]·k[j,n2]`; if atten_mask[s, j] != 0, x[j] = -FLT_MAX (replaced);
 *  - `M = max x`, `Z = sum exp(x - M)`, `P = exp(x - M) / Z`, out = P·V (fp32, P not rounded);
 *    a fully masked row therefore averages V (uniform P, M = -FLT_MAX, Z = S2_b);
 *  - importance `I_h[J] = sum_{i < m+n-1} w_i P[(J+1)m - i]` (m = l'/d, n = l/d, the
 *    kernel's +1 shift), summed over the G heads of n2 with a pairwise tree; a nonzero
 *    topk_mask[s, J] forces block J (+FLT_MAX);
 *  - topk_indices[t, n2, :] = the k blocks with the largest scores, descending, ties to the
 *    lower index (batch-local block numbers).
 * softmax_max / softmax_sum hold M and Z 8 times per row, in the vendor's per-batch
 * [N1, S1_b, 8] order (batches concatenated) inside the declared (T1, N1, 8) tensor.
 *
 * @param ctx           context (NULL = default).
 * @param query         (T1, N1, D), f16 / bf16 / f32.
 * @param key           (T2, N2, D) compressed keys, same dtype.
 * @param value         (T2, N2, D2) compressed values, same dtype, D2 <= D.
 * @param atten_mask    optional (maxS1, maxS2) bool / u8, nonzero = masked; NULL = none.
 * @param topk_mask     optional (maxS1, ceil(maxS2 / m)) bool / u8, nonzero = forced.
 * @param params        scale, head_num, l, d, l', k, sequence arrays, validation level.
 * @param attention_out (T1, N1, D2), any float dtype (rounded to nearest even).
 * @param topk_indices  (T1, N2, k) int32.
 * @param softmax_max   (T1, N1, 8) f32.
 * @param softmax_sum   (T1, N1, 8) f32.
 * @return NSA_SUCCESS; NSA_ERR_NULL_POINTER; NSA_ERR_INVALID_ARGUMENT (shapes, dtypes,
 *         ranges of l, d, l', k, head counts, sequence arrays, mask shapes, overlaps);
 *         NSA_ERR_UNSUPPORTED (strict level: Ascend-only limits);
 *         NSA_ERR_WORKSPACE_TOO_SMALL; NSA_ERR_OUT_OF_MEMORY.
 */
NSA_API nsa_status nsa_compress_attention(nsa_context *ctx, const nsa_tensor *query,
                                          const nsa_tensor *key, const nsa_tensor *value,
                                          const nsa_tensor *atten_mask,
                                          const nsa_tensor *topk_mask,
                                          const nsa_compress_attention_params *params,
                                          const nsa_tensor *attention_out,
                                          const nsa_tensor *topk_indices,
                                          const nsa_tensor *softmax_max,
                                          const nsa_tensor *softmax_sum);

/** @} */

#ifdef __cplusplus
}
#endif

#endif /* NSA_COMPRESS_H */
