/* Logging: three files under a directory (human, errors only, structured JSON lines), rotated by
 * size, written by a background thread so no event loop ever waits on the disk; optionally a copy
 * to stderr (console mode).
 *
 * Thread-safe: any thread may log once rt_log_open() returned. Before rt_log_open() (and after
 * rt_log_close()) messages go to stderr only. */
#ifndef RT_LOG_H
#define RT_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum rt_log_level {
    RT_LOG_DEBUG = 0,
    RT_LOG_INFO,
    RT_LOG_WARNING,
    RT_LOG_ERROR,
};

struct rt_log_conf {
    const char *dir;       /* created if missing; files vllm-router.log, vllm-router-error.log,
                              vllm-router-structured.log */
    enum rt_log_level level; /* messages below it are dropped (access records are always kept) */
    bool console;          /* also write human lines to stderr */
    uint64_t max_bytes;    /* rotate a file once it passes this size */
    unsigned keep;         /* rotated files kept per log: name.1 .. name.<keep> */
};

/* One access record per proxied request; strings may be NULL (written as null). */
struct rt_access_record {
    const char *request_id;
    const char *method;
    const char *endpoint;   /* path */
    const char *model;
    const char *server;     /* URL of the server that answered, or NULL */
    int status;
    uint64_t bytes_in;      /* request bytes from the client */
    uint64_t bytes_out;     /* response bytes to the client */
    double ttfb_ms;         /* time to first byte to the client; < 0 when none was sent */
    double total_ms;
    unsigned retries;
    int64_t prompt_tokens;     /* -1 when unknown */
    int64_t completion_tokens; /* -1 when unknown */
    const char *error;      /* short reason when the router made the response, else NULL */
};

/* Opens the files (creating <conf->dir>) and starts the writer thread. Returns 0, or -1 with a
 * message in <err>. */
int rt_log_open(const struct rt_log_conf *conf, char *err, size_t errlen);
/* Flushes everything queued, stops the writer, closes the files. Idempotent. */
void rt_log_close(void);
/* Changes the level or console flag at run time (config reload). */
void rt_log_set_level(enum rt_log_level level);
void rt_log_set_console(bool console);
/* Parses "DEBUG", "INFO", "WARNING" (or "WARN"), "ERROR", any case. Returns 0 or -1. */
int rt_log_level_parse(const char *s, enum rt_log_level *out);
const char *rt_log_level_name(enum rt_log_level level);
/* Caps the bytes waiting for the writer (default 64 MiB; 0 restores it). Lines that do not fit
 * are dropped and counted; a line "N log lines dropped" follows once there is room again. */
void rt_log_set_queue_limit(size_t bytes);
/* Lines dropped because the queue was full, since the process started. */
uint64_t rt_log_dropped(void);

/* Receives each message that passes the level (not access records), as the formatted text
 * without timestamp or level (NUL-terminated; may hold any bytes but '\0'). Called on the
 * logging thread with a lock held: it must be quick, copy what it keeps, and not log. */
typedef void (*rt_log_tap_fn)(enum rt_log_level level, const char *msg, void *arg);
/* Installs <fn> (NULL removes it). Once it returns, the previous tap is no longer running and
 * is never called again, so its <arg> may be freed. */
void rt_log_set_tap(rt_log_tap_fn fn, void *arg);

void rt_log(enum rt_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void rt_log_access(const struct rt_access_record *rec);

#define RT_DEBUG(...) rt_log(RT_LOG_DEBUG, __VA_ARGS__)
#define RT_INFO(...)  rt_log(RT_LOG_INFO, __VA_ARGS__)
#define RT_WARN(...)  rt_log(RT_LOG_WARNING, __VA_ARGS__)
#define RT_ERROR(...) rt_log(RT_LOG_ERROR, __VA_ARGS__)

#endif
