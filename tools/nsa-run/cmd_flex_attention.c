/* SPDX-License-Identifier: Apache-2.0 */
#include "cli.h"

int cmd_flex_attention(cli_args *a)
{
    return cli_usage_error(a, "this operator is not available yet");
}
