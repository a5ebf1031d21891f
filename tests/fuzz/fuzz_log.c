/* tests/fuzz/fuzz_log.c — libFuzzer target: log replay (storage/log.h,
 * file layout at the top of storage/log.c) from arbitrary segment bytes.
 *
 * Input layout:
 *   byte 0      mode: bit 0 raw (the bytes are the whole file, header
 *               included; otherwise a valid 32-byte header for the file's
 *               seqno is put in front), bit 1 two segments (log.…01 and
 *               log.…02, split at the position below), bit 2 append a
 *               record after replay
 *   bytes 1..2  split position (u16 little-endian, taken mod len + 1)
 *   the rest    the segment bytes
 *
 * Every run writes the segment(s) into a fresh directory under /dev/shm
 * (tmpfs; $TMPDIR if that is missing), emptied before and after, and calls
 * log_open with fsync off and the smallest segment size. Checked:
 *   - log_open fails with a clean message (non-empty, NUL-terminated within
 *     the buffer, printable ASCII), or succeeds with a table whose values
 *     are all >= 1;
 *   - after a successful open (which zeroes a torn tail) and log_close,
 *     a second open succeeds and replays exactly the same table: replay is
 *     idempotent and leaves a log it accepts itself;
 *   - with bit 2, one log_append (which may have to switch segments, as the
 *     replayed one is small) completes with 0 on log_flush, and the reopened
 *     table holds it on top of the same values.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "../../storage/log.h"

#define CHECK(c)                                                          \
    do {                                                                  \
        if (!(c)) {                                                       \
            fprintf(stderr, "fuzz_log: check failed: %s (%s:%d)\n", #c, \
                    __FILE__, __LINE__);                                  \
            abort();                                                      \
        }                                                                 \
    } while (0)

/* As in storage/log.c (the format is the contract; a copy here, not a
 * shared header, so that a change there shows up as a fuzz failure). */
#define FZ_LOG_MAGIC "SEQDLOG1"
#define FZ_LOG_SEED 0x5345514c4f47ULL
#define FZ_LOG_HDR 32u

static char dir[256];

static void put64le(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void empty_dir(void)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
            unlinkat(dirfd(d), de->d_name, 0);
    }
    closedir(d);
}

static void cleanup(void)
{
    empty_dir();
    rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    struct stat st;
    const char *base = stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) ? "/dev/shm" : NULL;
    if (!base)
        base = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    snprintf(dir, sizeof dir, "%s/seqd-fuzz-log.%ld", base, (long)getpid());
    atexit(cleanup);
    return 0;
}

static void write_file(uint64_t seq, int raw, const uint8_t *p, size_t n)
{
    char path[320];
    snprintf(path, sizeof path, "%s/log.%016" PRIx64, dir, seq);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    CHECK(fd >= 0);
    if (!raw) {
        uint8_t h[FZ_LOG_HDR];
        memset(h, 0, sizeof h);
        memcpy(h, FZ_LOG_MAGIC, 8);
        put64le(h + 8, seq);
        put64le(h + 24, XXH64(h, 24, FZ_LOG_SEED));
        CHECK(write(fd, h, sizeof h) == (ssize_t)sizeof h);
    }
    CHECK(n == 0 || write(fd, p, n) == (ssize_t)n);
    close(fd);
}

static void check_err(const char *err, size_t errlen)
{
    size_t n = strnlen(err, errlen);
    CHECK(n > 0 && n < errlen);
    for (size_t i = 0; i < n; i++)
        CHECK(err[i] >= 0x20 && err[i] < 0x7f);
}

static void check_values(const table *t)
{
    for (size_t i = 0; i < table_count(t); i++) {
        const char *name;
        uint8_t len;
        uint64_t v;
        table_entry(t, i, &name, &len, &v);
        CHECK(v >= 1);
        CHECK(table_get(t, name, len) == v);
    }
}

static int done_calls, done_err;

static void on_done(void *arg, int err)
{
    (void)arg;
    done_calls++;
    if (err)
        done_err = err;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3)
        return 0;
    int raw = data[0] & 1, two = data[0] & 2, append = data[0] & 4;
    size_t len = size - 3;
    const uint8_t *s = data + 3;
    size_t split = ((size_t)data[1] | (size_t)data[2] << 8) % (len + 1);

    empty_dir();
    rmdir(dir);
    CHECK(mkdir(dir, 0700) == 0);
    if (two) {
        write_file(1, raw, s, split);
        write_file(2, raw, s + split, len - split);
    } else {
        write_file(1, raw, s, len);
    }

    log_opts o = { .fsync = 0, .segment_bytes = 4096 };
    char err[512];
    memset(err, 0x55, sizeof err);
    table *t = table_new();
    CHECK(t);
    seqlog *l = log_open(dir, &o, t, err, sizeof err);
    if (!l) {
        check_err(err, sizeof err);
        table_free(t);
        return 0;
    }
    check_values(t);

    static const char nm[] = "fuzz.seq";
    uint64_t appended = 0;
    if (append) {
        uint64_t cur = table_get(t, nm, sizeof nm - 1);
        appended = cur < UINT64_MAX ? cur + 1 : cur;
        done_calls = done_err = 0;
        CHECK(log_append(l, nm, sizeof nm - 1, appended, on_done, NULL) == 0);
        CHECK(log_flush(l) == 0);
        CHECK(done_calls == 1 && done_err == 0);
        CHECK(table_get(t, nm, sizeof nm - 1) == appended);
        check_values(t);
    }
    log_close(l);

    /* What replay left (a torn tail zeroed, maybe a new segment) must
     * replay again, to the same table. */
    table *t2 = table_new();
    CHECK(t2);
    l = log_open(dir, &o, t2, err, sizeof err);
    if (!l)
        fprintf(stderr, "fuzz_log: reopen failed: %s\n", err);
    CHECK(l != NULL);
    check_values(t2);
    CHECK(table_count(t2) == table_count(t));
    for (size_t i = 0; i < table_count(t); i++) {
        const char *name;
        uint8_t nlen;
        uint64_t v;
        table_entry(t, i, &name, &nlen, &v);
        CHECK(table_get(t2, name, nlen) == v);
    }
    log_close(l);
    table_free(t2);
    table_free(t);
    empty_dir();
    return 0;
}
