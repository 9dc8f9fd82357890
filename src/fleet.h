/* The fleet: the upstream servers the router sends requests to, and everything known about them
 * (capacity, the router's exact in-flight counts, health, circuit breaker, scraped load).
 *
 * Threads: worker threads read backends and change their atomic counters; the control thread
 * (health checks, scrapes, reloads, admin) changes the rest. The set of backends is published as
 * an immutable, reference-counted view that is replaced as a whole on change, so a request
 * always sees one consistent set. A backend lives as long as any view or request holds it.
 *
 * Invariant: a backend's <inflight> is raised exactly once per dispatched attempt
 * (rt_backend_dispatch) and lowered exactly once when that attempt ends (rt_backend_release),
 * on every path. */
#ifndef RT_FLEET_H
#define RT_FLEET_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "str.h"

enum rt_circuit {
    RT_CIRCUIT_CLOSED = 0,
    RT_CIRCUIT_OPEN,
    RT_CIRCUIT_HALF_OPEN,
};

/* How an attempt at a backend ended, for the circuit breaker and the policies. */
enum rt_outcome {
    RT_OUTCOME_OK = 0,      /* any response the backend produced normally, incl. 4xx */
    RT_OUTCOME_FAILURE,     /* transport error, reset, timeout or 5xx other than 503 */
    RT_OUTCOME_BUSY,        /* 429 or 503: the backend is alive but full */
    RT_OUTCOME_CANCELLED,   /* the client went away, or we abandoned the attempt: no verdict */
};

/* Immutable model list of a backend, replaced whole when it changes. */
struct rt_models {
    atomic_uint refs;
    size_t n;
    struct rt_str ids[]; /* each ptr points into the same allocation */
};

/* What the active health checks found about a backend, for /health and the dashboard.
 * Written by the health monitor (control thread), read by anyone through
 * rt_backend_health_stats (a copy taken under the backend's health lock). */
struct rt_health_stats {
    int64_t last_check_unix_ms;   /* wall clock of the last finished check; 0 = never */
    int consecutive_failures;     /* failed checks in a row */
    double success_rate;          /* passes / results in the window, 0..1 (1 before any check) */
    double avg_response_time_s;   /* mean over the window's answered checks; 0 when none */
    double last_response_time_s;  /* of the last check (time to failure for a failed one) */
    uint64_t total_checks;        /* checks finished since the backend was created */
};

struct rt_backend {
    /* Identity: set at creation, never changed. */
    uint64_t id;                 /* unique for the process lifetime */
    char *url;                   /* normalised: scheme://host:port[/base] */
    char *name;
    char *host;
    int port;
    char *base_path;             /* "" or "/prefix" without trailing slash */
    char *host_header;           /* "Host: host:port\r\n" */
    struct sockaddr_storage addr;
    atomic_uint refs;

    /* Settings: changed by reload or the admin API. */
    atomic_int capacity;         /* max_concurrent_requests */
    _Atomic double weight;
    _Atomic(char *) _auth_header;  /* "Authorization: Bearer ...\r\n" or NULL; see rt_backend_auth */
    bool static_models;          /* models come from the config, not from /v1/models */
    atomic_bool draining;        /* no new requests (removed or drained by the admin) */

    /* The router's own accounting (workers). */
    atomic_int inflight;         /* attempts dispatched and not yet released */
    atomic_uint_fast64_t dispatched_total;
    atomic_uint_fast64_t completed_total;
    atomic_uint_fast64_t failed_total;
    atomic_uint_fast64_t busy_total;

    /* Health and breaker (control thread writes health; workers drive the breaker). */
    atomic_bool healthy;         /* active checks say so (true until checks say otherwise) */
    atomic_bool checked;         /* a first active check has judged it; while false and the
                                    check gate is on (rt_fleet_set_check_gate) it gets no
                                    traffic */
    atomic_int circuit;          /* enum rt_circuit */
    atomic_int consecutive_failures;  /* request failures in a row, for the breaker */
    atomic_uint_fast64_t circuit_opened_ms;  /* monotonic ms when it opened */
    atomic_bool trial_in_flight; /* half-open: the one trial request is out */
    atomic_uint_fast64_t busy_until_ms; /* prefer others until then (429/503 seen) */

    /* Scraped load (control thread), and the dispatch/finish counts since that scrape. */
    atomic_bool scrape_ok;
    atomic_uint_fast64_t scrape_ms;     /* monotonic ms of the last good scrape, 0 = never */
    _Atomic double scraped_running;
    _Atomic double scraped_waiting;
    _Atomic double kv_cache_perc;       /* 0..100, or -1 when unknown */
    atomic_int_fast64_t max_fds;        /* -1 when unknown */
    atomic_int since_scrape_dispatched;
    atomic_int since_scrape_finished;

    /* Models (control thread replaces; readers take a reference). */
    _Atomic(struct rt_models *) _models;
    pthread_mutex_t _models_lock; /* serialises take-a-reference against replace */

    /* Health-check statistics (control thread writes; see rt_backend_health_stats). */
    pthread_mutex_t _health_lock;
    struct rt_health_stats _health;
};

/* A consistent set of backends. Immutable; hold a reference while using it. */
struct rt_fleet_view {
    atomic_uint refs;
    uint64_t version;
    size_t n;
    struct rt_backend *b[];
};

/* ---- backends --------------------------------------------------------------------------- */

/* A new backend for <url> (already validated), resolved to <addr>. One reference, the
 * caller's. */
struct rt_backend *rt_backend_new(const char *url, const char *name, const char *host, int port,
                                  const char *base_path, const struct sockaddr *addr,
                                  int capacity, double weight, const char *api_key);
void rt_backend_ref(struct rt_backend *b);
void rt_backend_unref(struct rt_backend *b);
/* Replaces the API key (NULL or "" for none). */
void rt_backend_set_api_key(struct rt_backend *b, const char *api_key);
/* Copies the Authorization header line for this backend into <out> (empty when none). */
size_t rt_backend_auth(struct rt_backend *b, char *out, size_t outlen);

/* The model list with a reference (NULL when unknown yet); drop it with rt_models_unref. */
struct rt_models *rt_backend_models(struct rt_backend *b);
void rt_models_unref(struct rt_models *m);
/* Replaces the model list with <ids> (copied). */
void rt_backend_set_models(struct rt_backend *b, const char *const *ids, size_t n);
/* True when <b> serves <model> (true for any model while its list is unknown). */
bool rt_backend_serves(struct rt_backend *b, struct rt_str model);

/* A copy of the health-check statistics; any thread. */
void rt_backend_health_stats(struct rt_backend *b, struct rt_health_stats *out);
/* Replaces them (the health monitor). */
void rt_backend_set_health_stats(struct rt_backend *b, const struct rt_health_stats *s);
/* Healthy as far as active checks tell: healthy, and checked unless the check gate is off.
 * Pure read (unlike rt_backend_available it never moves the breaker). */
bool rt_backend_is_healthy(struct rt_backend *b);

/* Eligible for a new request now: not draining, healthy, checked (when the gate is on), circuit closed or half-open with no
 * trial out. Does not look at capacity. */
bool rt_backend_available(struct rt_backend *b, uint64_t now_ms);
/* Estimated load: the last scrape plus what this router dispatched since, minus what
 * finished since; the router's own in-flight count when there is no scrape. */
double rt_backend_est_running(struct rt_backend *b);
double rt_backend_est_waiting(struct rt_backend *b);
/* Whether the router may send one more request within capacity. */
static inline bool rt_backend_has_room(struct rt_backend *b)
{
    return atomic_load_explicit(&b->inflight, memory_order_relaxed) <
           atomic_load_explicit(&b->capacity, memory_order_relaxed);
}

/* Accounting of one attempt: dispatch raises inflight (and, in half-open, takes the trial);
 * release lowers it exactly once and feeds the breaker with <outcome>. */
void rt_backend_dispatch(struct rt_backend *b);
/* Like rt_backend_dispatch, but only while inflight < capacity (atomically, so two workers
 * never both take the last slot). Returns whether the slot was taken. */
bool rt_backend_try_dispatch(struct rt_backend *b);
void rt_backend_release(struct rt_backend *b, enum rt_outcome outcome, uint64_t now_ms);
/* Records a scrape result (control thread). */
void rt_backend_scraped(struct rt_backend *b, double running, double waiting, double kv_perc,
                        int64_t max_fds, uint64_t now_ms);
void rt_backend_scrape_failed(struct rt_backend *b);

/* ---- the fleet -------------------------------------------------------------------------- */

struct rt_fleet_settings {
    int failure_threshold;      /* consecutive failures that open the circuit */
    double recovery_s;          /* open -> half-open after this */
    double busy_backoff_s;      /* prefer others this long after a 429/503 */
};

void rt_fleet_init(void);
void rt_fleet_shutdown(void);
void rt_fleet_set_settings(const struct rt_fleet_settings *s);
void rt_fleet_get_settings(struct rt_fleet_settings *out);
/* The current view with a reference; never NULL after rt_fleet_init. */
struct rt_fleet_view *rt_fleet_acquire(void);
void rt_fleet_view_unref(struct rt_fleet_view *v);
/* Publishes a new set of backends (each gets a reference from the view). Control thread. */
void rt_fleet_publish(struct rt_backend *const *backends, size_t n);
/* The check gate: while on, a backend that no active check has judged yet (checked false) is
 * neither available nor counted healthy. The health monitor turns it on while active checks
 * are enabled; off (the default) a new backend is trusted until checks say otherwise. */
void rt_fleet_set_check_gate(bool on);
bool rt_fleet_check_gate(void);
/* Finds a backend of the current view by URL (with a reference), or NULL. */
struct rt_backend *rt_fleet_find(const char *url);

/* Monotonic milliseconds. */
uint64_t rt_now_ms(void);

#endif
