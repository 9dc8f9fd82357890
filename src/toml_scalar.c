/* TOML values that are not tables: strings, integers, floats, booleans and dates/times. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "toml_parse.h"

static char peek(const struct rt_toml_parser *p, size_t ahead)
{
    return p->i + ahead < p->len ? p->s[p->i + ahead] : '\0';
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static void put(struct rt_toml_parser *p, const char *s, size_t n)
{
    (void)rt_buf_append(&p->scratch, s, n, SIZE_MAX);
}

static void put_utf8(struct rt_toml_parser *p, uint32_t cp)
{
    char b[4];
    size_t n;
    if (cp < 0x80) {
        b[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        b[0] = (char)(0xc0 | (cp >> 6));
        b[1] = (char)(0x80 | (cp & 0x3f));
        n = 2;
    } else if (cp < 0x10000) {
        b[0] = (char)(0xe0 | (cp >> 12));
        b[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        b[2] = (char)(0x80 | (cp & 0x3f));
        n = 3;
    } else {
        b[0] = (char)(0xf0 | (cp >> 18));
        b[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
        b[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
        b[3] = (char)(0x80 | (cp & 0x3f));
        n = 4;
    }
    put(p, b, n);
}

/* ---- strings ---- */

static int bad_control(struct rt_toml_parser *p, unsigned char c, bool literal)
{
    if (c == '\r')
        return rt_toml_fail(p, p->i, "a carriage return in a string must be followed by a newline");
    if (literal)
        return rt_toml_fail(p, p->i, "control character 0x%02X is not allowed in a literal string",
                            c);
    return rt_toml_fail(
        p, p->i, "control character 0x%02X is not allowed in a string; write it as an escape", c);
}

static bool is_control(unsigned char c)
{
    return (c < 0x20 && c != '\t') || c == 0x7f;
}

/* Decodes the escape at p->i (a backslash) into the scratch buffer. */
static int parse_escape(struct rt_toml_parser *p)
{
    size_t at = p->i;
    char c = peek(p, 1);
    const char *simple = NULL;
    switch (c) {
    case 'b':
        simple = "\b";
        break;
    case 't':
        simple = "\t";
        break;
    case 'n':
        simple = "\n";
        break;
    case 'f':
        simple = "\f";
        break;
    case 'r':
        simple = "\r";
        break;
    case '"':
        simple = "\"";
        break;
    case '\\':
        simple = "\\";
        break;
    default:
        break;
    }
    if (simple) {
        put(p, simple, 1);
        p->i += 2;
        return 0;
    }
    if (c == 'u' || c == 'U') {
        int n = c == 'u' ? 4 : 8;
        uint32_t cp = 0;
        for (int k = 0; k < n; k++) {
            int h = hexval(peek(p, 2 + (size_t)k));
            if (h < 0)
                return rt_toml_fail(p, at, "escape '\\%c' needs %d hex digits", c, n);
            cp = (cp << 4) | (uint32_t)h;
        }
        if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return rt_toml_fail(p, at, "escape '\\%c%.*s' is not a Unicode scalar value", c, n,
                                p->s + at + 2);
        put_utf8(p, cp);
        p->i += 2 + (size_t)n;
        return 0;
    }
    if (p->i + 1 >= p->len)
        return rt_toml_fail(p, at, "string is not closed");
    if ((unsigned char)c >= 0x21 && (unsigned char)c < 0x7f)
        return rt_toml_fail(p, at, "invalid escape '\\%c' in string", c);
    return rt_toml_fail(p, at,
                        "invalid escape in string: '\\' must be followed by one of "
                        "b t n f r \" \\ u U");
}

/* Single-line basic ("...") or literal ('...') string at p->i, decoded into the scratch buffer. */
static int parse_line_string(struct rt_toml_parser *p)
{
    size_t start = p->i;
    char q = p->s[p->i++];
    for (;;) {
        if (p->i >= p->len || rt_toml_at_newline(p))
            return rt_toml_fail(p, start, "string is not closed with %s on the same line",
                                q == '"' ? "'\"'" : "\"'\"");
        unsigned char c = (unsigned char)p->s[p->i];
        if (c == (unsigned char)q) {
            p->i++;
            return 0;
        }
        if (c == '\\' && q == '"') {
            if (parse_escape(p) < 0)
                return -1;
            continue;
        }
        if (is_control(c))
            return bad_control(p, c, q == '\'');
        put(p, p->s + p->i, 1);
        p->i++;
    }
}

/* Multi-line basic ("""...""") or literal ('''...''') string at p->i. */
static int parse_ml_string(struct rt_toml_parser *p)
{
    size_t start = p->i;
    char q = p->s[p->i];
    p->i += 3;
    /* A newline right after the opening quotes is not part of the string. */
    if (peek(p, 0) == '\n')
        p->i++;
    else if (peek(p, 0) == '\r' && peek(p, 1) == '\n')
        p->i += 2;
    for (;;) {
        if (p->i >= p->len)
            return rt_toml_fail(p, start, "multi-line string is not closed with %s",
                                q == '"' ? "'\"\"\"'" : "\"'''\"");
        unsigned char c = (unsigned char)p->s[p->i];
        if (c == (unsigned char)q) {
            size_t n = 0;
            while (p->i + n < p->len && p->s[p->i + n] == q)
                n++;
            if (n < 3) {
                put(p, p->s + p->i, n);
                p->i += n;
                continue;
            }
            /* Up to two quotes may sit right before the closing three. */
            if (n > 5)
                return rt_toml_fail(p, p->i + 5,
                                    "too many quotes at the end of a multi-line string");
            put(p, p->s + p->i, n - 3);
            p->i += n;
            return 0;
        }
        if (c == '\\' && q == '"') {
            /* A backslash ending a line trims the newline and the whitespace that follows. */
            size_t k = p->i + 1;
            while (k < p->len && (p->s[k] == ' ' || p->s[k] == '\t'))
                k++;
            if (k < p->len &&
                (p->s[k] == '\n' || (p->s[k] == '\r' && k + 1 < p->len && p->s[k + 1] == '\n'))) {
                p->i = k;
                while (p->i < p->len) {
                    char w = p->s[p->i];
                    if (w == ' ' || w == '\t' || w == '\n')
                        p->i++;
                    else if (w == '\r' && peek(p, 1) == '\n')
                        p->i += 2;
                    else
                        break;
                }
                continue;
            }
            if (parse_escape(p) < 0)
                return -1;
            continue;
        }
        if (c == '\n') {
            put(p, "\n", 1);
            p->i++;
            continue;
        }
        if (c == '\r' && peek(p, 1) == '\n') {
            put(p, "\r\n", 2);
            p->i += 2;
            continue;
        }
        if (is_control(c))
            return bad_control(p, c, q == '\'');
        put(p, p->s + p->i, 1);
        p->i++;
    }
}

/* An owned copy of the decoded string (the buffer has no memory yet when the string is empty). */
static char *scratch_copy(struct rt_toml_parser *p, size_t *len)
{
    *len = rt_buf_size(&p->scratch);
    return rt_strndup(*len ? rt_buf_data(&p->scratch) : "", *len);
}

int rt_toml_parse_quoted(struct rt_toml_parser *p, char **out, size_t *len)
{
    rt_buf_reset(&p->scratch);
    if (parse_line_string(p) < 0)
        return -1;
    *out = scratch_copy(p, len);
    return 0;
}

static int parse_string(struct rt_toml_parser *p, struct rt_toml_node **out)
{
    size_t start = p->i;
    char q = p->s[p->i];
    rt_buf_reset(&p->scratch);
    bool ml = peek(p, 1) == q && peek(p, 2) == q;
    if ((ml ? parse_ml_string(p) : parse_line_string(p)) < 0)
        return -1;
    struct rt_toml_node *n = rt_toml_node_new(p, RT_TOML_STRING, start);
    n->v.u.str.ptr = scratch_copy(p, &n->v.u.str.len);
    *out = n;
    return 0;
}

/* ---- dates and times ---- */

/* Reads exactly <n> digits at <off>; -1 if they are not there. */
static int num_at(const struct rt_toml_parser *p, size_t off, int n)
{
    int v = 0;
    for (int k = 0; k < n; k++) {
        if (off + (size_t)k >= p->len || !is_digit(p->s[off + (size_t)k]))
            return -1;
        v = v * 10 + (p->s[off + (size_t)k] - '0');
    }
    return v;
}

static bool looks_like_time(const struct rt_toml_parser *p, size_t off)
{
    return num_at(p, off, 2) >= 0 && off + 2 < p->len && p->s[off + 2] == ':';
}

static int days_in_month(int y, int m)
{
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
        return 29;
    return days[m - 1];
}

/* HH:MM:SS[.frac] at *off; advances *off. */
static int parse_time_at(struct rt_toml_parser *p, size_t *off)
{
    size_t o = *off;
    int h = num_at(p, o, 2), mi = -1, s = -1;
    if (h >= 0 && o + 2 < p->len && p->s[o + 2] == ':')
        mi = num_at(p, o + 3, 2);
    if (mi >= 0 && o + 5 < p->len && p->s[o + 5] == ':')
        s = num_at(p, o + 6, 2);
    if (s < 0)
        return rt_toml_fail(p, o, "invalid time: expected HH:MM:SS");
    if (h > 23 || mi > 59 || s > 60)
        return rt_toml_fail(p, o, "invalid time %02d:%02d:%02d: out of range", h, mi, s);
    o += 8;
    if (o < p->len && p->s[o] == '.') {
        o++;
        if (o >= p->len || !is_digit(p->s[o]))
            return rt_toml_fail(p, o, "invalid time: a '.' must be followed by digits");
        while (o < p->len && is_digit(p->s[o]))
            o++;
    }
    *off = o;
    return 0;
}

static int parse_datetime(struct rt_toml_parser *p, struct rt_toml_node **out)
{
    size_t start = p->i, o = start;
    enum rt_toml_type type;
    size_t sep = SIZE_MAX;
    if (looks_like_time(p, o)) {
        if (parse_time_at(p, &o) < 0)
            return -1;
        type = RT_TOML_TIME_LOCAL;
    } else {
        int y = num_at(p, o, 4), m = -1, d = -1;
        if (y >= 0 && o + 4 < p->len && p->s[o + 4] == '-')
            m = num_at(p, o + 5, 2);
        if (m >= 0 && o + 7 < p->len && p->s[o + 7] == '-')
            d = num_at(p, o + 8, 2);
        if (d < 0)
            return rt_toml_fail(p, o, "invalid date: expected YYYY-MM-DD");
        if (m < 1 || m > 12)
            return rt_toml_fail(p, o, "invalid date: month %02d is out of range", m);
        if (d < 1 || d > days_in_month(y, m))
            return rt_toml_fail(p, o, "invalid date: %04d-%02d has no day %02d", y, m, d);
        o += 10;
        type = RT_TOML_DATE_LOCAL;
        char c = o < p->len ? p->s[o] : '\0';
        if (c == 'T' || c == 't' || (c == ' ' && looks_like_time(p, o + 1))) {
            sep = o++;
            if (parse_time_at(p, &o) < 0)
                return -1;
            type = RT_TOML_DATETIME_LOCAL;
            c = o < p->len ? p->s[o] : '\0';
            if (c == 'Z' || c == 'z') {
                o++;
                type = RT_TOML_DATETIME;
            } else if (c == '+' || c == '-') {
                int oh = num_at(p, o + 1, 2), om = -1;
                if (oh >= 0 && o + 3 < p->len && p->s[o + 3] == ':')
                    om = num_at(p, o + 4, 2);
                if (om < 0)
                    return rt_toml_fail(p, o, "invalid time offset: expected +HH:MM or -HH:MM");
                if (oh > 23 || om > 59)
                    return rt_toml_fail(p, o, "invalid time offset: out of range");
                o += 6;
                type = RT_TOML_DATETIME;
            }
        }
    }
    if (o < p->len) {
        char c = p->s[o];
        if (is_digit(c) || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '.' ||
            c == ':' || c == '-' || c == '+' || c == '_')
            return rt_toml_fail(p, o, "invalid date or time: unexpected '%c'", c);
    }
    struct rt_toml_node *n = rt_toml_node_new(p, type, start);
    n->v.u.str.len = o - start;
    n->v.u.str.ptr = rt_strndup(p->s + start, o - start);
    if (sep != SIZE_MAX)
        n->v.u.str.ptr[sep - start] = 'T';
    for (size_t k = 0; k < n->v.u.str.len; k++) {
        if (n->v.u.str.ptr[k] == 'z')
            n->v.u.str.ptr[k] = 'Z';
    }
    p->i = o;
    *out = n;
    return 0;
}

/* ---- numbers and booleans ---- */

static bool digit_in(char c, int base)
{
    if (base == 16)
        return hexval(c) >= 0;
    return c >= '0' && c < '0' + base;
}

/* A run of digits in <base> where each '_' sits between two digits; advances *j. Returns the
 * number of digits (0 when there is no digit at *j). */
static size_t digits(const char *t, size_t n, size_t *j, int base)
{
    size_t k = *j, count = 0;
    while (k < n) {
        if (digit_in(t[k], base)) {
            k++;
            count++;
        } else if (t[k] == '_' && count > 0 && k + 1 < n && digit_in(t[k + 1], base)) {
            k++;
        } else {
            break;
        }
    }
    *j = k;
    return count;
}

static int bad_number(struct rt_toml_parser *p, size_t start, const char *t, size_t n, size_t j,
                      const char *why)
{
    int shown = n > 40 ? 40 : (int)n;
    if (j < n && t[j] == '_')
        why = "underscores must sit between digits";
    return rt_toml_fail(p, start, "invalid number '%.*s%s': %s", shown, t, n > 40 ? "..." : "",
                        why);
}

static int parse_radix(struct rt_toml_parser *p, size_t start, const char *t, size_t n,
                       struct rt_toml_node **out)
{
    int base = t[1] == 'x' ? 16 : t[1] == 'o' ? 8 : 2;
    size_t j = 2;
    if (digits(t, n, &j, base) == 0 || j != n)
        return bad_number(p, start, t, n, j,
                          base == 16  ? "expected hex digits after 0x"
                          : base == 8 ? "expected octal digits after 0o"
                                      : "expected binary digits after 0b");
    uint64_t v = 0;
    for (size_t k = 2; k < n; k++) {
        if (t[k] == '_')
            continue;
        uint64_t d = (uint64_t)hexval(t[k]);
        if (v > ((uint64_t)INT64_MAX - d) / (uint64_t)base)
            return rt_toml_fail(p, start, "integer '%.*s' does not fit in 64 bits",
                                n > 40 ? 40 : (int)n, t);
        v = v * (uint64_t)base + d;
    }
    struct rt_toml_node *node = rt_toml_node_new(p, RT_TOML_INTEGER, start);
    node->v.u.i = (int64_t)v;
    *out = node;
    return 0;
}

static int parse_number(struct rt_toml_parser *p, const char *t, size_t n, size_t start,
                        struct rt_toml_node **out)
{
    size_t j = 0;
    bool neg = false;
    if (n >= 2 && t[0] == '0' && (t[1] == 'x' || t[1] == 'o' || t[1] == 'b'))
        return parse_radix(p, start, t, n, out);
    if (t[0] == '+' || t[0] == '-') {
        neg = t[0] == '-';
        j++;
    }
    const char *rest = t + j;
    size_t rn = n - j;
    if ((rn == 3 && memcmp(rest, "inf", 3) == 0) || (rn == 3 && memcmp(rest, "nan", 3) == 0)) {
        struct rt_toml_node *node = rt_toml_node_new(p, RT_TOML_FLOAT, start);
        if (rest[0] == 'i')
            node->v.u.f = neg ? -HUGE_VAL : HUGE_VAL;
        else
            node->v.u.f = neg ? -NAN : NAN;
        *out = node;
        return 0;
    }
    size_t int_start = j;
    if (digits(t, n, &j, 10) == 0)
        return bad_number(p, start, t, n, j, "expected a digit");
    if (t[int_start] == '0' && j - int_start > 1)
        return bad_number(p, start, t, n, j, "leading zeros are not allowed");
    bool is_float = false;
    if (j < n && t[j] == '.') {
        j++;
        if (digits(t, n, &j, 10) == 0)
            return bad_number(p, start, t, n, j, "a '.' must be followed by digits");
        is_float = true;
    }
    if (j < n && (t[j] == 'e' || t[j] == 'E')) {
        j++;
        if (j < n && (t[j] == '+' || t[j] == '-'))
            j++;
        if (digits(t, n, &j, 10) == 0)
            return bad_number(p, start, t, n, j, "an exponent needs digits");
        is_float = true;
    }
    if (j != n)
        return bad_number(p, start, t, n, j, "unexpected characters");

    if (is_float) {
        rt_buf_reset(&p->scratch);
        for (size_t k = 0; k < n; k++) {
            if (t[k] != '_')
                put(p, t + k, 1);
        }
        put(p, "", 1);
        struct rt_toml_node *node = rt_toml_node_new(p, RT_TOML_FLOAT, start);
        node->v.u.f = strtod(rt_buf_data(&p->scratch), NULL);
        *out = node;
        return 0;
    }
    /* Accumulate the magnitude; a negative number may reach 2^63. */
    uint64_t limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX, v = 0;
    for (size_t k = int_start; k < n; k++) {
        if (t[k] == '_')
            continue;
        uint64_t d = (uint64_t)(t[k] - '0');
        if (v > (limit - d) / 10)
            return rt_toml_fail(p, start, "integer '%.*s' does not fit in 64 bits",
                                n > 40 ? 40 : (int)n, t);
        v = v * 10 + d;
    }
    struct rt_toml_node *node = rt_toml_node_new(p, RT_TOML_INTEGER, start);
    node->v.u.i = neg ? (int64_t)(0 - v) : (int64_t)v;
    *out = node;
    return 0;
}

static bool is_token(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_' ||
           c == '+' || c == '-' || c == '.';
}

int rt_toml_parse_value(struct rt_toml_parser *p, struct rt_toml_node **out, int depth)
{
    char b[40];
    *out = NULL;
    size_t start = p->i;
    char c = peek(p, 0);
    if (c == '"' || c == '\'')
        return parse_string(p, out);
    if (c == '[')
        return rt_toml_parse_array(p, out, depth);
    if (c == '{')
        return rt_toml_parse_inline_table(p, out, depth);
    if (num_at(p, start, 4) >= 0 && peek(p, 4) == '-')
        return parse_datetime(p, out);
    if (looks_like_time(p, start))
        return parse_datetime(p, out);
    if (!is_token(c)) {
        if (p->i >= p->len || rt_toml_at_newline(p))
            return rt_toml_fail(p, start, "expected a value, found %s",
                                rt_toml_describe(p, start, b, sizeof(b)));
        return rt_toml_fail(p, start, "expected a value, found %s",
                            rt_toml_describe(p, start, b, sizeof(b)));
    }
    size_t end = start;
    while (end < p->len && is_token(p->s[end]))
        end++;
    const char *t = p->s + start;
    size_t n = end - start;
    p->i = end;
    if (n == 4 && memcmp(t, "true", 4) == 0) {
        *out = rt_toml_node_new(p, RT_TOML_BOOL, start);
        (*out)->v.u.b = true;
        return 0;
    }
    if (n == 5 && memcmp(t, "false", 5) == 0) {
        *out = rt_toml_node_new(p, RT_TOML_BOOL, start);
        (*out)->v.u.b = false;
        return 0;
    }
    if (is_digit(t[0]) || t[0] == '+' || t[0] == '-' || memcmp(t, "inf", n < 3 ? n : 3) == 0 ||
        memcmp(t, "nan", n < 3 ? n : 3) == 0)
        return parse_number(p, t, n, start, out);
    int shown = n > 40 ? 40 : (int)n;
    return rt_toml_fail(p, start,
                        "invalid value '%.*s%s' (strings need quotes; booleans are true and false)",
                        shown, t, n > 40 ? "..." : "");
}
