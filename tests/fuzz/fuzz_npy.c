/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target for nsa-run's .npy reader. Any input must be accepted or rejected with a
 * one-line message, without reading out of bounds (ASan) or undefined behaviour (UBSan). An
 * accepted file must satisfy the reader's promises: its sizes add up exactly, the two-step
 * header read of npy_load agrees with the one-step decode, and the header the writer makes
 * for the same type and shape reads back to the same array. */
#include "../../tools/nsa-run/npy.c"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int ok)
{
    if (!ok)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[NPY_ERR_LEN] = "", head[512];
    npy_array a, b;
    npy_header h;
    size_t need = 0, hl, i;
    unsigned char *copy;
    int rc = npy_decode(data, size, &a, err), step;
    /* npy_load's way: the first bytes, then as many as the parser asks for */
    step = npy_parse_header(data, size < 12 ? size : 12, size, &h, &need, NULL);
    if (step == 1) {
        check(need > 12 && need <= size);
        step = npy_parse_header(data, need, size, &h, &need, NULL);
    }
    check(step == 0 || step == -1);
    check((step == 0) == (rc == 0));
    if (rc != 0) {
        check(err[0] != '\0' && strchr(err, '\n') == NULL);
        return 0;
    }
    check(h.data_offset == a.h.data_offset && h.numel == a.h.numel && h.type == a.h.type);
    check(a.h.data_offset + a.h.nbytes == size);
    check(a.h.nbytes == (uint64_t)a.h.numel * npy_type_size(a.h.type));
    if (a.h.type == NPY_B1)
        for (i = 0; i < (size_t)a.h.numel; ++i)
            check(((const unsigned char *)a.data)[i] <= 1);
    /* rewrite the header and read the file again */
    hl = npy_format_header(head, sizeof head, a.h.type, a.h.ndim, a.h.shape);
    check(hl > 0);
    copy = (unsigned char *)malloc(hl + (size_t)a.h.nbytes);
    check(copy != NULL);
    memcpy(copy, head, hl);
    memcpy(copy + hl, a.data, (size_t)a.h.nbytes);
    check(npy_decode(copy, hl + (size_t)a.h.nbytes, &b, err) == 0);
    check(b.h.type == a.h.type && b.h.ndim == a.h.ndim && b.h.numel == a.h.numel);
    check(memcmp(b.h.shape, a.h.shape, sizeof a.h.shape) == 0);
    check(memcmp(b.data, a.data, (size_t)a.h.nbytes) == 0);
    npy_free(&b);
    free(copy);
    npy_free(&a);
    return 0;
}
