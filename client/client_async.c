/* client/client_async.c — fetches on the caller's event loop (see
 * client_async.h). Each member has one connection and the list of calls
 * currently attempting it; a call is a small state machine: attempt member
 * i (wait for the connection, send FETCH, wait for its reply or the
 * attempt's budget), then the next, until a range, a request error, or
 * the deadline. Replies are matched by reqid, which is fresh per attempt,
 * so a late reply to an attempt that gave up matches nothing. */
#include "client_async.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <event2/event.h>

#include "../net/addr.h"
#include "../net/conn.h"
#include "../net/frame.h"
#include "policy.h"
#include "token.h"

/* Attempt budgets, pauses, verdicts and range checks are client/policy.h's,
 * the same as the blocking client's. */

typedef struct ac_call ac_call;

typedef struct ac_member {
    aclient *ac;
    int index;
    conn *c;                    /* NULL: not connected nor connecting */
    bool open;
    int64_t avoid_until_ms;
    ac_call *calls;             /* calls attempting this member */
    char refused[160];          /* the member's ERROR text on this connection */
} ac_member;

struct aclient {
    struct event_base *base;
    policy_servers list;        /* parsed server list, routing */
    int n;
    ac_member *m;
    uint64_t next_reqid;
    bool oneshot;               /* client_fetch_async: free after the call */
    bool closing;               /* in aclient_free: no new fetches */
    struct event *reaper;       /* frees a oneshot client from the loop */
    char token[SEQD_TOKEN_MAX + 1];   /* sent first on each connection; "" for none */
};

struct ac_call {
    aclient *ac;
    ac_call *prev, *next;       /* in member[member].calls while attempting */
    struct seqd_name name;
    uint32_t count, timeout_ms;
    int64_t deadline_ms;
    int start, k, member;       /* first member, attempts so far, current */
    int64_t budget_ms, pause_ms;
    uint64_t reqid;             /* 0: not sent on this attempt yet */
    struct event *timer;        /* this attempt's budget, or a pause */
    client_async_fn done;
    void *arg;
    char why[512];              /* reasons of the failed attempts */
};

static void ca_attempt(ac_call *f);

static int64_t ca_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void ca_note(ac_call *f, const char *why)
{
    size_t used = strlen(f->why);
    snprintf(f->why + used, sizeof f->why - used, "%s%s: %s", used ? "; " : ": ",
             f->ac->list.s[f->member].addr, why);
}

static void ca_link(ac_member *m, ac_call *f)
{
    f->prev = NULL;
    f->next = m->calls;
    if (m->calls)
        m->calls->prev = f;
    m->calls = f;
}

/* Takes the call off its member's list, if it is on one. */
static void ca_unlink(ac_call *f)
{
    if (f->member < 0)
        return;
    ac_member *m = &f->ac->m[f->member];
    if (f->prev)
        f->prev->next = f->next;
    else if (m->calls == f)
        m->calls = f->next;
    if (f->next)
        f->next->prev = f->prev;
    f->prev = f->next = NULL;
    f->member = -1;
}

/* A oneshot client goes once its call is answered, from a fresh loop turn:
 * the answer may be delivered from inside one of its connections. */
static void ca_reap_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    aclient_free(arg);
}

/* Ends the call: off its member, the caller hears the outcome, memory goes. */
static void ca_finish(ac_call *f, int rc, uint64_t first, const char *err)
{
    aclient *ac = f->ac;
    ca_unlink(f);
    event_free(f->timer);
    f->done(f->arg, rc, first, err);
    free(f);
    if (ac->oneshot)
        event_active(ac->reaper, EV_TIMEOUT, 0);
}

static void ca_fail_all(ac_call *f)
{
    char err[700];
    snprintf(err, sizeof err, "no member could serve '%s' within %u ms%s", f->name.s,
             f->timeout_ms, f->why);
    ca_finish(f, CLIENT_EFAIL, 0, err);
}

static void ca_arm(ac_call *f, int64_t ms)
{
    struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000 };
    evtimer_add(f->timer, &tv);
}

/* This attempt failed; the member is passed over as a first choice for a
 * while, and the call moves on to the next member if time is left. */
static void ca_next(ac_call *f, const char *why)
{
    ac_member *m = &f->ac->m[f->member];
    m->avoid_until_ms = ca_now_ms() + POLICY_AVOID_MS;
    ca_note(f, why);
    ca_unlink(f);
    evtimer_del(f->timer);
    if (ca_now_ms() >= f->deadline_ms) {
        ca_fail_all(f);
        return;
    }
    if (f->k % f->ac->n == 0) {
        /* A whole pass failed: wait a little, so that a cluster that is
         * starting is not hammered; the timer then makes the attempt. */
        int64_t p = f->pause_ms, left = f->deadline_ms - ca_now_ms();
        f->pause_ms = policy_next_pause(p);
        ca_arm(f, p < left ? p : left);
        return;
    }
    ca_attempt(f);
}

/* The member's connection is open: send this attempt's FETCH, carrying
 * what the attempt has left so that the member stops working in time. */
static void ca_send(ac_call *f)
{
    ac_member *m = &f->ac->m[f->member];
    int64_t left = f->deadline_ms - ca_now_ms() - POLICY_REPLY_GRACE_MS;
    if (left > f->budget_ms - POLICY_REPLY_GRACE_MS)
        left = f->budget_ms - POLICY_REPLY_GRACE_MS;
    seqd_msg msg = { .type = MSG_FETCH, .reqid = ++f->ac->next_reqid };
    msg.u.fetch.timeout_ms = (uint32_t)(left > 1 ? left : 1);
    msg.u.fetch.count = f->count;
    msg.u.fetch.name = f->name;
    f->reqid = msg.reqid;
    conn_send(m->c, &msg);
}

static ac_call *ca_find(ac_member *m, uint64_t reqid)
{
    for (ac_call *f = m->calls; f; f = f->next)
        if (f->reqid == reqid)
            return f;
    return NULL;
}

/* A reply: a range ends the call, a request error ends it too, anything
 * else (recovering, timeout, storage) sends it on to the next member. */
static void ca_on_msg(conn *c, const seqd_msg *msg, void *arg)
{
    ac_member *m = arg;
    if (msg->type == MSG_ERROR) {   /* the member closes the connection after it */
        snprintf(m->refused, sizeof m->refused, "%.*s", (int)msg->u.err.len, msg->u.err.text);
        return;
    }
    ac_call *f = ca_find(m, msg->reqid);
    if (!f)
        return;   /* an attempt that already gave up */
    if (policy_range_ok(msg, f->count)) {
        m->avoid_until_ms = 0;
        ca_finish(f, CLIENT_OK, msg->u.range.first, "");
        return;
    }
    if (msg->type != MSG_REPLY_ERR) {
        ca_next(f, "protocol error");
        return;
    }
    char why[160];
    enum policy_verdict v = policy_judge(msg, why, sizeof why);
    if (v == POLICY_NEXT) {
        ca_next(f, why);
        return;
    }
    char err[600];
    policy_stop_message(msg, conn_addr(c), f->name.s, f->count, err, sizeof err);
    ca_finish(f, v == POLICY_USAGE ? CLIENT_EUSAGE : CLIENT_EFAIL, 0, err);
}

static void ca_on_open(conn *c, void *arg)
{
    ac_member *m = arg;
    m->open = true;
    m->refused[0] = '\0';
    if (m->ac->token[0]) {   /* one-way, ahead of every request (client/token.h) */
        seqd_msg t = {.type = MSG_TOKEN};
        t.u.token.token = m->ac->token;
        t.u.token.len = (uint8_t)strlen(m->ac->token);
        conn_send(c, &t);
    }
    for (ac_call *f = m->calls; f; f = f->next)
        if (f->reqid == 0)
            ca_send(f);
}

/* The connection is gone: every call attempting this member moves on. The
 * list is taken whole first, since moving a call may start a new
 * connection to this very member (a one-member list). */
static void ca_on_end(conn *c, void *arg, const char *why)
{
    ac_member *m = arg;
    if (m->c != c)
        return;   /* a connection already let go of */
    m->c = NULL;
    m->open = false;
    ac_call *list = m->calls;
    m->calls = NULL;
    char reason[200];
    snprintf(reason, sizeof reason, "%s", m->refused[0] ? m->refused : why);
    while (list) {
        ac_call *f = list;
        list = f->next;
        f->prev = f->next = NULL;
        ca_link(m, f);   /* so that ca_next's unlink finds it */
        ca_next(f, reason);
    }
}

static void ca_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    ac_call *f = arg;
    (void)fd;
    (void)what;
    if (f->member >= 0)
        ca_next(f, f->reqid ? "no reply" : "cannot connect");
    else
        ca_attempt(f);   /* the pause between passes is over */
}

/* Opens the member's connection if it has none. -1 if that failed at once. */
static int ca_connect(ac_member *m)
{
    if (m->c)
        return 0;
    struct sockaddr_storage ss;
    int sslen;
    char err[256];
    if (addr_resolve(m->ac->list.s[m->index].addr, &ss, &sslen, err, sizeof err) < 0)
        return -1;
    m->c = conn_connect(m->ac->base, (struct sockaddr *)&ss, sslen, ca_on_open, ca_on_msg,
                        ca_on_end, m);
    m->open = false;
    return m->c ? 0 : -1;
}

/* Half of what is left, at least POLICY_ATTEMPT_MIN_MS when that much is left:
 * one hung member cannot eat the whole deadline. */
static void ca_attempt(ac_call *f)
{
    aclient *ac = f->ac;
    int i = (f->start + f->k++) % ac->n;
    ac_member *m = &ac->m[i];
    int64_t left = f->deadline_ms - ca_now_ms();
    int64_t budget = policy_attempt_budget(left);
    f->member = i;
    f->reqid = 0;
    f->budget_ms = budget;
    ca_link(m, f);
    if (ca_connect(m) < 0)
        budget = 1;   /* fails from the loop, not recursively */
    else if (m->open)
        ca_send(f);
    ca_arm(f, budget);
}

static bool ca_not_avoided(const void *ctx, int i)
{
    const aclient *ac = ctx;
    return ac->m[i].avoid_until_ms <= ca_now_ms();
}

aclient *aclient_new(struct event_base *base, const char *servers, char *err, size_t errlen)
{
    aclient *ac = calloc(1, sizeof *ac);
    if (!ac) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    ac->base = base;
    if (policy_servers_parse(&ac->list, servers, err, errlen) != 0) {
        free(ac);
        return NULL;
    }
    ac->n = ac->list.n;
    ac->m = calloc((size_t)ac->n, sizeof *ac->m);
    ac->reaper = event_new(base, -1, 0, ca_reap_cb, ac);
    if (!ac->m || !ac->reaper) {
        snprintf(err, errlen, "out of memory");
        aclient_free(ac);
        return NULL;
    }
    for (int i = 0; i < ac->n; i++)
        ac->m[i] = (ac_member){ .ac = ac, .index = i };
    if (seqd_token_from_env(ac->token, err, errlen) < 0) {
        aclient_free(ac);
        return NULL;
    }
    return ac;
}

int aclient_set_token(aclient *ac, const char *token, char *err, size_t errlen)
{
    size_t len = token ? strlen(token) : 0;
    if (len && !seqd_token_valid(token, len)) {
        snprintf(err, errlen, "bad token: want %d to %d printable characters without blanks",
                 SEQD_TOKEN_MIN, SEQD_TOKEN_MAX);
        return CLIENT_EUSAGE;
    }
    memcpy(ac->token, token ? token : "", len + 1);   /* for connections opened from now on */
    return CLIENT_OK;
}

void aclient_free(aclient *ac)
{
    if (!ac)
        return;
    ac->closing = true;
    ac->oneshot = false;   /* being freed already */
    for (int i = 0; ac->m && i < ac->n; i++) {
        ac_member *m = &ac->m[i];
        while (m->calls)
            ca_finish(m->calls, CLIENT_EFAIL, 0, "client closed");
        conn *c = m->c;
        m->c = NULL;
        if (c)
            conn_close(c, "client closed");
    }
    if (ac->reaper)
        event_free(ac->reaper);
    free(ac->m);
    free(ac);
}

int aclient_fetch(aclient *ac, const char *name, uint32_t count, uint32_t timeout_ms,
                  client_async_fn done, void *arg, char *err, size_t errlen)
{
    if (policy_check_request(name, count, err, errlen) != CLIENT_OK)
        return CLIENT_EUSAGE;
    if (ac->closing) {
        snprintf(err, errlen, "client closed");
        return CLIENT_EUSAGE;
    }
    ac_call *f = calloc(1, sizeof *f);
    if (f)
        f->timer = evtimer_new(ac->base, ca_timer_cb, f);
    if (!f || !f->timer) {
        free(f);
        snprintf(err, errlen, "out of memory");
        return CLIENT_EUSAGE;
    }
    f->ac = ac;
    f->member = -1;
    seqd_name_set(&f->name, name, strlen(name));
    f->count = count;
    f->timeout_ms = timeout_ms;
    f->deadline_ms = ca_now_ms() + timeout_ms;
    f->start = policy_route(&ac->list, name, ca_not_avoided, ac);
    f->pause_ms = POLICY_PASS_PAUSE_MS;
    f->done = done;
    f->arg = arg;
    ca_attempt(f);
    return CLIENT_OK;
}

int client_fetch_async(struct event_base *base, const char *servers, const char *name,
                       uint32_t count, uint32_t timeout_ms, client_async_fn done, void *arg,
                       char *err, size_t errlen)
{
    aclient *ac = aclient_new(base, servers, err, errlen);
    if (!ac)
        return CLIENT_EUSAGE;
    int rc = aclient_fetch(ac, name, count, timeout_ms, done, arg, err, errlen);
    if (rc != CLIENT_OK) {
        aclient_free(ac);
        return rc;
    }
    ac->oneshot = true;
    return CLIENT_OK;
}
