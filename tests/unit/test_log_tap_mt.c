/* Unit tests for the log tap (rt_log_set_tap): every message that passes the level reaches it once
 * from any thread, access records do not, and once it is removed it is never called again, even
 * while other threads keep logging. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ftw.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

#define THREADS 4
#define PER_THREAD 2000

struct tap {
    atomic_int calls;
    atomic_int bad;        /* calls whose text or level was not what was logged */
    atomic_bool removed;   /* set right after rt_log_set_tap(NULL) returned */
    atomic_int after;      /* calls seen after that */
};

static void on_tap(enum rt_log_level level, const char *msg, void *arg)
{
    struct tap *t = arg;
    if (atomic_load(&t->removed))
        atomic_fetch_add(&t->after, 1);
    if (strncmp(msg, "tap ", 4) != 0 || level != RT_LOG_WARNING)
        atomic_fetch_add(&t->bad, 1);
    atomic_fetch_add(&t->calls, 1);
}

static char dir[64];

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int setup_dir(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/rt-log-tap-XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    struct rt_log_conf c = {.dir = dir, .level = RT_LOG_INFO, .max_bytes = 0, .keep = 0};
    char err[256];
    return rt_log_open(&c, err, sizeof err);
}

static int teardown_dir(void **state)
{
    (void)state;
    rt_log_set_tap(NULL, NULL);
    rt_log_close();
    nftw(dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
    return 0;
}

static void *writer(void *arg)
{
    int id = (int)(intptr_t)arg;
    for (int i = 0; i < PER_THREAD; i++) {
        rt_log(RT_LOG_WARNING, "tap %d %d", id, i);
        rt_log(RT_LOG_DEBUG, "below the level %d", i); /* filtered: never tapped */
    }
    return NULL;
}

static void every_message_once_from_any_thread(void **state)
{
    (void)state;
    struct tap t = {0};
    rt_log_set_tap(on_tap, &t);
    pthread_t th[THREADS];
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, writer, (void *)(intptr_t)i), 0);
    for (int i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);
    struct rt_access_record rec = {.method = "GET", .endpoint = "/x", .status = 200,
                                   .ttfb_ms = 1, .total_ms = 2, .prompt_tokens = -1,
                                   .completion_tokens = -1};
    rt_log_access(&rec);
    assert_int_equal(atomic_load(&t.calls), THREADS * PER_THREAD);
    assert_int_equal(atomic_load(&t.bad), 0);
}

static void *busy_writer(void *arg)
{
    atomic_bool *stop = arg;
    int i = 0;
    while (!atomic_load(stop))
        rt_log(RT_LOG_WARNING, "tap busy %d", i++);
    return NULL;
}

static void removed_tap_is_never_called_again(void **state)
{
    (void)state;
    struct tap *t = calloc(1, sizeof *t);
    atomic_bool stop = false;
    pthread_t th[THREADS];
    rt_log_set_tap(on_tap, t);
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, busy_writer, &stop), 0);
    while (atomic_load(&t->calls) < 100)
        usleep(1000);
    rt_log_set_tap(NULL, NULL);
    atomic_store(&t->removed, true);
    int seen = atomic_load(&t->calls);
    usleep(20000); /* the writers go on logging meanwhile */
    assert_int_equal(atomic_load(&t->calls), seen);
    assert_int_equal(atomic_load(&t->after), 0);
    free(t); /* the promise of rt_log_set_tap(NULL): nothing touches it any more */
    usleep(5000);
    atomic_store(&stop, true);
    for (int i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(every_message_once_from_any_thread, setup_dir,
                                        teardown_dir),
        cmocka_unit_test_setup_teardown(removed_tap_is_never_called_again, setup_dir,
                                        teardown_dir),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
