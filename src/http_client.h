/* An HTTP/1.1 client for talking to upstream servers on a libuv loop: per-upstream pools of
 * keep-alive connections, a request written from caller-owned buffers, the response delivered
 * as a parsed head and then body bytes as they arrive (chunked encoding decoded), with connect,
 * first-byte and idle deadlines, pause/resume for backpressure and cancel to abort.
 *
 * A pooled connection that the server closed while idle never loses a request: when a reused
 * connection fails before any response byte arrived, the request is sent again once on a fresh
 * connection. One loop per pool; nothing here is thread-safe. */
#ifndef RT_HTTP_CLIENT_H
#define RT_HTTP_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

#include "http1_parser.h"

struct rt_http_pool;
struct rt_http_client;

/* Errors given to on_done; names and messages in one list. */
#define RT_HC_ERRORS(X)                                                                            \
    X(RT_HC_ECONNECT, -1, "connect failed")                                                        \
    X(RT_HC_ETIMEOUT_CONNECT, -2, "connect timed out")                                             \
    X(RT_HC_ETIMEOUT_HEAD, -3, "no response before the first-byte deadline")                      \
    X(RT_HC_ETIMEOUT_IDLE, -4, "response stalled past the idle deadline")                          \
    X(RT_HC_ERESET, -5, "connection closed before the response was complete")                     \
    X(RT_HC_EPROTO, -6, "malformed response")                                                      \
    X(RT_HC_EWRITE, -7, "sending the request failed")
enum rt_hc_error {
    RT_HC_OK = 0,
#define RT_HC_ENUM(name, val, msg) name = val,
    RT_HC_ERRORS(RT_HC_ENUM)
#undef RT_HC_ENUM
};
const char *rt_hc_strerror(int err);

struct rt_http_client_req {
    const uv_buf_t *bufs; /* request bytes (head + body); caller keeps them valid until on_done
                             or cancel */
    unsigned nbufs;
    bool head_request;            /* the request was HEAD: no body whatever the headers say */
    uint64_t connect_timeout_ms;  /* 0 = none */
    uint64_t first_byte_timeout_ms; /* from the request sent to the first response byte; 0 = none */
    uint64_t idle_timeout_ms;     /* max gap between response bytes after the first; 0 = none */
};

struct rt_http_client_cbs {
    /* The response head; <res> and its slices are valid only during the call. */
    void (*on_head)(void *ctx, const struct rt_http_response *res);
    /* Body bytes as they arrive (decoded); valid only during the call. */
    void (*on_data)(void *ctx, const char *data, size_t len);
    /* Once, at the end: RT_HC_OK when the whole response was read, else an rt_hc_error.
     * <got_bytes> tells whether any response byte had arrived. After it the client belongs to
     * the pool again (or is closed): don't touch it. */
    void (*on_done)(void *ctx, int err, bool got_bytes);
};

/* A pool of connections to the upstream at <addr> (copied). Idle connections are closed after
 * <idle_timeout_ms>, and at most <max_idle> are kept. */
struct rt_http_pool *rt_http_pool_new(uv_loop_t *loop, const struct sockaddr *addr,
                                      uint64_t idle_timeout_ms, unsigned max_idle);
/* Closes idle connections now and frees the pool once requests in flight ended. */
void rt_http_pool_free(struct rt_http_pool *pool);
void rt_http_pool_set_idle_timeout(struct rt_http_pool *pool, uint64_t idle_timeout_ms);
/* Connections open (idle + busy), for tests and stats. */
size_t rt_http_pool_nidle(const struct rt_http_pool *pool);
size_t rt_http_pool_nopen(const struct rt_http_pool *pool);

/* Sends <req> on an idle connection of <pool> or a new one; callbacks get <ctx>. Returns 0 and
 * the client in *<out> (for pause/resume/cancel until on_done). Failures are reported through
 * on_done, never synchronously (so callers have one path). */
int rt_http_pool_send(struct rt_http_pool *pool, const struct rt_http_client_req *req,
                      const struct rt_http_client_cbs *cbs, void *ctx, struct rt_http_client **out);
/* Stops reading the response until resumed (the server is then slowed by TCP flow control). */
void rt_http_client_pause(struct rt_http_client *c);
void rt_http_client_resume(struct rt_http_client *c);
/* Whether the whole request has been handed to the kernel: the caller's request buffers are
 * no longer needed (unless it sends the request again elsewhere). */
bool rt_http_client_sent(const struct rt_http_client *c);
/* Aborts: closes the connection at once (that is how vLLM learns to stop generating); no
 * callback runs afterwards. Safe inside a callback of <c>. */
void rt_http_client_cancel(struct rt_http_client *c);

/* Resolves "host" and <port> synchronously (numeric addresses never block) into <out>.
 * Returns 0 or -1 with a message. For setup paths only. */
int rt_http_resolve(const char *host, int port, struct sockaddr_storage *out, char *err,
                    size_t errlen);

#endif
