/*
 * Query-string scanning. '+' decodes to a space and %XX to its byte, as forms encode
 * them; a '%' not followed by two hex digits is an error rather than a guess.
 */
#include "http/query.h"

#include <string.h>

h2o_iovec_t tk_query_of(h2o_req_t *req)
{
    if (req->query_at == SIZE_MAX || req->query_at + 1 > req->path.len)
        return h2o_iovec_init("", 0);
    return h2o_iovec_init(req->path.base + req->query_at + 1, req->path.len - req->query_at - 1);
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static int decode(const char *s, size_t len, h2o_mem_pool_t *pool, h2o_iovec_t *out)
{
    char *dst = h2o_mem_alloc_pool(pool, len + 1);
    size_t n = 0;
    for (size_t i = 0; i < len; ++i) {
        if (s[i] == '+') {
            dst[n++] = ' ';
        } else if (s[i] == '%') {
            int hi, lo;
            if (i + 2 >= len || (hi = hex_value(s[i + 1])) < 0 || (lo = hex_value(s[i + 2])) < 0)
                return -1;
            dst[n++] = (char)(hi << 4 | lo);
            i += 2;
        } else {
            dst[n++] = s[i];
        }
    }
    dst[n] = '\0';
    *out = h2o_iovec_init(dst, n);
    return 0;
}

int tk_query_get(h2o_iovec_t query, const char *name, h2o_mem_pool_t *pool, h2o_iovec_t *value)
{
    size_t name_len = strlen(name);
    const char *p = query.base, *end = query.base + query.len;
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *pair_end = amp != NULL ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(pair_end - p));
        const char *key_end = eq != NULL ? eq : pair_end;
        if ((size_t)(key_end - p) == name_len && memcmp(p, name, name_len) == 0) {
            const char *v = eq != NULL ? eq + 1 : pair_end;
            return decode(v, (size_t)(pair_end - v), pool, value) == 0 ? 1 : -1;
        }
        p = pair_end + 1;
    }
    return 0;
}

int tk_query_parse_int(h2o_iovec_t v, int64_t *out)
{
    size_t i = 0;
    int negative = 0;
    if (v.len > 0 && v.base[0] == '-') {
        negative = 1;
        i = 1;
    }
    if (i == v.len)
        return -1;
    uint64_t magnitude = 0;
    int saturated = 0;
    for (; i < v.len; ++i) {
        if (v.base[i] < '0' || v.base[i] > '9')
            return -1;
        unsigned digit = (unsigned)(v.base[i] - '0');
        if (magnitude > (UINT64_MAX - digit) / 10)
            saturated = 1;
        else
            magnitude = magnitude * 10 + digit;
    }
    uint64_t limit = negative ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    if (saturated || magnitude > limit)
        magnitude = limit;
    *out = negative ? (int64_t)(0 - magnitude) : (int64_t)magnitude;
    return 0;
}
