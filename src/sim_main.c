/* 'vllm-router sim': parses the flags and runs one or several simulated vLLM servers on one
 * libuv loop until SIGINT or SIGTERM. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "alloc.h"
#include "cli.h"
#include "sim_server.h"

#define MAX_INSTANCES 256
#define MAX_MODELS    32

static const char usage_text[] =
    "usage: vllm-router sim [options]\n"
    "\n"
    "Runs simulated vLLM servers (OpenAI-compatible API, /health, /metrics) on one event loop.\n"
    "\n"
    "Instances:\n"
    "  --host ADDR               address to listen on (default 127.0.0.1)\n"
    "  --port N                  first port (default 8000)\n"
    "  --count N                 instances on ports N, N+1, ... (default 1)\n"
    "  --ports LIST              explicit ports with optional per-port max-num-seqs,\n"
    "                            e.g. 8001:4,8002:8,8003 (overrides --port/--count)\n"
    "  --model NAME              served model name; repeat for several (default sim-model);\n"
    "                            the first labels /metrics\n"
    "\n"
    "Engine model (all times zero = answer as fast as possible):\n"
    "  --max-num-seqs N          running slots per instance (default 256)\n"
    "  --max-waiting N           bound of the waiting queue, 429 past it (default 0 = unbounded)\n"
    "  --max-model-len N         context length in tokens (default 32768)\n"
    "  --ttft-ms MS              base time to first token (default 0)\n"
    "  --prefill-us-per-token US prefill cost per prompt token not in the prefix cache (default 0)\n"
    "  --itl-ms MS               inter-token latency with one running request (default 0)\n"
    "  --itl-batch-factor F      ITL = itl-ms * (1 + F * (running - 1)) (default 0)\n"
    "  --kv-cache-tokens N       KV-cache size in tokens (default 262144)\n"
    "  --prefix-block-tokens N   tokens per prefix-cache block (default 16)\n"
    "  --output-len N            natural answer length in tokens, capped by max_tokens\n"
    "                            (default 16)\n"
    "  --embedding-dim N         values per embedding vector (default 32)\n"
    "  --seed N                  seed of output text, ids and random faults (default 0)\n"
    "  --v0-metrics              /metrics with vLLM V0 names (vllm:gpu_cache_usage_perc, ...)\n"
    "\n"
    "Faults (also settable at run time with POST /sim/faults):\n"
    "  --fault-health-fail       /health answers 503\n"
    "  --fault-500               every inference request answers 500\n"
    "  --fault-busy 429|503      every inference request is refused as busy\n"
    "  --fault-hang              accept requests and never answer\n"
    "  --fault-drop-after N      close the connection after N SSE chunks\n"
    "  --fault-slow-health-ms MS delay /health answers\n"
    "  --fault-garbled-metrics   /metrics returns an unparseable page\n"
    "  --fault-fail-rate P       answer 500 with probability P (0.0-1.0)\n"
    "\n"
    "Control endpoints: GET /sim/state, GET|POST /sim/faults, GET|POST /sim/config.\n"
    "  -h, --help                this text\n";

enum {
    O_HOST = 256, O_PORT, O_COUNT, O_PORTS, O_MODEL, O_SEQS, O_WAITING, O_CTX, O_TTFT, O_PREFILL,
    O_ITL, O_ITLF, O_KV, O_BLOCK, O_OUTLEN, O_EMBDIM, O_SEED, O_V0, O_F_HEALTH, O_F_500, O_F_BUSY,
    O_F_HANG, O_F_DROP, O_F_SLOWH, O_F_GARBLED, O_F_RATE,
};

static const struct option options[] = {
    {"host", required_argument, NULL, O_HOST},
    {"port", required_argument, NULL, O_PORT},
    {"count", required_argument, NULL, O_COUNT},
    {"ports", required_argument, NULL, O_PORTS},
    {"model", required_argument, NULL, O_MODEL},
    {"max-num-seqs", required_argument, NULL, O_SEQS},
    {"max-waiting", required_argument, NULL, O_WAITING},
    {"max-model-len", required_argument, NULL, O_CTX},
    {"ttft-ms", required_argument, NULL, O_TTFT},
    {"prefill-us-per-token", required_argument, NULL, O_PREFILL},
    {"itl-ms", required_argument, NULL, O_ITL},
    {"itl-batch-factor", required_argument, NULL, O_ITLF},
    {"kv-cache-tokens", required_argument, NULL, O_KV},
    {"prefix-block-tokens", required_argument, NULL, O_BLOCK},
    {"output-len", required_argument, NULL, O_OUTLEN},
    {"embedding-dim", required_argument, NULL, O_EMBDIM},
    {"seed", required_argument, NULL, O_SEED},
    {"v0-metrics", no_argument, NULL, O_V0},
    {"fault-health-fail", no_argument, NULL, O_F_HEALTH},
    {"fault-500", no_argument, NULL, O_F_500},
    {"fault-busy", required_argument, NULL, O_F_BUSY},
    {"fault-hang", no_argument, NULL, O_F_HANG},
    {"fault-drop-after", required_argument, NULL, O_F_DROP},
    {"fault-slow-health-ms", required_argument, NULL, O_F_SLOWH},
    {"fault-garbled-metrics", no_argument, NULL, O_F_GARBLED},
    {"fault-fail-rate", required_argument, NULL, O_F_RATE},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

static int parse_u64(const char *flag, const char *s, unsigned long long max, unsigned long long *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-' || v > max) {
        fprintf(stderr, "vllm-router sim: --%s: expected an integer from 0 to %llu, got '%s'\n",
                flag, max, s);
        return -1;
    }
    *out = v;
    return 0;
}

static int parse_num(const char *flag, const char *s, double max, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v) || v < 0 || v > max) {
        fprintf(stderr, "vllm-router sim: --%s: expected a number from 0 to %g, got '%s'\n", flag,
                max, s);
        return -1;
    }
    *out = v;
    return 0;
}

struct instance_spec {
    int port;
    unsigned seqs; /* 0 = the --max-num-seqs value */
};

/* "8001:4,8002:8,8003" -> specs. */
static int parse_ports(const char *s, struct instance_spec *specs, size_t *n)
{
    *n = 0;
    const char *p = s;
    while (*p) {
        if (*n >= MAX_INSTANCES)
            goto bad;
        char *end;
        errno = 0;
        long port = strtol(p, &end, 10);
        if (errno || end == p || port < 1 || port > 65535)
            goto bad;
        specs[*n].port = (int)port;
        specs[*n].seqs = 0;
        p = end;
        if (*p == ':') {
            long seqs = strtol(p + 1, &end, 10);
            if (end == p + 1 || seqs < 1 || seqs > 1000000)
                goto bad;
            specs[*n].seqs = (unsigned)seqs;
            p = end;
        }
        (*n)++;
        if (*p == ',')
            p++;
        else if (*p)
            goto bad;
    }
    if (*n == 0)
        goto bad;
    return 0;
bad:
    fprintf(stderr, "vllm-router sim: --ports: expected PORT[:MAX_NUM_SEQS],... got '%s'\n", s);
    return -1;
}

struct run {
    uv_loop_t loop;
    uv_signal_t sigint, sigterm;
    struct rt_sim_server *servers[MAX_INSTANCES];
    size_t n;
};

static void on_signal(uv_signal_t *h, int signum)
{
    struct run *r = h->data;
    (void)signum;
    for (size_t i = 0; i < r->n; i++)
        rt_sim_server_close(r->servers[i]);
    r->n = 0;
    uv_close((uv_handle_t *)&r->sigint, NULL);
    uv_close((uv_handle_t *)&r->sigterm, NULL);
}

int rt_cli_sim(int argc, char **argv)
{
    static struct run run; /* large; one per process */
    const char *models[MAX_MODELS];
    size_t nmodels = 0;
    struct instance_spec specs[MAX_INSTANCES];
    size_t nspecs = 0;
    unsigned long long port = 8000, count = 1, u = 0;
    double d = 0;
    bool have_ports = false;
    struct rt_sim_conf conf = {.host = "127.0.0.1"};
    conf.engine.max_num_seqs = 256;
    conf.engine.max_model_len = 32768;
    conf.engine.kv_cache_tokens = 262144;
    conf.engine.block_tokens = 16;
    conf.output_len = 16;
    conf.embedding_dim = 32;
    rt_sim_faults_init(&conf.faults);

    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "h", options, NULL)) != -1) {
        int rc = 0;
        switch (c) {
        case 'h': fputs(usage_text, stdout); return 0;
        case O_HOST: conf.host = optarg; break;
        case O_PORT: rc = parse_u64("port", optarg, 65535, &port); break;
        case O_COUNT:
            rc = parse_u64("count", optarg, MAX_INSTANCES, &count);
            if (rc == 0 && count == 0) {
                fprintf(stderr, "vllm-router sim: --count must be at least 1\n");
                rc = -1;
            }
            break;
        case O_PORTS:
            rc = parse_ports(optarg, specs, &nspecs);
            have_ports = true;
            break;
        case O_MODEL:
            if (nmodels >= MAX_MODELS || !optarg[0]) {
                fprintf(stderr, "vllm-router sim: --model: empty name or more than %d models\n",
                        MAX_MODELS);
                rc = -1;
            } else {
                models[nmodels++] = optarg;
            }
            break;
        case O_SEQS:
            rc = parse_u64("max-num-seqs", optarg, 1000000, &u);
            if (rc == 0 && u == 0) {
                fprintf(stderr, "vllm-router sim: --max-num-seqs must be at least 1\n");
                rc = -1;
            }
            conf.engine.max_num_seqs = (unsigned)u;
            break;
        case O_WAITING:
            rc = parse_u64("max-waiting", optarg, UINT_MAX, &u);
            conf.engine.max_waiting = (unsigned)u;
            break;
        case O_CTX:
            rc = parse_u64("max-model-len", optarg, 100000000, &u);
            conf.engine.max_model_len = (unsigned)(u ? u : 1);
            break;
        case O_TTFT:
            rc = parse_num("ttft-ms", optarg, 3600e3, &d);
            conf.engine.ttft_base_ns = (uint64_t)(d * 1e6);
            break;
        case O_PREFILL:
            rc = parse_num("prefill-us-per-token", optarg, 1e6, &d);
            conf.engine.prefill_ns_per_token = (uint64_t)(d * 1e3);
            break;
        case O_ITL:
            rc = parse_num("itl-ms", optarg, 60e3, &d);
            conf.engine.itl_ns = (uint64_t)(d * 1e6);
            break;
        case O_ITLF:
            rc = parse_num("itl-batch-factor", optarg, 1000, &d);
            conf.engine.itl_batch_factor = d;
            break;
        case O_KV:
            rc = parse_u64("kv-cache-tokens", optarg, 1ull << 40, &u);
            conf.engine.kv_cache_tokens = u ? u : 1;
            break;
        case O_BLOCK:
            rc = parse_u64("prefix-block-tokens", optarg, 1 << 20, &u);
            conf.engine.block_tokens = (unsigned)(u ? u : 1);
            break;
        case O_OUTLEN:
            rc = parse_u64("output-len", optarg, 1 << 24, &u);
            conf.output_len = (unsigned)(u ? u : 1);
            break;
        case O_EMBDIM:
            rc = parse_u64("embedding-dim", optarg, 4096, &u);
            conf.embedding_dim = (unsigned)(u ? u : 1);
            break;
        case O_SEED: rc = parse_u64("seed", optarg, ULLONG_MAX, &u); conf.seed = u; break;
        case O_V0: conf.v0_metrics = true; break;
        case O_F_HEALTH: conf.faults.health_fail = true; break;
        case O_F_500: conf.faults.fail_500 = true; break;
        case O_F_BUSY:
            if (strcmp(optarg, "429") == 0 || strcmp(optarg, "503") == 0) {
                conf.faults.busy = atoi(optarg); /* validated above */
            } else {
                fprintf(stderr, "vllm-router sim: --fault-busy: expected 429 or 503, got '%s'\n",
                        optarg);
                rc = -1;
            }
            break;
        case O_F_HANG: conf.faults.hang = true; break;
        case O_F_DROP:
            rc = parse_u64("fault-drop-after", optarg, 1000000000, &u);
            conf.faults.drop_after = (int)u;
            break;
        case O_F_SLOWH:
            rc = parse_u64("fault-slow-health-ms", optarg, 3600000, &u);
            conf.faults.slow_health_ms = (unsigned)u;
            break;
        case O_F_GARBLED: conf.faults.garbled_metrics = true; break;
        case O_F_RATE: rc = parse_num("fault-fail-rate", optarg, 1.0, &conf.faults.fail_rate); break;
        case ':':
            fprintf(stderr, "vllm-router sim: option '%s' needs a value\n", argv[optind - 1]);
            return 1;
        default:
            fprintf(stderr, "vllm-router sim: unknown option '%s'\n\n%s", argv[optind - 1],
                    usage_text);
            return 1;
        }
        if (rc != 0)
            return 1;
    }
    if (optind < argc) {
        fprintf(stderr, "vllm-router sim: unexpected argument '%s'\n", argv[optind]);
        return 1;
    }
    if (nmodels == 0)
        models[nmodels++] = "sim-model";
    if (!have_ports) {
        if (port + count - 1 > 65535 || (port == 0 && count > 1)) {
            fprintf(stderr, "vllm-router sim: ports %llu..%llu out of range\n", port,
                    port + count - 1);
            return 1;
        }
        for (unsigned long long i = 0; i < count; i++)
            specs[nspecs++] = (struct instance_spec){(int)(port + i), 0};
    }
    conf.models = models;
    conf.nmodels = nmodels;

    signal(SIGPIPE, SIG_IGN);
    uv_loop_init(&run.loop);
    run.n = 0;
    int rc = 0;
    for (size_t i = 0; i < nspecs; i++) {
        struct rt_sim_conf ic = conf;
        char err[256];
        ic.port = specs[i].port;
        if (specs[i].seqs)
            ic.engine.max_num_seqs = specs[i].seqs;
        if (rt_sim_server_start(&run.loop, &ic, &run.servers[run.n], err, sizeof err) != 0) {
            fprintf(stderr, "vllm-router sim: %s\n", err);
            rc = 2;
            break;
        }
        fprintf(stderr, "vllm-router sim: serving %s on http://%s:%d (max-num-seqs %u)\n",
                models[0], conf.host, rt_sim_server_port(run.servers[run.n]),
                ic.engine.max_num_seqs);
        run.n++;
    }
    uv_signal_init(&run.loop, &run.sigint);
    uv_signal_init(&run.loop, &run.sigterm);
    run.sigint.data = run.sigterm.data = &run;
    if (rc == 0) {
        uv_signal_start(&run.sigint, on_signal, SIGINT);
        uv_signal_start(&run.sigterm, on_signal, SIGTERM);
        uv_run(&run.loop, UV_RUN_DEFAULT);
    } else {
        on_signal(&run.sigint, 0);
        uv_run(&run.loop, UV_RUN_DEFAULT);
    }
    if (uv_loop_close(&run.loop) != 0 && rc == 0)
        rc = 2;
    return rc;
}
