/* The simulator's /metrics page: Prometheus text format 0.0.4 with the names, labels, help texts
 * and histogram buckets of vLLM's V1 engine (or, on request, the older V0 names), rendered from
 * an engine's counters. Pure: appends to a caller-owned buffer. */
#ifndef RT_SIM_METRICS_H
#define RT_SIM_METRICS_H

#include <stdbool.h>

#include "buf.h"
#include "sim_engine.h"
#include "str.h"

struct rt_sim_metrics_opts {
    bool v0;                 /* V0 names: vllm:gpu_cache_usage_perc, no engine label, ... */
    double start_time;       /* process start, unix seconds */
    long max_fds;            /* process_max_fds; <= 0: read from getrlimit */
};

/* Appends the page for engine <e> serving <model> (the first served name labels every series,
 * as in vLLM). */
void rt_sim_metrics_render(struct rt_buf *b, const struct rt_sim_engine *e, struct rt_str model,
                           const struct rt_sim_metrics_opts *o);
/* Appends a page that no Prometheus parser accepts (the garbled-metrics fault). */
void rt_sim_metrics_garbled(struct rt_buf *b, struct rt_str model);
/* Appends <v> as Python's prometheus_client prints it: "0.0", "26.0", "0.25", "+Inf". */
void rt_sim_metrics_num(struct rt_buf *b, double v);

#endif
