/* Unit tests for the balancing policies: thousands of picks over fake backends, checking each
 * policy's invariant on every pick (and that a pick is always one of the candidates). */
#include <arpa/inet.h>
#include <math.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "alloc.h"
#include "balancer.h"
#include "fleet.h"

#define MAXB 8

static const char *const ALL[] = {"load_score",     "round_robin",  "random",
                                  "least_inflight", "power_of_two", "consistent_hash"};
#define NALL (sizeof ALL / sizeof ALL[0])

/* ---- fixtures ---------------------------------------------------------------------------- */

static struct rt_backend *backend(int port, int capacity, double weight)
{
    struct sockaddr_in sa = {0};
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    char url[64], name[32];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", port);
    snprintf(name, sizeof name, "s%d", port);
    return rt_backend_new(url, name, "127.0.0.1", port, "", (struct sockaddr *)&sa, capacity,
                          weight, NULL);
}

/* A hand-built view over <b> (taking a reference on each, like the fleet's), with a version
 * no published view uses. Free with rt_fleet_view_unref. */
static struct rt_fleet_view *view_of(struct rt_backend *const *b, size_t n)
{
    static uint64_t version = 1u << 30;
    struct rt_fleet_view *v = rt_malloc(sizeof *v + (n ? n : 1) * sizeof v->b[0]);
    atomic_init(&v->refs, 1);
    v->version = ++version;
    v->n = n;
    for (size_t i = 0; i < n; i++) {
        v->b[i] = b[i];
        rt_backend_ref(b[i]);
    }
    return v;
}

struct fleet {
    struct rt_backend *b[MAXB];
    size_t n;
    struct rt_fleet_view *v;
    int all[MAXB]; /* 0..n-1: every backend a candidate */
};

static void fleet_make(struct fleet *f, size_t n, const int *caps, const double *weights)
{
    memset(f, 0, sizeof *f);
    f->n = n;
    for (size_t i = 0; i < n; i++) {
        f->b[i] = backend(18000 + (int)i, caps ? caps[i] : 8, weights ? weights[i] : 1.0);
        f->all[i] = (int)i;
    }
    f->v = view_of(f->b, n);
}

static void fleet_free(struct fleet *f)
{
    rt_fleet_view_unref(f->v);
    for (size_t i = 0; i < f->n; i++)
        rt_backend_unref(f->b[i]);
}

static struct rt_balancer *make(const char *name, double rw, double ww, double factor,
                                uint64_t seed)
{
    struct rt_policy_conf c = {name, rw, ww, factor, seed};
    struct rt_balancer *b = NULL;
    char err[256] = "";
    int rc = rt_balancer_create(&c, &b, err, sizeof err);
    if (rc != 0)
        fail_msg("create %s: %s", name ? name : "(default)", err);
    assert_non_null(b);
    return b;
}

static void set_inflight(struct rt_backend *b, int n)
{
    atomic_store(&b->inflight, n);
}

static uint64_t rnd_state = 88172645463325252ULL;
static uint64_t rnd(void)
{
    rnd_state ^= rnd_state << 13;
    rnd_state ^= rnd_state >> 7;
    rnd_state ^= rnd_state << 17;
    return rnd_state;
}

static bool in(const int *cands, size_t n, int x)
{
    for (size_t i = 0; i < n; i++)
        if (cands[i] == x)
            return true;
    return false;
}

static struct rt_pick_hint key_hint(char *buf, size_t len, unsigned k)
{
    int w = snprintf(buf, len, "session-%u", k);
    return (struct rt_pick_hint){RT_STR_NULL, rt_str_make(buf, (size_t)w)};
}

/* ---- registry ---------------------------------------------------------------------------- */

static void registry(void **state)
{
    (void)state;
    for (size_t i = 0; i < NALL; i++) {
        assert_true(rt_balancer_known(ALL[i]));
        assert_non_null(strstr(rt_balancer_names(), ALL[i]));
        struct rt_balancer *b = make(ALL[i], 3, 1, 1.25, 1);
        assert_string_equal(b->ops->name, ALL[i]);
        rt_balancer_destroy(b);
    }
    assert_false(rt_balancer_known("least_conn"));
    assert_string_equal(rt_balancer_names(),
                        "load_score, round_robin, random, least_inflight, power_of_two, "
                        "consistent_hash");

    /* No name: the default. */
    struct rt_balancer *d = make(NULL, 3, 1, 0, 0);
    assert_string_equal(d->ops->name, "load_score");
    rt_balancer_destroy(d);
    d = make("", 0, 0, 0, 0);
    assert_string_equal(d->ops->name, "load_score");
    rt_balancer_destroy(d);

    struct rt_policy_conf c = {"least_conn", 3, 1, 1.25, 0};
    struct rt_balancer *b = (struct rt_balancer *)&c; /* must be reset to NULL */
    char err[256] = "";
    assert_int_equal(rt_balancer_create(&c, &b, err, sizeof err), -1);
    assert_null(b);
    assert_string_equal(err, "unknown policy 'least_conn' (known: load_score, round_robin, "
                             "random, least_inflight, power_of_two, consistent_hash)");

    /* Bad settings are refused with a message. */
    c = (struct rt_policy_conf){"load_score", -1, 1, 0, 0};
    assert_int_equal(rt_balancer_create(&c, &b, err, sizeof err), -1);
    assert_non_null(strstr(err, "running_weight"));
    c = (struct rt_policy_conf){"consistent_hash", 3, 1, 0.5, 0};
    assert_int_equal(rt_balancer_create(&c, &b, err, sizeof err), -1);
    assert_non_null(strstr(err, "hash_load_factor"));
    c = (struct rt_policy_conf){"consistent_hash", 3, 1, NAN, 0};
    assert_int_equal(rt_balancer_create(&c, &b, err, sizeof err), -1);
    rt_balancer_destroy(NULL);
}

/* Every policy, random candidate subsets, random loads, weights and keys: the pick is always
 * one of the candidates, and a single candidate is always taken. */
static void pick_is_a_candidate(void **state)
{
    (void)state;
    int caps[MAXB] = {1, 2, 4, 8, 3, 5, 1, 16};
    double weights[MAXB] = {1, 2, 0.5, 3, 1, 0.1, 10, 1};
    struct fleet f;
    fleet_make(&f, MAXB, caps, weights);
    for (size_t p = 0; p < NALL; p++) {
        struct rt_balancer *bal = make(ALL[p], 3, 1, 1.25, 7);
        for (int it = 0; it < 3000; it++) {
            int cands[MAXB];
            size_t n = 0;
            for (size_t i = 0; i < MAXB; i++)
                if (rnd() % 3)
                    cands[n++] = (int)i;
            if (n == 0)
                cands[n++] = (int)(rnd() % MAXB);
            for (size_t i = 0; i < MAXB; i++)
                set_inflight(f.b[i], (int)(rnd() % 6));
            if (it % 100 == 0)
                rt_backend_scraped(f.b[rnd() % MAXB], (double)(rnd() % 5), (double)(rnd() % 3),
                                   10, -1, 1);
            char key[32];
            struct rt_pick_hint h = key_hint(key, sizeof key, (unsigned)(rnd() % 50));
            if (it % 7 == 0)
                h.affinity_key = RT_STR_NULL;
            int got = rt_balancer_pick(bal, f.v, cands, n, &h);
            if (!in(cands, n, got))
                fail_msg("%s picked %d, not a candidate", ALL[p], got);
            int one = cands[0];
            assert_int_equal(rt_balancer_pick(bal, f.v, &one, 1, &h), one);
        }
        rt_balancer_destroy(bal);
    }
    fleet_free(&f);
}

/* After the view is known, pick allocates nothing, whatever the policy. */
static void pick_does_not_allocate(void **state)
{
    (void)state;
    struct fleet f;
    fleet_make(&f, 4, NULL, NULL);
    for (size_t p = 0; p < NALL; p++) {
        struct rt_balancer *bal = make(ALL[p], 3, 1, 1.25, 7);
        char key[32];
        struct rt_pick_hint h = key_hint(key, sizeof key, 1);
        rt_balancer_pick(bal, f.v, f.all, f.n, &h); /* builds per-view state */
        size_t before = rt_alloc_count();
        for (unsigned i = 0; i < 1000; i++) {
            h = key_hint(key, sizeof key, i);
            set_inflight(f.b[i % 4], (int)(i % 5));
            rt_balancer_pick(bal, f.v, f.all, f.n, &h);
        }
        if (rt_alloc_count() != before)
            fail_msg("%s allocated in pick", ALL[p]);
        rt_balancer_destroy(bal);
    }
    fleet_free(&f);
}

/* ---- load_score -------------------------------------------------------------------------- */

static double score_of(struct rt_backend *b, double rw, double ww)
{
    return (rt_backend_est_running(b) * rw + rt_backend_est_waiting(b) * ww) /
           atomic_load(&b->capacity);
}

static void load_score_picks_minimum(void **state)
{
    (void)state;
    int caps[5] = {1, 2, 4, 3, 8};
    struct fleet f;
    fleet_make(&f, 5, caps, NULL);
    struct rt_balancer *bal = make("load_score", 3, 1, 0, 0);
    for (int it = 0; it < 5000; it++) {
        for (size_t i = 0; i < f.n; i++)
            set_inflight(f.b[i], (int)(rnd() % 9));
        if (it % 50 == 0) {
            size_t i = rnd() % f.n;
            if (rnd() % 2)
                rt_backend_scraped(f.b[i], (double)(rnd() % 6), (double)(rnd() % 4), 0, -1, 1);
            else
                rt_backend_scrape_failed(f.b[i]);
        }
        int got = rt_balancer_pick(bal, f.v, f.all, f.n, NULL);
        double s = score_of(f.b[got], 3, 1);
        for (size_t i = 0; i < f.n; i++)
            if (score_of(f.b[i], 3, 1) < s - 1e-9)
                fail_msg("picked %d (score %g) over %zu (score %g)", got, s, i,
                         score_of(f.b[i], 3, 1));
    }
    rt_balancer_destroy(bal);
    fleet_free(&f);
}

static void load_score_ties_rotate(void **state)
{
    (void)state;
    struct fleet f;
    fleet_make(&f, 4, NULL, NULL);
    struct rt_balancer *bal = make("load_score", 3, 1, 0, 0);
    /* Four idle equal servers: strict turns. */
    int counts[4] = {0};
    for (int it = 0; it < 4001; it++)
        counts[rt_balancer_pick(bal, f.v, f.all, f.n, NULL)]++;
    for (int i = 0; i < 4; i++)
        assert_in_range(counts[i], 1000, 1001);

    /* Two tied, one loaded between them in candidate order: the two still share evenly. */
    int cands[3] = {0, 2, 1};
    set_inflight(f.b[2], 1);
    memset(counts, 0, sizeof counts);
    for (int it = 0; it < 3000; it++)
        counts[rt_balancer_pick(bal, f.v, cands, 3, NULL)]++;
    assert_int_equal(counts[2], 0);
    assert_in_range(counts[0], 1499, 1501);
    assert_in_range(counts[1], 1499, 1501);

    /* Float noise is no tie-breaker: 0.3 against 0.1 * 3 (scraped) still rotates. */
    set_inflight(f.b[2], 0);
    rt_backend_scraped(f.b[0], 0.1 * 3, 0, 0, -1, 1);
    rt_backend_scraped(f.b[1], 0.3, 0, 0, -1, 1);
    memset(counts, 0, sizeof counts);
    for (int it = 0; it < 1000; it++)
        counts[rt_balancer_pick(bal, f.v, f.all, 2, NULL)]++;
    assert_int_equal(counts[0], 500);
    assert_int_equal(counts[1], 500);
    rt_balancer_destroy(bal);
    fleet_free(&f);
}

/* Capacities 1, 2, 4; the proxy passes only servers with room and dispatches the pick: seven
 * requests fill them 1, 2, 4, and at every step the load per slot stays level. */
static void load_score_follows_capacity(void **state)
{
    (void)state;
    int caps[3] = {1, 2, 4};
    struct fleet f;
    fleet_make(&f, 3, caps, NULL);
    struct rt_balancer *bal = make("load_score", 3, 1, 0, 0);
    for (int round = 0; round < 50; round++) {
        for (int req = 0; req < 7; req++) {
            int cands[3];
            size_t n = 0;
            for (size_t i = 0; i < f.n; i++)
                if (rt_backend_has_room(f.b[i]))
                    cands[n++] = (int)i;
            assert_true(n > 0);
            int got = rt_balancer_pick(bal, f.v, cands, n, NULL);
            assert_true(in(cands, n, got));
            assert_true(rt_backend_try_dispatch(f.b[got]));
            /* Level: no server is more than one request per slot ahead of another. */
            for (size_t i = 0; i < f.n; i++)
                for (size_t j = 0; j < f.n; j++)
                    assert_true(score_of(f.b[i], 1, 0) <= score_of(f.b[j], 1, 0) + 1.0 + 1e-9);
        }
        assert_int_equal(atomic_load(&f.b[0]->inflight), 1);
        assert_int_equal(atomic_load(&f.b[1]->inflight), 2);
        assert_int_equal(atomic_load(&f.b[2]->inflight), 4);
        for (size_t i = 0; i < f.n; i++)
            while (atomic_load(&f.b[i]->inflight) > 0)
                rt_backend_release(f.b[i], RT_OUTCOME_OK, 1);
    }
    rt_balancer_destroy(bal);
    fleet_free(&f);
}

static void load_score_weights_matter(void **state)
{
    (void)state;
    struct fleet f;
    fleet_make(&f, 2, NULL, NULL);
    rt_backend_scraped(f.b[0], 1, 0, 0, -1, 1); /* one running */
    rt_backend_scraped(f.b[1], 0, 2, 0, -1, 1); /* two waiting */
    struct rt_balancer *seed = make("load_score", 3, 1, 0, 0);   /* 3 vs 2 */
    struct rt_balancer *later = make("load_score", 1, 0.5, 0, 0); /* 1 vs 1: tie */
    struct rt_balancer *queue = make("load_score", 1, 1, 0, 0);   /* 1 vs 2 */
    for (int it = 0; it < 100; it++) {
        assert_int_equal(rt_balancer_pick(seed, f.v, f.all, 2, NULL), 1);
        assert_int_equal(rt_balancer_pick(queue, f.v, f.all, 2, NULL), 0);
        assert_int_equal(rt_balancer_pick(later, f.v, f.all, 2, NULL), it % 2);
    }
    rt_balancer_destroy(seed);
    rt_balancer_destroy(later);
    rt_balancer_destroy(queue);
    fleet_free(&f);
}

/* The estimate is the scrape plus what was dispatched (minus finished) since. */
static void load_score_uses_scrape_and_since(void **state)
{
    (void)state;
    struct fleet f;
    fleet_make(&f, 2, NULL, NULL);
    struct rt_balancer *bal = make("load_score", 3, 1, 0, 0);
    rt_backend_scraped(f.b[0], 2, 0, 0, -1, 1);
    rt_backend_scraped(f.b[1], 0, 0, 0, -1, 1);
    /* Dispatch the way the proxy would: the pick, then the accounting. */
    int seq[4];
    for (int i = 0; i < 4; i++) {
        seq[i] = rt_balancer_pick(bal, f.v, f.all, 2, NULL);
        rt_backend_dispatch(f.b[seq[i]]);
    }
    /* 2 vs 0 -> b1; 2 vs 1 -> b1; 2 vs 2 -> tie; then the other of the tie. */
    assert_int_equal(seq[0], 1);
    assert_int_equal(seq[1], 1);
    assert_int_not_equal(seq[2], seq[3]);
    /* Router inflight is not what counts while a scrape is fresh: b0 has 0 inflight but a
     * scraped 2 running (another router's), b1 finished its two since the scrape. */
    set_inflight(f.b[0], 0);
    rt_backend_release(f.b[1], RT_OUTCOME_OK, 1);
    rt_backend_release(f.b[1], RT_OUTCOME_OK, 1);
    assert_int_equal(rt_balancer_pick(bal, f.v, f.all, 2, NULL), 1);
    /* A new scrape replaces the counts: b1 now reports 5 running, 1 waiting. */
    rt_backend_scraped(f.b[1], 5, 1, 0, -1, 2);
    assert_int_equal(rt_balancer_pick(bal, f.v, f.all, 2, NULL), 0);
    /* A failed scrape falls back to the router's own inflight. */
    rt_backend_scrape_failed(f.b[1]);
    set_inflight(f.b[1], 0);
    assert_int_equal(rt_balancer_pick(bal, f.v, f.all, 2, NULL), 1);
    rt_balancer_destroy(bal);
    fleet_free(&f);
}

/* ---- round_robin ------------------------------------------------------------------------- */

static void round_robin_weights(void **state)
{
    (void)state;
    double w[3] = {1, 2, 3};
    struct fleet f;
    fleet_make(&f, 3, NULL, w);
    struct rt_balancer *bal = make("round_robin", 0, 0, 0, 0);
    int counts[3] = {0};
    int prev = -1, run = 0, maxrun = 0;
    for (int k = 1; k <= 600; k++) {
        int got = rt_balancer_pick(bal, f.v, f.all, 3, NULL);
        counts[got]++;
        run = got == prev ? run + 1 : 1;
        prev = got;
        if (run > maxrun)
            maxrun = run;
        /* Smooth: after any k picks each server is within one pick of its exact share. */
        for (int i = 0; i < 3; i++)
            assert_true(fabs(counts[i] - k * w[i] / 6.0) < 1.0 + 1e-9);
    }
    assert_int_equal(counts[0], 100);
    assert_int_equal(counts[1], 200);
    assert_int_equal(counts[2], 300);
    assert_true(maxrun <= 2); /* the heaviest never runs three in a row */

    /* A server left out of the candidates builds no credit for a burst later. */
    int two[2] = {0, 1};
    for (int k = 0; k < 300; k++)
        rt_balancer_pick(bal, f.v, two, 2, NULL);
    memset(counts, 0, sizeof counts);
    for (int k = 1; k <= 12; k++)
        counts[rt_balancer_pick(bal, f.v, f.all, 3, NULL)]++;
    assert_int_equal(counts[2], 6);
    rt_balancer_destroy(bal);
    fleet_free(&f);

    /* Equal weights: plain rotation. */
    fleet_make(&f, 4, NULL, NULL);
    bal = make("round_robin", 0, 0, 0, 0);
    int first = rt_balancer_pick(bal, f.v, f.all, 4, NULL);
    for (int k = 1; k < 400; k++)
        assert_int_equal(rt_balancer_pick(bal, f.v, f.all, 4, NULL), (first + k) % 4);
    rt_balancer_destroy(bal);
    fleet_free(&f);
}

/* ---- random ------------------------------------------------------------------------------ */

static void random_weighted(void **state)
{
    (void)state;
    double w[4] = {1, 2, 3, 0};
    struct fleet f;
    fleet_make(&f, 4, NULL, w);
    struct rt_balancer *a = make("random", 0, 0, 0, 42);
    struct rt_balancer *b = make("random", 0, 0, 0, 42);
    struct rt_balancer *c = make("random", 0, 0, 0, 43);
    int counts[4] = {0};
    int same = 0, same_other = 0;
    const int N = 60000;
    for (int k = 0; k < N; k++) {
        int x = rt_balancer_pick(a, f.v, f.all, 4, NULL);
        counts[x]++;
        same += x == rt_balancer_pick(b, f.v, f.all, 4, NULL);
        same_other += x == rt_balancer_pick(c, f.v, f.all, 4, NULL);
    }
    assert_int_equal(same, N); /* a seed repeats */
    assert_true(same_other < N * 9 / 10);
    assert_int_equal(counts[3], 0); /* weight 0: never */
    for (int i = 0; i < 3; i++) {
        double share = (double)counts[i] / N;
        if (fabs(share - w[i] / 6.0) > 0.01)
            fail_msg("server %d got %.3f, expected %.3f", i, share, w[i] / 6.0);
    }
    /* All weights 0: uniform rather than nothing. */
    int zero[1] = {3};
    assert_int_equal(rt_balancer_pick(a, f.v, zero, 1, NULL), 3);
    rt_balancer_destroy(a);
    rt_balancer_destroy(b);
    rt_balancer_destroy(c);
    fleet_free(&f);
}

/* ---- least_inflight ---------------------------------------------------------------------- */

static void least_inflight_picks_minimum(void **state)
{
    (void)state;
    double w[5] = {1, 2, 0.5, 1, 3};
    struct fleet f;
    fleet_make(&f, 5, NULL, w);
    struct rt_balancer *bal = make("least_inflight", 0, 0, 0, 0);
    for (int it = 0; it < 5000; it++) {
        for (size_t i = 0; i < f.n; i++)
            set_inflight(f.b[i], (int)(rnd() % 7));
        int got = rt_balancer_pick(bal, f.v, f.all, f.n, NULL);
        double s = atomic_load(&f.b[got]->inflight) / w[got];
        for (size_t i = 0; i < f.n; i++)
            assert_true(atomic_load(&f.b[i]->inflight) / w[i] >= s - 1e-9);
    }
    /* 2/2 == 1/1 == 3/3 with weights 2, 1, 3: a three-way tie that rotates. */
    fleet_free(&f);
    double w2[3] = {2, 1, 3};
    fleet_make(&f, 3, NULL, w2);
    set_inflight(f.b[0], 2);
    set_inflight(f.b[1], 1);
    set_inflight(f.b[2], 3);
    int counts[3] = {0};
    for (int it = 0; it < 3000; it++)
        counts[rt_balancer_pick(bal, f.v, f.all, 3, NULL)]++;
    for (int i = 0; i < 3; i++)
        assert_int_equal(counts[i], 1000);
    /* The proxy's loop: dispatching the pick each time keeps the counts level by weight. */
    for (size_t i = 0; i < 3; i++)
        set_inflight(f.b[i], 0);
    for (int it = 0; it < 600; it++)
        rt_backend_dispatch(f.b[rt_balancer_pick(bal, f.v, f.all, 3, NULL)]);
    assert_int_equal(atomic_load(&f.b[0]->inflight), 200);
    assert_int_equal(atomic_load(&f.b[1]->inflight), 100);
    assert_int_equal(atomic_load(&f.b[2]->inflight), 300);
    rt_balancer_destroy(bal);
    fleet_free(&f);
}

/* ---- power_of_two ------------------------------------------------------------------------ */

static void power_of_two_avoids_most_loaded(void **state)
{
    (void)state;
    int caps[5] = {4, 4, 8, 2, 4};
    struct fleet f;
    fleet_make(&f, 5, caps, NULL);
    struct rt_balancer *bal = make("power_of_two", 0, 0, 0, 9);
    int hits[5] = {0};
    for (int it = 0; it < 5000; it++) {
        for (size_t i = 0; i < f.n; i++)
            set_inflight(f.b[i], (int)(rnd() % 8));
        /* Two candidates: always the lower inflight/capacity. */
        int a = (int)(rnd() % 5), b = (int)((a + 1 + rnd() % 4) % 5);
        int two[2] = {a, b};
        int got = rt_balancer_pick(bal, f.v, two, 2, NULL);
        int other = got == a ? b : a;
        assert_true(atomic_load(&f.b[got]->inflight) * caps[other] <=
                    atomic_load(&f.b[other]->inflight) * caps[got]);
        /* Five: never the single most loaded one. */
        int worst = -1;
        bool unique = true;
        for (int i = 0; i < 5; i++) {
            if (worst < 0) {
                worst = i;
                continue;
            }
            int64_t li = (int64_t)atomic_load(&f.b[i]->inflight) * caps[worst];
            int64_t lw = (int64_t)atomic_load(&f.b[worst]->inflight) * caps[i];
            if (li > lw) {
                worst = i;
                unique = true;
            } else if (li == lw) {
                unique = false;
            }
        }
        got = rt_balancer_pick(bal, f.v, f.all, 5, NULL);
        if (unique)
            assert_int_not_equal(got, worst);
    }
    /* All equal: the random draws reach every server. */
    for (size_t i = 0; i < f.n; i++)
        set_inflight(f.b[i], 0);
    for (int it = 0; it < 1000; it++)
        hits[rt_balancer_pick(bal, f.v, f.all, 5, NULL)]++;
    for (int i = 0; i < 5; i++)
        assert_in_range(hits[i], 120, 280);
    rt_balancer_destroy(bal);
    fleet_free(&f);
}

/* ---- consistent_hash --------------------------------------------------------------------- */

#define KEYS 4000

static void consistent_hash_sticky_and_spread(void **state)
{
    (void)state;
    struct fleet f;
    fleet_make(&f, 4, NULL, NULL);
    struct rt_balancer *a = make("consistent_hash", 0, 0, 1.25, 0);
    struct rt_balancer *b = make("consistent_hash", 0, 0, 1.25, 0);
    int counts[4] = {0};
    for (unsigned k = 0; k < KEYS; k++) {
        char key[32];
        struct rt_pick_hint h = key_hint(key, sizeof key, k);
        int x = rt_balancer_pick(a, f.v, f.all, 4, &h);
        counts[x]++;
        /* Same key, same server: again, and from another instance (another worker). */
        assert_int_equal(rt_balancer_pick(a, f.v, f.all, 4, &h), x);
        assert_int_equal(rt_balancer_pick(b, f.v, f.all, 4, &h), x);
    }
    for (int i = 0; i < 4; i++)
        if (counts[i] < KEYS * 18 / 100 || counts[i] > KEYS * 32 / 100)
            fail_msg("server %d holds %d of %d keys", i, counts[i], KEYS);

    /* Weight-scaled: weights 1 and 3 split keys about 1:3. */
    atomic_store(&f.b[1]->weight, 3.0);
    int two[2] = {0, 1}, c2[2] = {0};
    for (unsigned k = 0; k < KEYS; k++) {
        char key[32];
        struct rt_pick_hint h = key_hint(key, sizeof key, k);
        c2[rt_balancer_pick(a, f.v, two, 2, &h)]++;
    }
    assert_in_range(c2[1], KEYS * 67 / 100, KEYS * 83 / 100);

    /* No key: least in-flight. */
    set_inflight(f.b[0], 3);
    set_inflight(f.b[1], 1);
    set_inflight(f.b[2], 0);
    set_inflight(f.b[3], 2);
    struct rt_pick_hint none = {RT_STR_NULL, RT_STR_NULL};
    for (int it = 0; it < 10; it++) {
        assert_int_equal(rt_balancer_pick(a, f.v, f.all, 4, &none), 2);
        assert_int_equal(rt_balancer_pick(a, f.v, f.all, 4, NULL), 2);
    }
    rt_balancer_destroy(a);
    rt_balancer_destroy(b);
    fleet_free(&f);
}

/* A reload that removes one server (published through the fleet) moves only its keys. */
static void consistent_hash_removal_moves_only_its_keys(void **state)
{
    (void)state;
    rt_fleet_init();
    struct rt_backend *bs[4];
    for (int i = 0; i < 4; i++)
        bs[i] = backend(18100 + i, 8, 1);
    rt_fleet_publish(bs, 4);
    struct rt_fleet_view *v1 = rt_fleet_acquire();
    struct rt_backend *rest[3] = {bs[0], bs[1], bs[3]};
    rt_fleet_publish(rest, 3);
    struct rt_fleet_view *v2 = rt_fleet_acquire();
    assert_int_not_equal(v1->version, v2->version);

    struct rt_balancer *bal = make("consistent_hash", 0, 0, 1.25, 0);
    int all4[4] = {0, 1, 2, 3}, all3[3] = {0, 1, 2};
    int moved = 0, removed_keys = 0;
    for (unsigned k = 0; k < KEYS; k++) {
        char key[32];
        struct rt_pick_hint h = key_hint(key, sizeof key, k);
        struct rt_backend *before = v1->b[rt_balancer_pick(bal, v1, all4, 4, &h)];
        struct rt_backend *after = v2->b[rt_balancer_pick(bal, v2, all3, 3, &h)];
        if (before == bs[2])
            removed_keys++;
        else if (before != after)
            fail_msg("key %u moved from %s to %s though its server stayed", k, before->name,
                     after->name);
        moved += before != after;
    }
    assert_int_equal(moved, removed_keys);
    assert_true(moved <= KEYS / 4 + KEYS * 7 / 100);
    assert_true(moved > 0);

    /* A server that is only out of the candidates (full, down) keeps its keys' place: they
     * go to the next on the ring meanwhile and come back. */
    int without0[2] = {1, 2};
    for (unsigned k = 0; k < 500; k++) {
        char key[32];
        struct rt_pick_hint h = key_hint(key, sizeof key, k);
        int owner = rt_balancer_pick(bal, v2, all3, 3, &h);
        int other = rt_balancer_pick(bal, v2, without0, 2, &h);
        assert_true(in(without0, 2, other));
        if (owner != 0)
            assert_int_equal(other, owner);
        assert_int_equal(rt_balancer_pick(bal, v2, all3, 3, &h), owner);
    }
    rt_balancer_destroy(bal);
    rt_fleet_view_unref(v1);
    rt_fleet_view_unref(v2);
    for (int i = 0; i < 4; i++)
        rt_backend_unref(bs[i]);
    rt_fleet_shutdown();
}

static void consistent_hash_bounded_load(void **state)
{
    (void)state;
    struct fleet f;
    fleet_make(&f, 4, NULL, NULL);
    struct rt_balancer *bal = make("consistent_hash", 0, 0, 1.25, 0);
    int diverted = 0;
    for (unsigned k = 0; k < 200; k++) {
        char key[32];
        struct rt_pick_hint h = key_hint(key, sizeof key, k);
        for (size_t i = 0; i < f.n; i++)
            set_inflight(f.b[i], 3);
        int owner = rt_balancer_pick(bal, f.v, f.all, 4, &h);
        /* Within the bound (3 < ceil(1.25 * 13 / 4) = 5): stays. */
        set_inflight(f.b[owner], 4);
        assert_int_equal(rt_balancer_pick(bal, f.v, f.all, 4, &h), owner);
        /* Over it (5 >= ceil(1.25 * 15 / 4) = 5): the next on the ring, which is where the
         * key goes when its server is not a candidate. */
        set_inflight(f.b[owner], 5);
        int got = rt_balancer_pick(bal, f.v, f.all, 4, &h);
        assert_int_not_equal(got, owner);
        int others[3], n = 0;
        for (int i = 0; i < 4; i++)
            if (i != owner)
                others[n++] = i;
        assert_int_equal(got, rt_balancer_pick(bal, f.v, others, 3, &h));
        diverted++;
    }
    assert_int_equal(diverted, 200);

    /* A hot key under the proxy's loop: its requests pile up on its server only up to the
     * bound, then spill, and the load stays within factor x average (+1) everywhere. */
    for (size_t i = 0; i < f.n; i++)
        set_inflight(f.b[i], 0);
    char key[32];
    struct rt_pick_hint hot = key_hint(key, sizeof key, 12345);
    int owner = rt_balancer_pick(bal, f.v, f.all, 4, &hot);
    for (int r = 1; r <= 400; r++) {
        rt_backend_dispatch(f.b[rt_balancer_pick(bal, f.v, f.all, 4, &hot)]);
        for (size_t i = 0; i < f.n; i++)
            assert_true(atomic_load(&f.b[i]->inflight) <= (int)ceil(1.25 * r / 4.0));
    }
    assert_true(atomic_load(&f.b[owner]->inflight) >= 100);
    rt_balancer_destroy(bal);
    fleet_free(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(registry),
        cmocka_unit_test(pick_is_a_candidate),
        cmocka_unit_test(pick_does_not_allocate),
        cmocka_unit_test(load_score_picks_minimum),
        cmocka_unit_test(load_score_ties_rotate),
        cmocka_unit_test(load_score_follows_capacity),
        cmocka_unit_test(load_score_weights_matter),
        cmocka_unit_test(load_score_uses_scrape_and_since),
        cmocka_unit_test(round_robin_weights),
        cmocka_unit_test(random_weighted),
        cmocka_unit_test(least_inflight_picks_minimum),
        cmocka_unit_test(power_of_two_avoids_most_loaded),
        cmocka_unit_test(consistent_hash_sticky_and_spread),
        cmocka_unit_test(consistent_hash_removal_moves_only_its_keys),
        cmocka_unit_test(consistent_hash_bounded_load),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
