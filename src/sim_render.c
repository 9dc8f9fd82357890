/* vLLM-shaped JSON and SSE for the simulator (see sim_render.h). Key order and null fields follow
 * captured vLLM responses so that clients and routers parse the same thing they would in
 * production. */
#include "sim_render.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "sim_engine.h"

uint64_t rt_sim_rand(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void rt_sim_resp_init(struct rt_sim_resp *r, enum rt_sim_api api, uint64_t seq, int64_t created,
                      struct rt_str model)
{
    uint64_t st = seq;
    r->api = api;
    snprintf(r->id, sizeof r->id, "%s%016" PRIx64, api == RT_SIM_API_CHAT ? "chatcmpl-" : "cmpl-",
             rt_sim_rand(&st));
    r->created = created;
    r->model = model;
}

/* Every piece is exactly RT_SIM_BYTES_PER_TOKEN bytes. */
static const char vocab[][5] = {
    " the", " sim", " and", " for", " gpu", " kv ", " llm", " you", " are", " new",
    " one", " two", " ten", " run", " map", " key", " top", " set", " get", " put",
    " end", " yes", " low", " big", " hot", " old", " fit", " due", " web", " api",
    " job", " log",
};

struct rt_str rt_sim_token_text(uint64_t rnd)
{
    return rt_str_make(vocab[rnd % (sizeof vocab / sizeof vocab[0])], 4);
}

void rt_sim_json_str(struct rt_buf *b, struct rt_str s)
{
    static const char hex[] = "0123456789abcdef";
    rt_buf_reserve(b, s.len + 2, (size_t)-1);
    b->base[b->len++] = '"';
    size_t run = 0; /* start of the pending run of bytes needing no escape */
    for (size_t i = 0; i <= s.len; i++) {
        unsigned char c = i < s.len ? (unsigned char)s.ptr[i] : 0;
        bool plain = i < s.len && c >= 0x20 && c != '"' && c != '\\';
        if (plain)
            continue;
        if (i > run)
            rt_buf_append(b, s.ptr + run, i - run, (size_t)-1);
        run = i + 1;
        if (i == s.len)
            break;
        char esc[6] = {'\\', 0};
        size_t n = 2;
        switch (c) {
        case '"': esc[1] = '"'; break;
        case '\\': esc[1] = '\\'; break;
        case '\n': esc[1] = 'n'; break;
        case '\r': esc[1] = 'r'; break;
        case '\t': esc[1] = 't'; break;
        default:
            esc[1] = 'u';
            esc[2] = '0';
            esc[3] = '0';
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            n = 6;
        }
        rt_buf_append(b, esc, n, (size_t)-1);
    }
    rt_buf_append(b, "\"", 1, (size_t)-1);
}

static void lit(struct rt_buf *b, const char *s)
{
    rt_buf_append(b, s, strlen(s), (size_t)-1);
}

/* {"id":..,"object":..,"created":..,"model":.., — common head of every completion object. */
static void head(struct rt_buf *b, const struct rt_sim_resp *r, const char *object)
{
    rt_buf_printf(b, "{\"id\":\"%s\",\"object\":\"%s\",\"created\":%" PRId64 ",\"model\":", r->id,
                  object, r->created);
    rt_sim_json_str(b, r->model);
}

static const char *chunk_object(const struct rt_sim_resp *r)
{
    return r->api == RT_SIM_API_CHAT ? "chat.completion.chunk" : "text_completion";
}

static void finish_json(struct rt_buf *b, const char *finish)
{
    if (finish)
        rt_buf_printf(b, "\"%s\"", finish);
    else
        lit(b, "null");
}

void rt_sim_sse_role(struct rt_buf *b, const struct rt_sim_resp *r)
{
    lit(b, "data: ");
    head(b, r, chunk_object(r));
    lit(b, ",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},"
           "\"logprobs\":null,\"finish_reason\":null}]}\n\n");
}

void rt_sim_sse_token(struct rt_buf *b, const struct rt_sim_resp *r, struct rt_str text,
                      const char *finish)
{
    lit(b, "data: ");
    head(b, r, chunk_object(r));
    if (r->api == RT_SIM_API_CHAT) {
        lit(b, ",\"choices\":[{\"index\":0,\"delta\":{\"content\":");
        rt_sim_json_str(b, text);
        lit(b, "},\"logprobs\":null,\"finish_reason\":");
        finish_json(b, finish);
        lit(b, "}]}\n\n");
    } else {
        lit(b, ",\"choices\":[{\"index\":0,\"text\":");
        rt_sim_json_str(b, text);
        lit(b, ",\"logprobs\":null,\"finish_reason\":");
        finish_json(b, finish);
        lit(b, ",\"stop_reason\":null}]}\n\n");
    }
}

void rt_sim_sse_finish(struct rt_buf *b, const struct rt_sim_resp *r, const char *finish)
{
    if (r->api != RT_SIM_API_CHAT) {
        rt_sim_sse_token(b, r, RT_STR_LIT(""), finish);
        return;
    }
    lit(b, "data: ");
    head(b, r, chunk_object(r));
    lit(b, ",\"choices\":[{\"index\":0,\"delta\":{},\"logprobs\":null,\"finish_reason\":");
    finish_json(b, finish);
    lit(b, ",\"stop_reason\":null}]}\n\n");
}

static void usage(struct rt_buf *b, uint32_t prompt, uint32_t completion, bool details)
{
    rt_buf_printf(b, "\"usage\":{\"prompt_tokens\":%u,\"total_tokens\":%u,\"completion_tokens\":%u%s}",
                  prompt, prompt + completion, completion,
                  details ? ",\"prompt_tokens_details\":null" : "");
}

void rt_sim_sse_usage(struct rt_buf *b, const struct rt_sim_resp *r, uint32_t prompt_tokens,
                      uint32_t completion_tokens)
{
    lit(b, "data: ");
    head(b, r, chunk_object(r));
    lit(b, ",\"choices\":[],");
    usage(b, prompt_tokens, completion_tokens, false);
    lit(b, "}\n\n");
}

void rt_sim_sse_error(struct rt_buf *b, int code, const char *type, struct rt_str message)
{
    lit(b, "data: ");
    rt_sim_render_error(b, code, type, message, NULL);
    lit(b, "\n\n");
}

void rt_sim_sse_done(struct rt_buf *b)
{
    lit(b, "data: [DONE]\n\n");
}

void rt_sim_render_completion(struct rt_buf *b, const struct rt_sim_resp *r, struct rt_str text,
                              const char *finish, uint32_t prompt_tokens,
                              uint32_t completion_tokens)
{
    if (r->api == RT_SIM_API_CHAT) {
        head(b, r, "chat.completion");
        lit(b, ",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":");
        rt_sim_json_str(b, text);
        lit(b, ",\"refusal\":null,\"annotations\":null,\"audio\":null,\"function_call\":null,"
               "\"tool_calls\":[],\"reasoning_content\":null},\"logprobs\":null,\"finish_reason\":");
        finish_json(b, finish);
        lit(b, ",\"stop_reason\":null}],\"service_tier\":null,\"system_fingerprint\":null,");
        usage(b, prompt_tokens, completion_tokens, true);
        lit(b, ",\"prompt_logprobs\":null,\"kv_transfer_params\":null}");
    } else {
        head(b, r, "text_completion");
        lit(b, ",\"choices\":[{\"index\":0,\"text\":");
        rt_sim_json_str(b, text);
        lit(b, ",\"logprobs\":null,\"finish_reason\":");
        finish_json(b, finish);
        lit(b, ",\"stop_reason\":null,\"prompt_logprobs\":null}],\"service_tier\":null,"
               "\"system_fingerprint\":null,");
        usage(b, prompt_tokens, completion_tokens, true);
        lit(b, ",\"kv_transfer_params\":null}");
    }
}

void rt_sim_render_error(struct rt_buf *b, int code, const char *type, struct rt_str message,
                         const char *param)
{
    lit(b, "{\"error\":{\"message\":");
    rt_sim_json_str(b, message);
    rt_buf_printf(b, ",\"type\":\"%s\",\"param\":", type);
    if (param)
        rt_sim_json_str(b, rt_str_cstr(param));
    else
        lit(b, "null");
    rt_buf_printf(b, ",\"code\":%d}}", code);
}

void rt_sim_render_models(struct rt_buf *b, const char *const *models, size_t n, int64_t created,
                          unsigned max_model_len)
{
    lit(b, "{\"object\":\"list\",\"data\":[");
    for (size_t i = 0; i < n; i++) {
        uint64_t st = (uint64_t)created ^ (i * 0x9e3779b97f4a7c15ull);
        struct rt_str name = rt_str_cstr(models[i]);
        if (i)
            lit(b, ",");
        lit(b, "{\"id\":");
        rt_sim_json_str(b, name);
        rt_buf_printf(b, ",\"object\":\"model\",\"created\":%" PRId64 ",\"owned_by\":\"vllm\",\"root\":",
                      created);
        rt_sim_json_str(b, name);
        rt_buf_printf(b, ",\"parent\":null,\"max_model_len\":%u,\"permission\":[{\"id\":"
                         "\"modelperm-%016" PRIx64 "%016" PRIx64 "\",\"object\":\"model_permission\","
                         "\"created\":%" PRId64 ",\"allow_create_engine\":false,"
                         "\"allow_sampling\":true,\"allow_logprobs\":true,"
                         "\"allow_search_indices\":false,\"allow_view\":true,"
                         "\"allow_fine_tuning\":false,\"organization\":\"*\",\"group\":null,"
                         "\"is_blocking\":false}]}",
                      max_model_len, rt_sim_rand(&st), rt_sim_rand(&st), created);
    }
    lit(b, "]}");
}

static uint64_t hash_text(struct rt_str s, uint64_t seed)
{
    uint64_t h = 0xcbf29ce484222325ull ^ seed;
    for (size_t i = 0; i < s.len; i++)
        h = (h ^ (unsigned char)s.ptr[i]) * 0x100000001b3ull;
    return h;
}

static void base64(struct rt_buf *b, const unsigned char *p, size_t n)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)p[i + 1] << 8;
        if (i + 2 < n)
            v |= p[i + 2];
        char out[4] = {tab[(v >> 18) & 63], tab[(v >> 12) & 63],
                       i + 1 < n ? tab[(v >> 6) & 63] : '=', i + 2 < n ? tab[v & 63] : '='};
        rt_buf_append(b, out, 4, (size_t)-1);
    }
}

void rt_sim_render_embeddings(struct rt_buf *b, const struct rt_sim_resp *r,
                              const struct rt_str *inputs, size_t n, unsigned dim, uint64_t seed,
                              bool b64, uint32_t prompt_tokens)
{
    float vec[4096];
    if (dim > 4096)
        dim = 4096;
    if (dim == 0)
        dim = 1;
    rt_buf_printf(b, "{\"id\":\"%s\",\"object\":\"list\",\"created\":%" PRId64 ",\"model\":",
                  r->id, r->created);
    rt_sim_json_str(b, r->model);
    lit(b, ",\"data\":[");
    for (size_t i = 0; i < n; i++) {
        uint64_t st = hash_text(inputs[i], seed);
        double norm = 0;
        for (unsigned k = 0; k < dim; k++) {
            vec[k] = (float)((double)(rt_sim_rand(&st) >> 11) / 9007199254740992.0 * 2.0 - 1.0);
            norm += (double)vec[k] * vec[k];
        }
        norm = sqrt(norm);
        for (unsigned k = 0; k < dim && norm > 0; k++)
            vec[k] = (float)(vec[k] / norm);
        rt_buf_printf(b, "%s{\"index\":%zu,\"object\":\"embedding\",\"embedding\":", i ? "," : "",
                      i);
        if (b64) {
            unsigned char raw[4096 * 4];
            for (unsigned k = 0; k < dim; k++) {
                uint32_t u;
                memcpy(&u, &vec[k], 4);
                raw[4 * k] = (unsigned char)u;
                raw[4 * k + 1] = (unsigned char)(u >> 8);
                raw[4 * k + 2] = (unsigned char)(u >> 16);
                raw[4 * k + 3] = (unsigned char)(u >> 24);
            }
            lit(b, "\"");
            base64(b, raw, (size_t)dim * 4);
            lit(b, "\"");
        } else {
            lit(b, "[");
            for (unsigned k = 0; k < dim; k++)
                rt_buf_printf(b, "%s%.8g", k ? "," : "", (double)vec[k]);
            lit(b, "]");
        }
        lit(b, "}");
    }
    lit(b, "],");
    usage(b, prompt_tokens, 0, true);
    lit(b, "}");
}

void rt_sim_render_tokenize(struct rt_buf *b, struct rt_str text, unsigned max_model_len)
{
    uint32_t n = rt_sim_tokens(text);
    rt_buf_printf(b, "{\"count\":%u,\"max_model_len\":%u,\"tokens\":[", n, max_model_len);
    for (uint32_t i = 0; i < n; i++) {
        size_t off = (size_t)i * RT_SIM_BYTES_PER_TOKEN;
        size_t len = text.len - off < RT_SIM_BYTES_PER_TOKEN ? text.len - off : RT_SIM_BYTES_PER_TOKEN;
        uint64_t id = hash_text(rt_str_make(text.ptr + off, len), 0) % 151643u;
        rt_buf_printf(b, "%s%" PRIu64, i ? "," : "", id);
    }
    lit(b, "],\"token_strs\":null}");
}
