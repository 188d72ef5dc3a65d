/*
 * Admission control (http/router.c) against a real ticketd, Redis and PostgreSQL: with
 * Redis' writes paused, reservation requests past TICKETD_MAX_INFLIGHT are refused at
 * once with 503 and Retry-After instead of queueing, every request gets an answer, and
 * reads keep being served; when Redis resumes, sales resume by themselves.
 */
#include "tests/support/api.h"

#include <check.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#define ADMIN_TOKEN "tk-test-only-admin-token-0123456789abcdef"
#define CLIENTS 30

static tk_test_server_t server;

static void start_server(void)
{
    const char *env[] = {"TICKETD_ADMIN_TOKEN=" ADMIN_TOKEN, "TICKETD_THREADS=1", "TICKETD_MAX_INFLIGHT=4", NULL};
    ck_assert_int_eq(tk_test_server_start(&server, env, NULL), 0);
}

static void stop_server(void)
{
    tk_test_server_stop(&server);
}

static double now_s(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

static void pause_redis_writes(int ms)
{
    redisContext *c = redisConnect("127.0.0.1", tk_test_redis_port());
    redisReply *r = redisCommand(c, "CLIENT PAUSE %d WRITE", ms);
    ck_assert_msg(r != NULL && r->type == REDIS_REPLY_STATUS, "CLIENT PAUSE failed");
    freeReplyObject(r);
    redisFree(c);
}

START_TEST(writes_past_the_limit_get_503_reads_are_served_and_sales_resume)
{
    char body[512];
    int status;
    /* the creation is a write too: with 4 in flight allowed, the loop's own background calls
     * (sweeper, history) can fill the budget for a moment on a slow (sanitized) build */
    json_t *created = NULL;
    for (int i = 0; i < 20 && (created == NULL || status == 503); ++i) {
        if (created != NULL) {
            json_decref(created);
            usleep(100 * 1000);
        }
        created = tk_api_call(&server, "POST", "/admin/events", TK_JSON_HEADER "Authorization: Bearer " ADMIN_TOKEN "\r\n",
                              "{\"name\": \"Overload\", \"date\": \"2035-01-01T20:00:00Z\", \"ticket_types\": [{\"type\": "
                              "\"A\", \"price\": 1, \"amount\": 1000}]}",
                              &status);
    }
    ck_assert_int_eq(status, 201);
    snprintf(body, sizeof(body), "{\"event_id\": \"%s\", \"tickets\": [{\"type\": \"A\", \"amount\": 1}]}",
             json_string_value(json_object_get(json_object_get(created, "event"), "id")));
    json_decref(created);

    pause_redis_writes(1500);
    int report[2];
    ck_assert_int_eq(pipe(report), 0);
    for (int i = 0; i < CLIENTS; ++i) {
        if (fork() == 0) {
            close(report[0]);
            tk_http_response_t res;
            char line[64], retry[16];
            int n;
            if (tk_http_request(server.port, "POST", "/events/reservation/", TK_JSON_HEADER, body, strlen(body), &res) != 0) {
                n = snprintf(line, sizeof(line), "0 0\n");
            } else {
                n = snprintf(line, sizeof(line), "%d %d\n", res.status,
                             tk_http_header(&res, "retry-after", retry, sizeof(retry)) != NULL);
                tk_http_response_free(&res);
            }
            _exit(write(report[1], line, (size_t)n) == n ? 0 : 1);
        }
    }
    close(report[1]);
    /* reads are served from memory while the writes wait */
    usleep(100 * 1000);
    double started = now_s();
    json_decref(tk_api_call(&server, "GET", "/events/event/", NULL, NULL, &status));
    double read_took = now_s() - started;
    ck_assert_int_eq(status, 200);
    ck_assert_msg(read_took < 0.5, "a read took %.3f s while writes were paused", read_took);

    FILE *reports = fdopen(report[0], "r");
    int code, has_retry, answered = 0, held = 0, refused = 0, other = 0;
    while (fscanf(reports, "%d %d", &code, &has_retry) == 2) {
        ++answered;
        if (code == 201)
            ++held;
        else if (code == 503 && has_retry)
            ++refused;
        else
            ++other;
    }
    fclose(reports);
    while (wait(NULL) > 0)
        ;
    ck_assert_int_eq(answered, CLIENTS);
    ck_assert_int_eq(other, 0);
    ck_assert_msg(refused >= CLIENTS - 4, "only %d of %d refused past a limit of 4", refused, CLIENTS);
    ck_assert_int_le(held, 4);

    /* once Redis resumes, sales resume without a restart */
    int sold = 0;
    for (int i = 0; i < 40 && !sold; ++i) {
        json_decref(tk_api_call(&server, "POST", "/events/reservation/", TK_JSON_HEADER, body, &status));
        sold = status == 201;
        if (!sold)
            usleep(100 * 1000);
    }
    ck_assert(sold);
    /* the refusals are visible to operators */
    ck_assert_int_ge(tk_api_metric(&server, NULL, "ticketd_overload_refusals_total"), 1);
}
END_TEST

int main(void)
{
    Suite *suite = suite_create("overload");
    TCase *tc = tcase_create("overload");
    tcase_set_timeout(tc, 60);
    tcase_add_unchecked_fixture(tc, start_server, stop_server);
    tcase_add_test(tc, writes_past_the_limit_get_503_reads_are_served_and_sales_resume);
    suite_add_tcase(suite, tc);
    SRunner *runner = srunner_create(suite);
    srunner_run_all(runner, CK_NORMAL);
    int failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed != 0;
}
