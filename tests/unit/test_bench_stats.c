/* Unit tests for bench_stats.c: vLLM's metric definitions, percentiles, errors by kind, reports. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <math.h>
#include <string.h>

#include "bench_stats.h"

#define NEAR(a, b) assert_true(fabs((a) - (b)) < 1e-9)

static void percentile_interpolates(void **state)
{
    (void)state;
    double v[] = {1, 2, 3, 4, 5};
    NEAR(rt_bench_percentile(v, 5, 50), 3);
    NEAR(rt_bench_percentile(v, 5, 100), 5);
    NEAR(rt_bench_percentile(v, 5, 25), 2);
    /* numpy.percentile([1,2,3,4,5], 99) = 4.96 */
    NEAR(rt_bench_percentile(v, 5, 99), 4.96);
    double w[] = {10, 20};
    NEAR(rt_bench_percentile(w, 2, 50), 15);
    NEAR(rt_bench_percentile(w, 1, 99), 10);
    NEAR(rt_bench_percentile(w, 0, 99), 0);
}

/* Two successes, one failure: the numbers vllm bench would print for the same records. */
static void summary_matches_definitions(void **state)
{
    (void)state;
    struct rt_bench_stats s;
    rt_bench_stats_init(&s);
    struct rt_bench_record a = {.err = RT_BENCH_OK, .http_status = 200, .prompt_tokens = 100,
                                .output_tokens = 11, .ttft_ms = 50, .e2el_ms = 150};
    double itl_a[] = {10, 10, 10, 10, 10, 10, 10, 10, 10, 10};
    struct rt_bench_record b = {.err = RT_BENCH_OK, .http_status = 200, .prompt_tokens = 200,
                                .output_tokens = 1, .ttft_ms = 70, .e2el_ms = 70};
    struct rt_bench_record c = {.err = RT_BENCH_EHTTP, .http_status = 503, .prompt_tokens = 999,
                                .output_tokens = 0};
    double itl_c[] = {1000, 1000};
    rt_bench_stats_add(&s, &a, itl_a, 10);
    rt_bench_stats_add(&s, &b, NULL, 0);
    rt_bench_stats_add(&s, &c, itl_c, 2); /* a failure's gaps are not kept */
    assert_int_equal(s.nitl, 10);

    double pcts[] = {50, 99};
    struct rt_bench_summary sum;
    assert_int_equal(rt_bench_stats_summarize(&s, 2.0, pcts, 2, &sum), 0);
    assert_int_equal(sum.completed, 2);
    assert_int_equal(sum.failed, 1);
    assert_int_equal(sum.total_input_tokens, 300);
    assert_int_equal(sum.total_output_tokens, 12);
    NEAR(sum.request_throughput, 1.0);
    NEAR(sum.output_throughput, 6.0);
    NEAR(sum.total_token_throughput, 156.0);
    NEAR(sum.ttft.mean, 60);
    NEAR(sum.ttft.median, 60);
    NEAR(sum.ttft.std, 10);
    NEAR(sum.ttft.pct[1], 50 + 20 * 0.99);
    /* TPOT only from the request with more than one token: (150-50)/(11-1). */
    assert_int_equal(sum.tpot.n, 1);
    NEAR(sum.tpot.mean, 10);
    NEAR(sum.itl.mean, 10);
    NEAR(sum.itl.pct[1], 10);
    NEAR(sum.e2el.mean, 110);
    assert_int_equal(sum.err_count[RT_BENCH_EHTTP], 1);
    assert_int_equal(s.status_count[503], 1);

    /* Invalid percentiles are refused. */
    double bad[] = {0};
    assert_int_equal(rt_bench_stats_summarize(&s, 2.0, bad, 1, &sum), -1);
    rt_bench_stats_free(&s);
}

static void empty_run_is_all_zero(void **state)
{
    (void)state;
    struct rt_bench_stats s;
    rt_bench_stats_init(&s);
    double pcts[] = {99};
    struct rt_bench_summary sum;
    assert_int_equal(rt_bench_stats_summarize(&s, 0, pcts, 1, &sum), 0);
    assert_int_equal(sum.completed, 0);
    NEAR(sum.request_throughput, 0);
    NEAR(sum.ttft.mean, 0);
    struct rt_buf out = {0};
    rt_bench_report_json(&sum, &s, NULL, &out);
    json_error_t je;
    json_t *j = json_loadb(rt_buf_data(&out), rt_buf_size(&out), 0, &je);
    assert_non_null(j);
    assert_int_equal(json_integer_value(json_object_get(j, "completed")), 0);
    json_decref(j);
    rt_buf_free(&out);
    rt_bench_stats_free(&s);
}

static void parse_percentiles(void **state)
{
    (void)state;
    double p[RT_BENCH_MAX_PCTS];
    size_t n;
    char err[128];
    assert_int_equal(rt_bench_parse_percentiles("50,90,99.9", p, &n, err, sizeof err), 0);
    assert_int_equal(n, 3);
    NEAR(p[2], 99.9);
    assert_int_equal(rt_bench_parse_percentiles("50,,99", p, &n, err, sizeof err), -1);
    assert_int_equal(rt_bench_parse_percentiles("0", p, &n, err, sizeof err), -1);
    assert_int_equal(rt_bench_parse_percentiles("101", p, &n, err, sizeof err), -1);
    assert_int_equal(rt_bench_parse_percentiles("abc", p, &n, err, sizeof err), -1);
    assert_int_equal(rt_bench_parse_percentiles("50,", p, &n, err, sizeof err), -1);
    assert_int_equal(rt_bench_parse_percentiles("", p, &n, err, sizeof err), -1);
}

static struct rt_bench_summary sum_with_errors(struct rt_bench_stats *s)
{
    rt_bench_stats_init(s);
    struct rt_bench_record ok = {.err = RT_BENCH_OK, .prompt_tokens = 4, .output_tokens = 3,
                                 .ttft_ms = 5, .e2el_ms = 9};
    double itl[] = {2, 2};
    rt_bench_stats_add(s, &ok, itl, 2);
    struct rt_bench_record r = {0};
    r.err = RT_BENCH_ECONNECT;
    rt_bench_stats_add(s, &r, NULL, 0);
    r.err = RT_BENCH_ETIMEOUT;
    rt_bench_stats_add(s, &r, NULL, 0);
    rt_bench_stats_add(s, &r, NULL, 0);
    r.err = RT_BENCH_EHTTP;
    r.http_status = 429;
    rt_bench_stats_add(s, &r, NULL, 0);
    r.http_status = 500;
    rt_bench_stats_add(s, &r, NULL, 0);
    r.err = RT_BENCH_ESTREAM;
    rt_bench_stats_add(s, &r, NULL, 0);
    r.err = RT_BENCH_ECANCELLED;
    rt_bench_stats_add(s, &r, NULL, 0);
    double pcts[] = {50, 90, 99};
    struct rt_bench_summary sum;
    assert_int_equal(rt_bench_stats_summarize(s, 1.0, pcts, 3, &sum), 0);
    return sum;
}

static void text_report_lists_every_error_kind(void **state)
{
    (void)state;
    struct rt_bench_stats s;
    struct rt_bench_summary sum = sum_with_errors(&s);
    struct rt_bench_report_info info = {.max_concurrency = 4};
    struct rt_buf out = {0};
    rt_bench_report_text(&sum, &s, &info, &out);
    (void)rt_buf_append(&out, "", 1, SIZE_MAX);
    const char *t = rt_buf_data(&out);
    assert_non_null(strstr(t, "============ Serving Benchmark Result ============\n"));
    assert_non_null(strstr(t, "Successful requests:                     1\n"));
    assert_non_null(strstr(t, "Failed requests:                         7\n"));
    assert_non_null(strstr(t, "Maximum request concurrency:             4\n"));
    assert_non_null(strstr(t, "---------------Time to First Token----------------\n"));
    assert_non_null(strstr(t, "-----Time per Output Token (excl. 1st token)------\n"));
    assert_non_null(strstr(t, "P90 TTFT (ms):"));
    assert_non_null(strstr(t, "Median ITL (ms):                         2.00\n"));
    assert_non_null(strstr(t, "Mean TPOT (ms):                          2.00\n"));
    assert_non_null(strstr(t, "connect error:                           1\n"));
    assert_non_null(strstr(t, "timeout:                                 2\n"));
    assert_non_null(strstr(t, "HTTP status 429:                         1\n"));
    assert_non_null(strstr(t, "HTTP status 500:                         1\n"));
    assert_non_null(strstr(t, "stream error event:                      1\n"));
    assert_non_null(strstr(t, "cancelled at end:                        1\n"));
    assert_non_null(strstr(t, "==================================================\n"));
    rt_buf_free(&out);
    rt_bench_stats_free(&s);
}

static void json_report_has_vllm_keys(void **state)
{
    (void)state;
    struct rt_bench_stats s;
    struct rt_bench_summary sum = sum_with_errors(&s);
    struct rt_bench_report_info info = {.model = "m\"x", .max_concurrency = 0, .stream = true};
    struct rt_buf out = {0};
    rt_bench_report_json(&sum, &s, &info, &out);
    json_error_t je;
    json_t *j = json_loadb(rt_buf_data(&out), rt_buf_size(&out), 0, &je);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "model")), "m\"x");
    assert_true(json_is_null(json_object_get(j, "max_concurrency")));
    assert_int_equal(json_integer_value(json_object_get(j, "completed")), 1);
    assert_int_equal(json_integer_value(json_object_get(j, "failed")), 7);
    const char *keys[] = {"duration", "request_throughput", "output_throughput",
                          "total_token_throughput", "mean_ttft_ms", "median_ttft_ms",
                          "std_ttft_ms", "p50_ttft_ms", "p90_ttft_ms", "p99_ttft_ms",
                          "mean_tpot_ms", "p99_tpot_ms", "mean_itl_ms", "p99_itl_ms",
                          "mean_e2el_ms", "p99_e2el_ms"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        assert_true(json_is_number(json_object_get(j, keys[i])));
    assert_true(fabs(json_number_value(json_object_get(j, "mean_itl_ms")) - 2) < 1e-9);
    json_t *errs = json_object_get(j, "errors");
    assert_int_equal(json_integer_value(json_object_get(errs, "connect")), 1);
    assert_int_equal(json_integer_value(json_object_get(errs, "timeout")), 2);
    assert_int_equal(json_integer_value(json_object_get(errs, "stream_error")), 1);
    assert_int_equal(json_integer_value(json_object_get(errs, "cancelled")), 1);
    assert_int_equal(json_integer_value(json_object_get(errs, "closed")), 0);
    assert_int_equal(json_integer_value(json_object_get(errs, "protocol")), 0);
    json_t *st = json_object_get(errs, "http_status");
    assert_int_equal(json_integer_value(json_object_get(st, "429")), 1);
    assert_int_equal(json_integer_value(json_object_get(st, "500")), 1);
    json_decref(j);
    rt_buf_free(&out);
    rt_bench_stats_free(&s);
}

static void many_records_grow(void **state)
{
    (void)state;
    struct rt_bench_stats s;
    rt_bench_stats_init(&s);
    double itl[100];
    for (int i = 0; i < 100; i++)
        itl[i] = i;
    for (int i = 0; i < 5000; i++) {
        struct rt_bench_record r = {.err = RT_BENCH_OK, .output_tokens = 101,
                                    .ttft_ms = (double)i, .e2el_ms = (double)i + 100};
        rt_bench_stats_add(&s, &r, itl, 100);
    }
    double pcts[] = {50};
    struct rt_bench_summary sum;
    assert_int_equal(rt_bench_stats_summarize(&s, 1, pcts, 1, &sum), 0);
    assert_int_equal(sum.itl.n, 500000);
    NEAR(sum.itl.mean, 49.5);
    NEAR(sum.ttft.median, 2499.5);
    NEAR(sum.tpot.mean, 1.0);
    rt_bench_stats_free(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(percentile_interpolates),
        cmocka_unit_test(summary_matches_definitions),
        cmocka_unit_test(empty_run_is_all_zero),
        cmocka_unit_test(parse_percentiles),
        cmocka_unit_test(text_report_lists_every_error_kind),
        cmocka_unit_test(json_report_has_vllm_keys),
        cmocka_unit_test(many_records_grow),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
