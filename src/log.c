/* Logging: callers format lines into a bounded queue, one writer thread appends them to the human,
 * error and structured (JSON lines) files, rotating each by size.
 *
 * Threads: any thread formats its own line (no lock held while formatting), then takes <q.mu>
 * only to link the entry into the queue. Only the writer thread touches the files. The lifecycle
 * (open/close) is serialised by <life_mu>, so close may race with loggers but not with open. */
#include "log.h"
#include "utf8.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "buf.h"

#define MSG_MAX       (64u * 1024)        /* longer messages are cut and marked "..." */
#define QUEUE_BYTES   (64u * 1024 * 1024) /* default cap on queued bytes */
#define QUEUE_ENTRIES (256u * 1024)       /* cap on queued lines, whatever their size */
#define PATH_MAX_LEN  4096

enum { F_MAIN = 0, F_ERROR, F_JSON, F_COUNT };

static const char *const file_names[F_COUNT] = {
    "vllm-router.log",
    "vllm-router-error.log",
    "vllm-router-structured.log",
};

/* One queued record: a human line (to the main file, the error file when <to_error>, and stderr in
 * console mode) followed by its JSON line, both ending in '\n', in one owned buffer. */
struct entry {
    struct entry *next;
    char *data;    /* owned: human line then JSON line */
    size_t hlen;   /* bytes of the human line */
    size_t jlen;   /* bytes of the JSON line */
    bool to_error; /* also goes to vllm-router-error.log */
};

/* An open log file, touched only by the writer thread (and by open/close while it is not running). */
struct lfile {
    int fd;
    uint64_t size;     /* bytes in the current file, to decide rotation */
    char path[PATH_MAX_LEN];
    struct rt_buf out; /* lines of the current batch not yet written */
};

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;      /* signalled for the first entry of a batch, a big queue, or stop */
    bool writer_idle;       /* the writer sleeps on an empty queue: the next entry wakes it */
    struct entry *head;     /* oldest */
    struct entry *tail;
    size_t bytes;           /* queued bytes (both lines of every entry) */
    size_t count;           /* queued entries */
    size_t limit;           /* cap on <bytes> */
    uint64_t dropped;       /* lines dropped since the last notice */
    uint64_t dropped_total; /* lines dropped since the process started */
    bool running;           /* writer thread accepts entries */
    bool stopping;          /* writer should drain and exit */
} q = {
    .mu = PTHREAD_MUTEX_INITIALIZER,
    .cv = PTHREAD_COND_INITIALIZER,
    .limit = QUEUE_BYTES,
};

static pthread_mutex_t life_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_t writer;
static struct lfile files[F_COUNT];
static uint64_t max_bytes; /* rotation threshold; 0 = never (read by the writer only) */
static unsigned keep;

static atomic_int cur_level = RT_LOG_INFO;
static atomic_bool console = false;

/* The tap (the dashboard's recent events). <tap_on> lets the common case (no tap) skip the lock;
 * calling under <tap_mu> is what lets rt_log_set_tap(NULL) promise no call is still running. */
static pthread_mutex_t tap_mu = PTHREAD_MUTEX_INITIALIZER;
static atomic_bool tap_on = false;
static rt_log_tap_fn tap_fn;
static void *tap_arg;

static const char *const level_names[] = {"DEBUG", "INFO", "WARNING", "ERROR"};

const char *rt_log_level_name(enum rt_log_level level)
{
    if ((unsigned)level < sizeof level_names / sizeof level_names[0])
        return level_names[level];
    return "UNKNOWN";
}

int rt_log_level_parse(const char *s, enum rt_log_level *out)
{
    if (s == NULL)
        return -1;
    for (unsigned i = 0; i < sizeof level_names / sizeof level_names[0]; i++) {
        if (strcasecmp(s, level_names[i]) == 0) {
            *out = (enum rt_log_level)i;
            return 0;
        }
    }
    if (strcasecmp(s, "WARN") == 0) {
        *out = RT_LOG_WARNING;
        return 0;
    }
    return -1;
}

void rt_log_set_level(enum rt_log_level level)
{
    atomic_store_explicit(&cur_level, (int)level, memory_order_relaxed);
}

void rt_log_set_console(bool on)
{
    atomic_store_explicit(&console, on, memory_order_relaxed);
}

void rt_log_set_tap(rt_log_tap_fn fn, void *arg)
{
    pthread_mutex_lock(&tap_mu);
    tap_fn = fn;
    tap_arg = arg;
    atomic_store_explicit(&tap_on, fn != NULL, memory_order_relaxed);
    pthread_mutex_unlock(&tap_mu);
}

static void call_tap(enum rt_log_level level, const char *msg)
{
    if (!atomic_load_explicit(&tap_on, memory_order_relaxed))
        return;
    pthread_mutex_lock(&tap_mu);
    if (tap_fn)
        tap_fn(level, msg, tap_arg);
    pthread_mutex_unlock(&tap_mu);
}

void rt_log_set_queue_limit(size_t bytes)
{
    pthread_mutex_lock(&q.mu);
    q.limit = bytes ? bytes : QUEUE_BYTES;
    pthread_mutex_unlock(&q.mu);
}

uint64_t rt_log_dropped(void)
{
    pthread_mutex_lock(&q.mu);
    uint64_t n = q.dropped_total;
    pthread_mutex_unlock(&q.mu);
    return n;
}

/* ---- formatting ---- */

/* Writes both timestamp forms of now (UTC, milliseconds): "2026-11-26 05:59:01.123" into <human>
 * and "2026-11-26T05:59:01.123Z" into <iso>; each buffer holds at least 32 bytes. */
static void timestamps(char *human, char *iso)
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int ms = (int)(ts.tv_nsec / 1000000);
    /* strftime, not one snprintf of every field: the year has no fixed width to the compiler. */
    size_t n = strftime(human, 24, "%Y-%m-%d %H:%M:%S", &tm);
    snprintf(human + n, 32 - n, ".%03d", ms);
    n = strftime(iso, 24, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(iso + n, 32 - n, ".%03dZ", ms);
}

/* Appends <s> for a human line: control bytes become escapes so one record stays one line, and
 * bytes that are not UTF-8 become \xNN so the file stays readable text. */
static void put_human(struct rt_buf *b, struct rt_str s)
{
    static const char hex[] = "0123456789abcdef";
    if (s.len == 0)
        return;
    rt_buf_reserve(b, s.len * 4, (size_t)-1);
    char *o = b->base + b->len;
    for (size_t i = 0; i < s.len; i++) {
        unsigned char c = (unsigned char)s.ptr[i];
        if (c >= 0x80) {
            size_t n = rt_utf8_seq((const unsigned char *)s.ptr + i, s.len - i);
            if (n > 0) {
                memcpy(o, s.ptr + i, n);
                o += n;
                i += n - 1;
                continue;
            }
        }
        if (c >= 0x20 && c < 0x7f) {
            *o++ = (char)c;
        } else if (c == '\t') {
            *o++ = '\t';
        } else if (c == '\n') {
            *o++ = '\\';
            *o++ = 'n';
        } else if (c == '\r') {
            *o++ = '\\';
            *o++ = 'r';
        } else {
            *o++ = '\\';
            *o++ = 'x';
            *o++ = hex[c >> 4];
            *o++ = hex[c & 15];
        }
    }
    b->len = (size_t)(o - b->base);
}

/* Appends <s> as a JSON string with its quotes. Control characters are escaped and each byte that
 * does not start a well-formed UTF-8 sequence becomes U+FFFD, so the result is always valid JSON
 * whatever the input bytes. */
static void put_json(struct rt_buf *b, struct rt_str s)
{
    static const char hex[] = "0123456789abcdef";
    /* Worst case: every byte becomes "\ufffd" (6 bytes); plus the quotes. */
    rt_buf_reserve(b, s.len * 6 + 2, (size_t)-1);
    char *o = b->base + b->len;
    const unsigned char *p = (const unsigned char *)s.ptr;
    *o++ = '"';
    for (size_t i = 0; i < s.len;) {
        unsigned char c = p[i];
        if (c >= 0x80) {
            size_t n = rt_utf8_seq(p + i, s.len - i);
            if (n == 0) {
                memcpy(o, "\\ufffd", 6);
                o += 6;
                i++;
            } else {
                memcpy(o, p + i, n);
                o += n;
                i += n;
            }
            continue;
        }
        i++;
        if (c == '"' || c == '\\') {
            *o++ = '\\';
            *o++ = (char)c;
        } else if (c >= 0x20) {
            *o++ = (char)c;
        } else if (c == '\n') {
            *o++ = '\\';
            *o++ = 'n';
        } else if (c == '\r') {
            *o++ = '\\';
            *o++ = 'r';
        } else if (c == '\t') {
            *o++ = '\\';
            *o++ = 't';
        } else {
            memcpy(o, "\\u00", 4);
            o += 4;
            *o++ = hex[c >> 4];
            *o++ = hex[c & 15];
        }
    }
    *o++ = '"';
    b->len = (size_t)(o - b->base);
}

/* Appends a JSON string for <s>, or null when <s> is NULL. */
static void put_json_cstr(struct rt_buf *b, const char *s)
{
    if (s == NULL)
        rt_buf_append(b, "null", 4, (size_t)-1);
    else
        put_json(b, rt_str_cstr(s));
}

/* Appends a millisecond value with three decimals, or null when <ms> is negative or not finite. */
static void put_json_ms(struct rt_buf *b, double ms)
{
    if (ms < 0 || !isfinite(ms))
        rt_buf_append(b, "null", 4, (size_t)-1);
    else
        rt_buf_printf(b, "%.3f", ms);
}

static void put_json_tokens(struct rt_buf *b, int64_t n)
{
    if (n < 0)
        rt_buf_append(b, "null", 4, (size_t)-1);
    else
        rt_buf_printf(b, "%" PRId64, n);
}

/* Human form of an optional string in an access line: "-" for NULL. */
static void put_human_cstr(struct rt_buf *b, const char *s)
{
    put_human(b, s ? rt_str_cstr(s) : RT_STR_LIT("-"));
}

/* Human form of a token count: "-" when unknown (negative). */
static void put_human_count(struct rt_buf *b, int64_t n)
{
    if (n < 0)
        rt_buf_append(b, "-", 1, (size_t)-1);
    else
        rt_buf_printf(b, "%" PRId64, n);
}

/* ---- queue ---- */

/* Writes a human line straight to stderr in one write(2), so lines from threads do not mix. */
static void write_stderr(const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(STDERR_FILENO, p, n);
        if (w == -1) {
            if (errno == EINTR)
                continue;
            return;
        }
        p += w;
        n -= (size_t)w;
    }
}

static struct entry *entry_make(struct rt_buf *b, size_t hlen, bool to_error)
{
    struct entry *e = rt_malloc(sizeof *e);
    e->next = NULL;
    e->data = b->base; /* the builders below never consume, so off is 0 */
    e->hlen = hlen;
    e->jlen = b->len - hlen;
    e->to_error = to_error;
    *b = (struct rt_buf){0};
    return e;
}

static void entry_free(struct entry *e)
{
    rt_free(e->data);
    rt_free(e);
}

/* Builds the human and JSON lines of a message into <b>; returns the human line's length. */
static size_t build_message(struct rt_buf *b, enum rt_log_level level, struct rt_str msg)
{
    char hts[32], iso[32];
    timestamps(hts, iso);
    rt_buf_printf(b, "%s %-5s ", hts, rt_log_level_name(level));
    put_human(b, msg);
    rt_buf_append(b, "\n", 1, (size_t)-1);
    size_t hlen = b->len;
    rt_buf_printf(b, "{\"ts\":\"%s\",\"level\":\"%s\",\"msg\":", iso, rt_log_level_name(level));
    put_json(b, msg);
    rt_buf_append(b, "}\n", 2, (size_t)-1);
    return hlen;
}

static void link_entry(struct entry *e)
{
    e->next = NULL;
    if (q.tail)
        q.tail->next = e;
    else
        q.head = e;
    q.tail = e;
    q.bytes += e->hlen + e->jlen;
    q.count++;
}

static bool fits(size_t n)
{
    return q.count < QUEUE_ENTRIES && q.bytes + n <= q.limit;
}

/* Builds the "N log lines dropped" entry; called with <q.mu> held, rarely. */
static struct entry *dropped_notice(void)
{
    struct rt_buf b = {0};
    char msg[64];
    int n = snprintf(msg, sizeof msg, "%" PRIu64 " log lines dropped", q.dropped);
    size_t hlen = build_message(&b, RT_LOG_WARNING, rt_str_make(msg, (size_t)n));
    return entry_make(&b, hlen, false);
}

/* Hands <e> to the writer, or writes it to stderr when no writer runs. Never blocks on I/O:
 * when the queue is full the entry is dropped and counted. Takes ownership of <e>. */
#define LINGER_MS    20           /* how long the writer lets a batch gather */
#define LINGER_BYTES (256 * 1024) /* or until this much is queued */

static void submit(struct entry *e)
{
    pthread_mutex_lock(&q.mu);
    if (!q.running) {
        pthread_mutex_unlock(&q.mu);
        write_stderr(e->data, e->hlen);
        entry_free(e);
        return;
    }
    size_t need = e->hlen + e->jlen;
    if (q.dropped > 0) {
        struct entry *notice = dropped_notice();
        if (fits(need + notice->hlen + notice->jlen)) {
            link_entry(notice);
            q.dropped = 0;
        } else {
            entry_free(notice);
        }
    }
    if (q.dropped == 0 && fits(need)) {
        link_entry(e);
        e = NULL;
        /* Wake the writer for the first line of a batch or when much is queued; otherwise it
         * is already collecting (see writer_main), and a wake per line would cost a context
         * switch per request on a busy router. */
        if (q.writer_idle || q.bytes > LINGER_BYTES)
            pthread_cond_signal(&q.cv);
    } else {
        q.dropped++;
        q.dropped_total++;
    }
    pthread_mutex_unlock(&q.mu);
    if (e)
        entry_free(e);
}

static void vlog(enum rt_log_level level, const char *fmt, va_list ap)
{
    char small[512];
    char *msg = small;
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    if (n < 0) {
        va_end(ap2);
        return;
    }
    size_t len = (size_t)n;
    if (len >= sizeof small) {
        if (len >= MSG_MAX)
            len = MSG_MAX - 1;
        msg = rt_malloc(len + 1);
        vsnprintf(msg, len + 1, fmt, ap2);
        if ((size_t)n > len)
            memcpy(msg + len - 3, "...", 3);
    }
    va_end(ap2);
    call_tap(level, msg);
    struct rt_buf b = {0};
    size_t hlen = build_message(&b, level, rt_str_make(msg, len));
    if (msg != small)
        rt_free(msg);
    submit(entry_make(&b, hlen, level >= RT_LOG_ERROR));
}

void rt_log(enum rt_log_level level, const char *fmt, ...)
{
    if ((int)level < atomic_load_explicit(&cur_level, memory_order_relaxed))
        return;
    va_list ap;
    va_start(ap, fmt);
    vlog(level, fmt, ap);
    va_end(ap);
}

void rt_log_access(const struct rt_access_record *r)
{
    char hts[32], iso[32];
    struct rt_buf b = {0};
    timestamps(hts, iso);

    rt_buf_printf(&b, "%s %-5s access ", hts, "INFO");
    put_human_cstr(&b, r->method);
    rt_buf_append(&b, " ", 1, (size_t)-1);
    put_human_cstr(&b, r->endpoint);
    rt_buf_append(&b, " model=", 7, (size_t)-1);
    put_human_cstr(&b, r->model);
    rt_buf_append(&b, " server=", 8, (size_t)-1);
    put_human_cstr(&b, r->server);
    rt_buf_printf(&b, " status=%d in=%" PRIu64 " out=%" PRIu64, r->status, r->bytes_in,
                  r->bytes_out);
    if (r->ttfb_ms >= 0 && isfinite(r->ttfb_ms))
        rt_buf_printf(&b, " ttfb=%.1fms", r->ttfb_ms);
    else
        rt_buf_append(&b, " ttfb=-", 7, (size_t)-1);
    rt_buf_printf(&b, " total=%.1fms retries=%u", isfinite(r->total_ms) ? r->total_ms : 0.0,
                  r->retries);
    if (r->prompt_tokens >= 0 || r->completion_tokens >= 0) {
        rt_buf_append(&b, " tokens=", 8, (size_t)-1);
        put_human_count(&b, r->prompt_tokens);
        rt_buf_append(&b, "/", 1, (size_t)-1);
        put_human_count(&b, r->completion_tokens);
    }
    rt_buf_append(&b, " id=", 4, (size_t)-1);
    put_human_cstr(&b, r->request_id);
    if (r->error) {
        rt_buf_append(&b, " error=", 7, (size_t)-1);
        put_human_cstr(&b, r->error);
    }
    rt_buf_append(&b, "\n", 1, (size_t)-1);
    size_t hlen = b.len;

    rt_buf_printf(&b, "{\"ts\":\"%s\",\"type\":\"access\",\"request_id\":", iso);
    put_json_cstr(&b, r->request_id);
    rt_buf_append(&b, ",\"method\":", 10, (size_t)-1);
    put_json_cstr(&b, r->method);
    rt_buf_append(&b, ",\"endpoint\":", 12, (size_t)-1);
    put_json_cstr(&b, r->endpoint);
    rt_buf_append(&b, ",\"model\":", 9, (size_t)-1);
    put_json_cstr(&b, r->model);
    rt_buf_append(&b, ",\"server\":", 10, (size_t)-1);
    put_json_cstr(&b, r->server);
    rt_buf_printf(&b, ",\"status\":%d,\"bytes_in\":%" PRIu64 ",\"bytes_out\":%" PRIu64 ",\"ttfb_ms\":",
                  r->status, r->bytes_in, r->bytes_out);
    put_json_ms(&b, r->ttfb_ms);
    rt_buf_append(&b, ",\"total_ms\":", 12, (size_t)-1);
    put_json_ms(&b, r->total_ms);
    rt_buf_printf(&b, ",\"retries\":%u,\"prompt_tokens\":", r->retries);
    put_json_tokens(&b, r->prompt_tokens);
    rt_buf_append(&b, ",\"completion_tokens\":", 21, (size_t)-1);
    put_json_tokens(&b, r->completion_tokens);
    rt_buf_append(&b, ",\"error\":", 9, (size_t)-1);
    put_json_cstr(&b, r->error);
    rt_buf_append(&b, "}\n", 2, (size_t)-1);

    submit(entry_make(&b, hlen, false));
}

/* ---- files (writer thread, or open/close while no writer runs) ---- */

static int file_open(struct lfile *f)
{
    f->fd = open(f->path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (f->fd == -1)
        return -1;
    struct stat st;
    f->size = fstat(f->fd, &st) == 0 ? (uint64_t)st.st_size : 0;
    return 0;
}

static void file_close(struct lfile *f)
{
    if (f->fd != -1)
        close(f->fd);
    f->fd = -1;
    rt_buf_free(&f->out);
}

/* Writes the batch pending in <f->out>. A failing disk loses those lines; the router goes on. */
static void file_flush(struct lfile *f)
{
    size_t n = rt_buf_size(&f->out);
    if (n == 0)
        return; /* also keeps rt_buf_data() off a never-allocated buffer */
    const char *p = rt_buf_data(&f->out);
    while (n > 0 && f->fd != -1) {
        ssize_t w = write(f->fd, p, n);
        if (w == -1) {
            if (errno == EINTR)
                continue;
            break;
        }
        p += w;
        n -= (size_t)w;
        f->size += (uint64_t)w;
    }
    rt_buf_reset(&f->out);
}

/* Moves name.(keep-1) -> name.keep ... name -> name.1 and starts an empty file; with keep == 0
 * the file is truncated in place. */
static void file_rotate(struct lfile *f)
{
    if (keep == 0) {
        if (f->fd != -1 && ftruncate(f->fd, 0) == 0)
            f->size = 0;
        return;
    }
    char from[PATH_MAX_LEN + 16], to[PATH_MAX_LEN + 16];
    for (unsigned i = keep; i > 1; i--) {
        snprintf(from, sizeof from, "%s.%u", f->path, i - 1);
        snprintf(to, sizeof to, "%s.%u", f->path, i);
        rename(from, to); /* a missing name.(i-1) is fine */
    }
    snprintf(to, sizeof to, "%s.1", f->path);
    rename(f->path, to);
    if (f->fd != -1)
        close(f->fd);
    if (file_open(f) == -1)
        f->size = 0; /* retried at the next rotation; lines are lost until then */
}

/* Queues <n> bytes for <f>, rotating first when they would take the file past max_bytes, so
 * each file stays under max_bytes unless one line alone is larger. */
static void file_put(struct lfile *f, const char *p, size_t n)
{
    if (max_bytes > 0 && f->size + rt_buf_size(&f->out) > 0 &&
        f->size + rt_buf_size(&f->out) + n > max_bytes) {
        file_flush(f);
        file_rotate(f);
    }
    rt_buf_append(&f->out, p, n, (size_t)-1);
}

static void write_batch(struct entry *e)
{
    bool cons = atomic_load_explicit(&console, memory_order_relaxed);
    struct rt_buf err = {0};
    while (e) {
        struct entry *next = e->next;
        file_put(&files[F_MAIN], e->data, e->hlen);
        if (e->to_error)
            file_put(&files[F_ERROR], e->data, e->hlen);
        file_put(&files[F_JSON], e->data + e->hlen, e->jlen);
        if (cons)
            rt_buf_append(&err, e->data, e->hlen, (size_t)-1);
        entry_free(e);
        e = next;
    }
    for (int i = 0; i < F_COUNT; i++)
        file_flush(&files[i]);
    if (rt_buf_size(&err))
        write_stderr(rt_buf_data(&err), rt_buf_size(&err));
    rt_buf_free(&err);
}

static void *writer_main(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&q.mu);
    for (;;) {
        while (q.head == NULL && !q.stopping) {
            q.writer_idle = true;
            pthread_cond_wait(&q.cv, &q.mu);
            q.writer_idle = false;
        }
        if (!q.stopping && q.bytes <= LINGER_BYTES) {
            /* Let a batch gather for a moment: one wake and a few writes per LINGER_MS
             * instead of per line. */
            struct timespec until;
            clock_gettime(CLOCK_REALTIME, &until);
            until.tv_nsec += LINGER_MS * 1000000L;
            if (until.tv_nsec >= 1000000000L) {
                until.tv_sec++;
                until.tv_nsec -= 1000000000L;
            }
            while (!q.stopping && q.bytes <= LINGER_BYTES &&
                   pthread_cond_timedwait(&q.cv, &q.mu, &until) == 0)
                ;
        }
        if (q.head == NULL && q.stopping) {
            if (q.dropped == 0)
                break;
            /* Report drops that no later line got the chance to report. */
            link_entry(dropped_notice());
            q.dropped = 0;
        }
        struct entry *batch = q.head;
        q.head = q.tail = NULL;
        q.bytes = q.count = 0;
        pthread_mutex_unlock(&q.mu);
        write_batch(batch);
        pthread_mutex_lock(&q.mu);
    }
    pthread_mutex_unlock(&q.mu);
    return NULL;
}

/* Creates <dir> and its missing parents, like mkdir -p. Returns 0 or -1 with errno set. */
static int mkdirs(const char *dir)
{
    char path[PATH_MAX_LEN];
    size_t n = strlen(dir);
    if (n == 0 || n >= sizeof path) {
        errno = n ? ENAMETOOLONG : ENOENT;
        return -1;
    }
    memcpy(path, dir, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (path[i] != '/' && path[i] != '\0')
            continue;
        char saved = path[i];
        path[i] = '\0';
        if (mkdir(path, 0755) == -1 && errno != EEXIST)
            return -1;
        path[i] = saved;
    }
    struct stat st;
    if (stat(dir, &st) == -1)
        return -1;
    if (!S_ISDIR(st.st_mode)) {
        errno = ENOTDIR;
        return -1;
    }
    return 0;
}

int rt_log_open(const struct rt_log_conf *conf, char *err, size_t errlen)
{
    int rc = -1;
    int opened = 0;
    pthread_mutex_lock(&life_mu);
    pthread_mutex_lock(&q.mu);
    bool running = q.running;
    pthread_mutex_unlock(&q.mu);
    if (running) {
        snprintf(err, errlen, "log already open");
        goto out;
    }
    const char *dir = conf->dir && conf->dir[0] ? conf->dir : ".";
    if (mkdirs(dir) == -1) {
        snprintf(err, errlen, "cannot create log directory '%s': %s", dir, strerror(errno));
        goto out;
    }
    for (opened = 0; opened < F_COUNT; opened++) {
        struct lfile *f = &files[opened];
        *f = (struct lfile){.fd = -1};
        int n = snprintf(f->path, sizeof f->path, "%s/%s", dir, file_names[opened]);
        if (n < 0 || (size_t)n >= sizeof f->path) {
            snprintf(err, errlen, "log directory path too long: '%s'", dir);
            goto out;
        }
        if (file_open(f) == -1) {
            snprintf(err, errlen, "cannot open log file '%s': %s", f->path, strerror(errno));
            goto out;
        }
    }
    max_bytes = conf->max_bytes;
    keep = conf->keep;
    rt_log_set_level(conf->level);
    rt_log_set_console(conf->console);
    pthread_mutex_lock(&q.mu);
    q.running = true;
    q.stopping = false;
    pthread_mutex_unlock(&q.mu);
    int e = pthread_create(&writer, NULL, writer_main, NULL);
    if (e != 0) {
        pthread_mutex_lock(&q.mu);
        q.running = false;
        pthread_mutex_unlock(&q.mu);
        snprintf(err, errlen, "cannot start log writer thread: %s", strerror(e));
        goto out;
    }
    rc = 0;
out:
    if (rc != 0) {
        for (int i = 0; i < opened && i < F_COUNT; i++)
            file_close(&files[i]);
    }
    pthread_mutex_unlock(&life_mu);
    return rc;
}

void rt_log_close(void)
{
    pthread_mutex_lock(&life_mu);
    pthread_mutex_lock(&q.mu);
    bool running = q.running;
    /* From here new lines go to stderr; the writer drains what was queued before. */
    q.running = false;
    q.stopping = true;
    pthread_cond_signal(&q.cv);
    pthread_mutex_unlock(&q.mu);
    if (running) {
        pthread_join(writer, NULL);
        for (int i = 0; i < F_COUNT; i++)
            file_close(&files[i]);
    }
    pthread_mutex_unlock(&life_mu);
}
