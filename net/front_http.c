/* net/front_http.c — the HTTP front end: evhttp requests in, member reads,
 * text and JSON out (front_http.h). */
#include "front_http.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <errno.h>
#include <time.h>

#include "../core/headroom.h"
#include "../core/histogram.h"
#include "../core/member.h"
#include "../core/statusfmt.h"
#include "addr.h"
#include "auth.h"
#include "http_seq.h"

struct front_http {
    member *m;
    front_http_opts opts;
    struct evhttp *http;
    struct evhttp_bound_socket *sock;   /* NULL once stopped */
    http_seq *seq;                      /* /v1/sequences/ */
    void **conns;                       /* connections that sent a request (a set) */
    size_t nconns, conns_cap;           /* conns_cap: a power of two, > 2x the cap */
    struct evconnlistener *lev;         /* sock's listener, NULL once stopped */
    struct event *resume;               /* re-enables accept after EMFILE */
    uint64_t emfile_logged_ms;
};

static void http_reply(struct evhttp_request *req, int code, const char *reason, const char *type,
                       struct evbuffer *body)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Content-Type", type);
    evhttp_add_header(h, "Cache-Control", "no-store");
    evhttp_send_reply(req, code, reason, body);
}

static void http_text(struct evhttp_request *req, int code, const char *reason, const char *text)
{
    struct evbuffer *b = evbuffer_new();
    if (b)
        evbuffer_add_printf(b, "%s\n", text);
    http_reply(req, code, reason, "text/plain; charset=utf-8", b);
    if (b)
        evbuffer_free(b);
}

static void http_readyz(front_http *f, struct evhttp_request *req)
{
    struct seqd_status st;
    member_get_status(f->m, &st);
    if (st.state == STATE_READY)
        http_text(req, 200, "OK", "ready");
    else
        http_text(req, 503, "Service Unavailable", statusfmt_state(st.state));
}

static void http_status(front_http *f, struct evhttp_request *req)
{
    struct seqd_status st;
    member_get_status(f->m, &st);
    char buf[2048];
    const member_config *cfg = member_cfg(f->m);
    if (statusfmt_json(&st, cfg->members[cfg->self], buf, sizeof buf) < 0) {
        http_text(req, 500, "Internal Server Error", "status does not fit");
        return;
    }
    struct evbuffer *b = evbuffer_new();
    if (b)
        evbuffer_add_printf(b, "%s\n", buf);
    http_reply(req, 200, "OK", "application/json", b);
    if (b)
        evbuffer_free(b);
}

/* One metric family: HELP, TYPE and a sample without labels. */
static void metric(struct evbuffer *b, const char *name, const char *type, const char *help,
                   unsigned long long v)
{
    evbuffer_add_printf(b, "# HELP %s %s\n# TYPE %s %s\n%s %llu\n", name, help, name, type, name, v);
}

/* The exhaustion alarm (core/headroom.h): how many sequences passed the
 * configured share of 2^64, the least headroom of any sequence as a
 * share, and a labelled series only for the few past the alarm — so a
 * million sequences cost no series, and the alert `seqd_sequences_past_alarm
 * > 0` names the sequences in the samples it fires on. */
static void metrics_headroom(struct evbuffer *b, const headroom *h)
{
    evbuffer_add_printf(b, "# HELP seqd_exhaustion_alarm_ratio The share of 2^64 past which a "
                           "sequence counts as near exhaustion (--exhaustion-alarm).\n"
                           "# TYPE seqd_exhaustion_alarm_ratio gauge\n"
                           "seqd_exhaustion_alarm_ratio %g\n",
                        h->share);
    metric(b, "seqd_sequences_past_alarm", "gauge",
           "Sequences whose NEXT passed the exhaustion alarm on this member.", h->past);
    evbuffer_add_printf(b, "# HELP seqd_headroom_min_ratio IDs left below 2^64-1 of the fullest "
                           "sequence, as a share of 2^64.\n"
                           "# TYPE seqd_headroom_min_ratio gauge\n"
                           "seqd_headroom_min_ratio %.17g\n",
                        (double)headroom_left(h->max_value) / 18446744073709551616.0);
    evbuffer_add_printf(b, "# HELP seqd_sequence_headroom_ids IDs left below 2^64-1, for the "
                           "first %d sequences past the alarm.\n"
                           "# TYPE seqd_sequence_headroom_ids gauge\n", HEADROOM_NAMES);
    for (int i = 0; i < h->nnames; i++)   /* names are [A-Za-z0-9._-]: no escaping needed */
        evbuffer_add_printf(b, "seqd_sequence_headroom_ids{sequence=\"%s\"} %llu\n",
                            h->names[i].name.s, (unsigned long long)headroom_left(h->names[i].value));
}

static void metrics_histogram(struct evbuffer *b, const histogram *h, const char *name,
                              const char *help)
{
    char hist[HIST_EXPOSE_MAX];
    size_t used = hist_expose(h, name, help, hist, 0, sizeof hist);
    assert(used < sizeof hist);
    evbuffer_add(b, hist, used);
}

/* The names are the contract with dashboards: base units, counters end in
 * _total (https://prometheus.io/docs/practices/naming/). */
static void http_metrics(front_http *f, struct evhttp_request *req)
{
    member_metrics mm;
    member_get_metrics(f->m, &mm);
    struct evbuffer *b = evbuffer_new();
    if (!b) {
        http_text(req, 500, "Internal Server Error", "out of memory");
        return;
    }
    const struct seqd_status *st = &mm.st;
    metric(b, "seqd_fetches_total", "counter", "Client fetches answered with a range by this coordinator.", st->fetches);
    metric(b, "seqd_ids_total", "counter", "IDs handed out by this coordinator.", st->ids);
    metric(b, "seqd_rounds_total", "counter", "ACCEPT rounds this coordinator started.", st->rounds);
    metric(b, "seqd_round_conflicts_total", "counter", "Rounds that lost to another coordinator and were retried.", mm.round_conflicts);
    evbuffer_add_printf(b, "# HELP seqd_rounds_ended_total Rounds this coordinator finished, by outcome.\n"
                           "# TYPE seqd_rounds_ended_total counter\n"
                           "seqd_rounds_ended_total{outcome=\"committed\"} %llu\n"
                           "seqd_rounds_ended_total{outcome=\"failed\"} %llu\n",
                        (unsigned long long)mm.rounds_committed, (unsigned long long)mm.rounds_failed);
    metric(b, "seqd_fetch_timeouts_total", "counter", "Fetches that passed their deadline before a round served them.", mm.round_timeouts);
    metric(b, "seqd_advances_total", "counter", "Floors (seqd advance) this coordinator committed.", mm.floors);
    metric(b, "seqd_reads_total", "counter", "Read (recovery) phases this coordinator ran.", st->reads);
    metric(b, "seqd_nacks_total", "counter", "NACKs this coordinator received.", st->nacks);
    metric(b, "seqd_fsyncs_total", "counter", "fsyncs of this member's log.", st->fsyncs);
    metric(b, "seqd_log_records_total", "counter", "Records appended to this member's log.", st->records);
    metric(b, "seqd_log_writes_total", "counter", "Batched writes to this member's log.", mm.log_writes);
    metric(b, "seqd_log_written_bytes_total", "counter", "Bytes written to this member's log.", mm.log_bytes);
    metric(b, "seqd_log_compactions_total", "counter", "Compactions of this member's log.", mm.log_compactions);
    metric(b, "seqd_log_write_errors_total", "counter", "Log write batches that failed (disk full or failing).", mm.log_write_errors);
    metric(b, "seqd_member_ready", "gauge", "1 when the member votes and serves, else 0.", st->state == STATE_READY);
    metric(b, "seqd_member_recovering", "gauge", "1 while the member recovers, else 0.", st->state == STATE_RECOVERING);
    metric(b, "seqd_member_stopping", "gauge", "1 while the member stops, else 0.", st->state == STATE_STOPPING);
    metric(b, "seqd_members", "gauge", "Members in the cluster (N).", st->n_members);
    metric(b, "seqd_peers_up", "gauge", "Links to other members that are up.", (unsigned long long)mm.peers_up);
    metric(b, "seqd_sequences", "gauge", "Sequences held in this member's table.", mm.sequences);
    metric(b, "seqd_coord_sequences_held", "gauge", "Sequences this coordinator holds state for (in use lately).", mm.coord_held);
    metric(b, "seqd_coord_evictions_total", "counter", "Idle sequences whose coordinator state was dropped.", mm.coord_evictions);
    metrics_headroom(b, mm.headroom);
    metrics_histogram(b, mm.fetch_latency, "seqd_fetch_duration_seconds",
                      "Time from a fetch's arrival at the member to its reply.");
    metrics_histogram(b, mm.round_latency, "seqd_round_duration_seconds",
                      "Time from a round's first message to its commit or failure.");
    metrics_histogram(b, mm.fsync_latency, "seqd_fsync_duration_seconds",
                      "Time of each fdatasync of this member's log.");
    http_reply(req, 200, "OK", "text/plain; version=0.0.4; charset=utf-8", b);
    evbuffer_free(b);
}

typedef void (*http_handler)(front_http *f, struct evhttp_request *req);

static void http_healthz(front_http *f, struct evhttp_request *req)
{
    (void)f;
    http_text(req, 200, "OK", "ok");
}

/* Who may ask what: probes need nothing (a load balancer's health check
 * learns only up / ready); reads and fetches the client token when the
 * member has one; an advance the admin token (DESIGN.md §3). */
enum http_guard { GUARD_PROBE, GUARD_CLIENT, GUARD_ADMIN };

static const struct {
    const char *path;
    http_handler fn;
    enum http_guard guard;
} http_routes[] = {
    {"/healthz", http_healthz, GUARD_PROBE},
    {"/readyz", http_readyz, GUARD_PROBE},
    {"/v1/status", http_status, GUARD_CLIENT},
    {"/metrics", http_metrics, GUARD_CLIENT},
};

/* ---- connections: counted from their first request, capped --------------- */

/* An open-addressing set of the evhttp connections that sent a request
 * (evhttp 2.1 has no accept hook, and a connection's close callback is the
 * only way to learn it went). Backward-shift deletion keeps probes short. */
static size_t conns_slot(const front_http *f, const void *p)
{
    uintptr_t x = (uintptr_t)p;
    x ^= x >> 17;
    x *= (uintptr_t)0x9E3779B97F4A7C15u;
    return (size_t)(x >> 7) & (f->conns_cap - 1);
}

static bool conns_has(const front_http *f, const void *p)
{
    for (size_t i = conns_slot(f, p);; i = (i + 1) & (f->conns_cap - 1)) {
        if (f->conns[i] == p)
            return true;
        if (!f->conns[i])
            return false;
    }
}

static void conns_add(front_http *f, void *p)
{
    size_t i = conns_slot(f, p);
    while (f->conns[i])
        i = (i + 1) & (f->conns_cap - 1);
    f->conns[i] = p;
    f->nconns++;
}

static void conns_del(front_http *f, const void *p)
{
    size_t mask = f->conns_cap - 1, i = conns_slot(f, p);
    while (f->conns[i] != p) {
        if (!f->conns[i])
            return;
        i = (i + 1) & mask;
    }
    f->conns[i] = NULL;
    f->nconns--;
    for (size_t j = (i + 1) & mask; f->conns[j]; j = (j + 1) & mask) {
        size_t home = conns_slot(f, f->conns[j]);
        /* Move j back into the hole if its home is not in (i, j]. */
        if (((j - home) & mask) >= ((j - i) & mask)) {
            f->conns[i] = f->conns[j];
            f->conns[j] = NULL;
            i = j;
        }
    }
}

static void http_conn_closed(struct evhttp_connection *evcon, void *arg)
{
    conns_del(arg, evcon);
}

/* Counts the request's connection; false (503, connection closed after
 * it) when FRONT_HTTP_MAX_CONNS others are open. */
static bool http_admit(front_http *f, struct evhttp_request *req)
{
    struct evhttp_connection *evcon = evhttp_request_get_connection(req);
    if (!evcon || conns_has(f, evcon))
        return true;
    if (f->nconns >= FRONT_HTTP_MAX_CONNS) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "Connection", "close");
        http_json_error(req, 503, "too_many_connections", "too many connections");
        return false;
    }
    conns_add(f, evcon);
    evhttp_connection_set_closecb(evcon, http_conn_closed, f);
    return true;
}

/* ---- authentication -------------------------------------------------------- */

static bool token_eq(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    unsigned char d = (unsigned char)(la != lb);
    for (size_t i = 0; i < la && i < lb; i++)   /* no early exit on a difference */
        d |= (unsigned char)(a[i] ^ b[i]);
    return d == 0;
}

static bool http_bearer_is(struct evhttp_request *req, const char *token)
{
    const char *h = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
    return h && strncmp(h, "Bearer ", 7) == 0 && token_eq(h + 7, token);
}

static bool http_from_loopback(struct evhttp_request *req)
{
    struct evhttp_connection *evcon = evhttp_request_get_connection(req);
    char *addr = NULL;
    ev_uint16_t port = 0;
    if (!evcon)
        return false;
    evhttp_connection_get_peer(evcon, &addr, &port);
    char hp[300];
    snprintf(hp, sizeof hp, strchr(addr ? addr : "", ':') ? "[%s]:%u" : "%s:%u", addr ? addr : "",
             (unsigned)port);
    return addr && auth_addr_loopback(hp);
}

/* Refuses (401 / 403, saying nothing else) unless the guard is met. */
static bool http_authorized(front_http *f, struct evhttp_request *req, enum http_guard g)
{
    if (g == GUARD_PROBE)
        return true;
    if (g == GUARD_ADMIN && f->opts.admin_token) {
        if (http_bearer_is(req, f->opts.admin_token))
            return true;
    } else if (g == GUARD_ADMIN && !f->opts.insecure && !http_from_loopback(req)) {
        http_json_error(req, 403, "forbidden",
                        "admin requests come from loopback only when the cluster has no secret");
        return false;
    } else if (!f->opts.client_token || http_bearer_is(req, f->opts.client_token)) {
        return true;
    }
    evhttp_add_header(evhttp_request_get_output_headers(req), "WWW-Authenticate", "Bearer");
    http_json_error(req, 401, "unauthorized", "not authenticated");
    return false;
}

static void http_dispatch(struct evhttp_request *req, void *arg)
{
    front_http *f = arg;
    if (!http_admit(f, req))
        return;
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
    if (!path) {
        http_text(req, 400, "Bad Request", "bad request URI");
        return;
    }
    if (strncmp(path, HTTP_SEQ_PREFIX, strlen(HTTP_SEQ_PREFIX)) == 0) {
        if (http_authorized(f, req, http_seq_is_admin(path) ? GUARD_ADMIN : GUARD_CLIENT))
            http_seq_handle(f->seq, req, path);
        return;
    }
    for (size_t i = 0; i < sizeof http_routes / sizeof http_routes[0]; i++) {
        if (strcmp(path, http_routes[i].path) != 0)
            continue;
        enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
        if (cmd != EVHTTP_REQ_GET && cmd != EVHTTP_REQ_HEAD) {
            evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "GET, HEAD");
            http_text(req, 405, "Method Not Allowed", "method not allowed");
            return;
        }
        if (http_authorized(f, req, http_routes[i].guard))
            http_routes[i].fn(f, req);
        return;
    }
    http_text(req, 404, "Not Found", "not found");
}

/* ---- accept failures ------------------------------------------------------ */

/* evhttp sets no error callback on its listener: when accept() fails with
 * EMFILE the pending connection stays in the backlog, the level-triggered
 * listener fires again at once, and libevent's default warns on every
 * pass — one core at 100% and a log line per microsecond (measured: 12M
 * lines in 2 s, tests/test_nofile.py). As on the binary port
 * (net/front_bin.c): pause accepting for 100 ms, say so once a second. The
 * callback gets evhttp's pointer, not ours, so the front ends (one per
 * member, a few in a test process) are found by their listener. */
#define HTTP_FRONTS_MAX 16
static front_http *http_fronts[HTTP_FRONTS_MAX];

static void http_fronts_set(front_http *f, bool on)
{
    for (size_t i = 0; i < HTTP_FRONTS_MAX; i++) {
        if (on ? http_fronts[i] == NULL : http_fronts[i] == f) {
            http_fronts[i] = on ? f : NULL;
            return;
        }
    }
    assert(!on);   /* more than HTTP_FRONTS_MAX front ends in one process */
}

static uint64_t http_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void http_resume_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    front_http *f = arg;
    if (f->lev)
        evconnlistener_enable(f->lev);
}

static void http_accept_error_cb(struct evconnlistener *lev, void *arg)
{
    (void)arg;   /* evhttp's */
    int e = EVUTIL_SOCKET_ERROR();
    front_http *f = NULL;
    for (size_t i = 0; i < HTTP_FRONTS_MAX && !f; i++)
        if (http_fronts[i] && http_fronts[i]->lev == lev)
            f = http_fronts[i];
    evconnlistener_disable(lev);
    if (!f)
        return;   /* cannot happen: every listener is registered while it lives */
    uint64_t now = http_now_ms();
    if (now - f->emfile_logged_ms >= 1000) {
        member_log(f->m, MLOG_WARN, "HTTP accept failed: %s (%zu connections with a request open); "
                   "pausing accepts for 100 ms", strerror(e), f->nconns);
        f->emfile_logged_ms = now;
    }
    struct timeval tv = {0, 100000};
    evtimer_add(f->resume, &tv);
}

front_http *front_http_new(struct event_base *base, member *m, const char *addr,
                           const front_http_opts *opts, char *err, size_t errlen)
{
    char host[SEQD_ADDR_MAX + 1];
    uint16_t port;
    if (addr_split(addr, strlen(addr), host, sizeof host, &port) < 0) {
        snprintf(err, errlen, "bad --http address '%s' (want HOST:PORT)", addr);
        return NULL;
    }
    front_http *f = calloc(1, sizeof *f);
    if (f) {
        f->conns_cap = 2 * FRONT_HTTP_MAX_CONNS_POW2;
        f->conns = calloc(f->conns_cap, sizeof *f->conns);
        f->seq = http_seq_new(m);
    }
    if (!f || !f->conns || !f->seq || !(f->http = evhttp_new(base))) {
        if (f) {
            http_seq_free(f->seq);
            free(f->conns);
        }
        free(f);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    f->m = m;
    if (opts)
        f->opts = *opts;
    /* Every method reaches http_dispatch, so that a known path answers 405
     * rather than evhttp's 501. */
    evhttp_set_allowed_methods(f->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD | EVHTTP_REQ_POST |
                                            EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS |
                                            EVHTTP_REQ_TRACE | EVHTTP_REQ_CONNECT | EVHTTP_REQ_PATCH);
    evhttp_set_max_headers_size(f->http, FRONT_HTTP_MAX_HEADERS);
    evhttp_set_max_body_size(f->http, FRONT_HTTP_MAX_BODY);
    evhttp_set_timeout(f->http, FRONT_HTTP_TIMEOUT_S);
    evhttp_set_gencb(f->http, http_dispatch, f);
    f->sock = evhttp_bind_socket_with_handle(f->http, host, port);
    if (!f->sock) {
        snprintf(err, errlen, "cannot listen on --http %s (address in use, or not local?)", addr);
        front_http_free(f);
        return NULL;
    }
    f->resume = evtimer_new(base, http_resume_cb, f);
    if (!f->resume) {
        snprintf(err, errlen, "out of memory");
        front_http_free(f);
        return NULL;
    }
    f->lev = evhttp_bound_socket_get_listener(f->sock);
    http_fronts_set(f, true);
    evconnlistener_set_error_cb(f->lev, http_accept_error_cb);
    return f;
}

void front_http_stop(front_http *f)
{
    if (f && f->sock) {
        if (f->resume)
            evtimer_del(f->resume);
        f->lev = NULL;
        evhttp_del_accept_socket(f->http, f->sock);
        f->sock = NULL;
    }
}

/* The requests still waiting for the member are orphaned first (their
 * callbacks then touch nothing), then evhttp goes with its connections,
 * whose close callbacks still find the set. */
void front_http_free(front_http *f)
{
    if (!f)
        return;
    http_fronts_set(f, false);
    f->lev = NULL;
    if (f->resume)
        event_free(f->resume);
    http_seq_free(f->seq);
    evhttp_free(f->http);
    free(f->conns);
    free(f);
}
