/* The load generator's engine: drives requests at a fixed concurrency or at Poisson arrivals
 * against one OpenAI-compatible server over keep-alive HTTP/1.1 connections on one libuv loop,
 * timing each streamed response (TTFT, every inter-token gap, end to end) into a
 * struct rt_bench_stats. Used by 'vllm-router bench' (bench_main.c). */
#ifndef RT_BENCH_RUN_H
#define RT_BENCH_RUN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "bench_data.h"
#include "bench_stats.h"

struct rt_bench_conf {
    /* Where: parsed from --base-url by rt_bench_parse_url. */
    char host[256];           /* as written in the URL (brackets stripped for IPv6) */
    int port;
    char prefix[256];         /* path before /v1/..., without a trailing slash; may be "" */
    char path[512];           /* request path: prefix + /v1/chat/completions or /v1/completions */
    enum rt_bench_endpoint endpoint;
    const char *model;        /* NULL: ask GET <prefix>/v1/models and use the first */
    bool stream;
    bool ignore_eos;
    const char *const *headers; /* extra "Name: value" lines, <nheaders> of them; not owned */
    size_t nheaders;
    double timeout_s;         /* connect, first byte, and longest gap between bytes */
    /* How: */
    unsigned concurrency;     /* max requests in flight; 0 = no cap (rate mode only) */
    double request_rate;      /* Poisson arrivals per second; 0 = closed loop at <concurrency> */
    uint64_t num_requests;    /* stop issuing after this many; 0 = no count bound */
    double duration_s;        /* stop issuing after this long; 0 = no time bound */
    double grace_s;           /* after --duration, wait this long for in-flight requests */
    unsigned warmup;          /* requests sent and not counted before the measured run */
    uint64_t seed;            /* arrivals; the dataset has its own copy */
    struct rt_bench_data_conf data;
};

/* Parses "http://host[:port][/prefix]" into <conf>'s host, port and prefix. Returns 0 or -1
 * with a message. */
int rt_bench_parse_url(const char *url, struct rt_bench_conf *conf, char *err, size_t errlen);

/* Asks GET <prefix>/v1/models and returns a copy of the first model id in *<out> (rt_free it).
 * Returns 0 or -1 with a message. */
int rt_bench_fetch_model(const struct rt_bench_conf *conf, char **out, char *err, size_t errlen);

/* Runs the benchmark described by <conf>, adding one record per measured request to <stats>
 * (initialised by the caller) and the measured wall time to *<duration_s>. SIGINT stops it
 * early: in-flight requests are then counted as cancelled. Returns 0, or -1 with a message
 * when the run could not start. */
int rt_bench_run(const struct rt_bench_conf *conf, struct rt_bench_stats *stats,
                 double *duration_s, char *err, size_t errlen);

#endif
