/* net/http_seq.h — the sequences of the HTTP API (DESIGN.md §5), for
 * front_http.c, which routes and authenticates before it calls in:
 *
 *   POST /v1/sequences/NAME/ids?count=N[&timeout_ms=T]
 *        200 {"first":"F","last":"L","count":N}   (IDs as JSON strings)
 *   GET  /v1/sequences/NAME[?timeout_ms=T]
 *        200 {"name":"NAME","next":"X"}           (a read quorum's NEXT)
 *   POST /v1/sequences/NAME/advance?to=V[&timeout_ms=T]
 *        200 {"name":"NAME","next":"X"}           (X >= V)
 *
 * They run the member's own calls (member_fetch, member_read,
 * member_advance): the same coordinator, coalescing, deadlines and
 * guarantees as the binary protocol. Errors are JSON
 * {"error":"<text>","code":"<stable code>"} with 400 (bad_name, bad_count,
 * bad_value, bad_timeout, bad_request), 404 not_found, 405
 * method_not_allowed (with Allow), 409 exhausted, 503 (recovering,
 * timeout, shutdown; with Retry-After: 1) and 507 storage. The codes are a
 * contract: clients switch on them, not on the text.
 *
 * A reply that waits for a round keeps its evhttp request; if the client
 * goes away meanwhile evhttp detaches the request and the late reply only
 * frees it. http_seq_free orphans every request still waiting, so the
 * member's later callbacks touch neither it nor the freed evhttp.
 */
#ifndef SEQD_HTTP_SEQ_H
#define SEQD_HTTP_SEQ_H

#include <stdbool.h>

struct evhttp_request;
struct member;

typedef struct http_seq http_seq;

http_seq *http_seq_new(struct member *m);   /* NULL: out of memory */
void http_seq_free(http_seq *h);

/* path: the request's path, which starts with HTTP_SEQ_PREFIX. */
#define HTTP_SEQ_PREFIX "/v1/sequences/"
void http_seq_handle(http_seq *h, struct evhttp_request *req, const char *path);

/* Whether path names an advance (admin: front_http authenticates it with
 * the admin token rather than the client token). */
bool http_seq_is_admin(const char *path);

/* A JSON error reply as above (also for front_http's 401 / 403 / 503). */
void http_json_error(struct evhttp_request *req, int status, const char *code, const char *text);

#endif
