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

enum seqd_msg_type {
    /* client -> member. payload: u32 timeout_ms | u32 count | u8 fetch_flags
     * | u8 name_len | name. timeout_ms is what is left of the client's
     * deadline when it sent the request: the member works no longer. */
    MSG_FETCH = 1,
    /* member -> client. payload: u64 first | u32 count. IDs [first, first+count). */
    MSG_RANGE = 2,
    /* reply to any request. payload: u16 code (enum seqd_err) | u16 text_len | text */
    MSG_REPLY_ERR = 3,
    /* client or peer -> member. payload: empty */
    MSG_STATUS = 4,
    /* member -> requester. payload: u8 state (enum seqd_state) | u8 self_index
     * | u8 n_members | u8 n_counters | n_counters x (u8 name_len | name |
     * u64 value). Counters travel as (name, value) pairs, as memcached's STAT
     * and Redis's INFO do: a receiver keeps the names it knows
     * (SEQD_STATUS_COUNTERS) and skips the others, so adding one changes no
     * layout. */
    MSG_STATUS_REPLY = 5,
    /* peer -> member, first frame on a peer link. payload: u32 round_timeout_ms
     * | u64 cluster_id | u8 addr_len | addr (the sender's --listen). Answered
     * with MSG_HELLO_OK, or with MSG_ERROR (then close) on any mismatch. */
    MSG_HELLO = 6,
    MSG_HELLO_OK = 7,          /* payload: empty */
    /* peer -> member. payload: u8 name_len | name */
    MSG_READ = 8,
    /* reply to READ. payload: u64 cur */
    MSG_VALUE = 9,
    /* peer -> member. payload: u64 expect | u64 new | u8 name_len | name */
    MSG_ACCEPT = 10,
    /* reply to ACCEPT, sent only once the new value is durable. payload: u64 new */
    MSG_ACK = 11,
    /* reply to ACCEPT. payload: u64 cur (the member's, which was > expect) */
    MSG_NACK = 12,
    /* peer -> member: snapshot of the live table from entry index `start`.
     * payload: u32 start */
    MSG_SNAP_REQ = 13,
    /* reply to SNAP_REQ. payload: u8 snap_flags | 16 bytes cluster id |
     * u32 next | u16 n_entries | n_entries x (u8 name_len | name | u64 cur).
     * `next` is the start of the following chunk; SNAP_DONE marks the last
     * one. The cluster id is the sender's (zero when it has none). */
    MSG_SNAP_CHUNK = 14,
    /* framing error; the sender closes the connection after it.
     * payload: u16 code (enum seqd_ferr) | u16 text_len | text */
    MSG_ERROR = 15,
    /* `seqd init` -> member, on an admin connection (DESIGN.md §3: peers
     * only; without a secret, loopback only). payload: u8 init_op |
     * 16 bytes cluster id | u64 set digest (xxh64 of the sorted,
     * comma-joined member list init was given). INIT_PROBE changes nothing
     * and only says where the member stands; INIT_PREPARE durably records
     * "prepared X" on an empty member; INIT_COMMIT makes a member prepared
     * for X initialized with X. Answered with MSG_INIT_REPLY, or with
     * MSG_REPLY_ERR (set differs, not empty, prepared for another id). */
    MSG_INIT = 16,
    /* reply to MSG_INIT. payload: u8 init_state | 16 bytes cluster id (the
     * prepared or recorded id; zero for INIT_EMPTY) */
    MSG_INIT_REPLY = 17,
    /* Mutual challenge-response under the cluster secret (--secret-file),
     * the first frames on a peer or admin link (net/auth.h). payload:
     * u8 auth_step | 16 bytes nonce | 32 bytes mac (zeros where a step has
     * none). AUTH_HELLO (connector: its nonce) -> AUTH_CHALLENGE (listener:
     * its nonce and HMAC proving it holds the secret) -> AUTH_PROOF
     * (connector: its HMAC) -> AUTH_OK. Any failure: MSG_ERROR "not
     * authenticated", then close. */
    MSG_AUTH = 18,
    MSG_TYPE_MAX = 18
};

enum seqd_auth_step { AUTH_HELLO = 1, AUTH_CHALLENGE = 2, AUTH_PROOF = 3, AUTH_OK = 4 };
#define SEQD_NONCE_LEN 16
#define SEQD_MAC_LEN 32

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

/* snap_flags */
#define SNAP_HAS_STATE 0x01     /* sender is initialized (has a cluster id and its values) */
#define SNAP_DONE 0x02          /* no entries after this chunk */

/* Per-request error codes (MSG_REPLY_ERR). The connection stays open. */
enum seqd_err {
    ERR_BAD_NAME = 1,     /* not 1..128 bytes of [A-Za-z0-9._-] */
    ERR_BAD_COUNT = 2,    /* not 1..SEQD_COUNT_MAX */
    ERR_EXHAUSTED = 3,    /* the range would pass 2^64-1 */
    ERR_RECOVERING = 4,   /* the member is recovering: try another */
    ERR_NOT_PEER = 5,     /* peer-only request on a connection without hello */
    ERR_TIMEOUT = 6,      /* no quorum before the request's deadline */
    ERR_STORAGE = 7,      /* the log could not be written (ENOSPC, EIO) */
    ERR_SHUTDOWN = 8,     /* the member is stopping */
    ERR_BAD_REQUEST = 9,  /* e.g. ACCEPT with new <= expect */
    ERR_INIT_REFUSED = 10, /* MSG_INIT refused: set differs, not empty, ... */
    ERR_MAX = 10
};

/* Framing error codes (MSG_ERROR). The connection is closed. */
enum seqd_ferr {
    FERR_TOO_LONG = 1,    /* length prefix over SEQD_MAX_FRAME */
    FERR_VERSION = 2,     /* unknown protocol version */
    FERR_TYPE = 3,        /* unknown message type */
    FERR_SHORT = 4,       /* payload shorter than its type needs */
    FERR_LONG = 5,        /* payload longer than its type needs */
    FERR_FLAGS = 6,       /* reserved header flags set */
    FERR_HELLO = 7,       /* hello refused: not authenticated, member set or R differ */
    FERR_MAX = 7
};

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
    X(records)    /* records appended to this member's log */

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
        struct { uint32_t round_ms; uint64_t cluster_id; uint8_t addr_len; const char *addr; } hello;
        struct { struct seqd_name name; } read;
        struct { uint64_t cur; } value;         /* VALUE, NACK */
        struct { uint64_t expect, new_; struct seqd_name name; } accept;
        struct { uint64_t new_; } ack;
        struct { uint32_t start; } snap_req;
        struct { uint8_t op; struct seqd_cid cid; uint64_t set_digest; } init;
        struct { uint8_t state; struct seqd_cid cid; } init_reply;
        struct { uint8_t step; uint8_t nonce[SEQD_NONCE_LEN], mac[SEQD_MAC_LEN]; } auth;
        struct {
            uint8_t flags; struct seqd_cid cid; uint32_t next; uint16_t n;
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
