/* client/client_admin.h — the part of the client library that only seqd's
 * own admin command (init) and the tests use: one raw message to a
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


#endif
