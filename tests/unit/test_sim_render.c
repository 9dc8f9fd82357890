/* Unit tests for sim_render.c and sim_fault.c: vLLM's SSE framing and bodies, parsed back with
 * jansson; escaping; embeddings; fault switches. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <jansson.h>
#include <string.h>

#include "sim_fault.h"
#include "sim_render.h"

/* Parses the single "data: <json>\n\n" event in <b>. */
static json_t *event(struct rt_buf *b)
{
    struct rt_str s = rt_buf_str(b);
    assert_true(s.len > 8);
    assert_memory_equal(s.ptr, "data: ", 6);
    assert_memory_equal(s.ptr + s.len - 2, "\n\n", 2);
    json_error_t err;
    json_t *j = json_loadb(s.ptr + 6, s.len - 8, 0, &err);
    assert_non_null(j);
    rt_buf_reset(b);
    return j;
}

static void chat_stream_framing(void **state)
{
    (void)state;
    struct rt_sim_resp r;
    struct rt_buf b = {0};
    rt_sim_resp_init(&r, RT_SIM_API_CHAT, 7, 1700000000, RT_STR_LIT("m\"x"));
    assert_memory_equal(r.id, "chatcmpl-", 9);
    assert_int_equal(strlen(r.id), 9 + 16);

    rt_sim_sse_role(&b, &r);
    json_t *j = event(&b);
    assert_string_equal(json_string_value(json_object_get(j, "object")), "chat.completion.chunk");
    assert_string_equal(json_string_value(json_object_get(j, "model")), "m\"x");
    assert_int_equal(json_integer_value(json_object_get(j, "created")), 1700000000);
    json_t *c0 = json_array_get(json_object_get(j, "choices"), 0);
    json_t *delta = json_object_get(c0, "delta");
    assert_string_equal(json_string_value(json_object_get(delta, "role")), "assistant");
    assert_string_equal(json_string_value(json_object_get(delta, "content")), "");
    assert_true(json_is_null(json_object_get(c0, "finish_reason")));
    json_decref(j);

    rt_sim_sse_token(&b, &r, RT_STR_LIT("a\nb"), NULL);
    j = event(&b);
    c0 = json_array_get(json_object_get(j, "choices"), 0);
    assert_string_equal(json_string_value(json_object_get(json_object_get(c0, "delta"), "content")),
                        "a\nb");
    json_decref(j);

    rt_sim_sse_finish(&b, &r, "length");
    j = event(&b);
    c0 = json_array_get(json_object_get(j, "choices"), 0);
    assert_int_equal(json_object_size(json_object_get(c0, "delta")), 0);
    assert_string_equal(json_string_value(json_object_get(c0, "finish_reason")), "length");
    json_decref(j);

    rt_sim_sse_usage(&b, &r, 10, 5);
    j = event(&b);
    assert_int_equal(json_array_size(json_object_get(j, "choices")), 0);
    json_t *u = json_object_get(j, "usage");
    assert_int_equal(json_integer_value(json_object_get(u, "prompt_tokens")), 10);
    assert_int_equal(json_integer_value(json_object_get(u, "completion_tokens")), 5);
    assert_int_equal(json_integer_value(json_object_get(u, "total_tokens")), 15);
    json_decref(j);

    rt_sim_sse_done(&b);
    assert_int_equal(rt_buf_size(&b), 14);
    assert_memory_equal(rt_buf_data(&b), "data: [DONE]\n\n", 14);
    rt_buf_free(&b);
}

static void text_stream_and_bodies(void **state)
{
    (void)state;
    struct rt_sim_resp r;
    struct rt_buf b = {0};
    rt_sim_resp_init(&r, RT_SIM_API_TEXT, 1, 5, RT_STR_LIT("m"));
    assert_memory_equal(r.id, "cmpl-", 5);
    rt_sim_sse_token(&b, &r, RT_STR_LIT(" the"), "stop");
    json_t *j = event(&b);
    assert_string_equal(json_string_value(json_object_get(j, "object")), "text_completion");
    json_t *c0 = json_array_get(json_object_get(j, "choices"), 0);
    assert_string_equal(json_string_value(json_object_get(c0, "text")), " the");
    assert_string_equal(json_string_value(json_object_get(c0, "finish_reason")), "stop");
    json_decref(j);

    rt_sim_render_completion(&b, &r, RT_STR_LIT(" a b"), "length", 3, 2);
    json_error_t err;
    j = json_loadb(rt_buf_data(&b), rt_buf_size(&b), 0, &err);
    assert_non_null(j);
    c0 = json_array_get(json_object_get(j, "choices"), 0);
    assert_string_equal(json_string_value(json_object_get(c0, "text")), " a b");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "usage"), "total_tokens")), 5);
    json_decref(j);
    rt_buf_reset(&b);

    rt_sim_resp_init(&r, RT_SIM_API_CHAT, 1, 5, RT_STR_LIT("m"));
    rt_sim_render_completion(&b, &r, RT_STR_LIT("hi \x01"), "stop", 3, 2);
    j = json_loadb(rt_buf_data(&b), rt_buf_size(&b), 0, &err);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "object")), "chat.completion");
    json_t *msg = json_object_get(json_array_get(json_object_get(j, "choices"), 0), "message");
    assert_string_equal(json_string_value(json_object_get(msg, "content")), "hi \x01");
    assert_string_equal(json_string_value(json_object_get(msg, "role")), "assistant");
    json_decref(j);
    rt_buf_reset(&b);

    rt_sim_render_error(&b, 404, "NotFoundError", RT_STR_LIT("The model `x` does not exist."), "model");
    j = json_loadb(rt_buf_data(&b), rt_buf_size(&b), 0, &err);
    json_t *e = json_object_get(j, "error");
    assert_string_equal(json_string_value(json_object_get(e, "type")), "NotFoundError");
    assert_string_equal(json_string_value(json_object_get(e, "param")), "model");
    assert_int_equal(json_integer_value(json_object_get(e, "code")), 404);
    json_decref(j);
    rt_buf_free(&b);
}

static void models_embeddings_tokenize(void **state)
{
    (void)state;
    struct rt_buf b = {0};
    const char *models[] = {"a", "b"};
    rt_sim_render_models(&b, models, 2, 99, 4096);
    json_error_t err;
    json_t *j = json_loadb(rt_buf_data(&b), rt_buf_size(&b), 0, &err);
    assert_non_null(j);
    json_t *d = json_object_get(j, "data");
    assert_int_equal(json_array_size(d), 2);
    json_t *m1 = json_array_get(d, 1);
    assert_string_equal(json_string_value(json_object_get(m1, "id")), "b");
    assert_string_equal(json_string_value(json_object_get(m1, "root")), "b");
    assert_string_equal(json_string_value(json_object_get(m1, "owned_by")), "vllm");
    assert_int_equal(json_integer_value(json_object_get(m1, "max_model_len")), 4096);
    assert_true(json_is_null(json_object_get(m1, "parent")));
    json_decref(j);
    rt_buf_reset(&b);

    struct rt_sim_resp r;
    rt_sim_resp_init(&r, RT_SIM_API_TEXT, 1, 5, RT_STR_LIT("e"));
    struct rt_str in[2] = {RT_STR_LIT("hello"), RT_STR_LIT("world")};
    rt_sim_render_embeddings(&b, &r, in, 2, 8, 0, false, 4);
    j = json_loadb(rt_buf_data(&b), rt_buf_size(&b), 0, &err);
    assert_non_null(j);
    d = json_object_get(j, "data");
    assert_int_equal(json_array_size(d), 2);
    json_t *v = json_object_get(json_array_get(d, 0), "embedding");
    assert_int_equal(json_array_size(v), 8);
    double norm = 0;
    for (size_t i = 0; i < 8; i++)
        norm += json_real_value(json_array_get(v, i)) * json_real_value(json_array_get(v, i));
    assert_true(norm > 0.999 && norm < 1.001);
    json_decref(j);
    rt_buf_reset(&b);
    rt_sim_render_embeddings(&b, &r, in, 1, 3, 0, true, 2);
    j = json_loadb(rt_buf_data(&b), rt_buf_size(&b), 0, &err);
    v = json_object_get(json_array_get(json_object_get(j, "data"), 0), "embedding");
    assert_int_equal(strlen(json_string_value(v)), 16); /* 12 bytes -> 16 base64 chars */
    json_decref(j);
    rt_buf_reset(&b);

    rt_sim_render_tokenize(&b, RT_STR_LIT("abcdefghi"), 100);
    j = json_loadb(rt_buf_data(&b), rt_buf_size(&b), 0, &err);
    assert_int_equal(json_integer_value(json_object_get(j, "count")), 3);
    assert_int_equal(json_array_size(json_object_get(j, "tokens")), 3);
    json_decref(j);
    rt_buf_free(&b);
}

static void vocabulary_pieces_are_one_token(void **state)
{
    (void)state;
    uint64_t st = 42;
    for (int i = 0; i < 200; i++)
        assert_int_equal(rt_sim_token_text(rt_sim_rand(&st)).len, 4);
    uint64_t a = 9, b = 9;
    assert_true(rt_sim_rand(&a) == rt_sim_rand(&b));
}

static void faults_apply(void **state)
{
    (void)state;
    struct rt_sim_faults f;
    char err[128];
    rt_sim_faults_init(&f);
    uint64_t rng = 1;
    assert_int_equal(rt_sim_faults_decide(&f, &rng), RT_SIM_FAULT_NONE);
    json_t *j = json_loads("{\"busy\":429,\"drop_after\":3,\"health_fail\":true}", 0, NULL);
    assert_int_equal(rt_sim_faults_apply(&f, j, err, sizeof err), 0);
    json_decref(j);
    assert_int_equal(f.busy, 429);
    assert_int_equal(f.drop_after, 3);
    assert_true(f.health_fail);
    assert_int_equal(rt_sim_faults_decide(&f, &rng), RT_SIM_FAULT_BUSY);
    /* A bad value changes nothing. */
    j = json_loads("{\"hang\":true,\"busy\":418}", 0, NULL);
    assert_int_equal(rt_sim_faults_apply(&f, j, err, sizeof err), -1);
    json_decref(j);
    assert_false(f.hang);
    j = json_loads("{\"nope\":1}", 0, NULL);
    assert_int_equal(rt_sim_faults_apply(&f, j, err, sizeof err), -1);
    assert_non_null(strstr(err, "nope"));
    json_decref(j);
    j = json_loads("{\"clear\":true,\"fail_rate\":0.5}", 0, NULL);
    assert_int_equal(rt_sim_faults_apply(&f, j, err, sizeof err), 0);
    json_decref(j);
    assert_int_equal(f.busy, 0);
    assert_int_equal(f.drop_after, -1);
    int fails = 0;
    for (int i = 0; i < 1000; i++)
        fails += rt_sim_faults_decide(&f, &rng) == RT_SIM_FAULT_500;
    assert_true(fails > 400 && fails < 600);
    struct rt_buf b = {0};
    rt_sim_faults_render(&b, &f);
    j = json_loadb(rt_buf_data(&b), rt_buf_size(&b), 0, NULL);
    assert_non_null(j);
    assert_true(json_real_value(json_object_get(j, "fail_rate")) == 0.5);
    json_decref(j);
    rt_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(chat_stream_framing),
        cmocka_unit_test(text_stream_and_bodies),
        cmocka_unit_test(models_embeddings_tokenize),
        cmocka_unit_test(vocabulary_pieces_are_one_token),
        cmocka_unit_test(faults_apply),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
