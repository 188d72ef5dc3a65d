/*
 * Query strings: finding a parameter, percent-decoding it, and reading it as a whole
 * number. Decoded values go into the request pool.
 */
#ifndef TK_QUERY_H
#define TK_QUERY_H

#include <h2o.h>
#include <stdint.h>

/* the query string of req (without '?'), empty when there is none */
h2o_iovec_t tk_query_of(h2o_req_t *req);
/* 1 and the decoded value of the first `name` parameter; 0 when absent; -1 when its
 * percent-encoding is broken */
int tk_query_get(h2o_iovec_t query, const char *name, h2o_mem_pool_t *pool, h2o_iovec_t *value);
/* A whole number: optional '-', then digits only. Values beyond int64 saturate. -1 when not a number. */
int tk_query_parse_int(h2o_iovec_t v, int64_t *out);

#endif
