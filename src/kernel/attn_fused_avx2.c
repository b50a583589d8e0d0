/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The few-row path on CPUs with AVX2, FMA and F16C but no AVX-512 (attn_fused_avx2.h). Each
 * key or value row is read from the caller's memory and widened to fp32 eight channels at a
 * time in registers (bf16 by a shift, f16 by vcvtph2ps, int8 by vpmovsxbd + vcvtdq2ps, plus
 * the offset); AVX2 has 16 vector registers, so the loops hold at most 8 accumulators:
 *
 *   scores: up to four query rows against two keys (four keys for one or two rows), one
 *           accumulator per (row, key) over the channels, summed across lanes at the end
 *           of each key by one hadd tree for all eight;
 *   P.V:    up to four rows x 16 channels (32 for one or two rows) of the output held in
 *           registers while the values stream past, one broadcast probability per row.
 *
 * More than four rows go in sets of four over groups of keys (GROUP, PV_GROUP), so that every
 * set after the first reads the group's rows from L1; only the first set prefetches. int8
 * scales are folded onto the queries and the output as on the AVX-512 path (attn_fused.c).
 */
#include "kernel/attn_fused_avx2.h"

#if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__)
#include <immintrin.h>

#include "kernel/fused_prefetch.h"

#define AVX2 __attribute__((target("avx2,fma,f16c")))
#define INLINE static inline __attribute__((always_inline))

/* Kinds of rows the loops widen: the dtype, and int8 with or without offsets. */
enum { ROW_F32, ROW_BF16, ROW_F16, ROW_I8, ROW_I8_OFFSET };

/* Keys per group of the scores' row sets: 64 bf16 rows of 128 channels are 16 KiB, half of a
 * Zen 3 L1. P.V takes 16 keys per group (its passes read the group's rows dv / 16 times): 0.88x
 * the time of 64 for bf16 decode from DRAM, 0.92x for a BSH cache (rows 2 KiB apart, on few
 * L1 sets), 0.91x paged, 0.98x int8, 1.035x in L3 (Zen 3, one thread, ab_decode medians of 30
 * alternated pairs); 8 keys measured the same as 16, 32 keys 1.06-1.08x. */
enum { GROUP = 64, PV_GROUP = 16 };

INLINE size_t row_esize(int kind)
{
    return kind == ROW_F32 ? 4 : kind == ROW_I8 || kind == ROW_I8_OFFSET ? 1 : 2;
}

/* Channels [c, c + 8) of `row` as fp32; int8 plus the offsets of dq (stride 0 or 1). */
AVX2 INLINE __m256 widen8(const int KIND, const char *row, int32_t c, const nsa_dequant *dq)
{
    const __m128i *p2 = (const __m128i *)(const void *)(row + (size_t)c * 2);
    __m256 x;
    switch (KIND) {
    case ROW_F32:
        return _mm256_loadu_ps((const float *)(const void *)row + c);
    case ROW_BF16:
        return _mm256_castsi256_ps(
            _mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128(p2)), 16));
    case ROW_F16:
        return _mm256_cvtph_ps(_mm_loadu_si128(p2));
    default:
        x = _mm256_cvtepi32_ps(
            _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(const void *)(row + c))));
        if (KIND == ROW_I8_OFFSET)
            x = _mm256_add_ps(x, dq->offset_stride ? _mm256_loadu_ps(dq->offset + c)
                                                   : _mm256_set1_ps(dq->offset[0]));
        return x;
    }
}

/* Lane i: the sum of the lanes of a_i. */
AVX2 INLINE __m256 sum_lanes8(__m256 a0, __m256 a1, __m256 a2, __m256 a3, __m256 a4, __m256 a5,
                              __m256 a6, __m256 a7)
{
    const __m256 u0 = _mm256_hadd_ps(_mm256_hadd_ps(a0, a1), _mm256_hadd_ps(a2, a3));
    const __m256 u1 = _mm256_hadd_ps(_mm256_hadd_ps(a4, a5), _mm256_hadd_ps(a6, a7));
    return _mm256_add_ps(_mm256_permute2f128_ps(u0, u1, 0x20),
                         _mm256_permute2f128_ps(u0, u1, 0x31));
}

/* s[r*lds + j] = scale * q_r . k_(j0+j) for R rows (R * KEYS <= 8) and keys [j0, j0 + n),
 * KEYS at a time (a short last step repeats its last key and drops the copies). */
AVX2 INLINE void scores_rows(const int KIND, const int R, const int KEYS, const float *q, int32_t d,
                             const nsa_dequant *dq, const nsa_kv_block *blk,
                             const nsa_kv_block *next, int fetch, int32_t j0, int32_t n,
                             float scale, float *s, int64_t lds)
{
    const size_t es = row_esize(KIND);
    const int64_t rb = blk->k_row_stride * (int64_t)es;
    const __m256 vscale = _mm256_set1_ps(scale);
    int32_t j, c;
    int r, i;
    for (j = 0; j < n; j += KEYS) {
        const int32_t cnt = n - j < KEYS ? n - j : KEYS;
        const char *k[4];
        __m256 a[8];
        float out[8];
        for (i = 0; i < KEYS; i++)
            k[i] = (const char *)blk->k + (int64_t)(j0 + j + (i < cnt ? i : cnt - 1)) * rb;
        for (i = 0; i < 8; i++)
            a[i] = _mm256_setzero_ps();
        if (fetch)
            prefetch_ahead(blk, next, 0, es, j0 + j + PREFETCH_KEYS(es), KEYS, (size_t)d * es);
        for (c = 0; c < d; c += 8) {
            __m256 x[4];
            for (i = 0; i < KEYS; i++)
                x[i] = widen8(KIND, k[i], c, dq);
            for (r = 0; r < R; r++) {
                const __m256 qv = _mm256_loadu_ps(q + (size_t)r * (size_t)d + c);
                for (i = 0; i < KEYS; i++)
                    a[i * R + r] = _mm256_fmadd_ps(qv, x[i], a[i * R + r]);
            }
        }
        _mm256_storeu_ps(
            out, _mm256_mul_ps(vscale, sum_lanes8(a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7])));
        for (i = 0; i < cnt; i++)
            for (r = 0; r < R; r++)
                s[(int64_t)r * lds + j + i] = out[i * R + r];
    }
}

AVX2 INLINE void scores_kind(const int KIND, const nsa_attn_tile *tile, const float *q,
                             const nsa_kv_block *blk, const nsa_kv_block *next, int32_t j0,
                             int32_t n, float *s, int64_t lds)
{
    const nsa_dequant *dq = &tile->k_dequant;
    const int32_t d = tile->d;
    int32_t g, r0;
    for (g = 0; g < n; g += GROUP) {
        const int32_t cnt = n - g < GROUP ? n - g : GROUP;
        for (r0 = 0; r0 < tile->m; r0 += 4) {
            const float *qr = q + (size_t)r0 * (size_t)d;
            float *sr = s + (int64_t)r0 * lds + g;
            const int fetch = r0 == 0;
            switch (tile->m - r0) {
            case 1:
                scores_rows(KIND, 1, 4, qr, d, dq, blk, next, fetch, j0 + g, cnt, tile->scale, sr,
                            lds);
                break;
            case 2:
                scores_rows(KIND, 2, 4, qr, d, dq, blk, next, fetch, j0 + g, cnt, tile->scale, sr,
                            lds);
                break;
            case 3:
                scores_rows(KIND, 3, 2, qr, d, dq, blk, next, fetch, j0 + g, cnt, tile->scale, sr,
                            lds);
                break;
            default:
                scores_rows(KIND, 4, 2, qr, d, dq, blk, next, fetch, j0 + g, cnt, tile->scale, sr,
                            lds);
                break;
            }
        }
    }
}

AVX2 void nsa_fused_avx2_scores(const nsa_attn_tile *tile, const float *q, const nsa_kv_block *blk,
                                const nsa_kv_block *next, int32_t j0, int32_t n, float *s,
                                int64_t lds)
{
    switch (tile->kv_dtype) {
    case NSA_DTYPE_BF16:
        scores_kind(ROW_BF16, tile, q, blk, next, j0, n, s, lds);
        break;
    case NSA_DTYPE_F16:
        scores_kind(ROW_F16, tile, q, blk, next, j0, n, s, lds);
        break;
    case NSA_DTYPE_I8:
        if (tile->k_dequant.offset)
            scores_kind(ROW_I8_OFFSET, tile, q, blk, next, j0, n, s, lds);
        else
            scores_kind(ROW_I8, tile, q, blk, next, j0, n, s, lds);
        break;
    default:
        scores_kind(ROW_F32, tile, q, blk, next, j0, n, s, lds);
        break;
    }
}

/* o[r][c0 .. c0 + 8*NZ) += sum_j p[r*ldp + j] * v_(j0+j)[...] for R rows (R * NZ <= 8
 * accumulators), keys [j0, j0 + n). With `fetch`, each key asks for a value row ahead. */
AVX2 INLINE void pv_block(const int KIND, const int R, const int NZ, const float *p, int64_t ldp,
                          const nsa_dequant *dq, const nsa_kv_block *blk, const nsa_kv_block *next,
                          int fetch, int32_t j0, int32_t n, int32_t c0, float *o, int32_t dv)
{
    const size_t es = row_esize(KIND);
    const int64_t rb = blk->v_row_stride * (int64_t)es;
    __m256 acc[4][4];
    int32_t j;
    int r, z;
    for (r = 0; r < R; r++)
        for (z = 0; z < NZ; z++)
            acc[r][z] = _mm256_loadu_ps(o + (size_t)r * (size_t)dv + c0 + 8 * z);
    for (j = 0; j < n; j++) {
        const char *row = (const char *)blk->v + (int64_t)(j0 + j) * rb;
        __m256 v[4];
        if (fetch)
            prefetch_ahead(blk, next, 1, es, j0 + j + PREFETCH_KEYS(es), 1, (size_t)dv * es);
        for (z = 0; z < NZ; z++)
            v[z] = widen8(KIND, row, c0 + 8 * z, dq);
        for (r = 0; r < R; r++) {
            const __m256 pr = _mm256_broadcast_ss(p + (int64_t)r * ldp + j);
            for (z = 0; z < NZ; z++)
                acc[r][z] = _mm256_fmadd_ps(pr, v[z], acc[r][z]);
        }
    }
    for (r = 0; r < R; r++)
        for (z = 0; z < NZ; z++)
            _mm256_storeu_ps(o + (size_t)r * (size_t)dv + c0 + 8 * z, acc[r][z]);
}

/* Every channel of R rows: blocks of 8 * NZ channels, then 16 (dv % 16 == 0). */
AVX2 INLINE void pv_rows(const int KIND, const int R, const int NZ, const float *p, int64_t ldp,
                         const nsa_dequant *dq, const nsa_kv_block *blk, const nsa_kv_block *next,
                         int fetch, int32_t j0, int32_t n, float *o, int32_t dv)
{
    int32_t c0 = 0;
    for (; c0 + 8 * NZ <= dv; c0 += 8 * NZ)
        pv_block(KIND, R, NZ, p, ldp, dq, blk, next, fetch && c0 == 0, j0, n, c0, o, dv);
    if (c0 < dv)
        pv_block(KIND, R, 2, p, ldp, dq, blk, next, fetch && c0 == 0, j0, n, c0, o, dv);
}

AVX2 INLINE void accumulate_kind(const int KIND, const nsa_attn_tile *tile, const float *p,
                                 int64_t ldp, const nsa_kv_block *blk, const nsa_kv_block *next,
                                 int32_t j0, int32_t n, float *o)
{
    const nsa_dequant *dq = &tile->v_dequant;
    const int32_t dv = tile->dv;
    int32_t g, r0;
    for (g = 0; g < n; g += PV_GROUP) {
        const int32_t cnt = n - g < PV_GROUP ? n - g : PV_GROUP;
        for (r0 = 0; r0 < tile->m; r0 += 4) {
            const float *pr = p + (int64_t)r0 * ldp + g;
            float *orow = o + (size_t)r0 * (size_t)dv;
            const int fetch = r0 == 0;
            switch (tile->m - r0) {
            case 1:
                pv_rows(KIND, 1, 4, pr, ldp, dq, blk, next, fetch, j0 + g, cnt, orow, dv);
                break;
            case 2:
                pv_rows(KIND, 2, 4, pr, ldp, dq, blk, next, fetch, j0 + g, cnt, orow, dv);
                break;
            case 3:
                pv_rows(KIND, 3, 2, pr, ldp, dq, blk, next, fetch, j0 + g, cnt, orow, dv);
                break;
            default:
                pv_rows(KIND, 4, 2, pr, ldp, dq, blk, next, fetch, j0 + g, cnt, orow, dv);
                break;
            }
        }
    }
}

AVX2 void nsa_fused_avx2_accumulate(const nsa_attn_tile *tile, const float *p, int64_t ldp,
                                    const nsa_kv_block *blk, const nsa_kv_block *next, int32_t j0,
                                    int32_t n, float *o)
{
    switch (tile->kv_dtype) {
    case NSA_DTYPE_BF16:
        accumulate_kind(ROW_BF16, tile, p, ldp, blk, next, j0, n, o);
        break;
    case NSA_DTYPE_F16:
        accumulate_kind(ROW_F16, tile, p, ldp, blk, next, j0, n, o);
        break;
    case NSA_DTYPE_I8:
        if (tile->v_dequant.offset)
            accumulate_kind(ROW_I8_OFFSET, tile, p, ldp, blk, next, j0, n, o);
        else
            accumulate_kind(ROW_I8, tile, p, ldp, blk, next, j0, n, o);
        break;
    default:
        accumulate_kind(ROW_F32, tile, p, ldp, blk, next, j0, n, o);
        break;
    }
}

#else
typedef int nsa_fused_avx2_unused; /* ISO C: no empty translation unit */
#endif
