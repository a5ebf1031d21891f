/* bench/bench_scale.c — issue 13's scale figures, on a real local cluster.
 *
 *   make bench-scale [SCALE_SEQUENCES="1000000 10000000"] [SCALE_CONNECTIONS="1000 10000"]
 *
 * Starts three `seqd serve --fsync always` members on 127.0.0.1 (ports
 * SCALE_PORT.. +2, default 19601; data under --dir, default
 * build/bench-data/scale, which must be a real disk), and for each n in
 * SCALE_SEQUENCES, on a fresh cluster:
 *   create     n new sequences "s0000000".., one fetch each, through member 1
 *              only, pipelined (client/client_async.h: SCALE_CLIENTS aclients
 *              x SCALE_WINDOW fetches in flight) -> create_per_s;
 *              members 2 and 3 then have only accepted (never coordinated)
 *              those sequences: their RSS growth per sequence is the table's
 *              and the log's share -> acceptor_rss_bytes_per_seq;
 *   coordinate every sequence fetched again through member 2 only, then
 *              member 3 only: now every member has coordinated every one;
 *              after a pause, rss_bytes_per_seq = max over members of
 *              (VmRSS now - VmRSS right after start) / n;
 *   log        log_bytes_per_seq = max over members of the data directory's
 *              allocated bytes / n;
 *   compaction a steady fetch loop (one fetch at a time, sequence "probe",
 *              through member 1) for 2 s, then SIGUSR2 to member 1 (serve
 *              compacts its log at the next write) and the loop goes on until
 *              its directory holds only the new segment, plus 0.5 s ->
 *              compaction_max_fetch_ms = the longest single fetch from the
 *              signal on (baseline_max_fetch_ms: the 2 s before);
 *   restart    SIGTERM to all three, start them again, until every one says
 *              ready (status) -> restart_all_s (from the SIGTERM);
 *   wipe       member 3 stopped, its data directory deleted, started again,
 *              until ready -> wiped_recovery_s; then one fetch through it
 *              checks that it recovered the values (s0000000 past 3).
 *   SCALE sequences=<n> create_per_s=<n> rss_bytes_per_seq=<n> restart_all_s=<x>
 *         wiped_recovery_s=<x> log_bytes_per_seq=<n> compaction_max_fetch_ms=<x>
 *         acceptor_rss_bytes_per_seq=<n> baseline_max_fetch_ms=<x> failed=<n>
 * Then, for each c in SCALE_CONNECTIONS, on one fresh cluster: c client
 * connections to member 1 (one aclient each), opened 500 at a time by a
 * first fetch each; with all c open, member 1's RSS growth / c ->
 * rss_bytes_per_conn; then every connection fetches SCALE_CONN_ROUNDS
 * (default 3) more times, all at once, one in flight each -> p99_us of those:
 *   SCALE connections=<n> ok=<n> failed=<n> rss_bytes_per_conn=<n> p99_us=<n>
 * (ok and failed count fetches.) The bench raises its own RLIMIT_NOFILE to
 * the hard limit (it holds c + a few descriptors); members do it themselves.
 * Progress goes to stderr. Exit status 1 if a fetch failed or a step did
 * not finish. Every member started is killed if the bench dies.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "spawn.h"
#include "../client/client.h"
#include "../client/client_async.h"

#define SC_N 3
#define SC_READY_S 600.0          /* a 10M recovery may take minutes: fail only past this */
#define SC_STOP_S 120.0
#define SC_FETCH_TIMEOUT_MS 10000
#define SC_CONN_TIMEOUT_MS 5000
#define SC_CONN_BATCH 500
#define SC_MAX_SIZES 8

typedef struct sc_opts {
    const char *seqd;
    const char *dir;
    int port;
    int nclients, window, conn_rounds;
    uint64_t seqs[SC_MAX_SIZES];
    int nseqs;
    uint64_t conns[SC_MAX_SIZES];
    int nconns;
} sc_opts;

typedef struct sc_cluster {
    char addr[SC_N][32];
    char servers[SC_N * 32];
    char dir[1024];
    pid_t pid[SC_N];
    client *status;
} sc_cluster;

static volatile pid_t sc_pids[SC_N];

static void sc_kill_all(void)
{
    for (int i = 0; i < SC_N; i++)
        if (sc_pids[i] > 0)
            kill(sc_pids[i], SIGKILL);
}

static void sc_on_signal(int sig)
{
    sc_kill_all();
    signal(sig, SIG_DFL);
    raise(sig);
}

static void sc_die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void sc_die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("bench_scale: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    sc_kill_all();
    exit(1);
}

static void sc_say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void sc_say(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("bench_scale: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static double sc_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sc_sleep(double s)
{
    struct timespec ts = { (time_t)s, (long)((s - (double)(time_t)s) * 1e9) };
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* ---- processes and files ---- */

static int sc_rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void sc_rmtree(const char *path)
{
    (void)nftw(path, sc_rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* Allocated bytes of the files in dir (not recursive: a member's data
 * directory is flat). */
static uint64_t sc_dir_bytes(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    uint64_t sum = 0;
    struct dirent *de;
    char p[2048];
    while ((de = readdir(d)) != NULL) {
        struct stat st;
        snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
        if (de->d_name[0] != '.' && lstat(p, &st) == 0 && S_ISREG(st.st_mode))
            sum += (uint64_t)st.st_blocks * 512u;
    }
    closedir(d);
    return sum;
}

/* The log segments in dir: how many, and the highest seqno. */
static void sc_segments(const char *dir, int *count, uint64_t *newest)
{
    *count = 0;
    *newest = 0;
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strncmp(de->d_name, "log.", 4) != 0 || strlen(de->d_name) != 20)
            continue;
        uint64_t seq = strtoull(de->d_name + 4, NULL, 16);
        (*count)++;
        if (seq > *newest)
            *newest = seq;
    }
    closedir(d);
}

static uint64_t sc_rss(pid_t pid)
{
    char p[64], line[256];
    snprintf(p, sizeof p, "/proc/%d/status", (int)pid);
    FILE *f = fopen(p, "r");
    if (!f)
        return 0;
    uint64_t kb = 0;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "VmRSS:", 6) == 0)
            kb = strtoull(line + 6, NULL, 10);
    fclose(f);
    return kb * 1024u;
}

static void sc_member_dir(const sc_cluster *c, int i, char *out, size_t n)
{
    snprintf(out, n, "%s/m%d", c->dir, i + 1);
}

static pid_t sc_spawn(const sc_opts *o, const sc_cluster *c, int i)
{
    char data[1100], logf[1100], peers[SC_N * 32] = "";
    sc_member_dir(c, i, data, sizeof data);
    snprintf(logf, sizeof logf, "%s/m%d.log", c->dir, i + 1);
    for (int k = 0; k < SC_N; k++) {
        if (k == i)
            continue;
        size_t len = strlen(peers);
        snprintf(peers + len, sizeof peers - len, "%s%s", len ? "," : "", c->addr[k]);
    }
    const char *argv[] = { o->seqd, "serve", "--listen", c->addr[i], "--data", data,
                           "--peers", peers, "--fsync", "always", NULL };
    pid_t pid = bench_fork_logged(logf, (char *const *)argv);
    if (pid < 0)
        sc_die("fork: %s", strerror(errno));
    sc_pids[i] = pid;
    return pid;
}

static bool sc_init(const sc_opts *o, const sc_cluster *c)
{
    pid_t pid = fork();
    if (pid < 0)
        sc_die("fork: %s", strerror(errno));
    if (pid == 0) {
        int nul = open("/dev/null", O_WRONLY);
        if (nul >= 0) {
            dup2(nul, 1);
            dup2(nul, 2);
        }
        const char *argv[] = { o->seqd, "init", "--servers", c->servers, "--timeout", "2000", NULL };
        execv(o->seqd, (char *const *)argv);
        _exit(127);
    }
    int st;
    return waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

/* Until the members in mask all say ready (init first when asked). */
static void sc_wait_ready(const sc_opts *o, sc_cluster *c, unsigned mask, bool init)
{
    double end = sc_now() + SC_READY_S;
    for (;;) {
        if (init && sc_init(o, c))
            init = false;
        bool all = true;
        for (int i = 0; i < SC_N; i++) {
            if (!(mask & (1u << i)))
                continue;
            struct seqd_status st;
            if (client_status(c->status, i, 1000, &st, NULL, 0) != CLIENT_OK || st.state != STATE_READY)
                all = false;
            int wst;
            if (c->pid[i] > 0 && waitpid(c->pid[i], &wst, WNOHANG) == c->pid[i]) {
                c->pid[i] = sc_pids[i] = 0;
                sc_die("member %s exited; see %s/m%d.log", c->addr[i], c->dir, i + 1);
            }
        }
        if (all)
            return;
        if (sc_now() > end)
            sc_die("members not ready within %.0f s; logs in %s", SC_READY_S, c->dir);
        sc_sleep(0.02);
    }
}

static void sc_start(const sc_opts *o, sc_cluster *c, const char *name)
{
    memset(c, 0, sizeof *c);
    snprintf(c->dir, sizeof c->dir, "%s/%s", o->dir, name);
    sc_rmtree(c->dir);
    char parent[1024];
    snprintf(parent, sizeof parent, "%s", o->dir);
    for (char *q = parent + 1; *q; q++) {   /* mkdir -p */
        if (*q != '/')
            continue;
        *q = '\0';
        (void)mkdir(parent, 0755);
        *q = '/';
    }
    if (mkdir(o->dir, 0755) != 0 && errno != EEXIST)
        sc_die("mkdir %s: %s", o->dir, strerror(errno));
    if (mkdir(c->dir, 0755) != 0)
        sc_die("mkdir %s: %s", c->dir, strerror(errno));
    for (int i = 0; i < SC_N; i++) {
        snprintf(c->addr[i], sizeof c->addr[i], "127.0.0.1:%d", o->port + i);
        size_t len = strlen(c->servers);
        snprintf(c->servers + len, sizeof c->servers - len, "%s%s", len ? "," : "", c->addr[i]);
    }
    char err[256];
    if (!(c->status = client_new(c->servers, err, sizeof err)))
        sc_die("%s", err);
    for (int i = 0; i < SC_N; i++)
        c->pid[i] = sc_spawn(o, c, i);
    sc_wait_ready(o, c, (1u << SC_N) - 1, true);
}

/* SIGTERM, and the wait for a clean exit. */
static void sc_stop_member(sc_cluster *c, int i)
{
    if (c->pid[i] <= 0)
        return;
    kill(c->pid[i], SIGTERM);
}

static void sc_reap_member(sc_cluster *c, int i)
{
    if (c->pid[i] <= 0)
        return;
    double end = sc_now() + SC_STOP_S;
    int st = 0;
    pid_t r;
    while ((r = waitpid(c->pid[i], &st, WNOHANG)) == 0 && sc_now() < end)
        sc_sleep(0.005);
    if (r == 0) {
        kill(c->pid[i], SIGKILL);
        waitpid(c->pid[i], &st, 0);
        sc_die("%s did not stop within %.0f s", c->addr[i], SC_STOP_S);
    }
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        sc_die("%s stopped with status %d; see %s/m%d.log", c->addr[i],
               WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st), c->dir, i + 1);
    c->pid[i] = sc_pids[i] = 0;
}

static void sc_stop(sc_cluster *c, bool remove)
{
    for (int i = 0; i < SC_N; i++)
        sc_stop_member(c, i);
    for (int i = 0; i < SC_N; i++)
        sc_reap_member(c, i);
    client_free(c->status);
    c->status = NULL;
    if (remove && !getenv("SCALE_KEEP"))
        sc_rmtree(c->dir);
}

/* ---- the pipelined driver: every name once, through one server list ---- */

typedef struct sc_bulk sc_bulk;
typedef struct sc_slot {
    sc_bulk *b;
    aclient *ac;
} sc_slot;

struct sc_bulk {
    struct event_base *base;
    uint64_t n, next, done, failed;
    int width, inflight;
    char err[256];
    double t0, last_say;
};

static void sc_bulk_name(char *out, size_t n, int width, uint64_t i)
{
    snprintf(out, n, "s%0*" PRIu64, width, i);
}

static void sc_bulk_next(sc_slot *s);

static void sc_bulk_done(void *arg, int rc, uint64_t first, const char *err)
{
    (void)first;
    sc_slot *s = arg;
    sc_bulk *b = s->b;
    b->inflight--;
    b->done++;
    if (rc != CLIENT_OK) {
        if (b->failed++ == 0)
            snprintf(b->err, sizeof b->err, "%s", err);
    }
    double now = sc_now();
    if (now - b->last_say >= 10) {
        sc_say("  %" PRIu64 " of %" PRIu64 " (%.0f/s)", b->done, b->n, (double)b->done / (now - b->t0));
        b->last_say = now;
    }
    sc_bulk_next(s);
    if (b->inflight == 0)
        event_base_loopbreak(b->base);
}

static void sc_bulk_next(sc_slot *s)
{
    sc_bulk *b = s->b;
    if (b->next >= b->n)
        return;
    char name[32], err[256];
    sc_bulk_name(name, sizeof name, b->width, b->next++);
    if (aclient_fetch(s->ac, name, 1, SC_FETCH_TIMEOUT_MS, sc_bulk_done, s, err, sizeof err) != CLIENT_OK)
        sc_die("aclient_fetch: %s", err);
    b->inflight++;
}

/* Fetches s0..s(n-1) once each through `servers`; returns the seconds it
 * took, the failures in *failed. */
static double sc_bulk_run(const sc_opts *o, const char *servers, uint64_t n, int width, uint64_t *failed)
{
    sc_bulk b = { .n = n, .width = width };
    if (!(b.base = event_base_new()))
        sc_die("event_base_new");
    sc_slot *slots = calloc((size_t)o->nclients * (size_t)o->window, sizeof *slots);
    aclient **acs = calloc((size_t)o->nclients, sizeof *acs);
    if (!slots || !acs)
        sc_die("out of memory");
    char err[256];
    for (int i = 0; i < o->nclients; i++)
        if (!(acs[i] = aclient_new(b.base, servers, err, sizeof err)))
            sc_die("%s", err);
    b.t0 = b.last_say = sc_now();
    for (int i = 0; i < o->nclients * o->window; i++) {
        slots[i] = (sc_slot){ .b = &b, .ac = acs[i % o->nclients] };
        sc_bulk_next(&slots[i]);
    }
    if (b.inflight > 0)
        event_base_dispatch(b.base);
    double el = sc_now() - b.t0;
    for (int i = 0; i < o->nclients; i++)
        aclient_free(acs[i]);
    free(acs);
    free(slots);
    event_base_free(b.base);
    if (b.failed)
        sc_say("  %" PRIu64 " fetches failed, the first: %s", b.failed, b.err);
    *failed += b.failed;
    return el;
}

/* ---- the sequences case ---- */

static uint64_t sc_max_growth(const sc_cluster *c, const uint64_t *base, unsigned mask)
{
    uint64_t m = 0;
    for (int i = 0; i < SC_N; i++) {
        if (!(mask & (1u << i)))
            continue;
        uint64_t r = sc_rss(c->pid[i]);
        uint64_t g = r > base[i] ? r - base[i] : 0;
        sc_say("  member %d: VmRSS %.1f MiB (fresh %.1f MiB)", i + 1, (double)r / 1048576.0,
               (double)base[i] / 1048576.0);
        if (g > m)
            m = g;
    }
    return m;
}

/* One fetch of name through member i alone; its latency in ms, or -1. */
static double sc_probe(client *c, const char *name, uint64_t *first)
{
    char err[256];
    double t0 = sc_now();
    int rc = client_fetch(c, name, 1, SC_FETCH_TIMEOUT_MS, first, err, sizeof err);
    if (rc != CLIENT_OK) {
        sc_say("  probe failed: %s", err);
        return -1;
    }
    return (sc_now() - t0) * 1e3;
}

/* The compaction step: see the top. Returns the longest fetch from the
 * signal until the compaction is done (+0.5 s); *base the longest before. */
static double sc_compaction(sc_cluster *c, double *base, uint64_t *failed)
{
    char err[256], dir[1100];
    client *p = client_new(c->addr[0], err, sizeof err);
    if (!p)
        sc_die("%s", err);
    sc_member_dir(c, 0, dir, sizeof dir);
    uint64_t first;
    *base = 0;
    double end = sc_now() + 2;
    while (sc_now() < end) {
        double ms = sc_probe(p, "probe", &first);
        if (ms < 0)
            (*failed)++;
        else if (ms > *base)
            *base = ms;
    }
    int nseg;
    uint64_t newest;
    sc_segments(dir, &nseg, &newest);
    uint64_t before = newest;
    double t0 = sc_now(), worst = 0, done_at = 0;
    kill(c->pid[0], SIGUSR2);
    for (;;) {
        double ms = sc_probe(p, "probe", &first);
        if (ms < 0)
            (*failed)++;
        else if (ms > worst)
            worst = ms;
        double now = sc_now();
        if (done_at == 0) {
            sc_segments(dir, &nseg, &newest);
            if (newest > before && nseg == 1) {
                done_at = now;
                sc_say("  compaction done %.2f s after the signal (longest fetch so far %.1f ms)",
                       now - t0, worst);
            }
        }
        if (done_at > 0 && now - done_at > 0.5)
            break;
        if (now - t0 > SC_READY_S)
            sc_die("member 1 did not compact within %.0f s of SIGUSR2", SC_READY_S);
    }
    client_free(p);
    return worst;
}

static bool sc_sequences(const sc_opts *o, uint64_t n)
{
    sc_cluster c;
    int width = 7;
    for (uint64_t m = n > 0 ? n - 1 : 0; m >= 10000000u; m /= 10)
        width++;
    sc_say("sequences=%" PRIu64 ": starting a fresh cluster", n);
    sc_start(o, &c, "scale-seq");
    uint64_t rss0[SC_N];
    for (int i = 0; i < SC_N; i++)
        rss0[i] = sc_rss(c.pid[i]);
    uint64_t failed = 0;

    sc_say("creating %" PRIu64 " sequences through member 1", n);
    double el = sc_bulk_run(o, c.addr[0], n, width, &failed);
    double create_per_s = (double)n / el;
    sc_say("  %.1f s, %.0f/s", el, create_per_s);
    sc_sleep(1);
    uint64_t acc = sc_max_growth(&c, rss0, 6u);   /* members 2 and 3: accepted only */

    for (int k = 1; k < SC_N; k++) {
        sc_say("fetching every sequence through member %d", k + 1);
        el = sc_bulk_run(o, c.addr[k], n, width, &failed);
        sc_say("  %.1f s, %.0f/s", el, (double)n / el);
    }
    sc_sleep(2);
    uint64_t all = sc_max_growth(&c, rss0, 7u);

    uint64_t logb = 0;
    for (int i = 0; i < SC_N; i++) {
        char dir[1100];
        sc_member_dir(&c, i, dir, sizeof dir);
        uint64_t b = sc_dir_bytes(dir);
        sc_say("  member %d: data directory %.1f MiB", i + 1, (double)b / 1048576.0);
        if (b > logb)
            logb = b;
    }

    sc_say("compacting member 1's log under a steady fetch loop");
    double base_ms = 0;
    double comp_ms = sc_compaction(&c, &base_ms, &failed);

    sc_say("restarting all three");
    double t0 = sc_now();
    for (int i = 0; i < SC_N; i++)
        sc_stop_member(&c, i);
    for (int i = 0; i < SC_N; i++)
        sc_reap_member(&c, i);
    double stopped = sc_now() - t0;
    for (int i = 0; i < SC_N; i++)
        c.pid[i] = sc_spawn(o, &c, i);
    sc_wait_ready(o, &c, 7u, false);
    double restart_s = sc_now() - t0;
    sc_say("  %.2f s (%.2f s of it stopping)", restart_s, stopped);

    sc_say("wiping member 3's data and starting it");
    sc_stop_member(&c, 2);
    sc_reap_member(&c, 2);
    char dir3[1100];
    sc_member_dir(&c, 2, dir3, sizeof dir3);
    sc_rmtree(dir3);
    t0 = sc_now();
    c.pid[2] = sc_spawn(o, &c, 2);
    sc_wait_ready(o, &c, 4u, false);
    double wiped_s = sc_now() - t0;
    sc_say("  %.2f s", wiped_s);
    char err[256];
    client *p3 = client_new(c.addr[2], err, sizeof err);
    uint64_t first = 0;
    char name[32];
    sc_bulk_name(name, sizeof name, width, 0);
    if (!p3 || sc_probe(p3, name, &first) < 0 || first <= 3) {
        sc_say("  after the wipe, %s through member 3 gave %" PRIu64 " (want > 3)", name, first);
        failed++;
    }
    client_free(p3);

    printf("SCALE sequences=%" PRIu64 " create_per_s=%.0f rss_bytes_per_seq=%.0f restart_all_s=%.2f "
           "wiped_recovery_s=%.2f log_bytes_per_seq=%.0f compaction_max_fetch_ms=%.1f "
           "acceptor_rss_bytes_per_seq=%.0f baseline_max_fetch_ms=%.1f failed=%" PRIu64 "\n",
           n, create_per_s, (double)all / (double)n, restart_s, wiped_s, (double)logb / (double)n,
           comp_ms, (double)acc / (double)n, base_ms, failed);
    fflush(stdout);
    sc_stop(&c, true);
    return failed == 0;
}

/* ---- the connections case ---- */

typedef struct sc_conns sc_conns;
typedef struct sc_conn {
    sc_conns *cs;
    aclient *ac;
    uint32_t idx;
    int left;
    double t0;
} sc_conn;

struct sc_conns {
    struct event_base *base;
    uint64_t ok, failed;
    int inflight;
    char err[256];
    double *lat;
    size_t nlat, caplat;
    bool record;
};

static void sc_conn_go(sc_conn *k);

static void sc_conn_done(void *arg, int rc, uint64_t first, const char *err)
{
    (void)first;
    sc_conn *k = arg;
    sc_conns *cs = k->cs;
    cs->inflight--;
    if (rc == CLIENT_OK) {
        cs->ok++;
        if (cs->record && cs->nlat < cs->caplat)
            cs->lat[cs->nlat++] = (sc_now() - k->t0) * 1e6;
    } else if (cs->failed++ == 0) {
        snprintf(cs->err, sizeof cs->err, "%s", err);
    }
    if (--k->left > 0)
        sc_conn_go(k);
    if (cs->inflight == 0)
        event_base_loopbreak(cs->base);
}

static void sc_conn_go(sc_conn *k)
{
    char name[16], err[256];
    snprintf(name, sizeof name, "c%03u", k->idx % 1000u);
    k->t0 = sc_now();
    if (aclient_fetch(k->ac, name, 1, SC_CONN_TIMEOUT_MS, sc_conn_done, k, err, sizeof err) != CLIENT_OK)
        sc_die("aclient_fetch: %s", err);
    k->cs->inflight++;
}

static int sc_cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static bool sc_connections(const sc_opts *o, uint64_t n)
{
    sc_cluster c;
    sc_say("connections=%" PRIu64 ": starting a fresh cluster", n);
    sc_start(o, &c, "scale-conn");
    sc_sleep(0.5);
    uint64_t rss0 = sc_rss(c.pid[0]);
    sc_conns cs = { .caplat = (size_t)n * (size_t)o->conn_rounds };
    cs.lat = calloc(cs.caplat ? cs.caplat : 1, sizeof *cs.lat);
    sc_conn *ks = calloc((size_t)n, sizeof *ks);
    if (!cs.lat || !ks || !(cs.base = event_base_new()))
        sc_die("out of memory");
    char err[256];
    for (uint64_t i = 0; i < n; i++) {
        if (!(ks[i].ac = aclient_new(cs.base, c.addr[0], err, sizeof err)))
            sc_die("%s", err);
        ks[i].cs = &cs;
        ks[i].idx = (uint32_t)i;
    }
    /* Open them, a batch at a time (each by its first fetch): the listener's
     * backlog is 512, and a SYN dropped there costs a 1 s retransmit. */
    double t0 = sc_now();
    for (uint64_t i = 0; i < n; i += SC_CONN_BATCH) {
        for (uint64_t j = i; j < n && j < i + SC_CONN_BATCH; j++) {
            ks[j].left = 1;
            sc_conn_go(&ks[j]);
        }
        if (cs.inflight > 0)
            event_base_dispatch(cs.base);
    }
    sc_say("  %" PRIu64 " connections open in %.2f s (%" PRIu64 " failed)", n, sc_now() - t0, cs.failed);
    sc_sleep(0.5);
    uint64_t rss1 = sc_rss(c.pid[0]);
    sc_say("  member 1: VmRSS %.1f MiB (%.1f MiB before)", (double)rss1 / 1048576.0, (double)rss0 / 1048576.0);
    cs.record = true;
    t0 = sc_now();
    for (uint64_t i = 0; i < n; i++) {
        ks[i].left = o->conn_rounds;
        sc_conn_go(&ks[i]);
    }
    if (cs.inflight > 0)
        event_base_dispatch(cs.base);
    sc_say("  %d fetches on each, all at once: %.2f s", o->conn_rounds, sc_now() - t0);
    if (cs.failed)
        sc_say("  %" PRIu64 " fetches failed, the first: %s", cs.failed, cs.err);
    qsort(cs.lat, cs.nlat, sizeof *cs.lat, sc_cmp);
    double p99 = cs.nlat ? cs.lat[(size_t)((double)(cs.nlat - 1) * 0.99)] : NAN;
    double per = rss1 > rss0 ? (double)(rss1 - rss0) / (double)n : 0;
    printf("SCALE connections=%" PRIu64 " ok=%" PRIu64 " failed=%" PRIu64 " rss_bytes_per_conn=%.0f p99_us=%.0f\n",
           n, cs.ok, cs.failed, per, p99);
    fflush(stdout);
    for (uint64_t i = 0; i < n; i++)
        aclient_free(ks[i].ac);
    free(ks);
    free(cs.lat);
    event_base_free(cs.base);
    sc_stop(&c, true);
    return cs.failed == 0;
}

/* ---- options ---- */

static int sc_list(const char *env, const char *def, uint64_t *out)
{
    const char *s = getenv(env);
    if (!s || !*s)
        s = def;
    int n = 0;
    char buf[256];
    snprintf(buf, sizeof buf, "%s", s);
    for (char *save = NULL, *t = strtok_r(buf, " ,", &save); t; t = strtok_r(NULL, " ,", &save)) {
        char *end;
        unsigned long long v = strtoull(t, &end, 10);
        if (*end || v == 0 || n == SC_MAX_SIZES)
            sc_die("%s: bad entry '%s' (positive numbers, at most %d)", env, t, SC_MAX_SIZES);
        out[n++] = v;
    }
    return n;
}

static int sc_env_int(const char *env, int def)
{
    const char *s = getenv(env);
    return s && *s ? atoi(s) : def;
}

int main(int argc, char **argv)
{
    sc_opts o = { .seqd = "./seqd", .dir = "build/bench-data/scale" };
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--seqd") && i + 1 < argc)
            o.seqd = argv[++i];
        else if (!strcmp(argv[i], "--dir") && i + 1 < argc)
            o.dir = argv[++i];
        else {
            fprintf(stderr, "usage: bench_scale [--seqd PATH] [--dir DIR]\n"
                            "  env: SCALE_SEQUENCES, SCALE_CONNECTIONS (lists; \"\" for defaults, 0 to skip),\n"
                            "       SCALE_PORT, SCALE_CLIENTS, SCALE_WINDOW, SCALE_CONN_ROUNDS, SCALE_KEEP\n");
            return 2;
        }
    }
    o.port = sc_env_int("SCALE_PORT", 19601);
    o.nclients = sc_env_int("SCALE_CLIENTS", 8);
    o.window = sc_env_int("SCALE_WINDOW", 128);
    o.conn_rounds = sc_env_int("SCALE_CONN_ROUNDS", 3);
    const char *skip_s = getenv("SCALE_SEQUENCES"), *skip_c = getenv("SCALE_CONNECTIONS");
    o.nseqs = skip_s && !strcmp(skip_s, "0") ? 0 : sc_list("SCALE_SEQUENCES", "1000000 10000000", o.seqs);
    o.nconns = skip_c && !strcmp(skip_c, "0") ? 0 : sc_list("SCALE_CONNECTIONS", "1000 10000", o.conns);
    if (o.nclients < 1 || o.window < 1 || o.conn_rounds < 1)
        sc_die("SCALE_CLIENTS, SCALE_WINDOW and SCALE_CONN_ROUNDS must be positive");

    /* The bench holds one descriptor per connection it measures. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    uint64_t most = 0;
    for (int i = 0; i < o.nconns; i++)
        most = o.conns[i] > most ? o.conns[i] : most;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && most + 64 > rl.rlim_cur)
        sc_say("warning: RLIMIT_NOFILE is %llu, fewer than %" PRIu64 " connections need (raise ulimit -Hn)",
               (unsigned long long)rl.rlim_cur, most + 64);

    signal(SIGPIPE, SIG_IGN);
    signal(SIGINT, sc_on_signal);
    signal(SIGTERM, sc_on_signal);
    atexit(sc_kill_all);
    bool ok = true;
    for (int i = 0; i < o.nseqs; i++)
        ok = sc_sequences(&o, o.seqs[i]) && ok;
    for (int i = 0; i < o.nconns; i++)
        ok = sc_connections(&o, o.conns[i]) && ok;
    return ok ? 0 : 1;
}
