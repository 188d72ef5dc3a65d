/*
 * test_idempotency.c: tests of lua/ticketd.lua's Idempotency-Key functions, tk_idem_claim,
 * tk_idem_store and tk_idem_release (one transition each), called as engine/idem.c calls
 * them, and of tk_view, the reservation as the API shows it (PAYING reads as PENDING).
 * Runs against the test Redis (tests/lua/support.h); every test uses a fresh random key.
 */
#include "tests/lua/support.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FP_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define FP_B "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"

/* a fresh tk:idem:<64 hex> key */
static void fresh_key(char *key)
{
    tk_lua_uuid_t a, b;
    tk_uuid_v4(a);
    tk_uuid_v4(b);
    char hex[65];
    size_t n = 0;
    for (const char *p = a; *p != '\0' && n < 32; ++p)
        if (*p != '-')
            hex[n++] = *p;
    for (const char *p = b; *p != '\0' && n < 64; ++p)
        if (*p != '-')
            hex[n++] = *p;
    hex[n] = '\0';
    snprintf(key, 80, "tk:idem:%s", hex);
}

static redisReply *claim(const char *key, const char *fp, const char *token)
{
    return tk_lua_cmd("FCALL tk_idem_claim 1 %s 60000 %s %s", key, fp, token);
}

/* the reply is exactly {word} or {word, arg} */
static void expect(redisReply *r, const char *word, const char *arg)
{
    char buf[512];
    tk_lua_describe(r, buf, sizeof(buf));
    ck_assert_msg(r->type == REDIS_REPLY_ARRAY && r->elements == (arg != NULL ? 2u : 1u) &&
                      r->element[0]->type == REDIS_REPLY_STRING && strcmp(r->element[0]->str, word) == 0 &&
                      (arg == NULL || (r->element[1]->type == REDIS_REPLY_STRING && strcmp(r->element[1]->str, arg) == 0)),
                  "expected %s %s, got %s", word, arg != NULL ? arg : "", buf);
    freeReplyObject(r);
}

static long long pttl(const char *key)
{
    redisReply *r = tk_lua_cmd("PTTL %s", key);
    long long v = r->integer;
    freeReplyObject(r);
    return v;
}

START_TEST(test_claim_then_store_replays_for_the_same_body_only)
{
    char key[80];
    fresh_key(key);
    expect(claim(key, FP_A, "t1"), "CLAIMED", NULL);
    ck_assert_int_gt(pttl(key), 0);
    ck_assert_int_le(pttl(key), 60000);
    /* while the first runs: the same body waits, another body is refused */
    expect(claim(key, FP_A, "t2"), "BUSY", NULL);
    expect(claim(key, FP_B, "t3"), "MISMATCH", NULL);
    expect(tk_lua_cmd("FCALL tk_idem_store 1 %s t1 86400000 %s", key, "201 0\n{}"), "OK", NULL);
    ck_assert_int_gt(pttl(key), 60000);
    expect(claim(key, FP_A, "t4"), "DONE", "201 0\n{}");
    expect(claim(key, FP_B, "t5"), "MISMATCH", NULL);
    /* the owner's token is gone with its answer: nothing can overwrite or free the key */
    expect(tk_lua_cmd("FCALL tk_idem_store 1 %s t1 1000 %s", key, "500 0\n{}"), "ERR", "not_claimed");
    expect(tk_lua_cmd("FCALL tk_idem_release 1 %s t1", key), "ERR", "not_claimed");
    expect(claim(key, FP_A, "t6"), "DONE", "201 0\n{}");
    freeReplyObject(tk_lua_cmd("DEL %s", key));
}
END_TEST

START_TEST(test_release_frees_the_key_for_any_body)
{
    char key[80];
    fresh_key(key);
    expect(claim(key, FP_B, "squatter"), "CLAIMED", NULL);
    /* only the owner may release: another token changes nothing */
    expect(tk_lua_cmd("FCALL tk_idem_release 1 %s someone-else", key), "ERR", "not_claimed");
    expect(claim(key, FP_A, "t1"), "MISMATCH", NULL);
    expect(tk_lua_cmd("FCALL tk_idem_release 1 %s squatter", key), "OK", NULL);
    redisReply *r = tk_lua_cmd("EXISTS %s", key);
    ck_assert_int_eq(r->integer, 0);
    freeReplyObject(r);
    /* the real request now claims the key with its own body */
    expect(claim(key, FP_A, "t1"), "CLAIMED", NULL);
    freeReplyObject(tk_lua_cmd("DEL %s", key));
}
END_TEST

START_TEST(test_store_by_a_lapsed_claim_is_refused)
{
    char key[80];
    fresh_key(key);
    expect(claim(key, FP_A, "old"), "CLAIMED", NULL);
    freeReplyObject(tk_lua_cmd("DEL %s", key)); /* the claim lapsed */
    expect(claim(key, FP_A, "new"), "CLAIMED", NULL);
    expect(tk_lua_cmd("FCALL tk_idem_store 1 %s old 86400000 %s", key, "201 0\n{\"old\":1}"), "ERR", "not_claimed");
    expect(tk_lua_cmd("FCALL tk_idem_store 1 %s new 60000 %s", key, "404 0\n{}"), "OK", NULL);
    ck_assert_int_le(pttl(key), 60000);
    expect(claim(key, FP_A, "again"), "DONE", "404 0\n{}");
    freeReplyObject(tk_lua_cmd("DEL %s", key));
}
END_TEST

START_TEST(test_an_old_plain_string_key_is_not_replayed)
{
    char key[80];
    fresh_key(key);
    /* written by the previous version: no fingerprint, so no way to tell the body */
    freeReplyObject(tk_lua_cmd("SET %s %s PX 60000", key, "201 0\n{\"reservation_id\":\"theirs\"}"));
    expect(claim(key, FP_A, "t1"), "CLAIMED", NULL);
    freeReplyObject(tk_lua_cmd("DEL %s", key));
}
END_TEST

START_TEST(test_malformed_calls_are_refused)
{
    char key[80];
    fresh_key(key);
    const char *calls[] = {"FCALL tk_idem_claim 1 tk:other 60000 f t", "FCALL tk_idem_claim 1 %s 0 f t",
                           "FCALL tk_idem_claim 1 %s 60000 f", "FCALL tk_idem_store 1 %s t notanumber a",
                           "FCALL tk_idem_release 1 %s"};
    for (size_t i = 0; i < sizeof(calls) / sizeof(calls[0]); ++i) {
        redisReply *r = tk_lua_cmd(calls[i], key);
        ck_assert_msg(r->type == REDIS_REPLY_ERROR && strstr(r->str, "ticketd:") != NULL, "call %zu not refused", i);
        freeReplyObject(r);
    }
    redisReply *r = tk_lua_cmd("EXISTS %s", key);
    ck_assert_int_eq(r->integer, 0);
    freeReplyObject(r);
}
END_TEST

START_TEST(test_view_shows_paying_as_pending_with_flat_tickets)
{
    tk_lua_uuid_t ev, rid, tid;
    tk_lua_event_new(ev, tk_lua_future(), "VIP", "3", "35000", "Std", "10", "1000", NULL);
    tk_uuid_v4_in_shard(rid, ev);
    tk_lua_line_t lines[] = {{"VIP", "2"}, {"Std", "1"}};
    tk_lua_expect_ok(tk_lua_reserve(ev, rid, TK_LUA_HOLD_MS, lines, 2), 0);
    tk_uuid_v4_in_shard(tid, ev);
    tk_lua_pay_start_ok(rid, tid, TK_LUA_GATEWAY_MS);
    redisReply *r = tk_lua_fcall("tk_view", rid, rid, NULL);
    char buf[1024];
    tk_lua_describe(r, buf, sizeof(buf));
    ck_assert_msg(r->type == REDIS_REPLY_ARRAY && r->elements == 5 + 3 * 3, "tk_view: %s", buf);
    ck_assert_str_eq(r->element[0]->str, "OK");
    ck_assert_str_eq(r->element[1]->str, "PENDING"); /* PAYING, as the API shows it */
    ck_assert_str_eq(r->element[2]->str, ev);
    ck_assert_int_eq(r->element[3]->type, REDIS_REPLY_INTEGER);
    ck_assert_int_gt(r->element[4]->integer, r->element[3]->integer);
    int vip = 0, std = 0;
    for (size_t i = 5; i < r->elements; i += 3) {
        ck_assert_uint_eq(r->element[i]->len, TK_UUID_LEN);
        vip += strcmp(r->element[i + 1]->str, "VIP") == 0 && r->element[i + 2]->integer == 35000;
        std += strcmp(r->element[i + 1]->str, "Std") == 0 && r->element[i + 2]->integer == 1000;
    }
    ck_assert(vip == 2 && std == 1);
    freeReplyObject(r);
    tk_lua_expect_ok_status(tk_lua_pay_finish(rid, tid, "ok", ""), "COMPLETED");
    r = tk_lua_fcall("tk_view", rid, rid, NULL);
    ck_assert_str_eq(r->element[1]->str, "COMPLETED");
    freeReplyObject(r);
    tk_lua_uuid_t unknown;
    tk_uuid_v4_in_shard(unknown, ev);
    tk_lua_expect_err(tk_lua_fcall("tk_view", unknown, unknown, NULL), "not_found", NULL, -1);
}
END_TEST

static void add_tests(TCase *tc)
{
    tcase_add_test(tc, test_claim_then_store_replays_for_the_same_body_only);
    tcase_add_test(tc, test_release_frees_the_key_for_any_body);
    tcase_add_test(tc, test_store_by_a_lapsed_claim_is_refused);
    tcase_add_test(tc, test_an_old_plain_string_key_is_not_replayed);
    tcase_add_test(tc, test_malformed_calls_are_refused);
    tcase_add_test(tc, test_view_shows_paying_as_pending_with_flat_tickets);
}

int main(void)
{
    return tk_lua_run("lua_idempotency", add_tests);
}
