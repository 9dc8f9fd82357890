/* Weighted random: each candidate is chosen with probability weight / sum of the candidates'
 * weights, from a per-instance xorshift generator (seeded from the config for repeatable
 * runs). */
#include "alloc.h"
#include "balancer_impl.h"

struct random_policy {
    struct rt_balancer base;
    uint64_t rng;
};

static int create(struct rt_balancer **out, const struct rt_policy_conf *c, char *err,
                  size_t errlen)
{
    (void)err;
    (void)errlen;
    struct random_policy *p = rt_calloc(1, sizeof *p);
    p->rng = rt_balancer_seed(c->seed, p);
    *out = &p->base;
    return 0;
}

static void destroy(struct rt_balancer *self)
{
    rt_free(self);
}

/* Preconditions: n >= 1, cands are indexes into view.
 * Returns a candidate drawn in proportion to its weight; candidates of weight 0 only when all
 * weigh 0 (then uniformly). Never returns -1. */
static int pick(struct rt_balancer *self, const struct rt_fleet_view *view, const int *cands,
                size_t n, const struct rt_pick_hint *hint)
{
    (void)hint;
    struct random_policy *p = (struct random_policy *)self;
    if (n == 0)
        return -1;
    double total = 0;
    for (size_t i = 0; i < n; i++)
        total += load_weight(view->b[cands[i]]);
    if (!(total > 0) || !isfinite(total))
        return cands[rng_below(&p->rng, n)];
    double r = rng_unit(&p->rng) * total;
    int last = cands[0];
    for (size_t i = 0; i < n; i++) {
        double w = load_weight(view->b[cands[i]]);
        if (w <= 0)
            continue;
        last = cands[i];
        if (r < w)
            return last;
        r -= w;
    }
    /* Rounding (or a weight lowered since the sum) left r past the end: the last one. */
    return last;
}

const struct rt_balancer_ops rt_balancer_random_ops = {
    .name = "random",
    .create = create,
    .destroy = destroy,
    .pick = pick,
};
