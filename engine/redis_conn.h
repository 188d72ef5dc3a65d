/*
 * The asynchronous Redis of one event-loop thread: on a single Redis one pipelined
 * connection, on Redis Cluster one pipelined connection per master, with commands routed
 * by the hash slot of their key (engine/cluster_slots.h). Commands are written as they
 * come and their replies matched in order, so many requests share one round trip's
 * worth of latency. Connections reconnect by themselves with exponential backoff; while
 * the owner of a command's slot is down the command is refused at once (the caller
 * answers 503), and a watchdog drops a connection whose replies stall, failing what was
 * in flight. On a cluster, MOVED updates the slot map and retries at the new owner, ASK
 * retries once at the importing node after ASKING, TRYAGAIN and CLUSTERDOWN are retried
 * after a short wait for a bounded time, and the whole map is re-read after a redirect
 * or a lost connection (one refresh at a time, throttled) and periodically.
 * A router lives as long as its loop thread; it is never closed from our side.
 */
#ifndef TK_REDIS_CONN_H
#define TK_REDIS_CONN_H

#include "engine/config.h"
#include "engine/redis_link.h" /* tk_redis_cb */

#include <h2o.h>
#include <hiredis/hiredis.h>

typedef struct st_tk_redis_t tk_redis_t;

/* Connects to config->redis, or to the cluster of config->cluster_seeds when set. */
tk_redis_t *tk_redis_create(h2o_loop_t *loop, const tk_config_t *config);
/* Sends a command to the owner of its key (tk_cluster_command_key; keyless commands go
 * to any connected master). Returns -1 without calling cb when that owner is down. */
int tk_redis_command(tk_redis_t *r, tk_redis_cb cb, void *data, int argc, const char **argv, const size_t *argvlen);
/* The same, but the reply is delivered only once the write has reached a replica
 * (WAIT 1 on a second connection to the master, so the pipeline of ordinary commands
 * never queues behind it). When no replica acknowledged in time and the master has
 * replicas, cb receives an error reply "NOREPLICA …" instead of the command's reply:
 * the write happened but may not survive a failover. On a single Redis (no replica
 * known) it is tk_redis_command. */
int tk_redis_command_durable(tk_redis_t *r, tk_redis_cb cb, void *data, int argc, const char **argv, const size_t *argvlen);
/* A read whose answer may report a write no replica has yet (a payment COMPLETED an
 * instant ago, read before the WAIT of tk_redis_command_durable returned). On a cluster
 * it runs on the master's second link and, when needs_fence says so of its reply, a
 * write to fence_key (a key of the read's slot; written also at maxmemory) and WAIT 1
 * follow: the reply is delivered once a replica has everything up to the fence, hence also
 * the write the read saw, or as "NOREPLICA …" when none confirmed in time or the fence
 * could not be written. On a single Redis it is tk_redis_command. */
typedef int (*tk_redis_needs_fence_cb)(const redisReply *reply);
int tk_redis_command_fenced(tk_redis_t *r, const char *fence_key, tk_redis_needs_fence_cb needs_fence, tk_redis_cb cb, void *data,
                            int argc, const char **argv, const size_t *argvlen);
/* whether every slot has an owner whose connections (both) are up (a single Redis: connected) */
int tk_redis_ready(const tk_redis_t *r);
/* Whether `loops` routers of the process (one per loop thread) have been ready once; any
 * thread. Until then the process is starting: a loop whose router has not connected yet
 * (or has not even been made: its thread is still starting) would refuse holds. */
int tk_redis_all_started(size_t loops);
size_t tk_redis_in_flight(const tk_redis_t *r);
/* commands sent since creation */
uint64_t tk_redis_round_trips(const tk_redis_t *r);
/* MOVED and ASK replies followed, and slot maps read, since creation (0 on a single Redis) */
uint64_t tk_redis_redirects(const tk_redis_t *r);
uint64_t tk_redis_map_refreshes(const tk_redis_t *r);

#endif
