/* SPDX-License-Identifier: Apache-2.0 */
/* A toy decode loop over a paged int8 KV cache with nsa_incre_flash_attention.
 *
 * Two sequences share one pool of cache pages. Each step appends the new token's key and
 * value (quantised to int8 with a per-channel scale) to the sequence's current page, taking
 * a fresh page from the pool when the page is full, then runs decode attention for both
 * sequences at once through the block table. The result of the last step is checked against
 * a plain float reference computed here. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nsa/nsa.h"

enum {
    BATCH = 2,
    HEADS = 8,    /* query heads */
    KV_HEADS = 2, /* GQA: 4 query heads per kv head */
    DIM = 64,
    BLOCK = 32,      /* tokens per page */
    POOL = 16,       /* pages in the pool */
    MAX_BLOCKS = 8,  /* pages per sequence (256 tokens at most) */
    STEPS = 70
};

/* Deterministic pseudo-random values in [-1, 1). */
static float rnd(unsigned *s)
{
    *s = *s * 1664525u + 1013904223u;
    return (float)((*s >> 8) & 0xffff) / 32768.0f - 1.0f;
}

int main(void)
{
    static int8_t kcache[POOL][BLOCK][KV_HEADS * DIM], vcache[POOL][BLOCK][KV_HEADS * DIM];
    static float kref[BATCH][MAX_BLOCKS * BLOCK][KV_HEADS * DIM];
    static float vref[BATCH][MAX_BLOCKS * BLOCK][KV_HEADS * DIM];
    int32_t table[BATCH][MAX_BLOCKS];
    int64_t lens[BATCH] = {0, 0};
    int next_page = 0, step, b, i;
    float scale[2][KV_HEADS * DIM]; /* [0] key, [1] value: per channel */
    float query[BATCH][HEADS * DIM], out[BATCH][HEADS * DIM];
    unsigned seed = 12345u;
    int64_t q_shape[3] = {BATCH, 1, HEADS * DIM};
    int64_t cache_shape[3] = {POOL, BLOCK, KV_HEADS * DIM};
    int64_t table_shape[2] = {BATCH, MAX_BLOCKS}, scale_shape[2] = {2, KV_HEADS * DIM};
    nsa_tensor q, k, v, o, bt, aq;
    nsa_ifa_params params = nsa_ifa_params_default();
    nsa_ifa_optional opt = NSA_IFA_OPTIONAL_INIT;
    double worst = 0.0;

    for (i = 0; i < KV_HEADS * DIM; i++) {
        scale[0][i] = 1.0f / 127.0f; /* values in [-1, 1] quantise to [-127, 127] */
        scale[1][i] = 1.0f / 127.0f;
    }
    memset(table, 0, sizeof table);

    q = nsa_tensor_contiguous(query, NSA_DTYPE_F32, 3, q_shape);
    o = nsa_tensor_contiguous(out, NSA_DTYPE_F32, 3, q_shape);
    k = nsa_tensor_contiguous(kcache, NSA_DTYPE_I8, 3, cache_shape);
    v = nsa_tensor_contiguous(vcache, NSA_DTYPE_I8, 3, cache_shape);
    bt = nsa_tensor_contiguous(table, NSA_DTYPE_I32, 2, table_shape);
    aq = nsa_tensor_contiguous(scale, NSA_DTYPE_F32, 2, scale_shape);
    opt.block_table = &bt;
    opt.antiquant_scale = &aq;
    params.num_heads = HEADS;
    params.num_key_value_heads = KV_HEADS;
    params.input_layout = NSA_LAYOUT_BSH;
    params.scale_value = 1.0 / sqrt((double)DIM);
    params.block_size = BLOCK;
    params.actual_seq_lengths = lens;
    params.actual_seq_lengths_count = BATCH;

    for (step = 0; step < STEPS; step++) {
        nsa_status st;
        for (b = 0; b < BATCH; b++) {
            int64_t pos;
            if (b == 1 && step % 3 == 0)
                continue; /* the second sequence grows more slowly */
            pos = lens[b];
            if (pos % BLOCK == 0) { /* current page full: take a new one */
                if (next_page == POOL || pos / BLOCK == MAX_BLOCKS) {
                    fprintf(stderr, "out of cache pages\n");
                    return 1;
                }
                table[b][pos / BLOCK] = next_page++;
            }
            for (i = 0; i < KV_HEADS * DIM; i++) {
                int8_t kq = (int8_t)lrintf(rnd(&seed) * 127.0f);
                int8_t vq = (int8_t)lrintf(rnd(&seed) * 127.0f);
                kcache[table[b][pos / BLOCK]][pos % BLOCK][i] = kq;
                vcache[table[b][pos / BLOCK]][pos % BLOCK][i] = vq;
                kref[b][pos][i] = (float)kq * scale[0][i];
                vref[b][pos][i] = (float)vq * scale[1][i];
            }
            lens[b] = pos + 1;
        }
        for (b = 0; b < BATCH; b++)
            for (i = 0; i < HEADS * DIM; i++)
                query[b][i] = rnd(&seed);
        st = nsa_incre_flash_attention(NULL, &q, &k, &v, &opt, &params, &o);
        if (st != NSA_SUCCESS) {
            fprintf(stderr, "step %d: %s: %s\n", step, nsa_status_string(st), nsa_last_error());
            return 1;
        }
    }

    /* Check the last step against softmax(q.k / sqrt(D)).v in double. */
    for (b = 0; b < BATCH; b++) {
        int n, d;
        int64_t j;
        for (n = 0; n < HEADS; n++) {
            int n2 = n / (HEADS / KV_HEADS);
            double mx = -1e300, sum = 0.0, acc[DIM], s[MAX_BLOCKS * BLOCK];
            for (j = 0; j < lens[b]; j++) {
                double dot = 0.0;
                for (d = 0; d < DIM; d++)
                    dot += (double)query[b][n * DIM + d] * (double)kref[b][j][n2 * DIM + d];
                s[j] = dot * params.scale_value;
                mx = s[j] > mx ? s[j] : mx;
            }
            for (d = 0; d < DIM; d++)
                acc[d] = 0.0;
            for (j = 0; j < lens[b]; j++) {
                double p = exp(s[j] - mx);
                sum += p;
                for (d = 0; d < DIM; d++)
                    acc[d] += p * (double)vref[b][j][n2 * DIM + d];
            }
            for (d = 0; d < DIM; d++) {
                double err = fabs(acc[d] / sum - (double)out[b][n * DIM + d]);
                worst = err > worst ? err : worst;
            }
        }
    }
    printf("decoded %d steps: lengths %lld and %lld, %d of %d pages used, max |error| %.2e\n",
           STEPS, (long long)lens[0], (long long)lens[1], next_page, POOL, worst);
    return worst < 1e-4 ? 0 : 1;
}
