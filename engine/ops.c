/*
 * Health: one PING on the loop's connection, decoded by the inventory's reply decoder,
 * combined with the refresher's PostgreSQL check. On Redis Cluster Redis is up only when
 * every slot has an owner this loop is connected to (tk_redis_ready): a process that
 * cannot reach a third of the shards should leave the balancer's rotation.
 */
#include "engine/ops.h"
#include "engine/inventory.h"
#include "engine/refresher.h"

#include <errno.h>

typedef struct st_tk_health_call_t {
    tk_redis_t *redis;
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
    tk_health_result_t result = {.redis = tk_inventory_parse_ping(reply) == 0 && tk_redis_ready(call->redis) ? TK_HEALTH_OK
                                                                                                             : TK_HEALTH_DOWN,
                                 .postgres = postgres_health()};
    call->cb(&result, call->data);
    free(call);
}

int tk_ops_health(tk_engine_t *e, tk_health_cb cb, void *data)
{
    tk_health_call_t *call = h2o_mem_alloc(sizeof(*call));
    *call = (tk_health_call_t){.redis = e->redis, .cb = cb, .data = data};
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
