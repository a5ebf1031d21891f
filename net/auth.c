/* net/auth.c — cluster secret and HMAC challenge-response (auth.h). */
#include "auth.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <dlfcn.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

/* libcrypto is opened on first use, not linked: loading it at start-up
 * doubled the process time of `seqd fetch`, which never needs it (only
 * `serve` and `init` do, and they load it before their first MAC). */
static struct {
    unsigned char *(*hmac)(const EVP_MD *, const void *, int, const unsigned char *, size_t,
                           unsigned char *, unsigned int *);
    const EVP_MD *(*sha256)(void);
    int (*memcmp_)(const void *, const void *, size_t);
    /* for auth_hkey: the digest API, whose contexts can be copied */
    EVP_MD_CTX *(*md_new)(void);
    void (*md_free)(EVP_MD_CTX *);
    int (*md_copy)(EVP_MD_CTX *, const EVP_MD_CTX *);
    int (*md_init)(EVP_MD_CTX *, const EVP_MD *, ENGINE *);
    int (*md_update)(EVP_MD_CTX *, const void *, size_t);
    int (*md_final)(EVP_MD_CTX *, unsigned char *, unsigned int *);
} ossl;

static int auth_open_crypto(char *err, size_t errlen)
{
    if (ossl.hmac)
        return 0;
    void *h = dlopen(SEQD_LIBCRYPTO_SONAME, RTLD_NOW | RTLD_LOCAL);
    if (!h)
        h = dlopen("libcrypto.so", RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        snprintf(err, errlen, "cannot load OpenSSL's libcrypto (%s): %s", SEQD_LIBCRYPTO_SONAME,
                 dlerror());
        return -1;
    }
    *(void **)&ossl.sha256 = dlsym(h, "EVP_sha256");
    *(void **)&ossl.memcmp_ = dlsym(h, "CRYPTO_memcmp");
    *(void **)&ossl.md_new = dlsym(h, "EVP_MD_CTX_new");
    *(void **)&ossl.md_free = dlsym(h, "EVP_MD_CTX_free");
    *(void **)&ossl.md_copy = dlsym(h, "EVP_MD_CTX_copy_ex");
    *(void **)&ossl.md_init = dlsym(h, "EVP_DigestInit_ex");
    *(void **)&ossl.md_update = dlsym(h, "EVP_DigestUpdate");
    *(void **)&ossl.md_final = dlsym(h, "EVP_DigestFinal_ex");
    *(void **)&ossl.hmac = dlsym(h, "HMAC");   /* last: it says "all loaded" */
    if (!ossl.hmac || !ossl.sha256 || !ossl.memcmp_ || !ossl.md_new || !ossl.md_free ||
        !ossl.md_copy || !ossl.md_init || !ossl.md_update || !ossl.md_final) {
        ossl.hmac = NULL;
        snprintf(err, errlen, "libcrypto lacks HMAC / EVP_sha256 / CRYPTO_memcmp / EVP_Digest*");
        return -1;
    }
    return 0;
}

int auth_load_secret(const char *path, auth_secret *s, char *err, size_t errlen)
{
    if (auth_open_crypto(err, errlen) < 0)
        return -1;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "cannot open secret file %s: %s", path, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "secret file %s is not a regular file", path);
        close(fd);
        return -1;
    }
    if (st.st_mode & 007) {
        snprintf(err, errlen, "secret file %s is readable by others (mode %03o): chmod 600 it",
                 path, (unsigned)(st.st_mode & 0777));
        close(fd);
        return -1;
    }
    ssize_t n = read(fd, s->key, sizeof s->key);
    char extra;
    bool more = n == (ssize_t)sizeof s->key && read(fd, &extra, 1) == 1;
    close(fd);
    if (n < 0 || more) {
        snprintf(err, errlen, "cannot read secret file %s: %s", path,
                 more ? "longer than 1024 bytes" : strerror(errno));
        return -1;
    }
    while (n > 0 && (s->key[n - 1] == '\n' || s->key[n - 1] == '\r'))
        n--;
    if (n < AUTH_SECRET_MIN) {
        snprintf(err, errlen, "secret file %s holds %zd bytes: at least %d are needed "
                              "(e.g. head -c 32 /dev/urandom | base64 > FILE)", path, n,
                 AUTH_SECRET_MIN);
        return -1;
    }
    s->len = (size_t)n;
    return 0;
}

int auth_set_secret(auth_secret *s, const void *key, size_t len, char *err, size_t errlen)
{
    if (auth_open_crypto(err, errlen) < 0)
        return -1;
    if (len < AUTH_SECRET_MIN || len > AUTH_SECRET_MAX) {
        snprintf(err, errlen, "a secret of %zu bytes: want %d to %d", len, AUTH_SECRET_MIN,
                 AUTH_SECRET_MAX);
        return -1;
    }
    memcpy(s->key, key, len);
    s->len = len;
    return 0;
}

int auth_nonce(uint8_t out[SEQD_NONCE_LEN])
{
    return getrandom(out, SEQD_NONCE_LEN, 0) == SEQD_NONCE_LEN ? 0 : -1;
}

/* HMAC(K, label | nc | ns | slot), the one shape of every MAC of the
 * exchange and of the session key. */
static void auth_hmac3(const auth_secret *s, const char *label, const uint8_t nc[SEQD_NONCE_LEN],
                       const uint8_t ns[SEQD_NONCE_LEN], uint8_t slot, uint8_t out[SEQD_MAC_LEN])
{
    uint8_t msg[16 + 2 * SEQD_NONCE_LEN + 1];
    size_t ll = strlen(label);
    assert(ll <= 16);
    memcpy(msg, label, ll);
    memcpy(msg + ll, nc, SEQD_NONCE_LEN);
    memcpy(msg + ll + SEQD_NONCE_LEN, ns, SEQD_NONCE_LEN);
    msg[ll + 2 * SEQD_NONCE_LEN] = slot;
    unsigned int outlen = SEQD_MAC_LEN;
    assert(ossl.hmac);   /* auth_load_secret opened it: no secret, no MAC */
    ossl.hmac(ossl.sha256(), s->key, (int)s->len, msg, ll + 2 * SEQD_NONCE_LEN + 1, out, &outlen);
}

void auth_mac(const auth_secret *s, enum auth_role role, const uint8_t nc[SEQD_NONCE_LEN],
              const uint8_t ns[SEQD_NONCE_LEN], uint8_t slot, uint8_t out[SEQD_MAC_LEN])
{
    static const char *const label[] = {[AUTH_ROLE_LISTENER] = "seqd listener",
                                        [AUTH_ROLE_CONNECTOR] = "seqd connector"};
    auth_hmac3(s, label[role], nc, ns, slot, out);
}

bool auth_mac_ok(const auth_secret *s, enum auth_role role, const uint8_t nc[SEQD_NONCE_LEN],
                 const uint8_t ns[SEQD_NONCE_LEN], uint8_t slot, const uint8_t mac[SEQD_MAC_LEN])
{
    uint8_t want[SEQD_MAC_LEN];
    auth_mac(s, role, nc, ns, slot, want);
    return ossl.memcmp_(want, mac, SEQD_MAC_LEN) == 0;
}

void auth_session_key(const auth_secret *s, const uint8_t nc[SEQD_NONCE_LEN],
                      const uint8_t ns[SEQD_NONCE_LEN], uint8_t slot, uint8_t ks[AUTH_KEY_LEN])
{
    auth_hmac3(s, "seqd session", nc, ns, slot, ks);
}

/* ---- the exchange ---- */

static void auth_msg(seqd_msg *out, uint64_t reqid, uint8_t step)
{
    memset(out, 0, sizeof *out);
    out->type = MSG_AUTH;
    out->reqid = reqid;
    out->u.auth.step = step;
}

void auth_connector_begin(auth_exchange *x, uint8_t slot, const uint8_t nc[SEQD_NONCE_LEN],
                          seqd_msg *out)
{
    *x = (auth_exchange){.role = AUTH_ROLE_CONNECTOR, .state = AUTH_X_WAIT_CHAL, .slot = slot};
    memcpy(x->nc, nc, SEQD_NONCE_LEN);
    auth_msg(out, 0, AUTH_HELLO);
    memcpy(out->u.auth.nonce, nc, SEQD_NONCE_LEN);
}

void auth_listener_begin(auth_exchange *x, uint8_t slot, const uint8_t ns[SEQD_NONCE_LEN])
{
    *x = (auth_exchange){.role = AUTH_ROLE_LISTENER, .state = AUTH_X_WAIT_HELLO, .slot = slot};
    memcpy(x->ns, ns, SEQD_NONCE_LEN);
}

/* The transitions, one per (state, step): every other pair refuses. The
 * replies echo the request id (init's blocking client matches on it). */
enum auth_verdict auth_step(auth_exchange *x, const auth_secret *s, const seqd_msg *in,
                            seqd_msg *out, uint8_t ks[AUTH_KEY_LEN])
{
    assert(in->type == MSG_AUTH);
    memset(out, 0, sizeof *out);
    uint8_t step = in->u.auth.step;
    switch (x->state) {
    case AUTH_X_WAIT_HELLO:
        if (step != AUTH_HELLO)
            break;
        memcpy(x->nc, in->u.auth.nonce, SEQD_NONCE_LEN);
        auth_msg(out, in->reqid, AUTH_CHALLENGE);
        memcpy(out->u.auth.nonce, x->ns, SEQD_NONCE_LEN);
        auth_mac(s, AUTH_ROLE_LISTENER, x->nc, x->ns, x->slot, out->u.auth.mac);
        x->state = AUTH_X_WAIT_PROOF;
        return AUTH_SEND;
    case AUTH_X_WAIT_CHAL:
        if (step != AUTH_CHALLENGE ||
            !auth_mac_ok(s, AUTH_ROLE_LISTENER, x->nc, in->u.auth.nonce, x->slot, in->u.auth.mac))
            break;
        memcpy(x->ns, in->u.auth.nonce, SEQD_NONCE_LEN);
        auth_msg(out, in->reqid, AUTH_PROOF);
        auth_mac(s, AUTH_ROLE_CONNECTOR, x->nc, x->ns, x->slot, out->u.auth.mac);
        x->state = AUTH_X_WAIT_OK;
        return AUTH_SEND;
    case AUTH_X_WAIT_PROOF:
        if (step != AUTH_PROOF ||
            !auth_mac_ok(s, AUTH_ROLE_CONNECTOR, x->nc, x->ns, x->slot, in->u.auth.mac))
            break;
        auth_msg(out, in->reqid, AUTH_OK);
        auth_session_key(s, x->nc, x->ns, x->slot, ks);
        x->state = AUTH_X_DONE;
        return AUTH_DONE;
    case AUTH_X_WAIT_OK:
        if (step != AUTH_OK)
            break;
        auth_session_key(s, x->nc, x->ns, x->slot, ks);
        x->state = AUTH_X_DONE;
        return AUTH_DONE;
    case AUTH_X_IDLE:
    case AUTH_X_DONE:
    case AUTH_X_FAILED:
        break;
    }
    x->state = AUTH_X_FAILED;
    return AUTH_REFUSE;
}

/* ---- keys for many MACs ---- */

/* inner/outer: the SHA-256 states after K^ipad and K^opad (RFC 2104);
 * work: the context each MAC copies them into. */
struct auth_hkey {
    EVP_MD_CTX *inner, *outer, *work;
};

auth_hkey *auth_hkey_new(const uint8_t *key, size_t len)
{
    assert(ossl.hmac && len <= 64);   /* a session key: shorter than the block */
    auth_hkey *k = calloc(1, sizeof *k);
    if (!k)
        return NULL;
    k->inner = ossl.md_new();
    k->outer = ossl.md_new();
    k->work = ossl.md_new();
    uint8_t ipad[64], opad[64];
    for (size_t i = 0; i < 64; i++) {
        uint8_t b = i < len ? key[i] : 0;
        ipad[i] = b ^ 0x36;
        opad[i] = b ^ 0x5c;
    }
    if (!k->inner || !k->outer || !k->work || ossl.md_init(k->inner, ossl.sha256(), NULL) != 1 ||
        ossl.md_update(k->inner, ipad, 64) != 1 || ossl.md_init(k->outer, ossl.sha256(), NULL) != 1 ||
        ossl.md_update(k->outer, opad, 64) != 1) {
        auth_hkey_free(k);
        return NULL;
    }
    return k;
}

void auth_hkey_free(auth_hkey *k)
{
    if (!k)
        return;
    ossl.md_free(k->inner);   /* EVP_MD_CTX_free(NULL) is a no-op */
    ossl.md_free(k->outer);
    ossl.md_free(k->work);
    free(k);
}

/* H(K^opad | H(K^ipad | parts)). A digest call fails only out of memory
 * or on a broken library; a tag is then not computed, and a link must not
 * go on with a made-up one: abort (assertions stay on in every build). */
void auth_hkey_mac(auth_hkey *k, const struct iovec *parts, int n, uint8_t out[SEQD_MAC_LEN])
{
    uint8_t h[SEQD_MAC_LEN];
    int ok = ossl.md_copy(k->work, k->inner);
    for (int i = 0; i < n && ok == 1; i++)
        ok = ossl.md_update(k->work, parts[i].iov_base, parts[i].iov_len);
    ok = ok == 1 && ossl.md_final(k->work, h, NULL) == 1 && ossl.md_copy(k->work, k->outer) == 1 &&
         ossl.md_update(k->work, h, sizeof h) == 1 && ossl.md_final(k->work, out, NULL) == 1;
    assert(ok);
}

void auth_admin_token(const auth_secret *s, char out[2 * SEQD_MAC_LEN + 1])
{
    uint8_t mac[SEQD_MAC_LEN];
    unsigned int outlen = SEQD_MAC_LEN;
    assert(ossl.hmac);
    ossl.hmac(ossl.sha256(), s->key, (int)s->len, (const uint8_t *)"admin", 5, mac, &outlen);
    for (int i = 0; i < SEQD_MAC_LEN; i++)
        snprintf(out + 2 * i, 3, "%02x", mac[i]);
}

bool auth_addr_loopback(const char *a)
{
    return strncmp(a, "127.", 4) == 0 || strncmp(a, "localhost:", 10) == 0 ||
           strncmp(a, "[::1]", 5) == 0 || strncmp(a, "::1:", 4) == 0;
}
