/* The admin API: servers added, removed and drained at run time, kept as an overlay over the
 * configuration file, persisted to a state file, and served as JSON over HTTP.
 *
 * The overlay is three lists: servers added (full entries), URLs removed, URLs drained. It
 * lives in this module under one mutex, so any thread may call anything below. Every change
 * is written to the state file (temporary file in the same directory, fsync, rename) before it
 * is answered; a change that cannot be written is undone and answered 500.
 *
 * How it meets the configuration: each freshly loaded config goes through rt_admin_apply()
 * before it is used. The file's servers are the base; removed URLs leave, added servers join,
 * and when the file and the overlay both list a URL the file's entry wins (the overlay's entry
 * is then dropped: the server now comes and goes with the file). A removal of a URL the file no
 * longer lists is dropped too, so re-adding it to the file later brings it back. Drained URLs
 * stay configured; the fleet builder asks rt_admin_is_drained() for each. docs/admin.md has the
 * full story.
 *
 * State file format (version 1), written with mode 0600 since entries may hold API keys:
 *   {"version": 1,
 *    "added":   [{"url": "http://h:8001", "name": "h:8001", "max_concurrent_requests": 4,
 *                 "weight": 1.0, "models": ["m"], "api_key": "sk-..."}],
 *    "removed": ["http://h:8002"],
 *    "drained": ["http://h:8003"]} */
#ifndef RT_ADMIN_H
#define RT_ADMIN_H

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

#include "config.h"
#include "http_server.h"

/* Errors of the operations below: the negated HTTP status they are answered with. */
enum rt_admin_error {
    RT_ADMIN_EINVAL = -400,    /* bad input (message says what) */
    RT_ADMIN_ENOTFOUND = -404, /* no configured server has that URL */
    RT_ADMIN_ECONFLICT = -409, /* a server with that URL is already configured */
    RT_ADMIN_EIO = -500,       /* the state file could not be written; nothing changed */
};

/* Loads <state_file> (NULL or "" = keep the overlay in memory only) when it exists. A file that
 * is not a valid state file is logged as an error and renamed to "<state_file>.bad", and the
 * overlay starts empty (returns 0). Returns -1 with a message in <err> when the file exists
 * but cannot be read (it would be overwritten by the next change). Call once at start, after
 * the log is open; again only after rt_admin_shutdown(). */
int rt_admin_init(const char *state_file, char *err, size_t errlen);
/* Forgets the overlay, the hook and the remembered configuration; closes no listener. */
void rt_admin_shutdown(void);

/* Applies the overlay to <cfg>, a configuration just loaded from the file (or flags) and not yet
 * published: remembers its servers as the base, drops overlay entries the file made redundant
 * (persisting that), removes removed URLs, appends added servers whose URL the file does not
 * list, and takes admin.token as the token (unless rt_admin_set_token overrode it). Returns 0;
 * -1 with <err> only if <cfg> is unusable. */
int rt_admin_apply(struct rt_config *cfg, char *err, size_t errlen);
/* A copy of <cur> (the configuration in use) with its servers rebuilt from the base remembered
 * by the last rt_admin_apply() and the current overlay, for applying an admin change without
 * re-reading the file. The caller owns the result (rt_config_free). */
struct rt_config *rt_admin_rebuild(const struct rt_config *cur);
/* Whether <url> (normalised, as in struct rt_server_conf) was drained through the API. */
bool rt_admin_is_drained(const char *url);

/* <fn>(<arg>) is called after every successful change and after POST /admin/reload, from the
 * thread that served the request, without any lock held. It should only wake the control thread
 * (uv_async_send), which then calls rt_admin_take_reload_request() and either reloads the file
 * (true) or publishes rt_admin_rebuild() of the configuration in use (false). NULL removes it. */
void rt_admin_set_change_hook(void (*fn)(void *arg), void *arg);
/* True once after POST /admin/reload asked for the file to be re-read. */
bool rt_admin_take_reload_request(void);
/* Overrides the bearer token (copied); NULL goes back to admin.token of the applied config,
 * "" means no authentication. */
void rt_admin_set_token(const char *token);

/* ---- Operations (what the HTTP endpoints do; 0 or an enum rt_admin_error, message in err) -- */

/* Parses a server entry from JSON text: {"url": required, "max_concurrent_requests",
 * "models", "weight", "api_key", "name"}, with the config file's bounds and defaults. <out> is
 * the caller's to rt_server_conf_clear() on success; untouched-and-clear on failure. */
int rt_admin_server_parse(const char *json, size_t len, struct rt_server_conf *out, char *err,
                          size_t errlen);
/* Adds <s> (validated). Re-adding a file server that was removed through the API undoes the
 * removal (the file's entry is used). */
int rt_admin_add(const struct rt_server_conf *s, char *err, size_t errlen);
/* Removes the server <url> (any spelling rt_server_conf_parse_url accepts); it takes no new
 * request from now on and finishes those it has. */
int rt_admin_remove(const char *url, char *err, size_t errlen);
/* Drains (<drained> true) or undrains server <url>; takes effect in the fleet at once. */
int rt_admin_drain(const char *url, bool drained, char *err, size_t errlen);

/* {"servers": [...], "removed": [...], "state_file": ...} as GET /admin/servers answers it;
 * caller frees with rt_free(). */
char *rt_admin_servers_json(void);
/* The state file's JSON for the current overlay; caller frees with rt_free(). */
char *rt_admin_state_json(void);

/* ---- HTTP ---------------------------------------------------------------------------------- */

/* Serves <ex> when its path is /admin or under /admin/ and returns true (the exchange is then
 * ended); returns false, touching nothing, for any other path — and for admin paths too while
 * a separate admin listener runs (then the main listener does not serve them). Any thread. */
bool rt_admin_route(struct rt_http_exchange *ex);
/* Starts a listener on <host>:<port> of <loop> serving only the admin paths (404 for others).
 * Returns 0, or -1 with a message in <err>. One at a time; loop thread only. */
int rt_admin_listen(uv_loop_t *loop, const char *host, int port, char *err, size_t errlen);
/* The bound port of the admin listener, 0 when none. */
int rt_admin_listen_port(void);
/* Closes the admin listener (idempotent). Its loop's thread only. */
void rt_admin_listen_close(void);

#endif
