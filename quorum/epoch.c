/* quorum/epoch.c — epochs of the member set (quorum/epoch.h). */
#include "epoch.h"

#include <assert.h>
#include <stdio.h>
#include <string.h>
#define XXH_STATIC_LINKING_ONLY   /* XXH64_state_t on the stack */
#include <xxhash.h>

int epoch_init(q_set *s, char *const *sorted, int n)
{
    memset(s, 0, sizeof *s);
    if (n < 1 || n > SEQD_MAX_MEMBERS)
        return -1;
    for (int i = 0; i < n; i++) {
        if (strlen(sorted[i]) > SEQD_ADDR_MAX)
            return -1;
        assert(i == 0 || strcmp(sorted[i - 1], sorted[i]) < 0);   /* epoch 0: sorted slots */
        strcpy(s->addr[i], sorted[i]);
    }
    s->n = n;
    s->digest = epoch_digest(s);
    return 0;
}

/* storage/datadir.c's set digest is the epoch-0 case of this one (sorted
 * slots, seed 0): keep the two alike. */
uint64_t epoch_digest(const q_set *s)
{
    XXH64_state_t st;
    XXH64_reset(&st, s->epoch);
    for (int i = 0; i < s->n; i++) {
        if (i)
            XXH64_update(&st, ",", 1);
        XXH64_update(&st, s->addr[i], strlen(s->addr[i]));
    }
    return XXH64_digest(&st);
}

void epoch_join(const q_set *s, char *out, size_t outlen)
{
    size_t pos = 0;
    out[0] = '\0';
    for (int i = 0; i < s->n && pos < outlen; i++) {
        int w = snprintf(out + pos, outlen - pos, "%s%s", i ? "," : "", s->addr[i]);
        pos += w > 0 ? (size_t)w : 0;
    }
}

int epoch_slot(const q_set *s, const char *addr, size_t len)
{
    for (int i = 0; i < s->n; i++)
        if (strlen(s->addr[i]) == len && memcmp(s->addr[i], addr, len) == 0)
            return i;
    return -1;
}

bool epoch_admits(const q_set *s, uint64_t epoch, uint64_t digest)
{
    return epoch == s->epoch && digest == s->digest;
}

int epoch_apply(const q_set *cur, const q_switch *sw, q_set *next, char *why, size_t whylen)
{
    if (sw->epoch != cur->epoch) {
        snprintf(why, whylen, "the switch is of epoch %llu, this member is at epoch %llu",
                 (unsigned long long)sw->epoch, (unsigned long long)cur->epoch);
        return -1;
    }
    if (sw->slot < 0 || sw->slot >= cur->n || strcmp(cur->addr[sw->slot], sw->old_addr) != 0) {
        snprintf(why, whylen, "%s is not the member of slot %d at epoch %llu", sw->old_addr, sw->slot,
                 (unsigned long long)cur->epoch);
        return -1;
    }
    if (epoch_slot(cur, sw->new_addr, strlen(sw->new_addr)) >= 0) {
        snprintf(why, whylen, "%s is a member already", sw->new_addr);
        return -1;
    }
    *next = *cur;
    next->epoch = cur->epoch + 1;
    strcpy(next->addr[sw->slot], sw->new_addr);
    next->digest = epoch_digest(next);
    return 0;
}

int epoch_revert(const q_set *cur, const q_switch *sw, q_set *prev)
{
    if (cur->epoch != sw->epoch + 1 || sw->slot < 0 || sw->slot >= cur->n ||
        strcmp(cur->addr[sw->slot], sw->new_addr) != 0)
        return -1;
    *prev = *cur;
    prev->epoch = sw->epoch;
    strcpy(prev->addr[sw->slot], sw->old_addr);
    prev->digest = epoch_digest(prev);
    return 0;
}

enum epoch_verdict epoch_switch_verdict(int n, int recorded, int other)
{
    int need = epoch_recorders_needed(n), others = n - 1;
    assert(recorded >= 0 && other >= 0 && recorded + other <= others);
    if (recorded >= need)
        return EPOCH_SWITCH_COMPLETE;
    return others - other < need ? EPOCH_SWITCH_LOST : EPOCH_SWITCH_WAIT;
}
