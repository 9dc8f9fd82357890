/* The default policy, the seed's: the candidate with the lowest estimated load per slot wins,
 * score = (est_running * running_weight + est_waiting * waiting_weight) / capacity. */
#include <math.h>
#include <stdio.h>

#include "alloc.h"
#include "balancer_impl.h"

struct load_score {
    struct rt_balancer base;
    double running_weight;
    double waiting_weight;
    unsigned rot; /* which of the tied minima goes next */
};

static int create(struct rt_balancer **out, const struct rt_policy_conf *c, char *err,
                  size_t errlen)
{
    if (!isfinite(c->running_weight) || c->running_weight < 0 ||
        !isfinite(c->waiting_weight) || c->waiting_weight < 0) {
        snprintf(err, errlen, "load_score: running_weight and waiting_weight must be >= 0");
        return -1;
    }
    struct load_score *p = rt_calloc(1, sizeof *p);
    p->running_weight = c->running_weight;
    p->waiting_weight = c->waiting_weight;
    if (p->running_weight == 0 && p->waiting_weight == 0) {
        /* Both unset (a zeroed conf): the seed's weights, not a score blind to load. */
        p->running_weight = 3;
        p->waiting_weight = 1;
    }
    *out = &p->base;
    return 0;
}

static void destroy(struct rt_balancer *self)
{
    rt_free(self);
}

static double score(const struct load_score *p, struct rt_backend *b)
{
    double load = rt_backend_est_running(b) * p->running_weight +
                  rt_backend_est_waiting(b) * p->waiting_weight;
    return load / load_capacity(b);
}

/* Preconditions: n >= 1, cands are indexes into view.
 * Returns the candidate with the lowest score. When several share it (within score_cmp's
 * tolerance), the rot-th of them in candidate order, so equal servers take turns: a fixed
 * order would send every tie to the first one, and a start offset that merely rotates over
 * all candidates would favour the tied server that follows a loaded one.
 * Never returns -1. */
static int pick(struct rt_balancer *self, const struct rt_fleet_view *view, const int *cands,
                size_t n, const struct rt_pick_hint *hint)
{
    (void)hint;
    struct load_score *p = (struct load_score *)self;
    if (n == 0)
        return -1;
    int best = cands[0];
    double best_score = score(p, view->b[best]);
    unsigned ties = 1;
    for (size_t i = 1; i < n; i++) {
        double s = score(p, view->b[cands[i]]);
        int c = score_cmp(s, best_score);
        if (c < 0) {
            best = cands[i];
            best_score = s;
            ties = 1;
        } else if (c == 0) {
            ties++;
        }
    }
    unsigned want = p->rot++ % ties;
    if (want == 0)
        return best;
    /* Second pass for the want-th tie. Other workers may move the load in between; if the
     * tie is gone, the first pass's answer stands. */
    for (size_t i = 0; i < n; i++) {
        if (score_cmp(score(p, view->b[cands[i]]), best_score) == 0 && want-- == 0)
            return cands[i];
    }
    return best;
}

const struct rt_balancer_ops rt_balancer_load_score_ops = {
    .name = "load_score",
    .create = create,
    .destroy = destroy,
    .pick = pick,
};
