/* Placeholder for 'vllm-router sim' until its module lands; replaced by the real command. */
#include <stdio.h>

#include "cli.h"

int rt_cli_sim(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "vllm-router sim: not available in this build yet\n");
    return 2;
}
