/* libFuzzer target: the load generator's SSE scanner, fed whole and split at a byte chosen from
 * the input, must never crash and must count the same content events both ways. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "bench_sse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct rt_bench_sse a, b;
    rt_bench_sse_init(&a);
    rt_bench_sse_init(&b);
    const char *p = (const char *)data;
    int whole = rt_bench_sse_feed(&a, p, size);
    size_t cut = size ? data[0] % (size + 1) : 0;
    int x = rt_bench_sse_feed(&b, p, cut);
    int y = x < 0 ? -1 : rt_bench_sse_feed(&b, p + cut, size - cut);
    if (whole >= 0 && x >= 0 && y >= 0 &&
        (whole != x + y || a.done != b.done || a.error != b.error ||
         a.completion_tokens != b.completion_tokens))
        abort();
    struct rt_bench_scan sc;
    rt_bench_scan_json((struct rt_str){p, size}, &sc);
    rt_bench_sse_free(&a);
    rt_bench_sse_free(&b);
    return 0;
}
