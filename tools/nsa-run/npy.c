/* SPDX-License-Identifier: Apache-2.0 */
/* .npy reader and writer (see npy.h). The header is a Python dict literal; it is parsed by a
 * small recursive-descent parser that accepts what numpy writes (any spacing, trailing
 * commas, 'L' suffixes of old files) and rejects everything else with a one-line reason. */
#if !defined(_POSIX_C_SOURCE) && !defined(_WIN32)
#define _POSIX_C_SOURCE 200809L /* fileno, fstat */
#endif

#include "npy.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const unsigned char npy_magic[6] = {0x93, 'N', 'U', 'M', 'P', 'Y'};

#if defined(__GNUC__) || defined(__clang__)
__attribute__((format(printf, 2, 3)))
#endif
static int npy_fail(char *err, const char *fmt, ...)
{
    va_list ap;
    if (err) {
        va_start(ap, fmt);
        vsnprintf(err, NPY_ERR_LEN, fmt, ap);
        va_end(ap);
    }
    return -1;
}

size_t npy_type_size(npy_type type)
{
    switch (type) {
    case NPY_F4:
    case NPY_I4:
        return 4;
    case NPY_F2:
        return 2;
    case NPY_F8:
    case NPY_I8:
        return 8;
    case NPY_I1:
    case NPY_U1:
    case NPY_B1:
        return 1;
    }
    return 0;
}

const char *npy_type_descr(npy_type type)
{
    switch (type) {
    case NPY_F4:
        return "<f4";
    case NPY_F2:
        return "<f2";
    case NPY_F8:
        return "<f8";
    case NPY_I1:
        return "|i1";
    case NPY_U1:
        return "|u1";
    case NPY_B1:
        return "|b1";
    case NPY_I4:
        return "<i4";
    case NPY_I8:
        return "<i8";
    }
    return "?";
}

static int host_is_little_endian(void)
{
    const uint16_t one = 1;
    unsigned char first;
    memcpy(&first, &one, 1);
    return first == 1;
}

static void swap_bytes(void *data, size_t count, size_t esize)
{
    unsigned char *p = (unsigned char *)data;
    size_t i, j;
    for (i = 0; i < count; ++i, p += esize)
        for (j = 0; j < esize / 2; ++j) {
            unsigned char t = p[j];
            p[j] = p[esize - 1 - j];
            p[esize - 1 - j] = t;
        }
}

/* ---- header dict parser -------------------------------------------------------------------- */

typedef struct npy_cursor {
    const char *p, *end;
} npy_cursor;

static void skip_space(npy_cursor *c)
{
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
        c->p++;
}

static int peek(npy_cursor *c)
{
    skip_space(c);
    return c->p < c->end ? (unsigned char)*c->p : -1;
}

static int accept(npy_cursor *c, char ch)
{
    if (peek(c) != (unsigned char)ch)
        return 0;
    c->p++;
    return 1;
}

/* Copy text for a message, replacing what is not printable ASCII. */
static const char *printable(char *dst, size_t cap, const char *src, size_t len)
{
    size_t i, n = len < cap - 1 ? len : cap - 1;
    for (i = 0; i < n; ++i)
        dst[i] = (src[i] >= 0x20 && src[i] < 0x7f) ? src[i] : '?';
    dst[n] = '\0';
    return dst;
}

/* A quoted string without escapes; *len is its full length (out holds at most cap-1 bytes). */
static int parse_string(npy_cursor *c, char *out, size_t cap, size_t *len, const char *what,
                        char *err)
{
    int q = peek(c);
    const char *start;
    if (q != '\'' && q != '"')
        return npy_fail(err, "malformed header: %s must be a quoted string", what);
    start = ++c->p;
    while (c->p < c->end && *c->p != (char)q) {
        if (*c->p == '\\')
            return npy_fail(err, "malformed header: escapes in %s are not supported", what);
        c->p++;
    }
    if (c->p == c->end)
        return npy_fail(err, "malformed header: unterminated string in %s", what);
    *len = (size_t)(c->p - start);
    printable(out, cap, start, *len);
    c->p++;
    return 0;
}

static int parse_bool(npy_cursor *c, int *value, char *err)
{
    size_t left;
    skip_space(c);
    left = (size_t)(c->end - c->p);
    if (left >= 4 && memcmp(c->p, "True", 4) == 0) {
        c->p += 4;
        *value = 1;
        return 0;
    }
    if (left >= 5 && memcmp(c->p, "False", 5) == 0) {
        c->p += 5;
        *value = 0;
        return 0;
    }
    return npy_fail(err, "malformed header: 'fortran_order' must be True or False");
}

static int parse_shape(npy_cursor *c, npy_header *h, char *err)
{
    h->ndim = 0;
    if (!accept(c, '('))
        return npy_fail(err, "malformed header: 'shape' must be a tuple");
    for (;;) {
        int64_t v = 0;
        int ch;
        if (accept(c, ')'))
            break;
        ch = peek(c);
        if (ch == '-')
            return npy_fail(err, "negative dimension in 'shape'");
        if (ch < '0' || ch > '9')
            return npy_fail(err, "malformed header: 'shape' must hold non-negative integers");
        while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
            int d = *c->p - '0';
            if (v > (INT64_MAX - d) / 10)
                return npy_fail(err, "a dimension in 'shape' exceeds 2^63-1");
            v = v * 10 + d;
            c->p++;
        }
        if (c->p < c->end && *c->p == 'L') /* Python 2 long literals in old files */
            c->p++;
        if (h->ndim == NPY_MAX_DIMS)
            return npy_fail(err, "'shape' has more than %d dimensions", NPY_MAX_DIMS);
        h->shape[h->ndim++] = v;
        if (accept(c, ','))
            continue;
        if (accept(c, ')'))
            break;
        return npy_fail(err, "malformed header: expected ',' or ')' in 'shape'");
    }
    return 0;
}

static int decode_descr(const char *d, size_t len, npy_type *type, char *err)
{
    static const struct {
        const char *code;
        npy_type type;
    } codes[] = {{"f4", NPY_F4}, {"f2", NPY_F2}, {"f8", NPY_F8}, {"i1", NPY_I1},
                 {"u1", NPY_U1}, {"b1", NPY_B1}, {"i4", NPY_I4}, {"i8", NPY_I8}};
    size_t i;
    if (len == 3)
        for (i = 0; i < sizeof codes / sizeof codes[0]; ++i) {
            if (memcmp(d + 1, codes[i].code, 2) != 0)
                continue;
            *type = codes[i].type;
            if (npy_type_size(*type) == 1 || d[0] == '<')
                return 0; /* byte order is irrelevant for single bytes */
            if (d[0] == '>')
                return npy_fail(err, "big-endian dtype '%s' is not supported (little-endian only)",
                                d);
            break;
        }
    return npy_fail(err, "unsupported dtype '%s' (accepted: <f4 <f2 <f8 |i1 |u1 |b1 <i4 <i8)", d);
}

static int parse_dict(const char *s, size_t n, npy_header *h, char *err)
{
    npy_cursor c;
    char descr[24], key[24];
    size_t descr_len = 0, key_len;
    int have_descr = 0, have_fortran = 0, have_shape = 0, fortran = 0;
    c.p = s;
    c.end = s + n;
    if (!accept(&c, '{'))
        return npy_fail(err, "malformed header: not a Python dict literal");
    while (!accept(&c, '}')) {
        if (parse_string(&c, key, sizeof key, &key_len, "a key", err))
            return -1;
        if (!accept(&c, ':'))
            return npy_fail(err, "malformed header: expected ':' after '%s'", key);
        if (key_len == 5 && memcmp(key, "descr", 5) == 0 && !have_descr) {
            int ch = peek(&c);
            if (ch != '\'' && ch != '"')
                return npy_fail(err, "unsupported dtype: 'descr' is not a simple type string "
                                     "(structured arrays are not supported)");
            if (parse_string(&c, descr, sizeof descr, &descr_len, "'descr'", err))
                return -1;
            have_descr = 1;
        } else if (key_len == 13 && memcmp(key, "fortran_order", 13) == 0 && !have_fortran) {
            if (parse_bool(&c, &fortran, err))
                return -1;
            have_fortran = 1;
        } else if (key_len == 5 && memcmp(key, "shape", 5) == 0 && !have_shape) {
            if (parse_shape(&c, h, err))
                return -1;
            have_shape = 1;
        } else {
            return npy_fail(err, "malformed header: unexpected or repeated key '%s'", key);
        }
        if (accept(&c, ','))
            continue;
        if (accept(&c, '}'))
            break;
        return npy_fail(err, "malformed header: expected ',' or '}' after '%s'", key);
    }
    skip_space(&c);
    if (c.p != c.end)
        return npy_fail(err, "malformed header: unexpected bytes after the dict");
    if (!have_descr || !have_fortran || !have_shape)
        return npy_fail(err, "malformed header: missing key '%s'",
                        !have_descr ? "descr" : !have_fortran ? "fortran_order" : "shape");
    if (fortran)
        return npy_fail(err, "Fortran-order arrays are not supported (save in C order)");
    return decode_descr(descr, descr_len, &h->type, err);
}

/* ---- reading ------------------------------------------------------------------------------- */

/* numel of a shape; -1 for a bad rank, a negative extent, or a product over INT64_MAX (zero
 * extents do not hide an overflowing product of the others: (0, 2^62, 2^62) fails). */
static int shape_numel(int ndim, const int64_t *shape, int64_t *numel)
{
    int i;
    uint64_t nonzero = 1;
    *numel = 1;
    if (ndim < 0 || ndim > NPY_MAX_DIMS || (ndim > 0 && !shape))
        return -1;
    for (i = 0; i < ndim; ++i) {
        if (shape[i] < 0)
            return -1;
        if (shape[i] == 0) {
            *numel = 0;
            continue;
        }
        if (nonzero > (uint64_t)INT64_MAX / (uint64_t)shape[i])
            return -1;
        nonzero *= (uint64_t)shape[i];
        if (*numel)
            *numel = (int64_t)nonzero;
    }
    return 0;
}


int npy_parse_header(const void *buf, size_t len, uint64_t file_size, npy_header *h,
                     size_t *need, char *err)
{
    const unsigned char *b = (const unsigned char *)buf;
    size_t lenfield, prelen;
    uint64_t hlen, remaining, esize;
    size_t first = file_size < 12 ? (size_t)file_size : 12;
    memset(h, 0, sizeof *h);
    if (len < first) {
        *need = first;
        return 1;
    }
    if (file_size < 6 || memcmp(b, npy_magic, 6) != 0)
        return npy_fail(err, "not a .npy file (bad magic)");
    if (file_size < 8)
        return npy_fail(err, "truncated: the file ends inside the version");
    if ((b[6] != 1 && b[6] != 2 && b[6] != 3) || b[7] != 0)
        return npy_fail(err, "unsupported .npy format version %u.%u", (unsigned)b[6],
                        (unsigned)b[7]);
    lenfield = b[6] == 1 ? 2 : 4;
    prelen = 8 + lenfield;
    if (file_size < prelen)
        return npy_fail(err, "truncated: the file ends inside the header length");
    hlen = (uint64_t)b[8] | (uint64_t)b[9] << 8;
    if (lenfield == 4)
        hlen |= (uint64_t)b[10] << 16 | (uint64_t)b[11] << 24;
    if (hlen > NPY_MAX_HEADER_LEN)
        return npy_fail(err, "header length %llu is absurd (limit %u)", (unsigned long long)hlen,
                        NPY_MAX_HEADER_LEN);
    if (prelen + hlen > file_size)
        return npy_fail(err, "truncated: header length %llu runs past the end of the file "
                             "(%llu bytes)",
                        (unsigned long long)hlen, (unsigned long long)file_size);
    h->data_offset = prelen + (size_t)hlen;
    if (len < h->data_offset) {
        *need = h->data_offset;
        return 1;
    }
    if (parse_dict((const char *)b + prelen, (size_t)hlen, h, err))
        return -1;
    if (shape_numel(h->ndim, h->shape, &h->numel) != 0)
        return npy_fail(err, "shape product overflows int64");
    esize = npy_type_size(h->type);
    if ((uint64_t)h->numel > UINT64_MAX / esize || (uint64_t)h->numel * esize > SIZE_MAX)
        return npy_fail(err, "%lld elements of %s do not fit in memory", (long long)h->numel,
                        npy_type_descr(h->type));
    h->nbytes = (uint64_t)h->numel * esize;
    remaining = file_size - h->data_offset;
    if (h->nbytes > remaining)
        return npy_fail(err, "truncated: the header promises %llu data bytes, the file holds %llu",
                        (unsigned long long)h->nbytes, (unsigned long long)remaining);
    if (h->nbytes < remaining)
        return npy_fail(err, "%llu unexpected bytes after the %llu data bytes the header promises",
                        (unsigned long long)(remaining - h->nbytes),
                        (unsigned long long)h->nbytes);
    return 0;
}

/* Host byte order, and bools as 0 / 1. */
static void finish_data(npy_array *a)
{
    size_t esize = npy_type_size(a->h.type), n = (size_t)a->h.numel, i;
    if (esize > 1 && !host_is_little_endian())
        swap_bytes(a->data, n, esize);
    if (a->h.type == NPY_B1) {
        unsigned char *p = (unsigned char *)a->data;
        for (i = 0; i < n; ++i)
            p[i] = p[i] != 0;
    }
}

int npy_decode(const void *buf, size_t len, npy_array *out, char *err)
{
    size_t need = 0;
    memset(out, 0, sizeof *out);
    if (npy_parse_header(buf, len, len, &out->h, &need, err) != 0)
        return -1; /* "need more" cannot happen: the whole file is there */
    out->data = malloc(out->h.nbytes ? (size_t)out->h.nbytes : 1);
    if (!out->data)
        return npy_fail(err, "out of memory for %llu bytes", (unsigned long long)out->h.nbytes);
    memcpy(out->data, (const unsigned char *)buf + out->h.data_offset, (size_t)out->h.nbytes);
    finish_data(out);
    return 0;
}

int npy_load(const char *path, npy_array *out, char *err)
{
    FILE *f;
    struct stat st;
    unsigned char first[12], *head = NULL;
    size_t got, need = 0;
    int rc = -1;
    memset(out, 0, sizeof *out);
    f = fopen(path, "rb");
    if (!f)
        return npy_fail(err, "cannot open: %s", strerror(errno));
    if (fstat(fileno(f), &st) != 0) {
        npy_fail(err, "cannot stat: %s", strerror(errno));
        goto done;
    }
    if (!S_ISREG(st.st_mode)) {
        npy_fail(err, "not a regular file");
        goto done;
    }
    got = fread(first, 1, sizeof first, f);
    rc = npy_parse_header(first, got, (uint64_t)st.st_size, &out->h, &need, err);
    if (rc == 1) { /* the header is longer than the first bytes: read all of it */
        head = (unsigned char *)malloc(need);
        if (!head) {
            rc = npy_fail(err, "out of memory for a %lu-byte header", (unsigned long)need);
            goto done;
        }
        memcpy(head, first, got);
        if (fread(head + got, 1, need - got, f) != need - got) {
            rc = npy_fail(err, "read error in the header (the file changed?)");
            goto done;
        }
        rc = npy_parse_header(head, need, (uint64_t)st.st_size, &out->h, &need, err);
        if (rc == 1)
            rc = npy_fail(err, "inconsistent header");
    }
    if (rc != 0)
        goto done;
    rc = -1;
    out->data = malloc(out->h.nbytes ? (size_t)out->h.nbytes : 1);
    if (!out->data) {
        npy_fail(err, "out of memory for %llu bytes", (unsigned long long)out->h.nbytes);
        goto done;
    }
    if (fseek(f, (long)out->h.data_offset, SEEK_SET) != 0 ||
        fread(out->data, 1, (size_t)out->h.nbytes, f) != (size_t)out->h.nbytes) {
        npy_fail(err, "read error in the data (the file changed?)");
        goto done;
    }
    finish_data(out);
    rc = 0;
done:
    free(head);
    fclose(f);
    if (rc != 0)
        npy_free(out);
    return rc;
}

void npy_free(npy_array *a)
{
    if (!a)
        return;
    free(a->data);
    a->data = NULL;
}

/* ---- writing ------------------------------------------------------------------------------- */

size_t npy_format_header(char *buf, size_t cap, npy_type type, int ndim, const int64_t *shape)
{
    char dict[64 + NPY_MAX_DIMS * 24];
    size_t k, prelen, hlen, total;
    int i;
    int64_t numel;
    if (npy_type_size(type) == 0 || shape_numel(ndim, shape, &numel) != 0)
        return 0;
    k = (size_t)snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': (",
                         npy_type_descr(type));
    for (i = 0; i < ndim; ++i)
        k += (size_t)snprintf(dict + k, sizeof dict - k, "%lld%s", (long long)shape[i],
                              ndim == 1 ? "," : i + 1 < ndim ? ", " : "");
    k += (size_t)snprintf(dict + k, sizeof dict - k, "), }");
    /* the data starts at a multiple of 64; the header ends with '\n' */
    prelen = k + 1 + 10 <= 65535 + 10 ? 10 : 12;
    total = (prelen + k + 1 + 63) / 64 * 64;
    hlen = total - prelen;
    if (total > cap)
        return 0;
    memcpy(buf, npy_magic, 6);
    buf[6] = prelen == 10 ? 1 : 2;
    buf[7] = 0;
    buf[8] = (char)(hlen & 0xff);
    buf[9] = (char)(hlen >> 8 & 0xff);
    if (prelen == 12) {
        buf[10] = (char)(hlen >> 16 & 0xff);
        buf[11] = (char)(hlen >> 24 & 0xff);
    }
    memcpy(buf + prelen, dict, k);
    memset(buf + prelen + k, ' ', hlen - k - 1);
    buf[total - 1] = '\n';
    return total;
}

int npy_save(const char *path, npy_type type, int ndim, const int64_t *shape, const void *data,
             char *err)
{
    char head[256];
    size_t hlen, esize = npy_type_size(type), written = 0, count;
    int64_t numel;
    FILE *f;
    int ok;
    hlen = npy_format_header(head, sizeof head, type, ndim, shape);
    if (hlen == 0 || shape_numel(ndim, shape, &numel) != 0)
        return npy_fail(err, "invalid type or shape for a .npy file");
    if (numel > 0 && !data)
        return npy_fail(err, "no data to write");
    count = (size_t)numel;
    f = fopen(path, "wb");
    if (!f)
        return npy_fail(err, "cannot create: %s", strerror(errno));
    ok = fwrite(head, 1, hlen, f) == hlen;
    if (host_is_little_endian()) {
        ok = ok && fwrite(data, esize, count, f) == count;
    } else {
        unsigned char chunk[4096];
        size_t per = sizeof chunk / esize;
        while (ok && written < count) {
            size_t n = count - written < per ? count - written : per;
            memcpy(chunk, (const unsigned char *)data + written * esize, n * esize);
            swap_bytes(chunk, n, esize);
            ok = fwrite(chunk, esize, n, f) == n;
            written += n;
        }
    }
    if (fclose(f) != 0)
        ok = 0;
    if (!ok) {
        remove(path);
        return npy_fail(err, "write error: %s", strerror(errno));
    }
    return 0;
}
