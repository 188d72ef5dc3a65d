/*
 * Buffer growth and escaping for the JSON writer. Escaping covers what RFC 8259
 * requires (quote, backslash, control characters); input strings are already valid
 * UTF-8, checked when they entered the system.
 */
#include "engine/jsonw.h"
#include "engine/money.h"
#include "engine/timefmt.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

void tk_jsonw_init(tk_jsonw_t *w, h2o_mem_pool_t *pool, size_t initial)
{
    w->pool = pool;
    w->len = 0;
    w->cap = initial < 64 ? 64 : initial;
    w->buf = pool != NULL ? h2o_mem_alloc_pool(pool, w->cap) : h2o_mem_alloc(w->cap);
}

void tk_jsonw_dispose(tk_jsonw_t *w)
{
    if (w->pool == NULL)
        free(w->buf);
    w->buf = NULL;
    w->len = w->cap = 0;
}

char *tk_jsonw_reserve(tk_jsonw_t *w, size_t n)
{
    if (w->cap - w->len < n) {
        size_t cap = w->cap * 2;
        while (cap - w->len < n)
            cap *= 2;
        if (w->pool != NULL) {
            char *grown = h2o_mem_alloc_pool(w->pool, cap);
            memcpy(grown, w->buf, w->len);
            w->buf = grown;
        } else {
            w->buf = h2o_mem_realloc(w->buf, cap);
        }
        w->cap = cap;
    }
    return w->buf + w->len;
}

void tk_jsonw_raw(tk_jsonw_t *w, const char *s, size_t len)
{
    memcpy(tk_jsonw_reserve(w, len), s, len);
    w->len += len;
}

void tk_jsonw_str(tk_jsonw_t *w, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    char *dst = tk_jsonw_reserve(w, len * 6 + 2), *p = dst;
    *p++ = '"';
    for (size_t i = 0; i < len; ++i) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            *p++ = '\\';
            *p++ = (char)c;
        } else if (c < 0x20) {
            switch (c) {
            case '\n':
                *p++ = '\\', *p++ = 'n';
                break;
            case '\r':
                *p++ = '\\', *p++ = 'r';
                break;
            case '\t':
                *p++ = '\\', *p++ = 't';
                break;
            default:
                memcpy(p, "\\u00", 4);
                p += 4;
                *p++ = hex[c >> 4];
                *p++ = hex[c & 15];
            }
        } else {
            *p++ = (char)c;
        }
    }
    *p++ = '"';
    w->len += (size_t)(p - dst);
}

void tk_jsonw_int(tk_jsonw_t *w, int64_t v)
{
    char *dst = tk_jsonw_reserve(w, 24);
    w->len += (size_t)snprintf(dst, 24, "%" PRId64, v);
}

void tk_jsonw_money(tk_jsonw_t *w, int64_t minor)
{
    char *dst = tk_jsonw_reserve(w, 32);
    w->len += tk_money_format_json(minor, dst, 32);
}

void tk_jsonw_time(tk_jsonw_t *w, int64_t ms)
{
    char *dst = tk_jsonw_reserve(w, TK_RFC3339_MAX + 2);
    dst[0] = '"';
    size_t n = tk_time_format_rfc3339(ms, dst + 1, TK_RFC3339_MAX);
    dst[n + 1] = '"';
    w->len += n + 2;
}
