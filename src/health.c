/* The health monitor: per backend, a timer that checks /health and refreshes /v1/models, a timer
 * that scrapes /metrics, and the window of check results that decides health (see health.h and
 * docs/internals/health.md). */
#include "health.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "alloc.h"
#include "buf.h"
#include "http_client.h"
#include "load_signals.h"
#include "log.h"

#define SYNC_MS          100               /* how often the fleet view is compared */
#define HEALTH_BODY_MAX  (64 * 1024)       /* the body of /health is not needed, only kept small */
#define MODELS_BODY_MAX  (1024 * 1024)
#define METRICS_BODY_MAX (8 * 1024 * 1024) /* vLLM pages with histograms run to a few 100 KiB */
#define AUTH_MAX         4096
#define SCRAPE_FRESH_INTERVALS 3           /* "busy, not dead": a scrape this recent vouches */
#define POOL_IDLE_MS     4000              /* under vLLM's 5 s keep-alive */
#define POOL_MAX_IDLE    3

enum probe_kind {
    P_HEALTH = 0,
    P_MODELS,
    P_METRICS,
    P_COUNT,
};

static const char *const probe_path[P_COUNT] = {"/health", "/v1/models", "/metrics"};
static const size_t probe_cap[P_COUNT] = {HEALTH_BODY_MAX, MODELS_BODY_MAX, METRICS_BODY_MAX};

struct target;

/* One request of one kind to one backend; at most one in flight per kind. */
struct probe {
    struct target *t;
    enum probe_kind kind;
    uv_timer_t deadline;
    struct rt_http_client *c; /* while in flight */
    bool busy;
    char *req;                /* the request bytes while in flight; owned */
    uv_buf_t buf;
    struct rt_buf body;
    bool too_big;
    int status;               /* response status, 0 before the head */
    uint64_t start_ns;        /* uv_hrtime at send */
};

/* One check result in the window. */
struct result {
    bool pass;
    double rt_s; /* response time; < 0 when nothing answered */
};

/* One monitored backend; freed after its five handles closed. */
struct target {
    struct rt_health *h;
    struct target *next;
    struct rt_backend *b;     /* a reference */
    struct rt_http_pool *pool;
    uv_timer_t tick;          /* checks and models */
    uv_timer_t scrape;        /* metrics */
    struct probe p[P_COUNT];
    unsigned open;            /* handles not yet closed */
    bool seen;                /* present in the view being synced */
    struct result *win;       /* ring of the last <win_cap> results */
    int win_cap, win_len, win_pos;
    bool down;                /* the failure streak reached the threshold */
    struct rt_health_stats st;
};

struct rt_health {
    uv_loop_t *loop;
    struct rt_health_conf conf;
    uv_timer_t sync;
    uint64_t version;
    bool synced;              /* version is meaningful */
    struct target *targets;
    unsigned live;            /* sync timer + targets not yet freed */
    bool stopping;
    void (*on_stopped)(void *arg);
    void *arg;
};

static void start_probe(struct target *t, enum probe_kind kind);
static void finish_probe(struct probe *p, int err);

void rt_health_conf_default(struct rt_health_conf *conf)
{
    *conf = (struct rt_health_conf){
        .interval_s = 10,
        .timeout_s = 5,
        .min_success_rate = 0.8,
        .max_response_time_s = 2.0,
        .window_size = 10,
        .consecutive_failures = 3,
        .enabled = true,
        .scrape_interval_s = 1,
        .scrape_timeout_s = 1,
        .scrape_enabled = true,
    };
}

static uint64_t to_ms(double s)
{
    if (!(s > 0))
        return 1;
    double ms = s * 1000.0;
    return ms < 1 ? 1 : ms > 1e12 ? (uint64_t)1e12 : (uint64_t)ms;
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- the window and the verdict --------------------------------------------------------- */

static void window_resize(struct target *t, int cap)
{
    if (cap < 1)
        cap = 1;
    struct result *w = rt_calloc((size_t)cap, sizeof *w);
    int keep = t->win_len < cap ? t->win_len : cap;
    /* Oldest first into the new ring, keeping the most recent <keep>. */
    for (int i = 0; i < keep; i++) {
        int idx = (t->win_pos - keep + i + t->win_cap * 2) % (t->win_cap ? t->win_cap : 1);
        w[i] = t->win[idx];
    }
    rt_free(t->win);
    t->win = w;
    t->win_cap = cap;
    t->win_len = keep;
    t->win_pos = keep % cap;
}

static void window_stats(struct target *t)
{
    int pass = 0, answered = 0;
    double sum = 0;
    for (int i = 0; i < t->win_len; i++) {
        pass += t->win[i].pass;
        if (t->win[i].rt_s >= 0) {
            answered++;
            sum += t->win[i].rt_s;
        }
    }
    t->st.success_rate = t->win_len ? (double)pass / t->win_len : 1.0;
    t->st.avg_response_time_s = answered ? sum / answered : 0;
}

/* Publishes the statistics and the verdict of <t>. */
static void publish(struct target *t)
{
    const struct rt_health_conf *c = &t->h->conf;
    struct rt_backend *b = t->b;
    window_stats(t);
    rt_backend_set_health_stats(b, &t->st);
    /* The success rate speaks in full only once the window is: one slow check among the
     * first two must not read as "50 % success" and eject a busy server. Until then a server
     * needs one passing check in its window (a dead one never gets it) and the streak of
     * consecutive failures decides the rest. */
    bool any_pass = t->win_len == 0 || t->st.success_rate > 0;
    bool rate_ok = t->win_len < c->window_size
                       ? any_pass
                       : t->st.success_rate + 1e-9 >= c->min_success_rate;
    bool healthy = t->st.consecutive_failures < c->consecutive_failures && rate_ok;
    bool was = atomic_load(&b->healthy);
    bool first = !atomic_load(&b->checked);
    atomic_store(&b->healthy, healthy);
    atomic_store(&b->checked, true);
    if (healthy != was || first) {
        if (healthy)
            RT_INFO("server %s is healthy (success rate %.2f)", b->url, t->st.success_rate);
        else
            RT_WARN("server %s is unhealthy (%d consecutive failed checks, success rate %.2f)",
                    b->url, t->st.consecutive_failures, t->st.success_rate);
    }
}

/* Records one health-check result: pass, fail, or neutral (slow /health while the metrics
 * answer: the server is busy, which says nothing about its health). */
enum verdict {
    V_PASS = 0,
    V_FAIL,
    V_NEUTRAL,
};

static void record(struct target *t, enum verdict v, double elapsed_s, bool answered)
{
    const struct rt_health_conf *c = &t->h->conf;
    t->st.total_checks++;
    t->st.last_check_unix_ms = wall_ms();
    t->st.last_response_time_s = elapsed_s;
    if (v == V_NEUTRAL) {
        /* Keep the window and the streak as they are, only say that a check ran. */
        rt_backend_set_health_stats(t->b, &t->st);
        if (!atomic_load(&t->b->checked))
            publish(t); /* a first check that is neutral: judge on what we have (no results) */
        return;
    }
    if (v == V_PASS) {
        if (t->down) {
            /* Results from before an outage say nothing about the process that answers now
             * (a restarted server): start the window again. */
            t->win_len = 0;
            t->win_pos = 0;
            t->down = false;
        }
        t->st.consecutive_failures = 0;
    } else {
        t->st.consecutive_failures++;
        if (t->st.consecutive_failures >= c->consecutive_failures)
            t->down = true;
    }
    t->win[t->win_pos] = (struct result){.pass = v == V_PASS, .rt_s = answered ? elapsed_s : -1};
    t->win_pos = (t->win_pos + 1) % t->win_cap;
    if (t->win_len < t->win_cap)
        t->win_len++;
    publish(t);
}

/* Whether a recent good scrape shows the server alive. */
static bool scrape_vouches(struct target *t)
{
    const struct rt_health_conf *c = &t->h->conf;
    if (!c->scrape_enabled || !atomic_load(&t->b->scrape_ok))
        return false;
    uint64_t at = atomic_load(&t->b->scrape_ms);
    uint64_t fresh = to_ms(c->scrape_interval_s) * SCRAPE_FRESH_INTERVALS + to_ms(c->scrape_timeout_s);
    uint64_t now = rt_now_ms();
    return at != 0 && now >= at && now - at <= fresh;
}

/* ---- results of each kind ---------------------------------------------------------------- */

static void health_done(struct probe *p, int err, double elapsed_s)
{
    struct target *t = p->t;
    const struct rt_health_conf *c = &t->h->conf;
    bool answered = err == RT_HC_OK;
    bool ok2xx = answered && p->status >= 200 && p->status < 300;
    bool timed_out = err == RT_HC_ETIMEOUT_HEAD || err == RT_HC_ETIMEOUT_IDLE ||
                     err == RT_HC_ETIMEOUT_CONNECT;
    bool slow = timed_out || (ok2xx && elapsed_s > c->max_response_time_s);
    enum verdict v;
    if (ok2xx && !slow)
        v = V_PASS;
    else if (slow && scrape_vouches(t))
        v = V_NEUTRAL;
    else
        v = V_FAIL;
    if (v != V_PASS)
        RT_DEBUG("health check of %s: %s (status %d, %.3f s)%s", t->b->url,
                 err ? rt_hc_strerror(err) : slow ? "too slow" : "bad status", p->status,
                 elapsed_s, v == V_NEUTRAL ? ", metrics answer: busy, not failed" : "");
    record(t, v, elapsed_s, answered);
}

/* Parses an OpenAI model list; returns the number of ids put in <ids> (borrowed from <root>),
 * or -1 when the document is not one. */
static int model_ids(json_t *root, const char ***ids)
{
    json_t *data = json_is_object(root) ? json_object_get(root, "data") : NULL;
    if (!json_is_array(data))
        return -1;
    size_t n = json_array_size(data);
    *ids = rt_calloc(n ? n : 1, sizeof **ids);
    int k = 0;
    for (size_t i = 0; i < n; i++) {
        json_t *id = json_object_get(json_array_get(data, i), "id");
        if (!json_is_string(id) || json_string_length(id) == 0)
            continue;
        const char *s = json_string_value(id);
        if (strlen(s) != json_string_length(id))
            continue; /* embedded NUL: not an id we can route on */
        bool dup = false;
        for (int j = 0; j < k && !dup; j++)
            dup = strcmp((*ids)[j], s) == 0;
        if (!dup)
            (*ids)[k++] = s;
    }
    return k;
}

static bool same_models(struct rt_backend *b, const char **ids, int n)
{
    struct rt_models *m = rt_backend_models(b);
    bool same = m && m->n == (size_t)n;
    for (int i = 0; same && i < n; i++)
        same = rt_str_eq(m->ids[i], rt_str_cstr(ids[i]));
    rt_models_unref(m);
    return same;
}

static void models_done(struct probe *p, int err)
{
    struct target *t = p->t;
    if (err || p->status != 200 || p->too_big || t->b->static_models)
        return; /* keep what we knew */
    json_error_t jerr;
    json_t *root = json_loadb(rt_buf_data(&p->body), rt_buf_size(&p->body), 0, &jerr);
    const char **ids = NULL;
    int n = root ? model_ids(root, &ids) : -1;
    if (n < 0)
        RT_DEBUG("models of %s: not a model list", t->b->url);
    else if (!same_models(t->b, ids, n)) {
        rt_backend_set_models(t->b, ids, (size_t)n);
        RT_INFO("server %s serves %d model(s)%s%s", t->b->url, n, n ? ", first " : "",
                n ? ids[0] : "");
    }
    rt_free(ids);
    json_decref(root);
}

static void metrics_done(struct probe *p, int err)
{
    struct target *t = p->t;
    struct rt_load_signals ls;
    char msg[160] = "";
    int rc = -1;
    if (err)
        snprintf(msg, sizeof msg, "%s", rt_hc_strerror(err));
    else if (p->status != 200)
        snprintf(msg, sizeof msg, "status %d", p->status);
    else if (p->too_big)
        snprintf(msg, sizeof msg, "page over %d bytes", METRICS_BODY_MAX);
    else
        rc = rt_load_signals_parse(rt_buf_data(&p->body), rt_buf_size(&p->body), &ls, msg,
                                   sizeof msg);
    if (rc < 0) {
        if (atomic_load(&t->b->scrape_ok))
            RT_DEBUG("scrape of %s failed: %s", t->b->url, msg);
        rt_backend_scrape_failed(t->b);
        return;
    }
    double kv = ls.present & RT_LOAD_SIGNALS_HAS_KV_CACHE ? ls.kv_cache_usage_perc : -1;
    int64_t fds = ls.present & RT_LOAD_SIGNALS_HAS_MAX_FDS ? (int64_t)ls.process_max_fds : -1;
    rt_backend_scraped(t->b, ls.num_requests_running, ls.num_requests_waiting, kv, fds,
                       rt_now_ms());
}

/* ---- probes ------------------------------------------------------------------------------ */

static void on_head(void *ctx, const struct rt_http_response *res)
{
    struct probe *p = ctx;
    p->status = res->status;
}

static void on_data(void *ctx, const char *data, size_t len)
{
    struct probe *p = ctx;
    if (p->too_big)
        return;
    if (rt_buf_append(&p->body, data, len, probe_cap[p->kind]) < 0)
        p->too_big = true;
}

static void on_done(void *ctx, int err, bool got_bytes)
{
    struct probe *p = ctx;
    p->c = NULL; /* the client belongs to the pool again */
    finish_probe(p, err);
}

static const struct rt_http_client_cbs probe_cbs = {
    .on_head = on_head,
    .on_data = on_data,
    .on_done = on_done,
};

static void on_deadline(uv_timer_t *timer)
{
    struct probe *p = timer->data;
    if (!p->busy)
        return;
    if (p->c) {
        rt_http_client_cancel(p->c);
        p->c = NULL;
    }
    finish_probe(p, p->status ? RT_HC_ETIMEOUT_IDLE : RT_HC_ETIMEOUT_HEAD);
}

/* Ends probe <p> with transport result <err> and hands the result to its kind. */
static void finish_probe(struct probe *p, int err)
{
    double elapsed_s = (double)(uv_hrtime() - p->start_ns) / 1e9;
    uv_timer_stop(&p->deadline);
    p->busy = false;
    rt_free(p->req);
    p->req = NULL;
    switch (p->kind) {
    case P_HEALTH:
        health_done(p, err, elapsed_s);
        break;
    case P_MODELS:
        models_done(p, err);
        break;
    case P_METRICS:
        metrics_done(p, err);
        break;
    case P_COUNT:
        break;
    }
    rt_buf_reset(&p->body);
    if (p->body.cap > 64 * 1024)
        rt_buf_free(&p->body); /* don't keep a big page's buffer between scrapes */
}

static void start_probe(struct target *t, enum probe_kind kind)
{
    struct probe *p = &t->p[kind];
    if (p->busy || t->h->stopping)
        return;
    const struct rt_health_conf *c = &t->h->conf;
    double timeout_s = kind == P_METRICS ? c->scrape_timeout_s : c->timeout_s;
    uint64_t timeout_ms = to_ms(timeout_s);
    char auth[AUTH_MAX];
    rt_backend_auth(t->b, auth, sizeof auth);
    struct rt_buf req = {0};
    rt_buf_printf(&req,
                  "GET %s%s HTTP/1.1\r\n%s%sUser-Agent: vllm-router/" RT_VERSION
                  "\r\nAccept: */*\r\n\r\n",
                  t->b->base_path, probe_path[kind], t->b->host_header, auth);
    p->req = req.base; /* the buffer's data starts at base: nothing was consumed */
    p->buf = uv_buf_init(p->req, (unsigned)rt_buf_size(&req));
    p->busy = true;
    p->status = 0;
    p->too_big = false;
    rt_buf_reset(&p->body);
    p->start_ns = uv_hrtime();
    struct rt_http_client_req r = {
        .bufs = &p->buf,
        .nbufs = 1,
        .connect_timeout_ms = timeout_ms,
        .first_byte_timeout_ms = timeout_ms,
        .idle_timeout_ms = timeout_ms,
    };
    /* The deadline covers the whole exchange; the client's own deadlines only catch stalls. */
    uv_timer_start(&p->deadline, on_deadline, timeout_ms, 0);
    rt_http_pool_send(t->pool, &r, &probe_cbs, p, &p->c);
}

static void on_tick(uv_timer_t *timer)
{
    struct target *t = timer->data;
    if (t->h->conf.enabled)
        start_probe(t, P_HEALTH);
    if (!t->b->static_models)
        start_probe(t, P_MODELS);
}

static void on_scrape(uv_timer_t *timer)
{
    struct target *t = timer->data;
    if (t->h->conf.scrape_enabled)
        start_probe(t, P_METRICS);
}

/* ---- targets ----------------------------------------------------------------------------- */

static void arm(struct target *t, bool now)
{
    const struct rt_health_conf *c = &t->h->conf;
    uint64_t iv = to_ms(c->interval_s), siv = to_ms(c->scrape_interval_s);
    uv_timer_start(&t->tick, on_tick, now ? 0 : iv, iv);
    uv_timer_start(&t->scrape, on_scrape, now ? 0 : siv, siv);
}

static struct target *target_new(struct rt_health *h, struct rt_backend *b)
{
    struct target *t = rt_calloc(1, sizeof *t);
    t->h = h;
    t->b = b;
    rt_backend_ref(b);
    rt_backend_health_stats(b, &t->st); /* a backend kept across a monitor restart */
    t->pool = rt_http_pool_new(h->loop, (const struct sockaddr *)&b->addr, POOL_IDLE_MS,
                               POOL_MAX_IDLE);
    uv_timer_init(h->loop, &t->tick);
    uv_timer_init(h->loop, &t->scrape);
    t->tick.data = t->scrape.data = t;
    t->open = 2;
    for (int k = 0; k < P_COUNT; k++) {
        t->p[k].t = t;
        t->p[k].kind = (enum probe_kind)k;
        uv_timer_init(h->loop, &t->p[k].deadline);
        t->p[k].deadline.data = &t->p[k];
        t->open++;
    }
    window_resize(t, h->conf.window_size);
    t->next = h->targets;
    h->targets = t;
    h->live++;
    arm(t, true);
    return t;
}

static void maybe_stopped(struct rt_health *h)
{
    if (!h->stopping || h->live > 0)
        return;
    void (*cb)(void *) = h->on_stopped;
    void *arg = h->arg;
    rt_free(h);
    if (cb)
        cb(arg);
}

static void target_closed(struct target *t)
{
    if (--t->open > 0)
        return;
    struct rt_health *h = t->h;
    for (int k = 0; k < P_COUNT; k++) {
        rt_free(t->p[k].req);
        rt_buf_free(&t->p[k].body);
    }
    rt_free(t->win);
    rt_backend_unref(t->b);
    rt_free(t);
    h->live--;
    maybe_stopped(h);
}

static void on_timer_closed(uv_handle_t *handle)
{
    target_closed(handle->data);
}

static void on_deadline_closed(uv_handle_t *handle)
{
    target_closed(((struct probe *)handle->data)->t);
}

/* Unlinks <t>, aborts its requests and closes its handles; it is freed when they closed. */
static void target_remove(struct target *t)
{
    struct rt_health *h = t->h;
    for (struct target **pp = &h->targets; *pp; pp = &(*pp)->next)
        if (*pp == t) {
            *pp = t->next;
            break;
        }
    for (int k = 0; k < P_COUNT; k++) {
        struct probe *p = &t->p[k];
        if (p->c)
            rt_http_client_cancel(p->c);
        p->c = NULL;
        p->busy = false;
        uv_close((uv_handle_t *)&p->deadline, on_deadline_closed);
    }
    uv_close((uv_handle_t *)&t->tick, on_timer_closed);
    uv_close((uv_handle_t *)&t->scrape, on_timer_closed);
    rt_http_pool_free(t->pool);
    t->pool = NULL;
}

static struct target *find_target(struct rt_health *h, const struct rt_backend *b)
{
    for (struct target *t = h->targets; t; t = t->next)
        if (t->b == b)
            return t;
    return NULL;
}

void rt_health_sync(struct rt_health *h)
{
    if (h->stopping)
        return;
    struct rt_fleet_view *v = rt_fleet_acquire();
    if (!h->synced || v->version != h->version) {
        for (struct target *t = h->targets; t; t = t->next)
            t->seen = false;
        for (size_t i = 0; i < v->n; i++) {
            struct target *t = find_target(h, v->b[i]);
            if (!t)
                t = target_new(h, v->b[i]);
            t->seen = true;
        }
        struct target *t = h->targets, *next;
        for (; t; t = next) {
            next = t->next;
            if (!t->seen)
                target_remove(t);
        }
        h->version = v->version;
        h->synced = true;
    }
    rt_fleet_view_unref(v);
}

static void on_sync(uv_timer_t *timer)
{
    rt_health_sync(timer->data);
}

static void on_sync_closed(uv_handle_t *handle)
{
    struct rt_health *h = handle->data;
    h->live--;
    maybe_stopped(h);
}

/* ---- the monitor ------------------------------------------------------------------------- */

static void sanitize(struct rt_health_conf *c)
{
    if (c->window_size < 1)
        c->window_size = 1;
    if (c->consecutive_failures < 1)
        c->consecutive_failures = 1;
}

struct rt_health *rt_health_start(uv_loop_t *loop, const struct rt_health_conf *conf)
{
    struct rt_health *h = rt_calloc(1, sizeof *h);
    h->loop = loop;
    h->conf = *conf;
    sanitize(&h->conf);
    uv_timer_init(loop, &h->sync);
    h->sync.data = h;
    h->live = 1;
    rt_fleet_set_check_gate(h->conf.enabled);
    uv_timer_start(&h->sync, on_sync, SYNC_MS, SYNC_MS);
    rt_health_sync(h);
    return h;
}

void rt_health_set_conf(struct rt_health *h, const struct rt_health_conf *conf)
{
    struct rt_health_conf old = h->conf;
    h->conf = *conf;
    sanitize(&h->conf);
    rt_fleet_set_check_gate(h->conf.enabled);
    for (struct target *t = h->targets; t; t = t->next) {
        if (h->conf.window_size != old.window_size)
            window_resize(t, h->conf.window_size);
        if (!h->conf.enabled && old.enabled) {
            /* Without checks nothing can bring a server back: trust them all again. */
            atomic_store(&t->b->healthy, true);
        } else if (h->conf.enabled && t->st.total_checks > 0) {
            publish(t); /* thresholds may have moved */
        }
        if (!h->conf.scrape_enabled && old.scrape_enabled)
            rt_backend_scrape_failed(t->b); /* stale figures must not steer the policy */
        if (h->conf.interval_s != old.interval_s ||
            h->conf.scrape_interval_s != old.scrape_interval_s ||
            (h->conf.enabled && !old.enabled) || (h->conf.scrape_enabled && !old.scrape_enabled))
            arm(t, (h->conf.enabled && !old.enabled) ||
                       (h->conf.scrape_enabled && !old.scrape_enabled));
    }
}

void rt_health_get_conf(const struct rt_health *h, struct rt_health_conf *out)
{
    *out = h->conf;
}

void rt_health_check_now(struct rt_health *h, struct rt_backend *b)
{
    struct target *t = find_target(h, b);
    if (!t)
        return;
    if (h->conf.enabled)
        start_probe(t, P_HEALTH);
    if (!b->static_models)
        start_probe(t, P_MODELS);
}

void rt_health_stop(struct rt_health *h, void (*on_stopped)(void *arg), void *arg)
{
    if (h->stopping)
        return;
    h->stopping = true;
    h->on_stopped = on_stopped;
    h->arg = arg;
    rt_fleet_set_check_gate(false);
    while (h->targets)
        target_remove(h->targets);
    uv_close((uv_handle_t *)&h->sync, on_sync_closed);
}
