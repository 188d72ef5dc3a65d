/*
 * Per-loop engine state: creating the connection, the gateway, the sweeper and the
 * worker-completion queue a loop thread needs, the twice-a-second report of the holds its
 * sold-out table refused, and the questions the server asks about it while draining.
 */
#include "engine/engine.h"
#include "engine/history.h"
#include "engine/inventory.h"
#include "engine/log.h"
#include "engine/payment.h"
#include "engine/redis_conn.h"
#include "engine/reserve_batch.h"
#include "engine/sweeper.h"
#include "engine/worker.h"

static void on_turned_away_reported(redisReply *reply, void *data)
{
    if (reply == NULL || reply->type == REDIS_REPLY_ERROR)
        tk_log_debug("engine", "reporting refusals of sold-out types: %s", reply != NULL ? reply->str : "no reply");
}

static void report_turned_away(const char *event, uint32_t refused, void *data)
{
    tk_engine_t *e = data;
    tk_inventory_turned_away(e->redis, event, refused, on_turned_away_reported, NULL);
}

/* Twice a second: the holds the sold-out table refused go to their events' turned_away
 * figures. A count whose call fails is lost (a console figure, never an inventory one). */
static void on_soldout_report(h2o_timeout_entry_t *entry)
{
    tk_engine_t *e = H2O_STRUCT_FROM_MEMBER(tk_engine_t, soldout_report, entry);
    tk_soldout_take_refused(&e->soldout, report_turned_away, e);
    h2o_timeout_link(e->loop, &e->retry_timeout, &e->soldout_report);
}

void tk_engine_init(tk_engine_t *e, h2o_loop_t *loop, const tk_config_t *config, tk_metrics_t *metrics, int run_sweeper)
{
    e->config = config;
    e->loop = loop;
    e->metrics = metrics;
    e->redis = tk_redis_create(loop, config);
    metrics->redis = e->redis;
    e->reserve_batch = tk_reserve_batcher_create(loop, e->redis);
    metrics->reserve_batch = e->reserve_batch;
    e->gateway = tk_gateway_simulator_create(loop, config->payment_latency_ms);
    h2o_timeout_init(loop, &e->retry_timeout, 500);
    e->soldout_report.cb = on_soldout_report;
    h2o_timeout_link(loop, &e->retry_timeout, &e->soldout_report);
    e->queue = h2o_multithread_create_queue(loop);
    h2o_multithread_register_receiver(e->queue, &e->jobs, tk_workers_on_complete);
    if (run_sweeper) {
        e->sweeper = tk_sweeper_start(loop, e->redis, &e->catalog, &metrics->holds_expired);
        e->history = tk_history_start(loop, e->redis, &e->catalog);
    }
}

tk_catalog_t *tk_engine_catalog(tk_engine_t *e)
{
    return tk_catalog_current(&e->catalog);
}

int tk_engine_busy(tk_engine_t *e)
{
    return tk_redis_in_flight(e->redis) != 0 || tk_reserve_batcher_queued(e->reserve_batch) != 0 ||
           __atomic_load_n(&e->charges_in_flight, __ATOMIC_RELAXED) != 0;
}

size_t tk_engine_in_flight(tk_engine_t *e)
{
    return tk_redis_in_flight(e->redis) + tk_reserve_batcher_queued(e->reserve_batch);
}

#define FREE_OPS_MAX 1024

void *tk_engine_op_alloc(tk_engine_t *e)
{
    void *op = e->free_ops;
    if (op == NULL)
        return h2o_mem_alloc(TK_ENGINE_OP_SIZE);
    e->free_ops = *(void **)op;
    --e->nfree_ops;
    return op;
}

void tk_engine_op_free(tk_engine_t *e, void *op)
{
    if (e->nfree_ops >= FREE_OPS_MAX) {
        free(op);
        return;
    }
    *(void **)op = e->free_ops;
    e->free_ops = op;
    ++e->nfree_ops;
}
