/* core/statusfmt.c — status as JSON (statusfmt.h). */
#include "statusfmt.h"

#include <stdio.h>
#include <string.h>

const char *statusfmt_state(int state)
{
    switch (state) {
    case STATE_READY: return "ready";
    case STATE_RECOVERING: return "recovering";
    case STATE_STOPPING: return "stopping";
    default: return "unknown";
    }
}

void statusfmt_json_str(char *out, size_t len, const char *s)
{
    size_t o = 0;
    if (len == 0)
        return;
    for (; *s && o + 7 < len; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            out[o++] = '\\';
            out[o++] = (char)c;
        } else if (c < 0x20) {
            o += (size_t)snprintf(out + o, len - o, "\\u%04x", c);
        } else {
            out[o++] = (char)c;
        }
    }
    out[o] = '\0';
}

int statusfmt_json(const struct seqd_status *st, const char *addr, char *buf, size_t len)
{
    char a[SEQD_ADDR_MAX * 6 + 1];
    statusfmt_json_str(a, sizeof a, addr);
    int n = snprintf(buf, len, "{\"address\":\"%s\",\"state\":\"%s\",\"index\":%u,\"members\":%u,"
                               "\"counters\":{", a, statusfmt_state(st->state),
                     (unsigned)st->self_index, (unsigned)st->n_members);
    const char *sep = "";
#define STATUSFMT_PAIR(name)                                                                  \
    if (n >= 0 && (size_t)n < len) {                                                          \
        n += snprintf(buf + n, len - (size_t)n, "%s\"" #name "\":%llu", sep,                  \
                      (unsigned long long)st->name);                                          \
        sep = ",";                                                                            \
    }
    SEQD_STATUS_COUNTERS(STATUSFMT_PAIR)
#undef STATUSFMT_PAIR
    if (n >= 0 && (size_t)n < len)
        n += snprintf(buf + n, len - (size_t)n, "}}");
    return n >= 0 && (size_t)n < len ? n : -1;
}

int statusfmt_down(const char *addr, const char *why, char *buf, size_t len)
{
    char a[SEQD_ADDR_MAX * 6 + 1], w[512 * 6 + 1];
    statusfmt_json_str(a, sizeof a, addr);
    statusfmt_json_str(w, sizeof w, why);
    int n = snprintf(buf, len, "{\"address\":\"%s\",\"state\":\"down\",\"error\":\"%s\"}", a, w);
    return n >= 0 && (size_t)n < len ? n : -1;
}
