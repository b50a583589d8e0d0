/* SPDX-License-Identifier: Apache-2.0 */
/*
 * nsa_demo: the program the README's quick start runs. It prints how libnsa was built and
 * checks a small computation through the public API: fp32 -> fp16 / bf16 -> fp32 round
 * trips with both rounding modes. (It will run the NSA pipeline once the operators land.)
 */
#include <math.h>
#include <stdio.h>

#include <nsa/nsa.h>

#define N 8

int main(void)
{
    /* Values chosen to show the rounding: ties, a subnormal f16, overflow to inf. */
    const float x[N] = {1.0f, 0.1f, -3.140625f, 1.0f + 1.0f / 2048.0f, 1.0f + 3.0f / 2048.0f,
                        6.0e-8f, 70000.0f, -0.0f};
    const nsa_dtype narrow[2] = {NSA_DTYPE_F16, NSA_DTYPE_BF16};
    const nsa_rounding modes[2] = {NSA_ROUND_NEAREST_EVEN, NSA_ROUND_NEAREST_AWAY};
    uint16_t bits[N];
    float back[N];
    int t, r, i;

    printf("libnsa %s: %s\n", nsa_version_string(), nsa_build_info());
    if (nsa_version_number() != NSA_VERSION_NUMBER) {
        fprintf(stderr, "nsa_demo: header version %d but library version %u\n",
                NSA_VERSION_NUMBER, nsa_version_number());
        return 1;
    }

    for (t = 0; t < 2; t++) {
        for (r = 0; r < 2; r++) {
            nsa_status st = nsa_convert(x, NSA_DTYPE_F32, 1, bits, narrow[t], 1, N, modes[r]);
            if (st == NSA_SUCCESS)
                st = nsa_convert(bits, narrow[t], 1, back, NSA_DTYPE_F32, 1, N, modes[r]);
            if (st != NSA_SUCCESS) {
                fprintf(stderr, "nsa_demo: nsa_convert: %s: %s\n", nsa_status_string(st),
                        nsa_last_error());
                return 1;
            }
            printf("f32 -> %-4s -> f32, %s:\n", nsa_dtype_name(narrow[t]),
                   r == 0 ? "ties to even" : "ties away");
            for (i = 0; i < N; i++) {
                /* A round trip through a narrower type never moves a finite value by more
                 * than half its ulp (2^-11 relative for f16, 2^-8 for bf16), unless it leaves
                 * the type's range. */
                const float rel = narrow[t] == NSA_DTYPE_F16 ? 1.0f / 2048.0f : 1.0f / 256.0f;
                const int in_range = narrow[t] == NSA_DTYPE_BF16 ||
                                     (fabsf(x[i]) < 65520.0f && fabsf(x[i]) >= 6.1035156e-5f);
                printf("  %14.9g -> 0x%04x -> %14.9g\n", (double)x[i], (unsigned)bits[i],
                       (double)back[i]);
                if (in_range && !(fabsf(back[i] - x[i]) <= rel * fabsf(x[i]))) {
                    fprintf(stderr, "nsa_demo: %g came back as %g\n", (double)x[i],
                            (double)back[i]);
                    return 1;
                }
            }
        }
    }

    /* Bad input is a status plus a message naming the argument, never a crash. */
    if (nsa_convert(x, NSA_DTYPE_F32, 1, bits, NSA_DTYPE_F16, 1, -1, NSA_ROUND_NEAREST_EVEN) !=
        NSA_ERR_INVALID_ARGUMENT) {
        fprintf(stderr, "nsa_demo: n = -1 was accepted\n");
        return 1;
    }
    printf("bad input: %s\n", nsa_last_error());
    printf("nsa_demo: OK\n");
    return 0;
}
