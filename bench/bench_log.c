/* bench/bench_log.c — how fast is the log, and what does group commit buy?
 *
 *   make bench-log [BENCH_ARGS="DIR [SECONDS]"]
 *
 * Runs in a fresh directory under DIR (default ./build; NOT a tmpfs, whose
 * fdatasync is free and would make every number meaningless):
 *   1. the log with 1, 8 and 64 concurrent appenders, each appending again
 *      as soon as its previous append is durable (a poll loop on the log's
 *      notify fd stands in for the event loop): appends/s, fsyncs/s,
 *      records per fsync, append-to-durable latency;
 *   2. a raw loop of small pwrite + fdatasync into (a) a preallocated,
 *      zero-filled file (what the log does) and (b) a file that grows with
 *      every write, median and p99 latency.
 * Then prints the ratio of the log's single-appender latency to the raw
 * preallocated fdatasync: the overhead of the sync thread and the eventfd.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

#include "../storage/log.h"
#include "../storage/table.h"

#define BENCH_TMPFS_MAGIC 0x01021994

typedef struct bench_samples {
    double *v;
    size_t n, cap;
} bench_samples;

typedef struct bench_run {
    seqlog *l;
    bench_samples lat;
    int stopping;
    uint64_t done, errors;
} bench_run;

typedef struct bench_appender {
    bench_run *run;
    int id;
    uint64_t value;
    double t_append;
} bench_appender;

static double bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void bench_add(bench_samples *s, double x)
{
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 4096;
        s->v = realloc(s->v, s->cap * sizeof *s->v);
        if (!s->v) {
            fprintf(stderr, "bench_log: out of memory\n");
            exit(1);
        }
    }
    s->v[s->n++] = x;
}

static int bench_cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Percentile of the samples, in µs (sorts in place). */
static double bench_pct(bench_samples *s, double p)
{
    if (s->n == 0)
        return 0;
    qsort(s->v, s->n, sizeof *s->v, bench_cmp);
    size_t i = (size_t)(p * (double)(s->n - 1));
    return s->v[i] * 1e6;
}

static void bench_append(bench_appender *a);

/* Completion: record the latency and append again at once, so that each
 * appender always has exactly one append in flight. */
static void bench_done(void *arg, int err)
{
    bench_appender *a = arg;
    bench_run *r = a->run;
    r->done++;
    if (err)
        r->errors++;
    bench_add(&r->lat, bench_now() - a->t_append);
    if (!r->stopping)
        bench_append(a);
}

static void bench_append(bench_appender *a)
{
    char name[32];
    int len = snprintf(name, sizeof name, "bench.%d", a->id);
    a->value++;
    a->t_append = bench_now();
    int e = log_append(a->run->l, name, (uint8_t)len, a->value, bench_done, a);
    if (e) {
        fprintf(stderr, "bench_log: log_append: %s\n", strerror(-e));
        exit(1);
    }
}

static int bench_mkdir(const char *base, char *out, size_t n)
{
    snprintf(out, n, "%s/bench_log_XXXXXX", base);
    if (!mkdtemp(out)) {
        fprintf(stderr, "bench_log: cannot create a directory under %s: %s\n", base, strerror(errno));
        return -1;
    }
    return 0;
}

/* The bench directories hold plain files only. */
static void bench_rmdir(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *de;
    char p[4400];
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) {
            snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
            unlink(p);
        }
    }
    closedir(d);
    if (rmdir(dir) < 0)
        fprintf(stderr, "bench_log: could not remove %s: %s\n", dir, strerror(errno));
}

typedef struct bench_result {
    int n;
    double secs, appends_s, fsyncs_s, per_fsync, p50, p99, max;
    uint64_t compactions;
} bench_result;

static int bench_log_run(const char *base, int n, size_t seg, double secs, bench_result *out)
{
    char dir[4096], err[512];
    if (bench_mkdir(base, dir, sizeof dir) < 0)
        return -1;
    table *t = table_new();
    log_opts o = { .fsync = 1, .segment_bytes = seg };
    bench_run r = { 0 };
    r.l = log_open(dir, &o, t, err, sizeof err);
    if (!r.l) {
        fprintf(stderr, "bench_log: log_open: %s\n", err);
        return -1;
    }
    bench_appender *ap = calloc((size_t)n, sizeof *ap);
    log_stats s0, s1;
    log_get_stats(r.l, &s0);
    double t0 = bench_now();
    for (int i = 0; i < n; i++) {
        ap[i] = (bench_appender){ .run = &r, .id = i, .value = 1 };
        bench_append(&ap[i]);
    }
    struct pollfd p = { .fd = log_notify_fd(r.l), .events = POLLIN };
    while (bench_now() - t0 < secs) {
        poll(&p, 1, 100);
        if (log_poll(r.l) < 0) {
            fprintf(stderr, "bench_log: the log failed\n");
            return -1;
        }
    }
    double t1 = bench_now();
    log_get_stats(r.l, &s1);
    r.stopping = 1;
    log_flush(r.l);
    log_close(r.l);
    table_free(t);
    free(ap);
    bench_rmdir(dir);
    double el = t1 - t0;
    uint64_t fs = s1.fsyncs - s0.fsyncs;
    *out = (bench_result){ .n = n,
                           .secs = el,
                           .appends_s = (double)r.done / el,
                           .fsyncs_s = (double)fs / el,
                           .per_fsync = fs ? (double)(s1.appends - s0.appends) / (double)fs : 0,
                           .p50 = bench_pct(&r.lat, 0.5),
                           .p99 = bench_pct(&r.lat, 0.99),
                           .max = bench_pct(&r.lat, 1.0),
                           .compactions = s1.compactions - s0.compactions };
    if (r.errors)
        fprintf(stderr, "bench_log: %llu appends failed\n", (unsigned long long)r.errors);
    free(r.lat.v);
    return 0;
}

/* Raw pwrite + fdatasync of `rec` bytes at increasing offsets, either into
 * a file preallocated and zero-filled like a log segment, or into a file
 * that grows with each write (every sync then also commits a size change). */
static int bench_raw(const char *base, int prealloc, double secs, double *p50, double *p99, size_t *iters)
{
    char dir[4096], path[4200];
    if (bench_mkdir(base, dir, sizeof dir) < 0)
        return -1;
    snprintf(path, sizeof path, "%s/raw", dir);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (fd < 0)
        return -1;
    const size_t size = 64u << 20, rec = 64;
    if (prealloc) {
        char *z = calloc(1, 1 << 20);
        posix_fallocate(fd, 0, (off_t)size);
        for (size_t off = 0; off < size; off += 1 << 20)
            if (pwrite(fd, z, 1 << 20, (off_t)off) != 1 << 20)
                return -1;
        fsync(fd);
        free(z);
    }
    char buf[64];
    memset(buf, 0x5a, sizeof buf);
    bench_samples s = { 0 };
    double t0 = bench_now();
    size_t off = 0;
    while (bench_now() - t0 < secs && off + rec <= size) {
        double a = bench_now();
        if (pwrite(fd, buf, rec, (off_t)off) != (ssize_t)rec || fdatasync(fd) < 0) {
            perror("bench_log: raw write");
            return -1;
        }
        bench_add(&s, bench_now() - a);
        off += rec;
    }
    close(fd);
    bench_rmdir(dir);
    *iters = s.n;
    *p50 = bench_pct(&s, 0.5);
    *p99 = bench_pct(&s, 0.99);
    free(s.v);
    return 0;
}

int main(int argc, char **argv)
{
    const char *base = argc > 1 ? argv[1] : "./build";
    double secs = argc > 2 ? atof(argv[2]) : 4.0;
    if (secs <= 0 || secs > 15)
        secs = 4.0;
    mkdir(base, 0755);
    struct statfs sf;
    if (statfs(base, &sf) == 0 && sf.f_type == BENCH_TMPFS_MAGIC)
        fprintf(stderr, "bench_log: WARNING: %s is a tmpfs; fdatasync is free there\n", base);

    printf("bench_log: directory %s, %.1f s per run\n\n", base, secs);
    printf("%-30s %10s %9s %10s %8s %8s %8s %6s\n", "log (N appenders in flight)", "appends/s", "fsyncs/s",
           "recs/fsync", "p50 us", "p99 us", "max us", "compactions");
    bench_result res[4];
    const int ns[4] = { 1, 8, 64, 64 };
    /* the last run uses 4 MiB segments: a compaction every ~100k appends */
    const size_t segs[4] = { 0, 0, 0, 4u << 20 };
    for (int i = 0; i < 4; i++) {
        if (bench_log_run(base, ns[i], segs[i], secs, &res[i]) < 0)
            return 1;
        char label[64];
        snprintf(label, sizeof label, "%d%s", ns[i], segs[i] ? " (4 MiB segments)" : "");
        printf("%-30s %10.0f %9.0f %10.2f %8.0f %8.0f %8.0f %6llu\n", label, res[i].appends_s,
               res[i].fsyncs_s, res[i].per_fsync, res[i].p50, res[i].p99, res[i].max,
               (unsigned long long)res[i].compactions);
        fflush(stdout);
    }
    printf("\n%-28s %12s %10s %10s\n", "raw pwrite(64 B)+fdatasync", "ops", "p50 us", "p99 us");
    double rp50[2], rp99[2];
    const char *label[2] = { "preallocated zero-filled", "appending (growing file)" };
    for (int pre = 1; pre >= 0; pre--) {
        size_t it;
        if (bench_raw(base, pre, secs, &rp50[pre], &rp99[pre], &it) < 0)
            return 1;
        printf("%-28s %12zu %10.0f %10.0f\n", label[1 - pre], it, rp50[pre], rp99[pre]);
        fflush(stdout);
    }
    printf("\nappending vs preallocated fdatasync (p50): %.2fx\n", rp50[1] > 0 ? rp50[0] / rp50[1] : 0);
    printf("log 1-appender latency vs raw preallocated fdatasync (p50): %.2fx (p99: %.2fx)\n",
           rp50[1] > 0 ? res[0].p50 / rp50[1] : 0, rp99[1] > 0 ? res[0].p99 / rp99[1] : 0);
    printf("log 64-appender throughput vs 1/(raw preallocated p50): %.1fx\n",
           rp50[1] > 0 ? res[2].appends_s / (1e6 / rp50[1]) : 0);
    return 0;
}
