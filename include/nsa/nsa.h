/* SPDX-License-Identifier: Apache-2.0 */
/**
 * @file nsa.h
 * @brief The one header a libnsa user includes.
 *
 * libnsa is the reference CPU implementation of the attention operators sparse-attention
 * models need: DeepSeek's Native Sparse Attention as Huawei CANN / MindSpore define it
 * (nsa_compress, nsa_compress_attention, nsa_select_attention), incre_flash_attention for
 * decode, and a flex-attention engine with PyTorch's BlockMask semantics.
 */
#ifndef NSA_H
#define NSA_H

#include "nsa_core.h"
#include "nsa_compress.h"
#include "nsa_select.h"
#include "nsa_ifa.h"
#include "nsa_flex.h"

#endif /* NSA_H */
