/* 'vllm-router run' options, and the precedence chain default < file < environment < flag. */
#include "run_opts.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include "alloc.h"

/* Flags that take a value, with the field they fill. */
enum flag_id {
    F_CONFIG = 1,
    F_HOST,
    F_PORT,
    F_WORKERS,
    F_SERVER,
    F_POLICY,
    F_LOG_LEVEL,
    F_CONSOLE,
    F_RELOAD,
    F_HELP,
};

static const struct {
    const char *name;
    enum flag_id id;
    bool takes_value;
} flags[] = {
    {"--config", F_CONFIG, true},   {"--host", F_HOST, true},
    {"--port", F_PORT, true},       {"--workers", F_WORKERS, true},
    {"--server", F_SERVER, true},   {"--policy", F_POLICY, true},
    {"--log-level", F_LOG_LEVEL, true}, {"--console", F_CONSOLE, false},
    {"--reload", F_RELOAD, false},  {"--help", F_HELP, false},
};
#define NFLAGS (sizeof flags / sizeof flags[0])

/* Environment variables, the key each sets, in the order they are applied. */
static const struct {
    const char *var;
    const char *key;
} env_keys[] = {
    {"HOST", "listen.host"},
    {"PORT", "listen.port"},
    {"LOG_LEVEL", "logging.level"},
    {"LOG_TO_CONSOLE", "logging.console"},
    {"HEALTH_CHECK_INTERVAL", "config.health_check_interval"},
    {"CONFIG_RELOAD_INTERVAL", "config.config_reload_interval"},
    {"REQUEST_TIMEOUT", "config.request_timeout"},
};

void rt_run_opts_usage(FILE *out)
{
    fprintf(out,
        "usage: vllm-router run [--config FILE] [--host ADDR] [--port N] [--console] [--reload]\n"
        "                       [--workers N] [--server URL[=CAPACITY]]... [--policy NAME]\n"
        "                       [--log-level LEVEL] [--help]\n\n"
        "Runs the router: one OpenAI-compatible entry point in front of the configured servers.\n\n"
        "options (each also accepted as --flag=value):\n"
        "  --config FILE        config file (default: $CONFIG_PATH, else servers.toml)\n"
        "  --host ADDR          address to listen on (listen.host, default 0.0.0.0)\n"
        "  --port N             port to listen on (listen.port, default 8888)\n"
        "  --console            log to the console instead of the fullscreen dashboard\n"
        "                       (logging.console)\n"
        "  --reload             accepted for compatibility; config changes are always picked up\n"
        "  --workers N          event-loop threads, 0 = one per core (listen.workers)\n"
        "  --server URL[=CAPACITY]\n"
        "                       an upstream server with its max_concurrent_requests (default 4);\n"
        "                       repeat it (or list several URLs after one --server) to add more;\n"
        "                       replaces the [servers] list of the config file\n"
        "  --policy NAME        balancing.policy: load_score, round_robin, random, least_inflight,\n"
        "                       power_of_two, consistent_hash\n"
        "  --log-level LEVEL    logging.level: DEBUG, INFO, WARNING, ERROR\n"
        "  --help, -h           show this help\n\n"
        "environment variables (a flag beats a variable, a variable beats the file; empty = unset):\n"
        "  CONFIG_PATH             config file when --config is not given (default servers.toml)\n"
        "  HOST                    listen.host\n"
        "  PORT                    listen.port\n"
        "  LOG_LEVEL               logging.level (DEBUG, INFO, WARNING, ERROR)\n"
        "  LOG_TO_CONSOLE          logging.console (true/1/yes or false/0/no)\n"
        "  HEALTH_CHECK_INTERVAL   config.health_check_interval (seconds)\n"
        "  CONFIG_RELOAD_INTERVAL  config.config_reload_interval (seconds)\n"
        "  REQUEST_TIMEOUT         config.request_timeout (seconds)\n\n"
        "A missing config file is fine when it is the default servers.toml or --server is given\n"
        "(the router starts with those servers, or none); a file named by --config or CONFIG_PATH\n"
        "must exist otherwise. Every key is described in docs/configuration.md.\n\n"
        "exit codes: 0 clean shutdown, 1 bad config or usage, 2 runtime failure.\n"
        "signals: SIGTERM/SIGINT drain and exit, SIGHUP reloads the config.\n");
}

void rt_run_opts_free(struct rt_run_opts *opts)
{
    rt_free(opts->servers);
    opts->servers = NULL;
    opts->nservers = 0;
}

static void add_server(struct rt_run_opts *o, const char *spec)
{
    o->servers = rt_realloc(o->servers, (o->nservers + 1) * sizeof o->servers[0]);
    o->servers[o->nservers++] = spec;
}

int rt_run_opts_parse(int argc, char **argv, struct rt_run_opts *opts, char *err, size_t errlen)
{
    *opts = (struct rt_run_opts){0};
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "-h") == 0) {
            opts->help = true;
            continue;
        }
        if (strncmp(arg, "--", 2) != 0) {
            snprintf(err, errlen, "unexpected argument '%s' (see 'vllm-router run --help')", arg);
            goto fail;
        }
        const char *eq = strchr(arg, '=');
        size_t nlen = eq ? (size_t)(eq - arg) : strlen(arg);
        size_t f = NFLAGS;
        for (size_t j = 0; j < NFLAGS; j++)
            if (strlen(flags[j].name) == nlen && strncmp(flags[j].name, arg, nlen) == 0)
                f = j;
        if (f == NFLAGS) {
            char name[64];
            snprintf(name, sizeof name, "%.*s", (int)(nlen < 60 ? nlen : 60), arg);
            size_t best = 3;
            const char *sug = NULL;
            for (size_t j = 0; j < NFLAGS; j++) {
                size_t d = rt_config_edit_distance(name, flags[j].name);
                if (d < best) {
                    best = d;
                    sug = flags[j].name;
                }
            }
            if (sug)
                snprintf(err, errlen, "unknown option '%s'; did you mean '%s'?", name, sug);
            else
                snprintf(err, errlen, "unknown option '%s' (see 'vllm-router run --help')", name);
            goto fail;
        }
        const char *val = NULL;
        if (flags[f].takes_value) {
            if (eq)
                val = eq + 1;
            else if (i + 1 < argc)
                val = argv[++i];
            else {
                snprintf(err, errlen, "option '%s' needs a value", flags[f].name);
                goto fail;
            }
        } else if (eq) {
            snprintf(err, errlen, "option '%s' takes no value", flags[f].name);
            goto fail;
        }
        switch (flags[f].id) {
        case F_CONFIG: opts->config_path = val; break;
        case F_HOST: opts->host = val; break;
        case F_PORT: opts->port = val; break;
        case F_WORKERS: opts->workers = val; break;
        case F_POLICY: opts->policy = val; break;
        case F_LOG_LEVEL: opts->log_level = val; break;
        case F_CONSOLE: opts->console = true; break;
        case F_RELOAD: opts->reload = true; break;
        case F_HELP: opts->help = true; break;
        case F_SERVER:
            add_server(opts, val);
            /* The seed's roadmap spells several servers after one flag: take following
             * arguments that are not options as more servers. */
            while (!eq && i + 1 < argc && argv[i + 1][0] != '-')
                add_server(opts, argv[++i]);
            break;
        }
    }
    return 0;
fail:
    rt_run_opts_free(opts);
    return -1;
}

/* The value of <name> in <env>, or NULL when absent or empty (empty counts as unset). */
static const char *env_get(char **env, const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; env && env[i]; i++)
        if (strncmp(env[i], name, n) == 0 && env[i][n] == '=')
            return env[i][n + 1] ? env[i] + n + 1 : NULL;
    return NULL;
}

static void set_or_report(struct rt_config *c, const char *key, const char *label,
                          const char *text, struct rt_diag *diags)
{
    char err[512];
    if (rt_config_set_text_as(c, key, label, text, err, sizeof err) != 0)
        rt_diag_add(diags, RT_DIAG_ERROR, NULL, 0, 0, "%s", err);
}

/* <require> says whether a missing file is an error. */
static int build(const struct rt_run_opts *opts, char **env, bool require,
                 struct rt_config **out, struct rt_diag *diags)
{
    *out = NULL;
    size_t before = diags->nerrors;
    const char *path = opts->config_path;
    bool named = true;
    if (path == NULL)
        path = env_get(env, "CONFIG_PATH");
    if (path == NULL) {
        path = RT_CONFIG_DEFAULT_PATH;
        named = false;
    }
    bool must = require || opts->require_file || (named && opts->nservers == 0);
    struct stat st;
    bool missing = !must && stat(path, &st) == -1 && errno == ENOENT;
    struct rt_config *c = NULL;
    if (!missing && rt_config_load_file(path, &c, diags) != 0)
        c = NULL;
    if (c == NULL) {
        /* Either the file is absent and that is fine, or it failed: then go on with the
         * defaults anyway so that problems in the environment and flags are reported too. */
        c = rt_config_new_default();
        rt_config_set_path(c, path);
    }

    for (size_t i = 0; i < sizeof env_keys / sizeof env_keys[0]; i++) {
        const char *v = env_get(env, env_keys[i].var);
        char label[64];
        snprintf(label, sizeof label, "environment variable %s", env_keys[i].var);
        if (v)
            set_or_report(c, env_keys[i].key, label, v, diags);
    }

    if (opts->host)
        set_or_report(c, "listen.host", "--host", opts->host, diags);
    if (opts->port)
        set_or_report(c, "listen.port", "--port", opts->port, diags);
    if (opts->workers)
        set_or_report(c, "listen.workers", "--workers", opts->workers, diags);
    if (opts->policy)
        set_or_report(c, "balancing.policy", "--policy", opts->policy, diags);
    if (opts->log_level)
        set_or_report(c, "logging.level", "--log-level", opts->log_level, diags);
    if (opts->console)
        c->logging.console = true;

    if (opts->nservers > 0) {
        for (size_t i = 0; i < c->nservers; i++)
            rt_server_conf_clear(&c->servers[i]);
        c->nservers = 0;
        c->servers_from_cli = true;
        for (size_t i = 0; i < opts->nservers; i++) {
            struct rt_server_conf s;
            char err[512];
            if (rt_server_conf_from_spec(opts->servers[i], &s, err, sizeof err) != 0) {
                rt_diag_add(diags, RT_DIAG_ERROR, NULL, 0, 0, "--server: %s", err);
                continue;
            }
            if (rt_config_add_server(c, &s, err, sizeof err) != 0)
                rt_diag_add(diags, RT_DIAG_ERROR, NULL, 0, 0,
                            "--server %s: the same server URL is given twice", opts->servers[i]);
            rt_server_conf_clear(&s);
        }
    }

    if (diags->nerrors > before) {
        rt_config_free(c);
        return -1;
    }
    *out = c;
    return 0;
}

int rt_config_build(const struct rt_run_opts *opts, char **environ_like, struct rt_config **out,
                    struct rt_diag *diags)
{
    return build(opts, environ_like, false, out, diags);
}

int rt_config_reload(const struct rt_config *prev, const struct rt_run_opts *opts,
                     char **environ_like, struct rt_config **out, struct rt_diag *diags)
{
    int rc = build(opts, environ_like, prev && prev->file_loaded, out, diags);
    if (rc == 0 && prev)
        rt_config_restart_needed(prev, *out, diags);
    return rc;
}
