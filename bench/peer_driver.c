/* bench/peer_driver.c — the load driver for bench/peers.sh's replicated
 * peers: an ID counter on etcd v3 and on a replicated Redis, driven the way
 * bench_cluster drives seqd's indep32 case (one thread, N connections, one
 * request in flight on each, no pipelining).
 *
 *   peer_driver --etcd HOST:PORT,HOST:PORT,... --clients N --seconds S
 *               --key K [--pids P1,P2,...] [--system NAME]
 *       A counter allocated by compare-and-swap over etcd's HTTP/JSON
 *       gateway (HTTP/1.1 keep-alive, raw sockets): client i talks to
 *       endpoint i % count. Each client reads the key once
 *       (POST /v3/kv/range), then per ID sends
 *       POST /v3/kv/txn  If(mod_revision(k) == r) Then(Put k v+1) Else(Range k)
 *       and on failure retries with what the Else branch returned (the
 *       pattern of etcd's own STM: no extra read per conflict). The ID is
 *       v+1; its latency runs from the first attempt to the success.
 *   peer_driver --redis HOST:PORT --clients N --seconds S --key K
 *               [--pids ...] [--wait-replicas 1] [--wait-timeout MS]
 *       INCR k, then WAIT <replicas> <timeout>, then the next INCR (RESP over
 *       raw sockets; a WAIT that returns fewer replicas than asked counts
 *       in unacked=, and such an ID is not counted as acknowledged).
 *   peer_driver --seqd-http HOST:PORT,... --clients N --seconds S --key NAME
 *               [--pids ...] [--bench-shape single|indep32]
 *       seqd's own HTTP API (issue 12): POST /v1/sequences/NAME/ids?count=1
 *       per ID on keep-alive connections, client i to member i % count;
 *       with --bench-shape it prints bench_cluster's line instead,
 *       BENCH target=http fsync=always buf=0 clients=SHAPE ids_per_s=...
 *       p50_us=... p99_us=... cpu_us_per_id=... (IDs may have gaps: a
 *       retried round leaves one; the check is per-client order).
 *
 * Prints one line (bench/peers.sh's PEER shape):
 *   PEER system=NAME clients=N ids_per_s=<n> p50_us=<n> p99_us=<n>
 *        cpu_us_per_id=<x.y> driver_cpu_us_per_id=<x.y> [attempts_per_id=<x.yy>]
 *        [unacked=<n>] check=ok
 * cpu_us_per_id: user+system CPU of the --pids processes (/proc/PID/stat,
 * all threads) over the measured interval, per ID; driver_cpu_us_per_id:
 * this program's own (getrusage), so that a client-bound figure shows.
 * check=ok: the key is fresh, so the IDs must be exactly 1..count (the
 * highest ID seen equals the count, and each client's IDs increase);
 * otherwise the line says check=FAILED and the exit status is 1.
 * Exit 2: usage; 1: a server error, a refused connection, or a failed check.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define PD_MAX_CLIENTS 256
#define PD_MAX_PIDS 8
#define PD_BUF 16384

static void pd_die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void pd_die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("peer_driver: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

static double pd_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- base64 (etcd's gateway carries keys and values as base64) ---- */

static const char pd_b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static size_t pd_b64_enc(const char *in, size_t n, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)(unsigned char)in[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)(unsigned char)in[i + 1] << 8;
        if (i + 2 < n)
            v |= (uint32_t)(unsigned char)in[i + 2];
        out[o++] = pd_b64[(v >> 18) & 63];
        out[o++] = pd_b64[(v >> 12) & 63];
        out[o++] = i + 1 < n ? pd_b64[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < n ? pd_b64[v & 63] : '=';
    }
    out[o] = '\0';
    return o;
}

/* Decodes up to the closing quote; returns the length, -1 on a bad digit. */
static int pd_b64_dec(const char *in, char *out, size_t cap)
{
    uint32_t acc = 0;
    int bits = 0;
    size_t o = 0;
    for (; *in && *in != '"' && *in != '='; in++) {
        const char *p = strchr(pd_b64, *in);
        if (p == NULL)
            return -1;
        acc = acc << 6 | (uint32_t)(p - pd_b64);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (o + 1 >= cap)
                return -1;
            out[o++] = (char)(acc >> bits & 0xff);
        }
    }
    out[o] = '\0';
    return (int)o;
}

/* ---- one connection ---- */

enum pd_kind { PD_ETCD, PD_REDIS, PD_SEQD_HTTP };
enum pd_state { ST_RANGE, ST_TXN, ST_INCR, ST_WAIT, ST_DONE, ST_IDS };

typedef struct pd_client {
    int fd;
    int state;
    char out[2048];
    size_t outlen, outoff;
    char in[PD_BUF];
    size_t inlen;
    uint64_t val;       /* etcd: the value last seen; redis: the ID of this INCR */
    uint64_t rev;       /* etcd: its mod_revision */
    uint64_t prev_id, ids, attempts;
    double t_id;        /* first attempt of the current ID */
    bool busy;
} pd_client;

typedef struct pd_run {
    int kind;
    const char *system;
    int nclients;
    double secs;
    const char *key;
    char key64[256];
    int wait_replicas, wait_timeout;
    int npids;
    int pids[PD_MAX_PIDS];
    bool stop;
    int ep;
    double *lat;
    size_t nlat, caplat;
    uint64_t max_id, bad_order, unacked, errors;
    char err[512];
    pd_client cl[PD_MAX_CLIENTS];
} pd_run;

static void pd_lat(pd_run *r, double us)
{
    if (r->nlat == r->caplat) {
        r->caplat = r->caplat ? r->caplat * 2 : 65536;
        r->lat = realloc(r->lat, r->caplat * sizeof *r->lat);
        if (r->lat == NULL)
            pd_die("out of memory");
    }
    r->lat[r->nlat++] = us;
}

static int pd_connect(const char *hostport)
{
    char host[256];
    const char *colon = strrchr(hostport, ':');
    if (colon == NULL || (size_t)(colon - hostport) >= sizeof host)
        pd_die("bad address %s", hostport);
    snprintf(host, sizeof host, "%.*s", (int)(colon - hostport), hostport);
    struct addrinfo hints = { .ai_family = AF_INET, .ai_socktype = SOCK_STREAM }, *ai;
    if (getaddrinfo(host, colon + 1, &hints, &ai) != 0)
        pd_die("cannot resolve %s", hostport);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, ai->ai_addr, ai->ai_addrlen) != 0)
        pd_die("connect %s: %s", hostport, strerror(errno));
    freeaddrinfo(ai);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    return fd;
}

static void pd_want(pd_run *r, pd_client *c, uint32_t ev)
{
    struct epoll_event e = { .events = ev, .data.ptr = c };
    epoll_ctl(r->ep, EPOLL_CTL_MOD, c->fd, &e);
}

/* Queues c->out and tries to send it now (most requests go in one write). */
static void pd_send(pd_run *r, pd_client *c)
{
    c->outoff = 0;
    c->busy = true;
    while (c->outoff < c->outlen) {
        ssize_t n = write(c->fd, c->out + c->outoff, c->outlen - c->outoff);
        if (n > 0) {
            c->outoff += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            pd_want(r, c, EPOLLIN | EPOLLOUT);
            return;
        }
        pd_die("write: %s", n < 0 ? strerror(errno) : "closed");
    }
}

static void pd_http(pd_client *c, const char *path, const char *body)
{
    size_t blen = strlen(body);
    int n = snprintf(c->out, sizeof c->out,
                     "POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\n\r\n%s", path, blen, body);
    if (n < 0 || (size_t)n >= sizeof c->out)
        pd_die("request too long");
    c->outlen = (size_t)n;
}

static void pd_seqd_ids(pd_run *r, pd_client *c)
{
    int n = snprintf(c->out, sizeof c->out,
                     "POST /v1/sequences/%s/ids?count=1 HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     "Content-Length: 0\r\n\r\n", r->key);
    if (n < 0 || (size_t)n >= sizeof c->out)
        pd_die("request too long");
    c->outlen = (size_t)n;
    c->state = ST_IDS;
    pd_send(r, c);
}

static void pd_etcd_range(pd_run *r, pd_client *c)
{
    char body[512];
    snprintf(body, sizeof body, "{\"key\":\"%s\"}", r->key64);
    pd_http(c, "/v3/kv/range", body);
    c->state = ST_RANGE;
    pd_send(r, c);
}

static void pd_etcd_txn(pd_run *r, pd_client *c)
{
    char v[32], v64[64], body[1024];
    snprintf(v, sizeof v, "%llu", (unsigned long long)(c->val + 1));
    pd_b64_enc(v, strlen(v), v64);
    snprintf(body, sizeof body,
             "{\"compare\":[{\"key\":\"%s\",\"target\":\"MOD\",\"result\":\"EQUAL\","
             "\"mod_revision\":\"%llu\"}],"
             "\"success\":[{\"request_put\":{\"key\":\"%s\",\"value\":\"%s\"}}],"
             "\"failure\":[{\"request_range\":{\"key\":\"%s\"}}]}",
             r->key64, (unsigned long long)c->rev, r->key64, v64, r->key64);
    pd_http(c, "/v3/kv/txn", body);
    c->state = ST_TXN;
    c->attempts++;
    pd_send(r, c);
}

static void pd_redis_cmd(pd_run *r, pd_client *c, int argc, const char **argv)
{
    size_t o = (size_t)snprintf(c->out, sizeof c->out, "*%d\r\n", argc);
    for (int i = 0; i < argc; i++)
        o += (size_t)snprintf(c->out + o, sizeof c->out - o, "$%zu\r\n%s\r\n", strlen(argv[i]),
                              argv[i]);
    if (o >= sizeof c->out)
        pd_die("command too long");
    c->outlen = o;
    pd_send(r, c);
}

static void pd_redis_incr(pd_run *r, pd_client *c)
{
    const char *argv[] = { "INCR", r->key };
    c->state = ST_INCR;
    pd_redis_cmd(r, c, 2, argv);
}

static void pd_redis_wait(pd_run *r, pd_client *c)
{
    char nrep[16], tmo[16];
    snprintf(nrep, sizeof nrep, "%d", r->wait_replicas);
    snprintf(tmo, sizeof tmo, "%d", r->wait_timeout);
    const char *argv[] = { "WAIT", nrep, tmo };
    c->state = ST_WAIT;
    pd_redis_cmd(r, c, 3, argv);
}

/* Starts the next ID on c, or parks it once the time is up. */
static void pd_next(pd_run *r, pd_client *c)
{
    if (r->stop) {
        c->state = ST_DONE;
        c->busy = false;
        return;
    }
    c->t_id = pd_now();
    if (r->kind == PD_ETCD)
        pd_etcd_txn(r, c);
    else if (r->kind == PD_SEQD_HTTP)
        pd_seqd_ids(r, c);
    else
        pd_redis_incr(r, c);
}

static void pd_got_id(pd_run *r, pd_client *c, uint64_t id)
{
    pd_lat(r, (pd_now() - c->t_id) * 1e6);
    c->ids++;
    if (id <= c->prev_id)
        r->bad_order++;
    c->prev_id = id;
    if (id > r->max_id)
        r->max_id = id;
}

/* "name":"digits" after p (etcd's gateway writes int64 as strings). */
static bool pd_json_u64(const char *p, const char *name, uint64_t *v)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":\"", name);
    const char *q = strstr(p, pat);
    if (q == NULL)
        return false;
    *v = strtoull(q + strlen(pat), NULL, 10);
    return true;
}

/* The value and mod_revision of the one kv in a range response body (a key
 * that does not exist: 0 and 0, which a MOD compare matches). */
static bool pd_etcd_kv(const char *body, uint64_t *val, uint64_t *rev)
{
    const char *kvs = strstr(body, "\"kvs\":[");
    if (kvs == NULL) {
        *val = *rev = 0;
        return true;
    }
    const char *vq = strstr(kvs, "\"value\":\"");
    char dec[64];
    if (!pd_json_u64(kvs, "mod_revision", rev) || vq == NULL ||
        pd_b64_dec(vq + 9, dec, sizeof dec) <= 0)
        return false;
    *val = strtoull(dec, NULL, 10);
    return true;
}

/* One whole HTTP response in c->in? Returns its length (and the body, NUL
 * terminated in place), 0 when more is needed. */
static size_t pd_http_parse(pd_run *r, pd_client *c, char **body, int *status)
{
    c->in[c->inlen] = '\0';
    char *eoh = strstr(c->in, "\r\n\r\n");
    if (eoh == NULL)
        return 0;
    *status = atoi(c->in + 9);
    char *b = eoh + 4;
    size_t hlen = (size_t)(b - c->in);
    char *cl = strcasestr(c->in, "\r\ncontent-length:");
    if (cl != NULL && cl < eoh) {
        size_t len = strtoul(cl + 17, NULL, 10);
        if (hlen + len > c->inlen)
            return 0;
        *body = b;
        /* Safe to terminate in place: one request is in flight per
         * connection, so nothing follows this response in in[] (which
         * keeps a spare byte for the NUL). */
        b[len] = '\0';
        return hlen + len;
    }
    char *te = strcasestr(c->in, "\r\ntransfer-encoding: chunked");
    if (te == NULL || te > eoh) {
        snprintf(r->err, sizeof r->err, "response without a length");
        return (size_t)-1;
    }
    /* Chunked: decode into place once every chunk is in. */
    char *p = b, *w = b;
    for (;;) {
        char *crlf = strstr(p, "\r\n");
        if (crlf == NULL)
            return 0;
        size_t n = strtoul(p, NULL, 16);
        if (n == 0) {
            if ((size_t)(crlf + 4 - c->in) > c->inlen)
                return 0;
            size_t total = (size_t)(crlf + 4 - c->in);
            *w = '\0';
            *body = b;
            return total;
        }
        if ((size_t)(crlf + 2 + n + 2 - c->in) > c->inlen)
            return 0;
        memmove(w, crlf + 2, n);
        w += n;
        p = crlf + 2 + n + 2;
    }
}

static void pd_fail(pd_run *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void pd_fail(pd_run *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->err, sizeof r->err, fmt, ap);
    va_end(ap);
    r->errors++;
    r->stop = true;
}

/* Handles as many whole replies as c->in holds; false: wait for more. */
static bool pd_etcd_reply(pd_run *r, pd_client *c, size_t *used)
{
    char *body;
    int status = 0;
    size_t n = pd_http_parse(r, c, &body, &status);
    if (n == (size_t)-1) {
        pd_fail(r, "etcd: %s", r->err);
        return false;
    }
    if (n == 0)
        return false;
    *used = n;
    c->busy = false;
    if (status != 200) {
        pd_fail(r, "etcd: HTTP %d: %.200s", status, body);
        return true;
    }
    if (c->state == ST_RANGE) {
        if (!pd_etcd_kv(body, &c->val, &c->rev)) {
            pd_fail(r, "etcd: cannot read the range reply: %.200s", body);
            return true;
        }
        return true;   /* the measured interval starts the first ID */
    }
    /* ST_TXN */
    if (strstr(body, "\"succeeded\":true") != NULL) {
        uint64_t rev;
        if (!pd_json_u64(body, "revision", &rev)) {
            pd_fail(r, "etcd: txn reply without a revision: %.200s", body);
            return true;
        }
        c->val++;
        c->rev = rev;
        pd_got_id(r, c, c->val);
        pd_next(r, c);
    } else {
        if (!pd_etcd_kv(body, &c->val, &c->rev)) {
            pd_fail(r, "etcd: cannot read the failed txn's range: %.200s", body);
            return true;
        }
        pd_etcd_txn(r, c);   /* a retry of the same ID: it finishes even past the deadline */
    }
    return true;
}

static bool pd_seqd_reply(pd_run *r, pd_client *c, size_t *used)
{
    char *body;
    int status = 0;
    size_t n = pd_http_parse(r, c, &body, &status);
    if (n == (size_t)-1) {
        pd_fail(r, "seqd http: %s", r->err);
        return false;
    }
    if (n == 0)
        return false;
    *used = n;
    c->busy = false;
    uint64_t first;
    if (status != 200 || !pd_json_u64(body, "first", &first)) {
        pd_fail(r, "seqd http: HTTP %d: %.200s", status, body);
        return true;
    }
    pd_got_id(r, c, first);
    pd_next(r, c);
    return true;
}

static bool pd_redis_reply(pd_run *r, pd_client *c, size_t *used)
{
    c->in[c->inlen] = '\0';
    char *crlf = strstr(c->in, "\r\n");
    if (crlf == NULL)
        return false;
    *used = (size_t)(crlf + 2 - c->in);
    c->busy = false;
    if (c->in[0] != ':') {
        pd_fail(r, "redis: %.*s", (int)(crlf - c->in), c->in);
        return true;
    }
    long long v = strtoll(c->in + 1, NULL, 10);
    if (c->state == ST_INCR) {
        c->val = (uint64_t)v;
        pd_redis_wait(r, c);
    } else {
        if (v < r->wait_replicas)
            r->unacked++;
        else
            pd_got_id(r, c, c->val);
        pd_next(r, c);
    }
    return true;
}

static void pd_readable(pd_run *r, pd_client *c)
{
    for (;;) {
        if (c->inlen >= sizeof c->in - 1)
            pd_die("reply larger than %d bytes", PD_BUF);
        ssize_t n = read(c->fd, c->in + c->inlen, sizeof c->in - 1 - c->inlen);
        if (n > 0) {
            c->inlen += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        pd_fail(r, "connection closed by the server%s%s", n < 0 ? ": " : "",
                n < 0 ? strerror(errno) : "");
        c->busy = false;
        c->state = ST_DONE;
        return;
    }
    size_t used = 0;
    while (c->inlen > 0 &&
           (r->kind == PD_ETCD        ? pd_etcd_reply(r, c, &used)
            : r->kind == PD_SEQD_HTTP ? pd_seqd_reply(r, c, &used)
                                      : pd_redis_reply(r, c, &used))) {
        memmove(c->in, c->in + used, c->inlen - used);
        c->inlen -= used;
        used = 0;
    }
}

static double pd_pids_cpu(const pd_run *r)
{
    double sum = 0, tick = (double)sysconf(_SC_CLK_TCK);
    for (int i = 0; i < r->npids; i++) {
        char path[64], buf[1024];
        snprintf(path, sizeof path, "/proc/%d/stat", r->pids[i]);
        FILE *f = fopen(path, "r");
        size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
        if (f)
            fclose(f);
        buf[n] = '\0';
        char *p = strrchr(buf, ')');
        unsigned long long ut = 0, st = 0;
        if (p == NULL || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
                                &ut, &st) != 2)
            return NAN;
        sum += (double)(ut + st) / tick;
    }
    return sum;
}

static double pd_self_cpu(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static int pd_cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pd_pct(const pd_run *r, double p)
{
    if (r->nlat == 0)
        return NAN;
    size_t i = (size_t)ceil(p * (double)r->nlat);
    i = i > 0 ? i - 1 : 0;
    return r->lat[i < r->nlat ? i : r->nlat - 1];
}

static void pd_usage(void)
{
    fprintf(stderr, "usage: peer_driver (--etcd H:P,H:P,... | --redis H:P) --clients N --seconds S\n"
                    "                   --key K [--pids P,P,...] [--system NAME]\n"
                    "                   [--wait-replicas N] [--wait-timeout MS]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    static pd_run run;
    pd_run *r = &run;
    const char *etcd = NULL, *redis = NULL, *seqd_http = NULL, *pids = NULL, *shape = NULL;
    r->nclients = 1;
    r->secs = 5;
    r->wait_replicas = 1;
    r->wait_timeout = 1000;
    for (int i = 1; i < argc; i++) {
        if (i + 1 >= argc)
            pd_usage();
        const char *a = argv[i], *v = argv[++i];
        if (strcmp(a, "--etcd") == 0)
            etcd = v;
        else if (strcmp(a, "--redis") == 0)
            redis = v;
        else if (strcmp(a, "--seqd-http") == 0)
            seqd_http = v;
        else if (strcmp(a, "--bench-shape") == 0)
            shape = v;
        else if (strcmp(a, "--clients") == 0)
            r->nclients = atoi(v);
        else if (strcmp(a, "--seconds") == 0)
            r->secs = atof(v);
        else if (strcmp(a, "--key") == 0)
            r->key = v;
        else if (strcmp(a, "--pids") == 0)
            pids = v;
        else if (strcmp(a, "--system") == 0)
            r->system = v;
        else if (strcmp(a, "--wait-replicas") == 0)
            r->wait_replicas = atoi(v);
        else if (strcmp(a, "--wait-timeout") == 0)
            r->wait_timeout = atoi(v);
        else
            pd_usage();
    }
    if ((etcd != NULL) + (redis != NULL) + (seqd_http != NULL) != 1 || r->key == NULL ||
        strlen(r->key) > 100 ||
        r->nclients < 1 || r->nclients > PD_MAX_CLIENTS || r->secs <= 0)
        pd_usage();
    r->kind = etcd ? PD_ETCD : seqd_http ? PD_SEQD_HTTP : PD_REDIS;
    if (r->system == NULL)
        r->system = etcd ? "etcd3" : seqd_http ? "seqd-http" : "redis-repl";
    pd_b64_enc(r->key, strlen(r->key), r->key64);
    for (const char *p = pids; p && *p && r->npids < PD_MAX_PIDS;) {
        r->pids[r->npids++] = atoi(p);
        p = strchr(p, ',');
        p = p ? p + 1 : NULL;
    }

    /* The endpoints: etcd's list rotates over the clients. */
    char eps[PD_MAX_CLIENTS][64];
    int neps = 0;
    const char *list = etcd ? etcd : seqd_http ? seqd_http : redis;
    for (const char *p = list; p && *p && neps < PD_MAX_CLIENTS;) {
        const char *q = strchr(p, ',');
        size_t n = q ? (size_t)(q - p) : strlen(p);
        if (n == 0 || n >= sizeof eps[0])
            pd_usage();
        snprintf(eps[neps++], sizeof eps[0], "%.*s", (int)n, p);
        p = q ? q + 1 : NULL;
    }
    r->ep = epoll_create1(EPOLL_CLOEXEC);
    for (int i = 0; i < r->nclients; i++) {
        pd_client *c = &r->cl[i];
        c->fd = pd_connect(eps[i % neps]);
        struct epoll_event e = { .events = EPOLLIN, .data.ptr = c };
        epoll_ctl(r->ep, EPOLL_CTL_ADD, c->fd, &e);
    }
    /* etcd: each client reads the key first (not timed). */
    if (r->kind == PD_ETCD) {
        for (int i = 0; i < r->nclients; i++)
            pd_etcd_range(r, &r->cl[i]);
    }
    struct epoll_event evs[PD_MAX_CLIENTS];
    for (;;) {
        int busy = 0;
        for (int i = 0; i < r->nclients; i++)
            busy += r->cl[i].busy;
        if (busy == 0)
            break;
        int n = epoll_wait(r->ep, evs, PD_MAX_CLIENTS, 10000);
        if (n == 0)
            pd_die("no reply in 10 s");
        for (int k = 0; k < n; k++) {
            pd_client *c = evs[k].data.ptr;
            if (evs[k].events & EPOLLOUT) {
                size_t left = c->outlen - c->outoff;
                ssize_t w = write(c->fd, c->out + c->outoff, left);
                if (w > 0)
                    c->outoff += (size_t)w;
                if (c->outoff == c->outlen)
                    pd_want(r, c, EPOLLIN);
            }
            if (evs[k].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
                pd_readable(r, c);
        }
    }
    if (r->errors)
        pd_die("%s", r->err);
    for (int i = 0; i < r->nclients; i++)
        r->cl[i].attempts = 0;

    /* The measured interval. */
    double cpu0 = pd_pids_cpu(r), self0 = pd_self_cpu(), t0 = pd_now(), stop_at = t0 + r->secs;
    for (int i = 0; i < r->nclients; i++)
        pd_next(r, &r->cl[i]);
    for (;;) {
        int busy = 0;
        for (int i = 0; i < r->nclients; i++)
            busy += r->cl[i].busy;
        if (busy == 0)
            break;
        double now = pd_now();
        if (!r->stop && now >= stop_at)
            r->stop = true;   /* those in flight finish; none starts */
        int tmo = r->stop ? 10000 : (int)((stop_at - now) * 1000) + 1;
        int n = epoll_wait(r->ep, evs, PD_MAX_CLIENTS, tmo);
        if (n < 0 && errno == EINTR)
            continue;
        if (n == 0 && r->stop)
            pd_die("no reply in 10 s");
        for (int k = 0; k < n; k++) {
            pd_client *c = evs[k].data.ptr;
            if (evs[k].events & EPOLLOUT) {
                ssize_t w = write(c->fd, c->out + c->outoff, c->outlen - c->outoff);
                if (w > 0)
                    c->outoff += (size_t)w;
                if (c->outoff == c->outlen)
                    pd_want(r, c, EPOLLIN);
            }
            if (evs[k].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
                pd_readable(r, c);
        }
    }
    double el = pd_now() - t0, cpu1 = pd_pids_cpu(r), self1 = pd_self_cpu();
    if (r->errors)
        pd_die("%s", r->err);

    uint64_t ids = 0, attempts = 0;
    for (int i = 0; i < r->nclients; i++) {
        ids += r->cl[i].ids;
        attempts += r->cl[i].attempts;
        close(r->cl[i].fd);
    }
    if (ids == 0)
        pd_die("no ID at all in %.1f s", el);
    /* Fresh key: the IDs handed out are exactly 1..max; an unacked Redis
     * INCR still took a number, so those count towards max too. */
    bool ok = r->bad_order == 0 && (r->kind == PD_SEQD_HTTP || r->max_id <= ids + r->unacked) &&
              (r->kind != PD_ETCD || r->max_id == ids);
    qsort(r->lat, r->nlat, sizeof *r->lat, pd_cmp);
    if (shape) {
        printf("BENCH target=http fsync=always buf=0 clients=%s ids_per_s=%.0f p50_us=%.0f "
               "p99_us=%.0f cpu_us_per_id=%.1f driver_cpu_us_per_id=%.1f check=%s\n", shape,
               (double)ids / el, pd_pct(r, 0.5), pd_pct(r, 0.99),
               r->npids > 0 ? (cpu1 - cpu0) * 1e6 / (double)ids : NAN,
               (self1 - self0) * 1e6 / (double)ids, ok ? "ok" : "FAILED");
        free(r->lat);
        return ok ? 0 : 1;
    }
    printf("PEER system=%s clients=%d ids_per_s=%.0f p50_us=%.0f p99_us=%.0f", r->system,
           r->nclients, (double)ids / el, pd_pct(r, 0.5), pd_pct(r, 0.99));
    if (r->npids > 0 && !isnan(cpu0) && !isnan(cpu1))
        printf(" cpu_us_per_id=%.1f", (cpu1 - cpu0) * 1e6 / (double)ids);
    else
        printf(" cpu_us_per_id=-");
    printf(" driver_cpu_us_per_id=%.1f", (self1 - self0) * 1e6 / (double)ids);
    if (r->kind == PD_ETCD)
        printf(" attempts_per_id=%.2f", (double)attempts / (double)ids);
    else
        printf(" unacked=%llu", (unsigned long long)r->unacked);
    printf(" check=%s\n", ok ? "ok" : "FAILED");
    if (!ok)
        fprintf(stderr, "peer_driver: check failed: %llu IDs, highest %llu, %llu out of order\n",
                (unsigned long long)ids, (unsigned long long)r->max_id,
                (unsigned long long)r->bad_order);
    free(r->lat);
    return ok ? 0 : 1;
}
