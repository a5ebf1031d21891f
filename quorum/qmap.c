/* quorum/qmap.c — see qmap.h. Slots hold entry index + 1 (0 = empty); the
 * slot array is kept at most half full so probes stay short. */
#include "qmap.h"

#include <stdlib.h>
#include <string.h>

typedef struct qmap_entry {
    uint64_t hash;
    uint64_t value;
    char *name;
    uint8_t len;
} qmap_entry;

struct qmap {
    qmap_entry *e;
    size_t n, cap;       /* entries in use, allocated */
    uint32_t *slot;
    size_t nslots;       /* power of two */
};

_Noreturn void q_oom(void)
{
    abort();
}

void *q_xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p)
        q_oom();
    return p;
}

/* FNV-1a: names are short and this is not exposed to hostile keys beyond
 * what a linear probe of a half-empty table tolerates. */
static uint64_t qmap_hash(const char *s, uint8_t len)
{
    uint64_t h = UINT64_C(14695981039346656037);
    for (uint8_t i = 0; i < len; i++) {
        h ^= (uint8_t)s[i];
        h *= UINT64_C(1099511628211);
    }
    return h;
}

qmap *qmap_new(void)
{
    qmap *m = q_xcalloc(1, sizeof *m);
    m->nslots = 16;
    m->slot = q_xcalloc(m->nslots, sizeof *m->slot);
    return m;
}

void qmap_free(qmap *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->n; i++)
        free(m->e[i].name);
    free(m->e);
    free(m->slot);
    free(m);
}

size_t qmap_count(const qmap *m) { return m->n; }

/* The slot holding name, or the empty slot where it would go. */
static size_t qmap_probe(const qmap *m, uint64_t h, const char *name, uint8_t len)
{
    size_t mask = m->nslots - 1;
    for (size_t i = (size_t)h & mask;; i = (i + 1) & mask) {
        uint32_t s = m->slot[i];
        if (s == 0)
            return i;
        const qmap_entry *e = &m->e[s - 1];
        if (e->hash == h && e->len == len && memcmp(e->name, name, len) == 0)
            return i;
    }
}

long qmap_find(const qmap *m, const char *name, uint8_t len)
{
    uint32_t s = m->slot[qmap_probe(m, qmap_hash(name, len), name, len)];
    return s ? (long)s - 1 : -1;
}

/* Doubles the slot array; entries do not move, only their slots. */
static void qmap_grow(qmap *m)
{
    free(m->slot);
    m->nslots *= 2;
    m->slot = q_xcalloc(m->nslots, sizeof *m->slot);
    for (size_t i = 0; i < m->n; i++) {
        size_t at = qmap_probe(m, m->e[i].hash, m->e[i].name, m->e[i].len);
        m->slot[at] = (uint32_t)(i + 1);
    }
}

size_t qmap_insert(qmap *m, const char *name, uint8_t len, uint64_t init)
{
    uint64_t h = qmap_hash(name, len);
    size_t at = qmap_probe(m, h, name, len);
    if (m->slot[at])
        return m->slot[at] - 1;
    if (m->n == UINT32_MAX - 1)
        q_oom();
    if (m->n == m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 16;
        qmap_entry *e = realloc(m->e, cap * sizeof *e);
        if (!e)
            q_oom();
        m->e = e;
        m->cap = cap;
    }
    qmap_entry *e = &m->e[m->n];
    e->hash = h;
    e->value = init;
    e->len = len;
    e->name = q_xcalloc(1, (size_t)len + 1);
    memcpy(e->name, name, len);
    m->slot[at] = (uint32_t)(m->n + 1);
    m->n++;
    if (m->n * 2 > m->nslots)
        qmap_grow(m);
    return m->n - 1;
}

uint64_t qmap_value(const qmap *m, size_t i) { return m->e[i].value; }

void qmap_set(qmap *m, size_t i, uint64_t v) { m->e[i].value = v; }

const char *qmap_name(const qmap *m, size_t i, uint8_t *len)
{
    *len = m->e[i].len;
    return m->e[i].name;
}
