/* Private helpers shared by the policy files (src/balancer_*.c); not part of the interface.
 *
 * Everything here only reads a backend's atomics (relaxed: a policy chooses on a recent
 * picture of the load, never on a promise) and never allocates. */
#ifndef RT_BALANCER_IMPL_H
#define RT_BALANCER_IMPL_H

#include <math.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "balancer.h"

/* Each policy file defines one of these; balancer.c lists them. */
extern const struct rt_balancer_ops rt_balancer_load_score_ops;
extern const struct rt_balancer_ops rt_balancer_round_robin_ops;
extern const struct rt_balancer_ops rt_balancer_random_ops;
extern const struct rt_balancer_ops rt_balancer_least_inflight_ops;
extern const struct rt_balancer_ops rt_balancer_power_of_two_ops;
extern const struct rt_balancer_ops rt_balancer_consistent_hash_ops;

static inline int load_inflight(struct rt_backend *b)
{
    int v = atomic_load_explicit(&b->inflight, memory_order_relaxed);
    return v < 0 ? 0 : v;
}

/* Capacity as a divisor: a capacity below 1 would divide by zero, so it counts as 1. */
static inline int load_capacity(struct rt_backend *b)
{
    int v = atomic_load_explicit(&b->capacity, memory_order_relaxed);
    return v < 1 ? 1 : v;
}

/* Weight as configured; NaN, infinities and negatives read as 0 ("no share"). */
static inline double load_weight(struct rt_backend *b)
{
    double w = atomic_load_explicit(&b->weight, memory_order_relaxed);
    return isfinite(w) && w > 0 ? w : 0;
}

/* Float comparison for scores: values within a relative 1e-9 are equal, so that e.g.
 * 0.1 * 3 and 0.3 count as a tie and the tie rotates instead of one server always winning
 * on rounding noise. Returns -1, 0 or 1. */
static inline int score_cmp(double a, double b)
{
    double scale = fmax(1.0, fmax(fabs(a), fabs(b)));
    if (fabs(a - b) <= 1e-9 * scale)
        return 0;
    return a < b ? -1 : 1;
}

/* xorshift64*: small, fast and good enough to spread requests; never seeded with 0. */
static inline uint64_t rng_next(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1DULL;
}

/* Uniform in [0, 1). */
static inline double rng_unit(uint64_t *s)
{
    return (double)(rng_next(s) >> 11) * 0x1.0p-53;
}

/* Uniform in [0, n), n >= 1; the modulo bias is below 2^-32 for any fleet size. */
static inline size_t rng_below(uint64_t *s, size_t n)
{
    return (size_t)(rng_next(s) % n);
}

/* A nonzero starting state from <seed>; seed 0 asks for one that differs per instance and run. */
uint64_t rt_balancer_seed(uint64_t seed, const void *instance);

/* least_inflight's choice, for policies that fall back to it: the candidate with the lowest
 * inflight / weight, the <*rot>-th of the tied ones (then *rot advances). */
int rt_balancer_least_inflight_choose(const struct rt_fleet_view *view, const int *cands,
                                      size_t n, unsigned *rot);

#endif
