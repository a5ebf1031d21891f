/* client/client.c — the seqd client library (contract: client/client.h).
 *
 * Blocking sockets driven by poll(): a `seqd fetch` process must start and
 * finish in a few milliseconds, so there is no event loop to set up. Every
 * socket is non-blocking and every wait is a poll() bounded by a deadline on
 * CLOCK_MONOTONIC, so no call can outlive the timeout its caller gave.
 *
 * Connections are kept open across calls (a client used in a loop must not
 * reconnect each time). A request that timed out may still be answered
 * later on the same connection; replies are matched by reqid and anything
 * else is dropped, so a stale range can never be mistaken for a new one.
 */
#include "client_admin.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "../net/addr.h"
#include "../net/frame.h"
#include "../net/mac.h"
#include "policy.h"
#include "token.h"

#define CLIENT_WHY_MAX 160
/* A frame and, on an authenticated connection, its tag. */
#define CLIENT_UNIT_MAX (SEQD_MAX_FRAME + SEQD_TAG_LEN)

struct client_conn {
    const policy_server *srv;       /* HOST:PORT as given, split (in client.list) */
    int fd;                         /* -1 while not connected */
    uint8_t *rbuf;                  /* CLIENT_UNIT_MAX bytes, allocated on connect */
    size_t rlen;                    /* bytes received, not yet consumed */
    char why[CLIENT_WHY_MAX];       /* this call's last failure, "" if none */
    int64_t avoid_until_ms;         /* failed lately: not a first choice until then */
    mac_link *mac;                  /* tags on (client_set_mac), NULL otherwise */
};

struct client {
    policy_servers list;            /* parsed --servers, routing */
    int n;
    uint64_t next_reqid;
    uint8_t *buf;                   /* CLIENT_UNIT_MAX: packing and replies */
    struct client_conn *m;
    char token[SEQD_TOKEN_MAX + 1]; /* sent first on each connection; "" for none */
};

static void client_conn_close(struct client_conn *m);
static int client_send_all(struct client_conn *m, const uint8_t *buf, size_t len,
                           int64_t deadline);

/* Outcome of waiting for one reply. */
enum { WAIT_OK = 0, WAIT_CONN = -1, WAIT_TIMEOUT = -2 };

/* Milliseconds on the clock that does not jump, the only safe base for the
 * deadlines this file computes. */
static int64_t client_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}


/* strerror() capitalizes; the error line reads as one sentence, so the
 * reasons inside it are lower case ("connection refused"). */
static void client_why_errno(struct client_conn *m, const char *what, int e)
{
    char buf[96], s[96];
    snprintf(s, sizeof s, "%s", strerror_r(e, buf, sizeof buf));   /* GNU: returns the text */
    if (s[0] >= 'A' && s[0] <= 'Z' && !(s[1] >= 'A' && s[1] <= 'Z'))
        s[0] = (char)(s[0] - 'A' + 'a');
    if (what != NULL)
        snprintf(m->why, sizeof m->why, "%s: %s", what, s);
    else
        snprintf(m->why, sizeof m->why, "%s", s);
}

int client_preferred(const client *c, const char *name)
{
    return policy_preferred(&c->list, name);
}

static bool client_not_avoided(const void *ctx, int i)
{
    const client *c = ctx;
    return c->m[i].avoid_until_ms <= client_now_ms();
}

static int client_first_choice(const client *c, const char *name)
{
    return policy_route(&c->list, name, client_not_avoided, c);
}

client *client_new(const char *servers, char *err, size_t errlen)
{
    client *c = calloc(1, sizeof *c);
    if (c == NULL) {
        policy_seterr(err, errlen, "out of memory");
        return NULL;
    }
    c->buf = malloc(CLIENT_UNIT_MAX);
    if (c->buf == NULL || policy_servers_parse(&c->list, servers, err, errlen) != 0) {
        if (c->buf == NULL)
            policy_seterr(err, errlen, "out of memory");
        client_free(c);
        return NULL;
    }
    c->n = c->list.n;
    c->m = calloc((size_t)c->n, sizeof *c->m);
    if (c->m == NULL) {
        policy_seterr(err, errlen, "out of memory");
        client_free(c);
        return NULL;
    }
    for (int i = 0; i < c->n; i++) {
        c->m[i].fd = -1;
        c->m[i].srv = &c->list.s[i];
    }
    c->next_reqid = 1;
    if (seqd_token_from_env(c->token, err, errlen) < 0) {
        client_free(c);
        return NULL;
    }
    return c;
}

int client_set_token(client *c, const char *token, char *err, size_t errlen)
{
    size_t len = token ? strlen(token) : 0;
    if (len && !seqd_token_valid(token, len)) {
        policy_seterr(err, errlen, "bad token: want %d to %d printable characters without blanks",
                      SEQD_TOKEN_MIN, SEQD_TOKEN_MAX);
        return CLIENT_EUSAGE;
    }
    memcpy(c->token, token ? token : "", len + 1);
    for (int i = 0; i < c->n; i++)
        client_conn_close(&c->m[i]);   /* the next connections present it */
    return CLIENT_OK;
}

/* The token, one-way, ahead of the first request on a new connection: a
 * member without one ignores it, a member with another closes the
 * connection after its ERROR, which the request's wait then reports. */
static int client_send_token(client *c, struct client_conn *m, int64_t deadline)
{
    if (!c->token[0])
        return 0;
    uint8_t buf[SEQD_HDR_LEN + 1 + SEQD_TOKEN_MAX];
    seqd_msg t = {.type = MSG_TOKEN};
    t.u.token.token = c->token;
    t.u.token.len = (uint8_t)strlen(c->token);
    size_t n = frame_pack(&t, buf);
    return n && client_send_all(m, buf, n, deadline) == 0 ? 0 : -1;
}

/* Forgets a connection after any error: its byte stream can no longer be
 * trusted to be at a frame boundary. Its tags go with it: a new connection
 * is not authenticated. */
static void client_conn_close(struct client_conn *m)
{
    if (m->fd >= 0)
        close(m->fd);
    m->fd = -1;
    m->rlen = 0;
    mac_free(m->mac);
    m->mac = NULL;
}

void client_free(client *c)
{
    if (c == NULL)
        return;
    if (c->m != NULL) {
        for (int i = 0; i < c->n; i++) {
            client_conn_close(&c->m[i]);
            free(c->m[i].rbuf);
        }
    }
    free(c->m);
    free(c->buf);
    free(c);
}

int client_nservers(const client *c)
{
    return c->n;
}

const char *client_server(const client *c, int i)
{
    return (i >= 0 && i < c->n) ? c->m[i].srv->addr : NULL;
}

/* Waits for one poll event on fd until the deadline; the loop absorbs
 * EINTR so that a signal handler in the caller's program cannot shorten a
 * wait. Returns 1 ready, 0 deadline passed, -1 poll error. */
static int client_poll(int fd, short events, int64_t deadline)
{
    for (;;) {
        int64_t left = deadline - client_now_ms();
        if (left < 0)
            left = 0;
        struct pollfd pfd = { .fd = fd, .events = events };
        int r = poll(&pfd, 1, (int)left);
        if (r > 0)
            return 1;
        if (r == 0)
            return 0;
        if (errno != EINTR)
            return -1;
    }
}

/* Connects one resolved address: non-blocking connect + poll, because a
 * member whose host is down would otherwise hold the caller for the
 * kernel's connect timeout (minutes). Returns the fd or -1 with why set. */
static int client_connect_one(struct client_conn *m, const struct addrinfo *ai,
                              int64_t deadline)
{
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                    ai->ai_protocol);
    if (fd < 0) {
        client_why_errno(m, "socket", errno);
        return -1;
    }
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
        if (errno != EINPROGRESS) {
            client_why_errno(m, NULL, errno);
            close(fd);
            return -1;
        }
        int pr = client_poll(fd, POLLOUT, deadline);
        int soerr = 0;
        socklen_t sl = sizeof soerr;
        if (pr > 0 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0)
            soerr = errno;
        if (pr <= 0 || soerr != 0) {
            if (pr == 0)
                snprintf(m->why, sizeof m->why, "connect timed out");
            else
                client_why_errno(m, pr < 0 ? "poll" : NULL, pr < 0 ? errno : soerr);
            close(fd);
            return -1;
        }
    }
    int one = 1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

/* Tries every address the name resolves to ("localhost" may give ::1
 * first while the member listens on 127.0.0.1). */
static int client_connect(struct client_conn *m, int64_t deadline)
{
    if (m->rbuf == NULL) {
        m->rbuf = malloc(CLIENT_UNIT_MAX);
        if (m->rbuf == NULL) {
            snprintf(m->why, sizeof m->why, "out of memory");
            return -1;
        }
    }
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                              .ai_flags = AI_NUMERICSERV };
    struct addrinfo *res = NULL;
    int gai = getaddrinfo(m->srv->host, m->srv->port, &hints, &res);
    if (gai != 0) {
        snprintf(m->why, sizeof m->why, "cannot resolve: %s", gai_strerror(gai));
        return -1;
    }
    int fd = -1;
    for (const struct addrinfo *ai = res; ai != NULL && fd < 0; ai = ai->ai_next) {
        if (client_now_ms() >= deadline && ai != res)
            break;
        fd = client_connect_one(m, ai, deadline);
    }
    freeaddrinfo(res);
    if (fd < 0)
        return -1;
    m->fd = fd;
    m->rlen = 0;
    return 0;
}

/* Size of the frame at the head of rbuf, or 0 if its length prefix has not
 * arrived yet. */
static size_t client_head_size(const struct client_conn *m)
{
    if (m->rlen < 4)
        return 0;
    const uint8_t *b = m->rbuf;
    uint32_t len = ((uint32_t)b[0] << 24) | ((uint32_t)b[1] << 16) |
                   ((uint32_t)b[2] << 8) | b[3];
    return 4u + (size_t)len;
}

/* The frame's size with its tag, when the connection has tags. */
static size_t client_unit_size(const struct client_conn *m, size_t frame)
{
    return frame + (m->mac ? SEQD_TAG_LEN : 0);
}

/* Checks the tag of the whole unit at the head of rbuf (true without
 * tags); a wrong one closes the connection, why saying so. */
static bool client_tag_ok(struct client_conn *m, size_t frame)
{
    if (!m->mac || mac_open(m->mac, m->rbuf, frame, m->rbuf + frame))
        return true;
    snprintf(m->why, sizeof m->why, "wrong MAC on a frame from the member (altered or injected "
             "on the way)");
    client_conn_close(m);
    return false;
}

/* Removes the first `size` bytes of rbuf (one frame). */
static void client_consume(struct client_conn *m, size_t size)
{
    memmove(m->rbuf, m->rbuf + size, m->rlen - size);
    m->rlen -= size;
}

/* One recv() without waiting. Returns 1 if bytes arrived, 0 if none are
 * there now (or rbuf is full), -1 with why set when the member closed the
 * connection or it failed. One call reads once, so that a reply followed by
 * the member's close is parsed before the close is noticed. */
static int client_recv_some(struct client_conn *m)
{
    for (;;) {
        if (m->rlen == CLIENT_UNIT_MAX)
            return 0;
        ssize_t r = recv(m->fd, m->rbuf + m->rlen, CLIENT_UNIT_MAX - m->rlen, 0);
        if (r > 0) {
            m->rlen += (size_t)r;
            return 1;
        }
        if (r == 0) {
            snprintf(m->why, sizeof m->why, "connection closed by member");
            return -1;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return 0;
        client_why_errno(m, NULL, errno);
        return -1;
    }
}

/* Before a reused connection carries a new request, whatever it holds is an
 * answer to an earlier request that timed out: drop it. A connection the
 * member closed meanwhile (it restarted) is noticed here, before sending,
 * so the request goes on a fresh connection instead of failing. */
static void client_drop_stale(struct client_conn *m)
{
    while (m->fd >= 0) {
        int r = client_recv_some(m);
        if (r < 0) {
            client_conn_close(m);
            return;
        }
        for (;;) {
            size_t size = client_head_size(m);
            if (size > SEQD_MAX_FRAME) {
                client_conn_close(m);
                return;
            }
            if (size == 0 || m->rlen < client_unit_size(m, size))
                break;
            if (!client_tag_ok(m, size))
                return;   /* every frame counts in the tags' sequence, stale ones too */
            client_consume(m, client_unit_size(m, size));
        }
        if (r == 0)
            return;
    }
}

/* Writes a whole frame; partial writes only happen when the socket buffer
 * is full, which poll waits out within the deadline. */
static int client_send_all(struct client_conn *m, const uint8_t *buf, size_t len,
                           int64_t deadline)
{
    size_t off = 0;
    while (off < len) {
        ssize_t r = send(m->fd, buf + off, len - off, MSG_NOSIGNAL);
        if (r > 0) {
            off += (size_t)r;
            continue;
        }
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            int pr = client_poll(m->fd, POLLOUT, deadline);
            if (pr == 0) {
                snprintf(m->why, sizeof m->why, "send timed out");
                return -1;
            }
            if (pr < 0) {
                client_why_errno(m, "poll", errno);
                return -1;
            }
            continue;
        }
        client_why_errno(m, NULL, r < 0 ? errno : EPIPE);
        return -1;
    }
    return 0;
}

/* Waits for the frame answering `reqid` (or an MSG_ERROR, which ends the
 * connection whatever it answers), copies it to dst and parses it there, so
 * that the pointers in *out live as long as dst. Frames for other reqids
 * are stale answers and are dropped. */
static int client_wait_reply(struct client_conn *m, uint64_t reqid, int64_t deadline,
                             seqd_msg *out, uint8_t *dst)
{
    for (;;) {
        size_t size = client_head_size(m);
        if (size > SEQD_MAX_FRAME) {
            snprintf(m->why, sizeof m->why, "protocol error: frame of %zu bytes", size);
            client_conn_close(m);
            return WAIT_CONN;
        }
        if (size != 0 && m->rlen >= client_unit_size(m, size)) {
            if (!client_tag_ok(m, size))
                return WAIT_CONN;
            size_t unit = client_unit_size(m, size);
            seqd_msg msg;
            int rc = frame_parse(m->rbuf, size, &msg);
            if (rc != FRAME_OK) {
                snprintf(m->why, sizeof m->why, "protocol error: %s",
                         rc < 0 ? frame_err_str(-rc) : "truncated frame");
                client_conn_close(m);
                return WAIT_CONN;
            }
            if (msg.reqid == reqid || msg.type == MSG_ERROR) {
                memcpy(dst, m->rbuf, size);
                client_consume(m, unit);
                (void)frame_parse(dst, size, out);
                return WAIT_OK;
            }
            client_consume(m, unit);
            continue;
        }
        int pr = client_poll(m->fd, POLLIN, deadline);
        if (pr == 0) {
            snprintf(m->why, sizeof m->why, "no reply");
            return WAIT_TIMEOUT;
        }
        if (pr < 0) {
            client_why_errno(m, "poll", errno);
            client_conn_close(m);
            return WAIT_CONN;
        }
        if (client_recv_some(m) < 0) {
            client_conn_close(m);
            return WAIT_CONN;
        }
    }
}

/* One request/reply exchange with member i: connects if needed, sends, and
 * waits until `deadline`. A reused connection that turns out dead is
 * reopened once, since its failure says nothing about the member. */
static int client_exchange(client *c, int i, seqd_msg *req, int64_t deadline,
                           seqd_msg *reply, uint8_t *dst)
{
    struct client_conn *m = &c->m[i];
    size_t len = frame_pack(req, c->buf);
    if (len == 0) {
        snprintf(m->why, sizeof m->why, "request does not fit in a frame");
        return WAIT_CONN;
    }
    client_drop_stale(m);
    for (int tries = 0;; tries++) {
        bool reused = m->fd >= 0;
        if (!reused && client_connect(m, deadline) != 0)
            return WAIT_CONN;
        if (!reused && client_send_token(c, m, deadline) != 0) {
            client_conn_close(m);
            return WAIT_CONN;
        }
        size_t out = len;   /* a reconnected connection has no tags */
        if (m->mac) {
            mac_seal(m->mac, c->buf, len, c->buf + len);
            out += SEQD_TAG_LEN;
        }
        if (client_send_all(m, c->buf, out, deadline) != 0) {
            client_conn_close(m);
            if (reused && tries == 0)
                continue;
            return WAIT_CONN;
        }
        int r = client_wait_reply(m, req->reqid, deadline, reply, dst);
        if (r == WAIT_CONN && reused && tries == 0 && client_now_ms() < deadline)
            continue;
        return r;
    }
}

/* Builds the one-line failure message from each member's last reason. */
static void client_fail_line(client *c, const char *name, uint32_t timeout_ms,
                             char *err, size_t errlen)
{
    if (err == NULL || errlen == 0)
        return;
    int off = snprintf(err, errlen, "no member could serve '%s' within %u ms", name, timeout_ms);
    const char *sep = ": ";
    for (int i = 0; i < c->n && off >= 0 && (size_t)off < errlen; i++) {
        if (c->m[i].why[0] == '\0')
            continue;
        off += snprintf(err + off, errlen - (size_t)off, "%s%s: %s", sep, c->m[i].srv->addr,
                        c->m[i].why);
        sep = "; ";
    }
}

/* What a fetch reply from member m means: CLIENT_OK with *first set, a
 * final CLIENT_EUSAGE / CLIENT_EFAIL with err, or CLIENT_NEXT (try the next
 * member; m->why says why, and a protocol error drops the connection). */
#define CLIENT_NEXT (-1)
static int client_take_reply(struct client_conn *m, const seqd_msg *rep, const char *name,
                             uint32_t count, uint64_t *first, char *err, size_t errlen)
{
    if (rep->type == MSG_RANGE) {
        if (!policy_range_ok(rep, count)) {
            snprintf(m->why, sizeof m->why, "protocol error: range of %u IDs at %llu for %u",
                     rep->u.range.count, (unsigned long long)rep->u.range.first, count);
            client_conn_close(m);
            return CLIENT_NEXT;
        }
        *first = rep->u.range.first;
        m->avoid_until_ms = 0;
        return CLIENT_OK;
    }
    if (rep->type == MSG_REPLY_ERR) {
        enum policy_verdict v = policy_judge(rep, m->why, sizeof m->why);
        if (v == POLICY_NEXT)
            return CLIENT_NEXT;
        m->avoid_until_ms = 0;   /* the request's fault, not the member's */
        policy_stop_message(rep, m->srv->addr, name, count, err, errlen);
        return v == POLICY_USAGE ? CLIENT_EUSAGE : CLIENT_EFAIL;
    }
    if (rep->type == MSG_ERROR && rep->u.err.code == FERR_HELLO && rep->u.err.len == 17 &&
        memcmp(rep->u.err.text, "not authenticated", 17) == 0) {
        /* Every member of a cluster has the same token: asking the others
         * would only wait out the deadline to say the same. */
        client_conn_close(m);
        snprintf(err, errlen, "%s: not authenticated: the member requires a client token "
                              "(--token-file or $SEQD_TOKEN_FILE), or this one is wrong",
                 m->srv->addr);
        return CLIENT_EFAIL;
    }
    if (rep->type == MSG_ERROR) {
        int tl = rep->u.err.len > 100 ? 100 : rep->u.err.len;
        snprintf(m->why, sizeof m->why, "protocol error: %s%s%.*s",
                 frame_err_str(rep->u.err.code), tl ? ": " : "", tl, rep->u.err.text);
    } else {
        snprintf(m->why, sizeof m->why, "protocol error: unexpected %s", msg_type_str(rep->type));
    }
    client_conn_close(m);
    return CLIENT_NEXT;
}

int client_fetch(client *c, const char *name, uint32_t count, uint32_t timeout_ms,
                 uint64_t *first, char *err, size_t errlen)
{
    if (policy_check_request(name, count, err, errlen) != CLIENT_OK)
        return CLIENT_EUSAGE;
    size_t nlen = strlen(name);
    for (int i = 0; i < c->n; i++)
        c->m[i].why[0] = '\0';
    int64_t deadline = client_now_ms() + timeout_ms;
    int start = client_first_choice(c, name);
    int64_t pause = POLICY_PASS_PAUSE_MS;
    for (int k = 0;; k++) {
        if (k > 0 && k % c->n == 0) {
            /* A whole pass failed: wait a little before the next one. */
            int64_t left = deadline - client_now_ms();
            if (left <= 0)
                break;
            int64_t p = pause < left ? pause : left;
            struct timespec ts = { .tv_sec = p / 1000, .tv_nsec = (p % 1000) * 1000000 };
            nanosleep(&ts, NULL);
            pause = policy_next_pause(pause);
        }
        int64_t now = client_now_ms();
        int64_t left = deadline - now;
        if (left <= 0)
            break;
        int i = (start + k) % c->n;
        struct client_conn *m = &c->m[i];
        /* The grace comes off the top, so that even the last attempt's
         * "timeout" answer arrives before the caller's deadline. */
        int64_t usable = left > 2 * POLICY_REPLY_GRACE_MS ? left - POLICY_REPLY_GRACE_MS : left;
        int64_t budget = policy_attempt_budget(usable);
        int64_t wait_until = now + budget + POLICY_REPLY_GRACE_MS;
        if (wait_until > deadline)
            wait_until = deadline;
        seqd_msg req = { .type = MSG_FETCH, .reqid = c->next_reqid++ };
        req.u.fetch.timeout_ms = (uint32_t)(budget > 0 ? budget : 1);
        req.u.fetch.count = count;
        seqd_name_set(&req.u.fetch.name, name, nlen);
        seqd_msg rep;
        int r = client_exchange(c, i, &req, wait_until, &rep, c->buf);
        /* Whatever went wrong below, this member is not a first choice for
         * a while; a success clears that. */
        m->avoid_until_ms = client_now_ms() + POLICY_AVOID_MS;
        if (r != WAIT_OK)
            continue;
        int done = client_take_reply(m, &rep, name, count, first, err, errlen);
        if (done != CLIENT_NEXT)
            return done;
    }
    client_fail_line(c, name, timeout_ms, err, errlen);
    return CLIENT_EFAIL;
}

int client_status(client *c, int i, uint32_t timeout_ms, struct seqd_status *st,
                  char *err, size_t errlen)
{
    if (i < 0 || i >= c->n) {
        policy_seterr(err, errlen, "no member %d", i);
        return CLIENT_EFAIL;
    }
    struct client_conn *m = &c->m[i];
    m->why[0] = '\0';
    seqd_msg req = { .type = MSG_STATUS, .reqid = c->next_reqid++ };
    seqd_msg rep;
    int r = client_exchange(c, i, &req, client_now_ms() + timeout_ms, &rep, c->buf);
    if (r != WAIT_OK) {
        policy_seterr(err, errlen, "%s", m->why);
        return CLIENT_EFAIL;
    }
    if (rep.type == MSG_STATUS_REPLY) {
        *st = rep.u.status;
        return CLIENT_OK;
    }
    int tl = rep.u.err.len > 200 ? 200 : rep.u.err.len;
    if (rep.type == MSG_REPLY_ERR) {
        policy_seterr(err, errlen, "%s%s%.*s", seqd_err_str(rep.u.err.code), tl ? ": " : "",
                      tl, rep.u.err.text);
    } else if (rep.type == MSG_ERROR) {
        policy_seterr(err, errlen, "protocol error: %s%s%.*s", frame_err_str(rep.u.err.code),
                      tl ? ": " : "", tl, rep.u.err.text);
        client_conn_close(m);
    } else {
        policy_seterr(err, errlen, "protocol error: unexpected %s", msg_type_str(rep.type));
        client_conn_close(m);
    }
    return CLIENT_EFAIL;
}

int client_set_mac(client *c, int i, const uint8_t ks[AUTH_KEY_LEN], enum auth_role self)
{
    if (i < 0 || i >= c->n || c->m[i].fd < 0 || c->m[i].mac)
        return -1;
    c->m[i].mac = mac_new(ks, self);
    return c->m[i].mac ? 0 : -1;
}

/* Tests send what a client should not; the reqid is the caller's unless it
 * left it 0, and a framing error's MSG_ERROR is returned like any reply
 * (the connection is then closed, as the member closes it too). */
int client_raw(client *c, int i, const seqd_msg *req, seqd_msg *reply,
               uint8_t *scratch, uint32_t timeout_ms, char *err, size_t errlen)
{
    if (i < 0 || i >= c->n) {
        policy_seterr(err, errlen, "no member %d", i);
        return CLIENT_EFAIL;
    }
    struct client_conn *m = &c->m[i];
    m->why[0] = '\0';
    seqd_msg copy = *req;
    if (copy.reqid == 0)
        copy.reqid = c->next_reqid++;
    int r = client_exchange(c, i, &copy, client_now_ms() + timeout_ms, reply, scratch);
    if (r != WAIT_OK) {
        policy_seterr(err, errlen, "%s", m->why);
        return CLIENT_EFAIL;
    }
    if (reply->type == MSG_ERROR)
        client_conn_close(m);
    return CLIENT_OK;
}
