/* The simulated vLLM engine: running slots, a FIFO waiting queue, a KV cache counted in tokens, a
 * prefix cache of prompt block hashes (LRU), and every counter the simulator's /metrics reports.
 *
 * No I/O and no clock of its own: the caller passes the time (nanoseconds, any monotonic origin)
 * to each call and schedules token emission itself from what the engine computes (prefill time,
 * inter-token latency). The engine never owns requests: the caller allocates a struct
 * rt_sim_req, submits it, and must finish it exactly once (rt_sim_engine_finish) before freeing
 * it. Requests promoted from the waiting queue are handed back through the on_admit callback.
 *
 * Token rule (documented in docs/sim.md): a text of n bytes counts ceil(n / 4) tokens, and token
 * i covers bytes [4i, 4i + 4). A prefix-cache block is <block_tokens> consecutive tokens; only
 * full blocks are cached, each identified by a hash chained over all bytes before it. */
#ifndef RT_SIM_ENGINE_H
#define RT_SIM_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "str.h"

#define RT_SIM_BYTES_PER_TOKEN 4

/* Results of rt_sim_engine_submit(). */
#define RT_SIM_RUNNING 0     /* admitted at once: start prefill now */
#define RT_SIM_QUEUED  1     /* waiting; on_admit runs when a slot frees */
#define RT_SIM_EFULL   (-1)  /* waiting queue full: answer 429 */

enum rt_sim_finish {
    RT_SIM_FINISH_STOP = 0,
    RT_SIM_FINISH_LENGTH,
    RT_SIM_FINISH_ABORT,
    RT_SIM_FINISH_ERROR,
    RT_SIM_FINISH_COUNT
};

enum rt_sim_req_state {
    RT_SIM_REQ_NEW = 0,
    RT_SIM_REQ_WAITING,
    RT_SIM_REQ_RUNNING,
    RT_SIM_REQ_DONE,
};

struct rt_sim_engine_conf {
    unsigned max_num_seqs;         /* running slots, >= 1 */
    unsigned max_waiting;          /* bound of the waiting queue; 0 = unbounded */
    uint64_t ttft_base_ns;         /* fixed part of prefill */
    uint64_t prefill_ns_per_token; /* per prompt token not found in the prefix cache */
    uint64_t itl_ns;               /* inter-token latency with one running request */
    double itl_batch_factor;       /* ITL = itl_ns * (1 + factor * (running - 1)) */
    uint64_t kv_cache_tokens;      /* KV-cache size; also sizes the prefix cache */
    unsigned block_tokens;         /* tokens per KV/prefix-cache block, >= 1 */
    unsigned max_model_len;        /* context length reported and enforced */
};

/* A histogram with fixed upper bounds (a +Inf bucket is implied). */
#define RT_SIM_HIST_MAX 32
struct rt_sim_hist {
    const double *le;                  /* upper bounds, ascending; static storage */
    unsigned n;                        /* number of bounds */
    uint64_t counts[RT_SIM_HIST_MAX];  /* non-cumulative count per bound */
    uint64_t count;                    /* all observations (the +Inf bucket) */
    double sum;
};

/* Counters, as /metrics and /sim/state report them. */
struct rt_sim_stats {
    uint64_t prompt_tokens;             /* prefill tokens of admitted requests */
    uint64_t generation_tokens;
    uint64_t prefix_queries;            /* tokens looked up in the prefix cache */
    uint64_t prefix_hits;               /* of those, tokens found */
    uint64_t preemptions;               /* always 0: the sim never preempts */
    uint64_t finished[RT_SIM_FINISH_COUNT];
    uint64_t submitted;
    uint64_t rejected;                  /* refused because the waiting queue was full */
    struct rt_sim_hist ttft;            /* seconds */
    struct rt_sim_hist itl;             /* seconds */
    struct rt_sim_hist tpot;            /* seconds, per request */
    struct rt_sim_hist e2e;             /* seconds */
    struct rt_sim_hist queue;           /* seconds in WAITING */
    struct rt_sim_hist prefill;         /* seconds from admission to first token */
    struct rt_sim_hist decode;          /* seconds from first to last token */
    struct rt_sim_hist req_prompt;      /* prompt tokens per request */
    struct rt_sim_hist req_gen;         /* generated tokens per request */
    double le_tokens[RT_SIM_HIST_MAX];  /* 1-2-5 bounds up to max_model_len (storage) */
};

/* One request in the engine. The caller fills the first block; the engine owns the rest. */
struct rt_sim_req {
    uint32_t max_tokens; /* tokens to generate before finishing */
    void *data;          /* the caller's */
    /* engine's */
    enum rt_sim_req_state state;
    uint32_t prompt_tokens;
    uint32_t cached_tokens;   /* prompt tokens found in the prefix cache at admission */
    uint32_t generated;
    uint64_t *hashes;         /* block hashes of the prompt (owned; freed at finish) */
    uint32_t nhashes;
    uint64_t prefill_ns;      /* computed at admission */
    uint64_t arrival_ns, admit_ns, first_ns, last_ns;
    struct rt_sim_req *prev, *next; /* in the waiting queue or the running list */
};

struct rt_sim_engine;
typedef void (*rt_sim_admit_fn)(struct rt_sim_req *r, uint64_t now_ns, void *ctx);

struct rt_sim_prefix; /* LRU of block hashes (sim_engine.c) */

struct rt_sim_engine {
    struct rt_sim_engine_conf conf;
    struct rt_sim_stats stats;
    unsigned running;
    unsigned waiting;
    uint64_t kv_used;  /* tokens held by running requests */
    struct rt_sim_req *wait_head, *wait_tail;
    struct rt_sim_req *run_head;
    struct rt_sim_prefix *prefix;
    rt_sim_admit_fn on_admit;
    void *ctx;
};

/* Histogram bounds vLLM V1 uses (from its metrics code), exported for the /metrics renderer. */
extern const double rt_sim_le_ttft[];
extern const unsigned rt_sim_le_ttft_n;
extern const double rt_sim_le_itl[];
extern const unsigned rt_sim_le_itl_n;
extern const double rt_sim_le_e2e[];
extern const unsigned rt_sim_le_e2e_n;

/* Number of tokens in <text> by the simulator's rule (ceil(bytes / 4)). */
uint32_t rt_sim_tokens(struct rt_str text);

/* Prepares <e> with a copy of <conf> (zero fields get defaults: 1 slot, block 16, 32768
 * context). <on_admit> runs for each request promoted from the queue, with <ctx>. */
void rt_sim_engine_init(struct rt_sim_engine *e, const struct rt_sim_engine_conf *conf,
                        rt_sim_admit_fn on_admit, void *ctx);
/* Frees the prefix cache. Every request must have been finished. */
void rt_sim_engine_free(struct rt_sim_engine *e);
/* Changes timing and queue bounds at run time (slots and cache sizes stay). */
void rt_sim_engine_set_timing(struct rt_sim_engine *e, const struct rt_sim_engine_conf *conf);

/* Submits <r> whose prompt is <prompt> at <now_ns>. Returns RT_SIM_RUNNING (admitted: prefill
 * takes r->prefill_ns from now), RT_SIM_QUEUED, or RT_SIM_EFULL (r untouched, nothing to
 * finish). */
int rt_sim_engine_submit(struct rt_sim_engine *e, struct rt_sim_req *r, struct rt_str prompt,
                         uint64_t now_ns);
/* The latency until the next token of a running request, given the current batch. */
uint64_t rt_sim_engine_itl_ns(const struct rt_sim_engine *e);
/* When the next token of a request is due, given when its previous token was due
 * (<prev_due_ns>; for the first token, when it went out), when that token actually went out
 * (<now_ns>, >= prev_due_ns) and the inter-token latency <itl_ns>. Both bounds hold: one ITL
 * after the previous due time, so an answer never takes less than TTFT + (n - 1) x ITL however
 * late its timers fire; and one ITL less a slack of min(ITL / 10, 2 ms) after the actual
 * emission, so a late tick delays the tokens after it instead of bunching them, while the
 * millisecond rounding of every timer does not add up over a long answer. */
uint64_t rt_sim_next_token_due(uint64_t prev_due_ns, uint64_t now_ns, uint64_t itl_ns);
/* Records one generated token of running request <r> at <now_ns>. */
void rt_sim_engine_token(struct rt_sim_engine *e, struct rt_sim_req *r, uint64_t now_ns);
/* Ends <r> (waiting or running) with <reason>, frees its slot and KV, records its latencies,
 * then admits waiting requests while capacity allows (on_admit for each). Idempotent. */
void rt_sim_engine_finish(struct rt_sim_engine *e, struct rt_sim_req *r,
                          enum rt_sim_finish reason, uint64_t now_ns);
/* KV-cache use in [0, 1]. */
double rt_sim_engine_kv_usage(const struct rt_sim_engine *e);
/* Number of blocks the prefix cache holds / can hold. */
size_t rt_sim_engine_prefix_blocks(const struct rt_sim_engine *e, size_t *capacity);
/* Name vLLM uses for <reason> ("stop", "length", "abort", "error"). */
const char *rt_sim_finish_name(enum rt_sim_finish reason);

#endif
