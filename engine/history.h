/*
 * The demand figures an organiser watches during an on-sale, kept in Redis by the
 * function library (see DEMAND FIGURES in lua/ticketd.lua) so that they survive a
 * restart and every ticketd process sees the same: hold requests turned away for want
 * of tickets, failed payments, the sell-out instant, and a short sales history. The
 * history is sampled by a background task on one loop of each process; tk_sample keeps
 * one sample per step however many processes call it.
 */
#ifndef TK_HISTORY_H
#define TK_HISTORY_H

#include "engine/catalog.h"
#include "engine/event_stats.h"
#include "engine/redis_conn.h"

#include <h2o.h>
#include <hiredis/hiredis.h>
#include <stdint.h>

typedef struct st_tk_history_t tk_history_t;

/* Starts sampling the upcoming events of the catalog every TK_HISTORY_STEP_MS. */
tk_history_t *tk_history_start(h2o_loop_t *loop, tk_redis_t *redis, tk_catalog_cache_t *catalog);
/* FCALL tk_stats for ev with the demand figures appended (tk_inventory_stats' reply and more) */
int tk_history_stats(tk_redis_t *r, const tk_event_t *ev, tk_redis_cb cb, void *data);
/* Reads the demand figures that tk_stats appends after the ntypes per-type entries of its
 * reply; a reply without them (an older library) reads as zeros. -1 when malformed. */
int tk_history_parse(const redisReply *reply, size_t ntypes, h2o_mem_pool_t *pool, tk_demand_t *out);

#endif
