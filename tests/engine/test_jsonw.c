/*
 * Unit tests of engine/jsonw: the append-only JSON writer in heap and pool mode, buffer
 * growth, string escaping and the number, money and time helpers. Output is parsed back
 * with jansson where it forms a JSON document.
 */
#include "engine/jsonw.h"

#include <check.h>
#include <jansson.h>
#include <stdint.h>
#include <string.h>

static int result_is(tk_jsonw_t *w, const char *expected)
{
    h2o_iovec_t r = tk_jsonw_result(w);
    return r.len == strlen(expected) && memcmp(r.base, expected, r.len) == 0;
}

#define ck_assert_result(w, expected)                                                                                              \
    ck_assert_msg(result_is((w), (expected)), "got '%.*s', expected '%s'", (int)(w)->len, (w)->buf, (expected))

/* writes s as a JSON string into a fresh heap writer and compares with expected */
static void assert_str_escapes_to(const char *s, size_t len, const char *expected)
{
    tk_jsonw_t w;
    tk_jsonw_init(&w, NULL, 0);
    tk_jsonw_str(&w, s, len);
    ck_assert_result(&w, expected);
    tk_jsonw_dispose(&w);
}

/* parses the writer's output as a JSON array holding one string and checks it decodes to s */
static void assert_string_parses_back(const char *s, size_t len)
{
    tk_jsonw_t w;
    tk_jsonw_init(&w, NULL, 0);
    tk_jsonw_lit(&w, "[");
    tk_jsonw_str(&w, s, len);
    tk_jsonw_lit(&w, "]");
    json_error_t jerr;
    json_t *root = json_loadb(w.buf, w.len, JSON_ALLOW_NUL, &jerr);
    ck_assert_msg(root != NULL, "jansson: %s in '%.*s'", jerr.text, (int)w.len, w.buf);
    json_t *v = json_array_get(root, 0);
    ck_assert(json_is_string(v));
    ck_assert_uint_eq(json_string_length(v), len);
    ck_assert_int_eq(memcmp(json_string_value(v), s, len), 0);
    json_decref(root);
    tk_jsonw_dispose(&w);
}

/* ---- modes and growth ---- */

START_TEST(test_init_heap_mode_has_minimum_capacity)
{
    tk_jsonw_t w;
    tk_jsonw_init(&w, NULL, 1);
    ck_assert_ptr_null(w.pool);
    ck_assert_ptr_nonnull(w.buf);
    ck_assert_uint_eq(w.len, 0);
    ck_assert_uint_ge(w.cap, 64);
    ck_assert_uint_eq(tk_jsonw_result(&w).len, 0);
    tk_jsonw_dispose(&w);
    ck_assert_ptr_null(w.buf);
    ck_assert_uint_eq(w.len, 0);
    ck_assert_uint_eq(w.cap, 0);
}
END_TEST

START_TEST(test_heap_mode_writes_object)
{
    tk_jsonw_t w;
    tk_jsonw_init(&w, NULL, 256);
    ck_assert_uint_eq(w.cap, 256);
    tk_jsonw_lit(&w, "{");
    tk_jsonw_key(&w, "name");
    tk_jsonw_str(&w, "Gala", 4);
    tk_jsonw_lit(&w, ",");
    tk_jsonw_key(&w, "count");
    tk_jsonw_int(&w, 42);
    tk_jsonw_lit(&w, "}");
    ck_assert_result(&w, "{\"name\":\"Gala\",\"count\":42}");
    tk_jsonw_dispose(&w);
}
END_TEST

START_TEST(test_pool_mode_writes_into_pool)
{
    h2o_mem_pool_t pool;
    h2o_mem_init_pool(&pool);
    tk_jsonw_t w;
    tk_jsonw_init(&w, &pool, 16);
    ck_assert_ptr_eq(w.pool, &pool);
    ck_assert_uint_ge(w.cap, 64);
    tk_jsonw_lit(&w, "{");
    tk_jsonw_key(&w, "id");
    tk_jsonw_str(&w, "x", 1);
    tk_jsonw_lit(&w, "}");
    ck_assert_result(&w, "{\"id\":\"x\"}");
    tk_jsonw_dispose(&w); /* no free in pool mode; the pool owns the memory */
    ck_assert_ptr_null(w.buf);
    h2o_mem_clear_pool(&pool);
}
END_TEST

static void fill_and_check_growth(h2o_mem_pool_t *pool)
{
    tk_jsonw_t w;
    tk_jsonw_init(&w, pool, 64);
    size_t initial_cap = w.cap;
    char chunk[37];
    for (int i = 0; i < 1000; ++i) {
        memset(chunk, 'a' + i % 26, sizeof(chunk));
        tk_jsonw_raw(&w, chunk, sizeof(chunk));
        ck_assert_uint_le(w.len, w.cap);
    }
    ck_assert_uint_eq(w.len, 37000);
    ck_assert_uint_gt(w.cap, initial_cap);
    for (int i = 0; i < 1000; ++i) {
        for (size_t j = 0; j < sizeof(chunk); ++j)
            ck_assert_int_eq(w.buf[i * 37 + j], 'a' + i % 26);
    }
    /* one append much larger than the doubled capacity */
    char big[100000];
    memset(big, 'z', sizeof(big));
    tk_jsonw_raw(&w, big, sizeof(big));
    ck_assert_uint_eq(w.len, 137000);
    ck_assert_int_eq(w.buf[36999], 'a' + 999 % 26);
    ck_assert_int_eq(w.buf[37000], 'z');
    ck_assert_int_eq(w.buf[136999], 'z');
    tk_jsonw_dispose(&w);
}

START_TEST(test_heap_mode_grows_past_initial_capacity)
{
    fill_and_check_growth(NULL);
}
END_TEST

START_TEST(test_pool_mode_grows_past_initial_capacity)
{
    h2o_mem_pool_t pool;
    h2o_mem_init_pool(&pool);
    fill_and_check_growth(&pool);
    h2o_mem_clear_pool(&pool);
}
END_TEST

START_TEST(test_reserve_returns_end_without_changing_length)
{
    tk_jsonw_t w;
    tk_jsonw_init(&w, NULL, 64);
    tk_jsonw_lit(&w, "abc");
    char *p = tk_jsonw_reserve(&w, 1000);
    ck_assert_ptr_eq(p, w.buf + 3);
    ck_assert_uint_eq(w.len, 3);
    ck_assert_uint_ge(w.cap, 1003);
    memset(p, 'x', 1000); /* the reserved bytes are writable (ASan checks) */
    ck_assert_int_eq(memcmp(w.buf, "abc", 3), 0);
    tk_jsonw_dispose(&w);
}
END_TEST

START_TEST(test_long_escaped_string_grows_buffer)
{
    char s[5000];
    memset(s, 0x01, sizeof(s));
    tk_jsonw_t w;
    tk_jsonw_init(&w, NULL, 64);
    tk_jsonw_str(&w, s, sizeof(s));
    ck_assert_uint_eq(w.len, 2 + 6 * sizeof(s));
    ck_assert_int_eq(memcmp(w.buf + w.len - 7, "\\u0001\"", 7), 0);
    tk_jsonw_dispose(&w);
    assert_string_parses_back(s, sizeof(s));
}
END_TEST

/* ---- string escaping ---- */

START_TEST(test_str_plain_and_empty)
{
    assert_str_escapes_to("hello world", 11, "\"hello world\"");
    assert_str_escapes_to("", 0, "\"\"");
}
END_TEST

START_TEST(test_str_escapes_quote_and_backslash)
{
    assert_str_escapes_to("a\"b", 3, "\"a\\\"b\"");
    assert_str_escapes_to("a\\b", 3, "\"a\\\\b\"");
    assert_str_escapes_to("\\\"", 2, "\"\\\\\\\"\"");
}
END_TEST

START_TEST(test_str_escapes_newline_tab_and_return)
{
    assert_str_escapes_to("a\nb", 3, "\"a\\nb\"");
    assert_str_escapes_to("a\tb", 3, "\"a\\tb\"");
    assert_str_escapes_to("a\rb", 3, "\"a\\rb\"");
}
END_TEST

START_TEST(test_str_escapes_other_control_chars_as_unicode)
{
    assert_str_escapes_to("\x01", 1, "\"\\u0001\"");
    assert_str_escapes_to("\x1f", 1, "\"\\u001f\"");
    assert_str_escapes_to("\b\f", 2, "\"\\u0008\\u000c\"");
    assert_str_escapes_to("a\0b", 3, "\"a\\u0000b\"");
}
END_TEST

START_TEST(test_str_passes_utf8_and_del_unchanged)
{
    const char *s = "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x8e\x9f \x7f";
    char expected[64];
    snprintf(expected, sizeof(expected), "\"%s\"", s);
    assert_str_escapes_to(s, strlen(s), expected);
    ck_assert_str_eq(expected, "\"café € 🎟 \x7f\"");
}
END_TEST

START_TEST(test_str_every_byte_parses_back_with_jansson)
{
    char s[128 + 32];
    size_t n = 0;
    for (int c = 0; c < 128; ++c)
        s[n++] = (char)c;
    const char *utf8 = "\xc3\xa9\xe2\x82\xac\xf0\x9f\x8e\x9f";
    memcpy(s + n, utf8, strlen(utf8));
    n += strlen(utf8);
    assert_string_parses_back(s, n);
}
END_TEST

/* ---- numbers, money, time ---- */

START_TEST(test_int_extremes)
{
    tk_jsonw_t w;
    tk_jsonw_init(&w, NULL, 0);
    tk_jsonw_lit(&w, "[");
    tk_jsonw_int(&w, INT64_MIN);
    tk_jsonw_lit(&w, ",");
    tk_jsonw_int(&w, INT64_MAX);
    tk_jsonw_lit(&w, ",");
    tk_jsonw_int(&w, 0);
    tk_jsonw_lit(&w, ",");
    tk_jsonw_int(&w, -1);
    tk_jsonw_lit(&w, "]");
    ck_assert_result(&w, "[-9223372036854775808,9223372036854775807,0,-1]");
    json_error_t jerr;
    json_t *root = json_loadb(w.buf, w.len, 0, &jerr);
    ck_assert_msg(root != NULL, "jansson: %s", jerr.text);
    ck_assert(json_integer_value(json_array_get(root, 0)) == INT64_MIN);
    ck_assert(json_integer_value(json_array_get(root, 1)) == INT64_MAX);
    json_decref(root);
    tk_jsonw_dispose(&w);
}
END_TEST

START_TEST(test_money_writes_major_units)
{
    tk_jsonw_t w;
    tk_jsonw_init(&w, NULL, 0);
    tk_jsonw_lit(&w, "[");
    tk_jsonw_money(&w, 35000);
    tk_jsonw_lit(&w, ",");
    tk_jsonw_money(&w, 12050);
    tk_jsonw_lit(&w, ",");
    tk_jsonw_money(&w, 99);
    tk_jsonw_lit(&w, ",");
    tk_jsonw_money(&w, 0);
    tk_jsonw_lit(&w, "]");
    ck_assert_result(&w, "[350.0,120.5,0.99,0.0]");
    json_error_t jerr;
    json_t *root = json_loadb(w.buf, w.len, 0, &jerr);
    ck_assert_msg(root != NULL, "jansson: %s", jerr.text);
    ck_assert(json_real_value(json_array_get(root, 1)) == 120.5);
    json_decref(root);
    tk_jsonw_dispose(&w);
}
END_TEST

START_TEST(test_time_writes_quoted_rfc3339)
{
    tk_jsonw_t w;
    tk_jsonw_init(&w, NULL, 0);
    tk_jsonw_time(&w, INT64_C(1798747200000));
    ck_assert_result(&w, "\"2026-12-31T20:00:00Z\"");
    tk_jsonw_dispose(&w);
    tk_jsonw_init(&w, NULL, 0);
    tk_jsonw_time(&w, INT64_C(1798747200123));
    tk_jsonw_lit(&w, ",");
    tk_jsonw_time(&w, 0);
    ck_assert_result(&w, "\"2026-12-31T20:00:00.123Z\",\"1970-01-01T00:00:00Z\"");
    tk_jsonw_dispose(&w);
}
END_TEST

START_TEST(test_object_with_every_helper_parses_back_in_pool_mode)
{
    h2o_mem_pool_t pool;
    h2o_mem_init_pool(&pool);
    const char name[] = "He said \"hi\"\n\tand left \\ \x01 caf\xc3\xa9";
    tk_jsonw_t w;
    tk_jsonw_init(&w, &pool, 0);
    tk_jsonw_lit(&w, "{");
    tk_jsonw_key(&w, "name");
    tk_jsonw_str(&w, name, sizeof(name) - 1);
    tk_jsonw_lit(&w, ",");
    tk_jsonw_key(&w, "min");
    tk_jsonw_int(&w, INT64_MIN);
    tk_jsonw_lit(&w, ",");
    tk_jsonw_key(&w, "price");
    tk_jsonw_money(&w, 123456789);
    tk_jsonw_lit(&w, ",");
    tk_jsonw_key(&w, "date");
    tk_jsonw_time(&w, INT64_C(1798747200123));
    tk_jsonw_lit(&w, "}");
    json_error_t jerr;
    json_t *root = json_loadb(w.buf, w.len, JSON_REJECT_DUPLICATES, &jerr);
    ck_assert_msg(root != NULL, "jansson: %s in '%.*s'", jerr.text, (int)w.len, w.buf);
    ck_assert_str_eq(json_string_value(json_object_get(root, "name")), name);
    ck_assert(json_integer_value(json_object_get(root, "min")) == INT64_MIN);
    ck_assert(json_real_value(json_object_get(root, "price")) == 1234567.89);
    ck_assert_str_eq(json_string_value(json_object_get(root, "date")), "2026-12-31T20:00:00.123Z");
    json_decref(root);
    h2o_mem_clear_pool(&pool);
}
END_TEST

static Suite *jsonw_suite(void)
{
    Suite *s = suite_create("jsonw");
    TCase *tc = tcase_create("buffer");
    tcase_add_test(tc, test_init_heap_mode_has_minimum_capacity);
    tcase_add_test(tc, test_heap_mode_writes_object);
    tcase_add_test(tc, test_pool_mode_writes_into_pool);
    tcase_add_test(tc, test_heap_mode_grows_past_initial_capacity);
    tcase_add_test(tc, test_pool_mode_grows_past_initial_capacity);
    tcase_add_test(tc, test_reserve_returns_end_without_changing_length);
    tcase_add_test(tc, test_long_escaped_string_grows_buffer);
    suite_add_tcase(s, tc);

    tc = tcase_create("escape");
    tcase_add_test(tc, test_str_plain_and_empty);
    tcase_add_test(tc, test_str_escapes_quote_and_backslash);
    tcase_add_test(tc, test_str_escapes_newline_tab_and_return);
    tcase_add_test(tc, test_str_escapes_other_control_chars_as_unicode);
    tcase_add_test(tc, test_str_passes_utf8_and_del_unchanged);
    tcase_add_test(tc, test_str_every_byte_parses_back_with_jansson);
    suite_add_tcase(s, tc);

    tc = tcase_create("values");
    tcase_add_test(tc, test_int_extremes);
    tcase_add_test(tc, test_money_writes_major_units);
    tcase_add_test(tc, test_time_writes_quoted_rfc3339);
    tcase_add_test(tc, test_object_with_every_helper_parses_back_in_pool_mode);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(jsonw_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed != 0;
}
