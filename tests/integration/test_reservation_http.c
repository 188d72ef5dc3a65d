/*
 * Integration tests of the reservation routes against a real ticketd, Redis and
 * PostgreSQL: every status and message string of the contract, the signed cookie,
 * exact expiry (lazy on read, and by the sweeper without any read), the sold-out
 * fast path, a race of 200 concurrent clients for 100 tickets, and a Redis that lost
 * the function library getting it back.
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
#define HOLD_SECONDS 2

static tk_test_server_t server;

static void start_server(void)
{
    /* many holds from one client (127.0.0.1): fair use is tested in test_fair_use_http */
    const char *env[] = {"TICKETD_ADMIN_TOKEN=" ADMIN_TOKEN, "TICKETD_HOLD_SECONDS=2", "TICKETD_CLIENT_MAX_HOLDS=0",
                         "TICKETD_CLIENT_HOLD_RATE=0", NULL};
    ck_assert_int_eq(tk_test_server_start(&server, env, NULL), 0);
}

static void stop_server(void)
{
    tk_test_server_stop(&server);
}

/* Creates an event with the given ticket_types JSON; returns its id (static buffer). */
static const char *create_event(const char *types_json)
{
    static char id[64];
    char body[1024];
    snprintf(body, sizeof(body), "{\"name\": \"Race\", \"date\": \"2035-01-01T20:00:00Z\", \"ticket_types\": %s}", types_json);
    tk_api_create_event(&server, TK_JSON_HEADER "Authorization: Bearer " ADMIN_TOKEN "\r\n", body, id);
    return id;
}

static json_t *reserve(const char *event, const char *tickets_json, int *status)
{
    char body[1024];
    snprintf(body, sizeof(body), "{\"event_id\": \"%s\", \"tickets\": %s}", event, tickets_json);
    return tk_api_call(&server, "POST", "/events/reservation/", TK_JSON_HEADER, body, status);
}

/* tickets_left of type in event, through the public route */
static json_int_t tickets_left(const char *event, const char *type)
{
    char body[128];
    int status;
    snprintf(body, sizeof(body), "{\"event_id\": \"%s\"}", event);
    json_t *res = tk_api_call(&server, "POST", "/events/event/", TK_JSON_HEADER, body, &status);
    ck_assert_int_eq(status, 200);
    json_int_t left = -1;
    json_t *types = json_object_get(res, "ticket_types");
    for (size_t i = 0; i < json_array_size(types); ++i)
        if (strcmp(json_string_value(json_object_get(json_array_get(types, i), "type")), type) == 0)
            left = json_integer_value(json_object_get(json_array_get(types, i), "tickets_left"));
    json_decref(res);
    return left;
}

/* One inventory field straight from Redis, bypassing ticketd (no lazy expiry). */
static long long inventory_field(const char *event, const char *type, const char *field)
{
    tk_shard_keys_t keys;
    tk_shard_keys(event, &keys);
    redisReply *r = tk_test_redis_command("HGET %s %s:%s:%s", keys.names[TK_KEY_INV], event, type, field);
    long long v = r != NULL && r->type == REDIS_REPLY_STRING ? atoll(r->str) : -1;
    freeReplyObject(r);
    return v;
}

static void assert_invariant(const char *event, const char *type, long long cap)
{
    long long avail = inventory_field(event, type, "avail"), held = inventory_field(event, type, "held"),
              sold = inventory_field(event, type, "sold");
    ck_assert_msg(avail >= 0 && held >= 0 && sold >= 0 && avail + held + sold == cap,
                  "invariant broken for %s: avail %lld + held %lld + sold %lld != %lld", type, avail, held, sold, cap);
}

/* status is read through a pointer: the call producing body must have run first */
static void assert_error(json_t *body, const int *status, int want_status, const char *error, const char *message)
{
    ck_assert_msg(*status == want_status, "status %d, want %d", *status, want_status);
    ck_assert_str_eq(json_string_value(json_object_get(body, "error")), error);
    ck_assert_str_eq(json_string_value(json_object_get(body, "message")), message);
    json_decref(body);
}

START_TEST(reserve_returns_201_with_the_seed_strings_and_a_signed_cookie)
{
    const char *event = create_event("[{\"type\": \"VIP\", \"price\": 350, \"amount\": 10}]");
    char body[256], cookie[256];
    tk_http_response_t res;
    snprintf(body, sizeof(body), "{\"event_id\": \"%s\", \"tickets\": [{\"type\": \"VIP\", \"amount\": 3}]}", event);
    ck_assert_int_eq(tk_http_request(server.port, "POST", "/events/reservation", TK_JSON_HEADER, body, strlen(body), &res), 0);
    ck_assert_int_eq(res.status, 201);
    json_t *json = json_loads(res.body, 0, NULL);
    ck_assert_str_eq(json_string_value(json_object_get(json, "ok")), "Reservation made successfully");
    ck_assert_str_eq(json_string_value(json_object_get(json, "message")),
                     "Reservation made successfully! Remember to finalize the payment within 1 miuntes from now");
    const char *rid = json_string_value(json_object_get(json, "reservation_id"));
    ck_assert_int_eq(strlen(rid), 36);
    ck_assert_msg(strncmp(rid, event, 4) == 0, "reservation id does not carry the event's shard");
    ck_assert_ptr_nonnull(tk_http_header(&res, "set-cookie", cookie, sizeof(cookie)));
    ck_assert_msg(strncmp(cookie, "sessionid=", 10) == 0 && strncmp(cookie + 10, rid, 36) == 0, "cookie: %s", cookie);
    ck_assert_ptr_nonnull(strstr(cookie, "HttpOnly"));
    ck_assert_ptr_nonnull(strstr(cookie, "SameSite=Lax"));
    ck_assert_ptr_nonnull(strstr(cookie, "Path=/"));
    ck_assert_ptr_nonnull(strstr(cookie, "Max-Age=2"));
    json_decref(json);
    tk_http_response_free(&res);
    ck_assert_int_eq(tickets_left(event, "VIP"), 7);
    assert_invariant(event, "VIP", 10);
}
END_TEST

START_TEST(read_shows_one_entry_per_ticket)
{
    const char *event = create_event("[{\"type\": \"VIP\", \"price\": 350, \"amount\": 10}, {\"type\": \"Silver\", \"price\": "
                                     "120.5, \"amount\": 10}]");
    int status;
    json_t *made = reserve(event, "[{\"type\": \"VIP\", \"amount\": 2}, {\"type\": \"Silver\", \"amount\": 1}]", &status);
    ck_assert_int_eq(status, 201);
    char path[128];
    snprintf(path, sizeof(path), "/events/reservation/?reservation_id=%s",
             json_string_value(json_object_get(made, "reservation_id")));
    json_t *got = tk_api_call(&server, "GET", path, NULL, NULL, &status);
    ck_assert_int_eq(status, 200);
    json_t *reservation = json_object_get(got, "reservation"), *tickets = json_object_get(got, "tickets");
    ck_assert_str_eq(json_string_value(json_object_get(reservation, "status")), "PENDING");
    ck_assert_str_eq(json_string_value(json_object_get(reservation, "event")), event);
    ck_assert_str_eq(json_string_value(json_object_get(reservation, "id")),
                     json_string_value(json_object_get(made, "reservation_id")));
    ck_assert_int_eq(json_array_size(tickets), 3);
    int vip = 0, silver = 0;
    for (size_t i = 0; i < 3; ++i) {
        json_t *t = json_array_get(tickets, i);
        const char *type = json_string_value(json_object_get(t, "type"));
        double price = json_number_value(json_object_get(t, "price"));
        vip += strcmp(type, "VIP") == 0 && price == 350.0;
        silver += strcmp(type, "Silver") == 0 && price == 120.5;
        ck_assert_str_eq(json_string_value(json_object_get(t, "reservation")),
                         json_string_value(json_object_get(reservation, "id")));
        ck_assert_int_eq(json_string_length(json_object_get(t, "id")), 36);
    }
    ck_assert_int_eq(vip, 2);
    ck_assert_int_eq(silver, 1);
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(got, "event"), "id")), event);
    json_decref(got);
    json_decref(made);
}
END_TEST

START_TEST(contract_errors_with_exact_strings_change_nothing)
{
    const char *event = create_event("[{\"type\": \"VIP\", \"price\": 350, \"amount\": 4}, {\"type\": \"Silver\", \"price\": 1, "
                                     "\"amount\": 2}]");
    int status;
    assert_error(reserve(event, "[{\"type\": \"Gold\", \"amount\": 1}]", &status), &status, 400,
                 "Requested ticket type is not present in event ticket types",
                 "This event does not distribute tickets of this type");
    assert_error(reserve(event, "[{\"type\": \"VIP\", \"amount\": 6}]", &status), &status, 400,
                 "Ordering more tickets than allowed!", "Can not order more than 5 tickets of each type");
    /* duplicates are merged before the limit is checked */
    assert_error(reserve(event, "[{\"type\": \"VIP\", \"amount\": 3}, {\"type\": \"VIP\", \"amount\": 3}]", &status), &status, 400,
                 "Ordering more tickets than allowed!", "Can not order more than 5 tickets of each type");
    /* unknown type is checked before the limit, whatever the line order */
    assert_error(reserve(event, "[{\"type\": \"VIP\", \"amount\": 9}, {\"type\": \"Gold\", \"amount\": 1}]", &status), &status, 400,
                 "Requested ticket type is not present in event ticket types",
                 "This event does not distribute tickets of this type");
    assert_error(reserve(event, "[{\"type\": \"VIP\", \"amount\": 5}]", &status), &status, 409,
                 "Requested more tickets than available", "This event does not have sufficient quantity of VIP tickets");
    /* several short: the first in request order is named; nothing is held for the others */
    assert_error(reserve(event, "[{\"type\": \"Silver\", \"amount\": 3}, {\"type\": \"VIP\", \"amount\": 5}]", &status), &status,
                 409, "Requested more tickets than available", "This event does not have sufficient quantity of Silver tickets");
    assert_error(reserve(event, "[{\"type\": \"VIP\", \"amount\": 1}, {\"type\": \"Silver\", \"amount\": 3}]", &status), &status,
                 409, "Requested more tickets than available", "This event does not have sufficient quantity of Silver tickets");

    static const char *const malformed[] = {"[]",
                                            "[{\"type\": \"VIP\", \"amount\": 0}]",
                                            "[{\"type\": \"VIP\", \"amount\": -1}]",
                                            "[{\"type\": \"VIP\", \"amount\": 1.5}]",
                                            "[{\"type\": \"VIP\", \"amount\": \"2\"}]",
                                            "[{\"type\": \"VIP\"}]",
                                            "[{\"type\": 7, \"amount\": 1}]",
                                            "\"VIP\"",
                                            "[{\"type\": \"VIP\", \"amount\": 1}, {\"type\": \"VIP\", \"amount\": 0}]",
                                            NULL};
    for (size_t i = 0; malformed[i] != NULL; ++i) {
        json_t *body = reserve(event, malformed[i], &status);
        ck_assert_msg(status == 400, "%s: status %d", malformed[i], status);
        tk_api_assert_error_shape(body);
        json_decref(body);
    }
    json_t *body = reserve("00000000-0000-4000-8000-000000000000", "[{\"type\": \"VIP\", \"amount\": 1}]", &status);
    ck_assert_int_eq(status, 404);
    json_decref(body);
    body = tk_api_call(&server, "POST", "/events/reservation/", TK_JSON_HEADER, "{\"event_id\": ", &status);
    ck_assert_int_eq(status, 400);
    json_decref(body);
    body = tk_api_call(&server, "POST", "/events/reservation/", TK_JSON_HEADER, "{\"tickets\": []}", &status);
    ck_assert_int_eq(status, 400);
    json_decref(body);

    ck_assert_int_eq(tickets_left(event, "VIP"), 4);
    ck_assert_int_eq(tickets_left(event, "Silver"), 2);
    assert_invariant(event, "VIP", 4);
    assert_invariant(event, "Silver", 2);
}
END_TEST

/* POST a reservation of one ticket; returns its id (caller frees) and the cookie value */
static char *reserve_one(const char *event, char *cookie, size_t cookie_size)
{
    char body[256];
    tk_http_response_t res;
    snprintf(body, sizeof(body), "{\"event_id\": \"%s\", \"tickets\": [{\"type\": \"A\", \"amount\": 1}]}", event);
    ck_assert_int_eq(tk_http_request(server.port, "POST", "/events/reservation/", TK_JSON_HEADER, body, strlen(body), &res), 0);
    ck_assert_int_eq(res.status, 201);
    json_t *json = json_loads(res.body, 0, NULL);
    char *rid = strdup(json_string_value(json_object_get(json, "reservation_id")));
    if (cookie != NULL) {
        char header[256];
        tk_http_header(&res, "set-cookie", header, sizeof(header));
        snprintf(cookie, cookie_size, "%.*s", (int)strcspn(header, ";"), header);
    }
    json_decref(json);
    tk_http_response_free(&res);
    return rid;
}

static int cancel_with(const char *path, const char *headers, const char *body)
{
    int status;
    json_decref(tk_api_call(&server, "DELETE", path, headers, body, &status));
    return status;
}

START_TEST(cancel_by_cookie_body_or_query_returns_tickets_at_once)
{
    const char *event = create_event("[{\"type\": \"A\", \"price\": 10, \"amount\": 3}]");
    char cookie[200], headers[300], path[128], body[128];
    char *by_cookie = reserve_one(event, cookie, sizeof(cookie));
    char *by_body = reserve_one(event, NULL, 0);
    char *by_query = reserve_one(event, NULL, 0);
    ck_assert_int_eq(tickets_left(event, "A"), 0);

    snprintf(headers, sizeof(headers), "Cookie: theme=dark; %s\r\n", cookie);
    int status;
    json_t *ok = tk_api_call(&server, "DELETE", "/events/reservation/", headers, NULL, &status);
    ck_assert_int_eq(status, 200);
    ck_assert_str_eq(json_string_value(json_object_get(ok, "ok")), "Reservation cancelled");
    ck_assert_str_eq(json_string_value(json_object_get(ok, "message")), "Reservation for the event was cancelled successfully");
    json_decref(ok);
    ck_assert_int_eq(tickets_left(event, "A"), 1);

    snprintf(body, sizeof(body), "{\"reservation_id\": \"%s\"}", by_body);
    ck_assert_int_eq(cancel_with("/events/reservation/", TK_JSON_HEADER, body), 200);
    snprintf(path, sizeof(path), "/events/reservation?reservation_id=%s", by_query);
    ck_assert_int_eq(cancel_with(path, NULL, NULL), 200);
    ck_assert_int_eq(tickets_left(event, "A"), 3);

    /* a second cancel is a conflict, and the reservation now reads as CANCELLED */
    ck_assert_int_eq(cancel_with("/events/reservation/", headers, NULL), 409);
    json_t *got = tk_api_call(&server, "GET", path, NULL, NULL, &status);
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(got, "reservation"), "status")), "CANCELLED");
    json_decref(got);
    assert_invariant(event, "A", 3);
    free(by_cookie);
    free(by_body);
    free(by_query);
}
END_TEST

START_TEST(cancel_refuses_missing_forged_and_unknown)
{
    const char *event = create_event("[{\"type\": \"A\", \"price\": 10, \"amount\": 2}]");
    char cookie[200], forged[300];
    char *rid = reserve_one(event, cookie, sizeof(cookie));
    ck_assert_int_eq(cancel_with("/events/reservation/", NULL, NULL), 400);
    /* flip the last signature character */
    snprintf(forged, sizeof(forged), "Cookie: %s\r\n", cookie);
    char *last = forged + strlen(forged) - 3;
    *last = *last == 'A' ? 'B' : 'A';
    ck_assert_int_eq(cancel_with("/events/reservation/", forged, NULL), 403);
    ck_assert_int_eq(cancel_with("/events/reservation/", "Cookie: sessionid=garbage\r\n", NULL), 403);
    ck_assert_int_eq(cancel_with("/events/reservation/?reservation_id=nope", NULL, NULL), 400);
    ck_assert_int_eq(cancel_with("/events/reservation/", TK_JSON_HEADER, "{\"reservation_id\": \"x\"}"), 400);
    ck_assert_int_eq(cancel_with("/events/reservation/", TK_JSON_HEADER, "{bad json"), 400);
    /* a reservation_id that is present but not a UUID is 400, even beside a valid cookie
     * (it used to fall through to the cookie's hold and cancel it) */
    char with_cookie[300];
    snprintf(with_cookie, sizeof(with_cookie), TK_JSON_HEADER "Cookie: %s\r\n", cookie);
    ck_assert_int_eq(cancel_with("/events/reservation/", with_cookie, "{\"reservation_id\": 5}"), 400);
    ck_assert_int_eq(cancel_with("/events/reservation/", with_cookie, "{\"reservation_id\": null}"), 400);
    ck_assert_int_eq(cancel_with("/events/reservation/", with_cookie, "{\"reservation_id\": \"\"}"), 400);
    char path[128];
    snprintf(path, sizeof(path), "/events/reservation/?reservation_id=%.4s0000-0000-4000-8000-000000000000", event);
    ck_assert_int_eq(cancel_with(path, NULL, NULL), 404);
    ck_assert_int_eq(tickets_left(event, "A"), 1); /* still held */
    free(rid);
}
END_TEST

START_TEST(read_refuses_missing_malformed_and_unknown)
{
    int status;
    json_decref(tk_api_call(&server, "GET", "/events/reservation/", NULL, NULL, &status));
    ck_assert_int_eq(status, 400);
    json_decref(tk_api_call(&server, "GET", "/events/reservation/?reservation_id=123", NULL, NULL, &status));
    ck_assert_int_eq(status, 400);
    json_t *body = tk_api_call(&server, "GET", "/events/reservation/?reservation_id=abcd0000-0000-4000-8000-000000000000", NULL,
                               NULL, &status);
    ck_assert_int_eq(status, 404);
    tk_api_assert_error_shape(body);
    json_decref(body);
}
END_TEST

START_TEST(expired_hold_reads_cancelled_and_the_sweeper_returns_tickets_unread)
{
    const char *event = create_event("[{\"type\": \"A\", \"price\": 10, \"amount\": 5}]");
    char *read_later = reserve_one(event, NULL, 0);
    char *never_read = reserve_one(event, NULL, 0);
    ck_assert_int_eq(inventory_field(event, "A", "avail"), 3);
    /* the sweeper alone must return both holds within 1 s of the deadline */
    usleep((HOLD_SECONDS * 1000 + 1000) * 1000);
    ck_assert_int_eq(inventory_field(event, "A", "avail"), 5);
    ck_assert_int_eq(inventory_field(event, "A", "held"), 0);
    char path[128];
    int status;
    snprintf(path, sizeof(path), "/events/reservation/?reservation_id=%s", read_later);
    json_t *got = tk_api_call(&server, "GET", path, NULL, NULL, &status);
    ck_assert_int_eq(status, 200);
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(got, "reservation"), "status")), "CANCELLED");
    json_decref(got);
    char body[128];
    snprintf(body, sizeof(body), "{\"reservation_id\": \"%s\"}", never_read);
    ck_assert_int_eq(cancel_with("/events/reservation/", TK_JSON_HEADER, body), 409);
    assert_invariant(event, "A", 5);
    free(read_later);
    free(never_read);
}
END_TEST

START_TEST(lazy_expiry_on_read_is_exact)
{
    const char *event = create_event("[{\"type\": \"A\", \"price\": 10, \"amount\": 5}]");
    char *rid = reserve_one(event, NULL, 0);
    char path[128];
    int status;
    snprintf(path, sizeof(path), "/events/reservation/?reservation_id=%s", rid);
    json_t *got = tk_api_call(&server, "GET", path, NULL, NULL, &status);
    const char *until = json_string_value(json_object_get(json_object_get(got, "reservation"), "pending_until"));
    const char *made = json_string_value(json_object_get(json_object_get(got, "reservation"), "reservation_date"));
    ck_assert_msg(strlen(until) >= 20 && until[strlen(until) - 1] == 'Z', "pending_until %s", until);
    ck_assert_msg(strcmp(made, until) < 0, "reservation_date %s not before pending_until %s", made, until);
    json_decref(got);
    usleep(HOLD_SECONDS * 1000 * 1000 + 50 * 1000);
    got = tk_api_call(&server, "GET", path, NULL, NULL, &status);
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(got, "reservation"), "status")), "CANCELLED");
    json_decref(got);
    ck_assert_int_eq(tickets_left(event, "A"), 5);
    free(rid);
}
END_TEST

static long long turned_away(const char *event)
{
    char path[128];
    int status;
    snprintf(path, sizeof(path), "/events/stats/?event_id=%s", event);
    json_t *res = tk_api_call(&server, "GET", path, "Authorization: Bearer " ADMIN_TOKEN "\r\n", NULL, &status);
    ck_assert_int_eq(status, 200);
    long long n = json_integer_value(json_object_get(json_object_get(res, "live"), "turned_away"));
    json_decref(res);
    return n;
}

START_TEST(sold_out_answers_fast_and_recovers_after_a_cancel)
{
    const char *event = create_event("[{\"type\": \"A\", \"price\": 10, \"amount\": 1}]");
    char *rid = reserve_one(event, NULL, 0);
    int status;
    for (int i = 0; i < 5; ++i)
        assert_error(reserve(event, "[{\"type\": \"A\", \"amount\": 1}]", &status), &status, 409,
                     "Requested more tickets than available", "This event does not have sufficient quantity of A tickets");
    /* every refusal is in the event's turned_away, the ones answered from memory too
     * (reported twice a second) */
    long long away = -1;
    for (int i = 0; i < 40 && away != 5; ++i) {
        usleep(50 * 1000);
        away = turned_away(event);
    }
    ck_assert_int_eq(away, 5);
    char body[128];
    snprintf(body, sizeof(body), "{\"reservation_id\": \"%s\"}", rid);
    ck_assert_int_eq(cancel_with("/events/reservation/", TK_JSON_HEADER, body), 200);
    /* the sold-out memory lasts at most a second */
    int got_it = 0;
    for (int i = 0; i < 30 && !got_it; ++i) {
        json_decref(reserve(event, "[{\"type\": \"A\", \"amount\": 1}]", &status));
        got_it = status == 201;
        if (!got_it)
            usleep(50 * 1000);
    }
    ck_assert_msg(got_it, "the returned ticket was not sold again within 1.5 s");
    assert_invariant(event, "A", 1);
    free(rid);
}
END_TEST

#define RACE_CLIENTS 200
#define RACE_TICKETS 100

/* One racing client: waits at the barrier, reserves one ticket, reports "status rid". */
static void race_client(const char *event, int start_fd, int report_fd)
{
    char go;
    if (read(start_fd, &go, 1) != 1)
        _exit(2);
    char body[256], line[128];
    snprintf(body, sizeof(body), "{\"event_id\": \"%s\", \"tickets\": [{\"type\": \"A\", \"amount\": 1}]}", event);
    tk_http_response_t res;
    int n;
    if (tk_http_request(server.port, "POST", "/events/reservation/", TK_JSON_HEADER, body, strlen(body), &res) != 0) {
        n = snprintf(line, sizeof(line), "0 -\n");
    } else {
        json_t *json = json_loads(res.body, 0, NULL);
        const char *rid = json_string_value(json_object_get(json, "reservation_id"));
        n = snprintf(line, sizeof(line), "%d %s\n", res.status, rid != NULL ? rid : "-");
        json_decref(json);
        tk_http_response_free(&res);
    }
    _exit(write(report_fd, line, (size_t)n) == n ? 0 : 3);
}

START_TEST(two_hundred_clients_race_for_one_hundred_tickets)
{
    const char *event = create_event("[{\"type\": \"A\", \"price\": 10, \"amount\": 100}]");
    int start[2], report[2];
    ck_assert_int_eq(pipe(start), 0);
    ck_assert_int_eq(pipe(report), 0);
    for (int i = 0; i < RACE_CLIENTS; ++i) {
        pid_t pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
            close(start[1]);
            close(report[0]);
            race_client(event, start[0], report[1]);
        }
    }
    close(start[0]);
    close(report[1]);
    char go[RACE_CLIENTS];
    memset(go, 'g', sizeof(go));
    ck_assert_int_eq(write(start[1], go, sizeof(go)), RACE_CLIENTS); /* release everyone at once */
    close(start[1]);

    FILE *reports = fdopen(report[0], "r");
    char rids[RACE_CLIENTS][40];
    int held = 0, refused = 0, other = 0, lines = 0;
    char rid[64];
    int status;
    while (fscanf(reports, "%d %63s", &status, rid) == 2) {
        ++lines;
        if (status == 201)
            snprintf(rids[held++], sizeof(rids[0]), "%s", rid);
        else if (status == 409)
            ++refused;
        else
            ++other;
    }
    fclose(reports);
    while (wait(NULL) > 0)
        ;
    ck_assert_int_eq(lines, RACE_CLIENTS);
    ck_assert_int_eq(other, 0);
    ck_assert_int_eq(held, RACE_TICKETS);
    ck_assert_int_eq(refused, RACE_CLIENTS - RACE_TICKETS);
    ck_assert_int_eq(inventory_field(event, "A", "avail"), 0);
    ck_assert_int_eq(inventory_field(event, "A", "held"), RACE_TICKETS);
    assert_invariant(event, "A", RACE_TICKETS);

    /* no reservation and no ticket twice */
    char seen_tickets[RACE_TICKETS][40];
    int nseen = 0;
    for (int i = 0; i < held; ++i) {
        for (int j = 0; j < i; ++j)
            ck_assert_str_ne(rids[i], rids[j]);
        char path[128];
        snprintf(path, sizeof(path), "/events/reservation/?reservation_id=%s", rids[i]);
        json_t *got = tk_api_call(&server, "GET", path, NULL, NULL, &status);
        json_t *tickets = json_object_get(got, "tickets");
        ck_assert_int_eq(json_array_size(tickets), 1);
        const char *ticket = json_string_value(json_object_get(json_array_get(tickets, 0), "id"));
        for (int j = 0; j < nseen; ++j)
            ck_assert_str_ne(seen_tickets[j], ticket);
        snprintf(seen_tickets[nseen++], sizeof(seen_tickets[0]), "%s", ticket);
        json_decref(got);
    }

    /* once the holds expire, every ticket is back and the invariant still holds */
    usleep((HOLD_SECONDS * 1000 + 1200) * 1000);
    ck_assert_int_eq(inventory_field(event, "A", "avail"), RACE_TICKETS);
    ck_assert_int_eq(inventory_field(event, "A", "held"), 0);
    assert_invariant(event, "A", RACE_TICKETS);
}
END_TEST

/* The Redis of an event lost the function library (a Redis restarted without its data
 * loses it with everything else; here FUNCTION FLUSH takes just the library): ticketd
 * loads it again within seconds, on a single Redis as on a cluster, and the event sells. */
START_TEST(a_redis_that_lost_the_function_library_gets_it_back)
{
    const char *event = create_event("[{\"type\": \"A\", \"price\": 5, \"amount\": 10}]");
    tk_shard_keys_t keys;
    tk_shard_keys(event, &keys);
    /* a command on the event's shard first, so the keyless ones go to its node */
    freeReplyObject(tk_test_redis_command("HGET %s nothing", keys.names[TK_KEY_INV]));
    redisReply *r = tk_test_redis_command("FUNCTION FLUSH SYNC");
    ck_assert(r != NULL && r->type == REDIS_REPLY_STATUS);
    freeReplyObject(r);
    size_t libraries = 0;
    for (int i = 0; i < 100 && libraries == 0; ++i) {
        usleep(100 * 1000);
        r = tk_test_redis_command("FUNCTION LIST LIBRARYNAME ticketd");
        libraries = r != NULL && r->type == REDIS_REPLY_ARRAY ? r->elements : 0;
        freeReplyObject(r);
    }
    ck_assert_uint_eq(libraries, 1);
    int status;
    json_decref(reserve(event, "[{\"type\": \"A\", \"amount\": 1}]", &status));
    ck_assert_int_eq(status, 201);
}
END_TEST

int main(void)
{
    Suite *suite = suite_create("reservation_http");
    TCase *tc = tcase_create("reservation");
    tcase_set_timeout(tc, 60);
    tcase_add_unchecked_fixture(tc, start_server, stop_server);
    tcase_add_test(tc, reserve_returns_201_with_the_seed_strings_and_a_signed_cookie);
    tcase_add_test(tc, read_shows_one_entry_per_ticket);
    tcase_add_test(tc, contract_errors_with_exact_strings_change_nothing);
    tcase_add_test(tc, cancel_by_cookie_body_or_query_returns_tickets_at_once);
    tcase_add_test(tc, cancel_refuses_missing_forged_and_unknown);
    tcase_add_test(tc, read_refuses_missing_malformed_and_unknown);
    tcase_add_test(tc, expired_hold_reads_cancelled_and_the_sweeper_returns_tickets_unread);
    tcase_add_test(tc, lazy_expiry_on_read_is_exact);
    tcase_add_test(tc, sold_out_answers_fast_and_recovers_after_a_cancel);
    tcase_add_test(tc, two_hundred_clients_race_for_one_hundred_tickets);
    tcase_add_test(tc, a_redis_that_lost_the_function_library_gets_it_back);
    suite_add_tcase(suite, tc);
    SRunner *runner = srunner_create(suite);
    srunner_run_all(runner, CK_NORMAL);
    int failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed != 0;
}
