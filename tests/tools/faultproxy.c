/* tests/tools/faultproxy.c — a TCP proxy whose links can be cut or slowed
 * on command, for partition and slow-network experiments.
 *
 *   faultproxy --control HOST:PORT --route LISTEN=TARGET [--route ...] [--seed N]
 *
 * Every connection accepted on LISTEN is forwarded to TARGET (addresses are
 * numeric, IPv4 "1.2.3.4:5" or IPv6 "[::1]:5"). The control port takes one
 * command per line and answers "ok" or "err <why>" (status first prints one
 * "route ..." line per route):
 *
 *   block LISTEN          drop the route's connections, close new ones at once
 *   unblock LISTEN
 *   delay LISTEN MS [J]   hold new data MS ms (+ 0..J ms jitter, seeded by
 *                         --seed; order is kept) in each direction; 0 = off
 *   blockall | unblockall | delayall MS [J]
 *   tamper LISTEN up|down dup|flip TYPE [OFFSET]
 *                         once: the next seqd frame of message type TYPE
 *                         (proto.h's number) that carries a MAC tag (sent
 *                         after the MSG_AUTH exchange), in direction up
 *                         (connector -> listener) or down, on any of the
 *                         route's connections, is sent twice (dup: a
 *                         replay) or has byte OFFSET of the frame (default
 *                         16, the first payload byte; clipped to the frame)
 *                         XORed with 0x40 (flip). Logged on stderr when done.
 *   status
 *
 * LISTEN is the string given in --route. A partition is a set of `block`s,
 * one per directed member link routed through the proxy. Prints "ready" on
 * stdout once every socket is bound; SIGINT/SIGTERM end it cleanly.
 *
 * Forwarding follows libevent's sample/le-proxy.c: bufferevent pairs, and
 * back-pressure — when a direction holds over FP_MAX_OUTPUT bytes (delay
 * queue + the far side's output buffer) it stops reading until half of it
 * drained. A half-close (EOF one way) is passed on with shutdown(SHUT_WR)
 * once the pending data is written; the pair is freed when both directions
 * are shut or either side fails.
 *
 * Data moves in whole seqd frames (the length prefix, plus the 16-byte tag
 * once a direction is past the MSG_AUTH exchange), so that `tamper` finds
 * them; a length no seqd frame has turns the direction to plain bytes.
 */
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <event2/util.h>

#include "../../proto.h"

#define FP_MAX_OUTPUT (512 * 1024)
#define FP_MAX_LINE 512
#define FP_ADDR 64

struct fp_conn;
struct fp_route;

/* Data held back by a delay, released to the far side at `due`. */
typedef struct fp_chunk {
    struct fp_chunk *next;
    int64_t due_ms;
    struct evbuffer *buf;
} fp_chunk;

/* One direction of a proxied connection: from -> (delay queue) -> to. */
typedef struct fp_dir {
    struct fp_conn *conn;
    struct bufferevent *from, *to;
    fp_chunk *head, *tail;
    size_t queued;
    struct event *timer;
    bool eof;       /* `from` closed its sending side */
    bool shut;      /* ... and we passed that on to `to` */
    bool choked;    /* reading `from` paused for back-pressure */
    bool up;        /* client -> server: the connector's frames */
    bool tagged;    /* past the MSG_AUTH exchange: frames carry tags */
    bool raw;       /* not seqd frames: moved as bytes */
} fp_dir;

typedef struct fp_conn {
    struct fp_route *route;
    struct fp_conn *prev, *next;
    struct bufferevent *client, *server;
    fp_dir up, down;        /* client->server, server->client */
    bool connected;         /* to the target; a half-close waits for it */
} fp_conn;

/* A one-shot alteration of the next tagged frame of one type. */
enum fp_tamper_mode { FP_TAMPER_DUP, FP_TAMPER_FLIP };
typedef struct fp_tamper {
    bool armed;
    enum fp_tamper_mode mode;
    int type;
    size_t offset;
} fp_tamper;

typedef struct fp_route {
    struct fp_proxy *px;
    char listen[FP_ADDR], target[FP_ADDR];
    struct sockaddr_storage target_sa;
    int target_len;
    struct evconnlistener *listener;
    bool blocked;
    int delay_ms, jitter_ms;
    fp_conn *conns;
    size_t nconns;
    uint64_t accepted, refused, dropped, tampered;
    fp_tamper tamper[2];    /* [0] up, [1] down */
} fp_route;

typedef struct fp_ctl {
    struct fp_proxy *px;
    struct fp_ctl *prev, *next;
    struct bufferevent *bev;
} fp_ctl;

typedef struct fp_proxy {
    struct event_base *base;
    fp_route *routes;
    size_t nroutes;
    struct evconnlistener *control;
    fp_ctl *ctls;
    uint64_t rng;
    struct evbuffer *units;     /* whole frames on their way (fp_dir_pump) */
} fp_proxy;

/* Delays are measured on the monotonic clock so a wall-clock step cannot
 * release or hold data early. */
static int64_t fp_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* xorshift64: deterministic jitter from --seed, so a run can be replayed. */
static uint64_t fp_rand(fp_proxy *px)
{
    px->rng ^= px->rng << 13;
    px->rng ^= px->rng >> 7;
    px->rng ^= px->rng << 17;
    return px->rng;
}

/* seqd frames are small request/replies: Nagle would add its own delay. */
static void fp_nodelay(struct bufferevent *bev)
{
    int one = 1;
    evutil_socket_t fd = bufferevent_getfd(bev);
    if (fd >= 0)
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

/* ------------------------------------------------------------ connections */

static void fp_conn_free(fp_conn *c)
{
    fp_route *r = c->route;
    fp_dir *dirs[2] = { &c->up, &c->down };
    for (int i = 0; i < 2; i++) {
        for (fp_chunk *k = dirs[i]->head, *n; k; k = n) {
            n = k->next;
            evbuffer_free(k->buf);
            free(k);
        }
        if (dirs[i]->timer)
            event_free(dirs[i]->timer);
    }
    bufferevent_free(c->client);
    bufferevent_free(c->server);
    if (c->prev)
        c->prev->next = c->next;
    else
        r->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    r->nconns--;
    free(c);
}

static size_t fp_backlog(const fp_dir *d)
{
    return d->queued + evbuffer_get_length(bufferevent_get_output(d->to));
}

/* Passes an EOF on only after everything read before it was delivered;
 * frees the pair once both directions are done. Returns true if freed. */
static bool fp_dir_maybe_shut(fp_dir *d)
{
    if (!d->eof || d->shut || d->head || evbuffer_get_length(bufferevent_get_output(d->to)) ||
        !d->conn->connected)
        return false;
    shutdown(bufferevent_getfd(d->to), SHUT_WR);
    d->shut = true;
    fp_conn *c = d->conn;
    if (c->up.shut && c->down.shut) {
        fp_conn_free(c);
        return true;
    }
    return false;
}

static void fp_dir_arm(fp_dir *d)
{
    if (!d->head || evtimer_pending(d->timer, NULL))
        return;
    int64_t wait = d->head->due_ms - fp_now_ms();
    struct timeval tv = { 0, 0 };
    if (wait > 0) {
        tv.tv_sec = wait / 1000;
        tv.tv_usec = (wait % 1000) * 1000;
    }
    evtimer_add(d->timer, &tv);
}

/* Releases the chunks whose time has come, in order. */
static void fp_dir_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    fp_dir *d = arg;
    int64_t now = fp_now_ms();
    while (d->head && d->head->due_ms <= now) {
        fp_chunk *k = d->head;
        d->head = k->next;
        if (!d->head)
            d->tail = NULL;
        d->queued -= evbuffer_get_length(k->buf);
        evbuffer_add_buffer(bufferevent_get_output(d->to), k->buf);
        evbuffer_free(k->buf);
        free(k);
    }
    fp_dir_arm(d);
}

/* Applies the route's armed tamper of this direction to one tagged frame
 * (frame[0..flen) and its tag after it) on its way into `units`. */
static void fp_tamper_apply(fp_dir *d, uint8_t *unit, size_t flen, size_t len,
                            struct evbuffer *units)
{
    fp_route *r = d->conn->route;
    fp_tamper *t = &r->tamper[d->up ? 0 : 1];
    if (!t->armed || unit[5] != t->type) {
        evbuffer_add(units, unit, len);
        return;
    }
    t->armed = false;
    r->tampered++;
    size_t off = t->offset < flen ? t->offset : flen - 1;
    if (t->mode == FP_TAMPER_FLIP)
        unit[off] ^= 0x40;
    evbuffer_add(units, unit, len);
    if (t->mode == FP_TAMPER_DUP)
        evbuffer_add(units, unit, len);
    if (t->mode == FP_TAMPER_FLIP)
        fprintf(stderr, "faultproxy: tampered route %s %s: flip byte %zu of a frame of type %d (%zu bytes)\n",
                r->listen, d->up ? "up" : "down", off, unit[5], flen);
    else
        fprintf(stderr, "faultproxy: tampered route %s %s: dup of a frame of type %d (%zu bytes)\n",
                r->listen, d->up ? "up" : "down", unit[5], flen);
}

/* Moves the whole frames at the front of `in` into `units` (a partial one
 * waits for the rest), noting where the tags start: after the connector's
 * AUTH_PROOF going up, after the listener's AUTH_OK going down (proto.h). */
static void fp_dir_units(fp_dir *d, struct evbuffer *in, struct evbuffer *units)
{
    static uint8_t unit[SEQD_MAX_FRAME + SEQD_TAG_LEN];
    for (;;) {
        if (d->raw) {
            evbuffer_add_buffer(units, in);
            return;
        }
        size_t have = evbuffer_get_length(in);
        uint8_t h[4];
        if (have < 4 || evbuffer_copyout(in, h, 4) != 4)
            return;
        size_t flen = 4 + ((size_t)h[0] << 24 | (size_t)h[1] << 16 | (size_t)h[2] << 8 | h[3]);
        if (flen > SEQD_MAX_FRAME || flen < SEQD_HDR_LEN) {
            d->raw = true;
            continue;
        }
        bool tagged = d->tagged;
        size_t len = flen + (tagged ? SEQD_TAG_LEN : 0);
        if (have < len)
            return;
        evbuffer_remove(in, unit, len);
        if (!tagged && unit[5] == MSG_AUTH && flen > SEQD_HDR_LEN &&
            unit[SEQD_HDR_LEN] == (d->up ? AUTH_PROOF : AUTH_OK))
            d->tagged = true;
        if (tagged)
            fp_tamper_apply(d, unit, flen, len, units);
        else
            evbuffer_add(units, unit, len);
    }
}

/* Moves what `from` has read toward `to`: straight into its output, or
 * through the delay queue when the route is slowed (or data is still queued,
 * so that order is kept when a delay is lifted). Returns false if it had to
 * drop the connection. */
static bool fp_dir_pump(fp_dir *d)
{
    struct evbuffer *in = d->conn->route->px->units;
    fp_dir_units(d, bufferevent_get_input(d->from), in);
    size_t len = evbuffer_get_length(in);
    if (!len)
        return true;
    fp_route *r = d->conn->route;
    if (r->delay_ms == 0 && !d->head) {
        evbuffer_add_buffer(bufferevent_get_output(d->to), in);
    } else {
        fp_chunk *k = calloc(1, sizeof *k);
        struct evbuffer *b = k ? evbuffer_new() : NULL;
        if (!b) {       /* out of memory: losing bytes silently would be worse */
            free(k);
            fp_conn_free(d->conn);
            return false;
        }
        int64_t due = fp_now_ms() + r->delay_ms;
        if (r->jitter_ms > 0)
            due += (int64_t)(fp_rand(r->px) % (uint64_t)(r->jitter_ms + 1));
        if (d->tail && d->tail->due_ms > due)
            due = d->tail->due_ms;
        k->due_ms = due;
        k->buf = b;
        evbuffer_add_buffer(b, in);
        if (d->tail)
            d->tail->next = k;
        else
            d->head = k;
        d->tail = k;
        d->queued += len;
        fp_dir_arm(d);
    }
    if (!d->choked && fp_backlog(d) >= FP_MAX_OUTPUT) {
        d->choked = true;
        bufferevent_disable(d->from, EV_READ);
        bufferevent_setwatermark(d->to, EV_WRITE, FP_MAX_OUTPUT / 2, 0);
    }
    return true;
}

static fp_dir *fp_dir_from(fp_conn *c, struct bufferevent *bev)
{
    return bev == c->client ? &c->up : &c->down;
}

static void fp_read_cb(struct bufferevent *bev, void *arg)
{
    (void)fp_dir_pump(fp_dir_from(arg, bev));
}

/* `bev` wrote some of its output: maybe resume its partner, maybe pass an
 * EOF on. */
static void fp_write_cb(struct bufferevent *bev, void *arg)
{
    fp_conn *c = arg;
    fp_dir *d = bev == c->client ? &c->down : &c->up;
    if (d->choked && fp_backlog(d) <= FP_MAX_OUTPUT / 2) {
        d->choked = false;
        bufferevent_setwatermark(d->to, EV_WRITE, 0, 0);
        if (!d->eof)
            bufferevent_enable(d->from, EV_READ);
    }
    fp_dir_maybe_shut(d);
}

static void fp_event_cb(struct bufferevent *bev, short what, void *arg)
{
    fp_conn *c = arg;
    if (what & BEV_EVENT_CONNECTED) {
        fp_nodelay(bev);
        c->connected = true;
        fp_dir_maybe_shut(&c->up);      /* the client may have finished already */
        return;
    }
    if (what & BEV_EVENT_ERROR) {   /* refused, reset: the other side sees it closed */
        fp_conn_free(c);
        return;
    }
    if (what & BEV_EVENT_EOF) {
        fp_dir *d = fp_dir_from(c, bev);
        if (!fp_dir_pump(d))
            return;
        d->eof = true;
        fp_dir_maybe_shut(d);
    }
}

static bool fp_dir_init(fp_dir *d, fp_conn *c, struct bufferevent *from, struct bufferevent *to)
{
    d->conn = c;
    d->from = from;
    d->to = to;
    d->up = from == c->client;
    d->timer = evtimer_new(c->route->px->base, fp_dir_timer_cb, d);
    return d->timer != NULL;
}

static void fp_accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen, void *arg)
{
    (void)l;
    (void)sa;
    (void)salen;
    fp_route *r = arg;
    if (r->blocked) {
        r->refused++;
        evutil_closesocket(fd);
        return;
    }
    struct event_base *base = r->px->base;
    fp_conn *c = calloc(1, sizeof *c);
    if (!c) {
        evutil_closesocket(fd);
        return;
    }
    c->route = r;
    c->client = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
    c->server = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
    if (!c->client || !c->server) {
        if (c->client)
            bufferevent_free(c->client);
        else
            evutil_closesocket(fd);
        if (c->server)
            bufferevent_free(c->server);
        free(c);
        return;
    }
    c->next = r->conns;
    if (r->conns)
        r->conns->prev = c;
    r->conns = c;
    r->nconns++;
    r->accepted++;
    if (!fp_dir_init(&c->up, c, c->client, c->server) || !fp_dir_init(&c->down, c, c->server, c->client)) {
        fp_conn_free(c);
        return;
    }
    bufferevent_setcb(c->client, fp_read_cb, fp_write_cb, fp_event_cb, c);
    bufferevent_setcb(c->server, fp_read_cb, fp_write_cb, fp_event_cb, c);
    fp_nodelay(c->client);
    if (bufferevent_socket_connect(c->server, (struct sockaddr *)&r->target_sa, r->target_len) < 0) {
        fp_conn_free(c);
        return;
    }
    bufferevent_enable(c->client, EV_READ | EV_WRITE);
    bufferevent_enable(c->server, EV_READ | EV_WRITE);
}

/* ----------------------------------------------------------------- control */

static void fp_block(fp_route *r, bool on)
{
    r->blocked = on;
    while (on && r->conns) {
        r->dropped++;
        fp_conn_free(r->conns);
    }
}

static fp_route *fp_route_find(fp_proxy *px, const char *name)
{
    for (size_t i = 0; i < px->nroutes; i++)
        if (strcmp(px->routes[i].listen, name) == 0)
            return &px->routes[i];
    return NULL;
}

static bool fp_parse_ms(const char *s, int *out)
{
    char *end;
    if (!s)
        return false;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < 0 || v > 3600 * 1000)
        return false;
    *out = (int)v;
    return true;
}

/* tamper LISTEN up|down dup|flip TYPE [OFFSET] */
static void fp_tamper_cmd(fp_proxy *px, char *const *a, struct evbuffer *out)
{
    fp_route *r = a[0] ? fp_route_find(px, a[0]) : NULL;
    int type, offset = SEQD_HDR_LEN;
    bool up = a[1] && strcmp(a[1], "up") == 0, down = a[1] && strcmp(a[1], "down") == 0;
    bool dup = a[2] && strcmp(a[2], "dup") == 0, flip = a[2] && strcmp(a[2], "flip") == 0;
    if (!r || !(up || down) || !(dup || flip) || !fp_parse_ms(a[3], &type) || type < 1 ||
        type > MSG_TYPE_MAX || (a[4] && !fp_parse_ms(a[4], &offset)) || a[5]) {
        evbuffer_add_printf(out, "err usage: tamper LISTEN up|down dup|flip TYPE [OFFSET]\n");
        return;
    }
    r->tamper[up ? 0 : 1] = (fp_tamper){ .armed = true, .mode = dup ? FP_TAMPER_DUP : FP_TAMPER_FLIP,
                                         .type = type, .offset = (size_t)offset };
    evbuffer_add_printf(out, "ok\n");
}

/* Runs one command line, writing the reply to out. */
static void fp_command(fp_proxy *px, char *line, struct evbuffer *out)
{
    char *save = NULL, *a[7] = { NULL };
    char *cmd = strtok_r(line, " \t", &save);
    for (int i = 0; i < 7 && cmd; i++)
        a[i] = strtok_r(NULL, " \t", &save);
    char *a1 = a[0], *a2 = a[1], *a3 = a[2], *extra = a[3];
    if (!cmd) {
        evbuffer_add_printf(out, "err empty command\n");
        return;
    }
    if (strcmp(cmd, "tamper") == 0) {
        fp_tamper_cmd(px, a, out);
        return;
    }
    if (extra) {
        evbuffer_add_printf(out, "err too many arguments\n");
        return;
    }
    bool all = strcmp(cmd, "blockall") == 0 || strcmp(cmd, "unblockall") == 0;
    if (all || strcmp(cmd, "status") == 0) {
        if (a1) {
            evbuffer_add_printf(out, "err %s takes no argument\n", cmd);
            return;
        }
        for (size_t i = 0; i < px->nroutes; i++) {
            fp_route *r = &px->routes[i];
            if (all)
                fp_block(r, cmd[0] == 'b');
            else
                evbuffer_add_printf(out, "route %s=%s blocked=%d delay=%d jitter=%d conns=%zu accepted=%" PRIu64
                                    " refused=%" PRIu64 " dropped=%" PRIu64 " tampered=%" PRIu64 "\n",
                                    r->listen, r->target, r->blocked, r->delay_ms, r->jitter_ms, r->nconns,
                                    r->accepted, r->refused, r->dropped, r->tampered);
        }
        evbuffer_add_printf(out, "ok\n");
        return;
    }
    if (strcmp(cmd, "delayall") == 0) {
        int ms, jit = 0;
        if (!fp_parse_ms(a1, &ms) || (a2 && !fp_parse_ms(a2, &jit)) || a3) {
            evbuffer_add_printf(out, "err usage: delayall MS [JITTER_MS]\n");
            return;
        }
        for (size_t i = 0; i < px->nroutes; i++) {
            px->routes[i].delay_ms = ms;
            px->routes[i].jitter_ms = jit;
        }
        evbuffer_add_printf(out, "ok\n");
        return;
    }
    bool block = strcmp(cmd, "block") == 0, unblock = strcmp(cmd, "unblock") == 0;
    bool delay = strcmp(cmd, "delay") == 0;
    if (!block && !unblock && !delay) {
        evbuffer_add_printf(out, "err unknown command %s\n", cmd);
        return;
    }
    fp_route *r = a1 ? fp_route_find(px, a1) : NULL;
    if (!r) {
        evbuffer_add_printf(out, "err no route %s\n", a1 ? a1 : "(missing)");
        return;
    }
    if (delay) {
        int ms, jit = 0;
        if (!fp_parse_ms(a2, &ms) || (a3 && !fp_parse_ms(a3, &jit))) {
            evbuffer_add_printf(out, "err usage: delay LISTEN MS [JITTER_MS]\n");
            return;
        }
        r->delay_ms = ms;
        r->jitter_ms = jit;
    } else if (a2) {
        evbuffer_add_printf(out, "err usage: %s LISTEN\n", cmd);
        return;
    } else {
        fp_block(r, block);
    }
    evbuffer_add_printf(out, "ok\n");
}

static void fp_ctl_free(fp_ctl *k)
{
    if (k->prev)
        k->prev->next = k->next;
    else
        k->px->ctls = k->next;
    if (k->next)
        k->next->prev = k->prev;
    bufferevent_free(k->bev);
    free(k);
}

static void fp_ctl_read_cb(struct bufferevent *bev, void *arg)
{
    fp_ctl *k = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    char *line;
    size_t n;
    while ((line = evbuffer_readln(in, &n, EVBUFFER_EOL_CRLF))) {
        fp_command(k->px, line, bufferevent_get_output(bev));
        free(line);
    }
    if (evbuffer_get_length(in) > FP_MAX_LINE) {
        evbuffer_add_printf(bufferevent_get_output(bev), "err line too long\n");
        fp_ctl_free(k);
    }
}

static void fp_ctl_event_cb(struct bufferevent *bev, short what, void *arg)
{
    (void)bev;
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
        fp_ctl_free(arg);
}

static void fp_ctl_accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen, void *arg)
{
    (void)l;
    (void)sa;
    (void)salen;
    fp_proxy *px = arg;
    fp_ctl *k = calloc(1, sizeof *k);
    if (!k || !(k->bev = bufferevent_socket_new(px->base, fd, BEV_OPT_CLOSE_ON_FREE))) {
        free(k);
        evutil_closesocket(fd);
        return;
    }
    k->px = px;
    k->next = px->ctls;
    if (px->ctls)
        px->ctls->prev = k;
    px->ctls = k;
    bufferevent_setcb(k->bev, fp_ctl_read_cb, NULL, fp_ctl_event_cb, k);
    bufferevent_enable(k->bev, EV_READ | EV_WRITE);
    fp_nodelay(k->bev);
}

/* -------------------------------------------------------------------- main */

static void fp_signal_cb(evutil_socket_t sig, short what, void *arg)
{
    (void)sig;
    (void)what;
    event_base_loopexit(arg, NULL);
}

static struct evconnlistener *fp_listen(fp_proxy *px, const char *addr, evconnlistener_cb cb, void *arg,
                                        char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    int len = sizeof ss;
    if (evutil_parse_sockaddr_port(addr, (struct sockaddr *)&ss, &len) < 0) {
        snprintf(err, errlen, "bad address %s", addr);
        return NULL;
    }
    struct evconnlistener *l = evconnlistener_new_bind(px->base, cb, arg, LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_FREE,
                                                       -1, (struct sockaddr *)&ss, len);
    if (!l)
        snprintf(err, errlen, "cannot listen on %s: %s", addr, strerror(errno));
    return l;
}

/* "LISTEN=TARGET" into a route; the listener is bound later. */
static bool fp_route_parse(fp_route *r, const char *spec, char *err, size_t errlen)
{
    const char *eq = strchr(spec, '=');
    size_t ln = eq ? (size_t)(eq - spec) : 0;
    if (!eq || ln == 0 || ln >= FP_ADDR || strlen(eq + 1) == 0 || strlen(eq + 1) >= FP_ADDR) {
        snprintf(err, errlen, "bad route %s (want LISTEN=TARGET)", spec);
        return false;
    }
    memcpy(r->listen, spec, ln);
    r->listen[ln] = '\0';
    strcpy(r->target, eq + 1);
    r->target_len = sizeof r->target_sa;
    if (evutil_parse_sockaddr_port(r->target, (struct sockaddr *)&r->target_sa, &r->target_len) < 0) {
        snprintf(err, errlen, "bad target address %s", r->target);
        return false;
    }
    return true;
}

static void fp_usage(FILE *f)
{
    fprintf(f,
            "usage: faultproxy --control HOST:PORT --route LISTEN=TARGET [--route ...] [--seed N]\n"
            "control commands (one per line, answered ok / err ...):\n"
            "  block LISTEN | unblock LISTEN | delay LISTEN MS [JITTER_MS]\n"
            "  blockall | unblockall | delayall MS [JITTER_MS] | status\n"
            "  tamper LISTEN up|down dup|flip TYPE [OFFSET]\n");
}

static void fp_proxy_free(fp_proxy *px)
{
    while (px->ctls)
        fp_ctl_free(px->ctls);
    for (size_t i = 0; i < px->nroutes; i++) {
        while (px->routes[i].conns)
            fp_conn_free(px->routes[i].conns);
        if (px->routes[i].listener)
            evconnlistener_free(px->routes[i].listener);
    }
    if (px->control)
        evconnlistener_free(px->control);
    free(px->routes);
}

/* Parses the command line into px; returns 0, or 2 for a usage error. */
static int fp_args(fp_proxy *px, int argc, char **argv, const char **control)
{
    char err[160];
    px->routes = calloc((size_t)argc, sizeof *px->routes);
    if (!px->routes)
        return 1;
    for (int i = 1; i < argc; i += 2) {     /* every option takes one value */
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fp_usage(stdout);
            exit(0);
        } else if (strcmp(argv[i], "--control") == 0 && v) {
            *control = v;
        } else if (strcmp(argv[i], "--route") == 0 && v) {
            fp_route *r = &px->routes[px->nroutes];
            r->px = px;
            if (!fp_route_parse(r, v, err, sizeof err)) {
                fprintf(stderr, "faultproxy: %s\n", err);
                return 2;
            }
            if (fp_route_find(px, r->listen)) {
                fprintf(stderr, "faultproxy: route %s given twice\n", r->listen);
                return 2;
            }
            px->nroutes++;
        } else if (strcmp(argv[i], "--seed") == 0 && v) {
            char *end;
            px->rng = strtoull(v, &end, 10);
            if (*end || end == v) {
                fprintf(stderr, "faultproxy: bad seed %s\n", v);
                return 2;
            }
        } else {
            fprintf(stderr, "faultproxy: bad argument %s\n", argv[i]);
            fp_usage(stderr);
            return 2;
        }
    }
    if (!*control || px->nroutes == 0) {
        fp_usage(stderr);
        return 2;
    }
    if (px->rng == 0)
        px->rng = 0x9e3779b97f4a7c15ull;     /* xorshift must not start at 0 */
    return 0;
}

int main(int argc, char **argv)
{
    fp_proxy px = { 0 };
    const char *control = NULL;
    char err[160];
    int rc = fp_args(&px, argc, argv, &control);
    if (rc) {
        free(px.routes);
        return rc;
    }
    signal(SIGPIPE, SIG_IGN);
    struct event *sigs[2] = { NULL, NULL };
    rc = 1;
    if (!(px.base = event_base_new()) || !(px.units = evbuffer_new())) {
        fprintf(stderr, "faultproxy: event_base_new failed\n");
        goto out;
    }
    if (!(px.control = fp_listen(&px, control, fp_ctl_accept_cb, &px, err, sizeof err)))
        goto fail;
    for (size_t i = 0; i < px.nroutes; i++)
        if (!(px.routes[i].listener = fp_listen(&px, px.routes[i].listen, fp_accept_cb, &px.routes[i], err, sizeof err)))
            goto fail;
    sigs[0] = evsignal_new(px.base, SIGINT, fp_signal_cb, px.base);
    sigs[1] = evsignal_new(px.base, SIGTERM, fp_signal_cb, px.base);
    if (!sigs[0] || !sigs[1] || evsignal_add(sigs[0], NULL) || evsignal_add(sigs[1], NULL)) {
        snprintf(err, sizeof err, "cannot set signal handlers");
        goto fail;
    }
    printf("ready\n");
    fflush(stdout);
    rc = event_base_dispatch(px.base) < 0 ? 1 : 0;
    goto out;
fail:
    fprintf(stderr, "faultproxy: %s\n", err);
out:
    for (int i = 0; i < 2; i++)
        if (sigs[i])
            event_free(sigs[i]);
    fp_proxy_free(&px);
    if (px.units)
        evbuffer_free(px.units);
    if (px.base)
        event_base_free(px.base);
    return rc;
}
