/* Placeholder for 'vllm-router run' until its module lands; replaced by the real command. */
#include <stdio.h>

#include "cli.h"

int rt_cli_run(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "vllm-router run: not available in this build yet\n");
    return 2;
}
