/* net/auth.h — the cluster secret, the challenge-response that peers and
 * admin commands run before anything else on a link (DESIGN.md §3,
 * "Authentication"), and the keyed hash that net/mac.h puts on every
 * frame after it, over OpenSSL's libcrypto (HMAC-SHA256).
 *
 * The exchange (proto.h, MSG_AUTH), K the secret, S the listener's slot
 * (its index in the sorted member set, as the connector knows it):
 *   connector -> AUTH_HELLO      Nc (fresh)
 *   listener  -> AUTH_CHALLENGE  Ns (fresh), HMAC(K, "seqd listener" | Nc | Ns | S)
 *   connector -> AUTH_PROOF      HMAC(K, "seqd connector" | Nc | Ns | S)
 *   listener  -> AUTH_OK
 * The connector checks the challenge (so it never talks to an impostor),
 * the listener the proof. Fresh nonces on both sides make a recorded
 * exchange useless to replay; the labels keep one side's MAC from being
 * reflected as the other's; S keeps a relay from steering a link meant
 * for member D to member A (both hold K): the connector would count A's
 * votes twice. Both sides then hold the session key
 *   Ks = HMAC(K, "seqd session" | Nc | Ns | S)
 * under which every later frame carries a tag (net/mac.h). The cluster id
 * cannot be bound here: a member that lost its data learns it only inside
 * the authenticated link, and init has none yet. It, the member set and R
 * are compared in the hello that follows, which the frame MAC covers.
 *
 * The exchange is a pure step function (auth_step): state and one
 * incoming MSG_AUTH in, the message to send and a verdict out; the front
 * end, the peer link and `seqd init` drive it, and the fuzz target
 * (tests/fuzz/fuzz_auth.c) drives it without sockets.
 *
 * Only `serve` and admin commands load libcrypto (auth_load_secret,
 * auth_set_secret): `seqd fetch` never does (its start-up cost is
 * measured in the README); nothing else here may be called before.
 */
#ifndef SEQD_AUTH_H
#define SEQD_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "../proto.h"

#define AUTH_SECRET_MIN 32
#define AUTH_SECRET_MAX 1024
#define AUTH_KEY_LEN 32   /* a session key */

typedef struct auth_secret {
    uint8_t key[AUTH_SECRET_MAX];
    size_t len;
} auth_secret;

/* Reads PATH: at least AUTH_SECRET_MIN bytes (a trailing newline is not
 * part of it), not readable by others (mode & 007 == 0). -1 with a message. */
int auth_load_secret(const char *path, auth_secret *s, char *err, size_t errlen);

/* The secret from memory (tests, fuzz targets): AUTH_SECRET_MIN..MAX
 * bytes. Loads libcrypto like auth_load_secret. -1 with a message. */
int auth_set_secret(auth_secret *s, const void *key, size_t len, char *err, size_t errlen);

/* 16 fresh random bytes (getrandom). -1 if the kernel has none. */
int auth_nonce(uint8_t out[SEQD_NONCE_LEN]);

/* HMAC(K, label | nc | ns | slot): the listener's challenge MAC
 * (AUTH_ROLE_LISTENER) or the connector's proof. */
enum auth_role { AUTH_ROLE_LISTENER, AUTH_ROLE_CONNECTOR };
void auth_mac(const auth_secret *s, enum auth_role role, const uint8_t nc[SEQD_NONCE_LEN],
              const uint8_t ns[SEQD_NONCE_LEN], uint8_t slot, uint8_t out[SEQD_MAC_LEN]);

/* Constant-time check of a received MAC. */
bool auth_mac_ok(const auth_secret *s, enum auth_role role, const uint8_t nc[SEQD_NONCE_LEN],
                 const uint8_t ns[SEQD_NONCE_LEN], uint8_t slot, const uint8_t mac[SEQD_MAC_LEN]);

/* Ks = HMAC(K, "seqd session" | nc | ns | slot). */
void auth_session_key(const auth_secret *s, const uint8_t nc[SEQD_NONCE_LEN],
                      const uint8_t ns[SEQD_NONCE_LEN], uint8_t slot, uint8_t ks[AUTH_KEY_LEN]);

/* ---- the exchange, one message at a time ---- */

enum auth_verdict {
    AUTH_SEND,    /* send *out; the exchange goes on */
    AUTH_DONE,    /* authenticated: ks holds the session key; the listener
                   * sends *out (AUTH_OK) first, untagged, then tags */
    AUTH_REFUSE   /* not authenticated: say only that, and close */
};

enum auth_xstate {
    AUTH_X_IDLE,        /* nothing said yet (a listener's clients stay here) */
    AUTH_X_WAIT_HELLO,  /* listener: begun, waiting for AUTH_HELLO */
    AUTH_X_WAIT_CHAL,   /* connector: sent AUTH_HELLO */
    AUTH_X_WAIT_PROOF,  /* listener: sent AUTH_CHALLENGE */
    AUTH_X_WAIT_OK,     /* connector: sent AUTH_PROOF */
    AUTH_X_DONE,        /* authenticated */
    AUTH_X_FAILED       /* refused; sticky */
};

typedef struct auth_exchange {
    enum auth_role role;
    enum auth_xstate state;
    uint8_t slot;                 /* the listener's */
    uint8_t nc[SEQD_NONCE_LEN], ns[SEQD_NONCE_LEN];
} auth_exchange;

/* A connector starts: *out is the AUTH_HELLO carrying nc (fresh). slot is
 * the member it means to reach (its index in the sorted member set). */
void auth_connector_begin(auth_exchange *x, uint8_t slot, const uint8_t nc[SEQD_NONCE_LEN],
                          seqd_msg *out);
/* A listener starts on its first MSG_AUTH, with ns fresh and slot its own
 * index in the sorted member set. */
void auth_listener_begin(auth_exchange *x, uint8_t slot, const uint8_t ns[SEQD_NONCE_LEN]);
/* One incoming MSG_AUTH (in->type must be MSG_AUTH). Pure: no I/O, no
 * randomness. *out is set for AUTH_SEND and for a listener's AUTH_DONE
 * (out->type 0 when there is nothing to send); ks for AUTH_DONE. Anything
 * out of order, a bad MAC or a message after the end refuses, and the
 * exchange then stays failed. */
enum auth_verdict auth_step(auth_exchange *x, const auth_secret *s, const seqd_msg *in,
                            seqd_msg *out, uint8_t ks[AUTH_KEY_LEN]);
static inline bool auth_done(const auth_exchange *x) { return x->state == AUTH_X_DONE; }

/* ---- a key ready for many MACs (the per-frame tags of net/mac.h) ---- */

/* HMAC-SHA256 under one key, its padded key blocks hashed once: a tag of a
 * small frame then costs two SHA-256 blocks and two context copies (about
 * 0.3 us), where a one-shot HMAC() costs 1.6 us. Not thread-safe: one
 * per link. */
typedef struct auth_hkey auth_hkey;
auth_hkey *auth_hkey_new(const uint8_t *key, size_t len);   /* NULL: out of memory */
void auth_hkey_free(auth_hkey *k);
/* HMAC over the concatenation of the n parts. */
void auth_hkey_mac(auth_hkey *k, const struct iovec *parts, int n, uint8_t out[SEQD_MAC_LEN]);

/* The bearer token of the HTTP admin API: HMAC(K, "admin"), hex. */
void auth_admin_token(const auth_secret *s, char out[2 * SEQD_MAC_LEN + 1]);

/* Whether HOST:PORT (or a conn_addr string) names a loopback address:
 * 127.0.0.0/8, ::1 or localhost. Protected mode (no secret) takes peer
 * hellos and admin commands only over loopback. */
bool auth_addr_loopback(const char *hostport);

#endif
