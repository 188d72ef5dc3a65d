/*
 * Integration tests of the catalog routes against a real ticketd, Redis and
 * PostgreSQL: GET/POST /events/event/, POST /admin/events, /healthz, routing errors,
 * a second process picking up an event created through the first, and availability
 * reads racing holds (reads of one event share the Redis call in flight).
 */
#include "engine/inventory.h"
#include "tests/support/api.h"
#include "tests/support/redis_direct.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define ADMIN_TOKEN "tk-test-only-admin-token-0123456789abcdef"
#define AUTH "Authorization: Bearer " ADMIN_TOKEN "\r\n"

static tk_test_server_t dev;   /* development: demo events loaded */
static tk_test_server_t empty; /* production: empty catalog, no admin token */

static char maxmemory_before[32] = "0"; /* read by start_servers */

/* before every test: a test that failed with Redis full leaves it full (check runs no
 * teardown after a failed test) */
static void put_maxmemory_back(void)
{
    redisReply *r = tk_test_redis_command("CONFIG SET maxmemory %s", maxmemory_before);
    freeReplyObject(r);
}

static void start_servers(void)
{
    redisReply *r = tk_test_redis_command("CONFIG GET maxmemory");
    if (r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements == 2)
        snprintf(maxmemory_before, sizeof(maxmemory_before), "%s", r->element[1]->str);
    freeReplyObject(r);
    const char *dev_env[] = {"TICKETD_ADMIN_TOKEN=" ADMIN_TOKEN, NULL};
    const char *prod_env[] = {"TICKETD_ENV=production", "TICKETD_SECRET=tk-test-only-secret-0123456789abcdef0123", NULL};
    ck_assert_int_eq(tk_test_server_start(&dev, dev_env, NULL), 0);
    ck_assert_int_eq(tk_test_server_start(&empty, prod_env, NULL), 0);
}

static void stop_servers(void)
{
    tk_test_server_stop(&dev);
    tk_test_server_stop(&empty);
}

static json_t *get(const tk_test_server_t *s, const char *path, int *status)
{
    return tk_api_call(s, "GET", path, NULL, NULL, status);
}

static size_t count_events(const tk_test_server_t *s)
{
    int status;
    json_t *body = get(s, "/events/event/?page_size=100", &status);
    ck_assert_int_eq(status, 200);
    size_t n = json_array_size(json_object_get(body, "events"));
    json_decref(body);
    return n;
}

static char *first_event_id(const tk_test_server_t *s)
{
    int status;
    json_t *body = get(s, "/events/event/", &status);
    char *id = strdup(json_string_value(json_object_get(json_array_get(json_object_get(body, "events"), 0), "id")));
    json_decref(body);
    return id;
}

START_TEST(list_shows_demo_events_upcoming_by_date)
{
    int status;
    json_t *body = get(&dev, "/events/event/", &status);
    ck_assert_int_eq(status, 200);
    json_t *events = json_object_get(body, "events");
    ck_assert_int_eq(json_array_size(events), 4);
    ck_assert_int_eq(json_integer_value(json_object_get(body, "last_page")), 1);
    const char *previous = "";
    for (size_t i = 0; i < json_array_size(events); ++i) {
        json_t *ev = json_array_get(events, i);
        ck_assert_int_eq(json_object_size(ev), 3);
        ck_assert_int_eq(strlen(json_string_value(json_object_get(ev, "id"))), 36);
        ck_assert(json_string_length(json_object_get(ev, "name")) > 0);
        const char *date = json_string_value(json_object_get(ev, "date"));
        ck_assert_int_eq(date[strlen(date) - 1], 'Z');
        ck_assert_msg(strcmp(previous, date) <= 0, "events not ordered by date");
        previous = date;
    }
    json_decref(body);
}
END_TEST

START_TEST(list_without_trailing_slash_is_the_same)
{
    tk_http_response_t a, b;
    ck_assert_int_eq(tk_http_request(dev.port, "GET", "/events/event/", NULL, NULL, 0, &a), 0);
    ck_assert_int_eq(tk_http_request(dev.port, "GET", "/events/event", NULL, NULL, 0, &b), 0);
    ck_assert_int_eq(a.status, 200);
    ck_assert_str_eq(a.body, b.body);
    char ct[128];
    ck_assert_str_eq(tk_http_header(&a, "content-type", ct, sizeof(ct)), "application/json; charset=utf-8");
    tk_http_response_free(&a);
    tk_http_response_free(&b);
}
END_TEST

/* asserts the page's event count and last_page */
static void assert_page(const char *query, size_t count, int last_page)
{
    char path[256];
    int status;
    snprintf(path, sizeof(path), "/events/event/?%s", query);
    json_t *body = get(&dev, path, &status);
    ck_assert_msg(status == 200, "%s: status %d", query, status);
    ck_assert_msg(json_array_size(json_object_get(body, "events")) == count, "%s: wrong count", query);
    ck_assert_msg(json_integer_value(json_object_get(body, "last_page")) == last_page, "%s: wrong last_page", query);
    json_decref(body);
}

START_TEST(pagination_edges)
{
    assert_page("page_size=1", 1, 4);
    assert_page("page_size=3&current_page=2", 1, 2);
    assert_page("page_size=3&current_page=0", 1, 2);  /* below 1: the last page */
    assert_page("page_size=3&current_page=-7", 1, 2); /* below 1: the last page */
    assert_page("page_size=3&current_page=99", 1, 2); /* past the end: the last page */
    assert_page("page_size=1000", 4, 1);              /* capped at 100 */
    assert_page("current_page=99999999999999999999", 4, 1);

    int status;
    json_t *second = get(&dev, "/events/event/?page_size=1&current_page=2", &status);
    json_t *all = get(&dev, "/events/event/", &status);
    ck_assert(json_equal(json_array_get(json_object_get(second, "events"), 0), json_array_get(json_object_get(all, "events"), 1)));
    json_decref(second);
    json_decref(all);
}
END_TEST

START_TEST(pagination_refuses_non_numbers)
{
    static const char *const bad[] = {"page_size=0",      "page_size=-1", "page_size=abc",    "current_page=abc",
                                      "current_page=1.5", "page_size=",   "current_page=%zz", NULL};
    for (size_t i = 0; bad[i] != NULL; ++i) {
        char path[128];
        int status;
        snprintf(path, sizeof(path), "/events/event/?%s", bad[i]);
        json_t *body = get(&dev, path, &status);
        ck_assert_msg(status == 400, "%s: status %d", bad[i], status);
        tk_api_assert_error_shape(body);
        json_decref(body);
    }
}
END_TEST

START_TEST(empty_catalog_is_one_empty_page)
{
    int status;
    json_t *body = get(&empty, "/events/event/?current_page=3", &status);
    ck_assert_int_eq(status, 200);
    ck_assert_int_eq(json_array_size(json_object_get(body, "events")), 0);
    ck_assert_int_eq(json_integer_value(json_object_get(body, "last_page")), 1);
    json_decref(body);
}
END_TEST

START_TEST(detail_shows_types_with_live_availability)
{
    char *id = first_event_id(&dev), req[128];
    int status;
    snprintf(req, sizeof(req), "{\"event_id\": \"%s\"}", id);
    json_t *body = tk_api_call(&dev, "POST", "/events/event/", TK_JSON_HEADER, req, &status);
    ck_assert_int_eq(status, 200);
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(body, "event"), "id")), id);
    json_t *types = json_object_get(body, "ticket_types");
    ck_assert(json_array_size(types) >= 1);
    for (size_t i = 0; i < json_array_size(types); ++i) {
        json_t *t = json_array_get(types, i);
        ck_assert_str_eq(json_string_value(json_object_get(t, "event")), id);
        ck_assert(json_is_string(json_object_get(t, "type")));
        ck_assert(json_is_number(json_object_get(t, "price")));
        ck_assert_int_eq(json_integer_value(json_object_get(t, "tickets_left")), json_integer_value(json_object_get(t, "amount")));
    }
    json_decref(body);
    /* the id is accepted in upper case too */
    for (char *p = id; *p; ++p)
        *p = (char)(*p >= 'a' && *p <= 'f' ? *p - 32 : *p);
    snprintf(req, sizeof(req), "{\"event_id\": \"%s\"}", id);
    json_decref(tk_api_call(&dev, "POST", "/events/event", NULL, req, &status));
    ck_assert_int_eq(status, 200);
    free(id);
}
END_TEST

START_TEST(detail_errors)
{
    static const struct {
        const char *headers, *body;
        int status;
    } cases[] = {
        {TK_JSON_HEADER, "{\"event_id\": \"00000000-0000-4000-8000-000000000000\"}", 404},
        {TK_JSON_HEADER, "{\"event_id\": \"not-a-uuid\"}", 400},
        {TK_JSON_HEADER, "{\"event_id\": 42}", 400},
        {TK_JSON_HEADER, "{}", 400},
        {TK_JSON_HEADER, "{\"event_id\": ", 400},
        {TK_JSON_HEADER, "[1, 2]", 400},
        {"Content-Type: text/plain\r\n", "{}", 415},
        {"Content-Type: application/x-www-form-urlencoded\r\n", "event_id=x", 415},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); ++i) {
        int status;
        json_t *body = tk_api_call(&dev, "POST", "/events/event/", cases[i].headers, cases[i].body, &status);
        ck_assert_msg(status == cases[i].status, "case %zu: status %d, want %d", i, status, cases[i].status);
        tk_api_assert_error_shape(body);
        json_decref(body);
    }
}
END_TEST

START_TEST(oversized_body_is_413)
{
    size_t len = 64 * 1024 + 1;
    char *big = malloc(len + 1);
    memset(big, ' ', len);
    big[len] = '\0';
    big[0] = '{';
    big[len - 1] = '}';
    int status;
    json_t *body = tk_api_call(&dev, "POST", "/events/event/", TK_JSON_HEADER, big, &status);
    ck_assert_int_eq(status, 413);
    tk_api_assert_error_shape(body);
    json_decref(body);
    free(big);
}
END_TEST

START_TEST(admin_requires_the_token)
{
    const char *event = "{\"name\": \"Unauthorised\", \"date\": \"2030-01-01T00:00:00Z\", \"ticket_types\": "
                        "[{\"type\": \"A\", \"price\": 1, \"amount\": 1}]}";
    size_t before = count_events(&dev);
    int status;
    json_t *body = tk_api_call(&dev, "POST", "/admin/events", TK_JSON_HEADER, event, &status);
    ck_assert_int_eq(status, 401);
    tk_api_assert_error_shape(body);
    json_decref(body);
    body = tk_api_call(&dev, "POST", "/admin/events", TK_JSON_HEADER "Authorization: Bearer wrong-token\r\n", event, &status);
    ck_assert_int_eq(status, 403);
    json_decref(body);
    body = tk_api_call(&dev, "POST", "/admin/events", TK_JSON_HEADER "Authorization: Basic " ADMIN_TOKEN "\r\n", event, &status);
    ck_assert_int_eq(status, 403);
    json_decref(body);
    /* production without a configured token refuses everyone, whatever they send */
    body = tk_api_call(&empty, "POST", "/admin/events", TK_JSON_HEADER AUTH, event, &status);
    ck_assert_int_eq(status, 403);
    json_decref(body);
    ck_assert_int_eq(count_events(&dev), before);
}
END_TEST

START_TEST(admin_creates_an_event_that_is_listed)
{
    const char *event = "{\"name\": \"Gala \\\"Premiere\\\"\", \"date\": \"2031-06-01T18:30:00.250+02:00\", \"ticket_types\": "
                        "[{\"type\": \"VIP\", \"price\": 350, \"amount\": 100}, {\"type\": \"Silver\", \"price\": 120.5, "
                        "\"amount\": 0}]}";
    size_t before = count_events(&dev);
    int status;
    json_t *body = tk_api_call(&dev, "POST", "/admin/events/", TK_JSON_HEADER AUTH, event, &status);
    ck_assert_int_eq(status, 201);
    json_t *ev = json_object_get(body, "event");
    ck_assert_str_eq(json_string_value(json_object_get(ev, "name")), "Gala \"Premiere\"");
    ck_assert_str_eq(json_string_value(json_object_get(ev, "date")), "2031-06-01T16:30:00.250Z");
    json_t *types = json_object_get(body, "ticket_types");
    ck_assert_int_eq(json_array_size(types), 2);
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(types, 0), "type")), "VIP");
    ck_assert(json_real_value(json_object_get(json_array_get(types, 1), "price")) == 120.5);
    ck_assert_int_eq(json_integer_value(json_object_get(json_array_get(types, 0), "tickets_left")), 100);

    /* listed by the very next request, and served with live availability */
    ck_assert_int_eq(count_events(&dev), before + 1);
    char req[128];
    snprintf(req, sizeof(req), "{\"event_id\": \"%s\"}", json_string_value(json_object_get(ev, "id")));
    json_t *detail = tk_api_call(&dev, "POST", "/events/event/", TK_JSON_HEADER, req, &status);
    ck_assert_int_eq(status, 200);
    ck_assert(json_equal(json_object_get(detail, "ticket_types"), types));
    json_decref(detail);
    json_decref(body);
}
END_TEST

START_TEST(admin_refuses_invalid_events_and_changes_nothing)
{
    static const char *const bad[] = {
        "{\"name\": \"Past\", \"date\": \"2001-01-01T00:00:00Z\", \"ticket_types\": [{\"type\": \"A\", \"price\": 1, \"amount\": "
        "1}]}",
        "{\"name\": \"\", \"date\": \"2030-01-01T00:00:00Z\", \"ticket_types\": [{\"type\": \"A\", \"price\": 1, \"amount\": 1}]}",
        "{\"date\": \"2030-01-01T00:00:00Z\", \"ticket_types\": [{\"type\": \"A\", \"price\": 1, \"amount\": 1}]}",
        "{\"name\": \"Dup\", \"date\": \"2030-01-01T00:00:00Z\", \"ticket_types\": [{\"type\": \"A\", \"price\": 1, \"amount\": "
        "1}, "
        "{\"type\": \"A\", \"price\": 2, \"amount\": 2}]}",
        "{\"name\": \"Neg\", \"date\": \"2030-01-01T00:00:00Z\", \"ticket_types\": [{\"type\": \"A\", \"price\": -1, \"amount\": "
        "1}]}",
        "{\"name\": \"Neg\", \"date\": \"2030-01-01T00:00:00Z\", \"ticket_types\": [{\"type\": \"A\", \"price\": 1, \"amount\": "
        "-1}]}",
        "{\"name\": \"Cents\", \"date\": \"2030-01-01T00:00:00Z\", \"ticket_types\": [{\"type\": \"A\", \"price\": 1.005, "
        "\"amount\": "
        "1}]}",
        "{\"name\": \"Frac\", \"date\": \"2030-01-01T00:00:00Z\", \"ticket_types\": [{\"type\": \"A\", \"price\": 1, \"amount\": "
        "1.5}]}",
        "{\"name\": \"Str\", \"date\": \"2030-01-01T00:00:00Z\", \"ticket_types\": [{\"type\": \"A\", \"price\": \"1\", "
        "\"amount\": "
        "1}]}",
        "{\"name\": \"NoTypes\", \"date\": \"2030-01-01T00:00:00Z\", \"ticket_types\": []}",
        "{\"name\": \"BadDate\", \"date\": \"tomorrow\", \"ticket_types\": [{\"type\": \"A\", \"price\": 1, \"amount\": 1}]}",
        "{\"name\": 7, \"date\": \"2030-01-01T00:00:00Z\", \"ticket_types\": [{\"type\": \"A\", \"price\": 1, \"amount\": 1}]}",
        "{\"name\": \"Huge\", \"date\": \"2030-01-01T00:00:00Z\", \"ticket_types\": [{\"type\": \"A\", \"price\": 1e20, "
        "\"amount\": "
        "1}]}",
        NULL};
    size_t before = count_events(&dev);
    for (size_t i = 0; bad[i] != NULL; ++i) {
        int status;
        json_t *body = tk_api_call(&dev, "POST", "/admin/events", TK_JSON_HEADER AUTH, bad[i], &status);
        ck_assert_msg(status == 400, "case %zu: status %d", i, status);
        tk_api_assert_error_shape(body);
        json_decref(body);
    }
    ck_assert_int_eq(count_events(&dev), before);
}
END_TEST

START_TEST(routing_errors_are_json)
{
    int status;
    tk_http_response_t res;
    json_t *body = get(&dev, "/no/such/route", &status);
    ck_assert_int_eq(status, 404);
    tk_api_assert_error_shape(body);
    json_decref(body);
    ck_assert_int_eq(tk_http_request(dev.port, "DELETE", "/events/event/", NULL, NULL, 0, &res), 0);
    ck_assert_int_eq(res.status, 405);
    char allow[64];
    ck_assert_str_eq(tk_http_header(&res, "allow", allow, sizeof(allow)), "GET, POST");
    tk_http_response_free(&res);
}
END_TEST

START_TEST(healthz_reports_ok)
{
    int status;
    json_t *body = get(&dev, "/healthz", &status);
    ck_assert_int_eq(status, 200);
    ck_assert_str_eq(json_string_value(json_object_get(body, "status")), "ok");
    json_decref(body);
}
END_TEST

/* Creates an event through dev and waits (up to 2 s) until lister lists one more event
 * than before; returns how many it lists then. */
static size_t create_and_count(const tk_test_server_t *lister, size_t before)
{
    int status;
    json_t *body = tk_api_call(&dev, "POST", "/admin/events", TK_JSON_HEADER AUTH,
                               "{\"name\": \"Shared\", \"date\": \"2032-01-01T00:00:00Z\", \"ticket_types\": [{\"type\": "
                               "\"A\", \"price\": 10, \"amount\": 5}]}",
                               &status);
    ck_assert_int_eq(status, 201);
    json_decref(body);
    size_t after = before;
    for (int i = 0; i < 40 && after == before; ++i) {
        usleep(50 * 1000);
        after = count_events(lister);
    }
    return after;
}

START_TEST(second_process_sees_an_event_created_through_the_first)
{
    char pg[256], pg_env[300];
    tk_test_pg_url(dev.database, pg, sizeof(pg));
    snprintf(pg_env, sizeof(pg_env), "TICKETD_PG_URL=%s", pg);
    const char *env[] = {"TICKETD_ADMIN_TOKEN=" ADMIN_TOKEN, pg_env, NULL};
    tk_test_server_t other;
    ck_assert_int_eq(tk_test_server_start(&other, env, NULL), 0);
    size_t before = count_events(&other), after = create_and_count(&other, before);
    tk_test_server_stop(&other);
    ck_assert_int_eq(after, before + 1);
}
END_TEST

/* Redis lost its last writes (emptied, or a failover that lost them): its catalog version
 * reads below what the process published. An event created then (its INCR gives a lower
 * version still) is published all the same. */
START_TEST(a_catalog_version_that_went_back_in_redis_is_followed)
{
    size_t before = count_events(&dev);
    redisReply *r = tk_test_redis_command("SET " TK_CATALOG_VERSION_KEY " 1");
    ck_assert(r != NULL && r->type == REDIS_REPLY_STATUS);
    freeReplyObject(r);
    ck_assert_int_eq(create_and_count(&dev, before), before + 1);
}
END_TEST

/* ---- an event PostgreSQL saved and Redis refused ---- */

/* Redis refuses writes (full) between the creation's commit and its announcement: the
 * event is saved, so the admin is told 201 (a 503 would invite a second, duplicate
 * event), and it is listed once Redis takes writes again, without a second change. */
START_TEST(an_event_saved_while_redis_refused_writes_goes_on_sale_once_redis_takes_them)
{
    size_t before = count_events(&dev);
    freeReplyObject(tk_test_redis_command("CONFIG SET maxmemory 1"));
    int status;
    json_t *body = tk_api_call(&dev, "POST", "/admin/events", TK_JSON_HEADER AUTH,
                               "{\"name\": \"Saved\", \"date\": \"2032-01-01T00:00:00Z\", \"ticket_types\": [{\"type\": "
                               "\"A\", \"price\": 10, \"amount\": 5}]}",
                               &status);
    ck_assert_int_eq(status, 201);
    const char *id = json_string_value(json_object_get(json_object_get(body, "event"), "id"));
    ck_assert_ptr_nonnull(id);
    ck_assert_uint_eq(count_events(&dev), before); /* not announced yet */
    put_maxmemory_back();
    size_t after = before;
    for (int i = 0; i < 100 && after == before; ++i) {
        usleep(50 * 1000);
        after = count_events(&dev);
    }
    ck_assert_uint_eq(after, before + 1);
    char detail[96];
    snprintf(detail, sizeof(detail), "{\"event_id\": \"%s\"}", id);
    json_t *shown = tk_api_call(&dev, "POST", "/events/event/", TK_JSON_HEADER, detail, &status);
    ck_assert_int_eq(status, 200);
    json_t *left = json_object_get(json_array_get(json_object_get(shown, "ticket_types"), 0), "tickets_left");
    ck_assert_int_eq(json_integer_value(left), 5); /* its inventory is in Redis too */
    json_decref(shown);
    json_decref(body);
}
END_TEST

#define RACE_HOLDS 40
#define RACE_READERS 6
#define RACE_CAP 1000
#define RACE_OTHER_CAP 777

/* tickets_left of the first type of event on s; -1 when the answer is not a 200 with it */
static json_int_t left_of(const tk_test_server_t *s, const char *event)
{
    char req[128];
    int status;
    snprintf(req, sizeof(req), "{\"event_id\": \"%s\"}", event);
    json_t *body = tk_api_call(s, "POST", "/events/event/", TK_JSON_HEADER, req, &status);
    json_t *left = json_object_get(json_array_get(json_object_get(body, "ticket_types"), 0), "tickets_left");
    json_int_t v = status == 200 && json_is_integer(left) ? json_integer_value(left) : -1;
    json_decref(body);
    return v;
}

/* a reader: every answer for a is one a had (between the caps before and after every
 * hold), never more than its previous one; every answer for b is b's. Exit status 0. */
static int race_reader(const tk_test_server_t *s, const char *a, const char *b)
{
    json_int_t last = RACE_CAP;
    for (int i = 0; i < RACE_HOLDS; ++i) {
        json_int_t left = left_of(s, a);
        if (left < RACE_CAP - RACE_HOLDS || left > last)
            return 1;
        last = left;
        if (left_of(s, b) != RACE_OTHER_CAP)
            return 2;
    }
    return 0;
}

static int race_holder(const tk_test_server_t *s, const char *a)
{
    char body[160];
    snprintf(body, sizeof(body), "{\"event_id\": \"%s\", \"tickets\": [{\"type\": \"GA\", \"amount\": 1}]}", a);
    for (int i = 0; i < RACE_HOLDS; ++i) {
        int status;
        json_decref(tk_api_call(s, "POST", "/events/reservation/", TK_JSON_HEADER, body, &status));
        if (status != 201)
            return 3;
    }
    return 0;
}

START_TEST(availability_reads_racing_holds_see_only_real_figures)
{
    const char *env[] = {"TICKETD_ADMIN_TOKEN=" ADMIN_TOKEN, "TICKETD_CLIENT_MAX_HOLDS=0", "TICKETD_CLIENT_HOLD_RATE=0", NULL};
    tk_test_server_t s;
    ck_assert_int_eq(tk_test_server_start(&s, env, NULL), 0);
    char a[40], b[40], body[256]; /* uuids */
    snprintf(body, sizeof(body),
             "{\"name\": \"Race\", \"date\": \"2035-01-01T20:00:00Z\", \"ticket_types\": [{\"type\": \"GA\", \"price\": 10, "
             "\"amount\": %d}]}",
             RACE_CAP);
    tk_api_create_event(&s, TK_JSON_HEADER AUTH, body, a);
    snprintf(body, sizeof(body),
             "{\"name\": \"Other\", \"date\": \"2035-01-01T20:00:00Z\", \"ticket_types\": [{\"type\": \"GA\", \"price\": 10, "
             "\"amount\": %d}]}",
             RACE_OTHER_CAP);
    tk_api_create_event(&s, TK_JSON_HEADER AUTH, body, b);
    pid_t pids[RACE_READERS + 1];
    fflush(NULL);
    for (int p = 0; p <= RACE_READERS; ++p) {
        pids[p] = fork();
        ck_assert_int_ne(pids[p], -1);
        if (pids[p] == 0)
            _exit(p == RACE_READERS ? race_holder(&s, a) : race_reader(&s, a, b));
    }
    for (int p = 0; p <= RACE_READERS; ++p) {
        int status;
        ck_assert_int_eq(waitpid(pids[p], &status, 0), pids[p]);
        ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "process %d: status %d", p, status);
    }
    ck_assert_int_eq(left_of(&s, a), RACE_CAP - RACE_HOLDS);
    ck_assert_int_eq(left_of(&s, b), RACE_OTHER_CAP);
    tk_test_server_stop(&s);
}
END_TEST

int main(void)
{
    Suite *suite = suite_create("catalog_http");
    TCase *tc = tcase_create("catalog");
    tcase_set_timeout(tc, 60);
    tcase_add_unchecked_fixture(tc, start_servers, stop_servers);
    tcase_add_checked_fixture(tc, put_maxmemory_back, NULL);
    tcase_add_test(tc, list_shows_demo_events_upcoming_by_date);
    tcase_add_test(tc, list_without_trailing_slash_is_the_same);
    tcase_add_test(tc, pagination_edges);
    tcase_add_test(tc, pagination_refuses_non_numbers);
    tcase_add_test(tc, empty_catalog_is_one_empty_page);
    tcase_add_test(tc, detail_shows_types_with_live_availability);
    tcase_add_test(tc, detail_errors);
    tcase_add_test(tc, oversized_body_is_413);
    tcase_add_test(tc, admin_requires_the_token);
    tcase_add_test(tc, admin_refuses_invalid_events_and_changes_nothing);
    tcase_add_test(tc, routing_errors_are_json);
    tcase_add_test(tc, healthz_reports_ok);
    tcase_add_test(tc, second_process_sees_an_event_created_through_the_first);
    tcase_add_test(tc, a_catalog_version_that_went_back_in_redis_is_followed);
    tcase_add_test(tc, an_event_saved_while_redis_refused_writes_goes_on_sale_once_redis_takes_them);
    tcase_add_test(tc, availability_reads_racing_holds_see_only_real_figures);
    /* last: it adds events the counting tests above would see */
    tcase_add_test(tc, admin_creates_an_event_that_is_listed);
    suite_add_tcase(suite, tc);
    SRunner *runner = srunner_create(suite);
    srunner_run_all(runner, CK_NORMAL);
    int failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed != 0;
}
