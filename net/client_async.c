/* net/client_async.c — a fetch driven by the caller's event loop (see
 * client_async.h). One state machine per call: attempt member i (connect,
 * send FETCH, wait for its reply or the attempt's budget), then the next,
 * until a range, a request error, or the deadline. */
#include "client_async.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <event2/event.h>

#include "conn.h"
#include "frame.h"
#include "peer.h"

/* Mirrors net/client.c: the least an attempt gets when that much is left,
 * and what is kept back so the member's own "timeout" answer arrives. */
#define CA_ATTEMPT_MIN_MS 200
#define CA_REPLY_GRACE_MS 30

typedef struct fetch_call {
    struct event_base *base;
    client *cl;                 /* parsed server list, preferred member */
    struct seqd_name name;
    uint32_t count;
    uint32_t timeout_ms;
    int64_t deadline_ms;
    int start, k;               /* first member tried, attempts so far */
    int member;                 /* this attempt's member */
    int64_t budget_ms;          /* this attempt's share, sent as its deadline */
    bool noted;                 /* this attempt's failure is already in why */
    conn *c;                    /* this attempt's connection, NULL between */
    struct event *timer;        /* this attempt's budget */
    client_async_fn done;
    void *arg;
    char why[512];              /* reasons of the failed attempts */
} fetch_call;

static void ca_attempt(fetch_call *f);

static int64_t ca_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void ca_note(fetch_call *f, const char *addr, const char *why)
{
    size_t used = strlen(f->why);
    snprintf(f->why + used, sizeof f->why - used, "%s%s: %s", used ? "; " : ": ", addr, why);
}

/* Ends the call: the connection goes (its end callback sees c == NULL and
 * stays quiet), then the caller hears the outcome, then the memory goes. */
static void ca_finish(fetch_call *f, int rc, uint64_t first, const char *err)
{
    conn *c = f->c;
    f->c = NULL;
    if (c)
        conn_close(c, "done");
    event_free(f->timer);
    f->done(f->arg, rc, first, err);
    client_free(f->cl);
    free(f);
}

static void ca_fail_all(fetch_call *f)
{
    char err[700];
    snprintf(err, sizeof err, "no member could serve '%s' within %u ms%s", f->name.s, f->timeout_ms,
             f->why);
    ca_finish(f, CLIENT_EFAIL, 0, err);
}

/* This member is done with for this call; on to the next, if time is left. */
static void ca_next(fetch_call *f, const char *why)
{
    if (!f->noted)
        ca_note(f, client_server(f->cl, f->member), why);
    conn *c = f->c;
    f->c = NULL;
    if (c)
        conn_close(c, why);
    evtimer_del(f->timer);
    if (ca_now_ms() >= f->deadline_ms) {
        ca_fail_all(f);
        return;
    }
    ca_attempt(f);
}

static void ca_on_msg(conn *c, const seqd_msg *m, void *arg)
{
    fetch_call *f = arg;
    (void)c;
    if (m->type == MSG_RANGE && m->u.range.count == f->count && m->u.range.first >= 1) {
        ca_finish(f, CLIENT_OK, m->u.range.first, "");
        return;
    }
    if (m->type != MSG_REPLY_ERR) {
        ca_next(f, "protocol error");
        return;
    }
    char err[600];
    snprintf(err, sizeof err, "%s refused the request: %s: %.*s", conn_addr(c), seqd_err_str(m->u.err.code),
             (int)m->u.err.len, m->u.err.text);
    if (m->u.err.code == ERR_BAD_NAME || m->u.err.code == ERR_BAD_COUNT)
        ca_finish(f, CLIENT_EUSAGE, 0, err);
    else if (m->u.err.code == ERR_EXHAUSTED)
        ca_finish(f, CLIENT_EFAIL, 0, err);
    else
        ca_next(f, seqd_err_str(m->u.err.code));   /* recovering, timeout, storage ... */
}

static void ca_on_open(conn *c, void *arg)
{
    fetch_call *f = arg;
    int64_t left = f->deadline_ms - ca_now_ms() - CA_REPLY_GRACE_MS;
    if (left > f->budget_ms - CA_REPLY_GRACE_MS)
        left = f->budget_ms - CA_REPLY_GRACE_MS;
    seqd_msg m = {.type = MSG_FETCH, .reqid = 1};
    m.u.fetch.timeout_ms = (uint32_t)(left > 1 ? left : 1);
    m.u.fetch.count = f->count;
    m.u.fetch.name = f->name;
    conn_send(c, &m);
}

static void ca_on_end(conn *c, void *arg, const char *why)
{
    fetch_call *f = arg;
    if (f->c != c)
        return;   /* a connection this call already let go of */
    f->c = NULL;
    ca_next(f, why);
}

static void ca_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    ca_next(arg, "no reply");
}

/* Half of what is left, at least CA_ATTEMPT_MIN_MS when that much is left:
 * one hung member cannot eat the whole deadline. */
static void ca_attempt(fetch_call *f)
{
    int n = client_nservers(f->cl);
    int i = (f->start + f->k++) % n;
    f->member = i;
    f->noted = false;
    int64_t left = f->deadline_ms - ca_now_ms();
    int64_t budget = left / 2 > CA_ATTEMPT_MIN_MS ? left / 2 : (left < CA_ATTEMPT_MIN_MS ? left : CA_ATTEMPT_MIN_MS);
    struct sockaddr_storage ss;
    int sslen;
    char err[256];
    if (peer_resolve(client_server(f->cl, i), &ss, &sslen, err, sizeof err) < 0 ||
        !(f->c = conn_connect(f->base, (struct sockaddr *)&ss, sslen, ca_on_open, ca_on_msg, ca_on_end, f))) {
        ca_note(f, client_server(f->cl, i), "cannot connect");
        f->noted = true;
        budget = 20;   /* try the next one from the loop, not recursively */
    }
    f->budget_ms = budget;
    struct timeval tv = {(time_t)(budget / 1000), (suseconds_t)(budget % 1000) * 1000};
    evtimer_add(f->timer, &tv);
}

int client_fetch_async(struct event_base *base, const char *servers, const char *name,
                       uint32_t count, uint32_t timeout_ms, client_async_fn done, void *arg,
                       char *err, size_t errlen)
{
    if (!name || !seqd_name_valid(name, strlen(name))) {
        snprintf(err, errlen, "bad sequence name: use 1 to %u characters of [A-Za-z0-9._-]", SEQD_NAME_MAX);
        return CLIENT_EUSAGE;
    }
    if (!seqd_count_valid(count)) {
        snprintf(err, errlen, "bad count %u: must be 1 to %u", count, SEQD_COUNT_MAX);
        return CLIENT_EUSAGE;
    }
    fetch_call *f = calloc(1, sizeof *f);
    if (!f) {
        snprintf(err, errlen, "out of memory");
        return CLIENT_EUSAGE;
    }
    f->cl = client_new(servers, err, errlen);
    f->timer = evtimer_new(base, ca_timer_cb, f);
    if (!f->cl || !f->timer) {
        client_free(f->cl);
        if (f->timer)
            event_free(f->timer);
        free(f);
        return CLIENT_EUSAGE;
    }
    f->base = base;
    seqd_name_set(&f->name, name, strlen(name));
    f->count = count;
    f->timeout_ms = timeout_ms;
    f->deadline_ms = ca_now_ms() + timeout_ms;
    f->start = client_preferred(f->cl, name);
    f->done = done;
    f->arg = arg;
    ca_attempt(f);
    return CLIENT_OK;
}
