/*
 * Metric storage and the text exposition format: the engine's per-thread counters, its
 * process-wide gauges, and the registry of sections other modules add to a scrape.
 */
#include "engine/metrics.h"
#include "engine/catalog.h"
#include "engine/redis_conn.h"
#include "engine/reserve_batch.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const warning_names[TK_WARN__COUNT] = {"redis_aof", "postgres_durability"};

static pthread_mutex_t registry_mutex = PTHREAD_MUTEX_INITIALIZER;
static tk_metrics_t *registry[TK_METRICS_MAX_THREADS];
static size_t registered;
static tk_metrics_section_fn sections[TK_METRICS_MAX_SECTIONS];
static size_t nsections;
static int config_warnings[TK_WARN__COUNT];
static int64_t outbox_depth = -1, outbox_lag_ms = -1, paused_shards = -1, redis_used = -1, redis_max = -1;
static tk_writer_counts_t writer_counts;

void tk_metrics_add_section(tk_metrics_section_fn fn)
{
    pthread_mutex_lock(&registry_mutex);
    if (nsections < TK_METRICS_MAX_SECTIONS)
        sections[nsections++] = fn;
    pthread_mutex_unlock(&registry_mutex);
}

void tk_metrics_register(tk_metrics_t *m)
{
    pthread_mutex_lock(&registry_mutex);
    if (registered < TK_METRICS_MAX_THREADS)
        registry[registered++] = m;
    pthread_mutex_unlock(&registry_mutex);
}

void tk_metrics_inc(uint64_t *counter)
{
    __atomic_fetch_add(counter, 1, __ATOMIC_RELAXED);
}

void tk_metrics_set_config_warning(tk_config_warning_t which, int on)
{
    __atomic_store_n(&config_warnings[which], on, __ATOMIC_RELAXED);
}

void tk_metrics_set_outbox(int64_t depth, int64_t lag_ms)
{
    __atomic_store_n(&outbox_depth, depth, __ATOMIC_RELAXED);
    __atomic_store_n(&outbox_lag_ms, lag_ms, __ATOMIC_RELAXED);
}

void tk_metrics_set_writer(const tk_writer_counts_t *counts)
{
    __atomic_store_n(&writer_counts.batches, counts->batches, __ATOMIC_RELAXED);
    __atomic_store_n(&writer_counts.records, counts->records, __ATOMIC_RELAXED);
    __atomic_store_n(&writer_counts.failures, counts->failures, __ATOMIC_RELAXED);
    __atomic_store_n(&writer_counts.dead_letters, counts->dead_letters, __ATOMIC_RELAXED);
    __atomic_store_n(&writer_counts.ack_calls, counts->ack_calls, __ATOMIC_RELAXED);
    __atomic_store_n(&writer_counts.unreplicated, counts->unreplicated, __ATOMIC_RELAXED);
}

int64_t tk_metrics_outbox_depth(void)
{
    return __atomic_load_n(&outbox_depth, __ATOMIC_RELAXED);
}

void tk_metrics_set_paused_shards(int64_t n)
{
    __atomic_store_n(&paused_shards, n, __ATOMIC_RELAXED);
}

void tk_metrics_set_redis_memory(int64_t used, int64_t max)
{
    __atomic_store_n(&redis_used, used, __ATOMIC_RELAXED);
    __atomic_store_n(&redis_max, max, __ATOMIC_RELAXED);
}

void tk_metrics_emit(tk_metrics_text_t *t, const char *fmt, ...)
{
    for (;;) {
        va_list args;
        va_start(args, fmt);
        int n = vsnprintf(t->buf + t->len, t->cap - t->len, fmt, args);
        va_end(args);
        if (n >= 0 && (size_t)n < t->cap - t->len) {
            t->len += (size_t)n;
            return;
        }
        t->cap *= 2;
        t->buf = h2o_mem_realloc(t->buf, t->cap);
    }
}

static uint64_t load(const uint64_t *p)
{
    return __atomic_load_n(p, __ATOMIC_RELAXED);
}

/* sum of one counter over every registered thread */
#define SUM(expr)                                                                                                                  \
    ({                                                                                                                             \
        uint64_t sum_ = 0;                                                                                                         \
        for (size_t t_ = 0; t_ < n; ++t_) {                                                                                        \
            const tk_metrics_t *m = threads[t_];                                                                                   \
            sum_ += load(&(expr));                                                                                                 \
        }                                                                                                                          \
        sum_;                                                                                                                      \
    })

void tk_metrics_emit_counter(tk_metrics_text_t *t, const char *name, const char *help, uint64_t value)
{
    tk_metrics_emit(t, "# HELP %s %s\n# TYPE %s counter\n%s %" PRIu64 "\n", name, help, name, name, value);
}

char *tk_metrics_render(size_t *len)
{
    tk_metrics_text_t text = {.buf = h2o_mem_alloc(16384), .cap = 16384}, *t = &text;
    pthread_mutex_lock(&registry_mutex);
    size_t n = registered;
    tk_metrics_t *threads[TK_METRICS_MAX_THREADS];
    memcpy(threads, registry, sizeof(*threads) * n);

    tk_metrics_section_fn added[TK_METRICS_MAX_SECTIONS];
    size_t nadded = nsections;
    memcpy(added, sections, sizeof(*added) * nadded);
    pthread_mutex_unlock(&registry_mutex);
    for (size_t i = 0; i < nadded; ++i)
        added[i](t);

    tk_metrics_emit_counter(t, "ticketd_holds_created_total", "Reservations held.", SUM(m->holds_created));
    tk_metrics_emit_counter(t, "ticketd_holds_cancelled_total", "Holds cancelled by their owner.", SUM(m->holds_cancelled));
    tk_metrics_emit_counter(t, "ticketd_holds_expired_total", "Holds released by this process's sweeper.", SUM(m->holds_expired));
    tk_metrics_emit_counter(t, "ticketd_holds_completed_total", "Holds paid for.", SUM(m->payments_completed));
    tk_metrics_emit_counter(t, "ticketd_payments_failed_total", "Payments declined or failed.", SUM(m->payments_failed));
    tk_metrics_emit_counter(t, "ticketd_soldout_fast_path_total", "Sold-out answers given without a Redis round trip.",
                            SUM(m->soldout_fast_path));
    tk_metrics_emit_counter(t, "ticketd_overload_refusals_total",
                            "Writes refused with 503 because a queue was full or the server draining.", SUM(m->overload_refusals));
    tk_metrics_emit_counter(t, "ticketd_fairuse_refusals_total", "Holds refused with 429: the client was over a fair-use limit.",
                            SUM(m->fairuse_refusals));

    tk_metrics_emit_counter(t, "ticketd_waitroom_joins_total", "Waiting-room joins answered.", SUM(m->wr_joins));
    tk_metrics_emit_counter(t, "ticketd_waitroom_polls_total", "Waiting-room polls (answered without Redis).", SUM(m->wr_polls));
    tk_metrics_emit_counter(t, "ticketd_waitroom_admissions_total", "Join and poll answers that carried an admission.",
                            SUM(m->wr_admissions));
    tk_metrics_emit_counter(t, "ticketd_waitroom_refusals_total",
                            "Reservations refused for a missing, forged, expired or used admission.", SUM(m->wr_refusals));

    uint64_t round_trips = 0, depth = 0, redirects = 0, refreshes = 0, batches = 0, grouped = 0;
    for (size_t i = 0; i < n; ++i) {
        if (threads[i]->reserve_batch != NULL) {
            batches += tk_reserve_batcher_batches(threads[i]->reserve_batch);
            grouped += tk_reserve_batcher_grouped(threads[i]->reserve_batch);
        }
        if (threads[i]->redis != NULL) {
            round_trips += tk_redis_round_trips(threads[i]->redis);
            depth += tk_redis_in_flight(threads[i]->redis);
            redirects += tk_redis_redirects(threads[i]->redis);
            refreshes += tk_redis_map_refreshes(threads[i]->redis);
        }
    }
    tk_metrics_emit_counter(t, "ticketd_reserve_batches_total",
                            "Group commits: tk_reserve_batch calls that carried two or more hold requests.", batches);
    tk_metrics_emit_counter(t, "ticketd_reserve_batched_total", "Hold requests sent in group commits of two or more.", grouped);
    tk_metrics_emit_counter(t, "ticketd_redis_redirects_total", "Redis Cluster MOVED and ASK replies followed by the loop threads.",
                            redirects);
    tk_metrics_emit_counter(t, "ticketd_redis_slot_map_refreshes_total", "Redis Cluster slot maps read by the loop threads.",
                            refreshes);
    tk_metrics_emit_counter(t, "ticketd_redis_commands_total", "Commands sent on the loop threads' pipelined Redis connections.",
                            round_trips);
    tk_metrics_emit(t,
                    "# HELP ticketd_redis_pipeline_depth Commands in flight on the loop threads' Redis connections.\n"
                    "# TYPE ticketd_redis_pipeline_depth gauge\nticketd_redis_pipeline_depth %" PRIu64 "\n",
                    depth);

    tk_writer_counts_t ws = {.batches = load(&writer_counts.batches),
                             .records = load(&writer_counts.records),
                             .failures = load(&writer_counts.failures),
                             .dead_letters = load(&writer_counts.dead_letters),
                             .ack_calls = load(&writer_counts.ack_calls),
                             .unreplicated = load(&writer_counts.unreplicated)};
    tk_metrics_emit_counter(t, "ticketd_writer_batches_total", "Outbox batches committed to PostgreSQL.", ws.batches);
    tk_metrics_emit_counter(t, "ticketd_writer_records_total", "Outbox records committed to PostgreSQL.", ws.records);
    tk_metrics_emit_counter(t, "ticketd_writer_failures_total", "Outbox batches that failed and were retried.", ws.failures);
    tk_metrics_emit_counter(t, "ticketd_writer_ack_calls_total", "tk_persisted calls (one per shard of a committed batch).",
                            ws.ack_calls);
    tk_metrics_emit_counter(t, "ticketd_writer_dead_letters_total", "Outbox entries PostgreSQL refused, moved to tk:{s}:dead.",
                            ws.dead_letters);
    tk_metrics_emit_counter(t, "ticketd_writer_unreplicated_total",
                            "Times a Redis Cluster master's outbox entries were kept out of PostgreSQL for a round: no replica "
                            "confirmed them within the WAIT.",
                            ws.unreplicated);
    int64_t ob_depth = __atomic_load_n(&outbox_depth, __ATOMIC_RELAXED), lag = __atomic_load_n(&outbox_lag_ms, __ATOMIC_RELAXED);
    if (ob_depth >= 0) {
        tk_metrics_emit(t,
                        "# HELP ticketd_outbox_depth Outbox entries not yet persisted, over every shard.\n"
                        "# TYPE ticketd_outbox_depth gauge\nticketd_outbox_depth %" PRId64 "\n",
                        ob_depth);
        tk_metrics_emit(t,
                        "# HELP ticketd_persistence_lag_seconds Age of the oldest outbox entry not yet persisted.\n"
                        "# TYPE ticketd_persistence_lag_seconds gauge\nticketd_persistence_lag_seconds %.3f\n",
                        (double)lag / 1000.0);
    }
    int64_t paused = __atomic_load_n(&paused_shards, __ATOMIC_RELAXED);
    if (paused >= 0)
        tk_metrics_emit(
            t,
            "# HELP ticketd_paused_shards Shards whose unpersisted outbox is at TICKETD_OUTBOX_PAUSE: their new holds get 503.\n"
            "# TYPE ticketd_paused_shards gauge\nticketd_paused_shards %" PRId64 "\n",
            paused);
    int64_t used = __atomic_load_n(&redis_used, __ATOMIC_RELAXED), max = __atomic_load_n(&redis_max, __ATOMIC_RELAXED);
    if (used >= 0)
        tk_metrics_emit(t,
                        "# HELP ticketd_redis_memory_used_bytes Redis used_memory.\n# TYPE ticketd_redis_memory_used_bytes gauge\n"
                        "ticketd_redis_memory_used_bytes %" PRId64 "\n",
                        used);
    if (max >= 0)
        tk_metrics_emit(
            t,
            "# HELP ticketd_redis_maxmemory_bytes Redis maxmemory (0: none; at the limit Redis refuses writes and holds get 503).\n"
            "# TYPE ticketd_redis_maxmemory_bytes gauge\nticketd_redis_maxmemory_bytes %" PRId64 "\n",
            max);
    tk_metrics_emit(t, "# HELP ticketd_config_warning 1 when a production durability check warns.\n"
                       "# TYPE ticketd_config_warning gauge\n");
    for (int i = 0; i < TK_WARN__COUNT; ++i)
        tk_metrics_emit(t, "ticketd_config_warning{check=\"%s\"} %d\n", warning_names[i],
                        __atomic_load_n(&config_warnings[i], __ATOMIC_RELAXED));
    tk_metrics_emit(t,
                    "# HELP ticketd_catalog_version Catalog version this process serves.\n# TYPE ticketd_catalog_version gauge\n"
                    "ticketd_catalog_version %" PRIu64 "\n",
                    tk_catalog_current_version());
    *len = text.len;
    return text.buf;
}
