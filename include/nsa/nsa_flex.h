/* SPDX-License-Identifier: Apache-2.0 */
/**
 * @file nsa_flex.h
 * @brief Flex attention with PyTorch's BlockMask semantics: mask_mods, score_mods, block
 *        masks and nsa_flex_attention().
 *
 * A mask_mod decides which (query, key) pairs attend; a score_mod rewrites a scaled score.
 * Both are objects: built-ins (causal, sliding window, prefix LM, document, ALiBi, soft-cap,
 * relative-position bias), combinators (and / or / not) and user callbacks. A block mask
 * (nsa_block_mask) records, for every (batch, head, query block), which key blocks are
 * *partial* (mask_mod applied) and which are *full* (attended without mask_mod), exactly as
 * torch.nn.attention.flex_attention.BlockMask does. nsa_flex_attention() follows PyTorch's
 * compiled kernel: blocks absent from the block mask are skipped, full blocks skip mask_mod,
 * partial blocks apply it. See docs/flex.md.
 *
 * Index conventions: `b` batch, `h` query head, `q` query position, `kv` key position, all
 * int64 and 0-based. BLOCK_SIZE is (query block, key block).
 */
#ifndef NSA_FLEX_H
#define NSA_FLEX_H

#include "nsa_core.h"

#ifdef __cplusplus
extern "C" {
#endif

/** @defgroup flex Flex attention and block masks
 *  @{ */

/** Opaque mask_mod (which pairs attend). Create with nsa_mask_mod_*(), free with
 *  nsa_mask_mod_free(). Objects are immutable once created and may be shared by threads. */
typedef struct nsa_mask_mod nsa_mask_mod;
/** Opaque score_mod (rewrites scaled scores). */
typedef struct nsa_score_mod nsa_score_mod;
/** Opaque block mask (PyTorch BlockMask). */
typedef struct nsa_block_mask nsa_block_mask;

/**
 * User mask_mod: for query `q_idx` of (b, h) and the run of keys [kv0, kv0 + n), write
 * keep[j] = 1 when key kv0 + j attends, 0 when it is masked. Called once per row segment,
 * possibly from several threads at once; must be a pure function of its arguments.
 */
typedef void (*nsa_mask_mod_fn)(void *user, int64_t b, int64_t h, int64_t q_idx, int64_t kv0,
                                int32_t n, uint8_t *keep);

/**
 * User score_mod: rewrite score[j] (the scaled q.k of query `q_idx` and key kv0 + j of
 * (b, h)) in place for j in [0, n). Returning -INFINITY masks the pair. Called once per row
 * segment, possibly from several threads at once; must be a pure function of its arguments.
 */
typedef void (*nsa_score_mod_fn)(void *user, int64_t b, int64_t h, int64_t q_idx, int64_t kv0,
                                 int32_t n, float *score);

/* ---- mask_mods -------------------------------------------------------------------------- */

/**
 * noop: every pair attends.
 * @param out receives the new mask_mod.
 * @return NSA_SUCCESS, NSA_ERR_NULL_POINTER, NSA_ERR_OUT_OF_MEMORY.
 */
NSA_API nsa_status nsa_mask_mod_noop(nsa_mask_mod **out);

/**
 * causal: kv <= q.
 * @param out receives the new mask_mod.
 * @return NSA_SUCCESS, NSA_ERR_NULL_POINTER, NSA_ERR_OUT_OF_MEMORY.
 */
NSA_API nsa_status nsa_mask_mod_causal(nsa_mask_mod **out);

/**
 * sliding window of `window` tokens including the query's own: kv <= q and q - kv < window.
 * @param window number of keys a query sees (>= 1).
 * @param out receives the new mask_mod.
 * @return NSA_SUCCESS, NSA_ERR_NULL_POINTER, NSA_ERR_INVALID_ARGUMENT (window < 1),
 *         NSA_ERR_OUT_OF_MEMORY.
 */
NSA_API nsa_status nsa_mask_mod_sliding_window(int64_t window, nsa_mask_mod **out);

/**
 * prefix LM: kv < prefix_len or kv <= q (bidirectional prefix, causal after it).
 * @param prefix_len length of the prefix (>= 0).
 * @param out receives the new mask_mod.
 * @return NSA_SUCCESS, NSA_ERR_NULL_POINTER, NSA_ERR_INVALID_ARGUMENT, NSA_ERR_OUT_OF_MEMORY.
 */
NSA_API nsa_status nsa_mask_mod_prefix_lm(int64_t prefix_len, nsa_mask_mod **out);

/**
 * document mask from per-token ids: doc_ids[q] == kv_doc_ids[kv]. The ids are copied.
 * Non-decreasing ids (packed sequences) are classified per block in O(log n); other ids are
 * evaluated cell by cell when a block mask is built.
 * @param doc_ids 1-D i32 or i64 tensor, one id per query position (length >= Q_LEN).
 * @param kv_doc_ids the same for key positions; NULL = doc_ids.
 * @param out receives the new mask_mod.
 * @return NSA_SUCCESS, NSA_ERR_NULL_POINTER, NSA_ERR_INVALID_ARGUMENT, NSA_ERR_OUT_OF_MEMORY.
 */
NSA_API nsa_status nsa_mask_mod_document(const nsa_tensor *doc_ids, const nsa_tensor *kv_doc_ids,
                                         nsa_mask_mod **out);

/**
 * document mask from sequence offsets: the C form of PyTorch's create_nested_block_mask.
 * Sequence i holds queries [q_offsets[i], q_offsets[i+1]) and keys
 * [kv_offsets[i], kv_offsets[i+1]). A pair attends when both lie in the same sequence i and
 * inner(i, h, q - q_offsets[i], kv - kv_offsets[i]) holds (the batch argument of `inner` is
 * the sequence index, as in PyTorch). The offsets are copied; `inner` is cloned.
 * @param q_offsets num_seqs + 1 non-decreasing values starting at 0 (last = Q_LEN).
 * @param kv_offsets the same for keys; NULL = q_offsets.
 * @param num_seqs number of sequences (>= 1).
 * @param inner mask_mod applied inside a sequence in local positions; NULL = noop.
 * @param out receives the new mask_mod.
 * @return NSA_SUCCESS, NSA_ERR_NULL_POINTER, NSA_ERR_INVALID_ARGUMENT, NSA_ERR_OUT_OF_MEMORY.
 */
NSA_API nsa_status nsa_mask_mod_document_offsets(const int64_t *q_offsets,
                                                 const int64_t *kv_offsets, int64_t num_seqs,
                                                 const nsa_mask_mod *inner, nsa_mask_mod **out);

/**
 * and of `count` mask_mods (PyTorch and_masks); count 0 gives all-true. Operands are cloned.
 * @return NSA_SUCCESS, NSA_ERR_NULL_POINTER, NSA_ERR_INVALID_ARGUMENT, NSA_ERR_OUT_OF_MEMORY.
 */
NSA_API nsa_status nsa_mask_mod_and(const nsa_mask_mod *const *mods, int32_t count,
                                    nsa_mask_mod **out);

/**
 * or of `count` mask_mods (PyTorch or_masks); count 0 gives all-false. Operands are cloned.
 * @return NSA_SUCCESS, NSA_ERR_NULL_POINTER, NSA_ERR_INVALID_ARGUMENT, NSA_ERR_OUT_OF_MEMORY.
 */
NSA_API nsa_status nsa_mask_mod_or(const nsa_mask_mod *const *mods, int32_t count,
                                   nsa_mask_mod **out);

/**
 * not: negation of `mod` (cloned).
 * @return NSA_SUCCESS, NSA_ERR_NULL_POINTER, NSA_ERR_OUT_OF_MEMORY.
 */
NSA_API nsa_status nsa_mask_mod_not(const nsa_mask_mod *mod, nsa_mask_mod **out);

/**
 * A user mask_mod. `user` must outlive every object built from this mask_mod. Block masks
 * built from a callback evaluate every (q, kv) pair once (cost O(Q_LEN * KV_LEN)).
 * @return NSA_SUCCESS, NSA_ERR_NULL_POINTER (fn or out), NSA_ERR_OUT_OF_MEMORY.
 */
NSA_API nsa_status nsa_mask_mod_callback(nsa_mask_mod_fn fn, void *user, nsa_mask_mod **out);

/**
 * Evaluate a mask_mod on one row segment (PyTorch create_mask, one row at a time):
 * keep[j] = mod(b, h, q_idx, kv0 + j) for j in [0, n).
 * @return NSA_SUCCESS, NSA_ERR_NULL_POINTER, NSA_ERR_INVALID_ARGUMENT (negative index or
 *         n, or a position outside a document mask's ids / offsets).
 */
NSA_API nsa_status nsa_mask_mod_eval(const nsa_mask_mod *mod, int64_t b, int64_t h,
                                     int64_t q_idx, int64_t kv0, int32_t n, uint8_t *keep);

/** Free a mask_mod (NULL is a no-op). Objects built from it keep their own copies. */
NSA_API void nsa_mask_mod_free(nsa_mask_mod *mod);

/* ---- score_mods ------------------------------------------------------------------------- */

/**
 * ALiBi: score + slope[h] * (kv - q).
 * @param slopes optional 1-D float32 tensor of per-head slopes (copied); NULL means
 *        slope[h] = 2^(-8 (h + 1) / num_heads).
 * @param num_heads number of query heads the slopes cover (>= 1; = slopes length if given).
 * @param out receives the new score_mod.
 * @return NSA_SUCCESS, NSA_ERR_NULL_POINTER, NSA_ERR_INVALID_ARGUMENT, NSA_ERR_OUT_OF_MEMORY.
 */
NSA_API nsa_status nsa_score_mod_alibi(const nsa_tensor *slopes, int64_t num_heads,
                                       nsa_score_mod **out);

/**
 * tanh soft-capping: cap * tanh(score / cap).
 * @param cap positive finite cap (e.g. 30 or 50).
 * @return NSA_SUCCESS, NSA_ERR_NULL_POINTER, NSA_ERR_INVALID_ARGUMENT, NSA_ERR_OUT_OF_MEMORY.
 */
NSA_API nsa_status nsa_score_mod_softcap(float cap, nsa_score_mod **out);

/**
 * relative-position bias table: score + table[h, q - kv + KV_LEN - 1].
 * @param table 2-D float32 tensor (H or 1, T), copied; T must be >= Q_LEN + KV_LEN - 1 for
 *        the attention call it is used with (checked there).
 * @return NSA_SUCCESS, NSA_ERR_NULL_POINTER, NSA_ERR_INVALID_ARGUMENT, NSA_ERR_OUT_OF_MEMORY.
 */
NSA_API nsa_status nsa_score_mod_rel_bias(const nsa_tensor *table, nsa_score_mod **out);

/**
 * A user score_mod. `user` must outlive the object.
 * @return NSA_SUCCESS, NSA_ERR_NULL_POINTER, NSA_ERR_OUT_OF_MEMORY.
 */
NSA_API nsa_status nsa_score_mod_callback(nsa_score_mod_fn fn, void *user, nsa_score_mod **out);

/** Free a score_mod (NULL is a no-op). */
NSA_API void nsa_score_mod_free(nsa_score_mod *mod);

/* ---- block masks ------------------------------------------------------------------------ */

/** Shape and sizes of a block mask. */
typedef struct nsa_block_mask_info {
    int64_t batch;          /**< B of the index arrays (1 = broadcast) */
    int64_t heads;          /**< H of the index arrays (1 = broadcast) */
    int64_t q_len;          /**< seq_lengths[0] */
    int64_t kv_len;         /**< seq_lengths[1] */
    int64_t q_block;        /**< BLOCK_SIZE[0] */
    int64_t kv_block;       /**< BLOCK_SIZE[1] */
    int64_t num_q_blocks;   /**< ceil(q_len / q_block) */
    int64_t num_kv_blocks;  /**< ceil(kv_len / kv_block) */
    int64_t numel;          /**< B * H * q_len * kv_len (PyTorch numel()) */
    int32_t has_full;       /**< 1 when full blocks were given or computed */
} nsa_block_mask_info;

/** The index arrays of a block mask (PyTorch attribute names). */
typedef enum nsa_block_mask_array {
    NSA_BM_KV_NUM_BLOCKS = 0,      /**< int32 (B, H, nQ) */
    NSA_BM_KV_INDICES = 1,         /**< int32 (B, H, nQ, nKV) */
    NSA_BM_FULL_KV_NUM_BLOCKS = 2, /**< int32 (B, H, nQ); zeros when has_full is 0 */
    NSA_BM_FULL_KV_INDICES = 3,    /**< int32 (B, H, nQ, nKV) */
    NSA_BM_Q_NUM_BLOCKS = 4,       /**< int32 (B, H, nKV): the transpose */
    NSA_BM_Q_INDICES = 5,          /**< int32 (B, H, nKV, nQ) */
    NSA_BM_FULL_Q_NUM_BLOCKS = 6,  /**< int32 (B, H, nKV) */
    NSA_BM_FULL_Q_INDICES = 7      /**< int32 (B, H, nKV, nQ) */
} nsa_block_mask_array;

/**
 * create_block_mask: classify every (b, h, q-block, kv-block) of `mask_mod` as empty,
 * partial or full (a block is full only when all Q_BLOCK x KV_BLOCK cells attend, so a ragged
 * tail block is never full). Built-in mask_mods are classified analytically (cost
 * proportional to the number of blocks); user callbacks are evaluated on every cell.
 * @param ctx context (NULL = default); rows are classified in parallel.
 * @param mask_mod the mask (cloned into the block mask; NULL = noop).
 * @param batch B (>= 1; 1 broadcasts over the query batch).
 * @param heads H (>= 1; 1 broadcasts over the query heads).
 * @param q_len Q_LEN (>= 1). @param kv_len KV_LEN (>= 1).
 * @param q_block BLOCK_SIZE[0] (>= 1). @param kv_block BLOCK_SIZE[1] (>= 1).
 * @param out receives the block mask; free with nsa_block_mask_free().
 * @return NSA_SUCCESS, NSA_ERR_NULL_POINTER, NSA_ERR_INVALID_ARGUMENT (sizes, or a document
 *         mask whose ids / offsets do not cover the lengths), NSA_ERR_OUT_OF_MEMORY.
 */
NSA_API nsa_status nsa_block_mask_create(nsa_context *ctx, const nsa_mask_mod *mask_mod,
                                         int64_t batch, int64_t heads, int64_t q_len,
                                         int64_t kv_len, int64_t q_block, int64_t kv_block,
                                         nsa_block_mask **out);

/**
 * BlockMask.from_kv_blocks: a block mask from partial (and optionally full) kv-block lists;
 * the q-side arrays are derived. Entries of a row at or after its count are ignored.
 * @param kv_num_blocks int32 or int64 (B, H, nQ): partial blocks per row.
 * @param kv_indices int32 or int64 (B, H, nQ, nKV): partial block ids.
 * @param full_kv_num_blocks optional, as kv_num_blocks (given together with full_kv_indices).
 * @param full_kv_indices optional, as kv_indices.
 * @param mask_mod applied on partial blocks (cloned; NULL = noop).
 * @param q_block BLOCK_SIZE[0] (>= 1). @param kv_block BLOCK_SIZE[1] (>= 1).
 * @param q_len seq_lengths[0]; 0 = nQ * q_block. Must satisfy ceil(q_len / q_block) == nQ.
 * @param kv_len seq_lengths[1]; 0 = nKV * kv_block. Must satisfy ceil(kv_len/kv_block) == nKV.
 * @param out receives the block mask.
 * @return NSA_SUCCESS, NSA_ERR_NULL_POINTER, NSA_ERR_INVALID_ARGUMENT (shapes, a count
 *         outside [0, nKV], an index outside [0, nKV), a block listed twice or as both
 *         partial and full, only one of the full_* arrays), NSA_ERR_OUT_OF_MEMORY.
 */
NSA_API nsa_status nsa_block_mask_from_kv_blocks(nsa_context *ctx, const nsa_tensor *kv_num_blocks,
                                                 const nsa_tensor *kv_indices,
                                                 const nsa_tensor *full_kv_num_blocks,
                                                 const nsa_tensor *full_kv_indices,
                                                 const nsa_mask_mod *mask_mod, int64_t q_block,
                                                 int64_t kv_block, int64_t q_len, int64_t kv_len,
                                                 nsa_block_mask **out);

/**
 * BlockMask[b, h]: a block mask of one batch and/or head, dims kept (size 1) as in recent
 * PyTorch. Unlike PyTorch the mask_mod stays usable: it is called with the original b / h.
 * @param b batch to keep, or -1 for all. @param h head to keep, or -1 for all.
 * @return NSA_SUCCESS, NSA_ERR_NULL_POINTER, NSA_ERR_INVALID_ARGUMENT (index out of range),
 *         NSA_ERR_OUT_OF_MEMORY.
 */
NSA_API nsa_status nsa_block_mask_select(const nsa_block_mask *mask, int64_t b, int64_t h,
                                         nsa_block_mask **out);

/** Free a block mask (NULL is a no-op). */
NSA_API void nsa_block_mask_free(nsa_block_mask *mask);

/**
 * Sizes of a block mask (shape = (batch, heads, q_len, kv_len)).
 * @return NSA_SUCCESS, NSA_ERR_NULL_POINTER.
 */
NSA_API nsa_status nsa_block_mask_get_info(const nsa_block_mask *mask, nsa_block_mask_info *info);

/**
 * A read-only contiguous int32 view of one index array (valid while the mask lives).
 * @return NSA_SUCCESS, NSA_ERR_NULL_POINTER, NSA_ERR_INVALID_ARGUMENT (unknown array).
 */
NSA_API nsa_status nsa_block_mask_array_view(const nsa_block_mask *mask,
                                             nsa_block_mask_array which, nsa_tensor *view);

/**
 * to_dense(): partial | full as int32 0/1, shape (B, H, nQ, nKV), into `out` (any strides,
 * i32).
 * @return NSA_SUCCESS, NSA_ERR_NULL_POINTER, NSA_ERR_INVALID_ARGUMENT (shape or dtype).
 */
NSA_API nsa_status nsa_block_mask_to_dense(const nsa_block_mask *mask, const nsa_tensor *out);

/**
 * sparsity(): 100 * (1 - (sum kv_num_blocks + sum full_kv_num_blocks) * q_block * kv_block
 * / numel), negative when padded blocks outweigh the true lengths (as in PyTorch).
 * @return NSA_SUCCESS, NSA_ERR_NULL_POINTER.
 */
NSA_API nsa_status nsa_block_mask_sparsity(const nsa_block_mask *mask, double *sparsity);

/**
 * to_string(grid_size=(max_rows, max_cols), limit): PyTorch's text, byte for byte (UTF-8
 * '█' / '░'). PyTorch's default is max_rows = max_cols = 20, limit = 4; a negative grid size
 * means uncompressed (one character pair per block). Writes at most `cap` bytes including
 * the terminating NUL (snprintf-style) and stores the full length (without NUL) in *length.
 * @param buf may be NULL when cap is 0 (size query).
 * @return NSA_SUCCESS, NSA_ERR_NULL_POINTER, NSA_ERR_INVALID_ARGUMENT (a grid size of 0 or
 *         limit < 0).
 */
NSA_API nsa_status nsa_block_mask_to_string(const nsa_block_mask *mask, int64_t max_rows,
                                            int64_t max_cols, int64_t limit, char *buf,
                                            size_t cap, size_t *length);

/* ---- flex attention --------------------------------------------------------------------- */

/** Scalar parameters of nsa_flex_attention(). Initialise with NSA_FLEX_PARAMS_INIT or
 *  nsa_flex_params_default(). */
typedef struct nsa_flex_params {
    float scale;         /**< score scale; 0 = 1/sqrt(E) (default) */
    int32_t enable_gqa;  /**< 1 allows Hq a multiple of Hkv (kv head = h / (Hq/Hkv)); default 0 */
    /** 1 = PyTorch's eager semantics: ignore the block lists and apply the block mask's
     *  mask_mod to every key (differs from the default only when the lists disagree with the
     *  mask_mod); default 0 = the compiled kernel's semantics. */
    int32_t mask_mod_only;
} nsa_flex_params;

/** Defaults: scale 0 (= 1/sqrt(E)), enable_gqa 0, mask_mod_only 0. */
#define NSA_FLEX_PARAMS_INIT {0.0f, 0, 0}

/** The defaults as a value (NSA_FLEX_PARAMS_INIT). */
NSA_API nsa_flex_params nsa_flex_params_default(void);

/**
 * Scratch bytes nsa_flex_attention() needs with these arguments and context (for
 * nsa_context_set_workspace()).
 * @return NSA_SUCCESS, or the statuses of nsa_flex_attention()'s argument checks.
 */
NSA_API nsa_status nsa_flex_attention_workspace_size(nsa_context *ctx, const nsa_tensor *q,
                                                     const nsa_tensor *k, const nsa_tensor *v,
                                                     const nsa_block_mask *block_mask,
                                                     const nsa_flex_params *params, size_t *size);

/**
 * flex_attention(q, k, v, score_mod, block_mask, scale, enable_gqa, return_lse).
 *
 * score = scale * q.k; then score_mod; then mask_mod on partial blocks (-inf when masked);
 * softmax over the keys of the visited blocks in float32; out = P.V. A row that sees no key
 * gets out = 0 and lse = -inf. lse is the natural-log logsumexp of the final scores.
 *
 * @param ctx context (NULL = default). Work is split over (b, h, query tile) and is
 *        bit-identical for any thread count.
 * @param q (B, Hq, L, E) f32/f16/bf16, any strides.
 * @param k (B or 1, Hkv, S, E), same dtype as q.
 * @param v (B or 1, Hkv, S, Ev), same dtype as q.
 * @param block_mask NULL = every key of every row; else its shape must be (1 or B, 1 or Hq,
 *        L, S) and its mask_mod is applied on partial blocks.
 * @param score_mod NULL = identity.
 * @param params NULL = defaults.
 * @param out (B, Hq, L, Ev) f32/f16/bf16 (rounded to nearest even), must not overlap inputs.
 * @param lse optional (B, Hq, L) f32.
 * @return NSA_SUCCESS, NSA_ERR_NULL_POINTER, NSA_ERR_INVALID_ARGUMENT (ranks, shapes,
 *         dtypes, GQA, block-mask shape, score_mod tables), NSA_ERR_WORKSPACE_TOO_SMALL,
 *         NSA_ERR_OUT_OF_MEMORY.
 */
NSA_API nsa_status nsa_flex_attention(nsa_context *ctx, const nsa_tensor *q, const nsa_tensor *k,
                                      const nsa_tensor *v, const nsa_block_mask *block_mask,
                                      const nsa_score_mod *score_mod,
                                      const nsa_flex_params *params, const nsa_tensor *out,
                                      const nsa_tensor *lse);

/** @} */

#ifdef __cplusplus
}
#endif

#endif /* NSA_FLEX_H */
