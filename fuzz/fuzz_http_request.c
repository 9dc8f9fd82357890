/* libFuzzer target for rt_http_parse_request: never crash, slices stay inside the head, and the
 * verdict does not depend on how the bytes arrived (split in two, with <last_len>). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "http1_parser.h"

static void check(bool ok)
{
    if (!ok)
        abort();
}

static void check_inside(struct rt_str s, const char *buf, int head)
{
    check(s.ptr >= buf && s.ptr + s.len <= buf + head);
}

/* Invariants of one result <r> of parsing <buf>[0, <len>). */
static void check_result(int r, const struct rt_http_request *req, const char *buf, size_t len)
{
    check(r > 0 || r == RT_HTTP_BAD || r == RT_HTTP_INCOMPLETE || r == RT_HTTP_TOO_MANY_HDR);
    if (r == RT_HTTP_BAD)
        check(req->error != NULL);
    if (r <= 0)
        return;
    check((size_t)r <= len && r >= 16); /* "A / HTTP/1.1\r\n\r\n" is the shortest head */
    check(memcmp(buf + r - 4, "\r\n\r\n", 4) == 0);
    check(req->error == NULL);
    check(req->minor_version == 0 || req->minor_version == 1);
    check(req->method.len > 0 && req->target.len > 0 && req->path.len <= req->target.len);
    check_inside(req->method, buf, r);
    check_inside(req->target, buf, r);
    check_inside(req->path, buf, r);
    check(req->target.ptr[0] == '/' || (req->target.len == 1 && req->target.ptr[0] == '*'));
    check(req->num_headers <= RT_HTTP_MAX_HEADERS);
    for (size_t i = 0; i < req->num_headers; i++) {
        const struct rt_http_header *h = &req->headers[i];
        check(h->name.len > 0);
        check_inside(h->name, buf, r);
        check_inside(h->value, buf, r);
        check(memchr(h->value.ptr, '\r', h->value.len) == NULL);
        check(memchr(h->value.ptr, '\n', h->value.len) == NULL);
        if (h->value.len)
            check(h->value.ptr[0] != ' ' && h->value.ptr[h->value.len - 1] != ' ');
    }
    check(req->content_length >= -1);
    check(!(req->chunked && req->content_length >= 0));
    check(!(req->chunked && req->minor_version == 0));
}

/* Parses an exact-size heap copy of <data>[0, <n>) so ASan sees any overread. */
static int parse_copy(const uint8_t *data, size_t n, size_t last_len,
                      struct rt_http_request *req)
{
    char *copy = rt_malloc(n ? n : 1);
    memcpy(copy, data, n);
    int r = rt_http_parse_request(copy, n, last_len, req);
    rt_free(copy);
    return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *buf = (const char *)data;
    struct rt_http_request *req = rt_malloc(sizeof(*req));
    struct rt_http_request *req2 = rt_malloc(sizeof(*req2));
    int r = rt_http_parse_request(buf, size, 0, req);
    check_result(r, req, buf, size);

    /* The same bytes in two deliveries: the first part alone, then all of it. */
    size_t splits[2] = {size / 2, size ? (size_t)data[size - 1] % size : 0};
    for (int s = 0; s < 2; s++) {
        size_t k = splits[s];
        int r1 = parse_copy(data, k, 0, req2);
        if (r1 != RT_HTTP_INCOMPLETE) {
            check(r1 == r); /* a verdict on a prefix is final */
            continue;
        }
        int r2 = rt_http_parse_request(buf, size, k, req2);
        check(r2 == r);
        if (r > 0) {
            check(req2->num_headers == req->num_headers);
            check(req2->content_length == req->content_length);
            check(req2->chunked == req->chunked && req2->keep_alive == req->keep_alive);
            check(rt_str_eq(req2->target, req->target));
        }
    }
    rt_free(req);
    rt_free(req2);
    return 0;
}
