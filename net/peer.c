/* net/peer.c — outgoing peer link with hello and reconnect (see peer.h). */
#include "peer.h"

#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/event.h>

#include "addr.h"
#include "auth.h"
#include "conn.h"

struct peer {
    struct event_base *base;
    int member;
    char addr[SEQD_ADDR_MAX + 1];
    char self_addr[SEQD_ADDR_MAX + 1];
    uint32_t round_ms;
    uint64_t cluster_id;
    void (*inc_now)(void *arg, struct seqd_inc *out);
    void (*epoch_now)(void *arg, uint64_t *epoch, uint64_t *digest);
    const auth_secret *secret;
    auth_exchange ax;             /* the challenge-response of the current attempt */
    struct sockaddr_storage ss;
    int sslen;
    conn *c;
    bool up;
    bool closing;      /* peer_free in progress: no reports, no retries */
    uint32_t backoff_ms;
    struct event *retry;
    peer_reply_fn on_reply;
    peer_state_fn on_state;
    void *arg;
    char last_why[SEQD_TEXT_MAX + 1];   /* so a repeating failure is reported once */
};

static void peer_connect(peer *p);

/* Reports a state change, but a failure that repeats (a member that stays
 * down) only once, so the log is not flooded while we keep retrying. */
static void peer_report(peer *p, bool up, const char *why)
{
    if (!up && strcmp(why, p->last_why) == 0)
        return;
    snprintf(p->last_why, sizeof p->last_why, "%s", up ? "" : why);
    p->on_state(p, p->member, up, why, p->arg);
}

static void peer_retry_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    peer_connect(arg);
}

static void peer_schedule(peer *p)
{
    struct timeval tv = {p->backoff_ms / 1000, (p->backoff_ms % 1000) * 1000};
    evtimer_add(p->retry, &tv);
    p->backoff_ms = p->backoff_ms * 2 > PEER_BACKOFF_MAX_MS ? PEER_BACKOFF_MAX_MS : p->backoff_ms * 2;
}

static void peer_send_hello(peer *p, conn *c)
{
    seqd_msg m = {.type = MSG_HELLO, .reqid = 0};
    m.u.hello.round_ms = p->round_ms;
    m.u.hello.cluster_id = p->cluster_id;
    if (p->epoch_now)
        p->epoch_now(p->arg, &m.u.hello.epoch, &m.u.hello.cluster_id);
    if (p->inc_now)
        p->inc_now(p->arg, &m.u.hello.inc);
    m.u.hello.addr = p->self_addr;
    m.u.hello.addr_len = (uint8_t)strlen(p->self_addr);
    conn_send(c, &m);
}

/* With a secret, the link authenticates before it says hello; the
 * other member must prove it holds the secret and is the member of the
 * slot this link is for. */
static void peer_on_open(conn *c, void *arg)
{
    peer *p = arg;
    if (!p->secret) {
        peer_send_hello(p, c);
        return;
    }
    uint8_t nc[SEQD_NONCE_LEN];
    if (auth_nonce(nc) < 0) {
        conn_close(c, "no randomness for a nonce");
        return;
    }
    seqd_msg m;
    auth_connector_begin(&p->ax, (uint8_t)p->member, nc, &m);
    conn_send(c, &m);
}

/* The connector's half of the exchange. On AUTH_OK every later frame is
 * tagged (proto.h), the hello first. */
static void peer_on_auth(peer *p, conn *c, const seqd_msg *m)
{
    if (!p->secret) {
        conn_close(c, "unexpected authentication message");
        return;
    }
    switch (conn_auth_step(c, &p->ax, p->secret, m)) {
    case AUTH_SEND:
        return;
    case AUTH_DONE:
        peer_send_hello(p, c);   /* the first tagged frame */
        return;
    case AUTH_REFUSE:
        break;
    }
    if (conn_is_open(c))
        conn_close(c, "the member failed authentication (a different --secret-file, or not the "
                      "member of that slot?)");
}

static void peer_on_msg(conn *c, const seqd_msg *m, void *arg)
{
    peer *p = arg;
    if (m->type == MSG_HELLO_OK) {
        p->up = true;
        p->backoff_ms = 25;
        peer_report(p, true, "");
        return;
    }
    if (m->type == MSG_AUTH && !p->up) {
        peer_on_auth(p, c, m);
        return;
    }
    if (m->type == MSG_ERROR) {
        char why[SEQD_TEXT_MAX + 1];
        snprintf(why, sizeof why, "%.*s", (int)m->u.err.len, m->u.err.text);
        conn_close(c, why);
        return;
    }
    if (p->up)
        p->on_reply(p, p->member, m, p->arg);
}

static void peer_on_end(conn *c, void *arg, const char *why)
{
    peer *p = arg;
    (void)c;
    p->c = NULL;
    p->up = false;
    if (p->closing)
        return;
    peer_report(p, false, why);
    peer_schedule(p);
}

static void peer_connect(peer *p)
{
    p->c = conn_connect(p->base, (struct sockaddr *)&p->ss, p->sslen, peer_on_open, peer_on_msg,
                        peer_on_end, p);
    if (!p->c)
        peer_schedule(p);
}

peer *peer_new(struct event_base *base, int member, const char *addr, const peer_hello *hello,
               peer_reply_fn on_reply, peer_state_fn on_state, void *arg, char *err, size_t errlen)
{
    peer *p = calloc(1, sizeof *p);
    if (!p) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (addr_resolve(addr, &p->ss, &p->sslen, err, errlen) < 0) {
        free(p);
        return NULL;
    }
    p->base = base;
    p->member = member;
    snprintf(p->addr, sizeof p->addr, "%s", addr);
    snprintf(p->self_addr, sizeof p->self_addr, "%s", hello->self_addr);
    p->round_ms = hello->round_ms;
    p->cluster_id = hello->cluster_id;
    p->inc_now = hello->inc_now;
    p->epoch_now = hello->epoch_now;
    p->secret = hello->secret;
    p->on_reply = on_reply;
    p->on_state = on_state;
    p->arg = arg;
    p->backoff_ms = 25;
    snprintf(p->last_why, sizeof p->last_why, "(start)");
    p->retry = evtimer_new(base, peer_retry_cb, p);
    if (!p->retry) {
        free(p);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    peer_connect(p);
    return p;
}

void peer_free(peer *p)
{
    if (!p)
        return;
    event_free(p->retry);
    p->closing = true;
    if (p->c) {
        conn *c = p->c;
        p->c = NULL;
        conn_close(c, "shutting down");
    }
    free(p);
}

int peer_send(peer *p, const seqd_msg *m)
{
    if (!p->up || !p->c)
        return -1;
    return conn_send(p->c, m);
}

void peer_reset(peer *p, const char *why)
{
    if (p->c && p->up)
        conn_close(p->c, why);   /* peer_on_end reports it and schedules the retry */
}

bool peer_up(const peer *p) { return p->up; }
const char *peer_addr(const peer *p) { return p->addr; }
