/*
 * The C side of the Redis function library (lua/ticketd.lua): key names, the argument
 * vectors of each FCALL, and the decoders of their replies. Every key of an event lives
 * under the hash tag of the event's shard, "{abcd}" for an event id starting "abcd", so
 * one call touches one Redis Cluster slot. Only this file (and the header of the Lua
 * library) spells key names, the outbox's consumer group or function names.
 */
#ifndef TK_INVENTORY_H
#define TK_INVENTORY_H

#include "engine/catalog.h"
#include "engine/event_stats.h"
#include "engine/redis_conn.h"
#include "engine/redis_nodes.h"

#include <hiredis/hiredis.h>
#include <libpq-fe.h>

#define TK_KEY_LEN 16 /* "tk:{abcd}:inv" and siblings, NUL included */

#define TK_SHARD_NKEYS 7

/* the process-wide catalog version: whoever changes the catalog increments it */
#define TK_CATALOG_VERSION_KEY "tk:catalog:version"
/* the consumer group of every outbox stream (the Lua library's OUTBOX_GROUP) */
#define TK_OUTBOX_GROUP "writers"

/* Every function of the library takes the same seven keys of one shard (see the key
 * layout at the top of lua/ticketd.lua), so every call declares all it may touch. */
typedef struct st_tk_shard_keys_t {
    char names[TK_SHARD_NKEYS][TK_KEY_LEN]; /* inv, res, dl, pay, ob, tx, gc */
    size_t lens[TK_SHARD_NKEYS];
} tk_shard_keys_t;

enum { TK_KEY_INV = 0, TK_KEY_RES, TK_KEY_DL, TK_KEY_PAY, TK_KEY_OB, TK_KEY_TX, TK_KEY_GC };

/* the keys of the shard named by the first four characters of an event, reservation or transaction id */
void tk_shard_keys(const char *id, tk_shard_keys_t *keys);
/* The shard's fence key "tk:{abcd}:fence": written (set to 1) by a fenced read on Redis
 * Cluster before its WAIT (tk_redis_command_fenced), never read; outside the functions. */
void tk_shard_fence_key(const char *id, char out[TK_KEY_LEN]);
/* Fills argv with "FCALL", fn, "7", the seven keys; returns the count written (10).
 * keys must outlive the call that sends argv. */
int tk_fcall_prefix(const char *fn, const tk_shard_keys_t *keys, const char **argv, size_t *argvlen);
#define TK_FCALL_PREFIX_LEN (3 + TK_SHARD_NKEYS)
/* The shard of an outbox stream's key "tk:{abcd}:ob" (four lower-case hex digits) into
 * shard; -1 for any other key. */
int tk_shard_of_outbox_key(const char *key, size_t len, char shard[TK_SHARD_LEN + 1]);
/* Moves the outbox entry entry_id of shard to the shard's dead-letter stream tk:{s}:dead
 * with the reason, acknowledging and deleting it in the outbox, as one atomic call
 * (FCALL tk_dead_letter). 1 when moved, 0 when the entry was no longer in the outbox
 * (it is acknowledged all the same), -1 on failure with a reason in err. */
int tk_inventory_dead_letter(tk_redis_nodes_t *n, const char *shard, const char *entry_id, const char *reason, char *err,
                             size_t errsize);
/* FCALL tk_event_init for every event, pipelined to the master owning each event's shard;
 * idempotent. An event its shard does not know yet is seeded from what pg knows of its
 * tickets (engine/event_seed.h), so a Redis that lost its data sells nothing twice; when
 * that read fails, nothing is initialised. -1 with the first failure in err when an event
 * could not be initialised. */
int tk_inventory_init_events(tk_redis_nodes_t *n, PGconn *pg, const tk_event_t *events, size_t nevents, char *err, size_t errsize);
/* FCALL_RO tk_avail for ev (read-only: no lazy expiry, the sweeper's figures); cb receives the reply for
 * tk_inventory_parse_avail */
int tk_inventory_avail(tk_redis_t *r, const tk_event_t *ev, tk_redis_cb cb, void *data);
/* fills left[i] with the tickets left of ev->types[i]; -1 when the reply is not the expected shape */
int tk_inventory_parse_avail(const redisReply *reply, const tk_event_t *ev, int64_t *left);

/* FCALL tk_stats for ev: live counters kept by the functions, no scan of reservations */
int tk_inventory_stats(tk_redis_t *r, const tk_event_t *ev, tk_redis_cb cb, void *data);
/* FCALL tk_turned_away: adds n hold refusals answered without Redis to the event's demand figures */
int tk_inventory_turned_away(tk_redis_t *r, const char *event, uint32_t n, tk_redis_cb cb, void *data);
/* fills out (types into pool memory, names pointing into reply); 0 when Redis knows the
 * event, -1 otherwise (an unknown event, or a reply that is not the expected shape) */
int tk_inventory_parse_stats(const redisReply *reply, h2o_mem_pool_t *pool, tk_event_stats_t *out);

/* PING, for /healthz; cb receives the reply for tk_inventory_parse_ping */
int tk_inventory_ping(tk_redis_t *r, tk_redis_cb cb, void *data);
/* 0 when reply is Redis' PONG, -1 otherwise (a failed command, LOADING, any error) */
int tk_inventory_parse_ping(const redisReply *reply);

/* ---- Waiting room (lua/ticketd.lua, section WAITING ROOM) ---------------------------- */

#define TK_WAITROOM_INDEX_KEY "tk:wr:rooms" /* set of event ids with a room; outside the shards */

typedef struct st_tk_waitroom_keys_t {
    char wr[TK_KEY_LEN]; /* tk:{s}:wr, the rooms of the shard */
    char wa[TK_KEY_LEN]; /* tk:{s}:wa, admission -> reservation */
} tk_waitroom_keys_t;

void tk_waitroom_keys(const char *event, tk_waitroom_keys_t *keys);

/* ---- Idempotency keys ----
 * One key per (method, path, Idempotency-Key), outside the shard layout: "tk:idem:" and
 * the hex of a SHA-256 digest (engine/idem.c computes it). */
#define TK_IDEM_KEY_LEN (8 + 64)
/* writes the key name for digest[32] and a NUL into out[TK_IDEM_KEY_LEN + 1] */
void tk_inventory_idem_key(const unsigned char *digest, char *out);

#endif
