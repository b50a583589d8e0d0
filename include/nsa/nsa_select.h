/* SPDX-License-Identifier: Apache-2.0 */
/**
 * @file nsa_select.h
 * @brief nsa_select_attention: attention over the top-k selected key blocks of each query
 *        (the selection branch of DeepSeek NSA, as Huawei CANN / MindSpore define it).
 *
 * Layout TND with prefix-sum sequence lengths. For query row t of batch b (query-local
 * position s) and kv head n2, slot c of `topk_indices[t, n2, :]` names batch-local block
 * i = topk_indices[t, n2, c], i.e. the keys [i*l', (i+1)*l') of batch b. The k selected blocks
 * are gathered in slot order (duplicates kept, each counted every time it is listed) and every
 * query head h = n2*G + g (G = N1/N2) of the token runs a softmax over those k*l' keys:
 *
 *     x[u]  = q[t,h,:] . K[u,:]                  (fp32)
 *     x[u]  = -FLT_MAX  if sparse_mode == 2 and key position > s   (before scaling)
 *     x[u] *= scale
 *     out[t,h,:] = sum_u softmax(x)[u] * V[u,:];  softmax_max = max_u x[u];
 *     softmax_sum = sum_u exp(x[u] - max)        (each written 8 times per row)
 *
 * See docs/nsa_select.md for the quirks (fully masked rows, duplicates, validation levels).
 */
#ifndef NSA_SELECT_H
#define NSA_SELECT_H

#include "nsa_core.h"

#ifdef __cplusplus
extern "C" {
#endif

/** @defgroup select nsa_select_attention
 *  @{ */

/** Scalar parameters of nsa_select_attention(). Initialise with
 *  nsa_select_attention_params_default() (or NSA_SELECT_ATTENTION_PARAMS_INIT), then set the
 *  fields you need. */
typedef struct nsa_select_attention_params {
    /** Multiplies q.k (converted to float once). Default 1.0; usually 1/sqrt(D). */
    double scale_value;
    /** Query heads N1. 0 (default) = query.shape[1]; otherwise it must equal it. */
    int64_t head_num;
    /** l': keys per selected block, a multiple of 16 in [16, 128]. Default 64. */
    int64_t select_block_size;
    /** k: selected blocks per query and kv head, 1..32; must equal topk_indices.shape[2].
     *  Default 16. */
    int64_t select_block_count;
    /** Cumulative query lengths per batch (prefix sums, last == T1), or NULL together with
     *  actual_seq_kvlen for one batch of T1 queries and T2 keys. */
    const int64_t *actual_seq_qlen;
    int64_t actual_seq_qlen_count;
    /** Cumulative key/value lengths per batch (prefix sums, last == T2); same count as
     *  actual_seq_qlen. */
    const int64_t *actual_seq_kvlen;
    int64_t actual_seq_kvlen_count;
    /** 0: no mask (default). 2: top-left causal, key position > query position masked. */
    int64_t sparse_mode;
    /** NSA_VALIDATE_DEFAULT, or NSA_VALIDATE_STRICT to also reject what Ascend hardware does
     *  not run (see docs/nsa_select.md). */
    nsa_validation validation;
} nsa_select_attention_params;

/** Default parameters: scale 1.0, head_num from the query, l' = 64, k = 16, one batch,
 *  sparse_mode 0, default validation. */
#define NSA_SELECT_ATTENTION_PARAMS_INIT {1.0, 0, 64, 16, NULL, 0, NULL, 0, 0, NSA_VALIDATE_DEFAULT}

/** The same defaults as NSA_SELECT_ATTENTION_PARAMS_INIT, as a function. */
NSA_API nsa_select_attention_params nsa_select_attention_params_default(void);

/**
 * Bytes of workspace nsa_select_attention() needs with context `ctx` (NULL = default
 * context) for these shapes and parameters; for nsa_context_set_workspace(). The arguments
 * are validated as nsa_select_attention() validates them (topk_indices values excepted).
 *
 * @param ctx          context whose thread count sizes the workspace, or NULL
 * @param query        (T1, N1, D)
 * @param key          (T2, N2, D)
 * @param value        (T2, N2, Dv)
 * @param topk_indices (T1, N2, k) int32
 * @param params       scalar parameters (not NULL)
 * @param size         receives the size in bytes
 * @return NSA_SUCCESS, NSA_ERR_NULL_POINTER, NSA_ERR_INVALID_ARGUMENT, NSA_ERR_UNSUPPORTED
 */
NSA_API nsa_status nsa_select_attention_workspace_size(nsa_context *ctx, const nsa_tensor *query,
                                                       const nsa_tensor *key,
                                                       const nsa_tensor *value,
                                                       const nsa_tensor *topk_indices,
                                                       const nsa_select_attention_params *params,
                                                       size_t *size);

/**
 * Selected-block attention (aclnnNsaSelectedAttention with layout "TND").
 *
 * query, key and value share one dtype: f16, bf16 or f32. Arithmetic is fp32; the output is
 * rounded to nearest even into attention_out's dtype (f16, bf16 or f32). Every topk index is
 * checked before anything is computed: an index < 0 or whose block ends past the batch's
 * keys ((i+1)*l' > S2_b) is an error naming the token, head, slot and value. Results are
 * bit-identical for any thread count. The cost is proportional to T1 * N1 * k * l'; key and
 * value are read in place (only the selected blocks are touched).
 *
 * @param ctx           context, or NULL for the default one
 * @param query         (T1, N1, D)
 * @param key           (T2, N2, D), N1 % N2 == 0
 * @param value         (T2, N2, Dv)
 * @param topk_indices  (T1, N2, k) int32, batch-local block indices
 * @param params        scalar parameters (not NULL)
 * @param attention_out (T1, N1, Dv) f16, bf16 or f32
 * @param softmax_max   optional (T1, N1, 8) f32: the row max of the scaled, masked scores,
 *                      written 8 times; NULL to skip
 * @param softmax_sum   optional (T1, N1, 8) f32: sum of exp(score - max), 8 times; NULL to skip
 * @return NSA_SUCCESS; NSA_ERR_NULL_POINTER (missing tensor or data); NSA_ERR_INVALID_ARGUMENT
 *         (shapes, dtypes, strides, overlapping outputs, parameters, sequence lengths, an
 *         out-of-range topk index); NSA_ERR_UNSUPPORTED (forbidden by strict validation);
 *         NSA_ERR_WORKSPACE_TOO_SMALL; NSA_ERR_OUT_OF_MEMORY.
 */
NSA_API nsa_status nsa_select_attention(nsa_context *ctx, const nsa_tensor *query,
                                        const nsa_tensor *key, const nsa_tensor *value,
                                        const nsa_tensor *topk_indices,
                                        const nsa_select_attention_params *params,
                                        const nsa_tensor *attention_out,
                                        const nsa_tensor *softmax_max,
                                        const nsa_tensor *softmax_sum);

/**
 * The MindSpore / torch_npu form: `ops.nsa_select_attention(..., atten_mask=...)`.
 * Those frameworks always pass sparse_mode 2, and the vendor kernel never reads the mask's
 * values: passing any atten_mask turns top-left causal masking on, passing NULL turns it off.
 * This wrapper does the same: params->sparse_mode is ignored; atten_mask, when given, must be
 * rank 2 with dtype bool or u8 (as the vendor checks) and its contents are not read.
 *
 * @param atten_mask optional rank-2 bool/u8 tensor; only its presence matters
 * Other parameters and return values as nsa_select_attention().
 */
NSA_API nsa_status nsa_select_attention_with_mask(nsa_context *ctx, const nsa_tensor *query,
                                                  const nsa_tensor *key, const nsa_tensor *value,
                                                  const nsa_tensor *topk_indices,
                                                  const nsa_tensor *atten_mask,
                                                  const nsa_select_attention_params *params,
                                                  const nsa_tensor *attention_out,
                                                  const nsa_tensor *softmax_max,
                                                  const nsa_tensor *softmax_sum);

/** @} */

#ifdef __cplusplus
}
#endif

#endif /* NSA_SELECT_H */
