/* The fullscreen terminal dashboard of 'run': one row per server (health, circuit, load bar,
 * running, waiting, KV cache, requests per second, failures, health-check latency), a summary line
 * and the most recent log events, redrawn about once a second; 'q' asks for a graceful shutdown.
 *
 * Threads: everything runs on the loop given to rt_dashboard_start (the control thread). It only
 * reads the fleet's atomics and immutable views, so it never slows the workers; log lines reach
 * it through the log tap (rt_log_set_tap), copied into a small ring under a lock.
 *
 * Terminal: it owns stdin and stdout between start and stop (ncurses on the alternate screen);
 * the caller turns console logging off meanwhile (rt_log_set_console). rt_dashboard_start sets
 * LC_CTYPE from the environment (for UTF-8 marks and bars), so call it before other threads
 * start formatting text. */
#ifndef RT_DASHBOARD_H
#define RT_DASHBOARD_H

#include <stddef.h>
#include <uv.h>

struct rt_dashboard_conf {
    const char *listen;          /* "host:port" for the title; copied */
    double refresh_s;            /* redraw period; <= 0 means 1 s. A reload's
                                    dashboard.refresh_interval replaces it */
    size_t (*queued)(void *arg); /* requests waiting in the admission queue; may be NULL */
    void (*on_quit)(void *arg);  /* the user pressed q (called once); may be NULL */
    void *arg;                   /* passed to both callbacks; must outlive the dashboard */
};

struct rt_dashboard;

/* Takes over the terminal and starts drawing on <loop>. Returns NULL (terminal untouched) when
 * stdout is not a terminal or the terminal type is unknown; the caller then logs to the
 * console instead. */
struct rt_dashboard *rt_dashboard_start(uv_loop_t *loop, const struct rt_dashboard_conf *conf);
/* Restores the terminal and closes the dashboard's handles; the memory goes in their close
 * callbacks, so the loop must run once more (as it does while shutting down). NULL is fine. */
void rt_dashboard_stop(struct rt_dashboard *d);

#endif
