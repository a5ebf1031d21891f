/* tests/test_rollback.c — data directories rolled back under real seqd
 * processes (DESIGN.md §3, "Incarnations and positions";
 * quorum/incarnation.h): restored backups, a VM snapshot put back, and a
 * kill -9 right after a compaction, which must NOT pass for a rollback.
 *
 * Every fetch goes through procs_fetch into one history per test, and the
 * whole history is held to the ID contract (tests/history.h: no ID twice,
 * per-client and real-time order) — in the restored-backups attack also
 * right after the attack, before the member that holds the round is back.
 * Where the verdict is the point, the members' logs are asserted too: a
 * restored member says "data directory was rolled back" in the run that
 * follows the restore, the others never do.
 *
 * Backups are cp -a copies of a member's data directory taken while it is
 * down or stopped (procs_backup; procs_pause_wait for a VM-like snapshot
 * within one incarnation) and put back with procs_restore.
 *
 * Port slots: one of 15..19, held by an flock on the lock files the faults
 * suite uses for the same slots (as tests/test_mac.c does), so that no two
 * tests share ports; tests/procs.h has no slot of its own left.
 *
 * Two product bugs this file found while incarnations were landing were
 * fixed on main before it merged: a member that completed its recovery
 * after a rolled-back verdict never again counted for others (now every
 * completed recovery makes a member count), and a peer that had seen a
 * new incarnation only in a reply answered the reader's SNAP_REQ without
 * a durable record and with "recorded before: none" (now inc_record waits
 * for durable_c and inc_recorded_before keeps the previous counter).
 */
#include <criterion/criterion.h>
#include <criterion/logging.h>

#include <dirent.h>
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

#define RB_R 200u
#define RB_READY_MS 30000
#define RB_NAMES 3
#define RB_ROLLED "data directory was rolled back"

static const char *const rb_names[RB_NAMES] = { "rb.orders", "rb.users", "rb.events" };

static procs_cluster *rb_pc;
static nem_net *rb_net;
static history *rb_h;
static nem_load *rb_load;
static const char *rb_test = "?";

static void rb_fini(void)
{
    nem_load_stop(rb_load);
    rb_load = NULL;
    procs_cluster_free(rb_pc);
    rb_pc = NULL;
    nem_net_free(rb_net);
    rb_net = NULL;
    history_free(rb_h);
    rb_h = NULL;
}

/* Fails with the last lines of every member's log attached. */
static void rb_failf(const char *expr, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void rb_failf(const char *expr, const char *file, int line, const char *fmt, ...)
{
    static char msg[8192], logs[32768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    nem_load_stop(rb_load);
    rb_load = NULL;
    logs[0] = '\0';
    if (rb_pc != NULL)
        procs_logs(rb_pc, 14, logs, sizeof logs);
    cr_assert_fail("%s: %s:%d: %s: %s\n%s", rb_test, file, line, expr, msg, logs);
}

#define rb_assert(cond, ...)                                                   \
    do {                                                                       \
        if (!(cond))                                                           \
            rb_failf(#cond, __FILE__, __LINE__, __VA_ARGS__);                  \
    } while (0)

/* The first free slot of 15..19, held until this test process ends. */
static int rb_slot(void)
{
    return procs_shared_slot(120000);
}

static void rb_ready(void)
{
    static char why[32768];
    rb_assert(procs_wait_ready(rb_pc, RB_READY_MS, why, sizeof why), "%s", why);
}

static void rb_start(int i)
{
    int rc = rb_net != NULL ? nem_net_start(rb_net, i, NULL, NULL) : procs_start(rb_pc, i, NULL);
    rb_assert(rc == 0, "spawning member %d (%s) failed", i, procs_bin());
}

/* n members on a slot of the pool (peer links through the fault proxy
 * with `proxy`), started, initialized, ready. */
static void rb_up_net(const char *test, int n, bool proxy)
{
    rb_test = test;
    int slot = rb_slot();
    cr_assert_geq(slot, 0, "no free port slot in 120 s");
    char why[512] = "";
    rb_pc = procs_cluster_new(n, slot, RB_R, NULL, why, sizeof why);
    cr_assert_not_null(rb_pc, "%s", why);
    rb_h = history_new();
    cr_assert_not_null(rb_h);
    if (proxy) {
        rb_net = nem_net_new(rb_pc, NEM_NET_PROXY, slot, 1, why, sizeof why);
        rb_assert(rb_net != NULL, "proxy: %s", why);
    }
    for (int i = 0; i < n; i++)
        rb_start(i);
    rb_ready();
}

static void rb_up(const char *test, int n)
{
    rb_up_net(test, n, false);
}

/* kill -9 of every member at once (power loss), then each reaped. */
static void rb_kill_all(void)
{
    for (int i = 0; i < rb_pc->n; i++)
        if (rb_pc->m[i].pid != 0)
            kill(rb_pc->m[i].pid, SIGKILL);
    for (int i = 0; i < rb_pc->n; i++)
        procs_kill(rb_pc, i);
}

/* `rounds` fetches of `count` IDs of every test sequence through member i
 * alone (a client that knows only it), as history client `cid`. Returns
 * how many succeeded; with `must`, every one has to. */
static int rb_fetch(int i, uint32_t cid, int rounds, uint32_t count, uint32_t timeout_ms, bool must)
{
    char err[512] = "";
    client *c = client_new(rb_pc->m[i].addr, err, sizeof err);
    rb_assert(c != NULL, "%s", err);
    int ok = 0;
    for (int r = 0; r < rounds; r++) {
        for (int s = 0; s < RB_NAMES; s++) {
            uint64_t first = 0;
            int rc = procs_fetch(rb_h, c, cid, rb_names[s], count, timeout_ms, &first, err,
                                 sizeof err);
            if (rc == CLIENT_OK)
                ok++;
            else if (must) {
                client_free(c);
                rb_assert(false, "fetch of %s through member %d (%s) failed: %s", rb_names[s], i,
                          rb_pc->m[i].addr, err);
            }
        }
    }
    client_free(c);
    return ok;
}

/* The same through every running member in turn (client cid + member). */
static void rb_fetch_all(uint32_t cid, int rounds, uint32_t count)
{
    for (int i = 0; i < rb_pc->n; i++)
        if (rb_pc->m[i].pid != 0)
            rb_fetch(i, cid + (uint32_t)i, rounds, count, 5000, true);
}

/* IDs that lie in more than one ok range (per sequence): how many IDs a
 * violation of the unique rule handed out twice. */
static int rb_cmp_range(const void *pa, const void *pb)
{
    const uint64_t *a = pa, *b = pb;
    return a[0] != b[0] ? (a[0] > b[0]) - (a[0] < b[0]) : (a[1] > b[1]) - (a[1] < b[1]);
}

static uint64_t rb_dup_ids(void)
{
    size_t n = history_nops(rb_h);
    uint64_t (*rg)[3] = calloc(n ? n : 1, sizeof *rg), dup = 0;
    rb_assert(rg != NULL, "out of memory");
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        const history_op *o = history_op_at(rb_h, i);
        if (o->outcome == HISTORY_OK) {
            rg[k][0] = o->seq;
            rg[k][1] = o->first;
            rg[k][2] = o->last;
            k++;
        }
    }
    qsort(rg, k, sizeof *rg, rb_cmp_range);
    uint64_t seq = UINT64_MAX, reach = 0;   /* highest ID covered so far in seq */
    for (size_t i = 0; i < k; i++) {
        if (rg[i][0] != seq) {
            seq = rg[i][0];
            reach = 0;
        }
        if (rg[i][1] <= reach)
            dup += (rg[i][2] < reach ? rg[i][2] : reach) - rg[i][1] + 1;
        if (rg[i][2] > reach)
            reach = rg[i][2];
    }
    free(rg);
    return dup;
}

/* The whole history so far against the contract; `when` names the point. */
static void rb_check(const char *when)
{
    static char why[4096];
    history_report r;
    bool ok = procs_history_check(rb_h, &r, why, sizeof why);
    uint64_t dup = ok ? 0 : rb_dup_ids();
    fprintf(stderr, "rollback: %s: %s: ops=%" PRIu64 " ok=%" PRIu64 " failed=%" PRIu64
            " unknown=%" PRIu64 " violations=%" PRIu64 " duplicate_ids=%" PRIu64 "\n",
            rb_test, when, r.ops, r.ok, r.failed, r.unknown, r.violations, dup);
    rb_assert(ok, "%s: %" PRIu64 " IDs handed out twice; %s", when, dup, why);
}

/* Whether member i's log, since its latest start (procs marks every start
 * with a "=== procs: start" line), contains s. */
static bool rb_run_has(int i, const char *s)
{
    FILE *f = fopen(rb_pc->m[i].log, "r");
    if (f == NULL)
        return false;
    char line[2048];
    bool found = false;
    while (fgets(line, sizeof line, f) != NULL) {
        if (strncmp(line, "=== procs: start", 16) == 0)
            found = false;
        else if (strstr(line, s) != NULL)
            found = true;
    }
    fclose(f);
    return found;
}

static bool rb_wait_run_has(int i, const char *s, int64_t ms)
{
    int64_t end = procs_now_ms() + ms;
    while (!rb_run_has(i, s) && procs_now_ms() < end)
        procs_sleep_ms(20);
    return rb_run_has(i, s);
}

static void rb_backup_paused(int i, const char *name)
{
    rb_assert(procs_pause_wait(rb_pc, i, 5000), "member %d did not stop", i);
    int rc = procs_backup(rb_pc, i, name);
    procs_resume(rb_pc, i);
    rb_assert(rc == 0, "cp -a of member %d's data directory failed", i);
}

/* ---- 1. the second attack ------------------------------------- */

/* The attacks' check: for 5 s, fetches through A, B, D and E (members 0,
 * 1, 3, 4) while C (2) is down; nothing they hand out may overlap (the
 * history says). Returns how many were served, *tried how many asked. */
static int rb_fetch_with_c_down(int *tried)
{
    static const int up[] = { 0, 1, 3, 4 };
    int64_t end = procs_now_ms() + 5000;
    int served = 0;
    while (procs_now_ms() < end) {
        for (int k = 0; k < 4; k++) {
            served += rb_fetch(up[k], 30 + (uint32_t)up[k], 1, 10, 400, false);
            *tried += RB_NAMES;
        }
        procs_sleep_ms(50);
    }
    return served;
}

/* Five members A..E = 0..4. Backups of B and D, which then restart (new
 * incarnations, which their recovery sources record durably); a round
 * commits on {B, C, D} alone while A and E are stopped; A and E die
 * without ever applying it, C goes down, and B and D come back from their
 * backups. Under the rule before incarnations B and D counted as members
 * with state in everyone's recovery and vouched for each other, and the
 * cluster handed that round's IDs out again. Now both are told they were
 * rolled back, count for nobody until they recovered, and with C down the
 * cluster must wait (or serve only higher IDs); once C is back everything
 * serves again. Built from the commits before incarnations (cb38fa8,
 * ac1315e), seqd hands all 1200 IDs of that round out again here. */
Test(rollback, restored_backups_attack_five_members, .timeout = 180, .fini = rb_fini)
{
    enum { A, B, C, D, E };
    rb_up("restored_backups_attack_five_members", 5);
    int64_t t0 = procs_now_ms();
    rb_fetch_all(0, 4, 5);   /* 5 x 3 x 4 fetches of 5: 300 IDs */

    /* Backups of B and D, taken while they are down; then they restart. */
    procs_kill(rb_pc, B);
    procs_kill(rb_pc, D);
    procs_crash(rb_h, "kill9 B, D (backups taken)");
    rb_assert(procs_backup(rb_pc, B, "B") == 0 && procs_backup(rb_pc, D, "D") == 0, "backup");
    rb_start(B);
    rb_start(D);
    rb_ready();
    rb_fetch_all(10, 4, 5);

    /* The round on {B, C, D}: A and E stopped, every fetch through B. */
    rb_assert(procs_pause_wait(rb_pc, A, 5000) && procs_pause_wait(rb_pc, E, 5000), "pause A, E");
    int during = rb_fetch(B, 20, 40, 10, 5000, true);   /* 120 fetches, 1200 IDs */
    uint64_t top[RB_NAMES];
    for (int s = 0; s < RB_NAMES; s++)
        top[s] = procs_history_max(rb_h, rb_names[s]);

    /* A and E die without applying those ACCEPTs; C goes down; B and D come
     * back from their backups (A, E, B, D start; C stays down). */
    procs_kill(rb_pc, A);
    procs_kill(rb_pc, E);
    procs_kill(rb_pc, C);
    procs_kill(rb_pc, B);
    procs_kill(rb_pc, D);
    procs_crash(rb_h, "kill9 all; B, D restored from backups; C stays down");
    rb_assert(procs_restore(rb_pc, B, "B") == 0 && procs_restore(rb_pc, D, "D") == 0, "restore");
    rb_start(A);
    rb_start(E);
    rb_start(B);
    rb_start(D);

    /* With C down nothing may overlap: the members wait (or serve higher). */
    int tried = 0, served = rb_fetch_with_c_down(&tried);
    rb_check("after the restore, C down");
    rb_assert(rb_wait_run_has(B, RB_ROLLED, 10000), "B (restored) was not told it was rolled back");
    rb_assert(rb_wait_run_has(D, RB_ROLLED, 10000), "D (restored) was not told it was rolled back");
    fprintf(stderr, "rollback: %s: with C down %d of %d fetches served\n", rb_test, served, tried);

    /* C back: everyone recovers and serves, above everything before. Today
     * B and D recover once C is up but never count for A, C or E, which
     * then wait for ever. */
    procs_crash(rb_h, "start C");
    rb_start(C);
    rb_ready();
    rb_fetch_all(40, 4, 5);
    for (int s = 0; s < RB_NAMES; s++)
        rb_assert(procs_history_max(rb_h, rb_names[s]) > top[s], "%s did not move on",
                  rb_names[s]);
    for (int i = A; i <= E; i++) {
        bool restored = i == B || i == D;
        rb_assert(rb_run_has(i, RB_ROLLED) == restored, "member %d: '%s' in its log: %d, want %d",
                  i, RB_ROLLED, !restored, restored);
        rb_assert(rb_run_has(i, "ready: recovered"), "member %d did not recover", i);
        if (!restored)
            rb_assert(rb_run_has(i, "verified:"), "member %d was not verified", i);
    }
    rb_check("end");
    fprintf(stderr, "rollback: %s: %d fetches on {B, C, D} during the pause, %lld ms\n", rb_test,
            during, (long long)(procs_now_ms() - t0));
}

/* ---- 2. a VM snapshot put back ----------------------------------------- */

/* Member 1's directory copied while it is stopped (SIGSTOP: a VM snapshot
 * within one incarnation), more fetches (its peers see its later
 * positions), then power loss of all three and the snapshot put back:
 * all start at once, the cluster serves, member 1 was told it was rolled
 * back (its log reaches a lower position of its incarnation than its
 * peers recorded), the others were not. */
Test(rollback, vm_snapshot_restore_all_restart, .timeout = 120, .fini = rb_fini)
{
    rb_test = "vm_snapshot_restore_all_restart";
    rb_up(rb_test, 3);
    int64_t t0 = procs_now_ms();
    rb_fetch_all(0, 5, 5);
    rb_backup_paused(1, "snap");
    rb_fetch_all(10, 10, 5);   /* members 0 and 2 coordinate: 1's ACKs carry its position */
    rb_kill_all();
    procs_crash(rb_h, "kill9 all; member 1's snapshot put back");
    rb_assert(procs_restore(rb_pc, 1, "snap") == 0, "restore");
    for (int i = 0; i < 3; i++)
        rb_start(i);
    rb_ready();
    for (int i = 0; i < 3; i++)
        rb_assert(rb_run_has(i, RB_ROLLED) == (i == 1), "member %d: '%s' in its log: %d", i,
                  RB_ROLLED, i != 1);
    rb_fetch_all(20, 5, 5);
    rb_check("end");
    fprintf(stderr, "rollback: %s: %lld ms\n", rb_test, (long long)(procs_now_ms() - t0));
}

/* ---- 3. kill -9 right after a compaction -------------------------------- */

/* The highest seqno among member i's log segments under their final name
 * (log.<16 hex>; a segment being prepared is log.<seqno>.tmp), 0 if none. */
static uint64_t rb_newest_segment(int i)
{
    DIR *d = opendir(rb_pc->m[i].dir);
    if (d == NULL)
        return 0;
    uint64_t hi = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, "log.", 4) != 0 || strlen(e->d_name) != 20)
            continue;
        char *endp;
        uint64_t v = strtoull(e->d_name + 4, &endp, 16);
        if (*endp == '\0' && v > hi)
            hi = v;
    }
    closedir(d);
    return hi;
}

/* Waits (up to 200 s) until every member in `who` (a bit each) — with
 * `any`, one of them — holds a segment numbered `seg` or higher; each
 * one's time of arrival goes to at[] (ms since t0), the first to arrive
 * to *first. False if they did not make it. Polls every 5 ms: the caller
 * kills right after. */
static bool rb_wait_compacted(unsigned who, uint64_t seg, bool any, int64_t t0, int64_t at[],
                              int *first)
{
    int64_t deadline = procs_now_ms() + 200000;
    unsigned done = 0;
    *first = -1;
    for (;;) {
        for (int i = 0; i < rb_pc->n; i++) {
            if ((who >> i & 1) && !(done >> i & 1) && rb_newest_segment(i) >= seg) {
                done |= 1u << i;
                at[i] = procs_now_ms() - t0;
                if (*first < 0)
                    *first = i;
            }
        }
        if (done == who || (any && done != 0))
            return true;
        if (procs_now_ms() > deadline)
            return false;
        procs_sleep_ms(5);
    }
}

/* Compaction carries the position (a segment's snapshot records it as of
 * its point P): a member killed right after it switched segments replays
 * to a position at least what its peers recorded, and is not taken for a
 * rolled-back one. Long names fill a 16 MiB segment to its 75% mark
 * fastest (about 10 s here). Two checks:
 *  1. every member compacted, then kill -9 of all at once, all restart:
 *     the cluster serves, nobody says "rolled back" and everyone is
 *     verified. (In a whole-cluster restart bug 2 can hide a wrong
 *     position: a peer that heard the member's new incarnation first
 *     answers "nothing recorded before". So:)
 *  2. the load goes on until a member compacts again; that one is killed
 *     at once and restarts alone, its peers ready (they do not read from
 *     it, so they answer its reads with what they recorded): it must
 *     recover without a rolled-back verdict. */
Test(rollback, kill9_after_compaction_is_not_a_rollback, .timeout = 300, .fini = rb_fini)
{
    rb_up("kill9_after_compaction_is_not_a_rollback", 3);
    int64_t t0 = procs_now_ms();
    char prefix[HISTORY_NAME_MAX];
    memset(prefix, 'c', 124);
    prefix[124] = '\0';
    char why[512] = "";
    nem_load_opts o = { .clients = 12, .call_ms = NEM_CALL_MS, .think_ms = 0, .nseqs = 16,
                        .prefix = prefix, .seed = 3 };
    rb_load = nem_load_start(rb_pc, rb_h, &o, why, sizeof why);
    rb_assert(rb_load != NULL, "load: %s", why);
    int64_t at[PROCS_MAX] = { 0 };
    int first = -1;
    bool all = rb_wait_compacted(7u, 2, false, t0, at, &first);
    rb_kill_all();
    procs_crash(rb_h, "kill9 all right after the compactions");
    int64_t killed = procs_now_ms() - t0;
    rb_assert(all, "not every member compacted in 200 s (segments %" PRIu64 " %" PRIu64
              " %" PRIu64 ")", rb_newest_segment(0), rb_newest_segment(1), rb_newest_segment(2));
    for (int i = 0; i < 3; i++)
        rb_start(i);
    rb_ready();
    for (int i = 0; i < 3; i++) {
        rb_assert(!procs_log_has(rb_pc, i, "rolled back"),
                  "member %d took a compaction for a rollback", i);
        rb_assert(rb_run_has(i, "verified:"), "member %d was not verified", i);
    }
    fprintf(stderr, "rollback: %s: compacted at %lld, %lld, %lld ms; all killed at %lld ms\n",
            rb_test, (long long)at[0], (long long)at[1], (long long)at[2], (long long)killed);

    int64_t at2[PROCS_MAX] = { 0 };
    bool again = rb_wait_compacted(7u, 3, true, t0, at2, &first);
    rb_assert(again, "no member compacted a second time in 200 s");
    procs_kill(rb_pc, first);
    procs_crash(rb_h, "kill9 the first member to compact again");
    int64_t killed2 = procs_now_ms() - t0;
    rb_start(first);
    rb_assert(procs_wait_state(rb_pc, first, STATE_READY, RB_READY_MS),
              "member %d not ready after its restart", first);
    nem_load_stop(rb_load);
    rb_load = NULL;
    rb_assert(!procs_log_has(rb_pc, first, "rolled back"),
              "member %d took its second compaction for a rollback", first);
    rb_assert(rb_run_has(first, "verified:"), "member %d was not verified", first);
    rb_ready();
    rb_fetch_all(100, 3, 5);
    rb_check("end");
    fprintf(stderr, "rollback: %s: member %d compacted again at %lld ms, killed at %lld ms; "
            "%lld ms in all\n", rb_test, first, (long long)at2[first], (long long)killed2,
            (long long)(procs_now_ms() - t0));
}

/* ---- 4. one restored backup -------------------------------------------- */

/* Member 2's directory copied (stopped for the copy: a crash-consistent
 * copy), more fetches, member 2 killed and its copy put back, restarted
 * alone: it is told it was rolled back and becomes ready once it
 * recovered from members 0 and 1, which were not told anything. Then
 * member 0 stops, so every quorum needs member 2, and what {1, 2} hand out
 * lies above everything before. With restart0, member 0 then starts
 * again: its recovery needs member 2's snapshot (N-Q+1 = 2 others). */
static void rb_single(const char *test, bool restart0)
{
    rb_up(test, 3);
    int64_t t0 = procs_now_ms();
    rb_fetch_all(0, 5, 5);
    rb_backup_paused(2, "m2");
    rb_fetch_all(10, 10, 5);
    procs_kill(rb_pc, 2);
    procs_crash(rb_h, "kill9 2, its backup put back");
    rb_assert(procs_restore(rb_pc, 2, "m2") == 0, "restore");
    rb_start(2);
    rb_assert(rb_wait_run_has(2, RB_ROLLED, 10000),
              "member 2 (restored) was not told it was rolled back");
    rb_ready();
    rb_assert(rb_run_has(2, "ready: recovered"), "member 2 did not recover");
    rb_assert(!procs_log_has(rb_pc, 0, "rolled back") && !procs_log_has(rb_pc, 1, "rolled back"),
              "a member that was not restored was taken for a rolled-back one");
    rb_fetch_all(20, 3, 5);
    rb_check("after the restore");
    rb_assert(procs_stop(rb_pc, 0, 10000) == 0, "stop 0");
    procs_crash(rb_h, "stop 0: every quorum needs 2");
    rb_fetch(2, 30, 10, 10, 5000, true);
    rb_fetch(1, 31, 10, 10, 5000, true);
    rb_check("member 0 down");
    if (restart0) {
        procs_crash(rb_h, "start 0");
        rb_start(0);
        rb_ready();
        rb_fetch_all(40, 3, 5);
        rb_check("end");
    }
    fprintf(stderr, "rollback: %s: %lld ms\n", rb_test, (long long)(procs_now_ms() - t0));
}

Test(rollback, restored_backup_single_member, .timeout = 120, .fini = rb_fini)
{
    rb_single("restored_backup_single_member", false);
}

/* The same, and then member 0 starts again: today it waits for ever, since
 * member 2, recovered from its rolled-back verdict, never says it has
 * state. */
Test(rollback, restart_after_a_restored_member_recovered, .timeout = 120, .fini = rb_fini)
{
    rb_test = "restart_after_a_restored_member_recovered";
    rb_single(rb_test, true);
}

/* ---- the attack with VM snapshots (bug 2) ------------------------------ */

/* As restored_backups_attack_five_members, but B's and D's copies are VM
 * snapshots within their incarnations (no restart between the copy and
 * the restore), and their own peer links to A and E are slow (400 ms)
 * for the first 1.5 s after they come back, while A's and E's links to
 * them are not: A and E, recovering, hear B's and D's new incarnations in
 * the answers to their own reads before B's and D's reads reach them. A and E recorded B and D
 * at positions beyond the snapshots; B and D must be told they were
 * rolled back, and with C down nothing may overlap. (Before the fix named
 * at the top, A and E answered "nothing recorded before", B and D were
 * verified, and A, B, D, E served the round of {B, C, D} again.) */
Test(rollback, vm_snapshots_attack_five_members, .timeout = 180, .fini = rb_fini)
{
    enum { A, B, C, D, E };
    rb_test = "vm_snapshots_attack_five_members";
    rb_up_net(rb_test, 5, true);
    rb_fetch_all(0, 4, 5);
    rb_backup_paused(B, "B");
    rb_backup_paused(D, "D");
    rb_fetch_all(10, 6, 5);   /* A and E record B's and D's later positions */
    rb_assert(procs_pause_wait(rb_pc, A, 5000) && procs_pause_wait(rb_pc, E, 5000), "pause A, E");
    int during = rb_fetch(B, 20, 40, 10, 5000, true);
    rb_kill_all();
    procs_crash(rb_h, "kill9 all; B, D snapshots put back; C stays down");
    rb_assert(procs_restore(rb_pc, B, "B") == 0 && procs_restore(rb_pc, D, "D") == 0, "restore");
    char why[512] = "";
    static const int slow[][2] = { { B, A }, { B, E }, { D, A }, { D, E } };
    for (size_t k = 0; k < sizeof slow / sizeof slow[0]; k++)
        rb_assert(nem_net_delay_link(rb_net, slow[k][0], slow[k][1], 400, why, sizeof why) == 0,
                  "%s", why);
    rb_start(A);
    rb_start(E);
    procs_sleep_ms(3 * RB_R);   /* A and E read (and probe B and D) every R */
    rb_start(B);
    rb_start(D);
    /* A and E reach B and D at once and read from them every R; B's and
     * D's links to A and E come up only after a few slow round trips (and
     * over R a read of theirs never completes): let A and E hear them
     * first, then make those links fast again. */
    procs_sleep_ms(1500);
    for (size_t k = 0; k < sizeof slow / sizeof slow[0]; k++)
        rb_assert(nem_net_delay_link(rb_net, slow[k][0], slow[k][1], 0, why, sizeof why) == 0,
                  "%s", why);
    int tried = 0, served = rb_fetch_with_c_down(&tried);
    fprintf(stderr, "rollback: %s: %d fetches on {B, C, D} during the pause; with C down %d of %d "
            "served; told rolled back: B %d, D %d\n", rb_test, during, served, tried,
            rb_run_has(B, RB_ROLLED), rb_run_has(D, RB_ROLLED));
    rb_check("after the restore, C down");
    rb_assert(rb_run_has(B, RB_ROLLED) && rb_run_has(D, RB_ROLLED),
              "B and D were not both told they were rolled back");
}
