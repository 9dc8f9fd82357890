/* The subcommands of the vllm-router binary; each takes the arguments after its name
 * (argv[0] is the command name) and returns the process exit code (0 ok, 1 usage or config
 * error, 2 runtime failure). */
#ifndef RT_CLI_H
#define RT_CLI_H

int rt_cli_run(int argc, char **argv);   /* cli_run.c */
int rt_cli_check(int argc, char **argv); /* cli_check.c */
int rt_cli_sim(int argc, char **argv);   /* sim_main.c */
int rt_cli_bench(int argc, char **argv); /* bench_main.c */
int rt_cli_demo(int argc, char **argv);  /* demo.c */

#endif
