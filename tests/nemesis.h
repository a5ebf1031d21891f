/* tests/nemesis.h — the fault campaign's tools (tests/test_faults.c).
 *
 * Three parts, each usable alone:
 *
 * LOAD. nem_load_start runs `clients` threads, each with its own client
 * (client/client.h) whose member list starts at a different member, so load
 * and coordination spread over the whole cluster. Each thread fetches in a
 * loop: a seeded choice of sequence and of count (1, 7, 100 or 1000), one
 * call timeout, a short pause after each call (bounded concurrency: the
 * machine has 2 cores and also runs the members). Every call is recorded
 * in a tests/history.h history (procs_fetch), so the checker can hold the
 * run to the ID contract.
 *
 * NETWORK. A nem_net routes every member-to-member link so that links can
 * be cut and slowed, in one of two ways:
 *   NEM_NET_PROXY  tests/tools/faultproxy: one route per directed link
 *                  (SEQD_TEST_PEER_ROUTE), cut with `block`, slowed with
 *                  `delay`. Always works.
 *   NEM_NET_NETNS  one network namespace per member, its address on its own
 *                  loopback, a veth pair per member pair (the member mesh)
 *                  and one to the root namespace (where the clients are).
 *                  A cut is `ip link set down` of the pair's veth (and the
 *                  routes come back with the heal); slowing is tc netem.
 *                  Needs root and iproute2; nem_net_new says why not.
 * Clients always reach every member directly: a partition separates members
 * from each other, the way a network split between racks does while the
 * application servers still see both sides.
 *
 * REPORT. nem_report checks a history and prints the scenario's one line
 * (history_summary's, plus the variant and seed), appends it to the file
 * named by $SEQD_FAULTS_SUMMARY (how `make faults` builds its table), and on
 * a violation keeps the history and the members' logs in a directory whose
 * path it prints.
 */
#ifndef SEQD_TESTS_NEMESIS_H
#define SEQD_TESTS_NEMESIS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "history.h"
#include "procs.h"

/* Client timings every scenario uses: R, the call timeout, and T, what the
 * first attempt of a call may take (client.c: half of the call's budget
 * after the reply grace, plus the grace). */
#define NEM_ROUND_MS 200
#define NEM_CALL_MS 1000
#define NEM_ATTEMPT_MS ((NEM_CALL_MS - 30) / 2 + 30)

/* ---- load ---- */

typedef struct nem_load_opts {
    int clients;            /* threads, one client each */
    uint32_t call_ms;       /* per call (0: NEM_CALL_MS) */
    uint32_t think_ms;      /* pause after each call */
    int nseqs;              /* sequences <prefix>0 .. <prefix>{nseqs-1} */
    const char *prefix;     /* sequence name prefix (NULL: "seq") */
    uint64_t seed;
    const char *watch;      /* failures whose message contains this (case-
                             * insensitive) are counted apart; may be NULL */
} nem_load_opts;

typedef struct nem_load nem_load;

typedef struct nem_load_stats {
    uint64_t calls, ok, failed;
    uint64_t watch_hits;    /* failures that matched opts.watch */
    int64_t last_fail_us;   /* when the latest failure ended (0: none yet) */
    char last_err[512];     /* the most recent failure's message, "" if none */
    char watch_err[512];    /* the most recent one that matched opts.watch */
} nem_load_stats;

/* Starts the threads; NULL with why on error. The cluster's addresses are
 * copied: members may be restarted freely while the load runs. */
nem_load *nem_load_start(const procs_cluster *pc, history *h, const nem_load_opts *o, char *why,
                         size_t whylen);
/* Totals so far (safe while running). */
void nem_load_stats_get(nem_load *l, nem_load_stats *s);
/* Stops and joins the threads and frees l (NULL is fine). */
void nem_load_stop(nem_load *l);

/* ---- network ---- */

typedef enum nem_net_kind { NEM_NET_PROXY, NEM_NET_NETNS } nem_net_kind;

typedef struct nem_net nem_net;

/* Sets up the network for pc (no member may be running yet: with netns the
 * members' addresses change). slot: the test's port slot, which must not
 * be in use by another netns test (it names the subnet 10.77.<slot>.0/24). NULL with why when it cannot be
 * set up (for netns: not root, no `ip`, namespaces not permitted). */
nem_net *nem_net_new(procs_cluster *pc, nem_net_kind kind, int slot, uint64_t seed, char *why,
                     size_t whylen);
/* "proxy" or "netns". */
const char *nem_net_variant(const nem_net *nn);
/* Starts member i inside the network (its namespace or its routes), with
 * `more` args and `env` ("K=V", NULL-terminated) like procs_start_ex. */
int nem_net_start(nem_net *nn, int i, const char *const *more, const char *const *env);
int nem_net_start_all(nem_net *nn);
/* side[i] in {0, 1}: cuts every link between the two sides, both ways. */
int nem_net_split(nem_net *nn, const int *side, char *why, size_t whylen);
/* Cuts member i off from every other member. */
int nem_net_isolate(nem_net *nn, int i, char *why, size_t whylen);
/* Restores every link (and removes delays). */
int nem_net_heal(nem_net *nn, char *why, size_t whylen);
/* Delays every link touching member `only` (or every link when only < 0)
 * by ms + 0..jitter_ms each way; 0 removes it. With netns this is tc netem,
 * which the kernel may lack: -1 with why then. */
int nem_net_delay(nem_net *nn, int only, int ms, int jitter_ms, char *why, size_t whylen);
/* Proxy only: delays the link member i opened to member j (i's requests
 * to j and j's replies on it; not j's own link to i) by ms each way; 0
 * removes it. -1 with why (netns: not supported). */
int nem_net_delay_link(nem_net *nn, int i, int j, int ms, char *why, size_t whylen);
/* Proxy only: arms a one-shot tamper (tests/tools/faultproxy.c's `tamper
 * ROUTE spec`, spec = "up|down dup|flip TYPE [OFFSET]") on the link from
 * member i to member j (i's peer connection, j listening); the proxy logs
 * it in <root>/proxy.log once done. -1 with why (netns: not supported). */
int nem_net_tamper(nem_net *nn, int i, int j, const char *spec, char *why, size_t whylen);
/* Kills the proxy, removes namespaces and links. Call after the members
 * are gone (procs_cluster_free). NULL is fine. */
void nem_net_free(nem_net *nn);

/* ---- helpers ---- */

/* Runs `/bin/sh -c CMD`; returns its exit status (-1 if it could not run),
 * with its output (stdout and stderr) in out when out is not NULL. */
int nem_sh(char *out, size_t outlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Mounts a tmpfs of size_kb on dir (created if missing) / changes its size
 * / unmounts it (lazily: a dead member may still hold it). */
int nem_tmpfs_mount(const char *dir, long size_kb, char *why, size_t whylen);
int nem_tmpfs_resize(const char *dir, long size_kb, char *why, size_t whylen);
void nem_tmpfs_umount(const char *dir);

/* SplitMix64: the scenarios' one source of choices, so a seed replays them. */
uint64_t nem_rand(uint64_t *state);

/* Whether the full campaign runs ($SEQD_FAULTS_FULL=1), and the seed of a
 * scenario ($SEQD_FAULTS_SEED overrides the fixed default). */
bool nem_full(void);
uint64_t nem_seed(uint64_t fixed);

/* ---- report ---- */

/* Checks h and prints "scenario=... ops=... violations=N variant=... seed=...
 * extra" on stderr and into $SEQD_FAULTS_SUMMARY; on a violation (or when
 * keep is set) writes the history to <dir>/history and copies the members'
 * logs there, dir being a new /tmp/seqd-faults-<scenario>-XXXXXX, and puts
 * the violations and the path in why. Returns the violations (-1: the
 * checker ran out of memory). pc may be NULL. */
int64_t nem_report(const char *scenario, const char *variant, uint64_t seed, const char *extra,
                   const history *h, const procs_cluster *pc, bool keep, history_report *r,
                   char *why, size_t whylen);
/* The line of a scenario that could not run here: "scenario=<name>
 * skipped: <reason>", printed and appended like nem_report's. */
void nem_report_skip(const char *scenario, const char *reason);

#endif
