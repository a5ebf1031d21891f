/* client/replace.h — the new host's half of `seqd serve --replaces OLD`
 * (DESIGN.md §6, quorum/epoch.h), run before it starts as a member.
 *
 * It asks the members named by --peers (OLD excluded) where they stand
 * (SWITCH_PROBE), builds the switch (their epoch E, OLD's slot, the highest
 * incarnation counter of OLD they recorded, OLD, this host), asks each
 * member at E to record it (SWITCH_RECORD), and counts: once N-Q+1 of the
 * N-1 others hold it, the switch is complete and the host may start as the
 * member of that slot at epoch E+1 with an empty directory (its recovery
 * then waits 2R and reads N-Q+1 other members with state). Until then it
 * waits, saying whom it waits for, and asks again every second. A switch
 * that can no longer complete (too many members hold another set of the
 * next epoch) is dropped: its recorders are asked to go back to E, and the
 * host gives up — it never voted, so nothing was committed at E+1.
 *
 * Refused outright (nothing recorded): OLD is alive according to a member
 * (its link is up or it spoke within 2R) and `force` is false; OLD is not
 * a member; this host is one already.
 */
#ifndef SEQD_CLIENT_REPLACE_H
#define SEQD_CLIENT_REPLACE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../net/auth.h"
#include "../quorum/epoch.h"

typedef void (*replace_say_fn)(void *arg, const char *line);

typedef struct replace_req {
    const char *self;     /* this host's --listen: NEW */
    const char *old;      /* --replaces: OLD */
    char *const *peers;   /* --peers */
    int npeers;
    const auth_secret *secret;   /* NULL: protected mode (loopback) */
    bool force;           /* --force-replace */
    uint32_t timeout_ms;  /* per request */
    int max_rounds;       /* of asking (one a second); 0: until it completes */
    replace_say_fn say;   /* progress lines, for the log */
    void *say_arg;
} replace_req;

/* 0 with the set of the new epoch and the switch once it completed; -1
 * with the reason (refused, lost, or max_rounds without completing). */
int client_replace(const replace_req *rq, q_set *next, q_switch *sw, char *err, size_t errlen);

/* For a member that starts without an identity (it lost its data): the
 * set its peers run with, when one of them (asked once) is at an epoch
 * above 0 whose set includes rq->self — then its flags, which may still
 * name the set before a replacement, are not the truth. 1 with *set and
 * the switch that led to it, 0 when no peer said so (epoch 0, or none
 * answered: the flags stand). rq->old is ignored. */
int client_learn_set(const replace_req *rq, q_set *set, q_switch *sw);

/* The set a SWITCH_REPLY describes (epoch, digest and its slots text):
 * -1 when the text does not parse or does not hash to the digest. */
int replace_parse_set(uint64_t epoch, uint64_t digest, const char *slots, size_t len, q_set *out);

#endif
