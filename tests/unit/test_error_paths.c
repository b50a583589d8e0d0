/* SPDX-License-Identifier: Apache-2.0 */
/* Validation rules of docs/errors.md that the operators' own tests do not reach: missing
 * output pointers of the mod constructors and size queries, empty tables, document masks
 * shorter than the sequence, score-mod tables for the wrong heads, zero heads. Each case checks
 * the status, the message, and that nothing was written (an output handle stays as it was,
 * an output tensor keeps its sentinel). */
#include <math.h>
#include <string.h>

#include "test_status.h"
#include "test_util.h"

static void mod_constructors_need_out(void **state)
{
    int32_t ids[4] = {0, 0, 1, 1};
    int64_t shape[1] = {4}, offs[2] = {0, 4};
    nsa_tensor tids = nsa_tensor_contiguous(ids, NSA_DTYPE_I32, 1, shape);
    (void)state;
    test_expect_status(nsa_mask_mod_document(&tids, NULL, NULL), NSA_ERR_NULL_POINTER,
                       "out must not be NULL");
    test_expect_status(nsa_mask_mod_document_offsets(offs, offs, 1, NULL, NULL),
                       NSA_ERR_NULL_POINTER, "out must not be NULL");
    test_expect_status(nsa_score_mod_softcap(20.0f, NULL), NSA_ERR_NULL_POINTER,
                       "out must not be NULL");
}

static void empty_score_table(void **state)
{
    float table[1] = {0.0f};
    int64_t shape[2] = {2, 0};
    nsa_tensor t = nsa_tensor_contiguous(table, NSA_DTYPE_F32, 2, shape);
    nsa_score_mod *mod = (nsa_score_mod *)&t; /* a sentinel: must stay untouched */
    nsa_score_mod *const before = mod;
    (void)state;
    test_expect_status(nsa_score_mod_rel_bias(&t, &mod), NSA_ERR_INVALID_ARGUMENT,
                       "table must not be empty");
    assert_true(mod == before || mod == NULL);
}

static void compress_size_query_needs_size(void **state)
{
    float in[64 * 2 * 16];
    int64_t shape[3] = {64, 2, 16}, cum[1] = {64};
    nsa_tensor t = nsa_tensor_contiguous(in, NSA_DTYPE_F32, 3, shape);
    nsa_compress_params p = nsa_compress_params_default();
    (void)state;
    p.actual_seq_len = cum;
    p.actual_seq_len_count = 1;
    test_expect_status(nsa_compress_workspace_size(NULL, &t, &p, NULL), NSA_ERR_NULL_POINTER,
                       "size must not be NULL");
}

/* A small flex problem: B=1, H=2, L=S=8, E=4, all outputs preset to a sentinel. */
typedef struct flex_fx {
    float q[2 * 8 * 4], k[2 * 8 * 4], v[2 * 8 * 4], out[2 * 8 * 4];
    nsa_tensor tq, tk, tv, to;
} flex_fx;

static void flex_fx_init(flex_fx *f)
{
    int64_t shape[4] = {1, 2, 8, 4};
    int i;
    for (i = 0; i < 64; i++) {
        f->q[i] = 0.01f * (float)i;
        f->k[i] = 0.02f * (float)(i % 7);
        f->v[i] = 0.03f * (float)(i % 5);
        f->out[i] = 12345.0f;
    }
    f->tq = nsa_tensor_contiguous(f->q, NSA_DTYPE_F32, 4, shape);
    f->tk = nsa_tensor_contiguous(f->k, NSA_DTYPE_F32, 4, shape);
    f->tv = nsa_tensor_contiguous(f->v, NSA_DTYPE_F32, 4, shape);
    f->to = nsa_tensor_contiguous(f->out, NSA_DTYPE_F32, 4, shape);
}

static void expect_out_untouched(const flex_fx *f)
{
    int i;
    for (i = 0; i < 64; i++)
        if (f->out[i] != 12345.0f)
            fail_msg("out[%d] was written by a call that failed", i);
}

static void flex_zero_heads(void **state)
{
    flex_fx f;
    (void)state;
    flex_fx_init(&f);
    f.tq.shape[1] = 0;
    f.tk.shape[1] = 0;
    f.tv.shape[1] = 0;
    f.to.shape[1] = 0;
    test_expect_status(nsa_flex_attention(NULL, &f.tq, &f.tk, &f.tv, NULL, NULL, NULL, &f.to, NULL),
                       NSA_ERR_INVALID_ARGUMENT, "(heads) must be >= 1");
    expect_out_untouched(&f);
}

static void rel_bias_for_wrong_heads(void **state)
{
    float table[3 * 15];
    int64_t shape[2] = {3, 15};
    nsa_tensor t = nsa_tensor_contiguous(table, NSA_DTYPE_F32, 2, shape);
    nsa_score_mod *mod = NULL;
    flex_fx f;
    (void)state;
    memset(table, 0, sizeof table);
    flex_fx_init(&f);
    assert_int_equal(nsa_score_mod_rel_bias(&t, &mod), NSA_SUCCESS);
    test_expect_status(nsa_flex_attention(NULL, &f.tq, &f.tk, &f.tv, NULL, mod, NULL, &f.to, NULL),
                       NSA_ERR_INVALID_ARGUMENT,
                       "rel_bias table.shape[0] must be 1 or the query heads (2), got 3");
    expect_out_untouched(&f);
    nsa_score_mod_free(mod);
}

static void document_masks_shorter_than_keys(void **state)
{
    int32_t ids[8] = {0, 0, 0, 1, 1, 1, 1, 1}, kv_ids[6] = {0, 0, 0, 1, 1, 1};
    int64_t s8[1] = {8}, s6[1] = {6}, q_off[3] = {0, 3, 8}, kv_off[3] = {0, 3, 6};
    nsa_tensor tids = nsa_tensor_contiguous(ids, NSA_DTYPE_I32, 1, s8);
    nsa_tensor tkv = nsa_tensor_contiguous(kv_ids, NSA_DTYPE_I32, 1, s6);
    nsa_mask_mod *by_ids = NULL, *by_offsets = NULL;
    nsa_block_mask *bm = NULL;
    (void)state;
    assert_int_equal(nsa_mask_mod_document(&tids, &tkv, &by_ids), NSA_SUCCESS);
    test_expect_status(nsa_block_mask_create(NULL, by_ids, 1, 1, 8, 8, 4, 4, &bm),
                       NSA_ERR_INVALID_ARGUMENT,
                       "kv_doc_ids must hold an id for each of the 8 key positions, got 6");
    assert_null(bm);
    assert_int_equal(nsa_mask_mod_document_offsets(q_off, kv_off, 2, NULL, &by_offsets),
                     NSA_SUCCESS);
    test_expect_status(nsa_block_mask_create(NULL, by_offsets, 1, 1, 8, 8, 4, 4, &bm),
                       NSA_ERR_INVALID_ARGUMENT,
                       "kv_offsets[num_seqs] must equal the key length 8, got 6");
    assert_null(bm);
    nsa_mask_mod_free(by_ids);
    nsa_mask_mod_free(by_offsets);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(mod_constructors_need_out),
        cmocka_unit_test(empty_score_table),
        cmocka_unit_test(compress_size_query_needs_size),
        cmocka_unit_test(flex_zero_heads),
        cmocka_unit_test(rel_bias_for_wrong_heads),
        cmocka_unit_test(document_masks_shorter_than_keys),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
