/* SPDX-License-Identifier: Apache-2.0 */
/*
 * nsa_compress's fused window kernels on AVX2 (compress_avx2.h): compress.c's AVX-512 strip
 * kernels at half the width. Each 16-channel strip of a window's l rows is loaded from the
 * caller's memory, widened in registers and reduced in the kernel's ReduceBlock pairing
 * (leaves w_i x_i + w_(i+a) x_(i+a), then halving), depth first so that the tree stays in
 * registers. No "fma" target: every product and every sum is rounded on its own, as on the
 * portable path, so the results are the same bits.
 *
 * bf16 strips are widened from one load into the even and the odd channels (a shift and an
 * and) and interleaved back when stored. A last strip of fewer than 16 channels is copied
 * into a zero-padded buffer first (AVX2 has no masked 16-bit loads).
 *
 * Measured on a Zen 3 (bf16, l = 32, d = 16, D = 192, one thread): 6.3-6.7 GB/s at N = 16
 * against 3.3 for the portable path. The rest is the L1: rows N * D elements apart (6 KiB)
 * fall in two sets of the 32 KiB 8-way L1, so the second strip of each 64-byte line finds its
 * l + a rows evicted. The same input at N = 15 runs at 17 GB/s. Tried and left out: 32-channel
 * strips (a line per load, but the tree spills: 8 GB/s at N = 16, 5-11 at N = 15); copying a
 * window's rows to a padded buffer first (4-6 GB/s); a tree over whole rows, its partial sums
 * in a stack of rows in L1, leaves in the tree's order (5-7 GB/s, with software prefetch).
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
 * second 8. */
typedef struct strip {
    __m256 a, b;
} strip;

INLINE strip load16(const char *p, int dt)
{
    strip r;
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

/* Pins a partial sum where it is computed (compress.c's FAST_KEEP says why). */
#define KEEP(p) __asm__("" : "+x"((p).a), "+x"((p).b))

INLINE strip scale(__m256 w, strip x)
{
    x.a = _mm256_mul_ps(w, x.a);
    x.b = _mm256_mul_ps(w, x.b);
    return x;
}

INLINE strip join(strip u, strip v)
{
    u.a = _mm256_add_ps(u.a, v.a);
    u.b = _mm256_add_ps(u.b, v.b);
    KEEP(u);
    return u;
}

/* Level 0: t_i = w_i x_i + w_(i+a) x_(i+a) (just w_i x_i when i + a >= l). */
INLINE strip leaf(const char *x, ptrdiff_t rs, const float *w, int i, int a, int l, int dt)
{
    strip p = scale(_mm256_set1_ps(w[i]), load16(x + i * rs, dt));
    if (i + a < l)
        return join(p, scale(_mm256_set1_ps(w[i + a]), load16(x + (i + a) * rs, dt)));
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
    const strip x1 = load16(x + (i + a) * rs, dt);
    two t;
    t.p = scale(wi, load16(x + i * rs, dt));
    t.q = scale(wi, x1);
    if (i + a < l) {
        const __m256 wj = _mm256_set1_ps(w[i + a]);
        two u;
        u.p = scale(wj, x1);
        u.q = scale(wj, load16(x + (i + 2 * a) * rs, dt));
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

/* The 16 sums of a strip in channel order (bf16's even and odd channels interleaved back). */
INLINE void store16(float *out, strip r, int dt)
{
    if (dt == NSA_DTYPE_BF16) {
        const __m256 lo = _mm256_unpacklo_ps(r.a, r.b), hi = _mm256_unpackhi_ps(r.a, r.b);
        r.a = _mm256_permute2f128_ps(lo, hi, 0x20);
        r.b = _mm256_permute2f128_ps(lo, hi, 0x31);
    }
    _mm256_storeu_ps(out, r.a);
    _mm256_storeu_ps(out + 8, r.b);
}

/* Hides a pointer from the optimiser, which would otherwise hoist the l weight broadcasts out
 * of the strip loop and spill them. */
#define OPAQUE(p) __asm__("" : "+r"(p))

/* The last n < 16 channels of one window: its l rows copied into a zero-padded buffer. */
INLINE void tail(const char *x, ptrdiff_t rs, const float *w, int32_t n, float *out, int L, int A,
                 int dt, int es)
{
    char pad[128 * 16 * 4];
    float sums[16];
    int i;
    memset(pad, 0, (size_t)(L * 16 * es));
    for (i = 0; i < L; i++)
        memcpy(pad + i * 16 * es, x + i * rs, (size_t)(n * es));
    store16(sums, node1(pad, 16 * es, w, 0, A, L, dt), dt);
    memcpy(out, sums, (size_t)n * sizeof(float));
}

#define WINDOW(L, A, DT, ES)                                                                     \
    TARGET static void window_##L##_##DT(const char *x, ptrdiff_t rs, const float *w, int32_t D, \
                                         float *out)                                             \
    {                                                                                            \
        const int dt = NSA_DTYPE_##DT;                                                           \
        int32_t e;                                                                               \
        for (e = 0; e + 16 <= D; e += 16) {                                                      \
            const float *wv = w;                                                                 \
            OPAQUE(wv);                                                                          \
            store16(out + e, node1(x + e * ES, rs, wv, 0, A, L, dt), dt);                        \
        }                                                                                        \
        if (e < D)                                                                               \
            tail(x + e * ES, rs, w, D - e, out + e, L, A, dt, ES);                               \
    }
#define WINDOW2(L, A, DT, ES)                                                                    \
    TARGET static void window2_##L##_##DT(const char *x, ptrdiff_t rs, const float *w,          \
                                          int32_t D, float *out, float *out2)                    \
    {                                                                                            \
        const int dt = NSA_DTYPE_##DT;                                                           \
        two t;                                                                                   \
        int32_t e;                                                                               \
        for (e = 0; e + 16 <= D; e += 16) {                                                      \
            const float *wv = w;                                                                 \
            OPAQUE(wv);                                                                          \
            t = node2_1(x + e * ES, rs, wv, 0, A, L, dt);                                        \
            store16(out + e, t.p, dt);                                                           \
            store16(out2 + e, t.q, dt);                                                          \
        }                                                                                        \
        if (e < D) {                                                                             \
            tail(x + e * ES, rs, w, D - e, out + e, L, A, dt, ES);                               \
            tail(x + (A * rs) + e * ES, rs, w, D - e, out2 + e, L, A, dt, ES);                   \
        }                                                                                        \
    }
#define WINDOWS(L, A) WINDOW(L, A, BF16, 2) WINDOW(L, A, F16, 2) WINDOW(L, A, F32, 4)
#define WINDOWS_AND_PAIRS(L, A)                                                                  \
    WINDOWS(L, A) WINDOW2(L, A, BF16, 2) WINDOW2(L, A, F16, 2) WINDOW2(L, A, F32, 4)
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

static int dtype_index(int dtype)
{
    return dtype == NSA_DTYPE_BF16 ? 0 : dtype == NSA_DTYPE_F16 ? 1 : 2;
}

nsa_compress_window_fn nsa_compress_avx2_window(int64_t l, int dtype)
{
    return nsa_cpu_has_avx2() ? windows[l / 16 - 1][dtype_index(dtype)] : NULL;
}

nsa_compress_window2_fn nsa_compress_avx2_window2(int64_t l, int dtype)
{
    return nsa_cpu_has_avx2() && l >= 32 ? windows2[l / 16 - 2][dtype_index(dtype)] : NULL;
}

#else
nsa_compress_window_fn nsa_compress_avx2_window(int64_t l, int dtype)
{
    (void)l, (void)dtype;
    return NULL;
}

nsa_compress_window2_fn nsa_compress_avx2_window2(int64_t l, int dtype)
{
    (void)l, (void)dtype;
    return NULL;
}
#endif
