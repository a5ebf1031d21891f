/* client/client.h — the seqd client library (used by `seqd fetch`, `seqd
 * status`, tests and benchmarks; usable by any C program).
 *
 * A client holds a list of member addresses and keeps at most one
 * connection per member, opened on first use. client_fetch allocates
 * `count` consecutive IDs of a sequence as one range, trying the members in
 * turn under one deadline for
 * the whole call: each attempt gets only part of what is left, so that one
 * hung member cannot eat it all, and the request carries what is left so
 * that no member works past it. A member that answers "recovering" or
 * fails is skipped; a request error (bad name, bad count, exhausted) ends
 * the call at once.
 *
 *   client *c = client_new("127.0.0.1:19001,127.0.0.1:19002", err, sizeof err);
 *   uint64_t first;
 *   if (client_fetch(c, "orders", 100, 5000, &first, err, sizeof err) == 0)
 *       ... IDs first .. first+99 are yours ...
 *   client_free(c);
 *
 * Not thread-safe: one client per thread.
 */
#ifndef SEQD_CLIENT_H
#define SEQD_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* "proto.h" by its bare name, as every installed header names its
 * siblings: installed, it is <seqd/proto.h> beside this file; in the tree
 * the Makefile's -iquote of the top directory finds ./proto.h. */
#include "proto.h"

typedef struct client client;

/* Return codes of client calls. */
#define CLIENT_OK 0
#define CLIENT_EUSAGE 2      /* bad name / count: refused before connecting */
#define CLIENT_EFAIL 1       /* the cluster could not serve: err says why */

/* servers: comma-separated HOST:PORT list. NULL with a message on error
 * (also when $SEQD_TOKEN_FILE is set but cannot be read). */
client *client_new(const char *servers, char *err, size_t errlen);
void client_free(client *c);

int client_fetch(client *c, const char *name, uint32_t count, uint32_t timeout_ms,
                 uint64_t *first, char *err, size_t errlen);

int client_nservers(const client *c);

/* Index of the member a fetch of `name` tries first when all are healthy. */
int client_preferred(const client *c, const char *name);

const char *client_server(const client *c, int i);

/* Status of member i: CLIENT_OK and *st filled, or CLIENT_EFAIL (down). */
int client_status(client *c, int i, uint32_t timeout_ms, struct seqd_status *st,
                  char *err, size_t errlen);

/* The client token of members run with --client-token-file (client_new
 * takes $SEQD_TOKEN_FILE's by itself): presented on every connection
 * before its first request. NULL or "" for none. CLIENT_EUSAGE for a bad
 * one (16 to 255 printable characters without blanks). */
int client_set_token(client *c, const char *token, char *err, size_t errlen);

/* client_raw and client_set_mac, for seqd's admin commands and tests
 * only, are in client/client_admin.h (not installed). */

#endif
