/*
 * Time as the API speaks it: instants are int64 milliseconds since the Unix epoch,
 * written as RFC 3339 in UTC ending in "Z", with milliseconds only when the instant
 * is not a whole second ("2026-12-31T20:00:00Z", "2026-12-31T20:15:00.123Z").
 */
#ifndef TK_TIMEFMT_H
#define TK_TIMEFMT_H

#include <stddef.h>
#include <stdint.h>

#define TK_RFC3339_MAX 32

int64_t tk_time_now_ms(void);
/* monotonic clock in milliseconds, for timeouts and latency */
int64_t tk_time_mono_ms(void);
/* blocks the calling thread for ms milliseconds (a signal does not cut it short); never on a loop thread */
void tk_time_sleep_ms(int64_t ms);
/* writes the RFC 3339 form of ms into buf (at least TK_RFC3339_MAX bytes); returns its length */
size_t tk_time_format_rfc3339(int64_t ms, char *buf, size_t bufsize);
/* parses "YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM)"; returns 0 on success, -1 when malformed */
int tk_time_parse_rfc3339(const char *s, size_t len, int64_t *ms);

#endif
