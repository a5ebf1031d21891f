/* tests/test_admin.c — `seqd advance` and `seqd list` (DESIGN.md §1, §5)
 * against real seqd processes (tests/procs.h). Slots 35 and 36 are this
 * suite's.
 *
 * advance: clients fetch the sequence all along while `seqd advance`
 * raises its floor; every fetch is checked by the history checker (no ID
 * twice, per-client order, real-time order), and every fetch that started
 * after advance returned must be at or above the floor — also after every
 * member was killed and restarted. list: 100,000 sequences, listed whole
 * and by prefix, with every member up and with one down (a quorum is two),
 * and refused when only one answers.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include <event2/event.h>

#include "../client/client_async.h"
#include "procs.h"

#define AD_R 200u
#define AD_READY_MS 20000

static procs_cluster *ad_pc;

static void ad_fini(void)
{
    procs_cluster_free(ad_pc);
    ad_pc = NULL;
}

static void ad_start(int slot, const char *const *extra)
{
    char why[8192];
    ad_pc = procs_cluster_new(3, slot, AD_R, extra, why, sizeof why);
    cr_assert(ad_pc, "%s", why);
    cr_assert_eq(procs_start_all(ad_pc), 0);
    cr_assert(procs_wait_ready(ad_pc, AD_READY_MS, why, sizeof why), "%s", why);
}

/* ---- advance under concurrent fetches ----------------------------------- */

#define AD_CLIENTS 4
#define AD_FLOOR 1000000000ull

typedef struct ad_worker {
    history *h;
    uint32_t id;
    atomic_bool *stop;
    uint64_t ok;
} ad_worker;

static void *ad_fetch_loop(void *arg)
{
    ad_worker *w = arg;
    char err[512];
    client *c = client_new(ad_pc->servers, err, sizeof err);
    cr_assert(c, "%s", err);
    while (!atomic_load(w->stop)) {
        uint64_t first;
        if (procs_fetch(w->h, c, w->id, "adv", 1 + w->id, 2000, &first, err, sizeof err) ==
            CLIENT_OK)
            w->ok++;
    }
    client_free(c);
    return NULL;
}

/* Every ok fetch invoked after `after_us` got IDs >= floor; returns how
 * many there were, or fails the test. */
static size_t ad_check_floor(const history *h, int64_t after_us, uint64_t floor)
{
    size_t later = 0;
    for (size_t i = 0; i < history_nops(h); i++) {
        const history_op *op = history_op_at(h, i);
        if (op->outcome != HISTORY_OK || op->invoke_us <= after_us)
            continue;
        cr_assert_geq(op->first, floor,
                      "a fetch invoked %lld us after advance returned got %llu, below the floor %llu",
                      (long long)(op->invoke_us - after_us), (unsigned long long)op->first,
                      (unsigned long long)floor);
        later++;
    }
    return later;
}

static uint64_t ad_parse_next(const procs_result *r, const char *name)
{
    char want[64];
    unsigned long long next = 0;
    snprintf(want, sizeof want, "%s %%llu", name);
    cr_assert_eq(sscanf(r->out, want, &next), 1, "advance printed '%s'", r->out);
    return next;
}

Test(admin, advance_under_concurrent_fetches, .timeout = 120, .fini = ad_fini)
{
    ad_start(35, NULL);
    char env_servers[PROCS_MAX * 32 + 32];
    snprintf(env_servers, sizeof env_servers, "SEQD_SERVERS=%s", ad_pc->servers);
    const char *env[] = {env_servers, NULL};

    history *h = history_new();
    atomic_bool stop = false;
    ad_worker w[AD_CLIENTS];
    pthread_t t[AD_CLIENTS];
    for (uint32_t i = 0; i < AD_CLIENTS; i++) {
        w[i] = (ad_worker){.h = h, .id = i, .stop = &stop};
        pthread_create(&t[i], NULL, ad_fetch_loop, &w[i]);
    }
    procs_sleep_ms(300);
    procs_result r;
    cr_assert_eq(procs_run(&r, 10000, env, "advance", "adv", "1000000000", NULL), 0,
                 "advance: %s%s", r.out, r.err);
    int64_t returned = procs_now_us();
    uint64_t next = ad_parse_next(&r, "adv");
    cr_assert_geq(next, AD_FLOOR);
    procs_sleep_ms(400);

    /* Lower than where it is: exit 0, nothing lowered. */
    cr_assert_eq(procs_run(&r, 10000, env, "advance", "adv", "5", NULL), 0, "%s", r.err);
    cr_assert_geq(ad_parse_next(&r, "adv"), AD_FLOOR);
    procs_sleep_ms(200);

    /* The floor is on a quorum's disks: every member killed and restarted. */
    for (int i = 0; i < 3; i++)
        procs_kill(ad_pc, i);
    procs_crash(h, "kill9 all");
    cr_assert_eq(procs_start_all(ad_pc), 0);
    char why[8192];
    cr_assert(procs_wait_ready(ad_pc, AD_READY_MS, why, sizeof why), "%s", why);
    procs_sleep_ms(300);
    atomic_store(&stop, true);
    for (int i = 0; i < AD_CLIENTS; i++)
        pthread_join(t[i], NULL);

    history_report rep;
    cr_assert(procs_history_check(h, &rep, why, sizeof why), "%s", why);
    size_t later = ad_check_floor(h, returned, AD_FLOOR);
    cr_assert_gt(later, 10, "only %zu fetches after advance returned", later);
    size_t before = 0;
    for (size_t i = 0; i < history_nops(h); i++)
        before += history_op_at(h, i)->outcome == HISTORY_OK &&
                  history_op_at(h, i)->complete_us < returned;
    cr_assert_gt(before, 10, "only %zu fetches before advance returned", before);
    history_free(h);

    /* Usage errors are refused before connecting (exit 2). */
    cr_assert_eq(procs_run(&r, 5000, env, "advance", "bad name", "3", NULL), 2);
    cr_assert_eq(procs_run(&r, 5000, env, "advance", "adv", "0", NULL), 2);
    cr_assert_eq(procs_run(&r, 5000, env, "advance", "adv", "18446744073709551616", NULL), 2);
    cr_assert_eq(procs_run(&r, 5000, env, "advance", "adv", NULL), 2);
    /* The top of the range: NEXT is then 2^64-1 and a fetch is exhausted. */
    cr_assert_eq(procs_run(&r, 10000, env, "advance", "top", "18446744073709551615", NULL), 0,
                 "%s", r.err);
    cr_assert_eq(ad_parse_next(&r, "top"), UINT64_MAX);
    cr_assert_eq(procs_run(&r, 10000, env, "fetch", "top", NULL), 1);
    cr_assert(strstr(r.err, "exhausted"), "%s", r.err);

    /* No quorum: exit 1 with a reason. */
    procs_kill(ad_pc, 1);
    procs_kill(ad_pc, 2);
    cr_assert_eq(procs_run(&r, 10000, env, "advance", "--timeout", "1500", "adv", "2000000000",
                           NULL), 1);
    cr_assert(strlen(r.err) > 0);
}

/* ---- list ------------------------------------------------------------------ */

#define LS_NAMES 100000
#define LS_INFLIGHT 256

typedef struct ls_create ls_create;
struct ls_create {
    aclient *ac;
    struct event_base *base;
    int next, done, failed, inflight;
    char err[512];
};

static void ls_name(int i, char *buf, size_t len) { snprintf(buf, len, "n%06d", i); }

/* Each creation's name and the NEXT it leaves: 2, unless an attempt's
 * reply was lost and the client asked again (under a sanitizer's
 * slowness), which burns the first range — allowed, and then list must
 * show the later NEXT. */
typedef struct ls_op {
    struct ls_create *lc;
    int i;
} ls_op;
static ls_op ls_ops[LS_NAMES];
static uint64_t ls_next[LS_NAMES];

static void ls_got(void *arg, int rc, uint64_t first, const char *err);

static void ls_issue(ls_create *lc)
{
    while (lc->inflight < LS_INFLIGHT && lc->next < LS_NAMES) {
        char name[16];
        ls_name(lc->next++, name, sizeof name);
        char err[256];
        ls_ops[lc->next - 1] = (ls_op){lc, lc->next - 1};
        cr_assert_eq(aclient_fetch(lc->ac, name, 1, 10000, ls_got, &ls_ops[lc->next - 1], err,
                                   sizeof err), 0, "%s", err);
        lc->inflight++;
    }
    if (lc->done == LS_NAMES)
        event_base_loopbreak(lc->base);
}

static void ls_got(void *arg, int rc, uint64_t first, const char *err)
{
    ls_op *op = arg;
    ls_create *lc = op->lc;
    lc->inflight--;
    lc->done++;
    ls_next[op->i] = first + 1;
    if (rc != CLIENT_OK || first < 1) {
        lc->failed++;
        snprintf(lc->err, sizeof lc->err, "rc %d first %llu: %s", rc, (unsigned long long)first,
                 err ? err : "");
    }
    ls_issue(lc);
}

/* Runs `seqd list ARGS` with its output in a file; returns the exit code. */
static int ls_run(const char *args, const char *out)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "SEQD_SERVERS=%s '%s' list %s >'%s' 2>'%s.err'", ad_pc->servers,
             procs_bin(), args, out, out);
    int rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

/* Every line "nXXXXXX NEXT", sorted, for names lo..hi-1 (NEXT as the
 * creation left it); fails otherwise. */
static void ls_check(const char *out, int lo, int hi)
{
    FILE *f = fopen(out, "r");
    cr_assert(f);
    char line[256];
    int i = lo;
    while (fgets(line, sizeof line, f)) {
        char want[64];
        ls_name(i, want, sizeof want);
        snprintf(want + strlen(want), sizeof want - strlen(want), " %llu\n",
                 (unsigned long long)ls_next[i]);
        cr_assert_str_eq(line, want, "line %d of %s", i - lo + 1, out);
        i++;
    }
    fclose(f);
    cr_assert_eq(i, hi, "%d lines, want %d", i - lo, hi - lo);
}

Test(admin, list_100k_names, .timeout = 180, .fini = ad_fini)
{
    static const char *const extra[] = {"--fsync", "never", NULL};
    ad_start(36, extra);
    ls_create lc = {.base = event_base_new()};
    char err[512];
    lc.ac = aclient_new(lc.base, ad_pc->servers, err, sizeof err);
    cr_assert(lc.ac, "%s", err);
    ls_issue(&lc);
    event_base_dispatch(lc.base);
    aclient_free(lc.ac);
    event_base_free(lc.base);
    cr_assert_eq(lc.failed, 0, "%d of %d creations failed, last: %s", lc.failed, LS_NAMES, lc.err);

    char out[PROCS_PATH + 32];
    snprintf(out, sizeof out, "%s/list.txt", ad_pc->root);
    int64_t t0 = procs_now_ms();
    cr_assert_eq(ls_run("", out), 0);
    cr_log_info("list of %d names: %lld ms", LS_NAMES, (long long)(procs_now_ms() - t0));
    ls_check(out, 0, LS_NAMES);
    /* n0123xx: 100 names; n01234x: 10. */
    cr_assert_eq(ls_run("--prefix n0123", out), 0);
    ls_check(out, 12300, 12400);
    cr_assert_eq(ls_run("--prefix n01234", out), 0);
    ls_check(out, 12340, 12350);
    cr_assert_eq(ls_run("--prefix nothing", out), 0);
    ls_check(out, 0, 0);
    cr_assert_eq(ls_run("--prefix 'bad prefix'", out), 2);

    /* A quorum is two of three: the same answer with one member down. */
    procs_kill(ad_pc, 0);
    cr_assert_eq(ls_run("--prefix n0999", out), 0);
    ls_check(out, 99900, 100000);
    procs_kill(ad_pc, 1);
    cr_assert_eq(ls_run("--timeout 1000", out), 1, "one member is not a read quorum");
}
