/* Strict, zero-copy HTTP/1.1 parser (RFC 9112): request and response heads, chunked bodies.
 *
 * How the head parsers stay fast and safe without a bounds check per byte: before parsing, they
 * look for the blank line "\r\n\r\n" (only in the bytes not seen on the previous call, thanks to
 * <last_len>). Once it is found, the parse runs over [buf, end) where end is just past that blank
 * line, and every inner loop stops at CR because CR belongs to no byte class: the CR of the blank
 * line is a sentinel, so a scan can never leave the head. Bounds are checked once per line, not
 * per byte. The same scan for the blank line visits every LF, so a bare LF is refused right there
 * even before the head is complete.
 *
 * Framing policy (anti request smuggling, RFC 9112 §6 and §11.2): a message is refused when its
 * framing could be read two ways by two parsers. See docs/internals/http1_parser.md. */
#include "http1_parser.h"

#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

/* Byte classes, one bit each, so that each inner loop is a single table lookup per byte. */
enum {
    C_TCHAR = 1,  /* token character (RFC 9110 §5.6.2) */
    C_VALUE = 2,  /* field-content byte: VCHAR, obs-text, SP, HTAB */
    C_TARGET = 4, /* request-target byte: visible ASCII except '#' (no fragment on the wire) */
    C_HEX = 8,    /* hexadecimal digit */
};

static const unsigned char cls[256] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, /* 0x00 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x10 */
    2, 7, 6, 3, 7, 7, 7, 7, 6, 6, 7, 7, 6, 7, 7, 6, /* 0x20 */
    15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 6, 6, 6, 6, 6, 6, /* 0x30 */
    6, 15, 15, 15, 15, 15, 15, 7, 7, 7, 7, 7, 7, 7, 7, 7, /* 0x40 */
    7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 6, 6, 6, 7, 7, /* 0x50 */
    7, 15, 15, 15, 15, 15, 15, 7, 7, 7, 7, 7, 7, 7, 7, 7, /* 0x60 */
    7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 6, 7, 6, 7, 0, /* 0x70 */
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, /* 0x80 */
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, /* 0x90 */
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, /* 0xa0 */
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, /* 0xb0 */
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, /* 0xc0 */
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, /* 0xd0 */
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, /* 0xe0 */
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, /* 0xf0 */
};

#define IS(c, k) (cls[(unsigned char)(c)] & (k))

/* Error strings, compared by address by callers that care. */
static const char E_BARE_LF[] = "bare LF as line end";
static const char E_BARE_CR[] = "bare CR or invalid byte before line end";
static const char E_METHOD[] = "invalid method";
static const char E_TARGET[] = "invalid request-target";
static const char E_TARGET_FORM[] = "request-target is not origin-form (or * for OPTIONS)";
static const char E_VERSION[] = "unsupported HTTP version (only 1.0 and 1.1)";
static const char E_STATUS[] = "malformed status line";
static const char E_FOLD[] = "obs-fold (line starting with whitespace)";
static const char E_NAME[] = "invalid header name";
static const char E_WS_COLON[] = "whitespace before ':'";
static const char E_VALUE[] = "invalid byte in header value";
static const char E_CL[] = "malformed Content-Length";
static const char E_CL_DUP[] = "several Content-Length headers";
static const char E_CL_BIG[] = "Content-Length overflow";
static const char E_TE[] = "Transfer-Encoding other than chunked";
static const char E_TE_DUP[] = "several Transfer-Encoding headers";
static const char E_CL_TE[] = "both Content-Length and Transfer-Encoding";
static const char E_TE_10[] = "Transfer-Encoding in an HTTP/1.0 message";
static const char E_HOST_DUP[] = "several Host headers";

/* Header facts that decide framing and connection handling, gathered while parsing. */
struct facts {
    int64_t content_length; /* -1 when absent */
    bool te_chunked;        /* a (single, exactly "chunked") Transfer-Encoding was seen */
    bool conn_close;        /* Connection has the "close" token */
    bool conn_keep_alive;   /* Connection has the "keep-alive" token */
    bool expect_continue;
    unsigned hosts;         /* number of Host headers */
};

/* True when <p>[0, <n>) equals the lowercase <lit> ignoring ASCII case. OR-ing 0x20 folds only
 * letters onto lowercase letters; the one non-letter it maps onto '-' is CR, which never occurs
 * in names or values. */
static inline bool eq_lower(const char *p, size_t n, const char *lit, size_t lit_len)
{
    if (n != lit_len)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((p[i] | 0x20) != lit[i])
            return false;
    return true;
}

#define EQ_LIT(p, n, lit) eq_lower((p), (n), (lit), sizeof(lit) - 1)

/* Finds the blank line: returns the offset just past the first "\r\n\r\n" whose LFs lie at or
 * after <from> + 1, 0 when there is none yet, or -1 on a bare LF before it. Every LF is visited
 * (memchr jumps from line to line), so checking that each one follows a CR costs nothing more,
 * and a client sending LF-only lines is refused at once instead of being left waiting. */
static ssize_t find_blank(const char *buf, size_t from, size_t len)
{
    if (from + 1 >= len)
        return 0;
    const char *p = buf + from + 1, *end = buf + len;
#if defined(__SSE2__)
    /* Lines are short, so a memchr call per line costs more than this inline scan. */
    const __m128i lf = _mm_set1_epi8('\n');
    while (end - p >= 16) {
        __m128i x = _mm_loadu_si128((const __m128i *)(const void *)p);
        unsigned m = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(x, lf));
        while (m) {
            const char *q = p + __builtin_ctz(m);
            m &= m - 1;
            if (q[-1] != '\r')
                return -1;
            if (end - q >= 3 && q[1] == '\r' && q[2] == '\n')
                return q + 3 - buf;
        }
        p += 16;
    }
#endif
    while (p < end) {
        const char *q = memchr(p, '\n', (size_t)(end - p));
        if (!q)
            return 0;
        if (q[-1] != '\r')
            return -1;
        if (end - q >= 3 && q[1] == '\r' && q[2] == '\n')
            return q + 3 - buf;
        p = q + 1;
    }
    return 0;
}

/* Advances <p> over field-content bytes, 16 at a time while 16 bytes remain before <end>;
 * returns where the scalar loop should go on. SSE2 is part of x86-64, so this is the common
 * path; elsewhere the unrolled table loop does all the work. */
static inline const char *skip_value(const char *p, const char *end)
{
#if defined(__SSE2__)
    const __m128i sp = _mm_set1_epi8(0x20), tab = _mm_set1_epi8(0x09), del = _mm_set1_epi8(0x7f);
    while (end - p >= 16) {
        __m128i x = _mm_loadu_si128((const __m128i *)(const void *)p);
        /* ok = (x >= 0x20 unsigned, covering obs-text) or HTAB, and not DEL */
        __m128i ok = _mm_or_si128(_mm_cmpeq_epi8(_mm_max_epu8(x, sp), x), _mm_cmpeq_epi8(x, tab));
        ok = _mm_andnot_si128(_mm_cmpeq_epi8(x, del), ok);
        unsigned m = (unsigned)_mm_movemask_epi8(ok);
        if (m != 0xFFFF)
            return p + __builtin_ctz(~m);
        p += 16;
    }
#else
    (void)end;
#endif
    while (IS(p[0], C_VALUE) && IS(p[1], C_VALUE) && IS(p[2], C_VALUE) && IS(p[3], C_VALUE))
        p += 4;
    while (IS(*p, C_VALUE))
        p++;
    return p;
}

/* Parses the comma-separated token list of a Connection header. */
static void connection_tokens(struct rt_str v, struct facts *f)
{
    const char *s = v.ptr, *e = v.ptr + v.len;
    while (s < e) {
        const char *c = memchr(s, ',', (size_t)(e - s));
        const char *te = c ? c : e;
        while (s < te && (*s == ' ' || *s == '\t'))
            s++;
        while (te > s && (te[-1] == ' ' || te[-1] == '\t'))
            te--;
        if (EQ_LIT(s, (size_t)(te - s), "close"))
            f->conn_close = true;
        else if (EQ_LIT(s, (size_t)(te - s), "keep-alive"))
            f->conn_keep_alive = true;
        s = c ? c + 1 : e;
    }
}

/* Records what header <h> means for framing; returns an error string or NULL. Called once per
 * header, dispatching on the name's length so most headers cost one switch. */
static const char *note_header(const struct rt_http_header *h, struct facts *f)
{
    const char *n = h->name.ptr, *v = h->value.ptr;
    size_t nl = h->name.len, vl = h->value.len;
    switch (nl) {
    case 4:
        if (EQ_LIT(n, nl, "host"))
            f->hosts++;
        break;
    case 6:
        if (EQ_LIT(n, nl, "expect") && EQ_LIT(v, vl, "100-continue"))
            f->expect_continue = true;
        break;
    case 10:
        if (EQ_LIT(n, nl, "connection"))
            connection_tokens(h->value, f);
        break;
    case 14:
        if (EQ_LIT(n, nl, "content-length")) {
            /* RFC 9110 §8.6 lets a recipient accept a list of identical values ("5, 5") or
             * repeated identical headers. We refuse both, and any sign or space: agreeing
             * with every other parser on the one plain form is simpler than agreeing on the
             * lenient ones, and no legitimate client needs them. */
            if (f->content_length >= 0)
                return E_CL_DUP;
            if (vl == 0)
                return E_CL;
            int64_t x = 0;
            for (size_t i = 0; i < vl; i++) {
                unsigned d = (unsigned char)v[i] - '0';
                if (d > 9)
                    return E_CL;
                if (x > (INT64_MAX - (int64_t)d) / 10)
                    return E_CL_BIG;
                x = x * 10 + (int64_t)d;
            }
            f->content_length = x;
        }
        break;
    case 17:
        if (EQ_LIT(n, nl, "transfer-encoding")) {
            /* Only a single "chunked": a second header or a list would mean chunked applied
             * twice or another coding, which we can neither decode nor pass on safely. */
            if (f->te_chunked)
                return E_TE_DUP;
            if (!EQ_LIT(v, vl, "chunked"))
                return E_TE;
            f->te_chunked = true;
        }
        break;
    default:
        break;
    }
    return NULL;
}

/* Parses header lines from <*pp> up to and including the blank line, which must lie before
 * <end> (the sentinel invariant above). Fills <hdrs>/<*n> and <f>. Returns 0 and moves <*pp>
 * past the blank line, or RT_HTTP_BAD with <*err> set, or RT_HTTP_TOO_MANY_HDR. */
static int parse_headers(const char **pp, const char *end, struct rt_http_header *hdrs,
                         size_t *n, struct facts *f, const char **err)
{
    const char *p = *pp;
    for (;;) {
        /* Unreachable while the sentinel holds; kept so a logic slip cannot read past <end>. */
        if (end - p < 2)
            return RT_HTTP_INCOMPLETE;
        const char *name = p;
        while (IS(*p, C_TCHAR))
            p++;
        if (p == name) {
            if (p[0] == '\r') {
                if (p[1] != '\n') {
                    *err = E_BARE_CR;
                    return RT_HTTP_BAD;
                }
                *pp = p + 2;
                return 0;
            }
            *err = (*p == ' ' || *p == '\t') ? E_FOLD : E_NAME;
            return RT_HTTP_BAD;
        }
        if (*p != ':') {
            *err = (*p == ' ' || *p == '\t') ? E_WS_COLON : E_NAME;
            return RT_HTTP_BAD;
        }
        if (*n == RT_HTTP_MAX_HEADERS)
            return RT_HTTP_TOO_MANY_HDR;
        struct rt_http_header *h = &hdrs[*n];
        h->name = rt_str_make(name, (size_t)(p - name));
        p++;
        while (*p == ' ' || *p == '\t')
            p++;
        const char *value = p;
        /* Values are the bulk of a head: vector or unrolled scan. In the table loops,
         * short-circuit evaluation keeps every read at or before the first non-value byte,
         * so the sentinel still holds; the vector loop checks <end> itself. */
        p = skip_value(p, end);
        if (p[0] != '\r' || p[1] != '\n') {
            *err = p[0] == '\r' ? E_BARE_CR : E_VALUE;
            return RT_HTTP_BAD;
        }
        const char *vend = p;
        while (vend > value && (vend[-1] == ' ' || vend[-1] == '\t'))
            vend--;
        h->value = rt_str_make(value, (size_t)(vend - value));
        (*n)++;
        p += 2;
        const char *e = note_header(h, f);
        if (e) {
            *err = e;
            return RT_HTTP_BAD;
        }
    }
}

/* Parses "HTTP/1.0" or "HTTP/1.1" at <p>, which has at least 8 readable bytes; returns the minor
 * version or -1. */
static inline int parse_version(const char *p)
{
    if (memcmp(p, "HTTP/1.", 7) != 0 || (p[7] != '0' && p[7] != '1'))
        return -1;
    return p[7] - '0';
}

/* The framing rules both directions share (RFC 9112 §6.1, §6.3): Transfer-Encoding with
 * Content-Length is the classic smuggling ambiguity (a client may pick either; a proxy would
 * pass the ambiguity on), and HTTP/1.0 has no chunked coding. Returns NULL or the error. */
static const char *framing_error(const struct facts *f, int minor_version)
{
    if (f->te_chunked && f->content_length >= 0)
        return E_CL_TE;
    if (f->te_chunked && minor_version == 0)
        return E_TE_10;
    return NULL;
}

int rt_http_parse_request(const char *buf, size_t len, size_t last_len,
                          struct rt_http_request *req)
{
    int ret = RT_HTTP_BAD;
    const char *err = NULL;
    req->num_headers = 0;
    req->content_length = -1;
    req->chunked = false;
    req->keep_alive = false;
    req->expect_continue = false;
    req->error = NULL;

    /* RFC 9112 §2.2: ignore empty lines before the request-line (some clients send a CRLF
     * after a POST body). They count in the head length. */
    size_t start = 0;
    while (len - start >= 2 && buf[start] == '\r' && buf[start + 1] == '\n')
        start += 2;
    /* Refuse early what can never become a request (TLS hello, junk) instead of waiting for
     * the head to fill the caller's buffer. */
    if (start < len && !IS(buf[start], C_TCHAR) && buf[start] != '\r') {
        err = E_METHOD;
        goto fail;
    }
    size_t from = last_len >= 3 && last_len <= len ? last_len - 3 : 0;
    if (from < start)
        from = start;
    ssize_t blank = find_blank(buf, from, len);
    if (blank == 0)
        return RT_HTTP_INCOMPLETE;
    if (blank < 0) {
        err = E_BARE_LF;
        goto fail;
    }
    const char *p = buf + start, *end = buf + blank;

    /* method SP */
    const char *m = p;
    while (IS(*p, C_TCHAR))
        p++;
    if (p == m || *p != ' ') {
        err = E_METHOD;
        goto fail;
    }
    req->method = rt_str_make(m, (size_t)(p - m));
    p++;

    /* request-target SP */
    const char *t = p;
    while (IS(*p, C_TARGET))
        p++;
    if (p == t || *p != ' ') {
        err = E_TARGET;
        goto fail;
    }
    req->target = rt_str_make(t, (size_t)(p - t));
    if (*t == '/') {
        const char *q = memchr(t, '?', (size_t)(p - t));
        req->path = rt_str_make(t, (size_t)((q ? q : p) - t));
    } else if (p - t == 1 && *t == '*' && req->method.len == 7 &&
               memcmp(m, "OPTIONS", 7) == 0) { /* methods are case-sensitive */
        req->path = req->target;
    } else {
        /* absolute-form and authority-form are for proxies and CONNECT; we are the origin
         * as far as clients know, and rewriting absolute URIs is a smuggling surface. */
        err = E_TARGET_FORM;
        goto fail;
    }
    p++;

    /* HTTP-version CRLF: 10 bytes, and a blank line must still follow */
    if (end - p < 12 || (req->minor_version = parse_version(p)) < 0) {
        err = E_VERSION;
        goto fail;
    }
    if (p[8] != '\r' || p[9] != '\n') {
        err = E_VERSION;
        goto fail;
    }
    p += 10;

    struct facts f = {.content_length = -1};
    ret = parse_headers(&p, end, req->headers, &req->num_headers, &f, &err);
    if (ret != 0)
        goto fail;
    ret = RT_HTTP_BAD;
    if ((err = framing_error(&f, req->minor_version)) != NULL)
        goto fail;
    if (f.hosts > 1) {
        err = E_HOST_DUP;
        goto fail;
    }
    req->content_length = f.content_length;
    req->chunked = f.te_chunked;
    req->expect_continue = f.expect_continue;
    req->keep_alive = req->minor_version == 1 ? !f.conn_close
                                              : f.conn_keep_alive && !f.conn_close;
    return (int)(p - buf);

fail:
    if (ret == RT_HTTP_BAD)
        req->error = err;
    return ret;
}

int rt_http_parse_response(const char *buf, size_t len, size_t last_len, bool head_request,
                           struct rt_http_response *res)
{
    int ret = RT_HTTP_BAD;
    const char *err = NULL;
    res->num_headers = 0;
    res->content_length = -1;
    res->chunked = false;
    res->keep_alive = false;
    res->error = NULL;

    /* Refuse a server that does not speak HTTP/1.x as soon as its first bytes show it. */
    size_t k = len < 7 ? len : 7;
    if (k > 0 && memcmp(buf, "HTTP/1.", k) != 0) {
        err = E_STATUS;
        goto fail;
    }
    size_t from = last_len >= 3 && last_len <= len ? last_len - 3 : 0;
    ssize_t blank = find_blank(buf, from, len);
    if (blank == 0)
        return RT_HTTP_INCOMPLETE;
    if (blank < 0) {
        err = E_BARE_LF;
        goto fail;
    }
    const char *p = buf, *end = buf + blank;

    /* "HTTP/1.x 3DIGIT" then SP reason, or nothing; the shortest head is
     * "HTTP/1.1 200\r\n\r\n" (16 bytes), so 13 bytes are readable below. */
    if (end - p < 16) {
        err = E_STATUS;
        goto fail;
    }
    if ((res->minor_version = parse_version(p)) < 0) {
        err = E_VERSION;
        goto fail;
    }
    unsigned d0 = (unsigned char)p[9] - '0', d1 = (unsigned char)p[10] - '0',
             d2 = (unsigned char)p[11] - '0';
    if (p[8] != ' ' || d0 - 1 > 8 || d1 > 9 || d2 > 9) {
        err = E_STATUS;
        goto fail;
    }
    res->status = (int)(d0 * 100 + d1 * 10 + d2);
    p += 12;
    const char *r = p;
    if (*p == ' ') {
        r = ++p;
        p = skip_value(p, end);
    }
    /* A missing SP before an empty reason is tolerated (RFC 9112 §4 recommends it). */
    res->reason = rt_str_make(r, (size_t)(p - r));
    if (p[0] != '\r' || p[1] != '\n') {
        err = p[0] == '\r' ? E_BARE_CR : E_STATUS;
        goto fail;
    }
    p += 2;

    struct facts f = {.content_length = -1};
    ret = parse_headers(&p, end, res->headers, &res->num_headers, &f, &err);
    if (ret != 0)
        goto fail;
    ret = RT_HTTP_BAD;
    if ((err = framing_error(&f, res->minor_version)) != NULL)
        goto fail;
    res->keep_alive = res->minor_version == 1 ? !f.conn_close
                                              : f.conn_keep_alive && !f.conn_close;
    /* Framing, RFC 9112 §6.3, in its order of precedence. */
    if (head_request || res->status < 200 || res->status == 204 || res->status == 304) {
        res->content_length = 0;
    } else if (f.te_chunked) {
        res->chunked = true;
    } else if (f.content_length >= 0) {
        res->content_length = f.content_length;
    } else {
        res->keep_alive = false; /* the body ends when the server closes */
    }
    return (int)(p - buf);

fail:
    if (ret == RT_HTTP_BAD)
        res->error = err;
    return ret;
}

const struct rt_http_header *rt_http_find_header(const struct rt_http_header *headers, size_t n,
                                                 struct rt_str name)
{
    for (size_t i = 0; i < n; i++)
        if (rt_str_eq_ci(headers[i].name, name))
            return &headers[i];
    return NULL;
}

/* Chunked decoder states (struct rt_http_chunked.state; zero is the start). */
enum {
    CH_SIZE = 0,  /* hex digits of chunk-size */
    CH_EXT_BWS,   /* whitespace after the size: only before ';' */
    CH_EXT,       /* chunk extensions up to CR, ignored */
    CH_SIZE_LF,   /* LF ending the size line */
    CH_DATA,      /* <remaining> bytes of chunk data */
    CH_DATA_CR,   /* CRLF after the data */
    CH_DATA_LF,
    CH_TRL_START, /* start of a trailer line, or the final CRLF */
    CH_TRL_NAME,
    CH_TRL_VALUE,
    CH_TRL_LF,
    CH_END_LF,    /* LF of the final CRLF */
    CH_DONE,
    CH_BAD,       /* sticky: every later call fails too */
};

ssize_t rt_http_chunked_feed(struct rt_http_chunked *dec, const char *buf, size_t len,
                             struct rt_str *data)
{
    const char *p = buf, *end = buf + len;
    bool emitted = false;
    *data = rt_str_make(buf, 0);
    if (dec->state == CH_BAD)
        return RT_HTTP_BAD;
    if (dec->done)
        return 0;

    while (p < end) {
        unsigned char c = (unsigned char)*p;
        switch (dec->state) {
        case CH_SIZE:
            if (IS(c, C_HEX)) {
                /* 16 digits at most (leading zeros included), and no size over INT64_MAX,
                 * so the value fits everybody's off_t. */
                if (dec->hex_digits == 16 || (dec->remaining >> 59) != 0)
                    goto bad;
                unsigned v = c <= '9' ? (unsigned)(c - '0') : (unsigned)((c | 0x20) - 'a' + 10);
                dec->remaining = dec->remaining << 4 | v;
                dec->hex_digits++;
            } else if (dec->hex_digits == 0) {
                goto bad;
            } else if (c == ';') {
                dec->state = CH_EXT;
            } else if (c == ' ' || c == '\t') {
                dec->state = CH_EXT_BWS;
            } else if (c == '\r') {
                dec->state = CH_SIZE_LF;
            } else {
                goto bad;
            }
            p++;
            dec->line_bytes++;
            break;
        case CH_EXT_BWS:
            if (c == ';')
                dec->state = CH_EXT;
            else if (c != ' ' && c != '\t')
                goto bad;
            p++;
            if (++dec->line_bytes > RT_HTTP_MAX_SIZE_LINE)
                goto bad;
            break;
        case CH_EXT: {
            const char *s = p;
            while (p < end && IS(*p, C_VALUE))
                p++;
            dec->line_bytes += (size_t)(p - s);
            if (dec->line_bytes > RT_HTTP_MAX_SIZE_LINE)
                goto bad;
            if (p == end)
                break;
            if (*p != '\r')
                goto bad; /* LF, NUL or another control inside an extension */
            dec->state = CH_SIZE_LF;
            p++;
            break;
        }
        case CH_SIZE_LF:
            if (c != '\n')
                goto bad;
            p++;
            dec->hex_digits = 0;
            dec->line_bytes = 0;
            dec->state = dec->remaining == 0 ? CH_TRL_START : CH_DATA;
            break;
        case CH_DATA: {
            if (emitted)
                goto out; /* one data slice per call: the caller comes back for the next */
            size_t n = (size_t)(end - p);
            if (n > dec->remaining)
                n = (size_t)dec->remaining;
            *data = rt_str_make(p, n);
            emitted = true;
            p += n;
            dec->remaining -= n;
            if (dec->remaining == 0)
                dec->state = CH_DATA_CR;
            break;
        }
        case CH_DATA_CR:
            if (c != '\r')
                goto bad;
            p++;
            dec->state = CH_DATA_LF;
            break;
        case CH_DATA_LF:
            if (c != '\n')
                goto bad;
            p++;
            dec->state = CH_SIZE;
            break;
        default: {
            /* Trailer section: field lines then CRLF, at most RT_HTTP_MAX_TRAILER bytes. */
            const char *s = p;
            switch (dec->state) {
            case CH_TRL_START:
                if (c == '\r')
                    dec->state = CH_END_LF;
                else if (IS(c, C_TCHAR))
                    dec->state = CH_TRL_NAME;
                else
                    goto bad; /* obs-fold, bare LF, empty name */
                p++;
                break;
            case CH_TRL_NAME:
                while (p < end && IS(*p, C_TCHAR))
                    p++;
                if (p < end) {
                    if (*p != ':')
                        goto bad;
                    p++;
                    dec->state = CH_TRL_VALUE;
                }
                break;
            case CH_TRL_VALUE:
                while (p < end && IS(*p, C_VALUE))
                    p++;
                if (p < end) {
                    if (*p != '\r')
                        goto bad;
                    p++;
                    dec->state = CH_TRL_LF;
                }
                break;
            case CH_TRL_LF:
                if (c != '\n')
                    goto bad;
                p++;
                dec->state = CH_TRL_START;
                break;
            case CH_END_LF:
                if (c != '\n')
                    goto bad;
                p++;
                dec->state = CH_DONE;
                dec->done = true;
                break;
            default:
                goto bad; /* corrupted state */
            }
            dec->trailer_bytes += (size_t)(p - s);
            if (dec->trailer_bytes > RT_HTTP_MAX_TRAILER)
                goto bad;
            if (dec->done)
                goto out; /* what follows belongs to the next message */
            break;
        }
        }
    }
out:
    return p - buf;

bad:
    dec->state = CH_BAD;
    *data = rt_str_make(buf, 0);
    return RT_HTTP_BAD;
}
