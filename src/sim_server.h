/* One simulated vLLM server instance on a libuv loop: the OpenAI-compatible endpoints, /health,
 * /metrics, /tokenize, and the control endpoints under /sim/, driven by a struct rt_sim_engine
 * and a struct rt_sim_faults. Several instances may share one loop. Not thread-safe. */
#ifndef RT_SIM_SERVER_H
#define RT_SIM_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "sim_engine.h"
#include "sim_fault.h"

struct rt_sim_conf {
    const char *host;           /* address to bind, e.g. "127.0.0.1" */
    int port;                   /* 0 picks a free port */
    const char *const *models;  /* served names, >= 1; the first labels /metrics. Must outlive
                                   the server. */
    size_t nmodels;
    struct rt_sim_engine_conf engine;
    uint64_t seed;              /* output text, ids, embeddings and random faults derive from it */
    bool v0_metrics;            /* /metrics with vLLM V0 names */
    unsigned output_len;        /* natural answer length in tokens (capped by max_tokens) */
    unsigned embedding_dim;     /* values per embedding vector */
    struct rt_sim_faults faults; /* initial faults */
};

struct rt_sim_server;

/* Starts listening. Returns 0, or -1 with a message in <err>. */
int rt_sim_server_start(uv_loop_t *loop, const struct rt_sim_conf *conf,
                        struct rt_sim_server **out, char *err, size_t errlen);
/* The port actually bound. */
int rt_sim_server_port(const struct rt_sim_server *s);
/* Closes the listener and every connection (their requests count as aborted) and frees the
 * instance; the loop finishes closing handles afterwards. <s> is invalid on return. */
void rt_sim_server_close(struct rt_sim_server *s);

#endif
