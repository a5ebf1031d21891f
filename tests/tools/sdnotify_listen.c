/* tests/tools/sdnotify_listen.c — a stand-in for systemd's notify socket:
 *
 *   sdnotify_listen PATH SECONDS
 *
 * binds an AF_UNIX datagram socket at PATH and prints every datagram that
 * arrives as one line on stdout (its '\n' separators shown as ' '), flushed
 * at once, for SECONDS or until SIGTERM/SIGINT; removes PATH on exit.
 * tests/test_install.sh runs `seqd serve` with NOTIFY_SOCKET=PATH and reads
 * the lines to see STATUS=, READY=1 and STOPPING=1 in their order. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

int main(int argc, char **argv)
{
    if (argc != 3 || strlen(argv[1]) >= sizeof ((struct sockaddr_un *)0)->sun_path) {
        fprintf(stderr, "usage: sdnotify_listen PATH SECONDS\n");
        return 2;
    }
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    strcpy(sa.sun_path, argv[1]);
    unlink(argv[1]);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        fprintf(stderr, "sdnotify_listen: %s: %s\n", argv[1], strerror(errno));
        return 1;
    }
    struct sigaction act = {.sa_handler = on_signal};
    sigaction(SIGTERM, &act, NULL);
    sigaction(SIGINT, &act, NULL);
    time_t end = time(NULL) + atoi(argv[2]);
    while (!stop && time(NULL) < end) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 200) <= 0)
            continue;
        char buf[4096];
        ssize_t n = recv(fd, buf, sizeof buf - 1, 0);
        if (n <= 0)
            continue;
        for (ssize_t i = 0; i < n; i++)
            if (buf[i] == '\n')
                buf[i] = ' ';
        buf[n] = '\0';
        printf("%s\n", buf);
        fflush(stdout);
    }
    unlink(argv[1]);
    return 0;
}
