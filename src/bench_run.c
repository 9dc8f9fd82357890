/* The load generator's engine (see bench_run.h): request slots reused across requests so the
 * steady state allocates nothing per token, a closed loop or Poisson arrivals, timing of each
 * SSE event as it arrives, and the end of the run (count or duration bound, grace period). */
#include "bench_run.h"

#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "alloc.h"
#include "bench_sse.h"
#include "http_client.h"

#define MAX_BODY      (16u << 20) /* a non-streamed answer larger than this is an error */
#define WARMUP_INDEX  (UINT64_C(1) << 62) /* warm-up prompts come from their own index range */

struct run;

/* One request in flight; slots are reused, so their buffers keep their memory. */
struct slot {
    struct run *run;
    struct slot *next, *prev;     /* in run->active while in flight, else next in run->free */
    struct rt_http_client *client;
    struct rt_buf head, body;     /* request bytes; valid until on_done or cancel */
    uv_buf_t bufs[2];
    struct rt_bench_sse sse;      /* streamed responses */
    struct rt_buf resp;           /* non-streamed response body (or an error body, capped) */
    double *itl;                  /* ms; capacity <capitl> */
    size_t nitl, capitl;
    struct rt_bench_prompt prompt;
    uint64_t t_start, t_last;     /* uv_hrtime ns */
    double ttft_ms;
    int status;
    bool first;                   /* a content event arrived */
    bool bad;                     /* the stream became unusable (already cancelled) */
    bool warmup;
};

struct run {
    uv_loop_t loop;
    const struct rt_bench_conf *conf;
    struct rt_bench_stats *stats;
    struct rt_bench_data data;
    struct rt_bench_body_conf body_conf;
    struct rt_http_pool *pool;
    char *head_prefix;            /* owned: request line and fixed headers */
    uv_timer_t arrival_timer, end_timer, grace_timer;
    uv_signal_t sigint;
    struct slot *active, *free_slots;
    uint64_t rng;                 /* arrivals */
    uint64_t next_index, issued, inflight, pending, warmup_left, warmup_issued;
    uint64_t t0, t_end, next_arrival; /* ns */
    bool measuring, stopping, finished;
};

/* ---- URL and setup ---------------------------------------------------------------------- */

int rt_bench_parse_url(const char *url, struct rt_bench_conf *conf, char *err, size_t errlen)
{
    const char *p = url;
    if (strncmp(p, "https://", 8) == 0) {
        snprintf(err, errlen, "%s: https is not supported (use http://)", url);
        return -1;
    }
    if (strncmp(p, "http://", 7) != 0) {
        snprintf(err, errlen, "%s: the base URL must start with http://", url);
        return -1;
    }
    p += 7;
    const char *host = p, *host_end;
    if (*p == '[') {
        host = p + 1;
        host_end = strchr(host, ']');
        if (!host_end) {
            snprintf(err, errlen, "%s: unterminated [IPv6 address]", url);
            return -1;
        }
        p = host_end + 1;
    } else {
        while (*p && *p != ':' && *p != '/')
            p++;
        host_end = p;
    }
    size_t hlen = (size_t)(host_end - host);
    if (hlen == 0 || hlen >= sizeof conf->host) {
        snprintf(err, errlen, "%s: missing or too long host", url);
        return -1;
    }
    memcpy(conf->host, host, hlen);
    conf->host[hlen] = '\0';
    conf->port = 80;
    if (*p == ':') {
        char *end;
        long port = strtol(p + 1, &end, 10);
        if (end == p + 1 || port < 1 || port > 65535 || (*end && *end != '/')) {
            snprintf(err, errlen, "%s: bad port", url);
            return -1;
        }
        conf->port = (int)port;
        p = end;
    } else if (*p && *p != '/') {
        snprintf(err, errlen, "%s: bad URL", url);
        return -1;
    }
    size_t plen = strlen(p);
    while (plen && p[plen - 1] == '/')
        plen--;
    if (plen >= sizeof conf->prefix) {
        snprintf(err, errlen, "%s: path too long", url);
        return -1;
    }
    for (size_t i = 0; i < plen; i++) {
        if ((unsigned char)p[i] <= ' ' || p[i] == '?' || p[i] == '#' || p[i] == 0x7f) {
            snprintf(err, errlen, "%s: the path may not contain spaces, '?' or '#'", url);
            return -1;
        }
    }
    memcpy(conf->prefix, p, plen);
    conf->prefix[plen] = '\0';
    return 0;
}

/* "host:port" for the Host header (IPv6 in brackets). */
static void host_header(const struct rt_bench_conf *conf, char *out, size_t outlen)
{
    if (strchr(conf->host, ':'))
        snprintf(out, outlen, "[%s]:%d", conf->host, conf->port);
    else
        snprintf(out, outlen, "%s:%d", conf->host, conf->port);
}

static void append_headers(const struct rt_bench_conf *conf, struct rt_buf *b)
{
    char host[300];
    host_header(conf, host, sizeof host);
    rt_buf_printf(b, "Host: %s\r\nUser-Agent: vllm-router-bench/%s\r\n", host, RT_VERSION);
    for (size_t i = 0; i < conf->nheaders; i++)
        rt_buf_printf(b, "%s\r\n", conf->headers[i]);
}

/* ---- GET /v1/models --------------------------------------------------------------------- */

struct fetch {
    struct rt_buf body;
    int status;
    int err;
    bool done, too_big;
};

static void on_fetch_head(void *ctx, const struct rt_http_response *res)
{
    ((struct fetch *)ctx)->status = res->status;
}

static void on_fetch_data(void *ctx, const char *data, size_t len)
{
    struct fetch *f = ctx;
    if (rt_buf_append(&f->body, data, len, 4u << 20) != 0)
        f->too_big = true;
}

static void on_fetch_done(void *ctx, int err, bool got_bytes)
{
    struct fetch *f = ctx;
    f->err = err;
    f->done = true;
}

static void on_walk_close(uv_handle_t *h, void *arg)
{
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

/* Closes whatever is left on <loop> and closes the loop. */
static void drain_loop(uv_loop_t *loop)
{
    uv_walk(loop, on_walk_close, NULL);
    uv_run(loop, UV_RUN_DEFAULT);
    (void)uv_loop_close(loop);
}

int rt_bench_fetch_model(const struct rt_bench_conf *conf, char **out, char *err, size_t errlen)
{
    *out = NULL;
    int ret = -1;
    struct sockaddr_storage addr;
    if (rt_http_resolve(conf->host, conf->port, &addr, err, errlen) != 0)
        return -1;
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct rt_http_pool *pool = rt_http_pool_new(&loop, (struct sockaddr *)&addr, 1000, 1);
    struct rt_buf req = {0};
    rt_buf_printf(&req, "GET %s/v1/models HTTP/1.1\r\n", conf->prefix);
    append_headers(conf, &req);
    rt_buf_printf(&req, "Accept: application/json\r\n\r\n");
    uv_buf_t buf = uv_buf_init(rt_buf_data(&req), (unsigned)rt_buf_size(&req));
    uint64_t ms = (uint64_t)(conf->timeout_s * 1000);
    struct rt_http_client_req r = {.bufs = &buf, .nbufs = 1, .connect_timeout_ms = ms,
                                   .first_byte_timeout_ms = ms, .idle_timeout_ms = ms};
    static const struct rt_http_client_cbs cbs = {on_fetch_head, on_fetch_data, on_fetch_done};
    struct fetch f = {0};
    struct rt_http_client *c;
    rt_http_pool_send(pool, &r, &cbs, &f, &c);
    while (!f.done)
        uv_run(&loop, UV_RUN_ONCE);
    json_t *j = NULL;
    if (f.err != RT_HC_OK) {
        snprintf(err, errlen, "GET %s/v1/models: %s", conf->prefix, rt_hc_strerror(f.err));
        goto out;
    }
    if (f.status != 200 || f.too_big) {
        snprintf(err, errlen, "GET %s/v1/models: HTTP status %d%s (give --model)", conf->prefix,
                 f.status, f.too_big ? ", body too large" : "");
        goto out;
    }
    json_error_t je;
    j = json_loadb(rt_buf_data(&f.body), rt_buf_size(&f.body), 0, &je);
    json_t *id = json_object_get(json_array_get(json_object_get(j, "data"), 0), "id");
    if (!json_is_string(id)) {
        snprintf(err, errlen, "GET %s/v1/models: no model listed in data[0].id (give --model)",
                 conf->prefix);
        goto out;
    }
    *out = rt_strdup(json_string_value(id));
    ret = 0;
out:
    json_decref(j);
    rt_buf_free(&f.body);
    rt_buf_free(&req);
    rt_http_pool_free(pool);
    drain_loop(&loop);
    return ret;
}

/* ---- slots ------------------------------------------------------------------------------ */

static struct slot *slot_get(struct run *run)
{
    struct slot *s = run->free_slots;
    if (s) {
        run->free_slots = s->next;
    } else {
        s = rt_calloc(1, sizeof(*s));
        s->run = run;
        rt_bench_sse_init(&s->sse);
    }
    s->prev = NULL;
    s->next = run->active;
    if (run->active)
        run->active->prev = s;
    run->active = s;
    return s;
}

static void slot_put(struct run *run, struct slot *s)
{
    if (s->prev)
        s->prev->next = s->next;
    else
        run->active = s->next;
    if (s->next)
        s->next->prev = s->prev;
    s->client = NULL;
    s->prev = NULL;
    s->next = run->free_slots;
    run->free_slots = s;
}

static void slot_free(struct slot *s)
{
    rt_buf_free(&s->head);
    rt_buf_free(&s->body);
    rt_buf_free(&s->resp);
    rt_bench_sse_free(&s->sse);
    rt_free(s->itl);
    rt_free(s);
}

static void push_itl(struct slot *s, double ms)
{
    if (s->nitl == s->capitl) {
        s->capitl = s->capitl ? s->capitl * 2 : 256;
        s->itl = rt_realloc(s->itl, s->capitl * sizeof(*s->itl));
    }
    s->itl[s->nitl++] = ms;
}

/* ---- one request ------------------------------------------------------------------------ */

static void maybe_issue(struct run *run);
static void on_head(void *ctx, const struct rt_http_response *res);
static void on_data(void *ctx, const char *data, size_t len);
static void on_done(void *ctx, int err, bool got_bytes);

static const struct rt_http_client_cbs req_cbs = {on_head, on_data, on_done};

static void start_request(struct run *run, bool warmup)
{
    const struct rt_bench_conf *conf = run->conf;
    struct slot *s = slot_get(run);
    uint64_t index = warmup ? WARMUP_INDEX + run->warmup_issued++ : run->next_index++;
    s->warmup = warmup;
    rt_bench_data_prompt(&run->data, index, &s->prompt, NULL);
    rt_buf_reset(&s->body);
    rt_bench_data_body(&run->data, &run->body_conf, index, &s->body);
    rt_buf_reset(&s->head);
    rt_buf_printf(&s->head, "%sContent-Length: %zu\r\n\r\n", run->head_prefix,
                  rt_buf_size(&s->body));
    s->bufs[0] = uv_buf_init(rt_buf_data(&s->head), (unsigned)rt_buf_size(&s->head));
    s->bufs[1] = uv_buf_init(rt_buf_data(&s->body), (unsigned)rt_buf_size(&s->body));
    rt_bench_sse_reset(&s->sse);
    rt_buf_reset(&s->resp);
    s->nitl = 0;
    s->status = 0;
    s->first = false;
    s->bad = false;
    s->ttft_ms = 0;
    uint64_t ms = (uint64_t)(conf->timeout_s * 1000);
    struct rt_http_client_req req = {.bufs = s->bufs, .nbufs = 2, .connect_timeout_ms = ms,
                                     .first_byte_timeout_ms = ms, .idle_timeout_ms = ms};
    run->inflight++;
    if (!warmup)
        run->issued++;
    s->t_start = uv_hrtime();
    rt_http_pool_send(run->pool, &req, &req_cbs, s, &s->client);
}

static void on_head(void *ctx, const struct rt_http_response *res)
{
    struct slot *s = ctx;
    s->status = res->status;
}

static void on_data(void *ctx, const char *data, size_t len)
{
    struct slot *s = ctx;
    if (s->status != 200 || !s->run->conf->stream) {
        /* Whole body kept for the usage counts; error bodies only for their size. */
        if (s->status == 200 && rt_buf_append(&s->resp, data, len, MAX_BODY) != 0)
            s->bad = true;
        return;
    }
    uint64_t now = uv_hrtime();
    int n = rt_bench_sse_feed(&s->sse, data, len);
    if (n < 0) {
        s->bad = true;
        return;
    }
    /* Events that arrived in one piece share its timestamp, as they would for any client. */
    for (int i = 0; i < n; i++) {
        if (!s->first) {
            s->first = true;
            s->ttft_ms = (double)(now - s->t_start) / 1e6;
        } else {
            push_itl(s, (double)(now - s->t_last) / 1e6);
        }
        s->t_last = now;
    }
}

static int classify(const struct slot *s, int err)
{
    if (s->status != 0 && s->status != 200)
        return RT_BENCH_EHTTP;
    switch (err) {
    case RT_HC_OK:
        break;
    case RT_HC_ECONNECT:
    case RT_HC_ETIMEOUT_CONNECT:
        return RT_BENCH_ECONNECT;
    case RT_HC_ETIMEOUT_HEAD:
    case RT_HC_ETIMEOUT_IDLE:
        return RT_BENCH_ETIMEOUT;
    case RT_HC_ERESET:
    case RT_HC_EWRITE:
        return RT_BENCH_ECLOSED;
    default:
        return RT_BENCH_EPROTO;
    }
    if (s->bad)
        return RT_BENCH_EPROTO;
    if (s->run->conf->stream) {
        if (s->sse.error)
            return RT_BENCH_ESTREAM;
        /* A complete stream ends with [DONE] and carried at least one token. */
        if (!s->sse.done || s->sse.content_events == 0)
            return RT_BENCH_EPROTO;
    }
    return RT_BENCH_OK;
}

/* Records request <s> (ended with <err>, or cancelled) and frees its slot. */
static void finish_request(struct run *run, struct slot *s, int kind, uint64_t now)
{
    if (!s->warmup) {
        struct rt_bench_record r = {.err = kind, .http_status = s->status};
        r.e2el_ms = (double)(now - s->t_start) / 1e6;
        int64_t prompt = s->sse.prompt_tokens, out = s->sse.completion_tokens;
        if (!run->conf->stream && kind == RT_BENCH_OK) {
            struct rt_bench_scan sc;
            rt_bench_scan_json(rt_buf_str(&s->resp), &sc);
            prompt = sc.prompt_tokens;
            out = sc.completion_tokens;
            if (sc.error)
                r.err = RT_BENCH_ESTREAM;
            s->ttft_ms = r.e2el_ms; /* without streaming the first token comes with the rest */
        }
        r.prompt_tokens = prompt >= 0 && prompt <= UINT32_MAX ? (uint32_t)prompt
                                                               : s->prompt.input_len;
        if (out >= 0 && out <= UINT32_MAX)
            r.output_tokens = (uint32_t)out;
        else
            r.output_tokens = run->conf->stream ? (uint32_t)s->sse.content_events : 0;
        r.ttft_ms = s->ttft_ms;
        rt_bench_stats_add(run->stats, &r, s->itl, s->nitl);
        run->t_end = now;
    }
    run->inflight--;
    slot_put(run, s);
}

static void on_done(void *ctx, int err, bool got_bytes)
{
    struct slot *s = ctx;
    struct run *run = s->run;
    uint64_t now = uv_hrtime();
    finish_request(run, s, classify(s, err), now);
    maybe_issue(run);
}

/* ---- pacing and the end of the run ------------------------------------------------------ */

static void on_closed(uv_handle_t *h)
{
    (void)h;
}

/* Everything was sent and answered (or cancelled): release the loop's handles so uv_run
 * returns. Idempotent. */
static void wrap_up(struct run *run)
{
    if (run->finished)
        return;
    run->finished = true;
    uv_close((uv_handle_t *)&run->arrival_timer, on_closed);
    uv_close((uv_handle_t *)&run->end_timer, on_closed);
    uv_close((uv_handle_t *)&run->grace_timer, on_closed);
    uv_close((uv_handle_t *)&run->sigint, on_closed);
    rt_http_pool_free(run->pool);
    run->pool = NULL;
}

/* Cancels every request in flight, counting the measured ones as "cancelled at end". */
static void cancel_all(struct run *run)
{
    uint64_t now = uv_hrtime();
    while (run->active) {
        struct slot *s = run->active;
        rt_http_client_cancel(s->client);
        finish_request(run, s, RT_BENCH_ECANCELLED, now);
    }
}

static void on_grace(uv_timer_t *t)
{
    struct run *run = t->data;
    cancel_all(run);
    wrap_up(run);
}

/* No more requests will be issued. In-flight requests finish normally, or at the end of the
 * grace period when the stop came from --duration. */
static void stop_issuing(struct run *run, bool by_time)
{
    if (run->stopping)
        return;
    run->stopping = true;
    run->pending = 0;
    uv_timer_stop(&run->arrival_timer);
    uv_timer_stop(&run->end_timer);
    if (by_time && run->inflight > 0)
        uv_timer_start(&run->grace_timer, on_grace, (uint64_t)(run->conf->grace_s * 1000), 0);
}

static void on_sigint(uv_signal_t *h, int signum)
{
    struct run *run = h->data;
    stop_issuing(run, false);
    cancel_all(run);
    wrap_up(run);
}

static void on_end(uv_timer_t *t)
{
    struct run *run = t->data;
    stop_issuing(run, true);
    if (run->inflight == 0)
        wrap_up(run);
}

static void begin_measuring(struct run *run);

/* Issues what the mode allows now; ends the run when nothing is left to do. */
static void maybe_issue(struct run *run)
{
    const struct rt_bench_conf *conf = run->conf;
    if (run->finished)
        return;
    if (!run->measuring) {
        /* Warm-up: a closed loop over <warmup> requests, then the measured run starts. */
        unsigned cap = conf->concurrency ? conf->concurrency : 1;
        while (run->warmup_left > 0 && run->inflight < cap) {
            run->warmup_left--;
            start_request(run, true);
        }
        if (run->warmup_left == 0 && run->inflight == 0)
            begin_measuring(run);
        return;
    }
    if (!run->stopping) {
        if (conf->num_requests && run->issued >= conf->num_requests)
            stop_issuing(run, false);
        else if (conf->duration_s > 0 && uv_hrtime() - run->t0 >= (uint64_t)(conf->duration_s * 1e9))
            stop_issuing(run, true);
    }
    while (!run->stopping) {
        if (conf->concurrency && run->inflight >= conf->concurrency)
            break;
        if (conf->request_rate > 0) {
            if (run->pending == 0)
                break;
            run->pending--;
        }
        start_request(run, false);
        if (conf->num_requests && run->issued >= conf->num_requests)
            stop_issuing(run, false);
    }
    if (run->stopping && run->inflight == 0)
        wrap_up(run);
}

/* Arrivals due by now become pending requests; the timer is set for the next one. */
static void on_arrival(uv_timer_t *t)
{
    struct run *run = t->data;
    const struct rt_bench_conf *conf = run->conf;
    uint64_t now = uv_hrtime();
    while (run->next_arrival <= now) {
        /* Never queue more than the count bound still allows. */
        if (!conf->num_requests || run->issued + run->pending < conf->num_requests)
            run->pending++;
        run->next_arrival += (uint64_t)(rt_bench_exp_gap(&run->rng, conf->request_rate) * 1e9);
    }
    maybe_issue(run);
    if (!run->stopping) {
        uint64_t wait_ms = (run->next_arrival - now + 999999) / 1000000;
        uv_timer_start(&run->arrival_timer, on_arrival, wait_ms, 0);
    }
}

static void begin_measuring(struct run *run)
{
    const struct rt_bench_conf *conf = run->conf;
    run->measuring = true;
    run->t0 = uv_hrtime();
    run->t_end = run->t0;
    uv_update_time(&run->loop);
    if (conf->duration_s > 0)
        uv_timer_start(&run->end_timer, on_end, (uint64_t)(conf->duration_s * 1000), 0);
    if (conf->request_rate > 0) {
        /* The first request goes at once, as vllm bench sends it. */
        run->next_arrival = run->t0;
        on_arrival(&run->arrival_timer);
    } else {
        maybe_issue(run);
    }
}

int rt_bench_run(const struct rt_bench_conf *conf, struct rt_bench_stats *stats,
                 double *duration_s, char *err, size_t errlen)
{
    *duration_s = 0;
    struct sockaddr_storage addr;
    if (rt_http_resolve(conf->host, conf->port, &addr, err, errlen) != 0)
        return -1;
    struct run *run = rt_calloc(1, sizeof(*run));
    run->conf = conf;
    run->stats = stats;
    if (rt_bench_data_init(&run->data, &conf->data, err, errlen) != 0) {
        rt_free(run);
        return -1;
    }
    run->body_conf = (struct rt_bench_body_conf){.endpoint = conf->endpoint, .model = conf->model,
                                                 .stream = conf->stream,
                                                 .ignore_eos = conf->ignore_eos};
    struct rt_buf hp = {0};
    rt_buf_printf(&hp, "POST %s HTTP/1.1\r\n", conf->path);
    append_headers(conf, &hp);
    rt_buf_printf(&hp, "Content-Type: application/json\r\nAccept: %s\r\n",
                  conf->stream ? "text/event-stream" : "application/json");
    (void)rt_buf_append(&hp, "", 1, SIZE_MAX);
    run->head_prefix = hp.base;
    run->rng = conf->seed ^ 0x5eedf00dULL;
    run->warmup_left = conf->warmup;

    uv_loop_init(&run->loop);
    unsigned idle = conf->concurrency ? conf->concurrency : 1024;
    run->pool = rt_http_pool_new(&run->loop, (struct sockaddr *)&addr, 60000, idle);
    uv_timer_init(&run->loop, &run->arrival_timer);
    uv_timer_init(&run->loop, &run->end_timer);
    uv_timer_init(&run->loop, &run->grace_timer);
    run->arrival_timer.data = run->end_timer.data = run->grace_timer.data = run;
    uv_signal_init(&run->loop, &run->sigint);
    run->sigint.data = run;
    uv_signal_start_oneshot(&run->sigint, on_sigint, SIGINT);

    if (run->warmup_left > 0)
        maybe_issue(run);
    else
        begin_measuring(run);
    uv_run(&run->loop, UV_RUN_DEFAULT);
    drain_loop(&run->loop);

    *duration_s = (double)(run->t_end - run->t0) / 1e9;
    while (run->free_slots) {
        struct slot *s = run->free_slots;
        run->free_slots = s->next;
        slot_free(s);
    }
    rt_bench_data_free(&run->data);
    rt_free(run->head_prefix);
    rt_free(run);
    return 0;
}
