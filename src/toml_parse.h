/* Internals shared by the TOML parser's files (toml.c: structure, toml_scalar.c: values). Not for
 * other modules: they use toml.h.
 *
 * The parser owns the tree it builds until rt_toml_parse() hands the root to the caller; on failure
 * everything built so far is freed there. */
#ifndef RT_TOML_PARSE_H
#define RT_TOML_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "toml.h"

/* Nesting of arrays, inline tables and dotted keys under one key/value, and parts of one key. */
#define RT_TOML_MAX_DEPTH 128
#define RT_TOML_MAX_KEYS  128

/* How a table came to be, which decides how it may still be extended. */
enum {
    RT_TOML_F_IMPLICIT = 1, /* made on the way to a deeper [header]; may be defined once later */
    RT_TOML_F_EXPLICIT = 2, /* defined by its own [header] (or the root) */
    RT_TOML_F_DOTTED = 4,   /* made by a dotted key; more dotted keys may add to it */
    RT_TOML_F_INLINE = 8,   /* an inline table: closed once its '}' is read */
    RT_TOML_F_AOT = 16,     /* an array made by [[header]]s, which may append to it */
};

/* Every value the parser makes is one of these; the public value comes first so a pointer to it is
 * a pointer to the node, and rt_toml_free() frees the node. */
struct rt_toml_node {
    struct rt_toml_value v;
    size_t cap; /* allocated items of an array or table */
    unsigned flags;
    /* A table with many keys also gets a hash index: slots hold item index + 1, 0 when empty. */
    uint32_t *index;
    size_t index_cap; /* a power of two, or 0 */
};

/* One part of a dotted key, decoded and owned. */
struct rt_toml_keypart {
    char *ptr;
    size_t len;
    size_t off; /* where it starts in the text */
    struct rt_toml_pos pos;
};

struct rt_toml_parser {
    const char *s;
    size_t len;
    size_t i; /* read offset */
    struct rt_toml_error *err;
    bool failed; /* the first error wins */
    struct rt_toml_node *root;
    struct rt_toml_node *cur; /* table key/values go into */
    struct rt_toml_keypart keys[RT_TOML_MAX_KEYS];
    size_t nkeys;
    struct rt_buf scratch; /* string decoding */
    /* cursor for rt_toml_pos_at() */
    size_t pos_off;
    uint32_t pos_line;
    size_t pos_line_start;
};

struct rt_toml_pos rt_toml_pos_at(struct rt_toml_parser *p, size_t off);
/* Records an error at <off> (only the first one) and returns -1. */
int rt_toml_fail(struct rt_toml_parser *p, size_t off, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
const char *rt_toml_describe(struct rt_toml_parser *p, size_t off, char *buf, size_t buflen);
struct rt_toml_node *rt_toml_node_new(struct rt_toml_parser *p, enum rt_toml_type type, size_t off);

void rt_toml_skip_ws(struct rt_toml_parser *p);
bool rt_toml_at_newline(const struct rt_toml_parser *p);
int rt_toml_skip_comment(struct rt_toml_parser *p);
int rt_toml_skip_ws_nl(struct rt_toml_parser *p);

/* Value parsers: on failure *out is NULL or a partial value the caller frees. <depth> counts the
 * nesting so far. */
int rt_toml_parse_value(struct rt_toml_parser *p, struct rt_toml_node **out, int depth);
int rt_toml_parse_array(struct rt_toml_parser *p, struct rt_toml_node **out, int depth);
int rt_toml_parse_inline_table(struct rt_toml_parser *p, struct rt_toml_node **out, int depth);
int rt_toml_parse_keyval(struct rt_toml_parser *p, struct rt_toml_node *tab, int depth);
/* Parses a single-line basic or literal string at p->i into an owned copy (for keys). */
int rt_toml_parse_quoted(struct rt_toml_parser *p, char **out, size_t *len);

#endif
