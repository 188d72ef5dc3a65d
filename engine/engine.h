/*
 * The engine as http/ sees it. Each event-loop thread owns one tk_engine_t: its
 * pipelined Redis connection, its view of the catalog, its sold-out table, its payment
 * gateway and (on the first loop) the expiry sweeper. Routes hand the engine typed
 * requests and get typed results back through callbacks (engine/shop.h and siblings);
 * the Redis and PostgreSQL conversations, retries and decoding stay on this side.
 * Pointers to store-specific types are opaque here, so including this header pulls in
 * no hiredis or libpq header.
 */
#ifndef TK_ENGINE_H
#define TK_ENGINE_H

#include "engine/catalog.h"
#include "engine/config.h"
#include "engine/metrics.h"
#include "engine/soldout.h"

#include <h2o.h>
#include <h2o/multithread.h>
#include <stdint.h>

struct st_tk_redis_t;
struct st_tk_reserve_batcher_t;
struct st_tk_avail_flight_t;
struct st_tk_sweeper_t;
struct st_tk_gateway_t;
struct st_tk_history_t;

typedef struct st_tk_engine_t {
    const tk_config_t *config;
    h2o_loop_t *loop;
    tk_metrics_t *metrics; /* the loop thread's counters */
    struct st_tk_redis_t *redis;
    struct st_tk_reserve_batcher_t *reserve_batch; /* the group commit of this loop's holds */
    tk_catalog_cache_t catalog;
    tk_soldout_t soldout;
    h2o_timeout_entry_t soldout_report; /* on retry_timeout: the refusals soldout answered, to Redis */
    struct st_tk_gateway_t *gateway;
    struct st_tk_sweeper_t *sweeper; /* on the first loop of a process only */
    struct st_tk_history_t *history; /* the sales-history sampler, beside the sweeper */
    h2o_timeout_t retry_timeout;     /* 500 ms: recording gateway answers while Redis is away, soldout reports */
    uint64_t charges_in_flight;      /* gateway charges not yet recorded in Redis, and payments waiting to send a
                                        lost tk_pay_start again (read by the main thread) */
    h2o_multithread_queue_t *queue;  /* worker jobs submitted by this loop come back here */
    h2o_multithread_receiver_t jobs;
    struct st_tk_avail_flight_t
        *avail_flights; /* availability reads in flight, shared by the reads of one event (engine/event_live.c) */
    void *free_ops;     /* recycled operation blocks, see tk_engine_op_alloc */
    size_t nfree_ops;
} tk_engine_t;

/* A block of TK_ENGINE_OP_SIZE bytes for an operation in flight (a hold waiting on Redis,
 * a charge waiting on the gateway). Blocks are recycled per loop, so a warm loop calls no
 * malloc per request, and they are tied to no request: an operation outlives a client
 * that went away. e's loop thread only. */
#define TK_ENGINE_OP_SIZE 256
void *tk_engine_op_alloc(tk_engine_t *e);
void tk_engine_op_free(tk_engine_t *e, void *op);

/* Sets up e on the calling loop thread; run_sweeper on exactly one loop per process. */
void tk_engine_init(tk_engine_t *e, h2o_loop_t *loop, const tk_config_t *config, tk_metrics_t *metrics, int run_sweeper);
/* The catalog as this loop sees it (NULL before the first load); valid for the current callback. */
tk_catalog_t *tk_engine_catalog(tk_engine_t *e);
/* Whether e still has Redis commands or gateway charges outstanding (read from another thread). */
int tk_engine_busy(tk_engine_t *e);
/* Redis commands sent and not yet answered on e's connection (its own thread only). */
size_t tk_engine_in_flight(tk_engine_t *e);

#endif
