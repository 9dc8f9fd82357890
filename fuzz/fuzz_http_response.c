/* libFuzzer target for rt_http_parse_response: never crash, slices stay inside the head, framing
 * is coherent, and the verdict does not depend on how the bytes arrived. */
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

static void check_result(int r, const struct rt_http_response *res, bool head_request,
                         const char *buf, size_t len)
{
    check(r > 0 || r == RT_HTTP_BAD || r == RT_HTTP_INCOMPLETE || r == RT_HTTP_TOO_MANY_HDR);
    if (r == RT_HTTP_BAD)
        check(res->error != NULL);
    if (r <= 0)
        return;
    check((size_t)r <= len && r >= 16);
    check(memcmp(buf + r - 4, "\r\n\r\n", 4) == 0);
    check(res->error == NULL);
    check(res->minor_version == 0 || res->minor_version == 1);
    check(res->status >= 100 && res->status <= 999);
    check_inside(res->reason, buf, r);
    check(res->num_headers <= RT_HTTP_MAX_HEADERS);
    for (size_t i = 0; i < res->num_headers; i++) {
        check(res->headers[i].name.len > 0);
        check_inside(res->headers[i].name, buf, r);
        check_inside(res->headers[i].value, buf, r);
    }
    check(res->content_length >= -1);
    check(!(res->chunked && res->content_length >= 0));
    bool no_body = head_request || res->status < 200 || res->status == 204 || res->status == 304;
    if (no_body)
        check(res->content_length == 0 && !res->chunked);
    if (!res->chunked && res->content_length < 0)
        check(!res->keep_alive); /* delimited by close */
}

static int parse_copy(const uint8_t *data, size_t n, size_t last_len, bool head_request,
                      struct rt_http_response *res)
{
    char *copy = rt_malloc(n ? n : 1);
    memcpy(copy, data, n);
    int r = rt_http_parse_response(copy, n, last_len, head_request, res);
    rt_free(copy);
    return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *buf = (const char *)data;
    struct rt_http_response *res = rt_malloc(sizeof(*res));
    struct rt_http_response *res2 = rt_malloc(sizeof(*res2));
    for (int head = 0; head <= 1; head++) {
        int r = rt_http_parse_response(buf, size, 0, head, res);
        check_result(r, res, head, buf, size);
        size_t splits[2] = {size / 2, size ? (size_t)data[size - 1] % size : 0};
        for (int s = 0; s < 2; s++) {
            size_t k = splits[s];
            int r1 = parse_copy(data, k, 0, head, res2);
            if (r1 != RT_HTTP_INCOMPLETE) {
                check(r1 == r);
                continue;
            }
            int r2 = rt_http_parse_response(buf, size, k, head, res2);
            check(r2 == r);
            if (r > 0)
                check(res2->status == res->status &&
                      res2->content_length == res->content_length &&
                      res2->chunked == res->chunked && res2->keep_alive == res->keep_alive);
        }
    }
    rt_free(res);
    rt_free(res2);
    return 0;
}
