/* SPDX-License-Identifier: Apache-2.0 */
/*
 * nsa_demo, the README's demo: one Native Sparse Attention layer (DeepSeek, arXiv 2502.11089)
 * on random data, through the public API only:
 *
 *   1. compress K and V: nsa_compress, windows of l = 32 tokens every d = 16
 *   2. compression branch + block selection: nsa_compress_attention (causal mask over the
 *      compressed keys; topk_mask forces the first block and the two local blocks, as the
 *      paper does), giving the top-k selection blocks of every token
 *   3. selection branch: nsa_select_attention over those blocks (l' = 64, k = 16, causal)
 *   4. sliding-window branch: nsa_flex_attention with a sliding_window(512) block mask
 *   5. gated sum of the three branches (sigmoid gates, random here; a model computes them
 *      from the hidden state)
 *
 * It prints the shapes, the time of each step and a checksum of the result.
 */
#define _POSIX_C_SOURCE 200809L /* clock_gettime */

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <nsa/nsa.h>

#define T 2048     /* tokens (one sequence) */
#define N1 16      /* query heads */
#define N2 1       /* kv heads (G = 16 query heads share one kv head) */
#define D 192      /* q / k head dim */
#define DV 128     /* v head dim */
#define CMP_L 32   /* compression block l */
#define CMP_D 16   /* compression stride d */
#define SEL_L 64   /* selection block l' */
#define SEL_K 16   /* selected blocks k */
#define WINDOW 512 /* sliding window w */

#define CHECK(call)                                                                          \
    do {                                                                                     \
        nsa_status st_ = (call);                                                             \
        if (st_ != NSA_SUCCESS) {                                                            \
            fprintf(stderr, "%s failed: %s: %s\n", #call, nsa_status_string(st_),            \
                    nsa_last_error());                                                       \
            exit(1);                                                                         \
        }                                                                                    \
    } while (0)

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static float *random_floats(size_t n, unsigned seed, float amplitude)
{
    float *x = (float *)malloc(n * sizeof(float));
    uint32_t s = seed * 2654435761u + 1u;
    size_t i;
    if (!x) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    for (i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        x[i] = amplitude * ((float)(s >> 8) / 16777216.0f * 2.0f - 1.0f);
    }
    return x;
}

/* One line of the report: step, what it produced, milliseconds. */
static void report(const char *step, const char *what, double seconds)
{
    printf("%-22s %-52s %8.2f ms\n", step, what, seconds * 1e3);
}

static void *zeros(size_t bytes)
{
    void *p = calloc(bytes ? bytes : 1, 1);
    if (!p) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    return p;
}

int main(void)
{
    const int64_t q_shape[3] = {T, N1, D}, k_shape[3] = {T, N2, D}, v_shape[3] = {T, N2, DV};
    const int64_t w_shape[2] = {CMP_L, N2}, o_shape[3] = {T, N1, DV};
    const int64_t cum_t = T;
    float *q = random_floats((size_t)T * N1 * D, 1, 1.0f);
    float *k = random_floats((size_t)T * N2 * D, 2, 1.0f);
    float *v = random_floats((size_t)T * N2 * DV, 3, 1.0f);
    float *wk = random_floats((size_t)CMP_L * N2, 4, 1.0f / CMP_L);
    float *wv = random_floats((size_t)CMP_L * N2, 5, 1.0f / CMP_L);
    float *gates = random_floats((size_t)T * N1 * 3, 6, 2.0f);
    float *cmp_out = (float *)zeros(sizeof(float) * T * N1 * DV);
    float *sel_out = (float *)zeros(sizeof(float) * T * N1 * DV);
    float *win_out = (float *)zeros(sizeof(float) * T * N1 * DV);
    float *out = (float *)zeros(sizeof(float) * T * N1 * DV);
    float *cmp_max = (float *)zeros(sizeof(float) * T * N1 * 8); /* statistics the backward */
    float *cmp_sum = (float *)zeros(sizeof(float) * T * N1 * 8); /* pass would use */
    nsa_tensor tq = nsa_tensor_contiguous(q, NSA_DTYPE_F32, 3, q_shape);
    nsa_tensor tk = nsa_tensor_contiguous(k, NSA_DTYPE_F32, 3, k_shape);
    nsa_tensor tv = nsa_tensor_contiguous(v, NSA_DTYPE_F32, 3, v_shape);
    nsa_tensor twk = nsa_tensor_contiguous(wk, NSA_DTYPE_F32, 2, w_shape);
    nsa_tensor twv = nsa_tensor_contiguous(wv, NSA_DTYPE_F32, 2, w_shape);
    nsa_tensor tcmp_out = nsa_tensor_contiguous(cmp_out, NSA_DTYPE_F32, 3, o_shape);
    nsa_tensor tsel_out = nsa_tensor_contiguous(sel_out, NSA_DTYPE_F32, 3, o_shape);
    nsa_compress_params cp = nsa_compress_params_default();
    nsa_compress_attention_params cap = nsa_compress_attention_params_default();
    nsa_select_attention_params sp = nsa_select_attention_params_default();
    nsa_flex_params fp = nsa_flex_params_default();
    nsa_mask_mod *window = NULL;
    nsa_block_mask *block_mask = NULL;
    int64_t tc = 0, sel_blocks, s, j, i;
    float *k_cmp, *v_cmp;
    uint8_t *atten_mask, *topk_mask;
    int32_t *topk;
    double t0, t_cmp, t_catt, t_sel, t_win, t_gate, checksum = 0.0;
    const float scale = 1.0f / sqrtf((float)D);
    char what[128];

    printf("libnsa %s: %s\n", nsa_version_string(), nsa_build_info());
    printf("NSA layer: T=%d tokens, %d query heads on %d kv head(s), D=%d, Dv=%d\n", T, N1, N2,
           D, DV);
    printf("  compression l=%d d=%d, selection l'=%d k=%d, window w=%d\n", CMP_L, CMP_D, SEL_L,
           SEL_K, WINDOW);

    /* 1. compress K and V */
    cp.compress_block_size = CMP_L;
    cp.compress_stride = CMP_D;
    cp.actual_seq_len = &cum_t;
    cp.actual_seq_len_count = 1;
    CHECK(nsa_compress_output_rows(&cp, &tc));
    {
        const int64_t kc_shape[3] = {tc, N2, D}, vc_shape[3] = {tc, N2, DV};
        nsa_tensor tkc, tvc;
        k_cmp = (float *)zeros(sizeof(float) * (size_t)tc * N2 * D);
        v_cmp = (float *)zeros(sizeof(float) * (size_t)tc * N2 * DV);
        tkc = nsa_tensor_contiguous(k_cmp, NSA_DTYPE_F32, 3, kc_shape);
        tvc = nsa_tensor_contiguous(v_cmp, NSA_DTYPE_F32, 3, vc_shape);
        t0 = now();
        CHECK(nsa_compress(NULL, &tk, &twk, &cp, &tkc));
        CHECK(nsa_compress(NULL, &tv, &twv, &cp, &tvc));
        t_cmp = now() - t0;
        snprintf(what, sizeof what, "K (%d,%d,%d) -> (%lld,%d,%d), V -> (%lld,%d,%d)", T, N2, D,
                 (long long)tc, N2, D, (long long)tc, N2, DV);
        report("1. compress", what, t_cmp);

        /* 2. compression attention and top-k. Query s sees compressed key j once the window
         *    j covers only past tokens: j*d + l - 1 <= s. Selection block J (l' tokens) of
         *    query s is forced when it is block 0 or one of the two local blocks s/l', s/l'-1. */
        sel_blocks = (tc + SEL_L / CMP_D - 1) / (SEL_L / CMP_D);
        atten_mask = (uint8_t *)zeros((size_t)T * (size_t)tc);
        topk_mask = (uint8_t *)zeros((size_t)T * (size_t)sel_blocks);
        topk = (int32_t *)zeros(sizeof(int32_t) * T * N2 * SEL_K);
        for (s = 0; s < T; s++) {
            const int64_t local = s / SEL_L;
            for (j = 0; j < tc; j++)
                atten_mask[s * tc + j] = j * CMP_D + CMP_L - 1 > s;
            topk_mask[s * sel_blocks] = 1;
            if (local < sel_blocks)
                topk_mask[s * sel_blocks + local] = 1;
            if (local >= 1 && local - 1 < sel_blocks)
                topk_mask[s * sel_blocks + local - 1] = 1;
        }
        {
            const int64_t am_shape[2] = {T, tc}, tm_shape[2] = {T, sel_blocks};
            const int64_t ti_shape[3] = {T, N2, SEL_K}, st_shape[3] = {T, N1, 8};
            const int64_t cum_cmp = tc;
            nsa_tensor tam = nsa_tensor_contiguous(atten_mask, NSA_DTYPE_U8, 2, am_shape);
            nsa_tensor ttm = nsa_tensor_contiguous(topk_mask, NSA_DTYPE_U8, 2, tm_shape);
            nsa_tensor tti = nsa_tensor_contiguous(topk, NSA_DTYPE_I32, 3, ti_shape);
            nsa_tensor tmx = nsa_tensor_contiguous(cmp_max, NSA_DTYPE_F32, 3, st_shape);
            nsa_tensor tsm = nsa_tensor_contiguous(cmp_sum, NSA_DTYPE_F32, 3, st_shape);
            cap.scale_value = (double)scale;
            cap.head_num = N1;
            cap.compress_block_size = CMP_L;
            cap.compress_stride = CMP_D;
            cap.select_block_size = SEL_L;
            cap.select_block_count = SEL_K;
            cap.actual_seq_qlen = &cum_t;
            cap.actual_seq_qlen_count = 1;
            cap.actual_cmp_seq_kvlen = &cum_cmp;
            cap.actual_cmp_seq_kvlen_count = 1;
            t0 = now();
            CHECK(nsa_compress_attention(NULL, &tq, &tkc, &tvc, &tam, &ttm, &cap, &tcmp_out,
                                         &tti, &tmx, &tsm));
            t_catt = now() - t0;
            snprintf(what, sizeof what, "out (%d,%d,%d), topk_indices (%d,%d,%d) of %lld blocks", T,
                     N1, DV, T, N2, SEL_K, (long long)sel_blocks);
            report("2. compress_attention", what, t_catt);

            /* 3. selection attention over the chosen blocks of the original K, V */
            sp.scale_value = (double)scale;
            sp.head_num = N1;
            sp.select_block_size = SEL_L;
            sp.select_block_count = SEL_K;
            sp.actual_seq_qlen = &cum_t;
            sp.actual_seq_qlen_count = 1;
            sp.actual_seq_kvlen = &cum_t;
            sp.actual_seq_kvlen_count = 1;
            sp.sparse_mode = 2;
            t0 = now();
            CHECK(nsa_select_attention(NULL, &tq, &tk, &tv, &tti, &sp, &tsel_out, NULL, NULL));
            t_sel = now() - t0;
            snprintf(what, sizeof what, "out (%d,%d,%d), %d blocks x %d keys per token", T, N1, DV,
                     SEL_K, SEL_L);
            report("3. select_attention", what, t_sel);
        }
    }

    /* 4. sliding window through the flex engine: the TND buffers seen as (B=1, H, L, E) */
    {
        const int64_t fq_shape[4] = {1, N1, T, D}, fq_stride[4] = {0, D, N1 * D, 1};
        const int64_t fk_shape[4] = {1, N2, T, D}, fk_stride[4] = {0, D, N2 * D, 1};
        const int64_t fv_shape[4] = {1, N2, T, DV}, fv_stride[4] = {0, DV, N2 * DV, 1};
        const int64_t fo_shape[4] = {1, N1, T, DV}, fo_stride[4] = {0, DV, N1 * DV, 1};
        nsa_tensor fq = nsa_tensor_strided(q, NSA_DTYPE_F32, 4, fq_shape, fq_stride);
        nsa_tensor fk = nsa_tensor_strided(k, NSA_DTYPE_F32, 4, fk_shape, fk_stride);
        nsa_tensor fv = nsa_tensor_strided(v, NSA_DTYPE_F32, 4, fv_shape, fv_stride);
        nsa_tensor fo = nsa_tensor_strided(win_out, NSA_DTYPE_F32, 4, fo_shape, fo_stride);
        t0 = now();
        CHECK(nsa_mask_mod_sliding_window(WINDOW, &window));
        CHECK(nsa_block_mask_create(NULL, window, 1, 1, T, T, 128, 128, &block_mask));
        fp.scale = scale;
        fp.enable_gqa = 1;
        CHECK(nsa_flex_attention(NULL, &fq, &fk, &fv, block_mask, NULL, &fp, &fo, NULL));
        t_win = now() - t0;
        snprintf(what, sizeof what, "out (%d,%d,%d), window %d via flex_attention", T, N1, DV,
                 WINDOW);
        report("4. sliding window", what, t_win);
        nsa_block_mask_free(block_mask);
        nsa_mask_mod_free(window);
    }

    /* 5. gated sum: o = g_cmp * cmp + g_sel * sel + g_win * win, g = sigmoid(gate logits) */
    t0 = now();
    for (i = 0; i < (int64_t)T * N1; i++) {
        const float g_cmp = 1.0f / (1.0f + expf(-gates[3 * i]));
        const float g_sel = 1.0f / (1.0f + expf(-gates[3 * i + 1]));
        const float g_win = 1.0f / (1.0f + expf(-gates[3 * i + 2]));
        for (j = 0; j < DV; j++) {
            const int64_t e = i * DV + j;
            out[e] = g_cmp * cmp_out[e] + g_sel * sel_out[e] + g_win * win_out[e];
            checksum += (double)out[e];
        }
    }
    t_gate = now() - t0;
    snprintf(what, sizeof what, "out (%d,%d,%d)", T, N1, DV);
    report("5. gated sum", what, t_gate);
    printf("total %.2f ms, checksum %.6f\n",
           (t_cmp + t_catt + t_sel + t_win + t_gate) * 1e3, checksum);
    if (!(checksum == checksum)) {
        fprintf(stderr, "the output holds NaN\n");
        return 1;
    }

    free(q);
    free(k);
    free(v);
    free(wk);
    free(wv);
    free(gates);
    free(cmp_out);
    free(sel_out);
    free(win_out);
    free(out);
    free(cmp_max);
    free(cmp_sum);
    free(k_cmp);
    free(v_cmp);
    free(atten_mask);
    free(topk_mask);
    free(topk);
    return 0;
}
