/* storage/datadir.c — data directory: creation, exclusive lock, identity
 * (see datadir.h).
 *
 * DIR/LOCK holds the pid of the process that holds the flock on it; the pid
 * is informational only (for the error message), the flock is the lock, so a
 * stale pid left by a crashed process never blocks a restart.
 *
 * DIR/IDENTITY (initialized) and DIR/PREPARED (prepared by `seqd init`,
 * not yet committed) are text:
 *     cluster=<32 hex digits>\n       (PREPARED: prepared=<32 hex digits>)
 *     set_digest=<16 hex digits>\n    (xxh64 of the member list below)
 *     members=<sorted, comma-joined HOST:PORT list>\n
 * and, in IDENTITY once a member was replaced (DESIGN.md §6, quorum/epoch.h),
 *     epoch=<E>\n
 *     switch=<slot> <OLD's incarnation counter> <OLD> <NEW>\n
 *     prev_switch=<slot> <counter> <OLD> <NEW>\n     (E >= 2, optional: the
 *                                                   one that led to E-1)
 * where members is then in slot order (the set of epoch E, which the
 * switch from E-1 led to) and set_digest is xxh64(members, seed E): the
 * epoch-0 case is the line above. They are replaced atomically: written to NAME.tmp, fsync'd, renamed over
 * NAME, then the directory is fsync'd so the rename itself is durable.
 * Wave 1's IDENTITY ("cluster_id=<16 hex>", the digest) is still read.
 */
#include "datadir.h"

#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#define XXH_STATIC_LINKING_ONLY   /* XXH64_state_t on the stack */
#include <xxhash.h>

#define DATADIR_LOCK_FILE "LOCK"
#define DATADIR_ID_FILE "IDENTITY"
#define DATADIR_PREP_FILE "PREPARED"

/* Builds DIR/NAME, refusing paths that would not fit rather than truncating
 * them into a different file. */
static int datadir_path(char *out, size_t outlen, const char *dir, const char *name)
{
    int n = snprintf(out, outlen, "%s/%s", dir, name);
    return (n < 0 || (size_t)n >= outlen) ? -1 : 0;
}

/* mkdir -p: a fresh deployment names a data directory whose parents may not
 * exist yet either. */
static int datadir_mkdir_p(const char *dir)
{
    char path[PATH_MAX];
    size_t n = strlen(dir);
    if (n == 0 || n >= sizeof path) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(path, dir, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (path[i] != '/' && path[i] != '\0')
            continue;
        char c = path[i];
        path[i] = '\0';
        if (mkdir(path, 0755) < 0 && errno != EEXIST)
            return -1;
        path[i] = c;
    }
    struct stat st;
    if (stat(dir, &st) < 0)
        return -1;
    if (!S_ISDIR(st.st_mode)) {
        errno = ENOTDIR;
        return -1;
    }
    return 0;
}

/* Reads the holder's pid for the refusal message; 0 if unreadable (the
 * holder may not have written it yet). */
static long datadir_read_pid(int fd)
{
    char buf[32];
    ssize_t r = pread(fd, buf, sizeof buf - 1, 0);
    if (r <= 0)
        return 0;
    buf[r] = '\0';
    char *end;
    long pid = strtol(buf, &end, 10);
    return pid > 0 ? pid : 0;
}

int datadir_lock(const char *dir, char *err, size_t errlen)
{
    char path[PATH_MAX];
    if (datadir_mkdir_p(dir) < 0) {
        snprintf(err, errlen, "cannot create data directory %s: %s", dir, strerror(errno));
        return -1;
    }
    if (datadir_path(path, sizeof path, dir, DATADIR_LOCK_FILE) < 0) {
        snprintf(err, errlen, "data directory path too long: %s", dir);
        return -1;
    }
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    /* flock locks belong to the open file description, so even a second
     * datadir_lock from this same process is refused. */
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        int e = errno;
        if (e == EWOULDBLOCK) {
            long pid = datadir_read_pid(fd);
            if (pid)
                snprintf(err, errlen, "data directory %s is in use by another seqd (pid %ld)", dir, pid);
            else
                snprintf(err, errlen, "data directory %s is in use by another seqd", dir);
        } else {
            snprintf(err, errlen, "cannot lock %s: %s", path, strerror(e));
        }
        close(fd);
        return -1;
    }
    char buf[32];
    int n = snprintf(buf, sizeof buf, "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) < 0 || pwrite(fd, buf, (size_t)n, 0) != n) {
        snprintf(err, errlen, "cannot write %s: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

int datadir_fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int r = fsync(fd);
    int e = errno;
    close(fd);
    errno = e;
    return r;
}

/* Checks the parsed record against itself: the digest must be the hash of
 * the member list, which catches a hand-edited or damaged file. */
static int datadir_identity_consistent(const datadir_identity *id)
{
    return XXH64(id->members, strlen(id->members), id->epoch) == id->set_digest &&
           (id->epoch == 0) == !id->has_switch;
}

static int datadir_hex(const char *s, size_t n, uint8_t *out)
{
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        if (sscanf(s + 2 * i, "%2x", &v) != 1 || !strchr("0123456789abcdef", s[2 * i]) ||
            !strchr("0123456789abcdef", s[2 * i + 1]))
            return -1;
        out[i] = (uint8_t)v;
    }
    return 0;
}

/* One "KEY=<slot> <inc> <OLD> <NEW>\n" line. */
static int datadir_parse_switch(const char *l, const char *key, int *slot, uint64_t *inc, char *old,
                                char *new_)
{
    char fmt[80];
    unsigned long long v;
    int used = 0;
    snprintf(fmt, sizeof fmt, "%s=%%d %%llu %%%us %%%us%%n", key, SEQD_ADDR_MAX, SEQD_ADDR_MAX);
    if (sscanf(l, fmt, slot, &v, old, new_, &used) != 4 || l[used] != '\n' || l[used + 1] != '\0' ||
        *slot < 0 || *slot >= SEQD_MAX_MEMBERS)
        return -1;
    *inc = v;
    return 0;
}

/* The optional epoch lines after members= (see the top). */
static int datadir_parse_epoch(FILE *f, datadir_identity *id)
{
    char l[2 * SEQD_ADDR_MAX + 96];
    if (!fgets(l, sizeof l, f))
        return 0;   /* epoch 0 */
    unsigned long long e;
    int used = 0;
    char sw[sizeof l];
    if (sscanf(l, "epoch=%llu\n%n", &e, &used) != 1 || used != (int)strlen(l) || e == 0 ||
        !fgets(sw, sizeof sw, f) ||
        datadir_parse_switch(sw, "switch", &id->sw_slot, &id->sw_old_inc, id->sw_old, id->sw_new) < 0)
        return -1;
    id->epoch = e;
    id->has_switch = true;
    if (fgets(sw, sizeof sw, f)) {
        if (e < 2 || datadir_parse_switch(sw, "prev_switch", &id->prev_slot, &id->prev_old_inc,
                                          id->prev_old, id->prev_new) < 0)
            return -1;
        id->has_prev = true;
    }
    return fgetc(f) == EOF ? 0 : -1;
}

/* Parses "KEY=<32 hex>\nset_digest=<16 hex>\nmembers=LIST\n", or, for the
 * identity only, wave 1's "cluster_id=<16 hex>\nmembers=LIST\n" (its id was
 * the digest of the set; it becomes the cluster id with 8 zero bytes in
 * front, the same on every member, so an upgraded cluster stays one). */
static int datadir_parse(FILE *f, const char *key, bool legacy_ok, datadir_identity *id)
{
    char l1[96], l2[96], l3[DATADIR_MEMBERS_MAX + 16];
    memset(id, 0, sizeof *id);
    if (!fgets(l1, sizeof l1, f) || !fgets(l2, sizeof l2, f))
        return -1;
    size_t klen = strlen(key);
    const char *members = NULL;
    if (legacy_ok && strncmp(l1, "cluster_id=", 11) == 0) {
        if (strlen(l1) != 28 || l1[27] != '\n' || datadir_hex(l1 + 11, 8, id->cid.b + 8) < 0)
            return -1;
        for (int i = 0; i < 8; i++)
            id->set_digest = (id->set_digest << 8) | id->cid.b[8 + i];
        members = l2;
    } else {
        uint8_t d[8];
        if (strncmp(l1, key, klen) != 0 || l1[klen] != '=' || strlen(l1) != klen + 34 ||
            l1[klen + 33] != '\n' || datadir_hex(l1 + klen + 1, SEQD_CID_LEN, id->cid.b) < 0 ||
            strncmp(l2, "set_digest=", 11) != 0 || strlen(l2) != 28 || l2[27] != '\n' ||
            datadir_hex(l2 + 11, 8, d) < 0 || !fgets(l3, sizeof l3, f))
            return -1;
        for (int i = 0; i < 8; i++)
            id->set_digest = (id->set_digest << 8) | d[i];
        members = l3;
    }
    size_t ml = strlen(members);
    if (strncmp(members, "members=", 8) != 0 || ml < 10 || members[ml - 1] != '\n' ||
        ml - 9 >= DATADIR_MEMBERS_MAX || seqd_cid_none(&id->cid))
        return -1;
    memcpy(id->members, members + 8, ml - 9);
    id->members[ml - 9] = '\0';
    return datadir_parse_epoch(f, id);
}

static int datadir_read_file(const char *dir, const char *file, const char *key, bool legacy_ok,
                             datadir_identity *id, char *err, size_t errlen)
{
    char path[PATH_MAX];
    if (datadir_path(path, sizeof path, dir, file) < 0) {
        snprintf(err, errlen, "data directory path too long: %s", dir);
        return -1;
    }
    FILE *f = fopen(path, "re");
    if (!f) {
        if (errno == ENOENT)
            return 0;
        snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    int rc = datadir_parse(f, key, legacy_ok, id);
    fclose(f);
    if (rc < 0) {
        snprintf(err, errlen, "malformed %s file %s", key, path);
        return -1;
    }
    if (!datadir_identity_consistent(id)) {
        snprintf(err, errlen, "%s: set_digest does not match members", path);
        return -1;
    }
    return 1;
}

int datadir_read_identity(const char *dir, datadir_identity *id, char *err, size_t errlen)
{
    return datadir_read_file(dir, DATADIR_ID_FILE, "cluster", true, id, err, errlen);
}

int datadir_read_prepared(const char *dir, datadir_identity *id, char *err, size_t errlen)
{
    return datadir_read_file(dir, DATADIR_PREP_FILE, "prepared", false, id, err, errlen);
}

/* Writes all of buf or fails: a short write must not pass for success. */
static int datadir_write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t w = write(fd, buf, len);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        buf += w;
        len -= (size_t)w;
    }
    return 0;
}

/* Writes DIR/FILE atomically and durably: temp file, fsync, rename, fsync
 * of the directory. */
static int datadir_write_file(const char *dir, const char *file, const char *key,
                              const datadir_identity *id, char *err, size_t errlen)
{
    char tmp[PATH_MAX], path[PATH_MAX], tname[64];
    snprintf(tname, sizeof tname, "%s.tmp", file);
    if (datadir_path(tmp, sizeof tmp, dir, tname) < 0 ||
        datadir_path(path, sizeof path, dir, file) < 0) {
        snprintf(err, errlen, "data directory path too long: %s", dir);
        return -1;
    }
    size_t mlen = strnlen(id->members, DATADIR_MEMBERS_MAX);
    if (mlen == 0 || mlen >= DATADIR_MEMBERS_MAX || strchr(id->members, '\n') ||
        seqd_cid_none(&id->cid)) {
        snprintf(err, errlen, "invalid member list or cluster id for %s", file);
        return -1;
    }
    char hex[SEQD_CID_HEX];
    seqd_cid_hex(&id->cid, hex);
    char buf[DATADIR_MEMBERS_MAX + 4 * SEQD_ADDR_MAX + 256];
    int n = snprintf(buf, sizeof buf, "%s=%s\nset_digest=%016llx\nmembers=%s\n", key, hex,
                     (unsigned long long)id->set_digest, id->members);
    if (id->epoch > 0) {
        if (!id->has_switch || strchr(id->sw_old, ' ') || strchr(id->sw_new, ' ')) {
            snprintf(err, errlen, "invalid switch for %s", file);
            return -1;
        }
        n += snprintf(buf + n, sizeof buf - (size_t)n, "epoch=%llu\nswitch=%d %llu %s %s\n",
                      (unsigned long long)id->epoch, id->sw_slot,
                      (unsigned long long)id->sw_old_inc, id->sw_old, id->sw_new);
        if (id->has_prev && id->epoch >= 2 && !strchr(id->prev_old, ' ') && !strchr(id->prev_new, ' '))
            n += snprintf(buf + n, sizeof buf - (size_t)n, "prev_switch=%d %llu %s %s\n",
                          id->prev_slot, (unsigned long long)id->prev_old_inc, id->prev_old,
                          id->prev_new);
    }
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        snprintf(err, errlen, "cannot create %s: %s", tmp, strerror(errno));
        return -1;
    }
    if (datadir_write_all(fd, buf, (size_t)n) < 0 || fsync(fd) < 0) {
        snprintf(err, errlen, "cannot write %s: %s", tmp, strerror(errno));
        close(fd);
        unlink(tmp);
        return -1;
    }
    close(fd);
    if (rename(tmp, path) < 0) {
        snprintf(err, errlen, "cannot rename %s to %s: %s", tmp, path, strerror(errno));
        unlink(tmp);
        return -1;
    }
    if (datadir_fsync_dir(dir) < 0) {
        snprintf(err, errlen, "cannot fsync directory %s: %s", dir, strerror(errno));
        return -1;
    }
    return 0;
}

int datadir_write_identity(const char *dir, const datadir_identity *id, char *err, size_t errlen)
{
    return datadir_write_file(dir, DATADIR_ID_FILE, "cluster", id, err, errlen);
}

int datadir_write_prepared(const char *dir, const datadir_identity *id, char *err, size_t errlen)
{
    return datadir_write_file(dir, DATADIR_PREP_FILE, "prepared", id, err, errlen);
}

/* qsort adapter: members are compared as plain byte strings, the order every
 * member computes identically whatever the order of its flags. */
static int datadir_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

uint64_t datadir_set_digest(char **members, int n, char *out, size_t outlen)
{
    if (n > 0)
        qsort(members, (size_t)n, sizeof *members, datadir_cmp);
    /* Hash the full join even if out is too small for it, so the id never
     * depends on the caller's buffer size. */
    XXH64_state_t st;
    XXH64_reset(&st, 0);
    for (int i = 0; i < n; i++) {
        if (i > 0)
            XXH64_update(&st, ",", 1);
        XXH64_update(&st, members[i], strlen(members[i]));
    }
    uint64_t h = XXH64_digest(&st);
    if (out && outlen > 0) {
        size_t pos = 0;
        out[0] = '\0';
        for (int i = 0; i < n && pos + 1 < outlen; i++) {
            int w = snprintf(out + pos, outlen - pos, "%s%s", i ? "," : "", members[i]);
            if (w < 0)
                break;
            pos += (size_t)w;
        }
    }
    return h;
}
