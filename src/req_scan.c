/* One-pass JSON validation with field capture, and multipart field lookup (see req_scan.h). */
#include "req_scan.h"
#include "utf8.h"

#include <stdint.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif
#include <stdio.h>
#include <strings.h>
#include <string.h>

struct scanner {
    const unsigned char *p, *end, *start;
    const char *err;
};

#define FAIL(s, msg)                                                                               \
    do {                                                                                           \
        (s)->err = (msg);                                                                          \
        return -1;                                                                                 \
    } while (0)

static void skip_ws(struct scanner *s)
{
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
        s->p++;
}

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static size_t put_utf8(char *out, uint32_t cp)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Scans a string starting at the opening quote. When <out> is given, the decoded value goes
 * there (at most <cap> - 1 bytes; *<outlen> = SIZE_MAX when it did not fit). */
static int scan_string(struct scanner *s, char *out, size_t cap, size_t *outlen)
{
    size_t o = 0;
    bool overflow = false;
    s->p++; /* opening quote */
    for (;;) {
        /* Fast path: plain ASCII runs, 16 bytes at a time where SSE2 is there (prompts of a
         * megabyte are one string: this loop is most of the scan). */
        const unsigned char *q = s->p;
#ifdef __SSE2__
        const __m128i quote = _mm_set1_epi8('"'), bslash = _mm_set1_epi8('\\'),
                      space = _mm_set1_epi8(0x20);
        while (s->end - q >= 16) {
            __m128i v = _mm_loadu_si128((const __m128i *)q);
            /* Signed compare: bytes < 0x20 and bytes >= 0x80 (negative) both stop the run. */
            __m128i stop = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, quote),
                                                     _mm_cmpeq_epi8(v, bslash)),
                                        _mm_cmplt_epi8(v, space));
            int mask = _mm_movemask_epi8(stop);
            if (mask) {
                q += __builtin_ctz((unsigned)mask);
                break;
            }
            q += 16;
        }
#endif
        while (q < s->end && *q >= 0x20 && *q != '"' && *q != '\\' && *q < 0x80)
            q++;
        if (out && !overflow) {
            size_t run = (size_t)(q - s->p);
            if (o + run < cap) {
                memcpy(out + o, s->p, run);
                o += run;
            } else {
                overflow = true;
            }
        }
        s->p = q;
        if (s->p >= s->end)
            FAIL(s, "unterminated string");
        unsigned char c = *s->p;
        if (c == '"') {
            s->p++;
            break;
        }
        if (c < 0x20)
            FAIL(s, "control character in string");
        if (c >= 0x80) {
            size_t n = rt_utf8_seq(s->p, (size_t)(s->end - s->p));
            if (n == 0)
                FAIL(s, "invalid UTF-8 in string");
            if (out && !overflow) {
                if (o + n < cap) {
                    memcpy(out + o, s->p, n);
                    o += n;
                } else {
                    overflow = true;
                }
            }
            s->p += n;
            continue;
        }
        /* backslash */
        if (s->end - s->p < 2)
            FAIL(s, "unterminated string");
        char dec[4];
        size_t dn = 1;
        switch (s->p[1]) {
        case '"': dec[0] = '"'; break;
        case '\\': dec[0] = '\\'; break;
        case '/': dec[0] = '/'; break;
        case 'b': dec[0] = '\b'; break;
        case 'f': dec[0] = '\f'; break;
        case 'n': dec[0] = '\n'; break;
        case 'r': dec[0] = '\r'; break;
        case 't': dec[0] = '\t'; break;
        case 'u': {
            if (s->end - s->p < 6)
                FAIL(s, "bad \\u escape");
            uint32_t cp = 0;
            for (int i = 2; i < 6; i++) {
                int h = hexval(s->p[i]);
                if (h < 0)
                    FAIL(s, "bad \\u escape");
                cp = cp << 4 | (uint32_t)h;
            }
            s->p += 4; /* the common += 2 below skips "\u" */
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                /* A high surrogate must be followed by an escaped low one. */
                if (s->end - s->p < 8 || s->p[2] != '\\' || s->p[3] != 'u')
                    FAIL(s, "unpaired surrogate in \\u escape");
                uint32_t lo = 0;
                for (int i = 4; i < 8; i++) {
                    int h = hexval(s->p[i]);
                    if (h < 0)
                        FAIL(s, "bad \\u escape");
                    lo = lo << 4 | (uint32_t)h;
                }
                if (lo < 0xDC00 || lo > 0xDFFF)
                    FAIL(s, "unpaired surrogate in \\u escape");
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                s->p += 6;
            } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                FAIL(s, "unpaired surrogate in \\u escape");
            }
            dn = put_utf8(dec, cp);
            break;
        }
        default:
            FAIL(s, "invalid escape in string");
        }
        s->p += 2;
        if (out && !overflow) {
            if (o + dn < cap) {
                memcpy(out + o, dec, dn);
                o += dn;
            } else {
                overflow = true;
            }
        }
    }
    if (out) {
        out[overflow ? 0 : o] = '\0';
        *outlen = overflow ? SIZE_MAX : o;
    }
    return 0;
}

static int scan_number(struct scanner *s)
{
    const unsigned char *p = s->p;
    if (p < s->end && *p == '-')
        p++;
    if (p >= s->end)
        FAIL(s, "bad number");
    if (*p == '0') {
        p++;
    } else if (*p >= '1' && *p <= '9') {
        while (p < s->end && *p >= '0' && *p <= '9')
            p++;
    } else {
        FAIL(s, "bad number");
    }
    if (p < s->end && *p == '.') {
        p++;
        if (p >= s->end || *p < '0' || *p > '9')
            FAIL(s, "bad number");
        while (p < s->end && *p >= '0' && *p <= '9')
            p++;
    }
    if (p < s->end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < s->end && (*p == '+' || *p == '-'))
            p++;
        if (p >= s->end || *p < '0' || *p > '9')
            FAIL(s, "bad number");
        while (p < s->end && *p >= '0' && *p <= '9')
            p++;
    }
    s->p = p;
    return 0;
}

static int scan_literal(struct scanner *s, const char *lit)
{
    size_t n = strlen(lit);
    if ((size_t)(s->end - s->p) < n || memcmp(s->p, lit, n) != 0)
        FAIL(s, "invalid literal");
    s->p += n;
    return 0;
}

enum field {
    F_NONE = 0,
    F_MODEL,
    F_STREAM,
    F_USER,
    F_STREAM_OPTIONS,
    F_INCLUDE_USAGE,
};

static int scan_value(struct scanner *s, int depth, enum field f, struct rt_json_fields *out);

static int scan_container(struct scanner *s, int depth, bool object, enum field parent,
                          struct rt_json_fields *out)
{
    if (depth >= RT_SCAN_MAX_DEPTH)
        FAIL(s, "nesting too deep");
    unsigned char close = object ? '}' : ']';
    s->p++;
    skip_ws(s);
    if (s->p < s->end && *s->p == close) {
        s->p++;
        return 0;
    }
    for (;;) {
        enum field f = F_NONE;
        if (object) {
            if (s->p >= s->end || *s->p != '"')
                FAIL(s, "expected a member name");
            const unsigned char *k = s->p + 1;
            if (scan_string(s, NULL, 0, NULL) != 0)
                return -1;
            size_t klen = (size_t)(s->p - k) - 1;
            /* Keys of interest have no escapes, so the raw bytes decide. */
            if (depth == 0) {
                if (klen == 5 && memcmp(k, "model", 5) == 0)
                    f = F_MODEL;
                else if (klen == 6 && memcmp(k, "stream", 6) == 0)
                    f = F_STREAM;
                else if (klen == 4 && memcmp(k, "user", 4) == 0)
                    f = F_USER;
                else if (klen == 14 && memcmp(k, "stream_options", 14) == 0)
                    f = F_STREAM_OPTIONS;
            } else if (depth == 1 && parent == F_STREAM_OPTIONS && klen == 13 &&
                       memcmp(k, "include_usage", 13) == 0) {
                f = F_INCLUDE_USAGE;
            }
            skip_ws(s);
            if (s->p >= s->end || *s->p != ':')
                FAIL(s, "expected ':' after a member name");
            s->p++;
        }
        if (scan_value(s, depth + 1, f, out) != 0)
            return -1;
        skip_ws(s);
        if (s->p >= s->end)
            FAIL(s, "unexpected end of input");
        if (*s->p == ',') {
            s->p++;
            skip_ws(s);
            continue;
        }
        if (*s->p == close) {
            s->p++;
            return 0;
        }
        FAIL(s, object ? "expected ',' or '}'" : "expected ',' or ']'");
    }
}

static int scan_value(struct scanner *s, int depth, enum field f, struct rt_json_fields *out)
{
    skip_ws(s);
    if (s->p >= s->end)
        FAIL(s, "unexpected end of input");
    switch (*s->p) {
    case '{':
        return scan_container(s, depth, true, f, out);
    case '[':
        return scan_container(s, depth, false, f, out);
    case '"': {
        size_t len;
        if (f == F_MODEL || f == F_USER) {
            char *buf = f == F_MODEL ? out->model_buf : out->user_buf;
            if (scan_string(s, buf, RT_SCAN_STR_CAP, &len) != 0)
                return -1;
            if (len == SIZE_MAX) {
                if (f == F_MODEL)
                    FAIL(s, "\"model\" is too long");
                len = 0; /* an over-long user only loses affinity */
            }
            if (f == F_MODEL) {
                out->has_model = true;
                out->model = rt_str_make(out->model_buf, len);
            } else {
                out->has_user = true;
                out->user = rt_str_make(out->user_buf, len);
            }
            return 0;
        }
        return scan_string(s, NULL, 0, NULL);
    }
    case 't':
        if (f == F_STREAM)
            out->has_stream = out->stream = true;
        if (f == F_INCLUDE_USAGE)
            out->include_usage = true;
        return scan_literal(s, "true");
    case 'f':
        if (f == F_STREAM)
            out->has_stream = true;
        return scan_literal(s, "false");
    case 'n':
        return scan_literal(s, "null");
    default:
        if (f == F_MODEL)
            FAIL(s, "\"model\" must be a string");
        return scan_number(s);
    }
}

int rt_json_scan(const char *p, size_t n, struct rt_json_fields *out, const char **err,
                 size_t *err_off)
{
    struct scanner s = {(const unsigned char *)p, (const unsigned char *)p + n,
                        (const unsigned char *)p, NULL};
    memset(out, 0, offsetof(struct rt_json_fields, model_buf));
    out->model = out->user = RT_STR_NULL;
    *err = NULL;
    *err_off = 0;
    skip_ws(&s);
    out->is_object = s.p < s.end && *s.p == '{';
    if (s.p >= s.end) {
        s.err = "empty body";
        goto fail;
    }
    if (scan_value(&s, 0, F_NONE, out) != 0)
        goto fail;
    skip_ws(&s);
    if (s.p != s.end) {
        s.err = "unexpected data after the JSON value";
        goto fail;
    }
    return 0;
fail:
    *err = s.err;
    *err_off = (size_t)(s.p - s.start);
    return -1;
}

/* ---- multipart/form-data ---------------------------------------------------------------- */

static const char *find(const char *h, size_t hn, const char *n, size_t nn)
{
    if (nn == 0 || hn < nn)
        return NULL;
    const char *end = h + hn - nn + 1;
    for (const char *p = h; p < end; p++) {
        p = memchr(p, n[0], (size_t)(end - p));
        if (!p)
            return NULL;
        if (memcmp(p, n, nn) == 0)
            return p;
    }
    return NULL;
}

/* The boundary parameter of a multipart Content-Type value. */
static int boundary_of(struct rt_str ct, struct rt_str *out)
{
    static const char key[] = "boundary=";
    const char *b = NULL;
    for (size_t i = 0; i + sizeof key - 1 <= ct.len; i++)
        if (strncasecmp(ct.ptr + i, key, sizeof key - 1) == 0) {
            b = ct.ptr + i + sizeof key - 1;
            break;
        }
    if (!b)
        return -1;
    const char *end = ct.ptr + ct.len;
    if (b < end && *b == '"') {
        const char *q = memchr(b + 1, '"', (size_t)(end - b - 1));
        if (!q)
            return -1;
        *out = rt_str_make(b + 1, (size_t)(q - b - 1));
    } else {
        const char *q = b;
        while (q < end && *q != ';' && *q != ' ' && *q != '\t')
            q++;
        *out = rt_str_make(b, (size_t)(q - b));
    }
    return out->len >= 1 && out->len <= 70 ? 0 : -1;
}

int rt_multipart_field(struct rt_str content_type, struct rt_str body, struct rt_str name,
                       struct rt_str *value)
{
    struct rt_str boundary;
    char delim[80];
    *value = RT_STR_NULL;
    if (boundary_of(content_type, &boundary) != 0)
        return -1;
    int dl = snprintf(delim, sizeof delim, "--%.*s", RT_STR_FMT(boundary));
    const char *p = body.ptr, *end = body.ptr + body.len;
    const char *d = find(p, body.len, delim, (size_t)dl);
    if (!d)
        return -1;
    p = d + dl;
    for (;;) {
        if (end - p >= 2 && p[0] == '-' && p[1] == '-')
            return 1; /* closing delimiter: field absent */
        if (end - p < 2 || p[0] != '\r' || p[1] != '\n')
            return -1;
        p += 2;
        const char *hend = find(p, (size_t)(end - p), "\r\n\r\n", 4);
        if (!hend)
            return -1;
        /* Does this part's Content-Disposition name the field? */
        bool match = false;
        for (const char *line = p; line < hend;) {
            const char *eol = find(line, (size_t)(hend + 2 - line), "\r\n", 2);
            if (!eol)
                eol = hend;
            size_t ll = (size_t)(eol - line);
            if (ll > 20 && strncasecmp(line, "content-disposition:", 20) == 0) {
                char pat[300];
                int pn = snprintf(pat, sizeof pat, "name=\"%.*s\"", RT_STR_FMT(name));
                const char *hit = pn > 0 && (size_t)pn < sizeof pat
                                      ? find(line, ll, pat, (size_t)pn)
                                      : NULL;
                /* "filename=" also ends in name=: require a separator before it. */
                match = hit && (hit[-1] == ' ' || hit[-1] == ';' || hit[-1] == '\t');
            }
            line = eol + 2;
        }
        const char *data = hend + 4;
        char next[84];
        int nl = snprintf(next, sizeof next, "\r\n%s", delim);
        const char *nd = find(data, (size_t)(end - data), next, (size_t)nl);
        if (!nd)
            return -1;
        if (match) {
            *value = rt_str_make(data, (size_t)(nd - data));
            return 0;
        }
        p = nd + nl;
    }
}
