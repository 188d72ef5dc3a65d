/*
 * Integration tests of what an idle catalog costs and what it must not cost: the sweeper
 * and the outbox gauge leave a shard that holds nothing alone between their ten-second
 * backstops (engine/sweeper.c, engine/writer.c, engine/shard_activity.c) and, on Redis
 * Cluster, the writers read a quiet shard's stream once a second, not every round
 * (engine/writer_outbox.c), counted in Redis's own command statistics (every node's, on
 * a cluster); and a hold another process makes in such a shard — written straight into
 * Redis here, which this ticketd learns of only from the outbox entry its writer reads —
 * is still released within a second of its deadline.
 */
#include "engine/inventory.h"
#include "tests/support/api.h"
#include "tests/support/redis_direct.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ADMIN_TOKEN "tk-test-only-admin-token-0123456789abcdef"
#define AUTH_HEADERS TK_JSON_HEADER "Authorization: Bearer " ADMIN_TOKEN "\r\n"
#define IDLE_EVENTS 40
#define ELSEWHERE_HOLD_MS 1500

static tk_test_server_t server;

static void start_server(void)
{
    const char *env[] = {"TICKETD_ADMIN_TOKEN=" ADMIN_TOKEN, NULL};
    ck_assert_int_eq(tk_test_server_start(&server, env, NULL), 0);
}

static void stop_server(void)
{
    tk_test_server_stop(&server);
}

static void create_event(const char *name, char *id)
{
    char body[512];
    snprintf(body, sizeof(body),
             "{\"name\": \"%s\", \"date\": \"2035-01-01T20:00:00Z\", "
             "\"ticket_types\": [{\"type\": \"A\", \"price\": 10, \"amount\": 5}]}",
             name);
    tk_api_create_event(&server, AUTH_HEADERS, body, id);
}

/* calls of one command so far from the INFO commandstats text (Lua's own commands included) */
static long long calls_in(const redisReply *r, const char *command)
{
    char needle[64];
    snprintf(needle, sizeof(needle), "cmdstat_%s:calls=", command);
    ck_assert_msg(r != NULL && r->type == REDIS_REPLY_STRING, "INFO commandstats failed");
    const char *at = strstr(r->str, needle);
    return at != NULL ? atoll(at + strlen(needle)) : 0;
}

/* calls of one command so far, summed over every node when the tests run on a cluster */
static long long command_calls(const char *command)
{
    const char *seeds = tk_test_redis_cluster();
    long long calls = 0;
    if (seeds == NULL) {
        redisReply *r = tk_test_redis_command("INFO commandstats");
        calls = calls_in(r, command);
        freeReplyObject(r);
        return calls;
    }
    char list[512];
    snprintf(list, sizeof(list), "%s", seeds);
    for (char *save = NULL, *node = strtok_r(list, ",", &save); node != NULL; node = strtok_r(NULL, ",", &save)) {
        char *colon = strrchr(node, ':');
        ck_assert_ptr_nonnull(colon);
        *colon = '\0';
        redisContext *c = redisConnect(node, atoi(colon + 1));
        ck_assert_msg(c != NULL && !c->err, "cannot reach cluster node %s", node);
        redisReply *r = redisCommand(c, "INFO commandstats");
        calls += calls_in(r, command);
        freeReplyObject(r);
        redisFree(c);
    }
    return calls;
}

/* tickets_left of type A, through the public route (a read-only call: no lazy expiry) */
static json_int_t tickets_left(const char *event)
{
    char body[128];
    int status;
    snprintf(body, sizeof(body), "{\"event_id\": \"%s\"}", event);
    json_t *res = tk_api_call(&server, "POST", "/events/event/", TK_JSON_HEADER, body, &status);
    ck_assert_int_eq(status, 200);
    json_t *type = json_array_get(json_object_get(res, "ticket_types"), 0);
    json_int_t left = json_integer_value(json_object_get(type, "tickets_left"));
    json_decref(res);
    return left;
}

/* a function's {"OK", ...} */
static int is_ok(const redisReply *r)
{
    return r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements >= 1 && r->element[0]->type == REDIS_REPLY_STRING &&
           strcmp(r->element[0]->str, "OK") == 0;
}

START_TEST(idle_shards_are_not_asked_about_every_second)
{
    char id[64];
    for (int i = 0; i < IDLE_EVENTS; ++i) {
        char name[32];
        snprintf(name, sizeof(name), "Idle %d", i);
        create_event(name, id);
    }
    sleep(3); /* every new shard met once: found empty by the sweeper and the gauge */
    long long exists0 = command_calls("exists"), xlen0 = command_calls("xlen"), reads0 = command_calls("xreadgroup");
    sleep(4);
    long long swept = command_calls("exists") - exists0, gauged = command_calls("xlen") - xlen0,
              reads = command_calls("xreadgroup") - reads0;
    /* about once a second each, before: some 200 calls each in these 4 s */
    ck_assert_msg(swept < IDLE_EVENTS, "the sweeper asked %lld times in 4 s about %d idle shards", swept, IDLE_EVENTS);
    ck_assert_msg(gauged < IDLE_EVENTS, "the outbox gauge asked %lld times in 4 s about %d idle shards", gauged, IDLE_EVENTS);
    /* one read a round for all streams on one Redis; on a cluster one per stream, which
     * was 20 a second per idle shard (two writers, ten rounds a second) before */
    ck_assert_msg(reads < 6 * 4 * IDLE_EVENTS, "the writers read %lld times in 4 s for %d idle shards", reads, IDLE_EVENTS);
}
END_TEST

START_TEST(a_hold_made_elsewhere_in_an_idle_shard_is_released_on_time)
{
    char event[64];
    create_event("Elsewhere", event);
    sleep(2); /* the sweeper has found the new shard empty: its next look is ten seconds away */
    ck_assert_int_eq(tickets_left(event), 5);

    /* another process's hold: straight into Redis, as its FCALL would */
    tk_shard_keys_t keys;
    char rid[64];
    tk_shard_keys(event, &keys);
    snprintf(rid, sizeof(rid), "%.4s0000-0000-4000-8000-000000000001", event);
    redisReply *r =
        tk_test_redis_command("FCALL tk_reserve 7 %s %s %s %s %s %s %s %s %s %d 5 1 A 2 %s %s", keys.names[0], keys.names[1],
                              keys.names[2], keys.names[3], keys.names[4], keys.names[5], keys.names[6], event, rid,
                              ELSEWHERE_HOLD_MS, "ffff0000-0000-4000-8000-000000000001", "ffff0000-0000-4000-8000-000000000002");
    ck_assert_msg(is_ok(r), "tk_reserve did not hold: %s", r != NULL && r->type == REDIS_REPLY_ERROR ? r->str : "a refusal");
    freeReplyObject(r);
    ck_assert_int_eq(tickets_left(event), 3);

    /* API.md: within 1 second of the deadline the tickets are back, read or not */
    usleep((ELSEWHERE_HOLD_MS + 1000) * 1000);
    ck_assert_msg(tickets_left(event) == 5, "the hold made elsewhere was not released within 1 s of its deadline");
}
END_TEST

int main(void)
{
    Suite *suite = suite_create("idle_catalog");
    TCase *tc = tcase_create("idle_catalog");
    tcase_set_timeout(tc, 60);
    tcase_add_unchecked_fixture(tc, start_server, stop_server);
    tcase_add_test(tc, idle_shards_are_not_asked_about_every_second);
    tcase_add_test(tc, a_hold_made_elsewhere_in_an_idle_shard_is_released_on_time);
    suite_add_tcase(suite, tc);
    SRunner *runner = srunner_create(suite);
    srunner_run_all(runner, CK_NORMAL);
    int failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed != 0;
}
