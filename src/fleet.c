/* The fleet of backends: reference-counted views, exact in-flight accounting, the circuit
 * breaker and the load estimate (see fleet.h). */
#include "fleet.h"

#include <stdio.h>
#include <string.h>
#include <netinet/in.h>
#include <time.h>

#include "alloc.h"
#include "metrics.h"

static struct {
    pthread_mutex_t lock; /* serialises publish against acquire */
    struct rt_fleet_view *view;
    uint64_t version;
    pthread_mutex_t settings_lock;
    struct rt_fleet_settings settings;
} fleet = {
    .lock = PTHREAD_MUTEX_INITIALIZER,
    .settings_lock = PTHREAD_MUTEX_INITIALIZER,
    .settings = {.failure_threshold = 2, .recovery_s = 60, .busy_backoff_s = 5},
};

static atomic_uint_fast64_t next_id = 1;
static atomic_bool check_gate; /* see rt_fleet_set_check_gate */

uint64_t rt_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---- backends --------------------------------------------------------------------------- */

static char *auth_line(const char *api_key)
{
    if (!api_key || !*api_key)
        return NULL;
    size_t n = strlen(api_key) + 32;
    char *s = rt_malloc(n);
    snprintf(s, n, "Authorization: Bearer %s\r\n", api_key);
    return s;
}

struct rt_backend *rt_backend_new(const char *url, const char *name, const char *host, int port,
                                  const char *base_path, const struct sockaddr *addr,
                                  int capacity, double weight, const char *api_key)
{
    struct rt_backend *b = rt_calloc(1, sizeof *b);
    b->id = atomic_fetch_add(&next_id, 1);
    b->url = rt_strdup(url);
    b->name = rt_strdup(name && *name ? name : url);
    b->host = rt_strdup(host);
    b->port = port;
    b->base_path = rt_strdup(base_path ? base_path : "");
    size_t n = strlen(host) + 32;
    b->host_header = rt_malloc(n);
    if (strchr(host, ':'))
        snprintf(b->host_header, n, "Host: [%s]:%d\r\n", host, port);
    else
        snprintf(b->host_header, n, "Host: %s:%d\r\n", host, port);
    memcpy(&b->addr, addr,
           addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in));
    atomic_init(&b->refs, 1);
    atomic_init(&b->capacity, capacity);
    atomic_init(&b->weight, weight);
    atomic_init(&b->_auth_header, auth_line(api_key));
    atomic_init(&b->healthy, true);
    atomic_init(&b->kv_cache_perc, -1.0);
    atomic_init(&b->max_fds, -1);
    pthread_mutex_init(&b->_models_lock, NULL);
    pthread_mutex_init(&b->_health_lock, NULL);
    b->_health.success_rate = 1.0;
    return b;
}

void rt_backend_ref(struct rt_backend *b)
{
    atomic_fetch_add_explicit(&b->refs, 1, memory_order_relaxed);
}

void rt_backend_unref(struct rt_backend *b)
{
    if (!b || atomic_fetch_sub_explicit(&b->refs, 1, memory_order_acq_rel) != 1)
        return;
    struct rt_models *m = atomic_load(&b->_models);
    if (m)
        rt_models_unref(m);
    rt_free(atomic_load(&b->_auth_header));
    pthread_mutex_destroy(&b->_models_lock);
    pthread_mutex_destroy(&b->_health_lock);
    rt_free(b->url);
    rt_free(b->name);
    rt_free(b->host);
    rt_free(b->base_path);
    rt_free(b->host_header);
    rt_free(b);
}

void rt_backend_set_api_key(struct rt_backend *b, const char *api_key)
{
    /* Readers copy the line under the models lock, so the old one can go at once. */
    pthread_mutex_lock(&b->_models_lock);
    char *old = atomic_exchange(&b->_auth_header, auth_line(api_key));
    pthread_mutex_unlock(&b->_models_lock);
    rt_free(old);
}

size_t rt_backend_auth(struct rt_backend *b, char *out, size_t outlen)
{
    size_t n = 0;
    out[0] = '\0';
    if (!atomic_load_explicit(&b->_auth_header, memory_order_relaxed))
        return 0;
    pthread_mutex_lock(&b->_models_lock);
    const char *h = atomic_load(&b->_auth_header);
    if (h) {
        n = strlen(h);
        if (n >= outlen)
            n = 0;
        else
            memcpy(out, h, n + 1);
    }
    pthread_mutex_unlock(&b->_models_lock);
    return n;
}

struct rt_models *rt_backend_models(struct rt_backend *b)
{
    pthread_mutex_lock(&b->_models_lock);
    struct rt_models *m = atomic_load(&b->_models);
    if (m)
        atomic_fetch_add(&m->refs, 1);
    pthread_mutex_unlock(&b->_models_lock);
    return m;
}

void rt_models_unref(struct rt_models *m)
{
    if (m && atomic_fetch_sub(&m->refs, 1) == 1)
        rt_free(m);
}

void rt_backend_set_models(struct rt_backend *b, const char *const *ids, size_t n)
{
    size_t bytes = 0;
    for (size_t i = 0; i < n; i++)
        bytes += strlen(ids[i]) + 1;
    struct rt_models *m = rt_malloc(sizeof *m + n * sizeof m->ids[0] + bytes);
    atomic_init(&m->refs, 1);
    m->n = n;
    char *p = (char *)&m->ids[n];
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(ids[i]);
        memcpy(p, ids[i], len + 1);
        m->ids[i] = rt_str_make(p, len);
        p += len + 1;
    }
    pthread_mutex_lock(&b->_models_lock);
    struct rt_models *old = atomic_exchange(&b->_models, m);
    pthread_mutex_unlock(&b->_models_lock);
    rt_models_unref(old);
}

bool rt_backend_serves(struct rt_backend *b, struct rt_str model)
{
    struct rt_models *m = rt_backend_models(b);
    bool yes = m == NULL; /* unknown list: let the server say */
    for (size_t i = 0; m && i < m->n && !yes; i++)
        yes = rt_str_eq(m->ids[i], model);
    rt_models_unref(m);
    return yes;
}

void rt_backend_health_stats(struct rt_backend *b, struct rt_health_stats *out)
{
    pthread_mutex_lock(&b->_health_lock);
    *out = b->_health;
    pthread_mutex_unlock(&b->_health_lock);
}

void rt_backend_set_health_stats(struct rt_backend *b, const struct rt_health_stats *s)
{
    pthread_mutex_lock(&b->_health_lock);
    b->_health = *s;
    pthread_mutex_unlock(&b->_health_lock);
}

bool rt_backend_is_healthy(struct rt_backend *b)
{
    if (!atomic_load_explicit(&b->healthy, memory_order_relaxed))
        return false;
    return atomic_load_explicit(&b->checked, memory_order_relaxed) ||
           !atomic_load_explicit(&check_gate, memory_order_relaxed);
}

bool rt_backend_available(struct rt_backend *b, uint64_t now_ms)
{
    if (atomic_load_explicit(&b->draining, memory_order_relaxed) || !rt_backend_is_healthy(b))
        return false;
    int c = atomic_load_explicit(&b->circuit, memory_order_acquire);
    if (c == RT_CIRCUIT_CLOSED)
        return true;
    if (c == RT_CIRCUIT_OPEN) {
        struct rt_fleet_settings s;
        rt_fleet_get_settings(&s);
        uint64_t opened = atomic_load(&b->circuit_opened_ms);
        if (now_ms < opened + (uint64_t)(s.recovery_s * 1000))
            return false;
        int expect = RT_CIRCUIT_OPEN;
        atomic_compare_exchange_strong(&b->circuit, &expect, RT_CIRCUIT_HALF_OPEN);
    }
    /* Half-open: only while the single trial is not out. */
    return !atomic_load(&b->trial_in_flight);
}

static double since_delta(struct rt_backend *b)
{
    int d = atomic_load_explicit(&b->since_scrape_dispatched, memory_order_relaxed) -
            atomic_load_explicit(&b->since_scrape_finished, memory_order_relaxed);
    return d;
}

double rt_backend_est_running(struct rt_backend *b)
{
    if (!atomic_load_explicit(&b->scrape_ok, memory_order_relaxed))
        return atomic_load_explicit(&b->inflight, memory_order_relaxed);
    double r = atomic_load_explicit(&b->scraped_running, memory_order_relaxed) + since_delta(b);
    return r < 0 ? 0 : r;
}

double rt_backend_est_waiting(struct rt_backend *b)
{
    if (!atomic_load_explicit(&b->scrape_ok, memory_order_relaxed))
        return 0;
    return atomic_load_explicit(&b->scraped_waiting, memory_order_relaxed);
}

void rt_backend_dispatch(struct rt_backend *b)
{
    atomic_fetch_add_explicit(&b->inflight, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&b->since_scrape_dispatched, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&b->dispatched_total, 1, memory_order_relaxed);
    if (atomic_load_explicit(&b->circuit, memory_order_acquire) == RT_CIRCUIT_HALF_OPEN)
        atomic_store(&b->trial_in_flight, true);
}

bool rt_backend_try_dispatch(struct rt_backend *b)
{
    int cur = atomic_load_explicit(&b->inflight, memory_order_relaxed);
    do {
        if (cur >= atomic_load_explicit(&b->capacity, memory_order_relaxed))
            return false;
    } while (!atomic_compare_exchange_weak_explicit(&b->inflight, &cur, cur + 1,
                                                    memory_order_relaxed, memory_order_relaxed));
    atomic_fetch_add_explicit(&b->since_scrape_dispatched, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&b->dispatched_total, 1, memory_order_relaxed);
    if (atomic_load_explicit(&b->circuit, memory_order_acquire) == RT_CIRCUIT_HALF_OPEN)
        atomic_store(&b->trial_in_flight, true);
    return true;
}

void rt_backend_release(struct rt_backend *b, enum rt_outcome outcome, uint64_t now_ms)
{
    atomic_fetch_sub_explicit(&b->inflight, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&b->since_scrape_finished, 1, memory_order_relaxed);
    struct rt_fleet_settings s;
    rt_fleet_get_settings(&s);
    int circuit = atomic_load(&b->circuit);
    switch (outcome) {
    case RT_OUTCOME_OK:
    case RT_OUTCOME_BUSY:
        atomic_fetch_add_explicit(outcome == RT_OUTCOME_OK ? &b->completed_total : &b->busy_total,
                                  1, memory_order_relaxed);
        if (outcome == RT_OUTCOME_BUSY)
            atomic_store(&b->busy_until_ms, now_ms + (uint64_t)(s.busy_backoff_s * 1000));
        atomic_store(&b->consecutive_failures, 0);
        if (circuit == RT_CIRCUIT_HALF_OPEN) {
            atomic_store(&b->circuit, RT_CIRCUIT_CLOSED);
            atomic_store(&b->trial_in_flight, false);
        }
        break;
    case RT_OUTCOME_FAILURE: {
        atomic_fetch_add_explicit(&b->failed_total, 1, memory_order_relaxed);
        int n = atomic_fetch_add(&b->consecutive_failures, 1) + 1;
        if (circuit == RT_CIRCUIT_HALF_OPEN ||
            (circuit == RT_CIRCUIT_CLOSED && n >= s.failure_threshold)) {
            atomic_store(&b->circuit_opened_ms, now_ms);
            atomic_store(&b->circuit, RT_CIRCUIT_OPEN);
            atomic_store(&b->trial_in_flight, false);
        }
        break;
    }
    case RT_OUTCOME_CANCELLED:
        if (circuit == RT_CIRCUIT_HALF_OPEN)
            atomic_store(&b->trial_in_flight, false);
        break;
    }
}

void rt_backend_scraped(struct rt_backend *b, double running, double waiting, double kv_perc,
                        int64_t max_fds, uint64_t now_ms)
{
    /* Counting starts again from this snapshot: what was dispatched before it is in it. */
    atomic_store(&b->since_scrape_dispatched, 0);
    atomic_store(&b->since_scrape_finished, 0);
    atomic_store(&b->scraped_running, running);
    atomic_store(&b->scraped_waiting, waiting);
    atomic_store(&b->kv_cache_perc, kv_perc);
    atomic_store(&b->max_fds, max_fds);
    atomic_store(&b->scrape_ms, now_ms);
    atomic_store(&b->scrape_ok, true);
}

void rt_backend_scrape_failed(struct rt_backend *b)
{
    rt_metrics_scrape_error(rt_metrics_control_shard(), b->url);
    atomic_store(&b->scrape_ok, false);
}

/* ---- the fleet -------------------------------------------------------------------------- */

static struct rt_fleet_view *view_new(struct rt_backend *const *backends, size_t n)
{
    struct rt_fleet_view *v = rt_malloc(sizeof *v + n * sizeof v->b[0]);
    atomic_init(&v->refs, 1);
    v->version = ++fleet.version;
    v->n = n;
    for (size_t i = 0; i < n; i++) {
        v->b[i] = backends[i];
        rt_backend_ref(backends[i]);
    }
    return v;
}

void rt_fleet_init(void)
{
    pthread_mutex_lock(&fleet.lock);
    if (!fleet.view)
        fleet.view = view_new(NULL, 0);
    pthread_mutex_unlock(&fleet.lock);
}

void rt_fleet_shutdown(void)
{
    pthread_mutex_lock(&fleet.lock);
    struct rt_fleet_view *v = fleet.view;
    fleet.view = NULL;
    pthread_mutex_unlock(&fleet.lock);
    if (v)
        rt_fleet_view_unref(v);
}

void rt_fleet_set_settings(const struct rt_fleet_settings *s)
{
    pthread_mutex_lock(&fleet.settings_lock);
    fleet.settings = *s;
    pthread_mutex_unlock(&fleet.settings_lock);
}

void rt_fleet_get_settings(struct rt_fleet_settings *out)
{
    pthread_mutex_lock(&fleet.settings_lock);
    *out = fleet.settings;
    pthread_mutex_unlock(&fleet.settings_lock);
}

struct rt_fleet_view *rt_fleet_acquire(void)
{
    pthread_mutex_lock(&fleet.lock);
    struct rt_fleet_view *v = fleet.view;
    atomic_fetch_add_explicit(&v->refs, 1, memory_order_relaxed);
    pthread_mutex_unlock(&fleet.lock);
    return v;
}

void rt_fleet_view_unref(struct rt_fleet_view *v)
{
    if (!v || atomic_fetch_sub_explicit(&v->refs, 1, memory_order_acq_rel) != 1)
        return;
    for (size_t i = 0; i < v->n; i++)
        rt_backend_unref(v->b[i]);
    rt_free(v);
}

void rt_fleet_publish(struct rt_backend *const *backends, size_t n)
{
    pthread_mutex_lock(&fleet.lock);
    struct rt_fleet_view *old = fleet.view;
    fleet.view = view_new(backends, n);
    pthread_mutex_unlock(&fleet.lock);
    if (old)
        rt_fleet_view_unref(old);
}

void rt_fleet_set_check_gate(bool on)
{
    atomic_store(&check_gate, on);
}

bool rt_fleet_check_gate(void)
{
    return atomic_load(&check_gate);
}

struct rt_backend *rt_fleet_find(const char *url)
{
    struct rt_fleet_view *v = rt_fleet_acquire();
    struct rt_backend *found = NULL;
    for (size_t i = 0; i < v->n && !found; i++)
        if (strcmp(v->b[i]->url, url) == 0) {
            found = v->b[i];
            rt_backend_ref(found);
        }
    rt_fleet_view_unref(v);
    return found;
}
