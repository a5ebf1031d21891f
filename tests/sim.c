/* tests/sim.c — the deterministic simulator; see sim.h.
 *
 * Everything happens in events popped from one priority queue ordered by
 * (virtual time, creation order), and every random choice comes from one
 * splitmix64 stream seeded by cfg->seed: the same seed replays the same run.
 * The quorum modules are the real ones; only the world around them is
 * simulated, through q_env (send, clock, timers, random) and q_store.
 */
#include "sim.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../quorum/coord.h"
#include "../quorum/epoch.h"
#include "../quorum/qmem.h"
#include "../quorum/incarnation.h"
#include "../quorum/recovery.h"

#define SIM_NET_MIN_US 50u
#define SIM_NET_MAX_US 2000u
#define SIM_SYNC_MIN_US 50u
#define SIM_SYNC_MAX_US 500u
#define SIM_LATE_SLACK_US 1000u     /* a request may end this much after its deadline */
#define SIM_GIVEUP_GRACE_US 5000u   /* a client waits this long past its deadline */
#define SIM_PROBE_DEADLINE_US 1000000u
#define SIM_QUIESCE_LIMIT_US 20000000u
#define SIM_PROCS (SEQD_MAX_MEMBERS + 2)   /* the members and up to two new hosts */
#define SIM_SWITCHES 4

static const uint32_t sim_counts[] = {1, 7, 100, 1000};

enum sim_ev_kind {
    EV_MSG,          /* member -> member message */
    EV_TIMER,        /* a q_env timer */
    EV_FSYNC,        /* a member's disk makes its next raises durable */
    EV_FETCH,        /* client -> member fetch */
    EV_FETCH_REPLY,  /* member -> client answer */
    EV_CLIENT,       /* a client invokes its next fetch */
    EV_GIVEUP,       /* a client stops waiting for a fetch */
    EV_FAULT,        /* the nemesis strikes */
    EV_START,        /* a member (re)starts */
    EV_WIPE,         /* a targeted amnesia, right after an ACK */
    EV_PROBE,        /* final liveness probe */
    EV_INIT,         /* `seqd init` runs (probe and PREPARE) */
    EV_INIT_COMMIT,  /* ... and sends its COMMITs */
    EV_STRAY,        /* a stray init's PREPARE reaches a wiped member */
    EV_CRASH,        /* a scheduled crash: err = enum sim_crash, first = downtime */
    EV_ATTACK,       /* the bring-up attack's second act (wipe, stall, restart) */
    EV_RESTORE,      /* a member is restored from a backup (cfg.restores) */
    EV_RATTACK,      /* the restored-backups attack, act e->op (cfg.restore_attack) */
    /* replacements (e->op: the switch) */
    EV_SW_BEGIN,     /* a switch starts: its new host asks the others to record it */
    EV_SW_TICK,      /* the new host asks again (or drops, once lost) */
    EV_SW_RECORD,    /* new host -> member: record the switch */
    EV_SW_DURABLE,   /* the member's record is durable */
    EV_SW_REPLY,     /* member -> new host: e->err = enum seqd_switch_state */
    EV_SW_DROP       /* new host -> member: drop the lost switch */
};

typedef struct sim_ev {
    uint64_t t, id;
    enum sim_ev_kind kind;
    int member, from;
    uint32_t inc, from_inc;     /* incarnations when it was created */
    seqd_msg msg;
    uint8_t *buf;               /* owned copy of msg's variable part */
    void *ptr;
    size_t op;
    int err;
    uint64_t first;
    bool dropped;               /* lost after all (targeted loss) */
} sim_ev;

typedef struct sim_raise {
    struct sim_raise *next;
    bool meta;                  /* a meta entry (quorum/incarnation.h): name is its key */
    struct seqd_name name;
    uint64_t value, due;
    q_done_fn done;
    void *arg;
    int err;
} sim_raise;

typedef struct sim_rec {
    bool meta;
    struct seqd_name name;
    uint64_t value;
} sim_rec;

typedef struct sim_cookie {
    struct sim_cookie *prev, *next;
    struct sim_member *m;
    int to;
    uint32_t to_inc;
    struct seqd_name name;      /* of an ACCEPT, for the targeted nemesis */
} sim_cookie;

typedef struct sim_timer {
    struct sim_member *m;
    uint32_t inc;
    q_timer_fn fn;
    void *arg;
    bool stopped;
} sim_timer;

typedef struct sim_member {
    struct sim *s;
    int idx;
    bool up, ready, lacking, dying;
    uint32_t inc;               /* bumps at every crash */
    uint64_t stall_until, last_stall_end;
    /* disk: survives crashes, not wipes */
    bool initialized;           /* initialized(cid) */
    bool prepared;              /* prepared(cid): sticky until initialized */
    struct seqd_cid cid;
    map *disk, *disk_meta;
    sim_rec *log;               /* durable records in order, for roll-backs */
    size_t nlog, caplog;
    size_t inc_start;           /* log index where the latest incarnation began */
    size_t prev_inc_start;      /* ... and the one before it (restored backups) */
    uint64_t lost_inc;          /* its log lost the records of incarnations up to
                                   this counter while it was not initialized (a
                                   wipe or roll-back with no table to lose): 0 if
                                   none (see sim_lost_records) */
    bool restored;              /* restored from a backup, not yet recovered */
    bool must_catch;            /* ... from before an incarnation that became
                                   ready: DESIGN.md §3 says that is caught */
    size_t ready_inc_start;     /* inc_start of the last incarnation that became ready */
    size_t backup_keep;         /* the restored-backups attack: its backup */
    /* process */
    map *mem, *mem_meta;
    incarn *incn;
    uint64_t position;          /* durable raises in this process */
    struct seqd_name pos_key;   /* len 0: none yet */
    sim_raise *rq_head, *rq_tail;
    uint64_t last_due;
    uint32_t store_gen;
    q_env env;
    q_store store;
    acceptor *acc;
    coord *coord;
    recovery *rec;
    recovery *rec_done;         /* finished, freed after the event (see sim_recovered) */
    sim_cookie *cookies;
    /* epochs (see "epochs and replacements"): its slot, its set in memory
     * and on disk (the set survives crashes and wipes: the operator starts
     * a member with the current set's flags) */
    int slot;
    q_set set, dset;
    bool retired;               /* replaced (OLD) or a lost switch's host: never starts again */
    bool joining;               /* a new host whose switch is not complete yet */
    bool early;                 /* mutation early_vote: ready without recovery */
    int sw_pending;             /* a switch record not yet durable, or -1 */
} sim_member;

typedef struct sim_op {
    int client, member, name;
    uint32_t count;          /* 0 for a floor (advance) op */
    uint64_t floor;          /* a floor op's V: coord_submit_floor */
    bool read;               /* a read op: coord_submit_read (count 0) */
    uint64_t invoke, deadline;
    bool probe, submitted, coord_done, client_done, gave_up;
    int coord_err, client_err;
    uint64_t coord_first, coord_t, stall_end_at_done, client_first, client_t;
} sim_op;

typedef struct sim_fetch_ctx {
    struct sim *s;
    size_t op;
} sim_fetch_ctx;

typedef struct sim {
    sim_cfg cfg;
    sim_result *res;
    uint64_t rng, now, next_id, probe_at;
    sim_ev **heap;
    size_t nheap, capheap;
    sim_member m[SIM_PROCS];
    int nproc;                  /* processes: n, plus the new hosts of replacements */
    sim_op *ops;
    size_t nops, capops;
    struct seqd_name *names;
    int armed;                  /* wipes_only: member to wipe after its next ACK, or -1 */
    /* bring-up */
    bool founded;               /* some member is initialized: a cluster exists */
    bool init_done;             /* init saw every member initialized with one id */
    bool have_cluster;          /* cluster_cid is the id init committed */
    struct seqd_cid cluster_cid, init_x;
    int fresh_ids, strays;
    /* online check: per name, the committed ranges sorted by first ID */
    struct sim_committed { uint64_t first, last; size_t op; } **committed;
    size_t *ncommitted, *capcommitted;
    bool halted;                /* a commit overlapped: stop where it broke */
    uint32_t cut_mask;          /* partitioned from the others until cut_until */
    uint64_t cut_until;
    /* replacements */
    struct sim_switch {
        q_switch sw;
        q_set prev, next;       /* the set it leads from, and to */
        int newp;               /* its new host's process */
        int ans[SEQD_MAX_MEMBERS];   /* latest answer per slot (0: none) */
        bool begun, done, lost, gone;
    } swi[SIM_SWITCHES];
    int nsw;
    q_set cur;                  /* the latest completed set */
    int owner[SEQD_MAX_MEMBERS];   /* the process holding each slot in cur */
    uint32_t rcut[SIM_PROCS];   /* per process: processes it cannot reach until rcut_until */
    uint64_t rcut_until;
} sim;

/* ---- randomness and violations ----------------------------------------- */

static uint64_t sim_rand(sim *s)
{
    uint64_t z = (s->rng += UINT64_C(0x9E3779B97F4A7C15));
    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    return z ^ (z >> 31);
}

static uint64_t sim_between(sim *s, uint64_t lo, uint64_t hi)
{
    return lo + sim_rand(s) % (hi - lo + 1);
}

static bool sim_chance_ppm(sim *s, uint32_t ppm)
{
    return ppm && sim_rand(s) % 1000000u < ppm;
}

static void sim_fail(sim *s, const char *fmt, ...)
{
    sim_result *r = s->res;
    if (r->violations++ == 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(r->error, sizeof r->error, fmt, ap);
        va_end(ap);
    }
}

/* ---- the event queue ---------------------------------------------------- */

static bool ev_before(const sim_ev *a, const sim_ev *b)
{
    return a->t < b->t || (a->t == b->t && a->id < b->id);
}

static void heap_push(sim *s, sim_ev *e)
{
    if (s->nheap == s->capheap) {
        s->capheap = s->capheap ? s->capheap * 2 : 256;
        s->heap = realloc(s->heap, s->capheap * sizeof *s->heap);
        if (!s->heap)
            abort();
    }
    e->id = s->next_id++;
    size_t i = s->nheap++;
    while (i > 0 && ev_before(e, s->heap[(i - 1) / 2])) {
        s->heap[i] = s->heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    s->heap[i] = e;
}

static sim_ev *heap_pop(sim *s)
{
    if (!s->nheap)
        return NULL;
    sim_ev *top = s->heap[0], *last = s->heap[--s->nheap];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= s->nheap)
            break;
        if (c + 1 < s->nheap && ev_before(s->heap[c + 1], s->heap[c]))
            c++;
        if (!ev_before(s->heap[c], last))
            break;
        s->heap[i] = s->heap[c];
        i = c;
    }
    if (s->nheap)
        s->heap[i] = last;
    return top;
}

static sim_ev *ev_new(sim *s, enum sim_ev_kind kind, uint64_t after_us)
{
    sim_ev *e = q_xcalloc(1, sizeof *e);
    e->kind = kind;
    e->t = s->now + after_us;
    e->member = -1;
    return e;
}

static void ev_free(sim_ev *e)
{
    if (e->kind == EV_TIMER)
        free(e->ptr);
    free(e->buf);
    free(e);
}

static uint64_t sim_net_delay(sim *s) { return sim_between(s, SIM_NET_MIN_US, SIM_NET_MAX_US); }

/* ---- network ------------------------------------------------------------ */

static bool msg_is_round_traffic(const seqd_msg *m)
{
    switch (m->type) {
    case MSG_READ: case MSG_VALUE: case MSG_ACCEPT: case MSG_ACK: case MSG_NACK:
        return true;
    case MSG_REPLY_ERR:
        return !(m->reqid & Q_REQID_RECOVERY);
    default:
        return false;
    }
}

/* ---- epochs: addresses, routing, stamps -------------------------------- */

/* Process p's address is "hNN": epoch 0 holds h00.. in slot order (sorted,
 * as epoch_init wants), a new host gets the next free number. */
static void sim_addr(char *out, int p)
{
    snprintf(out, SEQD_ADDR_MAX + 1, "h%02d", p);
}

/* The process that holds `slot` in me's set: a member at E reaches OLD, a
 * member at E+1 the new host. */
static int sim_route(const sim_member *me, int slot)
{
    return atoi(me->set.addr[slot] + 1);
}

/* Whether a reply (or STOPPED) from process `from` comes over a link that
 * me still has: its slot's holder in me's set. A link to a host that is no
 * longer in the set is closed, so what it still sends is lost. */
static bool sim_link_current(const sim *s, const sim_member *me, int from)
{
    int slot = s->m[from].slot;
    return slot >= 0 && slot < me->set.n && sim_route(me, slot) == from;
}

static bool msg_epoch(const seqd_msg *m, uint64_t *epoch, uint64_t *digest)
{
    switch (m->type) {
    case MSG_READ: *epoch = m->u.read.epoch; *digest = m->u.read.digest; return true;
    case MSG_ACCEPT: *epoch = m->u.accept.epoch; *digest = m->u.accept.digest; return true;
    case MSG_SNAP_REQ: *epoch = m->u.snap_req.epoch; *digest = m->u.snap_req.digest; return true;
    default: return false;
    }
}

/* As the member does when it sends: the quorum code leaves them 0. */
static void sim_stamp(const sim_member *me, seqd_msg *m)
{
    switch (m->type) {
    case MSG_READ: m->u.read.epoch = me->set.epoch; m->u.read.digest = me->set.digest; break;
    case MSG_ACCEPT: m->u.accept.epoch = me->set.epoch; m->u.accept.digest = me->set.digest; break;
    case MSG_SNAP_REQ:
        m->u.snap_req.epoch = me->set.epoch;
        m->u.snap_req.digest = me->set.digest;
        break;
    default: break;
    }
}

static bool sim_cut_between(const sim *s, int from, int to)
{
    return s->now < s->rcut_until && ((s->rcut[from] >> to) & 1);
}

static void sim_send_copy(sim *s, int from, int to, uint32_t to_inc, const seqd_msg *m);

/* The replacements' side (see "epochs and replacements" below). */
static int sim_client_member(sim *s);
static bool sim_epoch_gate(sim *s, sim_member *me, const sim_ev *e);
static void sim_early_ready(sim *s, sim_member *me);
static void sim_replace_on_ready(sim *s, sim_member *me);
static void sim_replace_at_probe(sim *s);
static void sim_replace_dispatch(sim *s, sim_ev *e);
static void sim_replace_schedule(sim *s);
static void sim_replace_check(sim *s);
static int sim_replace_nodata(const sim *s);

/* Counts, loses, duplicates (a resend after a reconnect, say) or delivers. */
static void sim_send(sim *s, int from, int to, uint32_t to_inc, const seqd_msg *m)
{
    if (msg_is_round_traffic(m))
        s->res->round_msgs++;
    if (sim_chance_ppm(s, s->cfg.loss_ppm))
        return;
    if (s->now < s->cut_until && from != to &&
        (((s->cut_mask >> from) & 1) != ((s->cut_mask >> to) & 1)))
        return;   /* a partition: cut_mask's members apart from the rest */
    if (sim_cut_between(s, from, to))
        return;   /* a replacement's partition (cfg.replace_cut) */
    if (sim_chance_ppm(s, s->cfg.dup_ppm))
        sim_send_copy(s, from, to, to_inc, m);
    sim_send_copy(s, from, to, to_inc, m);
}

/* Copies m (its variable part too: the sender's buffer is gone when the
 * event fires) and schedules its delivery. */
static void sim_send_copy(sim *s, int from, int to, uint32_t to_inc, const seqd_msg *m)
{
    uint64_t delay = sim_net_delay(s);
    if (sim_chance_ppm(s, s->cfg.slow_ppm))
        delay = sim_between(s, s->cfg.round_us / 4, 5 * s->cfg.round_us);
    sim_ev *e = ev_new(s, EV_MSG, delay);
    e->member = to;
    e->inc = to_inc;
    e->from = from;
    e->from_inc = s->m[from].inc;
    e->msg = *m;
    if (m->type == MSG_REPLY_ERR || m->type == MSG_ERROR) {
        e->buf = q_xcalloc(1, (size_t)m->u.err.len + 1);
        memcpy(e->buf, m->u.err.text, m->u.err.len);
        e->msg.u.err.text = (const char *)e->buf;
    } else if (m->type == MSG_SNAP_CHUNK) {
        e->buf = q_xcalloc(1, m->u.snap.entries_len);
        memcpy(e->buf, m->u.snap.entries, m->u.snap.entries_len);
        e->msg.u.snap.entries = e->buf;
    }
    heap_push(s, e);
}

static void env_send(void *ctx, int member, const seqd_msg *m)
{
    sim_member *me = ctx;
    int to = sim_route(me, member);
    seqd_msg st = *m;
    sim_stamp(me, &st);
    sim_send(me->s, me->idx, to, me->s->m[to].inc, &st);
}

static uint64_t env_now(void *ctx)
{
    sim_member *me = ctx;
    return me->s->now;
}

static void *env_timer_start(void *ctx, uint64_t after_us, q_timer_fn fn, void *arg)
{
    sim_member *me = ctx;
    sim_timer *t = q_xcalloc(1, sizeof *t);
    t->m = me;
    t->inc = me->inc;
    t->fn = fn;
    t->arg = arg;
    sim_ev *e = ev_new(me->s, EV_TIMER, after_us);
    e->member = me->idx;
    e->ptr = t;
    heap_push(me->s, e);
    return t;
}

static void env_timer_stop(void *ctx, void *timer)
{
    (void)ctx;
    ((sim_timer *)timer)->stopped = true;   /* freed when its event pops */
}

static uint64_t env_random(void *ctx)
{
    sim_member *me = ctx;
    return sim_rand(me->s);
}

/* The acceptor answers through a cookie naming the requester and its
 * incarnation: a reply to a process that has since restarted is lost, as
 * it would be with its TCP connection. */
static void sim_acc_reply(void *cookie, const seqd_msg *reply)
{
    sim_cookie *c = cookie;
    sim_member *me = c->m;
    int c_to = c->to;
    struct seqd_name c_name = c->name;
    if (c->prev)
        c->prev->next = c->next;
    else
        me->cookies = c->next;
    if (c->next)
        c->next->prev = c->prev;
    sim_send(me->s, me->idx, c->to, c->to_inc, reply);
    free(c);
    if (reply->type == MSG_ACK && me->s->armed == me->idx) {
        /* Not from inside the acceptor's callback: the very next event. */
        sim_ev *e = ev_new(me->s, EV_WIPE, 0);
        e->member = me->idx;
        e->inc = me->inc;
        e->from = c_to;
        e->msg.type = MSG_ACCEPT;   /* the round that was ACKed */
        e->msg.reqid = reply->reqid;
        e->msg.u.accept.new_ = reply->u.ack.new_;
        e->msg.u.accept.name = c_name;
        heap_push(me->s, e);
        me->s->armed = -1;
    }
}

/* ---- the simulated disk (q_store) -------------------------------------- */

static uint64_t map_get(const map *t, const struct seqd_name *name)
{
    long i = map_find(t, name->s, name->len);
    return i < 0 ? 1 : map_value(t, (size_t)i);
}

static void map_raise(map *t, const struct seqd_name *name, uint64_t v)
{
    size_t i = q_map_insert(t, name->s, name->len, v);
    if (map_value(t, i) < v)
        map_set(t, i, v);
}

static uint64_t store_get(void *ctx, const struct seqd_name *name)
{
    sim_member *me = ctx;
    return map_get(me->mem, name);
}

/* In memory now; durable after an fsync delay, in order (each raise is
 * due no earlier than the one before it). A failed write (storage_errors)
 * leaves the value in memory but not on disk, like storage/log.c. */
static int store_queue(sim_member *me, bool meta, const struct seqd_name *name, uint64_t value,
                       q_done_fn done, void *arg)
{
    sim *s = me->s;
    map_raise(meta ? me->mem_meta : me->mem, name, value);
    sim_raise *r = q_xcalloc(1, sizeof *r);
    r->meta = meta;
    r->name = *name;
    r->value = value;
    r->done = done;
    r->arg = arg;
    r->err = s->cfg.storage_errors && sim_chance_ppm(s, 20000) ? ENOSPC : 0;
    uint64_t due = s->now + sim_between(s, SIM_SYNC_MIN_US, SIM_SYNC_MAX_US);
    r->due = me->last_due > due ? me->last_due : due;
    me->last_due = r->due;
    if (me->rq_tail)
        me->rq_tail->next = r;
    else
        me->rq_head = r;
    me->rq_tail = r;
    sim_ev *e = ev_new(s, EV_FSYNC, r->due - s->now);
    e->member = me->idx;
    e->inc = me->store_gen;
    heap_push(s, e);
    return 0;
}

/* Like the server's member core: peers' positions ride with the next
 * batch (inc_flush). */
static int store_raise(void *ctx, const struct seqd_name *name, uint64_t value, q_done_fn done,
                       void *arg)
{
    sim_member *me = ctx;
    if (me->incn)
        inc_flush(me->incn);
    return store_queue(me, false, name, value, done, arg);
}

static uint64_t store_count(void *ctx)
{
    sim_member *me = ctx;
    return map_count(me->mem);
}

static uint64_t store_meta_get(void *ctx, const char *key)
{
    sim_member *me = ctx;
    long i = map_find(me->mem_meta, key, (uint8_t)strlen(key));
    return i < 0 ? 0 : map_value(me->mem_meta, (size_t)i);
}

static int store_meta_raise(void *ctx, const char *key, uint64_t value, q_done_fn done, void *arg)
{
    sim_member *me = ctx;
    struct seqd_name k;
    seqd_name_set(&k, key, strlen(key));
    return store_queue(me, true, &k, value, done, arg);
}

static uint64_t store_position(void *ctx)
{
    sim_member *me = ctx;
    return me->position;
}

static void store_set_position_key(void *ctx, const char *key)
{
    sim_member *me = ctx;
    seqd_name_set(&me->pos_key, key, strlen(key));
    me->position = 0;   /* counts from here, as storage/log.c does */
}

static void store_entry(void *ctx, uint64_t i, struct seqd_name *name, uint64_t *value)
{
    sim_member *me = ctx;
    uint8_t len;
    const char *n = map_name(me->mem, (size_t)i, &len);
    seqd_name_set(name, n, len);
    *value = map_value(me->mem, (size_t)i);
}

static void disk_append(sim_member *me, bool meta, const struct seqd_name *name, uint64_t v)
{
    if (me->nlog == me->caplog) {
        me->caplog = me->caplog ? me->caplog * 2 : 64;
        me->log = realloc(me->log, me->caplog * sizeof *me->log);
        if (!me->log)
            abort();
    }
    me->log[me->nlog].meta = meta;
    me->log[me->nlog].name = *name;
    me->log[me->nlog].value = v;
    me->nlog++;
    map_raise(meta ? me->disk_meta : me->disk, name, v);
}

static void sim_fsync(sim *s, sim_member *me, uint32_t gen)
{
    while (me->store_gen == gen && me->rq_head && me->rq_head->due <= s->now) {
        sim_raise *r = me->rq_head;
        me->rq_head = r->next;
        if (!me->rq_head)
            me->rq_tail = NULL;
        if (!r->err) {
            disk_append(me, r->meta, &r->name, r->value);
            /* The position record rides in the same batch (storage/log.c). */
            me->position++;
            if (me->pos_key.len) {
                disk_append(me, true, &me->pos_key, me->position);
                map_raise(me->mem_meta, &me->pos_key, me->position);
            }
        }
        if (r->done)
            r->done(r->arg, r->err);
        free(r);
    }
}

static uint64_t disk_meta_get(const sim_member *me, const char *key)
{
    long i = map_find(me->disk_meta, key, (uint8_t)strlen(key));
    return i < 0 ? 0 : map_value(me->disk_meta, (size_t)i);
}

/* Memory after a restart: what the disk holds, in its order. */
static map *disk_to_mem(const map *disk)
{
    map *t = q_map_new();
    for (size_t i = 0; i < map_count(disk); i++) {
        uint8_t len;
        const char *n = map_name(disk, i, &len);
        q_map_insert(t, n, len, map_value(disk, i));
    }
    return t;
}

/* ---- members ------------------------------------------------------------ */

/* Cluster ids: byte 0 is 1 for ids `seqd init` chose (byte 1 tells its
 * fresh choices apart), 2 for stray inits (byte 1 counts them). */
static struct seqd_cid sim_cid(uint8_t kind, uint8_t k)
{
    struct seqd_cid c;
    memset(&c, 0, sizeof c);
    c.b[0] = kind;
    c.b[1] = k;
    return c;
}

static const char *sim_cid_str(const struct seqd_cid *c, char *buf, size_t len)
{
    snprintf(buf, len, "%u.%u%s", c->b[0], c->b[1], c->b[0] > 2 ? "(random)" : "");
    return buf;
}

/* done of a recovery: the member records initialized(cid) durably, then
 * is ready. The invariants that a wrong recovery would break are checked
 * here, at the line where it would break them. */
static void sim_recovered(void *arg, int err, bool committed, const struct seqd_cid *cid)
{
    sim_member *me = arg;
    sim *s = me->s;
    char b1[32], b2[32];
    if (err) {
        sim_fail(s, "member %d: recovery failed with %d", me->idx, err);
        return;
    }
    if (committed)
        s->res->commits++;
    if (me->rec && recovery_clean(me->rec))
        s->res->clean_restarts++;
    if (committed && me->lacking)
        sim_fail(s, "member %d lost its data and then ended recovery as committed (cid %s)",
                 me->idx, sim_cid_str(cid, b1, sizeof b1));
    if (committed && !me->prepared)
        sim_fail(s, "member %d ended recovery as committed but was never prepared", me->idx);
    if (committed && me->prepared && !seqd_cid_eq(cid, &me->cid))
        sim_fail(s, "member %d prepared for %s committed %s", me->idx,
                 sim_cid_str(&me->cid, b1, sizeof b1), sim_cid_str(cid, b2, sizeof b2));
    if (committed && map_count(me->mem) != 0)
        sim_fail(s, "member %d committed with %zu sequences in its table", me->idx,
                 map_count(me->mem));
    if (me->initialized && !seqd_cid_eq(cid, &me->cid))
        sim_fail(s, "member %d initialized with %s recovered into %s", me->idx,
                 sim_cid_str(&me->cid, b1, sizeof b1), sim_cid_str(cid, b2, sizeof b2));
    if (seqd_cid_none(cid))
        sim_fail(s, "member %d recovered without a cluster id", me->idx);
    if (me->must_catch)
        sim_fail(s, "member %d was restored from a backup older than an incarnation that became "
                 "ready, and recovered without a rollback verdict", me->idx);
    me->restored = me->must_catch = false;
    /* A full read has checked N-Q+1 others' records of it (as `lacking`
     * trusts for an initialized member), or a verdict covered them all. */
    if (me->lost_inc && ((!committed && !(me->rec && recovery_clean(me->rec))) ||
                         disk_meta_get(me, "rbk") >= me->lost_inc))
        me->lost_inc = 0;
    me->ready_inc_start = me->inc_start;
    if (!s->have_cluster) {
        /* Only the mutation founds a cluster that init never committed. */
        s->have_cluster = true;
        s->cluster_cid = *cid;
        s->res->new_clusters++;
    } else if (!seqd_cid_eq(cid, &s->cluster_cid)) {
        s->res->new_clusters++;
        sim_fail(s, "member %d initialized with %s, the cluster is %s: two clusters", me->idx,
                 sim_cid_str(cid, b1, sizeof b1), sim_cid_str(&s->cluster_cid, b2, sizeof b2));
    }
    /* Freed after this event, not here, though recovery.h says done may
     * free it: rec_on_chunk (quorum/recovery.c) still writes m->reqid and
     * reads r->phase after rec_counts returns, and rec_counts calls
     * rec_finish -> done synchronously when a prepared member meets a
     * member initialized with its id (nothing to raise). Freeing here is a
     * heap use-after-free under ASan (bring-up attack, n=5 seed 24000).
     * cid points into r, too: copy it before any free. */
    me->rec_done = me->rec;
    me->rec = NULL;
    me->initialized = true;     /* durable before it is ready */
    me->prepared = false;
    me->cid = *cid;
    s->founded = true;
    me->lacking = false;
    me->ready = true;
    acc_set_cid(me->acc, &me->cid);
    acc_set_has_state(me->acc, true);
    acc_set_ready(me->acc, true);
    sim_replace_on_ready(s, me);
}

static void sim_incarnated(void *arg, int err);

static void member_start(sim *s, sim_member *me)
{
    me->up = true;
    me->ready = false;
    me->stall_until = 0;
    me->mem = disk_to_mem(me->disk);
    me->mem_meta = disk_to_mem(me->disk_meta);
    me->position = 0;
    me->pos_key.len = 0;
    me->prev_inc_start = me->inc_start;
    me->inc_start = me->nlog;
    me->last_due = 0;
    me->set = me->dset;
    me->sw_pending = -1;
    me->env = (q_env){.ctx = me, .self = me->slot, .n = s->cfg.n, .round_us = s->cfg.round_us,
                      .send = env_send, .now_us = env_now, .timer_start = env_timer_start,
                      .timer_stop = env_timer_stop, .random = env_random};
    me->store = (q_store){.ctx = me, .get = store_get, .raise = store_raise,
                          .count = store_count, .entry = store_entry,
                          .meta_get = store_meta_get, .meta_raise = store_meta_raise,
                          .position = store_position, .set_position_key = store_set_position_key};
    me->acc = acc_new(&me->store);
    me->incn = s->cfg.no_incarnations ? NULL : inc_new(&me->env, &me->store);
    acc_set_incarn(me->acc, me->incn);
    acc_set_rule(me->acc, s->cfg.rule);
    /* Counts for others only once verified (quorum/incarnation.h). */
    acc_set_has_state(me->acc, me->initialized && s->cfg.n == 1);
    if (me->initialized)
        acc_set_cid(me->acc, &me->cid);
    me->coord = coord_new(&me->env);
    coord_set_floor_trusts_reads(me->coord, s->cfg.floor_trusts_reads);
    coord_set_fast_path(me->coord, s->cfg.fast_path);
    coord_set_coalescing(me->coord, s->cfg.coalescing);
    if (s->cfg.pipeline)
        coord_set_pipeline(me->coord, s->cfg.pipeline);
    if (s->cfg.coord_idle_us)
        coord_set_idle(me->coord, s->cfg.coord_idle_us);
    /* A new incarnation, durable before the recovery says anything. */
    if (!me->incn)
        sim_incarnated(me, 0);
    else if (inc_begin(me->incn, 0, sim_incarnated, me) < 0)
        abort();
}

static void sim_trust(void *arg, bool counts)
{
    sim_member *me = arg;
    acc_set_has_state(me->acc, counts && me->initialized);
}

static void sim_rolled_back(void *arg, const char *why)
{
    sim_member *me = arg;
    (void)why;
    acc_set_has_state(me->acc, false);
    me->s->res->rollbacks_caught++;
    if (me->restored)
        me->s->res->restores_caught++;
    me->restored = false;
    me->must_catch = false;
}

static void sim_incarnated(void *arg, int err)
{
    sim_member *me = arg;
    sim *s = me->s;
    if (err && me->incn) {
        /* A failed write (storage_errors): the server tries again. */
        if (inc_begin(me->incn, 0, sim_incarnated, me) < 0)
            abort();
        return;
    }
    if (me->early) {
        sim_early_ready(s, me);
        return;
    }
    enum recovery_mode mode = me->initialized ? RECOVERY_INITIALIZED
                              : me->prepared  ? RECOVERY_PREPARED
                                              : RECOVERY_EMPTY;
    static const recovery_hooks hooks = {.trust = sim_trust, .rolled_back = sim_rolled_back};
    me->rec = recovery_start(&me->env, &me->store, me->incn, &hooks, mode, &me->cid,
                             sim_recovered, me);
    if (s->cfg.count_unverified)
        recovery_set_count_unverified(me->rec, true);
    if (s->cfg.unsafe_recovery)
        recovery_set_unsafe_read_first(me->rec, true);
    /* Wave 1's rule, on the recoveries that start once a cluster exists
     * (before that, it would found one before init runs, and the schedule
     * would never reach the attack). */
    if (s->cfg.relaxed_bootstrap && s->founded)
        recovery_set_relaxed_bootstrap(me->rec, true);
}

static void sim_add_coord_stats(sim *s, const coord *c)
{
    coord_stats st;
    coord_get_stats(c, &st);
    sim_result *r = s->res;
    r->rounds += st.rounds;
    r->reads += st.reads;
    r->conflicts += st.conflicts;
    r->nacks += st.nacks;
    r->timeouts += st.timeouts;
    r->fetches += st.fetches;
    r->ids += st.ids;
    r->evictions += st.evictions;
    r->late_replies += st.late_replies;
}

/* The run went quiet (no event left): every sequence has been idle past
 * its coordinator's idle time, so none may still be held. */
static void sim_check_held(sim *s)
{
    for (int i = 0; i < s->cfg.n; i++) {
        sim_member *me = &s->m[i];
        if (!me->up || !me->coord)
            continue;
        coord_stats st;
        coord_get_stats(me->coord, &st);
        s->res->held_end += st.held;
        if (st.held > 0)
            sim_fail(s, "member %d: its coordinator still holds %llu sequence(s) after the run "
                     "went quiet", i, (unsigned long long)st.held);
    }
}

/* The process dies: pending raises never complete, requests it
 * coordinated end (their clients lose the connection), memory is lost. */
static void member_stop(sim *s, sim_member *me)
{
    if (me->sw_pending >= 0)
        s->res->sw_records_lost++;   /* not durable: the crash takes it */
    me->sw_pending = -1;
    me->set = me->dset;
    me->dying = true;
    me->store_gen++;
    while (me->rq_head) {
        sim_raise *r = me->rq_head;
        me->rq_head = r->next;
        free(r);
    }
    me->rq_tail = NULL;
    recovery_free(me->rec);
    me->rec = NULL;
    recovery_free(me->rec_done);
    me->rec_done = NULL;
    sim_add_coord_stats(s, me->coord);
    coord_free(me->coord);
    me->coord = NULL;
    acc_free(me->acc);
    me->acc = NULL;
    while (me->cookies) {
        sim_cookie *c = me->cookies;
        me->cookies = c->next;
        free(c);
    }
    map_free(me->mem);
    me->mem = NULL;
    map_free(me->mem_meta);
    me->mem_meta = NULL;
    inc_free(me->incn);
    me->incn = NULL;
    me->up = me->ready = me->dying = false;
    me->inc++;
    me->stall_until = 0;
}

/* Rebuilds the disk table from the first `keep` log records. */
static void disk_rollback(sim_member *me, size_t keep)
{
    map_free(me->disk);
    map_free(me->disk_meta);
    me->disk = q_map_new();
    me->disk_meta = q_map_new();
    me->nlog = keep;
    for (size_t i = 0; i < keep; i++)
        map_raise(me->log[i].meta ? me->disk_meta : me->disk, &me->log[i].name, me->log[i].value);
    if (me->inc_start > keep)
        me->inc_start = keep;
    if (me->prev_inc_start > keep)
        me->prev_inc_start = keep;
}

/* Everything goes: the table, the cluster id, a prepared record. */
static void disk_wipe(sim_member *me)
{
    disk_rollback(me, 0);
    me->initialized = false;
    me->prepared = false;
    memset(&me->cid, 0, sizeof me->cid);
}

/* ---- clients ------------------------------------------------------------ */

static size_t op_new(sim *s, int client, int member, int name, uint32_t count, uint64_t deadline)
{
    if (s->nops == s->capops) {
        s->capops = s->capops ? s->capops * 2 : 1024;
        s->ops = realloc(s->ops, s->capops * sizeof *s->ops);
        if (!s->ops)
            abort();
    }
    sim_op *op = &s->ops[s->nops];
    memset(op, 0, sizeof *op);
    op->client = client;
    op->member = member;
    op->name = name;
    op->count = count;
    op->invoke = s->now;
    op->deadline = deadline;
    s->res->ops++;
    return s->nops++;
}

static void op_send(sim *s, size_t i)
{
    sim_ev *e = ev_new(s, EV_FETCH, sim_net_delay(s));
    e->member = s->ops[i].member;
    e->inc = s->m[e->member].inc;
    e->op = i;
    heap_push(s, e);
}

static void client_next(sim *s, int client, uint64_t after_us)
{
    sim_ev *e = ev_new(s, EV_CLIENT, after_us);
    e->op = (size_t)client;
    heap_push(s, e);
}

/* A floor (`seqd advance`) near where the name is: from a little below
 * the highest ID handed out so far (an advance that changes nothing but
 * one ID) to a few thousand above it — close enough that rounds in flight,
 * NACKed and learned values straddle it. */
static uint64_t sim_floor_value(sim *s, int name)
{
    uint64_t top = 1;
    size_t n = s->ncommitted[name];
    if (n > 0)
        top = s->committed[name][n - 1].last + 1;
    uint64_t v = top + sim_rand(s) % 4000u;
    uint64_t below = sim_rand(s) % 1500u;
    v = v > below ? v - below : 1;
    return v < 1 ? 1 : v;
}

static void client_invoke(sim *s, int client)
{
    if (s->now >= s->cfg.duration_us)
        return;
    int member = sim_client_member(s);
    if (s->cfg.one_coordinator)
        member = 0;
    int name = (int)(sim_rand(s) % (uint64_t)s->cfg.names);
    uint32_t count = sim_counts[sim_rand(s) % (sizeof sim_counts / sizeof sim_counts[0])];
    bool floor = s->cfg.floor_ppm && sim_rand(s) % 1000000u < s->cfg.floor_ppm;
    bool read = !floor && s->cfg.read_ppm && sim_rand(s) % 1000000u < s->cfg.read_ppm;
    size_t i = op_new(s, client, member, name, floor || read ? 0 : count,
                      s->now + s->cfg.deadline_us);
    if (floor)
        s->ops[i].floor = sim_floor_value(s, name);
    s->ops[i].read = read;
    op_send(s, i);
    sim_ev *g = ev_new(s, EV_GIVEUP, s->cfg.deadline_us + SIM_GIVEUP_GRACE_US);
    g->op = i;
    heap_push(s, g);
}

static void fetch_reply(sim *s, size_t i, int err, uint64_t first)
{
    sim_ev *e = ev_new(s, EV_FETCH_REPLY, sim_net_delay(s));
    e->op = i;
    e->err = err;
    e->first = first;
    heap_push(s, e);
}

/* The online half of the checker: every range a coordinator commits is
 * compared, as it is handed out, with the ones committed before it, so a
 * broken rule stops the run at the commit that broke it (with who and
 * when), not only in the history check at the end. */
static void sim_check_commit(sim *s, size_t opi, uint64_t first, uint32_t count)
{
    const sim_op *op = &s->ops[opi];
    if (first < 1 || first > UINT64_MAX - count)
        return;   /* the final check reports it */
    int nm = op->name;
    struct sim_committed *v = s->committed[nm];
    size_t n = s->ncommitted[nm], lo = 0, hi = n;
    uint64_t last = first + count - 1;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (v[mid].first < first)
            lo = mid + 1;
        else
            hi = mid;
    }
    const struct sim_committed *clash = NULL;
    if (lo > 0 && v[lo - 1].last >= first)
        clash = &v[lo - 1];
    else if (lo < n && v[lo].first <= last)
        clash = &v[lo];
    if (clash != NULL && !s->halted) {
        const sim_op *o = &s->ops[clash->op];
        snprintf(s->res->broken, sizeof s->res->broken,
                 "t=%llu us: member %d committed %s [%llu, %llu] for op %zu, which overlaps "
                 "[%llu, %llu] committed by member %d for op %zu at t=%llu us",
                 (unsigned long long)s->now, op->member, s->names[nm].s,
                 (unsigned long long)first, (unsigned long long)last, opi,
                 (unsigned long long)clash->first, (unsigned long long)clash->last, o->member,
                 clash->op, (unsigned long long)o->coord_t);
        s->res->broken_at_us = s->now;
        s->halted = true;
        sim_fail(s, "%s", s->res->broken);
    }
    if (n == s->capcommitted[nm]) {
        s->capcommitted[nm] = n ? 2 * n : 64;
        v = realloc(v, s->capcommitted[nm] * sizeof *v);
        if (v == NULL)
            abort();
        s->committed[nm] = v;
    }
    memmove(&v[lo + 1], &v[lo], (n - lo) * sizeof *v);
    v[lo] = (struct sim_committed){first, last, opi};
    s->ncommitted[nm] = n + 1;
}

static void sim_fetch_done(void *arg, int err, uint64_t first, uint32_t count)
{
    sim_fetch_ctx *f = arg;
    sim *s = f->s;
    sim_op *op = &s->ops[f->op];
    if (op->coord_done)
        sim_fail(s, "op %zu ended twice", f->op);
    op->coord_done = true;
    op->coord_err = err;
    op->coord_first = first;
    op->coord_t = s->now;
    op->stall_end_at_done = s->m[op->member].last_stall_end;
    if (op->floor) {
        /* A floor reports the NEXT it left (>= V), no IDs. */
        if (err == 0 && (count != 0 || first < op->floor))
            sim_fail(s, "op %zu: floor %llu done with NEXT %llu, count %u", f->op,
                     (unsigned long long)op->floor, (unsigned long long)first, count);
        if (err == 0)
            s->res->floors_ok++;
    } else if (op->read) {
        if (err == 0 && (count != 0 || first < 1))
            sim_fail(s, "op %zu: read done with %llu, count %u", f->op, (unsigned long long)first,
                     count);
    } else if (err == 0 && count != op->count)
        sim_fail(s, "op %zu asked %u IDs, got %u", f->op, op->count, count);
    if (err == 0 && !op->floor && !op->read)
        sim_check_commit(s, f->op, first, op->count);
    if (!s->m[op->member].dying)
        fetch_reply(s, f->op, err, first);
    free(f);
}

static void on_fetch(sim *s, sim_ev *e)
{
    sim_member *me = &s->m[e->member];
    if (!me->up || me->inc != e->inc)
        return;   /* connection lost: the client gives up at its deadline */
    sim_op *op = &s->ops[e->op];
    if (!me->ready) {
        fetch_reply(s, e->op, ERR_RECOVERING, 0);
        return;
    }
    op->submitted = true;
    s->res->submitted++;
    sim_fetch_ctx *f = q_xcalloc(1, sizeof *f);
    f->s = s;
    f->op = e->op;
    if (op->read)
        coord_submit_read(me->coord, &s->names[op->name], op->deadline, sim_fetch_done, f);
    else if (op->floor)
        coord_submit_floor(me->coord, &s->names[op->name], op->floor, op->deadline, sim_fetch_done, f);
    else
        coord_submit(me->coord, &s->names[op->name], op->count, op->deadline, sim_fetch_done, f);
}

static void on_fetch_reply(sim *s, sim_ev *e)
{
    sim_op *op = &s->ops[e->op];
    if (op->client_done || op->gave_up)
        return;
    op->client_done = true;
    op->client_err = e->err;
    op->client_first = e->first;
    op->client_t = s->now;
    if (!op->probe)
        client_next(s, op->client, sim_between(s, 0, s->cfg.think_us));
}

static void on_giveup(sim *s, sim_ev *e)
{
    sim_op *op = &s->ops[e->op];
    if (op->client_done)
        return;
    op->gave_up = true;
    if (!op->probe)
        client_next(s, op->client, sim_between(s, 0, s->cfg.think_us));
}

/* ---- faults ------------------------------------------------------------- */

/* Members without their data: wiped or never initialized (no state; a
 * prepared member that has not been initialized too), or rolled back and
 * not yet recovered. The fault model allows N-Q. Before any member is
 * initialized there is no cluster, and no data to lose. */
static int sim_nodata(const sim *s)
{
    if (!s->founded)
        return 0;
    int k = 0;
    for (int i = 0; i < s->cfg.n; i++)
        k += !s->m[s->owner[i]].initialized || s->m[s->owner[i]].lacking;
    return k + sim_replace_nodata(s);
}

/* What a new fault may add to: sim_nodata, and the members that will be
 * marked rolled back at their next read for records lost before init
 * (sim_lost_records). Those serve, and count, until then; only the fault
 * generator must not take them for members with data. */
static int sim_nodata_faults(const sim *s)
{
    int k = sim_nodata(s);
    if (s->founded)
        for (int i = 0; i < s->cfg.n; i++)
            k += s->m[s->owner[i]].initialized && !s->m[s->owner[i]].lacking &&
                 s->m[s->owner[i]].lost_inc != 0;
    return k;
}

static int sim_pick_up(sim *s)
{
    int up[SIM_PROCS], k = 0;
    for (int i = 0; i < s->nproc; i++)
        if (s->m[i].up && !s->m[i].dying)
            up[k++] = i;
    return k ? up[sim_rand(s) % (uint64_t)k] : -1;
}

static void sim_restart_later(sim *s, int i, uint64_t after_us)
{
    sim_ev *e = ev_new(s, EV_START, after_us);
    e->member = i;
    heap_push(s, e);
}

enum sim_crash { CRASH_PLAIN, CRASH_WIPE, CRASH_ROLLBACK, CRASH_CLEAN };

/* SIGTERM (core/member.c's stop stages): every raise queued is made
 * durable (their ACKs go out), and a ready member tells its peers where it
 * stopped (MSG_STOPPED) before it goes. */
static void sim_clean_stop(sim *s, sim_member *me)
{
    for (sim_raise *r = me->rq_head; r; r = r->next)
        r->due = s->now;
    sim_fsync(s, me, me->store_gen);
    if (!me->ready || !me->incn)
        return;
    acc_set_ready(me->acc, false);
    seqd_msg st = {.type = MSG_STOPPED, .reqid = 0};
    st.u.stopped.inc = inc_self(me->incn);
    for (int j = 0; j < s->cfg.n; j++)
        if (j != me->slot)
            sim_send(s, me->idx, sim_route(me, j), s->m[sim_route(me, j)].inc, &st);
    s->res->clean_stops++;
}

/* A member that is not initialized loses no state with its log, but the
 * incarnation records its peers hold of it now name incarnations its log
 * does not hold (or holds only up to a lower position). Whenever one of
 * those records reaches it — maybe only after init committed it, when no
 * recovery read checked them — it is marked rolled back (quorum/
 * incarnation.h), and it is without state from then until a recovery
 * completes. For the fault model it counts as without data until a
 * recovery that read N-Q+1 others completed (not init's COMMIT, not a
 * clean stop: neither reads a record), as a rolled-back initialized
 * member does (`lacking`), or until a verdict covered every lost
 * incarnation (its rbk). Uncounted, a real roll-back of another member
 * beside it made two of three members without state, which no recovery
 * can get past (three_members_faults seed 6953514237). */
static void sim_lost_records(sim_member *me)
{
    uint64_t k = disk_meta_get(me, "inc");
    if (!me->initialized && k > me->lost_inc)
        me->lost_inc = k;
}

static void sim_crash(sim *s, int i, enum sim_crash how, uint64_t down_us)
{
    sim_member *me = &s->m[i];
    if (how == CRASH_CLEAN)
        sim_clean_stop(s, me);
    member_stop(s, me);
    s->res->crashes++;
    if (how == CRASH_WIPE) {
        sim_lost_records(me);
        disk_wipe(me);
        /* Before a cluster exists a wipe loses nothing: init prepares the
         * member again (or, once COMMIT reached others, it recovers). */
        me->lacking = s->founded;
        s->res->wipes++;
        if (s->cfg.stray_init && s->founded) {
            sim_ev *e = ev_new(s, EV_STRAY, down_us + sim_between(s, 0, 3 * s->cfg.round_us));
            e->member = i;
            e->inc = me->inc;
            heap_push(s, e);
        }
    } else if (how == CRASH_ROLLBACK && me->nlog > 0) {
        size_t k = (size_t)sim_between(s, 1, me->nlog < 20 ? me->nlog : 20);
        sim_lost_records(me);
        disk_rollback(me, me->nlog - k);
        /* Lost state only if it had any: a prepared member's log holds
         * only incarnation records (its bootstrap state is apart). */
        me->lacking = me->lacking || me->initialized;
        s->res->rollbacks++;
    }
    sim_restart_later(s, i, down_us);
}

static void sim_fault(sim *s)
{
    int n = s->cfg.n, slack = n - q_quorum(n);
    uint64_t R = s->cfg.round_us;
    int i = sim_pick_up(s);
    if (i < 0)
        return;
    if (s->cfg.wipes_only) {
        /* The nastiest moment for an amnesia: just after the member ACKed
         * a round that may still commit (see on_wipe). */
        if (s->armed < 0)
            s->armed = i;
        return;
    }
    uint64_t roll = sim_rand(s) % 100;
    if (roll < 35) {
        sim_crash(s, i, roll < 15 ? CRASH_CLEAN : CRASH_PLAIN, sim_between(s, 0, 3 * R));
    } else if (roll < 55) {
        s->m[i].stall_until = s->now + R + sim_between(s, 0, 2 * R);
        s->m[i].last_stall_end = s->m[i].stall_until;
        s->res->stalls++;
    } else if (roll < 72) {
        if (sim_nodata_faults(s) + 1 <= slack && s->m[i].initialized && !s->m[i].lacking)
            sim_crash(s, i, CRASH_WIPE, sim_between(s, 0, 3 * R));
        else
            sim_crash(s, i, CRASH_PLAIN, sim_between(s, 0, 3 * R));
    } else if (roll < 80) {
        /* two at once, where the fault model allows it (N >= 5) */
        int j = sim_pick_up(s);
        if (j >= 0 && j != i && sim_nodata_faults(s) + 2 <= slack && s->m[i].initialized &&
            s->m[j].initialized) {
            sim_crash(s, i, CRASH_WIPE, sim_between(s, 0, 3 * R));
            sim_crash(s, j, CRASH_WIPE, sim_between(s, 0, 3 * R));
        } else
            sim_crash(s, i, CRASH_PLAIN, sim_between(s, 0, R));
    } else if (roll < 90) {
        /* A rolled-back member still has state and counts in others'
         * recoveries, so it is safe only while nobody else lacks data. */
        if (sim_nodata_faults(s) == 0 && n >= 2)
            sim_crash(s, i, CRASH_ROLLBACK, sim_between(s, 0, 3 * R));
        else
            sim_crash(s, i, CRASH_PLAIN, sim_between(s, 0, 3 * R));
    } else {
        s->res->restarts_all++;
        for (int k = 0; k < s->nproc; k++)
            if (s->m[k].up)
                sim_crash(s, k, CRASH_PLAIN, sim_between(s, 0, 2 * R));
    }
}

/* ---- `seqd init` (DESIGN.md §3) --------------------------------------- */

enum sim_init_verdict { SIM_INIT_DONE, SIM_INIT_RETRY, SIM_INIT_COMMIT };

/* One run of init's first half: it asks every member for its state (a
 * member down or stalled does not answer: retry), and
 *   - all initialized with one id: done;
 *   - two different ids, a member initialized while another is empty, or
 *     a member that is neither empty nor prepared/initialized (recovering
 *     with data, or an id learned): refuse, retry later;
 *   - else X = the one id present, or a fresh one; PREPARE(X) to the empty
 *     members, which record "prepared X" durably; then COMMIT(X) to the
 *     prepared ones (on_init_commit), once every member is prepared for or
 *     initialized with X.
 * The answers and the PREPAREs are taken at one instant: PREPARE reaches
 * a member only while it is empty (recovery_is_empty). */
static enum sim_init_verdict sim_init_prepare(sim *s, struct seqd_cid *x)
{
    int n = s->cfg.n, ninit = 0, nempty = 0;
    bool have = false;
    for (int i = 0; i < n; i++) {
        sim_member *me = &s->m[i];
        if (!me->up || me->dying || me->stall_until > s->now)
            return SIM_INIT_RETRY;
        if (me->initialized || me->prepared) {
            if (have && !seqd_cid_eq(x, &me->cid))
                return SIM_INIT_RETRY;
            *x = me->cid;
            have = true;
            ninit += me->initialized;
        } else if (me->rec && recovery_is_empty(me->rec))
            nempty++;
        else
            return SIM_INIT_RETRY;
    }
    if (ninit == n)
        return SIM_INIT_DONE;
    if (ninit > 0 && nempty > 0)
        return SIM_INIT_RETRY;
    if (!have)
        *x = sim_cid(1, (uint8_t)++s->fresh_ids);
    for (int i = 0; i < n; i++) {
        sim_member *me = &s->m[i];
        if (me->initialized || me->prepared)
            continue;
        me->prepared = true;     /* durable before it answers */
        me->cid = *x;
        recovery_prepared(me->rec, x);
    }
    return SIM_INIT_COMMIT;
}

static void sim_init_later(sim *s, uint64_t after_us)
{
    if (s->init_done || s->now + after_us > s->probe_at)
        return;
    heap_push(s, ev_new(s, EV_INIT, after_us));
}

static void on_init(sim *s)
{
    if (s->init_done)
        return;
    s->res->inits++;
    struct seqd_cid x;
    switch (sim_init_prepare(s, &x)) {
    case SIM_INIT_DONE:
        s->init_done = true;
        return;
    case SIM_INIT_RETRY:
        s->res->init_refusals++;
        sim_init_later(s, s->cfg.round_us);   /* the operator runs it again */
        return;
    case SIM_INIT_COMMIT:
        break;
    }
    s->init_x = x;
    /* The PREPARE replies come back, then the COMMITs go out. */
    heap_push(s, ev_new(s, EV_INIT_COMMIT, 2 * sim_net_delay(s)));
}

static void sim_crash_at(sim *s, int i, uint64_t after_us, enum sim_crash how, uint64_t down_us)
{
    sim_ev *e = ev_new(s, EV_CRASH, after_us);
    e->member = i;
    e->inc = s->m[i].inc;
    e->err = (int)how;
    e->first = down_us;
    heap_push(s, e);
}

/* Dies and stays down (UINT64_MAX) or restarts after down_us. */
static void on_crash(sim *s, sim_ev *e)
{
    sim_member *me = &s->m[e->member];
    if (!me->up || me->inc != e->inc)
        return;
    if (e->first == UINT64_MAX) {
        member_stop(s, me);
        s->res->crashes++;
    } else
        sim_crash(s, e->member, (enum sim_crash)e->err, e->first);
}

/* COMMIT(X) to the prepared members, in a random order; the tool may die
 * after a prefix of them. With init_wipe one member is wiped right before
 * its COMMIT or right after it (and the tool is not interrupted: one member
 * without data is what the fault model allows). The attack commits the
 * last N-Q members each with probability 1/2, then kills them at once. */
static void on_init_commit(sim *s)
{
    int n = s->cfg.n, slack = n - q_quorum(n), order[SEQD_MAX_MEMBERS];
    uint64_t R = s->cfg.round_us;
    const struct seqd_cid *x = &s->init_x;
    for (int i = 0; i < n; i++)
        order[i] = i;
    for (int i = n - 1; i > 0 && !s->cfg.bringup_attack; i--) {
        int j = (int)(sim_rand(s) % (uint64_t)(i + 1)), t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    int upto = n, wipe = -1;
    bool wipe_before = false;
    bool all_ready = true;   /* every member up and prepared for or initialized with X */
    for (int i = 0; i < n; i++)
        all_ready &= s->m[i].up && !s->m[i].dying &&
                     (s->m[i].prepared || s->m[i].initialized) && seqd_cid_eq(&s->m[i].cid, x);
    if (s->cfg.init_wipe && all_ready && sim_nodata_faults(s) == 0 && slack >= 1 && !s->cfg.bringup_attack &&
        (sim_rand(s) & 1)) {
        int cand[SEQD_MAX_MEMBERS], k = 0;
        for (int i = 0; i < n; i++)
            if (s->m[i].prepared)
                cand[k++] = i;
        if (k > 0) {
            wipe = cand[sim_rand(s) % (uint64_t)k];
            wipe_before = sim_rand(s) & 1;
            s->res->init_wipes++;
        }
    } else if (sim_chance_ppm(s, s->cfg.init_interrupt_ppm))
        upto = (int)(sim_rand(s) % (uint64_t)n);
    for (int k = 0; k < upto; k++) {
        int i = order[k];
        sim_member *me = &s->m[i];
        if (i == wipe && wipe_before) {
            sim_crash(s, i, CRASH_WIPE, sim_between(s, 0, 3 * R));
            continue;   /* its COMMIT finds it empty: refused */
        }
        if (!me->up || me->dying || !me->prepared || !me->rec || !seqd_cid_eq(&me->cid, x))
            continue;   /* down (init sees it prepared next time), or a stray's */
        if (s->cfg.bringup_attack && i >= n - slack && (sim_rand(s) & 1)) {
            s->res->attack_uncommitted += s->res->attacks == 0;
            continue;   /* killed before its COMMIT arrived */
        }
        if (!recovery_commit(me->rec, x))
            sim_fail(s, "member %d prepared for init's id refused its COMMIT", i);
        if (i == wipe)   /* right after its COMMIT: it may be initialized or not */
            sim_crash_at(s, i, sim_between(s, 0, 100), CRASH_WIPE, sim_between(s, 0, 3 * R));
    }
    if (!s->have_cluster) {
        s->have_cluster = true;
        s->cluster_cid = *x;
        s->res->new_clusters++;
    }
    if (s->cfg.bringup_attack && s->res->attacks == 0) {
        s->res->attacks++;
        for (int i = n - slack; i < n; i++)
            sim_crash_at(s, i, sim_between(s, 0, 50), CRASH_PLAIN, UINT64_MAX);
        heap_push(s, ev_new(s, EV_ATTACK, sim_between(s, 10 * R, 20 * R)));
    }
    sim_init_later(s, sim_between(s, R, 2 * R));   /* it runs again until all are initialized */
}

/* The attack's second act: member 0 loses its disk, members 1..Q-1 stall
 * for 5R, member 0 and the dead ones start again within 1 ms. Beside
 * member 0 the dead members that missed their COMMIT are without data
 * too: one more than sim_nodata allows, but exactly the schedule,
 * and safe, since a prepared member never voted. */
static void on_attack(sim *s)
{
    int n = s->cfg.n, slack = n - q_quorum(n);
    uint64_t R = s->cfg.round_us, t = sim_between(s, 0, R);
    sim_member *a = &s->m[0];
    if (a->up) {
        member_stop(s, a);
        s->res->crashes++;
    }
    disk_wipe(a);
    a->lacking = true;
    s->res->wipes++;
    sim_restart_later(s, 0, t);
    for (int i = 1; i < n - slack; i++) {
        sim_member *b = &s->m[i];
        if (b->up && b->stall_until < s->now + 5 * R) {
            b->stall_until = s->now + 5 * R;
            b->last_stall_end = b->stall_until;
            s->res->stalls++;
        }
    }
    for (int i = n - slack; i < n; i++)
        if (!s->m[i].up)
            sim_restart_later(s, i, t + sim_between(s, 0, 1000));
}

/* A member restored from a backup: its data directory goes back to an
 * earlier point of its own history (`keep` durable records), across one
 * or more restarts or within its latest incarnation. It then starts again
 * like any member; it counts as a member without its data (sim_nodata)
 * until it recovered. */
static void sim_restore_to(sim *s, sim_member *me, size_t keep, uint64_t down_us)
{
    if (me->up)
        member_stop(s, me);
    s->res->crashes++;
    disk_rollback(me, keep);
    /* From before the start of an incarnation that became ready: that one
     * was recorded by its N-Q+1 recovery sources (quorum/incarnation.h). */
    me->must_catch = keep < me->ready_inc_start;
    me->restored = true;
    me->lacking = true;
    s->res->restores_done++;
    sim_restart_later(s, me->idx, down_us);
}

/* cfg.restores: one member at a time, within the fault model (at most N-Q
 * members without their data), to a backup taken across restarts or
 * within its latest incarnation. */
static void on_restore(sim *s)
{
    int n = s->cfg.n, slack = n - q_quorum(n);
    int i = sim_pick_up(s);
    if (i < 0 || sim_nodata_faults(s) + 1 > slack)
        return;
    sim_member *me = &s->m[i];
    if (!me->initialized || me->lacking || !me->ready || me->nlog == 0)
        return;
    size_t keep;
    if (me->ready_inc_start > 0 && (sim_rand(s) & 1))
        keep = (size_t)sim_rand(s) % me->ready_inc_start;          /* across restarts */
    else if (s->cfg.restore_within && me->nlog > me->inc_start)
        keep = me->inc_start + (size_t)sim_rand(s) % (me->nlog - me->inc_start);
    else
        return;
    sim_restore_to(s, me, keep, sim_between(s, 0, 3 * s->cfg.round_us));
}

/* cfg.restore_attack, the second attack (five members): backups of
 * members 1 and 3 (act 0); both restart (act 1: new incarnations, which
 * their recovery sources record); members 0 and 4 are cut off while rounds
 * commit on {1, 2, 3} (act 2); then member 2 goes down for a long while and 1 and
 * 3 come back from their backups at once (act 3). Counting a restored
 * member in the other's recovery (the mutation) hands out the stalled
 * period's IDs again; the rule makes both wait for member 2. */
static void on_rattack(sim *s, sim_ev *e)
{
    uint64_t R = s->cfg.round_us;
    if (s->cfg.n < 5)
        return;
    switch (e->op) {
    case 0:
        s->m[1].backup_keep = s->m[1].nlog;
        s->m[3].backup_keep = s->m[3].nlog;
        break;
    case 1:
        for (int i = 1; i <= 3; i += 2)
            if (s->m[i].up)
                sim_crash(s, i, CRASH_PLAIN, sim_between(s, 0, R));
        break;
    case 2:
        /* cut off, not stalled: a stalled member would take the rounds'
         * ACCEPTs once it resumes */
        s->cut_mask = (1u << 0) | (1u << 4);
        s->cut_until = s->now + 8 * R;
        break;
    default:
        if (s->m[2].up)
            member_stop(s, &s->m[2]);
        s->res->crashes++;
        sim_restart_later(s, 2, 40 * R);
        for (int i = 1; i <= 3; i += 2)
            sim_restore_to(s, &s->m[i], s->m[i].backup_keep, R);
        s->res->attacks++;
        break;
    }
}

/* A stray `seqd init` (another cluster's, or a mistyped address) reaches a
 * member that lost its data: it records prepared(stray id) and must still
 * recover into the real cluster; no COMMIT of that id ever comes. */
static void on_stray(sim *s, sim_ev *e)
{
    sim_member *me = &s->m[e->member];
    if (!me->up || me->inc != e->inc || !me->rec)
        return;
    if (!recovery_is_empty(me->rec)) {
        s->res->strays_refused++;   /* it knows, or cannot yet tell, that a cluster exists */
        return;
    }
    me->prepared = true;
    me->cid = sim_cid(2, (uint8_t)++s->strays);
    recovery_prepared(me->rec, &me->cid);
    s->res->strays++;
}

/* ---- epochs and replacements (DESIGN.md §6, quorum/epoch.h) -------------
 *
 * Modelled as the member (core/member.c) runs the rules of quorum/epoch.h:
 * - every process holds a q_set; what it sends as READ, ACCEPT or SNAP_REQ
 *   carries its (epoch, digest) and goes to the process its own set names
 *   for the slot; a receiver answers only if epoch_admits, else REPLY_ERR
 *   ERR_EPOCH, before the acceptor sees anything (sim_epoch_gate);
 * - a member at exactly E that meets a peer at E+1 (refused by it, or
 *   asked by it: the hello) adopts the peer's current set, durably, if its
 *   own slot is still its own there; OLD, whose slot another host holds,
 *   learns it was replaced and exits (cfg.replace_old_exits) or goes on at
 *   E, refused by every member at E+1;
 * - a switch's new host (not a member yet: `joining`) asks the N-1 others
 *   every R to record it; a member records it only at exactly E (epoch_apply)
 *   and durably (after an fsync delay; a crash before loses it), answering
 *   RECORDED, OTHER (it holds another set of E+1 or later) or AT_EPOCH;
 * - epoch_switch_verdict on the latest answers: COMPLETE starts the new
 *   host as a member with an empty disk in recovery mode EMPTY (2R, then
 *   N-Q+1 others with state at E+1); LOST makes it ask every holder to drop
 *   the switch (epoch_revert) until none holds it, and it never votes.
 * Replies from a host that is no longer a member of the receiver's set are
 * dropped (the link to it is closed: sim_link_current). */

/* A switch under way brings an empty member (its new host) unless its
 * slot is without data already (OLD dead): one more member without data
 * for the fault model, however many race (at most one completes). */
static int sim_replace_nodata(const sim *s)
{
    bool pending = false, covered = true;
    for (int k = 0; k < s->nsw; k++) {
        const struct sim_switch *w = &s->swi[k];
        if (!w->begun || w->done || w->lost || w->gone)
            continue;
        const sim_member *old = &s->m[s->owner[w->sw.slot]];
        pending = true;
        covered &= old->lacking || !old->initialized;
    }
    return pending && !covered;
}

static int sim_set_route(const q_set *set, int slot)
{
    return atoi(set->addr[slot] + 1);
}

static bool sim_set_eq(const q_set *a, const q_set *b)
{
    return a->epoch == b->epoch && a->digest == b->digest;
}

/* Clients ask any process that serves (never a joining or retired host);
 * without replacements exactly the draw of before. */
static int sim_client_member(sim *s)
{
    int cand[SIM_PROCS], k = 0;
    for (int p = 0; p < s->nproc; p++)
        if (!s->m[p].retired && !s->m[p].joining && (p < s->cfg.n || s->m[p].up))
            cand[k++] = p;
    return k ? cand[sim_rand(s) % (uint64_t)k] : 0;
}

static void sim_retire(sim *s, sim_member *me)
{
    if (me->up)
        member_stop(s, me);
    me->retired = true;
    me->lacking = true;   /* its slot is without data until the new host recovered */
}

/* me meets peer `from` at me's epoch + 1 (a hello would carry its set). */
static void sim_learn(sim *s, sim_member *me, int from)
{
    const sim_member *peer = &s->m[from];
    if (!me->up || me->dying || me->sw_pending >= 0 || !peer->up ||
        peer->set.epoch != me->set.epoch + 1)
        return;
    /* Only a set that is one switch from me's own. */
    bool next = false;
    for (int k = 0; k < s->nsw; k++)
        next |= sim_set_eq(&s->swi[k].next, &peer->set) && sim_set_eq(&s->swi[k].prev, &me->set);
    if (!next)
        return;
    char a[SEQD_ADDR_MAX + 1];
    sim_addr(a, me->idx);
    if (strcmp(peer->set.addr[me->slot], a) == 0) {
        me->set = me->dset = peer->set;
        s->res->sw_learned++;
    } else if (s->cfg.replace_old_exits) {
        s->res->old_exits++;
        sim_retire(s, me);
    }
}

/* The receiving member's check before the acceptor (and the learning of a
 * later set from any message). Returns false if the event is consumed. */
static bool sim_epoch_gate(sim *s, sim_member *me, const sim_ev *e)
{
    uint64_t epoch, digest;
    const seqd_msg *m = &e->msg;
    if (!msg_epoch(m, &epoch, &digest)) {
        if (!sim_link_current(s, me, e->from))
            return false;
        if (m->type == MSG_REPLY_ERR && m->u.err.code == ERR_EPOCH) {
            sim_learn(s, me, e->from);
            return me->up && !me->dying;
        }
        return true;
    }
    if (epoch == me->set.epoch + 1) {
        sim_learn(s, me, e->from);
        if (!me->up)
            return false;
    }
    if (s->cfg.ignore_epoch || epoch_admits(&me->set, epoch, digest))
        return true;
    char text[48];
    int len = snprintf(text, sizeof text, "epoch %llu", (unsigned long long)me->set.epoch);
    seqd_msg r = {.type = MSG_REPLY_ERR, .reqid = m->reqid};
    r.u.err.code = ERR_EPOCH;
    r.u.err.text = text;
    r.u.err.len = (uint16_t)len;
    s->res->epoch_refusals++;
    sim_send(s, me->idx, e->from, e->from_inc, &r);
    return false;
}

/* Mutation early_vote: ready at once, the empty table as its state. */
static void sim_early_ready(sim *s, sim_member *me)
{
    me->initialized = true;
    me->cid = s->cluster_cid;
    me->lacking = false;
    me->ready = true;
    acc_set_cid(me->acc, &me->cid);
    acc_set_has_state(me->acc, true);
    acc_set_ready(me->acc, true);
    s->res->early_votes++;
    sim_replace_on_ready(s, me);
}

/* A switch message between a new host and a member: the network's delay,
 * loss and cuts, not its members' partition (cut_mask) or duplication. */
static void sim_sw_send(sim *s, enum sim_ev_kind kind, int from, int to, int k, int state)
{
    if (sim_chance_ppm(s, s->cfg.loss_ppm) || sim_cut_between(s, from, to))
        return;
    sim_ev *e = ev_new(s, kind, sim_net_delay(s));
    e->member = to;
    e->inc = s->m[to].inc;
    e->from = from;
    e->op = (size_t)k;
    e->err = state;
    heap_push(s, e);
}

static void sim_sw_tick_later(sim *s, int k, uint64_t after_us)
{
    sim_ev *e = ev_new(s, EV_SW_TICK, after_us);
    e->op = (size_t)k;
    heap_push(s, e);
}

/* Whether process p holds switch k (in memory, on disk, or on the way). */
static bool sim_sw_holds(const sim *s, int p, int k)
{
    const sim_member *m = &s->m[p];
    return sim_set_eq(&m->set, &s->swi[k].next) || sim_set_eq(&m->dset, &s->swi[k].next) ||
           m->sw_pending == k;
}

static void sim_sw_cut_halves(sim *s, int k);

static void sim_sw_begin(sim *s, int k)
{
    struct sim_switch *w = &s->swi[k];
    uint64_t R = s->cfg.round_us;
    int slack = s->cfg.n - q_quorum(s->cfg.n);
    if (s->now > s->probe_at) {
        w->gone = true;   /* it never could begin */
        return;
    }
    /* A racing switch leads from the set its rival began from. */
    const q_set *from = s->cfg.replace >= 2 && k == 1 && s->swi[0].begun ? &s->swi[0].prev : &s->cur;
    if (!s->init_done || from->epoch != w->sw.epoch ||
        (sim_nodata(s) + (sim_replace_nodata(s) == 0) > slack)) {
        /* not founded yet, (a second switch) the first not complete, or a
         * dead OLD would be one member without data too many */
        sim_ev *e = ev_new(s, EV_SW_BEGIN, R);
        e->op = (size_t)k;
        heap_push(s, e);
        return;
    }
    int slot = w->sw.slot, oldp = sim_set_route(from, slot);
    w->prev = *from;
    memcpy(w->sw.old_addr, from->addr[slot], sizeof w->sw.old_addr);
    char why[160];
    if (epoch_apply(from, &w->sw, &w->next, why, sizeof why) != 0) {
        sim_fail(s, "switch %d: %s", k, why);
        return;
    }
    w->begun = true;
    s->res->switches++;
    sim_member *x = &s->m[w->newp];
    x->joining = true;
    x->slot = slot;
    x->set = x->dset = w->next;
    if (!s->cfg.replace_old_alive && !s->m[oldp].retired)
        sim_retire(s, &s->m[oldp]);
    if (s->cfg.replace_cut == 1 && k == 0 && s->cfg.replace_old_alive) {
        /* OLD cut from a random non-empty subset of the others for a while */
        uint32_t sub = 0;
        while (sub == 0)
            for (int t = 0; t < s->cfg.n; t++)
                if (t != slot && (sim_rand(s) & 1))
                    sub |= 1u << s->owner[t];
        s->rcut[oldp] |= sub;
        for (int p = 0; p < s->nproc; p++)
            if ((sub >> p) & 1)
                s->rcut[p] |= 1u << oldp;
        s->rcut_until = s->now + sim_between(s, 2 * R, 20 * R);
    } else if (s->cfg.replace_cut == 2 && k == 0)
        sim_sw_cut_halves(s, k);
    sim_sw_tick_later(s, k, 0);
}


/* {OLD, (N-1)/2 others} | {new host, the other others}, for 15R: each side
 * has a quorum of its own epoch's set, and only the epoch check (or the
 * new host waiting for N-Q+1 records) keeps them from both committing. */
static void sim_sw_cut_halves(sim *s, int k)
{
    const struct sim_switch *w = &s->swi[k];
    int n = s->cfg.n, slot = w->sw.slot, seen = 0;
    uint32_t a = 1u << sim_set_route(&w->prev, slot), b = 1u << w->newp;
    for (int t = 0; t < n; t++)
        if (t != slot) {
            uint32_t bit = 1u << sim_set_route(&w->next, t);
            if (seen++ < (n - 1) / 2)
                a |= bit;
            else
                b |= bit;
        }
    for (int p = 0; p < s->nproc; p++) {
        if ((a >> p) & 1)
            s->rcut[p] |= b;
        if ((b >> p) & 1)
            s->rcut[p] |= a;
    }
    s->rcut_until = s->now + 15 * s->cfg.round_us;
}

/* Asks the others that have not recorded yet (slow_records: each only now
 * and then), or, once lost, every holder to drop it, until none does. */
static void sim_sw_tick(sim *s, int k)
{
    struct sim_switch *w = &s->swi[k];
    if (w->done || w->gone)
        return;
    int n = s->cfg.n, x = w->newp;
    if (!w->lost) {
        for (int t = 0; t < n; t++)
            if (t != w->sw.slot && w->ans[t] != SWITCH_RECORDED &&
                (!s->cfg.replace_slow_records || sim_rand(s) % 5 == 0))
                sim_sw_send(s, EV_SW_RECORD, x, sim_set_route(&w->next, t), k, 0);
    } else {
        bool any = false;
        for (int t = 0; t < n; t++) {
            int p = sim_set_route(&w->next, t);
            if (t != w->sw.slot && !s->m[p].retired && sim_sw_holds(s, p, k)) {
                any = true;
                sim_sw_send(s, EV_SW_DROP, x, p, k, 0);
            }
        }
        if (!any) {
            w->gone = true;   /* the new host exits, never having voted */
            s->m[x].joining = false;
            s->m[x].retired = true;
            return;
        }
    }
    sim_sw_tick_later(s, k, s->cfg.round_us);
}

static void sim_sw_on_record(sim *s, sim_ev *e)
{
    sim_member *me = &s->m[e->member];
    int k = (int)e->op;
    const struct sim_switch *w = &s->swi[k];
    if (!me->up || me->dying || me->inc != e->inc || w->gone)
        return;
    int state = SWITCH_AT_EPOCH;
    if (sim_set_eq(&me->set, &w->next))
        state = SWITCH_RECORDED;
    else if (me->sw_pending >= 0)
        return;   /* one record at a time: it is asked again */
    else if (me->set.epoch > w->sw.epoch)
        state = SWITCH_OTHER;
    else if (sim_set_eq(&me->set, &w->prev)) {
        q_set next;
        char why[160];
        if (epoch_apply(&me->set, &w->sw, &next, why, sizeof why) != 0 ||
            !sim_set_eq(&next, &w->next)) {
            sim_fail(s, "member %d could not record switch %d: %s", me->idx, k, why);
            return;
        }
        me->sw_pending = k;   /* durable after an fsync; a crash before loses it */
        sim_ev *d = ev_new(s, EV_SW_DURABLE, sim_between(s, SIM_SYNC_MIN_US, SIM_SYNC_MAX_US));
        d->member = me->idx;
        d->inc = me->inc;
        d->from = e->from;
        d->op = (size_t)k;
        heap_push(s, d);
        if (s->cfg.replace_crash_recorder && s->res->sw_crashes < 3 && sim_rand(s) % 2 == 0) {
            /* power lost around the record: before it is durable or after */
            s->res->sw_crashes++;
            sim_crash_at(s, me->idx, sim_between(s, 0, 2 * SIM_SYNC_MAX_US), CRASH_PLAIN,
                         sim_between(s, 0, 3 * s->cfg.round_us));
        }
        return;
    }
    sim_sw_send(s, EV_SW_REPLY, me->idx, e->from, k, state);
}

static void sim_sw_on_durable(sim *s, sim_ev *e)
{
    sim_member *me = &s->m[e->member];
    int k = (int)e->op;
    if (!me->up || me->inc != e->inc || me->sw_pending != k)
        return;
    me->sw_pending = -1;
    me->set = me->dset = s->swi[k].next;   /* from now on it refuses epoch E */
    s->res->sw_records++;
    sim_sw_send(s, EV_SW_REPLY, me->idx, e->from, k, SWITCH_RECORDED);
}

static void sim_sw_on_drop(sim *s, sim_ev *e)
{
    sim_member *me = &s->m[e->member];
    const struct sim_switch *w = &s->swi[e->op];
    if (!me->up || me->dying || me->inc != e->inc || !sim_set_eq(&me->set, &w->next))
        return;
    q_set prev;
    if (epoch_revert(&me->set, &w->sw, &prev) != 0 || !sim_set_eq(&prev, &w->prev)) {
        sim_fail(s, "member %d could not drop switch %zu", me->idx, e->op);
        return;
    }
    me->set = me->dset = prev;
    s->res->sw_reverts++;
}

static void sim_sw_complete(sim *s, int k, bool early)
{
    struct sim_switch *w = &s->swi[k];
    w->done = true;
    s->res->switches_done++;
    for (int j = 0; j < s->nsw; j++)
        if (j != k && s->swi[j].done && s->swi[j].sw.epoch == w->sw.epoch)
            sim_fail(s, "switches %d and %d of epoch %llu both completed", j, k,
                     (unsigned long long)w->sw.epoch);
    s->cur = w->next;
    s->owner[w->sw.slot] = w->newp;
    sim_member *x = &s->m[w->newp];
    x->joining = false;
    x->initialized = x->prepared = false;
    memset(&x->cid, 0, sizeof x->cid);
    x->lacking = true;   /* empty: without data until it recovered */
    x->early = early;
    member_start(s, x);
}

static void sim_sw_on_reply(sim *s, sim_ev *e)
{
    int k = (int)e->op, n = s->cfg.n;
    struct sim_switch *w = &s->swi[k];
    if (w->done || w->lost || w->gone)
        return;
    int slot = s->m[e->from].slot;
    if (w->ans[slot] != SWITCH_RECORDED)
        w->ans[slot] = e->err;
    int rec = 0, other = 0;
    for (int t = 0; t < n; t++) {
        rec += w->ans[t] == SWITCH_RECORDED;
        other += w->ans[t] == SWITCH_OTHER;
    }
    if (s->cfg.early_vote && rec >= 1) {
        sim_sw_complete(s, k, true);
        return;
    }
    switch (epoch_switch_verdict(n, rec, other)) {
    case EPOCH_SWITCH_COMPLETE:
        sim_sw_complete(s, k, false);
        break;
    case EPOCH_SWITCH_LOST:
        w->lost = true;
        s->res->switches_lost++;
        break;
    case EPOCH_SWITCH_WAIT:
        break;
    }
}

static void sim_replace_on_ready(sim *s, sim_member *me)
{
    if (s->cfg.replace_cut == 3 && s->nsw > 0 && me->idx == s->swi[0].newp &&
        s->rcut_until == 0)
        sim_sw_cut_halves(s, 0);
}

/* The operator decommissions every host that is not a member of the final
 * set (OLD hosts still running, new hosts of switches still waiting); the
 * new hosts of lost switches go on dropping them until none holds one. */
static void sim_replace_at_probe(sim *s)
{
    if (!s->cfg.replace)
        return;
    for (int k = 0; k < s->nsw; k++)
        if (!s->swi[k].done && !s->swi[k].lost && !s->swi[k].gone) {
            s->swi[k].gone = true;
            s->m[s->swi[k].newp].joining = false;
            s->m[s->swi[k].newp].retired = true;
        }
    for (int p = 0; p < s->nproc; p++) {
        bool owner = false;
        for (int t = 0; t < s->cfg.n; t++)
            owner |= s->owner[t] == p;
        if (!owner && s->m[p].up)
            sim_retire(s, &s->m[p]);
    }
}

static void sim_replace_dispatch(sim *s, sim_ev *e)
{
    switch (e->kind) {
    case EV_SW_BEGIN: sim_sw_begin(s, (int)e->op); break;
    case EV_SW_TICK: sim_sw_tick(s, (int)e->op); break;
    case EV_SW_RECORD: sim_sw_on_record(s, e); break;
    case EV_SW_DURABLE: sim_sw_on_durable(s, e); break;
    case EV_SW_REPLY: sim_sw_on_reply(s, e); break;
    case EV_SW_DROP: sim_sw_on_drop(s, e); break;
    default: break;
    }
}

static void sim_sw_add(sim *s, uint64_t epoch, int slot, int newp, uint64_t at)
{
    struct sim_switch *w = &s->swi[s->nsw];
    memset(w, 0, sizeof *w);
    w->sw.epoch = epoch;
    w->sw.slot = slot;
    sim_addr(w->sw.new_addr, newp);
    w->newp = newp;
    sim_ev *e = ev_new(s, EV_SW_BEGIN, at);
    e->op = (size_t)s->nsw++;
    heap_push(s, e);
}

/* Every process at epoch 0 (nothing else changes without cfg.replace),
 * then the switches: one (cfg.replace = 1), two of one epoch at once
 * (2: one slot with two new hosts, or two slots), and a second one from
 * E+1 once the first completed (replace_second). */
static void sim_replace_schedule(sim *s)
{
    const sim_cfg *c = &s->cfg;
    int n = c->n;
    s->nproc = n + (c->replace >= 2 || c->replace_second ? 2 : c->replace ? 1 : 0);
    char bufs[SEQD_MAX_MEMBERS][8], *addrs[SEQD_MAX_MEMBERS];
    for (int i = 0; i < n; i++) {
        sim_addr(bufs[i], i);
        addrs[i] = bufs[i];
        s->owner[i] = i;
    }
    if (epoch_init(&s->cur, addrs, n) != 0)
        abort();
    for (int p = 0; p < s->nproc; p++) {
        sim_member *me = &s->m[p];
        if (p >= n) {
            me->s = s;
            me->idx = p;
            me->disk = q_map_new();
            me->disk_meta = q_map_new();
        }
        me->slot = p < n ? p : -1;
        me->set = me->dset = s->cur;
        me->sw_pending = -1;
    }
    if (!c->replace || n < 3)
        return;
    uint64_t at = c->replace_at_us ? c->replace_at_us : c->duration_us * 3 / 10;
    int slot = (int)(sim_rand(s) % (uint64_t)n);
    int other = (slot + 1 + (int)(sim_rand(s) % (uint64_t)(n - 1))) % n;
    sim_sw_add(s, 0, slot, n, at);
    if (c->replace >= 2)
        sim_sw_add(s, 0, c->replace_same_slot ? slot : other, n + 1,
                   at + sim_between(s, 0, c->round_us));
    else if (c->replace_second)
        sim_sw_add(s, 1, other, n + 1, at + 10 * c->round_us);
}

/* After the run: a lone switch completed (liveness), and every member ends
 * in the latest completed set (it learned it, or reverted a lost one). */
static void sim_replace_check(sim *s)
{
    if (!s->cfg.replace || s->cfg.n < 3)
        return;
    for (int k = 0; k < s->nsw; k++)
        if (s->cfg.replace == 1 && !s->swi[k].done)
            sim_fail(s, "switch %d (slot %d) never completed", k, s->swi[k].sw.slot);
    for (int t = 0; t < s->cfg.n; t++) {
        const sim_member *me = &s->m[s->owner[t]];
        if (!sim_set_eq(&me->dset, &s->cur))
            sim_fail(s, "member %d (slot %d) ends at epoch %llu, the cluster at epoch %llu%s",
                     me->idx, t, (unsigned long long)me->dset.epoch,
                     (unsigned long long)s->cur.epoch,
                     me->dset.epoch == s->cur.epoch ? " (another set)" : "");
    }
}

/* ---- the event loop ----------------------------------------------------- */

static bool ev_is_members(const sim_ev *e)
{
    return e->kind == EV_MSG || e->kind == EV_TIMER || e->kind == EV_FSYNC ||
           e->kind == EV_FETCH || e->kind == EV_SW_RECORD || e->kind == EV_SW_DURABLE ||
           e->kind == EV_SW_DROP;
}

static void on_msg(sim *s, sim_ev *e)
{
    sim_member *me = &s->m[e->member];
    if (!me->up || me->inc != e->inc || e->dropped)
        return;
    const seqd_msg *m = &e->msg;
    int from_slot = s->m[e->from].slot;
    if (!sim_epoch_gate(s, me, e))
        return;
    switch (m->type) {
    case MSG_STOPPED:
        if (me->incn)
            inc_stopped(me->incn, from_slot, &m->u.stopped.inc);
        break;
    case MSG_READ:
    case MSG_ACCEPT:
    case MSG_SNAP_REQ: {
        sim_cookie *c = q_xcalloc(1, sizeof *c);
        c->m = me;
        c->to = e->from;
        c->to_inc = e->from_inc;
        if (m->type == MSG_ACCEPT)
            c->name = m->u.accept.name;
        c->next = me->cookies;
        if (me->cookies)
            me->cookies->prev = c;
        me->cookies = c;
        acc_handle(me->acc, from_slot, m, sim_acc_reply, c);
        break;
    }
    default:
        if (m->reqid & Q_REQID_RECOVERY) {
            if (me->rec)
                recovery_on_reply(me->rec, from_slot, m);
        } else
        {
            /* as core/member.c: a reply from a sender behind its record is not counted */
            bool counts = true;
            if (me->incn && (m->type == MSG_VALUE || m->type == MSG_NACK))
                counts = inc_observe(me->incn, from_slot, &m->u.value.inc);
            else if (me->incn && m->type == MSG_ACK)
                counts = inc_observe(me->incn, from_slot, &m->u.ack.inc);
            if (counts)
                coord_on_reply(me->coord, from_slot, m);
        }
        break;
    }
}

static void on_timer(sim *s, sim_ev *e)
{
    sim_timer *t = e->ptr;
    if (t->stopped)
        return;
    if (!t->m->up || t->m->inc != t->inc) {
        sim_fail(s, "member %d: a timer outlived its process (not stopped by a free)", t->m->idx);
        return;
    }
    q_timer_fn fn = t->fn;
    void *arg = t->arg;
    free(t);
    e->ptr = NULL;
    fn(arg);
}

static void on_probe(sim *s)
{
    sim_replace_at_probe(s);
    for (int slot = 0; slot < s->cfg.n; slot++) {
        int i = s->owner[slot];
        if (!s->m[i].up || !s->m[i].ready) {
            s->res->not_ready++;
            sim_fail(s, "member %d not ready %llu us after the last fault", i,
                     (unsigned long long)(s->now - s->cfg.duration_us));
            continue;
        }
        for (int k = 0; k < s->cfg.names; k++) {
            size_t o = op_new(s, -1, i, k, sim_counts[sim_rand(s) % 4],
                              s->now + SIM_PROBE_DEADLINE_US);
            s->ops[o].probe = true;
            op_send(s, o);
            sim_ev *g = ev_new(s, EV_GIVEUP, SIM_PROBE_DEADLINE_US + SIM_GIVEUP_GRACE_US);
            g->op = o;
            heap_push(s, g);
        }
    }
}

/* Half of the targeted amnesias also hold the round's remaining ACCEPT on
 * the wire for R/4 to 5R, half of those stall its coordinator for 6R: when the stall
 * ends, the late ACK and the early one (of the member since wiped and
 * recovered without the round's value) are both queued. Counting them
 * would commit a range that the recovered member no longer knows about;
 * the coordinator must see that the round is older than R. A delay below
 * R is what a recovery that waits less than R would miss. */
static void sim_slow_round(sim *s, sim_ev *accept, int coord_member, int wiped)
{
    uint64_t R = s->cfg.round_us;
    sim_ev *late = ev_new(s, EV_MSG, sim_between(s, R / 4, 5 * R));
    uint64_t t = late->t;
    *late = *accept;
    late->t = t;
    heap_push(s, late);
    accept->dropped = true;
    sim_member *c = &s->m[coord_member];
    if (coord_member != wiped && c->up && c->stall_until < s->now + 6 * R && (sim_rand(s) & 1)) {
        c->stall_until = s->now + 6 * R;
        c->last_stall_end = c->stall_until;
        s->res->stalls++;
    }
}

/* A targeted amnesia: the member just sent an ACK for a round that may
 * still commit. Of that round's ACCEPTs still in flight to others, all but
 * one are lost, so that only a bare quorum may hold the round's value: the
 * case where the order of recovery matters. Where the fault model allows
 * two members without data (N >= 5), a second member that already holds
 * the round's value is wiped with it: the case where counting members
 * without state in a recovery read would matter. e->msg is the round. */
static void on_wipe(sim *s, sim_ev *e)
{
    sim_member *me = &s->m[e->member];
    int slack = s->cfg.n - q_quorum(s->cfg.n);
    if (!me->up || me->inc != e->inc || !me->initialized || me->lacking ||
        sim_nodata(s) + 1 > slack)
        return;
    sim_ev *cand[SEQD_MAX_MEMBERS];
    int k = 0;
    for (size_t i = 0; i < s->nheap && k < SEQD_MAX_MEMBERS; i++) {
        sim_ev *x = s->heap[i];
        if (x->kind == EV_MSG && x->msg.type == MSG_ACCEPT && x->msg.reqid == e->msg.reqid &&
            x->from == e->from && x->member != e->member && !x->dropped)
            cand[k++] = x;
    }
    int keep = k >= 2 ? (int)(sim_rand(s) % (uint64_t)k) : k == 1 && (sim_rand(s) & 1) ? 0 : -1;
    for (int i = 0; i < k; i++)
        if (i != keep)
            cand[i]->dropped = true;
    if (keep >= 0 && (sim_rand(s) & 1))
        sim_slow_round(s, cand[keep], e->from, e->member);
    int second = -1;
    if (sim_nodata(s) + 2 <= slack) {
        int holders[SEQD_MAX_MEMBERS], h = 0;
        for (int i = 0; i < s->cfg.n; i++) {
            sim_member *o = &s->m[i];
            if (i != e->member && o->up && !o->dying && o->initialized && !o->lacking &&
                map_get(o->mem, &e->msg.u.accept.name) >= e->msg.u.accept.new_)
                holders[h++] = i;
        }
        if (h > 0)
            second = holders[sim_rand(s) % (uint64_t)h];
    }
    sim_crash(s, e->member, CRASH_WIPE, sim_between(s, 0, 50));
    if (second >= 0)
        sim_crash(s, second, CRASH_WIPE, sim_between(s, 0, 50));
}

static void sim_dispatch(sim *s, sim_ev *e)
{
    switch (e->kind) {
    case EV_MSG: on_msg(s, e); break;
    case EV_TIMER: on_timer(s, e); break;
    case EV_FSYNC: sim_fsync(s, &s->m[e->member], e->inc); break;
    case EV_FETCH: on_fetch(s, e); break;
    case EV_FETCH_REPLY: on_fetch_reply(s, e); break;
    case EV_CLIENT: client_invoke(s, (int)e->op); break;
    case EV_GIVEUP: on_giveup(s, e); break;
    case EV_FAULT: sim_fault(s); break;
    case EV_START:
        if (e->member >= 0 && !s->m[e->member].up && !s->m[e->member].retired &&
            !s->m[e->member].joining)
            member_start(s, &s->m[e->member]);
        break;
    case EV_PROBE: on_probe(s); break;
    case EV_WIPE: on_wipe(s, e); break;
    case EV_INIT: on_init(s); break;
    case EV_INIT_COMMIT: on_init_commit(s); break;
    case EV_STRAY: on_stray(s, e); break;
    case EV_CRASH: on_crash(s, e); break;
    case EV_ATTACK: on_attack(s); break;
    case EV_RESTORE: on_restore(s); break;
    case EV_RATTACK: on_rattack(s, e); break;
    case EV_SW_BEGIN: case EV_SW_TICK: case EV_SW_RECORD: case EV_SW_DURABLE: case EV_SW_REPLY:
    case EV_SW_DROP:
        sim_replace_dispatch(s, e);
        break;
    }
}

static void sim_loop(sim *s)
{
    uint64_t limit = s->probe_at + SIM_QUIESCE_LIMIT_US;
    sim_ev *e;
    while (!s->halted && (e = heap_pop(s))) {
        if (e->t > limit) {
            sim_fail(s, "the cluster did not quiesce (events still at %llu us)",
                     (unsigned long long)e->t);
            heap_push(s, e);   /* a live timer's handle: teardown frees it */
            break;
        }
        s->now = e->t;
        s->res->events++;
        /* A stalled process handles nothing: its events wait for the end
         * of the stall and then run at once, in their order, except that
         * its timers come after everything else that queued up (an event
         * loop may well see the readable sockets before the expired
         * timers): rounds must end by the clock, not by their timers. */
        if (ev_is_members(e) && e->member >= 0 && s->m[e->member].up &&
            s->m[e->member].stall_until > s->now) {
            e->t = s->m[e->member].stall_until + (e->kind == EV_TIMER);
            heap_push(s, e);
            continue;
        }
        sim_dispatch(s, e);
        ev_free(e);
        for (int i = 0; i < s->nproc; i++) {
            recovery_free(s->m[i].rec_done);
            s->m[i].rec_done = NULL;
        }
    }
}

/* ---- the checker -------------------------------------------------------- */

typedef struct sim_range {
    uint64_t first, last, a, b;   /* IDs; invoke and completion times */
    size_t op;
} sim_range;

static int range_by_first(const void *x, const void *y)
{
    const sim_range *a = x, *b = y;
    return a->first < b->first ? -1 : a->first > b->first ? 1 : (a->op > b->op) - (a->op < b->op);
}

static int range_by_invoke(const void *x, const void *y)
{
    const sim_range *a = x, *b = y;
    return a->a < b->a ? -1 : a->a > b->a ? 1 : (a->op > b->op) - (a->op < b->op);
}

static int range_by_done(const void *x, const void *y)
{
    const sim_range *a = x, *b = y;
    return a->b < b->b ? -1 : a->b > b->b ? 1 : (a->op > b->op) - (a->op < b->op);
}

/* Every range a coordinator committed, whether or not its client saw it:
 * sorted by first ID, no two may share one. */
static void check_overlaps(sim *s, sim_range *r)
{
    for (int name = 0; name < s->cfg.names; name++) {
        size_t k = 0;
        for (size_t i = 0; i < s->nops; i++) {
            const sim_op *op = &s->ops[i];
            if (op->name != name || !op->coord_done || op->coord_err != 0 || op->floor || op->read)
                continue;
            if (op->coord_first < 1 || op->coord_first > UINT64_MAX - op->count) {
                sim_fail(s, "op %zu: range [%llu, +%u) is out of bounds", i,
                         (unsigned long long)op->coord_first, op->count);
                continue;
            }
            r[k++] = (sim_range){op->coord_first, op->coord_first + op->count - 1, 0, 0, i};
            if (r[k - 1].last > s->res->max_id)
                s->res->max_id = r[k - 1].last;
        }
        qsort(r, k, sizeof *r, range_by_first);
        for (size_t i = 1; i < k; i++) {
            if (r[i].first <= r[i - 1].last) {
                s->res->overlaps++;
                if (!s->res->overlap[0])
                    snprintf(s->res->overlap, sizeof s->res->overlap,
                             "%s: op %zu [%llu, %llu] (member %d) and op %zu [%llu, %llu] (member %d)",
                             s->names[name].s, r[i - 1].op, (unsigned long long)r[i - 1].first,
                             (unsigned long long)r[i - 1].last, s->ops[r[i - 1].op].member, r[i].op,
                             (unsigned long long)r[i].first, (unsigned long long)r[i].last,
                             s->ops[r[i].op].member);
                sim_fail(s, "overlap on %s: op %zu [%llu, %llu] and op %zu [%llu, %llu]",
                         s->names[name].s, r[i - 1].op, (unsigned long long)r[i - 1].first,
                         (unsigned long long)r[i - 1].last, r[i].op,
                         (unsigned long long)r[i].first, (unsigned long long)r[i].last);
            }
        }
    }
}

/* If A completed (as its client saw it) before B was invoked, B's IDs are
 * above A's: sweep B in invoke order while a running maximum takes in the
 * last IDs of everything completed before B's invocation. */
static void check_order(sim *s, sim_range *byinv, sim_range *bydone)
{
    for (int name = 0; name < s->cfg.names; name++) {
        size_t k = 0;
        for (size_t i = 0; i < s->nops; i++) {
            const sim_op *op = &s->ops[i];
            if (op->name != name || !op->client_done || op->client_err != 0 || op->floor || op->read)
                continue;
            byinv[k] = (sim_range){op->client_first, op->client_first + op->count - 1,
                                   op->invoke, op->client_t, i};
            bydone[k] = byinv[k];
            k++;
        }
        qsort(byinv, k, sizeof *byinv, range_by_invoke);
        qsort(bydone, k, sizeof *bydone, range_by_done);
        uint64_t maxlast = 0;
        size_t maxop = 0, d = 0;
        for (size_t i = 0; i < k; i++) {
            while (d < k && bydone[d].b < byinv[i].a) {
                if (bydone[d].last > maxlast) {
                    maxlast = bydone[d].last;
                    maxop = bydone[d].op;
                }
                d++;
            }
            if (maxlast && byinv[i].first <= maxlast) {
                s->res->order_violations++;
                sim_fail(s, "real-time order on %s: op %zu (invoked at %llu) got %llu, but op "
                         "%zu had completed with %llu", s->names[name].s, byinv[i].op,
                         (unsigned long long)byinv[i].a, (unsigned long long)byinv[i].first,
                         maxop, (unsigned long long)maxlast);
            }
        }
    }
}

/* A floor holds for what comes after it: once an advance to V completed
 * (as its client saw it), every fetch invoked later got IDs >= V. The
 * sweep is check_order's, with the floors as the completed ops. */
static void check_floors(sim *s)
{
    for (size_t i = 0; i < s->nops; i++) {
        const sim_op *f = &s->ops[i];
        if (!f->floor || !f->client_done || f->client_err != 0)
            continue;
        s->res->floors++;
        for (size_t j = 0; j < s->nops; j++) {
            const sim_op *op = &s->ops[j];
            if (op->floor || op->read || op->name != f->name || !op->client_done || op->client_err != 0 ||
                op->invoke <= f->client_t || op->client_first >= f->floor)
                continue;
            s->res->floor_violations++;
            sim_fail(s, "floor on %s: op %zu (invoked at %llu) got %llu, but op %zu had raised "
                     "the floor to %llu at %llu", s->names[f->name].s, j,
                     (unsigned long long)op->invoke, (unsigned long long)op->client_first, i,
                     (unsigned long long)f->floor, (unsigned long long)f->client_t);
            break;
        }
    }
}

/* A read (GET /v1/sequences/NAME) is a READ quorum's largest value: it is
 * above every ID handed out by a fetch that completed before the read was
 * invoked (that fetch's round left a quorum with cur above its IDs, and
 * the read's quorum meets it). */
static void check_reads(sim *s)
{
    for (size_t i = 0; i < s->nops; i++) {
        const sim_op *rd = &s->ops[i];
        if (!rd->read || !rd->client_done || rd->client_err != 0)
            continue;
        s->res->reads_ok++;
        for (size_t j = 0; j < s->nops; j++) {
            const sim_op *op = &s->ops[j];
            if (op->floor || op->read || op->name != rd->name || !op->client_done ||
                op->client_err != 0 || op->client_t >= rd->invoke ||
                op->client_first + op->count - 1 < rd->client_first)
                continue;
            s->res->read_violations++;
            sim_fail(s, "read on %s: op %zu (invoked at %llu) read NEXT %llu, but op %zu had "
                     "completed with %llu at %llu", s->names[rd->name].s, i,
                     (unsigned long long)rd->invoke, (unsigned long long)rd->client_first, j,
                     (unsigned long long)(op->client_first + op->count - 1),
                     (unsigned long long)op->client_t);
            break;
        }
    }
}

/* Every request ended once, by its deadline (a stall of its coordinator
 * excepted: a stopped process cannot answer), and every probe succeeded. */
static void check_ends(sim *s)
{
    for (size_t i = 0; i < s->nops; i++) {
        const sim_op *op = &s->ops[i];
        if (op->client_done && op->client_err == 0 && !op->floor && !op->read) {
            s->res->ok++;
            s->res->ok_ids += op->count;
        }
        if (op->coord_done && op->coord_err == ERR_EXHAUSTED)
            s->res->exhausted++;
        if (op->submitted && !op->coord_done) {
            s->res->unfinished++;
            sim_fail(s, "op %zu (member %d) never ended", i, op->member);
        }
        if (!op->client_done && !op->gave_up) {
            s->res->unfinished++;
            sim_fail(s, "op %zu: its client is still waiting", i);
        }
        uint64_t bound = op->deadline > op->stall_end_at_done ? op->deadline : op->stall_end_at_done;
        if (op->coord_done && op->coord_t > bound + SIM_LATE_SLACK_US) {
            s->res->late++;
            sim_fail(s, "op %zu ended %llu us after its deadline", i,
                     (unsigned long long)(op->coord_t - op->deadline));
        }
        if (op->probe && s->cfg.probe && !(op->client_done && op->client_err == 0)) {
            s->res->probe_failures++;
            sim_fail(s, "probe op %zu on member %d failed (err %d%s)", i, op->member,
                     op->client_err, op->gave_up ? ", no answer" : "");
        }
    }
}

static void sim_check(sim *s)
{
    size_t n = s->nops ? s->nops : 1;
    sim_range *a = q_xcalloc(n, sizeof *a), *b = q_xcalloc(n, sizeof *b);
    check_overlaps(s, a);
    check_order(s, a, b);
    check_floors(s);
    check_reads(s);
    check_ends(s);
    free(a);
    free(b);
}

/* ---- setup -------------------------------------------------------------- */

void sim_cfg_default(sim_cfg *cfg, int n, uint64_t seed)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->seed = seed;
    cfg->n = n;
    cfg->clients = 6;
    cfg->names = 2;
    cfg->round_us = 10000;
    cfg->duration_us = 300000;
    cfg->deadline_us = 200000;
    cfg->think_us = 1000;
    cfg->fresh_start = true;
    cfg->probe = true;
    cfg->rule = ACC_RULE_SAFE;
    cfg->fast_path = true;
    cfg->coalescing = true;
}

static void sim_schedule(sim *s)
{
    const sim_cfg *c = &s->cfg;
    uint64_t R = c->round_us;
    for (int i = 0; i < c->n; i++) {
        sim_member *me = &s->m[i];
        me->s = s;
        me->idx = i;
        me->disk = q_map_new();
        me->disk_meta = q_map_new();
        me->initialized = !c->fresh_start;
        if (me->initialized)
            me->cid = sim_cid(1, 0);
        for (int k = 0; k < c->names && c->start_value > 1; k++)
            disk_append(me, false, &s->names[k], c->start_value);
        sim_restart_later(s, i, c->fresh_start ? sim_between(s, 0, 5 * R) : 0);
    }
    if (c->fresh_start) {
        if (c->late_us) {
            int late = (int)(sim_rand(s) % (uint64_t)c->n);
            for (size_t k = 0; k < s->nheap; k++)
                if (s->heap[k]->kind == EV_START && s->heap[k]->member == late)
                    s->heap[k]->member = -1;   /* that start is void */
            sim_restart_later(s, late, c->late_us);
        }
        heap_push(s, ev_new(s, EV_INIT, c->init_at_us ? c->init_at_us : 6 * R));
    } else {
        s->founded = s->init_done = s->have_cluster = true;
        s->cluster_cid = sim_cid(1, 0);
    }
    for (int k = 0; k < c->clients; k++)
        client_next(s, k, 4 * R + sim_between(s, 0, 1000));
    for (int k = 0; k < c->faults; k++) {
        sim_ev *e = ev_new(s, EV_FAULT, sim_between(s, 2 * R, c->duration_us * 7 / 10));
        heap_push(s, e);
    }
    for (int k = 0; k < c->restores; k++)
        heap_push(s, ev_new(s, EV_RESTORE, sim_between(s, 2 * R, c->duration_us * 7 / 10)));
    if (c->restore_attack) {
        static const uint64_t at[] = {10, 17, 40, 40};   /* percent of the run, per act */
        for (int act = 0; act < 4; act++) {
            sim_ev *e = ev_new(s, EV_RATTACK, c->duration_us * at[act] / 100 +
                                                  (act == 3 ? 6 * R : 0));
            e->op = (size_t)act;
            heap_push(s, e);
        }
    }
    /* Members down at the end restart by then (the longest downtime is 3R
     * after 70%); recovery needs 2R plus a few round trips. */
    s->probe_at = c->duration_us + 8 * R + 100000;
    sim_ev *p = ev_new(s, EV_PROBE, s->probe_at);
    heap_push(s, p);
}

/* Members go first (their free functions stop timers whose events are
 * still queued after an aborted run), then whatever events are left. */
static void sim_teardown(sim *s)
{
    for (int i = 0; i < s->nproc; i++) {
        sim_member *me = &s->m[i];
        if (me->up)
            member_stop(s, me);
        map_free(me->disk);
        map_free(me->disk_meta);
        free(me->log);
    }
    sim_ev *e;
    while ((e = heap_pop(s)))
        ev_free(e);
    free(s->heap);
    free(s->ops);
    free(s->names);
    for (int k = 0; k < s->cfg.names; k++)
        free(s->committed[k]);
    free(s->committed);
    free(s->ncommitted);
    free(s->capcommitted);
}

int sim_run(const sim_cfg *cfg, sim_result *res)
{
    memset(res, 0, sizeof *res);
    if (cfg->n < 1 || cfg->n > SEQD_MAX_MEMBERS || cfg->names < 1) {
        res->violations = 1;
        snprintf(res->error, sizeof res->error, "bad simulator configuration");
        return 1;
    }
    sim *s = q_xcalloc(1, sizeof *s);
    s->cfg = *cfg;
    s->res = res;
    s->armed = -1;
    s->rng = cfg->seed * UINT64_C(0x2545F4914F6CDD1D) + 1;
    s->names = q_xcalloc((size_t)cfg->names, sizeof *s->names);
    s->committed = q_xcalloc((size_t)cfg->names, sizeof *s->committed);
    s->ncommitted = q_xcalloc((size_t)cfg->names, sizeof *s->ncommitted);
    s->capcommitted = q_xcalloc((size_t)cfg->names, sizeof *s->capcommitted);
    for (int k = 0; k < cfg->names; k++) {
        char b[16];
        int len = snprintf(b, sizeof b, "seq-%d", k);
        seqd_name_set(&s->names[k], b, (size_t)len);
    }
    sim_schedule(s);
    sim_replace_schedule(s);
    sim_loop(s);
    res->end_us = s->now;
    if (!s->halted && s->nheap == 0)
        sim_check_held(s);
    sim_check(s);
    sim_replace_check(s);
    sim_teardown(s);
    free(s);
    return res->violations;
}
