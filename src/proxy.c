/* One forwarded request, from the client's body to the backend's last byte (see proxy.h).
 *
 * Life of a request: scan the body (model, stream, user) -> pick a backend among those that
 * can take it -> send -> on the response head either pass it on or, for a retryable status
 * with nothing sent yet, abandon the attempt and try another backend -> stream the body ->
 * finish. A request that finds every eligible backend full waits in the worker's admission
 * queue. Each attempt holds one slot of its backend (rt_backend_try_dispatch) and gives it
 * back exactly once, in release_attempt(). */
#include "proxy.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "buf.h"
#include "fleet.h"
#include "log.h"
#include "metrics.h"
#include "req_scan.h"

#define MAX_TRIED       32
#define BUFFER_LIMIT    (4u << 20) /* upstream bodies up to this with a length are sent whole */
#define MAX_CANDIDATES  256

enum pstate {
    P_NEW = 0,
    P_QUEUED,     /* waiting in the admission queue */
    P_RETRY_WAIT, /* waiting retry_delay before the next attempt */
    P_UPSTREAM,   /* an attempt is out */
    P_DONE,       /* the exchange was ended */
};

struct rt_proxy_req {
    struct rt_worker *w;
    struct rt_http_exchange *ex; /* NULL once ended */
    struct rt_settings *set;     /* reference held for the request's life */
    uv_timer_t timer;            /* queue wait and retry delay; closed before the free */
    enum pstate state;
    struct rt_json_fields f;
    struct rt_str model;         /* f.model or the multipart field (copied into f.model_buf) */
    struct rt_str affinity;
    char request_id[80];
    uint64_t start_ms;
    uint64_t start_ns;           /* uv_hrtime() at the start, for the access record */
    uint64_t ttfb_ns;            /* first response byte handed to the client */
    uint64_t deadline_ms;        /* request_timeout from the start: retries stop there */
    uint64_t queued_ms;
    int64_t queue_wait_ms;       /* -1 when the request never waited */
    unsigned attempts;
    uint64_t tried[MAX_TRIED];   /* backend ids already tried */
    size_t ntried;
    struct rt_backend *b;        /* the current attempt's backend (a reference and a slot) */
    struct rt_http_client *client;
    struct rt_buf head;          /* the upstream request head */
    uv_buf_t bufs[2];
    int status;                  /* the status sent to the client */
    bool responding;             /* a response head went to the client */
    bool buffering;              /* collecting a sized body to send whole */
    bool sse;
    bool upstream_failed_status; /* the backend answered 5xx (not 503) */
    struct rt_buf resp;          /* response headers, then the buffered body after them */
    size_t resp_head_len;        /* bytes of headers at the front of resp when buffering */
    char tail[2];                /* last two bytes streamed, to end an SSE event cleanly */
    uint64_t bytes_out;
    int64_t prompt_tokens, completion_tokens;
    const char *error;           /* short reason when we made the response */
    struct rt_proxy_req *qnext, *qprev; /* the owner worker's list of its queued requests */
    /* Under gq.mu: the router-wide arrival order, and a slot granted by whichever worker
     * found it free (the owner sends on it). */
    struct rt_proxy_req *gnext, *gprev;
    bool in_gq;
    struct rt_backend *grant;
    char server_url[256];        /* who answered, for the log */
};

static void try_dispatch(struct rt_proxy_req *r);
static const struct rt_http_client_cbs upstream_cbs;

/* The admission queue is router-wide so that it is FIFO across workers: every worker that
 * finds a slot free hands it to the oldest waiting request that can use it, whichever worker
 * owns that request. */
static struct {
    pthread_mutex_t mu;
    struct rt_proxy_req *head, *tail;
} gq = {.mu = PTHREAD_MUTEX_INITIALIZER};

/* ---- small helpers ---------------------------------------------------------------------- */

static uint64_t rng_next(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

static bool tried(const struct rt_proxy_req *r, uint64_t id)
{
    for (size_t i = 0; i < r->ntried; i++)
        if (r->tried[i] == id)
            return true;
    return false;
}

static bool is_hop_by_hop(struct rt_str name)
{
    static const struct rt_str hop[] = {
        RT_STR_LIT("connection"),       RT_STR_LIT("keep-alive"),
        RT_STR_LIT("proxy-connection"), RT_STR_LIT("proxy-authenticate"),
        RT_STR_LIT("proxy-authorization"), RT_STR_LIT("te"),
        RT_STR_LIT("trailer"),          RT_STR_LIT("transfer-encoding"),
        RT_STR_LIT("upgrade"),          RT_STR_LIT("content-length"),
    };
    for (size_t i = 0; i < sizeof hop / sizeof hop[0]; i++)
        if (rt_str_eq_ci(name, hop[i]))
            return true;
    return false;
}

/* Whether <name> is listed in a Connection header of <h> (RFC 9110 7.6.1: such headers are
 * hop-by-hop too and are not forwarded). */
static bool nominated(const struct rt_http_header *h, size_t n, struct rt_str name)
{
    for (size_t i = 0; i < n; i++) {
        if (!rt_str_eq_ci(h[i].name, RT_STR_LIT("connection")))
            continue;
        const char *p = h[i].value.ptr, *end = p + h[i].value.len;
        while (p < end) {
            while (p < end && (*p == ' ' || *p == '\t' || *p == ','))
                p++;
            const char *t = p;
            while (p < end && *p != ',' && *p != ' ' && *p != '\t')
                p++;
            if (p > t && rt_str_eq_ci(rt_str_make(t, (size_t)(p - t)), name))
                return true;
        }
    }
    return false;
}

/* Appends "Name: value\r\n" (no printf on the hot path). */
static void put_header(struct rt_buf *b, struct rt_str name, struct rt_str value)
{
    rt_buf_reserve(b, name.len + value.len + 4, (size_t)-1);
    char *p = b->base + b->len;
    memcpy(p, name.ptr, name.len);
    p += name.len;
    *p++ = ':';
    *p++ = ' ';
    memcpy(p, value.ptr, value.len);
    p += value.len;
    *p++ = '\r';
    *p++ = '\n';
    b->len = (size_t)(p - b->base);
}

/* Token usage from a response body or the tail of an SSE stream: the last "prompt_tokens"
 * and "completion_tokens" numbers in <s>. */
static void scan_usage(struct rt_proxy_req *r, struct rt_str s)
{
    static const char pk[] = "\"prompt_tokens\":", ck[] = "\"completion_tokens\":";
    for (size_t i = 0; i + sizeof ck < s.len; i++) {
        if (s.ptr[i] != '"')
            continue;
        int64_t *dst = NULL;
        size_t kl = 0;
        if (memcmp(s.ptr + i, pk, sizeof pk - 1) == 0)
            dst = &r->prompt_tokens, kl = sizeof pk - 1;
        else if (memcmp(s.ptr + i, ck, sizeof ck - 1) == 0)
            dst = &r->completion_tokens, kl = sizeof ck - 1;
        if (!dst)
            continue;
        size_t j = i + kl;
        while (j < s.len && s.ptr[j] == ' ')
            j++;
        int64_t v = 0;
        bool any = false;
        while (j < s.len && s.ptr[j] >= '0' && s.ptr[j] <= '9' && v < (INT64_MAX / 10 - 9)) {
            v = v * 10 + (s.ptr[j++] - '0');
            any = true;
        }
        if (any)
            *dst = v;
    }
}

/* ---- ending ----------------------------------------------------------------------------- */

static void on_timer_closed(uv_handle_t *h)
{
    struct rt_proxy_req *r = h->data;
    rt_buf_free(&r->head);
    rt_buf_free(&r->resp);
    rt_settings_unref(r->set);
    rt_free(r);
}

static void gq_unlink(struct rt_proxy_req *r)
{
    if (!r->in_gq)
        return;
    if (r->gprev)
        r->gprev->gnext = r->gnext;
    else
        gq.head = r->gnext;
    if (r->gnext)
        r->gnext->gprev = r->gprev;
    else
        gq.tail = r->gprev;
    r->gnext = r->gprev = NULL;
    r->in_gq = false;
}

/* Takes <r> out of the queue (owner thread). Returns the slot granted to it meanwhile, if
 * any: the caller sends on it or gives it back. */
static struct rt_backend *queue_remove(struct rt_proxy_req *r)
{
    struct rt_worker *w = r->w;
    if (r->qprev)
        r->qprev->qnext = r->qnext;
    else
        w->queue_head = r->qnext;
    if (r->qnext)
        r->qnext->qprev = r->qprev;
    else
        w->queue_tail = r->qprev;
    r->qnext = r->qprev = NULL;
    r->queue_wait_ms = (int64_t)(rt_now_ms() - r->queued_ms);
    w->queued--;
    atomic_fetch_sub(&w->router->waiting, 1);
    pthread_mutex_lock(&gq.mu);
    gq_unlink(r);
    struct rt_backend *g = r->grant;
    r->grant = NULL;
    pthread_mutex_unlock(&gq.mu);
    return g;
}

/* Gives the current attempt's slot back, exactly once, with how it went. */
static void release_attempt(struct rt_proxy_req *r, enum rt_outcome outcome)
{
    if (!r->b)
        return;
    if (r->client) {
        rt_http_client_cancel(r->client); /* closes: the backend stops generating */
        r->client = NULL;
    }
    rt_backend_release(r->b, outcome, rt_now_ms());
    rt_backend_unref(r->b);
    r->b = NULL;
    /* A slot is free: this worker hands it to the oldest waiting request on its next turn
     * (not from inside this call stack). */
    if (atomic_load_explicit(&r->w->router->waiting, memory_order_relaxed) > 0)
        uv_async_send(&r->w->wake);
}

/* The access record and the metrics of a finished request, taken as the exchange ends (its
 * slices and byte counts are valid and final only then). */
static void on_client_end(struct rt_http_exchange *ex, void *data)
{
    struct rt_proxy_req *r = data;
    char method[16], path[512], model[RT_SCAN_STR_CAP];
    snprintf(method, sizeof method, "%.*s", RT_STR_FMT(ex->req.method));
    snprintf(path, sizeof path, "%.*s", RT_STR_FMT(ex->req.path));
    snprintf(model, sizeof model, "%.*s", RT_STR_FMT(r->model));
    uint64_t now = uv_hrtime();
    double ttfb_ms = r->responding ? (double)(r->ttfb_ns - r->start_ns) / 1e6 : -1;
    double total_ms = (double)(now - r->start_ns) / 1e6;
    const char *server = r->server_url[0] ? r->server_url : NULL;
    struct rt_access_record rec = {
        .request_id = r->request_id,
        .method = method,
        .endpoint = path,
        .model = r->model.len ? model : NULL,
        .server = server,
        .status = r->status,
        .bytes_in = ex->head_bytes + ex->body.len,
        .bytes_out = ex->bytes_out,
        .ttfb_ms = ttfb_ms,
        .total_ms = total_ms,
        .retries = r->attempts > 0 ? r->attempts - 1 : 0,
        .prompt_tokens = r->prompt_tokens,
        .completion_tokens = r->completion_tokens,
        .error = r->error,
    };
    rt_log_access(&rec);
    struct rt_metrics_request m = {
        .endpoint = path,
        .model = r->model,
        .server = server,
        .status = r->status,
        .duration_s = total_ms / 1000,
        .ttfb_s = ttfb_ms < 0 ? -1 : ttfb_ms / 1000,
        .retries = rec.retries,
        .prompt_tokens = r->prompt_tokens,
        .completion_tokens = r->completion_tokens,
        .queue_wait_s = r->queue_wait_ms < 0 ? -1 : r->queue_wait_ms / 1000.0,
    };
    rt_metrics_request(r->w->index, &m);
}

/* The exchange is over (answered, or the client left): log and let go of everything. */
static void finish(struct rt_proxy_req *r)
{
    if (r->state == P_DONE)
        return;
    if (r->state == P_QUEUED) {
        struct rt_backend *g = queue_remove(r);
        if (g) {
            /* A slot granted just as the request ended: give it back, it may serve another. */
            rt_backend_release(g, RT_OUTCOME_CANCELLED, rt_now_ms());
            rt_backend_unref(g);
            uv_async_send(&r->w->wake);
        }
    }
    r->state = P_DONE;
    uv_timer_stop(&r->timer);
    release_attempt(r, RT_OUTCOME_CANCELLED); /* no-op unless an attempt is still out */
    r->ex = NULL; /* ended by now: on_client_end has recorded it */
    atomic_fetch_sub(&r->w->active, 1);
    uv_close((uv_handle_t *)&r->timer, on_timer_closed);
}

/* Common response headers of ours: request id, and Retry-After when given. */
static void our_headers(struct rt_proxy_req *r, struct rt_buf *h, int retry_after)
{
    rt_buf_printf(h, "X-Request-Id: %s\r\n", r->request_id);
    if (retry_after > 0)
        rt_buf_printf(h, "Retry-After: %d\r\n", retry_after);
}

/* Answers with an error the router made itself (OpenAI shape) and finishes. */
static void fail_request(struct rt_proxy_req *r, int status, const char *type, const char *code,
                         const char *message, int retry_after)
{
    struct rt_http_exchange *ex = r->ex;
    struct rt_buf h = {0};
    our_headers(r, &h, retry_after);
    r->status = status;
    r->error = code;
    r->responding = true;
    r->ttfb_ns = uv_hrtime();
    rt_http_respond_error(ex, status, type, code, message, h.base ? rt_buf_data(&h) : "");
    rt_buf_free(&h);
    finish(r);
}

/* ---- client events ---------------------------------------------------------------------- */

static void on_client_abort(struct rt_http_exchange *ex, void *data)
{
    struct rt_proxy_req *r = data;
    r->error = r->error ? r->error : "client_closed";
    if (!r->responding)
        r->status = 499; /* the client left before an answer, as NGINX logs it */
    release_attempt(r, RT_OUTCOME_CANCELLED);
    rt_http_stream_end(ex); /* ends (and frees) the exchange: nothing is written any more */
    finish(r);
}

static void on_client_drain(struct rt_http_exchange *ex, void *data)
{
    struct rt_proxy_req *r = data;
    if (r->client)
        rt_http_client_resume(r->client);
}

/* ---- the upstream attempt --------------------------------------------------------------- */

/* Whether another attempt may follow a failed one. */
static bool can_retry(struct rt_proxy_req *r)
{
    const struct rt_config *c = r->set->cfg;
    return !r->responding && r->attempts <= (unsigned)c->config.max_retries &&
           rt_now_ms() + (uint64_t)(c->config.retry_delay * 1000) < r->deadline_ms &&
           r->ntried < MAX_TRIED;
}

static void on_retry_timer(uv_timer_t *t)
{
    struct rt_proxy_req *r = t->data;
    r->state = P_NEW;
    try_dispatch(r);
}

/* The attempt failed before anything reached the client: try elsewhere or give up with
 * <status>. */
static void attempt_failed(struct rt_proxy_req *r, enum rt_outcome outcome, int status,
                           const char *code, const char *message, const char *reason)
{
    release_attempt(r, outcome);
    if (can_retry(r)) {
        rt_metrics_retry(r->w->index, reason);
        r->state = P_RETRY_WAIT;
        uint64_t delay = (uint64_t)(r->set->cfg->config.retry_delay * 1000);
        uv_timer_start(&r->timer, on_retry_timer, delay, 0);
        return;
    }
    fail_request(r, status, status == 504 ? "timeout_error" : "server_error", code, message, 0);
}

/* Whether a backend not tried yet could take the request now (ignoring capacity). */
static bool other_candidate(struct rt_proxy_req *r)
{
    struct rt_fleet_view *v = rt_fleet_acquire();
    uint64_t now = rt_now_ms();
    bool found = false;
    for (size_t i = 0; i < v->n && !found; i++) {
        struct rt_backend *b = v->b[i];
        found = b != r->b && !tried(r, b->id) && rt_backend_available(b, now) &&
                (!r->model.len || rt_backend_serves(b, r->model));
    }
    rt_fleet_view_unref(v);
    return found;
}

static void on_up_head(void *ctx, const struct rt_http_response *res)
{
    struct rt_proxy_req *r = ctx;
    int st = res->status;
    bool busy = st == 429 || st == 503;
    /* Retryable answers go elsewhere while the client has seen nothing; with nowhere else to
     * go, the backend's own answer passes through. */
    if ((busy || st == 502 || st == 504) && can_retry(r) && other_candidate(r)) {
        char msg[96], reason[32];
        snprintf(msg, sizeof msg, "server answered %d", st);
        snprintf(reason, sizeof reason, "status_%d", st);
        attempt_failed(r, busy ? RT_OUTCOME_BUSY : RT_OUTCOME_FAILURE, 502, "upstream_error",
                       msg, reason);
        return;
    }
    r->upstream_failed_status = st >= 500 && st != 503;
    r->status = st;
    struct rt_buf *h = &r->resp;
    rt_buf_reset(h);
    bool sse = false;
    for (size_t i = 0; i < res->num_headers; i++) {
        const struct rt_http_header *hd = &res->headers[i];
        if (is_hop_by_hop(hd->name) || nominated(res->headers, res->num_headers, hd->name) ||
            rt_str_eq_ci(hd->name, RT_STR_LIT("x-request-id")) ||
            rt_str_eq_ci(hd->name, RT_STR_LIT("date")) ||
            rt_str_eq_ci(hd->name, RT_STR_LIT("server")))
            continue;
        if (rt_str_eq_ci(hd->name, RT_STR_LIT("content-type")) &&
            hd->value.len >= 17 && strncasecmp(hd->value.ptr, "text/event-stream", 17) == 0)
            sse = true;
        if (sse && (rt_str_eq_ci(hd->name, RT_STR_LIT("cache-control")) ||
                    rt_str_eq_ci(hd->name, RT_STR_LIT("x-accel-buffering"))))
            continue;
        put_header(h, hd->name, hd->value);
    }
    r->sse = sse;
    our_headers(r, h, 0);
    rt_buf_printf(h, "X-Upstream-Server: %s\r\n", r->server_url);
    if (sse)
        rt_buf_printf(h, "Cache-Control: no-cache\r\nX-Accel-Buffering: no\r\n");
    /* A sized body that fits goes out whole (one write, a Content-Length); everything else
     * streams as it comes. */
    r->buffering = !sse && !res->chunked && res->content_length >= 0 &&
                   res->content_length <= (int64_t)BUFFER_LIMIT;
    if (r->buffering) {
        r->resp_head_len = rt_buf_size(h); /* the body is appended after the headers */
        return;
    }
    r->responding = true;
    r->ttfb_ns = uv_hrtime();
    rt_http_stream_start(r->ex, st, rt_buf_str(h));
    /* From here on nothing is retried: the buffers of the upstream head and of our response
     * headers are not needed again. Thousands of long streams make this worth giving back. */
    rt_buf_free(h);
    if (r->client && rt_http_client_sent(r->client))
        rt_buf_free(&r->head);
}

static void on_up_data(void *ctx, const char *data, size_t len)
{
    struct rt_proxy_req *r = ctx;
    if (r->buffering) {
        rt_buf_append(&r->resp, data, len, (size_t)-1);
        return;
    }
    rt_http_stream_write(r->ex, data, len);
    if (len >= 2) {
        r->tail[0] = data[len - 2];
        r->tail[1] = data[len - 1];
    } else {
        r->tail[0] = r->tail[1];
        r->tail[1] = data[0];
    }
    if (r->sse && len > 20)
        scan_usage(r, rt_str_make(data, len));
    /* A slow reader: stop reading the backend until the client caught up. */
    if (rt_http_congested(r->ex) && r->client)
        rt_http_client_pause(r->client);
}

static void on_up_done(void *ctx, int err, bool got_bytes)
{
    struct rt_proxy_req *r = ctx;
    r->client = NULL; /* the client object is gone after this callback */
    if (err == RT_HC_OK) {
        enum rt_outcome o = r->status == 429 || r->status == 503 ? RT_OUTCOME_BUSY
                            : r->upstream_failed_status           ? RT_OUTCOME_FAILURE
                                                                  : RT_OUTCOME_OK;
        release_attempt(r, o);
        if (r->buffering) {
            struct rt_str all = rt_buf_str(&r->resp);
            size_t split = r->resp_head_len;
            struct rt_str body = rt_str_make(all.ptr + split, all.len - split);
            scan_usage(r, body);
            r->ttfb_ns = uv_hrtime();
            r->responding = true;
            rt_http_respond_s(r->ex, r->status, rt_str_make(all.ptr, split), body);
        } else {
            rt_http_stream_end(r->ex);
        }
        finish(r);
        return;
    }
    bool timeout = err == RT_HC_ETIMEOUT_HEAD || err == RT_HC_ETIMEOUT_IDLE ||
                   err == RT_HC_ETIMEOUT_CONNECT;
    if (!r->responding) {
        r->buffering = false;
        rt_buf_reset(&r->resp);
        char msg[400];
        snprintf(msg, sizeof msg, "server %s: %s", r->server_url, rt_hc_strerror(err));
        attempt_failed(r, RT_OUTCOME_FAILURE, timeout ? 504 : 502,
                       timeout ? "upstream_timeout" : "upstream_error", msg,
                       timeout                 ? "timeout"
                       : err == RT_HC_ECONNECT ? "connect"
                       : err == RT_HC_EPROTO   ? "protocol"
                                               : "reset");
        return;
    }
    /* The stream broke after bytes reached the client: no retry. End it cleanly, in-band. */
    release_attempt(r, RT_OUTCOME_FAILURE);
    r->error = timeout ? "upstream_timeout" : "upstream_broken";
    if (r->sse) {
        struct rt_buf e = {0};
        if (!(r->tail[0] == '\n' && r->tail[1] == '\n'))
            rt_buf_printf(&e, "\n\n");
        rt_buf_printf(&e, "data: {\"error\":{\"message\":");
        char msg[160];
        snprintf(msg, sizeof msg, "the server failed mid-stream: %s", rt_hc_strerror(err));
        rt_http_json_str(&e, msg, strlen(msg));
        rt_buf_printf(&e, ",\"type\":\"server_error\",\"param\":null,\"code\":\"%s\"}}\n\n"
                          "data: [DONE]\n\n",
                      r->error);
        rt_http_stream_write(r->ex, rt_buf_data(&e), rt_buf_size(&e));
        rt_buf_free(&e);
        rt_http_stream_end(r->ex);
    } else {
        /* No in-band channel: cut the connection so the client cannot take a truncated body
         * for a whole one. */
        r->ex->_close_after = true;
        rt_http_stream_end(r->ex);
    }
    (void)got_bytes;
    finish(r);
}

static const struct rt_http_client_cbs upstream_cbs = {
    .on_head = on_up_head,
    .on_data = on_up_data,
    .on_done = on_up_done,
};

/* Builds the upstream request head for backend <b>. */
static void build_head(struct rt_proxy_req *r, struct rt_backend *b)
{
    struct rt_http_exchange *ex = r->ex;
    struct rt_buf *h = &r->head;
    char auth[512];
    size_t authlen = rt_backend_auth(b, auth, sizeof auth);
    rt_buf_reset(h);
    rt_buf_printf(h, "%.*s %s%.*s HTTP/1.1\r\n%s", RT_STR_FMT(ex->req.method), b->base_path,
                  RT_STR_FMT(ex->req.target), b->host_header);
    for (size_t i = 0; i < ex->req.num_headers; i++) {
        const struct rt_http_header *hd = &ex->req.headers[i];
        if (is_hop_by_hop(hd->name) ||
            nominated(ex->req.headers, ex->req.num_headers, hd->name) ||
            rt_str_eq_ci(hd->name, RT_STR_LIT("host")) ||
            rt_str_eq_ci(hd->name, RT_STR_LIT("expect")) ||
            rt_str_eq_ci(hd->name, RT_STR_LIT("x-request-id")) ||
            (authlen && rt_str_eq_ci(hd->name, RT_STR_LIT("authorization"))))
            continue;
        put_header(h, hd->name, hd->value);
    }
    if (authlen)
        rt_buf_append(h, auth, authlen, (size_t)-1);
    rt_buf_printf(h, "X-Request-Id: %s\r\nContent-Length: %zu\r\n\r\n", r->request_id,
                  ex->body.len);
    r->bufs[0] = uv_buf_init(rt_buf_data(h), (unsigned)rt_buf_size(h));
    r->bufs[1] = uv_buf_init((char *)ex->body.ptr, (unsigned)ex->body.len);
}

static void send_attempt(struct rt_proxy_req *r, struct rt_backend *b)
{
    const struct rt_config *c = r->set->cfg;
    r->b = b; /* the slot and the reference are ours now */
    if (r->attempts == 0) /* request_timeout runs from the first dispatch, not the queue */
        r->deadline_ms = rt_now_ms() + (uint64_t)(c->config.request_timeout * 1000);
    r->attempts++;
    if (r->ntried < MAX_TRIED)
        r->tried[r->ntried++] = b->id;
    snprintf(r->server_url, sizeof r->server_url, "%s", b->url);
    build_head(r, b);
    r->state = P_UPSTREAM;
    uint64_t now = rt_now_ms();
    uint64_t left = r->deadline_ms > now ? r->deadline_ms - now : 1;
    struct rt_http_client_req req = {
        .bufs = r->bufs,
        .nbufs = r->ex->body.len ? 2 : 1,
        .head_request = rt_str_eq(r->ex->req.method, RT_STR_LIT("HEAD")),
        .connect_timeout_ms = (uint64_t)(c->timeouts.connect * 1000),
        .first_byte_timeout_ms = left,
        .idle_timeout_ms = (uint64_t)(c->timeouts.stream_idle * 1000),
    };
    rt_http_pool_send(rt_worker_pool(r->w, b), &req, &upstream_cbs, r, &r->client);
}

/* ---- choosing a backend ----------------------------------------------------------------- */

/* 404 for a model nobody serves, listing the models that are (de-duplicated). */
static void unknown_model(struct rt_proxy_req *r, const struct rt_fleet_view *v)
{
    struct rt_buf msg = {0};
    struct rt_models *held[MAX_CANDIDATES];
    struct rt_str seen[MAX_CANDIDATES];
    size_t nheld = 0, nseen = 0;
    rt_buf_printf(&msg, "The model `%.*s` does not exist. Available models: ",
                  RT_STR_FMT(r->model));
    for (size_t i = 0; i < v->n && nheld < MAX_CANDIDATES; i++) {
        struct rt_models *m = rt_backend_models(v->b[i]);
        if (!m)
            continue;
        held[nheld++] = m;
        for (size_t j = 0; j < m->n && nseen < MAX_CANDIDATES; j++) {
            bool dup = false;
            for (size_t k = 0; k < nseen && !dup; k++)
                dup = rt_str_eq(seen[k], m->ids[j]);
            if (dup)
                continue;
            rt_buf_printf(&msg, "%s%.*s", nseen ? ", " : "", RT_STR_FMT(m->ids[j]));
            seen[nseen++] = m->ids[j];
        }
    }
    if (nseen == 0)
        rt_buf_printf(&msg, "none");
    fail_request(r, 404, "invalid_request_error", "model_not_found", rt_buf_data(&msg), 0);
    for (size_t i = 0; i < nheld; i++)
        rt_models_unref(held[i]);
    rt_buf_free(&msg);
}

static void on_queue_timeout(uv_timer_t *t)
{
    struct rt_proxy_req *r = t->data;
    int wait = (int)r->set->cfg->queue.max_wait;
    struct rt_backend *g = queue_remove(r);
    r->state = P_NEW;
    if (g) {
        send_attempt(r, g); /* a slot arrived at the last moment */
        return;
    }
    rt_metrics_queue_rejected(r->w->index, "queue_timeout");
    fail_request(r, 429, "rate_limit_error", "queue_timeout",
                 "all servers are at capacity and the request waited too long in the queue",
                 wait > 0 ? wait : 1);
}

static void enqueue(struct rt_proxy_req *r)
{
    struct rt_worker *w = r->w;
    const struct rt_config *c = r->set->cfg;
    if ((int64_t)atomic_load(&w->router->waiting) >= c->queue.max_length) {
        rt_metrics_queue_rejected(w->index, "queue_full");
        fail_request(r, 429, "rate_limit_error", "queue_full",
                     "all servers are at capacity and the admission queue is full",
                     (int)(c->queue.max_wait > 1 ? c->queue.max_wait / 2 : 1));
        return;
    }
    r->state = P_QUEUED;
    r->queued_ms = rt_now_ms();
    r->qprev = w->queue_tail;
    r->qnext = NULL;
    if (w->queue_tail)
        w->queue_tail->qnext = r;
    else
        w->queue_head = r;
    w->queue_tail = r;
    w->queued++;
    atomic_fetch_add(&w->router->waiting, 1);
    pthread_mutex_lock(&gq.mu);
    r->gprev = gq.tail;
    r->gnext = NULL;
    if (gq.tail)
        gq.tail->gnext = r;
    else
        gq.head = r;
    gq.tail = r;
    r->in_gq = true;
    pthread_mutex_unlock(&gq.mu);
    uv_timer_start(&r->timer, on_queue_timeout, (uint64_t)(c->queue.max_wait * 1000), 0);
}

/* Chooses a backend for <r> with the balancer of worker <w> (the calling thread's) and takes
 * one of its slots. Returns it with a reference, or NULL; *<serving> counts backends that
 * serve the model, *<full> those that would be eligible but have no room. Reads only what
 * stays fixed while <r> waits, so any worker may choose for any queued request. */
static struct rt_backend *choose(struct rt_worker *w, const struct rt_proxy_req *r,
                                 const struct rt_fleet_view *v, size_t *serving, size_t *full)
{
    const struct rt_config *c = r->set->cfg;
    uint64_t now = rt_now_ms();
    int cands[MAX_CANDIDATES], busy[MAX_CANDIDATES];
    size_t n = 0, nbusy = 0;
    *serving = *full = 0;
    for (size_t i = 0; i < v->n && i < MAX_CANDIDATES; i++) {
        struct rt_backend *b = v->b[i];
        if (r->model.len && !rt_backend_serves(b, r->model))
            continue;
        (*serving)++;
        if (!rt_backend_available(b, now) || tried(r, b->id))
            continue;
        if (c->queue.enabled && !rt_backend_has_room(b)) {
            (*full)++;
            continue;
        }
        if (atomic_load_explicit(&b->busy_until_ms, memory_order_relaxed) > now)
            busy[nbusy++] = (int)i;
        else
            cands[n++] = (int)i;
    }
    /* Backends that said "busy" lately come last, but they are not excluded. */
    int *set = n ? cands : busy;
    size_t nset = n ? n : nbusy;
    while (nset > 0) {
        struct rt_pick_hint hint = {r->model, r->affinity};
        int idx = rt_balancer_pick(w->bal, v, set, nset, &hint);
        if (idx < 0)
            break;
        struct rt_backend *b = v->b[idx];
        if (c->queue.enabled ? rt_backend_try_dispatch(b) : (rt_backend_dispatch(b), true)) {
            rt_backend_ref(b);
            return b;
        }
        /* Another worker took the last slot: drop it from the set and pick again. */
        for (size_t k = 0; k < nset; k++)
            if (set[k] == idx) {
                set[k] = set[--nset];
                break;
            }
        (*full)++;
        if (nset == 0 && set == cands && nbusy) {
            set = busy;
            nset = nbusy;
        }
    }
    return NULL;
}

/* Picks a backend and sends; queues when all eligible backends are full (or others already
 * wait: no overtaking); fails when none is eligible at all. */
static void pick_and_send(struct rt_proxy_req *r)
{
    struct rt_worker *w = r->w;
    const struct rt_config *c = r->set->cfg;
    struct rt_fleet_view *v = rt_fleet_acquire();
    size_t serving, full;
    if (r->model.len && v->n > 0) {
        /* A model nobody serves is answered at once, queue or not. */
        bool any = false;
        for (size_t i = 0; i < v->n && !any; i++)
            any = rt_backend_serves(v->b[i], r->model);
        if (!any) {
            unknown_model(r, v);
            goto out;
        }
    }
    if (c->queue.enabled && atomic_load(&w->router->waiting) > 0 && r->attempts == 0) {
        /* Others wait: queue behind them (served in order) — unless no backend could take
         * this request at all, which is answered at once below. */
        uint64_t now = rt_now_ms();
        bool eligible = false;
        for (size_t i = 0; i < v->n && !eligible; i++)
            eligible = rt_backend_available(v->b[i], now) &&
                       (!r->model.len || rt_backend_serves(v->b[i], r->model));
        if (eligible) {
            enqueue(r);
            uv_async_send(&w->wake);
            goto out;
        }
    }
    struct rt_backend *b = choose(w, r, v, &serving, &full);
    if (b) {
        send_attempt(r, b);
        goto out;
    }
    if (full > 0 && c->queue.enabled) {
        enqueue(r);
        goto out;
    }
    if (r->attempts > 0) {
        fail_request(r, 502, "server_error", "upstream_error",
                     "every server that could take the request failed", 0);
        goto out;
    }
    fail_request(r, 503, "server_error", "no_healthy_server",
                 v->n == 0 ? "no servers are configured"
                           : "no healthy server can take the request right now",
                 (int)(c->config.health_check_interval > 1 ? c->config.health_check_interval : 1));
out:
    rt_fleet_view_unref(v);
}

static void try_dispatch(struct rt_proxy_req *r)
{
    pick_and_send(r);
}

/* Hands free slots to waiting requests, oldest first, whichever worker owns them; owners on
 * other workers are woken to send. */
static void grant_slots(struct rt_worker *w)
{
    struct rt_worker *wake[64];
    size_t nwake = 0;
    bool self = false;
    struct rt_fleet_view *v = rt_fleet_acquire();
    pthread_mutex_lock(&gq.mu);
    for (struct rt_proxy_req *r = gq.head, *next; r; r = next) {
        next = r->gnext;
        size_t serving, full;
        struct rt_backend *b = choose(w, r, v, &serving, &full);
        if (!b)
            continue; /* nothing for this one; a request for other servers may still go */
        r->grant = b;
        gq_unlink(r);
        if (r->w == w) {
            self = true;
        } else {
            bool known = false;
            for (size_t k = 0; k < nwake && !known; k++)
                known = wake[k] == r->w;
            if (!known && nwake < sizeof wake / sizeof wake[0])
                wake[nwake++] = r->w;
            else if (!known)
                uv_async_send(&r->w->wake);
        }
    }
    pthread_mutex_unlock(&gq.mu);
    rt_fleet_view_unref(v);
    for (size_t k = 0; k < nwake; k++)
        uv_async_send(&wake[k]->wake);
    if (self)
        uv_async_send(&w->wake);
}

/* Sends the requests of <w> that were granted a slot. */
static void take_grants(struct rt_worker *w)
{
    for (struct rt_proxy_req *r = w->queue_head, *next; r; r = next) {
        next = r->qnext;
        pthread_mutex_lock(&gq.mu);
        bool granted = r->grant != NULL;
        pthread_mutex_unlock(&gq.mu);
        if (!granted)
            continue;
        struct rt_backend *g = queue_remove(r);
        r->state = P_NEW;
        uv_timer_stop(&r->timer);
        send_attempt(r, g);
    }
}

void rt_proxy_drain_queue(struct rt_worker *w)
{
    take_grants(w);
    if (atomic_load(&w->router->waiting) > 0) {
        grant_slots(w);
        take_grants(w);
    }
}

void rt_proxy_flush_queue(struct rt_worker *w)
{
    while (w->queue_head)
        fail_request(w->queue_head, 503, "server_error", "shutting_down",
                     "the router is shutting down", 1);
}

/* ---- entry ------------------------------------------------------------------------------ */

static struct rt_str header(const struct rt_http_exchange *ex, const char *name)
{
    const struct rt_http_header *h =
        rt_http_find_header(ex->req.headers, ex->req.num_headers, rt_str_cstr(name));
    return h ? h->value : RT_STR_NULL;
}

void rt_proxy_start(struct rt_worker *w, struct rt_http_exchange *ex)
{
    struct rt_proxy_req *r = rt_calloc(1, sizeof *r);
    atomic_fetch_add(&w->active, 1);
    r->w = w;
    r->ex = ex;
    r->set = rt_settings_acquire();
    r->start_ms = rt_now_ms();
    r->start_ns = uv_hrtime();
    r->deadline_ms = r->start_ms + (uint64_t)(r->set->cfg->config.request_timeout * 1000);
    r->prompt_tokens = r->completion_tokens = -1;
    r->queue_wait_ms = -1;
    uv_timer_init(&w->loop, &r->timer);
    r->timer.data = r;
    ex->data = r;
    rt_http_set_callbacks(ex, on_client_abort, on_client_drain, r);
    rt_http_set_on_end(ex, on_client_end);

    struct rt_str rid = header(ex, "x-request-id");
    if (rid.len > 0 && rid.len < sizeof r->request_id)
        snprintf(r->request_id, sizeof r->request_id, "%.*s", RT_STR_FMT(rid));
    else
        snprintf(r->request_id, sizeof r->request_id, "%016" PRIx64 "%04x%08" PRIx64,
                 rng_next(&w->rng), w->index, ++w->seq);

    /* What routing needs from the body. */
    struct rt_str ctype = header(ex, "content-type");
    if (ctype.len >= 19 && strncasecmp(ctype.ptr, "multipart/form-data", 19) == 0) {
        struct rt_str v;
        int mr = rt_multipart_field(ctype, ex->body, RT_STR_LIT("model"), &v);
        if (mr < 0) {
            fail_request(r, 400, "invalid_request_error", "invalid_multipart",
                         "malformed multipart/form-data body", 0);
            return;
        }
        if (mr == 0) {
            if (v.len >= RT_SCAN_STR_CAP) {
                fail_request(r, 400, "invalid_request_error", "invalid_model",
                             "the model field is too long", 0);
                return;
            }
            memcpy(r->f.model_buf, v.ptr, v.len);
            r->model = rt_str_make(r->f.model_buf, v.len);
        }
    } else if (ex->body.len > 0) {
        const char *err;
        size_t off;
        if (rt_json_scan(ex->body.ptr, ex->body.len, &r->f, &err, &off) != 0) {
            char msg[200];
            snprintf(msg, sizeof msg, "malformed JSON body at byte %zu: %s", off, err);
            fail_request(r, 400, "invalid_request_error", "invalid_json", msg, 0);
            return;
        }
        if (!r->f.is_object) {
            fail_request(r, 400, "invalid_request_error", "invalid_json",
                         "the request body must be a JSON object", 0);
            return;
        }
        r->model = r->f.model;
    }
    /* Session affinity: the configured header, else the body's "user". */
    const char *hh = r->set->cfg->balancing.hash_header;
    struct rt_str aff = hh && *hh ? header(ex, hh) : RT_STR_NULL;
    r->affinity = aff.len ? aff : r->f.user;
    try_dispatch(r);
}
