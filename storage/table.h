/* storage/table.h — the live table: sequence name -> cur (the lowest ID this
 * member has not seen allocated), the storage/map.h map under the table's
 * rules. Values only grow: table_raise keeps the maximum. Entries are kept
 * in insertion order and never removed, so an index into that order is a
 * stable cursor for chunked snapshots even while the table grows. Lookups
 * are O(1) expected.
 */
#ifndef SEQD_TABLE_H
#define SEQD_TABLE_H

#include <stddef.h>
#include <stdint.h>

#include "map.h"

typedef map table;

table *table_new(void);
void table_free(table *t);

/* cur of name, or 1 (a fresh sequence starts at 1) if absent. */
uint64_t table_get(const table *t, const char *name, uint8_t len);

/* cur = max(cur, value). Returns 1 if the value grew, 0 if not, -1 on OOM. */
int table_raise(table *t, const char *name, uint8_t len, uint64_t value);

size_t table_count(const table *t);

/* The i-th entry in insertion order (i < table_count). The name pointer is
 * NUL-terminated and lives as long as the table. */
void table_entry(const table *t, size_t i, const char **name, uint8_t *len, uint64_t *value);

#endif
