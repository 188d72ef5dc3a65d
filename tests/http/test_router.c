/*
 * Unit tests of http/router.c's matching: every row of the table by its method and path
 * (with and without the trailing slash), '*' segments, 405 with the path's methods, 404,
 * and the paths whose raw and normalized readings differ (400). The normalized path is
 * made by h2o's own h2o_url_normalize_path, as the server makes it.
 */
#include "http/router.h"

#include <check.h>
#include <string.h>

static h2o_mem_pool_t pool;

static void setup(void)
{
    h2o_mem_init_pool(&pool);
}

static void teardown(void)
{
    h2o_mem_clear_pool(&pool);
}

/* matches method and raw path as the server would; *allow gets the Allow list */
static tk_route_verdict_t match(const char *method, const char *raw, size_t *row, char *allow, size_t allow_size)
{
    size_t query_at, *norm_indexes;
    h2o_iovec_t normalized = h2o_url_normalize_path(&pool, raw, strlen(raw), &query_at, &norm_indexes);
    return tk_router_match(h2o_iovec_init(method, strlen(method)), h2o_iovec_init(raw, strlen(raw)), normalized, row, allow,
                           allow_size);
}

static void assert_route(const char *method, const char *raw, const char *want_method, const char *want_path)
{
    size_t row = SIZE_MAX;
    char allow[64];
    ck_assert_msg(match(method, raw, &row, allow, sizeof(allow)) == TK_ROUTE_FOUND, "%s %s not found", method, raw);
    const char *m, *p;
    ck_assert_int_eq(tk_router_route(row, &m, &p), 0);
    ck_assert_str_eq(m, want_method);
    ck_assert_str_eq(p, want_path);
}

START_TEST(every_row_matches_with_and_without_the_trailing_slash)
{
    const char *method, *path;
    size_t n = 0;
    for (size_t i = 0; tk_router_route(i, &method, &path) == 0; ++i, ++n) {
        char raw[128], slash[130];
        /* a '*' segment stands for a UUID */
        const char *star = strchr(path, '*');
        if (star != NULL)
            snprintf(raw, sizeof(raw), "%.*s0f1e2d3c-4b5a-4968-8776-655443322110%s", (int)(star - path), path, star + 1);
        else
            snprintf(raw, sizeof(raw), "%s", path);
        size_t row;
        ck_assert_int_eq(match(method, raw, &row, NULL, 0), TK_ROUTE_FOUND);
        ck_assert_uint_eq(row, i);
        snprintf(slash, sizeof(slash), "%s/", raw);
        ck_assert_int_eq(match(method, strcmp(raw, "/") == 0 ? "/" : slash, &row, NULL, 0), TK_ROUTE_FOUND);
        ck_assert_uint_eq(row, i);
    }
    ck_assert_uint_ge(n, 15);
}
END_TEST

START_TEST(queries_are_not_part_of_the_path)
{
    assert_route("GET", "/events/reservation/?reservation_id=abc", "GET", "/events/reservation");
    assert_route("GET", "/events/event?current_page=2&x=/../metrics", "GET", "/events/event");
    assert_route("GET", "/?a=%6d", "GET", "/");
}
END_TEST

START_TEST(star_is_exactly_one_non_empty_segment)
{
    size_t row;
    assert_route("PUT", "/admin/events/abc/waiting-room", "PUT", "/admin/events/*/waiting-room");
    assert_route("GET", "/admin/events/abc/waiting-room/", "GET", "/admin/events/*/waiting-room");
    ck_assert_int_eq(match("GET", "/admin/events//waiting-room", &row, NULL, 0), TK_ROUTE_NOT_FOUND);
    ck_assert_int_eq(match("GET", "/admin/events/a/b/waiting-room", &row, NULL, 0), TK_ROUTE_NOT_FOUND);
    ck_assert_int_eq(match("GET", "/admin/events/waiting-room", &row, NULL, 0), TK_ROUTE_NOT_FOUND);
    ck_assert_int_eq(match("GET", "/admin/events/a/waiting-roomx", &row, NULL, 0), TK_ROUTE_NOT_FOUND);
}
END_TEST

START_TEST(methods_are_exact_and_405_lists_the_path_s_methods)
{
    size_t row;
    char allow[64];
    ck_assert_int_eq(match("PATCH", "/events/reservation/", &row, allow, sizeof(allow)), TK_ROUTE_WRONG_METHOD);
    ck_assert_str_eq(allow, "GET, POST, PUT, DELETE");
    ck_assert_int_eq(match("get", "/healthz", &row, allow, sizeof(allow)), TK_ROUTE_WRONG_METHOD);
    ck_assert_str_eq(allow, "GET");
    ck_assert_int_eq(match("HEAD", "/openapi.yaml", &row, allow, sizeof(allow)), TK_ROUTE_FOUND);
    ck_assert_int_eq(match("DELETE", "/admin/events/x/waiting-room", &row, allow, sizeof(allow)), TK_ROUTE_WRONG_METHOD);
    ck_assert_str_eq(allow, "PUT, GET");
    /* a short buffer still yields the verdict, the list cut */
    ck_assert_int_eq(match("PATCH", "/events/reservation", &row, allow, 8), TK_ROUTE_WRONG_METHOD);
    ck_assert_uint_lt(strlen(allow), 8);
    ck_assert_int_eq(match("PATCH", "/events/reservation", &row, NULL, 0), TK_ROUTE_WRONG_METHOD);
}
END_TEST

START_TEST(unknown_paths_are_404)
{
    size_t row;
    ck_assert_int_eq(match("GET", "/events/events/", &row, NULL, 0), TK_ROUTE_NOT_FOUND);
    ck_assert_int_eq(match("GET", "/metricsx", &row, NULL, 0), TK_ROUTE_NOT_FOUND);
    ck_assert_int_eq(match("GET", "/metrics//", &row, NULL, 0), TK_ROUTE_NOT_FOUND);
    ck_assert_int_eq(match("GET", "//metrics", &row, NULL, 0), TK_ROUTE_NOT_FOUND);
    ck_assert_int_eq(match("GET", "/Metrics", &row, NULL, 0), TK_ROUTE_NOT_FOUND);
}
END_TEST

START_TEST(paths_that_normalize_differently_are_400)
{
    static const char *const bad[] = {
        "/%6detrics",
        "/%6Detrics",
        "/x/../metrics",
        "/x/%2e%2e/metrics",
        "/./metrics",
        "/metrics/.",
        "/events%2Fevent",
        "/events/./event",
        "/a/..",
        "/x/../events/./event/",
        "/../../etc/passwd",
        "metrics",
        "*",
        "/%2e%2e/metrics",
        "/admin/events/%2e/waiting-room",
        "/events/event/%20",
        "/x/../metrics?a=b",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); ++i) {
        size_t row = SIZE_MAX;
        ck_assert_msg(match("GET", bad[i], &row, NULL, 0) == TK_ROUTE_BAD_PATH, "%s was not refused", bad[i]);
        ck_assert_uint_eq(row, SIZE_MAX);
    }
    /* percent-encoding in the query is the query's business */
    assert_route("GET", "/events/reservation/?reservation_id=%2e%2e", "GET", "/events/reservation");
}
END_TEST

int main(void)
{
    Suite *suite = suite_create("router");
    TCase *tc = tcase_create("match");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, every_row_matches_with_and_without_the_trailing_slash);
    tcase_add_test(tc, queries_are_not_part_of_the_path);
    tcase_add_test(tc, star_is_exactly_one_non_empty_segment);
    tcase_add_test(tc, methods_are_exact_and_405_lists_the_path_s_methods);
    tcase_add_test(tc, unknown_paths_are_404);
    tcase_add_test(tc, paths_that_normalize_differently_are_400);
    suite_add_tcase(suite, tc);
    SRunner *runner = srunner_create(suite);
    srunner_run_all(runner, CK_NORMAL);
    int failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed != 0;
}
