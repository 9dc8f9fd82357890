/* One forwarded request: read what routing needs from it, pick a backend, send, stream the
 * answer back, retry elsewhere while nothing reached the client, queue while the fleet is
 * full, and account for the backend's slot exactly once on every path. */
#ifndef RT_PROXY_H
#define RT_PROXY_H

#include "http_server.h"
#include "router.h"

/* Takes over exchange <ex> on worker <w>: ends it in every case. */
void rt_proxy_start(struct rt_worker *w, struct rt_http_exchange *ex);
/* A slot may have been freed: dispatch what the worker's admission queue can. */
void rt_proxy_drain_queue(struct rt_worker *w);
/* Ends every queued request of <w> with 503 (shutdown). */
void rt_proxy_flush_queue(struct rt_worker *w);

#endif
