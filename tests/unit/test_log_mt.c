/* Unit tests for log.c: concurrent writers, the three files, access records, rotation, level
 * filtering, JSON escaping, dropping under a full queue, console mode and open failures. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <ftw.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"

#define MAIN_LOG  "vllm-router.log"
#define ERROR_LOG "vllm-router-error.log"
#define JSON_LOG  "vllm-router-structured.log"

/* ---- helpers ---- */

/* snprintf into an array that must be large enough (the check also tells gcc we thought of it). */
#define FMT(buf, ...) assert_true(snprintf((buf), sizeof(buf), __VA_ARGS__) < (int)sizeof(buf))

struct lines {
    char **v;
    size_t n;
};

static char *path_in(const char *dir, const char *name)
{
    static char buf[4][1024];
    static int next;
    char *p = buf[next++ % 4];
    assert_true(snprintf(p, sizeof buf[0], "%s/%s", dir, name) < (int)sizeof buf[0]);
    return p;
}

/* Reads <path> into lines (without their '\n'); a missing file gives zero lines. */
static struct lines read_lines(const char *path)
{
    struct lines l = {0};
    FILE *f = fopen(path, "rb");
    if (!f)
        return l;
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    while ((n = getline(&line, &cap, f)) != -1) {
        assert_true(n > 0 && line[n - 1] == '\n'); /* every record ends its line */
        line[n - 1] = '\0';
        l.v = realloc(l.v, (l.n + 1) * sizeof *l.v);
        l.v[l.n++] = strdup(line);
    }
    free(line);
    fclose(f);
    return l;
}

static void free_lines(struct lines *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
    *l = (struct lines){0};
}

static size_t count_containing(const struct lines *l, const char *needle)
{
    size_t c = 0;
    for (size_t i = 0; i < l->n; i++)
        if (strstr(l->v[i], needle))
            c++;
    return c;
}

static long index_of(const struct lines *l, const char *needle)
{
    for (size_t i = 0; i < l->n; i++)
        if (strstr(l->v[i], needle))
            return (long)i;
    return -1;
}

static off_t file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? st.st_size : -1;
}

static int rm_entry(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(p);
}

static int setup_dir(void **state)
{
    char *tmpl = strdup("/tmp/rt-log-test-XXXXXX");
    if (!mkdtemp(tmpl)) {
        free(tmpl);
        return -1;
    }
    *state = tmpl;
    return 0;
}

static int teardown_dir(void **state)
{
    rt_log_close();
    rt_log_set_queue_limit(0);
    nftw(*state, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(*state);
    return 0;
}

static void open_log(const char *dir, enum rt_log_level level, uint64_t max_bytes, unsigned keep)
{
    struct rt_log_conf c = {
        .dir = dir, .level = level, .console = false, .max_bytes = max_bytes, .keep = keep};
    char err[256] = "";
    int rc = rt_log_open(&c, err, sizeof err);
    if (rc != 0)
        fail_msg("rt_log_open: %s", err);
}

/* Checks the human line layout "2026-11-26 05:59:01.123 LEVEL message". */
static void assert_human_layout(const char *line)
{
    assert_true(strlen(line) > 24);
    for (int i = 0; i < 23; i++) {
        if (i == 4 || i == 7)
            assert_int_equal(line[i], '-');
        else if (i == 10)
            assert_int_equal(line[i], ' ');
        else if (i == 13 || i == 16)
            assert_int_equal(line[i], ':');
        else if (i == 19)
            assert_int_equal(line[i], '.');
        else
            assert_true(line[i] >= '0' && line[i] <= '9');
    }
    assert_int_equal(line[23], ' ');
}

/* Parses one structured line; fails the test when it is not a JSON object. */
static json_t *parse_json(const char *line)
{
    json_error_t e;
    json_t *j = json_loads(line, 0, &e);
    if (!j)
        fail_msg("invalid JSON line (%s): %s", e.text, line);
    assert_true(json_is_object(j));
    const char *ts = json_string_value(json_object_get(j, "ts"));
    assert_non_null(ts);
    assert_int_equal(strlen(ts), 24);
    assert_int_equal(ts[10], 'T');
    assert_int_equal(ts[23], 'Z');
    return j;
}

/* ---- concurrent writers ---- */

#define NTHREADS 4
#define PER_THREAD 2000

static void *writer_thread(void *arg)
{
    int t = (int)(intptr_t)arg;
    for (int i = 0; i < PER_THREAD; i++) {
        if (i % 10 == 0)
            RT_ERROR("msg t%d-%d error", t, i);
        else if (i % 10 == 1)
            RT_DEBUG("msg t%d-%d debug", t, i); /* below INFO: never written */
        else if (i % 10 == 2)
            RT_WARN("msg t%d-%d warn", t, i);
        else
            RT_INFO("msg t%d-%d info", t, i);
    }
    return NULL;
}

static void concurrent_lines_arrive_once(void **state)
{
    const char *dir = *state;
    open_log(dir, RT_LOG_INFO, 0, 3);
    pthread_t th[NTHREADS];
    for (int t = 0; t < NTHREADS; t++)
        assert_int_equal(pthread_create(&th[t], NULL, writer_thread, (void *)(intptr_t)t), 0);
    for (int t = 0; t < NTHREADS; t++)
        pthread_join(th[t], NULL);
    rt_log_close();

    struct lines m = read_lines(path_in(dir, MAIN_LOG));
    struct lines e = read_lines(path_in(dir, ERROR_LOG));
    struct lines j = read_lines(path_in(dir, JSON_LOG));
    const size_t per_thread_kept = PER_THREAD - PER_THREAD / 10; /* debug lines dropped */
    assert_int_equal(m.n, NTHREADS * per_thread_kept);
    assert_int_equal(e.n, NTHREADS * (PER_THREAD / 10));
    assert_int_equal(j.n, NTHREADS * per_thread_kept);

    /* Each thread's lines appear exactly once and in the order that thread logged them. */
    int next[NTHREADS] = {0};
    unsigned char *seen = calloc(NTHREADS * PER_THREAD, 1);
    for (size_t i = 0; i < m.n; i++) {
        assert_human_layout(m.v[i]);
        int t, k;
        char kind[16];
        const char *msg = strstr(m.v[i], "msg t");
        assert_non_null(msg);
        assert_int_equal(sscanf(msg, "msg t%d-%d %15s", &t, &k, kind), 3);
        assert_true(t >= 0 && t < NTHREADS && k >= 0 && k < PER_THREAD);
        assert_false(seen[t * PER_THREAD + k]);
        seen[t * PER_THREAD + k] = 1;
        assert_true(k >= next[t]);
        next[t] = k + 1;
        const char *lvl = m.v[i] + 24;
        if (strcmp(kind, "error") == 0)
            assert_memory_equal(lvl, "ERROR ", 6);
        else if (strcmp(kind, "warn") == 0)
            assert_memory_equal(lvl, "WARNING ", 8);
        else
            assert_memory_equal(lvl, "INFO  ", 6);
        assert_string_not_equal(kind, "debug");
    }
    for (size_t i = 0; i < e.n; i++) {
        assert_human_layout(e.v[i]);
        assert_memory_equal(e.v[i] + 24, "ERROR msg t", 11);
    }
    memset(seen, 0, NTHREADS * PER_THREAD);
    for (size_t i = 0; i < j.n; i++) {
        json_t *o = parse_json(j.v[i]);
        const char *msg = json_string_value(json_object_get(o, "msg"));
        const char *lvl = json_string_value(json_object_get(o, "level"));
        assert_non_null(msg);
        assert_non_null(lvl);
        int t, k;
        char kind[16];
        assert_int_equal(sscanf(msg, "msg t%d-%d %15s", &t, &k, kind), 3);
        assert_false(seen[t * PER_THREAD + k]);
        seen[t * PER_THREAD + k] = 1;
        if (strcmp(kind, "error") == 0)
            assert_string_equal(lvl, "ERROR");
        else if (strcmp(kind, "warn") == 0)
            assert_string_equal(lvl, "WARNING");
        else
            assert_string_equal(lvl, "INFO");
        json_decref(o);
    }
    free(seen);
    free_lines(&m);
    free_lines(&e);
    free_lines(&j);
}

/* ---- access records ---- */

static void access_records(void **state)
{
    const char *dir = *state;
    /* Access records are kept even when the level would hide INFO lines. */
    open_log(dir, RT_LOG_ERROR, 0, 3);
    struct rt_access_record full = {
        .request_id = "req-1",
        .method = "POST",
        .endpoint = "/v1/chat/completions",
        .model = "llama",
        .server = "http://127.0.0.1:9001",
        .status = 200,
        .bytes_in = 123,
        .bytes_out = 4567,
        .ttfb_ms = 12.25,
        .total_ms = 456.75,
        .retries = 1,
        .prompt_tokens = 10,
        .completion_tokens = 20,
        .error = NULL,
    };
    struct rt_access_record empty = {
        .request_id = "req-2",
        .method = "GET",
        .endpoint = "/v1/models",
        .status = 503,
        .ttfb_ms = -1,
        .total_ms = 0.5,
        .prompt_tokens = -1,
        .completion_tokens = -1,
        .error = "no \"server\" up",
    };
    rt_log_access(&full);
    rt_log_access(&empty);
    rt_log_close();

    struct lines m = read_lines(path_in(dir, MAIN_LOG));
    struct lines e = read_lines(path_in(dir, ERROR_LOG));
    struct lines j = read_lines(path_in(dir, JSON_LOG));
    assert_int_equal(m.n, 2);
    assert_int_equal(e.n, 0);
    assert_int_equal(j.n, 2);
    assert_human_layout(m.v[0]);
    assert_non_null(strstr(m.v[0], "INFO  access POST /v1/chat/completions model=llama "
                                   "server=http://127.0.0.1:9001 status=200"));
    assert_non_null(strstr(m.v[0], " ttfb=12.2ms total=456.8ms retries=1"));
    assert_non_null(strstr(m.v[0], " tokens=10/20 id=req-1"));
    assert_non_null(strstr(m.v[1], "access GET /v1/models model=- server=- status=503"));
    assert_non_null(strstr(m.v[1], " ttfb=- "));
    assert_null(strstr(m.v[1], "tokens="));
    assert_non_null(strstr(m.v[1], "error=no \"server\" up"));

    json_t *a = parse_json(j.v[0]);
    assert_string_equal(json_string_value(json_object_get(a, "type")), "access");
    assert_string_equal(json_string_value(json_object_get(a, "request_id")), "req-1");
    assert_string_equal(json_string_value(json_object_get(a, "method")), "POST");
    assert_string_equal(json_string_value(json_object_get(a, "endpoint")), "/v1/chat/completions");
    assert_string_equal(json_string_value(json_object_get(a, "model")), "llama");
    assert_string_equal(json_string_value(json_object_get(a, "server")), "http://127.0.0.1:9001");
    assert_int_equal(json_integer_value(json_object_get(a, "status")), 200);
    assert_int_equal(json_integer_value(json_object_get(a, "bytes_in")), 123);
    assert_int_equal(json_integer_value(json_object_get(a, "bytes_out")), 4567);
    assert_true(json_number_value(json_object_get(a, "ttfb_ms")) == 12.25);
    assert_true(json_number_value(json_object_get(a, "total_ms")) == 456.75);
    assert_int_equal(json_integer_value(json_object_get(a, "retries")), 1);
    assert_int_equal(json_integer_value(json_object_get(a, "prompt_tokens")), 10);
    assert_int_equal(json_integer_value(json_object_get(a, "completion_tokens")), 20);
    assert_true(json_is_null(json_object_get(a, "error")));
    json_decref(a);

    json_t *b = parse_json(j.v[1]);
    assert_true(json_is_null(json_object_get(b, "model")));
    assert_true(json_is_null(json_object_get(b, "server")));
    assert_true(json_is_null(json_object_get(b, "ttfb_ms")));
    assert_true(json_is_null(json_object_get(b, "prompt_tokens")));
    assert_true(json_is_null(json_object_get(b, "completion_tokens")));
    assert_int_equal(json_integer_value(json_object_get(b, "status")), 503);
    assert_int_equal(json_integer_value(json_object_get(b, "bytes_in")), 0);
    assert_string_equal(json_string_value(json_object_get(b, "error")), "no \"server\" up");
    json_decref(b);
    free_lines(&m);
    free_lines(&e);
    free_lines(&j);
}

/* ---- rotation ---- */

static void rotation_keeps_bounded_files(void **state)
{
    const char *dir = *state;
    const uint64_t max = 4096;
    open_log(dir, RT_LOG_INFO, max, 2);
    for (int i = 0; i < 400; i++)
        RT_ERROR("rotation line %04d padded to be about one hundred bytes long .........", i);
    rt_log_close();

    const char *names[] = {MAIN_LOG, ERROR_LOG, JSON_LOG};
    for (int n = 0; n < 3; n++) {
        char rotated[64];
        for (int k = 0; k <= 2; k++) {
            const char *p = path_in(dir, names[n]);
            if (k > 0) {
                FMT(rotated, "%s.%d", names[n], k);
                p = path_in(dir, rotated);
            }
            off_t sz = file_size(p);
            assert_true(sz > 0);
            assert_true((uint64_t)sz <= max);
        }
        FMT(rotated, "%s.3", names[n]);
        assert_int_equal(file_size(path_in(dir, rotated)), -1); /* keep = 2 */
    }
    /* The newest line is in the live file, the next older ones in .1 right before it. */
    struct lines cur = read_lines(path_in(dir, MAIN_LOG));
    struct lines old = read_lines(path_in(dir, MAIN_LOG ".1"));
    assert_true(cur.n > 0 && old.n > 0);
    assert_non_null(strstr(cur.v[cur.n - 1], "rotation line 0399"));
    int last_old, first_cur;
    assert_int_equal(sscanf(strstr(old.v[old.n - 1], "line "), "line %d", &last_old), 1);
    assert_int_equal(sscanf(strstr(cur.v[0], "line "), "line %d", &first_cur), 1);
    assert_int_equal(first_cur, last_old + 1);
    free_lines(&cur);
    free_lines(&old);
}

static void rotation_keep_zero_truncates(void **state)
{
    const char *dir = *state;
    const uint64_t max = 2048;
    open_log(dir, RT_LOG_INFO, max, 0);
    for (int i = 0; i < 200; i++)
        RT_INFO("truncate line %04d with some padding to fill the file faster ..........", i);
    rt_log_close();
    off_t sz = file_size(path_in(dir, MAIN_LOG));
    assert_true(sz > 0 && (uint64_t)sz <= max);
    assert_int_equal(file_size(path_in(dir, MAIN_LOG ".1")), -1);
    struct lines cur = read_lines(path_in(dir, MAIN_LOG));
    assert_non_null(strstr(cur.v[cur.n - 1], "truncate line 0199"));
    free_lines(&cur);
}

/* ---- levels ---- */

static void level_filtering(void **state)
{
    const char *dir = *state;
    open_log(dir, RT_LOG_WARNING, 0, 1);
    RT_INFO("hidden-info");
    RT_WARN("shown-warn");
    rt_log_set_level(RT_LOG_DEBUG);
    RT_DEBUG("shown-debug");
    rt_log_set_level(RT_LOG_ERROR);
    RT_WARN("hidden-warn");
    RT_ERROR("shown-error");
    rt_log_close();
    rt_log_set_level(RT_LOG_INFO);

    struct lines m = read_lines(path_in(dir, MAIN_LOG));
    assert_int_equal(m.n, 3);
    assert_non_null(strstr(m.v[0], "WARNING shown-warn"));
    assert_non_null(strstr(m.v[1], "DEBUG shown-debug"));
    assert_non_null(strstr(m.v[2], "ERROR shown-error"));
    assert_int_equal(count_containing(&m, "hidden"), 0);
    free_lines(&m);
}

static void level_parse_and_names(void **state)
{
    (void)state;
    enum rt_log_level l;
    assert_int_equal(rt_log_level_parse("debug", &l), 0);
    assert_int_equal(l, RT_LOG_DEBUG);
    assert_int_equal(rt_log_level_parse("Info", &l), 0);
    assert_int_equal(l, RT_LOG_INFO);
    assert_int_equal(rt_log_level_parse("WARNING", &l), 0);
    assert_int_equal(l, RT_LOG_WARNING);
    assert_int_equal(rt_log_level_parse("warn", &l), 0);
    assert_int_equal(l, RT_LOG_WARNING);
    assert_int_equal(rt_log_level_parse("ERROR", &l), 0);
    assert_int_equal(l, RT_LOG_ERROR);
    assert_int_equal(rt_log_level_parse("trace", &l), -1);
    assert_int_equal(rt_log_level_parse("", &l), -1);
    assert_int_equal(rt_log_level_parse("INFOX", &l), -1);
    assert_int_equal(rt_log_level_parse(NULL, &l), -1);
    assert_string_equal(rt_log_level_name(RT_LOG_WARNING), "WARNING");
    assert_string_equal(rt_log_level_name(RT_LOG_DEBUG), "DEBUG");
}

/* ---- escaping ---- */

static void json_escaping_of_nasty_messages(void **state)
{
    const char *dir = *state;
    static const struct {
        const char *in;
        const char *want; /* the decoded "msg" */
    } cases[] = {
        {"say \"hi\" \\ there", "say \"hi\" \\ there"},
        {"two\nlines\r\tand\x01\x1f", "two\nlines\r\tand\x01\x1f"},
        {"bad \xff\xfe bytes", "bad \xef\xbf\xbd\xef\xbf\xbd bytes"},
        {"cut \xe2\x82", "cut \xef\xbf\xbd\xef\xbf\xbd"},
        {"overlong \xc0\xaf", "overlong \xef\xbf\xbd\xef\xbf\xbd"},
        {"surrogate \xed\xa0\x80", "surrogate \xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},
        {"too big \xf4\x90\x80\x80", "too big \xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},
        {"fine \xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \x7f", "fine \xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \x7f"},
        {"", ""},
    };
    const size_t n = sizeof cases / sizeof cases[0];
    open_log(dir, RT_LOG_INFO, 0, 1);
    for (size_t i = 0; i < n; i++)
        RT_ERROR("%s", cases[i].in);
    rt_log_close();

    struct lines m = read_lines(path_in(dir, MAIN_LOG));
    struct lines j = read_lines(path_in(dir, JSON_LOG));
    /* Newlines inside a message never split a human record. */
    assert_int_equal(m.n, n);
    assert_non_null(strstr(m.v[1], "two\\nlines\\r\tand\\x01\\x1f"));
    assert_non_null(strstr(m.v[2], "bad \\xff\\xfe bytes"));
    assert_non_null(strstr(m.v[7], "fine \xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \\x7f"));
    assert_int_equal(j.n, n);
    for (size_t i = 0; i < n; i++) {
        json_t *o = parse_json(j.v[i]);
        assert_string_equal(json_string_value(json_object_get(o, "msg")), cases[i].want);
        json_decref(o);
    }
    free_lines(&m);
    free_lines(&j);
}

static void long_message_is_cut(void **state)
{
    const char *dir = *state;
    size_t len = 200 * 1024;
    char *big = malloc(len + 1);
    memset(big, 'x', len);
    big[len] = '\0';
    open_log(dir, RT_LOG_INFO, 0, 1);
    RT_INFO("%s", big);
    RT_INFO("after-big");
    rt_log_close();
    free(big);
    struct lines j = read_lines(path_in(dir, JSON_LOG));
    assert_int_equal(j.n, 2);
    json_t *o = parse_json(j.v[0]);
    const char *msg = json_string_value(json_object_get(o, "msg"));
    assert_true(strlen(msg) < 70 * 1024 && strlen(msg) > 60 * 1024);
    assert_string_equal(msg + strlen(msg) - 3, "...");
    json_decref(o);
    free_lines(&j);
}

/* ---- queue limit ---- */

static void full_queue_drops_and_reports(void **state)
{
    const char *dir = *state;
    open_log(dir, RT_LOG_INFO, 0, 1);
    uint64_t before = rt_log_dropped();
    RT_INFO("before-drops");
    /* A one-byte queue holds no line, so every one of these is dropped, deterministically. */
    rt_log_set_queue_limit(1);
    for (int i = 0; i < 100; i++)
        RT_INFO("dropped %d", i);
    rt_log_set_queue_limit(0);
    RT_INFO("after-drops");
    rt_log_close();
    assert_int_equal(rt_log_dropped() - before, 100);

    struct lines m = read_lines(path_in(dir, MAIN_LOG));
    assert_int_equal(m.n, 3);
    assert_int_equal(count_containing(&m, "dropped "), 0);
    long b = index_of(&m, "before-drops");
    long d = index_of(&m, "WARNING 100 log lines dropped");
    long a = index_of(&m, "after-drops");
    assert_true(b == 0 && d == 1 && a == 2);
    free_lines(&m);
}

static void drops_reported_at_close(void **state)
{
    const char *dir = *state;
    open_log(dir, RT_LOG_INFO, 0, 1);
    rt_log_set_queue_limit(1);
    for (int i = 0; i < 7; i++)
        RT_INFO("dropped %d", i);
    rt_log_set_queue_limit(0);
    rt_log_close();
    struct lines m = read_lines(path_in(dir, MAIN_LOG));
    assert_int_equal(m.n, 1);
    assert_non_null(strstr(m.v[0], "7 log lines dropped"));
    free_lines(&m);
}

/* ---- lifecycle, console, failures ---- */

/* Runs <fn> with stderr sent to <path>; returns what was written there. */
static struct lines capture_stderr(const char *path, void (*fn)(const char *), const char *arg)
{
    fflush(stderr);
    int saved = dup(STDERR_FILENO);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(saved != -1 && fd != -1);
    dup2(fd, STDERR_FILENO);
    close(fd);
    fn(arg);
    fflush(stderr);
    dup2(saved, STDERR_FILENO);
    close(saved);
    return read_lines(path);
}

static void console_run(const char *dir)
{
    RT_INFO("before-open");
    struct rt_log_conf c = {.dir = dir, .level = RT_LOG_INFO, .console = true};
    char err[256];
    assert_int_equal(rt_log_open(&c, err, sizeof err), 0);
    RT_INFO("console-on");
    rt_log_close(); /* flushes, so console-on is out before we switch */
    c.console = false;
    assert_int_equal(rt_log_open(&c, err, sizeof err), 0);
    RT_INFO("console-off");
    rt_log_close();
    RT_INFO("after-close");
}

static void console_and_stderr_fallback(void **state)
{
    const char *dir = *state;
    struct lines s = capture_stderr(path_in(dir, "stderr.txt"), console_run, dir);
    assert_int_equal(count_containing(&s, "INFO  before-open"), 1);
    assert_int_equal(count_containing(&s, "INFO  console-on"), 1);
    assert_int_equal(count_containing(&s, "console-off"), 0);
    assert_int_equal(count_containing(&s, "INFO  after-close"), 1);
    free_lines(&s);
    /* Only lines logged while open reach the file; reopening appends. */
    struct lines m = read_lines(path_in(dir, MAIN_LOG));
    assert_int_equal(m.n, 2);
    assert_non_null(strstr(m.v[0], "console-on"));
    assert_non_null(strstr(m.v[1], "console-off"));
    free_lines(&m);
}

static void reopen_and_double_close(void **state)
{
    const char *dir = *state;
    char sub[1024];
    FMT(sub, "%s/a/b/c", dir); /* parents are created */
    for (int round = 0; round < 3; round++) {
        open_log(sub, RT_LOG_INFO, 0, 1);
        char err[256] = "";
        struct rt_log_conf c = {.dir = sub};
        assert_int_equal(rt_log_open(&c, err, sizeof err), -1); /* already open */
        assert_true(err[0] != '\0');
        RT_INFO("round %d", round);
        rt_log_close();
        rt_log_close();
    }
    struct lines m = read_lines(path_in(sub, MAIN_LOG));
    assert_int_equal(m.n, 3);
    assert_non_null(strstr(m.v[2], "round 2"));
    free_lines(&m);
}

static void open_failure_message(void **state)
{
    const char *dir = *state;
    char file[1024], bad[1100], err[512] = "";
    FMT(file, "%s/plainfile", dir);
    int fd = open(file, O_WRONLY | O_CREAT, 0644);
    assert_true(fd != -1);
    close(fd);
    FMT(bad, "%s/sub", file);
    struct rt_log_conf c = {.dir = bad, .level = RT_LOG_INFO};
    assert_int_equal(rt_log_open(&c, err, sizeof err), -1);
    char want[1200];
    FMT(want, "cannot create log directory '%s': Not a directory", bad);
    assert_string_equal(err, want);
    /* A failed open leaves logging usable (on stderr) and a later open works. */
    rt_log_close();
    open_log(dir, RT_LOG_INFO, 0, 1);
    RT_INFO("works");
    rt_log_close();
    struct lines m = read_lines(path_in(dir, MAIN_LOG));
    assert_int_equal(m.n, 1);
    free_lines(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(concurrent_lines_arrive_once, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(access_records, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(rotation_keeps_bounded_files, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(rotation_keep_zero_truncates, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(level_filtering, setup_dir, teardown_dir),
        cmocka_unit_test(level_parse_and_names),
        cmocka_unit_test_setup_teardown(json_escaping_of_nasty_messages, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(long_message_is_cut, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(full_queue_drops_and_reports, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(drops_reported_at_close, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(console_and_stderr_fallback, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(reopen_and_double_close, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(open_failure_message, setup_dir, teardown_dir),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
