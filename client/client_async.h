/* client/client_async.h — fetches driven by the caller's libevent loop, for
 * programs that already run one (a server handing out IDs per request).
 *
 * An aclient keeps one connection per member, opened on first use and
 * reopened after a failure, and any number of fetches in flight on them
 * (matched by request id). Each fetch follows the contract of client_fetch
 * (client/client.h): the sequence's preferred member first (unless it failed
 * in the last second), then the others in turn, each attempt given part of
 * what is left of the deadline (which travels in the request); a request
 * error (bad name, bad count, exhausted) ends the fetch at once. `done` is
 * called exactly once per fetch, from the loop, never from inside
 * aclient_fetch. Fetches of one aclient are answered in any order. A reply
 * that arrives after its attempt gave up is dropped: those IDs are skipped,
 * never handed out twice.
 *
 *   static void got(void *arg, int rc, uint64_t first, const char *err) {
 *       if (rc == CLIENT_OK) use(first); else fprintf(stderr, "%s\n", err);
 *   }
 *   aclient *ac = aclient_new(base, "a:7000,b:7000,c:7000", err, sizeof err);
 *   aclient_fetch(ac, "orders", 10, 5000, got, NULL, err, sizeof err);
 *   event_base_dispatch(base);
 *   aclient_free(ac);
 *
 * A reply is matched by a scan of its member's calls in flight: meant for
 * up to a few hundred fetches at once per aclient (use more aclients, or
 * buffered streams, for more).
 *
 * client_fetch_async is the one-call form: its own aclient, freed after.
 * Not thread-safe: use an aclient from its loop's thread only.
 */
#ifndef SEQD_CLIENT_ASYNC_H
#define SEQD_CLIENT_ASYNC_H

#include <stddef.h>
#include <stdint.h>

#include "client.h"

struct event_base;

typedef struct aclient aclient;

/* rc: CLIENT_OK with [first, first+count), CLIENT_EUSAGE or CLIENT_EFAIL
 * with a one-line reason in err. */
typedef void (*client_async_fn)(void *arg, int rc, uint64_t first, const char *err);

/* servers: comma-separated HOST:PORT list. NULL with a message on error. */
aclient *aclient_new(struct event_base *base, const char *servers, char *err, size_t errlen);

/* Ends every fetch still in flight with CLIENT_EFAIL ("client closed"),
 * then frees. Not from inside a done callback of this aclient. */
void aclient_free(aclient *ac);

/* The client token (client.h, client_set_token; aclient_new takes
 * $SEQD_TOKEN_FILE's by itself), for connections opened from now on. */
int aclient_set_token(aclient *ac, const char *token, char *err, size_t errlen);

/* Starts a fetch. Returns 0, or CLIENT_EUSAGE with a message (bad name or
 * count, out of memory: done is then not called). */
int aclient_fetch(aclient *ac, const char *name, uint32_t count, uint32_t timeout_ms,
                  client_async_fn done, void *arg, char *err, size_t errlen);

/* One fetch on a client of its own, which goes once the fetch is done. */
int client_fetch_async(struct event_base *base, const char *servers, const char *name,
                       uint32_t count, uint32_t timeout_ms, client_async_fn done, void *arg,
                       char *err, size_t errlen);

#endif
