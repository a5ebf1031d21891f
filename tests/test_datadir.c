/* tests/test_datadir.c — data directory lock and identity. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../storage/datadir.h"

/* Removes a test directory tree (at most two levels, which is all these
 * tests create). */
static void td_rm(const char *dir)
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
        if (unlink(p) < 0)
            td_rm(p);
    }
    closedir(d);
    rmdir(dir);
}

static char *td_mkdtemp(void)
{
    char *d = strdup("/tmp/seqd_datadir_XXXXXX");
    cr_assert_not_null(mkdtemp(d));
    return d;
}

Test(datadir, identity_round_trip, .timeout = 10)
{
    char *dir = td_mkdtemp();
    char err[256] = "";
    datadir_identity id, back;
    cr_assert_eq(datadir_read_identity(dir, &back, err, sizeof err), 0, "absent identity: %s", err);
    char *m[] = { "10.0.0.2:7000", "10.0.0.1:7000", "10.0.0.3:7000" };
    memset(&id, 0, sizeof id);
    id.set_digest = datadir_set_digest(m, 3, id.members, sizeof id.members);
    id.cid.b[0] = 0xab;
    id.cid.b[15] = 0x01;
    cr_assert_str_eq(id.members, "10.0.0.1:7000,10.0.0.2:7000,10.0.0.3:7000");
    cr_assert_eq(datadir_write_identity(dir, &id, err, sizeof err), 0, "%s", err);
    cr_assert_eq(datadir_read_identity(dir, &back, err, sizeof err), 1, "%s", err);
    cr_assert_eq(back.set_digest, id.set_digest);
    cr_assert(seqd_cid_eq(&back.cid, &id.cid));
    cr_assert_str_eq(back.members, id.members);
    /* overwriting is atomic and leaves no temp file */
    char *m2[] = { "h:1" };
    id.set_digest = datadir_set_digest(m2, 1, id.members, sizeof id.members);
    cr_assert_eq(datadir_write_identity(dir, &id, err, sizeof err), 0, "%s", err);
    cr_assert_eq(datadir_read_identity(dir, &back, err, sizeof err), 1, "%s", err);
    cr_assert_str_eq(back.members, "h:1");
    char p[512];
    snprintf(p, sizeof p, "%s/IDENTITY.tmp", dir);
    cr_assert_neq(access(p, F_OK), 0);
    td_rm(dir);
    free(dir);
}

Test(datadir, malformed_identity_is_error, .timeout = 10)
{
    char *dir = td_mkdtemp();
    char err[256] = "", p[512];
    snprintf(p, sizeof p, "%s/IDENTITY", dir);
    FILE *f = fopen(p, "w");
    cr_assert_not_null(f);
    /* well-formed but the digest does not match the members */
    fprintf(f, "cluster=000000000000000000000000000000ab\nset_digest=0000000000000001\n"
               "members=a:1,b:2\n");
    fclose(f);
    datadir_identity id;
    cr_assert_eq(datadir_read_identity(dir, &id, err, sizeof err), -1);
    cr_assert(strstr(err, "IDENTITY") != NULL, "message names the file: %s", err);
    f = fopen(p, "w");
    fprintf(f, "garbage\n");
    fclose(f);
    cr_assert_eq(datadir_read_identity(dir, &id, err, sizeof err), -1);
    td_rm(dir);
    free(dir);
}

/* Wave 1 wrote "cluster_id=<digest>"; such a directory still opens, as a
 * cluster whose id is that digest behind 8 zero bytes. */
Test(datadir, wave1_identity_still_read, .timeout = 10)
{
    char *dir = td_mkdtemp();
    char err[256] = "", p[512];
    char *m[] = { "a:1", "b:2" };
    char joined[64];
    uint64_t d = datadir_set_digest(m, 2, joined, sizeof joined);
    snprintf(p, sizeof p, "%s/IDENTITY", dir);
    FILE *f = fopen(p, "w");
    cr_assert_not_null(f);
    fprintf(f, "cluster_id=%016llx\nmembers=%s\n", (unsigned long long)d, joined);
    fclose(f);
    datadir_identity id;
    cr_assert_eq(datadir_read_identity(dir, &id, err, sizeof err), 1, "%s", err);
    cr_assert_eq(id.set_digest, d);
    cr_assert_eq(id.cid.b[0], 0);
    cr_assert_eq(id.cid.b[15], (uint8_t)d);
    cr_assert_str_eq(id.members, joined);
    td_rm(dir);
    free(dir);
}

/* PREPARED is a file of its own, read only as such. */
Test(datadir, prepared_round_trip, .timeout = 10)
{
    char *dir = td_mkdtemp();
    char err[256] = "";
    char *m[] = { "a:1", "b:2", "c:3" };
    datadir_identity id = {0}, back;
    id.set_digest = datadir_set_digest(m, 3, id.members, sizeof id.members);
    id.cid.b[3] = 7;
    cr_assert_eq(datadir_read_prepared(dir, &back, err, sizeof err), 0);
    cr_assert_eq(datadir_write_prepared(dir, &id, err, sizeof err), 0, "%s", err);
    cr_assert_eq(datadir_read_prepared(dir, &back, err, sizeof err), 1, "%s", err);
    cr_assert(seqd_cid_eq(&back.cid, &id.cid));
    cr_assert_eq(datadir_read_identity(dir, &back, err, sizeof err), 0, "PREPARED is not IDENTITY");
    id.cid.b[3] = 0;   /* the all-zero id means "none" and is never written */
    cr_assert_eq(datadir_write_prepared(dir, &id, err, sizeof err), -1);
    td_rm(dir);
    free(dir);
}

Test(datadir, cluster_id_independent_of_order, .timeout = 10)
{
    char *a[] = { "b:2", "a:1", "c:3" };
    char *b[] = { "c:3", "b:2", "a:1" };
    char *c[] = { "a:1", "b:2", "c:4" };
    char ja[128], jb[128], jc[128];
    uint64_t ia = datadir_set_digest(a, 3, ja, sizeof ja);
    uint64_t ib = datadir_set_digest(b, 3, jb, sizeof jb);
    uint64_t ic = datadir_set_digest(c, 3, jc, sizeof jc);
    cr_assert_eq(ia, ib);
    cr_assert_str_eq(ja, jb);
    cr_assert_str_eq(ja, "a:1,b:2,c:3");
    cr_assert_neq(ia, ic);
    /* a small output buffer truncates the text, never the id */
    char small[4];
    cr_assert_eq(datadir_set_digest(b, 3, small, sizeof small), ia);
    cr_assert_eq(strlen(small), 3);
}

Test(datadir, second_lock_refused, .timeout = 10)
{
    char *base = td_mkdtemp();
    char dir[512], err[256] = "";
    snprintf(dir, sizeof dir, "%s/nested/data", base); /* mkdir -p */
    int fd = datadir_lock(dir, err, sizeof err);
    cr_assert_geq(fd, 0, "%s", err);
    int fd2 = datadir_lock(dir, err, sizeof err);
    cr_assert_eq(fd2, -1, "a second lock on the same directory must fail");
    char want[64];
    snprintf(want, sizeof want, "pid %ld", (long)getpid());
    cr_assert(strstr(err, "in use") && strstr(err, want), "message: %s", err);
    /* from another process too */
    pid_t pid = fork();
    if (pid == 0) {
        char e2[256];
        _exit(datadir_lock(dir, e2, sizeof e2) == -1 ? 0 : 1);
    }
    int st;
    waitpid(pid, &st, 0);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child could take the lock");
    close(fd);
    fd = datadir_lock(dir, err, sizeof err);
    cr_assert_geq(fd, 0, "lock is free again after close: %s", err);
    close(fd);
    cr_assert_eq(datadir_fsync_dir(dir), 0);
    td_rm(base);
    free(base);
}
