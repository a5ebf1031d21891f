/* net/front_bin.c — the binary front end: frames in, member calls, frames
 * out (front_bin.h). */
#include "front_bin.h"

#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>

#include <event2/event.h>
#include <event2/listener.h>

#include "../core/member.h"
#include "addr.h"
#include "auth.h"
#include "conn.h"
#include "frame.h"
#include "peer.h"

/* An accepted connection as the front end sees it; the conn's callback
 * argument, so a message finds it in O(1). */
typedef struct front_conn {
    struct front_bin *f;
    conn *c;
    size_t idx;                   /* in f->conns */
    uint64_t accepted_ms;
    bool spoke;                   /* a whole frame arrived */
    bool token_ok;                /* presented the client token (MSG_TOKEN) */
    auth_exchange ax;             /* the challenge-response (AUTH_X_IDLE: a client) */
} front_conn;

/* Limits (DESIGN.md §3, hostile input): a connection that has not sent one
 * whole frame after FRONT_SILENT_MS is closed (slowloris), and past
 * FRONT_MAX_CONNS connections new ones are closed at once. */
#define FRONT_SILENT_MS 5000u
#define FRONT_MAX_CONNS 20000u
/* File descriptors kept back from clients: peer links, the log, the
 * listener, a new peer's connection while the cap is reached. */
#define FRONT_FD_RESERVE 64u

struct front_bin {
    struct event_base *base;
    member *m;
    const auth_secret *secret;    /* NULL: protected mode */
    bool insecure;                /* no secret, and peers beyond loopback */
    const char *client_token;     /* --client-token-file's, NULL: none */
    struct evconnlistener *listener;
    front_conn **conns;           /* accepted connections still open */
    size_t nconns, capconns;
    size_t max_conns;             /* FRONT_MAX_CONNS, or less under RLIMIT_NOFILE */
    struct event *sweep;          /* every second: silent connections */
    struct event *resume;         /* re-enables accept after EMFILE */
    uint64_t emfile_logged_ms;
    bool closing;                 /* front_bin_free: the member is gone */
};

static bool front_require_trust(front_bin *f, const front_conn *fc, const char *what);

static uint64_t front_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* ---- replies ------------------------------------------------------------ */

static void reply_err(conn *c, uint64_t reqid, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

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

/* Replies to a peer's request: the conn may have closed while an ACK waited
 * for its fsync, hence the reference taken when it was handed over. */
static void reply_to_conn(void *cookie, const seqd_msg *reply)
{
    conn *c = cookie;
    conn_send(c, reply);
    conn_unref(c);
}

/* ---- client requests ---------------------------------------------------- */

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

static const char *refusal_text(int err)
{
    switch (err) {
    case ERR_SHUTDOWN: return "member is shutting down";
    case ERR_RECOVERING: return "member is recovering";
    default: return "out of memory";
    }
}

static void front_fetch(front_bin *f, conn *c, const seqd_msg *msg)
{
    const struct seqd_name *name = &msg->u.fetch.name;
    /* Stopping is said before anything about the request itself: a client
     * retrying elsewhere must not be told its (valid) name is bad. */
    if (member_stopping(f->m)) {
        reply_err(c, msg->reqid, ERR_SHUTDOWN, "%s", refusal_text(ERR_SHUTDOWN));
        return;
    }
    if (!seqd_name_valid(name->s, name->len)) {
        reply_err(c, msg->reqid, ERR_BAD_NAME,
                  "bad sequence name: want 1 to %u bytes of [A-Za-z0-9._-]", SEQD_NAME_MAX);
        return;
    }
    if (!seqd_count_valid(msg->u.fetch.count)) {
        reply_err(c, msg->reqid, ERR_BAD_COUNT, "bad count %u: want 1 to %u", msg->u.fetch.count,
                  SEQD_COUNT_MAX);
        return;
    }
    fetch_req *req = malloc(sizeof *req);
    if (!req) {
        reply_err(c, msg->reqid, ERR_TIMEOUT, "out of memory");
        return;
    }
    req->c = c;
    req->reqid = msg->reqid;
    conn_ref(c);
    int err = member_fetch(f->m, name, msg->u.fetch.count, msg->u.fetch.timeout_ms, fetch_done, req);
    if (err) {
        conn_unref(c);
        free(req);
        reply_err(c, msg->reqid, err, "%s", refusal_text(err));
    }
}

/* One chunk of the member's table (member_list); the prefix must be a
 * prefix of a valid name, so that garbage is refused with a reply. */
static void front_list(front_bin *f, conn *c, const seqd_msg *msg)
{
    const char *prefix = msg->u.list.prefix;
    uint8_t plen = msg->u.list.prefix_len;
    if (plen && !seqd_name_valid(prefix, plen)) {
        reply_err(c, msg->reqid, ERR_BAD_NAME,
                  "bad prefix: want up to %u bytes of [A-Za-z0-9._-]", SEQD_NAME_MAX);
        return;
    }
    /* A chunk fills a frame: header, next, flags, n, then entries. */
    static uint8_t out[SEQD_MAX_FRAME - SEQD_HDR_LEN - 7 - SEQD_TAG_LEN];
    member_list_chunk ch;
    int err = member_list(f->m, prefix, plen, msg->u.list.start, out, sizeof out, &ch);
    if (err) {
        reply_err(c, msg->reqid, err, "%s", refusal_text(err));
        return;
    }
    seqd_msg r = {.type = MSG_LIST_CHUNK, .reqid = msg->reqid};
    r.u.list_chunk.next = ch.next;
    r.u.list_chunk.flags = ch.done ? LIST_DONE : 0;
    r.u.list_chunk.n = ch.n;
    r.u.list_chunk.entries = out;
    r.u.list_chunk.entries_len = ch.bytes;
    conn_send(c, &r);
}

typedef struct advance_req {
    conn *c;
    uint64_t reqid;
} advance_req;

static void advance_done(void *arg, int err, uint64_t next, uint32_t count)
{
    advance_req *a = arg;
    assert(count == 0);
    if (err == 0) {
        seqd_msg r = {.type = MSG_ADVANCED, .reqid = a->reqid};
        r.u.advanced.next = next;
        conn_send(a->c, &r);
    } else {
        reply_err(a->c, a->reqid, err, "%s", seqd_err_str(err));
    }
    conn_unref(a->c);
    free(a);
}

/* An admin request: only from a connection trusted as init's are. */
static void front_advance(front_bin *f, const front_conn *fc, const seqd_msg *msg)
{
    conn *c = fc->c;
    if (!front_require_trust(f, fc, "an advance"))
        return;
    if (member_stopping(f->m)) {
        reply_err(c, msg->reqid, ERR_SHUTDOWN, "%s", refusal_text(ERR_SHUTDOWN));
        return;
    }
    const struct seqd_name *name = &msg->u.advance.name;
    if (!seqd_name_valid(name->s, name->len)) {
        reply_err(c, msg->reqid, ERR_BAD_NAME,
                  "bad sequence name: want 1 to %u bytes of [A-Za-z0-9._-]", SEQD_NAME_MAX);
        return;
    }
    if (msg->u.advance.value < 1) {
        reply_err(c, msg->reqid, ERR_BAD_COUNT, "bad value 0: IDs start at 1");
        return;
    }
    advance_req *a = malloc(sizeof *a);
    if (!a) {
        reply_err(c, msg->reqid, ERR_TIMEOUT, "out of memory");
        return;
    }
    *a = (advance_req){.c = c, .reqid = msg->reqid};
    conn_ref(c);
    int err = member_advance(f->m, name, msg->u.advance.value, msg->u.advance.timeout_ms,
                             advance_done, a);
    if (err) {
        conn_unref(c);
        free(a);
        reply_err(c, msg->reqid, err, "%s", refusal_text(err));
    }
}

static void front_status(front_bin *f, conn *c, uint64_t reqid)
{
    seqd_msg r = {.type = MSG_STATUS_REPLY, .reqid = reqid};
    member_get_status(f->m, &r.u.status);
    conn_send(c, &r);
}

/* ---- peer requests ------------------------------------------------------ */

static void front_hello(front_bin *f, const front_conn *fc, const seqd_msg *msg)
{
    conn *c = fc->c;
    if (!front_require_trust(f, fc, "a peer hello"))
        return;
    char why[SEQD_TEXT_MAX];
    int idx = member_peer_hello(f->m, msg->u.hello.epoch, msg->u.hello.cluster_id, msg->u.hello.round_ms,
                                &msg->u.hello.inc,
                                msg->u.hello.addr, msg->u.hello.addr_len, conn_addr(c), why,
                                sizeof why);
    if (idx < 0) {
        conn_fail(c, FERR_HELLO, why);
        return;
    }
    conn_set_peer(c, idx);
    seqd_msg r = {.type = MSG_HELLO_OK, .reqid = msg->reqid};
    conn_send(c, &r);
}

static void front_peer_request(front_bin *f, conn *c, const seqd_msg *msg)
{
    if (conn_peer(c) < 0) {
        reply_err(c, msg->reqid, ERR_NOT_PEER, "%s is for peers: this connection sent no hello",
                  msg_type_str(msg->type));
        return;
    }
    conn_ref(c);
    member_peer_request(f->m, conn_peer(c), msg, reply_to_conn, c);
}

/* Who may say hello as a peer or send init's messages (DESIGN.md §3):
 * with a secret, a connection that proved it holds it; without one
 * (protected mode), loopback connections only, unless --insecure. */
static bool front_trusted(front_bin *f, const front_conn *fc)
{
    if (f->secret)
        return auth_done(&fc->ax);
    return f->insecure || auth_addr_loopback(conn_addr(fc->c));
}

/* A refusal says only "not authenticated": nothing about the cluster. */
static void front_refuse(front_bin *f, conn *c, const char *what)
{
    member_log(f->m, MLOG_WARN, "refused %s from %s: not authenticated", what, conn_addr(c));
    conn_fail(c, FERR_HELLO, "not authenticated");
}

/* Refuses and closes (saying only "not authenticated") unless trusted. */
static bool front_require_trust(front_bin *f, const front_conn *fc, const char *what)
{
    if (front_trusted(f, fc))
        return true;
    front_refuse(f, fc->c, what);
    return false;
}

/* The listener's half of net/auth.h's exchange. Once it is done, the
 * AUTH_OK goes out untagged and everything after it in both directions
 * carries a tag (proto.h). */
static void front_auth(front_bin *f, front_conn *fc, const seqd_msg *msg)
{
    conn *c = fc->c;
    if (!f->secret) {
        front_refuse(f, c, "an authentication (this member has no --secret-file)");
        return;
    }
    if (fc->ax.state == AUTH_X_IDLE) {
        uint8_t ns[SEQD_NONCE_LEN];
        if (auth_nonce(ns) < 0) {
            front_refuse(f, c, "an authentication (no randomness for a nonce)");
            return;
        }
        auth_listener_begin(&fc->ax, (uint8_t)member_cfg(f->m)->self, ns);
    }
    if (conn_auth_step(c, &fc->ax, f->secret, msg) == AUTH_REFUSE && conn_is_open(c))
        front_refuse(f, c, "an authentication");
}

static void front_init(front_bin *f, const front_conn *fc, const seqd_msg *msg)
{
    conn *c = fc->c;
    if (!front_require_trust(f, fc, "an init message"))
        return;
    char why[SEQD_TEXT_MAX];
    seqd_msg r = {.reqid = msg->reqid};
    int err = member_init(f->m, msg, &r, why, sizeof why);
    if (err) {
        reply_err(c, msg->reqid, err, "%s", why);
        return;
    }
    r.reqid = msg->reqid;
    conn_send(c, &r);
}

/* `seqd serve --replaces` asking where this member stands, or to record
 * or drop its switch (DESIGN.md §6): as init, only from a trusted link. */
static void front_switch(front_bin *f, const front_conn *fc, const seqd_msg *msg)
{
    conn *c = fc->c;
    if (!front_require_trust(f, fc, "a switch message"))
        return;
    char why[SEQD_TEXT_MAX], slots[SEQD_SLOTS_MAX + 1];
    seqd_msg r;
    int err = member_switch(f->m, msg, &r, slots, sizeof slots, why, sizeof why);
    if (err) {
        reply_err(c, msg->reqid, err, "%s", why);
        return;
    }
    conn_send(c, &r);
}

/* A client token (client/token.h): compared without an early exit. A
 * member without one ignores it, so a client configured for a cluster
 * with tokens still talks to one without. */
static void front_token(front_bin *f, front_conn *fc, const seqd_msg *msg)
{
    if (!f->client_token)
        return;
    size_t want = strlen(f->client_token);
    unsigned char d = (unsigned char)(msg->u.token.len != want);
    for (size_t i = 0; i < want && i < msg->u.token.len; i++)
        d |= (unsigned char)(msg->u.token.token[i] ^ f->client_token[i]);
    if (d) {
        front_refuse(f, fc->c, "a client token");
        return;
    }
    fc->token_ok = true;
}

/* Client requests on a member with a client token: only after the token,
 * or on a link that proved it holds the cluster secret (peers, admins). A
 * refusal closes the connection and says only "not authenticated". */
static bool front_client_allowed(front_bin *f, const front_conn *fc, const char *what)
{
    if (!f->client_token || fc->token_ok || auth_done(&fc->ax))
        return true;
    front_refuse(f, fc->c, what);
    return false;
}

static void front_on_msg(conn *c, const seqd_msg *msg, void *arg)
{
    front_conn *fc = arg;
    front_bin *f = fc->f;
    assert(fc->c == c);
    fc->spoke = true;
    switch (msg->type) {
    case MSG_TOKEN:
        front_token(f, fc, msg);
        break;
    case MSG_FETCH:
        if (front_client_allowed(f, fc, "a fetch without the client token"))
            front_fetch(f, c, msg);
        break;
    case MSG_STATUS:
        if (front_client_allowed(f, fc, "a status without the client token"))
            front_status(f, c, msg->reqid);
        break;
    case MSG_HELLO:
        front_hello(f, fc, msg);
        break;
    case MSG_INIT:
        front_init(f, fc, msg);
        break;
    case MSG_SWITCH:
        front_switch(f, fc, msg);
        break;
    case MSG_ADVANCE:
        if (front_client_allowed(f, fc, "an advance without the client token"))
            front_advance(f, fc, msg);
        break;
    case MSG_LIST:
        if (front_client_allowed(f, fc, "a list without the client token"))
            front_list(f, c, msg);
        break;
    case MSG_STOPPED:
        if (conn_peer(c) >= 0)   /* one-way; from anyone else it means nothing */
            member_peer_stopped(f->m, conn_peer(c), &msg->u.stopped.inc);
        break;
    case MSG_AUTH:
        front_auth(f, fc, msg);
        break;
    case MSG_READ:
    case MSG_ACCEPT:
    case MSG_SNAP_REQ:
        front_peer_request(f, c, msg);
        break;
    case MSG_ERROR:
        conn_close(c, "peer sent an error");
        break;
    default:
        reply_err(c, msg->reqid, ERR_BAD_REQUEST, "%s is not a request", msg_type_str(msg->type));
        break;
    }
}

/* ---- connections -------------------------------------------------------- */

static void front_forget(front_bin *f, front_conn *fc)
{
    assert(fc->idx < f->nconns && f->conns[fc->idx] == fc);
    front_conn *last = f->conns[--f->nconns];
    f->conns[fc->idx] = last;
    last->idx = fc->idx;
    free(fc);
}

static void front_on_end(conn *c, void *arg, const char *why)
{
    front_conn *fc = arg;
    front_bin *f = fc->f;
    if (!f->closing && conn_peer(c) >= 0 && !member_stopping(f->m))
        member_log(f->m, MLOG_INFO, "peer link from %s closed: %s", member_cfg(f->m)->members[conn_peer(c)], why);
    else if (!f->closing && conn_mac_failed(c))
        member_log(f->m, MLOG_DEBUG, "authenticated link from %s closed: %s", conn_addr(c), why);
    front_forget(f, fc);
}

/* Once a second: connections that have not sent one whole frame within
 * FRONT_SILENT_MS are closed (a slowloris holds a slot and sends nothing
 * useful). Closing re-orders the array, so walk it from the end. */
static void front_sweep_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    front_bin *f = arg;
    uint64_t now = front_now_ms();
    for (size_t i = f->nconns; i-- > 0;) {
        front_conn *fc = f->conns[i];
        if (!fc->spoke && now - fc->accepted_ms >= FRONT_SILENT_MS)
            conn_close(fc->c, "said nothing");   /* on_end forgets it */
    }
}

static void front_resume_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    front_bin *f = arg;
    if (f->listener)
        evconnlistener_enable(f->listener);
}

/* accept() failed: out of file descriptors (EMFILE, ENFILE) must not spin
 * or end the accept loop: pause accepting for 100 ms, say so once a second. */
static void front_accept_error_cb(struct evconnlistener *l, void *arg)
{
    front_bin *f = arg;
    int e = EVUTIL_SOCKET_ERROR();
    uint64_t now = front_now_ms();
    if (now - f->emfile_logged_ms >= 1000) {
        member_log(f->m, MLOG_WARN, "accept failed: %s (%zu connections open); pausing accepts for 100 ms",
                   strerror(e), f->nconns);
        f->emfile_logged_ms = now;
    }
    evconnlistener_disable(l);
    struct timeval tv = {0, 100000};
    evtimer_add(f->resume, &tv);
}

static void front_accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
                            int salen, void *arg)
{
    (void)l;
    (void)sa;
    (void)salen;
    front_bin *f = arg;
    if (f->nconns >= f->max_conns) {
        evutil_closesocket(fd);
        return;
    }
    if (f->nconns == f->capconns) {
        size_t cap = f->capconns ? f->capconns * 2 : 64;
        front_conn **grown = realloc(f->conns, cap * sizeof *grown);
        if (!grown) {
            evutil_closesocket(fd);
            return;
        }
        f->conns = grown;
        f->capconns = cap;
    }
    front_conn *fc = calloc(1, sizeof *fc);
    if (!fc) {
        evutil_closesocket(fd);
        return;
    }
    *fc = (front_conn){.f = f, .idx = f->nconns, .accepted_ms = front_now_ms()};
    fc->c = conn_accept(f->base, fd, front_on_msg, front_on_end, fc);
    if (!fc->c) {
        free(fc);
        member_log(f->m, MLOG_WARN, "could not set up an accepted connection: out of memory");
        return;
    }
    f->conns[f->nconns++] = fc;
}

/* ---- lifecycle ---------------------------------------------------------- */

front_bin *front_bin_new(struct event_base *base, member *m, const char *addr,
                         const auth_secret *secret, bool insecure, const char *client_token,
                         char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    int sslen;
    if (addr_resolve(addr, &ss, &sslen, err, errlen) < 0)
        return NULL;
    front_bin *f = malloc(sizeof *f);
    if (!f) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    *f = (front_bin){.base = base, .m = m, .secret = secret, .insecure = insecure,
                     .client_token = client_token};
    /* Below the descriptor limit, so that the cap, not EMFILE, refuses
     * clients first and peers and the log still get descriptors. */
    struct rlimit rl;
    f->max_conns = FRONT_MAX_CONNS;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
        rl.rlim_cur < FRONT_MAX_CONNS + 2 * FRONT_FD_RESERVE)
        f->max_conns = rl.rlim_cur > 2 * FRONT_FD_RESERVE ? rl.rlim_cur - 2 * FRONT_FD_RESERVE : 16;
    f->listener = evconnlistener_new_bind(base, front_accept_cb, f,
                                          LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_FREE, 512,
                                          (struct sockaddr *)&ss, sslen);
    if (!f->listener) {
        snprintf(err, errlen, "cannot listen on %s: %s", addr, strerror(errno));
        free(f);
        return NULL;
    }
    evconnlistener_set_error_cb(f->listener, front_accept_error_cb);
    f->sweep = event_new(base, -1, EV_PERSIST, front_sweep_cb, f);
    f->resume = evtimer_new(base, front_resume_cb, f);
    if (!f->sweep || !f->resume) {
        snprintf(err, errlen, "out of memory");
        front_bin_free(f);
        return NULL;
    }
    struct timeval second = {1, 0};
    event_add(f->sweep, &second);
    return f;
}

size_t front_bin_max_conns(const front_bin *f)
{
    return f->max_conns;
}

void front_bin_stop(front_bin *f)
{
    if (f->listener) {
        evconnlistener_free(f->listener);
        f->listener = NULL;
    }
}

void front_bin_free(front_bin *f)
{
    if (!f)
        return;
    f->closing = true;
    front_bin_stop(f);
    while (f->nconns)
        conn_close(f->conns[f->nconns - 1]->c, "shutting down");   /* on_end forgets it */
    free(f->conns);
    struct event *evs[] = {f->sweep, f->resume};
    for (size_t i = 0; i < sizeof evs / sizeof evs[0]; i++)
        if (evs[i] != NULL)
            event_free(evs[i]);
    free(f);
}
