/* The router's configuration: TOML file -> validated, immutable struct rt_config, driven by one
 * table of keys (config_keys.c) that also yields the defaults, the messages and the docs.
 *
 * Ownership: a struct rt_config is heap-allocated by the loaders below and owns every string and
 * array it points at; nothing in it points into the TOML text or the environment. Once a loader
 * returns it, it is never modified again (the router swaps whole configs on reload), so any
 * number of threads may read it; free it with rt_config_free() when the last reader is done.
 *
 * Problems are collected, not stopped at: a loader reports every one it finds in a struct rt_diag
 * as "file:line:col: message" and returns an error when at least one of them is an error. */
#ifndef RT_CONFIG_H
#define RT_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* ---- Diagnostics ------------------------------------------------------------------------- */

enum rt_diag_severity {
    RT_DIAG_ERROR = 1,
    RT_DIAG_WARNING,
};

struct rt_diag_msg {
    enum rt_diag_severity severity;
    char *file;    /* owned; NULL when the problem is not in a file (environment, flags) */
    uint32_t line; /* 1-based; 0 when the problem concerns the whole file (e.g. it is missing) */
    uint32_t col;  /* 1-based, in bytes; 0 with line 0 */
    char *msg;     /* owned; a sentence without position prefix */
};

/* A growable list of messages; zero-initialise before first use, release with rt_diag_free(). */
struct rt_diag {
    struct rt_diag_msg *items; /* owned */
    size_t len;
    size_t cap;
    size_t nerrors; /* items with severity RT_DIAG_ERROR */
};

void rt_diag_add(struct rt_diag *d, enum rt_diag_severity sev, const char *file, uint32_t line,
                 uint32_t col, const char *fmt, ...) __attribute__((format(printf, 6, 7)));
/* Writes message <i> as "file:line:col: msg" ("file: msg" without a line, "msg" without a file;
 * warnings get "warning: " before msg) into <out> (NUL-terminated, truncated to <outlen>). */
void rt_diag_format(const struct rt_diag *d, size_t i, char *out, size_t outlen);
/* Prints every message, one a line, in the order found. */
void rt_diag_print(const struct rt_diag *d, FILE *out);
void rt_diag_free(struct rt_diag *d);

/* ---- The configuration ------------------------------------------------------------------- */

/* One upstream server, from an entry of [servers].servers or a --server flag. */
struct rt_server_conf {
    char *url;       /* owned; normalised: "http://" host [":" port unless default] [base_path];
                        lower-case scheme and host, no trailing '/'. Servers are matched by it. */
    char *scheme;    /* owned; "http" (https is parsed but refused for now) */
    char *host;      /* owned; a name or an address; IPv6 without brackets */
    int port;        /* 1..65535; 80 when the URL has none */
    char *base_path; /* owned; "" or "/prefix" without trailing '/'; prepended to request paths */
    int max_concurrent_requests; /* >= 1: requests the router keeps outstanding at this server */
    char **models;   /* owned array of owned strings; empty = ask the server's /v1/models */
    size_t nmodels;
    double weight;   /* > 0; relative share for weighted policies */
    char *api_key;   /* owned; NULL = pass the client's Authorization header through */
    char *name;      /* owned; display name, defaults to "host:port" */
};

/* Fields are named exactly after their TOML table and key ("listen.port" -> listen.port).
 * Durations are seconds as double; sizes are bytes. */
struct rt_config {
    char *path;           /* owned; the file this was loaded from (NULL for a string) */
    bool file_loaded;     /* false when the file was absent and that was allowed (run) */
    bool servers_from_cli; /* the server list came from --server flags, not the file */

    struct rt_server_conf *servers; /* owned array */
    size_t nservers;

    struct { /* [config]: the seed's keys and meanings */
        double health_check_interval;
        double health_check_timeout;
        double health_check_min_success_rate; /* 0..1 */
        double health_check_max_response_time;
        int64_t health_check_window_size;
        int64_t health_check_consecutive_failures;
        bool enable_active_health_check;
        int64_t failure_threshold;
        double auto_recovery_threshold;
        double config_reload_interval; /* 0 = no periodic check (file watch and SIGHUP only) */
        double request_timeout;
        int64_t max_retries;
        double retry_delay;
    } config;
    struct {
        char *host; /* owned */
        int64_t port;
        int64_t workers; /* 0 = number of cores */
        int64_t max_connections;
    } listen;
    struct {
        char *policy; /* owned; one of rt_config_policies */
        double running_weight;
        double waiting_weight;
        char *hash_header; /* owned; may be "" (then the body's "user" only) */
        double hash_load_factor;
        double busy_backoff;
        double scrape_interval;
        double scrape_timeout;
        bool enable_metrics_scrape;
    } balancing;
    struct {
        bool enabled; /* false = the seed's "no queue": send to the lowest score anyway */
        int64_t max_length;
        double max_wait;
    } queue;
    struct {
        double connect;
        double stream_idle;
        double client_header;
        double client_body;
        double client_keepalive;
        double upstream_keepalive;
        double drain;
    } timeouts;
    struct {
        int64_t max_header_bytes;
        int64_t max_body_bytes;
        int64_t max_output_buffer;
    } limits;
    struct {
        char *dir;   /* owned */
        char *level; /* owned; "DEBUG", "INFO", "WARNING" or "ERROR" */
        bool console;
        int64_t max_file_bytes;
        int64_t keep_files;
    } logging;
    struct {
        char *token;      /* owned; "" = no authentication */
        char *host;       /* owned; "" = served on the main listener */
        int64_t port;     /* 0 = served on the main listener */
        char *state_file; /* owned; resolved: "<path>.state.json" when the file left it empty */
    } admin;
    struct {
        double refresh_interval;
    } dashboard;
};

/* ---- The key table ------------------------------------------------------------------------- */

enum rt_config_type {
    RT_CONFIG_INT = 1, /* int64_t field */
    RT_CONFIG_FLOAT,   /* double field */
    RT_CONFIG_BOOL,    /* bool field */
    RT_CONFIG_STRING,  /* char * field, owned by the config */
    RT_CONFIG_DURATION, /* double field, seconds; TOML integer or float */
    RT_CONFIG_ENUM,    /* char * field holding one of <choices> (canonical spelling) */
};

struct rt_config_key {
    const char *name;          /* "table.key" */
    enum rt_config_type type;
    double def;                /* default for numbers and bools (0/1) */
    const char *def_str;       /* default for strings and enums */
    double min, max;           /* inclusive bounds for numbers; min length for strings */
    bool min_exclusive;        /* the lower bound itself is refused (weight > 0) */
    const char *const *choices; /* NULL-terminated, for RT_CONFIG_ENUM */
    bool reloadable;           /* a reload applies it; otherwise it needs a restart */
    size_t offset;             /* offsetof(struct rt_config, ...) */
    const char *doc;           /* one line */
    const char *example;       /* a TOML value, e.g. "15" or "\"round_robin\"" */
};

/* The server entry keys use the same description, with offsets into struct rt_server_conf
 * (models, url: offset unused). */
extern const struct rt_config_key rt_config_keys[];
extern const size_t rt_config_nkeys;
extern const struct rt_config_key rt_config_server_keys[];
extern const size_t rt_config_nserver_keys;
/* The tables in document order (NULL-terminated), with a one-line description each. */
extern const char *const rt_config_tables[];
extern const char *const rt_config_table_docs[];
extern const char *const rt_config_policies[]; /* NULL-terminated */
extern const char *const rt_config_log_levels[];

/* The key named "table.key", or NULL. */
const struct rt_config_key *rt_config_key_find(const char *name);
/* docs/configuration.md as the key table describes it; caller frees with rt_free(). */
char *rt_config_doc_markdown(void);

/* ---- Loading ------------------------------------------------------------------------------- */

#define RT_CONFIG_DEFAULT_PATH "servers.toml"

/* Loads and validates <path>. On success returns 0 and sets *<out> (caller frees with
 * rt_config_free). On failure returns -1, leaves *<out> NULL, and <diags> holds every problem
 * found (a missing file is one message naming the path and the reason). Warnings may be added
 * on success too. */
int rt_config_load_file(const char *path, struct rt_config **out, struct rt_diag *diags);
/* The same for <len> bytes of <text>; messages use <name> as the file name; out->path stays NULL
 * (and admin.state_file empty unless set). */
int rt_config_load_string(const char *text, size_t len, const char *name, struct rt_config **out,
                          struct rt_diag *diags);
/* A config holding only the defaults and no servers; never fails. */
struct rt_config *rt_config_new_default(void);
/* A deep copy; the copy is the caller's to change before publishing it, then to free. */
struct rt_config *rt_config_clone(const struct rt_config *c);
void rt_config_free(struct rt_config *c);
/* Records <path> (copied) as where <c> comes from and, when admin.state_file is empty, sets it
 * to "<path>.state.json". */
void rt_config_set_path(struct rt_config *c, const char *path);

/* Sets key <name> ("table.key") of <c> from <text> as an environment variable or flag would
 * spell it (numbers in decimal, bools true/false/1/0/yes/no/on/off, any case). Returns 0, or -1
 * with a message in <err> saying what was expected and what was given. For building a config
 * that is not yet published (env and flag overrides, the admin API). */
int rt_config_set_text(struct rt_config *c, const char *name, const char *text, char *err,
                       size_t errlen);
/* The same, naming the value <label> in messages (e.g. "environment variable PORT"). */
int rt_config_set_text_as(struct rt_config *c, const char *name, const char *label,
                          const char *text, char *err, size_t errlen);
/* Edit distance (with transpositions, ASCII case-insensitive) used for "did you mean". */
size_t rt_config_edit_distance(const char *a, const char *b);

/* Parses a server spec "URL[=CAPACITY]" (the --server flag, the admin API) into <out>, which
 * the caller releases with rt_server_conf_clear(). Returns 0, or -1 with a message in <err>. */
int rt_server_conf_from_spec(const char *spec, struct rt_server_conf *out, char *err,
                             size_t errlen);
/* Parses and normalises <url> into the url/scheme/host/port/base_path fields of <out> (other
 * fields untouched). Returns 0, or -1 with a message in <err>. */
int rt_server_conf_parse_url(const char *url, struct rt_server_conf *out, char *err,
                             size_t errlen);
void rt_server_conf_clear(struct rt_server_conf *s);
/* Appends a deep copy of <s> to <c>'s servers; -1 (and <err>) if its URL is already there. */
int rt_config_add_server(struct rt_config *c, const struct rt_server_conf *s, char *err,
                         size_t errlen);

/* Adds a warning to <notes> for each key that differs between <old> and <new> but only takes
 * effect after a restart (e.g. listen.port). Returns how many. */
size_t rt_config_restart_needed(const struct rt_config *old, const struct rt_config *new_,
                                struct rt_diag *notes);

#endif
