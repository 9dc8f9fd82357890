/* Benchmark datasets and arrivals: deterministic prompts (random, or groups sharing a long
 * prefix) with their input/output lengths, the request bodies sent for them, and Poisson
 * inter-arrival gaps, all driven by a seeded generator.
 *
 * Prompt text is lowercase three-letter pseudo-words each followed by one space: 4 bytes per
 * intended token, so a server estimating tokens as bytes/4 (the simulator's rule and a common
 * rule of thumb) sees the requested length. Real tokenizers split such text into more or fewer
 * tokens; the report counts prompt tokens from the server's usage chunk when there is one.
 *
 * Request <i> of a run is a pure function of (seed, dataset settings, i): no state advances
 * between prompts, so any request can be rebuilt without the ones before it. Pure: no I/O. */
#ifndef RT_BENCH_DATA_H
#define RT_BENCH_DATA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#define RT_BENCH_BYTES_PER_TOKEN 4

enum rt_bench_dataset {
    RT_BENCH_DS_RANDOM = 0,
    RT_BENCH_DS_SHARED_PREFIX,
};

enum rt_bench_endpoint {
    RT_BENCH_EP_CHAT = 0,   /* /v1/chat/completions: messages, delta.content */
    RT_BENCH_EP_COMPLETIONS, /* /v1/completions: prompt, choices[].text */
};

struct rt_bench_data_conf {
    enum rt_bench_dataset kind;
    unsigned input_len;     /* tokens (for shared-prefix: of the per-request suffix) */
    unsigned output_len;    /* tokens asked for with max_tokens */
    double range_ratio;     /* lengths uniform in [len*(1-r), len*(1+r)], r in [0, 1) */
    unsigned prefix_groups; /* shared-prefix: number of distinct prefixes */
    unsigned prefix_len;    /* shared-prefix: tokens of each prefix */
    uint64_t seed;
};

/* A dataset; owns its prefix texts. */
struct rt_bench_data {
    struct rt_bench_data_conf conf;
    char **prefixes; /* owned: prefix_groups texts of prefix_len * 4 bytes (shared-prefix) */
};

/* One request's prompt. <text> points into the caller's buffer or the dataset. */
struct rt_bench_prompt {
    unsigned input_len;  /* intended prompt tokens (prefix + suffix) */
    unsigned output_len; /* max_tokens */
    unsigned group;      /* shared-prefix group, 0 for random */
    unsigned prefix_len; /* tokens of the shared prefix (0 for random) */
};

/* Checks <conf> and prepares the dataset. Returns 0 or -1 with a message. */
int rt_bench_data_init(struct rt_bench_data *d, const struct rt_bench_data_conf *conf, char *err,
                       size_t errlen);
void rt_bench_data_free(struct rt_bench_data *d);

/* Describes request <index> into *<p> and, when <text> is non-NULL, appends its prompt text
 * (prefix then suffix for shared-prefix) to <text>. */
void rt_bench_data_prompt(const struct rt_bench_data *d, uint64_t index, struct rt_bench_prompt *p,
                          struct rt_buf *text);

/* Request body options that are the same for every request of a run. */
struct rt_bench_body_conf {
    enum rt_bench_endpoint endpoint;
    const char *model; /* NUL-terminated; escaped as needed */
    bool stream;       /* also asks for stream_options.include_usage */
    bool ignore_eos;   /* "ignore_eos": true, as vllm bench sends, so output_len tokens come */
};

/* Appends the JSON body of request <index> to <out>. For chat, the shared-prefix prefix goes in
 * a system message and the suffix in the user message; for completions they are one prompt. */
void rt_bench_data_body(const struct rt_bench_data *d, const struct rt_bench_body_conf *bc,
                        uint64_t index, struct rt_buf *out);

/* A small seeded generator (splitmix64): state advances by one call. */
uint64_t rt_bench_rand(uint64_t *state);
/* Uniform in [0, 1). */
double rt_bench_rand_unit(uint64_t *state);
/* An exponentially distributed gap (seconds) for Poisson arrivals at <rate> per second. */
double rt_bench_exp_gap(uint64_t *state, double rate);

#endif
