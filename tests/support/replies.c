/*
 * Hand-built hiredis replies for the decoder tests (replies.h).
 */
#include "tests/support/replies.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

redisReply *tk_reply_str_of_type(int type, const char *s)
{
    redisReply *r = calloc(1, sizeof(*r));
    r->type = type;
    r->len = strlen(s);
    r->str = strdup(s);
    return r;
}

redisReply *tk_reply_str(const char *s)
{
    return tk_reply_str_of_type(REDIS_REPLY_STRING, s);
}

redisReply *tk_reply_num(long long v)
{
    redisReply *r = calloc(1, sizeof(*r));
    r->type = REDIS_REPLY_INTEGER;
    r->integer = v;
    return r;
}

redisReply *tk_reply_arr(size_t n, ...)
{
    redisReply *r = calloc(1, sizeof(*r));
    r->type = REDIS_REPLY_ARRAY;
    r->elements = n;
    r->element = calloc(n + 1, sizeof(*r->element));
    va_list ap;
    va_start(ap, n);
    for (size_t i = 0; i < n; ++i)
        r->element[i] = va_arg(ap, redisReply *);
    va_end(ap);
    return r;
}

void tk_reply_free(redisReply *r)
{
    for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements; ++i)
        tk_reply_free(r->element[i]);
    free(r->element);
    free(r->str);
    free(r);
}
