/*
 * Integration tests of Idempotency-Key (http/idempotency.c over engine/idem.c) against a
 * real ticketd, Redis and PostgreSQL, reproducing what issue 16 found: a guessed key
 * with another body got the first client's reservation and cookie (now 422, nothing of
 * theirs); a 400 was remembered for 24 hours (now never: the corrected retry runs); a
 * key squatted with a bad request poisoned the real one (now the real one runs); a 429
 * is not remembered either. A replay carries the first answer's status, body and cookie.
 * And an HTTP/2 stream reset mid-request (which frees the request at once) no longer loses
 * the answer: a retry with the key gets the one hold that was made, never a second.
 */
#include "tests/support/api.h"

#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define ADMIN_TOKEN "tk-test-only-admin-token-0123456789abcdef"
#define AUTH "Authorization: Bearer " ADMIN_TOKEN "\r\n"
#define RES "/events/reservation/"

static tk_test_server_t server;

static void start_server(void)
{
    const char *env[] = {"TICKETD_ADMIN_TOKEN=" ADMIN_TOKEN, "TICKETD_CLIENT_MAX_HOLDS=0", "TICKETD_CLIENT_HOLD_RATE=0", NULL};
    ck_assert_int_eq(tk_test_server_start(&server, env, NULL), 0);
}

static void stop_server(void)
{
    tk_test_server_stop(&server);
}

static char *create_event(const tk_test_server_t *s, int amount)
{
    char body[256];
    snprintf(body, sizeof(body),
             "{\"name\": \"Idem\", \"date\": \"2035-01-01T20:00:00Z\", \"ticket_types\": [{\"type\": \"A\", \"price\": 10, "
             "\"amount\": %d}]}",
             amount);
    char id[37];
    tk_api_create_event(s, TK_JSON_HEADER AUTH, body, id);
    return strdup(id);
}

/* a fresh random "Idempotency-Key: ...\r\n" line with the JSON content type */
static void key_headers(char *out, size_t size)
{
    snprintf(out, size, TK_JSON_HEADER "Idempotency-Key: idem-%d-%ld-%ld\r\n", (int)getpid(), random(), random());
}

static void hold_body(char *out, size_t size, const char *event, int amount)
{
    snprintf(out, size, "{\"event_id\": \"%s\", \"tickets\": [{\"type\": \"A\", \"amount\": %d}]}", event, amount);
}

static long long held(const tk_test_server_t *s, const char *event)
{
    char path[128];
    int status;
    snprintf(path, sizeof(path), "/events/stats/?event_id=%s", event);
    json_t *res = tk_api_call(s, "GET", path, AUTH, NULL, &status);
    ck_assert_int_eq(status, 200);
    long long n = json_integer_value(json_object_get(json_object_get(res, "live"), "held"));
    json_decref(res);
    return n;
}

/* POST with headers and body; the response in *res (caller frees) */
static void post(const tk_test_server_t *s, const char *headers, const char *body, tk_http_response_t *res)
{
    ck_assert_int_eq(tk_http_request(s->port, "POST", RES, headers, body, strlen(body), res), 0);
}

static char *reservation_id_of(const tk_http_response_t *res)
{
    json_t *json = json_loadb(res->body, res->body_len, 0, NULL);
    const char *rid = json_string_value(json_object_get(json, "reservation_id"));
    char *copy = rid != NULL ? strdup(rid) : NULL;
    json_decref(json);
    return copy;
}

START_TEST(a_replay_is_the_first_answer_with_its_cookie)
{
    char *event = create_event(&server, 10), headers[256], body[256], cookie[256], again_cookie[256], flag[16];
    key_headers(headers, sizeof(headers));
    hold_body(body, sizeof(body), event, 2);
    tk_http_response_t first, again;
    post(&server, headers, body, &first);
    ck_assert_int_eq(first.status, 201);
    ck_assert_ptr_nonnull(tk_http_header(&first, "set-cookie", cookie, sizeof(cookie)));
    ck_assert_ptr_null(tk_http_header(&first, "idempotent-replayed", flag, sizeof(flag)));
    post(&server, headers, body, &again);
    ck_assert_int_eq(again.status, 201);
    ck_assert_str_eq(again.body, first.body);
    ck_assert_ptr_nonnull(tk_http_header(&again, "set-cookie", again_cookie, sizeof(again_cookie)));
    ck_assert_str_eq(again_cookie, cookie);
    ck_assert_ptr_nonnull(tk_http_header(&again, "idempotent-replayed", flag, sizeof(flag)));
    ck_assert_int_eq(held(&server, event), 2);
    tk_http_response_free(&first);
    tk_http_response_free(&again);
    free(event);
}
END_TEST

START_TEST(a_guessed_key_with_another_body_gets_422_and_nothing_of_the_first)
{
    char *event = create_event(&server, 10), headers[256], body[256], other[256], value[256];
    key_headers(headers, sizeof(headers));
    hold_body(body, sizeof(body), event, 1);
    tk_http_response_t victim, attacker;
    post(&server, headers, body, &victim);
    ck_assert_int_eq(victim.status, 201);
    char *rid = reservation_id_of(&victim);
    /* the attacker knows (guessed) the key, not the body */
    hold_body(other, sizeof(other), event, 5);
    post(&server, headers, other, &attacker);
    ck_assert_int_eq(attacker.status, 422);
    ck_assert_ptr_null(strstr(attacker.body, rid));
    ck_assert_ptr_null(tk_http_header(&attacker, "set-cookie", value, sizeof(value)));
    json_t *json = json_loadb(attacker.body, attacker.body_len, 0, NULL);
    ck_assert_str_eq(json_string_value(json_object_get(json, "error")), "Idempotency-Key reused");
    ck_assert_str_eq(json_string_value(json_object_get(json, "message")),
                     "This Idempotency-Key was already used for a different request");
    json_decref(json);
    ck_assert_int_eq(held(&server, event), 1);
    /* the same body with whitespace changed is another body too: the bytes are the request */
    char spaced[300];
    snprintf(spaced, sizeof(spaced), " %s", body);
    tk_http_response_free(&attacker);
    post(&server, headers, spaced, &attacker);
    ck_assert_int_eq(attacker.status, 422);
    tk_http_response_free(&victim);
    tk_http_response_free(&attacker);
    free(rid);
    free(event);
}
END_TEST

START_TEST(malformed_requests_are_not_remembered)
{
    char *event = create_event(&server, 10), headers[256], body[256], flag[16];
    key_headers(headers, sizeof(headers));
    tk_http_response_t res;
    /* 400 for amount 0, twice (the second runs again: nothing was kept), then the fix runs */
    hold_body(body, sizeof(body), event, 0);
    for (int i = 0; i < 2; ++i) {
        post(&server, headers, body, &res);
        ck_assert_int_eq(res.status, 400);
        ck_assert_ptr_null(tk_http_header(&res, "idempotent-replayed", flag, sizeof(flag)));
        tk_http_response_free(&res);
    }
    post(&server, headers, "{\"event_id\": ", &res); /* bad JSON */
    ck_assert_int_eq(res.status, 400);
    tk_http_response_free(&res);
    char text[300];
    snprintf(text, sizeof(text), "Content-Type: text/plain\r\n%s", strstr(headers, "Idempotency-Key"));
    hold_body(body, sizeof(body), event, 1);
    post(&server, text, body, &res); /* 415 */
    ck_assert_int_eq(res.status, 415);
    tk_http_response_free(&res);
    post(&server, headers, body, &res);
    ck_assert_int_eq(res.status, 201);
    ck_assert_ptr_null(tk_http_header(&res, "idempotent-replayed", flag, sizeof(flag)));
    tk_http_response_free(&res);
    ck_assert_int_eq(held(&server, event), 1);
    free(event);
}
END_TEST

START_TEST(a_key_squatted_with_a_bad_request_is_not_poisoned)
{
    char *event = create_event(&server, 10), headers[256], body[256], bad[256];
    key_headers(headers, sizeof(headers));
    tk_http_response_t res;
    /* the squatter sends the victim's key first, with requests that are refused as malformed */
    hold_body(bad, sizeof(bad), event, 99);
    post(&server, headers, bad, &res);
    ck_assert_int_eq(res.status, 400);
    tk_http_response_free(&res);
    post(&server, headers, "{\"tickets\": []}", &res);
    ck_assert_int_eq(res.status, 400);
    tk_http_response_free(&res);
    /* the victim's request runs as if the key were new */
    hold_body(body, sizeof(body), event, 3);
    post(&server, headers, body, &res);
    ck_assert_int_eq(res.status, 201);
    char *rid = reservation_id_of(&res);
    ck_assert_ptr_nonnull(rid);
    tk_http_response_free(&res);
    ck_assert_int_eq(held(&server, event), 3);
    /* and the squatter, coming back, learns nothing of it */
    post(&server, headers, bad, &res);
    ck_assert_int_eq(res.status, 422);
    ck_assert_ptr_null(strstr(res.body, rid));
    tk_http_response_free(&res);
    free(rid);
    free(event);
}
END_TEST

/* ---- fair use: a 429 is not remembered ---- */

static tk_test_server_t limited;

static void start_limited(void)
{
    const char *env[] = {"TICKETD_ADMIN_TOKEN=" ADMIN_TOKEN, "TICKETD_CLIENT_MAX_HOLDS=1", "TICKETD_CLIENT_HOLD_RATE=0", NULL};
    ck_assert_int_eq(tk_test_server_start(&limited, env, NULL), 0);
}

static void stop_limited(void)
{
    tk_test_server_stop(&limited);
}

START_TEST(a_429_is_not_remembered)
{
    char *event = create_event(&limited, 10), headers[256], body[256], path[128];
    hold_body(body, sizeof(body), event, 1);
    tk_http_response_t res;
    post(&limited, TK_JSON_HEADER, body, &res);
    ck_assert_int_eq(res.status, 201);
    char *first = reservation_id_of(&res);
    tk_http_response_free(&res);
    /* over the one live hold this client may have */
    key_headers(headers, sizeof(headers));
    post(&limited, headers, body, &res);
    ck_assert_int_eq(res.status, 429);
    tk_http_response_free(&res);
    /* the first hold cancelled, the same key and body are served */
    int status;
    snprintf(path, sizeof(path), RES "?reservation_id=%s", first);
    json_decref(tk_api_call(&limited, "DELETE", path, NULL, NULL, &status));
    ck_assert_int_eq(status, 200);
    post(&limited, headers, body, &res);
    ck_assert_int_eq(res.status, 201);
    tk_http_response_free(&res);
    ck_assert_int_eq(held(&limited, event), 1);
    free(first);
    free(event);
}
END_TEST

/* ---- HTTP/2: a stream reset while the hold is being made ---- */

static tk_test_server_t h2;

static void start_h2(void)
{
    const char *env[] = {"TICKETD_ADMIN_TOKEN=" ADMIN_TOKEN, "TICKETD_HTTP2=1", "TICKETD_CLIENT_MAX_HOLDS=0",
                         "TICKETD_CLIENT_HOLD_RATE=0", NULL};
    ck_assert_int_eq(tk_test_server_start(&h2, env, NULL), 0);
}

static void stop_h2(void)
{
    tk_test_server_stop(&h2);
}

static size_t frame(unsigned char *p, size_t len, int type, int flags, unsigned stream)
{
    unsigned char head[9] = {(unsigned char)(len >> 16),    (unsigned char)(len >> 8),    (unsigned char)len,
                             (unsigned char)type,           (unsigned char)flags,         (unsigned char)(stream >> 24),
                             (unsigned char)(stream >> 16), (unsigned char)(stream >> 8), (unsigned char)stream};
    memcpy(p, head, 9);
    return 9;
}

/* an HPACK "literal without indexing, new name" field (names and values under 127 bytes) */
static size_t field(unsigned char *p, const char *name, const char *value)
{
    size_t n = strlen(name), v = strlen(value), k = 0;
    p[k++] = 0x00;
    p[k++] = (unsigned char)n;
    memcpy(p + k, name, n), k += n;
    p[k++] = (unsigned char)v;
    memcpy(p + k, value, v), k += v;
    return k;
}

/* Sends the hold as HTTP/2 stream 1 (prior knowledge), waits delay_us, resets the stream
 * and closes the connection without reading an answer. */
static void post_and_reset_h2(int port, const char *key, const char *body, long delay_us)
{
    unsigned char buf[2048], block[1024];
    size_t n = 0, b = 0;
    char length[16];
    snprintf(length, sizeof(length), "%zu", strlen(body));
    b += field(block + b, ":method", "POST");
    b += field(block + b, ":scheme", "http");
    b += field(block + b, ":path", RES);
    b += field(block + b, ":authority", "127.0.0.1");
    b += field(block + b, "content-type", "application/json");
    b += field(block + b, "content-length", length);
    b += field(block + b, "idempotency-key", key);
    static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    memcpy(buf, preface, sizeof(preface) - 1), n += sizeof(preface) - 1;
    n += frame(buf + n, 0, 0x4, 0, 0);   /* SETTINGS */
    n += frame(buf + n, b, 0x1, 0x4, 1); /* HEADERS, END_HEADERS */
    memcpy(buf + n, block, b), n += b;
    n += frame(buf + n, strlen(body), 0x0, 0x1, 1); /* DATA, END_STREAM */
    memcpy(buf + n, body, strlen(body)), n += strlen(body);

    int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    ck_assert_int_eq(write(fd, buf, n), (ssize_t)n);
    struct timespec ts = {0, delay_us * 1000};
    nanosleep(&ts, NULL);
    unsigned char rst[13];
    frame(rst, 4, 0x3, 0, 1); /* RST_STREAM CANCEL */
    rst[9] = rst[10] = rst[11] = 0, rst[12] = 0x8;
    ck_assert_int_eq(write(fd, rst, sizeof(rst)), (ssize_t)sizeof(rst));
    close(fd);
}

START_TEST(a_stream_reset_mid_hold_loses_no_answer)
{
    enum { ROUNDS = 24 };
    char *event = create_event(&h2, 100), body[256];
    hold_body(body, sizeof(body), event, 1);
    for (int i = 0; i < ROUNDS; ++i) {
        char key[64], headers[160];
        snprintf(key, sizeof(key), "reset-%d-%ld-%d", (int)getpid(), random(), i);
        /* the reset lands anywhere from before the claim to after the answer */
        post_and_reset_h2(h2.port, key, body, 100L * i);
        snprintf(headers, sizeof(headers), TK_JSON_HEADER "Idempotency-Key: %s\r\n", key);
        /* the retry: served once the first is settled (409 while it still runs) */
        tk_http_response_t res;
        int status = 409;
        for (int tries = 0; tries < 500 && status == 409; ++tries) {
            post(&h2, headers, body, &res);
            status = res.status;
            tk_http_response_free(&res);
            if (status == 409) {
                struct timespec ts = {0, 10 * 1000 * 1000};
                nanosleep(&ts, NULL);
            }
        }
        ck_assert_int_eq(status, 201);
        /* one key, one hold: the reset request's hold was either never made or is the one replayed */
        ck_assert_int_eq(held(&h2, event), i + 1);
    }
    free(event);
}
END_TEST

int main(void)
{
    srandom((unsigned)getpid());
    Suite *suite = suite_create("idempotency_http");
    TCase *tc = tcase_create("idempotency");
    tcase_set_timeout(tc, 60);
    tcase_add_unchecked_fixture(tc, start_server, stop_server);
    tcase_add_test(tc, a_replay_is_the_first_answer_with_its_cookie);
    tcase_add_test(tc, a_guessed_key_with_another_body_gets_422_and_nothing_of_the_first);
    tcase_add_test(tc, malformed_requests_are_not_remembered);
    tcase_add_test(tc, a_key_squatted_with_a_bad_request_is_not_poisoned);
    suite_add_tcase(suite, tc);
    TCase *fair = tcase_create("fair_use");
    tcase_set_timeout(fair, 60);
    tcase_add_unchecked_fixture(fair, start_limited, stop_limited);
    tcase_add_test(fair, a_429_is_not_remembered);
    suite_add_tcase(suite, fair);
    TCase *reset = tcase_create("http2_reset");
    tcase_set_timeout(reset, 120);
    tcase_add_unchecked_fixture(reset, start_h2, stop_h2);
    tcase_add_test(reset, a_stream_reset_mid_hold_loses_no_answer);
    suite_add_tcase(suite, reset);
    SRunner *runner = srunner_create(suite);
    srunner_run_all(runner, CK_NORMAL);
    int failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed != 0;
}
