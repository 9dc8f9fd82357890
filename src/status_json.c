/* JSON bodies of the management endpoints, built with jansson from a fleet view (see
 * status_json.h). */
#include "status_json.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "alloc.h"

/* Shortest text that reads back as the same figure for the values shown (rates, seconds,
 * percentages rounded to one decimal). */
#define DUMP_FLAGS (JSON_COMPACT | JSON_REAL_PRECISION(10))

static const char *const endpoints[] = {
    "/", "/health", "/livez", "/load-stats", "/metrics", "/v1/models", "/v1/chat/completions",
    "/v1/completions", "/v1/embeddings",
};

const char *rt_status_json_circuit_name(int circuit)
{
    switch (circuit) {
    case RT_CIRCUIT_CLOSED:
        return "closed";
    case RT_CIRCUIT_OPEN:
        return "open";
    case RT_CIRCUIT_HALF_OPEN:
        return "half_open";
    default:
        return "unknown";
    }
}

double rt_status_json_round1(double x)
{
    if (!isfinite(x))
        return 0;
    return round(x * 10.0) / 10.0;
}

/* Serialises <root>, drops it, and returns the text in rt_malloc'd memory. */
static char *dump(json_t *root)
{
    char *s = json_dumps(root, DUMP_FLAGS);
    json_decref(root);
    char *out = rt_strdup(s ? s : "{}");
    free(s); /* jansson allocated it with its own allocator, the C library's */
    return out;
}

/* "2024-05-01T12:00:00.123Z", or JSON null for never. */
static json_t *iso_time(int64_t unix_ms)
{
    if (unix_ms <= 0)
        return json_null();
    time_t secs = (time_t)(unix_ms / 1000);
    struct tm tm;
    if (!gmtime_r(&secs, &tm))
        return json_null();
    char buf[64];
    size_t n = strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, sizeof buf - n, ".%03dZ", (int)(unix_ms % 1000));
    return json_string(buf);
}

static json_t *model_array(struct rt_backend *b)
{
    json_t *a = json_array();
    struct rt_models *m = rt_backend_models(b);
    for (size_t i = 0; m && i < m->n; i++)
        json_array_append_new(a, json_stringn(m->ids[i].ptr, m->ids[i].len));
    rt_models_unref(m);
    return a;
}

char *rt_status_json_root(double uptime_s)
{
    json_t *eps = json_array();
    for (size_t i = 0; i < sizeof endpoints / sizeof endpoints[0]; i++)
        json_array_append_new(eps, json_string(endpoints[i]));
    json_t *root = json_object();
    json_object_set_new(root, "service", json_string("vLLM Router"));
    json_object_set_new(root, "version", json_string(RT_VERSION));
    json_object_set_new(root, "status", json_string("running"));
    json_object_set_new(root, "uptime_seconds", json_real(rt_status_json_round1(uptime_s)));
    json_object_set_new(root, "endpoints", eps);
    return dump(root);
}

char *rt_status_json_health(const struct rt_fleet_view *v, const struct rt_health_conf *conf,
                            int *http_status)
{
    json_t *servers = json_array();
    size_t healthy = 0;
    for (size_t i = 0; i < v->n; i++) {
        struct rt_backend *b = v->b[i];
        struct rt_health_stats st;
        rt_backend_health_stats(b, &st);
        bool ok = rt_backend_is_healthy(b);
        healthy += ok;
        json_t *s = json_object();
        json_object_set_new(s, "url", json_string(b->url));
        json_object_set_new(s, "healthy", json_boolean(ok));
        json_object_set_new(s, "last_check", iso_time(st.last_check_unix_ms));
        json_object_set_new(s, "consecutive_failures", json_integer(st.consecutive_failures));
        json_object_set_new(s, "success_rate", json_real(st.success_rate));
        json_object_set_new(s, "avg_response_time", json_real(st.avg_response_time_s));
        json_object_set_new(s, "last_response_time", json_real(st.last_response_time_s));
        json_object_set_new(s, "total_checks", json_integer((json_int_t)st.total_checks));
        json_object_set_new(s, "supported_models", model_array(b));
        json_object_set_new(s, "circuit_state",
                            json_string(rt_status_json_circuit_name(atomic_load(&b->circuit))));
        json_object_set_new(s, "draining", json_boolean(atomic_load(&b->draining)));
        json_array_append_new(servers, s);
    }
    size_t total = v->n;
    double score = total ? (double)healthy / (double)total : 0;
    const char *status = total == 0        ? "no_servers"
                         : score >= 0.8    ? "healthy"
                         : score >= 0.5    ? "degraded"
                                           : "unhealthy";
    json_t *cfg = json_object();
    json_object_set_new(cfg, "health_check_interval", json_real(conf->interval_s));
    json_object_set_new(cfg, "health_check_timeout", json_real(conf->timeout_s));
    json_object_set_new(cfg, "health_check_min_success_rate", json_real(conf->min_success_rate));
    json_object_set_new(cfg, "health_check_max_response_time",
                        json_real(conf->max_response_time_s));
    json_object_set_new(cfg, "health_check_window_size", json_integer(conf->window_size));
    json_object_set_new(cfg, "health_check_consecutive_failures",
                        json_integer(conf->consecutive_failures));
    json_object_set_new(cfg, "enable_active_health_check", json_boolean(conf->enabled));
    json_object_set_new(cfg, "scrape_interval", json_real(conf->scrape_interval_s));
    json_object_set_new(cfg, "scrape_timeout", json_real(conf->scrape_timeout_s));
    json_object_set_new(cfg, "enable_metrics_scrape", json_boolean(conf->scrape_enabled));

    json_t *root = json_object();
    json_object_set_new(root, "status", json_string(status));
    json_object_set_new(root, "health_score", json_real(score));
    json_object_set_new(root, "total_servers", json_integer((json_int_t)total));
    json_object_set_new(root, "healthy_servers", json_integer((json_int_t)healthy));
    json_object_set_new(root, "unhealthy_servers", json_integer((json_int_t)(total - healthy)));
    json_object_set_new(root, "servers", servers);
    json_object_set_new(root, "config", cfg);
    *http_status = healthy > 0 ? 200 : 503;
    return dump(root);
}

char *rt_status_json_load(const struct rt_fleet_view *v, uint64_t now_ms)
{
    json_t *servers = json_array();
    long long total_load = 0, total_cap = 0;
    size_t healthy = 0;
    for (size_t i = 0; i < v->n; i++) {
        struct rt_backend *b = v->b[i];
        int load = atomic_load(&b->inflight);
        int cap = atomic_load(&b->capacity);
        if (load < 0)
            load = 0;
        if (cap < 0)
            cap = 0;
        int avail = cap - load > 0 ? cap - load : 0;
        bool ok = rt_backend_is_healthy(b);
        healthy += ok;
        total_load += load;
        total_cap += cap;
        bool scraped = atomic_load(&b->scrape_ok);
        uint64_t at = atomic_load(&b->scrape_ms);
        double kv = atomic_load(&b->kv_cache_perc);
        int64_t fds = atomic_load(&b->max_fds);

        json_t *dm = json_object();
        json_object_set_new(dm, "num_requests_running",
                            json_integer(scraped ? llround(atomic_load(&b->scraped_running)) : 0));
        json_object_set_new(dm, "num_requests_waiting",
                            json_integer(scraped ? llround(atomic_load(&b->scraped_waiting)) : 0));
        json_object_set_new(dm, "gpu_cache_usage_perc",
                            json_real(scraped && kv >= 0 ? rt_status_json_round1(kv) : 0.0));
        json_object_set_new(dm, "process_max_fds", json_integer(scraped && fds >= 0 ? fds : 0));

        json_t *s = json_object();
        json_object_set_new(s, "url", json_string(b->url));
        json_object_set_new(s, "current_load", json_integer(load));
        json_object_set_new(s, "max_capacity", json_integer(cap));
        json_object_set_new(s, "available_capacity", json_integer(avail));
        json_object_set_new(s, "utilization_percent",
                            json_real(cap ? rt_status_json_round1(100.0 * load / cap) : 0.0));
        json_object_set_new(s, "status", json_boolean(ok && !atomic_load(&b->draining) &&
                                                      atomic_load(&b->circuit) != RT_CIRCUIT_OPEN &&
                                                      avail > 0));
        json_object_set_new(s, "detailed_metrics", dm);
        json_object_set_new(s, "circuit_state",
                            json_string(rt_status_json_circuit_name(atomic_load(&b->circuit))));
        json_object_set_new(s, "models", model_array(b));
        json_object_set_new(s, "scrape_ok", json_boolean(scraped));
        json_object_set_new(s, "last_scrape_age_seconds",
                            at && now_ms >= at ? json_real(rt_status_json_round1((now_ms - at) / 1000.0))
                                               : json_null());
        json_array_append_new(servers, s);
    }
    json_t *sum = json_object();
    json_object_set_new(sum, "total_servers", json_integer((json_int_t)v->n));
    json_object_set_new(sum, "healthy_servers", json_integer((json_int_t)healthy));
    json_object_set_new(sum, "total_active_load", json_integer(total_load));
    json_object_set_new(sum, "total_capacity", json_integer(total_cap));
    json_object_set_new(sum, "overall_utilization_percent",
                        json_real(total_cap ? rt_status_json_round1(100.0 * (double)total_load /
                                                                    (double)total_cap)
                                            : 0.0));
    json_t *root = json_object();
    json_object_set_new(root, "servers", servers);
    json_object_set_new(root, "summary", sum);
    return dump(root);
}

char *rt_status_json_models(const struct rt_fleet_view *v, int64_t created)
{
    json_t *data = json_array();
    json_t *seen = json_object(); /* ids already listed */
    for (size_t i = 0; i < v->n; i++) {
        struct rt_backend *b = v->b[i];
        if (!rt_backend_is_healthy(b) || atomic_load(&b->draining))
            continue;
        struct rt_models *m = rt_backend_models(b);
        for (size_t k = 0; m && k < m->n; k++) {
            char *id = rt_strndup(m->ids[k].ptr, m->ids[k].len);
            if (!json_object_get(seen, id)) {
                json_object_set_new(seen, id, json_true());
                json_t *o = json_object();
                json_object_set_new(o, "id", json_string(id));
                json_object_set_new(o, "object", json_string("model"));
                json_object_set_new(o, "created", json_integer(created));
                json_object_set_new(o, "owned_by", json_string("vllm-router"));
                json_array_append_new(data, o);
            }
            rt_free(id);
        }
        rt_models_unref(m);
    }
    json_decref(seen);
    json_t *root = json_object();
    json_object_set_new(root, "object", json_string("list"));
    json_object_set_new(root, "data", data);
    return dump(root);
}
