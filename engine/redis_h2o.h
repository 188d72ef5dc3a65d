/*
 * hiredis adapter for the h2o event loop, in the shape of hiredis' own adapters
 * (adapters/ae.h, adapters/libuv.h): it tells hiredis when the connection's socket
 * can be read or written, through an h2o socket created with H2O_SOCKET_FLAG_DONT_READ
 * so that h2o only reports readiness and hiredis does the reading itself.
 */
#ifndef TK_REDIS_H2O_H
#define TK_REDIS_H2O_H

#include <h2o.h>
#include <hiredis/async.h>

/* attaches ac to loop; returns REDIS_OK or REDIS_ERR (already attached) */
int tk_redis_h2o_attach(redisAsyncContext *ac, h2o_loop_t *loop);

#endif
