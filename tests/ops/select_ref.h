/* SPDX-License-Identifier: Apache-2.0 */
/* Float64 reference of nsa_select_attention written from the spec (nsa-research.md §4.3,
 * §4.4), independent of the library: a naive loop over every selected key. Shared by the
 * select-attention tests (header only; every test program is its own executable). */
#ifndef NSA_TEST_SELECT_REF_H
#define NSA_TEST_SELECT_REF_H

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

typedef struct select_ref_case {
    int64_t t1, t2, n1, n2, d, dv;
    int64_t block_size, block_count;
    int64_t batches;
    const int64_t *cum_q, *cum_kv; /* prefix sums */
    double scale;
    int causal;
    /* contiguous [T1,N1,D], [T2,N2,D], [T2,N2,Dv], [T1,N2,k] */
    const float *q, *k, *v;
    const int32_t *topk;
} select_ref_case;

/* out [T1,N1,Dv]; mx, sum [T1,N1] (one value per row); mag [T1,N1,Dv] = sum_u p_u |v_u|, the
 * magnitude fp32 rounding errors of the output scale with; smag [T1,N1] = the largest
 * |scale| * sum_e |q_e k_e| of the row, the same for its scores (any may be NULL). */
static void select_ref(const select_ref_case *c, double *out, double *mx, double *sum,
                       double *mag, double *smag)
{
    const int64_t g = c->n1 / c->n2, len = c->block_count * c->block_size;
    /* the vendor replaces the unscaled logit by -FLT_MAX, then scales in float32 */
    const double masked = (double)(-FLT_MAX * (float)c->scale);
    const double scale = (double)(float)c->scale;
    double *x = (double *)malloc((size_t)len * sizeof(double));
    int64_t *pos = (int64_t *)malloc((size_t)len * sizeof(int64_t));
    int64_t b, t, h, u, e;
    for (b = 0; b < c->batches; b++) {
        const int64_t q0 = b ? c->cum_q[b - 1] : 0, kv0 = b ? c->cum_kv[b - 1] : 0;
        for (t = q0; t < c->cum_q[b]; t++) {
            const int64_t s = t - q0;
            for (h = 0; h < c->n1; h++) {
                const int64_t n2 = h / g;
                double m = -INFINITY, z = 0.0, sm = 0.0;
                const float *qr = c->q + (t * c->n1 + h) * c->d;
                for (u = 0; u < len; u++) {
                    const int64_t slot = u / c->block_size;
                    const int64_t blk = c->topk[(t * c->n2 + n2) * c->block_count + slot];
                    const float *kr;
                    double dot = 0.0, adot = 0.0;
                    pos[u] = blk * c->block_size + u % c->block_size;
                    kr = c->k + ((kv0 + pos[u]) * c->n2 + n2) * c->d;
                    for (e = 0; e < c->d; e++) {
                        dot += (double)qr[e] * (double)kr[e];
                        adot += fabs((double)qr[e] * (double)kr[e]);
                    }
                    if (adot * fabs(scale) > sm)
                        sm = adot * fabs(scale);
                    x[u] = c->causal && pos[u] > s ? masked : dot * scale;
                    if (x[u] > m)
                        m = x[u];
                }
                for (u = 0; u < len; u++)
                    z += exp(x[u] - m); /* all -inf: NaN, as the vendor */
                if (mx)
                    mx[t * c->n1 + h] = m;
                if (smag)
                    smag[t * c->n1 + h] = sm;
                if (sum)
                    sum[t * c->n1 + h] = m == -INFINITY ? NAN : z;
                for (e = 0; e < c->dv; e++) {
                    double acc = 0.0, amag = 0.0;
                    for (u = 0; u < len; u++) {
                        const double p = m == -INFINITY ? NAN : exp(x[u] - m) / z;
                        const double vv = c->v[((kv0 + pos[u]) * c->n2 + n2) * c->dv + e];
                        acc += p * vv;
                        amag += p * fabs(vv);
                    }
                    if (out)
                        out[(t * c->n1 + h) * c->dv + e] = acc;
                    if (mag)
                        mag[(t * c->n1 + h) * c->dv + e] = amag;
                }
            }
        }
    }
    free(x);
    free(pos);
}

/* An fp32 computation of the output loses about one fp32 unit of the magnitude `mag` of the
 * terms it sums (products, exp, normalisation), and every score carries an fp32 error of
 * about one unit of the score magnitude `smag`, which moves the output by up to
 * 2 * smag_error * mag (d out / d x_u = p_u (v_u - out)). Allow 4 units of each, plus `ulps`
 * units of the output dtype for the final rounding. mag is per element, smag per row of
 * `dv` elements. Fails with the first element outside. */
static void select_assert_output(const char *what, const float *got, const double *ref,
                                 const double *mag, const double *smag, int64_t dv, int64_t n,
                                 nsa_dtype dt, double ulps)
{
    int64_t i;
    for (i = 0; i < n; i++) {
        const double fp32_floor = 4.0 * ldexp(mag[i], -24) * (1.0 + 2.0 * smag[i / dv]);
        const double ud = test_ulp_diff(got[i], ref[i], dt);
        const double diff = fabs((double)got[i] - ref[i]);
        const double ulp_size = ud > 0.0 ? diff / ud : 0.0; /* one ulp of dt at ref */
        if (ud <= ulps || diff <= fp32_floor + ulps * ulp_size)
            continue;
        fail_msg("%s[%lld]: got %.9g, expected %.9g (%.1f ulps of %s; fp32 floor %.3g)", what,
                 (long long)i, (double)got[i], ref[i], ud, nsa_dtype_name(dt), fp32_floor);
    }
}

/* softmax_max: `rtol` relative, plus 4 fp32 units of the score magnitude smag (a row max
 * that is a small dot product of large terms cannot be closer in fp32). Every row has 8
 * copies; got is [rows, 8], ref and smag are [rows]. */
static void select_assert_stat(const char *what, const float *got, const double *ref,
                               const double *smag, int64_t rows, double rtol)
{
    int64_t i, c;
    for (i = 0; i < rows; i++)
        for (c = 0; c < 8; c++) {
            const double g = got[i * 8 + c], r = ref[i];
            if ((isnan(g) && isnan(r)) || g == r)
                continue;
            if (fabs(g - r) <= rtol * fabs(r) + (smag ? 4.0 * ldexp(smag[i], -24) : 0.0))
                continue;
            fail_msg("%s[%lld, copy %lld]: got %.9g, expected %.9g (rtol %g, score magnitude "
                     "%.3g)",
                     what, (long long)i, (long long)c, g, r, rtol, smag ? smag[i] : 0.0);
        }
}

#endif
