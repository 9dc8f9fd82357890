/* Unit tests for prom_text.c: accepted syntax, refused garbage with line numbers, limits, every
 * prefix of every good page, and the real vLLM/SGLang pages from the shared samples. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "prom_text.h"

/* Reads <dir>/<name> into an exact-size heap block (so ASan catches any overread). */
static char *slurp(const char *dir, const char *name, size_t *len)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = rt_malloc(n > 0 ? (size_t)n : 1);
    size_t got = fread(buf, 1, (size_t)n, f);
    fclose(f);
    assert_int_equal(got, (size_t)n);
    *len = (size_t)n;
    return buf;
}

static char *fixture(const char *name, size_t *len)
{
    const char *src = getenv("RT_SOURCE_DIR");
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/tests/data/metrics", src ? src : ".");
    char *p = slurp(dir, name, len);
    if (!p)
        fail_msg("fixture %s/%s missing", dir, name);
    return p;
}

/* Parses <text> (copied to an exact-size block) to the end. Returns the sample count, or -1 on
 * error with the message and line in <err>/<line>. */
static long parse_all(const char *text, size_t len, const char **err, size_t *line)
{
    char *copy = rt_malloc(len ? len : 1);
    memcpy(copy, text, len);
    struct rt_prom_parser p;
    struct rt_prom_sample s;
    long n = 0;
    int r;
    rt_prom_init(&p, copy, len);
    while ((r = rt_prom_next(&p, &s)) == 1) {
        /* Every slice must lie inside the page. */
        assert_true(s.name.ptr >= copy && s.name.ptr + s.name.len <= copy + len);
        for (size_t k = 0; k < s.num_labels; k++)
            assert_true(s.labels[k].value.ptr >= copy
                        && s.labels[k].value.ptr + s.labels[k].value.len <= copy + len);
        n++;
    }
    *err = p.error;
    *line = p.error_line;
    if (r < 0) {
        assert_int_equal(r, RT_PROM_EBAD);
        assert_non_null(p.error);
        assert_true(p.error_line >= 1);
        /* sticky */
        assert_int_equal(rt_prom_next(&p, &s), RT_PROM_EBAD);
        n = -1;
    } else {
        assert_int_equal(r, 0);
        assert_null(p.error);
        assert_int_equal(rt_prom_next(&p, &s), 0);
    }
    rt_free(copy);
    return n;
}

static long parse_str(const char *text, const char **err, size_t *line)
{
    return parse_all(text, strlen(text), err, line);
}

static void next_ok(struct rt_prom_parser *p, struct rt_prom_sample *s, const char *name)
{
    int r = rt_prom_next(p, s);
    if (r != 1)
        fail_msg("expected sample %s, got %d (%s at line %zu)", name, r,
                 p->error ? p->error : "-", p->error_line);
    assert_true(rt_str_eq(s->name, rt_str_cstr(name)));
}

static void label_is(const struct rt_prom_sample *s, const char *name, const char *plain)
{
    struct rt_str v;
    assert_true(rt_prom_sample_label(s, rt_str_cstr(name), &v));
    if (!rt_prom_value_eq(v, rt_str_cstr(plain)))
        fail_msg("label %s is '%.*s', want '%s'", name, RT_STR_FMT(v), plain);
}

static void edge_cases_fixture(void **state)
{
    (void)state;
    size_t len;
    char *page = fixture("edge_cases.txt", &len);
    struct rt_prom_parser p;
    struct rt_prom_sample s;
    rt_prom_init(&p, page, len);

    next_ok(&p, &s, "edge_escapes");
    assert_int_equal(s.line, 5);
    assert_int_equal(s.type, RT_PROM_GAUGE);
    assert_int_equal(s.num_labels, 3);
    label_is(&s, "path", "C:\\dir\\file");
    label_is(&s, "quote", "say \"hi\"");
    label_is(&s, "nl", "line1\nline2");
    assert_true(rt_str_eq(s.labels[0].value, RT_STR_LIT("C:\\\\dir\\\\file"))); /* raw */
    char buf[64];
    assert_int_equal(rt_prom_value_unescape(s.labels[1].value, buf, sizeof buf), 8);
    assert_string_equal(buf, "say \"hi\"");
    assert_int_equal(rt_prom_value_unescape(s.labels[1].value, buf, 8), -1); /* no room */
    assert_false(rt_prom_value_eq(s.labels[1].value, RT_STR_LIT("say \"hi")));
    assert_false(rt_prom_value_eq(s.labels[1].value, RT_STR_LIT("say \"hi\"!")));
    assert_true(s.value == 1.0);
    assert_false(s.has_timestamp);

    next_ok(&p, &s, "edge_exponent");
    assert_true(s.value == 1e10);
    assert_int_equal(s.type, RT_PROM_UNTYPED);
    next_ok(&p, &s, "edge_exponent_neg");
    assert_true(s.value == -2.0e-5);
    next_ok(&p, &s, "edge_special");
    assert_true(isinf(s.value) && s.value > 0);
    next_ok(&p, &s, "edge_special");
    assert_true(isinf(s.value) && s.value < 0);
    next_ok(&p, &s, "edge_special");
    assert_true(isnan(s.value));
    next_ok(&p, &s, "edge_ts");
    assert_true(s.has_timestamp);
    assert_int_equal(s.timestamp_ms, 1700000000000LL);
    assert_true(s.value == 42);
    next_ok(&p, &s, "edge_ts_neg");
    assert_int_equal(s.timestamp_ms, -5);
    next_ok(&p, &s, "edge_trailing_comma");
    assert_int_equal(s.num_labels, 1);
    assert_true(s.value == 7);
    next_ok(&p, &s, "edge_spaces");
    assert_int_equal(s.num_labels, 2);
    label_is(&s, "a", "x");
    label_is(&s, "b", "y");
    assert_true(s.value == 8);
    next_ok(&p, &s, "edge_empty_labels");
    assert_int_equal(s.num_labels, 0);
    next_ok(&p, &s, "edge_unicode");
    label_is(&s, "name", "日本語");
    next_ok(&p, &s, ":colon:name_");
    assert_true(s.value == 0.5);
    next_ok(&p, &s, "edge_hist_bucket");
    assert_int_equal(s.type, RT_PROM_HISTOGRAM);
    label_is(&s, "le", "+Inf");
    next_ok(&p, &s, "edge_hist_count");
    assert_int_equal(s.type, RT_PROM_HISTOGRAM);
    next_ok(&p, &s, "edge_hist_sum");
    assert_int_equal(s.type, RT_PROM_HISTOGRAM);
    next_ok(&p, &s, "edge_hist_created");
    assert_int_equal(s.type, RT_PROM_HISTOGRAM);
    next_ok(&p, &s, "edge_last");
    assert_true(s.value == 5.0);
    assert_int_equal(s.type, RT_PROM_UNTYPED);
    assert_int_equal(rt_prom_next(&p, &s), 0);
    rt_free(page);
}

struct good_case {
    const char *text;
    long samples;
    double last_value; /* value of the last sample; NAN to skip */
};

static void accepted(void **state)
{
    (void)state;
    static const struct good_case cases[] = {
        {"", 0, NAN},
        {"\n\n", 0, NAN},
        {"# just a comment", 0, NAN},
        {"#", 0, NAN},
        {"a 1", 1, 1},
        {"a 1\n", 1, 1},
        {"  a 1  \n", 1, 1},
        {"a\t1\t2\n", 1, 1},
        {"a +1.5", 1, 1.5},
        {"a -0.25e-3", 1, -0.25e-3},
        {"a 1E+3", 1, 1000},
        {"a 00012", 1, 12},
        {"a 5.", 1, 5},
        {"a inf", 1, INFINITY},
        {"a -Infinity", 1, -INFINITY},
        {"a 1e-400", 1, 0}, /* underflow is fine, as for Go */
        {"a{} 3", 1, 3},
        {"a{b=\"\"} 4", 1, 4},
        {"a{b=\"{}=,\\\"\"} 4", 1, 4},
        {"# TYPE a counter\na_total 1\na 2", 2, 2},
        {"# TYPE a untyped\n# HELP a \n", 0, NAN},
        {"# HELP a text with \"quotes\" and {braces}\n", 0, NAN},
        {"a 1 9223372036854775807", 1, 1},
        {"a 1 -9223372036854775808", 1, 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *err = NULL;
        size_t line = 0;
        long n = parse_str(cases[i].text, &err, &line);
        if (n != cases[i].samples)
            fail_msg("case %zu '%s': %ld samples (%s at line %zu), want %ld", i, cases[i].text, n,
                     err ? err : "-", line, cases[i].samples);
        if (!isnan(cases[i].last_value)) {
            struct rt_prom_parser p;
            struct rt_prom_sample s, last;
            rt_prom_init(&p, cases[i].text, strlen(cases[i].text));
            while (rt_prom_next(&p, &s) == 1)
                last = s;
            assert_true(last.value == cases[i].last_value);
        }
    }
}

struct bad_case {
    const char *text;
    size_t line;
    const char *msg; /* substring of the error */
};

static void refused(void **state)
{
    (void)state;
    static const struct bad_case cases[] = {
        {"a", 1, "missing value"},
        {"a ", 1, "missing value"},
        {"a{b=\"c\"}", 1, "missing value"},
        {"ok 1\na{b=\"c", 2, "unterminated label value"},
        {"a{b=\"c\\", 1, "unterminated label value"},
        {"a{b=\"c\"", 1, "unterminated label set"},
        {"a{b=\"c\",", 1, "unterminated label set"},
        {"a{b", 1, "unterminated label set"},
        {"a{b=c} 1", 1, "expected '\"'"},
        {"a{b:c=\"d\"} 1", 1, "expected '='"},
        {"a{b=\"1\" c=\"2\"} 1", 1, "expected ',' or '}'"},
        {"a{,} 1", 1, "invalid label name"},
        {"a{1b=\"x\"} 1", 1, "invalid label name"},
        {"a{__name__=\"x\"} 1", 1, "reserved"},
        {"a{b=\"1\",b=\"2\"} 1", 1, "duplicate label name"},
        {"a{b=\"\\t\"} 1", 1, "invalid escape in label value"},
        {"a 1.2.3", 1, "invalid value"},
        {"a 0x10", 1, "invalid value"},
        {"a 0x1p-2", 1, "invalid value"},
        {"a 1_000", 1, "invalid value"},
        {"a 1e", 1, "invalid value"},
        {"a .", 1, "invalid value"},
        {"a e5", 1, "invalid value"},
        {"a +NaN", 1, "invalid value"},
        {"a nan(1)", 1, "invalid value"},
        {"a Infinit", 1, "invalid value"},
        {"a 1e400", 1, "invalid value"},
        {"a 1,5", 1, "invalid value"},
        {"a 1 2.5", 1, "invalid timestamp"},
        {"a 1 9223372036854775808", 1, "invalid timestamp"},
        {"a 1 -", 1, "invalid timestamp"},
        {"a 1 2 3", 1, "after timestamp"},
        {"1a 1", 1, "invalid metric name"},
        {"a-b 1", 1, "invalid character in metric name"},
        {"a 1\r\n", 1, "invalid value"},
        {"# comment\r\n", 1, "carriage return"},
        {"\x01", 1, "invalid metric name"},
        {"a{b=\"\x01\"} 1", 1, "control byte"},
        {"a{b=\"\xff\"} 1", 1, "invalid UTF-8"},
        {"a{b=\"\xc0\xaf\"} 1", 1, "invalid UTF-8"},         /* overlong '/' */
        {"a{b=\"\xed\xa0\x80\"} 1", 1, "invalid UTF-8"},     /* surrogate */
        {"a{b=\"\xf4\x90\x80\x80\"} 1", 1, "invalid UTF-8"}, /* past U+10FFFF */
        {"a{b=\"\xe6\x97\"} 1", 1, "invalid UTF-8"},         /* cut short */
        {"# \xff\n", 1, "invalid UTF-8"},
        {"x 1\n\n# HELP\n", 3, "HELP line without"},
        {"# HELP 1a text", 1, "HELP line without"},
        {"# HELP a-b text", 1, "invalid character in metric name"},
        {"# HELP a bad \\t escape", 1, "invalid escape in HELP"},
        {"# HELP a ends with \\", 1, "invalid escape in HELP"},
        {"# TYPE a", 1, "TYPE line without a type"},
        {"# TYPE a flavour", 1, "unknown metric type"},
        {"# TYPE a gauge extra", 1, "unexpected text after the type"},
        {"# TYPE", 1, "TYPE line without"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *err = NULL;
        size_t line = 0;
        long n = parse_str(cases[i].text, &err, &line);
        if (n != -1 || !err || !strstr(err, cases[i].msg) || line != cases[i].line)
            fail_msg("case %zu: got %ld, '%s' at line %zu; want '%s' at line %zu", i, n,
                     err ? err : "-", line, cases[i].msg, cases[i].line);
    }
    /* A NUL byte in the middle of a page (strlen would stop there, so pass the length). */
    const char nul[] = "a 1\nb{c=\"x\0y\"} 2\n";
    const char *err = NULL;
    size_t line = 0;
    assert_int_equal(parse_all(nul, sizeof nul - 1, &err, &line), -1);
    assert_int_equal(line, 2);
    assert_non_null(strstr(err, "control byte"));
}

static void limits(void **state)
{
    (void)state;
    const char *err;
    size_t line;
    /* 64 labels pass, 65 do not. */
    struct rt_buf_like {
        char *p;
        size_t n;
    } b = {rt_malloc(8192), 0};
    for (int nl = 64; nl <= 65; nl++) {
        b.n = (size_t)snprintf(b.p, 8192, "m{");
        for (int k = 0; k < nl; k++)
            b.n += (size_t)snprintf(b.p + b.n, 8192 - b.n, "l%d=\"v\",", k);
        b.n += (size_t)snprintf(b.p + b.n, 8192 - b.n, "} 1\n");
        long n = parse_all(b.p, b.n, &err, &line);
        if (nl == 64)
            assert_int_equal(n, 1);
        else
            assert_true(n == -1 && strstr(err, "too many labels"));
    }
    rt_free(b.p);

    /* A line of exactly RT_PROM_MAX_LINE bytes passes; one byte more does not. */
    size_t cap = RT_PROM_MAX_LINE + 16;
    char *big = rt_malloc(cap);
    for (size_t extra = 0; extra <= 1; extra++) {
        size_t want = RT_PROM_MAX_LINE + extra;
        memcpy(big, "# ", 2);
        memset(big + 2, 'x', want - 2);
        big[want] = '\n';
        memcpy(big + want + 1, "a 1\n", 4);
        long n = parse_all(big, want + 5, &err, &line);
        if (extra == 0)
            assert_int_equal(n, 1);
        else
            assert_true(n == -1 && strstr(err, "64 KiB") && line == 1);
        /* The same without the final line and newline: the overlong line at the end of input. */
        n = parse_all(big, want, &err, &line);
        assert_int_equal(n, extra == 0 ? 0 : -1);
    }
    rt_free(big);

    /* Numbers longer than RT_PROM_MAX_NUMBER bytes are refused, shorter ones pass. */
    char num[RT_PROM_MAX_NUMBER + 8] = "a 0.";
    memset(num + 4, '1', RT_PROM_MAX_NUMBER - 2);
    num[RT_PROM_MAX_NUMBER + 2] = '\0';
    assert_int_equal(parse_str(num, &err, &line), 1);
    strcat(num, "1");
    assert_int_equal(parse_str(num, &err, &line), -1);
}

static void parse_double_table(void **state)
{
    (void)state;
    double v;
    assert_int_equal(rt_prom_parse_double(RT_STR_LIT("1e+010"), &v), 0);
    assert_true(v == 1e10);
    assert_int_equal(rt_prom_parse_double(RT_STR_LIT("2.0e-5"), &v), 0);
    assert_true(v == 2.0e-5);
    assert_int_equal(rt_prom_parse_double(RT_STR_LIT("0.1"), &v), 0);
    assert_true(v == 0.1);
    assert_int_equal(rt_prom_parse_double(RT_STR_LIT("1.7888602775040734e+09"), &v), 0);
    assert_true(v == 1.7888602775040734e+09);
    assert_int_equal(rt_prom_parse_double(RT_STR_LIT("NAN"), &v), 0);
    assert_true(isnan(v));
    assert_int_equal(rt_prom_parse_double(RT_STR_LIT("-inf"), &v), 0);
    assert_true(isinf(v) && v < 0);
    assert_int_equal(rt_prom_parse_double(RT_STR_LIT(" 1"), &v), -1);
    assert_int_equal(rt_prom_parse_double(RT_STR_LIT("1 "), &v), -1);
    assert_int_equal(rt_prom_parse_double(RT_STR_LIT(""), &v), -1);
    assert_int_equal(rt_prom_parse_double(RT_STR_LIT("+"), &v), -1);
    assert_int_equal(rt_prom_parse_double(RT_STR_LIT("--1"), &v), -1);
    assert_int_equal(rt_prom_parse_double(RT_STR_LIT("1e+-1"), &v), -1);
    assert_int_equal(rt_prom_parse_double(RT_STR_LIT("infinityy"), &v), -1);
}

/* Every prefix of a good page must parse or fail with a message; neither crash nor overread. */
static void prefixes_of_fixtures(void **state)
{
    (void)state;
    static const char *const names[] = {"edge_cases.txt", "vllm_v1_two_engines.txt",
                                        "vllm_v0.txt", "sglang_underscore_no_newline.txt"};
    for (size_t f = 0; f < sizeof names / sizeof names[0]; f++) {
        size_t len;
        char *page = fixture(names[f], &len);
        const char *err;
        size_t line;
        long full = parse_all(page, len, &err, &line);
        if (full <= 0)
            fail_msg("%s: %s at line %zu", names[f], err ? err : "no samples", line);
        long ok = 0, bad = 0;
        for (size_t n = 0; n <= len; n++) {
            long r = parse_all(page, n, &err, &line);
            assert_true(r >= -1 && r <= full);
            if (r < 0)
                bad++;
            else
                ok++;
        }
        /* Both outcomes occur: cut inside a label it fails, cut at a line end it parses. */
        assert_true(ok > 0 && bad > 0);
        rt_free(page);
    }
}

struct real_page {
    const char *file;
    long samples; /* non-comment, non-blank lines */
};

static void real_pages(void **state)
{
    (void)state;
    const char *shared = getenv("RT_SHARED_DIR");
    static const struct real_page pages[] = {
        {"metrics_v1.txt", 519},
        {"metrics_v0.txt", 120},
        {"metrics_sglang.txt", 91},
    };
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/vllm-samples", shared ? shared : "");
    size_t len;
    char *probe = shared ? slurp(dir, pages[0].file, &len) : NULL;
    if (!probe) {
        print_message("shared vllm-samples not found (RT_SHARED_DIR): skipping real pages\n");
        skip();
    }
    rt_free(probe);
    for (size_t i = 0; i < sizeof pages / sizeof pages[0]; i++) {
        char *page = slurp(dir, pages[i].file, &len);
        assert_non_null(page);
        const char *err;
        size_t line;
        long n = parse_all(page, len, &err, &line);
        if (n != pages[i].samples)
            fail_msg("%s: %ld samples (%s at line %zu), want %ld", pages[i].file, n,
                     err ? err : "-", line, pages[i].samples);
        rt_free(page);
    }
    /* A few exact values and types from the V1 page. */
    char *page = slurp(dir, "metrics_v1.txt", &len);
    struct rt_prom_parser p;
    struct rt_prom_sample s;
    int seen = 0;
    rt_prom_init(&p, page, len);
    while (rt_prom_next(&p, &s) == 1) {
        if (rt_str_eq(s.name, RT_STR_LIT("process_virtual_memory_bytes"))) {
            assert_true(s.value == 1.0777853952e+010);
            assert_int_equal(s.type, RT_PROM_GAUGE);
            seen++;
        } else if (rt_str_eq(s.name, RT_STR_LIT("vllm:spec_decode_num_drafts_created"))) {
            assert_true(s.value == 1.7888602775040734e+09);
            label_is(&s, "engine", "0");
            assert_int_equal(s.line, 42);
            seen++;
        } else if (rt_str_eq(s.name, RT_STR_LIT("vllm:spec_decode_num_drafts_total"))) {
            assert_int_equal(s.type, RT_PROM_COUNTER);
            assert_true(s.value == 17807.0);
            seen++;
        }
    }
    assert_null(p.error);
    assert_int_equal(seen, 3);
    rt_free(page);
}

static void garbled_fixtures(void **state)
{
    (void)state;
    static const struct {
        const char *file;
        size_t line;
        const char *msg;
    } cases[] = {
        {"bad_truncated_label.txt", 4, "unterminated label value"},
        {"bad_binary.bin", 2, "invalid metric name"},
        {"bad_number.txt", 2, "invalid value"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t len;
        char *page = fixture(cases[i].file, &len);
        const char *err;
        size_t line;
        assert_int_equal(parse_all(page, len, &err, &line), -1);
        if (!strstr(err, cases[i].msg) || line != cases[i].line)
            fail_msg("%s: '%s' at line %zu", cases[i].file, err, line);
        rt_free(page);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(edge_cases_fixture), cmocka_unit_test(accepted),
        cmocka_unit_test(refused),            cmocka_unit_test(limits),
        cmocka_unit_test(parse_double_table), cmocka_unit_test(prefixes_of_fixtures),
        cmocka_unit_test(real_pages),         cmocka_unit_test(garbled_fixtures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
