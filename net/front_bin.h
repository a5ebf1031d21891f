/* net/front_bin.h — the binary front end of a member: the one listening
 * port for clients and peers (DESIGN.md §4), its accepted connections, and
 * the turning of request frames into member calls (core/member.h) and of
 * their completions back into reply frames.
 *
 * This is the trust boundary of the binary protocol: names, counts and
 * peer-only requests are checked here, on receipt, and bad ones get an
 * error reply on a connection that stays open (framing errors are conn's:
 * an ERROR frame, then close). READ, ACCEPT and SNAP_REQ are served only on
 * a connection whose hello the member accepted, and a hello only from a
 * connection that authenticated (or, without a secret, from loopback).
 *
 * Lifecycle: front_bin_new binds and listens; front_bin_stop closes the
 * listener (no new connections; requests on open ones are still answered,
 * the member refusing new fetches while it stops); front_bin_free, after
 * member_free, closes every connection still open.
 */
#ifndef SEQD_FRONT_BIN_H
#define SEQD_FRONT_BIN_H

#include <stdbool.h>
#include <stddef.h>

struct event_base;
struct member;
struct auth_secret;

typedef struct front_bin front_bin;

/* Listens on addr (HOST:PORT). With a secret (kept by the caller), peer
 * hellos and the admin messages (init, advance) are taken only on
 * connections that proved they hold it (net/auth.h); without one
 * (protected mode) only from loopback, or from anywhere with insecure.
 * With a client_token (kept by the caller; client/token.h), FETCH, STATUS,
 * LIST and ADVANCE are served only on connections that presented it
 * (MSG_TOKEN) or authenticated with the secret; others are refused "not
 * authenticated" and closed. NULL with a message. */
front_bin *front_bin_new(struct event_base *base, struct member *m, const char *addr,
                         const struct auth_secret *secret, bool insecure, const char *client_token,
                         char *err, size_t errlen);
void front_bin_stop(front_bin *f);
/* The cap on open connections: 20,000, or less when RLIMIT_NOFILE (as it
 * was at front_bin_new) leaves fewer descriptors (128 are kept back for
 * peers and the log); past it a new connection is closed at once. Below
 * FRONT_BIN_WANT_NOFILE descriptors serve warns (the unit asks for 65536). */
#define FRONT_BIN_WANT_NOFILE 20000u
size_t front_bin_max_conns(const front_bin *f);
void front_bin_free(front_bin *f);

#endif
