/* net/auth.c — cluster secret and HMAC challenge-response (auth.h). */
#include "auth.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
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
    *(void **)&ossl.hmac = dlsym(h, "HMAC");
    if (!ossl.hmac || !ossl.sha256 || !ossl.memcmp_) {
        ossl.hmac = NULL;
        snprintf(err, errlen, "libcrypto lacks HMAC / EVP_sha256 / CRYPTO_memcmp");
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

int auth_nonce(uint8_t out[SEQD_NONCE_LEN])
{
    return getrandom(out, SEQD_NONCE_LEN, 0) == SEQD_NONCE_LEN ? 0 : -1;
}

void auth_mac(const auth_secret *s, enum auth_role role, const uint8_t nc[SEQD_NONCE_LEN],
              const uint8_t ns[SEQD_NONCE_LEN], uint8_t out[SEQD_MAC_LEN])
{
    static const char *const label[] = {[AUTH_ROLE_LISTENER] = "seqd listener",
                                        [AUTH_ROLE_CONNECTOR] = "seqd connector"};
    uint8_t msg[16 + 2 * SEQD_NONCE_LEN];
    size_t ll = strlen(label[role]);
    memcpy(msg, label[role], ll);
    memcpy(msg + ll, nc, SEQD_NONCE_LEN);
    memcpy(msg + ll + SEQD_NONCE_LEN, ns, SEQD_NONCE_LEN);
    unsigned int outlen = SEQD_MAC_LEN;
    assert(ossl.hmac);   /* auth_load_secret opened it: no secret, no MAC */
    ossl.hmac(ossl.sha256(), s->key, (int)s->len, msg, ll + 2 * SEQD_NONCE_LEN, out, &outlen);
}

bool auth_mac_ok(const auth_secret *s, enum auth_role role, const uint8_t nc[SEQD_NONCE_LEN],
                 const uint8_t ns[SEQD_NONCE_LEN], const uint8_t mac[SEQD_MAC_LEN])
{
    uint8_t want[SEQD_MAC_LEN];
    auth_mac(s, role, nc, ns, want);
    return ossl.memcmp_(want, mac, SEQD_MAC_LEN) == 0;
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
