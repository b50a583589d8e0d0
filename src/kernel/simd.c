/* SPDX-License-Identifier: Apache-2.0 */
/* exp, max and sums over score rows. exp follows the Cephes expf scheme: n = round(x/ln2),
 * r = x - n*ln2 (two-part constant), exp(r) by a degree-6 polynomial, times 2^n; about
 * 1 ulp on the whole range. The AVX-512, AVX2 and portable paths compute the same formula. */
#include "kernel/simd.h"

#include <math.h>
#include <pthread.h>

#if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
#define NSA_X86 1
#include <cpuid.h>
#include <immintrin.h>
#endif

#define EXP_HI 88.72283935546875f
#define EXP_LO (-103.97208404541015625f)
#define LOG2E 1.44269504088896341f
#define LN2_HI 0.693359375f
#define LN2_LO (-2.12194440e-4f)
#define P0 1.9875691500e-4f
#define P1 1.3981999507e-3f
#define P2 8.3334519073e-3f
#define P3 4.1665795894e-2f
#define P4 1.6666665459e-1f
#define P5 5.0000001201e-1f

static float exp_scalar(float x)
{
    float n, r, p;
    if (x != x)
        return x;
    if (x > EXP_HI)
        return INFINITY;
    if (x < EXP_LO)
        return 0.0f;
    n = floorf(x * LOG2E + 0.5f);
    r = x - n * LN2_HI;
    r = r - n * LN2_LO;
    p = P0;
    p = p * r + P1;
    p = p * r + P2;
    p = p * r + P3;
    p = p * r + P4;
    p = p * r + P5;
    p = p * r * r + r + 1.0f;
    return ldexpf(p, (int)n);
}

static float vmax_portable(const float *x, int64_t n)
{
    float m = -INFINITY;
    int64_t i;
    for (i = 0; i < n; i++)
        m = x[i] > m ? x[i] : m;
    return m;
}

static float vexp_sum_portable(float *x, int64_t n, float m)
{
    float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int64_t i;
    for (i = 0; i < n; i++) {
        x[i] = exp_scalar(x[i] - m);
        acc[i & 7] += x[i];
    }
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

#ifdef NSA_X86
#define AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,fma")))

AVX512 static __m512 exp_avx512(__m512 x)
{
    /* max/min keep a NaN x (it is the second operand) */
    __m512 xc = _mm512_min_ps(_mm512_set1_ps(EXP_HI + 1.0f), x);
    __m512 n, r, p;
    xc = _mm512_max_ps(_mm512_set1_ps(EXP_LO - 1.0f), xc);
    n = _mm512_roundscale_ps(_mm512_mul_ps(xc, _mm512_set1_ps(LOG2E)),
                             _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(LN2_HI), xc);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(LN2_LO), r);
    p = _mm512_set1_ps(P0);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(P1));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(P2));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(P3));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(P4));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(P5));
    p = _mm512_fmadd_ps(_mm512_mul_ps(p, r), r, _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    /* scalef saturates to inf / 0 outside the range, like the scalar branches */
    p = _mm512_scalef_ps(p, n);
    p = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(x, _mm512_set1_ps(EXP_HI), _CMP_GT_OQ), p,
                             _mm512_set1_ps(INFINITY));
    return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(x, _mm512_set1_ps(EXP_LO), _CMP_LT_OQ), p,
                                _mm512_setzero_ps());
}

AVX512 static float vmax_avx512(const float *x, int64_t n)
{
    __m512 m = _mm512_set1_ps(-INFINITY);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        m = _mm512_max_ps(_mm512_loadu_ps(x + i), m); /* NaN in x is dropped */
    if (i < n) {
        __mmask16 k = (__mmask16)((1u << (n - i)) - 1u);
        m = _mm512_max_ps(_mm512_mask_loadu_ps(_mm512_set1_ps(-INFINITY), k, x + i), m);
    }
    return _mm512_reduce_max_ps(m);
}

AVX512 static float vexp_sum_avx512(float *x, int64_t n, float m)
{
    __m512 vm = _mm512_set1_ps(m), acc = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 e = exp_avx512(_mm512_sub_ps(_mm512_loadu_ps(x + i), vm));
        _mm512_storeu_ps(x + i, e);
        acc = _mm512_add_ps(acc, e);
    }
    if (i < n) {
        __mmask16 k = (__mmask16)((1u << (n - i)) - 1u);
        __m512 e = exp_avx512(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, x + i), vm));
        _mm512_mask_storeu_ps(x + i, k, e);
        acc = _mm512_add_ps(acc, _mm512_maskz_mov_ps(k, e));
    }
    return _mm512_reduce_add_ps(acc);
}

/* AVX2 + FMA (+ F16C, which the fused loops use): the same exp, 8 lanes wide. */
#define AVX2 __attribute__((target("avx2,fma,f16c")))

/* 2^n for integral n in [-75, 64] (normal floats): the exponent field built directly. */
AVX2 static __m256 pow2_avx2(__m256 n)
{
    return _mm256_castsi256_ps(
        _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23));
}

AVX2 static __m256 exp_avx2(__m256 x)
{
    __m256 xc = _mm256_min_ps(_mm256_set1_ps(EXP_HI + 1.0f), x); /* keep a NaN x */
    __m256 n, r, p, n1;
    xc = _mm256_max_ps(_mm256_set1_ps(EXP_LO - 1.0f), xc);
    n = _mm256_round_ps(_mm256_mul_ps(xc, _mm256_set1_ps(LOG2E)),
                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(LN2_HI), xc);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(LN2_LO), r);
    p = _mm256_set1_ps(P0);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(P1));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(P2));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(P3));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(P4));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(P5));
    p = _mm256_fmadd_ps(_mm256_mul_ps(p, r), r, _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    /* times 2^n (n in [-151, 129]) as 2^n1 * 2^n2, both normal: the first product is exact,
     * so the result is rounded once, as scalef rounds it */
    n1 = _mm256_floor_ps(_mm256_mul_ps(n, _mm256_set1_ps(0.5f)));
    p = _mm256_mul_ps(_mm256_mul_ps(p, pow2_avx2(n1)), pow2_avx2(_mm256_sub_ps(n, n1)));
    p = _mm256_blendv_ps(p, _mm256_set1_ps(INFINITY),
                         _mm256_cmp_ps(x, _mm256_set1_ps(EXP_HI), _CMP_GT_OQ));
    return _mm256_blendv_ps(p, _mm256_setzero_ps(),
                            _mm256_cmp_ps(x, _mm256_set1_ps(EXP_LO), _CMP_LT_OQ));
}

/* Lanes [0, k) set: the tail mask of maskload / maskstore. */
AVX2 static __m256i tail_mask(int64_t k)
{
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)k), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

AVX2 static float hsum_avx2(__m256 v)
{
    __m128 x = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    x = _mm_add_ps(x, _mm_movehl_ps(x, x));
    return _mm_cvtss_f32(_mm_add_ss(x, _mm_movehdup_ps(x)));
}

AVX2 static float vmax_avx2(const float *x, int64_t n)
{
    __m256 m = _mm256_set1_ps(-INFINITY);
    __m128 h;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        m = _mm256_max_ps(_mm256_loadu_ps(x + i), m); /* NaN in x is dropped */
    if (i < n) {
        const __m256i k = tail_mask(n - i);
        m = _mm256_max_ps(_mm256_blendv_ps(m, _mm256_maskload_ps(x + i, k), _mm256_castsi256_ps(k)),
                          m);
    }
    h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    h = _mm_max_ps(h, _mm_movehl_ps(h, h));
    return _mm_cvtss_f32(_mm_max_ss(h, _mm_movehdup_ps(h)));
}

AVX2 static float vexp_sum_avx2(float *x, int64_t n, float m)
{
    const __m256 vm = _mm256_set1_ps(m);
    __m256 acc = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 e = exp_avx2(_mm256_sub_ps(_mm256_loadu_ps(x + i), vm));
        _mm256_storeu_ps(x + i, e);
        acc = _mm256_add_ps(acc, e);
    }
    if (i < n) {
        const __m256i k = tail_mask(n - i);
        __m256 e = exp_avx2(_mm256_sub_ps(_mm256_maskload_ps(x + i, k), vm));
        _mm256_maskstore_ps(x + i, k, e);
        acc = _mm256_add_ps(acc, _mm256_and_ps(e, _mm256_castsi256_ps(k)));
    }
    return hsum_avx2(acc);
}

AVX2 static void vscale_avx2(float *y, int64_t n, float a)
{
    const __m256 va = _mm256_set1_ps(a);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_mul_ps(_mm256_loadu_ps(y + i), va));
    for (; i < n; i++)
        y[i] *= a;
}
#endif

static int g_avx512, g_avx512bf16, g_avx2;
static int g_force_avx2; /* tests: take the AVX2 paths on an AVX-512 CPU */
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

static void detect(void)
{
#ifdef NSA_X86
    __builtin_cpu_init();
    g_avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
               __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
    g_avx512bf16 = g_avx512 && __builtin_cpu_supports("avx512bf16");
    {
        unsigned a, b, c, d; /* F16C from cpuid: clang's __builtin_cpu_supports lacks it */
        const int f16c = __get_cpuid(1, &a, &b, &c, &d) && (c & bit_F16C);
        g_avx2 = f16c && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    }
#endif
}

int nsa_cpu_has_avx512(void)
{
    pthread_once(&g_once, detect);
    return g_avx512 && !g_force_avx2;
}

int nsa_cpu_has_avx512bf16(void)
{
    pthread_once(&g_once, detect);
    return g_avx512bf16 && !g_force_avx2;
}

void nsa_simd_force_avx2(int on)
{
    g_force_avx2 = on;
}

int nsa_cpu_has_avx2(void)
{
    pthread_once(&g_once, detect);
    return g_avx2;
}

const char *nsa_simd_name(void)
{
    return nsa_cpu_has_avx512() ? "avx512" : nsa_cpu_has_avx2() ? "avx2" : "portable";
}

float nsa_vmax(const float *x, int64_t n)
{
#ifdef NSA_X86
    if (nsa_cpu_has_avx512())
        return vmax_avx512(x, n);
    if (nsa_cpu_has_avx2())
        return vmax_avx2(x, n);
#endif
    return vmax_portable(x, n);
}

float nsa_vexp_sum(float *x, int64_t n, float m)
{
#ifdef NSA_X86
    if (nsa_cpu_has_avx512())
        return vexp_sum_avx512(x, n, m);
    if (nsa_cpu_has_avx2())
        return vexp_sum_avx2(x, n, m);
#endif
    return vexp_sum_portable(x, n, m);
}

void nsa_vscale(float *y, int64_t n, float a)
{
    int64_t i;
#ifdef NSA_X86
    if (nsa_cpu_has_avx2()) {
        vscale_avx2(y, n, a);
        return;
    }
#endif
    for (i = 0; i < n; i++)
        y[i] *= a;
}
