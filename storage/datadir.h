/* storage/datadir.h — a member's data directory: created if missing,
 * locked (flock on DIR/LOCK) so that a second process cannot open it, and
 * holding the member's identity (DIR/IDENTITY: the cluster's member set and
 * the cluster id derived from it). The identity is written atomically (temp
 * file, fsync, rename, fsync of the directory) and only once the member has
 * state: a new cluster initialized, or a recovery completed.
 */
#ifndef SEQD_DATADIR_H
#define SEQD_DATADIR_H

#include <stddef.h>
#include <stdint.h>

#define DATADIR_MEMBERS_MAX 1024   /* bytes of the comma-joined member list */

typedef struct datadir_identity {
    uint64_t cluster_id;
    char members[DATADIR_MEMBERS_MAX];   /* sorted, comma-joined HOST:PORT */
} datadir_identity;

/* Creates dir if missing and takes its lock. Returns the lock fd (keep it
 * open for the life of the process), or -1 with a message in err (e.g.
 * "data directory X is in use by another seqd (pid N)"). */
int datadir_lock(const char *dir, char *err, size_t errlen);

/* 1 and fills id if DIR/IDENTITY exists, 0 if not, -1 on error (message). */
int datadir_read_identity(const char *dir, datadir_identity *id, char *err, size_t errlen);

/* Durably writes DIR/IDENTITY. Returns 0 or -1 with a message. */
int datadir_write_identity(const char *dir, const datadir_identity *id, char *err, size_t errlen);

/* The cluster id of a member set: xxh64 of the sorted, comma-joined list.
 * Sorts `members` (n strings) in place and writes the joined list to out. */
uint64_t datadir_cluster_id(char **members, int n, char *out, size_t outlen);

/* fsync of a directory, for renames and unlinks to be durable. */
int datadir_fsync_dir(const char *dir);

#endif
