/* SPDX-License-Identifier: Apache-2.0 */
/* The shared online-softmax kernel against a float64 naive attention, on randomised shapes:
 * odd lengths, D != Dv, several blocks of ragged lengths, strided rows and channels, masked and
 * fully masked rows, f16 / bf16 / int8 K/V, f16 output, both GEMM backends, and the few-row
 * (decode) path that needs no GEMM. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blas/blas.h"
#include "kernel/attn_fused.h"
#include "kernel/attn_tile.h"
#include "kernel/simd.h"
#include "test_util.h"

typedef struct kcase {
    int m, d, dv, nblocks, chunk;
    nsa_dtype kv_dtype, o_dtype;
    int col_stride; /* channel stride of Q, K, V, O (1 = contiguous) */
    int mask;       /* 1: causal-like mask from a hook; 2: also fully masked rows */
    nsa_dtype q_dtype; /* f32, or bf16 (rounded queries): the few-row path's bf16 dots */
} kcase;

/* Mask hook: key kv is dropped for row r when kv > r + q_start (a staircase), and rows listed
 * as dead (r % 5 == 3 when mask == 2) drop everything. */
static void mask_hook(const nsa_attn_tile *tile, int32_t block, int64_t kv0, int32_t n, float *s,
                      int64_t lds)
{
    const kcase *kc = (const kcase *)tile->user;
    int32_t r, j;
    (void)block;
    for (r = 0; r < tile->m; r++)
        for (j = 0; j < n; j++)
            if (kv0 + j > r + tile->q_start || (kc->mask == 2 && r % 5 == 3))
                s[r * lds + j] = -INFINITY;
}

static int masked(const kcase *kc, int64_t q_start, int r, int64_t kv)
{
    if (!kc->mask)
        return 0;
    return kv > r + q_start || (kc->mask == 2 && r % 5 == 3);
}

/* One tile with its data: queries, K/V blocks laid out back to back (logical keys numbered
 * consecutively), outputs and statistics, and the float values the reference reads. */
typedef struct kfixture {
    const kcase *kc;
    int lens[8], total;
    int64_t q_start;
    float *qf, *kf, *vf, *kscale, *vscale, *koff, *voff;
    void *kraw, *vraw, *out, *qraw;
    const void **qrows;
    void **orows;
    nsa_kv_block blocks[8];
    nsa_attn_tile tile;
    float *rmax, *rsum, *rlse;
} kfixture;

/* Block lengths from `lens_seed`, values from `seed` (the same stream when they are equal), so
 * that tiles of a group can share lengths and differ in data. */
static void make_case(kfixture *f, const kcase *kc, uint64_t seed, uint64_t lens_seed)
{
    test_rng rng;
    const int cs = kc->col_stride;
    const float scale = 0.3f;
    const nsa_dtype kvt = kc->kv_dtype;
    const size_t kes = nsa_dtype_size(kvt);
    int b, r, j, c;
    nsa_attn_tile *tile = &f->tile;

    memset(f, 0, sizeof *f);
    f->kc = kc;
    f->q_start = 5;
    test_rng_seed(&rng, lens_seed);
    for (b = 0; b < kc->nblocks; b++) {
        f->lens[b] = (int)test_rng_int(&rng, 1, 150);
        f->total += f->lens[b];
    }
    if (seed != lens_seed)
        test_rng_seed(&rng, seed);
    f->qf = calloc((size_t)kc->m * kc->d * cs, sizeof(float));
    f->kf = calloc((size_t)f->total * kc->d * cs, sizeof(float));
    f->vf = calloc((size_t)f->total * kc->dv * cs, sizeof(float));
    f->kscale = malloc(sizeof(float) * kc->d);
    f->koff = malloc(sizeof(float) * kc->d);
    f->vscale = malloc(sizeof(float) * kc->dv);
    f->voff = malloc(sizeof(float) * kc->dv);
    for (c = 0; c < kc->d; c++) {
        f->kscale[c] = test_rng_uniform(&rng, 0.005f, 0.02f);
        f->koff[c] = test_rng_uniform(&rng, -3.0f, 3.0f);
    }
    for (c = 0; c < kc->dv; c++) {
        f->vscale[c] = test_rng_uniform(&rng, 0.005f, 0.02f);
        f->voff[c] = test_rng_uniform(&rng, -3.0f, 3.0f);
    }
    for (r = 0; r < kc->m * kc->d; r++)
        f->qf[(size_t)r * cs] = test_rng_uniform(&rng, -1.0f, 1.0f);
    if (kc->q_dtype == NSA_DTYPE_BF16) {
        test_round_to_dtype(f->qf, (int64_t)kc->m * kc->d * cs, NSA_DTYPE_BF16);
        f->qraw = test_to_dtype(f->qf, (int64_t)kc->m * kc->d * cs, NSA_DTYPE_BF16);
    }
    /* K, V values: in int8 cases integers, else random reals rounded to the dtype. */
    f->kraw = calloc((size_t)f->total * kc->d * cs, kes);
    f->vraw = calloc((size_t)f->total * kc->dv * cs, kes);
    for (j = 0; j < f->total * kc->d; j++) {
        float x = kvt == NSA_DTYPE_I8 ? (float)test_rng_int(&rng, -128, 127)
                                      : test_rng_uniform(&rng, -1.0f, 1.0f);
        f->kf[(size_t)j * cs] = x;
    }
    for (j = 0; j < f->total * kc->dv; j++) {
        float x = kvt == NSA_DTYPE_I8 ? (float)test_rng_int(&rng, -128, 127)
                                      : test_rng_uniform(&rng, -1.0f, 1.0f);
        f->vf[(size_t)j * cs] = x;
    }
    if (kvt == NSA_DTYPE_I8) {
        for (j = 0; j < f->total * kc->d * cs; j++)
            ((int8_t *)f->kraw)[j] = (int8_t)f->kf[j];
        for (j = 0; j < f->total * kc->dv * cs; j++)
            ((int8_t *)f->vraw)[j] = (int8_t)f->vf[j];
    } else {
        assert_int_equal(nsa_convert(f->kf, NSA_DTYPE_F32, 1, f->kraw, kvt, 1,
                                     (int64_t)f->total * kc->d * cs, NSA_ROUND_NEAREST_EVEN),
                         NSA_SUCCESS);
        assert_int_equal(nsa_convert(f->vf, NSA_DTYPE_F32, 1, f->vraw, kvt, 1,
                                     (int64_t)f->total * kc->dv * cs, NSA_ROUND_NEAREST_EVEN),
                         NSA_SUCCESS);
        test_round_to_dtype(f->kf, (int64_t)f->total * kc->d * cs, kvt);
        test_round_to_dtype(f->vf, (int64_t)f->total * kc->dv * cs, kvt);
    }

    f->qrows = malloc(sizeof(void *) * kc->m);
    f->orows = malloc(sizeof(void *) * kc->m);
    f->out = calloc((size_t)kc->m * kc->dv * cs, nsa_dtype_size(kc->o_dtype));
    for (r = 0; r < kc->m; r++) {
        f->qrows[r] = f->qraw ? (const void *)((uint16_t *)f->qraw + (size_t)r * kc->d * cs)
                              : (const void *)(f->qf + (size_t)r * kc->d * cs);
        f->orows[r] = (char *)f->out + (size_t)r * kc->dv * cs * nsa_dtype_size(kc->o_dtype);
    }
    {
        int start = 0;
        for (b = 0; b < kc->nblocks; b++) {
            nsa_kv_block *blk = &f->blocks[b];
            blk->k = (char *)f->kraw + (size_t)start * kc->d * cs * kes;
            blk->v = (char *)f->vraw + (size_t)start * kc->dv * cs * kes;
            blk->k_row_stride = (int64_t)kc->d * cs;
            blk->k_col_stride = cs;
            blk->v_row_stride = (int64_t)kc->dv * cs;
            blk->v_col_stride = cs;
            blk->kv_start = start;
            blk->len = f->lens[b];
            blk->flags = NSA_KV_BLOCK_PARTIAL;
            start += f->lens[b];
        }
    }
    f->rmax = malloc(sizeof(float) * kc->m);
    f->rsum = malloc(sizeof(float) * kc->m);
    f->rlse = malloc(sizeof(float) * kc->m);
    tile->m = kc->m;
    tile->q_rows = f->qrows;
    tile->q_col_stride = cs;
    tile->q_dtype = f->qraw ? NSA_DTYPE_BF16 : NSA_DTYPE_F32;
    tile->d = kc->d;
    tile->dv = kc->dv;
    tile->scale = scale;
    tile->kv_dtype = kvt;
    tile->k_dequant.scale = f->kscale;
    tile->k_dequant.scale_stride = 1;
    tile->k_dequant.offset = f->koff;
    tile->k_dequant.offset_stride = 1;
    tile->v_dequant.scale = f->vscale;
    tile->v_dequant.scale_stride = 1;
    tile->v_dequant.offset = f->voff;
    tile->v_dequant.offset_stride = 1;
    tile->blocks = f->blocks;
    tile->nblocks = kc->nblocks;
    tile->kv_chunk = kc->chunk;
    tile->mask_hook = kc->mask ? mask_hook : NULL;
    tile->user = (void *)kc;
    tile->q_start = f->q_start;
    tile->o_rows = f->orows;
    tile->o_col_stride = cs;
    tile->o_dtype = kc->o_dtype;
    tile->row_max = f->rmax;
    tile->row_sum = f->rsum;
    tile->row_lse = f->rlse;
}

/* The tile's outputs and statistics against a float64 naive attention. */
static void check_case(const kfixture *f)
{
    const kcase *kc = f->kc;
    const int cs = kc->col_stride;
    const nsa_dtype kvt = kc->kv_dtype;
    const double scale = f->tile.scale;
    double *ref = malloc(sizeof(double) * kc->m * kc->dv);
    float *got = test_to_f32(f->out, (int64_t)kc->m * kc->dv * cs, kc->o_dtype);
    int r, j, c;
    for (r = 0; r < kc->m; r++) {
        double mx = -INFINITY, sum = 0.0;
        double *s = malloc(sizeof(double) * f->total);
        double *o = ref + (size_t)r * kc->dv;
        for (j = 0; j < f->total; j++) {
            double dot = 0.0;
            for (c = 0; c < kc->d; c++) {
                double k = f->kf[((size_t)j * kc->d + c) * cs];
                if (kvt == NSA_DTYPE_I8)
                    k = (k + f->koff[c]) * f->kscale[c];
                dot += (double)f->qf[((size_t)r * kc->d + c) * cs] * k;
            }
            s[j] = masked(kc, f->q_start, r, j) ? -INFINITY : dot * scale;
            if (s[j] > mx)
                mx = s[j];
        }
        for (c = 0; c < kc->dv; c++)
            o[c] = 0.0;
        if (mx != -INFINITY) {
            for (j = 0; j < f->total; j++) {
                double p = exp(s[j] - mx);
                sum += p;
                for (c = 0; c < kc->dv; c++) {
                    double v = f->vf[((size_t)j * kc->dv + c) * cs];
                    if (kvt == NSA_DTYPE_I8)
                        v = (v + f->voff[c]) * f->vscale[c];
                    o[c] += p * v;
                }
            }
            for (c = 0; c < kc->dv; c++)
                o[c] /= sum;
        }
        /* statistics: relative 1e-5 (fp32 accumulation over <= 1200 terms) */
        if (mx == -INFINITY) {
            assert_true(f->rmax[r] == -INFINITY);
            assert_true(f->rsum[r] == 0.0f);
            assert_true(f->rlse[r] == -INFINITY);
        } else {
            assert_true(fabs(f->rmax[r] - mx) <= 1e-5 * fmax(1.0, fabs(mx)));
            assert_true(fabs(f->rsum[r] - sum) <= 1e-5 * sum);
            assert_true(fabs(f->rlse[r] - (mx + log(sum))) <=
                        1e-5 * fmax(1.0, fabs(mx + log(sum))));
        }
        free(s);
    }
    {
        /* compare only the strided positions */
        float *dense = malloc(sizeof(float) * kc->m * kc->dv);
        for (r = 0; r < kc->m * kc->dv; r++)
            dense[r] = got[(size_t)r * cs];
        /* fp32 accumulation error: 1e-5 of the output scale. Outputs are convex combinations
         * of V rows, so the scale is the largest |V| entry (1 for real-valued V, ~2.6 for
         * int8 V after dequantisation). */
        const double noise = 1e-5 * (kvt == NSA_DTYPE_I8 ? 131.0 * 0.02 : 1.0);
        if (kc->o_dtype == NSA_DTYPE_F32) {
            test_assert_close("out", dense, ref, (int64_t)kc->m * kc->dv, noise, 1e-5);
        } else {
            /* narrow outputs: the fp32 result (within `noise` of the reference) is rounded
             * once, so within 1 ulp of the output dtype of a value in [ref - noise,
             * ref + noise]; near zero, where cancellation leaves the result far below the
             * scale, the fp32 noise is larger than an ulp */
            for (r = 0; r < kc->m * kc->dv; r++) {
                double lo = test_ulp_diff(dense[r], ref[r] - noise, kc->o_dtype);
                double hi = test_ulp_diff(dense[r], ref[r] + noise, kc->o_dtype);
                int between = (dense[r] >= ref[r] - noise) && (dense[r] <= ref[r] + noise);
                if (!(between || lo <= 1.01 || hi <= 1.01))
                    fail_msg("out[%d]: got %.9g, reference %.9g (+- %.1g): %.1f ulps", r,
                             dense[r], ref[r], noise, lo < hi ? lo : hi);
            }
        }
        free(dense);
    }
    free(ref);
    free(got);
}

static void free_case(kfixture *f)
{
    free(f->rmax);
    free(f->rsum);
    free(f->rlse);
    free(f->qrows);
    free(f->orows);
    free(f->out);
    free(f->qf);
    free(f->qraw);
    free(f->kf);
    free(f->vf);
    free(f->kraw);
    free(f->vraw);
    free(f->kscale);
    free(f->koff);
    free(f->vscale);
    free(f->voff);
}

static void run_case(const kcase *kc, uint64_t seed, int builtin)
{
    kfixture f;
    void *scratch = NULL;
    make_case(&f, kc, seed, seed);
    assert_int_equal(posix_memalign(&scratch, 64, nsa_attn_scratch_size(kc->m, kc->d, kc->dv,
                                                                        kc->chunk)),
                     0);
    nsa_blas_force_builtin(builtin);
    nsa_attn_tile_run(&f.tile, scratch);
    nsa_blas_force_builtin(0);
    check_case(&f);
    free(scratch);
    free_case(&f);
}

static const kcase k_cases[] = {
    {1, 8, 8, 1, 64, NSA_DTYPE_F32, NSA_DTYPE_F32, 1, 0, NSA_DTYPE_F32},
    {7, 33, 17, 3, 64, NSA_DTYPE_F32, NSA_DTYPE_F32, 1, 0, NSA_DTYPE_F32},
    {64, 128, 128, 4, 64, NSA_DTYPE_F32, NSA_DTYPE_F32, 1, 1, NSA_DTYPE_F32},
    {16, 192, 128, 5, 64, NSA_DTYPE_F32, NSA_DTYPE_F32, 1, 2, NSA_DTYPE_F32},
    {13, 64, 40, 3, 32, NSA_DTYPE_F32, NSA_DTYPE_F32, 3, 2, NSA_DTYPE_F32},
    {9, 48, 48, 2, 128, NSA_DTYPE_F16, NSA_DTYPE_F32, 1, 1, NSA_DTYPE_F32},
    {9, 48, 24, 3, 64, NSA_DTYPE_BF16, NSA_DTYPE_F32, 2, 2, NSA_DTYPE_F32},
    {8, 128, 128, 3, 64, NSA_DTYPE_I8, NSA_DTYPE_F32, 1, 1, NSA_DTYPE_F32},
    {5, 16, 16, 2, 16, NSA_DTYPE_F32, NSA_DTYPE_F16, 1, 0, NSA_DTYPE_F32},
    {5, 16, 32, 2, 64, NSA_DTYPE_F32, NSA_DTYPE_BF16, 2, 1, NSA_DTYPE_F32},
};

/* Few-row tiles (decode, select) take the kernel's BLAS-free path on AVX2 / AVX-512 CPUs: row
 * counts 1..16 (pairs and an odd row; P.V in groups of 8 rows), d % 32 == 16 (half steps of
 * the bf16 dot products), dv not a multiple of 64 (single-vector blocks), every K/V dtype,
 * masks, several chunks per block. */
static const kcase few_row_cases[] = {
    {1, 128, 128, 3, 128, NSA_DTYPE_BF16, NSA_DTYPE_F32, 1, 0, NSA_DTYPE_BF16},
    {4, 128, 128, 2, 64, NSA_DTYPE_BF16, NSA_DTYPE_BF16, 1, 1, NSA_DTYPE_BF16},
    {3, 48, 80, 3, 32, NSA_DTYPE_BF16, NSA_DTYPE_F32, 1, 2, NSA_DTYPE_BF16},
    {8, 192, 128, 2, 128, NSA_DTYPE_BF16, NSA_DTYPE_F32, 1, 1, NSA_DTYPE_BF16},
    {7, 64, 48, 4, 16, NSA_DTYPE_BF16, NSA_DTYPE_F32, 1, 0, NSA_DTYPE_F32},
    {2, 32, 16, 2, 64, NSA_DTYPE_F16, NSA_DTYPE_F32, 1, 1, NSA_DTYPE_F32},
    {5, 128, 64, 3, 128, NSA_DTYPE_F16, NSA_DTYPE_F16, 1, 2, NSA_DTYPE_F32},
    {6, 96, 112, 2, 64, NSA_DTYPE_I8, NSA_DTYPE_F32, 1, 1, NSA_DTYPE_F32},
    {1, 16, 16, 3, 16, NSA_DTYPE_I8, NSA_DTYPE_F32, 1, 0, NSA_DTYPE_F32},
    {4, 64, 64, 3, 64, NSA_DTYPE_F32, NSA_DTYPE_F32, 1, 2, NSA_DTYPE_F32},
    {16, 192, 128, 4, 64, NSA_DTYPE_BF16, NSA_DTYPE_F32, 1, 1, NSA_DTYPE_BF16},
    {13, 64, 80, 3, 64, NSA_DTYPE_F32, NSA_DTYPE_BF16, 1, 2, NSA_DTYPE_F32},
    {11, 128, 128, 2, 128, NSA_DTYPE_I8, NSA_DTYPE_F32, 1, 0, NSA_DTYPE_F32},
    /* bf16 dots past 192 channels (channel-major), key-major with a half step and an odd
     * row, and dv == 128 with up to 4 rows (P.V over whole rows, in row pairs) */
    {5, 256, 128, 2, 64, NSA_DTYPE_BF16, NSA_DTYPE_F32, 1, 1, NSA_DTYPE_BF16},
    {3, 144, 128, 3, 64, NSA_DTYPE_BF16, NSA_DTYPE_BF16, 1, 2, NSA_DTYPE_BF16},
    /* four rows through every rotation register (d = 192) and with a half step (d = 80); */
    {4, 192, 128, 3, 64, NSA_DTYPE_BF16, NSA_DTYPE_F32, 1, 2, NSA_DTYPE_BF16},
    {4, 80, 64, 2, 32, NSA_DTYPE_BF16, NSA_DTYPE_F32, 1, 1, NSA_DTYPE_BF16},
    /* five to eight rows: two sets of four rotations, the last row standing in */
    {6, 80, 64, 2, 64, NSA_DTYPE_BF16, NSA_DTYPE_F32, 1, 2, NSA_DTYPE_BF16},
    {5, 128, 128, 3, 64, NSA_DTYPE_BF16, NSA_DTYPE_BF16, 1, 1, NSA_DTYPE_BF16},
    {3, 128, 128, 2, 64, NSA_DTYPE_I8, NSA_DTYPE_F32, 1, 1, NSA_DTYPE_F32},
    {2, 64, 128, 2, 64, NSA_DTYPE_F16, NSA_DTYPE_F32, 1, 0, NSA_DTYPE_F32},
    /* int8 and f16 keys for 3-4 rows, four keys at a time (a ragged last group of 1-3 keys) */
    {4, 128, 128, 3, 64, NSA_DTYPE_F16, NSA_DTYPE_F32, 1, 1, NSA_DTYPE_F32},
    {3, 80, 64, 2, 32, NSA_DTYPE_F16, NSA_DTYPE_F16, 1, 2, NSA_DTYPE_F32},
    /* five to eight rows: two sets taking each four keys in turn */
    {8, 128, 128, 3, 64, NSA_DTYPE_I8, NSA_DTYPE_F32, 1, 1, NSA_DTYPE_F32},
    {6, 48, 64, 2, 32, NSA_DTYPE_F16, NSA_DTYPE_F32, 1, 2, NSA_DTYPE_F32},
    {4, 128, 128, 3, 64, NSA_DTYPE_I8, NSA_DTYPE_F32, 1, 1, NSA_DTYPE_F32},
    {4, 48, 32, 2, 16, NSA_DTYPE_I8, NSA_DTYPE_BF16, 1, 2, NSA_DTYPE_F32},
    /* nine to sixteen rows: up to four sets of four, the last with one to four rows */
    {16, 192, 128, 3, 64, NSA_DTYPE_F16, NSA_DTYPE_F32, 1, 1, NSA_DTYPE_F32},
    {14, 80, 64, 3, 64, NSA_DTYPE_F16, NSA_DTYPE_F16, 1, 2, NSA_DTYPE_F32},
    {9, 64, 48, 2, 32, NSA_DTYPE_I8, NSA_DTYPE_F32, 1, 2, NSA_DTYPE_F32},
};

static void few_row_tiles(void **state)
{
    size_t i;
    int rep;
    (void)state;
    for (i = 0; i < sizeof few_row_cases / sizeof few_row_cases[0]; i++)
        for (rep = 0; rep < 3; rep++)
            run_case(&few_row_cases[i], 5000u * (i + 1) + (uint64_t)rep, 0);
}

/* The same few-row cases through the AVX2 loops (attn_fused_avx2.c) on a CPU that would take
 * the AVX-512 ones; on AVX2-only CPUs few_row_tiles already ran them. */
static void few_row_tiles_avx2(void **state)
{
    if (!nsa_cpu_has_avx512() || !nsa_cpu_has_avx2())
        skip();
    nsa_simd_force_avx2(1);
    few_row_tiles(state);
    nsa_simd_force_avx2(0);
}

/* Tiles run in lockstep (nsa_attn_group_run: the kv heads of a page) against the float64
 * reference, and bit for bit the same as each tile run alone (incre_flash_attention's result
 * must not depend on how many heads a worker groups). Each tile has its own data; the blocks'
 * lengths are shared. Cases: several chunks per block and chunks ending inside blocks, masks,
 * bf16 / int8 / f32 K/V, and rows beyond the few-row path (the BLAS fallback); each once with
 * the tiles' rows apart and once side by side in token rows (a BSH cache: the heads loops on
 * AVX-512, turns of a few keys on AVX2). */
static const kcase group_cases[] = {
    {4, 128, 128, 3, 64, NSA_DTYPE_BF16, NSA_DTYPE_F32, 1, 1, NSA_DTYPE_BF16},
    {4, 128, 128, 4, 96, NSA_DTYPE_I8, NSA_DTYPE_F32, 1, 2, NSA_DTYPE_F32},
    {3, 48, 80, 3, 32, NSA_DTYPE_F32, NSA_DTYPE_BF16, 1, 2, NSA_DTYPE_F32},
    {1, 64, 64, 2, 1024, NSA_DTYPE_F16, NSA_DTYPE_F32, 1, 0, NSA_DTYPE_F32},
    {20, 64, 64, 2, 64, NSA_DTYPE_BF16, NSA_DTYPE_F32, 1, 1, NSA_DTYPE_F32},
};

/* Moves the K and V rows of `count` fixtures with the same block lengths into one buffer each,
 * where every token row holds the fixtures' rows side by side (the kv heads of a BSH cache);
 * *kbuf and *vbuf get the buffers to free. */
static void side_by_side(kfixture *f, int count, void **kbuf, void **vbuf)
{
    const kcase *kc = f[0].kc;
    const size_t es = nsa_dtype_size(kc->kv_dtype), krow = (size_t)kc->d * es,
                 vrow = (size_t)kc->dv * es;
    const size_t rows = (size_t)f[0].total * (size_t)count;
    char *k = malloc(rows * krow), *v = malloc(rows * vrow);
    int t, j, b;
    assert_non_null(k);
    assert_non_null(v);
    for (t = 0; t < count; t++) {
        for (j = 0; j < f[t].total; j++) {
            memcpy(k + ((size_t)j * count + t) * krow, (char *)f[t].kraw + (size_t)j * krow, krow);
            memcpy(v + ((size_t)j * count + t) * vrow, (char *)f[t].vraw + (size_t)j * vrow, vrow);
        }
        for (b = 0; b < kc->nblocks; b++) {
            nsa_kv_block *blk = &f[t].blocks[b];
            blk->k = k + ((size_t)blk->kv_start * count + t) * krow;
            blk->v = v + ((size_t)blk->kv_start * count + t) * vrow;
            blk->k_row_stride = (int64_t)kc->d * count;
            blk->v_row_stride = (int64_t)kc->dv * count;
        }
    }
    *kbuf = k;
    *vbuf = v;
}

static void group_lockstep(void **state)
{
    enum { COUNT = 5 };
    const size_t ncases = sizeof group_cases / sizeof group_cases[0];
    size_t i;
    (void)state;
    for (i = 0; i < 2 * ncases; i++) {
        const kcase *kc = &group_cases[i % ncases];
        const size_t obytes = (size_t)kc->m * kc->dv * nsa_dtype_size(kc->o_dtype);
        kfixture f[COUNT];
        nsa_attn_tile tiles[COUNT];
        void *scratch = NULL, *saved = malloc(obytes), *kbuf = NULL, *vbuf = NULL;
        float stats[3 * 32];
        int t;
        for (t = 0; t < COUNT; t++)
            make_case(&f[t], kc, 9000u * (i + 1) + (uint64_t)t, 77u + i % ncases);
        if (i >= ncases) /* the second round: the tiles' rows side by side */
            side_by_side(f, COUNT, &kbuf, &vbuf);
        for (t = 0; t < COUNT; t++)
            tiles[t] = f[t].tile;
        assert_int_equal(nsa_fused_side_by_side(tiles, COUNT), i >= ncases);
        assert_int_equal(posix_memalign(&scratch, 64,
                                        nsa_attn_group_scratch_size(COUNT, kc->m, kc->d, kc->dv,
                                                                    kc->chunk)),
                         0);
        nsa_attn_group_run(tiles, COUNT, scratch);
        for (t = 0; t < COUNT; t++) {
            check_case(&f[t]);
            memcpy(saved, f[t].out, obytes);
            memcpy(stats, f[t].rmax, sizeof(float) * kc->m);
            memcpy(stats + 32, f[t].rsum, sizeof(float) * kc->m);
            memcpy(stats + 64, f[t].rlse, sizeof(float) * kc->m);
            nsa_attn_tile_run(&f[t].tile, scratch); /* the group scratch covers one tile */
            assert_memory_equal(saved, f[t].out, obytes);
            assert_memory_equal(stats, f[t].rmax, sizeof(float) * kc->m);
            assert_memory_equal(stats + 32, f[t].rsum, sizeof(float) * kc->m);
            assert_memory_equal(stats + 64, f[t].rlse, sizeof(float) * kc->m);
            free_case(&f[t]);
        }
        free(scratch);
        free(saved);
        free(kbuf);
        free(vbuf);
    }
}

/* The path choice itself: few rows, channel multiples of 16, unit channel strides. */
static void few_row_path_choice(void **state)
{
    nsa_kv_block blk;
    nsa_attn_tile t;
    const int avx512 = nsa_cpu_has_avx512(), avx2 = nsa_cpu_has_avx2();
    (void)state;
    memset(&blk, 0, sizeof blk);
    memset(&t, 0, sizeof t);
    blk.k_col_stride = blk.v_col_stride = 1;
    t.blocks = &blk;
    t.nblocks = 1;
    t.m = 4;
    t.d = 128;
    t.dv = 128;
    t.kv_dtype = NSA_DTYPE_BF16;
    t.q_dtype = NSA_DTYPE_BF16;
    assert_int_equal(nsa_fused_usable(&t), avx2);
    assert_int_equal(nsa_fused_usable(&t) && nsa_fused_uses_bf16_dot(&t),
                     avx512 && nsa_cpu_has_avx512bf16());
    t.q_dtype = NSA_DTYPE_F16;
    assert_false(nsa_fused_uses_bf16_dot(&t));
    assert_true(nsa_fused_max_rows() == 8 || nsa_fused_max_rows() == 16);
    assert_int_equal(nsa_fused_max_rows(), nsa_blas_avx512_kernels() ? 8 : 16);
    t.m = nsa_fused_max_rows() + 1;
    assert_false(nsa_fused_usable(&t));
    t.m = nsa_fused_max_rows();
    assert_int_equal(nsa_fused_usable(&t), avx2);
    t.d = 40;
    assert_false(nsa_fused_usable(&t));
    t.d = 128;
    blk.v_col_stride = 2;
    assert_false(nsa_fused_usable(&t));
}

static void randomized_cases(void **state)
{
    size_t i;
    int builtin, rep;
    (void)state;
    for (builtin = 0; builtin <= 1; builtin++)
        for (i = 0; i < sizeof k_cases / sizeof k_cases[0]; i++)
            for (rep = 0; rep < 3; rep++)
                run_case(&k_cases[i], 1000u * (i + 1) + (uint64_t)rep, builtin);
}

/* Blocks of zero keys and tiles with no blocks give empty rows, never NaN. */
static void empty_rows(void **state)
{
    float q[4] = {1, 2, 3, 4}, out[4] = {9, 9, 9, 9}, mx = 0, sum = 1, lse = 0;
    const void *qrows[1];
    void *orows[1];
    nsa_attn_tile tile;
    void *scratch = NULL;
    (void)state;
    qrows[0] = q;
    orows[0] = out;
    memset(&tile, 0, sizeof tile);
    tile.m = 1;
    tile.q_rows = qrows;
    tile.q_col_stride = 1;
    tile.q_dtype = NSA_DTYPE_F32;
    tile.d = 4;
    tile.dv = 4;
    tile.scale = 1.0f;
    tile.kv_dtype = NSA_DTYPE_F32;
    tile.o_rows = orows;
    tile.o_col_stride = 1;
    tile.o_dtype = NSA_DTYPE_F32;
    tile.row_max = &mx;
    tile.row_sum = &sum;
    tile.row_lse = &lse;
    assert_int_equal(posix_memalign(&scratch, 64, nsa_attn_scratch_size(1, 4, 4, 0)), 0);
    nsa_attn_tile_run(&tile, scratch);
    assert_true(out[0] == 0.0f && out[3] == 0.0f);
    assert_true(mx == -INFINITY && sum == 0.0f && lse == -INFINITY);
    free(scratch);
}

/* fp32 K rows broadcast (row stride 0) and V rows overlapping (row stride 1 < Dv): legal views
 * that must not be handed to the GEMM in place (its leading dimension would be invalid). */
static void broadcast_and_overlapping_rows(void **state)
{
    enum { M = 3, D = 8, DV = 8, N = 20 };
    float q[M * D], k[D], v[N + DV], out[M * DV];
    double ref[M * DV];
    const void *qrows[M];
    void *orows[M];
    nsa_kv_block blk;
    nsa_attn_tile tile;
    void *scratch = NULL;
    test_rng rng;
    int r, j, c;
    (void)state;
    test_rng_seed(&rng, 77);
    for (r = 0; r < M * D; r++)
        q[r] = test_rng_uniform(&rng, -1.0f, 1.0f);
    for (c = 0; c < D; c++)
        k[c] = test_rng_uniform(&rng, -1.0f, 1.0f);
    for (j = 0; j < N + DV; j++)
        v[j] = test_rng_uniform(&rng, -1.0f, 1.0f);
    /* every key is the same row, so the probabilities are uniform: O[r][c] = mean_j v[j + c] */
    for (r = 0; r < M; r++)
        for (c = 0; c < DV; c++) {
            double acc = 0.0;
            for (j = 0; j < N; j++)
                acc += v[j + c];
            ref[r * DV + c] = acc / N;
        }
    for (r = 0; r < M; r++) {
        qrows[r] = q + r * D;
        orows[r] = out + r * DV;
    }
    memset(&blk, 0, sizeof blk);
    blk.k = k;
    blk.v = v;
    blk.k_row_stride = 0;
    blk.k_col_stride = 1;
    blk.v_row_stride = 1;
    blk.v_col_stride = 1;
    blk.len = N;
    memset(&tile, 0, sizeof tile);
    tile.m = M;
    tile.q_rows = qrows;
    tile.q_col_stride = 1;
    tile.q_dtype = NSA_DTYPE_F32;
    tile.d = D;
    tile.dv = DV;
    tile.scale = 0.5f;
    tile.kv_dtype = NSA_DTYPE_F32;
    tile.blocks = &blk;
    tile.nblocks = 1;
    tile.o_rows = orows;
    tile.o_col_stride = 1;
    tile.o_dtype = NSA_DTYPE_F32;
    assert_int_equal(posix_memalign(&scratch, 64, nsa_attn_scratch_size(M, D, DV, 0)), 0);
    nsa_attn_tile_run(&tile, scratch);
    /* fp32 mean of 20 values: a few ulps of 1 */
    test_assert_close("out", out, ref, M * DV, 1e-6, 1e-5);
    free(scratch);
}

/* Vectorised exp (the kernel's exp-and-sum pass): within 2 ulps of libm over the softmax range, exact at the edges. */
static void vexp_accuracy(void **state)
{
    enum { N = 4099 };
    float *x = malloc(sizeof(float) * N), *y = malloc(sizeof(float) * N);
    int i;
    (void)state;
    for (i = 0; i < N; i++)
        x[i] = -100.0f + 190.0f * (float)i / (float)(N - 1);
    x[0] = -INFINITY;
    x[1] = INFINITY;
    x[2] = NAN;
    x[3] = 0.0f;
    x[4] = 89.0f;
    x[5] = -104.5f;
    /* y = exp(y - 0): the kernel's exp-and-sum pass with a zero max is exp itself */
    memcpy(y, x, sizeof(float) * N);
    (void)nsa_vexp_sum(y, N, 0.0f);
    assert_true(y[0] == 0.0f);
    assert_true(y[1] == INFINITY);
    assert_true(isnan(y[2]));
    assert_true(y[3] == 1.0f);
    assert_true(y[4] == INFINITY);
    assert_true(y[5] == 0.0f);
    for (i = 6; i < N; i++) {
        double ref = exp((double)x[i]);
        if (ref > 3.4e38)
            continue; /* overflowing results: checked above */
        if (ref < 1.2e-38) /* subnormal: rounded once to the 2^-149 grid, plus the 2 ulps */
            assert_true(fabs(y[i] - ref) <= ldexp(1.0, -149) + 2.0 * ldexp(ref, -23));
        else /* 2 ulps of fp32: the polynomial is ~1 ulp, the reduction adds < 1 */
            assert_true(fabs(y[i] - ref) <= 2.0 * ldexp(1.0, ilogb(ref) - 23));
    }
    free(x);
    free(y);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(randomized_cases),
        cmocka_unit_test(few_row_tiles),
        cmocka_unit_test(few_row_tiles_avx2),
        cmocka_unit_test(few_row_path_choice),
        cmocka_unit_test(group_lockstep),
        cmocka_unit_test(empty_rows),
        cmocka_unit_test(broadcast_and_overlapping_rows),
        cmocka_unit_test(vexp_accuracy),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
