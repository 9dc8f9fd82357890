/* A strict TOML 1.0 parser: document structure, tables and keys (scalars are in toml_scalar.c). */
#include "toml.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "toml_parse.h"

/* ---- errors and positions ---- */

struct rt_toml_pos rt_toml_pos_at(struct rt_toml_parser *p, size_t off)
{
    /* Offsets asked for mostly grow, so a cursor that only moves forward makes this linear overall;
     * a step back within the cursor's line (keys of a header) is answered in place, and only a step
     * back to an earlier line (an error at the start of a multi-line string) rescans. */
    if (off < p->pos_off && off >= p->pos_line_start)
        return (struct rt_toml_pos){p->pos_line, (uint32_t)(off - p->pos_line_start + 1)};
    if (off < p->pos_off) {
        p->pos_off = 0;
        p->pos_line = 1;
        p->pos_line_start = 0;
    }
    if (off > p->len)
        off = p->len;
    for (size_t i = p->pos_off; i < off; i++) {
        if (p->s[i] == '\n') {
            p->pos_line++;
            p->pos_line_start = i + 1;
        }
    }
    p->pos_off = off;
    size_t col = off - p->pos_line_start + 1;
    return (struct rt_toml_pos){p->pos_line, col > UINT32_MAX ? UINT32_MAX : (uint32_t)col};
}

int rt_toml_fail(struct rt_toml_parser *p, size_t off, const char *fmt, ...)
{
    if (p->failed)
        return -1;
    p->failed = true;
    p->err->pos = rt_toml_pos_at(p, off);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->err->msg, sizeof(p->err->msg), fmt, ap);
    va_end(ap);
    return -1;
}

/* Writes a key for an error message: printable ASCII as is, anything else as '?', cut when long. */
static const char *show_key(char *out, size_t outlen, const char *key, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len && n + 4 < outlen; i++) {
        unsigned char c = (unsigned char)key[i];
        out[n++] = (c >= 0x20 && c < 0x7f) || c >= 0x80 ? (char)c : '?';
    }
    if (n + 4 >= outlen && len > n) {
        memcpy(out + n, "...", 3);
        n += 3;
    }
    out[n] = '\0';
    return out;
}

/* ---- the tree ---- */

struct rt_toml_node *rt_toml_node_new(struct rt_toml_parser *p, enum rt_toml_type type, size_t off)
{
    struct rt_toml_node *n = rt_calloc(1, sizeof(*n));
    n->v.type = type;
    n->v.pos = rt_toml_pos_at(p, off);
    return n;
}

void rt_toml_free(struct rt_toml_value *v)
{
    if (!v)
        return;
    switch (v->type) {
    case RT_TOML_ARRAY:
        for (size_t i = 0; i < v->u.arr.len; i++)
            rt_toml_free(v->u.arr.items[i]);
        rt_free(v->u.arr.items);
        break;
    case RT_TOML_TABLE:
        for (size_t i = 0; i < v->u.tab.len; i++) {
            rt_free(v->u.tab.items[i].key);
            rt_toml_free(v->u.tab.items[i].val);
        }
        rt_free(v->u.tab.items);
        rt_free(((struct rt_toml_node *)v)->index);
        break;
    case RT_TOML_STRING:
    case RT_TOML_DATETIME:
    case RT_TOML_DATETIME_LOCAL:
    case RT_TOML_DATE_LOCAL:
    case RT_TOML_TIME_LOCAL:
        rt_free(v->u.str.ptr);
        break;
    default:
        break;
    }
    /* Every value the parser makes is the first member of a node, so this frees the node. */
    rt_free(v);
}

static void array_push(struct rt_toml_node *arr, struct rt_toml_node *item)
{
    struct rt_toml_value *a = &arr->v;
    if (a->u.arr.len == arr->cap) {
        size_t cap = arr->cap ? arr->cap * 2 : 4;
        a->u.arr.items = rt_realloc(a->u.arr.items, cap * sizeof(*a->u.arr.items));
        arr->cap = cap;
    }
    a->u.arr.items[a->u.arr.len++] = &item->v;
}

/* Tables smaller than this are searched linearly. */
#define INDEX_MIN 16

static uint32_t hash_key(const char *key, size_t len)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)key[i]) * 16777619u;
    return h;
}

static void index_add(struct rt_toml_node *tab, size_t item)
{
    const struct rt_toml_kv *kv = &tab->v.u.tab.items[item];
    size_t mask = tab->index_cap - 1, slot = hash_key(kv->key, kv->key_len) & mask;
    while (tab->index[slot])
        slot = (slot + 1) & mask;
    tab->index[slot] = (uint32_t)(item + 1);
}

/* Keeps the index at most half full; called after an item is appended. */
static void index_update(struct rt_toml_node *tab)
{
    size_t len = tab->v.u.tab.len;
    if (len < INDEX_MIN)
        return;
    if (len >= UINT32_MAX) { /* past what a slot can name: search linearly */
        rt_free(tab->index);
        tab->index = NULL;
        tab->index_cap = 0;
        return;
    }
    if (len * 2 <= tab->index_cap) {
        index_add(tab, len - 1);
        return;
    }
    rt_free(tab->index);
    tab->index_cap = tab->index_cap ? tab->index_cap * 2 : 4 * INDEX_MIN;
    tab->index = rt_calloc(tab->index_cap, sizeof(*tab->index));
    for (size_t i = 0; i < len; i++)
        index_add(tab, i);
}

static struct rt_toml_kv *find(struct rt_toml_value *tab, const char *key, size_t len)
{
    struct rt_toml_node *n = (struct rt_toml_node *)tab;
    if (n->index) {
        size_t mask = n->index_cap - 1, slot = hash_key(key, len) & mask;
        for (; n->index[slot]; slot = (slot + 1) & mask) {
            struct rt_toml_kv *kv = &tab->u.tab.items[n->index[slot] - 1];
            if (kv->key_len == len && memcmp(kv->key, key, len) == 0)
                return kv;
        }
        return NULL;
    }
    for (size_t i = 0; i < tab->u.tab.len; i++) {
        struct rt_toml_kv *kv = &tab->u.tab.items[i];
        if (kv->key_len == len && memcmp(kv->key, key, len) == 0)
            return kv;
    }
    return NULL;
}

/* Adds <val> under a copy of key part <k> to table <tab>; the caller checked the key is new. */
static void insert(struct rt_toml_node *tab, const struct rt_toml_keypart *k,
                   struct rt_toml_node *val)
{
    struct rt_toml_value *t = &tab->v;
    if (t->u.tab.len == tab->cap) {
        size_t cap = tab->cap ? tab->cap * 2 : 4;
        t->u.tab.items = rt_realloc(t->u.tab.items, cap * sizeof(*t->u.tab.items));
        tab->cap = cap;
    }
    struct rt_toml_kv *kv = &t->u.tab.items[t->u.tab.len++];
    kv->key = rt_strndup(k->ptr, k->len);
    kv->key_len = k->len;
    kv->key_pos = k->pos;
    kv->val = &val->v;
    index_update(tab);
}

static struct rt_toml_node *node_of(struct rt_toml_value *v)
{
    return (struct rt_toml_node *)v;
}

/* ---- lexing helpers ---- */

static bool at_end(const struct rt_toml_parser *p)
{
    return p->i >= p->len;
}

static char peek(const struct rt_toml_parser *p, size_t ahead)
{
    return p->i + ahead < p->len ? p->s[p->i + ahead] : '\0';
}

void rt_toml_skip_ws(struct rt_toml_parser *p)
{
    while (p->i < p->len && (p->s[p->i] == ' ' || p->s[p->i] == '\t'))
        p->i++;
}

bool rt_toml_at_newline(const struct rt_toml_parser *p)
{
    return peek(p, 0) == '\n' || (peek(p, 0) == '\r' && peek(p, 1) == '\n');
}

/* Skips a comment if one starts here; control characters other than tab are not allowed in it. */
int rt_toml_skip_comment(struct rt_toml_parser *p)
{
    if (peek(p, 0) != '#')
        return 0;
    p->i++;
    while (p->i < p->len) {
        unsigned char c = (unsigned char)p->s[p->i];
        if (c == '\n' || (c == '\r' && peek(p, 1) == '\n'))
            return 0;
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return rt_toml_fail(p, p->i, "control character 0x%02X is not allowed in a comment", c);
        p->i++;
    }
    return 0;
}

/* Skips whitespace, comments and newlines (between array elements). */
int rt_toml_skip_ws_nl(struct rt_toml_parser *p)
{
    for (;;) {
        rt_toml_skip_ws(p);
        if (rt_toml_skip_comment(p) < 0)
            return -1;
        if (peek(p, 0) == '\n')
            p->i++;
        else if (peek(p, 0) == '\r' && peek(p, 1) == '\n')
            p->i += 2;
        else
            return 0;
    }
}

static bool is_bare(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-';
}

/* Describes the character at <off> for "expected X, found Y" messages. */
const char *rt_toml_describe(struct rt_toml_parser *p, size_t off, char *buf, size_t buflen)
{
    if (off >= p->len)
        return "the end of the document";
    unsigned char c = (unsigned char)p->s[off];
    if (c == '\n' || c == '\r')
        return "a newline";
    if (c >= 0x21 && c < 0x7f)
        snprintf(buf, buflen, "'%c'", c);
    else if (c == ' ' || c == '\t')
        return "whitespace";
    else if (c < 0x80)
        snprintf(buf, buflen, "control character 0x%02X", c);
    else
        snprintf(buf, buflen, "a non-ASCII character");
    return buf;
}

/* ---- keys ---- */

static void keys_reset(struct rt_toml_parser *p)
{
    for (size_t i = 0; i < p->nkeys; i++)
        rt_free(p->keys[i].ptr);
    p->nkeys = 0;
}

/* Parses a possibly dotted key into p->keys. Stops after the last part (trailing whitespace
 * skipped). */
static int parse_key(struct rt_toml_parser *p)
{
    keys_reset(p);
    for (;;) {
        rt_toml_skip_ws(p);
        if (p->nkeys == RT_TOML_MAX_KEYS)
            return rt_toml_fail(p, p->i, "a dotted key has more than %d parts", RT_TOML_MAX_KEYS);
        struct rt_toml_keypart *k = &p->keys[p->nkeys];
        size_t start = p->i;
        char c = peek(p, 0);
        if (c == '"' || c == '\'') {
            if (peek(p, 1) == c && peek(p, 2) == c)
                return rt_toml_fail(p, start, "a multi-line string cannot be used as a key");
            size_t len = 0;
            char *s = NULL;
            if (rt_toml_parse_quoted(p, &s, &len) < 0)
                return -1;
            k->ptr = s;
            k->len = len;
        } else if (is_bare(c)) {
            while (p->i < p->len && is_bare(p->s[p->i]))
                p->i++;
            k->ptr = rt_strndup(p->s + start, p->i - start);
            k->len = p->i - start;
        } else {
            char b[40];
            if (p->nkeys > 0)
                return rt_toml_fail(p, start, "expected a key after '.', found %s",
                                    rt_toml_describe(p, start, b, sizeof(b)));
            return rt_toml_fail(p, start, "expected a key, found %s",
                                rt_toml_describe(p, start, b, sizeof(b)));
        }
        k->off = start;
        k->pos = rt_toml_pos_at(p, start);
        p->nkeys++;
        rt_toml_skip_ws(p);
        if (peek(p, 0) != '.')
            return 0;
        p->i++;
    }
}

/* ---- tables ---- */

static const char *type_article(enum rt_toml_type t)
{
    return t == RT_TOML_ARRAY || t == RT_TOML_INTEGER ? "an" : "a";
}

/* Walks the first <n> key parts from <tab> along a [header], creating implicit tables; the last
 * element of an array of tables stands for the array. */
static int walk_header(struct rt_toml_parser *p, struct rt_toml_node *tab, size_t n,
                       struct rt_toml_node **out)
{
    char kb[64];
    for (size_t i = 0; i < n; i++) {
        const struct rt_toml_keypart *k = &p->keys[i];
        struct rt_toml_kv *kv = find(&tab->v, k->ptr, k->len);
        if (!kv) {
            struct rt_toml_node *t = rt_toml_node_new(p, RT_TOML_TABLE, k->off);
            t->flags = RT_TOML_F_IMPLICIT;
            insert(tab, k, t);
            tab = t;
            continue;
        }
        struct rt_toml_node *child = node_of(kv->val);
        if (child->v.type == RT_TOML_ARRAY && (child->flags & RT_TOML_F_AOT)) {
            child = node_of(child->v.u.arr.items[child->v.u.arr.len - 1]);
        } else if (child->v.type != RT_TOML_TABLE) {
            return rt_toml_fail(p, k->off, "key '%s' is already %s %s and cannot hold a table",
                                show_key(kb, sizeof(kb), k->ptr, k->len),
                                type_article(child->v.type), rt_toml_type_name(child->v.type));
        } else if (child->flags & RT_TOML_F_INLINE) {
            return rt_toml_fail(p, k->off, "cannot add to inline table '%s' after it is defined",
                                show_key(kb, sizeof(kb), k->ptr, k->len));
        }
        tab = child;
    }
    *out = tab;
    return 0;
}

static int parse_header(struct rt_toml_parser *p)
{
    char kb[64], b[40];
    size_t start = p->i;
    bool aot = peek(p, 1) == '[';
    p->i += aot ? 2 : 1;
    if (parse_key(p) < 0)
        return -1;
    if (peek(p, 0) != ']' || (aot && peek(p, 1) != ']')) {
        if (p->i >= p->len || rt_toml_at_newline(p))
            return rt_toml_fail(p, p->i, "table header is not closed with '%s'", aot ? "]]" : "]");
        return rt_toml_fail(p, p->i, "expected '%s' to close the table header, found %s",
                            aot ? "]]" : "]", rt_toml_describe(p, p->i, b, sizeof(b)));
    }
    p->i += aot ? 2 : 1;

    struct rt_toml_node *parent = NULL;
    if (walk_header(p, p->root, p->nkeys - 1, &parent) < 0)
        return -1;
    const struct rt_toml_keypart *k = &p->keys[p->nkeys - 1];
    struct rt_toml_kv *kv = find(&parent->v, k->ptr, k->len);
    show_key(kb, sizeof(kb), k->ptr, k->len);
    if (aot) {
        struct rt_toml_node *arr;
        if (!kv) {
            arr = rt_toml_node_new(p, RT_TOML_ARRAY, start);
            arr->flags = RT_TOML_F_AOT;
            insert(parent, k, arr);
        } else {
            arr = node_of(kv->val);
            if (arr->v.type != RT_TOML_ARRAY || !(arr->flags & RT_TOML_F_AOT)) {
                if (arr->v.type == RT_TOML_ARRAY)
                    return rt_toml_fail(
                        p, k->off, "cannot append to array '%s': it was defined as a value", kb);
                return rt_toml_fail(p, k->off, "key '%s' is already %s %s, not an array of tables",
                                    kb, type_article(arr->v.type), rt_toml_type_name(arr->v.type));
            }
        }
        struct rt_toml_node *t = rt_toml_node_new(p, RT_TOML_TABLE, start);
        t->flags = RT_TOML_F_EXPLICIT;
        array_push(arr, t);
        p->cur = t;
        return 0;
    }
    if (!kv) {
        struct rt_toml_node *t = rt_toml_node_new(p, RT_TOML_TABLE, start);
        t->flags = RT_TOML_F_EXPLICIT;
        insert(parent, k, t);
        p->cur = t;
        return 0;
    }
    struct rt_toml_node *t = node_of(kv->val);
    if (t->v.type != RT_TOML_TABLE) {
        if (t->v.type == RT_TOML_ARRAY && (t->flags & RT_TOML_F_AOT))
            return rt_toml_fail(p, k->off, "'%s' is an array of tables; use [[%s]] to add to it",
                                kb, kb);
        return rt_toml_fail(p, k->off, "key '%s' is already %s %s and cannot be a table", kb,
                            type_article(t->v.type), rt_toml_type_name(t->v.type));
    }
    if (t->flags != RT_TOML_F_IMPLICIT)
        return rt_toml_fail(p, k->off, "table '%s' is defined more than once", kb);
    /* A table made on the way to a deeper header may be defined once, later. */
    t->flags = RT_TOML_F_EXPLICIT;
    t->v.pos = rt_toml_pos_at(p, start);
    p->cur = t;
    return 0;
}

/* Parses `key = value` and stores it under <tab>. */
int rt_toml_parse_keyval(struct rt_toml_parser *p, struct rt_toml_node *tab, int depth)
{
    char kb[64], b[40];
    if (parse_key(p) < 0)
        return -1;
    if (peek(p, 0) != '=') {
        size_t at = p->i;
        if (at >= p->len || rt_toml_at_newline(p))
            return rt_toml_fail(p, at, "expected '=' after key");
        return rt_toml_fail(p, at, "expected '=' after key, found %s",
                            rt_toml_describe(p, at, b, sizeof(b)));
    }
    p->i++;
    rt_toml_skip_ws(p);

    /* The key parts belong to this call: a nested inline table reuses p->keys. */
    size_t nkeys = p->nkeys;
    struct rt_toml_keypart *keys = rt_malloc(nkeys * sizeof(*keys));
    memcpy(keys, p->keys, nkeys * sizeof(*keys));
    p->nkeys = 0;

    int rc = -1;
    struct rt_toml_node *val = NULL;
    for (size_t i = 0; i + 1 < nkeys; i++) {
        const struct rt_toml_keypart *k = &keys[i];
        struct rt_toml_kv *kv = find(&tab->v, k->ptr, k->len);
        if (!kv) {
            struct rt_toml_node *t = rt_toml_node_new(p, RT_TOML_TABLE, k->off);
            t->flags = RT_TOML_F_DOTTED;
            insert(tab, k, t);
            tab = t;
            continue;
        }
        struct rt_toml_node *child = node_of(kv->val);
        show_key(kb, sizeof(kb), k->ptr, k->len);
        if (child->v.type != RT_TOML_TABLE) {
            rt_toml_fail(p, k->off, "key '%s' is already %s %s and cannot hold keys", kb,
                         type_article(child->v.type), rt_toml_type_name(child->v.type));
            goto out;
        }
        if (child->flags & RT_TOML_F_INLINE) {
            rt_toml_fail(p, k->off, "cannot add to inline table '%s' after it is defined", kb);
            goto out;
        }
        if (!(child->flags & RT_TOML_F_DOTTED)) {
            rt_toml_fail(p, k->off,
                         "cannot add to table '%s' with dotted keys: it is defined by a header",
                         kb);
            goto out;
        }
        tab = child;
    }
    const struct rt_toml_keypart *last = &keys[nkeys - 1];
    if (find(&tab->v, last->ptr, last->len)) {
        rt_toml_fail(p, last->off, "duplicate key '%s'",
                     show_key(kb, sizeof(kb), last->ptr, last->len));
        goto out;
    }
    /* Dotted parts count as nesting too, so the tree depth stays bounded. */
    if (rt_toml_parse_value(p, &val, depth + (int)nkeys) < 0) {
        rt_toml_free(val ? &val->v : NULL);
        goto out;
    }
    insert(tab, last, val);
    rc = 0;
out:
    for (size_t i = 0; i < nkeys; i++)
        rt_free(keys[i].ptr);
    rt_free(keys);
    return rc;
}

/* ---- inline tables and arrays ---- */

int rt_toml_parse_inline_table(struct rt_toml_parser *p, struct rt_toml_node **out, int depth)
{
    char b[40];
    size_t start = p->i;
    struct rt_toml_node *t = rt_toml_node_new(p, RT_TOML_TABLE, start);
    *out = t;
    if (depth > RT_TOML_MAX_DEPTH)
        return rt_toml_fail(p, start, "the document nests values more than %d levels deep",
                            RT_TOML_MAX_DEPTH);
    p->i++;
    rt_toml_skip_ws(p);
    if (peek(p, 0) == '}') {
        p->i++;
        t->flags = RT_TOML_F_INLINE;
        return 0;
    }
    for (;;) {
        rt_toml_skip_ws(p);
        if (rt_toml_at_newline(p))
            return rt_toml_fail(p, p->i, "newlines are not allowed inside an inline table");
        if (peek(p, 0) == '}')
            return rt_toml_fail(p, p->i, "trailing comma is not allowed in an inline table");
        if (rt_toml_parse_keyval(p, t, depth) < 0)
            return -1;
        rt_toml_skip_ws(p);
        char c = peek(p, 0);
        if (c == ',') {
            p->i++;
            continue;
        }
        if (c == '}') {
            p->i++;
            break;
        }
        if (at_end(p))
            return rt_toml_fail(p, p->i, "inline table is not closed with '}'");
        if (rt_toml_at_newline(p))
            return rt_toml_fail(p, p->i, "newlines are not allowed inside an inline table");
        return rt_toml_fail(p, p->i, "expected ',' or '}' in inline table, found %s",
                            rt_toml_describe(p, p->i, b, sizeof(b)));
    }
    t->flags = RT_TOML_F_INLINE;
    return 0;
}

int rt_toml_parse_array(struct rt_toml_parser *p, struct rt_toml_node **out, int depth)
{
    char b[40];
    size_t start = p->i;
    struct rt_toml_node *a = rt_toml_node_new(p, RT_TOML_ARRAY, start);
    *out = a;
    if (depth > RT_TOML_MAX_DEPTH)
        return rt_toml_fail(p, start, "the document nests values more than %d levels deep",
                            RT_TOML_MAX_DEPTH);
    p->i++;
    for (;;) {
        if (rt_toml_skip_ws_nl(p) < 0)
            return -1;
        if (peek(p, 0) == ']') {
            p->i++;
            return 0;
        }
        struct rt_toml_node *item = NULL;
        int rc = rt_toml_parse_value(p, &item, depth + 1);
        if (item)
            array_push(a, item);
        if (rc < 0)
            return -1;
        if (rt_toml_skip_ws_nl(p) < 0)
            return -1;
        char c = peek(p, 0);
        if (c == ',') {
            p->i++;
            continue;
        }
        if (c == ']') {
            p->i++;
            return 0;
        }
        if (at_end(p))
            return rt_toml_fail(p, p->i, "array is not closed with ']'");
        return rt_toml_fail(p, p->i, "expected ',' or ']' in array, found %s",
                            rt_toml_describe(p, p->i, b, sizeof(b)));
    }
}

/* ---- the document ---- */

/* Checks the whole text is UTF-8 (no overlong forms, surrogates or code points past U+10FFFF). */
static int check_utf8(struct rt_toml_parser *p)
{
    const unsigned char *s = (const unsigned char *)p->s;
    size_t i = 0;
    while (i < p->len) {
        unsigned char c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t n;
        uint32_t cp, min;
        if (c >= 0xc2 && c <= 0xdf) {
            n = 2, cp = c & 0x1f, min = 0x80;
        } else if (c >= 0xe0 && c <= 0xef) {
            n = 3, cp = c & 0x0f, min = 0x800;
        } else if (c >= 0xf0 && c <= 0xf4) {
            n = 4, cp = c & 0x07, min = 0x10000;
        } else {
            return rt_toml_fail(p, i, "the document is not valid UTF-8 (byte 0x%02X)", c);
        }
        if (p->len - i < n)
            return rt_toml_fail(p, i, "the document is not valid UTF-8 (truncated sequence)");
        for (size_t j = 1; j < n; j++) {
            if ((s[i + j] & 0xc0) != 0x80)
                return rt_toml_fail(p, i,
                                    "the document is not valid UTF-8 (bad continuation byte)");
            cp = (cp << 6) | (s[i + j] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return rt_toml_fail(p, i, "the document is not valid UTF-8 (invalid code point)");
        i += n;
    }
    return 0;
}

static int parse_document(struct rt_toml_parser *p)
{
    char b[40];
    if (check_utf8(p) < 0)
        return -1;
    if (p->len >= 3 && memcmp(p->s, "\xef\xbb\xbf", 3) == 0)
        p->i = 3; /* a byte order mark carries no meaning */
    for (;;) {
        rt_toml_skip_ws(p);
        if (at_end(p))
            return 0;
        char c = peek(p, 0);
        if (c == '#') {
            if (rt_toml_skip_comment(p) < 0)
                return -1;
        } else if (c == '[') {
            if (parse_header(p) < 0)
                return -1;
        } else if (c == '\n' || c == '\r') {
            /* handled below */
        } else if (rt_toml_parse_keyval(p, p->cur, 0) < 0) {
            return -1;
        }
        rt_toml_skip_ws(p);
        if (rt_toml_skip_comment(p) < 0)
            return -1;
        if (at_end(p))
            return 0;
        if (peek(p, 0) == '\n') {
            p->i++;
        } else if (peek(p, 0) == '\r' && peek(p, 1) == '\n') {
            p->i += 2;
        } else if (peek(p, 0) == '\r') {
            return rt_toml_fail(p, p->i, "a carriage return must be followed by a newline");
        } else {
            return rt_toml_fail(p, p->i, "expected a newline or end of document, found %s",
                                rt_toml_describe(p, p->i, b, sizeof(b)));
        }
    }
}

int rt_toml_parse(const char *text, size_t len, struct rt_toml_value **root,
                  struct rt_toml_error *err)
{
    *root = NULL;
    memset(err, 0, sizeof(*err));
    struct rt_toml_parser p = {
        .s = text ? text : "",
        .len = text ? len : 0,
        .err = err,
        .pos_line = 1,
    };
    p.root = rt_toml_node_new(&p, RT_TOML_TABLE, 0);
    p.root->flags = RT_TOML_F_EXPLICIT;
    p.cur = p.root;
    int rc = parse_document(&p);
    keys_reset(&p);
    rt_buf_free(&p.scratch);
    if (rc < 0) {
        rt_toml_free(&p.root->v);
        return -1;
    }
    *root = &p.root->v;
    return 0;
}

/* ---- lookups ---- */

const struct rt_toml_kv *rt_toml_get_kv(const struct rt_toml_value *tab, const char *key)
{
    if (!tab || tab->type != RT_TOML_TABLE || !key)
        return NULL;
    return find((struct rt_toml_value *)tab, key, strlen(key));
}

const struct rt_toml_value *rt_toml_get(const struct rt_toml_value *tab, const char *key)
{
    const struct rt_toml_kv *kv = rt_toml_get_kv(tab, key);
    return kv ? kv->val : NULL;
}

const char *rt_toml_type_name(enum rt_toml_type t)
{
    switch (t) {
    case RT_TOML_STRING:
        return "string";
    case RT_TOML_INTEGER:
        return "integer";
    case RT_TOML_FLOAT:
        return "float";
    case RT_TOML_BOOL:
        return "bool";
    case RT_TOML_DATETIME:
        return "datetime";
    case RT_TOML_DATETIME_LOCAL:
        return "datetime-local";
    case RT_TOML_DATE_LOCAL:
        return "date-local";
    case RT_TOML_TIME_LOCAL:
        return "time-local";
    case RT_TOML_ARRAY:
        return "array";
    case RT_TOML_TABLE:
        return "table";
    }
    return "unknown";
}
