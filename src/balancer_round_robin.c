/* Smooth weighted round robin (nginx's): each candidate gains its weight on every pick, the one
 * with the most credit wins and pays back the sum of the weights, so weights 1:2:3 give
 * exact 1:2:3 shares in evenly interleaved order (c b a c b c), never bursts. */
#include <math.h>
#include <stdint.h>

#include "alloc.h"
#include "balancer_impl.h"

struct round_robin {
    struct rt_balancer base;
    uint64_t version;   /* of the view the arrays below are indexed by */
    size_t n;
    uint64_t *ids;      /* backend id per view index, to carry credit across views */
    int64_t *credit;    /* "current_weight" per view index */
    bool built;
};

static int create(struct rt_balancer **out, const struct rt_policy_conf *c, char *err,
                  size_t errlen)
{
    (void)c;
    (void)err;
    (void)errlen;
    struct round_robin *p = rt_calloc(1, sizeof *p);
    *out = &p->base;
    return 0;
}

static void destroy(struct rt_balancer *self)
{
    struct round_robin *p = (struct round_robin *)self;
    rt_free(p->ids);
    rt_free(p->credit);
    rt_free(p);
}

/* Re-indexes the credit for a new view (the only allocation, once per view change); a
 * backend kept from the old view keeps its credit, so a reload does not restart the cycle. */
static void rebuild(struct round_robin *p, const struct rt_fleet_view *view)
{
    uint64_t *ids = rt_calloc(view->n ? view->n : 1, sizeof *ids);
    int64_t *credit = rt_calloc(view->n ? view->n : 1, sizeof *credit);
    for (size_t i = 0; i < view->n; i++) {
        ids[i] = view->b[i]->id;
        for (size_t j = 0; j < p->n; j++)
            if (p->ids[j] == ids[i]) {
                credit[i] = p->credit[j];
                break;
            }
    }
    rt_free(p->ids);
    rt_free(p->credit);
    p->ids = ids;
    p->credit = credit;
    p->n = view->n;
    p->version = view->version;
    p->built = true;
}

/* Weights in thousandths, as integers, so the credit never drifts; a positive weight is at
 * least 1. */
static int64_t units(struct rt_backend *b)
{
    double w = load_weight(b);
    if (w <= 0)
        return 0;
    if (w > 1e12)
        w = 1e12;
    int64_t u = llround(w * 1000);
    return u < 1 ? 1 : u;
}

/* Preconditions: n >= 1, cands are indexes into view.
 * Returns the candidate with the most credit after each gained its weight (the first in
 * candidate order on a tie). Candidates of weight 0 are only chosen when all weigh 0, and
 * then in plain rotation. Only candidates gain credit, so a server that is full or down does
 * not build up a burst for later. Never returns -1. */
static int pick(struct rt_balancer *self, const struct rt_fleet_view *view, const int *cands,
                size_t n, const struct rt_pick_hint *hint)
{
    (void)hint;
    struct round_robin *p = (struct round_robin *)self;
    if (n == 0)
        return -1;
    if (!p->built || p->version != view->version)
        rebuild(p, view);
    bool any = false;
    for (size_t i = 0; i < n && !any; i++)
        any = units(view->b[cands[i]]) > 0;
    int64_t total = 0;
    int best = -1;
    for (size_t i = 0; i < n; i++) {
        int c = cands[i];
        int64_t w = any ? units(view->b[c]) : 1;
        p->credit[c] += w;
        total += w;
        if (w > 0 && (best < 0 || p->credit[c] > p->credit[best]))
            best = c;
    }
    if (best < 0) /* every weight went to 0 between the two loops (admin API) */
        best = cands[0];
    p->credit[best] -= total;
    return best;
}

const struct rt_balancer_ops rt_balancer_round_robin_ops = {
    .name = "round_robin",
    .create = create,
    .destroy = destroy,
    .pick = pick,
};
