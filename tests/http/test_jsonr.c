/*
 * Unit tests of http/jsonr: parsing request bodies into pool memory through jansson's
 * allocator hooks, the shape and safety checks, and reading UUID members. Every test
 * parses into a fresh h2o pool that is cleared afterwards, so ASan/LSan see the whole
 * life cycle.
 */
#include "http/jsonr.h"
#include "engine/uuid.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

static h2o_mem_pool_t pool;
static char err[256];

static void pool_setup(void)
{
    h2o_mem_init_pool(&pool);
    err[0] = '\0';
}

static void pool_teardown(void)
{
    h2o_mem_clear_pool(&pool);
}

static json_t *parse_len(const char *buf, size_t len)
{
    err[0] = '\0';
    return tk_jsonr_parse_object(&pool, buf, len, err, sizeof(err));
}

static json_t *parse(const char *s)
{
    return parse_len(s, strlen(s));
}

static void assert_not_json(const char *s, size_t len)
{
    ck_assert_msg(parse_len(s, len) == NULL, "accepted '%.*s'", (int)len, s);
    ck_assert_msg(strncmp(err, "Request body is not valid JSON: ", 32) == 0, "error was '%s'", err);
    ck_assert_uint_gt(strlen(err), 32); /* jansson's reason follows */
}

static void assert_not_object(const char *s)
{
    ck_assert_msg(parse(s) == NULL, "accepted '%s'", s);
    ck_assert_str_eq(err, "Request body must be a JSON object");
}

/* a string of depth copies of open, then depth copies of close */
static char *nested(size_t depth, const char *open, const char *close)
{
    size_t ol = strlen(open), cl = strlen(close);
    char *s = malloc(depth * (ol + cl) + 1), *p = s;
    for (size_t i = 0; i < depth; ++i, p += ol)
        memcpy(p, open, ol);
    for (size_t i = 0; i < depth; ++i, p += cl)
        memcpy(p, close, cl);
    *p = '\0';
    return s;
}

/* ---- valid objects ---- */

START_TEST(test_parse_object_returns_members)
{
    json_t *o = parse("{\"a\":1,\"b\":\"x\",\"c\":[1,2,3],\"d\":{\"e\":null},\"f\":true,\"g\":1.5}");
    ck_assert_msg(o != NULL, "refused: %s", err);
    ck_assert(json_is_object(o));
    ck_assert_uint_eq(json_object_size(o), 6);
    ck_assert_int_eq(json_integer_value(json_object_get(o, "a")), 1);
    ck_assert_str_eq(json_string_value(json_object_get(o, "b")), "x");
    ck_assert_uint_eq(json_array_size(json_object_get(o, "c")), 3);
    ck_assert(json_is_null(json_object_get(json_object_get(o, "d"), "e")));
    ck_assert(json_is_true(json_object_get(o, "f")));
    ck_assert(json_real_value(json_object_get(o, "g")) == 1.5);
    json_decref(o); /* pool memory: frees are no-ops */
}
END_TEST

START_TEST(test_parse_empty_object_and_whitespace)
{
    json_t *o = parse("{}");
    ck_assert_ptr_nonnull(o);
    ck_assert_uint_eq(json_object_size(o), 0);
    o = parse(" \n\t{ \"a\" : \"b\" } \r\n");
    ck_assert_ptr_nonnull(o);
    ck_assert_str_eq(json_string_value(json_object_get(o, "a")), "b");
}
END_TEST

START_TEST(test_parse_accepts_valid_utf8_and_escapes)
{
    json_t *o = parse("{\"name\":\"caf\xc3\xa9 \\u20ac \\ud83c\\udf9f \\\"q\\\"\"}");
    ck_assert_msg(o != NULL, "refused: %s", err);
    ck_assert_str_eq(json_string_value(json_object_get(o, "name")), "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x8e\x9f \"q\"");
}
END_TEST

START_TEST(test_parse_reads_only_len_bytes)
{
    const char *s = "{\"a\":1}garbage";
    json_t *o = parse_len(s, 7);
    ck_assert_msg(o != NULL, "refused: %s", err);
    ck_assert_int_eq(json_integer_value(json_object_get(o, "a")), 1);
}
END_TEST

START_TEST(test_parse_many_members_in_pool)
{
    char *s = malloc(64 * 1024), *p = s;
    p += sprintf(p, "{");
    for (int i = 0; i < 2000; ++i)
        p += sprintf(p, "%s\"key%d\":[%d,\"v%d\"]", i == 0 ? "" : ",", i, i, i);
    sprintf(p, "}");
    json_t *o = parse(s);
    free(s);
    ck_assert_msg(o != NULL, "refused: %s", err);
    ck_assert_uint_eq(json_object_size(o), 2000);
    ck_assert_int_eq(json_integer_value(json_array_get(json_object_get(o, "key1999"), 0)), 1999);
    ck_assert_str_eq(json_string_value(json_array_get(json_object_get(o, "key7"), 1)), "v7");
    json_decref(o);
}
END_TEST

START_TEST(test_pool_object_mixed_with_heap_values_is_released_cleanly)
{
    json_t *o = parse("{\"a\":1}");
    ck_assert_ptr_nonnull(o);
    /* outside a parse, allocations come from the heap and must be freed for real */
    for (int i = 0; i < 100; ++i) {
        char key[16];
        snprintf(key, sizeof(key), "k%d", i);
        ck_assert_int_eq(json_object_set_new(o, key, json_string("heap value")), 0);
    }
    ck_assert_uint_eq(json_object_size(o), 101);
    json_decref(o); /* LeakSanitizer checks that the heap values went */
    json_t *heap = json_pack("{s:i, s:[s]}", "x", 1, "y", "z");
    ck_assert_ptr_nonnull(heap);
    json_decref(heap);
}
END_TEST

/* ---- refused shapes ---- */

START_TEST(test_parse_refuses_top_level_array)
{
    assert_not_object("[1,2,3]");
    assert_not_object("[]");
}
END_TEST

START_TEST(test_parse_refuses_top_level_string)
{
    assert_not_object("\"just a string\"");
}
END_TEST

START_TEST(test_parse_refuses_top_level_number_and_literals)
{
    assert_not_object("42");
    assert_not_object("-1.5e3");
    assert_not_object("true");
    assert_not_object("null");
}
END_TEST

START_TEST(test_parse_refuses_malformed)
{
    const char *bad[] = {"{",
                         "}",
                         "{\"a\":}",
                         "{\"a\":1,}",
                         "{\"a\" 1}",
                         "{a:1}",
                         "{'a':1}",
                         "{\"a\":1}}",
                         "{\"a\":01}",
                         "{\"a\":\"unterminated}",
                         "{\"a\":1} {\"b\":2}",
                         "{\"a\":NaN}",
                         "{\"a\":\"\\x41\"}",
                         "   "};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); ++i)
        assert_not_json(bad[i], strlen(bad[i]));
}
END_TEST

START_TEST(test_parse_refuses_empty_input)
{
    assert_not_json("", 0);
}
END_TEST

START_TEST(test_parse_refuses_duplicate_keys)
{
    assert_not_json("{\"a\":1,\"a\":2}", 13);
    const char *nested_dup = "{\"o\":{\"k\":1,\"k\":1}}";
    assert_not_json(nested_dup, strlen(nested_dup));
    ck_assert_ptr_nonnull(parse("{\"a\":1,\"A\":2}"));
}
END_TEST

START_TEST(test_parse_refuses_nul_escape_in_string)
{
    const char *s = "{\"a\":\"x\\u0000y\"}";
    assert_not_json(s, strlen(s));
    const char *k = "{\"a\\u0000b\":1}";
    assert_not_json(k, strlen(k));
}
END_TEST

START_TEST(test_parse_refuses_raw_nul_byte)
{
    const char s[] = "{\"a\":\"x\0y\"}";
    assert_not_json(s, sizeof(s) - 1);
}
END_TEST

START_TEST(test_parse_refuses_invalid_utf8)
{
    const char *bad[] = {
        "{\"a\":\"\xff\"}",             /* never valid */
        "{\"a\":\"\xc3\"}",             /* truncated sequence */
        "{\"a\":\"\xc0\xaf\"}",         /* overlong '/' */
        "{\"a\":\"\xed\xa0\x80\"}",     /* UTF-16 surrogate */
        "{\"\xfe\":1}",                 /* in a key */
        "{\"a\":\"\xf4\x90\x80\x80\"}", /* beyond U+10FFFF */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); ++i)
        assert_not_json(bad[i], strlen(bad[i]));
}
END_TEST

START_TEST(test_parse_refuses_lone_surrogate_escape)
{
    const char *s = "{\"a\":\"\\ud83c\"}";
    assert_not_json(s, strlen(s));
}
END_TEST

START_TEST(test_parse_refuses_5000_deep_arrays_without_crashing)
{
    char *inner = nested(5000, "[", "]");
    size_t len = strlen(inner) + 6;
    char *s = malloc(len + 1);
    snprintf(s, len + 1, "{\"a\":%s}", inner);
    json_t *o = parse(s);
    ck_assert_ptr_null(o);
    ck_assert_msg(strncmp(err, "Request body is not valid JSON: ", 32) == 0, "error was '%s'", err);
    free(inner);
    free(s);
}
END_TEST

START_TEST(test_parse_refuses_5000_deep_objects_without_crashing)
{
    char *s = nested(5000, "{\"a\":", "}");
    /* innermost "{"a":}" is itself malformed; make it valid with a value */
    char *t = malloc(strlen(s) + 2);
    size_t half = 5000 * 5;
    memcpy(t, s, half);
    t[half] = '1';
    strcpy(t + half + 1, s + half);
    ck_assert_ptr_null(parse(t));
    ck_assert_msg(strncmp(err, "Request body is not valid JSON: ", 32) == 0, "error was '%s'", err);
    free(s);
    free(t);
}
END_TEST

START_TEST(test_parse_accepts_moderate_nesting)
{
    char *inner = nested(100, "[", "]");
    char s[256];
    snprintf(s, sizeof(s), "{\"a\":%s}", inner);
    free(inner);
    json_t *o = parse(s);
    ck_assert_msg(o != NULL, "refused: %s", err);
}
END_TEST

START_TEST(test_parse_error_is_truncated_to_errsize)
{
    char small[8];
    memset(small, 'X', sizeof(small));
    ck_assert_ptr_null(tk_jsonr_parse_object(&pool, "[1]", 3, small, sizeof(small)));
    ck_assert_uint_eq(strlen(small), sizeof(small) - 1);
}
END_TEST

/* ---- tk_jsonr_uuid ---- */

static const char uuid_doc[] = "{\"upper\":\"0A1B2C3D-4E5F-4A6B-8C7D-9E0FABCDEF12\","
                               "\"lower\":\"0a1b2c3d-4e5f-4a6b-8c7d-9e0fabcdef12\","
                               "\"num\":5,\"nul\":null,\"obj\":{},\"bad\":\"not-a-uuid\",\"empty\":\"\","
                               "\"long\":\"0a1b2c3d-4e5f-4a6b-8c7d-9e0fabcdef123\"}";

START_TEST(test_uuid_member_is_normalized_to_lower_case)
{
    json_t *o = parse(uuid_doc);
    ck_assert_msg(o != NULL, "refused: %s", err);
    char out[TK_UUID_LEN + 1];
    ck_assert_int_eq(tk_jsonr_uuid(o, "upper", out), 0);
    ck_assert_str_eq(out, "0a1b2c3d-4e5f-4a6b-8c7d-9e0fabcdef12");
    memset(out, 0, sizeof(out));
    ck_assert_int_eq(tk_jsonr_uuid(o, "lower", out), 0);
    ck_assert_str_eq(out, "0a1b2c3d-4e5f-4a6b-8c7d-9e0fabcdef12");
}
END_TEST

START_TEST(test_uuid_member_missing_is_minus_one)
{
    json_t *o = parse(uuid_doc);
    char out[TK_UUID_LEN + 1];
    ck_assert_int_eq(tk_jsonr_uuid(o, "absent", out), -1);
}
END_TEST

START_TEST(test_uuid_member_not_a_string_is_minus_one)
{
    json_t *o = parse(uuid_doc);
    char out[TK_UUID_LEN + 1];
    ck_assert_int_eq(tk_jsonr_uuid(o, "num", out), -1);
    ck_assert_int_eq(tk_jsonr_uuid(o, "nul", out), -1);
    ck_assert_int_eq(tk_jsonr_uuid(o, "obj", out), -1);
}
END_TEST

START_TEST(test_uuid_member_bad_string_is_minus_two)
{
    json_t *o = parse(uuid_doc);
    char out[TK_UUID_LEN + 2];
    ck_assert_int_eq(tk_jsonr_uuid(o, "bad", out), -2);
    ck_assert_int_eq(tk_jsonr_uuid(o, "empty", out), -2);
    ck_assert_int_eq(tk_jsonr_uuid(o, "long", out), -2);
}
END_TEST

static Suite *jsonr_suite(void)
{
    Suite *s = suite_create("jsonr");
    TCase *tc = tcase_create("valid");
    tcase_add_checked_fixture(tc, pool_setup, pool_teardown);
    tcase_add_test(tc, test_parse_object_returns_members);
    tcase_add_test(tc, test_parse_empty_object_and_whitespace);
    tcase_add_test(tc, test_parse_accepts_valid_utf8_and_escapes);
    tcase_add_test(tc, test_parse_reads_only_len_bytes);
    tcase_add_test(tc, test_parse_many_members_in_pool);
    tcase_add_test(tc, test_pool_object_mixed_with_heap_values_is_released_cleanly);
    tcase_add_test(tc, test_parse_accepts_moderate_nesting);
    suite_add_tcase(s, tc);

    tc = tcase_create("refused");
    tcase_add_checked_fixture(tc, pool_setup, pool_teardown);
    tcase_add_test(tc, test_parse_refuses_top_level_array);
    tcase_add_test(tc, test_parse_refuses_top_level_string);
    tcase_add_test(tc, test_parse_refuses_top_level_number_and_literals);
    tcase_add_test(tc, test_parse_refuses_malformed);
    tcase_add_test(tc, test_parse_refuses_empty_input);
    tcase_add_test(tc, test_parse_refuses_duplicate_keys);
    tcase_add_test(tc, test_parse_refuses_nul_escape_in_string);
    tcase_add_test(tc, test_parse_refuses_raw_nul_byte);
    tcase_add_test(tc, test_parse_refuses_invalid_utf8);
    tcase_add_test(tc, test_parse_refuses_lone_surrogate_escape);
    tcase_add_test(tc, test_parse_refuses_5000_deep_arrays_without_crashing);
    tcase_add_test(tc, test_parse_refuses_5000_deep_objects_without_crashing);
    tcase_add_test(tc, test_parse_error_is_truncated_to_errsize);
    suite_add_tcase(s, tc);

    tc = tcase_create("uuid");
    tcase_add_checked_fixture(tc, pool_setup, pool_teardown);
    tcase_add_test(tc, test_uuid_member_is_normalized_to_lower_case);
    tcase_add_test(tc, test_uuid_member_missing_is_minus_one);
    tcase_add_test(tc, test_uuid_member_not_a_string_is_minus_one);
    tcase_add_test(tc, test_uuid_member_bad_string_is_minus_two);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    tk_jsonr_init(); /* before any parse; forked test processes inherit it */
    SRunner *sr = srunner_create(jsonr_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed != 0;
}
