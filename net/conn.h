/* net/conn.h — one framed TCP connection over a libevent bufferevent.
 *
 * Frames are decoded only once whole (net/frame.h); each decoded message is
 * handed to on_msg. A framing error is answered with MSG_ERROR and the
 * connection closes once that is flushed; other connections are untouched.
 * Back-pressure: while more than CONN_OUT_HIGH bytes wait to be sent, the
 * connection stops reading, so a client that does not read its replies
 * cannot make the server buffer without bound.
 *
 * Authenticated links: once conn_set_mac is called, every frame sent
 * carries a tag and every frame received must carry the right one
 * (net/mac.h, proto.h). A wrong tag closes the connection at once, without
 * a reply; on_end's why says so and conn_mac_failed tells it apart.
 *
 * Lifetime: a conn is reference-counted so that a reply that completes
 * after the connection closed (an ACK waiting for fsync, a fetch waiting
 * for its round) can still hold it; sending on a closed conn is a no-op.
 */
#ifndef SEQD_CONN_H
#define SEQD_CONN_H

#include <stdbool.h>
#include <stdint.h>

#include "../proto.h"
#include "auth.h"

struct event_base;
struct sockaddr;

typedef struct conn conn;

typedef void (*conn_msg_fn)(conn *c, const seqd_msg *m, void *arg);
/* Called once when the connection ends (error, EOF, conn_close); `open`
 * tells whether it had been connected. */
typedef void (*conn_end_fn)(conn *c, void *arg, const char *why);
typedef void (*conn_open_fn)(conn *c, void *arg);

#define CONN_OUT_HIGH (4u << 20)
#define CONN_OUT_LOW (1u << 20)

/* Wraps an accepted socket. NULL on failure (the fd is closed). */
conn *conn_accept(struct event_base *base, int fd, conn_msg_fn on_msg, conn_end_fn on_end, void *arg);

/* Starts a non-blocking connect; on_open fires when connected. */
conn *conn_connect(struct event_base *base, const struct sockaddr *sa, int salen,
                   conn_open_fn on_open, conn_msg_fn on_msg, conn_end_fn on_end, void *arg);

/* Queues m. Returns 0, or -1 if the conn is closed or m does not fit. */
int conn_send(conn *c, const seqd_msg *m);

/* Sends MSG_ERROR(code, text) and closes once it is written. */
void conn_fail(conn *c, int ferr, const char *text);

/* Closes now (on_end is called, with why). */
void conn_close(conn *c, const char *why);

bool conn_is_open(const conn *c);
void conn_ref(conn *c);
void conn_unref(conn *c);

/* From the next frame on, in both directions, frames carry tags under the
 * session key ks (auth_step's); self is the role this side played. Call it
 * where the exchange completed: the listener right after queueing its
 * AUTH_OK (which goes untagged), the connector on receiving it (frames
 * already decoded or queued are not affected). -1 out of memory or on a
 * closed conn (close it). Once per conn. */
int conn_set_mac(conn *c, const uint8_t ks[AUTH_KEY_LEN], enum auth_role self);
bool conn_has_mac(const conn *c);

/* One MSG_AUTH of net/auth.h's exchange on this conn, for either side:
 * sends what the step says, and on AUTH_DONE (after the listener's
 * untagged AUTH_OK) turns the tags on. Returns the verdict; on
 * AUTH_REFUSE nothing was sent (the caller refuses and closes), and a
 * failure to turn the tags on closes the conn and also says AUTH_REFUSE. */
enum auth_verdict conn_auth_step(conn *c, auth_exchange *x, const auth_secret *s,
                                 const seqd_msg *in);
/* The conn was closed because a frame's tag was wrong. */
bool conn_mac_failed(const conn *c);

/* Per-connection role and member index, set by the server after a hello. */
void conn_set_peer(conn *c, int member);
int conn_peer(const conn *c);       /* -1 for a client connection */
const char *conn_addr(const conn *c);

#endif
