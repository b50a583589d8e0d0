/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The kernel's few-row path (see attn_fused.h). With up to 16 query rows a chunk is too
 * small for a BLAS call to pay off: the GEMM packs K and V again for a handful of rows (and
 * OpenBLAS runs AVX2 kernels on CPUs it does not know). Here each key row is read from the
 * caller's memory and converted in registers:
 *
 *   scores: 16 keys at a time, one accumulator per key, reduced across lanes by a fixed
 *           shuffle tree; query rows go in pairs, so each key row loaded serves two (three
 *           to eight bf16 rows: four at a time, four keys at a time, dot4_bf16_rot). bf16
 *           keys against bf16-exact queries use vdpbf16ps (products of two bf16 are exact
 *           in fp32, so only the summation order differs from the GEMM); f32 keys are read
 *           in place, int8 and f16 keys for three to sixteen rows widened in registers four
 *           keys at a time (rows4_widened), others widened to fp32 rows of 16 keys in L1
 *           first;
 *   P.V:    rows in groups of up to 8; channel blocks of 64 (32 for more than 4 rows) held
 *           in registers while 16 values at a time (64 for int8) stream past, converted in
 *           registers (or whole rows of 128 channels for pairs of rows, see pv_rows); bf16
 *           widened as even and odd channels (bf16_even_odd).
 *
 * Memory order matters as much as arithmetic: decode streams K and V from DRAM, and the
 * hardware prefetchers only keep up when each 16-key group is read in address order and once
 * (a second pass back over a group stalls them), and when K and V alternate rarely (the
 * kernel's chunks, attn_tile.c).
 *
 * int8 K/V: the per-channel scales are folded out of the inner loops, onto the queries for
 * Q.K^T (q_c * scale_c) and onto the output for P.V, so the loops only convert and add the
 * offset. Each product is still rounded once in fp32; only where the rounding happens moves.
 *
 * The path taken depends only on the tile's shape and dtypes and on the CPU, never on the
 * thread count.
 */
#include "kernel/attn_fused.h"

#include <string.h>

#include "blas/blas.h"
#include "dtype/convert.h"
#include "kernel/attn_fused_avx2.h"
#include "kernel/fused_prefetch.h"
#include "kernel/simd.h"

#if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__)
#define NSA_FUSED_X86 1
#include <immintrin.h>
#define AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq")))
#define AVX512BF16 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16")))
#define INLINE static inline __attribute__((always_inline))
#endif

static int unit_or_zero(int64_t stride)
{
    return stride == 0 || stride == 1;
}

int nsa_fused_max_rows(void)
{
    const int rows = nsa_blas_avx512_kernels() ? 8 : 16;
    return rows < NSA_FUSED_MAX_ROWS ? rows : NSA_FUSED_MAX_ROWS;
}

int nsa_fused_usable(const nsa_attn_tile *tile)
{
#ifdef NSA_FUSED_X86
    int32_t b;
    if (tile->m < 1 || tile->m > nsa_fused_max_rows() || tile->d % 16 != 0 ||
        tile->dv % 16 != 0 || !nsa_cpu_has_avx2())
        return 0;
    if (tile->kv_dtype != NSA_DTYPE_BF16 && tile->kv_dtype != NSA_DTYPE_F16 &&
        tile->kv_dtype != NSA_DTYPE_I8 && tile->kv_dtype != NSA_DTYPE_F32)
        return 0;
    if (tile->kv_dtype == NSA_DTYPE_I8 &&
        (!unit_or_zero(tile->k_dequant.offset_stride) ||
         !unit_or_zero(tile->v_dequant.offset_stride)))
        return 0; /* the loops read offsets as vectors or broadcast them */
    for (b = 0; b < tile->nblocks; b++)
        if (tile->blocks[b].k_col_stride != 1 || tile->blocks[b].v_col_stride != 1)
            return 0;
    return 1;
#else
    (void)tile;
    return 0;
#endif
}

int nsa_fused_uses_bf16_dot(const nsa_attn_tile *tile)
{
    return tile->kv_dtype == NSA_DTYPE_BF16 && tile->q_dtype == NSA_DTYPE_BF16 &&
           nsa_cpu_has_avx512bf16();
}

#ifdef NSA_FUSED_X86

/* Sum each of 16 vectors across its lanes: lane j of the result is the sum of a_j. A fixed
 * tree of 128-bit and 32-bit shuffles, then one permutation into key order. The vectors are
 * passed by value so that they stay in registers. */
AVX512 INLINE __m512 pair128(__m512 a, __m512 b)
{
    return _mm512_add_ps(_mm512_shuffle_f32x4(a, b, 0x44), _mm512_shuffle_f32x4(a, b, 0xEE));
}

AVX512 INLINE __m512 pair256(__m512 a, __m512 b)
{
    return _mm512_add_ps(_mm512_shuffle_f32x4(a, b, 0x88), _mm512_shuffle_f32x4(a, b, 0xDD));
}

AVX512 INLINE __m512 pair64(__m512 a, __m512 b)
{
    return _mm512_add_ps(_mm512_shuffle_ps(a, b, 0x44), _mm512_shuffle_ps(a, b, 0xEE));
}

AVX512 INLINE __m512 pair32(__m512 a, __m512 b)
{
    return _mm512_add_ps(_mm512_shuffle_ps(a, b, 0x88), _mm512_shuffle_ps(a, b, 0xDD));
}

AVX512 INLINE __m512 reduce16(__m512 a0, __m512 a1, __m512 a2, __m512 a3, __m512 a4, __m512 a5,
                              __m512 a6, __m512 a7, __m512 a8, __m512 a9, __m512 a10,
                              __m512 a11, __m512 a12, __m512 a13, __m512 a14, __m512 a15)
{
    /* x: keys (2i, 2i+1) in 256-bit halves; y: keys 4i..4i+3 in 128-bit lanes; then pairs and
     * single elements: w[4k + e] holds key k + 4e */
    __m512 x0 = pair128(a0, a1), x1 = pair128(a2, a3), x2 = pair128(a4, a5),
           x3 = pair128(a6, a7), x4 = pair128(a8, a9), x5 = pair128(a10, a11),
           x6 = pair128(a12, a13), x7 = pair128(a14, a15);
    __m512 y0 = pair256(x0, x1), y1 = pair256(x2, x3), y2 = pair256(x4, x5),
           y3 = pair256(x6, x7);
    __m512 w = pair32(pair64(y0, y1), pair64(y2, y3));
    return _mm512_permutexvar_ps(
        _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15), w);
}

/* The same sums in another order, for the int8/f16 rows loop (rows4_widened), which spreads
 * them over its next steps: within 128-bit lanes first (unpacks, which run beside the FMAs),
 * then across them with 6 lane-crossing shuffles instead of 24 and a permutation (those
 * compete with the FMAs for their pipes). in_lanes32/64 are the first two levels; 128-bit lane i of
 * reduce_across_lanes(u0, u1, u2, u3) holds the totals of u_i. The other loops keep reduce16:
 * bound by memory, they showed no difference this VM resolves (bf16 decode over 8 alternated
 * runs: 0.67-0.91 of a stream read with this order, 0.53-0.89 with reduce16's in two builds). */
AVX512 INLINE __m512 in_lanes32(__m512 a, __m512 b)
{
    return _mm512_add_ps(_mm512_unpacklo_ps(a, b), _mm512_unpackhi_ps(a, b));
}

AVX512 INLINE __m512 in_lanes64(__m512 a, __m512 b)
{
    const __m512d x = _mm512_castps_pd(a), y = _mm512_castps_pd(b);
    return _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(x, y)),
                         _mm512_castpd_ps(_mm512_unpackhi_pd(x, y)));
}

AVX512 INLINE __m512 reduce_across_lanes(__m512 u0, __m512 u1, __m512 u2, __m512 u3)
{
    return pair256(pair128(u0, u1), pair128(u2, u3));
}

/* Rows of keys g .. g+7 of a block; keys at or past `end` repeat the last one (their scores
 * are computed and dropped, so the loops below always run 8 keys wide). */
static void key_rows8(const char *base, int64_t row_bytes, int32_t g, int32_t end,
                      const char **rows)
{
    int32_t jj;
    for (jj = 0; jj < 8; jj++)
        rows[jj] = base + (int64_t)(g + jj < end ? g + jj : end - 1) * row_bytes;
}


/* Heads in lockstep (nsa_fused_heads_usable, below): tokens ahead of use that their walk over
 * the group's token rows asks for, and the keys each head takes in turn (int8 Q.K^T, P.V). */
enum { HEADS_AHEAD = 8, HEADS_KEYS = 8 };

/* A walk over whole token rows of a group of kv heads whose rows lie side by side, in address
 * order, on into the lead tile's next blocks. The loops over a group's heads ask it for the
 * bytes of as many keys of one head as they read. */
typedef struct pf_cursor {
    const nsa_attn_tile *lead;
    int values;            /* V rows, else K */
    int32_t b, j;          /* the next row: row j of the lead's block b */
    const char *row;       /* its address; NULL past the last block */
    size_t off;            /* the next line's offset in the row */
    size_t head, span;     /* bytes of one head's row; of the group's (a token row's part) */
    int64_t esize;
} pf_cursor;

static const char *cursor_row(const pf_cursor *pc)
{
    const nsa_kv_block *blk = &pc->lead->blocks[pc->b];
    return pc->values ? (const char *)blk->v + (int64_t)pc->j * blk->v_row_stride * pc->esize
                      : (const char *)blk->k + (int64_t)pc->j * blk->k_row_stride * pc->esize;
}

/* A cursor over the K (V when `values`) rows of `count` tiles, HEADS_AHEAD keys past row j of
 * block b (past the block's end: in the next blocks). */
static void cursor_start(pf_cursor *pc, const nsa_attn_tile *lead, int32_t count, int values,
                         int32_t b, int32_t j)
{
    pc->lead = lead;
    pc->values = values;
    pc->esize = (int64_t)nsa_dtype_size(lead->kv_dtype);
    pc->head = (size_t)(values ? lead->dv : lead->d) * (size_t)pc->esize;
    pc->span = (size_t)count * pc->head;
    pc->off = 0;
    j += HEADS_AHEAD;
    while (b < lead->nblocks && j >= lead->blocks[b].len)
        j -= lead->blocks[b++].len;
    pc->b = b;
    pc->j = j;
    pc->row = b < lead->nblocks ? cursor_row(pc) : NULL;
}

/* Ask for the next lines: the bytes of `keys` rows of one head. */
INLINE void cursor_fetch(pf_cursor *pc, int32_t keys)
{
    int32_t lines = (int32_t)((size_t)keys * pc->head / 64);
    for (; lines > 0 && pc->row; lines--) {
        __builtin_prefetch(pc->row + pc->off, 0, 3);
        pc->off += 64;
        if (pc->off < pc->span)
            continue;
        pc->off = 0;
        if (++pc->j >= pc->lead->blocks[pc->b].len) {
            pc->j = 0;
            if (++pc->b >= pc->lead->nblocks) {
                pc->row = NULL;
                break;
            }
        }
        pc->row = cursor_row(pc);
    }
}

/* Lanes 0-7: qa . ka[j]; lanes 8-15: qb . kb[j], over d channels. Two query rows against the
 * same 8 keys (ka == kb), or one row against 16 keys: either way 16 dot products share one
 * reduction, and with two rows each key row loaded serves both. Sixteen named accumulators,
 * not an array, so that the compiler keeps them in registers. */
AVX512BF16 INLINE __m512bh bf16_load(const void *p, int half)
{
    return half ? (__m512bh)_mm512_zextsi256_si512(_mm256_loadu_si256((const __m256i *)p))
                : (__m512bh)_mm512_loadu_si512(p);
}

/* One step of 32 channels (16 when HALF: the tail of d % 32 == 16) for all 16 products. */
#define BF16_STEP(HALF)                                                                            \
    do {                                                                                           \
        const size_t o = (size_t)c * 2;                                                            \
        const int half = HALF;                                                                     \
        const __m512bh x = bf16_load(qa + c, half), y = bf16_load(qb + c, half);                   \
        if (ka == kb) {                                                                            \
            __m512bh k;                                                                            \
            TWO(p0, a0, a8);                                                                       \
            TWO(p1, a1, a9);                                                                       \
            TWO(p2, a2, a10);                                                                      \
            TWO(p3, a3, a11);                                                                      \
            TWO(p4, a4, a12);                                                                      \
            TWO(p5, a5, a13);                                                                      \
            TWO(p6, a6, a14);                                                                      \
            TWO(p7, a7, a15);                                                                      \
        } else {                                                                                   \
            ONE(p0, x, a0);                                                                        \
            ONE(p1, x, a1);                                                                        \
            ONE(p2, x, a2);                                                                        \
            ONE(p3, x, a3);                                                                        \
            ONE(p4, x, a4);                                                                        \
            ONE(p5, x, a5);                                                                        \
            ONE(p6, x, a6);                                                                        \
            ONE(p7, x, a7);                                                                        \
            ONE(r0, y, a8);                                                                        \
            ONE(r1, y, a9);                                                                        \
            ONE(r2, y, a10);                                                                       \
            ONE(r3, y, a11);                                                                       \
            ONE(r4, y, a12);                                                                       \
            ONE(r5, y, a13);                                                                       \
            ONE(r6, y, a14);                                                                       \
            ONE(r7, y, a15);                                                                       \
        }                                                                                          \
    } while (0)
#define TWO(pa, acc_a, acc_b)                                                                      \
    k = bf16_load((pa) + o, half);                                                                 \
    acc_a = _mm512_dpbf16_ps(acc_a, x, k);                                                         \
    acc_b = _mm512_dpbf16_ps(acc_b, y, k)
#define ONE(pa, q, acc) acc = _mm512_dpbf16_ps(acc, q, bf16_load((pa) + o, half))

AVX512BF16 static __m512 dot16_bf16(const uint16_t *qa, const char *const *ka, const uint16_t *qb,
                                    const char *const *kb, int32_t d)
{
    const char *p0 = ka[0], *p1 = ka[1], *p2 = ka[2], *p3 = ka[3], *p4 = ka[4], *p5 = ka[5],
               *p6 = ka[6], *p7 = ka[7];
    const char *r0 = kb[0], *r1 = kb[1], *r2 = kb[2], *r3 = kb[3], *r4 = kb[4], *r5 = kb[5],
               *r6 = kb[6], *r7 = kb[7];
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0,
           a7 = a0, a8 = a0, a9 = a0, a10 = a0, a11 = a0, a12 = a0, a13 = a0, a14 = a0, a15 = a0;
    int32_t c;
    for (c = 0; c + 32 <= d; c += 32)
        BF16_STEP(0);
    if (c < d)
        BF16_STEP(1);
    return reduce16(a0, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, a12, a13, a14, a15);
}
#undef TWO
#undef ONE
#undef BF16_STEP

/* The same, key-major, for d <= 192: the query rows' channels stay in registers and each key
 * row is read front to back, so a group's loads walk its memory in address order. The
 * hardware stream prefetchers follow that order, not the channel-major one above, which reads
 * eight rows side by side: bf16 decode from DRAM went from 14-15 to 17-18 GB/s on one thread
 * with this and the row-pair P.V below (a model of the two orders: 18 against 26 GB/s). NS
 * steps of 32 channels, then a half step when HALF (d % 32 == 16). */
#define KM_KEY(pk, acc_a, acc_b)                                                                   \
    do {                                                                                           \
        int s_;                                                                                    \
        for (s_ = 0; s_ < NS + HALF; s_++) {                                                       \
            const __m512bh k_ = bf16_load((pk) + 64 * s_, s_ == NS);                               \
            acc_a = _mm512_dpbf16_ps(acc_a, xq[s_], k_);                                           \
            if (two)                                                                               \
                acc_b = _mm512_dpbf16_ps(acc_b, yq[s_], k_);                                       \
        }                                                                                          \
    } while (0)

AVX512BF16 INLINE __m512 dot16_bf16_km(const int NS, const int HALF, const uint16_t *qa,
                                        const char *const *ka, const uint16_t *qb,
                                        const char *const *kb)
{
    const int two = ka == kb;
    __m512bh xq[6], yq[6]; /* NS + HALF <= 6 (d <= 192) */
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0,
           a7 = a0, a8 = a0, a9 = a0, a10 = a0, a11 = a0, a12 = a0, a13 = a0, a14 = a0, a15 = a0;
    int s;
    for (s = 0; s < NS + HALF; s++) {
        xq[s] = bf16_load(qa + 32 * s, s == NS);
        if (two)
            yq[s] = bf16_load(qb + 32 * s, s == NS);
    }
    KM_KEY(ka[0], a0, a8);
    KM_KEY(ka[1], a1, a9);
    KM_KEY(ka[2], a2, a10);
    KM_KEY(ka[3], a3, a11);
    KM_KEY(ka[4], a4, a12);
    KM_KEY(ka[5], a5, a13);
    KM_KEY(ka[6], a6, a14);
    KM_KEY(ka[7], a7, a15);
    if (!two) {
        /* one row against 16 keys: the second eight keys against the same row */
#define KM_ONE(pk, acc)                                                                            \
    do {                                                                                           \
        int s_;                                                                                    \
        for (s_ = 0; s_ < NS + HALF; s_++)                                                         \
            acc = _mm512_dpbf16_ps(acc, xq[s_], bf16_load((pk) + 64 * s_, s_ == NS));              \
    } while (0)
        KM_ONE(kb[0], a8);
        KM_ONE(kb[1], a9);
        KM_ONE(kb[2], a10);
        KM_ONE(kb[3], a11);
        KM_ONE(kb[4], a12);
        KM_ONE(kb[5], a13);
        KM_ONE(kb[6], a14);
        KM_ONE(kb[7], a15);
#undef KM_ONE
    }
    return reduce16(a0, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, a12, a13, a14, a15);
}
#undef KM_KEY

#define KM_INSTANCE(NS, HALF)                                                                      \
    AVX512BF16 static __m512 dot16_bf16_km_##NS##_##HALF(const uint16_t *qa,                     \
                                                        const char *const *ka,                   \
                                                        const uint16_t *qb,                      \
                                                        const char *const *kb, int32_t d)        \
    {                                                                                              \
        (void)d;                                                                                   \
        return dot16_bf16_km(NS, HALF, qa, ka, qb, kb);                                            \
    }
KM_INSTANCE(0, 1)
KM_INSTANCE(1, 0)
KM_INSTANCE(1, 1)
KM_INSTANCE(2, 0)
KM_INSTANCE(2, 1)
KM_INSTANCE(3, 0)
KM_INSTANCE(3, 1)
KM_INSTANCE(4, 0)
KM_INSTANCE(4, 1)
KM_INSTANCE(5, 0)
KM_INSTANCE(5, 1)
KM_INSTANCE(6, 0)
#undef KM_INSTANCE

/* Four query rows against four keys: lane 4r + j of the result is q_r . k[j]. Each key row is
 * read once for all four rows (the pair loops read a 16-key group once per pair, and that
 * second, backward pass stops the hardware stream prefetchers: bf16 decode's Q.K^T alone from
 * DRAM ran at 14 GB/s with two pairs, 28 with one). Rotation p of a 32-channel group
 * (rotate_rows4) holds in 128-bit lane L the channels 8L..8L+7 of row (L + p) % 4, so one load
 * of a key's group serves the four rows through four rotations, and accumulator (j, p) collects
 * row (L + p) % 4 of key j in lane L. The reduction then stays within 128-bit lanes: each
 * rotation's four keys are summed with pair32, and three lane shuffles turn the rotations back
 * into row order, where reduce16 over one accumulator per row and key took 24 and a
 * permutation. bf16 decode in L3 (S = 4096, one thread, perf stat): 44.2 -> 39.9 cycles per key
 * and kv head with the loop inlined into its callers (the old form inlined: 43); from DRAM
 * the same time as before (two builds' calls alternated in one process: 1.00, paged 1.00).
 * Unmasked stores of whole rows in store_rows4 made it 37.4 in L3 but 2.4 % slower from DRAM
 * (paged 4 %), and copying the rows before rotating them cost paged decode 1.3 %. */
#define ROT4_KEY(j, a0, a1, a2, a3)                                                                \
    do {                                                                                           \
        int g_;                                                                                    \
        for (g_ = 0; g_ < NS + HALF; g_++) {                                                       \
            const __m512bh k_ = bf16_load(k[j] + 64 * g_, g_ == NS);                               \
            a0 = _mm512_dpbf16_ps(a0, qv[4 * g_], k_);                                             \
            a1 = _mm512_dpbf16_ps(a1, qv[4 * g_ + 1], k_);                                         \
            a2 = _mm512_dpbf16_ps(a2, qv[4 * g_ + 2], k_);                                         \
            a3 = _mm512_dpbf16_ps(a3, qv[4 * g_ + 3], k_);                                         \
        }                                                                                          \
    } while (0)

AVX512BF16 INLINE __m512 dot4_bf16_rot(const int NS, const int HALF, const uint16_t *qr,
                                       const char *const *k)
{
    __m512bh qv[24]; /* 4 (NS + HALF) <= 24 (d <= 192) */
    __m512 a00 = _mm512_setzero_ps(), a01 = a00, a02 = a00, a03 = a00, a10 = a00, a11 = a00,
           a12 = a00, a13 = a00, a20 = a00, a21 = a00, a22 = a00, a23 = a00, a30 = a00,
           a31 = a00, a32 = a00, a33 = a00, t0, t1, t2, t3;
    int x;
    for (x = 0; x < 4 * (NS + HALF); x++)
        qv[x] = (__m512bh)_mm512_loadu_si512(qr + 32 * x);
    ROT4_KEY(0, a00, a01, a02, a03);
    ROT4_KEY(1, a10, a11, a12, a13);
    ROT4_KEY(2, a20, a21, a22, a23);
    ROT4_KEY(3, a30, a31, a32, a33);
    t0 = pair32(pair32(a00, a10), pair32(a20, a30)); /* lane L, element j: key j */
    t1 = pair32(pair32(a01, a11), pair32(a21, a31));
    t2 = pair32(pair32(a02, a12), pair32(a22, a32));
    t3 = pair32(pair32(a03, a13), pair32(a23, a33));
    /* rotation p's lane L is row (L + p) % 4: lane r takes lane (r - p) % 4 */
    t1 = _mm512_shuffle_f32x4(t1, t1, 0x93);
    t2 = _mm512_shuffle_f32x4(t2, t2, 0x4E);
    t3 = _mm512_shuffle_f32x4(t3, t3, 0x39);
    return _mm512_add_ps(_mm512_add_ps(t0, t1), _mm512_add_ps(t2, t3));
}
#undef ROT4_KEY

/* Elements of one set of four rows' rotations (d <= 192). */
#define ROT4_SIZE (4 * 192)

/* Rows 0-3 of q (d channels apart; row rows - 1 standing in for missing ones) as
 * dot4_bf16_rot's rotations: group g, rotation p, lane L holds channels 32g + 8L .. +7 of row
 * (L + p) % 4, zeros past d. */
static void rotate_rows4(const uint16_t *q, int32_t d, int32_t rows, uint16_t *dst)
{
    int32_t g, p, l;
    for (g = 0; g < (d + 31) / 32; g++)
        for (p = 0; p < 4; p++)
            for (l = 0; l < 4; l++) {
                uint16_t *o = dst + (size_t)(4 * g + p) * 32 + 8 * l;
                const int32_t c = 32 * g + 8 * l, r = (l + p) % 4 < rows ? (l + p) % 4 : rows - 1;
                if (c < d)
                    memcpy(o, q + (size_t)r * (size_t)d + c, 16);
                else
                    memset(o, 0, 16);
            }
}

/* BODY(NS, HALF) with dot4_bf16_rot's constants for d (16..192): a case per d / 16. */
#define ROT4_SWITCH(d, BODY)                                                                       \
    switch ((d) / 16) {                                                                            \
    case 1: BODY(0, 1);                                                                            \
    case 2: BODY(1, 0);                                                                            \
    case 3: BODY(1, 1);                                                                            \
    case 4: BODY(2, 0);                                                                            \
    case 5: BODY(2, 1);                                                                            \
    case 6: BODY(3, 0);                                                                            \
    case 7: BODY(3, 1);                                                                            \
    case 8: BODY(4, 0);                                                                            \
    case 9: BODY(4, 1);                                                                            \
    case 10: BODY(5, 0);                                                                           \
    case 11: BODY(5, 1);                                                                           \
    default: BODY(6, 0);                                                                           \
    }

/* The same over fp32 rows (16 channels a step). */
AVX512 static __m512 dot16_f32(const float *qa, const float *const *ka, const float *qb,
                               const float *const *kb, int32_t d)
{
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0,
           a7 = a0, a8 = a0, a9 = a0, a10 = a0, a11 = a0, a12 = a0, a13 = a0, a14 = a0, a15 = a0;
    int32_t c;
    for (c = 0; c < d; c += 16) {
        const __m512 x = _mm512_loadu_ps(qa + c), y = _mm512_loadu_ps(qb + c);
#define ONE(j, q, acc) acc = _mm512_fmadd_ps(q, _mm512_loadu_ps((j) + c), acc)
        ONE(ka[0], x, a0);
        ONE(ka[1], x, a1);
        ONE(ka[2], x, a2);
        ONE(ka[3], x, a3);
        ONE(ka[4], x, a4);
        ONE(ka[5], x, a5);
        ONE(ka[6], x, a6);
        ONE(ka[7], x, a7);
        ONE(kb[0], y, a8);
        ONE(kb[1], y, a9);
        ONE(kb[2], y, a10);
        ONE(kb[3], y, a11);
        ONE(kb[4], y, a12);
        ONE(kb[5], y, a13);
        ONE(kb[6], y, a14);
        ONE(kb[7], y, a15);
#undef ONE
    }
    return reduce16(a0, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, a12, a13, a14, a15);
}

/* dst[0 .. count) = scale * lanes [0, count) of `sum`, or of lanes 8.. when `upper`. */
AVX512 static void store_scores(__m512 sum, float scale, int upper, int32_t count, float *dst)
{
    __m512 v = _mm512_mul_ps(sum, _mm512_set1_ps(scale));
    if (upper)
        v = _mm512_shuffle_f32x4(v, v, 0x4E); /* lanes 8-15 down to 0-7 */
    _mm512_mask_storeu_ps(dst, (__mmask16)(count >= 16 ? 0xFFFFu : (1u << count) - 1u), v);
}

/* Scores of keys [kg, kend) (at most 16; rows at kbase + j*row_bytes) for every row, into
 * out[r*lds + j - kg]: rows in pairs against 8 keys at a time, an odd last row against all
 * 16 at once. */
#define SCORE_GROUP(DOT, QT, KT, q, kbase, row_bytes, kg, kend, out)                             \
    do {                                                                                           \
        const KT *k8[2][8];                                                                        \
        const int32_t cnt_ = (kend) - (kg);                                                        \
        int32_t r_, h_;                                                                            \
        key_rows8((const char *)(kbase), row_bytes, kg, kend, (const char **)(void *)k8[0]);       \
        key_rows8((const char *)(kbase), row_bytes, cnt_ > 8 ? (kg) + 8 : (kend) - 1, kend,        \
                  (const char **)(void *)k8[1]);                                                   \
        for (r_ = 0; r_ + 1 < tile->m; r_ += 2) {                                                  \
            const QT *qa_ = (q) + (size_t)r_ * (size_t)d, *qb_ = qa_ + d;                          \
            for (h_ = 0; h_ < 2 && 8 * h_ < cnt_; h_++) {                                          \
                const __m512 v_ = DOT(qa_, k8[h_], qb_, k8[h_], d);                                \
                float *o_ = (out) + (size_t)r_ * (size_t)lds + 8 * h_;                             \
                const int32_t c_ = cnt_ - 8 * h_ < 8 ? cnt_ - 8 * h_ : 8;                          \
                store_scores(v_, tile->scale, 0, c_, o_);                                          \
                store_scores(v_, tile->scale, 1, c_, o_ + lds);                                    \
            }                                                                                      \
        }                                                                                          \
        if (r_ < tile->m) {                                                                        \
            const QT *qa_ = (q) + (size_t)r_ * (size_t)d;                                          \
            store_scores(DOT(qa_, k8[0], qa_, k8[1], d), tile->scale, 0, cnt_,                     \
                         (out) + (size_t)r_ * (size_t)lds);                                        \
        }                                                                                          \
    } while (0)

/* dst[0 .. count) = lanes [4r, 4r + count) of v, count <= 4. */
AVX512 static void store_scores4(__m512 v, int r, int32_t count, float *dst)
{
    const __m128 x = r == 0   ? _mm512_castps512_ps128(v)
                     : r == 1 ? _mm512_extractf32x4_ps(v, 1)
                     : r == 2 ? _mm512_extractf32x4_ps(v, 2)
                              : _mm512_extractf32x4_ps(v, 3);
    _mm_mask_storeu_ps(dst, (__mmask8)((1u << count) - 1u), x);
}

/* Scores of four keys (`cnt` of them) for `m` rows: 128-bit lane r of w, times `scale`. */
AVX512 INLINE void store_rows4(__m512 w, __m512 scale, int m, int32_t cnt, float *s,
                               int64_t lds)
{
    int r;
    w = _mm512_mul_ps(w, scale);
    for (r = 0; r < m; r++)
        store_scores4(w, r, cnt, s + (size_t)r * (size_t)lds);
}

/* Keys [j0, j0 + n) four at a time (lane 4r + j = q_r . k4[j]) for each set of four
 * rows (q4, ROT4_SIZE apart); a second set reads the same four key rows again from L1. */
#define SCORE_BF16_ROWS4(NS, HALF)                                                                 \
    for (g = j0; g < j0 + n; g += 4) {                                                             \
        const char *k4[4];                                                                         \
        const int32_t cnt = j0 + n - g < 4 ? j0 + n - g : 4;                                       \
        int r;                                                                                     \
        prefetch_ahead(blk, next, 0, 2, g + PREFETCH_KEYS(2), 4, (size_t)d * 2);                   \
        for (r = 0; r < 4; r++)                                                                    \
            k4[r] = (const char *)blk->k + (int64_t)(g + (r < cnt ? r : cnt - 1)) * row_bytes;    \
        store_rows4(dot4_bf16_rot(NS, HALF, q4, k4), scale, tile->m < 4 ? tile->m : 4, cnt,        \
                    s + (g - j0), lds);                                                            \
        if (tile->m > 4)                                                                           \
            store_rows4(dot4_bf16_rot(NS, HALF, q4 + ROT4_SIZE, k4), scale, tile->m - 4, cnt,      \
                        s + 4 * lds + (g - j0), lds);                                              \
    }                                                                                              \
    break

/* Keys [g, g + 16) of the chunk with instance DOT. */
#define SCORE_BF16(DOT)                                                                            \
    for (g = j0; g < j0 + n; g += 16) {                                                            \
        prefetch_ahead(blk, next, 0, 2, g + NSA_FUSED_PREFETCH, 16, (size_t)d * 2);                \
        SCORE_GROUP(DOT, uint16_t, char, qb, blk->k, blk->k_row_stride * 2, g,                     \
                    (g + 16 < j0 + n ? g + 16 : j0 + n), s + (g - j0));                            \
    }                                                                                              \
    break

/* Three to eight bf16 rows (rows in sets of four, the last row standing in for missing
 * ones), keys [j0, j0 + n) four at a time; one pass over each key row. */
AVX512BF16 static void scores_bf16_rows4(const nsa_attn_tile *tile, const uint16_t *qb,
                                         const nsa_kv_block *blk, const nsa_kv_block *next,
                                         int32_t j0, int32_t n, float *s, int64_t lds)
{
    const int32_t d = tile->d;
    uint16_t q4[2 * ROT4_SIZE];
    const int64_t row_bytes = blk->k_row_stride * 2;
    const __m512 scale = _mm512_set1_ps(tile->scale);
    int32_t g, set;
    for (set = 0; 4 * set < tile->m; set++)
        rotate_rows4(qb + (size_t)(4 * set) * (size_t)d, d, tile->m - 4 * set,
                     q4 + set * ROT4_SIZE);
    ROT4_SWITCH(d, SCORE_BF16_ROWS4)
}
#undef SCORE_BF16_ROWS4

AVX512BF16 static void scores_bf16_dot(const nsa_attn_tile *tile, const uint16_t *qb,
                                       const nsa_kv_block *blk, const nsa_kv_block *next,
                                       int32_t j0, int32_t n, float *s, int64_t lds)
{
    const int32_t d = tile->d;
    int32_t g;
    if (tile->m >= 3 && tile->m <= 8 && d <= 192) {
        scores_bf16_rows4(tile, qb, blk, next, j0, n, s, lds);
        return;
    }
    /* a direct call per d: through a function pointer the bf16 case measured 13 % slower */
    switch (d / 16) {
    case 1: SCORE_BF16(dot16_bf16_km_0_1);
    case 2: SCORE_BF16(dot16_bf16_km_1_0);
    case 3: SCORE_BF16(dot16_bf16_km_1_1);
    case 4: SCORE_BF16(dot16_bf16_km_2_0);
    case 5: SCORE_BF16(dot16_bf16_km_2_1);
    case 6: SCORE_BF16(dot16_bf16_km_3_0);
    case 7: SCORE_BF16(dot16_bf16_km_3_1);
    case 8: SCORE_BF16(dot16_bf16_km_4_0);
    case 9: SCORE_BF16(dot16_bf16_km_4_1);
    case 10: SCORE_BF16(dot16_bf16_km_5_0);
    case 11: SCORE_BF16(dot16_bf16_km_5_1);
    case 12: SCORE_BF16(dot16_bf16_km_6_0);
    default: SCORE_BF16(dot16_bf16);
    }
}
#undef SCORE_BF16

/* Offsets of channels [c, c + 16) as a vector (0 without offsets); stride 0 or 1, which
 * nsa_fused_usable checks. */
AVX512 static __m512 offset16(const nsa_dequant *dq, int32_t c)
{
    if (!dq->offset)
        return _mm512_setzero_ps();
    return dq->offset_stride ? _mm512_loadu_ps(dq->offset + c) : _mm512_set1_ps(dq->offset[0]);
}

/* The 16 int8 values at src as fp32 (plus `offset`). */
AVX512 INLINE __m512 i8_widen16(const char *src)
{
    const __m128i x = _mm_loadu_si128((const __m128i *)(const void *)src);
    return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(x));
}

/* The 16 f16 values at src as fp32 (exact). */
AVX512 INLINE __m512 f16_widen16(const char *src)
{
    return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(const void *)src));
}

AVX512 INLINE __m512 i8_plus_offset16(const char *src, __m512 offset)
{
    return _mm512_add_ps(i8_widen16(src), offset);
}

/* int8 rows as fp32 x + offset[c] (the scales are folded into the queries and the output,
 * see nsa_fused_prepare), d % 16 == 0. */
AVX512 static void i8_row_plus_offset(const int8_t *src, const nsa_dequant *dq, int32_t d,
                                      float *dst)
{
    int32_t c;
    for (c = 0; c < d; c += 16)
        _mm512_storeu_ps(dst + c, i8_plus_offset16((const char *)src + c, offset16(dq, c)));
}

/* Kinds of keys rows4_widened takes: int8, int8 with offsets, f16. */
enum { ROWS4_I8, ROWS4_I8_OFFSET, ROWS4_F16 };

/* One step of 16 channels (c) for four fp32 query rows (q4) against four keys (k4): the
 * accumulator of row r and key j is a_{4r+j}; FIRST starts them (a product, no add). Each key's
 * 16 values are widened in registers (int8 plus the offset with ROWS4_I8_OFFSET) and serve all
 * four rows. */
#define WIDE_KEY(j, A0, A1, A2, A3, FIRST)                                                         \
    x = KIND == ROWS4_F16         ? f16_widen16(k4[j] + 2 * c)                                    \
        : KIND == ROWS4_I8_OFFSET ? i8_plus_offset16(k4[j] + c, of)                               \
                                  : i8_widen16(k4[j] + c);                                        \
    A0 = FIRST ? _mm512_mul_ps(q0, x) : _mm512_fmadd_ps(q0, x, A0);                               \
    A1 = FIRST ? _mm512_mul_ps(q1, x) : _mm512_fmadd_ps(q1, x, A1);                               \
    A2 = FIRST ? _mm512_mul_ps(q2, x) : _mm512_fmadd_ps(q2, x, A2);                               \
    A3 = FIRST ? _mm512_mul_ps(q3, x) : _mm512_fmadd_ps(q3, x, A3)
#define WIDE_STEP(FIRST)                                                                           \
    do {                                                                                           \
        const __m512 q0 = _mm512_loadu_ps(q4[0] + c), q1 = _mm512_loadu_ps(q4[1] + c),            \
                     q2 = _mm512_loadu_ps(q4[2] + c), q3 = _mm512_loadu_ps(q4[3] + c),            \
                     of = KIND == ROWS4_I8_OFFSET ? offset16(dq, c) : zero;                        \
        __m512 x;                                                                                  \
        WIDE_KEY(0, a0, a4, a8, a12, FIRST);                                                       \
        WIDE_KEY(1, a1, a5, a9, a13, FIRST);                                                       \
        WIDE_KEY(2, a2, a6, a10, a14, FIRST);                                                      \
        WIDE_KEY(3, a3, a7, a11, a15, FIRST);                                                      \
    } while (0)

/* int8 or f16 keys for up to four rows per entry (three: the last row twice), four keys at a
 * time. The reduction of one group of four keys is spread over the first three steps of the
 * next: done at once, its chain of shuffles and adds held the FMAs of the next group back (a
 * model of this loop over keys in L1: 21.3 cycles per key and kv head, 16.9 with no reduction
 * at all, 19.0 spread). Without offsets (ROWS4_I8) the widening adds nothing, which keeps a
 * register free (in-cache int8 decode 52 -> 50 cycles per key and kv head). `count` entries
 * (the heads of a lockstep group, `pc` their token-row walk instead of the per-row prefetch;
 * or up to four row sets of one tile, over the same block, prefetched once) take `keys` keys
 * in turn, the spread carrying over from one entry's group to the next; they share the scale.
 * One tile of up to four rows: count 1, keys n. */
AVX512 INLINE void rows4_widened(const int KIND, const nsa_attn_tile *tiles, int32_t count,
                                 const float *const *q, const nsa_kv_block *const *blks,
                                 const nsa_kv_block *next, pf_cursor *pc, int32_t keys,
                                 int32_t j0, int32_t n, float *const *s, int64_t lds)
{
    const int32_t d = tiles[0].d;
    const size_t esize = KIND == ROWS4_F16 ? 2 : 1;
    const __m512 scale = _mm512_set1_ps(tiles[0].scale), zero = _mm512_setzero_ps();
    __m512 a0 = zero, a1 = zero, a2 = zero, a3 = zero, a4 = zero, a5 = zero, a6 = zero,
           a7 = zero, a8 = zero, a9 = zero, a10 = zero, a11 = zero, a12 = zero, a13 = zero,
           a14 = zero, a15 = zero;
    __m512 u0 = zero, u1 = zero, u2 = zero, u3 = zero, v0 = zero, v1 = zero, v2 = zero,
           v3 = zero;
    float *prev_s = NULL; /* the previous group's scores, reduced during this group */
    int32_t g0, g, c, i, t, prev_cnt = 0;
    int prev_m = 0;
    for (g0 = j0; g0 < j0 + n; g0 += keys)
        for (t = 0; t < count; t++) {
            const nsa_kv_block *blk = blks[t];
            const int m = tiles[t].m, fetch = t == 0 || blk != blks[t - 1];
            const int64_t row_bytes = blk->k_row_stride * (int64_t)esize;
            const nsa_dequant *dq = &tiles[t].k_dequant;
            const int32_t end = j0 + n - g0 < keys ? j0 + n : g0 + keys;
            const float *q4[4];
            for (i = 0; i < 4; i++)
                q4[i] = q[t] + (size_t)(i < m ? i : m - 1) * (size_t)d;
            for (g = g0; g < end; g += 4) {
                const int32_t cnt = end - g < 4 ? end - g : 4;
                const int prev = prev_s != NULL;
                const char *k4[4];
                if (pc)
                    cursor_fetch(pc, 4);
                else if (fetch)
                    prefetch_ahead(blk, next, 0, esize, g + PREFETCH_KEYS(esize), 4,
                                   (size_t)d * esize);
                for (i = 0; i < 4; i++)
                    k4[i] =
                        (const char *)blk->k + (int64_t)(g + (i < cnt ? i : cnt - 1)) * row_bytes;
                if (prev) { /* the previous group: within 128-bit lanes, first level */
                    u0 = in_lanes32(a0, a1), u1 = in_lanes32(a2, a3), u2 = in_lanes32(a4, a5),
                    u3 = in_lanes32(a6, a7);
                    v0 = in_lanes32(a8, a9), v1 = in_lanes32(a10, a11),
                    v2 = in_lanes32(a12, a13), v3 = in_lanes32(a14, a15);
                }
                c = 0;
                WIDE_STEP(1);
                if (prev) /* second level */
                    u0 = in_lanes64(u0, u1), u1 = in_lanes64(u2, u3), u2 = in_lanes64(v0, v1),
                    u3 = in_lanes64(v2, v3);
                c = 16;
                if (c < d)
                    WIDE_STEP(0);
                if (prev) /* across 128-bit lanes, first half */
                    u0 = pair128(u0, u1), u1 = pair128(u2, u3);
                c = 32;
                if (c < d)
                    WIDE_STEP(0);
                if (prev)
                    store_rows4(pair256(u0, u1), scale, prev_m, prev_cnt, prev_s, lds);
                for (c = 48; c < d; c += 16)
                    WIDE_STEP(0);
                prev_s = s[t] + (g - j0);
                prev_cnt = cnt;
                prev_m = m;
            }
        }
    if (prev_s) /* the last group, in the same order */
        store_rows4(reduce_across_lanes(in_lanes64(in_lanes32(a0, a1), in_lanes32(a2, a3)),
                                        in_lanes64(in_lanes32(a4, a5), in_lanes32(a6, a7)),
                                        in_lanes64(in_lanes32(a8, a9), in_lanes32(a10, a11)),
                                        in_lanes64(in_lanes32(a12, a13), in_lanes32(a14, a15))),
                    scale, prev_m, prev_cnt, prev_s, lds);
}

/* Three to sixteen rows: up to four as one entry; more as entries of four rows of the same tile
 * (the last one the rest) taking each four keys in turn, all but the first from L1. */
AVX512 static void scores_rows4_widened(const nsa_attn_tile *tile, const float *q,
                                        const nsa_kv_block *blk, const nsa_kv_block *next,
                                        int32_t j0, int32_t n, float *s, int64_t lds)
{
    nsa_attn_tile sets[4];
    const float *qs[4];
    const nsa_kv_block *blks[4];
    float *ss[4];
    const int32_t count = (tile->m + 3) / 4, keys = count == 1 ? n : 4;
    int32_t i;
    for (i = 0; i < count; i++) {
        sets[i] = *tile;
        sets[i].m = tile->m - 4 * i < 4 ? tile->m - 4 * i : 4;
        qs[i] = q + (size_t)(4 * i) * (size_t)tile->d;
        blks[i] = blk;
        ss[i] = s + 4 * i * lds;
    }
    if (tile->kv_dtype == NSA_DTYPE_F16)
        rows4_widened(ROWS4_F16, sets, count, qs, blks, next, NULL, keys, j0, n, ss, lds);
    else if (tile->k_dequant.offset)
        rows4_widened(ROWS4_I8_OFFSET, sets, count, qs, blks, next, NULL, keys, j0, n, ss, lds);
    else
        rows4_widened(ROWS4_I8, sets, count, qs, blks, next, NULL, keys, j0, n, ss, lds);
}
#undef WIDE_STEP
#undef WIDE_KEY

/* Keys of other dtypes (or queries that are not bf16), 16 at a time: f32 rows are read in
 * place, others widened to fp32 rows in `tmp` (16 x d floats, stays in L1); then fp32 FMAs. */
AVX512 static void scores_fp32(const nsa_attn_tile *tile, const float *q,
                               const nsa_kv_block *blk, const nsa_kv_block *next, int32_t j0,
                               int32_t n, float *s, int64_t lds, float *tmp)
{
    const int32_t d = tile->d;
    const size_t esize = nsa_dtype_size(tile->kv_dtype);
    const int64_t row_bytes = blk->k_row_stride * (int64_t)esize;
    int32_t g, jj;
    if ((tile->kv_dtype == NSA_DTYPE_I8 || tile->kv_dtype == NSA_DTYPE_F16) && tile->m >= 3 &&
        tile->m <= 16) {
        scores_rows4_widened(tile, q, blk, next, j0, n, s, lds);
        return;
    }
    for (g = j0; g < j0 + n; g += 16) {
        const int32_t cnt = j0 + n - g < 16 ? j0 + n - g : 16;
        prefetch_ahead(blk, next, 0, esize, g + PREFETCH_KEYS(esize), 16, (size_t)d * esize);
        if (tile->kv_dtype == NSA_DTYPE_F32) {
            SCORE_GROUP(dot16_f32, float, float, q, blk->k, row_bytes, g, g + cnt,
                        s + (g - j0));
            continue;
        }
        for (jj = 0; jj < cnt; jj++) {
            const char *row = (const char *)blk->k + (int64_t)(g + jj) * row_bytes;
            if (tile->kv_dtype == NSA_DTYPE_I8)
                i8_row_plus_offset((const int8_t *)row, &tile->k_dequant, d,
                                   tmp + (size_t)jj * d);
            else
                nsa_load_f32(row, tile->kv_dtype, 1, tmp + (size_t)jj * d, d);
        }
        SCORE_GROUP(dot16_f32, float, float, q, tmp, (int64_t)d * 4, 0, cnt, s + (g - j0));
    }
}

/* 16 channels of a value row as fp32; int8 as x + offset (its scale is applied to the output
 * by nsa_fused_finish). */
AVX512 INLINE __m512 load_value(nsa_dtype dt, const char *row, int32_t c, __m512 offset)
{
    switch (dt) {
    case NSA_DTYPE_BF16:
        return _mm512_castsi512_ps(_mm512_slli_epi32(
            _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(row + (size_t)c * 2))),
            16));
    case NSA_DTYPE_F16:
        return f16_widen16(row + (size_t)c * 2);
    case NSA_DTYPE_I8:
        return i8_plus_offset16(row + (size_t)c, offset);
    default:
        return _mm512_loadu_ps((const float *)(void *)row + c);
    }
}

/* bf16 channels [0, 32) at src as fp32: the even ones (each shifted into the upper half of its
 * 32-bit lane) and the odd ones (the lower half masked off). One load and one simple op per 16
 * channels, where widening in channel order takes a shuffle and a shift. The P.V accumulators
 * then hold each 32-channel block even channels first; nsa_fused_finish restores the order. */
AVX512 INLINE void bf16_even_odd(const char *src, __m512 *even, __m512 *odd)
{
    const __m512i x = _mm512_loadu_si512(src);
    *even = _mm512_castsi512_ps(_mm512_slli_epi32(x, 16));
    *odd = _mm512_castsi512_ps(_mm512_and_si512(x, _mm512_set1_epi32((int)0xFFFF0000u)));
}

/* o[r][c0 .. c0 + 16*NZ) += sum_j p[r][j] * v[j][...] for M rows (compile-time M, NZ keep the
 * M*NZ accumulators in registers). bf16 with NZ even: c0 % 32 == 0, channels even/odd (above).
 * With `ahead`, each key also asks for the value row PREFETCH_KEYS(esize) keys on. */
AVX512 INLINE void pv_block(const int M, const int NZ, nsa_dtype dt, const nsa_dequant *dq,
                            const float *p, int64_t ldp, const nsa_kv_block *blk,
                            const nsa_kv_block *next, int ahead, pf_cursor *pc, int32_t j0,
                            int32_t n, int32_t c0, float *o, int32_t dv)
{
    const size_t esize = dt == NSA_DTYPE_I8 ? 1 : dt == NSA_DTYPE_F32 ? 4 : 2; /* no call */
    __m512 acc[8][8], of[8];
    int r, z;
    int32_t j;
    for (z = 0; z < NZ; z++)
        of[z] = dt == NSA_DTYPE_I8 ? offset16(dq, c0 + 16 * z) : _mm512_setzero_ps();
    for (r = 0; r < M; r++)
        for (z = 0; z < NZ; z++)
            acc[r][z] = _mm512_loadu_ps(o + (size_t)r * (size_t)dv + c0 + 16 * z);
    for (j = 0; j < n; j++) {
        const char *row =
            (const char *)blk->v + (int64_t)(j0 + j) * blk->v_row_stride * (int64_t)esize;
        __m512 v[8];
        if (ahead) /* one row per key */
            prefetch_ahead(blk, next, 1, esize, j0 + j + PREFETCH_KEYS(esize), 1,
                           (size_t)dv * esize);
        else if (pc)
            cursor_fetch(pc, 1);
        if (dt == NSA_DTYPE_BF16 && NZ % 2 == 0)
            for (z = 0; z < NZ; z += 2)
                bf16_even_odd(row + (size_t)(c0 + 16 * z) * 2, &v[z], &v[z + 1]);
        else
            for (z = 0; z < NZ; z++)
                v[z] = load_value(dt, row, c0 + 16 * z, of[z]);
        for (r = 0; r < M; r++) {
            __m512 pr = _mm512_set1_ps(p[(size_t)r * (size_t)ldp + j]);
            for (z = 0; z < NZ; z++)
                acc[r][z] = _mm512_fmadd_ps(pr, v[z], acc[r][z]);
        }
    }
    for (r = 0; r < M; r++)
        for (z = 0; z < NZ; z++)
            _mm512_storeu_ps(o + (size_t)r * (size_t)dv + c0 + 16 * z, acc[r][z]);
}

/* All channels of M rows, 16 keys at a time (int8: 64, 8 KiB of rows, which halves the loads
 * and stores of the accumulators per key: in-cache int8 decode 59.7 -> 58 cycles per key and kv
 * head): blocks of 64 channels (32 above 4 rows), then single vectors; the group's value rows
 * stay in L1 between the blocks. bf16 and f16 values
 * with dv == 128 and up to 4 rows go instead in row pairs over whole rows, so that the first
 * pair reads the group's memory in address order, which the hardware prefetchers follow (the
 * channel blocks read 16 rows side by side); their widening is cheap enough to do once per
 * pair. int8 widening is not: it stays on the blocks (decode int8 is compute-bound). The first
 * pass over a group (first pair, first block) prefetches one row per key, when `ahead` (the
 * first group of rows: a tile of more than 8 rows calls this once per 8). */
AVX512 INLINE void pv_rows(const int M, nsa_dtype dt, const nsa_dequant *dq, const float *p,
                           int64_t ldp, const nsa_kv_block *blk, const nsa_kv_block *next,
                           int ahead, pf_cursor *pc, int32_t j0, int32_t n, float *o, int32_t dv)
{
    const int NZ = M <= 4 ? 4 : 2;
    const int32_t gsize = dt == NSA_DTYPE_I8 ? 64 : 16;
    int32_t g;
    for (g = 0; g < n; g += gsize) {
        const int32_t cnt = n - g < gsize ? n - g : gsize;
        int32_t c0 = 0;
        if (dv == 128 && M <= 4 && dt != NSA_DTYPE_I8) {
            int r;
            for (r = 0; r + 2 <= M; r += 2)
                pv_block(2, 8, dt, dq, p + g + (size_t)r * (size_t)ldp, ldp, blk, next,
                         ahead && r == 0, r == 0 ? pc : NULL, j0 + g, cnt, 0,
                         o + (size_t)r * (size_t)dv, dv);
            if (r < M)
                pv_block(1, 8, dt, dq, p + g + (size_t)r * (size_t)ldp, ldp, blk, next,
                         ahead && r == 0, r == 0 ? pc : NULL, j0 + g, cnt, 0,
                         o + (size_t)r * (size_t)dv, dv);
            continue;
        }
        for (; c0 + 16 * NZ <= dv; c0 += 16 * NZ)
            pv_block(M, NZ, dt, dq, p + g, ldp, blk, next, ahead && c0 == 0, c0 == 0 ? pc : NULL,
                     j0 + g, cnt, c0, o, dv);
        for (; c0 + 32 <= dv; c0 += 32)
            pv_block(M, 2, dt, dq, p + g, ldp, blk, next, ahead && c0 == 0, c0 == 0 ? pc : NULL,
                     j0 + g, cnt, c0, o, dv);
        if (c0 < dv) /* the last 16 of dv % 32 == 16, in channel order */
            pv_block(M, 1, dt, dq, p + g, ldp, blk, next, ahead && c0 == 0, c0 == 0 ? pc : NULL,
                     j0 + g, cnt, c0, o, dv);
    }
}

/* One instance per (rows, dtype) so the dtype switch and the loops over rows and vectors
 * resolve at compile time. */
#define PV_DTYPES(M)                                                                               \
    AVX512 static void pv_##M(nsa_dtype dt, const nsa_dequant *dq, const float *p, int64_t ldp,    \
                              const nsa_kv_block *blk, const nsa_kv_block *next, int ahead,        \
                              int32_t j0, int32_t n, float *o, int32_t dv)                         \
    {                                                                                              \
        switch (dt) {                                                                              \
        case NSA_DTYPE_BF16:                                                                       \
            pv_rows(M, NSA_DTYPE_BF16, dq, p, ldp, blk, next, ahead, NULL, j0, n, o, dv);          \
            break;                                                                                 \
        case NSA_DTYPE_F16:                                                                        \
            pv_rows(M, NSA_DTYPE_F16, dq, p, ldp, blk, next, ahead, NULL, j0, n, o, dv);           \
            break;                                                                                 \
        case NSA_DTYPE_I8:                                                                         \
            pv_rows(M, NSA_DTYPE_I8, dq, p, ldp, blk, next, ahead, NULL, j0, n, o, dv);            \
            break;                                                                                 \
        default:                                                                                   \
            pv_rows(M, NSA_DTYPE_F32, dq, p, ldp, blk, next, ahead, NULL, j0, n, o, dv);           \
            break;                                                                                 \
        }                                                                                          \
    }
PV_DTYPES(1)
PV_DTYPES(2)
PV_DTYPES(3)
PV_DTYPES(4)
PV_DTYPES(5)
PV_DTYPES(6)
PV_DTYPES(7)
PV_DTYPES(8)

/* The heads of a group in lockstep (nsa_fused_heads_usable): a BSH/BSND token row holds every
 * kv head's K (V) row, so one head's rows lie a power of two bytes apart (2 KiB for 8 heads of
 * 128 bf16 channels) and the per-head loops above keep dozens of them in flight, all on a few
 * L1 sets: bf16 decode of a BSH cache took 5.6-5.8 ms against 3.6-3.8 for BNSD (one thread,
 * S = 32768); the same cache with 64 bytes of padding per token row took 4.0-4.4. Here each
 * head takes a few keys in turn, and the group's token rows are prefetched whole, in address
 * order, HEADS_AHEAD tokens ahead: 3.78-3.79 ms. bf16: prefetching 12 or 16 tokens ahead
 * measured 3.87-3.96 and 4.06-4.14, P.V steps of 12 or 16 keys 5.5-5.6. int8 (4.24-4.55 ms
 * with the per-head loops): 3.23-3.34 with 8 keys a head for Q.K^T and P.V; P.V steps of 16,
 * 32 or 64 keys 3.72-3.85, 4.34-4.42 and 4.40-4.44; with Q.K^T's reduction restarted for each
 * head's keys, 8 keys 3.56-3.62, 4 or 16 for Q.K^T 3.65-3.80 and 3.99-4.08, 4, 16 or 32
 * tokens ahead 5.2, 3.66-3.78 and 3.71-3.82. In L3, int8 pays for the 8-key P.V steps (the
 * accumulators loaded and stored 8 times as often): docs/kernel.md. */

/* bf16: four keys of every tile, then the next four (SCORE_BF16_ROWS4 per tile, block b). */
#define SCORE_HEADS_BF16(NS, HALF)                                                                 \
    for (g = j0; g < j0 + n; g += 4) {                                                             \
        const int32_t cnt = j0 + n - g < 4 ? j0 + n - g : 4;                                       \
        for (t = 0; t < count; t++) {                                                              \
            const char *base = (const char *)tiles[t].blocks[b].k, *k4[4];                         \
            int r;                                                                                 \
            cursor_fetch(&pc, 4);                                                                  \
            for (r = 0; r < 4; r++)                                                                \
                k4[r] = base + (int64_t)(g + (r < cnt ? r : cnt - 1)) * row_bytes;                 \
            store_rows4(dot4_bf16_rot(NS, HALF, qi[t], k4), scale, 4, cnt, s[t] + (g - j0), lds); \
        }                                                                                          \
    }                                                                                              \
    break

AVX512BF16 static void scores_heads_bf16(const nsa_attn_tile *tiles, int32_t count,
                                         const uint16_t *const *qb, int32_t b, int32_t j0,
                                         int32_t n, float *const *s, int64_t lds)
{
    const int32_t d = tiles[0].d;
    const int64_t row_bytes = tiles[0].blocks[b].k_row_stride * 2;
    const __m512 scale = _mm512_set1_ps(tiles[0].scale); /* one scale: heads_usable */
    pf_cursor pc;
    uint16_t qi[NSA_ATTN_MAX_GROUP][ROT4_SIZE];
    int32_t g, t;
    for (t = 0; t < count; t++)
        rotate_rows4(qb[t], d, 4, qi[t]);
    cursor_start(&pc, &tiles[0], count, 0, b, j0);
    ROT4_SWITCH(d, SCORE_HEADS_BF16)
}
#undef SCORE_HEADS_BF16
#undef ROT4_SWITCH

/* int8: HEADS_KEYS keys of every tile, then the next ones (rows4_widened over the group). */
AVX512 static void scores_heads_i8(const nsa_attn_tile *tiles, int32_t count,
                                   const float *const *q, int32_t b, int32_t j0, int32_t n,
                                   float *const *s, int64_t lds)
{
    const nsa_kv_block *blks[NSA_ATTN_MAX_GROUP];
    pf_cursor pc;
    int32_t t;
    for (t = 0; t < count; t++)
        blks[t] = &tiles[t].blocks[b];
    cursor_start(&pc, &tiles[0], count, 0, b, j0);
    if (tiles[0].k_dequant.offset)
        rows4_widened(ROWS4_I8_OFFSET, tiles, count, q, blks, NULL, &pc, HEADS_KEYS, j0, n, s,
                      lds);
    else
        rows4_widened(ROWS4_I8, tiles, count, q, blks, NULL, &pc, HEADS_KEYS, j0, n, s, lds);
}

/* HEADS_KEYS values of every tile, then the next ones (pv_rows per tile, block b). */
AVX512 INLINE void pv_heads_dt(nsa_dtype dt, const nsa_attn_tile *tiles, int32_t count,
                               const float *const *p, int64_t ldp, int32_t b, int32_t j0,
                               int32_t n, float *const *o)
{
    const int32_t dv = tiles[0].dv;
    pf_cursor pc;
    int32_t g, t;
    cursor_start(&pc, &tiles[0], count, 1, b, j0);
    for (g = 0; g < n; g += HEADS_KEYS) {
        const int32_t cnt = n - g < HEADS_KEYS ? n - g : HEADS_KEYS;
        for (t = 0; t < count; t++)
            pv_rows(4, dt, &tiles[t].v_dequant, p[t] + g, ldp, &tiles[t].blocks[b], NULL, 0, &pc,
                    j0 + g, cnt, o[t], dv);
    }
}

AVX512 static void pv_heads(const nsa_attn_tile *tiles, int32_t count, const float *const *p,
                            int64_t ldp, int32_t b, int32_t j0, int32_t n, float *const *o)
{
    if (tiles[0].kv_dtype == NSA_DTYPE_I8)
        pv_heads_dt(NSA_DTYPE_I8, tiles, count, p, ldp, b, j0, n, o);
    else
        pv_heads_dt(NSA_DTYPE_BF16, tiles, count, p, ldp, b, j0, n, o);
}

#endif /* NSA_FUSED_X86 */

/* x[r][c] *= the dequantisation scale of channel c (1 without scales), for m rows of `width`
 * channels. */
static void scale_columns(const nsa_dequant *dq, float *x, int32_t m, int32_t width)
{
    int32_t r, c;
    if (!dq->scale)
        return;
    for (r = 0; r < m; r++)
        for (c = 0; c < width; c++)
            x[(size_t)r * (size_t)width + c] *= dq->scale[(int64_t)c * dq->scale_stride];
}

const uint16_t *nsa_fused_prepare(const nsa_attn_tile *tile, float *q, uint16_t *q_bf16)
{
    if (nsa_fused_uses_bf16_dot(tile)) { /* bf16 queries: back to bf16 exactly */
        nsa_store_f32(q, q_bf16, NSA_DTYPE_BF16, 1, (int64_t)tile->m * tile->d,
                      NSA_ROUND_NEAREST_EVEN);
        return q_bf16;
    }
    if (tile->kv_dtype == NSA_DTYPE_I8)
        scale_columns(&tile->k_dequant, q, tile->m, tile->d);
    return NULL;
}

#ifdef NSA_FUSED_X86
/* Each full 32-channel block of m rows of dv channels from even-then-odd (bf16_even_odd) back to
 * channel order. */
AVX512 static void bf16_blocks_in_order(float *o, int32_t m, int32_t dv)
{
    const __m512i lo = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    const __m512i hi = _mm512_add_epi32(lo, _mm512_set1_epi32(8));
    int32_t r, c;
    for (r = 0; r < m; r++)
        for (c = 0; c + 32 <= dv; c += 32) {
            float *x = o + (size_t)r * (size_t)dv + c;
            const __m512 even = _mm512_loadu_ps(x), odd = _mm512_loadu_ps(x + 16);
            _mm512_storeu_ps(x, _mm512_permutex2var_ps(even, lo, odd));
            _mm512_storeu_ps(x + 16, _mm512_permutex2var_ps(even, hi, odd));
        }
}
#endif

void nsa_fused_finish(const nsa_attn_tile *tile, float *o)
{
    if (tile->kv_dtype == NSA_DTYPE_I8)
        scale_columns(&tile->v_dequant, o, tile->m, tile->dv);
#ifdef NSA_FUSED_X86
    if (tile->kv_dtype == NSA_DTYPE_BF16 && nsa_cpu_has_avx512())
        bf16_blocks_in_order(o, tile->m, tile->dv);
#endif
}

int nsa_fused_side_by_side(const nsa_attn_tile *tiles, int32_t count)
{
    const nsa_attn_tile *lead = &tiles[0];
    const int32_t d = lead->d, dv = lead->dv;
    const int64_t es = (int64_t)nsa_dtype_size(lead->kv_dtype);
    int32_t t, b;
    if (count < 2)
        return 0;
    for (t = 0; t < count; t++)
        if (tiles[t].d != d || tiles[t].dv != dv || tiles[t].kv_dtype != lead->kv_dtype)
            return 0;
    for (b = 0; b < lead->nblocks; b++) {
        const nsa_kv_block *l = &lead->blocks[b];
        if (l->k_row_stride < (int64_t)count * d || l->v_row_stride < (int64_t)count * dv)
            return 0;
        for (t = 1; t < count; t++) {
            const nsa_kv_block *x = &tiles[t].blocks[b];
            if (x->k != (const void *)((const char *)l->k + (int64_t)t * d * es) ||
                x->v != (const void *)((const char *)l->v + (int64_t)t * dv * es) ||
                x->k_row_stride != l->k_row_stride || x->v_row_stride != l->v_row_stride)
                return 0;
        }
    }
    return 1;
}

int nsa_fused_heads_usable(const nsa_attn_tile *tiles, int32_t count)
{
#ifdef NSA_FUSED_X86
    const nsa_attn_tile *lead = &tiles[0];
    int32_t t;
    if (count < 2 || lead->d > 192 || !nsa_cpu_has_avx512())
        return 0;
    for (t = 0; t < count; t++)
        if (tiles[t].m != 4 || tiles[t].dv != 128 || tiles[t].scale != lead->scale ||
            !(nsa_fused_uses_bf16_dot(&tiles[t]) || tiles[t].kv_dtype == NSA_DTYPE_I8))
            return 0;
    return nsa_fused_side_by_side(tiles, count);
#else
    (void)tiles, (void)count;
    return 0;
#endif
}

void nsa_fused_scores_heads(const nsa_attn_tile *tiles, int32_t count, const float *const *q,
                            const uint16_t *const *qb, int32_t b, int32_t j0, int32_t n,
                            float *const *s, int64_t lds)
{
#ifdef NSA_FUSED_X86
    if (tiles[0].kv_dtype == NSA_DTYPE_I8)
        scores_heads_i8(tiles, count, q, b, j0, n, s, lds);
    else
        scores_heads_bf16(tiles, count, qb, b, j0, n, s, lds);
#else
    (void)tiles, (void)count, (void)q, (void)qb, (void)b, (void)j0, (void)n, (void)s, (void)lds;
#endif
}

void nsa_fused_accumulate_heads(const nsa_attn_tile *tiles, int32_t count, const float *const *p,
                                int64_t ldp, int32_t b, int32_t j0, int32_t n, float *const *o)
{
#ifdef NSA_FUSED_X86
    pv_heads(tiles, count, p, ldp, b, j0, n, o);
#else
    (void)tiles, (void)count, (void)p, (void)ldp, (void)b, (void)j0, (void)n, (void)o;
#endif
}

void nsa_fused_scores(const nsa_attn_tile *tile, const float *q, const uint16_t *q_bf16,
                      const nsa_kv_block *blk, const nsa_kv_block *next, int32_t j0, int32_t n,
                      float *s, int64_t lds, float *tmp)
{
#ifdef NSA_FUSED_X86
    if (!nsa_cpu_has_avx512())
        nsa_fused_avx2_scores(tile, q, blk, next, j0, n, s, lds);
    else if (q_bf16)
        scores_bf16_dot(tile, q_bf16, blk, next, j0, n, s, lds);
    else
        scores_fp32(tile, q, blk, next, j0, n, s, lds, tmp);
#else
    (void)tile, (void)q, (void)q_bf16, (void)blk, (void)next, (void)j0, (void)n, (void)s,
        (void)lds, (void)tmp;
#endif
}

void nsa_fused_accumulate(const nsa_attn_tile *tile, const float *p, int64_t ldp,
                          const nsa_kv_block *blk, const nsa_kv_block *next, int32_t j0,
                          int32_t n, float *o)
{
#ifdef NSA_FUSED_X86
    typedef void (*pv_fn)(nsa_dtype, const nsa_dequant *, const float *, int64_t,
                          const nsa_kv_block *, const nsa_kv_block *, int, int32_t, int32_t,
                          float *, int32_t);
    static const pv_fn fns[8] = {pv_1, pv_2, pv_3, pv_4, pv_5, pv_6, pv_7, pv_8};
    int32_t r0;
    if (!nsa_cpu_has_avx512()) {
        nsa_fused_avx2_accumulate(tile, p, ldp, blk, next, j0, n, o);
        return;
    }
    /* rows in groups of at most 8 (the accumulators of a group fill the registers) */
    for (r0 = 0; r0 < tile->m; r0 += 8) {
        const int32_t rows = tile->m - r0 < 8 ? tile->m - r0 : 8;
        fns[rows - 1](tile->kv_dtype, &tile->v_dequant, p + (size_t)r0 * (size_t)ldp, ldp, blk,
                      next, r0 == 0, j0, n, o + (size_t)r0 * (size_t)tile->dv, tile->dv);
    }
#else
    (void)tile, (void)p, (void)ldp, (void)blk, (void)next, (void)j0, (void)n, (void)o;
#endif
}
