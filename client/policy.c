/* client/policy.c — the one retry and verdict policy of both clients
 * (policy.h). */
#include "policy.h"

#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "../net/frame.h"
#include "../net/addr.h"
#include "client.h"

void policy_seterr(char *err, size_t errlen, const char *fmt, ...)
{
    if (err == NULL || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

int policy_check_name(const char *name, char *err, size_t errlen)
{
    size_t nlen = name != NULL ? strlen(name) : 0;
    if (name == NULL || !seqd_name_valid(name, nlen)) {
        policy_seterr(err, errlen, "bad sequence name '%.*s': use 1 to %u characters of [A-Za-z0-9._-]",
                     (int)(nlen > 140 ? 140 : nlen), name ? name : "", SEQD_NAME_MAX);
        return CLIENT_EUSAGE;
    }
    return CLIENT_OK;
}

int policy_check_request(const char *name, uint32_t count, char *err, size_t errlen)
{
    if (policy_check_name(name, err, errlen) != CLIENT_OK)
        return CLIENT_EUSAGE;
    if (!seqd_count_valid(count)) {
        policy_seterr(err, errlen, "bad count %u: must be 1 to %u", count, SEQD_COUNT_MAX);
        return CLIENT_EUSAGE;
    }
    return CLIENT_OK;
}

int64_t policy_attempt_budget(int64_t left)
{
    int64_t b = left / 2;
    int64_t floor = left < POLICY_ATTEMPT_MIN_MS ? left : POLICY_ATTEMPT_MIN_MS;
    return b > floor ? b : floor;
}

int64_t policy_next_pause(int64_t pause_ms)
{
    return pause_ms * 2 > POLICY_PASS_PAUSE_MAX_MS ? POLICY_PASS_PAUSE_MAX_MS : pause_ms * 2;
}

bool policy_range_ok(const seqd_msg *rep, uint32_t count)
{
    return rep->type == MSG_RANGE && rep->u.range.count == count && rep->u.range.first >= 1 &&
           rep->u.range.first - 1 <= UINT64_MAX - count;
}

enum policy_verdict policy_judge(const seqd_msg *rep, char *why, size_t whylen)
{
    uint16_t code = rep->u.err.code;
    int tl = rep->u.err.len > 100 ? 100 : rep->u.err.len;
    switch (code) {
    case ERR_RECOVERING:
        snprintf(why, whylen, "recovering");
        return POLICY_NEXT;
    case ERR_TIMEOUT:
        snprintf(why, whylen, "no quorum in time");
        return POLICY_NEXT;
    case ERR_SHUTDOWN:
        snprintf(why, whylen, "shutting down");
        return POLICY_NEXT;
    case ERR_STORAGE:
        snprintf(why, whylen, "storage error%s%.*s", tl ? ": " : "", tl, rep->u.err.text);
        return POLICY_NEXT;
    case ERR_BAD_NAME:
    case ERR_BAD_COUNT:
        return POLICY_USAGE;
    case ERR_EXHAUSTED:
        return POLICY_FAIL;
    default:
        snprintf(why, whylen, "error %s%s%.*s", seqd_err_str(code), tl ? ": " : "", tl,
                 rep->u.err.text);
        return POLICY_NEXT;
    }
}

void policy_stop_message(const seqd_msg *rep, const char *addr, const char *name, uint32_t count,
                         char *err, size_t errlen)
{
    if (err == NULL || errlen == 0)
        return;
    if (rep->u.err.code == ERR_EXHAUSTED) {
        snprintf(err, errlen, "sequence '%s' is exhausted: %u more IDs would pass 2^64-1", name,
                 count);
        return;
    }
    int tl = rep->u.err.len > 200 ? 200 : rep->u.err.len;
    snprintf(err, errlen, "%s refused the request: %s%s%.*s", addr, seqd_err_str(rep->u.err.code),
             tl ? ": " : "", tl, rep->u.err.text);
}

/* ---- the server list ---- */

static int policy_parse_one(policy_server *m, const char *s, size_t len, char *err, size_t errlen)
{
    if (len == 0 || len > SEQD_ADDR_MAX) {
        policy_seterr(err, errlen, "bad server address '%.*s': expected HOST:PORT",
                      (int)(len > 64 ? 64 : len), s);
        return -1;
    }
    memcpy(m->addr, s, len);
    m->addr[len] = '\0';
    uint16_t port;
    if (addr_split(s, len, m->host, sizeof m->host, &port) < 0) {
        policy_seterr(err, errlen, "bad server address '%s': expected HOST:PORT", m->addr);
        return -1;
    }
    snprintf(m->port, sizeof m->port, "%u", port);
    return 0;
}

/* Insertion sort of indexes by address. */
static void policy_sort(policy_servers *l)
{
    for (int i = 0; i < l->n; i++) {
        int j = i;
        while (j > 0 && strcmp(l->s[l->sorted[j - 1]].addr, l->s[i].addr) > 0) {
            l->sorted[j] = l->sorted[j - 1];
            j--;
        }
        l->sorted[j] = i;
    }
}

int policy_servers_parse(policy_servers *l, const char *servers, char *err, size_t errlen)
{
    l->n = 0;
    if (servers == NULL || servers[0] == '\0') {
        policy_seterr(err, errlen, "no servers given (use --servers or SEQD_SERVERS)");
        return -1;
    }
    for (const char *p = servers;;) {
        while (*p == ' ' || *p == '\t')
            p++;
        const char *q = p;
        while (*q != '\0' && *q != ',')
            q++;
        const char *e = q;
        while (e > p && (e[-1] == ' ' || e[-1] == '\t'))
            e--;
        if (l->n == POLICY_MAX_SERVERS) {
            policy_seterr(err, errlen, "too many servers (at most %d)", POLICY_MAX_SERVERS);
            return -1;
        }
        if (policy_parse_one(&l->s[l->n], p, (size_t)(e - p), err, errlen) != 0)
            return -1;
        l->n++;
        if (*q == '\0')
            break;
        p = q + 1;
    }
    policy_sort(l);
    return 0;
}

/* FNV-1a: a stable spread of names over members, nothing more. */
static uint32_t policy_name_hash(const char *name, size_t len)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (uint8_t)name[i]) * 16777619u;
    return h;
}

int policy_preferred(const policy_servers *l, const char *name)
{
    assert(l->n >= 1);
    return l->sorted[policy_name_hash(name, strlen(name)) % (uint32_t)l->n];
}

int policy_route(const policy_servers *l, const char *name, bool (*usable)(const void *ctx, int i),
                 const void *ctx)
{
    int pref = policy_preferred(l, name);
    for (int k = 0; k < l->n; k++) {
        int i = (pref + k) % l->n;
        if (usable(ctx, i))
            return i;
    }
    return pref;
}
