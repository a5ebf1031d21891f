/* bench/bench_cluster.c — rr_seq's benchmark matrix, on a real local cluster.
 *
 *   make bench [BENCH_ARGS="--seconds 2"]
 *
 * Starts three `seqd serve` processes on 127.0.0.1 (ports 19501-19503 by
 * default; data under build/bench-data, which must not be a tmpfs: its
 * fdatasync is free), first with --fsync always, then with --fsync never,
 * and for each runs buffer sizes 0, 1, 2, 1024 x three client shapes:
 *   single    one thread, one stream, one client;
 *   shared32  32 threads sharing one stream (one client);
 *   indep32   32 independent clients, each with its own stream and client,
 *             the clients' server lists rotated (the client library still
 *             routes every fetch of a sequence to its preferred member
 *             while it is up). Buffered: a thread each. Unbuffered, on the
 *             cluster: one thread drives the 32 (client/client_async.h, each
 *             client its own connections, one fetch in flight), as
 *             redis-benchmark -c 32 and pgbench drive their connections;
 *   threads32 (cluster, buffer 0, in the default matrix) indep32 with a
 *             thread and a blocking client each: what 32 threaded
 *             programs cost, wake-ups included;
 *   spread32  (cluster only, buffers 0 and 1024 in the default matrix) like
 *             indep32 but client i knows only member i%3: three coordinators
 *             compete for one sequence, rr_seq's "Distributed" case.
 * Buffered streams (buffer > 0) run with stream_set_adaptive(buf x 16)
 * (--adaptive K; 1 = fixed ranges of `buf`), cluster and baseline alike:
 * `buf` is the minimum range.
 * Then the same matrix over the in-process baseline (the same stream API
 * over an atomic counter: what the cluster costs over a local counter), and
 * `seqd fetch` timed as a shell script runs it (fork+exec, connect and all).
 *
 * Output: one line per case, fixed prefix (scripts parse it):
 *   BENCH target=<cluster|baseline> fsync=<always|never|-> buf=<n>
 *         clients=<single|shared32|indep32|spread32|threads32> ids_per_s=<n> ns_per_id=<n>
 *         p50_us=<n> p99_us=<n> rounds_per_s=<n>
 *         [stalls_per_1e6=<n>] [nacks_per_s=<n> fsyncs_per_s=<n>] [dups=<n>]
 *         [member_cpu_ns_per_id=<n> cpu_us_per_id=<x.y>]
 * p50/p99: one source call (a fetch round trip; `-` for the baseline);
 * rounds_per_s: the members' ACCEPT rounds, summed, over the case;
 * stalls_per_1e6: stream_next calls that had to wait, per million IDs
 * (buffer 1024); nacks_per_s, fsyncs_per_s: the members' counters, summed.
 * Every ID of every cluster case and of baseline buffer-1024 cases goes
 * through a shared bitmap (dups= counts IDs seen twice; must be 0), and
 * each thread checks its IDs increase. Then
 *   FETCHPROC median_us=<n> p90_us=<n> p99_us=<n> runs=<n> failures=<n>
 * and a readable table. Exit status 1 if any case failed or saw a duplicate.
 *
 * `--secret on|both` runs the clusters with a cluster secret (--secret-file,
 * so every peer frame carries a MAC, DESIGN.md §3): `on` instead of none,
 * `both` once without and once with, per fsync mode, the cases of each in
 * turn; the BENCH lines then say secret=off|on, and a MACCOST line per case
 * gives the ratios with/without of the members' CPU per ID and of IDs/s.
 * member_cpu_ns_per_id (every BENCH line of a cluster this bench started):
 * the members' user+system CPU over the case (/proc/PID/stat utime+stime,
 * every thread, the log's sync thread included), summed, per ID handed
 * out; cpu_us_per_id is the same figure in µs (one decimal, three below
 * 1 µs), the unit the PEER lines of bench/peers.sh use for their servers.
 * Clock ticks are 10 ms: over a few seconds of a busy case the error is
 * well under 1%.
 *
 * `--servers A,B,C --fsync MODE` measures a running three-member cluster
 * instead (nothing started or stopped): handy under perf or strace.
 *
 * Tool modes, for bench/peers.sh (same program, so the numbers are taken
 * the same way):
 *   bench_cluster --raw-fsync SECONDS --dir DIR    the disk's floor: 64-byte
 *       pwrite + fdatasync on a preallocated file -> PEER system=fdatasync ...
 *   bench_cluster --raw-quorum SECONDS --dir DIR   a quorum's floor on this
 *       disk: three writers start together, time until two are durable ->
 *       FLOOR system=fdatasync-2of3 p50_us=<n> p99_us=<n> rounds=<n>
 *   bench_cluster --time-cmd RUNS -- CMD ARGS...   fork+exec timing -> PROC ...
 *
 * Every server started gets PR_SET_PDEATHSIG and is killed on SIGINT/SIGTERM
 * and at exit: the bench never leaves servers behind.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "spawn.h"
#include "../client/client.h"
#include "../client/client_async.h"
#include "../client/stream.h"

#define BENCH_N 3
#define BENCH_THREADS 32
#define BENCH_MAX_CASES 32
#define BENCH_TMPFS_MAGIC 0x01021994
#define BENCH_FETCH_TIMEOUT_MS 5000
#define BENCH_NEXT_TIMEOUT_MS 15000
#define BENCH_READY_MS 30000
#define BENCH_STOP_MS 10000

enum bench_shape { SHAPE_SINGLE, SHAPE_SHARED32, SHAPE_INDEP32, SHAPE_SPREAD32, SHAPE_THREADS32,
                   SHAPE_COUNT };
static const char *const bench_shape_name[] = { "single", "shared32", "indep32", "spread32",
                                                "threads32" };

typedef struct bench_casedef {
    uint32_t buf;
    int shape;
} bench_casedef;

typedef struct bench_opts {
    const char *seqd;
    const char *dir;
    double secs;            /* per cluster case */
    double base_secs;       /* per baseline case */
    int port;               /* first member's port */
    bool fsync_mode[2];     /* [0] always, [1] never */
    bool baseline;
    int fetchproc_runs;
    uint32_t adaptive;      /* buffered streams grow up to buf x this (1: off) */
    const char *servers;    /* an existing cluster to measure (nothing spawned) */
    bool secret_mode[2];    /* [0] clusters without a secret, [1] with one */
    bool secret_given;      /* --secret: BENCH lines say which */
    char secret_path[1100]; /* the secret file of [1] */
    int ncases;
    bench_casedef cases[BENCH_MAX_CASES];
} bench_opts;

/* ---- samples ---- */

typedef struct bench_samples {
    double *v;              /* µs */
    size_t n, cap;
} bench_samples;

static void bench_die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void bench_add(bench_samples *s, double us)
{
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 1024;
        s->v = realloc(s->v, s->cap * sizeof *s->v);
        if (s->v == NULL)
            bench_die("out of memory");
    }
    s->v[s->n++] = us;
}

static int bench_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Nearest-rank percentile; the samples must be sorted. */
static double bench_pct(const bench_samples *s, double p)
{
    if (s->n == 0)
        return NAN;
    size_t i = (size_t)ceil(p * (double)s->n);
    if (i > 0)
        i--;
    if (i >= s->n)
        i = s->n - 1;
    return s->v[i];
}

static double bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void bench_sleep(double secs)
{
    struct timespec ts = { .tv_sec = (time_t)secs,
                           .tv_nsec = (long)((secs - (double)(time_t)secs) * 1e9) };
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* ---- servers: the only global state, because the signal handler and the
 * atexit hook must find them to kill them ---- */

static volatile pid_t bench_pids[BENCH_N];

static void bench_kill_all(void)
{
    for (int i = 0; i < BENCH_N; i++)
        if (bench_pids[i] > 0)
            kill(bench_pids[i], SIGKILL);
}

/* SIGINT/SIGTERM: kill the servers (kill is async-signal-safe) and leave. */
static void bench_on_signal(int sig)
{
    bench_kill_all();
    signal(sig, SIG_DFL);
    raise(sig);
}

static void bench_die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("bench_cluster: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    bench_kill_all();
    exit(1);
}

typedef struct bench_cluster {
    char servers[BENCH_N * 32];
    char addr[BENCH_N][32];
    char dir[1024];
    const char *fsync;
    bool secret;            /* members run with --secret-file (tags on peer frames) */
    client *status;         /* the main thread's client for status calls */
} bench_cluster;

/* Appends one entry to a comma-separated list (truncating, never
 * overflowing: the lists here are a few short addresses). */
static void bench_list_add(char *list, size_t n, const char *item)
{
    size_t len = strlen(list);
    snprintf(list + len, n - len, "%s%s", len ? "," : "", item);
}

static int bench_rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void bench_rmtree(const char *path)
{
    (void)nftw(path, bench_rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static bool bench_port_free(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return false;
    int one = 1;
    (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    bool ok = bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
    close(fd);
    return ok;
}

/* Starts member i: stdout and stderr to its log, dies with this process
 * (PR_SET_PDEATHSIG; forked from the main thread, which lives to the end). */
static pid_t bench_spawn(const bench_opts *o, const bench_cluster *bc, int i)
{
    char data[1100], logf[1100], peers[BENCH_N * 32] = "";
    snprintf(data, sizeof data, "%s/m%d", bc->dir, i + 1);
    snprintf(logf, sizeof logf, "%s/m%d.log", bc->dir, i + 1);
    for (int k = 0; k < BENCH_N; k++) {
        if (k == i)
            continue;
        bench_list_add(peers, sizeof peers, bc->addr[k]);
    }
    const char *argv[16] = { o->seqd, "serve", "--listen", bc->addr[i], "--data", data,
                             "--peers", peers, "--fsync", bc->fsync, NULL };
    if (bc->secret) {
        argv[10] = "--secret-file";
        argv[11] = o->secret_path;
    }
    pid_t pid = bench_fork_logged(logf, (char *const *)argv);
    if (pid < 0)
        bench_die("fork: %s", strerror(errno));
    return pid;
}

/* `seqd init` on a new cluster (DESIGN.md §3: nothing else founds one);
 * false while a member is not listening yet. */
static bool bench_init(const bench_opts *o, const bench_cluster *bc)
{
    pid_t pid = fork();
    if (pid < 0)
        bench_die("fork: %s", strerror(errno));
    if (pid == 0) {
        int devnull = open("/dev/null", O_WRONLY);
        if (devnull >= 0) {
            dup2(devnull, 1);
            dup2(devnull, 2);
        }
        const char *argv[10] = { o->seqd, "init", "--servers", bc->servers, "--timeout", "1000",
                                 NULL };
        if (bc->secret) {
            argv[6] = "--secret-file";
            argv[7] = o->secret_path;
        }
        execv(o->seqd, (char *const *)argv);
        _exit(127);
    }
    int st;
    return waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

/* Polls every member's status until all say ready, running init first
 * when asked (a cluster this bench created). */
static void bench_wait_ready(const bench_opts *o, bench_cluster *bc, bool init)
{
    double end = bench_now() + BENCH_READY_MS / 1000.0;
    for (;;) {
        if (init && bench_init(o, bc))
            init = false;
        int ready = 0;
        for (int i = 0; i < BENCH_N; i++) {
            struct seqd_status st;
            if (client_status(bc->status, i, 500, &st, NULL, 0) == CLIENT_OK &&
                st.state == STATE_READY)
                ready++;
            int wst;
            if (bench_pids[i] > 0 && waitpid(bench_pids[i], &wst, WNOHANG) == bench_pids[i]) {
                bench_pids[i] = 0;
                bench_die("member %s exited during start-up; see %s/m%d.log", bc->addr[i],
                          bc->dir, i + 1);
            }
        }
        if (ready == BENCH_N)
            return;
        if (bench_now() > end)
            bench_die("the cluster was not ready within %d ms; logs in %s", BENCH_READY_MS,
                      bc->dir);
        bench_sleep(0.05);
    }
}

static void bench_cluster_start(const bench_opts *o, bench_cluster *bc, const char *fsync,
                                bool secret)
{
    bc->fsync = fsync;
    bc->secret = secret;
    snprintf(bc->dir, sizeof bc->dir, "%s/cluster-%s%s", o->dir, fsync, secret ? "-secret" : "");
    bench_rmtree(bc->dir);
    if (mkdir(bc->dir, 0755) != 0)
        bench_die("mkdir %s: %s", bc->dir, strerror(errno));
    bc->servers[0] = '\0';
    for (int i = 0; i < BENCH_N; i++) {
        if (!bench_port_free(o->port + i))
            bench_die("port %d is busy (another bench or seqd?); use --port", o->port + i);
        snprintf(bc->addr[i], sizeof bc->addr[i], "127.0.0.1:%d", o->port + i);
        bench_list_add(bc->servers, sizeof bc->servers, bc->addr[i]);
    }
    char err[256];
    bc->status = client_new(bc->servers, err, sizeof err);
    if (bc->status == NULL)
        bench_die("%s", err);
    double t0 = bench_now();
    for (int i = 0; i < BENCH_N; i++)
        bench_pids[i] = bench_spawn(o, bc, i);
    bench_wait_ready(o, bc, true);
    fprintf(stderr, "bench_cluster: cluster --fsync %s%s ready in %.1f s (%s)\n", fsync,
            secret ? " --secret-file" : "", bench_now() - t0, bc->servers);
}

/* Measures a cluster someone else runs (e.g. under perf): the same cases,
 * nothing started or stopped. */
static void bench_cluster_attach(const bench_opts *o, bench_cluster *bc, const char *fsync)
{
    bc->fsync = fsync;
    snprintf(bc->servers, sizeof bc->servers, "%s", o->servers);
    const char *p = o->servers;
    for (int i = 0; i < BENCH_N; i++) {
        const char *q = strchr(p, ',');
        size_t n = q ? (size_t)(q - p) : strlen(p);
        if (n == 0 || n >= sizeof bc->addr[i] || (i < BENCH_N - 1 && q == NULL) ||
            (i == BENCH_N - 1 && q != NULL))
            bench_die("--servers needs exactly %d HOST:PORT entries", BENCH_N);
        snprintf(bc->addr[i], sizeof bc->addr[i], "%.*s", (int)n, p);
        p = q ? q + 1 : p;
    }
    char err[256];
    bc->status = client_new(bc->servers, err, sizeof err);
    if (bc->status == NULL)
        bench_die("%s", err);
    bench_wait_ready(o, bc, false);
}

/* SIGTERM, then SIGKILL after BENCH_STOP_MS. Returns false if a member did
 * not exit 0 (a clean stop is part of what is measured: it must work). */
static bool bench_cluster_stop(bench_cluster *bc, bool remove_data)
{
    bool clean = true;
    for (int i = 0; i < BENCH_N; i++)
        if (bench_pids[i] > 0)
            kill(bench_pids[i], SIGTERM);
    for (int i = 0; i < BENCH_N; i++) {
        if (bench_pids[i] <= 0)
            continue;
        double end = bench_now() + BENCH_STOP_MS / 1000.0;
        int st = 0;
        pid_t r;
        while ((r = waitpid(bench_pids[i], &st, WNOHANG)) == 0 && bench_now() < end)
            bench_sleep(0.01);
        if (r == 0) {
            kill(bench_pids[i], SIGKILL);
            waitpid(bench_pids[i], &st, 0);
            fprintf(stderr, "bench_cluster: %s did not stop within %d ms: killed\n",
                    bc->addr[i], BENCH_STOP_MS);
            clean = false;
        } else if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
            fprintf(stderr, "bench_cluster: %s stopped with status %d\n", bc->addr[i],
                    WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
            clean = false;
        }
        bench_pids[i] = 0;
    }
    client_free(bc->status);
    bc->status = NULL;
    if (remove_data && clean)
        bench_rmtree(bc->dir);
    return clean;
}

/* The members' counters, summed (a member that does not answer counts 0,
 * which only makes the rates look smaller, never invents work). */
typedef struct bench_counters {
    uint64_t rounds, nacks, fsyncs;
} bench_counters;

/* The members' user + system CPU so far, in seconds (NAN when a member's
 * /proc entry cannot be read, or when this bench did not start them). */
static double bench_members_cpu(void)
{
    double sum = 0, tick = (double)sysconf(_SC_CLK_TCK);
    for (int i = 0; i < BENCH_N; i++) {
        if (bench_pids[i] <= 0)
            return NAN;
        char path[64], buf[1024];
        snprintf(path, sizeof path, "/proc/%d/stat", (int)bench_pids[i]);
        FILE *f = fopen(path, "r");
        size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
        if (f)
            fclose(f);
        buf[n] = '\0';
        char *p = strrchr(buf, ')');   /* the command may hold spaces; fields 3.. follow */
        unsigned long long ut = 0, st = 0;
        if (p == NULL || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
                                &ut, &st) != 2)
            return NAN;
        sum += (double)(ut + st) / tick;
    }
    return sum;
}

static bench_counters bench_counters_get(bench_cluster *bc)
{
    bench_counters sum = { 0 };
    for (int i = 0; i < BENCH_N; i++) {
        struct seqd_status st;
        if (client_status(bc->status, i, 2000, &st, NULL, 0) == CLIENT_OK) {
            sum.rounds += st.rounds;
            sum.nacks += st.nacks;
            sum.fsyncs += st.fsyncs;
        }
    }
    return sum;
}

/* ---- the uniqueness check: one bit per ID, pages allocated on first use,
 * set with an atomic OR so that 32 threads can check without a lock ---- */

#define BENCH_PAGE_BITS 23                      /* 1 MiB of bits per page */
#define BENCH_PAGES (1u << 17)                  /* IDs up to 2^40 */

typedef struct bench_bitmap {
    _Atomic(_Atomic uint64_t *) page[BENCH_PAGES];
    atomic_ullong dups, out_of_range;
} bench_bitmap;

static bench_bitmap *bench_bitmap_new(void)
{
    bench_bitmap *b = calloc(1, sizeof *b);
    if (b == NULL)
        bench_die("out of memory");
    return b;
}

static void bench_bitmap_free(bench_bitmap *b)
{
    for (size_t i = 0; i < BENCH_PAGES; i++)
        free((void *)atomic_load(&b->page[i]));
    free(b);
}

static void bench_bitmap_set(bench_bitmap *b, uint64_t id)
{
    uint64_t page = id >> BENCH_PAGE_BITS;
    if (page >= BENCH_PAGES) {
        atomic_fetch_add(&b->out_of_range, 1);
        return;
    }
    _Atomic uint64_t *p = atomic_load_explicit(&b->page[page], memory_order_acquire);
    if (p == NULL) {
        _Atomic uint64_t *fresh = calloc((1u << BENCH_PAGE_BITS) / 64, sizeof *fresh);
        if (fresh == NULL)
            bench_die("out of memory");
        _Atomic uint64_t *expect = NULL;
        if (atomic_compare_exchange_strong(&b->page[page], &expect, fresh))
            p = fresh;
        else {
            free((void *)fresh);
            p = expect;
        }
    }
    uint64_t bit = id & ((1u << BENCH_PAGE_BITS) - 1);
    uint64_t mask = 1ull << (bit & 63);
    if (atomic_fetch_or_explicit(&p[bit >> 6], mask, memory_order_relaxed) & mask)
        atomic_fetch_add(&b->dups, 1);
}

/* ---- one case ---- */

/* The source of one cluster stream: client_fetch, timed. Only one thread
 * at a time calls it per stream (the stream's contract), so the samples
 * need no lock. */
typedef struct bench_src {
    client *c;
    const char *name;
    bench_samples lat;
    char err[256];
} bench_src;

static int bench_src_fetch(void *ctx, uint32_t count, uint64_t *first, char *err, size_t errlen)
{
    bench_src *s = ctx;
    double t0 = bench_now();
    int rc = client_fetch(s->c, s->name, count, BENCH_FETCH_TIMEOUT_MS, first, err, errlen);
    if (rc == CLIENT_OK)
        bench_add(&s->lat, (bench_now() - t0) * 1e6);
    return rc;
}

typedef struct bench_worker {
    stream *s;
    bench_bitmap *bm;       /* NULL: no uniqueness check */
    atomic_bool *stop;
    uint64_t ids;
    uint64_t not_increasing;
    int errors;
    char err[256];
    pthread_t th;
} bench_worker;

static void *bench_worker_main(void *arg)
{
    bench_worker *w = arg;
    uint64_t prev = 0;
    while (!atomic_load_explicit(w->stop, memory_order_relaxed)) {
        uint64_t id;
        if (stream_next(w->s, &id, BENCH_NEXT_TIMEOUT_MS, w->err, sizeof w->err) != CLIENT_OK) {
            w->errors++;
            break;
        }
        w->ids++;
        if (id <= prev)
            w->not_increasing++;
        prev = id;
        if (w->bm != NULL)
            bench_bitmap_set(w->bm, id);
    }
    return NULL;
}

typedef struct bench_result {
    const char *target, *fsync;
    uint32_t buf;
    int shape;
    bool ok;
    double ids_s, ns_id, p50, p99, rounds_s;   /* NAN: none */
    double nacks_s, fsyncs_s;                  /* NAN: none */
    double stalls_1e6;                         /* NAN: not reported */
    double cpu_id;                             /* members' CPU ns per ID; NAN: none */
    const char *secret;                        /* "on" / "off", NULL: not asked */
    int64_t dups;                              /* -1: not checked */
    char why[300];
} bench_result;

/* ---- buffer 0, 32 independent clients driven by one event loop ---- */

/* One of the 32: its own aclient (so its own connections), one fetch in
 * flight at a time, the way redis-benchmark -c 32 and pgbench -c 32 -j 1
 * drive their connections from one thread. */
typedef struct bench_lclient {
    struct bench_loop *lp;
    aclient *ac;
    double t0;
    uint64_t prev, ids, not_increasing;
    bool busy;
} bench_lclient;

typedef struct bench_loop {
    struct event_base *base;
    const char *name;
    bench_bitmap *bm;
    bench_samples lat;
    bool stop;
    int busy, errors;
    char err[256];
    bench_lclient cl[BENCH_THREADS];
} bench_loop;

static void bench_loop_next(bench_lclient *c);

static void bench_loop_done(void *arg, int rc, uint64_t first, const char *err)
{
    bench_lclient *c = arg;
    bench_loop *lp = c->lp;
    c->busy = false;
    lp->busy--;
    if (rc != CLIENT_OK) {
        lp->errors++;
        snprintf(lp->err, sizeof lp->err, "%s", err);
        lp->stop = true;
    } else {
        bench_add(&lp->lat, (bench_now() - c->t0) * 1e6);
        c->ids++;
        c->not_increasing += first <= c->prev;
        c->prev = first;
        bench_bitmap_set(lp->bm, first);
    }
    if (!lp->stop)
        bench_loop_next(c);
    if (lp->busy == 0)
        event_base_loopbreak(lp->base);
}

static void bench_loop_next(bench_lclient *c)
{
    bench_loop *lp = c->lp;
    c->t0 = bench_now();
    if (aclient_fetch(c->ac, lp->name, 1, BENCH_FETCH_TIMEOUT_MS, bench_loop_done, c, lp->err,
                      sizeof lp->err) != CLIENT_OK) {
        lp->errors++;
        lp->stop = true;
        return;
    }
    c->busy = true;
    lp->busy++;
}

static void bench_loop_stop_cb(evutil_socket_t fd, short what, void *arg)
{
    bench_loop *lp = arg;
    (void)fd;
    (void)what;
    lp->stop = true;   /* the fetches in flight finish; the last one breaks */
}

/* The case itself: same figures, same checks as the threaded cases. */
static void bench_loop_case(bench_cluster *bc, const char *name, double secs, bench_result *r,
                            bench_bitmap *bm, uint64_t *ids, uint64_t *bad_order,
                            bench_samples *lat, double *el)
{
    bench_loop *lp = calloc(1, sizeof *lp);
    if (lp == NULL || (lp->base = event_base_new()) == NULL)
        bench_die("out of memory");
    lp->name = name;
    lp->bm = bm;
    char err[256];
    for (int i = 0; i < BENCH_THREADS; i++) {
        char list[BENCH_N * 32] = "";
        for (int k = 0; k < BENCH_N; k++)
            bench_list_add(list, sizeof list, bc->addr[(i + k) % BENCH_N]);
        lp->cl[i] = (bench_lclient){ .lp = lp };
        lp->cl[i].ac = aclient_new(lp->base, list, err, sizeof err);
        if (lp->cl[i].ac == NULL)
            bench_die("%s", err);
    }
    struct timeval tv = { (time_t)secs, (suseconds_t)((secs - (double)(time_t)secs) * 1e6) };
    event_base_once(lp->base, -1, EV_TIMEOUT, bench_loop_stop_cb, lp, &tv);
    double t0 = bench_now();
    for (int i = 0; i < BENCH_THREADS && !lp->stop; i++)
        bench_loop_next(&lp->cl[i]);
    if (lp->busy > 0)
        event_base_dispatch(lp->base);
    *el = bench_now() - t0;
    for (int i = 0; i < BENCH_THREADS; i++) {
        *ids += lp->cl[i].ids;
        *bad_order += lp->cl[i].not_increasing;
        aclient_free(lp->cl[i].ac);
    }
    if (lp->errors > 0) {
        r->ok = false;
        snprintf(r->why, sizeof r->why, "fetch failed: %s", lp->err);
    }
    *lat = lp->lat;
    event_base_free(lp->base);
    free(lp);
}

/* Runs one case: builds the streams (over the cluster when bc != NULL, else
 * over a local counter), lets the threads consume for `secs`, and gathers
 * the figures. */
static void bench_case(bench_cluster *bc, uint32_t buf, int shape, double secs,
                       uint32_t adaptive, bench_result *r)
{
    /* Unbuffered independent clients on the cluster run on one event
     * loop (bench_loop_case); threads32 is the same with a thread each. */
    bool loop = bc != NULL && buf == 0 && shape == SHAPE_INDEP32;
    int nthreads = loop ? 0 : shape == SHAPE_SINGLE ? 1 : BENCH_THREADS;
    int nstreams = loop ? 0 : shape == SHAPE_SHARED32 || shape == SHAPE_SINGLE ? 1 : BENCH_THREADS;
    char name[64], err[256];
    snprintf(name, sizeof name, "bench.%s.b%u.%s", bc ? bc->fsync : "local", buf,
             bench_shape_name[shape]);
    *r = (bench_result){ .target = bc ? "cluster" : "baseline", .fsync = bc ? bc->fsync : "-",
                         .buf = buf, .shape = shape, .ok = true, .p50 = NAN, .p99 = NAN,
                         .rounds_s = NAN, .nacks_s = NAN, .fsyncs_s = NAN,
                         .stalls_1e6 = NAN, .dups = -1, .cpu_id = NAN };
    bench_src *src = calloc((size_t)nstreams + 1, sizeof *src);
    stream **st = calloc((size_t)nstreams + 1, sizeof *st);
    bench_worker *w = calloc((size_t)nthreads + 1, sizeof *w);
    stream_counter ctr;
    atomic_init(&ctr.next, 1);
    if (src == NULL || st == NULL || w == NULL)
        bench_die("out of memory");
    for (int i = 0; i < nstreams; i++) {
        if (bc != NULL) {
            /* indep32: the member list rotated per client, as independent
             * programs would be configured; the client library still sends
             * every fetch of a sequence to its preferred member while that
             * one is healthy. spread32: client i knows only member i%N, so
             * three coordinators compete for one sequence (the leaderless
             * worst case, rr_seq's "Distributed"). */
            char list[BENCH_N * 32] = "";
            for (int k = 0; k < (shape == SHAPE_SPREAD32 ? 1 : BENCH_N); k++)
                bench_list_add(list, sizeof list, bc->addr[(i + k) % BENCH_N]);
            src[i].name = name;
            src[i].c = client_new(list, err, sizeof err);
            if (src[i].c == NULL)
                bench_die("%s", err);
            st[i] = stream_new(bench_src_fetch, &src[i], buf, err, sizeof err);
        } else {
            st[i] = stream_new(stream_counter_source, &ctr, buf, err, sizeof err);
        }
        if (st[i] == NULL)
            bench_die("stream_new: %s", err);
        if (buf > 0 && adaptive > 1)
            stream_set_adaptive(st[i], buf * adaptive);
    }
    bool check = bc != NULL || buf == 1024;
    bench_bitmap *bm = check ? bench_bitmap_new() : NULL;
    atomic_bool stop;
    atomic_init(&stop, false);
    bench_counters c0 = { 0 }, c1 = { 0 };
    double cpu0 = NAN;
    if (bc != NULL) {
        c0 = bench_counters_get(bc);
        cpu0 = bench_members_cpu();
    }
    double t0 = bench_now();
    for (int i = 0; i < nthreads; i++) {
        w[i] = (bench_worker){ .s = st[i % nstreams], .bm = bm, .stop = &stop };
        if (pthread_create(&w[i].th, NULL, bench_worker_main, &w[i]) != 0)
            bench_die("pthread_create failed");
    }
    uint64_t ids = 0, bad_order = 0;
    bench_samples all = { 0 };
    double el = 0;
    if (loop)
        bench_loop_case(bc, name, secs, r, bm, &ids, &bad_order, &all, &el);
    else
        bench_sleep(secs);
    atomic_store(&stop, true);
    for (int i = 0; i < nthreads; i++) {
        pthread_join(w[i].th, NULL);
        ids += w[i].ids;
        bad_order += w[i].not_increasing;
        if (w[i].errors && r->ok) {
            r->ok = false;
            snprintf(r->why, sizeof r->why, "stream_next failed: %s", w[i].err);
        }
    }
    if (!loop)
        el = bench_now() - t0;
    double cpu1 = bc != NULL ? bench_members_cpu() : NAN;
    if (bc != NULL)
        c1 = bench_counters_get(bc);

    uint64_t stalls = 0;
    for (int i = 0; i < nstreams; i++) {
        struct stream_stats ss;
        stream_stats(st[i], &ss);
        stalls += ss.stalls;
        stream_free(st[i]);
        if (bc != NULL) {
            for (size_t k = 0; k < src[i].lat.n; k++)
                bench_add(&all, src[i].lat.v[k]);
            free(src[i].lat.v);
            client_free(src[i].c);
        }
    }
    r->ids_s = (double)ids / el;
    if (ids > 0)
        r->cpu_id = (cpu1 - cpu0) * 1e9 / (double)ids;   /* NAN stays NAN */
    r->ns_id = ids ? el * 1e9 / (double)ids : NAN;
    if (all.n > 0) {
        qsort(all.v, all.n, sizeof *all.v, bench_cmp_double);
        r->p50 = bench_pct(&all, 0.50);
        r->p99 = bench_pct(&all, 0.99);
    }
    free(all.v);
    if (bc != NULL) {
        r->rounds_s = (double)(c1.rounds - c0.rounds) / el;
        r->nacks_s = (double)(c1.nacks - c0.nacks) / el;
        r->fsyncs_s = (double)(c1.fsyncs - c0.fsyncs) / el;
    }
    if (buf == 1024)
        r->stalls_1e6 = ids ? (double)stalls * 1e6 / (double)ids : 0;
    if (bm != NULL) {
        r->dups = (int64_t)atomic_load(&bm->dups);
        if (r->dups > 0 || atomic_load(&bm->out_of_range) > 0) {
            r->ok = false;
            snprintf(r->why, sizeof r->why, "%lld IDs handed out twice, %llu out of range",
                     (long long)r->dups, (unsigned long long)atomic_load(&bm->out_of_range));
        }
        bench_bitmap_free(bm);
    }
    if (bad_order > 0 && r->ok) {
        r->ok = false;
        snprintf(r->why, sizeof r->why, "%llu IDs not above the previous one of their thread",
                 (unsigned long long)bad_order);
    }
    if (ids == 0 && r->ok) {
        r->ok = false;
        snprintf(r->why, sizeof r->why, "no ID at all in %.1f s", el);
    }
    free(src);
    free(st);
    free(w);
}

/* A figure or `-` where there is none. */
static const char *bench_fmt(char *buf, size_t n, double v)
{
    if (isnan(v))
        snprintf(buf, n, "-");
    else
        snprintf(buf, n, "%.0f", v);
    return buf;
}

static void bench_print(const bench_result *r)
{
    char a[32], b[32], c[32], d[32], e[32], f[32];
    if (!r->ok) {
        printf("BENCHFAIL target=%s fsync=%s buf=%u clients=%s why=\"%s\"\n", r->target, r->fsync,
               r->buf, bench_shape_name[r->shape], r->why);
        fflush(stdout);
        return;
    }
    printf("BENCH target=%s fsync=%s%s%s buf=%u clients=%s ids_per_s=%s ns_per_id=%s p50_us=%s "
           "p99_us=%s rounds_per_s=%s",
           r->target, r->fsync, r->secret ? " secret=" : "", r->secret ? r->secret : "", r->buf,
           bench_shape_name[r->shape],
           bench_fmt(a, sizeof a, r->ids_s), bench_fmt(b, sizeof b, r->ns_id),
           bench_fmt(c, sizeof c, r->p50), bench_fmt(d, sizeof d, r->p99),
           bench_fmt(e, sizeof e, r->rounds_s));
    if (!isnan(r->stalls_1e6))
        printf(" stalls_per_1e6=%s", bench_fmt(f, sizeof f, r->stalls_1e6));
    if (!isnan(r->nacks_s))
        printf(" nacks_per_s=%s fsyncs_per_s=%s", bench_fmt(a, sizeof a, r->nacks_s),
               bench_fmt(b, sizeof b, r->fsyncs_s));
    if (r->dups >= 0)
        printf(" dups=%lld", (long long)r->dups);
    if (!isnan(r->cpu_id))
        printf(" member_cpu_ns_per_id=%s cpu_us_per_id=%.*f", bench_fmt(a, sizeof a, r->cpu_id),
               r->cpu_id < 1e3 ? 3 : 1, r->cpu_id / 1e3);
    printf("\n");
    fflush(stdout);
}

/* ---- fork+exec timing ---- */

/* Runs argv `runs` times as a child process (stdout to /dev/null), each
 * timed from fork to reaped: what a shell script pays per call. */
static int bench_time_cmd(char *const *argv, int runs, bench_samples *s, int *failures)
{
    int nul = open("/dev/null", O_WRONLY | O_CLOEXEC);
    if (nul < 0)
        return -1;
    *failures = 0;
    for (int i = 0; i < runs; i++) {
        double t0 = bench_now();
        pid_t pid = fork();
        if (pid < 0) {
            close(nul);
            return -1;
        }
        if (pid == 0) {
            dup2(nul, 1);
            execvp(argv[0], argv);
            _exit(127);
        }
        int st;
        while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
            ;
        bench_add(s, (bench_now() - t0) * 1e6);
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
            (*failures)++;
    }
    close(nul);
    qsort(s->v, s->n, sizeof *s->v, bench_cmp_double);
    return 0;
}

/* ---- the disk's floor ---- */

/* 64-byte pwrite + fdatasync at increasing offsets of a preallocated,
 * zero-filled file: the least a durable acknowledgement can cost here. */
/* A file of `size` zero bytes, written and synced, so that later writes
 * into it are data-only (the log preallocates its segments the same way). */
static int bench_prealloc(const char *path, size_t size)
{
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        fprintf(stderr, "bench_cluster: %s: %s\n", path, strerror(errno));
        return -1;
    }
    char *z = calloc(1, 1u << 20);
    if (z == NULL)
        bench_die("out of memory");
    (void)posix_fallocate(fd, 0, (off_t)size);
    for (size_t off = 0; off < size; off += 1u << 20)
        if (pwrite(fd, z, 1u << 20, (off_t)off) != 1 << 20)
            bench_die("pwrite %s: %s", path, strerror(errno));
    if (fsync(fd) != 0)
        bench_die("fsync %s: %s", path, strerror(errno));
    free(z);
    return fd;
}

#define BENCH_RAW_SIZE (64u << 20)
#define BENCH_RAW_REC 64u

/* One 64-byte record at off, made durable; the time it took in µs. */
static double bench_raw_write(int fd, size_t off)
{
    char buf[BENCH_RAW_REC];
    memset(buf, 0x5a, sizeof buf);
    double a = bench_now();
    if (pwrite(fd, buf, sizeof buf, (off_t)off) != (ssize_t)sizeof buf || fdatasync(fd) != 0)
        bench_die("pwrite/fdatasync: %s", strerror(errno));
    return (bench_now() - a) * 1e6;
}

/* The disk's floor: one writer, pwrite + fdatasync in a loop. */
static int bench_raw_fsync(const char *dir, double secs)
{
    char path[1100];
    snprintf(path, sizeof path, "%s/raw-fsync", dir);
    int fd = bench_prealloc(path, BENCH_RAW_SIZE);
    if (fd < 0)
        return 1;
    bench_samples s = { 0 };
    double t0 = bench_now();
    for (size_t off = 0; bench_now() - t0 < secs && off + BENCH_RAW_REC <= BENCH_RAW_SIZE;
         off += BENCH_RAW_REC)
        bench_add(&s, bench_raw_write(fd, off));
    double el = bench_now() - t0;
    close(fd);
    unlink(path);
    qsort(s.v, s.n, sizeof *s.v, bench_cmp_double);
    printf("PEER system=fdatasync clients=1 ids_per_s=%.0f p50_us=%.0f p99_us=%.0f\n",
           (double)s.n / el, bench_pct(&s, 0.5), bench_pct(&s, 0.99));
    free(s.v);
    return 0;
}

/* The quorum's floor when three members share this disk: three writers,
 * each its own file, start a pwrite + fdatasync together; the figure is
 * the time until the second of them is durable (Q = 2 of 3). Flushes of
 * one device do not overlap, so this is what any replicated commit costs
 * here before a single message is sent. */
typedef struct bench_qw {
    int fd;
    pthread_barrier_t *bar;
    atomic_bool *stop;
    double *start, *end;        /* per iteration, µs since t0 */
    size_t n;
    double t0;
} bench_qw;

static void *bench_qw_main(void *arg)
{
    bench_qw *w = arg;
    for (size_t i = 0;; i++) {
        pthread_barrier_wait(w->bar);
        if (atomic_load(w->stop))
            return NULL;
        w->start[i] = (bench_now() - w->t0) * 1e6;
        w->end[i] = w->start[i] + bench_raw_write(w->fd, i * BENCH_RAW_REC);
        w->n = i + 1;
        pthread_barrier_wait(w->bar);
    }
}

static int bench_raw_quorum(const char *dir, double secs)
{
    enum { W = 3 };
    size_t max = BENCH_RAW_SIZE / BENCH_RAW_REC;
    bench_qw w[W];
    pthread_t th[W];
    pthread_barrier_t bar;
    atomic_bool stop;
    atomic_init(&stop, false);
    pthread_barrier_init(&bar, NULL, W + 1);
    double t0 = bench_now();
    for (int k = 0; k < W; k++) {
        char path[1100];
        snprintf(path, sizeof path, "%s/raw-quorum-%d", dir, k);
        w[k] = (bench_qw){ .fd = bench_prealloc(path, BENCH_RAW_SIZE), .bar = &bar,
                           .stop = &stop, .start = calloc(max, sizeof(double)),
                           .end = calloc(max, sizeof(double)), .t0 = t0 };
        unlink(path);
        if (w[k].fd < 0 || !w[k].start || !w[k].end)
            bench_die("cannot prepare %s", path);
        if (pthread_create(&th[k], NULL, bench_qw_main, &w[k]) != 0)
            bench_die("pthread_create failed");
    }
    double t1 = bench_now();
    size_t n = 0;
    for (; n < max && bench_now() - t1 < secs; n++) {
        pthread_barrier_wait(&bar);   /* go */
        pthread_barrier_wait(&bar);   /* all three done */
    }
    atomic_store(&stop, true);
    pthread_barrier_wait(&bar);
    bench_samples s = { 0 };
    for (size_t i = 0; i < n; i++) {
        double st = w[0].start[i], e[W];
        for (int k = 0; k < W; k++) {
            st = w[k].start[i] < st ? w[k].start[i] : st;
            e[k] = w[k].end[i];
        }
        qsort(e, W, sizeof *e, bench_cmp_double);
        bench_add(&s, e[1] - st);
    }
    for (int k = 0; k < W; k++) {
        pthread_join(th[k], NULL);
        close(w[k].fd);
        free(w[k].start);
        free(w[k].end);
    }
    pthread_barrier_destroy(&bar);
    qsort(s.v, s.n, sizeof *s.v, bench_cmp_double);
    printf("FLOOR system=fdatasync-2of3 p50_us=%.0f p99_us=%.0f rounds=%zu\n", bench_pct(&s, 0.5),
           bench_pct(&s, 0.99), s.n);
    free(s.v);
    return 0;
}

/* ---- options ---- */

static void bench_usage(void)
{
    fprintf(stderr,
            "usage: bench_cluster [--seqd PATH] [--dir DIR] [--seconds S] [--base-seconds S]\n"
            "                     [--port P] [--fsync always,never] [--bufs 0,1,2,1024]\n"
            "                     [--clients single,shared32,indep32] [--cases BUF:SHAPE,...]\n"
            "                     [--no-baseline] [--fetchproc RUNS] [--secret off|on|both]\n"
            "                     [--adaptive K  (buffered streams grow their range up to\n"
            "                      K x buffer after stalls, cluster and baseline alike;\n"
            "                      default 16, 1 = fixed ranges)]\n"
            "                     [--servers A,B,C  (a running 3-member cluster: nothing is\n"
            "                      started; --fsync names its mode, one only)]\n"
            "       bench_cluster --raw-fsync SECONDS [--dir DIR]\n"
            "       bench_cluster --raw-quorum SECONDS [--dir DIR]\n"
            "       bench_cluster --time-cmd RUNS -- CMD [ARGS...]\n");
    exit(2);
}

static int bench_shape_parse(const char *s, size_t n)
{
    for (int k = 0; k < SHAPE_COUNT; k++)
        if (strlen(bench_shape_name[k]) == n && strncmp(s, bench_shape_name[k], n) == 0)
            return k;
    return -1;
}

/* Splits a comma list and calls fn on each item. */
static void bench_each(const char *list, void (*fn)(const char *, size_t, void *), void *arg)
{
    const char *p = list;
    for (;;) {
        const char *q = strchr(p, ',');
        size_t n = q ? (size_t)(q - p) : strlen(p);
        if (n > 0)
            fn(p, n, arg);
        if (q == NULL)
            break;
        p = q + 1;
    }
}

typedef struct bench_lists {
    uint32_t bufs[8];
    int nbufs;
    int shapes[SHAPE_COUNT];
    int nshapes;
    bench_opts *o;
} bench_lists;

static void bench_add_buf(const char *s, size_t n, void *arg)
{
    bench_lists *l = arg;
    if (l->nbufs == 8)
        bench_usage();
    l->bufs[l->nbufs++] = (uint32_t)strtoul(s, NULL, 10);
    (void)n;
}

static void bench_add_shape(const char *s, size_t n, void *arg)
{
    bench_lists *l = arg;
    int k = bench_shape_parse(s, n);
    if (k < 0 || l->nshapes == SHAPE_COUNT)
        bench_usage();
    l->shapes[l->nshapes++] = k;
}

static void bench_add_case(const char *s, size_t n, void *arg)
{
    bench_opts *o = ((bench_lists *)arg)->o;
    const char *colon = memchr(s, ':', n);
    if (colon == NULL || o->ncases == BENCH_MAX_CASES)
        bench_usage();
    int k = bench_shape_parse(colon + 1, n - (size_t)(colon + 1 - s));
    if (k < 0)
        bench_usage();
    o->cases[o->ncases].buf = (uint32_t)strtoul(s, NULL, 10);
    o->cases[o->ncases].shape = k;
    o->ncases++;
}

static void bench_add_fsync(const char *s, size_t n, void *arg)
{
    bench_opts *o = ((bench_lists *)arg)->o;
    if (n == 6 && strncmp(s, "always", 6) == 0)
        o->fsync_mode[0] = true;
    else if (n == 5 && strncmp(s, "never", 5) == 0)
        o->fsync_mode[1] = true;
    else
        bench_usage();
}

static void bench_parse(int argc, char **argv, bench_opts *o)
{
    bench_lists l = { .bufs = { 0, 1, 2, 1024 }, .nbufs = 4, .shapes = { 0, 1, 2 },
                      .nshapes = 3, .o = o };
    bool bufs_given = false, shapes_given = false, fsync_given = false;
    const char *cases = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--no-baseline") == 0) {
            o->baseline = false;
            continue;
        }
        if (v == NULL)
            bench_usage();
        i++;
        if (strcmp(a, "--seqd") == 0)
            o->seqd = v;
        else if (strcmp(a, "--dir") == 0)
            o->dir = v;
        else if (strcmp(a, "--seconds") == 0)
            o->secs = atof(v);
        else if (strcmp(a, "--base-seconds") == 0)
            o->base_secs = atof(v);
        else if (strcmp(a, "--port") == 0)
            o->port = atoi(v);
        else if (strcmp(a, "--fetchproc") == 0)
            o->fetchproc_runs = atoi(v);
        else if (strcmp(a, "--adaptive") == 0)
            o->adaptive = (uint32_t)atoi(v);
        else if (strcmp(a, "--cases") == 0)
            cases = v;
        else if (strcmp(a, "--servers") == 0)
            o->servers = v;
        else if (strcmp(a, "--secret") == 0) {
            o->secret_given = true;
            o->secret_mode[0] = strcmp(v, "off") == 0 || strcmp(v, "both") == 0;
            o->secret_mode[1] = strcmp(v, "on") == 0 || strcmp(v, "both") == 0;
            if (!o->secret_mode[0] && !o->secret_mode[1])
                bench_usage();
        }
        else if (strcmp(a, "--fsync") == 0) {
            if (!fsync_given)
                o->fsync_mode[0] = o->fsync_mode[1] = false;
            fsync_given = true;
            bench_each(v, bench_add_fsync, &l);
        } else if (strcmp(a, "--bufs") == 0) {
            if (!bufs_given)
                l.nbufs = 0;
            bufs_given = true;
            bench_each(v, bench_add_buf, &l);
        } else if (strcmp(a, "--clients") == 0) {
            if (!shapes_given)
                l.nshapes = 0;
            shapes_given = true;
            bench_each(v, bench_add_shape, &l);
        } else
            bench_usage();
    }
    if (o->secs <= 0 || o->base_secs <= 0 || o->port < 1 || o->port > 65533)
        bench_usage();
    if (o->servers != NULL && o->fsync_mode[0] && o->fsync_mode[1])
        bench_usage();
    if (o->servers != NULL && o->secret_given)
        bench_usage();
    if (cases != NULL) {
        bench_each(cases, bench_add_case, &l);
        return;
    }
    for (int b = 0; b < l.nbufs; b++)
        for (int s = 0; s < l.nshapes; s++) {
            if (o->ncases == BENCH_MAX_CASES)
                bench_usage();
            o->cases[o->ncases].buf = l.bufs[b];
            o->cases[o->ncases].shape = l.shapes[s];
            o->ncases++;
        }
    /* The default matrix adds the competing-coordinators shape at both ends
     * of the buffer range (cluster only: the baseline has no members). */
    if (!bufs_given && !shapes_given) {
        o->cases[o->ncases++] = (bench_casedef){ .buf = 0, .shape = SHAPE_SPREAD32 };
        o->cases[o->ncases++] = (bench_casedef){ .buf = 1024, .shape = SHAPE_SPREAD32 };
        o->cases[o->ncases++] = (bench_casedef){ .buf = 0, .shape = SHAPE_THREADS32 };
    }
}

/* ---- the table ---- */

static void bench_table(const bench_result *r, int n)
{
    printf("\n%-8s %-10s %5s %-9s %12s %10s %9s %9s %9s %9s %9s %10s %11s\n", "target", "fsync",
           "buf", "clients", "IDs/s", "ns/ID", "p50 us", "p99 us", "rounds/s", "nacks/s",
           "fsyncs/s", "stalls/1e6", "cpu ns/ID");
    for (int i = 0; i < n; i++) {
        char a[32], b[32], c[32], d[32], e[32], f[32], g[32], h[32], k[32], fs[16];
        /* "+mac": a cluster with a secret (--secret), its peer frames tagged */
        snprintf(fs, sizeof fs, "%s%s", r[i].fsync,
                 r[i].secret && strcmp(r[i].secret, "on") == 0 ? "+mac" : "");
        if (!r[i].ok) {
            printf("%-8s %-10s %5u %-9s FAILED: %s\n", r[i].target, fs, r[i].buf,
                   bench_shape_name[r[i].shape], r[i].why);
            continue;
        }
        printf("%-8s %-10s %5u %-9s %12s %10s %9s %9s %9s %9s %9s %10s %11s\n", r[i].target,
               fs, r[i].buf, bench_shape_name[r[i].shape],
               bench_fmt(a, sizeof a, r[i].ids_s), bench_fmt(b, sizeof b, r[i].ns_id),
               bench_fmt(c, sizeof c, r[i].p50), bench_fmt(d, sizeof d, r[i].p99),
               bench_fmt(e, sizeof e, r[i].rounds_s), bench_fmt(g, sizeof g, r[i].nacks_s),
               bench_fmt(h, sizeof h, r[i].fsyncs_s), bench_fmt(f, sizeof f, r[i].stalls_1e6),
               bench_fmt(k, sizeof k, r[i].cpu_id));
    }
}

/* rr_seq's closing comparison: the cluster against the local baseline at
 * the same buffer size and client shape. */
static void bench_compare(const bench_result *r, int n)
{
    bool header = false;
    for (int i = 0; i < n; i++) {
        if (strcmp(r[i].target, "cluster") != 0 || !r[i].ok)
            continue;
        for (int k = 0; k < n; k++) {
            if (strcmp(r[k].target, "baseline") != 0 || !r[k].ok || r[k].buf != r[i].buf ||
                r[k].shape != r[i].shape || r[i].ids_s <= 0)
                continue;
            if (!header)
                printf("\ncluster vs in-process baseline (how many times slower):\n");
            header = true;
            printf("  fsync=%-6s buf=%-4u %-9s %10.1fx\n", r[i].fsync, r[i].buf,
                   bench_shape_name[r[i].shape], r[k].ids_s / r[i].ids_s);
        }
    }
}

/* --secret both: the cost of the frame MAC, case by case, as ratios
 * within this one run (with / without). */
static void bench_mac_cost(const bench_result *r, int n)
{
    for (int i = 0; i < n; i++) {
        if (!r[i].ok || r[i].secret == NULL || strcmp(r[i].secret, "on") != 0)
            continue;
        for (int k = 0; k < n; k++) {
            if (!r[k].ok || r[k].secret == NULL || strcmp(r[k].secret, "off") != 0 ||
                strcmp(r[k].fsync, r[i].fsync) != 0 || r[k].buf != r[i].buf ||
                r[k].shape != r[i].shape)
                continue;
            printf("MACCOST fsync=%s buf=%u clients=%s member_cpu_ns_per_id=%.0f/%.0f "
                   "cpu_ratio=%.3f ids_per_s=%.0f/%.0f ids_ratio=%.3f\n",
                   r[i].fsync, r[i].buf, bench_shape_name[r[i].shape], r[i].cpu_id, r[k].cpu_id,
                   r[i].cpu_id / r[k].cpu_id, r[i].ids_s, r[k].ids_s, r[i].ids_s / r[k].ids_s);
        }
    }
}

/* A fresh secret for the clusters of --secret on|both (mode 600, 64 hex
 * digits from getrandom). */
static void bench_write_secret(bench_opts *o)
{
    snprintf(o->secret_path, sizeof o->secret_path, "%s/bench-secret", o->dir);
    uint8_t raw[32];
    unlink(o->secret_path);   /* a new file: its mode is 0600 */
    int fd = open(o->secret_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0 || getentropy(raw, sizeof raw) != 0)
        bench_die("cannot write %s: %s", o->secret_path, strerror(errno));
    char hex[2 * sizeof raw + 2];
    for (size_t i = 0; i < sizeof raw; i++)
        snprintf(hex + 2 * i, 3, "%02x", raw[i]);
    hex[2 * sizeof raw] = '\n';
    if (write(fd, hex, 2 * sizeof raw + 1) != (ssize_t)(2 * sizeof raw + 1) || close(fd) != 0)
        bench_die("cannot write %s: %s", o->secret_path, strerror(errno));
}

int main(int argc, char **argv)
{
    bench_opts o = { .seqd = "./seqd", .dir = "build/bench-data", .secs = 3, .base_secs = 1,
                     .port = 19501, .fsync_mode = { true, true }, .baseline = true,
                     .fetchproc_runs = 200, .adaptive = 16, .secret_mode = { true, false } };
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc >= 2 && strcmp(argv[1], "--time-cmd") == 0) {
        if (argc < 5 || strcmp(argv[3], "--") != 0)
            bench_usage();
        bench_samples s = { 0 };
        int fails = 0;
        if (bench_time_cmd(argv + 4, atoi(argv[2]), &s, &fails) != 0 || s.n == 0)
            bench_die("cannot run %s: %s", argv[4], strerror(errno));
        printf("PROC median_us=%.0f p90_us=%.0f p99_us=%.0f runs=%zu failures=%d\n",
               bench_pct(&s, 0.5), bench_pct(&s, 0.9), bench_pct(&s, 0.99), s.n, fails);
        free(s.v);
        return fails ? 1 : 0;
    }
    if (argc >= 3 && strcmp(argv[1], "--raw-fsync") == 0) {
        const char *dir = argc >= 5 && strcmp(argv[3], "--dir") == 0 ? argv[4] : o.dir;
        mkdir(dir, 0755);
        return bench_raw_fsync(dir, atof(argv[2]));
    }
    if (argc >= 3 && strcmp(argv[1], "--raw-quorum") == 0) {
        const char *dir = argc >= 5 && strcmp(argv[3], "--dir") == 0 ? argv[4] : o.dir;
        mkdir(dir, 0755);
        return bench_raw_quorum(dir, atof(argv[2]));
    }
    bench_parse(argc, argv, &o);

    signal(SIGPIPE, SIG_IGN);
    signal(SIGINT, bench_on_signal);
    signal(SIGTERM, bench_on_signal);
    atexit(bench_kill_all);
    if (o.servers == NULL && access(o.seqd, X_OK) != 0)
        bench_die("%s: %s (run `make seqd` first, or give --seqd)", o.seqd, strerror(errno));
    char *sl = strrchr(o.dir, '/');
    if (sl != NULL) {   /* create the parent (e.g. build/) if missing */
        char parent[1024];
        snprintf(parent, sizeof parent, "%.*s", (int)(sl - o.dir), o.dir);
        mkdir(parent, 0755);
    }
    mkdir(o.dir, 0755);
    struct statfs sf;
    if (statfs(o.dir, &sf) == 0 && sf.f_type == BENCH_TMPFS_MAGIC)
        printf("WARNING: %s is a tmpfs: fdatasync is free there, fsync=always means nothing\n",
               o.dir);
    printf("bench_cluster: %d cases x %.1f s per cluster, %.1f s per baseline case; data in %s\n",
           o.ncases, o.secs, o.base_secs, o.dir);

    if (o.secret_mode[1])
        bench_write_secret(&o);
    bench_result *res = calloc((size_t)o.ncases * 5 + 1, sizeof *res);
    if (res == NULL)
        bench_die("out of memory");
    int nres = 0, bad = 0;
    double fp_med = NAN, fp_p90 = NAN;
    static const char *const modes[2] = { "always", "never" };
    for (int ms = 0; ms < 4; ms++) {
        int m = ms / 2, sec = ms % 2;
        if (!o.fsync_mode[m] || !o.secret_mode[sec])
            continue;
        bench_cluster bc = { 0 };
        if (o.servers != NULL)
            bench_cluster_attach(&o, &bc, modes[m]);
        else
            bench_cluster_start(&o, &bc, modes[m], sec == 1);
        for (int c = 0; c < o.ncases; c++) {
            bench_case(&bc, o.cases[c].buf, o.cases[c].shape, o.secs, o.adaptive, &res[nres]);
            if (o.secret_given)
                res[nres].secret = sec ? "on" : "off";
            bench_print(&res[nres]);
            bad += !res[nres].ok;
            nres++;
        }
        if (m == 0 && o.fetchproc_runs > 0 && o.servers == NULL && (sec == 0 || !o.secret_mode[0])) {
            char *args[] = { (char *)o.seqd, "fetch", "--servers", bc.servers, "bench.proc",
                             NULL };
            bench_samples s = { 0 };
            int fails = 0;
            if (bench_time_cmd(args, o.fetchproc_runs, &s, &fails) != 0)
                bench_die("cannot run %s: %s", o.seqd, strerror(errno));
            fp_med = bench_pct(&s, 0.5);
            fp_p90 = bench_pct(&s, 0.9);
            printf("BENCH target=cluster fsync=always buf=0 clients=process ids_per_s=%.0f "
                   "ns_per_id=%.0f p50_us=%.0f p99_us=%.0f rounds_per_s=-\n",
                   1e6 / fp_med, fp_med * 1e3, fp_med, bench_pct(&s, 0.99));
            printf("FETCHPROC median_us=%.0f p90_us=%.0f p99_us=%.0f runs=%zu failures=%d\n",
                   fp_med, fp_p90, bench_pct(&s, 0.99), s.n, fails);
            bad += fails > 0;
            free(s.v);
        }
        if (o.servers != NULL) {
            client_free(bc.status);
        } else if (!bench_cluster_stop(&bc, bad == 0)) {
            fprintf(stderr, "bench_cluster: the cluster did not stop cleanly; logs in %s\n",
                    bc.dir);
            bad++;
        }
    }
    if (o.baseline) {
        for (int c = 0; c < o.ncases; c++) {
            if (o.cases[c].shape == SHAPE_SPREAD32 || o.cases[c].shape == SHAPE_THREADS32)
                continue;
            bench_case(NULL, o.cases[c].buf, o.cases[c].shape, o.base_secs, o.adaptive, &res[nres]);
            bench_print(&res[nres]);
            bad += !res[nres].ok;
            nres++;
        }
    }
    bench_table(res, nres);
    if (!isnan(fp_med))
        printf("\n`seqd fetch` as a process (fork+exec+connect+fetch), fsync=always: "
               "median %.0f us, p90 %.0f us\n", fp_med, fp_p90);
    bench_compare(res, nres);
    bench_mac_cost(res, nres);
    free(res);
    if (bad)
        fprintf(stderr, "bench_cluster: %d case(s) failed\n", bad);
    return bad ? 1 : 0;
}
