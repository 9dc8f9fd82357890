/* libFuzzer target for rt_http_chunked_feed: never crash, data slices lie inside what was fed,
 * and feeding the input whole, in pieces or byte by byte gives the same body and verdict. */
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

struct outcome {
    int verdict;     /* 1 done, 0 input ran out, RT_HTTP_BAD */
    size_t consumed; /* input bytes consumed (up to the error for BAD) */
    char *body;      /* decoded bytes, <= input size */
    size_t body_len;
};

/* Decodes <data> in pieces of <step> bytes, each an exact-size heap copy so overreads show. */
static void decode(const uint8_t *data, size_t size, size_t step, struct outcome *o)
{
    struct rt_http_chunked dec = {0};
    o->verdict = 0;
    o->consumed = 0;
    o->body_len = 0;
    size_t off = 0;
    while (off < size && !dec.done) {
        size_t n = size - off < step ? size - off : step;
        char *piece = rt_malloc(n);
        memcpy(piece, data + off, n);
        size_t pos = 0;
        while (pos < n && !dec.done) {
            struct rt_str d;
            ssize_t r = rt_http_chunked_feed(&dec, piece + pos, n - pos, &d);
            if (r == RT_HTTP_BAD) {
                o->verdict = RT_HTTP_BAD;
                rt_free(piece);
                return;
            }
            check(r > 0 && (size_t)r <= n - pos);
            check(d.ptr >= piece + pos && d.ptr + d.len <= piece + pos + (size_t)r);
            check(o->body_len + d.len <= size);
            memcpy(o->body + o->body_len, d.ptr, d.len);
            o->body_len += d.len;
            pos += (size_t)r;
        }
        rt_free(piece);
        off += pos;
        o->consumed = off;
    }
    o->verdict = dec.done ? 1 : 0;
    if (dec.done) {
        struct rt_str d;
        check(rt_http_chunked_feed(&dec, "0", 1, &d) == 0);
    }
}

static void check_same(const struct outcome *a, const struct outcome *b)
{
    check(a->verdict == b->verdict);
    if (a->verdict == RT_HTTP_BAD)
        return;
    check(a->consumed == b->consumed);
    check(a->body_len == b->body_len && memcmp(a->body, b->body, a->body_len) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct outcome whole = {.body = rt_malloc(size + 1)};
    struct outcome parts = {.body = rt_malloc(size + 1)};
    decode(data, size, size ? size : 1, &whole);
    if (whole.verdict >= 0)
        check(whole.consumed <= size);
    size_t step = 1 + (size ? data[0] % 13 : 0);
    decode(data, size, step, &parts);
    check_same(&whole, &parts);
    if (size <= 1024) { /* byte by byte: keep it cheap */
        decode(data, size, 1, &parts);
        check_same(&whole, &parts);
    }
    rt_free(whole.body);
    rt_free(parts.body);
    return 0;
}
