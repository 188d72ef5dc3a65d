/*
 * Log record formatting. Each record is built in a stack buffer and written with a
 * single write(2), so lines from different threads never interleave.
 */
#include "engine/log.h"
#include "engine/timefmt.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

tk_log_level_t tk_log_min_level = TK_LOG_INFO;
static tk_log_format_t log_format = TK_LOG_TEXT;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void tk_log_init(tk_log_level_t level, tk_log_format_t format)
{
    tk_log_min_level = level;
    log_format = format;
}

int tk_log_parse_level(const char *s, tk_log_level_t *level)
{
    for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); ++i) {
        if (strcmp(s, level_names[i]) == 0) {
            *level = (tk_log_level_t)i;
            return 0;
        }
    }
    return -1;
}

const char *tk_log_level_name(tk_log_level_t level)
{
    return level_names[level];
}

/* the length of the well-formed UTF-8 sequence at s (RFC 3629: no overlong forms, no
 * surrogates, nothing past U+10FFFF), or 0 */
static size_t utf8_sequence(const unsigned char *s)
{
    if (s[0] >= 0xc2 && s[0] <= 0xdf)
        return (s[1] & 0xc0) == 0x80 ? 2 : 0;
    if (s[0] >= 0xe0 && s[0] <= 0xef) {
        unsigned char lo = s[0] == 0xe0 ? 0xa0 : 0x80, hi = s[0] == 0xed ? 0x9f : 0xbf;
        return s[1] >= lo && s[1] <= hi && (s[2] & 0xc0) == 0x80 ? 3 : 0;
    }
    if (s[0] >= 0xf0 && s[0] <= 0xf4) {
        unsigned char lo = s[0] == 0xf0 ? 0x90 : 0x80, hi = s[0] == 0xf4 ? 0x8f : 0xbf;
        return s[1] >= lo && s[1] <= hi && (s[2] & 0xc0) == 0x80 && (s[3] & 0xc0) == 0x80 ? 4 : 0;
    }
    return 0;
}

size_t tk_log_json_escape(char *buf, size_t len, size_t cap, const char *s)
{
    for (; *s != '\0' && len + 7 < cap; ++s) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            buf[len++] = '\\';
            buf[len++] = (char)c;
        } else if (c < 0x20 || c == 0x7f) {
            len += (size_t)snprintf(buf + len, cap - len, "\\u%04x", c);
        } else if (c < 0x80) {
            buf[len++] = (char)c;
        } else {
            /* bytes that are not UTF-8 (a client's path, say) would make the line invalid JSON */
            size_t n = utf8_sequence((const unsigned char *)s);
            if (n == 0) {
                memcpy(buf + len, "\\ufffd", 6);
                len += 6;
            } else {
                memcpy(buf + len, s, n);
                len += n;
                s += n - 1;
            }
        }
    }
    return len;
}

void tk_log_write(tk_log_level_t level, const char *component, const char *fmt, ...)
{
    char msg[2048], line[4096], ts[32];
    va_list args;
    va_start(args, fmt);
    vsnprintf(msg, sizeof(msg), fmt, args);
    va_end(args);
    tk_time_format_rfc3339(tk_time_now_ms(), ts, sizeof(ts));

    size_t len;
    if (log_format == TK_LOG_JSON) {
        len = (size_t)snprintf(line, sizeof(line), "{\"ts\":\"%s\",\"level\":\"%s\",\"component\":\"", ts, level_names[level]);
        len = tk_log_json_escape(line, len, sizeof(line) - 8, component);
        len += (size_t)snprintf(line + len, sizeof(line) - len, "\",\"msg\":\"");
        len = tk_log_json_escape(line, len, sizeof(line) - 4, msg);
        memcpy(line + len, "\"}\n", 3);
        len += 3;
    } else {
        int n = snprintf(line, sizeof(line) - 1, "%s %-5s %s: %s", ts, level_names[level], component, msg);
        len = n < 0 ? 0 : (size_t)n >= sizeof(line) - 1 ? sizeof(line) - 2 : (size_t)n;
        line[len++] = '\n';
    }
    ssize_t ignored = write(STDERR_FILENO, line, len);
    (void)ignored;
}

int tk_log_is_json(void)
{
    return log_format == TK_LOG_JSON;
}

void tk_log_emit(const char *line, size_t len)
{
    ssize_t ignored = write(STDERR_FILENO, line, len);
    (void)ignored;
}

/* Appends text to buf from out on, masking every "password=" value ("sslpassword=" too:
 * the key's passphrase), as libpq's keyword form and URI query write them: a value runs
 * to the next space or '&', or is quoted ('…' with backslash escapes). */
static void append_masked(char *buf, size_t bufsize, size_t out, const char *text)
{
    for (const char *p = text; out < bufsize;) {
        const char *pw = strstr(p, "password=");
        if (pw == NULL) {
            snprintf(buf + out, bufsize - out, "%s", p);
            return;
        }
        const char *value = pw + strlen("password=");
        out += (size_t)snprintf(buf + out, bufsize - out, "%.*s***", (int)(value - p), p);
        p = value;
        if (*p == '\'') {
            for (++p; *p != '\0' && *p != '\''; ++p)
                if (*p == '\\' && p[1] != '\0')
                    ++p;
            p += *p == '\'';
        } else {
            p += strcspn(p, " &");
        }
    }
}

void tk_log_redact_url(const char *url, char *buf, size_t bufsize)
{
    const char *scheme_end = strstr(url, "://");
    const char *userinfo = scheme_end != NULL ? scheme_end + 3 : NULL;
    const char *at = userinfo != NULL ? strchr(userinfo, '@') : NULL;
    if (bufsize == 0)
        return;
    if (at == NULL) {
        append_masked(buf, bufsize, 0, url);
        return;
    }
    /* "user:password@" keeps the user; a lone "secret@" (Redis' password form) is all secret */
    const char *colon = memchr(userinfo, ':', (size_t)(at - userinfo));
    const char *keep_end = colon != NULL ? colon + 1 : userinfo;
    int out = snprintf(buf, bufsize, "%.*s***", (int)(keep_end - url), url);
    append_masked(buf, bufsize, (size_t)out, at);
}
