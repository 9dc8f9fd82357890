/* The HTTP/1.1 client side: pooled keep-alive connections to upstream servers (see
 * http_client.h for the contract). */
#include "http_client.h"

#include <netdb.h>
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "buf.h"

#define MAX_RESPONSE_HEAD (64 * 1024)
#define READ_CHUNK        (16 * 1024)

enum conn_state {
    C_CONNECTING = 0,
    C_HEAD,   /* request sent (or being sent), waiting for the response head */
    C_BODY,   /* reading the body */
    C_IDLE,   /* in the pool */
    C_CLOSED, /* uv_close called */
};

/* One TCP connection to the upstream; owned by its pool, freed after both handles closed. */
struct conn {
    uv_tcp_t tcp; /* first: container of the handle */
    uv_timer_t timer;
    uv_connect_t connect_req;
    uv_write_t wreq;
    struct rt_http_pool *pool;
    struct conn *idle_next, *idle_prev;
    enum conn_state state;
    unsigned open_handles;        /* tcp + timer until both close callbacks ran */
    bool reused;                  /* served a request before the current one */
    bool writing;                 /* the request write is still in flight */
    struct rt_http_client *cur;   /* the request on this connection, or NULL */
    struct rt_buf in;
    size_t last_len;
    int64_t body_left;            /* content-length bytes still to come; -1: until close */
    bool chunked;
    bool keep_alive;
    struct rt_http_chunked dec;
};

/* One request; the caller's handle from rt_http_pool_send until on_done or cancel. */
struct rt_http_client {
    struct conn *conn;
    struct rt_http_client_req req;
    const struct rt_http_client_cbs *cbs;
    void *ctx;
    bool got_bytes;  /* a response byte arrived */
    bool paused;
    bool resent;     /* already moved once off a stale pooled connection */
    bool ended;      /* on_done ran or cancel was called */
    unsigned in_cb;  /* callbacks of ours on the stack: defer the free */
};

struct rt_http_pool {
    uv_loop_t *loop;
    struct sockaddr_storage addr;
    uint64_t idle_timeout_ms;
    unsigned max_idle;
    struct conn *idle; /* most recently used first */
    size_t nidle;
    size_t nopen;
    bool freed;
    /* Reads land in this shared buffer; only bytes left unconsumed (a partial head or chunk
     * line, or data held back by a paused request) are copied into the connection's own
     * buffer. With thousands of streams open, that keeps per-connection memory small. Safe
     * because one loop runs one read callback at a time. */
    char *rbuf;
    bool rbuf_busy;
    struct rt_http_response res; /* parse result; used only during the read callback */
};

static const char *const errnames[] = {
#define RT_HC_MSG(name, val, msg) [-(val)] = msg,
    RT_HC_ERRORS(RT_HC_MSG)
#undef RT_HC_MSG
};

const char *rt_hc_strerror(int err)
{
    if (err == 0)
        return "ok";
    if (err < 0 && (size_t)-err < sizeof errnames / sizeof errnames[0] && errnames[-err])
        return errnames[-err];
    return "unknown error";
}

static void conn_close(struct conn *k);
static void attach(struct rt_http_client *c, struct rt_http_pool *p);
static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

/* ---- pool bookkeeping ------------------------------------------------------------------- */

static void idle_remove(struct conn *k)
{
    struct rt_http_pool *p = k->pool;
    if (k->idle_prev)
        k->idle_prev->idle_next = k->idle_next;
    else
        p->idle = k->idle_next;
    if (k->idle_next)
        k->idle_next->idle_prev = k->idle_prev;
    k->idle_next = k->idle_prev = NULL;
    p->nidle--;
}

static void maybe_free_pool(struct rt_http_pool *p)
{
    if (p->freed && p->nopen == 0) {
        rt_free(p->rbuf);
        rt_free(p);
    }
}

static void on_conn_closed(uv_handle_t *h)
{
    struct conn *k = h->data;
    if (--k->open_handles > 0)
        return;
    struct rt_http_pool *p = k->pool;
    rt_buf_free(&k->in);
    rt_free(k);
    p->nopen--;
    maybe_free_pool(p);
}

/* Closes the connection and detaches its request, if any (the caller decides what the
 * request learns). Idempotent. */
static void conn_close(struct conn *k)
{
    if (k->state == C_CLOSED)
        return;
    if (k->state == C_IDLE)
        idle_remove(k);
    k->state = C_CLOSED;
    if (k->cur)
        k->cur->conn = NULL;
    k->cur = NULL;
    uv_close((uv_handle_t *)&k->tcp, on_conn_closed);
    uv_close((uv_handle_t *)&k->timer, on_conn_closed);
}

static void on_idle_timeout(uv_timer_t *t)
{
    conn_close(t->data);
}

/* ---- ending a request ------------------------------------------------------------------- */

static void release(struct rt_http_client *c)
{
    if (c->in_cb == 0)
        rt_free(c);
}

/* Reports the end of request <c>; its connection goes back to the pool when it can carry
 * another request, and is closed otherwise. */
static void done(struct rt_http_client *c, int err)
{
    struct conn *k = c->conn;
    if (k) {
        struct rt_http_pool *p = k->pool;
        bool reusable = err == RT_HC_OK && k->keep_alive && rt_buf_size(&k->in) == 0 &&
                        !p->freed && p->nidle < p->max_idle && !c->paused;
        uv_timer_stop(&k->timer);
        k->cur = NULL;
        c->conn = NULL;
        if (reusable) {
            k->state = C_IDLE;
            k->reused = true;
            k->idle_next = p->idle;
            k->idle_prev = NULL;
            if (p->idle)
                p->idle->idle_prev = k;
            p->idle = k;
            p->nidle++;
            rt_buf_reset(&k->in);
            if (p->idle_timeout_ms)
                uv_timer_start(&k->timer, on_idle_timeout, p->idle_timeout_ms, 0);
        } else {
            conn_close(k);
        }
    }
    c->ended = true;
    c->in_cb++;
    if (c->cbs->on_done)
        c->cbs->on_done(c->ctx, err, c->got_bytes);
    c->in_cb--;
    release(c);
}

/* A transport failure of request <c> on connection <k>. A reused connection that failed
 * before any response byte was most likely closed by the server while idle (vLLM closes idle
 * connections after 5 s): the request goes again on a fresh connection, once. */
static void fail(struct rt_http_client *c, struct conn *k, int err)
{
    bool stale = k->reused && !c->got_bytes && !c->resent &&
                 (err == RT_HC_ERESET || err == RT_HC_EWRITE);
    struct rt_http_pool *p = k->pool;
    conn_close(k);
    if (stale && !p->freed) {
        c->resent = true;
        attach(c, p);
        return;
    }
    done(c, err);
}

/* ---- timers ----------------------------------------------------------------------------- */

static void on_deadline(uv_timer_t *t)
{
    struct conn *k = t->data;
    struct rt_http_client *c = k->cur;
    if (!c)
        return;
    int err = k->state == C_CONNECTING ? RT_HC_ETIMEOUT_CONNECT
              : c->got_bytes           ? RT_HC_ETIMEOUT_IDLE
                                       : RT_HC_ETIMEOUT_HEAD;
    conn_close(k);
    done(c, err);
}

static void arm_deadline(struct conn *k, uint64_t ms)
{
    if (ms)
        uv_timer_start(&k->timer, on_deadline, ms, 0);
    else
        uv_timer_stop(&k->timer);
}

/* ---- response parsing ------------------------------------------------------------------- */

/* Calls on_data; returns false when the request ended or was cancelled meanwhile. */
static bool deliver(struct rt_http_client *c, const char *data, size_t len)
{
    if (!len || !c->cbs->on_data)
        return true;
    c->in_cb++;
    c->cbs->on_data(c->ctx, data, len);
    c->in_cb--;
    if (c->ended) {
        release(c);
        return false;
    }
    return true;
}

/* Delivers the body bytes buffered on <k>. */
static void feed_body(struct conn *k)
{
    struct rt_http_client *c = k->cur;
    while (c && rt_buf_size(&k->in) > 0 && !c->paused) {
        const char *data = rt_buf_data(&k->in);
        size_t size = rt_buf_size(&k->in);
        if (k->chunked) {
            struct rt_str piece;
            ssize_t used = rt_http_chunked_feed(&k->dec, data, size, &piece);
            if (used < 0) {
                conn_close(k);
                done(c, RT_HC_EPROTO);
                return;
            }
            rt_buf_consume(&k->in, (size_t)used);
            if (!deliver(c, piece.ptr, piece.len))
                return;
            if (k->dec.done) {
                done(c, RT_HC_OK);
                return;
            }
            if (used == 0)
                return;
            continue;
        }
        size_t n = size;
        if (k->body_left >= 0 && (int64_t)n > k->body_left)
            n = (size_t)k->body_left;
        /* Consume before calling out: the callback may end the request. The slice stays
         * valid because nothing reads into the buffer during the call. */
        rt_buf_consume(&k->in, n);
        if (k->body_left >= 0)
            k->body_left -= (int64_t)n;
        if (!deliver(c, data, n))
            return;
        if (k->body_left == 0) {
            done(c, RT_HC_OK);
            return;
        }
    }
}

static void parse_head(struct conn *k)
{
    struct rt_http_client *c = k->cur;
    for (;;) {
        const char *data = rt_buf_data(&k->in);
        size_t size = rt_buf_size(&k->in);
        struct rt_http_response *res = &k->pool->res;
        int r = rt_http_parse_response(data, size, k->last_len, c->req.head_request, res);
        if (r == RT_HTTP_INCOMPLETE) {
            if (size > MAX_RESPONSE_HEAD)
                break;
            k->last_len = size;
            return;
        }
        if (r < 0)
            break;
        k->last_len = 0;
        if (res->status < 200) {
            rt_buf_consume(&k->in, (size_t)r); /* 100 Continue and friends: not the answer */
            continue;
        }
        k->keep_alive = res->keep_alive;
        k->chunked = res->chunked;
        k->body_left = k->chunked ? 0 : res->content_length;
        memset(&k->dec, 0, sizeof k->dec);
        k->state = C_BODY;
        if (c->cbs->on_head) {
            c->in_cb++;
            c->cbs->on_head(c->ctx, res);
            c->in_cb--;
            if (c->ended) {
                release(c);
                return;
            }
        }
        rt_buf_consume(&k->in, (size_t)r);
        if (!k->chunked && k->body_left == 0) {
            done(c, RT_HC_OK);
            return;
        }
        feed_body(k);
        return;
    }
    conn_close(k);
    done(c, RT_HC_EPROTO);
}

#define SHARED_READ (64 * 1024)

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *out)
{
    struct conn *k = (struct conn *)h;
    struct rt_http_pool *p = k->pool;
    if (rt_buf_size(&k->in) == 0 && !p->rbuf_busy) {
        if (!p->rbuf)
            p->rbuf = rt_malloc(SHARED_READ);
        p->rbuf_busy = true;
        *out = uv_buf_init(p->rbuf, SHARED_READ);
        return;
    }
    /* Something is pending already: read after it, into the connection's own buffer. */
    if (rt_buf_reserve(&k->in, READ_CHUNK, MAX_RESPONSE_HEAD + 4 * READ_CHUNK) != 0) {
        *out = uv_buf_init(NULL, 0);
        return;
    }
    *out = uv_buf_init(k->in.base + k->in.len, (unsigned)(k->in.cap - k->in.len));
}

/* Runs the parser over what was read. */
static void consume_input(struct conn *k)
{
    struct rt_http_client *c = k->cur;
    c->got_bytes = true;
    arm_deadline(k, c->req.idle_timeout_ms);
    if (k->state == C_HEAD)
        parse_head(k);
    else if (k->state == C_BODY)
        feed_body(k);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct conn *k = (struct conn *)s;
    struct rt_http_pool *p = k->pool;
    bool shared = buf->base != NULL && buf->base == p->rbuf;
    struct rt_http_client *c = k->cur;
    if (shared)
        p->rbuf_busy = false;
    if (nread == 0)
        return;
    if (k->state == C_IDLE || !c) {
        /* The server closed (or spoke out of turn) while idle: this connection is done. */
        conn_close(k);
        return;
    }
    if (nread < 0) {
        if (nread == UV_EOF && k->state == C_BODY && !k->chunked && k->body_left < 0) {
            k->keep_alive = false;
            done(c, RT_HC_OK); /* a close-delimited body ended */
            return;
        }
        if (nread == UV_ENOBUFS) {
            conn_close(k);
            done(c, RT_HC_EPROTO);
            return;
        }
        fail(c, k, RT_HC_ERESET);
        return;
    }
    if (!shared) {
        k->in.len += (size_t)nread;
        consume_input(k);
        return;
    }
    /* Parse straight from the shared buffer through a borrowed view of it; keep a copy of
     * only what the parser did not consume. */
    struct rt_buf own = k->in;
    k->in = (struct rt_buf){.base = p->rbuf, .off = 0, .len = (size_t)nread, .cap = SHARED_READ};
    p->rbuf_busy = true;
    consume_input(k);
    struct rt_buf view = k->in;
    k->in = own;
    p->rbuf_busy = false;
    if (rt_buf_size(&view) > 0 && k->state != C_CLOSED && k->state != C_IDLE)
        rt_buf_append(&k->in, rt_buf_data(&view), rt_buf_size(&view), (size_t)-1);
}

/* ---- sending ---------------------------------------------------------------------------- */

static void on_written(uv_write_t *w, int status)
{
    struct conn *k = w->data;
    k->writing = false;
    if (status < 0 && k->state != C_CLOSED && k->cur)
        fail(k->cur, k, RT_HC_EWRITE);
}

static void start_request(struct conn *k)
{
    struct rt_http_client *c = k->cur;
    k->state = C_HEAD;
    k->last_len = 0;
    rt_buf_reset(&k->in);
    k->wreq.data = k;
    int r = uv_write(&k->wreq, (uv_stream_t *)&k->tcp, c->req.bufs, c->req.nbufs, on_written);
    if (r < 0) {
        fail(c, k, RT_HC_EWRITE);
        return;
    }
    k->writing = true;
    arm_deadline(k, c->req.first_byte_timeout_ms);
    if (!c->paused)
        uv_read_start((uv_stream_t *)&k->tcp, on_alloc, on_read);
}

static void on_connected(uv_connect_t *req, int status)
{
    struct conn *k = req->data;
    if (k->state != C_CONNECTING || !k->cur)
        return; /* closed meanwhile (timeout or cancel) */
    if (status < 0) {
        struct rt_http_client *c = k->cur;
        conn_close(k);
        done(c, RT_HC_ECONNECT);
        return;
    }
    uv_tcp_nodelay(&k->tcp, 1);
    start_request(k);
}

/* Connect failed synchronously: report from the loop, not from inside rt_http_pool_send. */
static void on_connect_error(uv_timer_t *t)
{
    struct conn *k = t->data;
    struct rt_http_client *c = k->cur;
    conn_close(k);
    if (c)
        done(c, RT_HC_ECONNECT);
}

/* Puts request <c> on an idle connection of <p>, or on a new one. */
static void attach(struct rt_http_client *c, struct rt_http_pool *p)
{
    struct conn *k = p->idle;
    if (k) {
        idle_remove(k);
        uv_timer_stop(&k->timer);
    } else {
        k = rt_calloc(1, sizeof *k);
        k->pool = p;
        uv_tcp_init(p->loop, &k->tcp);
        uv_timer_init(p->loop, &k->timer);
        k->tcp.data = k;
        k->timer.data = k;
        k->open_handles = 2;
        k->state = C_CONNECTING;
        p->nopen++;
    }
    k->cur = c;
    c->conn = k;
    if (k->state == C_IDLE) {
        start_request(k);
        return;
    }
    k->connect_req.data = k;
    if (uv_tcp_connect(&k->connect_req, &k->tcp, (const struct sockaddr *)&p->addr,
                       on_connected) < 0) {
        uv_timer_start(&k->timer, on_connect_error, 0, 0);
        return;
    }
    arm_deadline(k, c->req.connect_timeout_ms);
}

int rt_http_pool_send(struct rt_http_pool *p, const struct rt_http_client_req *req,
                      const struct rt_http_client_cbs *cbs, void *ctx, struct rt_http_client **out)
{
    struct rt_http_client *c = rt_calloc(1, sizeof *c);
    c->req = *req;
    c->cbs = cbs;
    c->ctx = ctx;
    *out = c;
    attach(c, p);
    return 0;
}

void rt_http_client_pause(struct rt_http_client *c)
{
    struct conn *k = c->conn;
    if (c->paused || c->ended)
        return;
    c->paused = true;
    if (k && (k->state == C_HEAD || k->state == C_BODY))
        uv_read_stop((uv_stream_t *)&k->tcp);
}

void rt_http_client_resume(struct rt_http_client *c)
{
    struct conn *k = c->conn;
    if (!c->paused || c->ended)
        return;
    c->paused = false;
    if (k && (k->state == C_HEAD || k->state == C_BODY)) {
        uv_read_start((uv_stream_t *)&k->tcp, on_alloc, on_read);
        /* Bytes read before the pause may hold more of the body (or all of it). */
        if (k->state == C_BODY && rt_buf_size(&k->in) > 0)
            feed_body(k);
    }
}

bool rt_http_client_sent(const struct rt_http_client *c)
{
    return c->conn && !c->conn->writing;
}

void rt_http_client_cancel(struct rt_http_client *c)
{
    if (c->ended)
        return;
    c->ended = true;
    if (c->conn)
        conn_close(c->conn);
    release(c);
}

/* ---- pools ------------------------------------------------------------------------------ */

struct rt_http_pool *rt_http_pool_new(uv_loop_t *loop, const struct sockaddr *addr,
                                      uint64_t idle_timeout_ms, unsigned max_idle)
{
    struct rt_http_pool *p = rt_calloc(1, sizeof *p);
    p->loop = loop;
    memcpy(&p->addr, addr,
           addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in));
    p->idle_timeout_ms = idle_timeout_ms;
    p->max_idle = max_idle;
    return p;
}

void rt_http_pool_free(struct rt_http_pool *p)
{
    p->freed = true;
    while (p->idle)
        conn_close(p->idle);
    maybe_free_pool(p);
}

void rt_http_pool_set_idle_timeout(struct rt_http_pool *p, uint64_t idle_timeout_ms)
{
    p->idle_timeout_ms = idle_timeout_ms;
}

size_t rt_http_pool_nidle(const struct rt_http_pool *p)
{
    return p->nidle;
}

size_t rt_http_pool_nopen(const struct rt_http_pool *p)
{
    return p->nopen;
}

int rt_http_resolve(const char *host, int port, struct sockaddr_storage *out, char *err,
                    size_t errlen)
{
    struct addrinfo hints, *res = NULL;
    char portstr[16];
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    snprintf(portstr, sizeof portstr, "%d", port);
    int r = getaddrinfo(host, portstr, &hints, &res);
    if (r != 0 || !res) {
        snprintf(err, errlen, "cannot resolve '%s': %s", host, gai_strerror(r));
        return -1;
    }
    memset(out, 0, sizeof *out);
    memcpy(out, res->ai_addr, res->ai_addrlen);
    freeaddrinfo(res);
    return 0;
}
