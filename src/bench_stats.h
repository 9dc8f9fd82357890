/* Results of a benchmark run: one record per finished request, and the summary computed the way
 * `vllm bench serve` computes it (throughputs over successful requests; mean, median, standard
 * deviation and percentiles of TTFT, TPOT, ITL and E2EL in milliseconds), with every failure
 * counted by kind. Reports as text for people and JSON for scripts.
 *
 * Pure: no I/O besides writing into a caller's buffer. A struct rt_bench_stats owns its arrays;
 * a struct rt_bench_summary owns nothing beyond its own fields. */
#ifndef RT_BENCH_STATS_H
#define RT_BENCH_STATS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

/* Failure kinds; names (JSON keys) and human labels in one list. */
#define RT_BENCH_ERRORS(X)                                                                         \
    X(RT_BENCH_ECONNECT, 1, "connect", "connect error")                                            \
    X(RT_BENCH_ETIMEOUT, 2, "timeout", "timeout")                                                  \
    X(RT_BENCH_EHTTP, 3, "http_status", "HTTP status")                                             \
    X(RT_BENCH_ESTREAM, 4, "stream_error", "stream error event")                                   \
    X(RT_BENCH_ECLOSED, 5, "closed", "connection closed early")                                    \
    X(RT_BENCH_EPROTO, 6, "protocol", "protocol error")                                            \
    X(RT_BENCH_ECANCELLED, 7, "cancelled", "cancelled at end")
enum rt_bench_err {
    RT_BENCH_OK = 0,
#define RT_BENCH_ENUM(name, val, key, label) name = val,
    RT_BENCH_ERRORS(RT_BENCH_ENUM)
#undef RT_BENCH_ENUM
    RT_BENCH_NERR
};
/* "connect", "timeout", ... (the JSON key); "ok" for RT_BENCH_OK. */
const char *rt_bench_err_name(int err);
/* "connect error", "timeout", ... (the text report's label). */
const char *rt_bench_err_label(int err);

/* One finished request. */
struct rt_bench_record {
    int err;                /* RT_BENCH_OK or an enum rt_bench_err */
    int http_status;        /* the response status, 0 when none arrived */
    uint32_t prompt_tokens; /* from the usage chunk, else the dataset's length */
    uint32_t output_tokens; /* from the usage chunk, else the number of content chunks */
    double ttft_ms;         /* request sent -> first content chunk */
    double e2el_ms;         /* request sent -> response complete */
};

#define RT_BENCH_MAX_PCTS 16

struct rt_bench_stats {
    struct rt_bench_record *recs; /* owned: every finished request, in completion order */
    size_t nrecs, caprecs;
    double *itl;                  /* owned: inter-token gaps (ms) of the successful requests */
    size_t nitl, capitl;
    uint64_t err_count[RT_BENCH_NERR];
    uint64_t status_count[1000];  /* failures of kind RT_BENCH_EHTTP by status code */
};

/* Statistics of one metric in milliseconds; all zero when there were no samples. */
struct rt_bench_metric {
    size_t n;
    double mean, median, std;
    double pct[RT_BENCH_MAX_PCTS]; /* at the summary's percentiles, in their order */
};

struct rt_bench_summary {
    uint64_t completed, failed;
    double duration_s;
    uint64_t total_input_tokens, total_output_tokens; /* successful requests only */
    double request_throughput;     /* completed / duration */
    double output_throughput;      /* output tokens / duration */
    double total_token_throughput; /* (input + output tokens) / duration */
    double pcts[RT_BENCH_MAX_PCTS];
    size_t npcts;
    struct rt_bench_metric ttft, tpot, itl, e2el;
    uint64_t err_count[RT_BENCH_NERR];
};

/* What the report says about how the run was driven (for the header lines and the JSON). */
struct rt_bench_report_info {
    const char *base_url, *endpoint, *model, *dataset; /* may be NULL */
    unsigned max_concurrency;  /* 0 = no cap */
    double request_rate;       /* requests/s; 0 = as fast as the concurrency allows */
    bool stream;
};

void rt_bench_stats_init(struct rt_bench_stats *s);
void rt_bench_stats_free(struct rt_bench_stats *s);
/* Adds one finished request; <itl_ms>[0, <nitl>) are its inter-token gaps, kept only when it
 * succeeded (as vLLM does). Copies everything. */
void rt_bench_stats_add(struct rt_bench_stats *s, const struct rt_bench_record *r,
                        const double *itl_ms, size_t nitl);
/* Computes the summary of <s> over a run of <duration_s> seconds at the percentiles
 * <pcts>[0, <npcts>) (each in (0, 100], npcts <= RT_BENCH_MAX_PCTS). Percentiles interpolate
 * linearly between closest ranks (numpy's default); std is the population standard deviation.
 * Sorts <s>'s ITL array in place. Returns 0, or -1 when the percentiles are invalid. */
int rt_bench_stats_summarize(struct rt_bench_stats *s, double duration_s, const double *pcts,
                             size_t npcts, struct rt_bench_summary *out);
/* The percentile <p> (0..100) of sorted <v>[0, <n>) by linear interpolation; 0 when n = 0. */
double rt_bench_percentile(const double *sorted, size_t n, double p);

/* Parses "50,90,99" (also "99.9"); each value in (0, 100]. Returns 0 or -1 with a message. */
int rt_bench_parse_percentiles(const char *s, double *out, size_t *n, char *err, size_t errlen);

/* Appends the human report ("==== Serving Benchmark Result ====" block). */
void rt_bench_report_text(const struct rt_bench_summary *sum, const struct rt_bench_stats *s,
                          const struct rt_bench_report_info *info, struct rt_buf *out);
/* Appends the JSON report (one object, keys documented in docs/bench.md). */
void rt_bench_report_json(const struct rt_bench_summary *sum, const struct rt_bench_stats *s,
                          const struct rt_bench_report_info *info, struct rt_buf *out);

#endif
