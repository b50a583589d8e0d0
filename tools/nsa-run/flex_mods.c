/* SPDX-License-Identifier: Apache-2.0 */
/* Mask expressions ('or(and(causal,sliding_window:96),prefix_lm:32)') and score_mod names
 * for the flex subcommands. late_start:N and head_batch_scale are not library built-ins:
 * they are user callbacks here, which exercises the callback path. */
#include <stdlib.h>
#include <string.h>

#include "flex_mods.h"

/* late_start:N: q >= N and k <= q (rows before N see nothing). */
static void late_start_mask(void *user, int64_t b, int64_t h, int64_t q, int64_t kv0, int32_t n,
                            uint8_t *keep)
{
    const int64_t start = *(const int64_t *)user;
    int32_t j;
    (void)b;
    (void)h;
    for (j = 0; j < n; j++)
        keep[j] = q >= start && kv0 + j <= q;
}

/* head_batch_scale: score * (1 + 0.1 h) + 0.01 b. */
static void head_batch_scale(void *user, int64_t b, int64_t h, int64_t q, int64_t kv0, int32_t n,
                             float *s)
{
    int32_t j;
    (void)user;
    (void)q;
    (void)kv0;
    for (j = 0; j < n; j++)
        s[j] = s[j] * (1.0f + 0.1f * (float)h) + 0.01f * (float)b;
}

typedef struct parser {
    cli_args *a;
    flex_mods *m;
    const char *s; /* cursor */
    int rc; /* exit code once an error was printed */
} parser;

static void skip_space(parser *p)
{
    while (*p->s == ' ')
        p->s++;
}

static int syntax(parser *p, const char *what)
{
    if (!p->rc)
        p->rc = cli_usage_error(p->a, "--mask: %s at '%s'", what, p->s);
    return p->rc;
}

static nsa_mask_mod *document_mask(parser *p)
{
    cli_args *a = p->a;
    nsa_mask_mod *mm = NULL;
    nsa_status st;
    int64_t *lens = NULL, count = 0, i;
    if (cli_param_int64_list(a, "doc-lengths", &lens, &count, 0) != 0) {
        p->rc = 2;
        return NULL;
    }
    if (count > 0) {
        /* the mask_mod keeps its own copy of the offsets */
        int64_t *offsets = (int64_t *)malloc((size_t)(count + 1) * sizeof(int64_t));
        if (!offsets) {
            p->rc = cli_usage_error(a, "out of memory");
            return NULL;
        }
        offsets[0] = 0;
        for (i = 0; i < count; i++) {
            if (lens[i] < 0) {
                p->rc = cli_usage_error(a, "--doc-lengths must be >= 0, got %lld",
                                        (long long)lens[i]);
                free(offsets);
                return NULL;
            }
            offsets[i + 1] = offsets[i] + lens[i];
        }
        st = nsa_mask_mod_document_offsets(offsets, NULL, count, NULL, &mm);
        free(offsets);
    } else {
        nsa_tensor ids;
        int present = 0;
        if (cli_input(a, "doc_ids", CLI_AS_STORED, 1, &ids, &present) != 0) {
            p->rc = 2;
            return NULL;
        }
        st = nsa_mask_mod_document(&ids, NULL, &mm);
    }
    if (st != NSA_SUCCESS)
        p->rc = cli_op_error(a, st);
    return mm;
}

static nsa_mask_mod *parse_expr(parser *p, int top);

/* name '(' expr {',' expr} ')' for and / or / not */
static nsa_mask_mod *parse_combinator(parser *p, const char *name)
{
    nsa_mask_mod *args[32], *mm = NULL;
    int n = 0, i;
    nsa_status st = NSA_SUCCESS;
    p->s++; /* '(' */
    for (;;) {
        skip_space(p);
        if (n == 32) {
            syntax(p, "more than 32 operands");
            break;
        }
        args[n] = parse_expr(p, 0);
        if (!args[n])
            break;
        n++;
        skip_space(p);
        if (*p->s == ',') {
            p->s++;
            continue;
        }
        if (*p->s == ')') {
            p->s++;
            break;
        }
        syntax(p, "expected ',' or ')'");
        break;
    }
    if (!p->rc) {
        if (!strcmp(name, "not")) {
            if (n != 1)
                syntax(p, "not() takes one operand");
            else
                st = nsa_mask_mod_not(args[0], &mm);
        } else if (!strcmp(name, "and")) {
            st = nsa_mask_mod_and((const nsa_mask_mod *const *)args, n, &mm);
        } else {
            st = nsa_mask_mod_or((const nsa_mask_mod *const *)args, n, &mm);
        }
        if (st != NSA_SUCCESS)
            p->rc = cli_op_error(p->a, st);
    }
    for (i = 0; i < n; i++)
        nsa_mask_mod_free(args[i]);
    return p->rc ? (nsa_mask_mod_free(mm), (nsa_mask_mod *)NULL) : mm;
}

static nsa_mask_mod *parse_expr(parser *p, int top)
{
    char name[32];
    size_t len = 0;
    int64_t arg = 0;
    int has_arg = 0;
    nsa_mask_mod *mm = NULL;
    nsa_status st = NSA_SUCCESS;
    skip_space(p);
    while ((*p->s >= 'a' && *p->s <= 'z') || *p->s == '_') {
        if (len + 1 < sizeof name)
            name[len++] = *p->s;
        p->s++;
    }
    name[len] = '\0';
    if (len == 0) {
        syntax(p, "expected a mask name");
        return NULL;
    }
    if (*p->s == '(') {
        if (strcmp(name, "and") && strcmp(name, "or") && strcmp(name, "not")) {
            syntax(p, "only and(), or() and not() take operands");
            return NULL;
        }
        return parse_combinator(p, name);
    }
    if (*p->s == ':') {
        char *end;
        p->s++;
        arg = strtoll(p->s, &end, 10);
        if (end == p->s) {
            syntax(p, "expected an integer");
            return NULL;
        }
        p->s = end;
        has_arg = 1;
    }
    if (!strcmp(name, "causal")) {
        st = nsa_mask_mod_causal(&mm);
    } else if (!strcmp(name, "sliding_window") && has_arg) {
        st = nsa_mask_mod_sliding_window(arg, &mm);
    } else if (!strcmp(name, "prefix_lm") && has_arg) {
        st = nsa_mask_mod_prefix_lm(arg, &mm);
    } else if (!strcmp(name, "late_start") && has_arg) {
        if (p->m->num_late == 16) {
            syntax(p, "more than 16 late_start terms");
            return NULL;
        }
        p->m->late_start[p->m->num_late] = arg;
        st = nsa_mask_mod_callback(late_start_mask, &p->m->late_start[p->m->num_late++], &mm);
    } else if (!strcmp(name, "document") && !has_arg) {
        return document_mask(p);
    } else if (!strcmp(name, "none") || !strcmp(name, "noop")) {
        if (top && !strcmp(name, "none"))
            p->m->no_mask = 1;
        st = nsa_mask_mod_noop(&mm);
    } else if (!strcmp(name, "from_kv_blocks") && top) {
        p->m->from_kv_blocks = 1;
        st = nsa_mask_mod_noop(&mm);
    } else {
        syntax(p, "unknown mask (none, causal, sliding_window:W, prefix_lm:P, document, "
                  "late_start:N, from_kv_blocks, and(...), or(...), not(...))");
        return NULL;
    }
    if (st != NSA_SUCCESS)
        p->rc = cli_op_error(p->a, st);
    return mm;
}

int flex_mods_mask(cli_args *a, flex_mods *m)
{
    const char *expr = cli_param(a, "mask");
    parser p;
    p.a = a;
    p.m = m;
    p.s = expr ? expr : "none";
    p.rc = 0;
    m->mask = parse_expr(&p, 1);
    if (!p.rc) {
        skip_space(&p);
        if (*p.s != '\0')
            syntax(&p, "unexpected text");
    }
    return p.rc;
}

int flex_mods_score(cli_args *a, flex_mods *m, int64_t heads)
{
    const char *name = cli_param(a, "score-mod");
    nsa_status st = NSA_SUCCESS;
    nsa_tensor t;
    int present = 0;
    if (!name || !strcmp(name, "none"))
        return 0;
    if (!strcmp(name, "alibi")) {
        if (cli_input(a, "alibi_slopes", NSA_DTYPE_F32, 0, &t, &present) != 0)
            return 2;
        st = nsa_score_mod_alibi(present ? &t : NULL, heads, &m->score);
    } else if (!strncmp(name, "softcap:", 8)) {
        char *end;
        double cap = strtod(name + 8, &end);
        if (end == name + 8 || *end)
            return cli_usage_error(a, "--score-mod softcap:C expects a number, got '%s'", name);
        st = nsa_score_mod_softcap((float)cap, &m->score);
    } else if (!strcmp(name, "rel_bias")) {
        if (cli_input(a, "bias_table", NSA_DTYPE_F32, 1, &t, &present) != 0)
            return 2;
        st = nsa_score_mod_rel_bias(&t, &m->score);
    } else if (!strcmp(name, "head_batch_scale")) {
        st = nsa_score_mod_callback(head_batch_scale, NULL, &m->score);
    } else {
        return cli_usage_error(a, "--score-mod must be none, alibi, softcap:C, rel_bias or "
                                  "head_batch_scale, got '%s'",
                               name);
    }
    return st == NSA_SUCCESS ? 0 : cli_op_error(a, st);
}

int flex_mods_block_size(cli_args *a, int64_t *q_block, int64_t *kv_block)
{
    int64_t *vals = NULL, n = 0;
    if (cli_param_int64_list(a, "block-size", &vals, &n, 0) != 0)
        return 2;
    if (n == 0) {
        *q_block = *kv_block = 128;
        return 0;
    }
    if (n > 2)
        return cli_usage_error(a, "--block-size takes Q or Q,KV, got %lld values", (long long)n);
    *q_block = vals[0];
    *kv_block = n == 2 ? vals[1] : vals[0];
    return 0;
}

int flex_mods_kv_blocks(cli_args *a, int64_t q_block, int64_t kv_block, int64_t q_len,
                        int64_t kv_len, nsa_block_mask **out)
{
    nsa_tensor num, idx, fnum, fidx;
    int p1 = 0, p2 = 0, p3 = 0, p4 = 0;
    nsa_status st;
    if (cli_input(a, "kv_num_blocks", CLI_AS_STORED, 1, &num, &p1) != 0 ||
        cli_input(a, "kv_indices", CLI_AS_STORED, 1, &idx, &p2) != 0 ||
        cli_input(a, "full_kv_num_blocks", CLI_AS_STORED, 0, &fnum, &p3) != 0 ||
        cli_input(a, "full_kv_indices", CLI_AS_STORED, 0, &fidx, &p4) != 0)
        return 2;
    /* the listed blocks are attended fully: no mask_mod (noop) on the partial ones */
    st = nsa_block_mask_from_kv_blocks(cli_context(a), &num, &idx, p3 ? &fnum : NULL,
                                       p4 ? &fidx : NULL, NULL, q_block, kv_block, q_len, kv_len,
                                       out);
    return st == NSA_SUCCESS ? 0 : cli_op_error(a, st);
}

void flex_mods_free(flex_mods *m)
{
    nsa_mask_mod_free(m->mask);
    nsa_score_mod_free(m->score);
    memset(m, 0, sizeof(*m));
}
