/* Benchmark records and the vLLM-style summary and reports (see bench_stats.h). */
#include "bench_stats.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"

const char *rt_bench_err_name(int err)
{
    switch (err) {
    case RT_BENCH_OK:
        return "ok";
#define RT_BENCH_NAME(name, val, key, label)                                                       \
    case name:                                                                                     \
        return key;
        RT_BENCH_ERRORS(RT_BENCH_NAME)
#undef RT_BENCH_NAME
    default:
        return "unknown";
    }
}

const char *rt_bench_err_label(int err)
{
    switch (err) {
    case RT_BENCH_OK:
        return "ok";
#define RT_BENCH_LABEL(name, val, key, label)                                                      \
    case name:                                                                                     \
        return label;
        RT_BENCH_ERRORS(RT_BENCH_LABEL)
#undef RT_BENCH_LABEL
    default:
        return "unknown error";
    }
}

void rt_bench_stats_init(struct rt_bench_stats *s)
{
    memset(s, 0, sizeof(*s));
}

void rt_bench_stats_free(struct rt_bench_stats *s)
{
    rt_free(s->recs);
    rt_free(s->itl);
    memset(s, 0, sizeof(*s));
}

void rt_bench_stats_add(struct rt_bench_stats *s, const struct rt_bench_record *r,
                        const double *itl_ms, size_t nitl)
{
    if (s->nrecs == s->caprecs) {
        s->caprecs = s->caprecs ? s->caprecs * 2 : 1024;
        s->recs = rt_realloc(s->recs, s->caprecs * sizeof(*s->recs));
    }
    s->recs[s->nrecs++] = *r;
    int err = r->err >= 0 && r->err < RT_BENCH_NERR ? r->err : RT_BENCH_EPROTO;
    s->err_count[err]++;
    if (err == RT_BENCH_EHTTP && r->http_status >= 0 && r->http_status < 1000)
        s->status_count[r->http_status]++;
    if (err != RT_BENCH_OK || nitl == 0)
        return;
    if (s->nitl + nitl > s->capitl) {
        size_t cap = s->capitl ? s->capitl : 4096;
        while (cap < s->nitl + nitl)
            cap *= 2;
        s->itl = rt_realloc(s->itl, cap * sizeof(*s->itl));
        s->capitl = cap;
    }
    memcpy(s->itl + s->nitl, itl_ms, nitl * sizeof(*itl_ms));
    s->nitl += nitl;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y ? 1 : 0;
}

double rt_bench_percentile(const double *sorted, size_t n, double p)
{
    if (n == 0)
        return 0;
    if (p <= 0)
        return sorted[0];
    if (p >= 100)
        return sorted[n - 1];
    double rank = p / 100.0 * (double)(n - 1);
    size_t lo = (size_t)rank;
    double frac = rank - (double)lo;
    if (lo + 1 >= n)
        return sorted[n - 1];
    return sorted[lo] + (sorted[lo + 1] - sorted[lo]) * frac;
}

/* Fills <m> from <v>[0, <n>), sorting <v> in place. */
static void metric(double *v, size_t n, const double *pcts, size_t npcts, struct rt_bench_metric *m)
{
    memset(m, 0, sizeof(*m));
    m->n = n;
    if (n == 0)
        return;
    qsort(v, n, sizeof(*v), cmp_double);
    double sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += v[i];
    m->mean = sum / (double)n;
    double var = 0;
    for (size_t i = 0; i < n; i++)
        var += (v[i] - m->mean) * (v[i] - m->mean);
    m->std = sqrt(var / (double)n);
    m->median = rt_bench_percentile(v, n, 50);
    for (size_t i = 0; i < npcts; i++)
        m->pct[i] = rt_bench_percentile(v, n, pcts[i]);
}

int rt_bench_stats_summarize(struct rt_bench_stats *s, double duration_s, const double *pcts,
                             size_t npcts, struct rt_bench_summary *out)
{
    memset(out, 0, sizeof(*out));
    if (npcts > RT_BENCH_MAX_PCTS)
        return -1;
    for (size_t i = 0; i < npcts; i++) {
        if (!(pcts[i] > 0 && pcts[i] <= 100))
            return -1;
        out->pcts[i] = pcts[i];
    }
    out->npcts = npcts;
    out->duration_s = duration_s > 0 ? duration_s : 0;
    memcpy(out->err_count, s->err_count, sizeof(out->err_count));

    /* One scratch array holds TTFT, TPOT and E2EL samples in turn. */
    double *tmp = rt_malloc((s->nrecs ? s->nrecs : 1) * sizeof(*tmp));
    size_t n = 0;
    for (size_t i = 0; i < s->nrecs; i++) {
        const struct rt_bench_record *r = &s->recs[i];
        if (r->err != RT_BENCH_OK) {
            out->failed++;
            continue;
        }
        out->completed++;
        out->total_input_tokens += r->prompt_tokens;
        out->total_output_tokens += r->output_tokens;
        tmp[n++] = r->ttft_ms;
    }
    metric(tmp, n, pcts, npcts, &out->ttft);

    /* TPOT excludes the first token, so only requests with more than one output token count. */
    n = 0;
    for (size_t i = 0; i < s->nrecs; i++) {
        const struct rt_bench_record *r = &s->recs[i];
        if (r->err == RT_BENCH_OK && r->output_tokens > 1)
            tmp[n++] = (r->e2el_ms - r->ttft_ms) / (double)(r->output_tokens - 1);
    }
    metric(tmp, n, pcts, npcts, &out->tpot);

    n = 0;
    for (size_t i = 0; i < s->nrecs; i++)
        if (s->recs[i].err == RT_BENCH_OK)
            tmp[n++] = s->recs[i].e2el_ms;
    metric(tmp, n, pcts, npcts, &out->e2el);
    rt_free(tmp);

    metric(s->itl, s->nitl, pcts, npcts, &out->itl);

    if (out->duration_s > 0) {
        out->request_throughput = (double)out->completed / out->duration_s;
        out->output_throughput = (double)out->total_output_tokens / out->duration_s;
        out->total_token_throughput =
            (double)(out->total_input_tokens + out->total_output_tokens) / out->duration_s;
    }
    return 0;
}

int rt_bench_parse_percentiles(const char *s, double *out, size_t *n, char *err, size_t errlen)
{
    *n = 0;
    const char *p = s;
    for (;;) {
        char *end;
        errno = 0;
        double v = strtod(p, &end);
        if (end == p || errno != 0 || !(v > 0 && v <= 100)) {
            snprintf(err, errlen, "bad percentile list '%s': want numbers in (0, 100] like 50,90,99",
                     s);
            return -1;
        }
        if (*n == RT_BENCH_MAX_PCTS) {
            snprintf(err, errlen, "at most %d percentiles", RT_BENCH_MAX_PCTS);
            return -1;
        }
        out[(*n)++] = v;
        if (*end == '\0')
            return 0;
        if (*end != ',') {
            snprintf(err, errlen, "bad percentile list '%s': want numbers in (0, 100] like 50,90,99",
                     s);
            return -1;
        }
        p = end + 1;
    }
}

/* "===== title =====" centred in 50 columns, as Python's format(s, '=^50') does. */
static void rule(struct rt_buf *out, const char *title, char c)
{
    size_t len = strlen(title);
    size_t pad = len < 50 ? 50 - len : 0;
    size_t left = pad / 2;
    for (size_t i = 0; i < left; i++)
        rt_buf_printf(out, "%c", c);
    rt_buf_printf(out, "%s", title);
    for (size_t i = left; i < pad; i++)
        rt_buf_printf(out, "%c", c);
    rt_buf_printf(out, "\n");
}

static void line_u(struct rt_buf *out, const char *label, uint64_t v)
{
    rt_buf_printf(out, "%-40s %llu\n", label, (unsigned long long)v);
}

static void line_f(struct rt_buf *out, const char *label, double v)
{
    rt_buf_printf(out, "%-40s %.2f\n", label, v);
}

static void metric_text(struct rt_buf *out, const struct rt_bench_summary *sum,
                        const struct rt_bench_metric *m, const char *title, const char *name)
{
    char label[64];
    rule(out, title, '-');
    snprintf(label, sizeof(label), "Mean %s (ms):", name);
    line_f(out, label, m->mean);
    snprintf(label, sizeof(label), "Median %s (ms):", name);
    line_f(out, label, m->median);
    for (size_t i = 0; i < sum->npcts; i++) {
        snprintf(label, sizeof(label), "P%g %s (ms):", sum->pcts[i], name);
        line_f(out, label, m->pct[i]);
    }
}

void rt_bench_report_text(const struct rt_bench_summary *sum, const struct rt_bench_stats *s,
                          const struct rt_bench_report_info *info, struct rt_buf *out)
{
    rule(out, " Serving Benchmark Result ", '=');
    line_u(out, "Successful requests:", sum->completed);
    line_u(out, "Failed requests:", sum->failed);
    if (info && info->max_concurrency)
        line_u(out, "Maximum request concurrency:", info->max_concurrency);
    if (info && info->request_rate > 0)
        line_f(out, "Request rate configured (RPS):", info->request_rate);
    line_f(out, "Benchmark duration (s):", sum->duration_s);
    line_u(out, "Total input tokens:", sum->total_input_tokens);
    line_u(out, "Total generated tokens:", sum->total_output_tokens);
    line_f(out, "Request throughput (req/s):", sum->request_throughput);
    line_f(out, "Output token throughput (tok/s):", sum->output_throughput);
    line_f(out, "Total Token throughput (tok/s):", sum->total_token_throughput);
    metric_text(out, sum, &sum->ttft, "Time to First Token", "TTFT");
    metric_text(out, sum, &sum->tpot, "Time per Output Token (excl. 1st token)", "TPOT");
    metric_text(out, sum, &sum->itl, "Inter-token Latency", "ITL");
    metric_text(out, sum, &sum->e2el, "End-to-end Latency", "E2EL");
    if (sum->failed) {
        char label[64];
        rule(out, "Failed requests by kind", '-');
        for (int e = 1; e < RT_BENCH_NERR; e++) {
            if (e == RT_BENCH_EHTTP) {
                for (int st = 0; st < 1000; st++) {
                    if (!s->status_count[st])
                        continue;
                    snprintf(label, sizeof(label), "HTTP status %d:", st);
                    line_u(out, label, s->status_count[st]);
                }
            } else if (sum->err_count[e]) {
                snprintf(label, sizeof(label), "%s:", rt_bench_err_label(e));
                line_u(out, label, sum->err_count[e]);
            }
        }
    }
    rule(out, "", '=');
}

/* Adds a number; jansson refuses NaN and infinities, which never come out of the summary but
 * would make the key vanish silently, so they become null. */
static void put_real(json_t *o, const char *key, double v)
{
    json_object_set_new(o, key, isfinite(v) ? json_real(v) : json_null());
}

static void metric_json(json_t *o, const struct rt_bench_summary *sum,
                        const struct rt_bench_metric *m, const char *name)
{
    char key[64];
    snprintf(key, sizeof(key), "mean_%s_ms", name);
    put_real(o, key, m->mean);
    snprintf(key, sizeof(key), "median_%s_ms", name);
    put_real(o, key, m->median);
    snprintf(key, sizeof(key), "std_%s_ms", name);
    put_real(o, key, m->std);
    for (size_t i = 0; i < sum->npcts; i++) {
        snprintf(key, sizeof(key), "p%g_%s_ms", sum->pcts[i], name);
        put_real(o, key, m->pct[i]);
    }
    snprintf(key, sizeof(key), "%s_samples", name);
    json_object_set_new(o, key, json_integer((json_int_t)m->n));
}

void rt_bench_report_json(const struct rt_bench_summary *sum, const struct rt_bench_stats *s,
                          const struct rt_bench_report_info *info, struct rt_buf *out)
{
    json_t *o = json_object();
    if (info) {
        if (info->base_url)
            json_object_set_new(o, "base_url", json_string(info->base_url));
        if (info->endpoint)
            json_object_set_new(o, "endpoint", json_string(info->endpoint));
        if (info->model)
            json_object_set_new(o, "model", json_string(info->model));
        if (info->dataset)
            json_object_set_new(o, "dataset", json_string(info->dataset));
        json_object_set_new(o, "max_concurrency",
                            info->max_concurrency ? json_integer(info->max_concurrency)
                                                  : json_null());
        json_object_set_new(o, "request_rate",
                            info->request_rate > 0 ? json_real(info->request_rate) : json_null());
        json_object_set_new(o, "stream", json_boolean(info->stream));
    }
    json_object_set_new(o, "num_requests", json_integer((json_int_t)(sum->completed + sum->failed)));
    json_object_set_new(o, "completed", json_integer((json_int_t)sum->completed));
    json_object_set_new(o, "failed", json_integer((json_int_t)sum->failed));
    put_real(o, "duration", sum->duration_s);
    json_object_set_new(o, "total_input_tokens", json_integer((json_int_t)sum->total_input_tokens));
    json_object_set_new(o, "total_output_tokens",
                        json_integer((json_int_t)sum->total_output_tokens));
    put_real(o, "request_throughput", sum->request_throughput);
    put_real(o, "output_throughput", sum->output_throughput);
    put_real(o, "total_token_throughput", sum->total_token_throughput);
    metric_json(o, sum, &sum->ttft, "ttft");
    metric_json(o, sum, &sum->tpot, "tpot");
    metric_json(o, sum, &sum->itl, "itl");
    metric_json(o, sum, &sum->e2el, "e2el");

    json_t *errs = json_object();
    for (int e = 1; e < RT_BENCH_NERR; e++) {
        if (e == RT_BENCH_EHTTP) {
            json_t *st = json_object();
            for (int c = 0; c < 1000; c++) {
                if (!s->status_count[c])
                    continue;
                char key[8];
                snprintf(key, sizeof(key), "%d", c);
                json_object_set_new(st, key, json_integer((json_int_t)s->status_count[c]));
            }
            json_object_set_new(errs, rt_bench_err_name(e), st);
        } else {
            json_object_set_new(errs, rt_bench_err_name(e),
                                json_integer((json_int_t)sum->err_count[e]));
        }
    }
    json_object_set_new(o, "errors", errs);

    char *text = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(10));
    json_decref(o);
    if (text) {
        rt_buf_printf(out, "%s\n", text);
        free(text); /* jansson allocated it with malloc */
    }
}
