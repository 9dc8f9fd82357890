/* The simulated vLLM engine: scheduling, KV and prefix-cache accounting, latency statistics
 * (see sim_engine.h). */
#include "sim_engine.h"

#include <string.h>

#include "alloc.h"

/* vLLM V1 bucket bounds (vllm/v1/metrics/loggers.py). */
const double rt_sim_le_ttft[] = {0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1,
                                 0.25,  0.5,   0.75, 1.0,  2.5,  5.0,  7.5,  10.0,
                                 20.0,  40.0,  80.0, 160.0, 640.0, 2560.0};
const unsigned rt_sim_le_ttft_n = sizeof rt_sim_le_ttft / sizeof rt_sim_le_ttft[0];
const double rt_sim_le_itl[] = {0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2,  0.3,  0.4, 0.5,
                                0.75, 1.0,   2.5,  5.0,   7.5, 10.0, 20.0, 40.0, 80.0};
const unsigned rt_sim_le_itl_n = sizeof rt_sim_le_itl / sizeof rt_sim_le_itl[0];
const double rt_sim_le_e2e[] = {0.3,  0.5,  0.8,  1.0,  1.5,   2.0,   2.5,   5.0,   10.0,  15.0, 20.0,
                                30.0, 40.0, 50.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0};
const unsigned rt_sim_le_e2e_n = sizeof rt_sim_le_e2e / sizeof rt_sim_le_e2e[0];

#define NIL UINT32_MAX
#define PREFIX_MAX_BLOCKS (1u << 20) /* memory bound whatever --kv-cache-tokens says */

/* LRU set of block hashes: entries in an array, a doubly linked recency list, hash chains. */
struct prefix_entry {
    uint64_t hash;
    uint32_t prev, next; /* recency list; head is the most recent */
    uint32_t chain;      /* next entry in the same hash bucket */
};

struct rt_sim_prefix {
    struct prefix_entry *e;
    uint32_t *buckets;
    uint32_t nbuckets; /* power of two */
    uint32_t cap, used;
    uint32_t head, tail;
};

static struct rt_sim_prefix *prefix_new(uint32_t cap)
{
    struct rt_sim_prefix *p = rt_calloc(1, sizeof *p);
    p->cap = cap;
    p->nbuckets = 1;
    while (p->nbuckets < cap * 2)
        p->nbuckets <<= 1;
    p->e = rt_malloc(sizeof *p->e * cap);
    p->buckets = rt_malloc(sizeof *p->buckets * p->nbuckets);
    for (uint32_t i = 0; i < p->nbuckets; i++)
        p->buckets[i] = NIL;
    p->head = p->tail = NIL;
    return p;
}

static void prefix_free(struct rt_sim_prefix *p)
{
    if (!p)
        return;
    rt_free(p->e);
    rt_free(p->buckets);
    rt_free(p);
}

static uint32_t prefix_find(const struct rt_sim_prefix *p, uint64_t h)
{
    for (uint32_t i = p->buckets[h & (p->nbuckets - 1)]; i != NIL; i = p->e[i].chain)
        if (p->e[i].hash == h)
            return i;
    return NIL;
}

static void lru_unlink(struct rt_sim_prefix *p, uint32_t i)
{
    struct prefix_entry *x = &p->e[i];
    if (x->prev != NIL)
        p->e[x->prev].next = x->next;
    else
        p->head = x->next;
    if (x->next != NIL)
        p->e[x->next].prev = x->prev;
    else
        p->tail = x->prev;
}

static void lru_push_front(struct rt_sim_prefix *p, uint32_t i)
{
    p->e[i].prev = NIL;
    p->e[i].next = p->head;
    if (p->head != NIL)
        p->e[p->head].prev = i;
    p->head = i;
    if (p->tail == NIL)
        p->tail = i;
}

/* Makes <h> the most recent entry, evicting the least recent one when full. */
static void prefix_touch(struct rt_sim_prefix *p, uint64_t h)
{
    uint32_t i = prefix_find(p, h);
    if (i != NIL) {
        lru_unlink(p, i);
        lru_push_front(p, i);
        return;
    }
    if (p->used < p->cap) {
        i = p->used++;
    } else {
        i = p->tail;
        lru_unlink(p, i);
        uint32_t *link = &p->buckets[p->e[i].hash & (p->nbuckets - 1)];
        while (*link != i)
            link = &p->e[*link].chain;
        *link = p->e[i].chain;
    }
    p->e[i].hash = h;
    uint32_t *b = &p->buckets[h & (p->nbuckets - 1)];
    p->e[i].chain = *b;
    *b = i;
    lru_push_front(p, i);
}

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    x ^= x >> 31;
    return x;
}

uint32_t rt_sim_tokens(struct rt_str text)
{
    size_t n = (text.len + RT_SIM_BYTES_PER_TOKEN - 1) / RT_SIM_BYTES_PER_TOKEN;
    return n > UINT32_MAX ? UINT32_MAX : (uint32_t)n;
}

static void hist_init(struct rt_sim_hist *h, const double *le, unsigned n)
{
    memset(h, 0, sizeof *h);
    h->le = le;
    h->n = n < RT_SIM_HIST_MAX ? n : RT_SIM_HIST_MAX;
}

static void hist_observe(struct rt_sim_hist *h, double v)
{
    for (unsigned i = 0; i < h->n; i++)
        if (v <= h->le[i]) {
            h->counts[i]++;
            break;
        }
    h->count++;
    h->sum += v;
}

static double secs(uint64_t ns)
{
    return (double)ns / 1e9;
}

static void apply_defaults(struct rt_sim_engine_conf *c)
{
    if (c->max_num_seqs == 0)
        c->max_num_seqs = 1;
    if (c->block_tokens == 0)
        c->block_tokens = 16;
    if (c->max_model_len == 0)
        c->max_model_len = 32768;
    if (c->kv_cache_tokens == 0)
        c->kv_cache_tokens = 262144;
    if (c->itl_batch_factor < 0)
        c->itl_batch_factor = 0;
}

void rt_sim_engine_init(struct rt_sim_engine *e, const struct rt_sim_engine_conf *conf,
                        rt_sim_admit_fn on_admit, void *ctx)
{
    memset(e, 0, sizeof *e);
    e->conf = *conf;
    apply_defaults(&e->conf);
    e->on_admit = on_admit;
    e->ctx = ctx;
    struct rt_sim_stats *s = &e->stats;
    hist_init(&s->ttft, rt_sim_le_ttft, rt_sim_le_ttft_n);
    hist_init(&s->itl, rt_sim_le_itl, rt_sim_le_itl_n);
    hist_init(&s->tpot, rt_sim_le_itl, rt_sim_le_itl_n);
    hist_init(&s->e2e, rt_sim_le_e2e, rt_sim_le_e2e_n);
    hist_init(&s->queue, rt_sim_le_e2e, rt_sim_le_e2e_n);
    hist_init(&s->prefill, rt_sim_le_e2e, rt_sim_le_e2e_n);
    hist_init(&s->decode, rt_sim_le_e2e, rt_sim_le_e2e_n);
    /* vLLM's build_1_2_5_buckets(max_model_len): 1, 2, 5, 10, 20, 50, ... up to the context. */
    unsigned n = 0;
    for (double m = 1; n + 3 <= RT_SIM_HIST_MAX; m *= 10) {
        const double steps[3] = {1, 2, 5};
        for (int k = 0; k < 3; k++)
            if (m * steps[k] <= e->conf.max_model_len)
                s->le_tokens[n++] = m * steps[k];
        if (m * 10 > e->conf.max_model_len)
            break;
    }
    hist_init(&s->req_prompt, s->le_tokens, n);
    hist_init(&s->req_gen, s->le_tokens, n);
    uint64_t blocks = e->conf.kv_cache_tokens / e->conf.block_tokens;
    if (blocks < 1)
        blocks = 1;
    if (blocks > PREFIX_MAX_BLOCKS)
        blocks = PREFIX_MAX_BLOCKS;
    e->prefix = prefix_new((uint32_t)blocks);
}

void rt_sim_engine_free(struct rt_sim_engine *e)
{
    prefix_free(e->prefix);
    e->prefix = NULL;
}

void rt_sim_engine_set_timing(struct rt_sim_engine *e, const struct rt_sim_engine_conf *conf)
{
    e->conf.ttft_base_ns = conf->ttft_base_ns;
    e->conf.prefill_ns_per_token = conf->prefill_ns_per_token;
    e->conf.itl_ns = conf->itl_ns;
    e->conf.itl_batch_factor = conf->itl_batch_factor < 0 ? 0 : conf->itl_batch_factor;
    e->conf.max_waiting = conf->max_waiting;
}

/* Chained hashes of the full blocks of <prompt>: block i's hash covers bytes [0, end of i). */
static void hash_blocks(struct rt_sim_engine *e, struct rt_sim_req *r, struct rt_str prompt)
{
    size_t block_bytes = (size_t)e->conf.block_tokens * RT_SIM_BYTES_PER_TOKEN;
    size_t n = prompt.len / block_bytes;
    r->nhashes = (uint32_t)n;
    r->hashes = n ? rt_malloc(n * sizeof *r->hashes) : NULL;
    uint64_t h = 0xcbf29ce484222325ull;
    const unsigned char *p = (const unsigned char *)prompt.ptr;
    for (size_t b = 0; b < n; b++) {
        for (size_t i = 0; i < block_bytes; i++)
            h = (h ^ p[b * block_bytes + i]) * 0x100000001b3ull;
        r->hashes[b] = mix64(h);
    }
}

static void list_remove(struct rt_sim_req **head, struct rt_sim_req **tail, struct rt_sim_req *r)
{
    if (r->prev)
        r->prev->next = r->next;
    else
        *head = r->next;
    if (r->next)
        r->next->prev = r->prev;
    else if (tail)
        *tail = r->prev;
    r->prev = r->next = NULL;
}

static bool can_admit(const struct rt_sim_engine *e, const struct rt_sim_req *r)
{
    if (e->running >= e->conf.max_num_seqs)
        return false;
    /* A request that does not fit the KV cache waits for others to finish, but an idle engine
     * takes it anyway (vLLM would have refused it at the door as too long). */
    return e->running == 0 || e->kv_used + r->prompt_tokens <= e->conf.kv_cache_tokens;
}

/* Moves <r> to RUNNING: prefix-cache lookup, KV reservation, prefill time. */
static void admit(struct rt_sim_engine *e, struct rt_sim_req *r, uint64_t now_ns)
{
    uint32_t hit = 0;
    while (hit < r->nhashes && prefix_find(e->prefix, r->hashes[hit]) != NIL)
        hit++;
    uint64_t cached = (uint64_t)hit * e->conf.block_tokens;
    /* vLLM always computes at least the last prompt token. */
    if (cached >= r->prompt_tokens)
        cached = r->prompt_tokens ? r->prompt_tokens - 1 : 0;
    r->cached_tokens = (uint32_t)cached;
    for (uint32_t i = 0; i < r->nhashes; i++)
        prefix_touch(e->prefix, r->hashes[i]);
    e->stats.prefix_queries += r->prompt_tokens;
    e->stats.prefix_hits += cached;
    e->stats.prompt_tokens += r->prompt_tokens;
    r->prefill_ns = e->conf.ttft_base_ns +
                    e->conf.prefill_ns_per_token * (uint64_t)(r->prompt_tokens - r->cached_tokens);
    r->state = RT_SIM_REQ_RUNNING;
    r->admit_ns = now_ns;
    e->kv_used += r->prompt_tokens;
    e->running++;
    r->prev = NULL;
    r->next = e->run_head;
    if (e->run_head)
        e->run_head->prev = r;
    e->run_head = r;
}

int rt_sim_engine_submit(struct rt_sim_engine *e, struct rt_sim_req *r, struct rt_str prompt,
                         uint64_t now_ns)
{
    e->stats.submitted++;
    if (!(e->waiting == 0 && e->running < e->conf.max_num_seqs) && e->conf.max_waiting &&
        e->waiting >= e->conf.max_waiting) {
        e->stats.rejected++;
        return RT_SIM_EFULL;
    }
    r->prompt_tokens = rt_sim_tokens(prompt);
    r->cached_tokens = r->generated = 0;
    r->arrival_ns = now_ns;
    r->admit_ns = r->first_ns = r->last_ns = 0;
    r->prev = r->next = NULL;
    hash_blocks(e, r, prompt);
    if (e->waiting == 0 && can_admit(e, r)) {
        admit(e, r, now_ns);
        return RT_SIM_RUNNING;
    }
    r->state = RT_SIM_REQ_WAITING;
    r->prev = e->wait_tail;
    if (e->wait_tail)
        e->wait_tail->next = r;
    else
        e->wait_head = r;
    e->wait_tail = r;
    e->waiting++;
    return RT_SIM_QUEUED;
}

uint64_t rt_sim_engine_itl_ns(const struct rt_sim_engine *e)
{
    unsigned batch = e->running > 1 ? e->running - 1 : 0;
    return (uint64_t)((double)e->conf.itl_ns * (1.0 + e->conf.itl_batch_factor * batch));
}

uint64_t rt_sim_next_token_due(uint64_t prev_due_ns, uint64_t now_ns, uint64_t itl_ns)
{
    uint64_t slack = itl_ns / 10 < 2000000 ? itl_ns / 10 : 2000000;
    uint64_t by_schedule = prev_due_ns + itl_ns;
    uint64_t by_emission = now_ns + itl_ns - slack;
    return by_schedule > by_emission ? by_schedule : by_emission;
}

void rt_sim_engine_token(struct rt_sim_engine *e, struct rt_sim_req *r, uint64_t now_ns)
{
    if (r->state != RT_SIM_REQ_RUNNING)
        return;
    if (r->generated == 0) {
        r->first_ns = now_ns;
        hist_observe(&e->stats.ttft, secs(now_ns - r->arrival_ns));
    } else {
        hist_observe(&e->stats.itl, secs(now_ns - r->last_ns));
    }
    r->last_ns = now_ns;
    r->generated++;
    e->stats.generation_tokens++;
    e->kv_used++;
}

void rt_sim_engine_finish(struct rt_sim_engine *e, struct rt_sim_req *r,
                          enum rt_sim_finish reason, uint64_t now_ns)
{
    struct rt_sim_stats *s = &e->stats;
    if (r->state == RT_SIM_REQ_DONE || r->state == RT_SIM_REQ_NEW)
        return;
    if (r->state == RT_SIM_REQ_WAITING) {
        list_remove(&e->wait_head, &e->wait_tail, r);
        e->waiting--;
    } else {
        list_remove(&e->run_head, NULL, r);
        e->running--;
        e->kv_used -= r->prompt_tokens + r->generated;
        hist_observe(&s->queue, secs(r->admit_ns - r->arrival_ns));
        if (r->generated > 0) {
            hist_observe(&s->prefill, secs(r->first_ns - r->admit_ns));
            hist_observe(&s->decode, secs(r->last_ns - r->first_ns));
        }
        if (r->generated > 1)
            hist_observe(&s->tpot, secs(r->last_ns - r->first_ns) / (r->generated - 1));
    }
    r->state = RT_SIM_REQ_DONE;
    if ((unsigned)reason >= RT_SIM_FINISH_COUNT)
        reason = RT_SIM_FINISH_ERROR;
    s->finished[reason]++;
    hist_observe(&s->e2e, secs(now_ns - r->arrival_ns));
    hist_observe(&s->req_prompt, r->prompt_tokens);
    hist_observe(&s->req_gen, r->generated);
    rt_free(r->hashes);
    r->hashes = NULL;
    r->nhashes = 0;
    while (e->wait_head && can_admit(e, e->wait_head)) {
        struct rt_sim_req *w = e->wait_head;
        list_remove(&e->wait_head, &e->wait_tail, w);
        e->waiting--;
        admit(e, w, now_ns);
        if (e->on_admit)
            e->on_admit(w, now_ns, e->ctx);
    }
}

double rt_sim_engine_kv_usage(const struct rt_sim_engine *e)
{
    double u = (double)e->kv_used / (double)e->conf.kv_cache_tokens;
    return u > 1.0 ? 1.0 : u;
}

size_t rt_sim_engine_prefix_blocks(const struct rt_sim_engine *e, size_t *capacity)
{
    if (capacity)
        *capacity = e->prefix->cap;
    return e->prefix->used;
}

const char *rt_sim_finish_name(enum rt_sim_finish reason)
{
    switch (reason) {
    case RT_SIM_FINISH_STOP: return "stop";
    case RT_SIM_FINISH_LENGTH: return "length";
    case RT_SIM_FINISH_ABORT: return "abort";
    default: return "error";
    }
}
