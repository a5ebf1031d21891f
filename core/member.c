/* core/member.c — a seqd member: the q_env/q_store the quorum code runs
 * on, the operations front ends call, recovery and graceful stop
 * (member.h). */
#include "member.h"

#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "../net/addr.h"
#include "../net/peer.h"
#include "../quorum/acceptor.h"
#include "../quorum/coord.h"
#include "../quorum/epoch.h"
#include "../quorum/incarnation.h"
#include "../quorum/recovery.h"
#include "../storage/datadir.h"
#include "headroom.h"
#include "statusfmt.h"
#include "member_impl.h"

/* The refusal of a hello from a superseded incarnation; the sender parses
 * it back (member_peer_state). */
#define MEMBER_ROLLED_BACK_FMT "rolled back: recorded incarnation %llu nonce %016llx position %llu"

static enum member_log_level log_max = MLOG_INFO;
static bool log_json;

void member_log_setup(enum member_log_level max, bool json)
{
    log_max = max;
    log_json = json;
}

static const char *const log_level_names[] = {
    [MLOG_ERROR] = "error", [MLOG_WARN] = "warn", [MLOG_INFO] = "info", [MLOG_DEBUG] = "debug"};

int member_log_level_parse(const char *s)
{
    for (int i = MLOG_ERROR; i <= MLOG_DEBUG; i++)
        if (strcmp(s, log_level_names[i]) == 0)
            return i;
    return -1;
}

void member_log(const member *m, enum member_log_level level, const char *fmt, ...)
{
    assert(level >= MLOG_ERROR && level <= MLOG_DEBUG);
    if (level > log_max)
        return;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    const char *self = m->cfg.members[m->cfg.self];
    if (!log_json) {
        fprintf(stderr, "%02d:%02d:%02d.%03ld seqd[%s] %s: %s\n", tm.tm_hour, tm.tm_min, tm.tm_sec,
                ts.tv_nsec / 1000000, self, log_level_names[level], line);
        return;
    }
    char esc[sizeof line * 6 + 1], addr[SEQD_ADDR_MAX * 6 + 1];
    statusfmt_json_str(esc, sizeof esc, line);
    statusfmt_json_str(addr, sizeof addr, self);
    fprintf(stderr, "{\"ts\":\"%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ\",\"level\":\"%s\","
                    "\"member\":\"%s\",\"msg\":\"%s\"}\n",
            tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
            ts.tv_nsec / 1000000, log_level_names[level], addr, esc);
}

/* Leaving the loop for a reason that makes the log untrustworthy. */
void member_die(member *m)
{
    m->fatal = true;
    event_base_loopbreak(m->base);
}

/* ---- q_env over libevent ---------------------------------------------- */

/* CLOCK_BOOTTIME keeps counting while the machine is suspended and while
 * the process is stopped, so a round's age is real time (DESIGN.md §3). */
uint64_t member_now_us(const member *m)
{
    (void)m;
    struct timespec ts;
    clock_gettime(CLOCK_BOOTTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static uint64_t env_now_us(void *ctx)
{
    return member_now_us(ctx);
}

static void env_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    member_timer *t = arg;
    q_timer_fn fire = t->fire;
    void *farg = t->arg;
    event_free(t->ev);
    free(t);
    fire(farg);
}

/* A timer of 0 ("after what this turn already has to do": coord_submit's
 * KICK) is made active rather than added with a zero timeout: it then runs
 * later in this same loop turn, after every event already active, instead
 * of costing one more epoll_wait first. */
static void *env_timer_start(void *ctx, uint64_t after_us, q_timer_fn fire, void *arg)
{
    member *m = ctx;
    member_timer *t = malloc(sizeof *t);
    if (!t)
        return NULL;
    t->fire = fire;
    t->arg = arg;
    t->ev = evtimer_new(m->base, env_timer_cb, t);
    if (!t->ev) {
        free(t);
        return NULL;
    }
    if (after_us == 0) {
        event_active(t->ev, EV_TIMEOUT, 1);
        return t;
    }
    struct timeval tv = {(time_t)(after_us / 1000000u), (suseconds_t)(after_us % 1000000u)};
    evtimer_add(t->ev, &tv);
    return t;
}

static void env_timer_stop(void *ctx, void *timer)
{
    (void)ctx;
    member_timer *t = timer;
    if (!t)
        return;
    event_free(t->ev);
    free(t);
}

/* xorshift64*: backoff jitter only, nothing depends on its quality. */
static uint64_t env_random(void *ctx)
{
    member *m = ctx;
    m->rng ^= m->rng >> 12;
    m->rng ^= m->rng << 25;
    m->rng ^= m->rng >> 27;
    return m->rng * UINT64_C(2685821657736338717);
}

/* Every peer request says which epoch it belongs to (DESIGN.md §6): the
 * one this member is at when it sends it. The quorum code sends all the
 * messages of a round at once, from one callback, so a round is of one
 * epoch. */
static void member_stamp(const member *m, seqd_msg *msg)
{
    switch (msg->type) {
    case MSG_READ:
        msg->u.read.epoch = m->set.epoch;
        msg->u.read.digest = m->set.digest;
        break;
    case MSG_ACCEPT:
        msg->u.accept.epoch = m->set.epoch;
        msg->u.accept.digest = m->set.digest;
        break;
    case MSG_SNAP_REQ:
        msg->u.snap_req.epoch = m->set.epoch;
        msg->u.snap_req.digest = m->set.digest;
        break;
    default:
        break;
    }
}

static void env_send(void *ctx, int to, const seqd_msg *unstamped)
{
    member *m = ctx;
    assert(to >= 0 && to < m->cfg.n);
    seqd_msg stamped = *unstamped, *msg = &stamped;
    member_stamp(m, msg);
    if (to != m->cfg.self) {
        if (m->peers[to])
            peer_send(m->peers[to], msg);
        return;
    }
    self_msg *q = malloc(sizeof *q);
    if (!q)
        return;   /* dropped, like any lost message */
    q->next = NULL;
    q->m = *msg;  /* READ / ACCEPT / SNAP_REQ hold no pointers */
    assert(msg->type == MSG_READ || msg->type == MSG_ACCEPT || msg->type == MSG_SNAP_REQ);
    if (m->self_tail)
        m->self_tail->next = q;
    else
        m->self_head = q;
    m->self_tail = q;
    event_active(m->self_ev, EV_READ, 0);
}

/* ---- q_store over the log ---------------------------------------------- */

static uint64_t store_get(void *ctx, const struct seqd_name *name)
{
    member *m = ctx;
    return table_get(m->t, name->s, name->len);
}

/* What peers' replies said of their positions rides with the next batch
 * (DESIGN.md §3: one small record per peer per batch, when it changed). */
static int store_raise(void *ctx, const struct seqd_name *name, uint64_t value, q_done_fn done, void *arg)
{
    member *m = ctx;
    if (m->inc)
        inc_flush(m->inc);
    /* The old value only matters to the alarm, and only above it. */
    uint64_t old = value >= m->headroom.alarm ? table_get(m->t, name->s, name->len) : 1;
    int rc = log_append(m->log, name->s, name->len, value, done, arg);
    if (rc == 0)
        headroom_note(&m->headroom, name->s, name->len, old, value);
    return rc;
}

static uint64_t store_meta_get(void *ctx, const char *key)
{
    member *m = ctx;
    return log_meta_get(m->log, key, (uint8_t)strlen(key));
}

static int store_meta_raise(void *ctx, const char *key, uint64_t value, q_done_fn done, void *arg)
{
    member *m = ctx;
    return log_append_meta(m->log, key, (uint8_t)strlen(key), value, done, arg);
}

static uint64_t store_position(void *ctx)
{
    member *m = ctx;
    return log_position(m->log);
}

static void store_set_position_key(void *ctx, const char *key)
{
    member *m = ctx;
    log_set_position_key(m->log, key, (uint8_t)strlen(key));
}

static uint64_t store_count(void *ctx)
{
    member *m = ctx;
    return table_count(m->t);
}

static void store_entry(void *ctx, uint64_t i, struct seqd_name *name, uint64_t *value)
{
    member *m = ctx;
    const char *n;
    uint8_t len;
    table_entry(m->t, (size_t)i, &n, &len, value);
    seqd_name_set(name, n, len);
}

/* ---- requests to itself -------------------------------------------------- */

/* The one gate of every READ, ACCEPT and SNAP_REQ, a peer's or its own
 * (quorum/epoch.h): a request of another (epoch, digest) is answered with
 * "epoch E" and changes nothing, so a round never counts a vote given
 * under another set — the old host of a replaced slot, cut off but
 * running, can no longer be counted by anyone. */
static void member_request(member *m, int from, const seqd_msg *req, q_reply_fn reply, void *cookie)
{
    uint64_t e = req->type == MSG_READ ? req->u.read.epoch
                 : req->type == MSG_ACCEPT ? req->u.accept.epoch : req->u.snap_req.epoch;
    uint64_t d = req->type == MSG_READ ? req->u.read.digest
                 : req->type == MSG_ACCEPT ? req->u.accept.digest : req->u.snap_req.digest;
    if (!epoch_admits(&m->set, e, d)) {
        char text[64];
        int n = snprintf(text, sizeof text, "epoch %llu", (unsigned long long)m->set.epoch);
        seqd_msg r = {.type = MSG_REPLY_ERR, .reqid = req->reqid};
        r.u.err.code = ERR_EPOCH;
        r.u.err.len = (uint16_t)n;
        r.u.err.text = text;
        reply(cookie, &r);
        return;
    }
    acc_handle(m->acc, from, req, reply, cookie);
}

static void reply_to_self(void *cookie, const seqd_msg *reply)
{
    member *m = cookie;
    coord_on_reply(m->coord, m->cfg.self, reply);
}

static void self_deliver_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    member *m = arg;
    self_msg *q = m->self_head;
    m->self_head = m->self_tail = NULL;
    while (q) {
        self_msg *next = q->next;
        member_request(m, m->cfg.self, &q->m, reply_to_self, m);
        free(q);
        q = next;
    }
}

/* ---- the operations front ends call ------------------------------------ */

/* A fetch in flight, timed for the fetch-latency histogram: one small
 * allocation per fetch, beside the one the front end makes. */
typedef struct member_fetch_op {
    member *m;
    member_fetch_fn done;
    void *arg;
    uint64_t start_us;
} member_fetch_op;

static void member_fetch_done(void *arg, int err, uint64_t first, uint32_t count)
{
    member_fetch_op *op = arg;
    member *m = op->m;
    member_fetch_fn done = op->done;
    void *darg = op->arg;
    hist_observe(&m->fetch_latency, env_now_us(m) - op->start_us);
    free(op);
    done(darg, err, first, count);
}

/* What every client request of the coordinator is refused with now (0:
 * none), and its deadline: timeout_ms, 0 meaning the default, capped. */
static int member_admit(member *m, uint32_t timeout_ms, uint64_t *deadline)
{
    if (m->stopping)
        return ERR_SHUTDOWN;
    if (!acc_ready(m->acc))
        return ERR_RECOVERING;
    uint32_t ms = timeout_ms ? timeout_ms : MEMBER_DEFAULT_TIMEOUT_MS;
    if (ms > MEMBER_MAX_TIMEOUT_MS)
        ms = MEMBER_MAX_TIMEOUT_MS;
    *deadline = env_now_us(m) + (uint64_t)ms * 1000u;
    return 0;
}

int member_fetch(member *m, const struct seqd_name *name, uint32_t count, uint32_t timeout_ms,
                 member_fetch_fn done, void *arg)
{
    /* Pair assertions: the front end refused bad input with a reply. */
    assert(seqd_name_valid(name->s, name->len));
    assert(seqd_count_valid(count));
    uint64_t deadline;
    int refused = member_admit(m, timeout_ms, &deadline);
    if (refused)
        return refused;
    member_fetch_op *op = malloc(sizeof *op);
    if (!op)
        return ERR_TIMEOUT;   /* out of memory, as member.h says */
    *op = (member_fetch_op){.m = m, .done = done, .arg = arg, .start_us = env_now_us(m)};
    coord_submit(m->coord, name, count, deadline, member_fetch_done, op);
    return 0;
}

int member_advance(member *m, const struct seqd_name *name, uint64_t floor, uint32_t timeout_ms,
                   member_fetch_fn done, void *arg)
{
    assert(seqd_name_valid(name->s, name->len));
    assert(floor >= 1);
    uint64_t deadline;
    int refused = member_admit(m, timeout_ms, &deadline);
    if (refused)
        return refused;
    coord_submit_floor(m->coord, name, floor, deadline, done, arg);
    return 0;
}

int member_read(member *m, const struct seqd_name *name, uint32_t timeout_ms, member_fetch_fn done,
                void *arg)
{
    assert(seqd_name_valid(name->s, name->len));
    uint64_t deadline;
    int refused = member_admit(m, timeout_ms, &deadline);
    if (refused)
        return refused;
    coord_submit_read(m->coord, name, deadline, done, arg);
    return 0;
}

static bool has_prefix(const char *name, uint8_t len, const char *prefix, uint8_t plen)
{
    return len >= plen && memcmp(name, prefix, plen) == 0;
}

int member_list(const member *m, const char *prefix, uint8_t plen, uint32_t start, uint8_t *out,
                size_t cap, member_list_chunk *chunk)
{
    if (m->stopping)
        return ERR_SHUTDOWN;
    if (!acc_ready(m->acc))
        return ERR_RECOVERING;
    size_t n = table_count(m->t), used = 0, scanned = 0;
    uint32_t i = start;
    *chunk = (member_list_chunk){0};
    for (; i < n && scanned < MEMBER_LIST_SCAN_MAX; i++, scanned++) {
        const char *nm;
        uint8_t len;
        uint64_t v;
        table_entry(m->t, i, &nm, &len, &v);
        if (!has_prefix(nm, len, prefix, plen))
            continue;
        if (cap - used < 1u + len + 8u)
            break;
        used += snap_entry_put(out + used, nm, len, v);
        chunk->n++;
    }
    chunk->next = i;
    chunk->done = i >= n;
    chunk->bytes = (uint32_t)used;
    return 0;
}

void member_get_status(const member *m, struct seqd_status *st)
{
    coord_stats cs;
    log_stats ls;
    coord_get_stats(m->coord, &cs);
    log_get_stats(m->log, &ls);
    *st = (struct seqd_status){
        .state = m->stopping ? STATE_STOPPING : acc_ready(m->acc) ? STATE_READY : STATE_RECOVERING,
        .self_index = (uint8_t)m->cfg.self, .n_members = (uint8_t)m->cfg.n,
        .fetches = cs.fetches, .ids = cs.ids, .rounds = cs.rounds, .reads = cs.reads,
        .nacks = cs.nacks, .fsyncs = ls.fsyncs, .records = ls.appends, .epoch = m->set.epoch};
}

void member_get_metrics(const member *m, member_metrics *out)
{
    coord_stats cs;
    log_stats ls;
    coord_get_stats(m->coord, &cs);
    log_get_stats(m->log, &ls);
    int up = 0;
    for (int i = 0; i < m->cfg.n; i++)
        up += i != m->cfg.self && m->peers[i] && peer_up(m->peers[i]);
    *out = (member_metrics){.round_conflicts = cs.conflicts, .round_timeouts = cs.timeouts,
                            .log_bytes = ls.bytes, .log_writes = ls.writes,
                            .log_compactions = ls.compactions, .log_write_errors = ls.write_errors,
                            .sequences = table_count(m->t), .peers_up = up,
                            .rounds_committed = m->rounds_committed,
                            .rounds_failed = m->rounds_failed,
                            .headroom = &m->headroom,
                            .floors = cs.floors,
                            .coord_held = cs.held, .coord_evictions = cs.evictions,
                            .fetch_latency = &m->fetch_latency,
                            .round_latency = &m->round_latency,
                            .fsync_latency = &m->fsync_latency};
    member_get_status(m, &out->st);
}

static void member_round_observed(void *arg, bool committed, uint64_t us)
{
    member *m = arg;
    hist_observe(&m->round_latency, us);
    if (committed)
        m->rounds_committed++;
    else
        m->rounds_failed++;
}

static void member_fsync_observed(void *arg, uint64_t us)
{
    hist_observe(arg, us);   /* the sync thread: hist_observe is atomic */
}

static int member_index(const member *m, const char *addr, size_t len)
{
    for (int i = 0; i < m->cfg.n; i++)
        if (strlen(m->cfg.members[i]) == len && memcmp(m->cfg.members[i], addr, len) == 0)
            return i;
    return -1;
}

/* A peer proves it belongs to this cluster before it may read or vote:
 * same epoch of the member set (its digest), same R (rounds must end alike
 * everywhere), and an address that is one of ours. */
int member_peer_hello(member *m, uint64_t epoch, uint64_t set_digest, uint32_t round_ms,
                      const struct seqd_inc *inc, const char *addr, size_t addr_len,
                      const char *from, char *why, size_t whylen)
{
    int idx = member_index(m, addr, addr_len);
    struct seqd_inc rec;
    if (epoch != m->set.epoch || set_digest != m->set.digest) {
        member_epoch_text(m, why, whylen);
        uint64_t now = env_now_us(m);
        if (now - m->epoch_logged_us >= 10000000u) {   /* a replaced host retries 4 times a second */
            m->epoch_logged_us = now;
            member_log(m, MLOG_WARN, "refused a peer hello from %s (%.*s): it is at epoch %llu, "
                          "this member at epoch %llu (members %s)", from, (int)addr_len, addr,
                       (unsigned long long)epoch, (unsigned long long)m->set.epoch, m->joined);
        }
        return -1;
    } else if (round_ms != m->cfg.round_ms) {
        snprintf(why, whylen, "hello refused: --round-timeout differs (ours: %u ms, yours: %u ms)",
                 m->cfg.round_ms, round_ms);
    } else if (idx < 0 || idx == m->cfg.self) {
        snprintf(why, whylen, "hello refused: %.*s is not another member of %s", (int)addr_len,
                 addr, m->cfg.members_joined);
    } else if (inc->counter != 0 && inc_is_stale(m->inc, idx, inc, &rec)) {
        snprintf(why, whylen, MEMBER_ROLLED_BACK_FMT, (unsigned long long)rec.counter,
                 (unsigned long long)rec.nonce, (unsigned long long)rec.pos);
    } else {
        inc_observe(m->inc, idx, inc);
        m->heard_us[idx] = env_now_us(m);
        return idx;
    }
    member_log(m, MLOG_WARN, "refused a peer hello from %s: %s", from, why);
    return -1;
}

void member_peer_request(member *m, int from, const seqd_msg *req, q_reply_fn reply, void *cookie)
{
    assert(req->type == MSG_READ || req->type == MSG_ACCEPT || req->type == MSG_SNAP_REQ);
    assert(from >= 0 && from < m->cfg.n);   /* only after a hello */
    m->heard_us[from] = env_now_us(m);
    member_request(m, from, req, reply, cookie);
}

void member_peer_stopped(member *m, int from, const struct seqd_inc *inc)
{
    assert(from >= 0 && from < m->cfg.n);
    inc_stopped(m->inc, from, inc);
    member_log(m, MLOG_INFO, "peer %s stopped cleanly (incarnation %llu, position %llu)",
               m->cfg.members[from], (unsigned long long)inc->counter,
               (unsigned long long)inc->pos);
}

bool member_ready(const member *m) { return acc_ready(m->acc); }
void member_set_ready_cb(member *m, member_ready_fn fn, void *arg)
{
    m->on_ready = fn;
    m->on_ready_arg = arg;
}
bool member_stopping(const member *m) { return m->stopping; }
bool member_fatal(const member *m) { return m->fatal; }
const member_config *member_cfg(const member *m) { return &m->cfg; }

/* ---- outgoing peer links --------------------------------------------------- */

/* Every reply says where its sender stands (incarnation, position); one
 * from a sender behind what was recorded of it is not counted. */
static bool member_observe(member *m, int from, const seqd_msg *msg)
{
    const struct seqd_inc *inc = msg->type == MSG_VALUE || msg->type == MSG_NACK ? &msg->u.value.inc
                                 : msg->type == MSG_ACK                          ? &msg->u.ack.inc
                                                                                 : NULL;
    if (inc == NULL || inc_observe(m->inc, from, inc))
        return true;
    uint64_t now = env_now_us(m);
    if (now - m->stale_logged_at_us >= 1000000u) {
        m->stale_logged_at_us = now;
        member_log(m, MLOG_WARN, "not counting replies of %s: incarnation %llu at position %llu is behind "
                      "what was recorded of it (rolled back while it ran?)",
                   m->cfg.members[from], (unsigned long long)inc->counter,
                   (unsigned long long)inc->pos);
    }
    return false;
}

static void member_peer_reply(peer *p, int from, const seqd_msg *msg, void *arg)
{
    member *m = arg;
    m->heard_us[from] = env_now_us(m);
    unsigned long long e;
    if (msg->type == MSG_REPLY_ERR && msg->u.err.code == ERR_EPOCH &&
        sscanf(msg->u.err.text, "epoch %llu", &e) == 1 && e > m->set.epoch)
        peer_reset(p, "the peer is at a later epoch: saying hello again to learn its set");
    if (msg->reqid & Q_REQID_RECOVERY) {
        if (m->rec)
            recovery_on_reply(m->rec, from, msg);
        return;
    }
    if (member_observe(m, from, msg))
        coord_on_reply(m->coord, from, msg);
}

/* A peer refused our hello: its records say this member's incarnation is
 * superseded, i.e. this data directory went back. A recovering member is
 * marked and reads again as a new incarnation (quorum/recovery.h); a
 * serving one was rolled back while it ran (a VM resumed from a snapshot)
 * and exits, so that it starts again and recovers. */
static void member_told_rolled_back(member *m, int who, const char *why)
{
    const char *s = strstr(why, "rolled back: recorded incarnation ");
    unsigned long long c, n, pos;
    if (!s || sscanf(s, MEMBER_ROLLED_BACK_FMT, &c, &n, &pos) != 3)
        return;
    struct seqd_inc rec = {c, n, pos};
    if (m->rec) {
        char line[256];
        snprintf(line, sizeof line, "rolled back: %s recorded incarnation %llu of this member, "
                 "and this one is older", m->cfg.members[who], c);
        recovery_rolled_back(m->rec, &rec, line);
    } else if (acc_ready(m->acc) && !m->stopping) {
        member_log(m, MLOG_ERROR, "fatal: %s recorded incarnation %llu of this member at position %llu: this "
                      "member's data directory went back while it ran (a VM resumed from a "
                      "snapshot?); exiting, to start again and recover", m->cfg.members[who], c, pos);
        member_die(m);
    }
}

static void member_peer_state(peer *p, int who, bool up, const char *why, void *arg)
{
    (void)p;
    member *m = arg;
    if (up) {
        member_log(m, MLOG_INFO, "peer %s up", m->cfg.members[who]);
        return;
    }
    member_log(m, MLOG_INFO, "peer %s down: %s", m->cfg.members[who], why);
    member_told_rolled_back(m, who, why);
    member_told_epoch(m, who, why);
}

static void member_inc_now(void *arg, struct seqd_inc *out)
{
    member *m = arg;
    *out = inc_self(m->inc);
}

/* Where to connect to reach member `addr`: itself, unless the peer-route
 * testing hook sends that link through a proxy. */
static const char *member_route(const member *m, const char *addr, char *buf, size_t buflen)
{
    const char *r = m->cfg.peer_route;
    size_t alen = strlen(addr);
    while (r && *r) {
        const char *end = strchr(r, ',');
        size_t len = end ? (size_t)(end - r) : strlen(r);
        if (len > alen + 1 && r[alen] == '=' && memcmp(r, addr, alen) == 0 && len - alen - 1 < buflen) {
            memcpy(buf, r + alen + 1, len - alen - 1);
            buf[len - alen - 1] = '\0';
            return buf;
        }
        r = end ? end + 1 : NULL;
    }
    return addr;
}

static void member_epoch_now(void *arg, uint64_t *epoch, uint64_t *digest)
{
    const member *m = arg;
    *epoch = m->set.epoch;
    *digest = m->set.digest;
}

int member_connect_peer(member *m, int i, char *err, size_t errlen)
{
    peer_hello hello = {.round_ms = m->cfg.round_ms, .cluster_id = m->set.digest,
                        .self_addr = m->cfg.members[m->cfg.self], .secret = m->cfg.secret,
                        .inc_now = member_inc_now, .epoch_now = member_epoch_now};
    char buf[SEQD_ADDR_MAX + 1];
    const char *target = member_route(m, m->cfg.members[i], buf, sizeof buf);
    if (target != m->cfg.members[i])
        member_log(m, MLOG_WARN, "testing hook: link to %s goes through %s", m->cfg.members[i], target);
    m->peers[i] = peer_new(m->base, i, target, &hello, member_peer_reply, member_peer_state, m,
                           err, errlen);
    return m->peers[i] ? 0 : -1;
}

static int member_connect_peers(member *m, char *err, size_t errlen)
{
    m->peers = calloc((size_t)m->cfg.n, sizeof *m->peers);
    if (!m->peers) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (int i = 0; i < m->cfg.n; i++)
        if (i != m->cfg.self && member_connect_peer(m, i, err, errlen) < 0)
            return -1;
    return 0;
}

/* ---- recovery ----------------------------------------------------------- */

/* IDENTITY for cid and the set `set` (reached by sw when its epoch > 0).
 * A failure is fatal: the member could not keep what it says it holds. */
int member_write_identity(member *m, const struct seqd_cid *cid, const q_set *set,
                          const q_switch *sw, const q_switch *prev)
{
    char msg[256];
    datadir_identity id = {.cid = *cid, .set_digest = set->digest, .epoch = set->epoch};
    epoch_join(set, id.members, sizeof id.members);
    if (set->epoch > 0) {
        id.has_switch = true;
        id.sw_slot = sw->slot;
        id.sw_old_inc = sw->old_inc;
        snprintf(id.sw_old, sizeof id.sw_old, "%s", sw->old_addr);
        snprintf(id.sw_new, sizeof id.sw_new, "%s", sw->new_addr);
    }
    if (set->epoch > 1 && prev) {
        id.has_prev = true;
        id.prev_slot = prev->slot;
        id.prev_old_inc = prev->old_inc;
        snprintf(id.prev_old, sizeof id.prev_old, "%s", prev->old_addr);
        snprintf(id.prev_new, sizeof id.prev_new, "%s", prev->new_addr);
    }
    if (datadir_write_identity(m->cfg.data_dir, &id, msg, sizeof msg) < 0) {
        member_log(m, MLOG_ERROR, "cannot record identity: %s; exiting", msg);
        member_die(m);
        return -1;
    }
    return 0;
}

/* Durably records "initialized with cid". It is what makes this member
 * count as "has state" for others' recoveries, so it is written only once
 * its values are true: after the adopted maxima are durable (recovery
 * calls done only then), or at COMMIT (a prepared member never voted). */
static int member_record_identity(member *m, const struct seqd_cid *cid)
{
    if (member_write_identity(m, cid, &m->set, &m->sw, m->has_prev ? &m->prev_sw : NULL) < 0)
        return -1;
    m->cfg.mode = RECOVERY_INITIALIZED;
    m->cfg.cid = *cid;
    acc_set_cid(m->acc, cid);
    acc_set_has_state(m->acc, true);
    return 0;
}

static void member_recovered(void *arg, int err, bool committed, const struct seqd_cid *rcid)
{
    member *m = arg;
    if (err) {
        member_log(m, MLOG_ERROR, "recovery failed: %s; exiting", strerror(err));
        member_die(m);
        return;
    }
    const struct seqd_cid copy = *rcid, *cid = &copy;   /* rcid points into the recovery */
    int read_from = recovery_members_read(m->rec);
    bool clean = recovery_clean(m->rec);
    recovery_free(m->rec);
    m->rec = NULL;
    if (m->cfg.mode != RECOVERY_INITIALIZED || !seqd_cid_eq(&m->cfg.cid, cid)) {
        if (member_record_identity(m, cid) < 0)
            return;
    }
    /* A completed recovery (or a confirmed clean stop) is what verifies a
     * member: from now on its snapshots count for others. */
    acc_set_has_state(m->acc, true);
    acc_set_ready(m->acc, true);
    char hex[SEQD_CID_HEX];
    seqd_cid_hex(cid, hex);
    if (committed)
        member_log(m, MLOG_INFO, "ready: initialized by seqd init as cluster %s of %d members", hex, m->cfg.n);
    else if (clean)
        member_log(m, MLOG_INFO, "ready: clean stop confirmed by a serving peer, log complete (%zu sequences, "
                      "no wait and no recovery read; cluster %s)", table_count(m->t), hex);
    else
        member_log(m, MLOG_INFO, "ready: recovered (%zu sequences, state read from %d other members, cluster %s)",
                   table_count(m->t), read_from, hex);
    if (m->on_ready)
        m->on_ready(m->on_ready_arg);
}

/* ---- init ---------------------------------------------------------------- */

static int init_reply(seqd_msg *reply, uint8_t state, const struct seqd_cid *cid)
{
    reply->type = MSG_INIT_REPLY;
    reply->u.init_reply.state = state;
    reply->u.init_reply.cid = *cid;
    return 0;
}

/* COMMIT of x on a member prepared for x: IDENTITY is durable before the
 * reply says "initialized", and before recovery makes it ready. */
static int member_init_commit(member *m, const struct seqd_cid *x, seqd_msg *reply, char *why,
                              size_t whylen)
{
    if (!m->rec || recovery_mode(m->rec) != RECOVERY_PREPARED ||
        !seqd_cid_eq(recovery_cid(m->rec), x)) {
        snprintf(why, whylen, "init refused: not prepared for this cluster id (run seqd init again)");
        return ERR_INIT_REFUSED;
    }
    if (member_record_identity(m, x) < 0) {
        snprintf(why, whylen, "init refused: cannot record the identity");
        return ERR_STORAGE;
    }
    bool ok = recovery_commit(m->rec, x);
    assert(ok);   /* checked just above: prepared for x */
    (void)ok;
    return init_reply(reply, INIT_INITIALIZED, x);
}

/* PREPARE(x) on an empty member: "prepared x" is durable and sticky. */
static int member_init_prepare(member *m, const struct seqd_cid *x, seqd_msg *reply, char *why,
                               size_t whylen)
{
    char msg[256];
    datadir_identity id = {.cid = *x, .set_digest = m->cfg.set_digest};
    snprintf(id.members, sizeof id.members, "%s", m->cfg.members_joined);
    if (datadir_write_prepared(m->cfg.data_dir, &id, msg, sizeof msg) < 0) {
        member_log(m, MLOG_ERROR, "cannot record init's PREPARE: %s", msg);
        snprintf(why, whylen, "init refused: cannot record PREPARE: %s", msg);
        return ERR_STORAGE;
    }
    recovery_prepared(m->rec, x);
    m->cfg.mode = RECOVERY_PREPARED;
    m->cfg.cid = *x;
    char hex[SEQD_CID_HEX];
    seqd_cid_hex(x, hex);
    member_log(m, MLOG_INFO, "prepared by seqd init for cluster %s; waiting for its COMMIT", hex);
    return init_reply(reply, INIT_PREPARED, x);
}

int member_init(member *m, const seqd_msg *req, seqd_msg *reply, char *why, size_t whylen)
{
    static const struct seqd_cid none;
    const struct seqd_cid *x = &req->u.init.cid;
    uint8_t op = req->u.init.op;
    if (op < INIT_PROBE || op > INIT_COMMIT || (op != INIT_PROBE && seqd_cid_none(x))) {
        snprintf(why, whylen, "init refused: bad request");
        return ERR_BAD_REQUEST;
    }
    if (req->u.init.set_digest != m->cfg.set_digest) {
        snprintf(why, whylen, "init refused: member set differs (this member's: %s)",
                 m->cfg.members_joined);
        return ERR_INIT_REFUSED;
    }
    if (m->cfg.mode == RECOVERY_INITIALIZED) {
        if (op == INIT_COMMIT && !seqd_cid_eq(x, &m->cfg.cid)) {
            snprintf(why, whylen, "init refused: this member belongs to another cluster");
            return ERR_INIT_REFUSED;
        }
        return init_reply(reply, INIT_INITIALIZED, &m->cfg.cid);
    }
    if (!m->rec) {   /* starting: its incarnation is not durable yet */
        snprintf(why, whylen, "init refused: the member is starting; run seqd init again");
        return ERR_RECOVERING;
    }
    if (op == INIT_COMMIT)
        return member_init_commit(m, x, reply, why, whylen);
    if (recovery_mode(m->rec) == RECOVERY_PREPARED)
        return init_reply(reply, INIT_PREPARED, recovery_cid(m->rec));   /* sticky */
    if (recovery_emptiness(m->rec) == RECOVERY_EMPTY_UNKNOWN) {
        if (op == INIT_PROBE)
            return init_reply(reply, INIT_WAITING, &none);
        snprintf(why, whylen, "init refused: not heard from every member yet (is one down?)");
        return ERR_RECOVERING;
    }
    if (!recovery_is_empty(m->rec)) {
        if (op == INIT_PROBE)
            return init_reply(reply, INIT_RECOVERING, &none);
        snprintf(why, whylen, "init refused: this member holds values but no cluster id: it is "
                              "recovering into an existing cluster");
        return ERR_INIT_REFUSED;
    }
    if (op == INIT_PROBE)
        return init_reply(reply, INIT_EMPTY, &none);
    return member_init_prepare(m, x, reply, why, whylen);
}

/* ---- log completions ---------------------------------------------------- */

/* A full or failing disk fails batches, not the member: say so in the log,
 * at most once a second while it lasts. */
static void member_watch_writes(member *m)
{
    log_stats ls;
    log_get_stats(m->log, &ls);
    uint64_t now = env_now_us(m);
    if (ls.write_errors > m->write_errors_logged && now - m->write_errors_at_us >= 1000000u) {
        member_log(m, MLOG_WARN, "log writes are failing (disk full or failing): %llu failed batches so far; "
                      "requests that need this member's vote fail with a storage error",
                   (unsigned long long)ls.write_errors);
        m->write_errors_logged = ls.write_errors;
        m->write_errors_at_us = now;
    }
}

static void member_log_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    member *m = arg;
    member_watch_writes(m);
    if (log_poll(m->log) < 0 && !m->fatal) {
        member_log(m, MLOG_ERROR, "fatal: fsync of the log failed; its pages may be lost, exiting");
        member_die(m);
    }
}

/* ---- lifecycle ---------------------------------------------------------- */

static void member_wire_env(member *m)
{
    m->env = (q_env){.ctx = m, .self = m->cfg.self, .n = m->cfg.n,
                     .round_us = (uint64_t)m->cfg.round_ms * 1000u, .send = env_send,
                     .now_us = env_now_us, .timer_start = env_timer_start,
                     .timer_stop = env_timer_stop, .random = env_random};
    m->store = (q_store){.ctx = m, .get = store_get, .raise = store_raise, .count = store_count,
                         .entry = store_entry, .meta_get = store_meta_get,
                         .meta_raise = store_meta_raise, .position = store_position,
                         .set_position_key = store_set_position_key};
    m->rng = env_now_us(m) ^ ((uint64_t)getpid() << 32) ^ UINT64_C(0x9E3779B97F4A7C15);
}

static void member_release(member *m);

member *member_new(struct event_base *base, const member_config *cfg, seqlog *log, table *t,
                   char *err, size_t errlen)
{
    assert(cfg->n >= 1 && cfg->n <= SEQD_MAX_MEMBERS);
    assert(cfg->self >= 0 && cfg->self < cfg->n);
    member *m = calloc(1, sizeof *m);
    if (!m) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    m->base = base;
    m->cfg = *cfg;
    if (cfg->set) {
        assert(cfg->set->n == cfg->n);
        m->set = *cfg->set;
        if (cfg->set->epoch > 0)
            m->sw = *cfg->last_switch;
        if (cfg->set->epoch > 1 && cfg->prev_switch) {
            m->prev_sw = *cfg->prev_switch;
            m->has_prev = true;
        }
    } else if (epoch_init(&m->set, cfg->members, cfg->n) < 0) {
        snprintf(err, errlen, "bad member set");
        free(m);
        return NULL;
    }
    member_set_views(m);
    m->log = log;
    m->t = t;
    member_wire_env(m);
    m->acc = acc_new(&m->store);
    m->coord = coord_new(&m->env);
    m->inc = inc_new(&m->env, &m->store);
    if (m->coord)
        coord_set_round_observer(m->coord, member_round_observed, m);
    m->fsync_obs = (log_fsync_observer){.fn = member_fsync_observed, .arg = &m->fsync_latency};
    headroom_init(&m->headroom, cfg->exhaustion_alarm > 0 ? cfg->exhaustion_alarm
                                                          : MEMBER_DEFAULT_EXHAUSTION_ALARM);
    for (size_t i = 0, n = table_count(t); i < n; i++) {   /* what the log replayed */
        const char *nm;
        uint8_t len;
        uint64_t v;
        table_entry(t, i, &nm, &len, &v);
        headroom_note(&m->headroom, nm, len, 1, v);
    }
    log_set_fsync_observer(log, &m->fsync_obs);
    acc_set_incarn(m->acc, m->inc);
    m->self_ev = event_new(base, -1, 0, self_deliver_cb, m);
    m->log_ev = event_new(base, log_notify_fd(log), EV_READ | EV_PERSIST, member_log_cb, m);
    if (!m->acc || !m->coord || !m->self_ev || !m->log_ev) {
        snprintf(err, errlen, "out of memory");
        log_set_fsync_observer(log, NULL);
        member_release(m);
        return NULL;
    }
    event_add(m->log_ev, NULL);
    /* A member's snapshots count for others only once it is verified
     * (quorum/incarnation.h): recovery says when. */
    acc_set_has_state(m->acc, cfg->mode == RECOVERY_INITIALIZED && cfg->n == 1);
    if (cfg->mode == RECOVERY_INITIALIZED)
        acc_set_cid(m->acc, &cfg->cid);
    if (member_connect_peers(m, err, errlen) < 0) {
        log_set_fsync_observer(log, NULL);
        member_release(m);
        return NULL;
    }
    return m;
}

static void member_trust(void *arg, bool counts)
{
    member *m = arg;
    acc_set_has_state(m->acc, counts && m->cfg.mode == RECOVERY_INITIALIZED);
    if (counts)
        member_log(m, MLOG_INFO, "verified: %d other members' records of this member agree with its log",
                   m->cfg.n - q_quorum(m->cfg.n) + 1);
}

static uint64_t member_incarnation_floor(const member *m);

static void member_rolled_back(void *arg, const char *why)
{
    member *m = arg;
    acc_set_has_state(m->acc, false);
    if (member_incarnation_floor(m) > 0) {   /* the replaced host's records */
        member_log(m, MLOG_INFO, "%s: the peers' records of this slot are those of the host it "
                      "replaces (%s); recovering from its peers as a member without data",
                   why, m->sw.old_addr);
        return;
    }
    member_log(m, MLOG_WARN, "%s: this member's data directory was rolled back (a restored backup, a VM "
                  "snapshot, a disk that lost synced writes); marked rolled back: it counts for "
                  "nobody's recovery and recovers from its peers like a member that lost its data",
               why);
}

static void member_incarnated(void *arg, int err);

static void member_incarnate_again(void *arg)
{
    member *m = arg;
    if (inc_begin(m->inc, 0, member_incarnated, m) < 0) {
        member_log(m, MLOG_ERROR, "cannot record a new incarnation in the log; exiting");
        member_die(m);
    }
}

/* A failed write (a full disk) is tried again every R, like a failed
 * batch; nothing was said to a peer yet. */
static void member_incarnated(void *arg, int err)
{
    member *m = arg;
    if (err) {
        member_log(m, MLOG_WARN, "cannot record a new incarnation: %s; trying again",
                   strerror(err > 0 ? err : EIO));
        if (!env_timer_start(m, m->env.round_us, member_incarnate_again, m))
            member_die(m);
        return;
    }
    const member_config *cfg = &m->cfg;
    struct seqd_inc me = inc_self(m->inc);
    member_log(m, MLOG_INFO, "recovering: %zu sequences replayed from the log, incarnation %llu%s; waiting 2R "
                  "before reading peers",
               table_count(m->t), (unsigned long long)me.counter,
               inc_marked(m->inc) ? " (marked rolled back)" : "");
    static const recovery_hooks hooks = {.trust = member_trust, .rolled_back = member_rolled_back};
    m->rec = recovery_start(&m->env, &m->store, m->inc, &hooks, cfg->mode, &cfg->cid,
                            member_recovered, m);
}

/* The new member of a switch starts its slot's incarnations above the
 * replaced host's (the switch names the highest any recorder had), so its
 * peers see a newer incarnation of the slot rather than a rolled-back one. */
static uint64_t member_incarnation_floor(const member *m)
{
    bool new_of_switch = m->cfg.mode == RECOVERY_EMPTY && m->set.epoch > 0 &&
                         m->sw.slot == m->cfg.self &&
                         strcmp(m->sw.new_addr, m->cfg.members[m->cfg.self]) == 0;
    return new_of_switch ? m->sw.old_inc : 0;
}

int member_start(member *m, char *err, size_t errlen)
{
    assert(!m->rec && !acc_ready(m->acc));
    const member_config *cfg = &m->cfg;
    static const char *const said[] = {
        [RECOVERY_INITIALIZED] = "initialized",
        [RECOVERY_PREPARED] = "prepared by seqd init, waiting for its COMMIT",
        [RECOVERY_EMPTY] = "no cluster id: waiting for seqd init, or to recover from its peers",
    };
    member_log(m, MLOG_INFO, "listening; member %d of %d (%s), R=%u ms, %s", cfg->self + 1, cfg->n,
               cfg->members_joined, cfg->round_ms, said[cfg->mode]);
    /* A new incarnation, durable before the recovery sends anything: one
     * fsync, waited for here (log_flush runs member_incarnated), so that
     * the member has its recovery before the first request arrives. */
    if (inc_begin(m->inc, member_incarnation_floor(m), member_incarnated, m) < 0 || log_flush(m->log) < 0) {
        snprintf(err, errlen, "cannot record a new incarnation in the log");
        return -1;
    }
    return 0;
}

/* A clean stop, told to every peer once the log is durable: where this
 * incarnation ends. A peer that records it lets the next start skip its
 * recovery read if the log then reaches exactly there (DESIGN.md §3). */
static void member_say_stopped(member *m)
{
    acc_set_ready(m->acc, false);   /* no vote after the position it tells */
    seqd_msg s = {.type = MSG_STOPPED, .reqid = 0};
    s.u.stopped.inc = inc_self(m->inc);
    for (int i = 0; i < m->cfg.n; i++)
        if (i != m->cfg.self && m->peers[i])
            peer_send(m->peers[i], &s);
    member_log(m, MLOG_INFO, "stopped cleanly at incarnation %llu, position %llu",
               (unsigned long long)s.u.stopped.inc.counter,
               (unsigned long long)s.u.stopped.inc.pos);
}

/* Stop in stages, one loop turn apart, so each stage's replies are written:
 * 1. fail fetches still waiting for a round;
 * 2. make the log durable, which releases the ACKs it held;
 * 3. leave the loop. */
static void member_stop_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    member *m = arg;
    struct timeval tv = {0, 50000};
    switch (m->stop_stage++) {
    case 0:
        coord_fail_all(m->coord, ERR_SHUTDOWN);
        evtimer_add(m->stop_ev, &tv);
        break;
    case 1:
        if (log_flush(m->log) < 0 || log_poll(m->log) < 0) {
            member_log(m, MLOG_ERROR, "fatal: fsync of the log failed while stopping");
            m->fatal = true;
        } else if (acc_ready(m->acc)) {
            member_say_stopped(m);
        }
        evtimer_add(m->stop_ev, &tv);
        break;
    default:
        event_base_loopbreak(m->base);
        break;
    }
}

void member_stop(member *m)
{
    if (m->stopping)
        return;
    m->stopping = true;
    member_log(m, MLOG_INFO, "stopping");
    m->stop_ev = evtimer_new(m->base, member_stop_cb, m);
    if (!m->stop_ev) {
        event_base_loopbreak(m->base);
        return;
    }
    event_active(m->stop_ev, EV_TIMEOUT, 0);
}

/* Everything but the log and the table, which stay the caller's when
 * member_new fails. */
static void member_release(member *m)
{
    if (m->rec)
        recovery_free(m->rec);
    inc_free(m->inc);
    if (m->coord)
        coord_free(m->coord);
    for (int i = 0; m->peers && i < m->cfg.n; i++)
        peer_free(m->peers[i]);
    free(m->peers);
    while (m->self_head) {
        self_msg *next = m->self_head->next;
        free(m->self_head);
        m->self_head = next;
    }
    if (m->acc)
        acc_free(m->acc);
    struct event *evs[] = {m->self_ev, m->log_ev, m->stop_ev};
    for (size_t i = 0; i < sizeof evs / sizeof evs[0]; i++)
        if (evs[i] != NULL)
            event_free(evs[i]);
    free(m);
}

void member_free(member *m)
{
    if (!m)
        return;
    /* The log first: closing it completes the last tickets, whose callbacks
     * still reach the acceptor, the recovery and the front ends' replies. */
    seqlog *log = m->log;
    table *t = m->t;
    log_close(log);
    member_release(m);
    table_free(t);
}
