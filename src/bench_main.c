/* Placeholder for 'vllm-router bench' until its module lands; replaced by the real command. */
#include <stdio.h>

#include "cli.h"

int rt_cli_bench(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "vllm-router bench: not available in this build yet\n");
    return 2;
}
