/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target: nsa_compress_attention with random small batches, head groups, block
 * sizes, optional masks and selection-length arrays, strides, dtypes and contents (see
 * fuzz_util.h for the decoding and the invariants checked). */
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz f = {data, size, 0};
    nsa_compress_attention_params p = nsa_compress_attention_params_default();
    fz_tensor q, k, v, am, tm, out, topk, smax, ssum;
    fz_tensor *outs[4], *floats[3];
    nsa_tensor *views[9];
    int64_t qseq[8], kseq[8], sseq[8], sh[3];
    int64_t B, b, N1, N2, D, D2, m, min_sel = INT64_MAX, max_s1 = 0, max_s2 = 0, T1, T2;
    int use_am, use_tm;
    nsa_dtype dt;
    nsa_context *ctx;
    nsa_status st;

    fz_seed(&f);
    ctx = fz_ctx(&f);
    dt = fz_float_dtype(&f);
    p.compress_block_size = 16 * fz_range(&f, 1, 4);
    p.compress_stride = 16 * fz_range(&f, 1, p.compress_block_size / 16);
    /* l' a multiple of d with l <= l' <= 128 */
    {
        int64_t lo = (p.compress_block_size + p.compress_stride - 1) / p.compress_stride;
        int64_t hi = 128 / p.compress_stride;
        p.select_block_size = p.compress_stride * fz_range(&f, lo, hi);
    }
    m = p.select_block_size / p.compress_stride;
    B = fz_range(&f, 1, 3);
    for (b = 0; b < B; b++) {
        int64_t s1 = fz_range(&f, 0, 6), s2 = fz_range(&f, 1, 20), sel = (s2 + m - 1) / m;
        qseq[b] = (b ? qseq[b - 1] : 0) + s1;
        kseq[b] = (b ? kseq[b - 1] : 0) + s2;
        sseq[b] = (b ? sseq[b - 1] : 0) + sel;
        min_sel = sel < min_sel ? sel : min_sel;
        max_s1 = s1 > max_s1 ? s1 : max_s1;
        max_s2 = s2 > max_s2 ? s2 : max_s2;
    }
    for (b = B; b < 8; b++) {
        qseq[b] = qseq[B - 1];
        kseq[b] = kseq[B - 1];
        sseq[b] = sseq[B - 1];
    }
    T1 = qseq[B - 1];
    T2 = kseq[B - 1];
    N2 = fz_range(&f, 1, 2);
    N1 = N2 << fz_range(&f, 0, 2);
    D = fz_dim(&f, 24);
    D2 = fz_range(&f, 1, D);
    p.head_num = N1;
    p.select_block_count = fz_range(&f, 1, min_sel < 32 ? min_sel : 32);
    p.scale_value = fz_scale(&f, D);
    p.actual_seq_qlen = qseq;
    p.actual_seq_qlen_count = B;
    p.actual_cmp_seq_kvlen = kseq;
    p.actual_cmp_seq_kvlen_count = B;
    if (fz_chance(&f, 64)) {
        p.actual_sel_seq_kvlen = sseq;
        p.actual_sel_seq_kvlen_count = B;
    }
    p.validation = fz_chance(&f, 32) ? NSA_VALIDATE_STRICT : NSA_VALIDATE_DEFAULT;
    use_am = fz_chance(&f, 100);
    use_tm = fz_chance(&f, 64);

    sh[0] = T1, sh[1] = N1, sh[2] = D;
    fz_make(&f, &q, dt, 3, sh, 0);
    sh[0] = T2, sh[1] = N2, sh[2] = D;
    fz_make(&f, &k, dt, 3, sh, 0);
    sh[2] = D2;
    fz_make(&f, &v, dt, 3, sh, 0);
    sh[0] = max_s1, sh[1] = max_s2;
    fz_make(&f, &am, fz_chance(&f, 128) ? NSA_DTYPE_U8 : NSA_DTYPE_BOOL, 2, sh, 0);
    sh[1] = (max_s2 + m - 1) / m;
    fz_make(&f, &tm, NSA_DTYPE_U8, 2, sh, 0);
    sh[0] = T1, sh[1] = N1, sh[2] = D2;
    fz_make(&f, &out, fz_chance(&f, 200) ? dt : fz_float_dtype(&f), 3, sh, 1);
    sh[1] = N2, sh[2] = p.select_block_count;
    fz_make(&f, &topk, NSA_DTYPE_I32, 3, sh, 1);
    sh[1] = N1, sh[2] = 8;
    fz_make(&f, &smax, NSA_DTYPE_F32, 3, sh, 1);
    fz_make(&f, &ssum, NSA_DTYPE_F32, 3, sh, 1);
    fz_fill(&f, &q, 1.0f);
    fz_fill(&f, &k, 1.0f);
    fz_fill(&f, &v, 1.0f);
    fz_fill(&f, &am, 1.0f);
    fz_fill(&f, &tm, 1.0f);

    /* Rarely break a parameter after the shapes are fixed. */
    if (fz_chance(&f, 24)) {
        switch (fz_u8(&f) % 8) {
        case 0:
            p.compress_block_size = fz_bad_int(&f, p.compress_block_size);
            break;
        case 1:
            p.compress_stride = fz_bad_int(&f, p.compress_stride);
            break;
        case 2:
            p.select_block_size = fz_bad_int(&f, p.select_block_size);
            break;
        case 3:
            p.select_block_count = fz_bad_int(&f, p.select_block_count);
            break;
        case 4:
            p.head_num = fz_bad_int(&f, p.head_num);
            break;
        case 5:
            fz_corrupt_prefix(&f, fz_chance(&f, 128) ? qseq : fz_chance(&f, 128) ? kseq : sseq,
                              (int)B);
            break;
        case 6:
            p.actual_seq_qlen_count = fz_range(&f, -1, 8);
            break;
        default:
            p.actual_cmp_seq_kvlen = NULL;
            break;
        }
    }
    views[0] = &q.t, views[1] = &k.t, views[2] = &v.t, views[3] = &am.t, views[4] = &tm.t;
    views[5] = &out.t, views[6] = &topk.t, views[7] = &smax.t, views[8] = &ssum.t;
    fz_maybe_corrupt(&f, views, 9);
    floats[0] = &q, floats[1] = &k, floats[2] = &v;
    fz_specials(&f, floats, 3, 8);
    outs[0] = &out, outs[1] = &topk, outs[2] = &smax, outs[3] = &ssum;
    fz_canary(outs, 4);
    if (fz_verbose()) {
        fprintf(stderr, "nsa_compress_attention: scale %g head_num %lld l %lld d %lld l' %lld "
                "k %lld validation %d\n", p.scale_value, (long long)p.head_num,
                (long long)p.compress_block_size, (long long)p.compress_stride,
                (long long)p.select_block_size, (long long)p.select_block_count,
                (int)p.validation);
        fz_print_ints("actual_seq_qlen", p.actual_seq_qlen, p.actual_seq_qlen_count);
        fz_print_ints("actual_cmp_seq_kvlen", p.actual_cmp_seq_kvlen, p.actual_cmp_seq_kvlen_count);
        fz_print_ints("actual_sel_seq_kvlen", p.actual_sel_seq_kvlen, p.actual_sel_seq_kvlen_count);
        fz_print_view("query", &q.t), fz_print_view("key", &k.t), fz_print_view("value", &v.t);
        if (use_am)
            fz_print_view("atten_mask", &am.t);
        if (use_tm)
            fz_print_view("topk_mask", &tm.t);
        fz_print_view("attention_out", &out.t), fz_print_view("topk_indices", &topk.t);
        fz_print_view("softmax_max", &smax.t), fz_print_view("softmax_sum", &ssum.t);
    }
    st = nsa_compress_attention(ctx, &q.t, &k.t, &v.t, use_am ? &am.t : NULL,
                                use_tm ? &tm.t : NULL, &p, &out.t, &topk.t, &smax.t, &ssum.t);
    fz_print_result(st);
    fz_check(st, outs, 4);
    fz_count(st);
    fz_free(&q), fz_free(&k), fz_free(&v), fz_free(&am), fz_free(&tm);
    fz_free(&out), fz_free(&topk), fz_free(&smax), fz_free(&ssum);
    return 0;
}
