/* JSON bodies of the management endpoints (GET /, /health, /load-stats, /v1/models), built from
 * a fleet view. Pure functions: they read the view and the backends' atomics, keep no state and
 * may run on any thread.
 *
 * Ownership: every function returns a NUL-terminated body allocated with rt_malloc, which the
 * caller frees with rt_free; the view stays the caller's. */
#ifndef RT_STATUS_JSON_H
#define RT_STATUS_JSON_H

#include <stdint.h>

#include "fleet.h"
#include "health.h"

/* GET /: service, version, status, uptime_seconds, endpoints. */
char *rt_status_json_root(double uptime_s);

/* GET /health: the fleet's verdict (status healthy >= 80 % of servers healthy, degraded >= 50 %,
 * else unhealthy; no_servers when the view is empty), per-server check statistics and the
 * health-check settings from <conf>. *<http_status> is 200 while at least one server is
 * healthy, else 503. */
char *rt_status_json_health(const struct rt_fleet_view *v, const struct rt_health_conf *conf,
                            int *http_status);

/* GET /load-stats: the seed's shape, field for field, plus circuit_state, models, scrape_ok and
 * last_scrape_age_seconds per server. <now_ms> is rt_now_ms(). */
char *rt_status_json_load(const struct rt_fleet_view *v, uint64_t now_ms);

/* GET /v1/models: the union of the healthy servers' model lists, de-duplicated by id, in the
 * OpenAI list shape; <created> is the unix time reported for every model. */
char *rt_status_json_models(const struct rt_fleet_view *v, int64_t created);

/* "closed", "open" or "half_open". */
const char *rt_status_json_circuit_name(int circuit);

/* <x> rounded to one decimal (half away from zero), as the percentages are shown. */
double rt_status_json_round1(double x);

#endif
