/*
 * Unit tests of http/query: finding and percent-decoding query parameters, and reading
 * them as whole numbers.
 */
#include "http/query.h"

#include <check.h>
#include <string.h>

static h2o_mem_pool_t pool;

static void pool_setup(void)
{
    h2o_mem_init_pool(&pool);
}

static void pool_teardown(void)
{
    h2o_mem_clear_pool(&pool);
}

static h2o_iovec_t value;

static int get(const char *query, const char *name)
{
    value = h2o_iovec_init(NULL, 0);
    return tk_query_get(h2o_iovec_init(query, strlen(query)), name, &pool, &value);
}

static int value_is(const char *expected, size_t len)
{
    return value.len == len && memcmp(value.base, expected, len) == 0 && value.base[len] == '\0';
}

#define ck_assert_value(expected)                                                                                                  \
    ck_assert_msg(value_is((expected), sizeof(expected) - 1), "value was '%.*s'", (int)value.len, value.base)

static int64_t parsed;

static int parse_int(const char *s)
{
    parsed = 12345;
    return tk_query_parse_int(h2o_iovec_init(s, strlen(s)), &parsed);
}

/* ---- tk_query_get ---- */

START_TEST(test_get_finds_parameter)
{
    ck_assert_int_eq(get("page=2&size=10", "size"), 1);
    ck_assert_value("10");
    ck_assert_int_eq(get("page=2&size=10", "page"), 1);
    ck_assert_value("2");
}
END_TEST

START_TEST(test_get_absent_parameter_is_zero)
{
    ck_assert_int_eq(get("page=2&size=10", "sort"), 0);
    ck_assert_int_eq(get("", "page"), 0);
    ck_assert_int_eq(get("pages=2", "page"), 0);
    ck_assert_int_eq(get("xpage=2", "page"), 0);
    ck_assert_int_eq(get("a=page", "page"), 0);
}
END_TEST

START_TEST(test_get_first_occurrence_wins)
{
    ck_assert_int_eq(get("page=1&page=2", "page"), 1);
    ck_assert_value("1");
}
END_TEST

START_TEST(test_get_empty_value)
{
    ck_assert_int_eq(get("page=&size=10", "page"), 1);
    ck_assert_value("");
    ck_assert_int_eq(get("size=10&page=", "page"), 1);
    ck_assert_value("");
}
END_TEST

START_TEST(test_get_key_without_equals_has_empty_value)
{
    ck_assert_int_eq(get("flag&page=2", "flag"), 1);
    ck_assert_value("");
    ck_assert_int_eq(get("page=2&flag", "flag"), 1);
    ck_assert_value("");
}
END_TEST

START_TEST(test_get_skips_empty_pairs)
{
    ck_assert_int_eq(get("&&page=3&", "page"), 1);
    ck_assert_value("3");
}
END_TEST

START_TEST(test_get_value_may_contain_equals)
{
    ck_assert_int_eq(get("q=a=b", "q"), 1);
    ck_assert_value("a=b");
}
END_TEST

START_TEST(test_get_percent_decodes)
{
    ck_assert_int_eq(get("q=caf%C3%A9%20bar", "q"), 1);
    ck_assert_value("caf\xc3\xa9 bar");
    ck_assert_int_eq(get("q=%41%2b%2B%26%3d", "q"), 1);
    ck_assert_value("A++&=");
    ck_assert_int_eq(get("q=%4a%4A", "q"), 1);
    ck_assert_value("JJ");
}
END_TEST

START_TEST(test_get_percent_00_decodes_to_nul_byte)
{
    ck_assert_int_eq(get("q=a%00b", "q"), 1);
    ck_assert_uint_eq(value.len, 3);
    ck_assert_int_eq(memcmp(value.base, "a\0b", 3), 0);
}
END_TEST

START_TEST(test_get_plus_decodes_to_space)
{
    ck_assert_int_eq(get("q=rock+and+roll", "q"), 1);
    ck_assert_value("rock and roll");
}
END_TEST

START_TEST(test_get_broken_percent_encoding_is_minus_one)
{
    ck_assert_int_eq(get("q=%4", "q"), -1);
    ck_assert_int_eq(get("q=%zz", "q"), -1);
    ck_assert_int_eq(get("q=%", "q"), -1);
    ck_assert_int_eq(get("q=ab%4&x=1", "q"), -1);
    ck_assert_int_eq(get("q=%g1", "q"), -1);
    ck_assert_int_eq(get("q=%1g", "q"), -1);
}
END_TEST

START_TEST(test_get_broken_encoding_elsewhere_does_not_matter)
{
    ck_assert_int_eq(get("x=%zz&q=1", "q"), 1);
    ck_assert_value("1");
}
END_TEST

START_TEST(test_get_reads_only_query_len_bytes)
{
    const char *s = "page=2&size=10";
    value = h2o_iovec_init(NULL, 0);
    ck_assert_int_eq(tk_query_get(h2o_iovec_init(s, 6), "page", &pool, &value), 1);
    ck_assert_value("2");
    ck_assert_int_eq(tk_query_get(h2o_iovec_init(s, 6), "size", &pool, &value), 0);
    ck_assert_int_eq(tk_query_get(h2o_iovec_init(s, 3), "page", &pool, &value), 0);
}
END_TEST

/* ---- tk_query_of ---- */

START_TEST(test_query_of_returns_text_after_question_mark)
{
    h2o_req_t req;
    memset(&req, 0, sizeof(req));
    req.path = h2o_iovec_init(H2O_STRLIT("/events?page=2&size=5"));
    req.query_at = 7;
    h2o_iovec_t q = tk_query_of(&req);
    ck_assert_uint_eq(q.len, 13);
    ck_assert_int_eq(memcmp(q.base, "page=2&size=5", 13), 0);
    req.path = h2o_iovec_init(H2O_STRLIT("/events?"));
    ck_assert_uint_eq(tk_query_of(&req).len, 0);
    req.path = h2o_iovec_init(H2O_STRLIT("/events"));
    req.query_at = SIZE_MAX;
    ck_assert_uint_eq(tk_query_of(&req).len, 0);
}
END_TEST

/* ---- tk_query_parse_int ---- */

START_TEST(test_parse_int_accepts_whole_numbers)
{
    ck_assert_int_eq(parse_int("1"), 0);
    ck_assert_int_eq(parsed, 1);
    ck_assert_int_eq(parse_int("-3"), 0);
    ck_assert_int_eq(parsed, -3);
    ck_assert_int_eq(parse_int("0"), 0);
    ck_assert_int_eq(parsed, 0);
    ck_assert_int_eq(parse_int("-0"), 0);
    ck_assert_int_eq(parsed, 0);
}
END_TEST

START_TEST(test_parse_int_leading_zeros_are_decimal)
{
    ck_assert_int_eq(parse_int("007"), 0);
    ck_assert_int_eq(parsed, 7);
    ck_assert_int_eq(parse_int("010"), 0);
    ck_assert_int_eq(parsed, 10);
}
END_TEST

START_TEST(test_parse_int_refuses_empty_and_lone_minus)
{
    ck_assert_int_eq(parse_int(""), -1);
    ck_assert_int_eq(parse_int("-"), -1);
    ck_assert_int_eq(parsed, 12345);
}
END_TEST

START_TEST(test_parse_int_refuses_non_digits)
{
    const char *bad[] = {"1.5", "abc", " 1", "1 ", "+1", "1e3", "0x10", "--1", "1-", "12a"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); ++i) {
        ck_assert_msg(parse_int(bad[i]) == -1, "'%s' was accepted as %lld", bad[i], (long long)parsed);
        ck_assert_int_eq(parsed, 12345);
    }
}
END_TEST

START_TEST(test_parse_int_int64_bounds)
{
    ck_assert_int_eq(parse_int("9223372036854775807"), 0);
    ck_assert_int_eq(parsed, INT64_MAX);
    ck_assert_int_eq(parse_int("-9223372036854775807"), 0);
    ck_assert_int_eq(parsed, -INT64_MAX);
}
END_TEST

START_TEST(test_parse_int_overflow_saturates_to_int64_max)
{
    ck_assert_int_eq(parse_int("99999999999999999999"), 0);
    ck_assert_int_eq(parsed, INT64_MAX);
    ck_assert_int_eq(parse_int("9223372036854775808"), 0);
    ck_assert_int_eq(parsed, INT64_MAX);
    ck_assert_int_eq(parse_int("999999999999999999999999999999999999"), 0);
    ck_assert_int_eq(parsed, INT64_MAX);
}
END_TEST

/* Every value beyond int64 must saturate, not wrap or stop short. */
START_TEST(test_parse_int_overflow_saturates_for_every_large_value)
{
    const char *large[] = {"18446744073709551616", "20000000000000000000", "50000000000000000000"};
    for (size_t i = 0; i < sizeof(large) / sizeof(large[0]); ++i) {
        ck_assert_int_eq(parse_int(large[i]), 0);
        ck_assert_msg(parsed == INT64_MAX, "'%s' parsed to %lld, not INT64_MAX", large[i], (long long)parsed);
    }
}
END_TEST

START_TEST(test_parse_int_negative_overflow_saturates_negative)
{
    ck_assert_int_eq(parse_int("-99999999999999999999"), 0);
    ck_assert_int_le(parsed, -INT64_MAX);
}
END_TEST

/* -9223372036854775808 is within int64 and must come back exactly. */
START_TEST(test_parse_int_int64_min_is_exact)
{
    ck_assert_int_eq(parse_int("-9223372036854775808"), 0);
    ck_assert_msg(parsed == INT64_MIN, "parsed to %lld", (long long)parsed);
}
END_TEST

static Suite *query_suite(void)
{
    Suite *s = suite_create("query");
    TCase *tc = tcase_create("get");
    tcase_add_checked_fixture(tc, pool_setup, pool_teardown);
    tcase_add_test(tc, test_get_finds_parameter);
    tcase_add_test(tc, test_get_absent_parameter_is_zero);
    tcase_add_test(tc, test_get_first_occurrence_wins);
    tcase_add_test(tc, test_get_empty_value);
    tcase_add_test(tc, test_get_key_without_equals_has_empty_value);
    tcase_add_test(tc, test_get_skips_empty_pairs);
    tcase_add_test(tc, test_get_value_may_contain_equals);
    tcase_add_test(tc, test_get_percent_decodes);
    tcase_add_test(tc, test_get_percent_00_decodes_to_nul_byte);
    tcase_add_test(tc, test_get_plus_decodes_to_space);
    tcase_add_test(tc, test_get_broken_percent_encoding_is_minus_one);
    tcase_add_test(tc, test_get_broken_encoding_elsewhere_does_not_matter);
    tcase_add_test(tc, test_get_reads_only_query_len_bytes);
    tcase_add_test(tc, test_query_of_returns_text_after_question_mark);
    suite_add_tcase(s, tc);

    tc = tcase_create("parse_int");
    tcase_add_test(tc, test_parse_int_accepts_whole_numbers);
    tcase_add_test(tc, test_parse_int_leading_zeros_are_decimal);
    tcase_add_test(tc, test_parse_int_refuses_empty_and_lone_minus);
    tcase_add_test(tc, test_parse_int_refuses_non_digits);
    tcase_add_test(tc, test_parse_int_int64_bounds);
    tcase_add_test(tc, test_parse_int_overflow_saturates_to_int64_max);
    tcase_add_test(tc, test_parse_int_overflow_saturates_for_every_large_value);
    tcase_add_test(tc, test_parse_int_negative_overflow_saturates_negative);
    tcase_add_test(tc, test_parse_int_int64_min_is_exact);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(query_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed != 0;
}
