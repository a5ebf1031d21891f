/* tests/test_http.c — the operating surface (DESIGN.md §5, issue 11) with
 * real seqd processes (tests/procs.h): --http's endpoints, the Prometheus
 * exposition, `seqd status --json`, log levels and formats, and SIGHUP.
 * Slots 33 and 34 of tests/procs.h are this suite's; a member's --http
 * port is its port + HT_HTTP_OFFSET, inside the slot's block of ports.
 */
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "procs.h"

#define HT_R 200u
#define HT_READY_MS 20000
#define HT_HTTP_OFFSET 10   /* members use base+0..6 of the slot's 50 ports */

static procs_cluster *ht_pc;
static char ht_http[PROCS_MAX][32];
static const char *ht_more[PROCS_MAX][5];

static void ht_fini(void)
{
    procs_cluster_free(ht_pc);
    ht_pc = NULL;
}

static void ht_failf(const char *expr, const char *file, int line, const char *fmt, ...)
{
    static char msg[2048], logs[24576];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    logs[0] = '\0';
    if (ht_pc)
        procs_logs(ht_pc, 12, logs, sizeof logs);
    cr_assert_fail("%s:%d: %s: %s\n%s", file, line, expr, msg, logs);
}

#define ht_assert(cond, ...)                                                   \
    do {                                                                       \
        if (!(cond))                                                           \
            ht_failf(#cond, __FILE__, __LINE__, __VA_ARGS__);                  \
    } while (0)

/* ---- a tiny HTTP/1.1 client: one request per connection ------------------- */

typedef struct ht_resp {
    int code;            /* -1: no answer */
    char raw[65536];
    const char *body;
} ht_resp;

static int ht_request(int port, const char *req, size_t reqlen, ht_resp *r)
{
    r->code = -1;
    r->raw[0] = '\0';
    r->body = r->raw;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        close(fd);
        return -1;
    }
    for (size_t off = 0; off < reqlen;) {
        ssize_t n = send(fd, req + off, reqlen - off, MSG_NOSIGNAL);
        if (n <= 0)
            break;   /* the server may close early (oversized): read its answer */
        off += (size_t)n;
    }
    size_t used = 0;
    for (;;) {
        ssize_t n = recv(fd, r->raw + used, sizeof r->raw - 1 - used, 0);
        if (n <= 0)
            break;
        used += (size_t)n;
        if (used == sizeof r->raw - 1)
            break;
    }
    close(fd);
    r->raw[used] = '\0';
    if (sscanf(r->raw, "HTTP/1.%*d %d", &r->code) != 1)
        r->code = -1;
    const char *b = strstr(r->raw, "\r\n\r\n");
    r->body = b ? b + 4 : r->raw + used;
    return r->code;
}

static int ht_get(int i, const char *method, const char *path, ht_resp *r)
{
    char req[512];
    int n = snprintf(req, sizeof req, "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
                     method, path);
    return ht_request(ht_pc->m[i].port + HT_HTTP_OFFSET, req, (size_t)n, r);
}

/* ---- a tiny JSON checker: structure only (RFC 8259 grammar) ---------------- */

static const char *js_ws(const char *p)
{
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
        p++;
    return p;
}

static const char *js_value(const char *p, int depth);

static const char *js_string(const char *p)
{
    if (*p++ != '"')
        return NULL;
    while (*p && *p != '"') {
        if ((unsigned char)*p < 0x20)
            return NULL;
        if (*p == '\\') {
            p++;
            if (*p == 'u') {
                for (int k = 1; k <= 4; k++)
                    if (!isxdigit((unsigned char)p[k]))
                        return NULL;
                p += 4;
            } else if (!*p || !strchr("\"\\/bfnrt", *p)) {
                return NULL;
            }
        }
        p++;
    }
    return *p == '"' ? p + 1 : NULL;
}

static const char *js_number(const char *p)
{
    const char *s = p;
    if (*p == '-')
        p++;
    if (!isdigit((unsigned char)*p))
        return NULL;
    while (isdigit((unsigned char)*p) || *p == '.' || *p == 'e' || *p == 'E' || *p == '+' || *p == '-')
        p++;
    return p > s ? p : NULL;
}

static const char *js_seq(const char *p, char close, bool members, int depth)
{
    p = js_ws(p + 1);
    if (*p == close)
        return p + 1;
    for (;;) {
        if (members) {
            p = js_string(js_ws(p));
            if (!p || *(p = js_ws(p)) != ':')
                return NULL;
            p++;
        }
        p = js_value(p, depth + 1);
        if (!p)
            return NULL;
        p = js_ws(p);
        if (*p == close)
            return p + 1;
        if (*p != ',')
            return NULL;
        p++;
    }
}

static const char *js_value(const char *p, int depth)
{
    if (depth > 32)
        return NULL;
    p = js_ws(p);
    switch (*p) {
    case '{': return js_seq(p, '}', true, depth);
    case '[': return js_seq(p, ']', false, depth);
    case '"': return js_string(p);
    case 't': return strncmp(p, "true", 4) == 0 ? p + 4 : NULL;
    case 'f': return strncmp(p, "false", 5) == 0 ? p + 5 : NULL;
    case 'n': return strncmp(p, "null", 4) == 0 ? p + 4 : NULL;
    default: return js_number(p);
    }
}

/* The whole text is one JSON value (and nothing but blanks after it). */
static bool js_valid(const char *text)
{
    const char *end = js_value(text, 0);
    return end && *js_ws(end) == '\0';
}

Test(http_json, checker_sanity)
{
    cr_assert(js_valid("{\"a\":[1,2,{\"b\":\"c\\\"\"}],\"d\":true}\n"));
    cr_assert(!js_valid("{\"a\":1,}"));
    cr_assert(!js_valid("{\"a\":1} x"));
    cr_assert(!js_valid("[\"\x01\"]"));
}

/* ---- the Prometheus text format ------------------------------------------- */

/* Every line is a comment (# HELP / # TYPE name ...) or a sample
 * `name{labels} value` / `name value`; names [a-zA-Z_:][a-zA-Z0-9_:]*.
 * Returns the number of samples, -1 (with the bad line in why) if any line
 * is malformed. */
static int prom_parse(const char *text, char *why, size_t whylen)
{
    int samples = 0;
    for (const char *line = text; *line;) {
        const char *eol = strchr(line, '\n');
        if (!eol) {
            snprintf(why, whylen, "last line has no newline: '%s'", line);
            return -1;
        }
        int len = (int)(eol - line);
        const char *p = line;
        bool ok = true;
        if (*p == '#') {
            ok = strncmp(p, "# HELP seqd_", 12) == 0 || strncmp(p, "# TYPE seqd_", 12) == 0;
            if (ok && strncmp(p, "# TYPE", 6) == 0) {
                const char *t = memrchr(line, ' ', (size_t)len) + 1;
                int tl = (int)(eol - t);
                ok = (tl == 7 && strncmp(t, "counter", 7) == 0) || (tl == 5 && strncmp(t, "gauge", 5) == 0) ||
                     (tl == 9 && strncmp(t, "histogram", 9) == 0);
            }
        } else {
            ok = strncmp(p, "seqd_", 5) == 0;
            while (ok && (isalnum((unsigned char)*p) || *p == '_' || *p == ':'))
                p++;
            if (ok && *p == '{') {
                const char *close = memchr(p, '}', (size_t)(eol - p));
                ok = close && close[-1] == '"' && strchr(p, '=') < close;
                p = close ? close + 1 : p;
            }
            ok = ok && *p == ' ';
            if (ok) {
                char *end;
                strtod(p + 1, &end);
                ok = end == eol && end > p + 1;
            }
            samples += ok;
        }
        if (!ok) {
            snprintf(why, whylen, "bad line: '%.*s'", len, line);
            return -1;
        }
        line = eol + 1;
    }
    return samples;
}

/* The value of sample `name` (exact, with its labels if any); -1 if absent. */
static double prom_value(const char *text, const char *name)
{
    size_t nl = strlen(name);
    for (const char *p = text; (p = strstr(p, name)) != NULL; p += nl)
        if ((p == text || p[-1] == '\n') && p[nl] == ' ')
            return strtod(p + nl + 1, NULL);
    return -1;
}

/* ---- the cluster ------------------------------------------------------------ */

static void ht_start(int slot, const char *log_format_of_member_1)
{
    char why[256] = "";
    ht_pc = procs_cluster_new(3, slot, HT_R, NULL, why, sizeof why);
    cr_assert_not_null(ht_pc, "%s", why);
    ht_pc->no_auto_init = true;
    for (int i = 0; i < 3; i++) {
        snprintf(ht_http[i], sizeof ht_http[i], "127.0.0.1:%d", ht_pc->m[i].port + HT_HTTP_OFFSET);
        int k = 0;
        ht_more[i][k++] = "--http";
        ht_more[i][k++] = ht_http[i];
        if (i == 1 && log_format_of_member_1) {
            ht_more[i][k++] = "--log-format";
            ht_more[i][k++] = log_format_of_member_1;
        }
        ht_more[i][k] = NULL;
        ht_assert(procs_start(ht_pc, i, ht_more[i]) == 0, "start %d", i);
    }
}

static void ht_wait_http(int i)
{
    ht_resp *r = malloc(sizeof *r);
    int64_t until = procs_now_ms() + 10000;
    while (ht_get(i, "GET", "/healthz", r) != 200 && procs_now_ms() < until)
        procs_sleep_ms(20);
    ht_assert(r->code == 200 && strcmp(r->body, "ok\n") == 0, "/healthz of %d: %d '%s'", i, r->code, r->raw);
    free(r);
}

static void ht_ready(void)
{
    static char why[24576];
    ht_assert(procs_wait_ready(ht_pc, HT_READY_MS, why, sizeof why), "%s", why);
}

static void ht_fetch(int i, uint32_t count)
{
    char err[256];
    client *c = client_new(ht_pc->m[i].addr, err, sizeof err);
    ht_assert(c != NULL, "%s", err);
    uint64_t first;
    ht_assert(client_fetch(c, "ht.seq", count, 5000, &first, err, sizeof err) == CLIENT_OK, "%s", err);
    client_free(c);
}

Test(http, endpoints_metrics_and_status_json, .timeout = 90, .fini = ht_fini)
{
    ht_start(33, NULL);
    ht_resp *r = malloc(sizeof *r);
    char why[512];
    for (int i = 0; i < 3; i++)
        ht_wait_http(i);

    /* Before init: alive, not ready, and the metrics say so. */
    ht_assert(ht_get(0, "GET", "/readyz", r) == 503 && strcmp(r->body, "recovering\n") == 0,
              "/readyz before init: %d '%s'", r->code, r->raw);
    ht_assert(ht_get(0, "GET", "/metrics", r) == 200, "%d", r->code);
    ht_assert(prom_value(r->body, "seqd_member_recovering") == 1 &&
              prom_value(r->body, "seqd_member_ready") == 0, "%s", r->body);

    char err[256];
    ht_assert(procs_init(ht_pc, err, sizeof err), "%s", err);
    ht_ready();
    for (int i = 0; i < 3; i++)
        ht_assert(ht_get(i, "GET", "/readyz", r) == 200 && strcmp(r->body, "ready\n") == 0,
                  "/readyz of %d after init: %d '%s'", i, r->code, r->raw);

    /* /v1/status: the object `seqd status --json` prints for this member. */
    ht_assert(ht_get(0, "GET", "/v1/status", r) == 200, "%d", r->code);
    ht_assert(strstr(r->raw, "Content-Type: application/json"), "%s", r->raw);
    ht_assert(js_valid(r->body), "not JSON: '%s'", r->body);
    char want[128];
    snprintf(want, sizeof want, "{\"address\":\"%s\",\"state\":\"ready\",\"index\":0,\"members\":3,"
                                "\"counters\":{\"fetches\":", ht_pc->m[0].addr);
    ht_assert(strncmp(r->body, want, strlen(want)) == 0, "want '%s...', got '%s'", want, r->body);
    const char *fields[] = {"\"ids\":", "\"rounds\":", "\"reads\":", "\"nacks\":", "\"fsyncs\":", "\"records\":"};
    for (size_t k = 0; k < sizeof fields / sizeof fields[0]; k++)
        ht_assert(strstr(r->body, fields[k]), "no %s in '%s'", fields[k], r->body);

    /* /metrics parses, and its counters move with fetches. */
    ht_assert(ht_get(0, "GET", "/metrics", r) == 200, "%d", r->code);
    ht_assert(strstr(r->raw, "Content-Type: text/plain; version=0.0.4"), "%s", r->raw);
    ht_assert(prom_parse(r->body, why, sizeof why) > 0, "%s", why);
    const char *names[] = {"seqd_fetches_total", "seqd_ids_total", "seqd_rounds_total",
                           "seqd_reads_total", "seqd_nacks_total", "seqd_fsyncs_total",
                           "seqd_log_records_total", "seqd_member_ready", "seqd_member_recovering",
                           "seqd_peers_up", "seqd_sequences", "seqd_fetch_duration_seconds_count",
                           "seqd_fetch_duration_seconds_bucket{le=\"+Inf\"}"};
    double before[sizeof names / sizeof names[0]];
    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
        before[k] = prom_value(r->body, names[k]);
        ht_assert(before[k] >= 0, "no %s in\n%s", names[k], r->body);
    }
    ht_assert(prom_value(r->body, "seqd_member_ready") == 1, "%s", r->body);
    ht_assert(prom_value(r->body, "seqd_peers_up") == 2, "%s", r->body);
    for (int k = 0; k < 5; k++)
        ht_fetch(0, 10);
    ht_assert(ht_get(0, "GET", "/metrics", r) == 200, "%d", r->code);
    ht_assert(prom_parse(r->body, why, sizeof why) > 0, "%s", why);
    ht_assert(prom_value(r->body, "seqd_fetches_total") == before[0] + 5, "%s", r->body);
    ht_assert(prom_value(r->body, "seqd_ids_total") == before[1] + 50, "%s", r->body);
    ht_assert(prom_value(r->body, "seqd_rounds_total") > before[2], "%s", r->body);
    ht_assert(prom_value(r->body, "seqd_fsyncs_total") > before[5], "%s", r->body);
    ht_assert(prom_value(r->body, "seqd_sequences") == 1, "%s", r->body);
    ht_assert(prom_value(r->body, "seqd_fetch_duration_seconds_count") == before[11] + 5, "%s", r->body);
    ht_assert(prom_value(r->body, "seqd_fetch_duration_seconds_bucket{le=\"+Inf\"}") == before[12] + 5,
              "%s", r->body);
    /* Cumulative buckets never decrease. */
    double last = 0;
    for (const char *p = r->body; (p = strstr(p, "seqd_fetch_duration_seconds_bucket{")); p++) {
        double v = strtod(strchr(p, ' ') + 1, NULL);
        ht_assert(v >= last, "buckets not cumulative:\n%s", r->body);
        last = v;
    }

    /* Unknown paths, wrong methods, an oversized request. */
    ht_assert(ht_get(0, "GET", "/nope", r) == 404, "%d", r->code);
    ht_assert(ht_get(0, "GET", "/metricsx", r) == 404, "%d", r->code);
    ht_assert(ht_get(0, "POST", "/metrics", r) == 405 && strstr(r->raw, "Allow: GET"), "%s", r->raw);
    ht_assert(ht_get(0, "DELETE", "/readyz", r) == 405, "%d", r->code);
    static char big[40000];
    int n = snprintf(big, sizeof big, "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: ");
    memset(big + n, 'a', 30000);
    n += 30000;
    n += snprintf(big + n, sizeof big - (size_t)n, "\r\nConnection: close\r\n\r\n");
    int code = ht_request(ht_pc->m[0].port + HT_HTTP_OFFSET, big, (size_t)n, r);
    ht_assert(code == -1 || (code >= 400 && code < 500), "oversized header answered %d", code);
    ht_wait_http(0);
    ht_assert(procs_reap(ht_pc, 0, 0) == -2, "member 0 exited after an oversized request");

    /* `seqd status --json`: one document; every member's object is what
     * its /v1/status says (counters aside, which move). */
    procs_result *pr = malloc(sizeof *pr);
    ht_assert(procs_run(pr, 10000, NULL, "status", "--json", "--servers", ht_pc->servers, (char *)NULL) == 0,
              "status --json: %d %s %s", pr->status, pr->out, pr->err);
    ht_assert(js_valid(pr->out), "not JSON: '%s'", pr->out);
    ht_assert(strncmp(pr->out, "{\"members\":[{\"address\":", 23) == 0, "%s", pr->out);
    ht_assert(strstr(pr->out, "],\"ready\":true}\n"), "%s", pr->out);
    for (int i = 0; i < 3; i++) {
        snprintf(want, sizeof want, "{\"address\":\"%s\",\"state\":\"ready\",\"index\":%d,\"members\":3,",
                 ht_pc->m[i].addr, i);
        ht_assert(strstr(pr->out, want), "no '%s' in %s", want, pr->out);
    }
    /* A member down: still one document, exit 1. */
    procs_kill(ht_pc, 2);
    ht_assert(procs_run(pr, 10000, NULL, "status", "--json", "--servers", ht_pc->servers, (char *)NULL) == 1,
              "status --json with one down: %d %s", pr->status, pr->out);
    ht_assert(js_valid(pr->out), "not JSON: '%s'", pr->out);
    snprintf(want, sizeof want, "{\"address\":\"%s\",\"state\":\"down\",\"error\":", ht_pc->m[2].addr);
    ht_assert(strstr(pr->out, want) && strstr(pr->out, "\"ready\":false}"), "%s", pr->out);
    ht_assert(ht_get(0, "GET", "/metrics", r) == 200, "%d", r->code);
    int64_t until = procs_now_ms() + 5000;
    while (prom_value(r->body, "seqd_peers_up") != 1 && procs_now_ms() < until) {
        procs_sleep_ms(50);
        ht_get(0, "GET", "/metrics", r);
    }
    ht_assert(prom_value(r->body, "seqd_peers_up") == 1, "%s", r->body);
    /* Levels on the log lines. */
    ht_assert(procs_log_has(ht_pc, 0, "] info: ready"), "no info-level ready line");
    free(pr);
    free(r);
}

Test(http, sighup_keeps_serving_and_json_logs, .timeout = 60, .fini = ht_fini)
{
    ht_start(34, "json");
    char err[256];
    for (int i = 0; i < 3; i++)
        ht_wait_http(i);
    ht_assert(procs_init(ht_pc, err, sizeof err), "%s", err);
    ht_ready();
    for (int i = 0; i < 3; i++)
        ht_assert(kill(ht_pc->m[i].pid, SIGHUP) == 0, "kill");
    procs_sleep_ms(300);
    for (int i = 0; i < 3; i++) {
        ht_assert(procs_reap(ht_pc, i, 0) == -2, "member %d exited on SIGHUP", i);
        ht_assert(procs_log_has(ht_pc, i, "SIGHUP: nothing to reopen, logs go to stderr"),
                  "member %d did not log the SIGHUP", i);
        ht_wait_http(i);
        ht_fetch(i, 3);
    }
    ht_ready();
    /* Member 1 logs JSON lines, with the level and its address. */
    char want[128];
    snprintf(want, sizeof want, "\"level\":\"info\",\"member\":\"%s\",\"msg\":\"SIGHUP: nothing",
             ht_pc->m[1].addr);
    ht_assert(procs_log_has(ht_pc, 1, want), "no JSON SIGHUP line");
    ht_assert(procs_log_has(ht_pc, 1, "{\"ts\":\""), "no JSON ts");
    ht_assert(!procs_log_has(ht_pc, 0, "{\"ts\":\""), "member 0 logs text");
}

Test(http, refused_beyond_loopback_without_secret, .timeout = 30)
{
    procs_result *r = malloc(sizeof *r);
    int st = procs_run(r, 10000, NULL, "serve", "--listen", "127.0.0.1:1", "--data",
                       "/nonexistent/seqd-http-test", "--http", "0.0.0.0:2", (char *)NULL);
    cr_assert_eq(st, 2, "exit %d: %s", st, r->err);
    cr_assert(strstr(r->err, "refusing --http 0.0.0.0:2 in protected mode"), "%s", r->err);
    st = procs_run(r, 10000, NULL, "serve", "--listen", "127.0.0.1:1", "--data",
                   "/nonexistent/seqd-http-test", "--http", "nocolon", (char *)NULL);
    cr_assert_eq(st, 2, "exit %d: %s", st, r->err);
    st = procs_run(r, 10000, NULL, "serve", "--listen", "127.0.0.1:1", "--data",
                   "/nonexistent/seqd-http-test", "--log-level", "loud", (char *)NULL);
    cr_assert_eq(st, 2, "exit %d: %s", st, r->err);
    cr_assert(strstr(r->err, "bad --log-level 'loud'"), "%s", r->err);
    free(r);
}
