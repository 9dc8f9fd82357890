/* Incremental SSE line reader and JSON key scanner for the load generator (see bench_sse.h). */
#include "bench_sse.h"

#include <string.h>

void rt_bench_sse_init(struct rt_bench_sse *s)
{
    memset(s, 0, sizeof(*s));
    s->prompt_tokens = -1;
    s->completion_tokens = -1;
}

void rt_bench_sse_reset(struct rt_bench_sse *s)
{
    struct rt_buf keep = s->line;
    rt_buf_reset(&keep);
    rt_bench_sse_init(s);
    s->line = keep;
}

void rt_bench_sse_free(struct rt_bench_sse *s)
{
    rt_buf_free(&s->line);
    rt_bench_sse_init(s);
}

static bool is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Index just past the string starting at p[i] == '"', or n when it is unterminated. */
static size_t skip_string(const char *p, size_t i, size_t n)
{
    for (i++; i < n; i++) {
        if (p[i] == '\\')
            i++;
        else if (p[i] == '"')
            return i + 1;
    }
    return n;
}

static int64_t read_uint(const char *p, size_t i, size_t n)
{
    if (i >= n || p[i] < '0' || p[i] > '9')
        return -1;
    int64_t v = 0;
    for (; i < n && p[i] >= '0' && p[i] <= '9'; i++) {
        if (v > (INT64_MAX - 9) / 10)
            return -1;
        v = v * 10 + (p[i] - '0');
    }
    return v;
}

static bool key_is(const char *p, size_t start, size_t end, const char *lit)
{
    /* <start> and <end> bound the key's characters inside the quotes. */
    size_t n = strlen(lit);
    return end - start == n && memcmp(p + start, lit, n) == 0;
}

void rt_bench_scan_json(struct rt_str json, struct rt_bench_scan *out)
{
    const char *p = json.ptr;
    size_t n = json.len;
    out->content = false;
    out->error = false;
    out->prompt_tokens = -1;
    out->completion_tokens = -1;
    int depth = 0;
    size_t i = 0;
    while (i < n) {
        char c = p[i];
        if (c == '{' || c == '[') {
            depth++;
            i++;
            continue;
        }
        if (c == '}' || c == ']') {
            depth--;
            i++;
            continue;
        }
        if (c != '"') {
            i++;
            continue;
        }
        size_t kstart = i + 1;
        size_t j = skip_string(p, i, n);
        if (j >= n)
            return;
        size_t kend = j - 1;
        while (j < n && is_ws(p[j]))
            j++;
        if (j >= n || p[j] != ':') {
            i = j; /* a string value */
            continue;
        }
        /* A key: look at its value. */
        j++;
        while (j < n && is_ws(p[j]))
            j++;
        if (key_is(p, kstart, kend, "content") || key_is(p, kstart, kend, "text") ||
            key_is(p, kstart, kend, "reasoning_content")) {
            if (j + 1 < n && p[j] == '"' && p[j + 1] != '"')
                out->content = true;
        } else if (key_is(p, kstart, kend, "completion_tokens")) {
            out->completion_tokens = read_uint(p, j, n);
        } else if (key_is(p, kstart, kend, "prompt_tokens")) {
            out->prompt_tokens = read_uint(p, j, n);
        } else if (depth == 1 && key_is(p, kstart, kend, "error")) {
            out->error = true;
        } else if (depth == 1 && key_is(p, kstart, kend, "object")) {
            if (n - j >= 7 && memcmp(p + j, "\"error\"", 7) == 0)
                out->error = true;
        }
        i = j;
    }
}

/* Handles one complete line (without its line end). Returns 1 for a content event, else 0. */
static int line(struct rt_bench_sse *s, const char *p, size_t n)
{
    if (n && p[n - 1] == '\r')
        n--;
    if (n < 5 || memcmp(p, "data:", 5) != 0)
        return 0; /* blank line, comment, or a field we don't use */
    p += 5;
    n -= 5;
    if (n && p[0] == ' ') {
        p++;
        n--;
    }
    if (s->done) {
        s->after_done = true;
        return 0;
    }
    if (n == 6 && memcmp(p, "[DONE]", 6) == 0) {
        s->done = true;
        return 0;
    }
    struct rt_bench_scan sc;
    rt_bench_scan_json(rt_str_make(p, n), &sc);
    if (sc.error)
        s->error = true;
    if (sc.prompt_tokens >= 0)
        s->prompt_tokens = sc.prompt_tokens;
    if (sc.completion_tokens >= 0)
        s->completion_tokens = sc.completion_tokens;
    if (sc.content && !sc.error) {
        s->content_events++;
        return 1;
    }
    return 0;
}

int rt_bench_sse_feed(struct rt_bench_sse *s, const char *data, size_t len)
{
    if (s->bad)
        return -1;
    int events = 0;
    size_t i = 0;
    if (rt_buf_size(&s->line)) {
        /* Finish the carried line first. */
        const char *nl = memchr(data, '\n', len);
        size_t take = nl ? (size_t)(nl - data) : len;
        if (rt_buf_append(&s->line, data, take, RT_BENCH_SSE_MAX_LINE) != 0) {
            s->bad = true;
            return -1;
        }
        if (!nl)
            return 0;
        events += line(s, rt_buf_data(&s->line), rt_buf_size(&s->line));
        rt_buf_reset(&s->line);
        i = take + 1;
    }
    while (i < len) {
        const char *nl = memchr(data + i, '\n', len - i);
        if (!nl) {
            if (rt_buf_append(&s->line, data + i, len - i, RT_BENCH_SSE_MAX_LINE) != 0) {
                s->bad = true;
                return -1;
            }
            break;
        }
        size_t end = (size_t)(nl - data);
        if (end - i > RT_BENCH_SSE_MAX_LINE) {
            s->bad = true;
            return -1;
        }
        events += line(s, data + i, end - i);
        i = end + 1;
    }
    return events;
}
