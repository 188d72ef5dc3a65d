/*
 * Tests of the WAITING ROOM section of lua/ticketd.lua against a real Redis 7 at
 * 127.0.0.1:$TICKETD_TEST_REDIS_PORT (the library is loaded from the source tree, as
 * test_functions.c does): the opening is decided once, by the first caller, with its
 * seed; settings replace the line before the opening and extend it a second ahead after;
 * an idle line freezes and resumes; and tk_reserve keeps one live hold per admission.
 * Every test uses fresh random event ids.
 */
#include <check.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static redisContext *rc;

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static redisContext *connect_redis(void)
{
    const char *p = getenv("TICKETD_TEST_REDIS_PORT");
    struct timeval tv = {5, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", p != NULL && *p ? atoi(p) : 6391, tv);
    return c != NULL && !c->err ? c : NULL;
}

static void random_event(char *id)
{
    static const char hex[] = "0123456789abcdef";
    static const int dash[] = {8, 13, 18, 23};
    for (int i = 0, d = 0; i < 36; ++i) {
        if (d < 4 && i == dash[d]) {
            id[i] = '-', ++d;
            continue;
        }
        id[i] = hex[rand() % 16];
    }
    id[14] = '4';
    id[36] = '\0';
}

static redisReply *call(int argc, const char **argv)
{
    redisReply *r = redisCommandArgv(rc, argc, argv, NULL);
    ck_assert_ptr_nonnull(r);
    return r;
}

static void wr_key(const char *event, char *key)
{
    snprintf(key, 32, "tk:{%.4s}:wr", event);
}

static redisReply *wr(const char *fn, const char *event, const char *a, const char *b, const char *c, const char *d)
{
    char key[32];
    wr_key(event, key);
    const char *argv[] = {"FCALL", fn, "1", key, event, a, b, c, d};
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
    char event[37];
    random_event(event);
    int64_t opens = now_ms() + 300;
    freeReplyObject(set_room(event, 1, opens, 60, 600));
    for (int i = 1; i <= 3; ++i) {
        redisReply *r = wr("tk_wr_join", event, SEED_B, NULL, NULL, NULL);
        ck_assert_str_eq(r->element[0]->str, "JOIN");
        ck_assert_int_eq(r->element[1]->integer, i);
        ck_assert_int_eq(field(r, 2, 5), -1); /* not opened */
        ck_assert_str_eq(r->element[2 + 6]->str, "");
        freeReplyObject(r);
    }
    usleep(400 * 1000);
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
    char event[37];
    random_event(event);
    int64_t far = now_ms() + 3600000;
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
    int64_t past = now_ms() - 60000;
    freeReplyObject(set_room(event, 1, past, 60, 600));
    for (int i = 0; i < 100; ++i) /* keep a queue so the line does not freeze */
        freeReplyObject(wr("tk_wr_join", event, SEED_A, NULL, NULL, NULL));
    int64_t before = now_ms();
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

START_TEST(an_idle_line_freezes_and_resumes_when_someone_waits)
{
    char event[37];
    random_event(event);
    freeReplyObject(set_room(event, 1, now_ms(), 60000, 600)); /* a thousand a second: the queue empties at once */
    freeReplyObject(wr("tk_wr_join", event, SEED_A, NULL, NULL, NULL));
    usleep(50 * 1000);
    redisReply *r = wr("tk_wr_sync", event, SEED_A, NULL, NULL, NULL);
    long long nseg = field(r, 0, 7);
    ck_assert_int_eq(nseg, 2);
    ck_assert_int_eq(field(r, 0, 8 + 3 * 1 + 2), 0); /* frozen */
    long long frozen_at = field(r, 0, 8 + 3), frozen_base = field(r, 0, 8 + 3 + 1);
    freeReplyObject(r);
    usleep((useconds_t)(frozen_at - now_ms() + 50) * 1000);
    /* enough joiners to pass the frozen line: the next call resumes the rate a second ahead */
    for (long long i = 0; i <= frozen_base; ++i)
        freeReplyObject(wr("tk_wr_join", event, SEED_A, NULL, NULL, NULL));
    r = wr("tk_wr_sync", event, SEED_A, NULL, NULL, NULL);
    ck_assert_int_eq(field(r, 0, 7), 3);
    ck_assert_int_eq(field(r, 0, 8 + 6 + 1), frozen_base);
    ck_assert_int_eq(field(r, 0, 8 + 6 + 2), 60000);
    freeReplyObject(r);
}
END_TEST

START_TEST(join_without_a_room_or_with_it_off_is_off)
{
    char event[37];
    random_event(event);
    redisReply *r = wr("tk_wr_join", event, SEED_A, NULL, NULL, NULL);
    ck_assert_str_eq(r->element[0]->str, "OFF");
    ck_assert_int_eq(r->element[1]->integer, 600);
    freeReplyObject(r);
    r = wr("tk_wr_sync", event, SEED_A, NULL, NULL, NULL);
    ck_assert_int_eq(r->type, REDIS_REPLY_ARRAY);
    ck_assert_int_eq(r->elements, 0);
    freeReplyObject(r);
    freeReplyObject(set_room(event, 0, now_ms(), 60, 45));
    r = wr("tk_wr_join", event, SEED_A, NULL, NULL, NULL);
    ck_assert_str_eq(r->element[0]->str, "OFF");
    ck_assert_int_eq(r->element[1]->integer, 45);
    freeReplyObject(r);
}
END_TEST

START_TEST(malformed_room_calls_are_errors)
{
    char event[37], other[37];
    random_event(event);
    do
        random_event(other);
    while (memcmp(event, other, 4) == 0);
    char key[32];
    wr_key(other, key);
    const char *argv[] = {"FCALL", "tk_wr_join", "1", key, event, SEED_A};
    redisReply *r = call(6, argv);
    ck_assert_int_eq(r->type, REDIS_REPLY_ERROR);
    freeReplyObject(r);
    r = set_room(event, 2, now_ms(), 60, 600);
    ck_assert_int_eq(r->type, REDIS_REPLY_ERROR);
    freeReplyObject(r);
    r = set_room(event, 1, now_ms(), 0, 600);
    ck_assert_int_eq(r->type, REDIS_REPLY_ERROR);
    freeReplyObject(r);
}
END_TEST

/* ---- tk_reserve with an admission ----------------------------------------------------- */

static void shard_keys(const char *id, char keys[8][32])
{
    static const char *const names[8] = {"inv", "res", "dl", "pay", "ob", "tx", "gc", "wa"};
    for (int i = 0; i < 8; ++i)
        snprintf(keys[i], 32, "tk:{%.4s}:%s", id, names[i]);
}

static void init_event(const char *event)
{
    char keys[8][32], date[24];
    shard_keys(event, keys);
    snprintf(date, sizeof(date), "%lld", (long long)(now_ms() + 86400000LL));
    const char *argv[] = {"FCALL", "tk_event_init", "7",   keys[0], keys[1], keys[2], keys[3], keys[4],
                          keys[5], keys[6],         event, date,    "1",     "VIP",   "10",    "100"};
    freeReplyObject(call(16, argv));
}

static void new_id_in(const char *event, char *id)
{
    random_event(id);
    memcpy(id, event, 4);
}

static redisReply *reserve_with(const char *event, const char *rid, const char *admission, long long until, const char *wa_key)
{
    char keys[8][32], ticket[37], until_s[24];
    shard_keys(event, keys);
    if (wa_key != NULL)
        snprintf(keys[7], 32, "%s", wa_key);
    new_id_in(event, ticket);
    snprintf(until_s, sizeof(until_s), "%lld", until);
    const char *argv[] = {"FCALL", "tk_reserve", admission != NULL ? "8" : "7",
                          keys[0], keys[1],      keys[2],
                          keys[3], keys[4],      keys[5],
                          keys[6], keys[7],      event,
                          rid,     "60000",      "5",
                          "1",     "VIP",        "1",
                          ticket,  until_s,      admission};
    if (admission == NULL) {
        const char *plain[] = {"FCALL", "tk_reserve", "7", keys[0], keys[1], keys[2], keys[3], keys[4], keys[5],
                               keys[6], event,        rid, "60000", "5",     "1",     "VIP",   "1",     ticket};
        return call(18, plain);
    }
    return call(21, argv);
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
    char event[37], r1[37], r2[37], r3[37], r4[37], admission[64], keys[8][32];
    random_event(event);
    init_event(event);
    shard_keys(event, keys);
    snprintf(admission, sizeof(admission), "%s:7", event);
    long long until = now_ms() + 120000;
    new_id_in(event, r1);
    new_id_in(event, r2);
    new_id_in(event, r3);
    new_id_in(event, r4);
    assert_ok(reserve_with(event, r1, admission, until, NULL));
    assert_used(reserve_with(event, r2, admission, until, NULL));
    /* the binding key lives as long as the admission */
    redisReply *t = redisCommand(rc, "PEXPIRETIME %s", keys[7]);
    ck_assert_int_eq(t->integer, until);
    freeReplyObject(t);
    /* cancelled: it may hold again; then paid-or-pending refuses again */
    char *argv[] = {"FCALL", "tk_cancel", "7", keys[0], keys[1], keys[2], keys[3], keys[4], keys[5], keys[6], r1};
    freeReplyObject(call(11, (const char **)argv));
    assert_ok(reserve_with(event, r3, admission, until, NULL));
    assert_used(reserve_with(event, r4, admission, until, NULL));
    /* without an admission, tk_reserve is unchanged; a wrong eighth key is a caller bug */
    new_id_in(event, r4);
    assert_ok(reserve_with(event, r4, NULL, 0, NULL));
    new_id_in(event, r4);
    redisReply *bad = reserve_with(event, r4, admission, until, "tk:{ffff}:wa");
    ck_assert_int_eq(bad->type, REDIS_REPLY_ERROR);
    freeReplyObject(bad);
}
END_TEST

static int load_library(void)
{
    const char *dir = getenv("TICKETD_SOURCE_DIR");
    char path[4096];
    snprintf(path, sizeof(path), "%s/lua/ticketd.lua", dir != NULL && *dir ? dir : TK_SOURCE_DIR);
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return -1;
    static char code[1 << 20];
    size_t len = fread(code, 1, sizeof(code), f);
    fclose(f);
    redisReply *r = redisCommand(rc, "FUNCTION LOAD REPLACE %b", code, len);
    int ok = r != NULL && r->type == REDIS_REPLY_STRING;
    if (!ok)
        fprintf(stderr, "FUNCTION LOAD: %s\n", r != NULL && r->str != NULL ? r->str : rc->errstr);
    freeReplyObject(r);
    return ok ? 0 : -1;
}

static void setup(void)
{
    srand((unsigned)(now_ms() ^ getpid()));
    rc = connect_redis();
    ck_assert_ptr_nonnull(rc);
}

static void teardown(void)
{
    redisFree(rc);
}

int main(void)
{
    rc = connect_redis();
    if (rc == NULL || load_library() != 0) {
        fprintf(stderr, "test_waiting_room_lua: no Redis or the library does not load\n");
        return 1;
    }
    redisFree(rc);
    Suite *suite = suite_create("waiting_room_lua");
    TCase *tc = tcase_create("functions");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, the_opening_is_decided_once_by_the_first_caller);
    tcase_add_test(tc, settings_replace_the_line_before_the_opening_and_extend_it_after);
    tcase_add_test(tc, an_idle_line_freezes_and_resumes_when_someone_waits);
    tcase_add_test(tc, join_without_a_room_or_with_it_off_is_off);
    tcase_add_test(tc, malformed_room_calls_are_errors);
    tcase_add_test(tc, an_admission_holds_one_live_reservation_at_a_time);
    suite_add_tcase(suite, tc);
    SRunner *runner = srunner_create(suite);
    srunner_run_all(runner, CK_NORMAL);
    int failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed != 0;
}
