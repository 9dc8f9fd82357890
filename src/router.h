/* The router process: worker threads (one libuv loop and one SO_REUSEPORT listener each) that
 * serve clients, and the settings they share.
 *
 * Settings are an immutable snapshot of the configuration, reference-counted and replaced whole
 * on reload, so a request never sees half of an old and half of a new configuration. */
#ifndef RT_ROUTER_H
#define RT_ROUTER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "balancer.h"
#include "config.h"
#include "http_client.h"
#include "http_server.h"

struct rt_settings {
    atomic_uint refs;
    uint64_t version;
    struct rt_config *cfg; /* owned */
    struct rt_http_server_conf server;
    struct rt_policy_conf policy;
};

struct rt_proxy_req;

/* One upstream pool of a worker, for one backend. */
struct rt_worker_pool {
    uint64_t backend_id;
    struct rt_http_pool *pool;
};

struct rt_worker {
    unsigned index;
    uv_loop_t loop;
    uv_thread_t thread;
    uv_async_t wake;                /* other threads ask this worker to look again */
    uv_timer_t tick;                /* periodic look at the queue (health changes free no slot) */
    struct rt_http_server *srv;
    struct rt_balancer *bal;
    uint64_t bal_version;           /* settings version the balancer was made for */
    struct rt_worker_pool *pools;   /* owned */
    size_t npools;
    struct rt_proxy_req *queue_head, *queue_tail; /* the admission queue, FIFO */
    size_t queued;
    atomic_bool stop;               /* stop accepting and exit once idle */
    atomic_bool closing;            /* stop now */
    atomic_uint active;             /* proxied requests not yet finished */
    uint64_t rng;
    uint64_t seq;                   /* request ids */
    struct rt_router *router;
};

struct rt_router {
    struct rt_worker *workers;
    unsigned nworkers;
    atomic_uint waiting;            /* requests in all admission queues */
    uint64_t start_ms;
    uint64_t start_wall;            /* time(NULL) at start */
};

/* Settings: the current snapshot (with a reference) and its replacement. */
struct rt_settings *rt_settings_acquire(void);
void rt_settings_unref(struct rt_settings *s);
/* Takes ownership of <cfg> and makes it current. */
void rt_settings_publish(struct rt_config *cfg);
/* Drops the current settings (at exit). */
void rt_settings_shutdown(void);

/* Starts <n> workers listening on the configured host:port. Returns 0, or -1 with a message
 * in <err> (e.g. the port is taken). */
int rt_router_start(struct rt_router *r, unsigned n, char *err, size_t errlen);
/* Every worker stops accepting; in-flight requests go on. */
void rt_router_stop_accepting(struct rt_router *r);
/* Requests not yet finished, over all workers. */
size_t rt_router_active(struct rt_router *r);
/* Closes everything (remaining requests are cut) and joins the threads. */
void rt_router_join(struct rt_router *r);
/* Wakes every worker with queued requests (a slot may be free). Any thread. */
void rt_router_kick(struct rt_router *r);

struct rt_health_conf;
/* The health monitor's settings taken from <c> (router_routes.c). */
void rt_router_health_conf(const struct rt_config *c, struct rt_health_conf *h);

/* The handler of client requests (router_routes.c). */
void rt_router_handle(struct rt_http_exchange *ex, void *worker);

/* The worker's pool for backend <b>, created on first use. */
struct rt_http_pool *rt_worker_pool(struct rt_worker *w, struct rt_backend *b);

#endif
