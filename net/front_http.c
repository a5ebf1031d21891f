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

#include "../core/headroom.h"
#include "../core/histogram.h"
#include "../core/member.h"
#include "../core/statusfmt.h"
#include "addr.h"

struct front_http {
    member *m;
    struct evhttp *http;
    struct evhttp_bound_socket *sock;   /* NULL once stopped */
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

static const struct {
    const char *path;
    http_handler fn;
} http_routes[] = {
    {"/healthz", http_healthz},
    {"/readyz", http_readyz},
    {"/v1/status", http_status},
    {"/metrics", http_metrics},
};

static void http_dispatch(struct evhttp_request *req, void *arg)
{
    front_http *f = arg;
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
    if (!path) {
        http_text(req, 400, "Bad Request", "bad request URI");
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
        http_routes[i].fn(f, req);
        return;
    }
    http_text(req, 404, "Not Found", "not found");
}

front_http *front_http_new(struct event_base *base, member *m, const char *addr, char *err,
                           size_t errlen)
{
    char host[SEQD_ADDR_MAX + 1];
    uint16_t port;
    if (addr_split(addr, strlen(addr), host, sizeof host, &port) < 0) {
        snprintf(err, errlen, "bad --http address '%s' (want HOST:PORT)", addr);
        return NULL;
    }
    front_http *f = calloc(1, sizeof *f);
    if (!f || !(f->http = evhttp_new(base))) {
        free(f);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    f->m = m;
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
        evhttp_free(f->http);
        free(f);
        return NULL;
    }
    return f;
}

void front_http_stop(front_http *f)
{
    if (f && f->sock) {
        evhttp_del_accept_socket(f->http, f->sock);
        f->sock = NULL;
    }
}

void front_http_free(front_http *f)
{
    if (!f)
        return;
    evhttp_free(f->http);
    free(f);
}
