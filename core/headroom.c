/* core/headroom.c — the exhaustion alarm's bookkeeping (headroom.h). */
#include "headroom.h"

#include <assert.h>
#include <string.h>

void headroom_init(headroom *h, double share)
{
    memset(h, 0, sizeof *h);
    if (!(share > 0 && share <= 1))
        share = 1;
    h->share = share;
    /* 2^64 * share, kept below 2^64: share 1 alarms at the last value. */
    long double a = (long double)share * 18446744073709551616.0L;
    h->alarm = a >= 18446744073709551615.0L ? UINT64_MAX : (uint64_t)a;
    h->max_value = 1;
}

void headroom_note(headroom *h, const char *name, uint8_t len, uint64_t old, uint64_t value)
{
    if (value > h->max_value)
        h->max_value = value;
    if (value < h->alarm)
        return;
    for (int i = 0; i < h->nnames; i++)
        if (h->names[i].name.len == len && memcmp(h->names[i].name.s, name, len) == 0) {
            if (value > h->names[i].value)
                h->names[i].value = value;
            return;
        }
    if (old >= h->alarm)
        return;   /* counted when it passed; not among the named ones */
    h->past++;
    if (h->nnames < HEADROOM_NAMES) {
        seqd_name_set(&h->names[h->nnames].name, name, len);
        h->names[h->nnames].value = value;
        h->nnames++;
    }
    assert((uint64_t)h->nnames <= h->past);
}
