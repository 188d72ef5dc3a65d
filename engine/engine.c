/*
 * Per-loop engine state: creating the connection, the gateway, the sweeper and the
 * worker-completion queue a loop thread needs, and the questions the server asks about
 * it while draining.
 */
#include "engine/engine.h"
#include "engine/history.h"
#include "engine/payment.h"
#include "engine/redis_conn.h"
#include "engine/reserve_batch.h"
#include "engine/sweeper.h"
#include "engine/worker.h"

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
