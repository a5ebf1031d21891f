/* core/member_epoch.c — a member's side of replacing a member (DESIGN.md
 * §6): the epoch it is at, what a peer of another epoch is told, learning
 * a switch from a peer, and the SWITCH requests of a `--replaces` host.
 * The rules and why they are safe: quorum/epoch.h; the gate on every peer
 * request is member_request in member.c.
 */
#include "member_impl.h"

#include <assert.h>
#include <stdio.h>
#include <string.h>

#include "../net/addr.h"

void member_set_views(member *m)
{
    for (int i = 0; i < m->set.n; i++)
        m->slot_addr[i] = m->set.addr[i];
    m->cfg.members = m->slot_addr;
    m->cfg.set_digest = m->set.digest;
    epoch_join(&m->set, m->joined, sizeof m->joined);
    m->cfg.members_joined = m->joined;
}

/* What a hello of another epoch is told (proto.h, HELLO): this member's
 * (epoch, digest) and the switch that led to it, which a member at exactly
 * the epoch before adopts and the replaced host exits on. */
void member_epoch_text(const member *m, char *why, size_t whylen)
{
    int n = snprintf(why, whylen, "epoch %llu digest %016llx", (unsigned long long)m->set.epoch,
                     (unsigned long long)m->set.digest);
    if (m->set.epoch > 0 && n > 0 && (size_t)n < whylen)
        snprintf(why + n, whylen - (size_t)n, " switch %d %llu %s %s", m->sw.slot,
                 (unsigned long long)m->sw.old_inc, m->sw.old_addr, m->sw.new_addr);
}

static bool member_addr_ok(const char *a);

uint64_t member_epoch(const member *m) { return m->set.epoch; }

/* OLD counts as alive when its link is up or it said anything within 2R:
 * replacing it then needs SWITCH_FORCE (the epoch check still cuts it off,
 * but an operator who named the wrong host should hear about it). */
static bool member_slot_alive(const member *m, int slot, uint64_t *ago_ms)
{
    uint64_t now = member_now_us(m), heard = m->heard_us[slot];
    *ago_ms = heard ? (now - heard) / 1000 : UINT64_MAX;
    bool up = slot != m->cfg.self && m->peers && m->peers[slot] && peer_up(m->peers[slot]);
    return up || (heard && now - heard < 2 * m->env.round_us);
}

/* The highest incarnation counter recorded for a slot. */
static uint64_t member_recorded_counter(const member *m, int slot)
{
    struct seqd_inc any = {.counter = UINT64_MAX}, rec;
    bool stopped;
    inc_recorded_before(m->inc, slot, &any, &rec, &stopped);
    return rec.counter;
}

/* Moves this member to `next` (reached by sw from the set now, or back
 * from it by a drop): durably first when it has an identity — a member
 * that forgot a switch after a crash would vote at the old epoch again —
 * then the link of the switched slot is pointed at its new host. */
static int member_adopt(member *m, const q_set *next, const q_switch *sw, const char *how)
{
    assert(next->n == m->set.n && next->epoch != m->set.epoch);
    bool forward = next->epoch > m->set.epoch;
    /* Forward: sw leads to next, and what led here becomes the previous
     * switch. Back (a drop): the previous switch leads to next again. */
    q_switch led = forward ? *sw : m->prev_sw;
    bool has_led = forward || m->has_prev || next->epoch == 0;
    q_switch before = m->sw;
    bool has_before = forward && m->set.epoch > 0;
    assert(has_led);
    if (m->cfg.mode == RECOVERY_INITIALIZED &&
        member_write_identity(m, &m->cfg.cid, next, &led, has_before ? &before : NULL) < 0)
        return -1;
    int slot = sw->slot;
    char was[SEQD_ADDR_MAX + 1];
    snprintf(was, sizeof was, "%s", m->set.addr[slot]);
    m->set = *next;
    m->sw = led;
    m->prev_sw = before;
    m->has_prev = has_before;
    member_set_views(m);
    m->heard_us[slot] = 0;
    if (slot != m->cfg.self) {
        char err[256];
        peer_free(m->peers[slot]);
        m->peers[slot] = NULL;
        if (member_connect_peer(m, slot, err, sizeof err) < 0)
            member_log(m, MLOG_ERROR, "cannot link to %s: %s", m->set.addr[slot], err);
    }
    member_log(m, MLOG_WARN, "epoch %llu (%s): slot %d is %s (was %s); members now %s",
               (unsigned long long)m->set.epoch, how, slot, m->set.addr[slot], was, m->joined);
    return 0;
}

/* A peer refused our hello with its epoch (member_epoch_text). A member
 * at exactly the epoch its switch leads from records it (it learns the
 * new set without a restart); the host that switch replaced exits. */
void member_told_epoch(member *m, int who, const char *why)
{
    const char *s = strstr(why, "epoch ");
    unsigned long long e, d, inc;
    int used = 0, slot;
    if (!s || sscanf(s, "epoch %llu digest %llx%n", &e, &d, &used) != 2)
        return;
    if (e == m->set.epoch && d == m->set.digest)
        return;
    char fmt[64];
    snprintf(fmt, sizeof fmt, " switch %%d %%llu %%%us %%%us", SEQD_ADDR_MAX, SEQD_ADDR_MAX);
    q_switch sw = {0};
    bool has = sscanf(s + used, fmt, &slot, &inc, sw.old_addr, sw.new_addr) == 4;
    sw.epoch = e - 1;
    sw.slot = slot;
    sw.old_inc = inc;
    q_set next;
    char reason[256];
    const char *self = m->cfg.members[m->cfg.self];
    if (has && e >= 1 && sw.epoch == m->set.epoch && slot == m->cfg.self && strcmp(sw.old_addr, self) == 0) {
        member_log(m, MLOG_ERROR, "replaced by %s at epoch %llu (told by %s): this host's slot belongs "
                      "to the new member now and it must not serve again; exiting (remove this data "
                      "directory, or keep it for forensics, but do not start it again)",
                   sw.new_addr, e, m->cfg.members[who]);
        member_die(m);
        return;
    }
    if (has && e >= 1 && sw.epoch == m->set.epoch && sw.slot != who && member_addr_ok(sw.new_addr) &&
        epoch_apply(&m->set, &sw, &next, reason, sizeof reason) == 0 && next.digest == d) {
        char how[SEQD_ADDR_MAX + 64];
        snprintf(how, sizeof how, "learned from %s", m->cfg.members[who]);
        member_adopt(m, &next, &sw, how);
        return;
    }
    uint64_t now = member_now_us(m);
    if (now - m->epoch_logged_us >= 10000000u) {
        m->epoch_logged_us = now;
        member_log(m, MLOG_WARN, "peer %s is at epoch %llu, this member at epoch %llu: %s",
                   m->cfg.members[who], e, (unsigned long long)m->set.epoch,
                   e < m->set.epoch ? "it will learn this member's set"
                   : e == m->set.epoch ? "a different switch of the same epoch (see seqd status)"
                                       : "this member missed a replacement it cannot adopt from "
                                         "here (more than one epoch behind, or no switch from its epoch)");
    }
}

/* An address a switch may name: HOST:PORT, nothing an IDENTITY line or a
 * comma-joined set could not carry. */
static bool member_addr_ok(const char *a)
{
    char host[SEQD_ADDR_MAX + 1];
    uint16_t port;
    return strpbrk(a, ", \t\n") == NULL && addr_split(a, strlen(a), host, sizeof host, &port) == 0;
}

/* Whether this member's epoch came from exactly sw (any old incarnation). */
static bool member_holds(const member *m, const q_switch *sw)
{
    return m->set.epoch == sw->epoch + 1 && m->sw.slot == sw->slot &&
           strcmp(m->sw.old_addr, sw->old_addr) == 0 && strcmp(m->sw.new_addr, sw->new_addr) == 0;
}

static int member_switch_record(member *m, const q_switch *sw, bool force, char *why, size_t whylen)
{
    q_set next;
    uint64_t ago;
    if (m->cfg.mode != RECOVERY_INITIALIZED) {
        snprintf(why, whylen, "%s has no identity yet (it is empty or prepared): it cannot record "
                 "a switch durably", m->cfg.members[m->cfg.self]);
        return ERR_SWITCH_REFUSED;
    }
    if (sw->slot == m->cfg.self) {
        snprintf(why, whylen, "%s is the member being replaced", sw->old_addr);
        return ERR_SWITCH_REFUSED;
    }
    if (epoch_apply(&m->set, sw, &next, why, whylen) < 0)
        return ERR_SWITCH_REFUSED;
    if (!force && member_slot_alive(m, sw->slot, &ago)) {
        snprintf(why, whylen, "%s is alive (%s): replacing a running member needs --force-replace "
                 "(it is then cut off by the epoch check)", sw->old_addr,
                 m->peers[sw->slot] && peer_up(m->peers[sw->slot]) ? "its link is up" : "heard from it lately");
        return ERR_SWITCH_REFUSED;
    }
    uint64_t rec = member_recorded_counter(m, sw->slot);
    if (rec > sw->old_inc) {
        snprintf(why, whylen, "%s started incarnation %llu after the probe (this switch names %llu): "
                 "it is alive", sw->old_addr, (unsigned long long)rec, (unsigned long long)sw->old_inc);
        return ERR_SWITCH_REFUSED;
    }
    char how[SEQD_ADDR_MAX + 64];
    snprintf(how, sizeof how, "recorded the switch for %s", sw->new_addr);
    return member_adopt(m, &next, sw, how) < 0 ? ERR_STORAGE : 0;
}

/* Only an incomplete switch may be dropped, and only the new host, which
 * never voted, asks for it (quorum/epoch.h). Back at epoch E > 0 the
 * member needs the switch that led to E (IDENTITY's prev_switch): one
 * that does not have it (it learned E+1 without having held E) refuses. */
static int member_switch_drop(member *m, const q_switch *sw, char *why, size_t whylen)
{
    q_set prev;
    if ((sw->epoch > 0 && !m->has_prev) || epoch_revert(&m->set, sw, &prev) < 0) {
        snprintf(why, whylen, "cannot drop the switch of epoch %llu here (this member is at epoch "
                 "%llu and does not know what led to epoch %llu)", (unsigned long long)sw->epoch,
                 (unsigned long long)m->set.epoch, (unsigned long long)sw->epoch);
        return ERR_SWITCH_REFUSED;
    }
    char how[SEQD_ADDR_MAX + 64];
    snprintf(how, sizeof how, "dropped the switch for %s, which cannot complete", sw->new_addr);
    return member_adopt(m, &prev, sw, how) < 0 ? ERR_STORAGE : 0;
}

int member_switch(member *m, const seqd_msg *req, seqd_msg *reply, char *slots_buf,
                  size_t slots_len, char *why, size_t whylen)
{
    assert(req->type == MSG_SWITCH);
    q_switch sw = {.epoch = req->u.sw.epoch, .slot = req->u.sw.slot, .old_inc = req->u.sw.old_inc};
    if (req->u.sw.old_len == 0 || req->u.sw.new_len == 0) {
        snprintf(why, whylen, "a switch names the old and the new member");
        return ERR_BAD_REQUEST;
    }
    memcpy(sw.old_addr, req->u.sw.old_addr, req->u.sw.old_len);
    memcpy(sw.new_addr, req->u.sw.new_addr, req->u.sw.new_len);
    if (!member_addr_ok(sw.old_addr) || !member_addr_ok(sw.new_addr)) {
        snprintf(why, whylen, "a switch names two HOST:PORT addresses");
        return ERR_BAD_REQUEST;
    }
    if (m->stopping) {
        snprintf(why, whylen, "shutting down");
        return ERR_SHUTDOWN;
    }
    int err = 0;
    if (req->u.sw.op == SWITCH_RECORD && !member_holds(m, &sw) && sw.epoch == m->set.epoch)
        err = member_switch_record(m, &sw, req->u.sw.flags & SWITCH_FORCE, why, whylen);
    else if (req->u.sw.op == SWITCH_DROP && member_holds(m, &sw))
        err = member_switch_drop(m, &sw, why, whylen);
    else if (req->u.sw.op != SWITCH_PROBE && req->u.sw.op != SWITCH_RECORD && req->u.sw.op != SWITCH_DROP) {
        snprintf(why, whylen, "unknown switch op %u", req->u.sw.op);
        return ERR_BAD_REQUEST;
    }
    if (err)
        return err;
    int slot = epoch_slot(&m->set, sw.old_addr, strlen(sw.old_addr));
    q_switch mine = m->sw;
    bool holds = m->set.epoch > 0 && strcmp(mine.new_addr, sw.new_addr) == 0 &&
                 strcmp(mine.old_addr, sw.old_addr) == 0;
    uint64_t ago;
    *reply = (seqd_msg){.type = MSG_SWITCH_REPLY, .reqid = req->reqid};
    reply->u.sw_reply.state = holds ? SWITCH_RECORDED : slot >= 0 ? SWITCH_AT_EPOCH : SWITCH_OTHER;
    if (holds)
        slot = mine.slot;
    reply->u.sw_reply.slot = slot >= 0 ? (uint8_t)slot : 0xff;
    reply->u.sw_reply.old_alive = slot >= 0 && !holds && member_slot_alive(m, slot, &ago);
    reply->u.sw_reply.epoch = m->set.epoch;
    reply->u.sw_reply.digest = m->set.digest;
    reply->u.sw_reply.old_inc = slot >= 0 ? member_recorded_counter(m, slot) : 0;
    epoch_join(&m->set, slots_buf, slots_len);
    reply->u.sw_reply.slots = slots_buf;
    reply->u.sw_reply.slots_len = (uint16_t)strlen(slots_buf);
    if (m->set.epoch > 0) {
        reply->u.sw_reply.last_slot = (uint8_t)m->sw.slot;
        reply->u.sw_reply.last_old_inc = m->sw.old_inc;
        reply->u.sw_reply.last_old = m->sw.old_addr;
        reply->u.sw_reply.last_old_len = (uint8_t)strlen(m->sw.old_addr);
        reply->u.sw_reply.last_new = m->sw.new_addr;
        reply->u.sw_reply.last_new_len = (uint8_t)strlen(m->sw.new_addr);
    }
    return 0;
}

