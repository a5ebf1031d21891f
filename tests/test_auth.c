/* tests/test_auth.c — members prove who they are (DESIGN.md §3,
 * "Authentication"), with real seqd processes.
 *
 * The regression test of issue 10's third attack: on wave 1, a HELLO
 * claiming to be a member was accepted from any socket, and from there
 * SNAP_REQ dumped every sequence and ACCEPT(2^64-2, 2^64-1) exhausted a
 * sequence for good. Now, with a secret, such a connection is told only
 * "not authenticated" and closed, its READ / ACCEPT / SNAP_REQ are refused,
 * and the sequence it aimed at keeps handing out ordinary IDs. Without a
 * secret a member runs in protected mode. Slots 28..30 of tests/procs.h.
 */
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "../client/client_admin.h"
#include "procs.h"

#define TA_R 200u

static procs_cluster *ta_pc;
static char ta_secret[PROCS_PATH], ta_other[PROCS_PATH];

static void ta_fini(void)
{
    procs_cluster_free(ta_pc);
    ta_pc = NULL;
    unlink(ta_secret);
    unlink(ta_other);
}

static void ta_write_secret(char *path, const char *tag, const char *content, mode_t mode)
{
    snprintf(path, PROCS_PATH, "/tmp/seqd-test-secret-%s-%d", tag, (int)getpid());
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(content, f);
    fclose(f);
    chmod(path, mode);
}

static procs_cluster *ta_up(int slot, const char *const *extra)
{
    char why[24576] = "";
    ta_pc = procs_cluster_new(3, slot, TA_R, extra, why, sizeof why);
    cr_assert_not_null(ta_pc, "%s", why);
    ta_pc->secret_file = ta_secret;
    cr_assert(procs_start_all(ta_pc) == 0);
    cr_assert(procs_wait_ready(ta_pc, 20000, why, sizeof why), "%s", why);
    return ta_pc;
}

static const char *const ta_with_secret[] = { "--secret-file", ta_secret, NULL };

Test(auth, unauthenticated_peer_cannot_vote_or_read, .timeout = 60, .fini = ta_fini)
{
    ta_write_secret(ta_secret, "a", "0123456789abcdef0123456789abcdef-a-real-secret\n", 0600);
    procs_cluster *pc = ta_up(28, ta_with_secret);
    char err[512];
    client *c = client_new(pc->m[0].addr, err, sizeof err);
    cr_assert_not_null(c, "%s", err);
    uint64_t before;
    cr_assert_eq(client_fetch(c, "victim", 10, 5000, &before, err, sizeof err), CLIENT_OK, "%s", err);

    static uint8_t scratch[SEQD_MAX_FRAME];
    seqd_msg rep;
    /* a hello that claims to be member 1 */
    seqd_msg hello = { .type = MSG_HELLO, .reqid = 5 };
    hello.u.hello.round_ms = TA_R;
    hello.u.hello.addr = pc->m[1].addr;
    hello.u.hello.addr_len = (uint8_t)strlen(pc->m[1].addr);
    int rc = client_raw(c, 0, &hello, &rep, scratch, 2000, err, sizeof err);
    cr_assert(rc == CLIENT_OK && rep.type == MSG_ERROR, "hello answered %d (rc %d: %s)", rep.type, rc, err);
    char text[SEQD_TEXT_MAX + 1];
    snprintf(text, sizeof text, "%.*s", (int)rep.u.err.len, rep.u.err.text);
    cr_assert_str_eq(text, "not authenticated");
    cr_assert(strstr(text, pc->m[1].addr) == NULL && strstr(text, "200") == NULL);

    /* the same socket or a new one: peer requests are refused */
    seqd_msg acc = { .type = MSG_ACCEPT, .reqid = 6 };
    acc.u.accept.expect = UINT64_MAX - 1;
    acc.u.accept.new_ = UINT64_MAX;
    seqd_name_set(&acc.u.accept.name, "victim", 6);
    rc = client_raw(c, 0, &acc, &rep, scratch, 2000, err, sizeof err);
    cr_assert(rc == CLIENT_OK && rep.type == MSG_REPLY_ERR && rep.u.err.code == ERR_NOT_PEER,
              "ACCEPT answered %d code %d (rc %d: %s)", rep.type, rep.type == MSG_REPLY_ERR ? rep.u.err.code : 0, rc, err);
    seqd_msg snap = { .type = MSG_SNAP_REQ, .reqid = 7 };
    rc = client_raw(c, 0, &snap, &rep, scratch, 2000, err, sizeof err);
    cr_assert(rc == CLIENT_OK && rep.type == MSG_REPLY_ERR && rep.u.err.code == ERR_NOT_PEER,
              "SNAP_REQ answered %d", rep.type);
    /* a forged proof without a challenge */
    seqd_msg proof = { .type = MSG_AUTH, .reqid = 8 };
    proof.u.auth.step = AUTH_PROOF;
    rc = client_raw(c, 0, &proof, &rep, scratch, 2000, err, sizeof err);
    cr_assert(rc == CLIENT_OK && rep.type == MSG_ERROR, "forged proof answered %d", rep.type);
    /* init without the secret */
    procs_result r;
    procs_run(&r, 20000, NULL, "init", "--servers", pc->servers, (char *)NULL);
    cr_assert(r.status == 1 && strstr(r.err, "not authenticated"), "init without secret: %d %s",
              r.status, r.err);

    uint64_t after;
    cr_assert_eq(client_fetch(c, "victim", 10, 5000, &after, err, sizeof err), CLIENT_OK, "%s", err);
    cr_assert(after >= before + 10 && after < 1000, "victim jumped to %llu",
              (unsigned long long)after);
    client_free(c);
}

/* A member with another secret is never counted: its links fail, the two
 * members that share the secret go on serving. */
Test(auth, member_with_another_secret_is_shut_out, .timeout = 60, .fini = ta_fini)
{
    ta_write_secret(ta_secret, "b", "0123456789abcdef0123456789abcdef-b-real-secret\n", 0600);
    ta_write_secret(ta_other, "b2", "ffffffffffffffff0123456789abcdef-b-other-secret\n", 0600);
    char why[24576] = "";
    ta_pc = procs_cluster_new(3, 29, TA_R, ta_with_secret, why, sizeof why);
    cr_assert_not_null(ta_pc, "%s", why);
    ta_pc->secret_file = ta_secret;
    static const char *const other[] = { "--secret-file", ta_other, NULL };
    cr_assert(procs_start_all(ta_pc) == 0);
    cr_assert(procs_wait_ready(ta_pc, 20000, why, sizeof why), "%s", why);   /* runs init */
    /* member 2 comes back empty and with another secret: it must learn
     * nothing from the others and count for nobody */
    procs_stop(ta_pc, 2, 5000);
    cr_assert(procs_wipe(ta_pc, 2) == 0);
    cr_assert(procs_start_ex(ta_pc, 2, NULL, other, NULL) == 0);
    procs_sleep_ms(10 * TA_R);
    struct seqd_status st;
    cr_assert(procs_status(ta_pc, 2, 1000, &st) == CLIENT_OK && st.state != STATE_READY,
              "the member with another secret became ready");
    cr_assert(procs_log_has(ta_pc, 0, "failed authentication"), "member 0 did not say why");
    char err[512];
    client *c = client_new(ta_pc->servers, err, sizeof err);
    uint64_t first;
    cr_assert_eq(client_fetch(c, "x", 5, 5000, &first, err, sizeof err), CLIENT_OK, "%s", err);
    client_free(c);
}

/* Protected mode: without a secret a member refuses an address beyond
 * loopback unless --insecure; a bad secret file is refused at start. */
Test(auth, protected_mode_and_secret_file_checks, .timeout = 30, .fini = ta_fini)
{
    procs_result r;
    char dir[] = "/tmp/seqd-test-auth-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    procs_run(&r, 5000, NULL, "serve", "--listen", "0.0.0.0:29999", "--data", dir, (char *)NULL);
    cr_assert(r.status == 2 && strstr(r.err, "protected mode"), "0.0.0.0 without secret: %d %s",
              r.status, r.err);
    procs_run(&r, 5000, NULL, "serve", "--listen", "127.0.0.1:29998", "--data", dir, "--peers",
              "192.0.2.1:29998", (char *)NULL);
    cr_assert(r.status == 2 && strstr(r.err, "192.0.2.1"), "peer beyond loopback: %d %s",
              r.status, r.err);
    ta_write_secret(ta_secret, "short", "too short\n", 0600);
    procs_run(&r, 5000, NULL, "serve", "--listen", "127.0.0.1:29997", "--data", dir,
              "--secret-file", ta_secret, (char *)NULL);
    cr_assert(r.status == 1 && strstr(r.err, "at least 32"), "short secret: %d %s", r.status, r.err);
    ta_write_secret(ta_secret, "open", "0123456789abcdef0123456789abcdef-world-readable\n", 0644);
    procs_run(&r, 5000, NULL, "serve", "--listen", "127.0.0.1:29997", "--data", dir,
              "--secret-file", ta_secret, (char *)NULL);
    cr_assert(r.status == 1 && strstr(r.err, "readable by others"), "mode 644: %d %s", r.status, r.err);
    procs_run(&r, 5000, NULL, "serve", "--listen", "127.0.0.1:29997", "--data", dir,
              "--secret-file", ta_secret, "--insecure", (char *)NULL);
    cr_assert(r.status == 2, "--secret-file with --insecure: %d %s", r.status, r.err);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_assert(system(cmd) == 0);
}

/* A connection that sends no whole frame is closed after a few seconds
 * (slowloris); one that sent a frame stays. */
Test(auth, silent_connections_are_closed, .timeout = 60, .fini = ta_fini)
{
    ta_write_secret(ta_secret, "s", "0123456789abcdef0123456789abcdef-s-real-secret\n", 0600);
    procs_cluster *pc = ta_up(30, ta_with_secret);
    int fds[2];
    for (int k = 0; k < 2; k++) {
        fds[k] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)pc->m[0].port),
                                  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        cr_assert(connect(fds[k], (struct sockaddr *)&sa, sizeof sa) == 0);
    }
    cr_assert(write(fds[1], "\0\0\0", 3) == 3);   /* a frame that never completes */
    /* a client that spoke keeps its connection */
    char err[512];
    client *c = client_new(pc->m[0].addr, err, sizeof err);
    uint64_t first;
    cr_assert_eq(client_fetch(c, "s", 1, 5000, &first, err, sizeof err), CLIENT_OK, "%s", err);
    int64_t t0 = procs_now_ms();
    for (int k = 0; k < 2; k++) {
        struct timeval tv = { 12, 0 };
        setsockopt(fds[k], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        char b[64];
        ssize_t n = read(fds[k], b, sizeof b);
        cr_assert(n <= 0 || (size_t)n < sizeof b, "connection %d not closed", k);
        while (n > 0)
            n = read(fds[k], b, sizeof b);
        cr_assert_eq(n, 0, "connection %d: read %zd (errno %d): not closed by the member", k, n, errno);
        close(fds[k]);
    }
    int64_t waited = procs_now_ms() - t0;
    cr_assert(waited >= 2000 && waited < 11000, "closed after %lld ms", (long long)waited);
    cr_assert_eq(client_fetch(c, "s", 1, 5000, &first, err, sizeof err), CLIENT_OK,
                 "the connection that spoke was closed too: %s", err);
    client_free(c);
}
