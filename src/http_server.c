/* The HTTP/1.1 server side: connections, request reading within limits, responses (see
 * http_server.h for the contract). */
#include "http_server.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "alloc.h"
#include "buf.h"

#define PENDING_CAP   (64 * 1024) /* bytes read ahead while an exchange runs */
#define READ_CHUNK    (16 * 1024)
#define MAX_HEAD_LINE 512         /* our own status line and framing headers */

enum conn_state {
    ST_HEAD = 0, /* reading a request head (or idle between requests) */
    ST_BODY,     /* reading the body */
    ST_ACTIVE,   /* the handler owns the exchange */
    ST_CLOSED,   /* uv_close called */
};

enum timer_kind {
    TM_NONE = 0,
    TM_IDLE,
    TM_HEAD,
    TM_BODY,
};

struct rt_http_conn {
    uv_tcp_t tcp; /* first: container of the handle */
    uv_timer_t timer;
    struct rt_http_server *srv;
    struct rt_http_conn *prev, *next; /* server's list */
    enum conn_state state;
    enum timer_kind timer_kind;
    unsigned open_handles;            /* tcp + timer until both close callbacks ran */
    struct rt_buf in;                 /* the current request's bytes at the front */
    struct rt_buf pending;            /* bytes read while the handler runs */
    struct rt_buf body;               /* de-chunked request body */
    struct rt_buf out_q;              /* output waiting for the current write to finish */
    struct rt_buf out_w;              /* output of the write in flight */
    uv_write_t wreq;
    bool writing;
    bool reading;
    bool close_when_flushed;
    bool in_process;                  /* process() is on the stack: don't re-enter */
    size_t last_len;                  /* parser hint for an incomplete head */
    size_t head_len;                  /* bytes of the current head in <in> */
    size_t raw_len;                   /* head + body bytes of the current request in <in> */
    size_t chunk_pos;                 /* where chunked decoding continues in <in> */
    const char *parsed_at;            /* rt_buf_data(&in) when the head was parsed */
    struct rt_http_chunked dec;
    bool ex_live;                     /* handed to the handler and not ended */
    struct rt_http_exchange ex;
};

struct rt_http_server {
    uv_loop_t *loop;
    uv_tcp_t listener;
    struct rt_http_server_conf conf;
    rt_http_handler_fn handler;
    void *ctx;
    struct rt_http_conn *conns;
    size_t nconns;
    size_t nactive;
    int port;
    bool accepting;
    bool closing;
    bool listener_open;
};

static void process(struct rt_http_conn *c);
static void conn_close(struct rt_http_conn *c);
static void resume_read(struct rt_http_conn *c);

const char *rt_http_reason(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 411: return "Length Required";
    case 413: return "Content Too Large";
    case 415: return "Unsupported Media Type";
    case 422: return "Unprocessable Content";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return status < 300 ? "OK" : status < 400 ? "Redirect" : status < 500 ? "Client Error" : "Server Error";
    }
}

void rt_http_json_str(struct rt_buf *b, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    rt_buf_reserve(b, len + 2, (size_t)-1);
    b->base[b->len++] = '"';
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        char esc[7];
        size_t n = 0;
        switch (ch) {
        case '"': esc[n++] = '\\'; esc[n++] = '"'; break;
        case '\\': esc[n++] = '\\'; esc[n++] = '\\'; break;
        case '\n': esc[n++] = '\\'; esc[n++] = 'n'; break;
        case '\r': esc[n++] = '\\'; esc[n++] = 'r'; break;
        case '\t': esc[n++] = '\\'; esc[n++] = 't'; break;
        default:
            if (ch < 0x20) {
                memcpy(esc, "\\u00", 4);
                esc[4] = hex[ch >> 4];
                esc[5] = hex[ch & 15];
                n = 6;
            } else {
                esc[n++] = (char)ch;
            }
        }
        rt_buf_append(b, esc, n, (size_t)-1);
    }
    rt_buf_append(b, "\"", 1, (size_t)-1);
}

/* ---- timers ---------------------------------------------------------------------------- */

static void on_timer(uv_timer_t *t)
{
    struct rt_http_conn *c = t->data;
    switch (c->timer_kind) {
    case TM_IDLE:
        conn_close(c);
        break;
    case TM_HEAD:
    case TM_BODY:
        /* A slow client must not pin a connection: answer 408 and close. */
        c->state = ST_ACTIVE;
        c->ex_live = true;
        c->srv->nactive++;
        memset(&c->ex, 0, sizeof c->ex);
        c->ex._conn = c;
        c->ex.req.minor_version = 1;
        c->ex._close_after = true;
        rt_http_respond_error(&c->ex, 408, "invalid_request_error", "request_timeout",
                              c->timer_kind == TM_HEAD ? "timed out waiting for the request head"
                                                       : "timed out waiting for the request body",
                              NULL);
        break;
    case TM_NONE:
        break;
    }
}

static void arm(struct rt_http_conn *c, enum timer_kind kind, uint64_t ms)
{
    if (c->timer_kind == kind)
        return; /* a deadline runs from when it was first armed */
    c->timer_kind = kind;
    if (kind == TM_NONE || ms == 0) {
        uv_timer_stop(&c->timer);
        return;
    }
    uv_timer_start(&c->timer, on_timer, ms, 0);
}

/* ---- writing --------------------------------------------------------------------------- */

static void start_write(struct rt_http_conn *c);

static void on_write(uv_write_t *w, int status)
{
    struct rt_http_conn *c = w->data;
    c->writing = false;
    rt_buf_reset(&c->out_w);
    if (c->state == ST_CLOSED)
        return;
    if (status < 0) {
        conn_close(c);
        return;
    }
    if (rt_buf_size(&c->out_q) > 0) {
        start_write(c);
        return;
    }
    if (c->close_when_flushed) {
        conn_close(c);
        return;
    }
    if (c->ex_live && c->ex._want_drain) {
        c->ex._want_drain = false;
        if (c->ex._on_drain)
            c->ex._on_drain(&c->ex, c->ex._cb_data);
    }
}

static void start_write(struct rt_http_conn *c)
{
    struct rt_buf t = c->out_w;
    c->out_w = c->out_q;
    c->out_q = t;
    rt_buf_reset(&c->out_q);
    uv_buf_t b = uv_buf_init(rt_buf_data(&c->out_w), (unsigned)rt_buf_size(&c->out_w));
    c->wreq.data = c;
    int r = uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &b, 1, on_write);
    if (r < 0) {
        rt_buf_reset(&c->out_w);
        conn_close(c);
        return;
    }
    c->writing = true;
}

/* Sends <bufs>: straight to the socket when nothing is queued, the rest copied and queued. */
static void out_writev(struct rt_http_conn *c, uv_buf_t *bufs, unsigned n)
{
    if (c->state == ST_CLOSED)
        return;
    size_t total = 0;
    for (unsigned i = 0; i < n; i++)
        total += bufs[i].len;
    c->ex.bytes_out += total;
    size_t done = 0;
    if (!c->writing && rt_buf_size(&c->out_q) == 0) {
        int r = uv_try_write((uv_stream_t *)&c->tcp, bufs, n);
        if (r >= 0)
            done = (size_t)r;
        else if (r != UV_EAGAIN && r != UV_ENOSYS) {
            conn_close(c);
            return;
        }
    }
    if (done == total)
        return;
    for (unsigned i = 0; i < n; i++) {
        if (done >= bufs[i].len) {
            done -= bufs[i].len;
            continue;
        }
        rt_buf_append(&c->out_q, bufs[i].base + done, bufs[i].len - done, (size_t)-1);
        done = 0;
    }
    if (!c->writing)
        start_write(c);
}

bool rt_http_congested(const struct rt_http_exchange *ex)
{
    const struct rt_http_conn *c = ex->_conn;
    return rt_buf_size(&c->out_q) + rt_buf_size(&c->out_w) > c->srv->conf.output_high_water;
}

/* ---- the exchange ---------------------------------------------------------------------- */

static bool keep_open(const struct rt_http_conn *c)
{
    return c->ex.req.keep_alive && !c->ex._close_after && c->srv->accepting && !c->srv->closing;
}

/* Called when the handler ended the exchange: release it and move on to the next request. */
static void finish(struct rt_http_conn *c)
{
    if (!c->ex_live)
        return;
    if (c->ex._on_end) {
        rt_http_exchange_fn fn = c->ex._on_end;
        c->ex._on_end = NULL;
        fn(&c->ex, c->ex._cb_data);
    }
    c->ex_live = false;
    c->srv->nactive--;
    if (c->state == ST_CLOSED) {
        conn_close(c); /* frees once the handles are closed too */
        return;
    }
    if (!keep_open(c)) {
        c->close_when_flushed = true;
        if (!c->writing && rt_buf_size(&c->out_q) == 0)
            conn_close(c);
        return;
    }
    /* Drop this request's bytes; what the client sent meanwhile becomes the input. A buffer
     * that grew for a large body is given back rather than kept for an idle connection. */
    rt_buf_consume(&c->in, c->raw_len);
    if (c->in.cap > 4 * 1024 * 1024 && rt_buf_size(&c->in) == 0)
        rt_buf_free(&c->in); /* up to 4 MiB stays for the next large prompt on this client */
    if (rt_buf_size(&c->pending) > 0) {
        rt_buf_append(&c->in, rt_buf_data(&c->pending), rt_buf_size(&c->pending), (size_t)-1);
        rt_buf_reset(&c->pending);
    }
    rt_buf_reset(&c->body);
    c->state = ST_HEAD;
    c->timer_kind = TM_NONE;
    c->last_len = 0;
    c->head_len = c->raw_len = c->chunk_pos = 0;
    if (!c->in_process)
        process(c);
}

void rt_http_set_on_end(struct rt_http_exchange *ex, rt_http_exchange_fn on_end)
{
    ex->_on_end = on_end;
}

void rt_http_set_callbacks(struct rt_http_exchange *ex, rt_http_exchange_fn on_abort,
                           rt_http_exchange_fn on_drain, void *data)
{
    ex->_on_abort = on_abort;
    ex->_on_drain = on_drain;
    ex->_cb_data = data;
}

/* Status line plus <headers>; the framing lines are added by the callers. */
static size_t head_prefix(char *out, size_t cap, const struct rt_http_exchange *ex, int status)
{
    int n = snprintf(out, cap, "HTTP/1.1 %d %s\r\n", status, rt_http_reason(status));
    return n < 0 ? 0 : (size_t)n;
}

void rt_http_respond_s(struct rt_http_exchange *ex, int status, struct rt_str headers,
                       struct rt_str body)
{
    struct rt_http_conn *c = ex->_conn;
    if (!c->ex_live)
        return;
    if (c->state != ST_CLOSED && !ex->started) {
        ex->started = true;
        bool is_head = rt_str_eq(ex->req.method, RT_STR_LIT("HEAD"));
        char line[MAX_HEAD_LINE], tail[MAX_HEAD_LINE];
        size_t n = head_prefix(line, sizeof line, ex, status);
        int t = snprintf(tail, sizeof tail, "Content-Length: %zu\r\n%s\r\n", body.len,
                         keep_open(c) ? (ex->req.minor_version == 0 ? "Connection: keep-alive\r\n" : "")
                                      : "Connection: close\r\n");
        uv_buf_t bufs[4] = {
            uv_buf_init(line, (unsigned)n),
            uv_buf_init((char *)headers.ptr, (unsigned)headers.len),
            uv_buf_init(tail, (unsigned)t),
            uv_buf_init((char *)body.ptr, is_head ? 0 : (unsigned)body.len),
        };
        out_writev(c, bufs, 4);
    }
    finish(c);
}

void rt_http_respond(struct rt_http_exchange *ex, int status, const char *headers,
                     const char *body, size_t len)
{
    rt_http_respond_s(ex, status, rt_str_cstr(headers), rt_str_make(body, len));
}

void rt_http_respond_error(struct rt_http_exchange *ex, int status, const char *type,
                           const char *code, const char *message, const char *headers)
{
    struct rt_buf b = {0};
    rt_buf_printf(&b, "{\"error\":{\"message\":");
    rt_http_json_str(&b, message, strlen(message));
    rt_buf_printf(&b, ",\"type\":");
    rt_http_json_str(&b, type, strlen(type));
    rt_buf_printf(&b, ",\"param\":null,\"code\":");
    if (code)
        rt_http_json_str(&b, code, strlen(code));
    else
        rt_buf_printf(&b, "null");
    rt_buf_printf(&b, "}}");
    struct rt_buf h = {0};
    rt_buf_printf(&h, "Content-Type: application/json\r\n%s", headers ? headers : "");
    rt_http_respond_s(ex, status, rt_buf_str(&h), rt_buf_str(&b));
    rt_buf_free(&h);
    rt_buf_free(&b);
}

void rt_http_stream_start(struct rt_http_exchange *ex, int status, struct rt_str headers)
{
    struct rt_http_conn *c = ex->_conn;
    if (!c->ex_live || ex->started)
        return;
    ex->started = true;
    if (ex->req.minor_version == 0)
        ex->_close_after = true; /* no chunked encoding in 1.0: the body ends at close */
    if (c->state == ST_CLOSED)
        return;
    char line[MAX_HEAD_LINE];
    size_t n = head_prefix(line, sizeof line, ex, status);
    const char *tail = ex->req.minor_version == 0 ? "Connection: close\r\n\r\n"
                       : keep_open(c) ? "Transfer-Encoding: chunked\r\n\r\n"
                                      : "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
    uv_buf_t bufs[3] = {
        uv_buf_init(line, (unsigned)n),
        uv_buf_init((char *)headers.ptr, (unsigned)headers.len),
        uv_buf_init((char *)tail, (unsigned)strlen(tail)),
    };
    out_writev(c, bufs, 3);
}

void rt_http_stream_write(struct rt_http_exchange *ex, const char *data, size_t len)
{
    struct rt_http_conn *c = ex->_conn;
    if (!c->ex_live || !ex->started || c->state == ST_CLOSED || len == 0)
        return;
    if (ex->req.minor_version == 0) {
        uv_buf_t b = uv_buf_init((char *)data, (unsigned)len);
        out_writev(c, &b, 1);
    } else {
        char size[24];
        int n = snprintf(size, sizeof size, "%zx\r\n", len);
        uv_buf_t bufs[3] = {
            uv_buf_init(size, (unsigned)n),
            uv_buf_init((char *)data, (unsigned)len),
            uv_buf_init("\r\n", 2),
        };
        out_writev(c, bufs, 3);
    }
    if (c->state != ST_CLOSED && rt_http_congested(ex))
        ex->_want_drain = true;
}

void rt_http_stream_end(struct rt_http_exchange *ex)
{
    struct rt_http_conn *c = ex->_conn;
    if (!c->ex_live)
        return;
    if (ex->started && c->state != ST_CLOSED && ex->req.minor_version != 0) {
        uv_buf_t b = uv_buf_init("0\r\n\r\n", 5);
        out_writev(c, &b, 1);
    }
    finish(c);
}

void rt_http_abort(struct rt_http_exchange *ex)
{
    struct rt_http_conn *c = ex->_conn;
    if (!c->ex_live)
        return;
    ex->_on_abort = NULL; /* the handler is the one ending it */
    ex->aborted = true;
    conn_close(c);
    finish(c);
}

void rt_http_peer(const struct rt_http_exchange *ex, char *out, size_t outlen)
{
    struct sockaddr_storage ss;
    int len = sizeof ss;
    out[0] = '\0';
    if (uv_tcp_getpeername(&ex->_conn->tcp, (struct sockaddr *)&ss, &len) != 0)
        return;
    if (ss.ss_family == AF_INET)
        uv_ip4_name((struct sockaddr_in *)&ss, out, outlen);
    else if (ss.ss_family == AF_INET6)
        uv_ip6_name((struct sockaddr_in6 *)&ss, out, outlen);
}

/* ---- reading --------------------------------------------------------------------------- */

/* Answers a request we refuse before the handler sees it, then closes. */
static void refuse(struct rt_http_conn *c, int status, const char *code, const char *msg)
{
    c->state = ST_ACTIVE;
    c->ex_live = true;
    c->srv->nactive++;
    c->ex._close_after = true;
    c->ex._conn = c;
    rt_http_respond_error(&c->ex, status, "invalid_request_error", code, msg, NULL);
}

static void dispatch(struct rt_http_conn *c, struct rt_str body)
{
    struct rt_http_server *s = c->srv;
    /* The request stays in <in> while the handler runs, maybe for minutes of streaming: give
     * back the slack of small requests (glibc shrinks in place, so usually nothing moves);
     * a large buffer is kept for the next large prompt, as re-faulting it in costs more. */
    if (c->in.off == 0 && c->in.cap > c->in.len + 512 && c->in.cap <= 64 * 1024) {
        c->in.base = rt_realloc(c->in.base, c->in.len);
        c->in.cap = c->in.len;
    }
    /* Reading the body may have grown or slid the buffer: the head's slices must point at
     * where the bytes are now, so parse the head again (a few hundred ns, only then). */
    if (rt_buf_data(&c->in) != c->parsed_at) {
        int r = rt_http_parse_request(rt_buf_data(&c->in), c->head_len, 0, &c->ex.req);
        (void)r; /* same bytes as before: cannot fail */
        if (!c->ex.req.chunked)
            body = rt_str_make(rt_buf_data(&c->in) + c->head_len, body.len);
    }
    c->state = ST_ACTIVE;
    arm(c, TM_NONE, 0);
    c->ex.body = body;
    c->ex.head_bytes = c->head_len;
    c->ex.start_ns = uv_hrtime();
    c->ex_live = true;
    s->nactive++;
    s->handler(&c->ex, s->ctx);
}

/* Parses what is in <in>: head, then body; hands complete requests to the handler. */
static void process(struct rt_http_conn *c)
{
    const struct rt_http_server_conf *conf = &c->srv->conf;
    c->in_process = true;
    while (c->state == ST_HEAD || c->state == ST_BODY) {
        const char *data = rt_buf_data(&c->in);
        size_t size = rt_buf_size(&c->in);
        if (c->state == ST_HEAD) {
            if (size == 0) {
                arm(c, TM_IDLE, conf->keepalive_timeout_ms);
                break;
            }
            memset(&c->ex, 0, sizeof c->ex);
            c->ex._conn = c;
            int r = rt_http_parse_request(data, size, c->last_len, &c->ex.req);
            if (r == RT_HTTP_INCOMPLETE) {
                if (size > conf->max_head_bytes) {
                    refuse(c, 431, "request_header_too_large", "request head too large");
                    break;
                }
                c->last_len = size;
                arm(c, TM_HEAD, conf->head_timeout_ms);
                break;
            }
            if (r == RT_HTTP_TOO_MANY_HDR || (r > 0 && (size_t)r > conf->max_head_bytes)) {
                refuse(c, 431, "request_header_too_large", "request head too large");
                break;
            }
            if (r < 0) {
                c->ex.req.minor_version = 1;
                char msg[160];
                snprintf(msg, sizeof msg, "malformed request: %s",
                         c->ex.req.error ? c->ex.req.error : "bad syntax");
                refuse(c, 400, "bad_request", msg);
                break;
            }
            c->head_len = (size_t)r;
            c->parsed_at = data;
            if (c->ex.req.content_length > 0 &&
                (uint64_t)c->ex.req.content_length > conf->max_body_bytes) {
                refuse(c, 413, "request_too_large", "request body too large");
                break;
            }
            c->state = ST_BODY;
            c->chunk_pos = c->head_len;
            memset(&c->dec, 0, sizeof c->dec);
            bool have_body = c->ex.req.chunked ? size > c->head_len
                                                : (int64_t)(size - c->head_len) >=
                                                      c->ex.req.content_length;
            if (c->ex.req.expect_continue && !have_body && c->ex.req.minor_version == 1) {
                uv_buf_t b = uv_buf_init("HTTP/1.1 100 Continue\r\n\r\n", 25);
                out_writev(c, &b, 1);
            }
            c->timer_kind = TM_NONE;
            arm(c, TM_BODY, conf->body_timeout_ms);
            continue;
        }
        /* ST_BODY. Reading the body may have moved <in>: re-point the head's slices before
         * anything uses them, a refusal (413, 400) included, not only dispatch(). */
        if (data != c->parsed_at) {
            rt_http_parse_request(data, c->head_len, 0, &c->ex.req);
            c->parsed_at = data;
        }
        if (!c->ex.req.chunked) {
            size_t want = c->ex.req.content_length > 0 ? (size_t)c->ex.req.content_length : 0;
            if (size - c->head_len < want)
                break;
            c->raw_len = c->head_len + want;
            dispatch(c, rt_str_make(data + c->head_len, want));
            continue;
        }
        bool bad = false;
        while (c->chunk_pos < size && !c->dec.done) {
            struct rt_str piece;
            ssize_t used = rt_http_chunked_feed(&c->dec, data + c->chunk_pos, size - c->chunk_pos,
                                                &piece);
            if (used < 0) {
                bad = true;
                break;
            }
            if (piece.len &&
                rt_buf_append(&c->body, piece.ptr, piece.len, conf->max_body_bytes) != 0) {
                refuse(c, 413, "request_too_large", "request body too large");
                c->in_process = false;
                return;
            }
            c->chunk_pos += (size_t)used;
            if (used == 0)
                break;
        }
        if (bad) {
            refuse(c, 400, "bad_request", "malformed chunked request body");
            break;
        }
        if (!c->dec.done)
            break;
        c->raw_len = c->chunk_pos;
        dispatch(c, rt_buf_str(&c->body));
    }
    c->in_process = false;
    /* Whatever process() could not hand over waits for more input. */
    if (c->state == ST_HEAD || c->state == ST_BODY) {
        if (!c->reading && c->state != ST_CLOSED) {
            c->reading = true;
            resume_read(c);
        }
    }
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *out)
{
    struct rt_http_conn *c = (struct rt_http_conn *)h;
    const struct rt_http_server_conf *conf = &c->srv->conf;
    struct rt_buf *b;
    /* Heads are small: start at 2 KiB (the buffer doubles when more is needed), so thousands
     * of connections holding long streams stay cheap. */
    size_t want = c->state == ST_HEAD ? 2048 : READ_CHUNK, limit;
    if (c->state == ST_ACTIVE) {
        b = &c->pending;
        limit = PENDING_CAP;
        want = 4096;
    } else {
        b = &c->in;
        limit = conf->max_head_bytes + conf->max_body_bytes + READ_CHUNK;
        if (c->state == ST_BODY && !c->ex.req.chunked && c->ex.req.content_length > 0) {
            size_t need = c->head_len + (size_t)c->ex.req.content_length - rt_buf_size(&c->in);
            if (need > want)
                want = need;
        }
    }
    if (rt_buf_size(b) + want > limit)
        want = limit > rt_buf_size(b) ? limit - rt_buf_size(b) : 0;
    if (want == 0 || rt_buf_reserve(b, want, limit) != 0) {
        *out = uv_buf_init(NULL, 0);
        return;
    }
    *out = uv_buf_init(b->base + b->len, (unsigned)(b->cap - b->len));
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    struct rt_http_conn *c = (struct rt_http_conn *)stream;
    if (nread == UV_ENOBUFS) {
        /* The read-ahead while the handler runs is full: stop until the exchange ends. */
        uv_read_stop(stream);
        c->reading = false;
        return;
    }
    if (nread < 0) {
        conn_close(c);
        return;
    }
    if (nread == 0)
        return;
    if (c->state == ST_ACTIVE) {
        c->pending.len += (size_t)nread;
        return;
    }
    c->in.len += (size_t)nread;
    process(c);
}

static void resume_read(struct rt_http_conn *c)
{
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0)
        conn_close(c);
}

/* ---- connection lifetime --------------------------------------------------------------- */

static void maybe_free(struct rt_http_conn *c)
{
    struct rt_http_server *s = c->srv;
    if (c->open_handles > 0 || c->ex_live || c->writing)
        return;
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    s->nconns--;
    rt_buf_free(&c->in);
    rt_buf_free(&c->pending);
    rt_buf_free(&c->body);
    rt_buf_free(&c->out_q);
    rt_buf_free(&c->out_w);
    rt_free(c);
    if (s->closing && s->nconns == 0 && !s->listener_open)
        rt_free(s);
}

static void on_conn_closed(uv_handle_t *h)
{
    struct rt_http_conn *c = h->data;
    c->open_handles--;
    maybe_free(c);
}

/* Closes the connection; an exchange still with the handler is told (on_abort) and freed when
 * the handler ends it. Idempotent. */
static void conn_close(struct rt_http_conn *c)
{
    if (c->state == ST_CLOSED) {
        maybe_free(c);
        return;
    }
    c->state = ST_CLOSED;
    uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
    uv_close((uv_handle_t *)&c->timer, on_conn_closed);
    if (c->ex_live && !c->ex.aborted) {
        c->ex.aborted = true;
        if (c->ex._on_abort)
            c->ex._on_abort(&c->ex, c->ex._cb_data);
    }
}

static void on_connection(uv_stream_t *ls, int status)
{
    struct rt_http_server *s = ls->data;
    if (status < 0)
        return;
    struct rt_http_conn *c = rt_calloc(1, sizeof *c);
    c->srv = s;
    uv_tcp_init(s->loop, &c->tcp);
    uv_timer_init(s->loop, &c->timer);
    c->tcp.data = c;
    c->timer.data = c;
    c->open_handles = 2;
    c->next = s->conns;
    if (s->conns)
        s->conns->prev = c;
    s->conns = c;
    s->nconns++;
    if (uv_accept(ls, (uv_stream_t *)&c->tcp) != 0 || !s->accepting ||
        s->nconns > s->conf.max_connections) {
        conn_close(c);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    c->reading = true;
    resume_read(c);
    if (c->state != ST_CLOSED)
        arm(c, TM_IDLE, s->conf.keepalive_timeout_ms);
}

/* ---- the listener ---------------------------------------------------------------------- */

int rt_http_server_start(uv_loop_t *loop, const char *host, int port, bool reuseport,
                         const struct rt_http_server_conf *conf, rt_http_handler_fn handler,
                         void *ctx, struct rt_http_server **out, char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    int fd = -1, r;
    *out = NULL;
    memset(&ss, 0, sizeof ss);
    if (uv_ip4_addr(host, port, (struct sockaddr_in *)&ss) != 0 &&
        uv_ip6_addr(host, port, (struct sockaddr_in6 *)&ss) != 0) {
        snprintf(err, errlen, "cannot listen on %s:%d: not a numeric IPv4 or IPv6 address", host,
                 port);
        return -1;
    }
    fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd == -1)
        goto fail_errno;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) == -1)
        goto fail_errno;
    socklen_t alen = ss.ss_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
    if (bind(fd, (struct sockaddr *)&ss, alen) == -1)
        goto fail_errno;
    if (listen(fd, 1024) == -1)
        goto fail_errno;

    struct rt_http_server *s = rt_calloc(1, sizeof *s);
    s->loop = loop;
    s->conf = *conf;
    s->handler = handler;
    s->ctx = ctx;
    s->accepting = true;
    uv_tcp_init(loop, &s->listener);
    s->listener.data = s;
    s->listener_open = true;
    if ((r = uv_tcp_open(&s->listener, fd)) != 0 ||
        (r = uv_listen((uv_stream_t *)&s->listener, 1024, on_connection)) != 0) {
        snprintf(err, errlen, "cannot listen on %s:%d: %s", host, port, uv_strerror(r));
        s->closing = true;
        rt_http_server_close(s);
        return -1;
    }
    struct sockaddr_storage bound;
    int blen = sizeof bound;
    s->port = port;
    if (uv_tcp_getsockname(&s->listener, (struct sockaddr *)&bound, &blen) == 0)
        s->port = ntohs(bound.ss_family == AF_INET ? ((struct sockaddr_in *)&bound)->sin_port
                                                   : ((struct sockaddr_in6 *)&bound)->sin6_port);
    *out = s;
    return 0;

fail_errno:
    snprintf(err, errlen, "cannot listen on %s:%d: %s", host, port, strerror(errno));
    if (fd != -1)
        close(fd);
    return -1;
}

void rt_http_server_set_conf(struct rt_http_server *s, const struct rt_http_server_conf *conf)
{
    s->conf = *conf;
}

static void on_listener_closed(uv_handle_t *h)
{
    struct rt_http_server *s = h->data;
    s->listener_open = false;
    if (s->closing && s->nconns == 0)
        rt_free(s);
}

void rt_http_server_stop_accepting(struct rt_http_server *s)
{
    if (!s->accepting)
        return;
    s->accepting = false;
    if (s->listener_open)
        uv_close((uv_handle_t *)&s->listener, on_listener_closed);
    /* Idle connections go now; busy ones close after their exchange (keep_open is false). */
    for (struct rt_http_conn *c = s->conns, *next; c; c = next) {
        next = c->next;
        if (c->state == ST_HEAD && rt_buf_size(&c->in) == 0)
            conn_close(c);
    }
}

size_t rt_http_server_nconns(const struct rt_http_server *s)
{
    return s->nconns;
}

size_t rt_http_server_nactive(const struct rt_http_server *s)
{
    return s->nactive;
}

int rt_http_server_port(const struct rt_http_server *s)
{
    return s->port;
}

void rt_http_server_close(struct rt_http_server *s)
{
    s->closing = true;
    s->accepting = false;
    if (s->listener_open && !uv_is_closing((uv_handle_t *)&s->listener))
        uv_close((uv_handle_t *)&s->listener, on_listener_closed);
    for (struct rt_http_conn *c = s->conns, *next; c; c = next) {
        next = c->next;
        conn_close(c);
    }
    if (s->nconns == 0 && !s->listener_open)
        rt_free(s);
}
