/* Configuration loading: walks the TOML tree through the key table, fills a struct rt_config
 * with defaults and validated values, and reports every problem with file:line:col. */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "alloc.h"
#include "toml.h"

#define MAX_FILE_BYTES (16u << 20) /* a config bigger than this is a mistake, not a config */
#define ERRLEN 512

/* ---- Diagnostics ------------------------------------------------------------------------- */

void rt_diag_add(struct rt_diag *d, enum rt_diag_severity sev, const char *file, uint32_t line,
                 uint32_t col, const char *fmt, ...)
{
    if (d == NULL)
        return;
    if (d->len == d->cap) {
        d->cap = d->cap ? d->cap * 2 : 8;
        d->items = rt_realloc(d->items, d->cap * sizeof d->items[0]);
    }
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    d->items[d->len++] = (struct rt_diag_msg){
        .severity = sev,
        .file = file ? rt_strdup(file) : NULL,
        .line = line,
        .col = col,
        .msg = rt_strdup(msg),
    };
    if (sev == RT_DIAG_ERROR)
        d->nerrors++;
}

void rt_diag_format(const struct rt_diag *d, size_t i, char *out, size_t outlen)
{
    if (outlen == 0)
        return;
    out[0] = '\0';
    if (i >= d->len)
        return;
    const struct rt_diag_msg *m = &d->items[i];
    const char *w = m->severity == RT_DIAG_WARNING ? "warning: " : "";
    if (m->file && m->line)
        snprintf(out, outlen, "%s:%u:%u: %s%s", m->file, m->line, m->col, w, m->msg);
    else if (m->file)
        snprintf(out, outlen, "%s: %s%s", m->file, w, m->msg);
    else
        snprintf(out, outlen, "%s%s", w, m->msg);
}

void rt_diag_print(const struct rt_diag *d, FILE *out)
{
    char line[1400];
    for (size_t i = 0; i < d->len; i++) {
        rt_diag_format(d, i, line, sizeof line);
        fprintf(out, "%s\n", line);
    }
}

void rt_diag_free(struct rt_diag *d)
{
    for (size_t i = 0; i < d->len; i++) {
        rt_free(d->items[i].file);
        rt_free(d->items[i].msg);
    }
    rt_free(d->items);
    *d = (struct rt_diag){0};
}

/* ---- Field access through the key table --------------------------------------------------- */

static void *field(void *base, const struct rt_config_key *k)
{
    return (char *)base + k->offset;
}

static const void *cfield(const void *base, const struct rt_config_key *k)
{
    return (const char *)base + k->offset;
}

static bool is_string_type(const struct rt_config_key *k)
{
    return k->type == RT_CONFIG_STRING || k->type == RT_CONFIG_ENUM;
}

struct rt_config *rt_config_new_default(void)
{
    struct rt_config *c = rt_calloc(1, sizeof *c);
    for (size_t i = 0; i < rt_config_nkeys; i++) {
        const struct rt_config_key *k = &rt_config_keys[i];
        void *f = field(c, k);
        switch (k->type) {
        case RT_CONFIG_INT: *(int64_t *)f = (int64_t)k->def; break;
        case RT_CONFIG_FLOAT:
        case RT_CONFIG_DURATION: *(double *)f = k->def; break;
        case RT_CONFIG_BOOL: *(bool *)f = k->def != 0; break;
        case RT_CONFIG_STRING:
        case RT_CONFIG_ENUM: *(char **)f = rt_strdup(k->def_str ? k->def_str : ""); break;
        }
    }
    return c;
}

void rt_server_conf_clear(struct rt_server_conf *s)
{
    if (s == NULL)
        return;
    rt_free(s->url);
    rt_free(s->scheme);
    rt_free(s->host);
    rt_free(s->base_path);
    for (size_t i = 0; i < s->nmodels; i++)
        rt_free(s->models[i]);
    rt_free(s->models);
    rt_free(s->api_key);
    rt_free(s->name);
    *s = (struct rt_server_conf){0};
}

/* A server entry before its keys are read: the defaults the server key table documents. */
static void server_defaults(struct rt_server_conf *s)
{
    *s = (struct rt_server_conf){0};
    for (size_t i = 0; i < rt_config_nserver_keys; i++) {
        const struct rt_config_key *k = &rt_config_server_keys[i];
        if (strcmp(k->name, "max_concurrent_requests") == 0)
            s->max_concurrent_requests = (int)k->def;
        else if (strcmp(k->name, "weight") == 0)
            s->weight = k->def;
    }
}

static char *dup_or_null(const char *s)
{
    return s ? rt_strdup(s) : NULL;
}

static void server_copy(struct rt_server_conf *dst, const struct rt_server_conf *src)
{
    *dst = *src;
    dst->url = dup_or_null(src->url);
    dst->scheme = dup_or_null(src->scheme);
    dst->host = dup_or_null(src->host);
    dst->base_path = dup_or_null(src->base_path);
    dst->api_key = dup_or_null(src->api_key);
    dst->name = dup_or_null(src->name);
    dst->models = NULL;
    if (src->nmodels) {
        dst->models = rt_calloc(src->nmodels, sizeof dst->models[0]);
        for (size_t i = 0; i < src->nmodels; i++)
            dst->models[i] = rt_strdup(src->models[i]);
    }
}

void rt_config_free(struct rt_config *c)
{
    if (c == NULL)
        return;
    for (size_t i = 0; i < rt_config_nkeys; i++)
        if (is_string_type(&rt_config_keys[i]))
            rt_free(*(char **)field(c, &rt_config_keys[i]));
    for (size_t i = 0; i < c->nservers; i++)
        rt_server_conf_clear(&c->servers[i]);
    rt_free(c->servers);
    rt_free(c->path);
    rt_free(c);
}

struct rt_config *rt_config_clone(const struct rt_config *c)
{
    struct rt_config *n = rt_malloc(sizeof *n);
    *n = *c;
    for (size_t i = 0; i < rt_config_nkeys; i++)
        if (is_string_type(&rt_config_keys[i])) {
            char **f = field(n, &rt_config_keys[i]);
            *f = rt_strdup(*f);
        }
    n->path = dup_or_null(c->path);
    n->servers = NULL;
    if (c->nservers) {
        n->servers = rt_calloc(c->nservers, sizeof n->servers[0]);
        for (size_t i = 0; i < c->nservers; i++)
            server_copy(&n->servers[i], &c->servers[i]);
    }
    return n;
}

int rt_config_add_server(struct rt_config *c, const struct rt_server_conf *s, char *err,
                         size_t errlen)
{
    for (size_t i = 0; i < c->nservers; i++)
        if (strcmp(c->servers[i].url, s->url) == 0) {
            snprintf(err, errlen, "server %s is already configured", s->url);
            return -1;
        }
    c->servers = rt_realloc(c->servers, (c->nservers + 1) * sizeof c->servers[0]);
    server_copy(&c->servers[c->nservers++], s);
    return 0;
}

void rt_config_set_path(struct rt_config *c, const char *path)
{
    rt_free(c->path);
    c->path = dup_or_null(path);
    if (path && c->admin.state_file[0] == '\0') {
        size_t n = strlen(path) + sizeof ".state.json";
        char *s = rt_malloc(n);
        snprintf(s, n, "%s.state.json", path);
        rt_free(c->admin.state_file);
        c->admin.state_file = s;
    }
}

/* ---- Values: one candidate type shared by TOML values and environment/flag text ------------ */

/* Numbers print the shortest way that reads back the same. */
static void fmt_num(char *out, size_t n, double v)
{
    if (v == floor(v) && fabs(v) < 1e15)
        snprintf(out, n, "%.0f", v);
    else
        snprintf(out, n, "%g", v);
}

/* "an integer between 1 and 65535", "one of \"DEBUG\", \"INFO\"", ... */
static void expected(const struct rt_config_key *k, char *out, size_t n)
{
    char lo[32], hi[32];
    fmt_num(lo, sizeof lo, k->min);
    fmt_num(hi, sizeof hi, k->max);
    switch (k->type) {
    case RT_CONFIG_INT: snprintf(out, n, "an integer between %s and %s", lo, hi); break;
    case RT_CONFIG_FLOAT:
        if (k->min_exclusive)
            snprintf(out, n, "a number > %s and <= %s", lo, hi);
        else
            snprintf(out, n, "a number between %s and %s", lo, hi);
        break;
    case RT_CONFIG_DURATION:
        snprintf(out, n, "a duration in seconds (integer or float) between %s and %s", lo, hi);
        break;
    case RT_CONFIG_BOOL: snprintf(out, n, "true or false"); break;
    case RT_CONFIG_STRING: snprintf(out, n, k->min >= 1 ? "a non-empty string" : "a string"); break;
    case RT_CONFIG_ENUM: {
        size_t used = (size_t)snprintf(out, n, "one of");
        for (size_t i = 0; k->choices[i] && used < n; i++)
            used += (size_t)snprintf(out + used, n - used, "%s \"%s\"", i ? "," : "",
                                     k->choices[i]);
        break;
    }
    }
}

/* What a TOML value is, for "got ..." in messages: string "3", integer 7, an array. */
static void describe(const struct rt_toml_value *v, char *out, size_t n)
{
    switch (v->type) {
    case RT_TOML_STRING:
        snprintf(out, n, "string \"%.60s%s\"", v->u.str.ptr, v->u.str.len > 60 ? "..." : "");
        break;
    case RT_TOML_INTEGER: snprintf(out, n, "integer %lld", (long long)v->u.i); break;
    case RT_TOML_FLOAT: snprintf(out, n, "float %g", v->u.f); break;
    case RT_TOML_BOOL: snprintf(out, n, "bool %s", v->u.b ? "true" : "false"); break;
    case RT_TOML_ARRAY: snprintf(out, n, "an array"); break;
    case RT_TOML_TABLE: snprintf(out, n, "a table"); break;
    default: snprintf(out, n, "%s %.40s", rt_toml_type_name(v->type), v->u.str.ptr); break;
    }
}

enum cand_kind { CAND_INT = 1, CAND_FLOAT, CAND_BOOL, CAND_STRING };

struct cand {
    enum cand_kind kind;
    int64_t i;
    double f;
    bool b;
    const char *s;
    char shown[128]; /* how the value was written, for messages */
};

/* Checks <v> against key <k> and stores it in the struct at <base>. Returns 0, or -1 with a
 * message (without position) in <err>. <label> names the key in messages. */
static int store(void *base, const struct rt_config_key *k, const char *label,
                 const struct cand *v, char *err, size_t errlen)
{
    char exp[256], lo[32], hi[32];
    expected(k, exp, sizeof exp);
    fmt_num(lo, sizeof lo, k->min);
    fmt_num(hi, sizeof hi, k->max);
    void *f = field(base, k);
    double num;
    switch (k->type) {
    case RT_CONFIG_INT:
        if (v->kind != CAND_INT)
            goto wrong_type;
        num = (double)v->i;
        if (num < k->min || num > k->max)
            goto out_of_bounds;
        *(int64_t *)f = v->i;
        return 0;
    case RT_CONFIG_FLOAT:
    case RT_CONFIG_DURATION:
        if (v->kind == CAND_INT)
            num = (double)v->i;
        else if (v->kind == CAND_FLOAT)
            num = v->f;
        else
            goto wrong_type;
        if (!isfinite(num))
            goto wrong_type;
        if (num < k->min || (k->min_exclusive && num == k->min) || num > k->max)
            goto out_of_bounds;
        *(double *)f = num;
        return 0;
    case RT_CONFIG_BOOL:
        if (v->kind != CAND_BOOL)
            goto wrong_type;
        *(bool *)f = v->b;
        return 0;
    case RT_CONFIG_STRING:
        if (v->kind != CAND_STRING)
            goto wrong_type;
        if (k->min >= 1 && v->s[0] == '\0') {
            snprintf(err, errlen, "%s must not be empty", label);
            return -1;
        }
        rt_free(*(char **)f);
        *(char **)f = rt_strdup(v->s);
        return 0;
    case RT_CONFIG_ENUM:
        if (v->kind != CAND_STRING)
            goto wrong_type;
        for (size_t i = 0; k->choices[i]; i++)
            if (strcasecmp(k->choices[i], v->s) == 0) {
                rt_free(*(char **)f);
                *(char **)f = rt_strdup(k->choices[i]);
                return 0;
            }
        snprintf(err, errlen, "%s must be %s, got %s", label, exp, v->shown);
        return -1;
    }
wrong_type:
    snprintf(err, errlen, "%s must be %s, got %s", label, exp, v->shown);
    return -1;
out_of_bounds:
    if (v->kind == CAND_INT)
        snprintf(exp, sizeof exp, "%lld", (long long)v->i);
    else
        snprintf(exp, sizeof exp, "%g", v->f);
    if (k->min_exclusive)
        snprintf(err, errlen, "%s must be > %s and <= %s, got %s", label, lo, hi, exp);
    else
        snprintf(err, errlen, "%s must be between %s and %s, got %s", label, lo, hi, exp);
    return -1;
}

static int cand_from_toml(const struct rt_toml_value *v, struct cand *c)
{
    *c = (struct cand){0};
    describe(v, c->shown, sizeof c->shown);
    switch (v->type) {
    case RT_TOML_INTEGER: c->kind = CAND_INT; c->i = v->u.i; break;
    case RT_TOML_FLOAT: c->kind = CAND_FLOAT; c->f = v->u.f; break;
    case RT_TOML_BOOL: c->kind = CAND_BOOL; c->b = v->u.b; break;
    case RT_TOML_STRING: c->kind = CAND_STRING; c->s = v->u.str.ptr; break;
    default: return -1; /* kind 0 fails every type check with "got <shown>" */
    }
    return 0;
}

/* Interprets <text> as the type key <k> wants (environment variables and flags are text). */
static void cand_from_text(const struct rt_config_key *k, const char *text, struct cand *c)
{
    *c = (struct cand){0};
    snprintf(c->shown, sizeof c->shown, "\"%.100s\"", text);
    char *end = NULL;
    switch (k->type) {
    case RT_CONFIG_INT: {
        errno = 0;
        long long v = strtoll(text, &end, 10);
        if (text[0] != '\0' && *end == '\0' && errno == 0) {
            c->kind = CAND_INT;
            c->i = v;
        }
        break;
    }
    case RT_CONFIG_FLOAT:
    case RT_CONFIG_DURATION: {
        errno = 0;
        double v = strtod(text, &end);
        if (text[0] != '\0' && *end == '\0' && errno == 0) {
            c->kind = CAND_FLOAT;
            c->f = v;
        }
        break;
    }
    case RT_CONFIG_BOOL: {
        static const char *const yes[] = {"true", "1", "yes", "on", NULL};
        static const char *const no[] = {"false", "0", "no", "off", NULL};
        for (size_t i = 0; yes[i]; i++) {
            if (strcasecmp(text, yes[i]) == 0) {
                c->kind = CAND_BOOL;
                c->b = true;
            }
            if (strcasecmp(text, no[i]) == 0) {
                c->kind = CAND_BOOL;
                c->b = false;
            }
        }
        break;
    }
    case RT_CONFIG_STRING:
    case RT_CONFIG_ENUM:
        c->kind = CAND_STRING;
        c->s = text;
        break;
    }
}

int rt_config_set_text(struct rt_config *c, const char *name, const char *text, char *err,
                       size_t errlen)
{
    return rt_config_set_text_as(c, name, name, text, err, errlen);
}

int rt_config_set_text_as(struct rt_config *c, const char *name, const char *label,
                          const char *text, char *err, size_t errlen)
{
    const struct rt_config_key *k = rt_config_key_find(name);
    if (k == NULL) {
        snprintf(err, errlen, "unknown key '%s'", name);
        return -1;
    }
    struct cand v;
    cand_from_text(k, text, &v);
    return store(c, k, label, &v, err, errlen);
}

/* ---- Suggestions for unknown keys --------------------------------------------------------- */

/* Optimal string alignment distance (Levenshtein plus adjacent transposition), ASCII
 * case-insensitive; capped inputs keep it O(64 x 64). */
static size_t distance(const char *a, const char *b)
{
    size_t n = strlen(a), m = strlen(b);
    if (n > 63 || m > 63)
        return 99;
    size_t d[64][64];
    for (size_t i = 0; i <= n; i++)
        d[i][0] = i;
    for (size_t j = 0; j <= m; j++)
        d[0][j] = j;
    for (size_t i = 1; i <= n; i++)
        for (size_t j = 1; j <= m; j++) {
            int ca = a[i - 1] | 0x20, cb = b[j - 1] | 0x20;
            size_t cost = ca == cb ? 0 : 1;
            size_t best = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < best)
                best = d[i][j - 1] + 1;
            if (d[i - 1][j - 1] + cost < best)
                best = d[i - 1][j - 1] + cost;
            if (i > 1 && j > 1 && (a[i - 1] | 0x20) == (b[j - 2] | 0x20) &&
                (a[i - 2] | 0x20) == (b[j - 1] | 0x20) && d[i - 2][j - 2] + 1 < best)
                best = d[i - 2][j - 2] + 1;
            d[i][j] = best;
        }
    return d[n][m];
}

size_t rt_config_edit_distance(const char *a, const char *b)
{
    return distance(a, b);
}

/* Whether <cand> is close enough to <word> to suggest it. */
static bool close_enough(const char *word, const char *cand, size_t *best)
{
    size_t len = strlen(cand);
    size_t limit = len <= 4 ? 1 : len <= 8 ? 2 : 3;
    size_t dist = distance(word, cand);
    if (dist <= limit && dist < *best) {
        *best = dist;
        return true;
    }
    return false;
}

/* The key of table <tab> closest to <word>, or NULL. <out> receives the bare key name. */
static const char *suggest_in_table(const char *tab, const char *word, char *out, size_t n)
{
    size_t best = 99, tl = strlen(tab);
    const char *found = NULL;
    if (strcmp(tab, "servers") == 0) {
        if (close_enough(word, "servers", &best))
            found = "servers";
    } else {
        for (size_t i = 0; i < rt_config_nkeys; i++) {
            const char *name = rt_config_keys[i].name;
            if (strncmp(name, tab, tl) == 0 && name[tl] == '.' && close_enough(word, name + tl + 1, &best))
                found = name + tl + 1;
        }
    }
    if (found)
        snprintf(out, n, "%s", found);
    return found;
}

/* A table other than <skip> that has a key spelled exactly <word>, or NULL. */
static const char *table_having(const char *word, const char *skip)
{
    static char tab[32];
    for (size_t i = 0; i < rt_config_nkeys; i++) {
        const char *name = rt_config_keys[i].name, *dot = strchr(name, '.');
        size_t tl = (size_t)(dot - name);
        if (strcmp(dot + 1, word) == 0 && (skip == NULL || strlen(skip) != tl ||
                                           strncmp(name, skip, tl) != 0)) {
            snprintf(tab, sizeof tab, "%.*s", (int)tl, name);
            return tab;
        }
    }
    return NULL;
}

static bool known_table(const char *name)
{
    for (size_t i = 0; rt_config_tables[i]; i++)
        if (strcmp(rt_config_tables[i], name) == 0)
            return true;
    return false;
}

/* ---- Walking the TOML tree ----------------------------------------------------------------- */

struct walk {
    const char *file; /* for messages */
    struct rt_config *cfg;
    struct rt_diag *diags;
};

#define ERR_AT(w, pos, ...) \
    rt_diag_add((w)->diags, RT_DIAG_ERROR, (w)->file, (pos).line, (pos).col, __VA_ARGS__)

static void unknown_key(struct walk *w, const char *tab, const struct rt_toml_kv *kv)
{
    char sug[64];
    const char *other;
    if (suggest_in_table(tab, kv->key, sug, sizeof sug))
        ERR_AT(w, kv->key_pos, "unknown key '%s' in [%s]; did you mean '%s'?", kv->key, tab, sug);
    else if ((other = table_having(kv->key, tab)) != NULL)
        ERR_AT(w, kv->key_pos, "unknown key '%s' in [%s]; did you mean '%s' in [%s]?", kv->key,
               tab, kv->key, other);
    else
        ERR_AT(w, kv->key_pos, "unknown key '%s' in [%s]", kv->key, tab);
}

static void walk_table(struct walk *w, const char *tab, const struct rt_toml_value *t)
{
    for (size_t i = 0; i < t->u.tab.len; i++) {
        const struct rt_toml_kv *kv = &t->u.tab.items[i];
        char name[128], err[ERRLEN];
        snprintf(name, sizeof name, "%s.%s", tab, kv->key);
        const struct rt_config_key *k = rt_config_key_find(name);
        if (k == NULL || strlen(kv->key) != kv->key_len) {
            unknown_key(w, tab, kv);
            continue;
        }
        struct cand v;
        cand_from_toml(kv->val, &v);
        if (store(w->cfg, k, name, &v, err, sizeof err) != 0)
            ERR_AT(w, kv->val->pos, "%s", err);
    }
}

/* Parses one server entry (an inline table, or a string taken as its URL) into <s>. Returns 0;
 * 1 after reporting problems when the URL itself is valid (s->url set, the caller clears <s>);
 * -1 after reporting problems when it is not (<s> cleared). */
static int parse_server(struct walk *w, const struct rt_toml_value *e, struct rt_server_conf *s,
                        struct rt_toml_pos *url_pos)
{
    char err[ERRLEN], got[128];
    size_t before = w->diags ? w->diags->nerrors : 0;
    bool bad = false;
    server_defaults(s);
    const struct rt_toml_value *url = NULL;
    if (e->type == RT_TOML_STRING) {
        url = e;
    } else if (e->type != RT_TOML_TABLE) {
        describe(e, got, sizeof got);
        ERR_AT(w, e->pos, "a server entry must be a table like { url = \"http://host:port\" } "
                          "or a URL string, got %s", got);
        return -1;
    } else {
        for (size_t i = 0; i < e->u.tab.len; i++) {
            const struct rt_toml_kv *kv = &e->u.tab.items[i];
            const struct rt_toml_value *v = kv->val;
            const struct rt_config_key *k = NULL;
            for (size_t j = 0; j < rt_config_nserver_keys; j++)
                if (strcmp(rt_config_server_keys[j].name, kv->key) == 0)
                    k = &rt_config_server_keys[j];
            if (k == NULL) {
                size_t best = 99;
                const char *sug = NULL;
                for (size_t j = 0; j < rt_config_nserver_keys; j++)
                    if (close_enough(kv->key, rt_config_server_keys[j].name, &best))
                        sug = rt_config_server_keys[j].name;
                if (sug)
                    ERR_AT(w, kv->key_pos, "unknown key '%s' in server entry; did you mean '%s'?",
                           kv->key, sug);
                else
                    ERR_AT(w, kv->key_pos, "unknown key '%s' in server entry (known: url, "
                                           "max_concurrent_requests, models, weight, api_key, name)",
                           kv->key);
                continue;
            }
            if (strcmp(k->name, "url") == 0) {
                url = v;
                continue;
            }
            if (strcmp(k->name, "models") == 0) {
                if (v->type != RT_TOML_ARRAY) {
                    describe(v, got, sizeof got);
                    ERR_AT(w, v->pos, "models must be an array of model ids, got %s", got);
                    continue;
                }
                s->models = rt_calloc(v->u.arr.len, sizeof s->models[0]);
                for (size_t j = 0; j < v->u.arr.len; j++) {
                    const struct rt_toml_value *m = v->u.arr.items[j];
                    if (m->type != RT_TOML_STRING || m->u.str.len == 0 ||
                        strlen(m->u.str.ptr) != m->u.str.len) {
                        describe(m, got, sizeof got);
                        ERR_AT(w, m->pos, "models must hold non-empty strings, got %s", got);
                        continue;
                    }
                    s->models[s->nmodels++] = rt_strdup(m->u.str.ptr);
                }
                continue;
            }
            /* The scalar keys go through the same checks as table keys, into a scratch
             * struct with the field types the key table describes. */
            struct cand c;
            cand_from_toml(v, &c);
            if (strcmp(k->name, "max_concurrent_requests") == 0) {
                struct { int64_t n; } tmp;
                struct rt_config_key kk = *k;
                kk.offset = 0;
                if (store(&tmp, &kk, k->name, &c, err, sizeof err) == 0)
                    s->max_concurrent_requests = (int)tmp.n;
                else
                    ERR_AT(w, v->pos, "%s", err);
            } else if (strcmp(k->name, "weight") == 0) {
                struct rt_config_key kk = *k;
                if (store(s, &kk, k->name, &c, err, sizeof err) != 0)
                    ERR_AT(w, v->pos, "%s", err);
            } else {
                /* api_key, name: strings; an empty api_key means none. */
                if (v->type != RT_TOML_STRING || strlen(v->u.str.ptr) != v->u.str.len) {
                    describe(v, got, sizeof got);
                    ERR_AT(w, v->pos, "%s must be a string, got %s", k->name, got);
                    continue;
                }
                if (strcmp(k->name, "name") == 0 && v->u.str.len == 0) {
                    ERR_AT(w, v->pos, "name must not be empty (leave it out for host:port)");
                    continue;
                }
                char **f = field(s, k);
                rt_free(*f);
                *f = v->u.str.len ? rt_strdup(v->u.str.ptr) : NULL;
            }
        }
    }
    if (url == NULL) {
        ERR_AT(w, e->pos, "server entry has no 'url' (e.g. { url = \"http://gpu-1:8000\" })");
        bad = true;
    } else if (url->type != RT_TOML_STRING) {
        describe(url, got, sizeof got);
        ERR_AT(w, url->pos, "url must be a string like \"http://host:port\", got %s", got);
        bad = true;
    } else if (rt_server_conf_parse_url(url->u.str.ptr, s, err, sizeof err) != 0) {
        ERR_AT(w, url->pos, "%s", err);
        bad = true;
    } else {
        *url_pos = url->pos;
        if (s->name == NULL) {
            char nm[300];
            snprintf(nm, sizeof nm, strchr(s->host, ':') ? "[%s]:%d" : "%s:%d", s->host, s->port);
            s->name = rt_strdup(nm);
        }
    }
    if (bad) {
        rt_server_conf_clear(s);
        return -1;
    }
    /* Other problems: the URL is still good for finding duplicates; the caller drops it. */
    return w->diags && w->diags->nerrors > before ? 1 : 0;
}

static void walk_servers(struct walk *w, const struct rt_toml_value *list)
{
    if (list->type != RT_TOML_ARRAY) {
        char got[128];
        describe(list, got, sizeof got);
        ERR_AT(w, list->pos, "servers must be an array of server entries, e.g. servers = "
                             "[ { url = \"http://gpu-1:8000\" } ], got %s", got);
        return;
    }
    size_t n = list->u.arr.len, nseen = 0;
    struct rt_config *c = w->cfg;
    c->servers = rt_calloc(n, sizeof c->servers[0]);
    /* Every valid URL seen, kept entries or not, so a duplicate is reported even when the
     * first entry had other problems. */
    char **seen = rt_calloc(n, sizeof seen[0]);
    struct rt_toml_pos *seen_pos = rt_calloc(n, sizeof seen_pos[0]);
    for (size_t i = 0; i < n; i++) {
        struct rt_server_conf s;
        struct rt_toml_pos pos = {0, 0};
        int prc = parse_server(w, list->u.arr.items[i], &s, &pos);
        if (prc < 0)
            continue;
        bool dup = false;
        for (size_t j = 0; j < nseen && !dup; j++)
            if (strcmp(seen[j], s.url) == 0) {
                ERR_AT(w, pos, "duplicate server URL \"%s\" (first at %s:%u:%u); servers are "
                               "matched by URL, so each may appear once", s.url, w->file,
                       seen_pos[j].line, seen_pos[j].col);
                dup = true;
            }
        if (!dup) {
            seen[nseen] = rt_strdup(s.url);
            seen_pos[nseen++] = pos;
        }
        if (dup || prc != 0) {
            rt_server_conf_clear(&s);
            continue;
        }
        c->servers[c->nservers++] = s;
    }
    for (size_t j = 0; j < nseen; j++)
        rt_free(seen[j]);
    rt_free(seen);
    rt_free(seen_pos);
}

static void walk_root(struct walk *w, const struct rt_toml_value *root)
{
    for (size_t i = 0; i < root->u.tab.len; i++) {
        const struct rt_toml_kv *kv = &root->u.tab.items[i];
        const struct rt_toml_value *v = kv->val;
        char got[128], sug[64];
        if (strcmp(kv->key, "servers") == 0 && v->type == RT_TOML_ARRAY) {
            walk_servers(w, v); /* [[servers]] tables, or servers = [...] at the top */
            continue;
        }
        if (!known_table(kv->key) || strlen(kv->key) != kv->key_len) {
            size_t best = 99;
            const char *tsug = NULL, *other;
            for (size_t t = 0; rt_config_tables[t]; t++)
                if (close_enough(kv->key, rt_config_tables[t], &best))
                    tsug = rt_config_tables[t];
            if (v->type == RT_TOML_TABLE && tsug)
                ERR_AT(w, kv->key_pos, "unknown table [%s]; did you mean [%s]?", kv->key, tsug);
            else if (v->type == RT_TOML_TABLE)
                ERR_AT(w, kv->key_pos, "unknown table [%s]", kv->key);
            else if ((other = table_having(kv->key, NULL)) != NULL)
                ERR_AT(w, kv->key_pos, "key '%s' must be inside a table; did you mean '%s' in "
                                       "[%s]?", kv->key, kv->key, other);
            else
                ERR_AT(w, kv->key_pos, "unknown key '%s' at the top level (keys belong in "
                                       "tables such as [config])", kv->key);
            continue;
        }
        if (v->type != RT_TOML_TABLE) {
            describe(v, got, sizeof got);
            ERR_AT(w, kv->key_pos, "'%s' must be a table ([%s]), got %s", kv->key, kv->key, got);
            continue;
        }
        if (strcmp(kv->key, "servers") != 0) {
            walk_table(w, kv->key, v);
            continue;
        }
        for (size_t j = 0; j < v->u.tab.len; j++) {
            const struct rt_toml_kv *skv = &v->u.tab.items[j];
            if (strcmp(skv->key, "servers") == 0)
                walk_servers(w, skv->val);
            else if (suggest_in_table("servers", skv->key, sug, sizeof sug))
                ERR_AT(w, skv->key_pos, "unknown key '%s' in [servers]; did you mean '%s'?",
                       skv->key, sug);
            else
                ERR_AT(w, skv->key_pos, "unknown key '%s' in [servers]; the table holds one "
                                        "key, servers = [ { url = \"...\" }, ... ]", skv->key);
        }
    }
}

/* Messages found while walking come out in key order; readers expect them in line order. A
 * stable insertion sort keeps equal positions in the order found. */
static void sort_by_position(struct rt_diag *d, size_t first)
{
    for (size_t i = first + 1; i < d->len; i++) {
        struct rt_diag_msg m = d->items[i];
        size_t j = i;
        while (j > first && (d->items[j - 1].line > m.line ||
                             (d->items[j - 1].line == m.line && d->items[j - 1].col > m.col))) {
            d->items[j] = d->items[j - 1];
            j--;
        }
        d->items[j] = m;
    }
}

int rt_config_load_string(const char *text, size_t len, const char *name, struct rt_config **out,
                          struct rt_diag *diags)
{
    *out = NULL;
    struct rt_diag local = {0};
    struct rt_diag *d = diags ? diags : &local;
    size_t before = d->nerrors;
    struct rt_toml_value *root = NULL;
    struct rt_toml_error terr;
    if (rt_toml_parse(text, len, &root, &terr) != 0) {
        rt_diag_add(d, RT_DIAG_ERROR, name, terr.pos.line, terr.pos.col, "%s", terr.msg);
        rt_diag_free(&local);
        return -1;
    }
    struct walk w = {.file = name, .cfg = rt_config_new_default(), .diags = d};
    size_t first = d->len;
    walk_root(&w, root);
    sort_by_position(d, first);
    rt_toml_free(root);
    if (d->nerrors > before) {
        rt_config_free(w.cfg);
        rt_diag_free(&local);
        return -1;
    }
    rt_diag_free(&local);
    *out = w.cfg;
    return 0;
}

int rt_config_load_file(const char *path, struct rt_config **out, struct rt_diag *diags)
{
    *out = NULL;
    int rc = -1;
    char *text = NULL;
    FILE *f = fopen(path, "rb");
    struct stat st;
    if (f == NULL) {
        rt_diag_add(diags, RT_DIAG_ERROR, path, 0, 0, "cannot open config file: %s",
                    strerror(errno));
        goto out;
    }
    if (fstat(fileno(f), &st) == -1 || !S_ISREG(st.st_mode)) {
        rt_diag_add(diags, RT_DIAG_ERROR, path, 0, 0, "cannot read config file: %s",
                    S_ISDIR(st.st_mode) ? "it is a directory" : strerror(errno));
        goto out;
    }
    if (st.st_size > (off_t)MAX_FILE_BYTES) {
        rt_diag_add(diags, RT_DIAG_ERROR, path, 0, 0, "config file is %lld bytes; the limit is "
                    "%u", (long long)st.st_size, MAX_FILE_BYTES);
        goto out;
    }
    size_t size = (size_t)st.st_size;
    text = rt_malloc(size + 1);
    size_t got = fread(text, 1, size, f);
    if (got != size || ferror(f)) {
        rt_diag_add(diags, RT_DIAG_ERROR, path, 0, 0, "cannot read config file: %s",
                    ferror(f) ? strerror(errno) : "it changed while being read");
        goto out;
    }
    text[size] = '\0';
    if (rt_config_load_string(text, size, path, out, diags) != 0)
        goto out;
    rt_config_set_path(*out, path);
    (*out)->file_loaded = true;
    rc = 0;
out:
    if (f)
        fclose(f);
    rt_free(text);
    return rc;
}

/* ---- URLs ---------------------------------------------------------------------------------- */

static bool host_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '.' || c == '_';
}

int rt_server_conf_parse_url(const char *url, struct rt_server_conf *out, char *err, size_t errlen)
{
    const char *p = strstr(url, "://");
    char host[256];
    int port, def_port;
    if (p == NULL) {
        snprintf(err, errlen, "url must start with http://, got \"%.200s\"", url);
        return -1;
    }
    for (const char *q = url; *q; q++)
        if ((unsigned char)*q <= ' ' || *q == 0x7f) {
            snprintf(err, errlen, "url must not contain spaces or control characters, got "
                                  "\"%.200s\"", url);
            return -1;
        }
    size_t slen = (size_t)(p - url);
    bool https = false;
    if (slen == 4 && strncasecmp(url, "http", 4) == 0) {
        def_port = 80;
    } else if (slen == 5 && strncasecmp(url, "https", 5) == 0) {
        def_port = 443;
        https = true;
    } else {
        snprintf(err, errlen, "unsupported scheme '%.*s' in url \"%.200s\"; use http://",
                 (int)(slen > 20 ? 20 : slen), url, url);
        return -1;
    }
    const char *a = p + 3;
    size_t alen = strcspn(a, "/?#");
    const char *rest = a + alen;
    if (memchr(a, '@', alen)) {
        snprintf(err, errlen, "user:password@ in a server url is not supported, got \"%.200s\"; "
                              "use api_key for a bearer token", url);
        return -1;
    }
    const char *h = a, *hend;
    const char *colon;
    if (*h == '[') {
        hend = memchr(h, ']', alen);
        if (hend == NULL) {
            snprintf(err, errlen, "url has an unterminated [IPv6 address]: \"%.200s\"", url);
            return -1;
        }
        for (const char *q = h + 1; q < hend; q++)
            if (!((*q >= '0' && *q <= '9') || ((*q | 0x20) >= 'a' && (*q | 0x20) <= 'f') ||
                  *q == ':' || *q == '.')) {
                snprintf(err, errlen, "url has an invalid IPv6 address: \"%.200s\"", url);
                return -1;
            }
        snprintf(host, sizeof host, "%.*s", (int)(hend - h - 1), h + 1);
        colon = hend + 1 < a + alen ? hend + 1 : NULL;
        if (colon && *colon != ':') {
            snprintf(err, errlen, "url has junk after the IPv6 address: \"%.200s\"", url);
            return -1;
        }
    } else {
        colon = memchr(h, ':', alen);
        hend = colon ? colon : a + alen;
        if ((size_t)(hend - h) >= sizeof host) {
            snprintf(err, errlen, "url host is longer than %zu bytes", sizeof host - 1);
            return -1;
        }
        for (const char *q = h; q < hend; q++)
            if (!host_char(*q)) {
                snprintf(err, errlen, "url host '%.*s' has an invalid character '%c'",
                         (int)(hend - h), h, *q);
                return -1;
            }
        snprintf(host, sizeof host, "%.*s", (int)(hend - h), h);
    }
    if (host[0] == '\0') {
        snprintf(err, errlen, "url has no host: \"%.200s\"", url);
        return -1;
    }
    port = def_port;
    if (colon) {
        const char *ps = colon + 1, *pe = a + alen;
        long v = 0;
        if (ps == pe || pe - ps > 5) {
            snprintf(err, errlen, "url port must be a number between 1 and 65535, got '%.*s'",
                     (int)(pe - ps > 20 ? 20 : pe - ps), ps);
            return -1;
        }
        for (const char *q = ps; q < pe; q++) {
            if (*q < '0' || *q > '9') {
                snprintf(err, errlen, "url port must be a number between 1 and 65535, got "
                                      "'%.*s'", (int)(pe - ps), ps);
                return -1;
            }
            v = v * 10 + (*q - '0');
        }
        if (v < 1 || v > 65535) {
            snprintf(err, errlen, "url port must be between 1 and 65535, got %ld", v);
            return -1;
        }
        port = (int)v;
    }
    if (strpbrk(rest, "?#")) {
        snprintf(err, errlen, "url must not have a query (?...) or fragment (#...), got "
                              "\"%.200s\"", url);
        return -1;
    }
    if (https) {
        snprintf(err, errlen, "https servers are not supported yet (\"%.200s\"); use http://",
                 url);
        return -1;
    }
    size_t plen = strlen(rest);
    while (plen > 0 && rest[plen - 1] == '/')
        plen--;
    for (char *q = host; *q; q++)
        if (*q >= 'A' && *q <= 'Z')
            *q = (char)(*q + 32);
    size_t n = strlen(host) + plen + 32;
    char *norm = rt_malloc(n);
    bool v6 = strchr(host, ':') != NULL;
    int used = snprintf(norm, n, "%s://%s%s%s", https ? "https" : "http", v6 ? "[" : "", host,
                        v6 ? "]" : "");
    if (port != def_port)
        used += snprintf(norm + used, n - (size_t)used, ":%d", port);
    snprintf(norm + used, n - (size_t)used, "%.*s", (int)plen, rest);
    rt_free(out->url);
    rt_free(out->scheme);
    rt_free(out->host);
    rt_free(out->base_path);
    out->url = norm;
    out->scheme = rt_strdup(https ? "https" : "http");
    out->host = rt_strdup(host);
    out->port = port;
    out->base_path = rt_strndup(rest, plen);
    return 0;
}

int rt_server_conf_from_spec(const char *spec, struct rt_server_conf *out, char *err,
                             size_t errlen)
{
    server_defaults(out);
    /* '=' cannot occur in a valid server URL (no query), so the last one splits off CAPACITY. */
    const char *eq = strrchr(spec, '=');
    char *url = rt_strndup(spec, eq ? (size_t)(eq - spec) : strlen(spec));
    int rc = -1;
    if (eq) {
        char *end = NULL;
        errno = 0;
        long v = strtol(eq + 1, &end, 10);
        if (eq[1] == '\0' || *end != '\0' || errno != 0 || v < 1 || v > 1000000) {
            snprintf(err, errlen, "capacity in \"%.200s\" must be an integer between 1 and "
                                  "1000000 (URL=CAPACITY), got \"%.40s\"", spec, eq + 1);
            goto out;
        }
        out->max_concurrent_requests = (int)v;
    }
    if (rt_server_conf_parse_url(url, out, err, errlen) != 0)
        goto out;
    char nm[300];
    snprintf(nm, sizeof nm, strchr(out->host, ':') ? "[%s]:%d" : "%s:%d", out->host, out->port);
    out->name = rt_strdup(nm);
    rc = 0;
out:
    rt_free(url);
    if (rc != 0)
        rt_server_conf_clear(out);
    return rc;
}

/* ---- Reload support ------------------------------------------------------------------------ */

static void value_text(const struct rt_config *c, const struct rt_config_key *k, char *out,
                       size_t n)
{
    const void *f = cfield(c, k);
    switch (k->type) {
    case RT_CONFIG_INT: snprintf(out, n, "%lld", (long long)*(const int64_t *)f); break;
    case RT_CONFIG_FLOAT:
    case RT_CONFIG_DURATION: fmt_num(out, n, *(const double *)f); break;
    case RT_CONFIG_BOOL: snprintf(out, n, "%s", *(const bool *)f ? "true" : "false"); break;
    default: snprintf(out, n, "\"%.100s\"", *(char *const *)f); break;
    }
}

size_t rt_config_restart_needed(const struct rt_config *old, const struct rt_config *new_,
                                struct rt_diag *notes)
{
    size_t count = 0;
    for (size_t i = 0; i < rt_config_nkeys; i++) {
        const struct rt_config_key *k = &rt_config_keys[i];
        if (k->reloadable)
            continue;
        char a[128], b[128];
        value_text(old, k, a, sizeof a);
        value_text(new_, k, b, sizeof b);
        if (strcmp(a, b) == 0)
            continue;
        count++;
        rt_diag_add(notes, RT_DIAG_WARNING, new_->path, 0, 0,
                    "%s changed from %s to %s; it takes effect after a restart", k->name, a, b);
    }
    return count;
}
