/*
 * test_fair_use.c: the fair-use and backpressure part of tk_reserve (lua/ticketd.lua)
 * against a real Redis 7 at 127.0.0.1:$TICKETD_TEST_REDIS_PORT: a client's live holds
 * (freed by cancellation, expiry and payment), its hold rate with bursts of twice the
 * rate, the pause of a shard whose outbox is over its limit (and only that shard), and
 * that a call without the fair-use part behaves as before. main() loads the library from
 * $TICKETD_SOURCE_DIR/lua/ticketd.lua. Every test uses fresh events and a fresh client id.
 */
#include <check.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#define DAY_MS 86400000LL

static redisContext *rc;

static void uuid_new(char out[37])
{
    unsigned char b[16];
    ck_assert_int_eq(getrandom(b, sizeof(b), 0), (int)sizeof(b));
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1], b[2], b[3], b[4], b[5],
             b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
}

static void client_new(char out[17])
{
    char u[37];
    uuid_new(u);
    snprintf(out, 17, "%.8s%.4s%.4s", u, u + 9, u + 14);
}

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* FCALL fn with the seven keys of id's shard (and tk:{s}:rt when rt), then args. */
static redisReply *fcall(const char *fn, const char *id, int rt, int argc, const char **args)
{
    static const char *const names[] = {"inv", "res", "dl", "pay", "ob", "tx", "gc", "rt"};
    const char *argv[64];
    char keys[8][32];
    int n = 0, nkeys = rt ? 8 : 7;
    argv[n++] = "FCALL";
    argv[n++] = fn;
    argv[n++] = rt ? "8" : "7";
    for (int i = 0; i < nkeys; ++i) {
        snprintf(keys[i], sizeof(keys[i]), "tk:{%.4s}:%s", id, names[i]);
        argv[n++] = keys[i];
    }
    for (int i = 0; i < argc; ++i)
        argv[n++] = args[i];
    redisReply *r = redisCommandArgv(rc, n, argv, NULL);
    ck_assert_msg(r != NULL, "redis: %s", rc->errstr);
    return r;
}

/* A fresh event with one type "A" of cap tickets; its id into ev. */
static void event_new(char ev[37], const char *cap)
{
    char date[24];
    uuid_new(ev);
    snprintf(date, sizeof(date), "%lld", now_ms() + DAY_MS);
    const char *args[] = {ev, date, "1", "A", cap, "1000"};
    freeReplyObject(fcall("tk_event_init", ev, 0, 6, args));
}

/* tk_reserve of one ticket of "A" in reservation rid (made in ev's shard), with the
 * fair-use part client, max, rate, pause unless client is NULL. */
static redisReply *reserve(const char *ev, char rid[37], const char *client, const char *max, const char *rate, const char *pause,
                           const char *hold_ms)
{
    char ticket[37];
    uuid_new(rid);
    memcpy(rid, ev, 4);
    uuid_new(ticket);
    const char *fair[] = {client, max, rate, pause, ev, rid, hold_ms, "5", "1", "A", "1", ticket};
    return client != NULL ? fcall("tk_reserve", ev, 1, 12, fair) : fcall("tk_reserve", ev, 0, 8, fair + 4);
}

static const char *verdict(const redisReply *r)
{
    if (r->type == REDIS_REPLY_ERROR)
        return r->str;
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 1)
        return "?";
    if (strcmp(r->element[0]->str, "OK") == 0)
        return "OK";
    return r->elements >= 2 ? r->element[1]->str : "?";
}

/* tk_reserve's verdict ("OK", "too_many", "paused", ...); *retry gets the seconds to wait */
static char *reserve_verdict(const char *ev, char rid[37], const char *client, const char *max, const char *rate, const char *pause,
                             long long *retry)
{
    redisReply *r = reserve(ev, rid, client, max, rate, pause, "60000");
    char *v = strdup(verdict(r));
    if (retry != NULL)
        *retry = r->type == REDIS_REPLY_ARRAY && r->elements == 3 && r->element[2]->type == REDIS_REPLY_INTEGER
                     ? r->element[2]->integer
                     : -1;
    freeReplyObject(r);
    return v;
}

#define ASSERT_VERDICT(expr, want)                                                                                                 \
    do {                                                                                                                           \
        char *v_ = (expr);                                                                                                         \
        ck_assert_msg(strcmp(v_, want) == 0, "expected %s, got %s", want, v_);                                                     \
        free(v_);                                                                                                                  \
    } while (0)

/* a command on one key of ev's shard: "HGET", ev, "inv", then up to two arguments */
static redisReply *on_key(const char *cmd, const char *ev, const char *name, const char *a1, const char *a2)
{
    char key[32];
    snprintf(key, sizeof(key), "tk:{%.4s}:%s", ev, name);
    const char *argv[] = {cmd, key, a1, a2};
    redisReply *r = redisCommandArgv(rc, 2 + (a1 != NULL) + (a2 != NULL), argv, NULL);
    ck_assert_msg(r != NULL, "redis: %s", rc->errstr);
    return r;
}

static long long live_holds(const char *ev, const char *client)
{
    char field[32];
    snprintf(field, sizeof(field), "cl:%s", client);
    redisReply *r = on_key("HGET", ev, "inv", field, NULL);
    long long n = r->type == REDIS_REPLY_STRING ? atoll(r->str) : r->type == REDIS_REPLY_NIL ? -1 : -2;
    freeReplyObject(r);
    return n; /* -1: no field at all */
}

START_TEST(test_max_holds_refuses_then_cancel_expiry_and_payment_free_a_place)
{
    char ev[37], client[17], rid[3][37], extra[37], tid[37];
    event_new(ev, "100");
    client_new(client);
    for (int i = 0; i < 3; ++i)
        ASSERT_VERDICT(reserve_verdict(ev, rid[i], client, "3", "0", "0", NULL), "OK");
    ck_assert_int_eq(live_holds(ev, client), 3);
    long long retry;
    ASSERT_VERDICT(reserve_verdict(ev, extra, client, "3", "0", "0", &retry), "too_many");
    ck_assert_int_ge(retry, 1);
    /* another client of the same shard is not affected */
    char other[17];
    client_new(other);
    ASSERT_VERDICT(reserve_verdict(ev, extra, other, "3", "0", "0", NULL), "OK");

    /* cancellation frees a place at once */
    const char *cancel[] = {rid[0]};
    freeReplyObject(fcall("tk_cancel", ev, 0, 1, cancel));
    ck_assert_int_eq(live_holds(ev, client), 2);
    ASSERT_VERDICT(reserve_verdict(ev, rid[0], client, "3", "0", "0", NULL), "OK");
    ASSERT_VERDICT(reserve_verdict(ev, extra, client, "3", "0", "0", NULL), "too_many");

    /* a paid hold frees its place (PAYING still counts: it is PENDING to the client) */
    uuid_new(tid);
    memcpy(tid, ev, 4);
    const char *start[] = {rid[1], tid, "30000"};
    freeReplyObject(fcall("tk_pay_start", ev, 0, 3, start));
    ck_assert_int_eq(live_holds(ev, client), 3);
    const char *finish[] = {rid[1], tid, "ok", ""};
    freeReplyObject(fcall("tk_pay_finish", ev, 0, 4, finish));
    ck_assert_int_eq(live_holds(ev, client), 2);

    /* an expired hold frees its place, whether or not the sweeper ran */
    char short_hold[37];
    redisReply *r = reserve(ev, short_hold, client, "3", "0", "0", "1");
    ck_assert_str_eq(verdict(r), "OK");
    freeReplyObject(r);
    struct timespec ts = {0, 20 * 1000000};
    nanosleep(&ts, NULL);
    ASSERT_VERDICT(reserve_verdict(ev, extra, client, "3", "0", "0", NULL), "OK");
    ck_assert_int_eq(live_holds(ev, client), 3);

    /* releasing everything deletes the count: nothing is kept per client once it holds nothing */
    const char *c0[] = {rid[0]}, *c2[] = {rid[2]}, *c3[] = {extra};
    freeReplyObject(fcall("tk_cancel", ev, 0, 1, c0));
    freeReplyObject(fcall("tk_cancel", ev, 0, 1, c2));
    freeReplyObject(fcall("tk_cancel", ev, 0, 1, c3));
    ck_assert_int_eq(live_holds(ev, client), -1);
    /* and the record forgets its client */
    r = on_key("HGET", ev, "res", rid[0], NULL);
    ck_assert_ptr_null(strstr(r->str, client));
    freeReplyObject(r);
}
END_TEST

START_TEST(test_rate_allows_a_burst_of_twice_the_rate_then_refuses_with_retry)
{
    char ev[37], client[17], rid[37];
    event_new(ev, "1000");
    client_new(client);
    /* rate 5/s: a burst of 10 passes at once (the calls take far less than 200 ms each) */
    int ok = 0;
    long long retry = -1;
    for (int i = 0; i < 12; ++i) {
        char *v = reserve_verdict(ev, rid, client, "0", "5", "0", &retry);
        if (strcmp(v, "OK") == 0)
            ++ok;
        else
            ck_assert_str_eq(v, "too_many");
        free(v);
    }
    ck_assert_int_ge(ok, 10);
    ck_assert_int_le(ok, 11);
    ck_assert_int_ge(retry, 1);
    /* the refused requests did not take tokens: one interval later exactly one more passes */
    struct timespec ts = {0, 250 * 1000000};
    nanosleep(&ts, NULL);
    ASSERT_VERDICT(reserve_verdict(ev, rid, client, "0", "5", "0", NULL), "OK");
    /* a refused hold of another client does not touch this client's bucket; state is one member per client */
    redisReply *r = on_key("ZSCORE", ev, "rt", client, NULL);
    ck_assert_int_eq(r->type, REDIS_REPLY_STRING);
    ck_assert(atof(r->str) > (double)now_ms());
    freeReplyObject(r);
}
END_TEST

START_TEST(test_rate_state_of_idle_clients_is_dropped)
{
    char ev[37], client[17], rid[37];
    event_new(ev, "1000");
    client_new(client);
    ASSERT_VERDICT(reserve_verdict(ev, rid, client, "0", "100", "0", NULL), "OK");
    struct timespec ts = {0, 30 * 1000000};
    nanosleep(&ts, NULL); /* more than one interval (10 ms): the bucket is full again */
    char other[17];
    client_new(other);
    ASSERT_VERDICT(reserve_verdict(ev, rid, other, "0", "100", "0", NULL), "OK");
    redisReply *r = on_key("ZSCORE", ev, "rt", client, NULL);
    ck_assert_int_eq(r->type, REDIS_REPLY_NIL);
    freeReplyObject(r);
}
END_TEST

START_TEST(test_outbox_over_the_limit_pauses_only_its_shard)
{
    char ev[37], calm[37], client[17], rid[37];
    event_new(ev, "1000");
    do
        event_new(calm, "1000");
    while (memcmp(calm, ev, 4) == 0);
    client_new(client);
    redisReply *r = on_key("XLEN", ev, "ob", NULL, NULL);
    long long depth = r->integer;
    freeReplyObject(r);
    char limit[24];
    snprintf(limit, sizeof(limit), "%lld", depth + 2);
    ASSERT_VERDICT(reserve_verdict(ev, rid, client, "0", "0", limit, NULL), "OK");
    ASSERT_VERDICT(reserve_verdict(ev, rid, client, "0", "0", limit, NULL), "OK");
    long long retry;
    ASSERT_VERDICT(reserve_verdict(ev, rid, client, "0", "0", limit, &retry), "paused");
    ck_assert_int_ge(retry, 1);
    /* the pause changed nothing: no hold, no count */
    char held[48];
    snprintf(held, sizeof(held), "%s:A:held", ev);
    r = on_key("HGET", ev, "inv", held, NULL);
    ck_assert_str_eq(r->str, "2");
    freeReplyObject(r);
    /* another shard with its own, short outbox sells on under the same limit */
    r = on_key("XLEN", calm, "ob", NULL, NULL);
    long long calm_depth = r->integer;
    freeReplyObject(r);
    if (calm_depth < depth + 2)
        ASSERT_VERDICT(reserve_verdict(calm, rid, client, "0", "0", limit, NULL), "OK");
    /* a limit of 0 never pauses */
    ASSERT_VERDICT(reserve_verdict(ev, rid, client, "0", "0", "0", NULL), "OK");
}
END_TEST

START_TEST(test_without_the_fair_use_part_nothing_is_counted)
{
    char ev[37], rid[37];
    event_new(ev, "100");
    for (int i = 0; i < 5; ++i)
        ASSERT_VERDICT(reserve_verdict(ev, rid, NULL, NULL, NULL, NULL, NULL), "OK");
    /* an empty client id: the pause applies, client limits do not */
    for (int i = 0; i < 3; ++i)
        ASSERT_VERDICT(reserve_verdict(ev, rid, "", "1", "1", "0", NULL), "OK");
    redisReply *r = on_key("HGET", ev, "inv", "cl:", NULL);
    ck_assert_int_eq(r->type, REDIS_REPLY_NIL);
    freeReplyObject(r);
}
END_TEST

START_TEST(test_malformed_fair_use_part_is_a_redis_error)
{
    char ev[37], rid[37];
    event_new(ev, "100");
    ASSERT_VERDICT(reserve_verdict(ev, rid, "not-hex!", "1", "1", "0", NULL),
                   "ERR ticketd: fair use: 8th key tk:{s}:rt, ARGV C max_holds rate outbox_limit first");
    ASSERT_VERDICT(reserve_verdict(ev, rid, "abcd", "-1", "1", "0", NULL),
                   "ERR ticketd: fair use: 8th key tk:{s}:rt, ARGV C max_holds rate outbox_limit first");
    /* the limits of another shard are not this shard's */
    char ticket[37], other_rt[32], keys[7][32];
    static const char *const names[] = {"inv", "res", "dl", "pay", "ob", "tx", "gc"};
    uuid_new(rid);
    memcpy(rid, ev, 4);
    uuid_new(ticket);
    snprintf(other_rt, sizeof(other_rt), "tk:{%c%.3s}:rt", ev[0] == '0' ? '1' : '0', ev + 1);
    const char *argv[24] = {"FCALL", "tk_reserve", "8"};
    int n = 3;
    for (int i = 0; i < 7; ++i) {
        snprintf(keys[i], sizeof(keys[i]), "tk:{%.4s}:%s", ev, names[i]);
        argv[n++] = keys[i];
    }
    argv[n++] = other_rt;
    const char *args[] = {"abcd", "1", "1", "0", ev, rid, "60000", "5", "1", "A", "1", ticket};
    for (size_t i = 0; i < sizeof(args) / sizeof(args[0]); ++i)
        argv[n++] = args[i];
    redisReply *r = redisCommandArgv(rc, n, argv, NULL);
    ck_assert_ptr_nonnull(r);
    ck_assert_str_eq(verdict(r), "ERR ticketd: fair use: 8th key tk:{s}:rt, ARGV C max_holds rate outbox_limit first");
    freeReplyObject(r);
}
END_TEST

static Suite *fair_use_suite(void)
{
    Suite *s = suite_create("fair_use");
    TCase *tc = tcase_create("tk_reserve");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_max_holds_refuses_then_cancel_expiry_and_payment_free_a_place);
    tcase_add_test(tc, test_rate_allows_a_burst_of_twice_the_rate_then_refuses_with_retry);
    tcase_add_test(tc, test_rate_state_of_idle_clients_is_dropped);
    tcase_add_test(tc, test_outbox_over_the_limit_pauses_only_its_shard);
    tcase_add_test(tc, test_without_the_fair_use_part_nothing_is_counted);
    tcase_add_test(tc, test_malformed_fair_use_part_is_a_redis_error);
    suite_add_tcase(s, tc);
    return s;
}

static int load_library(void)
{
    const char *dir = getenv("TICKETD_SOURCE_DIR");
    char path[1024];
    snprintf(path, sizeof(path), "%s/lua/ticketd.lua", dir != NULL && *dir != '\0' ? dir : TK_SOURCE_DIR);
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        perror(path);
        return -1;
    }
    static char code[1 << 20];
    size_t len = fread(code, 1, sizeof(code), f);
    fclose(f);
    redisReply *r = redisCommand(rc, "FUNCTION LOAD REPLACE %b", code, len);
    int ok = r != NULL && r->type == REDIS_REPLY_STRING;
    if (!ok)
        fprintf(stderr, "test_fair_use: FUNCTION LOAD: %s\n", r != NULL && r->type == REDIS_REPLY_ERROR ? r->str : rc->errstr);
    freeReplyObject(r);
    return ok ? 0 : -1;
}

int main(void)
{
    const char *p = getenv("TICKETD_TEST_REDIS_PORT");
    rc = redisConnect("127.0.0.1", p != NULL && *p != '\0' ? atoi(p) : 6391);
    if (rc == NULL || rc->err || load_library() != 0) {
        fprintf(stderr, "test_fair_use: no Redis to test against\n");
        return EXIT_FAILURE;
    }
    SRunner *sr = srunner_create(fair_use_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    redisFree(rc);
    return failed != 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
