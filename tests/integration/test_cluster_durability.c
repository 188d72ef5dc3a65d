/*
 * Durable commands and fenced reads of the router (engine/redis_conn.c) against the
 * cluster-test profile's Redis Cluster: what stands between a shopper and a purchase a
 * failover could take back. With the replica of a key's master stopped (SIGSTOP, for about
 * a second: well inside the cluster's node timeout, so nothing fails over), a durable write
 * and a read that needs its fence are answered "NOREPLICA …" instead of their reply, and a
 * read that needs no fence is answered at once; once the replica runs again, both are
 * answered with their reply; and a WAIT the master gives up on (CLIENT UNBLOCK … ERROR, as
 * when a master is demoted while it waits) confirms nothing either, nor does a fence that
 * could not be written (answered MOVED). At maxmemory (CONFIG SET maxmemory 1 on the key's
 * master) a fenced read still writes its fence, so it is answered NOREPLICA while the
 * replica is stopped and with its reply once the replica runs. The replica is always
 * continued and the master's maxmemory put back, also when a check fails (the parent's
 * teardown). Durable writes sent together share one WAIT (INFO commandstats of the master).
 * On a single Redis there is no replica to wait for: the test exits 77.
 */
#include "engine/cluster_slots.h"
#include "engine/config.h"
#include "engine/redis_conn.h"
#include "engine/timefmt.h"
#include "tests/support/harness.h"
#include "tests/support/redis_direct.h"

#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KEY "tk-test:{durability}:k"
#define FENCE "tk-test:{durability}:fence"

static pid_t replica_pid; /* the stopped replica, continued by the teardown */
static h2o_loop_t *loop;  /* globals, so LeakSanitizer sees them reachable: routers are never closed */
static tk_redis_t *router;
static tk_config_t config;
static char maxmemory_before[32] = "1gb"; /* the key's master's, read by setup */

typedef struct st_result_t {
    int calls, null, type;
    char str[128];
} result_t;

static void on_reply(redisReply *reply, void *data)
{
    result_t *res = data;
    ++res->calls;
    res->null = reply == NULL;
    if (reply == NULL)
        return;
    res->type = reply->type;
    snprintf(res->str, sizeof(res->str), "%.*s", reply->str != NULL ? (int)reply->len : 0, reply->str != NULL ? reply->str : "");
}

static void run_until(const int *flag, int64_t ms)
{
    int64_t deadline = tk_time_mono_ms() + ms;
    while (!*flag && tk_time_mono_ms() < deadline)
        h2o_evloop_run(loop, 10);
}

static void start_router(void)
{
    memset(&config, 0, sizeof(config));
    ck_assert_int_eq(tk_config_parse_cluster_seeds(&config, tk_test_redis_cluster()), 0);
    loop = h2o_evloop_create();
    router = tk_redis_create(loop, &config);
    int64_t deadline = tk_time_mono_ms() + 5000;
    while (!tk_redis_ready(router) && tk_time_mono_ms() < deadline)
        h2o_evloop_run(loop, 10);
    ck_assert_msg(tk_redis_ready(router), "the router never became ready");
}

static int always(const redisReply *reply)
{
    return 1;
}

static int never(const redisReply *reply)
{
    return 0;
}

static result_t durable_set(const char *value)
{
    result_t res = {0};
    const char *argv[] = {"SET", KEY, value};
    size_t argvlen[] = {3, strlen(KEY), strlen(value)};
    ck_assert_int_eq(tk_redis_command_durable(router, on_reply, &res, 3, argv, argvlen), 0);
    run_until(&res.calls, 3000);
    ck_assert_int_eq(res.calls, 1);
    return res;
}

static result_t fenced_get_at(const char *fence, tk_redis_needs_fence_cb needs_fence)
{
    result_t res = {0};
    const char *argv[] = {"GET", KEY};
    size_t argvlen[] = {3, strlen(KEY)};
    ck_assert_int_eq(tk_redis_command_fenced(router, fence, needs_fence, on_reply, &res, 2, argv, argvlen), 0);
    run_until(&res.calls, 3000);
    ck_assert_int_eq(res.calls, 1);
    return res;
}

static result_t fenced_get(tk_redis_needs_fence_cb needs_fence)
{
    return fenced_get_at(FENCE, needs_fence);
}

/* a command on host:port alone, or NULL (also after 5 s: the node may be the stopped replica) */
static redisReply *on_node(const char *host, int port, const char *cmd)
{
    struct timeval tv = {5, 0};
    redisContext *c = redisConnectWithTimeout(host, port, tv);
    if (c != NULL && !c->err)
        redisSetTimeout(c, tv);
    redisReply *r = c != NULL && !c->err ? redisCommand(c, cmd) : NULL;
    if (c != NULL)
        redisFree(c);
    return r;
}

/* the slot map, from CLUSTER SLOTS of a seed */
static const tk_slot_map_t *read_map(void)
{
    static tk_slot_map_t map;
    char err[256];
    redisReply *slots = on_node(config.cluster_seeds[0].host, config.cluster_seeds[0].port, "CLUSTER SLOTS");
    ck_assert_msg(slots != NULL && tk_slot_map_parse(&map, slots, config.cluster_seeds[0].host, err, sizeof(err)) == 0,
                  "CLUSTER SLOTS: %s", slots != NULL ? err : "no answer");
    freeReplyObject(slots);
    return &map;
}

/* the master owning KEY */
static const tk_cluster_node_t *key_master(void)
{
    const tk_slot_map_t *map = read_map();
    uint16_t owner = map->owner[tk_cluster_key_slot(KEY, strlen(KEY))];
    ck_assert_uint_ne(owner, TK_CLUSTER_NO_OWNER);
    return map->masters + owner;
}

/* the process id of a replica of the master owning KEY: the replica from the master's
 * ROLE, its pid from its INFO */
static pid_t replica_of_key_master(void)
{
    const tk_cluster_node_t *master = key_master();
    redisReply *role = on_node(master->host, master->port, "ROLE");
    ck_assert_msg(role != NULL && role->type == REDIS_REPLY_ARRAY && role->elements == 3 &&
                      role->element[2]->type == REDIS_REPLY_ARRAY && role->element[2]->elements > 0,
                  "the master of " KEY " lists no replica");
    const redisReply *first = role->element[2]->element[0]; /* [ip, port, offset] */
    char host[64];
    snprintf(host, sizeof(host), "%s", first->element[0]->str);
    int port = atoi(first->element[1]->str);
    freeReplyObject(role);
    redisReply *server = on_node(host, port, "INFO server");
    ck_assert_msg(server != NULL && server->type == REDIS_REPLY_STRING && strstr(server->str, "process_id:") != NULL,
                  "INFO server of the replica %s:%d", host, port);
    pid_t pid = (pid_t)atol(strstr(server->str, "process_id:") + strlen("process_id:"));
    freeReplyObject(server);
    return pid;
}

static void continue_replica(void)
{
    if (replica_pid > 0)
        kill(replica_pid, SIGCONT);
}

/* After one durable write its replica confirmed: the key's master (host, port) with that
 * replica stopped (SIGSTOP; the teardown lets it go on). */
static void stop_the_replica(char host[64], int *port)
{
    start_router();
    ck_assert_str_eq(durable_set("before").str, "OK");
    const tk_cluster_node_t *master = key_master();
    *port = master->port;
    snprintf(host, 64, "%s", master->host);
    replica_pid = replica_of_key_master();
    ck_assert_int_eq(kill(replica_pid, SIGSTOP), 0);
}

START_TEST(without_a_replica_nothing_is_acknowledged)
{
    start_router();
    ck_assert_str_eq(durable_set("before").str, "OK");
    replica_pid = replica_of_key_master();

    ck_assert_int_eq(kill(replica_pid, SIGSTOP), 0);
    result_t set = durable_set("while-stopped");
    result_t fenced = fenced_get(always);
    result_t plain = fenced_get(never);
    continue_replica();

    ck_assert_msg(set.type == REDIS_REPLY_ERROR && strncmp(set.str, "NOREPLICA", 9) == 0, "durable SET answered %d %s", set.type,
                  set.str);
    ck_assert_msg(fenced.type == REDIS_REPLY_ERROR && strncmp(fenced.str, "NOREPLICA", 9) == 0, "fenced GET answered %d %s",
                  fenced.type, fenced.str);
    ck_assert_int_eq(plain.type, REDIS_REPLY_STRING); /* no fence needed: the master's answer, at once */
    ck_assert_str_eq(plain.str, "while-stopped");

    /* the replica catches up: the same calls are answered with their replies */
    ck_assert_str_eq(durable_set("after").str, "OK");
    result_t again = fenced_get(always);
    ck_assert_int_eq(again.type, REDIS_REPLY_STRING);
    ck_assert_str_eq(again.str, "after");
}
END_TEST

/* the id of a client of host:port blocked in WAIT, or -1 */
static long long client_in_wait(const char *host, int port)
{
    redisReply *list = on_node(host, port, "CLIENT LIST");
    long long id = -1;
    const char *text = list != NULL && list->type == REDIS_REPLY_STRING ? list->str : "";
    const char *at = strstr(text, " cmd=wait ");
    if (at != NULL) {
        while (at > text && at[-1] != '\n') /* back to the start of its line: "id=N addr=..." */
            --at;
        if (strncmp(at, "id=", 3) == 0)
            id = atoll(at + 3);
    }
    freeReplyObject(list);
    return id;
}

START_TEST(a_wait_the_master_gives_up_on_confirms_nothing)
{
    char host[64];
    int port;
    stop_the_replica(host, &port);

    result_t res = {0};
    const char *argv[] = {"SET", KEY, "unblocked"};
    size_t argvlen[] = {3, strlen(KEY), strlen("unblocked")};
    ck_assert_int_eq(tk_redis_command_durable(router, on_reply, &res, 3, argv, argvlen), 0);
    long long waiting = -1;
    for (int i = 0; i < 200 && waiting < 0 && res.calls == 0; ++i) {
        h2o_evloop_run(loop, 1);
        waiting = client_in_wait(host, port);
    }
    char unblock[64];
    snprintf(unblock, sizeof(unblock), "CLIENT UNBLOCK %lld ERROR", waiting);
    redisReply *r = waiting >= 0 ? on_node(host, port, unblock) : NULL;
    int unblocked = r != NULL && r->type == REDIS_REPLY_INTEGER && r->integer == 1;
    freeReplyObject(r);
    run_until(&res.calls, 3000);
    continue_replica();

    ck_assert_msg(unblocked, "no client of the master was unblocked from WAIT (found id %lld)", waiting);
    ck_assert_int_eq(res.calls, 1);
    ck_assert_msg(res.type == REDIS_REPLY_ERROR && strncmp(res.str, "NOREPLICA", 9) == 0, "durable SET answered %d %s", res.type,
                  res.str);
}
END_TEST

/* CONFIG SET maxmemory on host:port (value, e.g. "1"); 0 when it said OK */
static int set_maxmemory(const char *host, int port, const char *value)
{
    char cmd[96];
    snprintf(cmd, sizeof(cmd), "CONFIG SET maxmemory %s maxmemory-policy noeviction", value);
    redisReply *r = on_node(host, port, cmd);
    int ok = r != NULL && r->type == REDIS_REPLY_STATUS;
    freeReplyObject(r);
    return ok ? 0 : -1;
}

START_TEST(a_fence_that_is_not_written_confirms_nothing)
{
    start_router();
    /* a fence key of a slot another master owns: the fence is answered MOVED */
    const tk_slot_map_t *map = read_map();
    uint16_t key_owner = map->owner[tk_cluster_key_slot(KEY, strlen(KEY))];
    char fence[64];
    for (int i = 0;; ++i) {
        snprintf(fence, sizeof(fence), "tk-test:{elsewhere%d}:fence", i);
        uint16_t owner = map->owner[tk_cluster_key_slot(fence, strlen(fence))];
        if (owner != key_owner && owner != TK_CLUSTER_NO_OWNER)
            break;
    }
    ck_assert_str_eq(durable_set("written").str, "OK"); /* the replica runs: WAIT alone would confirm */
    result_t res = fenced_get_at(fence, always);
    ck_assert_msg(res.type == REDIS_REPLY_ERROR && strncmp(res.str, "NOREPLICA", 9) == 0, "fenced GET answered %d %s", res.type,
                  res.str);
}
END_TEST

START_TEST(at_maxmemory_a_fenced_read_still_writes_its_fence)
{
    freeReplyObject(tk_test_redis_command("DEL %s", FENCE));
    char host[64];
    int port;
    stop_the_replica(host, &port);

    /* another client's write, which the stopped replica does not have, then Redis full */
    redisReply *r = on_node(host, port, "SET " KEY " unreplicated");
    ck_assert_msg(r != NULL && r->type == REDIS_REPLY_STATUS, "the master refused the write");
    freeReplyObject(r);
    ck_assert_int_eq(set_maxmemory(host, port, "1"), 0);
    result_t stopped = fenced_get(always);
    continue_replica();
    result_t running = fenced_get(always); /* the replica catches up, the fence with it */
    redisReply *fenced = on_node(host, port, "EXISTS " FENCE);
    ck_assert_int_eq(set_maxmemory(host, port, maxmemory_before), 0);

    ck_assert_msg(stopped.type == REDIS_REPLY_ERROR && strncmp(stopped.str, "NOREPLICA", 9) == 0, "fenced GET answered %d %s",
                  stopped.type, stopped.str);
    ck_assert_msg(running.type == REDIS_REPLY_STRING, "fenced GET answered %d %s", running.type, running.str);
    ck_assert_str_eq(running.str, "unreplicated");
    ck_assert_msg(fenced != NULL && fenced->type == REDIS_REPLY_INTEGER && fenced->integer == 1, "the fence was not written");
    freeReplyObject(fenced);
}
END_TEST

/* how many WAITs host:port has run */
static long long wait_calls(const char *host, int port)
{
    redisReply *stats = on_node(host, port, "INFO commandstats");
    const char *at = stats != NULL && stats->type == REDIS_REPLY_STRING ? strstr(stats->str, "cmdstat_wait:calls=") : NULL;
    long long calls = at != NULL ? atoll(at + strlen("cmdstat_wait:calls=")) : 0;
    freeReplyObject(stats);
    return calls;
}

START_TEST(durable_writes_sent_together_share_one_wait)
{
    char host[64];
    int port;
    stop_the_replica(host, &port);
    long long waits = wait_calls(host, port); /* the durable write's own WAIT is counted already */

    enum { K = 5 };
    result_t res[K] = {{0}};
    int answered = 0;
    for (int i = 0; i < K; ++i) {
        const char *argv[] = {"SET", KEY, "together"};
        size_t argvlen[] = {3, strlen(KEY), strlen("together")};
        ck_assert_int_eq(tk_redis_command_durable(router, on_reply, &res[i], 3, argv, argvlen), 0);
    }
    int64_t deadline = tk_time_mono_ms() + 3000 * K;
    while (answered < K && tk_time_mono_ms() < deadline) {
        h2o_evloop_run(loop, 10);
        for (answered = 0; answered < K && res[answered].calls == 1; ++answered)
            ;
    }
    continue_replica();

    ck_assert_int_eq(answered, K);
    for (int i = 0; i < K; ++i)
        ck_assert_msg(res[i].type == REDIS_REPLY_ERROR && strncmp(res[i].str, "NOREPLICA", 9) == 0, "durable SET %d answered %d %s",
                      i, res[i].type, res[i].str);
    ck_assert_int_eq(wait_calls(host, port) - waits, 1);
}
END_TEST

/* the parent's, before the tests: the replica and the maxmemory the teardown puts back */
static void setup(void)
{
    memset(&config, 0, sizeof(config));
    ck_assert_int_eq(tk_config_parse_cluster_seeds(&config, tk_test_redis_cluster()), 0);
    replica_pid = replica_of_key_master();
    const tk_cluster_node_t *master = key_master();
    redisReply *r = on_node(master->host, master->port, "CONFIG GET maxmemory");
    ck_assert_msg(r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements == 2, "CONFIG GET maxmemory");
    snprintf(maxmemory_before, sizeof(maxmemory_before), "%s", r->element[1]->str);
    freeReplyObject(r);
}

static void teardown(void)
{
    /* the child stopped the replica and filled the master: undo both, whatever happened
     * (the replica found by setup first: a stopped one cannot tell its process id) */
    continue_replica();
    start_router();
    replica_pid = replica_of_key_master();
    continue_replica();
    const tk_cluster_node_t *master = key_master();
    set_maxmemory(master->host, master->port, maxmemory_before);
    redisReply *r = tk_test_redis_command("DEL %s %s", KEY, FENCE);
    if (r != NULL)
        freeReplyObject(r);
}

int main(void)
{
    if (tk_test_redis_cluster() == NULL) {
        printf("cluster_durability: TICKETD_TEST_REDIS_CLUSTER is unset: a single Redis has no replica to wait for\n");
        return 77; /* SKIP_RETURN_CODE */
    }
    Suite *s = suite_create("cluster_durability");
    TCase *tc = tcase_create("replica_stopped");
    tcase_add_unchecked_fixture(tc, setup, teardown);
    tcase_add_test(tc, without_a_replica_nothing_is_acknowledged);
    tcase_add_test(tc, a_wait_the_master_gives_up_on_confirms_nothing);
    tcase_add_test(tc, a_fence_that_is_not_written_confirms_nothing);
    tcase_add_test(tc, at_maxmemory_a_fenced_read_still_writes_its_fence);
    tcase_add_test(tc, durable_writes_sent_together_share_one_wait);
    suite_add_tcase(s, tc);
    SRunner *runner = srunner_create(s);
    srunner_run_all(runner, CK_NORMAL);
    int failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
