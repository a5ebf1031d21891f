/* client/client_admin.h — the part of the client library that only seqd's
 * own admin commands (init, advance, list) and the tests use: one raw message to a
 * member, and the frame MAC on a connection that authenticated. Not
 * installed: a program linked with libseqd sees client.h, client_async.h
 * and stream.h, whose functions are all that libseqd.so exports
 * (client/libseqd.map); seqd and the tests link the objects directly.
 */
#ifndef SEQD_CLIENT_ADMIN_H
#define SEQD_CLIENT_ADMIN_H

#include <stdint.h>

#include "client.h"
#include "../net/auth.h"

/* Sends one raw message to member i and waits for one reply frame (tests:
 * lets them send what a client should not, e.g. an ACCEPT). */
int client_raw(client *c, int i, const seqd_msg *req, seqd_msg *reply,
               uint8_t *scratch, uint32_t timeout_ms, char *err, size_t errlen);

/* Member i's open connection authenticated (net/auth.h, auth_step gave
 * ks): from the next frame on, frames carry tags both ways (proto.h). A
 * wrong tag closes the connection; so does any error, and a connection
 * opened again has no tags (it must authenticate again). -1 if there is no
 * open connection to member i, it has tags already, or out of memory. */
int client_set_mac(client *c, int i, const uint8_t ks[AUTH_KEY_LEN], enum auth_role self);

/* The admin's half of net/auth.h's challenge-response on member i's
 * connection, whose slot (index in the sorted member set) is `slot`; from
 * then on that connection carries tags. CLIENT_EFAIL with the reason. */
int client_admin_auth(client *c, int i, int slot, const auth_secret *s, uint32_t ms, char *err,
                      size_t errlen);

/* `seqd advance NAME VALUE` (DESIGN.md §5): asks the members in turn
 * (authenticated with s when not NULL) under one deadline until one
 * commits the floor. CLIENT_OK with *next (the sequence's NEXT after it,
 * >= value), CLIENT_EUSAGE for a bad name or value, else CLIENT_EFAIL with
 * the reason (no quorum, timeout, not authenticated). */
int client_advance(client *c, const char *name, uint64_t value, const auth_secret *s,
                   uint32_t timeout_ms, uint64_t *next, char *err, size_t errlen);

/* Member i's table, chunk by chunk (MSG_LIST), the names starting with
 * prefix (NULL or "": all): fn for each (name, NEXT as that member holds
 * it), in the member's insertion order; fn returns < 0 to stop (out of
 * memory). CLIENT_OK once the member said it was done; CLIENT_EUSAGE for
 * a bad prefix; else CLIENT_EFAIL (down, recovering). timeout_ms is per
 * chunk. */
typedef int (*client_list_fn)(void *arg, const struct seqd_name *name, uint64_t next);
int client_list_member(client *c, int i, const char *prefix, uint32_t timeout_ms,
                       client_list_fn fn, void *arg, char *err, size_t errlen);


#endif
