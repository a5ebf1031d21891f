/* client/replace.c — the new host's half of --replaces (replace.h). */
#include "replace.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "client.h"
#include "client_admin.h"
#include "../net/frame.h"
#include "policy.h"

int replace_parse_set(uint64_t epoch, uint64_t digest, const char *slots, size_t len, q_set *out)
{
    memset(out, 0, sizeof *out);
    out->epoch = epoch;
    size_t i = 0;
    while (i < len) {
        size_t j = i;
        while (j < len && slots[j] != ',')
            j++;
        if (j == i || j - i > SEQD_ADDR_MAX || out->n == SEQD_MAX_MEMBERS)
            return -1;
        memcpy(out->addr[out->n], slots + i, j - i);
        out->addr[out->n++][j - i] = '\0';
        i = j + 1;
    }
    if (out->n == 0 || epoch_digest(out) != digest)
        return -1;
    out->digest = digest;
    return 0;
}

/* What one member said this round. */
typedef struct answer {
    bool up;
    seqd_msg rep;          /* SWITCH_REPLY (slots copied below) */
    q_set set;             /* its set, parsed */
    char last_old[SEQD_ADDR_MAX + 1], last_new[SEQD_ADDR_MAX + 1];   /* its last switch */
    char why[256];         /* when !up, or a refusal */
} answer;

static void say(const replace_req *rq, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(const replace_req *rq, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (rq->say)
        rq->say(rq->say_arg, line);
}

/* One SWITCH to member i of c, authenticated first (its slot from its
 * STATUS) when there is a secret. 0 with a SWITCH_REPLY in *a, else -1
 * with the reason in a->why (a refusal keeps its text). */
static int switch_one(client *c, int i, const replace_req *rq, uint8_t op, const q_switch *sw,
                      answer *a)
{
    static uint8_t scratch[SEQD_MAX_FRAME];
    uint32_t ms = rq->timeout_ms;
    if (rq->secret) {
        struct seqd_status st;
        if (client_status(c, i, ms, &st, a->why, sizeof a->why) != CLIENT_OK ||
            client_admin_auth(c, i, st.self_index, rq->secret, ms, a->why, sizeof a->why) != CLIENT_OK)
            return -1;
    }
    seqd_msg req = {.type = MSG_SWITCH};
    req.u.sw.op = op;
    req.u.sw.flags = rq->force ? SWITCH_FORCE : 0;
    req.u.sw.slot = (uint8_t)sw->slot;
    req.u.sw.epoch = sw->epoch;
    req.u.sw.old_inc = sw->old_inc;
    req.u.sw.old_addr = sw->old_addr;
    req.u.sw.old_len = (uint8_t)strlen(sw->old_addr);
    req.u.sw.new_addr = sw->new_addr;
    req.u.sw.new_len = (uint8_t)strlen(sw->new_addr);
    if (client_raw(c, i, &req, &a->rep, scratch, ms, a->why, sizeof a->why) != CLIENT_OK)
        return -1;
    if (a->rep.type != MSG_SWITCH_REPLY) {
        if (a->rep.type == MSG_REPLY_ERR || a->rep.type == MSG_ERROR)
            snprintf(a->why, sizeof a->why, "%.*s", (int)a->rep.u.err.len, a->rep.u.err.text);
        else
            snprintf(a->why, sizeof a->why, "unexpected %s", msg_type_str(a->rep.type));
        return -1;
    }
    if (replace_parse_set(a->rep.u.sw_reply.epoch, a->rep.u.sw_reply.digest, a->rep.u.sw_reply.slots,
                          a->rep.u.sw_reply.slots_len, &a->set) < 0) {
        snprintf(a->why, sizeof a->why, "its set does not match its digest");
        return -1;
    }
    snprintf(a->last_old, sizeof a->last_old, "%.*s", (int)a->rep.u.sw_reply.last_old_len,
             a->rep.u.sw_reply.last_old ? a->rep.u.sw_reply.last_old : "");
    snprintf(a->last_new, sizeof a->last_new, "%.*s", (int)a->rep.u.sw_reply.last_new_len,
             a->rep.u.sw_reply.last_new ? a->rep.u.sw_reply.last_new : "");
    a->rep.u.sw_reply.slots = a->rep.u.sw_reply.last_old = a->rep.u.sw_reply.last_new = NULL;
    return 0;   /* (they pointed into scratch) */
}

/* The switch the answers call for: from the highest epoch E at which a
 * member still has OLD (or from which a member holds OLD -> NEW), OLD's
 * slot there, and the highest incarnation counter of OLD recorded. */
static int plan_switch(const replace_req *rq, const answer *as, int n, q_set *base, q_switch *sw,
                       char *err, size_t errlen)
{
    bool have = false;
    for (int i = 0; i < n; i++) {
        const answer *a = &as[i];
        if (!a->up || a->rep.u.sw_reply.slot == 0xff)
            continue;
        q_set s = a->set;
        int slot = a->rep.u.sw_reply.slot;
        if (a->rep.u.sw_reply.state == SWITCH_RECORDED) {
            if (s.epoch == 0)
                continue;
            s.epoch--;
            snprintf(s.addr[slot], sizeof s.addr[slot], "%s", rq->old);
            s.digest = epoch_digest(&s);
        } else if (a->rep.u.sw_reply.state != SWITCH_AT_EPOCH) {
            continue;
        }
        if (!have || s.epoch > base->epoch) {
            *base = s;
            sw->epoch = s.epoch;
            sw->slot = slot;
            sw->old_inc = 0;
            have = true;
        }
    }
    if (!have) {
        snprintf(err, errlen, "no member answered with %s in its set", rq->old);
        return -1;
    }
    for (int i = 0; i < n; i++)
        if (as[i].up && as[i].rep.u.sw_reply.state == SWITCH_AT_EPOCH &&
            as[i].set.epoch == base->epoch && as[i].rep.u.sw_reply.old_inc > sw->old_inc)
            sw->old_inc = as[i].rep.u.sw_reply.old_inc;
    snprintf(sw->old_addr, sizeof sw->old_addr, "%s", rq->old);
    snprintf(sw->new_addr, sizeof sw->new_addr, "%s", rq->self);
    return 0;
}

#define REPLACE_ALIVE_ROUNDS 5
#define DATADIR_JOIN_MAX (SEQD_MAX_MEMBERS * (SEQD_ADDR_MAX + 1) + 1)

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int replace_round(client *c, const replace_req *rq, answer *as, q_set *next, q_switch *sw,
                         bool *done, char *err, size_t errlen)
{
    int n = rq->npeers;
    q_switch probe = {0};
    snprintf(probe.old_addr, sizeof probe.old_addr, "%s", rq->old);
    snprintf(probe.new_addr, sizeof probe.new_addr, "%s", rq->self);
    for (int i = 0; i < n; i++)
        as[i].up = switch_one(c, i, rq, SWITCH_PROBE, &probe, &as[i]) == 0;
    q_set base;
    if (plan_switch(rq, as, n, &base, sw, err, errlen) < 0) {
        int answered = 0;
        for (int i = 0; i < n; i++)
            answered += as[i].up;
        if (answered > 0) {   /* they answered, and none has OLD: not a member */
            snprintf(err, errlen, "%s is not a member (%s has %s)", rq->old, rq->peers[0],
                     as[0].up ? "answered without it" : "not answered");
            for (int i = 0; i < n; i++)
                if (as[i].up && strcmp(as[i].last_old, rq->old) == 0) {
                    snprintf(err, errlen, "%s was replaced by %s at epoch %llu already (%s says so)",
                             rq->old, as[i].last_new, (unsigned long long)as[i].set.epoch, rq->peers[i]);
                    return -1;
                }
            for (int i = 0; i < n; i++)
                if (as[i].up) {
                    char set[DATADIR_JOIN_MAX];
                    epoch_join(&as[i].set, set, sizeof set);
                    snprintf(err, errlen, "%s is not a member of the cluster (%s: members %s at epoch %llu)",
                             rq->old, rq->peers[i], set, (unsigned long long)as[i].set.epoch);
                    break;
                }
            return -1;
        }
        say(rq, "waiting: %s", err);
        return 0;
    }
    if (epoch_slot(&base, rq->self, strlen(rq->self)) >= 0) {
        snprintf(err, errlen, "%s is a member already", rq->self);
        return -1;
    }
    if (base.n < 3 || base.n % 2 == 0) {
        snprintf(err, errlen, "replacing a member needs an odd member set of 3 or more (this one has %d)",
                 base.n);
        return -1;
    }
    if (epoch_apply(&base, sw, next, err, errlen) < 0)
        return -1;
    for (int i = 0; i < n && !rq->force; i++)
        if (as[i].up && as[i].rep.u.sw_reply.old_alive && as[i].rep.u.sw_reply.state == SWITCH_AT_EPOCH) {
            snprintf(err, errlen, "%s is alive according to %s (its link is up or it spoke within 2R): "
                     "stop it first, or give --force-replace if it is cut off for good (it can then no "
                     "longer be counted: the epoch check)", rq->old, rq->peers[i]);
            say(rq, "waiting: %s", err);
            return -3;   /* nothing recorded: ask again, for a few seconds */
        }
    int recorded = 0, other = 0;
    char waiting[1024] = "";
    for (int i = 0; i < n; i++) {
        answer *a = &as[i];
        if (a->up && a->rep.u.sw_reply.state == SWITCH_AT_EPOCH && a->set.epoch == base.epoch) {
            answer r = {0};
            if (switch_one(c, i, rq, SWITCH_RECORD, sw, &r) == 0) {
                *a = r;
                a->up = true;
            } else {
                a->up = false;
                snprintf(a->why, sizeof a->why, "%s", r.why);
                if (strstr(r.why, "is alive") || strstr(r.why, "started incarnation")) {
                    snprintf(err, errlen, "%s refused the switch: %s", rq->peers[i], r.why);
                    return -2;   /* drop what was recorded */
                }
            }
        }
        if (a->up && a->set.epoch == next->epoch && a->set.digest == next->digest)
            recorded++;
        else if (a->up && a->set.epoch > base.epoch)
            other++;
        else {
            size_t w = strlen(waiting);
            snprintf(waiting + w, sizeof waiting - w, "%s%s (%s)", w ? ", " : "", rq->peers[i],
                     a->up ? "at an earlier epoch" : a->why);
        }
    }
    int others = base.n - 1;
    if (recorded + other > others)
        other = others - recorded;   /* --peers named more hosts than the set has */
    switch (epoch_switch_verdict(base.n, recorded, other)) {
    case EPOCH_SWITCH_COMPLETE:
        say(rq, "switch complete: %d of the %d other members recorded epoch %llu (slot %d: %s -> %s)",
            recorded, others, (unsigned long long)next->epoch, sw->slot, sw->old_addr, sw->new_addr);
        *done = true;
        return 0;
    case EPOCH_SWITCH_LOST:
        snprintf(err, errlen, "the switch can no longer complete: %d of the %d other members hold "
                 "another set of epoch %llu or later (a racing replacement?)", other, others,
                 (unsigned long long)next->epoch);
        return -2;
    case EPOCH_SWITCH_WAIT:
        break;
    }
    say(rq, "waiting: %d of the %d other members recorded the switch to epoch %llu, %d needed; "
        "waiting for %s", recorded, others, (unsigned long long)next->epoch,
        epoch_recorders_needed(base.n), waiting[0] ? waiting : "(none named by --peers)");
    return 0;
}

/* The new host never voted: its recorders may go back (quorum/epoch.h). */
static void replace_drop(client *c, const replace_req *rq, const q_switch *sw)
{
    for (int i = 0; i < rq->npeers; i++) {
        answer a = {0};
        if (switch_one(c, i, rq, SWITCH_DROP, sw, &a) < 0)
            say(rq, "could not drop the switch at %s: %s (it stays at the new epoch, refusing the "
                "old one, until a switch completes or it is dropped)", rq->peers[i], a.why);
    }
}

int client_learn_set(const replace_req *rq, q_set *set, q_switch *sw)
{
    char joined[SEQD_MAX_MEMBERS * (SEQD_ADDR_MAX + 1) + 1] = "", err[256];
    for (int i = 0; i < rq->npeers; i++) {
        size_t w = strlen(joined);
        snprintf(joined + w, sizeof joined - w, "%s%s", i ? "," : "", rq->peers[i]);
    }
    client *c = rq->npeers > 0 ? client_new(joined, err, sizeof err) : NULL;
    if (!c)
        return 0;
    q_switch probe = {0};
    snprintf(probe.old_addr, sizeof probe.old_addr, "%s", rq->self);
    snprintf(probe.new_addr, sizeof probe.new_addr, "%s", rq->self);
    int found = 0;
    for (int i = 0; i < rq->npeers; i++) {
        answer a = {0};
        if (switch_one(c, i, rq, SWITCH_PROBE, &probe, &a) < 0 || a.set.epoch == 0 ||
            a.rep.u.sw_reply.last_old_len == 0 || epoch_slot(&a.set, rq->self, strlen(rq->self)) < 0 ||
            (found && a.set.epoch <= set->epoch))
            continue;
        *set = a.set;
        *sw = (q_switch){.epoch = a.set.epoch - 1, .slot = a.rep.u.sw_reply.last_slot,
                         .old_inc = a.rep.u.sw_reply.last_old_inc};
        memcpy(sw->old_addr, a.last_old, sizeof sw->old_addr);
        memcpy(sw->new_addr, a.last_new, sizeof sw->new_addr);
        found = 1;
    }
    client_free(c);
    return found;
}

int client_replace(const replace_req *rq, q_set *next, q_switch *sw, char *err, size_t errlen)
{
    if (rq->npeers < 1 || rq->npeers > SEQD_MAX_MEMBERS) {
        snprintf(err, errlen, "--replaces needs --peers naming the other members");
        return -1;
    }
    char joined[SEQD_MAX_MEMBERS * (SEQD_ADDR_MAX + 1) + 1] = "";
    for (int i = 0; i < rq->npeers; i++) {
        size_t w = strlen(joined);
        snprintf(joined + w, sizeof joined - w, "%s%s", i ? "," : "", rq->peers[i]);
    }
    client *c = client_new(joined, err, errlen);
    if (!c)
        return -1;
    answer as[SEQD_MAX_MEMBERS];
    int rc = -1, alive = 0;
    for (int round = 0; rq->max_rounds == 0 || round < rq->max_rounds; round++) {
        bool done = false;
        memset(as, 0, sizeof as);
        rc = replace_round(c, rq, as, next, sw, &done, err, errlen);
        if (rc == -2)
            replace_drop(c, rq, sw);
        /* A member killed a moment ago still looks alive for 2R: refuse
         * only when OLD keeps looking alive. */
        alive = rc == -3 ? alive + 1 : 0;
        if ((rc < 0 && rc != -3) || alive >= REPLACE_ALIVE_ROUNDS || done)
            break;
        sleep_ms(1000);
        rc = -1;
        snprintf(err, errlen, "the switch did not complete");
    }
    client_free(c);
    return rc < 0 ? -1 : 0;
}
