/* tests/procs.c — real-process harness (contract: tests/procs.h). */
#include "procs.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PROCS_PORT_LOW 20000
#define PROCS_PORT_SPAN 12000   /* stays below the ephemeral range (32768) */
#define PROCS_SLOT_PORTS 50
#define PROCS_ARGS_MAX 64
#define PROCS_RUNS (PROCS_PORT_SPAN / (PROCS_SLOTS * PROCS_SLOT_PORTS))

extern char **environ;

static int procs_wait_pid(pid_t pid, int64_t wait_ms);

const char *procs_bin(void)
{
    const char *b = getenv("SEQD_BIN");
    return (b != NULL && b[0] != '\0') ? b : "./seqd";
}

int64_t procs_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t procs_now_ms(void)
{
    return procs_now_us() / 1000;
}

void procs_sleep_ms(int64_t ms)
{
    struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000 };
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static void procs_seterr(char *why, size_t len, const char *fmt, ...)
{
    if (why == NULL || len == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, len, fmt, ap);
    va_end(ap);
}

/* A port counts as free if it can be bound with SO_REUSEADDR (the server
 * sets it too, so TIME_WAIT leftovers from an earlier test do not count). */
bool procs_port_free(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return false;
    int one = 1;
    (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    bool ok = bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
    close(fd);
    return ok;
}

/* Tests of one run share the runner's pid as parent, so deriving the base
 * from it keeps two concurrent runs (two developers, two checkouts) apart,
 * while the slot keeps the tests of one run apart. */
static int procs_pick_base(int n, int slot)
{
    int runs = PROCS_RUNS;
    int salt = (int)(getppid() % runs);
    for (int tries = 0; tries < runs; tries++) {
        int base = PROCS_PORT_LOW + ((salt + tries) % runs) * PROCS_SLOTS * PROCS_SLOT_PORTS +
                   slot * PROCS_SLOT_PORTS;
        bool ok = true;
        for (int i = 0; i < n && ok; i++)
            ok = procs_port_free(base + i);
        if (ok)
            return base;
    }
    return -1;
}

procs_cluster *procs_cluster_new(int n, int slot, uint32_t round_ms,
                                 const char *const *extra, char *why, size_t whylen)
{
    if (n < 1 || n > PROCS_MAX || slot < 0 || slot >= PROCS_SLOTS) {
        procs_seterr(why, whylen, "bad cluster size %d or slot %d", n, slot);
        return NULL;
    }
    procs_cluster *pc = calloc(1, sizeof *pc);
    if (pc == NULL) {
        procs_seterr(why, whylen, "out of memory");
        return NULL;
    }
    pc->n = n;
    pc->round_ms = round_ms;
    pc->extra = extra;
    snprintf(pc->root, sizeof pc->root, "/tmp/seqd-test-XXXXXX");
    if (mkdtemp(pc->root) == NULL) {
        procs_seterr(why, whylen, "mkdtemp: %s", strerror(errno));
        free(pc);
        return NULL;
    }
    int base = procs_pick_base(n, slot);
    if (base < 0) {
        procs_seterr(why, whylen, "no free ports for slot %d", slot);
        rmdir(pc->root);
        free(pc);
        return NULL;
    }
    size_t off = 0;
    for (int i = 0; i < n; i++) {
        procs_member *m = &pc->m[i];
        m->port = base + i;
        snprintf(m->addr, sizeof m->addr, "127.0.0.1:%d", m->port);
        snprintf(m->dir, sizeof m->dir, "%s/node%d", pc->root, i + 1);
        snprintf(m->log, sizeof m->log, "%s/node%d.log", pc->root, i + 1);
        off += (size_t)snprintf(pc->servers + off, sizeof pc->servers - off, "%s%s",
                                i ? "," : "", m->addr);
    }
    return pc;
}

/* The child side of a spawn: only async-signal-safe calls until exec,
 * since a test may have client threads running while it restarts a member. */
static void procs_child(int in_fd, int out_fd, int err_fd, pid_t parent, char *const *argv,
                        char *const *envp)
{
    (void)prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        _exit(127);
    dup2(in_fd, 0);
    dup2(out_fd, 1);
    dup2(err_fd, 2);
    execve(argv[0], argv, envp);
    _exit(127);
}

/* The child's environment: ours without SEQD_SERVERS (a developer's shell
 * may set it; tests must say what they mean), plus `env`. Built before the
 * fork because the child may not allocate. */
static char **procs_make_env(const char *const *env)
{
    size_t n = 0, k = 0;
    while (environ[n] != NULL)
        n++;
    for (size_t j = 0; env != NULL && env[j] != NULL; j++)
        n++;
    char **e = calloc(n + 1, sizeof *e);
    if (e == NULL)
        return NULL;
    for (size_t j = 0; environ[j] != NULL; j++) {
        if (strncmp(environ[j], "SEQD_SERVERS=", 13) != 0)
            e[k++] = environ[j];
    }
    for (size_t j = 0; env != NULL && env[j] != NULL; j++)
        e[k++] = (char *)env[j];
    e[k] = NULL;
    return e;
}

/* fork + exec with the given fds; returns the pid or -1. */
static pid_t procs_spawn(char *const *argv, const char *const *env, int out_fd, int err_fd)
{
    char **envp = procs_make_env(env);
    int in_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (in_fd < 0 || envp == NULL) {
        if (in_fd >= 0)
            close(in_fd);
        free(envp);
        return -1;
    }
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0)
        procs_child(in_fd, out_fd, err_fd, parent, argv, envp);
    close(in_fd);
    free(envp);
    return pid;
}

/* Appends a line to the member's log so that a reader can tell restarts
 * apart. */
static void procs_log_mark(int fd, char *const *argv)
{
    char line[1024];
    size_t off = (size_t)snprintf(line, sizeof line, "=== procs: start");
    for (int k = 1; argv[k] != NULL && off < sizeof line; k++)
        off += (size_t)snprintf(line + off, sizeof line - off, " %s", argv[k]);
    if (off >= sizeof line)
        off = sizeof line - 1;
    line[off++] = '\n';
    (void)!write(fd, line, off);
}

/* The one place a member's command line is built, so that procs_start and
 * procs_start_ex (a wrapper such as `ip netns exec NS`, an environment)
 * cannot drift apart. */
static int procs_start_argv(procs_cluster *pc, int i, const char *const *prefix,
                            const char *const *more, const char *const *env)
{
    procs_member *m = &pc->m[i];
    if (m->pid != 0)
        return -1;
    char peers[PROCS_MAX * 32] = "";
    size_t off = 0;
    for (int k = 0; k < pc->n; k++) {
        if (k != i)
            off += (size_t)snprintf(peers + off, sizeof peers - off, "%s%s", off ? "," : "",
                                    pc->m[k].addr);
    }
    char rt[16];
    snprintf(rt, sizeof rt, "%u", pc->round_ms);
    const char *argv[PROCS_ARGS_MAX];
    int a = 0;
    for (int k = 0; prefix != NULL && prefix[k] != NULL && a < PROCS_ARGS_MAX / 2; k++)
        argv[a++] = prefix[k];
    argv[a++] = procs_bin();
    argv[a++] = "serve";
    argv[a++] = "--listen";
    argv[a++] = m->addr;
    argv[a++] = "--data";
    argv[a++] = m->dir;
    if (m->peers[0]) {
        argv[a++] = "--peers";
        argv[a++] = m->peers;
    } else if (pc->n > 1) {
        argv[a++] = "--peers";
        argv[a++] = peers;
    }
    argv[a++] = "--round-timeout";
    argv[a++] = rt;
    for (int k = 0; pc->extra != NULL && pc->extra[k] != NULL && a < PROCS_ARGS_MAX - 8; k++)
        argv[a++] = pc->extra[k];
    for (int k = 0; more != NULL && more[k] != NULL && a < PROCS_ARGS_MAX - 1; k++)
        argv[a++] = more[k];
    argv[a] = NULL;
    int fd = open(m->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0)
        return -1;
    procs_log_mark(fd, (char *const *)argv);
    pid_t pid = procs_spawn((char *const *)argv, env, fd, fd);
    close(fd);
    if (pid < 0)
        return -1;
    m->pid = pid;
    m->paused = false;
    return 0;
}

int procs_start(procs_cluster *pc, int i, const char *const *more)
{
    return procs_start_argv(pc, i, NULL, more, NULL);
}

int procs_start_ex(procs_cluster *pc, int i, const char *const *prefix, const char *const *more,
                   const char *const *env)
{
    return procs_start_argv(pc, i, prefix, more, env);
}

static void procs_join_servers(procs_cluster *pc)
{
    size_t off = 0;
    pc->servers[0] = '\0';
    for (int k = 0; k < pc->n; k++)
        off += (size_t)snprintf(pc->servers + off, sizeof pc->servers - off, "%s%s",
                                k ? "," : "", pc->m[k].addr);
}

void procs_set_n(procs_cluster *pc, int n)
{
    pc->n = n;
    procs_join_servers(pc);
}

int procs_set_host(procs_cluster *pc, int i, const char *host)
{
    if (i < 0 || i >= pc->n || pc->m[i].pid != 0 || host == NULL ||
        strlen(host) + 7 > sizeof pc->m[i].addr)
        return -1;
    snprintf(pc->m[i].addr, sizeof pc->m[i].addr, "%s:%d", host, pc->m[i].port);
    procs_join_servers(pc);
    return 0;
}

int procs_reap(procs_cluster *pc, int i, int64_t wait_ms)
{
    procs_member *m = &pc->m[i];
    if (m->pid == 0)
        return -1;
    int rc = procs_wait_pid(m->pid, wait_ms);
    if (rc != -2) {
        m->pid = 0;
        m->paused = false;
    }
    return rc;
}

int procs_start_all(procs_cluster *pc)
{
    for (int i = 0; i < pc->n; i++) {
        if (pc->m[i].pid == 0 && procs_start(pc, i, NULL) != 0)
            return -1;
    }
    return 0;
}

/* Maps a wait status to the one number the API returns. */
static int procs_exit_code(int st)
{
    if (WIFEXITED(st))
        return WEXITSTATUS(st);
    if (WIFSIGNALED(st))
        return 128 + WTERMSIG(st);
    return -1;
}

/* waitpid with a bound: the harness must never hang on a stuck server.
 * Returns the exit code, or -2 if it is still running at the deadline. */
static int procs_wait_pid(pid_t pid, int64_t wait_ms)
{
    int64_t deadline = procs_now_ms() + wait_ms;
    for (;;) {
        int st = 0;
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid)
            return procs_exit_code(st);
        if (r < 0 && errno != EINTR)
            return -1;
        if (procs_now_ms() >= deadline)
            return -2;
        procs_sleep_ms(5);
    }
}

int procs_stop(procs_cluster *pc, int i, int64_t wait_ms)
{
    procs_member *m = &pc->m[i];
    if (m->pid == 0)
        return -1;
    if (m->paused)
        kill(m->pid, SIGCONT);
    kill(m->pid, SIGTERM);
    int rc = procs_wait_pid(m->pid, wait_ms);
    if (rc == -2) {
        kill(m->pid, SIGKILL);
        (void)procs_wait_pid(m->pid, 5000);
        rc = -1;
    }
    m->pid = 0;
    m->paused = false;
    return rc;
}

void procs_kill(procs_cluster *pc, int i)
{
    procs_member *m = &pc->m[i];
    if (m->pid == 0)
        return;
    kill(m->pid, SIGKILL);
    (void)procs_wait_pid(m->pid, 5000);
    m->pid = 0;
    m->paused = false;
}

void procs_pause(procs_cluster *pc, int i)
{
    if (pc->m[i].pid != 0 && kill(pc->m[i].pid, SIGSTOP) == 0)
        pc->m[i].paused = true;
}

void procs_resume(procs_cluster *pc, int i)
{
    if (pc->m[i].pid != 0 && kill(pc->m[i].pid, SIGCONT) == 0)
        pc->m[i].paused = false;
}

static int procs_rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

/* rm -rf; missing is fine. */
static int procs_rm_rf(const char *path)
{
    if (access(path, F_OK) != 0)
        return 0;
    return nftw(path, procs_rm_one, 16, FTW_DEPTH | FTW_PHYS) == 0 && access(path, F_OK) != 0
               ? 0
               : -1;
}

int procs_wipe(procs_cluster *pc, int i)
{
    if (pc->m[i].pid != 0)
        return -1;
    return procs_rm_rf(pc->m[i].dir);
}

bool procs_pause_wait(procs_cluster *pc, int i, int64_t wait_ms)
{
    procs_pause(pc, i);
    if (!pc->m[i].paused)
        return false;
    char dir[64];
    snprintf(dir, sizeof dir, "/proc/%d/task", (int)pc->m[i].pid);
    int64_t deadline = procs_now_ms() + wait_ms;
    for (;;) {
        bool all = true;
        DIR *d = opendir(dir);
        struct dirent *e;
        while (d != NULL && all && (e = readdir(d)) != NULL) {
            if (e->d_name[0] == '.')
                continue;
            char path[sizeof dir + 300], buf[512];
            snprintf(path, sizeof path, "%s/%s/stat", dir, e->d_name);
            FILE *f = fopen(path, "r");
            size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
            if (f)
                fclose(f);
            buf[n] = '\0';
            /* "pid (comm) S ...": the state follows the last ')' */
            const char *rp = strrchr(buf, ')');
            all = rp != NULL && rp[1] == ' ' && (rp[2] == 'T' || rp[2] == 't');
        }
        if (d != NULL)
            closedir(d);
        if (d != NULL && all)
            return true;
        if (procs_now_ms() >= deadline)
            return false;
        procs_sleep_ms(2);
    }
}

/* Runs argv (a full path first) with its output to /dev/null; its exit
 * code, or -1 (killed after 60 s). */
static int procs_exec_wait(const char *const *argv)
{
    int nul = open("/dev/null", O_WRONLY | O_CLOEXEC);
    if (nul < 0)
        return -1;
    pid_t pid = procs_spawn((char *const *)argv, NULL, nul, nul);
    close(nul);
    if (pid < 0)
        return -1;
    int rc = procs_wait_pid(pid, 60000);
    if (rc == -2) {
        kill(pid, SIGKILL);
        (void)procs_wait_pid(pid, 5000);
        rc = -1;
    }
    return rc;
}

static void procs_backup_path(const procs_cluster *pc, const char *name, char *out, size_t len)
{
    snprintf(out, len, "%s/backup-%s", pc->root, name);
}

int procs_backup(procs_cluster *pc, int i, const char *name)
{
    char to[PROCS_PATH + 80];
    procs_backup_path(pc, name, to, sizeof to);
    if (pc->m[i].pid != 0 && !pc->m[i].paused)
        return -1;
    if (procs_rm_rf(to) != 0)
        return -1;
    const char *argv[] = { "/bin/cp", "-a", pc->m[i].dir, to, NULL };
    return procs_exec_wait(argv) == 0 ? 0 : -1;
}

int procs_restore(procs_cluster *pc, int i, const char *name)
{
    char from[PROCS_PATH + 80];
    procs_backup_path(pc, name, from, sizeof from);
    if (pc->m[i].pid != 0 || access(from, F_OK) != 0 || procs_rm_rf(pc->m[i].dir) != 0)
        return -1;
    const char *argv[] = { "/bin/cp", "-a", from, pc->m[i].dir, NULL };
    return procs_exec_wait(argv) == 0 ? 0 : -1;
}

void procs_cluster_free(procs_cluster *pc)
{
    if (pc == NULL)
        return;
    for (int i = 0; i < pc->n; i++)
        procs_kill(pc, i);
    const char *keep = getenv("SEQD_KEEP_TEST_DIRS");
    if (keep != NULL && keep[0] != '\0')
        fprintf(stderr, "procs: kept %s\n", pc->root);
    else
        procs_rm_rf(pc->root);
    free(pc);
}

/* A fresh client per call: status polling must not depend on a connection
 * a test's own client may have broken on purpose. */
int procs_status(procs_cluster *pc, int i, uint32_t timeout_ms, struct seqd_status *st)
{
    client *c = client_new(pc->m[i].addr, NULL, 0);
    if (c == NULL)
        return CLIENT_EFAIL;
    int rc = client_status(c, 0, timeout_ms, st, NULL, 0);
    client_free(c);
    return rc;
}

static const char *procs_state_str(int state)
{
    switch (state) {
    case STATE_RECOVERING: return "recovering";
    case STATE_READY: return "ready";
    case STATE_STOPPING: return "stopping";
    default: return "?";
    }
}

bool procs_init(procs_cluster *pc, char *why, size_t whylen)
{
    procs_result *r = calloc(1, sizeof *r);
    if (!r)
        return false;
    if (pc->secret_file)
        procs_run(r, 30000, NULL, "init", "--servers", pc->servers, "--timeout", "2000",
                  "--secret-file", pc->secret_file, (char *)NULL);
    else
        procs_run(r, 30000, NULL, "init", "--servers", pc->servers, "--timeout", "2000",
                  (char *)NULL);
    bool ok = r->status == 0;
    if (ok)
        pc->initialized = true;
    else if (why && whylen)
        snprintf(why, whylen, "seqd init exited %d: %s%s", r->status, r->err, r->out);
    free(r);
    return ok;
}

/* A cluster is born only by `seqd init` (DESIGN.md §3): the first wait on a
 * cluster with every member running runs it, as an operator would. */
static void procs_init_if_new(procs_cluster *pc)
{
    if (pc->initialized || pc->no_auto_init)
        return;
    for (int i = 0; i < pc->n; i++)
        if (pc->m[i].pid == 0)
            return;
    procs_init(pc, NULL, 0);
}

bool procs_wait_ready(procs_cluster *pc, int64_t timeout_ms, char *why, size_t whylen)
{
    int64_t deadline = procs_now_ms() + timeout_ms;
    char states[PROCS_MAX][128];
    for (;;) {
        procs_init_if_new(pc);
        bool all = true;
        for (int i = 0; i < pc->n; i++) {
            struct seqd_status st;
            char err[96] = "";
            if (pc->m[i].pid == 0) {
                snprintf(states[i], sizeof states[i], "not running");
                continue;
            }
            client *c = client_new(pc->m[i].addr, NULL, 0);
            int rc = c ? client_status(c, 0, 500, &st, err, sizeof err) : CLIENT_EFAIL;
            client_free(c);
            if (rc == CLIENT_OK && st.state == STATE_READY) {
                snprintf(states[i], sizeof states[i], "ready");
                continue;
            }
            all = false;
            if (rc == CLIENT_OK)
                snprintf(states[i], sizeof states[i], "%s", procs_state_str(st.state));
            else
                snprintf(states[i], sizeof states[i], "down (%s)", err);
        }
        if (all)
            return true;
        if (procs_now_ms() >= deadline)
            break;
        procs_sleep_ms(25);
    }
    if (why != NULL && whylen > 0) {
        size_t off = (size_t)snprintf(why, whylen, "cluster not ready after %lld ms:",
                                      (long long)timeout_ms);
        for (int i = 0; i < pc->n && off < whylen; i++)
            off += (size_t)snprintf(why + off, whylen - off, " %s %s;", pc->m[i].addr, states[i]);
        if (off < whylen) {
            snprintf(why + off, whylen - off, "\n");
            off++;
        }
        if (off < whylen)
            procs_logs(pc, 12, why + off, whylen - off);
    }
    return false;
}

bool procs_wait_state(procs_cluster *pc, int i, int state, int64_t timeout_ms)
{
    int64_t deadline = procs_now_ms() + timeout_ms;
    for (;;) {
        struct seqd_status st;
        if (procs_status(pc, i, 300, &st) == CLIENT_OK && st.state == state)
            return true;
        if (procs_now_ms() >= deadline)
            return false;
        procs_sleep_ms(10);
    }
}

/* Reads a whole (small) log file; NULL if missing. */
static char *procs_slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    while (buf != NULL) {
        if (n + 1 >= cap) {
            char *nb = realloc(buf, cap * 2);
            if (nb == NULL) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
        size_t r = fread(buf + n, 1, cap - n - 1, f);
        if (r == 0)
            break;
        n += r;
    }
    fclose(f);
    if (buf != NULL)
        buf[n] = '\0';
    *len = n;
    return buf;
}

void procs_log_tail(const procs_cluster *pc, int i, int lines, char *buf, size_t len)
{
    if (len == 0)
        return;
    buf[0] = '\0';
    size_t n = 0;
    char *all = procs_slurp(pc->m[i].log, &n);
    if (all == NULL) {
        snprintf(buf, len, "(no log)\n");
        return;
    }
    size_t p = n;
    if (p > 0 && all[p - 1] == '\n')
        p--;
    for (int k = 0; k < lines && p > 0; p--) {
        if (all[p - 1] == '\n')
            k++;
        if (k == lines)
            break;
    }
    snprintf(buf, len, "%s%s", all + p, (n > 0 && all[n - 1] != '\n') ? "\n" : "");
    free(all);
}

void procs_logs(const procs_cluster *pc, int lines, char *buf, size_t len)
{
    size_t off = 0;
    if (len > 0)
        buf[0] = '\0';
    for (int i = 0; i < pc->n && off + 1 < len; i++) {
        off += (size_t)snprintf(buf + off, len - off, "--- %s (%s) last lines:\n", pc->m[i].addr,
                                pc->m[i].log);
        if (off + 1 >= len)
            break;
        procs_log_tail(pc, i, lines, buf + off, len - off);
        off += strlen(buf + off);
    }
}

bool procs_log_has(const procs_cluster *pc, int i, const char *s)
{
    size_t n = 0;
    char *all = procs_slurp(pc->m[i].log, &n);
    if (all == NULL)
        return false;
    bool found = strcasestr(all, s) != NULL;
    free(all);
    return found;
}

/* Appends what fd has to buf (NUL-terminated, truncated to fit). Returns
 * false at EOF. */
static bool procs_drain(int fd, char *buf, size_t cap, size_t *len)
{
    char tmp[4096];
    ssize_t r = read(fd, tmp, sizeof tmp);
    if (r < 0 && (errno == EINTR || errno == EAGAIN))
        return true;
    if (r <= 0)
        return false;
    size_t room = cap - 1 - *len;
    size_t k = (size_t)r < room ? (size_t)r : room;
    memcpy(buf + *len, tmp, k);
    *len += k;
    buf[*len] = '\0';
    return true;
}

int procs_runv(procs_result *r, int64_t timeout_ms, const char *const *env,
               const char *const *args)
{
    memset(r, 0, sizeof *r);
    r->status = -1;
    const char *argv[PROCS_ARGS_MAX];
    int a = 0;
    argv[a++] = procs_bin();
    for (int k = 0; args[k] != NULL && a < PROCS_ARGS_MAX - 1; k++)
        argv[a++] = args[k];
    argv[a] = NULL;
    int po[2], pe[2];
    if (pipe2(po, O_CLOEXEC) != 0)
        return -1;
    if (pipe2(pe, O_CLOEXEC) != 0) {
        close(po[0]);
        close(po[1]);
        return -1;
    }
    int64_t t0 = procs_now_ms();
    pid_t pid = procs_spawn((char *const *)argv, env, po[1], pe[1]);
    close(po[1]);
    close(pe[1]);
    if (pid < 0) {
        close(po[0]);
        close(pe[0]);
        return -1;
    }
    int64_t deadline = t0 + timeout_ms;
    size_t ol = 0, el = 0;
    bool oo = true, eo = true;
    bool killed = false;
    while (oo || eo) {
        int64_t left = deadline - procs_now_ms();
        if (left <= 0) {
            kill(pid, SIGKILL);
            killed = true;
            break;
        }
        struct pollfd p[2] = { { .fd = oo ? po[0] : -1, .events = POLLIN },
                               { .fd = eo ? pe[0] : -1, .events = POLLIN } };
        int n = poll(p, 2, (int)left);
        if (n < 0 && errno != EINTR)
            break;
        if (n <= 0)
            continue;
        if (oo && (p[0].revents & (POLLIN | POLLHUP | POLLERR)))
            oo = procs_drain(po[0], r->out, sizeof r->out, &ol);
        if (eo && (p[1].revents & (POLLIN | POLLHUP | POLLERR)))
            eo = procs_drain(pe[0], r->err, sizeof r->err, &el);
    }
    close(po[0]);
    close(pe[0]);
    int rc = procs_wait_pid(pid, killed ? 5000 : (deadline - procs_now_ms() > 0
                                                      ? deadline - procs_now_ms()
                                                      : 0));
    if (rc == -2) {
        kill(pid, SIGKILL);
        (void)procs_wait_pid(pid, 5000);
        killed = true;
    }
    r->ms = procs_now_ms() - t0;
    r->status = killed ? -1 : rc;
    return r->status;
}

int procs_run(procs_result *r, int64_t timeout_ms, const char *const *env, ...)
{
    const char *args[PROCS_ARGS_MAX];
    int a = 0;
    va_list ap;
    va_start(ap, env);
    const char *s;
    while ((s = va_arg(ap, const char *)) != NULL && a < PROCS_ARGS_MAX - 1)
        args[a++] = s;
    va_end(ap);
    args[a] = NULL;
    return procs_runv(r, timeout_ms, env, args);
}

int procs_fetch(history *h, client *c, uint32_t client_id, const char *name, uint32_t count,
                uint32_t timeout_ms, uint64_t *first, char *err, size_t errlen)
{
    uint64_t f = 0;
    int64_t t0 = procs_now_us();
    int rc = client_fetch(c, name, count, timeout_ms, &f, err, errlen);
    int64_t t1 = procs_now_us();
    history_outcome out = rc == CLIENT_OK      ? HISTORY_OK
                          : rc == CLIENT_EUSAGE ? HISTORY_FAIL
                                                : HISTORY_UNKNOWN;
    uint64_t last = rc == CLIENT_OK ? f + count - 1 : 0;
    if (history_add_op(h, client_id, name, count, t0, t1, out, f, last) != 0)
        abort();   /* only ENOMEM or a bad name: the test cannot go on */
    if (first != NULL)
        *first = rc == CLIENT_OK ? f : 0;
    return rc;
}

void procs_crash(history *h, const char *what)
{
    if (history_add_crash(h, procs_now_us(), what) != 0)
        abort();
}

bool procs_history_check(const history *h, history_report *r, char *why, size_t whylen)
{
    history_report local;
    if (r == NULL)
        r = &local;
    int64_t v = history_check(h, r);
    if (v == 0)
        return true;
    if (why != NULL && whylen > 0) {
        if (v < 0) {
            snprintf(why, whylen, "history_check: out of memory");
            return false;
        }
        size_t off = (size_t)history_summary(why, whylen, "test", r);
        for (int k = 0; k < r->shown && off < whylen; k++)
            off += (size_t)snprintf(why + off, whylen - off, "\n  %s", r->msg[k]);
    }
    return false;
}

uint64_t procs_history_max(const history *h, const char *name)
{
    uint64_t hi = 0;
    for (size_t k = 0; k < history_nops(h); k++) {
        const history_op *o = history_op_at(h, k);
        if (o->outcome == HISTORY_OK && o->last > hi &&
            strcmp(history_seq_name(h, o->seq), name) == 0)
            hi = o->last;
    }
    return hi;
}

int procs_shared_slot(int64_t wait_ms)
{
    int64_t end = procs_now_ms() + (wait_ms < 0 ? 0 : wait_ms);
    for (;;) {
        for (int k = 0; k < PROCS_SHARED_COUNT; k++) {
            char path[96];
            snprintf(path, sizeof path, "/tmp/seqd-faults-slot-%d.lock", PROCS_SHARED_FIRST + k);
            int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
            if (fd < 0)
                continue;
            if (flock(fd, LOCK_EX | LOCK_NB) == 0)
                return PROCS_SHARED_FIRST + k;   /* fd stays open: the lock lives with the process */
            close(fd);
        }
        if (wait_ms >= 0 && procs_now_ms() >= end)
            return -1;
        procs_sleep_ms(100);
    }
}
