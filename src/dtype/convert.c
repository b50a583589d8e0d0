/* SPDX-License-Identifier: Apache-2.0 */
/* Scalar reference conversions between fp32 and f16 / bf16 / int8, and the row loops the
 * kernel packs with. Exact IEEE semantics; vectorised paths must match them bit for bit. */
#include "dtype/convert.h"

#include <math.h>
#include <string.h>

#include "tensor/tensor.h"

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
    if (e == 31)
        return bits_f32(sign | 0x7f800000u | (m << 13));
    return bits_f32(sign | ((e + 112u) << 23) | (m << 13));
}

float nsa_bf16_to_f32(uint16_t b)
{
    return bits_f32((uint32_t)b << 16);
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
    return (uint16_t)(sign | round_bits(((uint32_t)e << 10) | (mant >> 13), mant & 0x1fffu,
                                        0x1000u, rounding));
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

void nsa_load_f32(const void *src, nsa_dtype dt, int64_t stride, float *dst, int64_t n)
{
    int64_t i;
    switch (dt) {
    case NSA_DTYPE_F32: {
        const float *s = (const float *)src;
        if (stride == 1)
            memcpy(dst, s, (size_t)n * sizeof(float));
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

void nsa_store_f32(const float *src, void *dst, nsa_dtype dt, int64_t stride, int64_t n,
                   nsa_rounding rounding)
{
    int64_t i;
    switch (dt) {
    case NSA_DTYPE_F32: {
        float *d = (float *)dst;
        if (stride == 1)
            memcpy(d, src, (size_t)n * sizeof(float));
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

void nsa_load_i8_dequant(const int8_t *src, int64_t stride, const float *scale, int64_t ss,
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
    for (done = 0; done < n; done += 256) {
        int64_t len = n - done < 256 ? n - done : 256;
        const char *s = (const char *)src + done * src_stride * (int64_t)nsa_dtype_size(src_dtype);
        char *d = (char *)dst + done * dst_stride * (int64_t)nsa_dtype_size(dst_dtype);
        nsa_load_f32(s, src_dtype, src_stride, buf, len);
        nsa_store_f32(buf, d, dst_dtype, dst_stride, len, rounding);
    }
    return NSA_SUCCESS;
}
