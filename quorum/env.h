/* quorum/env.h — what the quorum code needs of the world, as an interface,
 * so that the same coordinator, acceptor and recovery code runs over the
 * real network (net/server.c) and over the deterministic simulator
 * (tests/sim.c). quorum/ never touches sockets, files or clocks itself.
 *
 * Rules every implementation keeps:
 * - send() never calls back into the quorum code before it returns: replies,
 *   including those of the local member to itself, arrive later through the
 *   module's on_reply function.
 * - now_us() is CLOCK_BOOTTIME (it keeps counting through a suspend or a
 *   SIGSTOP), so "is this round younger than R" is asked of real time at
 *   the moment a reply is counted, not left to a timer that may fire late.
 * - A timer fires at most once; after it fired or was stopped, its handle is
 *   gone.
 */
#ifndef SEQD_QENV_H
#define SEQD_QENV_H

#include <stdbool.h>
#include <stdint.h>

#include "../proto.h"

/* Replies to requests sent by recovery carry this bit in their reqid, so the
 * transport can route a reply to the module that asked. */
#define Q_REQID_RECOVERY (UINT64_C(1) << 63)

typedef void (*q_timer_fn)(void *arg);

typedef struct q_env {
    void *ctx;
    int self;              /* this member's index in 0..n-1 */
    int n;                 /* members */
    uint64_t round_us;     /* R */
    /* Sends a request to member i (self included). Best effort: a message
     * to a member that is down is dropped. */
    void (*send)(void *ctx, int member, const seqd_msg *m);
    uint64_t (*now_us)(void *ctx);
    void *(*timer_start)(void *ctx, uint64_t after_us, q_timer_fn fire, void *arg);
    void (*timer_stop)(void *ctx, void *timer);
    uint64_t (*random)(void *ctx);
} q_env;

static inline int q_quorum(int n) { return n / 2 + 1; }

/* How a member's acceptor and recovery see its storage (storage/log.h in
 * the server, a simulated disk in tests). */
typedef void (*q_done_fn)(void *arg, int err);   /* err: 0 durable, else errno */

typedef struct q_store {
    void *ctx;
    uint64_t (*get)(void *ctx, const struct seqd_name *name);   /* 1 if absent */
    /* Raises name to value in memory now, calls done once durable. Returns
     * 0, or -errno when it cannot even queue (done is then not called). */
    int (*raise)(void *ctx, const struct seqd_name *name, uint64_t value,
                 q_done_fn done, void *arg);
    uint64_t (*count)(void *ctx);
    void (*entry)(void *ctx, uint64_t i, struct seqd_name *name, uint64_t *value);
    /* Meta entries (quorum/incarnation.h): short keys, never sequences,
     * max semantics like the table, durable and kept through compaction.
     * meta_get is 0 for an absent key. */
    uint64_t (*meta_get)(void *ctx, const char *key);
    int (*meta_raise)(void *ctx, const char *key, uint64_t value, q_done_fn done, void *arg);
    /* Records made durable since this process opened the store (this
     * incarnation's position), and the meta key the store keeps it under,
     * durably, with every batch (set once, before anything is appended). */
    uint64_t (*position)(void *ctx);
    void (*set_position_key)(void *ctx, const char *key);
} q_store;

/* How a module answers a request: exactly once, now or later. */
typedef void (*q_reply_fn)(void *cookie, const seqd_msg *reply);

#endif
