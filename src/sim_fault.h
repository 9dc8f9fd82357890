/* The simulator's fault model: which failures an instance shows, set by flags at start and
 * changed at run time through POST /sim/faults with a JSON object. No I/O. */
#ifndef RT_SIM_FAULT_H
#define RT_SIM_FAULT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

struct rt_sim_faults {
    bool health_fail;        /* GET /health answers 503 (the engine is "dead") */
    bool fail_500;           /* every inference request answers 500 */
    int busy;                /* 0, or 429 / 503: every inference request is refused as busy */
    bool hang;               /* accept requests (all but /sim/...) and never answer */
    int drop_after;          /* close the connection after this many SSE chunks; -1 = off */
    unsigned slow_health_ms; /* delay before /health answers */
    bool garbled_metrics;    /* /metrics returns an unparseable page */
    double fail_rate;        /* probability in [0, 1] that an inference request answers 500 */
};

/* What to do with one inference request (chat, completions, embeddings, tokenize). */
enum rt_sim_fault_action {
    RT_SIM_FAULT_NONE = 0,
    RT_SIM_FAULT_HANG,
    RT_SIM_FAULT_BUSY, /* answer faults->busy */
    RT_SIM_FAULT_500,
};

/* All faults off. */
void rt_sim_faults_init(struct rt_sim_faults *f);
/* Applies the keys of JSON object <obj> ("clear": true first resets everything; then
 * "health_fail", "fail_500", "hang", "garbled_metrics": booleans; "busy": 0, 429, 503 or
 * false; "drop_after": count, or -1 / null to disable; "slow_health_ms": count; "fail_rate":
 * number in [0, 1]). On an unknown key or a bad value nothing changes and -1 is returned with a
 * message in <err>. */
int rt_sim_faults_apply(struct rt_sim_faults *f, const json_t *obj, char *err, size_t errlen);
/* Appends the faults as a JSON object with the keys above. */
void rt_sim_faults_render(struct rt_buf *b, const struct rt_sim_faults *f);
/* Decides the fate of one inference request; <rng> is the instance's generator (advanced only
 * when fail_rate is set, so runs are reproducible for a seed). Precedence: hang, busy, 500,
 * random failure. */
enum rt_sim_fault_action rt_sim_faults_decide(const struct rt_sim_faults *f, uint64_t *rng);

#endif
