/* Worker threads and shared settings of the router (see router.h). */
#include "router.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "alloc.h"
#include "fleet.h"
#include "log.h"
#include "proxy.h"

static struct {
    pthread_mutex_t lock;
    struct rt_settings *cur;
    uint64_t version;
} settings = {.lock = PTHREAD_MUTEX_INITIALIZER};

static atomic_uint_fast64_t settings_version;

/* ---- settings --------------------------------------------------------------------------- */

struct rt_settings *rt_settings_acquire(void)
{
    pthread_mutex_lock(&settings.lock);
    struct rt_settings *s = settings.cur;
    if (s)
        atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
    pthread_mutex_unlock(&settings.lock);
    return s;
}

void rt_settings_unref(struct rt_settings *s)
{
    if (!s || atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) != 1)
        return;
    rt_config_free(s->cfg);
    rt_free(s);
}

void rt_settings_publish(struct rt_config *cfg)
{
    struct rt_settings *s = rt_calloc(1, sizeof *s);
    atomic_init(&s->refs, 1);
    s->cfg = cfg;
    s->server = (struct rt_http_server_conf){
        .max_head_bytes = (size_t)cfg->limits.max_header_bytes,
        .max_body_bytes = (size_t)cfg->limits.max_body_bytes,
        .head_timeout_ms = (uint64_t)(cfg->timeouts.client_header * 1000),
        .body_timeout_ms = (uint64_t)(cfg->timeouts.client_body * 1000),
        .keepalive_timeout_ms = (uint64_t)(cfg->timeouts.client_keepalive * 1000),
        .max_connections = (unsigned)cfg->listen.max_connections,
        .output_high_water = (size_t)cfg->limits.max_output_buffer,
    };
    s->policy = (struct rt_policy_conf){
        .name = cfg->balancing.policy,
        .running_weight = cfg->balancing.running_weight,
        .waiting_weight = cfg->balancing.waiting_weight,
        .hash_load_factor = cfg->balancing.hash_load_factor,
        .seed = 0x9E3779B97F4A7C15ull,
    };
    struct rt_fleet_settings fs = {
        .failure_threshold = (int)cfg->config.failure_threshold,
        .recovery_s = cfg->config.auto_recovery_threshold,
        .busy_backoff_s = cfg->balancing.busy_backoff,
    };
    rt_fleet_set_settings(&fs);
    pthread_mutex_lock(&settings.lock);
    struct rt_settings *old = settings.cur;
    s->version = ++settings.version;
    settings.cur = s;
    pthread_mutex_unlock(&settings.lock);
    atomic_store(&settings_version, s->version);
    rt_settings_unref(old);
}

void rt_settings_shutdown(void)
{
    pthread_mutex_lock(&settings.lock);
    struct rt_settings *s = settings.cur;
    settings.cur = NULL;
    pthread_mutex_unlock(&settings.lock);
    rt_settings_unref(s);
}

/* ---- pools ------------------------------------------------------------------------------ */

struct rt_http_pool *rt_worker_pool(struct rt_worker *w, struct rt_backend *b)
{
    for (size_t i = 0; i < w->npools; i++)
        if (w->pools[i].backend_id == b->id)
            return w->pools[i].pool;
    struct rt_settings *s = rt_settings_acquire();
    uint64_t idle_ms = (uint64_t)(s->cfg->timeouts.upstream_keepalive * 1000);
    rt_settings_unref(s);
    w->pools = rt_realloc(w->pools, (w->npools + 1) * sizeof w->pools[0]);
    w->pools[w->npools].backend_id = b->id;
    w->pools[w->npools].pool =
        rt_http_pool_new(&w->loop, (const struct sockaddr *)&b->addr, idle_ms, 1024);
    return w->pools[w->npools++].pool;
}

/* Frees the pools of backends that left the fleet (their requests in flight finish first). */
static void prune_pools(struct rt_worker *w)
{
    struct rt_fleet_view *v = rt_fleet_acquire();
    for (size_t i = 0; i < w->npools;) {
        bool live = false;
        for (size_t k = 0; k < v->n && !live; k++)
            live = v->b[k]->id == w->pools[i].backend_id;
        if (live) {
            i++;
            continue;
        }
        rt_http_pool_free(w->pools[i].pool);
        w->pools[i] = w->pools[--w->npools];
    }
    rt_fleet_view_unref(v);
}

/* ---- workers ---------------------------------------------------------------------------- */

/* Brings the worker up to the current settings (balancer, server limits). */
static void refresh(struct rt_worker *w)
{
    uint64_t ver = atomic_load(&settings_version);
    if (ver == w->bal_version)
        return;
    struct rt_settings *s = rt_settings_acquire();
    struct rt_balancer *nb = NULL;
    char err[256];
    if (rt_balancer_create(&s->policy, &nb, err, sizeof err) == 0) {
        if (w->bal)
            rt_balancer_destroy(w->bal);
        w->bal = nb;
    } else {
        RT_ERROR("worker %u: %s; keeping the previous policy", w->index, err);
    }
    if (w->srv)
        rt_http_server_set_conf(w->srv, &s->server);
    for (size_t i = 0; i < w->npools; i++)
        rt_http_pool_set_idle_timeout(w->pools[i].pool,
                                      (uint64_t)(s->cfg->timeouts.upstream_keepalive * 1000));
    w->bal_version = s->version;
    rt_settings_unref(s);
}

static void on_close_noop(uv_handle_t *h)
{
    (void)h;
}

static void on_walk_close(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, on_close_noop);
}

static void on_wake(uv_async_t *a)
{
    struct rt_worker *w = a->data;
    if (atomic_load(&w->closing)) {
        rt_proxy_flush_queue(w);
        if (w->srv) {
            rt_http_server_close(w->srv);
            w->srv = NULL;
        }
        for (size_t i = 0; i < w->npools; i++)
            rt_http_pool_free(w->pools[i].pool);
        w->npools = 0;
        uv_close((uv_handle_t *)&w->wake, on_close_noop);
        uv_close((uv_handle_t *)&w->tick, on_close_noop);
        return;
    }
    if (atomic_load(&w->stop) && w->srv)
        rt_http_server_stop_accepting(w->srv);
    refresh(w);
    prune_pools(w);
    if (w->queue_head)
        rt_proxy_drain_queue(w);
}

static void on_tick(uv_timer_t *t)
{
    struct rt_worker *w = t->data;
    if (w->queue_head)
        rt_proxy_drain_queue(w);
}

struct start_ctx {
    struct rt_worker *w;
    uv_sem_t ready;
    int result;
    char err[256];
};

static void worker_main(void *arg)
{
    struct start_ctx *sc = arg;
    struct rt_worker *w = sc->w;
    struct rt_settings *s = rt_settings_acquire();
    refresh(w);
    int r = rt_http_server_start(&w->loop, s->cfg->listen.host, (int)s->cfg->listen.port, true,
                                 &s->server, rt_router_handle, w, &w->srv, sc->err,
                                 sizeof sc->err);
    rt_settings_unref(s);
    sc->result = r;
    uv_sem_post(&sc->ready); /* <sc> is gone after this */
    if (r == 0)
        uv_run(&w->loop, UV_RUN_DEFAULT);
    /* Close whatever is left so the loop can be closed cleanly. */
    uv_walk(&w->loop, on_walk_close, NULL);
    uv_run(&w->loop, UV_RUN_DEFAULT);
    if (w->bal)
        rt_balancer_destroy(w->bal);
    w->bal = NULL;
    rt_free(w->pools);
    w->pools = NULL;
}

int rt_router_start(struct rt_router *r, unsigned n, char *err, size_t errlen)
{
    r->workers = rt_calloc(n, sizeof r->workers[0]);
    r->nworkers = 0;
    r->start_ms = rt_now_ms();
    r->start_wall = (uint64_t)time(NULL);
    for (unsigned i = 0; i < n; i++) {
        struct rt_worker *w = &r->workers[i];
        w->index = i;
        w->router = r;
        w->rng = 0x2545F4914F6CDD1Dull ^ ((uint64_t)i << 32) ^ (uint64_t)uv_hrtime();
        uv_loop_init(&w->loop);
        uv_async_init(&w->loop, &w->wake, on_wake);
        w->wake.data = w;
        uv_timer_init(&w->loop, &w->tick);
        w->tick.data = w;
        uv_timer_start(&w->tick, on_tick, 100, 100);
        struct start_ctx sc = {.w = w};
        uv_sem_init(&sc.ready, 0);
        if (uv_thread_create(&w->thread, worker_main, &sc) != 0) {
            snprintf(err, errlen, "cannot start worker thread %u", i);
            uv_sem_destroy(&sc.ready);
            return -1;
        }
        uv_sem_wait(&sc.ready);
        uv_sem_destroy(&sc.ready);
        if (sc.result != 0) {
            /* This one's thread ends by itself; the started ones are stopped by
             * rt_router_join(). */
            snprintf(err, errlen, "%s", sc.err);
            uv_thread_join(&w->thread);
            uv_loop_close(&w->loop);
            return -1;
        }
        r->nworkers++;
    }
    return 0;
}

void rt_router_kick(struct rt_router *r)
{
    for (unsigned i = 0; i < r->nworkers; i++)
        uv_async_send(&r->workers[i].wake);
}

void rt_router_stop_accepting(struct rt_router *r)
{
    for (unsigned i = 0; i < r->nworkers; i++) {
        atomic_store(&r->workers[i].stop, true);
        uv_async_send(&r->workers[i].wake);
    }
}

size_t rt_router_active(struct rt_router *r)
{
    size_t n = 0;
    for (unsigned i = 0; i < r->nworkers; i++)
        n += atomic_load(&r->workers[i].active);
    return n;
}

void rt_router_join(struct rt_router *r)
{
    for (unsigned i = 0; i < r->nworkers; i++) {
        atomic_store(&r->workers[i].closing, true);
        uv_async_send(&r->workers[i].wake);
    }
    for (unsigned i = 0; i < r->nworkers; i++) {
        uv_thread_join(&r->workers[i].thread);
        uv_loop_close(&r->workers[i].loop);
    }
    rt_free(r->workers);
    r->workers = NULL;
    r->nworkers = 0;
}
