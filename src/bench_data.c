/* Deterministic benchmark prompts, request bodies and Poisson gaps (see bench_data.h). */
#include "bench_data.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "alloc.h"

uint64_t rt_bench_rand(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

double rt_bench_rand_unit(uint64_t *state)
{
    return (double)(rt_bench_rand(state) >> 11) * (1.0 / 9007199254740992.0);
}

double rt_bench_exp_gap(uint64_t *state, double rate)
{
    /* 1 - u is in (0, 1], so the log is finite. */
    return -log(1.0 - rt_bench_rand_unit(state)) / rate;
}

/* A generator state for one stream of numbers (<what> separates the uses of one index). */
static uint64_t stream_seed(uint64_t seed, uint64_t what, uint64_t index)
{
    uint64_t s = seed ^ (what * 0xd1b54a32d192ed03ULL);
    (void)rt_bench_rand(&s);
    s ^= index * 0x8cb92ba72f3d8dd7ULL;
    (void)rt_bench_rand(&s);
    return s;
}

/* Appends <ntok> pseudo-words of 4 bytes ("abc "). */
static void words(uint64_t *rng, unsigned ntok, struct rt_buf *out)
{
    if (ntok == 0)
        return;
    (void)rt_buf_reserve(out, (size_t)ntok * RT_BENCH_BYTES_PER_TOKEN, SIZE_MAX);
    char *p = out->base + out->len;
    for (unsigned i = 0; i < ntok; i++) {
        uint64_t r = rt_bench_rand(rng);
        p[0] = (char)('a' + (r & 0xffff) % 26);
        p[1] = (char)('a' + ((r >> 16) & 0xffff) % 26);
        p[2] = (char)('a' + ((r >> 32) & 0xffff) % 26);
        p[3] = ' ';
        p += 4;
    }
    out->len += (size_t)ntok * RT_BENCH_BYTES_PER_TOKEN;
}

/* A length uniform in [len*(1-r), len*(1+r)], at least 1. */
static unsigned vary(uint64_t *rng, unsigned len, double r)
{
    if (r <= 0)
        return len ? len : 1;
    double lo = floor((double)len * (1.0 - r)), hi = ceil((double)len * (1.0 + r));
    if (lo < 1)
        lo = 1;
    if (hi < lo)
        hi = lo;
    unsigned span = (unsigned)(hi - lo) + 1;
    return (unsigned)lo + (unsigned)(rt_bench_rand(rng) % span);
}

int rt_bench_data_init(struct rt_bench_data *d, const struct rt_bench_data_conf *conf, char *err,
                       size_t errlen)
{
    memset(d, 0, sizeof(*d));
    if (!(conf->range_ratio >= 0 && conf->range_ratio < 1)) {
        snprintf(err, errlen, "--range-ratio must be in [0, 1)");
        return -1;
    }
    if (conf->output_len < 1) {
        snprintf(err, errlen, "--output-len must be at least 1");
        return -1;
    }
    if (conf->input_len > 1000000 || conf->output_len > 1000000 || conf->prefix_len > 1000000) {
        snprintf(err, errlen, "lengths are limited to 1000000 tokens");
        return -1;
    }
    if (conf->kind == RT_BENCH_DS_RANDOM && conf->input_len < 1) {
        snprintf(err, errlen, "--input-len must be at least 1");
        return -1;
    }
    if (conf->kind == RT_BENCH_DS_SHARED_PREFIX &&
        (conf->prefix_groups < 1 || conf->prefix_groups > 100000 || conf->prefix_len < 1)) {
        snprintf(err, errlen, "--prefix-groups must be in [1, 100000] and --prefix-len at least 1");
        return -1;
    }
    d->conf = *conf;
    if (conf->kind == RT_BENCH_DS_SHARED_PREFIX) {
        d->prefixes = rt_calloc(conf->prefix_groups, sizeof(*d->prefixes));
        for (unsigned g = 0; g < conf->prefix_groups; g++) {
            struct rt_buf b = {0};
            uint64_t rng = stream_seed(conf->seed, 1, g);
            words(&rng, conf->prefix_len, &b);
            (void)rt_buf_append(&b, "", 1, SIZE_MAX);
            d->prefixes[g] = b.base; /* the buffer's bytes start at offset 0 */
        }
    }
    return 0;
}

void rt_bench_data_free(struct rt_bench_data *d)
{
    if (d->prefixes) {
        for (unsigned g = 0; g < d->conf.prefix_groups; g++)
            rt_free(d->prefixes[g]);
        rt_free(d->prefixes);
    }
    memset(d, 0, sizeof(*d));
}

/* The lengths of request <index> and, with <suffix>, its own (non-shared) text. */
static void describe(const struct rt_bench_data *d, uint64_t index, struct rt_bench_prompt *p,
                     struct rt_buf *suffix)
{
    const struct rt_bench_data_conf *c = &d->conf;
    uint64_t rng = stream_seed(c->seed, 2, index);
    memset(p, 0, sizeof(*p));
    unsigned in = c->input_len ? vary(&rng, c->input_len, c->range_ratio) : 0;
    p->output_len = vary(&rng, c->output_len, c->range_ratio);
    if (c->kind == RT_BENCH_DS_SHARED_PREFIX) {
        /* Round robin over the groups so requests of one group are spread over the run. */
        p->group = (unsigned)(index % c->prefix_groups);
        p->prefix_len = c->prefix_len;
    }
    p->input_len = p->prefix_len + in;
    if (suffix)
        words(&rng, in, suffix);
}

void rt_bench_data_prompt(const struct rt_bench_data *d, uint64_t index, struct rt_bench_prompt *p,
                          struct rt_buf *text)
{
    if (text && d->conf.kind == RT_BENCH_DS_SHARED_PREFIX) {
        struct rt_bench_prompt tmp;
        describe(d, index, &tmp, NULL);
        (void)rt_buf_append(text, d->prefixes[tmp.group],
                            (size_t)d->conf.prefix_len * RT_BENCH_BYTES_PER_TOKEN, SIZE_MAX);
    }
    describe(d, index, p, text);
}

/* Appends <s> as a JSON string literal. */
static void json_str(struct rt_buf *out, const char *s)
{
    rt_buf_printf(out, "\"");
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            rt_buf_printf(out, "\\%c", *p);
        else if (*p < 0x20)
            rt_buf_printf(out, "\\u%04x", *p);
        else
            (void)rt_buf_append(out, p, 1, SIZE_MAX);
    }
    rt_buf_printf(out, "\"");
}

void rt_bench_data_body(const struct rt_bench_data *d, const struct rt_bench_body_conf *bc,
                        uint64_t index, struct rt_buf *out)
{
    struct rt_bench_prompt p;
    bool shared = d->conf.kind == RT_BENCH_DS_SHARED_PREFIX;
    rt_buf_printf(out, "{\"model\":");
    json_str(out, bc->model ? bc->model : "");
    /* The prompt text is [a-z ] only, so it goes in without escaping. */
    if (bc->endpoint == RT_BENCH_EP_CHAT) {
        rt_buf_printf(out, ",\"messages\":[");
        if (shared) {
            describe(d, index, &p, NULL);
            rt_buf_printf(out, "{\"role\":\"system\",\"content\":\"");
            (void)rt_buf_append(out, d->prefixes[p.group],
                                (size_t)d->conf.prefix_len * RT_BENCH_BYTES_PER_TOKEN, SIZE_MAX);
            rt_buf_printf(out, "\"},");
        }
        rt_buf_printf(out, "{\"role\":\"user\",\"content\":\"");
        describe(d, index, &p, out);
        rt_buf_printf(out, "\"}]");
    } else {
        rt_buf_printf(out, ",\"prompt\":\"");
        rt_bench_data_prompt(d, index, &p, out);
        rt_buf_printf(out, "\"");
    }
    rt_buf_printf(out, ",\"max_tokens\":%u", p.output_len);
    if (bc->ignore_eos)
        rt_buf_printf(out, ",\"ignore_eos\":true");
    if (bc->stream)
        rt_buf_printf(out, ",\"stream\":true,\"stream_options\":{\"include_usage\":true}");
    else
        rt_buf_printf(out, ",\"stream\":false");
    rt_buf_printf(out, "}");
}
