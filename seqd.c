/* seqd.c — the one executable: `seqd serve` runs a member, `seqd fetch`
 * and `seqd status` are clients. This file parses the command line
 * (DESIGN.md §1, fixed: scripts depend on it) and wires the modules
 * together; it holds the only process-wide state (the server being run). */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "net/client.h"
#include "net/stream.h"
#include "core/member.h"
#include "net/front_bin.h"
#include "proto.h"
#include "storage/datadir.h"
#include "storage/log.h"
#include "storage/table.h"

#define SEQD_VERSION "0.1.0"
#define DEFAULT_SERVERS "127.0.0.1:19001,127.0.0.1:19002,127.0.0.1:19003"

/* Exit codes: DESIGN.md §1. */
enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2 };

static const char usage_main[] =
    "usage: seqd COMMAND [OPTIONS]\n"
    "\n"
    "Unique, increasing 64-bit IDs from a leaderless cluster.\n"
    "\n"
    "commands:\n"
    "  serve   run a cluster member\n"
    "  fetch   allocate IDs of a sequence\n"
    "  status  show every member's state\n"
    "  stream  print IDs from a buffered stream until interrupted\n"
    "\n"
    "`seqd COMMAND --help` describes a command; `seqd --version` prints the version.\n";

static const char usage_serve[] =
    "usage: seqd serve --listen HOST:PORT --data DIR [--peers HOST:PORT,...]\n"
    "                  [--fsync always|never] [--round-timeout MS]\n"
    "\n"
    "Runs one member. The member set is --listen plus --peers (the other members);\n"
    "every member must be given the same set and the same --round-timeout.\n"
    "  --listen HOST:PORT   address for clients and peers\n"
    "  --data DIR           data directory (created if missing, locked while running)\n"
    "  --peers LIST         the other members, comma-separated\n"
    "  --fsync MODE         always (default): every acknowledged ID is on disk;\n"
    "                       never: for benchmarks only\n"
    "  --round-timeout MS   R, how long a quorum round may take (default 1000)\n";

static const char usage_fetch[] =
    "usage: seqd fetch [--servers HOST:PORT,...] [--count N] [--range] [--timeout MS] NAME\n"
    "\n"
    "Allocates N consecutive IDs of sequence NAME and prints them, one per line.\n"
    "  --servers LIST  members to ask (default: $SEQD_SERVERS, else " DEFAULT_SERVERS ")\n"
    "  --count N       how many IDs, 1 to 1000000 (default 1)\n"
    "  --range         print FIRST LAST (inclusive) on one line instead\n"
    "  --timeout MS    deadline for the whole call (default 5000)\n"
    "NAME is 1 to 128 bytes of [A-Za-z0-9._-].\n"
    "Exit status: 0 ok, 1 the cluster could not serve, 2 usage error.\n";

static const char usage_status[] =
    "usage: seqd status [--servers HOST:PORT,...]\n"
    "\n"
    "Prints one line per member: address, ready / recovering / down, counters.\n"
    "Exits 0 only when every member is ready.\n";

static const char usage_stream[] =
    "usage: seqd stream [--servers HOST:PORT,...] [--buffer N] [--interval MS] NAME\n"
    "\n"
    "Prints IDs of sequence NAME from a buffered stream, one per line, until\n"
    "interrupted (SIGINT, or the reader going away: `seqd stream x | head -5`).\n"
    "The stream fetches ranges of N IDs in the background, refilling when half\n"
    "is used; it keeps going while members die and come back as long as a\n"
    "quorum is up, and says on stderr when it has to wait for the cluster.\n"
    "  --servers LIST  members to ask (default: $SEQD_SERVERS, else " DEFAULT_SERVERS ")\n"
    "  --buffer N      IDs per range, 0 to 1000000 (default 1024; 0 = a fetch per ID)\n"
    "  --interval MS   pause between IDs (default 0)\n";

typedef struct opts {
    const char *listen, *data, *peers, *servers, *name;
    const char *fsync;
    uint64_t count, round_ms, timeout_ms, buffer, interval_ms;
    bool range, help;
} opts;

static int usage_error(const char *usage, const char *fmt, const char *arg)
{
    fprintf(stderr, "seqd: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n%s", usage);
    return EXIT_USAGE;
}

/* Strict decimal: the whole string, no sign, no overflow. */
static bool parse_u64(const char *s, uint64_t max, uint64_t *out)
{
    if (!s || !*s || strspn(s, "0123456789") != strlen(s) || strlen(s) > 19)
        return false;
    errno = 0;
    unsigned long long v = strtoull(s, NULL, 10);
    if (errno || v > max)
        return false;
    *out = v;
    return true;
}

/* Splits "--opt=value" or takes the next argument. Returns NULL when the
 * option is missing its value. */
static const char *opt_value(int argc, char **argv, int *i, const char *eq)
{
    if (eq)
        return eq + 1;
    if (*i + 1 >= argc)
        return NULL;
    return argv[++*i];
}

/* One parser for every command: each accepts only its own options. */
static int parse_opts(int argc, char **argv, const char *allowed, const char *usage, opts *o)
{
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            o->help = true;
            continue;
        }
        if (strncmp(a, "--", 2) != 0) {
            if (o->name || !strstr(allowed, "NAME"))
                return usage_error(usage, "unexpected argument '%s'", a);
            o->name = a;
            continue;
        }
        const char *eq = strchr(a, '=');
        size_t klen = eq ? (size_t)(eq - a) : strlen(a);
        char key[32];
        if (klen >= sizeof key)
            return usage_error(usage, "unknown option '%s'", a);
        memcpy(key, a, klen);
        key[klen] = '\0';
        char pat[40];
        snprintf(pat, sizeof pat, " %s ", key);
        if (!strstr(allowed, pat))
            return usage_error(usage, "unknown option '%s'", key);
        if (strcmp(key, "--range") == 0) {
            o->range = true;
            continue;
        }
        const char *v = opt_value(argc, argv, &i, eq);
        if (!v)
            return usage_error(usage, "option %s needs a value", key);
        if (strcmp(key, "--listen") == 0)
            o->listen = v;
        else if (strcmp(key, "--data") == 0)
            o->data = v;
        else if (strcmp(key, "--peers") == 0)
            o->peers = v;
        else if (strcmp(key, "--servers") == 0)
            o->servers = v;
        else if (strcmp(key, "--fsync") == 0)
            o->fsync = v;
        else if (strcmp(key, "--count") == 0) {
            if (!parse_u64(v, UINT64_MAX, &o->count) || !seqd_count_valid(o->count))
                return usage_error(usage, "bad --count '%s': want 1 to 1000000", v);
        } else if (strcmp(key, "--round-timeout") == 0) {
            if (!parse_u64(v, 600000, &o->round_ms) || o->round_ms < 10)
                return usage_error(usage, "bad --round-timeout '%s': want 10 to 600000 ms", v);
        } else if (strcmp(key, "--buffer") == 0) {
            if (!parse_u64(v, SEQD_COUNT_MAX, &o->buffer))
                return usage_error(usage, "bad --buffer '%s': want 0 to 1000000", v);
        } else if (strcmp(key, "--interval") == 0) {
            if (!parse_u64(v, 3600000, &o->interval_ms))
                return usage_error(usage, "bad --interval '%s': want 0 to 3600000 ms", v);
        } else if (strcmp(key, "--timeout") == 0) {
            if (!parse_u64(v, 3600000, &o->timeout_ms) || o->timeout_ms < 1)
                return usage_error(usage, "bad --timeout '%s': want 1 to 3600000 ms", v);
        }
    }
    return EXIT_OK;
}

/* ---- serve -------------------------------------------------------------- */

/* The member being run and its front end, for the signal handler. */
static member *running;
static front_bin *running_front;

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)sig;
    (void)what;
    (void)arg;
    if (running_front)
        front_bin_stop(running_front);   /* no new connections */
    if (running)
        member_stop(running);
}

/* Builds the sorted member set from --listen and --peers. */
static int member_set(const opts *o, char **members, int *n, int *self, char *err, size_t errlen)
{
    static char buf[DATADIR_MEMBERS_MAX * 2];
    snprintf(buf, sizeof buf, "%s%s%s", o->listen, o->peers && *o->peers ? "," : "",
             o->peers ? o->peers : "");
    *n = 0;
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (*n == SEQD_MAX_MEMBERS) {
            snprintf(err, errlen, "too many members (at most %d)", SEQD_MAX_MEMBERS);
            return -1;
        }
        for (int i = 0; i < *n; i++)
            if (strcmp(members[i], tok) == 0) {
                snprintf(err, errlen, "member %s is listed twice", tok);
                return -1;
            }
        if (strlen(tok) > SEQD_ADDR_MAX || !strchr(tok, ':')) {
            snprintf(err, errlen, "bad member address '%s' (want HOST:PORT)", tok);
            return -1;
        }
        members[(*n)++] = tok;
    }
    *self = -1;
    return 0;
}

/* Testing hook for the fault campaign: SEQD_TEST_FAULTS="key=value,..."
 * with keys write_fail_nth, write_fail_count, write_errno (ENOSPC or EIO),
 * fsync_fail_nth, sync_delay_us (storage/log.h). Never set in production. */
static int apply_fault_hooks(seqlog *log, char *err, size_t errlen)
{
    const char *spec = getenv("SEQD_TEST_FAULTS");
    if (!spec || !*spec)
        return 0;
    log_faults f = {.write_errno = ENOSPC};
    char buf[256];
    snprintf(buf, sizeof buf, "%s", spec);
    for (char *save = NULL, *kv = strtok_r(buf, ",", &save); kv; kv = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(kv, '=');
        uint64_t v = 0;
        if (eq)
            *eq = '\0';
        if (eq && strcmp(kv, "write_errno") == 0 && (strcmp(eq + 1, "ENOSPC") == 0 || strcmp(eq + 1, "EIO") == 0)) {
            f.write_errno = strcmp(eq + 1, "EIO") == 0 ? EIO : ENOSPC;
            continue;
        }
        if (!eq || !parse_u64(eq + 1, UINT32_MAX, &v)) {
            snprintf(err, errlen, "bad SEQD_TEST_FAULTS entry '%s'", kv);
            return -1;
        }
        if (strcmp(kv, "write_fail_nth") == 0)
            f.write_fail_nth = v;
        else if (strcmp(kv, "write_fail_count") == 0)
            f.write_fail_count = v;
        else if (strcmp(kv, "fsync_fail_nth") == 0)
            f.fsync_fail_nth = v;
        else if (strcmp(kv, "sync_delay_us") == 0)
            f.sync_delay_us = (uint32_t)v;
        else {
            snprintf(err, errlen, "unknown SEQD_TEST_FAULTS key '%s'", kv);
            return -1;
        }
    }
    log_set_faults(log, &f);
    fprintf(stderr, "seqd: testing hook SEQD_TEST_FAULTS=%s is active\n", spec);
    return 0;
}

static int cmd_serve(int argc, char **argv)
{
    opts o = {.fsync = "always", .round_ms = 1000};
    int rc = parse_opts(argc, argv, " --listen --data --peers --fsync --round-timeout ", usage_serve, &o);
    if (rc != EXIT_OK)
        return rc;
    if (o.help) {
        fputs(usage_serve, stdout);
        return EXIT_OK;
    }
    if (!o.listen || !o.data)
        return usage_error(usage_serve, "%s", "--listen and --data are required");
    if (strcmp(o.fsync, "always") != 0 && strcmp(o.fsync, "never") != 0)
        return usage_error(usage_serve, "bad --fsync '%s': want always or never", o.fsync);

    char err[512];
    char *members[SEQD_MAX_MEMBERS];
    char joined[DATADIR_MEMBERS_MAX];
    int n, self;
    if (member_set(&o, members, &n, &self, err, sizeof err) < 0)
        return usage_error(usage_serve, "%s", err);
    uint64_t cluster_id = datadir_cluster_id(members, n, joined, sizeof joined);
    for (int i = 0; i < n; i++)
        if (strcmp(members[i], o.listen) == 0)
            self = i;

    if (datadir_lock(o.data, err, sizeof err) < 0) {
        fprintf(stderr, "seqd: %s\n", err);
        return EXIT_FAIL;
    }
    datadir_identity id;
    int have = datadir_read_identity(o.data, &id, err, sizeof err);
    if (have < 0) {
        fprintf(stderr, "seqd: %s\n", err);
        return EXIT_FAIL;
    }
    if (have && (id.cluster_id != cluster_id || strcmp(id.members, joined) != 0)) {
        fprintf(stderr,
                "seqd: refusing to start: %s belongs to the cluster of members %s, "
                "but --listen/--peers name %s\n",
                o.data, id.members, joined);
        return EXIT_FAIL;
    }

    table *t = table_new();
    /* 16 MiB segments: preallocating one costs ~30 ms at start, and a
     * compaction every ~300k records is cheap. */
    log_opts lo = {.fsync = strcmp(o.fsync, "always") == 0, .segment_bytes = 16u << 20};
    seqlog *log = t ? log_open(o.data, &lo, t, err, sizeof err) : NULL;
    if (!log) {
        fprintf(stderr, "seqd: cannot open the log in %s: %s\n", o.data, t ? err : "out of memory");
        return EXIT_FAIL;
    }

    if (apply_fault_hooks(log, err, sizeof err) < 0)
        return usage_error(usage_serve, "%s", err);
    signal(SIGPIPE, SIG_IGN);
    struct event_base *base = event_base_new();
    member_config cfg = {.data_dir = o.data, .members = members, .n = n, .self = self,
                         .cluster_id = cluster_id, .members_joined = joined,
                         .round_ms = (uint32_t)o.round_ms, .has_state = have == 1,
                         .peer_route = getenv("SEQD_TEST_PEER_ROUTE")};
    running = base ? member_new(base, &cfg, log, t, err, sizeof err) : NULL;
    if (!running) {
        fprintf(stderr, "seqd: %s\n", base ? err : "cannot create the event loop");
        return EXIT_FAIL;
    }
    running_front = front_bin_new(base, running, o.listen, err, sizeof err);
    if (!running_front || member_start(running, err, sizeof err) < 0) {
        fprintf(stderr, "seqd: %s\n", err);
        return EXIT_FAIL;
    }
    struct event *sigint = evsignal_new(base, SIGINT, on_signal, NULL);
    struct event *sigterm = evsignal_new(base, SIGTERM, on_signal, NULL);
    event_add(sigint, NULL);
    event_add(sigterm, NULL);
    event_base_dispatch(base);

    if (member_fatal(running))
        return EXIT_FAIL;   /* no flush: the log can no longer be trusted */
    /* The member first (it closes the log, whose last completions still
     * reach replies on the front end's connections), then the front end. */
    member_free(running);
    front_bin_free(running_front);
    running = NULL;
    running_front = NULL;
    event_free(sigint);
    event_free(sigterm);
    event_base_free(base);
    fprintf(stderr, "seqd: stopped\n");
    return EXIT_OK;
}

/* ---- fetch and status --------------------------------------------------- */

static const char *servers_of(const opts *o)
{
    if (o->servers)
        return o->servers;
    const char *env = getenv("SEQD_SERVERS");
    return env && *env ? env : DEFAULT_SERVERS;
}

/* Up to a million lines: format by hand into one large buffer. */
static void print_ids(uint64_t first, uint64_t count)
{
    static char buf[1 << 16];
    size_t used = 0;
    for (uint64_t i = 0; i < count; i++) {
        char tmp[24];
        int len = 0;
        uint64_t v = first + i;
        do {
            tmp[len++] = (char)('0' + v % 10);
            v /= 10;
        } while (v);
        if (used + (size_t)len + 1 > sizeof buf) {
            fwrite(buf, 1, used, stdout);
            used = 0;
        }
        while (len)
            buf[used++] = tmp[--len];
        buf[used++] = '\n';
    }
    fwrite(buf, 1, used, stdout);
}

static int cmd_fetch(int argc, char **argv)
{
    opts o = {.count = 1, .timeout_ms = 5000};
    int rc = parse_opts(argc, argv, " --servers --count --range --timeout NAME ", usage_fetch, &o);
    if (rc != EXIT_OK)
        return rc;
    if (o.help) {
        fputs(usage_fetch, stdout);
        return EXIT_OK;
    }
    if (!o.name)
        return usage_error(usage_fetch, "%s", "missing sequence NAME");
    if (!seqd_name_valid(o.name, strlen(o.name)))
        return usage_error(usage_fetch, "bad sequence name '%s': want 1 to 128 bytes of [A-Za-z0-9._-]",
                           o.name);
    char err[1024];
    client *c = client_new(servers_of(&o), err, sizeof err);
    if (!c)
        return usage_error(usage_fetch, "%s", err);
    uint64_t first = 0;
    rc = client_fetch(c, o.name, (uint32_t)o.count, (uint32_t)o.timeout_ms, &first, err, sizeof err);
    client_free(c);
    if (rc != CLIENT_OK) {
        fprintf(stderr, "seqd: %s\n", err);
        return rc == CLIENT_EUSAGE ? EXIT_USAGE : EXIT_FAIL;
    }
    if (o.range)
        printf("%llu %llu\n", (unsigned long long)first, (unsigned long long)(first + o.count - 1));
    else
        print_ids(first, o.count);
    return fflush(stdout) == 0 ? EXIT_OK : EXIT_FAIL;
}

static const char *state_str(int state)
{
    switch (state) {
    case STATE_READY: return "ready";
    case STATE_RECOVERING: return "recovering";
    case STATE_STOPPING: return "stopping";
    default: return "unknown";
    }
}

static int cmd_status(int argc, char **argv)
{
    opts o = {0};
    int rc = parse_opts(argc, argv, " --servers ", usage_status, &o);
    if (rc != EXIT_OK)
        return rc;
    if (o.help) {
        fputs(usage_status, stdout);
        return EXIT_OK;
    }
    char err[512];
    client *c = client_new(servers_of(&o), err, sizeof err);
    if (!c)
        return usage_error(usage_status, "%s", err);
    bool all_ready = true;
    for (int i = 0; i < client_nservers(c); i++) {
        struct seqd_status st;
        if (client_status(c, i, 1000, &st, err, sizeof err) != CLIENT_OK) {
            printf("%s down (%s)\n", client_server(c, i), err);
            all_ready = false;
            continue;
        }
        all_ready = all_ready && st.state == STATE_READY;
        printf("%s %s fetches=%llu ids=%llu rounds=%llu reads=%llu nacks=%llu fsyncs=%llu records=%llu\n",
               client_server(c, i), state_str(st.state), (unsigned long long)st.fetches,
               (unsigned long long)st.ids, (unsigned long long)st.rounds,
               (unsigned long long)st.reads, (unsigned long long)st.nacks,
               (unsigned long long)st.fsyncs, (unsigned long long)st.records);
    }
    client_free(c);
    return all_ready ? EXIT_OK : EXIT_FAIL;
}

/* Set by SIGINT/SIGTERM in `seqd stream`; the loop checks it between IDs. */
static volatile sig_atomic_t stream_stop;

static void stream_on_signal(int sig)
{
    (void)sig;
    stream_stop = 1;
}

/* Tells the user once when the stream starts or stops waiting, not on
 * every retry: no ID within a second means the cluster cannot serve now. */
static void stream_report(bool ok, bool *waiting, const char *err)
{
    if (!ok && !*waiting)
        fprintf(stderr, "seqd: waiting for the cluster: %s\n", err);
    else if (ok && *waiting)
        fprintf(stderr, "seqd: the cluster serves again\n");
    *waiting = !ok;
}

static int cmd_stream(int argc, char **argv)
{
    opts o = {.buffer = 1024};
    int rc = parse_opts(argc, argv, " --servers --buffer --interval NAME ", usage_stream, &o);
    if (rc != EXIT_OK)
        return rc;
    if (o.help) {
        fputs(usage_stream, stdout);
        return EXIT_OK;
    }
    if (!o.name || !seqd_name_valid(o.name, strlen(o.name)))
        return usage_error(usage_stream, "bad or missing sequence name '%s'", o.name ? o.name : "");
    char err[512];
    stream *st = stream_new_client(servers_of(&o), o.name, (uint32_t)o.buffer, 5000, err, sizeof err);
    if (!st)
        return usage_error(usage_stream, "%s", err);
    /* No SA_RESTART: a signal must cut a pause short. A reader that went
     * away shows up as EPIPE from the write, not as a signal. */
    struct sigaction sa = {.sa_handler = stream_on_signal};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    bool waiting = false, flush_each = o.interval_ms > 0;
    rc = EXIT_OK;
    while (!stream_stop) {
        uint64_t id;
        bool ok = stream_next(st, &id, 1000, err, sizeof err) == CLIENT_OK;
        stream_report(ok, &waiting, err);
        if (!ok)
            continue;
        if (printf("%llu\n", (unsigned long long)id) < 0 || (flush_each && fflush(stdout) != 0))
            break;
        if (o.interval_ms) {
            struct timespec ts = {(time_t)(o.interval_ms / 1000), (long)(o.interval_ms % 1000) * 1000000};
            nanosleep(&ts, NULL);
        }
    }
    if (fflush(stdout) != 0 && errno != EPIPE)
        rc = EXIT_FAIL;
    stream_free(st);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fputs(usage_main, stderr);
        return EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        fputs(usage_main, stdout);
        return EXIT_OK;
    }
    if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "version") == 0) {
        printf("seqd %s (protocol %d)\n", SEQD_VERSION, SEQD_PROTO_VERSION);
        return EXIT_OK;
    }
    if (strcmp(cmd, "serve") == 0)
        return cmd_serve(argc, argv);
    if (strcmp(cmd, "fetch") == 0)
        return cmd_fetch(argc, argv);
    if (strcmp(cmd, "status") == 0)
        return cmd_status(argc, argv);
    if (strcmp(cmd, "stream") == 0)
        return cmd_stream(argc, argv);
    fprintf(stderr, "seqd: unknown command '%s'\n%s", cmd, usage_main);
    return EXIT_USAGE;
}
