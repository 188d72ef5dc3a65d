/*
 * Metric storage and the text exposition format. Latency buckets are per route; the
 * scrape turns them into Prometheus' cumulative _bucket series.
 */
#include "engine/metrics.h"
#include "engine/catalog.h"
#include "engine/redis_conn.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const int status_codes[TK_METRICS_STATUSES] = {
    200, 201, 202, 400, 401, 403, 404, 405, 409, 413, 415, 429, 500, 503, 0 /* other 4xx/5xx */, -1};
static const double bucket_bounds[TK_METRICS_BUCKETS] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5};
static const char *const warning_names[TK_WARN__COUNT] = {"redis_aof", "postgres_durability"};

static pthread_mutex_t registry_mutex = PTHREAD_MUTEX_INITIALIZER;
static tk_metrics_t *registry[TK_METRICS_MAX_THREADS];
static size_t registered;
static char route_names[TK_METRICS_ROUTES][64];
static int config_warnings[TK_WARN__COUNT];
static int64_t outbox_depth = -1, outbox_lag_ms = -1, paused_shards = -1, redis_used = -1, redis_max = -1;
static tk_writer_counts_t writer_counts;

void tk_metrics_set_route_name(size_t slot, const char *method, const char *path)
{
    if (slot < TK_METRICS_ROUTES)
        snprintf(route_names[slot], sizeof(route_names[slot]), "%s %s", method, path);
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

static size_t status_slot(int status)
{
    for (size_t i = 0; i + 2 < TK_METRICS_STATUSES; ++i)
        if (status_codes[i] == status)
            return i;
    return TK_METRICS_STATUSES - 2;
}

void tk_metrics_observe_request(tk_metrics_t *m, size_t route, int status, uint64_t latency_us)
{
    if (route >= TK_METRICS_ROUTES)
        route = TK_METRICS_ROUTES - 1;
    tk_metrics_inc(&m->requests[route][status_slot(status)]);
    size_t b = 0;
    while (b < TK_METRICS_BUCKETS && (double)latency_us / 1e6 > bucket_bounds[b])
        ++b;
    if (b < TK_METRICS_BUCKETS)
        tk_metrics_inc(&m->latency_buckets[route][b]);
    tk_metrics_inc(&m->latency_count[route]);
    __atomic_fetch_add(&m->latency_sum_us[route], latency_us, __ATOMIC_RELAXED);
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

typedef struct st_tk_text_t {
    char *buf;
    size_t len, cap;
} tk_text_t;

static void emit(tk_text_t *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void emit(tk_text_t *t, const char *fmt, ...)
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

static void emit_counter(tk_text_t *t, const char *name, const char *help, uint64_t value)
{
    emit(t, "# HELP %s %s\n# TYPE %s counter\n%s %" PRIu64 "\n", name, help, name, name, value);
}

/* route label parts of a slot name "METHOD /path" */
static void route_labels(size_t r, char *method, size_t msize, char *path, size_t psize)
{
    const char *name = r == TK_METRICS_ROUTES - 1 ? "- (unmatched)" : route_names[r];
    const char *sp = strchr(name, ' ');
    snprintf(method, msize, "%.*s", sp != NULL ? (int)(sp - name) : 0, name);
    snprintf(path, psize, "%s", sp != NULL ? sp + 1 : name);
}

char *tk_metrics_render(size_t *len)
{
    tk_text_t text = {.buf = h2o_mem_alloc(16384), .cap = 16384}, *t = &text;
    pthread_mutex_lock(&registry_mutex);
    size_t n = registered;
    tk_metrics_t *threads[TK_METRICS_MAX_THREADS];
    memcpy(threads, registry, sizeof(*threads) * n);
    pthread_mutex_unlock(&registry_mutex);

    emit(t, "# HELP ticketd_http_requests_total HTTP requests answered, by route and status.\n"
            "# TYPE ticketd_http_requests_total counter\n");
    for (size_t r = 0; r < TK_METRICS_ROUTES; ++r) {
        if (r != TK_METRICS_ROUTES - 1 && route_names[r][0] == '\0')
            continue;
        char method[16], path[48];
        route_labels(r, method, sizeof(method), path, sizeof(path));
        for (size_t s = 0; s + 1 < TK_METRICS_STATUSES; ++s) {
            uint64_t v = SUM(m->requests[r][s]);
            if (v == 0)
                continue;
            char code[8];
            snprintf(code, sizeof(code), status_codes[s] == 0 ? "other" : "%d", status_codes[s]);
            emit(t, "ticketd_http_requests_total{method=\"%s\",route=\"%s\",status=\"%s\"} %" PRIu64 "\n", method, path, code, v);
        }
    }
    emit(t, "# HELP ticketd_http_request_duration_seconds Time from request start to response, by route.\n"
            "# TYPE ticketd_http_request_duration_seconds histogram\n");
    for (size_t r = 0; r < TK_METRICS_ROUTES; ++r) {
        uint64_t count = SUM(m->latency_count[r]);
        if (count == 0)
            continue;
        char method[16], path[48];
        route_labels(r, method, sizeof(method), path, sizeof(path));
        uint64_t cumulative = 0;
        for (size_t b = 0; b < TK_METRICS_BUCKETS; ++b) {
            cumulative += SUM(m->latency_buckets[r][b]);
            emit(t, "ticketd_http_request_duration_seconds_bucket{method=\"%s\",route=\"%s\",le=\"%g\"} %" PRIu64 "\n", method,
                 path, bucket_bounds[b], cumulative);
        }
        emit(t, "ticketd_http_request_duration_seconds_bucket{method=\"%s\",route=\"%s\",le=\"+Inf\"} %" PRIu64 "\n", method, path,
             count);
        emit(t, "ticketd_http_request_duration_seconds_sum{method=\"%s\",route=\"%s\"} %.6f\n", method, path,
             (double)SUM(m->latency_sum_us[r]) / 1e6);
        emit(t, "ticketd_http_request_duration_seconds_count{method=\"%s\",route=\"%s\"} %" PRIu64 "\n", method, path, count);
    }

    emit_counter(t, "ticketd_holds_created_total", "Reservations held.", SUM(m->holds_created));
    emit_counter(t, "ticketd_holds_cancelled_total", "Holds cancelled by their owner.", SUM(m->holds_cancelled));
    emit_counter(t, "ticketd_holds_expired_total", "Holds released by this process's sweeper.", SUM(m->holds_expired));
    emit_counter(t, "ticketd_holds_completed_total", "Holds paid for.", SUM(m->payments_completed));
    emit_counter(t, "ticketd_payments_failed_total", "Payments declined or failed.", SUM(m->payments_failed));
    emit_counter(t, "ticketd_soldout_fast_path_total", "Sold-out answers given without a Redis round trip.",
                 SUM(m->soldout_fast_path));
    emit_counter(t, "ticketd_overload_refusals_total", "Writes refused with 503 because a queue was full or the server draining.",
                 SUM(m->overload_refusals));
    emit_counter(t, "ticketd_fairuse_refusals_total", "Holds refused with 429: the client was over a fair-use limit.",
                 SUM(m->fairuse_refusals));

    emit_counter(t, "ticketd_waitroom_joins_total", "Waiting-room joins answered.", SUM(m->wr_joins));
    emit_counter(t, "ticketd_waitroom_polls_total", "Waiting-room polls (answered without Redis).", SUM(m->wr_polls));
    emit_counter(t, "ticketd_waitroom_admissions_total", "Join and poll answers that carried an admission.", SUM(m->wr_admissions));
    emit_counter(t, "ticketd_waitroom_refusals_total", "Reservations refused for a missing, forged, expired or used admission.",
                 SUM(m->wr_refusals));

    uint64_t round_trips = 0, depth = 0;
    for (size_t i = 0; i < n; ++i) {
        if (threads[i]->redis != NULL) {
            round_trips += tk_redis_round_trips(threads[i]->redis);
            depth += tk_redis_in_flight(threads[i]->redis);
        }
    }
    emit_counter(t, "ticketd_redis_commands_total", "Commands sent on the loop threads' pipelined Redis connections.", round_trips);
    emit(t,
         "# HELP ticketd_redis_pipeline_depth Commands in flight on the loop threads' Redis connections.\n"
         "# TYPE ticketd_redis_pipeline_depth gauge\nticketd_redis_pipeline_depth %" PRIu64 "\n",
         depth);

    tk_writer_counts_t ws = {.batches = load(&writer_counts.batches),
                             .records = load(&writer_counts.records),
                             .failures = load(&writer_counts.failures),
                             .dead_letters = load(&writer_counts.dead_letters),
                             .ack_calls = load(&writer_counts.ack_calls)};
    emit_counter(t, "ticketd_writer_batches_total", "Outbox batches committed to PostgreSQL.", ws.batches);
    emit_counter(t, "ticketd_writer_records_total", "Outbox records committed to PostgreSQL.", ws.records);
    emit_counter(t, "ticketd_writer_failures_total", "Outbox batches that failed and were retried.", ws.failures);
    emit_counter(t, "ticketd_writer_ack_calls_total", "tk_persisted calls (one per shard of a committed batch).", ws.ack_calls);
    emit_counter(t, "ticketd_writer_dead_letters_total", "Outbox entries PostgreSQL refused, moved to tk:{s}:dead.",
                 ws.dead_letters);
    int64_t ob_depth = __atomic_load_n(&outbox_depth, __ATOMIC_RELAXED), lag = __atomic_load_n(&outbox_lag_ms, __ATOMIC_RELAXED);
    if (ob_depth >= 0) {
        emit(t,
             "# HELP ticketd_outbox_depth Outbox entries not yet persisted, over every shard.\n"
             "# TYPE ticketd_outbox_depth gauge\nticketd_outbox_depth %" PRId64 "\n",
             ob_depth);
        emit(t,
             "# HELP ticketd_persistence_lag_seconds Age of the oldest outbox entry not yet persisted.\n"
             "# TYPE ticketd_persistence_lag_seconds gauge\nticketd_persistence_lag_seconds %.3f\n",
             (double)lag / 1000.0);
    }
    int64_t paused = __atomic_load_n(&paused_shards, __ATOMIC_RELAXED);
    if (paused >= 0)
        emit(t,
             "# HELP ticketd_paused_shards Shards whose unpersisted outbox is at TICKETD_OUTBOX_PAUSE: their new holds get 503.\n"
             "# TYPE ticketd_paused_shards gauge\nticketd_paused_shards %" PRId64 "\n",
             paused);
    int64_t used = __atomic_load_n(&redis_used, __ATOMIC_RELAXED), max = __atomic_load_n(&redis_max, __ATOMIC_RELAXED);
    if (used >= 0)
        emit(t,
             "# HELP ticketd_redis_memory_used_bytes Redis used_memory.\n# TYPE ticketd_redis_memory_used_bytes gauge\n"
             "ticketd_redis_memory_used_bytes %" PRId64 "\n",
             used);
    if (max >= 0)
        emit(
            t,
            "# HELP ticketd_redis_maxmemory_bytes Redis maxmemory (0: none; at the limit Redis refuses writes and holds get 503).\n"
            "# TYPE ticketd_redis_maxmemory_bytes gauge\nticketd_redis_maxmemory_bytes %" PRId64 "\n",
            max);
    emit(t, "# HELP ticketd_config_warning 1 when a production durability check warns.\n"
            "# TYPE ticketd_config_warning gauge\n");
    for (int i = 0; i < TK_WARN__COUNT; ++i)
        emit(t, "ticketd_config_warning{check=\"%s\"} %d\n", warning_names[i],
             __atomic_load_n(&config_warnings[i], __ATOMIC_RELAXED));
    emit(t,
         "# HELP ticketd_catalog_version Catalog version this process serves.\n# TYPE ticketd_catalog_version gauge\n"
         "ticketd_catalog_version %" PRIu64 "\n",
         tk_catalog_current_version());
    *len = text.len;
    return text.buf;
}
