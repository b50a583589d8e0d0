/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Flex attention on packed sequences: three documents of different lengths share one
 * (B = 1) batch row, and every token attends causally to at most the last 128 tokens of its
 * own document (sliding window inside each document).
 *
 * The mask is PyTorch's create_nested_block_mask(sliding_window) in C:
 * nsa_mask_mod_document_offsets() wraps the sliding window so that it sees positions local
 * to each document and never crosses a document boundary. The block mask is built
 * analytically (no Q x KV evaluation), and flex attention only visits its blocks.
 *
 * Build: cc 03_flex_sliding_window_document.c -lnsa -lm
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "nsa/nsa.h"

#define H 4
#define E 64
#define WINDOW 128

static int check(nsa_status st, const char *what)
{
    if (st != NSA_SUCCESS) {
        fprintf(stderr, "%s failed: %s: %s\n", what, nsa_status_string(st), nsa_last_error());
        return 1;
    }
    return 0;
}

/* One output row computed naively, for a sanity check of the example itself. */
static double naive_row_error(const float *q, const float *k, const float *v, const float *out,
                              int64_t T, int64_t h, int64_t t, int64_t doc_start)
{
    const double scale = 1.0 / sqrt((double)E);
    double m = -HUGE_VAL, sum = 0.0, o[E] = {0}, err = 0.0;
    int64_t j, e, lo = t - WINDOW + 1 > doc_start ? t - WINDOW + 1 : doc_start;
    for (j = lo; j <= t; j++) {
        double s = 0.0;
        for (e = 0; e < E; e++)
            s += (double)q[(h * T + t) * E + e] * (double)k[(h * T + j) * E + e];
        m = s * scale > m ? s * scale : m;
    }
    for (j = lo; j <= t; j++) {
        double s = 0.0, p;
        for (e = 0; e < E; e++)
            s += (double)q[(h * T + t) * E + e] * (double)k[(h * T + j) * E + e];
        p = exp(s * scale - m);
        sum += p;
        for (e = 0; e < E; e++)
            o[e] += p * (double)v[(h * T + j) * E + e];
    }
    for (e = 0; e < E; e++) {
        double d = fabs(o[e] / sum - (double)out[(h * T + t) * E + e]);
        err = d > err ? d : err;
    }
    return err;
}

int main(void)
{
    const int64_t offsets[4] = {0, 300, 480, 1000}; /* documents of 300, 180 and 520 tokens */
    const int64_t T = offsets[3];
    const int64_t shape[4] = {1, H, T, E};
    nsa_mask_mod *window = NULL, *packed = NULL;
    nsa_block_mask *bm = NULL;
    nsa_tensor tq, tk, tv, to, tl;
    float *q, *k, *v, *out, *lse;
    double sparsity, err = 0.0;
    size_t len = 0, i;
    char *text;
    int rc = 1;

    q = (float *)malloc(sizeof(float) * H * T * E);
    k = (float *)malloc(sizeof(float) * H * T * E);
    v = (float *)malloc(sizeof(float) * H * T * E);
    out = (float *)malloc(sizeof(float) * H * T * E);
    lse = (float *)malloc(sizeof(float) * H * T);
    if (!q || !k || !v || !out || !lse)
        return 1;
    for (i = 0; i < (size_t)(H * T * E); i++) {
        q[i] = (float)sin(0.37 * (double)i);
        k[i] = (float)cos(0.11 * (double)i);
        v[i] = (float)sin(0.05 * (double)i + 1.0);
    }

    /* sliding window inside each document */
    if (check(nsa_mask_mod_sliding_window(WINDOW, &window), "sliding window") ||
        check(nsa_mask_mod_document_offsets(offsets, NULL, 3, window, &packed), "document") ||
        check(nsa_block_mask_create(NULL, packed, 1, 1, T, T, 128, 128, &bm), "block mask"))
        goto done;

    nsa_block_mask_sparsity(bm, &sparsity);
    nsa_block_mask_to_string(bm, 20, 20, 4, NULL, 0, &len);
    text = (char *)malloc(len + 1);
    if (!text)
        goto done;
    nsa_block_mask_to_string(bm, 20, 20, 4, text, len + 1, &len);
    printf("block mask of %lld packed tokens, sparsity %.2f%%:\n%s\n", (long long)T, sparsity,
           text);
    free(text);

    tq = nsa_tensor_contiguous(q, NSA_DTYPE_F32, 4, shape);
    tk = nsa_tensor_contiguous(k, NSA_DTYPE_F32, 4, shape);
    tv = nsa_tensor_contiguous(v, NSA_DTYPE_F32, 4, shape);
    to = nsa_tensor_contiguous(out, NSA_DTYPE_F32, 4, shape);
    tl = nsa_tensor_contiguous(lse, NSA_DTYPE_F32, 3, shape);
    if (check(nsa_flex_attention(NULL, &tq, &tk, &tv, bm, NULL, NULL, &to, &tl), "flex"))
        goto done;

    /* spot-check rows at and around the document boundaries */
    {
        const int64_t rows[6] = {0, 299, 300, 479, 480, 999};
        const int64_t starts[6] = {0, 0, 300, 300, 480, 480};
        int r, h;
        for (r = 0; r < 6; r++)
            for (h = 0; h < H; h++) {
                double e = naive_row_error(q, k, v, out, T, h, rows[r], starts[r]);
                err = e > err ? e : err;
            }
    }
    printf("max |flex - naive| on boundary rows: %.3g\n", err);
    rc = err < 1e-4 ? 0 : 1;
done:
    nsa_block_mask_free(bm);
    nsa_mask_mod_free(window);
    nsa_mask_mod_free(packed);
    free(q);
    free(k);
    free(v);
    free(out);
    free(lse);
    return rc;
}
