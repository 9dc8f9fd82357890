/* Load signals of one backend, extracted from its /metrics page (vLLM V1, vLLM V0 or SGLang).
 *
 * Ownership: rt_load_signals_parse() borrows <page> only for the call; the result is plain
 * values, copied out. Nothing here keeps state between calls; it is safe from any thread.
 *
 * What is read (every other series on the page is parsed, checked, and ignored):
 *   running  vllm:num_requests_running | sglang:num_running_reqs   summed over all series
 *   waiting  vllm:num_requests_waiting | sglang:num_queue_reqs     summed over all series
 *   kv cache vllm:kv_cache_usage_perc, else vllm:gpu_cache_usage_perc (deprecated name, used
 *            only when the new one is absent) | sglang:token_usage  mean over series, x100
 *   max fds  process_max_fds                                       one series at most
 * SGLang names are taken with either the "sglang:" or the "sglang_" prefix. Series are summed
 * over the `engine` (data-parallel rank) and `model_name` labels. The KV figure is a MEAN over
 * series, because each engine reports the fraction of its own cache: with equal engines the mean
 * is the server's fraction, and a sum could pass 100 %.
 *
 * Never trusted: any parse error fails the whole page; so does a page with none of the three
 * load metrics, a running/waiting/max-fds value that is NaN, negative or infinite, a KV fraction
 * outside [0, 1] or NaN, the same series twice, vLLM and SGLang load metrics on one page, or more
 * than RT_LOAD_SIGNALS_MAX_SERIES series of one metric. Nothing is clamped. */
#ifndef RT_LOAD_SIGNALS_H
#define RT_LOAD_SIGNALS_H

#include <stddef.h>

#define RT_LOAD_SIGNALS_MAX_SERIES 1024 /* series of one load metric on one page */

/* Which server software the page came from. */
enum rt_load_signals_flavour {
    RT_LOAD_SIGNALS_UNKNOWN = 0,
    RT_LOAD_SIGNALS_VLLM_V1, /* vllm:kv_cache_usage_perc present, or `engine` labels */
    RT_LOAD_SIGNALS_VLLM_V0, /* vllm: load metrics without either */
    RT_LOAD_SIGNALS_SGLANG,
};

/* Bits of struct rt_load_signals.present. */
#define RT_LOAD_SIGNALS_HAS_RUNNING  (1u << 0)
#define RT_LOAD_SIGNALS_HAS_WAITING  (1u << 1)
#define RT_LOAD_SIGNALS_HAS_KV_CACHE (1u << 2)
#define RT_LOAD_SIGNALS_HAS_MAX_FDS  (1u << 3)

struct rt_load_signals {
    double num_requests_running; /* requests in the batch, summed over engines; >= 0 */
    double num_requests_waiting; /* requests queued, summed over engines; >= 0 */
    double kv_cache_usage_perc;  /* KV-cache use in PERCENT, 0..100, mean over engines */
    double process_max_fds;      /* the server process's file descriptor limit; >= 0 */
    unsigned present;            /* RT_LOAD_SIGNALS_HAS_*: which fields above were on the page
                                    (an absent field is 0 and means "unknown", not "idle") */
    enum rt_load_signals_flavour flavour;
    unsigned kv_series;          /* series averaged into kv_cache_usage_perc */
};

/* Parses the /metrics page <page>[0, <len>) and fills <out>. Returns 0, or a negative value with
 * a one-line message in <err> (<errlen> bytes, NUL-terminated; may be NULL/0), e.g.
 * "line 12: unterminated label value" or "no load metrics on the page". On error <out> is all
 * zeros with present == 0 and flavour RT_LOAD_SIGNALS_UNKNOWN. */
int rt_load_signals_parse(const char *page, size_t len, struct rt_load_signals *out, char *err,
                          size_t errlen);

/* "vllm-v1", "vllm-v0", "sglang" or "unknown"; a static string. */
const char *rt_load_signals_flavour_name(enum rt_load_signals_flavour f);

#endif
