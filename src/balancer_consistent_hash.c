/* Consistent hashing with bounded loads: requests with the same affinity key (a session, a
 * user) go to the same server, where its prompt prefix is likely still in the KV cache, unless
 * that server already carries more than hash_load_factor times the average load; then the key
 * passes to the next server on the ring. Backends sit on the ring as virtual nodes placed by
 * a hash of their URL, so a reload that removes one server moves only that server's keys. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "balancer_impl.h"

/* Virtual nodes per unit of weight: enough that a key's share per server stays within a few
 * percent of its weight share; capped so an absurd weight cannot blow up the ring. */
#define VNODES_PER_WEIGHT 160
#define VNODES_MAX 16000

struct point {
    uint64_t hash;
    uint64_t tiebreak; /* hash of the URL: a stable order when two points collide */
    int idx;           /* index into the view */
};

struct consistent_hash {
    struct rt_balancer base;
    double factor;      /* bound = ceil(factor * (total inflight + 1) / candidates) */
    unsigned rot;       /* for the least_inflight fallback */
    bool built;
    uint64_t version;   /* of the view the ring is indexed by */
    size_t nb;          /* backends in that view */
    double *weights;    /* per view index, as placed: a weight change rebuilds */
    uint32_t *mark;     /* per view index: == gen when a candidate of this pick */
    uint32_t gen;
    struct point *ring; /* sorted by hash */
    size_t npoints;
};

static int create(struct rt_balancer **out, const struct rt_policy_conf *c, char *err,
                  size_t errlen)
{
    double f = c->hash_load_factor == 0 ? 1.25 : c->hash_load_factor;
    if (isnan(f) || f < 1) {
        snprintf(err, errlen, "consistent_hash: hash_load_factor must be >= 1");
        return -1;
    }
    struct consistent_hash *p = rt_calloc(1, sizeof *p);
    p->factor = f;
    *out = &p->base;
    return 0;
}

static void destroy(struct rt_balancer *self)
{
    struct consistent_hash *p = (struct consistent_hash *)self;
    rt_free(p->weights);
    rt_free(p->mark);
    rt_free(p->ring);
    rt_free(p);
}

/* splitmix64's finaliser: spreads FNV's weak low bits over the whole word. */
static uint64_t mix(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xBF58476D1CE4E5B9ULL;
    x ^= x >> 27;
    x *= 0x94D049BB133111EBULL;
    x ^= x >> 31;
    return x;
}

static uint64_t hash_bytes(const char *s, size_t n)
{
    uint64_t h = 0xCBF29CE484222325ULL; /* FNV-1a */
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 0x100000001B3ULL;
    }
    return mix(h);
}

static int point_cmp(const void *a, const void *b)
{
    const struct point *x = a, *y = b;
    if (x->hash != y->hash)
        return x->hash < y->hash ? -1 : 1;
    if (x->tiebreak != y->tiebreak)
        return x->tiebreak < y->tiebreak ? -1 : 1;
    return (x->idx > y->idx) - (x->idx < y->idx);
}

static size_t vnodes(double w)
{
    if (w <= 0)
        return 0;
    double v = ceil(w * VNODES_PER_WEIGHT);
    return v > VNODES_MAX ? VNODES_MAX : (size_t)v;
}

/* Places every backend of <view> on a new ring. Allocates: only on a view or weight change. */
static void rebuild(struct consistent_hash *p, const struct rt_fleet_view *view)
{
    size_t nb = view->n ? view->n : 1;
    double *weights = rt_calloc(nb, sizeof *weights);
    size_t total = 0;
    for (size_t i = 0; i < view->n; i++) {
        weights[i] = load_weight(view->b[i]);
        total += vnodes(weights[i]);
    }
    struct point *ring = rt_malloc((total ? total : 1) * sizeof *ring);
    size_t k = 0;
    for (size_t i = 0; i < view->n; i++) {
        const char *url = view->b[i]->url;
        uint64_t base = hash_bytes(url, strlen(url));
        size_t v = vnodes(weights[i]);
        for (size_t j = 0; j < v; j++) {
            /* Point j of a server depends only on its URL and j: stable across views. */
            ring[k].hash = mix(base + (j + 1) * 0x9E3779B97F4A7C15ULL);
            ring[k].tiebreak = base;
            ring[k].idx = (int)i;
            k++;
        }
    }
    qsort(ring, total, sizeof *ring, point_cmp);
    rt_free(p->weights);
    rt_free(p->mark);
    rt_free(p->ring);
    p->weights = weights;
    p->mark = rt_calloc(nb, sizeof *p->mark);
    p->gen = 0;
    p->ring = ring;
    p->npoints = total;
    p->nb = view->n;
    p->version = view->version;
    p->built = true;
}

static bool stale(const struct consistent_hash *p, const struct rt_fleet_view *view,
                  const int *cands, size_t n)
{
    if (!p->built || p->version != view->version || p->nb != view->n)
        return true;
    for (size_t i = 0; i < n; i++)
        if (load_weight(view->b[cands[i]]) != p->weights[cands[i]])
            return true;
    return false;
}

/* The first point at or after <h>, wrapping past the top. */
static size_t lower_bound(const struct consistent_hash *p, uint64_t h)
{
    size_t lo = 0, hi = p->npoints;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (p->ring[mid].hash < h)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo == p->npoints ? 0 : lo;
}

/* Preconditions: n >= 1, cands are indexes into view.
 * Returns:
 *   - with an empty affinity key: least_inflight's choice (there is nothing to be sticky to);
 *   - else the first candidate clockwise from the key's hash whose inflight is below
 *     ceil(factor * (sum of the candidates' inflight + 1) / n), i.e. that stays within the
 *     bound after taking this request; servers that are not candidates (down, full, already
 *     tried, other model) are passed over, so their keys move only while they are out;
 *   - if every candidate is at the bound (only possible with concurrent changes), the key's
 *     own candidate; if no candidate is on the ring (all weigh 0), least_inflight's choice.
 * Never returns -1. */
static int pick(struct rt_balancer *self, const struct rt_fleet_view *view, const int *cands,
                size_t n, const struct rt_pick_hint *hint)
{
    struct consistent_hash *p = (struct consistent_hash *)self;
    if (n == 0)
        return -1;
    if (!hint || hint->affinity_key.len == 0)
        return rt_balancer_least_inflight_choose(view, cands, n, &p->rot);
    if (stale(p, view, cands, n))
        rebuild(p, view);
    if (p->npoints == 0)
        return rt_balancer_least_inflight_choose(view, cands, n, &p->rot);

    if (++p->gen == 0) {
        memset(p->mark, 0, p->nb * sizeof *p->mark);
        p->gen = 1;
    }
    int64_t total = 0;
    for (size_t i = 0; i < n; i++) {
        p->mark[cands[i]] = p->gen;
        total += load_inflight(view->b[cands[i]]);
    }
    double bound = ceil(p->factor * (double)(total + 1) / (double)n);

    int owner = -1;
    size_t at = lower_bound(p, hash_bytes(hint->affinity_key.ptr, hint->affinity_key.len));
    for (size_t k = 0; k < p->npoints; k++) {
        int idx = p->ring[(at + k) % p->npoints].idx;
        if (p->mark[idx] != p->gen)
            continue;
        if (owner < 0)
            owner = idx;
        if ((double)load_inflight(view->b[idx]) < bound)
            return idx;
        p->mark[idx] = 0; /* over the bound: skip its other points */
    }
    if (owner >= 0)
        return owner;
    return rt_balancer_least_inflight_choose(view, cands, n, &p->rot);
}

const struct rt_balancer_ops rt_balancer_consistent_hash_ops = {
    .name = "consistent_hash",
    .create = create,
    .destroy = destroy,
    .pick = pick,
};
