/* SPDX-License-Identifier: Apache-2.0 */
/*
 * nsa_compress's fused window kernels on AVX2 (compress_avx2.h): compress.c's AVX-512 strip
 * kernels in 256-bit registers. Each 32-channel strip (a 64-byte line of bf16) of a window's
 * l rows is loaded from the caller's memory, widened in registers and reduced in the kernel's
 * ReduceBlock pairing (leaves w_i x_i + w_(i+a) x_(i+a), then halving), depth first so that
 * the tree stays in registers. No "fma" target: every product and every sum is rounded on its
 * own, as on the portable path, so the results are the same bits.
 *
 * bf16 is widened from one load per 16 channels into the even and the odd channels (a shift
 * and an and) and interleaved back when stored. A last strip of fewer than 32 channels is
 * copied into a zero-padded buffer first (AVX2 has no masked 16-bit loads).
 *
 * Why 32 channels, measured on a Zen 3 (bf16, l = 32, d = 16, one thread, input in L3): rows
 * N * D elements apart (6 KiB for N = 16, D = 192; 4 KiB for D = 128) fall in one or two sets
 * of the 32 KiB 8-way L1, so with 16-channel strips the second strip of each line found its
 * l + a rows evicted: 6.2 GB/s, against 9.3 GB/s with 32-channel strips, whose tree spills a
 * little (N = 32, D = 128: 5.6 against 8.5). Where rows do not alias (N = 15) 16-channel strips
 * were faster (14.7 against 11.1 GB/s); head counts are powers of two in the models served.
 * Tried and left out: copying a window's rows to a padded buffer (4-6 GB/s); a tree over whole
 * rows, its partial sums in a stack of rows in L1 (5-7 GB/s, with software prefetch).
 */
#include "ops/compress_avx2.h"

#include "nsa/nsa_core.h"

#if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__)
#include <immintrin.h>
#include <string.h>

#include "kernel/simd.h"

#define TARGET __attribute__((target("avx2,f16c")))
/* As in compress.c: forced inlining keeps the tree in registers, and unoptimised or
 * AddressSanitizer builds skip it (instrumenting the inlined instances is slow to compile). */
#if defined(__SANITIZE_ADDRESS__)
#define COMPRESS_AVX2_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define COMPRESS_AVX2_ASAN 1
#endif
#endif
#if defined(__OPTIMIZE__) && !defined(COMPRESS_AVX2_ASAN)
#define INLINE static inline __attribute__((always_inline)) TARGET
#else
#define INLINE static TARGET
#endif

/* 16 channels as two vectors of fp32: bf16's even and odd channels, else the first and the
 * second 8. A strip is two halves: 32 channels. */
typedef struct half {
    __m256 a, b;
} half;
typedef struct strip {
    __m256 a, b, c, d;
} strip;

#define ES_OF(dt) ((dt) == NSA_DTYPE_F32 ? 4 : 2)

INLINE half load16(const char *p, int dt)
{
    half r;
    if (dt == NSA_DTYPE_BF16) {
        const __m256i v = _mm256_loadu_si256((const __m256i *)(const void *)p);
        r.a = _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
        r.b = _mm256_castsi256_ps(_mm256_and_si256(v, _mm256_set1_epi32(-65536)));
    } else if (dt == NSA_DTYPE_F16) {
        r.a = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)p));
        r.b = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)(p + 16)));
    } else {
        r.a = _mm256_loadu_ps((const float *)(const void *)p);
        r.b = _mm256_loadu_ps((const float *)(const void *)(p + 32));
    }
    return r;
}

INLINE strip load32(const char *p, int dt)
{
    const half u = load16(p, dt), v = load16(p + 16 * ES_OF(dt), dt);
    strip r;
    r.a = u.a, r.b = u.b, r.c = v.a, r.d = v.b;
    return r;
}

/* Pins a partial sum where it is computed (compress.c's FAST_KEEP says why). */
#define KEEP(p) __asm__("" : "+x"((p).a), "+x"((p).b), "+x"((p).c), "+x"((p).d))

INLINE strip scale(__m256 w, strip x)
{
    x.a = _mm256_mul_ps(w, x.a);
    x.b = _mm256_mul_ps(w, x.b);
    x.c = _mm256_mul_ps(w, x.c);
    x.d = _mm256_mul_ps(w, x.d);
    return x;
}

INLINE strip join(strip u, strip v)
{
    u.a = _mm256_add_ps(u.a, v.a);
    u.b = _mm256_add_ps(u.b, v.b);
    u.c = _mm256_add_ps(u.c, v.c);
    u.d = _mm256_add_ps(u.d, v.d);
    KEEP(u);
    return u;
}

/* Level 0: t_i = w_i x_i + w_(i+a) x_(i+a) (just w_i x_i when i + a >= l). */
INLINE strip leaf(const char *x, ptrdiff_t rs, const float *w, int i, int a, int l, int dt)
{
    strip p = scale(_mm256_set1_ps(w[i]), load32(x + i * rs, dt));
    if (i + a < l)
        return join(p, scale(_mm256_set1_ps(w[i + a]), load32(x + (i + a) * rs, dt)));
    KEEP(p);
    return p;
}

/* Two windows a rows apart: row i + a is loaded and widened once for both trees. */
typedef struct two {
    strip p, q;
} two;

INLINE two join2(two u, two v)
{
    u.p = join(u.p, v.p);
    u.q = join(u.q, v.q);
    return u;
}

INLINE two leaf2(const char *x, ptrdiff_t rs, const float *w, int i, int a, int l, int dt)
{
    const __m256 wi = _mm256_set1_ps(w[i]);
    const strip x1 = load32(x + (i + a) * rs, dt);
    two t;
    t.p = scale(wi, load32(x + i * rs, dt));
    t.q = scale(wi, x1);
    if (i + a < l) {
        const __m256 wj = _mm256_set1_ps(w[i + a]);
        two u;
        u.p = scale(wj, x1);
        u.q = scale(wj, load32(x + (i + 2 * a) * rs, dt));
        return join2(t, u);
    }
    KEEP(t.p);
    KEEP(t.q);
    return t;
}

/* Node (i, s) = node(i, 2s) + node(i + s, 2s); nodes with s >= a are leaves (compress.c's
 * FAST_NODE). */
#define NODE(T, NAME, LEAF, JOIN, s, s2)                                                         \
    INLINE T NAME##s(const char *x, ptrdiff_t rs, const float *w, int i, int a, int l, int dt)  \
    {                                                                                            \
        T u, v;                                                                                  \
        if (s >= a)                                                                              \
            return LEAF(x, rs, w, i, a, l, dt);                                                  \
        u = NAME##s2(x, rs, w, i, a, l, dt);                                                     \
        v = NAME##s2(x, rs, w, i + s, a, l, dt);                                                 \
        return JOIN(u, v);                                                                       \
    }
#define NODES(T, NAME, LEAF, JOIN)                                                               \
    INLINE T NAME##64(const char *x, ptrdiff_t rs, const float *w, int i, int a, int l, int dt) \
    {                                                                                            \
        return LEAF(x, rs, w, i, a, l, dt);                                                      \
    }                                                                                            \
    NODE(T, NAME, LEAF, JOIN, 32, 64)                                                            \
    NODE(T, NAME, LEAF, JOIN, 16, 32)                                                            \
    NODE(T, NAME, LEAF, JOIN, 8, 16)                                                             \
    NODE(T, NAME, LEAF, JOIN, 4, 8)                                                              \
    NODE(T, NAME, LEAF, JOIN, 2, 4)                                                              \
    NODE(T, NAME, LEAF, JOIN, 1, 2)
NODES(strip, node, leaf, join)
NODES(two, node2_, leaf2, join2)

/* The 16 sums of a half in channel order (bf16's even and odd channels interleaved back). */
INLINE void store16(float *out, __m256 a, __m256 b, int dt)
{
    if (dt == NSA_DTYPE_BF16) {
        const __m256 lo = _mm256_unpacklo_ps(a, b), hi = _mm256_unpackhi_ps(a, b);
        a = _mm256_permute2f128_ps(lo, hi, 0x20);
        b = _mm256_permute2f128_ps(lo, hi, 0x31);
    }
    _mm256_storeu_ps(out, a);
    _mm256_storeu_ps(out + 8, b);
}

INLINE void store32(float *out, strip r, int dt)
{
    store16(out, r.a, r.b, dt);
    store16(out + 16, r.c, r.d, dt);
}

/* Hides a pointer from the optimiser, which would otherwise hoist the l weight broadcasts out
 * of the strip loop and spill them. */
#define OPAQUE(p) __asm__("" : "+r"(p))

/* The last n < 32 channels of one window: its l rows copied into a zero-padded buffer. */
INLINE void tail(const char *x, ptrdiff_t rs, const float *w, int32_t n, float *out, int L, int A,
                 int dt)
{
    const int es = ES_OF(dt);
    char pad[128 * 32 * 4];
    float sums[32];
    int i;
    memset(pad, 0, (size_t)(L * 32 * es));
    for (i = 0; i < L; i++)
        memcpy(pad + i * 32 * es, x + i * rs, (size_t)(n * es));
    store32(sums, node1(pad, 32 * es, w, 0, A, L, dt), dt);
    memcpy(out, sums, (size_t)n * sizeof(float));
}

#define WINDOW(L, A, DT)                                                                         \
    TARGET static void window_##L##_##DT(const char *x, ptrdiff_t rs, const float *w, int32_t D, \
                                         float *out)                                             \
    {                                                                                            \
        const int dt = NSA_DTYPE_##DT, es = ES_OF(dt);                                           \
        int32_t e;                                                                               \
        for (e = 0; e + 32 <= D; e += 32) {                                                      \
            const float *wv = w;                                                                 \
            OPAQUE(wv);                                                                          \
            store32(out + e, node1(x + e * es, rs, wv, 0, A, L, dt), dt);                        \
        }                                                                                        \
        if (e < D)                                                                               \
            tail(x + e * es, rs, w, D - e, out + e, L, A, dt);                                   \
    }
#define WINDOW2(L, A, DT)                                                                        \
    TARGET static void window2_##L##_##DT(const char *x, ptrdiff_t rs, const float *w,          \
                                          int32_t D, float *out, float *out2)                    \
    {                                                                                            \
        const int dt = NSA_DTYPE_##DT, es = ES_OF(dt);                                           \
        two t;                                                                                   \
        int32_t e;                                                                               \
        for (e = 0; e + 32 <= D; e += 32) {                                                      \
            const float *wv = w;                                                                 \
            OPAQUE(wv);                                                                          \
            t = node2_1(x + e * es, rs, wv, 0, A, L, dt);                                        \
            store32(out + e, t.p, dt);                                                           \
            store32(out2 + e, t.q, dt);                                                          \
        }                                                                                        \
        if (e < D) {                                                                             \
            tail(x + e * es, rs, w, D - e, out + e, L, A, dt);                                   \
            tail(x + (A * rs) + e * es, rs, w, D - e, out2 + e, L, A, dt);                       \
        }                                                                                        \
    }
#define WINDOWS(L, A) WINDOW(L, A, BF16) WINDOW(L, A, F16) WINDOW(L, A, F32)
#define WINDOWS_AND_PAIRS(L, A)                                                                  \
    WINDOWS(L, A) WINDOW2(L, A, BF16) WINDOW2(L, A, F16) WINDOW2(L, A, F32)
WINDOWS(16, 8)
WINDOWS_AND_PAIRS(32, 16)
WINDOWS_AND_PAIRS(48, 32)
WINDOWS_AND_PAIRS(64, 32)
WINDOWS_AND_PAIRS(80, 64)
WINDOWS_AND_PAIRS(96, 64)
WINDOWS_AND_PAIRS(112, 64)
WINDOWS_AND_PAIRS(128, 64)

#define ROW(L) {window_##L##_BF16, window_##L##_F16, window_##L##_F32}
static const nsa_compress_window_fn windows[8][3] = {ROW(16), ROW(32),  ROW(48),  ROW(64),
                                                     ROW(80), ROW(96), ROW(112), ROW(128)};
#define ROW2(L) {window2_##L##_BF16, window2_##L##_F16, window2_##L##_F32}
static const nsa_compress_window2_fn windows2[7][3] = {ROW2(32), ROW2(48),  ROW2(64), ROW2(80),
                                                       ROW2(96), ROW2(112), ROW2(128)};

nsa_compress_window_fn nsa_compress_avx2_window(int64_t l, int column)
{
    return nsa_cpu_has_avx2() ? windows[l / 16 - 1][column] : NULL;
}

nsa_compress_window2_fn nsa_compress_avx2_window2(int64_t l, int column)
{
    return nsa_cpu_has_avx2() && l >= 32 ? windows2[l / 16 - 2][column] : NULL;
}

#else
nsa_compress_window_fn nsa_compress_avx2_window(int64_t l, int column)
{
    (void)l, (void)column;
    return NULL;
}

nsa_compress_window2_fn nsa_compress_avx2_window2(int64_t l, int column)
{
    (void)l, (void)column;
    return NULL;
}
#endif
