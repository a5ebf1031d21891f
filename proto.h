/* proto.h — the seqd wire format, the single description of it.
 *
 * One TCP port per member carries client and peer traffic. Every message is
 * a frame; all integers are big-endian (network byte order):
 *
 *   offset size  field
 *   0      4     len      bytes that follow this field (header rest + payload)
 *   4      1     version  SEQD_PROTO_VERSION
 *   5      1     type     enum seqd_msg_type
 *   6      2     flags    0 (reserved; non-zero is a framing error)
 *   8      8     reqid    chosen by the requester, echoed by the reply
 *   16     ...   payload  layout per type, below; must be exactly as long
 *                         as the type needs (variable parts carry lengths)
 *
 * A whole frame (prefix included) is at most SEQD_MAX_FRAME bytes.
 *
 * Framing errors (length over the maximum, bad version, unknown type, flags
 * set, payload shorter or longer than its type needs) are answered with an
 * MSG_ERROR frame and the connection is closed; other connections are not
 * affected. Request errors (bad name, bad count, exhausted, recovering, not a
 * peer, ...) are answered with MSG_REPLY_ERR for that reqid and the
 * connection stays open.
 *
 * Authenticated links (DESIGN.md §3): with a cluster secret, a peer or
 * admin link opens with the MSG_AUTH exchange (below; net/auth.h). From
 * then on every frame in both directions is followed by a tag:
 *
 *   frame (as above, its len unchanged) | tag (SEQD_TAG_LEN bytes)
 *
 *   tag = first 16 bytes of HMAC-SHA256(Ks, dir | u64 seq | frame)
 *   Ks  = HMAC-SHA256(K, "seqd session" | Nc | Ns | slot)   (net/auth.h)
 *   dir = u8 SEQD_DIR_CONNECTOR for frames the connector sends,
 *         SEQD_DIR_LISTENER for frames the listener sends
 *   seq = frames this side has sent (tagged) on the link before this one:
 *         0, 1, 2, ... per direction; implicit, never sent
 *
 * "From then on": the listener tags what it sends after its AUTH_OK and
 * expects tags on what arrives after the AUTH_PROOF it accepted; the
 * connector tags what it sends after it received AUTH_OK, and expects tags
 * on what arrives after it. The tag sits outside the frame so that a frame
 * is at most SEQD_MAX_FRAME bytes either way (snapshot chunks fill it).
 * A tag that is wrong — a frame altered, injected, replayed, reordered,
 * reflected back to its sender, or taken from another link — closes that
 * connection at once, without a reply; the receiver logs it. A peer link
 * then reconnects and authenticates afresh (new nonces: a new Ks, seq 0).
 * Client connections (fetch, status) never authenticate and carry no tags.
 *
 * Names travel as u8 length + bytes (no NUL). The codec checks only the
 * structure; the meaning (name charset, count range, ACCEPT new > expect) is
 * checked by seqd_name_valid / seqd_count_valid / seqd_accept_valid at the
 * place that answers the request, so that it can refuse with a reply.
 */
#ifndef SEQD_PROTO_H
#define SEQD_PROTO_H

/* seqd's own build (the Makefile defines SEQD_BUILD) keeps its assertions
 * on; a program that includes the installed client headers may use NDEBUG. */
#if defined(NDEBUG) && defined(SEQD_BUILD)
#error "seqd keeps its assertions on in every build"
#endif

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define SEQD_PROTO_VERSION 1
#define SEQD_MAX_FRAME 65536u   /* whole frame, length prefix included */
#define SEQD_HDR_LEN 16u        /* length prefix + header */
#define SEQD_NAME_MAX 128u
#define SEQD_COUNT_MAX 1000000u
#define SEQD_TEXT_MAX 512u      /* error text in MSG_REPLY_ERR / MSG_ERROR */
#define SEQD_ADDR_MAX 255u      /* HOST:PORT in a hello */
#define SEQD_MAX_MEMBERS 15
#define SEQD_SLOTS_MAX 4096u    /* a comma-joined set in SWITCH_REPLY */

/* Message types and their payloads. Requests are answered with the reply
 * named, or with MSG_REPLY_ERR for that reqid.
 *
 * FETCH        client -> member: u32 timeout_ms | u32 count | u8 fetch_flags
 *              | u8 name_len | name. timeout_ms is what is left of the
 *              client's deadline when it sent the request: the member works
 *              no longer. Answered with RANGE.
 * RANGE        u64 first | u32 count: the IDs [first, first+count).
 * REPLY_ERR    reply to any request: u16 code (enum seqd_err) | u16 text_len
 *              | text.
 * STATUS       client or peer -> member, empty. Answered with STATUS_REPLY:
 *              u8 state (enum seqd_state) | u8 self_index | u8 n_members |
 *              u8 n_counters | n_counters x (u8 name_len | name | u64 value).
 *              Counters travel as (name, value) pairs, as memcached's STAT
 *              and Redis's INFO do: a receiver keeps the names it knows
 *              (SEQD_STATUS_COUNTERS) and skips the others, so adding one
 *              changes no layout.
 * HELLO        peer -> member, first frame on a peer link (after AUTH when
 *              there is a secret): u32 round_timeout_ms | u64 set digest (of
 *              the sender's epoch; field cluster_id) | inc (the sender's;
 *              counter 0 before it has one) | u8 addr_len | addr (the
 *              sender's --listen) | u64 epoch. Answered with HELLO_OK
 *              (empty), or with ERROR (then close) on any mismatch; an
 *              incarnation that the member recorded as superseded gets
 *              "rolled back: recorded incarnation C nonce N position P"
 *              (the sender is rolled back: quorum/incarnation.h); another
 *              epoch gets "epoch E digest D" and, when the member's epoch
 *              came from a switch, " switch E-1 SLOT OLD NEW" (DESIGN.md §6,
 *              quorum/epoch.h): the sender adopts it when it is exactly at
 *              E-1, and exits when it is OLD.
 * READ         peer -> member: u64 epoch | u64 digest | u8 name_len | name.
 *              Answered with VALUE: u64 cur | inc. READ, ACCEPT and SNAP_REQ
 *              of another (epoch, digest) than the member's are answered
 *              with REPLY_ERR ERR_EPOCH "epoch E" and change nothing.
 * ACCEPT       peer -> member: u64 epoch | u64 digest | u64 expect | u64 new
 *              | u8 name_len | name.
 *              Answered with ACK: u64 new | inc, sent only once the new value
 *              is durable; or NACK: u64 cur (the member's, which was > expect)
 *              | inc.
 * SNAP_REQ     peer -> member: u64 epoch | u64 digest | u32 start | inc (the
 *              reader's), a snapshot of
 *              the live table from entry index `start` (UINT32_MAX: a probe,
 *              no entries). The member durably records the reader's
 *              incarnation before it answers (DESIGN.md §3). Answered with
 *              SNAP_CHUNK: u8 snap_flags | 16 bytes cluster id | inc (the
 *              sender's) | inc (what the sender had recorded for the reader
 *              before this request: its latest earlier incarnation; counter
 *              0 = none) | u32 next | u16 n_entries | n_entries x (u8
 *              name_len | name | u64 cur). `next` is the start of the
 *              following chunk; SNAP_DONE marks the last one. The cluster id
 *              is the sender's (zero when it has none).
 *
 * `inc` is a member's (incarnation counter u64 | nonce u64 | position u64):
 * DESIGN.md §3 "Incarnations and positions", quorum/incarnation.h.
 * ERROR        framing error; the sender closes the connection after it:
 *              u16 code (enum seqd_ferr) | u16 text_len | text.
 * INIT         `seqd init` -> member, on an admin connection (DESIGN.md §3:
 *              peers only; without a secret, loopback only): u8 init_op |
 *              16 bytes cluster id | u64 set digest (xxh64 of the sorted,
 *              comma-joined member list init was given). INIT_PROBE changes
 *              nothing and only says where the member stands; INIT_PREPARE
 *              durably records "prepared X" on an empty member; INIT_COMMIT
 *              makes a member prepared for X initialized with X. Answered
 *              with INIT_REPLY: u8 init_state | 16 bytes cluster id (the
 *              prepared or recorded id; zero for INIT_EMPTY), or with
 *              REPLY_ERR (set differs, not empty, prepared for another id).
 * AUTH         mutual challenge-response under the cluster secret
 *              (--secret-file), the first frames on a peer or admin link
 *              (net/auth.h): u8 auth_step | 16 bytes nonce | 32 bytes mac
 *              (zeros where a step has none). AUTH_HELLO (connector: its
 *              nonce Nc) -> AUTH_CHALLENGE (listener: its nonce Ns and
 *              HMAC(K, "seqd listener" | Nc | Ns | slot) proving it holds the
 *              secret K and is the member of that slot) -> AUTH_PROOF
 *              (connector: HMAC(K, "seqd connector" | Nc | Ns | slot)) ->
 *              AUTH_OK. slot: u8, the listener's index in the sorted member
 *              set (the connector's view of whom it dialed). Any failure:
 *              ERROR "not authenticated", then close. After it, frames carry
 *              tags (above).
 * STOPPED      peer -> member, one-way, on a clean stop (SIGTERM/SIGINT)
 *              once the sender's log is durable: inc, whose position is
 *              where it stopped. The member records it (DESIGN.md §3,
 *              "Clean stop"); no reply.
 * ADVANCE      `seqd advance` -> member, on an admin connection (as INIT):
 *              u32 timeout_ms | u64 value | u8 name_len | name. Makes every
 *              fetch that starts after the reply hand out IDs >= value
 *              (DESIGN.md §5; quorum/coord.h, coord_submit_floor). Answered
 *              with ADVANCED: u64 next (the sequence's NEXT after it, >=
 *              value), or REPLY_ERR (bad name, value 0, timeout, ...).
 * LIST         client -> member: u32 start | u8 prefix_len | prefix (0 to
 *              128 bytes of the name charset). One chunk of the member's
 *              table from entry `start` in its insertion order, the names
 *              that start with prefix. Answered with LIST_CHUNK: u32 next |
 *              u8 list_flags | u16 n_entries | n_entries x (u8 name_len |
 *              name | u64 cur), as SNAP_CHUNK's entries; `next` is the
 *              start of the following chunk, LIST_DONE marks the last one.
 *              `seqd list` merges the chunks of a quorum of members, the
 *              largest cur per name: what a READ would see.
 * TOKEN        client -> member, one-way, the first frame of a client
 *              connection to a member run with --client-token-file (issue
 *              12; client/token.h): u8 len | token. No reply: a wrong or
 *              missing token gets ERROR "not authenticated" and the
 *              connection is closed at its first request. A member without
 *              a client token ignores it.
 *
 * SWITCH       `seqd serve --replaces OLD` -> member, on an admin connection
 *              (as INIT; DESIGN.md §6): u8 switch_op | u8 switch_flags | u8
 *              slot | u64 epoch (the switch's: from which it leads to
 *              epoch+1) | u64 old_inc (the incarnation counter of OLD it
 *              replaces) | u8 len | OLD | u8 len | NEW. SWITCH_PROBE
 *              changes nothing (slot, epoch and old_inc are ignored) and
 *              asks where the member stands for OLD; SWITCH_RECORD durably
 *              records the switch if the member is at exactly that epoch
 *              and OLD holds that slot (refused with ERR_SWITCH_REFUSED when
 *              OLD was heard from within 2R, unless SWITCH_FORCE, or when
 *              OLD started an incarnation above old_inc); SWITCH_DROP
 *              returns a member that holds exactly this switch to the
 *              epoch before (the new member never voted: §6). Answered
 *              with SWITCH_REPLY: u8 switch_state | u8 slot (of OLD in the
 *              member's set; 0xff: not in it) | u8 old_alive (OLD heard
 *              from within 2R) | u64 epoch | u64 digest (the member's now)
 *              | u64 old_inc (the highest incarnation counter it recorded
 *              for that slot) | u16 len | the member's slots, comma-joined
 *              in slot order | the switch that led to its epoch: u8 slot |
 *              u64 old_inc | u8 len | OLD | u8 len | NEW (lengths 0 at
 *              epoch 0). switch_state for a probe: RECORDED when the
 *              member's epoch came from the switch OLD -> NEW, AT_EPOCH
 *              when OLD is in its set, OTHER when neither.
 * One line per type: X(NAME, number). The enum and the names logs print
 * both come from this list. */
#define SEQD_MSG_TYPES(X) \
    X(FETCH, 1)           \
    X(RANGE, 2)           \
    X(REPLY_ERR, 3)       \
    X(STATUS, 4)          \
    X(STATUS_REPLY, 5)    \
    X(HELLO, 6)           \
    X(HELLO_OK, 7)        \
    X(READ, 8)            \
    X(VALUE, 9)           \
    X(ACCEPT, 10)         \
    X(ACK, 11)            \
    X(NACK, 12)           \
    X(SNAP_REQ, 13)       \
    X(SNAP_CHUNK, 14)     \
    X(ERROR, 15)          \
    X(INIT, 16)           \
    X(INIT_REPLY, 17)     \
    X(AUTH, 18)           \
    X(STOPPED, 19)        \
    X(ADVANCE, 20)        \
    X(ADVANCED, 21)       \
    X(LIST, 22)           \
    X(LIST_CHUNK, 23)     \
    X(TOKEN, 24)          \
    X(SWITCH, 25)         \
    X(SWITCH_REPLY, 26)

#define SEQD_MSG_ENUM(name, num) MSG_##name = num,
#define SEQD_ONE2(a, b) +1
enum seqd_msg_type { SEQD_MSG_TYPES(SEQD_MSG_ENUM) MSG_TYPE_MAX = 26 };
/* The codec takes 1..MAX as the known types: the list has no gaps. */
_Static_assert(MSG_TYPE_MAX == 0 SEQD_MSG_TYPES(SEQD_ONE2), "message types 1..MAX, no gaps");
#undef SEQD_MSG_ENUM

enum seqd_auth_step { AUTH_HELLO = 1, AUTH_CHALLENGE = 2, AUTH_PROOF = 3, AUTH_OK = 4 };
#define SEQD_NONCE_LEN 16
#define SEQD_MAC_LEN 32
#define SEQD_TAG_LEN 16         /* the tag after each frame of an authenticated link */
#define SEQD_DIR_CONNECTOR 0x43 /* 'C': dir of the frames a connector sends */
#define SEQD_DIR_LISTENER 0x4c  /* 'L': dir of the frames a listener sends */

/* init_op of MSG_INIT */
enum seqd_init_op { INIT_PROBE = 1, INIT_PREPARE = 2, INIT_COMMIT = 3 };
/* init_state of MSG_INIT_REPLY: where a member stands (DESIGN.md §3). */
enum seqd_init_state {
    INIT_EMPTY = 1,        /* no cluster id, no prepared record, no table records */
    INIT_PREPARED = 2,     /* prepared for the id given (sticky) */
    INIT_INITIALIZED = 3,  /* belongs to the cluster of the id given */
    INIT_RECOVERING = 4,   /* no id yet but holds values, or has heard from an
                              initialized member: recovering into a cluster */
    INIT_WAITING = 5       /* empty, but has not heard from every other member
                              yet: cannot tell whether a cluster exists */
};

/* A cluster id: 128 random bits chosen by `seqd init`, never derived from
 * the addresses. All zero means "none". */
#define SEQD_CID_LEN 16
struct seqd_cid {
    uint8_t b[SEQD_CID_LEN];
};

static inline bool seqd_cid_eq(const struct seqd_cid *a, const struct seqd_cid *b)
{
    return memcmp(a->b, b->b, SEQD_CID_LEN) == 0;
}

/* The id as 32 lowercase hex digits, as logs, init and IDENTITY show it. */
#define SEQD_CID_HEX (2 * SEQD_CID_LEN + 1)
static inline void seqd_cid_hex(const struct seqd_cid *cid, char out[SEQD_CID_HEX])
{
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < SEQD_CID_LEN; i++) {
        out[2 * i] = digits[cid->b[i] >> 4];
        out[2 * i + 1] = digits[cid->b[i] & 15];
    }
    out[2 * SEQD_CID_LEN] = '\0';
}

static inline bool seqd_cid_none(const struct seqd_cid *a)
{
    static const struct seqd_cid zero;
    return seqd_cid_eq(a, &zero);
}

/* fetch_flags */
#define FETCH_NO_FORWARD 0x01   /* reserved for coordinator forwarding */

/* switch_op, switch_flags and switch_state of MSG_SWITCH / SWITCH_REPLY */
enum seqd_switch_op { SWITCH_PROBE = 1, SWITCH_RECORD = 2, SWITCH_DROP = 3 };
#define SWITCH_FORCE 0x01       /* record although OLD was heard from lately */
enum seqd_switch_state {
    SWITCH_AT_EPOCH = 1,    /* at the epoch asked about (probe: its own), not switched */
    SWITCH_RECORDED = 2,    /* holds exactly this switch (epoch+1, its digest) */
    SWITCH_OTHER = 3        /* holds another set: another switch of that epoch, or later */
};

/* list_flags */
#define LIST_DONE 0x01          /* no entries after this chunk */

/* snap_flags */
#define SNAP_HAS_STATE 0x01     /* counts in a recovery: initialized, not marked
                                   rolled back, and verified (quorum/incarnation.h) */
#define SNAP_DONE 0x02          /* no entries after this chunk */
#define SNAP_INITIALIZED 0x04   /* sender has a cluster id (maybe unverified) */
#define SNAP_MARKED 0x08        /* sender is marked rolled back */
#define SNAP_READY 0x10         /* sender serves (it may confirm a clean stop) */
#define SNAP_YOU_STALE 0x20     /* the reader's incarnation is one the sender
                                   recorded as superseded: the reader is rolled
                                   back (the recorded one is in `you`) */
#define SNAP_YOU_STOPPED 0x40   /* `you` is a clean stop at you.pos */

/* A member's incarnation (DESIGN.md §3): a counter above every one it had,
 * a fresh random nonce, and its position (records made durable in it). */
struct seqd_inc {
    uint64_t counter, nonce, pos;
};
#define SEQD_INC_LEN 24

/* Per-request error codes (MSG_REPLY_ERR; the connection stays open), one
 * line each: X(NAME, number, what a client prints). */
#define SEQD_ERRS(X)                                                              \
    X(BAD_NAME, 1, "bad name")              /* not 1..128 bytes of [A-Za-z0-9._-] */ \
    X(BAD_COUNT, 2, "bad count")            /* not 1..SEQD_COUNT_MAX */            \
    X(EXHAUSTED, 3, "sequence exhausted")   /* the range would pass 2^64-1 */      \
    X(RECOVERING, 4, "member recovering")   /* recovering: try another member */   \
    X(NOT_PEER, 5, "not a peer")            /* peer-only request without hello */  \
    X(TIMEOUT, 6, "timeout")                /* no quorum before the deadline */    \
    X(STORAGE, 7, "storage error")          /* the log could not be written */     \
    X(SHUTDOWN, 8, "shutting down")         /* the member is stopping */           \
    X(BAD_REQUEST, 9, "bad request")        /* e.g. ACCEPT with new <= expect */   \
    X(INIT_REFUSED, 10, "init refused")     /* set differs, not empty, ... */     \
    X(EPOCH, 11, "other epoch")             /* a peer request of another epoch */   \
    X(SWITCH_REFUSED, 12, "switch refused") /* --replaces refused (alive, ...) */

/* Framing error codes (MSG_ERROR; the connection is closed), likewise. */
#define SEQD_FERRS(X)                                                            \
    X(TOO_LONG, 1, "frame too long")        /* length prefix over SEQD_MAX_FRAME */ \
    X(VERSION, 2, "bad protocol version")   /* unknown protocol version */        \
    X(TYPE, 3, "unknown message type")      /* unknown message type */            \
    X(SHORT, 4, "payload too short")        /* shorter than its type needs */     \
    X(LONG, 5, "payload too long")          /* longer than its type needs */      \
    X(FLAGS, 6, "reserved flags set")       /* reserved header flags set */       \
    X(HELLO, 7, "hello refused")            /* not authenticated, set or R differ */

#define SEQD_ERR_ENUM(name, num, text) ERR_##name = num,
enum seqd_err { SEQD_ERRS(SEQD_ERR_ENUM) ERR_MAX = 12 };
#undef SEQD_ERR_ENUM
#define SEQD_FERR_ENUM(name, num, text) FERR_##name = num,
enum seqd_ferr { SEQD_FERRS(SEQD_FERR_ENUM) FERR_MAX = 7 };
#undef SEQD_FERR_ENUM
#define SEQD_ONE3(a, b, c) +1
_Static_assert(ERR_MAX == 0 SEQD_ERRS(SEQD_ONE3), "error codes 1..MAX, no gaps");
_Static_assert(FERR_MAX == 0 SEQD_FERRS(SEQD_ONE3), "framing error codes 1..MAX, no gaps");

enum seqd_state { STATE_RECOVERING = 1, STATE_READY = 2, STATE_STOPPING = 3 };

/* The counters of MSG_STATUS_REPLY: one line each, here and nowhere else
 * (the codec, `seqd status` and the member iterate over this list). */
#define SEQD_STATUS_COUNTERS(X)                                          \
    X(fetches)    /* client fetches answered with a range */             \
    X(ids)        /* IDs handed out by this coordinator */               \
    X(rounds)     /* ACCEPT rounds this coordinator started */           \
    X(reads)      /* read phases this coordinator ran */                 \
    X(nacks)      /* NACKs this coordinator received */                  \
    X(fsyncs)     /* fsyncs of this member's log */                      \
    X(records)    /* records appended to this member's log */            \
    X(epoch)      /* the member set's epoch (DESIGN.md §6) */

#define SEQD_STATUS_FIELD(name) uint64_t name;
struct seqd_status {
    uint8_t state, self_index, n_members;
    SEQD_STATUS_COUNTERS(SEQD_STATUS_FIELD)
};
#undef SEQD_STATUS_FIELD

struct seqd_name {
    uint8_t len;
    char s[SEQD_NAME_MAX + 1];  /* NUL-terminated for convenience */
};

/* A decoded message. Variable-size parts point into the frame buffer that
 * was decoded (they live as long as it does). */
typedef struct seqd_msg {
    uint8_t type;
    uint64_t reqid;
    union {
        struct { uint32_t timeout_ms, count; uint8_t flags; struct seqd_name name; } fetch;
        struct { uint64_t first; uint32_t count; } range;
        struct { uint16_t code; uint16_t len; const char *text; } err;  /* REPLY_ERR, ERROR */
        struct seqd_status status;
        struct {
            uint32_t round_ms; uint64_t cluster_id; struct seqd_inc inc;
            uint8_t addr_len; const char *addr;
            uint64_t epoch;   /* cluster_id is the digest of that epoch's set */
        } hello;
        /* READ, ACCEPT and SNAP_REQ carry the sender's (epoch, digest): the
         * member sets them when it sends (the quorum code leaves them 0). */
        struct { uint64_t epoch, digest; struct seqd_name name; } read;
        struct { uint64_t cur; struct seqd_inc inc; } value;         /* VALUE, NACK */
        struct { uint64_t epoch, digest, expect, new_; struct seqd_name name; } accept;
        struct { uint64_t new_; struct seqd_inc inc; } ack;
        struct { uint64_t epoch, digest; uint32_t start; struct seqd_inc inc; } snap_req;
        struct {
            uint8_t op, flags, slot; uint64_t epoch, old_inc;
            uint8_t old_len, new_len; const char *old_addr, *new_addr;
        } sw;           /* SWITCH */
        struct {
            uint8_t state, slot, old_alive; uint64_t epoch, digest, old_inc;
            uint16_t slots_len; const char *slots;
            uint8_t last_slot, last_old_len, last_new_len; uint64_t last_old_inc;
            const char *last_old, *last_new;
        } sw_reply;     /* SWITCH_REPLY */
        struct { struct seqd_inc inc; } stopped;
        struct { uint8_t op; struct seqd_cid cid; uint64_t set_digest; } init;
        struct { uint8_t state; struct seqd_cid cid; } init_reply;
        struct { uint8_t step; uint8_t nonce[SEQD_NONCE_LEN], mac[SEQD_MAC_LEN]; } auth;
        struct { uint32_t timeout_ms; uint64_t value; struct seqd_name name; } advance;
        struct { uint8_t len; const char *token; } token;
        struct { uint64_t next; } advanced;
        struct { uint32_t start; uint8_t prefix_len; const char *prefix; } list;
        struct {
            uint32_t next; uint8_t flags; uint16_t n;
            const uint8_t *entries; uint32_t entries_len;  /* validated by the decoder */
        } list_chunk;
        struct {
            uint8_t flags; struct seqd_cid cid; struct seqd_inc inc, you;
            uint32_t next; uint16_t n;
            const uint8_t *entries; uint32_t entries_len;  /* validated by the decoder */
        } snap;
    } u;
} seqd_msg;

/* 1..128 bytes of [A-Za-z0-9._-]. */
static inline bool seqd_name_valid(const char *s, size_t len)
{
    if (len < 1 || len > SEQD_NAME_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                  (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
        if (!ok)
            return false;
    }
    return true;
}

static inline bool seqd_count_valid(uint64_t n)
{
    return n >= 1 && n <= SEQD_COUNT_MAX;
}

/* ACCEPT(expect, new) must grow the value; new is a uint64 so it cannot pass
 * 2^64-1 on the wire, but expect = 0 is never a legal read value either. */
static inline bool seqd_accept_valid(uint64_t expect, uint64_t new_)
{
    return expect >= 1 && new_ > expect;
}

/* Snapshot chunk entries: u8 name_len | name | u64 cur, packed. */
#define SNAP_ENTRY_MAX (1u + SEQD_NAME_MAX + 8u)

static inline size_t snap_entry_put(uint8_t *p, const char *name, uint8_t len, uint64_t cur)
{
    p[0] = len;
    memcpy(p + 1, name, len);
    for (int i = 0; i < 8; i++)
        p[1 + len + i] = (uint8_t)(cur >> (56 - 8 * i));
    return 1u + len + 8u;
}

/* Walks entries that the decoder already validated. Returns false at the end. */
static inline bool snap_entry_next(const uint8_t **p, const uint8_t *end,
                                   struct seqd_name *name, uint64_t *cur)
{
    if (*p >= end)
        return false;
    const uint8_t *q = *p;
    name->len = q[0];
    memcpy(name->s, q + 1, name->len);
    name->s[name->len] = '\0';
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | q[1 + name->len + i];
    *cur = v;
    *p = q + 1 + name->len + 8;
    return true;
}

static inline void seqd_name_set(struct seqd_name *n, const char *s, size_t len)
{
    n->len = (uint8_t)len;
    memcpy(n->s, s, len);
    n->s[len] = '\0';
}

#endif
