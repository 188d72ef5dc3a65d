/*
 * Blocking Redis helpers. Errors are returned as one line in err; the context is
 * freed on failure so callers never hold a broken connection.
 */
#include "engine/redis_sync.h"
#include "engine/embedded.h"

#include <stdarg.h>
#include <string.h>

redisContext *tk_redis_sync_connect(const tk_redis_url_t *url, int timeout_ms, char *err, size_t errsize)
{
    struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};
    redisContext *c = redisConnectWithTimeout(url->host, url->port, tv);
    if (c == NULL || c->err) {
        snprintf(err, errsize, "%s", c != NULL ? c->errstr : "out of memory");
        goto Fail;
    }
    redisSetTimeout(c, tv);
    redisReply *reply;
    if (url->password[0] != '\0') {
        reply = redisCommand(c, "AUTH %s", url->password);
        int ok = reply != NULL && reply->type == REDIS_REPLY_STATUS;
        snprintf(err, errsize, "AUTH failed: %s", reply != NULL && reply->type == REDIS_REPLY_ERROR ? reply->str : c->errstr);
        freeReplyObject(reply);
        if (!ok)
            goto Fail;
    }
    reply = redisCommand(c, "SELECT %d", url->db);
    int ok = reply != NULL && reply->type == REDIS_REPLY_STATUS;
    snprintf(err, errsize, "SELECT failed: %s", reply != NULL && reply->type == REDIS_REPLY_ERROR ? reply->str : c->errstr);
    freeReplyObject(reply);
    if (!ok)
        goto Fail;
    err[0] = '\0';
    return c;
Fail:
    if (c != NULL)
        redisFree(c);
    return NULL;
}

int tk_redis_sync_load_functions(redisContext *c, char *err, size_t errsize)
{
    redisReply *reply = redisCommand(c, "FUNCTION LOAD REPLACE %s", tk_lua_library);
    int ok = reply != NULL && reply->type == REDIS_REPLY_STRING;
    if (!ok)
        snprintf(err, errsize, "FUNCTION LOAD failed: %s",
                 reply == NULL                      ? c->errstr
                 : reply->type == REDIS_REPLY_ERROR ? reply->str
                                                    : "unexpected reply");
    freeReplyObject(reply);
    return ok ? 0 : -1;
}

/* the value of one CONFIG GET parameter into buf; -1 when it cannot be read */
static int config_get(redisContext *c, const char *name, char *buf, size_t bufsize)
{
    redisReply *reply = redisCommand(c, "CONFIG GET %s", name);
    int ok =
        reply != NULL && reply->type == REDIS_REPLY_ARRAY && reply->elements == 2 && reply->element[1]->type == REDIS_REPLY_STRING;
    if (ok)
        snprintf(buf, bufsize, "%s", reply->element[1]->str);
    freeReplyObject(reply);
    return ok ? 0 : -1;
}

int tk_redis_sync_durability_warning(redisContext *c, char *warn, size_t warnsize)
{
    char appendonly[16], appendfsync[16];
    if (config_get(c, "appendonly", appendonly, sizeof(appendonly)) != 0 ||
        config_get(c, "appendfsync", appendfsync, sizeof(appendfsync)) != 0)
        return -1;
    if (strcmp(appendonly, "yes") != 0) {
        snprintf(warn, warnsize, "Redis runs without AOF (appendonly %s): a crash loses holds and payments; set appendonly yes",
                 appendonly);
        return 1;
    }
    if (strcmp(appendfsync, "always") != 0) {
        snprintf(
            warn, warnsize,
            "Redis fsyncs its AOF with appendfsync %s: a crash can lose acknowledged holds and payments; set appendfsync always",
            appendfsync);
        return 1;
    }
    return 0;
}

int tk_redis_sync_integer(redisContext *c, long long *out, const char *fmt, ...)
{
    va_list args;
    va_start(args, fmt);
    redisReply *reply = redisvCommand(c, fmt, args);
    va_end(args);
    int ok = reply != NULL && reply->type == REDIS_REPLY_INTEGER;
    if (ok)
        *out = reply->integer;
    freeReplyObject(reply);
    return ok ? 0 : -1;
}
