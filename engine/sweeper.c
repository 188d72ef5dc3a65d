/*
 * One sweep sends one tk_expire per shard, pipelined, and waits for all replies
 * before the next tick; a shard that released a full batch is swept again at once.
 * The sweep keeps its own reference to the catalog snapshot it is walking.
 */
#include "engine/sweeper.h"
#include "engine/log.h"
#include "engine/reservation.h"

#define SWEEP_INTERVAL_MS 250
#define SWEEP_BATCH 500

struct st_tk_sweeper_t {
    h2o_loop_t *loop;
    tk_redis_t *redis;
    tk_catalog_cache_t *catalog;
    tk_catalog_t *walking; /* retained for the sweep in progress */
    size_t outstanding;
    int full_batch; /* some shard had more to release */
    uint64_t *expired_counter;
    h2o_timeout_t interval;
    h2o_timeout_entry_t tick;
};

static void sweep(tk_sweeper_t *s);

static void on_sweep_done(tk_sweeper_t *s)
{
    tk_catalog_release(s->walking);
    s->walking = NULL;
    if (s->full_batch)
        sweep(s);
    else
        h2o_timeout_link(s->loop, &s->interval, &s->tick);
}

static void on_expired(redisReply *reply, void *data)
{
    tk_sweeper_t *s = data;
    if (reply != NULL && reply->type == REDIS_REPLY_INTEGER) {
        __atomic_fetch_add(s->expired_counter, (uint64_t)reply->integer, __ATOMIC_RELAXED);
        s->full_batch |= reply->integer >= SWEEP_BATCH;
    } else if (reply != NULL && reply->type == REDIS_REPLY_ERROR) {
        tk_log_error("sweeper", "tk_expire failed: %s", reply->str);
    }
    if (--s->outstanding == 0)
        on_sweep_done(s);
}

static void sweep(tk_sweeper_t *s)
{
    s->full_batch = 0;
    s->walking = tk_catalog_current(s->catalog);
    if (s->walking != NULL) {
        tk_catalog_retain(s->walking);
        for (size_t i = 0; i < s->walking->nshards; ++i)
            if (tk_reservation_expire(s->redis, s->walking->shards[i], SWEEP_BATCH, on_expired, s) == 0)
                ++s->outstanding;
    }
    if (s->outstanding == 0)
        on_sweep_done(s);
}

static void on_tick(h2o_timeout_entry_t *entry)
{
    tk_sweeper_t *s = H2O_STRUCT_FROM_MEMBER(tk_sweeper_t, tick, entry);
    sweep(s);
}

tk_sweeper_t *tk_sweeper_start(h2o_loop_t *loop, tk_redis_t *redis, tk_catalog_cache_t *catalog, uint64_t *expired_counter)
{
    tk_sweeper_t *s = h2o_mem_alloc(sizeof(*s));
    *s = (tk_sweeper_t){.loop = loop, .redis = redis, .catalog = catalog, .expired_counter = expired_counter};
    h2o_timeout_init(loop, &s->interval, SWEEP_INTERVAL_MS);
    s->tick.cb = on_tick;
    h2o_timeout_link(loop, &s->interval, &s->tick);
    return s;
}
