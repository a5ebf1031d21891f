/* storage/table.c — the live table (see table.h) over storage/map.c. */
#include "table.h"

#include <assert.h>

table *table_new(void)
{
    return map_new();
}

void table_free(table *t)
{
    map_free(t);
}

uint64_t table_get(const table *t, const char *name, uint8_t len)
{
    long i = map_find(t, name, len);
    return i < 0 ? 1 : map_value(t, (size_t)i);
}

int table_raise(table *t, const char *name, uint8_t len, uint64_t value)
{
    /* An absent name reads as 1, so raising it to <= 1 changes nothing
     * visible; still record it so that it shows up in snapshots. */
    uint64_t v = value > 1 ? value : 1;
    size_t i;
    int ins = map_insert(t, name, len, v, &i);
    if (ins < 0)
        return -1;
    if (ins)
        return v > 1;
    uint64_t old = map_value(t, i);
    if (value <= old)
        return 0;
    map_set(t, i, value);
    assert(map_value(t, i) > old);   /* cur only grows */
    return 1;
}

size_t table_count(const table *t)
{
    return map_count(t);
}

void table_entry(const table *t, size_t i, const char **name, uint8_t *len, uint64_t *value)
{
    uint8_t l;
    const char *s = map_name(t, i, &l);
    if (name)
        *name = s;
    if (len)
        *len = l;
    if (value)
        *value = map_value(t, i);
}
