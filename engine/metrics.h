/*
 * Prometheus metrics of the engine. Each loop thread owns a tk_metrics_t that only it writes
 * (relaxed atomic increments, no locks, no shared cache lines between threads); a scrape
 * sums every registered block. Process-wide gauges (outbox depth, persistence lag, config
 * warnings) are single atomics set by the thread that knows them. Other layers add their
 * own sections to the scrape (tk_metrics_add_section): HTTP requests by route and status
 * are counted in http/http_metrics.c, not here.
 */
#ifndef TK_METRICS_H
#define TK_METRICS_H

#include <stddef.h>
#include <stdint.h>

#define TK_METRICS_MAX_THREADS 256
#define TK_METRICS_MAX_SECTIONS 8

typedef struct st_tk_metrics_t {
    uint64_t holds_created, holds_cancelled, holds_expired, payments_completed, payments_failed, soldout_fast_path;
    uint64_t overload_refusals;
    uint64_t wr_joins, wr_polls, wr_admissions, wr_refusals; /* waiting room */
    uint64_t fairuse_refusals;                               /* holds refused with 429 (engine/fairuse.h) */
    /* read from the thread's Redis connection on scrape */
    const struct st_tk_redis_t *redis;
    const struct st_tk_reserve_batcher_t *reserve_batch;
} __attribute__((aligned(64))) tk_metrics_t;

typedef enum en_tk_config_warning_t { TK_WARN_REDIS_AOF = 0, TK_WARN_PG_DURABILITY, TK_WARN__COUNT } tk_config_warning_t;

void tk_metrics_register(tk_metrics_t *m);
void tk_metrics_inc(uint64_t *counter);

/* process-wide gauges */
void tk_metrics_set_config_warning(tk_config_warning_t which, int on);
void tk_metrics_set_outbox(int64_t depth, int64_t lag_ms);
/* the persistence writers' counters, summed over the writer threads and pushed whenever they change */
typedef struct st_tk_writer_counts_t {
    uint64_t batches, records, failures, dead_letters;
    uint64_t ack_calls;    /* tk_persisted calls: one per shard of a batch */
    uint64_t unreplicated; /* rounds a cluster master's entries were kept back: no replica confirmed them */
} tk_writer_counts_t;
void tk_metrics_set_writer(const tk_writer_counts_t *counts);
/* the last outbox depth the writer measured (-1 before the first measurement) */
int64_t tk_metrics_outbox_depth(void);
/* shards whose outbox is at or over TICKETD_OUTBOX_PAUSE (new holds there get 503) */
void tk_metrics_set_paused_shards(int64_t n);
/* Redis' used_memory and maxmemory (0: no limit), as the writer last read them */
void tk_metrics_set_redis_memory(int64_t used, int64_t max);

/* The scrape text being built; sections append to it with tk_metrics_emit. */
typedef struct st_tk_metrics_text_t {
    char *buf;
    size_t len, cap;
} tk_metrics_text_t;

void tk_metrics_emit(tk_metrics_text_t *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* "# HELP name help\n# TYPE name counter\nname value\n" */
void tk_metrics_emit_counter(tk_metrics_text_t *t, const char *name, const char *help, uint64_t value);
/* A section of the scrape owned by another module, rendered before the engine's own
 * counters in the order added. Called at start-up, before any scrape. */
typedef void (*tk_metrics_section_fn)(tk_metrics_text_t *t);
void tk_metrics_add_section(tk_metrics_section_fn fn);

/* Renders the Prometheus text format into a heap buffer (free it); *len gets its length. */
char *tk_metrics_render(size_t *len);

#endif
