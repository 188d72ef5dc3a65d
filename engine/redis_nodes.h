/*
 * Blocking connections to every Redis master, for the threads that may block (start-up,
 * workers, refreshers, the writer; never an event-loop thread). A single Redis is a
 * deployment of one master owning every slot, so callers are written once: they ask for
 * the connection that owns a key, or walk the masters. On a cluster the slot map comes
 * from CLUSTER SLOTS of the seed nodes and is re-read after a redirect or on request;
 * a master that cannot be reached has a NULL connection until a later refresh.
 */
#ifndef TK_REDIS_NODES_H
#define TK_REDIS_NODES_H

#include "engine/cluster_slots.h"
#include "engine/config.h"

#include <hiredis/hiredis.h>

typedef struct st_tk_redis_nodes_t tk_redis_nodes_t;

/* Connects to TICKETD_REDIS_URL, or to the cluster found from TICKETD_REDIS_CLUSTER.
 * NULL with why in err when no node answered. */
tk_redis_nodes_t *tk_redis_nodes_open(const tk_config_t *config, int timeout_ms, char *err, size_t errsize);
void tk_redis_nodes_close(tk_redis_nodes_t *n);
int tk_redis_nodes_is_cluster(const tk_redis_nodes_t *n);
/* Re-reads the slot map and connects to masters that are new or were unreachable (and
 * drops broken connections). Returns how many masters are new since the last call (0 on
 * a single Redis), or -1 with err when no seed or known node answered. Opening counts as
 * no call: the first refresh of a cluster reports every master, so a caller that loads
 * the function library onto new masters covers the ones it started with too. */
int tk_redis_nodes_refresh(tk_redis_nodes_t *n, char *err, size_t errsize);
/* whether the i-th master was counted as new by the last refresh */
int tk_redis_nodes_was_new(const tk_redis_nodes_t *n, size_t i);
/* The same re-read and reconnection, leaving the new masters to be counted by the next
 * refresh (for a caller that only needs its connections back). 0, or -1 with err. */
int tk_redis_nodes_reconnect(tk_redis_nodes_t *n, char *err, size_t errsize);
/* 1 when every master has a connection that has not failed */
int tk_redis_nodes_complete(tk_redis_nodes_t *n);

size_t tk_redis_nodes_count(const tk_redis_nodes_t *n);
/* the i-th master's connection, NULL while it is unreachable (one that failed since is
 * returned as it is, err set, until a reconnect or refresh replaces it) */
redisContext *tk_redis_nodes_at(tk_redis_nodes_t *n, size_t i);
/* "host:port" of the i-th master */
const char *tk_redis_nodes_name(const tk_redis_nodes_t *n, size_t i);
const tk_cluster_node_t *tk_redis_nodes_node(const tk_redis_nodes_t *n, size_t i);
/* how many slots the i-th master owns; i == tk_redis_nodes_count: how many no master owns */
size_t tk_redis_nodes_slots(const tk_redis_nodes_t *n, size_t i);
/* which master owns key (its index; tk_redis_nodes_count when no master owns its slot), and
 * that master's connection (NULL: unreachable or unowned) */
size_t tk_redis_nodes_index_of(const tk_redis_nodes_t *n, const char *key, size_t len);
redisContext *tk_redis_nodes_for_key(tk_redis_nodes_t *n, const char *key, size_t len);

/* Runs one command at the owner of its key (tk_cluster_command_key), following MOVED
 * (with a refresh) and ASK up to a few times. NULL when no answer could be had; the
 * connection it used is dropped then, so the next refresh reconnects it. TRYAGAIN and
 * CLUSTERDOWN are retried for up to ~2 s; after that, or after too many redirects, the
 * error reply itself is returned. A command that addresses no key goes to the first
 * reachable master. */
redisReply *tk_redis_nodes_command_argv(tk_redis_nodes_t *n, int argc, const char **argv, const size_t *argvlen);
redisReply *tk_redis_nodes_command(tk_redis_nodes_t *n, const char *fmt, ...);

/* A pipeline over the masters: each command goes to the owner of its key, the replies
 * come back in the order the commands were appended. A reply that is a redirect (MOVED,
 * ASK, TRYAGAIN, CLUSTERDOWN) is replaced by the answer of that command run again with
 * tk_redis_nodes_command_argv, after every other reply has been read. Nothing else may use
 * n between the first append and exec. */
typedef struct st_tk_redis_pipeline_t tk_redis_pipeline_t;

tk_redis_pipeline_t *tk_redis_pipeline_new(tk_redis_nodes_t *n);
void tk_redis_pipeline_append_argv(tk_redis_pipeline_t *p, int argc, const char **argv, const size_t *argvlen);
/* the command formatted as redisCommand does (%s, %b, %d ...) */
void tk_redis_pipeline_append(tk_redis_pipeline_t *p, const char *fmt, ...);
/* Sends what is appended and reads every reply. The number of commands that got no
 * answer (their owner unreachable or its connection lost: that connection is dropped). */
size_t tk_redis_pipeline_exec(tk_redis_pipeline_t *p);
size_t tk_redis_pipeline_count(const tk_redis_pipeline_t *p);
/* the reply of the i-th command after exec, NULL when it got none; owned by the pipeline */
redisReply *tk_redis_pipeline_reply(tk_redis_pipeline_t *p, size_t i);
/* the error string of the connection that failed the i-th command, or "" */
const char *tk_redis_pipeline_error(const tk_redis_pipeline_t *p, size_t i);
void tk_redis_pipeline_free(tk_redis_pipeline_t *p);

#endif
