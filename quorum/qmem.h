/* quorum/qmem.h — the quorum code's allocation policy, and its use of the
 * storage/map.h map (memory only, no I/O).
 *
 * Allocation failure inside quorum/ is fatal (q_oom aborts), as in Redis'
 * zmalloc: the callers' APIs have no error path for it, and a member that
 * stops is recovered by DESIGN.md §3, while one that drops state silently
 * would not be.
 */
#ifndef SEQD_QMEM_H
#define SEQD_QMEM_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "../storage/map.h"

/* Aborts: out of memory in quorum code (see above). */
static inline _Noreturn void q_oom(void)
{
    abort();
}

static inline void *q_xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p)
        q_oom();
    return p;
}

static inline map *q_map_new(void)
{
    map *m = map_new();
    if (!m)
        q_oom();
    return m;
}

/* Index of name, inserting it with value `init` if absent. */
static inline size_t q_map_insert(map *m, const char *name, uint8_t len, uint64_t init)
{
    size_t at;
    if (map_insert(m, name, len, init, &at) < 0)
        q_oom();
    return at;
}

#endif
