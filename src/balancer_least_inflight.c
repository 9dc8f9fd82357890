/* Least in-flight: the candidate with the fewest of the router's own outstanding requests per
 * unit of weight (nginx least_conn), ties taken in turn. */
#include "alloc.h"
#include "balancer_impl.h"

struct least_inflight {
    struct rt_balancer base;
    unsigned rot;
};

static int create(struct rt_balancer **out, const struct rt_policy_conf *c, char *err,
                  size_t errlen)
{
    (void)c;
    (void)err;
    (void)errlen;
    struct least_inflight *p = rt_calloc(1, sizeof *p);
    *out = &p->base;
    return 0;
}

static void destroy(struct rt_balancer *self)
{
    rt_free(self);
}

/* a.inflight / a.weight against b's, cross-multiplied so there is no division (and weight 0
 * is simply "infinitely loaded" unless idle); the tolerance makes 3 * 0.1 and 1 * 0.3 equal. */
static int cmp(int ia, double wa, int ib, double wb)
{
    if (wa <= 0 || wb <= 0) {
        /* Weight 0 sorts after every weighted one; among themselves by inflight. */
        if (wa > 0)
            return -1;
        if (wb > 0)
            return 1;
        return ia < ib ? -1 : ia > ib;
    }
    return score_cmp((double)ia * wb, (double)ib * wa);
}

int rt_balancer_least_inflight_choose(const struct rt_fleet_view *view, const int *cands,
                                      size_t n, unsigned *rot)
{
    if (n == 0)
        return -1;
    int best = cands[0];
    int best_inf = load_inflight(view->b[best]);
    double best_w = load_weight(view->b[best]);
    unsigned ties = 1;
    for (size_t i = 1; i < n; i++) {
        struct rt_backend *b = view->b[cands[i]];
        int inf = load_inflight(b);
        double w = load_weight(b);
        int c = cmp(inf, w, best_inf, best_w);
        if (c < 0) {
            best = cands[i];
            best_inf = inf;
            best_w = w;
            ties = 1;
        } else if (c == 0) {
            ties++;
        }
    }
    unsigned want = (*rot)++ % ties;
    if (want == 0)
        return best;
    /* The want-th tie; if other workers moved the counts meanwhile, the first answer stands. */
    for (size_t i = 0; i < n; i++) {
        struct rt_backend *b = view->b[cands[i]];
        if (cmp(load_inflight(b), load_weight(b), best_inf, best_w) == 0 && want-- == 0)
            return cands[i];
    }
    return best;
}

/* Preconditions: n >= 1, cands are indexes into view.
 * Returns the candidate with the lowest inflight / weight; among equals, the next in turn
 * (the rot-th tie in candidate order), so idle equal servers share the work. Never -1. */
static int pick(struct rt_balancer *self, const struct rt_fleet_view *view, const int *cands,
                size_t n, const struct rt_pick_hint *hint)
{
    (void)hint;
    struct least_inflight *p = (struct least_inflight *)self;
    return rt_balancer_least_inflight_choose(view, cands, n, &p->rot);
}

const struct rt_balancer_ops rt_balancer_least_inflight_ops = {
    .name = "least_inflight",
    .create = create,
    .destroy = destroy,
    .pick = pick,
};
