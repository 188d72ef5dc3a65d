/*
 * test_redis_link.c: one connection to one Redis (engine/redis_link.c) reached by host
 * name. The name is looked up off the loop thread before each connection attempt, so a
 * link to a name that does not resolve (or whose DNS server does not answer) stays down
 * and retries while the loop goes on serving every other link.
 */
#include "engine/redis_link.h"
#include "engine/timefmt.h"
#include "tests/lua/support.h"

#include <stdio.h>

static h2o_loop_t *loop; /* globals, so LeakSanitizer sees them reachable: links are never closed */
static tk_redis_url_t by_name, by_address, nowhere;

static void url_for(tk_redis_url_t *url, const char *host, int port)
{
    char text[128];
    snprintf(text, sizeof(text), "redis://%s:%d/0", host, port);
    ck_assert_int_eq(tk_config_parse_redis_url(text, url), 0);
}

/* runs the loop until every link in ready[] is ready or deadline_ms (monotonic) passes */
static int run_until_ready(tk_redis_link_t **links, int n, int64_t deadline_ms)
{
    for (;;) {
        int ready = 0;
        for (int i = 0; i < n; ++i)
            ready += tk_redis_link_is_ready(links[i]);
        if (ready == n)
            return 1;
        if (tk_time_mono_ms() >= deadline_ms)
            return 0;
        h2o_evloop_run(loop, 10);
    }
}

static void on_pong(redisReply *reply, void *data)
{
    *(int *)data = reply != NULL && reply->type == REDIS_REPLY_STATUS;
}

START_TEST(test_a_link_to_a_host_by_name_is_ready_and_answers)
{
    loop = h2o_evloop_create();
    url_for(&by_name, "localhost", tk_lua_port());
    tk_redis_link_t *link = tk_redis_link_create(loop, &by_name, NULL, NULL);
    ck_assert_int_eq(run_until_ready(&link, 1, tk_time_mono_ms() + 5000), 1);
    const char *ping[] = {"PING"};
    int answered = -1;
    ck_assert_int_eq(tk_redis_link_send(link, on_pong, &answered, 1, ping, NULL), 0);
    while (answered == -1)
        h2o_evloop_run(loop, 10);
    ck_assert_int_eq(answered, 1);
}
END_TEST

START_TEST(test_a_name_that_does_not_resolve_holds_up_no_other_link)
{
    loop = h2o_evloop_create();
    int64_t deadline = tk_time_mono_ms() + 5000; /* before the lookup starts: a blocking one would use it up */
    url_for(&nowhere, "ticketd-test-no-such-host.invalid", tk_lua_port());
    url_for(&by_address, "127.0.0.1", tk_lua_port());
    tk_redis_link_t *lost = tk_redis_link_create(loop, &nowhere, NULL, NULL);
    tk_redis_link_t *live = tk_redis_link_create(loop, &by_address, NULL, NULL);
    ck_assert_int_eq(run_until_ready(&live, 1, deadline), 1);
    ck_assert_int_eq(tk_redis_link_is_ready(lost), 0);
    const char *ping[] = {"PING"};
    ck_assert_int_eq(tk_redis_link_send(lost, on_pong, NULL, 1, ping, NULL), -1); /* refused at once while down */
}
END_TEST

static void add_tests(TCase *tc)
{
    tcase_add_test(tc, test_a_link_to_a_host_by_name_is_ready_and_answers);
    tcase_add_test(tc, test_a_name_that_does_not_resolve_holds_up_no_other_link);
}

int main(void)
{
    return tk_lua_run("redis_link", add_tests);
}
