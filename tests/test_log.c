/* tests/test_log.c — the durable log: replay, torn tails, corruption,
 * compaction (also racing appends and crashing at every step), write and
 * fsync failures, and group commit really waiting for the fsync. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../storage/log.h"
#include "../storage/table.h"

#define TL_SEG1 "log.0000000000000001"
/* k values have no zero byte, so zeroing any part of one changes it */
#define TL_KVAL(i) (0x0101010101010101ULL * (uint64_t)((i) + 1))

typedef struct tl_ack {
    int calls;
    int err;
} tl_ack;

static void tl_ack_cb(void *arg, int err)
{
    tl_ack *a = arg;
    a->calls++;
    if (err)
        a->err = err;
}

static char *tl_mkdtemp(void)
{
    char *d = strdup("/tmp/seqd_log_XXXXXX");
    cr_assert_not_null(mkdtemp(d));
    return d;
}

static void tl_rm(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *de;
    char p[4096];
    while ((de = readdir(d)) != NULL) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
        unlink(p);
    }
    closedir(d);
    rmdir(dir);
}

static int tl_count_segments(const char *dir)
{
    DIR *d = opendir(dir);
    cr_assert_not_null(d);
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        if (!strncmp(de->d_name, "log.", 4) && !strstr(de->d_name, ".tmp"))
            n++;
    closedir(d);
    return n;
}

static seqlog *tl_open(const char *dir, table *t, size_t seg, int fsync)
{
    char err[512] = "";
    log_opts o = { .fsync = fsync, .segment_bytes = seg };
    seqlog *l = log_open(dir, &o, t, err, sizeof err);
    cr_assert_not_null(l, "log_open(%s): %s", dir, err);
    return l;
}

static int tl_name(char *buf, size_t n, const char *prefix, int i)
{
    return snprintf(buf, n, "%s%d", prefix, i);
}

static void tl_wait(seqlog *l, int ms)
{
    struct pollfd p = { .fd = log_notify_fd(l), .events = POLLIN };
    poll(&p, 1, ms);
    log_poll(l);
}

static double tl_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Whole-file read/write, for the tests that damage a segment. */
static size_t tl_slurp(const char *path, unsigned char **out)
{
    int fd = open(path, O_RDONLY);
    cr_assert_geq(fd, 0, "open %s", path);
    struct stat st;
    fstat(fd, &st);
    *out = malloc((size_t)st.st_size);
    cr_assert_eq(pread(fd, *out, (size_t)st.st_size, 0), st.st_size);
    close(fd);
    return (size_t)st.st_size;
}

static void tl_restore(const char *dir, const unsigned char *data, size_t n)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    char p[4096];
    while ((de = readdir(d)) != NULL) {
        if (!strncmp(de->d_name, "log.", 4)) {
            snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
            unlink(p);
        }
    }
    closedir(d);
    snprintf(p, sizeof p, "%s/" TL_SEG1, dir);
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    cr_assert_geq(fd, 0);
    cr_assert_eq(pwrite(fd, data, n, 0), (ssize_t)n);
    close(fd);
}

/* Writes n records k0..k(n-1) = TL_KVAL(i) and closes: each record is
 * 12 + 10 + 2 = 24 bytes, the first at offset 32. */
static void tl_write_k(const char *dir, int n)
{
    table *t = table_new();
    seqlog *l = tl_open(dir, t, 65536, 1);
    tl_ack a = { 0 };
    char name[16];
    for (int i = 0; i < n; i++) {
        int len = tl_name(name, sizeof name, "k", i);
        cr_assert_eq(log_append(l, name, (uint8_t)len, TL_KVAL(i), tl_ack_cb, &a), 0);
    }
    cr_assert_eq(log_flush(l), 0);
    cr_assert_eq(a.calls, n);
    cr_assert_eq(a.err, 0);
    log_close(l);
    table_free(t);
}

static void tl_check_k(const table *t, int n, int absent_from)
{
    char name[16];
    for (int i = 0; i < n; i++) {
        int len = tl_name(name, sizeof name, "k", i);
        uint64_t want = i < absent_from ? TL_KVAL(i) : 1;
        cr_assert_eq(table_get(t, name, (uint8_t)len), want, "%s", name);
    }
}

Test(log, replay_after_clean_close, .timeout = 20)
{
    char *dir = tl_mkdtemp();
    table *t = table_new();
    seqlog *l = tl_open(dir, t, 65536, 1);
    cr_assert_eq(log_replayed_records(l), 0);
    tl_ack a = { 0 };
    char name[32];
    for (int i = 0; i < 300; i++) {
        int len = tl_name(name, sizeof name, "seq.", i % 100);
        cr_assert_eq(log_append(l, name, (uint8_t)len, (uint64_t)i + 5, tl_ack_cb, &a), 0);
    }
    log_close(l); /* completes every ticket */
    cr_assert_eq(a.calls, 300);
    cr_assert_eq(a.err, 0);
    table_free(t);

    t = table_new();
    l = tl_open(dir, t, 65536, 1);
    cr_assert_neq(log_replayed_records(l), 0);
    cr_assert_eq(table_count(t), 100);
    for (int i = 0; i < 100; i++) {
        int len = tl_name(name, sizeof name, "seq.", i);
        cr_assert_eq(table_get(t, name, (uint8_t)len), (uint64_t)i + 205);
    }
    log_close(l);
    table_free(t);
    tl_rm(dir);
    free(dir);
}

/* Every cut inside the last record, three ways: zeroed (a preallocated
 * segment), truncated file, garbage. Each must replay the first four and
 * drop the fifth, and the log must take new records at that point. */
Test(log, torn_tail_at_every_offset, .timeout = 60)
{
    char *dir = tl_mkdtemp();
    tl_write_k(dir, 5);
    char path[4096];
    snprintf(path, sizeof path, "%s/" TL_SEG1, dir);
    unsigned char *orig;
    size_t size = tl_slurp(path, &orig);
    const size_t start = 32 + 4 * 24, end = start + 24;
    cr_assert_eq(orig[start], 12, "record layout as documented");
    cr_assert_eq(orig[end], 0);
    for (size_t cut = start; cut < end; cut++) {
        for (int mode = 0; mode < 3; mode++) {
            tl_restore(dir, orig, size);
            int fd = open(path, O_RDWR);
            cr_assert_geq(fd, 0);
            if (mode == 1) {
                cr_assert_eq(ftruncate(fd, (off_t)cut), 0);
            } else {
                unsigned char fill[24];
                memset(fill, mode == 0 ? 0 : 0xA5, sizeof fill);
                cr_assert_eq(pwrite(fd, fill, end - cut, (off_t)cut), (ssize_t)(end - cut));
            }
            close(fd);

            table *t = table_new();
            seqlog *l = tl_open(dir, t, 65536, 1);
            cr_assert_eq(table_get(t, "k4", 2), 1, "cut %zu mode %d: torn record replayed", cut, mode);
            tl_check_k(t, 5, 4);
            tl_ack a = { 0 };
            cr_assert_eq(log_append(l, "z", 1, 1000 + cut, tl_ack_cb, &a), 0);
            cr_assert_eq(log_flush(l), 0);
            cr_assert_eq(a.calls, 1);
            cr_assert_eq(a.err, 0);
            log_close(l);
            table_free(t);

            t = table_new();
            l = tl_open(dir, t, 65536, 1);
            tl_check_k(t, 5, 4);
            cr_assert_eq(table_get(t, "z", 1), 1000 + cut, "cut %zu mode %d", cut, mode);
            log_close(l);
            table_free(t);
        }
    }
    free(orig);
    tl_rm(dir);
    free(dir);
}

Test(log, bit_flip_in_middle_record_is_corruption, .timeout = 20)
{
    char *dir = tl_mkdtemp();
    tl_write_k(dir, 10);
    char path[4096];
    snprintf(path, sizeof path, "%s/" TL_SEG1, dir);
    unsigned char *orig;
    size_t size = tl_slurp(path, &orig);
    const size_t rec5 = 32 + 5 * 24;
    /* length, checksum, kind, name, value */
    const size_t where[] = { rec5, rec5 + 5, rec5 + 12, rec5 + 14, rec5 + 23 };
    for (size_t i = 0; i < sizeof where / sizeof where[0]; i++) {
        orig[where[i]] ^= 0x04;
        tl_restore(dir, orig, size);
        orig[where[i]] ^= 0x04;
        table *t = table_new();
        char err[512] = "";
        log_opts o = { .fsync = 1, .segment_bytes = 65536 };
        seqlog *l = log_open(dir, &o, t, err, sizeof err);
        cr_assert_null(l, "flip at %zu must be reported", where[i]);
        cr_assert(strstr(err, TL_SEG1) && strstr(err, "offset 152"), "message: %s", err);
        table_free(t);
    }
    /* a damaged segment header is corruption too */
    orig[3] ^= 1;
    tl_restore(dir, orig, size);
    table *t = table_new();
    char err[512] = "";
    cr_assert_null(log_open(dir, &(log_opts){ .fsync = 1 }, t, err, sizeof err));
    cr_assert(strstr(err, "header"), "message: %s", err);
    table_free(t);
    free(orig);
    tl_rm(dir);
    free(dir);
}

Test(log, bit_flip_in_last_record_is_truncated, .timeout = 20)
{
    char *dir = tl_mkdtemp();
    tl_write_k(dir, 10);
    char path[4096];
    snprintf(path, sizeof path, "%s/" TL_SEG1, dir);
    unsigned char *orig;
    size_t size = tl_slurp(path, &orig);
    orig[32 + 9 * 24 + 16] ^= 0x10; /* name byte of k9 */
    tl_restore(dir, orig, size);
    table *t = table_new();
    seqlog *l = tl_open(dir, t, 65536, 1);
    tl_check_k(t, 10, 9);
    tl_ack a = { 0 };
    cr_assert_eq(log_append(l, "k9", 2, 77, tl_ack_cb, &a), 0);
    log_close(l);
    cr_assert_eq(a.calls, 1);
    cr_assert_eq(a.err, 0);
    table_free(t);
    t = table_new();
    l = tl_open(dir, t, 65536, 1);
    tl_check_k(t, 9, 9);
    cr_assert_eq(table_get(t, "k9", 2), 77);
    log_close(l);
    table_free(t);
    free(orig);
    tl_rm(dir);
    free(dir);
}

Test(log, compaction_keeps_100k_names, .timeout = 60)
{
    char *dir = tl_mkdtemp();
    table *t = table_new();
    seqlog *l = tl_open(dir, t, 256 * 1024, 1);
    tl_ack a = { 0 };
    char name[32];
    for (int i = 0; i < 100000; i++) {
        int len = tl_name(name, sizeof name, "n", i);
        cr_assert_eq(log_append(l, name, (uint8_t)len, (uint64_t)i * 7 + 2, tl_ack_cb, &a), 0);
        if (i % 5000 == 4999)
            cr_assert_eq(log_flush(l), 0);
    }
    /* and raise a third of them again, so the log has real updates */
    for (int i = 0; i < 100000; i += 3) {
        int len = tl_name(name, sizeof name, "n", i);
        cr_assert_eq(log_append(l, name, (uint8_t)len, (uint64_t)i * 7 + 5, tl_ack_cb, &a), 0);
    }
    cr_assert_eq(log_flush(l), 0);
    log_stats st;
    log_get_stats(l, &st);
    cr_assert_geq(st.compactions, 2, "compactions: %llu", (unsigned long long)st.compactions);
    cr_assert_eq(st.write_errors, 0);
    log_close(l);
    cr_assert_eq(a.err, 0);
    cr_assert_eq(a.calls, 100000 + 33334);
    table_free(t);
    cr_assert_eq(tl_count_segments(dir), 1, "old segments are removed");

    t = table_new();
    l = tl_open(dir, t, 256 * 1024, 1);
    cr_assert_eq(table_count(t), 100000);
    for (int i = 0; i < 100000; i++) {
        int len = tl_name(name, sizeof name, "n", i);
        cr_assert_eq(table_get(t, name, (uint8_t)len), (uint64_t)i * 7 + (i % 3 ? 2 : 5), "%s", name);
    }
    log_close(l);
    table_free(t);
    tl_rm(dir);
    free(dir);
}

Test(log, appends_racing_compaction, .timeout = 60)
{
    char *dir = tl_mkdtemp();
    table *t = table_new();
    seqlog *l = tl_open(dir, t, 4096, 1);
    enum { NAMES = 200, APPENDS = 20000 };
    uint64_t want[NAMES] = { 0 };
    tl_ack a = { 0 };
    char name[32];
    unsigned seed = 12345;
    for (int i = 0; i < APPENDS; i++) {
        int k = (int)(rand_r(&seed) % NAMES);
        uint64_t v = (uint64_t)(rand_r(&seed) % 1000000) + 2;
        if (v > want[k])
            want[k] = v;
        int len = tl_name(name, sizeof name, "r", k);
        cr_assert_eq(log_append(l, name, (uint8_t)len, v, tl_ack_cb, &a), 0);
        if (i % 50 == 49)
            tl_wait(l, 1);
    }
    cr_assert_eq(log_flush(l), 0);
    cr_assert_eq(a.calls, APPENDS);
    cr_assert_eq(a.err, 0);
    log_stats st;
    log_get_stats(l, &st);
    cr_assert_geq(st.compactions, 5, "compactions: %llu", (unsigned long long)st.compactions);
    log_close(l);
    table_free(t);
    cr_assert_eq(tl_count_segments(dir), 1);

    t = table_new();
    l = tl_open(dir, t, 4096, 1);
    for (int k = 0; k < NAMES; k++) {
        int len = tl_name(name, sizeof name, "r", k);
        uint64_t exp = want[k] ? want[k] : 1;
        cr_assert_eq(table_get(t, name, (uint8_t)len), exp, "%s", name);
    }
    log_close(l);
    table_free(t);
    tl_rm(dir);
    free(dir);
}

/* ---- crash at each compaction step, in a forked child ---- */

typedef struct tl_durable {
    int fd;
    uint32_t idx;
    uint64_t value;
    int err;
} tl_durable;

/* Child side: reports each acknowledged (idx, value) to the parent. */
static void tl_durable_cb(void *arg, int err)
{
    tl_durable *d = arg;
    d->err = err ? err : -1; /* -1: acknowledged */
    if (err)
        return;
    unsigned char rec[12];
    memcpy(rec, &d->idx, 4);
    memcpy(rec + 4, &d->value, 8);
    if (write(d->fd, rec, sizeof rec) != (ssize_t)sizeof rec)
        _exit(3);
}

enum { TL_CRASH_NAMES = 100, TL_CRASH_MAX = 60000 };

static void tl_crash_child(const char *dir, int step, int wfd)
{
    table *t = table_new();
    char err[512];
    log_opts o = { .fsync = 1, .segment_bytes = 4096 };
    seqlog *l = log_open(dir, &o, t, err, sizeof err);
    if (!l)
        _exit(2);
    tl_durable *d = calloc(TL_CRASH_MAX, sizeof *d);
    char name[32];
    for (int i = 0; i < TL_CRASH_MAX; i++) {
        if (i == 100) {
            /* the first 100 are acknowledged for sure; now arm the crash */
            if (log_flush(l) != 0)
                _exit(4);
            log_faults f = { .crash_at = step };
            log_set_faults(l, &f);
        }
        d[i] = (tl_durable){ .fd = wfd, .idx = (uint32_t)(i % TL_CRASH_NAMES), .value = (uint64_t)i + 2 };
        int len = tl_name(name, sizeof name, "c", (int)d[i].idx);
        if (log_append(l, name, (uint8_t)len, d[i].value, tl_durable_cb, &d[i]) != 0)
            _exit(5);
        if (i % 20 == 19)
            tl_wait(l, 1);
    }
    log_flush(l);
    _exit(0); /* never crashed: the parent fails the test */
}

static void tl_crash_at(int step)
{
    char *dir = tl_mkdtemp();
    int p[2];
    cr_assert_eq(pipe(p), 0);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        close(p[0]);
        tl_crash_child(dir, step, p[1]);
    }
    close(p[1]);
    uint64_t acked[TL_CRASH_NAMES] = { 0 };
    int nacks = 0;
    unsigned char rec[12];
    for (;;) {
        ssize_t r = read(p[0], rec, sizeof rec);
        if (r <= 0)
            break;
        cr_assert_eq(r, 12);
        uint32_t idx;
        uint64_t v;
        memcpy(&idx, rec, 4);
        memcpy(&v, rec + 4, 8);
        cr_assert_lt(idx, TL_CRASH_NAMES);
        if (v > acked[idx])
            acked[idx] = v;
        nacks++;
    }
    close(p[0]);
    int st;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 99, "child should crash at step %d (status %d)", step,
              WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    cr_assert_geq(nacks, 100);
    /* the crash left the files of that step: old only (1), old and new
     * (2..4), new only (5) */
    cr_assert_eq(tl_count_segments(dir), step >= 2 && step <= 4 ? 2 : 1, "step %d", step);

    table *t = table_new();
    seqlog *l = tl_open(dir, t, 4096, 1);
    char name[32];
    for (int k = 0; k < TL_CRASH_NAMES; k++) {
        int len = tl_name(name, sizeof name, "c", k);
        cr_assert_geq(table_get(t, name, (uint8_t)len), acked[k], "step %d: %s lost an acknowledged value",
                      step, name);
    }
    /* and the recovered log keeps working through further compactions */
    tl_ack a = { 0 };
    for (int i = 0; i < 2000; i++) {
        int len = tl_name(name, sizeof name, "c", i % TL_CRASH_NAMES);
        cr_assert_eq(log_append(l, name, (uint8_t)len, 10000000 + (uint64_t)i, tl_ack_cb, &a), 0);
    }
    cr_assert_eq(log_flush(l), 0);
    cr_assert_eq(a.err, 0);
    log_close(l);
    table_free(t);
    t = table_new();
    l = tl_open(dir, t, 4096, 1);
    for (int k = 0; k < TL_CRASH_NAMES; k++) {
        int len = tl_name(name, sizeof name, "c", k);
        cr_assert_eq(table_get(t, name, (uint8_t)len), 10000000 + 1900 + (uint64_t)k);
    }
    log_close(l);
    table_free(t);
    cr_assert_eq(tl_count_segments(dir), 1);
    tl_rm(dir);
    free(dir);
}

Test(log, crash_at_step1_old_synced, .timeout = 30) { tl_crash_at(1); }
Test(log, crash_at_step2_new_created, .timeout = 30) { tl_crash_at(2); }
Test(log, crash_at_step3_snapshot_written, .timeout = 30) { tl_crash_at(3); }
Test(log, crash_at_step4_new_synced, .timeout = 30) { tl_crash_at(4); }
Test(log, crash_at_step5_old_unlinked, .timeout = 30) { tl_crash_at(5); }

/* ---- write failures ---- */

Test(log, enospc_fails_batch_and_log_goes_on, .timeout = 20)
{
    char *dir = tl_mkdtemp();
    table *t = table_new();
    seqlog *l = tl_open(dir, t, 65536, 1);
    tl_ack a[6] = { { 0 } };
    cr_assert_eq(log_append(l, "k1", 2, 10, tl_ack_cb, &a[1]), 0);
    cr_assert_eq(log_flush(l), 0);
    /* counted from here: write 1 ok, writes 2 and 3 fail, write 4 ok */
    log_faults f = { .write_fail_nth = 2, .write_fail_count = 2, .write_errno = ENOSPC };
    log_set_faults(l, &f);
    const char *names[] = { NULL, NULL, "k2", "k3", "k4", "k5" };
    for (int i = 2; i <= 5; i++) {
        cr_assert_eq(log_append(l, names[i], 2, (uint64_t)i * 10, tl_ack_cb, &a[i]), 0);
        cr_assert_eq(log_flush(l), 0, "a failed write is not fatal");
        cr_assert_eq(a[i].calls, 1);
    }
    cr_assert_eq(a[1].err, 0);
    cr_assert_eq(a[2].err, 0);
    cr_assert_eq(a[3].err, ENOSPC);
    cr_assert_eq(a[4].err, ENOSPC);
    cr_assert_eq(a[5].err, 0);
    /* READ may see the failed values: the table was raised */
    cr_assert_eq(table_get(t, "k3", 2), 30);
    log_stats st;
    log_get_stats(l, &st);
    cr_assert_eq(st.write_errors, 2);
    log_close(l);
    table_free(t);

    t = table_new();
    l = tl_open(dir, t, 65536, 1);
    cr_assert_eq(table_get(t, "k1", 2), 10);
    cr_assert_eq(table_get(t, "k2", 2), 20);
    cr_assert_eq(table_get(t, "k3", 2), 1, "a failed batch is not on disk");
    cr_assert_eq(table_get(t, "k4", 2), 1);
    cr_assert_eq(table_get(t, "k5", 2), 50);
    log_close(l);
    table_free(t);
    tl_rm(dir);
    free(dir);
}

/* Every write failing while the segment fills: switches are attempted and
 * abandoned (the new segment is removed, the batch fails), then once writes
 * work again a switch succeeds and nothing acknowledged is lost. */
Test(log, write_failures_during_compaction, .timeout = 30)
{
    char *dir = tl_mkdtemp();
    table *t = table_new();
    seqlog *l = tl_open(dir, t, 4096, 1);
    tl_ack ok = { 0 }, bad = { 0 };
    char name[32];
    for (int i = 0; i < 50; i++) {
        int len = tl_name(name, sizeof name, "ok", i);
        cr_assert_eq(log_append(l, name, (uint8_t)len, (uint64_t)i + 2, tl_ack_cb, &ok), 0);
    }
    cr_assert_eq(log_flush(l), 0);
    log_faults f = { .write_fail_nth = 1, .write_fail_count = 1000000, .write_errno = EIO };
    log_set_faults(l, &f);
    for (int i = 0; i < 150; i++) {
        int len = tl_name(name, sizeof name, "bad", i);
        cr_assert_eq(log_append(l, name, (uint8_t)len, (uint64_t)i + 2, tl_ack_cb, &bad), 0);
        cr_assert_eq(log_flush(l), 0);
    }
    cr_assert_eq(bad.calls, 150);
    cr_assert_eq(bad.err, EIO);
    log_stats st;
    log_get_stats(l, &st);
    cr_assert_eq(st.compactions, 0);
    cr_assert_gt(st.write_errors, 150, "switches were attempted and failed");
    cr_assert_eq(tl_count_segments(dir), 1, "abandoned segments are removed");
    memset(&f, 0, sizeof f);
    log_set_faults(l, &f);
    for (int i = 0; i < 2000; i++) {
        int len = tl_name(name, sizeof name, "ok", 50 + i);
        cr_assert_eq(log_append(l, name, (uint8_t)len, (uint64_t)i + 2, tl_ack_cb, &ok), 0);
        if (i % 100 == 99)
            cr_assert_eq(log_flush(l), 0);
    }
    cr_assert_eq(log_flush(l), 0);
    cr_assert_eq(ok.calls, 2050);
    cr_assert_eq(ok.err, 0);
    log_get_stats(l, &st);
    cr_assert_geq(st.compactions, 1);
    log_close(l);
    table_free(t);

    t = table_new();
    l = tl_open(dir, t, 4096, 1);
    for (int i = 0; i < 2050; i++) {
        int len = tl_name(name, sizeof name, "ok", i);
        cr_assert_eq(table_get(t, name, (uint8_t)len), (uint64_t)(i < 50 ? i : i - 50) + 2, "%s", name);
    }
    /* the failed ones may be in a snapshot (the table had them), or not:
     * either is fine, they were never acknowledged */
    log_close(l);
    table_free(t);
    tl_rm(dir);
    free(dir);
}

/* Child side of the RLIMIT_FSIZE test: one append of record n ("f" and a
 * zero-padded number of varying width, so records have varying sizes). */
static size_t tl_fsize_append(seqlog *l, tl_durable *d, int n, int wfd)
{
    char name[32];
    d[n] = (tl_durable){ .fd = wfd, .idx = (uint32_t)n, .value = (uint64_t)n + 2 };
    int len = snprintf(name, sizeof name, "f%0*d", 1 + n % 7, n);
    if (log_append(l, name, (uint8_t)len, d[n].value, tl_durable_cb, &d[n]) != 0)
        _exit(4);
    return 22 + (size_t)len;
}

/* Child: fills the segment to ~60 KB, then sets RLIMIT_FSIZE 500 bytes past
 * the end, so that the next ~1 KB of records is written half and fails with
 * EFBIG. A one-record batch at the same offset must fail too (it cannot
 * clear the half-written bytes past the limit). Then the limit is lifted
 * and a record shorter than any of the half-written ones is appended: the
 * stale bytes after it must have been cleared, or the next open would see
 * a bad record followed by valid ones. Acks go to wfd. */
static void tl_fsize_child(const char *dir, int wfd)
{
    signal(SIGXFSZ, SIG_IGN);
    table *t = table_new();
    char err[512];
    log_opts o = { .fsync = 1, .segment_bytes = 1 << 20 };
    seqlog *l = log_open(dir, &o, t, err, sizeof err);
    if (!l)
        _exit(2);
    tl_durable *d = calloc(10000, sizeof *d);
    int n = 0;
    size_t off = 32;
    while (off < 60000) {
        for (int k = 0; k < 37; k++, n++)
            off += tl_fsize_append(l, d, n, wfd);
        if (log_flush(l) != 0)
            _exit(5);
    }
    struct rlimit old, lim;
    getrlimit(RLIMIT_FSIZE, &old);
    lim = old;
    lim.rlim_cur = off + 500;
    if (setrlimit(RLIMIT_FSIZE, &lim) != 0)
        _exit(3);
    int first = n;
    for (int k = 0; k < 37; k++, n++)
        tl_fsize_append(l, d, n, wfd);
    if (log_flush(l) != 0)
        _exit(6);
    /* The sync thread may have split the 37 into several batches: those
     * below the limit succeed, the one crossing it and every one after it
     * (same offset, stale bytes past the limit to clear) fail with EFBIG. */
    int efbig = 0;
    for (int k = first; k < n; k++) {
        if (d[k].err != EFBIG && d[k].err != -1)
            _exit(12);
        efbig += d[k].err == EFBIG;
        if (k > first && d[k - 1].err == EFBIG && d[k].err != EFBIG)
            _exit(14);
    }
    if (d[n - 1].err != EFBIG)
        _exit(15);
    tl_fsize_append(l, d, n++, wfd);
    if (log_flush(l) != 0)
        _exit(7);
    if (d[n - 1].err != EFBIG)
        _exit(13);
    if (setrlimit(RLIMIT_FSIZE, &old) != 0)
        _exit(8);
    d[n] = (tl_durable){ .fd = wfd, .idx = (uint32_t)n, .value = 7 };
    if (log_append(l, "h", 1, 7, tl_durable_cb, &d[n]) != 0)
        _exit(9);
    n++;
    if (log_flush(l) != 0 || d[n - 1].err != -1)
        _exit(10);
    log_stats st;
    log_get_stats(l, &st);
    if (st.write_errors < 2 || efbig == 0)
        _exit(11);
    log_close(l);
    _exit(0);
}

Test(log, rlimit_fsize_fails_tickets_with_efbig, .timeout = 30)
{
    char *dir = tl_mkdtemp();
    int p[2];
    cr_assert_eq(pipe(p), 0);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        close(p[0]);
        tl_fsize_child(dir, p[1]);
    }
    close(p[1]);
    static uint64_t acked[10000];
    int nacks = 0, maxidx = -1;
    unsigned char rec[12];
    while (read(p[0], rec, sizeof rec) == 12) {
        uint32_t idx;
        uint64_t v;
        memcpy(&idx, rec, 4);
        memcpy(&v, rec + 4, 8);
        cr_assert_lt(idx, 10000);
        acked[idx] = v;
        nacks++;
        if ((int)idx > maxidx)
            maxidx = (int)idx;
    }
    close(p[0]);
    int st;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status %d", WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    cr_assert_gt(nacks, 37);

    table *t = table_new();
    seqlog *l = tl_open(dir, t, 1 << 20, 1);
    char name[32];
    int missing_failed = 0;
    cr_assert_eq(table_get(t, "h", 1), 7);
    for (int n = 0; n < maxidx; n++) {
        int len = snprintf(name, sizeof name, "f%0*d", 1 + n % 7, n);
        uint64_t got = table_get(t, name, (uint8_t)len);
        if (acked[n])
            cr_assert_eq(got, acked[n], "%s acknowledged but lost", name);
        else if (got == 1)
            missing_failed++;
    }
    cr_assert_gt(missing_failed, 0, "the failed batch must not be on disk");
    log_close(l);
    table_free(t);
    tl_rm(dir);
    free(dir);
}

/* A done callback that appends again (what a coordinator does when one
 * round's ACK leads to the next): chained appends all complete in order. */
typedef struct tl_chain {
    seqlog *l;
    int done, err;
} tl_chain;

static void tl_chain_cb(void *arg, int err)
{
    tl_chain *c = arg;
    c->done++;
    if (err)
        c->err = err;
    if (c->done < 500 && log_append(c->l, "chain", 5, (uint64_t)c->done + 2, tl_chain_cb, c) != 0)
        c->err = -1;
}

Test(log, done_callback_may_append, .timeout = 30)
{
    char *dir = tl_mkdtemp();
    table *t = table_new();
    seqlog *l = tl_open(dir, t, 4096, 1);
    tl_chain c = { .l = l };
    cr_assert_eq(log_append(l, "chain", 5, 1 + 1, tl_chain_cb, &c), 0);
    double t0 = tl_now();
    while (c.done < 500 && tl_now() - t0 < 20)
        tl_wait(l, 100);
    cr_assert_eq(c.done, 500);
    cr_assert_eq(c.err, 0);
    log_close(l);
    table_free(t);
    t = table_new();
    l = tl_open(dir, t, 4096, 1);
    cr_assert_eq(table_get(t, "chain", 5), 501);
    log_close(l);
    table_free(t);
    tl_rm(dir);
    free(dir);
}

/* ---- fsync ---- */

typedef struct tl_gc {
    seqlog *l;
    int calls, err;
    uint64_t fsyncs_seen;
    double when;
} tl_gc;

static void tl_gc_cb(void *arg, int err)
{
    tl_gc *g = arg;
    log_stats st;
    log_get_stats(g->l, &st);
    g->calls++;
    g->err = err;
    g->fsyncs_seen = st.fsyncs;
    g->when = tl_now();
}

Test(log, done_waits_for_fsync_and_batches_share_it, .timeout = 30)
{
    char *dir = tl_mkdtemp();
    table *t = table_new();
    seqlog *l = tl_open(dir, t, 1 << 20, 1);
    log_faults f = { .sync_delay_us = 300000 };
    log_set_faults(l, &f);
    tl_gc g = { .l = l };
    double t0 = tl_now();
    cr_assert_eq(log_append(l, "slow", 4, 42, tl_gc_cb, &g), 0);
    cr_assert_eq(table_get(t, "slow", 4), 42, "the table is raised at once");
    while (g.calls == 0 && tl_now() - t0 < 10)
        tl_wait(l, 50);
    cr_assert_eq(g.calls, 1);
    cr_assert_eq(g.err, 0);
    cr_assert_geq(g.when - t0, 0.3, "done after %.3fs, before the fsync", g.when - t0);
    cr_assert_geq(g.fsyncs_seen, 1);

    /* 200 appends while a slow fsync is in progress share few fsyncs */
    f.sync_delay_us = 100000;
    log_set_faults(l, &f);
    log_stats s0, s1;
    log_get_stats(l, &s0);
    static tl_gc gs[200];
    char name[16];
    t0 = tl_now();
    for (int i = 0; i < 200; i++) {
        gs[i].l = l;
        int len = tl_name(name, sizeof name, "g", i);
        cr_assert_eq(log_append(l, name, (uint8_t)len, 5, tl_gc_cb, &gs[i]), 0);
    }
    cr_assert_eq(log_flush(l), 0);
    log_get_stats(l, &s1);
    for (int i = 0; i < 200; i++) {
        cr_assert_eq(gs[i].calls, 1);
        cr_assert_eq(gs[i].err, 0);
        cr_assert_gt(gs[i].fsyncs_seen, s0.fsyncs);
        cr_assert_geq(gs[i].when - t0, 0.1);
    }
    cr_assert_leq(s1.fsyncs - s0.fsyncs, 3, "%llu fsyncs for 200 appends",
                  (unsigned long long)(s1.fsyncs - s0.fsyncs));
    cr_assert_eq(s1.appends - s0.appends, 200);
    log_close(l);
    table_free(t);
    tl_rm(dir);
    free(dir);
}

Test(log, failed_fsync_is_fatal, .timeout = 20)
{
    char *dir = tl_mkdtemp();
    table *t = table_new();
    seqlog *l = tl_open(dir, t, 65536, 1);
    tl_ack a = { 0 }, b = { 0 }, c = { 0 };
    cr_assert_eq(log_append(l, "a", 1, 11, tl_ack_cb, &a), 0);
    cr_assert_eq(log_flush(l), 0);
    /* the delay keeps the failing fsync pending while the 50 are queued,
     * so they are "pending tickets" when it fails */
    log_faults f = { .fsync_fail_nth = 1, .sync_delay_us = 200000 };
    log_set_faults(l, &f);
    for (int i = 0; i < 50; i++)
        cr_assert_eq(log_append(l, "b", 1, 20 + (uint64_t)i, tl_ack_cb, &b), 0);
    cr_assert_eq(log_flush(l), -EIO);
    cr_assert_eq(b.calls, 50);
    cr_assert_eq(b.err, EIO);
    cr_assert_eq(log_poll(l), -EIO);
    cr_assert_eq(log_append(l, "c", 1, 5, tl_ack_cb, &c), -EIO);
    cr_assert_eq(log_poll(l), -EIO);
    cr_assert_eq(c.calls, 0, "no callback for a refused append");
    cr_assert_eq(a.err, 0);
    log_close(l);
    table_free(t);

    t = table_new();
    l = tl_open(dir, t, 65536, 1);
    cr_assert_eq(table_get(t, "a", 1), 11);
    log_close(l);
    table_free(t);
    tl_rm(dir);
    free(dir);
}

Test(log, fsync_never_mode, .timeout = 20)
{
    char *dir = tl_mkdtemp();
    table *t = table_new();
    seqlog *l = tl_open(dir, t, 65536, 0);
    tl_ack a = { 0 };
    char name[16];
    for (int i = 0; i < 3000; i++) {
        int len = tl_name(name, sizeof name, "v", i % 500);
        cr_assert_eq(log_append(l, name, (uint8_t)len, (uint64_t)i + 2, tl_ack_cb, &a), 0);
    }
    cr_assert_eq(log_flush(l), 0);
    cr_assert_eq(a.calls, 3000);
    cr_assert_eq(a.err, 0);
    log_stats st;
    log_get_stats(l, &st);
    cr_assert_eq(st.fsyncs, 0);
    cr_assert_geq(st.writes, 1);
    cr_assert_eq(st.appends, 3000);
    log_close(l);
    table_free(t);
    t = table_new();
    l = tl_open(dir, t, 65536, 0);
    for (int i = 0; i < 500; i++) {
        int len = tl_name(name, sizeof name, "v", i);
        cr_assert_eq(table_get(t, name, (uint8_t)len), 2500 + (uint64_t)i + 2);
    }
    log_close(l);
    table_free(t);
    tl_rm(dir);
    free(dir);
}

/* log_compact (serve's SIGUSR2): a later append switches segments although
 * the first is nearly empty (the next one builds the snapshot; the switch
 * waits until the sync thread has prepared the new segment); the old
 * segment goes and replay gives the same values. */
Test(log, compact_on_request, .timeout = 30)
{
    char *dir = tl_mkdtemp();
    table *t = table_new();
    seqlog *l = tl_open(dir, t, 1u << 20, 0);
    tl_ack a = { 0 };
    for (int i = 0; i < 100; i++)
        cr_assert_eq(log_append(l, "k", 1, (uint64_t)i + 2, tl_ack_cb, &a), 0);
    cr_assert_eq(log_append(l, "other", 5, 7, tl_ack_cb, &a), 0);
    cr_assert_eq(log_flush(l), 0);
    log_stats st;
    log_get_stats(l, &st);
    cr_assert_eq(st.compactions, 0);
    log_compact(l);
    log_get_stats(l, &st);
    cr_assert_eq(st.compactions, 0, "nothing before the next append");
    int calls = 101;
    double end = tl_now() + 10;
    do {
        cr_assert_eq(log_append(l, "k", 1, 500 + (uint64_t)calls, tl_ack_cb, &a), 0);
        cr_assert_eq(log_flush(l), 0);
        calls++;
        /* the sync thread counts the switch and retires the old segment
         * just after it completes the batch that log_flush waited for */
        log_get_stats(l, &st);
        if (st.compactions < 1)
            tl_wait(l, 5);
    } while ((st.compactions < 1 || tl_count_segments(dir) != 1) && tl_now() < end);
    cr_assert_eq(a.calls, calls);
    cr_assert_eq(a.err, 0);
    cr_assert_eq(st.compactions, 1);
    cr_assert_eq(tl_count_segments(dir), 1);
    log_close(l);
    table_free(t);
    t = table_new();
    l = tl_open(dir, t, 1u << 20, 0);
    cr_assert_eq(table_get(t, "k", 1), 500 + (uint64_t)calls - 1);
    cr_assert_eq(table_get(t, "other", 5), 7);
    log_close(l);
    table_free(t);
    tl_rm(dir);
    free(dir);
}

/* A table bigger than one snapshot step (storage/log.c LOG_DUMP_STEP): the
 * snapshot is built over several appends while records keep raising
 * entries it has encoded already; after the switches, replay must still
 * give every entry its largest value (the copies appended to the snapshot
 * carry them). */
Test(log, incremental_snapshot_keeps_raises, .timeout = 60)
{
    enum { NAMES = 20000, RAISES = 200000 };
    char *dir = tl_mkdtemp();
    table *t = table_new();
    seqlog *l = tl_open(dir, t, 1u << 20, 0);
    static uint64_t want[NAMES];
    tl_ack a = { 0 };
    char name[32];
    for (int i = 0; i < NAMES; i++) {
        int n = tl_name(name, sizeof name, "n", i);
        want[i] = 2;
        cr_assert_eq(log_append(l, name, (uint8_t)n, want[i], tl_ack_cb, &a), 0);
    }
    for (int r = 0; r < RAISES; r++) {
        /* mostly low indexes: encoded early in every snapshot */
        int i = r % 3 ? (int)(((unsigned)r * 7919u) % 64u) : (int)(((unsigned)r * 7919u) % NAMES);
        int n = tl_name(name, sizeof name, "n", i);
        want[i] += 1 + (uint64_t)(r % 5);
        cr_assert_eq(log_append(l, name, (uint8_t)n, want[i], tl_ack_cb, &a), 0);
        if (r % 1000 == 0)
            tl_wait(l, 0);
    }
    cr_assert_eq(log_flush(l), 0);
    log_stats st;
    double end = tl_now() + 5;   /* counted just after the completion */
    do
        log_get_stats(l, &st);
    while (st.compactions < 2 && tl_now() < end);
    cr_assert_geq(st.compactions, 2, "compactions: %llu", (unsigned long long)st.compactions);
    /* And deterministically: a compaction asked for, whose first step
     * encodes entries 0..LOG_DUMP_STEP-1; entries 1..99 are raised once
     * each right after (they are encoded already) and never again, while
     * appends to the last entries drive the snapshot to its switch. */
    uint64_t before = st.compactions;
    log_compact(l);
    for (int i = 0; i < 100; i++) {
        int n = tl_name(name, sizeof name, "n", i);
        want[i] += 1000;
        cr_assert_eq(log_append(l, name, (uint8_t)n, want[i], tl_ack_cb, &a), 0);
    }
    int extra = 0;
    end = tl_now() + 10;
    do {
        int i = NAMES - 1 - extra % 100;
        int n = tl_name(name, sizeof name, "n", i);
        want[i] += 1;
        cr_assert_eq(log_append(l, name, (uint8_t)n, want[i], tl_ack_cb, &a), 0);
        extra++;
        if (extra % 64 == 0) {
            cr_assert_eq(log_flush(l), 0);
            log_get_stats(l, &st);
        }
    } while (st.compactions == before && tl_now() < end);
    cr_assert_gt(st.compactions, before);
    cr_assert_eq(log_flush(l), 0);
    cr_assert_eq(a.err, 0);
    cr_assert_eq(a.calls, NAMES + RAISES + 100 + extra);
    log_close(l);
    table_free(t);
    t = table_new();
    l = tl_open(dir, t, 1u << 20, 0);
    cr_assert_eq(table_count(t), NAMES);
    for (int i = 0; i < NAMES; i++) {
        int n = tl_name(name, sizeof name, "n", i);
        cr_assert_eq(table_get(t, name, (uint8_t)n), want[i], "n%d", i);
    }
    log_close(l);
    table_free(t);
    tl_rm(dir);
    free(dir);
}
