/* SPDX-License-Identifier: Apache-2.0 */
#include "test_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void test_rng_seed(test_rng *rng, uint64_t seed)
{
    rng->state = seed ? seed : 0x9e3779b97f4a7c15ull;
}

uint64_t test_rng_u64(test_rng *rng)
{
    uint64_t x = rng->state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    rng->state = x;
    return x * 0x2545f4914f6cdd1dull;
}

float test_rng_uniform(test_rng *rng, float lo, float hi)
{
    double u = (double)(test_rng_u64(rng) >> 40) / (double)(1ull << 24);
    return (float)((double)lo + ((double)hi - (double)lo) * u);
}

int64_t test_rng_int(test_rng *rng, int64_t lo, int64_t hi)
{
    return lo + (int64_t)(test_rng_u64(rng) % (uint64_t)(hi - lo + 1));
}

static double ulp_of(double x, nsa_dtype dt)
{
    int e;
    double ax = fabs(x);
    int mant = dt == NSA_DTYPE_F16 ? 10 : dt == NSA_DTYPE_BF16 ? 7 : 23;
    int emin = dt == NSA_DTYPE_F16 ? -14 : -126;
    if (ax == 0.0)
        return ldexp(1.0, emin - mant);
    frexp(ax, &e); /* ax in [2^(e-1), 2^e) */
    if (e - 1 < emin)
        e = emin + 1;
    return ldexp(1.0, e - 1 - mant);
}

double test_ulp_diff(float got, double ref, nsa_dtype dt)
{
    float r;
    if (isnan(got) && isnan(ref))
        return 0.0;
    if (isnan(got) || isnan(ref))
        return 1e30;
    r = (float)ref;
    if (dt == NSA_DTYPE_F16)
        r = nsa_f16_to_f32(nsa_f32_to_f16((float)ref, NSA_ROUND_NEAREST_EVEN));
    else if (dt == NSA_DTYPE_BF16)
        r = nsa_bf16_to_f32(nsa_f32_to_bf16((float)ref, NSA_ROUND_NEAREST_EVEN));
    if (isinf(got) || isinf(r))
        return got == r ? 0.0 : 1e30;
    return fabs((double)got - (double)r) / ulp_of(r, dt);
}

void test_assert_close(const char *what, const float *got, const double *ref, int64_t n,
                       double atol, double rtol)
{
    int64_t i, worst = -1;
    double worst_excess = 0.0;
    for (i = 0; i < n; i++) {
        double g = got[i], r = ref[i];
        double err, lim;
        if (isnan(g) && isnan(r))
            continue;
        if (isinf(r) || isinf(g)) {
            if (g != r) {
                worst = i;
                break;
            }
            continue;
        }
        err = fabs(g - r);
        lim = atol + rtol * fabs(r);
        if (!(err <= lim) && (worst < 0 || err - lim > worst_excess)) {
            worst = i;
            worst_excess = err - lim;
        }
    }
    if (worst >= 0)
        fail_msg("%s[%lld]: got %.9g, expected %.9g (atol %g, rtol %g)", what, (long long)worst,
                 (double)got[worst], ref[worst], atol, rtol);
}

void test_assert_ulps(const char *what, const float *got, const double *ref, int64_t n,
                      nsa_dtype dt, double max_ulps)
{
    int64_t i, worst = -1;
    double worst_d = 0.0;
    for (i = 0; i < n; i++) {
        double d = test_ulp_diff(got[i], ref[i], dt);
        if (d > max_ulps && d > worst_d) {
            worst = i;
            worst_d = d;
        }
    }
    if (worst >= 0)
        fail_msg("%s[%lld]: got %.9g, expected %.9g: %.3g ulps of %s > %g", what,
                 (long long)worst, (double)got[worst], ref[worst], worst_d, nsa_dtype_name(dt),
                 max_ulps);
}

void test_round_to_dtype(float *x, int64_t n, nsa_dtype dt)
{
    int64_t i;
    for (i = 0; i < n; i++) {
        if (dt == NSA_DTYPE_F16)
            x[i] = nsa_f16_to_f32(nsa_f32_to_f16(x[i], NSA_ROUND_NEAREST_EVEN));
        else if (dt == NSA_DTYPE_BF16)
            x[i] = nsa_bf16_to_f32(nsa_f32_to_bf16(x[i], NSA_ROUND_NEAREST_EVEN));
    }
}

void *test_to_dtype(const float *x, int64_t n, nsa_dtype dt)
{
    void *out = malloc((size_t)(n > 0 ? n : 1) * nsa_dtype_size(dt));
    assert_non_null(out);
    if (n > 0)
        assert_int_equal(nsa_convert(x, NSA_DTYPE_F32, 1, out, dt, 1, n, NSA_ROUND_NEAREST_EVEN),
                         NSA_SUCCESS);
    return out;
}

float *test_to_f32(const void *x, int64_t n, nsa_dtype dt)
{
    float *out = (float *)malloc((size_t)(n > 0 ? n : 1) * sizeof(float));
    assert_non_null(out);
    if (n > 0)
        assert_int_equal(nsa_convert(x, dt, 1, out, NSA_DTYPE_F32, 1, n, NSA_ROUND_NEAREST_EVEN),
                         NSA_SUCCESS);
    return out;
}

/* ---- .npy ---------------------------------------------------------------------------------- */

static int parse_descr(const char *h, test_npy *a, size_t *esize)
{
    const char *p = strstr(h, "'descr'");
    if (!p || !(p = strchr(p + 7, '\'')))
        return -1;
    p++;
    a->is_f64 = 0;
    if (!strncmp(p, "<f4'", 4)) {
        a->dtype = NSA_DTYPE_F32;
        *esize = 4;
    } else if (!strncmp(p, "<f8'", 4)) {
        a->is_f64 = 1;
        a->dtype = NSA_DTYPE_F32;
        *esize = 8;
    } else if (!strncmp(p, "<f2'", 4)) {
        a->dtype = NSA_DTYPE_F16;
        *esize = 2;
    } else if (!strncmp(p, "<i4'", 4)) {
        a->dtype = NSA_DTYPE_I32;
        *esize = 4;
    } else if (!strncmp(p, "<i8'", 4)) {
        a->dtype = NSA_DTYPE_I64;
        *esize = 8;
    } else if (!strncmp(p, "|i1'", 4)) {
        a->dtype = NSA_DTYPE_I8;
        *esize = 1;
    } else if (!strncmp(p, "|u1'", 4)) {
        a->dtype = NSA_DTYPE_U8;
        *esize = 1;
    } else if (!strncmp(p, "|b1'", 4)) {
        a->dtype = NSA_DTYPE_BOOL;
        *esize = 1;
    } else {
        return -1;
    }
    if (strstr(h, "'fortran_order': True"))
        return -1;
    p = strstr(h, "'shape'");
    if (!p || !(p = strchr(p, '(')))
        return -1;
    p++;
    a->ndim = 0;
    while (*p && *p != ')') {
        char *end;
        long long v;
        while (*p == ' ' || *p == ',')
            p++;
        if (*p == ')')
            break;
        v = strtoll(p, &end, 10);
        if (end == p || a->ndim >= 8 || v < 0)
            return -1;
        a->shape[a->ndim++] = v;
        p = end;
    }
    return 0;
}

int test_npy_load(const char *dir, const char *name, test_npy *out)
{
    char path[1024], *header = NULL;
    unsigned char pre[12];
    size_t hlen, esize = 0, nread;
    int i, major;
    FILE *f;
    memset(out, 0, sizeof *out);
    snprintf(path, sizeof path, "%s/%s/%s", NSA_TEST_DATA_DIR, dir, name);
    f = fopen(path, "rb");
    if (!f)
        return -1;
    if (fread(pre, 1, 10, f) != 10 || memcmp(pre, "\x93NUMPY", 6) != 0)
        goto fail;
    major = pre[6];
    if (major == 1) {
        hlen = (size_t)pre[8] | ((size_t)pre[9] << 8);
    } else {
        if (fread(pre + 10, 1, 2, f) != 2)
            goto fail;
        hlen = (size_t)pre[8] | ((size_t)pre[9] << 8) | ((size_t)pre[10] << 16) |
               ((size_t)pre[11] << 24);
    }
    header = (char *)calloc(1, hlen + 1);
    if (!header || fread(header, 1, hlen, f) != hlen || parse_descr(header, out, &esize) != 0)
        goto fail;
    out->numel = 1;
    for (i = 0; i < out->ndim; i++)
        out->numel *= out->shape[i];
    out->data = malloc((size_t)(out->numel ? out->numel : 1) * esize);
    if (!out->data)
        goto fail;
    nread = fread(out->data, esize, (size_t)out->numel, f);
    if (nread != (size_t)out->numel)
        goto fail;
    free(header);
    fclose(f);
    return 0;
fail:
    free(header);
    free(out->data);
    out->data = NULL;
    fclose(f);
    return -1;
}

void test_npy_free(test_npy *a)
{
    free(a->data);
    a->data = NULL;
}

double test_npy_get(const test_npy *a, int64_t i)
{
    if (a->is_f64)
        return ((const double *)a->data)[i];
    switch (a->dtype) {
    case NSA_DTYPE_F32:
        return ((const float *)a->data)[i];
    case NSA_DTYPE_F16:
        return nsa_f16_to_f32(((const uint16_t *)a->data)[i]);
    case NSA_DTYPE_I32:
        return ((const int32_t *)a->data)[i];
    case NSA_DTYPE_I64:
        return (double)((const int64_t *)a->data)[i];
    case NSA_DTYPE_I8:
        return ((const int8_t *)a->data)[i];
    default:
        return ((const uint8_t *)a->data)[i];
    }
}

int test_case_get(const char *dir, const char *key, char *buf, size_t cap)
{
    char path[1024], line[4096];
    size_t klen = strlen(key);
    FILE *f;
    snprintf(path, sizeof path, "%s/%s/case.txt", NSA_TEST_DATA_DIR, dir);
    f = fopen(path, "r");
    if (!f)
        return -1;
    while (fgets(line, sizeof line, f)) {
        char *p = line;
        while (*p == ' ')
            p++;
        if (strncmp(p, key, klen) == 0 && (p[klen] == ' ' || p[klen] == '=')) {
            char *v = strchr(p + klen, '=');
            size_t n;
            if (!v)
                continue;
            v++;
            while (*v == ' ')
                v++;
            n = strcspn(v, "\r\n");
            if (n >= cap)
                n = cap - 1;
            memcpy(buf, v, n);
            buf[n] = '\0';
            fclose(f);
            return 0;
        }
    }
    fclose(f);
    return -1;
}
