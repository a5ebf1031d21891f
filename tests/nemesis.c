/* tests/nemesis.c — load, network faults and reports for the fault
 * campaign (contract: tests/nemesis.h). */
#include "nemesis.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <dirent.h>
#include <unistd.h>

#include "../client/client.h"

#define NEM_SEQS_MAX 16
#define NEM_CMD_MAX 32768
#define NEM_ENV_MAX (PROCS_MAX * 64 + 64)

static void nem_seterr(char *why, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void nem_seterr(char *why, size_t len, const char *fmt, ...)
{
    if (why == NULL || len == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, len, fmt, ap);
    va_end(ap);
}

uint64_t nem_rand(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

bool nem_full(void)
{
    const char *f = getenv("SEQD_FAULTS_FULL");
    return f != NULL && f[0] != '\0' && strcmp(f, "0") != 0;
}

uint64_t nem_seed(uint64_t fixed)
{
    const char *s = getenv("SEQD_FAULTS_SEED");
    if (s == NULL || s[0] == '\0')
        return fixed;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    return *end == '\0' ? (uint64_t)v : fixed;
}

/* ------------------------------------------------------------------ load */

typedef struct nem_worker {
    pthread_t th;
    struct nem_load *l;
    uint32_t id;
    client *c;
    uint64_t rng;
    bool running;
} nem_worker;

struct nem_load {
    history *h;
    nem_load_opts o;
    char names[NEM_SEQS_MAX][HISTORY_NAME_MAX + 1];
    atomic_bool stop;
    pthread_mutex_t mu;         /* guards st */
    nem_load_stats st;
    int n;
    nem_worker *w;
};

static const uint32_t nem_counts[] = { 1, 7, 100, 1000 };

/* Sleeps in short steps so that a stop is seen quickly even with a long
 * think time. */
static void nem_nap(nem_load *l, uint32_t ms)
{
    while (ms > 0 && !atomic_load(&l->stop)) {
        uint32_t step = ms > 20 ? 20 : ms;
        procs_sleep_ms(step);
        ms -= step;
    }
}

static void *nem_worker_main(void *arg)
{
    nem_worker *w = arg;
    nem_load *l = w->l;
    while (!atomic_load(&l->stop)) {
        int s = (int)(nem_rand(&w->rng) % (uint64_t)l->o.nseqs);
        uint32_t count = nem_counts[nem_rand(&w->rng) % (sizeof nem_counts / sizeof nem_counts[0])];
        char err[512] = "";
        uint64_t first = 0;
        int rc = procs_fetch(l->h, w->c, w->id, l->names[s], count, l->o.call_ms, &first, err,
                             sizeof err);
        pthread_mutex_lock(&l->mu);
        l->st.calls++;
        if (rc == CLIENT_OK) {
            l->st.ok++;
        } else {
            l->st.failed++;
            l->st.last_fail_us = procs_now_us();
            snprintf(l->st.last_err, sizeof l->st.last_err, "%s", err);
            if (l->o.watch != NULL && strcasestr(err, l->o.watch) != NULL) {
                l->st.watch_hits++;
                snprintf(l->st.watch_err, sizeof l->st.watch_err, "%s", err);
            }
        }
        pthread_mutex_unlock(&l->mu);
        nem_nap(l, l->o.think_ms);
    }
    return NULL;
}

/* Client k's list starts at member k mod n: each member coordinates for
 * some clients, and every client can fail over to every member. */
static client *nem_client_for(const procs_cluster *pc, int k, char *why, size_t whylen)
{
    char list[PROCS_MAX * 32] = "";
    size_t off = 0;
    for (int j = 0; j < pc->n; j++)
        off += (size_t)snprintf(list + off, sizeof list - off, "%s%s", j ? "," : "",
                                pc->m[(k + j) % pc->n].addr);
    return client_new(list, why, whylen);
}

nem_load *nem_load_start(const procs_cluster *pc, history *h, const nem_load_opts *o, char *why,
                         size_t whylen)
{
    if (o->clients < 1 || o->nseqs < 1 || o->nseqs > NEM_SEQS_MAX) {
        nem_seterr(why, whylen, "bad load options: %d clients, %d sequences", o->clients, o->nseqs);
        return NULL;
    }
    nem_load *l = calloc(1, sizeof *l);
    if (l == NULL || (l->w = calloc((size_t)o->clients, sizeof *l->w)) == NULL) {
        free(l);
        nem_seterr(why, whylen, "out of memory");
        return NULL;
    }
    l->h = h;
    l->o = *o;
    if (l->o.call_ms == 0)
        l->o.call_ms = NEM_CALL_MS;
    for (int s = 0; s < o->nseqs; s++)
        snprintf(l->names[s], sizeof l->names[s], "%s%d", o->prefix ? o->prefix : "seq", s);
    pthread_mutex_init(&l->mu, NULL);
    atomic_init(&l->stop, false);
    l->n = o->clients;
    for (int k = 0; k < l->n; k++) {
        nem_worker *w = &l->w[k];
        w->l = l;
        w->id = (uint32_t)k;
        w->rng = o->seed * 1000003u + (uint64_t)k;
        w->c = nem_client_for(pc, k, why, whylen);
        if (w->c == NULL || pthread_create(&w->th, NULL, nem_worker_main, w) != 0) {
            if (w->c != NULL)
                nem_seterr(why, whylen, "pthread_create failed");
            nem_load_stop(l);
            return NULL;
        }
        w->running = true;
    }
    return l;
}

void nem_load_stats_get(nem_load *l, nem_load_stats *s)
{
    pthread_mutex_lock(&l->mu);
    *s = l->st;
    pthread_mutex_unlock(&l->mu);
}

void nem_load_stop(nem_load *l)
{
    if (l == NULL)
        return;
    atomic_store(&l->stop, true);
    for (int k = 0; k < l->n; k++) {
        if (l->w[k].running)
            pthread_join(l->w[k].th, NULL);
        client_free(l->w[k].c);
    }
    pthread_mutex_destroy(&l->mu);
    free(l->w);
    free(l);
}

/* ------------------------------------------------------------- commands */

int nem_sh(char *out, size_t outlen, const char *fmt, ...)
{
    char *cmd = malloc(NEM_CMD_MAX);
    if (cmd == NULL)
        return -1;
    va_list ap;
    va_start(ap, fmt);
    int len = vsnprintf(cmd, NEM_CMD_MAX, fmt, ap);
    va_end(ap);
    if (out != NULL && outlen > 0)
        out[0] = '\0';
    int p[2];
    if (len < 0 || len >= NEM_CMD_MAX || pipe2(p, O_CLOEXEC) != 0) {
        free(cmd);
        return -1;
    }
    /* ip and tc live in sbin, which a non-login PATH may lack. */
    char *argv[] = { "/bin/sh", "-c", cmd, NULL };
    char path_env[4096];
    const char *path = getenv("PATH");
    snprintf(path_env, sizeof path_env, "PATH=/usr/sbin:/sbin:%s", path ? path : "/usr/bin:/bin");
    char *envp[] = { path_env, NULL };
    pid_t pid = fork();
    if (pid == 0) {
        dup2(p[1], 1);
        dup2(p[1], 2);
        execve(argv[0], argv, envp);
        _exit(127);
    }
    close(p[1]);
    size_t used = 0;
    char buf[1024];
    ssize_t r;
    while ((r = read(p[0], buf, sizeof buf)) != 0) {
        if (r < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (out != NULL && outlen > 0 && used + 1 < outlen) {
            size_t k = (size_t)r < outlen - 1 - used ? (size_t)r : outlen - 1 - used;
            memcpy(out + used, buf, k);
            used += k;
            out[used] = '\0';
        }
    }
    close(p[0]);
    free(cmd);
    if (pid < 0)
        return -1;
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
}

/* Trailing newlines make one-line error messages ugly. */
static void nem_chomp(char *s)
{
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == ' '))
        s[--n] = '\0';
    for (char *p = s; *p; p++)
        if (*p == '\n')
            *p = ' ';
}

/* Accumulates a shell script of commands joined with &&, so that a whole
 * set-up runs in one fork and stops at its first failing step. */
typedef struct nem_script {
    char *s;
    size_t len;
    bool overflow;
} nem_script;

static void nem_add(nem_script *sc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void nem_add(nem_script *sc, const char *fmt, ...)
{
    if (sc->overflow)
        return;
    if (sc->len > 0) {
        int k = snprintf(sc->s + sc->len, NEM_CMD_MAX - sc->len, " && ");
        if (k < 0 || (size_t)k >= NEM_CMD_MAX - sc->len) {
            sc->overflow = true;
            return;
        }
        sc->len += (size_t)k;
    }
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(sc->s + sc->len, NEM_CMD_MAX - sc->len, fmt, ap);
    va_end(ap);
    if (k < 0 || (size_t)k >= NEM_CMD_MAX - sc->len)
        sc->overflow = true;
    else
        sc->len += (size_t)k;
}

/* Runs the script; 0, or -1 with its output in why. */
static int nem_script_run(nem_script *sc, const char *what, char *why, size_t whylen)
{
    if (sc->overflow) {
        nem_seterr(why, whylen, "%s: script too long", what);
        return -1;
    }
    if (sc->len == 0)
        return 0;
    char out[1024];
    int rc = nem_sh(out, sizeof out, "%s", sc->s);
    sc->len = 0;
    sc->s[0] = '\0';
    if (rc == 0)
        return 0;
    nem_chomp(out);
    nem_seterr(why, whylen, "%s failed (exit %d): %s", what, rc, out);
    return -1;
}

/* ------------------------------------------------------------ the proxy */

/* Ports of a slot beyond its members: procs gives each slot 50 ports from
 * pc->m[0].port, and the members use the first n. */
#define NEM_ROUTE_PORT0 10
#define NEM_CONTROL_PORT 45

struct nem_net {
    nem_net_kind kind;
    procs_cluster *pc;
    int n;
    bool cut[PROCS_MAX][PROCS_MAX];
    bool delayed;
    char env[PROCS_MAX][NEM_ENV_MAX];   /* SEQD_TEST_PEER_ROUTE=... per member */
    /* proxy */
    pid_t proxy;
    int control_port;
    int route_port[PROCS_MAX][PROCS_MAX];
    /* netns */
    char ip[32];
    char ns[PROCS_MAX][32];
    char rootdev[PROCS_MAX][32];    /* an interface name: at most 15 bytes */
    int subnet;
    bool made[PROCS_MAX];
};

/* The proxy is built next to the server binary (make tools): build/ for
 * ./seqd, build-san/ for ./seqd-san; $SEQD_FAULTPROXY overrides. */
static void nem_proxy_path(char *buf, size_t len)
{
    const char *env = getenv("SEQD_FAULTPROXY");
    if (env != NULL && env[0] != '\0') {
        snprintf(buf, len, "%s", env);
        return;
    }
    const char *bin = procs_bin();
    const char *slash = strrchr(bin, '/');
    int dirlen = slash ? (int)(slash - bin) : 1;
    const char *dir = slash ? bin : ".";
    size_t bl = strlen(bin);
    bool san = bl >= 4 && strcmp(bin + bl - 4, "-san") == 0;
    snprintf(buf, len, "%.*s/%s/tools/faultproxy", dirlen, dir, san ? "build-san" : "build");
}

/* One command on the control port; 0 on "ok". */
static int nem_proxy_cmd(nem_net *nn, const char *line, char *why, size_t whylen)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)nn->control_port),
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        nem_seterr(why, whylen, "proxy control: connect: %s", strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    char msg[256];
    int k = snprintf(msg, sizeof msg, "%s\n", line);
    if (write(fd, msg, (size_t)k) != k) {
        close(fd);
        nem_seterr(why, whylen, "proxy control: write: %s", strerror(errno));
        return -1;
    }
    char buf[4096];
    size_t used = 0;
    int64_t deadline = procs_now_ms() + 3000;
    int rc = -1;
    for (;;) {
        buf[used] = '\0';
        char *ok = strstr(buf, "ok\n"), *err = strstr(buf, "err ");
        if (ok && (ok == buf || ok[-1] == '\n')) {
            rc = 0;
            break;
        }
        if (err && strchr(err, '\n')) {
            nem_chomp(err);
            nem_seterr(why, whylen, "proxy: %s: %s", line, err);
            break;
        }
        int64_t left = deadline - procs_now_ms();
        struct pollfd p = { .fd = fd, .events = POLLIN };
        if (left <= 0 || poll(&p, 1, (int)left) <= 0) {
            nem_seterr(why, whylen, "proxy: %s: no answer", line);
            break;
        }
        ssize_t r = read(fd, buf + used, sizeof buf - 1 - used);
        if (r <= 0) {
            nem_seterr(why, whylen, "proxy: %s: connection closed", line);
            break;
        }
        used += (size_t)r;
        if (used + 1 >= sizeof buf)
            used = 0;   /* long status output: keep scanning the tail */
    }
    close(fd);
    return rc;
}

/* fork + exec with PR_SET_PDEATHSIG (the proxy must not outlive a test
 * killed by its timeout); stdout to a pipe for "ready", stderr to log_fd. */
static pid_t nem_spawn(char *const *argv, int out_fd, int log_fd)
{
    int in_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (in_fd < 0)
        return -1;
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0) {
        (void)prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        dup2(in_fd, 0);
        dup2(out_fd, 1);
        dup2(log_fd, 2);
        execv(argv[0], argv);
        _exit(127);
    }
    close(in_fd);
    return pid;
}

static int nem_proxy_setup(nem_net *nn, uint64_t seed, char *why, size_t whylen)
{
    procs_cluster *pc = nn->pc;
    char path[PROCS_PATH];
    nem_proxy_path(path, sizeof path);
    if (access(path, X_OK) != 0) {
        nem_seterr(why, whylen, "fault proxy %s not found (run `make tools`, or set SEQD_FAULTPROXY)",
                   path);
        return -1;
    }
    int base = pc->m[0].port;
    nn->control_port = base + NEM_CONTROL_PORT;
    char *argv[8 + 2 * PROCS_MAX * PROCS_MAX];
    static char specs[PROCS_MAX * PROCS_MAX][96];
    char ctl[32], seedbuf[32];
    int a = 0;
    argv[a++] = path;
    snprintf(ctl, sizeof ctl, "127.0.0.1:%d", nn->control_port);
    argv[a++] = "--control";
    argv[a++] = ctl;
    snprintf(seedbuf, sizeof seedbuf, "%" PRIu64, seed | 1);
    argv[a++] = "--seed";
    argv[a++] = seedbuf;
    if (!procs_port_free(nn->control_port)) {
        nem_seterr(why, whylen, "proxy control port %d is busy", nn->control_port);
        return -1;
    }
    int r = 0;
    for (int i = 0; i < nn->n; i++) {
        size_t off = (size_t)snprintf(nn->env[i], sizeof nn->env[i], "SEQD_TEST_PEER_ROUTE=");
        bool first = true;
        for (int j = 0; j < nn->n; j++) {
            if (i == j)
                continue;
            int port = base + NEM_ROUTE_PORT0 + i * nn->n + j;
            if (!procs_port_free(port)) {
                nem_seterr(why, whylen, "proxy route port %d is busy", port);
                return -1;
            }
            nn->route_port[i][j] = port;
            snprintf(specs[r], sizeof specs[r], "127.0.0.1:%d=%s", port, pc->m[j].addr);
            argv[a++] = "--route";
            argv[a++] = specs[r++];
            off += (size_t)snprintf(nn->env[i] + off, sizeof nn->env[i] - off, "%s%s=127.0.0.1:%d",
                                    first ? "" : ",", pc->m[j].addr, port);
            first = false;
        }
    }
    argv[a] = NULL;
    char logpath[PROCS_PATH + 16];
    snprintf(logpath, sizeof logpath, "%s/proxy.log", pc->root);
    int log_fd = open(logpath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    int p[2];
    if (log_fd < 0 || pipe2(p, O_CLOEXEC) != 0) {
        nem_seterr(why, whylen, "proxy log/pipe: %s", strerror(errno));
        if (log_fd >= 0)
            close(log_fd);
        return -1;
    }
    nn->proxy = nem_spawn(argv, p[1], log_fd);
    close(p[1]);
    close(log_fd);
    char buf[64] = "";
    size_t used = 0;
    int64_t deadline = procs_now_ms() + 5000;
    while (nn->proxy > 0 && !strstr(buf, "ready")) {
        int64_t left = deadline - procs_now_ms();
        struct pollfd pf = { .fd = p[0], .events = POLLIN };
        if (left <= 0 || poll(&pf, 1, (int)left) <= 0)
            break;
        ssize_t k = read(p[0], buf + used, sizeof buf - 1 - used);
        if (k <= 0)
            break;
        used += (size_t)k;
        buf[used] = '\0';
    }
    close(p[0]);
    if (!strstr(buf, "ready")) {
        nem_seterr(why, whylen, "fault proxy did not start (see %s)", logpath);
        return -1;
    }
    return 0;
}

static int nem_proxy_cut(nem_net *nn, int i, int j, bool block, char *why, size_t whylen)
{
    char line[64];
    snprintf(line, sizeof line, "%s 127.0.0.1:%d", block ? "block" : "unblock", nn->route_port[i][j]);
    return nem_proxy_cmd(nn, line, why, whylen);
}

int nem_net_delay_link(nem_net *nn, int i, int j, int ms, char *why, size_t whylen)
{
    if (nn->kind != NEM_NET_PROXY || i == j || i < 0 || j < 0 || i >= nn->n || j >= nn->n) {
        nem_seterr(why, whylen, "a one-link delay needs the proxy and two members");
        return -1;
    }
    char line[96];
    snprintf(line, sizeof line, "delay 127.0.0.1:%d %d 0", nn->route_port[i][j], ms);
    if (nem_proxy_cmd(nn, line, why, whylen) != 0)
        return -1;
    if (ms > 0)
        nn->delayed = true;
    return 0;
}

int nem_net_tamper(nem_net *nn, int i, int j, const char *spec, char *why, size_t whylen)
{
    if (nn->kind != NEM_NET_PROXY || i == j || i < 0 || j < 0 || i >= nn->n || j >= nn->n) {
        nem_seterr(why, whylen, "tamper needs the proxy and two members");
        return -1;
    }
    char line[160];
    snprintf(line, sizeof line, "tamper 127.0.0.1:%d %s", nn->route_port[i][j], spec);
    return nem_proxy_cmd(nn, line, why, whylen);
}

/* ------------------------------------------------------------ the netns */

static const char *nem_find_ip(void)
{
    static const char *const cands[] = { "/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip" };
    for (size_t k = 0; k < sizeof cands / sizeof cands[0]; k++)
        if (access(cands[k], X_OK) == 0)
            return cands[k];
    return NULL;
}

/* Namespaces are named sqf<pid>-<i>; a test killed by its timeout cannot
 * remove its own, so every set-up removes those of processes that are gone. */
static void nem_netns_reap_stale(void)
{
    DIR *d = opendir("/run/netns");
    if (d == NULL)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        int pid = 0, idx = 0;
        if (sscanf(e->d_name, "sqf%d-%d", &pid, &idx) != 2 || pid <= 0)
            continue;
        if (kill(pid, 0) == 0 || errno != ESRCH)
            continue;
        (void)nem_sh(NULL, 0, "ip netns del %s; ip link del sqf%dc%d", e->d_name, pid, idx);
    }
    closedir(d);
}

static void nem_netns_addr(const nem_net *nn, int i, bool root_side, char *buf, size_t len)
{
    snprintf(buf, len, "10.77.%d.%d", nn->subnet, root_side ? 101 + i : 1 + i);
}

/* Adds the commands that (re)create the route from member i to member j
 * over their mesh link: links that went down lost their routes. */
static void nem_netns_route(nem_net *nn, nem_script *sc, int i, int j)
{
    char mine[32], theirs[32];
    nem_netns_addr(nn, i, false, mine, sizeof mine);
    nem_netns_addr(nn, j, false, theirs, sizeof theirs);
    nem_add(sc, "ip -n %s link set m%d up", nn->ns[i], j);
    nem_add(sc, "ip -n %s route replace %s/32 dev m%d src %s", nn->ns[i], theirs, j, mine);
}

static int nem_netns_setup(nem_net *nn, int slot, char *why, size_t whylen)
{
    const char *ip = nem_find_ip();
    if (geteuid() != 0) {
        nem_seterr(why, whylen, "netns needs root (euid %d)", (int)geteuid());
        return -1;
    }
    if (ip == NULL) {
        nem_seterr(why, whylen, "netns needs iproute2 (`ip` not found)");
        return -1;
    }
    snprintf(nn->ip, sizeof nn->ip, "%s", ip);
    nem_netns_reap_stale();
    nn->subnet = slot;
    int pid = (int)getpid();
    for (int i = 0; i < nn->n; i++) {
        snprintf(nn->ns[i], sizeof nn->ns[i], "sqf%d-%d", pid, i);
        snprintf(nn->rootdev[i], sizeof nn->rootdev[i], "sqf%dc%d", pid, i);
        if (strlen(nn->rootdev[i]) > 15) {
            nem_seterr(why, whylen, "interface name %s too long", nn->rootdev[i]);
            return -1;
        }
    }
    char out[512];
    int rc = nem_sh(out, sizeof out, "ip netns add %s", nn->ns[0]);
    if (rc != 0) {
        nem_chomp(out);
        nem_seterr(why, whylen, "`ip netns add` not permitted here (exit %d: %s)", rc, out);
        return -1;
    }
    nn->made[0] = true;
    nem_script sc = { .s = calloc(1, NEM_CMD_MAX) };
    if (sc.s == NULL) {
        nem_seterr(why, whylen, "out of memory");
        return -1;
    }
    for (int i = 1; i < nn->n; i++) {
        nem_add(&sc, "ip netns add %s", nn->ns[i]);
        nn->made[i] = true;
    }
    for (int i = 0; i < nn->n; i++) {
        char mine[32], root[32];
        nem_netns_addr(nn, i, false, mine, sizeof mine);
        nem_netns_addr(nn, i, true, root, sizeof root);
        nem_add(&sc, "ip -n %s link set lo up", nn->ns[i]);
        nem_add(&sc, "ip -n %s addr add %s/32 dev lo", nn->ns[i], mine);
        nem_add(&sc, "ip link add %s type veth peer name c netns %s", nn->rootdev[i], nn->ns[i]);
        nem_add(&sc, "ip addr add %s/32 dev %s", root, nn->rootdev[i]);
        nem_add(&sc, "ip link set %s up", nn->rootdev[i]);
        nem_add(&sc, "ip -n %s link set c up", nn->ns[i]);
        nem_add(&sc, "ip route add %s/32 dev %s src %s", mine, nn->rootdev[i], root);
        nem_add(&sc, "ip -n %s route add %s/32 dev c src %s", nn->ns[i], root, mine);
    }
    for (int i = 0; i < nn->n; i++)
        for (int j = i + 1; j < nn->n; j++) {
            nem_add(&sc, "ip link add m%d netns %s type veth peer name m%d netns %s", j, nn->ns[i],
                    i, nn->ns[j]);
            nem_netns_route(nn, &sc, i, j);
            nem_netns_route(nn, &sc, j, i);
        }
    rc = nem_script_run(&sc, "netns set-up", why, whylen);
    free(sc.s);
    if (rc != 0)
        return -1;
    for (int i = 0; i < nn->n; i++) {
        char mine[32];
        nem_netns_addr(nn, i, false, mine, sizeof mine);
        if (procs_set_host(nn->pc, i, mine) != 0) {
            nem_seterr(why, whylen, "member %d is already running", i);
            return -1;
        }
        nn->env[i][0] = '\0';
    }
    return 0;
}

/* ---------------------------------------------------------------- common */

nem_net *nem_net_new(procs_cluster *pc, nem_net_kind kind, int slot, uint64_t seed, char *why,
                     size_t whylen)
{
    nem_net *nn = calloc(1, sizeof *nn);
    if (nn == NULL) {
        nem_seterr(why, whylen, "out of memory");
        return NULL;
    }
    nn->kind = kind;
    nn->pc = pc;
    nn->n = pc->n;
    int rc = kind == NEM_NET_PROXY ? nem_proxy_setup(nn, seed, why, whylen)
                                   : nem_netns_setup(nn, slot, why, whylen);
    if (rc != 0) {
        nem_net_free(nn);
        return NULL;
    }
    return nn;
}

const char *nem_net_variant(const nem_net *nn)
{
    return nn->kind == NEM_NET_PROXY ? "proxy" : "netns";
}

int nem_net_start(nem_net *nn, int i, const char *const *more, const char *const *env)
{
    const char *e[16];
    int k = 0;
    if (nn->env[i][0] != '\0')
        e[k++] = nn->env[i];
    for (int j = 0; env != NULL && env[j] != NULL && k < 15; j++)
        e[k++] = env[j];
    e[k] = NULL;
    const char *prefix[] = { nn->ip, "netns", "exec", nn->ns[i], NULL };
    if (nn->kind != NEM_NET_NETNS)
        return procs_start_ex(nn->pc, i, NULL, more, e);
    /* The members' addresses are not loopback: protected mode (no secret)
     * would refuse to start, so these test hosts say the network is theirs. */
    const char *m2[24];
    int a = 0;
    m2[a++] = "--insecure";
    for (int j = 0; more != NULL && more[j] != NULL && a < 23; j++)
        m2[a++] = more[j];
    m2[a] = NULL;
    return procs_start_ex(nn->pc, i, prefix, m2, e);
}

int nem_net_start_all(nem_net *nn)
{
    for (int i = 0; i < nn->n; i++)
        if (nn->pc->m[i].pid == 0 && nem_net_start(nn, i, NULL, NULL) != 0)
            return -1;
    return 0;
}

/* Cuts or restores the link between i and j (both directions). */
static int nem_net_link(nem_net *nn, nem_script *sc, int i, int j, bool cut, char *why,
                        size_t whylen)
{
    if (nn->kind == NEM_NET_PROXY) {
        if (nem_proxy_cut(nn, i, j, cut, why, whylen) != 0 ||
            nem_proxy_cut(nn, j, i, cut, why, whylen) != 0)
            return -1;
    } else if (cut) {
        nem_add(sc, "ip -n %s link set m%d down", nn->ns[i], j);
        nem_add(sc, "ip -n %s link set m%d down", nn->ns[j], i);
    } else {
        nem_netns_route(nn, sc, i, j);
        nem_netns_route(nn, sc, j, i);
    }
    nn->cut[i][j] = nn->cut[j][i] = cut;
    return 0;
}

int nem_net_split(nem_net *nn, const int *side, char *why, size_t whylen)
{
    nem_script sc = { .s = calloc(1, NEM_CMD_MAX) };
    if (sc.s == NULL)
        return -1;
    int rc = 0;
    for (int i = 0; i < nn->n && rc == 0; i++)
        for (int j = i + 1; j < nn->n && rc == 0; j++)
            if (side[i] != side[j] && !nn->cut[i][j])
                rc = nem_net_link(nn, &sc, i, j, true, why, whylen);
    if (rc == 0)
        rc = nem_script_run(&sc, "partition", why, whylen);
    free(sc.s);
    return rc;
}

int nem_net_isolate(nem_net *nn, int i, char *why, size_t whylen)
{
    int side[PROCS_MAX] = { 0 };
    side[i] = 1;
    return nem_net_split(nn, side, why, whylen);
}

int nem_net_heal(nem_net *nn, char *why, size_t whylen)
{
    nem_script sc = { .s = calloc(1, NEM_CMD_MAX) };
    if (sc.s == NULL)
        return -1;
    int rc = 0;
    for (int i = 0; i < nn->n && rc == 0; i++)
        for (int j = i + 1; j < nn->n && rc == 0; j++)
            if (nn->cut[i][j])
                rc = nem_net_link(nn, &sc, i, j, false, why, whylen);
    if (rc == 0)
        rc = nem_script_run(&sc, "heal", why, whylen);
    free(sc.s);
    if (rc == 0 && nn->delayed)
        rc = nem_net_delay(nn, -1, 0, 0, why, whylen);
    return rc;
}

int nem_net_delay(nem_net *nn, int only, int ms, int jitter_ms, char *why, size_t whylen)
{
    char line[96];
    if (nn->kind == NEM_NET_PROXY) {
        if (only < 0) {
            snprintf(line, sizeof line, "delayall %d %d", ms, jitter_ms);
            if (nem_proxy_cmd(nn, line, why, whylen) != 0)
                return -1;
        } else {
            for (int j = 0; j < nn->n; j++) {
                if (j == only)
                    continue;
                for (int d = 0; d < 2; d++) {
                    snprintf(line, sizeof line, "delay 127.0.0.1:%d %d %d",
                             d ? nn->route_port[only][j] : nn->route_port[j][only], ms, jitter_ms);
                    if (nem_proxy_cmd(nn, line, why, whylen) != 0)
                        return -1;
                }
            }
        }
        nn->delayed = ms > 0;
        return 0;
    }
    nem_script sc = { .s = calloc(1, NEM_CMD_MAX) };
    if (sc.s == NULL)
        return -1;
    for (int i = 0; i < nn->n; i++)
        for (int j = 0; j < nn->n; j++) {
            if (i == j || (only >= 0 && i != only && j != only))
                continue;
            if (ms > 0)
                nem_add(&sc, "tc -n %s qdisc replace dev m%d root netem delay %dms %dms", nn->ns[i],
                        j, ms, jitter_ms);
            else
                nem_add(&sc, "{ tc -n %s qdisc del dev m%d root 2>/dev/null || true; }", nn->ns[i],
                        j);
        }
    int rc = nem_script_run(&sc, "tc netem", why, whylen);
    free(sc.s);
    if (rc == 0)
        nn->delayed = ms > 0;
    return rc;
}

void nem_net_free(nem_net *nn)
{
    if (nn == NULL)
        return;
    if (nn->proxy > 0) {
        kill(nn->proxy, SIGTERM);
        int st;
        int64_t deadline = procs_now_ms() + 3000;
        while (waitpid(nn->proxy, &st, WNOHANG) == 0) {
            if (procs_now_ms() > deadline) {
                kill(nn->proxy, SIGKILL);
                waitpid(nn->proxy, &st, 0);
                break;
            }
            procs_sleep_ms(5);
        }
    }
    if (nn->kind == NEM_NET_NETNS) {
        for (int i = 0; i < nn->n; i++)
            if (nn->made[i])
                (void)nem_sh(NULL, 0, "ip netns del %s; ip link del %s 2>/dev/null", nn->ns[i],
                             nn->rootdev[i]);
    }
    free(nn);
}

/* ---------------------------------------------------------------- tmpfs */

int nem_tmpfs_mount(const char *dir, long size_kb, char *why, size_t whylen)
{
    char opts[64];
    snprintf(opts, sizeof opts, "size=%ldk,mode=0755", size_kb);
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        nem_seterr(why, whylen, "mkdir %s: %s", dir, strerror(errno));
        return -1;
    }
    if (mount("seqd-faults", dir, "tmpfs", MS_NOSUID | MS_NODEV, opts) != 0) {
        nem_seterr(why, whylen, "mount -t tmpfs -o %s on %s: %s", opts, dir, strerror(errno));
        return -1;
    }
    return 0;
}

int nem_tmpfs_resize(const char *dir, long size_kb, char *why, size_t whylen)
{
    char opts[64];
    snprintf(opts, sizeof opts, "size=%ldk", size_kb);
    if (mount("seqd-faults", dir, "tmpfs", MS_REMOUNT | MS_NOSUID | MS_NODEV, opts) != 0) {
        nem_seterr(why, whylen, "remount %s with %s: %s", dir, opts, strerror(errno));
        return -1;
    }
    return 0;
}

void nem_tmpfs_umount(const char *dir)
{
    (void)umount2(dir, MNT_DETACH);
}

/* --------------------------------------------------------------- report */

/* One line into the campaign's summary file; O_APPEND and one write keep
 * lines whole even if two processes report at once. */
static void nem_summary_append(const char *line)
{
    const char *path = getenv("SEQD_FAULTS_SUMMARY");
    if (path == NULL || path[0] == '\0')
        return;
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0)
        return;
    char buf[1200];
    int k = snprintf(buf, sizeof buf, "%s\n", line);
    if (k > 0)
        (void)!write(fd, buf, (size_t)k < sizeof buf ? (size_t)k : sizeof buf - 1);
    close(fd);
}

static void nem_copy_file(const char *from, const char *to)
{
    (void)nem_sh(NULL, 0, "cp '%s' '%s' 2>/dev/null", from, to);
}

int64_t nem_report(const char *scenario, const char *variant, uint64_t seed, const char *extra,
                   const history *h, const procs_cluster *pc, bool keep, history_report *r,
                   char *why, size_t whylen)
{
    history_report local;
    if (r == NULL)
        r = &local;
    int64_t v = history_check(h, r);
    char line[1024];
    size_t off = (size_t)history_summary(line, sizeof line, scenario, r);
    if (off < sizeof line)
        off += (size_t)snprintf(line + off, sizeof line - off, " variant=%s seed=%" PRIu64 "%s%s",
                                variant ? variant : "-", seed, extra && *extra ? " " : "",
                                extra ? extra : "");
    fprintf(stderr, "%s\n", line);
    nem_summary_append(line);
    if (why != NULL && whylen > 0)
        why[0] = '\0';
    if (v == 0 && !keep)
        return v;
    char dir[128];
    snprintf(dir, sizeof dir, "/tmp/seqd-faults-%.40s-XXXXXX", scenario);
    if (mkdtemp(dir) == NULL) {
        nem_seterr(why, whylen, "%s; could not keep the history: %s", line, strerror(errno));
        return v;
    }
    char path[PROCS_PATH + 64];
    snprintf(path, sizeof path, "%s/history", dir);
    int wr = history_write_path(h, path);
    for (int i = 0; pc != NULL && i < pc->n; i++) {
        char to[PROCS_PATH + 64];
        snprintf(to, sizeof to, "%s/node%d.log", dir, i + 1);
        nem_copy_file(pc->m[i].log, to);
    }
    if (pc != NULL) {
        char from[PROCS_PATH + 64];
        snprintf(from, sizeof from, "%s/proxy.log", pc->root);
        snprintf(path, sizeof path, "%s/proxy.log", dir);
        if (access(from, R_OK) == 0)
            nem_copy_file(from, path);
    }
    fprintf(stderr, "scenario=%s: history%s and member logs kept in %s\n", scenario,
            wr ? " (write failed)" : "", dir);
    if (why != NULL && whylen > 0) {
        size_t w = (size_t)snprintf(why, whylen, "%s\nhistory and member logs kept in %s", line, dir);
        for (int k = 0; k < r->shown && w < whylen; k++)
            w += (size_t)snprintf(why + w, whylen - w, "\n  %s", r->msg[k]);
    }
    return v;
}

void nem_report_skip(const char *scenario, const char *reason)
{
    char line[1024];
    snprintf(line, sizeof line, "scenario=%s skipped: %s", scenario, reason);
    fprintf(stderr, "%s\n", line);
    nem_summary_append(line);
}
