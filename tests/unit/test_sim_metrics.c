/* Unit tests for sim_metrics.c: vLLM V1/V0 names and labels, cumulative buckets, number format. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "sim_metrics.h"

static char *render(const struct rt_sim_engine *e, bool v0)
{
    struct rt_buf b = {0};
    struct rt_sim_metrics_opts o = {.v0 = v0, .start_time = 1700000000.5, .max_fds = 1024};
    rt_sim_metrics_render(&b, e, RT_STR_LIT("org/m"), &o);
    rt_buf_append(&b, "", 1, (size_t)-1);
    char *s = strdup(rt_buf_data(&b));
    rt_buf_free(&b);
    return s;
}

static void numbers(void **state)
{
    (void)state;
    struct rt_buf b = {0};
    rt_sim_metrics_num(&b, 0);
    rt_sim_metrics_num(&b, 26);
    rt_sim_metrics_num(&b, 0.25);
    rt_sim_metrics_num(&b, 1.0 / 0.0);
    rt_buf_append(&b, "", 1, (size_t)-1);
    assert_string_equal(rt_buf_data(&b), "0.026.00.25+Inf");
    rt_buf_free(&b);
}

static void v1_page(void **state)
{
    (void)state;
    struct rt_sim_engine e;
    struct rt_sim_engine_conf c = {.max_num_seqs = 1};
    rt_sim_engine_init(&e, &c, NULL, NULL);
    struct rt_sim_req r1 = {0}, r2 = {0};
    rt_sim_engine_submit(&e, &r1, RT_STR_LIT("12345678"), 0);
    rt_sim_engine_submit(&e, &r2, RT_STR_LIT("1234"), 0);
    rt_sim_engine_token(&e, &r1, 30000000); /* TTFT 30 ms */
    char *s = render(&e, false);
    assert_non_null(strstr(s, "# TYPE vllm:num_requests_running gauge\n"
                              "vllm:num_requests_running{engine=\"0\",model_name=\"org/m\"} 1.0\n"));
    assert_non_null(strstr(s, "vllm:num_requests_waiting{engine=\"0\",model_name=\"org/m\"} 1.0\n"));
    assert_non_null(strstr(s, "vllm:prompt_tokens_total{engine=\"0\",model_name=\"org/m\"} 2.0\n"));
    assert_non_null(strstr(s, "vllm:kv_cache_usage_perc{"));
    assert_non_null(strstr(s, "# TYPE vllm:prefix_cache_queries_total counter"));
    assert_non_null(strstr(s, "# TYPE vllm:prefix_cache_hits_total counter"));
    assert_non_null(strstr(s, "# TYPE vllm:num_preemptions_total counter"));
    assert_non_null(strstr(s, "# TYPE vllm:generation_tokens_total counter"));
    assert_non_null(strstr(s, "vllm:cache_config_info{block_size=\"16\""));
    assert_non_null(strstr(s, "process_max_fds 1024.0\n"));
    /* 30 ms falls in le=0.04, so le=0.02 has 0 and le=0.04 and above have 1 (cumulative). */
    assert_non_null(strstr(s, "vllm:time_to_first_token_seconds_bucket{engine=\"0\",le=\"0.02\",model_name=\"org/m\"} 0.0\n"));
    assert_non_null(strstr(s, "vllm:time_to_first_token_seconds_bucket{engine=\"0\",le=\"0.04\",model_name=\"org/m\"} 1.0\n"));
    assert_non_null(strstr(s, "vllm:time_to_first_token_seconds_bucket{engine=\"0\",le=\"2560.0\",model_name=\"org/m\"} 1.0\n"));
    assert_non_null(strstr(s, "vllm:time_to_first_token_seconds_bucket{engine=\"0\",le=\"+Inf\",model_name=\"org/m\"} 1.0\n"));
    assert_non_null(strstr(s, "vllm:time_to_first_token_seconds_count{engine=\"0\",model_name=\"org/m\"} 1.0\n"));
    assert_non_null(strstr(s, "# TYPE vllm:inter_token_latency_seconds histogram"));
    assert_non_null(strstr(s, "# TYPE vllm:e2e_request_latency_seconds histogram"));
    assert_null(strstr(s, "gpu_cache_usage_perc"));
    free(s);
    rt_sim_engine_finish(&e, &r1, RT_SIM_FINISH_ABORT, 40000000);
    rt_sim_engine_finish(&e, &r2, RT_SIM_FINISH_STOP, 50000000);
    s = render(&e, false);
    assert_non_null(strstr(s, "vllm:request_success_total{engine=\"0\",finished_reason=\"abort\",model_name=\"org/m\"} 1.0\n"));
    assert_non_null(strstr(s, "vllm:request_success_total{engine=\"0\",finished_reason=\"stop\",model_name=\"org/m\"} 1.0\n"));
    assert_non_null(strstr(s, "vllm:num_requests_running{engine=\"0\",model_name=\"org/m\"} 0.0\n"));
    free(s);
    rt_sim_engine_free(&e);
}

static void v0_page(void **state)
{
    (void)state;
    struct rt_sim_engine e;
    struct rt_sim_engine_conf c = {.max_num_seqs = 1};
    rt_sim_engine_init(&e, &c, NULL, NULL);
    char *s = render(&e, true);
    assert_non_null(strstr(s, "vllm:gpu_cache_usage_perc{model_name=\"org/m\"} 0.0\n"));
    assert_non_null(strstr(s, "vllm:num_requests_running{model_name=\"org/m\"} 0.0\n"));
    assert_non_null(strstr(s, "vllm:time_to_first_token_seconds_bucket{le=\"10.0\",model_name=\"org/m\"} 0.0\n"));
    assert_null(strstr(s, "le=\"2560.0\""));
    assert_null(strstr(s, "engine=\"0\""));
    assert_null(strstr(s, "kv_cache_usage_perc"));
    free(s);
    rt_sim_engine_free(&e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(numbers),
        cmocka_unit_test(v1_page),
        cmocka_unit_test(v0_page),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
