/* Unit tests for the TOML parser: values and types, positions, error messages, fixtures, and that
 * every prefix of a document parses or fails cleanly. */
#include <dirent.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "alloc.h"
#include "toml.h"

static struct rt_toml_value *parse_ok(const char *doc)
{
    struct rt_toml_value *root = NULL;
    struct rt_toml_error err;
    int rc = rt_toml_parse(doc, strlen(doc), &root, &err);
    if (rc != 0)
        fail_msg("parse failed at %u:%u: %s", err.pos.line, err.pos.col, err.msg);
    assert_non_null(root);
    assert_int_equal(root->type, RT_TOML_TABLE);
    return root;
}

static const struct rt_toml_value *path(const struct rt_toml_value *v, const char *a, const char *b)
{
    v = rt_toml_get(v, a);
    if (v && b)
        v = rt_toml_get(v, b);
    assert_non_null(v);
    return v;
}

static void values_and_types(void **state)
{
    (void)state;
    struct rt_toml_value *root = parse_ok("i = -42\n"
                                          "h = 0xff_ff\n"
                                          "o = 0o17\n"
                                          "b = 0b101\n"
                                          "min = -9223372036854775808\n"
                                          "f = 6.25e-1\n"
                                          "ninf = -inf\n"
                                          "nan = +nan\n"
                                          "t = true\n"
                                          "s = \"a\\tb\\u00e9\\u0000z\"\n"
                                          "lit = 'no\\escape'\n"
                                          "ml = \"\"\"\nx \\\n   y\"\"\"\n"
                                          "odt = 1979-05-27 07:32:00z\n"
                                          "ldt = 1979-05-27T07:32:00.5\n"
                                          "ld = 2000-02-29\n"
                                          "lt = 07:32:60\n"
                                          "arr = [1, 'two', [3.5]]\n"
                                          "it = { a.b = 1, c = [] }\n");
    assert_int_equal(path(root, "i", NULL)->u.i, -42);
    assert_int_equal(path(root, "h", NULL)->u.i, 0xffff);
    assert_int_equal(path(root, "o", NULL)->u.i, 017);
    assert_int_equal(path(root, "b", NULL)->u.i, 5);
    assert_true(path(root, "min", NULL)->u.i == INT64_MIN);
    assert_true(path(root, "f", NULL)->u.f == 0.625);
    assert_int_equal(path(root, "f", NULL)->type, RT_TOML_FLOAT);
    assert_true(isinf(path(root, "ninf", NULL)->u.f) && path(root, "ninf", NULL)->u.f < 0);
    assert_true(isnan(path(root, "nan", NULL)->u.f));
    assert_int_equal(path(root, "t", NULL)->type, RT_TOML_BOOL);
    assert_true(path(root, "t", NULL)->u.b);

    const struct rt_toml_value *s = path(root, "s", NULL);
    assert_int_equal(s->type, RT_TOML_STRING);
    assert_int_equal(s->u.str.len, 7); /* a, tab, b, two bytes of e-acute, NUL, z */
    assert_memory_equal(s->u.str.ptr, "a\tb\xc3\xa9\0z", 7);
    assert_string_equal(path(root, "lit", NULL)->u.str.ptr, "no\\escape");
    assert_string_equal(path(root, "ml", NULL)->u.str.ptr, "x y");

    const struct rt_toml_value *odt = path(root, "odt", NULL);
    assert_int_equal(odt->type, RT_TOML_DATETIME);
    assert_string_equal(odt->u.str.ptr, "1979-05-27T07:32:00Z");
    assert_int_equal(path(root, "ldt", NULL)->type, RT_TOML_DATETIME_LOCAL);
    assert_string_equal(path(root, "ldt", NULL)->u.str.ptr, "1979-05-27T07:32:00.5");
    assert_int_equal(path(root, "ld", NULL)->type, RT_TOML_DATE_LOCAL);
    assert_int_equal(path(root, "lt", NULL)->type, RT_TOML_TIME_LOCAL);

    const struct rt_toml_value *arr = path(root, "arr", NULL);
    assert_int_equal(arr->type, RT_TOML_ARRAY);
    assert_int_equal(arr->u.arr.len, 3);
    assert_int_equal(arr->u.arr.items[1]->type, RT_TOML_STRING);
    assert_int_equal(arr->u.arr.items[2]->type, RT_TOML_ARRAY);
    assert_true(arr->u.arr.items[2]->u.arr.items[0]->u.f == 3.5);

    const struct rt_toml_value *it = path(root, "it", NULL);
    assert_int_equal(path(it, "a", "b")->u.i, 1);
    assert_int_equal(path(it, "c", NULL)->u.arr.len, 0);
    /* Document order is kept. */
    assert_string_equal(root->u.tab.items[0].key, "i");
    assert_string_equal(root->u.tab.items[root->u.tab.len - 1].key, "it");

    assert_string_equal(rt_toml_type_name(RT_TOML_DATETIME_LOCAL), "datetime-local");
    assert_string_equal(rt_toml_type_name(RT_TOML_TABLE), "table");
    assert_null(rt_toml_get(root, "missing"));
    assert_null(rt_toml_get(path(root, "i", NULL), "i")); /* not a table */
    rt_toml_free(root);
}

static void tables_and_arrays_of_tables(void **state)
{
    (void)state;
    struct rt_toml_value *root = parse_ok("[a.b.c]\nx = 1\n[a]\ny = 2\n"
                                          "[[srv]]\nname = 'one'\n[srv.tls]\non = true\n"
                                          "[[srv]]\nname = 'two'\n"
                                          "[\"quoted key\" . 'lit']\nz = 3\n");
    assert_int_equal(path(path(root, "a", "b"), "c", "x")->u.i, 1);
    assert_int_equal(path(root, "a", "y")->u.i, 2);
    const struct rt_toml_value *srv = path(root, "srv", NULL);
    assert_int_equal(srv->type, RT_TOML_ARRAY);
    assert_int_equal(srv->u.arr.len, 2);
    assert_string_equal(path(srv->u.arr.items[0], "name", NULL)->u.str.ptr, "one");
    assert_true(path(srv->u.arr.items[0], "tls", "on")->u.b);
    assert_null(rt_toml_get(srv->u.arr.items[1], "tls"));
    assert_int_equal(path(path(root, "quoted key", "lit"), "z", NULL)->u.i, 3);
    rt_toml_free(root);
}

static void positions(void **state)
{
    (void)state;
    struct rt_toml_value *root = parse_ok("# comment\n"
                                          "port = 8000\n"
                                          "\n"
                                          "[server]\n"
                                          "  name   =  \"x\"\n"
                                          "list = [\n  1,\n    2 ]\n"
                                          "ml = '''\nline\n''' \n"
                                          "after = 1\n");
    const struct rt_toml_kv *kv = rt_toml_get_kv(root, "port");
    assert_non_null(kv);
    assert_int_equal(kv->key_pos.line, 2);
    assert_int_equal(kv->key_pos.col, 1);
    assert_int_equal(kv->val->pos.line, 2);
    assert_int_equal(kv->val->pos.col, 8);

    const struct rt_toml_value *server = rt_toml_get(root, "server");
    assert_int_equal(server->pos.line, 4);
    assert_int_equal(server->pos.col, 1);
    kv = rt_toml_get_kv(server, "name");
    assert_int_equal(kv->key_pos.line, 5);
    assert_int_equal(kv->key_pos.col, 3);
    assert_int_equal(kv->val->pos.line, 5);
    assert_int_equal(kv->val->pos.col, 13);

    const struct rt_toml_value *list = rt_toml_get(server, "list");
    assert_int_equal(list->pos.line, 6);
    assert_int_equal(list->pos.col, 8);
    assert_int_equal(list->u.arr.items[0]->pos.line, 7);
    assert_int_equal(list->u.arr.items[0]->pos.col, 3);
    assert_int_equal(list->u.arr.items[1]->pos.line, 8);
    assert_int_equal(list->u.arr.items[1]->pos.col, 5);

    /* Lines inside a multi-line string still count. */
    kv = rt_toml_get_kv(server, "after");
    assert_int_equal(kv->key_pos.line, 12);
    assert_int_equal(kv->val->pos.col, 9);
    rt_toml_free(root);
}

struct bad_case {
    const char *doc;
    uint32_t line, col;
    const char *msg;
};

static void error_messages(void **state)
{
    (void)state;
    static const struct bad_case cases[] = {
        {"port = 1\nport = 2\n", 2, 1, "duplicate key 'port'"},
        {"a = \"x\\qy\"\n", 1, 7, "invalid escape '\\q' in string"},
        {"\nport 80\n", 2, 6, "expected '=' after key, found '8'"},
        {"port\n", 1, 5, "expected '=' after key"},
        {"[t]\n[t]\n", 2, 2, "table 't' is defined more than once"},
        {"p = {x = 1}\n[p.q]\n", 2, 2, "cannot add to inline table 'p' after it is defined"},
        {"a = [1]\n[[a]]\n", 2, 3, "cannot append to array 'a': it was defined as a value"},
        {"n = 0123\n", 1, 5, "invalid number '0123': leading zeros are not allowed"},
        {"n = 1__0\n", 1, 5, "invalid number '1__0': underscores must sit between digits"},
        {"n = 0x8000000000000000\n", 1, 5, "integer '0x8000000000000000' does not fit in 64 bits"},
        {"d = 2021-04-31\n", 1, 5, "invalid date: 2021-04 has no day 31"},
        {"t = 24:00:00\n", 1, 5, "invalid time 24:00:00: out of range"},
        {"s = \"open\n", 1, 5, "string is not closed with '\"' on the same line"},
        {"a = [1, 2\n", 2, 1, "array is not closed with ']'"},
        {"x = {a = 1,}\n", 1, 12, "trailing comma is not allowed in an inline table"},
        {"x = yes\n", 1, 5,
         "invalid value 'yes' (strings need quotes; booleans are true and false)"},
        {"a = 1 b = 2\n", 1, 7, "expected a newline or end of document, found 'b'"},
        {"a.b = 1\na = 2\n", 2, 1, "duplicate key 'a'"},
        {"[a]\nb = 1\n[a.b]\n", 3, 4, "key 'b' is already an integer and cannot be a table"},
        {"# bad \x01 comment\n", 1, 7, "control character 0x01 is not allowed in a comment"},
        {"a = 1\r", 1, 6, "a carriage return must be followed by a newline"},
        {"a = '\xc3\x28'\n", 1, 6, "the document is not valid UTF-8 (bad continuation byte)"},
        {"a = \"\\uD800\"\n", 1, 6, "escape '\\uD800' is not a Unicode scalar value"},
        {"= 1\n", 1, 1, "expected a key, found '='"},
        {"a =\n", 1, 4, "expected a value, found a newline"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct rt_toml_value *root = (struct rt_toml_value *)&root;
        struct rt_toml_error err;
        int rc = rt_toml_parse(cases[i].doc, strlen(cases[i].doc), &root, &err);
        if (rc != -1 || root != NULL)
            fail_msg("case %zu was accepted: %s", i, cases[i].doc);
        if (strcmp(err.msg, cases[i].msg) != 0 || err.pos.line != cases[i].line ||
            err.pos.col != cases[i].col)
            fail_msg("case %zu: got %u:%u: %s; want %u:%u: %s", i, err.pos.line, err.pos.col,
                     err.msg, cases[i].line, cases[i].col, cases[i].msg);
    }
}

static char *read_file(const char *name, size_t *len)
{
    FILE *f = fopen(name, "rb");
    if (!f)
        return NULL;
    char *data = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (n == cap) {
            cap = cap ? cap * 2 : 4096;
            data = rt_realloc(data, cap);
        }
        size_t got = fread(data + n, 1, cap - n, f);
        if (got == 0)
            break;
        n += got;
    }
    fclose(f);
    *len = n;
    return data;
}

static const char *fixture_dir(void)
{
    static char dir[4096];
    const char *src = getenv("RT_SOURCE_DIR");
    snprintf(dir, sizeof(dir), "%s/tests/data/toml", src ? src : "..");
    return dir;
}

/* Valid fixtures parse; each invalid fixture's first line says the expected error. */
static void fixtures(void **state)
{
    (void)state;
    const char *kinds[] = {"valid", "invalid"};
    size_t seen = 0;
    for (int k = 0; k < 2; k++) {
        char dirname[4200];
        snprintf(dirname, sizeof(dirname), "%s/%s", fixture_dir(), kinds[k]);
        DIR *d = opendir(dirname);
        if (!d) {
            skip();
            return;
        }
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            size_t nl = strlen(e->d_name);
            if (nl < 5 || strcmp(e->d_name + nl - 5, ".toml") != 0)
                continue;
            char name[4500];
            snprintf(name, sizeof(name), "%s/%s", dirname, e->d_name);
            size_t len = 0;
            char *text = read_file(name, &len);
            assert_non_null(text);
            struct rt_toml_value *root = NULL;
            struct rt_toml_error err;
            int rc = rt_toml_parse(text, len, &root, &err);
            if (k == 0) {
                if (rc != 0)
                    fail_msg("%s: %u:%u: %s", name, err.pos.line, err.pos.col, err.msg);
                rt_toml_free(root);
            } else {
                if (rc == 0)
                    fail_msg("%s was accepted", name);
                char got[400], want[400];
                snprintf(got, sizeof(got), "# error: %u:%u: %s", err.pos.line, err.pos.col,
                         err.msg);
                const char *eol = memchr(text, '\n', len);
                snprintf(want, sizeof(want), "%.*s", eol ? (int)(eol - text) : 0, text);
                if (strcmp(got, want) != 0)
                    fail_msg("%s: got '%s', want '%s'", name, got, want);
            }
            rt_free(text);
            seen++;
        }
        closedir(d);
    }
    assert_true(seen >= 10);
}

/* The router fixture reads back as the values in it. */
static void router_fixture(void **state)
{
    (void)state;
    char name[4200];
    snprintf(name, sizeof(name), "%s/valid/router.toml", fixture_dir());
    size_t len = 0;
    char *text = read_file(name, &len);
    if (!text) {
        skip();
        return;
    }
    struct rt_toml_value *root = NULL;
    struct rt_toml_error err;
    assert_int_equal(rt_toml_parse(text, len, &root, &err), 0);
    assert_int_equal(path(root, "server", "timeout_ms")->u.i, 30000);
    assert_true(path(path(root, "policy", "weights"), "gpu", NULL)->u.f == 0.75);
    const struct rt_toml_value *be = path(root, "backend", NULL);
    assert_int_equal(be->u.arr.len, 2);
    assert_string_equal(path(be->u.arr.items[1], "url", NULL)->u.str.ptr, "http://127.0.0.1:9002");
    assert_int_equal(path(be->u.arr.items[1], "models", NULL)->u.arr.len, 1);
    assert_false(path(be->u.arr.items[1], "healthy", NULL)->u.b);
    assert_int_equal(be->u.arr.items[1]->pos.line, 16);
    rt_toml_free(root);
    rt_free(text);
}

/* Every prefix either parses or fails with a positioned message; each prefix sits in its own
 * exactly-sized allocation so a read past the end is caught by the address sanitizer. */
static void check_prefixes(const char *doc)
{
    size_t len = strlen(doc);
    for (size_t n = 0; n <= len; n++) {
        char *copy = rt_malloc(n ? n : 1);
        memcpy(copy, doc, n);
        struct rt_toml_value *root = NULL;
        struct rt_toml_error err;
        int rc = rt_toml_parse(copy, n, &root, &err);
        if (rc == 0) {
            assert_non_null(root);
            rt_toml_free(root);
        } else {
            assert_int_equal(rc, -1);
            assert_null(root);
            assert_true(err.msg[0] != '\0');
            assert_true(err.pos.line >= 1 && err.pos.col >= 1);
        }
        rt_free(copy);
    }
}

static void prefixes_fail_cleanly(void **state)
{
    (void)state;
    check_prefixes(
        "# config\n[server]\nlisten = \"127.0.0.1:8000\"\nworkers = 0x10\n"
        "ratio = -1.5e+3\n[[backend]]\nurl = 'http://x'\ntags = [\"a\", [1, 2.0], {k = 1}]\n"
        "when = 1979-05-27T07:32:00.123-08:00\n");
    check_prefixes("s = \"\"\"\nmulti \\\n  line \\u00e9 \\U0001F600 \"\" \"\"\"\n"
                   "l = '''\nraw '' '''\nd = 2000-01-01 12:00:00Z\nt = 23:59:59.999\n"
                   "\"quoted\".bare.'lit' = { a.b = [ ], c = false }\r\n");
    check_prefixes("a.b.c = 1\n[x.y]\nz = +inf\nw = nan\nn = -0\nb = 0b1_0\no = 0o7_7\n");
}

/* Big tables (hash-indexed past a few keys) still find every key and catch duplicates. */
static void many_keys(void **state)
{
    (void)state;
    char *doc = rt_malloc(64 * 1001);
    size_t n = 0;
    for (int i = 0; i < 1000; i++)
        n += (size_t)snprintf(doc + n, 64, "k%d = %d\n", i, i);
    struct rt_toml_value *root = NULL;
    struct rt_toml_error err;
    assert_int_equal(rt_toml_parse(doc, n, &root, &err), 0);
    assert_int_equal(root->u.tab.len, 1000);
    for (int i = 0; i < 1000; i += 37) {
        char key[16];
        snprintf(key, sizeof(key), "k%d", i);
        assert_int_equal(path(root, key, NULL)->u.i, i);
    }
    assert_null(rt_toml_get(root, "k1000"));
    rt_toml_free(root);
    n += (size_t)snprintf(doc + n, 64, "k500 = 1\n");
    assert_int_equal(rt_toml_parse(doc, n, &root, &err), -1);
    assert_string_equal(err.msg, "duplicate key 'k500'");
    assert_int_equal(err.pos.line, 1001);
    rt_free(doc);
}

/* Deep nesting is refused with a message instead of exhausting the stack. */
static void deep_nesting(void **state)
{
    (void)state;
    size_t depth = 100000;
    char *doc = rt_malloc(depth + 5);
    memcpy(doc, "a = ", 4);
    memset(doc + 4, '[', depth);
    struct rt_toml_value *root = NULL;
    struct rt_toml_error err;
    assert_int_equal(rt_toml_parse(doc, depth + 4, &root, &err), -1);
    assert_non_null(strstr(err.msg, "levels deep"));
    memset(doc + 4, '{', depth);
    assert_int_equal(rt_toml_parse(doc, depth + 4, &root, &err), -1);
    rt_free(doc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(values_and_types),
        cmocka_unit_test(tables_and_arrays_of_tables),
        cmocka_unit_test(positions),
        cmocka_unit_test(error_messages),
        cmocka_unit_test(fixtures),
        cmocka_unit_test(router_fixture),
        cmocka_unit_test(prefixes_fail_cleanly),
        cmocka_unit_test(many_keys),
        cmocka_unit_test(deep_nesting),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
