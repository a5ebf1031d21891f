/* core/headroom.h — which sequences are running out of IDs, for the
 * exhaustion alarm of /metrics (issue 11, DESIGN.md §5), without a series
 * per sequence.
 *
 * Contract: the member calls headroom_note for every value it raises a
 * sequence to (its acceptor's writes, and once per entry of the table it
 * opened with). A sequence whose value passes `alarm` (a share of 2^64)
 * is counted once, when it first passes; the first HEADROOM_NAMES of them
 * are kept by name with their latest value, so that /metrics can label
 * them; the largest value of any sequence is kept too (the least headroom
 * left). O(1) per note below the alarm (one compare), O(HEADROOM_NAMES)
 * above it. One event loop owns it.
 */
#ifndef SEQD_HEADROOM_H
#define SEQD_HEADROOM_H

#include <stdbool.h>
#include <stdint.h>

#include "../proto.h"

#define HEADROOM_NAMES 16

typedef struct headroom {
    double share;              /* the alarm as a share of 2^64, in (0, 1] */
    uint64_t alarm;            /* share * 2^64 as a value */
    uint64_t past;             /* sequences whose value passed the alarm */
    uint64_t max_value;        /* the largest value of any sequence (1 if none) */
    int nnames;
    struct {
        struct seqd_name name;
        uint64_t value;
    } names[HEADROOM_NAMES];
} headroom;

/* share outside (0, 1] is taken as 1 (only exhausted sequences count). */
void headroom_init(headroom *h, double share);

/* name went from old to value (old = 1 for a new sequence). */
void headroom_note(headroom *h, const char *name, uint8_t len, uint64_t old, uint64_t value);

/* IDs left below 2^64-1 at value v. */
static inline uint64_t headroom_left(uint64_t v) { return UINT64_MAX - v; }

#endif
