/* Unit tests for metrics.c: concurrent recording merged across shards, exact histogram buckets,
 * hostile label values, the cardinality caps, the fleet gauges, and a page that both our parser
 * and (when installed) `promtool check metrics` accept. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "fleet.h"
#include "metrics.h"
#include "prom_text.h"

/* ---- page helpers ---- */

struct page {
    char *text;
    size_t len;
};

static struct page render(size_t queued)
{
    struct page p;
    p.text = rt_metrics_render(queued, &p.len);
    assert_non_null(p.text);
    assert_int_equal(strlen(p.text), p.len);
    return p;
}

/* True when sample <s> has exactly the labels of the NULL-terminated name/value list <kv>
 * (values given decoded). */
static bool labels_match(const struct rt_prom_sample *s, const char *const *kv)
{
    size_t n = 0;
    for (; kv[2 * n]; n++) {
        struct rt_str v;
        if (!rt_prom_sample_label(s, rt_str_cstr(kv[2 * n]), &v) ||
            !rt_prom_value_eq(v, rt_str_cstr(kv[2 * n + 1])))
            return false;
    }
    return n == s->num_labels;
}

/* The value of the one sample named <name> with exactly the labels <kv...> (name, value pairs,
 * NULL-terminated), or NAN when there is none. Fails when there are several. */
static double valv(const struct page *p, const char *name, const char *const *kv)
{
    struct rt_prom_parser ps;
    struct rt_prom_sample s;
    rt_prom_init(&ps, p->text, p->len);
    double v = NAN;
    int found = 0, rc;
    while ((rc = rt_prom_next(&ps, &s)) == 1) {
        if (rt_str_eq(s.name, rt_str_cstr(name)) && labels_match(&s, kv)) {
            v = s.value;
            found++;
        }
    }
    assert_int_equal(rc, 0);
    assert_true(found <= 1);
    return v;
}
#define VAL(p, name, ...) valv((p), (name), (const char *const[]){__VA_ARGS__, NULL})
#define VAL0(p, name)     valv((p), (name), (const char *const[]){NULL})

/* Number of samples named <name> (any labels), and the sum of their values through <sum>. */
static size_t count_samples(const struct page *p, const char *name, double *sum)
{
    struct rt_prom_parser ps;
    struct rt_prom_sample s;
    rt_prom_init(&ps, p->text, p->len);
    size_t n = 0;
    double total = 0;
    int rc;
    while ((rc = rt_prom_next(&ps, &s)) == 1) {
        if (rt_str_eq(s.name, rt_str_cstr(name))) {
            n++;
            total += s.value;
        }
    }
    assert_int_equal(rc, 0);
    if (sum)
        *sum = total;
    return n;
}

static int strp_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool ends_with(struct rt_str s, const char *suffix, struct rt_str *stem)
{
    size_t n = strlen(suffix);
    if (s.len < n || memcmp(s.ptr + s.len - n, suffix, n) != 0)
        return false;
    *stem = rt_str_make(s.ptr, s.len - n);
    return true;
}

/* The series key of <s> without its le label: "name{raw labels in page order}". */
static void series_key(const struct rt_prom_sample *s, struct rt_str name, char *out, size_t cap,
                       bool skip_le)
{
    size_t o = (size_t)snprintf(out, cap, "%.*s{", RT_STR_FMT(name));
    for (size_t i = 0; i < s->num_labels && o < cap; i++) {
        if (skip_le && rt_str_eq(s->labels[i].name, RT_STR_LIT("le")))
            continue;
        o += (size_t)snprintf(out + o, cap - o, "%.*s=\"%.*s\",", RT_STR_FMT(s->labels[i].name),
                              RT_STR_FMT(s->labels[i].value));
    }
    assert_true(o < cap);
}

/* Checks what any good page must be: it parses; every sample belongs to a family with a TYPE
 * and a HELP line, all with our prefix; no series repeats; each histogram's buckets have rising
 * le bounds and non-decreasing cumulative counts, end with le="+Inf", and that equals _count. */
static void check_page(const struct page *p)
{
    struct rt_prom_parser ps;
    struct rt_prom_sample s;
    rt_prom_init(&ps, p->text, p->len);
    size_t cap = 1024, n = 0;
    char **keys = malloc(cap * sizeof *keys);
    char group[4096] = "", key[4096];
    double prev_le = -INFINITY, prev_cum = 0, inf_count = NAN;
    bool group_open = false;
    struct rt_str last_fam = RT_STR_NULL;
    int rc;
    while ((rc = rt_prom_next(&ps, &s)) == 1) {
        assert_true(rt_str_starts_with(s.name, RT_STR_LIT("vllm_router_")));
        assert_int_not_equal(s.type, RT_PROM_UNTYPED);
        struct rt_str fam = s.name, stem;
        if (s.type == RT_PROM_HISTOGRAM) {
            if (ends_with(s.name, "_bucket", &stem) || ends_with(s.name, "_sum", &stem) ||
                ends_with(s.name, "_count", &stem))
                fam = stem;
        }
        if (!rt_str_eq(fam, last_fam)) { /* a family's samples are contiguous: check once */
            char help[512];
            snprintf(help, sizeof help, "# HELP %.*s ", RT_STR_FMT(fam));
            assert_non_null(strstr(p->text, help));
            last_fam = fam;
        }

        series_key(&s, s.name, key, sizeof key, false);
        if (n == cap)
            keys = realloc(keys, (cap *= 2) * sizeof *keys);
        keys[n++] = strdup(key);

        if (s.type != RT_PROM_HISTOGRAM)
            continue;
        if (ends_with(s.name, "_bucket", &stem)) {
            struct rt_str le;
            assert_true(rt_prom_sample_label(&s, RT_STR_LIT("le"), &le));
            double bound;
            assert_int_equal(rt_prom_parse_double(le, &bound), 0);
            series_key(&s, stem, key, sizeof key, true);
            if (!group_open || strcmp(key, group) != 0) {
                assert_false(group_open); /* the previous group ended with +Inf */
                snprintf(group, sizeof group, "%s", key);
                group_open = true;
                prev_le = -INFINITY;
                prev_cum = 0;
            }
            assert_true(bound > prev_le);
            assert_true(s.value >= prev_cum);
            prev_le = bound;
            prev_cum = s.value;
            if (isinf(bound)) {
                group_open = false;
                inf_count = s.value;
            }
        } else if (ends_with(s.name, "_count", &stem)) {
            series_key(&s, stem, key, sizeof key, true);
            assert_string_equal(key, group); /* _count follows its own buckets */
            assert_true(s.value == inf_count);
        }
    }
    assert_int_equal(rc, 0);
    assert_false(group_open);
    qsort(keys, n, sizeof *keys, strp_cmp);
    for (size_t i = 1; i < n; i++)
        assert_string_not_equal(keys[i - 1], keys[i]);
    for (size_t i = 0; i < n; i++)
        free(keys[i]);
    free(keys);
}

/* Runs `promtool check metrics` on the page when promtool is installed; returns false (after
 * saying so) when it is not. */
static bool promtool_ok(const struct page *p)
{
    if (system("command -v promtool >/dev/null 2>&1") != 0) {
        print_message("promtool is not installed: skipping `promtool check metrics`\n");
        return false;
    }
    char path[] = "/tmp/rt_metrics_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, p->text, p->len), (ssize_t)p->len);
    close(fd);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "promtool check metrics < %s", path);
    int rc = system(cmd);
    if (rc != 0)
        print_error("promtool rejected the page (kept at %s)\n", path);
    else
        unlink(path);
    assert_int_equal(rc, 0);
    return true;
}

/* ---- concurrent recording ---- */

#define THREADS    4
#define PER_THREAD 3000

/* Exactly representable in binary, so sums are exact whatever order the shards merge in; 0.5 and
 * 1 sit on bucket bounds (le is inclusive), 1000 is past the last one. */
static const double durs[] = {0.00390625, 0.5, 1, 7.25, 1000};
#define NDURS 5
static const char *const les[] = {"0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1",
                                  "2.5",   "5",    "10",    "20",   "30",  "60",   "120", "300"};
#define NLES 16

/* The <j>th request every thread records. */
static void gen(int j, struct rt_metrics_request *r)
{
    bool router_made = j % 4 == 3;
    *r = (struct rt_metrics_request){
        .endpoint = j % 3 == 0 ? "/v1/completions" : "/v1/chat/completions",
        .model = j % 2 ? RT_STR_LIT("llama") : RT_STR_LIT("qwen"),
        .server = router_made ? NULL : "http://10.0.0.1:8000",
        .status = router_made ? 503 : 200,
        .duration_s = durs[j % NDURS],
        .ttfb_s = j % 2 ? 0.0625 : -1,
        .retries = 0,
        .prompt_tokens = router_made ? -1 : 10,
        .completion_tokens = router_made ? -1 : 7,
        .queue_wait_s = j % 5 == 0 ? 0.25 : -1,
    };
}

struct worker {
    pthread_t th;
    unsigned shard;
};

static void *record(void *arg)
{
    struct worker *w = arg;
    for (int j = 0; j < PER_THREAD; j++) {
        struct rt_metrics_request r;
        gen(j, &r);
        rt_metrics_request(w->shard, &r);
        if (j % 10 == 0)
            rt_metrics_retry(w->shard, j % 20 ? "connect" : "status_503");
        if (j % 100 == 0)
            rt_metrics_queue_rejected(w->shard, "queue_full");
    }
    return NULL;
}

static atomic_bool stop_rendering;

static void *render_loop(void *arg)
{
    (void)arg;
    int n = 0;
    while (!atomic_load(&stop_rendering) || n == 0) {
        size_t len;
        char *t = rt_metrics_render(3, &len);
        if (len == 0) /* no cmocka asserts off the main thread */
            abort();
        rt_free(t);
        n++;
    }
    return NULL;
}

static void concurrent_merge(void **state)
{
    (void)state;
    rt_metrics_init(THREADS - 1); /* THREADS - 1 workers + the control shard = THREADS shards */
    assert_int_equal(rt_metrics_control_shard(), THREADS - 1);
    struct worker w[THREADS];
    pthread_t renderer;
    atomic_store(&stop_rendering, false);
    assert_int_equal(pthread_create(&renderer, NULL, render_loop, NULL), 0);
    for (unsigned i = 0; i < THREADS; i++) {
        w[i].shard = i;
        assert_int_equal(pthread_create(&w[i].th, NULL, record, &w[i]), 0);
    }
    for (unsigned i = 0; i < THREADS; i++)
        pthread_join(w[i].th, NULL);
    atomic_store(&stop_rendering, true);
    pthread_join(renderer, NULL);
    rt_metrics_reload(rt_metrics_control_shard(), true);
    rt_metrics_reload(rt_metrics_control_shard(), true);
    rt_metrics_reload(rt_metrics_control_shard(), false);

    /* What one thread recorded, tallied independently of metrics.c. */
    struct tally {
        const char *server, *model, *endpoint;
        int status;
        unsigned n;
    } tally[32];
    size_t nt = 0;
    unsigned dur_in[2][NLES + 1] = {{0}}; /* per endpoint (0 completions, 1 chat) */
    double dur_sum[2] = {0}, ttfb_sum[2] = {0};
    unsigned dur_n[2] = {0}, ttfb_n[2] = {0}, queued = 0;
    for (int j = 0; j < PER_THREAD; j++) {
        struct rt_metrics_request r;
        gen(j, &r);
        const char *server = r.server ? r.server : "";
        size_t k = 0;
        while (k < nt &&
               !(strcmp(tally[k].server, server) == 0 && strcmp(tally[k].model, r.model.ptr) == 0 &&
                 strcmp(tally[k].endpoint, r.endpoint) == 0 && tally[k].status == r.status))
            k++;
        if (k == nt)
            tally[nt++] = (struct tally){server, r.model.ptr, r.endpoint, r.status, 0};
        tally[k].n++;
        int e = r.endpoint[4] == 'c' && r.endpoint[5] == 'h';
        for (int b = 0; b < NLES; b++)
            if (r.duration_s <= atof(les[b]))
                dur_in[e][b]++;
        dur_in[e][NLES]++;
        dur_sum[e] += r.duration_s;
        dur_n[e]++;
        if (r.ttfb_s >= 0) {
            ttfb_sum[e] += r.ttfb_s;
            ttfb_n[e]++;
        }
        queued += r.queue_wait_s >= 0;
    }

    struct page p = render(5);
    check_page(&p);
    double total;
    assert_int_equal(count_samples(&p, "vllm_router_requests_total", &total), nt);
    assert_true(total == (double)THREADS * PER_THREAD);
    for (size_t k = 0; k < nt; k++) {
        char st[8];
        snprintf(st, sizeof st, "%d", tally[k].status);
        assert_true(VAL(&p, "vllm_router_requests_total", "server", tally[k].server, "model",
                        tally[k].model, "endpoint", tally[k].endpoint, "status",
                        st) == (double)THREADS * tally[k].n);
    }
    const char *eps[2] = {"/v1/completions", "/v1/chat/completions"};
    for (int e = 0; e < 2; e++) {
        for (int b = 0; b < NLES; b++)
            assert_true(VAL(&p, "vllm_router_request_duration_seconds_bucket", "endpoint", eps[e],
                            "le", les[b]) == (double)THREADS * dur_in[e][b]);
        assert_true(VAL(&p, "vllm_router_request_duration_seconds_bucket", "endpoint", eps[e], "le",
                        "+Inf") == (double)THREADS * dur_n[e]);
        assert_true(VAL(&p, "vllm_router_request_duration_seconds_count", "endpoint", eps[e]) ==
                    (double)THREADS * dur_n[e]);
        assert_true(VAL(&p, "vllm_router_request_duration_seconds_sum", "endpoint", eps[e]) ==
                    THREADS * dur_sum[e]);
        assert_true(VAL(&p, "vllm_router_time_to_first_byte_seconds_count", "endpoint", eps[e]) ==
                    (double)THREADS * ttfb_n[e]);
        assert_true(VAL(&p, "vllm_router_time_to_first_byte_seconds_sum", "endpoint", eps[e]) ==
                    THREADS * ttfb_sum[e]);
        /* every ttfb is 0.0625: all of them in le="0.1", none in le="0.05" */
        assert_true(VAL(&p, "vllm_router_time_to_first_byte_seconds_bucket", "endpoint", eps[e],
                        "le", "0.05") == 0);
        assert_true(VAL(&p, "vllm_router_time_to_first_byte_seconds_bucket", "endpoint", eps[e],
                        "le", "0.1") == (double)THREADS * ttfb_n[e]);
    }
    /* Tokens: only where the response reported them (never for the router's own 503s). */
    assert_true(VAL(&p, "vllm_router_prompt_tokens_total", "server", "http://10.0.0.1:8000",
                    "model", "qwen") == THREADS * 10.0 * (PER_THREAD / 2));
    assert_true(VAL(&p, "vllm_router_completion_tokens_total", "server", "http://10.0.0.1:8000",
                    "model", "llama") == THREADS * 7.0 * (PER_THREAD / 4));
    assert_true(isnan(VAL(&p, "vllm_router_prompt_tokens_total", "server", "", "model", "llama")));
    assert_true(VAL(&p, "vllm_router_retries_total", "reason", "connect") ==
                THREADS * (PER_THREAD / 20.0));
    assert_true(VAL(&p, "vllm_router_retries_total", "reason", "status_503") ==
                THREADS * (PER_THREAD / 20.0));
    assert_true(VAL(&p, "vllm_router_queue_rejected_total", "reason", "queue_full") ==
                THREADS * (PER_THREAD / 100.0));
    assert_true(VAL0(&p, "vllm_router_queue_length") == 5);
    assert_true(VAL0(&p, "vllm_router_queue_wait_seconds_count") == (double)THREADS * queued);
    assert_true(VAL0(&p, "vllm_router_queue_wait_seconds_sum") == THREADS * 0.25 * queued);
    assert_true(VAL(&p, "vllm_router_queue_wait_seconds_bucket", "le", "0.1") == 0);
    assert_true(VAL(&p, "vllm_router_queue_wait_seconds_bucket", "le", "0.25") ==
                (double)THREADS * queued);
    assert_true(VAL(&p, "vllm_router_config_reloads_total", "result", "success") == 2);
    assert_true(VAL(&p, "vllm_router_config_reloads_total", "result", "failure") == 1);
    rt_free(p.text);
    rt_metrics_shutdown();
}

/* ---- hostile labels ---- */

static void record_model(unsigned shard, struct rt_str model, const char *server,
                         const char *endpoint)
{
    struct rt_metrics_request r = {.endpoint = endpoint,
                                   .model = model,
                                   .server = server,
                                   .status = 200,
                                   .duration_s = 0.1,
                                   .ttfb_s = 0.05,
                                   .prompt_tokens = 1,
                                   .completion_tokens = 1,
                                   .queue_wait_s = -1};
    rt_metrics_request(shard, &r);
}

static double model_count(const struct page *p, const char *model)
{
    return VAL(p, "vllm_router_requests_total", "server", "http://s:1", "model", model, "endpoint",
               "/v1/completions", "status", "200");
}

static void hostile_labels(void **state)
{
    (void)state;
    rt_metrics_init(1);
    const char *ep = "/v1/completions", *srv = "http://s:1";
    record_model(0, RT_STR_LIT("a\"b"), srv, ep);
    record_model(0, RT_STR_LIT("back\\slash"), srv, ep);
    record_model(0, RT_STR_LIT("two\nlines"), srv, ep);
    record_model(0, RT_STR_LIT("m\",evil=\"1} 7"), srv, ep);
    record_model(0, RT_STR_LIT("\xff\xfeX"), srv, ep);
    /* prints the same as the one above, so it must be the same series, not a repeated one */
    record_model(1, RT_STR_LIT("\xef\xbf\xbd\xef\xbf\xbdX"), srv, ep);
    record_model(0, RT_STR_LIT("ctl\x01\r"), srv, ep);
    record_model(0, RT_STR_LIT("nul\0z"), srv, ep);
    record_model(0, RT_STR_LIT("cut\xe2\x82"), srv, ep); /* a truncated 3-byte sequence */
    char longm[5000];
    memset(longm, 'x', sizeof longm);
    record_model(0, rt_str_make(longm, sizeof longm), srv, ep);
    char accents[201];
    for (int i = 0; i < 100; i++)
        memcpy(accents + 2 * i, "\xc3\xa9", 2);
    accents[200] = 'a'; /* 201 bytes; cut at 128 must fall between two characters */
    record_model(0, rt_str_make(accents, sizeof accents), srv, ep);
    /* hostile server and endpoint too (a router-made answer has no server: NULL) */
    record_model(0, RT_STR_LIT("m"), "http://x\"y\\z\n", "/v1/\xc0\"odd");
    record_model(0, RT_STR_LIT(""), NULL, ep);
    rt_metrics_retry(0, "weird\"reason\n");
    rt_metrics_scrape_error(0, "http://bad\xff:1");

    struct page p = render(0);
    check_page(&p);
    assert_true(model_count(&p, "a\"b") == 1);
    assert_true(model_count(&p, "back\\slash") == 1);
    assert_true(model_count(&p, "two\nlines") == 1);
    assert_true(model_count(&p, "m\",evil=\"1} 7") == 1);
    assert_true(model_count(&p, "\xef\xbf\xbd\xef\xbf\xbdX") == 2);
    assert_true(model_count(&p, "ctl\xef\xbf\xbd\xef\xbf\xbd") == 1);
    assert_true(model_count(&p, "nul\xef\xbf\xbdz") == 1);
    assert_true(model_count(&p, "cut\xef\xbf\xbd\xef\xbf\xbd") == 1);
    char want[RT_METRICS_MAX_MODEL_LEN + 1];
    memset(want, 'x', RT_METRICS_MAX_MODEL_LEN);
    want[RT_METRICS_MAX_MODEL_LEN] = '\0';
    assert_true(model_count(&p, want) == 1);
    memcpy(want, accents, RT_METRICS_MAX_MODEL_LEN);
    assert_true(model_count(&p, want) == 1);
    assert_true(VAL(&p, "vllm_router_requests_total", "server", "http://x\"y\\z\n", "model", "m",
                    "endpoint", "/v1/\xef\xbf\xbd\"odd", "status", "200") == 1);
    assert_true(VAL(&p, "vllm_router_requests_total", "server", "", "model", "", "endpoint", ep,
                    "status", "200") == 1);
    assert_true(VAL(&p, "vllm_router_retries_total", "reason", "weird\"reason\n") == 1);
    assert_true(VAL(&p, "vllm_router_scrape_errors_total", "server", "http://bad\xef\xbf\xbd:1") ==
                1);
    /* the raw page holds the escapes, not the bytes */
    assert_non_null(strstr(p.text, "model=\"a\\\"b\""));
    assert_non_null(strstr(p.text, "model=\"two\\nlines\""));
    assert_non_null(strstr(p.text, "model=\"back\\\\slash\""));
    promtool_ok(&p);
    rt_free(p.text);
    rt_metrics_shutdown();
}

/* ---- cardinality ---- */

static void cardinality_cap(void **state)
{
    (void)state;
    rt_metrics_init(1);
    char m[32];
    unsigned recorded = 0;
    for (int i = 0; i < RT_METRICS_MAX_SERIES + 50; i++) {
        snprintf(m, sizeof m, "model-%d", i);
        record_model(0, rt_str_cstr(m), "http://s:1", "/v1/completions");
        recorded++;
    }
    record_model(0, RT_STR_LIT("model-0"), "http://s:1", "/v1/completions"); /* still its own */
    recorded++;
    /* other shards have caps of their own */
    record_model(1, RT_STR_LIT("model-x"), "http://s:1", "/v1/completions");
    recorded++;

    struct page p = render(0);
    double total;
    assert_int_equal(count_samples(&p, "vllm_router_requests_total", &total),
                     RT_METRICS_MAX_SERIES + 2);
    assert_true(total == recorded);
    assert_true(model_count(&p, "other") == 50);
    assert_true(model_count(&p, "model-0") == 2);
    assert_true(model_count(&p, "model-x") == 1);
    assert_true(isnan(model_count(&p, "model-10049")));
    rt_free(p.text);

    /* Past the reserve, distinct servers fold into server="other" too: still bounded, and
     * nothing recorded is lost. */
    for (int i = 0; i < 3000; i++) {
        snprintf(m, sizeof m, "http://h%d:1", i);
        record_model(0, RT_STR_LIT("y"), m, "/v1/completions");
        recorded++;
    }
    /* endpoints and reasons have their own small caps */
    for (int i = 0; i < 2 * RT_METRICS_MAX_ENDPOINTS; i++) {
        snprintf(m, sizeof m, "/path/%d", i);
        record_model(0, RT_STR_LIT("model-0"), "http://s:1", m);
        recorded++;
        snprintf(m, sizeof m, "reason_%d", i);
        rt_metrics_retry(0, m);
    }
    p = render(0);
    check_page(&p);
    size_t n = count_samples(&p, "vllm_router_requests_total", &total);
    assert_true(n <= RT_METRICS_MAX_SERIES + 2 + 1000 + 1);
    assert_true(total == recorded);
    assert_true(VAL(&p, "vllm_router_requests_total", "server", "other", "model", "other",
                    "endpoint", "other", "status", "200") > 0);
    n = count_samples(&p, "vllm_router_request_duration_seconds_count", &total);
    assert_int_equal(n, RT_METRICS_MAX_ENDPOINTS + 1);
    assert_true(total == recorded);
    assert_true(VAL(&p, "vllm_router_request_duration_seconds_count", "endpoint", "other") ==
                RT_METRICS_MAX_ENDPOINTS + 1); /* 2 * max paths, max - 1 of them got a slot */
    n = count_samples(&p, "vllm_router_retries_total", &total);
    assert_int_equal(n, RT_METRICS_MAX_REASONS + 1);
    assert_true(total == 2 * RT_METRICS_MAX_ENDPOINTS);
    rt_free(p.text);
    rt_metrics_shutdown();
}

/* ---- fleet gauges, build info, odd calls ---- */

static struct rt_backend *backend(const char *url, int port, int capacity)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return rt_backend_new(url, NULL, "127.0.0.1", port, "", (struct sockaddr *)&sa, capacity, 1,
                          NULL);
}

static void fleet_gauges(void **state)
{
    (void)state;
    rt_metrics_init(2);
    struct rt_backend *a = backend("http://127.0.0.1:9001", 9001, 4);
    struct rt_backend *b = backend("http://127.0.0.1:9002", 9002, 8);
    rt_backend_dispatch(a);
    rt_backend_dispatch(a);
    atomic_store(&a->circuit, RT_CIRCUIT_OPEN);
    atomic_store(&a->draining, true);
    rt_backend_scraped(a, 3, 1, 42.5, 1024, rt_now_ms());
    atomic_store(&b->healthy, false);
    atomic_store(&b->circuit, RT_CIRCUIT_HALF_OPEN);
    struct rt_backend *both[2] = {a, b};
    rt_fleet_publish(both, 2);
    rt_metrics_scrape_error(rt_metrics_control_shard(), "http://127.0.0.1:9002");
    rt_metrics_scrape_error(rt_metrics_control_shard() + 7, "http://127.0.0.1:9002"); /* clamped */

    struct page p = render(7);
    check_page(&p);
    const char *ua = "http://127.0.0.1:9001", *ub = "http://127.0.0.1:9002";
    assert_true(VAL(&p, "vllm_router_backend_inflight", "server", ua) == 2);
    assert_true(VAL(&p, "vllm_router_backend_inflight", "server", ub) == 0);
    assert_true(VAL(&p, "vllm_router_backend_capacity", "server", ua) == 4);
    assert_true(VAL(&p, "vllm_router_backend_capacity", "server", ub) == 8);
    assert_true(VAL(&p, "vllm_router_backend_healthy", "server", ua) == 1);
    assert_true(VAL(&p, "vllm_router_backend_healthy", "server", ub) == 0);
    assert_true(VAL(&p, "vllm_router_backend_draining", "server", ua) == 1);
    assert_true(VAL(&p, "vllm_router_backend_draining", "server", ub) == 0);
    assert_true(VAL(&p, "vllm_router_backend_circuit_state", "server", ua, "state", "open") == 1);
    assert_true(VAL(&p, "vllm_router_backend_circuit_state", "server", ua, "state", "closed") == 0);
    assert_true(VAL(&p, "vllm_router_backend_circuit_state", "server", ua, "state", "half_open") ==
                0);
    assert_true(VAL(&p, "vllm_router_backend_circuit_state", "server", ub, "state", "half_open") ==
                1);
    assert_true(VAL(&p, "vllm_router_backend_scrape_ok", "server", ua) == 1);
    assert_true(VAL(&p, "vllm_router_backend_scrape_ok", "server", ub) == 0);
    assert_true(VAL(&p, "vllm_router_backend_running", "server", ua) == 3);
    assert_true(VAL(&p, "vllm_router_backend_waiting", "server", ua) == 1);
    assert_true(VAL(&p, "vllm_router_backend_kv_cache_usage_percent", "server", ua) == 42.5);
    /* never scraped: the scraped gauges are left out rather than made up */
    assert_true(isnan(VAL(&p, "vllm_router_backend_running", "server", ub)));
    assert_true(isnan(VAL(&p, "vllm_router_backend_kv_cache_usage_percent", "server", ub)));
    assert_true(VAL(&p, "vllm_router_scrape_errors_total", "server", ub) == 2);
    assert_true(VAL0(&p, "vllm_router_queue_length") == 7);
    assert_true(VAL(&p, "vllm_router_build_info", "version", RT_VERSION) == 1);
    double start = VAL0(&p, "vllm_router_process_start_time_seconds");
    double now = (double)time(NULL);
    assert_true(start > now - 600 && start <= now + 1);
    /* an empty histogram still has all its buckets at 0 */
    assert_true(VAL(&p, "vllm_router_queue_wait_seconds_bucket", "le", "+Inf") == 0);
    assert_true(VAL0(&p, "vllm_router_queue_wait_seconds_count") == 0);
    rt_free(p.text);

    /* a scrape failure hides the stale load numbers */
    rt_backend_scrape_failed(a);
    p = render(0);
    assert_true(isnan(VAL(&p, "vllm_router_backend_running", "server", ua)));
    assert_true(VAL(&p, "vllm_router_backend_scrape_ok", "server", ua) == 0);
    rt_free(p.text);

    rt_backend_release(a, RT_OUTCOME_CANCELLED, rt_now_ms());
    rt_backend_release(a, RT_OUTCOME_CANCELLED, rt_now_ms());
    rt_backend_unref(a);
    rt_backend_unref(b);
    rt_fleet_publish(NULL, 0);
    rt_metrics_shutdown();
}

static void before_init(void **state)
{
    (void)state;
    struct rt_metrics_request r = {
        .endpoint = "/v1/completions", .status = 200, .ttfb_s = -1, .queue_wait_s = -1};
    rt_metrics_request(0, &r); /* ignored, no crash */
    rt_metrics_retry(3, "connect");
    rt_metrics_reload(0, true);
    struct page p = render(0); /* no shards: still a valid page */
    check_page(&p);
    assert_true(VAL(&p, "vllm_router_config_reloads_total", "result", "success") == 0);
    assert_int_equal(count_samples(&p, "vllm_router_requests_total", NULL), 0);
    rt_free(p.text);
    /* init twice is allowed and starts over */
    rt_metrics_init(1);
    rt_metrics_reload(0, false);
    rt_metrics_init(1);
    p = render(0);
    assert_true(VAL(&p, "vllm_router_config_reloads_total", "result", "failure") == 0);
    rt_free(p.text);
    rt_metrics_shutdown();
}

/* A page from a busy router, with every family populated, through promtool. */
static void promtool_accepts_page(void **state)
{
    (void)state;
    rt_metrics_init(2);
    struct rt_backend *a = backend("http://127.0.0.1:9001", 9001, 4);
    rt_backend_scraped(a, 2, 0, 10, 1024, rt_now_ms());
    rt_fleet_publish(&a, 1);
    for (int j = 0; j < 200; j++) {
        struct rt_metrics_request r;
        gen(j, &r);
        rt_metrics_request((unsigned)j % 3, &r);
    }
    rt_metrics_retry(0, "connect");
    rt_metrics_queue_rejected(1, "queue_timeout");
    rt_metrics_scrape_error(2, "http://127.0.0.1:9001");
    rt_metrics_reload(2, true);
    struct page p = render(4);
    check_page(&p);
    bool ran = promtool_ok(&p);
    rt_free(p.text);
    rt_backend_unref(a);
    rt_fleet_publish(NULL, 0);
    rt_metrics_shutdown();
    if (!ran)
        skip();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(concurrent_merge), cmocka_unit_test(hostile_labels),
        cmocka_unit_test(cardinality_cap),  cmocka_unit_test(fleet_gauges),
        cmocka_unit_test(before_init),      cmocka_unit_test(promtool_accepts_page),
    };
    rt_fleet_init(); /* the page reads the fleet view */
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    rt_fleet_shutdown();
    return failed;
}
