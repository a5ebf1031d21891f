/* tests/test_stream.c — the buffered stream of IDs (suite stream).
 *
 * Most tests run the stream over a fake in-process source whose behaviour
 * (failing, slow, going backwards) is switched by the test, and which
 * counts its calls, so that the refill rule can be checked exactly. One
 * test runs it over a real three-member cluster (tests/procs.h) and takes
 * the whole cluster down and up again under it; its port slot is one of
 * 15..19, taken through the same lock files as tests/test_faults.c, since
 * procs.h has no free slot of its own left.
 */
#include <criterion/criterion.h>
#include <criterion/logging.h>

#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#include "../client/stream.h"
#include "procs.h"


typedef struct ts_src {
    _Atomic uint64_t next;      /* next ID handed out */
    _Atomic uint64_t calls;     /* source calls, failed ones included */
    _Atomic uint64_t last_count;
    _Atomic int fail;           /* non-zero: every call fails */
    _Atomic int delay_ms;       /* each call sleeps this long first */
    _Atomic int repeat;         /* non-zero: always return `next` unchanged */
} ts_src;

static void ts_sleep_ms(int ms)
{
    struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

static int64_t ts_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The fake source: an atomic counter, with the switches above. */
static int ts_source(void *ctx, uint32_t count, uint64_t *first, char *err, size_t errlen)
{
    ts_src *f = ctx;
    atomic_fetch_add(&f->calls, 1);
    atomic_store(&f->last_count, count);
    int d = atomic_load(&f->delay_ms);
    if (d > 0)
        ts_sleep_ms(d);
    if (atomic_load(&f->fail)) {
        snprintf(err, errlen, "fake source is down");
        return 1;
    }
    if (atomic_load(&f->repeat))
        *first = atomic_load(&f->next);
    else
        *first = atomic_fetch_add(&f->next, count);
    return 0;
}

static void ts_src_init(ts_src *f, uint64_t start)
{
    atomic_init(&f->next, start);
    atomic_init(&f->calls, 0);
    atomic_init(&f->last_count, 0);
    atomic_init(&f->fail, 0);
    atomic_init(&f->delay_ms, 0);
    atomic_init(&f->repeat, 0);
}

static stream *ts_new(ts_src *f, uint32_t buffer)
{
    char err[256] = "";
    stream *s = stream_new(ts_source, f, buffer, err, sizeof err);
    cr_assert_not_null(s, "stream_new: %s", err);
    return s;
}

/* Waits until the stream has had `n` successful refills (the refill thread
 * runs on its own time). */
static bool ts_wait_refills(stream *s, uint64_t n, int64_t ms)
{
    int64_t end = ts_now_ms() + ms;
    struct stream_stats st;
    for (;;) {
        stream_stats(s, &st);
        if (st.refills >= n)
            return true;
        if (ts_now_ms() > end)
            return false;
        ts_sleep_ms(1);
    }
}

static uint64_t ts_next_ok(stream *s)
{
    uint64_t id = 0;
    char err[256] = "";
    int rc = stream_next(s, &id, 5000, err, sizeof err);
    cr_assert_eq(rc, CLIENT_OK, "stream_next: %s", err);
    return id;
}

/* ---- many threads on one stream ---- */

#define TS_THREADS 8
#define TS_PER_THREAD 100000

typedef struct ts_worker {
    stream *s;
    uint64_t *ids;
    int fails;
    bool increasing;
} ts_worker;

static void *ts_worker_main(void *arg)
{
    ts_worker *w = arg;
    w->increasing = true;
    for (int i = 0; i < TS_PER_THREAD; i++) {
        char err[128];
        if (stream_next(w->s, &w->ids[i], 5000, err, sizeof err) != CLIENT_OK) {
            w->fails++;
            w->ids[i] = 0;
            continue;
        }
        if (i > 0 && w->ids[i] <= w->ids[i - 1])
            w->increasing = false;
    }
    return NULL;
}

static int ts_cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

Test(stream, unique_increasing_8_threads_buffer_1024, .timeout = 60)
{
    ts_src f;
    ts_src_init(&f, 1);
    stream *s = ts_new(&f, 1024);
    uint64_t *all = calloc((size_t)TS_THREADS * TS_PER_THREAD, sizeof *all);
    cr_assert_not_null(all);
    ts_worker w[TS_THREADS];
    pthread_t th[TS_THREADS];
    for (int i = 0; i < TS_THREADS; i++) {
        w[i] = (ts_worker){ .s = s, .ids = all + (size_t)i * TS_PER_THREAD };
        cr_assert_eq(pthread_create(&th[i], NULL, ts_worker_main, &w[i]), 0);
    }
    for (int i = 0; i < TS_THREADS; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < TS_THREADS; i++) {
        cr_assert_eq(w[i].fails, 0, "thread %d: %d next() failed", i, w[i].fails);
        cr_assert(w[i].increasing, "thread %d saw IDs that did not increase", i);
    }
    size_t n = (size_t)TS_THREADS * TS_PER_THREAD;
    qsort(all, n, sizeof *all, ts_cmp_u64);
    for (size_t i = 1; i < n; i++)
        cr_assert_neq(all[i], all[i - 1], "ID %llu handed out twice", (unsigned long long)all[i]);
    struct stream_stats st;
    stream_stats(s, &st);
    cr_assert_eq(st.ids, n);
    /* Every range is 1024 IDs; at most two are buffered beyond the ones used. */
    cr_assert(st.refills * 1024 >= n && st.refills * 1024 <= n + 2 * 1024,
              "%llu refills for %zu IDs", (unsigned long long)st.refills, n);
    cr_assert_eq(atomic_load(&f.last_count), 1024);
    cr_assert_eq(st.failures, 0);
    stream_free(s);
    free(all);
}

/* ---- small buffers ---- */

Test(stream, buffer_0_is_one_direct_fetch_per_id, .timeout = 20)
{
    ts_src f;
    ts_src_init(&f, 42);
    stream *s = ts_new(&f, 0);
    ts_sleep_ms(20);
    cr_assert_eq(atomic_load(&f.calls), 0, "buffer 0 must not fetch ahead");
    for (uint64_t i = 0; i < 100; i++)
        cr_assert_eq(ts_next_ok(s), 42 + i);
    cr_assert_eq(atomic_load(&f.calls), 100);
    cr_assert_eq(atomic_load(&f.last_count), 1);
    struct stream_stats st;
    stream_stats(s, &st);
    cr_assert_eq(st.ids, 100);
    cr_assert_eq(st.refills, 100);
    cr_assert_eq(st.stalls, 100, "every buffer-0 call waits for the source");
    stream_free(s);
}

Test(stream, buffer_1_and_2_fetch_ranges_of_their_size, .timeout = 20)
{
    for (uint32_t b = 1; b <= 2; b++) {
        ts_src f;
        ts_src_init(&f, 1);
        stream *s = ts_new(&f, b);
        uint64_t prev = 0;
        for (int i = 0; i < 200; i++) {
            uint64_t id = ts_next_ok(s);
            cr_assert_gt(id, prev, "buffer %u: %llu after %llu", b, (unsigned long long)id,
                         (unsigned long long)prev);
            prev = id;
        }
        cr_assert_eq(atomic_load(&f.last_count), b);
        /* Let the refill thread settle: it holds at most two ranges. */
        ts_sleep_ms(30);
        uint64_t calls = atomic_load(&f.calls);
        uint64_t min = 200 / b, max = 200 / b + 2;
        cr_assert(calls >= min && calls <= max, "buffer %u: %llu source calls for 200 IDs", b,
                  (unsigned long long)calls);
        /* Nothing lost in between: a fast source leaves no gaps. */
        cr_assert_eq(prev, 200);
        stream_free(s);
    }
}

/* Threads queued on a stream with room for only one or two IDs are woken
 * one per ID, not all at once: no wake-up may get lost on the way (every
 * call must succeed well within its timeout), and nothing is repeated. */
#define TS_WTHREADS 16
#define TS_WCALLS 300

typedef struct ts_waiter {
    stream *s;
    uint64_t ids[TS_WCALLS];
    int fails;
    char err[256];
} ts_waiter;

static void *ts_waiter_main(void *arg)
{
    ts_waiter *w = arg;
    for (int i = 0; i < TS_WCALLS; i++) {
        if (stream_next(w->s, &w->ids[i], 5000, w->err, sizeof w->err) != CLIENT_OK) {
            w->fails++;
            w->ids[i] = 0;
        }
        if (i > 0 && w->ids[i] <= w->ids[i - 1])
            w->fails += 1000;
    }
    return NULL;
}

Test(stream, many_waiters_on_small_buffers_lose_no_wakeup, .timeout = 60)
{
    for (uint32_t b = 0; b <= 2; b++) {
        ts_src f;
        ts_src_init(&f, 1);
        stream *s = ts_new(&f, b);
        ts_waiter *w = calloc(TS_WTHREADS, sizeof *w);
        cr_assert_not_null(w);
        pthread_t th[TS_WTHREADS];
        int64_t t0 = ts_now_ms();
        for (int i = 0; i < TS_WTHREADS; i++) {
            w[i].s = s;
            cr_assert_eq(pthread_create(&th[i], NULL, ts_waiter_main, &w[i]), 0);
        }
        for (int i = 0; i < TS_WTHREADS; i++)
            pthread_join(th[i], NULL);
        int64_t took = ts_now_ms() - t0;
        uint64_t *all = calloc(TS_WTHREADS * TS_WCALLS, sizeof *all);
        cr_assert_not_null(all);
        for (int i = 0; i < TS_WTHREADS; i++) {
            cr_assert_eq(w[i].fails, 0, "buffer %u, thread %d: %d failures (%s)", b, i,
                         w[i].fails, w[i].err);
            memcpy(all + i * TS_WCALLS, w[i].ids, sizeof w[i].ids);
        }
        qsort(all, TS_WTHREADS * TS_WCALLS, sizeof *all, ts_cmp_u64);
        for (size_t i = 1; i < TS_WTHREADS * TS_WCALLS; i++)
            cr_assert_neq(all[i], all[i - 1], "buffer %u: ID %llu twice", b,
                          (unsigned long long)all[i]);
        cr_assert_lt(took, 20000, "buffer %u: %lld ms for %d IDs", b, (long long)took,
                     TS_WTHREADS * TS_WCALLS);
        free(all);
        free(w);
        stream_free(s);
    }
}

/* ---- the refill rule ---- */

Test(stream, refill_happens_at_half, .timeout = 20)
{
    ts_src f;
    ts_src_init(&f, 1);
    stream *s = ts_new(&f, 10);
    cr_assert(ts_wait_refills(s, 1, 2000), "the first range was not fetched at creation");
    for (uint64_t i = 1; i <= 4; i++)
        cr_assert_eq(ts_next_ok(s), i);
    ts_sleep_ms(50);
    cr_assert_eq(atomic_load(&f.calls), 1, "refilled before half of the range was used");
    cr_assert_eq(ts_next_ok(s), 5);
    cr_assert(ts_wait_refills(s, 2, 2000), "no refill once half of the range was used");
    /* The rest of the first range, then half of the second: one refill more. */
    for (uint64_t i = 6; i <= 14; i++)
        cr_assert_eq(ts_next_ok(s), i);
    ts_sleep_ms(50);
    cr_assert_eq(atomic_load(&f.calls), 2, "refilled while a range was already ahead");
    cr_assert_eq(ts_next_ok(s), 15);
    cr_assert(ts_wait_refills(s, 3, 2000), "no refill at half of the second range");
    ts_sleep_ms(20);
    cr_assert_eq(atomic_load(&f.calls), 3);
    struct stream_stats st;
    stream_stats(s, &st);
    cr_assert_eq(st.stalls, 0, "a fast source behind a slow consumer never stalls");
    stream_free(s);
}

/* ---- failures ---- */

Test(stream, failing_source_times_out_then_recovers, .timeout = 20)
{
    for (uint32_t b = 0; b <= 4; b += 4) {
        ts_src f;
        ts_src_init(&f, 1);
        atomic_store(&f.fail, 1);
        stream *s = ts_new(&f, b);
        uint64_t id = 0;
        char err[512] = "";
        int64_t t0 = ts_now_ms();
        int rc = stream_next(s, &id, 150, err, sizeof err);
        int64_t took = ts_now_ms() - t0;
        cr_assert_eq(rc, CLIENT_EFAIL, "buffer %u: next() succeeded on a dead source", b);
        cr_assert(took >= 140 && took < 1500, "buffer %u: gave up after %lld ms, not ~150", b,
                  (long long)took);
        cr_assert(strstr(err, "waiting for the cluster") && strstr(err, "fake source is down"),
                  "buffer %u: error says: %s", b, err);
        struct stream_stats st;
        stream_stats(s, &st);
        cr_assert(st.waiting, "buffer %u: stats do not say the stream is waiting", b);
        cr_assert_geq(st.failures, 2, "buffer %u: the source was not retried", b);
        cr_assert_eq(st.timeouts, 1);
        cr_assert_eq(st.ids, 0);
        cr_assert_str_eq(st.last_err, "fake source is down");

        atomic_store(&f.fail, 0);
        cr_assert_eq(stream_next(s, &id, 3000, err, sizeof err), CLIENT_OK,
                     "buffer %u: no recovery: %s", b, err);
        cr_assert_eq(id, 1);
        cr_assert_eq(ts_next_ok(s), 2);
        stream_stats(s, &st);
        cr_assert(!st.waiting, "buffer %u: still waiting after the source came back", b);
        stream_free(s);
    }
}

Test(stream, source_going_backwards_is_refused, .timeout = 20)
{
    ts_src f;
    ts_src_init(&f, 100);
    atomic_store(&f.repeat, 1);
    stream *s = ts_new(&f, 4);
    for (uint64_t i = 100; i < 104; i++)
        cr_assert_eq(ts_next_ok(s), i);
    uint64_t id = 0;
    char err[512] = "";
    cr_assert_eq(stream_next(s, &id, 200, err, sizeof err), CLIENT_EFAIL,
                 "handed out %llu from a repeated range", (unsigned long long)id);
    cr_assert(strstr(err, "not above"), "error says: %s", err);
    /* The source moves on: the stream takes its IDs again. */
    atomic_store(&f.next, 200);
    atomic_store(&f.repeat, 0);
    cr_assert_eq(stream_next(s, &id, 3000, err, sizeof err), CLIENT_OK, "%s", err);
    cr_assert_geq(id, 200);
    stream_free(s);

    /* Same for buffer 0. */
    ts_src_init(&f, 7);
    atomic_store(&f.repeat, 1);
    s = ts_new(&f, 0);
    cr_assert_eq(ts_next_ok(s), 7);
    cr_assert_eq(stream_next(s, &id, 100, err, sizeof err), CLIENT_EFAIL);
    stream_free(s);
}

/* ---- stalls ---- */

Test(stream, stalls_are_counted, .timeout = 20)
{
    ts_src f;
    ts_src_init(&f, 1);
    atomic_store(&f.delay_ms, 30);
    stream *s = ts_new(&f, 2);
    uint64_t prev = 0;
    for (int i = 0; i < 10; i++) {
        uint64_t id = ts_next_ok(s);
        cr_assert_gt(id, prev);
        prev = id;
    }
    struct stream_stats st;
    stream_stats(s, &st);
    cr_assert_eq(st.ids, 10);
    /* Each range of 2 is gone at once and the next takes 30 ms to come:
     * about every other call waits. */
    cr_assert(st.stalls >= 4 && st.stalls <= 10, "%llu stalls in 10 calls",
              (unsigned long long)st.stalls);
    stream_free(s);

    /* A buffer big enough for the whole run never stalls once filled. */
    ts_src_init(&f, 1);
    s = ts_new(&f, 1024);
    cr_assert(ts_wait_refills(s, 1, 2000));
    for (int i = 0; i < 500; i++)
        ts_next_ok(s);
    stream_stats(s, &st);
    cr_assert_eq(st.stalls, 0);
    cr_assert_eq(st.ids, 500);
    stream_free(s);
}

/* ---- the local baseline and the client constructor ---- */

Test(stream, local_counter_source, .timeout = 20)
{
    char err[256] = "";
    for (uint32_t b = 0; b <= 1024; b = b ? b * 32 : 1) {
        stream *s = stream_new_local(1000, b, err, sizeof err);
        cr_assert_not_null(s, "%s", err);
        for (uint64_t i = 0; i < 3000; i++)
            cr_assert_eq(ts_next_ok(s), 1000 + i, "buffer %u", b);
        stream_free(s);
    }
    /* Two streams over one counter: disjoint, each increasing. */
    stream_counter ctr;
    atomic_init(&ctr.next, 1);
    stream *a = stream_new(stream_counter_source, &ctr, 16, err, sizeof err);
    stream *b = stream_new(stream_counter_source, &ctr, 16, err, sizeof err);
    cr_assert(a != NULL && b != NULL, "%s", err);
    uint64_t pa = 0, pb = 0;
    bool seen[2000] = { false };
    for (int i = 0; i < 500; i++) {
        uint64_t x = ts_next_ok(a), y = ts_next_ok(b);
        cr_assert(x > pa && y > pb && x < 2000 && y < 2000);
        cr_assert(!seen[x] && !seen[y] && x != y, "%llu/%llu twice", (unsigned long long)x,
                  (unsigned long long)y);
        seen[x] = seen[y] = true;
        pa = x;
        pb = y;
    }
    stream_free(a);
    stream_free(b);
}

Test(stream, client_stream_checks_arguments_and_reports_a_down_cluster, .timeout = 20)
{
    char err[512] = "";
    cr_assert_null(stream_new_client("127.0.0.1:1", "bad name!", 8, 500, err, sizeof err));
    cr_assert(strstr(err, "bad sequence name"), "error says: %s", err);
    cr_assert_null(stream_new_client("127.0.0.1:1", "ok", SEQD_COUNT_MAX + 1, 500, err,
                                     sizeof err));
    cr_assert(strstr(err, "bad buffer"), "error says: %s", err);
    cr_assert_null(stream_new_client("nocolon", "ok", 8, 500, err, sizeof err));
    cr_assert(strstr(err, "HOST:PORT"), "error says: %s", err);

    /* Nothing listens on port 1: refused at once, the stream keeps trying. */
    stream *s = stream_new_client("127.0.0.1:1", "ok", 8, 100, err, sizeof err);
    cr_assert_not_null(s, "%s", err);
    uint64_t id;
    cr_assert_eq(stream_next(s, &id, 300, err, sizeof err), CLIENT_EFAIL);
    cr_assert(strstr(err, "waiting for the cluster") && strstr(err, "127.0.0.1:1"),
              "error says: %s", err);
    struct stream_stats st;
    stream_stats(s, &st);
    cr_assert(st.waiting && st.failures >= 1);
    stream_free(s);
}

/* ---- a real cluster, taken down and brought back under two streams ---- */

static procs_cluster *ts_pc;

/* Holds the first free slot of 15..19 (an flock on the lock file that the
 * faults suite uses for the same slots, released when this test process
 * ends), so that this test never shares ports with one of those. */
static int ts_slot(void)
{
    return procs_shared_slot(60000);
}

static void ts_fini(void)
{
    procs_cluster_free(ts_pc);
    ts_pc = NULL;
}

Test(stream, real_cluster_down_and_back, .timeout = 120, .fini = ts_fini)
{
    char why[8192] = "";
    int slot = ts_slot();
    cr_assert_geq(slot, 0, "no free port slot in 60 s");
    ts_pc = procs_cluster_new(3, slot, 200, NULL, why, sizeof why);
    cr_assert_not_null(ts_pc, "%s", why);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(procs_start(ts_pc, i, NULL), 0, "start member %d", i);
    cr_assert(procs_wait_ready(ts_pc, 20000, why, sizeof why), "%s", why);

    char err[512] = "";
    stream *a = stream_new_client(ts_pc->servers, "ts.real", 64, 500, err, sizeof err);
    cr_assert_not_null(a, "%s", err);
    stream *b = stream_new_client(ts_pc->servers, "ts.real", 0, 500, err, sizeof err);
    cr_assert_not_null(b, "%s", err);
    size_t cap = 4000, n = 0;
    uint64_t *ids = calloc(cap, sizeof *ids);
    cr_assert_not_null(ids);
    uint64_t pa = 0, pb = 0;
    for (int i = 0; i < 1000; i++) {
        cr_assert_eq(stream_next(a, &ids[n], 5000, err, sizeof err), CLIENT_OK, "a: %s", err);
        cr_assert_gt(ids[n], pa);
        pa = ids[n++];
        if (i % 10 == 0) {
            cr_assert_eq(stream_next(b, &ids[n], 5000, err, sizeof err), CLIENT_OK, "b: %s", err);
            cr_assert_gt(ids[n], pb);
            pb = ids[n++];
        }
    }

    /* The whole cluster goes down: a's buffer runs dry, then it waits. */
    for (int i = 0; i < 3; i++)
        procs_kill(ts_pc, i);
    uint64_t id;
    int rc = CLIENT_OK;
    for (int i = 0; i < 200 && rc == CLIENT_OK; i++) {
        rc = stream_next(a, &id, 300, err, sizeof err);
        if (rc == CLIENT_OK) {
            cr_assert_gt(id, pa);
            pa = ids[n++] = id;
        }
    }
    cr_assert_eq(rc, CLIENT_EFAIL, "a kept handing out IDs with the cluster down");
    /* The fetch in progress ends within its 500 ms: from then on the stream
     * knows it is waiting for the cluster. */
    rc = stream_next(a, &id, 1500, err, sizeof err);
    cr_assert_eq(rc, CLIENT_EFAIL);
    cr_assert(strstr(err, "waiting for the cluster") && strstr(err, "connect"),
              "error says: %s", err);
    struct stream_stats st;
    stream_stats(a, &st);
    cr_assert(st.waiting);
    cr_assert_eq(stream_next(b, &id, 300, err, sizeof err), CLIENT_EFAIL);

    /* Back up: both streams resume above everything handed out before. */
    for (int i = 0; i < 3; i++)
        cr_assert_eq(procs_start(ts_pc, i, NULL), 0, "restart member %d", i);
    cr_assert(procs_wait_ready(ts_pc, 20000, why, sizeof why), "%s", why);
    for (int i = 0; i < 500 && n + 2 < cap; i++) {
        cr_assert_eq(stream_next(a, &ids[n], 10000, err, sizeof err), CLIENT_OK, "a: %s", err);
        cr_assert_gt(ids[n], pa);
        pa = ids[n++];
        if (i % 10 == 0) {
            cr_assert_eq(stream_next(b, &ids[n], 10000, err, sizeof err), CLIENT_OK, "b: %s",
                         err);
            cr_assert_gt(ids[n], pb);
            pb = ids[n++];
        }
    }
    stream_stats(a, &st);
    cr_assert(!st.waiting);
    qsort(ids, n, sizeof *ids, ts_cmp_u64);
    for (size_t i = 1; i < n; i++)
        cr_assert_neq(ids[i], ids[i - 1], "ID %llu handed out twice", (unsigned long long)ids[i]);
    cr_log_info("stream over a real cluster: %zu IDs, %llu refills, %llu failures, %llu stalls",
                n, (unsigned long long)st.refills, (unsigned long long)st.failures,
                (unsigned long long)st.stalls);
    stream_free(a);
    stream_free(b);
    free(ids);
}

/* Adaptive ranges: a consumer faster than one refill round trip makes the
 * range grow (up to the cap), IDs stay unique and increasing throughout,
 * and with adaptation off the range never changes. */
Test(stream, adaptive_range_grows_under_stalls, .timeout = 20)
{
    ts_src f;
    ts_src_init(&f, 1);
    atomic_store(&f.delay_ms, 2);   /* a slow source: every range stalls at first */
    char err[256] = "";
    stream *s = stream_new(ts_source, &f, 64, err, sizeof err);
    cr_assert_not_null(s, "%s", err);
    stream_set_adaptive(s, 64 * 16);
    uint64_t prev = 0, id = 0;
    for (int i = 0; i < 40000; i++) {
        cr_assert_eq(stream_next(s, &id, 2000, err, sizeof err), CLIENT_OK, "%s", err);
        cr_assert(id > prev, "id %llu after %llu", (unsigned long long)id, (unsigned long long)prev);
        prev = id;
    }
    uint64_t grown = atomic_load(&f.last_count);
    cr_assert(grown > 64 && grown <= 64 * 16, "range is %llu after stalls", (unsigned long long)grown);
    stream_free(s);

    ts_src g;
    ts_src_init(&g, 1);
    atomic_store(&g.delay_ms, 2);
    s = stream_new(ts_source, &g, 64, err, sizeof err);
    cr_assert_not_null(s, "%s", err);
    for (int i = 0; i < 5000; i++)
        cr_assert_eq(stream_next(s, &id, 2000, err, sizeof err), CLIENT_OK, "%s", err);
    cr_assert_eq(atomic_load(&g.last_count), 64, "fixed ranges changed size");
    stream_free(s);
}
