/* tests/test_table.c — the live table: absent names, max semantics, stable
 * insertion order across growth, and scale. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "../storage/table.h"

Test(table, get_absent_is_one, .timeout = 10)
{
    table *t = table_new();
    cr_assert_not_null(t);
    cr_assert_eq(table_get(t, "nope", 4), 1);
    cr_assert_eq(table_count(t), 0);
    /* a prefix of a present name is a different name */
    cr_assert_eq(table_raise(t, "nopex", 5, 9), 1);
    cr_assert_eq(table_get(t, "nope", 4), 1);
    table_free(t);
}

Test(table, raise_keeps_max, .timeout = 10)
{
    table *t = table_new();
    cr_assert_eq(table_raise(t, "a", 1, 10), 1);
    cr_assert_eq(table_get(t, "a", 1), 10);
    cr_assert_eq(table_raise(t, "a", 1, 5), 0);
    cr_assert_eq(table_get(t, "a", 1), 10);
    cr_assert_eq(table_raise(t, "a", 1, 10), 0);
    cr_assert_eq(table_raise(t, "a", 1, UINT64_MAX), 1);
    cr_assert_eq(table_get(t, "a", 1), UINT64_MAX);
    /* raising an absent name to 1 does not grow it (it already reads 1) */
    cr_assert_eq(table_raise(t, "b", 1, 1), 0);
    cr_assert_eq(table_get(t, "b", 1), 1);
    cr_assert_eq(table_count(t), 2);
    table_free(t);
}

Test(table, insertion_order_stable_across_growth, .timeout = 10)
{
    table *t = table_new();
    const char *first_name = NULL;
    char name[32];
    for (int i = 0; i < 5000; i++) {
        int n = snprintf(name, sizeof name, "seq-%d", i);
        cr_assert_eq(table_raise(t, name, (uint8_t)n, (uint64_t)i + 2), 1);
        if (i == 0)
            table_entry(t, 0, &first_name, NULL, NULL);
        /* re-raising an existing name must not reorder or duplicate it */
        if (i % 7 == 0)
            cr_assert_eq(table_raise(t, "seq-0", 5, (uint64_t)i + 100), 1);
    }
    cr_assert_eq(table_count(t), 5000);
    for (int i = 0; i < 5000; i++) {
        const char *nm;
        uint8_t len;
        uint64_t v;
        table_entry(t, (size_t)i, &nm, &len, &v);
        int n = snprintf(name, sizeof name, "seq-%d", i);
        cr_assert_eq(len, n);
        cr_assert_str_eq(nm, name); /* NUL-terminated copy */
        if (i > 0)
            cr_assert_eq(v, (uint64_t)i + 2);
    }
    const char *again;
    table_entry(t, 0, &again, NULL, NULL);
    cr_assert_eq(again, first_name, "name pointers must survive growth");
    table_free(t);
}

Test(table, hundred_thousand_names, .timeout = 20)
{
    table *t = table_new();
    char name[32];
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (int i = 0; i < 200000; i++) {
        int n = snprintf(name, sizeof name, "n%07d", i);
        cr_assert_eq(table_raise(t, name, (uint8_t)n, (uint64_t)i * 3 + 2), 1);
    }
    for (int i = 0; i < 200000; i++) {
        int n = snprintf(name, sizeof name, "n%07d", i);
        cr_assert_eq(table_get(t, name, (uint8_t)n), (uint64_t)i * 3 + 2);
    }
    clock_gettime(CLOCK_MONOTONIC, &b);
    double s = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
    cr_assert_eq(table_count(t), 200000);
    cr_assert_lt(s, 5.0, "200k inserts + lookups took %.2fs", s);
    table_free(t);
}
