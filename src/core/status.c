/* SPDX-License-Identifier: Apache-2.0 */
/* Status names, the per-thread last-error message, version and build information. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "blas/blas.h"
#include "core/internal.h"
#include "kernel/simd.h"

#if defined(__STDC_VERSION__) && __STDC_VERSION__ >= 201112L && !defined(__STDC_NO_THREADS__)
#define NSA_THREAD_LOCAL _Thread_local
#elif defined(__GNUC__) || defined(__clang__)
#define NSA_THREAD_LOCAL __thread
#else
#define NSA_THREAD_LOCAL /* no TLS: messages are shared between threads */
#endif

static NSA_THREAD_LOCAL char g_last_error[512];
/* The format of the last message: tests use it to tell which rule of docs/errors.md fired. */
static NSA_THREAD_LOCAL const char *g_last_error_format;

const char *nsa_status_string(nsa_status status)
{
    switch (status) {
    case NSA_SUCCESS:
        return "NSA_SUCCESS";
    case NSA_ERR_NULL_POINTER:
        return "NSA_ERR_NULL_POINTER";
    case NSA_ERR_INVALID_ARGUMENT:
        return "NSA_ERR_INVALID_ARGUMENT";
    case NSA_ERR_UNSUPPORTED:
        return "NSA_ERR_UNSUPPORTED";
    case NSA_ERR_WORKSPACE_TOO_SMALL:
        return "NSA_ERR_WORKSPACE_TOO_SMALL";
    case NSA_ERR_OUT_OF_MEMORY:
        return "NSA_ERR_OUT_OF_MEMORY";
    case NSA_ERR_INTERNAL:
        return "NSA_ERR_INTERNAL";
    }
    return "NSA_ERR_UNKNOWN";
}

const char *nsa_last_error(void)
{
    return g_last_error;
}

nsa_status nsa_error(nsa_status status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g_last_error, sizeof g_last_error, fmt, ap);
    va_end(ap);
    g_last_error_format = fmt;
    return status;
}

void nsa_clear_error(void)
{
    g_last_error[0] = '\0';
    g_last_error_format = NULL;
}

const char *nsa_last_error_format(void)
{
    return g_last_error_format;
}

unsigned nsa_version_number(void)
{
    return NSA_VERSION_NUMBER;
}

const char *nsa_version_string(void)
{
    return NSA_VERSION_STRING;
}

nsa_blas_backend nsa_blas_backend_used(void)
{
#ifdef NSA_HAVE_CBLAS
    return NSA_BLAS_CBLAS;
#else
    return NSA_BLAS_BUILTIN;
#endif
}

const char *nsa_build_info(void)
{
    static NSA_THREAD_LOCAL char info[160];
    snprintf(info, sizeof info, "version=%s blas=%s simd=%s threads=%d", NSA_VERSION_STRING,
             nsa_blas_name(), nsa_simd_name(), nsa_default_num_threads());
    return info;
}
