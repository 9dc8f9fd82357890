/* Growable byte buffers with a cap (see buf.h). */
#include "buf.h"

#include <stdio.h>
#include <string.h>

#include "alloc.h"

int rt_buf_reserve(struct rt_buf *b, size_t n, size_t limit)
{
    size_t used = b->len - b->off;
    if (used + n > limit || used + n < used)
        return RT_EBUF_TOOBIG;
    if (b->cap - b->len >= n)
        return 0;
    /* Sliding the data to the front is cheaper than growing when most of it was consumed. */
    if (b->off > 0 && b->cap - used >= n && b->off >= used) {
        memmove(b->base, b->base + b->off, used);
        b->off = 0;
        b->len = used;
        return 0;
    }
    size_t cap = b->cap ? b->cap : 1024;
    while (cap < used + n)
        cap *= 2;
    if (cap > limit)
        cap = limit;
    char *nb = rt_malloc(cap);
    if (used)
        memcpy(nb, b->base + b->off, used);
    rt_free(b->base);
    b->base = nb;
    b->cap = cap;
    b->off = 0;
    b->len = used;
    return 0;
}

int rt_buf_append(struct rt_buf *b, const void *p, size_t n, size_t limit)
{
    if (rt_buf_reserve(b, n, limit) != 0)
        return RT_EBUF_TOOBIG;
    if (n)
        memcpy(b->base + b->len, p, n);
    b->len += n;
    return 0;
}

void rt_buf_vprintf(struct rt_buf *b, const char *fmt, va_list ap)
{
    va_list ap2;
    va_copy(ap2, ap);
    char small[256];
    int n = vsnprintf(small, sizeof small, fmt, ap);
    if (n < 0) {
        va_end(ap2);
        return;
    }
    rt_buf_reserve(b, (size_t)n + 1, (size_t)-1);
    if ((size_t)n < sizeof small)
        memcpy(b->base + b->len, small, (size_t)n + 1);
    else
        vsnprintf(b->base + b->len, (size_t)n + 1, fmt, ap2);
    b->len += (size_t)n; /* the NUL after the data is not counted */
    va_end(ap2);
}

void rt_buf_printf(struct rt_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    rt_buf_vprintf(b, fmt, ap);
    va_end(ap);
}

void rt_buf_consume(struct rt_buf *b, size_t n)
{
    b->off += n;
    if (b->off >= b->len)
        b->off = b->len = 0;
}

void rt_buf_reset(struct rt_buf *b)
{
    b->off = b->len = 0;
}

void rt_buf_free(struct rt_buf *b)
{
    rt_free(b->base);
    b->base = NULL;
    b->off = b->len = b->cap = 0;
}
