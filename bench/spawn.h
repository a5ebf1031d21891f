/* bench/spawn.h — how the benchmarks start a seqd member: a child with
 * stdin from /dev/null and stdout/stderr appended to its log, killed when
 * the benchmark dies (PR_SET_PDEATHSIG; fork from the main thread, which
 * lives to the end). Header-only: each bench program is one file. */
#ifndef SEQD_BENCH_SPAWN_H
#define SEQD_BENCH_SPAWN_H

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

/* The child's pid, or -1 if fork failed (errno says why). */
static inline pid_t bench_fork_logged(const char *logf, char *const argv[])
{
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid != 0)
        return pid;
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        _exit(1);
    int fd = open(logf, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    int nul = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (fd < 0 || nul < 0)
        _exit(1);
    dup2(nul, 0);
    dup2(fd, 1);
    dup2(fd, 2);
    execv(argv[0], argv);
    _exit(127);
}

#endif
