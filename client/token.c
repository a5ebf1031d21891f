/* client/token.c — loading client tokens (token.h). */
#include "token.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool seqd_token_valid(const char *t, size_t len)
{
    if (len < SEQD_TOKEN_MIN || len > SEQD_TOKEN_MAX)
        return false;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)t[i] < 0x21 || (unsigned char)t[i] > 0x7e)
            return false;
    return true;
}

int seqd_token_load(const char *path, char out[SEQD_TOKEN_MAX + 1], char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "cannot read token file %s: %s", path, strerror(errno));
        return -1;
    }
    char buf[SEQD_TOKEN_MAX + 3];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    if (n > 0 && buf[n - 1] == '\n')
        n--;
    if (n > 0 && buf[n - 1] == '\r')
        n--;
    if (!seqd_token_valid(buf, n)) {
        snprintf(err, errlen, "bad token in %s: want %d to %d printable characters without blanks",
                 path, SEQD_TOKEN_MIN, SEQD_TOKEN_MAX);
        return -1;
    }
    memcpy(out, buf, n);
    out[n] = '\0';
    return 0;
}

int seqd_token_from_env(char out[SEQD_TOKEN_MAX + 1], char *err, size_t errlen)
{
    const char *path = getenv("SEQD_TOKEN_FILE");
    if (!path || !*path)
        return 0;
    return seqd_token_load(path, out, err, errlen) < 0 ? -1 : 1;
}
