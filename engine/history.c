/*
 * The sales-history sampler and the decoder of the demand figures. Each tick sends one
 * FCALL tk_sample per upcoming event (the soonest MAX_EVENTS of them) whose shard this
 * process saw written to since it last sampled it (shard_activity.h), and to every other
 * upcoming event once per IDLE_SAMPLE_MS, pipelined on the loop's connection; it waits
 * for every reply before arming the next tick, so a slow Redis never piles samples up.
 * Whether a sample is due is decided inside Redis, by time bucket, so processes sampling
 * side by side add one sample per step between them. An event nobody buys from therefore
 * has a sample a minute, not one per step: its chart reads rates over the time between
 * samples, which is the same zero, and an idle catalog costs Redis little.
 */
#include "engine/history.h"
#include "engine/inventory.h"
#include "engine/log.h"
#include "engine/shard_activity.h"
#include "engine/timefmt.h"

#include <stdio.h>
#include <string.h>

#define MAX_EVENTS 256       /* events sampled per tick, soonest first */
#define IDLE_SAMPLE_MS 60000 /* an event whose shard nobody was seen writing to */
#define SAMPLE_FIELDS 6
#define DEMAND_HEADER 4 /* away, failed, soldout_ms, nsamples */
#define STATS_HEADER 9  /* tk_stats: the totals, then 5 entries per type */
#define STATS_PER_TYPE 5

struct st_tk_history_t {
    h2o_loop_t *loop;
    tk_redis_t *redis;
    tk_catalog_cache_t *catalog;
    size_t outstanding;
    int64_t *sampled_ms; /* per shard slot: tk_time_mono_ms of the last sample sent */
    h2o_timeout_t interval;
    h2o_timeout_entry_t tick;
};

static void on_sampled(redisReply *reply, void *data)
{
    tk_history_t *h = data;
    if (reply != NULL && reply->type == REDIS_REPLY_ERROR)
        tk_log_error("history", "tk_sample failed: %s", reply->str);
    if (--h->outstanding == 0)
        h2o_timeout_link(h->loop, &h->interval, &h->tick);
}

static int send_sample(tk_history_t *h, const tk_event_t *ev)
{
    static const char step[] = H2O_TO_STR(TK_HISTORY_STEP_MS), max[] = H2O_TO_STR(TK_HISTORY_SAMPLES);
    tk_shard_keys_t keys;
    const char *argv[TK_FCALL_PREFIX_LEN + 3];
    size_t argvlen[TK_FCALL_PREFIX_LEN + 3];
    tk_shard_keys(ev->id, &keys);
    int argc = tk_fcall_prefix("tk_sample", &keys, argv, argvlen);
    argv[argc] = ev->id, argvlen[argc++] = TK_UUID_LEN;
    argv[argc] = step, argvlen[argc++] = sizeof(step) - 1;
    argv[argc] = max, argvlen[argc++] = sizeof(max) - 1;
    return tk_redis_command(h->redis, on_sampled, h, argc, argv, argvlen);
}

/* whether the events of the shard slot are sampled this tick (at mono): never sampled,
 * already chosen this tick (another event of the shard), written to since, or idle long */
static int sample_due(const tk_history_t *h, int slot, int64_t mono)
{
    if (slot < 0)
        return 1;
    int64_t last = h->sampled_ms[slot];
    return last == 0 || last == mono || tk_shard_touched_ms(slot) >= last || mono - last >= IDLE_SAMPLE_MS;
}

static void on_tick(h2o_timeout_entry_t *entry)
{
    tk_history_t *h = H2O_STRUCT_FROM_MEMBER(tk_history_t, tick, entry);
    tk_catalog_t *c = tk_catalog_current(h->catalog);
    /* outstanding starts at 1 so that no reply re-arms the tick before the loop ends */
    h->outstanding = 1;
    if (c != NULL) {
        size_t first = tk_catalog_first_upcoming(c, tk_time_now_ms());
        int64_t mono = tk_time_mono_ms();
        for (size_t i = first; i < c->nevents && i - first < MAX_EVENTS; ++i) {
            int slot = tk_shard_slot(c->events[i].id);
            if (!sample_due(h, slot, mono))
                continue;
            if (slot >= 0)
                h->sampled_ms[slot] = mono;
            if (send_sample(h, c->events + i) == 0)
                ++h->outstanding;
        }
    }
    on_sampled(NULL, h);
}

tk_history_t *tk_history_start(h2o_loop_t *loop, tk_redis_t *redis, tk_catalog_cache_t *catalog)
{
    tk_history_t *h = h2o_mem_alloc(sizeof(*h));
    *h = (tk_history_t){.loop = loop, .redis = redis, .catalog = catalog};
    h->sampled_ms = h2o_mem_alloc(sizeof(*h->sampled_ms) * TK_SHARD_SLOTS);
    memset(h->sampled_ms, 0, sizeof(*h->sampled_ms) * TK_SHARD_SLOTS);
    h2o_timeout_init(loop, &h->interval, TK_HISTORY_STEP_MS);
    h->tick.cb = on_tick;
    h2o_timeout_link(loop, &h->interval, &h->tick);
    return h;
}

int tk_history_stats(tk_redis_t *r, const tk_event_t *ev, tk_redis_cb cb, void *data)
{
    tk_shard_keys_t keys;
    const char *argv[TK_FCALL_PREFIX_LEN + 2];
    size_t argvlen[TK_FCALL_PREFIX_LEN + 2];
    tk_shard_keys(ev->id, &keys);
    int argc = tk_fcall_prefix("tk_stats", &keys, argv, argvlen);
    argv[argc] = ev->id, argvlen[argc++] = TK_UUID_LEN;
    argv[argc] = "demand", argvlen[argc++] = 6;
    return tk_redis_command(r, cb, data, argc, argv, argvlen);
}

int tk_history_parse(const redisReply *reply, size_t ntypes, h2o_mem_pool_t *pool, tk_demand_t *out)
{
    size_t first = STATS_HEADER + STATS_PER_TYPE * ntypes;
    memset(out, 0, sizeof(*out));
    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY)
        return -1;
    if (reply->elements == first)
        return 0;
    if (reply->elements < first + DEMAND_HEADER)
        return -1;
    for (size_t i = first; i < reply->elements; ++i)
        if (reply->element[i]->type != REDIS_REPLY_INTEGER)
            return -1;
    redisReply **e = reply->element + first;
    int64_t n = e[3]->integer;
    if (n < 0 || n > TK_HISTORY_SAMPLES * 2 || reply->elements != first + DEMAND_HEADER + (size_t)n * SAMPLE_FIELDS)
        return -1;
    out->turned_away = e[0]->integer;
    out->payments_failed = e[1]->integer;
    out->sold_out_ms = e[2]->integer;
    out->nsamples = (size_t)n;
    out->samples = h2o_mem_alloc_pool(pool, sizeof(*out->samples) * (out->nsamples + 1));
    for (size_t i = 0; i < out->nsamples; ++i) {
        redisReply **s = e + DEMAND_HEADER + i * SAMPLE_FIELDS;
        out->samples[i] =
            (tk_history_sample_t){s[0]->integer, s[1]->integer, s[2]->integer, s[3]->integer, s[4]->integer, s[5]->integer};
    }
    return 0;
}
