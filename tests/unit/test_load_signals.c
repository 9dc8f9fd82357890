/* Unit tests for load_signals.c: the values read from vLLM V1/V0 and SGLang pages (our fixtures
 * and the real shared samples), and the pages that must be refused with a message. */
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
#include "load_signals.h"

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

/* Parses <page>; fails the test unless it succeeds. */
static struct rt_load_signals good(const char *page, size_t len)
{
    struct rt_load_signals ls;
    char err[256];
    int rc = rt_load_signals_parse(page, len, &ls, err, sizeof err);
    if (rc != 0)
        fail_msg("refused: %s", err);
    assert_string_equal(err, "");
    return ls;
}

/* Parses <text>; fails the test unless it is refused with <msg> in the message. */
static void bad(const char *text, size_t len, const char *msg)
{
    struct rt_load_signals ls;
    char err[256];
    memset(&ls, 0xab, sizeof ls);
    char *copy = rt_malloc(len ? len : 1);
    memcpy(copy, text, len);
    int rc = rt_load_signals_parse(copy, len, &ls, err, sizeof err);
    rt_free(copy);
    if (rc >= 0 || !strstr(err, msg))
        fail_msg("'%.*s': rc %d, message '%s', want '%s'", (int)len, text, rc,
                 rc >= 0 ? "" : err, msg);
    /* Never zeros that look like data: everything cleared, nothing marked present. */
    assert_int_equal(ls.present, 0);
    assert_int_equal(ls.flavour, RT_LOAD_SIGNALS_UNKNOWN);
    assert_true(ls.num_requests_running == 0 && ls.kv_cache_usage_perc == 0);
}

static void bad_str(const char *text, const char *msg)
{
    bad(text, strlen(text), msg);
}

static const unsigned ALL = RT_LOAD_SIGNALS_HAS_RUNNING | RT_LOAD_SIGNALS_HAS_WAITING
                            | RT_LOAD_SIGNALS_HAS_KV_CACHE | RT_LOAD_SIGNALS_HAS_MAX_FDS;

static void v1_two_engines(void **state)
{
    (void)state;
    size_t len;
    char *page = fixture("vllm_v1_two_engines.txt", &len);
    struct rt_load_signals ls = good(page, len);
    assert_int_equal(ls.flavour, RT_LOAD_SIGNALS_VLLM_V1);
    assert_string_equal(rt_load_signals_flavour_name(ls.flavour), "vllm-v1");
    assert_int_equal(ls.present, ALL);
    assert_true(ls.num_requests_running == 7.0); /* 3 + 4 over engine 0 and 1 */
    assert_true(ls.num_requests_waiting == 6.0); /* 1 + 5; waiting_by_reason not added */
    /* kv_cache_usage_perc wins over the deprecated gpu_cache_usage_perc (0.9): mean 0.5. */
    assert_float_equal(ls.kv_cache_usage_perc, 50.0, 1e-9);
    assert_int_equal(ls.kv_series, 2);
    assert_true(ls.process_max_fds == 1048576.0);
    rt_free(page);
}

static void v0_page(void **state)
{
    (void)state;
    size_t len;
    char *page = fixture("vllm_v0.txt", &len);
    struct rt_load_signals ls = good(page, len);
    assert_int_equal(ls.flavour, RT_LOAD_SIGNALS_VLLM_V0);
    assert_int_equal(ls.present, ALL);
    assert_true(ls.num_requests_running == 2.0);
    assert_true(ls.num_requests_waiting == 3.0);
    assert_float_equal(ls.kv_cache_usage_perc, 50.0, 1e-9); /* gpu_cache_usage_perc 0.5 */
    assert_true(ls.process_max_fds == 4096.0);
    rt_free(page);
}

static void sglang_underscore(void **state)
{
    (void)state;
    size_t len;
    char *page = fixture("sglang_underscore_no_newline.txt", &len);
    assert_true(page[len - 1] != '\n');
    struct rt_load_signals ls = good(page, len);
    assert_int_equal(ls.flavour, RT_LOAD_SIGNALS_SGLANG);
    assert_int_equal(ls.present, ALL & ~RT_LOAD_SIGNALS_HAS_MAX_FDS);
    assert_true(ls.num_requests_running == 16.0); /* 10 + 6 over two models */
    assert_true(ls.num_requests_waiting == 20.0);
    assert_float_equal(ls.kv_cache_usage_perc, 37.5, 1e-9); /* mean of 0.5 and 0.25 */
    assert_true(ls.process_max_fds == 0);
    rt_free(page);
}

static void partial_and_flavours(void **state)
{
    (void)state;
    /* Only waiting: present says so, the rest are unknown. */
    const char *p1 = "vllm:num_requests_waiting{model_name=\"m\"} 4\n";
    struct rt_load_signals ls = good(p1, strlen(p1));
    assert_int_equal(ls.present, RT_LOAD_SIGNALS_HAS_WAITING);
    assert_int_equal(ls.flavour, RT_LOAD_SIGNALS_VLLM_V0);
    assert_true(ls.num_requests_waiting == 4);
    /* An engine label alone makes it V1 even with the old cache name. */
    const char *p2 = "vllm:num_requests_running{engine=\"0\"} 1\n"
                     "vllm:gpu_cache_usage_perc{engine=\"0\"} 1\n";
    ls = good(p2, strlen(p2));
    assert_int_equal(ls.flavour, RT_LOAD_SIGNALS_VLLM_V1);
    assert_float_equal(ls.kv_cache_usage_perc, 100.0, 1e-9);
    /* The colon-prefixed SGLang names (as SGLang's docs show them). */
    const char *p3 = "sglang:num_running_reqs{model_name=\"m\"} 162.0\n"
                     "sglang:num_queue_reqs{model_name=\"m\"} 2826.0\n"
                     "sglang:token_usage{model_name=\"m\"} 0.28\n";
    ls = good(p3, strlen(p3));
    assert_int_equal(ls.flavour, RT_LOAD_SIGNALS_SGLANG);
    assert_true(ls.num_requests_running == 162 && ls.num_requests_waiting == 2826);
    assert_float_equal(ls.kv_cache_usage_perc, 28.0, 1e-9);
    /* Look-alike names are not ours. */
    bad_str("vllm:num_requests_running_total 3\nsglang:num_running_reqs_x 1\n"
            "sglangnum_queue_reqs 1\n", "no load metrics");
    /* Zero is a real value (idle), distinct from absent. */
    const char *p4 = "vllm:num_requests_running 0\n";
    ls = good(p4, strlen(p4));
    assert_int_equal(ls.present, RT_LOAD_SIGNALS_HAS_RUNNING);
    /* A NULL/0 error buffer is fine. */
    assert_true(rt_load_signals_parse("x", 1, &ls, NULL, 0) < 0);
}

static void refused_pages(void **state)
{
    (void)state;
    bad("", 0, "empty");
    bad_str("\n\n", "no load metrics");
    bad_str("# HELP process_max_fds x\nprocess_max_fds 1024\n", "no load metrics");
    bad_str("vllm:num_requests_running 1\nvllm:num_requests_waiting{a=\"", "line 2: unterminated");
    bad_str("vllm:num_requests_running NaN\n", "line 1: vllm:num_requests_running is NaN");
    bad_str("vllm:num_requests_waiting -1\n", "is negative");
    bad_str("vllm:num_requests_waiting +Inf\n", "is infinite");
    bad_str("vllm:num_requests_running 1\nprocess_max_fds -1\n", "line 2: process_max_fds is negative");
    bad_str("vllm:kv_cache_usage_perc 1.5\n", "above 1");
    bad_str("vllm:kv_cache_usage_perc -0.1\n", "negative");
    bad_str("sglang:token_usage NaN\n", "NaN");
    bad_str("vllm:num_requests_running{engine=\"0\",model_name=\"m\"} 1\n"
            "vllm:num_requests_running{model_name=\"m\",engine=\"0\"} 1\n",
            "line 2: series of vllm:num_requests_running repeated");
    bad_str("sglang:num_running_reqs 1\nsglang_num_running_reqs 1\n", "repeated");
    bad_str("vllm:num_requests_running 1\nsglang:num_queue_reqs 1\n", "both vLLM and SGLang");
    bad_str("vllm:num_requests_running 1\nprocess_max_fds{a=\"1\"} 1\nprocess_max_fds{a=\"2\"} 1\n",
            "several process_max_fds");
    bad_str("vllm:num_requests_running 1e308\nvllm:num_requests_running{a=\"\"} 1e308\n",
            "infinity");
    /* Too many series of one metric. */
    size_t cap = (RT_LOAD_SIGNALS_MAX_SERIES + 1) * 48, n = 0;
    char *big = rt_malloc(cap);
    for (int i = 0; i <= RT_LOAD_SIGNALS_MAX_SERIES; i++)
        n += (size_t)snprintf(big + n, cap - n, "vllm:num_requests_running{engine=\"%d\"} 1\n", i);
    bad(big, n, "more than 1024 series");
    /* Exactly the maximum passes and sums. */
    size_t cut = (size_t)(strrchr(big, 'v') - big);
    struct rt_load_signals ls = good(big, cut);
    assert_true(ls.num_requests_running == RT_LOAD_SIGNALS_MAX_SERIES);
    rt_free(big);
}

/* 1024 series with 64 labels that differ only in the last one: accepted, and fast (the repeat
 * check compares hashes before label sets). */
static void wide_series(void **state)
{
    (void)state;
    size_t cap = 1024 * 700, n = 0;
    char *page = rt_malloc(cap);
    for (int i = 0; i < 1024; i++) {
        n += (size_t)snprintf(page + n, cap - n, "vllm:num_requests_running{");
        for (int k = 0; k < 63; k++)
            n += (size_t)snprintf(page + n, cap - n, "l%d=\"v\",", k);
        n += (size_t)snprintf(page + n, cap - n, "z=\"%d\"} 2\n", i);
    }
    struct rt_load_signals ls = good(page, n);
    assert_true(ls.num_requests_running == 2048);
    /* The same set in another label order is a repeat. */
    n += (size_t)snprintf(page + n, cap - n, "vllm:num_requests_running{z=\"5\"");
    for (int k = 62; k >= 0; k--)
        n += (size_t)snprintf(page + n, cap - n, ",l%d=\"v\"", k);
    n += (size_t)snprintf(page + n, cap - n, "} 2\n");
    bad(page, n, "line 1025: series of vllm:num_requests_running repeated");
    rt_free(page);
}

static void garbled_fixtures(void **state)
{
    (void)state;
    static const struct {
        const char *file;
        const char *msg;
    } cases[] = {
        {"bad_truncated_label.txt", "line 4: unterminated label value"},
        {"bad_binary.bin", "line 2: "},
        {"bad_number.txt", "line 2: invalid value"},
        {"bad_empty.txt", "empty metrics page"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t len;
        char *page = fixture(cases[i].file, &len);
        bad(page, len, cases[i].msg);
        rt_free(page);
    }
}

/* Every prefix of a good page gives either signals or an error with a message. */
static void prefixes(void **state)
{
    (void)state;
    static const char *const names[] = {"vllm_v1_two_engines.txt", "vllm_v0.txt",
                                        "sglang_underscore_no_newline.txt"};
    for (size_t f = 0; f < sizeof names / sizeof names[0]; f++) {
        size_t len;
        char *page = fixture(names[f], &len);
        for (size_t n = 0; n <= len; n++) {
            char *copy = rt_malloc(n ? n : 1);
            memcpy(copy, page, n);
            struct rt_load_signals ls;
            char err[256];
            int rc = rt_load_signals_parse(copy, n, &ls, err, sizeof err);
            if (rc == 0) {
                assert_true(ls.present != 0);
                assert_true(ls.num_requests_running >= 0 && ls.kv_cache_usage_perc <= 100);
            } else {
                assert_true(rc < 0 && err[0] != '\0');
            }
            rt_free(copy);
        }
        rt_free(page);
    }
}

/* The real pages: exact values as found in the files. */
static void real_pages(void **state)
{
    (void)state;
    const char *shared = getenv("RT_SHARED_DIR");
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/vllm-samples", shared ? shared : "");
    size_t len = 0;
    char *page = shared ? slurp(dir, "metrics_v1.txt", &len) : NULL;
    if (!page) {
        print_message("shared vllm-samples not found (RT_SHARED_DIR): skipping real pages\n");
        skip();
    }
    /* V1: engine 0 idle, kv 0.0, process_max_fds 65535.0. */
    struct rt_load_signals ls = good(page, len);
    assert_int_equal(ls.flavour, RT_LOAD_SIGNALS_VLLM_V1);
    assert_int_equal(ls.present, ALL);
    assert_true(ls.num_requests_running == 0.0 && ls.num_requests_waiting == 0.0);
    assert_true(ls.kv_cache_usage_perc == 0.0);
    assert_int_equal(ls.kv_series, 1);
    assert_true(ls.process_max_fds == 65535.0);
    rt_free(page);

    /* V0: no engine label, gpu_cache_usage_perc 0.0, process_max_fds 1.048576e+06. */
    page = slurp(dir, "metrics_v0.txt", &len);
    assert_non_null(page);
    ls = good(page, len);
    assert_int_equal(ls.flavour, RT_LOAD_SIGNALS_VLLM_V0);
    assert_int_equal(ls.present, ALL);
    assert_true(ls.num_requests_running == 0.0 && ls.num_requests_waiting == 0.0);
    assert_true(ls.kv_cache_usage_perc == 0.0);
    assert_true(ls.process_max_fds == 1048576.0);
    rt_free(page);

    /* SGLang: 162 running, 2826 queued, token_usage 0.28; no process collector. */
    page = slurp(dir, "metrics_sglang.txt", &len);
    assert_non_null(page);
    ls = good(page, len);
    assert_int_equal(ls.flavour, RT_LOAD_SIGNALS_SGLANG);
    assert_int_equal(ls.present, ALL & ~RT_LOAD_SIGNALS_HAS_MAX_FDS);
    assert_true(ls.num_requests_running == 162.0);
    assert_true(ls.num_requests_waiting == 2826.0);
    assert_float_equal(ls.kv_cache_usage_perc, 28.0, 1e-9);
    rt_free(page);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(v1_two_engines),   cmocka_unit_test(v0_page),
        cmocka_unit_test(sglang_underscore), cmocka_unit_test(partial_and_flavours),
        cmocka_unit_test(refused_pages),    cmocka_unit_test(garbled_fixtures),
        cmocka_unit_test(prefixes),         cmocka_unit_test(real_pages),
        cmocka_unit_test(wide_series),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
