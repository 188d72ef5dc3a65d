/*
 * Process plumbing for integration tests: fork/exec of ticketd with a controlled
 * environment, readiness polling, and throw-away databases.
 */
#include "tests/support/harness.h"
#include "tests/support/httpc.h"

#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int env_int(const char *name, int fallback)
{
    const char *v = getenv(name);
    return v != NULL && *v != '\0' ? atoi(v) : fallback;
}

int tk_test_redis_port(void)
{
    return env_int("TICKETD_TEST_REDIS_PORT", 6391);
}

const char *tk_test_redis_cluster(void)
{
    const char *seeds = getenv("TICKETD_TEST_REDIS_CLUSTER");
    return seeds != NULL && *seeds != '\0' ? seeds : NULL;
}

int tk_test_pg_port(void)
{
    return env_int("TICKETD_TEST_PG_PORT", 5441);
}

void tk_test_pg_url(const char *database, char *buf, size_t bufsize)
{
    snprintf(buf, bufsize, "postgresql://postgres@127.0.0.1:%d/%s", tk_test_pg_port(), database);
}

void tk_test_redis_url(char *buf, size_t bufsize)
{
    snprintf(buf, bufsize, "redis://127.0.0.1:%d/0", tk_test_redis_port());
}

const char *tk_test_binary(void)
{
    const char *bin = getenv("TICKETD_BIN");
    return bin != NULL && *bin != '\0' ? bin : TK_BINARY_DIR "/ticketd";
}

int tk_test_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(addr);
    if (fd < 0 || bind(fd, (struct sockaddr *)&addr, sizeof(addr)) != 0 || getsockname(fd, (struct sockaddr *)&addr, &len) != 0)
        return -1;
    close(fd);
    return ntohs(addr.sin_port);
}

static int admin_exec(const char *sql)
{
    char url[256];
    tk_test_pg_url("postgres", url, sizeof(url));
    PGconn *conn = PQconnectdb(url);
    int ok = PQstatus(conn) == CONNECTION_OK;
    if (ok) {
        PGresult *res = PQexec(conn, sql);
        ok = PQresultStatus(res) == PGRES_COMMAND_OK;
        if (!ok)
            fprintf(stderr, "harness: %s: %s", sql, PQerrorMessage(conn));
        PQclear(res);
    } else {
        fprintf(stderr, "harness: cannot reach the test PostgreSQL: %s", PQerrorMessage(conn));
    }
    PQfinish(conn);
    return ok ? 0 : -1;
}

int tk_test_create_database(char *name)
{
    static int counter;
    char sql[128];
    snprintf(name, 64, "tk_test_%d_%d_%ld", (int)getpid(), ++counter, (long)time(NULL) % 100000);
    snprintf(sql, sizeof(sql), "CREATE DATABASE %s", name);
    return admin_exec(sql);
}

void tk_test_drop_database(const char *name)
{
    char sql[128];
    snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s WITH (FORCE)", name);
    admin_exec(sql);
}

/* Builds the child's environment: PATH and sanitizer settings from ours, then extra. */
static char **child_environment(const char *const *extra)
{
    static const char *const inherited[] = {"PATH", "ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS", "TSAN_OPTIONS", NULL};
    size_t n = 0;
    while (extra != NULL && extra[n] != NULL)
        ++n;
    char **envp = calloc(n + 8, sizeof(*envp));
    size_t k = 0;
    for (size_t i = 0; inherited[i] != NULL; ++i) {
        const char *v = getenv(inherited[i]);
        if (v != NULL) {
            size_t len = strlen(inherited[i]) + strlen(v) + 2;
            envp[k] = malloc(len);
            snprintf(envp[k++], len, "%s=%s", inherited[i], v);
        }
    }
    for (size_t i = 0; i < n; ++i)
        envp[k++] = strdup(extra[i]);
    return envp;
}

static pid_t spawn(const char *const *env, const char *const *args, int outfd)
{
    size_t nargs = 0;
    while (args != NULL && args[nargs] != NULL)
        ++nargs;
    char **argv = calloc(nargs + 2, sizeof(*argv));
    argv[0] = (char *)tk_test_binary();
    for (size_t i = 0; i < nargs; ++i)
        argv[i + 1] = (char *)args[i];
    char **envp = child_environment(env);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(outfd, STDOUT_FILENO);
        dup2(outfd, STDERR_FILENO);
        execve(argv[0], argv, envp);
        _exit(127);
    }
    for (size_t i = 0; envp[i] != NULL; ++i)
        free(envp[i]);
    free(envp);
    free(argv);
    return pid;
}

/* whether the NULL-terminated "K=V" list sets the variable named by entry's "K=" */
static int overridden(const char *const *env, const char *entry)
{
    size_t name_len = strcspn(entry, "=") + 1;
    for (size_t i = 0; env != NULL && env[i] != NULL; ++i)
        if (strncmp(env[i], entry, name_len) == 0)
            return 1;
    return 0;
}

int tk_test_server_start(tk_test_server_t *s, const char *const *env, const char *const *args)
{
    memset(s, 0, sizeof(*s));
    /* a server given TICKETD_PG_URL shares that database; otherwise it gets a fresh one */
    if (!overridden(env, "TICKETD_PG_URL=") && tk_test_create_database(s->database) != 0)
        return -1;
    s->port = tk_test_free_port();
    char listen[64], redis[512], pg[256];
    snprintf(listen, sizeof(listen), "TICKETD_LISTEN=127.0.0.1:%d", s->port);
    /* on a cluster, unless the test points the server at a single Redis itself */
    if (tk_test_redis_cluster() != NULL && !overridden(env, "TICKETD_REDIS_URL=")) {
        snprintf(redis, sizeof(redis), "TICKETD_REDIS_CLUSTER=%s", tk_test_redis_cluster());
    } else {
        snprintf(redis, sizeof(redis), "TICKETD_REDIS_URL=");
        tk_test_redis_url(redis + strlen(redis), sizeof(redis) - strlen(redis));
    }
    snprintf(pg, sizeof(pg), "TICKETD_PG_URL=");
    tk_test_pg_url(s->database, pg + strlen(pg), sizeof(pg) - strlen(pg));
    const char *base[] = {"TICKETD_ENV=development", "TICKETD_THREADS=2", listen, redis, pg, NULL};
    const char *all[64];
    size_t n = 0;
    for (size_t i = 0; base[i] != NULL; ++i)
        if (!overridden(env, base[i]))
            all[n++] = base[i];
    for (size_t i = 0; env != NULL && env[i] != NULL && n < 63; ++i)
        all[n++] = env[i];
    all[n] = NULL;

    snprintf(s->log_path, sizeof(s->log_path), "/tmp/tk_test_%d_%d.log", (int)getpid(), s->port);
    int fd = open(s->log_path, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0644);
    s->pid = spawn(all, args, fd);
    close(fd);
    for (int i = 0; i < 200; ++i) {
        tk_http_response_t res;
        if (tk_http_request(s->port, "GET", "/healthz", NULL, NULL, 0, &res) == 0) {
            int status = res.status;
            tk_http_response_free(&res);
            if (status == 200)
                return 0;
        }
        int wstatus;
        if (waitpid(s->pid, &wstatus, WNOHANG) == s->pid) {
            char log[4096];
            tk_test_server_log(s, log, sizeof(log));
            fprintf(stderr, "harness: ticketd exited during start-up:\n%s\n", log);
            s->pid = 0;
            return -1;
        }
        usleep(50 * 1000);
    }
    fprintf(stderr, "harness: ticketd did not become healthy\n");
    return -1;
}

int tk_test_server_stop(tk_test_server_t *s)
{
    int wstatus = -1;
    if (s->pid > 0) {
        kill(s->pid, SIGTERM);
        for (int i = 0; i < 100 && waitpid(s->pid, &wstatus, WNOHANG) == 0; ++i)
            usleep(50 * 1000);
        if (wstatus == -1) {
            kill(s->pid, SIGKILL);
            waitpid(s->pid, &wstatus, 0);
        }
        s->pid = 0;
    }
    if (s->database[0] != '\0')
        tk_test_drop_database(s->database);
    /* a sanitizer report in the server's log is the reason behind "no HTTP response" */
    static char log[65536];
    tk_test_server_log(s, log, sizeof(log));
    const char *report = strstr(log, "runtime error");
    if (report == NULL)
        report = strstr(log, "ERROR: AddressSanitizer");
    if (report == NULL)
        report = strstr(log, "ERROR: LeakSanitizer");
    if (report == NULL)
        report = strstr(log, "WARNING: ThreadSanitizer");
    if (report != NULL) {
        fprintf(stderr, "harness: ticketd on port %d reported:\n%.4000s\n", s->port, report);
        return -1;
    }
    return WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : -1;
}

int tk_test_run_ticketd(const char *const *env, const char *const *args, char *output, size_t outsize)
{
    char path[] = "/tmp/tk_test_run_XXXXXX";
    int fd = mkstemp(path);
    pid_t pid = spawn(env, args, fd);
    int wstatus;
    waitpid(pid, &wstatus, 0);
    lseek(fd, 0, SEEK_SET);
    ssize_t n = read(fd, output, outsize - 1);
    output[n > 0 ? n : 0] = '\0';
    close(fd);
    unlink(path);
    return WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : -1;
}

int tk_test_pg_scalar(const char *database, const char *sql, char *out, size_t outsize)
{
    char url[256];
    tk_test_pg_url(database, url, sizeof(url));
    PGconn *conn = PQconnectdb(url);
    int rc = -1;
    out[0] = '\0';
    if (PQstatus(conn) == CONNECTION_OK) {
        PGresult *res = PQexec(conn, sql);
        if (PQresultStatus(res) == PGRES_TUPLES_OK) {
            rc = 0;
            if (PQntuples(res) > 0)
                snprintf(out, outsize, "%s", PQgetvalue(res, 0, 0));
        } else {
            fprintf(stderr, "harness: %s: %s", sql, PQerrorMessage(conn));
        }
        PQclear(res);
    }
    PQfinish(conn);
    return rc;
}

long long tk_test_pg_count(const char *database, const char *sql)
{
    char out[64];
    return tk_test_pg_scalar(database, sql, out, sizeof(out)) == 0 ? atoll(out) : -1;
}

int tk_test_services(const char *action)
{
    char cmd[1024];
    const char *seeds = tk_test_redis_cluster();
    if (seeds != NULL) {
        /* the profile's six nodes start at the first seed's port */
        const char *colon = strchr(seeds, ':');
        snprintf(cmd, sizeof(cmd),
                 "TICKETD_CLUSTER_PORT=%d TICKETD_PG_PORT=%d TICKETD_CLUSTER_PG_PORT=%d "
                 "bash %s/scripts/services.sh %s cluster-test >/dev/null 2>&1",
                 colon != NULL ? atoi(colon + 1) : 7101, tk_test_pg_port(), tk_test_pg_port(), TK_SOURCE_DIR, action);
    } else {
        snprintf(cmd, sizeof(cmd), "TICKETD_REDIS_PORT=%d TICKETD_PG_PORT=%d bash %s/scripts/services.sh %s test >/dev/null 2>&1",
                 tk_test_redis_port(), tk_test_pg_port(), TK_SOURCE_DIR, action);
    }
    return system(cmd);
}

void tk_test_postgres_running(void)
{
    ck_assert_int_eq(tk_test_services("start-postgres"), 0);
}

size_t tk_test_server_log(const tk_test_server_t *s, char *buf, size_t bufsize)
{
    FILE *f = fopen(s->log_path, "r");
    size_t n = f != NULL ? fread(buf, 1, bufsize - 1, f) : 0;
    buf[n] = '\0';
    if (f != NULL)
        fclose(f);
    return n;
}
