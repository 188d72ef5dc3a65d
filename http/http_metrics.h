/*
 * HTTP metrics: requests by route and status, latency histograms by route, and the
 * connection counters (open, refused at a full descriptor table, accepts deferred at
 * TICKETD_MAX_CONNECTIONS) and access-log lines suppressed by the rate limit. The access
 * logger feeds the request counters for every response h2o sends (routed, static and
 * h2o's own errors alike); nothing on a route calls in here. Each loop thread writes its
 * own block (created on first use); a scrape sums them in a section of /metrics.
 */
#ifndef TK_HTTP_METRICS_H
#define TK_HTTP_METRICS_H

#include <stddef.h>
#include <stdint.h>

#define TK_HTTP_METRICS_ROUTES 32 /* route slots; the last one counts unmatched paths */

/* Adds the HTTP section to the /metrics scrape; once, at start-up. */
void tk_http_metrics_init(void);
/* names slot "METHOD /path" for the route label; at start-up, by the router */
void tk_http_metrics_set_route_name(size_t slot, const char *method, const char *path);
/* one answered request, on the loop thread that answered it */
void tk_http_metrics_observe(size_t slot, int status, uint64_t latency_us);

void tk_http_metrics_connection_opened(void);
void tk_http_metrics_connection_closed(void);
size_t tk_http_metrics_connections_open(void);
/* a connection accepted and closed at once because the descriptor table was full */
void tk_http_metrics_connection_refused(void);
/* a loop stopped accepting because TICKETD_MAX_CONNECTIONS were open */
void tk_http_metrics_accept_paused(void);
void tk_http_metrics_log_suppressed(uint64_t lines);

#endif
