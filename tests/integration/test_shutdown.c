/*
 * Graceful shutdown (http/server.c, engine/writer.c) against a real ticketd, Redis and
 * PostgreSQL: SIGTERM in the middle of a sale stops new work, finishes what is in
 * flight — gateway charges included — drains the outbox into PostgreSQL and exits 0,
 * so every reservation that was answered 201 and every payment answered 202 is there.
 */
#include "tests/support/api.h"

#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define ADMIN_TOKEN "tk-test-only-admin-token-0123456789abcdef"
#define CLIENTS 8
#define EACH 200

START_TEST(sigterm_under_load_exits_0_and_loses_nothing)
{
    tk_test_server_t server;
    const char *env[] = {"TICKETD_ADMIN_TOKEN=" ADMIN_TOKEN, "TICKETD_PAYMENT_LATENCY_MS=100", NULL};
    ck_assert_int_eq(tk_test_server_start(&server, env, NULL), 0);
    int status;
    json_t *created = tk_api_call(&server, "POST", "/admin/events", TK_JSON_HEADER "Authorization: Bearer " ADMIN_TOKEN "\r\n",
                                  "{\"name\": \"Shutdown\", \"date\": \"2035-01-01T20:00:00Z\", \"ticket_types\": [{\"type\": "
                                  "\"A\", \"price\": 5, \"amount\": 100000}]}",
                                  &status);
    ck_assert_int_eq(status, 201);
    char event[64], body[256];
    snprintf(event, sizeof(event), "%s", json_string_value(json_object_get(json_object_get(created, "event"), "id")));
    json_decref(created);
    snprintf(body, sizeof(body), "{\"event_id\": \"%s\", \"tickets\": [{\"type\": \"A\", \"amount\": 1}]}", event);

    /* each client reports "R <id>" for a 201 and "P <id>" for a 202 */
    int report[2];
    ck_assert_int_eq(pipe(report), 0);
    for (int c = 0; c < CLIENTS; ++c) {
        if (fork() != 0)
            continue;
        close(report[0]);
        FILE *out = fdopen(report[1], "w");
        setvbuf(out, NULL, _IOLBF, 0);
        for (int i = 0; i < EACH; ++i) {
            int st;
            json_t *res = NULL;
            tk_http_response_t raw;
            if (tk_http_request(server.port, "POST", "/events/reservation/", TK_JSON_HEADER, body, strlen(body), &raw) != 0)
                break; /* the server stopped accepting */
            st = raw.status;
            res = json_loads(raw.body, 0, NULL);
            tk_http_response_free(&raw);
            if (st != 201) {
                json_decref(res);
                continue;
            }
            const char *rid = json_string_value(json_object_get(res, "reservation_id"));
            fprintf(out, "R %s\n", rid);
            char pay[128];
            snprintf(pay, sizeof(pay), "{\"reservation_id\": \"%s\"}", rid);
            if (tk_http_request(server.port, "PUT", "/events/reservation/", TK_JSON_HEADER, pay, strlen(pay), &raw) == 0) {
                if (raw.status == 202)
                    fprintf(out, "P %s\n", rid);
                tk_http_response_free(&raw);
            }
            json_decref(res);
        }
        _exit(0);
    }
    close(report[1]);
    usleep(700 * 1000);
    kill(server.pid, SIGTERM);
    int wstatus;
    ck_assert_int_eq(waitpid(server.pid, &wstatus, 0), server.pid);
    server.pid = 0;
    ck_assert_msg(WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0, "ticketd did not exit 0 after SIGTERM");

    /* read every report before reaping the clients: they block on a full pipe otherwise */
    FILE *reports = fdopen(report[0], "r");
    char kind, id[64], sql[256], (*lines)[80] = malloc(sizeof(*lines) * CLIENTS * EACH * 2);
    int nlines = 0, held = 0, paid = 0, missing = 0;
    while (nlines < CLIENTS * EACH * 2 && fscanf(reports, " %c %63s", &kind, id) == 2)
        snprintf(lines[nlines++], sizeof(lines[0]), "%c %s", kind, id);
    fclose(reports);
    while (wait(NULL) > 0)
        ;
    for (int i = 0; i < nlines; ++i) {
        sscanf(lines[i], "%c %63s", &kind, id);
        if (kind == 'R') {
            ++held;
            snprintf(sql, sizeof(sql), "SELECT count(*) FROM reservations WHERE id = '%s'", id);
        } else {
            ++paid;
            snprintf(sql, sizeof(sql), "SELECT count(*) FROM reservations WHERE id = '%s' AND status = 'COMPLETED'", id);
        }
        if (tk_test_pg_count(server.database, sql) != 1) {
            ++missing;
            fprintf(stderr, "%s %s is not in PostgreSQL as it should be\n", kind == 'R' ? "reservation" : "payment of", id);
        }
    }
    free(lines);
    ck_assert_msg(held > 0 && paid > 0, "the sale did not get going (%d held, %d paid)", held, paid);
    ck_assert_int_eq(missing, 0);
    char grep[512];
    snprintf(grep, sizeof(grep), "grep -q 'received SIGTERM' %s && grep -q 'in-flight work finished' %s", server.log_path,
             server.log_path);
    ck_assert_msg(system(grep) == 0, "the log does not show the drain");
    tk_test_server_stop(&server);
}
END_TEST

int main(void)
{
    Suite *suite = suite_create("shutdown");
    TCase *tc = tcase_create("shutdown");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, sigterm_under_load_exits_0_and_loses_nothing);
    suite_add_tcase(suite, tc);
    SRunner *runner = srunner_create(suite);
    srunner_run_all(runner, CK_NORMAL);
    int failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed != 0;
}
