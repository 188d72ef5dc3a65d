/*
 * Tests of the WAITING ROOM section of lua/ticketd.lua, over tests/lua/support.c (real
 * Redis, the library loaded from the source tree, a connection per test): the opening is
 * decided once, by the first caller, with its seed; settings replace the line before the
 * opening and extend it a second ahead after; an idle line freezes (after a run of its
 * own) and resumes, and segments are not forgotten while their admissions live; and
 * tk_reserve keeps one live hold per admission. Ids and key names come from the engine
 * (tk_uuid_v4, tk_waitroom_keys, tk_shard_keys), as the support's do. Every test uses
 * fresh random event ids.
 */
#include "tests/lua/support.h"
#include "engine/waitroom_view.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static redisReply *call(int argc, const char **argv)
{
    redisReply *r = redisCommandArgv(tk_lua_redis, argc, argv, NULL);
    ck_assert_ptr_nonnull(r);
    return r;
}

static redisReply *wr(const char *fn, const char *event, const char *a, const char *b, const char *c, const char *d)
{
    tk_waitroom_keys_t keys;
    tk_waitroom_keys(event, &keys);
    const char *argv[] = {"FCALL", fn, "1", keys.wr, event, a, b, c, d};
    int argc = 5 + (a != NULL) + (b != NULL) + (c != NULL) + (d != NULL);
    return call(argc, argv);
}

static redisReply *set_room(const char *event, int enabled, int64_t opens, int rate, int adm)
{
    char e[4], o[24], r[16], a[16];
    snprintf(e, sizeof(e), "%d", enabled);
    snprintf(o, sizeof(o), "%lld", (long long)opens);
    snprintf(r, sizeof(r), "%d", rate);
    snprintf(a, sizeof(a), "%d", adm);
    return wr("tk_wr_set", event, e, o, r, a);
}

#define WR_TEST_SCHEDULE_MS 1000 /* WR_SCHEDULE_MS in the Lua: a segment is added that far ahead */
#define SEED_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define SEED_B "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"

/* STATE fields: enabled, opens, rate, adm, joined, pre, seed, nseg, segs... (offset for JOIN replies: 2) */
static long long field(const redisReply *r, size_t at, size_t i)
{
    ck_assert_int_eq(r->element[at + i]->type, REDIS_REPLY_INTEGER);
    return r->element[at + i]->integer;
}

START_TEST(the_opening_is_decided_once_by_the_first_caller)
{
    tk_lua_uuid_t event;
    tk_uuid_v4(event);
    int64_t opens = tk_time_now_ms() + 300;
    freeReplyObject(set_room(event, 1, opens, 60, 600));
    for (int i = 1; i <= 3; ++i) {
        redisReply *r = wr("tk_wr_join", event, SEED_B, NULL, NULL, NULL);
        ck_assert_str_eq(r->element[0]->str, "JOIN");
        ck_assert_int_eq(r->element[1]->integer, i);
        ck_assert_int_eq(field(r, 2, 5), -1); /* not opened */
        ck_assert_str_eq(r->element[2 + 6]->str, "");
        freeReplyObject(r);
    }
    tk_time_sleep_ms(400);
    redisReply *first = wr("tk_wr_sync", event, SEED_A, NULL, NULL, NULL);
    redisReply *second = wr("tk_wr_sync", event, SEED_B, NULL, NULL, NULL);
    ck_assert_int_eq(field(first, 0, 5), 3);
    ck_assert_int_eq(field(second, 0, 5), 3);
    ck_assert_str_eq(first->element[6]->str, SEED_A);
    ck_assert_str_eq(second->element[6]->str, SEED_A);
    freeReplyObject(first);
    freeReplyObject(second);
    redisReply *late = wr("tk_wr_join", event, SEED_B, NULL, NULL, NULL);
    ck_assert_int_eq(late->element[1]->integer, 4);
    ck_assert_int_eq(field(late, 2, 5), 3);
    ck_assert_str_eq(late->element[2 + 6]->str, SEED_A);
    freeReplyObject(late);
}
END_TEST

START_TEST(settings_replace_the_line_before_the_opening_and_extend_it_after)
{
    tk_lua_uuid_t event;
    tk_uuid_v4(event);
    int64_t far = tk_time_now_ms() + 3600000;
    redisReply *r = set_room(event, 1, far, 60, 600);
    ck_assert_int_eq(field(r, 0, 7), 1);
    ck_assert_int_eq(field(r, 0, 8), far);
    freeReplyObject(r);
    r = set_room(event, 1, far + 1000, 120, 300);
    ck_assert_int_eq(field(r, 0, 7), 1); /* replaced, not extended */
    ck_assert_int_eq(field(r, 0, 8), far + 1000);
    ck_assert_int_eq(field(r, 0, 10), 120);
    ck_assert_int_eq(field(r, 0, 3), 300);
    freeReplyObject(r);
    /* opened a minute ago at 60/min: a change applies a second from now, continuing the line */
    int64_t past = tk_time_now_ms() - 60000;
    freeReplyObject(set_room(event, 1, past, 60, 600));
    for (int i = 0; i < 100; ++i) /* keep a queue so the line does not freeze */
        freeReplyObject(wr("tk_wr_join", event, SEED_A, NULL, NULL, NULL));
    int64_t before = tk_time_now_ms();
    r = set_room(event, 1, past, 600, 600);
    ck_assert_int_eq(field(r, 0, 7), 2);
    long long from = field(r, 0, 11), base = field(r, 0, 12);
    ck_assert_int_ge(from, before + 1000);
    ck_assert_int_eq(field(r, 0, 13), 600);
    /* the old line started no earlier than the PUT that opened it */
    ck_assert_int_ge(base, (from - field(r, 0, 8)) * 60 / 60000 - 1);
    ck_assert_int_le(base, (from - field(r, 0, 8)) * 60 / 60000);
    freeReplyObject(r);
}
END_TEST

/* Turned off, a room's line stops where it is; turned on again, it goes on from there at
 * its rate instead of admitting at once everyone it would have reached meanwhile. */
START_TEST(a_room_turned_off_stops_its_line_until_it_is_on_again)
{
    tk_lua_uuid_t event;
    tk_uuid_v4(event);
    int64_t past = tk_time_now_ms() - 60000;
    freeReplyObject(set_room(event, 1, past, 6000, 600)); /* 100 a second */
    for (int i = 0; i < 100; ++i)                         /* a queue, so the line does not freeze on its own */
        freeReplyObject(wr("tk_wr_join", event, SEED_A, NULL, NULL, NULL));
    redisReply *off = set_room(event, 0, past, 6000, 600);
    long long n = field(off, 0, 7), stopped_at = field(off, 0, 8 + 3 * (n - 1) + 1);
    ck_assert_int_eq(field(off, 0, 8 + 3 * (n - 1) + 2), 0); /* the line's rate while off */
    freeReplyObject(off);
    usleep(300 * 1000);
    redisReply *on = set_room(event, 1, past, 6000, 600);
    n = field(on, 0, 7);
    ck_assert_int_eq(field(on, 0, 8 + 3 * (n - 1) + 1), stopped_at); /* 30 more before the fix */
    ck_assert_int_eq(field(on, 0, 8 + 3 * (n - 1) + 2), 6000);
    freeReplyObject(on);
}
END_TEST

/* Stores the line of a room that is on (rate, admission_s, seg[0..nseg), joined tickets)
 * as Redis would have left it after a history the test cannot wait for. */
static void put_line(const char *event, int rate, int adm, const tk_wr_segment_t *seg, int nseg, long long joined)
{
    char json[16384];
    int n = snprintf(json, sizeof(json), "{\"en\":1,\"o\":%lld,\"r\":%d,\"a\":%d,\"seg\":[", (long long)seg[0].from_ms, rate, adm);
    for (int i = 0; i < nseg; ++i)
        n += snprintf(json + n, sizeof(json) - (size_t)n, "%s[%lld,%lld,%lld]", i > 0 ? "," : "", (long long)seg[i].from_ms,
                      (long long)seg[i].base, (long long)seg[i].per_minute);
    snprintf(json + n, sizeof(json) - (size_t)n, "]}");
    tk_waitroom_keys_t keys;
    tk_waitroom_keys(event, &keys);
    freeReplyObject(tk_lua_cmd("HSET %s %s:cfg %s %s:seq %lld", keys.wr, event, json, event, joined));
}

/* A line that froze and resumed every 300 ms from 45 s ago on (the churn of a lightly used
 * room before freezes waited for a run of their own), its last resume running for 15 s
 * at 600 a minute: nseg young segments, none of which may be forgotten yet. */
static void churned_line(tk_wr_segment_t *seg, int nseg, int64_t now)
{
    for (int i = 0; i < nseg; ++i) {
        seg[i].from_ms = i + 1 < nseg ? now - 45000 + 300 * i : now - 15000;
        seg[i].per_minute = i % 2 == 0 ? 600 : 0;
        seg[i].base = i == 0 ? 0 : seg[i - 1].base + (seg[i].from_ms - seg[i - 1].from_ms) * seg[i - 1].per_minute / 60000;
    }
}

START_TEST(an_idle_line_freezes_after_a_run_of_its_own_and_resumes_when_someone_waits)
{
    tk_lua_uuid_t event;
    tk_uuid_v4(event);
    freeReplyObject(set_room(event, 1, tk_time_now_ms(), 60000, 600)); /* a thousand a second: the queue empties at once */
    freeReplyObject(wr("tk_wr_join", event, SEED_A, NULL, NULL, NULL));
    tk_time_sleep_ms(50);
    redisReply *r = wr("tk_wr_sync", event, SEED_A, NULL, NULL, NULL);
    ck_assert_int_eq(field(r, 0, 7), 1); /* running for 50 ms only: not frozen yet */
    freeReplyObject(r);
    /* the same room once its line has run 11 s, at 60 a minute: past the one joiner */
    tk_wr_segment_t seg = {tk_time_now_ms() - 11000, 0, 60};
    put_line(event, 60, 600, &seg, 1, 1);
    r = wr("tk_wr_sync", event, SEED_A, NULL, NULL, NULL);
    long long nseg = field(r, 0, 7);
    ck_assert_int_eq(nseg, 2);
    ck_assert_int_eq(field(r, 0, 8 + 3 * 1 + 2), 0); /* frozen */
    long long frozen_at = field(r, 0, 8 + 3), frozen_base = field(r, 0, 8 + 3 + 1);
    freeReplyObject(r);
    tk_time_sleep_ms(frozen_at - tk_time_now_ms() + 50);
    /* enough joiners to pass the frozen line: the next call resumes the rate a second ahead */
    for (long long i = 0; i <= frozen_base; ++i)
        freeReplyObject(wr("tk_wr_join", event, SEED_A, NULL, NULL, NULL));
    r = wr("tk_wr_sync", event, SEED_A, NULL, NULL, NULL);
    ck_assert_int_eq(field(r, 0, 7), 3);
    ck_assert_int_eq(field(r, 0, 8 + 6 + 1), frozen_base);
    ck_assert_int_eq(field(r, 0, 8 + 6 + 2), 60);
    freeReplyObject(r);
}
END_TEST

/* A lightly used room churns: someone joins (the line resumes), a moment later the line
 * is ahead again (it freezes). Segments are forgotten only once their admissions are over;
 * forcing young ones out at the cap moved admissions and revived expired ones. Here the
 * line is one short of the cap, all of it young: join-and-sync cycles must keep every
 * segment (a freeze, which needs its resume after it, is not added without room for both). */
START_TEST(a_churning_line_never_forgets_a_segment_younger_than_its_admissions)
{
    tk_lua_uuid_t event;
    tk_uuid_v4(event);
    enum { N = TK_WR_MAX_SEGMENTS - 1 };
    tk_wr_segment_t seg[N];
    churned_line(seg, N, tk_time_now_ms());
    long long joined = seg[N - 1].base; /* the queue is empty: the line is ahead of it */
    put_line(event, 600, 600, seg, N, joined);
    for (int cycle = 0; cycle < 2; ++cycle) {
        redisReply *r = wr("tk_wr_sync", event, SEED_A, NULL, NULL, NULL);
        long long n = field(r, 0, 7), last_base = field(r, 0, 8 + 3 * (n - 1) + 1), last_rate = field(r, 0, 8 + 3 * (n - 1) + 2);
        freeReplyObject(r);
        tk_time_sleep_ms(WR_TEST_SCHEDULE_MS + 100);                    /* a freeze, if one was added, is in force */
        long long target = last_rate == 0 ? last_base + 1 : joined + 1; /* past a frozen line: it resumes */
        for (; joined < target; ++joined)
            freeReplyObject(wr("tk_wr_join", event, SEED_A, NULL, NULL, NULL));
        r = wr("tk_wr_sync", event, SEED_A, NULL, NULL, NULL);
        n = field(r, 0, 7);
        ck_assert_int_le(n, TK_WR_MAX_SEGMENTS);
        ck_assert_int_ge(n, N);
        for (int i = 0; i < N; ++i)
            ck_assert_msg(field(r, 0, 8 + 3 * i) == seg[i].from_ms, "cycle %d: segment %d of %lld forgotten", cycle, i, n);
        freeReplyObject(r);
    }
}
END_TEST

/* An admin change to a later opening adds a pause and the opening: at the cap, the line
 * must still fit in what every process reads (TK_WR_MAX_SEGMENTS). */
START_TEST(a_change_of_opening_keeps_a_full_line_within_the_cap)
{
    tk_lua_uuid_t event;
    tk_uuid_v4(event);
    tk_wr_segment_t seg[TK_WR_MAX_SEGMENTS];
    churned_line(seg, TK_WR_MAX_SEGMENTS, tk_time_now_ms());
    put_line(event, 600, 600, seg, TK_WR_MAX_SEGMENTS, seg[TK_WR_MAX_SEGMENTS - 1].base);
    redisReply *r = set_room(event, 1, tk_time_now_ms() + 60000, 600, 600);
    ck_assert_int_eq(field(r, 0, 7), TK_WR_MAX_SEGMENTS); /* the Lua's cap is the engine's */
    tk_wr_state_t st;
    ck_assert_int_eq(tk_wr_parse_state(r, &st), 1);
    freeReplyObject(r);
}
END_TEST

START_TEST(join_without_a_room_or_with_it_off_is_off)
{
    tk_lua_uuid_t event;
    tk_uuid_v4(event);
    redisReply *r = wr("tk_wr_join", event, SEED_A, NULL, NULL, NULL);
    ck_assert_str_eq(r->element[0]->str, "OFF");
    ck_assert_int_eq(r->element[1]->integer, 600);
    freeReplyObject(r);
    r = wr("tk_wr_sync", event, SEED_A, NULL, NULL, NULL);
    ck_assert_int_eq(r->type, REDIS_REPLY_ARRAY);
    ck_assert_int_eq(r->elements, 0);
    freeReplyObject(r);
    freeReplyObject(set_room(event, 0, tk_time_now_ms(), 60, 45));
    r = wr("tk_wr_join", event, SEED_A, NULL, NULL, NULL);
    ck_assert_str_eq(r->element[0]->str, "OFF");
    ck_assert_int_eq(r->element[1]->integer, 45);
    freeReplyObject(r);
}
END_TEST

START_TEST(malformed_room_calls_are_errors)
{
    tk_lua_uuid_t event, other;
    tk_uuid_v4(event);
    do
        tk_uuid_v4(other);
    while (memcmp(event, other, 4) == 0);
    tk_waitroom_keys_t keys;
    tk_waitroom_keys(other, &keys);
    const char *argv[] = {"FCALL", "tk_wr_join", "1", keys.wr, event, SEED_A};
    redisReply *r = call(6, argv);
    ck_assert_int_eq(r->type, REDIS_REPLY_ERROR);
    freeReplyObject(r);
    r = set_room(event, 2, tk_time_now_ms(), 60, 600);
    ck_assert_int_eq(r->type, REDIS_REPLY_ERROR);
    freeReplyObject(r);
    r = set_room(event, 1, tk_time_now_ms(), 0, 600);
    ck_assert_int_eq(r->type, REDIS_REPLY_ERROR);
    freeReplyObject(r);
}
END_TEST

/* ---- tk_reserve with an admission ----------------------------------------------------- */

/* tk_reserve of one VIP ticket for rid; with an admission, the eighth key (wa_key, or the
 * event's own) and the admission's expiry and id as the trailing arguments */
static redisReply *reserve_with(const char *event, const char *rid, const char *admission, long long until, const char *wa_key)
{
    tk_shard_keys_t keys;
    tk_waitroom_keys_t room;
    tk_lua_uuid_t ticket;
    char until_s[24];
    const char *argv[TK_FCALL_PREFIX_LEN + 11];
    size_t argvlen[TK_FCALL_PREFIX_LEN + 11];
    tk_shard_keys(event, &keys);
    tk_waitroom_keys(event, &room);
    tk_uuid_v4_in_shard(ticket, event);
    snprintf(until_s, sizeof(until_s), "%lld", until);
    int argc = tk_fcall_prefix("tk_reserve", &keys, argv, argvlen);
    if (admission != NULL) {
        argv[2] = "8", argvlen[2] = 1;
        argv[argc] = wa_key != NULL ? wa_key : room.wa;
        argvlen[argc] = strlen(argv[argc]);
        ++argc;
    }
    const char *args[] = {event, rid, "60000", "5", "1", "VIP", "1", ticket, until_s, admission};
    for (size_t i = 0; i < (admission != NULL ? 10u : 8u); ++i)
        argv[argc] = args[i], argvlen[argc++] = strlen(args[i]);
    return call(argc, argv);
}

static void assert_ok(redisReply *r)
{
    ck_assert_int_eq(r->type, REDIS_REPLY_ARRAY);
    ck_assert_str_eq(r->element[0]->str, "OK");
    freeReplyObject(r);
}

static void assert_used(redisReply *r)
{
    ck_assert_int_eq(r->type, REDIS_REPLY_ARRAY);
    ck_assert_str_eq(r->element[0]->str, "ERR");
    ck_assert_str_eq(r->element[1]->str, "admission_used");
    freeReplyObject(r);
}

START_TEST(an_admission_holds_one_live_reservation_at_a_time)
{
    tk_lua_uuid_t event, r1, r2, r3, r4;
    char admission[64];
    tk_lua_event_new(event, tk_lua_future(), "VIP", "10", "100", NULL);
    tk_waitroom_keys_t room;
    tk_waitroom_keys(event, &room);
    snprintf(admission, sizeof(admission), "%s:7", event);
    long long until = tk_time_now_ms() + 120000;
    tk_uuid_v4_in_shard(r1, event);
    tk_uuid_v4_in_shard(r2, event);
    tk_uuid_v4_in_shard(r3, event);
    tk_uuid_v4_in_shard(r4, event);
    assert_ok(reserve_with(event, r1, admission, until, NULL));
    assert_used(reserve_with(event, r2, admission, until, NULL));
    /* the binding key lives as long as the admission */
    redisReply *t = tk_lua_cmd("PEXPIRETIME %s", room.wa);
    ck_assert_int_eq(t->integer, until);
    freeReplyObject(t);
    /* cancelled: it may hold again; then paid-or-pending refuses again */
    freeReplyObject(tk_lua_fcall("tk_cancel", event, r1, NULL));
    assert_ok(reserve_with(event, r3, admission, until, NULL));
    assert_used(reserve_with(event, r4, admission, until, NULL));
    /* without an admission, tk_reserve is unchanged; a wrong eighth key is a caller bug */
    tk_uuid_v4_in_shard(r4, event);
    assert_ok(reserve_with(event, r4, NULL, 0, NULL));
    tk_uuid_v4_in_shard(r4, event);
    redisReply *bad = reserve_with(event, r4, admission, until, "tk:{ffff}:wa");
    ck_assert_int_eq(bad->type, REDIS_REPLY_ERROR);
    freeReplyObject(bad);
}
END_TEST

/* The writer persists a cancelled hold and, after the grace period, the sweeper forgets
 * finished records. One held through an admission that still runs is kept until the
 * admission is over: without it the admission could not tell a cancelled hold from a paid
 * one and would refuse to hold again. */
START_TEST(a_cancelled_hold_frees_its_admission_after_it_was_persisted)
{
    tk_lua_uuid_t event, r1, r2;
    char admission[64], member[48];
    tk_lua_event_new(event, tk_lua_future(), "VIP", "10", "100", NULL);
    snprintf(admission, sizeof(admission), "%s:9", event);
    long long until = tk_time_now_ms() + 120000;
    tk_uuid_v4_in_shard(r1, event);
    tk_uuid_v4_in_shard(r2, event);
    assert_ok(reserve_with(event, r1, admission, until, NULL));
    freeReplyObject(tk_lua_fcall("tk_cancel", event, r1, NULL));
    snprintf(member, sizeof(member), "r:%s", r1);
    freeReplyObject(tk_lua_fcall("tk_persisted", event, "0", "0", member, NULL)); /* forget at once */
    usleep(2000);
    freeReplyObject(tk_lua_fcall("tk_expire", event, "100", NULL));
    tk_shard_keys_t keys;
    tk_shard_keys(event, &keys);
    redisReply *score = tk_lua_cmd("ZSCORE %s %s", keys.names[TK_KEY_GC], member);
    ck_assert_int_eq(score->type, REDIS_REPLY_STRING);
    ck_assert_int_eq(atoll(score->str), until); /* kept until the admission is over */
    freeReplyObject(score);
    assert_ok(reserve_with(event, r2, admission, until, NULL));
}
END_TEST

static void add_tests(TCase *tc)
{
    tcase_add_test(tc, the_opening_is_decided_once_by_the_first_caller);
    tcase_add_test(tc, settings_replace_the_line_before_the_opening_and_extend_it_after);
    tcase_add_test(tc, an_idle_line_freezes_after_a_run_of_its_own_and_resumes_when_someone_waits);
    tcase_add_test(tc, a_churning_line_never_forgets_a_segment_younger_than_its_admissions);
    tcase_add_test(tc, a_change_of_opening_keeps_a_full_line_within_the_cap);
    tcase_add_test(tc, a_room_turned_off_stops_its_line_until_it_is_on_again);
    tcase_add_test(tc, join_without_a_room_or_with_it_off_is_off);
    tcase_add_test(tc, malformed_room_calls_are_errors);
    tcase_add_test(tc, an_admission_holds_one_live_reservation_at_a_time);
    tcase_add_test(tc, a_cancelled_hold_frees_its_admission_after_it_was_persisted);
}

int main(void)
{
    return tk_lua_run("waiting_room", add_tests);
}
