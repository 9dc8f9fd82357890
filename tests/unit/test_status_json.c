/* Unit tests of the management endpoints' JSON bodies: field names, values, rounding and the
 * fleet verdict thresholds, on fleets of fake backends in chosen states. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <jansson.h>
#include <netinet/in.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "fleet.h"
#include "health.h"
#include "status_json.h"

static struct rt_backend *fake(const char *url, int port, int capacity)
{
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return rt_backend_new(url, NULL, "127.0.0.1", port, "", (struct sockaddr *)&sin, capacity,
                          1.0, NULL);
}

/* Publishes <n> backends as the fleet and drops the caller's references. */
static struct rt_fleet_view *publish(struct rt_backend **b, size_t n)
{
    rt_fleet_publish(b, n);
    for (size_t i = 0; i < n; i++)
        rt_backend_unref(b[i]);
    return rt_fleet_acquire();
}

static json_t *parse(char *body)
{
    json_error_t err;
    json_t *j = json_loads(body, 0, &err);
    if (!j)
        fail_msg("not JSON: %s: %s", err.text, body);
    rt_free(body);
    return j;
}

static const char *str_at(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    assert_true(json_is_string(v));
    return json_string_value(v);
}

static json_int_t int_at(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    if (!json_is_integer(v))
        fail_msg("%s is not an integer", key);
    return json_integer_value(v);
}

static double real_at(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    if (!json_is_real(v))
        fail_msg("%s is not a real", key);
    return json_real_value(v);
}

static bool bool_at(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    assert_true(json_is_boolean(v));
    return json_is_true(v);
}

/* Asserts that <o> has exactly the keys in <keys> (NULL-terminated) plus those in <extra>. */
static void assert_keys(json_t *o, const char *const *keys, const char *const *extra)
{
    size_t want = 0;
    for (; keys[want]; want++)
        if (!json_object_get(o, keys[want]))
            fail_msg("missing key %s", keys[want]);
    size_t more = 0;
    for (; extra && extra[more]; more++)
        if (!json_object_get(o, extra[more]))
            fail_msg("missing extra key %s", extra[more]);
    if (json_object_size(o) != want + more) {
        char *s = json_dumps(o, 0);
        fail_msg("unexpected keys in %s", s);
    }
}

static int setup(void **state)
{
    rt_fleet_init();
    rt_fleet_set_check_gate(false);
    return 0;
}

static int teardown(void **state)
{
    rt_fleet_publish(NULL, 0);
    rt_fleet_set_check_gate(false);
    return 0;
}

static void test_root(void **state)
{
    json_t *j = parse(rt_status_json_root(12.34));
    assert_string_equal(str_at(j, "service"), "vLLM Router");
    assert_string_equal(str_at(j, "version"), RT_VERSION);
    assert_string_equal(str_at(j, "status"), "running");
    assert_true(real_at(j, "uptime_seconds") == 12.3);
    json_t *eps = json_object_get(j, "endpoints");
    assert_true(json_is_array(eps));
    bool health = false, load = false;
    for (size_t i = 0; i < json_array_size(eps); i++) {
        const char *e = json_string_value(json_array_get(eps, i));
        health |= e && strcmp(e, "/health") == 0;
        load |= e && strcmp(e, "/load-stats") == 0;
    }
    assert_true(health && load);
    json_decref(j);
}

static void test_health_no_servers(void **state)
{
    struct rt_fleet_view *v = publish(NULL, 0);
    struct rt_health_conf conf;
    rt_health_conf_default(&conf);
    int status = 0;
    json_t *j = parse(rt_status_json_health(v, &conf, &status));
    assert_int_equal(status, 503);
    assert_string_equal(str_at(j, "status"), "no_servers");
    assert_int_equal(int_at(j, "total_servers"), 0);
    assert_int_equal(int_at(j, "healthy_servers"), 0);
    assert_int_equal(int_at(j, "unhealthy_servers"), 0);
    assert_true(real_at(j, "health_score") == 0.0);
    assert_int_equal(json_array_size(json_object_get(j, "servers")), 0);
    json_decref(j);
    rt_fleet_view_unref(v);
}

/* <healthy> of <total> servers healthy gives <want> and <http>. */
static void check_verdict(size_t healthy, size_t total, const char *want, int http)
{
    struct rt_backend *b[10];
    char url[64];
    for (size_t i = 0; i < total; i++) {
        snprintf(url, sizeof url, "http://127.0.0.1:%zu", 9000 + i);
        b[i] = fake(url, (int)(9000 + i), 4);
        atomic_store(&b[i]->healthy, i < healthy);
    }
    struct rt_fleet_view *v = publish(b, total);
    struct rt_health_conf conf;
    rt_health_conf_default(&conf);
    int status = 0;
    json_t *j = parse(rt_status_json_health(v, &conf, &status));
    if (strcmp(str_at(j, "status"), want) != 0)
        fail_msg("%zu/%zu: %s, want %s", healthy, total, str_at(j, "status"), want);
    assert_int_equal(status, http);
    assert_int_equal(int_at(j, "total_servers"), (json_int_t)total);
    assert_int_equal(int_at(j, "healthy_servers"), (json_int_t)healthy);
    assert_int_equal(int_at(j, "unhealthy_servers"), (json_int_t)(total - healthy));
    assert_true(fabs(real_at(j, "health_score") - (double)healthy / total) < 1e-9);
    json_decref(j);
    rt_fleet_view_unref(v);
}

static void test_health_thresholds(void **state)
{
    check_verdict(5, 5, "healthy", 200);
    check_verdict(4, 5, "healthy", 200);   /* exactly 80 % */
    check_verdict(3, 4, "degraded", 200);  /* 75 % */
    check_verdict(3, 5, "degraded", 200);
    check_verdict(1, 2, "degraded", 200);  /* exactly 50 % */
    check_verdict(2, 5, "unhealthy", 200); /* 40 %, but one server still serves */
    check_verdict(0, 3, "unhealthy", 503);
}

static void test_health_servers(void **state)
{
    struct rt_backend *b[2] = {fake("http://127.0.0.1:9100", 9100, 3),
                               fake("http://127.0.0.1:9101", 9101, 3)};
    struct rt_health_stats st = {
        .last_check_unix_ms = 1714564800123, /* 2024-05-01T12:00:00.123Z */
        .consecutive_failures = 2,
        .success_rate = 0.7,
        .avg_response_time_s = 0.015,
        .last_response_time_s = 0.25,
        .total_checks = 42,
    };
    rt_backend_set_health_stats(b[0], &st);
    const char *models[] = {"llama", "qwen"};
    rt_backend_set_models(b[0], models, 2);
    atomic_store(&b[0]->circuit, RT_CIRCUIT_OPEN);
    struct rt_fleet_view *v = publish(b, 2);

    struct rt_health_conf conf;
    rt_health_conf_default(&conf);
    conf.interval_s = 7;
    conf.window_size = 12;
    conf.enabled = false;
    int status = 0;
    json_t *j = parse(rt_status_json_health(v, &conf, &status));
    assert_int_equal(status, 200);
    static const char *const top[] = {"status", "health_score", "total_servers",
                                      "healthy_servers", "unhealthy_servers", "servers",
                                      "config", NULL};
    assert_keys(j, top, NULL);

    json_t *s0 = json_array_get(json_object_get(j, "servers"), 0);
    static const char *const keys[] = {"url", "healthy", "last_check", "consecutive_failures",
                                       "success_rate", "avg_response_time",
                                       "last_response_time", "total_checks",
                                       "supported_models", NULL};
    static const char *const extra[] = {"circuit_state", "draining", NULL};
    assert_keys(s0, keys, extra);
    assert_string_equal(str_at(s0, "url"), "http://127.0.0.1:9100");
    assert_true(bool_at(s0, "healthy"));
    assert_string_equal(str_at(s0, "last_check"), "2024-05-01T12:00:00.123Z");
    assert_int_equal(int_at(s0, "consecutive_failures"), 2);
    assert_true(real_at(s0, "success_rate") == 0.7);
    assert_true(real_at(s0, "avg_response_time") == 0.015);
    assert_true(real_at(s0, "last_response_time") == 0.25);
    assert_int_equal(int_at(s0, "total_checks"), 42);
    json_t *sm = json_object_get(s0, "supported_models");
    assert_int_equal(json_array_size(sm), 2);
    assert_string_equal(json_string_value(json_array_get(sm, 1)), "qwen");
    assert_string_equal(str_at(s0, "circuit_state"), "open");

    /* Never checked: last_check is null, the rate is that of an empty window. */
    json_t *s1 = json_array_get(json_object_get(j, "servers"), 1);
    assert_true(json_is_null(json_object_get(s1, "last_check")));
    assert_int_equal(int_at(s1, "total_checks"), 0);
    assert_true(real_at(s1, "success_rate") == 1.0);
    assert_int_equal(json_array_size(json_object_get(s1, "supported_models")), 0);
    assert_string_equal(str_at(s1, "circuit_state"), "closed");

    json_t *cfg = json_object_get(j, "config");
    assert_true(real_at(cfg, "health_check_interval") == 7.0);
    assert_true(real_at(cfg, "health_check_timeout") == 5.0);
    assert_true(real_at(cfg, "health_check_min_success_rate") == 0.8);
    assert_true(real_at(cfg, "health_check_max_response_time") == 2.0);
    assert_int_equal(int_at(cfg, "health_check_window_size"), 12);
    assert_int_equal(int_at(cfg, "health_check_consecutive_failures"), 3);
    assert_false(bool_at(cfg, "enable_active_health_check"));
    json_decref(j);
    rt_fleet_view_unref(v);
}

/* With the check gate on, a backend no check has judged yet is not healthy anywhere. */
static void test_unchecked_gate(void **state)
{
    struct rt_backend *b[2] = {fake("http://127.0.0.1:9200", 9200, 2),
                               fake("http://127.0.0.1:9201", 9201, 2)};
    atomic_store(&b[0]->checked, true);
    const char *models[] = {"m0"};
    rt_backend_set_models(b[1], models, 1);
    struct rt_fleet_view *v = publish(b, 2);
    rt_fleet_set_check_gate(true);
    assert_false(rt_backend_available(v->b[1], rt_now_ms()));
    assert_true(rt_backend_available(v->b[0], rt_now_ms()));
    struct rt_health_conf conf;
    rt_health_conf_default(&conf);
    int status = 0;
    json_t *j = parse(rt_status_json_health(v, &conf, &status));
    assert_int_equal(int_at(j, "healthy_servers"), 1);
    assert_string_equal(str_at(j, "status"), "degraded");
    assert_false(bool_at(json_array_get(json_object_get(j, "servers"), 1), "healthy"));
    json_decref(j);
    j = parse(rt_status_json_models(v, 1));
    assert_int_equal(json_array_size(json_object_get(j, "data")), 0);
    json_decref(j);
    rt_fleet_set_check_gate(false);
    assert_true(rt_backend_available(v->b[1], rt_now_ms()));
    rt_fleet_view_unref(v);
}

static void test_load_stats_seed_example(void **state)
{
    struct rt_backend *b[3] = {fake("http://gpu-server-1:8081", 8081, 3),
                               fake("http://gpu-server-2:8088", 8088, 5),
                               fake("http://gpu-server-3:8089", 8089, 4)};
    atomic_store(&b[0]->inflight, 2);
    atomic_store(&b[1]->inflight, 1);
    atomic_store(&b[2]->inflight, 2);
    uint64_t now = rt_now_ms();
    rt_backend_scraped(b[0], 2, 0, 78.5, 65535, now - 1500);
    const char *models[] = {"llama"};
    rt_backend_set_models(b[0], models, 1);
    struct rt_fleet_view *v = publish(b, 3);

    json_t *j = parse(rt_status_json_load(v, now));
    static const char *const top[] = {"servers", "summary", NULL};
    assert_keys(j, top, NULL);
    json_t *s0 = json_array_get(json_object_get(j, "servers"), 0);
    static const char *const keys[] = {"url", "current_load", "max_capacity",
                                       "available_capacity", "utilization_percent", "status",
                                       "detailed_metrics", NULL};
    static const char *const extra[] = {"circuit_state", "models", "scrape_ok",
                                        "last_scrape_age_seconds", NULL};
    assert_keys(s0, keys, extra);
    assert_string_equal(str_at(s0, "url"), "http://gpu-server-1:8081");
    assert_int_equal(int_at(s0, "current_load"), 2);
    assert_int_equal(int_at(s0, "max_capacity"), 3);
    assert_int_equal(int_at(s0, "available_capacity"), 1);
    assert_true(real_at(s0, "utilization_percent") == 66.7);
    assert_true(bool_at(s0, "status"));
    json_t *dm = json_object_get(s0, "detailed_metrics");
    static const char *const dkeys[] = {"num_requests_running", "num_requests_waiting",
                                        "gpu_cache_usage_perc", "process_max_fds", NULL};
    assert_keys(dm, dkeys, NULL);
    assert_int_equal(int_at(dm, "num_requests_running"), 2);
    assert_int_equal(int_at(dm, "num_requests_waiting"), 0);
    assert_true(real_at(dm, "gpu_cache_usage_perc") == 78.5);
    assert_int_equal(int_at(dm, "process_max_fds"), 65535);
    assert_true(bool_at(s0, "scrape_ok"));
    assert_true(real_at(s0, "last_scrape_age_seconds") == 1.5);
    assert_string_equal(str_at(s0, "circuit_state"), "closed");
    assert_string_equal(json_string_value(json_array_get(json_object_get(s0, "models"), 0)),
                        "llama");

    /* Never scraped: zeros, and no age. */
    json_t *s1 = json_array_get(json_object_get(j, "servers"), 1);
    assert_true(real_at(s1, "utilization_percent") == 20.0);
    json_t *dm1 = json_object_get(s1, "detailed_metrics");
    assert_int_equal(int_at(dm1, "num_requests_running"), 0);
    assert_true(real_at(dm1, "gpu_cache_usage_perc") == 0.0);
    assert_false(bool_at(s1, "scrape_ok"));
    assert_true(json_is_null(json_object_get(s1, "last_scrape_age_seconds")));

    json_t *sum = json_object_get(j, "summary");
    static const char *const skeys[] = {"total_servers", "healthy_servers", "total_active_load",
                                        "total_capacity", "overall_utilization_percent", NULL};
    assert_keys(sum, skeys, NULL);
    assert_int_equal(int_at(sum, "total_servers"), 3);
    assert_int_equal(int_at(sum, "healthy_servers"), 3);
    assert_int_equal(int_at(sum, "total_active_load"), 5);
    assert_int_equal(int_at(sum, "total_capacity"), 12);
    assert_true(real_at(sum, "overall_utilization_percent") == 41.7);
    json_decref(j);
    for (int i = 0; i < 3; i++)
        atomic_store(&v->b[i]->inflight, 0);
    rt_fleet_view_unref(v);
}

static void test_load_stats_states(void **state)
{
    struct rt_backend *b[4] = {fake("http://127.0.0.1:9300", 9300, 3),
                               fake("http://127.0.0.1:9301", 9301, 3),
                               fake("http://127.0.0.1:9302", 9302, 6),
                               fake("http://127.0.0.1:9303", 9303, 7)};
    atomic_store(&b[0]->inflight, 5);   /* over capacity (seed's "no queue" mode) */
    atomic_store(&b[1]->healthy, false);
    atomic_store(&b[2]->circuit, RT_CIRCUIT_OPEN);
    atomic_store(&b[3]->inflight, 1);   /* 1/7 = 14.2857 % */
    rt_backend_scraped(b[3], 3.4, 1.6, 12.345, -1, rt_now_ms());
    struct rt_fleet_view *v = publish(b, 4);
    json_t *j = parse(rt_status_json_load(v, rt_now_ms()));
    json_t *sv = json_object_get(j, "servers");
    json_t *s0 = json_array_get(sv, 0);
    assert_int_equal(int_at(s0, "available_capacity"), 0);
    assert_true(real_at(s0, "utilization_percent") == 166.7);
    assert_false(bool_at(s0, "status"));
    assert_false(bool_at(json_array_get(sv, 1), "status")); /* unhealthy */
    json_t *s2 = json_array_get(sv, 2);
    assert_false(bool_at(s2, "status"));                  /* circuit open */
    assert_string_equal(str_at(s2, "circuit_state"), "open");
    json_t *s3 = json_array_get(sv, 3);
    assert_true(bool_at(s3, "status"));
    assert_true(real_at(s3, "utilization_percent") == 14.3);
    json_t *dm = json_object_get(s3, "detailed_metrics");
    assert_int_equal(int_at(dm, "num_requests_running"), 3);
    assert_int_equal(int_at(dm, "num_requests_waiting"), 2);
    assert_true(real_at(dm, "gpu_cache_usage_perc") == 12.3);
    assert_int_equal(int_at(dm, "process_max_fds"), 0); /* unknown */
    json_t *sum = json_object_get(j, "summary");
    assert_int_equal(int_at(sum, "healthy_servers"), 3);
    assert_int_equal(int_at(sum, "total_active_load"), 6);
    assert_int_equal(int_at(sum, "total_capacity"), 19);
    assert_true(real_at(sum, "overall_utilization_percent") == 31.6); /* 6/19 = 31.58 */
    json_decref(j);
    atomic_store(&v->b[0]->inflight, 0);
    atomic_store(&v->b[3]->inflight, 0);
    rt_fleet_view_unref(v);

    /* An empty fleet has zero utilisation, not a division by zero. */
    v = publish(NULL, 0);
    j = parse(rt_status_json_load(v, rt_now_ms()));
    assert_true(real_at(json_object_get(j, "summary"), "overall_utilization_percent") == 0.0);
    json_decref(j);
    rt_fleet_view_unref(v);
}

static void test_round1(void **state)
{
    assert_true(rt_status_json_round1(66.666) == 66.7);
    assert_true(rt_status_json_round1(41.65) == 41.7 || rt_status_json_round1(41.65) == 41.6);
    assert_true(rt_status_json_round1(0.04) == 0.0);
    assert_true(rt_status_json_round1(99.95) == 100.0);
    assert_true(rt_status_json_round1(NAN) == 0.0);
}

static void test_models_union(void **state)
{
    struct rt_backend *b[3] = {fake("http://127.0.0.1:9400", 9400, 2),
                               fake("http://127.0.0.1:9401", 9401, 2),
                               fake("http://127.0.0.1:9402", 9402, 2)};
    const char *m0[] = {"llama", "qwen"};
    const char *m1[] = {"qwen", "mistral"};
    const char *m2[] = {"secret"};
    rt_backend_set_models(b[0], m0, 2);
    rt_backend_set_models(b[1], m1, 2);
    rt_backend_set_models(b[2], m2, 1);
    atomic_store(&b[2]->healthy, false); /* its models are not offered */
    struct rt_fleet_view *v = publish(b, 3);
    json_t *j = parse(rt_status_json_models(v, 1700000000));
    assert_string_equal(str_at(j, "object"), "list");
    json_t *data = json_object_get(j, "data");
    assert_int_equal(json_array_size(data), 3);
    const char *want[] = {"llama", "qwen", "mistral"};
    for (size_t i = 0; i < 3; i++) {
        json_t *o = json_array_get(data, i);
        static const char *const keys[] = {"id", "object", "created", "owned_by", NULL};
        assert_keys(o, keys, NULL);
        assert_string_equal(str_at(o, "id"), want[i]);
        assert_string_equal(str_at(o, "object"), "model");
        assert_int_equal(int_at(o, "created"), 1700000000);
        assert_string_equal(str_at(o, "owned_by"), "vllm-router");
    }
    json_decref(j);
    rt_fleet_view_unref(v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_root, setup, teardown),
        cmocka_unit_test_setup_teardown(test_health_no_servers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_health_thresholds, setup, teardown),
        cmocka_unit_test_setup_teardown(test_health_servers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unchecked_gate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_stats_seed_example, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_stats_states, setup, teardown),
        cmocka_unit_test_setup_teardown(test_round1, setup, teardown),
        cmocka_unit_test_setup_teardown(test_models_union, setup, teardown),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    rt_fleet_shutdown();
    return rc;
}
