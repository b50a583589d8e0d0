/* SPDX-License-Identifier: Apache-2.0 */
/* The GEMM backend: CBLAS (OpenBLAS) when the build found one, else the built-in GEMM. */
#include "blas/blas.h"

#include <pthread.h>
#include <string.h>

#ifdef NSA_HAVE_CBLAS
#include <cblas.h>
#endif
#if defined(NSA_HAVE_CBLAS) && defined(OPENBLAS_VERSION)
#define NSA_OPENBLAS_THREADS 1
#endif

static pthread_mutex_t g_pin_lock = PTHREAD_MUTEX_INITIALIZER;
static int g_pin_depth;
#ifdef NSA_OPENBLAS_THREADS
static int g_saved_threads;
#endif

void nsa_blas_single_thread_begin(void)
{
    pthread_mutex_lock(&g_pin_lock);
    if (g_pin_depth++ == 0) {
#ifdef NSA_OPENBLAS_THREADS
        g_saved_threads = openblas_get_num_threads();
        if (g_saved_threads != 1)
            openblas_set_num_threads(1);
#endif
    }
    pthread_mutex_unlock(&g_pin_lock);
}

void nsa_blas_single_thread_end(void)
{
    pthread_mutex_lock(&g_pin_lock);
    if (--g_pin_depth == 0) {
#ifdef NSA_OPENBLAS_THREADS
        if (g_saved_threads != 1)
            openblas_set_num_threads(g_saved_threads);
#endif
    }
    pthread_mutex_unlock(&g_pin_lock);
}

/* The built-in GEMM: C rows are updated with axpy-shaped inner loops over contiguous j, which
 * compilers vectorise; op(A) and op(B) are read through strides, blocked over k so that a
 * block of B rows stays in cache. */
#define BUILTIN_KB 128

void nsa_sgemm_builtin(int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                       const float *a, int64_t lda, const float *b, int64_t ldb, float beta,
                       float *c, int64_t ldc)
{
    int64_t i, j, kk, k0;
    const int64_t a_rs = trans_a ? 1 : lda, a_cs = trans_a ? lda : 1;
    for (i = 0; i < m; i++) {
        float *ci = c + i * ldc;
        if (beta == 0.0f)
            for (j = 0; j < n; j++)
                ci[j] = 0.0f;
        else if (beta != 1.0f)
            for (j = 0; j < n; j++)
                ci[j] *= beta;
    }
    if (k == 0 || alpha == 0.0f)
        return;
    for (k0 = 0; k0 < k; k0 += BUILTIN_KB) {
        int64_t k1 = k0 + BUILTIN_KB < k ? k0 + BUILTIN_KB : k;
        for (i = 0; i < m; i++) {
            float *ci = c + i * ldc;
            const float *ai = a + i * a_rs;
            for (kk = k0; kk < k1; kk++) {
                const float aik = alpha * ai[kk * a_cs];
                if (!trans_b) {
                    const float *bk = b + kk * ldb;
                    for (j = 0; j < n; j++)
                        ci[j] += aik * bk[j];
                } else {
                    const float *bk = b + kk;
                    for (j = 0; j < n; j++)
                        ci[j] += aik * bk[j * ldb];
                }
            }
        }
    }
}

static int g_force_builtin;

void nsa_blas_force_builtin(int on)
{
    g_force_builtin = on;
}

void nsa_sgemm(int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, float alpha,
               const float *a, int64_t lda, const float *b, int64_t ldb, float beta, float *c,
               int64_t ldc)
{
    if (m <= 0 || n <= 0)
        return;
#ifdef NSA_HAVE_CBLAS
    if (k > 0 && !g_force_builtin) {
        cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                    trans_b ? CblasTrans : CblasNoTrans, (int)m, (int)n, (int)k, alpha, a,
                    (int)lda, b, (int)ldb, beta, c, (int)ldc);
        return;
    }
#endif
    nsa_sgemm_builtin(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

#ifdef NSA_OPENBLAS_THREADS
static int g_avx512_core;
static pthread_once_t g_core_once = PTHREAD_ONCE_INIT;

/* OpenBLAS picks its kernels by CPU model (or OPENBLAS_CORETYPE); these are its AVX-512
 * ones. A CPU it does not know (Zen 5 for 0.3.21) gets Haswell's AVX2 kernels. */
static void detect_core(void)
{
    static const char *const avx512[] = {"skylakex", "cooperlake", "sapphirerapids"};
    const char *core = openblas_get_corename();
    char low[32];
    size_t i, j;
    for (i = 0; core && core[i] && i + 1 < sizeof low; i++)
        low[i] = (char)(core[i] >= 'A' && core[i] <= 'Z' ? core[i] - 'A' + 'a' : core[i]);
    low[core ? i : 0] = '\0';
    for (j = 0; j < sizeof avx512 / sizeof avx512[0]; j++)
        if (strcmp(low, avx512[j]) == 0)
            g_avx512_core = 1;
}
#endif

int nsa_blas_avx512_kernels(void)
{
#ifdef NSA_OPENBLAS_THREADS
    if (g_force_builtin)
        return 0;
    pthread_once(&g_core_once, detect_core);
    return g_avx512_core;
#else
    return 0;
#endif
}

const char *nsa_blas_name(void)
{
#ifdef NSA_HAVE_CBLAS
    return "openblas";
#else
    return "builtin";
#endif
}
