/* All heap allocation goes through here, so tests can count allocations and a failed allocation
 * has one policy: log and abort. Hostile input is stopped earlier by per-buffer caps. */
#ifndef RT_ALLOC_H
#define RT_ALLOC_H

#include <stddef.h>

void *rt_malloc(size_t n);
void *rt_calloc(size_t count, size_t n);
void *rt_realloc(void *p, size_t n);
void rt_free(void *p);
char *rt_strdup(const char *s);
/* Copies <n> bytes of <s> and appends a NUL; <s> need not be NUL-terminated. */
char *rt_strndup(const char *s, size_t n);

/* Number of allocations made so far (all threads), for tests. */
size_t rt_alloc_count(void);

#endif
