/* storage/log.c — the durable log (see log.h for the contract).
 *
 * FILE LAYOUT. The log lives in the data directory as segments
 *     log.<seqno as 16 lowercase hex digits>
 * replayed in seqno order. A segment is created as log.<seqno>.tmp,
 * preallocated (posix_fallocate) and then really filled with zeros, fsync'd,
 * renamed into place and the directory fsync'd, so that:
 *   - a segment that exists under its final name always has its header and
 *     its full zero-filled size on disk (a leftover *.tmp is deleted at open);
 *   - appending is overwriting allocated, written blocks, so fdatasync has
 *     data to flush and no file size or extent metadata (as PostgreSQL does
 *     with its WAL segments);
 *   - the first zero length field marks the end of the log in the segment.
 *
 * SEGMENT HEADER (32 bytes at offset 0, integers little-endian):
 *     0  8  magic "SEQDLOG1"
 *     8  8  seqno (must match the file name)
 *    16  8  reserved, 0
 *    24  8  XXH64 of bytes 0..23, seed LOG_SEED
 *
 * RECORD (from offset 32 on, back to back, integers little-endian):
 *     0  4  len        payload length (0 = end of log in this segment)
 *     4  8  checksum   XXH64(payload, len, seed LOG_SEED + len): the seed
 *                      folds the length in, so the checksum covers it
 *    12  len payload:  u8 kind (1 = set, 2 = meta) | u8 name_len | name | u64 value
 * so len = 10 + name_len exactly, and a record is 22 + name_len bytes. A
 * "set" record means cur[name] >= value; replay applies table_raise (max),
 * so record order and duplicate records never matter, which is what lets
 * replay read old and new segments together after a crash mid-compaction.
 * A "meta" record is the same into the meta table (quorum/incarnation.h:
 * incarnations, what peers were seen at, the rolled-back mark), never a
 * sequence.
 *
 * POSITION. Once a position key is set (log_set_position_key, once per
 * open, at ticket B), the position is the number of tickets after B made
 * durable. Every batch the sync thread writes ends with one meta record
 * (key, its last ticket - B), and a snapshot carries (key, last ticket
 * queued before P - B): the replayed value of the key is then at least
 * every position log_position reported, compaction included, and the
 * records are max-merged like the rest (duplicates and order never
 * matter).
 *
 * THREADS. log_append runs on the caller's (event loop) thread: it raises
 * the table, serializes the record into the tail batch of a queue under a
 * mutex, and gives it a ticket (tickets are consecutive). One sync thread
 * takes the whole queue at once, writes each batch with one pwritev at the
 * segment offset, fdatasyncs once, then publishes "tickets up to T done with
 * error E" and bumps an eventfd; log_poll, back on the loop thread, runs the
 * done callbacks in ticket order. While the sync thread is in fdatasync the
 * queue fills, so records per fsync grow with the number of appenders.
 *
 * FAILURES. A failed write fails that batch's tickets with its errno and
 * the segment offset stays put (the next batch overwrites; bytes a failed
 * write may have left past the next batch's end are zeroed before the next
 * sync). A failed fdatasync is fatal: every pending and later ticket fails
 * with EIO, log_poll and log_append return -EIO.
 *
 * COMPACTION. When the current segment would pass 75% (estimated on the loop
 * thread, which never underestimates), or log_compact asked, appends build
 * a snapshot of the whole table, a step per append (log_plan_switch: a
 * fuzzy snapshot plus a copy of every record appended meanwhile, so that
 * no value is lost and no append waits for a 10M-entry table to be
 * encoded); once it is complete and the sync thread has the next segment
 * prepared, the append at hand (point P) queues a "switch" before its
 * record. The sync thread then
 * (1) has already written and synced everything queued before P, (2) creates
 * segment seqno+1 (zero-filled in idle time ahead of need once the current
 * one is half full), (3) writes the snapshot plus the batch queued after P
 * with one pwritev, (4) fdatasyncs it and fsyncs the directory, completes
 * that batch's tickets, (5) unlinks the old segment(s) and fsyncs the
 * directory again. faults.crash_at = N exits after step N. A new segment is
 * at least 4x its snapshot, so it always has room for what follows.
 *
 * REPLAY. Records are checked (length plausible, checksum, kind); at the
 * first bad one at offset X the rest of the segment is scanned byte by byte
 * for a valid record. If one exists, the log is corrupt (log_open fails,
 * naming file and offsets): something that was synced went bad. If none
 * does, it is a torn tail: bytes from X to the last non-zero byte are
 * zeroed and synced, and appending resumes at X. Known cost of this rule: a
 * power loss may persist the pages of one unsynced write out of order; if a
 * later page of that last batch survives and an earlier one does not, open
 * reports corruption although nothing acknowledged was lost (PostgreSQL
 * instead takes any bad record as the end of its WAL). Segments are
 * checked one by one; a bad tail in one segment is not compared with the
 * segments after it.
 */
#include "log.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#define LOG_MAGIC "SEQDLOG1"
#define LOG_SEED 0x5345514c4f47ULL           /* "SEQLOG" */
#define LOG_HDR 32u                           /* segment header */
#define LOG_REC_HDR 12u                       /* len + checksum */
#define LOG_PAYLOAD_MIN 10u                   /* kind + name_len + value */
#define LOG_PAYLOAD_MAX (LOG_PAYLOAD_MIN + 255u)
#define LOG_KIND_SET 1
#define LOG_KIND_META 2
#define LOG_POS_KEY_MAX 40
#define LOG_DEFAULT_SEGMENT (64u << 20)
#define LOG_MIN_SEGMENT 4096u
#define LOG_ZCHUNK (1u << 20)                 /* zero-fill write size */
#define LOG_NAME_LEN 20                       /* "log." + 16 hex */

enum log_item_kind {
    LOG_ITEM_RECORDS,   /* records, tickets first..last */
    LOG_ITEM_SWITCH     /* snapshot at P; start a new segment */
};

/* The incremental snapshot of a compaction (loop thread). */
enum log_dump_state {
    LOG_DUMP_IDLE,
    LOG_DUMP_RUNNING,   /* encoding the table, LOG_DUMP_STEP entries an append */
    LOG_DUMP_WAITING    /* encoded; waiting for the sync thread to prepare the segment */
};
#define LOG_DUMP_STEP 4096u
#define LOG_REC_MAX (LOG_REC_HDR + LOG_PAYLOAD_MAX)

typedef struct log_buf {
    uint8_t *data;
    size_t len, cap;
} log_buf;

typedef struct log_item {
    struct log_item *next;
    enum log_item_kind kind;
    log_buf buf;               /* records, or the snapshot */
    uint64_t first, last;      /* tickets (records only) */
    size_t new_size;           /* switch: wanted size of the new segment */
} log_item;

typedef struct log_cb {
    log_done_fn done;
    void *arg;
} log_cb;

typedef struct log_result {
    uint64_t upto;             /* every ticket up to here ... */
    int err;                   /* ... completed with this (0 = durable) */
} log_result;

struct seqlog {
    /* fixed after open */
    char *dir;
    int dirfd;
    int efd;
    log_opts opts;
    size_t seg_default;
    table *t;
    table *meta;               /* owned: kind 2 records */
    char pos_key[LOG_POS_KEY_MAX];   /* under mu; set once */
    uint8_t pos_key_len;
    uint64_t pos_base;         /* tickets before the key was set */
    pthread_t thr;
    int thr_started;
    uint8_t *zeros;            /* LOG_ZCHUNK zero bytes */

    pthread_mutex_t mu;
    pthread_cond_t wake;       /* sync thread: work queued or stop */
    pthread_cond_t progress;   /* log_flush: results published */

    /* under mu */
    log_item *q_head, *q_tail;
    log_item *spare;
    log_result *res;
    size_t nres, capres;
    uint64_t completed;        /* highest ticket with a published result */
    int stop;
    log_faults faults;
    uint64_t faults_gen;

    /* shared flags */
    atomic_int fatal;          /* an fdatasync failed */
    atomic_int switch_retry;   /* a switch failed: the loop queues another */
    atomic_int compact_req;    /* log_compact: switch at the next append */
    atomic_size_t prep_want;   /* loop -> sync thread: prepare the next segment this big */
    atomic_size_t prep_have;   /* sync thread -> loop: the next segment is ready, this big */
    _Atomic(const log_fsync_observer *) fsync_obs;
    atomic_uint_fast64_t st_appends, st_fsyncs, st_writes, st_bytes, st_compactions,
        st_write_errors;

    /* loop thread only */
    uint64_t next_ticket;      /* last ticket handed out */
    uint64_t position;         /* last ticket known durable */
    uint64_t polled;           /* callbacks run up to here */
    log_cb *cbs;               /* ring, index ticket & (cb_cap - 1) */
    size_t cb_cap;
    size_t est_used, est_size; /* the newest segment, as queued */
    enum log_dump_state dump_state;
    log_buf dump;              /* the snapshot being built (see COMPACTION) */
    size_t dump_next;          /* the next table entry to encode */
    size_t dump_size;          /* LOG_DUMP_WAITING: the new segment's size */
    int dump_nowait;           /* after a failed switch: no waiting for preparation */
    uint64_t replayed;
    int in_poll, closing;
    log_result *res_local;
    size_t caplocal;

    /* sync thread only (and open/close, before/after it runs) */
    char st_pos_key[LOG_POS_KEY_MAX];   /* copied under mu with each queue */
    uint8_t st_pos_len;
    uint64_t st_pos_base;
    int seg_fd;
    uint64_t seg_seq;
    size_t seg_off, seg_size, dirty_end;
    uint64_t *old_segs;
    size_t nold;
    uint64_t nwrites, nsyncs, seen_gen;
    log_faults cur_faults;
    int prep_fd;               /* next segment being zero-filled, or -1 */
    uint64_t prep_seq;
    size_t prep_size, prep_done, prep_flushed;
    int prep_synced, prep_failed;
};

/* ---------- encoding ---------- */

static void log_put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void log_put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t log_get32(const uint8_t *p)
{
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static uint64_t log_get64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

/* The length is folded into the seed so a flipped length bit that still
 * looks plausible fails the checksum too. */
static uint64_t log_checksum(const uint8_t *payload, uint32_t len)
{
    return XXH64(payload, len, LOG_SEED + len);
}

static int log_buf_reserve(log_buf *b, size_t more)
{
    if (b->cap - b->len >= more)
        return 0;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap - b->len < more)
        cap *= 2;
    uint8_t *d = realloc(b->data, cap);
    if (!d)
        return -1;
    b->data = d;
    b->cap = cap;
    return 0;
}

static size_t log_rec_size(uint8_t len)
{
    return LOG_REC_HDR + LOG_PAYLOAD_MIN + len;
}

/* Appends one record; the caller reserved log_rec_size(len) bytes. */
static void log_encode(log_buf *b, uint8_t kind, const char *name, uint8_t len, uint64_t value)
{
    uint8_t *p = b->data + b->len;
    uint32_t plen = LOG_PAYLOAD_MIN + len;
    assert(LOG_REC_HDR + plen == log_rec_size(len));
    assert(b->cap - b->len >= log_rec_size(len));   /* the caller reserved it */
    uint8_t *pl = p + LOG_REC_HDR;
    pl[0] = kind;
    pl[1] = len;
    memcpy(pl + 2, name, len);
    log_put64(pl + 2 + len, value);
    log_put32(p, plen);
    log_put64(p + 4, log_checksum(pl, plen));
    b->len += LOG_REC_HDR + plen;
}

static void log_encode_header(uint8_t *h, uint64_t seq)
{
    memset(h, 0, LOG_HDR);
    memcpy(h, LOG_MAGIC, 8);
    log_put64(h + 8, seq);
    log_put64(h + 24, XXH64(h, 24, LOG_SEED));
}

static int log_header_ok(const uint8_t *h, size_t size, uint64_t seq)
{
    return size >= LOG_HDR && memcmp(h, LOG_MAGIC, 8) == 0 && log_get64(h + 8) == seq &&
           log_get64(h + 16) == 0 && log_get64(h + 24) == XXH64(h, 24, LOG_SEED);
}

/* Length of the record at off if it is valid, else 0. Used by replay and by
 * the forward scan that tells corruption from a torn tail. */
static size_t log_valid_at(const uint8_t *buf, size_t size, size_t off)
{
    if (size - off < LOG_REC_HDR)
        return 0;
    uint32_t len = log_get32(buf + off);
    if (len < LOG_PAYLOAD_MIN || len > LOG_PAYLOAD_MAX || size - off - LOG_REC_HDR < len)
        return 0;
    const uint8_t *pl = buf + off + LOG_REC_HDR;
    if ((pl[0] != LOG_KIND_SET && pl[0] != LOG_KIND_META) || (uint32_t)pl[1] + LOG_PAYLOAD_MIN != len)
        return 0;
    if (log_get64(buf + off + 4) != log_checksum(pl, len))
        return 0;
    return LOG_REC_HDR + len;
}

/* ---------- small I/O helpers ---------- */

static void log_seg_name(char *out, size_t n, uint64_t seq, int tmp)
{
    snprintf(out, n, "log.%016" PRIx64 "%s", seq, tmp ? ".tmp" : "");
}

/* pwritev until done: a short write (RLIMIT_FSIZE, signals) is resumed and
 * its error, if any, reported. Returns 0 or an errno. */
static int log_pwritev_all(int fd, struct iovec *iov, int cnt, off_t off)
{
    while (cnt > 0) {
        ssize_t w = pwritev(fd, iov, cnt, off);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return errno;
        }
        if (w == 0)
            return EIO;
        off += w;
        while (cnt > 0 && (size_t)w >= iov->iov_len) {
            w -= (ssize_t)iov->iov_len;
            iov++;
            cnt--;
        }
        if (cnt > 0) {
            iov->iov_base = (char *)iov->iov_base + w;
            iov->iov_len -= (size_t)w;
        }
    }
    return 0;
}

static int log_write_zeros(seqlog *l, int fd, size_t from, size_t to)
{
    while (from < to) {
        size_t n = to - from;
        if (n > LOG_ZCHUNK)
            n = LOG_ZCHUNK;
        struct iovec iov = { l->zeros, n };
        int e = log_pwritev_all(fd, &iov, 1, (off_t)from);
        if (e)
            return e;
        from += n;
    }
    return 0;
}

/* Syncs that are part of creating/retiring segments: skipped in fsync
 * "never" mode like everything else. */
static int log_meta_sync(seqlog *l, int fd)
{
    if (!l->opts.fsync)
        return 0;
    return fsync(fd) < 0 ? errno : 0;
}

/* ---------- sync thread: publishing results ---------- */

/* Records that tickets up to `upto` completed with err, and wakes the loop.
 * Consecutive results with the same error merge, so the list stays short. */
static void log_publish(seqlog *l, uint64_t upto, int err)
{
    pthread_mutex_lock(&l->mu);
    /* Items are written in queue order and hold consecutive tickets: every
     * publish completes a later ticket than the one before. */
    assert(upto > l->completed);
    if (l->nres > 0 && l->res[l->nres - 1].err == err) {
        l->res[l->nres - 1].upto = upto;
    } else {
        if (l->nres == l->capres) {
            size_t cap = l->capres ? l->capres * 2 : 16;
            log_result *r = realloc(l->res, cap * sizeof *r);
            if (!r) {
                /* Cannot record a distinct error: report EIO for the whole
                 * merged range rather than lose a completion. */
                if (l->nres > 0) {
                    l->res[l->nres - 1].upto = upto;
                    l->res[l->nres - 1].err = l->res[l->nres - 1].err ? l->res[l->nres - 1].err : EIO;
                }
                goto out;
            }
            l->res = r;
            l->capres = cap;
        }
        l->res[l->nres++] = (log_result){ upto, err };
    }
out:
    l->completed = upto;
    pthread_cond_broadcast(&l->progress);
    pthread_mutex_unlock(&l->mu);
    uint64_t one = 1;
    ssize_t w = write(l->efd, &one, sizeof one);
    (void)w; /* EAGAIN only if the counter is saturated: already readable */
}

static void log_crash_point(seqlog *l, int step)
{
    if (l->cur_faults.crash_at == step)
        _exit(99);
}

/* The batch write, with the write fault hook. Also zeroes what an earlier
 * failed write may have left beyond this write's end, so that garbage never
 * sits between valid records at the next sync. */
static int log_write_batch(seqlog *l, int fd, struct iovec *iov, int cnt, size_t off, size_t total,
                           int track_dirty)
{
    l->nwrites++;
    atomic_fetch_add(&l->st_writes, 1);
    const log_faults *f = &l->cur_faults;
    uint64_t count = f->write_fail_count ? f->write_fail_count : 1;
    int e = 0;
    if (f->write_fail_nth && l->nwrites >= f->write_fail_nth && l->nwrites < f->write_fail_nth + count)
        e = f->write_errno ? f->write_errno : ENOSPC;
    else
        e = log_pwritev_all(fd, iov, cnt, (off_t)off);
    if (!e && track_dirty && l->dirty_end > off + total) {
        e = log_write_zeros(l, fd, off + total, l->dirty_end);
        if (!e)
            l->dirty_end = 0;
    }
    if (e) {
        atomic_fetch_add(&l->st_write_errors, 1);
        if (track_dirty && off + total > l->dirty_end)
            l->dirty_end = off + total;
        return e;
    }
    atomic_fetch_add(&l->st_bytes, total);
    return 0;
}

/* The data sync that makes a batch durable, with the slow-disk and fatal
 * fsync hooks. Returns 0 or an errno (any failure is fatal to the caller). */
static int log_data_sync(seqlog *l, int fd)
{
    if (!l->opts.fsync)
        return 0;
    l->nsyncs++;
    atomic_fetch_add(&l->st_fsyncs, 1);
    if (l->cur_faults.sync_delay_us) {
        struct timespec ts = { l->cur_faults.sync_delay_us / 1000000u,
                               (long)(l->cur_faults.sync_delay_us % 1000000u) * 1000 };
        while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
        }
    }
    if (l->cur_faults.fsync_fail_nth && l->nsyncs == l->cur_faults.fsync_fail_nth)
        return EIO;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int e = fdatasync(fd) < 0 ? errno : 0;
    const log_fsync_observer *o = atomic_load_explicit(&l->fsync_obs, memory_order_acquire);
    if (o) {
        clock_gettime(CLOCK_MONOTONIC, &t1);
        int64_t us = (int64_t)(t1.tv_sec - t0.tv_sec) * 1000000 + (t1.tv_nsec - t0.tv_nsec) / 1000;
        o->fn(o->arg, us > 0 ? (uint64_t)us : 0);
    }
    return e;
}

void log_set_fsync_observer(seqlog *l, const log_fsync_observer *o)
{
    atomic_store_explicit(&l->fsync_obs, o, memory_order_release);
}

static void log_go_fatal(seqlog *l)
{
    atomic_store(&l->fatal, 1);
}

/* ---------- sync thread: segment preparation ---------- */

static void log_prep_discard(seqlog *l)
{
    atomic_store(&l->prep_have, 0);
    if (l->prep_fd < 0)
        return;
    char name[LOG_NAME_LEN + 8];
    log_seg_name(name, sizeof name, l->prep_seq, 1);
    close(l->prep_fd);
    unlinkat(l->dirfd, name, 0);
    l->prep_fd = -1;
}

/* Starts zero-filling log.<seq>.tmp: header first, then zero chunks. */
static int log_prep_start(seqlog *l, uint64_t seq)
{
    char name[LOG_NAME_LEN + 8];
    log_seg_name(name, sizeof name, seq, 1);
    int fd = openat(l->dirfd, name, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return errno;
    l->prep_fd = fd;
    l->prep_seq = seq;
    l->prep_size = 0;
    l->prep_done = 0;
    l->prep_flushed = 0;
    l->prep_synced = 0;
    uint8_t h[LOG_HDR];
    log_encode_header(h, seq);
    struct iovec iov = { h, LOG_HDR };
    int e = log_pwritev_all(fd, &iov, 1, 0);
    if (e) {
        log_prep_discard(l);
        return e;
    }
    l->prep_done = LOG_HDR;
    return 0;
}

/* Grows the file being prepared to at least size (a big snapshot may need
 * more than the default); allocating first makes ENOSPC show up here, at
 * once, instead of halfway through the zero fill. */
static int log_prep_extend(seqlog *l, size_t size)
{
    if (size <= l->prep_size)
        return 0;
    int e = posix_fallocate(l->prep_fd, 0, (off_t)size);
    if (e && e != EOPNOTSUPP && e != EINVAL)
        return e;
    l->prep_size = size;
    l->prep_synced = 0;
    return 0;
}

/* One bounded step of preparation, so the sync thread can interleave it
 * with batches. Returns 0 or an errno. */
static int log_prep_step(seqlog *l)
{
    if (l->prep_done < l->prep_size) {
        size_t start = l->prep_done;
        size_t end = (start / LOG_ZCHUNK + 1) * LOG_ZCHUNK;
        if (end > l->prep_size)
            end = l->prep_size;
        int e = log_write_zeros(l, l->prep_fd, start, end);
        if (e)
            return e;
        /* Writeback is paced one chunk behind: start this chunk's, wait
         * for the previous one's (started a pass ago, usually finished).
         * Without this the final fsync would flush the whole segment at
         * once and stall a batch behind tens of MiB of zeros. */
        if (l->opts.fsync) {
            sync_file_range(l->prep_fd, (off_t)start, (off_t)(end - start), SYNC_FILE_RANGE_WRITE);
            if (start > l->prep_flushed)
                sync_file_range(l->prep_fd, (off_t)l->prep_flushed, (off_t)(start - l->prep_flushed),
                                SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE |
                                    SYNC_FILE_RANGE_WAIT_AFTER);
            l->prep_flushed = start;
        }
        l->prep_done = end;
        return 0;
    }
    if (!l->prep_synced) {
        /* Data is (nearly) all written back: this commits the metadata. */
        int e = log_meta_sync(l, l->prep_fd);
        if (e)
            return e;
        l->prep_synced = 1;
        l->prep_flushed = l->prep_size;
    }
    return 0;
}

static int log_prep_ready(const seqlog *l)
{
    return l->prep_fd >= 0 && l->prep_done >= l->prep_size && l->prep_synced;
}

/* Idle-time work: once the current segment is half full, zero-fill its
 * successor a chunk at a time so a switch costs only the snapshot write. */
/* The size the next segment is prepared to: the current one's, or what a
 * finished snapshot asks for (prep_want, from the loop). */
static size_t log_prep_target(const seqlog *l)
{
    size_t want = l->seg_size > l->seg_default ? l->seg_size : l->seg_default;
    size_t asked = atomic_load(&l->prep_want);
    return asked > want ? asked : want;
}

static int log_prep_wanted(const seqlog *l)
{
    if (l->prep_failed || atomic_load(&l->fatal))
        return 0;
    if (l->seg_off < l->seg_size / 2 && atomic_load(&l->prep_want) == 0)
        return 0;
    return !log_prep_ready(l) || l->prep_seq != l->seg_seq + 1 || l->prep_size < log_prep_target(l);
}

static void log_prep_idle_step(seqlog *l)
{
    int e = 0;
    if (l->prep_fd >= 0 && l->prep_seq != l->seg_seq + 1)
        log_prep_discard(l);
    if (l->prep_fd < 0)
        e = log_prep_start(l, l->seg_seq + 1);
    if (!e)
        e = log_prep_extend(l, log_prep_target(l));
    if (!e)
        e = log_prep_step(l);
    if (e) {
        /* Out of space or similar: try again at the switch itself, which
         * reports the error on the batch that needs the new segment. */
        log_prep_discard(l);
        l->prep_failed = 1;
    }
    /* What the loop waits for before it queues a switch (LOG_DUMP_WAITING). */
    atomic_store(&l->prep_have, log_prep_ready(l) && l->prep_seq == l->seg_seq + 1 ? l->prep_size : 0);
}

/* Creates segment seq of at least size bytes under its final name, durable
 * (file synced, rename and directory synced). Returns the fd or -errno;
 * *size_out gets the real size. */
static int log_create_segment(seqlog *l, uint64_t seq, size_t size, size_t *size_out)
{
    int e = 0;
    if (l->prep_fd >= 0 && l->prep_seq != seq)
        log_prep_discard(l);
    if (l->prep_fd < 0)
        e = log_prep_start(l, seq);
    if (!e)
        e = log_prep_extend(l, size);
    while (!e && !log_prep_ready(l))
        e = log_prep_step(l);
    char tmp[LOG_NAME_LEN + 8], name[LOG_NAME_LEN + 8];
    log_seg_name(tmp, sizeof tmp, seq, 1);
    log_seg_name(name, sizeof name, seq, 0);
    if (!e && renameat(l->dirfd, tmp, l->dirfd, name) < 0)
        e = errno;
    if (!e)
        e = log_meta_sync(l, l->dirfd);
    if (e) {
        log_prep_discard(l);
        return -e;
    }
    int fd = l->prep_fd;
    *size_out = l->prep_size;
    l->prep_fd = -1;
    l->prep_failed = 0;
    return fd;
}

/* ---------- sync thread: batches and switches ---------- */

/* The batch's position record (see POSITION at the top) into out; its
 * size, 0 when no key is set. */
static size_t log_pos_record(const seqlog *l, const log_item *it, uint8_t *out)
{
    if (l->st_pos_len == 0 || it->last <= l->st_pos_base)
        return 0;
    log_buf b = { out, 0, LOG_REC_HDR + LOG_PAYLOAD_MIN + LOG_POS_KEY_MAX };
    log_encode(&b, LOG_KIND_META, l->st_pos_key, l->st_pos_len, it->last - l->st_pos_base);
    return b.len;
}

/* Writes and syncs one batch of records into the current segment. */
static void log_do_records(seqlog *l, log_item *it)
{
    assert(it->kind == LOG_ITEM_RECORDS && it->first >= 1 && it->first <= it->last);
    assert(it->buf.len >= (it->last - it->first + 1) * log_rec_size(0));   /* a record per ticket */
    if (atomic_load(&l->fatal)) {
        log_publish(l, it->last, EIO);
        return;
    }
    uint8_t pos[LOG_REC_HDR + LOG_PAYLOAD_MIN + LOG_POS_KEY_MAX];
    size_t plen = log_pos_record(l, it, pos);
    size_t len = it->buf.len + plen;
    if (l->seg_off + len > l->seg_size) {
        /* Only after a failed switch: the loop believed a new segment had
         * room. Fail the batch and let the loop queue another switch. */
        atomic_fetch_add(&l->st_write_errors, 1);
        atomic_store(&l->switch_retry, 1);
        log_publish(l, it->last, ENOSPC);
        return;
    }
    struct iovec iov[2] = { { it->buf.data, it->buf.len }, { pos, plen } };
    int e = log_write_batch(l, l->seg_fd, iov, plen ? 2 : 1, l->seg_off, len, 1);
    if (e) {
        log_publish(l, it->last, e);
        return;
    }
    l->seg_off += len;
    e = log_data_sync(l, l->seg_fd);
    if (e) {
        log_go_fatal(l);
        log_publish(l, it->last, EIO);
        return;
    }
    log_publish(l, it->last, 0);
}

/* Unlinks every segment older than the current one, after the current one
 * (holding the whole table) and its directory entry are durable. */
static int log_retire_old(seqlog *l)
{
    size_t kept = 0;
    for (size_t i = 0; i < l->nold; i++) {
        char name[LOG_NAME_LEN + 8];
        log_seg_name(name, sizeof name, l->old_segs[i], 0);
        if (unlinkat(l->dirfd, name, 0) < 0 && errno != ENOENT)
            l->old_segs[kept++] = l->old_segs[i];   /* retry next time */
    }
    l->nold = kept;
    log_crash_point(l, 5);
    return log_meta_sync(l, l->dirfd);
}

static int log_remember_old(seqlog *l, uint64_t seq)
{
    uint64_t *o = realloc(l->old_segs, (l->nold + 1) * sizeof *o);
    if (!o)
        return -1;
    l->old_segs = o;
    l->old_segs[l->nold++] = seq;
    return 0;
}

/* Switches to a new segment holding the snapshot `sw` (taken at P) and the
 * batch `r` queued after P (may be NULL). Everything before P was written
 * and synced by the previous items. On a failure before the new segment is
 * durable, stays on the old segment: r is written there if it fits, and the
 * loop is asked to queue another switch. */
static void log_do_switch(seqlog *l, log_item *sw, log_item *r)
{
    if (atomic_load(&l->fatal)) {
        if (r)
            log_publish(l, r->last, EIO);
        return;
    }
    log_crash_point(l, 1);
    uint64_t seq = l->seg_seq + 1;
    char name[LOG_NAME_LEN + 8];
    log_seg_name(name, sizeof name, seq, 0);
    size_t size = 0;
    int fd = log_create_segment(l, seq, sw->new_size, &size);
    if (fd < 0)
        goto abort;
    log_crash_point(l, 2);
    uint8_t pos[LOG_REC_HDR + LOG_PAYLOAD_MIN + LOG_POS_KEY_MAX];
    size_t plen = r ? log_pos_record(l, r, pos) : 0;
    size_t total = sw->buf.len + (r ? r->buf.len : 0) + plen;
    if (LOG_HDR + total > size) {
        close(fd);
        unlinkat(l->dirfd, name, 0);
        goto abort;
    }
    struct iovec iov[3] = { { sw->buf.data, sw->buf.len }, { r ? r->buf.data : NULL, r ? r->buf.len : 0 },
                            { pos, plen } };
    int e = log_write_batch(l, fd, iov, r ? 3 : 1, LOG_HDR, total, 0);
    if (e) {
        close(fd);
        unlinkat(l->dirfd, name, 0);
        log_meta_sync(l, l->dirfd);
        goto abort;
    }
    log_crash_point(l, 3);
    e = log_data_sync(l, fd);
    if (!e) {
        log_crash_point(l, 4);
        e = log_meta_sync(l, l->dirfd);
    }
    if (e || log_remember_old(l, l->seg_seq) < 0) {
        close(fd);
        log_go_fatal(l);
        if (r)
            log_publish(l, r->last, EIO);
        return;
    }
    close(l->seg_fd);
    l->seg_fd = fd;
    l->seg_seq = seq;
    l->seg_size = size;
    atomic_store(&l->prep_have, 0);   /* that preparation is this segment now */
    l->seg_off = LOG_HDR + total;
    l->dirty_end = 0;
    if (r)
        log_publish(l, r->last, 0);
    atomic_fetch_add(&l->st_compactions, 1);
    if (log_retire_old(l) != 0) {
        /* The old files may or may not be gone; either way replay is
         * correct, but a directory that cannot be synced is a dying disk. */
        log_go_fatal(l);
    }
    return;
abort:
    atomic_store(&l->switch_retry, 1);
    atomic_fetch_add(&l->st_write_errors, 1);
    if (r)
        log_do_records(l, r);
}

/* Takes the loop's whole queue each pass (group commit) and, when there is
 * nothing queued, prepares the next segment in small steps. */
static void *log_sync_main(void *arg)
{
    seqlog *l = arg;
    pthread_mutex_lock(&l->mu);
    for (;;) {
        while (!l->q_head && !l->stop) {
            if (log_prep_wanted(l)) {
                pthread_mutex_unlock(&l->mu);
                log_prep_idle_step(l);
                pthread_mutex_lock(&l->mu);
                continue;
            }
            pthread_cond_wait(&l->wake, &l->mu);
        }
        if (!l->q_head)
            break; /* stop, and everything written */
        log_item *list = l->q_head;
        l->q_head = l->q_tail = NULL;
        l->cur_faults = l->faults;
        memcpy(l->st_pos_key, l->pos_key, sizeof l->st_pos_key);
        l->st_pos_len = l->pos_key_len;
        l->st_pos_base = l->pos_base;
        if (l->seen_gen != l->faults_gen) {
            l->seen_gen = l->faults_gen;
            l->nwrites = l->nsyncs = 0;
        }
        pthread_mutex_unlock(&l->mu);

        for (log_item *it = list; it;) {
            if (it->kind == LOG_ITEM_SWITCH) {
                log_item *r = it->next && it->next->kind == LOG_ITEM_RECORDS ? it->next : NULL;
                log_do_switch(l, it, r);
                it = r ? r->next : it->next;
            } else {
                log_do_records(l, it);
                it = it->next;
            }
        }

        pthread_mutex_lock(&l->mu);
        while (list) {
            log_item *next = list->next;
            if (list->buf.cap > (4u << 20)) {
                /* do not keep a big snapshot buffer around */
                free(list->buf.data);
                list->buf = (log_buf){ 0 };
            }
            list->buf.len = 0;
            list->next = l->spare;
            l->spare = list;
            list = next;
        }
        /* Under constant load there is no idle time: still advance the
         * preparation by one bounded step per pass. */
        if (log_prep_wanted(l)) {
            pthread_mutex_unlock(&l->mu);
            log_prep_idle_step(l);
            pthread_mutex_lock(&l->mu);
        }
    }
    pthread_mutex_unlock(&l->mu);
    log_prep_discard(l);
    return NULL;
}

/* ---------- replay ---------- */

static int log_cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Parses "log.<16 hex>" (tmp = 0) or "log.<16 hex>.tmp" (tmp = 1). */
static int log_parse_name(const char *s, uint64_t *seq, int *tmp)
{
    if (strncmp(s, "log.", 4) != 0)
        return 0;
    for (int i = 4; i < LOG_NAME_LEN; i++) {
        char c = s[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return 0;
    }
    if (s[LOG_NAME_LEN] == '\0')
        *tmp = 0;
    else if (strcmp(s + LOG_NAME_LEN, ".tmp") == 0)
        *tmp = 1;
    else
        return 0;
    *seq = strtoull(s + 4, NULL, 16);
    return 1;
}

/* Lists segments in seqno order, deleting leftover *.tmp files (a crash
 * while preparing a segment: it was never renamed, so it holds nothing). */
static int log_list_segments(seqlog *l, uint64_t **out, size_t *n, char *err, size_t errlen)
{
    int fd = dup(l->dirfd);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (!d) {
        if (fd >= 0)
            close(fd);
        snprintf(err, errlen, "cannot read directory %s: %s", l->dir, strerror(errno));
        return -1;
    }
    rewinddir(d);
    uint64_t *v = NULL;
    size_t cnt = 0, cap = 0;
    int removed = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        uint64_t seq;
        int tmp;
        if (!log_parse_name(de->d_name, &seq, &tmp))
            continue;
        if (tmp) {
            unlinkat(l->dirfd, de->d_name, 0);
            removed = 1;
            continue;
        }
        if (cnt == cap) {
            cap = cap ? cap * 2 : 8;
            uint64_t *nv = realloc(v, cap * sizeof *nv);
            if (!nv) {
                free(v);
                closedir(d);
                snprintf(err, errlen, "out of memory listing %s", l->dir);
                return -1;
            }
            v = nv;
        }
        v[cnt++] = seq;
    }
    closedir(d);
    if (removed)
        log_meta_sync(l, l->dirfd);
    if (cnt)
        qsort(v, cnt, sizeof *v, log_cmp_u64);
    *out = v;
    *n = cnt;
    return 0;
}

static int log_read_all(int fd, uint8_t *buf, size_t size)
{
    size_t off = 0;
    while (off < size) {
        ssize_t r = pread(fd, buf + off, size - off, (off_t)off);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (r == 0) {
            errno = EIO;
            return -1;
        }
        off += (size_t)r;
    }
    return 0;
}

/* Replays one segment into the table. On success returns the open fd and
 * sets *end (where the next record goes) and *size. A torn tail is zeroed
 * and synced here; corruption (a bad record followed by a valid one) is an
 * error. The segment is read whole: O(size) memory for the duration. */
static int log_replay_segment(seqlog *l, uint64_t seq, size_t *end, size_t *size_out, char *err,
                              size_t errlen)
{
    char name[LOG_NAME_LEN + 8];
    log_seg_name(name, sizeof name, seq, 0);
    int fd = openat(l->dirfd, name, O_RDWR | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0) {
        snprintf(err, errlen, "cannot open %s/%s: %s", l->dir, name, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    size_t size = (size_t)st.st_size;
    uint8_t *buf = malloc(size ? size : 1);
    if (!buf || log_read_all(fd, buf, size) < 0) {
        snprintf(err, errlen, "cannot read %s/%s: %s", l->dir, name, buf ? strerror(errno) : "out of memory");
        free(buf);
        close(fd);
        return -1;
    }
    if (!log_header_ok(buf, size, seq)) {
        snprintf(err, errlen, "log corrupt: %s/%s: bad segment header", l->dir, name);
        goto fail;
    }
    size_t nz = size; /* one past the last non-zero byte */
    while (nz > LOG_HDR && buf[nz - 1] == 0)
        nz--;
    size_t off = LOG_HDR;
    for (;;) {
        if (off >= nz)
            break; /* only zeros from here: the end */
        size_t n = log_valid_at(buf, size, off);
        if (n == 0)
            break;
        const uint8_t *pl = buf + off + LOG_REC_HDR;
        table *into = pl[0] == LOG_KIND_META ? l->meta : l->t;
        if (table_raise(into, (const char *)pl + 2, pl[1], log_get64(pl + 2 + pl[1])) < 0) {
            snprintf(err, errlen, "out of memory replaying %s/%s", l->dir, name);
            goto fail;
        }
        l->replayed += pl[0] == LOG_KIND_SET;
        off += n;
    }
    if (off < nz) {
        for (size_t y = off + 1; y < nz; y++) {
            if (log_valid_at(buf, size, y)) {
                snprintf(err, errlen,
                         "log corrupt: %s/%s: bad record at offset %zu is followed by a valid record "
                         "at offset %zu",
                         l->dir, name, off, y);
                goto fail;
            }
        }
        /* Torn tail: never synced, so never acknowledged. Zero it so the
         * next start does not see the garbage, and resume writing here. */
        int e = log_write_zeros(l, fd, off, nz);
        if (!e)
            e = log_meta_sync(l, fd);
        if (e) {
            snprintf(err, errlen, "cannot clear torn tail of %s/%s at offset %zu: %s", l->dir, name, off,
                     strerror(e));
            goto fail;
        }
    }
    free(buf);
    *end = off;
    *size_out = size;
    return fd;
fail:
    free(buf);
    close(fd);
    return -1;
}

/* ---------- public API ---------- */

static void log_destroy(seqlog *l)
{
    if (!l)
        return;
    if (l->seg_fd >= 0)
        close(l->seg_fd);
    if (l->prep_fd >= 0)
        log_prep_discard(l);
    if (l->efd >= 0)
        close(l->efd);
    if (l->dirfd >= 0)
        close(l->dirfd);
    for (log_item *lists[2] = { l->q_head, l->spare }, **p = lists; p < lists + 2; p++) {
        log_item *it = *p;
        while (it) {
            log_item *next = it->next;
            free(it->buf.data);
            free(it);
            it = next;
        }
    }
    pthread_mutex_destroy(&l->mu);
    pthread_cond_destroy(&l->wake);
    pthread_cond_destroy(&l->progress);
    free(l->res);
    free(l->res_local);
    free(l->cbs);
    free(l->old_segs);
    free(l->dump.data);
    free(l->zeros);
    free(l->dir);
    if (l->meta)
        table_free(l->meta);
    free(l);
}

/* The sync thread gets no signals: they belong to the loop thread (libevent
 * signal handling), and SIGXFSZ then cannot kill the process for a write
 * that RLIMIT_FSIZE refuses: the write fails with EFBIG instead. */
static int log_start_thread(seqlog *l)
{
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int e = pthread_create(&l->thr, NULL, log_sync_main, l);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (e)
        return e;
    l->thr_started = 1;
    return 0;
}

/* The seqlog with its options and buffers, nothing opened yet (every fd
 * -1, so that log_destroy can take it back at any point). */
static seqlog *log_alloc(const char *dir, const log_opts *o, table *t)
{
    seqlog *l = calloc(1, sizeof *l);
    if (!l)
        return NULL;
    l->dirfd = l->efd = l->seg_fd = l->prep_fd = -1;
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->wake, NULL);
    pthread_cond_init(&l->progress, NULL);
    l->opts = o ? *o : (log_opts){ .fsync = 1 };
    l->seg_default = l->opts.segment_bytes ? l->opts.segment_bytes : LOG_DEFAULT_SEGMENT;
    if (l->seg_default < LOG_MIN_SEGMENT)
        l->seg_default = LOG_MIN_SEGMENT;
    l->t = t;
    l->meta = table_new();
    l->dir = strdup(dir);
    l->zeros = calloc(1, LOG_ZCHUNK);
    l->cb_cap = 1024;
    l->cbs = calloc(l->cb_cap, sizeof *l->cbs);
    if (!l->dir || !l->zeros || !l->cbs || !l->meta) {
        log_destroy(l);
        return NULL;
    }
    return l;
}

/* Replays every segment into the table, oldest first; the newest stays
 * open for appending and the older ones are remembered for retirement.
 * Without any, creates segment 1. Returns 0 or -1 (err set). */
static int log_replay_all(seqlog *l, const char *dir, char *err, size_t errlen)
{
    uint64_t *segs = NULL;
    size_t nsegs = 0;
    if (log_list_segments(l, &segs, &nsegs, err, errlen) < 0)
        return -1;
    for (size_t i = 0; i < nsegs; i++) {
        size_t end = 0, size = 0;
        int fd = log_replay_segment(l, segs[i], &end, &size, err, errlen);
        if (fd < 0) {
            free(segs);
            return -1;
        }
        if (i + 1 < nsegs) {
            close(fd);
            if (log_remember_old(l, segs[i]) < 0) {
                snprintf(err, errlen, "out of memory");
                free(segs);
                return -1;
            }
        } else {
            l->seg_fd = fd;
            l->seg_seq = segs[i];
            l->seg_off = end;
            l->seg_size = size;
        }
    }
    free(segs);
    if (l->seg_fd < 0) {
        int fd = log_create_segment(l, 1, l->seg_default, &l->seg_size);
        if (fd < 0) {
            snprintf(err, errlen, "cannot create log segment in %s: %s", dir, strerror(-fd));
            return -1;
        }
        l->seg_fd = fd;
        l->seg_seq = 1;
        l->seg_off = LOG_HDR;
    }
    assert(l->seg_off >= LOG_HDR && l->seg_off <= l->seg_size);
    return 0;
}

seqlog *log_open(const char *dir, const log_opts *o, table *t, char *err, size_t errlen)
{
    seqlog *l = log_alloc(dir, o, t);
    if (!l) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
        snprintf(err, errlen, "cannot create %s: %s", dir, strerror(errno));
        goto fail;
    }
    l->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (l->dirfd < 0) {
        snprintf(err, errlen, "cannot open %s: %s", dir, strerror(errno));
        goto fail;
    }
    if (log_replay_all(l, dir, err, errlen) < 0)
        goto fail;
    l->est_used = l->seg_off;
    l->est_size = l->seg_size;
    l->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (l->efd < 0) {
        snprintf(err, errlen, "eventfd: %s", strerror(errno));
        goto fail;
    }
    int e = log_start_thread(l);
    if (e) {
        snprintf(err, errlen, "cannot start log thread: %s", strerror(e));
        goto fail;
    }
    return l;
fail:
    log_destroy(l);
    return NULL;
}

/* Grows the callback ring, keeping pending tickets at their new slots. */
static int log_cb_grow(seqlog *l)
{
    size_t cap = l->cb_cap * 2;
    log_cb *n = calloc(cap, sizeof *n);
    if (!n)
        return -1;
    for (uint64_t tk = l->polled + 1; tk <= l->next_ticket; tk++)
        n[tk & (cap - 1)] = l->cbs[tk & (l->cb_cap - 1)];
    free(l->cbs);
    l->cbs = n;
    l->cb_cap = cap;
    return 0;
}

static log_item *log_item_get(seqlog *l, enum log_item_kind kind)
{
    log_item *it = l->spare;
    if (it)
        l->spare = it->next;
    else if (!(it = calloc(1, sizeof *it)))
        return NULL;
    it->next = NULL;
    it->kind = kind;
    it->buf.len = 0;
    it->first = it->last = 0;
    it->new_size = 0;
    return it;
}

static void log_enqueue(seqlog *l, log_item *it)
{
    if (l->q_tail)
        l->q_tail->next = it;
    else
        l->q_head = it;
    l->q_tail = it;
}

/* Entries [from, to) of a table as records of `kind`. */
static int log_snapshot_range(const table *t, uint8_t kind, size_t from, size_t to, log_buf *b)
{
    for (size_t i = from; i < to; i++) {
        const char *name;
        uint8_t len;
        uint64_t v;
        table_entry(t, i, &name, &len, &v);
        if (log_buf_reserve(b, log_rec_size(len)) < 0)
            return -1;
        log_encode(b, kind, name, len, v);
    }
    return 0;
}

/* The end of a snapshot: the meta table and the position as of the point
 * the switch is queued at (every ticket handed out so far is written
 * before the snapshot is). */
static int log_snapshot_meta(seqlog *l, log_buf *b)
{
    if (l->pos_key_len && l->next_ticket > l->pos_base &&
        table_raise(l->meta, l->pos_key, l->pos_key_len, l->next_ticket - l->pos_base) < 0)
        return -1;
    return log_snapshot_range(l->meta, LOG_KIND_META, 0, table_count(l->meta), b);
}

static void log_dump_abort(seqlog *l)
{
    free(l->dump.data);
    l->dump = (log_buf){ 0 };
    l->dump_state = LOG_DUMP_IDLE;
    atomic_store(&l->prep_want, 0);
    atomic_store(&l->switch_retry, 1);   /* start over at the next append */
}

/* Room left in the newest segment as queued. */
static size_t log_room(const seqlog *l)
{
    return l->est_size > l->est_used ? l->est_size - l->est_used : 0;
}

/* One step of the snapshot for a compaction, run by every append while one
 * is due. A snapshot of 10M entries (300 MB) took the loop ~0.5 s in one
 * go, and every fetch waited; now it is built LOG_DUMP_STEP entries an
 * append while the records keep going to the current segment. It is fuzzy:
 * an entry encoded early may be raised later. So every record appended
 * while it is built is also added to it (kind, name and value as
 * appended): replay takes the maximum, so the snapshot plus those copies
 * holds, per entry, at least every value appended before the switch, and
 * the switch item is queued ahead of the record whose append finishes it
 * (point P), so every record after P goes to the new segment as before.
 * If room in the current segment runs short, the rest is encoded at once.
 * Once encoded, the switch waits (records still copied) until the sync
 * thread has zero-filled a segment big enough (prep_want / prep_have), so
 * that the switch never zero-fills hundreds of MB while batches wait —
 * unless room runs short, or after a failed switch.
 * Returns the new segment's size when the switch is to be queued now (snap
 * then holds the snapshot, the caller's), 0 if not, -1 on OOM (the
 * compaction is then started over at a later append). */
static long log_plan_switch(seqlog *l, uint8_t kind, const char *name, uint8_t len, uint64_t value,
                            size_t rsz, log_buf *snap)
{
    const size_t margin = 2 * (size_t)LOG_REC_MAX + 2 * rsz;
    if (l->dump_state == LOG_DUMP_IDLE) {
        int retry = atomic_exchange(&l->switch_retry, 0);
        int asked = atomic_exchange(&l->compact_req, 0);
        if (!retry && !asked && l->est_used + rsz <= l->est_size / 4 * 3)
            return 0;
        l->dump_state = LOG_DUMP_RUNNING;
        l->dump_next = 0;
        l->dump_nowait = retry;
        assert(l->dump.len == 0);
    } else {
        if (log_buf_reserve(&l->dump, log_rec_size(len)) < 0)
            goto oom;
        log_encode(&l->dump, kind, name, len, value);
    }
    if (l->dump_state == LOG_DUMP_RUNNING) {
        size_t n = table_count(l->t), left = n - l->dump_next;
        /* Appends still needed at LOG_DUMP_STEP entries each, and what they
         * may write meanwhile (a record and a position record each). */
        size_t need = (left / LOG_DUMP_STEP + 1) * margin;
        size_t to = log_room(l) < need + margin || left <= LOG_DUMP_STEP ? n : l->dump_next + LOG_DUMP_STEP;
        if (log_snapshot_range(l->t, LOG_KIND_SET, l->dump_next, to, &l->dump) < 0)
            goto oom;
        l->dump_next = to;
        if (to < n)
            return 0;
        if (log_snapshot_meta(l, &l->dump) < 0)
            goto oom;
        size_t new_size = 4 * (l->dump.len + rsz) + LOG_HDR;
        new_size = (new_size + 4095) / 4096 * 4096;
        l->dump_size = new_size < l->seg_default ? l->seg_default : new_size;
        l->dump_state = LOG_DUMP_WAITING;
        atomic_store(&l->prep_want, l->dump_size);
    }
    assert(l->dump_state == LOG_DUMP_WAITING);
    /* The new segment is 4x the snapshot, so it has room for the copies
     * that accumulate while waiting. */
    if (!l->dump_nowait && atomic_load(&l->prep_have) < l->dump_size && log_room(l) >= 4 * margin &&
        l->dump.len + rsz < l->dump_size / 2)
        return 0;
    *snap = l->dump;
    l->dump = (log_buf){ 0 };
    l->dump_state = LOG_DUMP_IDLE;
    atomic_store(&l->prep_want, 0);
    size_t size = 4 * (snap->len + rsz) + LOG_HDR;
    size = (size + 4095) / 4096 * 4096;
    return (long)(size > l->dump_size ? size : l->dump_size);
oom:
    log_dump_abort(l);
    return -1;
}

/* Under mu: queues the record (after a switch item holding snap when
 * new_size is set; the item then owns snap) and hands out its ticket in
 * *tk. Returns 0, or -1 on OOM with nothing queued (snap still the
 * caller's). */
static int log_queue_locked(seqlog *l, uint8_t kind, const char *name, uint8_t len,
                            uint64_t value, log_buf snap, size_t new_size, uint64_t *tk)
{
    size_t rsz = log_rec_size(len);
    log_item *sw = NULL, *fresh = NULL, *tail = l->q_tail;
    if (new_size) {
        if (!(sw = log_item_get(l, LOG_ITEM_SWITCH)))
            goto oom;
        tail = NULL; /* records after P go after the switch */
    }
    if (!tail || tail->kind != LOG_ITEM_RECORDS) {
        if (!(fresh = log_item_get(l, LOG_ITEM_RECORDS)))
            goto oom;
        fresh->first = l->next_ticket + 1;
        tail = fresh;
    }
    if (log_buf_reserve(&tail->buf, rsz) < 0)
        goto oom;
    if (sw) {
        free(sw->buf.data);
        sw->buf = snap;
        sw->new_size = new_size;
        log_enqueue(l, sw);
        l->est_size = new_size;
        l->est_used = LOG_HDR + snap.len;
    }
    if (fresh) {
        log_enqueue(l, fresh);
        if (l->pos_key_len)
            l->est_used += log_rec_size(l->pos_key_len);   /* its position record */
    }
    log_encode(&tail->buf, kind, name, len, value);
    *tk = ++l->next_ticket;
    /* Tickets are consecutive within an item (log_do_records publishes
     * first..last as one). */
    assert(tail->last ? tail->last + 1 == *tk : tail->first == *tk);
    assert(l->next_ticket - l->polled <= l->cb_cap);   /* its ring slot is free */
    tail->last = *tk;
    l->est_used += rsz;
    return 0;
oom:
    if (sw) {
        sw->next = l->spare;
        l->spare = sw;
    }
    if (fresh) {
        fresh->next = l->spare;
        l->spare = fresh;
    }
    return -1;
}

static int log_append_kind(seqlog *l, uint8_t kind, const char *name, uint8_t len,
                           uint64_t value, log_done_fn done, void *arg)
{
    if (atomic_load(&l->fatal))
        return -EIO;
    if (l->closing)
        return -ESHUTDOWN;
    if (table_raise(kind == LOG_KIND_META ? l->meta : l->t, name, len, value) < 0)
        return -ENOMEM;
    if (l->next_ticket - l->polled + 1 > l->cb_cap && log_cb_grow(l) < 0)
        return -ENOMEM;
    log_buf snap = { 0 };
    long planned = log_plan_switch(l, kind, name, len, value, log_rec_size(len) + log_rec_size(l->pos_key_len),
                                   &snap);
    if (planned < 0)
        return -ENOMEM;
    size_t new_size = (size_t)planned;

    pthread_mutex_lock(&l->mu);
    if (atomic_load(&l->fatal)) {
        pthread_mutex_unlock(&l->mu);
        free(snap.data);
        return -EIO;
    }
    uint64_t tk;
    if (log_queue_locked(l, kind, name, len, value, snap, new_size, &tk) < 0) {
        pthread_mutex_unlock(&l->mu);
        free(snap.data);
        if (new_size)
            atomic_store(&l->switch_retry, 1);
        return -ENOMEM;
    }
    pthread_mutex_unlock(&l->mu);
    /* Signalled after the unlock: a sync thread woken while the loop still
     * held mu would block on it at once and need a second wake-up (two
     * futex calls and a context switch more on every append). Safe: the
     * queue changed under mu, and the thread tests it under mu before it
     * waits, so it either sees the record or is already waiting. */
    pthread_cond_signal(&l->wake);
    l->cbs[tk & (l->cb_cap - 1)] = (log_cb){ done, arg };
    atomic_fetch_add(&l->st_appends, 1);
    return 0;
}

int log_append(seqlog *l, const char *name, uint8_t len, uint64_t value, log_done_fn done, void *arg)
{
    return log_append_kind(l, LOG_KIND_SET, name, len, value, done, arg);
}

int log_append_meta(seqlog *l, const char *key, uint8_t len, uint64_t value, log_done_fn done,
                    void *arg)
{
    return log_append_kind(l, LOG_KIND_META, key, len, value, done, arg);
}

uint64_t log_meta_get(const seqlog *l, const char *key, uint8_t len)
{
    long i = map_find(l->meta, key, len);
    return i < 0 ? 0 : map_value(l->meta, (size_t)i);
}

void log_set_position_key(seqlog *l, const char *key, uint8_t len)
{
    assert(len > 0 && len < LOG_POS_KEY_MAX);
    pthread_mutex_lock(&l->mu);
    memcpy(l->pos_key, key, len);
    l->pos_key_len = len;
    l->pos_base = l->next_ticket;
    pthread_mutex_unlock(&l->mu);
}

uint64_t log_position(const seqlog *l)
{
    return l->pos_key_len && l->position > l->pos_base ? l->position - l->pos_base : 0;
}

int log_notify_fd(const seqlog *l)
{
    return l->efd;
}

/* Runs callbacks in ticket order. A callback may call log_append (the ring
 * is re-read by index each time, and the slot is released before the call);
 * a nested log_poll from a callback does nothing. */
int log_poll(seqlog *l)
{
    /* Nested: leave the eventfd set, so the loop comes back for what the
     * outer call does not run. */
    if (l->in_poll)
        return atomic_load(&l->fatal) ? -EIO : 0;
    /* Drain before taking the results: a publish after this re-arms it.
     * One read is enough: an eventfd (not EFD_SEMAPHORE) returns its whole
     * counter and resets it, so a second read would only say EAGAIN (a
     * syscall per fsync saved). */
    uint64_t cnt;
    if (read(l->efd, &cnt, sizeof cnt) < 0) {
        /* EAGAIN: a nested drain or a spurious wake-up; nothing to do */
    }
    l->in_poll = 1;
    pthread_mutex_lock(&l->mu);
    /* Swap the published list out, so callbacks run without the lock. */
    log_result *res = l->res;
    size_t nres = l->nres, cap = l->capres;
    l->res = l->res_local;
    l->capres = l->caplocal;
    l->nres = 0;
    pthread_mutex_unlock(&l->mu);
    for (size_t i = 0; i < nres; i++) {
        /* Results come in ticket order, for tickets handed out. */
        assert(res[i].upto <= l->next_ticket && (i == 0 || res[i].upto > res[i - 1].upto));
        if (res[i].err == 0)
            l->position = res[i].upto;   /* before the callbacks: an ACK reports it */
        while (l->polled < res[i].upto) {
            uint64_t tk = ++l->polled;
            log_cb cb = l->cbs[tk & (l->cb_cap - 1)];
            if (cb.done)
                cb.done(cb.arg, res[i].err);
        }
    }
    l->res_local = res;
    l->caplocal = cap;
    l->in_poll = 0;
    return atomic_load(&l->fatal) ? -EIO : 0;
}

/* Waits for the sync thread to publish every ticket handed out so far, then
 * runs their callbacks itself (via log_poll) before returning. */
int log_flush(seqlog *l)
{
    uint64_t target = l->next_ticket;
    pthread_mutex_lock(&l->mu);
    while (l->completed < target)
        pthread_cond_wait(&l->progress, &l->mu);
    pthread_mutex_unlock(&l->mu);
    return log_poll(l);
}

void log_close(seqlog *l)
{
    if (!l)
        return;
    log_flush(l);
    l->closing = 1;
    pthread_mutex_lock(&l->mu);
    l->stop = 1;
    pthread_cond_signal(&l->wake);
    pthread_mutex_unlock(&l->mu);
    if (l->thr_started)
        pthread_join(l->thr, NULL);
    log_poll(l); /* tickets appended by callbacks during the flush */
    log_destroy(l);
}

int log_replayed_records(const seqlog *l)
{
    return l->replayed > 0;
}

void log_compact(seqlog *l)
{
    /* log_plan_switch takes it at the next append (none is started while
     * one is being built already). */
    atomic_store(&l->compact_req, 1);
}

void log_set_faults(seqlog *l, const log_faults *f)
{
    pthread_mutex_lock(&l->mu);
    l->faults = *f;
    l->faults_gen++;
    pthread_mutex_unlock(&l->mu);
}

void log_get_stats(const seqlog *l, log_stats *s)
{
    s->appends = atomic_load(&l->st_appends);
    s->fsyncs = atomic_load(&l->st_fsyncs);
    s->writes = atomic_load(&l->st_writes);
    s->bytes = atomic_load(&l->st_bytes);
    s->compactions = atomic_load(&l->st_compactions);
    s->write_errors = atomic_load(&l->st_write_errors);
}
