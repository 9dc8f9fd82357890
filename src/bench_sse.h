/* An incremental scanner for OpenAI-style server-sent event streams, built for the load
 * generator's hot path: it reads `data:` lines as bytes arrive (split anywhere), and from each
 * JSON payload picks out only what a benchmark needs (does it carry content, the usage counts,
 * is it an error event) by scanning for keys, without building a JSON tree or allocating per
 * event. Complete lines are scanned in place; only a trailing partial line is copied.
 *
 * Each `data:` line is one payload (vLLM and the OpenAI API never split a payload over several
 * data lines); comment lines, other fields and blank lines are skipped. A struct rt_bench_sse
 * owns its partial-line buffer; reset it to reuse the buffer for the next response. */
#ifndef RT_BENCH_SSE_H
#define RT_BENCH_SSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "str.h"

#define RT_BENCH_SSE_MAX_LINE (1u << 20) /* a longer line is a protocol error */

/* What one JSON payload says. */
struct rt_bench_scan {
    bool content;              /* a non-empty "content", "reasoning_content" or "text" string */
    bool error;                /* a top-level "error" key, or "object": "error" */
    int64_t prompt_tokens;     /* from a "prompt_tokens" number; -1 when absent */
    int64_t completion_tokens; /* from a "completion_tokens" number; -1 when absent */
};

struct rt_bench_sse {
    struct rt_buf line;        /* owned: the partial line carried between feeds */
    bool done;                 /* "data: [DONE]" seen */
    bool error;                /* an error event seen */
    bool bad;                  /* a line over the cap: the stream is unusable */
    bool after_done;           /* a data payload came after [DONE] */
    int64_t prompt_tokens;     /* last usage seen, -1 before */
    int64_t completion_tokens; /* last usage seen, -1 before */
    uint64_t content_events;   /* events that carried content */
};

/* Zero-fills and sets the counters to "none". */
void rt_bench_sse_init(struct rt_bench_sse *s);
/* Forgets the previous stream, keeping the buffer's memory. */
void rt_bench_sse_reset(struct rt_bench_sse *s);
void rt_bench_sse_free(struct rt_bench_sse *s);

/* Feeds <len> bytes of the stream. Returns the number of content events completed by these
 * bytes (>= 0), or -1 once the stream is unusable (s->bad). */
int rt_bench_sse_feed(struct rt_bench_sse *s, const char *data, size_t len);

/* Scans one JSON text for the fields above (also used on non-streamed response bodies).
 * Never fails: text that is not JSON just yields nothing. */
void rt_bench_scan_json(struct rt_str json, struct rt_bench_scan *out);

#endif
