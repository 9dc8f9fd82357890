/* vllm-router: command dispatch only; each command lives in its own file (see cli.h). */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const struct {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *summary;
} commands[] = {
    {"run", rt_cli_run, "run the router"},
    {"check", rt_cli_check, "validate a config; print every problem as file:line:col: message"},
    {"sim", rt_cli_sim, "run simulated vLLM servers"},
    {"bench", rt_cli_bench, "load generator reporting TTFT/TPOT/ITL/E2EL"},
    {"demo", rt_cli_demo, "simulated fleet + router + dashboard on local ports, no config needed"},
};

static void usage(FILE *out)
{
    fprintf(out, "vllm-router %s: one OpenAI-compatible entry point for a fleet of vLLM servers\n\n"
                 "usage: vllm-router <command> [options]\n\ncommands:\n",
            RT_VERSION);
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(out, "  %-8s %s\n", commands[i].name, commands[i].summary);
    fprintf(out, "  %-8s %s\n\nRun 'vllm-router <command> --help' for a command's options.\n",
            "version", "print the version");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 1;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0 ||
        strcmp(cmd, "-V") == 0) {
        printf("vllm-router %s\n", RT_VERSION);
        return 0;
    }
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        usage(stdout);
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(cmd, commands[i].name) == 0)
            return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "vllm-router: unknown command '%s'\n\n", cmd);
    usage(stderr);
    return 1;
}
