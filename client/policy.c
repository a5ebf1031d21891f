/* client/policy.c — the one retry and verdict policy of both clients
 * (policy.h). */
#include "policy.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "../net/frame.h"
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

int policy_check_request(const char *name, uint32_t count, char *err, size_t errlen)
{
    size_t nlen = name != NULL ? strlen(name) : 0;
    if (name == NULL || !seqd_name_valid(name, nlen)) {
        policy_seterr(err, errlen, "bad sequence name '%.*s': use 1 to %u characters of [A-Za-z0-9._-]",
                     (int)(nlen > 140 ? 140 : nlen), name ? name : "", SEQD_NAME_MAX);
        return CLIENT_EUSAGE;
    }
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
