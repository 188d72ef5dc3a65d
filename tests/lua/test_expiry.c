/*
 * test_expiry.c: tests of lua/ticketd.lua, holds that end: lazy expiry on read, the tk_expire sweep,
 * tk_cancel, the states neither may touch (PAYING, COMPLETED), and the held-ticket buckets: a hold
 * leaving PENDING before its deadline takes its tickets out of its bucket (and a failed payment
 * puts them back), and a hold whose bucket was swept can no longer be paid.
 * Runs against the test Redis (tests/lua/support.h); after every change a test checks
 * avail + held + sold == cap.
 */
#include "tests/lua/support.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- expiry ----------------------------------------------------------------------------- */

START_TEST(test_expired_hold_reads_cancelled_with_tickets_back)
{
    tk_lua_uuid_t ev, rid;
    tk_lua_event_new(ev, tk_lua_future(), "A", "10", "100", NULL);
    tk_uuid_v4_in_shard(rid, ev);
    tk_lua_line_t line = {"A", "3"};
    tk_lua_expect_ok(tk_lua_reserve(ev, rid, 50, &line, 1), 0);
    tk_lua_assert_invariant(ev);
    ck_assert_int_eq(tk_lua_stats_type(ev, "A").held, 3);
    tk_time_sleep_ms(120);
    char *blob = tk_lua_blob_get(rid);
    tk_lua_assert_status(blob, "CANCELLED");
    free(blob);
    tk_lua_assert_invariant(ev);
    tk_lua_stats_t s;
    tk_lua_stats_get(ev, &s);
    ck_assert(s.avail == 10 && s.held == 0 && s.expired == 3 && s.cancelled == 0);
    ck_assert_int_eq(tk_lua_due_at(rid), -1);
}
END_TEST

START_TEST(test_expire_sweeps_without_a_read)
{
    tk_lua_uuid_t ev, rid;
    tk_lua_event_new(ev, tk_lua_future(), "A", "10", "100", NULL);
    tk_uuid_v4_in_shard(rid, ev);
    tk_lua_line_t line = {"A", "2"};
    tk_lua_expect_ok(tk_lua_reserve(ev, rid, 50, &line, 1), 0);
    tk_lua_expire_sweep(ev, "200"); /* not due yet: ours stays */
    ck_assert_int_eq(tk_lua_stats_type(ev, "A").held, 2);
    tk_time_sleep_ms(120);
    ck_assert_int_ge(tk_lua_expire_sweep(ev, "200"), 1);
    char *blob = tk_lua_blob_raw(rid);
    tk_lua_assert_status(blob, "CANCELLED");
    free(blob);
    tk_lua_stats_t s;
    tk_lua_stats_get(ev, &s);
    ck_assert(s.avail == 10 && s.held == 0 && s.expired == 2);
    ck_assert_int_eq(tk_lua_due_at(rid), -1);
    tk_lua_assert_invariant(ev);
}
END_TEST

/* tk_expire ... "next" also answers when the shard next has work: the sweeper skips it until then */
START_TEST(test_expire_next_tells_when_the_shard_is_due)
{
    tk_lua_uuid_t ev, rid;
    tk_lua_event_new(ev, tk_lua_future(), "A", "10", "100", NULL);
    tk_uuid_v4_in_shard(rid, ev);
    tk_lua_line_t line = {"A", "1"};
    int64_t before = tk_time_now_ms();
    tk_lua_expect_ok(tk_lua_reserve(ev, rid, 50, &line, 1), 0);
    redisReply *r = tk_lua_fcall("tk_expire", ev, "200", "next", NULL);
    ck_assert(r->type == REDIS_REPLY_ARRAY && r->elements == 2);
    ck_assert(r->element[0]->type == REDIS_REPLY_INTEGER && r->element[1]->type == REDIS_REPLY_INTEGER);
    /* due no later than our hold's deadline (another test's hold in the shard may be earlier) */
    ck_assert_int_ge(r->element[1]->integer, 0);
    ck_assert_int_le(r->element[1]->integer, before + 50 + 1000);
    freeReplyObject(r);
    ck_assert_int_eq(tk_lua_stats_type(ev, "A").held, 1);
    tk_time_sleep_ms(120);
    r = tk_lua_fcall("tk_expire", ev, "200", "next", NULL);
    ck_assert(r->type == REDIS_REPLY_ARRAY && r->elements == 2);
    ck_assert_int_ge(r->element[0]->integer, 1);
    /* nothing left that is due: empty (-1) or later than now */
    ck_assert(r->element[1]->integer == -1 || r->element[1]->integer > tk_time_now_ms() - 1000);
    freeReplyObject(r);
    tk_lua_stats_t s;
    tk_lua_stats_get(ev, &s);
    ck_assert(s.avail == 10 && s.held == 0 && s.expired == 1);
    tk_lua_assert_invariant(ev);
    r = tk_lua_fcall("tk_expire", ev, "200", "later", NULL);
    ck_assert_int_eq(r->type, REDIS_REPLY_ERROR);
    freeReplyObject(r);
}
END_TEST

/* a fresh event of one type "A" (10 tickets) and two holds a and b of `amount` each */
static void event_with_two_holds(tk_lua_uuid_t ev, tk_lua_uuid_t a, tk_lua_uuid_t b, const char *amount, long hold_ms)
{
    tk_lua_event_new(ev, tk_lua_future(), "A", "10", "100", NULL);
    tk_lua_line_t line = {"A", amount};
    tk_uuid_v4_in_shard(a, ev);
    tk_lua_expect_ok(tk_lua_reserve(ev, a, hold_ms, &line, 1), 0);
    tk_uuid_v4_in_shard(b, ev);
    tk_lua_expect_ok(tk_lua_reserve(ev, b, hold_ms, &line, 1), 0);
}

START_TEST(test_paying_and_completed_never_expire_or_cancel)
{
    tk_lua_uuid_t ev, paying, done;
    event_with_two_holds(ev, paying, done, "1", 50);
    tk_lua_force_status(paying, "PAYING");
    tk_lua_force_status(done, "COMPLETED");
    /* a stale deadline entry is dropped by the sweep without touching the reservation */
    tk_shard_keys_t keys;
    tk_shard_keys(ev, &keys);
    freeReplyObject(tk_lua_cmd("ZADD %s 0 %s", keys.names[TK_KEY_DL], paying));
    tk_time_sleep_ms(120); /* the hold lists naming both are due too */
    tk_lua_expire_sweep(ev, "200");
    redisReply *r = tk_lua_cmd("ZSCORE %s %s", keys.names[TK_KEY_DL], paying);
    ck_assert_int_eq(r->type, REDIS_REPLY_NIL);
    freeReplyObject(r);
    ck_assert_int_eq(tk_lua_hold_lists(ev), 0); /* swept, both skipped */
    char *blob = tk_lua_blob_get(paying);
    tk_lua_assert_status(blob, "PAYING");
    free(blob);
    tk_lua_expect_err(tk_lua_fcall("tk_cancel", paying, paying, NULL), "state", "PAYING", -1);
    tk_lua_expect_err(tk_lua_fcall("tk_cancel", done, done, NULL), "state", "COMPLETED", -1);
    tk_lua_stats_t s;
    tk_lua_stats_get(ev, &s);
    ck_assert(s.held == 2 && s.avail == 8 && s.expired == 0 && s.cancelled == 0);
    tk_lua_assert_invariant(ev);
}
END_TEST

/* ---- held-ticket buckets ---------------------------------------------------------------- */

START_TEST(test_a_paying_hold_leaves_its_bucket_and_a_failed_payment_returns_to_it)
{
    tk_lua_uuid_t ev, rid, tid, tid2;
    tk_lua_event_new(ev, tk_lua_future(), "A", "10", "100", NULL);
    tk_uuid_v4_in_shard(rid, ev);
    tk_lua_line_t line = {"A", "2"};
    tk_lua_expect_ok(tk_lua_reserve(ev, rid, 300, &line, 1), 0);
    ck_assert_int_eq(tk_lua_buckets_of(ev), 1);
    tk_uuid_v4_in_shard(tid, ev);
    tk_lua_pay_start_ok(rid, tid, TK_LUA_GATEWAY_MS);
    ck_assert_int_eq(tk_lua_buckets_of(ev), 0);
    tk_lua_expect_ok_status(tk_lua_pay_finish(rid, tid, "fail", TK_LUA_DECLINED), "PENDING");
    ck_assert_int_eq(tk_lua_buckets_of(ev), 1);
    tk_uuid_v4_in_shard(tid2, ev);
    tk_lua_pay_start_ok(rid, tid2, TK_LUA_GATEWAY_MS); /* paying again past the deadline: */
    tk_time_sleep_ms(400);
    tk_lua_expire_sweep(ev, "200"); /* the sweep leaves its tickets held */
    tk_lua_stats_t s;
    tk_lua_stats_get(ev, &s);
    ck_assert(s.avail == 8 && s.held == 2 && s.expired == 0);
    tk_lua_expect_ok_status(tk_lua_pay_finish(rid, tid2, "fail", TK_LUA_DECLINED), "CANCELLED");
    tk_lua_expire_sweep(ev, "200");
    tk_lua_stats_get(ev, &s);
    ck_assert(s.avail == 10 && s.held == 0 && s.expired == 2);
    ck_assert_int_eq(tk_lua_buckets_of(ev), 0);
    tk_lua_assert_invariant(ev);
}
END_TEST

START_TEST(test_a_cancelled_hold_takes_its_tickets_out_of_its_bucket)
{
    tk_lua_uuid_t ev, kept, cancelled;
    event_with_two_holds(ev, kept, cancelled, "2", 100);
    tk_lua_expect_ok(tk_lua_fcall("tk_cancel", cancelled, cancelled, NULL), 0);
    tk_time_sleep_ms(150);
    ck_assert_int_eq(tk_lua_expire_sweep(ev, "200"), 1);
    tk_lua_stats_t s;
    tk_lua_stats_get(ev, &s);
    ck_assert(s.avail == 10 && s.held == 0 && s.expired == 2 && s.cancelled == 2);
    ck_assert_int_eq(tk_lua_buckets_of(ev), 0);
    tk_lua_assert_invariant(ev);
}
END_TEST

/* Should Redis's clock step back after a sweep, a hold whose bucket went back on sale is
 * past its deadline all the same: it reads CANCELLED and cannot be paid. The sweep is made
 * to run early by moving the bucket's index entry into the past, and another hold's deadline
 * too (a sweep works on buckets only when some hold is due). */
START_TEST(test_a_hold_whose_bucket_was_swept_cannot_be_paid)
{
    tk_lua_uuid_t ev, rid, due, tid;
    tk_lua_event_new(ev, tk_lua_future(), "A", "10", "100", "B", "10", "100", NULL);
    tk_uuid_v4_in_shard(rid, ev);
    tk_lua_line_t line = {"A", "3"}, other = {"B", "1"};
    tk_lua_expect_ok(tk_lua_reserve(ev, rid, TK_LUA_HOLD_MS, &line, 1), 0);
    tk_uuid_v4_in_shard(due, ev);
    tk_lua_expect_ok(tk_lua_reserve(ev, due, TK_LUA_HOLD_MS, &other, 1), 0);
    tk_shard_keys_t keys;
    tk_shard_keys(ev, &keys);
    long long until = tk_lua_due_at(rid), slot = (until + 99) / 100 * 100, due_until = tk_lua_due_at(due);
    /* the bucket of a deadline is named after it rounded up to 100 ms and scored that minus
     * 10^13, a hold list after the deadline and scored it minus 2 x 10^13 (lua/ticketd.lua):
     * those are due since 1970 */
    redisReply *r = tk_lua_cmd("ZADD %s XX CH -10000000000000 q:%lld:%s:A", keys.names[TK_KEY_DL], slot, ev);
    ck_assert_int_eq(r->integer, 1); /* the bucket was there, now due */
    freeReplyObject(r);
    r = tk_lua_cmd("ZADD %s XX CH -20000000000000 h:%lld:%s", keys.names[TK_KEY_DL], due_until, due);
    ck_assert_int_eq(r->integer, 1); /* the other hold's list, now due */
    freeReplyObject(r);
    ck_assert_int_eq(tk_lua_expire_sweep(ev, "200"), 1); /* the other hold; ours is not due */
    tk_lua_stats_t s;
    tk_lua_stats_get(ev, &s);
    ck_assert(s.avail == 20 && s.held == 0 && s.expired == 4);
    tk_uuid_v4_in_shard(tid, ev);
    tk_lua_expect_err(tk_lua_pay_start(rid, tid, TK_LUA_GATEWAY_MS), "state", "CANCELLED", -1);
    tk_lua_stats_get(ev, &s);
    ck_assert(s.avail == 20 && s.held == 0 && s.sold == 0 && s.expired == 4);
    ck_assert_int_eq(tk_lua_due_at(rid), -1);
    ck_assert_int_eq(tk_lua_buckets_of(ev), 0);
    tk_lua_assert_invariant(ev);
}
END_TEST

/* ---- tk_cancel -------------------------------------------------------------------------- */

START_TEST(test_cancel_returns_tickets_then_second_cancel_is_state_cancelled)
{
    tk_lua_uuid_t ev, rid;
    tk_lua_event_new(ev, tk_lua_future(), "A", "10", "100", "B", "10", "100", NULL);
    tk_uuid_v4_in_shard(rid, ev);
    tk_lua_line_t lines[] = {{"A", "2"}, {"B", "1"}};
    tk_lua_expect_ok(tk_lua_reserve(ev, rid, TK_LUA_HOLD_MS, lines, 2), 0);
    tk_lua_assert_invariant(ev);
    tk_lua_expect_ok(tk_lua_fcall("tk_cancel", rid, rid, NULL), 0);
    tk_lua_assert_invariant(ev);
    tk_lua_stats_t s;
    tk_lua_stats_get(ev, &s);
    ck_assert(s.avail == 20 && s.held == 0 && s.cancelled == 3 && s.expired == 0);
    ck_assert_int_eq(tk_lua_due_at(rid), -1);
    char *blob = tk_lua_blob_get(rid);
    tk_lua_assert_status(blob, "CANCELLED");
    free(blob);
    tk_lua_expect_err(tk_lua_fcall("tk_cancel", rid, rid, NULL), "state", "CANCELLED", -1);
    tk_lua_stats_get(ev, &s);
    ck_assert(s.avail == 20 && s.cancelled == 3);
    tk_lua_assert_invariant(ev);
}
END_TEST

START_TEST(test_cancel_after_expiry_is_state_cancelled)
{
    tk_lua_uuid_t ev, rid;
    tk_lua_event_new(ev, tk_lua_future(), "A", "10", "100", NULL);
    tk_uuid_v4_in_shard(rid, ev);
    tk_lua_line_t line = {"A", "4"};
    tk_lua_expect_ok(tk_lua_reserve(ev, rid, 50, &line, 1), 0);
    tk_time_sleep_ms(120);
    tk_lua_expect_err(tk_lua_fcall("tk_cancel", rid, rid, NULL), "state", "CANCELLED", -1);
    tk_lua_stats_t s;
    tk_lua_stats_get(ev, &s);
    ck_assert(s.avail == 10 && s.held == 0 && s.expired == 4 && s.cancelled == 0);
    tk_lua_assert_invariant(ev);
}
END_TEST

/* Redis full (maxmemory, noeviction): a new hold is refused, which pauses the sale, but a
 * buyer still reads a reservation and can cancel one (each only frees a hold) */
START_TEST(test_reads_and_cancel_run_when_redis_is_full)
{
    tk_lua_uuid_t ev, kept, given_back, late;
    tk_lua_event_new(ev, tk_lua_future(), "A", "10", "2500", NULL);
    tk_uuid_v4_in_shard(kept, ev);
    tk_uuid_v4_in_shard(given_back, ev);
    tk_uuid_v4_in_shard(late, ev);
    tk_lua_line_t line = {"A", "2"};
    tk_lua_expect_ok(tk_lua_reserve(ev, kept, TK_LUA_HOLD_MS, &line, 1), 0);
    tk_lua_expect_ok(tk_lua_reserve(ev, given_back, TK_LUA_HOLD_MS, &line, 1), 0);
    redisReply *limit = tk_lua_cmd("CONFIG GET maxmemory");
    char before[32];
    snprintf(before, sizeof(before), "%s", limit->element[1]->str);
    freeReplyObject(limit);
    freeReplyObject(tk_lua_cmd("CONFIG SET maxmemory 1"));
    redisReply *got = tk_lua_fcall("tk_get", kept, kept, NULL);
    redisReply *viewed = tk_lua_fcall("tk_view", kept, kept, NULL);
    redisReply *cancelled = tk_lua_fcall("tk_cancel", given_back, given_back, NULL);
    redisReply *held = tk_lua_reserve(ev, late, TK_LUA_HOLD_MS, &line, 1);
    freeReplyObject(tk_lua_cmd("CONFIG SET maxmemory %s", before));
    tk_lua_expect_ok(got, 0);
    tk_lua_expect_ok(viewed, 0);
    tk_lua_expect_ok(cancelled, 0);
    ck_assert_msg(held->type == REDIS_REPLY_ERROR && strncmp(held->str, "OOM", 3) == 0, "a new hold at the limit: %s",
                  held->type == REDIS_REPLY_ERROR ? held->str : "not refused");
    freeReplyObject(held);
    tk_lua_type_stats_t a = tk_lua_stats_type(ev, "A");
    ck_assert(a.avail == 8 && a.held == 2);
    tk_lua_assert_invariant(ev);
}
END_TEST

START_TEST(test_cancel_or_get_unknown_is_not_found)
{
    tk_lua_uuid_t rid;
    tk_uuid_v4(rid);
    tk_lua_expect_err(tk_lua_fcall("tk_cancel", rid, rid, NULL), "not_found", NULL, -1);
    ck_assert_ptr_null(tk_lua_blob_get(rid));
}
END_TEST

static void add_tests(TCase *tc)
{
    tcase_add_test(tc, test_expired_hold_reads_cancelled_with_tickets_back);
    tcase_add_test(tc, test_expire_sweeps_without_a_read);
    tcase_add_test(tc, test_expire_next_tells_when_the_shard_is_due);
    tcase_add_test(tc, test_paying_and_completed_never_expire_or_cancel);
    tcase_add_test(tc, test_a_paying_hold_leaves_its_bucket_and_a_failed_payment_returns_to_it);
    tcase_add_test(tc, test_a_cancelled_hold_takes_its_tickets_out_of_its_bucket);
    tcase_add_test(tc, test_a_hold_whose_bucket_was_swept_cannot_be_paid);
    tcase_add_test(tc, test_cancel_returns_tickets_then_second_cancel_is_state_cancelled);
    tcase_add_test(tc, test_cancel_after_expiry_is_state_cancelled);
    tcase_add_test(tc, test_cancel_or_get_unknown_is_not_found);
    tcase_add_test(tc, test_reads_and_cancel_run_when_redis_is_full);
}

int main(void)
{
    return tk_lua_run("lua_expiry", add_tests);
}
