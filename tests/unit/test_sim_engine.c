/* Unit tests for sim_engine.c: slots and queue, TTFT model, ITL batch factor, KV and prefix
 * cache, aborts, counters. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "sim_engine.h"

#define MS 1000000ull

struct admits {
    struct rt_sim_req *list[16];
    int n;
};

static void on_admit(struct rt_sim_req *r, uint64_t now_ns, void *ctx)
{
    (void)now_ns;
    struct admits *a = ctx;
    a->list[a->n++] = r;
}

static void token_rule(void **state)
{
    (void)state;
    assert_int_equal(rt_sim_tokens(RT_STR_LIT("")), 0);
    assert_int_equal(rt_sim_tokens(RT_STR_LIT("a")), 1);
    assert_int_equal(rt_sim_tokens(RT_STR_LIT("abcd")), 1);
    assert_int_equal(rt_sim_tokens(RT_STR_LIT("abcde")), 2);
    assert_int_equal(rt_sim_tokens(RT_STR_LIT("0123456789abcdef")), 4);
}

static void slots_queue_and_bound(void **state)
{
    (void)state;
    struct admits a = {0};
    struct rt_sim_engine e;
    struct rt_sim_engine_conf c = {.max_num_seqs = 2, .max_waiting = 3};
    rt_sim_engine_init(&e, &c, on_admit, &a);
    struct rt_sim_req r[6];
    memset(r, 0, sizeof r);
    int expect[6] = {RT_SIM_RUNNING, RT_SIM_RUNNING, RT_SIM_QUEUED, RT_SIM_QUEUED, RT_SIM_QUEUED,
                     RT_SIM_EFULL};
    for (int i = 0; i < 6; i++)
        assert_int_equal(rt_sim_engine_submit(&e, &r[i], RT_STR_LIT("hello"), 0), expect[i]);
    assert_int_equal(e.running, 2);
    assert_int_equal(e.waiting, 3);
    assert_int_equal(e.stats.rejected, 1);
    /* Finishing one running request admits the head of the queue (FIFO). */
    rt_sim_engine_finish(&e, &r[0], RT_SIM_FINISH_STOP, 10 * MS);
    assert_int_equal(a.n, 1);
    assert_ptr_equal(a.list[0], &r[2]);
    assert_int_equal(r[2].admit_ns, 10 * MS);
    assert_int_equal(e.running, 2);
    assert_int_equal(e.waiting, 2);
    /* Aborting a waiting request removes it from the queue and counts an abort. */
    rt_sim_engine_finish(&e, &r[4], RT_SIM_FINISH_ABORT, 11 * MS);
    rt_sim_engine_finish(&e, &r[4], RT_SIM_FINISH_ABORT, 11 * MS); /* idempotent */
    assert_int_equal(e.waiting, 1);
    assert_int_equal(e.stats.finished[RT_SIM_FINISH_ABORT], 1);
    rt_sim_engine_finish(&e, &r[1], RT_SIM_FINISH_ABORT, 12 * MS);
    assert_ptr_equal(a.list[1], &r[3]);
    rt_sim_engine_finish(&e, &r[2], RT_SIM_FINISH_LENGTH, 13 * MS);
    rt_sim_engine_finish(&e, &r[3], RT_SIM_FINISH_STOP, 14 * MS);
    assert_int_equal(e.running, 0);
    assert_int_equal(e.waiting, 0);
    assert_int_equal(e.stats.finished[RT_SIM_FINISH_STOP], 2);
    assert_int_equal(e.stats.finished[RT_SIM_FINISH_LENGTH], 1);
    assert_int_equal(e.stats.finished[RT_SIM_FINISH_ABORT], 2);
    assert_int_equal(e.kv_used, 0);
    rt_sim_engine_free(&e);
}

static void ttft_and_itl(void **state)
{
    (void)state;
    struct rt_sim_engine e;
    struct rt_sim_engine_conf c = {.max_num_seqs = 4,
                                   .ttft_base_ns = 20 * MS,
                                   .prefill_ns_per_token = 1000,
                                   .itl_ns = 10 * MS,
                                   .itl_batch_factor = 0.5};
    rt_sim_engine_init(&e, &c, NULL, NULL);
    char prompt[400];
    memset(prompt, 'x', sizeof prompt);
    struct rt_sim_req r[3];
    memset(r, 0, sizeof r);
    assert_int_equal(rt_sim_engine_submit(&e, &r[0], rt_str_make(prompt, 400), 0), RT_SIM_RUNNING);
    assert_int_equal(r[0].prompt_tokens, 100);
    assert_int_equal(r[0].prefill_ns, 20 * MS + 100 * 1000);
    assert_int_equal(rt_sim_engine_itl_ns(&e), 10 * MS);
    rt_sim_engine_submit(&e, &r[1], RT_STR_LIT("y"), 0);
    rt_sim_engine_submit(&e, &r[2], RT_STR_LIT("z"), 0);
    /* Three running: ITL = 10 ms * (1 + 0.5 * 2). */
    assert_int_equal(rt_sim_engine_itl_ns(&e), 20 * MS);
    rt_sim_engine_token(&e, &r[0], 30 * MS);
    rt_sim_engine_token(&e, &r[0], 50 * MS);
    assert_int_equal(e.stats.ttft.count, 1);
    assert_true(e.stats.ttft.sum > 0.0299 && e.stats.ttft.sum < 0.0301);
    assert_int_equal(e.stats.itl.count, 1);
    assert_int_equal(e.stats.generation_tokens, 2);
    assert_int_equal(e.kv_used, 100 + 1 + 1 + 2);
    assert_true(rt_sim_engine_kv_usage(&e) > 0);
    for (int i = 0; i < 3; i++)
        rt_sim_engine_finish(&e, &r[i], RT_SIM_FINISH_STOP, 60 * MS);
    assert_int_equal(e.stats.e2e.count, 3);
    assert_int_equal(e.stats.tpot.count, 1);
    rt_sim_engine_free(&e);
}

static void prefix_cache_hits(void **state)
{
    (void)state;
    struct rt_sim_engine e;
    struct rt_sim_engine_conf c = {.max_num_seqs = 4, .block_tokens = 4, .prefill_ns_per_token = 1000};
    rt_sim_engine_init(&e, &c, NULL, NULL);
    char a[160], b[160];
    memset(a, 'a', sizeof a); /* 40 tokens = 10 blocks */
    memcpy(b, a, sizeof b);
    memset(b + 80, 'b', 80);  /* shares the first 5 blocks */
    struct rt_sim_req r = {0}, r2 = {0}, r3 = {0};
    rt_sim_engine_submit(&e, &r, rt_str_make(a, 160), 0);
    assert_int_equal(r.cached_tokens, 0);
    rt_sim_engine_finish(&e, &r, RT_SIM_FINISH_STOP, 1);
    rt_sim_engine_submit(&e, &r2, rt_str_make(b, 160), 2);
    assert_int_equal(r2.cached_tokens, 20);
    assert_int_equal(r2.prefill_ns, 20 * 1000);
    rt_sim_engine_finish(&e, &r2, RT_SIM_FINISH_STOP, 3);
    /* Entirely cached: the last token is still computed. */
    rt_sim_engine_submit(&e, &r3, rt_str_make(a, 160), 4);
    assert_int_equal(r3.cached_tokens, 39);
    rt_sim_engine_finish(&e, &r3, RT_SIM_FINISH_STOP, 5);
    assert_int_equal(e.stats.prefix_queries, 120);
    assert_int_equal(e.stats.prefix_hits, 59);
    rt_sim_engine_free(&e);
}

static void prefix_cache_lru_evicts(void **state)
{
    (void)state;
    struct rt_sim_engine e;
    /* Room for 4 blocks of 1 token (4 bytes). */
    struct rt_sim_engine_conf c = {.max_num_seqs = 1, .block_tokens = 1, .kv_cache_tokens = 4};
    rt_sim_engine_init(&e, &c, NULL, NULL);
    size_t cap;
    struct rt_sim_req r = {0};
    rt_sim_engine_submit(&e, &r, RT_STR_LIT("aaaabbbbccccdddd"), 0);
    rt_sim_engine_finish(&e, &r, RT_SIM_FINISH_STOP, 1);
    assert_int_equal(rt_sim_engine_prefix_blocks(&e, &cap), 4);
    assert_int_equal(cap, 4);
    /* A different prompt of 4 blocks evicts the first one's blocks. */
    rt_sim_engine_submit(&e, &r, RT_STR_LIT("eeeeffffgggghhhh"), 2);
    rt_sim_engine_finish(&e, &r, RT_SIM_FINISH_STOP, 3);
    assert_int_equal(rt_sim_engine_prefix_blocks(&e, NULL), 4);
    rt_sim_engine_submit(&e, &r, RT_STR_LIT("aaaabbbbccccdddd"), 4);
    assert_int_equal(r.cached_tokens, 0);
    rt_sim_engine_finish(&e, &r, RT_SIM_FINISH_STOP, 5);
    rt_sim_engine_submit(&e, &r, RT_STR_LIT("aaaabbbbcccc"), 6);
    assert_int_equal(r.cached_tokens, 2);
    rt_sim_engine_finish(&e, &r, RT_SIM_FINISH_STOP, 7);
    rt_sim_engine_free(&e);
}

static void kv_cache_gates_admission(void **state)
{
    (void)state;
    struct admits a = {0};
    struct rt_sim_engine e;
    struct rt_sim_engine_conf c = {.max_num_seqs = 8, .kv_cache_tokens = 100};
    rt_sim_engine_init(&e, &c, on_admit, &a);
    char p[240];
    memset(p, 'k', sizeof p); /* 60 tokens */
    struct rt_sim_req r1 = {0}, r2 = {0};
    assert_int_equal(rt_sim_engine_submit(&e, &r1, rt_str_make(p, 240), 0), RT_SIM_RUNNING);
    assert_int_equal(rt_sim_engine_submit(&e, &r2, rt_str_make(p, 240), 0), RT_SIM_QUEUED);
    assert_true(rt_sim_engine_kv_usage(&e) > 0.59 && rt_sim_engine_kv_usage(&e) < 0.61);
    rt_sim_engine_finish(&e, &r1, RT_SIM_FINISH_STOP, 1);
    assert_int_equal(a.n, 1);
    rt_sim_engine_finish(&e, &r2, RT_SIM_FINISH_STOP, 2);
    assert_true(rt_sim_engine_kv_usage(&e) == 0.0);
    rt_sim_engine_free(&e);
}

static void token_buckets_follow_context(void **state)
{
    (void)state;
    struct rt_sim_engine e;
    struct rt_sim_engine_conf c = {.max_model_len = 2048};
    rt_sim_engine_init(&e, &c, NULL, NULL);
    /* 1 2 5 10 20 50 100 200 500 1000 2000 */
    assert_int_equal(e.stats.req_prompt.n, 11);
    assert_true(e.stats.req_prompt.le[10] == 2000.0);
    rt_sim_engine_free(&e);
}

/* Token pacing: one token per tick, never ahead of TTFT + k x ITL, no bursts after a late tick. */
static void token_pacing(void **state)
{
    (void)state;
    const uint64_t ms = 1000000, itl = 20 * ms;
    /* On time: the schedule is one ITL per token. */
    assert_int_equal(rt_sim_next_token_due(100 * ms, 100 * ms, itl), 120 * ms);
    /* Late by less than the slack (2 ms at 20 ms): the schedule absorbs timer rounding. */
    assert_int_equal(rt_sim_next_token_due(100 * ms, 101 * ms, itl), 120 * ms);
    /* Late by much more: the next token waits a full ITL less the slack after this one, it is
     * not due at once (that would burst the rest of the answer). */
    assert_int_equal(rt_sim_next_token_due(100 * ms, 400 * ms, itl), 418 * ms);
    /* Small ITLs: the slack is a tenth of it. */
    assert_int_equal(rt_sim_next_token_due(0, 50 * ms, 5 * ms), 54500000);
    assert_int_equal(rt_sim_next_token_due(7, 7, 0), 7);
    /* Whatever the lateness of each tick, token k is due no sooner than k ITLs after the first
     * and no two are closer than ITL - slack. */
    uint64_t first = 1000 * ms, due = first, now = first, prev_out = first;
    uint64_t lateness[] = {0, 3 * ms, 500 * ms, 1, 0, 25 * ms, 2 * ms, 0, 0, 90 * ms};
    for (unsigned k = 1; k < 200; k++) {
        due = rt_sim_next_token_due(k == 1 ? now : due, now, itl);
        now = due + lateness[k % 10];
        assert_true(now >= first + k * itl);
        assert_true(now - prev_out >= itl - 2 * ms);
        prev_out = now;
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(token_rule),
        cmocka_unit_test(slots_queue_and_bound),
        cmocka_unit_test(ttft_and_itl),
        cmocka_unit_test(token_pacing),
        cmocka_unit_test(prefix_cache_hits),
        cmocka_unit_test(prefix_cache_lru_evicts),
        cmocka_unit_test(kv_cache_gates_admission),
        cmocka_unit_test(token_buckets_follow_context),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
