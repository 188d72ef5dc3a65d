/*
 * Unit tests of engine/money: JSON numbers to integer minor units and back, and the
 * SQL numeric literal.
 */
#include "engine/money.h"

#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static void assert_converts(double major, int64_t expected)
{
    int64_t minor = -12345;
    ck_assert_msg(tk_money_from_double(major, &minor) == 0, "%.17g was refused", major);
    ck_assert_msg(minor == expected, "%.17g became %lld, expected %lld", major, (long long)minor, (long long)expected);
}

static void assert_refused(double major)
{
    int64_t minor = -12345;
    ck_assert_msg(tk_money_from_double(major, &minor) == -1, "%.17g was accepted as %lld", major, (long long)minor);
    ck_assert_int_eq(minor, -12345); /* untouched */
}

static char buf[64];

static const char *json(int64_t minor)
{
    size_t n = tk_money_format_json(minor, buf, sizeof(buf));
    ck_assert_uint_eq(n, strlen(buf));
    return buf;
}

static const char *sql(int64_t minor)
{
    size_t n = tk_money_format_sql(minor, buf, sizeof(buf));
    ck_assert_uint_eq(n, strlen(buf));
    return buf;
}

/* ---- from_double ---- */

START_TEST(test_from_double_whole_amount)
{
    assert_converts(350, 35000);
    assert_converts(1, 100);
}
END_TEST

START_TEST(test_from_double_one_decimal)
{
    assert_converts(120.5, 12050);
}
END_TEST

START_TEST(test_from_double_two_decimals)
{
    assert_converts(0.99, 99);
    assert_converts(19.99, 1999);
    assert_converts(0.29, 29);
    assert_converts(0.01, 1);
}
END_TEST

START_TEST(test_from_double_zero)
{
    assert_converts(0, 0);
}
END_TEST

START_TEST(test_from_double_accepts_binary_float_artefact)
{
    assert_converts(0.1 + 0.2, 30);
    assert_converts(0.30000000000000004, 30);
}
END_TEST

START_TEST(test_from_double_refuses_three_decimals)
{
    assert_refused(1.005);
    assert_refused(0.001);
    assert_refused(100.125);
}
END_TEST

/* More than two decimals must be refused at any magnitude, not silently rounded. */
START_TEST(test_from_double_refuses_three_decimals_on_large_amount)
{
    assert_refused(1000000.005);
    assert_refused(12345678.901);
}
END_TEST

START_TEST(test_from_double_refuses_negative)
{
    assert_refused(-1);
    assert_refused(-0.01);
}
END_TEST

START_TEST(test_from_double_refuses_nan_and_infinity)
{
    assert_refused(NAN);
    assert_refused(INFINITY);
    assert_refused(-INFINITY);
}
END_TEST

START_TEST(test_from_double_refuses_over_numeric_12_2_max)
{
    assert_refused(1000000000.00);
    assert_refused(1e15);
    assert_refused(1e300);
}
END_TEST

START_TEST(test_from_double_accepts_numeric_12_2_max)
{
    assert_converts(999999999.99, TK_MONEY_MAX_MINOR);
    ck_assert_int_eq(TK_MONEY_MAX_MINOR, INT64_C(99999999999));
}
END_TEST

/* ---- format_json ---- */

START_TEST(test_format_json_whole_amount_has_one_decimal)
{
    ck_assert_str_eq(json(35000), "350.0");
    ck_assert_uint_eq(tk_money_format_json(35000, buf, sizeof(buf)), 5);
}
END_TEST

START_TEST(test_format_json_drops_trailing_zero)
{
    ck_assert_str_eq(json(12050), "120.5");
    ck_assert_str_eq(json(10), "0.1");
}
END_TEST

START_TEST(test_format_json_two_decimals)
{
    ck_assert_str_eq(json(99), "0.99");
    ck_assert_str_eq(json(5), "0.05");
    ck_assert_str_eq(json(123456789), "1234567.89");
}
END_TEST

START_TEST(test_format_json_zero)
{
    ck_assert_str_eq(json(0), "0.0");
}
END_TEST

START_TEST(test_format_json_max)
{
    ck_assert_str_eq(json(TK_MONEY_MAX_MINOR), "999999999.99");
}
END_TEST

/* ---- format_sql ---- */

START_TEST(test_format_sql_always_two_decimals)
{
    ck_assert_str_eq(sql(35000), "350.00");
    ck_assert_str_eq(sql(5), "0.05");
    ck_assert_str_eq(sql(0), "0.00");
    ck_assert_str_eq(sql(12050), "120.50");
    ck_assert_str_eq(sql(TK_MONEY_MAX_MINOR), "999999999.99");
}
END_TEST

/* ---- round trip ---- */

START_TEST(test_json_text_converts_back_to_same_minor_units)
{
    const int64_t samples[] = {0, 1, 5, 10, 99, 100, 12050, 35000, 123456789, TK_MONEY_MAX_MINOR};
    for (size_t i = 0; i < sizeof(samples) / sizeof(samples[0]); ++i) {
        int64_t back = -1;
        double major = strtod(json(samples[i]), NULL);
        ck_assert_int_eq(tk_money_from_double(major, &back), 0);
        ck_assert_int_eq(back, samples[i]);
    }
}
END_TEST

static Suite *money_suite(void)
{
    Suite *s = suite_create("money");
    TCase *tc = tcase_create("from_double");
    tcase_add_test(tc, test_from_double_whole_amount);
    tcase_add_test(tc, test_from_double_one_decimal);
    tcase_add_test(tc, test_from_double_two_decimals);
    tcase_add_test(tc, test_from_double_zero);
    tcase_add_test(tc, test_from_double_accepts_binary_float_artefact);
    tcase_add_test(tc, test_from_double_refuses_three_decimals);
    tcase_add_test(tc, test_from_double_refuses_three_decimals_on_large_amount);
    tcase_add_test(tc, test_from_double_refuses_negative);
    tcase_add_test(tc, test_from_double_refuses_nan_and_infinity);
    tcase_add_test(tc, test_from_double_refuses_over_numeric_12_2_max);
    tcase_add_test(tc, test_from_double_accepts_numeric_12_2_max);
    suite_add_tcase(s, tc);

    tc = tcase_create("format");
    tcase_add_test(tc, test_format_json_whole_amount_has_one_decimal);
    tcase_add_test(tc, test_format_json_drops_trailing_zero);
    tcase_add_test(tc, test_format_json_two_decimals);
    tcase_add_test(tc, test_format_json_zero);
    tcase_add_test(tc, test_format_json_max);
    tcase_add_test(tc, test_format_sql_always_two_decimals);
    tcase_add_test(tc, test_json_text_converts_back_to_same_minor_units);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(money_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed != 0;
}
