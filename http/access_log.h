/*
 * The access log and the HTTP request counters, hung off h2o's logger mechanism: an
 * h2o_logger_t registered on the path and on the host's fallback path runs for every
 * response h2o sends — routed, static, and h2o's own 400/413 for broken framing or an
 * oversized body — so nothing that answers a request has to remember to log or count it.
 * Lines are rate-limited per loop thread (a token bucket); what a flood makes it drop is
 * counted in /metrics and summed up in one line once lines flow again. The path is
 * logged without its query string, which can carry reservation ids (bearer secrets).
 */
#ifndef TK_ACCESS_LOG_H
#define TK_ACCESS_LOG_H

#include <h2o.h>

#define TK_ACCESS_LOG_RATE 200  /* lines per second per loop thread, sustained */
#define TK_ACCESS_LOG_BURST 400 /* lines a quiet thread may write at once */

/* the metrics route slot of a request (the router's) */
typedef size_t (*tk_access_log_slot_fn)(h2o_req_t *req);

/* Registers the logger on pathconf; slot_of names each request's route for the counters. */
void tk_access_log_register(h2o_pathconf_t *pathconf, tk_access_log_slot_fn slot_of);
/* Formats one record (JSON or text) for ts into line, the path cut at its '?'; returns its
 * length, newline included. Exposed for tests. */
size_t tk_access_log_format(char *line, size_t cap, int json, const char *ts, h2o_iovec_t method, h2o_iovec_t path, int status,
                            uint64_t duration_us, uint64_t bytes);

#endif
