/* client/policy.h — what the blocking client (client.c) and the async
 * client (client_async.c) decide alike, written once: which requests are
 * refused before anything is sent (the client's trust boundary), how much
 * of the deadline one attempt may take, how long to pause after a whole
 * pass of members failed, how long a failed member is passed over as a
 * first choice, which replies are a valid range, and what an error reply
 * means for the call (try the next member, or stop).
 *
 * Pure functions and constants: no sockets, no clocks. The two clients
 * differ only in how they wait (poll on one socket, or the caller's event
 * loop).
 */
#ifndef SEQD_CLIENT_POLICY_H
#define SEQD_CLIENT_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../proto.h"

/* An attempt gets half of what is left, but at least this when that much
 * is left: one hung member cannot eat the whole deadline, a slow one still
 * has a chance. */
#define POLICY_ATTEMPT_MIN_MS 200
/* Taken off the top of what is left, so that even the last attempt's
 * "timeout" answer arrives before the caller's deadline. */
#define POLICY_REPLY_GRACE_MS 30
/* How long a member that failed is passed over as a first choice. */
#define POLICY_AVOID_MS 1000
/* After a whole pass failed: a pause, doubling up to the maximum, so that a
 * cluster that is starting is not hammered. */
#define POLICY_PASS_PAUSE_MS 20
#define POLICY_PASS_PAUSE_MAX_MS 200

/* The --servers list, parsed once for both clients: comma-separated
 * HOST:PORT (or [V6]:PORT) entries, spaces around them tolerated since
 * lists are often pasted from shell variables; the port must be numeric so
 * that a typo is caught here and not as a DNS failure later. */
#define POLICY_MAX_SERVERS 64
typedef struct policy_server {
    char addr[SEQD_ADDR_MAX + 1];   /* as given, for messages */
    char host[SEQD_ADDR_MAX + 1];
    char port[8];
} policy_server;
typedef struct policy_servers {
    int n;
    policy_server s[POLICY_MAX_SERVERS];
    int sorted[POLICY_MAX_SERVERS];  /* indexes in address order */
} policy_servers;

/* 0, or -1 with a message (none given, a bad entry, too many). */
int policy_servers_parse(policy_servers *l, const char *servers, char *err, size_t errlen);

/* The sequence's preferred member: a hash of the name over the addresses
 * in sorted order, so that every client given the same servers, in any
 * order, agrees. */
int policy_preferred(const policy_servers *l, const char *name);

/* Where a fetch of `name` starts: the preferred member, or the next one in
 * the list after it that `usable` accepts (none: the preferred one).
 * Routing every client of a sequence to one coordinator keeps its learned
 * value fresh (the 1-RTT fast path) and keeps coordinators from NACKing
 * each other; safety never depends on it, any member may serve any fetch. */
int policy_route(const policy_servers *l, const char *name, bool (*usable)(const void *ctx, int i),
                 const void *ctx);

/* snprintf into err unless the caller passed no buffer (NULL or 0): error
 * text of the client library goes through here. */
void policy_seterr(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* The client's side of the name check (the member checks again on receipt,
 * in net/front_bin.c and quorum/acceptor.c): CLIENT_OK, or CLIENT_EUSAGE
 * with the message. */
int policy_check_name(const char *name, char *err, size_t errlen);

/* CLIENT_OK, or CLIENT_EUSAGE with the message (bad name or count):
 * policy_check_name and seqd_count_valid, before anything is sent. */
int policy_check_request(const char *name, uint32_t count, char *err, size_t errlen);

/* What attempt may take out of `left` ms (see POLICY_ATTEMPT_MIN_MS). */
int64_t policy_attempt_budget(int64_t left);

/* The pause after this one. */
int64_t policy_next_pause(int64_t pause_ms);

/* A MSG_RANGE is an answer to a fetch of count IDs only if it has exactly
 * count IDs, starts at 1 or above and does not pass 2^64-1. */
bool policy_range_ok(const seqd_msg *rep, uint32_t count);

/* What a MSG_REPLY_ERR means for a fetch. */
enum policy_verdict {
    POLICY_NEXT,    /* this member cannot serve now: try another */
    POLICY_USAGE,   /* the request is bad (name, count): stop, usage error */
    POLICY_FAIL     /* the sequence is exhausted: stop, fail */
};
/* The verdict, and for POLICY_NEXT a short reason for the failure line
 * (the member's own text only where it carries more: a storage errno). */
enum policy_verdict policy_judge(const seqd_msg *rep, char *why, size_t whylen);

/* The final message of a call stopped by POLICY_USAGE or POLICY_FAIL. */
void policy_stop_message(const seqd_msg *rep, const char *addr, const char *name, uint32_t count,
                         char *err, size_t errlen);

#endif
