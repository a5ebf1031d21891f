/* storage/map.h — the one insertion-ordered map from a sequence name to a
 * u64, used by the live table (storage/table.h: name -> cur), by the
 * coordinator (name -> its per-sequence state) and by recovery (name -> the
 * largest cur read). Memory only, no I/O, so quorum/ may use it.
 *
 * Contract:
 * - Names are 0..255 bytes, compared bytewise; the map copies them.
 * - Entries keep insertion order and are never removed, so an index
 *   0..map_count()-1 is a stable handle (and a stable cursor for chunked
 *   snapshots even while the map grows).
 * - map_name's pointer is NUL-terminated and lives as long as the map.
 * - Allocation failure is reported (NULL / -1), never hidden; what to do
 *   about it is the caller's policy (quorum/qmem.h aborts, the table
 *   returns the error).
 * - Lookups are O(1) expected (xxhash, linear probing, at most half full).
 * - Memory: about 32..40 bytes an entry for 8-byte names (map.c says
 *   where they go). At most 2^31 entries and 16 GiB of names: past that
 *   map_insert returns -1 as for OOM.
 */
#ifndef SEQD_MAP_H
#define SEQD_MAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct map map;

/* NULL on OOM. */
map *map_new(void);
void map_free(map *m);
size_t map_count(const map *m);

/* Index of name, or -1 if absent. */
long map_find(const map *m, const char *name, uint8_t len);

/* Index of name in *at, inserting it with value `init` if absent. Returns 1
 * if inserted, 0 if it was there (its value untouched), -1 on OOM (the map
 * is then unchanged). */
int map_insert(map *m, const char *name, uint8_t len, uint64_t init, size_t *at);

/* i < map_count(m). */
uint64_t map_value(const map *m, size_t i);
void map_set(map *m, size_t i, uint64_t v);
/* The name of entry i: *len bytes, NUL-terminated, lives as long as m. */
const char *map_name(const map *m, size_t i, uint8_t *len);

#endif
