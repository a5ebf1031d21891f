/* net/front_bin.c — the binary front end: frames in, member calls, frames
 * out (front_bin.h). */
#include "front_bin.h"

#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/event.h>
#include <event2/listener.h>

#include "../core/member.h"
#include "conn.h"
#include "frame.h"
#include "peer.h"

struct front_bin {
    struct event_base *base;
    member *m;
    struct evconnlistener *listener;
    conn **conns;                 /* accepted connections still open */
    size_t nconns, capconns;
    bool closing;                 /* front_bin_free: the member is gone */
};

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

static void front_status(front_bin *f, conn *c, uint64_t reqid)
{
    member_status ms;
    member_get_status(f->m, &ms);
    seqd_msg r = {.type = MSG_STATUS_REPLY, .reqid = reqid};
    struct seqd_status *st = &r.u.status;
    st->state = ms.state;
    st->self_index = ms.self_index;
    st->n_members = ms.n_members;
    st->fetches = ms.fetches;
    st->ids = ms.ids;
    st->rounds = ms.rounds;
    st->reads = ms.reads;
    st->nacks = ms.nacks;
    st->fsyncs = ms.fsyncs;
    st->records = ms.records;
    conn_send(c, &r);
}

/* ---- peer requests ------------------------------------------------------ */

static void front_hello(front_bin *f, conn *c, const seqd_msg *msg)
{
    char why[SEQD_TEXT_MAX];
    int idx = member_peer_hello(f->m, msg->u.hello.cluster_id, msg->u.hello.round_ms,
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
    member_peer_request(f->m, msg, reply_to_conn, c);
}

/* Who may send init's messages. DESIGN.md §3 makes them peer-only, under
 * the cluster secret once --secret-file lands; until then the rule is
 * protected mode's: a member that listens on loopback takes them only
 * from loopback. */
static bool front_admin_allowed(front_bin *f, conn *c)
{
    const char *self = member_cfg(f->m)->members[member_cfg(f->m)->self];
    const char *from = conn_addr(c);
    bool self_loopback = strncmp(self, "127.", 4) == 0 || strncmp(self, "localhost:", 10) == 0 ||
                         strncmp(self, "[::1]:", 6) == 0;
    bool from_loopback = strncmp(from, "127.", 4) == 0 || strncmp(from, "[::1]", 5) == 0 ||
                         strncmp(from, "::1", 3) == 0;
    return !self_loopback || from_loopback;
}

static void front_init(front_bin *f, conn *c, const seqd_msg *msg)
{
    if (!front_admin_allowed(f, c)) {
        reply_err(c, msg->reqid, ERR_NOT_PEER, "init is refused from %s", conn_addr(c));
        return;
    }
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

static void front_on_msg(conn *c, const seqd_msg *msg, void *arg)
{
    front_bin *f = arg;
    switch (msg->type) {
    case MSG_FETCH:
        front_fetch(f, c, msg);
        break;
    case MSG_STATUS:
        front_status(f, c, msg->reqid);
        break;
    case MSG_HELLO:
        front_hello(f, c, msg);
        break;
    case MSG_INIT:
        front_init(f, c, msg);
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

/* O(connections) per close; fine for the hundreds a member serves. */
static void front_forget(front_bin *f, conn *c)
{
    for (size_t i = 0; i < f->nconns; i++)
        if (f->conns[i] == c) {
            f->conns[i] = f->conns[--f->nconns];
            return;
        }
    assert(!"front_forget: a connection this front end never accepted");
}

static void front_on_end(conn *c, void *arg, const char *why)
{
    front_bin *f = arg;
    if (!f->closing && conn_peer(c) >= 0 && !member_stopping(f->m))
        member_log(f->m, "peer link from %s closed: %s", member_cfg(f->m)->members[conn_peer(c)], why);
    front_forget(f, c);
}

static void front_accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
                            int salen, void *arg)
{
    (void)l;
    (void)sa;
    (void)salen;
    front_bin *f = arg;
    if (f->nconns == f->capconns) {
        size_t cap = f->capconns ? f->capconns * 2 : 64;
        conn **grown = realloc(f->conns, cap * sizeof *grown);
        if (!grown) {
            evutil_closesocket(fd);
            return;
        }
        f->conns = grown;
        f->capconns = cap;
    }
    conn *c = conn_accept(f->base, fd, front_on_msg, front_on_end, f);
    if (!c) {
        member_log(f->m, "could not set up an accepted connection: out of memory");
        return;
    }
    f->conns[f->nconns++] = c;
}

/* ---- lifecycle ---------------------------------------------------------- */

front_bin *front_bin_new(struct event_base *base, member *m, const char *addr, char *err,
                         size_t errlen)
{
    struct sockaddr_storage ss;
    int sslen;
    if (peer_resolve(addr, &ss, &sslen, err, errlen) < 0)
        return NULL;
    front_bin *f = calloc(1, sizeof *f);
    if (!f) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    f->base = base;
    f->m = m;
    f->listener = evconnlistener_new_bind(base, front_accept_cb, f,
                                          LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_FREE, 512,
                                          (struct sockaddr *)&ss, sslen);
    if (!f->listener) {
        snprintf(err, errlen, "cannot listen on %s: %s", addr, strerror(errno));
        free(f);
        return NULL;
    }
    return f;
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
        conn_close(f->conns[f->nconns - 1], "shutting down");   /* on_end forgets it */
    free(f->conns);
    free(f);
}
