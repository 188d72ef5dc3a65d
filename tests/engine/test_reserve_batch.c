/*
 * test_reserve_batch.c: the group commit of engine/reserve_batch.c on a real Redis with the
 * function library loaded (tests/lua/support.h): the requests a loop pass queues for one
 * shard go as one call and each callback gets its own answer, in order; shards get a call
 * each; a pass with more than TK_RESERVE_BATCH_MAX requests is split; a lone request goes
 * alone in the same pass; when Redis is unreachable every request is answered (NULL),
 * none is lost or answered twice; and an answer may queue a new request.
 */
#include "engine/reserve_batch.h"
#include "tests/lua/support.h"

#include <stdio.h>
#include <string.h>

#define MAX_ANSWERS 200

typedef struct st_answer_t {
    int calls;
    int is_null;
    char first[16], second[32]; /* "OK"/"ERR" and, for ERR, the reason's argument (a type name) */
    int order;                  /* when it was answered, among all answers */
} answer_t;

static h2o_loop_t *loop; /* globals, so LeakSanitizer sees them reachable: routers are never closed */
static tk_redis_t *router;
static tk_reserve_batcher_t *batcher;
static tk_config_t config;
static int answered;

static void on_answer(redisReply *reply, void *data)
{
    answer_t *a = data;
    ++a->calls;
    a->order = answered++;
    a->is_null = reply == NULL;
    if (reply != NULL && reply->type == REDIS_REPLY_ARRAY && reply->elements >= 1) {
        snprintf(a->first, sizeof(a->first), "%s", reply->element[0]->str);
        if (reply->elements >= 3 && reply->element[2]->type == REDIS_REPLY_STRING)
            snprintf(a->second, sizeof(a->second), "%s", reply->element[2]->str);
    }
}

static void start(int port)
{
    memset(&config, 0, sizeof(config));
    char url[64];
    snprintf(url, sizeof(url), "redis://127.0.0.1:%d/0", port);
    ck_assert_int_eq(tk_config_parse_redis_url(url, &config.redis), 0);
    loop = h2o_evloop_create();
    router = tk_redis_create(loop, &config);
    batcher = tk_reserve_batcher_create(loop, router);
    answered = 0;
}

static void run_until_ready(void)
{
    int64_t deadline = tk_time_mono_ms() + 5000;
    while (!tk_redis_ready(router) && tk_time_mono_ms() < deadline)
        h2o_evloop_run(loop, 10);
    ck_assert_msg(tk_redis_ready(router), "the router never became ready");
}

static void run_until_answered(int n)
{
    int64_t deadline = tk_time_mono_ms() + 5000;
    while (answered < n && tk_time_mono_ms() < deadline)
        h2o_evloop_run(loop, 10);
    ck_assert_int_eq(answered, n);
}

/* queues a hold of one ticket of type under a fresh id of ev's shard, answered to cb */
static void queue_to(const char *ev, const char *type, tk_redis_cb cb, answer_t *a)
{
    static tk_lua_uuid_t rids[MAX_ANSWERS * 2], tickets[MAX_ANSWERS * 2];
    static int next;
    next = (next + 1) % (MAX_ANSWERS * 2);
    tk_uuid_v4_in_shard(rids[next], ev);
    tk_uuid_v4(tickets[next]);
    const char *argv[] = {ev, rids[next], "60000", "5", "1", type, "1", tickets[next]};
    size_t argvlen[8];
    for (size_t i = 0; i < 8; ++i)
        argvlen[i] = strlen(argv[i]);
    tk_reserve_batcher_add(batcher, rids[next], 0, 0, 8, argv, argvlen, cb, a);
}

static void queue(const char *ev, const char *type, answer_t *a)
{
    queue_to(ev, type, on_answer, a);
}

START_TEST(test_one_pass_of_one_shard_is_one_call_answered_in_order)
{
    start(tk_lua_port());
    run_until_ready();
    tk_lua_uuid_t ev;
    tk_lua_event_new(ev, tk_lua_future(), "GA", "100", "2500", NULL);
    static answer_t a[10];
    static char names[10][16];
    for (int i = 0; i < 10; ++i) {
        snprintf(names[i], sizeof(names[i]), "nope-%d", i);
        queue(ev, i % 2 == 0 ? "GA" : names[i], &a[i]);
    }
    ck_assert_uint_eq(tk_reserve_batcher_queued(batcher), 10);
    run_until_answered(10);
    ck_assert_uint_eq(tk_reserve_batcher_queued(batcher), 0);
    ck_assert_uint_eq(tk_reserve_batcher_batches(batcher), 1);
    ck_assert_uint_eq(tk_reserve_batcher_grouped(batcher), 10);
    for (int i = 0; i < 10; ++i) {
        ck_assert_int_eq(a[i].calls, 1);
        ck_assert_int_eq(a[i].order, i);
        if (i % 2 == 0) {
            ck_assert_str_eq(a[i].first, "OK");
        } else {
            ck_assert_str_eq(a[i].first, "ERR");
            ck_assert_str_eq(a[i].second, names[i]); /* its own answer, not a neighbour's */
        }
    }
    ck_assert_int_eq(tk_lua_stats_type(ev, "GA").held, 5);
    tk_lua_assert_invariant(ev);
}
END_TEST

START_TEST(test_each_shard_gets_its_own_call)
{
    start(tk_lua_port());
    run_until_ready();
    tk_lua_uuid_t ev1, ev2;
    tk_lua_event_new(ev1, tk_lua_future(), "GA", "100", "2500", NULL);
    do
        tk_lua_event_new(ev2, tk_lua_future(), "GA", "100", "2500", NULL);
    while (memcmp(ev1, ev2, TK_SHARD_LEN) == 0);
    static answer_t a[6];
    for (int i = 0; i < 6; ++i)
        queue(i % 2 == 0 ? ev1 : ev2, "GA", &a[i]);
    run_until_answered(6);
    ck_assert_uint_eq(tk_reserve_batcher_batches(batcher), 2);
    for (int i = 0; i < 6; ++i)
        ck_assert_str_eq(a[i].first, "OK");
    ck_assert_int_eq(tk_lua_stats_type(ev1, "GA").held, 3);
    ck_assert_int_eq(tk_lua_stats_type(ev2, "GA").held, 3);
}
END_TEST

START_TEST(test_a_pass_beyond_the_cap_is_split)
{
    start(tk_lua_port());
    run_until_ready();
    tk_lua_uuid_t ev;
    tk_lua_event_new(ev, tk_lua_future(), "GA", "1000", "2500", NULL);
    enum { N = 2 * TK_RESERVE_BATCH_MAX + 22 };
    static answer_t a[N];
    for (int i = 0; i < N; ++i)
        queue(ev, "GA", &a[i]);
    run_until_answered(N);
    ck_assert_uint_eq(tk_reserve_batcher_batches(batcher), 3);
    ck_assert_uint_eq(tk_reserve_batcher_grouped(batcher), N);
    for (int i = 0; i < N; ++i) {
        ck_assert_int_eq(a[i].calls, 1);
        ck_assert_str_eq(a[i].first, "OK");
    }
    ck_assert_int_eq(tk_lua_stats_type(ev, "GA").held, N);
}
END_TEST

START_TEST(test_a_lone_request_goes_alone_in_the_same_pass)
{
    start(tk_lua_port());
    run_until_ready();
    tk_lua_uuid_t ev;
    tk_lua_event_new(ev, tk_lua_future(), "GA", "10", "2500", NULL);
    static answer_t a;
    queue(ev, "GA", &a);
    h2o_evloop_run(loop, 0); /* the end-of-pass timer sends it */
    ck_assert_uint_eq(tk_reserve_batcher_queued(batcher), 0);
    run_until_answered(1);
    ck_assert_str_eq(a.first, "OK");
    ck_assert_uint_eq(tk_reserve_batcher_batches(batcher), 0); /* a batch of one is not a group */
}
END_TEST

START_TEST(test_unreachable_redis_answers_every_request_once)
{
    start(1); /* nothing listens on port 1 */
    tk_lua_uuid_t ev;
    tk_uuid_v4(ev);
    static answer_t a[TK_RESERVE_BATCH_MAX + 3];
    for (int i = 0; i < TK_RESERVE_BATCH_MAX + 3; ++i)
        queue(ev, "GA", &a[i]); /* the first full batch is sent (and refused) early */
    run_until_answered(TK_RESERVE_BATCH_MAX + 3);
    for (int i = 0; i < TK_RESERVE_BATCH_MAX + 3; ++i) {
        ck_assert_int_eq(a[i].calls, 1);
        ck_assert_int_eq(a[i].is_null, 1);
    }
    ck_assert_uint_eq(tk_reserve_batcher_queued(batcher), 0);
    h2o_evloop_run(loop, 10);
    ck_assert_int_eq(answered, TK_RESERVE_BATCH_MAX + 3);
}
END_TEST

/* an answer that queues another request of the shard (a retry, say) while the batch it came
 * from is being answered: the new request gets a batch of its own and its own answer */
static const char *requeue_event;
static answer_t requeued;

static void on_answer_requeue(redisReply *reply, void *data)
{
    on_answer(reply, data);
    if (requeued.calls == 0 && requeue_event != NULL) {
        const char *ev = requeue_event;
        requeue_event = NULL;
        queue(ev, "GA", &requeued);
    }
}

START_TEST(test_an_answer_may_queue_a_request)
{
    start(1); /* unreachable: every batch is refused and answered at the end of the pass */
    static tk_lua_uuid_t ev;
    tk_uuid_v4(ev);
    static answer_t a[3];
    requeue_event = ev;
    for (int i = 0; i < 3; ++i)
        queue_to(ev, "GA", on_answer_requeue, &a[i]);
    run_until_answered(4);
    for (int i = 0; i < 3; ++i)
        ck_assert_int_eq(a[i].calls, 1);
    ck_assert_int_eq(requeued.calls, 1);
    ck_assert_int_eq(requeued.is_null, 1);
    ck_assert_uint_eq(tk_reserve_batcher_queued(batcher), 0);
}
END_TEST

static void add_tests(TCase *tc)
{
    tcase_add_test(tc, test_an_answer_may_queue_a_request);
    tcase_add_test(tc, test_one_pass_of_one_shard_is_one_call_answered_in_order);
    tcase_add_test(tc, test_each_shard_gets_its_own_call);
    tcase_add_test(tc, test_a_pass_beyond_the_cap_is_split);
    tcase_add_test(tc, test_a_lone_request_goes_alone_in_the_same_pass);
    tcase_add_test(tc, test_unreachable_redis_answers_every_request_once);
}

int main(void)
{
    return tk_lua_run("reserve_batch", add_tests);
}
