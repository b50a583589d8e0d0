/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target: nsa_compress with random small shapes, block sizes, prefix sums, strides,
 * dtypes and contents (see fuzz_util.h for the decoding and the invariants checked). */
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz f = {data, size, 0};
    nsa_compress_params p = nsa_compress_params_default();
    fz_tensor in, w, out;
    fz_tensor *outs[1], *floats[2];
    nsa_tensor *views[3];
    int64_t seq[8], shape[3], rows = 0; /* seq: room for any corrupted count */
    int count, i;
    nsa_dtype dt, odt;
    nsa_context *ctx;
    nsa_status st;

    fz_seed(&f);
    ctx = fz_ctx(&f);
    dt = fz_float_dtype(&f);
    odt = fz_chance(&f, 160) ? dt : fz_float_dtype(&f);
    p.compress_block_size = 16 * fz_range(&f, 1, 4);
    p.compress_stride = 16 * fz_range(&f, 1, p.compress_block_size / 16);
    count = (int)fz_range(&f, 1, 4);
    fz_prefix(&f, seq, count, 0, 100);
    for (i = count; i < 8; i++)
        seq[i] = seq[count - 1];
    p.actual_seq_len = seq;
    p.actual_seq_len_count = count;
    p.validation = fz_chance(&f, 32) ? NSA_VALIDATE_STRICT : NSA_VALIDATE_DEFAULT;
    shape[0] = seq[count - 1];
    shape[1] = fz_range(&f, 1, 3);
    shape[2] = fz_dim(&f, 20);
    if (nsa_compress_output_rows(&p, &rows) != NSA_SUCCESS)
        abort(); /* valid parameters */

    /* Rarely break a parameter (after the shapes are fixed, so they no longer agree). */
    if (fz_chance(&f, 24)) {
        switch (fz_u8(&f) % 5) {
        case 0:
            p.compress_block_size = fz_bad_int(&f, p.compress_block_size);
            break;
        case 1:
            p.compress_stride = fz_bad_int(&f, p.compress_stride);
            break;
        case 2:
            fz_corrupt_prefix(&f, seq, count);
            break;
        case 3:
            p.actual_seq_len = fz_chance(&f, 128) ? NULL : seq;
            p.actual_seq_len_count = fz_bad_int(&f, count) & 7;
            break;
        default:
            p.validation = (nsa_validation)7;
            break;
        }
    }

    fz_make(&f, &in, dt, 3, shape, 0);
    {
        int64_t ws[2];
        ws[0] = (p.compress_block_size > 0 && p.compress_block_size <= 128)
                    ? p.compress_block_size
                    : 16; /* (l, N): a broken l keeps a plausible weight */
        ws[1] = shape[1];
        fz_make(&f, &w, dt, 2, ws, 0);
    }
    {
        int64_t os[3];
        os[0] = rows;
        os[1] = shape[1];
        os[2] = shape[2];
        fz_make(&f, &out, odt, 3, os, 1);
    }
    fz_fill(&f, &in, 2.0f);
    fz_fill(&f, &w, 1.0f);
    floats[0] = &in;
    floats[1] = &w;
    views[0] = &in.t;
    views[1] = &w.t;
    views[2] = &out.t;
    fz_maybe_corrupt(&f, views, 3);
    fz_specials(&f, floats, 2, 8);
    outs[0] = &out;
    fz_canary(outs, 1);
    if (fz_verbose()) {
        fprintf(stderr, "nsa_compress: l %lld d %lld validation %d\n",
                (long long)p.compress_block_size, (long long)p.compress_stride,
                (int)p.validation);
        fz_print_ints("actual_seq_len", p.actual_seq_len, p.actual_seq_len_count);
        fz_print_view("input", &in.t), fz_print_view("weight", &w.t);
        fz_print_view("output", &out.t);
    }
    st = nsa_compress(ctx, &in.t, &w.t, &p, &out.t);
    fz_print_result(st);
    fz_check(st, outs, 1);
    fz_count(st);
    fz_free(&in);
    fz_free(&w);
    fz_free(&out);
    return 0;
}
