/* Rendering of the simulator's responses exactly as vLLM's OpenAI server frames them: SSE chunks
 * of chat and text completions, whole completion bodies, embeddings, the model list, /tokenize,
 * and vLLM's nested error bodies. Pure functions appending to a caller-owned struct rt_buf. */
#ifndef RT_SIM_RENDER_H
#define RT_SIM_RENDER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "str.h"

enum rt_sim_api {
    RT_SIM_API_CHAT = 0, /* /v1/chat/completions */
    RT_SIM_API_TEXT,     /* /v1/completions */
};

/* Identity shared by every chunk of one response. <model> must outlive the rendering calls. */
struct rt_sim_resp {
    enum rt_sim_api api;
    char id[40];     /* "chatcmpl-<16 hex>" or "cmpl-<16 hex>" */
    int64_t created; /* unix seconds */
    struct rt_str model;
};

/* Deterministic 64-bit generator (splitmix64) used for ids, output text and embeddings. */
uint64_t rt_sim_rand(uint64_t *state);

/* Fills <r>: id from <prefix> ("chatcmpl-", "cmpl-", "embd-") and <seq>. */
void rt_sim_resp_init(struct rt_sim_resp *r, enum rt_sim_api api, uint64_t seq, int64_t created,
                      struct rt_str model);

/* The text of one generated token, chosen by <rnd> from a fixed vocabulary of 4-byte pieces
 * (" the", " sim", ...), so that re-counting the output with the token rule gives back the
 * number of tokens generated. Static storage. */
struct rt_str rt_sim_token_text(uint64_t rnd);

/* Appends <s> as a JSON string literal (quotes and escapes included). */
void rt_sim_json_str(struct rt_buf *b, struct rt_str s);

/* SSE events; each appends one complete "data: ...\n\n" event. */
void rt_sim_sse_role(struct rt_buf *b, const struct rt_sim_resp *r); /* chat only */
/* A content chunk; for text completions <finish> (or NULL) rides on the last token's chunk as
 * vLLM does, chat ends with rt_sim_sse_finish() instead. */
void rt_sim_sse_token(struct rt_buf *b, const struct rt_sim_resp *r, struct rt_str text,
                      const char *finish);
void rt_sim_sse_finish(struct rt_buf *b, const struct rt_sim_resp *r, const char *finish);
void rt_sim_sse_usage(struct rt_buf *b, const struct rt_sim_resp *r, uint32_t prompt_tokens,
                      uint32_t completion_tokens);
void rt_sim_sse_error(struct rt_buf *b, int code, const char *type, struct rt_str message);
void rt_sim_sse_done(struct rt_buf *b);

/* A whole non-streamed chat.completion or text_completion body. */
void rt_sim_render_completion(struct rt_buf *b, const struct rt_sim_resp *r, struct rt_str text,
                              const char *finish, uint32_t prompt_tokens,
                              uint32_t completion_tokens);

/* vLLM's nested error body: {"error":{"message":..,"type":..,"param":..,"code":..}};
 * <param> NULL renders null. */
void rt_sim_render_error(struct rt_buf *b, int code, const char *type, struct rt_str message,
                         const char *param);

/* /v1/models with one entry per name in <models>. */
void rt_sim_render_models(struct rt_buf *b, const char *const *models, size_t n, int64_t created,
                          unsigned max_model_len);

/* /v1/embeddings for <n> inputs; each vector has <dim> values derived from the input text and
 * <seed>, unit length; <base64> renders each as base64 of little-endian float32 (what the
 * OpenAI SDKs ask for by default). <model> and <id> as in struct rt_sim_resp. */
void rt_sim_render_embeddings(struct rt_buf *b, const struct rt_sim_resp *r,
                              const struct rt_str *inputs, size_t n, unsigned dim, uint64_t seed,
                              bool base64, uint32_t prompt_tokens);

/* /tokenize: {"count":N,"max_model_len":M,"tokens":[...],"token_strs":null}; token ids are
 * hashes of the 4-byte pieces of <text>. */
void rt_sim_render_tokenize(struct rt_buf *b, struct rt_str text, unsigned max_model_len);

#endif
