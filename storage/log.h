/* storage/log.h — the member's durable state: an append-only log of
 * (name, value) records replayed into a table (storage/table.h).
 *
 * Contract:
 * - log_append raises the value in the table at once (so READ may see it)
 *   and queues a record; `done` is called later, from log_poll on the
 *   caller's thread, with 0 once an fdatasync covering the record has
 *   completed, or with an errno (ENOSPC, EIO, ...) if its write failed.
 *   No `done(0)` ever precedes durability (with fsync "never", it follows
 *   the write only; for benchmarks).
 * - Group commit: a sync thread writes everything queued since its last
 *   pass with one write and one fdatasync, then signals log_notify_fd; the
 *   caller's event loop watches that fd and calls log_poll. The loop never
 *   blocks on the disk.
 * - A failed write fails that batch only; the log keeps going. A failed
 *   fdatasync is fatal: the log enters the failed state, every pending
 *   ticket fails with EIO, log_poll returns -EIO, and the caller must exit
 *   (the kernel may have dropped the dirty pages).
 * - Segments are preallocated and zero-filled so a sync is a data-only
 *   flush. When a segment fills, the log switches segments: the new one
 *   starts with the whole table as of that point and then receives every
 *   later record; the old one is unlinked only after the new one and the
 *   directory are durable. A crash at any step replays to the same values.
 * - Replay (log_open): a torn or corrupt tail is truncated away; corruption
 *   followed by a valid record is an error (log_open fails).
 * Record format and file layout are documented at the top of log.c.
 */
#ifndef SEQD_LOG_H
#define SEQD_LOG_H

#include <stddef.h>
#include <stdint.h>

#include "table.h"

typedef struct seqlog seqlog;

typedef void (*log_done_fn)(void *arg, int err);

typedef struct log_opts {
    int fsync;                /* 1: fdatasync before done(0); 0: never */
    size_t segment_bytes;     /* preallocated size of a segment; 0 = default (64 MiB) */
} log_opts;

/* Told the duration of every data fdatasync (batches and compaction), on
 * the log's sync thread: fn must be thread-safe and quick (the member's
 * fsync-latency histogram). */
typedef struct log_fsync_observer {
    void (*fn)(void *arg, uint64_t us);
    void *arg;
} log_fsync_observer;

/* Fault injection, for tests and the fault campaign. Counters are 1-based
 * and count from the log_set_faults call (batch writes and data fsyncs, as
 * in log_stats.writes / .fsyncs): write_fail_nth = 3 makes the 3rd write
 * fail with write_errno; 0 = off. write_fail_count failures in a row from
 * there (0 means 1). */
typedef struct log_faults {
    uint64_t write_fail_nth, write_fail_count;
    int write_errno;          /* ENOSPC by default */
    uint64_t fsync_fail_nth;  /* that fsync fails with EIO: fatal */
    uint32_t sync_delay_us;   /* sleep before each fdatasync (slow disk) */
    int crash_at;             /* tests: _exit(99) at compaction step N (1..) */
} log_faults;

/* Installs (or with NULL removes) the observer; it must outlive the log or
 * its removal. Safe at any time: the sync thread loads it atomically. */
void log_set_fsync_observer(seqlog *l, const log_fsync_observer *o);

typedef struct log_stats {
    uint64_t appends, fsyncs, writes, bytes, compactions, write_errors;
} log_stats;

/* Opens (creating if needed) the log in dir and replays it into t.
 * Returns NULL with a message in err on failure (corruption, I/O). */
seqlog *log_open(const char *dir, const log_opts *o, table *t, char *err, size_t errlen);

/* Makes everything appended durable, stops the sync thread, closes files.
 * Pending tickets are completed (or failed) before it returns. */
void log_close(seqlog *l);

/* Raises name to value in the table and queues a record; see the contract.
 * Returns 0, or -errno if the log has failed (done is then not called). */
int log_append(seqlog *l, const char *name, uint8_t len, uint64_t value,
               log_done_fn done, void *arg);

/* The same for a meta entry (quorum/incarnation.h): a key in the log's own
 * meta table, never a sequence; max semantics, durable, kept through
 * compaction. */
int log_append_meta(seqlog *l, const char *key, uint8_t len, uint64_t value,
                    log_done_fn done, void *arg);
/* A meta entry's value, 0 if absent. */
uint64_t log_meta_get(const seqlog *l, const char *key, uint8_t len);

/* From now on every batch also records, under meta `key`, the position it
 * reaches (see POSITION in log.c). Call once, before appending. */
void log_set_position_key(seqlog *l, const char *key, uint8_t len);
/* Records made durable since open (tickets, in order): this incarnation's
 * position. Loop thread. */
uint64_t log_position(const seqlog *l);

/* Readable when tickets may have completed. */
int log_notify_fd(const seqlog *l);

/* Calls done for every completed ticket. Returns 0, or -EIO once an fsync
 * has failed (fatal: the caller exits non-zero). */
int log_poll(seqlog *l);

/* Blocks until every ticket appended so far is complete (tests, shutdown),
 * then runs the done callbacks itself (via log_poll) and returns what
 * log_poll returns. done callbacks may call log_append. */
int log_flush(seqlog *l);

/* True if replay found at least one record. */
int log_replayed_records(const seqlog *l);

/* Asks for a compaction: the next append switches segments as if the
 * current one were full (operators and bench/bench_scale.c, through serve's
 * SIGUSR2). Loop thread. */
void log_compact(seqlog *l);

void log_set_faults(seqlog *l, const log_faults *f);
void log_get_stats(const seqlog *l, log_stats *s);

#endif
