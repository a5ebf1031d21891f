/* tests/test_sdnotify.c — net/sdnotify.c against a datagram socket of our
 * own, as systemd's would be: a path and an abstract name, the datagram
 * exactly as given, no socket = nothing to do, a bad $NOTIFY_SOCKET = an
 * error that names it. (The whole member under a notify socket, READY=1
 * only after init, is tests/test_install.sh's.) */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "../net/sdnotify.h"

/* A bound datagram socket at `name` ("/path" or "@abstract"). */
static int tn_listen(const char *name)
{
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    cr_assert(fd >= 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    size_t n = strlen(name);
    memcpy(sa.sun_path, name, n);
    socklen_t len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
    if (name[0] == '@')
        sa.sun_path[0] = '\0';
    cr_assert(bind(fd, (struct sockaddr *)&sa, len) == 0, "bind %s: %m", name);
    return fd;
}

static void tn_expect(int fd, const char *want)
{
    char buf[512];
    ssize_t got = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    cr_assert_eq(got, (ssize_t)strlen(want), "datagram of %zd bytes, want %zu", got, strlen(want));
    cr_assert(memcmp(buf, want, strlen(want)) == 0);
}

Test(sdnotify, path_socket)
{
    char dir[] = "/tmp/seqd-notify-XXXXXX", path[64], err[256];
    cr_assert(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/notify", dir);
    int fd = tn_listen(path);
    setenv("NOTIFY_SOCKET", path, 1);
    cr_assert(sdnotify_enabled());
    cr_assert_eq(sdnotify_send("READY=1\nSTATUS=serving", err, sizeof err), 0, "%s", err);
    tn_expect(fd, "READY=1\nSTATUS=serving");
    close(fd);
    unlink(path);
    rmdir(dir);
}

Test(sdnotify, abstract_socket)
{
    char name[64], err[256];
    snprintf(name, sizeof name, "@seqd-test-notify-%d", (int)getpid());
    int fd = tn_listen(name);
    setenv("NOTIFY_SOCKET", name, 1);
    cr_assert_eq(sdnotify_send("STOPPING=1", err, sizeof err), 0, "%s", err);
    tn_expect(fd, "STOPPING=1");
    close(fd);
}

Test(sdnotify, unsupervised_is_a_no_op)
{
    char err[256] = "";
    unsetenv("NOTIFY_SOCKET");
    cr_assert(!sdnotify_enabled());
    cr_assert_eq(sdnotify_send("READY=1", err, sizeof err), 0);
    setenv("NOTIFY_SOCKET", "", 1);
    cr_assert_eq(sdnotify_send("READY=1", err, sizeof err), 0);
    cr_assert_str_empty(err);
}

Test(sdnotify, bad_socket_is_an_error)
{
    char err[256];
    setenv("NOTIFY_SOCKET", "vsock:2:1234", 1);
    cr_assert_eq(sdnotify_send("READY=1", err, sizeof err), -1);
    cr_assert(strstr(err, "vsock:2:1234"), "%s", err);
    setenv("NOTIFY_SOCKET", "/nonexistent/seqd-notify", 1);
    cr_assert_eq(sdnotify_send("READY=1", err, sizeof err), -1);
    cr_assert(strstr(err, "/nonexistent/seqd-notify"), "%s", err);
}
