/*
 * test_outbox.c: tests of lua/ticketd.lua, the outbox: every change appends the whole reservation (read
 * with engine/outbox.c's decoder, as the writer reads it), tk_persisted acknowledges and
 * forgets, and tk_stats reports the persistence lag.
 * Runs against the test Redis (tests/lua/support.h); after every change a test checks
 * avail + held + sold == cap.
 */
#include "tests/lua/support.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the outbox ------------------------------------------------------------------------- */

/* entry is the whole reservation rid of ev with the tickets of the last reserve call */
static void assert_ob_whole(const tk_lua_outbox_entry_t *e, const char *rid, const char *ev, long long created, long long until,
                            const char *const *types, const long long *prices)
{
    ck_assert_str_eq(e->rec.rid, rid);
    ck_assert_str_eq(e->rec.event, ev);
    ck_assert_int_eq(e->rec.created_ms, created);
    ck_assert_int_eq(e->rec.until_ms, until);
    ck_assert_int_eq(e->ntickets, tk_lua_last_ntickets);
    for (int i = 0; i < e->ntickets; i++) {
        ck_assert_str_eq(e->tickets[i].id, tk_lua_last_tickets[i]);
        ck_assert_str_eq(e->tickets[i].type, types[i]);
        ck_assert_int_eq(e->tickets[i].price_minor, prices[i]);
    }
}

START_TEST(test_outbox_reserve_pay_complete_three_whole_entries)
{
    static const char *const types[] = {"VIP", "VIP", "Std"};
    static const long long prices[] = {35000, 35000, 1000};
    tk_lua_uuid_t ev, rid, tid;
    tk_lua_outbox_entry_t e[4];
    tk_lua_event_new(ev, tk_lua_future(), "VIP", "3", "35000", "Std", "10", "1000", NULL);
    tk_uuid_v4_in_shard(rid, ev);
    tk_lua_line_t lines[] = {{"VIP", "2"}, {"Std", "1"}};
    redisReply *r = tk_lua_reserve(ev, rid, TK_LUA_HOLD_MS, lines, 2);
    tk_lua_expect_ok(r, 1);
    long long created = r->element[1]->integer, until = r->element[2]->integer;
    freeReplyObject(r);
    ck_assert_int_eq(tk_lua_outbox_for(rid, e, 4), 1);
    /* the entry carries the id (field "r"), the stored record leaves it to its hash field */
    char *stored = tk_lua_blob_raw(rid);
    ck_assert_msg(strstr(stored, "\"r\":") == NULL, "stored with its id: %s", stored);
    free(stored);
    tk_uuid_v4_in_shard(tid, ev);
    tk_lua_pay_start_ok(rid, tid, TK_LUA_GATEWAY_MS);
    ck_assert_int_eq(tk_lua_outbox_for(rid, e, 4), 2);
    tk_lua_expect_ok_status(tk_lua_pay_finish(rid, tid, "ok", ""), "COMPLETED");

    ck_assert_int_eq(tk_lua_outbox_for(rid, e, 4), 3);
    static const char *const want[] = {"PENDING", "PENDING", "COMPLETED"};
    for (int i = 0; i < 3; i++) {
        assert_ob_whole(&e[i], rid, ev, created, until, types, prices);
        ck_assert_str_eq(e[i].rec.status, want[i]); /* PAYING shows as PENDING */
    }
    ck_assert_int_eq(e[0].rec.has_txn, 0);
    for (int i = 1; i < 3; i++) {
        ck_assert_int_eq(e[i].rec.has_txn, 1);
        ck_assert_str_eq(e[i].rec.txn_id, tid);
        ck_assert_int_eq(e[i].rec.txn_amount_minor, 71000);
        ck_assert_int_eq(e[i].has_err, 0);
        ck_assert_int_ge(e[i].rec.txn_date_ms, created);
    }
    ck_assert_int_eq(e[1].rec.txn_date_ms, e[2].rec.txn_date_ms);
    ck_assert_str_eq(e[1].rec.txn_status, "PENDING");
    ck_assert_str_eq(e[2].rec.txn_status, "COMPLETED");
}
END_TEST

START_TEST(test_outbox_failed_payment_then_cancel_carries_the_error)
{
    static const char *const types[] = {"A"};
    static const long long prices[] = {700};
    tk_lua_uuid_t ev, rid, tid;
    tk_lua_outbox_entry_t e[5];
    tk_lua_event_new(ev, tk_lua_future(), "A", "10", "700", NULL);
    tk_uuid_v4_in_shard(rid, ev);
    tk_lua_line_t line = {"A", "1"};
    redisReply *r = tk_lua_reserve(ev, rid, TK_LUA_HOLD_MS, &line, 1);
    tk_lua_expect_ok(r, 1);
    long long created = r->element[1]->integer, until = r->element[2]->integer;
    freeReplyObject(r);
    tk_uuid_v4_in_shard(tid, ev);
    tk_lua_pay_start_ok(rid, tid, TK_LUA_GATEWAY_MS);
    tk_lua_expect_ok_status(tk_lua_pay_finish(rid, tid, "fail", TK_LUA_DECLINED), "PENDING");
    tk_lua_expect_ok(tk_lua_fcall("tk_cancel", rid, rid, NULL), 0);

    ck_assert_int_eq(tk_lua_outbox_for(rid, e, 5), 4);
    static const char *const want[] = {"PENDING", "PENDING", "PENDING", "CANCELLED"};
    for (int i = 0; i < 4; i++) {
        assert_ob_whole(&e[i], rid, ev, created, until, types, prices);
        ck_assert_str_eq(e[i].rec.status, want[i]);
    }
    ck_assert_str_eq(e[1].rec.txn_status, "PENDING");
    ck_assert_int_eq(e[1].has_err, 0);
    for (int i = 2; i < 4; i++) {
        ck_assert_str_eq(e[i].rec.txn_id, tid);
        ck_assert_str_eq(e[i].rec.txn_status, "ERROR");
        ck_assert_int_eq(e[i].has_err, 1);
        ck_assert_str_eq(e[i].rec.txn_error, TK_LUA_DECLINED);
        ck_assert_int_eq(e[i].rec.txn_amount_minor, 700);
    }
}
END_TEST

/* ---- tk_persisted and forgetting -------------------------------------------------------- */

START_TEST(test_persisted_acks_deletes_then_expire_forgets_only_finished)
{
    tk_lua_uuid_t ev, done, open, tid;
    tk_lua_outbox_entry_t e[8];
    char mdone[48], mopen[48], mtx[48];
    tk_shard_keys_t keys;
    tk_lua_event_new(ev, tk_lua_future(), "A", "10", "100", NULL);
    tk_shard_keys(ev, &keys);
    const char *ob = keys.names[TK_KEY_OB], *gc = keys.names[TK_KEY_GC];
    tk_lua_writers_group(ob);
    tk_lua_line_t line = {"A", "1"};
    tk_uuid_v4_in_shard(done, ev);
    tk_lua_expect_ok(tk_lua_reserve(ev, done, TK_LUA_HOLD_MS, &line, 1), 0);
    tk_uuid_v4_in_shard(tid, ev);
    tk_lua_pay_start_ok(done, tid, TK_LUA_GATEWAY_MS);
    tk_lua_expect_ok_status(tk_lua_pay_finish(done, tid, "ok", ""), "COMPLETED");
    tk_uuid_v4_in_shard(open, ev);
    tk_lua_expect_ok(tk_lua_reserve(ev, open, TK_LUA_HOLD_MS, &line, 1), 0);

    /* a writer reads them: they are pending in the group */
    redisReply *r = tk_lua_cmd("XREADGROUP GROUP writers test COUNT 100000 STREAMS %s >", ob);
    ck_assert_int_eq(r->type, REDIS_REPLY_ARRAY);
    freeReplyObject(r);
    const char *ids[4];
    ck_assert_int_eq(tk_lua_outbox_for(done, e, 8), 3);
    ck_assert_int_eq(tk_lua_outbox_for(open, e + 3, 5), 1);
    for (int i = 0; i < 4; i++) {
        ids[i] = e[i].sid;
        ck_assert_msg(tk_lua_pending_has(ob, ids[i]), "%s not pending", ids[i]);
    }

    /* committed: acknowledged, deleted, the finished records (and a pending one by mistake) scheduled */
    snprintf(mdone, sizeof(mdone), "r:%s", done);
    snprintf(mtx, sizeof(mtx), "x:%s", tid);
    snprintf(mopen, sizeof(mopen), "r:%s", open);
    long long len = tk_lua_stream_len(ob);
    r = tk_lua_fcall("tk_persisted", ev, "0", "4", ids[0], ids[1], ids[2], ids[3], mdone, mtx, mopen, NULL);
    ck_assert_int_eq(r->type, REDIS_REPLY_INTEGER);
    ck_assert_int_eq(r->integer, 4);
    freeReplyObject(r);
    ck_assert_int_eq(tk_lua_stream_len(ob), len - 4);
    for (int i = 0; i < 4; i++)
        ck_assert_msg(!tk_lua_pending_has(ob, ids[i]), "%s still pending", ids[i]);
    ck_assert_int_eq(tk_lua_outbox_for(done, e, 8), 0);
    ck_assert_int_eq(tk_lua_outbox_for(open, e, 8), 0);

    /* the sweep forgets the finished reservation and its transaction, not the open hold */
    tk_lua_expire_sweep(ev, "200");
    ck_assert_int_eq(tk_lua_shard_hexists(TK_KEY_RES, done), 0);
    ck_assert_int_eq(tk_lua_shard_hexists(TK_KEY_TX, tid), 0);
    ck_assert_ptr_null(tk_lua_blob_get(done));
    tk_lua_expect_err(tk_lua_fcall("tk_txn", tid, tid, NULL), "not_found", NULL, -1);
    ck_assert_int_eq(tk_lua_shard_hexists(TK_KEY_RES, open), 1);
    char *blob = tk_lua_blob_get(open);
    tk_lua_assert_status(blob, "PENDING");
    free(blob);
    ck_assert_int_ge(tk_lua_due_at(open), 0);
    r = tk_lua_cmd("ZMSCORE %s %s %s %s", gc, mdone, mtx, mopen);
    for (size_t i = 0; i < r->elements; i++)
        ck_assert_int_eq(r->element[i]->type, REDIS_REPLY_NIL);
    freeReplyObject(r);
    /* inventory is not touched by forgetting */
    tk_lua_stats_t s;
    tk_lua_stats_get(ev, &s);
    ck_assert(s.sold == 1 && s.held == 1 && s.avail == 8 && s.revenue == 100);
    tk_lua_assert_invariant(ev);
}
END_TEST

START_TEST(test_persisted_grace_keeps_records_until_it_runs_out)
{
    tk_lua_uuid_t ev, rid;
    char member[48];
    tk_shard_keys_t keys;
    tk_lua_event_new(ev, tk_lua_future(), "A", "10", "100", NULL);
    tk_shard_keys(ev, &keys);
    const char *gc = keys.names[TK_KEY_GC];
    tk_uuid_v4_in_shard(rid, ev);
    tk_lua_line_t line = {"A", "1"};
    tk_lua_expect_ok(tk_lua_reserve(ev, rid, TK_LUA_HOLD_MS, &line, 1), 0);
    tk_lua_expect_ok(tk_lua_fcall("tk_cancel", rid, rid, NULL), 0);
    snprintf(member, sizeof(member), "r:%s", rid);
    int64_t t0 = tk_time_now_ms();
    redisReply *r = tk_lua_fcall("tk_persisted", ev, "60000", "0", member, NULL);
    ck_assert_int_eq(r->type, REDIS_REPLY_INTEGER);
    ck_assert_int_eq(r->integer, 0);
    freeReplyObject(r);
    r = tk_lua_cmd("ZSCORE %s %s", gc, member);
    ck_assert_int_eq(r->type, REDIS_REPLY_STRING);
    ck_assert_int_ge(atoll(r->str), t0 + 60000 - 5);
    ck_assert_int_le(atoll(r->str), tk_time_now_ms() + 60000 + 5);
    freeReplyObject(r);
    tk_lua_expire_sweep(ev, "200");
    ck_assert_int_eq(tk_lua_shard_hexists(TK_KEY_RES, rid), 1);
    /* a malformed call (fewer ids than nids) is a Redis error */
    r = tk_lua_fcall("tk_persisted", ev, "0", "2", "0-1", NULL);
    ck_assert_int_eq(r->type, REDIS_REPLY_ERROR);
    freeReplyObject(r);
}
END_TEST

/* ---- tk_stats lag_ms -------------------------------------------------------------------- */

static long long stats_lag(const char *ev)
{
    redisReply *r = tk_lua_fcall("tk_stats", ev, ev, NULL);
    ck_assert_int_eq(r->type, REDIS_REPLY_ARRAY);
    ck_assert_uint_ge(r->elements, 9);
    ck_assert_int_eq(r->element[8]->type, REDIS_REPLY_INTEGER);
    long long lag = r->element[8]->integer;
    freeReplyObject(r);
    return lag;
}

/* lag_ms is now - the oldest entry's time, bounded by the clock read before and after the call */
static void assert_lag(const char *ev, const char *ob)
{
    long long oldest = tk_lua_stream_oldest_ms(ob);
    int64_t t0 = tk_time_now_ms();
    long long lag = stats_lag(ev);
    int64_t t1 = tk_time_now_ms();
    if (oldest < 0) {
        ck_assert_int_eq(lag, 0);
        return;
    }
    ck_assert_int_ge(lag, t0 - oldest - 5);
    ck_assert_int_le(lag, t1 - oldest + 5);
}

START_TEST(test_stats_lag_ms_is_the_age_of_the_oldest_unpersisted_entry)
{
    tk_lua_uuid_t ev, rid;
    tk_shard_keys_t keys;
    tk_lua_event_new(ev, tk_lua_future(), "A", "10", "100", NULL);
    tk_shard_keys(ev, &keys);
    const char *ob = keys.names[TK_KEY_OB];
    freeReplyObject(tk_lua_cmd("XTRIM %s MAXLEN 0", ob));
    assert_lag(ev, ob);
    if (tk_lua_stream_len(ob) == 0)
        ck_assert_int_eq(stats_lag(ev), 0);

    tk_uuid_v4_in_shard(rid, ev);
    tk_lua_line_t line = {"A", "1"};
    tk_lua_expect_ok(tk_lua_reserve(ev, rid, TK_LUA_HOLD_MS, &line, 1), 0);
    tk_time_sleep_ms(60);
    ck_assert_int_ge(stats_lag(ev), 50);
    assert_lag(ev, ob);

    /* once every entry is persisted, nothing lags */
    redisReply *all = tk_lua_cmd("XRANGE %s - +", ob);
    const char *args[TK_LUA_MAX_ARGS];
    char nids[16];
    int n = 0;
    args[n++] = "0";
    args[n++] = nids;
    for (size_t i = 0; i < all->elements && n < TK_LUA_MAX_ARGS; i++)
        args[n++] = all->element[i]->element[0]->str;
    snprintf(nids, sizeof(nids), "%d", n - 2);
    redisReply *r = tk_lua_fcall_on(tk_lua_redis, "tk_persisted", ev, n, args);
    ck_assert_int_eq(r->type, REDIS_REPLY_INTEGER);
    ck_assert_int_eq(r->integer, n - 2);
    freeReplyObject(r);
    freeReplyObject(all);
    ck_assert_int_eq(tk_lua_stream_len(ob), 0);
    ck_assert_int_eq(stats_lag(ev), 0);
    tk_lua_assert_invariant(ev);
}
END_TEST

/* A record written by a version before the shared encoding (cjson, merged lines "l", no
 * "r") is read as any: cancelling it gives its tickets back and its outbox entry is the
 * whole reservation, written in the new encoding. */
START_TEST(test_a_cjson_record_of_an_earlier_version_is_read_and_rewritten)
{
    tk_lua_uuid_t ev, rid;
    tk_lua_event_new(ev, tk_lua_future(), "GA", "10", "2500", NULL);
    tk_uuid_v4_in_shard(rid, ev);
    tk_lua_line_t line = {"GA", "2"};
    redisReply *r = tk_lua_reserve(ev, rid, TK_LUA_HOLD_MS, &line, 1);
    long long created = r->element[1]->integer, until = r->element[2]->integer;
    tk_lua_expect_ok(r, 0);
    char old[512];
    snprintf(old, sizeof(old),
             "{\"e\":\"%s\",\"st\":\"PENDING\",\"c\":%lld,\"u\":%lld,\"l\":[[\"GA\",2]],\"t\":[[\"%s\",\"GA\",2500],[\"%s\","
             "\"GA\",2500]]}",
             ev, created, until, tk_lua_last_tickets[0], tk_lua_last_tickets[1]);
    tk_shard_keys_t keys;
    tk_shard_keys(rid, &keys);
    freeReplyObject(tk_lua_cmd("HSET %s %s %s", keys.names[TK_KEY_RES], rid, old));

    tk_lua_expect_ok(tk_lua_fcall("tk_cancel", rid, rid, NULL), 0);
    tk_lua_type_stats_t ga = tk_lua_stats_type(ev, "GA");
    ck_assert(ga.avail == 10 && ga.held == 0);
    tk_lua_assert_invariant(ev);
    char *blob = tk_lua_blob_raw(rid);
    tk_lua_assert_status(blob, "CANCELLED");
    ck_assert_ptr_null(strstr(blob, "\"l\":")); /* rewritten: msgpack, lines gone */
    free(blob);
    tk_lua_outbox_entry_t e[3];
    ck_assert_int_eq(tk_lua_outbox_for(rid, e, 3), 2);
    ck_assert_str_eq(e[1].rec.status, "CANCELLED");
    ck_assert_int_eq(e[1].ntickets, 2);
    ck_assert_int_eq(e[1].rec.created_ms, created);
}
END_TEST

static void add_tests(TCase *tc)
{
    tcase_add_test(tc, test_a_cjson_record_of_an_earlier_version_is_read_and_rewritten);
    tcase_add_test(tc, test_outbox_reserve_pay_complete_three_whole_entries);
    tcase_add_test(tc, test_outbox_failed_payment_then_cancel_carries_the_error);
    tcase_add_test(tc, test_persisted_acks_deletes_then_expire_forgets_only_finished);
    tcase_add_test(tc, test_persisted_grace_keeps_records_until_it_runs_out);
    tcase_add_test(tc, test_stats_lag_ms_is_the_age_of_the_oldest_unpersisted_entry);
}

int main(void)
{
    return tk_lua_run("lua_outbox", add_tests);
}
