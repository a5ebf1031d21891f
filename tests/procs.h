/* tests/procs.h — harness for tests that run real `seqd` processes.
 *
 * A procs_cluster is N members on 127.0.0.1, each with its own data
 * directory and log file under one mkdtemp directory. Members can be
 * started, stopped (SIGTERM), killed (SIGKILL), paused (SIGSTOP), resumed
 * and restarted one by one; procs_wait_ready polls `status` until every
 * running member is ready. Every spawned server gets PR_SET_PDEATHSIG, so
 * even a test process killed by Criterion's timeout leaves no server
 * behind; procs_cluster_free (call it from the test's .fini) kills what is
 * left and removes the directory (kept when SEQD_KEEP_TEST_DIRS is set).
 *
 * The server binary is $SEQD_BIN (set by `make test`), else ./seqd.
 *
 * Ports: each test passes its own `slot` (0..PROCS_SLOTS-1) so that tests
 * Criterion runs in parallel never share ports; the base also moves with
 * the runner's pid, and ports found busy are skipped.
 *
 * procs_fetch records every fetch of a test in a tests/history.h history,
 * whose checker holds it to the ID contract: no ID handed out twice, IDs
 * increase per client, and a fetch invoked after another completed got
 * higher IDs (real-time order).
 */
#ifndef SEQD_TESTS_PROCS_H
#define SEQD_TESTS_PROCS_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "../client/client.h"
#include "history.h"

#define PROCS_MAX 7
#define PROCS_SLOTS 41
#define PROCS_PATH 512

typedef struct procs_member {
    int port;
    char addr[32];              /* 127.0.0.1:PORT */
    char dir[PROCS_PATH];       /* its --data */
    char log[PROCS_PATH];       /* its stderr/stdout, appended across restarts */
    pid_t pid;                  /* 0 while not running */
    bool paused;
    char peers[PROCS_MAX * 32]; /* --peers to give instead of the others' (empty: the others) */
} procs_member;

typedef struct procs_cluster {
    int n;
    uint32_t round_ms;          /* --round-timeout given to every member */
    char root[64];               /* /tmp/seqd-test-XXXXXX */
    char servers[PROCS_MAX * 32];   /* every member's address, comma-separated */
    const char *const *extra;   /* default extra serve args (NULL-terminated) */
    bool initialized;           /* `seqd init` succeeded on it */
    bool no_auto_init;          /* procs_wait_ready must not run init */
    const char *secret_file;    /* given to init as --secret-file (NULL: none) */
    procs_member m[PROCS_MAX];
} procs_cluster;

/* The server binary tests run. */
const char *procs_bin(void);

/* CLOCK_MONOTONIC in µs / ms. */
/* A loopback port that can be bound now (SO_REUSEADDR, as the server). */
bool procs_port_free(int port);
int64_t procs_now_us(void);
int64_t procs_now_ms(void);
void procs_sleep_ms(int64_t ms);

/* Slots PROCS_SHARED_FIRST.. (PROCS_SHARED_COUNT of them) are shared by
 * the fault campaign and the tests that need a slot beyond the fixed ones:
 * this takes the first free one, held by an flock on
 * /tmp/seqd-faults-slot-N.lock until this process ends, so however many
 * such tests run at once (in one run or several), none shares ports or a
 * netns subnet. Waits up to wait_ms (< 0: for ever); -1 if none came free. */
#define PROCS_SHARED_FIRST 15
#define PROCS_SHARED_COUNT 5
int procs_shared_slot(int64_t wait_ms);

/* Creates the directories and picks ports; starts nothing. NULL on error
 * (why says it). extra: serve args given to every member (may be NULL; the
 * array must outlive the cluster). */
procs_cluster *procs_cluster_new(int n, int slot, uint32_t round_ms,
                                 const char *const *extra, char *why, size_t whylen);
/* Kills every member still running (SIGKILL) and removes the directory. */
void procs_cluster_free(procs_cluster *pc);

/* Starts member i with the standard args (--listen, --data, --peers of all
 * the others, --round-timeout) + the cluster's extra + `more` (may be NULL). */
int procs_start(procs_cluster *pc, int i, const char *const *more);
int procs_start_all(procs_cluster *pc);
/* procs_start with `prefix` (a NULL-terminated argv run before the server
 * binary, e.g. {"/usr/sbin/ip", "netns", "exec", "NS", NULL}: it must exec
 * the server in place, so that the pid is the server's) and `env` (extra
 * "K=V" entries); both may be NULL. */
int procs_start_ex(procs_cluster *pc, int i, const char *const *prefix, const char *const *more,
                   const char *const *env);
/* The member set is members 0..n-1 from now on (n <= the n it was created
 * with: the others are spare hosts, e.g. for `serve --replaces`); updates
 * pc->servers. */
void procs_set_n(procs_cluster *pc, int n);
/* Makes member i listen on host:its port instead of 127.0.0.1 (before it
 * first starts: the address is its identity); updates pc->servers. */
int procs_set_host(procs_cluster *pc, int i, const char *host);
/* Waits up to wait_ms for member i to exit on its own (a fatal error);
 * returns its exit code (128+signal), -2 if it still runs, -1 if it was not
 * running. Once it returned an exit code the member counts as stopped. */
int procs_reap(procs_cluster *pc, int i, int64_t wait_ms);
/* SIGTERM (after SIGCONT if paused), wait up to wait_ms, then SIGKILL.
 * Returns the exit status, 128+signal if it died of one, -1 if it had to be
 * killed or was not running. */
int procs_stop(procs_cluster *pc, int i, int64_t wait_ms);
void procs_kill(procs_cluster *pc, int i);
void procs_pause(procs_cluster *pc, int i);
void procs_resume(procs_cluster *pc, int i);
/* Removes member i's data directory (it must not be running). */
int procs_wipe(procs_cluster *pc, int i);

/* procs_pause, then waits up to wait_ms until every thread of member i is
 * stopped (SIGSTOP takes effect asynchronously: a write in progress ends
 * first), so that its files can be copied as a crash-consistent snapshot.
 * False if it did not stop in time (it stays paused). */
bool procs_pause_wait(procs_cluster *pc, int i, int64_t wait_ms);
/* A backup: copies member i's data directory (cp -a) to <root>/backup-<name>,
 * replacing an earlier copy of that name. The member must be down or
 * stopped (procs_pause_wait): a copy of a running member's log can be torn
 * in a way no crash leaves it. 0 or -1. */
int procs_backup(procs_cluster *pc, int i, const char *name);
/* Replaces member i's data directory (it must not be running) with a copy
 * of <root>/backup-<name>, which stays there (it can be restored again). 0 or -1. */
int procs_restore(procs_cluster *pc, int i, const char *name);

/* Status of member i (CLIENT_OK or CLIENT_EFAIL). */
int procs_status(procs_cluster *pc, int i, uint32_t timeout_ms, struct seqd_status *st);
/* Runs `seqd init` on every member (procs_wait_ready does it by itself the
 * first time every member of a new cluster is running, unless
 * no_auto_init). False with seqd's message in why. */
bool procs_init(procs_cluster *pc, char *why, size_t whylen);
/* Waits until every running member says ready; false after timeout_ms with
 * why = each member's state and the last lines of every log. */
bool procs_wait_ready(procs_cluster *pc, int64_t timeout_ms, char *why, size_t whylen);
/* Waits until member i reports `state`. */
bool procs_wait_state(procs_cluster *pc, int i, int state, int64_t timeout_ms);

/* The last `lines` lines of member i's log, into buf. */
void procs_log_tail(const procs_cluster *pc, int i, int lines, char *buf, size_t len);
/* Every member's log tail, each headed by its address. */
void procs_logs(const procs_cluster *pc, int lines, char *buf, size_t len);
/* Whether member i's log contains s (case-insensitive). */
bool procs_log_has(const procs_cluster *pc, int i, const char *s);

/* Result of running the seqd binary as a command. */
typedef struct procs_result {
    int status;                 /* exit code; 128+signal; -1 killed at the timeout */
    int64_t ms;                 /* wall time */
    char out[16384];            /* stdout (truncated to fit) */
    char err[4096];             /* stderr (truncated to fit) */
} procs_result;

/* Runs `seqd ARGS...` (NULL-terminated) with SEQD_SERVERS unset unless env
 * (NULL-terminated "K=V" list, may be NULL) sets it; kills it after
 * timeout_ms. Returns r->status. */
int procs_run(procs_result *r, int64_t timeout_ms, const char *const *env, ...);
int procs_runv(procs_result *r, int64_t timeout_ms, const char *const *env,
               const char *const *args);

/* client_fetch timed on CLOCK_MONOTONIC (µs) and recorded in h
 * (tests/history.h) as client `client_id`: ok → HISTORY_OK, a usage error →
 * HISTORY_FAIL, any other failure → HISTORY_UNKNOWN (an attempt that timed
 * out may still have allocated). Thread-safe like history_add_op. Returns
 * client_fetch's result. */
int procs_fetch(history *h, client *c, uint32_t client_id, const char *name, uint32_t count,
                uint32_t timeout_ms, uint64_t *first, char *err, size_t errlen);
/* history_add_crash at the current time. */
void procs_crash(history *h, const char *what);
/* history_check; false with the summary and the violations shown in why.
 * r (may be NULL) gets the report. */
bool procs_history_check(const history *h, history_report *r, char *why, size_t whylen);
/* Highest ID of sequence `name` in an ok op so far (0 if none). Not while
 * other threads add. */
uint64_t procs_history_max(const history *h, const char *name);

#endif
