/*
 * Unit tests of engine/log.c and of the access-log record (http/access_log.c): JSON
 * records stay valid JSON whatever the input (quotes, control characters, bytes that are
 * not UTF-8, truncation), text records stay on one line, connection URLs lose their
 * passwords, and the request record carries no query string (reservation ids are bearer
 * secrets) and has no room for headers (Authorization, cookies) or bodies (card numbers).
 */
#include "engine/log.h"
#include "http/access_log.h"

#include <check.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static json_t *parse_line(const char *line, size_t len)
{
    ck_assert_msg(len > 0 && line[len - 1] == '\n', "a record ends with one newline");
    ck_assert_ptr_null(memchr(line, '\n', len - 1));
    json_error_t error;
    json_t *v = json_loadb(line, len - 1, 0, &error);
    ck_assert_msg(v != NULL, "not JSON (%s): %.*s", error.text, (int)len, line);
    return v;
}

static const char *escaped(const char *in, char *buf, size_t cap)
{
    size_t len = tk_log_json_escape(buf, 0, cap, in);
    buf[len] = '\0';
    return buf;
}

START_TEST(json_escape_quotes_backslashes_and_controls)
{
    char buf[256];
    ck_assert_str_eq(escaped("plain", buf, sizeof(buf)), "plain");
    ck_assert_str_eq(escaped("a\"b\\c", buf, sizeof(buf)), "a\\\"b\\\\c");
    ck_assert_str_eq(escaped("line\nbreak\r\t\x01\x7f", buf, sizeof(buf)), "line\\u000abreak\\u000d\\u0009\\u0001\\u007f");
}
END_TEST

START_TEST(json_escape_keeps_utf8_and_replaces_what_is_not)
{
    char buf[256];
    ck_assert_str_eq(escaped("S\xc3\xa4\xc3\xa4l \xf0\x9f\x8e\xab", buf, sizeof(buf)), "S\xc3\xa4\xc3\xa4l \xf0\x9f\x8e\xab");
    ck_assert_str_eq(escaped("\xff\xfe", buf, sizeof(buf)), "\\ufffd\\ufffd");
    ck_assert_str_eq(escaped("\xc0\xaf", buf, sizeof(buf)), "\\ufffd\\ufffd");            /* overlong '/' */
    ck_assert_str_eq(escaped("\xed\xa0\x80", buf, sizeof(buf)), "\\ufffd\\ufffd\\ufffd"); /* a surrogate */
    ck_assert_str_eq(escaped("\xe2\x82", buf, sizeof(buf)), "\\ufffd\\ufffd");            /* cut short */
    /* whatever the bytes, the result inside quotes is a JSON string */
    char line[300];
    snprintf(line, sizeof(line), "\"%s\"", escaped("\x80\"\xf4\x90\x80\x80\\\x01", buf, sizeof(buf)));
    json_t *v = json_loads(line, JSON_DECODE_ANY, NULL);
    ck_assert_ptr_nonnull(v);
    json_decref(v);
}
END_TEST

START_TEST(json_escape_stops_short_of_cap_between_characters)
{
    char buf[64];
    char in[200];
    memset(in, '"', sizeof(in) - 1);
    in[sizeof(in) - 1] = '\0';
    size_t len = tk_log_json_escape(buf, 0, 32, in);
    ck_assert_uint_lt(len, 32);
    ck_assert_uint_eq(len % 2, 0); /* only whole \" pairs */
    len = tk_log_json_escape(buf, 0, 32, "\x01\x01\x01\x01\x01\x01\x01\x01");
    ck_assert_uint_eq(len % 6, 0); /* only whole \u0001 escapes */
}
END_TEST

START_TEST(urls_lose_their_passwords)
{
    char out[256];
    tk_log_redact_url("redis://:s3cret@redis:6379/0", out, sizeof(out));
    ck_assert_str_eq(out, "redis://:***@redis:6379/0");
    tk_log_redact_url("postgresql://app:hunter2@db/ticketd", out, sizeof(out));
    ck_assert_str_eq(out, "postgresql://app:***@db/ticketd");
    tk_log_redact_url("redis://s3cret@redis:6379", out, sizeof(out));
    ck_assert_ptr_null(strstr(out, "s3cret"));
    tk_log_redact_url("host=db user=app password=hunter2 dbname=t", out, sizeof(out));
    ck_assert_str_eq(out, "host=db user=app password=*** dbname=t");
    tk_log_redact_url("postgresql:///ticketd", out, sizeof(out));
    ck_assert_str_eq(out, "postgresql:///ticketd");
}
END_TEST

START_TEST(every_password_keyword_is_masked_whatever_comes_first)
{
    char out[256];
    /* "sslpassword=" (a secret too) before "password=" used to hide the real one from the mask */
    tk_log_redact_url("host=db sslpassword=k3y password=hunter2 dbname=t", out, sizeof(out));
    ck_assert_str_eq(out, "host=db sslpassword=*** password=*** dbname=t");
    tk_log_redact_url("host=db password='a b\\' c' user=app", out, sizeof(out));
    ck_assert_str_eq(out, "host=db password=*** user=app");
    tk_log_redact_url("postgresql://app:hunter2@db/t?sslpassword=k3y&sslmode=require", out, sizeof(out));
    ck_assert_str_eq(out, "postgresql://app:***@db/t?sslpassword=***&sslmode=require");
    tk_log_redact_url("postgresql://db/t?password=hunter2", out, sizeof(out));
    ck_assert_str_eq(out, "postgresql://db/t?password=***");
    char small[12];
    tk_log_redact_url("host=db password=hunter2", small, sizeof(small));
    ck_assert_ptr_null(strstr(small, "hunter"));
}
END_TEST

START_TEST(access_records_drop_the_query)
{
    char line[1024];
    const char *id = "0f1e2d3c-4b5a-4968-8776-655443322110";
    char path[128];
    snprintf(path, sizeof(path), "/events/reservation/?reservation_id=%s", id);
    for (int json = 0; json <= 1; ++json) {
        size_t len = tk_access_log_format(line, sizeof(line), json, "2026-12-06T00:00:00.000Z", h2o_iovec_init(H2O_STRLIT("GET")),
                                          h2o_iovec_init(path, strlen(path)), 200, 1500, 321);
        ck_assert_ptr_null(strstr(line, id));
        ck_assert_ptr_null(strstr(line, "reservation_id"));
        ck_assert_ptr_nonnull(strstr(line, "/events/reservation/"));
        if (json) {
            json_t *v = parse_line(line, len);
            ck_assert_str_eq(json_string_value(json_object_get(v, "path")), "/events/reservation/");
            ck_assert_str_eq(json_string_value(json_object_get(v, "method")), "GET");
            ck_assert_int_eq(json_integer_value(json_object_get(v, "status")), 200);
            ck_assert_int_eq(json_integer_value(json_object_get(v, "bytes")), 321);
            ck_assert_uint_eq(json_object_size(v), 9); /* ts level component msg method path status duration_ms bytes */
            json_decref(v);
        } else {
            ck_assert_str_eq(line, "2026-12-06T00:00:00.000Z info  http: GET /events/reservation/ 200 1.500ms 321B\n");
        }
    }
}
END_TEST

START_TEST(access_records_of_hostile_requests_stay_one_valid_line)
{
    char line[1024], path[2048];
    /* quotes, a newline, invalid UTF-8 and 2000 bytes: h2o hands over what the client sent */
    size_t n = (size_t)snprintf(path, sizeof(path), "/\"x\"\n\xff\\");
    memset(path + n, 'a', sizeof(path) - n - 1);
    path[sizeof(path) - 1] = '\0';
    const char *method = "G\"ET\n";
    size_t len = tk_access_log_format(line, sizeof(line), 1, "2026-12-06T00:00:00.000Z", h2o_iovec_init(method, strlen(method)),
                                      h2o_iovec_init(path, strlen(path)), 400, 10, 0);
    ck_assert_uint_lt(len, sizeof(line));
    json_t *v = parse_line(line, len);
    ck_assert_ptr_nonnull(strstr(json_string_value(json_object_get(v, "path")), "/\"x\"\n\xef\xbf\xbd\\aaa"));
    json_decref(v);

    len = tk_access_log_format(line, sizeof(line), 0, "2026-12-06T00:00:00.000Z", h2o_iovec_init(method, strlen(method)),
                               h2o_iovec_init(path, strlen(path)), 400, 10, 0);
    ck_assert_uint_lt(len, sizeof(line));
    ck_assert_int_eq(line[len - 1], '\n');
    ck_assert_ptr_null(memchr(line, '\n', len - 1));
}
END_TEST

/* tk_log_write's record, captured from stderr */
static size_t capture(tk_log_format_t format, char *out, size_t outsize, const char *msg)
{
    char name[] = "/tmp/tk_test_log_XXXXXX";
    int fd = mkstemp(name);
    ck_assert_int_ge(fd, 0);
    unlink(name);
    int saved = dup(STDERR_FILENO);
    dup2(fd, STDERR_FILENO);
    tk_log_init(TK_LOG_DEBUG, format);
    tk_log_warn("te\"st", "%s", msg);
    dup2(saved, STDERR_FILENO);
    close(saved);
    ssize_t n = pread(fd, out, outsize - 1, 0);
    close(fd);
    ck_assert_int_gt(n, 0);
    out[n] = '\0';
    return (size_t)n;
}

START_TEST(records_are_one_line_of_json_in_production)
{
    char out[8192], msg[3000];
    size_t len = capture(TK_LOG_JSON, out, sizeof(out), "say \"hi\"\nto \xff");
    json_t *v = parse_line(out, len);
    ck_assert_str_eq(json_string_value(json_object_get(v, "level")), "warn");
    ck_assert_str_eq(json_string_value(json_object_get(v, "component")), "te\"st");
    ck_assert_str_eq(json_string_value(json_object_get(v, "msg")), "say \"hi\"\nto \xef\xbf\xbd");
    json_decref(v);
    /* a message longer than the record buffer is cut, and still valid */
    memset(msg, '"', sizeof(msg) - 1);
    msg[sizeof(msg) - 1] = '\0';
    len = capture(TK_LOG_JSON, out, sizeof(out), msg);
    json_decref(parse_line(out, len));
}
END_TEST

int main(void)
{
    Suite *suite = suite_create("log");
    TCase *tc = tcase_create("log");
    tcase_add_test(tc, json_escape_quotes_backslashes_and_controls);
    tcase_add_test(tc, json_escape_keeps_utf8_and_replaces_what_is_not);
    tcase_add_test(tc, json_escape_stops_short_of_cap_between_characters);
    tcase_add_test(tc, urls_lose_their_passwords);
    tcase_add_test(tc, every_password_keyword_is_masked_whatever_comes_first);
    tcase_add_test(tc, access_records_drop_the_query);
    tcase_add_test(tc, access_records_of_hostile_requests_stay_one_valid_line);
    tcase_add_test(tc, records_are_one_line_of_json_in_production);
    suite_add_tcase(suite, tc);
    SRunner *runner = srunner_create(suite);
    srunner_run_all(runner, CK_NORMAL);
    int failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed != 0;
}
