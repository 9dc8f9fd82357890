/* The router's own Prometheus metrics: sharded counters and histograms, merged into the /metrics
 * page on read (see metrics.h). */
#include "metrics.h"
#include "utf8.h"

#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "alloc.h"
#include "buf.h"
#include "fleet.h"
#include "prom_write.h"

#define PREFIX "vllm_router_"

/* Past RT_METRICS_MAX_SERIES, tuples go to model="other"; past this many more, server and
 * endpoint become "other" too, so even a fleet of thousands of servers stays bounded. */
#define SERIES_RESERVE 1000

/* Latency buckets in seconds: LLM requests take from a few ms (errors, refusals, cached answers)
 * to minutes (long generations); 300 s is a common upper timeout. The strings are the le labels. */
static const struct {
    double v;
    const char *le;
} buckets[] = {
    {0.005, "0.005"}, {0.01, "0.01"}, {0.025, "0.025"}, {0.05, "0.05"},
    {0.1, "0.1"},     {0.25, "0.25"}, {0.5, "0.5"},     {1, "1"},
    {2.5, "2.5"},     {5, "5"},       {10, "10"},       {20, "20"},
    {30, "30"},       {60, "60"},     {120, "120"},     {300, "300"},
};
#define NBUCKETS (sizeof buckets / sizeof buckets[0])

struct hist {
    uint64_t n[NBUCKETS + 1]; /* per bucket, not cumulative; [NBUCKETS] = above the last bound */
    double sum;               /* seconds */
};

/* One series: its label values (copies living in the same allocation, right after the struct)
 * and its values. Which fields mean something depends on the table (see struct shard). */
#define NKEYS 3
struct series {
    uint64_t hash;          /* of the keys and status, see key_hash */
    int status;             /* requests: the HTTP status; 0 elsewhere */
    struct rt_str k[NKEYS]; /* label values, point into this allocation; unused ones empty */
    uint64_t count;
    uint64_t prompt, completion;     /* requests: token sums */
    bool has_prompt, has_completion; /* requests: some response reported them */
    struct hist *h;                  /* endpoints: [0] duration, [1] ttfb (owned); NULL elsewhere */
};

/* Open addressing with linear probing; owns its series. */
struct table {
    struct series **slot; /* cap entries, NULL = empty */
    size_t cap;           /* power of two, or 0 before the first insert */
    size_t n;
    bool hists; /* new series get their two histograms */
};

struct shard {
    pthread_mutex_t lock;  /* guards everything below */
    struct table req;      /* k = server, model, endpoint; status */
    struct table ep;       /* k[2] = endpoint: the duration and ttfb histograms */
    struct table retry;    /* k[0] = reason */
    struct table rejected; /* k[0] = reason */
    struct table scrape;   /* k[0] = server */
    struct hist queue_wait;
    uint64_t reloads[2]; /* [0] failure, [1] success */
};

/* Written by init/shutdown only, which run alone (metrics.h). */
static struct {
    struct shard *shards; /* nshards, the last one the control thread's */
    unsigned nshards;
    uint64_t seed;     /* random per process, so hostile label values cannot aim at a slot */
    double start_time; /* unix seconds */
} M;

/* ---- keys --------------------------------------------------------------------------------- */

static const struct rt_str OTHER = {"other", 5};

/* Copies <v> into <out> (<cap> bytes) as a label value that the writer renders one to one:
 * invalid UTF-8 bytes and control bytes other than tab and newline become U+FFFD (which is what
 * rt_prom_write_label_value would print for them anyway). Doing it here rather than only at
 * print time keeps two raw values that print alike in one series, so the page never repeats a
 * series. Stops before a character that would not fit whole. Returns the slice of <out>. */
static struct rt_str clean(struct rt_str v, char *out, size_t cap)
{
    static const char repl[] = "\xef\xbf\xbd";
    const unsigned char *s = (const unsigned char *)v.ptr;
    size_t i = 0, o = 0;
    while (i < v.len) {
        /* fast path: a run of printable ASCII (the usual model name) is copied as is */
        size_t run = i;
        while (run < v.len && s[run] >= 0x20 && s[run] < 0x7f)
            run++;
        if (run > i) {
            size_t n = run - i < cap - o ? run - i : cap - o;
            memcpy(out + o, v.ptr + i, n);
            o += n;
            i += n;
            if (o == cap)
                break;
            continue;
        }
        const char *src = v.ptr + i;
        size_t n = rt_utf8_seq(s + i, v.len - i), adv = n;
        if (n == 0 || (s[i] < 0x20 && s[i] != '\t' && s[i] != '\n') || s[i] == 0x7f) {
            src = repl;
            n = 3;
            adv = 1;
        }
        if (o + n > cap)
            break;
        memcpy(out + o, src, n);
        o += n;
        i += adv;
    }
    return rt_str_make(out, o);
}

/* Mixes <s> into <h> 8 bytes at a time (a multiply per word, not per byte: this is on every
 * request's path). The length goes in first, so ("ab","c") and ("a","bc") differ. */
static uint64_t mix_str(uint64_t h, struct rt_str s)
{
    const uint64_t k = 0x9e3779b97f4a7c15ULL;
    h = (h ^ s.len) * k;
    size_t i = 0;
    for (; i + 8 <= s.len; i += 8) {
        uint64_t w;
        memcpy(&w, s.ptr + i, 8);
        h = (h ^ w) * k;
        h ^= h >> 31;
    }
    if (i < s.len) {
        uint64_t w = 0;
        memcpy(&w, s.ptr + i, s.len - i);
        h = (h ^ w) * k;
        h ^= h >> 31;
    }
    return h;
}

/* The keys' hash from a random seed, with a full avalanche at the end so the low bits used for
 * the slot depend on every input bit. Not a cryptographic hash: the seed and the caps
 * (at most RT_METRICS_MAX_SERIES + a reserve per table) bound what a hostile client can do. */
static uint64_t key_hash(const struct rt_str *k, int status)
{
    uint64_t h = M.seed ^ 0xcbf29ce484222325ULL;
    for (int i = 0; i < NKEYS; i++)
        h = mix_str(h, k[i]);
    h ^= (uint64_t)(unsigned)status;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return h;
}

/* ---- tables ------------------------------------------------------------------------------- */

static struct series *find(const struct table *t, uint64_t hash, const struct rt_str *k, int status)
{
    if (!t->cap)
        return NULL;
    for (size_t i = hash & (t->cap - 1);; i = (i + 1) & (t->cap - 1)) {
        struct series *s = t->slot[i];
        if (!s)
            return NULL;
        if (s->hash == hash && s->status == status && rt_str_eq(s->k[0], k[0]) &&
            rt_str_eq(s->k[1], k[1]) && rt_str_eq(s->k[2], k[2]))
            return s;
    }
}

static void place(struct series **slot, size_t cap, struct series *s)
{
    size_t i = s->hash & (cap - 1);
    while (slot[i])
        i = (i + 1) & (cap - 1);
    slot[i] = s;
}

/* Adds a new series for <k>/<status> (which must not be there yet), copying the keys. */
static struct series *add(struct table *t, uint64_t hash, const struct rt_str *k, int status)
{
    if ((t->n + 1) * 2 > t->cap) { /* keep the load under 1/2 so probes stay short */
        size_t cap = t->cap ? t->cap * 2 : 16;
        struct series **slot = rt_calloc(cap, sizeof *slot);
        for (size_t i = 0; i < t->cap; i++)
            if (t->slot[i])
                place(slot, cap, t->slot[i]);
        rt_free(t->slot);
        t->slot = slot;
        t->cap = cap;
    }
    size_t klen = k[0].len + k[1].len + k[2].len;
    struct series *s = rt_calloc(1, sizeof *s + klen);
    char *p = (char *)(s + 1);
    for (int i = 0; i < NKEYS; i++) {
        if (k[i].len)
            memcpy(p, k[i].ptr, k[i].len);
        s->k[i] = rt_str_make(p, k[i].len);
        p += k[i].len;
    }
    s->hash = hash;
    s->status = status;
    if (t->hists)
        s->h = rt_calloc(2, sizeof *s->h);
    place(t->slot, t->cap, s);
    t->n++;
    return s;
}

static struct series *get(struct table *t, const struct rt_str *k, int status)
{
    uint64_t hash = key_hash(k, status);
    struct series *s = find(t, hash, k, status);
    return s ? s : add(t, hash, k, status);
}

/* The series of a single-label table (label in k[<i>]), or "other" once <max> exist. */
static struct series *get_capped(struct table *t, int i, struct rt_str v, size_t max)
{
    struct rt_str k[NKEYS] = {RT_STR_NULL, RT_STR_NULL, RT_STR_NULL};
    k[i] = v;
    uint64_t hash = key_hash(k, 0);
    struct series *s = find(t, hash, k, 0);
    if (s)
        return s;
    if (t->n >= max)
        k[i] = OTHER;
    return get(t, k, 0);
}

static void table_free(struct table *t)
{
    for (size_t i = 0; i < t->cap; i++) {
        if (t->slot[i]) {
            rt_free(t->slot[i]->h);
            rt_free(t->slot[i]);
        }
    }
    rt_free(t->slot);
    *t = (struct table){.hists = t->hists};
}

/* ---- recording ---------------------------------------------------------------------------- */

static void observe(struct hist *h, double v)
{
    size_t i = 0;
    while (i < NBUCKETS && v > buckets[i].v) /* le is inclusive: v <= bound counts */
        i++;
    h->n[i]++;
    h->sum += v;
}

static struct shard *shard_of(unsigned shard)
{
    if (!M.nshards)
        return NULL;
    return &M.shards[shard < M.nshards ? shard : M.nshards - 1];
}

void rt_metrics_init(unsigned nworkers)
{
    rt_metrics_shutdown();
    M.nshards = nworkers + 1;
    M.shards = rt_calloc(M.nshards, sizeof *M.shards);
    for (unsigned i = 0; i < M.nshards; i++) {
        pthread_mutex_init(&M.shards[i].lock, NULL);
        M.shards[i].ep.hists = true;
    }
    if (getrandom(&M.seed, sizeof M.seed, GRND_NONBLOCK) != (ssize_t)sizeof M.seed) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        M.seed = (uint64_t)ts.tv_nsec * 0x9e3779b97f4a7c15ULL ^ (uint64_t)(uintptr_t)&M;
    }
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    M.start_time = (double)now.tv_sec + (double)(now.tv_nsec / 1000000) / 1000.0;
}

void rt_metrics_shutdown(void)
{
    for (unsigned i = 0; i < M.nshards; i++) {
        struct shard *sh = &M.shards[i];
        table_free(&sh->req);
        table_free(&sh->ep);
        table_free(&sh->retry);
        table_free(&sh->rejected);
        table_free(&sh->scrape);
        pthread_mutex_destroy(&sh->lock);
    }
    rt_free(M.shards);
    M.shards = NULL;
    M.nshards = 0;
}

unsigned rt_metrics_control_shard(void)
{
    return M.nshards ? M.nshards - 1 : 0;
}

/* A duration that is safe to add to a sum: NaN and negatives count as 0. */
static double seconds(double v)
{
    return v >= 0 ? v : 0;
}

void rt_metrics_request(unsigned shard, const struct rt_metrics_request *m)
{
    struct shard *sh = shard_of(shard);
    if (!sh)
        return;
    char sbuf[RT_METRICS_MAX_LABEL_LEN], mbuf[RT_METRICS_MAX_MODEL_LEN];
    char ebuf[RT_METRICS_MAX_LABEL_LEN];
    struct rt_str k[NKEYS] = {
        clean(rt_str_cstr(m->server), sbuf, sizeof sbuf),
        clean(m->model, mbuf, sizeof mbuf),
        clean(rt_str_cstr(m->endpoint), ebuf, sizeof ebuf),
    };
    int status = m->status < 0 ? 0 : m->status > 999 ? 999 : m->status;
    struct rt_str endpoint = k[2]; /* the histograms have their own cap: keep it unfolded */
    uint64_t hash = key_hash(k, status);

    pthread_mutex_lock(&sh->lock);
    struct series *s = find(&sh->req, hash, k, status);
    if (!s && sh->req.n >= RT_METRICS_MAX_SERIES) {
        k[1] = OTHER;
        hash = key_hash(k, status);
        s = find(&sh->req, hash, k, status);
        if (!s && sh->req.n >= RT_METRICS_MAX_SERIES + SERIES_RESERVE) {
            k[0] = OTHER;
            k[2] = OTHER;
            hash = key_hash(k, status);
            s = find(&sh->req, hash, k, status);
        }
    }
    if (!s)
        s = add(&sh->req, hash, k, status);
    s->count++;
    if (m->prompt_tokens >= 0) {
        s->prompt += (uint64_t)m->prompt_tokens;
        s->has_prompt = true;
    }
    if (m->completion_tokens >= 0) {
        s->completion += (uint64_t)m->completion_tokens;
        s->has_completion = true;
    }
    struct series *e = get_capped(&sh->ep, 2, endpoint, RT_METRICS_MAX_ENDPOINTS);
    observe(&e->h[0], seconds(m->duration_s));
    if (m->ttfb_s >= 0)
        observe(&e->h[1], m->ttfb_s);
    if (m->queue_wait_s >= 0)
        observe(&sh->queue_wait, m->queue_wait_s);
    pthread_mutex_unlock(&sh->lock);
}

/* One more under label value <v> in the single-label table at offset <table_off> of the shard. */
static void count_one(unsigned shard, size_t table_off, const char *v, size_t max)
{
    struct shard *sh = shard_of(shard);
    if (!sh)
        return;
    char buf[RT_METRICS_MAX_LABEL_LEN];
    struct rt_str key = clean(rt_str_cstr(v), buf, sizeof buf);
    pthread_mutex_lock(&sh->lock);
    struct table *t = (struct table *)((char *)sh + table_off);
    get_capped(t, 0, key, max)->count++;
    pthread_mutex_unlock(&sh->lock);
}

void rt_metrics_retry(unsigned shard, const char *reason)
{
    count_one(shard, offsetof(struct shard, retry), reason, RT_METRICS_MAX_REASONS);
}

void rt_metrics_queue_rejected(unsigned shard, const char *reason)
{
    count_one(shard, offsetof(struct shard, rejected), reason, RT_METRICS_MAX_REASONS);
}

void rt_metrics_scrape_error(unsigned shard, const char *server)
{
    count_one(shard, offsetof(struct shard, scrape), server, RT_METRICS_MAX_SERVERS);
}

void rt_metrics_reload(unsigned shard, bool ok)
{
    struct shard *sh = shard_of(shard);
    if (!sh)
        return;
    pthread_mutex_lock(&sh->lock);
    sh->reloads[ok ? 1 : 0]++;
    pthread_mutex_unlock(&sh->lock);
}

/* ---- merging ------------------------------------------------------------------------------ */

static void hist_add(struct hist *dst, const struct hist *src)
{
    for (size_t i = 0; i <= NBUCKETS; i++)
        dst->n[i] += src->n[i];
    dst->sum += src->sum;
}

/* Adds every series of <src> into <dst> (same seed, so the stored hashes are reused). */
static void table_merge(struct table *dst, const struct table *src)
{
    for (size_t i = 0; i < src->cap; i++) {
        const struct series *s = src->slot[i];
        if (!s)
            continue;
        struct series *d = find(dst, s->hash, s->k, s->status);
        if (!d)
            d = add(dst, s->hash, s->k, s->status);
        d->count += s->count;
        d->prompt += s->prompt;
        d->completion += s->completion;
        d->has_prompt |= s->has_prompt;
        d->has_completion |= s->has_completion;
        if (s->h && d->h) {
            hist_add(&d->h[0], &s->h[0]);
            hist_add(&d->h[1], &s->h[1]);
        }
    }
}

static int str_cmp(struct rt_str a, struct rt_str b)
{
    size_t n = a.len < b.len ? a.len : b.len;
    int c = n ? memcmp(a.ptr, b.ptr, n) : 0;
    if (c)
        return c;
    return a.len < b.len ? -1 : a.len > b.len;
}

static int series_cmp(const void *pa, const void *pb)
{
    const struct series *a = *(const struct series *const *)pa;
    const struct series *b = *(const struct series *const *)pb;
    for (int i = 0; i < NKEYS; i++) {
        int c = str_cmp(a->k[i], b->k[i]);
        if (c)
            return c;
    }
    return (a->status > b->status) - (a->status < b->status);
}

/* The series of <t> in label order, so the page is stable from one scrape to the next. The
 * array is rt_malloc'ed (the caller frees it); the series stay owned by <t>. */
static struct series **sorted(const struct table *t)
{
    struct series **v = rt_malloc((t->n ? t->n : 1) * sizeof *v);
    size_t n = 0;
    for (size_t i = 0; i < t->cap; i++)
        if (t->slot[i])
            v[n++] = t->slot[i];
    qsort(v, n, sizeof *v, series_cmp);
    return v;
}

/* ---- writing ------------------------------------------------------------------------------ */

struct lbl {
    const char *name;
    struct rt_str v;
};

static void family(struct rt_buf *b, const char *name, const char *type, const char *help)
{
    rt_buf_printf(b, "# HELP " PREFIX "%s %s\n# TYPE " PREFIX "%s %s\n", name, help, name, type);
}

/* Appends "PREFIX<name><suffix>{labels} " (no braces without labels). */
static void head(struct rt_buf *b, const char *name, const char *suffix, const struct lbl *l,
                 size_t n)
{
    rt_buf_printf(b, PREFIX "%s%s", name, suffix);
    for (size_t i = 0; i < n; i++) {
        rt_buf_printf(b, "%c%s=\"", i ? ',' : '{', l[i].name);
        rt_prom_write_label_value(b, l[i].v);
        rt_buf_printf(b, "\"");
    }
    rt_buf_printf(b, n ? "} " : " ");
}

static void line_u(struct rt_buf *b, const char *name, const struct lbl *l, size_t n, uint64_t v)
{
    head(b, name, "", l, n);
    rt_buf_printf(b, "%" PRIu64 "\n", v);
}

static void line_d(struct rt_buf *b, const char *name, const struct lbl *l, size_t n, double v)
{
    head(b, name, "", l, n);
    rt_prom_write_double(b, v);
    rt_buf_printf(b, "\n");
}

/* The _bucket (cumulative, ending with le="+Inf" == _count), _sum and _count lines of <h>;
 * <l> holds at most 3 labels. */
static void hist_lines(struct rt_buf *b, const char *name, const struct lbl *l, size_t n,
                       const struct hist *h)
{
    struct lbl ll[4];
    if (n)
        memcpy(ll, l, n * sizeof *l);
    ll[n].name = "le";
    uint64_t cum = 0;
    for (size_t i = 0; i <= NBUCKETS; i++) {
        cum += h->n[i];
        ll[n].v = rt_str_cstr(i < NBUCKETS ? buckets[i].le : "+Inf");
        head(b, name, "_bucket", ll, n + 1);
        rt_buf_printf(b, "%" PRIu64 "\n", cum);
    }
    head(b, name, "_sum", l, n);
    rt_prom_write_double(b, h->sum);
    rt_buf_printf(b, "\n");
    head(b, name, "_count", l, n);
    rt_buf_printf(b, "%" PRIu64 "\n", cum);
}

/* A single-label counter family from a table (label value in k[0]). */
static void counter_table(struct rt_buf *b, const char *name, const char *label, const char *help,
                          const struct table *t)
{
    family(b, name, "counter", help);
    struct series **v = sorted(t);
    for (size_t i = 0; i < t->n; i++)
        line_u(b, name, &(struct lbl){label, v[i]->k[0]}, 1, v[i]->count);
    rt_free(v);
}

static void write_requests(struct rt_buf *b, const struct shard *all)
{
    family(b, "requests_total", "counter",
           "Requests answered, by backend server (empty for answers the router made itself), "
           "model, endpoint and HTTP status (499: the client left first).");
    struct series **v = sorted(&all->req);
    struct table tok = {0}; /* (server, model) for the token counters */
    for (size_t i = 0; i < all->req.n; i++) {
        const struct series *s = v[i];
        char st[16];
        snprintf(st, sizeof st, "%d", s->status);
        struct lbl l[4] = {{"server", s->k[0]},
                           {"model", s->k[1]},
                           {"endpoint", s->k[2]},
                           {"status", rt_str_cstr(st)}};
        line_u(b, "requests_total", l, 4, s->count);
        if (s->has_prompt || s->has_completion) {
            struct rt_str k[NKEYS] = {s->k[0], s->k[1], RT_STR_NULL};
            struct series *t = get(&tok, k, 0);
            t->prompt += s->prompt;
            t->completion += s->completion;
            t->has_prompt |= s->has_prompt;
            t->has_completion |= s->has_completion;
        }
    }
    rt_free(v);

    struct series **e = sorted(&all->ep);
    family(b, "request_duration_seconds", "histogram",
           "Time from the request's arrival to the end of its answer, by endpoint.");
    for (size_t i = 0; i < all->ep.n; i++)
        hist_lines(b, "request_duration_seconds", &(struct lbl){"endpoint", e[i]->k[2]}, 1,
                   &e[i]->h[0]);
    family(b, "time_to_first_byte_seconds", "histogram",
           "Time from the request's arrival to the first byte of the answer sent to the client "
           "(for a stream: the first token), by endpoint.");
    for (size_t i = 0; i < all->ep.n; i++)
        hist_lines(b, "time_to_first_byte_seconds", &(struct lbl){"endpoint", e[i]->k[2]}, 1,
                   &e[i]->h[1]);
    rt_free(e);

    v = sorted(&tok);
    family(b, "prompt_tokens_total", "counter",
           "Prompt tokens of answered requests whose response reported usage, by server and "
           "model.");
    for (size_t i = 0; i < tok.n; i++)
        if (v[i]->has_prompt)
            line_u(b, "prompt_tokens_total",
                   (struct lbl[]){{"server", v[i]->k[0]}, {"model", v[i]->k[1]}}, 2, v[i]->prompt);
    family(b, "completion_tokens_total", "counter",
           "Completion tokens of answered requests whose response reported usage, by server and "
           "model.");
    for (size_t i = 0; i < tok.n; i++)
        if (v[i]->has_completion)
            line_u(b, "completion_tokens_total",
                   (struct lbl[]){{"server", v[i]->k[0]}, {"model", v[i]->k[1]}}, 2,
                   v[i]->completion);
    rt_free(v);
    table_free(&tok);
}

static const char *const circuit_names[] = {"closed", "open", "half_open"};

/* The per-backend gauges of the current fleet view. A URL seen twice in one view (which the
 * fleet should never publish) is written once, so no series repeats. */
static void write_backends(struct rt_buf *b)
{
    struct rt_fleet_view *view = rt_fleet_acquire();
    size_t nb = view->n;
    bool *dup = rt_calloc(nb ? nb : 1, sizeof *dup);
    for (size_t i = 0; i < nb; i++)
        for (size_t j = 0; j < i && !dup[i]; j++)
            dup[i] = strcmp(view->b[i]->url, view->b[j]->url) == 0;

    static const struct {
        const char *name, *help;
    } fams[] = {
        {"backend_inflight", "Requests the router has in flight at the server."},
        {"backend_capacity", "Concurrent requests the router allows at the server "
                             "(max_concurrent_requests)."},
        {"backend_healthy", "1 when the server passes its active health checks, else 0."},
        {"backend_circuit_state", "Circuit breaker state of the server: 1 for the current state "
                                  "(closed, open or half_open), 0 for the others."},
        {"backend_draining", "1 when the server takes no new requests (drained or removed), "
                             "else 0."},
        {"backend_scrape_ok", "1 when the last scrape of the server's /metrics succeeded, "
                              "else 0."},
        {"backend_running", "Requests running on the server, from its last good scrape."},
        {"backend_waiting", "Requests waiting on the server, from its last good scrape."},
        {"backend_kv_cache_usage_percent", "KV cache usage of the server in percent (0-100), "
                                           "from its last good scrape."},
    };
    for (size_t f = 0; f < sizeof fams / sizeof fams[0]; f++) {
        family(b, fams[f].name, "gauge", fams[f].help);
        for (size_t i = 0; i < nb; i++) {
            struct rt_backend *be = view->b[i];
            if (dup[i])
                continue;
            struct lbl l[2] = {{"server", rt_str_cstr(be->url)}, {"state", RT_STR_NULL}};
            bool scraped = atomic_load_explicit(&be->scrape_ok, memory_order_relaxed);
            double kv = atomic_load_explicit(&be->kv_cache_perc, memory_order_relaxed);
            switch (f) {
            case 0:
                line_d(b, fams[f].name, l, 1,
                       atomic_load_explicit(&be->inflight, memory_order_relaxed));
                break;
            case 1:
                line_d(b, fams[f].name, l, 1,
                       atomic_load_explicit(&be->capacity, memory_order_relaxed));
                break;
            case 2:
                line_u(b, fams[f].name, l, 1, rt_backend_is_healthy(be));
                break;
            case 3: {
                int c = atomic_load_explicit(&be->circuit, memory_order_relaxed);
                for (int s = 0; s < 3; s++) {
                    l[1].v = rt_str_cstr(circuit_names[s]);
                    line_u(b, fams[f].name, l, 2, c == s);
                }
                break;
            }
            case 4:
                line_u(b, fams[f].name, l, 1,
                       atomic_load_explicit(&be->draining, memory_order_relaxed));
                break;
            case 5:
                line_u(b, fams[f].name, l, 1, scraped);
                break;
            case 6:
                if (scraped)
                    line_d(b, fams[f].name, l, 1,
                           atomic_load_explicit(&be->scraped_running, memory_order_relaxed));
                break;
            case 7:
                if (scraped)
                    line_d(b, fams[f].name, l, 1,
                           atomic_load_explicit(&be->scraped_waiting, memory_order_relaxed));
                break;
            default:
                if (scraped && kv >= 0)
                    line_d(b, fams[f].name, l, 1, kv);
                break;
            }
        }
    }
    rt_free(dup);
    rt_fleet_view_unref(view);
}

char *rt_metrics_render(size_t queued, size_t *len)
{
    struct shard all = {.ep.hists = true};
    for (unsigned i = 0; i < M.nshards; i++) {
        struct shard *sh = &M.shards[i];
        pthread_mutex_lock(&sh->lock);
        table_merge(&all.req, &sh->req);
        table_merge(&all.ep, &sh->ep);
        table_merge(&all.retry, &sh->retry);
        table_merge(&all.rejected, &sh->rejected);
        table_merge(&all.scrape, &sh->scrape);
        hist_add(&all.queue_wait, &sh->queue_wait);
        all.reloads[0] += sh->reloads[0];
        all.reloads[1] += sh->reloads[1];
        pthread_mutex_unlock(&sh->lock);
    }

    struct rt_buf b = {0};
    family(&b, "build_info", "gauge", "Always 1; the version label names the router's build.");
    line_u(&b, "build_info", &(struct lbl){"version", RT_STR_LIT(RT_VERSION)}, 1, 1);
    if (M.start_time > 0) {
        family(&b, "process_start_time_seconds", "gauge",
               "When the router started, in seconds since the Unix epoch.");
        line_d(&b, "process_start_time_seconds", NULL, 0, M.start_time);
    }
    write_requests(&b, &all);
    counter_table(&b, "retries_total", "reason",
                  "Attempts retried at another (or the same) server, by the reason the previous "
                  "attempt failed.",
                  &all.retry);
    counter_table(&b, "queue_rejected_total", "reason",
                  "Requests the admission queue refused (queue_full) or gave up on "
                  "(queue_timeout).",
                  &all.rejected);
    family(&b, "queue_length", "gauge", "Requests waiting in the admission queue now.");
    line_u(&b, "queue_length", NULL, 0, queued);
    family(&b, "queue_wait_seconds", "histogram",
           "Time requests spent in the admission queue before being dispatched.");
    hist_lines(&b, "queue_wait_seconds", NULL, 0, &all.queue_wait);
    write_backends(&b);
    counter_table(&b, "scrape_errors_total", "server",
                  "Failed scrapes of a server's /metrics, by server.", &all.scrape);
    family(&b, "config_reloads_total", "counter", "Configuration reloads, by result.");
    line_u(&b, "config_reloads_total", &(struct lbl){"result", RT_STR_LIT("success")}, 1,
           all.reloads[1]);
    line_u(&b, "config_reloads_total", &(struct lbl){"result", RT_STR_LIT("failure")}, 1,
           all.reloads[0]);

    table_free(&all.req);
    table_free(&all.ep);
    table_free(&all.retry);
    table_free(&all.rejected);
    table_free(&all.scrape);

    (void)rt_buf_reserve(&b, 1, (size_t)-1); /* room for the NUL, never past a cap */
    b.base[b.len] = '\0';
    *len = b.len;
    return b.base;
}
