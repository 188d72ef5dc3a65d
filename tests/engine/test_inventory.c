/*
 * Unit tests of engine/inventory's reply decoders and key parsing: tk_inventory_parse_avail,
 * tk_inventory_parse_stats, tk_inventory_parse_ping and tk_shard_of_outbox_key. Replies
 * are built from RESP bytes with hiredis' own reader, exactly as the connection would
 * hand them over, so each case reads as the wire text Redis would send. No Redis needed.
 */
#include "engine/history.h"
#include "engine/inventory.h"

#include <check.h>
#include <stdint.h>
#include <string.h>

#define EVENT_ID "abcd0000-0000-4000-8000-000000000001"
#define TYPE_VIP "11111111-0000-4000-8000-000000000001"
#define TYPE_STD "22222222-0000-4000-8000-000000000002"

/* the reply hiredis makes of resp (one complete reply); free it with freeReplyObject */
static redisReply *reply_of(const char *resp, size_t len)
{
    redisReader *reader = redisReaderCreate();
    void *reply = NULL;
    ck_assert_int_eq(redisReaderFeed(reader, resp, len), REDIS_OK);
    ck_assert_int_eq(redisReaderGetReply(reader, &reply), REDIS_OK);
    ck_assert_msg(reply != NULL, "incomplete RESP: %s", resp);
    redisReaderFree(reader);
    return reply;
}
#define REPLY(lit) reply_of(lit, sizeof(lit) - 1)

/* one event with the types VIP and Standard, in that order */
static tk_catalog_t *sample_catalog(void)
{
    tk_catalog_t *c = tk_catalog_new(1);
    tk_catalog_add_event(c, EVENT_ID, "Gala", 4, INT64_C(1798747200000));
    tk_catalog_add_type(c, TYPE_VIP, "VIP", 3, 35000, 100);
    tk_catalog_add_type(c, TYPE_STD, "Standard", 8, 1000, 500);
    tk_catalog_seal(c);
    return c;
}

/* tk_inventory_parse_avail on resp: its return value, and left[] (-7 where untouched) */
static int parse_avail(redisReply *reply, int64_t left[2])
{
    tk_catalog_t *c = sample_catalog();
    left[0] = left[1] = -7;
    int rc = tk_inventory_parse_avail(reply, c->events, left);
    freeReplyObject(reply);
    tk_catalog_release(c);
    return rc;
}

START_TEST(avail_reads_counts_by_type_name)
{
    int64_t left[2];
    ck_assert_int_eq(parse_avail(REPLY("*4\r\n$3\r\nVIP\r\n:42\r\n$8\r\nStandard\r\n:0\r\n"), left), 0);
    ck_assert_int_eq(left[0], 42);
    ck_assert_int_eq(left[1], 0);
    /* matched by name, not position */
    ck_assert_int_eq(parse_avail(REPLY("*4\r\n$8\r\nStandard\r\n:7\r\n$3\r\nVIP\r\n:3\r\n"), left), 0);
    ck_assert_int_eq(left[0], 3);
    ck_assert_int_eq(left[1], 7);
}
END_TEST

START_TEST(avail_never_claims_what_redis_did_not_confirm)
{
    int64_t left[2];
    /* a type Redis does not name shows 0 left; a type the catalog lacks is ignored */
    ck_assert_int_eq(parse_avail(REPLY("*4\r\n$3\r\nVIP\r\n:5\r\n$5\r\nGhost\r\n:9\r\n"), left), 0);
    ck_assert_int_eq(left[0], 5);
    ck_assert_int_eq(left[1], 0);
    /* the empty array of an event Redis does not know */
    ck_assert_int_eq(parse_avail(REPLY("*0\r\n"), left), 0);
    ck_assert_int_eq(left[0], 0);
    ck_assert_int_eq(left[1], 0);
}
END_TEST

START_TEST(avail_refuses_other_shapes)
{
    int64_t left[2];
    ck_assert_int_eq(parse_avail(NULL, left), -1);
    ck_assert_int_eq(parse_avail(REPLY("-ERR ticketd: keys must be tk:{s}:inv\r\n"), left), -1);
    ck_assert_int_eq(parse_avail(REPLY(":3\r\n"), left), -1);
    ck_assert_int_eq(parse_avail(REPLY("*3\r\n$3\r\nVIP\r\n:1\r\n$3\r\nVIP\r\n"), left), -1); /* odd length */
    ck_assert_int_eq(parse_avail(REPLY("*2\r\n:1\r\n:1\r\n"), left), -1);                     /* name not a string */
    ck_assert_int_eq(parse_avail(REPLY("*2\r\n$3\r\nVIP\r\n$2\r\n10\r\n"), left), -1);        /* count not an integer */
    ck_assert_int_eq(parse_avail(REPLY("*2\r\n$3\r\nVIP\r\n*1\r\n:1\r\n"), left), -1);        /* nested array */
}
END_TEST

#define STATS_TWO_TYPES                                                                                                            \
    "*19\r\n:600\r\n:480\r\n:113\r\n:7\r\n:25\r\n:40\r\n:245000\r\n:2\r\n:12\r\n"                                                  \
    "$3\r\nVIP\r\n:100\r\n:90\r\n:7\r\n:3\r\n"                                                                                     \
    "$8\r\nStandard\r\n:500\r\n:390\r\n:106\r\n:4\r\n"

START_TEST(stats_reads_totals_and_types_in_order)
{
    h2o_mem_pool_t pool;
    tk_event_stats_t s;
    h2o_mem_init_pool(&pool);
    redisReply *reply = REPLY(STATS_TWO_TYPES);
    ck_assert_int_eq(tk_inventory_parse_stats(reply, &pool, &s), 0);
    ck_assert_int_eq(s.capacity, 600);
    ck_assert_int_eq(s.available, 480);
    ck_assert_int_eq(s.held, 113);
    ck_assert_int_eq(s.sold, 7);
    ck_assert_int_eq(s.cancelled, 25);
    ck_assert_int_eq(s.expired, 40);
    ck_assert_int_eq(s.revenue_minor, 245000);
    ck_assert_int_eq(s.lag_ms, 12);
    ck_assert_uint_eq(s.ntypes, 2);
    ck_assert(h2o_memis(s.types[0].name.base, s.types[0].name.len, H2O_STRLIT("VIP")));
    ck_assert_int_eq(s.types[0].capacity, 100);
    ck_assert_int_eq(s.types[0].available, 90);
    ck_assert_int_eq(s.types[0].held, 7);
    ck_assert_int_eq(s.types[0].sold, 3);
    ck_assert(h2o_memis(s.types[1].name.base, s.types[1].name.len, H2O_STRLIT("Standard")));
    ck_assert_int_eq(s.types[1].capacity, 500);
    ck_assert_int_eq(s.types[1].available + s.types[1].held + s.types[1].sold, s.types[1].capacity);
    freeReplyObject(reply);
    h2o_mem_clear_pool(&pool);
}
END_TEST

/* tk_stats' reply as event_live.c reads it: the counters, then the demand figures */
static int parse_stats(redisReply *reply)
{
    h2o_mem_pool_t pool;
    tk_event_stats_t s;
    h2o_mem_init_pool(&pool);
    int rc = tk_inventory_parse_stats(reply, &pool, &s);
    /* what follows the per-type entries is the demand figures' to judge */
    tk_demand_t d;
    if (rc == 0)
        rc = tk_history_parse(reply, s.ntypes, &pool, &d);
    freeReplyObject(reply);
    h2o_mem_clear_pool(&pool);
    return rc;
}

START_TEST(stats_refuses_unknown_events_and_other_shapes)
{
    ck_assert_int_eq(parse_stats(NULL), -1);
    ck_assert_int_eq(parse_stats(REPLY("*0\r\n")), -1); /* the event is unknown */
    ck_assert_int_eq(parse_stats(REPLY("-ERR ticketd: keys\r\n")), -1);
    ck_assert_int_eq(parse_stats(REPLY("*8\r\n:1\r\n:1\r\n:0\r\n:0\r\n:0\r\n:0\r\n:0\r\n:0\r\n")), -1); /* short header */
    ck_assert_int_eq(parse_stats(REPLY("*9\r\n:1\r\n:1\r\n:0\r\n:0\r\n:0\r\n:0\r\n$1\r\n0\r\n:0\r\n:0\r\n")), -1);
    /* one type announced, none sent; none announced, one sent */
    ck_assert_int_eq(parse_stats(REPLY("*9\r\n:1\r\n:1\r\n:0\r\n:0\r\n:0\r\n:0\r\n:0\r\n:1\r\n:0\r\n")), -1);
    ck_assert_int_eq(parse_stats(REPLY("*14\r\n:1\r\n:1\r\n:0\r\n:0\r\n:0\r\n:0\r\n:0\r\n:0\r\n:0\r\n"
                                       "$1\r\nA\r\n:1\r\n:1\r\n:0\r\n:0\r\n")),
                     -1);
    /* a type name that is not a string, a count that is not an integer */
    ck_assert_int_eq(parse_stats(REPLY("*14\r\n:1\r\n:1\r\n:0\r\n:0\r\n:0\r\n:0\r\n:0\r\n:1\r\n:0\r\n"
                                       ":7\r\n:1\r\n:1\r\n:0\r\n:0\r\n")),
                     -1);
    ck_assert_int_eq(parse_stats(REPLY("*14\r\n:1\r\n:1\r\n:0\r\n:0\r\n:0\r\n:0\r\n:0\r\n:1\r\n:0\r\n"
                                       "$1\r\nA\r\n:1\r\n$1\r\n1\r\n:0\r\n:0\r\n")),
                     -1);
}
END_TEST

/* 12 elements: 9 + 5 * 7378697629483820647 wraps to 12 in 64 bits; -3 is negative */
START_TEST(stats_refuses_a_type_count_that_wraps_the_size_check)
{
    ck_assert_int_eq(parse_stats(REPLY("*12\r\n:1\r\n:1\r\n:0\r\n:0\r\n:0\r\n:0\r\n:0\r\n:7378697629483820647\r\n:0\r\n"
                                       ":0\r\n:0\r\n:0\r\n")),
                     -1);
    ck_assert_int_eq(parse_stats(REPLY("*9\r\n:1\r\n:1\r\n:0\r\n:0\r\n:0\r\n:0\r\n:0\r\n:-3\r\n:0\r\n")), -1);
}
END_TEST

static int parse_ping(redisReply *reply)
{
    int rc = tk_inventory_parse_ping(reply);
    freeReplyObject(reply);
    return rc;
}

START_TEST(ping_is_healthy_only_on_pong)
{
    ck_assert_int_eq(parse_ping(REPLY("+PONG\r\n")), 0);
    ck_assert_int_eq(parse_ping(NULL), -1); /* the command failed with the connection */
    ck_assert_int_eq(parse_ping(REPLY("-LOADING Redis is loading the dataset in memory\r\n")), -1);
    ck_assert_int_eq(parse_ping(REPLY("-NOAUTH Authentication required.\r\n")), -1);
    ck_assert_int_eq(parse_ping(REPLY("+OK\r\n")), -1);
    ck_assert_int_eq(parse_ping(REPLY("$4\r\nPONG\r\n")), -1);
    ck_assert_int_eq(parse_ping(REPLY(":1\r\n")), -1);
}
END_TEST

static int shard_of(const char *key, char shard[TK_SHARD_LEN + 1])
{
    return tk_shard_of_outbox_key(key, strlen(key), shard);
}

START_TEST(outbox_keys_name_their_shard)
{
    char shard[TK_SHARD_LEN + 1] = "";
    tk_shard_keys_t keys;
    tk_shard_keys(EVENT_ID, &keys);
    ck_assert_int_eq(tk_shard_of_outbox_key(keys.names[TK_KEY_OB], keys.lens[TK_KEY_OB], shard), 0);
    ck_assert_str_eq(shard, "abcd");
    ck_assert_int_eq(shard_of("tk:{09af}:ob", shard), 0);
    ck_assert_str_eq(shard, "09af");
    ck_assert_int_eq(shard_of(keys.names[TK_KEY_INV], shard), -1);
    ck_assert_int_eq(shard_of("tk:{abc}:ob", shard), -1);
    ck_assert_int_eq(shard_of("tk:{abcd}:obx", shard), -1);
    ck_assert_int_eq(shard_of("tk:{ABCD}:ob", shard), -1);
    ck_assert_int_eq(shard_of("tk:{ab}:}:ob", shard), -1);
    ck_assert_int_eq(shard_of("xx:{abcd}:ob", shard), -1);
    ck_assert_int_eq(shard_of("", shard), -1);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("inventory");
    TCase *tc = tcase_create("decoders");
    tcase_add_test(tc, avail_reads_counts_by_type_name);
    tcase_add_test(tc, avail_never_claims_what_redis_did_not_confirm);
    tcase_add_test(tc, avail_refuses_other_shapes);
    tcase_add_test(tc, stats_reads_totals_and_types_in_order);
    tcase_add_test(tc, stats_refuses_unknown_events_and_other_shapes);
    tcase_add_test(tc, stats_refuses_a_type_count_that_wraps_the_size_check);
    tcase_add_test(tc, ping_is_healthy_only_on_pong);
    tcase_add_test(tc, outbox_keys_name_their_shard);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed != 0;
}
