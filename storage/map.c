/* storage/map.c — see map.h.
 *
 * Layout: an array of entries in insertion order plus an open-addressing
 * index of u32 slots holding entry index + 1 (0 = empty), probed linearly.
 * The index is kept at most half full and doubles when it would pass that,
 * so probes stay short; the entry array doubles independently. Entries are
 * never removed, so there are no tombstones. Names are copied into an arena
 * of fixed-size chunks that never move, which is what lets map_name hand out
 * pointers that live as long as the map (and saves one malloc per name).
 */
#include "map.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#define MAP_CHUNK_BYTES 65536u   /* arena chunk; a name needs at most 256 */
#define MAP_MIN_SLOTS 64u

_Static_assert(MAP_CHUNK_BYTES >= UINT8_MAX + 1u, "a name and its NUL fit a chunk");
_Static_assert((MAP_MIN_SLOTS & (MAP_MIN_SLOTS - 1)) == 0, "slot count is a power of two");

typedef struct map_entry {
    const char *name;
    uint64_t value;
    uint64_t hash;
    uint8_t len;
} map_entry;

typedef struct map_chunk {
    struct map_chunk *next;
    size_t used;
    char data[];
} map_chunk;

struct map {
    map_entry *entries;
    size_t count, cap;
    uint32_t *slots;       /* entry index + 1; 0 = empty */
    size_t nslots;         /* power of two */
    map_chunk *chunks;     /* head = the one being filled */
};

/* One hash for lookups and growth; stored per entry so rehashing on growth
 * does not touch the names again. */
static uint64_t map_hash(const char *name, uint8_t len)
{
    return XXH3_64bits(name, len);
}

map *map_new(void)
{
    map *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    m->nslots = MAP_MIN_SLOTS;
    m->slots = calloc(m->nslots, sizeof *m->slots);
    if (!m->slots) {
        free(m);
        return NULL;
    }
    return m;
}

void map_free(map *m)
{
    if (!m)
        return;
    map_chunk *c = m->chunks;
    while (c) {
        map_chunk *next = c->next;
        free(c);
        c = next;
    }
    free(m->entries);
    free(m->slots);
    free(m);
}

size_t map_count(const map *m)
{
    return m->count;
}

/* Finds the slot holding name, or the empty slot where it would go: linear
 * probing over an index that is at most half full always terminates. */
static size_t map_find_slot(const map *m, const char *name, uint8_t len, uint64_t h)
{
    assert(m->count * 2 <= m->nslots);
    size_t mask = m->nslots - 1;
    size_t i = (size_t)h & mask;
    for (;;) {
        uint32_t s = m->slots[i];
        if (s == 0)
            return i;
        assert(s <= m->count);
        const map_entry *e = &m->entries[s - 1];
        if (e->hash == h && e->len == len && memcmp(e->name, name, len) == 0)
            return i;
        i = (i + 1) & mask;
    }
}

/* Doubles the index; O(count), amortized O(1) per insert. */
static int map_grow_slots(map *m)
{
    size_t n = m->nslots * 2;
    uint32_t *slots = calloc(n, sizeof *slots);
    if (!slots)
        return -1;
    size_t mask = n - 1;
    for (size_t k = 0; k < m->count; k++) {
        size_t i = (size_t)m->entries[k].hash & mask;
        while (slots[i])
            i = (i + 1) & mask;
        slots[i] = (uint32_t)(k + 1);
    }
    free(m->slots);
    m->slots = slots;
    m->nslots = n;
    return 0;
}

/* Copies a name into the arena; chunks never move, so pointers stay valid. */
static const char *map_copy_name(map *m, const char *name, uint8_t len)
{
    map_chunk *c = m->chunks;
    if (!c || MAP_CHUNK_BYTES - c->used < (size_t)len + 1) {
        c = malloc(sizeof *c + MAP_CHUNK_BYTES);
        if (!c)
            return NULL;
        c->used = 0;
        c->next = m->chunks;
        m->chunks = c;
    }
    char *p = c->data + c->used;
    memcpy(p, name, len);
    p[len] = '\0';
    c->used += (size_t)len + 1;
    assert(c->used <= MAP_CHUNK_BYTES);
    return p;
}

long map_find(const map *m, const char *name, uint8_t len)
{
    uint32_t s = m->slots[map_find_slot(m, name, len, map_hash(name, len))];
    return s ? (long)s - 1 : -1;
}

int map_insert(map *m, const char *name, uint8_t len, uint64_t init, size_t *at)
{
    uint64_t h = map_hash(name, len);
    size_t i = map_find_slot(m, name, len, h);
    if (m->slots[i]) {
        *at = m->slots[i] - 1;
        return 0;
    }
    if (m->count == UINT32_MAX - 1)
        return -1;
    if ((m->count + 1) * 2 > m->nslots) {
        if (map_grow_slots(m) < 0)
            return -1;
        i = map_find_slot(m, name, len, h);
    }
    if (m->count == m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 64;
        map_entry *e = realloc(m->entries, cap * sizeof *e);
        if (!e)
            return -1;
        m->entries = e;
        m->cap = cap;
    }
    const char *copy = map_copy_name(m, name, len);
    if (!copy)
        return -1;
    assert(m->slots[i] == 0 && m->count < m->cap);
    m->entries[m->count] = (map_entry){ .name = copy, .value = init, .hash = h, .len = len };
    m->count++;
    m->slots[i] = (uint32_t)m->count;
    assert(m->count * 2 <= m->nslots);
    *at = m->count - 1;
    return 1;
}

uint64_t map_value(const map *m, size_t i)
{
    assert(i < m->count);
    return m->entries[i].value;
}

void map_set(map *m, size_t i, uint64_t v)
{
    assert(i < m->count);
    m->entries[i].value = v;
}

const char *map_name(const map *m, size_t i, uint8_t *len)
{
    assert(i < m->count);
    *len = m->entries[i].len;
    return m->entries[i].name;
}
