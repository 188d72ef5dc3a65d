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

typedef struct st_tk_shard_keys_t {
    char inv[TK_KEY_LEN], res[TK_KEY_LEN], dl[TK_KEY_LEN];
} tk_shard_keys_t;

/* the keys of the shard named by the first four characters of an event or reservation id */
void tk_shard_keys(const char *id, tk_shard_keys_t *keys);
/* FCALL tk_event_init for every event of c, pipelined; idempotent */
int tk_inventory_init_events(redisContext *c, const tk_event_t *events, size_t nevents, char *err, size_t errsize);
/* FCALL tk_avail for ev; cb receives the reply for tk_inventory_parse_avail */
int tk_inventory_avail(tk_redis_t *r, const tk_event_t *ev, tk_redis_cb cb, void *data);
/* fills left[i] with the tickets left of ev->types[i]; -1 when the reply is not the expected shape */
int tk_inventory_parse_avail(const redisReply *reply, const tk_event_t *ev, int64_t *left);

#endif
