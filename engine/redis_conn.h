/*
 * One pipelined, asynchronous Redis connection per event-loop thread. Commands are
 * written as they come and their replies matched in order, so many requests share one
 * round trip's worth of latency. The connection reconnects by itself with exponential
 * backoff; while it is down commands are refused at once (the caller answers 503), and
 * a watchdog drops a connection whose replies stall, failing what was in flight.
 * A connection lives as long as its loop thread; it is never closed from our side.
 */
#ifndef TK_REDIS_CONN_H
#define TK_REDIS_CONN_H

#include "engine/config.h"

#include <h2o.h>
#include <hiredis/hiredis.h>

typedef struct st_tk_redis_t tk_redis_t;
/* reply is NULL when the command failed with the connection; it is freed after the call */
typedef void (*tk_redis_cb)(redisReply *reply, void *data);

tk_redis_t *tk_redis_create(h2o_loop_t *loop, const tk_redis_url_t *url);
/* Sends a command. Returns -1 without calling cb when the connection is down. */
int tk_redis_command(tk_redis_t *r, tk_redis_cb cb, void *data, int argc, const char **argv, const size_t *argvlen);
size_t tk_redis_in_flight(const tk_redis_t *r);
/* commands sent since creation */
uint64_t tk_redis_round_trips(const tk_redis_t *r);

#endif
