/* storage/map.c — see map.h.
 *
 * Layout, chosen for memory per entry (a member holds one entry per
 * sequence, and 10M sequences are a use case):
 *   - values[i]: the u64 of entry i (8 bytes);
 *   - refs[i]:   where entry i's name is in the arena (4 bytes);
 *   - the arena: names packed as [len][bytes][NUL], each rounded up to 4
 *     bytes, in fixed chunks that never move (so map_name's pointers live
 *     as long as the map, and there is no malloc per name). A ref counts
 *     4-byte units: chunk number << MAP_UNIT_BITS | unit within the chunk,
 *     so 2^32 units address 16 GiB of names (>= 64M names of 255 bytes);
 *   - slots: an open-addressing index of u32, probed linearly, kept at
 *     most half full (8..16 bytes per entry). With 2^k slots a slot holds
 *     entry index + 1 in its low k bits (0 = empty; the index is below
 *     2^(k-1) since the index is half full) and, in the 32 - k bits above,
 *     the same bits of the hash's upper half: a tag that lets a probe skip
 *     an entry without reading its name (at 10M entries, k = 25: 7 bits,
 *     so 1 probe in 128 of the wrong entries reads its name). Without it
 *     every probe read refs[] and the arena at random: measured 0.8 us an
 *     insert at 10M entries against 0.1 us for 1M.
 * The full hash is not stored: growth rehashes each name from the arena
 * (read in insertion order, so sequentially). Entries are never removed,
 * so there are no tombstones. At most 2^31 entries (2^32 slots).
 * For names of 8 bytes that is 8 + 4 + 12 + 8..16 = 32..40 bytes an entry
 * (it was 32 + 9 + 8..16 with a pointer, the hash and the length in a
 * padded struct). values and refs grow by doubling with realloc; glibc
 * moves big blocks with mremap, and pages past count are never touched, so
 * what is resident follows count, not capacity.
 */
#include "map.h"

#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <xxhash.h>

#define MAP_CHUNK_BYTES 65536u           /* arena chunk */
#define MAP_UNIT 4u                      /* arena granularity, bytes */
#define MAP_UNIT_BITS 14u                /* units per chunk: 2^14 * 4 = 64 KiB */
#define MAP_MAX_CHUNKS (1u << (32u - MAP_UNIT_BITS))
#define MAP_MIN_SLOTS 64u
#define MAP_MIN_CAP 64u
#define MAP_MAX_COUNT (1ul << 31)

_Static_assert((1u << MAP_UNIT_BITS) * MAP_UNIT == MAP_CHUNK_BYTES, "a ref's unit field spans a chunk");
_Static_assert(MAP_CHUNK_BYTES >= UINT8_MAX + 2u, "a name, its length and its NUL fit a chunk");
_Static_assert((MAP_MIN_SLOTS & (MAP_MIN_SLOTS - 1)) == 0, "slot count is a power of two");

struct map {
    uint64_t *values;      /* count valid, cap allocated */
    uint32_t *refs;        /* the same */
    size_t count, cap;
    uint32_t *slots;       /* tag | entry index + 1; 0 = empty */
    size_t nslots;         /* 2^k, k <= 32 */
    uint32_t imask;        /* the low k bits: index + 1 */
    uint32_t *next;        /* while growing: the index at twice the size, being filled */
    size_t moved;          /* entries 0..moved-1 are in next */
    char **chunks;         /* the arena; the last one is being filled */
    size_t nchunks, capchunks;
    size_t used;           /* bytes used in the last chunk */
};

static uint64_t map_hash(const char *name, uint8_t len)
{
    return XXH3_64bits(name, len);
}

/* Asks for transparent huge pages on a big array (glibc maps those with
 * mmap, so they are page-aligned runs of their own). Lookups touch the
 * index, refs and the arena at random: with 4 KiB pages nearly every one
 * is a TLB miss, and in a VM (nested paging) a miss walks two page tables
 * — measured 0.5 us a lookup at 10M entries. Only a hint: where THP is
 * off, or "never", nothing changes; the cost is at most one partly used
 * 2 MiB page per array. */
static void map_hint(void *p, size_t bytes)
{
    const uintptr_t huge = (uintptr_t)2 << 20;
    if (bytes < 2 * huge)
        return;
    uintptr_t a = ((uintptr_t)p + huge - 1) & ~(huge - 1), e = ((uintptr_t)p + bytes) & ~(huge - 1);
    if (e > a)
        (void)madvise((void *)a, e - a, MADV_HUGEPAGE);
}

/* The tag bits of hash h for slots of index mask imask. */
static uint32_t map_tag(uint64_t h, uint32_t imask)
{
    return (uint32_t)(h >> 32) & ~imask;
}

static uint32_t map_imask(size_t nslots)
{
    return nslots >= (1ull << 32) ? UINT32_MAX : (uint32_t)nslots - 1;
}

/* The stored [len][bytes][NUL] a ref points at. */
static const char *map_at(const map *m, uint32_t ref)
{
    size_t c = ref >> MAP_UNIT_BITS;
    assert(c < m->nchunks);
    return m->chunks[c] + (size_t)(ref & ((1u << MAP_UNIT_BITS) - 1)) * MAP_UNIT;
}

map *map_new(void)
{
    map *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    m->nslots = MAP_MIN_SLOTS;
    m->imask = map_imask(m->nslots);
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
    for (size_t c = 0; c < m->nchunks; c++)
        free(m->chunks[c]);
    free(m->chunks);
    free(m->values);
    free(m->refs);
    free(m->slots);
    free(m->next);
    free(m);
}

size_t map_count(const map *m)
{
    return m->count;
}

static int map_same(const map *m, size_t k, const char *name, uint8_t len)
{
    const char *p = map_at(m, m->refs[k]);
    return (uint8_t)p[0] == len && memcmp(p + 1, name, len) == 0;
}

/* Finds the slot holding name, or the empty slot where it would go: linear
 * probing over an index that is at most half full always terminates. */
static size_t map_find_slot(const map *m, const char *name, uint8_t len, uint64_t h)
{
    assert(m->count * 2 <= m->nslots);
    size_t mask = m->nslots - 1;
    uint32_t tag = map_tag(h, m->imask);
    size_t i = (size_t)h & mask;
    for (;;) {
        uint32_t s = m->slots[i];
        if (s == 0)
            return i;
        assert((s & m->imask) != 0 && (s & m->imask) <= m->count);
        if ((s & ~m->imask) == tag && map_same(m, (s & m->imask) - 1, name, len))
            return i;
        i = (i + 1) & mask;
    }
}

/* Growth is incremental. Rehashing 8M names in one go held the loop for
 * 2.3 s (and a member holds two such maps: the table and the
 * coordinator's), long enough for every fetch in flight to time out
 * (bench-scale, 10M sequences). So once the index is 3/8 full a second one
 * of twice the size is allocated (calloc: its pages come as they are
 * written) and every insert moves MAP_MOVE_STEP entries, in insertion
 * order, into it; lookups and inserts keep using the old index, which
 * holds every entry, until the new one holds them all too and replaces
 * it. Moving 8 per insert from 3/8 full, the move is done by 3/8 * 8/7 =
 * 3/7 < 1/2 full, so the old index never passes half full; should it get
 * there anyway, the rest is moved at once. Memory: both indexes during
 * the move, as before. */
#define MAP_MOVE_STEP 8u

static void map_place(uint32_t *slots, size_t n, uint64_t h, uint32_t v)
{
    size_t mask = n - 1, i = (size_t)h & mask;
    while (slots[i])
        i = (i + 1) & mask;
    slots[i] = map_tag(h, map_imask(n)) | v;
}

static int map_grow_start(map *m)
{
    assert(!m->next);
    size_t n = m->nslots * 2;
    m->next = calloc(n, sizeof *m->next);
    if (!m->next)
        return -1;
    map_hint(m->next, n * sizeof *m->next);
    m->moved = 0;
    return 0;
}

/* Moves up to k entries into the next index; once all are there, it
 * replaces the current one. */
static void map_grow_step(map *m, size_t k)
{
    assert(m->next && m->moved <= m->count);
    size_t n = m->nslots * 2;
    for (; k > 0 && m->moved < m->count; k--, m->moved++) {
        const char *p = map_at(m, m->refs[m->moved]);
        map_place(m->next, n, map_hash(p + 1, (uint8_t)p[0]), (uint32_t)(m->moved + 1));
    }
    if (m->moved < m->count)
        return;
    free(m->slots);
    m->slots = m->next;
    m->next = NULL;
    m->nslots = n;
    m->imask = map_imask(n);
}

/* Before an insert: the index has room for one more entry (-1 on OOM). */
static int map_make_room(map *m)
{
    if (m->next) {
        if ((m->count + 1) * 2 > m->nslots)
            map_grow_step(m, SIZE_MAX);   /* cannot happen (see above); safe anyway */
        return 0;
    }
    if ((m->count + 1) * 8 > m->nslots * 3 && m->nslots * 2 <= (1ull << 32) && map_grow_start(m) == 0)
        return 0;
    if ((m->count + 1) * 2 <= m->nslots)
        return 0;   /* growth starts again at the next insert */
    if (map_grow_start(m) < 0)
        return -1;
    map_grow_step(m, SIZE_MAX);
    return 0;
}

/* Room for one more entry in values and refs. */
static int map_grow_entries(map *m)
{
    if (m->count < m->cap)
        return 0;
    size_t cap = m->cap ? m->cap * 2 : MAP_MIN_CAP;
    uint64_t *v = realloc(m->values, cap * sizeof *v);
    if (!v)
        return -1;
    m->values = v;
    map_hint(v, cap * sizeof *v);
    uint32_t *r = realloc(m->refs, cap * sizeof *r);
    if (!r)
        return -1;   /* values is bigger, which is harmless: cap is unchanged */
    m->refs = r;
    map_hint(r, cap * sizeof *r);
    m->cap = cap;
    return 0;
}

/* Copies a name into the arena as [len][bytes][NUL]; returns its ref in
 * *ref, or -1 on OOM (or past 16 GiB of names). Chunks never move. */
static int map_copy_name(map *m, const char *name, uint8_t len, uint32_t *ref)
{
    size_t need = ((size_t)len + 2 + MAP_UNIT - 1) / MAP_UNIT * MAP_UNIT;
    if (m->nchunks == 0 || MAP_CHUNK_BYTES - m->used < need) {
        if (m->nchunks == MAP_MAX_CHUNKS)
            return -1;
        if (m->nchunks == m->capchunks) {
            size_t cap = m->capchunks ? m->capchunks * 2 : 4;
            char **c = realloc(m->chunks, cap * sizeof *c);
            if (!c)
                return -1;
            m->chunks = c;
            m->capchunks = cap;
        }
        char *c = malloc(MAP_CHUNK_BYTES);
        if (!c)
            return -1;
        m->chunks[m->nchunks++] = c;
        m->used = 0;
    }
    char *p = m->chunks[m->nchunks - 1] + m->used;
    p[0] = (char)len;
    memcpy(p + 1, name, len);
    p[1 + len] = '\0';
    *ref = (uint32_t)((m->nchunks - 1) << MAP_UNIT_BITS | m->used / MAP_UNIT);
    m->used += need;
    assert(m->used <= MAP_CHUNK_BYTES && m->used % MAP_UNIT == 0);
    assert(map_at(m, *ref) == p);
    return 0;
}

long map_find(const map *m, const char *name, uint8_t len)
{
    uint32_t s = m->slots[map_find_slot(m, name, len, map_hash(name, len))];
    return s ? (long)(s & m->imask) - 1 : -1;
}

int map_insert(map *m, const char *name, uint8_t len, uint64_t init, size_t *at)
{
    uint64_t h = map_hash(name, len);
    size_t i = map_find_slot(m, name, len, h);
    if (m->slots[i]) {
        *at = (m->slots[i] & m->imask) - 1;
        return 0;
    }
    if (m->count == MAP_MAX_COUNT)
        return -1;
    size_t before = m->nslots;
    if (map_make_room(m) < 0)
        return -1;
    if (m->nslots != before)
        i = map_find_slot(m, name, len, h);
    uint32_t ref;
    if (map_grow_entries(m) < 0 || map_copy_name(m, name, len, &ref) < 0)
        return -1;   /* a grown index or array, or a chunk left empty, is harmless */
    assert(m->slots[i] == 0 && m->count < m->cap);
    m->values[m->count] = init;
    m->refs[m->count] = ref;
    m->count++;
    assert((m->count & ~(size_t)m->imask) == 0);   /* index + 1 fits below the tag */
    m->slots[i] = map_tag(h, m->imask) | (uint32_t)m->count;
    assert(m->count * 2 <= m->nslots);
    *at = m->count - 1;
    if (m->next)
        map_grow_step(m, MAP_MOVE_STEP);   /* the new entry too, in its turn */
    return 1;
}

uint64_t map_value(const map *m, size_t i)
{
    assert(i < m->count);
    return m->values[i];
}

void map_set(map *m, size_t i, uint64_t v)
{
    assert(i < m->count);
    m->values[i] = v;
}

const char *map_name(const map *m, size_t i, uint8_t *len)
{
    assert(i < m->count);
    const char *p = map_at(m, m->refs[i]);
    *len = (uint8_t)p[0];
    return p + 1;
}
