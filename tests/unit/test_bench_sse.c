/* Unit tests for bench_sse.c: SSE split at every byte, content/usage/error detection. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "bench_sse.h"

/* A vLLM-shaped chat stream: role chunk, 3 content chunks, finish, usage, [DONE]. */
static const char chat_stream[] =
    "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,"
    "\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"logprobs\":null,"
    "\"finish_reason\":null}]}\n\n"
    "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"}}]}\n\n"
    "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo \\\"text\\\": x\"}}]}\r\n\r\n"
    ": a comment line\n\n"
    "data:{\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"!\"}}]}\n\n"
    "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"length\"}]}\n\n"
    "data: {\"id\":\"c1\",\"choices\":[],\"usage\":{\"prompt_tokens\":34,\"total_tokens\":56,"
    "\"completion_tokens\":22,\"prompt_tokens_details\":null}}\n\n"
    "data: [DONE]\n\n";

static void whole_stream(void **state)
{
    (void)state;
    struct rt_bench_sse s;
    rt_bench_sse_init(&s);
    assert_int_equal(rt_bench_sse_feed(&s, chat_stream, strlen(chat_stream)), 3);
    assert_true(s.done);
    assert_false(s.error);
    assert_false(s.bad);
    assert_int_equal(s.content_events, 3);
    assert_int_equal(s.prompt_tokens, 34);
    assert_int_equal(s.completion_tokens, 22);
    rt_bench_sse_free(&s);
}

/* Every split point, and byte-at-a-time, gives the same result. */
static void split_anywhere(void **state)
{
    (void)state;
    size_t n = strlen(chat_stream);
    struct rt_bench_sse s;
    rt_bench_sse_init(&s);
    for (size_t cut = 0; cut <= n; cut++) {
        rt_bench_sse_reset(&s);
        int a = rt_bench_sse_feed(&s, chat_stream, cut);
        int b = rt_bench_sse_feed(&s, chat_stream + cut, n - cut);
        assert_true(a >= 0 && b >= 0);
        assert_int_equal(a + b, 3);
        assert_true(s.done);
        assert_int_equal(s.completion_tokens, 22);
    }
    rt_bench_sse_reset(&s);
    int total = 0;
    for (size_t i = 0; i < n; i++)
        total += rt_bench_sse_feed(&s, chat_stream + i, 1);
    assert_int_equal(total, 3);
    assert_true(s.done);
    assert_int_equal(s.prompt_tokens, 34);
    rt_bench_sse_free(&s);
}

static void completions_text_and_error_event(void **state)
{
    (void)state;
    static const char text[] =
        "data: {\"id\":\"cmpl-1\",\"object\":\"text_completion\",\"choices\":[{\"index\":0,"
        "\"text\":\" the\",\"logprobs\":null,\"finish_reason\":null}]}\n\n"
        "data: {\"id\":\"cmpl-1\",\"choices\":[{\"index\":0,\"text\":\"\",\"finish_reason\":"
        "\"length\"}]}\n\n"
        "data: {\"error\": {\"message\": \"boom\", \"type\": \"InternalServerError\", "
        "\"code\": 500}}\n\n"
        "data: [DONE]\n\n"
        "data: {\"late\":1}\n\n";
    struct rt_bench_sse s;
    rt_bench_sse_init(&s);
    assert_int_equal(rt_bench_sse_feed(&s, text, strlen(text)), 1);
    assert_true(s.error);
    assert_true(s.done);
    assert_true(s.after_done);
    assert_int_equal(s.completion_tokens, -1);
    rt_bench_sse_free(&s);
}

static void scan_json_fields(void **state)
{
    (void)state;
    struct rt_bench_scan sc;
    rt_bench_scan_json(RT_STR_LIT("{\"object\":\"error\",\"message\":\"x\",\"code\":400}"), &sc);
    assert_true(sc.error);
    /* "error" inside content or deeper is not an error event. */
    rt_bench_scan_json(RT_STR_LIT("{\"choices\":[{\"delta\":{\"content\":\"error\"}}]}"), &sc);
    assert_false(sc.error);
    assert_true(sc.content);
    rt_bench_scan_json(RT_STR_LIT("{\"choices\":[{\"delta\":{\"content\":\"\\\"error\\\":1\"}}]}"),
                       &sc);
    assert_false(sc.error);
    rt_bench_scan_json(RT_STR_LIT("{\"a\":{\"error\":1}}"), &sc);
    assert_false(sc.error);
    rt_bench_scan_json(RT_STR_LIT("{\"choices\":[{\"delta\":{\"content\":null}}]}"), &sc);
    assert_false(sc.content);
    rt_bench_scan_json(RT_STR_LIT("{\"choices\":[{\"delta\":{\"reasoning_content\":\"hm\"}}]}"),
                       &sc);
    assert_true(sc.content);
    /* A non-streamed body: usage with spaces. */
    rt_bench_scan_json(RT_STR_LIT("{\"choices\":[{\"message\":{\"content\":\"hi\"}}], \"usage\": "
                                  "{\"prompt_tokens\" : 12, \"completion_tokens\": 7}}"),
                       &sc);
    assert_int_equal(sc.prompt_tokens, 12);
    assert_int_equal(sc.completion_tokens, 7);
    /* Garbage and truncation never crash and find nothing. */
    const char *junk[] = {"", "{", "\"", "{\"content\":", "{\"content\":\"", "{\"prompt_tokens\":",
                          "{\"prompt_tokens\":99999999999999999999999}", "]]]}}}\"\\", "\\"};
    for (size_t i = 0; i < sizeof junk / sizeof junk[0]; i++) {
        rt_bench_scan_json(rt_str_cstr(junk[i]), &sc);
        assert_false(sc.error);
        assert_int_equal(sc.prompt_tokens, -1);
    }
}

static void line_cap(void **state)
{
    (void)state;
    struct rt_bench_sse s;
    rt_bench_sse_init(&s);
    static char big[RT_BENCH_SSE_MAX_LINE / 4];
    memset(big, 'x', sizeof big);
    int r = 0;
    for (int i = 0; i < 5 && r >= 0; i++)
        r = rt_bench_sse_feed(&s, big, sizeof big);
    assert_int_equal(r, -1);
    assert_true(s.bad);
    assert_int_equal(rt_bench_sse_feed(&s, "data: [DONE]\n", 13), -1);
    rt_bench_sse_free(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(whole_stream),
        cmocka_unit_test(split_anywhere),
        cmocka_unit_test(completions_text_and_error_event),
        cmocka_unit_test(scan_json_fields),
        cmocka_unit_test(line_cap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
