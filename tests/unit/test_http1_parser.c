/* Unit tests for http1_parser.c: tables of literal good and bad messages, each also fed as every
 * prefix and every two-part split, placed right before a PROT_NONE page so overreads crash. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "alloc.h"
#include "http1_parser.h"

/* ---- Guard page: copies of the input end exactly where an unreadable page begins. ---- */

#define GUARD_SPAN (64 * 1024) /* readable bytes before the guard page */

static char *guard_base;
static size_t guard_page;

static int guard_setup(void **state)
{
    (void)state;
    guard_page = (size_t)sysconf(_SC_PAGESIZE);
    guard_base = mmap(NULL, GUARD_SPAN + guard_page, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (guard_base == MAP_FAILED)
        return -1;
    return mprotect(guard_base + GUARD_SPAN, guard_page, PROT_NONE);
}

static int guard_teardown(void **state)
{
    (void)state;
    munmap(guard_base, GUARD_SPAN + guard_page);
    return 0;
}

/* Returns a copy of <msg>[0, <len>) whose last byte is the last readable one. */
static const char *at_guard(const char *msg, size_t len)
{
    assert_true(len <= GUARD_SPAN);
    char *p = guard_base + GUARD_SPAN - len;
    memcpy(p, msg, len);
    return p;
}

/* ---- A head parser seen generically, so requests and responses share the drivers. ---- */

struct parser {
    int (*parse)(const struct parser *ps, const char *buf, size_t len, size_t last_len);
    struct rt_http_request req;
    struct rt_http_response res;
    bool head_request;
};

static int parse_req(const struct parser *ps, const char *buf, size_t len, size_t last_len)
{
    return rt_http_parse_request(buf, len, last_len, (struct rt_http_request *)&ps->req);
}

static int parse_res(const struct parser *ps, const char *buf, size_t len, size_t last_len)
{
    return rt_http_parse_response(buf, len, last_len, ps->head_request,
                                  (struct rt_http_response *)&ps->res);
}

/* Checks <msg> whole, as every prefix, incrementally byte by byte with <last_len>, and split in
 * two at every position; all must agree with <want> (head length or error). Leaves the parser
 * holding the one-shot result of the whole message, parsed at the guard. */
static void check_all_ways(struct parser *ps, const char *msg, size_t len, int want)
{
    /* Every proper prefix: incomplete for a good head; for a bad one incomplete or the same
     * error (an early refusal is fine, another verdict is not). */
    size_t upto = want > 0 ? (size_t)want : len;
    for (size_t i = 0; i < upto; i++) {
        int r = ps->parse(ps, at_guard(msg, i), i, 0);
        if (want > 0 ? r != RT_HTTP_INCOMPLETE : (r != RT_HTTP_INCOMPLETE && r != want))
            fail_msg("prefix %zu of %zu: got %d, want %d for \"%.*s\"", i, len, r, want,
                     (int)len, msg);
    }
    /* Growing buffer, each call told how much the previous one saw. */
    size_t last = 0;
    int r = RT_HTTP_INCOMPLETE;
    for (size_t i = 1; i <= len && r == RT_HTTP_INCOMPLETE; i++) {
        r = ps->parse(ps, at_guard(msg, i), i, last);
        last = i;
    }
    if (r != want)
        fail_msg("incremental: got %d, want %d for \"%.*s\"", r, want, (int)len, msg);
    /* Two calls: first k bytes, then all with last_len = k. */
    for (size_t k = 0; k < len; k++) {
        const char *p = at_guard(msg, len);
        if (ps->parse(ps, p, k, 0) != RT_HTTP_INCOMPLETE)
            continue;
        r = ps->parse(ps, p, len, k);
        if (r != want)
            fail_msg("split at %zu: got %d, want %d for \"%.*s\"", k, r, want, (int)len, msg);
    }
    r = ps->parse(ps, at_guard(msg, len), len, 0);
    if (r != want)
        fail_msg("whole: got %d, want %d for \"%.*s\"", r, want, (int)len, msg);
}

static void assert_slice(struct rt_str s, const char *want)
{
    if (!want)
        return;
    if (s.len != strlen(want) || memcmp(s.ptr, want, s.len) != 0)
        fail_msg("got \"%.*s\", want \"%s\"", RT_STR_FMT(s), want);
}

/* Checks that every slice lies in [buf, buf + head). */
static void assert_inside(struct rt_str s, const char *buf, int head)
{
    assert_true(s.ptr >= buf && s.ptr + s.len <= buf + head);
}

/* ---- Requests ---- */

#define M(s) .msg = (s), .len = sizeof(s) - 1

struct req_case {
    const char *msg;
    size_t len;
    int want;      /* < 0: expected error; else number of bytes after the head (body, next) */
    const char *method, *target, *path;
    int minor;
    size_t nh;
    int64_t cl;
    bool chunked, keep_alive, expect_continue;
    const char *hname, *hvalue; /* a header to look up, and its expected value */
    const char *err;            /* substring expected in req->error */
};

static const struct req_case req_cases[] = {
    {M("GET / HTTP/1.1\r\nHost: example.com\r\n\r\n"), .method = "GET", .target = "/",
     .path = "/", .minor = 1, .nh = 1, .cl = -1, .keep_alive = true, .hname = "host",
     .hvalue = "example.com"},
    {M("GET /v1/models?x=1&y=%20 HTTP/1.1\r\nHost: a\r\nUser-Agent: curl/8.0\r\n"
       "Accept: */*\r\n\r\n"),
     .method = "GET", .target = "/v1/models?x=1&y=%20", .path = "/v1/models", .minor = 1,
     .nh = 3, .cl = -1, .keep_alive = true, .hname = "ACCEPT", .hvalue = "*/*"},
    {M("POST /v1/completions HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\n"
       "Content-Length: 12\r\n\r\nhello world!"),
     .want = 12, .method = "POST", .path = "/v1/completions", .minor = 1, .nh = 3, .cl = 12,
     .keep_alive = true, .hname = "content-type", .hvalue = "application/json"},
    {M("POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"),
     .want = 15, .method = "POST", .minor = 1, .nh = 2, .cl = -1, .chunked = true,
     .keep_alive = true},
    {M("POST /x HTTP/1.1\r\nTransfer-Encoding: CHUNKED\r\n\r\n"), .cl = -1, .minor = 1, .nh = 1,
     .chunked = true, .keep_alive = true},
    {M("POST /x HTTP/1.1\r\nTransfer-Encoding: \t chunked \t\r\n\r\n"), .cl = -1, .minor = 1, .nh = 1,
     .chunked = true, .keep_alive = true, .hname = "transfer-encoding", .hvalue = "chunked"},
    {M("GET / HTTP/1.0\r\n\r\n"), .method = "GET", .minor = 0, .nh = 0, .cl = -1,
     .keep_alive = false},
    {M("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"), .minor = 0, .nh = 1, .cl = -1,
     .keep_alive = true},
    {M("GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n"), .minor = 0, .nh = 1,
     .cl = -1, .keep_alive = false},
    {M("GET / HTTP/1.1\r\nConnection: Upgrade ,  Close\r\n\r\n"), .minor = 1, .nh = 1,
     .cl = -1, .keep_alive = false},
    {M("GET / HTTP/1.1\r\nConnection: closed, x-close\r\n\r\n"), .minor = 1, .nh = 1,
     .cl = -1, .keep_alive = true},
    {M("GET / HTTP/1.1\r\nConnection: keep-alive\r\nConnection: close\r\n\r\n"), .nh = 2,
     .minor = 1, .cl = -1, .keep_alive = false},
    {M("GET / HTTP/1.1\r\nX-Pad: \t value with  spaces \t \r\n\r\n"), .nh = 1, .minor = 1,
     .cl = -1, .keep_alive = true, .hname = "x-pad", .hvalue = "value with  spaces"},
    {M("GET / HTTP/1.1\r\nX-Empty:\r\nX-Blank:   \r\n\r\n"), .nh = 2, .minor = 1, .cl = -1,
     .keep_alive = true, .hname = "x-blank", .hvalue = ""},
    {M("GET / HTTP/1.1\r\nX-Bin: caf\xc3\xa9 \x80\xff\r\n\r\n"), .nh = 1, .minor = 1,
     .cl = -1, .keep_alive = true, .hname = "x-bin", .hvalue = "caf\xc3\xa9 \x80\xff"},
    {M("POST / HTTP/1.1\r\nExpect: 100-Continue\r\nContent-Length: 3\r\n\r\n"), .nh = 2,
     .minor = 1, .cl = 3, .keep_alive = true, .expect_continue = true},
    {M("POST / HTTP/1.1\r\nExpect: 200-ok\r\nContent-Length: 0\r\n\r\n"), .nh = 2, .minor = 1,
     .cl = 0, .keep_alive = true},
    {M("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n"), .method = "OPTIONS", .target = "*",
     .path = "*", .nh = 1, .minor = 1, .cl = -1, .keep_alive = true},
    {M("\r\n\r\nGET /a HTTP/1.1\r\n\r\n"), .method = "GET", .target = "/a", .minor = 1,
     .cl = -1, .keep_alive = true},
    {M("PUT / HTTP/1.1\r\nContent-Length: 9223372036854775807\r\n\r\n"), .nh = 1, .minor = 1,
     .cl = INT64_MAX, .keep_alive = true},
    {M("PUT / HTTP/1.1\r\nContent-Length: 007\r\n\r\n"), .nh = 1, .minor = 1, .cl = 7,
     .keep_alive = true},
    {M("M-SEARCH /a/b/../c;p=1 HTTP/1.1\r\n"
       "X-Custom_Header.v2!#$%&'*+^`|~: v\r\nHost: a:8080\r\n\r\n"),
     .method = "M-SEARCH", .target = "/a/b/../c;p=1", .nh = 2, .minor = 1, .cl = -1,
     .keep_alive = true, .hname = "x-custom_header.v2!#$%&'*+^`|~", .hvalue = "v"},
    {M("get / HTTP/1.1\r\n\r\n"), .method = "get", .minor = 1, .cl = -1, .keep_alive = true},
    {M("GET /a HTTP/1.1\r\nHost: a\r\n\r\nGET /b HTTP/1.1\r\nHost: a\r\n\r\n"), .want = 28,
     .target = "/a", .nh = 1, .minor = 1, .cl = -1, .keep_alive = true},
    {M("GET /?q=\"x\"[]{}<>^|\\ HTTP/1.1\r\n\r\n"), .target = "/?q=\"x\"[]{}<>^|\\",
     .path = "/", .minor = 1, .cl = -1, .keep_alive = true},

    /* Smuggling vectors and malformed heads. */
    {M("POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"),
     .want = RT_HTTP_BAD, .err = "both"},
    {M("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n"),
     .want = RT_HTTP_BAD, .err = "both"},
    {M("POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n"),
     .want = RT_HTTP_BAD, .err = "several Content-Length"},
    {M("POST / HTTP/1.1\r\nContent-Length: 5\r\ncontent-length: 6\r\n\r\n"),
     .want = RT_HTTP_BAD, .err = "several Content-Length"},
    {M("POST / HTTP/1.1\r\nContent-Length: 1,1\r\n\r\n"), .want = RT_HTTP_BAD,
     .err = "Content-Length"},
    {M("POST / HTTP/1.1\r\nContent-Length: 1, 1\r\n\r\n"), .want = RT_HTTP_BAD},
    {M("POST / HTTP/1.1\r\nContent-Length:  +5\r\n\r\n"), .want = RT_HTTP_BAD,
     .err = "malformed Content-Length"},
    {M("POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n"), .want = RT_HTTP_BAD},
    {M("POST / HTTP/1.1\r\nContent-Length: 5 5\r\n\r\n"), .want = RT_HTTP_BAD},
    {M("POST / HTTP/1.1\r\nContent-Length:\r\n\r\n"), .want = RT_HTTP_BAD},
    {M("POST / HTTP/1.1\r\nContent-Length: 0x10\r\n\r\n"), .want = RT_HTTP_BAD},
    {M("POST / HTTP/1.1\r\nContent-Length: 9223372036854775808\r\n\r\n"), .want = RT_HTTP_BAD,
     .err = "overflow"},
    {M("POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n"),
     .want = RT_HTTP_BAD, .err = "overflow"},
    {M("POST / HTTP/1.1\r\nTransfer-Encoding: chunked, identity\r\n\r\n"), .want = RT_HTTP_BAD,
     .err = "Transfer-Encoding"},
    {M("POST / HTTP/1.1\r\nTransfer-Encoding: identity\r\n\r\n"), .want = RT_HTTP_BAD},
    {M("POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"), .want = RT_HTTP_BAD},
    {M("POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n"), .want = RT_HTTP_BAD},
    {M("POST / HTTP/1.1\r\nTransfer-Encoding: chunked, chunked\r\n\r\n"), .want = RT_HTTP_BAD},
    {M("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"),
     .want = RT_HTTP_BAD, .err = "several Transfer-Encoding"},
    {M("POST / HTTP/1.1\r\nTransfer-Encoding: xchunked\r\n\r\n"), .want = RT_HTTP_BAD},
    {M("POST / HTTP/1.1\r\nTransfer-Encoding:\r\n\r\n"), .want = RT_HTTP_BAD},
    {M("POST / HTTP/1.1\r\nTransfer-Encoding : chunked\r\n\r\n"), .want = RT_HTTP_BAD,
     .err = "whitespace before ':'"},
    {M("POST / HTTP/1.1\r\nContent-Length\t: 5\r\n\r\n"), .want = RT_HTTP_BAD,
     .err = "whitespace before ':'"},
    {M("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"), .want = RT_HTTP_BAD,
     .err = "HTTP/1.0"},
    {M("GET / HTTP/1.1\r\nX-A: b\r\n c\r\n\r\n"), .want = RT_HTTP_BAD, .err = "obs-fold"},
    {M("GET / HTTP/1.1\r\nX-A: b\r\n\tc\r\n\r\n"), .want = RT_HTTP_BAD, .err = "obs-fold"},
    {M("GET / HTTP/1.1\r\n Host: a\r\n\r\n"), .want = RT_HTTP_BAD, .err = "obs-fold"},
    {M("GET / HTTP/1.1\r\nHost: a\nX: b\r\n\r\n"), .want = RT_HTTP_BAD, .err = "bare LF"},
    {M("GET / HTTP/1.1\nHost: a\r\n\r\n"), .want = RT_HTTP_BAD, .err = "bare LF"},
    {M("GET / HTTP/1.1\n\n"), .want = RT_HTTP_BAD, .err = "bare LF"},
    {M("GET / HTTP/1.1\r\nHost: a\r\n\n"), .want = RT_HTTP_BAD, .err = "bare LF"},
    {M("GET / HTTP/1.1\r\nX: a\rb\r\n\r\n"), .want = RT_HTTP_BAD, .err = "bare CR"},
    {M("GET / HTTP/1.1\r\nX: a\r\r\n\r\n"), .want = RT_HTTP_BAD, .err = "bare CR"},
    {M("GET / HTTP/1.1\r\n\rX: a\r\n\r\n"), .want = RT_HTTP_BAD},
    {M("GET / HTTP/1.1\r\r\n\r\n"), .want = RT_HTTP_BAD},
    {M("GET / HTTP/1.1\r\nX: a\0b\r\n\r\n"), .want = RT_HTTP_BAD, .err = "header value"},
    {M("GET / HTTP/1.1\r\nX\0Y: a\r\n\r\n"), .want = RT_HTTP_BAD, .err = "header name"},
    {M("GET / HTTP/1.1\r\nX: a\x01\r\n\r\n"), .want = RT_HTTP_BAD},
    {M("GET / HTTP/1.1\r\nX: a\x7f\r\n\r\n"), .want = RT_HTTP_BAD},
    {M("GET / HTTP/1.1\r\nX@Y: a\r\n\r\n"), .want = RT_HTTP_BAD, .err = "header name"},
    {M("GET / HTTP/1.1\r\n: a\r\n\r\n"), .want = RT_HTTP_BAD, .err = "header name"},
    {M("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"), .want = RT_HTTP_BAD, .err = "Host"},
    {M("G(ET / HTTP/1.1\r\n\r\n"), .want = RT_HTTP_BAD, .err = "method"},
    {M("GET\t/ HTTP/1.1\r\n\r\n"), .want = RT_HTTP_BAD, .err = "method"},
    {M(" GET / HTTP/1.1\r\n\r\n"), .want = RT_HTTP_BAD, .err = "method"},
    {M("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"), .want = RT_HTTP_BAD, .err = "method"},
    {M("GE\xc3\x89T / HTTP/1.1\r\n\r\n"), .want = RT_HTTP_BAD},
    {M("GET / HTTP/2.0\r\n\r\n"), .want = RT_HTTP_BAD, .err = "version"},
    {M("GET / HTTP/1.2\r\n\r\n"), .want = RT_HTTP_BAD, .err = "version"},
    {M("GET / HTTP/0.9\r\n\r\n"), .want = RT_HTTP_BAD, .err = "version"},
    {M("GET / http/1.1\r\n\r\n"), .want = RT_HTTP_BAD, .err = "version"},
    {M("GET / HTTP/1.1 \r\n\r\n"), .want = RT_HTTP_BAD, .err = "version"},
    {M("GET / HTTP/1.10\r\n\r\n"), .want = RT_HTTP_BAD, .err = "version"},
    {M("GET /\r\n\r\n"), .want = RT_HTTP_BAD},
    {M("GET  / HTTP/1.1\r\n\r\n"), .want = RT_HTTP_BAD, .err = "request-target"},
    {M("GET /  HTTP/1.1\r\n\r\n"), .want = RT_HTTP_BAD, .err = "version"},
    {M("GET http://evil.example/ HTTP/1.1\r\nHost: a\r\n\r\n"), .want = RT_HTTP_BAD,
     .err = "origin-form"},
    {M("CONNECT evil.example:443 HTTP/1.1\r\n\r\n"), .want = RT_HTTP_BAD, .err = "origin-form"},
    {M("GET * HTTP/1.1\r\n\r\n"), .want = RT_HTTP_BAD, .err = "origin-form"},
    {M("options * HTTP/1.1\r\n\r\n"), .want = RT_HTTP_BAD, .err = "origin-form"},
    {M("OPTIONS *x HTTP/1.1\r\n\r\n"), .want = RT_HTTP_BAD, .err = "origin-form"},
    {M("GET /a#frag HTTP/1.1\r\n\r\n"), .want = RT_HTTP_BAD, .err = "request-target"},
    {M("GET /caf\xc3\xa9 HTTP/1.1\r\n\r\n"), .want = RT_HTTP_BAD, .err = "request-target"},
    {M("GET /a\x7f HTTP/1.1\r\n\r\n"), .want = RT_HTTP_BAD, .err = "request-target"},
    {M("\r\n\r\n \r\n\r\n"), .want = RT_HTTP_BAD},
};

static void request_table(void **state)
{
    (void)state;
    struct parser ps = {.parse = parse_req};
    for (size_t i = 0; i < sizeof(req_cases) / sizeof(req_cases[0]); i++) {
        const struct req_case *c = &req_cases[i];
        int want = c->want < 0 ? c->want : (int)(c->len - (size_t)c->want);
        check_all_ways(&ps, c->msg, c->len, want);
        const struct rt_http_request *r = &ps.req;
        const char *buf = guard_base + GUARD_SPAN - c->len;
        if (want < 0) {
            if (want == RT_HTTP_BAD) {
                assert_non_null(r->error);
                if (c->err && !strstr(r->error, c->err))
                    fail_msg("case %zu: error \"%s\", want \"%s\"", i, r->error, c->err);
            }
            continue;
        }
        assert_slice(r->method, c->method);
        assert_slice(r->target, c->target);
        assert_slice(r->path, c->path);
        assert_inside(r->method, buf, want);
        assert_inside(r->target, buf, want);
        assert_inside(r->path, buf, want);
        if (r->minor_version != c->minor || r->num_headers != c->nh)
            fail_msg("case %zu: minor %d headers %zu", i, r->minor_version, r->num_headers);
        for (size_t h = 0; h < r->num_headers; h++) {
            assert_inside(r->headers[h].name, buf, want);
            assert_inside(r->headers[h].value, buf, want);
            assert_true(r->headers[h].name.len > 0);
        }
        if (r->content_length != c->cl || r->chunked != c->chunked ||
            r->keep_alive != c->keep_alive || r->expect_continue != c->expect_continue)
            fail_msg("case %zu: cl %lld chunked %d keep_alive %d expect %d", i,
                     (long long)r->content_length, r->chunked, r->keep_alive,
                     r->expect_continue);
        assert_null(r->error);
        if (c->hname) {
            const struct rt_http_header *h =
                rt_http_find_header(r->headers, r->num_headers, rt_str_cstr(c->hname));
            assert_non_null(h);
            assert_slice(h->value, c->hvalue);
        }
    }
}

/* Builds a head of <first> and <n> headers into <out>; returns its length. */
static size_t many_headers(char *out, size_t cap, const char *first, int n)
{
    size_t len = (size_t)snprintf(out, cap, "%s\r\n", first);
    for (int i = 0; i < n; i++)
        len += (size_t)snprintf(out + len, cap - len, "X-H%d: %d\r\n", i, i);
    len += (size_t)snprintf(out + len, cap - len, "\r\n");
    assert_true(len < cap);
    return len;
}

static void header_count_limit(void **state)
{
    (void)state;
    size_t cap = 8192;
    char *msg = rt_malloc(cap);
    struct parser ps = {.parse = parse_req};

    size_t len = many_headers(msg, cap, "GET / HTTP/1.1", RT_HTTP_MAX_HEADERS);
    int r = ps.parse(&ps, at_guard(msg, len), len, 0);
    assert_int_equal(r, (int)len);
    assert_int_equal(ps.req.num_headers, RT_HTTP_MAX_HEADERS);

    len = many_headers(msg, cap, "GET / HTTP/1.1", RT_HTTP_MAX_HEADERS + 1);
    check_all_ways(&ps, msg, len, RT_HTTP_TOO_MANY_HDR);

    struct parser pr = {.parse = parse_res};
    len = many_headers(msg, cap, "HTTP/1.1 200 OK", RT_HTTP_MAX_HEADERS);
    assert_int_equal(pr.parse(&pr, at_guard(msg, len), len, 0), (int)len);
    assert_int_equal(pr.res.num_headers, RT_HTTP_MAX_HEADERS);
    len = many_headers(msg, cap, "HTTP/1.1 200 OK", RT_HTTP_MAX_HEADERS + 1);
    check_all_ways(&pr, msg, len, RT_HTTP_TOO_MANY_HDR);
    rt_free(msg);
}

static void empty_and_tiny_inputs(void **state)
{
    (void)state;
    struct rt_http_request req;
    struct rt_http_response res;
    assert_int_equal(rt_http_parse_request(NULL, 0, 0, &req), RT_HTTP_INCOMPLETE);
    assert_int_equal(rt_http_parse_response(NULL, 0, 0, false, &res), RT_HTTP_INCOMPLETE);
    /* A <last_len> larger than <len> (caller slip) must not break anything. */
    const char *m = "GET / HTTP/1.1\r\n\r\n";
    assert_int_equal(rt_http_parse_request(at_guard(m, 18), 18, 1000, &req), 18);
    assert_int_equal(rt_http_parse_request(at_guard(m, 4), 4, 1000, &req), RT_HTTP_INCOMPLETE);
}

/* Puts each byte value at each position of a long header value (and a long reason), so that the
 * vector and scalar scans both meet it: controls, DEL, CR and LF must be refused, the rest kept. */
static void every_byte_everywhere(void **state)
{
    (void)state;
    static const char pre[] = "GET / HTTP/1.1\r\nX-Long: ";
    static const char res_pre[] = "HTTP/1.1 200 ";
    char msg[128];
    struct parser ps = {.parse = parse_req};
    struct parser pr = {.parse = parse_res};
    for (int b = 0; b < 256; b++) {
        bool ok = b == '\t' || (b >= 0x20 && b != 0x7f);
        for (size_t pos = 0; pos < 40; pos++) {
            size_t n = sizeof(pre) - 1;
            memcpy(msg, pre, n);
            memset(msg + n, 'v', 40);
            msg[n + pos] = (char)b;
            memcpy(msg + n + 40, "\r\n\r\n", 4);
            size_t len = n + 44;
            int r = ps.parse(&ps, at_guard(msg, len), len, 0);
            if (ok != (r == (int)len))
                fail_msg("byte 0x%02x at %zu: got %d", b, pos, r);
            if (ok && b != ' ' && b != '\t')
                assert_int_equal(ps.req.headers[0].value.len, 40);

            n = sizeof(res_pre) - 1;
            memcpy(msg, res_pre, n);
            memset(msg + n, 'r', 40);
            msg[n + pos] = (char)b;
            memcpy(msg + n + 40, "\r\n\r\n", 4);
            len = n + 44;
            r = pr.parse(&pr, at_guard(msg, len), len, 0);
            if (ok != (r == (int)len))
                fail_msg("reason byte 0x%02x at %zu: got %d", b, pos, r);
            if (ok)
                assert_int_equal(pr.res.reason.len, 40);
        }
    }
}

/* ---- Responses ---- */

struct res_case {
    const char *msg;
    size_t len;
    int want; /* as in req_case */
    bool head_request;
    int status;
    const char *reason;
    int minor;
    size_t nh;
    int64_t cl;
    bool chunked, keep_alive;
    const char *err;
};

static const struct res_case res_cases[] = {
    {M("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"), .want = 5, .status = 200,
     .reason = "OK", .minor = 1, .nh = 1, .cl = 5, .keep_alive = true},
    {M("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: text/event-stream\r\n\r\n"),
     .status = 200, .minor = 1, .nh = 2, .cl = -1, .chunked = true, .keep_alive = true},
    {M("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\ndata: x\n\n"), .want = 9,
     .status = 200, .minor = 1, .nh = 1, .cl = -1, .keep_alive = false},
    {M("HTTP/1.1 204 No Content\r\n\r\n"), .status = 204, .reason = "No Content", .minor = 1,
     .cl = 0, .keep_alive = true},
    {M("HTTP/1.1 304 Not Modified\r\nContent-Length: 100\r\n\r\n"), .status = 304, .nh = 1,
     .minor = 1, .cl = 0, .keep_alive = true},
    {M("HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n"), .head_request = true, .status = 200,
     .nh = 1, .minor = 1, .cl = 0, .keep_alive = true},
    {M("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"), .head_request = true,
     .status = 200, .nh = 1, .minor = 1, .cl = 0, .keep_alive = true},
    {M("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n\r\n"), .want = 19, .status = 100,
     .reason = "Continue", .minor = 1, .cl = 0, .keep_alive = true},
    {M("HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n"), .status = 200, .reason = "", .minor = 1,
     .nh = 1, .cl = 0, .keep_alive = true},
    {M("HTTP/1.1 200 \r\nContent-Length: 0\r\n\r\n"), .status = 200, .reason = "",
     .minor = 1, .nh = 1, .cl = 0, .keep_alive = true},
    {M("HTTP/1.1 200\r\n\r\n"), .status = 200, .reason = "", .minor = 1, .cl = -1},
    {M("HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok"), .want = 2, .status = 200, .nh = 1,
     .minor = 0, .cl = 2, .keep_alive = false},
    {M("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\n"),
     .status = 200, .nh = 2, .minor = 0, .cl = 2, .keep_alive = true},
    {M("HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"),
     .status = 503, .reason = "Service Unavailable", .nh = 2, .minor = 1, .cl = 0,
     .keep_alive = false},
    {M("HTTP/1.1 404 Not  Found \xe9\t\r\nContent-Length: 0\r\n\r\n"), .status = 404,
     .reason = "Not  Found \xe9\t", .nh = 1, .minor = 1, .cl = 0, .keep_alive = true},
    {M("HTTP/1.1 999 Whatever\r\nContent-Length: 0\r\n\r\n"), .status = 999, .nh = 1,
     .minor = 1, .cl = 0, .keep_alive = true},

    {M("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"),
     .want = RT_HTTP_BAD, .err = "both"},
    {M("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"),
     .head_request = true, .want = RT_HTTP_BAD, .err = "both"},
    {M("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n"), .want = RT_HTTP_BAD,
     .err = "Transfer-Encoding"},
    {M("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"), .want = RT_HTTP_BAD},
    {M("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n"), .want = RT_HTTP_BAD},
    {M("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n"),
     .want = RT_HTTP_BAD, .err = "several"},
    {M("HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\n\r\n"), .want = RT_HTTP_BAD},
    {M("HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"), .want = RT_HTTP_BAD,
     .err = "HTTP/1.0"},
    {M("HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n"), .want = RT_HTTP_BAD, .err = "obs-fold"},
    {M("HTTP/1.1 200 OK\r\nX : a\r\n\r\n"), .want = RT_HTTP_BAD, .err = "whitespace"},
    {M("HTTP/1.1 200 OK\nX: a\r\n\r\n"), .want = RT_HTTP_BAD, .err = "bare LF"},
    {M("HTTP/1.1 200 O\rK\r\n\r\n"), .want = RT_HTTP_BAD, .err = "bare CR"},
    {M("HTTP/1.1 200 O\x01K\r\n\r\n"), .want = RT_HTTP_BAD},
    {M("HTTP/2.0 200 OK\r\n\r\n"), .want = RT_HTTP_BAD},
    {M("HTTP/1.2 200 OK\r\n\r\n"), .want = RT_HTTP_BAD, .err = "version"},
    {M("HTTP/1.1 20 OK\r\n\r\n"), .want = RT_HTTP_BAD, .err = "status"},
    {M("HTTP/1.1 099 OK\r\n\r\n"), .want = RT_HTTP_BAD, .err = "status"},
    {M("HTTP/1.1 2000 OK\r\n\r\n"), .want = RT_HTTP_BAD, .err = "status"},
    {M("HTTP/1.1  200 OK\r\n\r\n"), .want = RT_HTTP_BAD, .err = "status"},
    {M("HTTP/1.1 2x0 OK\r\n\r\n"), .want = RT_HTTP_BAD, .err = "status"},
    {M("HTTP/1.1\r\n\r\n"), .want = RT_HTTP_BAD},
    {M("ICY 200 OK\r\n\r\n"), .want = RT_HTTP_BAD},
    {M("\r\nHTTP/1.1 200 OK\r\n\r\n"), .want = RT_HTTP_BAD},
};

static void response_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(res_cases) / sizeof(res_cases[0]); i++) {
        const struct res_case *c = &res_cases[i];
        struct parser ps = {.parse = parse_res, .head_request = c->head_request};
        int want = c->want < 0 ? c->want : (int)(c->len - (size_t)c->want);
        check_all_ways(&ps, c->msg, c->len, want);
        const struct rt_http_response *r = &ps.res;
        const char *buf = guard_base + GUARD_SPAN - c->len;
        if (want < 0) {
            assert_non_null(r->error);
            if (c->err && !strstr(r->error, c->err))
                fail_msg("case %zu: error \"%s\", want \"%s\"", i, r->error, c->err);
            continue;
        }
        assert_int_equal(r->status, c->status);
        assert_slice(r->reason, c->reason);
        assert_inside(r->reason, buf, want);
        assert_int_equal(r->minor_version, c->minor);
        assert_int_equal(r->num_headers, c->nh);
        for (size_t h = 0; h < r->num_headers; h++) {
            assert_inside(r->headers[h].name, buf, want);
            assert_inside(r->headers[h].value, buf, want);
        }
        if (r->content_length != c->cl || r->chunked != c->chunked ||
            r->keep_alive != c->keep_alive)
            fail_msg("case %zu: cl %lld chunked %d keep_alive %d", i,
                     (long long)r->content_length, r->chunked, r->keep_alive);
        assert_null(r->error);
    }
}

/* ---- Chunked bodies ---- */

/* Decodes <in> fed in pieces of <step> bytes (after a first piece of <first> bytes when
 * non-zero), each piece copied right before the guard page. Appends body bytes to <out>.
 * Returns 1 when done, 0 when input ran out first, RT_HTTP_BAD on error; *<used> gets the
 * number of input bytes consumed. */
static int decode(const char *in, size_t len, size_t first, size_t step, char *out,
                  size_t *out_len, size_t *used)
{
    struct rt_http_chunked dec = {0};
    size_t off = 0;
    *out_len = 0;
    *used = 0;
    while (off < len) {
        size_t n = first ? first : step;
        first = 0;
        if (n > len - off)
            n = len - off;
        const char *seg = at_guard(in + off, n);
        size_t pos = 0;
        while (pos < n && !dec.done) {
            struct rt_str d;
            ssize_t r = rt_http_chunked_feed(&dec, seg + pos, n - pos, &d);
            if (r < 0)
                return (int)r;
            assert_true(r > 0); /* progress whenever there is input and not done */
            assert_true((size_t)r <= n - pos);
            assert_true(d.ptr >= seg + pos && d.ptr + d.len <= seg + pos + (size_t)r);
            memcpy(out + *out_len, d.ptr, d.len);
            *out_len += d.len;
            pos += (size_t)r;
        }
        off += pos;
        *used = off;
        if (dec.done) {
            struct rt_str d;
            assert_int_equal(rt_http_chunked_feed(&dec, "x", 1, &d), 0);
            return 1;
        }
    }
    return 0;
}

struct chunk_case {
    const char *msg;
    size_t len;
    int want;         /* 1 done, 0 needs more, RT_HTTP_BAD */
    const char *body; /* decoded body when want >= 0 */
    size_t tail;      /* bytes after the chunked body, left unconsumed */
};

static const struct chunk_case chunk_cases[] = {
    {M("5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"), 1, "hello world", 0},
    {M("0\r\n\r\n"), 1, ""},
    {M("5\r\nhello\r\n0\r\n\r\nGET / HTTP/1.1\r\n\r\n"), 1, "hello", 18},
    {M("A\r\n0123456789\r\na\r\nabcdefghij\r\n0\r\n\r\n"), 1, "0123456789abcdefghij"},
    {M("0005\r\nhello\r\n000\r\n\r\n"), 1, "hello"},
    {M("5;name=value;x=\"q;uoted\"\r\nhello\r\n0;last\r\n\r\n"), 1, "hello"},
    {M("5 ;ext\r\nhello\r\n0\t; e\r\n\r\n"), 1, "hello"},
    {M("5;caf\xc3\xa9\r\nhello\r\n0\r\n\r\n"), 1, "hello"},
    {M("3\r\nabc\r\n0\r\nX-Checksum: abc\r\nY:\r\n\r\n"), 1, "abc"},
    {M("3\r\na\r\n\r\n0\r\n\r\n"), 1, "a\r\n"},
    {M("5\r\nhello\r\n"), 0, "hello"},
    {M("5\r\nhel"), 0, "hel"},
    {M("7fffffffffffffff\r\n"), 0, ""},

    {M("\r\n"), RT_HTTP_BAD},
    {M("g\r\n"), RT_HTTP_BAD},
    {M("-5\r\nhello\r\n"), RT_HTTP_BAD},
    {M("0x5\r\nhello\r\n"), RT_HTTP_BAD},
    {M(" 5\r\nhello\r\n"), RT_HTTP_BAD},
    {M("5 \r\nhello\r\n"), RT_HTTP_BAD},
    {M("00000000000000005\r\nhello\r\n"), RT_HTTP_BAD},
    {M("ffffffffffffffff\r\n"), RT_HTTP_BAD},
    {M("8000000000000000\r\n"), RT_HTTP_BAD},
    {M("1000000000000000000\r\n"), RT_HTTP_BAD},
    {M("5\r\nhelloX\r\n0\r\n\r\n"), RT_HTTP_BAD},
    {M("5\r\nhello\n0\r\n\r\n"), RT_HTTP_BAD},
    {M("5\r\nhello\r0\r\n\r\n"), RT_HTTP_BAD},
    {M("5\nhello\r\n0\r\n\r\n"), RT_HTTP_BAD},
    {M("5\rxhello\r\n0\r\n\r\n"), RT_HTTP_BAD},
    {M("5;a\x01b\r\nhello\r\n0\r\n\r\n"), RT_HTTP_BAD},
    {M("5;a\nb\r\nhello\r\n0\r\n\r\n"), RT_HTTP_BAD},
    {M("5;a\0b\r\nhello\r\n0\r\n\r\n"), RT_HTTP_BAD},
    {M("0\r\nX: a\r\n b\r\n\r\n"), RT_HTTP_BAD},
    {M("0\r\nX: a\n\r\n"), RT_HTTP_BAD},
    {M("0\r\nX : a\r\n\r\n"), RT_HTTP_BAD},
    {M("0\r\n: a\r\n\r\n"), RT_HTTP_BAD},
    {M("0\r\nX: a\0\r\n\r\n"), RT_HTTP_BAD},
    {M("0\r\n\n"), RT_HTTP_BAD},
    {M("0\r\n\r\r"), RT_HTTP_BAD},
};

/* Runs one case whole, byte by byte, and split in two at every position. */
static void check_chunked(const char *msg, size_t len, int want, const char *body, size_t tail)
{
    char *out = rt_malloc(len + 1);
    size_t out_len, used;
    size_t ways[][2] = {{0, len}, {0, 1}, {0, 2}, {0, 3}, {0, 7}};
    for (size_t w = 0; w < sizeof(ways) / sizeof(ways[0]) + len; w++) {
        size_t first = w < 5 ? ways[w][0] : w - 5;
        size_t step = w < 5 ? ways[w][1] : len;
        if (w >= 5 && first == 0)
            continue;
        int r = decode(msg, len, first, step ? step : 1, out, &out_len, &used);
        if (r != want)
            fail_msg("\"%.*s\" first %zu step %zu: got %d, want %d", (int)len, msg, first,
                     step, r, want);
        if (want < 0)
            continue;
        assert_int_equal(used, len - tail);
        if (out_len != strlen(body) || memcmp(out, body, out_len) != 0)
            fail_msg("\"%.*s\": body \"%.*s\", want \"%s\"", (int)len, msg, (int)out_len, out,
                     body);
    }
    rt_free(out);
}

static void chunked_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(chunk_cases) / sizeof(chunk_cases[0]); i++) {
        const struct chunk_case *c = &chunk_cases[i];
        check_chunked(c->msg, c->len, c->want, c->body, c->tail);
    }
}

static void chunked_one_slice_per_call(void **state)
{
    (void)state;
    const char *m = "3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
    struct rt_http_chunked dec = {0};
    struct rt_str d;
    const char *buf = at_guard(m, strlen(m));
    ssize_t r = rt_http_chunked_feed(&dec, buf, strlen(m), &d);
    /* Stops at the second chunk's data, having passed its size line. */
    assert_int_equal(r, 11);
    assert_slice(d, "abc");
    assert_int_equal(dec.remaining, 2);
    r = rt_http_chunked_feed(&dec, buf + 11, strlen(m) - 11, &d);
    assert_int_equal(r, (ssize_t)strlen(m) - 11);
    assert_slice(d, "de");
    assert_true(dec.done);
    /* Errors are sticky. */
    struct rt_http_chunked bad = {0};
    assert_int_equal(rt_http_chunked_feed(&bad, at_guard("z", 1), 1, &d), RT_HTTP_BAD);
    assert_int_equal(rt_http_chunked_feed(&bad, at_guard("0\r\n\r\n", 5), 5, &d), RT_HTTP_BAD);
}

static void chunked_limits(void **state)
{
    (void)state;
    size_t cap = 3 * RT_HTTP_MAX_TRAILER;
    char *m = rt_malloc(cap);
    char *out = rt_malloc(cap);
    size_t out_len, used;

    /* A trailer section just under the cap passes; one over it fails. */
    for (int over = 0; over <= 1; over++) {
        size_t len = (size_t)snprintf(m, cap, "1\r\nz\r\n0\r\nX: ");
        size_t value = RT_HTTP_MAX_TRAILER - 7 + (size_t)over; /* "X: " CRLF CRLF = 7 */
        memset(m + len, 'a', value);
        len += value;
        memcpy(m + len, "\r\n\r\n", 4);
        len += 4;
        int r = decode(m, len, 0, len, out, &out_len, &used);
        assert_int_equal(r, over ? RT_HTTP_BAD : 1);
        assert_int_equal(decode(m, len, 0, 1000, out, &out_len, &used), over ? RT_HTTP_BAD : 1);
    }
    /* Many small trailer lines add up too. */
    size_t len = (size_t)snprintf(m, cap, "0\r\n");
    while (len < 2 * RT_HTTP_MAX_TRAILER)
        len += (size_t)snprintf(m + len, cap - len, "X-T: v\r\n");
    len += (size_t)snprintf(m + len, cap - len, "\r\n");
    assert_int_equal(decode(m, len, 0, 64, out, &out_len, &used), RT_HTTP_BAD);

    /* Chunk extensions are capped per size line. */
    len = (size_t)snprintf(m, cap, "1;");
    memset(m + len, 'e', RT_HTTP_MAX_SIZE_LINE);
    len += RT_HTTP_MAX_SIZE_LINE;
    len += (size_t)snprintf(m + len, cap - len, "\r\nz\r\n0\r\n\r\n");
    assert_int_equal(decode(m, len, 0, 100, out, &out_len, &used), RT_HTTP_BAD);
    len = (size_t)snprintf(m, cap, "1;");
    memset(m + len, 'e', 100);
    len += 100;
    len += (size_t)snprintf(m + len, cap - len, "\r\nz\r\n0\r\n\r\n");
    assert_int_equal(decode(m, len, 0, 100, out, &out_len, &used), 1);
    assert_int_equal(out_len, 1);

    /* A large chunk streamed in pieces comes out intact, one slice per call. */
    len = (size_t)snprintf(m, cap, "%x\r\n", 10000);
    for (int i = 0; i < 10000; i++)
        m[len++] = (char)('a' + i % 26);
    len += (size_t)snprintf(m + len, cap - len, "\r\n0\r\n\r\n");
    assert_int_equal(decode(m, len, 0, 777, out, &out_len, &used), 1);
    assert_int_equal(out_len, 10000);
    assert_int_equal(out[9999], 'a' + 9999 % 26);
    assert_int_equal(used, len);
    rt_free(m);
    rt_free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(request_table),
        cmocka_unit_test(header_count_limit),
        cmocka_unit_test(empty_and_tiny_inputs),
        cmocka_unit_test(every_byte_everywhere),
        cmocka_unit_test(response_table),
        cmocka_unit_test(chunked_table),
        cmocka_unit_test(chunked_one_slice_per_call),
        cmocka_unit_test(chunked_limits),
    };
    return cmocka_run_group_tests(tests, guard_setup, guard_teardown);
}
