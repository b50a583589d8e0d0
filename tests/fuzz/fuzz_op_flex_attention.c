/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target: nsa_flex_attention with random small shapes, GQA, broadcast batches,
 * block masks (none, built-in mask_mods through nsa_block_mask_create, or random kv-block
 * lists through nsa_block_mask_from_kv_blocks, rarely invalid), score_mods (soft-cap, ALiBi,
 * relative-position bias), optional lse, strides, dtypes and contents; the block mask's
 * to_dense / sparsity / to_string are exercised too (see fuzz_util.h for the decoding and the
 * invariants checked). */
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Element offset of [b, h, i] in a view. */
static size_t at3(const nsa_tensor *t, int64_t b, int64_t h, int64_t i)
{
    return (size_t)(b * t->stride[0] + h * t->stride[1] + i * t->stride[2]);
}

/* A block mask chosen by the input; NULL when none (or when building one failed, which is
 * fine: the failure was checked). */
static nsa_block_mask *make_block_mask(fz *f, nsa_context *ctx, int64_t B, int64_t H,
                                       int64_t L, int64_t S)
{
    nsa_mask_mod *mod = NULL;
    nsa_block_mask *bm = NULL;
    int64_t mb = fz_chance(f, 128) ? 1 : B, mh = fz_chance(f, 128) ? 1 : H;
    int64_t qb = fz_range(f, 1, 20), kb = fz_range(f, 1, 20);
    nsa_status st = NSA_SUCCESS;
    switch (fz_u8(f) % 6) {
    case 0:
        return NULL;
    case 1:
        st = nsa_mask_mod_causal(&mod);
        break;
    case 2:
        st = nsa_mask_mod_sliding_window(fz_range(f, 0, 12), &mod);
        break;
    case 3:
        st = nsa_mask_mod_prefix_lm(fz_range(f, -1, 12), &mod);
        break;
    case 4: {
        /* random kv-block lists */
        int64_t nq = (L + qb - 1) / qb, nk = (S + kb - 1) / kb, r, j;
        int64_t s3[3], s4[4];
        fz_tensor cnt, idx, fcnt, fidx;
        int full = fz_chance(f, 128);
        s3[0] = s4[0] = mb, s3[1] = s4[1] = mh, s3[2] = s4[2] = nq, s4[3] = nk;
        fz_make(f, &cnt, NSA_DTYPE_I32, 3, s3, 0);
        fz_make(f, &idx, NSA_DTYPE_I32, 4, s4, 0);
        fz_make(f, &fcnt, NSA_DTYPE_I32, 3, s3, 0);
        fz_make(f, &fidx, NSA_DTYPE_I32, 4, s4, 0);
        /* each row: a random split of a permutation of the kv blocks into partial, full and
         * absent ones */
        for (r = 0; r < mb * mh * nq; r++) {
            int32_t *perm = (int32_t *)malloc((size_t)nk * sizeof(int32_t));
            int64_t np, nf;
            if (!perm)
                abort();
            for (j = 0; j < nk; j++)
                perm[j] = (int32_t)j;
            for (j = nk; j > 1; j--) {
                int64_t x = (int64_t)(fz_next(f) % (uint64_t)j);
                int32_t t = perm[j - 1];
                perm[j - 1] = perm[x];
                perm[x] = t;
            }
            np = (int64_t)(fz_next(f) % (uint64_t)(nk + 1));
            nf = full ? (int64_t)(fz_next(f) % (uint64_t)(nk - np + 1)) : 0;
            {
                int64_t b = r / (mh * nq), h = r / nq % mh, qi = r % nq;
                ((int32_t *)cnt.buf)[at3(&cnt.t, b, h, qi)] = (int32_t)np;
                ((int32_t *)fcnt.buf)[at3(&fcnt.t, b, h, qi)] = (int32_t)nf;
                for (j = 0; j < nk; j++) {
                    ((int32_t *)idx.buf)[at3(&idx.t, b, h, qi) + (size_t)(j * idx.t.stride[3])] =
                        j < np ? perm[j] : 0;
                    ((int32_t *)fidx.buf)[at3(&fidx.t, b, h, qi) +
                                          (size_t)(j * fidx.t.stride[3])] =
                        j < nf ? perm[np + j] : 0;
                }
            }
            free(perm);
        }
        if (fz_chance(f, 24)) { /* a bad count or index */
            size_t n = idx.bytes / 4;
            if (fz_chance(f, 128) && n)
                ((int32_t *)idx.buf)[fz_u8(f) % n] = fz_chance(f, 128) ? -1 : (int32_t)nk;
            else if (cnt.bytes)
                ((int32_t *)cnt.buf)[fz_u8(f) % (cnt.bytes / 4)] = (int32_t)nk + 1;
        }
        if (fz_chance(f, 40)) {
            nsa_tensor *views[4];
            views[0] = &cnt.t, views[1] = &idx.t, views[2] = &fcnt.t, views[3] = &fidx.t;
            fz_corrupt_view(f, views[fz_u8(f) % 4]);
        }
        if (fz_chance(f, 100))
            nsa_mask_mod_causal(&mod);
        st = nsa_block_mask_from_kv_blocks(ctx, &cnt.t, &idx.t, full ? &fcnt.t : NULL,
                                           full ? &fidx.t : NULL, mod, qb, kb,
                                           fz_chance(f, 128) ? L : 0, fz_chance(f, 128) ? S : 0,
                                           &bm);
        fz_free(&cnt), fz_free(&idx), fz_free(&fcnt), fz_free(&fidx);
        nsa_mask_mod_free(mod);
        if (st != NSA_SUCCESS && nsa_last_error()[0] == '\0')
            abort();
        return st == NSA_SUCCESS ? bm : NULL;
    }
    default:
        st = nsa_mask_mod_noop(&mod);
        break;
    }
    if (st != NSA_SUCCESS) {
        if (nsa_last_error()[0] == '\0')
            abort();
        return NULL;
    }
    if (fz_chance(f, 16)) { /* rarely bad sizes */
        qb = fz_bad_int(f, qb);
        L = fz_chance(f, 128) ? 0 : L;
    }
    st = nsa_block_mask_create(ctx, mod, mb, mh, L, S, qb, kb, &bm);
    nsa_mask_mod_free(mod);
    if (st != NSA_SUCCESS) {
        if (nsa_last_error()[0] == '\0')
            abort();
        return NULL;
    }
    return bm;
}

/* Use the block mask's own queries once (they must not crash or read outside). */
static void exercise_block_mask(fz *f, const nsa_block_mask *bm)
{
    nsa_block_mask_info info;
    double sparsity;
    char buf[64];
    size_t len;
    if (nsa_block_mask_get_info(bm, &info) != NSA_SUCCESS)
        abort();
    nsa_block_mask_sparsity(bm, &sparsity);
    nsa_block_mask_to_string(bm, fz_range(f, -1, 6), fz_range(f, -1, 6), fz_range(f, -1, 4),
                             buf, (size_t)fz_range(f, 0, 64), &len);
    if (info.batch * info.heads * info.num_q_blocks * info.num_kv_blocks <= 4096) {
        int64_t sh[4];
        fz_tensor dense;
        sh[0] = info.batch, sh[1] = info.heads, sh[2] = info.num_q_blocks;
        sh[3] = info.num_kv_blocks;
        fz_make(f, &dense, NSA_DTYPE_I32, 4, sh, 1);
        nsa_block_mask_to_dense(bm, &dense.t);
        fz_free(&dense);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz f = {data, size, 0};
    nsa_flex_params p = nsa_flex_params_default();
    fz_tensor q, k, v, out, lse, slopes, table;
    fz_tensor *outs[2], *floats[3];
    nsa_tensor *views[5];
    int64_t sh[4];
    int64_t B, Hkv, Hq, L, S, E, Ev, KB;
    int use_lse;
    nsa_dtype dt;
    nsa_context *ctx;
    nsa_block_mask *bm;
    nsa_score_mod *smod = NULL;
    nsa_status st;

    fz_seed(&f);
    ctx = fz_ctx(&f);
    dt = fz_float_dtype(&f);
    B = fz_range(&f, 1, 2);
    Hkv = fz_range(&f, 1, 2);
    Hq = Hkv * fz_range(&f, 1, 3);
    L = fz_range(&f, 1, 40);
    S = fz_range(&f, 1, 48);
    E = fz_dim(&f, 24);
    Ev = fz_dim(&f, 24);
    KB = fz_chance(&f, 64) ? 1 : B;
    p.enable_gqa = Hq != Hkv || fz_chance(&f, 64);
    p.scale = fz_chance(&f, 128) ? 0.0f : (float)fz_scale(&f, E);
    use_lse = fz_chance(&f, 160);

    sh[0] = B, sh[1] = Hq, sh[2] = L, sh[3] = E;
    fz_make(&f, &q, dt, 4, sh, 0);
    sh[0] = KB, sh[1] = Hkv, sh[2] = S;
    fz_make(&f, &k, dt, 4, sh, 0);
    sh[3] = Ev;
    fz_make(&f, &v, dt, 4, sh, 0);
    sh[0] = B, sh[1] = Hq, sh[2] = L;
    fz_make(&f, &out, fz_chance(&f, 200) ? dt : fz_float_dtype(&f), 4, sh, 1);
    fz_make(&f, &lse, NSA_DTYPE_F32, 3, sh, 1);
    sh[0] = Hq;
    fz_make(&f, &slopes, NSA_DTYPE_F32, 1, sh, 0);
    sh[0] = fz_chance(&f, 128) ? 1 : Hq, sh[1] = L + S - 1 - (fz_chance(&f, 16) ? 1 : 0);
    fz_make(&f, &table, NSA_DTYPE_F32, 2, sh, 0);
    fz_fill(&f, &q, 1.0f);
    fz_fill(&f, &k, 1.0f);
    fz_fill(&f, &v, 1.0f);
    fz_fill(&f, &slopes, 1.0f);
    fz_fill(&f, &table, 2.0f);

    switch (fz_u8(&f) % 5) {
    case 1:
        st = nsa_score_mod_softcap(fz_chance(&f, 32) ? fz_special(fz_u8(&f)) : 30.0f, &smod);
        break;
    case 2:
        st = nsa_score_mod_alibi(fz_chance(&f, 128) ? &slopes.t : NULL, Hq, &smod);
        break;
    case 3:
        st = nsa_score_mod_rel_bias(&table.t, &smod);
        break;
    default:
        st = NSA_SUCCESS;
        break;
    }
    if (st != NSA_SUCCESS && nsa_last_error()[0] == '\0')
        abort();
    bm = make_block_mask(&f, ctx, B, Hq, L, S);
    if (bm)
        exercise_block_mask(&f, bm);
    if (fz_chance(&f, 16))
        p.enable_gqa = 0;
    views[0] = &q.t, views[1] = &k.t, views[2] = &v.t, views[3] = &out.t, views[4] = &lse.t;
    fz_maybe_corrupt(&f, views, 5);
    floats[0] = &q, floats[1] = &k, floats[2] = &v;
    fz_specials(&f, floats, 3, 8);
    outs[0] = &out, outs[1] = use_lse ? &lse : NULL;
    fz_canary(outs, 2);
    if (fz_verbose()) {
        fprintf(stderr, "nsa_flex_attention: scale %g enable_gqa %d block_mask %s score_mod %s\n",
                (double)p.scale, (int)p.enable_gqa, bm ? "yes" : "no", smod ? "yes" : "no");
        fz_print_view("q", &q.t), fz_print_view("k", &k.t), fz_print_view("v", &v.t);
        fz_print_view("out", &out.t);
        if (use_lse)
            fz_print_view("lse", &lse.t);
    }
    st = nsa_flex_attention(ctx, &q.t, &k.t, &v.t, bm, smod, &p, &out.t, use_lse ? &lse.t : NULL);
    fz_print_result(st);
    fz_check(st, outs, 2);
    fz_count(st);
    nsa_block_mask_free(bm);
    nsa_score_mod_free(smod);
    fz_free(&q), fz_free(&k), fz_free(&v), fz_free(&out), fz_free(&lse), fz_free(&slopes);
    fz_free(&table);
    return 0;
}
