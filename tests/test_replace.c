/* tests/test_replace.c — replacing a dead member at a new address
 * (DESIGN.md §6) with real seqd processes (tests/procs.h). Slots 37 to 40
 * are this suite's.
 *
 * The cluster is members 0..2 plus a spare host (index 3, not in the set).
 * Clients fetch all along, through every address (the old and the new
 * host's too), and every ID they got is checked by the history checker: no
 * ID twice, increasing per client, real-time order.
 *
 * replace.under_load: member 2 is killed; the spare starts with --replaces
 * and takes its slot; every member reports epoch 1; the old host, started
 * again with its old data and flags, exits 1 saying "replaced by"; member
 * 0, restarted with flags that still name the old host, runs with the set
 * its data directory records; member 1 loses its disk and, started with
 * flags that name the new set, learns the epoch and recovers; then member 1
 * is stopped, so that every quorum needs the new member, and fetches still
 * succeed.
 * replace.forced_while_alive: the old host is stopped (SIGSTOP), not dead:
 * its links look up, so only --force-replace replaces it; resumed, with
 * its coordinator's rounds of the old epoch in flight, it can no longer be
 * counted and exits; IDs stay unique.
 * replace.racing: two new hosts replace the same dead member at once: at
 * most one switch completes; a loser drops its records and exits 1; the
 * cluster serves throughout and the members end at one epoch.
 * replace.refusals: replacing a live member is refused (exit 1, "alive");
 * a replacement that cannot reach N-Q+1 others waits and says so; one that
 * names a host that is not a member is refused.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "procs.h"

#define RP_R 200u
#define RP_READY_MS 30000
#define RP_CLIENTS 3

static procs_cluster *rp_pc;

static void rp_fini(void)
{
    procs_cluster_free(rp_pc);
    rp_pc = NULL;
}

/* Three members and a spare host: the cluster is created with four
 * addresses, and the fourth is left out of the member set. */
static void rp_start(int slot, const char *const *extra)
{
    char why[8192];
    rp_pc = procs_cluster_new(4, slot, RP_R, extra, why, sizeof why);
    cr_assert(rp_pc, "%s", why);
    procs_set_n(rp_pc, 3);
    cr_assert_eq(procs_start_all(rp_pc), 0);
    cr_assert(procs_wait_ready(rp_pc, RP_READY_MS, why, sizeof why), "%s", why);
}

typedef struct rp_worker {
    history *h;
    uint32_t id;
    const char *servers;
    atomic_bool *stop;
    atomic_ulong ok;
} rp_worker;

static void *rp_fetch_loop(void *arg)
{
    rp_worker *w = arg;
    char err[512];
    client *c = client_new(w->servers, err, sizeof err);
    cr_assert(c, "%s", err);
    while (!atomic_load(w->stop)) {
        uint64_t first;
        if (procs_fetch(w->h, c, w->id, w->id == 0 ? "hot" : "orders", 1 + w->id, 2000, &first, err,
                        sizeof err) == CLIENT_OK)
            atomic_fetch_add(&w->ok, 1);
        procs_sleep_ms(5);
    }
    client_free(c);
    return NULL;
}

/* RP_CLIENTS fetch loops over `servers`, every fetch in one history. */
typedef struct rp_load {
    history *h;
    atomic_bool stop;
    rp_worker ws[RP_CLIENTS];
    pthread_t th[RP_CLIENTS];
    char servers[PROCS_MAX * 32 + 1];
} rp_load;

static void rp_load_start(rp_load *l, const char *servers)
{
    l->h = history_new();
    atomic_init(&l->stop, false);
    snprintf(l->servers, sizeof l->servers, "%s", servers);
    for (int k = 0; k < RP_CLIENTS; k++) {
        /* client k starts at member k */
        l->ws[k] = (rp_worker){.h = l->h, .id = (uint32_t)k, .servers = l->servers, .stop = &l->stop};
        cr_assert_eq(pthread_create(&l->th[k], NULL, rp_fetch_loop, &l->ws[k]), 0);
    }
}

/* Stops the loops and holds every ID they got to the contract. */
static void rp_load_check(rp_load *l, size_t min_ok)
{
    char why[8192];
    atomic_store(&l->stop, true);
    for (int k = 0; k < RP_CLIENTS; k++)
        pthread_join(l->th[k], NULL);
    history_report r;
    cr_assert(procs_history_check(l->h, &r, why, sizeof why), "%s", why);
    cr_assert_geq(r.ok, min_ok, "only %zu fetches succeeded", (size_t)r.ok);
    history_free(l->h);
}

static uint64_t rp_epoch(int i)
{
    struct seqd_status st;
    if (procs_status(rp_pc, i, 1000, &st) != CLIENT_OK)
        return UINT64_MAX;
    return st.epoch;
}

/* Waits until `ok` grew by `more` (fetches succeed), or fails. */
static void rp_wait_progress(rp_worker *ws, unsigned long more, const char *when)
{
    unsigned long base = 0;
    for (int k = 0; k < RP_CLIENTS; k++)
        base += atomic_load(&ws[k].ok);
    for (int64_t end = procs_now_ms() + 20000; procs_now_ms() < end; procs_sleep_ms(50)) {
        unsigned long now = 0;
        for (int k = 0; k < RP_CLIENTS; k++)
            now += atomic_load(&ws[k].ok);
        if (now >= base + more)
            return;
    }
    char logs[16384];
    procs_logs(rp_pc, 12, logs, sizeof logs);
    cr_assert_fail("no %lu fetches succeeded %s\n%s", more, when, logs);
}

Test(replace, under_load, .timeout = 180, .fini = rp_fini)
{
    rp_start(37, NULL);
    procs_member *old = &rp_pc->m[2], *spare = &rp_pc->m[3];
    char all[sizeof rp_pc->servers + 40], why[8192];
    snprintf(all, sizeof all, "%s,%s", rp_pc->servers, spare->addr);

    static rp_load load;
    rp_load_start(&load, all);
    history *h = load.h;
    rp_worker *ws = load.ws;
    rp_wait_progress(ws, 50, "before the replacement");

    /* The host of slot 2 dies for good; the spare takes its slot. */
    procs_kill(rp_pc, 2);
    procs_crash(h, "member 2 killed (its host is gone)");
    rp_wait_progress(ws, 20, "with member 2 dead");
    char replaces[64];
    snprintf(replaces, sizeof replaces, "%s", old->addr);
    snprintf(spare->peers, sizeof spare->peers, "%s,%s", rp_pc->m[0].addr, rp_pc->m[1].addr);
    const char *more[] = {"--replaces", replaces, NULL};
    cr_assert_eq(procs_start(rp_pc, 3, more), 0);
    cr_assert(procs_wait_state(rp_pc, 3, STATE_READY, RP_READY_MS), "the new member never got ready");
    for (int i = 0; i < 4; i++)
        if (i != 2)
            cr_assert_eq(rp_epoch(i), 1, "member %d is not at epoch 1", i);
    cr_assert(procs_log_has(rp_pc, 3, "switch complete"));
    rp_wait_progress(ws, 50, "after the replacement");

    /* The old host comes back with its old data and flags: it exits. */
    snprintf(old->peers, sizeof old->peers, "%s,%s", rp_pc->m[0].addr, rp_pc->m[1].addr);
    cr_assert_eq(procs_start(rp_pc, 2, NULL), 0);
    int rc = procs_reap(rp_pc, 2, 15000);
    procs_log_tail(rp_pc, 2, 5, why, sizeof why);
    cr_assert_eq(rc, 1, "the old host did not exit 1 (rc %d):\n%s", rc, why);
    cr_assert(procs_log_has(rp_pc, 2, "replaced by"), "%s", why);

    /* Member 0 restarted with its old flags (naming the old host): the
     * data directory is the truth. */
    cr_assert_eq(procs_stop(rp_pc, 0, 10000), 0);
    snprintf(rp_pc->m[0].peers, sizeof rp_pc->m[0].peers, "%s,%s", rp_pc->m[1].addr, old->addr);
    cr_assert_eq(procs_start(rp_pc, 0, NULL), 0);
    cr_assert(procs_wait_state(rp_pc, 0, STATE_READY, RP_READY_MS), "member 0 did not restart");
    cr_assert_eq(rp_epoch(0), 1);
    cr_assert(procs_log_has(rp_pc, 0, "running with the set the data directory records"));

    /* Member 1 loses its disk and starts with flags naming the new set: it
     * learns the epoch from its peers and recovers into it. */
    procs_kill(rp_pc, 1);
    procs_crash(h, "member 1 killed and wiped");
    cr_assert_eq(procs_wipe(rp_pc, 1), 0);
    cr_assert_eq(procs_start(rp_pc, 1, NULL), 0);   /* --peers: member 0 and the new host */
    cr_assert(procs_wait_state(rp_pc, 1, STATE_READY, RP_READY_MS), "wiped member 1 did not recover");
    cr_assert_eq(rp_epoch(1), 1);
    cr_assert(procs_log_has(rp_pc, 1, "recovering as a member of it"));
    rp_wait_progress(ws, 50, "after member 1 recovered from its peers");

    /* Every quorum now needs the new member: stop member 1. */
    cr_assert_eq(procs_stop(rp_pc, 1, 10000), 0);
    rp_wait_progress(ws, 50, "with member 1 stopped (quorum = member 0 + the new member)");

    rp_load_check(&load, 200);
}

Test(replace, refusals, .timeout = 120, .fini = rp_fini)
{
    rp_start(38, NULL);
    procs_member *spare = &rp_pc->m[3];
    char why[8192], replaces[64];

    /* Member 2 is alive: refused, after a few seconds of asking. */
    snprintf(replaces, sizeof replaces, "%s", rp_pc->m[2].addr);
    snprintf(spare->peers, sizeof spare->peers, "%s,%s", rp_pc->m[0].addr, rp_pc->m[1].addr);
    const char *more[] = {"--replaces", replaces, NULL};
    cr_assert_eq(procs_start(rp_pc, 3, more), 0);
    int rc = procs_reap(rp_pc, 3, 20000);
    procs_log_tail(rp_pc, 3, 5, why, sizeof why);
    cr_assert_eq(rc, 1, "rc %d:\n%s", rc, why);
    cr_assert(procs_log_has(rp_pc, 3, "is alive"), "%s", why);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(rp_epoch(i), 0, "member %d moved to another epoch", i);

    /* Member 2 dies and member 1 is down too: the switch needs both
     * others, so the new host waits, saying why, and has not started. */
    procs_kill(rp_pc, 2);
    procs_kill(rp_pc, 1);
    procs_sleep_ms(3 * RP_R);
    cr_assert_eq(procs_start(rp_pc, 3, more), 0);
    procs_sleep_ms(3000);
    cr_assert_eq(procs_reap(rp_pc, 3, 0), -2, "the new host did not wait");
    cr_assert(procs_log_has(rp_pc, 3, "waiting: 1 of the 2 other members recorded"));
    struct seqd_status st;
    cr_assert_neq(procs_status(rp_pc, 3, 500, &st), CLIENT_OK, "it serves before the switch completed");

    /* Member 1 comes back: the switch completes and the member serves. */
    cr_assert_eq(procs_start(rp_pc, 1, NULL), 0);
    cr_assert(procs_wait_state(rp_pc, 3, STATE_READY, RP_READY_MS), "the new member never got ready");
    cr_assert_eq(rp_epoch(1), 1);

    /* A host that is not a member cannot be replaced. */
    rp_pc->m[2].peers[0] = '\0';
    procs_wipe(rp_pc, 2);
    snprintf(rp_pc->m[2].peers, sizeof rp_pc->m[2].peers, "%s,%s", rp_pc->m[0].addr, rp_pc->m[1].addr);
    const char *bogus[] = {"--replaces", "127.0.0.1:1", NULL};
    cr_assert_eq(procs_start(rp_pc, 2, bogus), 0);
    rc = procs_reap(rp_pc, 2, 20000);
    procs_log_tail(rp_pc, 2, 5, why, sizeof why);
    cr_assert_eq(rc, 1, "rc %d:\n%s", rc, why);
}

Test(replace, forced_while_alive, .timeout = 180, .fini = rp_fini)
{
    rp_start(39, NULL);
    procs_member *old = &rp_pc->m[2], *spare = &rp_pc->m[3];
    char all[sizeof rp_pc->servers + 40], why[8192], replaces[64];
    snprintf(all, sizeof all, "%s,%s", rp_pc->servers, spare->addr);
    static rp_load load;
    rp_load_start(&load, all);
    history *h = load.h;
    rp_worker *ws = load.ws;
    rp_wait_progress(ws, 50, "before the pause");
    procs_pause(rp_pc, 2);
    procs_crash(h, "member 2 paused (cut off, alive)");
    snprintf(replaces, sizeof replaces, "%s", old->addr);
    snprintf(spare->peers, sizeof spare->peers, "%s,%s", rp_pc->m[0].addr, rp_pc->m[1].addr);
    const char *more[] = {"--replaces", replaces, "--force-replace", NULL};
    cr_assert_eq(procs_start(rp_pc, 3, more), 0);
    cr_assert(procs_wait_state(rp_pc, 3, STATE_READY, RP_READY_MS), "the new member never got ready");
    rp_wait_progress(ws, 50, "after the forced replacement");
    procs_resume(rp_pc, 2);
    /* Resumed, it is asked to serve: its rounds of the old epoch are refused
     * by every member that recorded the switch, it learns why and exits. */
    char err[512];
    client *oc = client_new(old->addr, err, sizeof err);
    cr_assert(oc, "%s", err);
    int rc = -2;
    for (int k = 0; k < 5 && (rc = procs_reap(rp_pc, 2, 0)) == -2; k++) {
        uint64_t first;
        int frc = procs_fetch(h, oc, 100, "orders", 1, 1000, &first, err, sizeof err);
        cr_assert_neq(frc, CLIENT_OK, "the replaced host handed out %llu", (unsigned long long)first);
    }
    client_free(oc);
    if (rc == -2)
        rc = procs_reap(rp_pc, 2, 15000);
    procs_log_tail(rp_pc, 2, 5, why, sizeof why);
    cr_assert_eq(rc, 1, "the resumed old host did not exit 1 (rc %d):\n%s", rc, why);
    cr_assert(procs_log_has(rp_pc, 2, "replaced by"), "%s", why);
    procs_crash(h, "old host exited");
    cr_assert_eq(procs_stop(rp_pc, 1, 10000), 0);   /* lean on the new member */
    rp_wait_progress(ws, 50, "with member 1 stopped");
    rp_load_check(&load, 100);
}

Test(replace, racing, .timeout = 180, .fini = rp_fini)
{
    char why[8192];
    rp_pc = procs_cluster_new(5, 40, RP_R, NULL, why, sizeof why);
    cr_assert(rp_pc, "%s", why);
    procs_set_n(rp_pc, 3);
    cr_assert_eq(procs_start_all(rp_pc), 0);
    cr_assert(procs_wait_ready(rp_pc, RP_READY_MS, why, sizeof why), "%s", why);
    char all[sizeof rp_pc->servers + 80], replaces[64];
    snprintf(all, sizeof all, "%s,%s,%s", rp_pc->servers, rp_pc->m[3].addr, rp_pc->m[4].addr);
    static rp_load load;
    rp_load_start(&load, all);
    history *h = load.h;
    rp_worker *ws = load.ws;
    rp_wait_progress(ws, 50, "before the race");
    procs_kill(rp_pc, 2);
    procs_crash(h, "member 2 killed");
    procs_sleep_ms(4 * RP_R);
    snprintf(replaces, sizeof replaces, "%s", rp_pc->m[2].addr);
    const char *more[] = {"--replaces", replaces, NULL};
    for (int k = 3; k < 5; k++) {
        snprintf(rp_pc->m[k].peers, sizeof rp_pc->m[k].peers, "%s,%s", rp_pc->m[0].addr,
                 rp_pc->m[1].addr);
        cr_assert_eq(procs_start(rp_pc, k, more), 0);
    }
    /* Each new host either completes and serves or gives up (exit 1). */
    int served = 0, gave_up = 0;
    for (int64_t end = procs_now_ms() + 40000; procs_now_ms() < end && served + gave_up < 2;
         procs_sleep_ms(100)) {
        served = gave_up = 0;
        for (int k = 3; k < 5; k++) {
            struct seqd_status st;
            if (rp_pc->m[k].pid == 0)
                gave_up++;
            else if (procs_reap(rp_pc, k, 0) >= 0)
                gave_up++;
            else if (procs_status(rp_pc, k, 300, &st) == CLIENT_OK && st.state == STATE_READY)
                served++;
        }
    }
    char logs[16384];
    procs_logs(rp_pc, 8, logs, sizeof logs);
    cr_assert_leq(served, 1, "both switches completed\n%s", logs);
    cr_assert_eq(served + gave_up, 2, "a new host neither served nor gave up\n%s", logs);
    for (int k = 3; k < 5; k++)
        if (rp_pc->m[k].pid == 0)
            cr_assert(procs_log_has(rp_pc, k, "can no longer complete") ||
                          procs_log_has(rp_pc, k, "refused") ||
                          procs_log_has(rp_pc, k, "replaced by"),
                      "a loser did not say why\n%s", logs);
    /* Members 0 and 1 end at one epoch: 1 if a switch completed, else 0
     * (the losers dropped their records). */
    uint64_t e0 = rp_epoch(0), e1 = rp_epoch(1);
    cr_assert_eq(e0, e1, "members 0 and 1 at epochs %llu and %llu\n%s", (unsigned long long)e0,
                 (unsigned long long)e1, logs);
    cr_assert_eq(e0, (uint64_t)served, "epoch %llu with %d switches completed\n%s",
                 (unsigned long long)e0, served, logs);
    rp_wait_progress(ws, 50, "after the race");
    cr_log_info("racing: %d served, %d gave up", served, gave_up);
    rp_load_check(&load, 100);
}
