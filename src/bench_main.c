/* 'vllm-router bench': the command line of the load generator (flags, checks, report). */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "bench_run.h"
#include "bench_stats.h"
#include "cli.h"

#define MAX_HEADERS 64

static void usage(FILE *out)
{
    fprintf(out,
"usage: vllm-router bench [options]\n"
"\n"
"Load generator for OpenAI-compatible servers and routers, measuring what 'vllm bench serve'\n"
"measures: successful/failed requests, duration, request and token throughput, and mean,\n"
"median and percentiles of TTFT, TPOT, ITL and E2EL. Failures are counted by kind.\n"
"\n"
"Target:\n"
"  --base-url URL         server or router, http://host[:port][/prefix]\n"
"                         (default http://127.0.0.1:8000)\n"
"  --endpoint E           chat (POST /v1/chat/completions, the default) or completions\n"
"                         (POST /v1/completions)\n"
"  --model NAME           model to ask for (default: the first id of GET /v1/models)\n"
"  --header 'K: V'        extra request header; repeatable\n"
"  --no-stream            ask for whole responses (TTFT is then the end-to-end latency and\n"
"                         there are no ITL samples); streaming with usage is the default\n"
"  --no-ignore-eos        do not send \"ignore_eos\": true (sent by default, as vllm bench\n"
"                         does, so every request generates max_tokens tokens)\n"
"  --timeout S            seconds allowed to connect, to the first response byte, and\n"
"                         between two response bytes (default 600)\n"
"\n"
"Load:\n"
"  --concurrency N        requests in flight at most; without --request-rate, a closed loop\n"
"                         keeping N in flight (default 8 when neither is given)\n"
"  --request-rate R       Poisson arrivals at R requests/s (exponential gaps from --seed);\n"
"                         with --concurrency, arrivals beyond N wait their turn\n"
"  --num-requests N       requests to send (default 1000, or no count bound with --duration)\n"
"  --duration S           stop sending after S seconds; requests still running then get\n"
"                         --grace seconds and are counted failed as \"cancelled at end\"\n"
"  --grace S              see --duration (default 10)\n"
"  --warmup N             send N requests first (closed loop) and leave them out\n"
"\n"
"Dataset:\n"
"  --dataset D            random (default) or shared-prefix\n"
"  --input-len N          prompt tokens (default 1024); for shared-prefix, tokens after the\n"
"                         shared prefix (default 128 there)\n"
"  --output-len N         max_tokens (default 128)\n"
"  --range-ratio R        input and output lengths uniform in [len*(1-R), len*(1+R)],\n"
"                         0 <= R < 1 (default 0)\n"
"  --prefix-groups N      shared-prefix: number of distinct shared prefixes (default 8)\n"
"  --prefix-len N         shared-prefix: tokens of each prefix (default 1024)\n"
"  --seed N               seed of the prompts and the arrivals (default 0)\n"
"                         Prompts are 4-byte pseudo-words (\"abc \"), so a server estimating\n"
"                         tokens as bytes/4 sees the lengths asked for.\n"
"\n"
"Report:\n"
"  --percentiles LIST     percentiles to report besides mean and median (default 99),\n"
"                         e.g. 50,90,99\n"
"  --json                 print the report as JSON (keys in docs/bench.md) instead of text\n"
"  -h, --help             this help\n"
"\n"
"Exit status: 0 when the run completed (failed requests are in the report), 1 on a usage\n"
"error, 2 when the run could not start (server unreachable, no model).\n");
}

enum {
    OPT_BASE_URL = 256, OPT_ENDPOINT, OPT_MODEL, OPT_HEADER, OPT_NO_STREAM, OPT_NO_IGNORE_EOS,
    OPT_TIMEOUT, OPT_CONCURRENCY, OPT_RATE, OPT_NUM, OPT_DURATION, OPT_GRACE, OPT_WARMUP,
    OPT_DATASET, OPT_INPUT_LEN, OPT_OUTPUT_LEN, OPT_RANGE_RATIO, OPT_PREFIX_GROUPS,
    OPT_PREFIX_LEN, OPT_SEED, OPT_PERCENTILES, OPT_JSON,
};

static const struct option options[] = {
    {"base-url", required_argument, NULL, OPT_BASE_URL},
    {"endpoint", required_argument, NULL, OPT_ENDPOINT},
    {"model", required_argument, NULL, OPT_MODEL},
    {"header", required_argument, NULL, OPT_HEADER},
    {"no-stream", no_argument, NULL, OPT_NO_STREAM},
    {"no-ignore-eos", no_argument, NULL, OPT_NO_IGNORE_EOS},
    {"timeout", required_argument, NULL, OPT_TIMEOUT},
    {"concurrency", required_argument, NULL, OPT_CONCURRENCY},
    {"request-rate", required_argument, NULL, OPT_RATE},
    {"num-requests", required_argument, NULL, OPT_NUM},
    {"duration", required_argument, NULL, OPT_DURATION},
    {"grace", required_argument, NULL, OPT_GRACE},
    {"warmup", required_argument, NULL, OPT_WARMUP},
    {"dataset", required_argument, NULL, OPT_DATASET},
    {"input-len", required_argument, NULL, OPT_INPUT_LEN},
    {"output-len", required_argument, NULL, OPT_OUTPUT_LEN},
    {"range-ratio", required_argument, NULL, OPT_RANGE_RATIO},
    {"prefix-groups", required_argument, NULL, OPT_PREFIX_GROUPS},
    {"prefix-len", required_argument, NULL, OPT_PREFIX_LEN},
    {"seed", required_argument, NULL, OPT_SEED},
    {"percentiles", required_argument, NULL, OPT_PERCENTILES},
    {"json", no_argument, NULL, OPT_JSON},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

/* Parses an unsigned integer in [lo, hi]; prints the error. */
static int uint_arg(const char *flag, const char *s, uint64_t lo, uint64_t hi, uint64_t *out)
{
    char *end;
    errno = 0;
    if (*s == '-' || *s == '\0')
        goto bad;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || v < lo || v > hi)
        goto bad;
    *out = v;
    return 0;
bad:
    fprintf(stderr, "vllm-router bench: %s wants an integer in [%llu, %llu], not '%s'\n", flag,
            (unsigned long long)lo, (unsigned long long)hi, s);
    return -1;
}

/* Parses a finite number in [lo, hi]. */
static int num_arg(const char *flag, const char *s, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || errno || *end || !isfinite(v) || v < lo || v > hi) {
        fprintf(stderr, "vllm-router bench: %s wants a number in [%g, %g], not '%s'\n", flag, lo,
                hi, s);
        return -1;
    }
    *out = v;
    return 0;
}

/* A header line "Name: value": a token name, no CR/LF anywhere. */
static bool header_ok(const char *h)
{
    const char *colon = strchr(h, ':');
    if (!colon || colon == h)
        return false;
    for (const char *p = h; p < colon; p++)
        if (*p <= ' ' || *p >= 0x7f || strchr("\"(),/:;<=>?@[\\]{}", *p))
            return false;
    for (const char *p = colon; *p; p++)
        if (*p == '\r' || *p == '\n' || *p == '\0')
            return false;
    return true;
}

int rt_cli_bench(int argc, char **argv)
{
    int ret = 1;
    struct rt_bench_conf conf;
    memset(&conf, 0, sizeof conf);
    const char *base_url = "http://127.0.0.1:8000";
    const char *endpoint = "chat";
    const char *dataset = "random";
    const char *headers[MAX_HEADERS];
    size_t nheaders = 0;
    double pcts[RT_BENCH_MAX_PCTS] = {99};
    size_t npcts = 1;
    bool json = false, have_num = false, have_input = false;
    uint64_t u;
    char *fetched_model = NULL;
    struct rt_bench_stats stats;
    rt_bench_stats_init(&stats);
    char err[512];

    conf.stream = true;
    conf.ignore_eos = true;
    conf.timeout_s = 600;
    conf.grace_s = 10;
    conf.num_requests = 1000;
    conf.data.input_len = 1024;
    conf.data.output_len = 128;
    conf.data.prefix_groups = 8;
    conf.data.prefix_len = 1024;

    optind = 1;
    opterr = 1;
    int c;
    while ((c = getopt_long(argc, argv, "h", options, NULL)) != -1) {
        switch (c) {
        case 'h':
            usage(stdout);
            ret = 0;
            goto out;
        case OPT_BASE_URL:
            base_url = optarg;
            break;
        case OPT_ENDPOINT:
            endpoint = optarg;
            break;
        case OPT_MODEL:
            conf.model = optarg;
            break;
        case OPT_HEADER:
            if (!header_ok(optarg)) {
                fprintf(stderr, "vllm-router bench: --header wants 'Name: value', not '%s'\n",
                        optarg);
                goto out;
            }
            if (nheaders == MAX_HEADERS) {
                fprintf(stderr, "vllm-router bench: at most %d --header\n", MAX_HEADERS);
                goto out;
            }
            headers[nheaders++] = optarg;
            break;
        case OPT_NO_STREAM:
            conf.stream = false;
            break;
        case OPT_NO_IGNORE_EOS:
            conf.ignore_eos = false;
            break;
        case OPT_TIMEOUT:
            if (num_arg("--timeout", optarg, 0.001, 86400, &conf.timeout_s))
                goto out;
            break;
        case OPT_CONCURRENCY:
            if (uint_arg("--concurrency", optarg, 1, 100000, &u))
                goto out;
            conf.concurrency = (unsigned)u;
            break;
        case OPT_RATE:
            if (num_arg("--request-rate", optarg, 0.001, 1e7, &conf.request_rate))
                goto out;
            break;
        case OPT_NUM:
            if (uint_arg("--num-requests", optarg, 1, UINT64_C(1) << 40, &conf.num_requests))
                goto out;
            have_num = true;
            break;
        case OPT_DURATION:
            if (num_arg("--duration", optarg, 0.001, 1e7, &conf.duration_s))
                goto out;
            break;
        case OPT_GRACE:
            if (num_arg("--grace", optarg, 0, 86400, &conf.grace_s))
                goto out;
            break;
        case OPT_WARMUP:
            if (uint_arg("--warmup", optarg, 0, 1000000, &u))
                goto out;
            conf.warmup = (unsigned)u;
            break;
        case OPT_DATASET:
            dataset = optarg;
            break;
        case OPT_INPUT_LEN:
            if (uint_arg("--input-len", optarg, 1, 1000000, &u))
                goto out;
            conf.data.input_len = (unsigned)u;
            have_input = true;
            break;
        case OPT_OUTPUT_LEN:
            if (uint_arg("--output-len", optarg, 1, 1000000, &u))
                goto out;
            conf.data.output_len = (unsigned)u;
            break;
        case OPT_RANGE_RATIO:
            if (num_arg("--range-ratio", optarg, 0, 0.999999, &conf.data.range_ratio))
                goto out;
            break;
        case OPT_PREFIX_GROUPS:
            if (uint_arg("--prefix-groups", optarg, 1, 100000, &u))
                goto out;
            conf.data.prefix_groups = (unsigned)u;
            break;
        case OPT_PREFIX_LEN:
            if (uint_arg("--prefix-len", optarg, 1, 1000000, &u))
                goto out;
            conf.data.prefix_len = (unsigned)u;
            break;
        case OPT_SEED:
            if (uint_arg("--seed", optarg, 0, UINT64_MAX, &conf.seed))
                goto out;
            break;
        case OPT_PERCENTILES:
            if (rt_bench_parse_percentiles(optarg, pcts, &npcts, err, sizeof err)) {
                fprintf(stderr, "vllm-router bench: --percentiles: %s\n", err);
                goto out;
            }
            break;
        case OPT_JSON:
            json = true;
            break;
        default:
            fprintf(stderr, "Run 'vllm-router bench --help' for the options.\n");
            goto out;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "vllm-router bench: unexpected argument '%s'\n", argv[optind]);
        goto out;
    }

    if (rt_bench_parse_url(base_url, &conf, err, sizeof err)) {
        fprintf(stderr, "vllm-router bench: --base-url %s\n", err);
        goto out;
    }
    if (strcmp(endpoint, "chat") == 0) {
        conf.endpoint = RT_BENCH_EP_CHAT;
        snprintf(conf.path, sizeof conf.path, "%s/v1/chat/completions", conf.prefix);
    } else if (strcmp(endpoint, "completions") == 0) {
        conf.endpoint = RT_BENCH_EP_COMPLETIONS;
        snprintf(conf.path, sizeof conf.path, "%s/v1/completions", conf.prefix);
    } else {
        fprintf(stderr, "vllm-router bench: --endpoint is chat or completions, not '%s'\n",
                endpoint);
        goto out;
    }
    if (strcmp(dataset, "random") == 0) {
        conf.data.kind = RT_BENCH_DS_RANDOM;
    } else if (strcmp(dataset, "shared-prefix") == 0) {
        conf.data.kind = RT_BENCH_DS_SHARED_PREFIX;
        if (!have_input)
            conf.data.input_len = 128;
    } else {
        fprintf(stderr, "vllm-router bench: --dataset is random or shared-prefix, not '%s'\n",
                dataset);
        goto out;
    }
    if (conf.duration_s > 0 && !have_num)
        conf.num_requests = 0;
    if (conf.request_rate == 0 && conf.concurrency == 0)
        conf.concurrency = 8;
    conf.headers = headers;
    conf.nheaders = nheaders;
    conf.data.seed = conf.seed;
    {
        /* Check the dataset settings before touching the network. */
        struct rt_bench_data d;
        if (rt_bench_data_init(&d, &conf.data, err, sizeof err)) {
            fprintf(stderr, "vllm-router bench: %s\n", err);
            goto out;
        }
        rt_bench_data_free(&d);
    }

    ret = 2;
    if (!conf.model) {
        if (rt_bench_fetch_model(&conf, &fetched_model, err, sizeof err)) {
            fprintf(stderr, "vllm-router bench: %s\n", err);
            goto out;
        }
        conf.model = fetched_model;
    }
    fprintf(stderr, "vllm-router bench: %s%s, model %s, %s, ", base_url, conf.path + strlen(conf.prefix),
            conf.model, dataset);
    if (conf.request_rate > 0)
        fprintf(stderr, "%.6g req/s Poisson", conf.request_rate);
    else
        fprintf(stderr, "closed loop");
    if (conf.concurrency)
        fprintf(stderr, ", concurrency %u", conf.concurrency);
    if (conf.num_requests)
        fprintf(stderr, ", %llu requests", (unsigned long long)conf.num_requests);
    if (conf.duration_s > 0)
        fprintf(stderr, ", %.6g s", conf.duration_s);
    fprintf(stderr, "\n");

    double duration;
    if (rt_bench_run(&conf, &stats, &duration, err, sizeof err)) {
        fprintf(stderr, "vllm-router bench: %s\n", err);
        goto out;
    }
    struct rt_bench_summary sum;
    (void)rt_bench_stats_summarize(&stats, duration, pcts, npcts, &sum);
    struct rt_bench_report_info info = {.base_url = base_url, .endpoint = conf.path,
                                        .model = conf.model, .dataset = dataset,
                                        .max_concurrency = conf.concurrency,
                                        .request_rate = conf.request_rate, .stream = conf.stream};
    struct rt_buf report = {0};
    if (json)
        rt_bench_report_json(&sum, &stats, &info, &report);
    else
        rt_bench_report_text(&sum, &stats, &info, &report);
    fwrite(rt_buf_data(&report), 1, rt_buf_size(&report), stdout);
    fflush(stdout);
    rt_buf_free(&report);
    ret = 0;
out:
    rt_free(fetched_model);
    rt_bench_stats_free(&stats);
    return ret;
}
