/* Unit tests for prom_write.c: label/HELP escaping and number spelling, each read back through
 * our own strict parser. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <float.h>
#include <locale.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "prom_text.h"
#include "prom_write.h"

static void expect_double(double v, const char *want)
{
    struct rt_buf b = {0};
    rt_prom_write_double(&b, v);
    if (rt_buf_size(&b) != strlen(want) || memcmp(rt_buf_data(&b), want, strlen(want)) != 0)
        fail_msg("%.17g written as '%.*s', want '%s'", v, (int)rt_buf_size(&b), rt_buf_data(&b),
                 want);
    rt_buf_free(&b);
}

static void doubles(void **state)
{
    (void)state;
    expect_double(INFINITY, "+Inf");
    expect_double(-INFINITY, "-Inf");
    expect_double(NAN, "NaN");
    expect_double(0, "0");
    expect_double(-0.0, "-0");
    expect_double(3, "3");
    expect_double(0.1, "0.1");
    expect_double(0.1 + 0.2, "0.30000000000000004");
    expect_double(1e10, "10000000000");
    expect_double(1e21, "1e+21");
    expect_double(2.5e-5, "2.5e-05");
    expect_double(65535, "65535");
    expect_double(1.7888602775040734e+09, "1788860277.5040734");
    expect_double(DBL_MAX, "1.7976931348623157e+308");
    expect_double(5e-324, "5e-324"); /* smallest subnormal: shortest form, not 16 digits */
    expect_double(1.0 / 3, "0.3333333333333333");
}

/* Random bit patterns survive write -> parse exactly (NaN aside). */
static void doubles_round_trip(void **state)
{
    (void)state;
    uint64_t x = 0x9e3779b97f4a7c15ULL;
    struct rt_buf b = {0};
    for (int i = 0; i < 20000; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        double v;
        memcpy(&v, &x, sizeof v);
        if (i % 4 == 0)
            v = (double)(x % 100000) / 1000.0; /* also plain short decimals */
        rt_buf_reset(&b);
        rt_prom_write_double(&b, v);
        double back;
        assert_int_equal(rt_prom_parse_double(rt_buf_str(&b), &back), 0);
        if (isnan(v))
            assert_true(isnan(back));
        else if (memcmp(&v, &back, sizeof v) != 0)
            fail_msg("%.17g came back as %.17g via '%.*s'", v, back, (int)rt_buf_size(&b),
                     rt_buf_data(&b));
    }
    rt_buf_free(&b);
}

/* A locale with a decimal comma must not leak into the page. */
static void locale_independent(void **state)
{
    (void)state;
    const char *names[] = {"de_DE.UTF-8", "de_DE.utf8", "fr_FR.UTF-8", "fr_FR.utf8"};
    const char *got = NULL;
    for (size_t i = 0; i < sizeof names / sizeof names[0] && !got; i++)
        got = setlocale(LC_NUMERIC, names[i]);
    if (!got) {
        print_message("no decimal-comma locale installed: skipping\n");
        skip();
    }
    expect_double(0.5, "0.5");
    double v;
    assert_int_equal(rt_prom_parse_double(RT_STR_LIT("1.25"), &v), 0);
    assert_true(v == 1.25);
    setlocale(LC_NUMERIC, "C");
}

static void expect_label(struct rt_str in, const char *want)
{
    struct rt_buf b = {0};
    rt_prom_write_label_value(&b, in);
    /* An untouched rt_buf has base NULL: only look at the data when there is some. */
    size_t n = rt_buf_size(&b);
    const char *got = n ? rt_buf_data(&b) : "";
    if (n != strlen(want) || memcmp(got, want, n) != 0)
        fail_msg("escaped as '%.*s', want '%s'", (int)n, got, want);
    rt_buf_free(&b);
}

static void label_values(void **state)
{
    (void)state;
    expect_label(RT_STR_LIT(""), "");
    expect_label(RT_STR_LIT("plain/model-7b"), "plain/model-7b");
    expect_label(RT_STR_LIT("a\\b\"c\nd"), "a\\\\b\\\"c\\nd");
    expect_label(RT_STR_LIT("日本"), "日本");
    expect_label(RT_STR_LIT("x\xffy"), "x\xef\xbf\xbdy");       /* invalid byte -> U+FFFD */
    expect_label(RT_STR_LIT("\xe6\x97"), "\xef\xbf\xbd\xef\xbf\xbd"); /* cut sequence */
    expect_label(RT_STR_LIT("tab\there\x01"), "tab\there\xef\xbf\xbd");
    expect_label(rt_str_make("a\0b", 3), "a\xef\xbf\xbd" "b");
}

static void help_text(void **state)
{
    (void)state;
    struct rt_buf b = {0};
    rt_prom_write_help(&b, RT_STR_LIT("say \"hi\"\\\n"));
    assert_int_equal(rt_buf_size(&b), 12);
    assert_memory_equal(rt_buf_data(&b), "say \"hi\"\\\\\\n", 12);
    rt_buf_free(&b);
}

/* Whatever we write, our strict parser reads back to the same text. */
static void written_page_parses(void **state)
{
    (void)state;
    static const char *const values[] = {"", "q\"uote", "back\\slash", "new\nline", "\\n",
                                         "\"\\\"", "ünï", "x\xc3"};
    struct rt_buf b = {0};
    rt_buf_printf(&b, "# HELP t ");
    rt_prom_write_help(&b, RT_STR_LIT("help with \\ and\nnewline"));
    rt_buf_printf(&b, "\n# TYPE t gauge\n");
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        rt_buf_printf(&b, "t{v=\"");
        rt_prom_write_label_value(&b, rt_str_cstr(values[i]));
        rt_buf_printf(&b, "\"} ");
        rt_prom_write_double(&b, (double)i / 7.0);
        rt_buf_printf(&b, "\n");
    }
    struct rt_prom_parser p;
    struct rt_prom_sample s;
    rt_prom_init(&p, rt_buf_data(&b), rt_buf_size(&b));
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        int r = rt_prom_next(&p, &s);
        if (r != 1)
            fail_msg("sample %zu: %d (%s at line %zu)", i, r, p.error ? p.error : "-",
                     p.error_line);
        assert_int_equal(s.num_labels, 1);
        assert_int_equal(s.type, RT_PROM_GAUGE);
        if (i < 7)
            assert_true(rt_prom_value_eq(s.labels[0].value, rt_str_cstr(values[i])));
        else /* the invalid byte came back as U+FFFD */
            assert_true(rt_prom_value_eq(s.labels[0].value, RT_STR_LIT("x\xef\xbf\xbd")));
        assert_true(s.value == (double)i / 7.0);
    }
    assert_int_equal(rt_prom_next(&p, &s), 0);
    rt_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(doubles),      cmocka_unit_test(doubles_round_trip),
        cmocka_unit_test(label_values), cmocka_unit_test(help_text),
        cmocka_unit_test(written_page_parses), cmocka_unit_test(locale_independent),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
