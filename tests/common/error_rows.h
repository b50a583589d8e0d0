/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Row-by-row tests of docs/errors.md. Each case sets up a valid call, breaks exactly one rule
 * and makes the call; it names the row it targets by function and a piece of the message.
 * The runner checks, per case:
 *   - the status is the row's status;
 *   - the rule that fired is that row: the format nsa_error() was given is the row's message
 *     (not just a similar text from another check);
 *   - no watched output byte changed (watched buffers are filled with a canary first) and
 *     watched handles stayed as they were or became NULL.
 * Then every row of the listed source files must be covered by a passing case, or be listed
 * as unreachable with the reason. A rule added to src/ without a case fails the test.
 */
#ifndef NSA_TEST_ERROR_ROWS_H
#define NSA_TEST_ERROR_ROWS_H

#include <stddef.h>

#include "nsa/nsa.h"

#define ERR_MAX_WATCH 16

typedef struct err_call {
    struct {
        unsigned char *p, *copy;
        size_t n;
    } watch[ERR_MAX_WATCH];
    int nwatch;
    struct {
        void **p;
        void *before;
    } handle[ERR_MAX_WATCH];
    int nhandle;
    void *owned[4 * ERR_MAX_WATCH];
    int nowned;
    void (*at_end)(void);
} err_call;

/* Fill `bytes` bytes at `p` with a canary; the call must not change them. Call it after the
 * set-up and just before the call under test. The runner compares after the case returns, so
 * `p` must outlive the case: static storage or err_alloc(), never the case's own locals. */
void err_watch(err_call *c, void *p, size_t bytes);

/* Run `fn` after the runner has read the status and message: for clean-up calls that would
 * clear the last error (nsa_set_allocator(NULL), nsa_default_context_reset(), ...). */
void err_at_end(err_call *c, void (*fn)(void));

/* Zeroed, 64-byte aligned memory that lives until the runner has checked the case. */
void *err_alloc(err_call *c, size_t bytes);

/* `*handle_ptr` (a T **) must stay as it is or become NULL. Like err_watch()'s buffer,
 * `handle_ptr` must outlive the case: err_alloc() it, never take a local's address. */
void err_watch_handle(err_call *c, void *handle_ptr);

/* Allocation failures (for serial cases: the counts are shared). An allocator for a context's
 * config that serves `n` allocations (posix_memalign), then fails; the count restarts at each
 * call of this function. */
const nsa_allocator *err_allocator_failing_after(int n);
/* Until the runner has checked the case, the process allocator (nsa_set_allocator) serves `n`
 * more allocations, then fails. */
void err_fail_process_allocator(err_call *c, int n);
/* Also drop the default context: the next call with a NULL context creates it again, from the
 * failing process allocator. */
void err_fail_default_context(err_call *c);

/* Make the failing call and return its status. */
typedef nsa_status (*err_case_fn)(err_call *c);

typedef struct err_case {
    const char *func;   /* the function column of docs/errors.md */
    const char *needle; /* a piece of the message that selects the row within func */
    err_case_fn run;
} err_case;

/* A row no input can reach, with the reason (for example an allocation no hook can fail). */
typedef struct err_unreachable {
    const char *func;
    const char *needle;
    const char *why;
} err_unreachable;

/* Run the cases against the rows of `files` (paths as docs/errors.md heads them, e.g.
 * "src/ops/compress.c"). Prints every failure; returns the process exit code (0 = all held). */
int err_rows_main(const char *const *files, size_t nfiles, const err_case *cases, size_t ncases,
                  const err_unreachable *skip, size_t nskip);

#define ERR_COUNT(a) (sizeof(a) / sizeof((a)[0]))

#endif
