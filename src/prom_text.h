/* A strict, zero-copy streaming parser of the Prometheus text exposition format, version 0.0.4.
 *
 * Ownership: the parser never allocates and never copies. Every slice it hands out (sample names,
 * label names, raw label values, the parser's TYPE name) points into the caller's page, which must
 * stay valid and unchanged for as long as those slices are used. A struct rt_prom_sample is
 * overwritten by the next rt_prom_next() call; copy out what must survive.
 *
 * What is accepted (modelled on what the reference Go parser accepts, minus its leniencies):
 *   - lines end with '\n'; the last line may lack it; blank lines (spaces/tabs only) are skipped;
 *   - "# HELP name text" (escapes \\ and \n only; trailing spaces kept as part of the text),
 *     "# TYPE name counter|gauge|histogram|summary|untyped", any other "#" line is a comment;
 *   - samples: name [{label="value",...}] value [timestamp], name [a-zA-Z_:][a-zA-Z0-9_:]*,
 *     label names [a-zA-Z_][a-zA-Z0-9_]* (not "__name__"), label values with escapes \\ \" \n,
 *     a trailing comma in the label set, spaces/tabs between tokens;
 *   - values as Go's strconv.ParseFloat accepts them here: decimal with optional sign, fraction
 *     and exponent ("1.5", "1e+010", ".5", "2.0e-5"), "NaN", "+Inf", "-Inf", "Inf", "Infinity"
 *     (case-insensitive); no hex, no '_', and a finite number that overflows is refused;
 *   - an optional base-10 int64 timestamp (milliseconds).
 * Refused, with the line number and a static message: control bytes (other than tab) and NUL
 * anywhere, invalid UTF-8 (label values, HELP text and comments may hold UTF-8; everything else is
 * ASCII), CR, unterminated label values, unknown escapes, a missing or malformed value, anything
 * after the timestamp, duplicate label names in one sample, more than RT_PROM_MAX_LABELS labels,
 * lines longer than RT_PROM_MAX_LINE bytes.
 * Not checked (they need memory across lines): that a family's HELP/TYPE appear once and before
 * its samples, that a family's samples are contiguous, that a series is not repeated. Callers
 * that care (load_signals.c) check what matters to them. */
#ifndef RT_PROM_TEXT_H
#define RT_PROM_TEXT_H

#include <locale.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "str.h"

#define RT_PROM_MAX_LABELS 64          /* labels in one sample */
#define RT_PROM_MAX_LINE   (64 * 1024) /* bytes in one line, '\n' excluded */
#define RT_PROM_MAX_NUMBER 128         /* bytes in one value or timestamp token */

/* Return value of rt_prom_next() on malformed input; p->error and p->error_line say why/where. */
#define RT_PROM_EBAD (-1)

enum rt_prom_type {
    RT_PROM_UNTYPED = 0,
    RT_PROM_COUNTER,
    RT_PROM_GAUGE,
    RT_PROM_HISTOGRAM,
    RT_PROM_SUMMARY,
};

struct rt_prom_label {
    struct rt_str name;  /* [a-zA-Z_][a-zA-Z0-9_]* */
    struct rt_str value; /* raw, still escaped, without the quotes: use rt_prom_value_eq() or
                            rt_prom_value_unescape() */
};

struct rt_prom_sample {
    struct rt_str name;
    struct rt_prom_label labels[RT_PROM_MAX_LABELS]; /* in page order; names are unique */
    size_t num_labels;
    double value;             /* may be NaN or +-Inf */
    bool has_timestamp;
    int64_t timestamp_ms;     /* valid when has_timestamp */
    enum rt_prom_type type;   /* from the last "# TYPE" line when the sample belongs to that
                                 family (name, or name + _bucket/_sum/_count/_created as the type
                                 allows); RT_PROM_UNTYPED otherwise */
    size_t line;              /* 1-based line number of the sample */
};

/* Parser state; zero it with rt_prom_init(). The fields starting with '_' are private. */
struct rt_prom_parser {
    const char *_page;      /* borrowed page, see ownership above */
    size_t _len;
    size_t _pos;            /* start of the next line */
    size_t _line;           /* number of the line at _pos, 1-based */
    struct rt_str _type_name;  /* family named by the last TYPE line (slice into the page) */
    enum rt_prom_type _type;
    const char *error;      /* static message once rt_prom_next() failed, else NULL */
    size_t error_line;      /* 1-based line of the error */
};

/* Starts parsing <page>[0, <len>). <page> is borrowed: it must outlive the parser and every
 * slice handed out. <page> may be NULL when <len> is 0. */
void rt_prom_init(struct rt_prom_parser *p, const char *page, size_t len);

/* Reads up to the next sample, checking HELP/TYPE/comment lines on the way. Returns 1 with the
 * sample in <out>, 0 at the end of the page (an empty page has no samples: that is not an error
 * here), or RT_PROM_EBAD with p->error and p->error_line set. Errors are sticky: once it failed,
 * every later call returns RT_PROM_EBAD again. */
int rt_prom_next(struct rt_prom_parser *p, struct rt_prom_sample *out);

/* True when the raw escaped label value <escaped> (as in struct rt_prom_label) decodes to exactly
 * the bytes of <plain>. <escaped> must come from the parser (its escapes are known valid). */
bool rt_prom_value_eq(struct rt_str escaped, struct rt_str plain);

/* Decodes <escaped> into <out> (<outlen> bytes, always NUL-terminated when <outlen> > 0).
 * Returns the decoded length (excluding the NUL), or -1 when it did not fit. */
long rt_prom_value_unescape(struct rt_str escaped, char *out, size_t outlen);

/* Finds label <name> in <s>; returns its raw value slice through <value>. Returns true if found. */
bool rt_prom_sample_label(const struct rt_prom_sample *s, struct rt_str name,
                          struct rt_str *value);

/* The "C" locale, created once (thread-safe), for number conversions that must not depend on
 * setlocale(): strtod_l() here and uselocale() around snprintf() in prom_write.c. */
locale_t rt_prom_c_locale(void);

/* Parses one value token exactly as rt_prom_next() does ("1.5", "+Inf", "NaN", ...).
 * Returns 0 with the number in <out>, or -1 when <tok> is not a valid value. */
int rt_prom_parse_double(struct rt_str tok, double *out);

#endif
