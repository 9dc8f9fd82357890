/* A strict, zero-copy HTTP/1.1 parser (RFC 9112): request heads, response heads, chunked bodies.
 *
 * Pure functions: no I/O, no allocation, no global state. Parsed names and values are slices into
 * the caller's buffer, valid as long as that buffer is. Besides syntax, the head parsers derive
 * the message framing and refuse what request smuggling relies on. */
#ifndef RT_HTTP1_PARSER_H
#define RT_HTTP1_PARSER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "str.h"

#define RT_HTTP_MAX_HEADERS 100

/* Return values of the head parsers (a positive value is the head's length in bytes). */
#define RT_HTTP_BAD          (-1) /* malformed or forbidden: answer 400 / fail the upstream */
#define RT_HTTP_INCOMPLETE   (-2) /* need more bytes */
#define RT_HTTP_TOO_MANY_HDR (-3) /* more than RT_HTTP_MAX_HEADERS headers: answer 431 */

struct rt_http_header {
    struct rt_str name;  /* as sent; compare with rt_str_eq_ci */
    struct rt_str value; /* leading and trailing spaces/tabs removed */
};

struct rt_http_request {
    struct rt_str method;
    struct rt_str target; /* request-target as sent (origin-form "/path?query" normally) */
    struct rt_str path;   /* target up to '?' */
    int minor_version;    /* 0 or 1 */
    struct rt_http_header headers[RT_HTTP_MAX_HEADERS];
    size_t num_headers;
    /* Framing and connection semantics derived from the headers: */
    int64_t content_length; /* -1 when absent */
    bool chunked;           /* Transfer-Encoding: chunked (the only coding accepted) */
    bool keep_alive;        /* HTTP/1.1 without "Connection: close", or 1.0 with keep-alive */
    bool expect_continue;   /* Expect: 100-continue */
    const char *error;      /* on RT_HTTP_BAD: a static string saying what was wrong */
};

struct rt_http_response {
    int minor_version;
    int status;          /* 100..999 */
    struct rt_str reason;
    struct rt_http_header headers[RT_HTTP_MAX_HEADERS];
    size_t num_headers;
    int64_t content_length; /* -1 when absent */
    bool chunked;
    bool keep_alive;        /* false when the server said close, or framing is by close */
    const char *error;      /* on RT_HTTP_BAD: static string */
};

/* Parses a request head from <buf>[0, <len>). <last_len> is the length passed on the previous
 * call for the same message (0 the first time) so an incomplete head is rescanned cheaply.
 * Returns the head length (bytes up to and including the blank line), RT_HTTP_INCOMPLETE,
 * RT_HTTP_BAD (req->error says why) or RT_HTTP_TOO_MANY_HDR.
 * Refused: bare CR or LF as line ends, obs-fold, whitespace before ':', invalid token or
 * field-value bytes, both Content-Length and Transfer-Encoding, several or malformed
 * Content-Length values, a Transfer-Encoding other than "chunked", an HTTP version other than
 * 1.0/1.1, a request-target that is not origin-form or asterisk-form. */
int rt_http_parse_request(const char *buf, size_t len, size_t last_len,
                          struct rt_http_request *req);

/* Parses a response head, with the same conventions. <head_request> tells that the request was
 * HEAD (no body whatever the headers say). Responses 1xx, 204 and 304 have no body. A response
 * with neither Content-Length nor chunked is delimited by close (content_length -1, chunked false,
 * keep_alive false). */
int rt_http_parse_response(const char *buf, size_t len, size_t last_len, bool head_request,
                           struct rt_http_response *res);

/* The first header named <name> (case-insensitive), or NULL. */
const struct rt_http_header *rt_http_find_header(const struct rt_http_header *headers, size_t n,
                                                 struct rt_str name);

/* Longest trailer section and chunk-size line (with extensions) rt_http_chunked_feed accepts. */
#define RT_HTTP_MAX_TRAILER   8192
#define RT_HTTP_MAX_SIZE_LINE 4096

/* Chunked body decoder. Zero-fill before the first call. */
struct rt_http_chunked {
    uint64_t remaining; /* bytes left in the current chunk's data */
    int state;          /* internal */
    unsigned hex_digits;/* internal */
    size_t trailer_bytes; /* internal: trailer section size, capped */
    size_t line_bytes;  /* internal: length of the current chunk-size line, capped */
    bool done;          /* set once the last chunk and the trailer section were read */
};

/* Feeds <len> bytes of chunked encoding. Returns the number of bytes consumed (0..len) and sets
 * *<data> to the body bytes found among them (a slice into <buf>, possibly empty); call again
 * with the rest until everything is consumed or dec->done. At most one data slice comes out per
 * call. Returns RT_HTTP_BAD on an invalid chunk size (non-hex, more than 16 digits, overflow),
 * a missing CRLF after chunk data, bare LF, or a trailer section over 8 KiB. Chunk extensions
 * are accepted and ignored (up to RT_HTTP_MAX_SIZE_LINE bytes per size line). Once dec->done,
 * returns 0: the bytes after the final CRLF belong to the next message. */
ssize_t rt_http_chunked_feed(struct rt_http_chunked *dec, const char *buf, size_t len,
                             struct rt_str *data);

#endif
