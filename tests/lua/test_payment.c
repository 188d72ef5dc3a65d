/*
 * test_payment.c: tests of lua/ticketd.lua, tk_pay_start and tk_pay_finish: PENDING -> PAYING ->
 * COMPLETED or back, the transaction record, stale and late answers, the gateway deadline.
 * Runs against the test Redis (tests/lua/support.h); after every change a test checks
 * avail + held + sold == cap.
 */
#include "tests/lua/support.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- tk_pay_start ----------------------------------------------------------------------- */

START_TEST(test_pay_start_makes_pending_paying_with_amount_then_exists)
{
    tk_lua_uuid_t ev, rid, tid, other;
    char needle[128];
    tk_lua_event_new(ev, tk_lua_future(), "VIP", "3", "35000", "Std", "10", "1000", NULL);
    tk_uuid_v4_in_shard(rid, ev);
    tk_lua_line_t lines[] = {{"VIP", "2"}, {"Std", "1"}};
    tk_lua_expect_ok(tk_lua_reserve(ev, rid, TK_LUA_HOLD_MS, lines, 2), 0);
    tk_uuid_v4_in_shard(tid, ev);
    int64_t t0 = tk_time_now_ms();
    ck_assert_int_eq(tk_lua_pay_start_ok(rid, tid, TK_LUA_GATEWAY_MS), 2 * 35000 + 1000);
    int64_t t1 = tk_time_now_ms();
    tk_lua_assert_invariant(ev);

    char *blob = tk_lua_blob_get(rid);
    tk_lua_assert_status(blob, "PAYING");
    snprintf(needle, sizeof(needle), "\"id\":\"%s\"", tid);
    ck_assert_msg(strstr(blob, needle) != NULL, "want %s in %s", needle, blob);
    ck_assert_ptr_nonnull(strstr(blob, "\"amt\":71000"));
    free(blob);
    ck_assert_int_eq(tk_lua_due_at(rid), -1);
    long long deadline = tk_lua_pay_has(rid);
    ck_assert_int_ge(deadline, t0 + 30000 - 5);
    ck_assert_int_le(deadline, t1 + 30000 + 5);
    tk_lua_expect_txn(tid, "PENDING", "");
    /* tickets stay held while the gateway works */
    tk_lua_type_stats_t vip = tk_lua_stats_type(ev, "VIP"), std = tk_lua_stats_type(ev, "Std");
    ck_assert(vip.held == 2 && vip.sold == 0 && std.held == 1 && std.sold == 0);

    /* a payment is in flight: the same one is named, nothing new starts */
    tk_uuid_v4_in_shard(other, ev);
    redisReply *r = tk_lua_pay_start(rid, other, TK_LUA_GATEWAY_MS);
    char buf[512];
    tk_lua_describe(r, buf, sizeof(buf));
    ck_assert_msg(r->type == REDIS_REPLY_ARRAY && r->elements == 2 && strcmp(r->element[0]->str, "EXISTS") == 0 &&
                      strcmp(r->element[1]->str, tid) == 0,
                  "expected EXISTS %s, got %s", tid, buf);
    freeReplyObject(r);
    ck_assert_int_eq(tk_lua_shard_hexists(TK_KEY_TX, other), 0);
    ck_assert_int_eq(tk_lua_pay_has(rid), deadline);
    tk_lua_expect_txn(tid, "PENDING", "");
    tk_lua_assert_invariant(ev);
}
END_TEST

/* A caller whose reply was lost repeats the call with the same transaction: it learns
 * that the payment it started is its own (OK, the same amount) and nothing changes, so one
 * transaction, charged once. Once settled, the id is used up. */
START_TEST(test_pay_start_repeated_with_its_txn_answers_ok_again_and_changes_nothing)
{
    tk_lua_uuid_t ev, rid, tid, other;
    tk_lua_event_new(ev, tk_lua_future(), "A", "10", "2500", NULL);
    tk_uuid_v4_in_shard(rid, ev);
    tk_lua_line_t line = {"A", "2"};
    tk_lua_expect_ok(tk_lua_reserve(ev, rid, TK_LUA_HOLD_MS, &line, 1), 0);
    tk_uuid_v4_in_shard(tid, ev);
    ck_assert_int_eq(tk_lua_pay_start_ok(rid, tid, TK_LUA_GATEWAY_MS), 5000);
    char *blob = tk_lua_blob_raw(rid);
    long long deadline = tk_lua_pay_has(rid);
    tk_lua_outbox_entry_t entries[8];
    int nentries = tk_lua_outbox_for(rid, entries, 8);
    char *inv = tk_lua_inv_snapshot(ev);

    ck_assert_int_eq(tk_lua_pay_start_ok(rid, tid, "1"), 5000);
    char *again = tk_lua_blob_raw(rid);
    ck_assert_str_eq(again, blob);
    ck_assert_int_eq(tk_lua_pay_has(rid), deadline); /* not "1": the first call's deadline stays */
    ck_assert_int_eq(tk_lua_outbox_for(rid, entries, 8), nentries);
    char *inv_again = tk_lua_inv_snapshot(ev);
    ck_assert_str_eq(inv_again, inv);
    tk_lua_expect_txn(tid, "PENDING", "");
    tk_lua_assert_invariant(ev);

    /* on another reservation the id is still refused */
    tk_uuid_v4_in_shard(other, ev);
    tk_lua_expect_ok(tk_lua_reserve(ev, other, TK_LUA_HOLD_MS, &line, 1), 0);
    redisReply *r = tk_lua_pay_start(other, tid, TK_LUA_GATEWAY_MS);
    ck_assert_int_eq(r->type, REDIS_REPLY_ERROR);
    freeReplyObject(r);
    ck_assert_int_eq(tk_lua_pay_has(other), -1);

    /* settled, the transaction is no longer in flight: its id is used up */
    tk_lua_expect_ok_status(tk_lua_pay_finish(rid, tid, "fail", TK_LUA_DECLINED), "PENDING");
    r = tk_lua_pay_start(rid, tid, TK_LUA_GATEWAY_MS);
    ck_assert_int_eq(r->type, REDIS_REPLY_ERROR);
    freeReplyObject(r);
    tk_lua_expect_txn(tid, "ERROR", TK_LUA_DECLINED);
    ck_assert_int_eq(tk_lua_pay_has(rid), -1);
    tk_lua_assert_invariant(ev);
    free(blob);
    free(again);
    free(inv);
    free(inv_again);
}
END_TEST

START_TEST(test_pay_start_unknown_is_not_found)
{
    tk_lua_uuid_t rid, tid;
    tk_uuid_v4(rid);
    tk_uuid_v4_in_shard(tid, rid);
    tk_lua_expect_err(tk_lua_pay_start(rid, tid, TK_LUA_GATEWAY_MS), "not_found", NULL, -1);
    ck_assert_int_eq(tk_lua_shard_hexists(TK_KEY_TX, tid), 0);
    ck_assert_int_eq(tk_lua_pay_has(rid), -1);
}
END_TEST

START_TEST(test_pay_start_cancelled_or_completed_is_state)
{
    tk_lua_uuid_t ev, gone, done, tid;
    tk_lua_event_new(ev, tk_lua_future(), "A", "10", "100", NULL);
    tk_lua_line_t line = {"A", "2"};
    tk_uuid_v4_in_shard(gone, ev);
    tk_lua_expect_ok(tk_lua_reserve(ev, gone, TK_LUA_HOLD_MS, &line, 1), 0);
    tk_lua_expect_ok(tk_lua_fcall("tk_cancel", gone, gone, NULL), 0);
    tk_uuid_v4_in_shard(tid, ev);
    tk_lua_expect_err(tk_lua_pay_start(gone, tid, TK_LUA_GATEWAY_MS), "state", "CANCELLED", -1);
    ck_assert_int_eq(tk_lua_shard_hexists(TK_KEY_TX, tid), 0);
    ck_assert_int_eq(tk_lua_pay_has(gone), -1);

    tk_uuid_v4_in_shard(done, ev);
    tk_lua_expect_ok(tk_lua_reserve(ev, done, TK_LUA_HOLD_MS, &line, 1), 0);
    tk_uuid_v4_in_shard(tid, ev);
    tk_lua_pay_start_ok(done, tid, TK_LUA_GATEWAY_MS);
    tk_lua_expect_ok_status(tk_lua_pay_finish(done, tid, "ok", ""), "COMPLETED");
    tk_uuid_v4_in_shard(tid, ev);
    tk_lua_expect_err(tk_lua_pay_start(done, tid, TK_LUA_GATEWAY_MS), "state", "COMPLETED", -1);
    ck_assert_int_eq(tk_lua_shard_hexists(TK_KEY_TX, tid), 0);
    tk_lua_stats_t s;
    tk_lua_stats_get(ev, &s);
    ck_assert(s.avail == 8 && s.held == 0 && s.sold == 2 && s.revenue == 200 && s.cancelled == 2);
    tk_lua_assert_invariant(ev);
}
END_TEST

START_TEST(test_pay_start_on_expired_hold_is_state_cancelled)
{
    tk_lua_uuid_t ev, rid, tid;
    tk_lua_event_new(ev, tk_lua_future(), "A", "10", "100", NULL);
    tk_uuid_v4_in_shard(rid, ev);
    tk_lua_line_t line = {"A", "3"};
    tk_lua_expect_ok(tk_lua_reserve(ev, rid, 50, &line, 1), 0);
    tk_time_sleep_ms(120);
    tk_uuid_v4_in_shard(tid, ev);
    tk_lua_expect_err(tk_lua_pay_start(rid, tid, TK_LUA_GATEWAY_MS), "state", "CANCELLED", -1);
    ck_assert_int_eq(tk_lua_shard_hexists(TK_KEY_TX, tid), 0);
    ck_assert_int_eq(tk_lua_pay_has(rid), -1);
    tk_lua_stats_t s;
    tk_lua_stats_get(ev, &s);
    ck_assert(s.avail == 10 && s.held == 0 && s.sold == 0 && s.expired == 3 && s.revenue == 0);
    tk_lua_assert_invariant(ev);
}
END_TEST

START_TEST(test_pay_start_txn_outside_the_shard_is_a_redis_error)
{
    tk_lua_uuid_t ev, rid, tid;
    tk_lua_event_new(ev, tk_lua_future(), "A", "10", "100", NULL);
    tk_uuid_v4_in_shard(rid, ev);
    tk_lua_line_t line = {"A", "1"};
    tk_lua_expect_ok(tk_lua_reserve(ev, rid, TK_LUA_HOLD_MS, &line, 1), 0);
    do
        tk_uuid_v4(tid);
    while (memcmp(tid, ev, 4) == 0);
    redisReply *r = tk_lua_pay_start(rid, tid, TK_LUA_GATEWAY_MS);
    ck_assert_int_eq(r->type, REDIS_REPLY_ERROR);
    freeReplyObject(r);
    tk_uuid_v4_in_shard(tid, ev);
    r = tk_lua_pay_start(rid, tid, "0"); /* a gateway timeout must be >= 1 ms */
    ck_assert_int_eq(r->type, REDIS_REPLY_ERROR);
    freeReplyObject(r);
    char *blob = tk_lua_blob_get(rid);
    tk_lua_assert_status(blob, "PENDING");
    free(blob);
    ck_assert_int_eq(tk_lua_pay_has(rid), -1);
    ck_assert_int_ge(tk_lua_due_at(rid), 0);
}
END_TEST

/* ---- tk_pay_finish ---------------------------------------------------------------------- */

START_TEST(test_pay_finish_ok_sells_tickets_then_cancel_and_second_finish_refused)
{
    tk_lua_uuid_t ev, rid, tid;
    tk_lua_event_new(ev, tk_lua_future(), "VIP", "3", "35000", "Std", "10", "1000", NULL);
    tk_uuid_v4_in_shard(rid, ev);
    tk_lua_line_t lines[] = {{"VIP", "2"}, {"Std", "1"}};
    tk_lua_expect_ok(tk_lua_reserve(ev, rid, TK_LUA_HOLD_MS, lines, 2), 0);
    tk_uuid_v4_in_shard(tid, ev);
    long long amount = tk_lua_pay_start_ok(rid, tid, TK_LUA_GATEWAY_MS);
    tk_lua_expect_ok_status(tk_lua_pay_finish(rid, tid, "ok", ""), "COMPLETED");
    tk_lua_assert_invariant(ev);

    tk_lua_type_stats_t vip = tk_lua_stats_type(ev, "VIP"), std = tk_lua_stats_type(ev, "Std");
    ck_assert(vip.avail == 1 && vip.held == 0 && vip.sold == 2);
    ck_assert(std.avail == 9 && std.held == 0 && std.sold == 1);
    tk_lua_stats_t s;
    tk_lua_stats_get(ev, &s);
    ck_assert_int_eq(s.revenue, amount);
    ck_assert(s.cancelled == 0 && s.expired == 0);
    tk_lua_expect_txn(tid, "COMPLETED", "");
    char *blob = tk_lua_blob_get(rid);
    tk_lua_assert_status(blob, "COMPLETED");
    free(blob);
    ck_assert_int_eq(tk_lua_pay_has(rid), -1);
    ck_assert_int_eq(tk_lua_due_at(rid), -1);

    tk_lua_expect_err(tk_lua_fcall("tk_cancel", rid, rid, NULL), "state", "COMPLETED", -1);
    tk_lua_expect_err(tk_lua_pay_finish(rid, tid, "ok", ""), "stale", "COMPLETED", -1);
    tk_lua_expect_err(tk_lua_pay_finish(rid, tid, "fail", TK_LUA_DECLINED), "stale", "COMPLETED", -1);
    tk_lua_stats_get(ev, &s);
    ck_assert(s.revenue == amount && s.sold == 3 && s.held == 0 && s.cancelled == 0);
    tk_lua_expect_txn(tid, "COMPLETED", "");
    tk_lua_assert_invariant(ev);
}
END_TEST

/* Redis full (maxmemory, noeviction): a new payment is refused, but the gateway's answer to
 * one in flight is recorded, or the sweeper (which runs at the limit) would time it out */
START_TEST(test_pay_finish_is_recorded_when_redis_is_full)
{
    tk_lua_uuid_t ev, rid, rid2, tid, tid2;
    tk_lua_event_new(ev, tk_lua_future(), "VIP", "3", "35000", NULL);
    tk_uuid_v4_in_shard(rid, ev);
    tk_uuid_v4_in_shard(rid2, ev);
    tk_lua_line_t lines[] = {{"VIP", "1"}};
    tk_lua_expect_ok(tk_lua_reserve(ev, rid, TK_LUA_HOLD_MS, lines, 1), 0);
    tk_lua_expect_ok(tk_lua_reserve(ev, rid2, TK_LUA_HOLD_MS, lines, 1), 0);
    tk_uuid_v4_in_shard(tid, ev);
    tk_uuid_v4_in_shard(tid2, ev);
    tk_lua_pay_start_ok(rid, tid, TK_LUA_GATEWAY_MS);
    redisReply *limit = tk_lua_cmd("CONFIG GET maxmemory");
    char before[32];
    snprintf(before, sizeof(before), "%s", limit->element[1]->str);
    freeReplyObject(limit);
    freeReplyObject(tk_lua_cmd("CONFIG SET maxmemory 1"));
    redisReply *started = tk_lua_pay_start(rid2, tid2, TK_LUA_GATEWAY_MS);
    redisReply *finished = tk_lua_pay_finish(rid, tid, "ok", "");
    freeReplyObject(tk_lua_cmd("CONFIG SET maxmemory %s", before));
    ck_assert_msg(started->type == REDIS_REPLY_ERROR && strncmp(started->str, "OOM", 3) == 0, "a new payment at the limit: %s",
                  started->type == REDIS_REPLY_ERROR ? started->str : "not refused");
    freeReplyObject(started);
    tk_lua_expect_ok_status(finished, "COMPLETED");
    tk_lua_expect_txn(tid, "COMPLETED", "");
    tk_lua_assert_invariant(ev);
}
END_TEST

START_TEST(test_pay_finish_fail_back_to_pending_then_retry_with_new_txn)
{
    tk_lua_uuid_t ev, rid, t1, t2;
    tk_lua_event_new(ev, tk_lua_future(), "A", "10", "2500", NULL);
    tk_uuid_v4_in_shard(rid, ev);
    tk_lua_line_t line = {"A", "2"};
    redisReply *r = tk_lua_reserve(ev, rid, TK_LUA_HOLD_MS, &line, 1);
    tk_lua_expect_ok(r, 1);
    long long until = r->element[2]->integer;
    freeReplyObject(r);
    tk_uuid_v4_in_shard(t1, ev);
    ck_assert_int_eq(tk_lua_pay_start_ok(rid, t1, TK_LUA_GATEWAY_MS), 5000);
    tk_lua_expect_ok_status(tk_lua_pay_finish(rid, t1, "fail", TK_LUA_DECLINED), "PENDING");
    tk_lua_assert_invariant(ev);

    tk_lua_expect_txn(t1, "ERROR", TK_LUA_DECLINED);
    char *blob = tk_lua_blob_get(rid);
    tk_lua_assert_status(blob, "PENDING");
    ck_assert_int_eq(tk_lua_blob_int(blob, "u"), until);
    ck_assert_ptr_nonnull(strstr(blob, TK_LUA_DECLINED));
    free(blob);
    ck_assert_int_eq(tk_lua_due_at(rid), until);
    ck_assert_int_eq(tk_lua_pay_has(rid), -1);
    tk_lua_stats_t s;
    tk_lua_stats_get(ev, &s);
    ck_assert(s.held == 2 && s.sold == 0 && s.revenue == 0 && s.expired == 0 && s.cancelled == 0);

    /* retry with a new transaction; the old one stays failed and can no longer finish */
    tk_uuid_v4_in_shard(t2, ev);
    ck_assert_int_eq(tk_lua_pay_start_ok(rid, t2, TK_LUA_GATEWAY_MS), 5000);
    tk_lua_expect_txn(t2, "PENDING", "");
    tk_lua_expect_txn(t1, "ERROR", TK_LUA_DECLINED);
    ck_assert_int_eq(tk_lua_due_at(rid), -1);
    tk_lua_expect_err(tk_lua_pay_finish(rid, t1, "ok", ""), "stale", "PAYING", -1);
    tk_lua_expect_ok_status(tk_lua_pay_finish(rid, t2, "ok", ""), "COMPLETED");
    tk_lua_expect_txn(t2, "COMPLETED", "");
    tk_lua_stats_get(ev, &s);
    ck_assert(s.held == 0 && s.sold == 2 && s.revenue == 5000);
    tk_lua_assert_invariant(ev);
}
END_TEST

START_TEST(test_pay_finish_fail_without_message_says_payment_failed)
{
    tk_lua_uuid_t ev, rid, tid;
    tk_lua_event_new(ev, tk_lua_future(), "A", "10", "100", NULL);
    tk_uuid_v4_in_shard(rid, ev);
    tk_lua_line_t line = {"A", "1"};
    tk_lua_expect_ok(tk_lua_reserve(ev, rid, TK_LUA_HOLD_MS, &line, 1), 0);
    tk_uuid_v4_in_shard(tid, ev);
    tk_lua_pay_start_ok(rid, tid, TK_LUA_GATEWAY_MS);
    tk_lua_expect_ok_status(tk_lua_pay_finish(rid, tid, "fail", ""), "PENDING");
    tk_lua_expect_txn(tid, "ERROR", "Payment failed");
    tk_lua_assert_invariant(ev);
}
END_TEST

START_TEST(test_pay_finish_fail_after_until_expires_at_once)
{
    tk_lua_uuid_t ev, rid, tid;
    tk_lua_event_new(ev, tk_lua_future(), "A", "10", "100", "B", "10", "300", NULL);
    tk_uuid_v4_in_shard(rid, ev);
    tk_lua_line_t lines[] = {{"A", "2"}, {"B", "1"}};
    tk_lua_expect_ok(tk_lua_reserve(ev, rid, 100, lines, 2), 0);
    tk_uuid_v4_in_shard(tid, ev);
    tk_lua_pay_start_ok(rid, tid, TK_LUA_GATEWAY_MS);
    tk_time_sleep_ms(150);
    /* past until, but PAYING: nothing expired it */
    char *blob = tk_lua_blob_get(rid);
    tk_lua_assert_status(blob, "PAYING");
    free(blob);
    tk_lua_expect_ok_status(tk_lua_pay_finish(rid, tid, "fail", TK_LUA_DECLINED), "CANCELLED");
    tk_lua_assert_invariant(ev);
    tk_lua_expect_txn(tid, "ERROR", TK_LUA_DECLINED);
    blob = tk_lua_blob_get(rid);
    tk_lua_assert_status(blob, "CANCELLED");
    free(blob);
    tk_lua_stats_t s;
    tk_lua_stats_get(ev, &s);
    ck_assert(s.avail == 20 && s.held == 0 && s.sold == 0 && s.expired == 3 && s.cancelled == 0 && s.revenue == 0);
    ck_assert_int_eq(tk_lua_due_at(rid), -1);
    ck_assert_int_eq(tk_lua_pay_has(rid), -1);
    /* one outbox entry for the failure and the expiry together */
    tk_lua_outbox_entry_t e[4];
    ck_assert_int_eq(tk_lua_outbox_for(rid, e, 4), 3);
    ck_assert_str_eq(e[2].rec.status, "CANCELLED");
    ck_assert_str_eq(e[2].rec.txn_status, "ERROR");
    ck_assert_str_eq(e[2].rec.txn_error, TK_LUA_DECLINED);
    tk_uuid_v4_in_shard(tid, ev);
    tk_lua_expect_err(tk_lua_pay_start(rid, tid, TK_LUA_GATEWAY_MS), "state", "CANCELLED", -1);
}
END_TEST

START_TEST(test_paying_hold_survives_its_until_only_the_gateway_timeout_fails_it)
{
    tk_lua_uuid_t ev, rid, tid;
    tk_lua_event_new(ev, tk_lua_future(), "A", "10", "100", NULL);
    tk_uuid_v4_in_shard(rid, ev);
    tk_lua_line_t line = {"A", "2"};
    tk_lua_expect_ok(tk_lua_reserve(ev, rid, 50, &line, 1), 0);
    tk_uuid_v4_in_shard(tid, ev);
    tk_lua_pay_start_ok(rid, tid, "400");
    long long deadline = tk_lua_pay_has(rid);
    tk_time_sleep_ms(120); /* until has passed, the gateway deadline has not */
    tk_lua_expire_sweep(ev, "200");
    char *blob = tk_lua_blob_get(rid);
    tk_lua_assert_status(blob, "PAYING");
    free(blob);
    tk_lua_expect_txn(tid, "PENDING", "");
    tk_lua_stats_t s;
    tk_lua_stats_get(ev, &s);
    ck_assert(s.held == 2 && s.expired == 0);
    ck_assert_int_eq(tk_lua_pay_has(rid), deadline);
    tk_lua_assert_invariant(ev);

    long long wait = deadline - tk_time_now_ms() + 30;
    if (wait > 0)
        tk_time_sleep_ms((long)wait);
    tk_lua_expire_sweep(ev, "200");
    blob = tk_lua_blob_raw(rid);
    tk_lua_assert_status(blob, "CANCELLED");
    free(blob);
    tk_lua_expect_txn(tid, "ERROR", TK_LUA_TIMED_OUT);
    tk_lua_stats_get(ev, &s);
    ck_assert(s.avail == 10 && s.held == 0 && s.sold == 0 && s.expired == 2);
    ck_assert_int_eq(tk_lua_pay_has(rid), -1);
    ck_assert_int_eq(tk_lua_due_at(rid), -1);
    /* the gateway's late answer changes nothing */
    tk_lua_expect_err(tk_lua_pay_finish(rid, tid, "ok", ""), "stale", "CANCELLED", -1);
    tk_lua_stats_get(ev, &s);
    ck_assert(s.sold == 0 && s.revenue == 0);
    tk_lua_assert_invariant(ev);
}
END_TEST

START_TEST(test_gateway_timeout_returns_a_live_hold_to_pending)
{
    tk_lua_uuid_t ev, rid, tid, again;
    tk_lua_event_new(ev, tk_lua_future(), "A", "10", "100", NULL);
    tk_uuid_v4_in_shard(rid, ev);
    tk_lua_line_t line = {"A", "2"};
    redisReply *r = tk_lua_reserve(ev, rid, TK_LUA_HOLD_MS, &line, 1);
    tk_lua_expect_ok(r, 1);
    long long until = r->element[2]->integer;
    freeReplyObject(r);
    tk_uuid_v4_in_shard(tid, ev);
    tk_lua_pay_start_ok(rid, tid, "50");
    tk_time_sleep_ms(120);
    /* nothing but the sweep fails it: a read still sees PAYING */
    char *blob = tk_lua_blob_get(rid);
    tk_lua_assert_status(blob, "PAYING");
    free(blob);
    tk_lua_expire_sweep(ev, "200");
    blob = tk_lua_blob_raw(rid);
    tk_lua_assert_status(blob, "PENDING");
    free(blob);
    tk_lua_expect_txn(tid, "ERROR", TK_LUA_TIMED_OUT);
    ck_assert_int_eq(tk_lua_due_at(rid), until);
    ck_assert_int_eq(tk_lua_pay_has(rid), -1);
    tk_lua_stats_t s;
    tk_lua_stats_get(ev, &s);
    ck_assert(s.held == 2 && s.expired == 0 && s.sold == 0);
    /* the late answer of the gateway is stale; a new attempt may start */
    tk_lua_expect_err(tk_lua_pay_finish(rid, tid, "ok", ""), "stale", "PENDING", -1);
    tk_uuid_v4_in_shard(again, ev);
    tk_lua_pay_start_ok(rid, again, TK_LUA_GATEWAY_MS);
    tk_lua_expect_txn(again, "PENDING", "");
    tk_lua_assert_invariant(ev);
}
END_TEST

START_TEST(test_pay_finish_with_wrong_txn_is_stale_and_changes_nothing)
{
    tk_lua_uuid_t ev, rid, tid, wrong, pending, unknown;
    tk_lua_event_new(ev, tk_lua_future(), "A", "10", "100", NULL);
    tk_lua_line_t line = {"A", "2"};
    tk_uuid_v4_in_shard(rid, ev);
    tk_lua_expect_ok(tk_lua_reserve(ev, rid, TK_LUA_HOLD_MS, &line, 1), 0);
    tk_uuid_v4_in_shard(pending, ev);
    tk_lua_expect_ok(tk_lua_reserve(ev, pending, TK_LUA_HOLD_MS, &line, 1), 0);
    tk_uuid_v4_in_shard(tid, ev);
    tk_lua_pay_start_ok(rid, tid, TK_LUA_GATEWAY_MS);
    char *inv_before = tk_lua_inv_snapshot(ev), *blob_before = tk_lua_blob_raw(rid), *pend_before = tk_lua_blob_raw(pending);
    long long deadline = tk_lua_pay_has(rid);

    tk_uuid_v4_in_shard(wrong, ev);
    tk_lua_expect_err(tk_lua_pay_finish(rid, wrong, "ok", ""), "stale", "PAYING", -1);
    tk_lua_expect_err(tk_lua_pay_finish(rid, wrong, "fail", TK_LUA_DECLINED), "stale", "PAYING", -1);
    /* no payment in flight, or no reservation at all */
    tk_lua_expect_err(tk_lua_pay_finish(pending, tid, "ok", ""), "stale", "PENDING", -1);
    tk_uuid_v4_in_shard(unknown, ev);
    tk_lua_expect_err(tk_lua_pay_finish(unknown, tid, "ok", ""), "stale", "NOT_FOUND", -1);

    char *inv_after = tk_lua_inv_snapshot(ev), *blob_after = tk_lua_blob_raw(rid), *pend_after = tk_lua_blob_raw(pending);
    ck_assert_str_eq(inv_before, inv_after);
    ck_assert_str_eq(blob_before, blob_after);
    ck_assert_str_eq(pend_before, pend_after);
    ck_assert_int_eq(tk_lua_pay_has(rid), deadline);
    tk_lua_expect_txn(tid, "PENDING", "");
    tk_lua_expect_err(tk_lua_fcall("tk_txn", wrong, wrong, NULL), "not_found", NULL, -1);
    ck_assert_int_eq(tk_lua_res_exists(unknown), 0);
    tk_lua_assert_invariant(ev);
    free(inv_before);
    free(inv_after);
    free(blob_before);
    free(blob_after);
    free(pend_before);
    free(pend_after);
}
END_TEST

static void add_tests(TCase *tc)
{
    tcase_add_test(tc, test_pay_start_makes_pending_paying_with_amount_then_exists);
    tcase_add_test(tc, test_pay_start_repeated_with_its_txn_answers_ok_again_and_changes_nothing);
    tcase_add_test(tc, test_pay_start_unknown_is_not_found);
    tcase_add_test(tc, test_pay_start_cancelled_or_completed_is_state);
    tcase_add_test(tc, test_pay_start_on_expired_hold_is_state_cancelled);
    tcase_add_test(tc, test_pay_start_txn_outside_the_shard_is_a_redis_error);
    tcase_add_test(tc, test_pay_finish_ok_sells_tickets_then_cancel_and_second_finish_refused);
    tcase_add_test(tc, test_pay_finish_is_recorded_when_redis_is_full);
    tcase_add_test(tc, test_pay_finish_fail_back_to_pending_then_retry_with_new_txn);
    tcase_add_test(tc, test_pay_finish_fail_without_message_says_payment_failed);
    tcase_add_test(tc, test_pay_finish_fail_after_until_expires_at_once);
    tcase_add_test(tc, test_paying_hold_survives_its_until_only_the_gateway_timeout_fails_it);
    tcase_add_test(tc, test_gateway_timeout_returns_a_live_hold_to_pending);
    tcase_add_test(tc, test_pay_finish_with_wrong_txn_is_stale_and_changes_nothing);
}

int main(void)
{
    return tk_lua_run("lua_payment", add_tests);
}
