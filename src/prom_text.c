/* Strict zero-copy parser of the Prometheus text exposition format 0.0.4 (see prom_text.h). */
#include "prom_text.h"
#include "utf8.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


/* A line being parsed: bytes [0, n) of s, '\n' excluded; i is the cursor. */
struct cur {
    const char *s;
    size_t n;
    size_t i;
};

static bool is_blank(char c)
{
    return c == ' ' || c == '\t';
}

static bool is_alpha_(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static void skip_blanks(struct cur *c)
{
    while (c->i < c->n && is_blank(c->s[c->i]))
        c->i++;
}

static bool at_end(const struct cur *c)
{
    return c->i >= c->n;
}

/* Checks free text (comments, HELP text, label values): tab or printable ASCII or valid UTF-8.
 * Consumes one character at c->i; returns the static error message or NULL. */
static const char *text_char(struct cur *c)
{
    unsigned char b = (unsigned char)c->s[c->i];
    if (b == '\t' || (b >= 0x20 && b < 0x7f)) {
        c->i++;
        return NULL;
    }
    if (b < 0x80)
        return b == '\r' ? "carriage return in line" : "control byte in line";
    size_t k = rt_utf8_seq((const unsigned char *)c->s + c->i, c->n - c->i);
    if (k == 0)
        return "invalid UTF-8";
    c->i += k;
    return NULL;
}

/* Reads a metric name at the cursor; returns false (cursor unchanged) when there is none. */
static bool read_metric_name(struct cur *c, struct rt_str *out)
{
    size_t start = c->i;
    if (at_end(c) || !(is_alpha_(c->s[c->i]) || c->s[c->i] == ':'))
        return false;
    c->i++;
    while (c->i < c->n && (is_alpha_(c->s[c->i]) || is_digit(c->s[c->i]) || c->s[c->i] == ':'))
        c->i++;
    *out = rt_str_make(c->s + start, c->i - start);
    return true;
}

static locale_t c_locale;
static pthread_once_t c_locale_once = PTHREAD_ONCE_INIT;

static void make_c_locale(void)
{
    c_locale = newlocale(LC_ALL_MASK, "C", (locale_t)0);
    if (c_locale == (locale_t)0) {
        /* Only fails without memory; the allocator's policy for that is to abort. */
        fprintf(stderr, "vllm-router: cannot create the C locale\n");
        abort();
    }
}

locale_t rt_prom_c_locale(void)
{
    pthread_once(&c_locale_once, make_c_locale);
    return c_locale;
}

static bool eq_ci(const char *a, size_t n, const char *lit)
{
    return strlen(lit) == n && strncasecmp(a, lit, n) == 0;
}

int rt_prom_parse_double(struct rt_str tok, double *out)
{
    const char *s = tok.ptr;
    size_t n = tok.len, i = 0;
    *out = 0;
    if (n == 0 || n > RT_PROM_MAX_NUMBER)
        return -1;
    /* Go's ParseFloat specials: "NaN" only unsigned, infinities with an optional sign. */
    if (eq_ci(s, n, "nan")) {
        *out = NAN;
        return 0;
    }
    size_t sign = (s[0] == '+' || s[0] == '-') ? 1 : 0;
    if (eq_ci(s + sign, n - sign, "inf") || eq_ci(s + sign, n - sign, "infinity")) {
        *out = s[0] == '-' ? -INFINITY : INFINITY;
        return 0;
    }
    /* Decimal: [+-] (digits [. digits*] | . digits) [(e|E) [+-] digits]. Checked here because
     * strtod also takes hex, "nan(...)" and leading spaces, none of which the format allows. */
    i = sign;
    size_t int_digits = 0, frac_digits = 0;
    while (i < n && is_digit(s[i]))
        i++, int_digits++;
    if (i < n && s[i] == '.') {
        i++;
        while (i < n && is_digit(s[i]))
            i++, frac_digits++;
    }
    if (int_digits + frac_digits == 0)
        return -1;
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-'))
            i++;
        size_t exp_digits = 0;
        while (i < n && is_digit(s[i]))
            i++, exp_digits++;
        if (exp_digits == 0)
            return -1;
    }
    if (i != n)
        return -1;
    char buf[RT_PROM_MAX_NUMBER + 1];
    memcpy(buf, s, n);
    buf[n] = '\0';
    char *end = NULL;
    double v = strtod_l(buf, &end, rt_prom_c_locale());
    if (end != buf + n)
        return -1;
    /* A finite literal that rounds to infinity is out of range, as for Go (underflow to 0 is
     * accepted, also as for Go). */
    if (isinf(v))
        return -1;
    *out = v;
    return 0;
}

/* Base-10 int64 with an optional sign, as Go's strconv.ParseInt(s, 10, 64). */
static int parse_int64(struct rt_str tok, int64_t *out)
{
    size_t i = 0;
    bool neg = false;
    uint64_t v = 0, limit;
    *out = 0;
    if (tok.len == 0 || tok.len > RT_PROM_MAX_NUMBER)
        return -1;
    if (tok.ptr[0] == '+' || tok.ptr[0] == '-') {
        neg = tok.ptr[0] == '-';
        i = 1;
    }
    if (i == tok.len)
        return -1;
    limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    for (; i < tok.len; i++) {
        if (!is_digit(tok.ptr[i]))
            return -1;
        unsigned d = (unsigned)(tok.ptr[i] - '0');
        if (v > (limit - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    *out = neg ? (int64_t)(0 - v) : (int64_t)v;
    return 0;
}

/* A token: everything up to the next blank or the end of the line. */
static struct rt_str read_token(struct cur *c)
{
    size_t start = c->i;
    while (c->i < c->n && !is_blank(c->s[c->i]))
        c->i++;
    return rt_str_make(c->s + start, c->i - start);
}

/* "# ..." lines. Returns an error message or NULL. */
static const char *parse_comment(struct rt_prom_parser *p, struct cur *c)
{
    c->i++; /* '#' */
    skip_blanks(c);
    size_t word_start = c->i;
    struct rt_str word = read_token(c);
    bool help = rt_str_eq(word, RT_STR_LIT("HELP"));
    bool type = rt_str_eq(word, RT_STR_LIT("TYPE"));
    if (!help && !type) {
        /* A free comment: any text, but still no binary. */
        c->i = word_start;
        while (!at_end(c)) {
            const char *err = text_char(c);
            if (err)
                return err;
        }
        return NULL;
    }
    skip_blanks(c);
    struct rt_str name;
    if (!read_metric_name(c, &name))
        return help ? "HELP line without a valid metric name" : "TYPE line without a valid metric name";
    if (!at_end(c) && !is_blank(c->s[c->i]))
        return "invalid character in metric name";
    skip_blanks(c);
    if (help) {
        /* The docstring runs to the end of the line, trailing blanks included. */
        while (!at_end(c)) {
            if (c->s[c->i] == '\\') {
                if (c->i + 1 >= c->n || (c->s[c->i + 1] != '\\' && c->s[c->i + 1] != 'n'))
                    return "invalid escape in HELP text (only \\\\ and \\n)";
                c->i += 2;
                continue;
            }
            const char *err = text_char(c);
            if (err)
                return err;
        }
        return NULL;
    }
    struct rt_str t = read_token(c);
    static const struct {
        const char *word;
        enum rt_prom_type type;
    } types[] = {
        {"counter", RT_PROM_COUNTER},     {"gauge", RT_PROM_GAUGE},
        {"histogram", RT_PROM_HISTOGRAM}, {"summary", RT_PROM_SUMMARY},
        {"untyped", RT_PROM_UNTYPED},
    };
    size_t k;
    for (k = 0; k < sizeof types / sizeof types[0]; k++)
        if (rt_str_eq(t, rt_str_cstr(types[k].word)))
            break;
    if (k == sizeof types / sizeof types[0])
        return t.len ? "unknown metric type in TYPE line" : "TYPE line without a type";
    skip_blanks(c);
    if (!at_end(c))
        return "unexpected text after the type in TYPE line";
    p->_type_name = name;
    p->_type = types[k].type;
    return NULL;
}

/* A label value at the cursor, just after its opening quote; leaves the cursor after the
 * closing quote. */
static const char *parse_label_value(struct cur *c, struct rt_str *out)
{
    size_t start = c->i;
    for (;;) {
        if (at_end(c))
            return "unterminated label value";
        char ch = c->s[c->i];
        if (ch == '"')
            break;
        if (ch == '\\') {
            if (c->i + 1 >= c->n)
                return "unterminated label value";
            char e = c->s[c->i + 1];
            if (e != '\\' && e != '"' && e != 'n')
                return "invalid escape in label value (only \\\\, \\\" and \\n)";
            c->i += 2;
            continue;
        }
        const char *err = text_char(c);
        if (err)
            return err;
    }
    *out = rt_str_make(c->s + start, c->i - start);
    c->i++; /* closing quote */
    return NULL;
}

/* "{name="value",...}" at the cursor (on the '{'). */
static const char *parse_labels(struct cur *c, struct rt_prom_sample *out)
{
    c->i++; /* '{' */
    skip_blanks(c);
    for (;;) {
        if (at_end(c))
            return "unterminated label set";
        if (c->s[c->i] == '}') {
            c->i++;
            return NULL;
        }
        size_t start = c->i;
        if (!is_alpha_(c->s[c->i]))
            return "invalid label name";
        while (c->i < c->n && (is_alpha_(c->s[c->i]) || is_digit(c->s[c->i])))
            c->i++;
        struct rt_str name = rt_str_make(c->s + start, c->i - start);
        if (rt_str_eq(name, RT_STR_LIT("__name__")))
            return "reserved label name __name__";
        skip_blanks(c);
        if (at_end(c) || c->s[c->i] != '=')
            return at_end(c) ? "unterminated label set" : "expected '=' after label name";
        c->i++;
        skip_blanks(c);
        if (at_end(c) || c->s[c->i] != '"')
            return at_end(c) ? "unterminated label set" : "expected '\"' to open a label value";
        c->i++;
        struct rt_str value;
        const char *err = parse_label_value(c, &value);
        if (err)
            return err;
        for (size_t k = 0; k < out->num_labels; k++)
            if (rt_str_eq(out->labels[k].name, name))
                return "duplicate label name in sample";
        if (out->num_labels == RT_PROM_MAX_LABELS)
            return "too many labels in sample";
        out->labels[out->num_labels].name = name;
        out->labels[out->num_labels].value = value;
        out->num_labels++;
        skip_blanks(c);
        if (at_end(c))
            return "unterminated label set";
        if (c->s[c->i] == ',') {
            c->i++;
            skip_blanks(c); /* a '}' may follow: trailing commas are allowed */
        } else if (c->s[c->i] != '}') {
            return "expected ',' or '}' after label value";
        }
    }
}

static bool has_suffix_of(struct rt_str name, struct rt_str base, const char *suffix)
{
    size_t sl = strlen(suffix);
    return name.len == base.len + sl && memcmp(name.ptr, base.ptr, base.len) == 0
           && memcmp(name.ptr + base.len, suffix, sl) == 0;
}

/* The type of sample <name> given the last TYPE line. */
static enum rt_prom_type type_of(const struct rt_prom_parser *p, struct rt_str name)
{
    struct rt_str b = p->_type_name;
    if (!b.ptr)
        return RT_PROM_UNTYPED;
    if (rt_str_eq(name, b))
        return p->_type;
    switch (p->_type) {
    case RT_PROM_HISTOGRAM:
        if (has_suffix_of(name, b, "_bucket"))
            return p->_type;
        /* fall through */
    case RT_PROM_SUMMARY:
        if (has_suffix_of(name, b, "_sum") || has_suffix_of(name, b, "_count"))
            return p->_type;
        /* fall through */
    case RT_PROM_COUNTER:
        if (has_suffix_of(name, b, "_created"))
            return p->_type;
        break;
    default:
        break;
    }
    return RT_PROM_UNTYPED;
}

static const char *parse_sample(struct rt_prom_parser *p, struct cur *c, struct rt_prom_sample *out)
{
    if (!read_metric_name(c, &out->name))
        return "invalid metric name";
    if (!at_end(c) && c->s[c->i] != '{' && !is_blank(c->s[c->i]))
        return "invalid character in metric name";
    skip_blanks(c); /* as in Go's parser, blanks may stand between the name and '{' */
    if (!at_end(c) && c->s[c->i] == '{') {
        const char *err = parse_labels(c, out);
        if (err)
            return err;
        skip_blanks(c);
    }
    if (at_end(c))
        return "missing value";
    struct rt_str tok = read_token(c);
    if (rt_prom_parse_double(tok, &out->value) != 0)
        return "invalid value";
    skip_blanks(c);
    if (!at_end(c)) {
        tok = read_token(c);
        if (parse_int64(tok, &out->timestamp_ms) != 0)
            return "invalid timestamp";
        out->has_timestamp = true;
        skip_blanks(c);
        if (!at_end(c))
            return "unexpected text after timestamp";
    }
    out->type = type_of(p, out->name);
    return NULL;
}

void rt_prom_init(struct rt_prom_parser *p, const char *page, size_t len)
{
    memset(p, 0, sizeof *p);
    p->_page = page;
    p->_len = page ? len : 0;
    p->_line = 1;
}

int rt_prom_next(struct rt_prom_parser *p, struct rt_prom_sample *out)
{
    const char *err = NULL;
    if (p->error)
        return RT_PROM_EBAD;
    while (p->_pos < p->_len) {
        const char *line = p->_page + p->_pos;
        size_t avail = p->_len - p->_pos;
        /* Look no further than one byte past the cap: bounds the scan of a huge line. */
        size_t look = avail < (size_t)RT_PROM_MAX_LINE + 1 ? avail : (size_t)RT_PROM_MAX_LINE + 1;
        const char *nl = memchr(line, '\n', look);
        size_t n = nl ? (size_t)(nl - line) : look;
        if (n > RT_PROM_MAX_LINE) {
            err = "line longer than 64 KiB";
            goto fail;
        }
        struct cur c = {line, n, 0};
        skip_blanks(&c);
        if (at_end(&c)) {
            err = NULL; /* blank line */
        } else if (c.s[c.i] == '#') {
            err = parse_comment(p, &c);
        } else {
            out->name = RT_STR_NULL;
            out->num_labels = 0;
            out->value = 0;
            out->has_timestamp = false;
            out->timestamp_ms = 0;
            out->type = RT_PROM_UNTYPED;
            out->line = p->_line;
            err = parse_sample(p, &c, out);
            if (!err) {
                p->_pos += nl ? n + 1 : n;
                p->_line++;
                return 1;
            }
        }
        if (err)
            goto fail;
        p->_pos += nl ? n + 1 : n;
        p->_line++;
    }
    return 0;

fail:
    p->error = err;
    p->error_line = p->_line;
    return RT_PROM_EBAD;
}

/* Decodes the escaped character at e[*i] (and moves past it). */
static char unescape_at(struct rt_str e, size_t *i)
{
    char ch = e.ptr[*i];
    if (ch == '\\' && *i + 1 < e.len) {
        char n = e.ptr[*i + 1];
        *i += 2;
        return n == 'n' ? '\n' : n;
    }
    *i += 1;
    return ch;
}

bool rt_prom_value_eq(struct rt_str escaped, struct rt_str plain)
{
    size_t i = 0, j = 0;
    while (i < escaped.len) {
        if (j == plain.len || unescape_at(escaped, &i) != plain.ptr[j])
            return false;
        j++;
    }
    return j == plain.len;
}

long rt_prom_value_unescape(struct rt_str escaped, char *out, size_t outlen)
{
    size_t i = 0, j = 0;
    if (outlen == 0)
        return -1;
    while (i < escaped.len) {
        if (j + 1 >= outlen) {
            out[j] = '\0';
            return -1;
        }
        out[j++] = unescape_at(escaped, &i);
    }
    out[j] = '\0';
    return (long)j;
}

bool rt_prom_sample_label(const struct rt_prom_sample *s, struct rt_str name, struct rt_str *value)
{
    for (size_t k = 0; k < s->num_labels; k++) {
        if (rt_str_eq(s->labels[k].name, name)) {
            *value = s->labels[k].value;
            return true;
        }
    }
    *value = RT_STR_NULL;
    return false;
}
