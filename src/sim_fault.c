/* The simulator's fault switches (see sim_fault.h). */
#include "sim_fault.h"

#include <stdio.h>
#include <string.h>

#include "sim_render.h"

void rt_sim_faults_init(struct rt_sim_faults *f)
{
    memset(f, 0, sizeof *f);
    f->drop_after = -1;
}

static int want_bool(const json_t *v, bool *out, const char *key, char *err, size_t errlen)
{
    if (!json_is_boolean(v)) {
        snprintf(err, errlen, "'%s' must be true or false", key);
        return -1;
    }
    *out = json_is_true(v);
    return 0;
}

static int want_count(const json_t *v, long long max, long long *out, const char *key, char *err,
                      size_t errlen)
{
    if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > max) {
        snprintf(err, errlen, "'%s' must be an integer from 0 to %lld", key, max);
        return -1;
    }
    *out = json_integer_value(v);
    return 0;
}

int rt_sim_faults_apply(struct rt_sim_faults *f, const json_t *obj, char *err, size_t errlen)
{
    if (!json_is_object(obj)) {
        snprintf(err, errlen, "the body must be a JSON object");
        return -1;
    }
    struct rt_sim_faults n = *f;
    const json_t *clear = json_object_get(obj, "clear");
    if (clear) {
        bool c;
        if (want_bool(clear, &c, "clear", err, errlen) != 0)
            return -1;
        if (c)
            rt_sim_faults_init(&n);
    }
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)obj, key, v) {
        long long x;
        if (strcmp(key, "clear") == 0)
            continue;
        if (strcmp(key, "health_fail") == 0) {
            if (want_bool(v, &n.health_fail, key, err, errlen) != 0)
                return -1;
        } else if (strcmp(key, "fail_500") == 0) {
            if (want_bool(v, &n.fail_500, key, err, errlen) != 0)
                return -1;
        } else if (strcmp(key, "hang") == 0) {
            if (want_bool(v, &n.hang, key, err, errlen) != 0)
                return -1;
        } else if (strcmp(key, "garbled_metrics") == 0) {
            if (want_bool(v, &n.garbled_metrics, key, err, errlen) != 0)
                return -1;
        } else if (strcmp(key, "busy") == 0) {
            if (json_is_false(v) || json_is_null(v)) {
                n.busy = 0;
            } else if (json_is_integer(v) &&
                       (json_integer_value(v) == 0 || json_integer_value(v) == 429 ||
                        json_integer_value(v) == 503)) {
                n.busy = (int)json_integer_value(v);
            } else {
                snprintf(err, errlen, "'busy' must be 429, 503, 0 or false");
                return -1;
            }
        } else if (strcmp(key, "drop_after") == 0) {
            if (json_is_null(v) || (json_is_integer(v) && json_integer_value(v) == -1)) {
                n.drop_after = -1;
            } else {
                if (want_count(v, 1000000000, &x, key, err, errlen) != 0)
                    return -1;
                n.drop_after = (int)x;
            }
        } else if (strcmp(key, "slow_health_ms") == 0) {
            if (want_count(v, 3600000, &x, key, err, errlen) != 0)
                return -1;
            n.slow_health_ms = (unsigned)x;
        } else if (strcmp(key, "fail_rate") == 0) {
            if (!json_is_number(v) || json_number_value(v) < 0 || json_number_value(v) > 1) {
                snprintf(err, errlen, "'fail_rate' must be a number from 0 to 1");
                return -1;
            }
            n.fail_rate = json_number_value(v);
        } else {
            snprintf(err, errlen, "unknown fault '%s'", key);
            return -1;
        }
    }
    *f = n;
    return 0;
}

void rt_sim_faults_render(struct rt_buf *b, const struct rt_sim_faults *f)
{
    rt_buf_printf(b,
                  "{\"health_fail\":%s,\"fail_500\":%s,\"busy\":%d,\"hang\":%s,\"drop_after\":%d,"
                  "\"slow_health_ms\":%u,\"garbled_metrics\":%s,\"fail_rate\":%.17g}",
                  f->health_fail ? "true" : "false", f->fail_500 ? "true" : "false", f->busy,
                  f->hang ? "true" : "false", f->drop_after, f->slow_health_ms,
                  f->garbled_metrics ? "true" : "false", f->fail_rate);
}

enum rt_sim_fault_action rt_sim_faults_decide(const struct rt_sim_faults *f, uint64_t *rng)
{
    if (f->hang)
        return RT_SIM_FAULT_HANG;
    if (f->busy)
        return RT_SIM_FAULT_BUSY;
    if (f->fail_500)
        return RT_SIM_FAULT_500;
    if (f->fail_rate > 0) {
        double u = (double)(rt_sim_rand(rng) >> 11) / 9007199254740992.0;
        if (u < f->fail_rate)
            return RT_SIM_FAULT_500;
    }
    return RT_SIM_FAULT_NONE;
}
