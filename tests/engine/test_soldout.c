/*
 * Unit tests of engine/soldout.c: remembers "none left" for one second, per (event,
 * type), and never answers for a key it was not told about.
 */
#include "engine/soldout.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const EVENT_A = "aaaa0000-0000-4000-8000-000000000001";
static const char *const EVENT_B = "bbbb0000-0000-4000-8000-000000000002";

START_TEST(marked_type_is_sold_out_for_one_second)
{
    tk_soldout_t *t = calloc(1, sizeof(*t));
    tk_soldout_mark(t, EVENT_A, "VIP", 3, 1000);
    ck_assert(tk_soldout_check(t, EVENT_A, "VIP", 3, 1000));
    ck_assert(tk_soldout_check(t, EVENT_A, "VIP", 3, 1999));
    ck_assert(!tk_soldout_check(t, EVENT_A, "VIP", 3, 2000));
    free(t);
}
END_TEST

START_TEST(other_types_and_events_are_not_affected)
{
    tk_soldout_t *t = calloc(1, sizeof(*t));
    tk_soldout_mark(t, EVENT_A, "VIP", 3, 1000);
    ck_assert(!tk_soldout_check(t, EVENT_A, "VIPs", 4, 1000));
    ck_assert(!tk_soldout_check(t, EVENT_A, "VI", 2, 1000));
    ck_assert(!tk_soldout_check(t, EVENT_B, "VIP", 3, 1000));
    free(t);
}
END_TEST

START_TEST(many_keys_never_give_a_false_answer)
{
    tk_soldout_t *t = calloc(1, sizeof(*t));
    char type[16];
    /* more keys than slots: some are forgotten (a round trip), none is confused */
    for (int i = 0; i < 1000; ++i) {
        int len = snprintf(type, sizeof(type), "T%d", i);
        tk_soldout_mark(t, EVENT_A, type, (size_t)len, 5000);
    }
    int remembered = 0;
    for (int i = 0; i < 1000; ++i) {
        int len = snprintf(type, sizeof(type), "T%d", i);
        remembered += tk_soldout_check(t, EVENT_A, type, (size_t)len, 5000);
        len = snprintf(type, sizeof(type), "U%d", i);
        ck_assert(!tk_soldout_check(t, EVENT_A, type, (size_t)len, 5000));
    }
    ck_assert_int_gt(remembered, 0);
    ck_assert_int_le(remembered, TK_SOLDOUT_SLOTS);
    free(t);
}
END_TEST

START_TEST(overlong_type_names_are_never_cached)
{
    tk_soldout_t *t = calloc(1, sizeof(*t));
    char name[100];
    memset(name, 'x', sizeof(name));
    tk_soldout_mark(t, EVENT_A, name, sizeof(name), 1000);
    ck_assert(!tk_soldout_check(t, EVENT_A, name, sizeof(name), 1000));
    free(t);
}
END_TEST

int main(void)
{
    Suite *suite = suite_create("soldout");
    TCase *tc = tcase_create("soldout");
    tcase_add_test(tc, marked_type_is_sold_out_for_one_second);
    tcase_add_test(tc, other_types_and_events_are_not_affected);
    tcase_add_test(tc, many_keys_never_give_a_false_answer);
    tcase_add_test(tc, overlong_type_names_are_never_cached);
    suite_add_tcase(suite, tc);
    SRunner *runner = srunner_create(suite);
    srunner_run_all(runner, CK_NORMAL);
    int failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed != 0;
}
