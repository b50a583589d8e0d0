/* SPDX-License-Identifier: Apache-2.0 */
#include "error_rows.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"

#define CANARY 0xA5

typedef struct row {
    char file[96], func[96], status[48], msg[512];
    int covered;
} row;

static row *g_rows;
static size_t g_nrows;

void err_watch(err_call *c, void *p, size_t bytes)
{
    if (c->nwatch == ERR_MAX_WATCH) {
        fprintf(stderr, "error_rows: more than %d watched buffers\n", ERR_MAX_WATCH);
        abort();
    }
    memset(p, CANARY, bytes);
    c->watch[c->nwatch].p = (unsigned char *)p;
    c->watch[c->nwatch].n = bytes;
    c->watch[c->nwatch].copy = (unsigned char *)malloc(bytes ? bytes : 1);
    if (!c->watch[c->nwatch].copy)
        abort();
    memcpy(c->watch[c->nwatch].copy, p, bytes);
    c->nwatch++;
}

void *err_alloc(err_call *c, size_t bytes)
{
    void *p = NULL;
    if (c->nowned == (int)(sizeof c->owned / sizeof c->owned[0]) ||
        posix_memalign(&p, 64, bytes ? bytes : 1) != 0)
        abort();
    memset(p, 0, bytes);
    c->owned[c->nowned++] = p;
    return p;
}

void err_at_end(err_call *c, void (*fn)(void))
{
    c->at_end = fn;
}

static int g_allocs_left;

static void *counting_alloc(void *user, size_t size, size_t alignment)
{
    void *p = NULL;
    (void)user;
    if (g_allocs_left-- <= 0)
        return NULL;
    if (posix_memalign(&p, alignment < sizeof(void *) ? sizeof(void *) : alignment,
                       size ? size : 1) != 0)
        return NULL;
    return p;
}

static void plain_free(void *user, void *p)
{
    (void)user;
    free(p);
}

static const nsa_allocator g_counting = {NULL, counting_alloc, plain_free};

const nsa_allocator *err_allocator_failing_after(int n)
{
    g_allocs_left = n;
    return &g_counting;
}

static void reset_process_allocator(void)
{
    nsa_set_allocator(NULL);
}

void err_fail_process_allocator(err_call *c, int n)
{
    if (nsa_set_allocator(err_allocator_failing_after(n)) != NSA_SUCCESS)
        abort();
    err_at_end(c, reset_process_allocator);
}

void err_fail_default_context(err_call *c)
{
    nsa_default_context_reset();
    err_fail_process_allocator(c, 0);
}

void err_watch_handle(err_call *c, void *handle_ptr)
{
    if (c->nhandle == ERR_MAX_WATCH)
        abort();
    c->handle[c->nhandle].p = (void **)handle_ptr;
    c->handle[c->nhandle].before = *(void **)handle_ptr;
    c->nhandle++;
}

/* The text of a message cell as the C literal reads at run time: the generator escapes '|'
 * and turns backquotes into quotes; C escapes stay as in the source. */
static void unescape_cell(const char *in, size_t len, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < len && o + 1 < cap; i++) {
        if (in[i] == '\\' && i + 1 < len) {
            char e = in[++i];
            out[o++] = e == 'n' ? '\n' : e == 't' ? '\t' : e; /* \| \\ \" */
        } else {
            out[o++] = in[i];
        }
    }
    out[o] = '\0';
}

/* The runtime format with backquotes shown as the generator shows them. */
static void normalise_format(const char *fmt, char *out, size_t cap)
{
    size_t o = 0;
    for (; *fmt && o + 1 < cap; fmt++)
        out[o++] = *fmt == '`' ? '\'' : *fmt;
    out[o] = '\0';
}

/* Cell k (0-based) of a "| `a` | `b` | `c` |" line, between its backquotes. */
static int cell(const char *line, int k, const char **start, size_t *len)
{
    const char *p = line;
    for (int i = 0; i <= k; i++) {
        p = strstr(p, "| `");
        if (!p)
            return 0;
        p += 3;
    }
    {
        /* The cell ends at the last "` |" before the next unescaped " | `" (or line end). */
        const char *end = strstr(p, "` |");
        const char *next;
        if (!end)
            return 0;
        while ((next = strstr(end + 1, "` |")) && k == 2)
            end = next; /* the message is the last cell: take the last closing quote */
        *start = p;
        *len = (size_t)(end - p);
    }
    return 1;
}

static int load_rows(void)
{
    const char *path = NSA_TEST_DATA_DIR "/../../docs/errors.md";
    FILE *f = fopen(path, "r");
    char line[2048], file[96] = "";
    size_t cap = 0;
    if (!f) {
        fprintf(stderr, "error_rows: cannot open %s\n", path);
        return 0;
    }
    while (fgets(line, sizeof line, f)) {
        const char *s;
        size_t n;
        if (strncmp(line, "## src/", 7) == 0) {
            sscanf(line + 3, "%95s", file);
            continue;
        }
        if (!file[0] || strncmp(line, "| `", 3) != 0)
            continue;
        if (g_nrows == cap) {
            cap = cap ? 2 * cap : 512;
            g_rows = (row *)realloc(g_rows, cap * sizeof *g_rows);
            if (!g_rows)
                abort();
        }
        {
            row *r = &g_rows[g_nrows];
            memset(r, 0, sizeof *r);
            snprintf(r->file, sizeof r->file, "%s", file);
            if (!cell(line, 0, &s, &n) || n >= sizeof r->func)
                continue;
            memcpy(r->func, s, n);
            if (!cell(line, 1, &s, &n) || n >= sizeof r->status)
                continue;
            memcpy(r->status, s, n);
            if (!cell(line, 2, &s, &n))
                continue;
            unescape_cell(s, n, r->msg, sizeof r->msg);
            g_nrows++;
        }
    }
    fclose(f);
    return 1;
}

static int in_files(const row *r, const char *const *files, size_t nfiles)
{
    for (size_t i = 0; i < nfiles; i++)
        if (strcmp(r->file, files[i]) == 0)
            return 1;
    return 0;
}

/* The rows of `files` that (func, needle) selects; 0 if none, -1 if they differ in message. */
static int select_rows(const char *const *files, size_t nfiles, const char *func,
                       const char *needle, size_t *first)
{
    int count = 0;
    for (size_t i = 0; i < g_nrows; i++) {
        const row *r = &g_rows[i];
        if (!in_files(r, files, nfiles) || strcmp(r->func, func) != 0 || !strstr(r->msg, needle))
            continue;
        if (count == 0)
            *first = i;
        else if (strcmp(r->msg, g_rows[*first].msg) != 0 ||
                 strcmp(r->status, g_rows[*first].status) != 0)
            return -1;
        count++;
    }
    return count;
}

static int run_case(const err_case *k, const char *const *files, size_t nfiles)
{
    size_t first = 0;
    int n = select_rows(files, nfiles, k->func, k->needle, &first), ok = 1;
    err_call c;
    nsa_status st;
    const char *fmt;
    char norm[512], msg[512];
    if (n <= 0) {
        printf("FAIL %s \"%s\": %s\n", k->func, k->needle,
               n == 0 ? "no row of docs/errors.md matches" : "matches rows with different messages");
        return 0;
    }
    memset(&c, 0, sizeof c);
    nsa_clear_error();
    st = k->run(&c);
    fmt = nsa_last_error_format();
    normalise_format(fmt ? fmt : "", norm, sizeof norm);
    snprintf(msg, sizeof msg, "%s", nsa_last_error()); /* the clean-up may clear them */
    if (c.at_end)
        c.at_end();
    if (strcmp(nsa_status_string(st), g_rows[first].status) != 0) {
        printf("FAIL %s \"%s\": status %s, want %s (message \"%s\")\n", k->func, k->needle,
               nsa_status_string(st), g_rows[first].status, msg);
        ok = 0;
    } else {
        if (strcmp(norm, g_rows[first].msg) != 0) {
            printf("FAIL %s \"%s\": another rule fired: \"%s\"\n", k->func, k->needle, msg);
            ok = 0;
        }
    }
    for (int i = 0; i < c.nwatch; i++) {
        if (memcmp(c.watch[i].p, c.watch[i].copy, c.watch[i].n) != 0) {
            printf("FAIL %s \"%s\": watched output %d (%zu bytes) was written\n", k->func,
                   k->needle, i, c.watch[i].n);
            ok = 0;
        }
        free(c.watch[i].copy);
    }
    for (int i = 0; i < c.nhandle; i++) {
        if (*c.handle[i].p != c.handle[i].before && *c.handle[i].p != NULL) {
            printf("FAIL %s \"%s\": watched handle %d was set\n", k->func, k->needle, i);
            ok = 0;
        }
    }
    for (int i = 0; i < c.nowned; i++)
        free(c.owned[i]);
    if (ok) {
        for (size_t i = 0; i < g_nrows; i++) {
            row *r = &g_rows[i];
            if (in_files(r, files, nfiles) && strcmp(r->func, k->func) == 0 &&
                strcmp(r->msg, g_rows[first].msg) == 0)
                r->covered = 1;
        }
    }
    return ok;
}

int err_rows_main(const char *const *files, size_t nfiles, const err_case *cases, size_t ncases,
                  const err_unreachable *skip, size_t nskip)
{
    size_t failed = 0, rules = 0, covered = 0, unreachable = 0;
    if (!load_rows())
        return 1;
    for (size_t i = 0; i < ncases; i++)
        if (!run_case(&cases[i], files, nfiles))
            failed++;
    for (size_t i = 0; i < nskip; i++) {
        size_t first = 0;
        if (select_rows(files, nfiles, skip[i].func, skip[i].needle, &first) <= 0) {
            printf("FAIL unreachable entry %s \"%s\" matches no single row\n", skip[i].func,
                   skip[i].needle);
            failed++;
        }
    }
    for (size_t i = 0; i < g_nrows; i++) {
        const row *r = &g_rows[i];
        int skipped = 0;
        if (!in_files(r, files, nfiles))
            continue;
        rules++;
        if (r->covered) {
            covered++;
            continue;
        }
        for (size_t j = 0; j < nskip; j++)
            if (strcmp(r->func, skip[j].func) == 0 && strstr(r->msg, skip[j].needle)) {
                printf("unreachable: %s: %s (%s)\n", r->func, r->msg, skip[j].why);
                skipped = 1;
            }
        if (skipped) {
            unreachable++;
        } else {
            printf("FAIL not covered: %s %s: %s \"%s\"\n", r->file, r->func, r->status, r->msg);
            failed++;
        }
    }
    printf("%zu rules: %zu covered by %zu cases, %zu unreachable; %zu failures\n", rules, covered,
           ncases, unreachable, failed);
    free(g_rows);
    return failed == 0 && rules > 0 ? 0 : 1;
}
