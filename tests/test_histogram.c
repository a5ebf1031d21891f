/* tests/test_histogram.c — core/histogram (fixed buckets, cumulative
 * exposition) and core/statusfmt (the status JSON, escaping). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "../core/histogram.h"
#include "../core/statusfmt.h"

Test(histogram, buckets_are_upper_bounds_and_exposed_cumulative)
{
    histogram h = {0};
    hist_observe(&h, 0);        /* <= 50 us */
    hist_observe(&h, 50);       /* on the bound: that bucket */
    hist_observe(&h, 51);       /* <= 100 us */
    hist_observe(&h, 1000000);  /* <= 1 s */
    hist_observe(&h, 5000000);  /* +Inf only */
    cr_assert_eq(h.bucket[0], 2);
    cr_assert_eq(h.bucket[1], 1);
    cr_assert_eq(h.bucket[HIST_BUCKETS - 1], 1);
    cr_assert_eq(h.bucket[HIST_BUCKETS], 1);
    cr_assert_eq(h.count, 5);
    char buf[HIST_EXPOSE_MAX];
    size_t used = hist_expose(&h, "seqd_x_seconds", "x.", buf, 0, sizeof buf);
    cr_assert_lt(used, sizeof buf);
    buf[used] = '\0';
    cr_assert(strstr(buf, "# HELP seqd_x_seconds x.\n# TYPE seqd_x_seconds histogram\n"), "%s", buf);
    cr_assert(strstr(buf, "seqd_x_seconds_bucket{le=\"5e-05\"} 2\n"), "%s", buf);
    cr_assert(strstr(buf, "seqd_x_seconds_bucket{le=\"0.0001\"} 3\n"), "%s", buf);
    cr_assert(strstr(buf, "seqd_x_seconds_bucket{le=\"0.5\"} 3\n"), "%s", buf);
    cr_assert(strstr(buf, "seqd_x_seconds_bucket{le=\"1\"} 4\n"), "%s", buf);
    cr_assert(strstr(buf, "seqd_x_seconds_bucket{le=\"+Inf\"} 5\n"), "%s", buf);
    cr_assert(strstr(buf, "seqd_x_seconds_sum 6.000101\nseqd_x_seconds_count 5\n"), "%s", buf);
}

Test(histogram, expose_says_when_it_does_not_fit)
{
    histogram h = {0};
    char buf[64];
    cr_assert_eq(hist_expose(&h, "seqd_x_seconds", "x.", buf, 0, sizeof buf), sizeof buf);
}

Test(statusfmt, object_and_escaping)
{
    struct seqd_status st = {.state = STATE_RECOVERING, .self_index = 2, .n_members = 3,
                             .fetches = 7, .records = 9};
    char buf[1024];
    cr_assert_gt(statusfmt_json(&st, "h:1", buf, sizeof buf), 0);
    cr_assert_str_eq(buf, "{\"address\":\"h:1\",\"state\":\"recovering\",\"index\":2,\"members\":3,"
                          "\"counters\":{\"fetches\":7,\"ids\":0,\"rounds\":0,\"reads\":0,"
                          "\"nacks\":0,\"fsyncs\":0,\"records\":9,\"epoch\":0}}");
    cr_assert_gt(statusfmt_down("h:1", "say \"no\"\\\n", buf, sizeof buf), 0);
    cr_assert_str_eq(buf, "{\"address\":\"h:1\",\"state\":\"down\",\"error\":\"say \\\"no\\\"\\\\\\u000a\"}");
    cr_assert_eq(statusfmt_json(&st, "h:1", buf, 20), -1);
}
