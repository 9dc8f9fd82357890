/* Power of two random choices: draw two different candidates at random and take the one with
 * fewer in-flight requests per slot; nearly as good as a full scan at spreading load, and it
 * keeps many routers (or workers) from all piling onto the same least-loaded server. */
#include "alloc.h"
#include "balancer_impl.h"

struct power_of_two {
    struct rt_balancer base;
    uint64_t rng;
};

static int create(struct rt_balancer **out, const struct rt_policy_conf *c, char *err,
                  size_t errlen)
{
    (void)err;
    (void)errlen;
    struct power_of_two *p = rt_calloc(1, sizeof *p);
    p->rng = rt_balancer_seed(c->seed, p);
    *out = &p->base;
    return 0;
}

static void destroy(struct rt_balancer *self)
{
    rt_free(self);
}

/* Preconditions: n >= 1, cands are indexes into view.
 * Returns the only candidate when n == 1; otherwise, of two distinct candidates drawn
 * uniformly, the one with the lower inflight / capacity (compared as inflight_a * cap_b <
 * inflight_b * cap_a, exact in 64-bit integers), the first drawn on a tie (itself random).
 * Never returns -1. */
static int pick(struct rt_balancer *self, const struct rt_fleet_view *view, const int *cands,
                size_t n, const struct rt_pick_hint *hint)
{
    (void)hint;
    struct power_of_two *p = (struct power_of_two *)self;
    if (n == 0)
        return -1;
    if (n == 1)
        return cands[0];
    size_t i = rng_below(&p->rng, n);
    size_t j = rng_below(&p->rng, n - 1);
    if (j >= i)
        j++;
    struct rt_backend *a = view->b[cands[i]];
    struct rt_backend *b = view->b[cands[j]];
    int64_t la = (int64_t)load_inflight(a) * load_capacity(b);
    int64_t lb = (int64_t)load_inflight(b) * load_capacity(a);
    return lb < la ? cands[j] : cands[i];
}

const struct rt_balancer_ops rt_balancer_power_of_two_ops = {
    .name = "power_of_two",
    .create = create,
    .destroy = destroy,
    .pick = pick,
};
