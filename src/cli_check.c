/* 'vllm-router check': validates a config file (and the environment overrides) and prints every
 * problem as file:line:col: message, or a one-line summary. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "config.h"
#include "run_opts.h"

extern char **environ;

static void usage(FILE *out)
{
    fprintf(out,
            "usage: vllm-router check [--config FILE] [--help]\n\n"
            "Validates a config file the way 'run' would load it (including the environment\n"
            "variables HOST, PORT, LOG_LEVEL, LOG_TO_CONSOLE, HEALTH_CHECK_INTERVAL,\n"
            "CONFIG_RELOAD_INTERVAL and REQUEST_TIMEOUT) and prints every problem as\n"
            "file:line:col: message on stderr.\n\n"
            "  --config FILE   the file to check (default: $CONFIG_PATH, else servers.toml)\n"
            "  --help, -h      show this help\n\n"
            "exit codes: 0 the config is valid, 1 it is not (or bad usage).\n");
}

int rt_cli_check(int argc, char **argv)
{
    struct rt_run_opts opts = {.require_file = true};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        }
        if (strcmp(a, "--config") == 0 && i + 1 < argc) {
            opts.config_path = argv[++i];
        } else if (strncmp(a, "--config=", 9) == 0 && a[9] != '\0') {
            opts.config_path = a + 9;
        } else {
            if (strcmp(a, "--config") == 0)
                fprintf(stderr, "vllm-router check: option '--config' needs a value\n\n");
            else
                fprintf(stderr, "vllm-router check: unexpected argument '%s'\n\n", a);
            usage(stderr);
            return 1;
        }
    }
    struct rt_diag diags = {0};
    struct rt_config *c = NULL;
    int rc = rt_config_build(&opts, environ, &c, &diags);
    rt_diag_print(&diags, stderr);
    if (rc != 0) {
        fprintf(stderr, "%zu problem%s found\n", diags.nerrors, diags.nerrors == 1 ? "" : "s");
        rt_diag_free(&diags);
        return 1;
    }
    printf("%s: OK, %zu server%s, policy %s\n", c->path, c->nservers, c->nservers == 1 ? "" : "s",
           c->balancing.policy);
    rt_config_free(c);
    rt_diag_free(&diags);
    return 0;
}
