/*
 * The h2o logger behind the access log and the request counters. log_access runs when
 * h2o disposes of a request, after its response went out (or its client went away:
 * status 0), on the loop thread that served it; all state here is that thread's.
 */
#include "http/access_log.h"
#include "engine/log.h"
#include "engine/timefmt.h"
#include "http/http_metrics.h"

#include <stdio.h>
#include <string.h>
#include <sys/time.h>

typedef struct st_tk_log_bucket_t {
    double allowance;
    int64_t refilled_ms;
    uint64_t suppressed; /* lines dropped since the last one written */
    int started;
} tk_log_bucket_t;

static tk_access_log_slot_fn route_slot_of;
static __thread tk_log_bucket_t bucket;

size_t tk_access_log_format(char *line, size_t cap, int json, const char *ts, h2o_iovec_t method, h2o_iovec_t path, int status,
                            uint64_t duration_us, uint64_t bytes)
{
    char m[16], p[256];
    const char *query = memchr(path.base, '?', path.len);
    if (query != NULL)
        path.len = (size_t)(query - path.base);
    snprintf(m, sizeof(m), "%.*s", (int)method.len, method.base);
    snprintf(p, sizeof(p), "%.*s", (int)path.len, path.base);
    size_t len;
    if (json) {
        len = (size_t)snprintf(line, cap,
                               "{\"ts\":\"%s\",\"level\":\"info\",\"component\":\"http\",\"msg\":\"request\",\"method\":\"", ts);
        len = tk_log_json_escape(line, len, cap / 4, m);
        len += (size_t)snprintf(line + len, cap - len, "\",\"path\":\"");
        len = tk_log_json_escape(line, len, cap - 128, p);
        len += (size_t)snprintf(line + len, cap - len, "\",\"status\":%d,\"duration_ms\":%.3f,\"bytes\":%llu}\n", status,
                                (double)duration_us / 1000.0, (unsigned long long)bytes);
    } else {
        for (char *c = m; *c != '\0'; ++c)
            if ((unsigned char)*c <= 0x20 || *c == 0x7f)
                *c = '?';
        for (char *c = p; *c != '\0'; ++c)
            if ((unsigned char)*c < 0x20 || *c == 0x7f)
                *c = '?';
        len = (size_t)snprintf(line, cap, "%s info  http: %s %s %d %.3fms %lluB\n", ts, m, p, status, (double)duration_us / 1000.0,
                               (unsigned long long)bytes);
    }
    return len < cap ? len : cap - 1;
}

/* Takes a token from this thread's bucket; 0 when the line must be dropped. */
static int take_token(int64_t now_ms)
{
    if (!bucket.started) {
        bucket.started = 1;
        bucket.allowance = TK_ACCESS_LOG_BURST;
        bucket.refilled_ms = now_ms;
    }
    bucket.allowance += (double)(now_ms - bucket.refilled_ms) * TK_ACCESS_LOG_RATE / 1000.0;
    if (bucket.allowance > TK_ACCESS_LOG_BURST)
        bucket.allowance = TK_ACCESS_LOG_BURST;
    bucket.refilled_ms = now_ms;
    if (bucket.allowance < 1.0) {
        ++bucket.suppressed;
        tk_http_metrics_log_suppressed(1);
        return 0;
    }
    bucket.allowance -= 1.0;
    return 1;
}

static void on_log_access(h2o_logger_t *self, h2o_req_t *req)
{
    struct timeval now;
    gettimeofday(&now, NULL);
    int64_t us = (int64_t)(now.tv_sec - req->timestamps.request_begin_at.tv_sec) * 1000000 +
                 (now.tv_usec - req->timestamps.request_begin_at.tv_usec);
    uint64_t duration_us = us > 0 ? (uint64_t)us : 0;
    tk_http_metrics_observe(route_slot_of(req), req->res.status, duration_us);

    if (TK_LOG_INFO < tk_log_min_level || !take_token(tk_time_mono_ms()))
        return;
    if (bucket.suppressed != 0) {
        tk_log_warn("http", "access log rate limit: %llu request lines suppressed", (unsigned long long)bucket.suppressed);
        bucket.suppressed = 0;
    }
    char line[1024], ts[32];
    tk_time_format_rfc3339(tk_time_now_ms(), ts, sizeof(ts));
    size_t len = tk_access_log_format(line, sizeof(line), tk_log_is_json(), ts, req->input.method, req->input.path, req->res.status,
                                      duration_us, req->bytes_sent);
    tk_log_emit(line, len);
}

void tk_access_log_register(h2o_pathconf_t *pathconf, tk_access_log_slot_fn slot_of)
{
    route_slot_of = slot_of;
    h2o_logger_t *logger = h2o_create_logger(pathconf, sizeof(*logger));
    logger->log_access = on_log_access;
}
