/* One simulated vLLM server (see sim_server.h): routes requests, turns the engine's timing into
 * uv timers, streams SSE with backpressure, aborts on disconnect, and applies faults. */
#include "sim_server.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "alloc.h"
#include "buf.h"
#include "http_server.h"
#include "sim_metrics.h"
#include "sim_render.h"

#define JSON_HDR "Content-Type: application/json\r\n"
#define SSE_HDR  "Content-Type: text/event-stream; charset=utf-8\r\n"
#define PROM_HDR "Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"

#define FLUSH_BYTES (64 * 1024) /* a zero-latency stream is written in pieces of about this */

enum sreq_kind {
    SQ_GEN = 0, /* a completion going through the engine */
    SQ_HEALTH,  /* a /health answer delayed by the slow-health fault */
    SQ_HANG,    /* held until the client leaves (hang fault) */
};

/* Endpoints counted in /sim/state. */
enum ep {
    EP_CHAT = 0,
    EP_COMPLETIONS,
    EP_EMBEDDINGS,
    EP_TOKENIZE,
    EP_HEALTH,
    EP_MODELS,
    EP_METRICS,
    EP_OTHER,
    EP_COUNT
};
static const char *const ep_names[EP_COUNT] = {"chat", "completions", "embeddings", "tokenize",
                                               "health", "models", "metrics", "other"};

struct sim_counters {
    uint64_t http_requests;    /* every request outside /sim/ */
    uint64_t received;         /* inference requests (chat, completions, embeddings, tokenize) */
    uint64_t by_ep[EP_COUNT];
    uint64_t completed;        /* inference requests answered in full */
    uint64_t aborted;          /* client went away first */
    uint64_t rejected;         /* 429 because the waiting queue was full */
    uint64_t failed;           /* answered with an error status by a fault */
    uint64_t busy;             /* answered 429/503 by the busy fault */
    uint64_t hung;             /* held by the hang fault */
    uint64_t dropped;          /* connections closed mid-stream by the drop fault */
    uint64_t bad_requests;     /* 4xx for malformed or invalid requests */
};

struct sreq;

struct rt_sim_server {
    uv_loop_t *loop;
    struct rt_sim_conf conf;
    struct rt_sim_engine engine;
    struct rt_sim_faults faults;
    struct rt_http_server *http;
    struct sim_counters cnt;
    struct sreq *live; /* every request not yet ended */
    uint64_t rng;      /* fault decisions */
    uint64_t seq;      /* response ids */
    int64_t created;   /* start time, unix seconds (model list) */
    double start_time;
    struct rt_buf scratch;
};

/* One request held past its handler call. Freed by release() once its exchange ended and its
 * timer (if any) closed. */
struct sreq {
    struct rt_sim_req er;   /* engine request; er.data points back here */
    enum sreq_kind kind;
    struct rt_sim_server *s;
    struct rt_http_exchange *ex; /* NULL once ended */
    uv_timer_t timer;
    bool timer_on;          /* timer initialised: free in its close callback */
    bool waiting_drain;
    bool in_write;          /* inside an HTTP write: on_abort must not free us */
    bool abort_seen;        /* the client went away during that write */
    bool stream;
    bool include_usage;
    enum rt_sim_finish finish; /* how it ends when all tokens are out */
    uint32_t target;        /* tokens to generate */
    uint64_t rng;           /* output text */
    uint64_t next_due_ns;   /* when the next token is due */
    unsigned chunks;        /* SSE events sent */
    struct rt_sim_resp resp;
    struct rt_buf text;     /* output so far (non-streamed) */
    struct rt_buf out;      /* scratch for one SSE event */
    struct rt_buf pending;  /* SSE events of this tick, not yet written */
    struct sreq *prev, *next;
};

/* ---- helpers ----------------------------------------------------------------------------- */

static void respond_json(struct rt_http_exchange *ex, int status, struct rt_buf *b)
{
    rt_http_respond_s(ex, status, RT_STR_LIT(JSON_HDR), rt_buf_str(b));
}

static void error_reply(struct rt_sim_server *s, struct rt_http_exchange *ex, int status,
                        const char *type, const char *param, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

/* Answers with vLLM's nested error body. */
static void error_reply(struct rt_sim_server *s, struct rt_http_exchange *ex, int status,
                        const char *type, const char *param, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    rt_buf_reset(&s->scratch);
    rt_sim_render_error(&s->scratch, status, type, rt_str_cstr(msg), param);
    respond_json(ex, status, &s->scratch);
}

static void bad_request(struct rt_sim_server *s, struct rt_http_exchange *ex, const char *msg)
{
    s->cnt.bad_requests++;
    error_reply(s, ex, 400, "BadRequestError", NULL, "%s", msg);
}

static uint64_t hash_bytes(const char *p, size_t n, uint64_t h)
{
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)p[i]) * 0x100000001b3ull;
    return h;
}

static const char *served(const struct rt_sim_server *s, const char *model)
{
    if (!model)
        return s->conf.models[0]; /* vLLM serves the default model when none is named */
    for (size_t i = 0; i < s->conf.nmodels; i++)
        if (strcmp(model, s->conf.models[i]) == 0)
            return s->conf.models[i];
    return NULL;
}

static void link_live(struct rt_sim_server *s, struct sreq *q)
{
    q->prev = NULL;
    q->next = s->live;
    if (s->live)
        s->live->prev = q;
    s->live = q;
}

static void on_timer_closed(uv_handle_t *h)
{
    struct sreq *q = h->data;
    rt_buf_free(&q->text);
    rt_buf_free(&q->out);
    rt_buf_free(&q->pending);
    rt_free(q);
}

/* Unlinks <q> and frees it (after its timer closed). Its exchange must have been ended. */
static void release(struct sreq *q)
{
    struct rt_sim_server *s = q->s;
    if (q->prev)
        q->prev->next = q->next;
    else if (s->live == q)
        s->live = q->next;
    if (q->next)
        q->next->prev = q->prev;
    if (q->timer_on) {
        uv_timer_stop(&q->timer);
        uv_close((uv_handle_t *)&q->timer, on_timer_closed);
        return;
    }
    rt_buf_free(&q->text);
    rt_buf_free(&q->out);
    rt_buf_free(&q->pending);
    rt_free(q);
}

static void on_timer(uv_timer_t *t);

/* Arms <q>'s timer to fire at <due_ns> (uv_hrtime clock), never before it. libuv counts timers
 * in whole milliseconds of the loop clock, which lags uv_hrtime() by up to a millisecond or more
 * (it may be a coarse clock), so the timeout is rounded up against the loop clock itself, and
 * on_timer re-arms in the rare case it still fires early. */
static void schedule(struct sreq *q, uint64_t due_ns)
{
    if (!q->timer_on) {
        uv_timer_init(q->s->loop, &q->timer);
        q->timer.data = q;
        q->timer_on = true;
    }
    q->next_due_ns = due_ns;
    uv_update_time(q->s->loop);
    uint64_t loop_ms = uv_now(q->s->loop);
    uint64_t due_ms = (due_ns + 999999) / 1000000;
    uv_timer_start(&q->timer, on_timer, due_ms > loop_ms ? due_ms - loop_ms : 0, 0);
}

/* Ends the exchange of <q> with what the client should see at this point. */
static void end_exchange(struct sreq *q)
{
    struct rt_http_exchange *ex = q->ex;
    if (!ex)
        return;
    q->ex = NULL;
    rt_http_set_callbacks(ex, NULL, NULL, NULL);
    if (ex->started)
        rt_http_stream_end(ex);
    else
        rt_http_respond(ex, 499, NULL, NULL, 0);
}

/* ---- generation -------------------------------------------------------------------------- */

/* Queues the SSE event built in q->out; flush() sends what is queued in one write, so a tick
 * (or a whole zero-latency answer) costs one system call rather than one per event. */
static void send_event(struct sreq *q)
{
    rt_buf_append(&q->pending, rt_buf_data(&q->out), rt_buf_size(&q->out), (size_t)-1);
    rt_buf_reset(&q->out);
    q->chunks++;
}

static void abort_now(struct sreq *q);

/* A write that fails at once closes the connection and runs on_abort from inside the call;
 * q->in_write makes on_abort leave <q> alone, and this ends it once the call returned. True
 * when <q> is gone. */
static bool gone_after_write(struct sreq *q)
{
    q->in_write = false;
    if (!q->abort_seen)
        return false;
    abort_now(q);
    return true;
}

static bool stream_start(struct sreq *q)
{
    q->in_write = true;
    rt_http_stream_start(q->ex, 200, RT_STR_LIT(SSE_HDR));
    return gone_after_write(q);
}

/* Writes the queued events; true when the write failed and <q> is gone. */
static bool flush(struct sreq *q)
{
    if (rt_buf_size(&q->pending) == 0)
        return false;
    q->in_write = true;
    rt_http_stream_write(q->ex, rt_buf_data(&q->pending), rt_buf_size(&q->pending));
    rt_buf_reset(&q->pending);
    return gone_after_write(q);
}

/* The drop fault: true (and the connection closed) once <drop_after> events went out. */
static bool maybe_drop(struct sreq *q)
{
    int n = q->s->faults.drop_after;
    if (n < 0 || q->chunks < (unsigned)n)
        return false;
    q->s->cnt.dropped++;
    if (flush(q))
        return true;
    struct rt_http_exchange *ex = q->ex;
    q->ex = NULL;
    rt_http_abort(ex);
    rt_sim_engine_finish(&q->s->engine, &q->er, RT_SIM_FINISH_ABORT, uv_hrtime());
    release(q);
    return true;
}

static void complete(struct sreq *q)
{
    struct rt_sim_server *s = q->s;
    const char *fin = rt_sim_finish_name(q->finish);
    if (q->stream) {
        if (q->resp.api == RT_SIM_API_CHAT || q->er.generated == 0) {
            rt_sim_sse_finish(&q->out, &q->resp, fin);
            send_event(q);
            if (maybe_drop(q))
                return;
        }
        if (q->include_usage) {
            rt_sim_sse_usage(&q->out, &q->resp, q->er.prompt_tokens, q->er.generated);
            send_event(q);
            if (maybe_drop(q))
                return;
        }
        rt_sim_sse_done(&q->out);
        send_event(q);
        if (flush(q))
            return;
        struct rt_http_exchange *ex = q->ex;
        q->ex = NULL;
        rt_http_set_callbacks(ex, NULL, NULL, NULL);
        rt_http_stream_end(ex);
    } else {
        struct rt_buf b = {0};
        rt_sim_render_completion(&b, &q->resp, rt_buf_str(&q->text), fin, q->er.prompt_tokens,
                                 q->er.generated);
        struct rt_http_exchange *ex = q->ex;
        q->ex = NULL;
        rt_http_set_callbacks(ex, NULL, NULL, NULL);
        respond_json(ex, 200, &b);
        rt_buf_free(&b);
    }
    s->cnt.completed++;
    rt_sim_engine_finish(&s->engine, &q->er, q->finish, uv_hrtime());
    release(q);
}

/* Emits tokens that are due, then waits (timer or drain) or completes. */
static void advance(struct sreq *q)
{
    struct rt_sim_server *s = q->s;
    for (;;) {
        if (q->er.generated >= q->target) {
            complete(q);
            return;
        }
        uint64_t now = uv_hrtime();
        struct rt_str tok = rt_sim_token_text(rt_sim_rand(&q->rng));
        bool first = q->er.generated == 0;
        rt_sim_engine_token(&s->engine, &q->er, now);
        bool last = q->er.generated >= q->target;
        if (q->stream) {
            if (first && stream_start(q))
                return;
            if (first && q->resp.api == RT_SIM_API_CHAT) {
                rt_sim_sse_role(&q->out, &q->resp);
                send_event(q);
                if (maybe_drop(q))
                    return;
            }
            const char *fin = last && q->resp.api == RT_SIM_API_TEXT ? rt_sim_finish_name(q->finish)
                                                                       : NULL;
            rt_sim_sse_token(&q->out, &q->resp, tok, fin);
            send_event(q);
            if (maybe_drop(q))
                return;
        } else {
            rt_buf_append(&q->text, tok.ptr, tok.len, (size_t)-1);
        }
        if (last)
            continue; /* the end follows the last token at once */
        uint64_t itl = rt_sim_engine_itl_ns(&s->engine);
        uint64_t due = now;
        if (itl == 0) {
            /* No latency: the whole answer goes out now, written in large pieces. */
            if (!q->stream || rt_buf_size(&q->pending) < FLUSH_BYTES)
                continue;
        } else {
            /* One token per tick: a late timer delays the rest of the answer, as a slow engine
             * step would, rather than bursting tokens to catch up. */
            due = rt_sim_next_token_due(first ? now : q->next_due_ns, now, itl);
        }
        if (q->stream) {
            if (flush(q))
                return;
            if (rt_http_congested(q->ex)) {
                q->waiting_drain = true;
                q->next_due_ns = due;
                return;
            }
        }
        if (itl == 0)
            continue;
        schedule(q, due);
        return;
    }
}

static void on_timer(uv_timer_t *t)
{
    struct sreq *q = t->data;
    if (uv_hrtime() < q->next_due_ns) {
        schedule(q, q->next_due_ns); /* fired early by the loop clock's rounding */
        return;
    }
    if (q->kind == SQ_HEALTH) {
        struct rt_http_exchange *ex = q->ex;
        q->ex = NULL;
        rt_http_set_callbacks(ex, NULL, NULL, NULL);
        rt_http_respond(ex, q->s->faults.health_fail ? 503 : 200, NULL, NULL, 0);
        release(q);
        return;
    }
    advance(q);
}

static void on_drain(struct rt_http_exchange *ex, void *data)
{
    struct sreq *q = data;
    (void)ex;
    if (!q->waiting_drain)
        return;
    q->waiting_drain = false;
    if (q->next_due_ns > uv_hrtime())
        schedule(q, q->next_due_ns);
    else
        advance(q);
}

static void abort_now(struct sreq *q)
{
    if (q->kind == SQ_GEN) {
        q->s->cnt.aborted++;
        rt_sim_engine_finish(&q->s->engine, &q->er, RT_SIM_FINISH_ABORT, uv_hrtime());
    }
    end_exchange(q);
    release(q);
}

static void on_abort(struct rt_http_exchange *ex, void *data)
{
    struct sreq *q = data;
    (void)ex;
    if (q->in_write)
        q->abort_seen = true; /* the writer ends it (gone_after_write) */
    else
        abort_now(q);
}

/* A request promoted from the waiting queue: prefill starts now. */
static void on_admit(struct rt_sim_req *r, uint64_t now_ns, void *ctx)
{
    struct sreq *q = r->data;
    (void)ctx;
    (void)now_ns;
    /* Always through the timer, even with no prefill time: we may be deep inside another
     * request's completion. */
    schedule(q, uv_hrtime() + r->prefill_ns);
}

/* ---- request parsing ----------------------------------------------------------------------- */

/* Appends the text of a message's content (a string or an array of parts) to <b>. */
static int content_text(struct rt_buf *b, const json_t *c)
{
    if (json_is_string(c)) {
        rt_buf_append(b, json_string_value(c), json_string_length(c), (size_t)-1);
        return 0;
    }
    if (json_is_null(c))
        return 0;
    if (!json_is_array(c))
        return -1;
    size_t i;
    const json_t *part;
    json_array_foreach(c, i, part) {
        const json_t *t = json_object_get(part, "text");
        if (json_is_string(t))
            rt_buf_append(b, json_string_value(t), json_string_length(t), (size_t)-1);
    }
    return 0;
}

/* The prompt text of a chat request: "<role>\n<content>\n" per message. */
static const char *chat_prompt(const json_t *req, struct rt_buf *b)
{
    const json_t *msgs = json_object_get(req, "messages");
    if (!json_is_array(msgs) || json_array_size(msgs) == 0)
        return "'messages' must be a non-empty array";
    size_t i;
    const json_t *m;
    json_array_foreach(msgs, i, m) {
        const json_t *role = json_object_get(m, "role");
        if (!json_is_object(m) || !json_is_string(role))
            return "each message must be an object with a 'role'";
        rt_buf_append(b, json_string_value(role), json_string_length(role), (size_t)-1);
        rt_buf_append(b, "\n", 1, (size_t)-1);
        if (content_text(b, json_object_get(m, "content")) != 0)
            return "message 'content' must be a string or an array of parts";
        rt_buf_append(b, "\n", 1, (size_t)-1);
    }
    return NULL;
}

/* Appends one prompt item: a string, or token ids (4 bytes each, so one token per id). */
static int prompt_item(struct rt_buf *b, const json_t *p)
{
    if (json_is_string(p)) {
        rt_buf_append(b, json_string_value(p), json_string_length(p), (size_t)-1);
        return 0;
    }
    if (json_is_integer(p)) {
        uint32_t id = (uint32_t)json_integer_value(p);
        rt_buf_append(b, &id, 4, (size_t)-1);
        return 0;
    }
    if (!json_is_array(p))
        return -1;
    size_t i;
    const json_t *x;
    json_array_foreach(p, i, x) {
        if (json_is_array(x) || prompt_item(b, x) != 0)
            return -1;
    }
    return 0;
}

static const char *text_prompt(const json_t *req, struct rt_buf *b)
{
    const json_t *p = json_object_get(req, "prompt");
    if (!p || prompt_item(b, p) != 0)
        return "'prompt' must be a string, an array of strings or an array of token ids";
    return NULL;
}

/* Parses the body as a JSON object, or answers 400 and returns NULL. */
static json_t *parse_body(struct rt_sim_server *s, struct rt_http_exchange *ex)
{
    json_error_t jerr;
    json_t *req = json_loadb(ex->body.ptr ? ex->body.ptr : "", ex->body.len, 0, &jerr);
    if (!req || !json_is_object(req)) {
        char msg[300];
        if (req)
            snprintf(msg, sizeof msg, "The request body must be a JSON object");
        else
            snprintf(msg, sizeof msg, "JSON decode error: %s (line %d, column %d)", jerr.text,
                     jerr.line, jerr.column);
        json_decref(req);
        bad_request(s, ex, msg);
        return NULL;
    }
    return req;
}

/* Checks "model"; answers 404 and returns NULL when unknown. */
static const char *pick_model(struct rt_sim_server *s, struct rt_http_exchange *ex,
                              const json_t *req)
{
    const json_t *m = json_object_get(req, "model");
    if (m && !json_is_string(m) && !json_is_null(m)) {
        bad_request(s, ex, "'model' must be a string");
        return NULL;
    }
    const char *name = served(s, json_is_string(m) ? json_string_value(m) : NULL);
    if (!name) {
        s->cnt.bad_requests++;
        error_reply(s, ex, 404, "NotFoundError", "model", "The model `%s` does not exist.",
                    json_string_value(m));
    }
    return name;
}

/* Applies the faults to an inference request; true when it was answered (or held). */
static bool faulted(struct rt_sim_server *s, struct rt_http_exchange *ex)
{
    switch (rt_sim_faults_decide(&s->faults, &s->rng)) {
    case RT_SIM_FAULT_HANG: {
        struct sreq *q = rt_calloc(1, sizeof *q);
        q->kind = SQ_HANG;
        q->s = s;
        q->ex = ex;
        link_live(s, q);
        rt_http_set_callbacks(ex, on_abort, NULL, q);
        s->cnt.hung++;
        return true;
    }
    case RT_SIM_FAULT_BUSY:
        s->cnt.busy++;
        if (s->faults.busy == 429)
            error_reply(s, ex, 429, "TooManyRequestsError", NULL,
                        "The server is busy; retry later.");
        else
            error_reply(s, ex, 503, "ServiceUnavailableError", NULL,
                        "The server is overloaded; retry later.");
        return true;
    case RT_SIM_FAULT_500:
        s->cnt.failed++;
        error_reply(s, ex, 500, "InternalServerError", NULL, "Simulated internal server error.");
        return true;
    default:
        return false;
    }
}

static bool get_uint(const json_t *req, const char *key, long long max, long long *out,
                     const char **err)
{
    const json_t *v = json_object_get(req, key);
    if (!v || json_is_null(v))
        return false;
    if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > max) {
        *err = "token counts must be non-negative integers";
        return false;
    }
    *out = json_integer_value(v);
    return true;
}

static void handle_generate(struct rt_sim_server *s, struct rt_http_exchange *ex,
                            enum rt_sim_api api)
{
    struct rt_buf prompt = {0};
    json_t *req = parse_body(s, ex);
    if (!req)
        return;
    const char *model = pick_model(s, ex, req);
    if (!model)
        goto out;
    const char *perr = api == RT_SIM_API_CHAT ? chat_prompt(req, &prompt) : text_prompt(req, &prompt);
    if (perr) {
        bad_request(s, ex, perr);
        goto out;
    }
    const char *nerr = NULL;
    long long max_tokens = -1, min_tokens = 0, v;
    if (get_uint(req, "max_tokens", 1 << 30, &v, &nerr))
        max_tokens = v;
    if (api == RT_SIM_API_CHAT && get_uint(req, "max_completion_tokens", 1 << 30, &v, &nerr))
        max_tokens = v;
    if (get_uint(req, "min_tokens", 1 << 30, &v, &nerr))
        min_tokens = v;
    if (nerr) {
        bad_request(s, ex, nerr);
        goto out;
    }
    if (max_tokens == 0) {
        bad_request(s, ex, "max_tokens must be at least 1, got 0.");
        goto out;
    }
    uint32_t ptoks = rt_sim_tokens(rt_buf_str(&prompt));
    unsigned ctx = s->engine.conf.max_model_len;
    if ((long long)ptoks + (max_tokens > 0 ? max_tokens : 0) > ctx || ptoks >= ctx) {
        char msg[300];
        snprintf(msg, sizeof msg,
                 "This model's maximum context length is %u tokens. However, you requested %lld "
                 "tokens (%u in the messages, %lld in the completion). Please reduce the length "
                 "of the messages or completion.",
                 ctx, (long long)ptoks + (max_tokens > 0 ? max_tokens : 0), ptoks,
                 max_tokens > 0 ? max_tokens : 0);
        bad_request(s, ex, msg);
        goto out;
    }
    if (faulted(s, ex))
        goto out;

    struct sreq *q = rt_calloc(1, sizeof *q);
    q->kind = SQ_GEN;
    q->s = s;
    q->ex = ex;
    q->er.data = q;
    q->stream = json_is_true(json_object_get(req, "stream"));
    q->include_usage =
        json_is_true(json_object_get(json_object_get(req, "stream_options"), "include_usage"));
    /* The natural answer has output_len tokens (at least min_tokens), then EOS. */
    long long natural = s->conf.output_len > min_tokens ? s->conf.output_len : min_tokens;
    long long limit = max_tokens > 0 ? max_tokens : (long long)(ctx - ptoks);
    if (json_is_true(json_object_get(req, "ignore_eos")) || natural >= limit) {
        q->target = (uint32_t)limit;
        q->finish = RT_SIM_FINISH_LENGTH;
    } else {
        q->target = (uint32_t)natural;
        q->finish = RT_SIM_FINISH_STOP;
    }
    const json_t *seed = json_object_get(req, "seed");
    q->rng = hash_bytes(rt_buf_data(&prompt), rt_buf_size(&prompt), s->conf.seed ^ 0x51u) ^
             (json_is_integer(seed) ? (uint64_t)json_integer_value(seed) * 0x9e3779b97f4a7c15ull : 0);
    rt_sim_resp_init(&q->resp, api, s->seq++ ^ ((uint64_t)s->conf.port << 40) ^ s->conf.seed,
                     (int64_t)time(NULL), rt_str_cstr(model));
    int r = rt_sim_engine_submit(&s->engine, &q->er, rt_buf_str(&prompt), uv_hrtime());
    if (r == RT_SIM_EFULL) {
        rt_free(q);
        s->cnt.rejected++;
        error_reply(s, ex, 429, "TooManyRequestsError", NULL,
                    "The waiting queue is full (%u requests); retry later.",
                    s->engine.conf.max_waiting);
        goto out;
    }
    link_live(s, q);
    rt_http_set_callbacks(ex, on_abort, on_drain, q);
    if (r == RT_SIM_RUNNING) {
        if (q->er.prefill_ns == 0)
            advance(q);
        else
            schedule(q, uv_hrtime() + q->er.prefill_ns);
    }
out:
    json_decref(req);
    rt_buf_free(&prompt);
}

/* Collects embedding inputs as slices into <req>'s strings (token-id inputs into <ids>). */
static const char *embed_inputs(const json_t *in, struct rt_str *out, size_t max, size_t *n,
                                struct rt_buf *ids)
{
    *n = 0;
    if (json_is_string(in)) {
        out[(*n)++] = rt_str_make(json_string_value(in), json_string_length(in));
        return NULL;
    }
    if (!json_is_array(in) || json_array_size(in) == 0)
        return "'input' must be a string or a non-empty array";
    /* Token ids (one list, or a list of lists) are rendered to bytes first, 4 per id. */
    size_t offs[256], lens[256];
    size_t i;
    const json_t *x;
    bool flat_ids = json_is_integer(json_array_get(in, 0));
    if (flat_ids) {
        if (prompt_item(ids, in) != 0)
            return "'input' token ids must be integers";
        out[(*n)++] = rt_buf_str(ids);
        return NULL;
    }
    json_array_foreach(in, i, x) {
        if (*n >= max)
            return "too many inputs (at most 256)";
        if (json_is_string(x)) {
            out[*n] = rt_str_make(json_string_value(x), json_string_length(x));
            lens[*n] = SIZE_MAX;
        } else {
            offs[*n] = rt_buf_size(ids);
            if (!json_is_array(x) || prompt_item(ids, x) != 0)
                return "'input' items must be strings or arrays of token ids";
            lens[*n] = rt_buf_size(ids) - offs[*n];
        }
        (*n)++;
    }
    for (size_t k = 0; k < *n; k++) /* <ids> may have moved while growing */
        if (lens[k] != SIZE_MAX)
            out[k] = rt_str_make(rt_buf_data(ids) + offs[k], lens[k]);
    return NULL;
}

static void handle_embeddings(struct rt_sim_server *s, struct rt_http_exchange *ex)
{
    struct rt_buf ids = {0}, b = {0};
    struct rt_str inputs[256];
    size_t n = 0;
    json_t *req = parse_body(s, ex);
    if (!req)
        return;
    const char *model = pick_model(s, ex, req);
    if (!model)
        goto out;
    const char *perr = embed_inputs(json_object_get(req, "input"), inputs, 256, &n, &ids);
    if (perr) {
        bad_request(s, ex, perr);
        goto out;
    }
    const json_t *fmt = json_object_get(req, "encoding_format");
    bool b64 = json_is_string(fmt) && strcmp(json_string_value(fmt), "base64") == 0;
    if (fmt && !json_is_null(fmt) && !b64 &&
        !(json_is_string(fmt) && strcmp(json_string_value(fmt), "float") == 0)) {
        bad_request(s, ex, "'encoding_format' must be 'float' or 'base64'");
        goto out;
    }
    uint32_t ptoks = 0;
    for (size_t i = 0; i < n; i++)
        ptoks += rt_sim_tokens(inputs[i]);
    if (faulted(s, ex))
        goto out;
    struct rt_sim_resp r;
    rt_sim_resp_init(&r, RT_SIM_API_TEXT, s->seq++ ^ ((uint64_t)s->conf.port << 40), (int64_t)time(NULL),
                     rt_str_cstr(model));
    memcpy(r.id, "embd-", 5); /* same length as "cmpl-" */
    rt_sim_render_embeddings(&b, &r, inputs, n, s->conf.embedding_dim, s->conf.seed, b64, ptoks);
    s->cnt.completed++;
    respond_json(ex, 200, &b);
out:
    json_decref(req);
    rt_buf_free(&ids);
    rt_buf_free(&b);
}

static void handle_tokenize(struct rt_sim_server *s, struct rt_http_exchange *ex)
{
    struct rt_buf prompt = {0}, b = {0};
    json_t *req = parse_body(s, ex);
    if (!req)
        return;
    if (!pick_model(s, ex, req))
        goto out;
    const char *perr = json_object_get(req, "messages") ? chat_prompt(req, &prompt)
                                                        : text_prompt(req, &prompt);
    if (perr) {
        bad_request(s, ex, perr);
        goto out;
    }
    if (faulted(s, ex))
        goto out;
    rt_sim_render_tokenize(&b, rt_buf_str(&prompt), s->engine.conf.max_model_len);
    s->cnt.completed++;
    respond_json(ex, 200, &b);
out:
    json_decref(req);
    rt_buf_free(&prompt);
    rt_buf_free(&b);
}

/* ---- control endpoints ------------------------------------------------------------------- */

static void render_state(struct rt_sim_server *s, struct rt_buf *b)
{
    const struct sim_counters *c = &s->cnt;
    const struct rt_sim_stats *st = &s->engine.stats;
    rt_buf_printf(b, "{\"port\":%d,\"models\":[", s->conf.port);
    for (size_t i = 0; i < s->conf.nmodels; i++) {
        if (i)
            rt_buf_printf(b, ",");
        rt_sim_json_str(b, rt_str_cstr(s->conf.models[i]));
    }
    rt_buf_printf(b,
                  "],\"max_num_seqs\":%u,\"max_waiting\":%u,\"http_requests\":%llu,"
                  "\"received\":%llu,\"completed\":%llu,\"aborted\":%llu,\"rejected\":%llu,"
                  "\"failed\":%llu,\"busy\":%llu,\"hung\":%llu,\"dropped\":%llu,"
                  "\"bad_requests\":%llu,\"running\":%u,\"waiting\":%u,\"kv_cache_usage\":%.6f,"
                  "\"prompt_tokens\":%llu,\"generation_tokens\":%llu,"
                  "\"prefix_cache_queries\":%llu,\"prefix_cache_hits\":%llu,\"finished\":{",
                  s->engine.conf.max_num_seqs, s->engine.conf.max_waiting,
                  (unsigned long long)c->http_requests, (unsigned long long)c->received,
                  (unsigned long long)c->completed, (unsigned long long)c->aborted,
                  (unsigned long long)c->rejected, (unsigned long long)c->failed,
                  (unsigned long long)c->busy, (unsigned long long)c->hung,
                  (unsigned long long)c->dropped, (unsigned long long)c->bad_requests,
                  s->engine.running, s->engine.waiting, rt_sim_engine_kv_usage(&s->engine),
                  (unsigned long long)st->prompt_tokens, (unsigned long long)st->generation_tokens,
                  (unsigned long long)st->prefix_queries, (unsigned long long)st->prefix_hits);
    for (int r = 0; r < RT_SIM_FINISH_COUNT; r++)
        rt_buf_printf(b, "%s\"%s\":%llu", r ? "," : "", rt_sim_finish_name(r),
                      (unsigned long long)st->finished[r]);
    rt_buf_printf(b, "},\"by_endpoint\":{");
    for (int e = 0; e < EP_COUNT; e++)
        rt_buf_printf(b, "%s\"%s\":%llu", e ? "," : "", ep_names[e],
                      (unsigned long long)c->by_ep[e]);
    rt_buf_printf(b, "},\"faults\":");
    rt_sim_faults_render(b, &s->faults);
    rt_buf_printf(b, "}");
}

/* POST /sim/config: timing at run time (ttft_ms, prefill_us_per_token, itl_ms,
 * itl_batch_factor, max_waiting). */
static int apply_config(struct rt_sim_server *s, const json_t *req, char *err, size_t errlen)
{
    struct rt_sim_engine_conf c = s->engine.conf;
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)req, key, v) {
        if (!json_is_number(v) || json_number_value(v) < 0) {
            snprintf(err, errlen, "'%s' must be a non-negative number", key);
            return -1;
        }
        double x = json_number_value(v);
        if (strcmp(key, "ttft_ms") == 0)
            c.ttft_base_ns = (uint64_t)(x * 1e6);
        else if (strcmp(key, "prefill_us_per_token") == 0)
            c.prefill_ns_per_token = (uint64_t)(x * 1e3);
        else if (strcmp(key, "itl_ms") == 0)
            c.itl_ns = (uint64_t)(x * 1e6);
        else if (strcmp(key, "itl_batch_factor") == 0)
            c.itl_batch_factor = x;
        else if (strcmp(key, "max_waiting") == 0)
            c.max_waiting = (unsigned)x;
        else {
            snprintf(err, errlen, "unknown setting '%s'", key);
            return -1;
        }
    }
    rt_sim_engine_set_timing(&s->engine, &c);
    return 0;
}

static void handle_control(struct rt_sim_server *s, struct rt_http_exchange *ex, struct rt_str path,
                           bool post)
{
    struct rt_buf b = {0};
    char err[200];
    if (rt_str_eq(path, RT_STR_LIT("/sim/state")) && !post) {
        render_state(s, &b);
    } else if (rt_str_eq(path, RT_STR_LIT("/sim/faults")) ||
               rt_str_eq(path, RT_STR_LIT("/sim/config"))) {
        bool faults = rt_str_eq(path, RT_STR_LIT("/sim/faults"));
        if (post) {
            json_t *req = parse_body(s, ex);
            if (!req)
                goto out;
            int r = faults ? rt_sim_faults_apply(&s->faults, req, err, sizeof err)
                           : apply_config(s, req, err, sizeof err);
            json_decref(req);
            if (r != 0) {
                bad_request(s, ex, err);
                goto out;
            }
        }
        if (faults)
            rt_sim_faults_render(&b, &s->faults);
        else
            rt_buf_printf(&b, "{\"ttft_ms\":%.6g,\"prefill_us_per_token\":%.6g,\"itl_ms\":%.6g,"
                              "\"itl_batch_factor\":%.6g,\"max_waiting\":%u}",
                          s->engine.conf.ttft_base_ns / 1e6,
                          s->engine.conf.prefill_ns_per_token / 1e3, s->engine.conf.itl_ns / 1e6,
                          s->engine.conf.itl_batch_factor, s->engine.conf.max_waiting);
    } else {
        rt_http_respond(ex, 404, JSON_HDR, "{\"detail\":\"Not Found\"}", 22);
        goto out;
    }
    respond_json(ex, 200, &b);
out:
    rt_buf_free(&b);
}

/* ---- routing ------------------------------------------------------------------------------ */

static void handle_health(struct rt_sim_server *s, struct rt_http_exchange *ex)
{
    if (s->faults.slow_health_ms == 0) {
        rt_http_respond(ex, s->faults.health_fail ? 503 : 200, NULL, NULL, 0);
        return;
    }
    struct sreq *q = rt_calloc(1, sizeof *q);
    q->kind = SQ_HEALTH;
    q->s = s;
    q->ex = ex;
    link_live(s, q);
    rt_http_set_callbacks(ex, on_abort, NULL, q);
    schedule(q, uv_hrtime() + (uint64_t)s->faults.slow_health_ms * 1000000);
}

static void handle_metrics(struct rt_sim_server *s, struct rt_http_exchange *ex)
{
    struct rt_buf b = {0};
    if (s->faults.garbled_metrics) {
        rt_sim_metrics_garbled(&b, rt_str_cstr(s->conf.models[0]));
    } else {
        struct rt_sim_metrics_opts o = {.v0 = s->conf.v0_metrics, .start_time = s->start_time};
        rt_sim_metrics_render(&b, &s->engine, rt_str_cstr(s->conf.models[0]), &o);
    }
    rt_http_respond_s(ex, 200, RT_STR_LIT(PROM_HDR), rt_buf_str(&b));
    rt_buf_free(&b);
}

static void on_request(struct rt_http_exchange *ex, void *ctx)
{
    struct rt_sim_server *s = ctx;
    struct rt_str path = ex->req.path;
    bool get = rt_str_eq(ex->req.method, RT_STR_LIT("GET"));
    bool post = rt_str_eq(ex->req.method, RT_STR_LIT("POST"));
    if (rt_str_starts_with(path, RT_STR_LIT("/sim/"))) {
        handle_control(s, ex, path, post);
        return;
    }
    s->cnt.http_requests++;
    enum ep ep = EP_OTHER;
    bool want_post = true;
    if (rt_str_eq(path, RT_STR_LIT("/v1/chat/completions")))
        ep = EP_CHAT;
    else if (rt_str_eq(path, RT_STR_LIT("/v1/completions")))
        ep = EP_COMPLETIONS;
    else if (rt_str_eq(path, RT_STR_LIT("/v1/embeddings")))
        ep = EP_EMBEDDINGS;
    else if (rt_str_eq(path, RT_STR_LIT("/tokenize")))
        ep = EP_TOKENIZE;
    else if (rt_str_eq(path, RT_STR_LIT("/health")))
        ep = EP_HEALTH, want_post = false;
    else if (rt_str_eq(path, RT_STR_LIT("/v1/models")))
        ep = EP_MODELS, want_post = false;
    else if (rt_str_eq(path, RT_STR_LIT("/metrics")))
        ep = EP_METRICS, want_post = false;
    s->cnt.by_ep[ep]++;
    if (ep <= EP_TOKENIZE)
        s->cnt.received++;
    if (s->faults.hang) {
        faulted(s, ex); /* holds it */
        return;
    }
    if (ep == EP_OTHER) {
        rt_http_respond(ex, 404, JSON_HDR, "{\"detail\":\"Not Found\"}", 22);
        return;
    }
    if (want_post ? !post : !get) {
        rt_http_respond(ex, 405, JSON_HDR, "{\"detail\":\"Method Not Allowed\"}", 31);
        return;
    }
    switch (ep) {
    case EP_CHAT: handle_generate(s, ex, RT_SIM_API_CHAT); break;
    case EP_COMPLETIONS: handle_generate(s, ex, RT_SIM_API_TEXT); break;
    case EP_EMBEDDINGS: handle_embeddings(s, ex); break;
    case EP_TOKENIZE: handle_tokenize(s, ex); break;
    case EP_HEALTH: handle_health(s, ex); break;
    case EP_METRICS: handle_metrics(s, ex); break;
    default: {
        struct rt_buf b = {0};
        rt_sim_render_models(&b, (const char *const *)s->conf.models, s->conf.nmodels, s->created,
                             s->engine.conf.max_model_len);
        respond_json(ex, 200, &b);
        rt_buf_free(&b);
    }
    }
}

/* ---- lifetime ----------------------------------------------------------------------------- */

int rt_sim_server_start(uv_loop_t *loop, const struct rt_sim_conf *conf,
                        struct rt_sim_server **out, char *err, size_t errlen)
{
    *out = NULL;
    struct rt_sim_server *s = rt_calloc(1, sizeof *s);
    s->loop = loop;
    s->conf = *conf;
    if (s->conf.output_len == 0)
        s->conf.output_len = 16;
    if (s->conf.embedding_dim == 0)
        s->conf.embedding_dim = 32;
    s->faults = conf->faults;
    s->rng = conf->seed ^ 0xfa17u;
    s->created = (int64_t)time(NULL);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    s->start_time = (double)ts.tv_sec + ts.tv_nsec / 1e9;
    rt_sim_engine_init(&s->engine, &conf->engine, on_admit, s);
    struct rt_http_server_conf hc = {
        .max_head_bytes = 64 * 1024,
        .max_body_bytes = 64 * 1024 * 1024,
        .head_timeout_ms = 30000,
        .body_timeout_ms = 60000,
        .keepalive_timeout_ms = 5000, /* uvicorn's default */
        .max_connections = 100000,
        .output_high_water = 256 * 1024,
    };
    if (rt_http_server_start(loop, conf->host, conf->port, false, &hc, on_request, s, &s->http, err,
                             errlen) != 0) {
        rt_sim_engine_free(&s->engine);
        rt_free(s);
        return -1;
    }
    s->conf.port = rt_http_server_port(s->http);
    *out = s;
    return 0;
}

int rt_sim_server_port(const struct rt_sim_server *s)
{
    return s->conf.port;
}

void rt_sim_server_close(struct rt_sim_server *s)
{
    /* Closing the connections aborts every live request through on_abort. */
    rt_http_server_close(s->http);
    s->http = NULL;
    rt_sim_engine_free(&s->engine);
    rt_buf_free(&s->scratch);
    rt_free(s);
}
