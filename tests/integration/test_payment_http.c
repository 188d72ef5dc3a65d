/*
 * Integration tests of the payment routes against a real ticketd, Redis and
 * PostgreSQL: every card outcome, retry after a decline, a double PUT charging once, a
 * PUT after expiry, DELETE during a payment, Idempotency-Key replays, transaction
 * status from Redis and from PostgreSQL, the admin statistics, and a payment whose
 * tk_pay_start reply is lost (ticketd's Redis link through tests/support/forwarder.h).
 */
#include "engine/inventory.h"
#include "tests/support/api.h"
#include "tests/support/forwarder.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ADMIN_TOKEN "tk-test-only-admin-token-0123456789abcdef"
#define AUTH "Authorization: Bearer " ADMIN_TOKEN "\r\n"
#define LATENCY_MS 300

static tk_test_server_t server;

static void start_server(void)
{
    const char *env[] = {"TICKETD_ADMIN_TOKEN=" ADMIN_TOKEN, "TICKETD_HOLD_SECONDS=2", "TICKETD_PAYMENT_LATENCY_MS=300", NULL};
    ck_assert_int_eq(tk_test_server_start(&server, env, NULL), 0);
}

static void stop_server(void)
{
    tk_test_server_stop(&server);
}

static char *create_event(int amount)
{
    char body[512];
    snprintf(body, sizeof(body),
             "{\"name\": \"Pay\", \"date\": \"2035-01-01T20:00:00Z\", \"ticket_types\": [{\"type\": \"A\", \"price\": 12.5, "
             "\"amount\": %d}, {\"type\": \"B\", \"price\": 100, \"amount\": %d}]}",
             amount, amount);
    char id[37];
    tk_api_create_event(&server, TK_JSON_HEADER AUTH, body, id);
    return strdup(id);
}

static char *reserve(const char *event, const char *tickets, const char *extra_headers)
{
    char body[512], headers[512];
    int status;
    snprintf(body, sizeof(body), "{\"event_id\": \"%s\", \"tickets\": %s}", event, tickets);
    snprintf(headers, sizeof(headers), TK_JSON_HEADER "%s", extra_headers != NULL ? extra_headers : "");
    json_t *res = tk_api_call(&server, "POST", "/events/reservation/", headers, body, &status);
    ck_assert_int_eq(status, 201);
    char *rid = strdup(json_string_value(json_object_get(res, "reservation_id")));
    json_decref(res);
    return rid;
}

/* PUT with the card (NULL: none); returns the transaction id (caller frees) or NULL, and the status */
static char *pay(const char *rid, const char *card, const char *extra_headers, int *status)
{
    char body[256], headers[512];
    if (card != NULL)
        snprintf(body, sizeof(body), "{\"reservation_id\": \"%s\", \"card\": \"%s\"}", rid, card);
    else
        snprintf(body, sizeof(body), "{\"reservation_id\": \"%s\"}", rid);
    snprintf(headers, sizeof(headers), TK_JSON_HEADER "%s", extra_headers != NULL ? extra_headers : "");
    json_t *res = tk_api_call(&server, "PUT", "/events/reservation/", headers, body, status);
    char *txn = NULL;
    if (*status == 202) {
        ck_assert_str_eq(json_string_value(json_object_get(res, "ok")), "Transaction started");
        ck_assert_str_eq(json_string_value(json_object_get(res, "message")),
                         "Transaction started successfully. Now wait for payment confirmation");
        ck_assert_str_eq(json_string_value(json_object_get(res, "reservation_id")), rid);
        txn = strdup(json_string_value(json_object_get(res, "transaction_id")));
    }
    json_decref(res);
    return txn;
}

/* polls GET /transactions/list/ until the status is not PENDING (or 3 s); returns it, error into err */
static const char *await_transaction(const char *txn, char *err, size_t errsize)
{
    static char status_text[32];
    char path[128];
    snprintf(path, sizeof(path), "/transactions/list/?transaction_id=%s", txn);
    for (int i = 0; i < 60; ++i) {
        int status;
        json_t *res = tk_api_call(&server, "GET", path, NULL, NULL, &status);
        ck_assert_int_eq(status, 200);
        snprintf(status_text, sizeof(status_text), "%s", json_string_value(json_object_get(res, "status")));
        json_t *e = json_object_get(res, "transaction_error");
        snprintf(err, errsize, "%s", json_is_string(e) ? json_string_value(e) : "(null)");
        json_decref(res);
        if (strcmp(status_text, "PENDING") != 0)
            return status_text;
        usleep(50 * 1000);
    }
    return status_text;
}

static const char *reservation_status(const char *rid)
{
    static char text[32];
    char path[128];
    int status;
    snprintf(path, sizeof(path), "/events/reservation/?reservation_id=%s", rid);
    json_t *res = tk_api_call(&server, "GET", path, NULL, NULL, &status);
    ck_assert_int_eq(status, 200);
    snprintf(text, sizeof(text), "%s", json_string_value(json_object_get(json_object_get(res, "reservation"), "status")));
    json_decref(res);
    return text;
}

static json_t *stats(const char *event)
{
    char path[128];
    int status;
    snprintf(path, sizeof(path), "/events/stats/?event_id=%s", event);
    json_t *res = tk_api_call(&server, "GET", path, AUTH, NULL, &status);
    ck_assert_int_eq(status, 200);
    return res;
}

static json_int_t live(json_t *s, const char *field)
{
    return json_integer_value(json_object_get(json_object_get(s, "live"), field));
}

START_TEST(default_card_completes_and_sells_the_tickets)
{
    char *event = create_event(10), err[128];
    char *rid = reserve(event, "[{\"type\": \"A\", \"amount\": 2}, {\"type\": \"B\", \"amount\": 1}]", NULL);
    int status;
    char *txn = pay(rid, NULL, NULL, &status);
    ck_assert_int_eq(status, 202);
    ck_assert_msg(strncmp(txn, rid, 4) == 0, "the transaction id does not carry the shard");
    ck_assert_str_eq(reservation_status(rid), "PENDING"); /* in flight reads as PENDING */
    ck_assert_str_eq(await_transaction(txn, err, sizeof(err)), "COMPLETED");
    ck_assert_str_eq(err, "(null)");
    ck_assert_str_eq(reservation_status(rid), "COMPLETED");
    json_t *s = stats(event);
    ck_assert_int_eq(live(s, "sold"), 3);
    ck_assert_int_eq(live(s, "held"), 0);
    ck_assert_int_eq(live(s, "available"), 17);
    ck_assert(json_real_value(json_object_get(json_object_get(s, "live"), "revenue")) == 125.0);
    ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(s, "ticket_counters"), "all_tickets_sold")), 3);
    ck_assert_int_eq(
        json_integer_value(json_object_get(json_object_get(json_object_get(s, "ticket_counters"), "ticket_types"), "A")), 2);
    json_decref(s);
    /* a paid reservation can be neither paid again nor cancelled */
    free(pay(rid, NULL, NULL, &status));
    ck_assert_int_eq(status, 409);
    char body[128];
    snprintf(body, sizeof(body), "{\"reservation_id\": \"%s\"}", rid);
    json_decref(tk_api_call(&server, "DELETE", "/events/reservation/", TK_JSON_HEADER, body, &status));
    ck_assert_int_eq(status, 409);
    free(txn);
    free(rid);
    free(event);
}
END_TEST

START_TEST(declined_and_failing_cards_leave_the_hold_pending_for_a_retry)
{
    char *event = create_event(10), err[128];
    char *rid = reserve(event, "[{\"type\": \"A\", \"amount\": 1}]", NULL);
    int status;
    char *declined = pay(rid, "4000000000000002", NULL, &status);
    ck_assert_str_eq(await_transaction(declined, err, sizeof(err)), "ERROR");
    ck_assert_str_eq(err, "Your card has been declined");
    ck_assert_str_eq(reservation_status(rid), "PENDING");
    char *failed = pay(rid, "4000000000000119", NULL, &status);
    ck_assert_str_ne(failed, declined);
    ck_assert_str_eq(await_transaction(failed, err, sizeof(err)), "ERROR");
    ck_assert_str_eq(err, "Something went wrong with your transaction");
    char *retried = pay(rid, "5555555555554444", NULL, &status); /* any other number succeeds */
    ck_assert_str_eq(await_transaction(retried, err, sizeof(err)), "COMPLETED");
    ck_assert_str_eq(reservation_status(rid), "COMPLETED");
    json_t *s = stats(event);
    ck_assert_int_eq(live(s, "sold"), 1);
    json_decref(s);
    free(declined);
    free(failed);
    free(retried);
    free(rid);
    free(event);
}
END_TEST

START_TEST(double_put_returns_the_same_transaction_and_charges_once)
{
    char *event = create_event(10), err[128];
    char *rid = reserve(event, "[{\"type\": \"B\", \"amount\": 2}]", NULL);
    int status;
    char *first = pay(rid, NULL, NULL, &status);
    char *second = pay(rid, "4000000000000002", NULL, &status); /* while the first is in flight */
    ck_assert_int_eq(status, 202);
    ck_assert_str_eq(first, second);
    ck_assert_str_eq(await_transaction(first, err, sizeof(err)), "COMPLETED");
    json_t *s = stats(event);
    ck_assert_int_eq(live(s, "sold"), 2);
    ck_assert(json_real_value(json_object_get(json_object_get(s, "live"), "revenue")) == 200.0);
    json_decref(s);
    free(first);
    free(second);
    free(rid);
    free(event);
}
END_TEST

START_TEST(delete_during_payment_is_409)
{
    char *event = create_event(10), err[128], body[128];
    char *rid = reserve(event, "[{\"type\": \"A\", \"amount\": 1}]", NULL);
    int status;
    char *txn = pay(rid, NULL, NULL, &status);
    snprintf(body, sizeof(body), "{\"reservation_id\": \"%s\"}", rid);
    json_t *res = tk_api_call(&server, "DELETE", "/events/reservation/", TK_JSON_HEADER, body, &status);
    ck_assert_int_eq(status, 409);
    tk_api_assert_error_shape(res);
    json_decref(res);
    ck_assert_str_eq(await_transaction(txn, err, sizeof(err)), "COMPLETED");
    free(txn);
    free(rid);
    free(event);
}
END_TEST

START_TEST(put_after_expiry_or_cancel_is_409_and_unknown_is_404)
{
    char *event = create_event(10), body[128];
    char *expiring = reserve(event, "[{\"type\": \"A\", \"amount\": 1}]", NULL);
    char *cancelled = reserve(event, "[{\"type\": \"A\", \"amount\": 1}]", NULL);
    int status;
    snprintf(body, sizeof(body), "{\"reservation_id\": \"%s\"}", cancelled);
    json_decref(tk_api_call(&server, "DELETE", "/events/reservation/", TK_JSON_HEADER, body, &status));
    ck_assert_int_eq(status, 200);
    json_t *res = tk_api_call(&server, "PUT", "/events/reservation/", TK_JSON_HEADER, body, &status);
    ck_assert_int_eq(status, 409);
    ck_assert_str_eq(json_string_value(json_object_get(res, "error")), "Reservation status is different than PENDING");
    ck_assert_str_eq(json_string_value(json_object_get(res, "message")),
                     "Status of this reservation does not allow to process a payment for it");
    json_decref(res);
    usleep(2100 * 1000);
    free(pay(expiring, NULL, NULL, &status));
    ck_assert_int_eq(status, 409);
    ck_assert_str_eq(reservation_status(expiring), "CANCELLED");
    char unknown[64];
    snprintf(unknown, sizeof(unknown), "%.4s0000-0000-4000-8000-000000000000", event);
    free(pay(unknown, NULL, NULL, &status));
    ck_assert_int_eq(status, 404);
    free(expiring);
    free(cancelled);
    free(event);
}
END_TEST

START_TEST(malformed_payments_are_400)
{
    static const char *const bodies[] = {"{}",
                                         "{\"reservation_id\": 5}",
                                         "{\"reservation_id\": \"nope\"}",
                                         "{\"reservation_id\": \"abcd0000-0000-4000-8000-000000000000\", \"card\": 4242}",
                                         "{\"reservation_id\": \"abcd0000-0000-4000-8000-000000000000\", \"card\": \"42x2\"}",
                                         "not json",
                                         NULL};
    for (size_t i = 0; bodies[i] != NULL; ++i) {
        int status;
        json_t *res = tk_api_call(&server, "PUT", "/events/reservation/", TK_JSON_HEADER, bodies[i], &status);
        ck_assert_msg(status == 400, "%s: status %d", bodies[i], status);
        tk_api_assert_error_shape(res);
        json_decref(res);
    }
    int status;
    json_decref(tk_api_call(&server, "GET", "/transactions/list/", NULL, NULL, &status));
    ck_assert_int_eq(status, 400);
    json_decref(tk_api_call(&server, "GET", "/transactions/list/?transaction_id=12", NULL, NULL, &status));
    ck_assert_int_eq(status, 400);
    json_decref(tk_api_call(&server, "GET", "/transactions/list/?transaction_id=abcd0000-0000-4000-8000-000000000000", NULL, NULL,
                            &status));
    ck_assert_int_eq(status, 404);
}
END_TEST

START_TEST(idempotency_key_replays_the_first_answer)
{
    char *event = create_event(10), err[128];
    char key[96], headers[160];
    int status;
    snprintf(key, sizeof(key), "tk-test-%d-%ld", (int)getpid(), random());
    snprintf(headers, sizeof(headers), "Idempotency-Key: %s\r\n", key);
    char *first = reserve(event, "[{\"type\": \"A\", \"amount\": 2}]", headers);
    /* the same key and body: the first answer again, no second hold */
    char *again = reserve(event, "[{\"type\": \"A\", \"amount\": 2}]", headers);
    ck_assert_str_eq(first, again);
    /* the same key with another body: 422, and nothing of the first answer (API.md "Idempotency") */
    char other_body[256], other_headers[256];
    snprintf(other_body, sizeof(other_body), "{\"event_id\": \"%s\", \"tickets\": [{\"type\": \"B\", \"amount\": 5}]}", event);
    snprintf(other_headers, sizeof(other_headers), TK_JSON_HEADER "%s", headers);
    json_t *refused = tk_api_call(&server, "POST", "/events/reservation/", other_headers, other_body, &status);
    ck_assert_int_eq(status, 422);
    ck_assert_str_eq(json_string_value(json_object_get(refused, "error")), "Idempotency-Key reused");
    ck_assert_ptr_null(json_object_get(refused, "reservation_id"));
    json_decref(refused);
    json_t *s = stats(event);
    ck_assert_int_eq(live(s, "held"), 2);
    json_decref(s);
    /* a different key is a new request */
    char another[160];
    snprintf(another, sizeof(another), "Idempotency-Key: %s-another\r\n", key);
    char *other = reserve(event, "[{\"type\": \"A\", \"amount\": 1}]", another);
    ck_assert_str_ne(first, other);

    /* PUT with a key: one charge, the same transaction */
    char *txn = pay(first, NULL, headers, &status); /* same key, other path+method: independent */
    ck_assert_int_eq(status, 202);
    char *txn_again = pay(first, NULL, headers, &status);
    ck_assert_str_eq(txn, txn_again);
    ck_assert_str_eq(await_transaction(txn, err, sizeof(err)), "COMPLETED");
    char *after = pay(first, NULL, headers, &status); /* replayed: still 202 with the same transaction */
    ck_assert_int_eq(status, 202);
    ck_assert_str_eq(after, txn);

    char long_key[300] = "Idempotency-Key: ";
    memset(long_key + strlen(long_key), 'k', 256);
    strcat(long_key, "\r\n");
    char body[256];
    snprintf(body, sizeof(body), "{\"event_id\": \"%s\", \"tickets\": [{\"type\": \"A\", \"amount\": 1}]}", event);
    char h[400];
    snprintf(h, sizeof(h), TK_JSON_HEADER "%s", long_key);
    json_decref(tk_api_call(&server, "POST", "/events/reservation/", h, body, &status));
    ck_assert_int_eq(status, 400);
    free(first);
    free(again);
    free(other);
    free(txn);
    free(txn_again);
    free(after);
    free(event);
}
END_TEST

START_TEST(stats_need_the_admin_token_and_a_known_event)
{
    char *event = create_event(3), path[128];
    int status;
    snprintf(path, sizeof(path), "/events/stats/?event_id=%s", event);
    json_decref(tk_api_call(&server, "GET", path, NULL, NULL, &status));
    ck_assert_int_eq(status, 401);
    json_decref(tk_api_call(&server, "GET", path, "Authorization: Bearer nope\r\n", NULL, &status));
    ck_assert_int_eq(status, 403);
    json_decref(tk_api_call(&server, "GET", "/events/stats/?event_id=abcd0000-0000-4000-8000-000000000000", AUTH, NULL, &status));
    ck_assert_int_eq(status, 404);
    json_t *s = stats(event);
    ck_assert_int_eq(live(s, "capacity"), 6);
    ck_assert_int_eq(live(s, "available"), 6);
    json_t *types = json_object_get(json_object_get(s, "live"), "ticket_types");
    ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(types, "A"), "capacity")), 3);
    ck_assert(json_is_integer(json_object_get(json_object_get(s, "live"), "persistence_lag_ms")));
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(s, "event"), "id")), event);
    json_decref(s);
    free(event);
}
END_TEST

/* ---- a lost tk_pay_start reply ------------------------------------------------------------ */

/* tk_pay_start named in an FCALL (RESP), not in the library's source that FUNCTION LOAD sends */
#define PAY_START_CALL "$12\r\ntk_pay_start\r\n"

static tk_test_forwarder_t forwarder;

static void start_lossy_server(void)
{
    if (tk_test_redis_cluster() != NULL)
        return; /* one forwarded node is no cluster: the loss is a single Redis's here */
    tk_test_forwarder_start(&forwarder, "127.0.0.1", tk_test_redis_port(), PAY_START_CALL);
    char url[128];
    snprintf(url, sizeof(url), "TICKETD_REDIS_URL=redis://127.0.0.1:%d/0", forwarder.port);
    const char *env[] = {"TICKETD_ADMIN_TOKEN=" ADMIN_TOKEN, "TICKETD_PAYMENT_LATENCY_MS=300", url, NULL};
    ck_assert_int_eq(tk_test_server_start(&server, env, NULL), 0);
}

static void stop_lossy_server(void)
{
    if (tk_test_redis_cluster() != NULL)
        return;
    tk_test_server_stop(&server);
    tk_test_forwarder_stop(&forwarder);
}

/* The link drops after tk_pay_start ran: the reservation is PAYING with the new transaction
 * and ticketd never heard. It sends the same call again and learns that the charge is its
 * own: the PUT answers 202 and the card is charged once, rather than a 503 and a payment
 * nobody charges until the gateway timeout fails it. */
START_TEST(a_lost_pay_start_reply_is_asked_again_and_charged_once)
{
    if (tk_test_redis_cluster() != NULL)
        return;
    char *event = create_event(10), err[128], log[65536];
    char *rid = reserve(event, "[{\"type\": \"B\", \"amount\": 2}]", NULL);
    int status;
    ck_assert(!tk_test_forwarder_cut(&forwarder));
    char *txn = pay(rid, NULL, NULL, &status);
    ck_assert_msg(tk_test_forwarder_cut(&forwarder), "the tk_pay_start reply was not lost");
    ck_assert_int_eq(status, 202);
    ck_assert_str_eq(await_transaction(txn, err, sizeof(err)), "COMPLETED");
    ck_assert_str_eq(err, "(null)");
    ck_assert_str_eq(reservation_status(rid), "COMPLETED");
    json_t *s = stats(event);
    ck_assert_int_eq(live(s, "sold"), 2);
    ck_assert(json_real_value(json_object_get(json_object_get(s, "live"), "revenue")) == 200.0);
    json_decref(s);
    ck_assert_int_eq(tk_api_metric(&server, NULL, "ticketd_holds_completed_total"), 1);
    ck_assert_int_eq(tk_api_metric(&server, NULL, "ticketd_payments_failed_total"), 0);
    /* a second charge of the transaction would have found it settled */
    tk_test_server_log(&server, log, sizeof(log));
    ck_assert_ptr_null(strstr(log, "already settled"));
    free(txn);
    free(rid);
    free(event);
}
END_TEST

int main(void)
{
    srandom((unsigned)getpid());
    Suite *suite = suite_create("payment_http");
    TCase *tc = tcase_create("payment");
    tcase_set_timeout(tc, 60);
    tcase_add_unchecked_fixture(tc, start_server, stop_server);
    tcase_add_test(tc, default_card_completes_and_sells_the_tickets);
    tcase_add_test(tc, declined_and_failing_cards_leave_the_hold_pending_for_a_retry);
    tcase_add_test(tc, double_put_returns_the_same_transaction_and_charges_once);
    tcase_add_test(tc, delete_during_payment_is_409);
    tcase_add_test(tc, put_after_expiry_or_cancel_is_409_and_unknown_is_404);
    tcase_add_test(tc, malformed_payments_are_400);
    tcase_add_test(tc, idempotency_key_replays_the_first_answer);
    tcase_add_test(tc, stats_need_the_admin_token_and_a_known_event);
    suite_add_tcase(suite, tc);
    tc = tcase_create("lost_reply");
    tcase_set_timeout(tc, 60);
    tcase_add_unchecked_fixture(tc, start_lossy_server, stop_lossy_server);
    tcase_add_test(tc, a_lost_pay_start_reply_is_asked_again_and_charged_once);
    suite_add_tcase(suite, tc);
    SRunner *runner = srunner_create(suite);
    srunner_run_all(runner, CK_NORMAL);
    int failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed != 0;
}
