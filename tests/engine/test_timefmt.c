/*
 * Unit tests of engine/timefmt: RFC 3339 formatting (UTC, "Z", milliseconds only when
 * not a whole second) and strict parsing with offsets.
 */
#include "engine/timefmt.h"

#include <check.h>
#include <string.h>

#define T_2026_12_31_20H INT64_C(1798747200000)
#define T_2028_02_29 INT64_C(1835440496000) /* 2028-02-29T12:34:56Z */
#define T_2000_02_29 INT64_C(951782400000)
#define T_0001_01_01 INT64_C(-62135596800000)
#define T_9999_END INT64_C(253402300799999)

static char buf[TK_RFC3339_MAX];

static const char *fmt(int64_t ms)
{
    size_t n = tk_time_format_rfc3339(ms, buf, sizeof(buf));
    ck_assert_uint_eq(n, strlen(buf));
    return buf;
}

/* parses s (whole string); returns the parser's result and the value in *ms */
static int parse(const char *s, int64_t *ms)
{
    return tk_time_parse_rfc3339(s, strlen(s), ms);
}

static void assert_parses_to(const char *s, int64_t expected)
{
    int64_t ms = 0;
    ck_assert_msg(parse(s, &ms) == 0, "'%s' was refused", s);
    ck_assert_msg(ms == expected, "'%s' parsed to %lld, expected %lld", s, (long long)ms, (long long)expected);
}

static void assert_refused(const char *s)
{
    int64_t ms = 12345;
    ck_assert_msg(parse(s, &ms) == -1, "'%s' was accepted", s);
}

/* ---- formatting ---- */

START_TEST(test_format_whole_second_ends_in_z_without_fraction)
{
    ck_assert_str_eq(fmt(T_2026_12_31_20H), "2026-12-31T20:00:00Z");
    ck_assert_uint_eq(tk_time_format_rfc3339(T_2026_12_31_20H, buf, sizeof(buf)), 20);
}
END_TEST

START_TEST(test_format_milliseconds_has_three_digits)
{
    ck_assert_str_eq(fmt(T_2026_12_31_20H + 123), "2026-12-31T20:00:00.123Z");
    ck_assert_str_eq(fmt(T_2026_12_31_20H + 1), "2026-12-31T20:00:00.001Z");
    ck_assert_str_eq(fmt(T_2026_12_31_20H + 900), "2026-12-31T20:00:00.900Z");
    ck_assert_uint_eq(tk_time_format_rfc3339(T_2026_12_31_20H + 123, buf, sizeof(buf)), 24);
}
END_TEST

START_TEST(test_format_epoch_zero)
{
    ck_assert_str_eq(fmt(0), "1970-01-01T00:00:00Z");
}
END_TEST

START_TEST(test_format_negative_milliseconds_before_epoch)
{
    ck_assert_str_eq(fmt(-1), "1969-12-31T23:59:59.999Z");
    ck_assert_str_eq(fmt(-1000), "1969-12-31T23:59:59Z");
    ck_assert_str_eq(fmt(-1001), "1969-12-31T23:59:58.999Z");
    ck_assert_str_eq(fmt(-86400000), "1969-12-31T00:00:00Z");
    ck_assert_str_eq(fmt(-86400001), "1969-12-30T23:59:59.999Z");
}
END_TEST

START_TEST(test_format_leap_day)
{
    ck_assert_str_eq(fmt(T_2028_02_29), "2028-02-29T12:34:56Z");
    ck_assert_str_eq(fmt(T_2028_02_29 + (11 * 3600 + 25 * 60 + 4) * INT64_C(1000)), "2028-03-01T00:00:00Z");
    ck_assert_str_eq(fmt(T_2000_02_29), "2000-02-29T00:00:00Z");
}
END_TEST

START_TEST(test_format_year_range_ends)
{
    ck_assert_str_eq(fmt(T_0001_01_01), "0001-01-01T00:00:00Z");
    ck_assert_str_eq(fmt(T_9999_END), "9999-12-31T23:59:59.999Z");
}
END_TEST

/* ---- parsing ---- */

START_TEST(test_parse_round_trips_formatted_instants)
{
    const int64_t samples[] = {
        0, 1, -1, -1001, 999, T_2026_12_31_20H, T_2026_12_31_20H + 123, T_2028_02_29, T_2000_02_29, T_0001_01_01, T_9999_END};
    for (size_t i = 0; i < sizeof(samples) / sizeof(samples[0]); ++i) {
        char text[TK_RFC3339_MAX];
        size_t n = tk_time_format_rfc3339(samples[i], text, sizeof(text));
        int64_t back = 0;
        ck_assert_msg(tk_time_parse_rfc3339(text, n, &back) == 0, "'%s' was refused", text);
        ck_assert_msg(back == samples[i], "'%s' parsed to %lld, not %lld", text, (long long)back, (long long)samples[i]);
    }
}
END_TEST

START_TEST(test_parse_positive_offset)
{
    assert_parses_to("2026-12-31T22:00:00+02:00", T_2026_12_31_20H);
    assert_parses_to("2027-01-01T00:00:00+04:00", T_2026_12_31_20H);
    assert_parses_to("2026-12-31T20:00:00+00:00", T_2026_12_31_20H);
}
END_TEST

START_TEST(test_parse_negative_offset_with_minutes)
{
    assert_parses_to("2026-12-31T14:30:00-05:30", T_2026_12_31_20H);
    assert_parses_to("2026-12-31T20:00:00-00:00", T_2026_12_31_20H);
}
END_TEST

START_TEST(test_parse_fraction_longer_than_millis_is_truncated)
{
    assert_parses_to("2026-12-31T20:00:00.123456Z", T_2026_12_31_20H + 123);
    assert_parses_to("2026-12-31T20:00:00.1239Z", T_2026_12_31_20H + 123);
    assert_parses_to("2026-12-31T20:00:00.999999999Z", T_2026_12_31_20H + 999);
}
END_TEST

START_TEST(test_parse_short_fraction_is_scaled)
{
    assert_parses_to("2026-12-31T20:00:00.5Z", T_2026_12_31_20H + 500);
    assert_parses_to("2026-12-31T20:00:00.05Z", T_2026_12_31_20H + 50);
    assert_parses_to("2026-12-31T20:00:00.000Z", T_2026_12_31_20H);
}
END_TEST

START_TEST(test_parse_fraction_with_offset)
{
    assert_parses_to("2026-12-31T22:00:00.250+02:00", T_2026_12_31_20H + 250);
}
END_TEST

START_TEST(test_parse_accepts_lower_case_t_and_z)
{
    assert_parses_to("2026-12-31t20:00:00z", T_2026_12_31_20H);
    assert_parses_to("2026-12-31t20:00:00.123z", T_2026_12_31_20H + 123);
}
END_TEST

START_TEST(test_parse_accepts_leap_days)
{
    assert_parses_to("2028-02-29T12:34:56Z", T_2028_02_29);
    assert_parses_to("2000-02-29T00:00:00Z", T_2000_02_29);
}
END_TEST

START_TEST(test_parse_reads_only_len_bytes)
{
    const char *s = "2026-12-31T20:00:00Zjunk";
    int64_t ms = 0;
    ck_assert_int_eq(tk_time_parse_rfc3339(s, 20, &ms), 0);
    ck_assert_int_eq(ms, T_2026_12_31_20H);
    ck_assert_int_eq(tk_time_parse_rfc3339(s, 19, &ms), -1);
}
END_TEST

START_TEST(test_parse_refuses_missing_zone)
{
    assert_refused("2026-12-31T20:00:00");
    assert_refused("2026-12-31T20:00:00.123");
}
END_TEST

START_TEST(test_parse_refuses_feb_29_in_common_year)
{
    assert_refused("2027-02-29T00:00:00Z");
    assert_refused("1900-02-29T00:00:00Z");
}
END_TEST

START_TEST(test_parse_refuses_day_out_of_month)
{
    assert_refused("2026-02-30T00:00:00Z");
    assert_refused("2026-04-31T00:00:00Z");
    assert_refused("2026-01-32T00:00:00Z");
    assert_refused("2026-01-00T00:00:00Z");
}
END_TEST

START_TEST(test_parse_refuses_month_13)
{
    assert_refused("2026-13-01T00:00:00Z");
    assert_refused("2026-00-01T00:00:00Z");
}
END_TEST

START_TEST(test_parse_refuses_hour_24)
{
    assert_refused("2026-12-31T24:00:00Z");
}
END_TEST

START_TEST(test_parse_refuses_minute_60_and_second_60)
{
    assert_refused("2026-12-31T20:60:00Z");
    assert_refused("2026-12-31T23:59:60Z");
}
END_TEST

START_TEST(test_parse_refuses_trailing_garbage)
{
    assert_refused("2026-12-31T20:00:00Zjunk");
    assert_refused("2026-12-31T20:00:00Z ");
    assert_refused("2026-12-31T20:00:00+02:00:00");
}
END_TEST

START_TEST(test_parse_refuses_empty_string)
{
    assert_refused("");
    int64_t ms;
    ck_assert_int_eq(tk_time_parse_rfc3339("2026-12-31T20:00:00Z", 0, &ms), -1);
}
END_TEST

START_TEST(test_parse_refuses_unpadded_fields)
{
    assert_refused("2026-1-1T00:00:00Z");
    assert_refused("2026-01-01T0:00:00Z");
    assert_refused("26-01-01T00:00:00Z");
}
END_TEST

START_TEST(test_parse_refuses_bad_separators_and_offsets)
{
    assert_refused("2026-12-31 20:00:00Z");
    assert_refused("2026/12/31T20:00:00Z");
    assert_refused("2026-12-31T20:00:00.Z");
    assert_refused("2026-12-31T20:00:00+2:00");
    assert_refused("2026-12-31T20:00:00+0200");
    assert_refused("2026-12-31T20:00:00+24:00");
    assert_refused("2026-12-31T20:00:00+02:60");
    assert_refused("2026-12-31T20:00:00UTC");
}
END_TEST

/* ---- clocks ---- */

START_TEST(test_now_is_after_2024_and_monotonic_does_not_go_back)
{
    ck_assert_int_gt(tk_time_now_ms(), INT64_C(1704067200000));
    int64_t a = tk_time_mono_ms(), b = tk_time_mono_ms();
    ck_assert_int_le(a, b);
}
END_TEST

static Suite *timefmt_suite(void)
{
    Suite *s = suite_create("timefmt");
    TCase *tc = tcase_create("format");
    tcase_add_test(tc, test_format_whole_second_ends_in_z_without_fraction);
    tcase_add_test(tc, test_format_milliseconds_has_three_digits);
    tcase_add_test(tc, test_format_epoch_zero);
    tcase_add_test(tc, test_format_negative_milliseconds_before_epoch);
    tcase_add_test(tc, test_format_leap_day);
    tcase_add_test(tc, test_format_year_range_ends);
    suite_add_tcase(s, tc);

    tc = tcase_create("parse");
    tcase_add_test(tc, test_parse_round_trips_formatted_instants);
    tcase_add_test(tc, test_parse_positive_offset);
    tcase_add_test(tc, test_parse_negative_offset_with_minutes);
    tcase_add_test(tc, test_parse_fraction_longer_than_millis_is_truncated);
    tcase_add_test(tc, test_parse_short_fraction_is_scaled);
    tcase_add_test(tc, test_parse_fraction_with_offset);
    tcase_add_test(tc, test_parse_accepts_lower_case_t_and_z);
    tcase_add_test(tc, test_parse_accepts_leap_days);
    tcase_add_test(tc, test_parse_reads_only_len_bytes);
    suite_add_tcase(s, tc);

    tc = tcase_create("parse_refuses");
    tcase_add_test(tc, test_parse_refuses_missing_zone);
    tcase_add_test(tc, test_parse_refuses_feb_29_in_common_year);
    tcase_add_test(tc, test_parse_refuses_day_out_of_month);
    tcase_add_test(tc, test_parse_refuses_month_13);
    tcase_add_test(tc, test_parse_refuses_hour_24);
    tcase_add_test(tc, test_parse_refuses_minute_60_and_second_60);
    tcase_add_test(tc, test_parse_refuses_trailing_garbage);
    tcase_add_test(tc, test_parse_refuses_empty_string);
    tcase_add_test(tc, test_parse_refuses_unpadded_fields);
    tcase_add_test(tc, test_parse_refuses_bad_separators_and_offsets);
    suite_add_tcase(s, tc);

    tc = tcase_create("clock");
    tcase_add_test(tc, test_now_is_after_2024_and_monotonic_does_not_go_back);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(timefmt_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed != 0;
}
