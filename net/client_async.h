/* net/client_async.h — one fetch on the caller's libevent loop, for
 * programs that already run one (a server handing out IDs per request).
 *
 * Same contract as client_fetch (net/client.h): the sequence's preferred
 * member first, then the others in turn, each attempt given part of what
 * is left of the deadline (which travels in the request); a request error
 * (bad name, bad count, exhausted) ends the call at once. `done` is called
 * exactly once, from the loop, never from inside client_fetch_async.
 *
 *   static void got(void *arg, int rc, uint64_t first, const char *err) {
 *       if (rc == CLIENT_OK) use(first); else fprintf(stderr, "%s\n", err);
 *   }
 *   client_fetch_async(base, "a:7000,b:7000,c:7000", "orders", 10, 5000, got, NULL, err, sizeof err);
 *   event_base_dispatch(base);
 */
#ifndef SEQD_CLIENT_ASYNC_H
#define SEQD_CLIENT_ASYNC_H

#include <stddef.h>
#include <stdint.h>

#include "client.h"

struct event_base;

/* rc: CLIENT_OK with [first, first+count), CLIENT_EUSAGE or CLIENT_EFAIL
 * with a one-line reason in err. */
typedef void (*client_async_fn)(void *arg, int rc, uint64_t first, const char *err);

/* Starts the fetch. Returns 0, or CLIENT_EUSAGE with a message (bad name,
 * count or server list: done is then not called). */
int client_fetch_async(struct event_base *base, const char *servers, const char *name,
                       uint32_t count, uint32_t timeout_ms, client_async_fn done, void *arg,
                       char *err, size_t errlen);

#endif
