/* 'vllm-router run': load the configuration, build the fleet, start the workers and the health
 * monitor, and run until a signal says stop (SIGTERM/SIGINT: drain, then exit 0; SIGHUP:
 * reload the configuration). */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "admin.h"
#include "alloc.h"
#include "cli.h"
#include "config.h"
#include "fleet.h"
#include "health.h"
#include "log.h"
#include "metrics.h"
#include "router.h"
#include "run_opts.h"

extern char **environ;

struct run {
    uv_loop_t *loop;
    struct rt_run_opts opts;
    struct rt_router router;
    struct rt_health *health;
    uv_signal_t sigterm, sigint, sighup;
    uv_timer_t drain_timer;
    uint64_t drain_deadline_ms;
    bool draining;
    /* Config file watching: a file-system event on its directory (editors replace files by
     * rename), a periodic check for file systems that do not notify, and a short debounce. */
    char *config_path;       /* owned; NULL when no file is in use */
    uv_fs_event_t watch;
    bool watching;
    uv_timer_t poll_timer;   /* every config_reload_interval */
    uv_timer_t debounce;
    uint64_t config_hash;    /* of the file's bytes at the last load attempt */
    uv_async_t admin_async;  /* an admin API change: rebuild (or reload) on this thread */
};

static void on_poll(uv_timer_t *t);

/* FNV-1a of the file's bytes, or 0 when it cannot be read. */
static uint64_t file_hash(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return 0;
    uint64_t h = 1469598103934665603ull;
    char buf[8192];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0)
        for (size_t i = 0; i < n; i++)
            h = (h ^ (unsigned char)buf[i]) * 1099511628211ull;
    fclose(f);
    return h;
}

/* Builds the backends of <cfg>, keeping the state of those whose URL is unchanged. Returns 0, or
 * -1 with a message when a server's address cannot be resolved. */
static int build_fleet(const struct rt_config *cfg, char *err, size_t errlen)
{
    struct rt_backend **list = rt_calloc(cfg->nservers + 1, sizeof *list);
    size_t n = 0;
    int rc = 0;
    for (size_t i = 0; i < cfg->nservers; i++) {
        const struct rt_server_conf *sc = &cfg->servers[i];
        struct rt_backend *b = rt_fleet_find(sc->url);
        if (!b) {
            struct sockaddr_storage ss;
            char rerr[256];
            if (rt_http_resolve(sc->host, sc->port, &ss, rerr, sizeof rerr) != 0) {
                snprintf(err, errlen, "server %s: %s", sc->url, rerr);
                rc = -1;
                goto out;
            }
            b = rt_backend_new(sc->url, sc->name, sc->host, sc->port, sc->base_path,
                               (struct sockaddr *)&ss, sc->max_concurrent_requests, sc->weight,
                               sc->api_key);
        } else {
            atomic_store(&b->capacity, sc->max_concurrent_requests);
            atomic_store(&b->weight, sc->weight);
            rt_backend_set_api_key(b, sc->api_key);
        }
        atomic_store(&b->draining, rt_admin_is_drained(sc->url));
        b->static_models = sc->nmodels > 0;
        if (sc->nmodels > 0)
            rt_backend_set_models(b, (const char *const *)sc->models, sc->nmodels);
        list[n++] = b;
    }
    /* Backends that left the configuration finish what they have and take nothing new. */
    struct rt_fleet_view *old = rt_fleet_acquire();
    for (size_t i = 0; i < old->n; i++) {
        bool kept = false;
        for (size_t k = 0; k < n && !kept; k++)
            kept = list[k] == old->b[i];
        if (!kept)
            atomic_store(&old->b[i]->draining, true);
    }
    rt_fleet_view_unref(old);
    rt_fleet_publish(list, n);
out:
    for (size_t i = 0; i < n; i++)
        rt_backend_unref(list[i]);
    rt_free(list);
    return rc;
}

static void reload(struct run *run)
{
    struct rt_settings *cur = rt_settings_acquire();
    struct rt_config *cfg = NULL;
    struct rt_diag diags = {0};
    int r = rt_config_reload(cur->cfg, &run->opts, environ, &cfg, &diags);
    rt_settings_unref(cur);
    for (size_t i = 0; i < diags.len; i++) {
        char line[1024];
        rt_diag_format(&diags, i, line, sizeof line);
        rt_log(r == 0 ? RT_LOG_WARNING : RT_LOG_ERROR, "reload: %s", line);
    }
    rt_diag_free(&diags);
    char err[512];
    if (r == 0)
        rt_admin_apply(cfg, err, sizeof err);
    if (r != 0) {
        RT_ERROR("reload failed: keeping the previous configuration");
        rt_metrics_reload(rt_metrics_control_shard(), false);
        return;
    }
    if (build_fleet(cfg, err, sizeof err) != 0) {
        RT_ERROR("reload failed: %s; keeping the previous configuration", err);
        rt_metrics_reload(rt_metrics_control_shard(), false);
        rt_config_free(cfg);
        return;
    }
    rt_metrics_reload(rt_metrics_control_shard(), true);
    struct rt_health_conf hc;
    rt_router_health_conf(cfg, &hc);
    rt_log_set_level(RT_LOG_INFO);
    enum rt_log_level lvl;
    if (rt_log_level_parse(cfg->logging.level, &lvl) == 0)
        rt_log_set_level(lvl);
    uint64_t every = (uint64_t)(cfg->config.config_reload_interval * 1000);
    if (run->config_path) {
        if (every > 0)
            uv_timer_start(&run->poll_timer, on_poll, every, every);
        else
            uv_timer_stop(&run->poll_timer);
    }
    rt_settings_publish(cfg);
    if (run->health) {
        rt_health_set_conf(run->health, &hc);
        rt_health_sync(run->health);
    }
    rt_router_kick(&run->router);
    RT_INFO("configuration reloaded: %zu servers", cfg->nservers);
}

/* An admin API change: the configuration in use, rebuilt from the file's servers as last
 * loaded and the admin overlay (the file is not re-read unless POST /admin/reload asked). */
static void on_admin_change(uv_async_t *a)
{
    struct run *run = a->data;
    if (rt_admin_take_reload_request()) {
        RT_INFO("admin API: reloading the configuration");
        reload(run);
        return;
    }
    struct rt_settings *cur = rt_settings_acquire();
    struct rt_config *cfg = rt_admin_rebuild(cur->cfg);
    rt_settings_unref(cur);
    char err[512];
    if (build_fleet(cfg, err, sizeof err) != 0) {
        RT_ERROR("admin change not applied: %s", err);
        rt_config_free(cfg);
        return;
    }
    rt_settings_publish(cfg);
    if (run->health)
        rt_health_sync(run->health);
    rt_router_kick(&run->router);
}

static void admin_hook(void *arg)
{
    uv_async_send(&((struct run *)arg)->admin_async);
}

static void on_debounce(uv_timer_t *t)
{
    struct run *run = t->data;
    uint64_t h = file_hash(run->config_path);
    if (h == run->config_hash)
        return; /* touched, not changed */
    run->config_hash = h;
    RT_INFO("%s changed: reloading", run->config_path);
    reload(run);
}

static void on_config_event(uv_fs_event_t *e, const char *filename, int events, int status)
{
    struct run *run = e->data;
    const char *base = strrchr(run->config_path, '/');
    base = base ? base + 1 : run->config_path;
    if (status == 0 && filename && strcmp(filename, base) != 0)
        return;
    uv_timer_start(&run->debounce, on_debounce, 100, 0);
}

static void on_poll(uv_timer_t *t)
{
    uv_timer_start(&((struct run *)t->data)->debounce, on_debounce, 0, 0);
}

/* Starts watching the configuration file, when there is one. */
static void watch_config(struct run *run, const struct rt_config *cfg)
{
    uv_timer_init(run->loop, &run->poll_timer);
    uv_timer_init(run->loop, &run->debounce);
    run->poll_timer.data = run->debounce.data = run;
    if (!cfg->path || !cfg->file_loaded)
        return;
    run->config_path = rt_strdup(cfg->path);
    run->config_hash = file_hash(run->config_path);
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", run->config_path);
    char *slash = strrchr(dir, '/');
    if (slash)
        *(slash == dir ? slash + 1 : slash) = '\0';
    else
        snprintf(dir, sizeof dir, ".");
    uv_fs_event_init(run->loop, &run->watch);
    run->watch.data = run;
    if (uv_fs_event_start(&run->watch, on_config_event, dir, 0) == 0)
        run->watching = true;
    else
        uv_close((uv_handle_t *)&run->watch, NULL);
    uint64_t every = (uint64_t)(cfg->config.config_reload_interval * 1000);
    if (every > 0)
        uv_timer_start(&run->poll_timer, on_poll, every, every);
}

static void on_health_stopped(void *arg)
{
    (void)arg;
}

static void on_close_handle(uv_handle_t *h)
{
    (void)h;
}

/* Drain: wait until no request is in flight or the drain timeout passed, then stop all. */
static void on_drain_tick(uv_timer_t *t)
{
    struct run *run = t->data;
    size_t active = rt_router_active(&run->router);
    if (active > 0 && rt_now_ms() < run->drain_deadline_ms)
        return;
    if (active > 0)
        RT_WARN("drain timeout: cutting %zu requests still in flight", active);
    uv_timer_stop(t);
    rt_router_join(&run->router);
    if (run->health) {
        rt_health_stop(run->health, on_health_stopped, NULL);
        run->health = NULL;
    }
    uv_close((uv_handle_t *)&run->sigterm, on_close_handle);
    uv_close((uv_handle_t *)&run->sigint, on_close_handle);
    uv_close((uv_handle_t *)&run->sighup, on_close_handle);
    uv_close((uv_handle_t *)&run->drain_timer, on_close_handle);
    uv_close((uv_handle_t *)&run->poll_timer, on_close_handle);
    uv_close((uv_handle_t *)&run->debounce, on_close_handle);
    rt_admin_set_change_hook(NULL, NULL);
    rt_admin_listen_close();
    uv_close((uv_handle_t *)&run->admin_async, on_close_handle);
    if (run->watching)
        uv_close((uv_handle_t *)&run->watch, on_close_handle);
}

static void on_signal(uv_signal_t *s, int signum)
{
    struct run *run = s->data;
    if (signum == SIGHUP) {
        RT_INFO("SIGHUP: reloading the configuration");
        if (run->config_path)
            run->config_hash = file_hash(run->config_path);
        reload(run);
        return;
    }
    if (run->draining)
        return;
    run->draining = true;
    struct rt_settings *set = rt_settings_acquire();
    double drain_s = set->cfg->timeouts.drain;
    rt_settings_unref(set);
    RT_INFO("%s: no longer accepting; draining %zu requests (up to %.0f s)",
            signum == SIGTERM ? "SIGTERM" : "SIGINT", rt_router_active(&run->router), drain_s);
    rt_router_stop_accepting(&run->router);
    run->drain_deadline_ms = rt_now_ms() + (uint64_t)(drain_s * 1000);
    uv_timer_start(&run->drain_timer, on_drain_tick, 0, 20);
}

int rt_cli_run(int argc, char **argv)
{
    struct run run;
    char err[512];
    int rc = 0;
    memset(&run, 0, sizeof run);
    if (rt_run_opts_parse(argc, argv, &run.opts, err, sizeof err) != 0) {
        fprintf(stderr, "vllm-router run: %s\nRun 'vllm-router run --help' for usage.\n", err);
        return 1;
    }
    if (run.opts.help) {
        rt_run_opts_usage(stdout);
        rt_run_opts_free(&run.opts);
        return 0;
    }
    struct rt_config *cfg = NULL;
    struct rt_diag diags = {0};
    if (rt_config_build(&run.opts, environ, &cfg, &diags) != 0) {
        rt_diag_print(&diags, stderr);
        rt_diag_free(&diags);
        rt_run_opts_free(&run.opts);
        return 1;
    }
    rt_diag_print(&diags, stderr); /* warnings */
    rt_diag_free(&diags);

    signal(SIGPIPE, SIG_IGN);
    enum rt_log_level lvl = RT_LOG_INFO;
    rt_log_level_parse(cfg->logging.level, &lvl);
    struct rt_log_conf lc = {
        .dir = cfg->logging.dir,
        .level = lvl,
        .console = true, /* the dashboard, when shown, takes the terminal instead */
        .max_bytes = (uint64_t)cfg->logging.max_file_bytes,
        .keep = (unsigned)cfg->logging.keep_files,
    };
    if (rt_log_open(&lc, err, sizeof err) != 0) {
        fprintf(stderr, "vllm-router run: %s\n", err);
        rt_config_free(cfg);
        rt_run_opts_free(&run.opts);
        return 1;
    }
    if (rt_admin_init(cfg->admin.state_file, err, sizeof err) != 0) {
        RT_ERROR("%s", err);
        rt_config_free(cfg);
        rc = 1;
        goto out_log;
    }
    rt_admin_apply(cfg, err, sizeof err);
    rt_fleet_init();
    if (build_fleet(cfg, err, sizeof err) != 0) {
        RT_ERROR("%s", err);
        rt_config_free(cfg);
        rc = 1;
        goto out_log;
    }
    unsigned workers = (unsigned)cfg->listen.workers;
    if (workers == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        workers = n > 0 ? (unsigned)n : 1;
    }
    struct rt_health_conf hc;
    rt_router_health_conf(cfg, &hc);
    char host[256];
    snprintf(host, sizeof host, "%s", cfg->listen.host);
    int port = (int)cfg->listen.port;
    size_t nservers = cfg->nservers;
    char admin_host[256];
    snprintf(admin_host, sizeof admin_host, "%s", cfg->admin.host);
    int admin_port = (int)cfg->admin.port;
    rt_settings_publish(cfg); /* owns cfg from here */

    run.loop = uv_default_loop();
    rt_metrics_init(workers);
    if (rt_router_start(&run.router, workers, err, sizeof err) != 0) {
        RT_ERROR("%s", err);
        rt_router_join(&run.router);
        rc = 2;
        goto out_fleet;
    }
    run.health = rt_health_start(run.loop, &hc);
    uv_async_init(run.loop, &run.admin_async, on_admin_change);
    run.admin_async.data = &run;
    rt_admin_set_change_hook(admin_hook, &run);
    if (admin_port != 0 &&
        rt_admin_listen(run.loop, admin_host, admin_port, err, sizeof err) != 0) {
        /* An admin API that cannot listen is a startup failure, like the main port. */
        RT_ERROR("admin API: %s", err);
        rc = 2;
        rt_admin_set_change_hook(NULL, NULL);
        uv_close((uv_handle_t *)&run.admin_async, NULL);
        rt_router_join(&run.router);
        rt_health_stop(run.health, on_health_stopped, NULL);
        run.health = NULL;
        uv_run(run.loop, UV_RUN_DEFAULT);
        goto out_fleet;
    }
    {
        struct rt_settings *cur = rt_settings_acquire();
        watch_config(&run, cur->cfg);
        rt_settings_unref(cur);
    }
    uv_signal_init(run.loop, &run.sigterm);
    uv_signal_init(run.loop, &run.sigint);
    uv_signal_init(run.loop, &run.sighup);
    uv_timer_init(run.loop, &run.drain_timer);
    run.sigterm.data = run.sigint.data = run.sighup.data = run.drain_timer.data = &run;
    uv_signal_start(&run.sigterm, on_signal, SIGTERM);
    uv_signal_start(&run.sigint, on_signal, SIGINT);
    uv_signal_start(&run.sighup, on_signal, SIGHUP);
    RT_INFO("vllm-router %s listening on %s:%d with %u workers, %zu servers", RT_VERSION, host,
            port, workers, nservers);
    uv_run(run.loop, UV_RUN_DEFAULT);
    RT_INFO("stopped");
out_fleet:
    rt_metrics_shutdown();
    rt_fleet_shutdown();
    rt_settings_shutdown();
out_log:
    rt_admin_shutdown();
    rt_log_close();
    rt_free(run.config_path);
    rt_run_opts_free(&run.opts);
    uv_loop_close(uv_default_loop());
    return rc;
}
