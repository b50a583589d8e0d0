/* SPDX-License-Identifier: Apache-2.0 */
/* dtype conversions against references written here from the IEEE definitions (ldexp
 * decoding, rounding in double with explicit tie logic): every f16 and bf16 bit pattern,
 * f32 -> f16 / bf16 around every representable value and tie in both rounding modes, the
 * float edge cases, int8 quantisation, nsa_convert's argument errors, and every vector path
 * (AVX2/F16C, AVX-512) bit-identical to the portable one on odd lengths and strides. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dtype/convert.h"
#include "test_status.h"
#include "test_util.h"

static uint32_t bits_of(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static float float_of(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* Each instruction-set level available on this CPU, the portable one first. */
static int g_isas[3];
static int g_nisas;

static int setup_isas(void **state)
{
    int best = nsa_convert_set_isa(NSA_CVT_AVX512), i;
    (void)state;
    g_nisas = 0;
    for (i = NSA_CVT_PORTABLE; i <= best; i++)
        g_isas[g_nisas++] = i;
    return 0;
}

static int restore_isa(void **state)
{
    (void)state;
    nsa_convert_set_isa(NSA_CVT_AVX512);
    return 0;
}

/* ---- independent references ----------------------------------------------------------- */

/* The value of a 16-bit float with `mbits` mantissa bits and exponent bias `bias`:
 * (-1)^s * 2^(e - bias) * 1.m, or 2^(1 - bias) * 0.m for e == 0. NaN/inf handled by callers. */
static double decode16(uint16_t h, int mbits, int ebits)
{
    int bias = (1 << (ebits - 1)) - 1;
    int e = (h >> mbits) & ((1 << ebits) - 1);
    int m = h & ((1 << mbits) - 1);
    double v = e == 0 ? ldexp(m, 1 - bias - mbits) : ldexp(m + (1 << mbits), e - bias - mbits);
    return (h & 0x8000) ? -v : v;
}

static double ref_f16(uint16_t h)
{
    return decode16(h, 10, 5);
}

static double ref_bf16(uint16_t h)
{
    return decode16(h, 7, 8);
}

/* |x| rounded to `p` significant bits with minimum normal exponent `emin`, in mode `away`;
 * +inf when the result exceeds `max`. Done in double: every quantity here is exact. */
static double ref_round(double a, int p, int emin, double max, int away)
{
    int ex;
    double ulp, q, n, frac;
    if (a == 0.0)
        return 0.0;
    frexp(a, &ex); /* a = f * 2^ex, f in [0.5, 1): the exponent of a is ex - 1 */
    if (ex - 1 < emin)
        ex = emin + 1;
    ulp = ldexp(1.0, ex - 1 - (p - 1));
    q = a / ulp;
    n = floor(q);
    frac = q - n;
    if (frac > 0.5 || (frac == 0.5 && (away || fmod(n, 2.0) == 1.0)))
        n += 1.0;
    return n * ulp > max ? INFINITY : n * ulp;
}

#define F16_MAX 65504.0
#define BF16_MAX 3.3895313892515355e38 /* (2 - 2^-7) * 2^127 */

/* Check one f32 -> 16-bit conversion result against the reference. */
static void check_narrow(float x, uint16_t got, nsa_dtype dt, nsa_rounding mode, const char *path)
{
    int is_f16 = dt == NSA_DTYPE_F16;
    uint32_t xb = bits_of(x);
    uint16_t sign = (uint16_t)((xb >> 16) & 0x8000u);
    if (isnan(x)) {
        /* quiet NaN, sign kept, the top payload bits kept below the quiet bit */
        uint16_t want = is_f16 ? (uint16_t)(sign | 0x7e00u | ((xb >> 13) & 0x3ffu))
                               : (uint16_t)((xb >> 16) | 0x40u);
        if (got != want)
            fail_msg("%s %s(NaN 0x%08x) = 0x%04x, want 0x%04x", path, nsa_dtype_name(dt), xb, got,
                     want);
        return;
    }
    {
        double a = fabs((double)x);
        double want = is_f16 ? ref_round(a, 11, -14, F16_MAX, mode == NSA_ROUND_NEAREST_AWAY)
                             : ref_round(a, 8, -126, BF16_MAX, mode == NSA_ROUND_NEAREST_AWAY);
        uint16_t e_mask = is_f16 ? 0x7c00u : 0x7f80u;
        double have;
        if ((got & e_mask) == e_mask)
            have = (got & (is_f16 ? 0x3ffu : 0x7fu)) ? NAN : INFINITY;
        else
            have = fabs(is_f16 ? ref_f16(got) : ref_bf16(got));
        if (have != want || (got & 0x8000u) != sign)
            fail_msg("%s %s(%.9g = 0x%08x, %s) = 0x%04x (%.9g), want %.9g", path,
                     nsa_dtype_name(dt), (double)x, xb,
                     mode == NSA_ROUND_NEAREST_AWAY ? "ties away" : "ties even", got, have,
                     sign ? -want : want);
    }
}

/* ---- widening: every bit pattern -------------------------------------------------------- */

static void check_widen(uint16_t h, float got, nsa_dtype dt, const char *path)
{
    int is_f16 = dt == NSA_DTYPE_F16;
    uint16_t e_mask = is_f16 ? 0x7c00u : 0x7f80u, m_mask = is_f16 ? 0x3ffu : 0x7fu;
    uint32_t gb = bits_of(got);
    if ((h & e_mask) == e_mask && (h & m_mask)) {
        /* NaN: quiet, same sign, payload bits moved to the top of the f32 payload */
        int shift = is_f16 ? 13 : 16;
        uint32_t want =
            ((uint32_t)(h & 0x8000u) << 16) | 0x7fc00000u | ((uint32_t)(h & m_mask) << shift);
        if (gb != want)
            fail_msg("%s %s 0x%04x -> 0x%08x, want quiet NaN 0x%08x", path, nsa_dtype_name(dt), h,
                     gb, want);
        return;
    }
    {
        double want = (h & e_mask) == e_mask ? ((h & 0x8000u) ? -INFINITY : INFINITY)
                      : is_f16               ? ref_f16(h)
                                             : ref_bf16(h);
        if ((double)got != want || (gb >> 31) != (uint32_t)(h >> 15))
            fail_msg("%s %s 0x%04x -> %.9g (0x%08x), want %.9g", path, nsa_dtype_name(dt), h,
                     (double)got, gb, want);
    }
}

static void widen_all_patterns(void **state)
{
    static const nsa_dtype dts[2] = {NSA_DTYPE_F16, NSA_DTYPE_BF16};
    uint16_t *h = malloc(65536 * sizeof *h);
    float *f = malloc(65536 * sizeof *f);
    int d, k;
    uint32_t i;
    char path[32];
    (void)state;
    assert_non_null(h);
    assert_non_null(f);
    for (i = 0; i < 65536; i++)
        h[i] = (uint16_t)i;
    for (d = 0; d < 2; d++) {
        for (i = 0; i < 65536; i++)
            check_widen(h[i],
                        dts[d] == NSA_DTYPE_F16 ? nsa_f16_to_f32(h[i]) : nsa_bf16_to_f32(h[i]),
                        dts[d], "scalar");
        for (k = 0; k < g_nisas; k++) {
            nsa_convert_set_isa(g_isas[k]);
            snprintf(path, sizeof path, "row isa %d", g_isas[k]);
            nsa_load_f32(h, dts[d], 1, f, 65536);
            for (i = 0; i < 65536; i++)
                check_widen(h[i], f[i], dts[d], path);
        }
        /* nsa_convert, strided source (the portable path) */
        assert_int_equal(
            nsa_convert(h, dts[d], 1, f, NSA_DTYPE_F32, 1, 65536, NSA_ROUND_NEAREST_EVEN),
            NSA_SUCCESS);
        for (i = 0; i < 65536; i++)
            check_widen(h[i], f[i], dts[d], "nsa_convert");
        assert_int_equal(
            nsa_convert(h, dts[d], 2, f, NSA_DTYPE_F32, 1, 32768, NSA_ROUND_NEAREST_EVEN),
            NSA_SUCCESS);
        for (i = 0; i < 32768; i++)
            check_widen(h[2 * i], f[i], dts[d], "nsa_convert stride 2");
    }
    nsa_convert_set_isa(NSA_CVT_AVX512);
    free(h);
    free(f);
}

/* ---- narrowing ------------------------------------------------------------------------- */

/* Push x and -x, and their f32 neighbours, to the list. */
static size_t push_around(float *v, size_t n, double x)
{
    float f = (float)x;
    v[n++] = f;
    v[n++] = nextafterf(f, INFINITY);
    v[n++] = nextafterf(f, -INFINITY);
    v[n++] = -f;
    v[n++] = -nextafterf(f, INFINITY);
    v[n++] = -nextafterf(f, -INFINITY);
    return n;
}

/* Every representable positive value of the 16-bit type, the midpoint (tie) to its
 * successor, and their f32 neighbours, both signs. */
static float *narrow_inputs(nsa_dtype dt, size_t *count)
{
    int is_f16 = dt == NSA_DTYPE_F16;
    uint32_t last = is_f16 ? 0x7bffu : 0x7f7fu, h;
    float *v = malloc((size_t)(last + 1) * 12 * sizeof *v);
    size_t n = 0;
    assert_non_null(v);
    for (h = 0; h <= last; h++) {
        double lo = is_f16 ? ref_f16((uint16_t)h) : ref_bf16((uint16_t)h);
        double hi = h == last ? (is_f16 ? 65536.0 : ldexp(1.0, 128))
                              : (is_f16 ? ref_f16((uint16_t)(h + 1)) : ref_bf16((uint16_t)(h + 1)));
        n = push_around(v, n, lo);
        n = push_around(v, n, 0.5 * (lo + hi)); /* exact: needs one more bit than the type */
    }
    *count = n;
    return v;
}

static void narrow_around_every_value(void **state)
{
    static const nsa_dtype dts[2] = {NSA_DTYPE_F16, NSA_DTYPE_BF16};
    static const nsa_rounding modes[2] = {NSA_ROUND_NEAREST_EVEN, NSA_ROUND_NEAREST_AWAY};
    int d, m, k;
    (void)state;
    for (d = 0; d < 2; d++) {
        size_t n, i;
        float *v = narrow_inputs(dts[d], &n);
        uint16_t *out = malloc(n * sizeof *out);
        char path[32];
        assert_non_null(out);
        for (m = 0; m < 2; m++) {
            for (i = 0; i < n; i++)
                check_narrow(v[i],
                             dts[d] == NSA_DTYPE_F16 ? nsa_f32_to_f16(v[i], modes[m])
                                                     : nsa_f32_to_bf16(v[i], modes[m]),
                             dts[d], modes[m], "scalar");
            for (k = 0; k < g_nisas; k++) {
                nsa_convert_set_isa(g_isas[k]);
                snprintf(path, sizeof path, "row isa %d", g_isas[k]);
                nsa_store_f32(v, out, dts[d], 1, (int64_t)n, modes[m]);
                for (i = 0; i < n; i++)
                    check_narrow(v[i], out[i], dts[d], modes[m], path);
            }
            nsa_convert_set_isa(NSA_CVT_AVX512);
        }
        free(out);
        free(v);
    }
}

/* Random bit patterns: every exponent, NaN payloads, subnormals. */
static void narrow_random_patterns(void **state)
{
    static const nsa_dtype dts[2] = {NSA_DTYPE_F16, NSA_DTYPE_BF16};
    static const nsa_rounding modes[2] = {NSA_ROUND_NEAREST_EVEN, NSA_ROUND_NEAREST_AWAY};
    const size_t n = 200003;
    float *v = malloc(n * sizeof *v);
    uint16_t *out = malloc(n * sizeof *out);
    test_rng rng;
    size_t i;
    int d, m, k;
    (void)state;
    assert_non_null(v);
    assert_non_null(out);
    test_rng_seed(&rng, 11);
    for (i = 0; i < n; i++)
        v[i] = float_of((uint32_t)test_rng_u64(&rng));
    for (d = 0; d < 2; d++)
        for (m = 0; m < 2; m++)
            for (k = 0; k < g_nisas; k++) {
                nsa_convert_set_isa(g_isas[k]);
                nsa_store_f32(v, out, dts[d], 1, (int64_t)n, modes[m]);
                for (i = 0; i < n; i++)
                    check_narrow(v[i], out[i], dts[d], modes[m], "random");
            }
    nsa_convert_set_isa(NSA_CVT_AVX512);
    free(v);
    free(out);
}

/* Hand-picked edge cases with the expected bits written out. */
typedef struct edge {
    uint32_t in;
    uint16_t even, away; /* expected results for ties-to-even and ties-away */
} edge;

static void narrow_edge_cases(void **state)
{
    static const edge f16[] = {
        {0x00000000u, 0x0000, 0x0000}, /* +0 */
        {0x80000000u, 0x8000, 0x8000}, /* -0 */
        {0x7f800000u, 0x7c00, 0x7c00}, /* +inf */
        {0xff800000u, 0xfc00, 0xfc00}, /* -inf */
        {0x7f800001u, 0x7e00, 0x7e00}, /* signalling NaN -> quiet */
        {0xffc00000u, 0xfe00, 0xfe00}, /* -NaN keeps its sign */
        {0x7fbfe000u, 0x7fff, 0x7fff}, /* payload bits kept */
        {0x00000001u, 0x0000, 0x0000}, /* smallest f32 subnormal */
        {0x807fffffu, 0x8000, 0x8000}, /* largest f32 subnormal */
        {0x33000000u, 0x0000, 0x0001}, /* 2^-25: tie between 0 and the smallest f16 */
        {0x33000001u, 0x0001, 0x0001}, /* just above the tie */
        {0x337fffffu, 0x0001, 0x0001}, /* just below 2^-24 */
        {0x33800000u, 0x0001, 0x0001}, /* 2^-24, smallest f16 subnormal */
        {0x33c00000u, 0x0002, 0x0002}, /* 1.5 * 2^-24: tie, 1 is odd */
        {0x34200000u, 0x0002, 0x0003}, /* 2.5 * 2^-24: tie, 2 is even */
        {0x387fc000u, 0x03ff, 0x03ff}, /* the largest f16 subnormal */
        {0x387fe000u, 0x0400, 0x0400}, /* largest subnormal + half ulp: ties up to 2^-14 */
        {0x38800000u, 0x0400, 0x0400}, /* 2^-14, smallest normal */
        {0x3f801000u, 0x3c00, 0x3c01}, /* 1 + 2^-11: tie */
        {0x3f803000u, 0x3c02, 0x3c02}, /* 1 + 3 * 2^-11: tie, odd below */
        {0x477fe000u, 0x7bff, 0x7bff}, /* 65504, the largest f16 */
        {0x477fefffu, 0x7bff, 0x7bff}, /* just below 65520 */
        {0x477ff000u, 0x7c00, 0x7c00}, /* 65520: tie -> inf both ways */
        {0x47800000u, 0x7c00, 0x7c00}, /* 65536 */
        {0xc77ff000u, 0xfc00, 0xfc00}, /* -65520 */
        {0x7f7fffffu, 0x7c00, 0x7c00}, /* FLT_MAX */
    };
    static const edge bf16[] = {
        {0x00000000u, 0x0000, 0x0000}, {0x80000000u, 0x8000, 0x8000}, {0x7f800000u, 0x7f80, 0x7f80},
        {0xff800000u, 0xff80, 0xff80}, {0x7f800001u, 0x7fc0, 0x7fc0}, /* signalling NaN -> quiet */
        {0xff810000u, 0xffc1, 0xffc1},                                /* sign and payload kept */
        {0x00000001u, 0x0000, 0x0000}, /* f32 subnormal, far below half a bf16 ulp */
        {0x00008000u, 0x0000, 0x0001}, /* tie between 0 and the smallest bf16 subnormal */
        {0x00018000u, 0x0002, 0x0002}, /* tie, odd below */
        {0x807fffffu, 0x8080, 0x8080}, /* largest f32 subnormal rounds up to -2^-126 */
        {0x3f808000u, 0x3f80, 0x3f81}, /* 1 + 2^-8: tie */
        {0x3f818000u, 0x3f82, 0x3f82}, /* tie, odd below */
        {0x7f7f7fffu, 0x7f7f, 0x7f7f}, /* below the last tie: the largest bf16 */
        {0x7f7f8000u, 0x7f80, 0x7f80}, /* the last tie rounds to inf both ways */
        {0x7f7fffffu, 0x7f80, 0x7f80}, /* FLT_MAX -> inf */
        {0xff7fffffu, 0xff80, 0xff80},
    };
    size_t i;
    int k;
    (void)state;
    for (k = 0; k < g_nisas; k++) {
        nsa_convert_set_isa(g_isas[k]);
        for (i = 0; i < sizeof f16 / sizeof f16[0]; i++) {
            float x = float_of(f16[i].in);
            uint16_t r[2];
            nsa_store_f32(&x, &r[0], NSA_DTYPE_F16, 1, 1, NSA_ROUND_NEAREST_EVEN);
            nsa_store_f32(&x, &r[1], NSA_DTYPE_F16, 1, 1, NSA_ROUND_NEAREST_AWAY);
            if (r[0] != f16[i].even || r[1] != f16[i].away ||
                nsa_f32_to_f16(x, NSA_ROUND_NEAREST_EVEN) != f16[i].even ||
                nsa_f32_to_f16(x, NSA_ROUND_NEAREST_AWAY) != f16[i].away)
                fail_msg("isa %d: f16(0x%08x) = 0x%04x / 0x%04x, want 0x%04x / 0x%04x", g_isas[k],
                         f16[i].in, r[0], r[1], f16[i].even, f16[i].away);
            check_narrow(x, r[0], NSA_DTYPE_F16, NSA_ROUND_NEAREST_EVEN, "edge");
            check_narrow(x, r[1], NSA_DTYPE_F16, NSA_ROUND_NEAREST_AWAY, "edge");
        }
        for (i = 0; i < sizeof bf16 / sizeof bf16[0]; i++) {
            float x = float_of(bf16[i].in);
            uint16_t r[2];
            nsa_store_f32(&x, &r[0], NSA_DTYPE_BF16, 1, 1, NSA_ROUND_NEAREST_EVEN);
            nsa_store_f32(&x, &r[1], NSA_DTYPE_BF16, 1, 1, NSA_ROUND_NEAREST_AWAY);
            if (r[0] != bf16[i].even || r[1] != bf16[i].away ||
                nsa_f32_to_bf16(x, NSA_ROUND_NEAREST_EVEN) != bf16[i].even ||
                nsa_f32_to_bf16(x, NSA_ROUND_NEAREST_AWAY) != bf16[i].away)
                fail_msg("isa %d: bf16(0x%08x) = 0x%04x / 0x%04x, want 0x%04x / 0x%04x", g_isas[k],
                         bf16[i].in, r[0], r[1], bf16[i].even, bf16[i].away);
            check_narrow(x, r[0], NSA_DTYPE_BF16, NSA_ROUND_NEAREST_EVEN, "edge");
            check_narrow(x, r[1], NSA_DTYPE_BF16, NSA_ROUND_NEAREST_AWAY, "edge");
        }
    }
    nsa_convert_set_isa(NSA_CVT_AVX512);
    /* round-trips through nsa_round_to_dtype */
    assert_true(nsa_round_to_dtype(65520.0f, NSA_DTYPE_F16, NSA_ROUND_NEAREST_EVEN) == INFINITY);
    assert_true(nsa_round_to_dtype(1.00048828125f, NSA_DTYPE_F16, NSA_ROUND_NEAREST_AWAY) ==
                1.0009765625f);
    assert_true(nsa_round_to_dtype(1.00390625f, NSA_DTYPE_BF16, NSA_ROUND_NEAREST_EVEN) == 1.0f);
    assert_true(nsa_round_to_dtype(0.1f, NSA_DTYPE_F32, NSA_ROUND_NEAREST_AWAY) == 0.1f);
}

/* ---- int8 ---------------------------------------------------------------------------- */

/* sat_int8(round_half_even(x)), NaN -> 0, from the definition. */
static int ref_quant(double x)
{
    double n, frac;
    if (x != x)
        return 0;
    n = floor(x);
    frac = x - n;
    if (frac > 0.5 || (frac == 0.5 && fmod(n, 2.0) != 0.0))
        n += 1.0;
    return n > 127.0 ? 127 : n < -128.0 ? -128 : (int)n;
}

static void int8_quant(void **state)
{
    static const float xs[] = {0.0f,    -0.0f,   0.49999997f, 0.5f,    1.5f,   2.5f,   -2.5f,
                               -3.5f,   126.5f,  127.0f,      127.49f, 127.5f, 128.0f, 1e30f,
                               -127.5f, -128.0f, -128.5f,     -129.0f, -1e30f, 3.25f,  -0.75f};
    const size_t n = sizeof xs / sizeof xs[0];
    float v[32];
    int8_t got[64];
    float scale[32], offset[32];
    size_t i;
    (void)state;
    memcpy(v, xs, sizeof xs);
    v[n] = NAN;
    v[n + 1] = INFINITY;
    v[n + 2] = -INFINITY;
    for (i = 0; i < n + 3; i++) {
        scale[i] = i % 2 ? 2.0f : 0.5f;
        offset[i] = i % 3 ? 0.0f : 0.5f;
    }
    /* nsa_store_f32 to i8 */
    nsa_store_f32(v, got, NSA_DTYPE_I8, 1, (int64_t)(n + 3), NSA_ROUND_NEAREST_AWAY);
    for (i = 0; i < n + 3; i++)
        if (got[i] != ref_quant(v[i]))
            fail_msg("i8(%g) = %d, want %d", (double)v[i], got[i], ref_quant(v[i]));
    /* per-channel scale and offset, output stride 2 */
    memset(got, 0x55, sizeof got);
    nsa_store_i8_quant(v, got, 2, scale, 1, offset, 1, (int64_t)(n + 3));
    for (i = 0; i < n + 3; i++) {
        /* the op is defined on the f32 value x * scale + offset: form it the same way */
        float y = v[i] * scale[i];
        int want;
        y = y + offset[i];
        want = ref_quant(y);
        if (got[2 * i] != want || got[2 * i + 1] != 0x55)
            fail_msg("quant(%g * %g + %g) = %d, want %d", (double)v[i], (double)scale[i],
                     (double)offset[i], got[2 * i], want);
    }
    /* per-tensor scale, no offset */
    nsa_store_i8_quant(v, got, 1, scale, 0, NULL, 0, (int64_t)(n + 3));
    for (i = 0; i < n + 3; i++)
        assert_int_equal(got[i], ref_quant((double)v[i] * scale[0]));
}

static void int8_dequant(void **state)
{
    int8_t q[300];
    float scale[300], offset[300], got[300];
    test_rng rng;
    int k, i, mode;
    (void)state;
    test_rng_seed(&rng, 5);
    for (i = 0; i < 300; i++) {
        q[i] = (int8_t)(i * 7 - 128 + (i / 37)); /* wraps: every value appears */
        scale[i] = test_rng_uniform(&rng, -2.0f, 2.0f);
        offset[i] = (float)test_rng_int(&rng, -8, 8) * 0.25f; /* q + offset exact in f32 */
    }
    for (k = 0; k < g_nisas; k++) {
        nsa_convert_set_isa(g_isas[k]);
        for (mode = 0; mode < 6; mode++) {
            int64_t ss = mode % 2, os = mode / 2 == 1 ? 0 : 1;
            const float *off = mode / 2 == 2 ? NULL : offset;
            int n = 283;
            nsa_load_i8_dequant(q, 1, scale, ss, off, os, got, n);
            for (i = 0; i < n; i++) {
                /* one rounding of an exact product: the same in double then f32 */
                float want = (float)(((double)q[i] + (off ? off[i * os] : 0.0)) * scale[i * ss]);
                if (bits_of(got[i]) != bits_of(want))
                    fail_msg("isa %d mode %d: dequant[%d] = %.9g, want %.9g", g_isas[k], mode, i,
                             (double)got[i], (double)want);
            }
        }
    }
    nsa_convert_set_isa(NSA_CVT_AVX512);
    /* i8 and u8 plain loads */
    nsa_load_f32(q, NSA_DTYPE_I8, 1, got, 256);
    for (i = 0; i < 256; i++)
        assert_true(got[i] == (float)q[i]);
    nsa_load_f32(q, NSA_DTYPE_U8, 1, got, 256);
    for (i = 0; i < 256; i++)
        assert_true(got[i] == (float)(uint8_t)q[i]);
}

/* ---- vector paths == portable path on odd lengths and strides ----------------------------- */

/* f32 values that exercise every branch: random bits, ties of both types, small integers. */
static void fill_mixed(float *v, size_t n, test_rng *rng)
{
    size_t i;
    for (i = 0; i < n; i++) {
        uint32_t r = (uint32_t)test_rng_u64(rng);
        switch (i % 5) {
        case 0:
            v[i] = float_of(r);
            break;
        case 1:
            v[i] = float_of((r & 0xffff0000u) | 0x8000u); /* bf16 tie */
            break;
        case 2:
            v[i] = float_of((r & 0xbfffe000u) | 0x00001000u); /* f16-range tie */
            break;
        case 3:
            v[i] = test_rng_uniform(rng, -300.0f, 300.0f);
            break;
        default:
            v[i] = (float)test_rng_int(rng, -200, 200) * 0.5f;
            break;
        }
    }
}

static void vector_matches_portable(void **state)
{
    static const int64_t lens[] = {0, 1, 7, 8, 15, 16, 17, 31, 33, 255, 1001, 4099};
    static const int64_t strides[] = {1, 2, 3};
    static const nsa_dtype narrow[] = {NSA_DTYPE_F16, NSA_DTYPE_BF16, NSA_DTYPE_I8};
    static const nsa_dtype wide[] = {NSA_DTYPE_F16, NSA_DTYPE_BF16, NSA_DTYPE_I8, NSA_DTYPE_U8,
                                     NSA_DTYPE_F32};
    const size_t cap = 4099 * 3 + 64;
    float *v = malloc(cap * sizeof *v), *ref = malloc(cap * sizeof *ref);
    float *got = malloc(cap * sizeof *got), *param = malloc(cap * sizeof *param);
    unsigned char *raw = malloc(cap * 4), *ref_raw = malloc(cap * 4), *got_raw = malloc(cap * 4);
    test_rng rng;
    size_t li, si, di;
    int k, m;
    (void)state;
    assert_true(v && ref && got && param && raw && ref_raw && got_raw);
    test_rng_seed(&rng, 99);
    fill_mixed(v, cap, &rng);
    for (li = 0; li < cap; li++) /* finite: two NaN operands would leave the payload open */
        param[li] = test_rng_uniform(&rng, -3.0f, 3.0f);
    for (li = 0; li < cap * 4; li++)
        raw[li] = (unsigned char)test_rng_u64(&rng);
    for (li = 0; li < sizeof lens / sizeof lens[0]; li++) {
        int64_t n = lens[li];
        for (si = 0; si < sizeof strides / sizeof strides[0]; si++) {
            int64_t s = strides[si];
            size_t bytes = (size_t)(n * s + 8) * 4;
            for (di = 0; di < sizeof narrow / sizeof narrow[0]; di++)
                for (m = 0; m < 2; m++) {
                    nsa_rounding mode = m ? NSA_ROUND_NEAREST_AWAY : NSA_ROUND_NEAREST_EVEN;
                    nsa_convert_set_isa(NSA_CVT_PORTABLE);
                    memset(ref_raw, 0xcd, bytes);
                    nsa_store_f32(v, ref_raw + 2, narrow[di], s, n, mode); /* odd offset */
                    for (k = 1; k < g_nisas; k++) {
                        nsa_convert_set_isa(g_isas[k]);
                        memset(got_raw, 0xcd, bytes);
                        nsa_store_f32(v, got_raw + 2, narrow[di], s, n, mode);
                        if (memcmp(ref_raw, got_raw, bytes) != 0)
                            fail_msg("store %s n=%lld stride=%lld mode=%d: isa %d differs from "
                                     "the portable path",
                                     nsa_dtype_name(narrow[di]), (long long)n, (long long)s, m,
                                     g_isas[k]);
                    }
                }
            for (di = 0; di < sizeof wide / sizeof wide[0]; di++) {
                nsa_convert_set_isa(NSA_CVT_PORTABLE);
                ref[n] = got[n] = 42.0f; /* sentinel after the row */
                nsa_load_f32(raw + 4, wide[di], s, ref, n);
                for (k = 1; k < g_nisas; k++) {
                    nsa_convert_set_isa(g_isas[k]);
                    got[n] = 42.0f;
                    nsa_load_f32(raw + 4, wide[di], s, got, n);
                    if (memcmp(ref, got, (size_t)(n + 1) * sizeof(float)) != 0)
                        fail_msg("load %s n=%lld stride=%lld: isa %d differs from the portable "
                                 "path",
                                 nsa_dtype_name(wide[di]), (long long)n, (long long)s, g_isas[k]);
                }
            }
            nsa_convert_set_isa(NSA_CVT_PORTABLE);
            nsa_load_i8_dequant((const int8_t *)raw + 1, s, param + 7, s % 2, param + 3, s / 2, ref,
                                n);
            for (k = 1; k < g_nisas; k++) {
                nsa_convert_set_isa(g_isas[k]);
                nsa_load_i8_dequant((const int8_t *)raw + 1, s, param + 7, s % 2, param + 3, s / 2,
                                    got, n);
                if (memcmp(ref, got, (size_t)n * sizeof(float)) != 0)
                    fail_msg("dequant n=%lld stride=%lld: isa %d differs", (long long)n,
                             (long long)s, g_isas[k]);
            }
        }
    }
    nsa_convert_set_isa(NSA_CVT_AVX512);
    free(v);
    free(ref);
    free(got);
    free(param);
    free(raw);
    free(ref_raw);
    free(got_raw);
}

/* nsa_convert through every dtype pair it accepts matches the scalar helpers. */
static void convert_pairs(void **state)
{
    float v[300], back[300];
    uint16_t h[600];
    int8_t q[300];
    test_rng rng;
    int i;
    (void)state;
    test_rng_seed(&rng, 3);
    fill_mixed(v, 300, &rng);
    assert_int_equal(
        nsa_convert(v, NSA_DTYPE_F32, 1, h, NSA_DTYPE_F16, 2, 300, NSA_ROUND_NEAREST_AWAY),
        NSA_SUCCESS);
    for (i = 0; i < 300; i++)
        assert_int_equal(h[2 * i], nsa_f32_to_f16(v[i], NSA_ROUND_NEAREST_AWAY));
    /* f16 -> bf16 goes through f32 exactly */
    assert_int_equal(
        nsa_convert(h, NSA_DTYPE_F16, 2, h + 1, NSA_DTYPE_BF16, 2, 300, NSA_ROUND_NEAREST_EVEN),
        NSA_SUCCESS);
    for (i = 0; i < 300; i++)
        assert_int_equal(h[2 * i + 1],
                         nsa_f32_to_bf16(nsa_f16_to_f32(h[2 * i]), NSA_ROUND_NEAREST_EVEN));
    assert_int_equal(
        nsa_convert(v, NSA_DTYPE_F32, 1, q, NSA_DTYPE_I8, 1, 300, NSA_ROUND_NEAREST_EVEN),
        NSA_SUCCESS);
    for (i = 0; i < 300; i++)
        assert_int_equal(q[i], ref_quant(v[i]));
    /* src_stride 0 broadcasts */
    assert_int_equal(
        nsa_convert(v, NSA_DTYPE_F32, 0, back, NSA_DTYPE_F32, 1, 300, NSA_ROUND_NEAREST_EVEN),
        NSA_SUCCESS);
    for (i = 0; i < 300; i++)
        assert_int_equal(bits_of(back[i]), bits_of(v[0]));
    assert_string_equal(nsa_last_error(), "");
}

static void convert_errors(void **state)
{
    float f[4] = {1, 2, 3, 4};
    uint16_t h[4];
    const nsa_rounding rne = NSA_ROUND_NEAREST_EVEN;
    (void)state;
    test_expect_status(nsa_convert(f, NSA_DTYPE_F32, 1, h, NSA_DTYPE_F16, 1, -1, rne),
                       NSA_ERR_INVALID_ARGUMENT, "n must be >= 0, got -1");
    test_expect_status(nsa_convert(NULL, NSA_DTYPE_F32, 1, h, NSA_DTYPE_F16, 1, 4, rne),
                       NSA_ERR_NULL_POINTER, "src and dst must not be NULL");
    test_expect_status(nsa_convert(f, NSA_DTYPE_F32, 1, NULL, NSA_DTYPE_F16, 1, 4, rne),
                       NSA_ERR_NULL_POINTER, "src and dst must not be NULL");
    test_expect_status(nsa_convert(f, NSA_DTYPE_I32, 1, h, NSA_DTYPE_F16, 1, 4, rne),
                       NSA_ERR_INVALID_ARGUMENT,
                       "src_dtype must be one of {f32, f16, bf16, i8, u8}, got i32");
    test_expect_status(nsa_convert(f, (nsa_dtype)99, 1, h, NSA_DTYPE_F16, 1, 4, rne),
                       NSA_ERR_INVALID_ARGUMENT,
                       "src_dtype must be one of {f32, f16, bf16, i8, u8}, got invalid");
    test_expect_status(nsa_convert(f, NSA_DTYPE_F32, 1, h, NSA_DTYPE_U8, 1, 4, rne),
                       NSA_ERR_INVALID_ARGUMENT,
                       "dst_dtype must be one of {f32, f16, bf16, i8}, got u8");
    test_expect_status(nsa_convert(f, NSA_DTYPE_F32, 1, h, (nsa_dtype)-3, 1, 4, rne),
                       NSA_ERR_INVALID_ARGUMENT,
                       "dst_dtype must be one of {f32, f16, bf16, i8}, got invalid");
    test_expect_status(nsa_convert(f, NSA_DTYPE_F32, -1, h, NSA_DTYPE_F16, 1, 4, rne),
                       NSA_ERR_INVALID_ARGUMENT,
                       "src_stride >= 0 and dst_stride >= 1, got -1 and 1");
    test_expect_status(nsa_convert(f, NSA_DTYPE_F32, 1, h, NSA_DTYPE_F16, 0, 4, rne),
                       NSA_ERR_INVALID_ARGUMENT,
                       "src_stride >= 0 and dst_stride >= 1, got 1 and 0");
    test_expect_status(nsa_convert(f, NSA_DTYPE_F32, 1, h, NSA_DTYPE_F16, 1, 4, (nsa_rounding)7),
                       NSA_ERR_INVALID_ARGUMENT, "rounding must be a nsa_rounding value, got 7");
    test_expect_status(nsa_convert(f, NSA_DTYPE_F32, INT64_MAX / 8, h, NSA_DTYPE_F16, 1, 4, rne),
                       NSA_ERR_INVALID_ARGUMENT,
                       "n (4) * src_stride (1152921504606846975) elements of f32 overflow int64");
    test_expect_status(nsa_convert(f, NSA_DTYPE_F32, 1, h, NSA_DTYPE_BF16, INT64_MAX / 4, 4, rne),
                       NSA_ERR_INVALID_ARGUMENT,
                       "n (4) * dst_stride (2305843009213693951) elements of bf16 overflow int64");
    /* in place: f32 -> f32 over the same buffer */
    assert_int_equal(nsa_convert(f, NSA_DTYPE_F32, 1, f, NSA_DTYPE_F32, 1, 4, rne), NSA_SUCCESS);
    assert_true(f[3] == 4.0f);
    /* n == 0 is a no-op even with NULL buffers; success clears the message */
    assert_int_equal(nsa_convert(NULL, NSA_DTYPE_F32, 1, NULL, NSA_DTYPE_F16, 1, 0, rne),
                     NSA_SUCCESS);
    assert_string_equal(nsa_last_error(), "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(widen_all_patterns),
        cmocka_unit_test(narrow_around_every_value),
        cmocka_unit_test(narrow_random_patterns),
        cmocka_unit_test(narrow_edge_cases),
        cmocka_unit_test(int8_quant),
        cmocka_unit_test(int8_dequant),
        cmocka_unit_test(vector_matches_portable),
        cmocka_unit_test(convert_pairs),
        cmocka_unit_test(convert_errors),
    };
    return cmocka_run_group_tests(tests, setup_isas, restore_isa);
}
