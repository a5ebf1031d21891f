/* tests/test_bootstrap.c — a cluster is born once, by `seqd init`
 * (DESIGN.md §3), with real seqd processes (tests/procs.h), every fetch
 * recorded and held to the ID contract.
 *
 * The regression test of the bring-up attack is written in the form init
 * leaves possible: before init, a wiped member plus one that had never
 * started answered each other "no state" and founded a second cluster that
 * handed out IDs 1.. again; now C is killed right after init, IDs are
 * handed out by A and B, A's disk is replaced, B is paused, and A and C
 * start together: neither may become ready until B is back (A lost its
 * data; C has state but A does not count for it), and no ID is handed out
 * twice afterwards. Slots 23..27 and 31 of tests/procs.h are this suite's.
 */
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../client/client_admin.h"
#include "../storage/datadir.h"
#include "procs.h"

#define BS_R 200u
#define BS_READY_MS 20000

static procs_cluster *bs_pc;

static void bs_fini(void)
{
    procs_cluster_free(bs_pc);
    bs_pc = NULL;
}

static void bs_failf(const char *expr, const char *file, int line, const char *fmt, ...)
{
    static char msg[1024], logs[24576];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    logs[0] = '\0';
    if (bs_pc)
        procs_logs(bs_pc, 12, logs, sizeof logs);
    cr_assert_fail("%s:%d: %s: %s\n%s", file, line, expr, msg, logs);
}

#define bs_assert(cond, ...)                                                   \
    do {                                                                       \
        if (!(cond))                                                           \
            bs_failf(#cond, __FILE__, __LINE__, __VA_ARGS__);                  \
    } while (0)

static procs_cluster *bs_new(int n, int slot)
{
    char why[256] = "";
    bs_pc = procs_cluster_new(n, slot, BS_R, NULL, why, sizeof why);
    cr_assert_not_null(bs_pc, "%s", why);
    bs_pc->no_auto_init = true;   /* each test says when init runs */
    return bs_pc;
}

static void bs_ready(void)
{
    static char why[24576];
    bs_assert(procs_wait_ready(bs_pc, BS_READY_MS, why, sizeof why), "%s", why);
}

static int bs_init(procs_result *r)
{
    return procs_run(r, 30000, NULL, "init", "--servers", bs_pc->servers, "--timeout", "2000",
                     (char *)NULL);
}

/* Member i says ready (1), something else (0) or is down (-1). */
static int bs_ready_now(int i)
{
    struct seqd_status st;
    if (procs_status(bs_pc, i, 500, &st) != CLIENT_OK)
        return -1;
    return st.state == STATE_READY;
}

/* Waits until members [0, n) answer status (recovering is fine): started
 * processes take a moment to listen, and init needs every one. */
static void bs_listening(int n)
{
    for (int i = 0; i < n; i++) {
        int64_t end = procs_now_ms() + 10000;
        while (bs_ready_now(i) < 0 && procs_now_ms() < end)
            procs_sleep_ms(20);
        bs_assert(bs_ready_now(i) >= 0, "member %d does not answer", i);
    }
}

static uint64_t bs_fetch(history *h, int member, uint32_t count)
{
    char err[1024] = "";
    uint64_t first = 0;
    client *c = client_new(bs_pc->m[member].addr, err, sizeof err);
    cr_assert_not_null(c, "%s", err);
    int rc = procs_fetch(h, c, (uint32_t)member, "boot", count, 5000, &first, err, sizeof err);
    client_free(c);
    bs_assert(rc == CLIENT_OK, "fetch through member %d: %s", member, err);
    return first;
}

static void bs_check(const history *h)
{
    static char why[4096];
    history_report r;
    bs_assert(procs_history_check(h, &r, why, sizeof why), "%s", why);
}

/* Without init nobody serves, however long they wait: no member founds a
 * cluster by itself. */
Test(bootstrap, no_member_founds_a_cluster, .timeout = 60, .fini = bs_fini)
{
    procs_cluster *pc = bs_new(3, 23);
    bs_assert(procs_start_all(pc) == 0, "start");
    procs_sleep_ms(8 * BS_R);
    for (int i = 0; i < 3; i++)
        bs_assert(bs_ready_now(i) == 0, "member %d is ready (or down) without init", i);
    procs_result r;
    bs_init(&r);
    bs_assert(r.status == 0 && strstr(r.out, "initialized: cluster"), "init exited %d: %s%s",
              r.status, r.out, r.err);
    bs_ready();
    bs_init(&r);
    bs_assert(r.status == 0 && strstr(r.out, "already initialized"), "second init: %d %s%s",
              r.status, r.out, r.err);
    history *h = history_new();
    for (int i = 0; i < 3; i++)
        bs_fetch(h, i, 10);
    bs_check(h);
    history_free(h);
}

/* init refuses, naming the member and the reason: one down; a set that is
 * not the members' own. */
Test(bootstrap, init_refusals, .timeout = 60, .fini = bs_fini)
{
    procs_cluster *pc = bs_new(3, 24);
    bs_assert(procs_start(pc, 0, NULL) == 0 && procs_start(pc, 1, NULL) == 0, "start");
    bs_listening(2);
    procs_result r;
    bs_init(&r);
    bs_assert(r.status == 1 && strstr(r.err, pc->m[2].addr) && strstr(r.err, "down"),
              "init with member 2 down exited %d: %s", r.status, r.err);
    bs_assert(procs_start(pc, 2, NULL) == 0, "start 2");
    bs_listening(3);
    char two[80];
    snprintf(two, sizeof two, "%s,%s", pc->m[0].addr, pc->m[1].addr);
    procs_run(&r, 30000, NULL, "init", "--servers", two, (char *)NULL);
    bs_assert(r.status == 1 && strstr(r.err, "member set differs"),
              "init naming 2 of 3 exited %d: %s", r.status, r.err);
    for (int i = 0; i < 3; i++)
        bs_assert(bs_ready_now(i) == 0, "member %d ready after refused inits", i);
    bs_init(&r);
    bs_assert(r.status == 0, "init: %s", r.err);
    bs_ready();
}

/* An init interrupted between COMMITs: the members that missed COMMIT learn
 * it from an initialized peer by themselves; init run again says so. */
Test(bootstrap, interrupted_init_finishes, .timeout = 60, .fini = bs_fini)
{
    procs_cluster *pc = bs_new(3, 25);
    bs_assert(procs_start_all(pc) == 0, "start");
    bs_listening(3);
    char err[512], joined[256];
    char *list[3] = { pc->m[0].addr, pc->m[1].addr, pc->m[2].addr };
    uint64_t digest = datadir_set_digest(list, 3, joined, sizeof joined);
    client *c = client_new(joined, err, sizeof err);
    cr_assert_not_null(c, "%s", err);
    static uint8_t scratch[SEQD_MAX_FRAME];
    seqd_msg req = { .type = MSG_INIT, .reqid = 1 }, rep;
    req.u.init.cid.b[0] = 0x11;
    req.u.init.cid.b[15] = 0x99;
    req.u.init.set_digest = digest;
    /* a member prepares only once it has heard every other one say it is
     * not initialized: probe until all three say "empty" */
    req.u.init.op = INIT_PROBE;
    for (int i = 0; i < 3; i++) {
        int64_t end = procs_now_ms() + 10000;
        do {
            bs_assert(client_raw(c, i, &req, &rep, scratch, 2000, err, sizeof err) == CLIENT_OK,
                      "%s", err);
        } while (rep.u.init_reply.state == INIT_WAITING && procs_now_ms() < end &&
                 (procs_sleep_ms(50), true));
        bs_assert(rep.type == MSG_INIT_REPLY && rep.u.init_reply.state == INIT_EMPTY,
                  "member %d probed as %d", i, rep.u.init_reply.state);
    }
    req.u.init.op = INIT_PREPARE;
    for (int i = 0; i < 3; i++) {
        bs_assert(client_raw(c, i, &req, &rep, scratch, 2000, err, sizeof err) == CLIENT_OK, "%s", err);
        bs_assert(rep.type == MSG_INIT_REPLY && rep.u.init_reply.state == INIT_PREPARED,
                  "PREPARE to %d answered %d", i, rep.type);
    }
    /* a prepared member stays prepared for its id: a second PREPARE of
     * another id is answered with the first */
    seqd_msg other = req;
    other.u.init.cid.b[0] = 0x22;
    bs_assert(client_raw(c, 1, &other, &rep, scratch, 2000, err, sizeof err) == CLIENT_OK, "%s", err);
    bs_assert(rep.u.init_reply.state == INIT_PREPARED && seqd_cid_eq(&rep.u.init_reply.cid, &req.u.init.cid),
              "prepared is not sticky");
    req.u.init.op = INIT_COMMIT;   /* to member 0 only: init "killed" after it */
    bs_assert(client_raw(c, 0, &req, &rep, scratch, 2000, err, sizeof err) == CLIENT_OK, "%s", err);
    bs_assert(rep.type == MSG_INIT_REPLY && rep.u.init_reply.state == INIT_INITIALIZED,
              "COMMIT answered %d", rep.type);
    client_free(c);
    bs_ready();   /* 1 and 2 learned COMMIT from 0 */
    procs_result r;
    bs_init(&r);
    bs_assert(r.status == 0 && strstr(r.out, "already initialized") &&
              strstr(r.out, "11000000000000000000000000000099"),
              "init after the interrupted one: %d %s%s", r.status, r.out, r.err);
    history *h = history_new();
    for (int i = 0; i < 3; i++)
        bs_fetch(h, i, 5);
    bs_check(h);
    history_free(h);
}

static void bs_cid_of(const char *out, struct seqd_cid *cid)
{
    const char *p = strstr(out, "cluster ");
    cr_assert_not_null(p, "no cluster id in '%s'", out);
    p += 8;
    for (int i = 0; i < SEQD_CID_LEN; i++) {
        unsigned v;
        cr_assert(sscanf(p + 2 * i, "%2x", &v) == 1);
        cid->b[i] = (uint8_t)v;
    }
}

/* Found by review: a PREPARE of the real cluster's id reaching a member
 * that lost its data, during its 2R wait, made it "prepared"; meeting an
 * initialized peer then passed for COMMIT and it came back with an empty
 * table. A member must refuse PREPARE while its cluster exists. */
Test(bootstrap, wiped_member_refuses_prepare_of_its_cluster, .timeout = 60, .fini = bs_fini)
{
    procs_cluster *pc = bs_new(3, 31);
    bs_assert(procs_start_all(pc) == 0, "start");
    bs_listening(3);
    procs_result r;
    bs_init(&r);
    bs_assert(r.status == 0, "init: %s", r.err);
    struct seqd_cid x;
    bs_cid_of(r.out, &x);
    bs_ready();
    history *h = history_new();
    bs_fetch(h, 0, 100);
    procs_stop(pc, 2, 5000);
    procs_crash(h, "member 2 stopped and wiped");
    bs_assert(procs_wipe(pc, 2) == 0, "wipe");
    bs_assert(procs_start(pc, 2, NULL) == 0, "restart 2");
    char err[512], joined[256];
    char *list[3] = { pc->m[0].addr, pc->m[1].addr, pc->m[2].addr };
    seqd_msg req = { .type = MSG_INIT, .reqid = 1 }, rep;
    req.u.init.op = INIT_PREPARE;
    req.u.init.cid = x;
    req.u.init.set_digest = datadir_set_digest(list, 3, joined, sizeof joined);
    static uint8_t scratch[SEQD_MAX_FRAME];
    int asked = 0;
    for (int64_t end = procs_now_ms() + 3 * BS_R; procs_now_ms() < end;) {
        client *c = client_new(pc->m[2].addr, err, sizeof err);
        if (client_raw(c, 0, &req, &rep, scratch, 500, err, sizeof err) == CLIENT_OK) {
            asked++;
            bs_assert(!(rep.type == MSG_INIT_REPLY && rep.u.init_reply.state == INIT_PREPARED),
                      "a wiped member took PREPARE of its own cluster's id");
        }
        client_free(c);
        procs_sleep_ms(20);
    }
    bs_assert(asked > 0, "member 2 never answered");
    bs_ready();
    for (int i = 0; i < 3; i++) {
        uint64_t f = bs_fetch(h, i, 5);
        bs_assert(f > 100, "member %d handed out %llu again", i, (unsigned long long)f);
    }
    bs_check(h);
    history_free(h);
}

/* The bring-up attack of issue 10 in the form init leaves possible. */
Test(bootstrap, wiped_member_and_late_member_found_no_second_cluster, .timeout = 90,
     .fini = bs_fini)
{
    procs_cluster *pc = bs_new(3, 26);
    bs_assert(procs_start_all(pc) == 0, "start");
    bs_listening(3);
    procs_result r;
    bs_init(&r);
    bs_assert(r.status == 0, "init: %s", r.err);
    procs_kill(pc, 2);   /* C, right after init */
    history *h = history_new();
    bs_assert(procs_wait_state(pc, 0, STATE_READY, BS_READY_MS) &&
                  procs_wait_state(pc, 1, STATE_READY, BS_READY_MS), "A and B ready");
    for (int k = 0; k < 10; k++)
        bs_fetch(h, k % 2, 5);   /* IDs 1..50 */
    procs_kill(pc, 0);
    procs_crash(h, "A killed");
    bs_assert(procs_wipe(pc, 0) == 0, "wipe A");
    procs_pause(pc, 1);
    bs_assert(procs_start(pc, 0, NULL) == 0 && procs_start(pc, 2, NULL) == 0, "A and C start");
    procs_sleep_ms(10 * BS_R);
    for (int i = 0; i < 3; i += 2)
        bs_assert(bs_ready_now(i) == 0, "member %d is ready while B, the only other member with "
                                        "the values, is paused", i);
    char err[512];
    uint64_t first = 0;
    client *c = client_new(pc->servers, err, sizeof err);
    cr_assert_not_null(c);
    int rc = procs_fetch(h, c, 9, "boot", 1, 1500, &first, err, sizeof err);
    client_free(c);
    bs_assert(rc != CLIENT_OK, "a fetch succeeded (ID %llu) with B paused", (unsigned long long)first);
    procs_resume(pc, 1);
    bs_ready();
    for (int k = 0; k < 6; k++) {
        uint64_t f = bs_fetch(h, k % 3, 5);
        bs_assert(f > 50, "member %d handed out %llu again", k % 3, (unsigned long long)f);
    }
    bs_check(h);
    history_free(h);
}

/* Members started in any order with gaps of up to a second become ready
 * after init (which waits for the last one, as an operator would rerun it). */
Test(bootstrap, staggered_bring_up, .timeout = 120, .fini = bs_fini)
{
    static const int orders[2][5] = { { 2, 0, 1, -1, -1 }, { 4, 1, 3, 0, 2 } };
    for (int t = 0; t < 2; t++) {
        int n = t == 0 ? 3 : 5;
        procs_cluster *pc = bs_new(n, 27);
        for (int k = 0; k < n; k++) {
            bs_assert(procs_start(pc, orders[t][k], NULL) == 0, "start %d", orders[t][k]);
            procs_sleep_ms(k == 1 ? 1000 : 250);
        }
        procs_result r;
        for (int tries = 0; tries < 20 && bs_init(&r) != 0; tries++)
            procs_sleep_ms(200);
        bs_assert(r.status == 0, "init: %s", r.err);
        bs_ready();
        history *h = history_new();
        for (int i = 0; i < n; i++)
            bs_fetch(h, i, 3);
        bs_check(h);
        history_free(h);
        bs_fini();
    }
}

/* A rolling restart while another member is down for maintenance (DESIGN.md
 * §3, "Clean stop"): member 2 is down; member 1 stops cleanly (SIGTERM),
 * its peers record where, and it restarts with no wait and no recovery read
 * on member 0's confirmation, although only one other member is up. The
 * same restart after a kill -9 is not confirmed: member 1 then waits for
 * N-Q+1 = 2 others with state (safety over availability) until member 2 is
 * back. Every ID is checked. */
Test(bootstrap, clean_stop_restarts_with_another_member_down, .timeout = 90, .fini = bs_fini)
{
    procs_cluster *pc = bs_new(3, 32);
    bs_assert(procs_start_all(pc) == 0, "start");
    bs_listening(3);
    procs_result r;
    bs_assert(bs_init(&r) == 0, "init: %s", r.err);
    bs_ready();
    history *h = history_new();
    for (int k = 0; k < 20; k++)
        bs_fetch(h, k % 3, 7);
    procs_kill(pc, 2);
    for (int k = 0; k < 10; k++)
        bs_fetch(h, k % 2, 5);
    bs_assert(procs_stop(pc, 1, 5000) == 0, "clean stop of member 1");
    bs_assert(procs_log_has(pc, 1, "stopped cleanly at incarnation"), "member 1 said where it stopped");
    bs_assert(procs_log_has(pc, 0, "stopped cleanly (incarnation"), "member 0 recorded the stop");
    bs_assert(procs_start(pc, 1, NULL) == 0, "restart member 1");
    bs_assert(procs_wait_state(pc, 1, STATE_READY, 10000),
              "member 1 stopped cleanly: it must be ready with member 2 down");
    bs_assert(procs_log_has(pc, 1, "clean stop confirmed"), "the clean path was taken");
    for (int k = 0; k < 10; k++)
        bs_fetch(h, k % 2, 5);
    /* The same without a clean stop: no confirmation, so it waits. */
    procs_kill(pc, 1);
    bs_assert(procs_start(pc, 1, NULL) == 0, "restart member 1 after kill -9");
    procs_sleep_ms(3 * BS_R * 2);
    bs_assert(bs_ready_now(1) == 0, "after kill -9 with member 2 down, member 1 must wait");
    bs_assert(procs_start(pc, 2, NULL) == 0, "start member 2");
    bs_ready();
    for (int k = 0; k < 12; k++)
        bs_fetch(h, k % 3, 3);
    bs_check(h);
    history_free(h);
}
