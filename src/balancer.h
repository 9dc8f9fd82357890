/* Balancing policies: a small interface and a registry; one file per policy
 * (src/balancer_<name>.c).
 *
 * A policy instance belongs to one worker thread: pick() is never called concurrently on one
 * instance, but the backends it reads are shared, so it only reads their atomics. The caller
 * (the proxy) has already filtered the candidates (available, serving the model, not tried
 * yet, with room when capacity is enforced); the policy only chooses among them. */
#ifndef RT_BALANCER_H
#define RT_BALANCER_H

#include <stddef.h>
#include <stdint.h>

#include "fleet.h"
#include "str.h"

struct rt_policy_conf {
    const char *name;          /* "load_score" (default), "round_robin", "random",
                                  "least_inflight", "power_of_two", "consistent_hash" */
    double running_weight;     /* load_score: score = (running*rw + waiting*ww) / capacity */
    double waiting_weight;
    double hash_load_factor;   /* consistent_hash: bounded load, e.g. 1.25 */
    uint64_t seed;             /* random, power_of_two */
};

/* What the request offers for choosing. */
struct rt_pick_hint {
    struct rt_str model;        /* may be empty */
    struct rt_str affinity_key; /* consistent_hash key (header or body "user"); may be empty */
};

struct rt_balancer;

struct rt_balancer_ops {
    const char *name;
    int (*create)(struct rt_balancer **out, const struct rt_policy_conf *c, char *err,
                  size_t errlen);
    void (*destroy)(struct rt_balancer *self);
    /* Chooses one of <cands> (indexes into <view>, n >= 1). Returns an index into <view>, or
     * -1 only if it refuses all of them. No I/O, no allocation on the hot path. */
    int (*pick)(struct rt_balancer *self, const struct rt_fleet_view *view, const int *cands,
                size_t n, const struct rt_pick_hint *hint);
};

struct rt_balancer {
    const struct rt_balancer_ops *ops; /* first member of every policy's struct */
};

/* Creates the policy named c->name. Returns 0, or -1 with "unknown policy 'x' (known: ...)". */
int rt_balancer_create(const struct rt_policy_conf *c, struct rt_balancer **out, char *err,
                       size_t errlen);
void rt_balancer_destroy(struct rt_balancer *b);
/* Whether <name> is a known policy. */
int rt_balancer_known(const char *name);
/* Comma-separated list of known policy names. */
const char *rt_balancer_names(void);

static inline int rt_balancer_pick(struct rt_balancer *b, const struct rt_fleet_view *view,
                                   const int *cands, size_t n, const struct rt_pick_hint *hint)
{
    return b->ops->pick(b, view, cands, n, hint);
}

#endif
