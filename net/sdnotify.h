/* net/sdnotify.h — telling a service manager (systemd, Type=notify) how
 * the member is doing, with the sd_notify protocol spoken directly: one
 * datagram of newline-separated VAR=VALUE lines to the AF_UNIX socket
 * named by $NOTIFY_SOCKET (a path, or "@name" for the abstract namespace).
 * No libsystemd: the protocol is this one datagram, and `seqd` then runs
 * the same with or without systemd installed.
 *
 * seqd serve sends STATUS= while it recovers, READY=1 once the member
 * serves (recovery complete: core/member.h's ready callback), and
 * STOPPING=1 when SIGTERM/SIGINT begins the graceful stop.
 *
 * Without $NOTIFY_SOCKET every call does nothing and returns 0: a member
 * started by hand or by the tests is not supervised.
 */
#ifndef SEQD_SDNOTIFY_H
#define SEQD_SDNOTIFY_H

#include <stdbool.h>
#include <stddef.h>

/* Whether $NOTIFY_SOCKET names a socket to talk to. */
bool sdnotify_enabled(void);

/* Sends `state` (e.g. "READY=1\nSTATUS=serving") as one datagram. 0 when
 * sent or when there is no service manager; -1 with a message in err when
 * the socket is unusable (a bad $NOTIFY_SOCKET, or the send failed). */
int sdnotify_send(const char *state, char *err, size_t errlen);

#endif
