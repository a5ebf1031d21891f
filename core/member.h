/* core/member.h — a seqd member: the one module that owns its vote
 * (quorum/acceptor), its coordinator (quorum/coord), its recovery
 * (quorum/recovery), its log and table (storage/), and its outgoing links
 * to the other members (net/peer), and that runs the quorum code over the
 * event loop (DESIGN.md §2, §3).
 *
 * Front ends — the binary protocol (net/front_bin) and, later, HTTP and
 * admin commands — turn what arrives into the calls below and turn the
 * completions back into replies. They never see the quorum modules, and
 * nothing here knows about a connection: a fetch is a name, a count, a
 * deadline and a callback. Arrows point down only: front ends -> member ->
 * quorum / storage / net transport.
 *
 * Trust boundary: the front end validates what it received (names with
 * seqd_name_valid, counts with seqd_count_valid, ACCEPT bounds) and
 * answers bad input with an error reply; the calls here assert that it did.
 *
 * Lifecycle: member_start starts recovery; the member answers READ
 * and ACCEPT, and coordinates fetches, only once recovery completed
 * (member_ready). member_stop begins a graceful stop that ends the event
 * loop; member_free then releases everything, the log first.
 */
#ifndef SEQD_MEMBER_H
#define SEQD_MEMBER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../proto.h"
#include "histogram.h"
#include "../quorum/env.h"
#include "../quorum/recovery.h"
#include "../storage/log.h"
#include "../storage/table.h"

struct event_base;
struct auth_secret;

typedef struct member member;   /* struct member: front ends may forward-declare it */

typedef struct member_config {
    const char *data_dir;
    char **members;          /* sorted HOST:PORT list, self included */
    int n;
    int self;                /* index of --listen in members */
    uint64_t set_digest;     /* of the member set (datadir_set_digest) */
    const char *members_joined;  /* comma-joined, as in the identity */
    uint32_t round_ms;
    /* What the data directory holds (DESIGN.md §3): IDENTITY (initialized
     * with cid), PREPARED (prepared for cid) or neither (empty, or lost its
     * data: it learns the id from its peers). */
    enum recovery_mode mode;
    struct seqd_cid cid;
    /* The cluster secret (--secret-file), NULL for protected mode. */
    const struct auth_secret *secret;
    /* Testing hook: "MEMBER=CONNECT,..." makes the link to MEMBER connect
     * to CONNECT instead (a fault-injecting proxy); NULL for none. */
    const char *peer_route;
    /* The exhaustion alarm of /metrics, a share of 2^64 (0: the default). */
    double exhaustion_alarm;
    /* The member set now (quorum/epoch.h, DESIGN.md §6): what IDENTITY
     * records, or what a --replaces exchange led to; NULL: epoch 0 of
     * `members`. Then members/set_digest/members_joined are ignored and
     * the member shows its own (member_cfg: they follow the epoch), and
     * `self` is this member's slot in it. last_switch: the switch that led
     * to set->epoch (set->epoch > 0). */
    const struct q_set *set;
    const struct q_switch *last_switch;
    const struct q_switch *prev_switch;   /* what led to set->epoch - 1; NULL: unknown */
} member_config;

#define MEMBER_DEFAULT_EXHAUSTION_ALARM 0.5

/* Takes ownership of log and table (member_free closes and frees them) and
 * connects to the other members. NULL with a message on failure (log and
 * table are then still the caller's). */
member *member_new(struct event_base *base, const member_config *cfg, seqlog *log, table *t,
                   char *err, size_t errlen);

/* Starts recovery, once the front ends listen: until it completes the
 * member answers peers "recovering" and refuses fetches. -1 with a message
 * when out of memory. */
int member_start(member *m, char *err, size_t errlen);

/* Graceful stop: refuse new work, fail fetches still waiting for a round,
 * make the log durable (releasing the ACKs it held), then leave the loop. */
void member_stop(member *m);
bool member_stopping(const member *m);

/* True if the member stopped for a fatal reason (a failed fsync, a failed
 * recovery): its log can no longer be trusted and must not be flushed. */
bool member_fatal(const member *m);

/* Closes the log first (its last completions still reach the acceptor's
 * and the coordinator's callbacks, which reach the front ends' replies),
 * then frees everything. The front ends must still be alive. */
void member_free(member *m);

bool member_ready(const member *m);
const member_config *member_cfg(const member *m);

/* Called once, from the loop, when recovery completes and the member
 * starts to serve (seqd.c tells the service manager: sd_notify READY=1).
 * Set it before member_start; NULL for none. */
typedef void (*member_ready_fn)(void *arg);
void member_set_ready_cb(member *m, member_ready_fn fn, void *arg);

/* ---- fetch -------------------------------------------------------------- */

/* err = 0 with [first, first+count), else an enum seqd_err. */
typedef void (*member_fetch_fn)(void *arg, int err, uint64_t first, uint32_t count);

/* Longest a client may ask a member to work on one fetch, and what a
 * request without a deadline gets. */
#define MEMBER_MAX_TIMEOUT_MS 60000u
#define MEMBER_DEFAULT_TIMEOUT_MS 5000u

/* Allocates count IDs of name. name must be valid and count in
 * 1..SEQD_COUNT_MAX (asserted: the front end checked). timeout_ms 0 means
 * the default; it is capped at the maximum. Returns 0 when the fetch was
 * taken, and done will then be called exactly once, never from inside this
 * call; otherwise returns the enum seqd_err that refuses it now
 * (ERR_SHUTDOWN, ERR_RECOVERING, ERR_TIMEOUT when out of memory) and done
 * is never called. */
int member_fetch(member *m, const struct seqd_name *name, uint32_t count, uint32_t timeout_ms,
                 member_fetch_fn done, void *arg);

/* `seqd advance NAME V` (DESIGN.md §5): a round that makes every fetch
 * started after done reports success hand out IDs >= floor (coord.h,
 * coord_submit_floor). done gets err = 0 with first = the sequence's NEXT
 * afterwards (>= floor) and count = 0. Returns and calls done as
 * member_fetch does. name must be valid and floor >= 1 (asserted). */
int member_advance(member *m, const struct seqd_name *name, uint64_t floor, uint32_t timeout_ms,
                   member_fetch_fn done, void *arg);

/* GET /v1/sequences/NAME: the sequence's NEXT as a read quorum sees it
 * (coord_submit_read), in done's first; count = 0. As member_fetch. */
int member_read(member *m, const struct seqd_name *name, uint32_t timeout_ms, member_fetch_fn done,
                void *arg);

/* `seqd list`: one chunk of this member's table, from entry `start` in
 * insertion order (a stable cursor: entries are never removed), names
 * starting with prefix (plen 0: all), packed as snapshot entries (u8 len |
 * name | u64 NEXT as this member holds it) into out[0..cap). It looks at
 * no more than MEMBER_LIST_SCAN_MAX entries per call, so a prefix that
 * matches nothing costs each call a bounded time. Returns 0, or
 * ERR_RECOVERING / ERR_SHUTDOWN (a recovering member's table is not yet
 * what it answers READs with). The client takes the largest NEXT per name
 * over a quorum of members: what a READ would see. */
#define MEMBER_LIST_SCAN_MAX 65536u
typedef struct member_list_chunk {
    uint32_t next;    /* the start of the following chunk */
    uint16_t n;       /* entries packed */
    uint32_t bytes;   /* of out used */
    bool done;        /* no entries after next (as of now) */
} member_list_chunk;
int member_list(const member *m, const char *prefix, uint8_t plen, uint32_t start, uint8_t *out,
                size_t cap, member_list_chunk *chunk);

/* ---- status ------------------------------------------------------------- */

/* The counters of proto.h's SEQD_STATUS_COUNTERS, as MSG_STATUS_REPLY
 * carries them. */
void member_get_status(const member *m, struct seqd_status *st);

/* What /metrics exposes beyond the status counters (DESIGN.md §5). The
 * histogram points into the member: read it before the loop runs again. */
typedef struct member_metrics {
    struct seqd_status st;
    uint64_t round_conflicts, round_timeouts;   /* rounds by outcome */
    uint64_t rounds_committed, rounds_failed;
    uint64_t floors;                            /* advances committed */
    const struct headroom *headroom;            /* the exhaustion alarm */
    uint64_t log_bytes, log_writes, log_compactions, log_write_errors;
    uint64_t sequences;
    uint64_t coord_held, coord_evictions;       /* the coordinator's sequences (coord.h) */
    int peers_up;                               /* links to other members up */
    const histogram *fetch_latency;             /* member_fetch to its done, µs */
    const histogram *round_latency;             /* coordinator rounds, start to end */
    const histogram *fsync_latency;             /* the log's data fdatasyncs */
} member_metrics;
void member_get_metrics(const member *m, member_metrics *out);

/* ---- peers -------------------------------------------------------------- */

/* A peer's hello on an incoming connection: returns the member index it
 * proved it is, or -1 with the reason in why (the refusal is logged). An
 * incarnation this member recorded as superseded is refused with "rolled
 * back: recorded incarnation C nonce N position P", which the sender acts
 * on (DESIGN.md §3). */
int member_peer_hello(member *m, uint64_t epoch, uint64_t set_digest, uint32_t round_ms,
                      const struct seqd_inc *inc, const char *addr, size_t addr_len,
                      const char *from, char *why, size_t whylen);

/* READ, ACCEPT or SNAP_REQ from an authenticated peer connection: reply is
 * called exactly once, now or once the log is durable. */
void member_peer_request(member *m, int from, const seqd_msg *req, q_reply_fn reply, void *cookie);

/* Peer `from` stopped cleanly at inc (MSG_STOPPED): recorded durably, so
 * that its restart can skip its recovery read (DESIGN.md §3). */
void member_peer_stopped(member *m, int from, const struct seqd_inc *inc);

/* ---- init (DESIGN.md §3) ------------------------------------------------ */

/* MSG_INIT from `seqd init` on an admin connection (the front end checked
 * that it may send it). Returns 0 with *reply an MSG_INIT_REPLY, or an enum
 * seqd_err with the reason in why. PREPARE and COMMIT are durable before
 * the reply says so. */
int member_init(member *m, const seqd_msg *req, seqd_msg *reply, char *why, size_t whylen);

/* ---- replacing a member (DESIGN.md §6) ------------------------------------ */

/* MSG_SWITCH from a `--replaces` host on an admin connection (the front
 * end checked that it may send it). Returns 0 with *reply an
 * MSG_SWITCH_REPLY (its slots text in slots_buf), or an enum seqd_err with
 * the reason in why. A RECORD or DROP is durable before the reply. */
int member_switch(member *m, const seqd_msg *req, seqd_msg *reply, char *slots_buf,
                  size_t slots_len, char *why, size_t whylen);

/* The epoch now, for status. */
uint64_t member_epoch(const member *m);

/* ---- the operator's log --------------------------------------------------- */

/* One line per notable event, with a timestamp, a level and this member's
 * address, on stderr. Only the member and its front ends log; modules below
 * return errors. Levels: error (the member cannot go on, or lost something),
 * warn (a refusal, a failing disk, a peer that went back), info (lifecycle:
 * listening, ready, peers up and down, stopping), debug (per-connection
 * chatter). Lines above the level set by member_log_setup are dropped. */
enum member_log_level { MLOG_ERROR, MLOG_WARN, MLOG_INFO, MLOG_DEBUG };
void member_log(const member *m, enum member_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Process-wide (one member per process): the most verbose level written
 * (default MLOG_INFO) and the format, text lines (default) or JSON lines
 * {"ts":"RFC 3339","level":"...","member":"HOST:PORT","msg":"..."}. */
void member_log_setup(enum member_log_level max, bool json);
/* "error", "warn", "info", "debug" -> level; -1 for anything else. */
int member_log_level_parse(const char *s);

#endif
