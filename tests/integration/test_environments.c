/*
 * Start-up behaviour of the real binary: production refusing unsafe settings with one
 * line and exit 1, development defaults, --check-config output and exit codes, fast
 * failure when a store is unreachable, the durability warnings against a real Redis
 * without AOF and a real PostgreSQL with fsync off, and no secret in any log line.
 */
#include "engine/config.h"
#include "tests/support/api.h"

#include <check.h>
#include <arpa/inet.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define GOOD_SECRET "tk-test-only-secret-0123456789abcdef0123"
#define GOOD_TOKEN "tk-test-only-admin-token-0123456789abcdef"

static char redis_env[128], pg_env[256];

/* TICKETD_REDIS_URL and TICKETD_PG_URL of the test stores (the shared test database) */
static void setup_store_env(void)
{
    strcpy(redis_env, "TICKETD_REDIS_URL=");
    tk_test_redis_url(redis_env + strlen(redis_env), sizeof(redis_env) - strlen(redis_env));
    strcpy(pg_env, "TICKETD_PG_URL=");
    tk_test_pg_url("ticketd", pg_env + strlen(pg_env), sizeof(pg_env) - strlen(pg_env));
}

static size_t count_lines(const char *s)
{
    size_t n = 0;
    for (; *s != '\0'; ++s)
        n += *s == '\n';
    return n;
}

static void assert_refused(const char *const *env, const char *const *args, const char *must_name)
{
    char out[8192];
    int status = tk_test_run_ticketd(env, args, out, sizeof(out));
    ck_assert_msg(status == 1, "exit status %d, want 1; output: %s", status, out);
    ck_assert_msg(count_lines(out) == 1, "want one line, got: %s", out);
    ck_assert_msg(strstr(out, must_name) != NULL, "'%s' not named in: %s", must_name, out);
}

START_TEST(production_is_the_default_and_refuses_without_a_secret)
{
    const char *env[] = {redis_env, pg_env, NULL};
    assert_refused(env, NULL, "TICKETD_SECRET");
}
END_TEST

START_TEST(production_refuses_a_short_secret)
{
    const char *env[] = {"TICKETD_SECRET=tk-test-only-short-secret-31byt", redis_env, pg_env, NULL}; /* 31 bytes */
    assert_refused(env, NULL, "TICKETD_SECRET");
}
END_TEST

START_TEST(production_refuses_a_short_admin_token)
{
    const char *env[] = {"TICKETD_SECRET=" GOOD_SECRET, "TICKETD_ADMIN_TOKEN=short-token", redis_env, pg_env, NULL};
    assert_refused(env, NULL, "TICKETD_ADMIN_TOKEN");
}
END_TEST

START_TEST(production_refuses_demo)
{
    const char *env[] = {"TICKETD_SECRET=" GOOD_SECRET, redis_env, pg_env, NULL};
    const char *args[] = {"--demo", NULL};
    assert_refused(env, args, "--demo");
}
END_TEST

START_TEST(malformed_settings_are_refused_in_both_modes)
{
    const char *prod[] = {"TICKETD_SECRET=" GOOD_SECRET, "TICKETD_HOLD_SECONDS=soon", redis_env, pg_env, NULL};
    assert_refused(prod, NULL, "TICKETD_HOLD_SECONDS");
    const char *dev[] = {"TICKETD_ENV=development", "TICKETD_LOG_LEVEL=chatty", redis_env, pg_env, NULL};
    assert_refused(dev, NULL, "TICKETD_LOG_LEVEL");
    const char *env[] = {"TICKETD_ENV=staging", NULL};
    assert_refused(env, NULL, "TICKETD_ENV");
}
END_TEST

START_TEST(unreachable_stores_fail_fast_naming_where)
{
    char redis_bad[64], pg_bad[128];
    int port = tk_test_free_port();
    snprintf(redis_bad, sizeof(redis_bad), "TICKETD_REDIS_URL=redis://127.0.0.1:%d/0", port);
    snprintf(pg_bad, sizeof(pg_bad), "TICKETD_PG_URL=postgresql://postgres@127.0.0.1:%d/ticketd", port);
    char where[32];
    snprintf(where, sizeof(where), "127.0.0.1:%d", port);

    const char *no_redis[] = {"TICKETD_ENV=development", redis_bad, pg_env, NULL};
    assert_refused(no_redis, NULL, "Redis");
    assert_refused(no_redis, NULL, where);
    const char *no_pg[] = {"TICKETD_ENV=development", redis_env, pg_bad, NULL};
    assert_refused(no_pg, NULL, "PostgreSQL");
    assert_refused(no_pg, NULL, where);
}
END_TEST

START_TEST(a_busy_port_is_refused_with_one_line)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(addr);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
    ck_assert_int_eq(listen(fd, 1), 0);
    getsockname(fd, (struct sockaddr *)&addr, &len);
    char listen_env[64];
    snprintf(listen_env, sizeof(listen_env), "TICKETD_LISTEN=127.0.0.1:%d", ntohs(addr.sin_port));
    char db[64], url[256], env_pg[300];
    ck_assert_int_eq(tk_test_create_database(db), 0);
    tk_test_pg_url(db, url, sizeof(url));
    snprintf(env_pg, sizeof(env_pg), "TICKETD_PG_URL=%s", url);
    const char *env[] = {"TICKETD_ENV=development", listen_env, redis_env, env_pg, NULL};
    assert_refused(env, NULL, "cannot listen on 127.0.0.1:");
    tk_test_drop_database(db);
    close(fd);
}
END_TEST

START_TEST(help_and_version)
{
    char out[8192];
    const char *help[] = {"--help", NULL}, *version[] = {"--version", NULL};
    ck_assert_int_eq(tk_test_run_ticketd(NULL, help, out, sizeof(out)), 0);
    ck_assert_ptr_nonnull(strstr(out, "TICKETD_ENV"));
    ck_assert_ptr_nonnull(strstr(out, "production (default)"));
    for (int i = 0; i < TK_SET__COUNT; ++i) /* every setting the binary reads is explained */
        ck_assert_msg(strstr(out, tk_setting_name((tk_setting_t)i)) != NULL, "--help does not mention %s",
                      tk_setting_name((tk_setting_t)i));
    ck_assert_int_eq(tk_test_run_ticketd(NULL, version, out, sizeof(out)), 0);
    ck_assert_ptr_nonnull(strstr(out, "ticketd "));
}
END_TEST

START_TEST(check_config_reports_problems_and_exits_1)
{
    char out[16384];
    const char *env[] = {"TICKETD_ADMIN_TOKEN=short-token", redis_env, pg_env, NULL};
    const char *args[] = {"--check-config", NULL};
    ck_assert_int_eq(tk_test_run_ticketd(env, args, out, sizeof(out)), 1);
    ck_assert_ptr_nonnull(strstr(out, "TICKETD_ENV"));
    ck_assert_ptr_nonnull(strstr(out, "production  (default)"));
    ck_assert_ptr_nonnull(strstr(out, "*** (11 characters)  (environment)"));
    ck_assert_ptr_nonnull(strstr(out, "FAIL  TICKETD_SECRET is not set"));
    ck_assert_ptr_nonnull(strstr(out, "FAIL  TICKETD_ADMIN_TOKEN"));
    ck_assert_ptr_nonnull(strstr(out, "would refuse to start"));
    ck_assert_ptr_null(strstr(out, "short-token"));
}
END_TEST

START_TEST(check_config_passes_a_safe_production_setup)
{
    char out[16384];
    const char *env[] = {"TICKETD_SECRET=" GOOD_SECRET, "TICKETD_ADMIN_TOKEN=" GOOD_TOKEN, redis_env, pg_env, NULL};
    const char *args[] = {"--check-config", NULL};
    ck_assert_msg(tk_test_run_ticketd(env, args, out, sizeof(out)) == 0, "output: %s", out);
    ck_assert_ptr_nonnull(strstr(out, "production would start"));
    ck_assert_ptr_nonnull(strstr(out, "TICKETD_SECRET"));
    ck_assert_ptr_nonnull(strstr(out, "*** (40 bytes)  (environment)"));
    ck_assert_ptr_null(strstr(out, GOOD_SECRET));
    ck_assert_ptr_null(strstr(out, GOOD_TOKEN));
}
END_TEST

START_TEST(check_config_fails_on_unreachable_store)
{
    char out[16384], redis_bad[64];
    snprintf(redis_bad, sizeof(redis_bad), "TICKETD_REDIS_URL=redis://127.0.0.1:%d/0", tk_test_free_port());
    const char *env[] = {"TICKETD_SECRET=" GOOD_SECRET, redis_bad, pg_env, NULL};
    const char *args[] = {"--check-config", NULL};
    ck_assert_int_eq(tk_test_run_ticketd(env, args, out, sizeof(out)), 1);
    ck_assert_ptr_nonnull(strstr(out, "FAIL  Redis at"));
}
END_TEST

START_TEST(production_starts_with_an_empty_catalog_and_json_logs)
{
    tk_test_server_t s;
    const char *env[] = {"TICKETD_ENV=production", "TICKETD_SECRET=" GOOD_SECRET, "TICKETD_ADMIN_TOKEN=" GOOD_TOKEN, NULL};
    ck_assert_int_eq(tk_test_server_start(&s, env, NULL), 0);
    int status;
    json_t *body = tk_api_call(&s, "GET", "/events/event/", NULL, NULL, &status);
    ck_assert_int_eq(status, 200);
    ck_assert_int_eq(json_array_size(json_object_get(body, "events")), 0);
    json_decref(body);
    /* the admin token works, and never reaches the log */
    json_decref(tk_api_call(&s, "POST", "/admin/events", TK_JSON_HEADER "Authorization: Bearer " GOOD_TOKEN "\r\n",
                            "{\"name\": \"Prod\", \"date\": \"2033-01-01T00:00:00Z\", \"ticket_types\": [{\"type\": \"A\", "
                            "\"price\": 1, \"amount\": 1}]}",
                            &status));
    ck_assert_int_eq(status, 201);
    ck_assert_int_eq(tk_test_server_stop(&s), 0);
    char log[65536];
    tk_test_server_log(&s, log, sizeof(log));
    ck_assert_ptr_null(strstr(log, GOOD_SECRET));
    ck_assert_ptr_null(strstr(log, GOOD_TOKEN));
    /* every line a JSON object */
    size_t lines = 0;
    for (char *line = strtok(log, "\n"); line != NULL; line = strtok(NULL, "\n"), ++lines) {
        json_t *record = json_loads(line, 0, NULL);
        ck_assert_msg(record != NULL && json_is_string(json_object_get(record, "level")), "not a JSON log line: %s", line);
        json_decref(record);
    }
    ck_assert(lines >= 2);
}
END_TEST

START_TEST(development_generates_a_token_loads_demo_and_logs_text)
{
    tk_test_server_t s;
    const char *env[] = {"TICKETD_SECRET=" GOOD_SECRET, NULL}; /* harness runs development */
    ck_assert_int_eq(tk_test_server_start(&s, env, NULL), 0);
    int status;
    json_t *body = tk_api_call(&s, "GET", "/events/event/", NULL, NULL, &status);
    ck_assert_int_eq(json_array_size(json_object_get(body, "events")), 4);
    json_decref(body);
    char log[65536], token[128] = "", auth[256];
    tk_test_server_log(&s, log, sizeof(log));
    const char *printed = strstr(log, "admin token (valid until restart): ");
    ck_assert_ptr_nonnull(printed);
    sscanf(printed + strlen("admin token (valid until restart): "), "%127s", token);
    ck_assert_int_ge(strlen(token), 32);
    ck_assert_msg(strstr(strstr(log, token) + 1, token) == NULL, "the token is printed more than once");
    snprintf(auth, sizeof(auth), TK_JSON_HEADER "Authorization: Bearer %s\r\n", token);
    json_decref(tk_api_call(&s, "POST", "/admin/events", auth,
                            "{\"name\": \"Dev\", \"date\": \"2033-01-01T00:00:00Z\", \"ticket_types\": [{\"type\": \"A\", "
                            "\"price\": 1, \"amount\": 1}]}",
                            &status));
    ck_assert_int_eq(status, 201);
    ck_assert_int_eq(tk_test_server_stop(&s), 0);
    tk_test_server_log(&s, log, sizeof(log));
    ck_assert_ptr_null(strstr(log, GOOD_SECRET));
    ck_assert_ptr_nonnull(strstr(log, " info  server: listening on"));
    ck_assert_ptr_null(strstr(log, "{\"ts\""));
}
END_TEST

/* Starts a throw-away redis-server on a free port with the given AOF settings; returns its pid.
 * Its AOF (if any) goes to /tmp/tk-test-aof-<port>, removed by stop_redis. */
static pid_t start_redis(int port, const char *appendonly, const char *appendfsync)
{
    char port_arg[16], aof_dir[48];
    snprintf(port_arg, sizeof(port_arg), "%d", port);
    snprintf(aof_dir, sizeof(aof_dir), "tk-test-aof-%d", port);
    pid_t pid = fork();
    if (pid == 0) {
        freopen("/dev/null", "w", stdout);
        execlp("redis-server", "redis-server", "--port", port_arg, "--bind", "127.0.0.1", "--appendonly", appendonly,
               "--appendfsync", appendfsync, "--save", "", "--dir", "/tmp", "--appenddirname", aof_dir, (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 100; ++i) {
        char cmd[96];
        snprintf(cmd, sizeof(cmd), "redis-cli -p %d ping >/dev/null 2>&1", port);
        if (system(cmd) == 0)
            break;
        usleep(50 * 1000);
    }
    return pid;
}

static void stop_redis(pid_t pid, int port)
{
    char cmd[64];
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
    snprintf(cmd, sizeof(cmd), "rm -rf /tmp/tk-test-aof-%d", port);
    ck_assert_int_eq(system(cmd), 0);
}

START_TEST(warns_when_redis_runs_without_aof)
{
    int port = tk_test_free_port();
    pid_t redis = start_redis(port, "no", "everysec");
    char env_redis[64], out[16384];
    snprintf(env_redis, sizeof(env_redis), "TICKETD_REDIS_URL=redis://127.0.0.1:%d/0", port);
    const char *env[] = {"TICKETD_SECRET=" GOOD_SECRET, env_redis, pg_env, NULL};
    const char *args[] = {"--check-config", NULL};
    int status = tk_test_run_ticketd(env, args, out, sizeof(out));

    tk_test_server_t s;
    const char *server_env[] = {"TICKETD_ENV=production", "TICKETD_SECRET=" GOOD_SECRET, env_redis, NULL};
    int started = tk_test_server_start(&s, server_env, NULL);
    char log[65536] = "";
    if (started == 0) {
        tk_test_server_stop(&s);
        tk_test_server_log(&s, log, sizeof(log));
    }
    stop_redis(redis, port);

    ck_assert_int_eq(status, 0); /* a warning, not a refusal */
    ck_assert_ptr_nonnull(strstr(out, "WARN  Redis runs without AOF"));
    ck_assert_int_eq(started, 0);
    ck_assert_ptr_nonnull(strstr(log, "\"level\":\"warn\",\"component\":\"config\",\"msg\":\"Redis runs without AOF"));
}
END_TEST

START_TEST(warns_when_redis_fsyncs_only_every_second)
{
    int port = tk_test_free_port();
    pid_t redis = start_redis(port, "yes", "everysec");
    char env_redis[64], out[16384];
    snprintf(env_redis, sizeof(env_redis), "TICKETD_REDIS_URL=redis://127.0.0.1:%d/0", port);
    const char *env[] = {"TICKETD_SECRET=" GOOD_SECRET, env_redis, pg_env, NULL};
    const char *args[] = {"--check-config", NULL};
    int status = tk_test_run_ticketd(env, args, out, sizeof(out));
    stop_redis(redis, port);
    ck_assert_int_eq(status, 0);
    ck_assert_msg(strstr(out, "WARN  Redis fsyncs its AOF with appendfsync everysec") != NULL, "output: %s", out);
}
END_TEST

static void pg_admin(const char *sql)
{
    char url[256];
    tk_test_pg_url("postgres", url, sizeof(url));
    PGconn *conn = PQconnectdb(url);
    PGresult *res = PQexec(conn, sql);
    ck_assert_msg(PQresultStatus(res) == PGRES_COMMAND_OK || PQresultStatus(res) == PGRES_TUPLES_OK, "%s: %s", sql,
                  PQerrorMessage(conn));
    PQclear(res);
    PQfinish(conn);
}

START_TEST(warns_when_postgres_runs_without_fsync)
{
    char out[16384];
    const char *env[] = {"TICKETD_SECRET=" GOOD_SECRET, redis_env, pg_env, NULL};
    const char *args[] = {"--check-config", NULL};
    pg_admin("ALTER SYSTEM SET fsync = off");
    pg_admin("SELECT pg_reload_conf()");
    usleep(300 * 1000);
    int status = tk_test_run_ticketd(env, args, out, sizeof(out));
    pg_admin("ALTER SYSTEM RESET fsync");
    pg_admin("SELECT pg_reload_conf()");
    ck_assert_int_eq(status, 0);
    ck_assert_msg(strstr(out, "WARN  PostgreSQL runs with fsync=off") != NULL, "output: %s", out);
}
END_TEST

START_TEST(warns_when_postgres_commits_asynchronously)
{
    char db[64], url[256], env_pg[300], out[16384], sql[128];
    ck_assert_int_eq(tk_test_create_database(db), 0);
    snprintf(sql, sizeof(sql), "ALTER DATABASE %s SET synchronous_commit = off", db);
    pg_admin(sql);
    tk_test_pg_url(db, url, sizeof(url));
    snprintf(env_pg, sizeof(env_pg), "TICKETD_PG_URL=%s", url);
    const char *env[] = {"TICKETD_SECRET=" GOOD_SECRET, redis_env, env_pg, NULL};
    const char *args[] = {"--check-config", NULL};
    int status = tk_test_run_ticketd(env, args, out, sizeof(out));
    tk_test_drop_database(db);
    ck_assert_int_eq(status, 0);
    ck_assert_msg(strstr(out, "synchronous_commit=off") != NULL, "output: %s", out);
}
END_TEST

int main(void)
{
    setup_store_env();
    Suite *suite = suite_create("environments");
    TCase *tc = tcase_create("environments");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, production_is_the_default_and_refuses_without_a_secret);
    tcase_add_test(tc, production_refuses_a_short_secret);
    tcase_add_test(tc, production_refuses_a_short_admin_token);
    tcase_add_test(tc, production_refuses_demo);
    tcase_add_test(tc, malformed_settings_are_refused_in_both_modes);
    tcase_add_test(tc, unreachable_stores_fail_fast_naming_where);
    tcase_add_test(tc, a_busy_port_is_refused_with_one_line);
    tcase_add_test(tc, help_and_version);
    tcase_add_test(tc, check_config_reports_problems_and_exits_1);
    tcase_add_test(tc, check_config_passes_a_safe_production_setup);
    tcase_add_test(tc, check_config_fails_on_unreachable_store);
    tcase_add_test(tc, production_starts_with_an_empty_catalog_and_json_logs);
    tcase_add_test(tc, development_generates_a_token_loads_demo_and_logs_text);
    tcase_add_test(tc, warns_when_redis_runs_without_aof);
    tcase_add_test(tc, warns_when_redis_fsyncs_only_every_second);
    tcase_add_test(tc, warns_when_postgres_runs_without_fsync);
    tcase_add_test(tc, warns_when_postgres_commits_asynchronously);
    suite_add_tcase(suite, tc);
    SRunner *runner = srunner_create(suite);
    srunner_run_all(runner, CK_NORMAL);
    int failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed != 0;
}
