/* Placeholder for 'vllm-router demo' until its module lands; replaced by the real command. */
#include <stdio.h>

#include "cli.h"

int rt_cli_demo(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "vllm-router demo: not available in this build yet\n");
    return 2;
}
