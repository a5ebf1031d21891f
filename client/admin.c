/* client/admin.c — seqd's admin requests (client_admin.h): authenticating
 * an admin connection, `advance`, and one member's chunks of `list`. */
#include "client_admin.h"

#include <stdio.h>
#include <time.h>

#include "../net/frame.h"

#include "policy.h"

static int64_t admin_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The text of a REPLY_ERR or ERROR, or what else came. */
static void admin_reply_text(const seqd_msg *rep, char *err, size_t errlen)
{
    if (rep->type == MSG_REPLY_ERR || rep->type == MSG_ERROR)
        policy_seterr(err, errlen, "%.*s", (int)rep->u.err.len, rep->u.err.text);
    else
        policy_seterr(err, errlen, "unexpected %s", msg_type_str(rep->type));
}

int client_admin_auth(client *c, int i, int slot, const auth_secret *s, uint32_t ms, char *err,
                      size_t errlen)
{
    static uint8_t scratch[SEQD_MAX_FRAME];
    uint8_t nc[SEQD_NONCE_LEN], ks[AUTH_KEY_LEN];
    if (auth_nonce(nc) < 0) {
        policy_seterr(err, errlen, "no randomness for a nonce");
        return CLIENT_EFAIL;
    }
    auth_exchange x;
    seqd_msg req, rep;
    auth_connector_begin(&x, (uint8_t)slot, nc, &req);
    for (;;) {
        char why[256];
        if (client_raw(c, i, &req, &rep, scratch, ms, why, sizeof why) != CLIENT_OK) {
            policy_seterr(err, errlen, "down or unreachable: %s", why);
            return CLIENT_EFAIL;
        }
        enum auth_verdict v = rep.type == MSG_AUTH ? auth_step(&x, s, &rep, &req, ks) : AUTH_REFUSE;
        if (v == AUTH_REFUSE) {
            policy_seterr(err, errlen, "not authenticated (another secret, or none)");
            return CLIENT_EFAIL;
        }
        if (v == AUTH_DONE)
            break;
        req.reqid = 0;   /* client_raw picks a fresh one */
    }
    if (client_set_mac(c, i, ks, AUTH_ROLE_CONNECTOR) < 0) {
        policy_seterr(err, errlen, "connection lost after authentication");
        return CLIENT_EFAIL;
    }
    return CLIENT_OK;
}

/* One ADVANCE to member i, authenticated first when there is a secret
 * (its slot from its STATUS: the client's list need not be the whole set).
 * Returns CLIENT_OK with *next, CLIENT_EUSAGE for a request the member
 * calls bad, POLICY_NEXT-like CLIENT_EFAIL with *retry for a member that
 * cannot serve now. */
static int advance_one(client *c, int i, const struct seqd_name *name, uint64_t value,
                       const auth_secret *s, int64_t budget, uint64_t *next, bool *retry,
                       char *err, size_t errlen)
{
    static uint8_t scratch[SEQD_MAX_FRAME];
    *retry = true;
    uint32_t ms = (uint32_t)budget;
    if (s) {
        struct seqd_status st;
        if (client_status(c, i, ms, &st, err, errlen) != CLIENT_OK)
            return CLIENT_EFAIL;
        if (client_admin_auth(c, i, st.self_index, s, ms, err, errlen) != CLIENT_OK) {
            *retry = strstr(err, "not authenticated") == NULL;
            return CLIENT_EFAIL;
        }
    }
    seqd_msg req = {.type = MSG_ADVANCE}, rep;
    req.u.advance.timeout_ms = ms;
    req.u.advance.value = value;
    req.u.advance.name = *name;
    if (client_raw(c, i, &req, &rep, scratch, ms, err, errlen) != CLIENT_OK)
        return CLIENT_EFAIL;
    if (rep.type == MSG_ADVANCED && rep.u.advanced.next >= value) {
        *next = rep.u.advanced.next;
        return CLIENT_OK;
    }
    admin_reply_text(&rep, err, errlen);
    if (rep.type == MSG_ERROR) {   /* "not authenticated": the same everywhere */
        *retry = false;
        return CLIENT_EFAIL;
    }
    if (rep.type == MSG_REPLY_ERR) {
        char why[64];
        enum policy_verdict v = policy_judge(&rep, why, sizeof why);
        if (v == POLICY_USAGE) {
            *retry = false;
            return CLIENT_EUSAGE;
        }
        *retry = v == POLICY_NEXT;
    }
    return CLIENT_EFAIL;
}

int client_advance(client *c, const char *name, uint64_t value, const auth_secret *s,
                   uint32_t timeout_ms, uint64_t *next, char *err, size_t errlen)
{
    if (policy_check_name(name, err, errlen) != CLIENT_OK)
        return CLIENT_EUSAGE;
    if (value < 1) {
        policy_seterr(err, errlen, "bad value 0: IDs start at 1");
        return CLIENT_EUSAGE;
    }
    struct seqd_name nm;
    seqd_name_set(&nm, name, strlen(name));
    int64_t deadline = admin_now_ms() + timeout_ms;
    char last[512] = "no member answered";
    int n = client_nservers(c), first = client_preferred(c, name);
    for (int k = 0; k < n; k++) {
        int i = (first + k) % n;
        int64_t left = deadline - admin_now_ms();
        if (left <= 0)
            break;
        /* The last member may use all that is left; the others a part. */
        int64_t budget = k == n - 1 ? left : policy_attempt_budget(left);
        bool retry;
        char why[400];
        int rc = advance_one(c, i, &nm, value, s, budget, next, &retry, why, sizeof why);
        if (rc == CLIENT_OK)
            return CLIENT_OK;
        snprintf(last, sizeof last, "%s: %s", client_server(c, i), why);
        if (rc == CLIENT_EUSAGE) {
            policy_seterr(err, errlen, "%s", last);
            return CLIENT_EUSAGE;
        }
        if (!retry)
            break;
    }
    policy_seterr(err, errlen, "advance %s to %llu failed: %s", name, (unsigned long long)value,
                  last);
    return CLIENT_EFAIL;
}

int client_list_member(client *c, int i, const char *prefix, uint32_t timeout_ms,
                       client_list_fn fn, void *arg, char *err, size_t errlen)
{
    static uint8_t scratch[SEQD_MAX_FRAME];
    size_t plen = prefix ? strlen(prefix) : 0;
    if (plen && (plen > SEQD_NAME_MAX || !seqd_name_valid(prefix, plen))) {
        policy_seterr(err, errlen, "bad prefix '%s': want up to %u bytes of [A-Za-z0-9._-]",
                      prefix, SEQD_NAME_MAX);
        return CLIENT_EUSAGE;
    }
    seqd_msg req = {.type = MSG_LIST}, rep;
    req.u.list.prefix = prefix;
    req.u.list.prefix_len = (uint8_t)plen;
    for (uint32_t start = 0;;) {
        req.u.list.start = start;
        req.reqid = 0;
        if (client_raw(c, i, &req, &rep, scratch, timeout_ms, err, errlen) != CLIENT_OK)
            return CLIENT_EFAIL;
        if (rep.type != MSG_LIST_CHUNK) {
            admin_reply_text(&rep, err, errlen);
            return CLIENT_EFAIL;
        }
        const uint8_t *p = rep.u.list_chunk.entries, *end = p + rep.u.list_chunk.entries_len;
        struct seqd_name nm;
        uint64_t cur;
        while (snap_entry_next(&p, end, &nm, &cur))
            if (fn(arg, &nm, cur) < 0) {
                policy_seterr(err, errlen, "out of memory");
                return CLIENT_EFAIL;
            }
        if (rep.u.list_chunk.flags & LIST_DONE)
            return CLIENT_OK;
        /* A member must move its cursor, or a hostile one would loop us. */
        if (rep.u.list_chunk.next <= start) {
            policy_seterr(err, errlen, "member's list cursor did not advance");
            return CLIENT_EFAIL;
        }
        start = rep.u.list_chunk.next;
    }
}
