/* net/server.h — a seqd member: one listening port for clients and peers,
 * links to every other member, and the quorum modules wired to them.
 *
 * The server owns the event-loop side of everything: it decodes requests,
 * refuses bad ones with a reply (bad name or count, not a peer,
 * recovering), answers peers' READ / ACCEPT / SNAP_REQ through the acceptor,
 * turns client fetches into coordinator requests, and runs recovery before
 * it votes or serves (DESIGN.md §3). The caller opened the data directory
 * and the log; the server writes the identity when recovery completes.
 */
#ifndef SEQD_SERVER_H
#define SEQD_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../storage/log.h"
#include "../storage/table.h"

struct event_base;

typedef struct server server;

typedef struct server_config {
    const char *data_dir;
    char **members;          /* sorted HOST:PORT list, self included */
    int n;
    int self;                /* index of --listen in members */
    uint64_t cluster_id;
    const char *members_joined;  /* comma-joined, as in the identity */
    uint32_t round_ms;
    bool has_state;          /* the data directory was initialized */
    /* Testing hook: "MEMBER=CONNECT,..." makes the link to MEMBER connect
     * to CONNECT instead (a fault-injecting proxy); NULL for none. */
    const char *peer_route;
} server_config;

/* Binds the port and starts recovery. NULL with a message on failure. */
server *server_new(struct event_base *base, const server_config *cfg, seqlog *log, table *t,
                   char *err, size_t errlen);

/* Graceful stop: no new connections or requests, in-flight work finished
 * or failed, the log made durable, then the loop exits. */
void server_stop(server *s);

/* True if the server stopped for a fatal reason (a failed fsync). */
bool server_fatal(const server *s);

void server_free(server *s);

#endif
