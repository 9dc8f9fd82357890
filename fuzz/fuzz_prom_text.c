/* libFuzzer target for prom_text.c and load_signals.c: arbitrary bytes as a /metrics page. */
#include <assert.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "alloc.h"
#include "load_signals.h"
#include "prom_text.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* An exact-size copy, so any read past the end is caught. */
    char *page = rt_malloc(size ? size : 1);
    if (size)
        memcpy(page, data, size);

    struct rt_prom_parser p;
    struct rt_prom_sample s;
    int r;
    size_t last_line = 0;
    rt_prom_init(&p, page, size);
    while ((r = rt_prom_next(&p, &s)) == 1) {
        assert(s.line > last_line);
        last_line = s.line;
        assert(s.name.len > 0 && s.name.ptr >= page && s.name.ptr + s.name.len <= page + size);
        assert(s.num_labels <= RT_PROM_MAX_LABELS);
        for (size_t k = 0; k < s.num_labels; k++) {
            struct rt_str v = s.labels[k].value;
            assert(v.len == 0 || (v.ptr >= page && v.ptr + v.len <= page + size));
            char buf[256];
            long n = rt_prom_value_unescape(v, buf, sizeof buf);
            /* A decoded value is never longer than its escaped form and reads back equal. */
            assert(n <= (long)v.len);
            if (n >= 0)
                assert(rt_prom_value_eq(v, rt_str_make(buf, (size_t)n)));
        }
    }
    assert(r == 0 || (r == RT_PROM_EBAD && p.error && p.error_line >= 1));

    struct rt_load_signals ls;
    char err[256];
    if (rt_load_signals_parse(page, size, &ls, err, sizeof err) == 0) {
        assert(r == 0); /* a page the parser refuses never yields signals */
        assert(ls.present != 0);
        assert(ls.num_requests_running >= 0 && isfinite(ls.num_requests_running));
        assert(ls.num_requests_waiting >= 0 && isfinite(ls.num_requests_waiting));
        assert(ls.kv_cache_usage_perc >= 0 && ls.kv_cache_usage_perc <= 100);
    } else {
        assert(err[0] != '\0' && ls.present == 0);
    }
    rt_free(page);
    return 0;
}
