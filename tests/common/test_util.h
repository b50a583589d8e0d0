/* SPDX-License-Identifier: Apache-2.0 */
/* Shared test helpers: CMocka prelude, deterministic RNG, float comparisons, .npy loading. */
#ifndef NSA_TEST_UTIL_H
#define NSA_TEST_UTIL_H

/* cmocka 1.1 needs these before cmocka.h */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "nsa/nsa.h"

/* xorshift64* generator: reproducible across platforms. */
typedef struct test_rng {
    uint64_t state;
} test_rng;

void test_rng_seed(test_rng *rng, uint64_t seed);
uint64_t test_rng_u64(test_rng *rng);
/* uniform in [lo, hi) */
float test_rng_uniform(test_rng *rng, float lo, float hi);
/* integer in [lo, hi] */
int64_t test_rng_int(test_rng *rng, int64_t lo, int64_t hi);

/* Distance in units in the last place of `dt` (f16 / bf16 / f32) between an output value and
 * a reference (the reference is first rounded to nearest even in `dt`). NaN vs NaN is 0;
 * NaN vs number is a huge value. */
double test_ulp_diff(float got, double ref, nsa_dtype dt);

/* Fail the test (with index, values and the worst error) unless every |got - ref| <= atol +
 * rtol * |ref|. `what` names the array in the message. */
void test_assert_close(const char *what, const float *got, const double *ref, int64_t n,
                       double atol, double rtol);
/* Fail unless every element is within max_ulps ulps of `dt` (see test_ulp_diff). */
void test_assert_ulps(const char *what, const float *got, const double *ref, int64_t n,
                      nsa_dtype dt, double max_ulps);

/* Round every element to `dt` precision (RNE), in place. */
void test_round_to_dtype(float *x, int64_t n, nsa_dtype dt);
/* Convert n floats into a buffer of dtype dt (RNE); the caller frees the result. */
void *test_to_dtype(const float *x, int64_t n, nsa_dtype dt);
/* Convert n elements of dtype dt to floats; the caller frees the result. */
float *test_to_f32(const void *x, int64_t n, nsa_dtype dt);

/* A .npy array loaded whole. dtype: NSA_DTYPE_* for <f4 <i4 <i8 |i1 |u1 |b1 <f2; <f8 loads as
 * `f64` with dtype NSA_DTYPE_F32 left unset (is_f64 = 1). */
typedef struct test_npy {
    void *data;
    int is_f64;
    nsa_dtype dtype;
    int ndim;
    int64_t shape[8];
    int64_t numel;
} test_npy;

/* Load `dir`/`name` (relative to NSA_TEST_DATA_DIR); returns 0 on success. */
int test_npy_load(const char *dir, const char *name, test_npy *out);
void test_npy_free(test_npy *a);
/* Element i as double, whatever the stored type. */
double test_npy_get(const test_npy *a, int64_t i);
/* Read `key = value` from `dir`/case.txt into buf; returns 0 when found. */
int test_case_get(const char *dir, const char *key, char *buf, size_t cap);

#endif /* NSA_TEST_UTIL_H */
