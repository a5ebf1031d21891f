/* net/http_seq.c — the sequences of the HTTP API (http_seq.h). */
#include "http_seq.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "../core/member.h"

typedef enum http_op { HS_IDS, HS_READ, HS_ADVANCE } http_op;

/* A request waiting for the member; in h's list until it is answered or
 * orphaned. */
typedef struct http_pending {
    struct http_pending *prev, *next;
    http_seq *h;                    /* NULL once orphaned (http_seq_free) */
    struct evhttp_request *req;
    http_op op;
    uint32_t count;
    struct seqd_name name;
} http_pending;

struct http_seq {
    member *m;
    http_pending *pending;
};

http_seq *http_seq_new(member *m)
{
    http_seq *h = calloc(1, sizeof *h);
    if (h)
        h->m = m;
    return h;
}

void http_seq_free(http_seq *h)
{
    if (!h)
        return;
    for (http_pending *p = h->pending, *next; p; p = next) {
        next = p->next;
        p->h = NULL;   /* the member's callback frees it, and sends nothing */
        p->req = NULL;
        p->prev = p->next = NULL;
    }
    free(h);
}

/* ---- replies ---------------------------------------------------------------- */

static void http_json(struct evhttp_request *req, int status, const char *reason,
                      struct evbuffer *body)
{
    struct evkeyvalq *hd = evhttp_request_get_output_headers(req);
    evhttp_add_header(hd, "Content-Type", "application/json");
    evhttp_add_header(hd, "Cache-Control", "no-store");
    evhttp_send_reply(req, status, reason, body);
}

static const char *http_reason(int status)
{
    switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 409: return "Conflict";
    case 503: return "Service Unavailable";
    case 507: return "Insufficient Storage";
    default: return "Internal Server Error";
    }
}

/* text is ours (no quotes, backslashes or control bytes): it may quote a
 * name only after the name was found valid. */
void http_json_error(struct evhttp_request *req, int status, const char *code, const char *text)
{
    struct evbuffer *b = evbuffer_new();
    if (b)
        evbuffer_add_printf(b, "{\"error\":\"%s\",\"code\":\"%s\"}\n", text, code);
    if (status == 503)   /* another member, or this one in a moment */
        evhttp_add_header(evhttp_request_get_output_headers(req), "Retry-After", "1");
    http_json(req, status, http_reason(status), b);
    if (b)
        evbuffer_free(b);
}

/* A member's enum seqd_err as a status and a stable code. */
static void http_member_error(struct evhttp_request *req, int err)
{
    switch (err) {
    case ERR_BAD_NAME: http_json_error(req, 400, "bad_name", "bad sequence name"); break;
    case ERR_BAD_COUNT: http_json_error(req, 400, "bad_count", "bad count"); break;
    case ERR_EXHAUSTED:
        http_json_error(req, 409, "exhausted", "sequence exhausted: the range would pass 2^64-1");
        break;
    case ERR_RECOVERING:
        http_json_error(req, 503, "recovering", "member recovering: try another member");
        break;
    case ERR_SHUTDOWN:
        http_json_error(req, 503, "shutdown", "member is shutting down: try another member");
        break;
    case ERR_STORAGE:
        http_json_error(req, 507, "storage", "storage error: the members could not write their logs");
        break;
    case ERR_TIMEOUT:
        http_json_error(req, 503, "timeout", "no quorum before the deadline");
        break;
    default: http_json_error(req, 500, "internal", "internal error"); break;
    }
}

/* ---- the member's answers ------------------------------------------------------ */

static void pending_unlink(http_pending *p)
{
    if (p->prev)
        p->prev->next = p->next;
    else
        p->h->pending = p->next;
    if (p->next)
        p->next->prev = p->prev;
}

static void http_seq_done(void *arg, int err, uint64_t first, uint32_t count)
{
    http_pending *p = arg;
    if (!p->h) {   /* orphaned: the front end is gone */
        free(p);
        return;
    }
    pending_unlink(p);
    struct evhttp_request *req = p->req;
    if (err) {
        http_member_error(req, err);
        free(p);
        return;
    }
    struct evbuffer *b = evbuffer_new();
    if (b && p->op == HS_IDS) {
        assert(count == p->count && first >= 1 && count - 1 <= UINT64_MAX - first);
        evbuffer_add_printf(b, "{\"first\":\"%llu\",\"last\":\"%llu\",\"count\":%u}\n",
                            (unsigned long long)first, (unsigned long long)(first + count - 1),
                            count);
    } else if (b) {
        assert(count == 0);
        evbuffer_add_printf(b, "{\"name\":\"%s\",\"next\":\"%llu\"}\n", p->name.s,
                            (unsigned long long)first);
    }
    http_json(req, b ? 200 : 500, b ? "OK" : "Internal Server Error", b);
    if (b)
        evbuffer_free(b);
    free(p);
}

/* ---- requests ------------------------------------------------------------------ */

/* Decimal digits only (no sign, blanks or exponent), at most max. */
static bool parse_u64(const char *s, uint64_t max, uint64_t *out)
{
    if (!s || !*s)
        return false;
    uint64_t v = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return false;
        unsigned d = (unsigned)(*s - '0');
        if (v > (max - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

/* What a path after the prefix names: NAME, NAME/ids or NAME/advance. */
typedef struct http_target {
    struct seqd_name name;
    http_op op;
} http_target;

static int http_parse_target(const char *rest, http_target *t, struct evhttp_request *req)
{
    const char *slash = strchr(rest, '/');
    size_t len = slash ? (size_t)(slash - rest) : strlen(rest);
    const char *suffix = slash ? slash : "";
    if (strcmp(suffix, "") == 0)
        t->op = HS_READ;
    else if (strcmp(suffix, "/ids") == 0)
        t->op = HS_IDS;
    else if (strcmp(suffix, "/advance") == 0)
        t->op = HS_ADVANCE;
    else {
        http_json_error(req, 404, "not_found", "not found");
        return -1;
    }
    if (len == 0) {
        http_json_error(req, 404, "not_found", "not found: want /v1/sequences/NAME");
        return -1;
    }
    if (!seqd_name_valid(rest, len)) {
        http_json_error(req, 400, "bad_name",
                        "bad sequence name: want 1 to 128 bytes of [A-Za-z0-9._-]");
        return -1;
    }
    seqd_name_set(&t->name, rest, len);
    return 0;
}

bool http_seq_is_admin(const char *path)
{
    size_t n = strlen(path), k = strlen("/advance");
    return strncmp(path, HTTP_SEQ_PREFIX, strlen(HTTP_SEQ_PREFIX)) == 0 && n > k &&
           strcmp(path + n - k, "/advance") == 0;
}

/* The method each target takes; 405 with Allow otherwise. */
static bool http_method_ok(struct evhttp_request *req, http_op op)
{
    enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
    bool ok = op == HS_READ ? cmd == EVHTTP_REQ_GET || cmd == EVHTTP_REQ_HEAD : cmd == EVHTTP_REQ_POST;
    if (!ok) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "Allow",
                          op == HS_READ ? "GET, HEAD" : "POST");
        http_json_error(req, 405, "method_not_allowed", "method not allowed");
    }
    return ok;
}

/* The query's numbers: count (ids), to (advance), timeout_ms (all). */
typedef struct http_args {
    uint64_t count, to, timeout_ms;
} http_args;

static int http_parse_args(struct evhttp_request *req, http_op op, http_args *a)
{
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *q = uri ? evhttp_uri_get_query(uri) : NULL;
    struct evkeyvalq kv;
    TAILQ_INIT(&kv);
    if (q && evhttp_parse_query_str(q, &kv) < 0) {
        http_json_error(req, 400, "bad_request", "malformed query string");
        return -1;
    }
    int rc = 0;
    const char *count = evhttp_find_header(&kv, "count"), *to = evhttp_find_header(&kv, "to"),
               *timeout = evhttp_find_header(&kv, "timeout_ms");
    *a = (http_args){.count = 1, .timeout_ms = MEMBER_DEFAULT_TIMEOUT_MS};
    if (op == HS_IDS && count && !parse_u64(count, SEQD_COUNT_MAX, &a->count))
        a->count = 0;
    if (op == HS_IDS && !seqd_count_valid(a->count)) {
        http_json_error(req, 400, "bad_count", "bad count: want count=1 to 1000000");
        rc = -1;
    } else if (op == HS_ADVANCE && (!parse_u64(to, UINT64_MAX, &a->to) || a->to < 1)) {
        http_json_error(req, 400, "bad_value", "bad to: want to=1 to 18446744073709551615");
        rc = -1;
    } else if (timeout && (!parse_u64(timeout, MEMBER_MAX_TIMEOUT_MS, &a->timeout_ms) ||
                           a->timeout_ms < 1)) {
        http_json_error(req, 400, "bad_timeout", "bad timeout_ms: want 1 to 60000");
        rc = -1;
    }
    evhttp_clear_headers(&kv);
    return rc;
}

void http_seq_handle(http_seq *h, struct evhttp_request *req, const char *path)
{
    assert(strncmp(path, HTTP_SEQ_PREFIX, strlen(HTTP_SEQ_PREFIX)) == 0);
    http_target t;
    http_args a;
    if (http_parse_target(path + strlen(HTTP_SEQ_PREFIX), &t, req) < 0 ||
        !http_method_ok(req, t.op) || http_parse_args(req, t.op, &a) < 0)
        return;
    http_pending *p = calloc(1, sizeof *p);
    if (!p) {
        http_json_error(req, 503, "timeout", "out of memory");
        return;
    }
    *p = (http_pending){.h = h, .req = req, .op = t.op, .count = (uint32_t)a.count, .name = t.name};
    uint32_t ms = (uint32_t)a.timeout_ms;
    int err = t.op == HS_IDS ? member_fetch(h->m, &t.name, p->count, ms, http_seq_done, p)
              : t.op == HS_READ ? member_read(h->m, &t.name, ms, http_seq_done, p)
                                : member_advance(h->m, &t.name, a.to, ms, http_seq_done, p);
    if (err) {
        free(p);
        http_member_error(req, err);
        return;
    }
    p->next = h->pending;
    if (h->pending)
        h->pending->prev = p;
    h->pending = p;
}
