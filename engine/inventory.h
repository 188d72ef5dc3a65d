/*
 * The C side of the Redis function library (lua/ticketd.lua): key names and the
 * argument vectors of each FCALL. Every key of an event lives under the hash tag of
 * the event's shard, "{abcd}" for an event id starting "abcd", so one call touches
 * one Redis Cluster slot. Only this file spells key names or function names.
 */
#ifndef TK_INVENTORY_H
#define TK_INVENTORY_H

#include "engine/catalog.h"
#include "engine/redis_conn.h"

#include <hiredis/hiredis.h>

#define TK_KEY_LEN 16 /* "tk:{abcd}:inv" and siblings, NUL included */

#define TK_SHARD_NKEYS 7

/* Every function of the library takes the same seven keys of one shard (see the key
 * layout at the top of lua/ticketd.lua), so every call declares all it may touch. */
typedef struct st_tk_shard_keys_t {
    char names[TK_SHARD_NKEYS][TK_KEY_LEN]; /* inv, res, dl, pay, ob, tx, gc */
    size_t lens[TK_SHARD_NKEYS];
} tk_shard_keys_t;

enum { TK_KEY_INV = 0, TK_KEY_RES, TK_KEY_DL, TK_KEY_PAY, TK_KEY_OB, TK_KEY_TX, TK_KEY_GC };

/* the keys of the shard named by the first four characters of an event, reservation or transaction id */
void tk_shard_keys(const char *id, tk_shard_keys_t *keys);
/* Fills argv with "FCALL", fn, "7", the seven keys; returns the count written (10).
 * keys must outlive the call that sends argv. */
int tk_fcall_prefix(const char *fn, const tk_shard_keys_t *keys, const char **argv, size_t *argvlen);
#define TK_FCALL_PREFIX_LEN (3 + TK_SHARD_NKEYS)
/* FCALL tk_event_init for every event of c, pipelined; idempotent */
int tk_inventory_init_events(redisContext *c, const tk_event_t *events, size_t nevents, char *err, size_t errsize);
/* FCALL tk_avail for ev; cb receives the reply for tk_inventory_parse_avail */
int tk_inventory_avail(tk_redis_t *r, const tk_event_t *ev, tk_redis_cb cb, void *data);
/* fills left[i] with the tickets left of ev->types[i]; -1 when the reply is not the expected shape */
int tk_inventory_parse_avail(const redisReply *reply, const tk_event_t *ev, int64_t *left);

typedef struct st_tk_type_stats_t {
    h2o_iovec_t name; /* points into the reply */
    int64_t capacity, available, held, sold;
} tk_type_stats_t;

typedef struct st_tk_event_stats_t {
    int64_t capacity, available, held, sold, cancelled, expired, revenue_minor, lag_ms;
    size_t ntypes;
    tk_type_stats_t *types; /* in creation order, ntypes of them, caller's memory */
} tk_event_stats_t;

/* FCALL tk_stats for ev: live counters kept by the functions, no scan of reservations */
int tk_inventory_stats(tk_redis_t *r, const tk_event_t *ev, tk_redis_cb cb, void *data);
/* fills out (types into pool memory); 0 when Redis knows the event, -1 otherwise */
int tk_inventory_parse_stats(const redisReply *reply, h2o_mem_pool_t *pool, tk_event_stats_t *out);

/* ---- Waiting room (lua/ticketd.lua, section WAITING ROOM) ---------------------------- */

#define TK_WAITROOM_INDEX_KEY "tk:wr:rooms" /* set of event ids with a room; outside the shards */

typedef struct st_tk_waitroom_keys_t {
    char wr[TK_KEY_LEN]; /* tk:{s}:wr, the rooms of the shard */
    char wa[TK_KEY_LEN]; /* tk:{s}:wa, admission -> reservation */
} tk_waitroom_keys_t;

void tk_waitroom_keys(const char *event, tk_waitroom_keys_t *keys);

#endif
