/*
 * The expiry sweeper: it asks Redis to release the expired holds of the catalog's shards
 * (tk_expire) when each shard's earliest deadline is due, and rescans every shard that
 * holds anything about once a second to learn of new holds, so tickets are back on sale
 * within a second even when nobody reads the reservation; a shard that holds nothing is
 * called when this process sees it written to (shard_activity.h), else every ten seconds,
 * so a large idle catalog costs Redis little. It runs on one loop thread of each process,
 * over that thread's pipelined connection; several processes sweeping at once stay correct
 * because each release is one atomic function call that re-checks the hold's state.
 * A sweeper runs until its process exits; nothing stops it.
 */
#ifndef TK_SWEEPER_H
#define TK_SWEEPER_H

#include "engine/catalog.h"
#include "engine/redis_conn.h"

#include <h2o.h>

typedef struct st_tk_sweeper_t tk_sweeper_t;

/* released holds are also added to *expired_counter (a metrics counter of the thread) */
tk_sweeper_t *tk_sweeper_start(h2o_loop_t *loop, tk_redis_t *redis, tk_catalog_cache_t *catalog, uint64_t *expired_counter);

#endif
