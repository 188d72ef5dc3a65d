/*
 * Unit tests of engine/soldout.c: remembers "none left" for one second, per (event,
 * type), never answers for a key it was not told about, and counts every refusal it
 * answers until the counts are taken.
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

typedef struct st_taken_t {
    char events[8][37];
    uint32_t counts[8];
    int n;
} taken_t;

static void on_taken(const char *event, uint32_t refused, void *data)
{
    taken_t *t = data;
    ck_assert_int_lt(t->n, 8);
    snprintf(t->events[t->n], sizeof(t->events[0]), "%s", event);
    t->counts[t->n++] = refused;
}

START_TEST(every_refusal_answered_is_counted_once)
{
    tk_soldout_t *t = calloc(1, sizeof(*t));
    tk_soldout_mark(t, EVENT_A, "VIP", 3, 1000);
    tk_soldout_mark(t, EVENT_B, "GA", 2, 1000);
    for (int i = 0; i < 3; ++i)
        ck_assert(tk_soldout_check(t, EVENT_A, "VIP", 3, 1500));
    ck_assert(tk_soldout_check(t, EVENT_B, "GA", 2, 1500));
    ck_assert(!tk_soldout_check(t, EVENT_A, "VIP", 3, 2500)); /* expired: Redis answers and counts it */
    tk_soldout_mark(t, EVENT_A, "VIP", 3, 1600);              /* marked again: the count stays */
    ck_assert(tk_soldout_check(t, EVENT_A, "VIP", 3, 1700));
    taken_t taken = {0};
    tk_soldout_take_refused(t, on_taken, &taken);
    ck_assert_int_eq(taken.n, 2);
    uint32_t a = 0, b = 0;
    for (int i = 0; i < taken.n; ++i)
        *(strcmp(taken.events[i], EVENT_A) == 0 ? &a : &b) += taken.counts[i];
    ck_assert_uint_eq(a, 4);
    ck_assert_uint_eq(b, 1);
    taken = (taken_t){0};
    tk_soldout_take_refused(t, on_taken, &taken);
    ck_assert_int_eq(taken.n, 0); /* taken once */
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
    tcase_add_test(tc, every_refusal_answered_is_counted_once);
    suite_add_tcase(suite, tc);
    SRunner *runner = srunner_create(suite);
    srunner_run_all(runner, CK_NORMAL);
    int failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed != 0;
}
