/* SPDX-License-Identifier: Apache-2.0 */
/* NumPy .npy files for nsa-run: reader (format 1.0, 2.0 and 3.0 headers) and writer (1.0),
 * little-endian, C order. Plain C99 without libnsa, so the unit test and the fuzzer compile it
 * on its own. Readers never trust the header: every size is checked against the bytes that
 * are really there before anything is allocated. */
#ifndef NSA_RUN_NPY_H
#define NSA_RUN_NPY_H

#include <stddef.h>
#include <stdint.h>

/* Element types nsa-run accepts (the descr string in brackets). */
typedef enum npy_type {
    NPY_F4 = 1, /* <f4 */
    NPY_F2 = 2, /* <f2 */
    NPY_F8 = 3, /* <f8 */
    NPY_I1 = 4, /* |i1 */
    NPY_U1 = 5, /* |u1 */
    NPY_B1 = 6, /* |b1 (loaded as bytes 0 / 1) */
    NPY_I4 = 7, /* <i4 */
    NPY_I8 = 8  /* <i8 */
} npy_type;

#define NPY_MAX_DIMS 8
/* Headers longer than this are rejected as absurd (numpy itself refuses > 10000 bytes). */
#define NPY_MAX_HEADER_LEN (1u << 20)
/* Size of the error buffers the functions below write their one-line message into. */
#define NPY_ERR_LEN 256

typedef struct npy_header {
    npy_type type;
    int ndim; /* 0 (a scalar) .. NPY_MAX_DIMS */
    int64_t shape[NPY_MAX_DIMS];
    int64_t numel;
    uint64_t nbytes;    /* numel * element size */
    size_t data_offset; /* bytes before the data: magic, version, length field, header */
} npy_header;

typedef struct npy_array {
    npy_header h;
    void *data; /* numel elements in host byte order (malloc'd, at least 1 byte) */
} npy_array;

/* Bytes per element; 0 for an unknown type. */
size_t npy_type_size(npy_type type);
/* "<f4", "|i1", ...; "?" for an unknown type. */
const char *npy_type_descr(npy_type type);

/* Parse magic, version and header of a file of `file_size` bytes whose first `len` bytes are
 * at `buf`. Returns 0 and fills *h (data_offset, sizes checked: exactly h->nbytes bytes of
 * data follow the header), 1 when `len` is too short to hold the whole header (*need is then
 * the number of bytes required; call again with at least that many), or -1 with a message. */
int npy_parse_header(const void *buf, size_t len, uint64_t file_size, npy_header *h,
                     size_t *need, char *err);

/* Decode a whole .npy file held in memory. Returns 0 or -1 with a message. */
int npy_decode(const void *buf, size_t len, npy_array *out, char *err);
/* Read a .npy file. Returns 0 or -1 with a message (which does not repeat the path). */
int npy_load(const char *path, npy_array *out, char *err);
void npy_free(npy_array *a);

/* Write the magic, version and header (padded so the data starts at a multiple of 64) for an
 * array into buf. Returns its length, or 0 if `cap` is too small or the shape is invalid. */
size_t npy_format_header(char *buf, size_t cap, npy_type type, int ndim, const int64_t *shape);
/* Write `data` (numel elements of `type` in host byte order, C order) as a .npy file.
 * Returns 0 or -1 with a message. */
int npy_save(const char *path, npy_type type, int ndim, const int64_t *shape, const void *data,
             char *err);

#endif /* NSA_RUN_NPY_H */
