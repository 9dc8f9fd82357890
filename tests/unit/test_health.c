/* Unit tests of the health monitor against a small HTTP server on the same libuv loop
 * (127.0.0.1) whose /health, /v1/models and /metrics answers the tests control: status,
 * delay, garbage. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "fleet.h"
#include "health.h"
#include "http_server.h"

#define NFAKE 3

/* What the fake server answers under the prefix "/s<i>" (one fake backend each). */
struct fake {
    int health_status;
    unsigned health_delay_ms;
    const char *models;   /* /v1/models body */
    const char *metrics;  /* /metrics body */
    int metrics_status;
    unsigned n_health, n_models, n_metrics;
    char host[64];        /* last Host header seen */
    char auth[128];       /* last Authorization header seen */
};

static uv_loop_t loop;
static struct rt_http_server *server;
static int port;
static struct fake fakes[NFAKE];
static struct rt_health *mon;

static const char good_metrics[] =
    "# HELP vllm:num_requests_running Number of requests in model execution batches.\n"
    "# TYPE vllm:num_requests_running gauge\n"
    "vllm:num_requests_running{engine=\"0\",model_name=\"m\"} 3.0\n"
    "# TYPE vllm:num_requests_waiting gauge\n"
    "vllm:num_requests_waiting{engine=\"0\",model_name=\"m\"} 2.0\n"
    "# TYPE vllm:kv_cache_usage_perc gauge\n"
    "vllm:kv_cache_usage_perc{engine=\"0\",model_name=\"m\"} 0.25\n"
    "# TYPE process_max_fds gauge\n"
    "process_max_fds 65536.0\n";

/* A response held back for <delay_ms>. */
struct delayed {
    uv_timer_t timer;
    struct rt_http_exchange *ex;
    int status;
    const char *body;
};

static void on_delayed_closed(uv_handle_t *h)
{
    rt_free(h->data);
}

static void on_delay(uv_timer_t *t)
{
    struct delayed *d = t->data;
    rt_http_respond(d->ex, d->status, "Content-Type: text/plain\r\n", d->body, strlen(d->body));
    uv_close((uv_handle_t *)&d->timer, on_delayed_closed);
}

static void copy_header(struct rt_http_exchange *ex, const char *name, char *out, size_t outlen)
{
    const struct rt_http_header *h =
        rt_http_find_header(ex->req.headers, ex->req.num_headers, rt_str_cstr(name));
    snprintf(out, outlen, "%.*s", h ? (int)h->value.len : 0, h ? h->value.ptr : "");
}

static void on_request(struct rt_http_exchange *ex, void *ctx)
{
    struct rt_str path = ex->req.path;
    int i = -1;
    if (path.len >= 3 && path.ptr[0] == '/' && path.ptr[1] == 's' && path.ptr[2] >= '0' &&
        path.ptr[2] < '0' + NFAKE)
        i = path.ptr[2] - '0';
    if (i < 0) {
        rt_http_respond(ex, 404, NULL, "no", 2);
        return;
    }
    struct fake *f = &fakes[i];
    copy_header(ex, "Host", f->host, sizeof f->host);
    copy_header(ex, "Authorization", f->auth, sizeof f->auth);
    struct rt_str rest = rt_str_make(path.ptr + 3, path.len - 3);
    if (rt_str_eq(rest, RT_STR_LIT("/health"))) {
        f->n_health++;
        struct delayed *d = rt_calloc(1, sizeof *d);
        d->ex = ex;
        d->status = f->health_status;
        d->body = "";
        uv_timer_init(&loop, &d->timer);
        d->timer.data = d;
        uv_timer_start(&d->timer, on_delay, f->health_delay_ms, 0);
    } else if (rt_str_eq(rest, RT_STR_LIT("/v1/models"))) {
        f->n_models++;
        rt_http_respond(ex, 200, "Content-Type: application/json\r\n", f->models,
                        strlen(f->models));
    } else if (rt_str_eq(rest, RT_STR_LIT("/metrics"))) {
        f->n_metrics++;
        rt_http_respond(ex, f->metrics_status, NULL, f->metrics, strlen(f->metrics));
    } else {
        rt_http_respond(ex, 404, NULL, "no", 2);
    }
}

static struct rt_backend *backend(int i, const char *api_key)
{
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    char url[64], base[8];
    snprintf(base, sizeof base, "/s%d", i);
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, base);
    return rt_backend_new(url, NULL, "127.0.0.1", port, base, (struct sockaddr *)&sin, 4, 1.0,
                          api_key);
}

static void conf_fast(struct rt_health_conf *c)
{
    rt_health_conf_default(c);
    c->interval_s = 0.05;
    c->timeout_s = 0.3;
    c->max_response_time_s = 0.1;
    c->window_size = 4;
    c->min_success_rate = 0.5;
    c->consecutive_failures = 2;
    c->scrape_interval_s = 0.05;
    c->scrape_timeout_s = 0.2;
}

typedef bool (*pred_fn)(void *arg);

/* Runs the loop until <pred> holds or <ms> passed; returns whether it held. */
static bool run_until(pred_fn pred, void *arg, unsigned ms)
{
    uint64_t end = rt_now_ms() + ms;
    while (!pred(arg)) {
        if (rt_now_ms() > end)
            return false;
        uv_run(&loop, UV_RUN_ONCE);
    }
    return true;
}

static bool never(void *arg)
{
    return false;
}

static void run_for(unsigned ms)
{
    run_until(never, NULL, ms);
}

static bool is_checked(void *arg)
{
    return atomic_load(&((struct rt_backend *)arg)->checked);
}
static bool is_healthy(void *arg)
{
    return rt_backend_is_healthy(arg);
}
static bool is_unhealthy(void *arg)
{
    return atomic_load(&((struct rt_backend *)arg)->checked) && !rt_backend_is_healthy(arg);
}
static bool is_scraped(void *arg)
{
    return atomic_load(&((struct rt_backend *)arg)->scrape_ok);
}
static bool not_scraped(void *arg)
{
    return !atomic_load(&((struct rt_backend *)arg)->scrape_ok);
}
static bool has_models(void *arg)
{
    struct rt_models *m = rt_backend_models(arg);
    bool yes = m != NULL;
    rt_models_unref(m);
    return yes;
}

static int setup(void **state)
{
    uv_loop_init(&loop);
    struct rt_http_server_conf sc = {
        .max_head_bytes = 16384,
        .max_body_bytes = 65536,
        .head_timeout_ms = 5000,
        .body_timeout_ms = 5000,
        .keepalive_timeout_ms = 5000,
        .max_connections = 64,
        .output_high_water = 1 << 20,
    };
    char err[256];
    if (rt_http_server_start(&loop, "127.0.0.1", 0, false, &sc, on_request, NULL, &server, err,
                             sizeof err) != 0)
        fail_msg("%s", err);
    port = rt_http_server_port(server);
    for (int i = 0; i < NFAKE; i++)
        fakes[i] = (struct fake){
            .health_status = 200,
            .models = "{\"object\":\"list\",\"data\":[{\"id\":\"m-a\",\"object\":\"model\"},"
                      "{\"id\":\"m-b\",\"object\":\"model\"},{\"id\":\"m-a\"}]}",
            .metrics = good_metrics,
            .metrics_status = 200,
        };
    rt_fleet_init();
    mon = NULL;
    return 0;
}

static bool stopped_flag;

static void on_stopped(void *arg)
{
    stopped_flag = true;
}

static bool is_stopped(void *arg)
{
    return stopped_flag;
}

static int teardown(void **state)
{
    if (mon) {
        stopped_flag = false;
        rt_health_stop(mon, on_stopped, NULL);
        assert_true(run_until(is_stopped, NULL, 2000));
        mon = NULL;
    }
    assert_false(rt_fleet_check_gate());
    rt_fleet_publish(NULL, 0);
    rt_http_server_close(server);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    return 0;
}

/* Publishes the backends and drops the caller's references; returns the first as seen in the
 * view (kept alive by it). */
static void publish(struct rt_backend **b, size_t n)
{
    rt_fleet_publish(b, n);
    for (size_t i = 0; i < n; i++)
        rt_backend_unref(b[i]);
}

/* A new backend gets no traffic before its first passing check; then models, load and the
 * request details (Host, prefix, Authorization). */
static void test_first_check(void **state)
{
    struct rt_backend *b = backend(0, "sekrit");
    rt_backend_ref(b);
    publish(&b, 1);
    struct rt_health_conf c;
    conf_fast(&c);
    mon = rt_health_start(&loop, &c);
    assert_true(rt_fleet_check_gate());
    assert_false(atomic_load(&b->checked));
    assert_false(rt_backend_available(b, rt_now_ms()));
    assert_false(rt_backend_is_healthy(b));

    assert_true(run_until(is_checked, b, 2000));
    assert_true(rt_backend_is_healthy(b));
    assert_true(rt_backend_available(b, rt_now_ms()));
    struct rt_health_stats st;
    rt_backend_health_stats(b, &st);
    assert_true(st.total_checks >= 1);
    assert_int_equal(st.consecutive_failures, 0);
    assert_true(st.success_rate == 1.0);
    assert_true(st.last_check_unix_ms > 1600000000000);
    assert_true(st.last_response_time_s >= 0 && st.last_response_time_s < 0.1);

    assert_true(run_until(has_models, b, 2000));
    struct rt_models *m = rt_backend_models(b);
    assert_int_equal(m->n, 2); /* de-duplicated */
    assert_true(rt_str_eq(m->ids[0], RT_STR_LIT("m-a")));
    assert_true(rt_str_eq(m->ids[1], RT_STR_LIT("m-b")));
    rt_models_unref(m);

    assert_true(run_until(is_scraped, b, 2000));
    assert_true(atomic_load(&b->scraped_running) == 3.0);
    assert_true(atomic_load(&b->scraped_waiting) == 2.0);
    assert_true(atomic_load(&b->kv_cache_perc) == 25.0);
    assert_int_equal(atomic_load(&b->max_fds), 65536);

    char want_host[64];
    snprintf(want_host, sizeof want_host, "127.0.0.1:%d", port);
    assert_string_equal(fakes[0].host, want_host);
    assert_string_equal(fakes[0].auth, "Bearer sekrit");
    assert_int_equal(atomic_load(&b->inflight), 0);
    rt_backend_unref(b);
}

/* Healthy -> unhealthy after the consecutive-failure threshold -> healthy again by itself. */
static void test_fail_and_recover(void **state)
{
    struct rt_backend *b = backend(0, NULL);
    rt_backend_ref(b);
    publish(&b, 1);
    struct rt_health_conf c;
    conf_fast(&c);
    mon = rt_health_start(&loop, &c);
    assert_true(run_until(is_checked, b, 2000));
    assert_true(rt_backend_is_healthy(b));

    fakes[0].health_status = 500;
    assert_true(run_until(is_unhealthy, b, 2000));
    struct rt_health_stats st;
    rt_backend_health_stats(b, &st);
    assert_true(st.consecutive_failures >= 2);
    assert_true(st.success_rate < 1.0);
    assert_false(rt_backend_available(b, rt_now_ms()));
    assert_string_equal(fakes[0].auth, ""); /* no key, no header */

    run_for(200); /* stays down while it fails */
    assert_false(rt_backend_is_healthy(b));

    fakes[0].health_status = 200;
    uint64_t t0 = rt_now_ms();
    assert_true(run_until(is_healthy, b, 2000));
    /* The first pass after an outage brings it back: one interval, not a window's worth. */
    assert_true(rt_now_ms() - t0 < 1000);
    rt_backend_health_stats(b, &st);
    assert_int_equal(st.consecutive_failures, 0);
    assert_true(st.success_rate == 1.0);
    assert_int_equal(atomic_load(&b->inflight), 0);
    rt_backend_unref(b);
}

/* One failure below the threshold with the window still above the rate keeps it healthy. */
static void test_single_failure_tolerated(void **state)
{
    struct rt_backend *b = backend(0, NULL);
    rt_backend_ref(b);
    publish(&b, 1);
    struct rt_health_conf c;
    conf_fast(&c);
    c.interval_s = 0.1;
    c.consecutive_failures = 3;
    c.min_success_rate = 0.5;
    mon = rt_health_start(&loop, &c);
    assert_true(run_until(is_checked, b, 2000));
    run_for(350);
    struct rt_health_stats st;
    rt_backend_health_stats(b, &st);
    uint64_t before = st.total_checks;
    fakes[0].health_status = 503;
    unsigned n0 = fakes[0].n_health;
    while (fakes[0].n_health == n0)
        uv_run(&loop, UV_RUN_ONCE);
    fakes[0].health_status = 200; /* exactly one failed check */
    run_for(400);
    rt_backend_health_stats(b, &st);
    assert_true(st.total_checks > before);
    assert_true(rt_backend_is_healthy(b));
    rt_backend_unref(b);
}

/* A slow /health while /metrics answers is busy, not dead; without the metrics it fails. */
static void test_slow_health_with_good_scrape(void **state)
{
    struct rt_backend *b = backend(1, NULL);
    rt_backend_ref(b);
    publish(&b, 1);
    struct rt_health_conf c;
    conf_fast(&c);
    mon = rt_health_start(&loop, &c);
    assert_true(run_until(is_checked, b, 2000));
    assert_true(run_until(is_scraped, b, 2000));

    fakes[1].health_delay_ms = 150; /* over max_response_time (0.1 s), under the timeout */
    run_for(800);
    struct rt_health_stats st;
    rt_backend_health_stats(b, &st);
    assert_true(rt_backend_is_healthy(b));
    assert_int_equal(st.consecutive_failures, 0);
    assert_true(st.last_response_time_s >= 0.14);

    fakes[1].health_delay_ms = 1000; /* past the timeout */
    uint64_t before = st.total_checks;
    run_for(1000);
    rt_backend_health_stats(b, &st);
    assert_true(st.total_checks >= before + 2);
    assert_true(rt_backend_is_healthy(b));
    assert_int_equal(st.consecutive_failures, 0);

    /* Now the metrics go bad too: the slow checks count. */
    fakes[1].metrics = "this is { not a metrics page\n";
    assert_true(run_until(not_scraped, b, 2000));
    assert_true(run_until(is_unhealthy, b, 3000));
    rt_backend_unref(b);
}

/* A garbled page is a failed scrape, not zeros; a 500 too. Models follow the server. */
static void test_garbled_metrics_and_models(void **state)
{
    struct rt_backend *b = backend(2, NULL);
    rt_backend_ref(b);
    publish(&b, 1);
    struct rt_health_conf c;
    conf_fast(&c);
    mon = rt_health_start(&loop, &c);
    assert_true(run_until(is_scraped, b, 2000));
    assert_true(run_until(has_models, b, 2000));

    fakes[2].metrics = "vllm:num_requests_running{engine=\"0\" 3\n";
    assert_true(run_until(not_scraped, b, 2000));
    assert_true(atomic_load(&b->scraped_running) == 3.0); /* the last good figure, not a zero */
    assert_true(rt_backend_est_running(b) == 0);          /* falls back to in-flight */

    fakes[2].metrics = good_metrics;
    assert_true(run_until(is_scraped, b, 2000));
    fakes[2].metrics_status = 500;
    assert_true(run_until(not_scraped, b, 2000));

    fakes[2].models = "{\"object\":\"list\",\"data\":[{\"id\":\"m-new\"}]}";
    uint64_t end = rt_now_ms() + 2000;
    bool changed = false;
    while (!changed && rt_now_ms() < end) {
        uv_run(&loop, UV_RUN_ONCE);
        changed = rt_backend_serves(b, RT_STR_LIT("m-new"));
    }
    assert_true(changed);
    assert_false(rt_backend_serves(b, RT_STR_LIT("m-a")));

    /* A broken list keeps what we knew. */
    fakes[2].models = "[not json";
    unsigned n0 = fakes[2].n_models;
    run_for(300);
    assert_true(fakes[2].n_models > n0);
    assert_true(rt_backend_serves(b, RT_STR_LIT("m-new")));
    assert_true(rt_backend_is_healthy(b)); /* metrics and models say nothing about health */
    rt_backend_unref(b);
}

/* Static models are never fetched; a backend that refuses connections is unhealthy. */
static void test_static_models_and_dead_port(void **state)
{
    struct rt_backend *b[2] = {backend(0, NULL), NULL};
    b[0]->static_models = true;
    const char *ids[] = {"cfg-model"};
    rt_backend_set_models(b[0], ids, 1);
    /* A port nothing listens on: bind one, learn its number, close it. */
    uv_tcp_t tmp;
    uv_tcp_init(&loop, &tmp);
    struct sockaddr_in sin;
    uv_ip4_addr("127.0.0.1", 0, &sin);
    uv_tcp_bind(&tmp, (struct sockaddr *)&sin, 0);
    int len = sizeof sin;
    uv_tcp_getsockname(&tmp, (struct sockaddr *)&sin, &len);
    int dead = ntohs(sin.sin_port);
    uv_close((uv_handle_t *)&tmp, NULL);
    uv_run(&loop, UV_RUN_NOWAIT);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", dead);
    b[1] = rt_backend_new(url, NULL, "127.0.0.1", dead, "", (struct sockaddr *)&sin, 4, 1, NULL);
    rt_backend_ref(b[0]);
    rt_backend_ref(b[1]);
    publish(b, 2);
    struct rt_health_conf c;
    conf_fast(&c);
    mon = rt_health_start(&loop, &c);
    assert_true(run_until(is_unhealthy, b[1], 2000));
    assert_false(rt_backend_available(b[1], rt_now_ms()));
    assert_false(atomic_load(&b[1]->scrape_ok));
    assert_true(run_until(is_checked, b[0], 2000));
    run_for(200);
    assert_int_equal(fakes[0].n_models, 0);
    assert_true(fakes[0].n_metrics > 0);
    assert_true(rt_backend_serves(b[0], RT_STR_LIT("cfg-model")));
    rt_backend_unref(b[0]);
    rt_backend_unref(b[1]);
}

/* New backends in a new view are checked at once; removed ones are no longer checked. */
static void test_follows_view(void **state)
{
    struct rt_backend *a = backend(0, NULL);
    rt_backend_ref(a);
    publish(&a, 1);
    struct rt_health_conf c;
    conf_fast(&c);
    c.interval_s = 5; /* only the first, immediate check happens within the test */
    mon = rt_health_start(&loop, &c);
    assert_true(run_until(is_checked, a, 2000));

    struct rt_backend *nb = backend(1, NULL);
    rt_backend_ref(nb);
    struct rt_backend *both[2] = {a, nb};
    rt_backend_ref(a);
    publish(both, 2);
    assert_false(rt_backend_available(nb, rt_now_ms()));
    uint64_t t0 = rt_now_ms();
    assert_true(run_until(is_checked, nb, 2000));
    assert_true(rt_now_ms() - t0 < 1000); /* noticed within the sync period, not an interval */
    assert_true(rt_backend_is_healthy(nb));

    /* Remove <a>: its scrapes stop. */
    rt_backend_ref(nb);
    publish(&nb, 1);
    run_for(250);
    unsigned n = fakes[0].n_metrics;
    unsigned m = fakes[1].n_metrics;
    run_for(300);
    assert_int_equal(fakes[0].n_metrics, n);
    assert_true(fakes[1].n_metrics > m);
    rt_backend_unref(a);
    rt_backend_unref(nb);
}

/* Turning checks off trusts every server again; set_conf takes new settings. */
static void test_set_conf(void **state)
{
    struct rt_backend *b = backend(0, NULL);
    rt_backend_ref(b);
    publish(&b, 1);
    struct rt_health_conf c;
    conf_fast(&c);
    fakes[0].health_status = 500;
    mon = rt_health_start(&loop, &c);
    assert_true(run_until(is_unhealthy, b, 2000));
    c.enabled = false;
    rt_health_set_conf(mon, &c);
    assert_false(rt_fleet_check_gate());
    assert_true(rt_backend_is_healthy(b));
    unsigned n = fakes[0].n_health;
    run_for(300);
    assert_int_equal(fakes[0].n_health, n); /* no checks while disabled */
    c.enabled = true;
    rt_health_set_conf(mon, &c);
    assert_true(rt_fleet_check_gate());
    assert_true(run_until(is_unhealthy, b, 2000));
    struct rt_health_conf got;
    rt_health_get_conf(mon, &got);
    assert_true(got.enabled && got.window_size == 4);
    rt_backend_unref(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_first_check, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fail_and_recover, setup, teardown),
        cmocka_unit_test_setup_teardown(test_single_failure_tolerated, setup, teardown),
        cmocka_unit_test_setup_teardown(test_slow_health_with_good_scrape, setup, teardown),
        cmocka_unit_test_setup_teardown(test_garbled_metrics_and_models, setup, teardown),
        cmocka_unit_test_setup_teardown(test_static_models_and_dead_port, setup, teardown),
        cmocka_unit_test_setup_teardown(test_follows_view, setup, teardown),
        cmocka_unit_test_setup_teardown(test_set_conf, setup, teardown),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    rt_fleet_shutdown();
    return rc;
}
