/* SPDX-License-Identifier: Apache-2.0 */
/* Consumer test (C): compiled against the *installed* libnsa headers and library. */
#include <stdio.h>
#include <string.h>

#include <nsa/nsa.h>

#define CHECK(cond)                                                                        \
    do {                                                                                   \
        if (!(cond)) {                                                                     \
            fprintf(stderr, "consumer.c:%d: check failed: %s (last error: %s)\n", __LINE__, \
                    #cond, nsa_last_error());                                              \
            return 1;                                                                      \
        }                                                                                  \
    } while (0)

int main(void)
{
    /* 1, -2.5 and 65504 (the largest f16) are exact in f16; 1/3 is not. */
    const float src[4] = {1.0f, -2.5f, 65504.0f, 1.0f / 3.0f};
    const uint16_t expect_f16[4] = {0x3C00u, 0xC100u, 0x7BFFu, 0x3555u};
    uint16_t half[4];
    float back[4];
    nsa_context_config config = NSA_CONTEXT_CONFIG_INIT;
    nsa_context *ctx = NULL;
    int i;

    CHECK(nsa_version_number() == NSA_VERSION_NUMBER);
    CHECK(strcmp(nsa_version_string(), NSA_VERSION_STRING) == 0);
    CHECK(strstr(nsa_build_info(), "blas=") != NULL);

    config.num_threads = 2;
    CHECK(nsa_context_create(&config, &ctx) == NSA_SUCCESS);
    CHECK(nsa_context_num_threads(ctx) == 2);
    nsa_context_destroy(ctx);

    CHECK(nsa_convert(src, NSA_DTYPE_F32, 1, half, NSA_DTYPE_F16, 1, 4,
                      NSA_ROUND_NEAREST_EVEN) == NSA_SUCCESS);
    CHECK(nsa_convert(half, NSA_DTYPE_F16, 1, back, NSA_DTYPE_F32, 1, 4,
                      NSA_ROUND_NEAREST_EVEN) == NSA_SUCCESS);
    for (i = 0; i < 4; i++)
        CHECK(half[i] == expect_f16[i]);
    for (i = 0; i < 3; i++)
        CHECK(back[i] == src[i]);

    /* Errors come back as a status and a message naming the argument. */
    CHECK(nsa_convert(src, NSA_DTYPE_F32, 1, half, NSA_DTYPE_F16, 1, -1,
                      NSA_ROUND_NEAREST_EVEN) == NSA_ERR_INVALID_ARGUMENT);
    CHECK(strstr(nsa_last_error(), "n must be") != NULL);

    printf("C consumer OK: libnsa %s (%s)\n", nsa_version_string(), nsa_build_info());
    return 0;
}
