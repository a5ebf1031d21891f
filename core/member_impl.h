/* core/member_impl.h — what the files of the member module share (core/
 * member.c: lifecycle, the quorum code over the event loop, peers, init;
 * core/member_epoch.c: epochs and switches, DESIGN.md §6). Not for anyone
 * else: front ends see core/member.h only.
 */
#ifndef SEQD_MEMBER_IMPL_H
#define SEQD_MEMBER_IMPL_H

#include <stdbool.h>
#include <stdint.h>

#include "member.h"
#include "headroom.h"
#include "../net/peer.h"
#include "../quorum/acceptor.h"
#include "../quorum/coord.h"
#include "../quorum/epoch.h"
#include "../quorum/incarnation.h"
#include "../storage/datadir.h"

/* A request sent by this member to itself, delivered from the loop (never
 * from inside q_env.send: the quorum code is not re-entrant). */
typedef struct self_msg {
    struct self_msg *next;
    seqd_msg m;
} self_msg;

typedef struct member_timer {
    struct event *ev;
    q_timer_fn fire;
    void *arg;
} member_timer;

struct member {
    struct event_base *base;
    member_config cfg;
    seqlog *log;
    table *t;
    q_env env;
    q_store store;
    acceptor *acc;
    coord *coord;
    recovery *rec;
    incarn *inc;
    peer **peers;                 /* [n], NULL at self */
    struct event *log_ev;         /* log_notify_fd readable */
    struct event *self_ev;        /* self queue non-empty */
    struct event *stop_ev;
    self_msg *self_head, *self_tail;
    uint64_t rng;
    uint64_t write_errors_logged;   /* log write failures already reported */
    uint64_t write_errors_at_us;    /* when last reported */
    uint64_t stale_logged_at_us;    /* last "not counting replies" line */
    member_ready_fn on_ready;      /* member_set_ready_cb */
    void *on_ready_arg;
    histogram fetch_latency;      /* member_fetch to its done callback */
    histogram round_latency;      /* a coordinator round, start to commit or failure */
    histogram fsync_latency;      /* the log's data fdatasyncs (sync thread) */
    log_fsync_observer fsync_obs;
    int stop_stage;
    bool stopping;
    bool fatal;
    uint64_t rounds_committed, rounds_failed;
    headroom headroom;            /* the exhaustion alarm (headroom.h) */
    /* The member set now (quorum/epoch.h): cfg.members, cfg.set_digest and
     * cfg.members_joined are views of it, kept by member_set_views. */
    q_set set;
    q_switch sw;                  /* what led to set.epoch, if > 0 */
    q_switch prev_sw;             /* what led to set.epoch - 1, if has_prev */
    bool has_prev;
    char *slot_addr[SEQD_MAX_MEMBERS];
    char joined[DATADIR_MEMBERS_MAX];
    uint64_t heard_us[SEQD_MAX_MEMBERS];   /* last message from each slot */
    uint64_t epoch_logged_us;     /* last "refused: epoch" line */
};

/* ---- member.c, for member_epoch.c ---- */

/* CLOCK_BOOTTIME in µs (the quorum code's clock). */
uint64_t member_now_us(const member *m);
/* Leaves the loop for a reason that makes the log untrustworthy (exit 1). */
void member_die(member *m);
/* (Re)creates the outgoing link to slot i from cfg.members[i]. */
int member_connect_peer(member *m, int i, char *err, size_t errlen);
/* Durably writes IDENTITY for cid and `set` (reached by sw; prev: what led
 * to set->epoch - 1, or NULL). Fatal on failure: returns -1 after
 * member_die. */
int member_write_identity(member *m, const struct seqd_cid *cid, const q_set *set,
                          const q_switch *sw, const q_switch *prev);

/* ---- member_epoch.c ---- */

/* cfg.members, cfg.set_digest and cfg.members_joined follow the epoch. */
void member_set_views(member *m);
/* What a hello of another epoch is told: "epoch E digest D[ switch ...]". */
void member_epoch_text(const member *m, char *why, size_t whylen);
/* A peer refused our hello with its epoch: adopt its switch, or exit if
 * it replaced this host. */
void member_told_epoch(member *m, int who, const char *why);

#endif
