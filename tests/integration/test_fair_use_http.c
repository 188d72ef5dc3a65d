/*
 * Fair use and backpressure (API.md "Fair use", issue 16) against real ticketd
 * processes, Redis and PostgreSQL: one keep-alive connection cannot hold more than
 * TICKETD_CLIENT_MAX_HOLDS and a cancellation frees a place; the hold rate allows bursts
 * of twice the rate; two processes sharing the secret share the limits; X-Forwarded-For
 * is ignored from untrusted peers and believed from a trusted proxy; with PostgreSQL
 * stopped, a backlog over TICKETD_OUTBOX_PAUSE pauses that event's shard only while the
 * outbox gauge tells the truth; Redis at maxmemory makes writes 503, not 500, and still
 * drains its outbox once PostgreSQL returns.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* memmem, strcasestr */
#endif
#include "tests/support/api.h"

#include <arpa/inet.h>
#include <check.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define ADMIN_TOKEN "tk-test-only-admin-token-0123456789abcdef"
#define SECRET "tk-test-only-secret-fair-use-0123456789abcdef"
#define TOO_MANY                                                                                                                   \
    "{\"error\":\"Too many holds\",\"message\":\"This client holds too many reservations or asks too fast; try again shortly\"}"

static tk_test_server_t limits, rate, proxy, pause_server;
static char maxmemory_before[32] = "0"; /* the test Redis' own limit, put back after the maxmemory test */

/* ---- a keep-alive HTTP/1.1 connection ---------------------------------------------------- */

typedef struct {
    int fd;
    char buf[65536];
    size_t len;
} conn_t;

static void conn_open(conn_t *c, int port)
{
    c->len = 0;
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    struct timeval tv = {.tv_sec = 10};
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    ck_assert_int_eq(connect(c->fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
}

/* One request on the connection; the status, Retry-After (-1: none) and body (caller frees). */
static int conn_request(conn_t *c, const char *method, const char *path, const char *headers, const char *body, int *retry_after,
                        char **out_body)
{
    char req[4096];
    int n = snprintf(req, sizeof(req),
                     "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n%sContent-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
                     method, path, headers != NULL ? headers : "", body != NULL ? strlen(body) : 0, body != NULL ? body : "");
    ck_assert_int_eq(write(c->fd, req, (size_t)n), n);
    char *end;
    while ((end = memmem(c->buf, c->len, "\r\n\r\n", 4)) == NULL) {
        ssize_t got = read(c->fd, c->buf + c->len, sizeof(c->buf) - c->len - 1);
        ck_assert_msg(got > 0, "the connection closed or timed out");
        c->len += (size_t)got;
    }
    *end = '\0';
    int status = atoi(c->buf + 9);
    size_t clen = 0;
    *retry_after = -1;
    for (char *line = strstr(c->buf, "\r\n"); line != NULL; line = strstr(line + 2, "\r\n")) {
        if (strncasecmp(line + 2, "content-length:", 15) == 0)
            clen = (size_t)atol(line + 17);
        if (strncasecmp(line + 2, "retry-after:", 12) == 0)
            *retry_after = atoi(line + 14);
    }
    ck_assert_ptr_null(strcasestr(c->buf, "connection: close"));
    size_t head = (size_t)(end - c->buf) + 4;
    while (c->len < head + clen) {
        ssize_t got = read(c->fd, c->buf + c->len, sizeof(c->buf) - c->len - 1);
        ck_assert_msg(got > 0, "the connection closed or timed out");
        c->len += (size_t)got;
    }
    if (out_body != NULL)
        *out_body = strndup(c->buf + head, clen);
    memmove(c->buf, c->buf + head + clen, c->len - head - clen);
    c->len -= head + clen;
    return status;
}

/* ---- helpers ------------------------------------------------------------------------------ */

static void event_create(const tk_test_server_t *s, char *id)
{
    int status;
    json_t *created = tk_api_call(s, "POST", "/admin/events", TK_JSON_HEADER "Authorization: Bearer " ADMIN_TOKEN "\r\n",
                                  "{\"name\": \"Fair\", \"date\": \"2035-01-01T20:00:00Z\", \"ticket_types\": [{\"type\": \"A\", "
                                  "\"price\": 1, \"amount\": 1000}]}",
                                  &status);
    ck_assert_int_eq(status, 201);
    snprintf(id, 37, "%s", json_string_value(json_object_get(json_object_get(created, "event"), "id")));
    json_decref(created);
}

static void hold_body(char *body, size_t size, const char *event)
{
    snprintf(body, size, "{\"event_id\": \"%s\", \"tickets\": [{\"type\": \"A\", \"amount\": 1}]}", event);
}

/* the last answer hold() got, "status body", for a failing assertion to show which 503 it was */
static char last_answer[512];

/* POST a hold of one ticket on its own connection; status, and the reservation id into rid when given */
static int hold(const tk_test_server_t *s, const char *event, const char *headers, char *rid, int *retry_after)
{
    char body[256], extra[2048], value[32];
    hold_body(body, sizeof(body), event);
    snprintf(extra, sizeof(extra), TK_JSON_HEADER "%s", headers != NULL ? headers : "");
    tk_http_response_t res;
    ck_assert_int_eq(tk_http_request(s->port, "POST", "/events/reservation/", extra, body, strlen(body), &res), 0);
    int status = res.status;
    if (status == 429)
        ck_assert_str_eq(res.body, TOO_MANY);
    snprintf(last_answer, sizeof(last_answer), "%d %.*s", status, (int)res.body_len, res.body);
    if (retry_after != NULL)
        *retry_after = tk_http_header(&res, "retry-after", value, sizeof(value)) != NULL ? atoi(value) : -1;
    if (rid != NULL && status == 201) {
        json_t *j = json_loadb(res.body, res.body_len, 0, NULL);
        snprintf(rid, 37, "%s", json_string_value(json_object_get(j, "reservation_id")));
        json_decref(j);
    }
    tk_http_response_free(&res);
    return status;
}

static redisReply *redis_cmd(const char *cmd)
{
    redisContext *c = redisConnect("127.0.0.1", tk_test_redis_port());
    ck_assert(c != NULL && !c->err);
    redisReply *r = redisCommand(c, cmd);
    redisFree(c);
    return r;
}

/* ---- one client, one keep-alive connection ----------------------------------------------------- */

static void start_limits(void)
{
    const char *env[] = {"TICKETD_ADMIN_TOKEN=" ADMIN_TOKEN, "TICKETD_SECRET=" SECRET, "TICKETD_CLIENT_MAX_HOLDS=3",
                         "TICKETD_CLIENT_HOLD_RATE=0", NULL};
    ck_assert_int_eq(tk_test_server_start(&limits, env, NULL), 0);
}

static void stop_limits(void)
{
    tk_test_server_stop(&limits);
}

START_TEST(one_connection_holds_at_most_max_holds_and_a_cancel_frees_a_place)
{
    char event[37], body[256], *answer, rids[3][37];
    event_create(&limits, event);
    hold_body(body, sizeof(body), event);
    conn_t *c = malloc(sizeof(*c));
    conn_open(c, limits.port);
    int retry;
    for (int i = 0; i < 3; ++i) {
        /* a different X-Forwarded-For each time: from an untrusted peer it changes nothing */
        char xff[64];
        snprintf(xff, sizeof(xff), "X-Forwarded-For: 203.0.113.%d\r\n", i + 1);
        ck_assert_int_eq(conn_request(c, "POST", "/events/reservation/", xff, body, &retry, &answer), 201);
        json_t *j = json_loads(answer, 0, NULL);
        snprintf(rids[i], sizeof(rids[i]), "%s", json_string_value(json_object_get(j, "reservation_id")));
        json_decref(j);
        free(answer);
    }
    for (int i = 0; i < 5; ++i) {
        ck_assert_int_eq(
            conn_request(c, "POST", "/events/reservation/", "X-Forwarded-For: 198.51.100.7\r\n", body, &retry, &answer), 429);
        ck_assert_str_eq(answer, TOO_MANY);
        ck_assert_int_ge(retry, 1);
        free(answer);
    }
    /* the event still has tickets: it was the client that was refused */
    char path[128];
    snprintf(path, sizeof(path), "/events/reservation/?reservation_id=%s", rids[1]);
    ck_assert_int_eq(conn_request(c, "DELETE", path, NULL, NULL, &retry, NULL), 200);
    ck_assert_int_eq(conn_request(c, "POST", "/events/reservation/", NULL, body, &retry, NULL), 201);
    ck_assert_int_eq(conn_request(c, "POST", "/events/reservation/", NULL, body, &retry, NULL), 429);
    ck_assert_int_ge(tk_api_metric(&limits, NULL, "ticketd_fairuse_refusals_total"), 6);
    close(c->fd);
    free(c);
}
END_TEST

START_TEST(two_processes_share_the_limits)
{
    char event[37], pg[256], pg_env[300];
    event_create(&limits, event);
    tk_test_pg_url(limits.database, pg, sizeof(pg));
    snprintf(pg_env, sizeof(pg_env), "TICKETD_PG_URL=%s", pg);
    const char *env[] = {"TICKETD_ADMIN_TOKEN=" ADMIN_TOKEN,
                         "TICKETD_SECRET=" SECRET,
                         "TICKETD_CLIENT_MAX_HOLDS=3",
                         "TICKETD_CLIENT_HOLD_RATE=0",
                         pg_env,
                         NULL};
    tk_test_server_t peer;
    ck_assert_int_eq(tk_test_server_start(&peer, env, NULL), 0);
    int statuses[4] = {hold(&limits, event, NULL, NULL, NULL), hold(&peer, event, NULL, NULL, NULL),
                       hold(&limits, event, NULL, NULL, NULL), hold(&peer, event, NULL, NULL, NULL)};
    tk_test_server_stop(&peer);
    ck_assert_int_eq(statuses[0], 201);
    ck_assert_int_eq(statuses[1], 201);
    ck_assert_int_eq(statuses[2], 201);
    ck_assert_int_eq(statuses[3], 429);
}
END_TEST

/* ---- the hold rate ---------------------------------------------------------------------------- */

static void start_rate(void)
{
    const char *env[] = {"TICKETD_ADMIN_TOKEN=" ADMIN_TOKEN, "TICKETD_CLIENT_MAX_HOLDS=0", "TICKETD_CLIENT_HOLD_RATE=2", NULL};
    ck_assert_int_eq(tk_test_server_start(&rate, env, NULL), 0);
}

static void stop_rate(void)
{
    tk_test_server_stop(&rate);
}

START_TEST(the_rate_allows_bursts_of_twice_the_rate_then_429_with_retry_after)
{
    char event[37];
    event_create(&rate, event);
    /* 2 per second, bursts of 4: of 6 requests made well within a second, 4 pass
     * (a fifth only if the first four took over half a second) */
    int held = 0, refused = 0, retry = -1;
    for (int i = 0; i < 6; ++i) {
        int r, status = hold(&rate, event, NULL, NULL, &r);
        held += status == 201;
        if (status == 429) {
            ++refused;
            retry = r;
        }
    }
    ck_assert_int_ge(held, 4);
    ck_assert_int_le(held, 5);
    ck_assert_int_eq(held + refused, 6);
    ck_assert_int_ge(retry, 1);
    /* the wait it names is enough */
    sleep((unsigned)retry);
    ck_assert_int_eq(hold(&rate, event, NULL, NULL, NULL), 201);
}
END_TEST

/* ---- X-Forwarded-For from a trusted proxy --------------------------------------------------------- */

static void start_proxy(void)
{
    const char *env[] = {"TICKETD_ADMIN_TOKEN=" ADMIN_TOKEN, "TICKETD_CLIENT_MAX_HOLDS=1", "TICKETD_CLIENT_HOLD_RATE=0",
                         "TICKETD_TRUSTED_PROXIES=10.0.0.0/8, 127.0.0.1", NULL};
    ck_assert_int_eq(tk_test_server_start(&proxy, env, NULL), 0);
}

static void stop_proxy(void)
{
    tk_test_server_stop(&proxy);
}

START_TEST(x_forwarded_for_is_believed_from_a_trusted_proxy)
{
    char event[37];
    event_create(&proxy, event);
    /* the client is the rightmost address that is not a trusted proxy */
    ck_assert_int_eq(hold(&proxy, event, "X-Forwarded-For: 192.0.2.1, 10.1.2.3\r\n", NULL, NULL), 201);
    ck_assert_int_eq(hold(&proxy, event, "X-Forwarded-For: 192.0.2.1\r\n", NULL, NULL), 429);
    /* what the client wrote further left is not believed */
    ck_assert_int_eq(hold(&proxy, event, "X-Forwarded-For: 192.0.2.77, 192.0.2.1\r\n", NULL, NULL), 429);
    /* several headers are one list */
    ck_assert_int_eq(hold(&proxy, event, "X-Forwarded-For: 192.0.2.1\r\nX-Forwarded-For: 10.9.9.9\r\n", NULL, NULL), 429);
    /* however many a client sends in front of the proxy's own */
    char many[1024] = "";
    for (int i = 0; i < 20; ++i)
        snprintf(many + strlen(many), sizeof(many) - strlen(many), "X-Forwarded-For: 203.0.113.%d\r\n", i + 1);
    snprintf(many + strlen(many), sizeof(many) - strlen(many), "X-Forwarded-For: 192.0.2.1\r\n");
    ck_assert_int_eq(hold(&proxy, event, many, NULL, NULL), 429);
    /* other clients behind the proxy have places of their own */
    ck_assert_int_eq(hold(&proxy, event, "X-Forwarded-For: 192.0.2.2\r\n", NULL, NULL), 201);
    ck_assert_int_eq(hold(&proxy, event, "X-Forwarded-For: [2001:db8::1]:4711\r\n", NULL, NULL), 201);
    /* an IPv6 client is its /64 */
    ck_assert_int_eq(hold(&proxy, event, "X-Forwarded-For: 2001:db8::2\r\n", NULL, NULL), 429);
    /* without the header, the proxy itself is the client */
    ck_assert_int_eq(hold(&proxy, event, NULL, NULL, NULL), 201);
    ck_assert_int_eq(hold(&proxy, event, NULL, NULL, NULL), 429);
}
END_TEST

/* ---- backpressure -------------------------------------------------------------------------------- */

static void start_pause(void)
{
    const char *env[] = {"TICKETD_ADMIN_TOKEN=" ADMIN_TOKEN, "TICKETD_CLIENT_MAX_HOLDS=0", "TICKETD_CLIENT_HOLD_RATE=0",
                         "TICKETD_OUTBOX_PAUSE=3", NULL};
    ck_assert_int_eq(tk_test_server_start(&pause_server, env, NULL), 0);
    redisReply *r = redis_cmd("CONFIG GET maxmemory");
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 2)
        snprintf(maxmemory_before, sizeof(maxmemory_before), "%s", r->element[1]->str);
    freeReplyObject(r);
}

static void stop_pause(void)
{
    tk_test_services("start-postgres");
    char restore[64];
    snprintf(restore, sizeof(restore), "CONFIG SET maxmemory %s", maxmemory_before);
    freeReplyObject(redis_cmd(restore));
    tk_test_server_stop(&pause_server);
}

/* XLEN of the outbox of event's shard, -1 when Redis does not say */
static long long outbox_length(const char *event)
{
    char xlen[64];
    snprintf(xlen, sizeof(xlen), "XLEN tk:{%.4s}:ob", event);
    redisReply *r = redis_cmd(xlen);
    long long n = r != NULL && r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
    freeReplyObject(r);
    return n;
}

START_TEST(a_backlog_pauses_its_own_event_only_and_the_gauge_tells_while_postgres_is_down)
{
    char busy[37], calm[37];
    /* a shard whose outbox is empty: the Lua tests share this Redis and leave entries in the
     * shards of their events, which would count towards the pause */
    do
        event_create(&pause_server, busy);
    while (outbox_length(busy) != 0);
    do
        event_create(&pause_server, calm);
    while (memcmp(busy, calm, 4) == 0);
    /* wait until the writer has persisted what the creation left (nothing) and measured */
    ck_assert_int_eq(tk_test_services("stop-postgres"), 0);
    for (int i = 0; i < 3; ++i)
        ck_assert_msg(hold(&pause_server, busy, NULL, NULL, NULL) == 201, "hold %d: %s", i, last_answer);
    tk_http_response_t res;
    char body[256];
    hold_body(body, sizeof(body), busy);
    ck_assert_int_eq(tk_http_request(pause_server.port, "POST", "/events/reservation/", TK_JSON_HEADER, body, strlen(body), &res),
                     0);
    ck_assert_int_eq(res.status, 503);
    ck_assert_ptr_nonnull(strstr(res.body, "Sales are paused"));
    char value[16];
    ck_assert_ptr_nonnull(tk_http_header(&res, "retry-after", value, sizeof(value)));
    tk_http_response_free(&res);
    /* another event, on another shard, still sells */
    ck_assert_int_eq(hold(&pause_server, calm, NULL, NULL, NULL), 201);
    /* the gauges are measured from Redis while PostgreSQL is away (once a second) */
    long long depth = 0, paused = 0;
    for (int i = 0; i < 100 && (depth < 4 || paused < 1); ++i) {
        usleep(100 * 1000);
        depth = tk_api_metric(&pause_server, NULL, "ticketd_outbox_depth");
        paused = tk_api_metric(&pause_server, NULL, "ticketd_paused_shards");
    }
    ck_assert_msg(depth >= 4 && paused == 1, "gauge: depth %lld, paused %lld; Redis: %lld entries in the busy outbox", depth,
                  paused, outbox_length(busy));
    /* PostgreSQL back: the backlog drains and the event sells again */
    ck_assert_int_eq(tk_test_services("start-postgres"), 0);
    int status = 0;
    for (int i = 0; i < 300 && status != 201; ++i) {
        usleep(100 * 1000);
        status = hold(&pause_server, busy, NULL, NULL, NULL);
    }
    ck_assert_int_eq(status, 201);
}
END_TEST

/* Redis full (maxmemory, noeviction): a new hold and a payment are refused with 503 (the
 * sale pauses), while a cancel, which only frees tickets, goes through (the server pauses
 * sales at 3 outbox entries: this test makes two). */
START_TEST(redis_at_maxmemory_makes_writes_503_not_500)
{
    char event[37], rid[37];
    event_create(&pause_server, event);
    ck_assert_int_eq(hold(&pause_server, event, NULL, rid, NULL), 201);
    freeReplyObject(redis_cmd("CONFIG SET maxmemory 1"));
    int retry, held = hold(&pause_server, event, NULL, NULL, &retry);
    char path[128], body[128];
    int paid, cancelled;
    snprintf(body, sizeof(body), "{\"reservation_id\": \"%s\"}", rid);
    json_decref(tk_api_call(&pause_server, "PUT", "/events/reservation/", TK_JSON_HEADER, body, &paid));
    snprintf(path, sizeof(path), "/events/reservation/?reservation_id=%s", rid); /* unpaid: still PENDING */
    json_decref(tk_api_call(&pause_server, "DELETE", path, NULL, NULL, &cancelled));
    char restore[64];
    snprintf(restore, sizeof(restore), "CONFIG SET maxmemory %s", maxmemory_before);
    freeReplyObject(redis_cmd(restore));
    ck_assert_int_eq(held, 503);
    ck_assert_int_ge(retry, 1);
    ck_assert_int_eq(paid, 503);
    ck_assert_int_eq(cancelled, 200);
    ck_assert_int_eq(hold(&pause_server, event, NULL, NULL, NULL), 201);
}
END_TEST

/* Redis full (maxmemory, noeviction) while PostgreSQL was away: once PostgreSQL is back
 * the writer persists the backlog and acknowledges it, so the outbox empties and memory
 * comes back, even though Redis refuses every other write meanwhile. */
START_TEST(a_full_redis_drains_its_outbox_once_postgres_returns)
{
    char event[37];
    event_create(&pause_server, event);
    ck_assert_int_eq(tk_test_services("stop-postgres"), 0);
    for (int i = 0; i < 2; ++i)
        ck_assert_msg(hold(&pause_server, event, NULL, NULL, NULL) == 201, "hold %d: %s", i, last_answer);
    freeReplyObject(redis_cmd("CONFIG SET maxmemory 1"));
    ck_assert_int_eq(tk_test_services("start-postgres"), 0);
    long long left = -1;
    for (int i = 0; i < 200 && left != 0; ++i) {
        usleep(100 * 1000);
        left = outbox_length(event);
    }
    int refused = hold(&pause_server, event, NULL, NULL, NULL); /* still full */
    char restore[64];
    snprintf(restore, sizeof(restore), "CONFIG SET maxmemory %s", maxmemory_before);
    freeReplyObject(redis_cmd(restore));
    ck_assert_int_eq(refused, 503);
    ck_assert_int_eq(left, 0);
    char sql[256];
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM reservations WHERE event_id = '%s'", event);
    ck_assert_int_eq(tk_test_pg_count(pause_server.database, sql), 2);
}
END_TEST

static Suite *fair_use_suite(void)
{
    Suite *s = suite_create("fair_use_http");
    TCase *tc = tcase_create("limits");
    tcase_add_unchecked_fixture(tc, start_limits, stop_limits);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, one_connection_holds_at_most_max_holds_and_a_cancel_frees_a_place);
    tcase_add_test(tc, two_processes_share_the_limits);
    suite_add_tcase(s, tc);
    tc = tcase_create("rate");
    tcase_add_unchecked_fixture(tc, start_rate, stop_rate);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, the_rate_allows_bursts_of_twice_the_rate_then_429_with_retry_after);
    suite_add_tcase(s, tc);
    tc = tcase_create("proxy");
    tcase_add_unchecked_fixture(tc, start_proxy, stop_proxy);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, x_forwarded_for_is_believed_from_a_trusted_proxy);
    suite_add_tcase(s, tc);
    tc = tcase_create("backpressure");
    tcase_add_unchecked_fixture(tc, start_pause, stop_pause);
    tcase_add_checked_fixture(tc, tk_test_postgres_running, NULL);
    tcase_set_timeout(tc, 90);
    tcase_add_test(tc, a_backlog_pauses_its_own_event_only_and_the_gauge_tells_while_postgres_is_down);
    tcase_add_test(tc, redis_at_maxmemory_makes_writes_503_not_500);
    tcase_add_test(tc, a_full_redis_drains_its_outbox_once_postgres_returns);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(fair_use_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed != 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
