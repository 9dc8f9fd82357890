/* The table of configuration keys: names, types, defaults, bounds, reloadability and docs; the
 * loader, the environment/flag overrides, the admin API and docs/configuration.md all read it. */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "buf.h"
#include "config.h"

const char *const rt_config_policies[] = {"load_score",     "round_robin",  "random",
                                          "least_inflight", "power_of_two", "consistent_hash",
                                          NULL};
const char *const rt_config_log_levels[] = {"DEBUG", "INFO", "WARNING", "ERROR", NULL};

const char *const rt_config_tables[] = {"servers", "config", "listen",  "balancing", "queue",
                                        "timeouts", "limits", "logging", "admin",     "dashboard",
                                        NULL};
const char *const rt_config_table_docs[] = {
    "The upstream servers (`servers = [ {...}, ... ]`, the seed's format; `[[servers]]` tables "
    "work too).",
    "The seed's settings: health checks, circuit breaker, reload, request timeout and retries.",
    "Where the router accepts clients.",
    "How a server is chosen for each request.",
    "The admission queue that holds requests while every eligible server is full.",
    "Timeouts beyond the seed's `request_timeout` (time to first byte).",
    "Size limits that protect the router from oversized or slow clients.",
    "The log files (human, errors only, structured JSON lines) and the console copy.",
    "The management API (add, remove, drain servers).",
    "The fullscreen terminal dashboard.",
    NULL,
};

#define OFF(field) offsetof(struct rt_config, field)
#define SOFF(field) offsetof(struct rt_server_conf, field)
#define DAY 86400.0
#define HOUR 3600.0

/* Each row: name, type, default, default string, min, max, min exclusive, choices, reloadable,
 * offset, doc, example. Keep rows of one table together and tables in rt_config_tables order. */
const struct rt_config_key rt_config_keys[] = {
    /* [config]: the seed's keys, with the seed's meanings and defaults. */
    {"config.health_check_interval", RT_CONFIG_DURATION, 10, NULL, 0.1, DAY, false, NULL, true,
     OFF(config.health_check_interval), "Seconds between active health checks (`GET /health`) "
     "of each server.", "15"},
    {"config.health_check_timeout", RT_CONFIG_DURATION, 5, NULL, 0.01, HOUR, false, NULL, true,
     OFF(config.health_check_timeout), "Seconds a health check may take before it counts as "
     "failed.", "3"},
    {"config.health_check_min_success_rate", RT_CONFIG_FLOAT, 0.8, NULL, 0, 1, false, NULL, true,
     OFF(config.health_check_min_success_rate), "A server whose success rate over the last "
     "`health_check_window_size` checks falls below this is taken out of rotation.", "0.9"},
    {"config.health_check_max_response_time", RT_CONFIG_DURATION, 2.0, NULL, 0.001, HOUR, false,
     NULL, true, OFF(config.health_check_max_response_time), "A health check slower than this "
     "many seconds counts as failed.", "1.5"},
    {"config.health_check_window_size", RT_CONFIG_INT, 10, NULL, 1, 1000, false, NULL, true,
     OFF(config.health_check_window_size), "How many recent checks the success rate is computed "
     "over.", "20"},
    {"config.health_check_consecutive_failures", RT_CONFIG_INT, 3, NULL, 1, 1000, false, NULL,
     true, OFF(config.health_check_consecutive_failures), "Failed checks in a row that take a "
     "server out of rotation.", "2"},
    {"config.enable_active_health_check", RT_CONFIG_BOOL, 1, NULL, 0, 0, false, NULL, true,
     OFF(config.enable_active_health_check), "Check servers actively; when false only request "
     "failures (the circuit breaker) take a server out.", "false"},
    {"config.failure_threshold", RT_CONFIG_INT, 2, NULL, 1, 1000, false, NULL, true,
     OFF(config.failure_threshold), "Consecutive request failures that open a server's circuit "
     "(no new requests until it recovers).", "5"},
    {"config.auto_recovery_threshold", RT_CONFIG_DURATION, 60, NULL, 0.1, DAY, false, NULL, true,
     OFF(config.auto_recovery_threshold), "Seconds an open circuit waits before one trial "
     "request (half-open).", "30"},
    {"config.config_reload_interval", RT_CONFIG_DURATION, 30, NULL, 0, DAY, false, NULL, true,
     OFF(config.config_reload_interval), "Seconds between checks of the config file for changes "
     "(the file is also watched, and SIGHUP reloads at once); 0 turns the periodic check off.",
     "60"},
    {"config.request_timeout", RT_CONFIG_DURATION, 120, NULL, 0.1, DAY, false, NULL, true,
     OFF(config.request_timeout), "Seconds a request may wait for the first byte of the "
     "server's response, retries included (504 past it); counted from its first dispatch, "
     "so time in the admission queue (bounded by queue.max_wait) is not part of it.", "300"},
    {"config.max_retries", RT_CONFIG_INT, 3, NULL, 0, 100, false, NULL, true,
     OFF(config.max_retries), "How many other servers a request that failed before any byte "
     "reached the client is retried on.", "1"},
    {"config.retry_delay", RT_CONFIG_DURATION, 0.1, NULL, 0, 60, false, NULL, true,
     OFF(config.retry_delay), "Seconds between a failed attempt and the retry.", "0.5"},

    {"listen.host", RT_CONFIG_STRING, 0, "0.0.0.0", 1, 0, false, NULL, false, OFF(listen.host),
     "Address to accept clients on (env `HOST`, flag `--host`).", "\"127.0.0.1\""},
    {"listen.port", RT_CONFIG_INT, 8888, NULL, 1, 65535, false, NULL, false, OFF(listen.port),
     "TCP port to accept clients on (env `PORT`, flag `--port`).", "8000"},
    {"listen.workers", RT_CONFIG_INT, 0, NULL, 0, 256, false, NULL, false, OFF(listen.workers),
     "Event-loop threads; 0 = one per CPU core (flag `--workers`).", "2"},
    {"listen.max_connections", RT_CONFIG_INT, 10000, NULL, 1, 1000000, false, NULL, true,
     OFF(listen.max_connections), "Client connections open at once; connections past it are "
     "closed as soon as they are accepted.", "2000"},

    {"balancing.policy", RT_CONFIG_ENUM, 0, "load_score", 0, 0, false, rt_config_policies, true,
     OFF(balancing.policy), "Policy that picks the server (flag `--policy`): `load_score` is the "
     "seed's (running x running_weight + waiting x waiting_weight) / max_concurrent_requests, "
     "lowest wins; `consistent_hash` keeps a session on one server.", "\"least_inflight\""},
    {"balancing.running_weight", RT_CONFIG_FLOAT, 3.0, NULL, 0, 1000, false, NULL, true,
     OFF(balancing.running_weight), "Weight of a server's running requests in the `load_score` "
     "policy.", "1.0"},
    {"balancing.waiting_weight", RT_CONFIG_FLOAT, 1.0, NULL, 0, 1000, false, NULL, true,
     OFF(balancing.waiting_weight), "Weight of a server's waiting (queued) requests in the "
     "`load_score` policy.", "0.5"},
    {"balancing.hash_header", RT_CONFIG_STRING, 0, "X-Session-Id", 0, 0, false, NULL, true,
     OFF(balancing.hash_header), "Request header whose value `consistent_hash` hashes (the "
     "body's `user` field when the header is absent); \"\" = the body's `user` only.",
     "\"X-User-Id\""},
    {"balancing.hash_load_factor", RT_CONFIG_FLOAT, 1.25, NULL, 1.0, 100, false, NULL, true,
     OFF(balancing.hash_load_factor), "Bounded loads for `consistent_hash`: a server above this "
     "multiple of the average load passes its sessions on.", "1.5"},
    {"balancing.busy_backoff", RT_CONFIG_DURATION, 5.0, NULL, 0, HOUR, false, NULL, true,
     OFF(balancing.busy_backoff), "Seconds a server that answered 429 or 503 is avoided while "
     "others can take the request.", "2"},
    {"balancing.scrape_interval", RT_CONFIG_DURATION, 1.0, NULL, 0.05, HOUR, false, NULL, true,
     OFF(balancing.scrape_interval), "Seconds between scrapes of each server's `/metrics`.",
     "0.5"},
    {"balancing.scrape_timeout", RT_CONFIG_DURATION, 1.0, NULL, 0.01, HOUR, false, NULL, true,
     OFF(balancing.scrape_timeout), "Seconds a `/metrics` scrape may take.", "2"},
    {"balancing.enable_metrics_scrape", RT_CONFIG_BOOL, 1, NULL, 0, 0, false, NULL, true,
     OFF(balancing.enable_metrics_scrape), "Scrape servers' `/metrics`; when false the router "
     "balances on its own in-flight counts only.", "false"},

    {"queue.enabled", RT_CONFIG_BOOL, 1, NULL, 0, 0, false, NULL, true, OFF(queue.enabled),
     "Hold requests while every eligible server is full; false = the seed's behaviour (send to "
     "the lowest score anyway).", "false"},
    {"queue.max_length", RT_CONFIG_INT, 1024, NULL, 0, 1000000, false, NULL, true,
     OFF(queue.max_length), "Requests the queue holds; past it new ones get 429 with "
     "`Retry-After`.", "256"},
    {"queue.max_wait", RT_CONFIG_DURATION, 30.0, NULL, 0, HOUR, false, NULL, true,
     OFF(queue.max_wait), "Seconds a request may wait in the queue before it gets 429.", "10"},

    {"timeouts.connect", RT_CONFIG_DURATION, 5.0, NULL, 0.01, HOUR, false, NULL, true,
     OFF(timeouts.connect), "Seconds to establish a TCP connection to a server.", "2"},
    {"timeouts.stream_idle", RT_CONFIG_DURATION, 60.0, NULL, 0.1, DAY, false, NULL, true,
     OFF(timeouts.stream_idle), "Longest gap, in seconds, between two chunks of a server's "
     "response once it has started.", "120"},
    {"timeouts.client_header", RT_CONFIG_DURATION, 10.0, NULL, 0.1, HOUR, false, NULL, true,
     OFF(timeouts.client_header), "Seconds a client has to send a complete request head.", "5"},
    {"timeouts.client_body", RT_CONFIG_DURATION, 30.0, NULL, 0.1, HOUR, false, NULL, true,
     OFF(timeouts.client_body), "Seconds a client has to send the request body.", "60"},
    {"timeouts.client_keepalive", RT_CONFIG_DURATION, 75.0, NULL, 0, HOUR, false, NULL, true,
     OFF(timeouts.client_keepalive), "Seconds an idle client connection is kept open; 0 closes "
     "after each response.", "30"},
    {"timeouts.upstream_keepalive", RT_CONFIG_DURATION, 4.0, NULL, 0, HOUR, false, NULL, true,
     OFF(timeouts.upstream_keepalive), "Seconds a pooled idle server connection is kept; keep "
     "it below the server's own idle timeout (vLLM closes at 5 s); 0 = no pooling.", "2"},
    {"timeouts.drain", RT_CONFIG_DURATION, 30.0, NULL, 0, HOUR, false, NULL, true,
     OFF(timeouts.drain), "On SIGTERM/SIGINT, seconds in-flight requests get to finish before "
     "the router exits.", "120"},

    {"limits.max_header_bytes", RT_CONFIG_INT, 16384, NULL, 1024, 1048576, false, NULL, true,
     OFF(limits.max_header_bytes), "Largest request head (request line and headers) in bytes; "
     "431 past it.", "32768"},
    {"limits.max_body_bytes", RT_CONFIG_INT, 33554432, NULL, 1024, 4294967296.0, false, NULL,
     true, OFF(limits.max_body_bytes), "Largest request body in bytes; 413 past it.",
     "104857600"},
    {"limits.max_output_buffer", RT_CONFIG_INT, 262144, NULL, 4096, 1073741824, false, NULL,
     true, OFF(limits.max_output_buffer), "Bytes queued to a slow client before the router "
     "stops reading from the server until the client catches up.", "1048576"},

    {"logging.dir", RT_CONFIG_STRING, 0, "logs", 1, 0, false, NULL, false, OFF(logging.dir),
     "Directory for vllm-router.log, vllm-router-error.log and vllm-router-structured.log "
     "(created if missing).", "\"/var/log/vllm-router\""},
    {"logging.level", RT_CONFIG_ENUM, 0, "INFO", 0, 0, false, rt_config_log_levels, true,
     OFF(logging.level), "Messages below this level are dropped (env `LOG_LEVEL`, flag "
     "`--log-level`); access records are always written.", "\"DEBUG\""},
    {"logging.console", RT_CONFIG_BOOL, 0, NULL, 0, 0, false, NULL, true, OFF(logging.console),
     "Also log to the console instead of showing the dashboard (env `LOG_TO_CONSOLE`, flag "
     "`--console`).", "true"},
    {"logging.max_file_bytes", RT_CONFIG_INT, 10485760, NULL, 4096, 1099511627776.0, false, NULL,
     true, OFF(logging.max_file_bytes), "A log file is rotated once it passes this many bytes.",
     "104857600"},
    {"logging.keep_files", RT_CONFIG_INT, 5, NULL, 0, 100, false, NULL, true,
     OFF(logging.keep_files), "Rotated files kept per log (name.1 ... name.N).", "10"},

    {"admin.token", RT_CONFIG_STRING, 0, "", 0, 0, false, NULL, true, OFF(admin.token),
     "Bearer token the admin API requires; \"\" = no authentication (keep the admin API on a "
     "private address then).", "\"change-me\""},
    {"admin.host", RT_CONFIG_STRING, 0, "", 0, 0, false, NULL, false, OFF(admin.host),
     "Address of a separate admin listener; \"\" = the admin API is served on the main "
     "listener.", "\"127.0.0.1\""},
    {"admin.port", RT_CONFIG_INT, 0, NULL, 0, 65535, false, NULL, false, OFF(admin.port),
     "Port of a separate admin listener; 0 = the admin API is served on the main listener.",
     "9000"},
    {"admin.state_file", RT_CONFIG_STRING, 0, "", 0, 0, false, NULL, false,
     OFF(admin.state_file), "Where changes made through the admin API are kept so they survive "
     "reloads and restarts; \"\" = `<config file>.state.json`.", "\"/var/lib/vllm-router/state.json\""},

    {"dashboard.refresh_interval", RT_CONFIG_DURATION, 1.0, NULL, 0.1, 60, false, NULL, true,
     OFF(dashboard.refresh_interval), "Seconds between redraws of the terminal dashboard.",
     "0.5"},
};
const size_t rt_config_nkeys = sizeof rt_config_keys / sizeof rt_config_keys[0];

/* Keys of one server entry; "url" and "models" are handled by hand (offset unused). */
const struct rt_config_key rt_config_server_keys[] = {
    {"url", RT_CONFIG_STRING, 0, NULL, 1, 0, false, NULL, true, SOFF(url),
     "Required. `http://host[:port][/base/path]`; the port defaults to 80, a trailing `/` is "
     "dropped, no query or fragment. Servers are matched by URL on reload, so each must be "
     "unique. (`https://` is not supported yet.)", "\"http://gpu-server-1:8081\""},
    {"max_concurrent_requests", RT_CONFIG_INT, 4, NULL, 1, 1000000, false, NULL, true,
     SOFF(max_concurrent_requests), "Requests the router keeps outstanding at this server (its "
     "capacity); the rest wait in the queue. Set it to about what the server handles well at "
     "once.", "8"},
    {"models", RT_CONFIG_STRING, 0, NULL, 0, 0, false, NULL, true, SOFF(models),
     "Array of model ids this server serves; `[]` or absent = ask the server's `/v1/models`.",
     "[\"meta-llama/Llama-3.1-8B-Instruct\"]"},
    {"weight", RT_CONFIG_FLOAT, 1.0, NULL, 0, 1000000, true, NULL, true, SOFF(weight),
     "Relative share of traffic for weighted policies (integer or float).", "2.0"},
    {"api_key", RT_CONFIG_STRING, 0, NULL, 0, 0, false, NULL, true, SOFF(api_key),
     "Sent upstream as `Authorization: Bearer <api_key>`, replacing the client's header; absent "
     "= the client's header is passed through.", "\"sk-local-123\""},
    {"name", RT_CONFIG_STRING, 0, NULL, 1, 0, false, NULL, true, SOFF(name),
     "Display name in the dashboard and logs; defaults to `host:port`.", "\"a100-left\""},
};
const size_t rt_config_nserver_keys = sizeof rt_config_server_keys / sizeof rt_config_server_keys[0];

const struct rt_config_key *rt_config_key_find(const char *name)
{
    for (size_t i = 0; i < rt_config_nkeys; i++)
        if (strcmp(rt_config_keys[i].name, name) == 0)
            return &rt_config_keys[i];
    return NULL;
}

/* ---- docs/configuration.md ----------------------------------------------------------------- */

static const char *type_name(const struct rt_config_key *k)
{
    switch (k->type) {
    case RT_CONFIG_INT: return "integer";
    case RT_CONFIG_FLOAT: return "float";
    case RT_CONFIG_BOOL: return "bool";
    case RT_CONFIG_STRING: return "string";
    case RT_CONFIG_DURATION: return "duration (seconds, integer or float)";
    case RT_CONFIG_ENUM: return "string, one of a list";
    }
    return "?";
}

/* Numbers print the shortest way that reads back the same: 10, 0.8, 33554432. */
static void put_num(struct rt_buf *b, double v)
{
    if (v == floor(v) && fabs(v) < 1e15)
        rt_buf_printf(b, "%.0f", v);
    else
        rt_buf_printf(b, "%g", v);
}

static void put_default(struct rt_buf *b, const struct rt_config_key *k)
{
    switch (k->type) {
    case RT_CONFIG_BOOL: rt_buf_printf(b, "`%s`", k->def != 0 ? "true" : "false"); break;
    case RT_CONFIG_STRING:
    case RT_CONFIG_ENUM:
        if (k->def_str)
            rt_buf_printf(b, "`\"%s\"`", k->def_str);
        else
            rt_buf_printf(b, "none");
        break;
    case RT_CONFIG_FLOAT:
    case RT_CONFIG_DURATION:
        /* Floats show a decimal point so the default reads as the type it is. */
        if (k->def == floor(k->def))
            rt_buf_printf(b, "`%.1f`", k->def);
        else {
            rt_buf_printf(b, "`");
            put_num(b, k->def);
            rt_buf_printf(b, "`");
        }
        break;
    default:
        rt_buf_printf(b, "`");
        put_num(b, k->def);
        rt_buf_printf(b, "`");
    }
}

static void put_bounds(struct rt_buf *b, const struct rt_config_key *k)
{
    switch (k->type) {
    case RT_CONFIG_INT:
    case RT_CONFIG_FLOAT:
    case RT_CONFIG_DURATION:
        if (k->min_exclusive) {
            rt_buf_printf(b, "> ");
            put_num(b, k->min);
            rt_buf_printf(b, ", <= ");
        } else {
            put_num(b, k->min);
            rt_buf_printf(b, " .. ");
        }
        put_num(b, k->max);
        break;
    case RT_CONFIG_ENUM:
        for (size_t i = 0; k->choices[i]; i++)
            rt_buf_printf(b, "%s`%s`", i ? ", " : "", k->choices[i]);
        break;
    case RT_CONFIG_STRING: rt_buf_printf(b, k->min >= 1 ? "not empty" : "any"); break;
    case RT_CONFIG_BOOL: rt_buf_printf(b, "`true` or `false`"); break;
    }
}

static void put_key(struct rt_buf *b, const struct rt_config_key *k, const char *shown,
                    const char *example_prefix)
{
    rt_buf_printf(b, "### `%s`\n\n", shown);
    rt_buf_printf(b, "%s\n\n", k->doc);
    rt_buf_printf(b, "- Type: %s\n- Default: ", type_name(k));
    put_default(b, k);
    rt_buf_printf(b, "\n- Allowed: ");
    put_bounds(b, k);
    rt_buf_printf(b, "\n- Changes at run time: %s\n",
                  k->reloadable ? "yes (on reload)" : "no (needs a restart)");
    rt_buf_printf(b, "- Example: `%s%s`\n\n", example_prefix, k->example);
}

char *rt_config_doc_markdown(void)
{
    struct rt_buf b = {0};
    rt_buf_printf(&b,
        "# Configuration\n\n"
        "<!-- Generated from src/config_keys.c by build/config-doc; do not edit by hand.\n"
        "     Regenerate with: build/config-doc > docs/configuration.md -->\n\n"
        "vllm-router reads one TOML 1.0 file, `servers.toml` in the working directory unless\n"
        "`--config FILE` or the environment variable `CONFIG_PATH` names another. Run\n"
        "`vllm-router check --config FILE` to validate a file: every problem is reported as\n"
        "`file:line:col: message`, unknown keys with the closest known key.\n\n"
        "Precedence: command-line flag > environment variable > config file > built-in default.\n"
        "See `vllm-router run --help` for the flags and environment variables.\n\n"
        "The file is re-read when it changes (watched, and checked every\n"
        "`config.config_reload_interval` seconds) and on SIGHUP. Keys marked \"needs a restart\"\n"
        "keep their old value until the router restarts (a warning says so). A file that fails\n"
        "validation changes nothing: the router logs why and keeps the previous configuration.\n\n"
        "Durations are seconds, written as an integer or a float (`10`, `0.5`). Examples below\n"
        "use TOML dotted keys (`config.request_timeout = 300` is the same as `request_timeout =\n"
        "300` under `[config]`).\n\n"
        "A minimal file:\n\n"
        "```toml\n"
        "[servers]\n"
        "servers = [\n"
        "    { url = \"http://gpu-server-1:8081\", max_concurrent_requests = 3 },\n"
        "    { url = \"http://gpu-server-2:8088\", max_concurrent_requests = 5 },\n"
        "]\n"
        "```\n\n"
        "When the file is missing, `run` starts with no servers if the path was the default\n"
        "(`servers.toml`) or `--server` flags were given; a file named with `--config` or\n"
        "`CONFIG_PATH` that does not exist is an error otherwise. `check` always needs the file.\n\n");

    for (size_t t = 0; rt_config_tables[t]; t++) {
        const char *tab = rt_config_tables[t];
        rt_buf_printf(&b, "## [%s]\n\n%s\n\n", tab, rt_config_table_docs[t]);
        if (strcmp(tab, "servers") == 0) {
            rt_buf_printf(&b,
                "Each entry of `servers` is an inline table (on one line, as TOML 1.0 requires) "
                "with the keys below (a plain string is "
                "taken as its `url`). `--server URL[=CAPACITY]` flags replace the whole list. The "
                "list may be empty (e.g. servers are added through the admin API).\n\n"
                "```toml\n[servers]\nservers = [\n"
                "    { url = \"http://gpu-server-1:8081\", max_concurrent_requests = 3 },\n"
                "    { url = \"http://10.0.0.7:8000/v1-proxy\", max_concurrent_requests = 8, "
                "weight = 2.0, name = \"a100\", api_key = \"sk-local\", "
                "models = [\"meta-llama/Llama-3.1-8B-Instruct\"] },\n"
                "]\n```\n\n");
            for (size_t i = 0; i < rt_config_nserver_keys; i++) {
                const struct rt_config_key *k = &rt_config_server_keys[i];
                char prefix[64];
                snprintf(prefix, sizeof prefix, "servers = [{ url = \"http://h:8000\", %s = ",
                         k->name);
                if (strcmp(k->name, "url") == 0) {
                    rt_buf_printf(&b, "### `url`\n\n%s\n\n- Type: string\n- Default: none "
                                      "(required)\n- Changes at run time: yes (on reload)\n"
                                      "- Example: `servers = [{ url = %s }]`\n\n",
                                  k->doc, k->example);
                    continue;
                }
                if (strcmp(k->name, "models") == 0) {
                    rt_buf_printf(&b, "### `models`\n\n%s\n\n- Type: array of non-empty strings\n"
                                      "- Default: `[]`\n- Changes at run time: yes (on reload)\n"
                                      "- Example: `%s%s }]`\n\n",
                                  k->doc, prefix, k->example);
                    continue;
                }
                struct rt_buf ex = {0};
                rt_buf_printf(&ex, "%s%s }]", prefix, k->example);
                char *text = rt_strndup(rt_buf_data(&ex), rt_buf_size(&ex));
                rt_buf_free(&ex);
                /* put_key appends the example after a prefix; here the prefix is in the text. */
                struct rt_config_key copy = *k;
                copy.example = text;
                put_key(&b, &copy, k->name, "");
                rt_free(text);
            }
            continue;
        }
        size_t tl = strlen(tab);
        for (size_t i = 0; i < rt_config_nkeys; i++) {
            const struct rt_config_key *k = &rt_config_keys[i];
            if (strncmp(k->name, tab, tl) != 0 || k->name[tl] != '.')
                continue;
            char prefix[96];
            snprintf(prefix, sizeof prefix, "%s = ", k->name);
            put_key(&b, k, k->name + tl + 1, prefix);
        }
    }
    rt_buf_printf(&b, "## Environment variables\n\n"
                      "| Variable | Sets | Notes |\n|---|---|---|\n"
                      "| `CONFIG_PATH` | the config file | default `servers.toml` |\n"
                      "| `HOST` | `listen.host` | |\n"
                      "| `PORT` | `listen.port` | |\n"
                      "| `LOG_LEVEL` | `logging.level` | DEBUG, INFO, WARNING, ERROR |\n"
                      "| `LOG_TO_CONSOLE` | `logging.console` | true/1/yes or false/0/no |\n"
                      "| `HEALTH_CHECK_INTERVAL` | `config.health_check_interval` | seconds |\n"
                      "| `CONFIG_RELOAD_INTERVAL` | `config.config_reload_interval` | seconds |\n"
                      "| `REQUEST_TIMEOUT` | `config.request_timeout` | seconds |\n\n"
                      "An empty variable counts as unset. A malformed value is an error naming "
                      "the variable; the router does not start.\n");
    char *out = rt_strndup(rt_buf_data(&b), rt_buf_size(&b));
    rt_buf_free(&b);
    return out;
}
