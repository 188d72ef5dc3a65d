/*
 * test_dead_letter.c: tests of tk_dead_letter, the function of lua/ticketd.lua that moves
 * an outbox entry the writer cannot persist to its shard's dead-letter stream, and of the
 * writer's way of calling it (tk_inventory_dead_letter), over tests/lua/support.c (real
 * Redis, the library loaded from the source tree, a connection per test). Each test works in a random shard whose outbox does not
 * exist yet (so no event of another test lives there) and deletes its two streams afterwards; nothing is flushed.
 */
#include "tests/lua/support.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char shard[TK_SHARD_LEN + 1], ob[TK_KEY_LEN], dead[TK_KEY_LEN];

/* a random unused shard with the writers' group on its outbox */
static void setup(void)
{
    for (int in_use = 1; in_use;) {
        char id[TK_UUID_LEN + 1];
        tk_uuid_v4(id);
        snprintf(shard, sizeof(shard), "%.4s", id);
        snprintf(ob, sizeof(ob), "tk:{%s}:ob", shard);
        snprintf(dead, sizeof(dead), "tk:{%s}:dead", shard);
        redisReply *r = redisCommand(tk_lua_redis, "EXISTS %s %s", ob, dead);
        ck_assert(r != NULL && r->type == REDIS_REPLY_INTEGER);
        in_use = r->integer != 0;
        freeReplyObject(r);
    }
    redisReply *r = redisCommand(tk_lua_redis, "XGROUP CREATE %s " TK_OUTBOX_GROUP " 0 MKSTREAM", ob);
    ck_assert(r != NULL && r->type == REDIS_REPLY_STATUS);
    freeReplyObject(r);
}

/* on a connection of its own: the support's teardown may have closed the test's */
static void teardown(void)
{
    redisContext *c = tk_lua_connect();
    freeReplyObject(redisCommand(c, "DEL %s %s", ob, dead));
    redisFree(c);
}

/* Appends an entry with field m to stream key and reads it as a writer would, so it is
 * pending in the group; its id goes to id. */
static void add_pending(const char *key, const char *m, size_t mlen, char id[64])
{
    redisReply *r = redisCommand(tk_lua_redis, "XADD %s * m %b", key, m, mlen);
    ck_assert(r != NULL && r->type == REDIS_REPLY_STRING);
    snprintf(id, 64, "%s", r->str);
    freeReplyObject(r);
    r = redisCommand(tk_lua_redis, "XREADGROUP GROUP " TK_OUTBOX_GROUP " test COUNT 100 STREAMS %s >", key);
    ck_assert(r != NULL && r->type == REDIS_REPLY_ARRAY);
    freeReplyObject(r);
}

static int in_stream(const char *key, const char *id)
{
    redisReply *r = redisCommand(tk_lua_redis, "XRANGE %s %s %s", key, id, id);
    ck_assert(r != NULL && r->type == REDIS_REPLY_ARRAY);
    int n = (int)r->elements;
    freeReplyObject(r);
    return n;
}

static int pending(const char *id)
{
    redisReply *r = redisCommand(tk_lua_redis, "XPENDING %s " TK_OUTBOX_GROUP " %s %s 10", ob, id, id);
    ck_assert(r != NULL && r->type == REDIS_REPLY_ARRAY);
    int n = (int)r->elements;
    freeReplyObject(r);
    return n;
}

/* the last dead letter's "r" (dead_letters), empty when it has none */
static char dead_rid[64];

/* The dead letters of id: how many, and the fields of the last one ("m", "err", and "r"
 * in dead_rid). */
static int dead_letters(const char *id, char *m, size_t msize, char *err, size_t errsize)
{
    redisReply *r = redisCommand(tk_lua_redis, "XRANGE %s - +", dead);
    ck_assert(r != NULL && r->type == REDIS_REPLY_ARRAY);
    int n = 0;
    for (size_t i = 0; i < r->elements; ++i) {
        redisReply *fields = r->element[i]->element[1];
        ck_assert_msg(fields->elements == 6 || fields->elements == 8, "%zu fields", fields->elements);
        ck_assert_str_eq(fields->element[0]->str, "id");
        ck_assert_str_eq(fields->element[2]->str, "m");
        ck_assert_str_eq(fields->element[4]->str, "err");
        if (strcmp(fields->element[1]->str, id) != 0)
            continue;
        ++n;
        snprintf(m, msize, "%.*s", (int)fields->element[3]->len, fields->element[3]->str);
        snprintf(err, errsize, "%s", fields->element[5]->str);
        dead_rid[0] = '\0';
        if (fields->elements == 8) {
            ck_assert_str_eq(fields->element[6]->str, "r");
            snprintf(dead_rid, sizeof(dead_rid), "%s", fields->element[7]->str);
        }
    }
    freeReplyObject(r);
    return n;
}

static redisReply *fcall(const char *k1, const char *k2, const char *id, const char *reason)
{
    const char *argv[] = {"FCALL", "tk_dead_letter", "2", k1, k2, id, reason};
    return redisCommandArgv(tk_lua_redis, 7, argv, NULL);
}

START_TEST(an_entry_moves_with_its_reason_in_one_call)
{
    char id[64], m[64], err[128];
    add_pending(ob, "\xc1garbage", 8, id);
    ck_assert_int_eq(pending(id), 1);
    redisReply *r = fcall(ob, dead, id, "not a well-formed outbox entry");
    ck_assert(r != NULL && r->type == REDIS_REPLY_INTEGER);
    ck_assert_int_eq(r->integer, 1);
    freeReplyObject(r);
    ck_assert_int_eq(in_stream(ob, id), 0);
    ck_assert_int_eq(pending(id), 0);
    ck_assert_int_eq(dead_letters(id, m, sizeof(m), err, sizeof(err)), 1);
    ck_assert(memcmp(m, "\xc1garbage", 8) == 0);
    ck_assert_str_eq(err, "not a well-formed outbox entry");
}
END_TEST

/* an entry names its reservation in "r" beside the record: the dead letter keeps both */
START_TEST(an_entry_keeps_its_reservation_id)
{
    char id[64], m[64], err[128];
    static const char rid[] = "0a1b2c3d-0000-4000-8000-000000000001";
    redisReply *r = redisCommand(tk_lua_redis, "XADD %s * r %s m %b", ob, rid, "\xc1garbage", (size_t)8);
    ck_assert(r != NULL && r->type == REDIS_REPLY_STRING);
    snprintf(id, sizeof(id), "%s", r->str);
    freeReplyObject(r);
    r = fcall(ob, dead, id, "refused by PostgreSQL");
    ck_assert(r != NULL && r->type == REDIS_REPLY_INTEGER);
    ck_assert_int_eq(r->integer, 1);
    freeReplyObject(r);
    ck_assert_int_eq(dead_letters(id, m, sizeof(m), err, sizeof(err)), 1);
    ck_assert(memcmp(m, "\xc1garbage", 8) == 0);
    ck_assert_str_eq(err, "refused by PostgreSQL");
    ck_assert_str_eq(dead_rid, rid);
    ck_assert_int_eq(in_stream(ob, id), 0);
}
END_TEST

START_TEST(a_second_move_of_the_same_entry_adds_nothing)
{
    char id[64], m[64], err[128];
    add_pending(ob, "x", 1, id);
    freeReplyObject(fcall(ob, dead, id, "first"));
    redisReply *r = fcall(ob, dead, id, "second");
    ck_assert(r != NULL && r->type == REDIS_REPLY_INTEGER);
    ck_assert_int_eq(r->integer, 0);
    freeReplyObject(r);
    ck_assert_int_eq(dead_letters(id, m, sizeof(m), err, sizeof(err)), 1);
    ck_assert_str_eq(err, "first");
}
END_TEST

START_TEST(an_entry_without_m_keeps_its_id_and_reason)
{
    char id[64], m[64] = "unset", err[128];
    redisReply *r = redisCommand(tk_lua_redis, "XADD %s * other 1", ob);
    ck_assert(r != NULL && r->type == REDIS_REPLY_STRING);
    snprintf(id, sizeof(id), "%s", r->str);
    freeReplyObject(r);
    r = fcall(ob, dead, id, "no m");
    ck_assert_int_eq(r->integer, 1);
    freeReplyObject(r);
    ck_assert_int_eq(dead_letters(id, m, sizeof(m), err, sizeof(err)), 1);
    ck_assert_str_eq(m, "");
    ck_assert_int_eq(in_stream(ob, id), 0);
}
END_TEST

/* A refused call changes nothing: the entry stays in the outbox, pending, not in dead. */
static void assert_refused(redisReply *r, const char *id)
{
    char m[64], err[128];
    ck_assert(r != NULL && r->type == REDIS_REPLY_ERROR);
    ck_assert_msg(strncmp(r->str, "ERR ticketd: ", 13) == 0, "unexpected error: %s", r->str);
    freeReplyObject(r);
    ck_assert_int_eq(in_stream(ob, id), 1);
    ck_assert_int_eq(pending(id), 1);
    ck_assert_int_eq(dead_letters(id, m, sizeof(m), err, sizeof(err)), 0);
}

START_TEST(malformed_calls_are_refused_and_change_nothing)
{
    char id[64], other_dead[TK_KEY_LEN];
    add_pending(ob, "x", 1, id);
    snprintf(other_dead, sizeof(other_dead), "tk:{%04x}:dead", (unsigned)(strtoul(shard, NULL, 16) ^ 1));
    assert_refused(fcall(ob, other_dead, id, "why"), id);    /* dead of another shard */
    assert_refused(fcall(dead, ob, id, "why"), id);          /* keys swapped */
    assert_refused(fcall(ob, dead, "not-an-id", "why"), id); /* not a stream id */
    redisReply *r = redisCommand(tk_lua_redis, "FCALL tk_dead_letter 2 %s %s %s", ob, dead, id);
    assert_refused(r, id); /* no reason */
}
END_TEST

/* an entry no writer has read yet (not pending) moves all the same */
START_TEST(an_entry_nobody_read_moves_too)
{
    char id[64], m[64], err[128];
    redisReply *r = redisCommand(tk_lua_redis, "XADD %s * m fresh", ob);
    ck_assert(r != NULL && r->type == REDIS_REPLY_STRING);
    snprintf(id, sizeof(id), "%s", r->str);
    freeReplyObject(r);
    ck_assert_int_eq(pending(id), 0);
    r = fcall(ob, dead, id, "why");
    ck_assert(r != NULL && r->type == REDIS_REPLY_INTEGER);
    ck_assert_int_eq(r->integer, 1);
    freeReplyObject(r);
    ck_assert_int_eq(in_stream(ob, id), 0);
    ck_assert_int_eq(dead_letters(id, m, sizeof(m), err, sizeof(err)), 1);
    ck_assert_str_eq(m, "fresh");
}
END_TEST

/* the writer's path: tk_inventory_dead_letter spells the keys and reads the answer */
START_TEST(the_writer_helper_moves_and_reports)
{
    char id[64], m[64], err[128];
    const char *port = getenv("TICKETD_TEST_REDIS_PORT");
    tk_config_t config = {.redis = {.host = "127.0.0.1", .port = (uint16_t)(port != NULL && *port != '\0' ? atoi(port) : 6391)}};
    tk_redis_nodes_t *nodes = tk_redis_nodes_open(&config, 5000, err, sizeof(err));
    ck_assert_msg(nodes != NULL, "%s", err);
    add_pending(ob, "payload", 7, id);
    ck_assert_int_eq(tk_inventory_dead_letter(nodes, shard, id, "rejected by PostgreSQL", err, sizeof(err)), 1);
    ck_assert_int_eq(tk_inventory_dead_letter(nodes, shard, id, "again", err, sizeof(err)), 0);
    ck_assert_int_eq(dead_letters(id, m, sizeof(m), err, sizeof(err)), 1);
    ck_assert_str_eq(m, "payload");
    ck_assert_str_eq(err, "rejected by PostgreSQL");
    ck_assert_int_eq(pending(id), 0);
    ck_assert_int_eq(tk_inventory_dead_letter(nodes, shard, "bad", "why", err, sizeof(err)), -1);
    ck_assert_msg(strstr(err, "tk_dead_letter") != NULL, "err: %s", err);
    tk_redis_nodes_close(nodes);
}
END_TEST

static void add_tests(TCase *tc)
{
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, an_entry_moves_with_its_reason_in_one_call);
    tcase_add_test(tc, an_entry_keeps_its_reservation_id);
    tcase_add_test(tc, a_second_move_of_the_same_entry_adds_nothing);
    tcase_add_test(tc, an_entry_without_m_keeps_its_id_and_reason);
    tcase_add_test(tc, malformed_calls_are_refused_and_change_nothing);
    tcase_add_test(tc, an_entry_nobody_read_moves_too);
    tcase_add_test(tc, the_writer_helper_moves_and_reports);
}

int main(void)
{
    return tk_lua_run("lua_dead_letter", add_tests);
}
