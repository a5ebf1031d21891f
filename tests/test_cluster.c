/* tests/test_cluster.c — real `seqd` processes on 127.0.0.1 (suite cluster).
 *
 * Every test starts its own cluster through tests/procs.h on its own port
 * slot, records every fetch in a tests/history.h history and checks the ID
 * contract
 * over all of them (no duplicates, increasing per client, real-time order).
 * The .fini kills every member, also when an assertion fails; a test killed
 * by its timeout leaves nothing either (the servers die with it).
 *
 * --round-timeout is 200 ms (a few tests need a wider recovery window and
 * say why), so a fresh cluster is ready in well under a second.
 */
#include <criterion/criterion.h>
#include <criterion/logging.h>

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../client/client_admin.h"
#include "../net/frame.h"
#include "procs.h"
#include "../client/client_async.h"

#include <event2/event.h>

#define CL_R 200
#define CL_READY_MS 20000

/* The cluster of the running test: the .fini needs it (Criterion gives a
 * fini no arguments), and each test runs in its own process. */
static procs_cluster *cl_pc;

static void cl_fini(void)
{
    procs_cluster_free(cl_pc);
    cl_pc = NULL;
}

/* Fails the test with the member logs attached, so a report shows what the
 * servers said at the moment things went wrong. */
static void cl_failf(const char *expr, const char *file, int line, const char *fmt, ...)
{
    static char logs[24576];
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    logs[0] = '\0';
    if (cl_pc != NULL)
        procs_logs(cl_pc, 15, logs, sizeof logs);
    cr_assert_fail("%s:%d: %s: %s\n%s", file, line, expr, msg, logs);
}

#define cl_assert(cond, ...)                                                   \
    do {                                                                       \
        if (!(cond))                                                           \
            cl_failf(#cond, __FILE__, __LINE__, __VA_ARGS__);                  \
    } while (0)

static void cl_ready(int64_t ms)
{
    static char why[24576];
    cl_assert(procs_wait_ready(cl_pc, ms, why, sizeof why), "%s", why);
}

/* New cluster of n on `slot`, every member started, all ready. */
static procs_cluster *cl_up(int n, int slot, uint32_t round_ms, const char *const *extra)
{
    char why[256] = "";
    cl_pc = procs_cluster_new(n, slot, round_ms, extra, why, sizeof why);
    cr_assert_not_null(cl_pc, "%s", why);
    cl_assert(procs_start_all(cl_pc) == 0, "spawning %s failed", procs_bin());
    cl_ready(CL_READY_MS);
    return cl_pc;
}

/* A client whose list starts at member `start`, so load spreads over all
 * coordinators (client_fetch tries the list in order). */
static client *cl_client_from(procs_cluster *pc, int start, int k)
{
    char list[PROCS_MAX * 32] = "";
    size_t off = 0;
    for (int j = 0; j < k; j++)
        off += (size_t)snprintf(list + off, sizeof list - off, "%s%s", j ? "," : "",
                                pc->m[(start + j) % pc->n].addr);
    char err[256] = "";
    client *c = client_new(list, err, sizeof err);
    cr_assert_not_null(c, "%s", err);
    return c;
}

static client *cl_client(procs_cluster *pc, int start)
{
    return cl_client_from(pc, start, pc->n);
}

/* Client of member i alone: the fetch is served by that coordinator. */
static client *cl_client_only(procs_cluster *pc, int i)
{
    return cl_client_from(pc, i, 1);
}

static const char *const cl_seqs[] = { "alpha", "beta" };

/* A fetch that must succeed, recorded in h. */
static uint64_t cl_fetch_ok(history *h, client *c, int client_id, int seq, uint32_t count)
{
    char err[1024] = "";
    uint64_t first = 0;
    int rc = procs_fetch(h, c, (uint32_t)client_id, cl_seqs[seq], count, 5000, &first, err, sizeof err);
    cl_assert(rc == CLIENT_OK, "fetch of %u '%s' by client %d: %s", count, cl_seqs[seq], client_id,
              err);
    return first;
}

/* Holds the whole history to the ID contract; returns its report. */
static history_report cl_check_history(const history *h)
{
    static char why[4096];
    history_report r;
    why[0] = '\0';
    cl_assert(procs_history_check(h, &r, why, sizeof why), "%s", why);
    return r;
}

/* ---- load: client threads fetching mixed counts on two sequences ---- */

typedef struct cl_worker {
    pthread_t th;
    int id;
    client *c;
    history *h;
    int64_t stop_ms;
    uint32_t timeout_ms;
    int ok, fails;
    char lasterr[512];
} cl_worker;

static void *cl_worker_main(void *arg)
{
    cl_worker *w = arg;
    static const uint32_t counts[] = { 1, 7, 100, 1000 };
    unsigned seed = (unsigned)w->id * 2654435761u + 1;
    while (procs_now_ms() < w->stop_ms) {
        int seq = (int)(rand_r(&seed) % 2);
        uint32_t n = counts[rand_r(&seed) % 4];
        char err[512];
        uint64_t first;
        if (procs_fetch(w->h, w->c, (uint32_t)w->id, cl_seqs[seq], n, w->timeout_ms, &first, err,
                        sizeof err) == CLIENT_OK) {
            w->ok++;
        } else {
            w->fails++;
            snprintf(w->lasterr, sizeof w->lasterr, "%s", err);
            procs_sleep_ms(20);
        }
    }
    return NULL;
}

static cl_worker *cl_load_start(procs_cluster *pc, history *h, int threads, int64_t ms,
                                uint32_t timeout_ms)
{
    cl_worker *w = calloc((size_t)threads, sizeof *w);
    cr_assert_not_null(w);
    int64_t stop = procs_now_ms() + ms;
    for (int k = 0; k < threads; k++) {
        w[k].id = k;
        w[k].c = cl_client(pc, k % pc->n);
        w[k].h = h;
        w[k].stop_ms = stop;
        w[k].timeout_ms = timeout_ms;
        cr_assert_eq(pthread_create(&w[k].th, NULL, cl_worker_main, &w[k]), 0);
    }
    return w;
}

/* Joins the workers; returns the number of failed fetches (and one error). */
static int cl_load_join(cl_worker *w, int threads, char *lasterr, size_t len)
{
    int fails = 0;
    for (int k = 0; k < threads; k++) {
        pthread_join(w[k].th, NULL);
        client_free(w[k].c);
        fails += w[k].fails;
        if (w[k].fails > 0 && lasterr != NULL)
            snprintf(lasterr, len, "client %d: %s", k, w[k].lasterr);
    }
    free(w);
    return fails;
}

/* Load on a healthy cluster: every fetch must succeed and the whole history
 * must satisfy the contract; the members' counters must agree with it. */
static void cl_concurrent(int n, int slot, int threads, int64_t ms)
{
    procs_cluster *pc = cl_up(n, slot, CL_R, NULL);
    history *h = history_new();
    cr_assert_not_null(h);
    int64_t t0 = procs_now_ms();
    cl_worker *w = cl_load_start(pc, h, threads, ms, 5000);
    char lasterr[600] = "";
    int fails = cl_load_join(w, threads, lasterr, sizeof lasterr);
    int64_t took = procs_now_ms() - t0;
    cl_assert(fails == 0, "%d fetches failed, last: %s", fails, lasterr);
    history_report rep = cl_check_history(h);
    cl_assert(rep.ok >= (uint64_t)threads, "only %llu fetches in %lld ms",
              (unsigned long long)rep.ok, (long long)took);
    uint64_t fetches = 0, ids = 0;
    for (int i = 0; i < n; i++) {
        struct seqd_status st;
        cl_assert(procs_status(pc, i, 2000, &st) == CLIENT_OK, "status of member %d", i);
        fetches += st.fetches;
        ids += st.ids;
    }
    cl_assert(fetches >= rep.ok && ids >= rep.ids_handed,
              "members count %llu fetches / %llu ids, clients got %llu / %llu",
              (unsigned long long)fetches, (unsigned long long)ids, (unsigned long long)rep.ok,
              (unsigned long long)rep.ids_handed);
    cr_log_info("cluster of %d, %d clients: %llu fetches, %llu IDs in %lld ms (%.0f fetches/s), "
                "gap ratio %.4f", n, threads, (unsigned long long)rep.ok,
                (unsigned long long)rep.ids_handed, (long long)took,
                (double)rep.ok * 1000.0 / (double)(took ? took : 1), rep.gap_ratio);
    history_free(h);
}

Test(cluster, concurrent_clients_3_members, .timeout = 60, .fini = cl_fini)
{
    cl_concurrent(3, 0, 32, 3000);
}

Test(cluster, concurrent_clients_5_members, .timeout = 60, .fini = cl_fini)
{
    cl_concurrent(5, 1, 32, 1500);
}

/* Counts lines of a command's output. */
static int cl_lines(const char *s)
{
    int n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

Test(cluster, minority_down_serves_majority_down_fails_fast, .timeout = 60, .fini = cl_fini)
{
    procs_cluster *pc = cl_up(3, 2, CL_R, NULL);
    history *h = history_new();
    cr_assert_not_null(h);
    client *c = cl_client(pc, 0);
    for (int k = 0; k < 10; k++)
        cl_fetch_ok(h, c, 0, 0, 7);
    procs_kill(pc, 0);
    /* The list starts at the dead member: refused, next one serves. */
    client *fresh = cl_client(pc, 0);
    for (int k = 0; k < 10; k++) {
        cl_fetch_ok(h, c, 0, 0, 7);
        cl_fetch_ok(h, fresh, 1, 0, 1);
    }
    for (int i = 1; i < 3; i++) {
        client *only = cl_client_only(pc, i);
        cl_fetch_ok(h, only, 2 + i, 0, 100);
        client_free(only);
    }
    procs_result r;
    procs_run(&r, 10000, NULL, "status", "--servers", pc->servers, NULL);
    cl_assert(r.status > 0, "status with a member down exited %d:\n%s", r.status, r.out);
    cl_assert(cl_lines(r.out) == 3, "status printed:\n%s", r.out);
    char want[64];
    snprintf(want, sizeof want, "%s down", pc->m[0].addr);
    cl_assert(strstr(r.out, want) != NULL, "no '%s' in:\n%s", want, r.out);
    snprintf(want, sizeof want, "%s ready ", pc->m[1].addr);
    cl_assert(strstr(r.out, want) != NULL, "no '%s' in:\n%s", want, r.out);

    procs_kill(pc, 1);
    procs_run(&r, 10000, NULL, "fetch", "--servers", pc->servers, "--timeout", "1000", "alpha",
              NULL);
    cl_assert(r.status == 1, "fetch without quorum exited %d, stdout '%s' stderr '%s'", r.status,
              r.out, r.err);
    cl_assert(r.ms <= 2000, "fetch --timeout 1000 took %lld ms", (long long)r.ms);
    cl_assert(r.out[0] == '\0', "printed IDs without quorum: %s", r.out);
    cl_assert(cl_lines(r.err) == 1 && strlen(r.err) > 20, "stderr not one clear line: '%s'", r.err);
    snprintf(want, sizeof want, "%s: no quorum", pc->m[2].addr);
    cl_assert(strstr(r.err, want) != NULL, "stderr does not say '%s': %s", want, r.err);
    snprintf(want, sizeof want, "%s: connection refused", pc->m[0].addr);
    cl_assert(strstr(r.err, want) != NULL, "stderr does not say '%s': %s", want, r.err);
    cr_log_info("majority down: exit %d in %lld ms: %s", r.status, (long long)r.ms, r.err);
    client_free(c);
    client_free(fresh);
    cl_check_history(h);
    history_free(h);
}

/* A member that was down while the others moved on must not hand out IDs
 * below theirs once it is back: graceful stop (exit 0) and kill -9. */
Test(cluster, restarted_member_catches_up, .timeout = 60, .fini = cl_fini)
{
    procs_cluster *pc = cl_up(3, 3, CL_R, NULL);
    history *h = history_new();
    cr_assert_not_null(h);
    for (int round = 0; round < 2; round++) {
        int victim = 2 - round;
        client *vc = cl_client_only(pc, victim);
        for (int k = 0; k < 20; k++)
            cl_fetch_ok(h, vc, 10 + round, 0, 3);   /* victim's fast path knows this */
        client_free(vc);
        if (round == 0) {
            int rc = procs_stop(pc, victim, 10000);
            cl_assert(rc == 0, "SIGTERM: member exited %d", rc);
        } else {
            procs_kill(pc, victim);
        }
        client *oc = cl_client(pc, (victim + 1) % 3);
        for (int k = 0; k < 30; k++)
            cl_fetch_ok(h, oc, 20 + round, 0, 100);
        client_free(oc);
        uint64_t before = procs_history_max(h, cl_seqs[0]);
        cl_assert(procs_start(pc, victim, NULL) == 0, "restart");
        cl_ready(CL_READY_MS);
        vc = cl_client_only(pc, victim);
        uint64_t first = cl_fetch_ok(h, vc, 30 + round, 0, 1);
        cl_assert(first > before, "member %d restarted handed out %llu, earlier max %llu", victim,
                  (unsigned long long)first, (unsigned long long)before);
        client_free(vc);
    }
    cl_check_history(h);
    history_free(h);
}

/* Waits for member i to answer status and returns the first state seen. */
static int cl_first_state(procs_cluster *pc, int i, int64_t ms)
{
    int64_t deadline = procs_now_ms() + ms;
    while (procs_now_ms() < deadline) {
        struct seqd_status st;
        if (procs_status(pc, i, 200, &st) == CLIENT_OK)
            return st.state;
        procs_sleep_ms(5);
    }
    return 0;
}

/* Lost disk, others up: the member recovers (reads the others) before it
 * serves or votes; R is 500 ms so the recovering window (>= 2R) is wide
 * enough to observe. */
Test(cluster, wiped_member_recovers_before_voting, .timeout = 60, .fini = cl_fini)
{
    procs_cluster *pc = cl_up(3, 4, 500, NULL);
    history *h = history_new();
    cr_assert_not_null(h);
    client *c = cl_client(pc, 0);
    for (int k = 0; k < 20; k++)
        cl_fetch_ok(h, c, 0, k % 2, 1000);
    client_free(c);
    procs_kill(pc, 0);
    cl_assert(procs_wipe(pc, 0) == 0, "rm -rf %s", pc->m[0].dir);
    procs_crash(h, "kill9 0, wipe 0");
    cl_assert(procs_start(pc, 0, NULL) == 0, "restart");
    int st = cl_first_state(pc, 0, 5000);
    cl_assert(st == STATE_RECOVERING, "wiped member first said state %d, not recovering", st);
    client *only = cl_client_only(pc, 0);
    char err[512] = "";
    uint64_t first = 0;
    int rc = client_fetch(only, "alpha", 1, 200, &first, err, sizeof err);
    struct seqd_status now;
    if (procs_status(pc, 0, 500, &now) == CLIENT_OK && now.state == STATE_RECOVERING)
        cl_assert(rc == CLIENT_EFAIL && strstr(err, "recovering") != NULL,
                  "fetch from a recovering member: rc %d first %llu err '%s'", rc,
                  (unsigned long long)first, err);
    cl_ready(CL_READY_MS);
    for (int seq = 0; seq < 2; seq++) {
        uint64_t before = procs_history_max(h, cl_seqs[seq]);
        first = cl_fetch_ok(h, only, 1, seq, 1);
        cl_assert(first > before, "wiped member handed out %llu of %s, earlier max %llu",
                  (unsigned long long)first, cl_seqs[seq], (unsigned long long)before);
    }
    client_free(only);
    c = cl_client(pc, 1);
    for (int k = 0; k < 10; k++)
        cl_fetch_ok(h, c, 2, k % 2, 7);
    client_free(c);
    cl_check_history(h);
    history_free(h);
}

/* The hard case for recovery: the highest value lives only on members 0
 * and 1 (2 was down when it was committed); then 0 loses its disk and 1 is
 * down. Member 0 (empty) and member 2 (stale) must both stay recovering —
 * neither may count the empty member as holding state — until 1 is back;
 * then IDs continue above the committed maximum. */
Test(cluster, empty_member_never_counts_as_state, .timeout = 60, .fini = cl_fini)
{
    procs_cluster *pc = cl_up(3, 13, CL_R, NULL);
    history *h = history_new();
    cr_assert_not_null(h);
    client *c = cl_client(pc, 0);
    for (int k = 0; k < 5; k++)
        cl_fetch_ok(h, c, 0, 0, 10);
    procs_kill(pc, 2);
    procs_crash(h, "kill9 2");
    for (int k = 0; k < 20; k++)
        cl_fetch_ok(h, c, 0, 0, 1000);
    client_free(c);
    uint64_t max = procs_history_max(h, cl_seqs[0]);
    procs_kill(pc, 0);
    procs_kill(pc, 1);
    cl_assert(procs_wipe(pc, 0) == 0, "rm -rf %s", pc->m[0].dir);
    procs_crash(h, "kill9 0 1, wipe 0");
    cl_assert(procs_start(pc, 0, NULL) == 0 && procs_start(pc, 2, NULL) == 0, "restart");
    procs_sleep_ms(8 * CL_R);
    for (int i = 0; i < 3; i += 2) {
        struct seqd_status st;
        int rc = procs_status(pc, i, 1000, &st);
        cl_assert(rc == CLIENT_OK && st.state == STATE_RECOVERING,
                  "member %d (%s) should still be recovering with member 1 down: rc %d state %d", i,
                  i == 0 ? "wiped" : "stale", rc, rc == CLIENT_OK ? st.state : -1);
    }
    procs_result r;
    char servers[80];
    snprintf(servers, sizeof servers, "%s,%s", pc->m[0].addr, pc->m[2].addr);
    procs_run(&r, 10000, NULL, "fetch", "--servers", servers, "--timeout", "500", "alpha", NULL);
    cl_assert(r.status == 1, "fetch while no member can serve: exit %d out '%s' err '%s'", r.status,
              r.out, r.err);
    cl_assert(procs_start(pc, 1, NULL) == 0, "restart member 1");
    cl_ready(CL_READY_MS);
    for (int i = 0; i < 3; i++) {
        client *only = cl_client_only(pc, i);
        uint64_t first = cl_fetch_ok(h, only, 1 + i, 0, 1);
        cl_assert(first > max, "member %d handed out %llu, committed max %llu", i,
                  (unsigned long long)first, (unsigned long long)max);
        client_free(only);
    }
    cl_check_history(h);
    history_free(h);
}

/* Power loss of the whole cluster under load: everything acknowledged was
 * durable, so every ID after the restart is above every acknowledged one
 * (the real-time check of the history says exactly that). */
Test(cluster, kill_all_then_restart_keeps_acknowledged, .timeout = 60, .fini = cl_fini)
{
    procs_cluster *pc = cl_up(3, 5, CL_R, NULL);
    history *h = history_new();
    cr_assert_not_null(h);
    cl_worker *w = cl_load_start(pc, h, 8, 1500, 1000);
    procs_sleep_ms(800);
    for (int i = 0; i < 3; i++)
        procs_kill(pc, i);
    procs_crash(h, "kill9 all");
    int fails = cl_load_join(w, 8, NULL, 0);
    uint64_t acked = cl_check_history(h).ok;
    cl_assert(acked > 0, "no fetch succeeded before the kill");
    uint64_t before[2] = { procs_history_max(h, cl_seqs[0]), procs_history_max(h, cl_seqs[1]) };
    cl_assert(procs_start_all(pc) == 0, "restart");
    cl_ready(CL_READY_MS);
    for (int i = 0; i < 3; i++) {
        client *only = cl_client_only(pc, i);
        for (int seq = 0; seq < 2; seq++) {
            uint64_t first = cl_fetch_ok(h, only, 100 + i, seq, 1);
            cl_assert(first > before[seq], "member %d handed out %llu of %s, acknowledged max %llu",
                      i, (unsigned long long)first, cl_seqs[seq], (unsigned long long)before[seq]);
        }
        client_free(only);
    }
    cl_check_history(h);
    cr_log_info("kill -9 all: %llu acknowledged fetches, %d failed around the kill",
                (unsigned long long)acked, fails);
    history_free(h);
}

/* The fsyncs counter means something: a `--fsync never` member never
 * syncs, and the `always` members synced at least once per committed
 * round (each round needs an ACK from an always member, which came after
 * its own fsync, and the next round's record arrived only after that). */
Test(cluster, fsync_counters, .timeout = 60, .fini = cl_fini)
{
    char why[256] = "";
    cl_pc = procs_cluster_new(3, 6, CL_R, NULL, why, sizeof why);
    cr_assert_not_null(cl_pc, "%s", why);
    procs_cluster *pc = cl_pc;
    static const char *const never[] = { "--fsync", "never", NULL };
    static const char *const always[] = { "--fsync", "always", NULL };
    for (int i = 0; i < 3; i++)
        cl_assert(procs_start(pc, i, i == 0 ? never : always) == 0, "start %d", i);
    cl_ready(CL_READY_MS);
    struct seqd_status a[3], b[3];
    for (int i = 0; i < 3; i++)
        cl_assert(procs_status(pc, i, 2000, &a[i]) == CLIENT_OK, "status %d", i);
    history *h = history_new();
    cr_assert_not_null(h);
    client *c = cl_client_only(pc, 1);
    const int k = 30;
    for (int j = 0; j < k; j++)
        cl_fetch_ok(h, c, 0, 0, 1);
    client_free(c);
    procs_sleep_ms(100);   /* the third ACCEPT of the last round lands */
    for (int i = 0; i < 3; i++)
        cl_assert(procs_status(pc, i, 2000, &b[i]) == CLIENT_OK, "status %d", i);
    cl_assert(b[0].fsyncs == 0, "--fsync never member did %llu fsyncs",
              (unsigned long long)b[0].fsyncs);
    uint64_t synced = (b[1].fsyncs - a[1].fsyncs) + (b[2].fsyncs - a[2].fsyncs);
    cl_assert(synced >= (uint64_t)k, "%d rounds but the always members did %llu fsyncs", k,
              (unsigned long long)synced);
    uint64_t recs = 0;
    for (int i = 0; i < 3; i++) {
        cl_assert(b[i].records > a[i].records, "member %d appended no record", i);
        recs += b[i].records - a[i].records;
    }
    cl_assert(recs >= 2 * (uint64_t)k, "%d rounds on a quorum of 2 but only %llu records", k,
              (unsigned long long)recs);
    cl_assert(b[1].rounds - a[1].rounds >= (uint64_t)k && b[1].fetches - a[1].fetches == (uint64_t)k,
              "coordinator counted %llu rounds, %llu fetches for %d fetches",
              (unsigned long long)(b[1].rounds - a[1].rounds),
              (unsigned long long)(b[1].fetches - a[1].fetches), k);
    cl_check_history(h);
    history_free(h);
}

/* serve args for member i with a custom --peers list. */
static int cl_serve_with_peers(procs_cluster *pc, int i, const char *peers, procs_result *r)
{
    char rt[16];
    snprintf(rt, sizeof rt, "%u", pc->round_ms);
    return procs_run(r, 10000, NULL, "serve", "--listen", pc->m[i].addr, "--data", pc->m[i].dir,
                     "--peers", peers, "--round-timeout", rt, NULL);
}

Test(cluster, restart_with_wrong_peers_is_refused, .timeout = 60, .fini = cl_fini)
{
    procs_cluster *pc = cl_up(3, 7, CL_R, NULL);
    int rc = procs_stop(pc, 2, 10000);
    cl_assert(rc == 0, "SIGTERM: member exited %d", rc);
    char other[32], peers[128];
    snprintf(other, sizeof other, "127.0.0.1:%d", pc->m[0].port + 20);
    const char *sets[2];
    char set1[128], set2[128];
    snprintf(set1, sizeof set1, "%s,%s", pc->m[0].addr, other);                 /* one replaced */
    snprintf(set2, sizeof set2, "%s,%s,%s", pc->m[0].addr, pc->m[1].addr, other); /* one added */
    sets[0] = set1;
    sets[1] = set2;
    for (int k = 0; k < 2; k++) {
        procs_result r;
        snprintf(peers, sizeof peers, "%s", sets[k]);
        cl_serve_with_peers(pc, 2, peers, &r);
        cl_assert(r.status > 0, "serve with --peers %s exited %d (-1: still running)", peers,
                  r.status);
        cl_assert(strcasestr(r.err, "member") != NULL,
                  "refusal does not mention the member set: '%s'", r.err);
        cr_log_info("wrong peers: exit %d: %s", r.status, r.err);
    }
    cl_assert(procs_start(pc, 2, NULL) == 0, "restart");
    cl_ready(CL_READY_MS);
    history *h = history_new();
    cr_assert_not_null(h);
    client *c = cl_client_only(pc, 2);
    cl_fetch_ok(h, c, 0, 0, 1);
    client_free(c);
    history_free(h);
}

Test(cluster, second_serve_on_same_data_is_refused, .timeout = 60, .fini = cl_fini)
{
    procs_cluster *pc = cl_up(1, 8, CL_R, NULL);
    char listen[32], rt[16];
    snprintf(listen, sizeof listen, "127.0.0.1:%d", pc->m[0].port + 20);
    snprintf(rt, sizeof rt, "%u", pc->round_ms);
    procs_result r;
    procs_run(&r, 10000, NULL, "serve", "--listen", listen, "--data", pc->m[0].dir,
              "--round-timeout", rt, NULL);
    cl_assert(r.status > 0, "second serve on %s exited %d (-1: still running)", pc->m[0].dir,
              r.status);
    cl_assert(strcasestr(r.err, "in use") != NULL, "refusal does not say in use: '%s'", r.err);
    history *h = history_new();
    cr_assert_not_null(h);
    client *c = cl_client(pc, 0);
    cl_fetch_ok(h, c, 0, 0, 1);
    client_free(c);
    history_free(h);
}

/* ---- raw sockets: what a misbehaving client can send ---- */

static int cl_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(fd, 0);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    cl_assert(connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0, "connect :%d: %s", port,
              strerror(errno));
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

static void cl_send(int fd, const void *buf, size_t len)
{
    cl_assert(send(fd, buf, len, MSG_NOSIGNAL) == (ssize_t)len, "send: %s", strerror(errno));
}

static void cl_send_msg(int fd, const seqd_msg *m)
{
    uint8_t buf[SEQD_MAX_FRAME];
    size_t len = frame_pack(m, buf);
    cr_assert_gt(len, 0);
    cl_send(fd, buf, len);
}

/* Reads exactly len bytes. Returns len, 0 at EOF, -1 on timeout/error. */
static ssize_t cl_read_n(int fd, uint8_t *buf, size_t len, int64_t deadline)
{
    size_t off = 0;
    while (off < len) {
        int64_t left = deadline - procs_now_ms();
        struct pollfd p = { .fd = fd, .events = POLLIN };
        if (left <= 0 || poll(&p, 1, (int)left) <= 0)
            return -1;
        ssize_t r = recv(fd, buf + off, len - off, 0);
        if (r == 0)
            return 0;
        if (r < 0)
            return -1;
        off += (size_t)r;
    }
    return (ssize_t)len;
}

/* Reads one frame into buf and parses it. 1 ok, 0 EOF, -1 timeout/junk. */
static int cl_read_msg(int fd, uint8_t *buf, seqd_msg *m, int64_t ms)
{
    int64_t deadline = procs_now_ms() + ms;
    ssize_t r = cl_read_n(fd, buf, 4, deadline);
    if (r <= 0)
        return (int)r;
    size_t len = ((size_t)buf[0] << 24) | ((size_t)buf[1] << 16) | ((size_t)buf[2] << 8) | buf[3];
    if (len + 4 > SEQD_MAX_FRAME || len < SEQD_HDR_LEN - 4)
        return -1;
    if (cl_read_n(fd, buf + 4, len, deadline) != (ssize_t)len)
        return -1;
    return frame_parse(buf, len + 4, m) == FRAME_OK ? 1 : -1;
}

/* Whether the member closes fd within ms (reads and drops anything else). */
static bool cl_closed_within(int fd, int64_t ms)
{
    int64_t deadline = procs_now_ms() + ms;
    uint8_t tmp[256];
    for (;;) {
        int64_t left = deadline - procs_now_ms();
        struct pollfd p = { .fd = fd, .events = POLLIN };
        if (left <= 0 || poll(&p, 1, (int)left) <= 0)
            return false;
        ssize_t r = recv(fd, tmp, sizeof tmp, 0);
        if (r == 0 || (r < 0 && errno == ECONNRESET))
            return true;
        if (r < 0)
            return false;
    }
}

static void cl_expect_reply_err(int fd, uint8_t *buf, uint64_t reqid, int code, const char *what)
{
    seqd_msg rep;
    int r = cl_read_msg(fd, buf, &rep, 3000);
    cl_assert(r == 1, "%s: no reply (%d)", what, r);
    cl_assert(rep.type == MSG_REPLY_ERR && rep.reqid == reqid && rep.u.err.code == code,
              "%s: got %s reqid %llu code %u, want REPLY_ERR %llu %s", what, msg_type_str(rep.type),
              (unsigned long long)rep.reqid, rep.type == MSG_REPLY_ERR ? rep.u.err.code : 0,
              (unsigned long long)reqid, seqd_err_str(code));
}

Test(cluster, client_connection_cannot_act_as_peer, .timeout = 30, .fini = cl_fini)
{
    procs_cluster *pc = cl_up(1, 9, CL_R, NULL);
    static uint8_t buf[SEQD_MAX_FRAME];
    /* Through the library first. */
    client *c = cl_client(pc, 0);
    seqd_msg acc = { .type = MSG_ACCEPT, .reqid = 0 }, rep;
    acc.u.accept.expect = 1;
    acc.u.accept.new_ = 1000000;
    seqd_name_set(&acc.u.accept.name, "alpha", 5);
    char err[256] = "";
    cl_assert(client_raw(c, 0, &acc, &rep, buf, 3000, err, sizeof err) == CLIENT_OK, "%s", err);
    cl_assert(rep.type == MSG_REPLY_ERR && rep.u.err.code == ERR_NOT_PEER,
              "ACCEPT from a client got %s code %u", msg_type_str(rep.type),
              rep.type == MSG_REPLY_ERR ? rep.u.err.code : 0);
    client_free(c);

    /* Then on one raw connection, which must stay usable throughout. */
    int fd = cl_connect(pc->m[0].port);
    acc.reqid = 11;
    cl_send_msg(fd, &acc);
    cl_expect_reply_err(fd, buf, 11, ERR_NOT_PEER, "ACCEPT");
    seqd_msg rd = { .type = MSG_READ, .reqid = 12 };
    seqd_name_set(&rd.u.read.name, "alpha", 5);
    cl_send_msg(fd, &rd);
    cl_expect_reply_err(fd, buf, 12, ERR_NOT_PEER, "READ");
    seqd_msg snap = { .type = MSG_SNAP_REQ, .reqid = 13 };
    cl_send_msg(fd, &snap);
    cl_expect_reply_err(fd, buf, 13, ERR_NOT_PEER, "SNAP_REQ");
    seqd_msg st = { .type = MSG_STATUS, .reqid = 14 };
    cl_send_msg(fd, &st);
    cl_assert(cl_read_msg(fd, buf, &rep, 3000) == 1, "no status reply after NOT_PEER");
    cl_assert(rep.type == MSG_STATUS_REPLY && rep.reqid == 14 && rep.u.status.state == STATE_READY,
              "status after NOT_PEER: %s", msg_type_str(rep.type));
    /* Pipelined fetches on the same connection, matched by reqid; in
     * flight together, so only disjointness is promised. */
    for (int k = 0; k < 3; k++) {
        seqd_msg f = { .type = MSG_FETCH, .reqid = 20 + (uint64_t)k };
        f.u.fetch.count = 5;
        f.u.fetch.timeout_ms = 3000;
        seqd_name_set(&f.u.fetch.name, "alpha", 5);
        cl_send_msg(fd, &f);
    }
    uint64_t firsts[3] = { 0, 0, 0 };
    for (int k = 0; k < 3; k++) {
        cl_assert(cl_read_msg(fd, buf, &rep, 5000) == 1, "pipelined fetch %d: no reply", k);
        cl_assert(rep.type == MSG_RANGE && rep.reqid >= 20 && rep.reqid < 23 &&
                      firsts[rep.reqid - 20] == 0 && rep.u.range.count == 5,
                  "pipelined fetch: got %s reqid %llu", msg_type_str(rep.type),
                  (unsigned long long)rep.reqid);
        firsts[rep.reqid - 20] = rep.u.range.first;
    }
    for (int x = 0; x < 3; x++)
        for (int y = x + 1; y < 3; y++)
            cl_assert(firsts[x] + 5 <= firsts[y] || firsts[y] + 5 <= firsts[x],
                      "pipelined ranges overlap: %llu and %llu", (unsigned long long)firsts[x],
                      (unsigned long long)firsts[y]);
    close(fd);
}

typedef struct cl_bad {
    const char *what;
    int code;
    uint8_t frame[64];
    size_t len;
} cl_bad;

/* One malformed frame per case: each gets MSG_ERROR with its code and its
 * connection is closed, while a client connected before keeps fetching. */
Test(cluster, malformed_frame_closes_only_that_connection, .timeout = 30, .fini = cl_fini)
{
    procs_cluster *pc = cl_up(1, 10, CL_R, NULL);
    static uint8_t buf[SEQD_MAX_FRAME];
    history *h = history_new();
    cr_assert_not_null(h);
    client *c = cl_client(pc, 0);
    cl_fetch_ok(h, c, 0, 0, 1);

    seqd_msg st = { .type = MSG_STATUS, .reqid = 5 };
    uint8_t good[64];
    size_t glen = frame_pack(&st, good);
    cr_assert_eq(glen, SEQD_HDR_LEN);
    cl_bad cases[6];
    int n = 0;
    /* bad version */
    cases[n] = (cl_bad){ .what = "bad version", .code = FERR_VERSION, .len = glen };
    memcpy(cases[n].frame, good, glen);
    cases[n].frame[4] = SEQD_PROTO_VERSION + 7;
    n++;
    /* unknown type */
    cases[n] = (cl_bad){ .what = "unknown type", .code = FERR_TYPE, .len = glen };
    memcpy(cases[n].frame, good, glen);
    cases[n].frame[5] = 99;
    n++;
    /* flags set */
    cases[n] = (cl_bad){ .what = "flags set", .code = FERR_FLAGS, .len = glen };
    memcpy(cases[n].frame, good, glen);
    cases[n].frame[7] = 1;
    n++;
    /* length over the maximum (only the prefix is sent) */
    cases[n] = (cl_bad){ .what = "too long", .code = FERR_TOO_LONG, .len = glen };
    memcpy(cases[n].frame, good, glen);
    cases[n].frame[0] = 0x7f;
    n++;
    /* STATUS with a payload byte it does not have */
    cases[n] = (cl_bad){ .what = "payload too long", .code = FERR_LONG, .len = glen + 1 };
    memcpy(cases[n].frame, good, glen);
    cases[n].frame[3] += 1;
    cases[n].frame[glen] = 0;
    n++;
    /* FETCH whose payload stops after the count */
    cases[n] = (cl_bad){ .what = "payload too short", .code = FERR_SHORT, .len = glen + 8 };
    memcpy(cases[n].frame, good, glen);
    cases[n].frame[3] += 8;
    cases[n].frame[5] = MSG_FETCH;
    memset(cases[n].frame + glen, 0, 8);
    cases[n].frame[glen + 7] = 1;
    n++;

    for (int k = 0; k < n; k++) {
        int fd = cl_connect(pc->m[0].port);
        cl_send(fd, cases[k].frame, cases[k].len);
        seqd_msg rep;
        int r = cl_read_msg(fd, buf, &rep, 3000);
        cl_assert(r == 1 && rep.type == MSG_ERROR, "%s: got %d %s", cases[k].what, r,
                  r == 1 ? msg_type_str(rep.type) : "nothing");
        cl_assert(rep.u.err.code == cases[k].code, "%s: MSG_ERROR code %u (%s), want %s",
                  cases[k].what, rep.u.err.code, frame_err_str(rep.u.err.code),
                  frame_err_str(cases[k].code));
        cl_assert(cl_closed_within(fd, 3000), "%s: connection not closed", cases[k].what);
        close(fd);
        cl_fetch_ok(h, c, 0, 0, 3);
    }
    struct seqd_status s;
    cl_assert(procs_status(pc, 0, 2000, &s) == CLIENT_OK && s.state == STATE_READY,
              "member not ready after bad frames");
    client_free(c);
    cl_check_history(h);
    history_free(h);
}

/* Parses `seqd fetch` output into IDs. Returns the count. */
static int cl_parse_ids(const char *s, uint64_t *ids, int max)
{
    int n = 0;
    while (*s && n < max) {
        char *end;
        errno = 0;
        unsigned long long v = strtoull(s, &end, 10);
        if (end == s || errno != 0)
            return -1;
        ids[n++] = v;
        s = end;
        while (*s == '\n' || *s == ' ')
            s++;
    }
    return n;
}

Test(cluster, fetch_command_line, .timeout = 60, .fini = cl_fini)
{
    procs_cluster *pc = cl_up(3, 11, CL_R, NULL);
    procs_result r;
    uint64_t ids[16];
    uint64_t last = 0;

    procs_run(&r, 10000, NULL, "fetch", "--servers", pc->servers, "--count", "5", "cli", NULL);
    cl_assert(r.status == 0, "fetch --count 5: exit %d err '%s'", r.status, r.err);
    cl_assert(cl_lines(r.out) == 5 && cl_parse_ids(r.out, ids, 16) == 5, "output '%s'", r.out);
    for (int k = 1; k < 5; k++)
        cl_assert(ids[k] == ids[k - 1] + 1, "not consecutive: '%s'", r.out);
    last = ids[4];

    procs_run(&r, 10000, NULL, "fetch", "--servers", pc->servers, "--count", "10", "--range",
              "cli", NULL);
    cl_assert(r.status == 0, "fetch --range: exit %d err '%s'", r.status, r.err);
    unsigned long long a = 0, b = 0;
    char extra = 0;
    cl_assert(cl_lines(r.out) == 1 && sscanf(r.out, "%llu %llu%c", &a, &b, &extra) == 3 &&
                  extra == '\n',
              "--range printed '%s'", r.out);
    cl_assert(b == a + 9 && a > last, "--range %llu %llu after %llu", a, b,
              (unsigned long long)last);
    last = b;

    char envs[PROCS_MAX * 32 + 16];
    snprintf(envs, sizeof envs, "SEQD_SERVERS=%s", pc->servers);
    const char *envp[] = { envs, NULL };
    procs_run(&r, 10000, envp, "fetch", "cli", NULL);
    cl_assert(r.status == 0, "fetch with SEQD_SERVERS: exit %d err '%s'", r.status, r.err);
    cl_assert(cl_parse_ids(r.out, ids, 16) == 1 && ids[0] > last, "output '%s' after %llu", r.out,
              (unsigned long long)last);

    /* Usage errors: exit 2 with a message, before connecting (the only
     * server is one nobody listens on, so a connect would say so). */
    char dead[32];
    snprintf(dead, sizeof dead, "127.0.0.1:%d", pc->m[0].port + 30);
    struct { const char *count, *name, *what; } bad[] = {
        { "1", "bad name", "name" },
        { "1", "x/y", "name" },
        { "0", "cli", "count" },
        { "1000001", "cli", "count" },
        { "abc", "cli", "count" },
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        procs_run(&r, 10000, NULL, "fetch", "--servers", dead, "--count", bad[k].count,
                  bad[k].name, NULL);
        cl_assert(r.status == 2, "fetch --count %s '%s': exit %d, want 2 (err '%s')",
                  bad[k].count, bad[k].name, r.status, r.err);
        cl_assert(r.out[0] == '\0' && strcasestr(r.err, bad[k].what) != NULL,
                  "fetch --count %s '%s': stderr '%s' does not mention the %s", bad[k].count,
                  bad[k].name, r.err, bad[k].what);
    }
    procs_run(&r, 10000, NULL, "fetch", "--servers", dead, "--timeout", "500", "cli", NULL);
    cl_assert(r.status == 1 && cl_lines(r.err) == 1 && strstr(r.err, dead) != NULL,
              "unreachable: exit %d err '%s'", r.status, r.err);
    cl_assert(r.ms < 1500, "unreachable --timeout 500 took %lld ms", (long long)r.ms);

    procs_run(&r, 10000, NULL, "status", "--servers", pc->servers, NULL);
    cl_assert(r.status == 0 && cl_lines(r.out) == 3, "status: exit %d out '%s'", r.status, r.out);
    for (int i = 0; i < 3; i++) {
        char want[64];
        snprintf(want, sizeof want, "%s ready slot=%d fetches=", pc->m[i].addr, i);
        cl_assert(strstr(r.out, want) != NULL, "no '%s' in '%s'", want, r.out);
    }
    cl_assert(strstr(r.out, " fsyncs=") != NULL && strstr(r.out, " records=") != NULL &&
                  strstr(r.out, " epoch=0") != NULL,
              "status counters missing: '%s'", r.out);
}

/* ---- the async client (client/client_async.h) on this test's own loop ---- */

typedef struct cl_async_res {
    int calls, rc;
    uint64_t first;
    char err[700];
} cl_async_res;

static void cl_async_done(void *arg, int rc, uint64_t first, const char *err)
{
    cl_async_res *r = arg;
    r->calls++;
    r->rc = rc;
    r->first = first;
    snprintf(r->err, sizeof r->err, "%s", err);
}

/* One async fetch, run to its end on a fresh loop; returns the wall ms. */
static int64_t cl_async_fetch(const char *servers, const char *name, uint32_t count,
                              uint32_t timeout_ms, cl_async_res *r)
{
    struct event_base *base = event_base_new();
    cr_assert_not_null(base);
    memset(r, 0, sizeof *r);
    char err[256] = "";
    int64_t t0 = procs_now_ms();
    int rc = client_fetch_async(base, servers, name, count, timeout_ms, cl_async_done, r, err,
                                sizeof err);
    cl_assert(rc == CLIENT_OK, "client_fetch_async refused to start: %s", err);
    cl_assert(r->calls == 0, "done called from inside client_fetch_async");
    event_base_dispatch(base);
    event_base_free(base);
    cl_assert(r->calls == 1, "done called %d times", r->calls);
    return procs_now_ms() - t0;
}

Test(cluster, async_fetch_on_a_callers_loop, .timeout = 60, .fini = cl_fini)
{
    procs_cluster *pc = cl_up(3, 20, CL_R, NULL);
    cl_async_res r;
    cl_async_fetch(pc->servers, "async", 5, 5000, &r);
    cl_assert(r.rc == CLIENT_OK && r.first >= 1, "rc %d: %s", r.rc, r.err);
    uint64_t last = r.first + 4;
    /* A dead address first in the list: fail-over to the members. */
    char list[PROCS_MAX * 32 + 32];
    snprintf(list, sizeof list, "127.0.0.1:%d,%s", pc->m[0].port + 30, pc->servers);
    for (int k = 0; k < 5; k++) {
        cl_async_fetch(list, "async", 7, 5000, &r);
        cl_assert(r.rc == CLIENT_OK && r.first > last, "rc %d first %llu after %llu: %s", r.rc,
                  (unsigned long long)r.first, (unsigned long long)last, r.err);
        last = r.first + 6;
    }
    char err[256] = "";
    struct event_base *base = event_base_new();
    cl_assert(client_fetch_async(base, pc->servers, "bad name", 1, 1000, cl_async_done, &r, err,
                                 sizeof err) == CLIENT_EUSAGE && strstr(err, "name"),
              "bad name: %s", err);
    cl_assert(client_fetch_async(base, pc->servers, "ok", 0, 1000, cl_async_done, &r, err,
                                 sizeof err) == CLIENT_EUSAGE && strstr(err, "count"),
              "bad count: %s", err);
    event_base_free(base);
    /* Majority down: a clear failure within about the deadline. */
    procs_kill(pc, 1);
    procs_kill(pc, 2);
    int64_t ms = cl_async_fetch(pc->servers, "async", 1, 800, &r);
    cl_assert(r.rc == CLIENT_EFAIL && strstr(r.err, "within 800 ms"), "rc %d: %s", r.rc, r.err);
    cl_assert(ms >= 700 && ms < 1500, "majority down: took %lld ms", (long long)ms);
}

/* SIGSTOP'd member first in the list: the attempt on it gets only part of
 * the deadline, the next member serves, and the client then sticks to the
 * member that answered. */
Test(cluster, paused_member_does_not_eat_the_deadline, .timeout = 60, .fini = cl_fini)
{
    procs_cluster *pc = cl_up(3, 12, CL_R, NULL);
    history *h = history_new();
    cr_assert_not_null(h);
    client *c = cl_client(pc, 0);
    cl_fetch_ok(h, c, 0, 0, 1);
    procs_pause(pc, 0);
    int64_t t0 = procs_now_ms();
    char err[512] = "";
    uint64_t first;
    int rc = procs_fetch(h, c, 0, "alpha", 10, 3000, &first, err, sizeof err);
    int64_t took = procs_now_ms() - t0;
    cl_assert(rc == CLIENT_OK, "fetch with member 0 paused: %s", err);
    cl_assert(took < 2500, "took %lld ms of a 3000 ms deadline", (long long)took);
    t0 = procs_now_ms();
    cl_fetch_ok(h, c, 0, 0, 10);
    took = procs_now_ms() - t0;
    cl_assert(took < 500, "second fetch went back to the paused member: %lld ms", (long long)took);
    procs_result r;
    procs_run(&r, 10000, NULL, "fetch", "--servers", pc->servers, "--timeout", "2000", "alpha",
              NULL);
    cl_assert(r.status == 0 && r.ms < 2500, "CLI with member 0 paused: exit %d in %lld ms: %s",
              r.status, (long long)r.ms, r.err);
    procs_resume(pc, 0);
    cl_ready(CL_READY_MS);
    client *only = cl_client_only(pc, 0);
    uint64_t before = procs_history_max(h, cl_seqs[0]);
    uint64_t f = cl_fetch_ok(h, only, 1, 0, 1);
    cl_assert(f > before, "resumed member handed out %llu after %llu", (unsigned long long)f,
              (unsigned long long)before);
    client_free(only);
    client_free(c);
    cl_check_history(h);
    history_free(h);
}

/* SIGTERM under load: the member stops accepting, finishes or fails what
 * it has in flight, exits 0; clients fail over without a single failed
 * fetch, and once it is back it serves above everything before. */
Test(cluster, graceful_stop_under_load, .timeout = 60, .fini = cl_fini)
{
    procs_cluster *pc = cl_up(3, 14, CL_R, NULL);
    history *h = history_new();
    cr_assert_not_null(h);
    cl_worker *w = cl_load_start(pc, h, 12, 2500, 5000);
    procs_sleep_ms(700);
    int rc = procs_stop(pc, 0, 10000);
    procs_sleep_ms(500);
    cl_assert(procs_start(pc, 0, NULL) == 0, "restart");
    char lasterr[600] = "";
    int fails = cl_load_join(w, 12, lasterr, sizeof lasterr);
    cl_assert(rc == 0, "SIGTERM under load: member exited %d", rc);
    cl_assert(fails == 0, "%d fetches failed around a graceful stop, last: %s", fails, lasterr);
    cl_ready(CL_READY_MS);
    uint64_t before = procs_history_max(h, cl_seqs[0]);
    client *only = cl_client_only(pc, 0);
    uint64_t first = cl_fetch_ok(h, only, 100, 0, 1);
    cl_assert(first > before, "restarted member handed out %llu, earlier max %llu",
              (unsigned long long)first, (unsigned long long)before);
    client_free(only);
    history_report r = cl_check_history(h);
    cr_log_info("graceful stop under load: %llu fetches ok", (unsigned long long)r.ok);
    history_free(h);
}

/* ---- one aclient, many fetches in flight, a member killed under it ---- */

#define CL_AC_INFLIGHT 48
#define CL_AC_TOTAL 4000
#define CL_AC_KILL_AT 1500

typedef struct cl_ac_run cl_ac_run;

typedef struct cl_ac_op {
    cl_ac_run *run;
    int seq;
    uint32_t count;
    int64_t invoke_us;
} cl_ac_op;

struct cl_ac_run {
    struct event_base *base;
    aclient *ac;
    history *h;
    int started, done, ok, ok_after_kill, closed;
    bool killed, stop;
    char lasterr[700];
};

static void cl_ac_start(cl_ac_run *r);

static void cl_ac_done(void *arg, int rc, uint64_t first, const char *err)
{
    cl_ac_op *op = arg;
    cl_ac_run *r = op->run;
    r->done++;
    if (rc == CLIENT_OK) {
        r->ok++;
        r->ok_after_kill += r->killed;
        history_add_op(r->h, 0, cl_seqs[op->seq], op->count, op->invoke_us, procs_now_us(),
                       HISTORY_OK, first, first + op->count - 1);
    } else {
        if (strstr(err, "client closed"))
            r->closed++;
        snprintf(r->lasterr, sizeof r->lasterr, "%s", err);
    }
    free(op);
    if (!r->stop)
        cl_ac_start(r);
    if (r->done == r->started)
        event_base_loopbreak(r->base);
}

/* Keeps one more fetch in flight; counts of 1..3 on two sequences. */
static void cl_ac_start(cl_ac_run *r)
{
    if (r->started >= CL_AC_TOTAL) {
        r->stop = true;
        return;
    }
    cl_ac_op *op = calloc(1, sizeof *op);
    cr_assert_not_null(op);
    *op = (cl_ac_op){ .run = r, .seq = r->started % 2, .count = 1 + (uint32_t)r->started % 3,
                      .invoke_us = procs_now_us() };
    char err[256] = "";
    int rc = aclient_fetch(r->ac, cl_seqs[op->seq], op->count, 5000, cl_ac_done, op, err,
                           sizeof err);
    cl_assert(rc == CLIENT_OK, "aclient_fetch: %s", err);
    r->started++;
}

static void cl_ac_kill_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    cl_ac_run *r = arg;
    r->killed = true;
}

/* One aclient keeps CL_AC_INFLIGHT fetches in flight (several per
 * connection, answered out of order) while the preferred member of
 * "alpha" is killed: every fetch must still succeed, every ID must keep
 * the contract; then aclient_free ends what is in flight, once each. */
Test(cluster, aclient_pipelines_and_fails_over, .timeout = 90, .fini = cl_fini)
{
    procs_cluster *pc = cl_up(3, 21, CL_R, NULL);
    history *h = history_new();
    cr_assert_not_null(h);
    cl_ac_run r = { .base = event_base_new(), .h = h };
    cr_assert_not_null(r.base);
    char err[256] = "";
    r.ac = aclient_new(r.base, pc->servers, err, sizeof err);
    cl_assert(r.ac != NULL, "aclient_new: %s", err);
    client *c = cl_client(pc, 0);
    int victim = -1;
    for (int i = 0; i < pc->n; i++)
        if (strcmp(client_server(c, client_preferred(c, "alpha")), pc->m[i].addr) == 0)
            victim = i;
    client_free(c);
    cl_assert(victim >= 0, "preferred member of alpha not found");
    for (int i = 0; i < CL_AC_INFLIGHT; i++)
        cl_ac_start(&r);
    while (r.done < CL_AC_KILL_AT && !r.stop)
        event_base_loop(r.base, EVLOOP_ONCE);
    procs_kill(pc, victim);
    /* From the next loop turn on, completions count as after the kill. */
    event_base_once(r.base, -1, EV_TIMEOUT, cl_ac_kill_cb, &r, NULL);
    event_base_dispatch(r.base);
    cl_assert(r.done == CL_AC_TOTAL && r.ok == CL_AC_TOTAL, "%d of %d fetches ok (%d done): %s",
              r.ok, CL_AC_TOTAL, r.done, r.lasterr);
    cl_assert(r.ok_after_kill > 1000, "only %d fetches after the kill", r.ok_after_kill);
    history_report rep = cl_check_history(h);
    cl_assert(rep.ok == CL_AC_TOTAL, "history has %llu ok ops", (unsigned long long)rep.ok);
    /* Freeing with fetches in flight answers each one, exactly once. */
    r.stop = false;
    r.started = r.done = 0;
    for (int i = 0; i < 5; i++)
        cl_ac_start(&r);
    r.stop = true;
    aclient_free(r.ac);
    cl_assert(r.done == 5 && r.closed == 5, "free: %d done, %d 'client closed'", r.done, r.closed);
    event_base_free(r.base);
    history_free(h);
}

/* ---- a client that does not read its replies ---- */

#define CL_BP_REQUESTS 600000

/* Sends what the socket takes of [*off, len) without blocking. */
static void cl_send_some(int fd, const uint8_t *buf, size_t len, size_t *off)
{
    while (*off < len) {
        ssize_t w = send(fd, buf + *off, len - *off, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0) {
            cl_assert(errno == EAGAIN || errno == EWOULDBLOCK, "send: %s", strerror(errno));
            return;
        }
        *off += (size_t)w;
    }
}

/* A reader that takes the socket in big gulps: the replies of the test
 * below are too many to read with two syscalls each. */
typedef struct cl_rd {
    int fd;
    uint8_t buf[1 << 20];
    size_t pos, have;
} cl_rd;

/* Makes n bytes available at r->pos; false on timeout or EOF. */
static bool cl_rd_fill(cl_rd *r, size_t n, int64_t deadline)
{
    if (r->pos + n > sizeof r->buf) {
        memmove(r->buf, r->buf + r->pos, r->have - r->pos);
        r->have -= r->pos;
        r->pos = 0;
    }
    while (r->have - r->pos < n) {
        int64_t left = deadline - procs_now_ms();
        struct pollfd p = { .fd = r->fd, .events = POLLIN };
        if (left <= 0 || poll(&p, 1, (int)left) <= 0)
            return false;
        ssize_t got = recv(r->fd, r->buf + r->have, sizeof r->buf - r->have, 0);
        if (got <= 0)
            return false;
        r->have += (size_t)got;
    }
    return true;
}

static int cl_rd_msg(cl_rd *r, seqd_msg *m, int64_t ms)
{
    int64_t deadline = procs_now_ms() + ms;
    if (!cl_rd_fill(r, 4, deadline))
        return -1;
    const uint8_t *b = r->buf + r->pos;
    size_t len = ((size_t)b[0] << 24) | ((size_t)b[1] << 16) | ((size_t)b[2] << 8) | b[3];
    if (len + 4 > SEQD_MAX_FRAME || !cl_rd_fill(r, len + 4, deadline))
        return -1;
    int rc = frame_parse(r->buf + r->pos, len + 4, m);
    r->pos += len + 4;
    return rc == FRAME_OK ? 1 : -1;
}

/* A client pipelines many STATUS requests and reads nothing: the member
 * writes what the socket takes, keeps the rest, and once more than
 * CONN_OUT_HIGH waits it stops reading that connection (the client's sends
 * then stall) — while other clients are served as usual. When the client
 * reads again, every reply arrives, once, in request order. */
Test(cluster, client_that_does_not_read_is_throttled_not_dropped, .timeout = 90, .fini = cl_fini)
{
    procs_cluster *pc = cl_up(1, 22, CL_R, NULL);
    uint8_t tmp[SEQD_MAX_FRAME];
    size_t one = frame_pack(&(seqd_msg){ .type = MSG_STATUS }, tmp);
    size_t len = one * CL_BP_REQUESTS, off = 0;
    uint8_t *reqs = malloc(len);
    cl_rd *rd = malloc(sizeof *rd);
    cr_assert(reqs && rd);
    for (size_t i = 0; i < CL_BP_REQUESTS; i++)
        frame_pack(&(seqd_msg){ .type = MSG_STATUS, .reqid = i + 1 }, reqs + i * one);
    /* Small client buffers, so that the replies pile up in the member. */
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int small = 64 << 10;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)pc->m[0].port),
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    cl_assert(connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0, "connect: %s", strerror(errno));
    rd->fd = fd;
    rd->pos = rd->have = 0;
    /* Send until the member stops taking requests: its reading paused. */
    int64_t deadline = procs_now_ms() + 20000, stalled_since = procs_now_ms();
    size_t last = 0;
    while (off < len && procs_now_ms() < deadline) {
        cl_send_some(fd, reqs, len, &off);
        if (off != last) {
            last = off;
            stalled_since = procs_now_ms();
        } else if (procs_now_ms() - stalled_since > 500) {
            break;
        }
        procs_sleep_ms(5);
    }
    cl_assert(off < len, "the member took all %d requests without being read from",
              CL_BP_REQUESTS);
    /* Meanwhile the member serves everyone else. */
    client *c = cl_client(pc, 0);
    uint64_t first = 0;
    char err[256] = "";
    cl_assert(client_fetch(c, "alpha", 1, 5000, &first, err, sizeof err) == CLIENT_OK,
              "a fetch while one client is throttled: %s", err);
    client_free(c);
    /* Now read: every reply in order, and the rest of the requests go in. */
    for (size_t want = 1; want <= CL_BP_REQUESTS; want++) {
        if (want % 1024 == 0)
            cl_send_some(fd, reqs, len, &off);
        seqd_msg rep;
        int r = cl_rd_msg(rd, &rep, 5000);
        cl_assert(r == 1, "reply %zu of %d: none (%d), %zu bytes of requests sent", want,
                  CL_BP_REQUESTS, r, off);
        cl_assert(rep.type == MSG_STATUS_REPLY && rep.reqid == want,
                  "reply %zu: got %s reqid %llu", want, msg_type_str(rep.type),
                  (unsigned long long)rep.reqid);
    }
    cl_assert(off == len, "%zu of %zu bytes of requests sent", off, len);
    close(fd);
    free(rd);
    free(reqs);
}
