/* Unit tests for buf.c: reserve/commit/consume and the cap. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "buf.h"

static void append_and_consume(void **state)
{
    (void)state;
    struct rt_buf b = {0};
    assert_int_equal(rt_buf_append(&b, "hello ", 6, 64), 0);
    assert_int_equal(rt_buf_append(&b, "world", 5, 64), 0);
    assert_int_equal(rt_buf_size(&b), 11);
    assert_memory_equal(rt_buf_data(&b), "hello world", 11);
    rt_buf_consume(&b, 6);
    assert_int_equal(rt_buf_size(&b), 5);
    assert_memory_equal(rt_buf_data(&b), "world", 5);
    rt_buf_consume(&b, 5);
    assert_int_equal(rt_buf_size(&b), 0);
    rt_buf_free(&b);
}

static void cap_is_enforced(void **state)
{
    (void)state;
    struct rt_buf b = {0};
    char chunk[100] = {0};
    assert_int_equal(rt_buf_append(&b, chunk, 100, 150), 0);
    assert_int_equal(rt_buf_append(&b, chunk, 100, 150), RT_EBUF_TOOBIG);
    assert_int_equal(rt_buf_size(&b), 100);
    rt_buf_consume(&b, 60);
    /* 40 left: another 100 fits under 150 once consumed bytes are reclaimed. */
    assert_int_equal(rt_buf_append(&b, chunk, 100, 150), 0);
    assert_int_equal(rt_buf_size(&b), 140);
    rt_buf_free(&b);
}

static void printf_grows(void **state)
{
    (void)state;
    struct rt_buf b = {0};
    for (int i = 0; i < 1000; i++)
        rt_buf_printf(&b, "%04d,", i);
    assert_int_equal(rt_buf_size(&b), 5000);
    assert_memory_equal(rt_buf_data(&b) + 4995, "0999,", 5);
    rt_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(append_and_consume),
        cmocka_unit_test(cap_is_enforced),
        cmocka_unit_test(printf_grows),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
