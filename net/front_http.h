/* net/front_http.h — the HTTP front end of a member (DESIGN.md §5): one
 * evhttp listener on --http HOST:PORT, beside the binary port, for
 * operators and monitoring. The binary protocol stays the fast path.
 *
 *   GET /healthz    200 "ok" while the process runs its loop
 *   GET /readyz     200 "ready" when member_ready, else 503 with the state
 *   GET /v1/status  the member's status object (core/statusfmt.h)
 *   GET /metrics    Prometheus text exposition (version 0.0.4)
 *
 *   /v1/sequences/  the sequences API (net/http_seq.h): fetch IDs, read a
 *                   sequence's NEXT, advance (admin)
 *
 * Anything else is 404; a known path with another method is 405 with
 * Allow. Every request is bounded: headers and body in size (evhttp
 * answers 413 / closes past them), the connection in time
 * (FRONT_HTTP_TIMEOUT_S), and the connections in number. Who may ask what:
 * /healthz and /readyz anyone (a load balancer's probe learns up / ready);
 * the rest need `Authorization: Bearer <client token>` when the member has
 * --client-token-file; an advance needs the admin token HMAC(secret,
 * "admin") when the cluster has a secret, else comes from loopback only
 * (unless --insecure). seqd.c refuses a non-loopback --http without
 * --secret-file or --insecure, as it does for --listen.
 *
 * Lifecycle, as front_bin: front_http_new binds and listens;
 * front_http_stop closes the listener (a stopping member still answers
 * requests on open connections, /readyz with 503 "stopping");
 * front_http_free frees the rest, before member_free.
 */
#ifndef SEQD_FRONT_HTTP_H
#define SEQD_FRONT_HTTP_H

#include <stdbool.h>
#include <stddef.h>

struct event_base;
struct member;

typedef struct front_http front_http;

/* Limits on one request, and on connections: past FRONT_HTTP_MAX_CONNS
 * open ones (counted from their first request) a new connection's request
 * gets 503 too_many_connections and the connection is closed. */
#define FRONT_HTTP_MAX_HEADERS 8192
#define FRONT_HTTP_MAX_BODY 4096
#define FRONT_HTTP_TIMEOUT_S 10
#define FRONT_HTTP_MAX_CONNS 10000
#define FRONT_HTTP_MAX_CONNS_POW2 16384   /* a power of two >= the cap */

typedef struct front_http_opts {
    const char *admin_token;    /* HMAC(secret, "admin") hex (auth_admin_token); NULL: no secret */
    const char *client_token;   /* --client-token-file's token; NULL: none */
    bool insecure;              /* without a secret, admin requests from anywhere */
} front_http_opts;

/* Listens on addr (HOST:PORT). opts may be NULL (no tokens). NULL with a
 * message. */
front_http *front_http_new(struct event_base *base, struct member *m, const char *addr,
                           const front_http_opts *opts, char *err, size_t errlen);
void front_http_stop(front_http *f);
void front_http_free(front_http *f);

#endif
