/* SPDX-License-Identifier: Apache-2.0 */
/* Scalar reference conversions between fp32 and f16 / bf16 / int8, and the row loops the
 * kernel packs with. Exact IEEE semantics (a NaN comes out quiet, sign and top payload bits
 * kept); the AVX2/F16C and AVX-512 row paths below match the scalar code bit for bit. */
#include "dtype/convert.h"

#include <math.h>
#include <pthread.h>
#include <string.h>

#include "kernel/simd.h"
#include "tensor/tensor.h"

#if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
#define NSA_X86 1
#include <immintrin.h>
#endif

static uint32_t f32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static float bits_f32(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

float nsa_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t e = (h >> 10) & 0x1fu;
    uint32_t m = h & 0x3ffu;
    if (e == 0) {
        /* zero or subnormal: m * 2^-24, exact in fp32 */
        float v = (float)m * 5.9604644775390625e-8f;
        return sign ? -v : v;
    }
    if (e == 31) /* inf, or NaN made quiet (IEEE; what vcvtph2ps does) */
        return bits_f32(sign | 0x7f800000u | (m << 13) | (m ? 0x400000u : 0u));
    return bits_f32(sign | ((e + 112u) << 23) | (m << 13));
}

float nsa_bf16_to_f32(uint16_t b)
{
    uint32_t x = (uint32_t)b << 16;
    if ((x & 0x7fffffffu) > 0x7f800000u)
        x |= 0x400000u; /* a signalling NaN comes out quiet */
    return bits_f32(x);
}

/* Round q (the kept bits) by the discarded bits r against the halfway point `half`. */
static uint32_t round_bits(uint32_t q, uint32_t r, uint32_t half, nsa_rounding rounding)
{
    if (r > half || (r == half && (rounding == NSA_ROUND_NEAREST_AWAY || (q & 1u))))
        q++;
    return q;
}

uint16_t nsa_f32_to_f16(float value, nsa_rounding rounding)
{
    uint32_t x = f32_bits(value);
    uint32_t sign = (x >> 16) & 0x8000u;
    uint32_t ax = x & 0x7fffffffu;
    int32_t e;
    uint32_t mant;
    if (ax >= 0x7f800000u) {
        if (ax > 0x7f800000u) /* NaN: keep the top payload bits, force quiet */
            return (uint16_t)(sign | 0x7e00u | ((ax >> 13) & 0x3ffu));
        return (uint16_t)(sign | 0x7c00u);
    }
    e = (int32_t)(ax >> 23) - 127 + 15;
    mant = ax & 0x7fffffu;
    if (e >= 31)
        return (uint16_t)(sign | 0x7c00u);
    if (e <= 0) {
        uint32_t m24 = mant | 0x800000u;
        int32_t shift = 14 - e;
        if (ax == 0 || shift >= 25)
            return (uint16_t)sign;
        return (uint16_t)(sign | round_bits(m24 >> shift, m24 & ((1u << shift) - 1u),
                                            1u << (shift - 1), rounding));
    }
    /* A carry out of the mantissa bumps the exponent, up to infinity: both are correct. */
    return (uint16_t)(sign | round_bits(((uint32_t)e << 10) | (mant >> 13), mant & 0x1fffu, 0x1000u,
                                        rounding));
}

uint16_t nsa_f32_to_bf16(float value, nsa_rounding rounding)
{
    uint32_t x = f32_bits(value);
    if ((x & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((x >> 16) | 0x40u); /* quiet NaN, sign and top payload kept */
    return (uint16_t)round_bits(x >> 16, x & 0xffffu, 0x8000u, rounding);
}

float nsa_round_to_dtype(float x, nsa_dtype dt, nsa_rounding rounding)
{
    switch (dt) {
    case NSA_DTYPE_F16:
        return nsa_f16_to_f32(nsa_f32_to_f16(x, rounding));
    case NSA_DTYPE_BF16:
        return nsa_bf16_to_f32(nsa_f32_to_bf16(x, rounding));
    default:
        return x;
    }
}

static int8_t quant_i8(float x)
{
    float r;
    if (x != x)
        return 0;
    if (x >= 127.0f)
        return 127;
    if (x <= -128.0f)
        return -128;
    r = nearbyintf(x); /* the default environment rounds half to even */
    return (int8_t)r;
}

static void load_portable(const void *src, nsa_dtype dt, int64_t stride, float *dst, int64_t n)
{
    int64_t i;
    switch (dt) {
    case NSA_DTYPE_F32: {
        const float *s = (const float *)src;
        if (stride == 1)
            memmove(dst, s, (size_t)n * sizeof(float)); /* in place is allowed */
        else
            for (i = 0; i < n; i++)
                dst[i] = s[i * stride];
        break;
    }
    case NSA_DTYPE_F16: {
        const uint16_t *s = (const uint16_t *)src;
        for (i = 0; i < n; i++)
            dst[i] = nsa_f16_to_f32(s[i * stride]);
        break;
    }
    case NSA_DTYPE_BF16: {
        const uint16_t *s = (const uint16_t *)src;
        for (i = 0; i < n; i++)
            dst[i] = nsa_bf16_to_f32(s[i * stride]);
        break;
    }
    case NSA_DTYPE_I8: {
        const int8_t *s = (const int8_t *)src;
        for (i = 0; i < n; i++)
            dst[i] = (float)s[i * stride];
        break;
    }
    case NSA_DTYPE_U8:
    case NSA_DTYPE_BOOL: {
        const uint8_t *s = (const uint8_t *)src;
        for (i = 0; i < n; i++)
            dst[i] = (float)s[i * stride];
        break;
    }
    default:
        for (i = 0; i < n; i++)
            dst[i] = 0.0f;
        break;
    }
}

static void store_portable(const float *src, void *dst, nsa_dtype dt, int64_t stride, int64_t n,
                           nsa_rounding rounding)
{
    int64_t i;
    switch (dt) {
    case NSA_DTYPE_F32: {
        float *d = (float *)dst;
        if (stride == 1)
            memmove(d, src, (size_t)n * sizeof(float));
        else
            for (i = 0; i < n; i++)
                d[i * stride] = src[i];
        break;
    }
    case NSA_DTYPE_F16: {
        uint16_t *d = (uint16_t *)dst;
        for (i = 0; i < n; i++)
            d[i * stride] = nsa_f32_to_f16(src[i], rounding);
        break;
    }
    case NSA_DTYPE_BF16: {
        uint16_t *d = (uint16_t *)dst;
        for (i = 0; i < n; i++)
            d[i * stride] = nsa_f32_to_bf16(src[i], rounding);
        break;
    }
    case NSA_DTYPE_I8: {
        int8_t *d = (int8_t *)dst;
        for (i = 0; i < n; i++)
            d[i * stride] = quant_i8(src[i]);
        break;
    }
    default:
        break;
    }
}

static void dequant_portable(const int8_t *src, int64_t stride, const float *scale, int64_t ss,
                             const float *offset, int64_t os, float *dst, int64_t n)
{
    int64_t i;
    for (i = 0; i < n; i++) {
        float off = offset ? offset[i * os] : 0.0f;
        dst[i] = ((float)src[i * stride] + off) * scale[i * ss];
    }
}

void nsa_store_i8_quant(const float *src, int8_t *dst, int64_t stride, const float *scale,
                        int64_t ss, const float *offset, int64_t os, int64_t n)
{
    int64_t i;
    for (i = 0; i < n; i++) {
        float off = offset ? offset[i * os] : 0.0f;
        dst[i * stride] = quant_i8(src[i] * scale[i * ss] + off);
    }
}

/* ---- vector paths ------------------------------------------------------------------------
 * Only contiguous rows (stride 1) are vectorised; strided rows take the portable loops.
 * f32 -> f16 with ties away from zero has no instruction, so it (and the bf16 stores) run the
 * same integer rounding as round_bits() lane-wise. */

static int g_isa_detected = NSA_CVT_PORTABLE;
static int g_isa_cap = NSA_CVT_AVX512;
static pthread_once_t g_isa_once = PTHREAD_ONCE_INIT;

static void detect_isa(void)
{
#ifdef NSA_X86
    if (nsa_cpu_has_avx2()) /* AVX2 and F16C (and FMA), the OS saving the AVX state */
        g_isa_detected = NSA_CVT_AVX2;
    if (g_isa_detected == NSA_CVT_AVX2 && nsa_cpu_has_avx512())
        g_isa_detected = NSA_CVT_AVX512;
#endif
}

int nsa_convert_isa(void)
{
    pthread_once(&g_isa_once, detect_isa);
    return g_isa_detected < g_isa_cap ? g_isa_detected : g_isa_cap;
}

int nsa_convert_set_isa(int max_isa)
{
    g_isa_cap = max_isa;
    return nsa_convert_isa();
}

#ifdef NSA_X86
#define TARGET_AVX2 __attribute__((target("avx2,f16c")))
#define TARGET_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq")))

/* Quiet the NaNs among bf16 values widened to f32 bits (as nsa_bf16_to_f32). */
TARGET_AVX2 static __m256i quiet_nan_avx2(__m256i x)
{
    __m256i ax = _mm256_and_si256(x, _mm256_set1_epi32(0x7fffffff));
    __m256i nan = _mm256_cmpgt_epi32(ax, _mm256_set1_epi32(0x7f800000));
    return _mm256_or_si256(x, _mm256_and_si256(nan, _mm256_set1_epi32(0x400000)));
}

/* q + 1 where round_bits() rounds up: r > half, or r == half and (away or q odd). */
TARGET_AVX2 static __m256i round_up_avx2(__m256i q, __m256i r, __m256i half, int away)
{
    __m256i one = _mm256_set1_epi32(1);
    __m256i tie = _mm256_cmpeq_epi32(r, half);
    __m256i up = _mm256_cmpgt_epi32(r, half); /* r, half < 2^25: signed compare is fine */
    if (!away)
        tie = _mm256_and_si256(tie, _mm256_cmpeq_epi32(_mm256_and_si256(q, one), one));
    return _mm256_sub_epi32(q, _mm256_or_si256(up, tie)); /* masks are -1 */
}

/* f32 bits -> f16 bits in 32-bit lanes, rounding as nsa_f32_to_f16. */
TARGET_AVX2 static __m256i f32_to_f16_int_avx2(__m256i x, int away)
{
    __m256i sign = _mm256_and_si256(_mm256_srli_epi32(x, 16), _mm256_set1_epi32(0x8000));
    __m256i ax = _mm256_and_si256(x, _mm256_set1_epi32(0x7fffffff));
    /* normal f16 (ax >= 2^-14): drop 13 bits of the rebased value; a carry may reach inf */
    __m256i nq = _mm256_srli_epi32(_mm256_sub_epi32(ax, _mm256_set1_epi32(0x38000000)), 13);
    __m256i nr = _mm256_and_si256(ax, _mm256_set1_epi32(0x1fff));
    /* subnormal f16: the 24-bit significand shifted right by 126 - exponent, capped at 25
     * (everything below half the smallest subnormal gives 0) */
    __m256i m24 = _mm256_or_si256(_mm256_and_si256(ax, _mm256_set1_epi32(0x7fffff)),
                                  _mm256_set1_epi32(0x800000));
    __m256i sh = _mm256_min_epi32(
        _mm256_sub_epi32(_mm256_set1_epi32(126), _mm256_srli_epi32(ax, 23)), _mm256_set1_epi32(25));
    __m256i one = _mm256_set1_epi32(1);
    __m256i sq = _mm256_srlv_epi32(m24, sh);
    __m256i sr = _mm256_and_si256(m24, _mm256_sub_epi32(_mm256_sllv_epi32(one, sh), one));
    __m256i shalf = _mm256_sllv_epi32(one, _mm256_sub_epi32(sh, one));
    __m256i is_sub = _mm256_cmpgt_epi32(_mm256_set1_epi32(0x38800000), ax);
    __m256i q = _mm256_blendv_epi8(nq, sq, is_sub);
    __m256i r = _mm256_blendv_epi8(nr, sr, is_sub);
    __m256i half = _mm256_blendv_epi8(_mm256_set1_epi32(0x1000), shalf, is_sub);
    __m256i h = round_up_avx2(q, r, half, away);
    /* |x| >= 65536 (and inf) -> inf; NaN -> quiet NaN with the top payload bits */
    __m256i big = _mm256_cmpgt_epi32(ax, _mm256_set1_epi32(0x477fffff));
    __m256i nan = _mm256_cmpgt_epi32(ax, _mm256_set1_epi32(0x7f800000));
    __m256i qnan =
        _mm256_or_si256(_mm256_set1_epi32(0x7e00),
                        _mm256_and_si256(_mm256_srli_epi32(ax, 13), _mm256_set1_epi32(0x3ff)));
    h = _mm256_blendv_epi8(h, _mm256_set1_epi32(0x7c00), big);
    h = _mm256_blendv_epi8(h, qnan, nan);
    return _mm256_or_si256(h, sign);
}

/* f32 bits -> bf16 bits in 32-bit lanes, rounding as nsa_f32_to_bf16: adding 0x8000 (ties
 * away) or 0x7fff + the kept lsb (ties to even) carries into the kept bits exactly when
 * round_bits() rounds up; finite values cannot carry out of 32 bits. */
TARGET_AVX2 static __m256i f32_to_bf16_int_avx2(__m256i x, int away)
{
    __m256i q = _mm256_srli_epi32(x, 16);
    __m256i bias = away ? _mm256_set1_epi32(0x8000)
                        : _mm256_add_epi32(_mm256_set1_epi32(0x7fff),
                                           _mm256_and_si256(q, _mm256_set1_epi32(1)));
    __m256i h = _mm256_srli_epi32(_mm256_add_epi32(x, bias), 16);
    __m256i ax = _mm256_and_si256(x, _mm256_set1_epi32(0x7fffffff));
    __m256i nan = _mm256_cmpgt_epi32(ax, _mm256_set1_epi32(0x7f800000));
    return _mm256_blendv_epi8(h, _mm256_or_si256(q, _mm256_set1_epi32(0x40)), nan);
}

/* Store the low 16 bits of 8 lanes. */
TARGET_AVX2 static void store_u16x8_avx2(uint16_t *d, __m256i h)
{
    __m256i p = _mm256_permute4x64_epi64(_mm256_packus_epi32(h, h), 0x08);
    _mm_storeu_si128((__m128i *)d, _mm256_castsi256_si128(p));
}

TARGET_AVX2 static int load_avx2(const void *src, nsa_dtype dt, float *dst, int64_t n)
{
    int64_t i = 0;
    switch (dt) {
    case NSA_DTYPE_F16: {
        const uint16_t *s = (const uint16_t *)src;
        for (; i + 8 <= n; i += 8)
            _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(s + i))));
        for (; i < n; i++)
            dst[i] = nsa_f16_to_f32(s[i]);
        return 1;
    }
    case NSA_DTYPE_BF16: {
        const uint16_t *s = (const uint16_t *)src;
        for (; i + 8 <= n; i += 8) {
            __m256i x = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(s + i)));
            x = quiet_nan_avx2(_mm256_slli_epi32(x, 16));
            _mm256_storeu_ps(dst + i, _mm256_castsi256_ps(x));
        }
        for (; i < n; i++)
            dst[i] = nsa_bf16_to_f32(s[i]);
        return 1;
    }
    case NSA_DTYPE_I8:
    case NSA_DTYPE_U8:
    case NSA_DTYPE_BOOL: {
        const int8_t *s = (const int8_t *)src;
        const uint8_t *u = (const uint8_t *)src;
        int sgn = dt == NSA_DTYPE_I8;
        for (; i + 8 <= n; i += 8) {
            __m128i b = _mm_loadl_epi64((const __m128i *)(u + i));
            __m256i x = sgn ? _mm256_cvtepi8_epi32(b) : _mm256_cvtepu8_epi32(b);
            _mm256_storeu_ps(dst + i, _mm256_cvtepi32_ps(x));
        }
        for (; i < n; i++)
            dst[i] = sgn ? (float)s[i] : (float)u[i];
        return 1;
    }
    default:
        return 0;
    }
}

TARGET_AVX2 static int store_avx2(const float *src, void *dst, nsa_dtype dt, int64_t n,
                                  nsa_rounding rounding)
{
    int away = rounding == NSA_ROUND_NEAREST_AWAY;
    uint16_t *d = (uint16_t *)dst;
    int64_t i = 0;
    if (dt == NSA_DTYPE_F16) {
        if (!away)
            for (; i + 8 <= n; i += 8)
                _mm_storeu_si128((__m128i *)(d + i), _mm256_cvtps_ph(_mm256_loadu_ps(src + i),
                                                                     _MM_FROUND_TO_NEAREST_INT));
        else
            for (; i + 8 <= n; i += 8)
                store_u16x8_avx2(
                    d + i, f32_to_f16_int_avx2(_mm256_castps_si256(_mm256_loadu_ps(src + i)), 1));
        for (; i < n; i++)
            d[i] = nsa_f32_to_f16(src[i], rounding);
        return 1;
    }
    if (dt == NSA_DTYPE_BF16) {
        for (; i + 8 <= n; i += 8)
            store_u16x8_avx2(
                d + i, f32_to_bf16_int_avx2(_mm256_castps_si256(_mm256_loadu_ps(src + i)), away));
        for (; i < n; i++)
            d[i] = nsa_f32_to_bf16(src[i], rounding);
        return 1;
    }
    return 0;
}

/* Per-element (stride 1) or per-tensor (stride 0) parameter vector. */
TARGET_AVX2 static __m256 param_avx2(const float *p, int64_t ps, int64_t i)
{
    if (!p)
        return _mm256_setzero_ps();
    return ps ? _mm256_loadu_ps(p + i) : _mm256_set1_ps(p[0]);
}

TARGET_AVX2 static void dequant_avx2(const int8_t *src, const float *scale, int64_t ss,
                                     const float *offset, int64_t os, float *dst, int64_t n)
{
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 x =
            _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(src + i))));
        x = _mm256_add_ps(x, param_avx2(offset, os, i)); /* no FMA: the scalar path rounds twice */
        _mm256_storeu_ps(dst + i, _mm256_mul_ps(x, param_avx2(scale, ss, i)));
    }
    if (i < n)
        dequant_portable(src + i, 1, scale + i * ss, ss, offset ? offset + i * os : NULL, os,
                         dst + i, n - i);
}

/* ---- AVX-512: the same arithmetic on 16 lanes. Each row op is a chunk function taking a
 * lane mask, inlined twice: unmasked (constant mask) for the body, masked for the tail. ---- */

#define INLINE_AVX512 TARGET_AVX512 static inline __attribute__((always_inline))
#define FULL ((__mmask16)0xffffu)

static __mmask16 tail_mask(int64_t left)
{
    return (__mmask16)((1u << left) - 1u);
}

TARGET_AVX512 static __m512i round_up_avx512(__m512i q, __m512i r, __m512i half, int away)
{
    __mmask16 up = _mm512_cmpgt_epu32_mask(r, half);
    __mmask16 tie = _mm512_cmpeq_epu32_mask(r, half);
    if (!away)
        tie &= _mm512_test_epi32_mask(q, _mm512_set1_epi32(1));
    return _mm512_mask_add_epi32(q, up | tie, q, _mm512_set1_epi32(1));
}

TARGET_AVX512 static __m512i f32_to_f16_int_avx512(__m512i x, int away)
{
    __m512i sign = _mm512_and_si512(_mm512_srli_epi32(x, 16), _mm512_set1_epi32(0x8000));
    __m512i ax = _mm512_and_si512(x, _mm512_set1_epi32(0x7fffffff));
    __m512i one = _mm512_set1_epi32(1);
    __m512i q = _mm512_srli_epi32(_mm512_sub_epi32(ax, _mm512_set1_epi32(0x38000000)), 13);
    __m512i r = _mm512_and_si512(ax, _mm512_set1_epi32(0x1fff));
    __m512i half = _mm512_set1_epi32(0x1000);
    __mmask16 is_sub = _mm512_cmplt_epu32_mask(ax, _mm512_set1_epi32(0x38800000));
    if (is_sub) {
        __m512i m24 = _mm512_or_si512(_mm512_and_si512(ax, _mm512_set1_epi32(0x7fffff)),
                                      _mm512_set1_epi32(0x800000));
        __m512i sh =
            _mm512_min_epi32(_mm512_sub_epi32(_mm512_set1_epi32(126), _mm512_srli_epi32(ax, 23)),
                             _mm512_set1_epi32(25));
        q = _mm512_mask_srlv_epi32(q, is_sub, m24, sh);
        r = _mm512_mask_and_epi32(r, is_sub, m24,
                                  _mm512_sub_epi32(_mm512_sllv_epi32(one, sh), one));
        half = _mm512_mask_sllv_epi32(half, is_sub, one, _mm512_sub_epi32(sh, one));
    }
    q = round_up_avx512(q, r, half, away);
    q = _mm512_mask_mov_epi32(q, _mm512_cmpgt_epu32_mask(ax, _mm512_set1_epi32(0x477fffff)),
                              _mm512_set1_epi32(0x7c00));
    q = _mm512_mask_or_epi32(q, _mm512_cmpgt_epu32_mask(ax, _mm512_set1_epi32(0x7f800000)),
                             _mm512_set1_epi32(0x7e00),
                             _mm512_and_si512(_mm512_srli_epi32(ax, 13), _mm512_set1_epi32(0x3ff)));
    return _mm512_or_si512(q, sign);
}

/* As f32_to_bf16_int_avx2. */
TARGET_AVX512 static __m512i f32_to_bf16_int_avx512(__m512i x, int away)
{
    __m512i q = _mm512_srli_epi32(x, 16);
    __m512i bias = away ? _mm512_set1_epi32(0x8000)
                        : _mm512_add_epi32(_mm512_set1_epi32(0x7fff),
                                           _mm512_and_si512(q, _mm512_set1_epi32(1)));
    __m512i h = _mm512_srli_epi32(_mm512_add_epi32(x, bias), 16);
    __m512i ax = _mm512_and_si512(x, _mm512_set1_epi32(0x7fffffff));
    return _mm512_mask_or_epi32(h, _mm512_cmpgt_epu32_mask(ax, _mm512_set1_epi32(0x7f800000)), q,
                                _mm512_set1_epi32(0x40));
}

INLINE_AVX512 void load_chunk_avx512(const void *src, nsa_dtype dt, float *dst, __mmask16 k)
{
    __m512i x;
    if (dt == NSA_DTYPE_F16) {
        _mm512_mask_storeu_ps(dst, k, _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(k, src)));
        return;
    }
    if (dt == NSA_DTYPE_BF16) {
        x = _mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(k, src)), 16);
        x = _mm512_mask_or_epi32(
            x,
            _mm512_cmpgt_epu32_mask(_mm512_and_si512(x, _mm512_set1_epi32(0x7fffffff)),
                                    _mm512_set1_epi32(0x7f800000)),
            x, _mm512_set1_epi32(0x400000)); /* quiet NaN, as nsa_bf16_to_f32 */
        _mm512_mask_storeu_ps(dst, k, _mm512_castsi512_ps(x));
        return;
    }
    x = dt == NSA_DTYPE_I8 ? _mm512_cvtepi8_epi32(_mm_maskz_loadu_epi8(k, src))
                           : _mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(k, src));
    _mm512_mask_storeu_ps(dst, k, _mm512_cvtepi32_ps(x));
}

TARGET_AVX512 static int load_avx512(const void *src, nsa_dtype dt, float *dst, int64_t n)
{
    const char *s = (const char *)src;
    size_t es = nsa_dtype_size(dt);
    int64_t i = 0;
    if (dt != NSA_DTYPE_F16 && dt != NSA_DTYPE_BF16 && dt != NSA_DTYPE_I8 && dt != NSA_DTYPE_U8 &&
        dt != NSA_DTYPE_BOOL)
        return 0;
    for (; i + 16 <= n; i += 16)
        load_chunk_avx512(s + i * (int64_t)es, dt, dst + i, FULL);
    if (i < n)
        load_chunk_avx512(s + i * (int64_t)es, dt, dst + i, tail_mask(n - i));
    return 1;
}

INLINE_AVX512 void store_chunk_avx512(const float *src, uint16_t *d, nsa_dtype dt, int away,
                                      __mmask16 k)
{
    __m512 v = _mm512_maskz_loadu_ps(k, src);
    __m256i h;
    if (dt == NSA_DTYPE_F16 && !away)
        h = _mm512_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    else if (dt == NSA_DTYPE_F16)
        h = _mm512_cvtepi32_epi16(f32_to_f16_int_avx512(_mm512_castps_si512(v), 1));
    else
        h = _mm512_cvtepi32_epi16(f32_to_bf16_int_avx512(_mm512_castps_si512(v), away));
    _mm256_mask_storeu_epi16(d, k, h);
}

TARGET_AVX512 static int store_avx512(const float *src, void *dst, nsa_dtype dt, int64_t n,
                                      nsa_rounding rounding)
{
    int away = rounding == NSA_ROUND_NEAREST_AWAY;
    uint16_t *d = (uint16_t *)dst;
    int64_t i = 0;
    if (dt != NSA_DTYPE_F16 && dt != NSA_DTYPE_BF16)
        return 0;
    for (; i + 16 <= n; i += 16)
        store_chunk_avx512(src + i, d + i, dt, away, FULL);
    if (i < n)
        store_chunk_avx512(src + i, d + i, dt, away, tail_mask(n - i));
    return 1;
}

INLINE_AVX512 __m512 param_avx512(const float *p, int64_t ps, __mmask16 k)
{
    if (!p)
        return _mm512_setzero_ps();
    return ps ? _mm512_maskz_loadu_ps(k, p) : _mm512_set1_ps(p[0]);
}

INLINE_AVX512 void dequant_chunk_avx512(const int8_t *src, const float *scale, int64_t ss,
                                        const float *offset, int64_t os, float *dst, __mmask16 k)
{
    __m512 x = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_maskz_loadu_epi8(k, src)));
    x = _mm512_add_ps(x, param_avx512(offset, os, k)); /* no FMA: the scalar path rounds twice */
    _mm512_mask_storeu_ps(dst, k, _mm512_mul_ps(x, param_avx512(scale, ss, k)));
}

TARGET_AVX512 static void dequant_avx512(const int8_t *src, const float *scale, int64_t ss,
                                         const float *offset, int64_t os, float *dst, int64_t n)
{
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        dequant_chunk_avx512(src + i, scale + i * ss, ss, offset ? offset + i * os : NULL, os,
                             dst + i, FULL);
    if (i < n)
        dequant_chunk_avx512(src + i, scale + i * ss, ss, offset ? offset + i * os : NULL, os,
                             dst + i, tail_mask(n - i));
}
#endif /* NSA_X86 */

void nsa_load_f32(const void *src, nsa_dtype dt, int64_t stride, float *dst, int64_t n)
{
#ifdef NSA_X86
    if (stride == 1 && n > 0) {
        int isa = nsa_convert_isa();
        if (isa >= NSA_CVT_AVX512 && load_avx512(src, dt, dst, n))
            return;
        if (isa >= NSA_CVT_AVX2 && load_avx2(src, dt, dst, n))
            return;
    }
#endif
    load_portable(src, dt, stride, dst, n);
}

void nsa_store_f32(const float *src, void *dst, nsa_dtype dt, int64_t stride, int64_t n,
                   nsa_rounding rounding)
{
#ifdef NSA_X86
    if (stride == 1 && n > 0) {
        int isa = nsa_convert_isa();
        if (isa >= NSA_CVT_AVX512 && store_avx512(src, dst, dt, n, rounding))
            return;
        if (isa >= NSA_CVT_AVX2 && store_avx2(src, dst, dt, n, rounding))
            return;
    }
#endif
    store_portable(src, dst, dt, stride, n, rounding);
}

void nsa_load_i8_dequant(const int8_t *src, int64_t stride, const float *scale, int64_t ss,
                         const float *offset, int64_t os, float *dst, int64_t n)
{
#ifdef NSA_X86
    if (stride == 1 && n > 0 && (ss == 0 || ss == 1) && (!offset || os == 0 || os == 1)) {
        int isa = nsa_convert_isa();
        if (isa >= NSA_CVT_AVX512) {
            dequant_avx512(src, scale, ss, offset, os, dst, n);
            return;
        }
        if (isa >= NSA_CVT_AVX2) {
            dequant_avx2(src, scale, ss, offset, os, dst, n);
            return;
        }
    }
#endif
    dequant_portable(src, stride, scale, ss, offset, os, dst, n);
}

nsa_status nsa_convert(const void *src, nsa_dtype src_dtype, int64_t src_stride, void *dst,
                       nsa_dtype dst_dtype, int64_t dst_stride, int64_t n, nsa_rounding rounding)
{
    float buf[256];
    int64_t done;
    const uint32_t from = NSA_DT_FLOAT | NSA_DT(NSA_DTYPE_I8) | NSA_DT(NSA_DTYPE_U8);
    const uint32_t to = NSA_DT_FLOAT | NSA_DT(NSA_DTYPE_I8);
    nsa_clear_error();
    if (n < 0)
        return nsa_error(NSA_ERR_INVALID_ARGUMENT, "n must be >= 0, got %lld", (long long)n);
    if (n == 0)
        return NSA_SUCCESS;
    if (!src || !dst)
        return nsa_error(NSA_ERR_NULL_POINTER, "src and dst must not be NULL");
    if (nsa_dtype_size(src_dtype) == 0 || !(from & NSA_DT(src_dtype)))
        return nsa_error(NSA_ERR_INVALID_ARGUMENT,
                         "src_dtype must be one of {f32, f16, bf16, i8, u8}, got %s",
                         nsa_dtype_name(src_dtype));
    if (nsa_dtype_size(dst_dtype) == 0 || !(to & NSA_DT(dst_dtype)))
        return nsa_error(NSA_ERR_INVALID_ARGUMENT,
                         "dst_dtype must be one of {f32, f16, bf16, i8}, got %s",
                         nsa_dtype_name(dst_dtype));
    if (src_stride < 0 || dst_stride < 1)
        return nsa_error(NSA_ERR_INVALID_ARGUMENT,
                         "strides must be src_stride >= 0 and dst_stride >= 1, got %lld and %lld",
                         (long long)src_stride, (long long)dst_stride);
    if (rounding != NSA_ROUND_NEAREST_EVEN && rounding != NSA_ROUND_NEAREST_AWAY)
        return nsa_error(NSA_ERR_INVALID_ARGUMENT, "rounding must be a nsa_rounding value, got %d",
                         (int)rounding);
    /* the last element's byte offset must fit (and then so does every pointer step) */
    if (src_stride > 0 && n - 1 > INT64_MAX / src_stride / (int64_t)nsa_dtype_size(src_dtype))
        return nsa_error(NSA_ERR_INVALID_ARGUMENT,
                         "n (%lld) * src_stride (%lld) elements of %s overflow int64 bytes",
                         (long long)n, (long long)src_stride, nsa_dtype_name(src_dtype));
    if (n - 1 > INT64_MAX / dst_stride / (int64_t)nsa_dtype_size(dst_dtype))
        return nsa_error(NSA_ERR_INVALID_ARGUMENT,
                         "n (%lld) * dst_stride (%lld) elements of %s overflow int64 bytes",
                         (long long)n, (long long)dst_stride, nsa_dtype_name(dst_dtype));
    for (done = 0; done < n; done += 256) {
        int64_t len = n - done < 256 ? n - done : 256;
        const char *s = (const char *)src + done * src_stride * (int64_t)nsa_dtype_size(src_dtype);
        char *d = (char *)dst + done * dst_stride * (int64_t)nsa_dtype_size(dst_dtype);
        nsa_load_f32(s, src_dtype, src_stride, buf, len);
        nsa_store_f32(buf, d, dst_dtype, dst_stride, len, rounding);
    }
    return NSA_SUCCESS;
}
