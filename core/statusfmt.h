/* core/statusfmt.h — a member's status as operators read it: the one JSON
 * object that `seqd status --json` prints per member and that GET
 * /v1/status answers (DESIGN.md §1, §5), so that the two cannot drift.
 *
 *   {"address":"HOST:PORT","state":"ready","index":0,"members":3,
 *    "counters":{"fetches":N,...}}
 *
 * state is ready / recovering / stopping (a member that did not answer is
 * "down", written by statusfmt_down); index is the member's slot (0-based:
 * its place in the sorted member set of epoch 0; a replacement keeps the
 * slot of the member it replaced, DESIGN.md §6); counters are SEQD_STATUS_COUNTERS, as JSON
 * numbers (counts, not IDs: they stay far below 2^53 in practice).
 */
#ifndef SEQD_STATUSFMT_H
#define SEQD_STATUSFMT_H

#include <stddef.h>

#include "../proto.h"

/* "ready", "recovering", "stopping" or "unknown". */
const char *statusfmt_state(int state);

/* The object into buf (NUL-terminated); returns its length, or -1 when it
 * did not fit. addr is written as a JSON string (escaped). */
int statusfmt_json(const struct seqd_status *st, const char *addr, char *buf, size_t len);

/* {"address":"...","state":"down","error":"..."} for a member that did not
 * answer. */
int statusfmt_down(const char *addr, const char *why, char *buf, size_t len);

/* s as the inside of a JSON string into out (always NUL-terminated, cut
 * short when out is too small). */
void statusfmt_json_str(char *out, size_t len, const char *s);

#endif
