/* net/auth.h — the cluster secret and the challenge-response that peers
 * and admin commands run before anything else on a link (DESIGN.md §3,
 * "Authentication"), over OpenSSL's libcrypto (HMAC-SHA256).
 *
 * The exchange (proto.h, MSG_AUTH): the connector sends a fresh nonce Nc;
 * the listener answers a fresh nonce Ns and HMAC(K, "seqd listener" | Nc |
 * Ns); the connector checks it (so a connector never talks to an impostor)
 * and answers HMAC(K, "seqd connector" | Nc | Ns); the listener checks
 * that and says AUTH_OK. Fresh nonces on both sides make a recorded
 * exchange useless to replay; the labels keep one side's MAC from being
 * reflected as the other's. Cluster id, member set and R are compared in
 * the hello that follows, inside the authenticated link.
 *
 * Only `serve` and admin commands call these: `seqd fetch` never touches
 * libcrypto (its start-up cost is measured in the README).
 */
#ifndef SEQD_AUTH_H
#define SEQD_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../proto.h"

#define AUTH_SECRET_MIN 32
#define AUTH_SECRET_MAX 1024

typedef struct auth_secret {
    uint8_t key[AUTH_SECRET_MAX];
    size_t len;
} auth_secret;

/* Reads PATH: at least AUTH_SECRET_MIN bytes (a trailing newline is not
 * part of it), not readable by others (mode & 007 == 0). -1 with a message. */
int auth_load_secret(const char *path, auth_secret *s, char *err, size_t errlen);

/* 16 fresh random bytes (getrandom). -1 if the kernel has none. */
int auth_nonce(uint8_t out[SEQD_NONCE_LEN]);

/* HMAC(K, label | nc | ns). */
enum auth_role { AUTH_ROLE_LISTENER, AUTH_ROLE_CONNECTOR };
void auth_mac(const auth_secret *s, enum auth_role role, const uint8_t nc[SEQD_NONCE_LEN],
              const uint8_t ns[SEQD_NONCE_LEN], uint8_t out[SEQD_MAC_LEN]);

/* Constant-time check of a received MAC. */
bool auth_mac_ok(const auth_secret *s, enum auth_role role, const uint8_t nc[SEQD_NONCE_LEN],
                 const uint8_t ns[SEQD_NONCE_LEN], const uint8_t mac[SEQD_MAC_LEN]);

/* The bearer token of the HTTP admin API: HMAC(K, "admin"), hex. */
void auth_admin_token(const auth_secret *s, char out[2 * SEQD_MAC_LEN + 1]);

/* Whether HOST:PORT (or a conn_addr string) names a loopback address:
 * 127.0.0.0/8, ::1 or localhost. Protected mode (no secret) takes peer
 * hellos and admin commands only over loopback. */
bool auth_addr_loopback(const char *hostport);

#endif
