/*
 * test_redis_conn.c: what the router (engine/redis_conn.c) tells the rest of the process
 * about its start-up on a single Redis. A process is started only once as many routers
 * as it has loops have been connected once (tk_redis_all_started, which GET /healthz
 * waits for): a router that has not connected yet, or never can, or has not been made
 * yet, keeps it starting, while one that was connected and lost its connection does not
 * make it start again.
 */
#include "engine/redis_conn.h"
#include "tests/lua/support.h"

#include <stdio.h>
#include <string.h>

static h2o_loop_t *loop; /* globals, so LeakSanitizer sees them reachable: routers are never closed */
static tk_config_t live, dead;

static void config_for(tk_config_t *config, int port)
{
    memset(config, 0, sizeof(*config));
    char url[64];
    snprintf(url, sizeof(url), "redis://127.0.0.1:%d/0", port);
    ck_assert_int_eq(tk_config_parse_redis_url(url, &config->redis), 0);
}

static int run_until_ready(tk_redis_t *r)
{
    int64_t deadline = tk_time_mono_ms() + 5000;
    while (!tk_redis_ready(r) && tk_time_mono_ms() < deadline)
        h2o_evloop_run(loop, 10);
    return tk_redis_ready(r);
}

static void run_for(int ms)
{
    int64_t deadline = tk_time_mono_ms() + ms;
    while (tk_time_mono_ms() < deadline)
        h2o_evloop_run(loop, 10);
}

START_TEST(test_the_process_starts_once_every_router_was_ready)
{
    loop = h2o_evloop_create();
    config_for(&live, tk_lua_port());
    config_for(&dead, 1); /* nothing listens on port 1 */
    tk_redis_t *first = tk_redis_create(loop, &live);
    ck_assert_int_eq(tk_redis_all_started(1), 0); /* made, still connecting */
    ck_assert_int_eq(run_until_ready(first), 1);
    ck_assert_int_eq(tk_redis_all_started(1), 1);
    ck_assert_int_eq(tk_redis_all_started(2), 0); /* the second loop's router is not made yet */

    tk_redis_t *second = tk_redis_create(loop, &dead);
    run_for(300);
    ck_assert_int_eq(tk_redis_ready(second), 0);
    ck_assert_int_eq(tk_redis_all_started(2), 0); /* one loop that cannot connect keeps it starting */
}
END_TEST

START_TEST(test_a_router_that_lost_its_connection_does_not_restart_the_process)
{
    loop = h2o_evloop_create();
    config_for(&live, tk_lua_port());
    tk_redis_t *r = tk_redis_create(loop, &live);
    ck_assert_int_eq(run_until_ready(r), 1);
    /* the server drops every normal client: the router reconnects by itself */
    freeReplyObject(tk_lua_cmd("CLIENT KILL TYPE normal SKIPME yes"));
    run_for(50);
    ck_assert_int_eq(tk_redis_all_started(1), 1);
    ck_assert_int_eq(run_until_ready(r), 1);
}
END_TEST

static void add_tests(TCase *tc)
{
    tcase_add_test(tc, test_the_process_starts_once_every_router_was_ready);
    tcase_add_test(tc, test_a_router_that_lost_its_connection_does_not_restart_the_process);
}

int main(void)
{
    return tk_lua_run("redis_conn", add_tests);
}
