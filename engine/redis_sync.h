/*
 * Blocking Redis connections for start-up, worker threads and the catalog refresher
 * (never an event-loop thread): connect with a timeout, authenticate, select the
 * database, load the function library, and the durability check production warns on.
 */
#ifndef TK_REDIS_SYNC_H
#define TK_REDIS_SYNC_H

#include "engine/config.h"

#include <hiredis/hiredis.h>

redisContext *tk_redis_sync_connect(const tk_redis_url_t *url, int timeout_ms, char *err, size_t errsize);
/* FUNCTION LOAD REPLACE of the embedded library */
int tk_redis_sync_load_functions(redisContext *c, char *err, size_t errsize);
/* 1 and a warning when AOF is off or not fsynced on every write, 0 when it is, -1 when the check failed */
int tk_redis_sync_durability_warning(redisContext *c, char *warn, size_t warnsize);
/* runs a command expecting an integer reply; -1 on error */
int tk_redis_sync_integer(redisContext *c, long long *out, const char *fmt, ...);

#endif
