/* Unit tests for config.c, config_keys.c and run_opts.c: defaults, every kind of validation
 * message, suggestions, URL normalisation, precedence, the docs and the example file. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "alloc.h"
#include "config.h"
#include "run_opts.h"
#include "toml.h"

/* ---- helpers ---- */

static struct rt_config *load_ok(const char *text)
{
    struct rt_diag d = {0};
    struct rt_config *c = NULL;
    int rc = rt_config_load_string(text, strlen(text), "t.toml", &c, &d);
    if (rc != 0)
        rt_diag_print(&d, stderr);
    assert_int_equal(rc, 0);
    assert_non_null(c);
    rt_diag_free(&d);
    return c;
}

/* All messages of a failed load, one a line. */
static char *load_errors(const char *text, size_t *count)
{
    struct rt_diag d = {0};
    struct rt_config *c = NULL;
    int rc = rt_config_load_string(text, strlen(text), "t.toml", &c, &d);
    assert_int_equal(rc, -1);
    assert_null(c);
    assert_true(d.nerrors > 0);
    size_t cap = 4096 * (d.len + 1), used = 0;
    char *all = rt_malloc(cap);
    all[0] = '\0';
    for (size_t i = 0; i < d.len; i++) {
        rt_diag_format(&d, i, all + used, cap - used - 2);
        used += strlen(all + used);
        all[used++] = '\n';
        all[used] = '\0';
    }
    if (count)
        *count = d.nerrors;
    rt_diag_free(&d);
    return all;
}

/* Asserts that loading <text> fails with a message line exactly <want> among its messages. */
static void expect_error(const char *text, const char *want)
{
    char *all = load_errors(text, NULL);
    char line[1100];
    snprintf(line, sizeof line, "%s\n", want);
    if (strstr(all, line) == NULL) {
        fprintf(stderr, "wanted: %s\ngot:\n%s", want, all);
        fail();
    }
    rt_free(all);
}

static char tmpdir[64];

static int setup_dir(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/rt-config-test-XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown_dir(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

static char *write_file(const char *name, const char *text)
{
    static char path[256];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    return path;
}

/* CTest sets RT_SOURCE_DIR; run by hand, the tree is found from this file's path. */
static const char *source_dir(void)
{
    static char dir[512];
    const char *s = getenv("RT_SOURCE_DIR");
    if (s)
        return s;
    snprintf(dir, sizeof dir, "%s", __FILE__);
    char *cut = strstr(dir, "/tests/unit/");
    if (cut)
        *cut = '\0';
    else
        snprintf(dir, sizeof dir, ".");
    return dir;
}

static char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    size_t cap = 1 << 16, n = 0;
    char *buf = rt_malloc(cap);
    size_t got;
    while ((got = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += got;
        if (cap - n - 1 == 0) {
            cap *= 2;
            buf = rt_realloc(buf, cap);
        }
    }
    fclose(f);
    buf[n] = '\0';
    *len = n;
    return buf;
}

/* ---- defaults and the seed's format ---- */

static void defaults(void **state)
{
    (void)state;
    struct rt_config *c = load_ok("");
    assert_int_equal(c->nservers, 0);
    assert_true(c->config.health_check_interval == 10);
    assert_true(c->config.health_check_timeout == 5);
    assert_true(c->config.health_check_min_success_rate == 0.8);
    assert_true(c->config.health_check_max_response_time == 2.0);
    assert_int_equal(c->config.health_check_window_size, 10);
    assert_int_equal(c->config.health_check_consecutive_failures, 3);
    assert_true(c->config.enable_active_health_check);
    assert_int_equal(c->config.failure_threshold, 2);
    assert_true(c->config.auto_recovery_threshold == 60);
    assert_true(c->config.config_reload_interval == 30);
    assert_true(c->config.request_timeout == 120);
    assert_int_equal(c->config.max_retries, 3);
    assert_true(c->config.retry_delay == 0.1);
    assert_string_equal(c->listen.host, "0.0.0.0");
    assert_int_equal(c->listen.port, 8888);
    assert_int_equal(c->listen.workers, 0);
    assert_int_equal(c->listen.max_connections, 10000);
    assert_string_equal(c->balancing.policy, "load_score");
    assert_true(c->balancing.running_weight == 3.0 && c->balancing.waiting_weight == 1.0);
    assert_string_equal(c->balancing.hash_header, "X-Session-Id");
    assert_true(c->balancing.hash_load_factor == 1.25 && c->balancing.busy_backoff == 5.0);
    assert_true(c->balancing.scrape_interval == 1.0 && c->balancing.scrape_timeout == 1.0);
    assert_true(c->balancing.enable_metrics_scrape);
    assert_true(c->queue.enabled);
    assert_int_equal(c->queue.max_length, 1024);
    assert_true(c->queue.max_wait == 30.0);
    assert_true(c->timeouts.connect == 5.0 && c->timeouts.stream_idle == 60.0);
    assert_true(c->timeouts.client_header == 10.0 && c->timeouts.client_body == 30.0);
    assert_true(c->timeouts.client_keepalive == 75.0 && c->timeouts.upstream_keepalive == 4.0);
    assert_true(c->timeouts.drain == 30.0);
    assert_int_equal(c->limits.max_header_bytes, 16384);
    assert_int_equal(c->limits.max_body_bytes, 33554432);
    assert_int_equal(c->limits.max_output_buffer, 262144);
    assert_string_equal(c->logging.dir, "logs");
    assert_string_equal(c->logging.level, "INFO");
    assert_false(c->logging.console);
    assert_int_equal(c->logging.max_file_bytes, 10485760);
    assert_int_equal(c->logging.keep_files, 5);
    assert_string_equal(c->admin.token, "");
    assert_string_equal(c->admin.host, "");
    assert_int_equal(c->admin.port, 0);
    assert_string_equal(c->admin.state_file, "");
    assert_true(c->dashboard.refresh_interval == 1.0);
    assert_null(c->path);
    rt_config_free(c);

    /* The key table and the default-only constructor agree. */
    c = rt_config_new_default();
    assert_int_equal(c->listen.port, 8888);
    rt_config_free(c);
}

static void seed_format(void **state)
{
    (void)state;
    struct rt_config *c = load_ok(
        "[servers]\n"
        "servers = [\n"
        "    { url = \"http://gpu-server-1:8081\", max_concurrent_requests = 3 },\n"
        "    { url = \"http://gpu-server-2:8088\", max_concurrent_requests = 5, weight = 2,"
        " models = [\"m1\", \"m2\"], api_key = \"sk-1\", name = \"big\" },\n"
        "    \"http://10.0.0.3\",\n"
        "]\n\n"
        "[config]\n"
        "health_check_interval = 2.5\n"
        "request_timeout = 300\n"
        "enable_active_health_check = false\n"
        "max_retries = 0\n");
    assert_int_equal(c->nservers, 3);
    struct rt_server_conf *s = &c->servers[0];
    assert_string_equal(s->url, "http://gpu-server-1:8081");
    assert_string_equal(s->scheme, "http");
    assert_string_equal(s->host, "gpu-server-1");
    assert_int_equal(s->port, 8081);
    assert_string_equal(s->base_path, "");
    assert_int_equal(s->max_concurrent_requests, 3);
    assert_true(s->weight == 1.0);
    assert_int_equal(s->nmodels, 0);
    assert_null(s->api_key);
    assert_string_equal(s->name, "gpu-server-1:8081");
    s = &c->servers[1];
    assert_int_equal(s->max_concurrent_requests, 5);
    assert_true(s->weight == 2.0);
    assert_int_equal(s->nmodels, 2);
    assert_string_equal(s->models[1], "m2");
    assert_string_equal(s->api_key, "sk-1");
    assert_string_equal(s->name, "big");
    s = &c->servers[2];
    assert_string_equal(s->url, "http://10.0.0.3");
    assert_int_equal(s->port, 80);
    assert_int_equal(s->max_concurrent_requests, 4); /* documented default */
    assert_string_equal(s->name, "10.0.0.3:80");
    assert_true(c->config.health_check_interval == 2.5);
    assert_true(c->config.request_timeout == 300);
    assert_false(c->config.enable_active_health_check);
    assert_int_equal(c->config.max_retries, 0);

    /* The clone is deep: freeing the original leaves it intact. */
    struct rt_config *copy = rt_config_clone(c);
    rt_config_free(c);
    assert_string_equal(copy->servers[1].models[0], "m1");
    assert_string_equal(copy->balancing.policy, "load_score");
    rt_config_free(copy);
}

static void array_of_tables_and_dotted_keys(void **state)
{
    (void)state;
    struct rt_config *c = load_ok("listen.port = 9000\n"
                                  "balancing.policy = \"Round_Robin\"\n"
                                  "[[servers]]\nurl = \"http://a:1\"\n"
                                  "[[servers]]\nurl = \"http://b:2\"\nmax_concurrent_requests = 9\n");
    assert_int_equal(c->listen.port, 9000);
    assert_string_equal(c->balancing.policy, "round_robin"); /* canonical spelling */
    assert_int_equal(c->nservers, 2);
    assert_int_equal(c->servers[1].max_concurrent_requests, 9);
    rt_config_free(c);
}

/* ---- URLs ---- */

static void url_normalisation(void **state)
{
    (void)state;
    static const struct {
        const char *in, *url, *host, *path;
        int port;
    } ok[] = {
        {"http://gpu:8000", "http://gpu:8000", "gpu", "", 8000},
        {"http://gpu:8000/", "http://gpu:8000", "gpu", "", 8000},
        {"HTTP://GPU-1.Example.com:80/", "http://gpu-1.example.com", "gpu-1.example.com", "", 80},
        {"http://h", "http://h", "h", "", 80},
        {"http://h/v1/proxy//", "http://h/v1/proxy", "h", "/v1/proxy", 80},
        {"http://[::1]:8001", "http://[::1]:8001", "::1", "", 8001},
        {"http://127.0.0.1:65535/x", "http://127.0.0.1:65535/x", "127.0.0.1", "/x", 65535},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        struct rt_server_conf s = {0};
        char err[256];
        int rc = rt_server_conf_parse_url(ok[i].in, &s, err, sizeof err);
        if (rc != 0)
            fprintf(stderr, "%s: %s\n", ok[i].in, err);
        assert_int_equal(rc, 0);
        assert_string_equal(s.url, ok[i].url);
        assert_string_equal(s.host, ok[i].host);
        assert_string_equal(s.base_path, ok[i].path);
        assert_int_equal(s.port, ok[i].port);
        rt_server_conf_clear(&s);
    }
    static const struct {
        const char *in, *msg;
    } bad[] = {
        {"gpu:8000", "url must start with http://, got \"gpu:8000\""},
        {"ftp://gpu", "unsupported scheme 'ftp' in url \"ftp://gpu\"; use http://"},
        {"https://gpu:8443", "https servers are not supported yet (\"https://gpu:8443\"); use http://"},
        {"http://:8000", "url has no host: \"http://:8000\""},
        {"http://", "url has no host: \"http://\""},
        {"http://h:0", "url port must be between 1 and 65535, got 0"},
        {"http://h:65536", "url port must be between 1 and 65535, got 65536"},
        {"http://h:80a", "url port must be a number between 1 and 65535, got '80a'"},
        {"http://h:", "url port must be a number between 1 and 65535, got ''"},
        {"http://h/x?a=1", "url must not have a query (?...) or fragment (#...), got \"http://h/x?a=1\""},
        {"http://h#f", "url must not have a query (?...) or fragment (#...), got \"http://h#f\""},
        {"http://u:p@h", "user:password@ in a server url is not supported, got \"http://u:p@h\"; use api_key for a bearer token"},
        {"http://h h", "url must not contain spaces or control characters, got \"http://h h\""},
        {"http://h$t", "url host 'h$t' has an invalid character '$'"},
        {"http://[::1", "url has an unterminated [IPv6 address]: \"http://[::1\""},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct rt_server_conf s = {0};
        char err[256];
        assert_int_equal(rt_server_conf_parse_url(bad[i].in, &s, err, sizeof err), -1);
        if (strcmp(err, bad[i].msg) != 0)
            fprintf(stderr, "%s:\n  want %s\n  got  %s\n", bad[i].in, bad[i].msg, err);
        assert_string_equal(err, bad[i].msg);
        assert_null(s.url);
    }
}

static void server_spec(void **state)
{
    (void)state;
    struct rt_server_conf s;
    char err[256];
    assert_int_equal(rt_server_conf_from_spec("http://a:1=7", &s, err, sizeof err), 0);
    assert_string_equal(s.url, "http://a:1");
    assert_int_equal(s.max_concurrent_requests, 7);
    assert_string_equal(s.name, "a:1");
    rt_server_conf_clear(&s);
    assert_int_equal(rt_server_conf_from_spec("http://a:1/", &s, err, sizeof err), 0);
    assert_int_equal(s.max_concurrent_requests, 4);
    rt_server_conf_clear(&s);
    assert_int_equal(rt_server_conf_from_spec("http://a:1=0", &s, err, sizeof err), -1);
    assert_string_equal(err, "capacity in \"http://a:1=0\" must be an integer between 1 and "
                             "1000000 (URL=CAPACITY), got \"0\"");
    assert_int_equal(rt_server_conf_from_spec("http://a:1=x", &s, err, sizeof err), -1);
    assert_int_equal(rt_server_conf_from_spec("a:1", &s, err, sizeof err), -1);
    assert_string_equal(err, "url must start with http://, got \"a:1\"");
}

/* ---- validation messages ---- */

static void value_messages(void **state)
{
    (void)state;
    /* Wrong types name what was expected and what was given. */
    expect_error("[servers]\nservers = [ { url = \"http://a:1\", max_concurrent_requests = \"3\" } ]\n",
                 "t.toml:2:61: max_concurrent_requests must be an integer between 1 and 1000000, "
                 "got string \"3\"");
    expect_error("[servers]\nservers = [ { url = \"http://a:1\", max_concurrent_requests = 2.0 } ]\n",
                 "t.toml:2:61: max_concurrent_requests must be an integer between 1 and 1000000, "
                 "got float 2");
    expect_error("[config]\nhealth_check_interval = \"10s\"\n",
                 "t.toml:2:25: config.health_check_interval must be a duration in seconds (integer "
                 "or float) between 0.1 and 86400, got string \"10s\"");
    expect_error("[config]\nenable_active_health_check = \"yes\"\n",
                 "t.toml:2:30: config.enable_active_health_check must be true or false, got string "
                 "\"yes\"");
    expect_error("[config]\nhealth_check_window_size = 2.5\n",
                 "t.toml:2:28: config.health_check_window_size must be an integer between 1 and "
                 "1000, got float 2.5");
    expect_error("[listen]\nhost = 5\n",
                 "t.toml:2:8: listen.host must be a non-empty string, got integer 5");
    expect_error("[listen]\nhost = \"\"\n", "t.toml:2:8: listen.host must not be empty");
    expect_error("[logging]\nlevel = \"verbose\"\n",
                 "t.toml:2:9: logging.level must be one of \"DEBUG\", \"INFO\", \"WARNING\", "
                 "\"ERROR\", got string \"verbose\"");
    expect_error("[balancing]\npolicy = [1]\n",
                 "t.toml:2:10: balancing.policy must be one of \"load_score\", \"round_robin\", "
                 "\"random\", \"least_inflight\", \"power_of_two\", \"consistent_hash\", got an "
                 "array");
    expect_error("[config]\nrequest_timeout = 1979-05-27\n",
                 "t.toml:2:19: config.request_timeout must be a duration in seconds (integer or "
                 "float) between 0.1 and 86400, got date-local 1979-05-27");
    /* Bounds are named. */
    expect_error("[config]\nhealth_check_window_size = 0\n",
                 "t.toml:2:28: config.health_check_window_size must be between 1 and 1000, got 0");
    expect_error("[config]\nhealth_check_min_success_rate = 1.5\n",
                 "t.toml:2:33: config.health_check_min_success_rate must be between 0 and 1, got 1.5");
    expect_error("[listen]\nport = 70000\n",
                 "t.toml:2:8: listen.port must be between 1 and 65535, got 70000");
    expect_error("[config]\nretry_delay = -1\n",
                 "t.toml:2:15: config.retry_delay must be between 0 and 60, got -1");
    expect_error("[config]\nrequest_timeout = inf\n",
                 "t.toml:2:19: config.request_timeout must be a duration in seconds (integer or "
                 "float) between 0.1 and 86400, got float inf");
    expect_error("[limits]\nmax_header_bytes = 100\n",
                 "t.toml:2:20: limits.max_header_bytes must be between 1024 and 1048576, got 100");
    expect_error("[servers]\nservers = [ { url = \"http://a:1\", weight = 0 } ]\n",
                 "t.toml:2:44: weight must be > 0 and <= 1000000, got 0");
    expect_error("[servers]\nservers = [ { url = \"http://a:1\", max_concurrent_requests = 0 } ]\n",
                 "t.toml:2:61: max_concurrent_requests must be between 1 and 1000000, got 0");
    /* Server entries. */
    expect_error("[servers]\nservers = [ { max_concurrent_requests = 3 } ]\n",
                 "t.toml:2:13: server entry has no 'url' (e.g. { url = \"http://gpu-1:8000\" })");
    expect_error("[servers]\nservers = [ 5 ]\n",
                 "t.toml:2:13: a server entry must be a table like { url = \"http://host:port\" } or "
                 "a URL string, got integer 5");
    expect_error("[servers]\nservers = [ { url = 5 } ]\n",
                 "t.toml:2:21: url must be a string like \"http://host:port\", got integer 5");
    expect_error("[servers]\nservers = [ { url = \"http://a:1\", models = \"m\" } ]\n",
                 "t.toml:2:44: models must be an array of model ids, got string \"m\"");
    expect_error("[servers]\nservers = [ { url = \"http://a:1\", models = [\"m\", \"\"] } ]\n",
                 "t.toml:2:50: models must hold non-empty strings, got string \"\"");
    expect_error("[servers]\nservers = [ { url = \"http://a:1\", name = \"\" } ]\n",
                 "t.toml:2:42: name must not be empty (leave it out for host:port)");
    expect_error("[servers]\nservers = [ { url = \"http://a:1\", api_key = 1 } ]\n",
                 "t.toml:2:45: api_key must be a string, got integer 1");
    expect_error("[servers]\nservers = { url = \"http://a:1\" }\n",
                 "t.toml:2:11: servers must be an array of server entries, e.g. servers = [ { url "
                 "= \"http://gpu-1:8000\" } ], got a table");
    expect_error("[servers]\nservers = [ { url = \"ftp://a\" } ]\n",
                 "t.toml:2:21: unsupported scheme 'ftp' in url \"ftp://a\"; use http://");
    expect_error("config = 3\n", "t.toml:1:1: 'config' must be a table ([config]), got integer 3");
}

static void unknown_keys(void **state)
{
    (void)state;
    expect_error("[config]\nhelth_check_interval = 10\n",
                 "t.toml:2:1: unknown key 'helth_check_interval' in [config]; did you mean "
                 "'health_check_interval'?");
    expect_error("[config]\nhealth_check_intervall = 10\n",
                 "t.toml:2:1: unknown key 'health_check_intervall' in [config]; did you mean "
                 "'health_check_interval'?");
    expect_error("[balancing]\npolcy = \"random\"\n",
                 "t.toml:2:1: unknown key 'polcy' in [balancing]; did you mean 'policy'?");
    expect_error("[config]\nport = 1\n",
                 "t.toml:2:1: unknown key 'port' in [config]; did you mean 'port' in [listen]?");
    expect_error("[config]\nbananas = 1\n", "t.toml:2:1: unknown key 'bananas' in [config]");
    expect_error("[confg]\nx = 1\n", "t.toml:1:2: unknown table [confg]; did you mean [config]?");
    expect_error("[bananas]\nx = 1\n", "t.toml:1:2: unknown table [bananas]");
    expect_error("health_check_interval = 10\n",
                 "t.toml:1:1: key 'health_check_interval' must be inside a table; did you mean "
                 "'health_check_interval' in [config]?");
    expect_error("zzz = 10\n", "t.toml:1:1: unknown key 'zzz' at the top level (keys belong in "
                               "tables such as [config])");
    expect_error("[servers]\nservers = [ { url = \"http://a:1\", max_concurent_requests = 3 } ]\n",
                 "t.toml:2:35: unknown key 'max_concurent_requests' in server entry; did you mean "
                 "'max_concurrent_requests'?");
    expect_error("[servers]\nservers = [ { url = \"http://a:1\", colour = 3 } ]\n",
                 "t.toml:2:35: unknown key 'colour' in server entry (known: url, "
                 "max_concurrent_requests, models, weight, api_key, name)");
    expect_error("[servers]\nserver = []\n",
                 "t.toml:2:1: unknown key 'server' in [servers]; did you mean 'servers'?");
    expect_error("[config.sub]\nx = 1\n",
                 "t.toml:1:9: unknown key 'sub' in [config]");
    /* Suggestions ignore case. */
    expect_error("[listen]\nPort = 1\n",
                 "t.toml:2:1: unknown key 'Port' in [listen]; did you mean 'port'?");
    assert_int_equal(rt_config_edit_distance("abcd", "abdc"), 1);
    assert_int_equal(rt_config_edit_distance("", "abc"), 3);
}

static void duplicate_urls(void **state)
{
    (void)state;
    expect_error("[servers]\nservers = [\n  { url = \"http://A:80/\" },\n  { url = \"http://b:1\" },\n"
                 "  { url = \"http://a\" },\n]\n",
                 "t.toml:5:11: duplicate server URL \"http://a\" (first at t.toml:3:11); servers are "
                 "matched by URL, so each may appear once");
    /* Found even when the first entry has another problem. */
    expect_error("servers.servers = [\n  { url = \"http://a:1\", weight = -1 },\n  \"http://a:1/\",\n]\n",
                 "t.toml:3:3: duplicate server URL \"http://a:1\" (first at t.toml:2:11); servers "
                 "are matched by URL, so each may appear once");
    /* Different base paths are different servers. */
    struct rt_config *c =
        load_ok("servers.servers = [\"http://a:1/x\", \"http://a:1/y\", \"http://a:2\"]\n");
    assert_int_equal(c->nservers, 3);
    char err[256];
    assert_int_equal(rt_config_add_server(c, &c->servers[0], err, sizeof err), -1);
    assert_string_equal(err, "server http://a:1/x is already configured");
    rt_config_free(c);
}

static void every_problem_is_reported(void **state)
{
    (void)state;
    size_t n = 0;
    char *all = load_errors("[servers]\n"
                            "servers = [ { url = \"http://a:0\" }, { url = \"http://b:1\", weight = -1 } ]\n"
                            "[config]\n"
                            "max_retries = 1000\n"
                            "retry_dely = 1\n"
                            "[listen]\n"
                            "port = \"x\"\n",
                            &n);
    assert_int_equal(n, 5);
    /* In line order. */
    const char *p1 = strstr(all, "t.toml:2:21: url port");
    const char *p2 = strstr(all, "t.toml:2:68: weight");
    const char *p3 = strstr(all, "t.toml:4:15: config.max_retries must be between 0 and 100, got 1000");
    const char *p4 = strstr(all, "t.toml:5:1: unknown key 'retry_dely' in [config]; did you mean 'retry_delay'?");
    const char *p5 = strstr(all, "t.toml:7:8: listen.port must be an integer between 1 and 65535, got string \"x\"");
    if (!(p1 && p2 && p3 && p4 && p5))
        fprintf(stderr, "%s", all);
    assert_true(p1 && p2 && p3 && p4 && p5);
    assert_true(p1 < p2 && p2 < p3 && p3 < p4 && p4 < p5);
    rt_free(all);
}

static void syntax_errors(void **state)
{
    (void)state;
    size_t n = 0;
    char *all = load_errors("[config]\nmax_retries = = 3\n", &n);
    assert_int_equal(n, 1);
    assert_true(strncmp(all, "t.toml:2:15: ", 13) == 0);
    rt_free(all);
    all = load_errors("[config]\nmax_retries = 1\nmax_retries = 2\n", &n);
    assert_true(strncmp(all, "t.toml:3:", 9) == 0);
    rt_free(all);
}

static void diag_format(void **state)
{
    (void)state;
    struct rt_diag d = {0};
    rt_diag_add(&d, RT_DIAG_ERROR, "f.toml", 3, 4, "bad %d", 1);
    rt_diag_add(&d, RT_DIAG_ERROR, "f.toml", 0, 0, "missing");
    rt_diag_add(&d, RT_DIAG_WARNING, NULL, 0, 0, "careful");
    char line[128];
    rt_diag_format(&d, 0, line, sizeof line);
    assert_string_equal(line, "f.toml:3:4: bad 1");
    rt_diag_format(&d, 1, line, sizeof line);
    assert_string_equal(line, "f.toml: missing");
    rt_diag_format(&d, 2, line, sizeof line);
    assert_string_equal(line, "warning: careful");
    assert_int_equal(d.nerrors, 2);
    rt_diag_free(&d);
    assert_int_equal(d.len, 0);
}

/* ---- files ---- */

static void files(void **state)
{
    (void)state;
    struct rt_diag d = {0};
    struct rt_config *c = NULL;
    char path[300];
    snprintf(path, sizeof path, "%s/none.toml", tmpdir);
    assert_int_equal(rt_config_load_file(path, &c, &d), -1);
    char line[600], want[600];
    rt_diag_format(&d, 0, line, sizeof line);
    snprintf(want, sizeof want, "%s: cannot open config file: %s", path, strerror(ENOENT));
    assert_string_equal(line, want);
    rt_diag_free(&d);

    assert_int_equal(rt_config_load_file(tmpdir, &c, &d), -1);
    rt_diag_format(&d, 0, line, sizeof line);
    assert_non_null(strstr(line, "it is a directory"));
    rt_diag_free(&d);

    const char *p = write_file("ok.toml", "[listen]\nport = 1234\n");
    snprintf(path, sizeof path, "%s", p);
    assert_int_equal(rt_config_load_file(path, &c, &d), 0);
    assert_int_equal(c->listen.port, 1234);
    assert_string_equal(c->path, path);
    assert_true(c->file_loaded);
    snprintf(want, sizeof want, "%s.state.json", path);
    assert_string_equal(c->admin.state_file, want);
    rt_config_free(c);

    p = write_file("bad.toml", "[listen]\nport = 0\n");
    snprintf(path, sizeof path, "%s", p);
    assert_int_equal(rt_config_load_file(path, &c, &d), -1);
    rt_diag_format(&d, 0, line, sizeof line);
    snprintf(want, sizeof want, "%s:2:8: listen.port must be between 1 and 65535, got 0", path);
    assert_string_equal(line, want);
    rt_diag_free(&d);
}

/* ---- run options and precedence ---- */

static void run_opts_parse(void **state)
{
    (void)state;
    struct rt_run_opts o;
    char err[256];
    char *argv1[] = {"run", "--config", "x.toml", "--host=127.0.0.1", "--port", "9000", "--console",
                     "--reload", "--workers=2", "--server", "http://a:1=3", "--server=http://b:2",
                     "--policy", "random", "--log-level=debug", NULL};
    assert_int_equal(rt_run_opts_parse(15, argv1, &o, err, sizeof err), 0);
    assert_string_equal(o.config_path, "x.toml");
    assert_string_equal(o.host, "127.0.0.1");
    assert_string_equal(o.port, "9000");
    assert_string_equal(o.workers, "2");
    assert_string_equal(o.policy, "random");
    assert_string_equal(o.log_level, "debug");
    assert_true(o.console && o.reload && !o.help);
    assert_int_equal(o.nservers, 2);
    assert_string_equal(o.servers[0], "http://a:1=3");
    assert_string_equal(o.servers[1], "http://b:2");
    rt_run_opts_free(&o);

    /* The seed's "--server url1 url2" spelling. */
    char *argv2[] = {"run", "--server", "http://a:1", "http://b:2", "--console", NULL};
    assert_int_equal(rt_run_opts_parse(5, argv2, &o, err, sizeof err), 0);
    assert_int_equal(o.nservers, 2);
    assert_true(o.console);
    rt_run_opts_free(&o);

    char *argv3[] = {"run", "--help", NULL};
    assert_int_equal(rt_run_opts_parse(2, argv3, &o, err, sizeof err), 0);
    assert_true(o.help);
    rt_run_opts_free(&o);

    static const struct {
        int argc;
        char *argv[4];
        const char *msg;
    } bad[] = {
        {2, {"run", "--prot"}, "unknown option '--prot'; did you mean '--port'?"},
        {2, {"run", "--zzzzzzz=1"}, "unknown option '--zzzzzzz' (see 'vllm-router run --help')"},
        {2, {"run", "--port"}, "option '--port' needs a value"},
        {2, {"run", "--console=yes"}, "option '--console' takes no value"},
        {2, {"run", "extra"}, "unexpected argument 'extra' (see 'vllm-router run --help')"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(rt_run_opts_parse(bad[i].argc, (char **)bad[i].argv, &o, err, sizeof err), -1);
        assert_string_equal(err, bad[i].msg);
        assert_null(o.servers);
    }
}

static struct rt_config *build_ok(struct rt_run_opts *o, char **env)
{
    struct rt_diag d = {0};
    struct rt_config *c = NULL;
    int rc = rt_config_build(o, env, &c, &d);
    if (rc != 0)
        rt_diag_print(&d, stderr);
    assert_int_equal(rc, 0);
    rt_diag_free(&d);
    return c;
}

static char *build_errors(struct rt_run_opts *o, char **env)
{
    struct rt_diag d = {0};
    struct rt_config *c = NULL;
    assert_int_equal(rt_config_build(o, env, &c, &d), -1);
    assert_null(c);
    char *all = rt_malloc(8192);
    size_t used = 0;
    for (size_t i = 0; i < d.len; i++) {
        rt_diag_format(&d, i, all + used, 8192 - used - 2);
        used += strlen(all + used);
        all[used++] = '\n';
    }
    all[used] = '\0';
    rt_diag_free(&d);
    return all;
}

static void precedence(void **state)
{
    (void)state;
    char path[300];
    snprintf(path, sizeof path, "%s",
             write_file("p.toml", "servers.servers = [\"http://file:1\"]\n"
                                  "[listen]\nport = 1000\nhost = \"10.0.0.1\"\n"
                                  "[config]\nrequest_timeout = 50\nhealth_check_interval = 7\n"
                                  "[logging]\nlevel = \"ERROR\"\n"));
    char env_path[320];
    snprintf(env_path, sizeof env_path, "CONFIG_PATH=%s", path);
    char *env_none[] = {env_path, NULL};
    char *env_all[] = {env_path, "PORT=2000", "HOST=10.0.0.2", "LOG_LEVEL=warning",
                       "LOG_TO_CONSOLE=yes", "HEALTH_CHECK_INTERVAL=3.5",
                       "CONFIG_RELOAD_INTERVAL=0", "REQUEST_TIMEOUT=60", "UNRELATED=1", NULL};

    /* File over defaults. */
    struct rt_run_opts o = {0};
    struct rt_config *c = build_ok(&o, env_none);
    assert_int_equal(c->listen.port, 1000);
    assert_string_equal(c->listen.host, "10.0.0.1");
    assert_string_equal(c->path, path);
    assert_int_equal(c->nservers, 1);
    assert_false(c->servers_from_cli);
    assert_true(c->config.config_reload_interval == 30);
    rt_config_free(c);

    /* Environment over file. */
    c = build_ok(&o, env_all);
    assert_int_equal(c->listen.port, 2000);
    assert_string_equal(c->listen.host, "10.0.0.2");
    assert_string_equal(c->logging.level, "WARNING");
    assert_true(c->logging.console);
    assert_true(c->config.health_check_interval == 3.5);
    assert_true(c->config.config_reload_interval == 0);
    assert_true(c->config.request_timeout == 60);
    rt_config_free(c);

    /* Flags over environment; --server replaces the file's list. */
    char err[256];
    char *argv[] = {"run", "--port=3000", "--host", "127.0.0.1", "--log-level", "debug",
                    "--server", "http://x:1=9", "--server", "http://y:2", "--policy", "random",
                    "--workers", "3", NULL};
    assert_int_equal(rt_run_opts_parse(14, argv, &o, err, sizeof err), 0);
    c = build_ok(&o, env_all);
    assert_int_equal(c->listen.port, 3000);
    assert_string_equal(c->listen.host, "127.0.0.1");
    assert_string_equal(c->logging.level, "DEBUG");
    assert_string_equal(c->balancing.policy, "random");
    assert_int_equal(c->listen.workers, 3);
    assert_true(c->config.request_timeout == 60); /* no flag for it: env still wins */
    assert_int_equal(c->nservers, 2);
    assert_true(c->servers_from_cli);
    assert_string_equal(c->servers[0].url, "http://x:1");
    assert_int_equal(c->servers[0].max_concurrent_requests, 9);
    assert_string_equal(c->servers[1].url, "http://y:2");
    rt_config_free(c);

    /* --config beats CONFIG_PATH. */
    struct rt_run_opts o2 = {0};
    char other[300];
    snprintf(other, sizeof other, "%s", write_file("q.toml", "[listen]\nport = 4444\n"));
    o2.config_path = other;
    c = build_ok(&o2, env_none);
    assert_int_equal(c->listen.port, 4444);
    assert_int_equal(c->nservers, 0);

    /* Reload re-reads the file and keeps the overrides; a restart-only change is a warning. */
    write_file("q.toml", "[listen]\nport = 5555\n[config]\nmax_retries = 1\n");
    struct rt_diag d = {0};
    struct rt_config *c2 = NULL;
    assert_int_equal(rt_config_reload(c, &o, env_none, &c2, &d), 0);
    assert_int_equal(c2->listen.port, 3000); /* the flag still wins */
    rt_config_free(c2);
    rt_diag_free(&d);
    assert_int_equal(rt_config_reload(c, &o2, env_none, &c2, &d), 0);
    assert_int_equal(c2->listen.port, 5555);
    assert_int_equal(c2->config.max_retries, 1);
    assert_int_equal(d.nerrors, 0);
    assert_int_equal(d.len, 1);
    assert_non_null(strstr(d.items[0].msg, "listen.port changed from 4444 to 5555; it takes "
                                           "effect after a restart"));
    rt_config_free(c2);
    rt_diag_free(&d);
    /* A reload of a broken file fails and reports why. */
    write_file("q.toml", "[listen]\nport = -1\n");
    assert_int_equal(rt_config_reload(c, &o2, env_none, &c2, &d), -1);
    assert_null(c2);
    assert_int_equal(d.items[0].line, 2);
    rt_diag_free(&d);
    rt_config_free(c);
    rt_run_opts_free(&o);
}

static void bad_environment_and_flags(void **state)
{
    (void)state;
    char *env[] = {"PORT=http", "LOG_TO_CONSOLE=maybe", "REQUEST_TIMEOUT=-5", "LOG_LEVEL=loud",
                   "HEALTH_CHECK_INTERVAL=", /* empty = unset */ NULL};
    struct rt_run_opts o = {0};
    char err[256];
    char *argv[] = {"run", "--server", "http://a:1", "--port", "0", "--policy", "best",
                    "--server", "http://A:1/", "--server", "nope", "--workers", "x", NULL};
    assert_int_equal(rt_run_opts_parse(13, argv, &o, err, sizeof err), 0);
    char *all = build_errors(&o, env);
    static const char *const want[] = {
        "environment variable PORT must be an integer between 1 and 65535, got \"http\"\n",
        "environment variable LOG_TO_CONSOLE must be true or false, got \"maybe\"\n",
        "environment variable REQUEST_TIMEOUT must be between 0.1 and 86400, got -5\n",
        "environment variable LOG_LEVEL must be one of \"DEBUG\", \"INFO\", \"WARNING\", \"ERROR\", got \"loud\"\n",
        "--port must be between 1 and 65535, got 0\n",
        "--workers must be an integer between 0 and 256, got \"x\"\n",
        ("--policy must be one of \"load_score\", \"round_robin\", \"random\", \"least_inflight\", "
         "\"power_of_two\", \"consistent_hash\", got \"best\"\n"),
        "--server http://A:1/: the same server URL is given twice\n",
        "--server: url must start with http://, got \"nope\"\n",
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        if (strstr(all, want[i]) == NULL)
            fprintf(stderr, "wanted: %sgot:\n%s", want[i], all);
        assert_non_null(strstr(all, want[i]));
    }
    assert_null(strstr(all, "HEALTH_CHECK_INTERVAL"));
    rt_free(all);
    rt_run_opts_free(&o);
}

static void missing_files(void **state)
{
    (void)state;
    char cwd[512];
    assert_non_null(getcwd(cwd, sizeof cwd));
    char dir[300];
    snprintf(dir, sizeof dir, "%s/empty", tmpdir);
    assert_int_equal(mkdir(dir, 0700), 0);
    assert_int_equal(chdir(dir), 0);

    /* Default path absent: run starts with no servers. */
    struct rt_run_opts o = {0};
    char *env[] = {NULL};
    struct rt_config *c = build_ok(&o, env);
    assert_int_equal(c->nservers, 0);
    assert_false(c->file_loaded);
    assert_string_equal(c->path, "servers.toml");
    assert_string_equal(c->admin.state_file, "servers.toml.state.json");
    /* ... and a reload while it is still absent keeps working. */
    struct rt_diag d = {0};
    struct rt_config *c2 = NULL;
    assert_int_equal(rt_config_reload(c, &o, env, &c2, &d), 0);
    rt_config_free(c2);
    rt_config_free(c);

    /* Named file absent: an error naming it... */
    o.config_path = "named.toml";
    char *all = build_errors(&o, env);
    char want[200];
    snprintf(want, sizeof want, "named.toml: cannot open config file: %s\n", strerror(ENOENT));
    assert_string_equal(all, want);
    rt_free(all);
    char *env2[] = {"CONFIG_PATH=envnamed.toml", NULL};
    o.config_path = NULL;
    all = build_errors(&o, env2);
    assert_non_null(strstr(all, "envnamed.toml: cannot open config file"));
    rt_free(all);
    /* ... unless --server gives the servers. */
    char err[128];
    char *argv[] = {"run", "--config", "named.toml", "--server", "http://s:1", NULL};
    assert_int_equal(rt_run_opts_parse(5, argv, &o, err, sizeof err), 0);
    c = build_ok(&o, env);
    assert_int_equal(c->nservers, 1);
    rt_config_free(c);
    rt_run_opts_free(&o);
    /* 'check' requires the file even at the default path. */
    struct rt_run_opts oc = {.require_file = true};
    all = build_errors(&oc, env);
    assert_non_null(strstr(all, "servers.toml: cannot open config file"));
    rt_free(all);

    /* A file that existed and vanished fails a reload (the router keeps the old config). */
    FILE *f = fopen("servers.toml", "w");
    fputs("servers.servers = [\"http://a:1\"]\n", f);
    fclose(f);
    struct rt_run_opts o0 = {0};
    c = build_ok(&o0, env);
    assert_true(c->file_loaded);
    assert_int_equal(c->nservers, 1);
    unlink("servers.toml");
    assert_int_equal(rt_config_reload(c, &o0, env, &c2, &d), -1);
    assert_null(c2);
    rt_diag_free(&d);
    rt_config_free(c);
    assert_int_equal(chdir(cwd), 0);
}

static void set_text(void **state)
{
    (void)state;
    struct rt_config *c = rt_config_new_default();
    char err[256];
    assert_int_equal(rt_config_set_text(c, "queue.enabled", "OFF", err, sizeof err), 0);
    assert_false(c->queue.enabled);
    assert_int_equal(rt_config_set_text(c, "limits.max_body_bytes", "1048576", err, sizeof err), 0);
    assert_int_equal(c->limits.max_body_bytes, 1048576);
    assert_int_equal(rt_config_set_text(c, "timeouts.drain", "2.5", err, sizeof err), 0);
    assert_true(c->timeouts.drain == 2.5);
    assert_int_equal(rt_config_set_text(c, "timeouts.drain", "2.5s", err, sizeof err), -1);
    assert_string_equal(err, "timeouts.drain must be a duration in seconds (integer or float) "
                             "between 0 and 3600, got \"2.5s\"");
    assert_int_equal(rt_config_set_text(c, "listen.port", "99999999999999999999", err, sizeof err), -1);
    assert_int_equal(rt_config_set_text(c, "no.such", "1", err, sizeof err), -1);
    assert_string_equal(err, "unknown key 'no.such'");
    assert_int_equal(rt_config_set_text(c, "balancing.policy", "CONSISTENT_HASH", err, sizeof err), 0);
    assert_string_equal(c->balancing.policy, "consistent_hash");
    rt_config_free(c);
}

/* ---- the key table, the docs and the example ---- */

static void key_table_is_consistent(void **state)
{
    (void)state;
    for (size_t i = 0; i < rt_config_nkeys; i++) {
        const struct rt_config_key *k = &rt_config_keys[i];
        const char *dot = strchr(k->name, '.');
        assert_non_null(dot);
        assert_non_null(k->doc);
        assert_non_null(k->example);
        /* Every key's documented example is valid and accepted. */
        char text[300];
        snprintf(text, sizeof text, "%s = %s\n", k->name, k->example);
        struct rt_config *c = load_ok(text);
        rt_config_free(c);
        /* Defaults are within bounds. */
        if (k->type == RT_CONFIG_INT || k->type == RT_CONFIG_FLOAT || k->type == RT_CONFIG_DURATION)
            assert_true(k->def >= k->min && k->def <= k->max);
        assert_ptr_equal(rt_config_key_find(k->name), k);
        for (size_t j = 0; j < i; j++)
            assert_string_not_equal(rt_config_keys[j].name, k->name);
    }
    assert_null(rt_config_key_find("config.nope"));
}

static void docs_are_up_to_date(void **state)
{
    (void)state;
    char path[600];
    snprintf(path, sizeof path, "%s/docs/configuration.md", source_dir());
    size_t len = 0;
    char *have = read_all(path, &len);
    if (have == NULL) {
        fprintf(stderr, "%s: %s\n", path, strerror(errno));
        fail_msg("docs/configuration.md is missing; regenerate with: build/config-doc > "
                 "docs/configuration.md");
    }
    char *want = rt_config_doc_markdown();
    if (strcmp(have, want) != 0)
        fail_msg("docs/configuration.md differs from what src/config_keys.c describes; "
                 "regenerate with: build/config-doc > docs/configuration.md");
    /* Every key appears in the docs. */
    for (size_t i = 0; i < rt_config_nkeys; i++) {
        char needle[128];
        snprintf(needle, sizeof needle, "### `%s`", strchr(rt_config_keys[i].name, '.') + 1);
        assert_non_null(strstr(want, needle));
    }
    rt_free(want);
    rt_free(have);
}

static void example_file(void **state)
{
    (void)state;
    char path[600];
    snprintf(path, sizeof path, "%s/examples/servers.toml", source_dir());
    struct rt_diag d = {0};
    struct rt_config *c = NULL;
    int rc = rt_config_load_file(path, &c, &d);
    if (rc != 0)
        rt_diag_print(&d, stderr);
    assert_int_equal(rc, 0);
    assert_int_equal(c->nservers, 3);
    assert_string_equal(c->servers[0].url, "http://gpu-server-1:8081");
    assert_int_equal(c->servers[1].max_concurrent_requests, 5);
    assert_string_equal(c->balancing.policy, "load_score");
    assert_int_equal(c->listen.port, 8888);
    rt_config_free(c);
    rt_diag_free(&d);

    /* The example shows every key of every table. */
    size_t len = 0;
    char *text = read_all(path, &len);
    assert_non_null(text);
    struct rt_toml_value *root = NULL;
    struct rt_toml_error terr;
    assert_int_equal(rt_toml_parse(text, len, &root, &terr), 0);
    for (size_t i = 0; i < rt_config_nkeys; i++) {
        char tab[32];
        const char *name = rt_config_keys[i].name, *dot = strchr(name, '.');
        snprintf(tab, sizeof tab, "%.*s", (int)(dot - name), name);
        const struct rt_toml_value *t = rt_toml_get(root, tab);
        if (t == NULL || rt_toml_get(t, dot + 1) == NULL)
            fail_msg("examples/servers.toml lacks %s", name);
    }
    rt_toml_free(root);
    rt_free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(defaults),
        cmocka_unit_test(seed_format),
        cmocka_unit_test(array_of_tables_and_dotted_keys),
        cmocka_unit_test(url_normalisation),
        cmocka_unit_test(server_spec),
        cmocka_unit_test(value_messages),
        cmocka_unit_test(unknown_keys),
        cmocka_unit_test(duplicate_urls),
        cmocka_unit_test(every_problem_is_reported),
        cmocka_unit_test(syntax_errors),
        cmocka_unit_test(diag_format),
        cmocka_unit_test(files),
        cmocka_unit_test(run_opts_parse),
        cmocka_unit_test(precedence),
        cmocka_unit_test(bad_environment_and_flags),
        cmocka_unit_test(missing_files),
        cmocka_unit_test(set_text),
        cmocka_unit_test(key_table_is_consistent),
        cmocka_unit_test(docs_are_up_to_date),
        cmocka_unit_test(example_file),
    };
    return cmocka_run_group_tests(tests, setup_dir, teardown_dir);
}
