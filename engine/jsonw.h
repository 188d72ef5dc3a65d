/*
 * A minimal JSON writer: an append-only byte buffer with helpers for the pieces of
 * JSON (escaped strings, integers, money). Commas and braces are the caller's, which
 * keeps the writer trivial and the responses fast. Memory comes from an h2o pool when
 * one is given (request bodies) or from the heap otherwise (catalog snapshots).
 */
#ifndef TK_JSONW_H
#define TK_JSONW_H

#include <h2o.h>
#include <stdint.h>

typedef struct st_tk_jsonw_t {
    h2o_mem_pool_t *pool; /* NULL: heap, released with tk_jsonw_dispose */
    char *buf;
    size_t len;
    size_t cap;
} tk_jsonw_t;

void tk_jsonw_init(tk_jsonw_t *w, h2o_mem_pool_t *pool, size_t initial);
void tk_jsonw_dispose(tk_jsonw_t *w);
char *tk_jsonw_reserve(tk_jsonw_t *w, size_t n);
void tk_jsonw_raw(tk_jsonw_t *w, const char *s, size_t len);
#define tk_jsonw_lit(w, s) tk_jsonw_raw((w), (s), sizeof(s) - 1)
/* a quoted, escaped JSON string */
void tk_jsonw_str(tk_jsonw_t *w, const char *s, size_t len);
/* "key": */
#define tk_jsonw_key(w, k) tk_jsonw_raw((w), "\"" k "\":", sizeof(k) + 2)
void tk_jsonw_int(tk_jsonw_t *w, int64_t v);
/* minor units as a JSON number in the major unit */
void tk_jsonw_money(tk_jsonw_t *w, int64_t minor);
/* an instant in ms as an RFC 3339 JSON string */
void tk_jsonw_time(tk_jsonw_t *w, int64_t ms);
static inline h2o_iovec_t tk_jsonw_result(tk_jsonw_t *w)
{
    return h2o_iovec_init(w->buf, w->len);
}

#endif
