/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target: nsa_incre_flash_attention with random small batches, head groups,
 * layouts (BSH, BNSD, BSND), dense or paged caches (both cache layouts, shuffled and rarely
 * out-of-range page ids), int8 K/V with per-tensor or per-channel antiquant, int8 output
 * quantisation, masks, pse, per-batch lengths (rarely too long or negative), kv left
 * padding, strides, dtypes and contents (see fuzz_util.h for the decoding and the
 * invariants checked). */
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz f = {data, size, 0};
    nsa_ifa_params p = nsa_ifa_params_default();
    nsa_ifa_optional opt = NSA_IFA_OPTIONAL_INIT;
    fz_tensor q, k, v, mask, pse, aqs, aqo, table, qs2, qo2, out;
    fz_tensor *outs[1], *floats[5];
    nsa_tensor *views[11];
    int64_t sh[4], lens[8];
    int64_t B, N, kvN, D, S, b, i, bs = 0, maxb = 0, nblocks = 0;
    int paged, paged4 = 0, int8kv, quant, use_mask, use_pse, asl, pad;
    nsa_dtype dt, kdt, odt;
    nsa_layout layout;
    nsa_context *ctx;
    nsa_status st;

    fz_seed(&f);
    ctx = fz_ctx(&f);
    dt = fz_float_dtype(&f);
    layout = (nsa_layout)(NSA_LAYOUT_BSH + fz_range(&f, 0, 2));
    B = fz_range(&f, 1, 3);
    kvN = fz_range(&f, 1, 2);
    N = kvN * fz_range(&f, 1, 3);
    D = fz_dim(&f, 24);
    paged = fz_chance(&f, 80);
    if (paged) {
        bs = fz_range(&f, 1, 16);
        maxb = fz_range(&f, 1, 4);
        nblocks = B * maxb + fz_range(&f, 0, 2);
        S = bs * maxb;
        paged4 = layout == NSA_LAYOUT_BNSD && fz_chance(&f, 128);
    } else {
        S = fz_range(&f, 1, 40);
    }
    int8kv = fz_chance(&f, 64) ? (int)fz_range(&f, 1, 2) : 0; /* 1 per tensor, 2 per channel */
    quant = fz_chance(&f, 48) ? (int)fz_range(&f, 1, 2) : 0;
    use_mask = fz_chance(&f, 100);
    use_pse = fz_chance(&f, 64);
    asl = (int)fz_range(&f, 0, 2); /* 0 none, 1 one value, 2 one per batch */
    pad = !paged && asl && fz_chance(&f, 40);
    kdt = int8kv ? NSA_DTYPE_I8 : dt;
    odt = quant ? NSA_DTYPE_I8 : fz_chance(&f, 200) ? dt : NSA_DTYPE_F32;
    for (b = 0; b < 8; b++)
        lens[b] = fz_range(&f, 0, S);

    p.num_heads = N;
    p.num_key_value_heads = fz_chance(&f, 64) && kvN == N ? 0 : kvN;
    p.input_layout = layout;
    p.scale_value = fz_scale(&f, D);
    p.inner_precise = fz_range(&f, 0, 1);
    p.block_size = paged ? bs : 0;
    if (asl) {
        p.actual_seq_lengths = lens;
        p.actual_seq_lengths_count = asl == 1 ? 1 : B;
    }
    if (pad) {
        p.has_kv_padding_size = 1;
        p.kv_padding_size = fz_range(&f, -2, S);
    }
    p.validation = fz_chance(&f, 32) ? NSA_VALIDATE_STRICT : NSA_VALIDATE_DEFAULT;

    /* query / output */
    if (layout == NSA_LAYOUT_BSH)
        sh[0] = B, sh[1] = 1, sh[2] = N * D;
    else if (layout == NSA_LAYOUT_BNSD)
        sh[0] = B, sh[1] = N, sh[2] = 1, sh[3] = D;
    else
        sh[0] = B, sh[1] = 1, sh[2] = N, sh[3] = D;
    fz_make(&f, &q, dt, layout == NSA_LAYOUT_BSH ? 3 : 4, sh, 0);
    fz_make(&f, &out, odt, layout == NSA_LAYOUT_BSH ? 3 : 4, sh, 1);
    /* key / value */
    if (paged4)
        sh[0] = nblocks, sh[1] = kvN, sh[2] = bs, sh[3] = D;
    else if (paged)
        sh[0] = nblocks, sh[1] = bs, sh[2] = kvN * D;
    else if (layout == NSA_LAYOUT_BSH)
        sh[0] = B, sh[1] = S, sh[2] = kvN * D;
    else if (layout == NSA_LAYOUT_BNSD)
        sh[0] = B, sh[1] = kvN, sh[2] = S, sh[3] = D;
    else
        sh[0] = B, sh[1] = S, sh[2] = kvN, sh[3] = D;
    {
        int32_t nd = (paged && !paged4) || (!paged && layout == NSA_LAYOUT_BSH) ? 3 : 4;
        fz_make(&f, &k, kdt, nd, sh, 0);
        fz_make(&f, &v, kdt, nd, sh, 0);
    }
    sh[0] = B, sh[1] = S + fz_range(&f, 0, 2);
    fz_make(&f, &mask, fz_chance(&f, 128) ? NSA_DTYPE_U8 : NSA_DTYPE_BOOL, 2, sh, 0);
    sh[0] = fz_chance(&f, 128) ? 1 : B, sh[1] = N, sh[2] = 1, sh[3] = S;
    fz_make(&f, &pse, dt, 4, sh, 0);
    if (int8kv == 2)
        sh[0] = 2, sh[1] = kvN, sh[2] = D;
    else
        sh[0] = 2;
    fz_make(&f, &aqs, NSA_DTYPE_F32, int8kv == 2 ? 3 : 1, sh, 0);
    fz_make(&f, &aqo, NSA_DTYPE_F32, int8kv == 2 ? 3 : 1, sh, 0);
    sh[0] = B, sh[1] = maxb > 0 ? maxb : 1;
    fz_make(&f, &table, NSA_DTYPE_I32, 2, sh, 0);
    sh[0] = quant == 2 ? N * D : 1;
    fz_make(&f, &qs2, NSA_DTYPE_F32, 1, sh, 0);
    fz_make(&f, &qo2, NSA_DTYPE_F32, 1, sh, 0);

    fz_fill(&f, &q, 1.0f);
    fz_fill(&f, &k, 1.0f);
    fz_fill(&f, &v, 1.0f);
    fz_fill(&f, &mask, 1.0f);
    fz_fill(&f, &pse, 1.0f);
    fz_fill(&f, &aqs, 0.05f);
    fz_fill(&f, &aqo, 2.0f);
    fz_fill(&f, &qs2, 8.0f);
    fz_fill(&f, &qo2, 4.0f);
    {
        /* page ids: a shuffled permutation; rarely an id out of range */
        size_t n = table.bytes / 4, e;
        int32_t *ids = (int32_t *)table.buf;
        for (e = 0; e < n; e++)
            ids[e] = nblocks > 0 ? (int32_t)(e % (size_t)nblocks) : 0;
        for (e = n; e > 1; e--) {
            size_t j = (size_t)(fz_next(&f) % e);
            int32_t tmp = ids[e - 1];
            ids[e - 1] = ids[j];
            ids[j] = tmp;
        }
        if (n && fz_chance(&f, 24))
            ids[fz_u8(&f) % n] = fz_chance(&f, 128) ? -1 : (int32_t)nblocks;
    }
    if (use_mask)
        opt.atten_mask = &mask.t;
    if (use_pse)
        opt.pse_shift = &pse.t;
    if (int8kv) {
        opt.antiquant_scale = &aqs.t;
        if (fz_chance(&f, 160))
            opt.antiquant_offset = &aqo.t;
    }
    if (paged)
        opt.block_table = &table.t;
    if (quant) {
        opt.quant_scale2 = &qs2.t;
        if (fz_chance(&f, 160))
            opt.quant_offset2 = &qo2.t;
    }

    /* Rarely break a parameter after the shapes are fixed. */
    if (fz_chance(&f, 24)) {
        switch (fz_u8(&f) % 8) {
        case 0:
            p.num_heads = fz_bad_int(&f, N);
            break;
        case 1:
            p.num_key_value_heads = fz_bad_int(&f, kvN);
            break;
        case 2:
            p.block_size = fz_bad_int(&f, bs);
            break;
        case 3:
            lens[fz_range(&f, 0, 7)] = fz_chance(&f, 128) ? -1 : S + 1;
            break;
        case 4:
            p.actual_seq_lengths_count = fz_range(&f, -1, 8);
            if (!p.actual_seq_lengths)
                p.actual_seq_lengths = lens;
            break;
        case 5:
            p.inner_precise = fz_bad_int(&f, 1);
            break;
        case 6:
            p.has_kv_padding_size = 1;
            p.kv_padding_size = fz_bad_int(&f, 0);
            break;
        default:
            p.input_layout = fz_chance(&f, 128) ? NSA_LAYOUT_TND : (nsa_layout)9;
            break;
        }
    }
    views[0] = &q.t, views[1] = &k.t, views[2] = &v.t, views[3] = &mask.t, views[4] = &pse.t;
    views[5] = &aqs.t, views[6] = &aqo.t, views[7] = &table.t, views[8] = &qs2.t;
    views[9] = &qo2.t, views[10] = &out.t;
    fz_maybe_corrupt(&f, views, 11);
    floats[0] = &q, floats[1] = &k, floats[2] = &v, floats[3] = &pse, floats[4] = &aqs;
    fz_specials(&f, floats, 5, 8);
    outs[0] = &out;
    fz_canary(outs, 1);
    if (fz_verbose()) {
        fprintf(stderr, "nsa_incre_flash_attention: N %lld kvN %lld layout %s scale %g "
                "block_size %lld inner_precise %lld padding %d/%lld validation %d\n",
                (long long)p.num_heads, (long long)p.num_key_value_heads,
                nsa_layout_name(p.input_layout), p.scale_value, (long long)p.block_size,
                (long long)p.inner_precise, (int)p.has_kv_padding_size,
                (long long)p.kv_padding_size, (int)p.validation);
        fz_print_ints("actual_seq_lengths", p.actual_seq_lengths, p.actual_seq_lengths_count);
        fz_print_view("query", &q.t), fz_print_view("key", &k.t), fz_print_view("value", &v.t);
        for (i = 0; i < 7; i++) {
            static const char *names[] = {"atten_mask", "pse_shift", "antiquant_scale",
                                          "antiquant_offset", "block_table", "quant_scale2",
                                          "quant_offset2"};
            const nsa_tensor *o[7];
            o[0] = opt.atten_mask, o[1] = opt.pse_shift, o[2] = opt.antiquant_scale;
            o[3] = opt.antiquant_offset, o[4] = opt.block_table, o[5] = opt.quant_scale2;
            o[6] = opt.quant_offset2;
            if (o[i])
                fz_print_view(names[i], o[i]);
        }
        fz_print_view("attention_out", &out.t);
    }
    st = nsa_incre_flash_attention(ctx, &q.t, &k.t, &v.t, &opt, &p, &out.t);
    fz_print_result(st);
    fz_check(st, outs, 1);
    fz_count(st);
    fz_free(&q), fz_free(&k), fz_free(&v), fz_free(&mask), fz_free(&pse), fz_free(&aqs);
    fz_free(&aqo), fz_free(&table), fz_free(&qs2), fz_free(&qo2), fz_free(&out);
    return 0;
}
