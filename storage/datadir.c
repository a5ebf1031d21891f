/* storage/datadir.c — data directory: creation, exclusive lock, identity
 * (see datadir.h).
 *
 * DIR/LOCK holds the pid of the process that holds the flock on it; the pid
 * is informational only (for the error message), the flock is the lock, so a
 * stale pid left by a crashed process never blocks a restart.
 *
 * DIR/IDENTITY is text:
 *     cluster_id=<16 hex digits>\n
 *     members=<sorted, comma-joined HOST:PORT list>\n
 * and is replaced atomically: written to IDENTITY.tmp, fsync'd, renamed over
 * IDENTITY, then the directory is fsync'd so the rename itself is durable.
 */
#include "datadir.h"

#include <errno.h>
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
#define DATADIR_ID_TMP "IDENTITY.tmp"

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

/* Checks the parsed identity against itself: the id must be the hash of the
 * member list, which catches a hand-edited or damaged file. */
static int datadir_identity_consistent(const datadir_identity *id)
{
    return XXH64(id->members, strlen(id->members), 0) == id->cluster_id;
}

int datadir_read_identity(const char *dir, datadir_identity *id, char *err, size_t errlen)
{
    char path[PATH_MAX];
    if (datadir_path(path, sizeof path, dir, DATADIR_ID_FILE) < 0) {
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
    char line1[64], line2[DATADIR_MEMBERS_MAX + 16];
    int ok = fgets(line1, sizeof line1, f) && fgets(line2, sizeof line2, f);
    int extra = ok && fgetc(f) != EOF;
    fclose(f);
    unsigned long long cid = 0;
    int consumed = 0;
    size_t l2 = ok ? strlen(line2) : 0;
    if (!ok || extra || sscanf(line1, "cluster_id=%16llx\n%n", &cid, &consumed) != 1 ||
        consumed != (int)strlen(line1) || strlen(line1) != 28 ||
        strncmp(line2, "members=", 8) != 0 || l2 < 10 || line2[l2 - 1] != '\n' ||
        l2 - 9 >= DATADIR_MEMBERS_MAX) {
        snprintf(err, errlen, "malformed identity file %s", path);
        return -1;
    }
    memset(id, 0, sizeof *id);
    id->cluster_id = cid;
    memcpy(id->members, line2 + 8, l2 - 9);
    id->members[l2 - 9] = '\0';
    if (!datadir_identity_consistent(id)) {
        snprintf(err, errlen, "identity file %s: cluster_id does not match members", path);
        return -1;
    }
    return 1;
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

int datadir_write_identity(const char *dir, const datadir_identity *id, char *err, size_t errlen)
{
    char tmp[PATH_MAX], path[PATH_MAX];
    if (datadir_path(tmp, sizeof tmp, dir, DATADIR_ID_TMP) < 0 ||
        datadir_path(path, sizeof path, dir, DATADIR_ID_FILE) < 0) {
        snprintf(err, errlen, "data directory path too long: %s", dir);
        return -1;
    }
    size_t mlen = strnlen(id->members, DATADIR_MEMBERS_MAX);
    if (mlen == 0 || mlen >= DATADIR_MEMBERS_MAX || strchr(id->members, '\n')) {
        snprintf(err, errlen, "invalid member list for identity");
        return -1;
    }
    char buf[DATADIR_MEMBERS_MAX + 64];
    int n = snprintf(buf, sizeof buf, "cluster_id=%016llx\nmembers=%s\n",
                     (unsigned long long)id->cluster_id, id->members);
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

/* qsort adapter: members are compared as plain byte strings, the order every
 * member computes identically whatever the order of its flags. */
static int datadir_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

uint64_t datadir_cluster_id(char **members, int n, char *out, size_t outlen)
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
