// SPDX-License-Identifier: Apache-2.0
// Consumer test (C++): the public headers compile as C++ and link with C linkage.
#include <cstdio>
#include <cstring>
#include <vector>

#include <nsa/nsa.h>

static int fail(const char *what)
{
    std::fprintf(stderr, "consumer.cpp: check failed: %s (last error: %s)\n", what,
                 nsa_last_error());
    return 1;
}

int main()
{
    if (nsa_version_number() != NSA_VERSION_NUMBER)
        return fail("nsa_version_number() == NSA_VERSION_NUMBER");

    nsa_context_config config = NSA_CONTEXT_CONFIG_INIT;
    config.num_threads = 1;
    nsa_context *ctx = NULL;
    if (nsa_context_create(&config, &ctx) != NSA_SUCCESS)
        return fail("nsa_context_create");
    nsa_context_destroy(ctx);

    // bf16 keeps the top 16 bits of an f32: 1.5 is exact, 1 + 2^-8 is a tie rounded to even.
    std::vector<float> src;
    src.push_back(1.5f);
    src.push_back(1.0f + 1.0f / 256.0f);
    std::vector<uint16_t> bf16(src.size());
    if (nsa_convert(&src[0], NSA_DTYPE_F32, 1, &bf16[0], NSA_DTYPE_BF16, 1,
                    static_cast<int64_t>(src.size()), NSA_ROUND_NEAREST_EVEN) != NSA_SUCCESS)
        return fail("nsa_convert f32 -> bf16");
    if (bf16[0] != 0x3FC0u || bf16[1] != 0x3F80u)
        return fail("bf16 bit patterns");
    if (nsa_bf16_to_f32(bf16[0]) != 1.5f)
        return fail("nsa_bf16_to_f32");

    if (nsa_convert(NULL, NSA_DTYPE_F32, 1, &bf16[0], NSA_DTYPE_BF16, 1, 1,
                    NSA_ROUND_NEAREST_EVEN) != NSA_ERR_NULL_POINTER)
        return fail("NULL src is NSA_ERR_NULL_POINTER");
    if (std::strcmp(nsa_status_string(NSA_ERR_NULL_POINTER), "NSA_ERR_NULL_POINTER") != 0)
        return fail("nsa_status_string");

    std::printf("C++ consumer OK: %s\n", nsa_build_info());
    return 0;
}
