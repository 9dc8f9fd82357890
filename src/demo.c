/* 'vllm-router demo': a small heterogeneous simulated fleet (three 'sim' child processes of
 * this same binary, with different capacities and speeds, serving two models) and the router in
 * front of it on local ports, with the dashboard when stdout is a terminal.
 *
 * Ownership: the demo starts the children and always stops them (by PID: SIGTERM, then SIGKILL
 * if one lingers) before it returns, whether the router stopped on q, on a signal or on an error;
 * each child also gets PR_SET_PDEATHSIG so a demo that is killed outright takes them along. The
 * temporary directory (the router's config file, the children's output) is removed at exit. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "cli.h"
#include "log.h"

#define NSIMS 3

/* One simulated server of the demo fleet. */
struct sim {
    const char *name;
    const char *model;
    int seqs;          /* max-num-seqs, and the router's capacity for it */
    const char *ttft_ms;
    const char *itl_ms;
    const char *kv_tokens;
    pid_t pid;         /* 0 = not running */
    int port;
};

static struct sim fleet[NSIMS] = {
    {"small-a", "demo-small", 4, "120", "30", "1024", 0, 0},
    {"small-b", "demo-small", 8, "60", "15", "2048", 0, 0},
    {"large", "demo-large", 16, "250", "45", "4096", 0, 0},
};

struct demo_opts {
    int port;      /* the router's */
    int sim_port;  /* the first simulator's; the others follow */
    bool console;
    bool help;
};

static void usage(FILE *out)
{
    fprintf(out,
            "usage: vllm-router demo [--port N] [--sim-port N] [--console]\n"
            "\n"
            "Starts three simulated servers of different sizes serving two models (demo-small on\n"
            "two of them, demo-large on the third) and the router in front of them, all on\n"
            "127.0.0.1, with the dashboard when stdout is a terminal. q or Ctrl-C stops\n"
            "everything it started.\n"
            "\n"
            "  --port N       the router's port (default 8888)\n"
            "  --sim-port N   the first simulator's port; the others use N+1 and N+2\n"
            "                 (default 8001)\n"
            "  --console      log to the console instead of showing the dashboard\n"
            "  -h, --help     this text\n");
}

static int parse_port(const char *flag, const char *s, int *out, char *err, size_t errlen)
{
    char *end;
    errno = 0;
    long v = s ? strtol(s, &end, 10) : 0;
    if (!s || errno || end == s || *end || v < 1 || v > 65535) {
        snprintf(err, errlen, "%s needs a port number between 1 and 65535, not '%s'", flag,
                 s ? s : "");
        return -1;
    }
    *out = (int)v;
    return 0;
}

static int parse_opts(int argc, char **argv, struct demo_opts *o, char *err, size_t errlen)
{
    *o = (struct demo_opts){.port = 8888, .sim_port = 8001};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *eq = strchr(a, '=');
        size_t nlen = eq ? (size_t)(eq - a) : strlen(a);
        bool is_port = nlen == 6 && strncmp(a, "--port", 6) == 0;
        bool is_sim = nlen == 10 && strncmp(a, "--sim-port", 10) == 0;
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            o->help = true;
        } else if (strcmp(a, "--console") == 0) {
            o->console = true;
        } else if (is_port || is_sim) {
            const char *v = eq ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
            if (parse_port(is_port ? "--port" : "--sim-port", v,
                           is_port ? &o->port : &o->sim_port, err, errlen) != 0)
                return -1;
        } else {
            snprintf(err, errlen, "unknown argument '%s'", a);
            return -1;
        }
    }
    if (o->sim_port > 65535 - (NSIMS - 1)) {
        snprintf(err, errlen, "--sim-port %d leaves no room for %d simulators", o->sim_port,
                 NSIMS);
        return -1;
    }
    for (int i = 0; i < NSIMS; i++) {
        if (o->sim_port + i == o->port) {
            snprintf(err, errlen, "--port %d is also a simulator's port (--sim-port %d..%d)",
                     o->port, o->sim_port, o->sim_port + NSIMS - 1);
            return -1;
        }
    }
    return 0;
}

/* ---- children ---- */

/* Starts simulator <s> as a child running this binary; its output goes to <logpath>. */
static int start_sim(struct sim *s, const char *logpath, char *err, size_t errlen)
{
    char port[16], seqs[16];
    snprintf(port, sizeof port, "%d", s->port);
    snprintf(seqs, sizeof seqs, "%d", s->seqs);
    char *args[] = {
        "vllm-router", "sim", "--host", "127.0.0.1", "--port", port, "--model", (char *)s->model,
        "--max-num-seqs", seqs, "--ttft-ms", (char *)s->ttft_ms, "--itl-ms", (char *)s->itl_ms,
        "--itl-batch-factor", "0.05", "--kv-cache-tokens", (char *)s->kv_tokens,
        "--output-len", "48", NULL,
    };
    pid_t parent = getpid();
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        snprintf(err, errlen, "cannot start a simulator: fork: %s", strerror(errno));
        return -1;
    }
    if (pid == 0) {
        /* Safety net: die with the demo even if it is killed outright. */
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() != parent)
            _exit(1);
        /* Own process group: Ctrl-C reaches only the demo, which drains the router first
         * and then stops us. */
        setpgid(0, 0);
        int in = open("/dev/null", O_RDONLY);
        int out = open(logpath, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (in >= 0)
            dup2(in, STDIN_FILENO);
        if (out >= 0) {
            dup2(out, STDOUT_FILENO);
            dup2(out, STDERR_FILENO);
        }
        signal(SIGPIPE, SIG_DFL);
        execv("/proc/self/exe", args);
        dprintf(STDERR_FILENO, "cannot run /proc/self/exe: %s\n", strerror(errno));
        _exit(127);
    }
    s->pid = pid;
    return 0;
}

/* Stops every child still running: SIGTERM, then SIGKILL after a few seconds. */
static void stop_sims(void)
{
    for (int i = 0; i < NSIMS; i++)
        if (fleet[i].pid > 0)
            kill(fleet[i].pid, SIGTERM);
    for (int tries = 0; tries < 500; tries++) { /* 5 s */
        bool left = false;
        for (int i = 0; i < NSIMS; i++) {
            if (fleet[i].pid <= 0)
                continue;
            pid_t r = waitpid(fleet[i].pid, NULL, WNOHANG);
            if (r == fleet[i].pid || (r < 0 && errno == ECHILD))
                fleet[i].pid = 0;
            else
                left = true;
        }
        if (!left)
            return;
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    for (int i = 0; i < NSIMS; i++) {
        if (fleet[i].pid > 0) {
            kill(fleet[i].pid, SIGKILL);
            waitpid(fleet[i].pid, NULL, 0);
            fleet[i].pid = 0;
        }
    }
}

static bool port_open(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return false;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bool ok = connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
    close(fd);
    return ok;
}

/* Prints the last lines a child wrote, to say why it stopped. */
static void print_tail(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    char buf[2048];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    if (n > 0)
        fprintf(stderr, "%s%s", buf, buf[n - 1] == '\n' ? "" : "\n");
}

/* Waits until every simulator accepts connections. Returns 0, or -1 with a message when one
 * exited or none answered in time. */
static int wait_sims(char logs[NSIMS][PATH_MAX], char *err, size_t errlen)
{
    for (int tries = 0; tries < 1000; tries++) { /* 10 s */
        int up = 0;
        for (int i = 0; i < NSIMS; i++) {
            int status;
            if (waitpid(fleet[i].pid, &status, WNOHANG) == fleet[i].pid) {
                fleet[i].pid = 0;
                print_tail(logs[i]);
                snprintf(err, errlen, "the simulator on port %d stopped (%s %d)", fleet[i].port,
                         WIFEXITED(status) ? "exit code" : "signal",
                         WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
                return -1;
            }
            up += port_open(fleet[i].port);
        }
        if (up == NSIMS)
            return 0;
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    snprintf(err, errlen, "the simulators did not start listening within 10 s");
    return -1;
}

/* ---- the router ---- */

static int write_config(const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        snprintf(err, errlen, "cannot write %.400s: %s", path, strerror(errno));
        return -1;
    }
    fprintf(f, "# The demo fleet, written by 'vllm-router demo'.\n[servers]\nservers = [\n");
    for (int i = 0; i < NSIMS; i++)
        fprintf(f,
                "  { url = \"http://127.0.0.1:%d\", name = \"%s\", max_concurrent_requests = %d,"
                " models = [\"%s\"] },\n",
                fleet[i].port, fleet[i].name, fleet[i].seqs, fleet[i].model);
    fprintf(f, "]\n\n[config]\nhealth_check_interval = 2\n");
    int bad = ferror(f);
    if (fclose(f) != 0 || bad) {
        snprintf(err, errlen, "cannot write %.400s", path);
        return -1;
    }
    return 0;
}

static void print_intro(const struct demo_opts *o)
{
    printf("vllm-router demo: a simulated fleet of %d servers and the router on 127.0.0.1\n\n",
           NSIMS);
    for (int i = 0; i < NSIMS; i++)
        printf("  %-8s http://127.0.0.1:%-5d  model %-10s  %2d slots  TTFT %s ms  ITL %s ms"
               "  (pid %ld)\n",
               fleet[i].name, fleet[i].port, fleet[i].model, fleet[i].seqs, fleet[i].ttft_ms,
               fleet[i].itl_ms, (long)fleet[i].pid);
    printf("\nrouter: http://127.0.0.1:%d\n\nSend a request:\n"
           "  curl http://127.0.0.1:%d/v1/chat/completions -H 'Content-Type: application/json' \\\n"
           "    -d '{\"model\": \"demo-small\", \"messages\": [{\"role\": \"user\", "
           "\"content\": \"Hello\"}]}'\n"
           "or with the OpenAI SDK:\n"
           "  OpenAI(base_url=\"http://127.0.0.1:%d/v1\", api_key=\"unused\")\n"
           "Models: demo-small, demo-large. Stop with q in the dashboard or Ctrl-C.\n\n",
           o->port, o->port, o->port);
    fflush(stdout);
}

/* Repeats the hint in the log once the router runs, so it shows among the dashboard's recent
 * events (the intro printed before is hidden while the dashboard owns the screen). */
static uv_timer_t hint_timer;
static int hint_port;

static void on_hint(uv_timer_t *t)
{
    RT_INFO("demo: curl http://127.0.0.1:%d/v1/chat/completions -H 'Content-Type: "
            "application/json' -d '{\"model\": \"demo-small\", \"messages\": [{\"role\": "
            "\"user\", \"content\": \"Hello\"}]}'",
            hint_port);
    RT_INFO("demo: OpenAI SDK base_url=\"http://127.0.0.1:%d/v1\"; models demo-small, demo-large",
            hint_port);
    uv_close((uv_handle_t *)t, NULL);
}

static void make_tmpdir(char *out, size_t n)
{
    const char *base = getenv("TMPDIR");
    if (!base || !*base)
        base = "/tmp";
    snprintf(out, n, "%s/vllm-router-demo-XXXXXX", base);
}

int rt_cli_demo(int argc, char **argv)
{
    struct demo_opts o;
    char err[512];
    int rc = 2;
    if (parse_opts(argc, argv, &o, err, sizeof err) != 0) {
        fprintf(stderr, "vllm-router demo: %s\nRun 'vllm-router demo --help' for usage.\n", err);
        return 1;
    }
    if (o.help) {
        usage(stdout);
        return 0;
    }
    char dir[PATH_MAX], config[PATH_MAX + 32];
    char logs[NSIMS][PATH_MAX];
    make_tmpdir(dir, sizeof dir);
    if (!mkdtemp(dir)) {
        fprintf(stderr, "vllm-router demo: cannot create a temporary directory: %s\n",
                strerror(errno));
        return 2;
    }
    snprintf(config, sizeof config, "%s/demo.toml", dir);
    for (int i = 0; i < NSIMS; i++) {
        fleet[i].port = o.sim_port + i;
        fleet[i].pid = 0;
        snprintf(logs[i], sizeof logs[i], "%.*s/sim-%d.log", PATH_MAX - 32, dir, i);
    }
    if (write_config(config, err, sizeof err) != 0)
        goto fail;
    for (int i = 0; i < NSIMS; i++) {
        if (port_open(fleet[i].port)) {
            snprintf(err, sizeof err, "port %d is already taken (choose others with --sim-port)",
                     fleet[i].port);
            goto fail;
        }
        if (start_sim(&fleet[i], logs[i], err, sizeof err) != 0)
            goto fail;
    }
    if (wait_sims(logs, err, sizeof err) != 0)
        goto fail;
    print_intro(&o);

    char port[16];
    snprintf(port, sizeof port, "%d", o.port);
    char *run_argv[] = {"run", "--config", config, "--host", "127.0.0.1", "--port", port,
                        o.console ? "--console" : NULL, NULL};
    int run_argc = o.console ? 8 : 7;
    hint_port = o.port;
    uv_timer_init(uv_default_loop(), &hint_timer);
    uv_timer_start(&hint_timer, on_hint, 0, 0);
    rc = rt_cli_run(run_argc, run_argv);
    if (!uv_is_closing((uv_handle_t *)&hint_timer)) {
        /* The router stopped before its loop ran (an error): close the hint timer here. */
        uv_close((uv_handle_t *)&hint_timer, NULL);
        uv_run(uv_default_loop(), UV_RUN_NOWAIT);
        uv_loop_close(uv_default_loop());
    }
    err[0] = '\0';
fail:
    stop_sims();
    for (int i = 0; i < NSIMS; i++)
        unlink(logs[i]);
    unlink(config);
    rmdir(dir);
    if (err[0])
        fprintf(stderr, "vllm-router demo: %s\n", err);
    else if (rc == 0)
        printf("vllm-router demo: stopped the router and the %d simulators\n", NSIMS);
    return rc;
}
