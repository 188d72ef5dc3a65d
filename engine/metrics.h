/*
 * Prometheus metrics. Each loop thread owns a tk_metrics_t that only it writes (relaxed
 * atomic increments, no locks, no shared cache lines between threads); a scrape sums
 * every registered block. Process-wide gauges (outbox depth, persistence lag, config
 * warnings) are single atomics set by the thread that knows them.
 */
#ifndef TK_METRICS_H
#define TK_METRICS_H

#include <stddef.h>
#include <stdint.h>

#define TK_METRICS_ROUTES 24 /* route slots; the last one counts unmatched paths */
#define TK_METRICS_STATUSES 16
#define TK_METRICS_BUCKETS 12
#define TK_METRICS_MAX_THREADS 256

typedef struct st_tk_metrics_t {
    uint64_t requests[TK_METRICS_ROUTES][TK_METRICS_STATUSES];
    uint64_t latency_buckets[TK_METRICS_ROUTES][TK_METRICS_BUCKETS]; /* cumulative counts are built on scrape */
    uint64_t latency_count[TK_METRICS_ROUTES];
    uint64_t latency_sum_us[TK_METRICS_ROUTES];
    uint64_t holds_created, holds_cancelled, holds_expired, payments_completed, payments_failed, soldout_fast_path;
    uint64_t overload_refusals;
    uint64_t wr_joins, wr_polls, wr_admissions, wr_refusals; /* waiting room */
    uint64_t fairuse_refusals; /* holds refused with 429 (engine/fairuse.h) */
    /* read from the thread's Redis connection on scrape */
    const struct st_tk_redis_t *redis;
} __attribute__((aligned(64))) tk_metrics_t;

typedef enum en_tk_config_warning_t { TK_WARN_REDIS_AOF = 0, TK_WARN_PG_DURABILITY, TK_WARN__COUNT } tk_config_warning_t;

/* names of route slots, set once at start-up by the router: "GET /events/event" */
void tk_metrics_set_route_name(size_t slot, const char *method, const char *path);
void tk_metrics_register(tk_metrics_t *m);
void tk_metrics_inc(uint64_t *counter);
void tk_metrics_observe_request(tk_metrics_t *m, size_t route, int status, uint64_t latency_us);

/* process-wide gauges */
void tk_metrics_set_config_warning(tk_config_warning_t which, int on);
void tk_metrics_set_outbox(int64_t depth, int64_t lag_ms);
/* the persistence writer's counters, pushed by the writer thread whenever they change */
typedef struct st_tk_writer_counts_t {
    uint64_t batches, records, failures, dead_letters;
    uint64_t ack_calls; /* tk_persisted calls: one per shard of a batch */
} tk_writer_counts_t;
void tk_metrics_set_writer(const tk_writer_counts_t *counts);
/* the last outbox depth the writer measured (-1 before the first measurement) */
int64_t tk_metrics_outbox_depth(void);
/* shards whose outbox is at or over TICKETD_OUTBOX_PAUSE (new holds there get 503) */
void tk_metrics_set_paused_shards(int64_t n);
/* Redis' used_memory and maxmemory (0: no limit), as the writer last read them */
void tk_metrics_set_redis_memory(int64_t used, int64_t max);

/* Renders the Prometheus text format into a heap buffer (free it); *len gets its length. */
char *tk_metrics_render(size_t *len);

#endif
