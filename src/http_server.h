/* An HTTP/1.1 server on a libuv loop: accepts connections, reads and parses each request (head
 * and whole body, within limits and deadlines), hands it to a handler, and writes the handler's
 * response — whole, or streamed chunk by chunk with backpressure.
 *
 * Ownership: the server owns connections and exchanges. A handler receives an exchange and owns
 * the duty to end it exactly once, with rt_http_respond() or rt_http_stream_end() — also after
 * the client went away (then ending only frees). Until ended, everything in the exchange (head
 * slices, body) stays valid. One loop per server; nothing here is thread-safe. */
#ifndef RT_HTTP_SERVER_H
#define RT_HTTP_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "http1_parser.h"
#include "str.h"

struct rt_http_server;
struct rt_http_exchange;

struct rt_http_server_conf {
    size_t max_head_bytes;         /* a longer request head gets 431 */
    size_t max_body_bytes;         /* a longer body gets 413 */
    uint64_t head_timeout_ms;      /* first byte of a request -> head complete, else 408 */
    uint64_t body_timeout_ms;      /* head complete -> body complete, else 408 */
    uint64_t keepalive_timeout_ms; /* idle time between requests before closing */
    unsigned max_connections;      /* connections past it are closed at once */
    size_t output_high_water;      /* queued response bytes past which rt_http_congested() */
};

typedef void (*rt_http_handler_fn)(struct rt_http_exchange *ex, void *ctx);
typedef void (*rt_http_exchange_fn)(struct rt_http_exchange *ex, void *data);

struct rt_http_exchange {
    struct rt_http_request req; /* parsed head; slices valid until the exchange ends */
    struct rt_str body;         /* the whole body, de-chunked; valid until the exchange ends */
    uint64_t head_bytes;        /* size of the request head on the wire */
    uint64_t start_ns;          /* uv_hrtime() when the head was complete */
    uint64_t bytes_out;         /* response bytes handed to the socket so far */
    bool aborted;               /* the client went away or the write failed */
    bool started;               /* a response head was written */
    void *data;                 /* the handler's */
    /* private */
    struct rt_http_conn *_conn;
    rt_http_exchange_fn _on_abort;
    rt_http_exchange_fn _on_drain;
    rt_http_exchange_fn _on_end;
    void *_cb_data;
    bool _want_drain;
    bool _close_after;
};

/* Binds <host>:<port> (SO_REUSEPORT when <reuseport>, so several loops may share a port) and
 * starts accepting. <conf> is copied. Returns 0, or -1 with a readable message in <err>
 * ("cannot listen on 0.0.0.0:8888: address already in use"). */
int rt_http_server_start(uv_loop_t *loop, const char *host, int port, bool reuseport,
                         const struct rt_http_server_conf *conf, rt_http_handler_fn handler,
                         void *ctx, struct rt_http_server **out, char *err, size_t errlen);
/* Replaces the limits and deadlines (applies to requests read from now on). */
void rt_http_server_set_conf(struct rt_http_server *s, const struct rt_http_server_conf *conf);
/* Stops accepting; open connections go on, idle ones close, and busy ones close after their
 * current exchange. Idempotent. */
void rt_http_server_stop_accepting(struct rt_http_server *s);
/* Number of open connections / of exchanges not yet ended. */
size_t rt_http_server_nconns(const struct rt_http_server *s);
size_t rt_http_server_nactive(const struct rt_http_server *s);
/* Closes the listener and every connection (handlers see on_abort), then frees the server once
 * the last handle closed and every exchange was ended. Call once; <s> is invalid afterwards. */
void rt_http_server_close(struct rt_http_server *s);
/* The port actually bound (useful with port 0). */
int rt_http_server_port(const struct rt_http_server *s);

/* Callbacks for a long exchange: <on_abort> runs once when the client goes away before the end
 * (the handler must then stop and end the exchange); <on_drain> runs when output queued past
 * the high-water mark has been written out. Either may be NULL. */
void rt_http_set_callbacks(struct rt_http_exchange *ex, rt_http_exchange_fn on_abort,
                           rt_http_exchange_fn on_drain, void *data);

/* <on_end> runs once when the exchange ends (with the <data> of rt_http_set_callbacks), while
 * everything in it — head slices, body, bytes_out — is still valid and final; right after,
 * the connection may move on to the client's next request. */
void rt_http_set_on_end(struct rt_http_exchange *ex, rt_http_exchange_fn on_end);

/* Whole response: status line, <headers> (zero or more complete "Name: value\r\n" lines, may be
 * NULL), Content-Length and Connection headers added, then <body>. Copies what it must. Ends
 * the exchange. */
void rt_http_respond(struct rt_http_exchange *ex, int status, const char *headers,
                     const char *body, size_t len);
/* Like rt_http_respond with <headers> given as a slice. */
void rt_http_respond_s(struct rt_http_exchange *ex, int status, struct rt_str headers,
                       struct rt_str body);
/* Starts a streamed response: head with Transfer-Encoding: chunked (or close-delimited for an
 * HTTP/1.0 client). */
void rt_http_stream_start(struct rt_http_exchange *ex, int status, struct rt_str headers);
/* Sends <len> bytes as one chunk, at once when the socket takes them (copied otherwise).
 * Zero bytes are ignored. */
void rt_http_stream_write(struct rt_http_exchange *ex, const char *data, size_t len);
/* Sends the last chunk and ends the exchange. */
void rt_http_stream_end(struct rt_http_exchange *ex);
/* Ends the exchange by closing the connection at once, without finishing the response: the
 * client sees a truncated body (what a crashed server looks like). on_abort is not called. */
void rt_http_abort(struct rt_http_exchange *ex);
/* True while more than output_high_water bytes wait to be written; stop producing and wait
 * for on_drain. */
bool rt_http_congested(const struct rt_http_exchange *ex);
/* Peer address of the client as text ("127.0.0.1"), into <out>. */
void rt_http_peer(const struct rt_http_exchange *ex, char *out, size_t outlen);

/* An error response in the OpenAI shape:
 * {"error": {"message": <message>, "type": <type>, "param": null, "code": <code>}}
 * with <headers> (complete lines or NULL) added. Ends the exchange. */
void rt_http_respond_error(struct rt_http_exchange *ex, int status, const char *type,
                           const char *code, const char *message, const char *headers);
/* Appends <s> as a JSON string literal (quotes included) to <b>. */
struct rt_buf;
void rt_http_json_str(struct rt_buf *b, const char *s, size_t len);

/* Standard reason phrase for <status> ("OK", "Not Found", ...). */
const char *rt_http_reason(int status);

#endif
