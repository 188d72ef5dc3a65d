/*
 * Tests of tests/support/redis_direct.c, the straight Redis access the integration tests
 * use, against the test Redis of the run: a single Redis, or with TICKETD_TEST_REDIS_CLUSTER
 * the cluster-test profile's cluster (`scripts/test.sh --cluster`). Keys of many hash tags
 * are written and read back; on a cluster a plain connection to the first seed must be
 * redirected for some of them (so the helper really followed MOVED), on a single Redis never.
 */
#include "tests/support/harness.h"
#include "tests/support/redis_direct.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NKEYS 64

static void key_name(int i, char *buf, size_t bufsize)
{
    snprintf(buf, bufsize, "tk-test:{direct-%d}:k", i);
}

/* a plain hiredis connection to the first seed (or the single Redis), which follows nothing */
static redisContext *connect_first_node(void)
{
    const char *seeds = tk_test_redis_cluster();
    char host[64] = "127.0.0.1";
    int port = tk_test_redis_port();
    if (seeds != NULL) {
        const char *colon = strchr(seeds, ':');
        ck_assert_ptr_nonnull(colon);
        snprintf(host, sizeof(host), "%.*s", (int)(colon - seeds), seeds);
        port = atoi(colon + 1);
    }
    redisContext *c = redisConnect(host, port);
    ck_assert_msg(c != NULL && c->err == 0, "cannot reach %s:%d", host, port);
    return c;
}

START_TEST(keys_of_every_tag_are_written_and_read_back)
{
    char key[64], value[32];
    for (int i = 0; i < NKEYS; ++i) {
        key_name(i, key, sizeof(key));
        snprintf(value, sizeof(value), "v%d", i);
        redisReply *r = tk_test_redis_command("SET %s %s", key, value);
        ck_assert_msg(r != NULL && r->type == REDIS_REPLY_STATUS, "SET %s: %s", key, r != NULL ? r->str : "no reply");
        freeReplyObject(r);
    }
    for (int i = 0; i < NKEYS; ++i) {
        key_name(i, key, sizeof(key));
        snprintf(value, sizeof(value), "v%d", i);
        redisReply *r = tk_test_redis_command("GET %s", key);
        ck_assert_msg(r != NULL && r->type == REDIS_REPLY_STRING, "GET %s: %s", key, r != NULL ? r->str : "no reply");
        ck_assert_str_eq(r->str, value);
        freeReplyObject(r);
    }

    /* what a client that follows nothing sees from the first node */
    redisContext *c = connect_first_node();
    int moved = 0;
    for (int i = 0; i < NKEYS; ++i) {
        key_name(i, key, sizeof(key));
        redisReply *r = redisCommand(c, "GET %s", key);
        ck_assert_ptr_nonnull(r);
        moved += r->type == REDIS_REPLY_ERROR && strncmp(r->str, "MOVED ", 6) == 0;
        freeReplyObject(r);
    }
    redisFree(c);
    if (tk_test_redis_cluster() != NULL)
        ck_assert_msg(moved > 0, "no key redirected by the first node"); /* all of them when it is a replica */
    else
        ck_assert_int_eq(moved, 0);

    for (int i = 0; i < NKEYS; ++i) {
        key_name(i, key, sizeof(key));
        redisReply *r = tk_test_redis_command("DEL %s", key);
        ck_assert(r != NULL && r->type == REDIS_REPLY_INTEGER && r->integer == 1);
        freeReplyObject(r);
    }
}
END_TEST

START_TEST(errors_other_than_redirects_are_handed_back)
{
    redisReply *r = tk_test_redis_command("SET %s %s", "tk-test:{direct-err}:k", "not a number");
    ck_assert(r != NULL && r->type == REDIS_REPLY_STATUS);
    freeReplyObject(r);
    r = tk_test_redis_command("INCR %s", "tk-test:{direct-err}:k");
    ck_assert(r != NULL && r->type == REDIS_REPLY_ERROR);
    ck_assert_msg(strstr(r->str, "not an integer") != NULL, "%s", r->str);
    freeReplyObject(r);
    freeReplyObject(tk_test_redis_command("DEL %s", "tk-test:{direct-err}:k"));
}
END_TEST

START_TEST(closed_connections_are_reopened)
{
    freeReplyObject(tk_test_redis_command("SET %s 1", "tk-test:{direct-reopen}:k"));
    tk_test_redis_disconnect();
    redisReply *r = tk_test_redis_command("GET %s", "tk-test:{direct-reopen}:k");
    ck_assert(r != NULL && r->type == REDIS_REPLY_STRING);
    ck_assert_str_eq(r->str, "1");
    freeReplyObject(r);
    freeReplyObject(tk_test_redis_command("DEL %s", "tk-test:{direct-reopen}:k"));
}
END_TEST

int main(void)
{
    Suite *s = suite_create("redis_direct");
    TCase *tc = tcase_create("redis_direct");
    tcase_add_test(tc, keys_of_every_tag_are_written_and_read_back);
    tcase_add_test(tc, errors_other_than_redirects_are_handed_back);
    tcase_add_test(tc, closed_connections_are_reopened);
    suite_add_tcase(s, tc);
    SRunner *runner = srunner_create(s);
    srunner_run_all(runner, CK_NORMAL);
    int failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
