/* Unit tests for req_scan.c: JSON validation with field capture, multipart field lookup. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "req_scan.h"

static int scan(const char *s, struct rt_json_fields *f, const char **err)
{
    size_t off;
    /* Exactly sized copy: ASan catches reads past the end. */
    size_t n = strlen(s);
    char *p = malloc(n ? n : 1);
    memcpy(p, s, n);
    int r = rt_json_scan(p, n, f, err, &off);
    /* Field slices point into f, not into p, so freeing p is fine. */
    free(p);
    return r;
}

static void picks_fields(void **state)
{
    (void)state;
    struct rt_json_fields f;
    const char *err;
    assert_int_equal(scan("{\"messages\":[{\"model\":\"inner\"}],\"model\":\"llama\\/3\","
                          "\"stream\":true,\"user\":\"al\\u00e9\",\"stream_options\":"
                          "{\"include_usage\":true}}",
                          &f, &err),
                     0);
    assert_true(f.is_object);
    assert_true(f.has_model);
    assert_int_equal(f.model.len, 7);
    assert_memory_equal(f.model.ptr, "llama/3", 7);
    assert_true(f.stream);
    assert_true(f.include_usage);
    assert_int_equal(f.user.len, 4); /* "al" + U+00E9 in two bytes */
    assert_memory_equal(f.user.ptr, "al\xc3\xa9", 4);

    assert_int_equal(scan("{\"stream\":false}", &f, &err), 0);
    assert_false(f.has_model);
    assert_true(f.has_stream);
    assert_false(f.stream);

    assert_int_equal(scan(" [1, 2.5e-3, -0, \"x\", null, true] ", &f, &err), 0);
    assert_false(f.is_object);
}

static void refuses_malformed(void **state)
{
    (void)state;
    static const char *bad[] = {
        "",           "{",          "{\"a\":}",      "{\"a\" 1}",     "{\"a\":1,}",
        "[1,]",       "{'a':1}",    "{\"a\":01}",    "{\"a\":1.}",    "{\"a\":.5}",
        "{\"a\":tru}", "{\"a\":\"\\x\"}", "{\"a\":\"\\ud800\"}", "{\"a\":\"\x01\"}",
        "{\"a\":\"\xff\"}", "{\"a\":\"\xc0\xaf\"}", "{} {}", "{\"model\":5}",
        "{\"a\":-}",  "{\"a\":1e}", "nul",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct rt_json_fields f;
        const char *err = NULL;
        if (scan(bad[i], &f, &err) != -1)
            fail_msg("accepted: %s", bad[i]);
        assert_non_null(err);
    }
}

static void depth_and_long_model(void **state)
{
    (void)state;
    char deep[400];
    memset(deep, '[', 300);
    deep[300] = '\0';
    struct rt_json_fields f;
    const char *err;
    assert_int_equal(scan(deep, &f, &err), -1);
    assert_string_equal(err, "nesting too deep");
    char big[600] = "{\"model\":\"";
    memset(big + 10, 'm', 400);
    strcpy(big + 410, "\"}");
    assert_int_equal(scan(big, &f, &err), -1);
}

static void every_prefix_is_safe(void **state)
{
    (void)state;
    const char *doc = "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"h\\u00e9\"}],"
                      "\"stream\":true,\"t\":0.5}";
    size_t n = strlen(doc);
    for (size_t i = 0; i < n; i++) {
        char *p = malloc(i ? i : 1);
        memcpy(p, doc, i);
        struct rt_json_fields f;
        const char *err;
        size_t off;
        assert_int_equal(rt_json_scan(p, i, &f, &err, &off), -1);
        assert_true(off <= i);
        free(p);
    }
}

static void multipart(void **state)
{
    (void)state;
    const char body[] = "--b0\r\nContent-Disposition: form-data; name=\"file\"; filename=\"model\"\r\n"
                        "Content-Type: audio/wav\r\n\r\nRIFF....\r\n"
                        "--b0\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nwhisper-1\r\n"
                        "--b0--\r\n";
    struct rt_str v;
    assert_int_equal(rt_multipart_field(RT_STR_LIT("multipart/form-data; boundary=b0"),
                                        rt_str_make(body, sizeof body - 1), RT_STR_LIT("model"),
                                        &v),
                     0);
    assert_int_equal(v.len, 9);
    assert_memory_equal(v.ptr, "whisper-1", 9);
    /* Quoted boundary; field absent -> 1; no boundary -> -1 */
    assert_int_equal(rt_multipart_field(RT_STR_LIT("multipart/form-data; boundary=\"b0\""),
                                        rt_str_make(body, sizeof body - 1),
                                        RT_STR_LIT("language"), &v),
                     1);
    assert_int_equal(rt_multipart_field(RT_STR_LIT("multipart/form-data"),
                                        rt_str_make(body, sizeof body - 1), RT_STR_LIT("model"),
                                        &v),
                     -1);
    /* Truncated body */
    assert_int_equal(rt_multipart_field(RT_STR_LIT("multipart/form-data; boundary=b0"),
                                        rt_str_make(body, 100), RT_STR_LIT("model"), &v),
                     -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(picks_fields),
        cmocka_unit_test(refuses_malformed),
        cmocka_unit_test(depth_and_long_model),
        cmocka_unit_test(every_prefix_is_safe),
        cmocka_unit_test(multipart),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
