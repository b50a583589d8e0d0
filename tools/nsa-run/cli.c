/* SPDX-License-Identifier: Apache-2.0 */
/* The nsa-run framework (API in cli.h, contract in spec/cli.md): option parsing, loading
 * inputs with their dtype conversion, writing outputs, running and timing the operator. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>

#include "cli.h"
#include "npy.h"

#define CLI_MAX_THREADS 4096
#define CLI_MAX_REPEAT 1000000

typedef struct cli_option {
    char *name;        /* without the leading dashes */
    const char *value; /* "" for a flag */
    int used;
} cli_option;

typedef struct cli_binding { /* --in NAME=FILE */
    char *name;
    const char *path;
    int used;
} cli_binding;

struct cli_args {
    const char *op;
    nsa_dtype dtype;
    int strict;
    int threads; /* 0 = all cores */
    int64_t repeat;
    const char *out_dir;
    nsa_context *ctx;
    cli_option *opts;
    int num_opts;
    cli_binding *ins;
    int num_ins;
    void **owned; /* everything freed by cli_free */
    size_t num_owned, cap_owned;
};

/* ---- errors and memory --------------------------------------------------------------------- */

static void print_error_line(const cli_args *a, const char *fmt, va_list ap)
{
    char msg[1024];
    size_t i;
    vsnprintf(msg, sizeof msg, fmt, ap);
    for (i = 0; msg[i]; ++i) /* one line whatever the message holds */
        if (msg[i] == '\n' || msg[i] == '\r')
            msg[i] = ' ';
    if (a && a->op)
        fprintf(stderr, "nsa-run: %s: %s\n", a->op, msg);
    else
        fprintf(stderr, "nsa-run: %s\n", msg);
}

int cli_usage_error(cli_args *a, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    print_error_line(a, fmt, ap);
    va_end(ap);
    return 2;
}

/* Hand `p` to the framework (freed by cli_free). On failure `p` is freed and -1 returned. */
static int own(cli_args *a, void *p)
{
    if (!p)
        return -1;
    if (a->num_owned == a->cap_owned) {
        size_t cap = a->cap_owned ? 2 * a->cap_owned : 16;
        void **grown = (void **)realloc(a->owned, cap * sizeof *grown);
        if (!grown) {
            free(p);
            return -1;
        }
        a->owned = grown;
        a->cap_owned = cap;
    }
    a->owned[a->num_owned++] = p;
    return 0;
}

static char *own_strndup(cli_args *a, const char *s, size_t n)
{
    char *copy = (char *)malloc(n + 1);
    if (!copy)
        return NULL;
    memcpy(copy, s, n);
    copy[n] = '\0';
    return own(a, copy) == 0 ? copy : NULL;
}

void cli_free(cli_args *a)
{
    size_t i;
    if (!a)
        return;
    for (i = 0; i < a->num_owned; ++i)
        free(a->owned[i]);
    free(a->owned);
    free(a->opts);
    free(a->ins);
    nsa_context_destroy(a->ctx);
    free(a);
}

/* ---- accessors ----------------------------------------------------------------------------- */

const char *cli_op(const cli_args *a)
{
    return a->op;
}

nsa_dtype cli_dtype(const cli_args *a)
{
    return a->dtype;
}

int cli_strict(const cli_args *a)
{
    return a->strict;
}

nsa_context *cli_context(const cli_args *a)
{
    return a->ctx;
}

/* ---- parsing ------------------------------------------------------------------------------- */

/* A whole-string decimal integer. */
static int parse_int64(const char *s, int64_t *v)
{
    char *end;
    long long x;
    if (!s || !*s || *s == ' ' || *s == '\t')
        return -1;
    errno = 0;
    x = strtoll(s, &end, 10);
    if (errno != 0 || *end != '\0')
        return -1;
    *v = (int64_t)x;
    return 0;
}

static int parse_builtin_int(cli_args *a, const char *name, const char *value, int64_t lo,
                             int64_t hi, int64_t *out)
{
    if (parse_int64(value, out) != 0 || *out < lo || *out > hi)
        return cli_usage_error(a, "--%s expects an integer in [%lld, %lld], got '%s'", name,
                               (long long)lo, (long long)hi, value);
    return 0;
}

static int add_binding(cli_args *a, const char *value)
{
    const char *eq = strchr(value, '=');
    int i;
    if (!eq || eq == value || eq[1] == '\0')
        return cli_usage_error(a, "--in expects NAME=FILE.npy, got '%s'", value);
    for (i = 0; i < a->num_ins; ++i)
        if (strlen(a->ins[i].name) == (size_t)(eq - value) &&
            strncmp(a->ins[i].name, value, (size_t)(eq - value)) == 0)
            return cli_usage_error(a, "input '%s' is given more than once", a->ins[i].name);
    a->ins[a->num_ins].name = own_strndup(a, value, (size_t)(eq - value));
    if (!a->ins[a->num_ins].name)
        return cli_usage_error(a, "out of memory");
    a->ins[a->num_ins].path = eq + 1;
    a->num_ins++;
    return 0;
}

static int handle_option(cli_args *a, const char *name, size_t len, const char *value,
                         int has_inline_value)
{
    int64_t v = 0;
    int i;
#define IS(word) (len == sizeof(word) - 1 && strncmp(name, word, len) == 0)
    if (IS("strict")) {
        if (has_inline_value)
            return cli_usage_error(a, "--strict takes no value");
        a->strict = 1;
        return 0;
    }
    if (IS("in"))
        return add_binding(a, value);
    if (IS("out")) {
        if (a->out_dir)
            return cli_usage_error(a, "--out is given more than once");
        if (!*value)
            return cli_usage_error(a, "--out expects a directory");
        a->out_dir = value;
        return 0;
    }
    if (IS("dtype")) {
        if (strcmp(value, "f32") == 0)
            a->dtype = NSA_DTYPE_F32;
        else if (strcmp(value, "f16") == 0)
            a->dtype = NSA_DTYPE_F16;
        else if (strcmp(value, "bf16") == 0)
            a->dtype = NSA_DTYPE_BF16;
        else
            return cli_usage_error(a, "--dtype must be f32, f16 or bf16, got '%s'", value);
        return 0;
    }
    if (IS("threads")) {
        if (parse_builtin_int(a, "threads", value, 1, CLI_MAX_THREADS, &v))
            return 2;
        a->threads = (int)v;
        return 0;
    }
    if (IS("repeat"))
        return parse_builtin_int(a, "repeat", value, 0, CLI_MAX_REPEAT, &a->repeat) ? 2 : 0;
#undef IS
    for (i = 0; i < a->num_opts; ++i)
        if (strlen(a->opts[i].name) == len && strncmp(a->opts[i].name, name, len) == 0)
            return cli_usage_error(a, "option --%s is given more than once", a->opts[i].name);
    a->opts[a->num_opts].name = own_strndup(a, name, len);
    if (!a->opts[a->num_opts].name)
        return cli_usage_error(a, "out of memory");
    a->opts[a->num_opts].value = value;
    a->num_opts++;
    return 0;
}

int cli_parse(int argc, char **argv, cli_args **out)
{
    cli_args *a = (cli_args *)calloc(1, sizeof *a);
    nsa_context_config config = NSA_CONTEXT_CONFIG_INIT;
    nsa_status st;
    int i, rc;
    *out = a;
    if (!a)
        return cli_usage_error(NULL, "out of memory");
    a->op = argc > 1 ? argv[1] : "";
    a->dtype = NSA_DTYPE_F32;
    a->opts = (cli_option *)calloc((size_t)argc + 1, sizeof *a->opts);
    a->ins = (cli_binding *)calloc((size_t)argc + 1, sizeof *a->ins);
    if (!a->opts || !a->ins)
        return cli_usage_error(a, "out of memory");
    for (i = 2; i < argc; ++i) {
        const char *arg = argv[i], *name, *eq, *value;
        size_t len;
        if (strncmp(arg, "--", 2) != 0 || arg[2] == '\0' || arg[2] == '=')
            return cli_usage_error(a, "unexpected argument '%s' (options are --NAME VALUE)", arg);
        name = arg + 2;
        eq = strchr(name, '=');
        len = eq ? (size_t)(eq - name) : strlen(name);
        if (eq)
            value = eq + 1;
        else if (len == 6 && strncmp(name, "strict", 6) == 0)
            value = "";
        else if (i + 1 < argc && strncmp(argv[i + 1], "--", 2) != 0)
            value = argv[++i];
        else
            value = ""; /* a flag */
        rc = handle_option(a, name, len, value, eq != NULL);
        if (rc)
            return rc;
    }
    if (!a->out_dir)
        return cli_usage_error(a, "missing --out DIR (where the outputs are written)");
    config.num_threads = a->threads;
    st = nsa_context_create(&config, &a->ctx);
    if (st != NSA_SUCCESS)
        return cli_usage_error(a, "cannot create a context with %d threads: %s", a->threads,
                               nsa_last_error());
    return 0;
}

int cli_check_unused(cli_args *a)
{
    int i;
    for (i = 0; i < a->num_opts; ++i)
        if (!a->opts[i].used)
            return cli_usage_error(a, "unknown option --%s", a->opts[i].name);
    for (i = 0; i < a->num_ins; ++i)
        if (!a->ins[i].used)
            return cli_usage_error(a, "unknown input '%s' (--in %s=%s)", a->ins[i].name,
                                   a->ins[i].name, a->ins[i].path);
    return 0;
}

const char *cli_param(cli_args *a, const char *name)
{
    int i;
    for (i = 0; i < a->num_opts; ++i)
        if (strcmp(a->opts[i].name, name) == 0) {
            a->opts[i].used = 1;
            return a->opts[i].value;
        }
    return NULL;
}

int cli_param_double(cli_args *a, const char *name, double *out, int required)
{
    const char *s = cli_param(a, name);
    char *end;
    double v;
    if (!s) {
        if (required)
            return cli_usage_error(a, "missing required option --%s", name);
        return 0;
    }
    errno = 0;
    v = strtod(s, &end);
    if (!*s || *s == ' ' || *end != '\0' || (errno == ERANGE && fabs(v) > 1.0))
        return cli_usage_error(a, "--%s expects a number, got '%s'", name, s);
    *out = v;
    return 0;
}

int cli_param_int64(cli_args *a, const char *name, int64_t *out, int required)
{
    const char *s = cli_param(a, name);
    if (!s) {
        if (required)
            return cli_usage_error(a, "missing required option --%s", name);
        return 0;
    }
    if (parse_int64(s, out) != 0)
        return cli_usage_error(a, "--%s expects an integer, got '%s'", name, s);
    return 0;
}

int cli_param_int64_list(cli_args *a, const char *name, int64_t **vals, int64_t *count,
                         int required)
{
    const char *s = cli_param(a, name), *p;
    int64_t n = 1, k = 0;
    int64_t *list;
    char item[32];
    *vals = NULL;
    *count = 0;
    if (!s) {
        if (required)
            return cli_usage_error(a, "missing required option --%s", name);
        return 0;
    }
    for (p = s; *p; ++p)
        n += *p == ',';
    list = (int64_t *)malloc((size_t)n * sizeof *list);
    if (own(a, list) != 0)
        return cli_usage_error(a, "out of memory");
    for (p = s; k < n; ++k) {
        size_t len = strcspn(p, ",");
        if (len == 0 || len >= sizeof item)
            return cli_usage_error(a, "--%s expects comma-separated integers, got '%s'", name, s);
        memcpy(item, p, len);
        item[len] = '\0';
        if (parse_int64(item, &list[k]) != 0)
            return cli_usage_error(a, "--%s expects comma-separated integers, got '%s'", name, s);
        p += len + (p[len] == ',');
    }
    *vals = list;
    *count = n;
    return 0;
}

int cli_flag(cli_args *a, const char *name, int *on)
{
    const char *s = cli_param(a, name);
    *on = s != NULL;
    if (s && *s)
        return cli_usage_error(a, "--%s takes no value, got '%s'", name, s);
    return 0;
}

/* ---- inputs -------------------------------------------------------------------------------- */

static nsa_dtype stored_dtype(npy_type t)
{
    switch (t) {
    case NPY_F2:
        return NSA_DTYPE_F16;
    case NPY_I1:
        return NSA_DTYPE_I8;
    case NPY_U1:
        return NSA_DTYPE_U8;
    case NPY_B1:
        return NSA_DTYPE_BOOL;
    case NPY_I4:
        return NSA_DTYPE_I32;
    case NPY_I8:
        return NSA_DTYPE_I64;
    case NPY_F4:
    case NPY_F8: /* libnsa has no f64: converted */
        break;
    }
    return NSA_DTYPE_F32;
}

static int npy_is_float(npy_type t)
{
    return t == NPY_F4 || t == NPY_F2 || t == NPY_F8;
}

static int dtype_is_float(nsa_dtype d)
{
    return d == NSA_DTYPE_F32 || d == NSA_DTYPE_F16 || d == NSA_DTYPE_BF16;
}

/* double -> float rounding to odd: the exact value truncated, with the last bit set when
 * inexact. Rounding that to f16 / bf16 (both >= 2 bits shorter) to nearest even gives the
 * correctly rounded result; a plain (float) cast would round twice. */
static float f64_to_f32_round_odd(double d)
{
    float f = (float)d;
    uint32_t bits;
    if ((double)f == d || d != d)
        return f;
    memcpy(&bits, &f, sizeof bits);
    if (fabs((double)f) > fabs(d))
        bits -= 1; /* one step toward zero (from inf: to FLT_MAX) */
    bits |= 1;
    memcpy(&f, &bits, sizeof f);
    return f;
}

static double float_at(const npy_array *arr, size_t i)
{
    if (arr->h.type == NPY_F8)
        return ((const double *)arr->data)[i];
    if (arr->h.type == NPY_F2)
        return (double)nsa_f16_to_f32(((const uint16_t *)arr->data)[i]);
    return (double)((const float *)arr->data)[i];
}

static int64_t int_at(const npy_array *arr, size_t i)
{
    switch (arr->h.type) {
    case NPY_I1:
        return ((const int8_t *)arr->data)[i];
    case NPY_U1:
    case NPY_B1:
        return ((const uint8_t *)arr->data)[i];
    case NPY_I4:
        return ((const int32_t *)arr->data)[i];
    case NPY_I8:
        return ((const int64_t *)arr->data)[i];
    default:
        return 0;
    }
}

/* Convert the n elements of `arr` into `dst` of dtype `to`. */
static int convert_input(cli_args *a, const char *name, const npy_array *arr, nsa_dtype to,
                         void *dst, size_t n)
{
    size_t i;
    if (dtype_is_float(to)) {
        float chunk[256];
        size_t done, esize = nsa_dtype_size(to);
        if (arr->h.type == NPY_F4 || arr->h.type == NPY_F2) {
            nsa_dtype from = arr->h.type == NPY_F4 ? NSA_DTYPE_F32 : NSA_DTYPE_F16;
            if (nsa_convert(arr->data, from, 1, dst, to, 1, (int64_t)n, NSA_ROUND_NEAREST_EVEN))
                return cli_usage_error(a, "input '%s': conversion failed: %s", name,
                                       nsa_last_error());
            return 0;
        }
        for (done = 0; done < n; done += 256) {
            size_t len = n - done < 256 ? n - done : 256;
            for (i = 0; i < len; ++i) {
                double v = npy_is_float(arr->h.type) ? float_at(arr, done + i)
                                                      : (double)int_at(arr, done + i);
                chunk[i] = to == NSA_DTYPE_F32 ? (float)v : f64_to_f32_round_odd(v);
            }
            if (nsa_convert(chunk, NSA_DTYPE_F32, 1, (char *)dst + done * esize, to, 1,
                            (int64_t)len, NSA_ROUND_NEAREST_EVEN))
                return cli_usage_error(a, "input '%s': conversion failed: %s", name,
                                       nsa_last_error());
        }
        return 0;
    }
    if (npy_is_float(arr->h.type))
        return cli_usage_error(a, "input '%s' must hold integers (%s), the file holds %s", name,
                               nsa_dtype_name(to), npy_type_descr(arr->h.type));
    for (i = 0; i < n; ++i) {
        int64_t v = int_at(arr, i), lo = INT64_MIN, hi = INT64_MAX;
        switch (to) {
        case NSA_DTYPE_BOOL:
            ((uint8_t *)dst)[i] = v != 0;
            continue;
        case NSA_DTYPE_I8:
            lo = INT8_MIN;
            hi = INT8_MAX;
            break;
        case NSA_DTYPE_U8:
            lo = 0;
            hi = UINT8_MAX;
            break;
        case NSA_DTYPE_I32:
            lo = INT32_MIN;
            hi = INT32_MAX;
            break;
        default:
            break;
        }
        if (v < lo || v > hi)
            return cli_usage_error(a, "input '%s': value %lld at flat index %lu does not fit %s",
                                   name, (long long)v, (unsigned long)i, nsa_dtype_name(to));
        switch (to) {
        case NSA_DTYPE_I8:
            ((int8_t *)dst)[i] = (int8_t)v;
            break;
        case NSA_DTYPE_U8:
            ((uint8_t *)dst)[i] = (uint8_t)v;
            break;
        case NSA_DTYPE_I32:
            ((int32_t *)dst)[i] = (int32_t)v;
            break;
        default:
            ((int64_t *)dst)[i] = v;
            break;
        }
    }
    return 0;
}

int cli_input(cli_args *a, const char *name, nsa_dtype as, int required, nsa_tensor *t,
              int *present)
{
    cli_binding *in = NULL;
    npy_array arr;
    char err[NPY_ERR_LEN];
    nsa_dtype to;
    size_t n;
    void *data;
    int i, rc;
    int64_t shape1 = 1;
    if (present)
        *present = 0;
    for (i = 0; i < a->num_ins; ++i)
        if (strcmp(a->ins[i].name, name) == 0)
            in = &a->ins[i];
    if (!in) {
        if (required)
            return cli_usage_error(a, "missing required input --in %s=FILE.npy", name);
        return 0;
    }
    in->used = 1;
    if (npy_load(in->path, &arr, err) != 0)
        return cli_usage_error(a, "input '%s': %s: %s", name, in->path, err);
    if (arr.h.ndim > NSA_MAX_DIMS) {
        npy_free(&arr);
        return cli_usage_error(a, "input '%s': %s has %d dimensions, at most %d are supported",
                               name, in->path, arr.h.ndim, NSA_MAX_DIMS);
    }
    if (as == CLI_AS_STORED || (as == CLI_AS_RUN_DTYPE && !npy_is_float(arr.h.type)))
        to = stored_dtype(arr.h.type);
    else if (as == CLI_AS_RUN_DTYPE)
        to = a->dtype;
    else
        to = as;
    if (nsa_dtype_size(to) == 0) {
        npy_free(&arr);
        return cli_usage_error(a, "input '%s': invalid requested dtype %d", name, (int)to);
    }
    n = (size_t)arr.h.numel;
    if (to == stored_dtype(arr.h.type) && arr.h.type != NPY_F8) {
        data = arr.data; /* already in the right type: keep the buffer */
    } else {
        data = n <= SIZE_MAX / 8 ? calloc(n ? n : 1, nsa_dtype_size(to)) : NULL;
        if (!data) {
            npy_free(&arr);
            return cli_usage_error(a, "input '%s': out of memory", name);
        }
        rc = convert_input(a, name, &arr, to, data, n);
        npy_free(&arr);
        if (rc) {
            free(data);
            return rc;
        }
    }
    if (own(a, data) != 0)
        return cli_usage_error(a, "out of memory");
    /* a 0-d array becomes a 1-element vector (tensor views have rank >= 1) */
    if (arr.h.ndim == 0)
        *t = nsa_tensor_contiguous(data, to, 1, &shape1);
    else
        *t = nsa_tensor_contiguous(data, to, arr.h.ndim, arr.h.shape);
    if (present)
        *present = 1;
    return 0;
}

/* ---- outputs ------------------------------------------------------------------------------- */

static int bytes_of(int32_t ndim, const int64_t *shape, nsa_dtype dtype, size_t *numel,
                    size_t *bytes)
{
    size_t n = 1, esize = nsa_dtype_size(dtype);
    int32_t i;
    if (esize == 0 || ndim < 1 || ndim > NSA_MAX_DIMS || !shape)
        return -1;
    for (i = 0; i < ndim; ++i) {
        if (shape[i] < 0 || (uint64_t)shape[i] > SIZE_MAX)
            return -1;
        if (shape[i] != 0 && n > SIZE_MAX / esize / (size_t)shape[i])
            return -1;
        n *= (size_t)shape[i];
    }
    *numel = n;
    *bytes = n * esize;
    return 0;
}

int cli_alloc_output(cli_args *a, nsa_dtype dtype, int32_t ndim, const int64_t *shape,
                     nsa_tensor *t)
{
    size_t n, bytes;
    void *data;
    if (bytes_of(ndim, shape, dtype, &n, &bytes) != 0)
        return cli_usage_error(a, "invalid output shape or dtype (rank %d, %s)", (int)ndim,
                               nsa_dtype_name(dtype));
    data = calloc(bytes ? bytes : 1, 1);
    if (own(a, data) != 0)
        return cli_usage_error(a, "out of memory for a %lu-byte output", (unsigned long)bytes);
    *t = nsa_tensor_contiguous(data, dtype, ndim, shape);
    return 0;
}

/* DIR/NAME + suffix, owned by the framework; NULL when NAME could escape DIR. */
static char *out_path(cli_args *a, const char *name, const char *suffix)
{
    size_t dl = strlen(a->out_dir), nl = strlen(name), sl = strlen(suffix);
    char *p;
    if (nl == 0 || strchr(name, '/') || strchr(name, '\\') || strcmp(name, "..") == 0)
        return NULL;
    p = (char *)malloc(dl + nl + sl + 2);
    if (!p || own(a, p) != 0)
        return NULL;
    memcpy(p, a->out_dir, dl);
    p[dl] = '/';
    memcpy(p + dl + 1, name, nl);
    memcpy(p + dl + 1 + nl, suffix, sl + 1);
    return p;
}

static npy_type output_npy_type(nsa_dtype d)
{
    switch (d) {
    case NSA_DTYPE_I32:
        return NPY_I4;
    case NSA_DTYPE_I8:
        return NPY_I1;
    case NSA_DTYPE_U8:
        return NPY_U1;
    case NSA_DTYPE_BOOL:
        return NPY_B1;
    case NSA_DTYPE_I64:
        return NPY_I8;
    default:
        return NPY_F4;
    }
}

int cli_write_output(cli_args *a, const char *name, const nsa_tensor *t)
{
    size_t n, bytes, i, esize;
    int64_t idx[NSA_MAX_DIMS] = {0, 0, 0, 0};
    int64_t off = 0;
    npy_type type;
    unsigned char *buf;
    char err[NPY_ERR_LEN], *path;
    int rc, k;
    if (!t || bytes_of(t->ndim, t->shape, t->dtype, &n, &bytes) != 0 || (n > 0 && !t->data))
        return cli_usage_error(a, "output '%s' is not a valid tensor", name ? name : "?");
    path = name ? out_path(a, name, ".npy") : NULL;
    if (!path)
        return cli_usage_error(a, "invalid output name '%s'", name ? name : "?");
    type = output_npy_type(t->dtype);
    esize = nsa_dtype_size(t->dtype);
    buf = (unsigned char *)malloc(n ? n * npy_type_size(type) : 1);
    if (!buf)
        return cli_usage_error(a, "out of memory writing output '%s'", name);
    for (i = 0; i < n; ++i) { /* walk the view in C order; strides may be anything */
        const unsigned char *src = (const unsigned char *)t->data + off * (int64_t)esize;
        switch (t->dtype) {
        case NSA_DTYPE_F16:
        case NSA_DTYPE_BF16: {
            uint16_t bits;
            float f;
            memcpy(&bits, src, 2);
            f = t->dtype == NSA_DTYPE_F16 ? nsa_f16_to_f32(bits) : nsa_bf16_to_f32(bits);
            memcpy(buf + 4 * i, &f, 4);
            break;
        }
        default:
            memcpy(buf + esize * i, src, esize);
            break;
        }
        for (k = t->ndim - 1; k >= 0; --k) {
            off += t->stride[k];
            if (++idx[k] < t->shape[k])
                break;
            off -= t->stride[k] * t->shape[k];
            idx[k] = 0;
        }
    }
    rc = npy_save(path, type, t->ndim, t->shape, buf, err);
    free(buf);
    if (rc != 0)
        return cli_usage_error(a, "cannot write output '%s' to %s: %s", name, path, err);
    return 0;
}

int cli_write_text(cli_args *a, const char *name, const char *text)
{
    char *path = name ? out_path(a, name, "") : NULL;
    FILE *f;
    int ok;
    if (!path)
        return cli_usage_error(a, "invalid output name '%s'", name ? name : "?");
    f = fopen(path, "w");
    if (!f)
        return cli_usage_error(a, "cannot create %s: %s", path, strerror(errno));
    ok = fputs(text ? text : "", f) >= 0;
    if (fclose(f) != 0 || !ok)
        return cli_usage_error(a, "cannot write %s: %s", path, strerror(errno));
    return 0;
}

int cli_make_out_dir(cli_args *a)
{
    size_t len = strlen(a->out_dir), i;
    char *p = own_strndup(a, a->out_dir, len);
    struct stat st;
    if (!p)
        return cli_usage_error(a, "out of memory");
    for (i = 1; i <= len; ++i) { /* mkdir -p: every prefix ending at a '/' */
        if (p[i] != '/' && p[i] != '\0')
            continue;
        p[i] = '\0';
        if (mkdir(p, 0777) != 0 && errno != EEXIST)
            return cli_usage_error(a, "cannot create output directory %s: %s", p,
                                   strerror(errno));
        p[i] = i < len ? '/' : '\0';
    }
    if (stat(a->out_dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return cli_usage_error(a, "--out %s is not a directory", a->out_dir);
    return 0;
}

/* ---- running ------------------------------------------------------------------------------- */

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

static int compare_double(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

int cli_op_error(cli_args *a, nsa_status st)
{
    const char *msg = nsa_last_error();
    cli_usage_error(a, "%s: %s", nsa_status_string(st), *msg ? msg : "(no message)");
    return 3;
}

int cli_run(cli_args *a, nsa_status (*fn)(void *arg), void *arg)
{
    nsa_status st;
    double *times, median;
    int64_t i, n = a->repeat;
    int rc = cli_check_unused(a);
    if (rc)
        return rc;
    st = fn(arg);
    if (st != NSA_SUCCESS)
        return cli_op_error(a, st);
    if (n == 0)
        return 0;
    times = (double *)malloc((size_t)n * sizeof *times);
    if (!times)
        return cli_usage_error(a, "out of memory");
    for (i = 0; i < n; ++i) {
        double t0 = now_ms();
        st = fn(arg);
        times[i] = now_ms() - t0;
        if (st != NSA_SUCCESS) {
            free(times);
            return cli_op_error(a, st);
        }
    }
    qsort(times, (size_t)n, sizeof *times, compare_double);
    median = n % 2 ? times[n / 2] : 0.5 * (times[n / 2 - 1] + times[n / 2]);
    fprintf(stderr, "time: median=%.3f ms min=%.3f ms runs=%lld\n", median, times[0],
            (long long)n);
    free(times);
    return 0;
}
