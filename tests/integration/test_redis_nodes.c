/*
 * Tests of engine/redis_nodes.c, the blocking connections to every Redis master, against
 * the test Redis of the run: a single Redis (one master owning every slot), or with
 * TICKETD_TEST_REDIS_CLUSTER the cluster-test profile's cluster (`scripts/test.sh
 * --cluster`). Keys are routed to their owner and read back there, a pipeline spanning
 * the masters answers in order, refresh counts new masters, and on a cluster a slot moved
 * under a connection's feet (the resharding steps: IMPORTING, MIGRATING, SETSLOT NODE on
 * every master) is followed through ASK and then MOVED; the slot is moved back after; and
 * with every seed gone and every connection dropped, the masters of the last map are
 * found again. No node is stopped or killed here (the lost seed is a forwarder).
 */
#include "engine/config.h"
#include "engine/redis_nodes.h"
#include "tests/support/forwarder.h"
#include "tests/support/harness.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NKEYS 64

static char seeds_override[64]; /* TICKETD_REDIS_CLUSTER instead of the run's seeds, when set */

static const char *lookup(const char *name, void *ctx)
{
    static char url[128];
    if (strcmp(name, "TICKETD_REDIS_CLUSTER") == 0)
        return seeds_override[0] != '\0' ? seeds_override : tk_test_redis_cluster();
    if (strcmp(name, "TICKETD_REDIS_URL") == 0) {
        tk_test_redis_url(url, sizeof(url));
        return url;
    }
    return NULL;
}

static tk_config_t config;

static tk_redis_nodes_t *open_nodes(void)
{
    char err[512];
    ck_assert_msg(tk_config_load(&config, lookup, NULL, err, sizeof(err)) == 0, "%s", err);
    tk_redis_nodes_t *n = tk_redis_nodes_open(&config, 5000, err, sizeof(err));
    ck_assert_msg(n != NULL, "%s", err);
    ck_assert_int_eq(tk_redis_nodes_is_cluster(n), tk_test_redis_cluster() != NULL);
    return n;
}

static void key_name(int i, char *buf, size_t bufsize)
{
    snprintf(buf, bufsize, "tk-test:{nodes-%d-%d}:k", (int)getpid(), i);
}

static void ck_status(redisReply *r)
{
    ck_assert_msg(r != NULL && r->type == REDIS_REPLY_STATUS, "reply: %s", r == NULL ? "none" : r->str != NULL ? r->str : "?");
    freeReplyObject(r);
}

START_TEST(keys_go_to_their_owner_and_are_read_back_there)
{
    tk_redis_nodes_t *n = open_nodes();
    int used[TK_CLUSTER_MAX_MASTERS] = {0}, nused = 0;
    for (int i = 0; i < NKEYS; ++i) {
        char key[64];
        key_name(i, key, sizeof(key));
        ck_status(tk_redis_nodes_command(n, "SET %s v%d", key, i));
        size_t owner = tk_redis_nodes_index_of(n, key, strlen(key));
        ck_assert_uint_lt(owner, tk_redis_nodes_count(n));
        nused += !used[owner]++;
        /* straight to the owner's connection, no redirect followed: the key is there */
        redisReply *r = redisCommand(tk_redis_nodes_for_key(n, key, strlen(key)), "GET %s", key);
        ck_assert_msg(r != NULL && r->type == REDIS_REPLY_STRING, "GET %s at %s", key, tk_redis_nodes_name(n, owner));
        char want[16];
        snprintf(want, sizeof(want), "v%d", i);
        ck_assert_str_eq(r->str, want);
        freeReplyObject(r);
        r = tk_redis_nodes_command(n, "DEL %s", key);
        ck_assert(r != NULL && r->type == REDIS_REPLY_INTEGER && r->integer == 1);
        freeReplyObject(r);
    }
    if (tk_redis_nodes_is_cluster(n))
        ck_assert_int_eq(nused, (int)tk_redis_nodes_count(n)); /* 64 tags reach every master */
    else
        ck_assert_int_eq(nused, 1);
    /* a command that addresses no key goes to some master */
    redisReply *pong = tk_redis_nodes_command(n, "PING");
    ck_assert(pong != NULL && pong->type == REDIS_REPLY_STATUS);
    freeReplyObject(pong);
    tk_redis_nodes_close(n);
}
END_TEST

START_TEST(a_pipeline_over_every_master_answers_in_order)
{
    tk_redis_nodes_t *n = open_nodes();
    tk_redis_pipeline_t *p = tk_redis_pipeline_new(n);
    for (int i = 0; i < NKEYS; ++i) {
        char key[64];
        key_name(i, key, sizeof(key));
        tk_redis_pipeline_append(p, "SET %s p%d", key, i);
        tk_redis_pipeline_append(p, "GET %s", key);
        const char *argv[] = {"DEL", key};
        size_t argvlen[] = {3, strlen(key)};
        tk_redis_pipeline_append_argv(p, 2, argv, argvlen);
    }
    ck_assert_uint_eq(tk_redis_pipeline_count(p), 3 * NKEYS);
    ck_assert_uint_eq(tk_redis_pipeline_exec(p), 0);
    for (int i = 0; i < NKEYS; ++i) {
        redisReply *set = tk_redis_pipeline_reply(p, 3 * i), *get = tk_redis_pipeline_reply(p, 3 * i + 1),
                   *del = tk_redis_pipeline_reply(p, 3 * i + 2);
        ck_assert(set != NULL && set->type == REDIS_REPLY_STATUS);
        ck_assert_msg(get != NULL && get->type == REDIS_REPLY_STRING, "GET %d: %s", i, get != NULL ? get->str : "none");
        char want[16];
        snprintf(want, sizeof(want), "p%d", i);
        ck_assert_str_eq(get->str, want);
        ck_assert(del != NULL && del->type == REDIS_REPLY_INTEGER && del->integer == 1);
    }
    tk_redis_pipeline_free(p);
    tk_redis_nodes_close(n);
}
END_TEST

START_TEST(a_lost_connection_is_dropped_and_made_again)
{
    char err[512], key[64];
    tk_redis_nodes_t *n = open_nodes();
    for (int i = 0;; ++i) { /* a key of the first master */
        key_name(2000 + i, key, sizeof(key));
        if (tk_redis_nodes_index_of(n, key, strlen(key)) == 0)
            break;
    }
    ck_status(redisCommand(tk_redis_nodes_at(n, 0), "QUIT")); /* the server closes it */
    ck_assert(tk_redis_nodes_command(n, "GET %s", key) == NULL);
    ck_assert(tk_redis_nodes_at(n, 0) == NULL);
    ck_assert(!tk_redis_nodes_complete(n));
    ck_assert_int_ge(tk_redis_nodes_reconnect(n, err, sizeof(err)), 0);
    ck_assert(tk_redis_nodes_complete(n));
    redisReply *r = tk_redis_nodes_command(n, "GET %s", key);
    ck_assert(r != NULL && r->type == REDIS_REPLY_NIL);
    freeReplyObject(r);
    tk_redis_nodes_close(n);
}
END_TEST

START_TEST(refresh_counts_the_masters_new_since_the_last_call)
{
    char err[512];
    tk_redis_nodes_t *n = open_nodes();
    size_t nmasters = tk_redis_nodes_count(n), slots = 0;
    for (size_t i = 0; i <= nmasters; ++i)
        slots += tk_redis_nodes_slots(n, i);
    ck_assert_uint_eq(slots, TK_CLUSTER_SLOTS);
    ck_assert_uint_eq(tk_redis_nodes_slots(n, nmasters), 0);
    if (!tk_redis_nodes_is_cluster(n)) {
        ck_assert_uint_eq(nmasters, 1);
        ck_assert_int_eq(tk_redis_nodes_refresh(n, err, sizeof(err)), 0);
    } else {
        ck_assert_uint_ge(nmasters, 3);
        /* opening counts as no call: the first refresh reports every master */
        ck_assert_int_eq(tk_redis_nodes_refresh(n, err, sizeof(err)), (int)nmasters);
        for (size_t i = 0; i < nmasters; ++i)
            ck_assert(tk_redis_nodes_was_new(n, i));
        ck_assert_int_eq(tk_redis_nodes_refresh(n, err, sizeof(err)), 0);
        for (size_t i = 0; i < nmasters; ++i) {
            ck_assert(!tk_redis_nodes_was_new(n, i));
            ck_assert(tk_redis_nodes_at(n, i) != NULL);
            ck_assert_uint_ge(tk_redis_nodes_node(n, i)->nreplicas, 1);
        }
    }
    tk_redis_nodes_close(n);
}
END_TEST

/* the node id of master i */
static void node_id(tk_redis_nodes_t *n, size_t i, char *id, size_t idsize)
{
    redisReply *r = redisCommand(tk_redis_nodes_at(n, i), "CLUSTER MYID");
    ck_assert(r != NULL && r->type == REDIS_REPLY_STRING);
    snprintf(id, idsize, "%s", r->str);
    freeReplyObject(r);
}

/* Moves an empty slot from master from to master to the way redis-cli --cluster reshard
 * does, with the migration left open when finish is 0. */
static void start_move(tk_redis_nodes_t *n, unsigned slot, size_t from, size_t to)
{
    char from_id[64], to_id[64];
    node_id(n, from, from_id, sizeof(from_id));
    node_id(n, to, to_id, sizeof(to_id));
    ck_status(redisCommand(tk_redis_nodes_at(n, to), "CLUSTER SETSLOT %u IMPORTING %s", slot, from_id));
    ck_status(redisCommand(tk_redis_nodes_at(n, from), "CLUSTER SETSLOT %u MIGRATING %s", slot, to_id));
}

static void finish_move(tk_redis_nodes_t *n, unsigned slot, size_t to)
{
    char to_id[64];
    node_id(n, to, to_id, sizeof(to_id));
    /* the new owner first (it bumps its epoch), then every other master */
    ck_status(redisCommand(tk_redis_nodes_at(n, to), "CLUSTER SETSLOT %u NODE %s", slot, to_id));
    for (size_t i = 0; i < tk_redis_nodes_count(n); ++i)
        if (i != to)
            ck_status(redisCommand(tk_redis_nodes_at(n, i), "CLUSTER SETSLOT %u NODE %s", slot, to_id));
}

START_TEST(a_moved_slot_is_followed_through_ask_then_moved)
{
    if (tk_test_redis_cluster() == NULL)
        return; /* a single Redis never redirects */
    char err[512], key[64], owner_name[300], target_name[300];
    tk_redis_nodes_t *admin = open_nodes();
    /* a key whose slot holds nothing, so the slot can be moved */
    unsigned slot = 0;
    for (int i = 0;; ++i) {
        key_name(1000 + i, key, sizeof(key));
        slot = tk_cluster_key_slot(key, strlen(key));
        redisReply *r = redisCommand(tk_redis_nodes_for_key(admin, key, strlen(key)), "CLUSTER COUNTKEYSINSLOT %u", slot);
        ck_assert(r != NULL && r->type == REDIS_REPLY_INTEGER);
        int empty = r->integer == 0;
        freeReplyObject(r);
        if (empty)
            break;
    }
    size_t from = tk_redis_nodes_index_of(admin, key, strlen(key)), to = (from + 1) % tk_redis_nodes_count(admin);
    snprintf(owner_name, sizeof(owner_name), "%s", tk_redis_nodes_name(admin, from));
    snprintf(target_name, sizeof(target_name), "%s", tk_redis_nodes_name(admin, to));

    tk_redis_nodes_t *n = open_nodes(); /* its map is about to go stale */
    start_move(admin, slot, from, to);
    /* migrating, the key absent at the old owner: ASK, ASKING at the new one, map unchanged */
    ck_status(tk_redis_nodes_command(n, "SET %s moved", key));
    ck_assert_str_eq(tk_redis_nodes_name(n, tk_redis_nodes_index_of(n, key, strlen(key))), owner_name);
    finish_move(admin, slot, to);
    /* the old owner now answers MOVED: the map is read again and the command runs at the new owner */
    redisReply *r = tk_redis_nodes_command(n, "GET %s", key);
    ck_assert_msg(r != NULL && r->type == REDIS_REPLY_STRING, "GET after the move: %s", r != NULL ? r->str : "none");
    ck_assert_str_eq(r->str, "moved");
    freeReplyObject(r);
    ck_assert_str_eq(tk_redis_nodes_name(n, tk_redis_nodes_index_of(n, key, strlen(key))), target_name);
    /* the key really is at the new owner */
    r = redisCommand(tk_redis_nodes_for_key(n, key, strlen(key)), "GET %s", key);
    ck_assert(r != NULL && r->type == REDIS_REPLY_STRING);
    freeReplyObject(r);
    /* a move brings no new master */
    ck_assert_int_eq(tk_redis_nodes_refresh(n, err, sizeof(err)), (int)tk_redis_nodes_count(n));
    ck_assert_int_eq(tk_redis_nodes_refresh(n, err, sizeof(err)), 0);

    /* put the slot back where it was, empty */
    r = tk_redis_nodes_command(n, "DEL %s", key);
    ck_assert(r != NULL && r->type == REDIS_REPLY_INTEGER && r->integer == 1);
    freeReplyObject(r);
    start_move(admin, slot, to, from);
    finish_move(admin, slot, from);
    tk_redis_nodes_close(n);
    tk_redis_nodes_close(admin);
}
END_TEST

/* After a failover every seed may be gone while the masters that replaced them are fine:
 * a process whose connections all dropped finds the masters of its last map again. Here
 * the only seed is a forwarder to a node, stopped once the map is read. */
START_TEST(the_masters_are_found_again_when_every_seed_is_gone)
{
    const char *seeds = tk_test_redis_cluster();
    if (seeds == NULL)
        return; /* a single Redis has no seeds */
    char err[512];
    tk_test_forwarder_t forwarder;
    tk_test_forwarder_start(&forwarder, "127.0.0.1", atoi(strchr(seeds, ':') + 1), NULL);
    snprintf(seeds_override, sizeof(seeds_override), "127.0.0.1:%d", forwarder.port);
    tk_redis_nodes_t *n = open_nodes();
    seeds_override[0] = '\0';
    tk_test_forwarder_stop(&forwarder);
    size_t masters = tk_redis_nodes_count(n);
    for (size_t i = 0; i < masters; ++i) /* every connection closed by its server */
        ck_status(redisCommand(tk_redis_nodes_at(n, i), "QUIT"));
    ck_assert_msg(tk_redis_nodes_reconnect(n, err, sizeof(err)) >= 0, "%s", err);
    ck_assert(tk_redis_nodes_complete(n));
    ck_assert_uint_eq(tk_redis_nodes_count(n), masters);
    for (size_t i = 0; i < masters; ++i) {
        redisReply *r = redisCommand(tk_redis_nodes_at(n, i), "PING");
        ck_assert(r != NULL && r->type == REDIS_REPLY_STATUS);
        freeReplyObject(r);
    }
    tk_redis_nodes_close(n);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("redis_nodes");
    TCase *tc = tcase_create("redis_nodes");
    tcase_add_test(tc, keys_go_to_their_owner_and_are_read_back_there);
    tcase_add_test(tc, a_pipeline_over_every_master_answers_in_order);
    tcase_add_test(tc, a_lost_connection_is_dropped_and_made_again);
    tcase_add_test(tc, refresh_counts_the_masters_new_since_the_last_call);
    tcase_add_test(tc, a_moved_slot_is_followed_through_ask_then_moved);
    tcase_add_test(tc, the_masters_are_found_again_when_every_seed_is_gone);
    suite_add_tcase(s, tc);
    SRunner *runner = srunner_create(s);
    srunner_run_all(runner, CK_NORMAL);
    int failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
