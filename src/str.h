/* String slices: a pointer and a length into someone else's memory, passed by value.
 *
 * A slice never owns what it points at and is never assumed NUL-terminated: the buffer it was cut
 * from must outlive it. */
#ifndef RT_STR_H
#define RT_STR_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>
#include <strings.h>

struct rt_str {
    const char *ptr;
    size_t len;
};

#define RT_STR_LIT(s) ((struct rt_str){(s), sizeof(s) - 1})
#define RT_STR_NULL   ((struct rt_str){NULL, 0})
/* printf("%.*s", RT_STR_FMT(s)) */
#define RT_STR_FMT(s) (int)(s).len, (s).ptr

static inline struct rt_str rt_str_make(const char *p, size_t n)
{
    return (struct rt_str){p, n};
}

static inline struct rt_str rt_str_cstr(const char *s)
{
    return (struct rt_str){s, s ? strlen(s) : 0};
}

static inline bool rt_str_eq(struct rt_str a, struct rt_str b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

/* ASCII case-insensitive comparison, for header names and tokens. */
static inline bool rt_str_eq_ci(struct rt_str a, struct rt_str b)
{
    return a.len == b.len && (a.len == 0 || strncasecmp(a.ptr, b.ptr, a.len) == 0);
}

static inline bool rt_str_starts_with(struct rt_str s, struct rt_str prefix)
{
    return s.len >= prefix.len && memcmp(s.ptr, prefix.ptr, prefix.len) == 0;
}

#endif
