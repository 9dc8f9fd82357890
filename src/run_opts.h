/* The options of 'vllm-router run' and how they combine with the environment and the config file:
 * command-line flag > environment variable > config file > built-in default.
 *
 * Ownership: struct rt_run_opts points into the argv it was parsed from (which must outlive it,
 * as the process's argv does) and owns only its <servers> array; release it with
 * rt_run_opts_free(). The router keeps it for the whole run so every reload applies the same
 * overrides. */
#ifndef RT_RUN_OPTS_H
#define RT_RUN_OPTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "config.h"

struct rt_run_opts {
    const char *config_path; /* --config FILE, or NULL (then CONFIG_PATH, then servers.toml) */
    const char *host;        /* --host ADDR, or NULL; the values below are checked by */
    const char *port;        /* rt_config_build(), which reports them with the flag's name */
    const char *workers;
    const char *policy;
    const char *log_level;
    bool console; /* --console */
    bool reload;  /* --reload: accepted for the seed's users; reload is always on */
    bool help;    /* --help / -h: print rt_run_opts_usage() and exit 0 */
    const char **servers; /* owned array of pointers into argv: --server URL[=CAPACITY] */
    size_t nservers;
    bool require_file; /* not a flag: set by 'check' so that a missing file is an error */
};

/* Parses the arguments of 'run' (<argv>[0] is the command name). Accepts "--flag value" and
 * "--flag=value". Returns 0 (also for --help, with opts->help set), or -1 with a message in
 * <err> for an unknown flag, a missing value or a stray argument. */
int rt_run_opts_parse(int argc, char **argv, struct rt_run_opts *opts, char *err, size_t errlen);
void rt_run_opts_free(struct rt_run_opts *opts);
/* Every flag and environment variable of 'run', for --help. */
void rt_run_opts_usage(FILE *out);

/* Builds the configuration: defaults, then the file (path from --config, else $CONFIG_PATH,
 * else servers.toml), then the environment (<environ_like>: NULL-terminated "NAME=value"
 * strings, may be NULL), then the flags; --server flags replace the file's servers. A missing
 * file is allowed (empty server list, out->file_loaded false) when the path is the default or
 * --server flags were given, unless opts->require_file. On success returns 0 and sets *<out>
 * (caller frees). On failure returns -1 with every problem in <diags>. */
int rt_config_build(const struct rt_run_opts *opts, char **environ_like, struct rt_config **out,
                    struct rt_diag *diags);
/* The same for hot reload: re-reads the file and applies the same environment and flags, so a
 * reload keeps --port and friends. Unlike start-up, a file that was loaded before and is now
 * missing is an error (the caller keeps <prev>); warnings in <diags> name keys that changed but
 * need a restart. */
int rt_config_reload(const struct rt_config *prev, const struct rt_run_opts *opts,
                     char **environ_like, struct rt_config **out, struct rt_diag *diags);

#endif
