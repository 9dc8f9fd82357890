/* The simulator's /metrics page in vLLM's names and shapes (see sim_metrics.h). Help texts and
 * label order (alphabetical, as prometheus_client sorts them) follow a captured vLLM page. */
#include "sim_metrics.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

/* V0 bucket bounds: each is also a V1 bound, so V1 counts can be re-bucketed exactly. */
static const double le_v0_ttft[] = {0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1,
                                    0.25,  0.5,   0.75, 1.0,  2.5,  5.0,  7.5,  10.0};
static const double le_v0_tpot[] = {0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2,
                                    0.3,  0.4,   0.5,  0.75,  1.0, 2.5};
static const double le_v0_e2e[] = {1.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0};

/* Formats <v> like Python's prometheus_client into <s> (at least 40 bytes). */
static void num_str(char *s, size_t n, double v)
{
    if (isinf(v)) {
        snprintf(s, n, "%s", v > 0 ? "+Inf" : "-Inf");
        return;
    }
    if (isnan(v)) {
        snprintf(s, n, "NaN");
        return;
    }
    if (v == floor(v) && fabs(v) < 1e16) {
        snprintf(s, n, "%.0f.0", v); /* Python prints integral floats in full below 1e16 */
        return;
    }
    /* Shortest text that reads back as <v>, like Python's repr(). */
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(s, n, "%.*g", prec, v);
        if (strtod(s, NULL) == v)
            break;
    }
}

void rt_sim_metrics_num(struct rt_buf *b, double v)
{
    char s[48];
    num_str(s, sizeof s, v);
    rt_buf_printf(b, "%s", s);
}

/* Label values escaped per the text format: backslash, double quote, newline. */
static void label_value(struct rt_buf *b, struct rt_str v)
{
    for (size_t i = 0; i < v.len; i++) {
        char c = v.ptr[i];
        if (c == '\\' || c == '"')
            rt_buf_printf(b, "\\%c", c);
        else if (c == '\n')
            rt_buf_printf(b, "\\n");
        else
            rt_buf_append(b, &c, 1, (size_t)-1);
    }
}

struct page {
    struct rt_buf *b;
    struct rt_str model;
    bool v0;
};

static void help_type(struct page *p, const char *name, const char *type, const char *help)
{
    rt_buf_printf(p->b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* name{engine="0",<extra>,model_name="..."} value — <extra> sorts between engine and model_name
 * for every label vLLM uses here (finished_reason, le). */
static void sample(struct page *p, const char *name, const char *extra, double v)
{
    rt_buf_printf(p->b, "%s{", name);
    if (!p->v0)
        rt_buf_printf(p->b, "engine=\"0\",");
    if (extra)
        rt_buf_printf(p->b, "%s,", extra);
    rt_buf_printf(p->b, "model_name=\"");
    label_value(p->b, p->model);
    rt_buf_printf(p->b, "\"} ");
    rt_sim_metrics_num(p->b, v);
    rt_buf_printf(p->b, "\n");
}

static void metric(struct page *p, const char *name, const char *type, const char *help, double v)
{
    help_type(p, name, type, help);
    sample(p, name, NULL, v);
}

/* A histogram; with <le> given (a subset of h->le) the counts are re-bucketed onto it. */
static void histogram(struct page *p, const char *name, const char *help,
                      const struct rt_sim_hist *h, const double *le, unsigned n)
{
    char sname[160], extra[80], lebuf[48];
    help_type(p, name, "histogram", help);
    if (!le) {
        le = h->le;
        n = h->n;
    }
    snprintf(sname, sizeof sname, "%s_bucket", name);
    uint64_t cum = 0;
    unsigned j = 0;
    for (unsigned i = 0; i < n; i++) {
        while (j < h->n && h->le[j] <= le[i] * (1 + 1e-12))
            cum += h->counts[j++];
        num_str(lebuf, sizeof lebuf, le[i]);
        snprintf(extra, sizeof extra, "le=\"%s\"", lebuf);
        sample(p, sname, extra, (double)cum);
    }
    sample(p, sname, "le=\"+Inf\"", (double)h->count);
    snprintf(sname, sizeof sname, "%s_count", name);
    sample(p, sname, NULL, (double)h->count);
    snprintf(sname, sizeof sname, "%s_sum", name);
    sample(p, sname, NULL, h->sum);
}

static void success(struct page *p, const struct rt_sim_stats *s)
{
    char extra[64];
    help_type(p, "vllm:request_success_total", "counter", "Count of successfully processed requests.");
    for (int r = 0; r < RT_SIM_FINISH_COUNT; r++) {
        snprintf(extra, sizeof extra, "finished_reason=\"%s\"", rt_sim_finish_name(r));
        sample(p, "vllm:request_success_total", extra, (double)s->finished[r]);
    }
}

static void process(struct page *p, const struct rt_sim_metrics_opts *o)
{
    long fds = o->max_fds;
    if (fds <= 0) {
        struct rlimit rl;
        fds = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY ? (long)rl.rlim_cur
                                                                                 : 1024;
    }
    rt_buf_printf(p->b, "# HELP process_max_fds Maximum number of open file descriptors.\n"
                        "# TYPE process_max_fds gauge\nprocess_max_fds ");
    rt_sim_metrics_num(p->b, (double)fds);
    rt_buf_printf(p->b, "\n# HELP process_start_time_seconds Start time of the process since unix "
                        "epoch in seconds.\n# TYPE process_start_time_seconds gauge\n"
                        "process_start_time_seconds ");
    rt_sim_metrics_num(p->b, o->start_time);
    rt_buf_printf(p->b, "\n");
}

static void cache_config(struct page *p, const struct rt_sim_engine *e)
{
    const struct rt_sim_engine_conf *c = &e->conf;
    unsigned long long blocks = (unsigned long long)(c->kv_cache_tokens / c->block_tokens);
    if (p->v0) {
        help_type(p, "vllm:cache_config_info", "gauge", "information of cache_config");
        rt_buf_printf(p->b, "vllm:cache_config_info{block_size=\"%u\",cache_dtype=\"auto\","
                            "enable_prefix_caching=\"True\",gpu_memory_utilization=\"0.9\","
                            "num_cpu_blocks=\"0\",num_gpu_blocks=\"%llu\","
                            "num_gpu_blocks_override=\"None\",sliding_window=\"None\"} 1.0\n",
                      c->block_tokens, blocks);
        return;
    }
    help_type(p, "vllm:cache_config_info", "gauge", "Information of the LLMEngine CacheConfig");
    rt_buf_printf(p->b, "vllm:cache_config_info{block_size=\"%u\",cache_dtype=\"auto\","
                        "enable_prefix_caching=\"True\",engine=\"0\",gpu_memory_utilization=\"0.9\","
                        "kv_cache_size_tokens=\"%llu\",num_cpu_blocks=\"None\",num_gpu_blocks=\"%llu\","
                        "num_gpu_blocks_override=\"None\",prefix_caching_hash_algo=\"sha256\","
                        "sliding_window=\"None\"} 1.0\n",
                  c->block_tokens, (unsigned long long)c->kv_cache_tokens, blocks);
}

static void page_v1(struct page *p, const struct rt_sim_engine *e)
{
    const struct rt_sim_stats *s = &e->stats;
    metric(p, "vllm:num_requests_running", "gauge", "Number of requests in model execution batches.",
           e->running);
    metric(p, "vllm:num_requests_waiting", "gauge", "Number of requests waiting to be processed.",
           e->waiting);
    metric(p, "vllm:kv_cache_usage_perc", "gauge", "KV-cache usage. 1 means 100 percent usage.",
           rt_sim_engine_kv_usage(e));
    metric(p, "vllm:prefix_cache_queries_total", "counter",
           "Prefix cache queries, in terms of number of queried tokens.", (double)s->prefix_queries);
    metric(p, "vllm:prefix_cache_hits_total", "counter",
           "Prefix cache hits, in terms of number of cached tokens.", (double)s->prefix_hits);
    metric(p, "vllm:num_preemptions_total", "counter",
           "Cumulative number of preemption from the engine.", (double)s->preemptions);
    metric(p, "vllm:prompt_tokens_total", "counter", "Number of prefill tokens processed.",
           (double)s->prompt_tokens);
    metric(p, "vllm:generation_tokens_total", "counter", "Number of generation tokens processed.",
           (double)s->generation_tokens);
    success(p, s);
    histogram(p, "vllm:request_prompt_tokens", "Number of prefill tokens processed.", &s->req_prompt,
              NULL, 0);
    histogram(p, "vllm:request_generation_tokens", "Number of generation tokens processed.",
              &s->req_gen, NULL, 0);
    histogram(p, "vllm:time_to_first_token_seconds", "Histogram of time to first token in seconds.",
              &s->ttft, NULL, 0);
    histogram(p, "vllm:inter_token_latency_seconds", "Histogram of inter-token latency in seconds.",
              &s->itl, NULL, 0);
    histogram(p, "vllm:request_time_per_output_token_seconds",
              "Histogram of time_per_output_token_seconds per request.", &s->tpot, NULL, 0);
    histogram(p, "vllm:e2e_request_latency_seconds", "Histogram of e2e request latency in seconds.",
              &s->e2e, NULL, 0);
    histogram(p, "vllm:request_queue_time_seconds",
              "Histogram of time spent in WAITING phase for request.", &s->queue, NULL, 0);
    histogram(p, "vllm:request_prefill_time_seconds",
              "Histogram of time spent in PREFILL phase for request.", &s->prefill, NULL, 0);
    histogram(p, "vllm:request_decode_time_seconds",
              "Histogram of time spent in DECODE phase for request.", &s->decode, NULL, 0);
    cache_config(p, e);
}

static void page_v0(struct page *p, const struct rt_sim_engine *e)
{
    const struct rt_sim_stats *s = &e->stats;
    cache_config(p, e);
    metric(p, "vllm:num_requests_running", "gauge", "Number of requests currently running on GPU.",
           e->running);
    metric(p, "vllm:num_requests_waiting", "gauge", "Number of requests waiting to be processed.",
           e->waiting);
    metric(p, "vllm:num_requests_swapped", "gauge", "Number of requests swapped to CPU.", 0);
    metric(p, "vllm:gpu_cache_usage_perc", "gauge", "GPU KV-cache usage. 1 means 100 percent usage.",
           rt_sim_engine_kv_usage(e));
    metric(p, "vllm:cpu_cache_usage_perc", "gauge", "CPU KV-cache usage. 1 means 100 percent usage.",
           0);
    metric(p, "vllm:gpu_prefix_cache_hit_rate", "gauge",
           "GPU prefix cache block hit rate.",
           s->prefix_queries ? (double)s->prefix_hits / (double)s->prefix_queries : 0.0);
    metric(p, "vllm:num_preemptions_total", "counter",
           "Cumulative number of preemption from the engine.", (double)s->preemptions);
    metric(p, "vllm:prompt_tokens_total", "counter", "Number of prefill tokens processed.",
           (double)s->prompt_tokens);
    metric(p, "vllm:generation_tokens_total", "counter", "Number of generation tokens processed.",
           (double)s->generation_tokens);
    histogram(p, "vllm:time_to_first_token_seconds", "Histogram of time to first token in seconds.",
              &s->ttft, le_v0_ttft, sizeof le_v0_ttft / sizeof le_v0_ttft[0]);
    histogram(p, "vllm:time_per_output_token_seconds",
              "Histogram of time per output token in seconds.", &s->itl, le_v0_tpot,
              sizeof le_v0_tpot / sizeof le_v0_tpot[0]);
    histogram(p, "vllm:e2e_request_latency_seconds",
              "Histogram of end to end request latency in seconds.", &s->e2e, le_v0_e2e,
              sizeof le_v0_e2e / sizeof le_v0_e2e[0]);
    histogram(p, "vllm:request_prompt_tokens", "Number of prefill tokens processed.", &s->req_prompt,
              NULL, 0);
    histogram(p, "vllm:request_generation_tokens", "Number of generation tokens processed.",
              &s->req_gen, NULL, 0);
    success(p, s);
}

void rt_sim_metrics_render(struct rt_buf *b, const struct rt_sim_engine *e, struct rt_str model,
                           const struct rt_sim_metrics_opts *o)
{
    struct page p = {b, model, o->v0};
    process(&p, o);
    if (o->v0)
        page_v0(&p, e);
    else
        page_v1(&p, e);
}

void rt_sim_metrics_garbled(struct rt_buf *b, struct rt_str model)
{
    /* A cut-off series, a sample with a broken label set, a bad value and a stray type line. */
    rt_buf_printf(b, "# HELP vllm:num_requests_running Number of requests in model execution "
                     "batches.\n# TYPE vllm:num_requests_running gauge\n"
                     "vllm:num_requests_running{engine=\"0\",model_name=\"%.*s\" 3\n"
                     "vllm:num_requests_waiting{engine=\"0\",,model_name= } not-a-number\n"
                     "# TYPE vllm:kv_cache_usage_perc bogus\n"
                     "vllm:kv_cache_usage_perc{engine=\"0\",model_name=\"%.*s\"} 0.5 x y z\n"
                     "\x01\x02garbage\n"
                     "vllm:prefix_cache_hits_tot",
                  RT_STR_FMT(model), RT_STR_FMT(model));
}
