/* tests/test_client.c — the client library against fake members.
 *
 * A fake member is a thread with a listening socket on a free port that
 * answers frames in one scripted way (ranges, an error code, silence, a
 * late answer, a close after replying). This pins the client's behaviour
 * that the real cluster tests can only reach by luck: failover order,
 * deadlines split between attempts, stale replies dropped by reqid,
 * connections reused and transparently reopened.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "../client/client_admin.h"
#include "../net/frame.h"

enum fake_mode {
    FAKE_RANGE,       /* answer every fetch with the next range */
    FAKE_ERR,         /* answer with MSG_REPLY_ERR err_code */
    FAKE_SILENT,      /* read requests, never answer */
    FAKE_LATE_FIRST,  /* sleep delay_ms before answering the first fetch */
    FAKE_CLOSE_AFTER  /* answer, then close the connection */
};

#define FAKE_CONNS 8

typedef struct fake {
    int lfd, port;
    pthread_t th;
    atomic_bool stop;
    enum fake_mode mode;
    uint16_t err_code;
    int delay_ms;
    atomic_int accepts, requests;
    atomic_uint last_timeout_ms;
    uint64_t next;
    int fds[FAKE_CONNS];
    uint8_t *bufs[FAKE_CONNS];
    size_t lens[FAKE_CONNS];
} fake;

static void fake_sleep_ms(int ms)
{
    struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000 };
    nanosleep(&ts, NULL);
}

static int64_t fake_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void fake_send(int fd, const seqd_msg *m)
{
    uint8_t buf[SEQD_MAX_FRAME];
    size_t len = frame_pack(m, buf);
    size_t off = 0;
    while (off < len) {
        ssize_t r = send(fd, buf + off, len - off, MSG_NOSIGNAL);
        if (r <= 0)
            return;
        off += (size_t)r;
    }
}

/* Answers one request per the fake's mode. Returns false to close. */
static bool fake_answer(fake *f, int fd, const seqd_msg *req)
{
    int n = atomic_fetch_add(&f->requests, 1);
    seqd_msg rep = { .reqid = req->reqid };
    if (req->type == MSG_STATUS) {
        rep.type = MSG_STATUS_REPLY;
        rep.u.status.state = STATE_READY;
        rep.u.status.n_members = 1;
        fake_send(fd, &rep);
        return true;
    }
    if (req->type != MSG_FETCH)
        return false;
    atomic_store(&f->last_timeout_ms, req->u.fetch.timeout_ms);
    switch (f->mode) {
    case FAKE_SILENT:
        return true;
    case FAKE_ERR:
        rep.type = MSG_REPLY_ERR;
        rep.u.err.code = f->err_code;
        rep.u.err.text = "fake";
        rep.u.err.len = 4;
        fake_send(fd, &rep);
        return true;
    case FAKE_LATE_FIRST:
        if (n == 0)
            fake_sleep_ms(f->delay_ms);
        break;
    default:
        break;
    }
    rep.type = MSG_RANGE;
    rep.u.range.first = f->next;
    rep.u.range.count = req->u.fetch.count;
    f->next += req->u.fetch.count;
    fake_send(fd, &rep);
    return f->mode != FAKE_CLOSE_AFTER;
}

static void fake_close(fake *f, int k)
{
    close(f->fds[k]);
    f->fds[k] = -1;
    f->lens[k] = 0;
}

/* Reads what connection k has and answers every whole frame in it. */
static void fake_serve_conn(fake *f, int k)
{
    ssize_t r = recv(f->fds[k], f->bufs[k] + f->lens[k], SEQD_MAX_FRAME - f->lens[k], 0);
    if (r <= 0) {
        fake_close(f, k);
        return;
    }
    f->lens[k] += (size_t)r;
    for (;;) {
        seqd_msg m;
        if (f->lens[k] < 4)
            return;
        const uint8_t *b = f->bufs[k];
        size_t size = 4u + (((size_t)b[0] << 24) | ((size_t)b[1] << 16) | ((size_t)b[2] << 8) | b[3]);
        if (f->lens[k] < size)
            return;
        if (frame_parse(b, size, &m) != FRAME_OK || !fake_answer(f, f->fds[k], &m)) {
            fake_close(f, k);
            return;
        }
        memmove(f->bufs[k], f->bufs[k] + size, f->lens[k] - size);
        f->lens[k] -= size;
    }
}

static void *fake_main(void *arg)
{
    fake *f = arg;
    while (!atomic_load(&f->stop)) {
        struct pollfd p[FAKE_CONNS + 1];
        p[0] = (struct pollfd){ .fd = f->lfd, .events = POLLIN };
        for (int k = 0; k < FAKE_CONNS; k++)
            p[k + 1] = (struct pollfd){ .fd = f->fds[k], .events = POLLIN };
        if (poll(p, FAKE_CONNS + 1, 20) <= 0)
            continue;
        if (p[0].revents & POLLIN) {
            int fd = accept(f->lfd, NULL, NULL);
            for (int k = 0; fd >= 0 && k < FAKE_CONNS; k++) {
                if (f->fds[k] < 0) {
                    f->fds[k] = fd;
                    fd = -1;
                    atomic_fetch_add(&f->accepts, 1);
                }
            }
            if (fd >= 0)
                close(fd);
        }
        for (int k = 0; k < FAKE_CONNS; k++) {
            if (f->fds[k] >= 0 && (p[k + 1].revents & (POLLIN | POLLHUP | POLLERR)))
                fake_serve_conn(f, k);
        }
    }
    return NULL;
}

static fake *fake_start(enum fake_mode mode)
{
    fake *f = calloc(1, sizeof *f);
    cr_assert_not_null(f);
    f->mode = mode;
    f->next = 1;
    for (int k = 0; k < FAKE_CONNS; k++) {
        f->fds[k] = -1;
        f->bufs[k] = malloc(SEQD_MAX_FRAME);
    }
    f->lfd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_geq(f->lfd, 0);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    cr_assert_eq(bind(f->lfd, (struct sockaddr *)&sa, sizeof sa), 0);
    cr_assert_eq(listen(f->lfd, 16), 0);
    socklen_t sl = sizeof sa;
    getsockname(f->lfd, (struct sockaddr *)&sa, &sl);
    f->port = ntohs(sa.sin_port);
    cr_assert_eq(pthread_create(&f->th, NULL, fake_main, f), 0);
    return f;
}

static void fake_stop(fake *f)
{
    atomic_store(&f->stop, true);
    pthread_join(f->th, NULL);
    close(f->lfd);
    for (int k = 0; k < FAKE_CONNS; k++) {
        if (f->fds[k] >= 0)
            close(f->fds[k]);
        free(f->bufs[k]);
    }
    free(f);
}

/* A port nobody listens on: bound and closed, so connecting is refused. */
static int dead_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    bind(fd, (struct sockaddr *)&sa, sizeof sa);
    socklen_t sl = sizeof sa;
    getsockname(fd, (struct sockaddr *)&sa, &sl);
    close(fd);
    return ntohs(sa.sin_port);
}

static client *client_for(const char *fmt, int a, int b, int c)
{
    char list[128], err[256] = "";
    snprintf(list, sizeof list, fmt, a, b, c);
    client *cl = client_new(list, err, sizeof err);
    cr_assert_not_null(cl, "client_new(%s): %s", list, err);
    return cl;
}

/* A sequence name whose preferred member is member `idx`, so that a test
 * knows which member a fetch tries first (then the next ones in order). */
static const char *name_preferring(const client *c, int idx)
{
    static char name[32];
    for (int k = 0; k < 10000; k++) {
        snprintf(name, sizeof name, "s%d", k);
        if (client_preferred(c, name) == idx)
            return name;
    }
    cr_assert_fail("no name prefers member %d", idx);
    return NULL;
}

Test(client, preferred_member_is_shared_and_spread, .timeout = 10)
{
    client *a = client_for("127.0.0.1:%d,127.0.0.1:%d,127.0.0.1:%d", 7001, 7002, 7003);
    client *b = client_for("127.0.0.1:%d,127.0.0.1:%d,127.0.0.1:%d", 7003, 7001, 7002);
    int hits[3] = {0};
    for (int k = 0; k < 300; k++) {
        char name[16];
        snprintf(name, sizeof name, "q%d", k);
        int pa = client_preferred(a, name), pb = client_preferred(b, name);
        /* b lists the same members rotated by one. */
        cr_assert_eq(pb, (pa + 1) % 3, "%s: %d vs %d", name, pa, pb);
        hits[pa]++;
    }
    for (int i = 0; i < 3; i++)
        cr_assert(hits[i] > 50, "member %d preferred by only %d of 300 names", i, hits[i]);
    client_free(a);
    client_free(b);
}

Test(client, parses_server_lists, .timeout = 10)
{
    char err[256];
    client *c = client_new(" 127.0.0.1:1 , localhost:65535,[::1]:7", err, sizeof err);
    cr_assert_not_null(c, "%s", err);
    cr_assert_eq(client_nservers(c), 3);
    cr_assert_str_eq(client_server(c, 0), "127.0.0.1:1");
    cr_assert_str_eq(client_server(c, 2), "[::1]:7");
    cr_assert_null(client_server(c, 3));
    client_free(c);
    const char *bad[] = { "", "127.0.0.1", "127.0.0.1:", ":80", "h:0", "h:65536", "h:8x",
                          "a:1,,b:2" };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        err[0] = '\0';
        cr_assert_null(client_new(bad[k], err, sizeof err), "accepted '%s'", bad[k]);
        cr_assert_neq(err[0], '\0', "no message for '%s'", bad[k]);
    }
}

Test(client, rejects_bad_name_and_count_before_connecting, .timeout = 10)
{
    /* The only member is unreachable: a usage error must not even try it. */
    client *c = client_for("127.0.0.1:%d", dead_port(), 0, 0);
    char err[512], longname[200];
    uint64_t first = 0;
    memset(longname, 'a', 129);
    longname[129] = '\0';
    const char *names[] = { "", "a b", "x/y", "ü", longname };
    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
        err[0] = '\0';
        cr_assert_eq(client_fetch(c, names[k], 1, 1000, &first, err, sizeof err), CLIENT_EUSAGE);
        cr_assert(strstr(err, "name") != NULL, "message: %s", err);
    }
    cr_assert_eq(client_fetch(c, "ok", 0, 1000, &first, err, sizeof err), CLIENT_EUSAGE);
    cr_assert(strstr(err, "count") != NULL, "message: %s", err);
    cr_assert_eq(client_fetch(c, "ok", SEQD_COUNT_MAX + 1, 1000, &first, err, sizeof err),
                 CLIENT_EUSAGE);
    memset(longname, 'b', 128);
    longname[128] = '\0';
    /* A valid 128-byte name passes validation and then fails to connect. */
    cr_assert_eq(client_fetch(c, longname, 1, 100, &first, err, sizeof err), CLIENT_EFAIL);
    cr_assert(strstr(err, "refused") != NULL, "message: %s", err);
    client_free(c);
}

Test(client, fails_over_to_the_member_that_can_serve, .timeout = 10)
{
    fake *rec = fake_start(FAKE_ERR);
    rec->err_code = ERR_RECOVERING;
    fake *ok = fake_start(FAKE_RANGE);
    client *c = client_for("127.0.0.1:%d,127.0.0.1:%d,127.0.0.1:%d", dead_port(), rec->port,
                           ok->port);
    char err[512] = "";
    uint64_t first = 0;
    cr_assert_eq(client_fetch(c, name_preferring(c, 0), 7, 2000, &first, err, sizeof err), CLIENT_OK, "%s", err);
    cr_assert_eq(first, 1);
    cr_assert_eq(atomic_load(&rec->requests), 1);
    /* Members that just failed are passed over as first choice. */
    cr_assert_eq(client_fetch(c, name_preferring(c, 0), 3, 2000, &first, err, sizeof err), CLIENT_OK, "%s", err);
    cr_assert_eq(first, 8);
    cr_assert_eq(atomic_load(&rec->requests), 1);
    client_free(c);
    fake_stop(rec);
    fake_stop(ok);
}

Test(client, failure_line_names_every_member_and_respects_deadline, .timeout = 10)
{
    fake *rec = fake_start(FAKE_ERR);
    rec->err_code = ERR_RECOVERING;
    fake *hung = fake_start(FAKE_SILENT);
    int dp = dead_port();
    client *c = client_for("127.0.0.1:%d,127.0.0.1:%d,127.0.0.1:%d", dp, rec->port, hung->port);
    char err[1024] = "";
    uint64_t first = 0;
    int64_t t0 = fake_now_ms();
    cr_assert_eq(client_fetch(c, "orders", 1, 800, &first, err, sizeof err), CLIENT_EFAIL);
    int64_t took = fake_now_ms() - t0;
    cr_assert(took >= 750 && took <= 1000, "took %lld ms", (long long)took);
    cr_assert(strchr(err, '\n') == NULL, "one line: %s", err);
    char want[128];
    cr_assert(strstr(err, "'orders' within 800 ms") != NULL, "%s", err);
    snprintf(want, sizeof want, "127.0.0.1:%d: connection refused", dp);
    cr_assert(strstr(err, want) != NULL, "%s", err);
    snprintf(want, sizeof want, "127.0.0.1:%d: recovering", rec->port);
    cr_assert(strstr(err, want) != NULL, "%s", err);
    snprintf(want, sizeof want, "127.0.0.1:%d: no reply", hung->port);
    cr_assert(strstr(err, want) != NULL, "%s", err);
    client_free(c);
    fake_stop(rec);
    fake_stop(hung);
}

Test(client, hung_member_gets_only_part_of_the_deadline, .timeout = 10)
{
    fake *hung = fake_start(FAKE_SILENT);
    fake *ok = fake_start(FAKE_RANGE);
    client *c = client_for("127.0.0.1:%d,127.0.0.1:%d", hung->port, ok->port, 0);
    char err[512] = "";
    uint64_t first = 0;
    int64_t t0 = fake_now_ms();
    cr_assert_eq(client_fetch(c, name_preferring(c, 0), 1, 2000, &first, err, sizeof err), CLIENT_OK, "%s", err);
    int64_t took = fake_now_ms() - t0;
    /* The hung member had half of what is left after the reply grace
     * (sent as its deadline), plus that grace. */
    cr_assert(took < 1300, "took %lld ms", (long long)took);
    cr_assert_eq(atomic_load(&hung->last_timeout_ms), (2000 - 30) / 2);
    unsigned second = atomic_load(&ok->last_timeout_ms);
    cr_assert(second > 0 && second < 1000, "second attempt deadline %u", second);
    client_free(c);
    fake_stop(hung);
    fake_stop(ok);
}

Test(client, stale_reply_on_reused_connection_is_dropped, .timeout = 10)
{
    fake *f = fake_start(FAKE_LATE_FIRST);
    f->delay_ms = 500;
    client *c = client_for("127.0.0.1:%d", f->port, 0, 0);
    char err[512] = "";
    uint64_t first = 0;
    /* Times out while the member sleeps; both of its requests are answered
     * later, on the connection the next call reuses. */
    cr_assert_eq(client_fetch(c, "s", 10, 300, &first, err, sizeof err), CLIENT_EFAIL);
    cr_assert(strstr(err, "no reply") != NULL, "%s", err);
    fake_sleep_ms(400);
    int sent = atomic_load(&f->requests);
    cr_assert_eq(client_fetch(c, "s", 10, 2000, &first, err, sizeof err), CLIENT_OK, "%s", err);
    /* Ranges 1.. and 11.. went to the timed-out attempts. */
    cr_assert_eq(first, 1 + 10 * (uint64_t)sent, "got %llu after %d stale", (unsigned long long)first,
                 sent);
    cr_assert_eq(atomic_load(&f->accepts), 1);
    client_free(c);
    fake_stop(f);
}

Test(client, reuses_one_connection_per_member, .timeout = 10)
{
    fake *f = fake_start(FAKE_RANGE);
    client *c = client_for("127.0.0.1:%d", f->port, 0, 0);
    char err[512] = "";
    uint64_t first = 0, want = 1;
    for (int k = 0; k < 200; k++) {
        cr_assert_eq(client_fetch(c, "s", 5, 1000, &first, err, sizeof err), CLIENT_OK, "%s", err);
        cr_assert_eq(first, want);
        want += 5;
    }
    struct seqd_status st;
    cr_assert_eq(client_status(c, 0, 1000, &st, err, sizeof err), CLIENT_OK, "%s", err);
    cr_assert_eq(st.state, STATE_READY);
    cr_assert_eq(atomic_load(&f->accepts), 1);
    /* The request carries its deadline: half of 1000 ms less the grace. */
    cr_assert_eq(atomic_load(&f->last_timeout_ms), (1000 - 30) / 2);
    client_free(c);
    fake_stop(f);
}

Test(client, reopens_a_connection_the_member_closed, .timeout = 10)
{
    fake *f = fake_start(FAKE_CLOSE_AFTER);
    client *c = client_for("127.0.0.1:%d", f->port, 0, 0);
    char err[512] = "";
    uint64_t first = 0;
    for (int k = 0; k < 5; k++) {
        cr_assert_eq(client_fetch(c, "s", 1, 1000, &first, err, sizeof err), CLIENT_OK, "%s", err);
        cr_assert_eq(first, (uint64_t)k + 1, "k=%d first=%llu accepts=%d req=%d", k, (unsigned long long)first, atomic_load(&f->accepts), atomic_load(&f->requests));
        fake_sleep_ms(20);
    }
    cr_assert_eq(atomic_load(&f->accepts), 5);
    client_free(c);
    fake_stop(f);
}

Test(client, request_errors_end_the_call, .timeout = 10)
{
    fake *f = fake_start(FAKE_ERR);
    fake *ok = fake_start(FAKE_RANGE);
    client *c = client_for("127.0.0.1:%d,127.0.0.1:%d", f->port, ok->port, 0);
    char err[512] = "";
    uint64_t first = 0;
    f->err_code = ERR_EXHAUSTED;
    cr_assert_eq(client_fetch(c, name_preferring(c, 0), 1, 1000, &first, err, sizeof err), CLIENT_EFAIL);
    cr_assert(strstr(err, "exhausted") != NULL, "%s", err);
    f->err_code = ERR_BAD_NAME;
    cr_assert_eq(client_fetch(c, name_preferring(c, 0), 1, 1000, &first, err, sizeof err), CLIENT_EUSAGE);
    cr_assert_eq(atomic_load(&ok->requests), 0);
    /* A member's own trouble (storage, shutdown) moves on to the next. */
    f->err_code = ERR_STORAGE;
    cr_assert_eq(client_fetch(c, name_preferring(c, 0), 1, 1000, &first, err, sizeof err), CLIENT_OK, "%s", err);
    cr_assert_eq(atomic_load(&ok->requests), 1);
    client_free(c);
    fake_stop(f);
    fake_stop(ok);
}

Test(client, raw_returns_any_reply, .timeout = 10)
{
    fake *f = fake_start(FAKE_RANGE);
    client *c = client_for("127.0.0.1:%d", f->port, 0, 0);
    char err[256] = "";
    uint8_t scratch[SEQD_MAX_FRAME];
    seqd_msg req = { .type = MSG_FETCH, .reqid = 77 }, rep;
    req.u.fetch.count = 4;
    req.u.fetch.timeout_ms = 100;
    seqd_name_set(&req.u.fetch.name, "x", 1);
    cr_assert_eq(client_raw(c, 0, &req, &rep, scratch, 1000, err, sizeof err), CLIENT_OK, "%s", err);
    cr_assert_eq(rep.type, MSG_RANGE);
    cr_assert_eq(rep.reqid, 77);
    cr_assert_eq(rep.u.range.count, 4);
    client_free(c);
    fake_stop(f);
}

Test(client, connects_by_host_name, .timeout = 10)
{
    /* The fake listens on 127.0.0.1 only; "localhost" may resolve to ::1
     * first, and the client must go on to the next address. */
    fake *f = fake_start(FAKE_RANGE);
    client *c = client_for("localhost:%d", f->port, 0, 0);
    char err[256] = "";
    uint64_t first = 0;
    cr_assert_eq(client_fetch(c, "s", 2, 2000, &first, err, sizeof err), CLIENT_OK, "%s", err);
    cr_assert_eq(first, 1);
    client_free(c);
    fake_stop(f);
}
