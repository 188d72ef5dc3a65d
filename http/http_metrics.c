/*
 * Storage and rendering of the HTTP metrics. A thread's block is allocated (cache-line
 * aligned) the first time that thread answers a request and lives until the process
 * exits; the scrape reads every block with relaxed loads, as engine/metrics.c does.
 */
#include "http/http_metrics.h"
#include "engine/metrics.h"

#include <h2o.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STATUSES 17
#define BUCKETS 12

static const int status_codes[STATUSES] = {200, 201, 202, 400, 401, 403, 404,           405, 409,
                                           413, 415, 422, 429, 500, 503, 0 /* other */, -1};
static const double bucket_bounds[BUCKETS] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5};

typedef struct st_tk_http_counters_t {
    uint64_t requests[TK_HTTP_METRICS_ROUTES][STATUSES];
    uint64_t latency_buckets[TK_HTTP_METRICS_ROUTES][BUCKETS]; /* cumulative counts are built on scrape */
    uint64_t latency_count[TK_HTTP_METRICS_ROUTES];
    uint64_t latency_sum_us[TK_HTTP_METRICS_ROUTES];
} __attribute__((aligned(64))) tk_http_counters_t;

static pthread_mutex_t registry_mutex = PTHREAD_MUTEX_INITIALIZER;
static tk_http_counters_t *registry[TK_METRICS_MAX_THREADS];
static size_t registered;
static __thread tk_http_counters_t *mine;
static char route_names[TK_HTTP_METRICS_ROUTES][64];
static uint64_t connections_open, connections_refused, accept_pauses, log_suppressed;

static void on_render(tk_metrics_text_t *t);

void tk_http_metrics_init(void)
{
    tk_metrics_add_section(on_render);
}

void tk_http_metrics_set_route_name(size_t slot, const char *method, const char *path)
{
    if (slot + 1 < TK_HTTP_METRICS_ROUTES)
        snprintf(route_names[slot], sizeof(route_names[slot]), "%s %s", method, path);
}

static tk_http_counters_t *counters(void)
{
    if (mine != NULL)
        return mine;
    tk_http_counters_t *c = aligned_alloc(64, sizeof(*c));
    if (c == NULL)
        h2o_fatal("no memory");
    memset(c, 0, sizeof(*c));
    pthread_mutex_lock(&registry_mutex);
    if (registered < TK_METRICS_MAX_THREADS)
        registry[registered++] = c;
    pthread_mutex_unlock(&registry_mutex);
    return mine = c;
}

static size_t status_slot(int status)
{
    for (size_t i = 0; i + 2 < STATUSES; ++i)
        if (status_codes[i] == status)
            return i;
    return STATUSES - 2;
}

void tk_http_metrics_observe(size_t slot, int status, uint64_t latency_us)
{
    tk_http_counters_t *m = counters();
    if (slot >= TK_HTTP_METRICS_ROUTES)
        slot = TK_HTTP_METRICS_ROUTES - 1;
    tk_metrics_inc(&m->requests[slot][status_slot(status)]);
    size_t b = 0;
    while (b < BUCKETS && (double)latency_us / 1e6 > bucket_bounds[b])
        ++b;
    if (b < BUCKETS)
        tk_metrics_inc(&m->latency_buckets[slot][b]);
    tk_metrics_inc(&m->latency_count[slot]);
    __atomic_fetch_add(&m->latency_sum_us[slot], latency_us, __ATOMIC_RELAXED);
}

void tk_http_metrics_connection_opened(void)
{
    __atomic_fetch_add(&connections_open, 1, __ATOMIC_RELAXED);
}

void tk_http_metrics_connection_closed(void)
{
    __atomic_fetch_sub(&connections_open, 1, __ATOMIC_RELAXED);
}

size_t tk_http_metrics_connections_open(void)
{
    return (size_t)__atomic_load_n(&connections_open, __ATOMIC_RELAXED);
}

void tk_http_metrics_connection_refused(void)
{
    tk_metrics_inc(&connections_refused);
}

void tk_http_metrics_accept_paused(void)
{
    tk_metrics_inc(&accept_pauses);
}

void tk_http_metrics_log_suppressed(uint64_t lines)
{
    __atomic_fetch_add(&log_suppressed, lines, __ATOMIC_RELAXED);
}

/* route label parts of a slot name "METHOD /path" */
static void route_labels(size_t r, char *method, size_t msize, char *path, size_t psize)
{
    const char *name = r == TK_HTTP_METRICS_ROUTES - 1 ? "- (unmatched)" : route_names[r];
    const char *sp = strchr(name, ' ');
    snprintf(method, msize, "%.*s", sp != NULL ? (int)(sp - name) : 0, name);
    snprintf(path, psize, "%s", sp != NULL ? sp + 1 : name);
}

#define SUM(expr)                                                                                                                  \
    ({                                                                                                                             \
        uint64_t sum_ = 0;                                                                                                         \
        for (size_t t_ = 0; t_ < n; ++t_) {                                                                                        \
            const tk_http_counters_t *m = blocks[t_];                                                                              \
            sum_ += __atomic_load_n(&(expr), __ATOMIC_RELAXED);                                                                    \
        }                                                                                                                          \
        sum_;                                                                                                                      \
    })

static void on_render(tk_metrics_text_t *t)
{
    pthread_mutex_lock(&registry_mutex);
    size_t n = registered;
    tk_http_counters_t *blocks[TK_METRICS_MAX_THREADS];
    memcpy(blocks, registry, sizeof(*blocks) * n);
    pthread_mutex_unlock(&registry_mutex);

    tk_metrics_emit(t, "# HELP ticketd_http_requests_total HTTP requests answered, by route and status.\n"
                       "# TYPE ticketd_http_requests_total counter\n");
    for (size_t r = 0; r < TK_HTTP_METRICS_ROUTES; ++r) {
        if (r != TK_HTTP_METRICS_ROUTES - 1 && route_names[r][0] == '\0')
            continue;
        char method[16], path[48];
        route_labels(r, method, sizeof(method), path, sizeof(path));
        for (size_t s = 0; s + 1 < STATUSES; ++s) {
            uint64_t v = SUM(m->requests[r][s]);
            if (v == 0)
                continue;
            char code[8];
            snprintf(code, sizeof(code), status_codes[s] == 0 ? "other" : "%d", status_codes[s]);
            tk_metrics_emit(t, "ticketd_http_requests_total{method=\"%s\",route=\"%s\",status=\"%s\"} %" PRIu64 "\n", method, path,
                            code, v);
        }
    }
    tk_metrics_emit(t, "# HELP ticketd_http_request_duration_seconds Time from request start to response, by route.\n"
                       "# TYPE ticketd_http_request_duration_seconds histogram\n");
    for (size_t r = 0; r < TK_HTTP_METRICS_ROUTES; ++r) {
        uint64_t count = SUM(m->latency_count[r]);
        if (count == 0)
            continue;
        char method[16], path[48];
        route_labels(r, method, sizeof(method), path, sizeof(path));
        uint64_t cumulative = 0;
        for (size_t b = 0; b < BUCKETS; ++b) {
            cumulative += SUM(m->latency_buckets[r][b]);
            tk_metrics_emit(t, "ticketd_http_request_duration_seconds_bucket{method=\"%s\",route=\"%s\",le=\"%g\"} %" PRIu64 "\n",
                            method, path, bucket_bounds[b], cumulative);
        }
        tk_metrics_emit(t, "ticketd_http_request_duration_seconds_bucket{method=\"%s\",route=\"%s\",le=\"+Inf\"} %" PRIu64 "\n",
                        method, path, count);
        tk_metrics_emit(t, "ticketd_http_request_duration_seconds_sum{method=\"%s\",route=\"%s\"} %.6f\n", method, path,
                        (double)SUM(m->latency_sum_us[r]) / 1e6);
        tk_metrics_emit(t, "ticketd_http_request_duration_seconds_count{method=\"%s\",route=\"%s\"} %" PRIu64 "\n", method, path,
                        count);
    }
    tk_metrics_emit(t,
                    "# HELP ticketd_http_connections_open HTTP connections open now.\n"
                    "# TYPE ticketd_http_connections_open gauge\nticketd_http_connections_open %" PRIu64 "\n",
                    __atomic_load_n(&connections_open, __ATOMIC_RELAXED));
    tk_metrics_emit_counter(t, "ticketd_http_connections_refused_total",
                            "Connections accepted and closed at once because the descriptor table was full.",
                            __atomic_load_n(&connections_refused, __ATOMIC_RELAXED));
    tk_metrics_emit_counter(t, "ticketd_http_accept_paused_total",
                            "Times a loop stopped accepting because TICKETD_MAX_CONNECTIONS were open.",
                            __atomic_load_n(&accept_pauses, __ATOMIC_RELAXED));
    tk_metrics_emit_counter(t, "ticketd_access_log_suppressed_total", "Access-log lines dropped by the log rate limit.",
                            __atomic_load_n(&log_suppressed, __ATOMIC_RELAXED));
}
