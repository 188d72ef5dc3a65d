/*
 * HTTP hygiene (issue 16) over raw sockets against real ticketd processes, Redis and
 * PostgreSQL: ambiguous HTTP/1.1 framing gets 400 and a closed connection, so a request
 * smuggled behind it is never answered; paths with two readings (/%6detrics,
 * /x/../metrics) are 400 and never reach /metrics; /metrics wants its token when one is
 * set and refuses everyone in production without one; a flood of reads leaves writes
 * their budget; the request log is rate-limited and never holds tokens, cookies or
 * query strings. Floods are bounded in count; nothing passes or fails on a clock.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* memmem, strcasestr */
#endif
#include "tests/support/api.h"

#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#define ADMIN_TOKEN "tk-test-only-admin-token-0123456789abcdef"
#define METRICS_TOKEN "tk-test-only-metrics-token-0123456789abcdef"
#define METRICS_AUTH "Authorization: Bearer " METRICS_TOKEN "\r\n"
#define SECRET "tk-test-only-secret-hygiene-0123456789abcdef"
#define COOKIE_SECRET "cookie-value-that-must-not-be-logged"

static tk_test_server_t server;

static void start_server(void)
{
    const char *env[] = {"TICKETD_ADMIN_TOKEN=" ADMIN_TOKEN, "TICKETD_METRICS_TOKEN=" METRICS_TOKEN, "TICKETD_THREADS=1",
                         "TICKETD_CLIENT_MAX_HOLDS=0",       "TICKETD_CLIENT_HOLD_RATE=0",           NULL};
    ck_assert_int_eq(tk_test_server_start(&server, env, NULL), 0);
}

static void stop_server(void)
{
    tk_test_server_stop(&server);
}

/* ---- raw connections ----------------------------------------------------------------- */

static int dial(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    struct timeval tv = {.tv_sec = 20};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
    return fd;
}

static void send_all(int fd, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, data, len);
        ck_assert_int_gt(n, 0);
        data += n;
        len -= (size_t)n;
    }
}

/* Sends raw, then reads until the server closes the connection (a 20 s receive timeout
 * fails the test: the server kept it open). Returns what arrived, NUL-terminated. */
static char *exchange_until_closed(const char *raw, size_t *out_len)
{
    int fd = dial(server.port);
    send_all(fd, raw, strlen(raw));
    size_t cap = 1 << 20, len = 0;
    char *buf = malloc(cap);
    for (;;) {
        ssize_t n = read(fd, buf + len, cap - len - 1);
        ck_assert_msg(n >= 0, "the server kept the connection open (%s)", strerror(errno));
        if (n == 0)
            break;
        len += (size_t)n;
        ck_assert_uint_lt(len, cap - 1);
    }
    close(fd);
    buf[len] = '\0';
    *out_len = len;
    return buf;
}

static size_t count(const char *haystack, const char *needle)
{
    size_t n = 0;
    for (const char *p = strstr(haystack, needle); p != NULL; p = strstr(p + 1, needle))
        ++n;
    return n;
}

/* the smuggled request: were it ever read as a request, its answer would hold metrics */
#define SMUGGLED "GET /metrics HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " METRICS_TOKEN "\r\n\r\n"

static void assert_one_400_then_closed(const char *raw)
{
    size_t len;
    char *got = exchange_until_closed(raw, &len);
    ck_assert_msg(count(got, "HTTP/1.1 ") == 1, "expected one response, got %zu:\n%.600s", count(got, "HTTP/1.1 "), got);
    ck_assert_msg(strncmp(got, "HTTP/1.1 400 ", 13) == 0, "expected 400, got:\n%.600s", got);
    ck_assert_ptr_nonnull(strcasestr(got, "\r\nconnection: close\r\n"));
    ck_assert_ptr_nonnull(strstr(got, "Ambiguous request framing"));
    ck_assert_ptr_null(strstr(got, "ticketd_"));
    free(got);
}

START_TEST(content_length_with_chunked_is_400_and_closes)
{
    assert_one_400_then_closed("POST /events/event/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                               "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" SMUGGLED);
    assert_one_400_then_closed("POST /events/event/ HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                               "Content-Length: 60\r\n\r\n0\r\n\r\n" SMUGGLED);
    /* a GET is framed the same way */
    assert_one_400_then_closed("GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nTransfer-Encoding: chunked\r\n\r\n"
                               "0\r\n\r\n" SMUGGLED);
    /* behind the empty line h2o skips before a request line (CRLF after a POST body) */
    assert_one_400_then_closed("\r\nPOST /events/event/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                               "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" SMUGGLED);
}
END_TEST

START_TEST(two_different_content_lengths_are_400_and_close)
{
    assert_one_400_then_closed("POST /events/event/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                               "Content-Length: 2\r\nContent-Length: 90\r\n\r\n{}" SMUGGLED);
    assert_one_400_then_closed(
        "POST /events/event/ HTTP/1.1\r\nHost: x\r\nContent-Length: 90\r\nContent-Length: 2\r\n\r\n{}" SMUGGLED);
}
END_TEST

START_TEST(unambiguous_requests_keep_their_connection)
{
    /* the same length twice, then a pipelined request: both answered, the second closes */
    size_t len;
    char *got = exchange_until_closed("GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nContent-Length: 0\r\n\r\n"
                                      "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                                      &len);
    ck_assert_msg(count(got, "HTTP/1.1 200 ") == 2, "expected two 200s, got:\n%.600s", got);
    free(got);
}
END_TEST

START_TEST(paths_with_two_readings_never_reach_metrics)
{
    static const char *const paths[] = {"/%6detrics",      "/%6Detrics/", "/x/../metrics",    "/./metrics",
                                        "/%2e%2e/metrics", "/metrics/.",  "/admin/../metrics"};
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); ++i) {
        tk_http_response_t res;
        ck_assert_int_eq(tk_http_request(server.port, "GET", paths[i], METRICS_AUTH, NULL, 0, &res), 0);
        ck_assert_msg(res.status == 400, "%s: %d", paths[i], res.status);
        ck_assert_ptr_null(strstr(res.body, "ticketd_"));
        json_t *body = json_loadb(res.body, res.body_len, 0, NULL);
        tk_api_assert_error_shape(body);
        json_decref(body);
        tk_http_response_free(&res);
    }
    /* the canonical spelling, with and without the slash, is served */
    int status;
    json_decref(tk_api_call(&server, "GET", "/metrics/", METRICS_AUTH, NULL, &status));
    ck_assert_int_eq(status, 200);
}
END_TEST

START_TEST(metrics_wants_its_token)
{
    tk_http_response_t res;
    char buf[128];
    ck_assert_int_eq(tk_http_request(server.port, "GET", "/metrics", NULL, NULL, 0, &res), 0);
    ck_assert_int_eq(res.status, 401);
    ck_assert_ptr_nonnull(tk_http_header(&res, "www-authenticate", buf, sizeof(buf)));
    ck_assert_ptr_null(strstr(res.body, "ticketd_"));
    tk_http_response_free(&res);
    static const char *const wrong[] = {
        "Authorization: Bearer wrong\r\n",
        "Authorization: Bearer " ADMIN_TOKEN "\r\n", /* the admin token is not the metrics token */
        "Authorization: Bearer " METRICS_TOKEN "x\r\n",
        "Authorization: Basic " METRICS_TOKEN "\r\n",
        "Authorization: " METRICS_TOKEN "\r\n",
    };
    for (size_t i = 0; i < sizeof(wrong) / sizeof(wrong[0]); ++i) {
        ck_assert_int_eq(tk_http_request(server.port, "GET", "/metrics", wrong[i], NULL, 0, &res), 0);
        ck_assert_msg(res.status == 403, "%s: %d", wrong[i], res.status);
        ck_assert_ptr_null(strstr(res.body, "ticketd_"));
        tk_http_response_free(&res);
    }
    ck_assert_int_eq(tk_http_request(server.port, "GET", "/metrics", "Authorization: bearer " METRICS_TOKEN "\r\n", NULL, 0, &res),
                     0);
    ck_assert_int_eq(res.status, 200);
    ck_assert_ptr_nonnull(strstr(res.body, "ticketd_http_requests_total"));
    tk_http_response_free(&res);
}
END_TEST

START_TEST(production_without_a_token_refuses_every_scrape)
{
    tk_test_server_t prod;
    const char *env[] = {"TICKETD_ENV=production", "TICKETD_SECRET=" SECRET, "TICKETD_THREADS=1", NULL};
    ck_assert_int_eq(tk_test_server_start(&prod, env, NULL), 0);
    tk_http_response_t res;
    ck_assert_int_eq(tk_http_request(prod.port, "GET", "/metrics", NULL, NULL, 0, &res), 0);
    int without = res.status;
    tk_http_response_free(&res);
    ck_assert_int_eq(tk_http_request(prod.port, "GET", "/metrics", "Authorization: Bearer anything-at-all\r\n", NULL, 0, &res), 0);
    int with = res.status;
    int leaked = strstr(res.body, "ticketd_") != NULL;
    tk_http_response_free(&res);
    ck_assert_int_eq(tk_http_request(prod.port, "GET", "/healthz", NULL, NULL, 0, &res), 0);
    int health = res.status;
    tk_http_response_free(&res);
    tk_test_server_stop(&prod);
    ck_assert_int_eq(without, 401);
    ck_assert_int_eq(with, 403);
    ck_assert(!leaked);
    ck_assert_int_eq(health, 200);
}
END_TEST

/* ---- in-flight budgets ------------------------------------------------------------------ */

static redisContext *redis_admin(void)
{
    redisContext *c = redisConnect("127.0.0.1", tk_test_redis_port());
    ck_assert_msg(c != NULL && c->err == 0, "cannot reach the test Redis");
    return c;
}

static void redis_do(redisContext *c, const char *command)
{
    redisReply *r = redisCommand(c, command);
    ck_assert_msg(r != NULL && r->type == REDIS_REPLY_STATUS, "%s failed", command);
    freeReplyObject(r);
}

/* the status of the one response on fd, or 0 if none arrived within ms */
static int status_within(int fd, int ms)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, ms) != 1)
        return 0;
    char buf[64];
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    if (n < 12)
        return -1;
    buf[n] = '\0';
    return atoi(buf + 9);
}

#define READERS 100

START_TEST(a_flood_of_reads_leaves_writes_their_budget)
{
    tk_test_server_t s;
    const char *env[] = {"TICKETD_ADMIN_TOKEN=" ADMIN_TOKEN, "TICKETD_THREADS=1",          "TICKETD_MAX_INFLIGHT=40",
                         "TICKETD_CLIENT_MAX_HOLDS=0",       "TICKETD_CLIENT_HOLD_RATE=0", NULL};
    ck_assert_int_eq(tk_test_server_start(&s, env, NULL), 0);
    int status;
    json_t *created = tk_api_call(&s, "POST", "/admin/events", TK_JSON_HEADER "Authorization: Bearer " ADMIN_TOKEN "\r\n",
                                  "{\"name\": \"Budgets\", \"date\": \"2035-01-01T20:00:00Z\", \"ticket_types\": [{\"type\": "
                                  "\"A\", \"price\": 1, \"amount\": 100}]}",
                                  &status);
    ck_assert_int_eq(status, 201);
    char hold[256], read_req[256];
    snprintf(hold, sizeof(hold), "{\"event_id\": \"%s\", \"tickets\": [{\"type\": \"A\", \"amount\": 1}]}",
             json_string_value(json_object_get(json_object_get(created, "event"), "id")));
    json_decref(created);
    json_t *held = tk_api_call(&s, "POST", "/events/reservation/", TK_JSON_HEADER, hold, &status);
    ck_assert_int_eq(status, 201);
    snprintf(read_req, sizeof(read_req), "GET /events/reservation/?reservation_id=%s HTTP/1.1\r\nHost: x\r\n\r\n",
             json_string_value(json_object_get(held, "reservation_id")));
    json_decref(held);

    /* Redis stops answering ticketd's functions: every admitted read waits in the pipeline */
    redisContext *admin = redis_admin();
    redis_do(admin, "CLIENT PAUSE 30000 WRITE");
    int readers[READERS], refused = 0, answered = 0;
    for (int i = 0; i < READERS; ++i) {
        readers[i] = dial(s.port);
        send_all(readers[i], read_req, strlen(read_req));
    }
    /* the reads past the read budget are refused at once; wait until all but the
     * admitted ones (at most 30 of TICKETD_MAX_INFLIGHT=40) have answered */
    for (int round = 0; round < 400 && refused + answered < READERS - 30; ++round) {
        for (int i = 0; i < READERS; ++i) {
            int st = readers[i] < 0 ? 0 : status_within(readers[i], 0);
            if (st == 0)
                continue;
            refused += st == 503;
            answered += st != 503;
            close(readers[i]);
            readers[i] = -1;
        }
        usleep(50 * 1000);
    }

    /* a buyer's write now: admitted (it waits for Redis too), not refused. Nothing is
     * asserted until Redis runs again, so a failure cannot leave it paused. */
    int writer = dial(s.port);
    char write_req[512];
    int n = snprintf(write_req, sizeof(write_req),
                     "POST /events/reservation/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\n\r\n%s",
                     strlen(hold), hold);
    send_all(writer, write_req, (size_t)n);
    int early = status_within(writer, 1000);
    redis_do(admin, "CLIENT UNPAUSE");
    redisFree(admin);
    int late = early != 0 ? early : status_within(writer, 20000);
    close(writer);
    for (int i = 0; i < READERS; ++i)
        if (readers[i] >= 0)
            close(readers[i]);
    tk_test_server_stop(&s);
    ck_assert_msg(early == 0, "the write was answered %d while Redis was paused: refused instead of admitted", early);
    ck_assert_int_eq(answered, 0); /* Redis was paused: no read was served */
    ck_assert_msg(refused >= READERS - 30, "%d of %d reads refused past a read budget of 30", refused, READERS);
    ck_assert_int_eq(late, 201);
}
END_TEST

/* ---- connections ------------------------------------------------------------------------ */

START_TEST(connections_past_the_cap_wait_until_one_closes)
{
    tk_test_server_t s;
    const char *env[] = {"TICKETD_THREADS=1", "TICKETD_MAX_CONNECTIONS=4", NULL};
    ck_assert_int_eq(tk_test_server_start(&s, env, NULL), 0);
    /* the harness' health checks have closed their connections; four idle ones fill the cap */
    int idle[4];
    for (int i = 0; i < 4; ++i)
        idle[i] = dial(s.port);
    int late = dial(s.port); /* the kernel completes the handshake; ticketd does not accept it */
    const char *req = "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    send_all(late, req, strlen(req));
    static char log[65536];
    int logged = 0;
    for (int i = 0; i < 100 && !logged; ++i) {
        tk_test_server_log(&s, log, sizeof(log));
        logged = strstr(log, "TICKETD_MAX_CONNECTIONS reached") != NULL;
        if (!logged)
            usleep(50 * 1000);
    }
    int early = status_within(late, 200); /* nothing can answer it while the cap is full */
    /* two places free: enough even if a health check's connection was still closing */
    close(idle[0]);
    close(idle[1]);
    int answered = status_within(late, 8000);
    for (int i = 2; i < 4; ++i)
        close(idle[i]);
    close(late);
    tk_test_server_stop(&s);
    ck_assert_msg(logged, "no log line about the full cap");
    ck_assert_int_eq(early, 0);
    ck_assert_int_eq(answered, 200);
}
END_TEST

/* ---- the request log ---------------------------------------------------------------------- */

#define FLOOD 3000
#define FLOOD_CONNECTIONS 6

static double now_s(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

START_TEST(the_request_log_never_holds_secrets_and_is_rate_limited)
{
    /* credentials, a cookie and a query id on a request that is logged */
    tk_http_response_t res;
    ck_assert_int_eq(tk_http_request(server.port, "GET", "/secret-check?reservation_id=query-secret-0123",
                                     "Authorization: Bearer " ADMIN_TOKEN "\r\nCookie: sessionid=" COOKIE_SECRET "\r\n", NULL, 0,
                                     &res),
                     0);
    ck_assert_int_eq(res.status, 404);
    tk_http_response_free(&res);

    /* a bounded flood: FLOOD requests over keep-alive connections, pipelined */
    long long suppressed_before = tk_api_metric(&server, METRICS_AUTH, "ticketd_access_log_suppressed_total");
    ck_assert_int_ge(suppressed_before, 0);
    const char *one = "GET /flood HTTP/1.1\r\nHost: x\r\n\r\n";
    size_t one_len = strlen(one), per = FLOOD / FLOOD_CONNECTIONS;
    char *batch = malloc(one_len * per);
    for (size_t i = 0; i < per; ++i)
        memcpy(batch + i * one_len, one, one_len);
    double started = now_s();
    int fds[FLOOD_CONNECTIONS];
    for (int c = 0; c < FLOOD_CONNECTIONS; ++c) {
        fds[c] = dial(server.port);
        send_all(fds[c], batch, one_len * per);
    }
    for (int c = 0; c < FLOOD_CONNECTIONS; ++c) {
        /* read until every response is in: each 404 ends with the JSON error's closing brace */
        size_t got = 0;
        char buf[65536];
        char tail[64] = "";
        while (got < per) {
            ssize_t n = read(fds[c], buf, sizeof(buf));
            ck_assert_int_gt(n, 0);
            for (ssize_t i = 0; i < n; ++i) {
                memmove(tail, tail + 1, sizeof(tail) - 2);
                tail[sizeof(tail) - 2] = buf[i];
                if (memcmp(tail + sizeof(tail) - 14, "HTTP/1.1 404 ", 13) == 0)
                    ++got;
            }
        }
        close(fds[c]);
    }
    double took = now_s() - started;
    free(batch);
    long long suppressed = tk_api_metric(&server, METRICS_AUTH, "ticketd_access_log_suppressed_total") - suppressed_before;

    static char log[4 << 20];
    tk_test_server_log(&server, log, sizeof(log));
    size_t lines = count(log, " GET /flood ");
    /* the bucket: 400 lines at once, then 200 a second (one loop thread) */
    double bound = 400 + 200 * (took + 1.0);
    ck_assert_msg((double)lines <= bound, "%zu request lines for %d requests in %.2f s (bound %.0f)", lines, FLOOD, took, bound);
    /* every request is either logged or counted as suppressed (a connection's last one may
     * still be on its way to the logger when the scrape is answered) */
    ck_assert_msg(lines + (size_t)suppressed >= FLOOD - FLOOD_CONNECTIONS, "%zu lines + %lld suppressed for %d requests", lines,
                  suppressed, FLOOD);
    ck_assert_int_gt(suppressed, 0);

    ck_assert_ptr_nonnull(strstr(log, " GET /secret-check 404 "));
    ck_assert_ptr_null(strstr(log, ADMIN_TOKEN));
    ck_assert_ptr_null(strstr(log, METRICS_TOKEN));
    ck_assert_ptr_null(strstr(log, COOKIE_SECRET));
    ck_assert_ptr_null(strstr(log, "query-secret-0123"));
}
END_TEST

int main(void)
{
    Suite *suite = suite_create("http_hygiene");
    TCase *tc = tcase_create("hygiene");
    tcase_set_timeout(tc, 120);
    tcase_add_unchecked_fixture(tc, start_server, stop_server);
    tcase_add_test(tc, content_length_with_chunked_is_400_and_closes);
    tcase_add_test(tc, two_different_content_lengths_are_400_and_close);
    tcase_add_test(tc, unambiguous_requests_keep_their_connection);
    tcase_add_test(tc, paths_with_two_readings_never_reach_metrics);
    tcase_add_test(tc, metrics_wants_its_token);
    tcase_add_test(tc, production_without_a_token_refuses_every_scrape);
    tcase_add_test(tc, a_flood_of_reads_leaves_writes_their_budget);
    tcase_add_test(tc, connections_past_the_cap_wait_until_one_closes);
    tcase_add_test(tc, the_request_log_never_holds_secrets_and_is_rate_limited);
    suite_add_tcase(suite, tc);
    SRunner *runner = srunner_create(suite);
    srunner_run_all(runner, CK_NORMAL);
    int failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed != 0;
}
