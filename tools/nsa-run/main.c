/* SPDX-License-Identifier: Apache-2.0 */
/* Placeholder until the framework lands. */
#include <stdarg.h>
#include <stdio.h>

#include "cli.h"

int cli_usage_error(cli_args *a, const char *fmt, ...)
{
    va_list ap;
    (void)a;
    va_start(ap, fmt);
    fputs("nsa-run: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return 2;
}

int main(void)
{
    return cli_usage_error(NULL, "not implemented yet");
}
