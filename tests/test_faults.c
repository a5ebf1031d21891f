/* tests/test_faults.c — the fault campaign (suite faults): real `seqd
 * serve` processes under a nemesis while bounded concurrent clients record
 * every fetch in a history, which the checker then holds to the ID
 * contract (tests/history.h).
 *
 * One test per scenario; each has a fixed seed (which member, which split,
 * which write fails; $SEQD_FAULTS_SEED overrides), a bounded duration, and
 * prints one line:
 *   scenario=<name> ops=.. ok=.. failed=.. unknown=.. availability=..
 *   gap_ratio=.. violations=.. variant=<proxy|netns|hook|tmpfs|-> seed=..
 *   [avail_after_2T=<min over the fault windows>(<ops>) ...]
 * Short by default (`make test`); $SEQD_FAULTS_FULL=1 runs the long version
 * (`make faults`), which also appends each line to $SEQD_FAULTS_SUMMARY.
 *
 * Timings: --round-timeout R = 200 ms, call timeout 1000 ms, so T, what one
 * attempt may take, is 515 ms (nemesis.h). With one member of three down,
 * paused or cut off, at least 99% of the fetches invoked from 2T after the
 * fault began until it ended must succeed: by then every client has failed
 * over once and sticks to a member that answers.
 *
 * Any violation fails the test and keeps the history and the member logs
 * under /tmp/seqd-faults-<scenario>-XXXXXX (the path is printed); so does
 * any other failed assertion.
 */
#include <criterion/criterion.h>
#include <criterion/logging.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "../client/client.h"
#include "nemesis.h"
#include "procs.h"

#define FL_T_US ((int64_t)NEM_ATTEMPT_MS * 1000)
#define FL_READY_MS 30000
#define FL_WINDOWS 16

/* A fault window: fetches invoked in [t0, t1) must be >= min_avail ok. */
typedef struct fl_window {
    int64_t t0_us, t1_us;
    double min_avail;
    char what[48];
} fl_window;

/* The state of the running scenario: the .fini needs it (Criterion gives a
 * fini no arguments) and each test runs in its own process. */
static struct fl_state {
    const char *name;
    const char *variant;
    uint64_t seed, rng;
    int slot;
    procs_cluster *pc;
    nem_net *net;
    history *h;
    nem_load *load;
    int nwin;
    fl_window win[FL_WINDOWS];
    char mounts[PROCS_MAX][PROCS_PATH];
    char extra[512];
    bool reported;              /* the line is out (and the history kept if it had to be) */
    char deferred[1024];        /* a failed check that let the scenario run on */
} fl;

static void fl_fini(void)
{
    nem_load_stop(fl.load);
    fl.load = NULL;
    for (int i = 0; i < PROCS_MAX; i++) {
        if (fl.pc != NULL && fl.mounts[i][0] != '\0')
            procs_kill(fl.pc, i);
        if (fl.mounts[i][0] != '\0')
            nem_tmpfs_umount(fl.mounts[i]);
        fl.mounts[i][0] = '\0';
    }
    procs_cluster_free(fl.pc);
    fl.pc = NULL;
    nem_net_free(fl.net);
    fl.net = NULL;
    history_free(fl.h);
    fl.h = NULL;
}

/* Fails the test with the member logs attached; keeps the history and the
 * logs (nem_report prints where), so a failure can be studied afterwards. */
static void fl_failf(const char *expr, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void fl_failf(const char *expr, const char *file, int line, const char *fmt, ...)
{
    static char logs[16384];
    static char kept[4096];
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    nem_load_stop(fl.load);
    fl.load = NULL;
    logs[0] = kept[0] = '\0';
    if (fl.pc != NULL)
        procs_logs(fl.pc, 12, logs, sizeof logs);
    if (fl.h != NULL && !fl.reported) {
        char extra[600];
        snprintf(extra, sizeof extra, "%s%sFAILED", fl.extra, fl.extra[0] ? " " : "");
        nem_report(fl.name, fl.variant, fl.seed, extra, fl.h, fl.pc, true, NULL, kept, sizeof kept);
    }
    cr_assert_fail("scenario %s: %s:%d: %s: %s\n%s\n%s", fl.name, file, line, expr, msg, kept, logs);
}

#define fl_assert(cond, ...)                                                   \
    do {                                                                       \
        if (!(cond))                                                           \
            fl_failf(#cond, __FILE__, __LINE__, __VA_ARGS__);                  \
    } while (0)

/* Short (make test) or full (make faults) length of a phase. */
static int64_t fl_ms(int64_t short_ms, int64_t full_ms)
{
    return nem_full() ? full_ms : short_ms;
}

static int fl_pick(int n)
{
    return (int)(nem_rand(&fl.rng) % (uint64_t)n);
}

/* Another member than `not`. */
static int fl_other(int not)
{
    int w = fl_pick(fl.pc->n - 1);
    return w >= not ? w + 1 : w;
}

/* Tests of this suite share slots 15..19: a test holds the first free one
 * (an flock, released when its process ends), so however many run at once
 * (in one run or in several) none shares ports or a netns subnet; a sixth
 * waits. */
static int fl_slot(void)
{
    return procs_shared_slot(-1);
}

typedef enum fl_netkind { FL_NET_NONE, FL_NET_PROXY, FL_NET_NETNS } fl_netkind;

/* Starts member i the way this scenario runs its members. */
static int fl_start(int i, const char *const *env)
{
    if (fl.net != NULL)
        return nem_net_start(fl.net, i, NULL, env);
    return procs_start_ex(fl.pc, i, NULL, NULL, env);
}

static void fl_ready(int64_t ms)
{
    static char why[16384];
    fl_assert(procs_wait_ready(fl.pc, ms, why, sizeof why), "%s", why);
}

static void fl_member_ready(int i)
{
    bool ok = procs_wait_state(fl.pc, i, STATE_READY, FL_READY_MS);
    fl_assert(ok, "member %d (%s) not ready %d ms after its restart", i, fl.pc->m[i].addr,
              FL_READY_MS);
}

/* Skips the rest of the scenario: Criterion runs no .fini after a skip,
 * so everything started so far is stopped here first. */
static void fl_skip(const char *reason)
{
    char msg[1200];
    snprintf(msg, sizeof msg, "%s: %s", fl.name, reason);
    fl_fini();
    cr_skip_test("%s", msg);
}

/* A cluster of n on this test's slot, behind the requested network, with
 * per-member environments (envs may be NULL), every member ready. Returns
 * false (after printing the skip line) if the network cannot be built here. */
static bool fl_setup(const char *name, int n, uint64_t fixed_seed, fl_netkind net,
                     const char *const *const *envs)
{
    memset(&fl, 0, sizeof fl);
    fl.name = name;
    fl.seed = nem_seed(fixed_seed);
    fl.rng = fl.seed;
    fl.slot = fl_slot();
    fl.variant = net == FL_NET_PROXY ? "proxy" : net == FL_NET_NETNS ? "netns" : "-";
    char why[1024] = "";
    fl.pc = procs_cluster_new(n, fl.slot, NEM_ROUND_MS, NULL, why, sizeof why);
    cr_assert_not_null(fl.pc, "%s", why);
    fl.h = history_new();
    cr_assert_not_null(fl.h);
    if (net != FL_NET_NONE) {
        fl.net = nem_net_new(fl.pc, net == FL_NET_PROXY ? NEM_NET_PROXY : NEM_NET_NETNS, fl.slot,
                             fl.seed, why, sizeof why);
        if (fl.net == NULL && net == FL_NET_NETNS) {
            nem_report_skip(name, why);
            return false;
        }
        fl_assert(fl.net != NULL, "network: %s", why);
    }
    for (int i = 0; i < n; i++)
        fl_assert(fl_start(i, envs ? envs[i] : NULL) == 0, "spawning member %d (%s) failed", i,
                  procs_bin());
    fl_ready(FL_READY_MS);
    return true;
}

/* The standard load: a few clients per member, mixed counts, 4 sequences. */
static void fl_load(void)
{
    char why[512] = "";
    nem_load_opts o = { .clients = fl.pc->n <= 3 ? 6 : 8, .call_ms = NEM_CALL_MS, .think_ms = 5,
                        .nseqs = 4, .prefix = "seq", .seed = fl.seed };
    fl.load = nem_load_start(fl.pc, fl.h, &o, why, sizeof why);
    fl_assert(fl.load != NULL, "load: %s", why);
}

static void fl_crash(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void fl_crash(const char *fmt, ...)
{
    char what[HISTORY_WHAT_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    procs_crash(fl.h, what);
}

/* Remembers a window to check once the load has stopped (the history may
 * not be read while clients add to it). The window starts 2T after the
 * fault began: by then every client has failed over. */
static void fl_window_add(int64_t fault_us, int64_t end_us, double min_avail, const char *what)
{
    fl_assert(fl.nwin < FL_WINDOWS, "too many windows");
    fl_window *w = &fl.win[fl.nwin++];
    w->t0_us = fault_us + 2 * FL_T_US;
    w->t1_us = end_us;
    w->min_avail = min_avail;
    snprintf(w->what, sizeof w->what, "%s", what);
}

static int fl_cmp_i64(const void *pa, const void *pb)
{
    int64_t a = *(const int64_t *)pa, b = *(const int64_t *)pb;
    return (a > b) - (a < b);
}

/* Percentile of ok fetch latencies (ms) among ops invoked in [t0, t1):
 * what a fault costs the clients that were not failed. */
static double fl_latency_pct(int64_t t0, int64_t t1, double pct)
{
    size_t n = history_nops(fl.h), k = 0;
    int64_t *lat = calloc(n ? n : 1, sizeof *lat);
    if (lat == NULL)
        return -1;
    for (size_t i = 0; i < n; i++) {
        const history_op *o = history_op_at(fl.h, i);
        if (o->outcome == HISTORY_OK && o->invoke_us >= t0 && o->invoke_us < t1)
            lat[k++] = o->complete_us - o->invoke_us;
    }
    double v = 0;
    if (k > 0) {
        qsort(lat, k, sizeof *lat, fl_cmp_i64);
        v = (double)lat[(size_t)((double)(k - 1) * pct)] / 1000.0;
    }
    free(lat);
    return v;
}

/* Appends to the scenario's extra report fields. */
static void fl_extra(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void fl_extra(const char *fmt, ...)
{
    size_t off = strlen(fl.extra);
    if (off > 0 && off + 1 < sizeof fl.extra)
        fl.extra[off++] = ' ';
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(fl.extra + off, sizeof fl.extra - off, fmt, ap);
    va_end(ap);
}

/* A check whose failure must fail the test but should not stop the
 * scenario: the rest (recovery, the history) is still worth running and
 * reporting. fl_finish fails the test with the first one. */
static void fl_defer(bool ok, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fl_defer(bool ok, const char *fmt, ...)
{
    if (ok || fl.deferred[0] != '\0')
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(fl.deferred, sizeof fl.deferred, fmt, ap);
    va_end(ap);
}

/* Each member alone serves every sequence above everything handed out
 * before (recorded, so the checker holds it to real-time order too): the
 * cluster is whole again and every member caught up. */
static void fl_final_fetches(void)
{
    for (int i = 0; i < fl.pc->n; i++) {
        if (fl.pc->m[i].pid == 0)
            continue;
        char err[512] = "";
        client *c = client_new(fl.pc->m[i].addr, err, sizeof err);
        fl_assert(c != NULL, "%s", err);
        for (int s = 0; s < 4; s++) {
            char name[16];
            snprintf(name, sizeof name, "seq%d", s);
            uint64_t first = 0;
            int rc = CLIENT_EFAIL;
            /* A member that just came back may still be recovering. */
            for (int tries = 0; tries < 20 && rc != CLIENT_OK; tries++)
                rc = procs_fetch(fl.h, c, 1000 + (uint32_t)i, name, 1, 2000, &first, err,
                                 sizeof err);
            fl_assert(rc == CLIENT_OK, "member %d alone could not serve %s: %s", i, name, err);
        }
        client_free(c);
    }
}

/* Stops the load, checks the windows and the history, prints the line. */
static void fl_finish(void)
{
    nem_load_stop(fl.load);
    fl.load = NULL;
    fl_final_fetches();
    double worst = 2.0;
    uint64_t worst_n = 0;
    const fl_window *bad = NULL;
    double bad_avail = 0;
    uint64_t bad_n = 0;
    for (int k = 0; k < fl.nwin; k++) {
        uint64_t n = 0;
        double a = history_availability(fl.h, fl.win[k].t0_us, fl.win[k].t1_us, &n);
        if (a < worst) {
            worst = a;
            worst_n = n;
        }
        if (bad == NULL && (n < 10 || a < fl.win[k].min_avail)) {
            bad = &fl.win[k];
            bad_avail = a;
            bad_n = n;
        }
    }
    if (fl.nwin > 0)
        fl_extra("avail_after_2T=%.4f(%" PRIu64 ")", worst, worst_n);
    char why[4096] = "";
    history_report r;
    if (fl.deferred[0] != '\0')
        fl_extra("FAILED");
    int64_t v = nem_report(fl.name, fl.variant, fl.seed, fl.extra, fl.h, fl.pc,
                           bad != NULL || fl.deferred[0] != '\0', &r, why, sizeof why);
    fl.reported = true;
    fl_assert(v == 0, "%" PRId64 " violations: %s", v, why);
    fl_assert(bad == NULL, "window '%s' (%.1f s from 2T after the fault began): availability "
              "%.4f over %" PRIu64 " fetches, want >= %.2f (and >= 10 fetches)\n%s",
              bad ? bad->what : "", bad ? (double)(bad->t1_us - bad->t0_us) / 1e6 : 0.0,
              bad_avail, bad_n, bad ? bad->min_avail : 0.0, why);
    fl_assert(r.ok > 0, "no fetch succeeded");
    fl_assert(fl.deferred[0] == '\0', "%s\n%s", fl.deferred, why);
}

/* ------------------------------------------------------------- scenarios */

/* Right after a fault began (before its window opens at 2T), member i
 * alone must NOT be able to serve: proof that the nemesis really cut it
 * off. Recorded like every fetch (an unknown outcome is harmless). */
static void fl_probe_cut_off(int i, const char *what)
{
    char err[512] = "";
    client *c = client_new(fl.pc->m[i].addr, err, sizeof err);
    fl_assert(c != NULL, "%s", err);
    uint64_t first = 0;
    int rc = procs_fetch(fl.h, c, 3000 + (uint32_t)i, "seq0", 1, 400, &first, err, sizeof err);
    client_free(c);
    fl_assert(rc != CLIENT_OK, "%s: member %d alone still handed out %" PRIu64, what, i, first);
}


/* After a member came back: kill another one, so that every quorum for a
 * while includes the member that recovered — a recovery that lost or
 * forgot anything would now show up as duplicates. */
static void fl_lean_on(int back)
{
    int w = fl_other(back);
    fl_crash("kill9 %d (leaning on %d)", w, back);
    int64_t t0 = procs_now_us();
    procs_kill(fl.pc, w);
    procs_sleep_ms(fl_ms(2000, 4000));
    fl_window_add(t0, procs_now_us(), 0.99, "lean");
    fl_assert(fl_start(w, NULL) == 0, "restart %d", w);
    fl_member_ready(w);
}

/* kill -9 of one member, restart: its log replays, it recovers, serves. */
Test(faults, kill9_one, .timeout = 120, .fini = fl_fini)
{
    fl_setup("kill9_one", 3, 101, FL_NET_NONE, NULL);
    fl_load();
    procs_sleep_ms(fl_ms(700, 2000));
    int v = 0;
    for (int c = 0; c < (nem_full() ? 3 : 1); c++) {
        v = fl_pick(3);
        fl_crash("kill9 %d", v);
        int64_t t0 = procs_now_us();
        procs_kill(fl.pc, v);
        procs_sleep_ms(fl_ms(2500, 5000));
        fl_window_add(t0, procs_now_us(), 0.99, "kill9");
        fl_assert(fl_start(v, NULL) == 0, "restart %d", v);
        fl_member_ready(v);
        procs_sleep_ms(fl_ms(500, 2000));
    }
    fl_lean_on(v);
    procs_sleep_ms(fl_ms(500, 1500));
    fl_finish();
}

/* A member's host dies for good and a new host at another address takes
 * its slot (`serve --replaces`, DESIGN.md §6) under load; the load's
 * clients know all four addresses. Then the old host comes back with its
 * old data and flags and must exit ("replaced by"), and another member is
 * killed, so that every quorum needs the new member: had it come up
 * without the state of the slot it took, IDs would be handed out twice. */
Test(faults, replace, .timeout = 180, .fini = fl_fini)
{
    memset(&fl, 0, sizeof fl);
    fl.name = "replace";
    fl.seed = nem_seed(114);
    fl.rng = fl.seed;
    fl.slot = fl_slot();
    fl.variant = "-";
    char why[1024] = "";
    fl.pc = procs_cluster_new(4, fl.slot, NEM_ROUND_MS, NULL, why, sizeof why);
    cr_assert_not_null(fl.pc, "%s", why);
    fl.h = history_new();
    procs_set_n(fl.pc, 3);               /* member 3 is the spare host */
    for (int i = 0; i < 3; i++)
        fl_assert(fl_start(i, NULL) == 0, "spawning member %d failed", i);
    fl_ready(FL_READY_MS);
    procs_set_n(fl.pc, 4);               /* the clients know the spare's address too */
    fl_load();
    procs_set_n(fl.pc, 3);
    procs_sleep_ms(fl_ms(700, 2000));

    int v = fl_pick(3);
    procs_member *spare = &fl.pc->m[3];
    char old_addr[32], peers[PROCS_MAX * 32] = "";
    snprintf(old_addr, sizeof old_addr, "%s", fl.pc->m[v].addr);
    for (int i = 0, off = 0; i < 3; i++)
        if (i != v)
            off += snprintf(peers + off, sizeof peers - (size_t)off, "%s%s", off ? "," : "",
                            fl.pc->m[i].addr);
    fl_crash("kill9 %d (its host is gone)", v);
    int64_t t0 = procs_now_us();
    procs_kill(fl.pc, v);
    procs_sleep_ms(fl_ms(1000, 3000));
    fl_crash("replace %d by %s", v, spare->addr);
    snprintf(spare->peers, sizeof spare->peers, "%s", peers);
    const char *more[] = {"--replaces", old_addr, NULL};
    fl_assert(procs_start(fl.pc, 3, more) == 0, "spawning the new host");
    fl_member_ready(3);
    int64_t ready_ms = (procs_now_us() - t0) / 1000;
    procs_sleep_ms(fl_ms(1000, 3000));
    fl_window_add(t0, procs_now_us(), 0.99, "replaced");

    /* The new host is member v from now on; the old one is index 3. */
    procs_member tmp = fl.pc->m[v];
    fl.pc->m[v] = fl.pc->m[3];
    fl.pc->m[3] = tmp;
    procs_set_n(fl.pc, 3);
    for (int i = 0; i < 3; i++) {
        struct seqd_status st;
        fl_assert(procs_status(fl.pc, i, 1000, &st) == CLIENT_OK && st.epoch == 1,
                  "member %d is not at epoch 1", i);
    }
    fl_crash("old host %s back with its data", old_addr);
    snprintf(fl.pc->m[3].peers, sizeof fl.pc->m[3].peers, "%s", peers);
    fl_assert(procs_start(fl.pc, 3, NULL) == 0, "spawning the old host");
    int rc = procs_reap(fl.pc, 3, 15000);
    fl_assert(rc == 1 && procs_log_has(fl.pc, 3, "replaced by"),
              "the old host did not exit 1 saying it was replaced (rc %d)", rc);

    fl_lean_on(v);
    procs_sleep_ms(fl_ms(500, 1500));
    fl_extra("replaced=%d kill_to_ready_ms=%" PRId64, v, ready_ms);
    fl_finish();
}

/* kill -9 of every member at once (power loss), restart: nothing
 * acknowledged is lost (the crash rule), the cluster serves again. */
Test(faults, kill9_all, .timeout = 120, .fini = fl_fini)
{
    fl_setup("kill9_all", 3, 102, FL_NET_NONE, NULL);
    fl_load();
    procs_sleep_ms(fl_ms(700, 2000));
    int64_t worst_ready = 0;
    for (int c = 0; c < (nem_full() ? 3 : 1); c++) {
        fl_crash("kill9 all");
        for (int i = 0; i < 3; i++)
            kill(fl.pc->m[i].pid, SIGKILL);     /* all at once; procs_kill reaps below */
        for (int i = 0; i < 3; i++)
            procs_kill(fl.pc, i);
        int64_t t0 = procs_now_ms();
        procs_sleep_ms(fl_ms(300, 1000));
        for (int i = 0; i < 3; i++)
            fl_assert(fl_start(i, NULL) == 0, "restart %d", i);
        fl_ready(FL_READY_MS);
        int64_t back_us = procs_now_us();
        if (procs_now_ms() - t0 > worst_ready)
            worst_ready = procs_now_ms() - t0;
        procs_sleep_ms(fl_ms(2000, 4000));
        /* Everyone is back: from 2T on, all is served again. */
        fl_window_add(back_us, procs_now_us(), 0.99, "after restart");
    }
    fl_extra("down_to_ready_ms=%" PRId64, worst_ready);
    fl_finish();
}

/* A member loses its data directory (kill -9, rm -rf, restart): it must
 * rebuild its state from the others before it serves or votes. */
Test(faults, wipe_one, .timeout = 120, .fini = fl_fini)
{
    fl_setup("wipe_one", 3, 103, FL_NET_NONE, NULL);
    fl_load();
    procs_sleep_ms(fl_ms(700, 2000));
    int v = 0;
    for (int c = 0; c < (nem_full() ? 3 : 1); c++) {
        v = fl_pick(3);
        fl_crash("wipe %d", v);
        int64_t t0 = procs_now_us();
        procs_kill(fl.pc, v);
        fl_assert(procs_wipe(fl.pc, v) == 0, "wipe %s", fl.pc->m[v].dir);
        procs_sleep_ms(fl_ms(2500, 4000));
        fl_window_add(t0, procs_now_us(), 0.99, "wiped");
        fl_assert(fl_start(v, NULL) == 0, "restart %d", v);
        fl_member_ready(v);
        procs_sleep_ms(fl_ms(500, 2000));
    }
    fl_lean_on(v);
    procs_sleep_ms(fl_ms(500, 1500));
    fl_finish();
}

/* A member's data directory put back from an old copy (DESIGN.md §3,
 * "Incarnations and positions"): the copy is taken while the member is
 * stopped for a moment (SIGSTOP, cp -a, SIGCONT: crash-consistent, like a
 * VM snapshot), the cluster keeps serving (its peers record its later
 * positions), then the member is killed and the copy put back (the full
 * form also restarts it in between, so the copy is from before an
 * incarnation its peers recorded). Restarted, it must be told it was
 * rolled back and recover from its peers before it serves; then another
 * member is killed, so that every quorum needs the restored one — had it
 * come back with its old values, IDs would be handed out twice. Last, the
 * killed member comes back and must become ready: it can only recover
 * from the restored one (and the third), which therefore counts again
 * once its own recovery completed. */
Test(faults, restore_backup, .timeout = 120, .fini = fl_fini)
{
    fl_setup("restore_backup", 3, 113, FL_NET_NONE, NULL);
    fl_load();
    procs_sleep_ms(fl_ms(700, 2000));
    int v = fl_pick(3);
    fl_crash("backup of %d (stopped for the copy)", v);
    fl_assert(procs_pause_wait(fl.pc, v, 5000), "member %d did not stop", v);
    int rc = procs_backup(fl.pc, v, "restore");
    procs_resume(fl.pc, v);
    fl_assert(rc == 0, "cp -a of %s failed", fl.pc->m[v].dir);
    procs_sleep_ms(fl_ms(1500, 3000));
    if (nem_full()) {
        fl_crash("kill9 %d, restart (a new incarnation after the backup)", v);
        int64_t tr = procs_now_us();
        procs_kill(fl.pc, v);
        procs_sleep_ms(3000);
        fl_window_add(tr, procs_now_us(), 0.99, "restart after backup");
        fl_assert(fl_start(v, NULL) == 0, "restart %d", v);
        fl_member_ready(v);
        procs_sleep_ms(2000);
    }
    fl_crash("kill9 %d, its backup put back", v);
    int64_t t0 = procs_now_us();
    procs_kill(fl.pc, v);
    fl_assert(procs_restore(fl.pc, v, "restore") == 0, "putting the copy back failed");
    procs_sleep_ms(fl_ms(1500, 3000));
    fl_window_add(t0, procs_now_us(), 0.99, "restored member down");
    int64_t started = procs_now_ms();
    fl_assert(fl_start(v, NULL) == 0, "restart %d", v);
    fl_member_ready(v);
    int64_t ready_ms = procs_now_ms() - started;
    bool told = procs_log_has(fl.pc, v, "data directory was rolled back");
    fl_defer(told, "member %d, restored from its backup, was not told it was rolled back", v);
    procs_sleep_ms(fl_ms(500, 1500));
    int w = fl_other(v);
    fl_crash("kill9 %d (every quorum needs the restored %d)", w, v);
    int64_t t1 = procs_now_us();
    procs_kill(fl.pc, w);
    procs_sleep_ms(fl_ms(2500, 5000));
    fl_window_add(t1, procs_now_us(), 0.99, "quorums need the restored member");
    fl_assert(fl_start(w, NULL) == 0, "restart %d", w);
    fl_member_ready(w);
    fl_extra("restored=%d rolled_back=%d restart_to_ready_ms=%lld then_down=%d", v, told,
             (long long)ready_ms, w);
    fl_finish();
}

/* SIGSTOP a member for longer than the call timeout, then SIGCONT: its
 * stale rounds must not count, and it must serve correctly once back. */
Test(faults, pause_one, .timeout = 120, .fini = fl_fini)
{
    fl_setup("pause_one", 3, 104, FL_NET_NONE, NULL);
    fl_load();
    procs_sleep_ms(fl_ms(700, 2000));
    for (int c = 0; c < (nem_full() ? 3 : 1); c++) {
        int v = fl_pick(3);
        fl_crash("pause %d", v);
        int64_t t0 = procs_now_us();
        procs_pause(fl.pc, v);
        fl_probe_cut_off(v, "paused");
        procs_sleep_ms(fl_ms(2500, 5000));
        fl_window_add(t0, procs_now_us(), 0.99, "paused");
        procs_resume(fl.pc, v);
        fl_crash("resume %d", v);
        procs_sleep_ms(fl_ms(1000, 2500));
    }
    fl_finish();
}

/* One member cut off from the others (clients still reach it), healed. */
static void fl_partition_one(const char *name, uint64_t seed, fl_netkind net)
{
    if (!fl_setup(name, 3, seed, net, NULL))
        fl_skip("network namespaces not available here");
    fl_load();
    procs_sleep_ms(fl_ms(700, 2000));
    char why[1024] = "";
    for (int c = 0; c < (nem_full() ? 2 : 1); c++) {
        int v = fl_pick(3);
        fl_crash("isolate %d", v);
        int64_t t0 = procs_now_us();
        fl_assert(nem_net_isolate(fl.net, v, why, sizeof why) == 0, "%s", why);
        fl_probe_cut_off(v, "isolated");
        procs_sleep_ms(fl_ms(3000, 6000));
        fl_window_add(t0, procs_now_us(), 0.99, "isolated");
        fl_assert(nem_net_heal(fl.net, why, sizeof why) == 0, "%s", why);
        fl_crash("heal");
        procs_sleep_ms(fl_ms(1500, 3000));
    }
    fl_finish();
}

Test(faults, partition_one, .timeout = 120, .fini = fl_fini)
{
    fl_partition_one("partition_one", 105, FL_NET_PROXY);
}

Test(faults, partition_one_netns, .timeout = 120, .fini = fl_fini)
{
    fl_partition_one("partition_one_netns", 105, FL_NET_NETNS);
}

/* Five members split 2|3: the majority side serves, the minority side
 * cannot (its coordinators find no quorum), clients fail over to the
 * majority; after the heal the minority catches up. */
static void fl_partition_minority(const char *name, uint64_t seed, fl_netkind net)
{
    if (!fl_setup(name, 5, seed, net, NULL))
        fl_skip("network namespaces not available here");
    fl_load();
    procs_sleep_ms(fl_ms(700, 2000));
    char why[1024] = "";
    for (int c = 0; c < (nem_full() ? 2 : 1); c++) {
        int side[PROCS_MAX] = { 0 };
        int a = fl_pick(5), b = fl_other(a);
        side[a] = side[b] = 1;
        fl_crash("split %d,%d | rest", a, b);
        int64_t t0 = procs_now_us();
        fl_assert(nem_net_split(fl.net, side, why, sizeof why) == 0, "%s", why);
        fl_probe_cut_off(a, "minority side");
        procs_sleep_ms(fl_ms(3000, 6000));
        fl_window_add(t0, procs_now_us(), 0.99, "minority cut");
        fl_assert(nem_net_heal(fl.net, why, sizeof why) == 0, "%s", why);
        fl_crash("heal");
        procs_sleep_ms(fl_ms(1500, 3000));
    }
    fl_finish();
}

Test(faults, partition_minority, .timeout = 120, .fini = fl_fini)
{
    fl_partition_minority("partition_minority", 106, FL_NET_PROXY);
}

Test(faults, partition_minority_netns, .timeout = 120, .fini = fl_fini)
{
    fl_partition_minority("partition_minority_netns", 106, FL_NET_NETNS);
}

/* The storage fault hook (SEQD_TEST_FAULTS) on member v, with another
 * member w killed first so that every quorum needs v: a window of log
 * writes failing with ENOSPC must fail the fetches through it with a clear
 * (storage) error, v must stay up, and serve again after the window. */
Test(faults, disk_full, .timeout = 120, .fini = fl_fini)
{
    uint64_t seed = nem_seed(107), rng = seed;
    int v = (int)(nem_rand(&rng) % 3);
    char env[128];
    snprintf(env, sizeof env, "SEQD_TEST_FAULTS=write_fail_nth=%d,write_fail_count=%d,write_errno=ENOSPC",
             nem_full() ? 1500 : 300, nem_full() ? 150 : 60);
    const char *venv[] = { env, NULL };
    const char *const *envs[PROCS_MAX] = { NULL };
    envs[v] = venv;
    fl_setup("disk_full", 3, 107, FL_NET_NONE, envs);
    fl.variant = "hook";
    fl.rng = rng;
    int w = fl_other(v);
    fl_crash("kill9 %d (so that every quorum needs %d)", w, v);
    procs_kill(fl.pc, w);
    pid_t vpid = fl.pc->m[v].pid;
    char why[512] = "";
    nem_load_opts o = { .clients = 6, .call_ms = NEM_CALL_MS, .think_ms = 5, .nseqs = 4,
                        .prefix = "seq", .seed = fl.seed, .watch = "storage" };
    fl.load = nem_load_start(fl.pc, fl.h, &o, why, sizeof why);
    fl_assert(fl.load != NULL, "load: %s", why);
    /* Wait for the window to open, then to close (no failure for 2 s: while
     * it is open every fetch waits out its deadline, so a 1 s lull between
     * failures of six clients can happen inside it). */
    nem_load_stats st;
    int64_t deadline = procs_now_ms() + 30000;
    do {
        procs_sleep_ms(50);
        nem_load_stats_get(fl.load, &st);
    } while (st.failed == 0 && procs_now_ms() < deadline);
    fl_assert(st.failed > 0, "no fetch failed: the ENOSPC window never opened (%" PRIu64 " ok)",
              st.ok);
    fl_crash("ENOSPC window on %d", v);
    int64_t opened = procs_now_us();
    do {
        procs_sleep_ms(50);
        nem_load_stats_get(fl.load, &st);
    } while (procs_now_us() - st.last_fail_us < 2000000 && procs_now_ms() < deadline);
    int64_t closed = st.last_fail_us;
    fl_assert(procs_now_us() - st.last_fail_us >= 2000000,
              "fetches still failing %lld ms after the window opened, last: %s",
              (long long)((procs_now_us() - opened) / 1000), st.last_err);
    fl_assert(procs_reap(fl.pc, v, 0) == -2 && fl.pc->m[v].pid == vpid,
              "member %d did not stay up through ENOSPC", v);
    fl_extra("window_ms=%lld window_failures=%llu storage_errors=%llu", (long long)((closed - opened) / 1000),
             (unsigned long long)st.failed, (unsigned long long)st.watch_hits);
    fl_defer(st.watch_hits > 0, "%llu fetches failed during the ENOSPC window, none with a clear "
             "storage error; last error: %s", (unsigned long long)st.failed, st.last_err);
    /* After the window: served again, through v (every quorum needs it). */
    int64_t after = procs_now_us();
    procs_sleep_ms(fl_ms(2000, 4000));
    fl_window_add(after - 2 * FL_T_US, procs_now_us(), 0.99, "after ENOSPC");
    fl_assert(fl_start(w, NULL) == 0, "restart %d", w);
    fl_member_ready(w);
    procs_sleep_ms(fl_ms(500, 1500));
    fl_finish();
}

/* fsync fails (EIO) on member v: it must exit non-zero on its own (its
 * pages may be gone), recover on restart, and lose nothing acknowledged —
 * then the cluster leans on it with another member down. */
Test(faults, disk_eio, .timeout = 120, .fini = fl_fini)
{
    uint64_t seed = nem_seed(108), rng = seed;
    int v = (int)(nem_rand(&rng) % 3);
    char env[96];
    snprintf(env, sizeof env, "SEQD_TEST_FAULTS=fsync_fail_nth=%d", 200 + (int)(nem_rand(&rng) % 200));
    const char *venv[] = { env, NULL };
    const char *const *envs[PROCS_MAX] = { NULL };
    envs[v] = venv;
    fl_setup("disk_eio", 3, 108, FL_NET_NONE, envs);
    fl.variant = "hook";
    fl.rng = rng;
    fl_load();
    for (int c = 0; c < (nem_full() ? 2 : 1); c++) {
        int rc = procs_reap(fl.pc, v, 30000);
        fl_assert(rc != -2, "member %d still running 30 s after its fsync was set to fail (%s)", v, env);
        int64_t t0 = procs_now_us();
        fl_crash("fsync EIO on %d: exited %d", v, rc);
        fl_assert(rc > 0 && rc < 128, "member %d: exit %d after a failed fsync, want a non-zero exit", v,
                  rc);
        fl_assert(procs_log_has(fl.pc, v, "fsync"), "member %d's log does not mention the fsync", v);
        procs_sleep_ms(fl_ms(1500, 3000));
        fl_window_add(t0, procs_now_us(), 0.99, "eio exit");
        fl_assert(fl_start(v, NULL) == 0, "restart %d", v);
        fl_member_ready(v);
        procs_sleep_ms(fl_ms(500, 1500));
        fl_lean_on(v);
        if (c + 1 < (nem_full() ? 2 : 1)) {
            /* Next victim, next failing fsync: restart it with the hook. */
            v = fl_pick(3);
            snprintf(env, sizeof env, "SEQD_TEST_FAULTS=fsync_fail_nth=%d",
                     200 + (int)(nem_rand(&fl.rng) % 200));
            procs_kill(fl.pc, v);
            fl_crash("kill9 %d (restart with a failing fsync)", v);
            fl_assert(fl_start(v, venv) == 0, "restart %d", v);
        }
    }
    procs_sleep_ms(fl_ms(300, 1000));
    fl_finish();
}

/* A slow disk (every fdatasync of member v sleeps 60 ms) and then another
 * member down, so every quorum waits for the slow disk. */
Test(faults, slow_disk, .timeout = 120, .fini = fl_fini)
{
    uint64_t seed = nem_seed(109), rng = seed;
    int v = (int)(nem_rand(&rng) % 3);
    const char *venv[] = { "SEQD_TEST_FAULTS=sync_delay_us=60000", NULL };
    const char *const *envs[PROCS_MAX] = { NULL };
    envs[v] = venv;
    fl_setup("slow_disk", 3, 109, FL_NET_NONE, envs);
    fl.variant = "hook";
    fl.rng = rng;
    fl_load();
    int64_t t0 = procs_now_us();
    procs_sleep_ms(fl_ms(2000, 5000));
    fl_window_add(t0, procs_now_us(), 0.99, "one slow disk");
    int w = fl_other(v);
    fl_crash("kill9 %d (quorum needs the slow disk of %d)", w, v);
    int64_t t1 = procs_now_us();
    procs_kill(fl.pc, w);
    procs_sleep_ms(fl_ms(2500, 6000));
    int64_t t2 = procs_now_us();
    fl_window_add(t1, t2, 0.99, "slow disk in every quorum");
    fl_assert(fl_start(w, NULL) == 0, "restart %d", w);
    fl_member_ready(w);
    procs_sleep_ms(fl_ms(500, 1500));
    nem_load_stop(fl.load);
    fl.load = NULL;
    fl_extra("p50_ms=%.1f p99_ms=%.1f", fl_latency_pct(t1 + 2 * FL_T_US, t2, 0.5),
             fl_latency_pct(t1 + 2 * FL_T_US, t2, 0.99));
    fl_finish();
}

/* A slow network: every member link delayed 40 +- 20 ms each way (a round
 * trip stays within R, but every fetch now takes one or two of them, and
 * coordinators of one sequence collide more: >= 90% is asked there), then
 * only member v's links by 400 ms (over R: its votes come too late to
 * count, as if it were cut off: >= 99%), healed. */
static void fl_slow_network(const char *name, uint64_t seed, fl_netkind net)
{
    if (!fl_setup(name, 3, seed, net, NULL))
        fl_skip("network namespaces not available here");
    char why[1024] = "";
    if (nem_net_delay(fl.net, -1, 40, 20, why, sizeof why) != 0) {
        fl_assert(net == FL_NET_NETNS, "%s", why);
        char reason[1200];
        snprintf(reason, sizeof reason, "tc netem not available here (%s)", why);
        nem_report_skip(name, reason);
        fl_skip(reason);
    }
    fl_crash("delay all links 40+-20 ms");
    fl_load();
    int64_t t0 = procs_now_us();
    procs_sleep_ms(fl_ms(2500, 6000));
    int64_t t1 = procs_now_us();
    fl_window_add(t0, t1, 0.90, "all links slow");
    fl_assert(nem_net_delay(fl.net, -1, 0, 0, why, sizeof why) == 0, "%s", why);
    int v = fl_pick(3);
    fl_crash("delay links of %d 400 ms", v);
    int64_t t2 = procs_now_us();
    fl_assert(nem_net_delay(fl.net, v, 400, 0, why, sizeof why) == 0, "%s", why);
    procs_sleep_ms(fl_ms(3000, 6000));
    fl_window_add(t2, procs_now_us(), 0.99, "one member slow");
    fl_assert(nem_net_heal(fl.net, why, sizeof why) == 0, "%s", why);
    fl_crash("heal");
    procs_sleep_ms(fl_ms(1000, 2000));
    nem_load_stop(fl.load);
    fl.load = NULL;
    fl_extra("p99_ms_slow_links=%.1f", fl_latency_pct(t0 + 2 * FL_T_US, t1, 0.99));
    fl_finish();
}

Test(faults, slow_network, .timeout = 120, .fini = fl_fini)
{
    fl_slow_network("slow_network", 110, FL_NET_PROXY);
}

Test(faults, slow_network_netem, .timeout = 120, .fini = fl_fini)
{
    fl_slow_network("slow_network_netem", 110, FL_NET_NETNS);
}

/* Mounting a tmpfs needs privileges: try once on a scratch directory. */
static bool fl_can_mount(char *why, size_t whylen)
{
    char dir[] = "/tmp/seqd-faults-mnt-XXXXXX";
    if (mkdtemp(dir) == NULL) {
        snprintf(why, whylen, "mkdtemp: %s", strerror(errno));
        return false;
    }
    bool ok = nem_tmpfs_mount(dir, 1024, why, whylen) == 0;
    if (ok)
        nem_tmpfs_umount(dir);
    rmdir(dir);
    return ok;
}

/* Puts member v (stopped) on a fresh tmpfs of size_kb. */
static void fl_tmpfs_for(int v, long size_kb)
{
    char why[512] = "";
    if (fl.mounts[v][0] != '\0') {
        nem_tmpfs_umount(fl.mounts[v]);
        fl.mounts[v][0] = '\0';
    }
    fl_assert(procs_wipe(fl.pc, v) == 0, "wipe %s", fl.pc->m[v].dir);
    fl_assert(nem_tmpfs_mount(fl.pc->m[v].dir, size_kb, why, sizeof why) == 0, "%s", why);
    snprintf(fl.mounts[v], sizeof fl.mounts[v], "%s", fl.pc->m[v].dir);
}

/* A real full disk: member v's --data on a small tmpfs.
 * 1. Start-up on a filesystem too small for the first log segment: the
 *    member must refuse to run (exit non-zero, saying why) while the others
 *    serve; once space is freed it starts, recovers, and the cluster leans
 *    on it.
 * 2. (full run only: filling 16 MiB takes a while) A running member whose
 *    filesystem fills up: its log segment runs out and no new one fits.
 *    With another member down, fetches fail; v must stay up; once space is
 *    freed it serves again. */
Test(faults, disk_full_tmpfs, .timeout = 180, .fini = fl_fini)
{
    char why[1024] = "";
    if (!fl_can_mount(why, sizeof why)) {
        char reason[1200];
        snprintf(reason, sizeof reason, "mount -t tmpfs not permitted here (%s)", why);
        nem_report_skip("disk_full_tmpfs", reason);
        cr_skip_test("%s", reason);
    }
    fl_setup("disk_full_tmpfs", 3, 111, FL_NET_NONE, NULL);
    fl.variant = "tmpfs";
    fl_load();
    procs_sleep_ms(fl_ms(700, 2000));
    int v = fl_pick(3);
    fl_crash("kill9 %d, its data on a 4 MiB tmpfs", v);
    int64_t t0 = procs_now_us();
    procs_kill(fl.pc, v);
    fl_tmpfs_for(v, 4096);
    fl_assert(fl_start(v, NULL) == 0, "start %d", v);
    int rc = procs_reap(fl.pc, v, 15000);
    fl_assert(rc > 0 && rc < 128, "member %d on a full filesystem: exit %d, want a non-zero exit", v,
              rc);
    fl_assert(procs_log_has(fl.pc, v, "No space left"), "member %d's log does not say why it stopped",
              v);
    procs_sleep_ms(fl_ms(1500, 3000));
    fl_window_add(t0, procs_now_us(), 0.99, "full at start");
    fl_assert(nem_tmpfs_resize(fl.mounts[v], 64 * 1024, why, sizeof why) == 0, "%s", why);
    fl_crash("space freed on %d", v);
    fl_assert(fl_start(v, NULL) == 0, "restart %d", v);
    fl_member_ready(v);
    fl_lean_on(v);
    fl_extra("startup_exit=%d", rc);
    if (nem_full()) {
        /* 16 MiB segment + a little: room for nothing after it. */
        fl_crash("kill9 %d, its data on a 16.5 MiB tmpfs", v);
        procs_kill(fl.pc, v);
        fl_tmpfs_for(v, 16 * 1024 + 512);
        fl_assert(fl_start(v, NULL) == 0, "restart %d", v);
        fl_member_ready(v);
        int w = fl_other(v);
        fl_crash("kill9 %d (so that every quorum needs %d)", w, v);
        procs_kill(fl.pc, w);
        pid_t vpid = fl.pc->m[v].pid;
        /* Long names fill the log fastest (a record is 22 + name bytes). */
        char prefix[HISTORY_NAME_MAX];
        memset(prefix, 'f', 124);
        prefix[124] = '\0';
        nem_load_opts o = { .clients = 12, .call_ms = NEM_CALL_MS, .think_ms = 0, .nseqs = 16,
                            .prefix = prefix, .seed = fl.seed + 1, .watch = "storage" };
        nem_load *filler = nem_load_start(fl.pc, fl.h, &o, why, sizeof why);
        fl_assert(filler != NULL, "filler: %s", why);
        nem_load_stats st, prev;
        nem_load_stats_get(filler, &prev);
        int64_t deadline = procs_now_ms() + 90000, full_at = 0;
        for (;;) {
            procs_sleep_ms(500);
            nem_load_stats_get(filler, &st);
            /* Full: in half a second most calls failed. */
            uint64_t calls = st.calls - prev.calls, failed = st.failed - prev.failed;
            if (calls > 0 && failed * 2 > calls) {
                full_at = procs_now_ms();
                break;
            }
            prev = st;
            if (procs_now_ms() > deadline)
                break;
        }
        fl_assert(full_at != 0, "the 16.5 MiB filesystem did not fill in 90 s (%llu fetches)",
                  (unsigned long long)st.calls);
        fl_crash("filesystem of %d full", v);
        procs_sleep_ms(1500);
        fl_assert(procs_reap(fl.pc, v, 0) == -2 && fl.pc->m[v].pid == vpid,
                  "member %d did not stay up on a full filesystem", v);
        nem_load_stats_get(filler, &st);
        fl_extra("filled_in_ms=%lld", (long long)(full_at - (deadline - 90000)));
        fl_assert(nem_tmpfs_resize(fl.mounts[v], 64 * 1024, why, sizeof why) == 0, "%s", why);
        fl_crash("space freed on %d", v);
        int64_t freed = procs_now_us();
        procs_sleep_ms(3000);
        nem_load_stop(filler);
        fl_window_add(freed, procs_now_us(), 0.99, "space freed");
        fl_defer(st.watch_hits > 0, "%llu fetches failed on a full filesystem, none with a clear "
                 "storage error; last error: %s", (unsigned long long)st.failed, st.last_err);
        fl_assert(fl_start(w, NULL) == 0, "restart %d", w);
        fl_member_ready(w);
    }
    procs_sleep_ms(fl_ms(300, 1000));
    fl_finish();
}

/* Random delay in [lo, hi] ms from the scenario's seed. */
static int64_t fl_between(int64_t lo, int64_t hi)
{
    return lo + (int64_t)(nem_rand(&fl.rng) % (uint64_t)(hi - lo + 1));
}

/* A seeded mix, one fault at a time, each ended before the next (so at
 * most one member's disk is ever lost): kill -9 and restart, kill -9
 * again while it is still recovering, wipe and restart (and kill that one
 * mid-recovery too), short pauses around R and long ones past the call
 * timeout, isolation, kill -9 of all. Only the contract is asserted (no
 * availability bound: faults follow each other closely). */
Test(faults, chaos_mixed, .timeout = 240, .fini = fl_fini)
{
    fl_setup("chaos_mixed", 3, 112, FL_NET_PROXY, NULL);
    fl_load();
    procs_sleep_ms(fl_ms(500, 1500));
    static const char *const kinds[] = { "kill9", "kill9_recovering", "wipe", "wipe_recovering",
                                         "pause_short", "pause_long", "isolate", "kill9_all" };
    enum { NKINDS = sizeof kinds / sizeof kinds[0] };
    int count[NKINDS] = { 0 };
    char why[1024] = "";
    int steps = nem_full() ? 40 : 4;
    for (int k = 0; k < steps; k++) {
        int kind = fl_pick(NKINDS), v = fl_pick(3);
        count[kind]++;
        fl_crash("%s %d", kinds[kind], v);
        switch (kind) {
        case 0: /* kill9 */
        case 1: /* kill9, restart, kill9 again somewhere in its recovery */
        case 2: /* wipe */
        case 3: /* wipe, restart, kill9 in its recovery, restart */
            procs_kill(fl.pc, v);
            if (kind >= 2)
                fl_assert(procs_wipe(fl.pc, v) == 0, "wipe %d", v);
            procs_sleep_ms(fl_between(50, 1500));
            fl_assert(fl_start(v, NULL) == 0, "restart %d", v);
            if (kind == 1 || kind == 3) {
                procs_sleep_ms(fl_between(0, 3 * NEM_ROUND_MS));
                fl_crash("kill9 %d while recovering", v);
                procs_kill(fl.pc, v);
                fl_assert(fl_start(v, NULL) == 0, "restart %d", v);
            }
            break;
        case 4: /* pauses around R: a stalled member's replies are stale */
        case 5:
            procs_pause(fl.pc, v);
            procs_sleep_ms(kind == 4 ? fl_between(50, 3 * NEM_ROUND_MS) : fl_between(1000, 2500));
            procs_resume(fl.pc, v);
            break;
        case 6:
            fl_assert(nem_net_isolate(fl.net, v, why, sizeof why) == 0, "%s", why);
            procs_sleep_ms(fl_between(100, 2000));
            fl_assert(nem_net_heal(fl.net, why, sizeof why) == 0, "%s", why);
            break;
        default:
            for (int i = 0; i < 3; i++)
                kill(fl.pc->m[i].pid, SIGKILL);
            for (int i = 0; i < 3; i++)
                procs_kill(fl.pc, i);
            procs_sleep_ms(fl_between(50, 500));
            for (int i = 0; i < 3; i++)
                fl_assert(fl_start(i, NULL) == 0, "restart %d", i);
            break;
        }
        /* The next fault only once everyone is back: never two disks lost. */
        fl_ready(FL_READY_MS);
        procs_sleep_ms(fl_between(100, 600));
    }
    char mix[256] = "";
    size_t off = 0;
    for (int k = 0; k < NKINDS; k++)
        if (count[k] > 0)
            off += (size_t)snprintf(mix + off, sizeof mix - off, "%s%s:%d", off ? "," : "", kinds[k],
                                    count[k]);
    fl_extra("faults=%d mix=%s", steps, mix);
    fl_finish();
}
