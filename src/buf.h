/* Growable byte buffers with a cap: reserve space, write into it, commit, consume from the front.
 *
 * Layout: bytes [off, len) of <base> hold unread data; [len, cap) is free space. The buffer owns
 * <base>. A buffer may be zero-initialised and used at once. */
#ifndef RT_BUF_H
#define RT_BUF_H

#include <stdarg.h>
#include <stddef.h>

#include "str.h"

struct rt_buf {
    char *base; /* owned; NULL until the first reserve */
    size_t off; /* start of unread data */
    size_t len; /* end of data */
    size_t cap; /* allocated bytes */
};

#define RT_EBUF_TOOBIG (-1)

/* Makes room for at least <n> more bytes after the data, moving data to the front or growing,
 * but never past <limit> bytes of data + room in total. Returns 0, or RT_EBUF_TOOBIG when the
 * data plus <n> would pass <limit>. */
int rt_buf_reserve(struct rt_buf *b, size_t n, size_t limit);
/* Appends <n> bytes; RT_EBUF_TOOBIG past <limit>. */
int rt_buf_append(struct rt_buf *b, const void *p, size_t n, size_t limit);
/* Appends formatted text and keeps a NUL after the data (not counted in the size), so the
 * data may be used as a C string until the next change; no limit. */
void rt_buf_printf(struct rt_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void rt_buf_vprintf(struct rt_buf *b, const char *fmt, va_list ap);
/* Drops <n> bytes from the front. */
void rt_buf_consume(struct rt_buf *b, size_t n);
void rt_buf_reset(struct rt_buf *b);
void rt_buf_free(struct rt_buf *b);

static inline char *rt_buf_data(const struct rt_buf *b)
{
    return b->base ? b->base + b->off : NULL;
}
static inline size_t rt_buf_size(const struct rt_buf *b)
{
    return b->len - b->off;
}
static inline struct rt_str rt_buf_str(const struct rt_buf *b)
{
    return rt_str_make(rt_buf_data(b), b->len - b->off);
}

#endif
