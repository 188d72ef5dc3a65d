/*
 * The sweeper sweeps only shards that have work: every tk_expire answers, besides the
 * holds it released, when its shard next has something due (the earliest deadline of
 * its holds, payments and forgettable records), and the sweeper keeps that instant per
 * shard (arrays indexed by the shard's slot). Each tick (100 ms) it sends one pipelined
 * tk_expire to each shard that is due, and waits for all replies before the next tick; a
 * shard that released a full batch is swept again at once, with a batch twice as large
 * (up to 4x): under appendfsync always each call costs Redis an fsync, which a mass
 * expiry should pay per thousands of holds, not per 500.
 *
 * Holds made since a shard's last call (by this process, another one, or a script) are
 * learned by rescanning it: a shard that holds anything is rescanned every RESCAN_MS
 * (since a hold lasts at least one second, its deadline is known before it passes). A
 * shard that holds nothing at all — most of a large catalog — is called again as soon as
 * this process sees something written there (shard_activity.h: its own reservations, and
 * the outbox entries its writers read, which carry every other process's writes), and
 * otherwise only every IDLE_RESCAN_MS, a backstop for writes whose writer and reader
 * both died. So an idle catalog costs Redis a call per shard per ten seconds, not per
 * second. The sweep keeps its own reference to the catalog snapshot it is walking.
 */
#include "engine/sweeper.h"
#include "engine/inventory.h"
#include "engine/log.h"
#include "engine/shard_activity.h"
#include "engine/timefmt.h"

#include <stdio.h>
#include <string.h>

#define SWEEP_TICK_MS 100
#define RESCAN_MS 800          /* + one tick: below the shortest hold (1 s) */
#define SWEEP_BATCH 500        /* holds per call; doubled per full batch in a row, up to: */
#define SWEEP_MAX_GROW 2       /* 2000: a mass expiry pays one AOF fsync per 2000 holds, not per 500 */
#define IDLE_RESCAN_MS 10000   /* a shard with nothing in it that nobody was seen writing to */
#define LEGACY_INTERVAL_MS 250 /* a library without "next": every shard this often, as before */

typedef struct st_tk_sweep_call_t {
    struct st_tk_sweeper_t *sweeper;
    uint32_t slot;
    int batch;
} tk_sweep_call_t;

struct st_tk_sweeper_t {
    h2o_loop_t *loop;
    tk_redis_t *redis;
    tk_catalog_cache_t *catalog;
    tk_catalog_t *walking;  /* retained for the sweep in progress */
    tk_sweep_call_t *calls; /* one per shard of walking, for the sweep in progress */
    size_t outstanding;
    int full_batch;      /* some shard had more to release */
    int64_t *next_check; /* per shard slot: tk_time_mono_ms at which to call it next; 0: at once */
    int64_t *called_ms;  /* per shard slot: tk_time_mono_ms when the last call was sent */
    uint8_t *empty;      /* per shard slot: the last call found nothing in the shard */
    uint8_t *grow;       /* per shard slot: the batch is SWEEP_BATCH << grow */
    uint64_t *expired_counter;
    h2o_timeout_t interval;
    h2o_timeout_entry_t tick;
};

static void sweep(tk_sweeper_t *s);

static void on_sweep_done(tk_sweeper_t *s)
{
    tk_catalog_release(s->walking);
    s->walking = NULL;
    free(s->calls);
    s->calls = NULL;
    if (s->full_batch)
        sweep(s);
    else
        h2o_timeout_link(s->loop, &s->interval, &s->tick);
}

/* Reply {released, next_ms}: when to call the shard again. A bare integer is a library
 * from before "next" (a rolling upgrade): the shard is then called at the old cadence. */
static void on_expired(redisReply *reply, void *data)
{
    tk_sweep_call_t *call = data;
    tk_sweeper_t *s = call->sweeper;
    /* next_check is kept on the monotonic clock, so a wall clock that steps back (NTP, a
     * resumed VM) cannot put the sweeps off; Redis's deadlines are wall-clock instants,
     * turned into a delay from now */
    int64_t now = tk_time_mono_ms(), wall = tk_time_now_ms();
    int64_t next = now + SWEEP_TICK_MS; /* no answer: try again next tick */
    long long released = -1, due = -1;
    if (reply != NULL && reply->type == REDIS_REPLY_ARRAY && reply->elements == 2 &&
        reply->element[0]->type == REDIS_REPLY_INTEGER && reply->element[1]->type == REDIS_REPLY_INTEGER) {
        released = reply->element[0]->integer, due = reply->element[1]->integer;
        next = now + RESCAN_MS;
    } else if (reply != NULL && reply->type == REDIS_REPLY_INTEGER) {
        released = reply->integer;
        next = now + LEGACY_INTERVAL_MS;
    } else if (reply != NULL && reply->type == REDIS_REPLY_ERROR) {
        tk_log_error("sweeper", "tk_expire failed: %s", reply->str);
        next = now + RESCAN_MS;
    }
    if (released > 0) {
        __atomic_fetch_add(s->expired_counter, (uint64_t)released, __ATOMIC_RELAXED);
        tk_shard_touch_slot((int)call->slot); /* the releases are in its outbox */
    }
    s->empty[call->slot] = released >= 0 && released < call->batch && due < 0 && reply->type == REDIS_REPLY_ARRAY;
    if (s->empty[call->slot])
        next = now + IDLE_RESCAN_MS;
    if (released >= call->batch) {
        next = 0;
        s->full_batch = 1;
        if (s->grow[call->slot] < SWEEP_MAX_GROW)
            ++s->grow[call->slot];
    } else if (due >= 0 && due - wall < next - now) {
        /* due before the rescan: called then (at the next tick when it is due by our clock
         * already but was not by Redis's) */
        next = due > wall ? now + (due - wall) : now + SWEEP_TICK_MS;
    }
    if (next != 0)
        s->grow[call->slot] = 0;
    s->next_check[call->slot] = next;
    if (--s->outstanding == 0)
        on_sweep_done(s);
}

/* FCALL tk_expire <keys of shard> <batch> next */
static int send_expire(tk_sweeper_t *s, const char *shard, tk_sweep_call_t *call)
{
    char batch[16];
    int batch_len = snprintf(batch, sizeof(batch), "%d", call->batch);
    tk_shard_keys_t keys;
    const char *argv[TK_FCALL_PREFIX_LEN + 2];
    size_t argvlen[TK_FCALL_PREFIX_LEN + 2];
    tk_shard_keys(shard, &keys);
    int argc = tk_fcall_prefix("tk_expire", &keys, argv, argvlen);
    argv[argc] = batch, argvlen[argc++] = (size_t)batch_len;
    argv[argc] = "next", argvlen[argc++] = 4;
    return tk_redis_command(s->redis, on_expired, call, argc, argv, argvlen);
}

static void sweep(tk_sweeper_t *s)
{
    s->full_batch = 0;
    s->walking = tk_catalog_current(s->catalog);
    if (s->walking != NULL) {
        int64_t mono = tk_time_mono_ms();
        tk_catalog_retain(s->walking);
        s->calls = h2o_mem_alloc(sizeof(*s->calls) * (s->walking->nshards + 1));
        for (size_t i = 0; i < s->walking->nshards; ++i) {
            int slot = tk_shard_slot(s->walking->shards[i]);
            if (slot < 0 || (s->next_check[slot] > mono && !(s->empty[slot] && tk_shard_touched_ms(slot) >= s->called_ms[slot])))
                continue;
            s->called_ms[slot] = mono;
            tk_sweep_call_t *call = s->calls + s->outstanding;
            *call = (tk_sweep_call_t){.sweeper = s, .slot = (uint32_t)slot, .batch = SWEEP_BATCH << s->grow[slot]};
            if (send_expire(s, s->walking->shards[i], call) == 0)
                ++s->outstanding;
        }
    }
    if (s->outstanding == 0)
        on_sweep_done(s);
}

static void on_tick(h2o_timeout_entry_t *entry)
{
    tk_sweeper_t *s = H2O_STRUCT_FROM_MEMBER(tk_sweeper_t, tick, entry);
    sweep(s);
}

static void *zeroed(size_t size)
{
    void *p = h2o_mem_alloc(size);
    memset(p, 0, size);
    return p;
}

tk_sweeper_t *tk_sweeper_start(h2o_loop_t *loop, tk_redis_t *redis, tk_catalog_cache_t *catalog, uint64_t *expired_counter)
{
    tk_sweeper_t *s = h2o_mem_alloc(sizeof(*s));
    *s = (tk_sweeper_t){.loop = loop, .redis = redis, .catalog = catalog, .expired_counter = expired_counter};
    s->next_check = zeroed(sizeof(*s->next_check) * TK_SHARD_SLOTS); /* every shard: at once */
    s->called_ms = zeroed(sizeof(*s->called_ms) * TK_SHARD_SLOTS);
    s->empty = zeroed(TK_SHARD_SLOTS);
    s->grow = zeroed(TK_SHARD_SLOTS);
    h2o_timeout_init(loop, &s->interval, SWEEP_TICK_MS);
    s->tick.cb = on_tick;
    h2o_timeout_link(loop, &s->interval, &s->tick);
    return s;
}
