/* tests/test_history.c — the history checker on hand-made histories, its
 * text form, and a large simulated one (suite `history`). */
#include <criterion/criterion.h>

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "history.h"

/* Short form for the hand-made histories: an ok op with the normal range. */
static void th_ok(history *h, uint32_t client, const char *seq, uint64_t count,
                  int64_t inv, int64_t comp, uint64_t first)
{
    cr_assert_eq(history_add_op(h, client, seq, count, inv, comp, HISTORY_OK, first, first + count - 1), 0);
}

static void th_end(history *h, uint32_t client, const char *seq, uint64_t count,
                   int64_t inv, int64_t comp, history_outcome oc)
{
    cr_assert_eq(history_add_op(h, client, seq, count, inv, comp, oc, 0, 0), 0);
}

/* Whether any shown violation mentions s: the report must say what broke. */
static bool th_shown(const history_report *r, const char *s)
{
    for (int i = 0; i < r->shown; i++)
        if (strstr(r->msg[i], s))
            return true;
    return false;
}

Test(history, clean_history_passes_with_exact_numbers, .timeout = 5)
{
    history *h = history_new();
    cr_assert_not_null(h);
    th_ok(h, 1, "a", 3, 0, 10, 1);          /* a: [1,3] */
    th_ok(h, 1, "a", 1, 20, 30, 4);         /* a: [4,4] */
    th_end(h, 2, "a", 2, 25, 40, HISTORY_UNKNOWN);     /* took 5,6 or not */
    th_ok(h, 1, "a", 2, 50, 60, 7);         /* a: [7,8]: 5,6 skipped */
    th_ok(h, 2, "b", 10, 0, 5, 1);          /* b: [1,10] */
    th_end(h, 3, "b", 1, 10, 12, HISTORY_FAIL);
    history_report r;
    cr_assert_eq(history_check(h, &r), 0);
    cr_assert_eq(r.violations, 0);
    cr_assert_eq(r.ops, 6);
    cr_assert_eq(r.ok, 4);
    cr_assert_eq(r.failed, 1);
    cr_assert_eq(r.unknown, 1);
    cr_assert_eq(r.ids_handed, 16);
    cr_assert_eq(r.ids_skipped, 2);
    cr_assert_float_eq(r.availability, 4.0 / 6.0, 1e-12);
    cr_assert_float_eq(r.gap_ratio, 2.0 / 16.0, 1e-12);
    char line[256];
    history_summary(line, sizeof line, "clean", &r);
    cr_assert_str_eq(line, "scenario=clean ops=6 ok=4 failed=1 unknown=1 "
                           "availability=0.6667 gap_ratio=0.1250 violations=0");
    history_free(h);
}

Test(history, duplicate_id_is_caught, .timeout = 5)
{
    history *h = history_new();
    th_ok(h, 1, "a", 5, 0, 100, 1);         /* [1,5] */
    th_ok(h, 2, "a", 3, 10, 90, 5);         /* [5,7]: 5 twice, concurrent */
    th_ok(h, 3, "b", 5, 0, 100, 1);         /* another sequence may reuse IDs */
    history_report r;
    cr_assert_eq(history_check(h, &r), 1);
    cr_assert_eq(r.by_rule[HISTORY_RULE_UNIQUE], 1);
    cr_assert(th_shown(&r, "ID 5 handed out twice"), "%s", r.msg[0]);
    history_free(h);

    /* Two ranges inside one earlier, wider range: both are duplicates. */
    h = history_new();
    th_ok(h, 1, "a", 10, 0, 100, 1);        /* [1,10] */
    th_ok(h, 2, "a", 1, 0, 100, 3);
    th_ok(h, 3, "a", 1, 0, 100, 5);
    cr_assert_eq(history_check(h, &r), 2);
    cr_assert_eq(r.by_rule[HISTORY_RULE_UNIQUE], 2);
    history_free(h);
}

Test(history, wrong_length_and_bad_ranges_are_caught, .timeout = 5)
{
    history *h = history_new();
    cr_assert_eq(history_add_op(h, 1, "a", 5, 0, 10, HISTORY_OK, 1, 3), 0);       /* 3 of 5 */
    cr_assert_eq(history_add_op(h, 1, "b", 0, 0, 10, HISTORY_OK, 4, 4), 0);       /* count 0 */
    cr_assert_eq(history_add_op(h, 1, "c", 2, 0, 10, HISTORY_OK, UINT64_MAX, UINT64_MAX), 0);  /* wraps */
    cr_assert_eq(history_add_op(h, 1, "d", 1, 0, 10, HISTORY_OK, 0, 0), 0);       /* ID 0 */
    cr_assert_eq(history_add_op(h, 1, "e", 1, 0, 10, HISTORY_OK, 9, 8), 0);       /* empty */
    th_ok(h, 2, "f", 4, 0, 10, 1);                                                /* fine */
    history_report r;
    cr_assert_eq(history_check(h, &r), 5);
    cr_assert_eq(r.by_rule[HISTORY_RULE_RANGE], 5);
    cr_assert(th_shown(&r, "asked for 5 IDs but got [1,3]"));
    cr_assert(th_shown(&r, "passes 2^64-1"));
    history_free(h);
}

Test(history, real_time_inversion_is_caught, .timeout = 5)
{
    history *h = history_new();
    th_ok(h, 1, "a", 1, 0, 100, 5);         /* completes at 100 with 5 */
    th_ok(h, 2, "a", 1, 200, 300, 3);       /* starts after, gets lower: bad */
    history_report r;
    cr_assert_eq(history_check(h, &r), 1);
    cr_assert_eq(r.by_rule[HISTORY_RULE_REALTIME], 1);
    cr_assert_eq(r.by_rule[HISTORY_RULE_CLIENT], 0);
    cr_assert(th_shown(&r, "op #1 (client 2) invoked at 200 got [3,3], but op #0 (client 1) completed at 100"),
              "%s", r.msg[0]);
    history_free(h);

    /* The same inversion within one client breaks rule 4 as well. */
    h = history_new();
    th_ok(h, 7, "a", 1, 0, 100, 5);
    th_ok(h, 7, "a", 1, 200, 300, 3);
    cr_assert_eq(history_check(h, &r), 2);
    cr_assert_eq(r.by_rule[HISTORY_RULE_CLIENT], 1);
    cr_assert(th_shown(&r, "same client"));
    history_free(h);

    /* The highest ID acknowledged is not the last one to complete. */
    h = history_new();
    th_ok(h, 4, "a", 1, 0, 40, 2);
    th_ok(h, 1, "a", 1, 0, 50, 10);
    th_ok(h, 2, "a", 1, 10, 60, 1);         /* concurrent with the two above */
    th_ok(h, 3, "a", 1, 100, 110, 5);       /* below 10: bad */
    cr_assert_eq(history_check(h, &r), 1);
    cr_assert(th_shown(&r, "but op #1 (client 1) completed at 50 with [10,10]"), "%s", r.msg[0]);
    history_free(h);

    /* The later op starting exactly at the earlier one's last ID. */
    h = history_new();
    th_ok(h, 1, "a", 5, 0, 100, 1);
    th_ok(h, 2, "a", 2, 200, 300, 5);
    history_check(h, &r);
    cr_assert_eq(r.by_rule[HISTORY_RULE_REALTIME], 1);
    cr_assert_eq(r.by_rule[HISTORY_RULE_UNIQUE], 1);
    history_free(h);
}

Test(history, concurrent_ops_may_complete_in_either_order, .timeout = 5)
{
    history *h = history_new();
    th_ok(h, 1, "a", 1, 0, 100, 2);         /* overlaps the next one */
    th_ok(h, 2, "a", 1, 50, 80, 1);         /* invoked before 100: either order */
    th_ok(h, 3, "a", 1, 100, 150, 3);       /* invoked exactly at 100: still concurrent with op 0 */
    th_ok(h, 4, "a", 1, 100, 140, 4);       /* concurrent with op 2 (same instant) */
    th_ok(h, 6, "c", 1, 0, 100, 5);
    th_ok(h, 7, "c", 1, 100, 200, 4);       /* equal times are concurrent */
    /* A pipelining client: its two fetches overlap, so either order. */
    th_ok(h, 5, "b", 1, 0, 50, 2);
    th_ok(h, 5, "b", 1, 10, 40, 1);
    history_report r;
    cr_assert_eq(history_check(h, &r), 0, "%s", r.msg[0]);
    history_free(h);
}

Test(history, unknown_and_failed_ops_are_not_violations, .timeout = 5)
{
    history *h = history_new();
    th_ok(h, 1, "a", 1, 0, 10, 10);
    th_end(h, 2, "a", 5, 20, 1000, HISTORY_UNKNOWN);
    th_end(h, 3, "a", 5, 20, 30, HISTORY_FAIL);
    th_ok(h, 1, "a", 1, 40, 50, 11);
    th_end(h, 1, "a", 1, 60, 70, HISTORY_UNKNOWN);
    history_report r;
    cr_assert_eq(history_check(h, &r), 0);
    cr_assert_eq(r.unknown, 2);
    cr_assert_eq(r.failed, 1);
    cr_assert_float_eq(r.availability, 0.4, 1e-12);
    cr_assert_eq(r.ids_skipped, 0);
    /* The window helper: invoked in [20, 61) = ops 1..4, one ok. */
    uint64_t n = 0;
    cr_assert_float_eq(history_availability(h, 20, 61, &n), 0.25, 1e-12);
    cr_assert_eq(n, 4);
    cr_assert_float_eq(history_availability(h, 1000, 2000, &n), 0.0, 1e-12);
    cr_assert_eq(n, 0);
    history_free(h);
}

Test(history, id_reissued_after_crash_is_caught, .timeout = 5)
{
    history *h = history_new();
    th_ok(h, 1, "a", 5, 0, 100, 1);                 /* acknowledged [1,5] */
    th_ok(h, 2, "a", 1, 120, 400, 6);               /* straddles the crash: fine */
    cr_assert_eq(history_add_crash(h, 150, "kill9 all"), 0);
    th_ok(h, 4, "a", 1, 160, 170, 9);               /* fine, and invoked first */
    th_ok(h, 3, "a", 2, 200, 300, 4);               /* [4,5] again after the crash */
    th_ok(h, 5, "a", 1, 350, 360, 20);              /* fine, invoked last */
    th_ok(h, 1, "b", 1, 200, 300, 1);               /* other sequence untouched */
    history_report r;
    cr_assert_geq(history_check(h, &r), 1);
    cr_assert_eq(r.by_rule[HISTORY_RULE_CRASH], 1);
    cr_assert(th_shown(&r, "crash \"kill9 all\" at 150"));
    history_free(h);

    /* Invoked at the crash's own instant is not "after" it. */
    h = history_new();
    th_ok(h, 1, "a", 5, 0, 100, 1);
    cr_assert_eq(history_add_crash(h, 150, "kill9 all"), 0);
    th_ok(h, 3, "a", 2, 150, 300, 4);
    history_check(h, &r);
    cr_assert_eq(r.by_rule[HISTORY_RULE_CRASH], 0);
    cr_assert_eq(r.by_rule[HISTORY_RULE_REALTIME], 1);
    history_free(h);

    /* A crash between ops that are in order is no violation. */
    h = history_new();
    th_ok(h, 1, "a", 5, 0, 100, 1);
    cr_assert_eq(history_add_crash(h, 150, "wipe 2"), 0);
    th_ok(h, 1, "a", 1, 200, 300, 9);
    cr_assert_eq(history_check(h, &r), 0);
    history_free(h);
}

Test(history, text_round_trip, .timeout = 5)
{
    history *h = history_new();
    th_ok(h, 1, "orders.v2", 3, -5, 10, 1);
    cr_assert_eq(history_add_crash(h, 12, "fsync-fail 1"), 0);
    th_end(h, 2, "orders.v2", 2, 11, 40, HISTORY_UNKNOWN);
    th_end(h, 4000000000u, "x", 1, 11, 40, HISTORY_FAIL);
    cr_assert_eq(history_add_op(h, 3, "x", 5, 50, 60, HISTORY_OK, 7, 8), 0);     /* short: keeps last */
    th_ok(h, 3, "x", 1, 70, 80, UINT64_MAX);
    cr_assert_eq(history_add_crash(h, 90, "kill9 all"), 0);

    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    cr_assert_eq(history_write(h, f), 0);
    fclose(f);
    cr_assert_str_eq(text,
                     "op 1 orders.v2 3 -5 10 ok 1\n"
                     "crash 12 fsync-fail 1\n"
                     "op 2 orders.v2 2 11 40 unknown\n"
                     "op 4000000000 x 1 11 40 fail\n"
                     "op 3 x 5 50 60 ok 7 8\n"
                     "op 3 x 1 70 80 ok 18446744073709551615\n"
                     "crash 90 kill9 all\n");

    char err[128] = "";
    f = fmemopen(text, len, "r");
    history *g = history_read(f, err, sizeof err);
    fclose(f);
    cr_assert_not_null(g, "%s", err);
    cr_assert_eq(history_nops(g), history_nops(h));
    cr_assert_eq(history_ncrashes(g), 2);
    for (size_t i = 0; i < history_nops(h); i++) {
        const history_op *a = history_op_at(h, i), *b = history_op_at(g, i);
        cr_assert_str_eq(history_seq_name(h, a->seq), history_seq_name(g, b->seq));
        cr_assert(a->client == b->client && a->count == b->count && a->invoke_us == b->invoke_us &&
                  a->complete_us == b->complete_us && a->outcome == b->outcome &&
                  a->first == b->first && a->last == b->last, "op %zu differs", i);
    }
    cr_assert_eq(history_crash_at(g, 0)->time_us, 12);
    cr_assert_str_eq(history_crash_at(g, 1)->what, "kill9 all");
    history_report ra, rb;
    cr_assert_eq(history_check(h, &ra), history_check(g, &rb));
    cr_assert_eq(ra.by_rule[HISTORY_RULE_RANGE], 1);
    history_free(g);

    /* The file variants, as a failing run keeps its history. */
    char dir[] = "/tmp/seqd-history-XXXXXX", path[64];
    cr_assert_not_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/h.txt", dir);
    cr_assert_eq(history_write_path(h, path), 0);
    g = history_read_path(path, err, sizeof err);
    cr_assert_not_null(g, "%s", err);
    cr_assert_eq(history_nops(g), history_nops(h));
    history_free(g);
    unlink(path);
    rmdir(dir);
    cr_assert_null(history_read_path(path, err, sizeof err));
    free(text);
    history_free(h);
}

Test(history, read_rejects_bad_lines_with_line_number, .timeout = 5)
{
    static const char *bad[] = {
        "op 1 a 1 0 10 ok\n",               /* no first */
        "op 1 a 1 10 0 fail\n",             /* completes before invoked */
        "op 1 a -1 0 10 fail\n",            /* negative count */
        "op 1 a 1 0 10 maybe\n",
        "crash 5\n",
        "oops\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char text[128], err[128] = "";
        snprintf(text, sizeof text, "# comment\n\nop 1 a 1 0 10 ok 1\n%s", bad[i]);
        FILE *f = fmemopen(text, strlen(text), "r");
        history *h = history_read(f, err, sizeof err);
        fclose(f);
        cr_assert_null(h, "accepted %s", bad[i]);
        cr_assert_eq(strncmp(err, "line 4:", 7), 0, "%s", err);
    }
}

/* --- a large history from a simulated correct allocator ---------------- */

typedef struct th_sim_op {
    uint32_t client;
    int seq;
    uint64_t count;
    int64_t inv, lin, comp;
    history_outcome oc;
    uint64_t first;
} th_sim_op;

static uint64_t th_rand(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static int th_by_lin(const void *pa, const void *pb)
{
    const th_sim_op *a = *(th_sim_op *const *)pa, *b = *(th_sim_op *const *)pb;
    return (a->lin > b->lin) - (a->lin < b->lin);
}

#define TH_N 100000
#define TH_CLIENTS 16

/* Sequential clients whose ops take effect at a random instant inside
 * their [invoke, complete]; allocating in that order is linearizable, so
 * every rule holds. Fails, timeouts (half of them allocate) and skipped IDs
 * make gaps; crash events fall anywhere. Fills *handed / *skipped with the
 * gap figures computed here, independently of the checker. */
static th_sim_op *th_simulate(uint64_t seed, uint64_t *handed, uint64_t *skipped)
{
    th_sim_op *ops = calloc(TH_N, sizeof *ops);
    th_sim_op **order = calloc(TH_N, sizeof *order);
    cr_assert(ops && order);
    int64_t t[TH_CLIENTS];
    for (int c = 0; c < TH_CLIENTS; c++)
        t[c] = (int64_t)(th_rand(&seed) % 100);
    for (size_t i = 0; i < TH_N; i++) {
        th_sim_op *o = &ops[i];
        o->client = (uint32_t)(i % TH_CLIENTS);
        o->seq = (int)(th_rand(&seed) % 3);
        o->count = 1 + th_rand(&seed) % 10;
        o->inv = t[o->client];
        o->lin = o->inv + 1 + (int64_t)(th_rand(&seed) % 50);
        o->comp = o->lin + 1 + (int64_t)(th_rand(&seed) % 50);
        t[o->client] = o->comp + (int64_t)(th_rand(&seed) % 20);
        uint64_t r = th_rand(&seed) % 100;
        o->oc = r < 90 ? HISTORY_OK : r < 95 ? HISTORY_FAIL : HISTORY_UNKNOWN;
        order[i] = o;
    }
    qsort(order, TH_N, sizeof *order, th_by_lin);
    uint64_t next[3] = { 1, 1, 1 }, lo[3] = { 0 }, hi[3] = { 0 }, sum[3] = { 0 };
    for (size_t i = 0; i < TH_N; i++) {
        th_sim_op *o = order[i];
        if (th_rand(&seed) % 50 == 0)
            next[o->seq] += 1 + th_rand(&seed) % 3;     /* a lost range */
        if (o->oc == HISTORY_FAIL || (o->oc == HISTORY_UNKNOWN && th_rand(&seed) % 2))
            continue;
        o->first = next[o->seq];
        next[o->seq] += o->count;
        if (o->oc != HISTORY_OK)
            continue;
        if (!sum[o->seq])
            lo[o->seq] = o->first;
        hi[o->seq] = o->first + o->count - 1;
        sum[o->seq] += o->count;
    }
    *handed = sum[0] + sum[1] + sum[2];
    *skipped = 0;
    for (int s = 0; s < 3; s++)
        *skipped += sum[s] ? hi[s] - lo[s] + 1 - sum[s] : 0;
    free(order);
    return ops;
}

static history *th_build(const th_sim_op *ops, uint64_t seed)
{
    static const char *const names[] = { "a", "b", "c" };
    history *h = history_new();
    cr_assert_not_null(h);
    for (size_t i = 0; i < TH_N; i++) {
        const th_sim_op *o = &ops[i];
        cr_assert_eq(history_add_op(h, o->client, names[o->seq], o->count, o->inv, o->comp, o->oc,
                                    o->first, o->first + o->count - 1), 0);
        if (th_rand(&seed) % 5000 == 0)
            cr_assert_eq(history_add_crash(h, o->inv, "kill9 all"), 0);
    }
    return h;
}

static double th_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

Test(history, large_valid_history_passes_quickly, .timeout = 30)
{
    uint64_t handed, skipped;
    th_sim_op *ops = th_simulate(0x5eed, &handed, &skipped);
    history *h = th_build(ops, 77);
    cr_assert_gt(history_ncrashes(h), 5);
    history_report r;
    double t0 = th_now();
    int64_t v = history_check(h, &r);
    double took = th_now() - t0;
    cr_assert_eq(v, 0, "%s", r.msg[0]);
    cr_assert_eq(r.ops, TH_N);
    cr_assert_gt(r.ok, TH_N * 85 / 100);
    cr_assert_eq(r.ids_handed, handed);
    cr_assert_eq(r.ids_skipped, skipped);
    cr_assert_gt(skipped, 0);
    cr_assert_lt(took, 5.0, "check took %.2f s", took);
    cr_log_info("100k-op check: %.3f s", took);
    history_free(h);
    free(ops);
}

Test(history, large_history_with_one_duplicate_is_caught, .timeout = 30)
{
    uint64_t handed, skipped;
    th_sim_op *ops = th_simulate(0xbad, &handed, &skipped);
    /* Op k re-issues the first ID of an earlier concurrent-or-not ok op j of
     * the same sequence; nothing else changes. */
    size_t j = TH_N / 2, k;
    while (ops[j].oc != HISTORY_OK)
        j++;
    for (k = j + 1; ops[k].oc != HISTORY_OK || ops[k].seq != ops[j].seq; k++)
        ;
    ops[k].first = ops[j].first;
    history *h = th_build(ops, 77);
    history_report r;
    cr_assert_geq(history_check(h, &r), 1);
    cr_assert_geq(r.by_rule[HISTORY_RULE_UNIQUE], 1);
    char want[64];
    snprintf(want, sizeof want, "ID %" PRIu64 " handed out twice", ops[j].first);
    cr_assert(th_shown(&r, want), "%s", r.msg[0]);
    history_free(h);
    free(ops);
}
