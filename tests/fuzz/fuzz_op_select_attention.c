/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target: nsa_select_attention (and its atten_mask form) with random small batches,
 * head groups, block sizes and counts, top-k indices (rarely out of range), causal or not,
 * optional statistics, strides, dtypes and contents (see fuzz_util.h for the decoding and the
 * invariants checked). */
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz f = {data, size, 0};
    nsa_select_attention_params p = nsa_select_attention_params_default();
    fz_tensor q, k, v, topk, am, out, smax, ssum;
    fz_tensor *outs[3], *floats[3];
    nsa_tensor *views[8];
    int64_t qseq[8], kseq[8], nblk[8], sh[3];
    int64_t B, b, N1, N2, D, Dv, T1, T2, t, i, bl;
    int use_stats, use_mask_form;
    nsa_dtype dt;
    nsa_context *ctx;
    nsa_status st;

    fz_seed(&f);
    ctx = fz_ctx(&f);
    dt = fz_float_dtype(&f);
    bl = 16 * fz_range(&f, 1, 4);
    B = fz_range(&f, 1, 3);
    for (b = 0; b < B; b++) {
        int64_t s1 = fz_range(&f, 0, 5);
        int64_t s2 = bl * fz_range(&f, 1, 3) + (fz_chance(&f, 64) ? fz_range(&f, 0, bl - 1) : 0);
        qseq[b] = (b ? qseq[b - 1] : 0) + s1;
        kseq[b] = (b ? kseq[b - 1] : 0) + s2;
        nblk[b] = s2 / bl;
    }
    for (b = B; b < 8; b++) {
        qseq[b] = qseq[B - 1];
        kseq[b] = kseq[B - 1];
    }
    T1 = qseq[B - 1];
    T2 = kseq[B - 1];
    N2 = fz_range(&f, 1, 2);
    N1 = N2 * fz_range(&f, 1, 3);
    D = fz_dim(&f, 24);
    Dv = fz_dim(&f, 24);
    p.head_num = fz_chance(&f, 128) ? N1 : 0;
    p.select_block_size = bl;
    p.select_block_count = fz_range(&f, 1, 4);
    p.scale_value = fz_scale(&f, D);
    p.actual_seq_qlen = qseq;
    p.actual_seq_qlen_count = B;
    p.actual_seq_kvlen = kseq;
    p.actual_seq_kvlen_count = B;
    p.sparse_mode = fz_chance(&f, 128) ? 2 : 0;
    p.validation = fz_chance(&f, 32) ? NSA_VALIDATE_STRICT : NSA_VALIDATE_DEFAULT;
    use_stats = !fz_chance(&f, 64);
    use_mask_form = fz_chance(&f, 48);

    sh[0] = T1, sh[1] = N1, sh[2] = D;
    fz_make(&f, &q, dt, 3, sh, 0);
    sh[0] = T2, sh[1] = N2, sh[2] = D;
    fz_make(&f, &k, dt, 3, sh, 0);
    sh[2] = Dv;
    fz_make(&f, &v, dt, 3, sh, 0);
    sh[0] = T1, sh[1] = N2, sh[2] = p.select_block_count;
    fz_make(&f, &topk, NSA_DTYPE_I32, 3, sh, 0);
    sh[0] = fz_range(&f, 1, 8), sh[1] = fz_range(&f, 1, 8);
    fz_make(&f, &am, fz_chance(&f, 128) ? NSA_DTYPE_BOOL : NSA_DTYPE_U8, 2, sh, 0);
    sh[0] = T1, sh[1] = N1, sh[2] = Dv;
    fz_make(&f, &out, fz_chance(&f, 200) ? dt : fz_float_dtype(&f), 3, sh, 1);
    sh[2] = 8;
    fz_make(&f, &smax, NSA_DTYPE_F32, 3, sh, 1);
    fz_make(&f, &ssum, NSA_DTYPE_F32, 3, sh, 1);
    fz_fill(&f, &q, 1.0f);
    fz_fill(&f, &k, 1.0f);
    fz_fill(&f, &v, 1.0f);
    fz_fill(&f, &am, 1.0f);
    /* Valid batch-local block ids for every element of the buffer (padding included). */
    {
        size_t n = topk.bytes / 4, e;
        int32_t *ids = (int32_t *)topk.buf;
        for (e = 0; e < n; e++)
            ids[e] = 0;
        for (t = 0; t < T1; t++) {
            for (b = 0; t >= qseq[b]; b++)
                ;
            for (i = 0; i < N2 * p.select_block_count; i++) {
                size_t at = (size_t)t * (size_t)topk.t.stride[0] +
                            (size_t)(i / p.select_block_count) * (size_t)topk.t.stride[1] +
                            (size_t)(i % p.select_block_count) * (size_t)topk.t.stride[2];
                ids[at] = (int32_t)(fz_next(&f) % (uint64_t)nblk[b]);
            }
        }
        /* Rarely an out-of-range id. */
        if (n && fz_chance(&f, 24)) {
            static const int32_t bad[] = {-1, 1 << 20, INT32_MAX, INT32_MIN, 3, 4, 5, 6};
            ids[fz_u16(&f) % n] = bad[fz_u8(&f) % 8];
        }
    }

    /* Rarely break a parameter after the shapes are fixed. */
    if (fz_chance(&f, 24)) {
        switch (fz_u8(&f) % 7) {
        case 0:
            p.select_block_size = fz_bad_int(&f, p.select_block_size);
            break;
        case 1:
            p.select_block_count = fz_bad_int(&f, p.select_block_count);
            break;
        case 2:
            p.head_num = fz_bad_int(&f, N1);
            break;
        case 3:
            fz_corrupt_prefix(&f, fz_chance(&f, 128) ? qseq : kseq, (int)B);
            break;
        case 4:
            p.actual_seq_kvlen_count = fz_range(&f, -1, 8);
            break;
        case 5:
            p.sparse_mode = fz_bad_int(&f, p.sparse_mode);
            break;
        default:
            if (fz_chance(&f, 128))
                p.actual_seq_qlen = NULL;
            else
                p.actual_seq_kvlen = NULL;
            break;
        }
    }
    views[0] = &q.t, views[1] = &k.t, views[2] = &v.t, views[3] = &topk.t, views[4] = &am.t;
    views[5] = &out.t, views[6] = &smax.t, views[7] = &ssum.t;
    fz_maybe_corrupt(&f, views, 8);
    floats[0] = &q, floats[1] = &k, floats[2] = &v;
    fz_specials(&f, floats, 3, 8);
    outs[0] = &out, outs[1] = use_stats ? &smax : NULL, outs[2] = use_stats ? &ssum : NULL;
    fz_canary(outs, 3);
    if (fz_verbose()) {
        fprintf(stderr, "nsa_select_attention%s: scale %g head_num %lld l' %lld k %lld "
                "sparse_mode %lld validation %d\n", use_mask_form ? "_with_mask" : "",
                p.scale_value, (long long)p.head_num, (long long)p.select_block_size,
                (long long)p.select_block_count, (long long)p.sparse_mode, (int)p.validation);
        fz_print_ints("actual_seq_qlen", p.actual_seq_qlen, p.actual_seq_qlen_count);
        fz_print_ints("actual_seq_kvlen", p.actual_seq_kvlen, p.actual_seq_kvlen_count);
        fz_print_view("query", &q.t), fz_print_view("key", &k.t), fz_print_view("value", &v.t);
        fz_print_view("topk_indices", &topk.t), fz_print_view("attention_out", &out.t);
        if (use_stats)
            fz_print_view("softmax_max", &smax.t), fz_print_view("softmax_sum", &ssum.t);
    }
    if (use_mask_form)
        st = nsa_select_attention_with_mask(ctx, &q.t, &k.t, &v.t, &topk.t,
                                            fz_chance(&f, 128) ? &am.t : NULL, &p, &out.t,
                                            use_stats ? &smax.t : NULL,
                                            use_stats ? &ssum.t : NULL);
    else
        st = nsa_select_attention(ctx, &q.t, &k.t, &v.t, &topk.t, &p, &out.t,
                                  use_stats ? &smax.t : NULL, use_stats ? &ssum.t : NULL);
    fz_print_result(st);
    fz_check(st, outs, 3);
    fz_count(st);
    fz_free(&q), fz_free(&k), fz_free(&v), fz_free(&topk), fz_free(&am);
    fz_free(&out), fz_free(&smax), fz_free(&ssum);
    return 0;
}
