/* The router's own Prometheus metrics: per-thread counters and histograms, merged on read into
 * the /metrics page (text format 0.0.4, every name prefixed vllm_router_).
 *
 * Threads: the counters live in shards, one per worker thread (index 0..nworkers-1) plus one for
 * the control thread (index nworkers). Each shard has its own mutex, so a thread recording into its
 * own shard never waits (the render takes the shards' mutexes one at a time, briefly). Recording
 * into another thread's shard is correct, only slower; an out-of-range shard means the control
 * shard. rt_metrics_init and rt_metrics_shutdown must not run concurrently with anything else.
 *
 * Cardinality: label values that come from clients (model, endpoint) or from the configuration
 * (server, reasons) are cut to a fixed length and made valid UTF-8 before they become a series,
 * and each shard keeps at most RT_METRICS_MAX_SERIES request series; past that a new tuple is
 * counted with model="other" (and, past a small reserve, server and endpoint "other" as well).
 *
 * Ownership: all strings passed in are read during the call only; the metrics copy what they keep
 * (once per new series: recording into an existing series allocates nothing). */
#ifndef RT_METRICS_H
#define RT_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "str.h"

#define RT_METRICS_MAX_SERIES    10000 /* (server,model,endpoint,status) series per shard */
#define RT_METRICS_MAX_ENDPOINTS 64    /* distinct endpoints per shard (histograms) */
#define RT_METRICS_MAX_REASONS   64    /* distinct retry / rejection reasons per shard */
#define RT_METRICS_MAX_SERVERS   1024  /* distinct servers for scrape errors per shard */
#define RT_METRICS_MAX_MODEL_LEN 128   /* bytes of a model name kept (longer ones are cut) */
#define RT_METRICS_MAX_LABEL_LEN 256   /* bytes kept of other label values */

/* Shards: one per worker thread (index 0..nworkers-1) plus one for the control thread
 * (index nworkers). Calling init again first shuts the previous state down. */
void rt_metrics_init(unsigned nworkers);
/* Frees everything; recording afterwards is ignored until the next init. */
void rt_metrics_shutdown(void);
unsigned rt_metrics_control_shard(void); /* == nworkers */

/* One finished request, as the proxy saw it. */
struct rt_metrics_request {
    const char *endpoint; /* path, e.g. "/v1/chat/completions" */
    struct rt_str model;  /* may be empty */
    const char *server;   /* URL of the backend that answered, or NULL (router-made answer) */
    int status;           /* HTTP status sent (499 = client left before the answer) */
    double duration_s;
    double ttfb_s; /* < 0: no byte was sent */
    unsigned retries;
    int64_t prompt_tokens, completion_tokens; /* -1 unknown */
    double queue_wait_s;                      /* < 0: not queued */
};

/* Records one request into shard <shard>: requests_total, the duration and time-to-first-byte
 * histograms, the token counters (when known) and the queue wait histogram (when queued). */
void rt_metrics_request(unsigned shard, const struct rt_metrics_request *m);
/* One retry, by <reason>: "connect", "reset", "timeout", "status_429", "status_502",
 * "status_503", "status_504", ... */
void rt_metrics_retry(unsigned shard, const char *reason);
/* One request refused by the admission queue: "queue_full", "queue_timeout". */
void rt_metrics_queue_rejected(unsigned shard, const char *reason);
/* One failed scrape of <server>'s /metrics. */
void rt_metrics_scrape_error(unsigned shard, const char *server);
/* One configuration reload, by result. */
void rt_metrics_reload(unsigned shard, bool ok);

/* The exposition text (Prometheus text 0.0.4), allocated with rt_malloc (the caller frees it
 * with rt_free; NUL-terminated), *<len> its length. Merges the shards, adds per-backend gauges
 * read from the current fleet view (src/fleet.h), <queued> (requests in the admission queue) as
 * queue_length, and build info. Any thread, after rt_fleet_init; before rt_metrics_init the page
 * has the gauges and empty families only. */
char *rt_metrics_render(size_t queued, size_t *len);

#endif
