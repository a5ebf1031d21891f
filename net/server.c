/* net/server.c — a seqd member: dispatch of requests, the q_env/q_store
 * that the quorum code runs on, recovery and graceful stop (server.h). */
#include "server.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/listener.h>

#include "../quorum/acceptor.h"
#include "../quorum/coord.h"
#include "../quorum/recovery.h"
#include "../storage/datadir.h"
#include "conn.h"
#include "frame.h"
#include "peer.h"

/* Longest a client may ask a member to work on one fetch. */
#define SERVER_MAX_TIMEOUT_MS 60000u
#define SERVER_DEFAULT_TIMEOUT_MS 5000u

/* A request sent by this member to itself, delivered from the loop (never
 * from inside q_env.send: the quorum code is not re-entrant). */
typedef struct self_msg {
    struct self_msg *next;
    seqd_msg m;
} self_msg;

typedef struct server_timer {
    struct event *ev;
    q_timer_fn fire;
    void *arg;
} server_timer;

struct server {
    struct event_base *base;
    server_config cfg;
    seqlog *log;
    table *t;
    q_env env;
    q_store store;
    acceptor *acc;
    coord *coord;
    recovery *rec;
    peer **peers;                 /* [n], NULL at self */
    conn **conns;                 /* accepted connections still open */
    size_t nconns, capconns;
    struct evconnlistener *listener;
    struct event *log_ev;         /* log_notify_fd readable */
    struct event *self_ev;        /* self queue non-empty */
    struct event *stop_ev;
    self_msg *self_head, *self_tail;
    uint64_t rng;
    uint64_t write_errors_logged;   /* log write failures already reported */
    uint64_t write_errors_at_us;    /* when last reported */
    int stop_stage;
    bool stopping;
    bool fatal;
};

/* One line per notable event, with a timestamp, on stderr: the operator's
 * log. Only the top of the server logs; modules return errors. */
static void server_log(const server *s, const char *fmt, ...)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fprintf(stderr, "%02d:%02d:%02d.%03ld seqd[%s] %s\n", tm.tm_hour, tm.tm_min, tm.tm_sec,
            ts.tv_nsec / 1000000, s->cfg.members[s->cfg.self], line);
}

/* ---- q_env over libevent ---------------------------------------------- */

/* CLOCK_BOOTTIME keeps counting while the machine is suspended and while
 * the process is stopped, so a round's age is real time (DESIGN.md §3). */
static uint64_t env_now_us(void *ctx)
{
    (void)ctx;
    struct timespec ts;
    clock_gettime(CLOCK_BOOTTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void env_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    server_timer *t = arg;
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
    server *s = ctx;
    server_timer *t = malloc(sizeof *t);
    if (!t)
        return NULL;
    t->fire = fire;
    t->arg = arg;
    t->ev = evtimer_new(s->base, env_timer_cb, t);
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
    server_timer *t = timer;
    if (!t)
        return;
    event_free(t->ev);
    free(t);
}

/* xorshift64*: backoff jitter only, nothing depends on its quality. */
static uint64_t env_random(void *ctx)
{
    server *s = ctx;
    s->rng ^= s->rng >> 12;
    s->rng ^= s->rng << 25;
    s->rng ^= s->rng >> 27;
    return s->rng * UINT64_C(2685821657736338717);
}

static void env_send(void *ctx, int member, const seqd_msg *m)
{
    server *s = ctx;
    if (member != s->cfg.self) {
        if (s->peers[member])
            peer_send(s->peers[member], m);
        return;
    }
    self_msg *q = malloc(sizeof *q);
    if (!q)
        return;   /* dropped, like any lost message */
    q->next = NULL;
    q->m = *m;    /* READ / ACCEPT / SNAP_REQ hold no pointers */
    if (s->self_tail)
        s->self_tail->next = q;
    else
        s->self_head = q;
    s->self_tail = q;
    event_active(s->self_ev, EV_READ, 0);
}

/* ---- q_store over the log ---------------------------------------------- */

static uint64_t store_get(void *ctx, const struct seqd_name *name)
{
    server *s = ctx;
    return table_get(s->t, name->s, name->len);
}

static int store_raise(void *ctx, const struct seqd_name *name, uint64_t value, q_done_fn done, void *arg)
{
    server *s = ctx;
    return log_append(s->log, name->s, name->len, value, done, arg);
}

static uint64_t store_count(void *ctx)
{
    server *s = ctx;
    return table_count(s->t);
}

static void store_entry(void *ctx, uint64_t i, struct seqd_name *name, uint64_t *value)
{
    server *s = ctx;
    const char *n;
    uint8_t len;
    table_entry(s->t, (size_t)i, &n, &len, value);
    seqd_name_set(name, n, len);
}

/* ---- replies ------------------------------------------------------------ */

static void reply_err(conn *c, uint64_t reqid, int code, const char *fmt, ...)
{
    char text[SEQD_TEXT_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    seqd_msg r = {.type = MSG_REPLY_ERR, .reqid = reqid};
    r.u.err.code = (uint16_t)code;
    r.u.err.text = text;
    r.u.err.len = (uint16_t)strlen(text);
    conn_send(c, &r);
}

/* Acceptor replies to a peer's request: the conn may have closed while an
 * ACK waited for its fsync, hence the reference. */
static void reply_to_conn(void *cookie, const seqd_msg *reply)
{
    conn *c = cookie;
    conn_send(c, reply);
    conn_unref(c);
}

static void reply_to_self(void *cookie, const seqd_msg *reply)
{
    server *s = cookie;
    coord_on_reply(s->coord, s->cfg.self, reply);
}

static void self_deliver_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    server *s = arg;
    self_msg *q = s->self_head;
    s->self_head = s->self_tail = NULL;
    while (q) {
        self_msg *next = q->next;
        acc_handle(s->acc, &q->m, reply_to_self, s);
        free(q);
        q = next;
    }
}

/* ---- client fetches ----------------------------------------------------- */

typedef struct fetch_req {
    conn *c;
    uint64_t reqid;
} fetch_req;

static void fetch_done(void *arg, int err, uint64_t first, uint32_t count)
{
    fetch_req *f = arg;
    if (err == 0) {
        seqd_msg r = {.type = MSG_RANGE, .reqid = f->reqid};
        r.u.range.first = first;
        r.u.range.count = count;
        conn_send(f->c, &r);
    } else {
        reply_err(f->c, f->reqid, err, "%s", seqd_err_str(err));
    }
    conn_unref(f->c);
    free(f);
}

static void server_fetch(server *s, conn *c, const seqd_msg *m)
{
    const struct seqd_name *name = &m->u.fetch.name;
    if (s->stopping) {
        reply_err(c, m->reqid, ERR_SHUTDOWN, "member is shutting down");
        return;
    }
    if (!seqd_name_valid(name->s, name->len)) {
        reply_err(c, m->reqid, ERR_BAD_NAME,
                  "bad sequence name: want 1 to %u bytes of [A-Za-z0-9._-]", SEQD_NAME_MAX);
        return;
    }
    if (!seqd_count_valid(m->u.fetch.count)) {
        reply_err(c, m->reqid, ERR_BAD_COUNT, "bad count %u: want 1 to %u", m->u.fetch.count,
                  SEQD_COUNT_MAX);
        return;
    }
    if (!acc_ready(s->acc)) {
        reply_err(c, m->reqid, ERR_RECOVERING, "member is recovering");
        return;
    }
    uint32_t ms = m->u.fetch.timeout_ms ? m->u.fetch.timeout_ms : SERVER_DEFAULT_TIMEOUT_MS;
    if (ms > SERVER_MAX_TIMEOUT_MS)
        ms = SERVER_MAX_TIMEOUT_MS;
    fetch_req *f = malloc(sizeof *f);
    if (!f) {
        reply_err(c, m->reqid, ERR_TIMEOUT, "out of memory");
        return;
    }
    f->c = c;
    f->reqid = m->reqid;
    conn_ref(c);
    coord_submit(s->coord, name, m->u.fetch.count, env_now_us(s) + (uint64_t)ms * 1000u, fetch_done, f);
}

/* ---- status and hello ------------------------------------------------- */

static void server_status(server *s, conn *c, uint64_t reqid)
{
    coord_stats cs;
    log_stats ls;
    coord_get_stats(s->coord, &cs);
    log_get_stats(s->log, &ls);
    seqd_msg r = {.type = MSG_STATUS_REPLY, .reqid = reqid};
    struct seqd_status *st = &r.u.status;
    st->state = s->stopping ? STATE_STOPPING : acc_ready(s->acc) ? STATE_READY : STATE_RECOVERING;
    st->self_index = (uint8_t)s->cfg.self;
    st->n_members = (uint8_t)s->cfg.n;
    st->fetches = cs.fetches;
    st->ids = cs.ids;
    st->rounds = cs.rounds;
    st->reads = cs.reads;
    st->nacks = cs.nacks;
    st->fsyncs = ls.fsyncs;
    st->records = ls.appends;
    conn_send(c, &r);
}

static int server_member_index(const server *s, const char *addr, size_t len)
{
    for (int i = 0; i < s->cfg.n; i++)
        if (strlen(s->cfg.members[i]) == len && memcmp(s->cfg.members[i], addr, len) == 0)
            return i;
    return -1;
}

/* A peer proves it belongs to this cluster before it may read or vote:
 * same member set (cluster id), same R (rounds must end alike everywhere),
 * and an address that is one of ours. */
static void server_hello(server *s, conn *c, const seqd_msg *m)
{
    char text[SEQD_TEXT_MAX];
    int idx = server_member_index(s, m->u.hello.addr, m->u.hello.addr_len);
    if (m->u.hello.cluster_id != s->cfg.cluster_id) {
        snprintf(text, sizeof text, "hello refused: member set differs (ours: %s)", s->cfg.members_joined);
    } else if (m->u.hello.round_ms != s->cfg.round_ms) {
        snprintf(text, sizeof text, "hello refused: --round-timeout differs (ours: %u ms, yours: %u ms)",
                 s->cfg.round_ms, m->u.hello.round_ms);
    } else if (idx < 0 || idx == s->cfg.self) {
        snprintf(text, sizeof text, "hello refused: %.*s is not another member of %s",
                 (int)m->u.hello.addr_len, m->u.hello.addr, s->cfg.members_joined);
    } else {
        conn_set_peer(c, idx);
        seqd_msg r = {.type = MSG_HELLO_OK, .reqid = m->reqid};
        conn_send(c, &r);
        return;
    }
    server_log(s, "refused a peer hello from %s: %s", conn_addr(c), text);
    conn_fail(c, FERR_HELLO, text);
}

static void server_on_msg(conn *c, const seqd_msg *m, void *arg)
{
    server *s = arg;
    switch (m->type) {
    case MSG_FETCH:
        server_fetch(s, c, m);
        break;
    case MSG_STATUS:
        server_status(s, c, m->reqid);
        break;
    case MSG_HELLO:
        server_hello(s, c, m);
        break;
    case MSG_READ:
    case MSG_ACCEPT:
    case MSG_SNAP_REQ:
        if (conn_peer(c) < 0) {
            reply_err(c, m->reqid, ERR_NOT_PEER, "%s is for peers: this connection sent no hello",
                      msg_type_str(m->type));
            break;
        }
        conn_ref(c);
        acc_handle(s->acc, m, reply_to_conn, c);
        break;
    case MSG_ERROR:
        conn_close(c, "peer sent an error");
        break;
    default:
        reply_err(c, m->reqid, ERR_BAD_REQUEST, "%s is not a request", msg_type_str(m->type));
        break;
    }
}

/* O(connections) per close; fine for the hundreds a member serves. */
static void server_forget(server *s, conn *c)
{
    for (size_t i = 0; i < s->nconns; i++)
        if (s->conns[i] == c) {
            s->conns[i] = s->conns[--s->nconns];
            return;
        }
}

static void server_on_end(conn *c, void *arg, const char *why)
{
    server *s = arg;
    if (conn_peer(c) >= 0 && !s->stopping)
        server_log(s, "peer link from %s closed: %s", s->cfg.members[conn_peer(c)], why);
    server_forget(s, c);
}

static void server_accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
                             int salen, void *arg)
{
    (void)l;
    (void)sa;
    (void)salen;
    server *s = arg;
    if (s->nconns == s->capconns) {
        size_t cap = s->capconns ? s->capconns * 2 : 64;
        conn **grown = realloc(s->conns, cap * sizeof *grown);
        if (!grown) {
            evutil_closesocket(fd);
            return;
        }
        s->conns = grown;
        s->capconns = cap;
    }
    conn *c = conn_accept(s->base, fd, server_on_msg, server_on_end, s);
    if (!c) {
        server_log(s, "could not set up an accepted connection: out of memory");
        return;
    }
    s->conns[s->nconns++] = c;
}

/* ---- peers -------------------------------------------------------------- */

static void server_peer_reply(peer *p, int member, const seqd_msg *m, void *arg)
{
    (void)p;
    server *s = arg;
    if (m->reqid & Q_REQID_RECOVERY) {
        if (s->rec)
            recovery_on_reply(s->rec, member, m);
        return;
    }
    coord_on_reply(s->coord, member, m);
}

static void server_peer_state(peer *p, int member, bool up, const char *why, void *arg)
{
    (void)p;
    server *s = arg;
    if (up)
        server_log(s, "peer %s up", s->cfg.members[member]);
    else
        server_log(s, "peer %s down: %s", s->cfg.members[member], why);
}

/* ---- recovery ----------------------------------------------------------- */

static void server_recovered(void *arg, int err, bool new_cluster)
{
    server *s = arg;
    char msg[256];
    if (err) {
        server_log(s, "recovery failed: %s; exiting", strerror(err));
        s->fatal = true;
        event_base_loopbreak(s->base);
        return;
    }
    int read_from = recovery_members_read(s->rec);
    recovery_free(s->rec);
    s->rec = NULL;
    /* The identity goes last: it is what makes this member count as "has
     * state" for others' recoveries, so it must not exist before the
     * adopted values are durable (recovery calls us only then). */
    if (!s->cfg.has_state) {
        datadir_identity id = {.cluster_id = s->cfg.cluster_id};
        snprintf(id.members, sizeof id.members, "%s", s->cfg.members_joined);
        if (datadir_write_identity(s->cfg.data_dir, &id, msg, sizeof msg) < 0) {
            server_log(s, "cannot record identity: %s; exiting", msg);
            s->fatal = true;
            event_base_loopbreak(s->base);
            return;
        }
        s->cfg.has_state = true;
    }
    acc_set_has_state(s->acc, true);
    acc_set_ready(s->acc, true);
    if (new_cluster)
        server_log(s, "ready: initialized a new cluster of %d", s->cfg.n);
    else
        server_log(s, "ready: recovered (%zu sequences, state read from %d other members)",
                   table_count(s->t), read_from);
}

/* ---- log completions ---------------------------------------------------- */

/* A full or failing disk fails batches, not the member: say so in the log,
 * at most once a second while it lasts, and once when it is over. */
static void server_watch_writes(server *s)
{
    log_stats ls;
    log_get_stats(s->log, &ls);
    uint64_t now = env_now_us(s);
    if (ls.write_errors > s->write_errors_logged && now - s->write_errors_at_us >= 1000000u) {
        server_log(s, "log writes are failing (disk full or failing): %llu failed batches so far; "
                      "requests that need this member's vote fail with a storage error",
                   (unsigned long long)ls.write_errors);
        s->write_errors_logged = ls.write_errors;
        s->write_errors_at_us = now;
    }
}

static void server_log_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    server *s = arg;
    server_watch_writes(s);
    if (log_poll(s->log) < 0 && !s->fatal) {
        server_log(s, "fatal: fsync of the log failed; its pages may be lost, exiting");
        s->fatal = true;
        event_base_loopbreak(s->base);
    }
}

/* ---- lifecycle ---------------------------------------------------------- */

static int server_listen(server *s, char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    int sslen;
    const char *addr = s->cfg.members[s->cfg.self];
    if (peer_resolve(addr, &ss, &sslen, err, errlen) < 0)
        return -1;
    s->listener = evconnlistener_new_bind(s->base, server_accept_cb, s,
                                          LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_FREE, 512,
                                          (struct sockaddr *)&ss, sslen);
    if (!s->listener) {
        snprintf(err, errlen, "cannot listen on %s: %s", addr, strerror(errno));
        return -1;
    }
    return 0;
}

/* Where to connect to reach member `addr`: itself, unless the peer-route
 * testing hook sends that link through a proxy. */
static const char *server_route(const server *s, const char *addr, char *buf, size_t buflen)
{
    const char *r = s->cfg.peer_route;
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

static int server_connect_peers(server *s, char *err, size_t errlen)
{
    s->peers = calloc((size_t)s->cfg.n, sizeof *s->peers);
    if (!s->peers) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    peer_hello hello = {.round_ms = s->cfg.round_ms, .cluster_id = s->cfg.cluster_id,
                        .self_addr = s->cfg.members[s->cfg.self]};
    for (int i = 0; i < s->cfg.n; i++) {
        if (i == s->cfg.self)
            continue;
        char buf[SEQD_ADDR_MAX + 1];
        const char *target = server_route(s, s->cfg.members[i], buf, sizeof buf);
        if (target != s->cfg.members[i])
            server_log(s, "testing hook: link to %s goes through %s", s->cfg.members[i], target);
        s->peers[i] = peer_new(s->base, i, target, &hello, server_peer_reply,
                               server_peer_state, s, err, errlen);
        if (!s->peers[i])
            return -1;
    }
    return 0;
}

static void server_wire_env(server *s)
{
    s->env = (q_env){.ctx = s, .self = s->cfg.self, .n = s->cfg.n,
                     .round_us = (uint64_t)s->cfg.round_ms * 1000u, .send = env_send,
                     .now_us = env_now_us, .timer_start = env_timer_start,
                     .timer_stop = env_timer_stop, .random = env_random};
    s->store = (q_store){.ctx = s, .get = store_get, .raise = store_raise, .count = store_count,
                         .entry = store_entry};
    s->rng = env_now_us(s) ^ ((uint64_t)getpid() << 32) ^ UINT64_C(0x9E3779B97F4A7C15);
}

server *server_new(struct event_base *base, const server_config *cfg, seqlog *log, table *t,
                   char *err, size_t errlen)
{
    server *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->base = base;
    s->cfg = *cfg;
    s->log = log;
    s->t = t;
    server_wire_env(s);
    s->acc = acc_new(&s->store);
    s->coord = coord_new(&s->env);
    s->self_ev = event_new(base, -1, 0, self_deliver_cb, s);
    s->log_ev = event_new(base, log_notify_fd(log), EV_READ | EV_PERSIST, server_log_cb, s);
    if (!s->acc || !s->coord || !s->self_ev || !s->log_ev) {
        snprintf(err, errlen, "out of memory");
        server_free(s);
        return NULL;
    }
    event_add(s->log_ev, NULL);
    acc_set_has_state(s->acc, cfg->has_state);
    if (server_listen(s, err, errlen) < 0 || server_connect_peers(s, err, errlen) < 0) {
        server_free(s);
        return NULL;
    }
    server_log(s, "listening; member %d of %d (%s), R=%u ms, %s", cfg->self + 1, cfg->n,
               cfg->members_joined, cfg->round_ms,
               cfg->has_state ? "has state" : "no state yet");
    server_log(s, "recovering: %zu sequences replayed from the log; waiting 2R before reading peers",
               table_count(t));
    s->rec = recovery_start(&s->env, &s->store, cfg->has_state, server_recovered, s);
    if (!s->rec) {
        snprintf(err, errlen, "out of memory");
        server_free(s);
        return NULL;
    }
    return s;
}

/* Stop in stages, one loop turn apart, so each stage's replies are written:
 * 1. refuse new work and fail fetches still waiting for a round;
 * 2. make the log durable, which releases the ACKs it held;
 * 3. leave the loop. */
static void server_stop_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    server *s = arg;
    struct timeval tv = {0, 50000};
    switch (s->stop_stage++) {
    case 0:
        coord_fail_all(s->coord, ERR_SHUTDOWN);
        evtimer_add(s->stop_ev, &tv);
        break;
    case 1:
        if (log_flush(s->log) < 0 || log_poll(s->log) < 0) {
            server_log(s, "fatal: fsync of the log failed while stopping");
            s->fatal = true;
        }
        evtimer_add(s->stop_ev, &tv);
        break;
    default:
        event_base_loopbreak(s->base);
        break;
    }
}

void server_stop(server *s)
{
    if (s->stopping)
        return;
    s->stopping = true;
    server_log(s, "stopping");
    if (s->listener) {
        evconnlistener_free(s->listener);
        s->listener = NULL;
    }
    s->stop_ev = evtimer_new(s->base, server_stop_cb, s);
    if (!s->stop_ev) {
        event_base_loopbreak(s->base);
        return;
    }
    event_active(s->stop_ev, EV_TIMEOUT, 0);
}

bool server_fatal(const server *s) { return s->fatal; }

void server_free(server *s)
{
    if (!s)
        return;
    if (s->listener)
        evconnlistener_free(s->listener);
    if (s->rec)
        recovery_free(s->rec);
    if (s->coord)
        coord_free(s->coord);
    for (int i = 0; s->peers && i < s->cfg.n; i++)
        peer_free(s->peers[i]);
    free(s->peers);
    while (s->nconns)
        conn_close(s->conns[s->nconns - 1], "shutting down");   /* on_end forgets it */
    free(s->conns);
    while (s->self_head) {
        self_msg *next = s->self_head->next;
        free(s->self_head);
        s->self_head = next;
    }
    if (s->acc)
        acc_free(s->acc);
    if (s->self_ev)
        event_free(s->self_ev);
    if (s->log_ev)
        event_free(s->log_ev);
    if (s->stop_ev)
        event_free(s->stop_ev);
    free(s);
}
