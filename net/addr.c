/* net/addr.c — HOST:PORT parsing and resolution (addr.h). */
#include "addr.h"

#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

int addr_split(const char *s, size_t len, char *host, size_t hostlen, uint16_t *port)
{
    if (len == 0 || len > SEQD_ADDR_MAX)
        return -1;
    const char *colon = NULL;
    for (size_t i = len; i-- > 0;)
        if (s[i] == ':') {
            colon = s + i;
            break;
        }
    if (colon == NULL || colon == s || (size_t)(colon - s) == len - 1)
        return -1;
    const char *h = s;
    size_t hl = (size_t)(colon - s);
    if (h[0] == '[' && hl >= 2 && h[hl - 1] == ']') {
        h++;
        hl -= 2;
    }
    if (hl == 0 || hl >= hostlen)
        return -1;
    char digits[8];
    size_t pl = len - (size_t)(colon - s) - 1;
    if (pl >= sizeof digits)
        return -1;
    memcpy(digits, colon + 1, pl);
    digits[pl] = '\0';
    char *end = NULL;
    errno = 0;
    long p = strtol(digits, &end, 10);
    if (errno != 0 || *end != '\0' || p < 1 || p > 65535 || digits[0] == '+' || digits[0] == '-')
        return -1;
    memcpy(host, h, hl);
    host[hl] = '\0';
    *port = (uint16_t)p;
    return 0;
}

int addr_resolve(const char *addr, struct sockaddr_storage *ss, int *sslen, char *err, size_t errlen)
{
    char host[SEQD_ADDR_MAX + 1], port[8];
    uint16_t p;
    if (addr_split(addr, strlen(addr), host, sizeof host, &p) < 0) {
        snprintf(err, errlen, "bad address '%s' (want HOST:PORT)", addr);
        return -1;
    }
    snprintf(port, sizeof port, "%u", p);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res;
    int rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0) {
        snprintf(err, errlen, "cannot resolve '%s': %s", addr, gai_strerror(rc));
        return -1;
    }
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    *sslen = (int)res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}
