/* net/sdnotify.c — see sdnotify.h. */
#include "sdnotify.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

bool sdnotify_enabled(void)
{
    const char *path = getenv("NOTIFY_SOCKET");
    return path && *path;
}

/* $NOTIFY_SOCKET as a socket address: "/path" or "@abstract" (the '@'
 * stands for the leading NUL). -1 when it is neither or too long; other
 * transports (systemd 253's vsock:) are not spoken. */
static int sdnotify_addr(const char *path, struct sockaddr_un *sa, socklen_t *len)
{
    size_t n = strlen(path);
    if ((path[0] != '/' && path[0] != '@') || n < 2 || n >= sizeof sa->sun_path)
        return -1;
    memset(sa, 0, sizeof *sa);
    sa->sun_family = AF_UNIX;
    memcpy(sa->sun_path, path, n);
    if (path[0] == '@')
        sa->sun_path[0] = '\0';
    /* An abstract name is exactly its n bytes; a path ends at its NUL. */
    *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + (path[0] == '/'));
    return 0;
}

int sdnotify_send(const char *state, char *err, size_t errlen)
{
    const char *path = getenv("NOTIFY_SOCKET");
    if (!path || !*path)
        return 0;
    struct sockaddr_un sa;
    socklen_t salen;
    if (sdnotify_addr(path, &sa, &salen) < 0) {
        snprintf(err, errlen, "NOTIFY_SOCKET=%s: not a socket path or @name", path);
        return -1;
    }
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "sd_notify: socket: %s", strerror(errno));
        return -1;
    }
    size_t len = strlen(state);
    ssize_t sent;
    do
        sent = sendto(fd, state, len, MSG_NOSIGNAL, (struct sockaddr *)&sa, salen);
    while (sent < 0 && errno == EINTR);
    int saved = errno;
    close(fd);
    if (sent != (ssize_t)len) {
        snprintf(err, errlen, "sd_notify to %s: %s", path, sent < 0 ? strerror(saved) : "short send");
        return -1;
    }
    return 0;
}
