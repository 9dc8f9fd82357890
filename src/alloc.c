/* The project's allocator: libc underneath, abort on exhaustion, a counter for tests. */
#include "alloc.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static atomic_size_t nallocs;

static void *check(void *p, size_t n)
{
    if (p == NULL && n != 0) {
        fprintf(stderr, "vllm-router: out of memory allocating %zu bytes\n", n);
        abort();
    }
    atomic_fetch_add_explicit(&nallocs, 1, memory_order_relaxed);
    return p;
}

void *rt_malloc(size_t n)
{
    return check(malloc(n ? n : 1), n ? n : 1);
}

void *rt_calloc(size_t count, size_t n)
{
    return check(calloc(count ? count : 1, n ? n : 1), 1);
}

void *rt_realloc(void *p, size_t n)
{
    return check(realloc(p, n ? n : 1), n ? n : 1);
}

void rt_free(void *p)
{
    free(p);
}

char *rt_strdup(const char *s)
{
    return rt_strndup(s, strlen(s));
}

char *rt_strndup(const char *s, size_t n)
{
    char *d = rt_malloc(n + 1);
    if (n)
        memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

size_t rt_alloc_count(void)
{
    return atomic_load_explicit(&nallocs, memory_order_relaxed);
}
