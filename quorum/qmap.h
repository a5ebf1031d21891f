/* quorum/qmap.h — a small map from sequence name to a u64, shared by the
 * coordinator (name -> its per-sequence state) and recovery (name -> the
 * largest cur read). Entries keep insertion order and are never removed
 * one by one, so an index is a stable handle. Open addressing over FNV-1a;
 * the quorum code stays free of storage/ and of any library.
 *
 * Allocation failure inside quorum/ is fatal (q_oom aborts), as in Redis'
 * zmalloc: the callers' APIs have no error path for it, and a member that
 * stops is recovered by DESIGN.md §3, while one that drops state silently
 * would not be.
 */
#ifndef SEQD_QMAP_H
#define SEQD_QMAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct qmap qmap;

qmap *qmap_new(void);
void qmap_free(qmap *m);
size_t qmap_count(const qmap *m);

/* Index of name, or -1 if absent. */
long qmap_find(const qmap *m, const char *name, uint8_t len);

/* Index of name, inserting it with value `init` if absent. */
size_t qmap_insert(qmap *m, const char *name, uint8_t len, uint64_t init);

uint64_t qmap_value(const qmap *m, size_t i);
void qmap_set(qmap *m, size_t i, uint64_t v);
/* The name of entry i (not NUL-terminated; *len bytes). */
const char *qmap_name(const qmap *m, size_t i, uint8_t *len);

/* Aborts: out of memory in quorum code (see above). */
_Noreturn void q_oom(void);
void *q_xcalloc(size_t n, size_t size);

#endif
