/*
 * test_reserve.c: tests of lua/ticketd.lua, tk_event_init, tk_avail, tk_reserve and tk_stats: what a hold
 * takes from the inventory, every refusal and its precedence, the shape of the stats, and
 * 200 racing clients that must get exactly the capacity.
 * Runs against the test Redis (tests/lua/support.h); after every change a test checks
 * avail + held + sold == cap.
 */
#include "tests/lua/support.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- tk_event_init / tk_avail ----------------------------------------------------------- */

START_TEST(test_init_is_idempotent_and_keeps_live_counts)
{
    tk_lua_uuid_t ev, rid;
    char date[24], *before, *after;
    tk_lua_event_new(ev, tk_lua_future(), "VIP", "3", "35000", "Std", "10", "1000", NULL);
    tk_uuid_v4_in_shard(rid, ev);
    tk_lua_line_t line = {"VIP", "2"};
    tk_lua_expect_ok(tk_lua_reserve(ev, rid, TK_LUA_HOLD_MS, &line, 1), 0);
    tk_lua_assert_invariant(ev);
    before = tk_lua_inv_snapshot(ev);

    snprintf(date, sizeof(date), "%lld", (long long)tk_lua_future() + 5);
    redisReply *r = tk_lua_fcall("tk_event_init", ev, ev, date, "2", "VIP", "3", "35000", "Std", "10", "1000", NULL);
    ck_assert_int_eq(r->integer, 2);
    freeReplyObject(r);
    /* a re-run with other figures does not overwrite either */
    r = tk_lua_fcall("tk_event_init", ev, ev, date, "1", "VIP", "99", "1", NULL);
    ck_assert_int_eq(r->integer, 1);
    freeReplyObject(r);
    after = tk_lua_inv_snapshot(ev);
    ck_assert_str_eq(before, after);
    tk_lua_assert_invariant(ev);
    free(before);
    free(after);
}
END_TEST

/* A shard that does not know the event (its Redis lost the data) starts it from what
 * PostgreSQL knows: sold stays sold, held stays held until its deadline and then goes back
 * on sale through the buckets; a shard that knows it ignores the seed. */
START_TEST(test_init_seeded_from_postgres_sells_nothing_twice)
{
    tk_lua_uuid_t ev;
    char date[24], soon[24];
    tk_uuid_v4(ev);
    snprintf(date, sizeof(date), "%lld", (long long)tk_lua_future());
    snprintf(soon, sizeof(soon), "%lld", (long long)tk_time_now_ms() + 150);
    /* VIP: 2 sold, 3 held until soon; Std: 1 held until soon */
    redisReply *r = tk_lua_fcall("tk_event_init", ev, ev, date, "2", "VIP", "10", "35000", "Std", "4", "1000", "70000", "3", "VIP",
                                 "sold", "2", "0", "VIP", "held", "3", soon, "Std", "held", "1", soon, NULL);
    ck_assert_int_eq(r->integer, 2);
    freeReplyObject(r);
    tk_lua_type_stats_t vip = tk_lua_stats_type(ev, "VIP"), std = tk_lua_stats_type(ev, "Std");
    ck_assert(vip.avail == 5 && vip.held == 3 && vip.sold == 2);
    ck_assert(std.avail == 3 && std.held == 1 && std.sold == 0);
    tk_lua_stats_t all;
    tk_lua_stats_get(ev, &all);
    ck_assert_int_eq(all.revenue, 70000);
    tk_lua_assert_invariant(ev);
    ck_assert_int_eq(tk_lua_buckets_of(ev), 2);

    /* known now: another seed changes nothing */
    char *before = tk_lua_inv_snapshot(ev);
    r = tk_lua_fcall("tk_event_init", ev, ev, date, "2", "VIP", "10", "35000", "Std", "4", "1000", "0", "1", "VIP", "sold", "9",
                     "0", NULL);
    ck_assert_int_eq(r->integer, 2);
    freeReplyObject(r);
    char *after = tk_lua_inv_snapshot(ev);
    ck_assert_str_eq(before, after);
    free(before);
    free(after);

    /* past the deadline the held tickets are back on sale */
    tk_time_sleep_ms(300);
    tk_lua_expire_sweep(ev, "10");
    vip = tk_lua_stats_type(ev, "VIP"), std = tk_lua_stats_type(ev, "Std");
    ck_assert(vip.avail == 8 && vip.held == 0 && vip.sold == 2);
    ck_assert(std.avail == 4 && std.held == 0);
    tk_lua_assert_invariant(ev);
}
END_TEST

/* a seed that cannot be right (more sold and held than the capacity, a type the event
 * does not have) is refused and writes nothing */
START_TEST(test_init_refuses_a_seed_that_does_not_fit)
{
    tk_lua_uuid_t ev;
    char date[24];
    tk_uuid_v4(ev);
    snprintf(date, sizeof(date), "%lld", (long long)tk_lua_future());
    redisReply *r = tk_lua_fcall("tk_event_init", ev, ev, date, "1", "VIP", "3", "100", "0", "2", "VIP", "sold", "2", "0", "VIP",
                                 "held", "2", date, NULL);
    ck_assert_int_eq(r->type, REDIS_REPLY_ERROR);
    freeReplyObject(r);
    r = tk_lua_fcall("tk_event_init", ev, ev, date, "1", "VIP", "3", "100", "0", "1", "Gold", "sold", "1", "0", NULL);
    ck_assert_int_eq(r->type, REDIS_REPLY_ERROR);
    freeReplyObject(r);
    r = tk_lua_fcall("tk_avail", ev, ev, NULL);
    ck_assert_uint_eq(r->elements, 0); /* unknown still */
    freeReplyObject(r);
}
END_TEST

START_TEST(test_avail_after_init_lists_types_in_creation_order)
{
    tk_lua_uuid_t ev;
    tk_lua_event_new(ev, tk_lua_future(), "Zeta", "3", "35000", "Alpha", "10", "1000", "Mid", "0", "0", NULL);
    redisReply *r = tk_lua_fcall("tk_avail", ev, ev, NULL);
    ck_assert_int_eq(r->type, REDIS_REPLY_ARRAY);
    ck_assert_uint_eq(r->elements, 6);
    ck_assert_str_eq(r->element[0]->str, "Zeta");
    ck_assert_int_eq(r->element[1]->integer, 3);
    ck_assert_str_eq(r->element[2]->str, "Alpha");
    ck_assert_int_eq(r->element[3]->integer, 10);
    ck_assert_str_eq(r->element[4]->str, "Mid");
    ck_assert_int_eq(r->element[5]->integer, 0);
    freeReplyObject(r);

    tk_lua_uuid_t unknown;
    tk_uuid_v4(unknown);
    r = tk_lua_fcall("tk_avail", unknown, unknown, NULL);
    ck_assert_int_eq(r->type, REDIS_REPLY_ARRAY);
    ck_assert_uint_eq(r->elements, 0);
    freeReplyObject(r);
}
END_TEST

/* ---- tk_reserve ------------------------------------------------------------------------- */

START_TEST(test_reserve_moves_avail_to_held_and_stores_blob)
{
    tk_lua_uuid_t ev, rid;
    char needle[128];
    tk_lua_event_new(ev, tk_lua_future(), "VIP", "3", "35000", "Std", "10", "1000", NULL);
    tk_uuid_v4_in_shard(rid, ev);
    tk_lua_line_t lines[] = {{"VIP", "2"}, {"Std", "1"}};
    int64_t t0 = tk_time_now_ms();
    redisReply *r = tk_lua_reserve(ev, rid, TK_LUA_HOLD_MS, lines, 2);
    tk_lua_expect_ok(r, 1);
    ck_assert_uint_eq(r->elements, 3);
    long long created = r->element[1]->integer, until = r->element[2]->integer;
    freeReplyObject(r);
    ck_assert_int_ge(created, t0 - 1000);
    ck_assert_int_le(created, tk_time_now_ms() + 1000);
    ck_assert_int_eq(until - created, TK_LUA_HOLD_MS);
    tk_lua_assert_invariant(ev);

    tk_lua_type_stats_t vip = tk_lua_stats_type(ev, "VIP"), std = tk_lua_stats_type(ev, "Std");
    ck_assert(vip.avail == 1 && vip.held == 2 && vip.sold == 0);
    ck_assert(std.avail == 9 && std.held == 1 && std.sold == 0);
    ck_assert_int_eq(tk_lua_due_at(rid), until);

    char *blob = tk_lua_blob_get(rid);
    ck_assert_ptr_nonnull(blob);
    tk_lua_assert_status(blob, "PENDING");
    ck_assert_int_eq(tk_lua_blob_int(blob, "c"), created);
    ck_assert_int_eq(tk_lua_blob_int(blob, "u"), until);
    snprintf(needle, sizeof(needle), "\"e\":\"%s\"", ev);
    ck_assert_ptr_nonnull(strstr(blob, needle));
    snprintf(needle, sizeof(needle), "\"r\":\"%s\"", rid); /* the record names itself: it is its outbox entry too */
    ck_assert_ptr_nonnull(strstr(blob, needle));
    ck_assert_int_eq(tk_lua_last_ntickets, 3);
    for (int i = 0; i < 3; i++) {
        snprintf(needle, sizeof(needle), "[\"%s\",\"%s\",%s]", tk_lua_last_tickets[i], i < 2 ? "VIP" : "Std",
                 i < 2 ? "35000" : "1000");
        ck_assert_msg(strstr(blob, needle) != NULL, "want %s in %s", needle, blob);
    }
    free(blob);
}
END_TEST

START_TEST(test_last_ticket_goes_once_then_insufficient_with_zero)
{
    tk_lua_uuid_t ev, rid;
    tk_lua_event_new(ev, tk_lua_future(), "GA", "3", "500", NULL);
    tk_lua_line_t two = {"GA", "2"}, one = {"GA", "1"};
    tk_uuid_v4_in_shard(rid, ev);
    tk_lua_expect_ok(tk_lua_reserve(ev, rid, TK_LUA_HOLD_MS, &two, 1), 0);
    tk_lua_assert_invariant(ev);
    ck_assert_int_eq(tk_lua_stats_type(ev, "GA").avail, 1);
    tk_uuid_v4_in_shard(rid, ev);
    tk_lua_expect_ok(tk_lua_reserve(ev, rid, TK_LUA_HOLD_MS, &one, 1), 0);
    tk_lua_assert_invariant(ev);
    tk_uuid_v4_in_shard(rid, ev);
    tk_lua_expect_err(tk_lua_reserve(ev, rid, TK_LUA_HOLD_MS, &one, 1), "insufficient", "GA", 0);
    ck_assert_int_eq(tk_lua_res_exists(rid), 0);
    tk_lua_type_stats_t ga = tk_lua_stats_type(ev, "GA");
    ck_assert(ga.avail == 0 && ga.held == 3);
    tk_lua_assert_invariant(ev);
}
END_TEST

START_TEST(test_one_short_type_changes_nothing_at_all)
{
    tk_lua_uuid_t ev, rid;
    tk_lua_event_new(ev, tk_lua_future(), "A", "10", "100", "B", "1", "200", "C", "10", "300", NULL);
    char *before = tk_lua_inv_snapshot(ev);
    tk_uuid_v4_in_shard(rid, ev);
    tk_lua_line_t lines[] = {{"A", "2"}, {"B", "2"}, {"C", "1"}};
    tk_lua_expect_err(tk_lua_reserve(ev, rid, TK_LUA_HOLD_MS, lines, 3), "insufficient", "B", 1);
    char *after = tk_lua_inv_snapshot(ev);
    ck_assert_str_eq(before, after);
    ck_assert_int_eq(tk_lua_res_exists(rid), 0);
    ck_assert_int_eq(tk_lua_due_at(rid), -1);
    tk_lua_assert_invariant(ev);
    free(before);
    free(after);
}
END_TEST

START_TEST(test_duplicate_types_are_merged_before_the_limit)
{
    tk_lua_uuid_t ev, rid;
    tk_lua_event_new(ev, tk_lua_future(), "A", "20", "100", NULL);
    char *before = tk_lua_inv_snapshot(ev);
    tk_uuid_v4_in_shard(rid, ev);
    tk_lua_line_t over[] = {{"A", "3"}, {"A", "3"}};
    tk_lua_expect_err(tk_lua_reserve(ev, rid, TK_LUA_HOLD_MS, over, 2), "limit", "A", -1);
    char *after = tk_lua_inv_snapshot(ev);
    ck_assert_str_eq(before, after);

    tk_lua_line_t ok[] = {{"A", "2"}, {"A", "3"}};
    tk_lua_expect_ok(tk_lua_reserve(ev, rid, TK_LUA_HOLD_MS, ok, 2), 0);
    tk_lua_assert_invariant(ev);
    ck_assert_int_eq(tk_lua_stats_type(ev, "A").held, 5);
    char *blob = tk_lua_blob_get(rid); /* five tickets of type A, one entry each */
    int tickets = 0;
    for (const char *p = blob; (p = strstr(p, "\",\"A\",")) != NULL; ++p)
        ++tickets;
    ck_assert_int_eq(tickets, 5);
    free(blob);
    free(before);
    free(after);
}
END_TEST

START_TEST(test_limit_five_ok_six_refused)
{
    tk_lua_uuid_t ev, rid;
    tk_lua_event_new(ev, tk_lua_future(), "A", "20", "100", NULL);
    tk_lua_line_t six = {"A", "6"}, five = {"A", "5"};
    tk_uuid_v4_in_shard(rid, ev);
    tk_lua_expect_err(tk_lua_reserve(ev, rid, TK_LUA_HOLD_MS, &six, 1), "limit", "A", -1);
    ck_assert_int_eq(tk_lua_stats_type(ev, "A").avail, 20);
    tk_lua_expect_ok(tk_lua_reserve(ev, rid, TK_LUA_HOLD_MS, &five, 1), 0);
    ck_assert_int_eq(tk_lua_stats_type(ev, "A").avail, 15);
    tk_lua_assert_invariant(ev);
}
END_TEST

START_TEST(test_bad_amounts_are_refused)
{
    static const char *bad[] = {"0", "-1", "1.5", "abc", "1e3", "", " 1", "0x2", "+1", "1234567890123456"};
    tk_lua_uuid_t ev, rid;
    tk_lua_event_new(ev, tk_lua_future(), "A", "20", "100", "B", "20", "100", NULL);
    char *before = tk_lua_inv_snapshot(ev);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        tk_lua_line_t lines[] = {{"A", "1"}, {"B", bad[i]}};
        tk_uuid_v4_in_shard(rid, ev);
        tk_lua_expect_err(tk_lua_reserve(ev, rid, TK_LUA_HOLD_MS, lines, 2), "bad_amount", "B", -1);
        ck_assert_int_eq(tk_lua_res_exists(rid), 0);
    }
    char *after = tk_lua_inv_snapshot(ev);
    ck_assert_str_eq(before, after);
    free(before);
    free(after);
}
END_TEST

/* parse_int remembers the strings it parsed (INT_MEMO_MAX of them, then forgets them all):
 * "0" read first as a valid capacity is still refused as an amount, and every answer
 * stays the same after more distinct strings than the memo holds. */
START_TEST(test_amounts_are_judged_alike_whatever_was_parsed_before)
{
    tk_lua_uuid_t ev, rid;
    tk_lua_event_new(ev, tk_lua_future(), "A", "20", "100", "Z", "0", "100", NULL);
    for (int round = 0; round < 2; ++round) {
        tk_lua_line_t zero[] = {{"A", "0"}}, two[] = {{"A", "2"}}, bad[] = {{"A", "1e3"}};
        tk_uuid_v4_in_shard(rid, ev);
        tk_lua_expect_err(tk_lua_reserve(ev, rid, TK_LUA_HOLD_MS, zero, 1), "bad_amount", "A", -1);
        tk_lua_expect_err(tk_lua_reserve(ev, rid, TK_LUA_HOLD_MS, bad, 1), "bad_amount", "A", -1);
        tk_lua_expect_ok(tk_lua_reserve(ev, rid, TK_LUA_HOLD_MS, two, 1), 0);
        for (long i = 1; i <= 1100 && round == 0; ++i) /* more distinct strings (holds) than the memo keeps */
            tk_lua_expect_err(tk_lua_reserve(ev, rid, TK_LUA_HOLD_MS + i, bad, 1), "bad_amount", "A", -1);
    }
    ck_assert_int_eq(tk_lua_stats_type(ev, "A").avail, 16);
    tk_lua_assert_invariant(ev);
}
END_TEST

START_TEST(test_empty_request_refused)
{
    tk_lua_uuid_t ev, rid;
    tk_lua_event_new(ev, tk_lua_future(), "A", "20", "100", NULL);
    tk_uuid_v4_in_shard(rid, ev);
    tk_lua_expect_err(tk_lua_reserve(ev, rid, TK_LUA_HOLD_MS, NULL, 0), "empty", NULL, -1);
}
END_TEST

START_TEST(test_unknown_type_refused)
{
    tk_lua_uuid_t ev, rid;
    tk_lua_event_new(ev, tk_lua_future(), "A", "20", "100", NULL);
    char *before = tk_lua_inv_snapshot(ev);
    tk_uuid_v4_in_shard(rid, ev);
    tk_lua_line_t lines[] = {{"A", "1"}, {"Nope", "1"}};
    tk_lua_expect_err(tk_lua_reserve(ev, rid, TK_LUA_HOLD_MS, lines, 2), "unknown_type", "Nope", -1);
    char *after = tk_lua_inv_snapshot(ev);
    ck_assert_str_eq(before, after);
    ck_assert_int_eq(tk_lua_res_exists(rid), 0);
    free(before);
    free(after);
}
END_TEST

START_TEST(test_unknown_event_refused)
{
    tk_lua_uuid_t ev, rid;
    tk_uuid_v4(ev);
    tk_uuid_v4_in_shard(rid, ev);
    tk_lua_line_t line = {"A", "1"};
    tk_lua_expect_err(tk_lua_reserve(ev, rid, TK_LUA_HOLD_MS, &line, 1), "no_event", NULL, -1);
    ck_assert_int_eq(tk_lua_res_exists(rid), 0);
}
END_TEST

START_TEST(test_past_event_refused)
{
    tk_lua_uuid_t ev, rid;
    tk_lua_event_new(ev, tk_time_now_ms() - 1000, "A", "20", "100", NULL);
    tk_uuid_v4_in_shard(rid, ev);
    tk_lua_line_t line = {"A", "1"};
    tk_lua_expect_err(tk_lua_reserve(ev, rid, TK_LUA_HOLD_MS, &line, 1), "past", NULL, -1);
    ck_assert_int_eq(tk_lua_stats_type(ev, "A").avail, 20);
    ck_assert_int_eq(tk_lua_res_exists(rid), 0);
}
END_TEST

START_TEST(test_existing_reservation_id_refused)
{
    tk_lua_uuid_t ev, rid;
    tk_lua_event_new(ev, tk_lua_future(), "A", "20", "100", NULL);
    tk_uuid_v4_in_shard(rid, ev);
    tk_lua_line_t line = {"A", "1"};
    tk_lua_expect_ok(tk_lua_reserve(ev, rid, TK_LUA_HOLD_MS, &line, 1), 0);
    char *blob = tk_lua_blob_raw(rid);
    tk_lua_expect_err(tk_lua_reserve(ev, rid, TK_LUA_HOLD_MS, &line, 1), "exists", NULL, -1);
    char *again = tk_lua_blob_raw(rid);
    ck_assert_str_eq(blob, again);
    ck_assert_int_eq(tk_lua_stats_type(ev, "A").held, 1);
    tk_lua_assert_invariant(ev);
    free(blob);
    free(again);
}
END_TEST

START_TEST(test_error_precedence_type_then_limit_then_first_short)
{
    tk_lua_uuid_t ev, rid;
    tk_lua_event_new(ev, tk_lua_future(), "A", "1", "100", "B", "1", "100", "C", "1", "100", "D", "10", "100", NULL);
    char *before = tk_lua_inv_snapshot(ev);
    tk_uuid_v4_in_shard(rid, ev);
    /* unknown type beats an earlier line over the limit and short lines */
    tk_lua_line_t t1[] = {{"A", "6"}, {"B", "2"}, {"Nope", "1"}};
    tk_lua_expect_err(tk_lua_reserve(ev, rid, TK_LUA_HOLD_MS, t1, 3), "unknown_type", "Nope", -1);
    /* the limit beats an earlier short line */
    tk_lua_line_t t2[] = {{"A", "2"}, {"D", "6"}};
    tk_lua_expect_err(tk_lua_reserve(ev, rid, TK_LUA_HOLD_MS, t2, 2), "limit", "D", -1);
    /* the first short line in request order is named */
    tk_lua_line_t t3[] = {{"D", "3"}, {"C", "2"}, {"B", "2"}};
    tk_lua_expect_err(tk_lua_reserve(ev, rid, TK_LUA_HOLD_MS, t3, 3), "insufficient", "C", 1);
    /* malformed amounts come before everything, even an unknown event */
    tk_lua_uuid_t ghost, grid;
    tk_uuid_v4(ghost);
    tk_uuid_v4_in_shard(grid, ghost);
    tk_lua_line_t t4[] = {{"A", "0"}};
    tk_lua_expect_err(tk_lua_reserve(ghost, grid, TK_LUA_HOLD_MS, t4, 1), "bad_amount", "A", -1);
    tk_lua_expect_err(tk_lua_reserve(ev, rid, TK_LUA_HOLD_MS, t4, 1), "bad_amount", "A", -1);
    char *after = tk_lua_inv_snapshot(ev);
    ck_assert_str_eq(before, after);
    ck_assert_int_eq(tk_lua_res_exists(rid), 0);
    free(before);
    free(after);
}
END_TEST

START_TEST(test_malformed_calls_are_redis_errors)
{
    tk_lua_uuid_t ev, other, rid;
    tk_lua_event_new(ev, tk_lua_future(), "A", "20", "100", NULL);
    tk_uuid_v4_in_shard(rid, ev);
    /* keys of another shard than the ids */
    do
        tk_uuid_v4(other);
    while (memcmp(other, ev, 4) == 0);
    const char *args[] = {ev, rid, "1000", "5", "1", "A", "1", "t1"};
    redisReply *r = tk_lua_fcall_on(tk_lua_redis, "tk_reserve", other, 8, args);
    ck_assert_int_eq(r->type, REDIS_REPLY_ERROR);
    freeReplyObject(r);
    /* a ticket id missing */
    r = tk_lua_fcall_on(tk_lua_redis, "tk_reserve", ev, 7, args);
    ck_assert_int_eq(r->type, REDIS_REPLY_ERROR);
    freeReplyObject(r);
    r = tk_lua_fcall("tk_expire", ev, "0", NULL);
    ck_assert_int_eq(r->type, REDIS_REPLY_ERROR);
    freeReplyObject(r);
    /* a reservation id with a space (hold lists separate ids with one) */
    char spaced[TK_UUID_LEN + 1];
    memcpy(spaced, rid, sizeof(spaced));
    spaced[10] = ' ';
    const char *spaced_args[] = {ev, spaced, "1000", "5", "1", "A", "1", "t1"};
    r = tk_lua_fcall_on(tk_lua_redis, "tk_reserve", ev, 8, spaced_args);
    ck_assert_int_eq(r->type, REDIS_REPLY_ERROR);
    freeReplyObject(r);
    ck_assert_int_eq(tk_lua_res_exists(spaced), 0);
    ck_assert_int_eq(tk_lua_stats_type(ev, "A").avail, 20);
    ck_assert_int_eq(tk_lua_res_exists(rid), 0);
    tk_lua_assert_invariant(ev);
}
END_TEST

/* ---- tk_stats --------------------------------------------------------------------------- */

START_TEST(test_stats_shape_totals_then_types)
{
    tk_lua_uuid_t ev, rid, unknown;
    tk_lua_event_new(ev, tk_lua_future(), "VIP", "100", "35000", "Std", "500", "1000", NULL);
    tk_uuid_v4_in_shard(rid, ev);
    tk_lua_line_t lines[] = {{"Std", "4"}, {"VIP", "3"}};
    tk_lua_expect_ok(tk_lua_reserve(ev, rid, TK_LUA_HOLD_MS, lines, 2), 0);
    redisReply *r = tk_lua_fcall("tk_stats", ev, ev, NULL);
    ck_assert_int_eq(r->type, REDIS_REPLY_ARRAY);
    ck_assert_uint_eq(r->elements, 9 + 2 * 5);
    long long want[] = {600, 593, 7, 0, 0, 0, 0, 2};
    for (int i = 0; i < 8; i++)
        ck_assert_int_eq(r->element[i]->integer, want[i]);
    ck_assert_int_ge(r->element[8]->integer, 0); /* the reservation waits in the outbox */
    ck_assert_str_eq(r->element[9]->str, "VIP");
    long long vip[] = {100, 97, 3, 0};
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(r->element[10 + i]->integer, vip[i]);
    ck_assert_str_eq(r->element[14]->str, "Std");
    long long std[] = {500, 496, 4, 0};
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(r->element[15 + i]->integer, std[i]);
    freeReplyObject(r);

    /* read-only: FCALL_RO works; unknown events give an empty array */
    tk_shard_keys_t keys;
    tk_shard_keys(ev, &keys);
    const char(*k)[TK_KEY_LEN] = keys.names;
    r = tk_lua_cmd("FCALL_RO tk_stats 7 %s %s %s %s %s %s %s %s", k[0], k[1], k[2], k[3], k[4], k[5], k[6], ev);
    ck_assert_int_eq(r->type, REDIS_REPLY_ARRAY);
    ck_assert_uint_eq(r->elements, 19);
    freeReplyObject(r);
    tk_uuid_v4(unknown);
    r = tk_lua_fcall("tk_stats", unknown, unknown, NULL);
    ck_assert_int_eq(r->type, REDIS_REPLY_ARRAY);
    ck_assert_uint_eq(r->elements, 0);
    freeReplyObject(r);
    tk_lua_assert_invariant(ev);
}
END_TEST

/* ---- race ------------------------------------------------------------------------------- */

#define RACE_PROCS 20
#define RACE_TRIES 10
#define RACE_CAP 100
#define RACE_HOLD_MS 2000

/* One racing client: waits for the start signal, then tries RACE_TRIES holds of one ticket and
 * writes the id of each granted hold to out_fd. Exit status 0 when every answer was OK or
 * "insufficient GA 0"; no check macros here (this is a grandchild of the check runner). */
static int race_client(redisContext *ctx, const char *ev, int out_fd)
{
    for (int i = 0; i < RACE_TRIES; i++) {
        tk_lua_uuid_t rid;
        tk_lua_line_t line = {"GA", "1"};
        tk_uuid_v4_in_shard(rid, ev);
        redisReply *r = tk_lua_reserve_on(ctx, ev, rid, RACE_HOLD_MS, &line, 1);
        if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements < 1)
            return 5;
        if (strcmp(r->element[0]->str, "OK") == 0) {
            if (write(out_fd, rid, TK_UUID_LEN) != TK_UUID_LEN)
                return 6;
        } else if (!(r->elements == 4 && strcmp(r->element[1]->str, "insufficient") == 0 && r->element[3]->integer == 0)) {
            return 7;
        }
        freeReplyObject(r);
    }
    return 0;
}

START_TEST(test_race_200_clients_100_tickets_exactly_100_held)
{
    static char got[RACE_PROCS * RACE_TRIES * TK_UUID_LEN + 1];
    tk_lua_uuid_t ev;
    pid_t pids[RACE_PROCS];
    tk_lua_event_new(ev, tk_lua_future(), "GA", "100", "2500", NULL);
    int out = tk_lua_race_start(RACE_PROCS, race_client, ev, pids);
    size_t len = 0;
    for (ssize_t n; len < sizeof(got) - 1 && (n = read(out, got + len, sizeof(got) - 1 - len)) != 0;) {
        if (n < 0 && errno == EINTR)
            continue;
        ck_assert_int_gt(n, 0);
        len += (size_t)n;
    }
    close(out);
    tk_lua_race_wait(RACE_PROCS, pids);

    /* exactly the capacity was granted, each id once, each ticket once */
    ck_assert_uint_eq(len, RACE_CAP * TK_UUID_LEN);
    static char ids[RACE_CAP][TK_UUID_LEN + 1], tickets[RACE_CAP][TK_UUID_LEN + 1];
    const char *idp[RACE_CAP], *tkp[RACE_CAP];
    long long last_until = 0;
    for (int i = 0; i < RACE_CAP; i++) {
        memcpy(ids[i], got + (size_t)i * TK_UUID_LEN, TK_UUID_LEN);
        ids[i][TK_UUID_LEN] = '\0';
        idp[i] = ids[i];
        char *blob = tk_lua_blob_get(ids[i]);
        ck_assert_ptr_nonnull(blob);
        tk_lua_assert_status(blob, "PENDING");
        const char *t = strstr(blob, "\"t\":[[\"");
        ck_assert_ptr_nonnull(t);
        memcpy(tickets[i], t + 7, TK_UUID_LEN);
        tickets[i][TK_UUID_LEN] = '\0';
        tkp[i] = tickets[i];
        long long u = tk_lua_blob_int(blob, "u");
        last_until = u > last_until ? u : last_until;
        free(blob);
    }
    qsort(idp, RACE_CAP, sizeof(*idp), tk_lua_cmp_str);
    qsort(tkp, RACE_CAP, sizeof(*tkp), tk_lua_cmp_str);
    for (int i = 1; i < RACE_CAP; i++) {
        ck_assert_str_ne(idp[i - 1], idp[i]);
        ck_assert_str_ne(tkp[i - 1], tkp[i]);
    }
    tk_lua_type_stats_t ga = tk_lua_stats_type(ev, "GA");
    ck_assert(ga.avail == 0 && ga.held == RACE_CAP && ga.sold == 0);
    tk_lua_assert_invariant(ev);

    /* once every hold is due, the sweep alone gives everything back */
    long long wait = last_until - tk_time_now_ms() + 30;
    if (wait > 0)
        tk_time_sleep_ms((long)wait);
    long long swept = 0;
    for (long long n; (n = tk_lua_expire_sweep(ev, "50")) > 0;)
        swept += n;
    ck_assert_int_ge(swept, RACE_CAP);
    tk_lua_stats_t s;
    tk_lua_stats_get(ev, &s);
    ck_assert(s.avail == RACE_CAP && s.held == 0 && s.expired == RACE_CAP && s.cancelled == 0);
    for (int i = 0; i < RACE_CAP; i++) {
        char *blob = tk_lua_blob_raw(ids[i]);
        tk_lua_assert_status(blob, "CANCELLED");
        free(blob);
    }
    tk_lua_assert_invariant(ev);
}
END_TEST

static void add_tests(TCase *tc)
{
    tcase_add_test(tc, test_init_is_idempotent_and_keeps_live_counts);
    tcase_add_test(tc, test_avail_after_init_lists_types_in_creation_order);
    tcase_add_test(tc, test_init_seeded_from_postgres_sells_nothing_twice);
    tcase_add_test(tc, test_init_refuses_a_seed_that_does_not_fit);
    tcase_add_test(tc, test_reserve_moves_avail_to_held_and_stores_blob);
    tcase_add_test(tc, test_last_ticket_goes_once_then_insufficient_with_zero);
    tcase_add_test(tc, test_one_short_type_changes_nothing_at_all);
    tcase_add_test(tc, test_duplicate_types_are_merged_before_the_limit);
    tcase_add_test(tc, test_limit_five_ok_six_refused);
    tcase_add_test(tc, test_bad_amounts_are_refused);
    tcase_add_test(tc, test_amounts_are_judged_alike_whatever_was_parsed_before);
    tcase_add_test(tc, test_empty_request_refused);
    tcase_add_test(tc, test_unknown_type_refused);
    tcase_add_test(tc, test_unknown_event_refused);
    tcase_add_test(tc, test_past_event_refused);
    tcase_add_test(tc, test_existing_reservation_id_refused);
    tcase_add_test(tc, test_error_precedence_type_then_limit_then_first_short);
    tcase_add_test(tc, test_malformed_calls_are_redis_errors);
    tcase_add_test(tc, test_stats_shape_totals_then_types);
    tcase_add_test(tc, test_race_200_clients_100_tickets_exactly_100_held);
}

int main(void)
{
    return tk_lua_run("lua_reserve", add_tests);
}
