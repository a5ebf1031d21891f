/* tests/history.c — the history recorder, its text form and the checker.
 * The contract is in history.h. */
#include "history.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

struct history {
    pthread_mutex_t mu;
    history_op *ops;
    size_t nops, capops;
    history_crash *crashes;
    size_t *crash_after;        /* ops recorded before each crash, for writing in order */
    size_t ncrashes, capcrashes;
    char **names;
    size_t nnames, capnames;
    uint32_t *slots;            /* open addressing: name index + 1, 0 = empty */
    size_t nslots;              /* power of two, kept over twice nnames */
};

/* ---------------------------------------------------------------- names */

/* FNV-1a: names are short and few; anything better is not worth a dependency. */
static uint64_t hist_hash(const char *s)
{
    uint64_t x = 1469598103934665603ull;
    for (; *s; s++)
        x = (x ^ (unsigned char)*s) * 1099511628211ull;
    return x;
}

/* Doubling keeps probe chains short; called with the lock held. */
static int hist_grow_slots(history *h)
{
    size_t n = h->nslots ? h->nslots * 2 : 64;
    uint32_t *s = calloc(n, sizeof *s);
    if (!s)
        return ENOMEM;
    for (size_t i = 0; i < h->nnames; i++) {
        size_t j = hist_hash(h->names[i]) & (n - 1);
        while (s[j])
            j = (j + 1) & (n - 1);
        s[j] = (uint32_t)(i + 1);
    }
    free(h->slots);
    h->slots = s;
    h->nslots = n;
    return 0;
}

/* Ops refer to sequences by index so that the checker compares integers,
 * not strings. Called with the lock held. */
static int hist_intern(history *h, const char *name, uint32_t *out)
{
    if (h->nslots < 2 * (h->nnames + 1) && hist_grow_slots(h))
        return ENOMEM;
    size_t j = hist_hash(name) & (h->nslots - 1);
    while (h->slots[j]) {
        if (strcmp(h->names[h->slots[j] - 1], name) == 0) {
            *out = h->slots[j] - 1;
            return 0;
        }
        j = (j + 1) & (h->nslots - 1);
    }
    if (h->nnames == h->capnames) {
        size_t cap = h->capnames ? h->capnames * 2 : 8;
        char **nn = realloc(h->names, cap * sizeof *nn);
        if (!nn)
            return ENOMEM;
        h->names = nn;
        h->capnames = cap;
    }
    char *copy = strdup(name);
    if (!copy)
        return ENOMEM;
    h->names[h->nnames] = copy;
    h->slots[j] = (uint32_t)(h->nnames + 1);
    *out = (uint32_t)h->nnames++;
    return 0;
}

/* The text form splits on whitespace, so a name must not contain any. */
static bool hist_name_ok(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > HISTORY_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (isspace((unsigned char)s[i]))
            return false;
    return true;
}

/* ------------------------------------------------------------ recording */

history *history_new(void)
{
    history *h = calloc(1, sizeof *h);
    if (!h)
        return NULL;
    if (pthread_mutex_init(&h->mu, NULL)) {
        free(h);
        return NULL;
    }
    return h;
}

void history_free(history *h)
{
    if (!h)
        return;
    for (size_t i = 0; i < h->nnames; i++)
        free(h->names[i]);
    free(h->names);
    free(h->slots);
    free(h->ops);
    free(h->crashes);
    free(h->crash_after);
    pthread_mutex_destroy(&h->mu);
    free(h);
}

int history_add_op(history *h, uint32_t client, const char *seq, uint64_t count,
                   int64_t invoke_us, int64_t complete_us, history_outcome outcome,
                   uint64_t first, uint64_t last)
{
    if (!hist_name_ok(seq) || complete_us < invoke_us ||
        (outcome != HISTORY_OK && outcome != HISTORY_FAIL && outcome != HISTORY_UNKNOWN))
        return EINVAL;
    pthread_mutex_lock(&h->mu);
    int rc = 0;
    if (h->nops == h->capops) {
        size_t cap = h->capops ? h->capops * 2 : 256;
        history_op *n = realloc(h->ops, cap * sizeof *n);
        if (!n) {
            rc = ENOMEM;
            goto out;
        }
        h->ops = n;
        h->capops = cap;
    }
    uint32_t idx;
    if ((rc = hist_intern(h, seq, &idx)))
        goto out;
    bool ok = outcome == HISTORY_OK;
    h->ops[h->nops++] = (history_op){
        .client = client, .seq = idx, .count = count,
        .invoke_us = invoke_us, .complete_us = complete_us, .outcome = outcome,
        .first = ok ? first : 0, .last = ok ? last : 0,
    };
out:
    pthread_mutex_unlock(&h->mu);
    return rc;
}

int history_add_crash(history *h, int64_t time_us, const char *what)
{
    size_t n = what ? strlen(what) : 0;
    if (n == 0 || n >= HISTORY_WHAT_MAX || strchr(what, '\n'))
        return EINVAL;
    pthread_mutex_lock(&h->mu);
    int rc = 0;
    if (h->ncrashes == h->capcrashes) {
        size_t cap = h->capcrashes ? h->capcrashes * 2 : 16;
        history_crash *c = realloc(h->crashes, cap * sizeof *c);
        if (c)
            h->crashes = c;
        size_t *a = realloc(h->crash_after, cap * sizeof *a);
        if (a)
            h->crash_after = a;
        if (!c || !a) {
            rc = ENOMEM;
            goto out;
        }
        h->capcrashes = cap;
    }
    history_crash *c = &h->crashes[h->ncrashes];
    c->time_us = time_us;
    memcpy(c->what, what, n + 1);
    h->crash_after[h->ncrashes++] = h->nops;
out:
    pthread_mutex_unlock(&h->mu);
    return rc;
}

size_t history_nops(const history *h) { return h->nops; }
const history_op *history_op_at(const history *h, size_t i) { return i < h->nops ? &h->ops[i] : NULL; }
size_t history_ncrashes(const history *h) { return h->ncrashes; }
const history_crash *history_crash_at(const history *h, size_t i) { return i < h->ncrashes ? &h->crashes[i] : NULL; }
const char *history_seq_name(const history *h, uint32_t seq) { return seq < h->nnames ? h->names[seq] : NULL; }

/* ------------------------------------------------------------ text form */

/* <last> is left out when it is the one implied by <count>, so normal
 * histories read exactly as the format in the brief. */
static void hist_write_op(const history *h, const history_op *o, FILE *f)
{
    fprintf(f, "op %" PRIu32 " %s %" PRIu64 " %" PRId64 " %" PRId64 " ",
            o->client, h->names[o->seq], o->count, o->invoke_us, o->complete_us);
    if (o->outcome == HISTORY_FAIL) {
        fputs("fail\n", f);
    } else if (o->outcome == HISTORY_UNKNOWN) {
        fputs("unknown\n", f);
    } else {
        fprintf(f, "ok %" PRIu64, o->first);
        if (o->count == 0 || o->first + (o->count - 1) < o->first || o->last != o->first + (o->count - 1))
            fprintf(f, " %" PRIu64, o->last);
        fputc('\n', f);
    }
}

int history_write(const history *h, FILE *f)
{
    size_t c = 0;
    for (size_t i = 0; i <= h->nops; i++) {
        for (; c < h->ncrashes && h->crash_after[c] == i; c++)
            fprintf(f, "crash %" PRId64 " %s\n", h->crashes[c].time_us, h->crashes[c].what);
        if (i < h->nops)
            hist_write_op(h, &h->ops[i], f);
    }
    if (fflush(f) || ferror(f))
        return errno ? errno : EIO;
    return 0;
}

int history_write_path(const history *h, const char *path)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return errno;
    int rc = history_write(h, f);
    if (fclose(f) && !rc)
        rc = errno;
    return rc;
}

/* Whole-token number parsers: strtoull alone accepts "-1" and trailing junk. */
static bool hist_parse_u64(const char *s, uint64_t *out)
{
    if (!s || !isdigit((unsigned char)*s))
        return false;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end)
        return false;
    *out = v;
    return true;
}

static bool hist_parse_i64(const char *s, int64_t *out)
{
    if (!s || !(isdigit((unsigned char)*s) || (*s == '-' && isdigit((unsigned char)s[1]))))
        return false;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end)
        return false;
    *out = v;
    return true;
}

/* One "op ..." line, already split into tokens. Returns a reason or NULL. */
static const char *hist_parse_op(history *h, char **t, int nt)
{
    uint64_t client, count, first = 0, last = 0;
    int64_t inv, comp;
    history_outcome oc;
    if (nt < 7)
        return "op: too few fields";
    if (!hist_parse_u64(t[1], &client) || client > UINT32_MAX)
        return "op: bad client";
    if (!hist_parse_u64(t[3], &count))
        return "op: bad count";
    if (!hist_parse_i64(t[4], &inv) || !hist_parse_i64(t[5], &comp))
        return "op: bad time";
    if (strcmp(t[6], "ok") == 0) {
        oc = HISTORY_OK;
        if (nt < 8 || nt > 9 || !hist_parse_u64(t[7], &first))
            return "op: ok needs <first> [<last>]";
        last = first + (count - 1);     /* wraps on purpose for count 0: the checker flags it */
        if (nt == 9 && !hist_parse_u64(t[8], &last))
            return "op: bad last";
    } else if (strcmp(t[6], "fail") == 0 || strcmp(t[6], "unknown") == 0) {
        oc = t[6][0] == 'f' ? HISTORY_FAIL : HISTORY_UNKNOWN;
        if (nt != 7)
            return "op: extra fields";
    } else {
        return "op: outcome must be ok, fail or unknown";
    }
    int rc = history_add_op(h, (uint32_t)client, t[2], count, inv, comp, oc, first, last);
    if (rc == ENOMEM)
        return "out of memory";
    return rc ? "op: bad name or complete before invoke" : NULL;
}

/* "crash <time> <what...>": what is the rest of the line, spaces included. */
static const char *hist_parse_crash(history *h, char *line)
{
    char *p = line + strlen("crash");
    while (*p == ' ' || *p == '\t')
        p++;
    char *tok = p;
    while (*p && *p != ' ' && *p != '\t')
        p++;
    if (!*p)
        return "crash: needs <time_us> <what>";
    *p++ = '\0';
    int64_t t;
    if (!hist_parse_i64(tok, &t))
        return "crash: bad time";
    while (*p == ' ' || *p == '\t')
        p++;
    int rc = history_add_crash(h, t, p);
    if (rc == ENOMEM)
        return "out of memory";
    return rc ? "crash: bad description" : NULL;
}

/* Returns a reason or NULL; line is modified. */
static const char *hist_parse_line(history *h, char *line)
{
    size_t n = strlen(line);
    while (n && (line[n - 1] == '\n' || line[n - 1] == '\r' || line[n - 1] == ' ' || line[n - 1] == '\t'))
        line[--n] = '\0';
    char *s = line;
    while (*s == ' ' || *s == '\t')
        s++;
    if (!*s || *s == '#')
        return NULL;
    if (strncmp(s, "crash", 5) == 0 && (s[5] == ' ' || s[5] == '\t'))
        return hist_parse_crash(h, s);
    char *t[10] = { 0 };
    int nt = 0;
    for (char *save = NULL, *tok = strtok_r(s, " \t", &save); tok; tok = strtok_r(NULL, " \t", &save)) {
        if (nt == 10)
            return "too many fields";
        t[nt++] = tok;
    }
    if (strcmp(t[0], "op") != 0)
        return "line must start with op or crash";
    return hist_parse_op(h, t, nt);
}

history *history_read(FILE *f, char *err, size_t errlen)
{
    history *h = history_new();
    if (!h) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    char *line = NULL;
    size_t cap = 0;
    unsigned long lineno = 0;
    while (getline(&line, &cap, f) >= 0) {
        lineno++;
        const char *why = hist_parse_line(h, line);
        if (why) {
            snprintf(err, errlen, "line %lu: %s", lineno, why);
            free(line);
            history_free(h);
            return NULL;
        }
    }
    free(line);
    if (ferror(f)) {
        snprintf(err, errlen, "read error: %s", strerror(errno));
        history_free(h);
        return NULL;
    }
    return h;
}

history *history_read_path(const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return NULL;
    }
    history *h = history_read(f, err, errlen);
    fclose(f);
    return h;
}

/* -------------------------------------------------------------- checker */

/* The fields of one ok op the rules look at, copied so that each rule can
 * sort its own array without a comparison context. */
typedef struct hist_item {
    uint32_t seq, client;
    uint64_t first, last;
    int64_t invoke, complete;
    size_t idx;
} hist_item;

/* The per-rule passes share these; prefix arrays are sized once. */
typedef struct hist_ctx {
    const history *h;
    history_report *r;
    hist_item *it;
    size_t n;
    uint64_t *pmax;             /* prefix max of last, by completion */
    size_t *parg;               /* which item holds it */
} hist_ctx;

static int hist_cmp_u64(uint64_t a, uint64_t b) { return (a > b) - (a < b); }
static int hist_cmp_i64(int64_t a, int64_t b) { return (a > b) - (a < b); }

static int hist_by_seq_first(const void *pa, const void *pb)
{
    const hist_item *a = pa, *b = pb;
    int c = hist_cmp_u64(a->seq, b->seq);
    if (!c)
        c = hist_cmp_u64(a->first, b->first);
    return c ? c : hist_cmp_u64(a->idx, b->idx);
}

static int hist_by_seq_complete(const void *pa, const void *pb)
{
    const hist_item *a = pa, *b = pb;
    int c = hist_cmp_u64(a->seq, b->seq);
    if (!c)
        c = hist_cmp_i64(a->complete, b->complete);
    return c ? c : hist_cmp_u64(a->idx, b->idx);
}

static int hist_by_seq_client_complete(const void *pa, const void *pb)
{
    const hist_item *a = pa, *b = pb;
    int c = hist_cmp_u64(a->seq, b->seq);
    if (!c)
        c = hist_cmp_u64(a->client, b->client);
    if (!c)
        c = hist_cmp_i64(a->complete, b->complete);
    return c ? c : hist_cmp_u64(a->idx, b->idx);
}

static int hist_by_seq_invoke(const void *pa, const void *pb)
{
    const hist_item *a = pa, *b = pb;
    int c = hist_cmp_u64(a->seq, b->seq);
    if (!c)
        c = hist_cmp_i64(a->invoke, b->invoke);
    return c ? c : hist_cmp_u64(a->idx, b->idx);
}

/* Counts every violation but keeps the text of only the first few, so a
 * badly broken run still produces a short report. */
static void hist_note(history_report *r, history_rule rule, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void hist_note(history_report *r, history_rule rule, const char *fmt, ...)
{
    r->by_rule[rule]++;
    r->violations++;
    if (r->shown >= HISTORY_SHOWN)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->msg[r->shown++], HISTORY_MSG, fmt, ap);
    va_end(ap);
}

static uint64_t hist_sat_add(uint64_t a, uint64_t b) { return a + b < a ? UINT64_MAX : a + b; }

/* Rule 2 on every ok op; returns whether the op has a usable range
 * (first <= last) for the other rules, which then use what it received. */
static bool hist_check_range(const history *h, size_t i, history_report *r)
{
    const history_op *o = &h->ops[i];
    const char *name = h->names[o->seq];
    if (o->last < o->first) {
        hist_note(r, HISTORY_RULE_RANGE, "seq %s: op #%zu (client %" PRIu32 ") got an empty range [%" PRIu64 ",%" PRIu64 "]",
                  name, i, o->client, o->first, o->last);
        return false;
    }
    if (o->count == 0)
        hist_note(r, HISTORY_RULE_RANGE, "seq %s: op #%zu (client %" PRIu32 ") asked for 0 IDs and got [%" PRIu64 ",%" PRIu64 "]",
                  name, i, o->client, o->first, o->last);
    else if (o->first + (o->count - 1) < o->first)
        hist_note(r, HISTORY_RULE_RANGE, "seq %s: op #%zu (client %" PRIu32 ") got %" PRIu64 " IDs from %" PRIu64 ": passes 2^64-1",
                  name, i, o->client, o->count, o->first);
    else if (o->last - o->first != o->count - 1)
        hist_note(r, HISTORY_RULE_RANGE, "seq %s: op #%zu (client %" PRIu32 ") asked for %" PRIu64 " IDs but got [%" PRIu64 ",%" PRIu64 "] (%" PRIu64 ")",
                  name, i, o->client, o->count, o->first, o->last, o->last - o->first + 1);
    else if (o->first == 0)
        hist_note(r, HISTORY_RULE_RANGE, "seq %s: op #%zu (client %" PRIu32 ") got ID 0, which is never handed out",
                  name, i, o->client);
    return true;
}

/* Rule 1 and the gap figures: with the ranges of a sequence sorted by
 * first, a range overlaps an earlier one iff it starts at or below the
 * highest last seen so far. */
static void hist_check_unique(hist_ctx *c)
{
    qsort(c->it, c->n, sizeof *c->it, hist_by_seq_first);
    for (size_t g = 0; g < c->n;) {
        size_t e = g;
        uint64_t maxlast = 0, sum = 0;
        size_t arg = g;
        for (; e < c->n && c->it[e].seq == c->it[g].seq; e++) {
            const hist_item *x = &c->it[e];
            if (e > g && x->first <= maxlast) {
                const hist_item *y = &c->it[arg];
                hist_note(c->r, HISTORY_RULE_UNIQUE,
                          "seq %s: ID %" PRIu64 " handed out twice: op #%zu (client %" PRIu32 ") got [%" PRIu64 ",%" PRIu64
                          "], op #%zu (client %" PRIu32 ") got [%" PRIu64 ",%" PRIu64 "]",
                          c->h->names[x->seq], x->first, y->idx, y->client, y->first, y->last,
                          x->idx, x->client, x->first, x->last);
            }
            if (e == g || x->last > maxlast) {
                maxlast = x->last;
                arg = e;
            }
            sum = hist_sat_add(sum, x->last - x->first + 1);
        }
        uint64_t span = maxlast - c->it[g].first == UINT64_MAX ? UINT64_MAX : maxlast - c->it[g].first + 1;
        c->r->ids_handed = hist_sat_add(c->r->ids_handed, sum);
        if (span > sum)
            c->r->ids_skipped = hist_sat_add(c->r->ids_skipped, span - sum);
        g = e;
    }
}

/* Fills pmax/parg over [g, e), which is sorted by completion. */
static void hist_prefix_max(hist_ctx *c, size_t g, size_t e)
{
    for (size_t k = g; k < e; k++) {
        if (k == g || c->it[k].last > c->pmax[k - 1]) {
            c->pmax[k] = c->it[k].last;
            c->parg[k] = k;
        } else {
            c->pmax[k] = c->pmax[k - 1];
            c->parg[k] = c->parg[k - 1];
        }
    }
}

/* Index one past the last item of [g, e) (sorted by completion) that
 * completed strictly before t. */
static size_t hist_completed_before(const hist_ctx *c, size_t g, size_t e, int64_t t)
{
    size_t lo = g, hi = e;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (c->it[mid].complete < t)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Rules 3 and 4 are one check over different groups: within a group sorted
 * by completion, the ops that completed before x was invoked form a prefix,
 * and x must start above the highest last in it. O(n log n) overall. */
static void hist_check_realtime(hist_ctx *c, history_rule rule)
{
    bool per_client = rule == HISTORY_RULE_CLIENT;
    qsort(c->it, c->n, sizeof *c->it, per_client ? hist_by_seq_client_complete : hist_by_seq_complete);
    for (size_t g = 0; g < c->n;) {
        size_t e = g;
        while (e < c->n && c->it[e].seq == c->it[g].seq && (!per_client || c->it[e].client == c->it[g].client))
            e++;
        hist_prefix_max(c, g, e);
        for (size_t k = g; k < e; k++) {
            const hist_item *x = &c->it[k];
            size_t p = hist_completed_before(c, g, e, x->invoke);
            if (p == g || c->pmax[p - 1] < x->first)
                continue;
            const hist_item *y = &c->it[c->parg[p - 1]];
            hist_note(c->r, rule,
                      "seq %s: %sop #%zu (client %" PRIu32 ") invoked at %" PRId64 " got [%" PRIu64 ",%" PRIu64
                      "], but op #%zu (client %" PRIu32 ") completed at %" PRId64 " with [%" PRIu64 ",%" PRIu64 "]",
                      c->h->names[x->seq], per_client ? "same client: " : "", x->idx, x->client, x->invoke,
                      x->first, x->last, y->idx, y->client, y->complete, y->first, y->last);
        }
        g = e;
    }
}

/* Rule 5, per crash and sequence: the highest ID acknowledged before the
 * crash (prefix max by completion) must be below the lowest ID of any op
 * invoked after it (suffix min by invocation). O(log n) per pair. */
static int hist_check_crashes(hist_ctx *c)
{
    const history *h = c->h;
    if (!h->ncrashes || !c->n)
        return 0;
    hist_item *byinv = malloc(c->n * sizeof *byinv);
    uint64_t *smin = malloc(c->n * sizeof *smin);
    size_t *sarg = malloc(c->n * sizeof *sarg);
    if (!byinv || !smin || !sarg) {
        free(byinv);
        free(smin);
        free(sarg);
        return ENOMEM;
    }
    memcpy(byinv, c->it, c->n * sizeof *byinv);
    qsort(c->it, c->n, sizeof *c->it, hist_by_seq_complete);
    qsort(byinv, c->n, sizeof *byinv, hist_by_seq_invoke);
    for (size_t g = 0; g < c->n;) {
        size_t e = g;
        while (e < c->n && c->it[e].seq == c->it[g].seq)
            e++;
        /* Both arrays are grouped by seq the same way, so [g, e) matches. */
        hist_prefix_max(c, g, e);
        for (size_t k = e; k-- > g;) {
            if (k == e - 1 || byinv[k].first < smin[k + 1]) {
                smin[k] = byinv[k].first;
                sarg[k] = k;
            } else {
                smin[k] = smin[k + 1];
                sarg[k] = sarg[k + 1];
            }
        }
        for (size_t ci = 0; ci < h->ncrashes; ci++) {
            int64_t t = h->crashes[ci].time_us;
            size_t p = hist_completed_before(c, g, e, t);
            size_t lo = g, hi = e;      /* first op invoked strictly after t */
            while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                if (byinv[mid].invoke <= t)
                    lo = mid + 1;
                else
                    hi = mid;
            }
            if (p == g || lo == e || c->pmax[p - 1] < smin[lo])
                continue;
            const hist_item *y = &c->it[c->parg[p - 1]], *x = &byinv[sarg[lo]];
            hist_note(c->r, HISTORY_RULE_CRASH,
                      "seq %s: crash \"%s\" at %" PRId64 ": op #%zu (client %" PRIu32 ") acknowledged [%" PRIu64 ",%" PRIu64
                      "] before it, op #%zu (client %" PRIu32 ") invoked after it got [%" PRIu64 ",%" PRIu64 "]",
                      h->names[x->seq], h->crashes[ci].what, t, y->idx, y->client, y->first, y->last,
                      x->idx, x->client, x->first, x->last);
        }
        g = e;
    }
    free(byinv);
    free(smin);
    free(sarg);
    return 0;
}

int64_t history_check(const history *h, history_report *r)
{
    memset(r, 0, sizeof *r);
    hist_ctx c = { .h = h, .r = r };
    c.it = malloc((h->nops ? h->nops : 1) * sizeof *c.it);
    c.pmax = malloc((h->nops ? h->nops : 1) * sizeof *c.pmax);
    c.parg = malloc((h->nops ? h->nops : 1) * sizeof *c.parg);
    int rc = !c.it || !c.pmax || !c.parg ? ENOMEM : 0;
    for (size_t i = 0; !rc && i < h->nops; i++) {
        const history_op *o = &h->ops[i];
        r->ops++;
        if (o->outcome == HISTORY_FAIL)
            r->failed++;
        else if (o->outcome == HISTORY_UNKNOWN)
            r->unknown++;
        else {
            r->ok++;
            if (hist_check_range(h, i, r))
                c.it[c.n++] = (hist_item){ o->seq, o->client, o->first, o->last, o->invoke_us, o->complete_us, i };
        }
    }
    if (!rc) {
        hist_check_unique(&c);
        hist_check_realtime(&c, HISTORY_RULE_REALTIME);
        hist_check_realtime(&c, HISTORY_RULE_CLIENT);
        rc = hist_check_crashes(&c);
    }
    free(c.it);
    free(c.pmax);
    free(c.parg);
    if (rc) {
        memset(r, 0, sizeof *r);
        errno = rc;
        return -1;
    }
    r->availability = r->ops ? (double)r->ok / (double)r->ops : 0.0;
    r->gap_ratio = r->ids_handed ? (double)r->ids_skipped / (double)r->ids_handed : 0.0;
    return (int64_t)r->violations;
}

double history_availability(const history *h, int64_t t0_us, int64_t t1_us, uint64_t *attempted)
{
    uint64_t n = 0, ok = 0;
    for (size_t i = 0; i < h->nops; i++) {
        const history_op *o = &h->ops[i];
        if (o->invoke_us < t0_us || o->invoke_us >= t1_us)
            continue;
        n++;
        ok += o->outcome == HISTORY_OK;
    }
    if (attempted)
        *attempted = n;
    return n ? (double)ok / (double)n : 0.0;
}

int history_summary(char *buf, size_t len, const char *scenario, const history_report *r)
{
    return snprintf(buf, len,
                    "scenario=%s ops=%" PRIu64 " ok=%" PRIu64 " failed=%" PRIu64 " unknown=%" PRIu64
                    " availability=%.4f gap_ratio=%.4f violations=%" PRIu64,
                    scenario, r->ops, r->ok, r->failed, r->unknown, r->availability, r->gap_ratio,
                    r->violations);
}

void history_print_report(FILE *f, const char *scenario, const history_report *r)
{
    char line[512];
    history_summary(line, sizeof line, scenario, r);
    fprintf(f, "%s\n", line);
    for (int i = 0; i < r->shown; i++)
        fprintf(f, "  violation: %s\n", r->msg[i]);
    if (r->violations > (uint64_t)r->shown)
        fprintf(f, "  ... and %" PRIu64 " more\n", r->violations - (uint64_t)r->shown);
}
