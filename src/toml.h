/* A strict TOML 1.0 parser: text in, a tree of values with line:col positions out.
 *
 * The tree is owned by the caller and freed with rt_toml_free(). Every string in it is an owned,
 * NUL-terminated copy (the length is kept too, since TOML strings may contain U+0000). Tables
 * keep their keys in document order. The parser never reads outside [text, text + len). */
#ifndef RT_TOML_H
#define RT_TOML_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum rt_toml_type {
    RT_TOML_STRING = 1,
    RT_TOML_INTEGER,
    RT_TOML_FLOAT,
    RT_TOML_BOOL,
    RT_TOML_DATETIME,       /* offset date-time, e.g. 1979-05-27T07:32:00Z */
    RT_TOML_DATETIME_LOCAL, /* 1979-05-27T07:32:00 */
    RT_TOML_DATE_LOCAL,     /* 1979-05-27 */
    RT_TOML_TIME_LOCAL,     /* 07:32:00 */
    RT_TOML_ARRAY,
    RT_TOML_TABLE,
};

struct rt_toml_pos {
    uint32_t line; /* 1-based */
    uint32_t col;  /* 1-based, in bytes */
};

struct rt_toml_value;

struct rt_toml_kv {
    char *key; /* owned, NUL-terminated, the key as decoded (quotes and escapes resolved) */
    size_t key_len;
    struct rt_toml_pos key_pos;
    struct rt_toml_value *val; /* owned */
};

struct rt_toml_value {
    enum rt_toml_type type;
    struct rt_toml_pos pos; /* where the value (or the table's header) starts */
    union {
        struct {
            char *ptr; /* owned, NUL-terminated */
            size_t len;
        } str;              /* RT_TOML_STRING; also the text of date/time values */
        int64_t i;          /* RT_TOML_INTEGER */
        double f;           /* RT_TOML_FLOAT */
        bool b;             /* RT_TOML_BOOL */
        struct {
            struct rt_toml_value **items; /* owned */
            size_t len;
        } arr; /* RT_TOML_ARRAY */
        struct {
            struct rt_toml_kv *items; /* owned, document order */
            size_t len;
        } tab; /* RT_TOML_TABLE */
    } u;
};
/* Date/time values keep their text in u.str, normalised to RFC 3339 form as toml-test expects:
 * 'T' separator upper-case, 'z' as 'Z', a space separator turned into 'T'; digits unchanged. */

struct rt_toml_error {
    struct rt_toml_pos pos; /* where the problem is */
    char msg[256];          /* a sentence a person understands, no position prefix */
};

/* Parses <len> bytes of <text>. On success returns 0 and sets *<root> to a table. On failure
 * returns -1, leaves *<root> NULL and fills <err>. */
int rt_toml_parse(const char *text, size_t len, struct rt_toml_value **root,
                  struct rt_toml_error *err);
void rt_toml_free(struct rt_toml_value *v);

/* The value under <key> in table <tab>, or NULL. */
const struct rt_toml_value *rt_toml_get(const struct rt_toml_value *tab, const char *key);
const struct rt_toml_kv *rt_toml_get_kv(const struct rt_toml_value *tab, const char *key);
/* "string", "integer", "float", "bool", "datetime", "datetime-local", "date-local",
 * "time-local", "array", "table" */
const char *rt_toml_type_name(enum rt_toml_type t);

#endif
