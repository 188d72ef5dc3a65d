/*
 * Health: one PING on the loop's connection, decoded by the inventory's reply decoder,
 * combined with the refresher's PostgreSQL check. On Redis Cluster the PING goes to any
 * master that is up: while one master fails over every process is equally cut off from
 * its slots, so taking them all out of a balancer's rotation would turn a third of the
 * shards refusing holds into the whole site refusing everything.
 * A process is not healthy before every loop has been connected to Redis once: the
 * healthz a balancer (or a test) waits for must not be answered by the one loop that
 * connected first while another would still refuse the holds it takes.
 */
#include "engine/ops.h"
#include "engine/inventory.h"
#include "engine/redis_conn.h"
#include "engine/refresher.h"

#include <errno.h>

typedef struct st_tk_health_call_t {
    tk_health_cb cb;
    void *data;
} tk_health_call_t;

static tk_health_t postgres_health(void)
{
    return tk_refresher_pg_healthy() ? TK_HEALTH_OK : TK_HEALTH_DOWN;
}

static void on_pong(redisReply *reply, void *data)
{
    tk_health_call_t *call = data;
    tk_health_result_t result = {.redis = tk_inventory_parse_ping(reply) == 0 ? TK_HEALTH_OK : TK_HEALTH_DOWN,
                                 .postgres = postgres_health()};
    call->cb(&result, call->data);
    free(call);
}

int tk_ops_health(tk_engine_t *e, tk_health_cb cb, void *data)
{
    if (!tk_redis_all_started((size_t)e->config->threads))
        return -EAGAIN;
    tk_health_call_t *call = h2o_mem_alloc(sizeof(*call));
    *call = (tk_health_call_t){.cb = cb, .data = data};
    if (tk_inventory_ping(e->redis, on_pong, call) != 0) {
        free(call);
        return -EAGAIN;
    }
    return 0;
}

void tk_ops_health_now(tk_health_result_t *out)
{
    *out = (tk_health_result_t){.redis = TK_HEALTH_DOWN, .postgres = postgres_health()};
}
