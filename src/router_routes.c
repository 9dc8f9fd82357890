/* What the router answers on each path: the proxied OpenAI-compatible endpoints, and the
 * management endpoints it answers itself. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "admin.h"
#include "alloc.h"
#include "fleet.h"
#include "health.h"
#include "metrics.h"
#include "proxy.h"
#include "router.h"
#include "status_json.h"

enum route_kind {
    R_PROXY = 1, /* POST, forwarded */
    R_ROOT,
    R_HEALTH,
    R_LIVEZ,
    R_LOAD,
    R_MODELS,
    R_METRICS,
};

static const struct route {
    const char *path;
    enum route_kind kind;
} routes[] = {
    {"/v1/chat/completions", R_PROXY},
    {"/v1/completions", R_PROXY},
    {"/v1/embeddings", R_PROXY},
    {"/v1/responses", R_PROXY},
    {"/v1/messages", R_PROXY},
    {"/v1/rerank", R_PROXY},
    {"/rerank", R_PROXY},
    {"/v2/rerank", R_PROXY},
    {"/v1/score", R_PROXY},
    {"/score", R_PROXY},
    {"/pooling", R_PROXY},
    {"/classify", R_PROXY},
    {"/tokenize", R_PROXY},
    {"/detokenize", R_PROXY},
    {"/v1/audio/transcriptions", R_PROXY},
    {"/v1/audio/translations", R_PROXY},
    {"/", R_ROOT},
    {"/health", R_HEALTH},
    {"/livez", R_LIVEZ},
    {"/load-stats", R_LOAD},
    {"/v1/models", R_MODELS},
    {"/metrics", R_METRICS},
};

static const char json_ct[] = "Content-Type: application/json\r\n";

static void respond_json(struct rt_http_exchange *ex, int status, char *body)
{
    rt_http_respond(ex, status, json_ct, body, strlen(body));
    rt_free(body);
}

static void health_conf_from(const struct rt_config *c, struct rt_health_conf *h)
{
    h->interval_s = c->config.health_check_interval;
    h->timeout_s = c->config.health_check_timeout;
    h->min_success_rate = c->config.health_check_min_success_rate;
    h->max_response_time_s = c->config.health_check_max_response_time;
    h->window_size = (int)c->config.health_check_window_size;
    h->consecutive_failures = (int)c->config.health_check_consecutive_failures;
    h->enabled = c->config.enable_active_health_check;
    h->scrape_interval_s = c->balancing.scrape_interval;
    h->scrape_timeout_s = c->balancing.scrape_timeout;
    h->scrape_enabled = c->balancing.enable_metrics_scrape;
}

void rt_router_health_conf(const struct rt_config *c, struct rt_health_conf *h)
{
    health_conf_from(c, h);
}

static void management(struct rt_worker *w, struct rt_http_exchange *ex, enum route_kind kind)
{
    struct rt_fleet_view *v = rt_fleet_acquire();
    switch (kind) {
    case R_ROOT:
        respond_json(ex, 200,
                     rt_status_json_root((double)(rt_now_ms() - w->router->start_ms) / 1000.0));
        break;
    case R_HEALTH: {
        struct rt_settings *s = rt_settings_acquire();
        struct rt_health_conf hc;
        health_conf_from(s->cfg, &hc);
        rt_settings_unref(s);
        int status = 200;
        char *body = rt_status_json_health(v, &hc, &status);
        respond_json(ex, status, body);
        break;
    }
    case R_LIVEZ:
        rt_http_respond(ex, 200, json_ct, "{\"status\":\"ok\"}", 15);
        break;
    case R_LOAD:
        respond_json(ex, 200, rt_status_json_load(v, rt_now_ms()));
        break;
    case R_MODELS:
        respond_json(ex, 200, rt_status_json_models(v, (int64_t)w->router->start_wall));
        break;
    case R_METRICS: {
        size_t len;
        char *page = rt_metrics_render(atomic_load(&w->router->waiting), &len);
        rt_http_respond(ex, 200, "Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n",
                        page, len);
        rt_free(page);
        break;
    }
    default:
        break;
    }
    rt_fleet_view_unref(v);
}

void rt_router_handle(struct rt_http_exchange *ex, void *ctx)
{
    struct rt_worker *w = ctx;
    struct rt_str path = ex->req.path;
    const struct route *rt = NULL;
    if (rt_admin_route(ex))
        return;
    for (size_t i = 0; i < sizeof routes / sizeof routes[0] && !rt; i++)
        if (rt_str_eq(path, rt_str_cstr(routes[i].path)))
            rt = &routes[i];
    if (!rt) {
        char msg[600];
        snprintf(msg, sizeof msg, "no route for %.*s %.*s", RT_STR_FMT(ex->req.method),
                 (int)(path.len > 400 ? 400 : path.len), path.ptr);
        rt_http_respond_error(ex, 404, "invalid_request_error", "not_found", msg, NULL);
        return;
    }
    bool post = rt_str_eq(ex->req.method, RT_STR_LIT("POST"));
    bool get = rt_str_eq(ex->req.method, RT_STR_LIT("GET")) ||
               rt_str_eq(ex->req.method, RT_STR_LIT("HEAD"));
    if (rt->kind == R_PROXY) {
        if (!post) {
            rt_http_respond_error(ex, 405, "invalid_request_error", "method_not_allowed",
                                  "this endpoint only accepts POST", "Allow: POST\r\n");
            return;
        }
        rt_proxy_start(w, ex);
        return;
    }
    if (!get) {
        rt_http_respond_error(ex, 405, "invalid_request_error", "method_not_allowed",
                              "this endpoint only accepts GET", "Allow: GET, HEAD\r\n");
        return;
    }
    management(w, ex, rt->kind);
}
