/* tests/test_conn.c — net/conn.c on its own: a framed connection over a
 * loopback socket pair whose far end the test drives by hand.
 *
 * What is pinned here: a write to a connection whose peer is gone ends the
 * connection with a reason and never raises SIGPIPE (the conn also runs
 * inside client programs, client/client_async.h, which do not ignore it), on
 * the direct write of a turn and on the write of a remainder the socket
 * would not take at once; and frames queued in one turn leave in order.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>

#include "../net/conn.h"
#include "../net/frame.h"

typedef struct ct_state {
    int msgs, ends;
    char why[128];
} ct_state;

static void ct_on_msg(conn *c, const seqd_msg *m, void *arg)
{
    (void)c;
    (void)m;
    ((ct_state *)arg)->msgs++;
}

static void ct_on_end(conn *c, void *arg, const char *why)
{
    ct_state *st = arg;
    (void)c;
    st->ends++;
    snprintf(st->why, sizeof st->why, "%s", why);
}

/* A connected loopback pair: *ours is wrapped by the caller, *far is the
 * test's raw end. */
static void ct_pair(int *ours, int *far)
{
    int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(l, 0);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t sl = sizeof sa;
    cr_assert_eq(bind(l, (struct sockaddr *)&sa, sizeof sa), 0);
    cr_assert_eq(listen(l, 1), 0);
    cr_assert_eq(getsockname(l, (struct sockaddr *)&sa, &sl), 0);
    *far = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int small = 4096;
    setsockopt(*far, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    cr_assert_eq(connect(*far, (struct sockaddr *)&sa, sizeof sa), 0, "%s", strerror(errno));
    *ours = accept(l, NULL, NULL);
    cr_assert_geq(*ours, 0);
    close(l);
}

/* What each test works on: a loop, a conn over our end of a fresh pair
 * (with a reference of the test's own, so that it stays readable after it
 * closes itself), what its callbacks saw, and the raw far end. */
typedef struct ct_fix {
    struct event_base *base;
    conn *c;
    ct_state st;
    int far;
} ct_fix;

/* sndbuf: our socket's send buffer in bytes, 0 to leave it. SIGPIPE goes
 * back to its default, which kills: a conn must never raise it. */
static void ct_open(ct_fix *f, int sndbuf)
{
    int ours;
    signal(SIGPIPE, SIG_DFL);
    memset(f, 0, sizeof *f);
    f->base = event_base_new();
    cr_assert_not_null(f->base);
    ct_pair(&ours, &f->far);
    if (sndbuf)
        setsockopt(ours, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
    f->c = conn_accept(f->base, ours, ct_on_msg, ct_on_end, &f->st);
    cr_assert_not_null(f->c);
    conn_ref(f->c);
}

static void ct_close(ct_fix *f)
{
    conn_unref(f->c);
    event_base_free(f->base);
}

/* Runs the loop until the conn ended or ~2 s passed. */
static void ct_run_until_end(struct event_base *base, const ct_state *st)
{
    for (int i = 0; i < 200 && st->ends == 0; i++) {
        struct timeval tv = { 0, 10000 };
        event_base_loopexit(base, &tv);
        event_base_dispatch(base);
    }
}

/* An ordinary reply frame of about half a KiB (a REPLY_ERR with text). */
static seqd_msg ct_big_msg(uint64_t reqid)
{
    static char text[SEQD_TEXT_MAX];
    memset(text, 'x', sizeof text);
    seqd_msg m = { .type = MSG_REPLY_ERR, .reqid = reqid };
    m.u.err.code = ERR_TIMEOUT;
    m.u.err.text = text;
    m.u.err.len = sizeof text;
    return m;
}

/* The far end closes with unread data (the kernel answers our next write
 * with a reset); the write of the next turn must end the conn, not the
 * process: SIGPIPE is left at its default, which kills. */
Test(conn, write_to_a_gone_peer_ends_the_conn_without_sigpipe, .timeout = 10)
{
    ct_fix f;
    ct_open(&f, 0);
    seqd_msg m = ct_big_msg(1);
    cr_assert_eq(conn_send(f.c, &m), 0);
    event_base_loop(f.base, EVLOOP_NONBLOCK);   /* written; the far end reads nothing */
    close(f.far);                               /* unread data: a reset */
    for (uint64_t i = 2; i < 10 && conn_is_open(f.c); i++) {
        m = ct_big_msg(i);
        conn_send(f.c, &m);
        event_base_loop(f.base, EVLOOP_NONBLOCK);
    }
    ct_run_until_end(f.base, &f.st);
    cr_assert_eq(f.st.ends, 1, "on_end called %d times", f.st.ends);
    cr_assert(strstr(f.st.why, "reset") || strstr(f.st.why, "pipe") || strstr(f.st.why, "closed"),
              "why: %s", f.st.why);
    cr_assert(!conn_is_open(f.c));
    ct_close(&f);
}

/* Same, but the far end is gone while a remainder waits for the socket to
 * drain (the socket took only part of what was queued). */
Test(conn, remainder_to_a_gone_peer_ends_the_conn_without_sigpipe, .timeout = 10)
{
    ct_fix f;
    ct_open(&f, 4096);
    /* More than both socket buffers hold: a remainder is left waiting. */
    for (uint64_t i = 1; i <= 4000; i++) {
        seqd_msg m = ct_big_msg(i);
        cr_assert_eq(conn_send(f.c, &m), 0);
    }
    event_base_loop(f.base, EVLOOP_NONBLOCK);
    cr_assert(conn_is_open(f.c));
    cr_assert_eq(f.st.ends, 0);
    close(f.far);
    ct_run_until_end(f.base, &f.st);
    cr_assert_eq(f.st.ends, 1, "on_end called %d times", f.st.ends);
    cr_assert(!conn_is_open(f.c));
    ct_close(&f);
}

/* Frames queued across turns, partly held back by a full socket, reach the
 * far end whole and in order once it reads. */
Test(conn, queued_frames_arrive_in_order_after_a_remainder, .timeout = 10)
{
    ct_fix f;
    ct_open(&f, 0);
    enum { N = 6000 };
    for (uint64_t i = 1; i <= N; i++) {
        seqd_msg m = ct_big_msg(i);
        cr_assert_eq(conn_send(f.c, &m), 0);
        if (i % 500 == 0)
            event_base_loop(f.base, EVLOOP_NONBLOCK);
    }
    static uint8_t buf[1 << 16];
    size_t have = 0;
    uint64_t want = 1;
    while (want <= N) {
        event_base_loop(f.base, EVLOOP_NONBLOCK);
        ssize_t r = recv(f.far, buf + have, sizeof buf - have, MSG_DONTWAIT);
        if (r < 0) {
            cr_assert(errno == EAGAIN, "recv: %s", strerror(errno));
            usleep(1000);
            continue;
        }
        cr_assert_gt(r, 0, "EOF after %llu frames", (unsigned long long)want - 1);
        have += (size_t)r;
        size_t pos = 0;
        for (;;) {
            if (have - pos < 4)
                break;
            size_t len = ((size_t)buf[pos] << 24) | ((size_t)buf[pos + 1] << 16) |
                         ((size_t)buf[pos + 2] << 8) | buf[pos + 3];
            if (have - pos < len + 4)
                break;
            seqd_msg m;
            cr_assert_eq(frame_parse(buf + pos, len + 4, &m), FRAME_OK);
            cr_assert_eq(m.reqid, want, "frame %llu arrived as %llu", (unsigned long long)want,
                         (unsigned long long)m.reqid);
            want++;
            pos += len + 4;
        }
        memmove(buf, buf + pos, have - pos);
        have -= pos;
    }
    cr_assert_eq(f.st.ends, 0);
    conn_close(f.c, "done");
    cr_assert_eq(f.st.ends, 1);
    close(f.far);
    ct_close(&f);
}
