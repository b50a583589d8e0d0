/* SPDX-License-Identifier: Apache-2.0 */
/* Row conversions between storage dtypes and fp32, used by packing and output stores. */
#ifndef NSA_DTYPE_CONVERT_H
#define NSA_DTYPE_CONVERT_H

#include <stdint.h>

#include "core/internal.h"

/* Widen n elements of dtype `dt` (f32, f16, bf16, i8, u8) read at `stride` (elements) into
 * contiguous fp32. Vectorised when stride == 1 and the CPU allows it. */
NSA_INTERNAL void nsa_load_f32(const void *src, nsa_dtype dt, int64_t stride, float *dst,
                               int64_t n);

/* Narrow n contiguous fp32 values into dtype `dt` (f32, f16, bf16) at `stride`. */
NSA_INTERNAL void nsa_store_f32(const float *src, void *dst, nsa_dtype dt, int64_t stride,
                                int64_t n, nsa_rounding rounding);

/* int8 dequantisation: dst[i] = ((float)src[i*stride] + offset[i*os]) * scale[i*ss].
 * `offset` may be NULL (0). Strides os/ss are 0 for per-tensor parameters. */
NSA_INTERNAL void nsa_load_i8_dequant(const int8_t *src, int64_t stride, const float *scale,
                                      int64_t ss, const float *offset, int64_t os, float *dst,
                                      int64_t n);

/* int8 quantisation: dst[i*stride] = sat_int8(round_half_even(src[i]*scale[i*ss] +
 * offset[i*os])); offset may be NULL; NaN becomes 0. */
NSA_INTERNAL void nsa_store_i8_quant(const float *src, int8_t *dst, int64_t stride,
                                     const float *scale, int64_t ss, const float *offset,
                                     int64_t os, int64_t n);

/* Instruction sets the row conversions can use, in increasing order. */
enum {
    NSA_CVT_PORTABLE = 0, /* plain C, the reference every other path matches bit for bit */
    NSA_CVT_AVX2 = 1,     /* AVX2 + F16C, 8 lanes */
    NSA_CVT_AVX512 = 2    /* AVX-512 F/BW/VL/DQ, 16 lanes with masked tails */
};

/* The instruction set the row conversions use now (the best the CPU has, capped by
 * nsa_convert_set_isa). */
NSA_INTERNAL int nsa_convert_isa(void);

/* Tests only: cap the instruction set (NSA_CVT_PORTABLE forces the reference path) and
 * return the level now in effect. Not thread-safe: call it before running conversions. */
NSA_INTERNAL int nsa_convert_set_isa(int max_isa);

/* Round an fp32 value to the precision of `dt` and back (f32: identity). */
NSA_INTERNAL float nsa_round_to_dtype(float x, nsa_dtype dt, nsa_rounding rounding);

#endif /* NSA_DTYPE_CONVERT_H */
