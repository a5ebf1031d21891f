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
#ifndef SEQD_STREAM_NO_CRITERION
#include <criterion/criterion.h>
#include <criterion/logging.h>
#else
/* `make test-tsan` builds this file alone with -fsanitize=thread, and
 * Criterion cannot start under ThreadSanitizer (its inheritable arena:
 * Snaipe/Criterion issue 274). This is the part of its API the file uses,
 * with a main() at the end that runs each test in a child process, under
 * its timeout, the way Criterion does. A failed assertion ends the child
 * after the test's .fini (which stops any cluster the test started). */
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct ts_test_opts {
    int timeout;
    void (*fini)(void);
};
static void (*ts_cur_fini)(void);

static void ts_fail(const char *file, int line, const char *what, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "%s:%d: assertion failed: %s\n", file, line, what);
    if (fmt[0] != '\0') {
        fprintf(stderr, "  ");
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fprintf(stderr, "\n");
    }
    if (ts_cur_fini != NULL)
        ts_cur_fini();
    _exit(1);
}

#define TS_CHECK(c, what, ...) \
    do { if (!(c)) ts_fail(__FILE__, __LINE__, what, "" __VA_ARGS__); } while (0)
#define cr_assert(c, ...) TS_CHECK((c), #c, __VA_ARGS__)
#define cr_assert_eq(a, b, ...) TS_CHECK((a) == (b), #a " == " #b, __VA_ARGS__)
#define cr_assert_neq(a, b, ...) TS_CHECK((a) != (b), #a " != " #b, __VA_ARGS__)
#define cr_assert_gt(a, b, ...) TS_CHECK((a) > (b), #a " > " #b, __VA_ARGS__)
#define cr_assert_geq(a, b, ...) TS_CHECK((a) >= (b), #a " >= " #b, __VA_ARGS__)
#define cr_assert_lt(a, b, ...) TS_CHECK((a) < (b), #a " < " #b, __VA_ARGS__)
#define cr_assert_leq(a, b, ...) TS_CHECK((a) <= (b), #a " <= " #b, __VA_ARGS__)
#define cr_assert_null(p, ...) TS_CHECK((p) == NULL, #p " == NULL", __VA_ARGS__)
#define cr_assert_not_null(p, ...) TS_CHECK((p) != NULL, #p " != NULL", __VA_ARGS__)
#define cr_assert_str_eq(a, b, ...) TS_CHECK(strcmp((a), (b)) == 0, #a " eq " #b, __VA_ARGS__)
#define cr_log_info(...) (fprintf(stderr, "[----] " __VA_ARGS__), fputc('\n', stderr))

#define TS_MAX_TESTS 64
static struct ts_test {
    const char *name;
    void (*fn)(void);
    const struct ts_test_opts *opts;
} ts_tests[TS_MAX_TESTS];
static int ts_ntests;

#define Test(suite, name, ...)                                                   \
    static void suite##_##name(void);                                           \
    static const struct ts_test_opts suite##_##name##_opts = { __VA_ARGS__ };   \
    __attribute__((constructor)) static void suite##_##name##_reg(void)         \
    {                                                                           \
        if (ts_ntests < TS_MAX_TESTS)                                           \
            ts_tests[ts_ntests++] = (struct ts_test){ #suite "/" #name,         \
                                                      suite##_##name,           \
                                                      &suite##_##name##_opts }; \
    }                                                                           \
    static void suite##_##name(void)
#endif

#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
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

/* ---- the lock-free fast path and the coalescing of waiters ---- */

/* A source that records every range it hands out, and leaves a hole of
 * TS_HOLE IDs after each: an ID the stream made up past the end of a range
 * (an overshoot of the fast path) lands in a hole and is caught. It also
 * keeps the largest count asked for, to see waiters coalesce. */
#define TS_HOLE 7
#define TS_MAX_RANGES 200000

typedef struct ts_rec {
    ts_src base;                /* the switches (delay_ms) and counters */
    pthread_mutex_t mu;         /* the stream calls one at a time; TSan and
                                 * the assertions need not trust that */
    uint64_t firsts[TS_MAX_RANGES], counts[TS_MAX_RANGES];
    size_t n;
    uint64_t max_count;
    bool overflow;
    _Atomic int concurrent;     /* source calls in progress right now */
    _Atomic int overlapped;     /* ever more than one: the contract broken */
} ts_rec;

static int ts_rec_source(void *ctx, uint32_t count, uint64_t *first, char *err, size_t errlen)
{
    ts_rec *r = ctx;
    if (atomic_fetch_add(&r->concurrent, 1) != 0)
        atomic_store(&r->overlapped, 1);
    int rc = ts_source(&r->base, count, first, err, errlen);
    if (rc == 0) {
        atomic_fetch_add(&r->base.next, TS_HOLE);
        pthread_mutex_lock(&r->mu);
        if (r->n < TS_MAX_RANGES) {
            r->firsts[r->n] = *first;
            r->counts[r->n] = count;
            r->n++;
        } else {
            r->overflow = true;
        }
        if (count > r->max_count)
            r->max_count = count;
        pthread_mutex_unlock(&r->mu);
    }
    atomic_fetch_sub(&r->concurrent, 1);
    return rc;
}

static ts_rec *ts_rec_new(uint64_t start)
{
    ts_rec *r = calloc(1, sizeof *r);
    cr_assert_not_null(r);
    ts_src_init(&r->base, start);
    pthread_mutex_init(&r->mu, NULL);
    atomic_init(&r->concurrent, 0);
    atomic_init(&r->overlapped, 0);
    return r;
}

static void ts_rec_free(ts_rec *r)
{
    pthread_mutex_destroy(&r->mu);
    free(r);
}

/* Every ID (sorted) lies in a recorded range (in increasing order, since
 * the fake counts up). */
static void ts_assert_in_ranges(const ts_rec *r, const uint64_t *sorted, size_t n)
{
    cr_assert(!r->overflow, "more ranges than the recorder keeps");
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        while (k < r->n && sorted[i] >= r->firsts[k] + r->counts[k])
            k++;
        cr_assert(k < r->n && sorted[i] >= r->firsts[k],
                  "ID %llu is in no range the source handed out", (unsigned long long)sorted[i]);
    }
}

typedef struct ts_fworker {
    stream *s;
    uint64_t *ids;
    int count;
    int fails;
    int not_increasing;
    char err[256];
    pthread_barrier_t *go;
} ts_fworker;

static void *ts_fworker_main(void *arg)
{
    ts_fworker *w = arg;
    if (w->go != NULL)
        pthread_barrier_wait(w->go);
    for (int i = 0; i < w->count; i++) {
        if (stream_next(w->s, &w->ids[i], 10000, w->err, sizeof w->err) != CLIENT_OK) {
            w->fails++;
            w->ids[i] = 0;
            continue;
        }
        if (i > 0 && w->ids[i] <= w->ids[i - 1])
            w->not_increasing++;
    }
    return NULL;
}

/* 32 threads on one stream, each taking `per` IDs: every call succeeds,
 * each thread's IDs increase, no ID is handed out twice, and the stats
 * count exactly the IDs handed out. Returns all IDs, sorted (the caller
 * frees them). */
#define TS_FTHREADS 32

static uint64_t *ts_run_32(stream *s, int per, size_t *n_out)
{
    size_t n = (size_t)TS_FTHREADS * (size_t)per;
    uint64_t *all = calloc(n, sizeof *all);
    cr_assert_not_null(all);
    ts_fworker w[TS_FTHREADS];
    pthread_t th[TS_FTHREADS];
    pthread_barrier_t go;
    pthread_barrier_init(&go, NULL, TS_FTHREADS);
    for (int i = 0; i < TS_FTHREADS; i++) {
        w[i] = (ts_fworker){ .s = s, .ids = all + (size_t)i * (size_t)per, .count = per,
                             .go = &go };
        cr_assert_eq(pthread_create(&th[i], NULL, ts_fworker_main, &w[i]), 0);
    }
    for (int i = 0; i < TS_FTHREADS; i++)
        pthread_join(th[i], NULL);
    pthread_barrier_destroy(&go);
    for (int i = 0; i < TS_FTHREADS; i++) {
        cr_assert_eq(w[i].fails, 0, "thread %d: %d calls failed (%s)", i, w[i].fails, w[i].err);
        cr_assert_eq(w[i].not_increasing, 0, "thread %d: %d IDs not above the one before", i,
                     w[i].not_increasing);
    }
    qsort(all, n, sizeof *all, ts_cmp_u64);
    for (size_t i = 1; i < n; i++)
        cr_assert_neq(all[i], all[i - 1], "ID %llu handed out twice", (unsigned long long)all[i]);
    struct stream_stats st;
    stream_stats(s, &st);
    cr_assert_eq(st.ids, n, "stats count %llu IDs, %zu were handed out",
                 (unsigned long long)st.ids, n);
    *n_out = n;
    return all;
}

Test(stream, fast_path_32_threads_unique_per_thread_order_committed, .timeout = 120)
{
    /* Buffer 1024 (fixed and adaptive ranges) and 2: the fast path with
     * its range swaps, and a buffer too small for 32 threads, where
     * almost every call waits. */
    const uint32_t bufs[] = { 1024, 1024, 2 };
    const int per[] = { 20000, 20000, 1000 };
    for (int c = 0; c < 3; c++) {
        ts_rec *r = ts_rec_new(1);
        char err[256] = "";
        stream *s = stream_new(ts_rec_source, r, bufs[c], err, sizeof err);
        cr_assert_not_null(s, "%s", err);
        if (c == 1)
            stream_set_adaptive(s, 1024 * 16);
        size_t n;
        uint64_t *all = ts_run_32(s, per[c], &n);
        stream_free(s);
        ts_assert_in_ranges(r, all, n);
        cr_assert_eq(atomic_load(&r->overlapped), 0, "buffer %u: two source calls at once",
                     bufs[c]);
        free(all);
        ts_rec_free(r);
    }
}

Test(stream, buffer_0_32_threads_unique_per_thread_order_committed, .timeout = 120)
{
    ts_rec *r = ts_rec_new(1);
    char err[256] = "";
    stream *s = stream_new(ts_rec_source, r, 0, err, sizeof err);
    cr_assert_not_null(s, "%s", err);
    size_t n;
    uint64_t *all = ts_run_32(s, 300, &n);
    struct stream_stats st;
    stream_stats(s, &st);
    stream_free(s);
    ts_assert_in_ranges(r, all, n);
    cr_assert_eq(atomic_load(&r->overlapped), 0, "two source calls at once");
    /* Nobody gave up, so no ID was dropped: every ID fetched was handed
     * out (the holes aside). */
    cr_assert_eq(atomic_load(&r->base.next) - 1, n + TS_HOLE * st.refills,
                 "%llu IDs fetched for %zu handed out",
                 (unsigned long long)(atomic_load(&r->base.next) - 1 - TS_HOLE * st.refills), n);
    free(all);
    ts_rec_free(r);
}

/* Any two calls of which one returns before the other starts, in two
 * threads taking turns: the later call's ID is higher (the header's
 * promise beyond per-thread order). */
typedef struct ts_turns {
    stream *s;
    _Atomic int turn;
    _Atomic uint64_t last;
    int fails, bad;
} ts_turns;

#define TS_TURNS 2000

static void ts_turns_play(ts_turns *t, int me)
{
    for (int i = 0; i < TS_TURNS; i++) {
        while (atomic_load(&t->turn) != me)
            sched_yield();
        uint64_t id = 0;
        char err[128];
        if (stream_next(t->s, &id, 5000, err, sizeof err) != CLIENT_OK)
            t->fails++;
        else if (id <= atomic_load(&t->last))
            t->bad++;
        atomic_store(&t->last, id);
        atomic_store(&t->turn, 1 - me);
    }
}

static void *ts_turns_other(void *arg)
{
    ts_turns_play(arg, 1);
    return NULL;
}

Test(stream, later_call_of_another_thread_gets_a_higher_id, .timeout = 60)
{
    const uint32_t bufs[] = { 0, 2, 1024 };
    for (int c = 0; c < 3; c++) {
        ts_src f;
        ts_src_init(&f, 1);
        stream *s = ts_new(&f, bufs[c]);
        ts_turns t = { .s = s };
        atomic_init(&t.turn, 0);
        atomic_init(&t.last, 0);
        pthread_t th;
        cr_assert_eq(pthread_create(&th, NULL, ts_turns_other, &t), 0);
        ts_turns_play(&t, 0);
        pthread_join(th, NULL);
        cr_assert_eq(t.fails, 0, "buffer %u", bufs[c]);
        cr_assert_eq(t.bad, 0, "buffer %u: %d calls got an ID below the previous call's",
                     bufs[c], t.bad);
        stream_free(s);
    }
}

/* 32 threads call an empty stream over a slow source at once: one fetch
 * serves them (two or three, for those that arrive while the first is in
 * flight), not 32 fetches in turn. */
static void ts_coalesce(uint32_t buffer)
{
    ts_rec *r = ts_rec_new(1);
    atomic_store(&r->base.delay_ms, 100);
    char err[256] = "";
    stream *s = stream_new(ts_rec_source, r, buffer, err, sizeof err);
    cr_assert_not_null(s, "%s", err);
    size_t n;
    uint64_t *all = ts_run_32(s, 1, &n);
    struct stream_stats st;
    stream_stats(s, &st);
    stream_free(s);
    ts_assert_in_ranges(r, all, n);
    uint64_t calls = atomic_load(&r->base.calls);
    cr_log_info("buffer %u: 32 waiters, %llu source calls, largest %llu IDs, %llu stalls", buffer,
                (unsigned long long)calls, (unsigned long long)r->max_count,
                (unsigned long long)st.stalls);
    cr_assert_leq(calls, 5, "buffer %u: %llu source calls for 32 waiters", buffer,
                  (unsigned long long)calls);
    cr_assert_geq(r->max_count, 16, "buffer %u: no fetch served more than %llu waiters", buffer,
                  (unsigned long long)r->max_count);
    cr_assert_geq(st.stalls, 16, "buffer %u: only %llu of 32 calls waited", buffer,
                  (unsigned long long)st.stalls);
    free(all);
    ts_rec_free(r);
}

Test(stream, waiters_of_an_empty_stream_share_one_fetch, .timeout = 60)
{
    ts_coalesce(0);
    ts_coalesce(2);
}

/* A buffer-0 waiter that gives up while its fetch is in flight: the others
 * of that fetch get their IDs, its own is dropped (a gap), and the next
 * caller gets an ID from a fetch of its own, above the dropped one. */
typedef struct ts_one {
    stream *s;
    uint32_t timeout_ms;
    int rc;
    uint64_t id;
    char err[256];
} ts_one;

static void *ts_one_main(void *arg)
{
    ts_one *o = arg;
    o->rc = stream_next(o->s, &o->id, o->timeout_ms, o->err, sizeof o->err);
    return NULL;
}

Test(stream, buffer_0_waiter_that_gives_up_drops_its_id, .timeout = 30)
{
    ts_rec *r = ts_rec_new(1);
    char err[256] = "";
    stream *s = stream_new(ts_rec_source, r, 0, err, sizeof err);
    cr_assert_not_null(s, "%s", err);
    /* A slow first fetch (t = 0..400 ms, its caller alone); two callers
     * queue behind it (t = 100, 120) and form the next batch (400..800),
     * led by the first of them; the second gives up in it (t = 620). */
    atomic_store(&r->base.delay_ms, 400);
    ts_one lead = { .s = s, .timeout_ms = 5000 }, keep = { .s = s, .timeout_ms = 5000 },
           quit = { .s = s, .timeout_ms = 500 };
    pthread_t th[3];
    cr_assert_eq(pthread_create(&th[0], NULL, ts_one_main, &lead), 0);
    ts_sleep_ms(100);
    cr_assert_eq(pthread_create(&th[1], NULL, ts_one_main, &keep), 0);
    ts_sleep_ms(20);
    cr_assert_eq(pthread_create(&th[2], NULL, ts_one_main, &quit), 0);
    for (int i = 0; i < 3; i++)
        pthread_join(th[i], NULL);
    cr_assert_eq(lead.rc, CLIENT_OK, "%s", lead.err);
    cr_assert_eq(keep.rc, CLIENT_OK, "%s", keep.err);
    cr_assert_eq(quit.rc, CLIENT_EFAIL, "the impatient caller got %llu",
                 (unsigned long long)quit.id);
    cr_assert_eq(r->n, 2, "%zu fetches", r->n);
    cr_assert_eq(r->counts[1], 2, "the second fetch asked for %llu, not one per waiter",
                 (unsigned long long)r->counts[1]);
    cr_assert_eq(keep.id, r->firsts[1], "the waiter left got %llu", (unsigned long long)keep.id);
    atomic_store(&r->base.delay_ms, 0);
    uint64_t id = ts_next_ok(s);
    cr_assert_eq(r->n, 3);
    cr_assert_eq(id, r->firsts[2], "a later caller got %llu, left over from an old fetch",
                 (unsigned long long)id);
    cr_assert_gt(id, r->firsts[1] + 1);
    stream_free(s);
    ts_rec_free(r);
}

/* ---- 32 threads over a real cluster ---- */

static procs_cluster *ts_pc32;

static void ts_fini32(void)
{
    procs_cluster_free(ts_pc32);
    ts_pc32 = NULL;
}

Test(stream, real_cluster_32_threads_buffer_0_and_1024, .timeout = 180, .fini = ts_fini32)
{
    char why[8192] = "";
    int slot = ts_slot();
    cr_assert_geq(slot, 0, "no free port slot in 60 s");
    ts_pc32 = procs_cluster_new(3, slot, 200, NULL, why, sizeof why);
    cr_assert_not_null(ts_pc32, "%s", why);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(procs_start(ts_pc32, i, NULL), 0, "start member %d", i);
    cr_assert(procs_wait_ready(ts_pc32, 20000, why, sizeof why), "%s", why);

    const uint32_t bufs[] = { 0, 1024 };
    const int per[] = { 60, 3000 };
    uint64_t hi = 0;
    for (int c = 0; c < 2; c++) {
        char err[512] = "";
        stream *s = stream_new_client(ts_pc32->servers, "ts.real32", bufs[c], 5000, err,
                                      sizeof err);
        cr_assert_not_null(s, "%s", err);
        size_t n;
        uint64_t *all = ts_run_32(s, per[c], &n);
        struct stream_stats st;
        stream_stats(s, &st);
        stream_free(s);
        /* The second stream's IDs all lie above the first's: it started
         * after the first was freed, and the cluster's fetches are in
         * real-time order. */
        cr_assert_gt(all[0], hi, "buffer %u: ID %llu not above %llu of the stream before",
                     bufs[c], (unsigned long long)all[0], (unsigned long long)hi);
        hi = all[n - 1];
        cr_log_info("real cluster, buffer %u: %zu IDs by 32 threads, %llu fetches, %llu stalls",
                    bufs[c], n, (unsigned long long)st.refills, (unsigned long long)st.stalls);
        if (bufs[c] == 0)
            cr_assert_leq(st.refills * 4, n, "buffer 0: %llu fetches for %zu IDs: waiters "
                          "did not share fetches", (unsigned long long)st.refills, n);
        free(all);
    }
}

#ifdef SEQD_STREAM_NO_CRITERION
#include <fnmatch.h>
#include <signal.h>
#include <sys/wait.h>

/* Runs every test whose "suite/name" matches argv[1] (a glob; all if
 * absent), each in a child process killed at its timeout; exits 1 if any
 * failed (a ThreadSanitizer report makes the child exit non-zero). */
int main(int argc, char **argv)
{
    const char *glob = argc > 1 ? argv[1] : "*";
    int run = 0, failed = 0;
    for (int i = 0; i < ts_ntests; i++) {
        if (fnmatch(glob, ts_tests[i].name, 0) != 0)
            continue;
        run++;
        int64_t t0 = ts_now_ms();
        fflush(NULL);
        pid_t pid = fork();
        if (pid < 0) {
            perror("fork");
            return 1;
        }
        if (pid == 0) {
            ts_cur_fini = ts_tests[i].opts->fini;
            alarm((unsigned)(ts_tests[i].opts->timeout > 0 ? ts_tests[i].opts->timeout : 60));
            ts_tests[i].fn();
            if (ts_cur_fini != NULL)
                ts_cur_fini();
            exit(0);
        }
        int st = 0;
        while (waitpid(pid, &st, 0) < 0)
            ;
        bool ok = WIFEXITED(st) && WEXITSTATUS(st) == 0;
        failed += !ok;
        if (ok)
            fprintf(stderr, "[PASS] %s: (%.2fs)\n", ts_tests[i].name,
                    (double)(ts_now_ms() - t0) / 1000);
        else if (WIFSIGNALED(st))
            fprintf(stderr, "[FAIL] %s: killed by signal %d%s\n", ts_tests[i].name,
                    WTERMSIG(st), WTERMSIG(st) == SIGALRM ? " (timeout)" : "");
        else
            fprintf(stderr, "[FAIL] %s: exit %d\n", ts_tests[i].name, WEXITSTATUS(st));
    }
    fprintf(stderr, "[====] Synthesis: Tested: %d | Passing: %d | Failing: %d\n", run,
            run - failed, failed);
    return failed > 0 || run == 0;
}
#endif
