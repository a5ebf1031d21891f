/* net/addr.h — HOST:PORT, parsed in one place for every caller: the
 * member set of `serve` and `init`, the client library's server lists,
 * peer links and the listener.
 *
 * An address is HOST:PORT or [V6]:PORT, at most SEQD_ADDR_MAX bytes, with a
 * numeric port in 1..65535 (a typo is caught here, not later as a DNS
 * failure). HOST may be a name; it is resolved only by addr_resolve.
 */
#ifndef SEQD_ADDR_H
#define SEQD_ADDR_H

#include <stddef.h>
#include <stdint.h>

#include "../proto.h"

struct sockaddr_storage;

/* Splits s[0..len): host (brackets removed, NUL-terminated, hostlen bytes
 * at most with the NUL) and port. 0, or -1 when malformed. */
int addr_split(const char *s, size_t len, char *host, size_t hostlen, uint16_t *port);

/* Resolves HOST:PORT (numeric or a name) for listen and connect. -1 with a
 * message in err. */
int addr_resolve(const char *addr, struct sockaddr_storage *ss, int *sslen, char *err, size_t errlen);

#endif
