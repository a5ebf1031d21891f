/* net/front_http.h — the HTTP front end of a member (DESIGN.md §5): one
 * evhttp listener on --http HOST:PORT, beside the binary port, for
 * operators and monitoring. The binary protocol stays the fast path.
 *
 *   GET /healthz    200 "ok" while the process runs its loop
 *   GET /readyz     200 "ready" when member_ready, else 503 with the state
 *   GET /v1/status  the member's status object (core/statusfmt.h)
 *   GET /metrics    Prometheus text exposition (version 0.0.4)
 *
 * Anything else is 404; a known path with another method than GET (or
 * HEAD) is 405 with Allow. Every request is bounded: headers and body in
 * size (evhttp answers 413 / closes past them) and the connection in time
 * (FRONT_HTTP_TIMEOUT_S). Nothing here changes the member: every endpoint
 * only reads (member_get_status, member_get_metrics), so the listener needs
 * no authentication on loopback; seqd.c refuses a non-loopback --http
 * without --secret-file or --insecure, as it does for --listen.
 *
 * Lifecycle, as front_bin: front_http_new binds and listens;
 * front_http_stop closes the listener (a stopping member still answers
 * requests on open connections, /readyz with 503 "stopping");
 * front_http_free frees the rest, before member_free.
 */
#ifndef SEQD_FRONT_HTTP_H
#define SEQD_FRONT_HTTP_H

#include <stddef.h>

struct event_base;
struct member;

typedef struct front_http front_http;

/* Limits on one request. */
#define FRONT_HTTP_MAX_HEADERS 8192
#define FRONT_HTTP_MAX_BODY 4096
#define FRONT_HTTP_TIMEOUT_S 10

/* Listens on addr (HOST:PORT). NULL with a message. */
front_http *front_http_new(struct event_base *base, struct member *m, const char *addr, char *err,
                           size_t errlen);
void front_http_stop(front_http *f);
void front_http_free(front_http *f);

#endif
