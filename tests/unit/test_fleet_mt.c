/* Unit tests for fleet.c: exact in-flight accounting (also across threads, under TSan), the
 * circuit breaker's states, the load estimate between scrapes, views and model lists. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "fleet.h"

static struct rt_backend *make(int port, int capacity)
{
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", port);
    return rt_backend_new(url, NULL, "127.0.0.1", port, "", (struct sockaddr *)&sa, capacity, 1.0,
                          NULL);
}

static void breaker_states(void **state)
{
    (void)state;
    struct rt_fleet_settings s = {.failure_threshold = 2, .recovery_s = 0.05,
                                  .busy_backoff_s = 5};
    rt_fleet_set_settings(&s);
    struct rt_backend *b = make(9001, 4);
    uint64_t now = rt_now_ms();
    assert_true(rt_backend_available(b, now));

    /* One failure: still closed. A 4xx-like OK resets the streak. */
    rt_backend_dispatch(b);
    rt_backend_release(b, RT_OUTCOME_FAILURE, now);
    assert_int_equal(atomic_load(&b->circuit), RT_CIRCUIT_CLOSED);
    rt_backend_dispatch(b);
    rt_backend_release(b, RT_OUTCOME_OK, now);
    rt_backend_dispatch(b);
    rt_backend_release(b, RT_OUTCOME_FAILURE, now);
    assert_int_equal(atomic_load(&b->circuit), RT_CIRCUIT_CLOSED);
    /* Busy answers never count as failures. */
    rt_backend_dispatch(b);
    rt_backend_release(b, RT_OUTCOME_BUSY, now);
    assert_int_equal(atomic_load(&b->consecutive_failures), 0);
    assert_true(atomic_load(&b->busy_until_ms) >= now + 5000);

    /* Two in a row open it. */
    rt_backend_dispatch(b);
    rt_backend_release(b, RT_OUTCOME_FAILURE, now);
    rt_backend_dispatch(b);
    rt_backend_release(b, RT_OUTCOME_FAILURE, now);
    assert_int_equal(atomic_load(&b->circuit), RT_CIRCUIT_OPEN);
    assert_false(rt_backend_available(b, now));

    /* After the recovery time: half-open, exactly one trial. */
    uint64_t later = now + 100;
    assert_true(rt_backend_available(b, later));
    assert_int_equal(atomic_load(&b->circuit), RT_CIRCUIT_HALF_OPEN);
    assert_true(rt_backend_try_dispatch(b));
    assert_false(rt_backend_available(b, later));
    /* The trial fails: open again. */
    rt_backend_release(b, RT_OUTCOME_FAILURE, later);
    assert_int_equal(atomic_load(&b->circuit), RT_CIRCUIT_OPEN);
    /* Next trial cancelled: no verdict, still half-open and available for another trial. */
    later += 100;
    assert_true(rt_backend_available(b, later));
    rt_backend_dispatch(b);
    rt_backend_release(b, RT_OUTCOME_CANCELLED, later);
    assert_int_equal(atomic_load(&b->circuit), RT_CIRCUIT_HALF_OPEN);
    assert_true(rt_backend_available(b, later));
    /* A successful trial closes it. */
    rt_backend_dispatch(b);
    rt_backend_release(b, RT_OUTCOME_OK, later);
    assert_int_equal(atomic_load(&b->circuit), RT_CIRCUIT_CLOSED);
    assert_int_equal(atomic_load(&b->inflight), 0);
    rt_backend_unref(b);
}

static void estimate_between_scrapes(void **state)
{
    (void)state;
    struct rt_backend *b = make(9002, 8);
    /* No scrape: the router's own count. */
    rt_backend_dispatch(b);
    rt_backend_dispatch(b);
    assert_true(rt_backend_est_running(b) == 2.0);
    /* A scrape says 5 running, 3 waiting; then 2 more dispatched, 1 finished. */
    rt_backend_scraped(b, 5, 3, 42.5, 1024, rt_now_ms());
    rt_backend_dispatch(b);
    rt_backend_dispatch(b);
    rt_backend_release(b, RT_OUTCOME_OK, rt_now_ms());
    assert_true(rt_backend_est_running(b) == 6.0);
    assert_true(rt_backend_est_waiting(b) == 3.0);
    assert_true(atomic_load(&b->kv_cache_perc) == 42.5);
    /* A failed scrape falls back to the exact count. */
    rt_backend_scrape_failed(b);
    assert_true(rt_backend_est_running(b) == 3.0);
    for (int i = 0; i < 3; i++)
        rt_backend_release(b, RT_OUTCOME_OK, rt_now_ms());
    assert_int_equal(atomic_load(&b->inflight), 0);
    rt_backend_unref(b);
}

static void views_and_models(void **state)
{
    (void)state;
    rt_fleet_init();
    struct rt_backend *a = make(9003, 1), *b = make(9004, 1);
    struct rt_backend *list[] = {a, b};
    rt_fleet_publish(list, 2);
    struct rt_fleet_view *v1 = rt_fleet_acquire();
    assert_int_equal(v1->n, 2);
    /* A new view does not disturb a request holding the old one. */
    rt_fleet_publish(list, 1);
    struct rt_fleet_view *v2 = rt_fleet_acquire();
    assert_int_equal(v2->n, 1);
    assert_true(v2->version > v1->version);
    assert_ptr_equal(v1->b[1], b);
    rt_fleet_view_unref(v1);
    struct rt_backend *found = rt_fleet_find("http://127.0.0.1:9003");
    assert_ptr_equal(found, a);
    rt_backend_unref(found);
    assert_null(rt_fleet_find("http://127.0.0.1:9004"));
    rt_fleet_view_unref(v2);

    /* Unknown model list: serves anything; then only what is listed. */
    assert_true(rt_backend_serves(a, RT_STR_LIT("x")));
    const char *ids[] = {"llama", "qwen"};
    rt_backend_set_models(a, ids, 2);
    assert_true(rt_backend_serves(a, RT_STR_LIT("qwen")));
    assert_false(rt_backend_serves(a, RT_STR_LIT("x")));
    rt_backend_unref(a);
    rt_backend_unref(b);
    rt_fleet_shutdown();
}

/* Several threads take and give back slots of one backend with capacity 3: the count never
 * passes the capacity and ends at zero. */
static struct rt_backend *shared;
static atomic_int over_capacity;

static void *hammer(void *arg)
{
    (void)arg;
    for (int i = 0; i < 20000; i++) {
        if (rt_backend_try_dispatch(shared)) {
            if (atomic_load(&shared->inflight) > 3)
                atomic_fetch_add(&over_capacity, 1);
            rt_backend_release(shared, i % 7 == 0 ? RT_OUTCOME_BUSY : RT_OUTCOME_OK,
                               rt_now_ms());
        }
    }
    return NULL;
}

static void exact_across_threads(void **state)
{
    (void)state;
    shared = make(9005, 3);
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, hammer, NULL);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    assert_int_equal(atomic_load(&over_capacity), 0);
    assert_int_equal(atomic_load(&shared->inflight), 0);
    assert_int_equal(atomic_load(&shared->dispatched_total),
                     atomic_load(&shared->completed_total) + atomic_load(&shared->busy_total));
    rt_backend_unref(shared);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(breaker_states),
        cmocka_unit_test(estimate_between_scrapes),
        cmocka_unit_test(views_and_models),
        cmocka_unit_test(exact_across_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
