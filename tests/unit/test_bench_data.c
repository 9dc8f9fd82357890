/* Unit tests for bench_data.c: deterministic prompts, length ranges, shared prefixes, bodies,
 * Poisson gaps. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <math.h>
#include <string.h>

#include "bench_data.h"

static void init_ds(struct rt_bench_data *d, enum rt_bench_dataset kind, unsigned in, unsigned out,
                    double r, uint64_t seed)
{
    struct rt_bench_data_conf c = {.kind = kind, .input_len = in, .output_len = out,
                                   .range_ratio = r, .prefix_groups = 3, .prefix_len = 50,
                                   .seed = seed};
    char err[128];
    assert_int_equal(rt_bench_data_init(d, &c, err, sizeof err), 0);
}

static void prompt_text(const struct rt_bench_data *d, uint64_t i, struct rt_bench_prompt *p,
                        struct rt_buf *b)
{
    rt_buf_reset(b);
    rt_bench_data_prompt(d, i, p, b);
}

static void random_is_deterministic_and_sized(void **state)
{
    (void)state;
    struct rt_bench_data d1, d2, d3;
    init_ds(&d1, RT_BENCH_DS_RANDOM, 100, 20, 0, 7);
    init_ds(&d2, RT_BENCH_DS_RANDOM, 100, 20, 0, 7);
    init_ds(&d3, RT_BENCH_DS_RANDOM, 100, 20, 0, 8);
    struct rt_buf a = {0}, b = {0}, c = {0};
    struct rt_bench_prompt pa, pb, pc;
    prompt_text(&d1, 5, &pa, &a);
    prompt_text(&d2, 5, &pb, &b);
    prompt_text(&d3, 5, &pc, &c);
    assert_int_equal(pa.input_len, 100);
    assert_int_equal(pa.output_len, 20);
    assert_int_equal(rt_buf_size(&a), 400); /* 4 bytes per token */
    assert_memory_equal(rt_buf_data(&a), rt_buf_data(&b), 400);
    assert_true(memcmp(rt_buf_data(&a), rt_buf_data(&c), 400) != 0); /* other seed */
    /* Other indexes differ, and the text is [a-z ] only. */
    prompt_text(&d1, 6, &pb, &b);
    assert_true(memcmp(rt_buf_data(&a), rt_buf_data(&b), 400) != 0);
    for (size_t i = 0; i < 400; i++) {
        char ch = rt_buf_data(&a)[i];
        assert_true((i % 4 == 3) ? ch == ' ' : (ch >= 'a' && ch <= 'z'));
    }
    rt_buf_free(&a);
    rt_buf_free(&b);
    rt_buf_free(&c);
    rt_bench_data_free(&d1);
    rt_bench_data_free(&d2);
    rt_bench_data_free(&d3);
}

static void range_ratio_bounds(void **state)
{
    (void)state;
    struct rt_bench_data d;
    init_ds(&d, RT_BENCH_DS_RANDOM, 100, 50, 0.5, 1);
    unsigned min_in = 1000, max_in = 0, min_out = 1000, max_out = 0;
    double sum_in = 0;
    struct rt_buf b = {0};
    for (uint64_t i = 0; i < 2000; i++) {
        struct rt_bench_prompt p;
        prompt_text(&d, i, &p, &b);
        assert_int_equal(rt_buf_size(&b), (size_t)p.input_len * 4);
        assert_true(p.input_len >= 50 && p.input_len <= 150);
        assert_true(p.output_len >= 25 && p.output_len <= 75);
        min_in = p.input_len < min_in ? p.input_len : min_in;
        max_in = p.input_len > max_in ? p.input_len : max_in;
        min_out = p.output_len < min_out ? p.output_len : min_out;
        max_out = p.output_len > max_out ? p.output_len : max_out;
        sum_in += p.input_len;
    }
    /* Uniform: the whole range is used and the mean sits in the middle. */
    assert_true(min_in <= 52 && max_in >= 148);
    assert_true(min_out <= 27 && max_out >= 73);
    assert_true(fabs(sum_in / 2000 - 100) < 3);
    rt_buf_free(&b);
    rt_bench_data_free(&d);
}

static void bad_conf_refused(void **state)
{
    (void)state;
    struct rt_bench_data d;
    char err[128];
    struct rt_bench_data_conf c = {.kind = RT_BENCH_DS_RANDOM, .input_len = 10, .output_len = 10,
                                   .range_ratio = 1.0};
    assert_int_equal(rt_bench_data_init(&d, &c, err, sizeof err), -1);
    c.range_ratio = -0.1;
    assert_int_equal(rt_bench_data_init(&d, &c, err, sizeof err), -1);
    c.range_ratio = 0;
    c.output_len = 0;
    assert_int_equal(rt_bench_data_init(&d, &c, err, sizeof err), -1);
    c.output_len = 1;
    c.kind = RT_BENCH_DS_SHARED_PREFIX;
    c.prefix_groups = 0;
    c.prefix_len = 10;
    assert_int_equal(rt_bench_data_init(&d, &c, err, sizeof err), -1);
}

static void shared_prefix_groups(void **state)
{
    (void)state;
    struct rt_bench_data d;
    init_ds(&d, RT_BENCH_DS_SHARED_PREFIX, 10, 5, 0, 3); /* 3 groups of 50-token prefixes */
    struct rt_buf t[6] = {{0}};
    struct rt_bench_prompt p[6];
    for (int i = 0; i < 6; i++) {
        rt_bench_data_prompt(&d, (uint64_t)i, &p[i], &t[i]);
        assert_int_equal(p[i].input_len, 60);
        assert_int_equal(p[i].prefix_len, 50);
        assert_int_equal(p[i].group, i % 3);
        assert_int_equal(rt_buf_size(&t[i]), 240);
    }
    /* Same group: same first 200 bytes, different suffix; other groups: other prefix. */
    assert_memory_equal(rt_buf_data(&t[0]), rt_buf_data(&t[3]), 200);
    assert_true(memcmp(rt_buf_data(&t[0]) + 200, rt_buf_data(&t[3]) + 200, 40) != 0);
    assert_true(memcmp(rt_buf_data(&t[0]), rt_buf_data(&t[1]), 200) != 0);
    assert_true(memcmp(rt_buf_data(&t[1]), rt_buf_data(&t[2]), 200) != 0);
    for (int i = 0; i < 6; i++)
        rt_buf_free(&t[i]);
    rt_bench_data_free(&d);
}

static json_t *body_json(const struct rt_bench_data *d, const struct rt_bench_body_conf *bc,
                         uint64_t i)
{
    struct rt_buf b = {0};
    rt_bench_data_body(d, bc, i, &b);
    json_error_t je;
    json_t *j = json_loadb(rt_buf_data(&b), rt_buf_size(&b), 0, &je);
    rt_buf_free(&b);
    assert_non_null(j);
    return j;
}

static void bodies_are_valid_requests(void **state)
{
    (void)state;
    struct rt_bench_data d;
    init_ds(&d, RT_BENCH_DS_SHARED_PREFIX, 10, 7, 0, 3);
    struct rt_bench_body_conf bc = {.endpoint = RT_BENCH_EP_CHAT, .model = "org/m\"1\\",
                                    .stream = true, .ignore_eos = true};
    json_t *j = body_json(&d, &bc, 4);
    assert_string_equal(json_string_value(json_object_get(j, "model")), "org/m\"1\\");
    assert_int_equal(json_integer_value(json_object_get(j, "max_tokens")), 7);
    assert_true(json_is_true(json_object_get(j, "stream")));
    assert_true(json_is_true(json_object_get(j, "ignore_eos")));
    assert_true(json_is_true(
        json_object_get(json_object_get(j, "stream_options"), "include_usage")));
    json_t *msgs = json_object_get(j, "messages");
    assert_int_equal(json_array_size(msgs), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(msgs, 0), "role")),
                        "system");
    assert_int_equal(json_string_length(json_object_get(json_array_get(msgs, 0), "content")), 200);
    assert_int_equal(json_string_length(json_object_get(json_array_get(msgs, 1), "content")), 40);
    /* The system prompt is the group's prefix. */
    struct rt_buf t = {0};
    struct rt_bench_prompt p;
    rt_bench_data_prompt(&d, 4, &p, &t);
    assert_memory_equal(json_string_value(json_object_get(json_array_get(msgs, 0), "content")),
                        rt_buf_data(&t), 200);
    assert_memory_equal(json_string_value(json_object_get(json_array_get(msgs, 1), "content")),
                        rt_buf_data(&t) + 200, 40);
    json_decref(j);

    bc.endpoint = RT_BENCH_EP_COMPLETIONS;
    bc.stream = false;
    bc.ignore_eos = false;
    j = body_json(&d, &bc, 4);
    assert_int_equal(json_string_length(json_object_get(j, "prompt")), 240);
    assert_memory_equal(json_string_value(json_object_get(j, "prompt")), rt_buf_data(&t), 240);
    assert_true(json_is_false(json_object_get(j, "stream")));
    assert_null(json_object_get(j, "stream_options"));
    assert_null(json_object_get(j, "ignore_eos"));
    json_decref(j);
    rt_buf_free(&t);
    rt_bench_data_free(&d);
}

static void poisson_gaps(void **state)
{
    (void)state;
    uint64_t rng = 42, rng2 = 42;
    double sum = 0, sumsq = 0;
    const int n = 200000;
    for (int i = 0; i < n; i++) {
        double g = rt_bench_exp_gap(&rng, 100.0);
        assert_true(g >= 0 && isfinite(g));
        assert_true(g == rt_bench_exp_gap(&rng2, 100.0)); /* seeded: same sequence */
        sum += g;
        sumsq += g * g;
    }
    double mean = sum / n, var = sumsq / n - mean * mean;
    /* Exponential with rate 100: mean 0.01 and standard deviation 0.01. */
    assert_true(fabs(mean - 0.01) < 0.0003);
    assert_true(fabs(sqrt(var) - 0.01) < 0.0005);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(random_is_deterministic_and_sized),
        cmocka_unit_test(range_ratio_bounds),
        cmocka_unit_test(bad_conf_refused),
        cmocka_unit_test(shared_prefix_groups),
        cmocka_unit_test(bodies_are_valid_requests),
        cmocka_unit_test(poisson_gaps),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
