/* Extraction of a backend's load signals from its Prometheus /metrics page (see load_signals.h). */
#include "load_signals.h"

#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "prom_text.h"

/* The series we read; the SGL_* ones accept both the "sglang:" and "sglang_" prefix. */
enum which {
    W_RUNNING = 0,
    W_WAITING,
    W_KV,        /* vllm:kv_cache_usage_perc */
    W_GPU_CACHE, /* vllm:gpu_cache_usage_perc, the older name */
    W_SGL_RUNNING,
    W_SGL_WAITING,
    W_SGL_TOKEN,
    W_MAX_FDS,
    W_COUNT,
};

enum kind {
    K_COUNT = 0, /* >= 0, finite */
    K_FRACTION,  /* 0..1 */
};

static const struct {
    const char *name; /* for W_SGL_*: the part after the prefix */
    enum kind kind;
} metrics[W_COUNT] = {
    [W_RUNNING] = {"vllm:num_requests_running", K_COUNT},
    [W_WAITING] = {"vllm:num_requests_waiting", K_COUNT},
    [W_KV] = {"vllm:kv_cache_usage_perc", K_FRACTION},
    [W_GPU_CACHE] = {"vllm:gpu_cache_usage_perc", K_FRACTION},
    [W_SGL_RUNNING] = {"num_running_reqs", K_COUNT},
    [W_SGL_WAITING] = {"num_queue_reqs", K_COUNT},
    [W_SGL_TOKEN] = {"token_usage", K_FRACTION},
    [W_MAX_FDS] = {"process_max_fds", K_COUNT},
};

struct series {
    size_t first;  /* index of its first label in acc.labels */
    size_t n;      /* number of labels */
    uint64_t hash; /* of the label set, order-independent: equal sets hash equal */
};

/* Everything seen of one metric. Label slices point into the page. */
struct acc {
    double sum;
    size_t count;          /* series seen */
    bool engine_label;     /* some series had an `engine` label (vLLM V1) */
    struct series *series; /* [count], owned */
    struct rt_prom_label *labels; /* owned, copied out of the reused sample */
    size_t nlabels, cap_labels, cap_series;
};

static int classify(struct rt_str name)
{
    for (int w = 0; w < W_COUNT; w++) {
        if (w >= W_SGL_RUNNING && w <= W_SGL_TOKEN)
            continue;
        if (rt_str_eq(name, rt_str_cstr(metrics[w].name)))
            return w;
    }
    if (name.len > 7
        && (memcmp(name.ptr, "sglang:", 7) == 0 || memcmp(name.ptr, "sglang_", 7) == 0)) {
        struct rt_str rest = rt_str_make(name.ptr + 7, name.len - 7);
        for (int w = W_SGL_RUNNING; w <= W_SGL_TOKEN; w++)
            if (rt_str_eq(rest, rt_str_cstr(metrics[w].name)))
                return w;
    }
    return -1;
}

/* True when label sets <a> and <b> are the same set (any order). Raw escaped values can be
 * compared as bytes: the format has one spelling per value (", \ and newline must be escaped,
 * nothing else may be). */
static bool same_labels(const struct rt_prom_label *a, size_t na, const struct rt_prom_label *b,
                        size_t nb)
{
    if (na != nb)
        return false;
    for (size_t i = 0; i < na; i++) {
        size_t j;
        for (j = 0; j < nb; j++)
            if (rt_str_eq(a[i].name, b[j].name))
                break;
        if (j == nb || !rt_str_eq(a[i].value, b[j].value))
            return false;
    }
    return true;
}

static void seterr(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void seterr(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static uint64_t fnv1a(uint64_t h, struct rt_str s)
{
    for (size_t i = 0; i < s.len; i++)
        h = (h ^ (unsigned char)s.ptr[i]) * 0x100000001b3ULL;
    return h;
}

/* A label set's hash: the sum of per-label hashes, so label order does not matter. Comparing
 * hashes first keeps the repeat check linear in practice even for a hostile page of 1024 series
 * with 64 labels that differ only in the last one. */
static uint64_t labels_hash(const struct rt_prom_sample *s)
{
    uint64_t sum = 0;
    for (size_t k = 0; k < s->num_labels; k++) {
        uint64_t h = fnv1a(0xcbf29ce484222325ULL, s->labels[k].name);
        h = fnv1a(h ^ 0xff, s->labels[k].value); /* 0xff never occurs in a name: a separator */
        sum += h * 0x9e3779b97f4a7c15ULL;
    }
    return sum;
}

/* Records sample <s> of metric <w>. Returns 0 or -1 with <err> set. */
static int add(struct acc *a, int w, const struct rt_prom_sample *s, char *err, size_t errlen)
{
    double v = s->value;
    const char *why = NULL;
    if (isnan(v))
        why = "NaN";
    else if (v < 0)
        why = "negative";
    else if (metrics[w].kind == K_COUNT && isinf(v))
        why = "infinite";
    else if (metrics[w].kind == K_FRACTION && v > 1)
        why = "above 1 (it is a 0..1 fraction)";
    if (why) {
        seterr(err, errlen, "line %zu: %.*s is %s", s->line, RT_STR_FMT(s->name), why);
        return -1;
    }
    uint64_t hash = labels_hash(s);
    for (size_t k = 0; k < a->count; k++) {
        if (a->series[k].hash != hash)
            continue;
        /* labels is NULL while every series so far had no labels */
        const struct rt_prom_label *l = a->labels ? a->labels + a->series[k].first : NULL;
        if (same_labels(l, a->series[k].n, s->labels, s->num_labels)) {
            seterr(err, errlen, "line %zu: series of %.*s repeated", s->line,
                   RT_STR_FMT(s->name));
            return -1;
        }
    }
    if (a->count == RT_LOAD_SIGNALS_MAX_SERIES) {
        seterr(err, errlen, "line %zu: more than %d series of %.*s", s->line,
               RT_LOAD_SIGNALS_MAX_SERIES, RT_STR_FMT(s->name));
        return -1;
    }
    if (w == W_MAX_FDS && a->count == 1) {
        seterr(err, errlen, "line %zu: several process_max_fds series", s->line);
        return -1;
    }
    if (a->count == a->cap_series) {
        a->cap_series = a->cap_series ? a->cap_series * 2 : 8;
        a->series = rt_realloc(a->series, a->cap_series * sizeof *a->series);
    }
    while (a->nlabels + s->num_labels > a->cap_labels) {
        a->cap_labels = a->cap_labels ? a->cap_labels * 2 : 32;
        a->labels = rt_realloc(a->labels, a->cap_labels * sizeof *a->labels);
    }
    if (s->num_labels)
        memcpy(a->labels + a->nlabels, s->labels, s->num_labels * sizeof *s->labels);
    a->series[a->count].first = a->nlabels;
    a->series[a->count].n = s->num_labels;
    a->series[a->count].hash = hash;
    a->nlabels += s->num_labels;
    a->count++;
    a->sum += v;
    struct rt_str engine;
    if (rt_prom_sample_label(s, RT_STR_LIT("engine"), &engine))
        a->engine_label = true;
    return 0;
}

int rt_load_signals_parse(const char *page, size_t len, struct rt_load_signals *out, char *err,
                          size_t errlen)
{
    struct acc acc[W_COUNT];
    struct rt_prom_parser p;
    struct rt_prom_sample s;
    int rc = -1, r;

    memset(out, 0, sizeof *out);
    memset(acc, 0, sizeof acc);
    seterr(err, errlen, "%s", "");
    if (len == 0) {
        seterr(err, errlen, "empty metrics page");
        goto fail;
    }
    rt_prom_init(&p, page, len);
    while ((r = rt_prom_next(&p, &s)) == 1) {
        int w = classify(s.name);
        if (w >= 0 && add(&acc[w], w, &s, err, errlen) != 0)
            goto fail;
    }
    if (r < 0) {
        seterr(err, errlen, "line %zu: %s", p.error_line, p.error);
        goto fail;
    }

    bool vllm = acc[W_RUNNING].count || acc[W_WAITING].count || acc[W_KV].count
                || acc[W_GPU_CACHE].count;
    bool sgl = acc[W_SGL_RUNNING].count || acc[W_SGL_WAITING].count || acc[W_SGL_TOKEN].count;
    if (vllm && sgl) {
        seterr(err, errlen, "page has both vLLM and SGLang load metrics");
        goto fail;
    }
    if (!vllm && !sgl) {
        seterr(err, errlen, "no load metrics on the page (num_requests_running, "
                            "num_requests_waiting, kv_cache_usage_perc or SGLang's)");
        goto fail;
    }
    int wr = vllm ? W_RUNNING : W_SGL_RUNNING;
    int ww = vllm ? W_WAITING : W_SGL_WAITING;
    int wk = vllm ? (acc[W_KV].count ? W_KV : W_GPU_CACHE) : W_SGL_TOKEN;
    if (vllm) {
        bool v1 = acc[W_KV].count > 0;
        for (int w = W_RUNNING; w <= W_GPU_CACHE; w++)
            v1 = v1 || acc[w].engine_label;
        out->flavour = v1 ? RT_LOAD_SIGNALS_VLLM_V1 : RT_LOAD_SIGNALS_VLLM_V0;
    } else {
        out->flavour = RT_LOAD_SIGNALS_SGLANG;
    }
    if (acc[wr].count) {
        out->num_requests_running = acc[wr].sum;
        out->present |= RT_LOAD_SIGNALS_HAS_RUNNING;
    }
    if (acc[ww].count) {
        out->num_requests_waiting = acc[ww].sum;
        out->present |= RT_LOAD_SIGNALS_HAS_WAITING;
    }
    if (acc[wk].count) {
        out->kv_cache_usage_perc = acc[wk].sum / (double)acc[wk].count * 100.0;
        out->kv_series = (unsigned)acc[wk].count;
        out->present |= RT_LOAD_SIGNALS_HAS_KV_CACHE;
    }
    if (acc[W_MAX_FDS].count) {
        out->process_max_fds = acc[W_MAX_FDS].sum;
        out->present |= RT_LOAD_SIGNALS_HAS_MAX_FDS;
    }
    /* Finite values can still add up past DBL_MAX. */
    if (!isfinite(out->num_requests_running) || !isfinite(out->num_requests_waiting)) {
        seterr(err, errlen, "request counts add up to infinity");
        goto fail;
    }
    rc = 0;

fail:
    for (int w = 0; w < W_COUNT; w++) {
        rt_free(acc[w].series);
        rt_free(acc[w].labels);
    }
    if (rc != 0)
        memset(out, 0, sizeof *out);
    return rc;
}

const char *rt_load_signals_flavour_name(enum rt_load_signals_flavour f)
{
    switch (f) {
    case RT_LOAD_SIGNALS_VLLM_V1:
        return "vllm-v1";
    case RT_LOAD_SIGNALS_VLLM_V0:
        return "vllm-v0";
    case RT_LOAD_SIGNALS_SGLANG:
        return "sglang";
    default:
        return "unknown";
    }
}
