/* tests/history.h — record what clients saw, then check it against the ID
 * contract (DESIGN.md §2, "What increasing means to a client").
 *
 * A history is a list of operations (one fetch each: who, which sequence,
 * how many IDs, when it was invoked and when it completed, and how it
 * ended) and crash events (a fault the nemesis injected at a moment). It
 * has a line-oriented text form so that a failing run can keep it:
 *
 *   op <client> <seq> <count> <invoke_us> <complete_us> ok <first> [<last>]
 *   op <client> <seq> <count> <invoke_us> <complete_us> fail
 *   op <client> <seq> <count> <invoke_us> <complete_us> unknown
 *   crash <time_us> <what...>
 *
 * <last> (inclusive) is written only when the range received differs from
 * the one asked for, [first, first+count-1]; blank lines and lines starting
 * with '#' are ignored. Times are microseconds on any one clock (the
 * checker compares them only with each other). `unknown` = timed out: the
 * IDs may or may not have been allocated; such ops never count as ok and
 * never violate anything.
 *
 * history_check applies, per sequence, to the ok ops:
 *  1 unique:    no ID lies in two ok ranges;
 *  2 range:     count >= 1, the range has exactly `count` IDs, does not pass
 *               2^64-1 and does not contain 0 (a fresh sequence starts at 1);
 *  3 real time: an op invoked after another op completed got higher IDs
 *               (complete < invoke, strictly: equal times are concurrent);
 *  4 client:    the same, restricted to the ops of one client (an op whose
 *               time overlaps an earlier one of its own client is concurrent
 *               with it: a pipelining client may see either order);
 *  5 crash:     every ID acknowledged (ok op completed) before a crash is
 *               below every ID of an ok op invoked after it.
 * One bad op can break several rules; violations are counted per rule.
 * Cost: O(n log n) in the number of ops, plus O(log n) per crash.
 *
 * Adding (history_add_*) is thread-safe, so concurrent client threads can
 * share one history; everything else needs the caller to stop adding first.
 */
#ifndef SEQD_TESTS_HISTORY_H
#define SEQD_TESTS_HISTORY_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define HISTORY_NAME_MAX 128    /* longest sequence name (DESIGN.md §1) */
#define HISTORY_WHAT_MAX 128    /* longest crash description */
#define HISTORY_SHOWN 5         /* violations described in a report */
#define HISTORY_MSG 320         /* bytes per description */
#define HISTORY_RULES 5

typedef enum history_outcome {
    HISTORY_OK,         /* got [first, last] */
    HISTORY_FAIL,       /* definite error: nothing allocated for the client */
    HISTORY_UNKNOWN     /* timed out: may or may not have been allocated */
} history_outcome;

typedef enum history_rule {
    HISTORY_RULE_UNIQUE = 1,
    HISTORY_RULE_RANGE = 2,
    HISTORY_RULE_REALTIME = 3,
    HISTORY_RULE_CLIENT = 4,
    HISTORY_RULE_CRASH = 5
} history_rule;

typedef struct history_op {
    uint32_t client;
    uint32_t seq;           /* index of the name: history_seq_name() */
    uint64_t count;         /* IDs asked for */
    int64_t invoke_us;
    int64_t complete_us;    /* for unknown: when the client gave up */
    history_outcome outcome;
    uint64_t first, last;   /* ok only: the range received, inclusive */
} history_op;

typedef struct history_crash {
    int64_t time_us;
    char what[HISTORY_WHAT_MAX];    /* e.g. "kill9 all", "wipe 2" */
} history_crash;

typedef struct history_report {
    uint64_t ops, ok, failed, unknown;
    double availability;        /* ok / ops (0 when there are no ops) */
    uint64_t ids_handed;        /* sum of the ok ranges' lengths */
    uint64_t ids_skipped;       /* per sequence: span of the ok ranges minus ids_handed */
    double gap_ratio;           /* ids_skipped / ids_handed (0 when none handed) */
    uint64_t violations;        /* sum of by_rule */
    uint64_t by_rule[HISTORY_RULES + 1];    /* index = history_rule; [0] unused */
    int shown;                  /* descriptions filled in msg */
    char msg[HISTORY_SHOWN][HISTORY_MSG];
} history_report;

typedef struct history history;

history *history_new(void);
void history_free(history *h);

/* Records one fetch. first/last are used only for HISTORY_OK (last is
 * inclusive; pass first+count-1 for a normal reply). Returns 0, or EINVAL
 * (name empty, longer than HISTORY_NAME_MAX or containing whitespace;
 * complete_us < invoke_us) or ENOMEM. */
int history_add_op(history *h, uint32_t client, const char *seq, uint64_t count,
                   int64_t invoke_us, int64_t complete_us, history_outcome outcome,
                   uint64_t first, uint64_t last);
/* Records a fault injected at time_us. Returns 0, EINVAL (what empty, too
 * long or containing a newline) or ENOMEM. */
int history_add_crash(history *h, int64_t time_us, const char *what);

/* Read access, in the order things were added. */
size_t history_nops(const history *h);
const history_op *history_op_at(const history *h, size_t i);
size_t history_ncrashes(const history *h);
const history_crash *history_crash_at(const history *h, size_t i);
const char *history_seq_name(const history *h, uint32_t seq);

/* The text form, ops and crashes interleaved in the order added. Returns 0
 * or an errno value. */
int history_write(const history *h, FILE *f);
int history_write_path(const history *h, const char *path);
/* Parses the text form; NULL on error with "line N: why" in err. */
history *history_read(FILE *f, char *err, size_t errlen);
history *history_read_path(const char *path, char *err, size_t errlen);

/* Checks the rules above and fills *r (zeroed first). Returns r->violations,
 * or -1 (ENOMEM) without a report. */
int64_t history_check(const history *h, history_report *r);

/* Fraction of the ops invoked in [t0_us, t1_us) that ended ok; *attempted
 * (may be NULL) gets how many there were. 0 when there were none. */
double history_availability(const history *h, int64_t t0_us, int64_t t1_us,
                            uint64_t *attempted);

/* "scenario=<name> ops=<n> ok=<n> failed=<n> unknown=<n>
 *  availability=<x.xxxx> gap_ratio=<x.xxxx> violations=<n>" (one line, no
 * newline). Returns what snprintf returns. */
int history_summary(char *buf, size_t len, const char *scenario, const history_report *r);
/* The summary line plus a newline, then each shown violation indented. */
void history_print_report(FILE *f, const char *scenario, const history_report *r);

#endif
