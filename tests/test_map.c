/* tests/test_map.c — storage/map.h's contract: every name length 0..255
 * (also bytes 0 and 0xff inside a name), stable indexes and name pointers
 * through many resizes of the index (each moved incrementally: every entry
 * must be found meanwhile), the entry arrays and the arena. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "../storage/map.h"

/* A name of length len, distinct per (len, tag), with NUL and 0xff bytes. */
static void map_test_name(char *out, uint8_t len, unsigned tag)
{
    for (unsigned k = 0; k < len; k++)
        out[k] = (char)(k % 5 == 1 ? 0 : k % 5 == 3 ? 0xff : (int)((tag * 31u + k * 7u) & 0xff));
    if (len >= 4)
        memcpy(out, &tag, 4);
}

Test(map, every_length, .timeout = 10)
{
    map *m = map_new();
    cr_assert_not_null(m);
    char name[256];
    const char *ptr[256][4];
    for (unsigned tag = 0; tag < 4; tag++) {
        for (unsigned len = 0; len <= 255; len++) {
            map_test_name(name, (uint8_t)len, tag);
            size_t at;
            int r = map_insert(m, name, (uint8_t)len, len * 10u + tag, &at);
            if (len == 0 && tag > 0) {
                /* the empty name exists once */
                cr_assert_eq(r, 0);
                cr_assert_eq(at, 0);
                continue;
            }
            uint8_t l;
            ptr[len][tag] = map_name(m, at, &l);
            cr_assert_eq(l, len);
        }
    }
    /* only the empty name is the same for every tag: find each, and check
     * bytes, NUL terminator, value and pointer stability */
    for (unsigned tag = 0; tag < 4; tag++) {
        for (unsigned len = 0; len <= 255; len++) {
            map_test_name(name, (uint8_t)len, tag);
            long i = map_find(m, name, (uint8_t)len);
            cr_assert_geq(i, 0, "len %u tag %u", len, tag);
            uint8_t l;
            const char *s = map_name(m, (size_t)i, &l);
            cr_assert_eq(l, len);
            cr_assert(memcmp(s, name, len) == 0);
            cr_assert_eq(s[len], '\0');
            unsigned t = len == 0 ? 0 : tag;
            cr_assert_eq(map_value(m, (size_t)i), len * 10u + t);
            cr_assert_eq(s, ptr[len][t]);
        }
    }
    /* one byte off a present name is another name */
    map_test_name(name, 200, 1);
    name[199] ^= 1;
    cr_assert_eq(map_find(m, name, 200), -1);
    cr_assert_eq(map_count(m), 256 * 4 - 3);
    map_free(m);
}

Test(map, growth_keeps_indexes_and_pointers, .timeout = 30)
{
    map *m = map_new();
    enum { N = 300000 };   /* the index doubles 13 times, the arena takes ~70 chunks */
    static const char *ptrs[N];
    char name[300];
    for (unsigned i = 0; i < N; i++) {
        uint8_t len = (uint8_t)(i % 256 < 12 ? 12 : i % 256);   /* long and short names */
        int n = snprintf(name, sizeof name, "%08u", i);
        memset(name + n, 'x', sizeof name - (size_t)n);
        size_t at;
        cr_assert_eq(map_insert(m, name, len, i, &at), 1);
        cr_assert_eq(at, i);
        uint8_t l;
        ptrs[i] = map_name(m, at, &l);
        if (i % 7 == 0) {   /* every entry is found while the index is being moved */
            unsigned j = (i * 31u) % (i + 1);
            char other[300];
            uint8_t olen = (uint8_t)(j % 256 < 12 ? 12 : j % 256);
            int on = snprintf(other, sizeof other, "%08u", j);
            memset(other + on, 'x', sizeof other - (size_t)on);
            cr_assert_eq(map_find(m, other, olen), (long)j, "entry %u lost at insert %u", j, i);
        }
        if (i % 1000 == 0) {   /* re-inserting changes nothing */
            cr_assert_eq(map_insert(m, name, len, 7, &at), 0);
            cr_assert_eq(at, i);
            map_set(m, at, (uint64_t)i + (1ull << 40));
        }
    }
    cr_assert_eq(map_count(m), N);
    for (unsigned i = 0; i < N; i++) {
        uint8_t len = (uint8_t)(i % 256 < 12 ? 12 : i % 256);
        int n = snprintf(name, sizeof name, "%08u", i);
        memset(name + n, 'x', sizeof name - (size_t)n);
        cr_assert_eq(map_find(m, name, len), (long)i);
        uint8_t l;
        const char *s = map_name(m, i, &l);
        cr_assert_eq(s, ptrs[i], "entry %u's name moved", i);
        cr_assert_eq(l, len);
        cr_assert(memcmp(s, name, len) == 0 && s[len] == '\0');
        cr_assert_eq(map_value(m, i), i % 1000 == 0 ? (uint64_t)i + (1ull << 40) : i);
    }
    cr_assert_eq(map_find(m, "absent", 6), -1);
    map_free(m);
}

Test(map, empty_map, .timeout = 10)
{
    map *m = map_new();
    cr_assert_eq(map_count(m), 0);
    cr_assert_eq(map_find(m, "", 0), -1);
    cr_assert_eq(map_find(m, "a", 1), -1);
    map_free(m);
    map_free(NULL);
}
