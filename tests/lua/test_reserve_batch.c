/*
 * test_reserve_batch.c: tests of lua/ticketd.lua's tk_reserve_batch, the group commit of
 * holds: every request of a batch is held or refused on its own and answered in its own
 * element, in order, each seeing the stock the earlier ones left; a malformed request
 * spoils only its own answer; a malformed batch changes nothing; fair use counts every
 * request of a batch; batches racing from many clients never oversell; and a batch's holds,
 * sharing one deadline, go back on sale together in one step when it passes.
 * Runs against the test Redis (tests/lua/support.h).
 */
#include "tests/lua/support.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_REQUESTS 64

/* one request of a batch */
typedef struct st_batch_request_t {
    const char *ev;
    tk_lua_uuid_t rid;
    tk_lua_line_t lines[4];
    int nlines;
    int tickets_short;     /* send this many ticket ids fewer than the amounts ask for */
    const char *client;    /* fair use: the client (NULL: no fair-use part) */
    const char *max_holds; /* fair use: its limits ("0": off) */
    const char *rate;
    long hold_ms; /* 0: TK_LUA_HOLD_MS */
} batch_request_t;

static char ticket_ids[MAX_REQUESTS * 8][TK_UUID_LEN + 1];

/* FCALL tk_reserve_batch over rq[0..n) on c: the keys of rq[0]'s shard */
static redisReply *reserve_batch_on(redisContext *c, batch_request_t *rq, int n)
{
    static const char *argv[MAX_REQUESTS * 32];
    static size_t argvlen[MAX_REQUESTS * 32];
    static char numbers[MAX_REQUESTS * 32][24];
    tk_shard_keys_t keys;
    char rt[TK_KEY_LEN], wa[TK_KEY_LEN];
    tk_shard_keys(rq[0].ev, &keys);
    snprintf(rt, sizeof(rt), "tk:{%.4s}:rt", rq[0].ev);
    snprintf(wa, sizeof(wa), "tk:{%.4s}:wa", rq[0].ev);
    int k = 0, num = 0, tid = 0;
#define ARG(s) (argv[k] = (s), argvlen[k] = strlen(argv[k]), ++k)
#define NUM(v) (snprintf(numbers[num], sizeof(numbers[num]), "%lld", (long long)(v)), ARG(numbers[num++]))
    ARG("FCALL");
    ARG("tk_reserve_batch");
    ARG("9");
    for (int i = 0; i < TK_SHARD_NKEYS; ++i)
        ARG(keys.names[i]);
    ARG(rt);
    ARG(wa);
    NUM(n);
    for (int i = 0; i < n; ++i) {
        int count_at = k;
        ARG("");
        ARG(rq[i].client != NULL ? "1" : "0");
        ARG("0");
        int first = k;
        if (rq[i].client != NULL) {
            ARG(rq[i].client);
            ARG(rq[i].max_holds);
            ARG(rq[i].rate);
            ARG("0");
        }
        ARG(rq[i].ev);
        ARG(rq[i].rid);
        NUM(rq[i].hold_ms > 0 ? rq[i].hold_ms : TK_LUA_HOLD_MS);
        ARG(TK_LUA_MAX_PER_TYPE);
        NUM(rq[i].nlines);
        int ntickets = 0;
        for (int l = 0; l < rq[i].nlines; ++l) {
            ARG(rq[i].lines[l].type);
            ARG(rq[i].lines[l].amount);
            ntickets += atoi(rq[i].lines[l].amount);
        }
        for (int t = 0; t < ntickets - rq[i].tickets_short; ++t) {
            tk_uuid_v4(ticket_ids[tid]);
            ARG(ticket_ids[tid++]);
        }
        snprintf(numbers[num], sizeof(numbers[num]), "%d", k - first);
        argv[count_at] = numbers[num], argvlen[count_at] = strlen(numbers[num]), ++num;
    }
#undef ARG
#undef NUM
    return redisCommandArgv(c, k, argv, argvlen);
}

static redisReply *reserve_batch(batch_request_t *rq, int n)
{
    redisReply *r = reserve_batch_on(tk_lua_redis, rq, n);
    ck_assert_msg(r != NULL, "redis: %s", tk_lua_redis->errstr);
    return r;
}

static void request(batch_request_t *rq, const char *ev, const char *type, const char *amount)
{
    memset(rq, 0, sizeof(*rq));
    rq->ev = ev;
    tk_uuid_v4_in_shard(rq->rid, ev);
    rq->lines[0] = (tk_lua_line_t){type, amount};
    rq->nlines = 1;
}

/* the i-th answer of a batch reply, owned by the caller (tk_lua_expect_* free it) */
static redisReply *answer(redisReply *r, size_t i)
{
    ck_assert_int_eq(r->type, REDIS_REPLY_ARRAY);
    ck_assert_uint_gt(r->elements, i);
    redisReply *own = r->element[i];
    r->element[i] = NULL;
    return own;
}

static void free_batch(redisReply *r)
{
    for (size_t i = 0; i < r->elements; ++i)
        if (r->element[i] != NULL)
            freeReplyObject(r->element[i]);
    r->elements = 0;
    freeReplyObject(r);
}

START_TEST(test_batch_holds_each_request_with_its_own_record_deadline_and_outbox_entry)
{
    tk_lua_uuid_t ev;
    tk_lua_event_new(ev, tk_lua_future(), "VIP", "10", "35000", "Std", "10", "1000", NULL);
    batch_request_t rq[3];
    request(&rq[0], ev, "VIP", "2");
    request(&rq[1], ev, "Std", "1");
    request(&rq[2], ev, "VIP", "3");
    int64_t t0 = tk_time_now_ms();
    redisReply *r = reserve_batch(rq, 3);
    ck_assert_uint_eq(r->elements, 3);
    for (int i = 0; i < 3; ++i) {
        redisReply *own = answer(r, (size_t)i);
        ck_assert_uint_eq(own->elements, 3);
        ck_assert_int_ge(own->element[1]->integer, t0);
        ck_assert_int_eq(own->element[2]->integer, own->element[1]->integer + TK_LUA_HOLD_MS);
        tk_lua_expect_ok(own, 0);
        char *blob = tk_lua_blob_raw(rq[i].rid);
        ck_assert_ptr_nonnull(blob);
        tk_lua_assert_status(blob, "PENDING");
        ck_assert_int_eq(tk_lua_due_at(rq[i].rid), tk_lua_blob_int(blob, "u"));
        free(blob);
        tk_lua_outbox_entry_t entry;
        ck_assert_int_eq(tk_lua_outbox_for(rq[i].rid, &entry, 1), 1);
        ck_assert_int_eq(entry.ntickets, atoi(rq[i].lines[0].amount));
    }
    free_batch(r);
    ck_assert_int_eq(tk_lua_stats_type(ev, "VIP").held, 5);
    ck_assert_int_eq(tk_lua_stats_type(ev, "Std").held, 1);
    tk_lua_assert_invariant(ev);
}
END_TEST

/* The holds of one batch share a deadline, so their tickets share one held-ticket bucket per
 * type and the holds one hold list (one dl member for the batch): the first sweep after the
 * deadline's 100 ms slot puts every ticket back on sale and finalizes the whole list, however small
 * its limit, moving each ticket once; a read of a hold the sweep finalized moves nothing. */
START_TEST(test_a_batch_expires_back_on_sale_in_one_sweep)
{
    enum { N = 6 };
    tk_lua_uuid_t ev;
    tk_lua_event_new(ev, tk_lua_future(), "A", "10", "100", "B", "10", "100", NULL);
    batch_request_t rq[N];
    for (int i = 0; i < N; ++i) {
        request(&rq[i], ev, i % 2 ? "B" : "A", "1");
        rq[i].hold_ms = 100;
    }
    redisReply *r = reserve_batch(rq, N);
    for (int i = 0; i < N; ++i)
        tk_lua_expect_ok(answer(r, (size_t)i), 0);
    free_batch(r);
    ck_assert_int_eq(tk_lua_buckets_of(ev), 2); /* one per type */
    ck_assert_int_eq(tk_lua_hold_lists(ev), 1); /* one for the batch */
    tk_time_sleep_ms(250);                      /* past the deadline rounded up to 100 ms, when both are due */
    ck_assert_int_eq(tk_lua_expire_sweep(ev, "1"), N);
    tk_lua_stats_t s;
    tk_lua_stats_get(ev, &s);
    ck_assert(s.avail == 20 && s.held == 0 && s.expired == N && s.cancelled == 0);
    ck_assert_int_eq(tk_lua_buckets_of(ev), 0);
    ck_assert_int_eq(tk_lua_hold_lists(ev), 0);
    tk_lua_assert_invariant(ev);
    for (int i = 0; i < N; ++i) {
        char *blob = tk_lua_blob_get(rq[i].rid);
        tk_lua_assert_status(blob, "CANCELLED");
        free(blob);
        ck_assert_int_eq(tk_lua_due_at(rq[i].rid), -1);
        tk_lua_outbox_entry_t entries[2];
        ck_assert_int_eq(tk_lua_outbox_for(rq[i].rid, entries, 2), 2); /* held, then expired */
    }
    ck_assert_int_eq(tk_lua_expire_sweep(ev, "2"), 0);
    tk_lua_stats_get(ev, &s);
    ck_assert(s.avail == 20 && s.held == 0 && s.expired == N && s.cancelled == 0);
    tk_lua_assert_invariant(ev);
}
END_TEST

START_TEST(test_later_requests_see_the_stock_earlier_ones_left)
{
    tk_lua_uuid_t ev;
    tk_lua_event_new(ev, tk_lua_future(), "GA", "3", "2500", NULL);
    batch_request_t rq[4];
    request(&rq[0], ev, "GA", "2");
    request(&rq[1], ev, "GA", "2");
    request(&rq[2], ev, "GA", "1");
    request(&rq[3], ev, "GA", "1");
    redisReply *r = reserve_batch(rq, 4);
    tk_lua_expect_ok(answer(r, 0), 0);
    tk_lua_expect_err(answer(r, 1), "insufficient", "GA", 1);
    tk_lua_expect_ok(answer(r, 2), 0);
    tk_lua_expect_err(answer(r, 3), "insufficient", "GA", 0);
    free_batch(r);
    ck_assert_int_eq(tk_lua_res_exists(rq[1].rid), 0);
    ck_assert_int_eq(tk_lua_res_exists(rq[3].rid), 0);
    tk_lua_type_stats_t ga = tk_lua_stats_type(ev, "GA");
    ck_assert(ga.avail == 0 && ga.held == 3);
    tk_lua_assert_invariant(ev);
    /* the two turned away are counted, and the sell-out instant is stamped */
    tk_shard_keys_t keys;
    tk_shard_keys(ev, &keys);
    redisReply *dm = tk_lua_cmd("HMGET %s dm:%s:away dm:%s:soldout", keys.names[TK_KEY_INV], ev, ev);
    ck_assert_str_eq(dm->element[0]->str, "2");
    ck_assert_ptr_nonnull(dm->element[1]->str);
    freeReplyObject(dm);
}
END_TEST

/* refusals ticketd answered from its sold-out memory join the ones Redis counted itself */
START_TEST(test_turned_away_adds_refusals_answered_elsewhere)
{
    tk_lua_uuid_t ev, unknown;
    tk_lua_event_new(ev, tk_lua_future(), "GA", "1", "2500", NULL);
    redisReply *r = tk_lua_fcall("tk_turned_away", ev, ev, "7", NULL);
    ck_assert_int_eq(r->type, REDIS_REPLY_INTEGER);
    ck_assert_int_eq(r->integer, 7);
    freeReplyObject(r);
    tk_shard_keys_t keys;
    tk_shard_keys(ev, &keys);
    r = tk_lua_cmd("HGET %s dm:%s:away", keys.names[TK_KEY_INV], ev);
    ck_assert_str_eq(r->str, "7");
    freeReplyObject(r);
    snprintf(unknown, sizeof(unknown), "%.4s0000-0000-4000-8000-00000000dead", ev);
    r = tk_lua_fcall("tk_turned_away", unknown, unknown, "3", NULL); /* no such event: nothing written */
    ck_assert_int_eq(r->integer, 0);
    freeReplyObject(r);
    r = tk_lua_cmd("HEXISTS %s dm:%s:away", keys.names[TK_KEY_INV], unknown);
    ck_assert_int_eq(r->integer, 0);
    freeReplyObject(r);
    r = tk_lua_fcall("tk_turned_away", ev, ev, "0", NULL);
    ck_assert_int_eq(r->type, REDIS_REPLY_ERROR);
    freeReplyObject(r);
}
END_TEST

START_TEST(test_a_malformed_request_spoils_only_its_own_answer)
{
    tk_lua_uuid_t ev;
    tk_lua_event_new(ev, tk_lua_future(), "GA", "10", "2500", NULL);
    batch_request_t rq[4];
    request(&rq[0], ev, "GA", "1");
    request(&rq[1], ev, "GA", "x"); /* bad amount: the contract's 400 */
    request(&rq[2], ev, "GA", "2");
    rq[2].tickets_short = 1;          /* too few ticket ids: a caller bug, an error reply */
    request(&rq[3], ev, "Nope", "1"); /* unknown type */
    redisReply *r = reserve_batch(rq, 4);
    tk_lua_expect_ok(answer(r, 0), 0);
    tk_lua_expect_err(answer(r, 1), "bad_amount", "GA", -1); /* named by its type */
    ck_assert_int_eq(r->element[2]->type, REDIS_REPLY_ERROR);
    ck_assert_ptr_nonnull(strstr(r->element[2]->str, "ticket ids"));
    tk_lua_expect_err(answer(r, 3), "unknown_type", "Nope", -1);
    free_batch(r);
    ck_assert_int_eq(tk_lua_res_exists(rq[2].rid), 0);
    ck_assert_int_eq(tk_lua_stats_type(ev, "GA").held, 1);
    tk_lua_assert_invariant(ev);
}
END_TEST

START_TEST(test_the_same_id_twice_in_one_batch_is_held_once)
{
    tk_lua_uuid_t ev;
    tk_lua_event_new(ev, tk_lua_future(), "GA", "10", "2500", NULL);
    batch_request_t rq[2];
    request(&rq[0], ev, "GA", "1");
    request(&rq[1], ev, "GA", "2");
    memcpy(rq[1].rid, rq[0].rid, sizeof(rq[0].rid));
    redisReply *r = reserve_batch(rq, 2);
    tk_lua_expect_ok(answer(r, 0), 0);
    tk_lua_expect_err(answer(r, 1), "exists", NULL, -1);
    free_batch(r);
    ck_assert_int_eq(tk_lua_stats_type(ev, "GA").held, 1);
    tk_lua_assert_invariant(ev);
}
END_TEST

START_TEST(test_an_id_held_by_an_earlier_call_is_refused_and_the_rest_held)
{
    tk_lua_uuid_t ev;
    tk_lua_event_new(ev, tk_lua_future(), "GA", "10", "2500", NULL);
    batch_request_t first, rq[3];
    request(&first, ev, "GA", "1");
    redisReply *r = reserve_batch(&first, 1);
    tk_lua_expect_ok(answer(r, 0), 0);
    free_batch(r);
    /* a retried call: the earlier id between two new ones */
    request(&rq[0], ev, "GA", "1");
    rq[1] = first;
    request(&rq[2], ev, "GA", "2");
    r = reserve_batch(rq, 3);
    tk_lua_expect_ok(answer(r, 0), 0);
    tk_lua_expect_err(answer(r, 1), "exists", NULL, -1);
    tk_lua_expect_ok(answer(r, 2), 0);
    free_batch(r);
    ck_assert_int_eq(tk_lua_stats_type(ev, "GA").held, 4);
    tk_lua_assert_invariant(ev);
}
END_TEST

START_TEST(test_a_malformed_batch_changes_nothing)
{
    tk_lua_uuid_t ev;
    tk_lua_event_new(ev, tk_lua_future(), "GA", "10", "2500", NULL);
    batch_request_t rq[1];
    request(&rq[0], ev, "GA", "1");
    char *before = tk_lua_inv_snapshot(ev);
    tk_shard_keys_t keys;
    tk_shard_keys(ev, &keys);
    char rt[TK_KEY_LEN], wa[TK_KEY_LEN];
    snprintf(rt, sizeof(rt), "tk:{%.4s}:rt", ev);
    snprintf(wa, sizeof(wa), "tk:{%.4s}:wa", ev);
    /* a count that runs past ARGV, a request count of 0, a flag that is not 0 or 1, two keys short */
    const char *bad[][4] = {{"1", "9", "0", "0"}, {"0", NULL}, {"1", "5", "2", "0"}, {"1", "5", "0", "0"}};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); ++i) {
        const char *argv[32] = {"FCALL", "tk_reserve_batch", i == 3 ? "7" : "9"};
        int n = 3;
        for (int j = 0; j < TK_SHARD_NKEYS; ++j)
            argv[n++] = keys.names[j];
        if (i != 3) {
            argv[n++] = rt;
            argv[n++] = wa;
        }
        for (int j = 0; j < 4 && bad[i][j] != NULL; ++j)
            argv[n++] = bad[i][j];
        if (bad[i][1] != NULL) {
            const char *args[] = {ev, rq[0].rid, "60000", "5", "1", "GA", "1"};
            for (size_t j = 0; j < sizeof(args) / sizeof(args[0]); ++j)
                argv[n++] = args[j];
        }
        redisReply *r = redisCommandArgv(tk_lua_redis, n, argv, NULL);
        ck_assert_ptr_nonnull(r);
        ck_assert_msg(r->type == REDIS_REPLY_ERROR && strstr(r->str, "ticketd") != NULL, "case %zu", i);
        freeReplyObject(r);
    }
    char *after = tk_lua_inv_snapshot(ev);
    ck_assert_str_eq(before, after);
    ck_assert_int_eq(tk_lua_res_exists(rq[0].rid), 0);
    free(before);
    free(after);
}
END_TEST

/* {"ERR", "too_many", retry_s} with retry_s >= 1 */
static void expect_too_many(const redisReply *own)
{
    ck_assert_int_eq(own->type, REDIS_REPLY_ARRAY);
    ck_assert_uint_eq(own->elements, 3);
    ck_assert_str_eq(own->element[0]->str, "ERR");
    ck_assert_str_eq(own->element[1]->str, "too_many");
    ck_assert_int_ge(own->element[2]->integer, 1);
}

START_TEST(test_fair_use_counts_every_request_of_a_batch)
{
    tk_lua_uuid_t ev;
    tk_lua_event_new(ev, tk_lua_future(), "GA", "50", "2500", NULL);
    char client[17];
    tk_lua_uuid_t tmp;
    tk_uuid_v4(tmp);
    snprintf(client, sizeof(client), "%.8s%.4s%.4s", tmp, tmp + 9, tmp + 14);
    /* at most two live holds: the third and fourth of one batch are refused */
    batch_request_t rq[5];
    for (int i = 0; i < 4; ++i) {
        request(&rq[i], ev, "GA", "1");
        rq[i].client = client, rq[i].max_holds = "2", rq[i].rate = "0";
    }
    request(&rq[4], ev, "GA", "1"); /* another request without a client: unaffected */
    redisReply *r = reserve_batch(rq, 5);
    tk_lua_expect_ok(answer(r, 0), 0);
    tk_lua_expect_ok(answer(r, 1), 0);
    expect_too_many(r->element[2]);
    expect_too_many(r->element[3]);
    tk_lua_expect_ok(answer(r, 4), 0);
    free_batch(r);
    tk_shard_keys_t keys;
    tk_shard_keys(ev, &keys);
    redisReply *live = tk_lua_cmd("HGET %s cl:%s", keys.names[TK_KEY_INV], client);
    ck_assert_str_eq(live->str, "2");
    freeReplyObject(live);

    /* a rate of 1 per second allows a burst of 2: the rest of the batch is refused */
    tk_uuid_v4(tmp);
    snprintf(client, sizeof(client), "%.8s%.4s%.4s", tmp, tmp + 9, tmp + 14);
    for (int i = 0; i < 4; ++i) {
        request(&rq[i], ev, "GA", "1");
        rq[i].client = client, rq[i].max_holds = "0", rq[i].rate = "1";
    }
    r = reserve_batch(rq, 4);
    tk_lua_expect_ok(answer(r, 0), 0);
    tk_lua_expect_ok(answer(r, 1), 0);
    expect_too_many(r->element[2]);
    expect_too_many(r->element[3]);
    free_batch(r);
    ck_assert_int_eq(tk_lua_stats_type(ev, "GA").held, 5);
    tk_lua_assert_invariant(ev);
}
END_TEST

/* ---- racing batches --------------------------------------------------------------------- */

#define RACE_PROCS 16
#define RACE_BATCHES 20
#define RACE_CAP 150

/* sends batches of 1-8 requests of 1-2 tickets; writes the ids held to out */
static int race_client(redisContext *rc, const char *ev, int out)
{
    static batch_request_t rq[8];
    srand((unsigned)getpid());
    for (int b = 0; b < RACE_BATCHES; ++b) {
        int n = 1 + rand() % 8;
        for (int i = 0; i < n; ++i)
            request(&rq[i], ev, "GA", rand() % 2 ? "1" : "2");
        redisReply *r = reserve_batch_on(rc, rq, n);
        if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements != (size_t)n)
            return 4;
        for (int i = 0; i < n; ++i) {
            redisReply *own = r->element[i];
            if (own->type == REDIS_REPLY_ARRAY && strcmp(own->element[0]->str, "OK") == 0) {
                char line[64];
                int len = snprintf(line, sizeof(line), "%s %s\n", rq[i].rid, rq[i].lines[0].amount);
                if (write(out, line, (size_t)len) != len)
                    return 5;
            } else if (own->type != REDIS_REPLY_ARRAY || strcmp(own->element[1]->str, "insufficient") != 0) {
                return 6;
            }
        }
        freeReplyObject(r);
    }
    return 0;
}

START_TEST(test_racing_batches_hold_exactly_the_capacity)
{
    tk_lua_uuid_t ev;
    tk_lua_event_new(ev, tk_lua_future(), "GA", "150", "2500", NULL);
    pid_t pids[RACE_PROCS];
    FILE *f = fdopen(tk_lua_race_start(RACE_PROCS, race_client, ev, pids), "r");
    long long held = 0, holds = 0;
    char rid[TK_UUID_LEN + 1];
    int amount;
    while (fscanf(f, "%36s %d", rid, &amount) == 2) {
        char *blob = tk_lua_blob_raw(rid);
        ck_assert_ptr_nonnull(blob);
        tk_lua_assert_status(blob, "PENDING");
        free(blob);
        held += amount;
        ++holds;
    }
    fclose(f);
    tk_lua_race_wait(RACE_PROCS, pids);
    /* 16 x 20 batches of up to 8 x 2 tickets ask for far more than 150: all of it goes, once */
    tk_lua_type_stats_t ga = tk_lua_stats_type(ev, "GA");
    ck_assert_int_eq(ga.held, held);
    ck_assert_int_ge(held, RACE_CAP - 1); /* a last odd ticket may be left for a 2-ticket ask */
    ck_assert_int_le(held, RACE_CAP);
    ck_assert_int_eq(ga.avail, RACE_CAP - held);
    tk_lua_assert_invariant(ev);
    ck_assert_int_ge(holds, RACE_CAP / 2);
}
END_TEST

/* A failed payment puts its hold back in a hold list of its own, so a hold of a batch is
 * then named by two lists of the same deadline: the sweep releases it once, its tickets back once. */
START_TEST(test_a_hold_named_by_two_lists_is_released_once)
{
    tk_lua_uuid_t ev, tid;
    tk_lua_event_new(ev, tk_lua_future(), "A", "10", "100", NULL);
    batch_request_t rq[2];
    for (int i = 0; i < 2; ++i) {
        request(&rq[i], ev, "A", "2");
        rq[i].hold_ms = 100;
    }
    redisReply *r = reserve_batch(rq, 2);
    for (int i = 0; i < 2; ++i)
        tk_lua_expect_ok(answer(r, (size_t)i), 0);
    free_batch(r);
    tk_uuid_v4_in_shard(tid, ev);
    tk_lua_pay_start_ok(rq[0].rid, tid, TK_LUA_GATEWAY_MS);
    tk_lua_expect_ok_status(tk_lua_pay_finish(rq[0].rid, tid, "fail", TK_LUA_DECLINED), "PENDING");
    ck_assert_int_eq(tk_lua_hold_lists(ev), 2);
    tk_time_sleep_ms(150); /* past the deadline: both lists due */
    ck_assert_int_eq(tk_lua_expire_sweep(ev, "200"), 2);
    ck_assert_int_eq(tk_lua_hold_lists(ev), 0);
    tk_lua_stats_t s;
    tk_lua_stats_get(ev, &s);
    ck_assert(s.avail == 10 && s.held == 0 && s.expired == 4 && s.cancelled == 0);
    tk_lua_assert_invariant(ev);
    tk_lua_outbox_entry_t entries[5];
    ck_assert_int_eq(tk_lua_outbox_for(rq[0].rid, entries, 5), 4); /* held, paying, back, expired */
}
END_TEST

static void add_tests(TCase *tc)
{
    tcase_add_test(tc, test_batch_holds_each_request_with_its_own_record_deadline_and_outbox_entry);
    tcase_add_test(tc, test_a_batch_expires_back_on_sale_in_one_sweep);
    tcase_add_test(tc, test_a_hold_named_by_two_lists_is_released_once);
    tcase_add_test(tc, test_later_requests_see_the_stock_earlier_ones_left);
    tcase_add_test(tc, test_a_malformed_request_spoils_only_its_own_answer);
    tcase_add_test(tc, test_turned_away_adds_refusals_answered_elsewhere);
    tcase_add_test(tc, test_the_same_id_twice_in_one_batch_is_held_once);
    tcase_add_test(tc, test_an_id_held_by_an_earlier_call_is_refused_and_the_rest_held);
    tcase_add_test(tc, test_a_malformed_batch_changes_nothing);
    tcase_add_test(tc, test_fair_use_counts_every_request_of_a_batch);
    tcase_add_test(tc, test_racing_batches_hold_exactly_the_capacity);
}

int main(void)
{
    return tk_lua_run("lua_reserve_batch", add_tests);
}
