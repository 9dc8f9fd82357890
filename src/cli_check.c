/* Placeholder for 'vllm-router check' until its module lands; replaced by the real command. */
#include <stdio.h>

#include "cli.h"

int rt_cli_check(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "vllm-router check: not available in this build yet\n");
    return 2;
}
