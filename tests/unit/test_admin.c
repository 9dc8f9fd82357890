/* Unit tests for admin.c: the overlay applied to configurations (add, remove, drain, file
 * precedence, pruning), the state file (round trip, atomic write, corrupt and unreadable
 * files, failed writes), the change hook, the server listing and the validation messages. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "admin.h"
#include "alloc.h"
#include "config.h"
#include "fleet.h"

#define A "http://127.0.0.1:8001"
#define B "http://127.0.0.1:8002"
#define C "http://127.0.0.1:8003"

static const char two_servers[] =
    "[servers]\n"
    "servers = [\n"
    "  { url = \"http://127.0.0.1:8001\", max_concurrent_requests = 3 },\n"
    "  { url = \"http://127.0.0.1:8002/\", max_concurrent_requests = 5 },\n"
    "]\n"
    "[admin]\n"
    "token = \"s3cret\"\n";

static struct rt_config *load(const char *text)
{
    struct rt_diag d = {0};
    struct rt_config *c = NULL;
    int rc = rt_config_load_string(text, strlen(text), "t.toml", &c, &d);
    if (rc != 0)
        rt_diag_print(&d, stderr);
    rt_diag_free(&d);
    assert_int_equal(rc, 0);
    return c;
}

/* A fresh load of <text> with the overlay applied, as the router does on every (re)load. */
static struct rt_config *load_applied(const char *text)
{
    struct rt_config *c = load(text);
    char err[256];
    assert_int_equal(rt_admin_apply(c, err, sizeof err), 0);
    return c;
}

static const struct rt_server_conf *find(const struct rt_config *c, const char *url)
{
    for (size_t i = 0; i < c->nservers; i++)
        if (strcmp(c->servers[i].url, url) == 0)
            return &c->servers[i];
    return NULL;
}

static int add_json(const char *json, char *err, size_t errlen)
{
    struct rt_server_conf s;
    int rc = rt_admin_server_parse(json, strlen(json), &s, err, errlen);
    if (rc != 0)
        return rc;
    rc = rt_admin_add(&s, err, errlen);
    rt_server_conf_clear(&s);
    return rc;
}

static char tmpdir[256];

static int setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "%s/rt-admin-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR")
                                                                             : "/tmp");
    assert_non_null(mkdtemp(tmpdir));
    rt_fleet_init();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    rt_admin_shutdown();
    rt_fleet_shutdown();
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    assert_int_equal(system(cmd), 0);
    return 0;
}

static char *path_in_tmp(const char *name)
{
    char *p = rt_malloc(strlen(tmpdir) + strlen(name) + 2);
    sprintf(p, "%s/%s", tmpdir, name);
    return p;
}

static char *read_all(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = rt_malloc(1 << 16);
    size_t n = fread(buf, 1, (1 << 16) - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static void write_all(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static size_t dir_entries(char names[][256], size_t max)
{
    DIR *d = opendir(tmpdir);
    assert_non_null(d);
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0 && n < max)
            snprintf(names[n++], 256, "%s", e->d_name);
    closedir(d);
    return n;
}

/* ---- the overlay ---- */

static void add_remove_drain(void **state)
{
    (void)state;
    char err[512];
    assert_int_equal(rt_admin_init(NULL, err, sizeof err), 0);
    struct rt_config *c = load_applied(two_servers);
    assert_int_equal(c->nservers, 2);

    assert_int_equal(add_json("{\"url\": \"http://127.0.0.1:8003/\", \"max_concurrent_requests\":"
                              " 7, \"models\": [\"m1\", \"m2\"], \"weight\": 2.5, \"api_key\": "
                              "\"sk-x\", \"name\": \"gpu3\"}",
                              err, sizeof err),
                     0);
    struct rt_config *r = rt_admin_rebuild(c);
    assert_int_equal(r->nservers, 3);
    const struct rt_server_conf *s = find(r, C);
    assert_non_null(s);
    assert_int_equal(s->max_concurrent_requests, 7);
    assert_int_equal(s->nmodels, 2);
    assert_string_equal(s->models[1], "m2");
    assert_true(s->weight == 2.5);
    assert_string_equal(s->api_key, "sk-x");
    assert_string_equal(s->name, "gpu3");
    assert_string_equal(r->admin.token, "s3cret"); /* the rest of the config is kept */
    rt_config_free(r);

    /* Duplicates, in either source and any spelling, are refused. */
    assert_int_equal(add_json("{\"url\": \"http://127.0.0.1:8003\"}", err, sizeof err),
                     RT_ADMIN_ECONFLICT);
    assert_non_null(strstr(err, "already configured"));
    assert_int_equal(add_json("{\"url\": \"HTTP://127.0.0.1:8001/\"}", err, sizeof err),
                     RT_ADMIN_ECONFLICT);

    /* Remove a file server and the admin-added one. */
    assert_int_equal(rt_admin_remove(B, err, sizeof err), 0);
    assert_int_equal(rt_admin_remove(B, err, sizeof err), RT_ADMIN_ENOTFOUND);
    assert_non_null(strstr(err, "no configured server"));
    assert_int_equal(rt_admin_remove("ftp://x", err, sizeof err), RT_ADMIN_EINVAL);
    r = rt_admin_rebuild(c);
    assert_int_equal(r->nservers, 2);
    assert_null(find(r, B));
    rt_config_free(r);

    /* Drain and undrain. */
    assert_false(rt_admin_is_drained(A));
    assert_int_equal(rt_admin_drain("http://127.0.0.1:8001/", true, err, sizeof err), 0);
    assert_true(rt_admin_is_drained(A));
    assert_int_equal(rt_admin_drain(A, true, err, sizeof err), 0); /* idempotent */
    assert_int_equal(rt_admin_drain(B, true, err, sizeof err), RT_ADMIN_ENOTFOUND);
    assert_int_equal(rt_admin_drain(C, true, err, sizeof err), 0);
    assert_int_equal(rt_admin_drain(C, false, err, sizeof err), 0);
    assert_false(rt_admin_is_drained(C));
    r = rt_admin_rebuild(c); /* drained servers stay configured */
    assert_non_null(find(r, A));
    rt_config_free(r);

    /* Removing an admin-added server leaves no trace in the overlay. */
    assert_int_equal(rt_admin_remove(C, err, sizeof err), 0);
    char *st = rt_admin_state_json();
    assert_null(strstr(st, "8003"));
    assert_non_null(strstr(st, B));
    rt_free(st);
    rt_config_free(c);

    /* A reload of the same file keeps the changes. */
    c = load_applied(two_servers);
    assert_int_equal(c->nservers, 1);
    assert_non_null(find(c, A));
    assert_true(rt_admin_is_drained(A));
    rt_config_free(c);
}

static void file_wins_and_pruning(void **state)
{
    (void)state;
    char err[512];
    assert_int_equal(rt_admin_init(NULL, err, sizeof err), 0);
    struct rt_config *c = load_applied(two_servers);
    rt_config_free(c);
    assert_int_equal(add_json("{\"url\": \"" C "\", \"max_concurrent_requests\": 2}", err,
                              sizeof err),
                     0);
    assert_int_equal(rt_admin_remove(B, err, sizeof err), 0);
    assert_int_equal(rt_admin_drain(C, true, err, sizeof err), 0);

    /* The file now lists C (capacity 9) and no longer lists B. */
    static const char edited[] =
        "[servers]\n"
        "servers = [\n"
        "  { url = \"http://127.0.0.1:8001\", max_concurrent_requests = 3 },\n"
        "  { url = \"http://127.0.0.1:8003\", max_concurrent_requests = 9 },\n"
        "]\n";
    c = load_applied(edited);
    assert_int_equal(c->nservers, 2);
    assert_int_equal(find(c, C)->max_concurrent_requests, 9); /* the file's entry */
    assert_true(rt_admin_is_drained(C));                      /* the drain stays */
    rt_config_free(c);
    char *st = rt_admin_state_json();
    assert_null(strstr(st, "\"url\""));  /* the added entry was dropped */
    assert_null(strstr(st, "8002"));     /* and the removal of a server the file dropped */
    rt_free(st);

    /* B back in the file: it is back in the configuration. */
    c = load_applied(two_servers);
    assert_non_null(find(c, B));
    assert_null(find(c, C));
    assert_false(rt_admin_is_drained(C)); /* C is gone: so is its drain */
    rt_config_free(c);

    /* Re-adding a removed file server undoes the removal; the file's entry is used. */
    assert_int_equal(rt_admin_remove(A, err, sizeof err), 0);
    assert_int_equal(add_json("{\"url\": \"" A "\", \"max_concurrent_requests\": 50}", err,
                              sizeof err),
                     0);
    c = load(two_servers);
    struct rt_config *r = rt_admin_rebuild(c);
    assert_int_equal(find(r, A)->max_concurrent_requests, 3);
    rt_config_free(r);
    rt_config_free(c);
    st = rt_admin_state_json();
    assert_null(strstr(st, "8001"));
    rt_free(st);
}

/* ---- the state file ---- */

static void persistence_round_trip(void **state)
{
    (void)state;
    char err[512];
    char *path = path_in_tmp("servers.toml.state.json");
    assert_int_equal(rt_admin_init(path, err, sizeof err), 0);
    rt_config_free(load_applied(two_servers));
    assert_int_equal(add_json("{\"url\": \"" C "\", \"max_concurrent_requests\": 6, \"models\": "
                              "[\"llama\"], \"weight\": 3, \"api_key\": \"sk-\\\"q\", \"name\": "
                              "\"n3\"}",
                              err, sizeof err),
                     0);
    assert_int_equal(rt_admin_remove(B, err, sizeof err), 0);
    assert_int_equal(rt_admin_drain(A, true, err, sizeof err), 0);
    char *before = rt_admin_state_json();

    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600); /* it may hold API keys */
    char *text = read_all(path);
    assert_non_null(strstr(text, "\"version\": 1"));
    assert_non_null(strstr(text, "\"api_key\": \"sk-\\\"q\""));
    rt_free(text);

    /* Only the state file itself: no temporary file left behind. */
    char names[8][256];
    assert_int_equal(dir_entries(names, 8), 1);
    assert_string_equal(names[0], "servers.toml.state.json");

    /* A restart: a fresh module state from the file alone. */
    rt_admin_shutdown();
    assert_int_equal(rt_admin_init(path, err, sizeof err), 0);
    char *after = rt_admin_state_json();
    assert_string_equal(before, after);
    struct rt_config *c = load_applied(two_servers);
    assert_int_equal(c->nservers, 2);
    assert_null(find(c, B));
    const struct rt_server_conf *s = find(c, C);
    assert_non_null(s);
    assert_int_equal(s->max_concurrent_requests, 6);
    assert_string_equal(s->api_key, "sk-\"q");
    assert_string_equal(s->models[0], "llama");
    assert_true(rt_admin_is_drained(A));
    rt_config_free(c);
    rt_free(before);
    rt_free(after);
    rt_free(path);
}

static void corrupt_state_file(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "{not json",
        "[]",
        "{\"version\": 2, \"added\": []}",
        "{\"version\": 1, \"added\": [{\"url\": \"gopher://x\"}]}",
        "{\"version\": 1, \"removed\": [\"http://a b\"]}",
        "{\"version\": 1, \"drained\": \"http://a\"}",
        "{\"version\": 1, \"extra\": 1}",
    };
    char err[512];
    char *path = path_in_tmp("s.json");
    char *aside = path_in_tmp("s.json.bad");
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        write_all(path, bad[i]);
        unlink(aside);
        assert_int_equal(rt_admin_init(path, err, sizeof err), 0);
        assert_int_equal(access(path, F_OK), -1); /* moved aside, */
        char *kept = read_all(aside);             /* intact */
        assert_non_null(kept);
        assert_string_equal(kept, bad[i]);
        rt_free(kept);
        char *st = rt_admin_state_json(); /* and the overlay starts empty */
        assert_non_null(strstr(st, "\"added\": []"));
        assert_non_null(strstr(st, "\"removed\": []"));
        rt_free(st);
        rt_admin_shutdown();
    }
    /* A state file that exists but cannot be read is not overwritten silently. */
    unlink(path);
    assert_int_equal(mkdir(path, 0700), 0);
    assert_int_equal(rt_admin_init(path, err, sizeof err), -1);
    assert_non_null(strstr(err, "cannot read"));
    rmdir(path);
    /* An absent one is an empty overlay. */
    assert_int_equal(rt_admin_init(path, err, sizeof err), 0);
    rt_free(path);
    rt_free(aside);
}

static void failed_write_changes_nothing(void **state)
{
    (void)state;
    char err[512];
    char *path = path_in_tmp("missing-dir/state.json");
    assert_int_equal(rt_admin_init(path, err, sizeof err), 0);
    rt_config_free(load_applied(two_servers));
    assert_int_equal(add_json("{\"url\": \"" C "\"}", err, sizeof err), RT_ADMIN_EIO);
    assert_non_null(strstr(err, "not made"));
    assert_int_equal(rt_admin_remove(A, err, sizeof err), RT_ADMIN_EIO);
    assert_int_equal(rt_admin_drain(A, true, err, sizeof err), RT_ADMIN_EIO);
    assert_false(rt_admin_is_drained(A));
    struct rt_config *c = load_applied(two_servers);
    assert_int_equal(c->nservers, 2);
    assert_null(find(c, C));
    rt_config_free(c);
    rt_free(path);
}

/* ---- hook, listing, validation ---- */

static int hook_calls;
static void on_change(void *arg)
{
    assert_ptr_equal(arg, &hook_calls);
    hook_calls++;
}

static void change_hook(void **state)
{
    (void)state;
    char err[512];
    assert_int_equal(rt_admin_init(NULL, err, sizeof err), 0);
    rt_config_free(load_applied(two_servers));
    hook_calls = 0;
    rt_admin_set_change_hook(on_change, &hook_calls);
    assert_int_equal(add_json("{\"url\": \"" C "\"}", err, sizeof err), 0);
    assert_int_equal(hook_calls, 1);
    assert_int_equal(add_json("{\"url\": \"" C "\"}", err, sizeof err), RT_ADMIN_ECONFLICT);
    assert_int_equal(rt_admin_remove("http://127.0.0.1:9", err, sizeof err), RT_ADMIN_ENOTFOUND);
    assert_int_equal(hook_calls, 1); /* failures change nothing and wake nobody */
    assert_int_equal(rt_admin_drain(A, true, err, sizeof err), 0);
    assert_int_equal(rt_admin_remove(C, err, sizeof err), 0);
    assert_int_equal(hook_calls, 3);
    assert_false(rt_admin_take_reload_request());
    rt_admin_set_change_hook(NULL, NULL);
    assert_int_equal(rt_admin_drain(A, false, err, sizeof err), 0);
    assert_int_equal(hook_calls, 3);
}

static void listing(void **state)
{
    (void)state;
    char err[512];
    assert_int_equal(rt_admin_init(NULL, err, sizeof err), 0);
    rt_config_free(load_applied(two_servers));
    assert_int_equal(add_json("{\"url\": \"" C "\", \"api_key\": \"sk-secret\"}", err, sizeof err),
                     0);
    assert_int_equal(rt_admin_drain(A, true, err, sizeof err), 0);
    assert_int_equal(rt_admin_remove(B, err, sizeof err), 0);
    char *j = rt_admin_servers_json();
    const char *a = strstr(j, "\"url\": \"" A "\"");
    const char *c = strstr(j, "\"url\": \"" C "\"");
    assert_non_null(a);
    assert_non_null(c);
    assert_true(a < c); /* file servers first */
    assert_non_null(strstr(a, "\"source\": \"file\""));
    assert_true(strstr(a, "\"drained\": true") < c);
    assert_non_null(strstr(c, "\"source\": \"admin\""));
    assert_non_null(strstr(c, "\"api_key_set\": true"));
    assert_null(strstr(j, "sk-secret")); /* never shown */
    assert_non_null(strstr(j, "\"removed\": [\n    \"" B "\""));
    assert_non_null(strstr(j, "\"in_fleet\": false"));
    rt_free(j);
}

static void expect_invalid(const char *json, const char *fragment)
{
    char err[512] = "";
    struct rt_server_conf s;
    int rc = rt_admin_server_parse(json, strlen(json), &s, err, sizeof err);
    if (rc != RT_ADMIN_EINVAL || !strstr(err, fragment))
        fail_msg("%s: got %d \"%s\", wanted a message with \"%s\"", json, rc, err, fragment);
    assert_null(s.url);
}

static void validation(void **state)
{
    (void)state;
    expect_invalid("{\"url\": ", "not valid JSON");
    expect_invalid("[\"http://a\"]", "must be a JSON object");
    expect_invalid("{}", "\"url\" is required");
    expect_invalid("{\"url\": 5}", "\"url\" is required");
    expect_invalid("{\"url\": \"ftp://a\"}", "unsupported scheme");
    expect_invalid("{\"url\": \"http://a:70000\"}", "port must be between 1 and 65535");
    expect_invalid("{\"url\": \"http://a/?x=1\"}", "must not contain '='");
    expect_invalid("{\"url\": \"http://a\", \"max_concurrent_requests\": 0}",
                   "max_concurrent_requests must be an integer between 1 and 1000000, got 0");
    expect_invalid("{\"url\": \"http://a\", \"max_concurrent_requests\": 2.5}", "got 2.5");
    expect_invalid("{\"url\": \"http://a\", \"weight\": 0}",
                   "weight must be a number greater than 0");
    expect_invalid("{\"url\": \"http://a\", \"weight\": \"2\"}", "got \"2\"");
    expect_invalid("{\"url\": \"http://a\", \"models\": \"m\"}", "models must be an array");
    expect_invalid("{\"url\": \"http://a\", \"models\": [\"m\", \"\"]}",
                   "models[1] must be a non-empty string");
    expect_invalid("{\"url\": \"http://a\", \"name\": \"\"}", "name must be a non-empty string");
    expect_invalid("{\"url\": \"http://a\", \"api_key\": \"a\\r\\nX: y\"}", "line breaks");
    expect_invalid("{\"url\": \"http://a\", \"max_concurent_requests\": 2}",
                   "did you mean \"max_concurrent_requests\"?");
    expect_invalid("{\"url\": \"http://a\", \"zzzzzzzzzzzz\": 2}", "the keys are url");
    expect_invalid("{\"url\": \"http://a\", \"url\": \"http://b\"}", "not valid JSON");

    /* Defaults are the config file's. */
    char err[256];
    struct rt_server_conf s;
    const char *ok = "{\"url\": \"http://Example.com:8000/v1/\"}";
    assert_int_equal(rt_admin_server_parse(ok, strlen(ok), &s, err, sizeof err), 0);
    assert_string_equal(s.url, "http://example.com:8000/v1");
    assert_string_equal(s.name, "example.com:8000");
    assert_int_equal(s.max_concurrent_requests, 4);
    assert_true(s.weight == 1.0);
    assert_null(s.api_key);
    assert_int_equal(s.nmodels, 0);
    rt_server_conf_clear(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(add_remove_drain, setup, teardown),
        cmocka_unit_test_setup_teardown(file_wins_and_pruning, setup, teardown),
        cmocka_unit_test_setup_teardown(persistence_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(corrupt_state_file, setup, teardown),
        cmocka_unit_test_setup_teardown(failed_write_changes_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(change_hook, setup, teardown),
        cmocka_unit_test_setup_teardown(listing, setup, teardown),
        cmocka_unit_test_setup_teardown(validation, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
