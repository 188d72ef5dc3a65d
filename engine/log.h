/*
 * Logging: one line per record on stderr. Development writes human-readable lines
 * ("2026-11-24T14:00:00.123Z INFO  catalog: loaded 3 events"); production writes JSON
 * lines ({"ts":…,"level":"info","component":"catalog","msg":"loaded 3 events"}) that a
 * collector can parse. Records below the configured level cost one comparison.
 * Callers never pass secrets; tk_log_redact_url() masks passwords in connection URLs.
 */
#ifndef TK_LOG_H
#define TK_LOG_H

#include <stddef.h>
#include <stdint.h>

typedef enum en_tk_log_level_t { TK_LOG_DEBUG = 0, TK_LOG_INFO, TK_LOG_WARN, TK_LOG_ERROR } tk_log_level_t;
typedef enum en_tk_log_format_t { TK_LOG_TEXT = 0, TK_LOG_JSON } tk_log_format_t;

extern tk_log_level_t tk_log_min_level;

void tk_log_init(tk_log_level_t level, tk_log_format_t format);
int tk_log_parse_level(const char *s, tk_log_level_t *level);
const char *tk_log_level_name(tk_log_level_t level);
void tk_log_write(tk_log_level_t level, const char *component, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* whether records are JSON lines (production) rather than readable text */
int tk_log_is_json(void);
/* Appends s to buf[len..cap) as the inside of a JSON string, stopping short of cap (never
 * inside an escape or a UTF-8 sequence); control characters are escaped and bytes that are
 * not UTF-8 become U+FFFD, so the record stays valid JSON. Returns the new length. For callers that format records of their own
 * (the access log). */
size_t tk_log_json_escape(char *buf, size_t len, size_t cap, const char *s);
/* writes one finished line (newline included) to the log in a single write(2) */
void tk_log_emit(const char *line, size_t len);
/* copies url into buf with the password (if any) replaced by "***" */
void tk_log_redact_url(const char *url, char *buf, size_t bufsize);

#define tk_log(level, component, ...)                                                                                              \
    do {                                                                                                                           \
        if ((level) >= tk_log_min_level)                                                                                           \
            tk_log_write((level), (component), __VA_ARGS__);                                                                       \
    } while (0)
#define tk_log_debug(component, ...) tk_log(TK_LOG_DEBUG, component, __VA_ARGS__)
#define tk_log_info(component, ...) tk_log(TK_LOG_INFO, component, __VA_ARGS__)
#define tk_log_warn(component, ...) tk_log(TK_LOG_WARN, component, __VA_ARGS__)
#define tk_log_error(component, ...) tk_log(TK_LOG_ERROR, component, __VA_ARGS__)

#endif
