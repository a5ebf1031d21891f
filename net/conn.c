/* net/conn.c — framed connection over a bufferevent (contract in conn.h).
 *
 * WRITES. The bufferevent's write event stays disabled while the output is
 * empty: left enabled, libevent would add it to epoll when a reply is
 * queued and delete it once written, two epoll_ctl calls per reply, and the
 * reply would wait for the next epoll_wait. Instead conn_send queues the
 * frame and activates a per-conn flush event (no syscall); it runs after
 * the events already active in this loop turn, so every frame queued for
 * the connection in the turn goes out with one sendmsg. Only a remainder
 * the socket would not take arms a write event of our own, until it drains.
 *
 * Every byte leaves through conn_write_now's sendmsg(MSG_NOSIGNAL), never
 * through the bufferevent's own writer (writev): a write to a connection
 * the peer has closed must not raise SIGPIPE, because this code also runs
 * inside client programs (client/client_async.h) that do not ignore it. The
 * bufferevent's write side serves only to wait for a connect.
 *
 * TAGS. On an authenticated link (conn_set_mac) the tag is added where a
 * frame is encoded and checked where one is decoded (net/mac.h), not at
 * the transport seam below: the seam sees bytes, the tag belongs to a
 * frame and its place in the sequence, and the frames queued before the
 * switch (the listener's AUTH_OK) must leave untagged. A TLS transport
 * would make the tags redundant, not wrong.
 */
#include "conn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include <assert.h>

#include "frame.h"
#include "mac.h"

/* The life of a connection, as memcached keeps its conn states: one enum,
 * changed only by conn_set_state, which asserts the transition. */
enum conn_state {
    CONN_CONNECTING,  /* connect in progress: frames queue, nothing is read */
    CONN_OPEN,        /* connected: frames are read and written */
    CONN_FAILING,     /* a framing error's MSG_ERROR is queued: no reads; closes once written */
    CONN_CLOSED       /* socket gone, on_end called; memory goes with the last reference */
};

/* The write side, independent of the life: */
enum conn_wr {
    WR_IDLE,          /* output empty, or frames queued with nothing armed yet */
    WR_FLUSH_ARMED,   /* flush_ev active: the turn's frames go out in one send */
    WR_WAITING        /* waiting for writability: the connect, or a remainder (wr_ev) */
};

/* The transport seam: how bytes leave. Reading is the bufferevent's (a TLS
 * transport would bring a bufferevent_openssl for that side), writing goes
 * through send, which must never block and never raise SIGPIPE, may write
 * less than asked, and returns -1 with errno (EAGAIN when full). */
typedef struct conn_transport {
    ssize_t (*send)(int fd, const struct iovec *iov, int n);
} conn_transport;

static ssize_t tcp_send(int fd, const struct iovec *iov, int n)
{
    struct msghdr mh = {.msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)n};
    return sendmsg(fd, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
}

static const conn_transport conn_tcp = {.send = tcp_send};

struct conn {
    struct bufferevent *bev;
    const conn_transport *tr;
    struct event *flush_ev;  /* runs conn_flush later in this loop turn */
    struct event *wr_ev;     /* socket writable, while a remainder waits */
    enum conn_state state;
    enum conn_wr wr;
    bool rd_paused;    /* reading stopped by back-pressure (CONN_OUT_HIGH) */
    conn_open_fn on_open;
    conn_msg_fn on_msg;
    conn_end_fn on_end;
    void *arg;
    int refs;
    int peer;          /* member index after a hello, -1 for clients */
    mac_link *mac;     /* tags on (authenticated link), NULL otherwise */
    bool mac_failed;   /* closed for a wrong tag */
    char addr[64];
    /* Last, and never zeroed (conn_alloc): a frame is decoded here, and
     * frames are mostly tens of bytes, so of these 64 KiB only the first
     * page is ever touched; calloc'ing them made every connection cost
     * 64 KiB of RSS (measured: 63 KB each, bench/bench_scale.c). */
    uint8_t scratch[SEQD_MAX_FRAME + SEQD_TAG_LEN];
};

static void conn_set_state(conn *c, enum conn_state to)
{
    static const bool legal[4][4] = {
        [CONN_CONNECTING] = {[CONN_OPEN] = true, [CONN_CLOSED] = true},
        [CONN_OPEN] = {[CONN_FAILING] = true, [CONN_CLOSED] = true},
        [CONN_FAILING] = {[CONN_CLOSED] = true},
    };
    assert(legal[c->state][to]);
    c->state = to;
}

static void conn_read_cb(struct bufferevent *bev, void *arg);
static void conn_event_cb(struct bufferevent *bev, short what, void *arg);
static void conn_flush_cb(evutil_socket_t fd, short what, void *arg);

/* Why a read high-water mark: a peer that floods us without reading gets
 * TCP back-pressure instead of growing our input buffer; 4 frames is
 * enough to keep pipelined requests flowing. */
static void conn_setup(conn *c)
{
    bufferevent_setcb(c->bev, conn_read_cb, NULL, conn_event_cb, c);
    bufferevent_setwatermark(c->bev, EV_READ, SEQD_HDR_LEN, 4 * SEQD_MAX_FRAME);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    c->wr = WR_WAITING;   /* a connect waits for writability; see conn_write_off */
}

/* From the moment the conn is open, writes go through conn_flush. */
static void conn_write_off(conn *c)
{
    assert(c->wr == WR_WAITING);
    bufferevent_disable(c->bev, EV_WRITE);
    c->wr = WR_IDLE;
}

/* Frames were queued: send them later in this loop turn, unless a send is
 * armed already or the socket is being waited for. */
static void conn_arm_flush(conn *c)
{
    if (c->wr != WR_IDLE)
        return;
    c->wr = WR_FLUSH_ARMED;
    event_active(c->flush_ev, EV_WRITE, 1);
}

static conn *conn_alloc(conn_open_fn on_open, conn_msg_fn on_msg, conn_end_fn on_end, void *arg)
{
    conn *c = malloc(sizeof *c);
    if (!c)
        return NULL;
    memset(c, 0, offsetof(conn, scratch));
    c->on_open = on_open;
    c->on_msg = on_msg;
    c->on_end = on_end;
    c->arg = arg;
    c->refs = 1;
    c->peer = -1;
    c->tr = &conn_tcp;
    c->state = CONN_CONNECTING;
    return c;
}

static void conn_nodelay(int fd)
{
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

static void conn_name(conn *c, const struct sockaddr *sa)
{
    char host[INET6_ADDRSTRLEN] = "?";
    int port = 0;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
        port = ntohs(in->sin_port);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
        port = ntohs(in6->sin6_port);
    }
    snprintf(c->addr, sizeof c->addr, "%s:%d", host, port);
}

conn *conn_accept(struct event_base *base, int fd, conn_msg_fn on_msg, conn_end_fn on_end, void *arg)
{
    conn *c = conn_alloc(NULL, on_msg, on_end, arg);
    if (!c) {
        evutil_closesocket(fd);
        return NULL;
    }
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    if (getpeername(fd, (struct sockaddr *)&ss, &sl) == 0)
        conn_name(c, (struct sockaddr *)&ss);
    evutil_make_socket_nonblocking(fd);
    conn_nodelay(fd);
    c->bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
    c->flush_ev = event_new(base, -1, 0, conn_flush_cb, c);
    if (!c->bev || !c->flush_ev) {
        if (c->bev)
            bufferevent_free(c->bev);
        else
            evutil_closesocket(fd);
        if (c->flush_ev)
            event_free(c->flush_ev);
        free(c);
        return NULL;
    }
    conn_setup(c);
    conn_set_state(c, CONN_OPEN);
    conn_write_off(c);
    return c;
}

conn *conn_connect(struct event_base *base, const struct sockaddr *sa, int salen,
                   conn_open_fn on_open, conn_msg_fn on_msg, conn_end_fn on_end, void *arg)
{
    conn *c = conn_alloc(on_open, on_msg, on_end, arg);
    if (!c)
        return NULL;
    conn_name(c, sa);
    c->bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
    c->flush_ev = event_new(base, -1, 0, conn_flush_cb, c);
    if (!c->bev || !c->flush_ev) {
        if (c->bev)
            bufferevent_free(c->bev);
        if (c->flush_ev)
            event_free(c->flush_ev);
        free(c);
        return NULL;
    }
    conn_setup(c);
    if (bufferevent_socket_connect(c->bev, (struct sockaddr *)sa, salen) < 0) {
        bufferevent_free(c->bev);
        event_free(c->flush_ev);
        free(c);
        return NULL;
    }
    return c;
}

void conn_ref(conn *c) { c->refs++; }

void conn_unref(conn *c)
{
    assert(c->refs > 0);
    if (--c->refs == 0) {
        assert(c->state == CONN_CLOSED || c->state == CONN_CONNECTING);
        mac_free(c->mac);
        free(c);
    }
}

bool conn_is_open(const conn *c) { return c->state == CONN_OPEN; }
void conn_set_peer(conn *c, int member) { c->peer = member; }
int conn_peer(const conn *c) { return c->peer; }
const char *conn_addr(const conn *c) { return c->addr; }
bool conn_has_mac(const conn *c) { return c->mac != NULL; }
bool conn_mac_failed(const conn *c) { return c->mac_failed; }

int conn_set_mac(conn *c, const uint8_t ks[AUTH_KEY_LEN], enum auth_role self)
{
    assert(!c->mac);
    if (c->state != CONN_OPEN)
        return -1;
    c->mac = mac_new(ks, self);
    return c->mac ? 0 : -1;
}

/* The one place a frame is put on the output: tagged on an authenticated link. */
static int conn_encode(conn *c, const seqd_msg *m)
{
    struct evbuffer *out = bufferevent_get_output(c->bev);
    return c->mac ? mac_encode(c->mac, out, m) : frame_encode(out, m);
}

/* Ends the connection exactly once: the socket goes at once, the memory
 * when the last holder lets go. The caller's reference (the one taken at
 * creation) is dropped here. */
void conn_close(conn *c, const char *why)
{
    if (c->state == CONN_CLOSED)
        return;
    conn_set_state(c, CONN_CLOSED);
    if (c->bev) {
        bufferevent_free(c->bev);
        c->bev = NULL;
    }
    if (c->flush_ev) {
        event_free(c->flush_ev);
        c->flush_ev = NULL;
    }
    if (c->wr_ev) {
        event_free(c->wr_ev);
        c->wr_ev = NULL;
    }
    if (c->on_end)
        c->on_end(c, c->arg, why);
    conn_unref(c);
}

int conn_send(conn *c, const seqd_msg *m)
{
    if (c->state != CONN_OPEN)
        return -1;
    struct evbuffer *out = bufferevent_get_output(c->bev);
    if (conn_encode(c, m) < 0)
        return -1;
    conn_arm_flush(c);
    /* Back-pressure: stop reading requests while replies pile up. */
    if (evbuffer_get_length(out) > CONN_OUT_HIGH) {
        bufferevent_disable(c->bev, EV_READ);
        c->rd_paused = true;
    }
    return 0;
}

/* Writes what the socket takes now, without blocking and without SIGPIPE.
 * Returns 0 (all written, or the socket is full), or the errno of a hard
 * error. A bufferevent keeps the start of its output frozen (only its own
 * writer would drain it), hence the unfreeze around the drain. */
static int conn_write_now(conn *c, struct evbuffer *out)
{
    int fd = bufferevent_getfd(c->bev);
    int err = 0;
    evbuffer_unfreeze(out, 1);
    while (evbuffer_get_length(out) > 0) {
        struct evbuffer_iovec v[16];
        int n = evbuffer_peek(out, -1, NULL, v, 16);
        if (n > 16)
            n = 16;
        struct iovec iov[16];
        for (int i = 0; i < n; i++) {
            iov[i].iov_base = v[i].iov_base;
            iov[i].iov_len = v[i].iov_len;
        }
        ssize_t w = c->tr->send(fd, iov, n);
        if (w < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
                err = errno;
            break;
        }
        if (evbuffer_drain(out, (size_t)w) < 0) {
            err = EIO;   /* cannot happen once unfrozen; never spin */
            break;
        }
    }
    evbuffer_freeze(out, 1);
    return err;
}

static void conn_wr_cb(evutil_socket_t fd, short what, void *arg);

/* After a write attempt: a hard error ends the connection; an empty output
 * ends the wait for writability (and a failing conn, whose ERROR is now
 * out); a remainder waits for the socket to take more. */
static void conn_after_write(conn *c, int err)
{
    struct evbuffer *out = bufferevent_get_output(c->bev);
    if (err) {
        conn_close(c, strerror(err));
        return;
    }
    size_t left = evbuffer_get_length(out);
    if (c->rd_paused && c->state == CONN_OPEN && left <= CONN_OUT_LOW) {
        bufferevent_enable(c->bev, EV_READ);   /* back-pressure over */
        c->rd_paused = false;
    }
    if (left == 0) {
        if (c->wr == WR_WAITING) {
            event_del(c->wr_ev);
            c->wr = WR_IDLE;
        }
        if (c->state == CONN_FAILING)
            conn_close(c, "closed after a framing error");
        return;
    }
    if (c->wr == WR_WAITING)
        return;
    if (!c->wr_ev)
        c->wr_ev = event_new(bufferevent_get_base(c->bev), bufferevent_getfd(c->bev),
                             EV_WRITE | EV_PERSIST, conn_wr_cb, c);
    if (!c->wr_ev || event_add(c->wr_ev, NULL) < 0) {
        conn_close(c, "out of memory");
        return;
    }
    c->wr = WR_WAITING;
}

/* The socket can take more of a remainder. */
static void conn_wr_cb(evutil_socket_t fd, short what, void *arg)
{
    conn *c = arg;
    (void)fd;
    (void)what;
    conn_after_write(c, conn_write_now(c, bufferevent_get_output(c->bev)));
}

/* The turn's frames for this connection, in one go. What the socket does
 * not take (or a hard error, which the bufferevent then reports through
 * conn_event_cb) is left to the write event until the output drains. */
static void conn_flush_cb(evutil_socket_t fd, short what, void *arg)
{
    conn *c = arg;
    (void)fd;
    (void)what;
    if (c->wr != WR_FLUSH_ARMED)
        return;   /* the socket is waited for: its event sends */
    c->wr = WR_IDLE;
    if (c->state != CONN_OPEN && c->state != CONN_FAILING)
        return;
    conn_after_write(c, conn_write_now(c, bufferevent_get_output(c->bev)));
}

void conn_fail(conn *c, int ferr, const char *text)
{
    if (c->state != CONN_OPEN)
        return;
    seqd_msg m = {.type = MSG_ERROR, .reqid = 0};
    m.u.err.code = (uint16_t)ferr;
    m.u.err.text = text;
    m.u.err.len = (uint16_t)strnlen(text, SEQD_TEXT_MAX);
    conn_encode(c, &m);
    conn_set_state(c, CONN_FAILING);
    bufferevent_disable(c->bev, EV_READ);
    /* The flush closes the conn once everything, the ERROR included, is out. */
    conn_arm_flush(c);
}

/* Decodes every whole frame that has arrived; stops at the first framing
 * error (the rest of the stream cannot be trusted) or when the handler
 * closed the connection. The handler may switch tags on (conn_set_mac):
 * the next frame is then decoded with them. A wrong tag closes at once:
 * answering would only tell whoever forged it how far it got. */
static void conn_read_cb(struct bufferevent *bev, void *arg)
{
    conn *c = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    conn_ref(c);
    while (c->state == CONN_OPEN) {
        seqd_msg m;
        int rc = c->mac ? mac_decode(c->mac, in, &m, c->scratch) : frame_decode(in, &m, c->scratch);
        if (rc == FRAME_NEED_MORE)
            break;
        if (rc == MAC_FORGED) {
            char why[128];
            snprintf(why, sizeof why, "wrong MAC on frame %llu of the authenticated link "
                     "(altered, replayed or injected on the way)",
                     (unsigned long long)mac_received(c->mac));
            c->mac_failed = true;
            conn_close(c, why);
            break;
        }
        if (rc < 0) {
            char text[96];
            snprintf(text, sizeof text, "framing error: %s", frame_err_str(-rc));
            conn_fail(c, -rc, text);
            break;
        }
        c->on_msg(c, &m, c->arg);
    }
    conn_unref(c);
}

static void conn_event_cb(struct bufferevent *bev, short what, void *arg)
{
    conn *c = arg;
    (void)bev;
    if (what & BEV_EVENT_CONNECTED) {
        conn_set_state(c, CONN_OPEN);
        conn_write_off(c);
        int fd = bufferevent_getfd(c->bev);
        if (fd >= 0)
            conn_nodelay(fd);
        if (c->on_open)
            c->on_open(c, c->arg);
        return;
    }
    const char *why = "connection closed";
    if (what & BEV_EVENT_ERROR) {
        int e = EVUTIL_SOCKET_ERROR();
        why = e ? strerror(e) : "connection error";
    } else if (what & BEV_EVENT_EOF) {
        why = "connection closed by peer";
    }
    conn_close(c, why);
}

enum auth_verdict conn_auth_step(conn *c, auth_exchange *x, const auth_secret *s,
                                 const seqd_msg *in)
{
    seqd_msg r = {0};
    uint8_t ks[AUTH_KEY_LEN];
    enum auth_verdict v = auth_step(x, s, in, &r, ks);
    if (v == AUTH_REFUSE)
        return v;
    if (r.type != 0)
        conn_send(c, &r);   /* the step's message; a listener's AUTH_OK goes untagged */
    if (v == AUTH_DONE && conn_set_mac(c, ks, x->role) < 0) {
        conn_close(c, "out of memory");
        return AUTH_REFUSE;
    }
    return v;
}
