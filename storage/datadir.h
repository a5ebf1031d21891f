/* storage/datadir.h — a member's data directory: created if missing,
 * locked (flock on DIR/LOCK) so that a second process cannot open it, and
 * holding the member's identity (DIR/IDENTITY: the cluster id chosen by
 * `seqd init` and the member set) or, before that, init's prepared record
 * (DIR/PREPARED). Both are written atomically (temp file, fsync, rename,
 * fsync of the directory); IDENTITY only once the member has state: init's
 * COMMIT, or a completed recovery.
 */
#ifndef SEQD_DATADIR_H
#define SEQD_DATADIR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../proto.h"

#define DATADIR_MEMBERS_MAX 1024   /* bytes of the comma-joined member list */

/* IDENTITY: this member is initialized with cluster `cid` (DESIGN.md §3);
 * PREPARED: `seqd init` prepared it for `cid`. Either way for the member
 * set `members`, whose digest is set_digest. */
typedef struct datadir_identity {
    struct seqd_cid cid;
    uint64_t set_digest;                 /* of the epoch: xxh64(members, seed epoch) */
    char members[DATADIR_MEMBERS_MAX];   /* comma-joined HOST:PORT, in slot order
                                            (epoch 0: sorted) */
    /* IDENTITY only (DESIGN.md §6): the epoch, and for epoch > 0 the switch
     * that led to it from epoch - 1 (quorum/epoch.h). */
    uint64_t epoch;
    bool has_switch;
    int sw_slot;
    uint64_t sw_old_inc;
    char sw_old[SEQD_ADDR_MAX + 1], sw_new[SEQD_ADDR_MAX + 1];
    /* The switch that led to epoch - 1 (epoch >= 2), kept so that an
     * incomplete switch can be dropped back to it. */
    bool has_prev;
    int prev_slot;
    uint64_t prev_old_inc;
    char prev_old[SEQD_ADDR_MAX + 1], prev_new[SEQD_ADDR_MAX + 1];
} datadir_identity;

/* Creates dir if missing and takes its lock. Returns the lock fd (keep it
 * open for the life of the process), or -1 with a message in err (e.g.
 * "data directory X is in use by another seqd (pid N)"). */
int datadir_lock(const char *dir, char *err, size_t errlen);

/* 1 and fills id if DIR/IDENTITY exists, 0 if not, -1 on error (message). */
int datadir_read_identity(const char *dir, datadir_identity *id, char *err, size_t errlen);

/* Durably writes DIR/IDENTITY. Returns 0 or -1 with a message. */
int datadir_write_identity(const char *dir, const datadir_identity *id, char *err, size_t errlen);

/* The same for DIR/PREPARED ("prepared" is sticky: it is never removed;
 * IDENTITY, once written, takes precedence). */
int datadir_read_prepared(const char *dir, datadir_identity *id, char *err, size_t errlen);
int datadir_write_prepared(const char *dir, const datadir_identity *id, char *err, size_t errlen);

/* The digest of a member set: xxh64 of the sorted, comma-joined list.
 * Sorts `members` (n strings) in place and writes the joined list to out. */
uint64_t datadir_set_digest(char **members, int n, char *out, size_t outlen);

/* fsync of a directory, for renames and unlinks to be durable. */
int datadir_fsync_dir(const char *dir);

#endif
