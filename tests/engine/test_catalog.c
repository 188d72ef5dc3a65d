/*
 * Unit tests of engine/catalog: building and sealing snapshots, lookups, the
 * pre-rendered event JSON, pagination, reference counting and process-wide publication.
 * Publication is process state; each test runs in its own forked process (check's
 * default), and the publication tests use versions above whatever is current.
 */
#include "engine/catalog.h"

#include <check.h>
#include <stdint.h>
#include <string.h>

#define ID_A "aaaaaaaa-0000-4000-8000-000000000001"
#define ID_B "bbbbbbbb-0000-4000-8000-000000000002"
#define ID_C "cccccccc-0000-4000-8000-000000000003"
#define ID_D "dddddddd-0000-4000-8000-000000000004"
#define ID_MISSING "eeeeeeee-0000-4000-8000-000000000005"
#define TYPE_1 "11111111-0000-4000-8000-000000000001"
#define TYPE_2 "22222222-0000-4000-8000-000000000002"

#define DATE_2026_12_31_20H INT64_C(1798747200000)

static void add_event(tk_catalog_t *c, const char *id, const char *name, int64_t date_ms)
{
    tk_catalog_add_event(c, id, name, strlen(name), date_ms);
}

/* four events added out of order: sealed order is B, D (same date, by id), C, A */
static tk_catalog_t *build_sample(uint64_t version)
{
    tk_catalog_t *c = tk_catalog_new(version);
    add_event(c, ID_A, "Alpha", 3000);
    tk_catalog_add_type(c, TYPE_1, "General", 7, 35000, 100);
    tk_catalog_add_type(c, TYPE_2, "VIP", 3, 120050, 10);
    add_event(c, ID_D, "Delta", 1000);
    add_event(c, ID_C, "Gamma", 2000);
    tk_catalog_add_type(c, TYPE_1, "Standing", 8, 1000, 500);
    add_event(c, ID_B, "Bravo", 1000);
    tk_catalog_seal(c);
    return c;
}

static int json_is(const tk_event_t *ev, const char *expected)
{
    return ev->json.len == strlen(expected) && memcmp(ev->json.base, expected, ev->json.len) == 0;
}

/* ---- building and lookups ---- */

START_TEST(test_new_catalog_is_empty_with_one_reference)
{
    tk_catalog_t *c = tk_catalog_new(7);
    ck_assert_uint_eq(c->version, 7);
    ck_assert_uint_eq(c->nevents, 0);
    ck_assert_int_eq(c->refcnt, 1);
    tk_catalog_seal(c);
    ck_assert_ptr_null(tk_catalog_find(c, ID_A));
    ck_assert_uint_eq(tk_catalog_first_upcoming(c, 0), 0);
    tk_catalog_release(c);
}
END_TEST

START_TEST(test_seal_orders_events_by_date_then_id)
{
    tk_catalog_t *c = build_sample(1);
    ck_assert_uint_eq(c->nevents, 4);
    ck_assert_str_eq(c->events[0].id, ID_B);
    ck_assert_str_eq(c->events[1].id, ID_D);
    ck_assert_str_eq(c->events[2].id, ID_C);
    ck_assert_str_eq(c->events[3].id, ID_A);
    ck_assert_int_eq(c->events[0].date_ms, 1000);
    ck_assert_int_eq(c->events[3].date_ms, 3000);
    tk_catalog_release(c);
}
END_TEST

START_TEST(test_seal_keeps_types_with_their_event)
{
    tk_catalog_t *c = build_sample(1);
    const tk_event_t *a = tk_catalog_find(c, ID_A);
    ck_assert_ptr_nonnull(a);
    ck_assert_uint_eq(a->ntypes, 2);
    ck_assert_str_eq(a->types[0].id, TYPE_1);
    ck_assert_uint_eq(a->types[0].name.len, 7);
    ck_assert_int_eq(memcmp(a->types[0].name.base, "General", 7), 0);
    ck_assert_str_eq(a->types[1].id, TYPE_2);
    ck_assert_int_eq(a->types[1].price_minor, 120050);
    ck_assert_int_eq(a->types[1].amount, 10);
    const tk_event_t *b = tk_catalog_find(c, ID_B);
    ck_assert_uint_eq(b->ntypes, 0);
    const tk_event_t *g = tk_catalog_find(c, ID_C);
    ck_assert_uint_eq(g->ntypes, 1);
    ck_assert_int_eq(g->types[0].amount, 500);
    tk_catalog_release(c);
}
END_TEST

START_TEST(test_find_returns_each_event_by_id)
{
    tk_catalog_t *c = build_sample(1);
    const char *ids[] = {ID_A, ID_B, ID_C, ID_D};
    for (size_t i = 0; i < 4; ++i) {
        const tk_event_t *ev = tk_catalog_find(c, ids[i]);
        ck_assert_ptr_nonnull(ev);
        ck_assert_str_eq(ev->id, ids[i]);
    }
    ck_assert_int_eq(memcmp(tk_catalog_find(c, ID_C)->name.base, "Gamma", 5), 0);
    tk_catalog_release(c);
}
END_TEST

START_TEST(test_find_misses_unknown_id)
{
    tk_catalog_t *c = build_sample(1);
    ck_assert_ptr_null(tk_catalog_find(c, ID_MISSING));
    ck_assert_ptr_null(tk_catalog_find(c, "00000000-0000-4000-8000-000000000000"));
    ck_assert_ptr_null(tk_catalog_find(c, ""));
    ck_assert_ptr_null(tk_catalog_find(c, "AAAAAAAA-0000-4000-8000-000000000001"));
    tk_catalog_release(c);
}
END_TEST

START_TEST(test_find_works_after_many_events_grow_the_array)
{
    enum { N = 100 };
    char ids[N][TK_UUID_LEN + 1];
    tk_catalog_t *c = tk_catalog_new(1);
    for (int i = 0; i < N; ++i) {
        tk_uuid_v4(ids[i]);
        add_event(c, ids[i], "x", (int64_t)((i * 37) % N) * 1000);
        tk_catalog_add_type(c, TYPE_1, "T", 1, i, i);
    }
    tk_catalog_seal(c);
    ck_assert_uint_eq(c->nevents, N);
    for (size_t i = 1; i < N; ++i)
        ck_assert_int_le(c->events[i - 1].date_ms, c->events[i].date_ms);
    for (int i = 0; i < N; ++i) {
        const tk_event_t *ev = tk_catalog_find(c, ids[i]);
        ck_assert_ptr_nonnull(ev);
        ck_assert_int_eq(ev->date_ms, (int64_t)((i * 37) % N) * 1000);
        ck_assert_int_eq(ev->types[0].amount, i);
    }
    tk_catalog_release(c);
}
END_TEST

START_TEST(test_event_find_type_by_exact_name)
{
    tk_catalog_t *c = build_sample(1);
    const tk_event_t *a = tk_catalog_find(c, ID_A);
    const tk_ticket_type_t *vip = tk_event_find_type(a, "VIP", 3);
    ck_assert_ptr_nonnull(vip);
    ck_assert_str_eq(vip->id, TYPE_2);
    ck_assert_int_eq(vip->price_minor, 120050);
    const tk_ticket_type_t *general = tk_event_find_type(a, "General", 7);
    ck_assert_ptr_nonnull(general);
    ck_assert_str_eq(general->id, TYPE_1);
    tk_catalog_release(c);
}
END_TEST

START_TEST(test_event_find_type_misses_other_case_prefix_and_unknown)
{
    tk_catalog_t *c = build_sample(1);
    const tk_event_t *a = tk_catalog_find(c, ID_A);
    ck_assert_ptr_null(tk_event_find_type(a, "vip", 3));
    ck_assert_ptr_null(tk_event_find_type(a, "VI", 2));
    ck_assert_ptr_null(tk_event_find_type(a, "VIPs", 4));
    ck_assert_ptr_null(tk_event_find_type(a, "", 0));
    ck_assert_ptr_null(tk_event_find_type(tk_catalog_find(c, ID_B), "VIP", 3));
    tk_catalog_release(c);
}
END_TEST

START_TEST(test_first_upcoming_none_when_all_past)
{
    tk_catalog_t *c = build_sample(1);
    ck_assert_uint_eq(tk_catalog_first_upcoming(c, 3001), 4);
    ck_assert_uint_eq(tk_catalog_first_upcoming(c, INT64_MAX), 4);
    tk_catalog_release(c);
}
END_TEST

START_TEST(test_first_upcoming_all_when_none_past)
{
    tk_catalog_t *c = build_sample(1);
    ck_assert_uint_eq(tk_catalog_first_upcoming(c, 0), 0);
    ck_assert_uint_eq(tk_catalog_first_upcoming(c, 1000), 0);
    ck_assert_uint_eq(tk_catalog_first_upcoming(c, INT64_MIN), 0);
    tk_catalog_release(c);
}
END_TEST

START_TEST(test_first_upcoming_some_includes_event_at_now)
{
    tk_catalog_t *c = build_sample(1);
    ck_assert_uint_eq(tk_catalog_first_upcoming(c, 1001), 2);
    ck_assert_uint_eq(tk_catalog_first_upcoming(c, 2000), 2);
    ck_assert_uint_eq(tk_catalog_first_upcoming(c, 2001), 3);
    ck_assert_uint_eq(tk_catalog_first_upcoming(c, 3000), 3);
    tk_catalog_release(c);
}
END_TEST

/* ---- pre-rendered JSON ---- */

START_TEST(test_event_json_is_id_name_date)
{
    tk_catalog_t *c = tk_catalog_new(1);
    add_event(c, ID_A, "New Year's Eve", DATE_2026_12_31_20H);
    tk_catalog_seal(c);
    ck_assert_msg(json_is(&c->events[0], "{\"id\":\"" ID_A "\",\"name\":\"New Year's Eve\",\"date\":\"2026-12-31T20:00:00Z\"}"),
                  "json was %.*s", (int)c->events[0].json.len, c->events[0].json.base);
    tk_catalog_release(c);
}
END_TEST

START_TEST(test_event_json_escapes_quote_and_newline_in_name)
{
    tk_catalog_t *c = tk_catalog_new(1);
    add_event(c, ID_B, "Say \"hi\"\nnow \\ later", DATE_2026_12_31_20H + 123);
    tk_catalog_seal(c);
    const char *expected =
        "{\"id\":\"" ID_B "\",\"name\":\"Say \\\"hi\\\"\\nnow \\\\ later\",\"date\":\"2026-12-31T20:00:00.123Z\"}";
    ck_assert_msg(json_is(&c->events[0], expected), "json was %.*s", (int)c->events[0].json.len, c->events[0].json.base);
    tk_catalog_release(c);
}
END_TEST

START_TEST(test_event_json_handles_long_name)
{
    char name[3000];
    memset(name, '"', sizeof(name) - 1);
    name[sizeof(name) - 1] = '\0';
    tk_catalog_t *c = tk_catalog_new(1);
    add_event(c, ID_C, name, 0);
    tk_catalog_seal(c);
    const tk_event_t *ev = &c->events[0];
    /* {"id":"<36>","name":"<2999 * \">","date":"1970-01-01T00:00:00Z"} */
    ck_assert_uint_eq(ev->json.len, 7 + 36 + 10 + 2 * 2999 + 1 + 8 + 22 + 1);
    static const char tail[] = "\\\"\",\"date\":\"1970-01-01T00:00:00Z\"}";
    ck_assert_int_eq(memcmp(ev->json.base + ev->json.len - (sizeof(tail) - 1), tail, sizeof(tail) - 1), 0);
    tk_catalog_release(c);
}
END_TEST

/* ---- pagination ---- */

static tk_page_t paginate(size_t total, int64_t page, int64_t size)
{
    tk_page_t p;
    memset(&p, 0xa5, sizeof(p));
    tk_paginate(total, page, size, &p);
    return p;
}

#define ck_assert_page(p, pg, last, fst, cnt)                                                                                      \
    do {                                                                                                                           \
        ck_assert_uint_eq((p).page, (pg));                                                                                         \
        ck_assert_uint_eq((p).last_page, (last));                                                                                  \
        ck_assert_uint_eq((p).first, (fst));                                                                                       \
        ck_assert_uint_eq((p).count, (cnt));                                                                                       \
    } while (0)

START_TEST(test_paginate_first_middle_and_last_page)
{
    ck_assert_page(paginate(25, 1, 10), 1, 3, 0, 10);
    ck_assert_page(paginate(25, 2, 10), 2, 3, 10, 10);
    ck_assert_page(paginate(25, 3, 10), 3, 3, 20, 5);
}
END_TEST

START_TEST(test_paginate_page_zero_answers_last_page)
{
    ck_assert_page(paginate(25, 0, 10), 3, 3, 20, 5);
}
END_TEST

START_TEST(test_paginate_negative_page_answers_last_page)
{
    ck_assert_page(paginate(25, -1, 10), 3, 3, 20, 5);
    ck_assert_page(paginate(25, INT64_MIN, 10), 3, 3, 20, 5);
}
END_TEST

START_TEST(test_paginate_page_past_end_answers_last_page)
{
    ck_assert_page(paginate(25, 4, 10), 3, 3, 20, 5);
    ck_assert_page(paginate(25, 1000, 10), 3, 3, 20, 5);
}
END_TEST

START_TEST(test_paginate_huge_page_number_answers_last_page)
{
    ck_assert_page(paginate(25, INT64_MAX, 10), 3, 3, 20, 5);
    ck_assert_page(paginate(25, INT64_MAX, 1), 25, 25, 24, 1);
}
END_TEST

START_TEST(test_paginate_no_items_is_one_empty_page)
{
    ck_assert_page(paginate(0, 1, 10), 1, 1, 0, 0);
    ck_assert_page(paginate(0, 0, 10), 1, 1, 0, 0);
    ck_assert_page(paginate(0, 7, 10), 1, 1, 0, 0);
    ck_assert_page(paginate(0, INT64_MAX, 1), 1, 1, 0, 0);
}
END_TEST

START_TEST(test_paginate_exact_multiple_has_full_last_page)
{
    ck_assert_page(paginate(20, 2, 10), 2, 2, 10, 10);
    ck_assert_page(paginate(20, 3, 10), 2, 2, 10, 10);
}
END_TEST

START_TEST(test_paginate_size_one_is_one_item_per_page)
{
    ck_assert_page(paginate(3, 1, 1), 1, 3, 0, 1);
    ck_assert_page(paginate(3, 2, 1), 2, 3, 1, 1);
    ck_assert_page(paginate(3, 3, 1), 3, 3, 2, 1);
}
END_TEST

START_TEST(test_paginate_size_larger_than_total_is_one_page)
{
    ck_assert_page(paginate(7, 1, 100), 1, 1, 0, 7);
    ck_assert_page(paginate(7, 2, 100), 1, 1, 0, 7);
    ck_assert_page(paginate(7, 1, INT64_MAX), 1, 1, 0, 7);
}
END_TEST

/* ---- reference counting ---- */

START_TEST(test_retain_and_release_keep_catalog_alive_until_last_reference)
{
    tk_catalog_t *c = build_sample(1);
    ck_assert_int_eq(c->refcnt, 1);
    tk_catalog_retain(c);
    tk_catalog_retain(c);
    ck_assert_int_eq(c->refcnt, 3);
    tk_catalog_release(c);
    tk_catalog_release(c);
    /* still ours: reading it must be valid (ASan would flag a use after free) */
    ck_assert_int_eq(c->refcnt, 1);
    ck_assert_int_eq(memcmp(c->events[0].name.base, "Bravo", 5), 0);
    ck_assert_uint_gt(c->events[3].json.len, 0);
    tk_catalog_release(c); /* frees everything; LeakSanitizer checks nothing is left */
}
END_TEST

START_TEST(test_release_null_is_a_no_op)
{
    tk_catalog_release(NULL);
}
END_TEST

/* ---- publication ---- */

START_TEST(test_current_is_null_before_first_publish)
{
    tk_catalog_cache_t cache = {0};
    ck_assert_uint_eq(tk_catalog_current_version(), 0);
    ck_assert_ptr_null(tk_catalog_current(&cache));
    tk_catalog_cache_dispose(&cache);
}
END_TEST

START_TEST(test_publish_newer_then_older_keeps_newer_unless_told)
{
    uint64_t base = tk_catalog_current_version();
    tk_catalog_t *v2 = build_sample(base + 2);
    ck_assert_int_eq(tk_catalog_publish(v2, 0), 1);
    ck_assert_uint_eq(tk_catalog_current_version(), base + 2);
    tk_catalog_t *v1 = build_sample(base + 1);
    ck_assert_int_eq(tk_catalog_publish(v1, 0), 0); /* consumed and freed: v1 is not touched again */
    ck_assert_uint_eq(tk_catalog_current_version(), base + 2);
    tk_catalog_cache_t cache = {0};
    ck_assert_ptr_eq(tk_catalog_current(&cache), v2);
    /* Redis's version went back: the older one is published when asked to */
    tk_catalog_t *back = build_sample(base + 1);
    ck_assert_int_eq(tk_catalog_publish(back, 1), 1);
    ck_assert_uint_eq(tk_catalog_current_version(), base + 1);
    ck_assert_ptr_eq(tk_catalog_current(&cache), back);
    tk_catalog_cache_dispose(&cache);
}
END_TEST

START_TEST(test_publish_same_version_replaces)
{
    uint64_t base = tk_catalog_current_version();
    tk_catalog_t *first = build_sample(base + 1);
    ck_assert_int_eq(tk_catalog_publish(first, 0), 1);
    tk_catalog_t *second = build_sample(base + 1);
    ck_assert_int_eq(tk_catalog_publish(second, 0), 1);
    tk_catalog_cache_t cache = {0};
    ck_assert_ptr_eq(tk_catalog_current(&cache), second);
    tk_catalog_cache_dispose(&cache);
}
END_TEST

START_TEST(test_publish_consumes_reference_and_cache_holds_one)
{
    uint64_t base = tk_catalog_current_version();
    tk_catalog_t *c = build_sample(base + 1);
    tk_catalog_retain(c); /* ours */
    ck_assert_int_eq(tk_catalog_publish(c, 0), 1);
    ck_assert_int_eq(c->refcnt, 2); /* ours + published */
    tk_catalog_cache_t cache = {0};
    ck_assert_ptr_eq(tk_catalog_current(&cache), c);
    ck_assert_int_eq(c->refcnt, 3);
    ck_assert_ptr_eq(tk_catalog_current(&cache), c); /* same generation: no new reference */
    ck_assert_int_eq(c->refcnt, 3);
    tk_catalog_cache_dispose(&cache);
    ck_assert_ptr_null(cache.snapshot);
    ck_assert_int_eq(c->refcnt, 2);
    tk_catalog_release(c);
}
END_TEST

START_TEST(test_cache_sees_new_snapshot_after_publish)
{
    uint64_t base = tk_catalog_current_version();
    tk_catalog_t *old = build_sample(base + 1);
    tk_catalog_retain(old);
    ck_assert_int_eq(tk_catalog_publish(old, 0), 1);
    tk_catalog_cache_t cache = {0};
    ck_assert_ptr_eq(tk_catalog_current(&cache), old);
    ck_assert_int_eq(old->refcnt, 3);

    tk_catalog_t *fresh = tk_catalog_new(base + 2);
    add_event(fresh, ID_MISSING, "Echo", 5000);
    tk_catalog_seal(fresh);
    tk_catalog_retain(fresh);
    ck_assert_int_eq(tk_catalog_publish(fresh, 0), 1);
    ck_assert_int_eq(old->refcnt, 2); /* published no longer holds it */

    tk_catalog_t *seen = tk_catalog_current(&cache);
    ck_assert_ptr_eq(seen, fresh);
    ck_assert_uint_eq(seen->version, base + 2);
    ck_assert_ptr_nonnull(tk_catalog_find(seen, ID_MISSING));
    ck_assert_ptr_null(tk_catalog_find(seen, ID_A));
    ck_assert_int_eq(old->refcnt, 1); /* the cache let go of the old snapshot */
    ck_assert_int_eq(fresh->refcnt, 3);
    /* the old snapshot stays valid for its remaining holder */
    ck_assert_ptr_nonnull(tk_catalog_find(old, ID_A));
    tk_catalog_release(old);

    tk_catalog_cache_dispose(&cache);
    ck_assert_int_eq(fresh->refcnt, 2);
    tk_catalog_release(fresh);
}
END_TEST

START_TEST(test_two_caches_both_follow_publication)
{
    uint64_t base = tk_catalog_current_version();
    tk_catalog_cache_t c1 = {0}, c2 = {0};
    tk_catalog_t *a = build_sample(base + 1);
    tk_catalog_publish(a, 0);
    ck_assert_ptr_eq(tk_catalog_current(&c1), a);
    tk_catalog_t *b = build_sample(base + 2);
    tk_catalog_publish(b, 0);
    ck_assert_ptr_eq(tk_catalog_current(&c2), b);
    ck_assert_ptr_eq(tk_catalog_current(&c1), b); /* a is freed here, c1 held its last reference */
    ck_assert_int_eq(b->refcnt, 3);
    tk_catalog_cache_dispose(&c1);
    tk_catalog_cache_dispose(&c2);
    ck_assert_int_eq(b->refcnt, 1);
}
END_TEST

static Suite *catalog_suite(void)
{
    Suite *s = suite_create("catalog");
    TCase *tc = tcase_create("publication");
    /* first, so that it also holds when tests do not fork */
    tcase_add_test(tc, test_current_is_null_before_first_publish);
    tcase_add_test(tc, test_publish_newer_then_older_keeps_newer_unless_told);
    tcase_add_test(tc, test_publish_same_version_replaces);
    tcase_add_test(tc, test_publish_consumes_reference_and_cache_holds_one);
    tcase_add_test(tc, test_cache_sees_new_snapshot_after_publish);
    tcase_add_test(tc, test_two_caches_both_follow_publication);
    suite_add_tcase(s, tc);

    tc = tcase_create("build");
    tcase_add_test(tc, test_new_catalog_is_empty_with_one_reference);
    tcase_add_test(tc, test_seal_orders_events_by_date_then_id);
    tcase_add_test(tc, test_seal_keeps_types_with_their_event);
    tcase_add_test(tc, test_find_returns_each_event_by_id);
    tcase_add_test(tc, test_find_misses_unknown_id);
    tcase_add_test(tc, test_find_works_after_many_events_grow_the_array);
    tcase_add_test(tc, test_event_find_type_by_exact_name);
    tcase_add_test(tc, test_event_find_type_misses_other_case_prefix_and_unknown);
    tcase_add_test(tc, test_first_upcoming_none_when_all_past);
    tcase_add_test(tc, test_first_upcoming_all_when_none_past);
    tcase_add_test(tc, test_first_upcoming_some_includes_event_at_now);
    suite_add_tcase(s, tc);

    tc = tcase_create("json");
    tcase_add_test(tc, test_event_json_is_id_name_date);
    tcase_add_test(tc, test_event_json_escapes_quote_and_newline_in_name);
    tcase_add_test(tc, test_event_json_handles_long_name);
    suite_add_tcase(s, tc);

    tc = tcase_create("paginate");
    tcase_add_test(tc, test_paginate_first_middle_and_last_page);
    tcase_add_test(tc, test_paginate_page_zero_answers_last_page);
    tcase_add_test(tc, test_paginate_negative_page_answers_last_page);
    tcase_add_test(tc, test_paginate_page_past_end_answers_last_page);
    tcase_add_test(tc, test_paginate_huge_page_number_answers_last_page);
    tcase_add_test(tc, test_paginate_no_items_is_one_empty_page);
    tcase_add_test(tc, test_paginate_exact_multiple_has_full_last_page);
    tcase_add_test(tc, test_paginate_size_one_is_one_item_per_page);
    tcase_add_test(tc, test_paginate_size_larger_than_total_is_one_page);
    suite_add_tcase(s, tc);

    tc = tcase_create("refcount");
    tcase_add_test(tc, test_retain_and_release_keep_catalog_alive_until_last_reference);
    tcase_add_test(tc, test_release_null_is_a_no_op);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(catalog_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed != 0;
}
