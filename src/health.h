/* The health monitor: active checks (GET /health), model-list refresh (GET /v1/models) and load
 * scrapes (GET /metrics) of every backend of the current fleet view, on the control thread's
 * libuv loop. The rules that decide "healthy" are in docs/internals/health.md.
 *
 * Ownership: the monitor is created by rt_health_start and belongs to the caller until
 * rt_health_stop, after which it frees itself (the callback tells when). It holds a reference
 * to every backend it checks and drops it when the backend leaves the view. Everything here
 * runs on the monitor's loop and must be called from that loop's thread; what it finds is
 * published in the backends (fleet.h) for any thread to read. */
#ifndef RT_HEALTH_H
#define RT_HEALTH_H

#include <stdbool.h>
#include <uv.h>

#include "fleet.h"

struct rt_health_conf {
    double interval_s;          /* between checks of one backend (health_check_interval) */
    double timeout_s;           /* a check unanswered after this failed (health_check_timeout) */
    double min_success_rate;    /* 0..1 over the window (health_check_min_success_rate) */
    double max_response_time_s; /* a slower answer counts as failed */
    int window_size;            /* results kept (health_check_window_size), >= 1 */
    int consecutive_failures;   /* failures in a row that make a backend unhealthy, >= 1 */
    bool enabled;               /* enable_active_health_check */
    double scrape_interval_s;   /* between /metrics scrapes of one backend */
    double scrape_timeout_s;
    bool scrape_enabled;
};

/* The seed's defaults (10 s, 5 s, 0.8, 2.0 s, 10, 3, on) and a 1 s scrape with a 1 s timeout. */
void rt_health_conf_default(struct rt_health_conf *conf);

struct rt_health;

/* Starts monitoring on <loop> with <conf> (copied): every backend of the current view is checked
 * and scraped at once, then on its interval. While checks are enabled the fleet's check gate
 * is on, so a backend gets traffic only after its first passing check. */
struct rt_health *rt_health_start(uv_loop_t *loop, const struct rt_health_conf *conf);
/* Replaces the settings; timers restart with the new intervals, windows are kept (resized). */
void rt_health_set_conf(struct rt_health *h, const struct rt_health_conf *conf);
void rt_health_get_conf(const struct rt_health *h, struct rt_health_conf *out);
/* Looks at the fleet view now (the monitor also notices new views by itself within 100 ms):
 * new backends are checked at once, removed ones are dropped. */
void rt_health_sync(struct rt_health *h);
/* Checks <b> (and refreshes its models) now if it is monitored and not being checked. */
void rt_health_check_now(struct rt_health *h, struct rt_backend *b);
/* Stops: cancels requests, closes timers and connections, drops references and turns the check
 * gate off. <on_stopped> (may be NULL) runs from the loop once the monitor's own handles are
 * closed; the loop must keep running until then, and then until it has no more handles (pooled
 * connections finish closing in the same turn) before uv_loop_close. */
void rt_health_stop(struct rt_health *h, void (*on_stopped)(void *arg), void *arg);

#endif
