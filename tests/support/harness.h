/*
 * Test harness: the real Redis and PostgreSQL that scripts/test.sh starts (their
 * ports come from the environment), a fresh database per test server, and a real
 * ticketd process started from the build tree and stopped again. When
 * TICKETD_TEST_REDIS_CLUSTER names Redis Cluster seed nodes (`scripts/test.sh --cluster`,
 * services profile cluster-test), servers run on that cluster instead of the single Redis
 * and tk_test_services acts on the cluster-test profile; tests read and write Redis
 * straight through tests/support/redis_direct.h, which works on both.
 */
#ifndef TK_TEST_HARNESS_H
#define TK_TEST_HARNESS_H

#include <stddef.h>
#include <sys/types.h>

typedef struct st_tk_test_server_t {
    pid_t pid;
    int port;
    char database[64];
    char log_path[256];
} tk_test_server_t;

int tk_test_redis_port(void);
/* the cluster's seeds ("host:port,...") when the tests run against Redis Cluster, else NULL */
const char *tk_test_redis_cluster(void);
int tk_test_pg_port(void);
/* a libpq URL for the named database on the test PostgreSQL */
void tk_test_pg_url(const char *database, char *buf, size_t bufsize);
void tk_test_redis_url(char *buf, size_t bufsize);
const char *tk_test_binary(void);
int tk_test_free_port(void);
/* creates an empty database with a unique name into name[64]; 0 on success */
int tk_test_create_database(char *name);
void tk_test_drop_database(const char *name);

/* Starts ticketd in development on a free port with a fresh database, the test Redis
 * (TICKETD_REDIS_URL, or TICKETD_REDIS_CLUSTER on a cluster unless env sets
 * TICKETD_REDIS_URL), TICKETD_* settings from env (NULL-terminated "K=V" list, applied
 * last) and extra arguments; waits until /healthz answers 200. 0 on success. */
int tk_test_server_start(tk_test_server_t *s, const char *const *env, const char *const *args);
/* SIGTERM, wait, drop the database; returns the exit status */
int tk_test_server_stop(tk_test_server_t *s);
/* runs ticketd to completion with only the given environment; captures stdout+stderr */
int tk_test_run_ticketd(const char *const *env, const char *const *args, char *output, size_t outsize);
/* Runs sql on the named test database and copies the first column of the first row
 * into out ("" for none). 0 on success, -1 when the query failed. */
int tk_test_pg_scalar(const char *database, const char *sql, char *out, size_t outsize);
long long tk_test_pg_count(const char *database, const char *sql);
/* scripts/services.sh ACTION test (cluster-test on a cluster) on the test stores' ports
 * (e.g. "stop-postgres") */
int tk_test_services(const char *action);
/* A checked fixture for test cases that stop PostgreSQL: starts it when a test that failed
 * while it was stopped left it so, so one failure does not fail the tests after it. */
void tk_test_postgres_running(void);
/* contents of the server's log so far */
size_t tk_test_server_log(const tk_test_server_t *s, char *buf, size_t bufsize);

#endif
