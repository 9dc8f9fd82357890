/* The registry of balancing policies: one static array naming every policy, and creation by
 * name. Adding a policy is one file (src/balancer_<name>.c defining its ops) plus one line in
 * POLICIES below. */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "balancer.h"
#include "balancer_impl.h"

/* The first entry is the default (an empty or NULL name). */
static const struct rt_balancer_ops *const POLICIES[] = {
    &rt_balancer_load_score_ops,
    &rt_balancer_round_robin_ops,
    &rt_balancer_random_ops,
    &rt_balancer_least_inflight_ops,
    &rt_balancer_power_of_two_ops,
    &rt_balancer_consistent_hash_ops,
};
#define NPOLICIES (sizeof POLICIES / sizeof POLICIES[0])

static const struct rt_balancer_ops *find(const char *name)
{
    if (!name || !*name)
        return POLICIES[0];
    for (size_t i = 0; i < NPOLICIES; i++)
        if (strcmp(POLICIES[i]->name, name) == 0)
            return POLICIES[i];
    return NULL;
}

static char names[256];
static pthread_once_t names_once = PTHREAD_ONCE_INIT;

/* 256 bytes hold the six names with room for more; a longer list is cut, never overrun. */
static void build_names(void)
{
    size_t off = 0;
    for (size_t i = 0; i < NPOLICIES && off < sizeof names; i++) {
        int w = snprintf(names + off, sizeof names - off, "%s%s", i ? ", " : "",
                         POLICIES[i]->name);
        if (w < 0)
            break;
        off += (size_t)w;
    }
}

const char *rt_balancer_names(void)
{
    pthread_once(&names_once, build_names);
    return names;
}

int rt_balancer_known(const char *name)
{
    return find(name) != NULL;
}

int rt_balancer_create(const struct rt_policy_conf *c, struct rt_balancer **out, char *err,
                       size_t errlen)
{
    *out = NULL;
    const struct rt_balancer_ops *ops = find(c->name);
    if (!ops) {
        if (errlen)
            snprintf(err, errlen, "unknown policy '%s' (known: %s)", c->name,
                     rt_balancer_names());
        return -1;
    }
    struct rt_balancer *b = NULL;
    if (ops->create(&b, c, err, errlen) < 0)
        return -1;
    b->ops = ops;
    *out = b;
    return 0;
}

void rt_balancer_destroy(struct rt_balancer *b)
{
    if (b)
        b->ops->destroy(b);
}

uint64_t rt_balancer_seed(uint64_t seed, const void *instance)
{
    uint64_t s = seed;
    if (s == 0) {
        /* Unseeded instances in different workers should not march in step. */
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        s = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 30) ^ (uint64_t)(uintptr_t)instance;
    }
    /* splitmix64 finaliser: nearby seeds give unrelated states. */
    s += 0x9E3779B97F4A7C15ULL;
    s = (s ^ (s >> 30)) * 0xBF58476D1CE4E5B9ULL;
    s = (s ^ (s >> 27)) * 0x94D049BB133111EBULL;
    s ^= s >> 31;
    return s ? s : 0x9E3779B97F4A7C15ULL;
}
