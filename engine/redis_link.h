/*
 * One pipelined, asynchronous connection to one Redis server, owned by one event-loop
 * thread: the building block of the router (engine/redis_conn.c), which keeps one per
 * single Redis, or two per cluster master. Commands are written as they come and their
 * replies matched in order. The link reconnects by itself with exponential backoff; while
 * it is down commands are refused at once, and a watchdog drops a connection whose
 * replies stall, failing what was in flight (their callbacks get a NULL reply).
 * A link's memory lives as long as its loop thread (the metrics scrape reads it from
 * another thread); its connection can be stopped, and started again at another address.
 */
#ifndef TK_REDIS_LINK_H
#define TK_REDIS_LINK_H

#include "engine/config.h"

#include <h2o.h>
#include <hiredis/hiredis.h>

typedef struct st_tk_redis_link_t tk_redis_link_t;
/* reply is NULL when the command failed with the connection; it is freed after the call */
typedef void (*tk_redis_cb)(redisReply *reply, void *data);

/* Starts connecting to url at once. on_ready (may be NULL) runs each time the link
 * becomes ready, with owner. */
tk_redis_link_t *tk_redis_link_create(h2o_loop_t *loop, const tk_redis_url_t *url, void (*on_ready)(void *owner), void *owner);
/* Closes the connection for good: no reconnection until tk_redis_link_start, which
 * (re)connects a stopped link to url. What was in flight fails (NULL replies). */
void tk_redis_link_stop(tk_redis_link_t *l);
void tk_redis_link_start(tk_redis_link_t *l, const tk_redis_url_t *url);
int tk_redis_link_is_ready(const tk_redis_link_t *l);
const tk_redis_url_t *tk_redis_link_url(const tk_redis_link_t *l);
/* Send a command (as an argument vector, or already in RESP as cmd/len). -1 without
 * calling cb when the link is down. */
int tk_redis_link_send(tk_redis_link_t *l, tk_redis_cb cb, void *data, int argc, const char **argv, const size_t *argvlen);
int tk_redis_link_send_formatted(tk_redis_link_t *l, tk_redis_cb cb, void *data, const char *cmd, size_t len);
/* commands sent and not yet answered; read by the metrics scrape from another thread */
size_t tk_redis_link_in_flight(const tk_redis_link_t *l);

#endif
