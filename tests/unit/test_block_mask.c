/* SPDX-License-Identifier: Apache-2.0 */
/* Block masks against an independent cell-by-cell construction written here (PyTorch's
 * create_block_mask: pad with False, count per block, stable argsort), every mask_mod and
 * combinator, from_kv_blocks (PyTorch's own test vectors), select, to_string, sparsity, and
 * every bad input of the mask / mod / block-mask API. */
#include <stdlib.h>
#include <string.h>

#include "test_util.h"

enum { T_NOOP, T_CAUSAL, T_SLIDING, T_PREFIX, T_IDS, T_IDS_SORTED, T_OFFSETS, T_AND_EMPTY,
       T_OR_FULL, T_COMBO, T_ZERO_AND, T_ZERO_OR, T_CALLBACK, T_COUNT };

typedef struct tmask {
    int kind;
    int64_t w, p;
    int64_t ids[400];
    int64_t offs[5], nseq;
} tmask;

static int64_t seq_of(const tmask *m, int64_t t)
{
    int64_t s = 0;
    while (s + 1 < m->nseq && m->offs[s + 1] <= t)
        s++;
    return s;
}

/* The test's own definition of every mask. */
static int tm(const tmask *m, int64_t b, int64_t h, int64_t q, int64_t k)
{
    switch (m->kind) {
    case T_NOOP:
    case T_OR_FULL: /* causal or not causal */
    case T_ZERO_AND:
        return 1;
    case T_CAUSAL:
        return k <= q;
    case T_SLIDING:
        return k <= q && q - k < m->w;
    case T_PREFIX:
        return k < m->p || k <= q;
    case T_IDS:
    case T_IDS_SORTED:
        return m->ids[q] == m->ids[k];
    case T_OFFSETS: { /* nested, inner = sliding window in local positions */
        const int64_t sq = seq_of(m, q), sk = seq_of(m, k);
        return sq == sk && k <= q && q - k < m->w;
    }
    case T_AND_EMPTY: /* causal and not causal */
    case T_ZERO_OR:
        return 0;
    case T_COMBO: /* and(not(or(sliding, sliding)), prefix_lm) */
        return (k < m->p || k <= q) && !(k <= q && q - k < m->w);
    case T_CALLBACK:
        return (q * 7 + k * 3 + b * 5 + h) % 4 != 0 || k == q;
    }
    return 0;
}

static void cb(void *user, int64_t b, int64_t h, int64_t q, int64_t kv0, int32_t n,
               uint8_t *keep)
{
    int32_t j;
    for (j = 0; j < n; j++)
        keep[j] = (uint8_t)(tm((const tmask *)user, b, h, q, kv0 + j) ? 7 : 0); /* nonzero */
}

static nsa_mask_mod *lib_mask(tmask *m, int64_t L)
{
    nsa_mask_mod *mm = NULL, *a = NULL, *b = NULL, *c = NULL, *d = NULL;
    const nsa_mask_mod *v[2];
    nsa_tensor t;
    int64_t n = L;
    switch (m->kind) {
    case T_NOOP:
        assert_int_equal(nsa_mask_mod_noop(&mm), NSA_SUCCESS);
        break;
    case T_CAUSAL:
        assert_int_equal(nsa_mask_mod_causal(&mm), NSA_SUCCESS);
        break;
    case T_SLIDING:
        assert_int_equal(nsa_mask_mod_sliding_window(m->w, &mm), NSA_SUCCESS);
        break;
    case T_PREFIX:
        assert_int_equal(nsa_mask_mod_prefix_lm(m->p, &mm), NSA_SUCCESS);
        break;
    case T_IDS:
    case T_IDS_SORTED:
        t = nsa_tensor_contiguous(m->ids, NSA_DTYPE_I64, 1, &n);
        assert_int_equal(nsa_mask_mod_document(&t, NULL, &mm), NSA_SUCCESS);
        break;
    case T_OFFSETS:
        assert_int_equal(nsa_mask_mod_sliding_window(m->w, &a), NSA_SUCCESS);
        assert_int_equal(nsa_mask_mod_document_offsets(m->offs, NULL, m->nseq, a, &mm),
                         NSA_SUCCESS);
        break;
    case T_AND_EMPTY:
    case T_OR_FULL:
        assert_int_equal(nsa_mask_mod_causal(&a), NSA_SUCCESS);
        assert_int_equal(nsa_mask_mod_not(a, &b), NSA_SUCCESS);
        v[0] = a;
        v[1] = b;
        if (m->kind == T_AND_EMPTY)
            assert_int_equal(nsa_mask_mod_and(v, 2, &mm), NSA_SUCCESS);
        else
            assert_int_equal(nsa_mask_mod_or(v, 2, &mm), NSA_SUCCESS);
        break;
    case T_COMBO:
        assert_int_equal(nsa_mask_mod_sliding_window(m->w, &a), NSA_SUCCESS);
        v[0] = a;
        v[1] = a;
        assert_int_equal(nsa_mask_mod_or(v, 2, &c), NSA_SUCCESS);
        assert_int_equal(nsa_mask_mod_not(c, &d), NSA_SUCCESS);
        assert_int_equal(nsa_mask_mod_prefix_lm(m->p, &b), NSA_SUCCESS);
        v[0] = d;
        v[1] = b;
        assert_int_equal(nsa_mask_mod_and(v, 2, &mm), NSA_SUCCESS);
        break;
    case T_ZERO_AND:
        assert_int_equal(nsa_mask_mod_and(NULL, 0, &mm), NSA_SUCCESS);
        break;
    case T_ZERO_OR:
        assert_int_equal(nsa_mask_mod_or(NULL, 0, &mm), NSA_SUCCESS);
        break;
    case T_CALLBACK:
        assert_int_equal(nsa_mask_mod_callback(cb, m, &mm), NSA_SUCCESS);
        break;
    }
    nsa_mask_mod_free(a);
    nsa_mask_mod_free(b);
    nsa_mask_mod_free(c);
    nsa_mask_mod_free(d);
    return mm;
}

/* Expected ordered list: ids with flag set ascending, then the rest ascending. */
static int32_t ordered(const uint8_t *cls, int64_t stride, int64_t n, uint8_t want, int32_t *idx)
{
    int32_t cnt = 0, k;
    int64_t c;
    for (c = 0; c < n; c++)
        if (cls[c * stride] == want)
            idx[cnt++] = (int32_t)c;
    k = cnt;
    for (c = 0; c < n; c++)
        if (cls[c * stride] != want)
            idx[k++] = (int32_t)c;
    return cnt;
}

static int g_kind = -1; /* the mask kind under test, for failure messages */

static void compare_view(const nsa_block_mask *bm, nsa_block_mask_array which, const int32_t *exp,
                         int64_t n, const char *what)
{
    nsa_tensor view;
    int64_t i;
    assert_int_equal(nsa_block_mask_array_view(bm, which, &view), NSA_SUCCESS);
    assert_int_equal(nsa_tensor_numel(&view), n);
    for (i = 0; i < n; i++)
        if (((const int32_t *)view.data)[i] != exp[i])
            fail_msg("mask kind %d: %s[%lld] = %d, expected %d", g_kind, what, (long long)i,
                     ((const int32_t *)view.data)[i], exp[i]);
}

/* Build the expected arrays cell by cell and compare every array of `bm`. */
static void check_against_cells(const tmask *m, const nsa_block_mask *bm, int64_t B, int64_t H,
                                int64_t L, int64_t S, int64_t bq, int64_t bk)
{
    const int64_t nq = (L + bq - 1) / bq, nk = (S + bk - 1) / bk;
    uint8_t *cls = (uint8_t *)calloc((size_t)(B * H * nq * nk), 1);
    int32_t *num = (int32_t *)malloc((size_t)(B * H * (nq > nk ? nq : nk)) * 4);
    int32_t *idx = (int32_t *)malloc((size_t)(B * H * nq * nk) * 4);
    int64_t b, h, r, c, q, k, bh;
    double sp, ref_sp;
    int64_t blocks = 0;
    int pass;
    for (b = 0; b < B; b++)
        for (h = 0; h < H; h++)
            for (r = 0; r < nq; r++)
                for (c = 0; c < nk; c++) {
                    int64_t on = 0;
                    for (q = r * bq; q < (r + 1) * bq && q < L; q++)
                        for (k = c * bk; k < (c + 1) * bk && k < S; k++)
                            on += tm(m, b, h, q, k);
                    cls[((b * H + h) * nq + r) * nk + c] =
                        (uint8_t)(on == 0 ? 0 : on == bq * bk ? 2 : 1);
                    blocks += on != 0;
                }
    for (pass = 1; pass <= 2; pass++) {
        for (bh = 0; bh < B * H; bh++)
            for (r = 0; r < nq; r++)
                num[bh * nq + r] = ordered(cls + (bh * nq + r) * nk, 1, nk, (uint8_t)pass,
                                           idx + (bh * nq + r) * nk);
        compare_view(bm, pass == 1 ? NSA_BM_KV_NUM_BLOCKS : NSA_BM_FULL_KV_NUM_BLOCKS, num,
                     B * H * nq, "kv_num");
        compare_view(bm, pass == 1 ? NSA_BM_KV_INDICES : NSA_BM_FULL_KV_INDICES, idx,
                     B * H * nq * nk, "kv_indices");
        for (bh = 0; bh < B * H; bh++)
            for (c = 0; c < nk; c++)
                num[bh * nk + c] = ordered(cls + bh * nq * nk + c, nk, nq, (uint8_t)pass,
                                           idx + (bh * nk + c) * nq);
        compare_view(bm, pass == 1 ? NSA_BM_Q_NUM_BLOCKS : NSA_BM_FULL_Q_NUM_BLOCKS, num,
                     B * H * nk, "q_num");
        compare_view(bm, pass == 1 ? NSA_BM_Q_INDICES : NSA_BM_FULL_Q_INDICES, idx,
                     B * H * nq * nk, "q_indices");
    }
    /* sparsity: 100 * (1 - blocks * bq * bk / numel) */
    ref_sp = 100.0 * (1.0 - (double)(blocks * bq * bk) / (double)(B * H * L * S));
    assert_int_equal(nsa_block_mask_sparsity(bm, &sp), NSA_SUCCESS);
    assert_true(sp == ref_sp);
    free(cls);
    free(num);
    free(idx);
}

static void random_masks(void **state)
{
    test_rng rng;
    int iter;
    nsa_context_config cfg = NSA_CONTEXT_CONFIG_INIT;
    nsa_context *ctx = NULL;
    (void)state;
    cfg.num_threads = 2;
    assert_int_equal(nsa_context_create(&cfg, &ctx), NSA_SUCCESS);
    test_rng_seed(&rng, 77);
    for (iter = 0; iter < 300; iter++) {
        tmask m;
        int64_t B = 1, H = 1, L, S, bq, bk, i;
        nsa_mask_mod *mm;
        nsa_block_mask *bm = NULL;
        memset(&m, 0, sizeof m);
        m.kind = iter % T_COUNT;
        L = test_rng_int(&rng, 1, 200);
        S = (m.kind == T_IDS || m.kind == T_IDS_SORTED || m.kind == T_OFFSETS)
                ? L
                : test_rng_int(&rng, 1, 200);
        bq = test_rng_int(&rng, 1, 70);
        bk = test_rng_int(&rng, 1, 70);
        m.w = test_rng_int(&rng, 1, 80);
        m.p = test_rng_int(&rng, 0, 100);
        for (i = 0; i < L; i++)
            m.ids[i] = test_rng_int(&rng, 0, 3);
        if (m.kind == T_IDS_SORTED) /* runs of ids with gaps in their values */
            for (i = 0; i < L; i++)
                m.ids[i] = 2 * ((i * 5) / (L + 1)) + (i > L / 2);
        m.nseq = test_rng_int(&rng, 1, 4);
        m.offs[0] = 0;
        for (i = 1; i < m.nseq; i++)
            m.offs[i] = m.offs[i - 1] + test_rng_int(&rng, 0, L - m.offs[i - 1]);
        m.offs[m.nseq] = L;
        if (m.kind == T_CALLBACK) {
            B = test_rng_int(&rng, 1, 2);
            H = test_rng_int(&rng, 1, 3);
        }
        mm = lib_mask(&m, L);
        g_kind = m.kind;
        if (nsa_block_mask_create(ctx, mm, B, H, L, S, bq, bk, &bm) != NSA_SUCCESS)
            fail_msg("kind %d: %s", m.kind, nsa_last_error());
        check_against_cells(&m, bm, B, H, L, S, bq, bk);
        /* and the row evaluation (create_mask) */
        {
            uint8_t row[200];
            int64_t q, k;
            for (q = 0; q < L; q += 7) {
                assert_int_equal(nsa_mask_mod_eval(mm, B - 1, H - 1, q, 0, (int32_t)S, row),
                                 NSA_SUCCESS);
                for (k = 0; k < S; k++)
                    if (row[k] != tm(&m, B - 1, H - 1, q, k))
                        fail_msg("kind %d eval(%lld, %lld) = %d", m.kind, (long long)q,
                                 (long long)k, row[k]);
            }
        }
        nsa_block_mask_free(bm);
        nsa_mask_mod_free(mm);
    }
    nsa_context_destroy(ctx);
}

/* PyTorch test_from_kv_blocks vectors (ifa-flex-research.md B.4). */
static void from_kv_blocks_vectors(void **state)
{
    int32_t num[1] = {2}, idx[2] = {0, 1}, fnum[1] = {1}, fidx[2] = {0, -1}, pnum[1] = {1},
            pidx[2] = {1, -1};
    int64_t s3[3] = {1, 1, 1}, s4[4] = {1, 1, 1, 2};
    nsa_tensor tn = nsa_tensor_contiguous(num, NSA_DTYPE_I32, 3, s3);
    nsa_tensor ti = nsa_tensor_contiguous(idx, NSA_DTYPE_I32, 4, s4);
    nsa_tensor tfn = nsa_tensor_contiguous(fnum, NSA_DTYPE_I32, 3, s3);
    nsa_tensor tfi = nsa_tensor_contiguous(fidx, NSA_DTYPE_I32, 4, s4);
    nsa_tensor tpn = nsa_tensor_contiguous(pnum, NSA_DTYPE_I32, 3, s3);
    nsa_tensor tpi = nsa_tensor_contiguous(pidx, NSA_DTYPE_I32, 4, s4);
    nsa_block_mask *bm = NULL;
    nsa_block_mask_info info;
    const int32_t q_num[2] = {1, 1}, q_idx[2] = {0, 0}, q_num2[2] = {0, 1},
                  full_q_num2[2] = {1, 0}, kv_idx2[2] = {1, -1};
    double sp;
    (void)state;
    assert_int_equal(nsa_block_mask_from_kv_blocks(NULL, &tn, &ti, NULL, NULL, NULL, 128, 128, 0,
                                                   0, &bm),
                     NSA_SUCCESS);
    compare_view(bm, NSA_BM_Q_NUM_BLOCKS, q_num, 2, "q_num");
    compare_view(bm, NSA_BM_Q_INDICES, q_idx, 2, "q_idx");
    assert_int_equal(nsa_block_mask_get_info(bm, &info), NSA_SUCCESS);
    assert_int_equal(info.q_len, 128);
    assert_int_equal(info.kv_len, 256);
    assert_int_equal(info.has_full, 0);
    nsa_block_mask_free(bm);

    assert_int_equal(nsa_block_mask_from_kv_blocks(NULL, &tpn, &tpi, &tfn, &tfi, NULL, 128, 128,
                                                   0, 0, &bm),
                     NSA_SUCCESS);
    compare_view(bm, NSA_BM_KV_INDICES, kv_idx2, 2, "kv_indices (kept verbatim)");
    compare_view(bm, NSA_BM_Q_NUM_BLOCKS, q_num2, 2, "q_num");
    compare_view(bm, NSA_BM_Q_INDICES, q_idx, 2, "q_idx");
    compare_view(bm, NSA_BM_FULL_Q_NUM_BLOCKS, full_q_num2, 2, "full_q_num");
    compare_view(bm, NSA_BM_FULL_Q_INDICES, q_idx, 2, "full_q_idx");
    assert_int_equal(nsa_block_mask_sparsity(bm, &sp), NSA_SUCCESS);
    assert_true(sp == 0.0);
    nsa_block_mask_free(bm);
}

/* Sparsity values from PyTorch's tests and docs. */
static void sparsity_values(void **state)
{
    nsa_mask_mod *mm = NULL;
    nsa_block_mask *bm = NULL;
    double sp;
    (void)state;
    assert_int_equal(nsa_mask_mod_causal(&mm), NSA_SUCCESS);
    assert_int_equal(nsa_block_mask_create(NULL, mm, 1, 1, 2048, 2048, 128, 128, &bm),
                     NSA_SUCCESS);
    assert_int_equal(nsa_block_mask_sparsity(bm, &sp), NSA_SUCCESS);
    assert_true(sp == 46.875);
    nsa_block_mask_free(bm);
    assert_int_equal(nsa_block_mask_create(NULL, NULL, 1, 1, 100, 100, 128, 128, &bm),
                     NSA_SUCCESS);
    assert_int_equal(nsa_block_mask_sparsity(bm, &sp), NSA_SUCCESS);
    assert_true(sp == 100.0 * (1.0 - 16384.0 / 10000.0)); /* -63.84 */
    nsa_block_mask_free(bm);
    nsa_mask_mod_free(mm);
}

static char *text(const nsa_block_mask *bm, int64_t rows, int64_t cols, int64_t limit)
{
    size_t len = 0, len2 = 0;
    char *s;
    assert_int_equal(nsa_block_mask_to_string(bm, rows, cols, limit, NULL, 0, &len), NSA_SUCCESS);
    s = (char *)malloc(len + 1);
    assert_int_equal(nsa_block_mask_to_string(bm, rows, cols, limit, s, len + 1, &len2),
                     NSA_SUCCESS);
    assert_int_equal(len, len2);
    assert_int_equal(strlen(s), len);
    return s;
}

/* Hand-computed to_string texts: compressed sections, limit, truncation. */
static void to_string_text(void **state)
{
    nsa_mask_mod *mm = NULL;
    nsa_block_mask *bm = NULL;
    char *s, small[8];
    size_t len;
    (void)state;
    assert_int_equal(nsa_mask_mod_causal(&mm), NSA_SUCCESS);
    /* 4 x 4 causal blocks shown as 2 x 2 sections: [[1,0],[1,1]] -> partly, zeros -> blank */
    assert_int_equal(nsa_block_mask_create(NULL, mm, 1, 2, 64, 64, 16, 16, &bm), NSA_SUCCESS);
    s = text(bm, 2, 2, 4);
    assert_string_equal(s, "(0, 0)\n\xe2\x96\x91\xe2\x96\x91  \n\xe2\x96\x88\xe2\x96\x88\xe2\x96"
                           "\x91\xe2\x96\x91\n\n(0, 1)\n\xe2\x96\x91\xe2\x96\x91  \n\xe2\x96\x88"
                           "\xe2\x96\x88\xe2\x96\x91\xe2\x96\x91\n");
    free(s);
    s = text(bm, 2, 2, 1);
    assert_string_equal(s, "(0, 0)\n\xe2\x96\x91\xe2\x96\x91  \n\xe2\x96\x88\xe2\x96\x88\xe2\x96"
                           "\x91\xe2\x96\x91\n\n...\nTo print out more, set "
                           "BlockMask.to_string(limit=N)\nYou can also index (BlockMask[batch, "
                           "head]) to choose a specific batch or head");
    free(s);
    s = text(bm, 4, 2, 0);
    assert_string_equal(s, "...\nTo print out more, set BlockMask.to_string(limit=N)\nYou can "
                           "also index (BlockMask[batch, head]) to choose a specific batch or "
                           "head");
    free(s);
    /* snprintf-style truncation */
    assert_int_equal(nsa_block_mask_to_string(bm, -1, -1, 4, small, sizeof small, &len),
                     NSA_SUCCESS);
    assert_string_equal(small, "(0, 0)\n");
    assert_true(len > sizeof small);
    nsa_block_mask_free(bm);
    nsa_mask_mod_free(mm);
}

/* select(): dims kept, arrays sliced; broadcasting B/H of 1. */
static void select_and_dense(void **state)
{
    tmask m;
    nsa_mask_mod *mm;
    nsa_block_mask *bm = NULL, *one = NULL;
    nsa_block_mask_info info;
    int32_t dense[2 * 3 * 3 * 4], d1[3 * 4];
    int64_t sd[4] = {2, 3, 3, 4}, s1[4] = {1, 1, 3, 4}, i;
    nsa_tensor td = nsa_tensor_contiguous(dense, NSA_DTYPE_I32, 4, sd);
    nsa_tensor t1 = nsa_tensor_contiguous(d1, NSA_DTYPE_I32, 4, s1);
    (void)state;
    memset(&m, 0, sizeof m);
    m.kind = T_CALLBACK;
    mm = lib_mask(&m, 0);
    assert_int_equal(nsa_block_mask_create(NULL, mm, 2, 3, 9, 14, 3, 4, &bm), NSA_SUCCESS);
    assert_int_equal(nsa_block_mask_to_dense(bm, &td), NSA_SUCCESS);
    assert_int_equal(nsa_block_mask_select(bm, 1, 2, &one), NSA_SUCCESS);
    assert_int_equal(nsa_block_mask_get_info(one, &info), NSA_SUCCESS);
    assert_int_equal(info.batch, 1);
    assert_int_equal(info.heads, 1);
    assert_int_equal(info.numel, 9 * 14);
    assert_int_equal(nsa_block_mask_to_dense(one, &t1), NSA_SUCCESS);
    for (i = 0; i < 12; i++)
        assert_int_equal(d1[i], dense[(1 * 3 + 2) * 12 + i]);
    /* the slice's arrays match the cell construction for (b, h) = (1, 2) */
    nsa_block_mask_free(one);
    assert_int_equal(nsa_block_mask_select(bm, -1, 1, &one), NSA_SUCCESS);
    assert_int_equal(nsa_block_mask_get_info(one, &info), NSA_SUCCESS);
    assert_int_equal(info.batch, 2);
    assert_int_equal(info.heads, 1);
    nsa_block_mask_free(one);
    nsa_block_mask_free(bm);
    nsa_mask_mod_free(mm);
}

static void expect(nsa_status got, nsa_status want, const char *needle)
{
    if (got != want)
        fail_msg("status %s, expected %s (message: %s)", nsa_status_string(got),
                 nsa_status_string(want), nsa_last_error());
    if (needle && !strstr(nsa_last_error(), needle))
        fail_msg("message \"%s\" does not mention \"%s\"", nsa_last_error(), needle);
}

static void bad_inputs(void **state)
{
    nsa_mask_mod *mm = NULL, *causal = NULL;
    nsa_score_mod *sm = NULL;
    nsa_block_mask *bm = NULL;
    const nsa_mask_mod *list[2];
    int64_t offs[3] = {0, 5, 3}, offs0[3] = {1, 5, 8}, n4 = 4, s3[3] = {1, 1, 2},
            s4[4] = {1, 1, 2, 3};
    float f[4] = {0};
    int32_t num[2] = {1, 1}, idx[6] = {0, 1, 2, 0, 1, 2}, fnum[2] = {1, 1},
            fidx[6] = {1, 2, 0, 2, 0, 1};
    nsa_tensor t, tn, ti, tfn, tfi;
    char buf[4];
    size_t len;
    uint8_t keep[4];
    (void)state;
    expect(nsa_mask_mod_causal(NULL), NSA_ERR_NULL_POINTER, "out");
    expect(nsa_mask_mod_sliding_window(0, &mm), NSA_ERR_INVALID_ARGUMENT, "window must be >= 1");
    expect(nsa_mask_mod_prefix_lm(-1, &mm), NSA_ERR_INVALID_ARGUMENT, "prefix_len");
    t = nsa_tensor_contiguous(f, NSA_DTYPE_F32, 1, &n4);
    expect(nsa_mask_mod_document(&t, NULL, &mm), NSA_ERR_INVALID_ARGUMENT, "doc_ids");
    expect(nsa_mask_mod_document(NULL, NULL, &mm), NSA_ERR_NULL_POINTER, "doc_ids");
    expect(nsa_mask_mod_document_offsets(offs, NULL, 2, NULL, &mm), NSA_ERR_INVALID_ARGUMENT,
           "non-decreasing");
    expect(nsa_mask_mod_document_offsets(offs0, NULL, 2, NULL, &mm), NSA_ERR_INVALID_ARGUMENT,
           "q_offsets[0] must be 0");
    expect(nsa_mask_mod_document_offsets(offs, NULL, 0, NULL, &mm), NSA_ERR_INVALID_ARGUMENT,
           "num_seqs");
    expect(nsa_mask_mod_document_offsets(NULL, NULL, 1, NULL, &mm), NSA_ERR_NULL_POINTER,
           "q_offsets");
    expect(nsa_mask_mod_and(NULL, 2, &mm), NSA_ERR_NULL_POINTER, "mods");
    expect(nsa_mask_mod_or(list, -1, &mm), NSA_ERR_INVALID_ARGUMENT, "count");
    list[0] = NULL;
    expect(nsa_mask_mod_or(list, 1, &mm), NSA_ERR_NULL_POINTER, "mods[0]");
    expect(nsa_mask_mod_not(NULL, &mm), NSA_ERR_NULL_POINTER, "mod");
    expect(nsa_mask_mod_callback(NULL, NULL, &mm), NSA_ERR_NULL_POINTER, "fn");
    expect(nsa_score_mod_softcap(0.0f, &sm), NSA_ERR_INVALID_ARGUMENT, "cap");
    expect(nsa_score_mod_softcap(1.0f / 0.0f, &sm), NSA_ERR_INVALID_ARGUMENT, "cap");
    expect(nsa_score_mod_alibi(NULL, 0, &sm), NSA_ERR_INVALID_ARGUMENT, "num_heads");
    expect(nsa_score_mod_alibi(&t, 3, &sm), NSA_ERR_INVALID_ARGUMENT, "slopes.shape[0]");
    expect(nsa_score_mod_rel_bias(&t, &sm), NSA_ERR_INVALID_ARGUMENT, "table");
    expect(nsa_score_mod_callback(NULL, NULL, &sm), NSA_ERR_NULL_POINTER, "fn");

    assert_int_equal(nsa_mask_mod_causal(&causal), NSA_SUCCESS);
    expect(nsa_mask_mod_eval(causal, 0, 0, -1, 0, 4, keep), NSA_ERR_INVALID_ARGUMENT, ">= 0");
    expect(nsa_block_mask_create(NULL, causal, 0, 1, 8, 8, 4, 4, &bm), NSA_ERR_INVALID_ARGUMENT,
           "batch and heads");
    expect(nsa_block_mask_create(NULL, causal, 1, 1, 0, 8, 4, 4, &bm), NSA_ERR_INVALID_ARGUMENT,
           "q_len and kv_len");
    expect(nsa_block_mask_create(NULL, causal, 1, 1, 8, 8, 0, 4, &bm), NSA_ERR_INVALID_ARGUMENT,
           "q_block");
    expect(nsa_block_mask_create(NULL, causal, 1, 1, 8, 8, 4, 4, NULL), NSA_ERR_NULL_POINTER,
           "out");
    {
        int32_t ids[4] = {0, 0, 1, 1};
        t = nsa_tensor_contiguous(ids, NSA_DTYPE_I32, 1, &n4);
        assert_int_equal(nsa_mask_mod_document(&t, NULL, &mm), NSA_SUCCESS);
        expect(nsa_block_mask_create(NULL, mm, 1, 1, 8, 4, 4, 4, &bm), NSA_ERR_INVALID_ARGUMENT,
               "doc_ids must hold an id");
        expect(nsa_mask_mod_eval(mm, 0, 0, 4, 0, 1, keep), NSA_ERR_INVALID_ARGUMENT, "doc_ids");
        nsa_mask_mod_free(mm);
        offs[2] = 8;
        assert_int_equal(nsa_mask_mod_document_offsets(offs, NULL, 2, NULL, &mm), NSA_SUCCESS);
        expect(nsa_block_mask_create(NULL, mm, 1, 1, 9, 9, 4, 4, &bm), NSA_ERR_INVALID_ARGUMENT,
               "q_offsets[num_seqs]");
        nsa_mask_mod_free(mm);
        mm = NULL;
    }

    tn = nsa_tensor_contiguous(num, NSA_DTYPE_I32, 3, s3);
    ti = nsa_tensor_contiguous(idx, NSA_DTYPE_I32, 4, s4);
    tfn = nsa_tensor_contiguous(fnum, NSA_DTYPE_I32, 3, s3);
    tfi = nsa_tensor_contiguous(fidx, NSA_DTYPE_I32, 4, s4);
    expect(nsa_block_mask_from_kv_blocks(NULL, &tn, &ti, &tfn, &tfi, NULL, 4, 4, 0, 0, &bm),
           NSA_SUCCESS, NULL);
    nsa_block_mask_free(bm);
    expect(nsa_block_mask_from_kv_blocks(NULL, &tn, &ti, &tfn, NULL, NULL, 4, 4, 0, 0, &bm),
           NSA_ERR_INVALID_ARGUMENT, "given together");
    expect(nsa_block_mask_from_kv_blocks(NULL, NULL, &ti, NULL, NULL, NULL, 4, 4, 0, 0, &bm),
           NSA_ERR_NULL_POINTER, "kv_num_blocks");
    expect(nsa_block_mask_from_kv_blocks(NULL, &tn, &ti, NULL, NULL, NULL, 0, 4, 0, 0, &bm),
           NSA_ERR_INVALID_ARGUMENT, "q_block");
    expect(nsa_block_mask_from_kv_blocks(NULL, &tn, &ti, NULL, NULL, NULL, 4, 4, 9, 0, &bm),
           NSA_ERR_INVALID_ARGUMENT, "q_len must satisfy");
    expect(nsa_block_mask_from_kv_blocks(NULL, &tn, &ti, NULL, NULL, NULL, 4, 4, 0, 8, &bm),
           NSA_ERR_INVALID_ARGUMENT, "kv_len must satisfy");
    t = tn;
    t.shape[2] = 3;
    expect(nsa_block_mask_from_kv_blocks(NULL, &t, &ti, NULL, NULL, NULL, 4, 4, 0, 0, &bm),
           NSA_ERR_INVALID_ARGUMENT, "kv_num_blocks.shape[2]");
    num[1] = 4;
    expect(nsa_block_mask_from_kv_blocks(NULL, &tn, &ti, NULL, NULL, NULL, 4, 4, 0, 0, &bm),
           NSA_ERR_INVALID_ARGUMENT, "kv_num_blocks[0, 0, 1] must be in [0, 3]");
    num[1] = 1;
    idx[3] = 3;
    expect(nsa_block_mask_from_kv_blocks(NULL, &tn, &ti, NULL, NULL, NULL, 4, 4, 0, 0, &bm),
           NSA_ERR_INVALID_ARGUMENT, "kv_indices[0, 0, 1, 0] must be in [0, 3)");
    idx[3] = 0;
    num[1] = 2;
    idx[4] = 0;
    expect(nsa_block_mask_from_kv_blocks(NULL, &tn, &ti, NULL, NULL, NULL, 4, 4, 0, 0, &bm),
           NSA_ERR_INVALID_ARGUMENT, "already listed as a partial block");
    num[1] = 1;
    fidx[3] = 0; /* row 1: partial 0 and full 0 */
    expect(nsa_block_mask_from_kv_blocks(NULL, &tn, &ti, &tfn, &tfi, NULL, 4, 4, 0, 0, &bm),
           NSA_ERR_INVALID_ARGUMENT, "already listed as a partial block");

    assert_int_equal(nsa_block_mask_create(NULL, causal, 2, 1, 8, 8, 4, 4, &bm), NSA_SUCCESS);
    expect(nsa_block_mask_to_string(bm, 0, 20, 4, buf, sizeof buf, &len),
           NSA_ERR_INVALID_ARGUMENT, "max_rows and max_cols");
    expect(nsa_block_mask_to_string(bm, 20, 20, -1, buf, sizeof buf, &len),
           NSA_ERR_INVALID_ARGUMENT, "limit");
    expect(nsa_block_mask_to_string(bm, 20, 20, 4, NULL, 4, &len), NSA_ERR_NULL_POINTER, "buf");
    {
        nsa_block_mask *one = NULL;
        expect(nsa_block_mask_select(bm, 2, -1, &one), NSA_ERR_INVALID_ARGUMENT, "b must be");
        expect(nsa_block_mask_select(bm, 0, 1, &one), NSA_ERR_INVALID_ARGUMENT, "h must be");
        expect(nsa_block_mask_array_view(bm, (nsa_block_mask_array)8, &t),
               NSA_ERR_INVALID_ARGUMENT, "which");
        t = nsa_tensor_contiguous(idx, NSA_DTYPE_I32, 4, s4);
        expect(nsa_block_mask_to_dense(bm, &t), NSA_ERR_INVALID_ARGUMENT, "out.shape[0]");
        expect(nsa_block_mask_to_dense(NULL, &t), NSA_ERR_NULL_POINTER, "mask");
        expect(nsa_block_mask_to_dense(bm, NULL), NSA_ERR_NULL_POINTER, "out");
        expect(nsa_block_mask_get_info(bm, NULL), NSA_ERR_NULL_POINTER, "info");
        expect(nsa_block_mask_sparsity(NULL, NULL), NSA_ERR_NULL_POINTER, "mask");
        expect(nsa_block_mask_array_view(bm, NSA_BM_KV_INDICES, NULL), NSA_ERR_NULL_POINTER,
               "view");
        expect(nsa_block_mask_select(NULL, 0, 0, &one), NSA_ERR_NULL_POINTER, "mask");
        expect(nsa_block_mask_to_string(bm, 20, 20, 4, buf, sizeof buf, NULL),
               NSA_ERR_NULL_POINTER, "length");
        expect(nsa_mask_mod_eval(causal, 0, 0, 0, 0, 4, NULL), NSA_ERR_NULL_POINTER, "keep");
        expect(nsa_mask_mod_eval(NULL, 0, 0, 0, 0, 4, keep), NSA_ERR_NULL_POINTER, "mod");
    }
    nsa_block_mask_free(bm);
    nsa_mask_mod_free(causal);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(random_masks),     cmocka_unit_test(from_kv_blocks_vectors),
        cmocka_unit_test(sparsity_values),  cmocka_unit_test(to_string_text),
        cmocka_unit_test(select_and_dense), cmocka_unit_test(bad_inputs)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
