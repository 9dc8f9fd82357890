/* UTF-8 validation shared by every module that reads or writes text from outside (logs,
 * Prometheus pages, JSON request bodies). */
#ifndef RT_UTF8_H
#define RT_UTF8_H

#include <stddef.h>

/* Length of the well-formed UTF-8 sequence at <s> (at most <n> >= 1 bytes), 1 for ASCII, 0 when
 * the bytes there are not one: overlong forms, surrogates and code points past U+10FFFF are
 * refused, as RFC 3629 (and Go's utf8) say. */
static inline size_t rt_utf8_seq(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    size_t len;
    unsigned lo = 0x80, hi = 0xbf; /* allowed range of the second byte */
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        if (c == 0xe0)
            lo = 0xa0; /* overlong */
        else if (c == 0xed)
            hi = 0x9f; /* surrogates */
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        if (c == 0xf0)
            lo = 0x90; /* overlong */
        else if (c == 0xf4)
            hi = 0x8f; /* past U+10FFFF */
    } else {
        return 0;
    }
    if (n < len || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t k = 2; k < len; k++)
        if (s[k] < 0x80 || s[k] > 0xbf)
            return 0;
    return len;
}

#endif
