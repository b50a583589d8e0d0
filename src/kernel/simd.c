/* SPDX-License-Identifier: Apache-2.0 */
/* exp, max and sums over score rows. exp follows the Cephes expf scheme: n = round(x/ln2),
 * r = x - n*ln2 (two-part constant), exp(r) by a degree-6 polynomial, times 2^n; about
 * 1 ulp on the whole range. The AVX-512 and portable paths compute the same formula. */
#include "kernel/simd.h"

#include <math.h>
#include <pthread.h>

#if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
#define NSA_X86 1
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

#endif

static int g_avx512, g_avx512bf16;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

static void detect(void)
{
#ifdef NSA_X86
    __builtin_cpu_init();
    g_avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
               __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
    g_avx512bf16 = g_avx512 && __builtin_cpu_supports("avx512bf16");
#endif
}

int nsa_cpu_has_avx512(void)
{
    pthread_once(&g_once, detect);
    return g_avx512;
}

int nsa_cpu_has_avx512bf16(void)
{
    pthread_once(&g_once, detect);
    return g_avx512bf16;
}

const char *nsa_simd_name(void)
{
    return nsa_cpu_has_avx512() ? "avx512" : "portable";
}

float nsa_vmax(const float *x, int64_t n)
{
#ifdef NSA_X86
    if (nsa_cpu_has_avx512())
        return vmax_avx512(x, n);
#endif
    return vmax_portable(x, n);
}

float nsa_vexp_sum(float *x, int64_t n, float m)
{
#ifdef NSA_X86
    if (nsa_cpu_has_avx512())
        return vexp_sum_avx512(x, n, m);
#endif
    return vexp_sum_portable(x, n, m);
}

void nsa_vscale(float *y, int64_t n, float a)
{
    int64_t i;
    for (i = 0; i < n; i++)
        y[i] *= a;
}
