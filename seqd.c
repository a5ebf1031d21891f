/* seqd.c — the one executable: `seqd serve` runs a member, `seqd fetch`
 * and `seqd status` are clients. This file parses the command line
 * (DESIGN.md §1, fixed: scripts depend on it) and wires the modules
 * together; it holds the only process-wide state (the member being run). */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <time.h>

#include <event2/event.h>

#include "net/addr.h"
#include "net/auth.h"
#include "client/client_admin.h"
#include "client/stream.h"
#include "client/token.h"
#include "core/member.h"
#include "net/frame.h"
#include "net/front_bin.h"
#include "net/front_http.h"
#include "core/statusfmt.h"
#include "net/sdnotify.h"
#include "proto.h"
#include "client/replace.h"
#include "quorum/epoch.h"
#include "storage/datadir.h"
#include "storage/log.h"
#include "storage/table.h"

/* From the VERSION file, through the Makefile. */
#ifndef SEQD_VERSION
#error "build with the Makefile: it defines SEQD_VERSION from VERSION"
#endif
#define DEFAULT_SERVERS "127.0.0.1:19001,127.0.0.1:19002,127.0.0.1:19003"

/* Exit codes: DESIGN.md §1. */
enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2 };

/* Every command fills the same record; each reads only its own fields, so
 * the defaults of all commands can live side by side. */
typedef struct opts {
    const char *listen, *data, *peers, *servers, *name, *secret_file, *http;
    const char *log_level, *log_format, *prefix, *client_token_file, *token_file;
    const char *value;   /* advance's VALUE, the second positional */
    const char *replaces;   /* serve --replaces OLD */
    bool force_replace;
    double exhaustion_alarm;
    bool insecure, json;
    const char *fsync;
    uint64_t count, round_ms, timeout_ms, buffer, interval_ms;
    bool range, help;
} opts;

static const opts opts_defaults = {.fsync = "always", .log_level = "info", .log_format = "text", .round_ms = 1000, .count = 1,
                                   .timeout_ms = 5000, .buffer = 1024};

/* getopt_long's `val` for each long option; above any char so that they
 * never clash with the short -h. */
enum {
    OPT_LISTEN = 256, OPT_DATA, OPT_PEERS, OPT_SERVERS, OPT_FSYNC, OPT_COUNT,
    OPT_RANGE, OPT_ROUND_TIMEOUT, OPT_BUFFER, OPT_INTERVAL, OPT_TIMEOUT, OPT_SECRET_FILE,
    OPT_INSECURE, OPT_HTTP, OPT_LOG_LEVEL, OPT_LOG_FORMAT, OPT_JSON, OPT_PREFIX,
    OPT_EXHAUSTION_ALARM, OPT_CLIENT_TOKEN_FILE, OPT_TOKEN_FILE, OPT_REPLACES, OPT_FORCE_REPLACE,
};

/* An option as getopt_long wants it, with the words `CMD --help` shows for
 * it, so that what is accepted and what is documented cannot drift. */
typedef struct cmd_opt {
    struct option lo;
    const char *arg;    /* shown after the flag, NULL for none */
    const char *help;   /* a '\n' continues under the same column */
    bool synopsis_only; /* `CMD --help` shows it in the synopsis only */
} cmd_opt;

typedef struct cmd_entry cmd_entry;
struct cmd_entry {
    const char *name;
    int (*run)(const opts *o, const cmd_entry *cmd);
    const char *summary;    /* its line in `seqd --help` */
    const char *synopsis;   /* after "usage: seqd " */
    const char *about;      /* between the synopsis and the options */
    const cmd_opt *options; /* ends with an all-zero entry */
    int help_col;           /* where option descriptions start */
    const char *footer;     /* after the options */
    bool takes_name;        /* one positional NAME */
    bool takes_value;       /* and a second one, VALUE */
};

#define SERVERS_HELP "members to ask (default: $SEQD_SERVERS, else " DEFAULT_SERVERS ")"
#define CMD_OPT(name, has_arg, val, arg, help) {{name, has_arg, NULL, val}, arg, help, false}

static const cmd_opt serve_options[] = {
    CMD_OPT("listen", required_argument, OPT_LISTEN, "HOST:PORT", "address for clients and peers"),
    CMD_OPT("data", required_argument, OPT_DATA, "DIR",
            "data directory (created if missing, locked while running)"),
    CMD_OPT("peers", required_argument, OPT_PEERS, "LIST", "the other members, comma-separated"),
    CMD_OPT("fsync", required_argument, OPT_FSYNC, "MODE",
            "always (default): every acknowledged ID is on disk;\nnever: for benchmarks only"),
    CMD_OPT("round-timeout", required_argument, OPT_ROUND_TIMEOUT, "MS",
            "R, how long a quorum round may take (default 1000)"),
    CMD_OPT("secret-file", required_argument, OPT_SECRET_FILE, "PATH",
            "the cluster secret (>= 32 bytes, mode 600): peers and\nadmin commands must prove they hold it"),
    CMD_OPT("insecure", no_argument, OPT_INSECURE, NULL,
            "without a secret, take peers and admin commands from\nbeyond loopback too (protected mode off)"),
    CMD_OPT("http", required_argument, OPT_HTTP, "HOST:PORT",
            "also serve HTTP there: /healthz, /readyz, /v1/status,\n/metrics (Prometheus)"),
    CMD_OPT("log-level", required_argument, OPT_LOG_LEVEL, "LEVEL",
            "error, warn, info (default) or debug"),
    CMD_OPT("log-format", required_argument, OPT_LOG_FORMAT, "FORMAT",
            "text (default) or json (one object per line)"),
    CMD_OPT("exhaustion-alarm", required_argument, OPT_EXHAUSTION_ALARM, "SHARE",
            "/metrics names the sequences past this share of 2^64\n(default 0.5)"),
    CMD_OPT("client-token-file", required_argument, OPT_CLIENT_TOKEN_FILE, "PATH",
            "clients must present this token (binary and HTTP\nBearer); default: none"),
    CMD_OPT("replaces", required_argument, OPT_REPLACES, "HOST:PORT",
            "start empty as the member that takes over the slot\nof a dead one (README: Replacing a member)"),
    CMD_OPT("force-replace", no_argument, OPT_FORCE_REPLACE, NULL,
            "with --replaces: even if the old member still looks\nalive (it is cut off by the epoch check)"),
    {{0}, 0, 0, 0},
};

#define TOKEN_OPT                                                                 \
    CMD_OPT("token-file", required_argument, OPT_TOKEN_FILE, "PATH",                 \
            "the client token, for members that require one\n"              \
            "(default: $SEQD_TOKEN_FILE)")

static const cmd_opt fetch_options[] = {
    CMD_OPT("servers", required_argument, OPT_SERVERS, "LIST", SERVERS_HELP),
    CMD_OPT("count", required_argument, OPT_COUNT, "N", "how many IDs, 1 to 1000000 (default 1)"),
    /* optional: "--range=anything" has always been accepted, the value ignored. */
    CMD_OPT("range", optional_argument, OPT_RANGE, NULL, "print FIRST LAST (inclusive) on one line instead"),
    CMD_OPT("timeout", required_argument, OPT_TIMEOUT, "MS", "deadline for the whole call (default 5000)"),
    TOKEN_OPT,
    {{0}, 0, 0, 0},
};

/* status documents --servers in its synopsis only, as it always has (the
 * manual page describes it). */
static const cmd_opt status_options[] = {
    {{"servers", required_argument, NULL, OPT_SERVERS}, "LIST", SERVERS_HELP, true},
    CMD_OPT("json", no_argument, OPT_JSON, NULL, "print one JSON document instead"),
    TOKEN_OPT,
    {{0}, 0, 0, 0},
};

static const cmd_opt init_options[] = {
    CMD_OPT("servers", required_argument, OPT_SERVERS, "LIST",
            "every member of the new cluster (default: $SEQD_SERVERS, else\n" DEFAULT_SERVERS ")"),
    CMD_OPT("timeout", required_argument, OPT_TIMEOUT, "MS", "per member and step (default 5000)"),
    CMD_OPT("secret-file", required_argument, OPT_SECRET_FILE, "PATH",
            "the cluster secret, when the members have one"),
    {{0}, 0, 0, 0},
};

static const cmd_opt advance_options[] = {
    CMD_OPT("servers", required_argument, OPT_SERVERS, "LIST", SERVERS_HELP),
    CMD_OPT("secret-file", required_argument, OPT_SECRET_FILE, "PATH",
            "the cluster secret, when the members have one"),
    CMD_OPT("timeout", required_argument, OPT_TIMEOUT, "MS", "deadline for the whole call (default 5000)"),
    TOKEN_OPT,
    {{0}, 0, 0, 0},
};

static const cmd_opt list_options[] = {
    CMD_OPT("servers", required_argument, OPT_SERVERS, "LIST", SERVERS_HELP),
    CMD_OPT("prefix", required_argument, OPT_PREFIX, "P", "only the names that start with P"),
    CMD_OPT("timeout", required_argument, OPT_TIMEOUT, "MS", "per member and chunk (default 5000)"),
    TOKEN_OPT,
    {{0}, 0, 0, 0},
};

static const cmd_opt stream_options[] = {
    CMD_OPT("servers", required_argument, OPT_SERVERS, "LIST", SERVERS_HELP),
    CMD_OPT("buffer", required_argument, OPT_BUFFER, "N",
            "IDs per range, 0 to 1000000 (default 1024; 0 = a fetch per ID)"),
    CMD_OPT("interval", required_argument, OPT_INTERVAL, "MS", "pause between IDs (default 0)"),
    TOKEN_OPT,
    {{0}, 0, 0, 0},
};

static int cmd_serve(const opts *o, const cmd_entry *cmd);
static int cmd_init(const opts *o, const cmd_entry *cmd);
static int cmd_fetch(const opts *o, const cmd_entry *cmd);
static int cmd_status(const opts *o, const cmd_entry *cmd);
static int cmd_stream(const opts *o, const cmd_entry *cmd);
static int cmd_advance(const opts *o, const cmd_entry *cmd);
static int cmd_list(const opts *o, const cmd_entry *cmd);
static int cmd_admin_token(const opts *o, const cmd_entry *cmd);

static const cmd_opt admin_token_options[] = {
    CMD_OPT("secret-file", required_argument, OPT_SECRET_FILE, "PATH", "the cluster secret"),
    {{0}, 0, 0, 0},
};

static const cmd_entry commands[] = {
    {"serve", cmd_serve, "run a cluster member",
     "serve --listen HOST:PORT --data DIR [--peers HOST:PORT,...]\n"
     "                  [--fsync always|never] [--round-timeout MS]\n"
     "                  [--secret-file PATH | --insecure] [--http HOST:PORT]\n"
     "                  [--log-level LEVEL] [--log-format text|json]\n"
     "                  [--exhaustion-alarm SHARE] [--client-token-file PATH]\n"
     "                  [--replaces HOST:PORT [--force-replace]]\n",
     "Runs one member. The member set is --listen plus --peers (the other members);\n"
     "every member must be given the same set and the same --round-timeout.\n"
     "It logs to stderr; SIGHUP is logged and ignored (there is no file to reopen).\n"
     "SIGUSR2 compacts the log (at the next write): a new segment starts with the\n"
     "whole table, and the old ones go.\n",
     serve_options, 23, NULL, false, false},
    {"init", cmd_init, "create a new cluster, once",
     "init [--servers HOST:PORT,...] [--secret-file PATH] [--timeout MS]\n",
     "Creates a new cluster of the members named, which must all be running with\n"
     "empty, never-initialized data directories and the same member set. Running\n"
     "it again on the same, still whole cluster prints \"already initialized\"; an\n"
     "init that was interrupted is finished by running it again. A member that\n"
     "lost its data recovers from its peers by itself: never run init for that.\n",
     init_options, 22,
     "Exit status: 0 initialized (or already), 1 refused or a member down (the\n"
     "message names it), 2 usage error.\n",
     false, false},
    {"fetch", cmd_fetch, "allocate IDs of a sequence",
     "fetch [--servers HOST:PORT,...] [--count N] [--range] [--timeout MS]\n"
     "                  [--token-file PATH] NAME\n",
     "Allocates N consecutive IDs of sequence NAME and prints them, one per line.\n",
     fetch_options, 18,
     "NAME is 1 to 128 bytes of [A-Za-z0-9._-].\n"
     "Exit status: 0 ok, 1 the cluster could not serve, 2 usage error.\n",
     true, false},
    {"status", cmd_status, "show every member's state",
     "status [--servers HOST:PORT,...] [--json] [--token-file PATH]\n",
     "Prints one line per member: address, ready / recovering / down, counters;\n"
     "with --json, one document {\"members\":[{\"address\":...,\"state\":...,\n"
     "\"counters\":{...}},...],\"ready\":BOOL}. Exits 0 only when every member is ready.\n",
     status_options, 12, NULL, false, false},
    {"stream", cmd_stream, "print IDs from a buffered stream until interrupted",
     "stream [--servers HOST:PORT,...] [--buffer N] [--interval MS]\n"
     "                  [--token-file PATH] NAME\n",
     "Prints IDs of sequence NAME from a buffered stream, one per line, until\n"
     "interrupted (SIGINT, or the reader going away: `seqd stream x | head -5`).\n"
     "The stream fetches ranges of N IDs in the background, refilling when half\n"
     "is used; it keeps going while members die and come back as long as a\n"
     "quorum is up, and says on stderr when it has to wait for the cluster.\n",
     stream_options, 18, NULL, true, false},
    {"advance", cmd_advance, "raise a sequence's floor (moving from another system)",
     "advance [--servers HOST:PORT,...] [--secret-file PATH] [--timeout MS]\n"
     "                  [--token-file PATH] NAME VALUE\n",
     "Makes every ID of sequence NAME handed out after it returns be >= VALUE, by a\n"
     "quorum round (the floor survives every crash the guarantees cover). It never\n"
     "lowers anything: when NAME is already past VALUE it succeeds and changes\n"
     "nothing but one ID. Prints `NAME NEXT`. An admin command: with a cluster\n"
     "secret it needs --secret-file; without one, members take it from loopback\n"
     "only (protected mode, as init).\n",
     advance_options, 22,
     "VALUE is 1 to 18446744073709551615.\n"
     "Exit status: 0 ok (also when NAME was past VALUE), 1 the cluster could not\n"
     "serve or refused (no quorum, timeout, not authenticated), 2 usage error.\n",
     true, true},
    {"list", cmd_list, "print every sequence and its NEXT",
     "list [--servers HOST:PORT,...] [--prefix P] [--timeout MS] [--token-file PATH]\n",
     "Prints `NAME NEXT` per sequence, sorted by name, NEXT being the lowest ID not\n"
     "yet handed out as a read quorum sees it: the largest a majority of the members\n"
     "hold. Each member sends its table in chunks of at most one frame.\n",
     list_options, 18,
     "Exit status: 0 ok, 1 fewer than a quorum of members answered, 2 usage error.\n",
     false, false},
    {"admin-token", cmd_admin_token, "print the HTTP API's admin bearer token",
     "admin-token --secret-file PATH\n",
     "Prints HMAC-SHA256(secret, \"admin\") in hex: the bearer token of the HTTP\n"
     "advance (POST /v1/sequences/NAME/advance) on a cluster with a secret. It is\n"
     "derived from the secret and cannot give the secret back.\n",
     admin_token_options, 22, "Exit status: 0 ok, 1 the secret cannot be read, 2 usage error.\n",
     false, false},
};
#define NCOMMANDS (sizeof commands / sizeof commands[0])

/* ---- usage texts, generated from the table ------------------------------ */

static void print_main_usage(FILE *f)
{
    fputs("usage: seqd COMMAND [OPTIONS]\n"
          "\n"
          "Unique, increasing 64-bit IDs from a leaderless cluster.\n"
          "\n"
          "commands:\n", f);
    for (size_t i = 0; i < NCOMMANDS; i++)
        fprintf(f, "  %-11s %s\n", commands[i].name, commands[i].summary);
    fputs("\n`seqd COMMAND --help` describes a command; `seqd --version` prints the version.\n", f);
}

static void print_opt_help(FILE *f, const cmd_opt *co, int col)
{
    int len = fprintf(f, "  --%s%s%s", co->lo.name, co->arg ? " " : "", co->arg ? co->arg : "");
    fprintf(f, "%*s", len < col ? col - len : 1, "");
    for (const char *p = co->help; *p; p++) {
        fputc(*p, f);
        if (*p == '\n')
            fprintf(f, "%*s", col, "");
    }
    fputc('\n', f);
}

static void print_cmd_usage(FILE *f, const cmd_entry *cmd)
{
    fprintf(f, "usage: seqd %s\n%s", cmd->synopsis, cmd->about);
    for (const cmd_opt *co = cmd->options; co->lo.name; co++)
        if (!co->synopsis_only)
            print_opt_help(f, co, cmd->help_col);
    if (cmd->footer)
        fputs(cmd->footer, f);
}

/* ---- the manual page, generated from the same table ---------------------- */

/* `seqd --man` prints seqd(1) in roff; the Makefile builds seqd.1 with it,
 * so the page lists exactly the commands and options that are parsed. */

/* Text as roff: '-' and '\' escaped, a line that would start with '.' or
 * '\'' guarded, runs of blanks (the table's column padding) made one,
 * `quotes` made typographic. join: a '\n' becomes a blank too. */
static void man_text(FILE *f, const char *s, bool join)
{
    bool line_start = true, blank = false, open = true;
    for (; *s; s++) {
        char c = *s == '\n' && join ? ' ' : *s;
        if (c == ' ' && (blank || line_start))
            continue;
        blank = c == ' ';
        if (line_start && (c == '.' || c == '\''))
            fputs("\\&", f);
        line_start = c == '\n';
        if (c == '-')
            fputs("\\-", f);
        else if (c == '\\')
            fputs("\\e", f);
        else if (c == '`')
            fputs((open = !open) ? "\\(rq" : "\\(lq", f);
        else
            fputc(c, f);
    }
}

static void man_command(FILE *f, const cmd_entry *cmd)
{
    fputs(".SS \"seqd ", f);
    man_text(f, cmd->name, true);
    fputs("\"\n", f);
    fputc(toupper((unsigned char)cmd->summary[0]), f);   /* a sentence of its own */
    man_text(f, cmd->summary + 1, true);
    fputs(".\n", f);
    man_text(f, cmd->about, false);
    for (const cmd_opt *co = cmd->options; co->lo.name; co++) {
        fputs(".TP\n\\fB\\-\\-", f);
        man_text(f, co->lo.name, true);
        fputs("\\fR", f);
        if (co->arg) {
            fputs(" \\fI", f);
            man_text(f, co->arg, true);
            fputs("\\fR", f);
        }
        fputc('\n', f);
        man_text(f, co->help, true);
        fputc('\n', f);
    }
    if (cmd->footer) {
        fputs(".PP\n", f);
        man_text(f, cmd->footer, false);
    }
}

/* What the table does not hold: exit status, environment, files, examples. */
static const char man_tail[] =
    ".SH \"EXIT STATUS\"\n"
    ".TP\n.B 0\nsuccess (for \\fBstatus\\fR: every member is ready; for \\fBserve\\fR: a\n"
    "graceful stop after SIGTERM or SIGINT).\n"
    ".TP\n.B 1\nthe cluster could not serve (no quorum, timeout, unreachable, exhausted),\n"
    "or \\fBserve\\fR stopped for a fatal reason (a failed fsync, a data directory\n"
    "that is locked or belongs to another member set); one line on stderr says why.\n"
    ".TP\n.B 2\nusage error, including a bad sequence name or count, which \\fBfetch\\fR\n"
    "refuses before connecting.\n"
    ".SH ENVIRONMENT\n"
    ".TP\n.B SEQD_SERVERS\nthe member list of the client commands when \\fB\\-\\-servers\\fR is absent.\n"
    ".TP\n.B NOTIFY_SOCKET\nset by systemd for a \\fBType=notify\\fR service: \\fBserve\\fR sends\n"
    "STATUS= while it recovers, READY=1 once the member serves, STOPPING=1 when it stops.\n"
    ".TP\n.BR SEQD_TEST_FAULTS \", \" SEQD_TEST_PEER_ROUTE\n"
    "fault injection for the test suite; never set them in production.\n"
    ".SH FILES\n"
    ".TP\n.I /var/lib/seqd\nthe data directory of the packaged service (\\fB\\-\\-data\\fR): the log, the\n"
    "member's identity and a lock; owned by the \\fBseqd\\fR user.\n"
    ".TP\n.I /etc/default/seqd\n\\fBSEQD_OPTS\\fR, the flags \\fBseqd.service\\fR gives \\fBseqd serve\\fR.\n"
    ".TP\n.I /etc/seqd/secret\nwhere the packaged configuration expects the cluster secret\n"
    "(\\fB\\-\\-secret\\-file\\fR; mode 600, owned by \\fBseqd\\fR).\n"
    ".TP\n.I seqd.service\nthe systemd unit that runs one member as the \\fBseqd\\fR user.\n"
    ".SH EXAMPLES\n"
    "Three members, then a new cluster, then IDs:\n"
    ".PP\n.nf\n.RS\n"
    "a$ seqd serve \\-\\-listen a:7000 \\-\\-data /var/lib/seqd \\e\n"
    "      \\-\\-peers b:7000,c:7000 \\-\\-secret\\-file /etc/seqd/secret\n"
    "  (the same on b and c, each with the two others as \\-\\-peers)\n"
    "$ export SEQD_SERVERS=a:7000,b:7000,c:7000\n"
    "$ seqd init \\-\\-secret\\-file /etc/seqd/secret\n"
    "$ seqd status\n"
    "$ seqd fetch \\-\\-count 3 orders\n"
    "1\n2\n3\n"
    "$ seqd fetch \\-\\-range \\-\\-count 1000 orders\n"
    "4 1003\n"
    "$ seqd stream orders | head \\-5\n"
    ".RE\n.fi\n"
    ".PP\n"
    "Under systemd (the package, or \\fBmake install\\fR): put this member's flags in\n"
    "\\fI/etc/default/seqd\\fR, then start it; \\fBsystemctl status seqd\\fR shows what a\n"
    "member that is not ready yet waits for.\n"
    ".PP\n.nf\n.RS\n"
    "# systemctl enable \\-\\-now \\-\\-no\\-block seqd\n"
    "# systemctl status seqd\n"
    ".RE\n.fi\n"
    ".SH \"SEE ALSO\"\n"
    ".BR systemctl (1),\n"
    ".BR systemd.service (5)\n";

static void print_man(FILE *f)
{
    fputs(".TH SEQD 1 \"\" \"seqd " SEQD_VERSION "\" \"User Commands\"\n"
          ".SH NAME\n"
          "seqd \\- unique, increasing 64\\-bit IDs from a leaderless cluster\n"
          ".SH SYNOPSIS\n", f);
    for (size_t i = 0; i < NCOMMANDS; i++) {
        fputs(".PP\n\\fBseqd\\fR ", f);
        man_text(f, commands[i].synopsis, true);
        fputc('\n', f);
    }
    fputs(".PP\n\\fBseqd \\-\\-help\\fR | \\fB\\-\\-version\\fR | \\fB\\-\\-man\\fR | "
          "\\fBseqd\\fR \\fICOMMAND\\fR \\fB\\-\\-help\\fR\n"
          ".SH DESCRIPTION\n"
          "seqd hands out unique, increasing 64\\-bit IDs from named sequences, served by\n"
          "a small cluster with no leader (3 or 5 members is the normal case). Any member\n"
          "answers any client; every range of IDs is committed by a quorum of members,\n"
          "each of which makes it durable before it votes, so no ID is ever handed out\n"
          "twice. A sequence name is 1 to 128 bytes of [A\\-Za\\-z0\\-9._\\-]; a fresh\n"
          "sequence starts at 1.\n"
          ".PP\n"
          "\\fB\\-\\-help\\fR (or \\fB\\-h\\fR) lists the commands, \\fBseqd\\fR \\fICOMMAND\\fR\n"
          "\\fB\\-\\-help\\fR describes one, \\fB\\-\\-version\\fR prints the version and the\n"
          "protocol version, and \\fB\\-\\-man\\fR prints this page (roff).\n"
          ".SH COMMANDS\n", f);
    for (size_t i = 0; i < NCOMMANDS; i++)
        man_command(f, &commands[i]);
    fputs(man_tail, f);
}

static int usage_error(const cmd_entry *cmd, const char *fmt, const char *arg)
{
    fprintf(stderr, "seqd: ");
    fprintf(stderr, fmt, arg);
    fputc('\n', stderr);
    print_cmd_usage(stderr, cmd);
    return EXIT_USAGE;
}

/* ---- option parsing ------------------------------------------------------ */

/* Strict decimal: the whole string, no sign, no overflow. */
static bool parse_u64(const char *s, uint64_t max, uint64_t *out)
{
    if (!s || !*s || strspn(s, "0123456789") != strlen(s) || strlen(s) > 20)
        return false;
    errno = 0;
    unsigned long long v = strtoull(s, NULL, 10);
    if (errno || v > max)
        return false;
    *out = v;
    return true;
}

/* A number flag in [min, max]; the message names the range users may give. */
static int set_u64(const cmd_entry *cmd, const char *v, uint64_t min, uint64_t max, uint64_t *out,
                   const char *bad)
{
    if (!parse_u64(v, max, out) || *out < min)
        return usage_error(cmd, bad, v);
    return EXIT_OK;
}

/* The range checks live here, next to their messages, so that a bad value
 * is refused at the flag that carries it, before anything else happens. */
static int set_opt(const cmd_entry *cmd, opts *o, int key, const char *v)
{
    switch (key) {
    case OPT_LISTEN: o->listen = v; break;
    case OPT_DATA: o->data = v; break;
    case OPT_PEERS: o->peers = v; break;
    case OPT_SERVERS: o->servers = v; break;
    case OPT_FSYNC: o->fsync = v; break;
    case OPT_SECRET_FILE: o->secret_file = v; break;
    case OPT_INSECURE: o->insecure = true; break;
    case OPT_HTTP: o->http = v; break;
    case OPT_LOG_LEVEL: o->log_level = v; break;
    case OPT_LOG_FORMAT: o->log_format = v; break;
    case OPT_JSON: o->json = true; break;
    case OPT_PREFIX: o->prefix = v; break;
    case OPT_CLIENT_TOKEN_FILE: o->client_token_file = v; break;
    case OPT_TOKEN_FILE: o->token_file = v; break;
    case OPT_REPLACES: o->replaces = v; break;
    case OPT_FORCE_REPLACE: o->force_replace = true; break;
    case OPT_EXHAUSTION_ALARM: {
        char *end;
        errno = 0;
        double d = strtod(v, &end);
        if (errno || end == v || *end || !(d > 0 && d <= 1))
            return usage_error(cmd, "bad --exhaustion-alarm '%s': want a share in (0, 1], e.g. 0.5", v);
        o->exhaustion_alarm = d;
        break;
    }
    case OPT_RANGE: o->range = true; break;
    case OPT_COUNT:
        return set_u64(cmd, v, 1, SEQD_COUNT_MAX, &o->count, "bad --count '%s': want 1 to 1000000");
    case OPT_ROUND_TIMEOUT:
        return set_u64(cmd, v, 10, 600000, &o->round_ms,
                       "bad --round-timeout '%s': want 10 to 600000 ms");
    case OPT_BUFFER:
        return set_u64(cmd, v, 0, SEQD_COUNT_MAX, &o->buffer, "bad --buffer '%s': want 0 to 1000000");
    case OPT_INTERVAL:
        return set_u64(cmd, v, 0, 3600000, &o->interval_ms, "bad --interval '%s': want 0 to 3600000 ms");
    case OPT_TIMEOUT:
        return set_u64(cmd, v, 1, 3600000, &o->timeout_ms, "bad --timeout '%s': want 1 to 3600000 ms");
    }
    return EXIT_OK;
}

static int set_name(const cmd_entry *cmd, opts *o, const char *arg)
{
    if (o->name && cmd->takes_value && !o->value) {
        o->value = arg;
        return EXIT_OK;
    }
    if (o->name || !cmd->takes_name)
        return usage_error(cmd, "unexpected argument '%s'", arg);
    o->name = arg;
    return EXIT_OK;
}

/* The token getopt_long just looked at, cut at '=', for error messages. */
static const char *opt_key(const char *tok, char *buf, size_t len)
{
    size_t klen = strcspn(tok, "=");
    snprintf(buf, len, "%.*s", (int)(klen < len ? klen : len - 1), tok);
    return buf;
}

/* getopt_long would take "--lis" for "--listen"; scripts rely on the exact
 * names only, and a prefix accepted today would be a name frozen forever. */
static bool exact_long(const char *tok, const char *name)
{
    size_t n = strlen(name);
    return strncmp(tok, "--", 2) == 0 && strncmp(tok + 2, name, n) == 0 &&
           (tok[2 + n] == '\0' || tok[2 + n] == '=');
}

#define LONGOPTS_MAX 16

/* A sequence name may start with '-' ("-x" is valid), and such names have
 * always been taken as NAME: getopt_long would see short options there. */
static bool dash_name(const char *tok)
{
    return tok[0] == '-' && tok[1] != '-' && tok[1] != '\0' && strcmp(tok, "-h") != 0;
}

/* argv[0] is the command. The leading '-' keeps arguments in order (errors
 * are reported at the first bad one, and NAME may come anywhere); the ':'
 * tells a missing value apart from an unknown option. */
static int parse_opts(const cmd_entry *cmd, int argc, char **argv, opts *o)
{
    struct option lo[LONGOPTS_MAX + 2];
    int n = 0;
    for (const cmd_opt *co = cmd->options; co->lo.name && n < LONGOPTS_MAX; co++)
        lo[n++] = co->lo;
    lo[n++] = (struct option){"help", no_argument, NULL, 'h'};
    lo[n] = (struct option){0};

    opterr = 0;
    optind = 1;
    int rc = EXIT_OK;
    while (rc == EXIT_OK) {
        int at = optind, idx = -1;
        int c = getopt_long(argc, argv, "-:h", lo, &idx);
        char key[64];
        if (c == -1) {
            /* "--" was never an end-of-options marker here. */
            if (at < optind && strcmp(argv[at], "--") == 0)
                return usage_error(cmd, "unknown option '%s'", "--");
            break;
        }
        const char *tok = argv[at];
        if (c != 1 && dash_name(tok)) {
            while (optind == at)   /* the rest of "-xyz", one letter per call */
                getopt_long(argc, argv, "-:h", lo, &idx);
            rc = set_name(cmd, o, tok);
            continue;
        }
        if (idx >= 0 && !exact_long(tok, lo[idx].name))
            return usage_error(cmd, "unknown option '%s'", opt_key(tok, key, sizeof key));
        switch (c) {
        case 1:
            rc = set_name(cmd, o, optarg);
            break;
        case 'h':
            o->help = true;
            break;
        case ':':
            rc = usage_error(cmd, "option %s needs a value", opt_key(tok, key, sizeof key));
            break;
        case '?':
            rc = usage_error(cmd, "unknown option '%s'", opt_key(tok, key, sizeof key));
            break;
        default:
            rc = set_opt(cmd, o, c, optarg);
        }
    }
    return rc;
}

/* ---- serve -------------------------------------------------------------- */

/* The member being run and its front end, for the signal handler. */
static member *running;
static front_bin *running_front;
static front_http *running_http;

/* The service manager's view (net/sdnotify.h): a failure is logged and
 * changes nothing else, the member serves the same unsupervised. */
static void serve_notify(const char *state)
{
    char err[256];
    if (sdnotify_send(state, err, sizeof err) < 0 && running)
        member_log(running, MLOG_WARN, "%s", err);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)sig;
    (void)what;
    (void)arg;
    if (running && !member_stopping(running))
        serve_notify("STOPPING=1\nSTATUS=stopping: finishing requests, making the log durable");
    if (running_front)
        front_bin_stop(running_front);   /* no new connections */
    if (running_http)
        front_http_stop(running_http);
    if (running)
        member_stop(running);
}

/* SIGHUP, which daemons take as "reopen your logs": seqd logs to stderr
 * (the service manager's journal), so there is nothing to reopen; before
 * this handler the default action killed the member. */
static void on_sighup(evutil_socket_t sig, short what, void *arg)
{
    (void)sig;
    (void)what;
    (void)arg;
    if (running)
        member_log(running, MLOG_INFO, "SIGHUP: nothing to reopen, logs go to stderr");
}

/* SIGUSR2: compact the log at the next append (storage/log.h), e.g. to
 * measure what a compaction costs the fetches (bench/bench_scale.c). */
static void on_sigusr2(evutil_socket_t sig, short what, void *arg)
{
    (void)sig;
    (void)what;
    if (!running)
        return;
    log_compact(arg);
    member_log(running, MLOG_INFO, "SIGUSR2: compacting the log at the next write");
}

/* The one place that splits and checks a HOST:PORT list, so that moving
 * that parsing into its own module touches nothing else here. Tokens point
 * into buf. */
static int parse_addr_list(char *buf, char **members, int *n, char *err, size_t errlen)
{
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
        char host[SEQD_ADDR_MAX + 1];
        uint16_t port;
        if (addr_split(tok, strlen(tok), host, sizeof host, &port) < 0) {
            snprintf(err, errlen, "bad member address '%s' (want HOST:PORT)", tok);
            return -1;
        }
        members[(*n)++] = tok;
    }
    return 0;
}

/* What `serve` runs with once its flags are checked. */
typedef struct serve_plan {
    char *members[SEQD_MAX_MEMBERS];
    char joined[DATADIR_MEMBERS_MAX];
    int n, self;
    uint64_t set_digest;
    enum recovery_mode mode;   /* IDENTITY, PREPARED or neither */
    struct seqd_cid cid;
    const auth_secret *secret;   /* NULL: protected mode */
    const char *client_token;    /* --client-token-file's, NULL: none */
    /* The set by slot (quorum/epoch.h), from IDENTITY or a --replaces
     * exchange; without it the member runs at epoch 0 of `members`, and
     * `self` indexes them. */
    bool have_set;
    q_set set;
    q_switch sw, prev_sw;
    bool has_prev;
    const char *listen;
} serve_plan;

/* The member set is --listen plus --peers; its digest is compared in peer
 * hellos and init's messages, so every member given the same set agrees. */
static int member_set(const opts *o, serve_plan *p, char *err, size_t errlen)
{
    static char buf[DATADIR_MEMBERS_MAX * 2];
    snprintf(buf, sizeof buf, "%s%s%s", o->listen, o->peers && *o->peers ? "," : "",
             o->peers ? o->peers : "");
    if (parse_addr_list(buf, p->members, &p->n, err, errlen) < 0)
        return -1;
    p->set_digest = datadir_set_digest(p->members, p->n, p->joined, sizeof p->joined);
    p->self = -1;
    for (int i = 0; i < p->n; i++)
        if (strcmp(p->members[i], o->listen) == 0)
            p->self = i;
    return 0;
}

static int serve_validate(const opts *o, const cmd_entry *cmd)
{
    if (!o->listen || !o->data)
        return usage_error(cmd, "%s", "--listen and --data are required");
    if (strcmp(o->fsync, "always") != 0 && strcmp(o->fsync, "never") != 0)
        return usage_error(cmd, "bad --fsync '%s': want always or never", o->fsync);
    if (o->secret_file && o->insecure)
        return usage_error(cmd, "%s", "--secret-file and --insecure exclude each other");
    if (member_log_level_parse(o->log_level) < 0)
        return usage_error(cmd, "bad --log-level '%s': want error, warn, info or debug", o->log_level);
    if (strcmp(o->log_format, "text") != 0 && strcmp(o->log_format, "json") != 0)
        return usage_error(cmd, "bad --log-format '%s': want text or json", o->log_format);
    char host[SEQD_ADDR_MAX + 1];
    uint16_t port;
    if (o->http && addr_split(o->http, strlen(o->http), host, sizeof host, &port) < 0)
        return usage_error(cmd, "bad --http '%s' (want HOST:PORT)", o->http);
    if (o->replaces && addr_split(o->replaces, strlen(o->replaces), host, sizeof host, &port) < 0)
        return usage_error(cmd, "bad --replaces '%s' (want HOST:PORT)", o->replaces);
    if (o->replaces && strcmp(o->replaces, o->listen) == 0)
        return usage_error(cmd, "%s", "--replaces names the member this host replaces, not itself");
    if (o->force_replace && !o->replaces)
        return usage_error(cmd, "%s", "--force-replace goes with --replaces");
    return EXIT_OK;
}

/* The cluster secret, or protected mode (DESIGN.md §3, Redis's model):
 * without a secret every member takes peer hellos only over loopback, so a
 * member set beyond loopback needs the secret, or --insecure to say that
 * the network is trusted. */
static auth_secret serve_secret;

static int serve_load_secret(const opts *o, const serve_plan *p, const cmd_entry *cmd,
                             const auth_secret **out)
{
    char err[512];
    *out = NULL;
    if (o->secret_file) {
        if (auth_load_secret(o->secret_file, &serve_secret, err, sizeof err) < 0) {
            fprintf(stderr, "seqd: %s\n", err);
            return EXIT_FAIL;
        }
        *out = &serve_secret;
        return EXIT_OK;
    }
    for (int i = 0; i < p->n && !o->insecure; i++)
        if (!auth_addr_loopback(p->members[i]))
            return usage_error(cmd, "refusing to start in protected mode: %s is not a loopback "
                                    "address; give every member --secret-file (or --insecure "
                                    "on a trusted network)", p->members[i]);
    /* The HTTP surface only reads today, but it tells anyone who can reach
     * it the cluster's shape and load: beyond loopback, only when the
     * operator said the network is trusted or the cluster has a secret. */
    if (o->http && !o->insecure && !auth_addr_loopback(o->http))
        return usage_error(cmd, "refusing --http %s in protected mode: not a loopback address; "
                                "give --secret-file (or --insecure on a trusted network)", o->http);
    return EXIT_OK;
}

/* A set's addresses sorted and comma-joined: what the flags name. */
static void sorted_join(const q_set *set, char *out, size_t outlen)
{
    char *v[SEQD_MAX_MEMBERS];
    q_set copy = *set;
    for (int i = 0; i < copy.n; i++)
        v[i] = copy.addr[i];
    datadir_set_digest(v, copy.n, out, outlen);
}

/* An initialized member runs with the set its IDENTITY records (DESIGN.md
 * §6: the data directory is the truth). Its flags may name that set or
 * the one before the switch that led to it (an operator need not edit the
 * flags of every member when one is replaced); anything else is refused. */
static int serve_check_set(const opts *o, serve_plan *p, const datadir_identity *id)
{
    q_set rec, prev;
    char sorted[DATADIR_MEMBERS_MAX];
    if (replace_parse_set(id->epoch, id->set_digest, id->members, strlen(id->members), &rec) < 0) {
        fprintf(stderr, "seqd: %s/IDENTITY: its member list does not match its digest\n", o->data);
        return EXIT_FAIL;
    }
    q_switch sw = {.epoch = id->epoch - 1, .slot = id->sw_slot, .old_inc = id->sw_old_inc};
    snprintf(sw.old_addr, sizeof sw.old_addr, "%s", id->sw_old);
    snprintf(sw.new_addr, sizeof sw.new_addr, "%s", id->sw_new);
    sorted_join(&rec, sorted, sizeof sorted);
    bool same = strcmp(sorted, p->joined) == 0, before = false;
    if (!same && id->has_switch && epoch_revert(&rec, &sw, &prev) == 0) {
        char psorted[DATADIR_MEMBERS_MAX];
        sorted_join(&prev, psorted, sizeof psorted);
        before = strcmp(psorted, p->joined) == 0;
    }
    if (!same && !before) {
        fprintf(stderr, "seqd: refusing to start: %s belongs to the cluster of members %s (epoch "
                        "%llu), but --listen/--peers name %s\n",
                o->data, id->members, (unsigned long long)id->epoch, p->joined);
        return EXIT_FAIL;
    }
    int self = epoch_slot(&rec, o->listen, strlen(o->listen));
    if (self < 0) {
        fprintf(stderr, "seqd: refusing to start: %s belongs to the members %s (epoch %llu), which "
                        "do not include --listen %s\n",
                o->data, id->members, (unsigned long long)id->epoch, o->listen);
        return EXIT_FAIL;
    }
    if (before)
        fprintf(stderr, "seqd: note: --peers name the members before epoch %llu (%s replaced by %s); "
                        "running with the set the data directory records: %s\n",
                (unsigned long long)id->epoch, sw.old_addr, sw.new_addr, id->members);
    p->cid = id->cid;
    p->have_set = true;
    p->set = rec;
    p->sw = sw;
    if (id->has_prev) {
        p->has_prev = true;
        p->prev_sw = (q_switch){.epoch = id->epoch - 2, .slot = id->prev_slot,
                                .old_inc = id->prev_old_inc};
        snprintf(p->prev_sw.old_addr, sizeof p->prev_sw.old_addr, "%s", id->prev_old);
        snprintf(p->prev_sw.new_addr, sizeof p->prev_sw.new_addr, "%s", id->prev_new);
    }
    p->n = rec.n;
    p->self = self;
    return EXIT_OK;
}

static void serve_say(void *arg, const char *line)
{
    fprintf(stderr, "seqd[%s]: --replaces: %s\n", (const char *)arg, line);
}

/* `--replaces OLD` on an empty directory: the switch first (client/replace.h);
 * once it completed, the member starts empty in OLD's slot at the new epoch
 * and recovers (waits 2R, reads N-Q+1 other members with state). */
static int serve_replace(const opts *o, serve_plan *p, const table *t)
{
    if (p->have_set && epoch_slot(&p->set, o->listen, strlen(o->listen)) >= 0) {
        fprintf(stderr, "seqd: --replaces %s: this data directory is the member of slot %d since "
                        "epoch %llu already; starting as it\n",
                o->replaces, p->self, (unsigned long long)p->set.epoch);
        return EXIT_OK;
    }
    if (p->mode != RECOVERY_EMPTY || table_count(t) > 0) {
        fprintf(stderr, "seqd: --replaces needs an empty data directory (%s holds a cluster's data)\n",
                o->data);
        return EXIT_FAIL;
    }
    char *peers[SEQD_MAX_MEMBERS];
    int np = 0;
    for (int i = 0; i < p->n; i++)
        if (strcmp(p->members[i], o->listen) != 0 && strcmp(p->members[i], o->replaces) != 0)
            peers[np++] = p->members[i];
    replace_req rq = {.self = o->listen, .old = o->replaces, .peers = peers, .npeers = np,
                      .secret = p->secret, .force = o->force_replace, .timeout_ms = 1000,
                      .say = serve_say, .say_arg = (void *)o->listen};
    char err[1024];
    if (client_replace(&rq, &p->set, &p->sw, err, sizeof err) < 0) {
        fprintf(stderr, "seqd: --replaces %s: %s\n", o->replaces, err);
        return EXIT_FAIL;
    }
    p->have_set = true;
    p->n = p->set.n;
    p->self = p->sw.slot;
    return EXIT_OK;
}

/* A member without an identity (it lost its data) asks its peers once
 * whether the cluster moved on to a later epoch by a replacement; its
 * flags may name the set before it (client/replace.h). It records nothing:
 * its recovery writes the identity once it has state. */
static void serve_learn_set(const opts *o, serve_plan *p)
{
    char *peers[SEQD_MAX_MEMBERS];
    int np = 0;
    for (int i = 0; i < p->n; i++)
        if (strcmp(p->members[i], o->listen) != 0)
            peers[np++] = p->members[i];
    replace_req rq = {.self = o->listen, .peers = peers, .npeers = np, .secret = p->secret,
                      .timeout_ms = 250};
    q_set set;
    q_switch sw;
    if (client_learn_set(&rq, &set, &sw) != 1)
        return;
    char sorted[DATADIR_MEMBERS_MAX], prev_sorted[DATADIR_MEMBERS_MAX] = "";
    q_set prev;
    sorted_join(&set, sorted, sizeof sorted);
    if (epoch_revert(&set, &sw, &prev) == 0)
        sorted_join(&prev, prev_sorted, sizeof prev_sorted);
    if (strcmp(sorted, p->joined) != 0 && strcmp(prev_sorted, p->joined) != 0) {
        fprintf(stderr, "seqd: note: a peer runs with members %s at epoch %llu, which --peers do not "
                        "name; starting with the flags' set\n", sorted, (unsigned long long)set.epoch);
        return;
    }
    fprintf(stderr, "seqd: no identity here; the cluster is at epoch %llu (%s replaced by %s): "
                    "recovering as a member of it\n", (unsigned long long)set.epoch, sw.old_addr,
            sw.new_addr);
    p->have_set = true;
    p->set = set;
    p->sw = sw;
    p->n = set.n;
    p->self = epoch_slot(&set, o->listen, strlen(o->listen));
}

/* Locks the data directory before reading it, so that a second member on
 * the same directory is refused before it can disturb the first; then
 * refuses a directory recorded for another member set. */
static int serve_open_data(const opts *o, serve_plan *p)
{
    char err[512];
    if (datadir_lock(o->data, err, sizeof err) < 0) {
        fprintf(stderr, "seqd: %s\n", err);
        return EXIT_FAIL;
    }
    datadir_identity id;
    int have = datadir_read_identity(o->data, &id, err, sizeof err);
    p->mode = RECOVERY_INITIALIZED;
    if (have == 0) {
        have = datadir_read_prepared(o->data, &id, err, sizeof err);
        p->mode = RECOVERY_PREPARED;
    }
    if (have < 0) {
        fprintf(stderr, "seqd: %s\n", err);
        return EXIT_FAIL;
    }
    if (have && p->mode == RECOVERY_INITIALIZED)
        return serve_check_set(o, p, &id);
    if (have && (id.set_digest != p->set_digest || strcmp(id.members, p->joined) != 0)) {
        fprintf(stderr,
                "seqd: refusing to start: %s belongs to the cluster of members %s, "
                "but --listen/--peers name %s\n",
                o->data, id.members, p->joined);
        return EXIT_FAIL;
    }
    if (have)
        p->cid = id.cid;
    else
        p->mode = RECOVERY_EMPTY;
    return EXIT_OK;
}

static int serve_open_log(const opts *o, table **t, seqlog **log)
{
    char err[512];
    *t = table_new();
    /* 16 MiB segments: preallocating one costs ~30 ms at start, and a
     * compaction every ~300k records is cheap. */
    log_opts lo = {.fsync = strcmp(o->fsync, "always") == 0, .segment_bytes = 16u << 20};
    *log = *t ? log_open(o->data, &lo, *t, err, sizeof err) : NULL;
    if (!*log) {
        fprintf(stderr, "seqd: cannot open the log in %s: %s\n", o->data, *t ? err : "out of memory");
        return EXIT_FAIL;
    }
    return EXIT_OK;
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

static void serve_notify_ready(void *arg)
{
    const serve_plan *p = arg;
    char state[128 + SEQD_ADDR_MAX];
    snprintf(state, sizeof state, "READY=1\nSTATUS=ready: member %d of %d, serving on %s",
             p->self + 1, p->n, p->listen);
    serve_notify(state);
}

/* What a member waits for until it is ready, by what its directory holds. */
static void serve_notify_recovering(const serve_plan *p)
{
    static const char *const waits[] = {
        [RECOVERY_INITIALIZED] = "waiting 2R, then reading the state of its peers",
        [RECOVERY_PREPARED] = "prepared by seqd init, waiting for its COMMIT",
        [RECOVERY_EMPTY] = "no cluster id: waiting for seqd init, or to recover from its peers",
    };
    char state[256];
    snprintf(state, sizeof state, "STATUS=recovering (member %d of %d): %s", p->self + 1, p->n,
             waits[p->mode]);
    serve_notify(state);
}

/* As many descriptors as the hard limit allows: each client connection
 * takes one (front_bin caps connections below the limit). Raised before
 * anything is opened; said once the member can log (serve_say_nofile). */
static struct {
    rlim_t before, after;
    int err;               /* setrlimit's errno, 0 if it worked or was not needed */
} serve_nofile;

static void serve_raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return;
    serve_nofile.before = serve_nofile.after = rl.rlim_cur;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) == 0)
            serve_nofile.after = rl.rlim_cur;
        else
            serve_nofile.err = errno;
    }
}

/* Info when the limit was raised; a warning when it stays below what the
 * connection cap wants (front_bin_max_conns then says how many clients). */
static void serve_say_nofile(void)
{
    if (serve_nofile.after == 0)
        return;   /* getrlimit failed: nothing known */
    size_t conns = front_bin_max_conns(running_front);
    if (serve_nofile.after > serve_nofile.before)
        member_log(running, MLOG_INFO, "raised the open-file limit (RLIMIT_NOFILE) from %llu to its hard limit %llu",
                   (unsigned long long)serve_nofile.before, (unsigned long long)serve_nofile.after);
    if (serve_nofile.err)
        member_log(running, MLOG_WARN, "cannot raise the open-file limit above %llu: %s",
                   (unsigned long long)serve_nofile.after, strerror(serve_nofile.err));
    if (serve_nofile.after != RLIM_INFINITY && serve_nofile.after < FRONT_BIN_WANT_NOFILE)
        member_log(running, MLOG_WARN,
                   "open-file limit %llu (hard limit) is below %u: at most %zu client connections "
                   "(raise it: ulimit -Hn, or LimitNOFILE= in the systemd unit)",
                   (unsigned long long)serve_nofile.after, (unsigned)FRONT_BIN_WANT_NOFILE, conns);
}

/* The one place that creates and drives the member (core/member.h) and its
 * binary front end, until SIGINT/SIGTERM stops them. */
static int serve_run(const opts *o, serve_plan *p, seqlog *log, table *t)
{
    char err[512];
    signal(SIGPIPE, SIG_IGN);
    struct event_base *base = event_base_new();
    member_config cfg = {.data_dir = o->data, .members = p->members, .n = p->n, .self = p->self,
                         .set_digest = p->set_digest, .members_joined = p->joined,
                         .round_ms = (uint32_t)o->round_ms, .mode = p->mode, .cid = p->cid, .secret = p->secret,
                         .peer_route = getenv("SEQD_TEST_PEER_ROUTE"),
                         .exhaustion_alarm = o->exhaustion_alarm,
                         .set = p->have_set ? &p->set : NULL, .last_switch = &p->sw,
                         .prev_switch = p->has_prev ? &p->prev_sw : NULL};
    running = base ? member_new(base, &cfg, log, t, err, sizeof err) : NULL;
    if (!running) {
        fprintf(stderr, "seqd: %s\n", base ? err : "cannot create the event loop");
        return EXIT_FAIL;
    }
    running_front = front_bin_new(base, running, o->listen, p->secret, o->insecure, p->client_token,
                                  err, sizeof err);
    if (!running_front) {
        fprintf(stderr, "seqd: %s\n", err);
        return EXIT_FAIL;
    }
    serve_say_nofile();
    if (o->http) {
        static char admin_token[2 * SEQD_MAC_LEN + 1];
        front_http_opts ho = {.insecure = o->insecure, .client_token = p->client_token};
        if (p->secret) {
            auth_admin_token(p->secret, admin_token);
            ho.admin_token = admin_token;
        }
        running_http = front_http_new(base, running, o->http, &ho, err, sizeof err);
        if (!running_http) {
            fprintf(stderr, "seqd: %s\n", err);
            return EXIT_FAIL;
        }
    }
    member_set_ready_cb(running, serve_notify_ready, p);
    serve_notify_recovering(p);
    if (member_start(running, err, sizeof err) < 0) {
        fprintf(stderr, "seqd: %s\n", err);
        return EXIT_FAIL;
    }
    struct event *sigint = evsignal_new(base, SIGINT, on_signal, NULL);
    struct event *sigterm = evsignal_new(base, SIGTERM, on_signal, NULL);
    struct event *sighup = evsignal_new(base, SIGHUP, on_sighup, NULL);
    struct event *sigusr2 = evsignal_new(base, SIGUSR2, on_sigusr2, log);
    event_add(sigint, NULL);
    event_add(sigterm, NULL);
    event_add(sighup, NULL);
    event_add(sigusr2, NULL);
    event_base_dispatch(base);

    if (member_fatal(running))
        return EXIT_FAIL;   /* no flush: the log can no longer be trusted */
    /* The member first (it closes the log, whose last completions still
     * reach replies on the front end's connections), then the front end. */
    front_http_free(running_http);   /* it only reads the member */
    running_http = NULL;
    member_free(running);
    front_bin_free(running_front);
    running = NULL;
    running_front = NULL;
    event_free(sigint);
    event_free(sigterm);
    event_free(sighup);
    event_free(sigusr2);
    event_base_free(base);
    fprintf(stderr, "seqd: stopped\n");
    return EXIT_OK;
}


static int cmd_serve(const opts *o, const cmd_entry *cmd)
{
    int rc = serve_validate(o, cmd);
    if (rc != EXIT_OK)
        return rc;
    char err[512];
    serve_plan p = {0};
    if (member_set(o, &p, err, sizeof err) < 0)
        return usage_error(cmd, "%s", err);
    static char client_token[SEQD_TOKEN_MAX + 1];
    if (o->client_token_file) {
        char terr[512];
        if (seqd_token_load(o->client_token_file, client_token, terr, sizeof terr) < 0) {
            fprintf(stderr, "seqd: %s\n", terr);
            return EXIT_FAIL;
        }
        p.client_token = client_token;
    }
    if ((rc = serve_load_secret(o, &p, cmd, &p.secret)) != EXIT_OK)
        return rc;
    member_log_setup((enum member_log_level)member_log_level_parse(o->log_level),
                     strcmp(o->log_format, "json") == 0);
    serve_raise_nofile();
    if ((rc = serve_open_data(o, &p)) != EXIT_OK)
        return rc;
    table *t;
    seqlog *log;
    if ((rc = serve_open_log(o, &t, &log)) != EXIT_OK)
        return rc;
    if (apply_fault_hooks(log, err, sizeof err) < 0)
        return usage_error(cmd, "%s", err);
    if (o->replaces && (rc = serve_replace(o, &p, t)) != EXIT_OK)
        return rc;
    if (!o->replaces && p.mode == RECOVERY_EMPTY)
        serve_learn_set(o, &p);
    p.listen = o->listen;
    return serve_run(o, &p, log, t);
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

static int cmd_fetch(const opts *o, const cmd_entry *cmd)
{
    if (!o->name)
        return usage_error(cmd, "%s", "missing sequence NAME");
    /* The name and count are the client library's to check (client/policy.c),
     * so the CLI and every program refuse the same way. */
    char err[1024];
    client *c = client_new(servers_of(o), err, sizeof err);
    if (!c)
        return usage_error(cmd, "%s", err);
    uint64_t first = 0;
    int rc = client_fetch(c, o->name, (uint32_t)o->count, (uint32_t)o->timeout_ms, &first, err, sizeof err);
    client_free(c);
    if (rc != CLIENT_OK) {
        fprintf(stderr, "seqd: %s\n", err);
        return rc == CLIENT_EUSAGE ? EXIT_USAGE : EXIT_FAIL;
    }
    if (o->range)
        printf("%llu %llu\n", (unsigned long long)first, (unsigned long long)(first + o->count - 1));
    else
        print_ids(first, o->count);
    return fflush(stdout) == 0 ? EXIT_OK : EXIT_FAIL;
}

/* ---- init (DESIGN.md §3) --------------------------------------------------- */

typedef struct init_view {
    uint8_t state[SEQD_MAX_MEMBERS];       /* enum seqd_init_state */
    struct seqd_cid cid[SEQD_MAX_MEMBERS];
} init_view;

/* init's list is the sorted member set: member i is slot i. */
static int init_authenticate(client *c, int i, const auth_secret *s, uint32_t ms)
{
    char err[512];
    if (client_admin_auth(c, i, i, s, ms, err, sizeof err) != CLIENT_OK) {
        fprintf(stderr, "seqd: init: member %s: %s\n", client_server(c, i), err);
        return -1;
    }
    return 0;
}

/* One MSG_INIT to member i; fills its state and id, or says why not. */
static int init_ask(client *c, int i, uint8_t op, const struct seqd_cid *x, uint64_t digest,
                    uint32_t ms, init_view *v)
{
    static uint8_t scratch[SEQD_MAX_FRAME];
    char err[512];
    seqd_msg req = {.type = MSG_INIT, .reqid = 1}, rep;
    req.u.init.op = op;
    req.u.init.cid = *x;
    req.u.init.set_digest = digest;
    if (client_raw(c, i, &req, &rep, scratch, ms, err, sizeof err) != CLIENT_OK) {
        fprintf(stderr, "seqd: init: member %s is down or unreachable: %s\n", client_server(c, i), err);
        return -1;
    }
    if (rep.type == MSG_REPLY_ERR || rep.type == MSG_ERROR) {
        fprintf(stderr, "seqd: init: member %s: %.*s\n", client_server(c, i), (int)rep.u.err.len,
                rep.u.err.text);
        return -1;
    }
    if (rep.type != MSG_INIT_REPLY) {
        fprintf(stderr, "seqd: init: member %s answered %s\n", client_server(c, i),
                msg_type_str(rep.type));
        return -1;
    }
    v->state[i] = rep.u.init_reply.state;
    v->cid[i] = rep.u.init_reply.cid;
    return 0;
}

/* Which id to prepare, from what every member said: the one id some
 * member is prepared for or initialized with (an interrupted init is
 * finished with it: "prepared" is sticky), or a fresh one. -1 with the
 * reason when init must refuse. */
static int init_choose(client *c, const init_view *v, struct seqd_cid *x)
{
    int n = client_nservers(c), with_id = -1, empty = -1;
    for (int i = 0; i < n; i++) {
        if (v->state[i] == INIT_RECOVERING) {
            fprintf(stderr, "seqd: init: member %s holds values but no cluster id: it belongs to an "
                            "existing cluster and is recovering into it\n", client_server(c, i));
            return -1;
        }
        if (v->state[i] == INIT_EMPTY) {
            empty = i;
            continue;
        }
        if (with_id >= 0 && !seqd_cid_eq(&v->cid[i], &v->cid[with_id])) {
            fprintf(stderr, "seqd: init: members %s and %s hold different cluster ids (two inits "
                            "raced, or these are two clusters)\n",
                    client_server(c, with_id), client_server(c, i));
            return -1;
        }
        if (with_id < 0 || v->state[i] == INIT_INITIALIZED)
            with_id = i;
    }
    if (with_id >= 0 && v->state[with_id] == INIT_INITIALIZED && empty >= 0) {
        fprintf(stderr, "seqd: init: member %s belongs to a cluster already while %s is empty: a "
                        "member that lost its data recovers from its peers by itself; init only "
                        "creates a new cluster\n", client_server(c, with_id), client_server(c, empty));
        return -1;
    }
    if (with_id >= 0) {
        *x = v->cid[with_id];
        return 0;
    }
    if (getrandom(x->b, sizeof x->b, 0) != (ssize_t)sizeof x->b) {
        fprintf(stderr, "seqd: init: no randomness for a cluster id: %s\n", strerror(errno));
        return -1;
    }
    x->b[0] |= 1;   /* never the all-zero "none" */
    return 0;
}

/* Sends op to every member in state `from`; each must then be in `want`
 * for x. */
static int init_step(client *c, init_view *v, uint8_t from, uint8_t op, uint8_t want,
                     const struct seqd_cid *x, uint64_t digest, uint32_t ms, const char *what)
{
    for (int i = 0; i < client_nservers(c); i++) {
        if (v->state[i] != from)
            continue;
        if (init_ask(c, i, op, x, digest, ms, v) < 0)
            return -1;
        if (v->state[i] != want || !seqd_cid_eq(&v->cid[i], x)) {
            fprintf(stderr, "seqd: init: member %s %s; run seqd init again\n", client_server(c, i),
                    what);
            return -1;
        }
    }
    return 0;
}

/* PREPARE then COMMIT; each step has heard from every member before the
 * next starts, so COMMIT of x goes out only once every member is prepared
 * for x or initialized with it. */
static int init_run(client *c, uint64_t digest, const auth_secret *secret, uint32_t ms)
{
    int n = client_nservers(c);
    static const struct seqd_cid none;
    init_view v;
    for (int i = 0; i < n; i++)
        if ((secret && init_authenticate(c, i, secret, ms) < 0) ||
            init_ask(c, i, INIT_PROBE, &none, digest, ms, &v) < 0)
            return EXIT_FAIL;
    /* A member that just started has not heard from the others yet and
     * cannot say whether a cluster exists: ask again for a while. */
    for (int tries = 0; tries < 50; tries++) {
        int waiting = -1;
        for (int i = 0; i < n && waiting < 0; i++)
            if (v.state[i] == INIT_WAITING)
                waiting = i;
        if (waiting < 0)
            break;
        if (tries == 49) {
            fprintf(stderr, "seqd: init: member %s has not heard from every member (is one down, "
                            "or started with other --peers?)\n", client_server(c, waiting));
            return EXIT_FAIL;
        }
        struct timespec ts = {0, 100 * 1000000};
        nanosleep(&ts, NULL);
        if (init_ask(c, waiting, INIT_PROBE, &none, digest, ms, &v) < 0)
            return EXIT_FAIL;
    }
    struct seqd_cid x;
    if (init_choose(c, &v, &x) < 0)
        return EXIT_FAIL;
    char hex[SEQD_CID_HEX];
    seqd_cid_hex(&x, hex);
    bool all_initialized = true;
    for (int i = 0; i < n; i++)
        all_initialized &= v.state[i] == INIT_INITIALIZED;
    if (all_initialized) {
        printf("already initialized: cluster %s of %d members\n", hex, n);
        return EXIT_OK;
    }
    if (init_step(c, &v, INIT_EMPTY, INIT_PREPARE, INIT_PREPARED, &x, digest, ms,
                  "was prepared by another init meanwhile") < 0 ||
        init_step(c, &v, INIT_PREPARED, INIT_COMMIT, INIT_INITIALIZED, &x, digest, ms,
                  "did not take the COMMIT") < 0)
        return EXIT_FAIL;
    printf("initialized: cluster %s of %d members\n", hex, n);
    return EXIT_OK;
}

static int cmd_init(const opts *o, const cmd_entry *cmd)
{
    char err[512];
    static char buf[DATADIR_MEMBERS_MAX * 2];
    char *members[SEQD_MAX_MEMBERS], joined[DATADIR_MEMBERS_MAX];
    int n = 0;
    snprintf(buf, sizeof buf, "%s", servers_of(o));
    if (parse_addr_list(buf, members, &n, err, sizeof err) < 0)
        return usage_error(cmd, "%s", err);
    uint64_t digest = datadir_set_digest(members, n, joined, sizeof joined);
    static auth_secret secret;
    if (o->secret_file && auth_load_secret(o->secret_file, &secret, err, sizeof err) < 0) {
        fprintf(stderr, "seqd: %s\n", err);
        return EXIT_FAIL;
    }
    client *c = client_new(joined, err, sizeof err);
    if (!c)
        return usage_error(cmd, "%s", err);
    int rc = init_run(c, digest, o->secret_file ? &secret : NULL,
                      o->timeout_ms ? (uint32_t)o->timeout_ms : 5000u);
    client_free(c);
    return rc;
}

/* --json: one document, so that `jq` and scripts read it whole; each
 * member's object is the one its GET /v1/status answers. */
static int cmd_status(const opts *o, const cmd_entry *cmd)
{
    char err[512];
    client *c = client_new(servers_of(o), err, sizeof err);
    if (!c)
        return usage_error(cmd, "%s", err);
    bool all_ready = true;
    if (o->json)
        fputs("{\"members\":[", stdout);
    for (int i = 0; i < client_nservers(c); i++) {
        struct seqd_status st;
        char obj[4096];
        bool up = client_status(c, i, 1000, &st, err, sizeof err) == CLIENT_OK;
        all_ready = all_ready && up && st.state == STATE_READY;
        if (o->json) {
            if ((up ? statusfmt_json(&st, client_server(c, i), obj, sizeof obj)
                    : statusfmt_down(client_server(c, i), err, obj, sizeof obj)) < 0)
                snprintf(obj, sizeof obj, "{\"state\":\"unknown\"}");
            printf("%s%s", i ? "," : "", obj);
            continue;
        }
        if (!up) {
            printf("%s down (%s)\n", client_server(c, i), err);
            continue;
        }
        printf("%s %s slot=%u", client_server(c, i), statusfmt_state(st.state), st.self_index);
#define PRINT_PAIR(name) printf(" " #name "=%llu", (unsigned long long)st.name);
        SEQD_STATUS_COUNTERS(PRINT_PAIR)
#undef PRINT_PAIR
        putchar('\n');
    }
    if (o->json)
        printf("],\"ready\":%s}\n", all_ready ? "true" : "false");
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

/* ---- advance and list (DESIGN.md §1, §5) ----------------------------------- */

static int cmd_advance(const opts *o, const cmd_entry *cmd)
{
    if (!o->name || !o->value)
        return usage_error(cmd, "%s", "want NAME VALUE");
    uint64_t value;
    if (!parse_u64(o->value, UINT64_MAX, &value) || value < 1)
        return usage_error(cmd, "bad VALUE '%s': want 1 to 18446744073709551615", o->value);
    char err[1024];
    static auth_secret secret;
    if (o->secret_file && auth_load_secret(o->secret_file, &secret, err, sizeof err) < 0) {
        fprintf(stderr, "seqd: %s\n", err);
        return EXIT_FAIL;
    }
    client *c = client_new(servers_of(o), err, sizeof err);
    if (!c)
        return usage_error(cmd, "%s", err);
    uint64_t next = 0;
    int rc = client_advance(c, o->name, value, o->secret_file ? &secret : NULL,
                            (uint32_t)o->timeout_ms, &next, err, sizeof err);
    client_free(c);
    if (rc == CLIENT_EUSAGE)
        return usage_error(cmd, "%s", err);
    if (rc != CLIENT_OK) {
        fprintf(stderr, "seqd: %s%s\n", err,
                strstr(err, "not authenticated") && !o->secret_file
                    ? " (give --secret-file when the cluster has a secret)" : "");
        return EXIT_FAIL;
    }
    printf("%s %llu\n", o->name, (unsigned long long)next);
    return fflush(stdout) == 0 ? EXIT_OK : EXIT_FAIL;
}

/* What list collects: every (name, NEXT) each member sent, names in one
 * arena. Sorted by name and merged, the largest NEXT per name is what a
 * READ of that name would see from those members. */
typedef struct list_entry {
    size_t off;
    uint8_t len;
    uint64_t next;
} list_entry;

typedef struct list_acc {
    list_entry *e;
    size_t n, cap;
    char *names;
    size_t used, names_cap;
} list_acc;

static int list_add(void *arg, const struct seqd_name *name, uint64_t next)
{
    list_acc *a = arg;
    if (a->n == a->cap) {
        size_t cap = a->cap ? 2 * a->cap : 4096;
        list_entry *e = realloc(a->e, cap * sizeof *e);
        if (!e)
            return -1;
        a->e = e;
        a->cap = cap;
    }
    if (a->names_cap - a->used < name->len) {
        size_t cap = a->names_cap ? 2 * a->names_cap : 65536;
        char *p = realloc(a->names, cap);
        if (!p)
            return -1;
        a->names = p;
        a->names_cap = cap;
    }
    memcpy(a->names + a->used, name->s, name->len);
    a->e[a->n++] = (list_entry){.off = a->used, .len = name->len, .next = next};
    a->used += name->len;
    return 0;
}

static int cmd_admin_token(const opts *o, const cmd_entry *cmd)
{
    if (!o->secret_file)
        return usage_error(cmd, "%s", "missing --secret-file");
    static auth_secret secret;
    char err[512], tok[2 * SEQD_MAC_LEN + 1];
    if (auth_load_secret(o->secret_file, &secret, err, sizeof err) < 0) {
        fprintf(stderr, "seqd: %s\n", err);
        return EXIT_FAIL;
    }
    auth_admin_token(&secret, tok);
    printf("%s\n", tok);
    return fflush(stdout) == 0 ? EXIT_OK : EXIT_FAIL;
}

static const char *list_names;   /* for the qsort comparator */

static int list_cmp(const void *pa, const void *pb)
{
    const list_entry *a = pa, *b = pb;
    size_t n = a->len < b->len ? a->len : b->len;
    int c = memcmp(list_names + a->off, list_names + b->off, n);
    if (c)
        return c;
    if (a->len != b->len)
        return a->len < b->len ? -1 : 1;
    return a->next > b->next ? -1 : a->next < b->next;   /* largest first */
}

static int cmd_list(const opts *o, const cmd_entry *cmd)
{
    char err[1024];
    const char *prefix = o->prefix ? o->prefix : "";
    size_t plen = strlen(prefix);
    if (plen && (plen > SEQD_NAME_MAX || !seqd_name_valid(prefix, plen)))
        return usage_error(cmd, "bad --prefix '%s': want up to 128 bytes of [A-Za-z0-9._-]", prefix);
    client *c = client_new(servers_of(o), err, sizeof err);
    if (!c)
        return usage_error(cmd, "%s", err);
    list_acc a = {0};
    int n = client_nservers(c), answered = 0, members = 0;
    for (int i = 0; i < n; i++) {
        struct seqd_status st;
        if (client_status(c, i, (uint32_t)o->timeout_ms, &st, err, sizeof err) == CLIENT_OK &&
            st.n_members > members)
            members = st.n_members;
        size_t before = a.n;
        if (client_list_member(c, i, prefix, (uint32_t)o->timeout_ms, list_add, &a, err,
                               sizeof err) == CLIENT_OK) {
            answered++;
        } else {
            a.n = before;   /* a member's partial table is not a read */
            fprintf(stderr, "seqd: list: member %s: %s\n", client_server(c, i), err);
        }
    }
    client_free(c);
    /* A quorum of the cluster, not of the list given: a READ needs it. */
    int q = members > 0 ? members / 2 + 1 : 1;
    if (members == 0 || answered < q) {
        fprintf(stderr, "seqd: list: %d of %d members answered; a read quorum needs %d\n",
                answered, members > 0 ? members : n, q);
        free(a.e);
        free(a.names);
        return EXIT_FAIL;
    }
    list_names = a.names;
    if (a.n > 0)   /* qsort's base must not be NULL, even for no entries */
        qsort(a.e, a.n, sizeof *a.e, list_cmp);
    for (size_t i = 0; i < a.n; i++) {
        const list_entry *e = &a.e[i];
        if (i > 0 && e->len == a.e[i - 1].len &&
            memcmp(a.names + e->off, a.names + a.e[i - 1].off, e->len) == 0)
            continue;   /* a smaller NEXT of the same name */
        printf("%.*s %llu\n", (int)e->len, a.names + e->off, (unsigned long long)e->next);
    }
    free(a.e);
    free(a.names);
    return fflush(stdout) == 0 ? EXIT_OK : EXIT_FAIL;
}

static int cmd_stream(const opts *o, const cmd_entry *cmd)
{
    if (!o->name)
        return usage_error(cmd, "%s", "missing sequence NAME");
    char err[512];
    stream *st = stream_new_client(servers_of(o), o->name, (uint32_t)o->buffer, 5000, err, sizeof err);
    if (!st)
        return usage_error(cmd, "%s", err);
    /* No SA_RESTART: a signal must cut a pause short. A reader that went
     * away shows up as EPIPE from the write, not as a signal. */
    struct sigaction sa = {.sa_handler = stream_on_signal};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    bool waiting = false, flush_each = o->interval_ms > 0;
    int rc = EXIT_OK;
    while (!stream_stop) {
        uint64_t id;
        bool ok = stream_next(st, &id, 1000, err, sizeof err) == CLIENT_OK;
        stream_report(ok, &waiting, err);
        if (!ok)
            continue;
        if (printf("%llu\n", (unsigned long long)id) < 0 || (flush_each && fflush(stdout) != 0))
            break;
        if (o->interval_ms) {
            struct timespec ts = {(time_t)(o->interval_ms / 1000), (long)(o->interval_ms % 1000) * 1000000};
            nanosleep(&ts, NULL);
        }
    }
    if (fflush(stdout) != 0 && errno != EPIPE)
        rc = EXIT_FAIL;
    stream_free(st);
    return rc;
}

static const cmd_entry *find_command(const char *name)
{
    for (size_t i = 0; i < NCOMMANDS; i++)
        if (strcmp(commands[i].name, name) == 0)
            return &commands[i];
    return NULL;
}

static int run_command(const cmd_entry *cmd, int argc, char **argv)
{
    opts o = opts_defaults;
    int rc = parse_opts(cmd, argc, argv, &o);
    if (rc != EXIT_OK)
        return rc;
    if (o.help) {
        print_cmd_usage(stdout, cmd);
        return EXIT_OK;
    }
    /* The client library reads $SEQD_TOKEN_FILE itself (client/token.h):
     * --token-file is that variable for this one command. */
    if (o.token_file && setenv("SEQD_TOKEN_FILE", o.token_file, 1) != 0)
        return EXIT_FAIL;
    return cmd->run(&o, cmd);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        print_main_usage(stderr);
        return EXIT_USAGE;
    }
    const char *name = argv[1];
    if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0 || strcmp(name, "help") == 0) {
        print_main_usage(stdout);
        return EXIT_OK;
    }
    if (strcmp(name, "--man") == 0) {
        print_man(stdout);
        return fflush(stdout) == 0 ? EXIT_OK : EXIT_FAIL;
    }
    if (strcmp(name, "--version") == 0 || strcmp(name, "version") == 0) {
        printf("seqd %s (protocol %d)\n", SEQD_VERSION, SEQD_PROTO_VERSION);
        return EXIT_OK;
    }
    const cmd_entry *cmd = find_command(name);
    if (cmd)
        return run_command(cmd, argc - 1, argv + 1);
    fprintf(stderr, "seqd: unknown command '%s'\n", name);
    print_main_usage(stderr);
    return EXIT_USAGE;
}
