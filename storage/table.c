/* storage/table.c — the live table (see table.h).
 *
 * Layout: an array of entries in insertion order (the stable cursor order the
 * snapshot code relies on) plus an open-addressing index of u32 slots holding
 * entry index + 1 (0 = empty), probed linearly. The index is kept at most half
 * full and doubles when it would pass that, so probes stay short; the entry
 * array doubles independently. Entries are never removed, so there are no
 * tombstones. Names are copied into an arena of fixed-size chunks that never
 * move, which is what lets table_entry hand out pointers that live as long
 * as the table (and saves one malloc per name).
 */
#include "table.h"

#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#define TABLE_CHUNK_BYTES 65536u   /* arena chunk; a name needs at most 256 */
#define TABLE_MIN_SLOTS 64u

typedef struct table_entry_rec {
    const char *name;
    uint64_t value;
    uint64_t hash;
    uint8_t len;
} table_entry_rec;

typedef struct table_chunk {
    struct table_chunk *next;
    size_t used;
    char data[];
} table_chunk;

struct table {
    table_entry_rec *entries;
    size_t count, cap;
    uint32_t *slots;       /* entry index + 1; 0 = empty */
    size_t nslots;         /* power of two */
    table_chunk *chunks;   /* head = the one being filled */
};

/* One hash for lookups and growth; stored per entry so rehashing on growth
 * does not touch the names again. */
static uint64_t table_hash(const char *name, uint8_t len)
{
    return XXH3_64bits(name, len);
}

table *table_new(void)
{
    table *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->nslots = TABLE_MIN_SLOTS;
    t->slots = calloc(t->nslots, sizeof *t->slots);
    if (!t->slots) {
        free(t);
        return NULL;
    }
    return t;
}

void table_free(table *t)
{
    if (!t)
        return;
    table_chunk *c = t->chunks;
    while (c) {
        table_chunk *next = c->next;
        free(c);
        c = next;
    }
    free(t->entries);
    free(t->slots);
    free(t);
}

/* Finds the slot holding name, or the empty slot where it would go: linear
 * probing over a table that is at most half full always terminates. */
static size_t table_find_slot(const table *t, const char *name, uint8_t len, uint64_t h)
{
    size_t mask = t->nslots - 1;
    size_t i = (size_t)h & mask;
    for (;;) {
        uint32_t s = t->slots[i];
        if (s == 0)
            return i;
        const table_entry_rec *e = &t->entries[s - 1];
        if (e->hash == h && e->len == len && memcmp(e->name, name, len) == 0)
            return i;
        i = (i + 1) & mask;
    }
}

/* Doubles the index; O(count), amortized O(1) per insert. */
static int table_grow_slots(table *t)
{
    size_t n = t->nslots * 2;
    uint32_t *slots = calloc(n, sizeof *slots);
    if (!slots)
        return -1;
    size_t mask = n - 1;
    for (size_t k = 0; k < t->count; k++) {
        size_t i = (size_t)t->entries[k].hash & mask;
        while (slots[i])
            i = (i + 1) & mask;
        slots[i] = (uint32_t)(k + 1);
    }
    free(t->slots);
    t->slots = slots;
    t->nslots = n;
    return 0;
}

/* Copies a name into the arena; chunks never move, so pointers stay valid. */
static const char *table_copy_name(table *t, const char *name, uint8_t len)
{
    table_chunk *c = t->chunks;
    if (!c || TABLE_CHUNK_BYTES - c->used < (size_t)len + 1) {
        c = malloc(sizeof *c + TABLE_CHUNK_BYTES);
        if (!c)
            return NULL;
        c->used = 0;
        c->next = t->chunks;
        t->chunks = c;
    }
    char *p = c->data + c->used;
    memcpy(p, name, len);
    p[len] = '\0';
    c->used += (size_t)len + 1;
    return p;
}

uint64_t table_get(const table *t, const char *name, uint8_t len)
{
    uint64_t h = table_hash(name, len);
    uint32_t s = t->slots[table_find_slot(t, name, len, h)];
    return s ? t->entries[s - 1].value : 1;
}

int table_raise(table *t, const char *name, uint8_t len, uint64_t value)
{
    uint64_t h = table_hash(name, len);
    size_t i = table_find_slot(t, name, len, h);
    if (t->slots[i]) {
        table_entry_rec *e = &t->entries[t->slots[i] - 1];
        if (value <= e->value)
            return 0;
        e->value = value;
        return 1;
    }
    /* An absent name reads as 1, so raising it to <= 1 changes nothing
     * visible; still record it so that it shows up in snapshots. */
    if (t->count == UINT32_MAX - 1)
        return -1;
    if ((t->count + 1) * 2 > t->nslots) {
        if (table_grow_slots(t) < 0)
            return -1;
        i = table_find_slot(t, name, len, h);
    }
    if (t->count == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 64;
        table_entry_rec *e = realloc(t->entries, cap * sizeof *e);
        if (!e)
            return -1;
        t->entries = e;
        t->cap = cap;
    }
    const char *copy = table_copy_name(t, name, len);
    if (!copy)
        return -1;
    uint64_t old = 1;
    uint64_t v = value > old ? value : old;
    t->entries[t->count] = (table_entry_rec){ .name = copy, .value = v, .hash = h, .len = len };
    t->count++;
    t->slots[i] = (uint32_t)t->count;
    return v > old;
}

size_t table_count(const table *t)
{
    return t->count;
}

void table_entry(const table *t, size_t i, const char **name, uint8_t *len, uint64_t *value)
{
    const table_entry_rec *e = &t->entries[i];
    if (name)
        *name = e->name;
    if (len)
        *len = e->len;
    if (value)
        *value = e->value;
}
