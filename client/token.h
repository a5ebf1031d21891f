/* client/token.h — client tokens (issue 12): a shared secret string that,
 * when a member runs with --client-token-file, every client presents
 * before anything else — on a binary connection as a MSG_TOKEN frame
 * (proto.h), over HTTP as `Authorization: Bearer <token>`.
 *
 * A token is 16 to 255 bytes of printable ASCII without blanks
 * (0x21..0x7e), so that it travels unchanged in an HTTP header; a file
 * holds one, with an optional trailing newline. Clients find the file
 * through --token-file or $SEQD_TOKEN_FILE (client_new and aclient_new
 * read the variable themselves).
 */
#ifndef SEQD_TOKEN_H
#define SEQD_TOKEN_H

#include <stdbool.h>
#include <stddef.h>

#define SEQD_TOKEN_MIN 16
#define SEQD_TOKEN_MAX 255

bool seqd_token_valid(const char *t, size_t len);

/* Reads the token in path into out (NUL-terminated). 0, or -1 with why. */
int seqd_token_load(const char *path, char out[SEQD_TOKEN_MAX + 1], char *err, size_t errlen);

/* $SEQD_TOKEN_FILE's token into out: 1 when set and read, 0 when unset,
 * -1 with why when set but unreadable or invalid. */
int seqd_token_from_env(char out[SEQD_TOKEN_MAX + 1], char *err, size_t errlen);

#endif
