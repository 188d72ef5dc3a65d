/*
 * Argument vectors for the inventory functions. Vectors are built on the stack or in
 * the caller's memory; hiredis copies them into its output buffer when sending.
 */
#include "engine/inventory.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#define MAX_TYPES 64

void tk_shard_keys(const char *id, tk_shard_keys_t *keys)
{
    snprintf(keys->inv, sizeof(keys->inv), "tk:{%.4s}:inv", id);
    snprintf(keys->res, sizeof(keys->res), "tk:{%.4s}:res", id);
    snprintf(keys->dl, sizeof(keys->dl), "tk:{%.4s}:dl", id);
}

/* Sends one FCALL tk_event_init without waiting for its reply. */
static int append_event_init(redisContext *c, const tk_event_t *ev)
{
    enum { FIXED = 9 };
    const char *argv[FIXED + 3 * MAX_TYPES];
    size_t argvlen[FIXED + 3 * MAX_TYPES];
    char numbers[1 + 2 * MAX_TYPES][24];
    char ntypes[8];
    tk_shard_keys_t keys;
    size_t ntypes_sent = ev->ntypes < MAX_TYPES ? ev->ntypes : MAX_TYPES;

    tk_shard_keys(ev->id, &keys);
    snprintf(numbers[0], sizeof(numbers[0]), "%" PRId64, ev->date_ms);
    snprintf(ntypes, sizeof(ntypes), "%zu", ntypes_sent);
    const char *fixed[FIXED] = {"FCALL", "tk_event_init", "3", keys.inv, keys.res, keys.dl, ev->id, numbers[0], ntypes};
    int argc = 0;
    for (; argc < FIXED; ++argc) {
        argv[argc] = fixed[argc];
        argvlen[argc] = strlen(fixed[argc]);
    }
    for (size_t i = 0; i < ntypes_sent; ++i) {
        const tk_ticket_type_t *t = ev->types + i;
        snprintf(numbers[1 + 2 * i], sizeof(numbers[0]), "%" PRId64, t->amount);
        snprintf(numbers[2 + 2 * i], sizeof(numbers[0]), "%" PRId64, t->price_minor);
        argv[argc] = t->name.base, argvlen[argc++] = t->name.len;
        argv[argc] = numbers[1 + 2 * i], argvlen[argc++] = strlen(numbers[1 + 2 * i]);
        argv[argc] = numbers[2 + 2 * i], argvlen[argc++] = strlen(numbers[2 + 2 * i]);
    }
    return redisAppendCommandArgv(c, argc, argv, argvlen);
}

int tk_inventory_init_events(redisContext *c, const tk_event_t *events, size_t nevents, char *err, size_t errsize)
{
    int rc = 0;
    for (size_t i = 0; i < nevents; ++i) {
        if (append_event_init(c, events + i) != REDIS_OK) {
            snprintf(err, errsize, "tk_event_init: %s", c->errstr);
            return -1;
        }
    }
    for (size_t i = 0; i < nevents; ++i) {
        redisReply *reply;
        if (redisGetReply(c, (void **)&reply) != REDIS_OK) {
            snprintf(err, errsize, "tk_event_init: %s", c->errstr);
            return -1;
        }
        if (reply->type == REDIS_REPLY_ERROR && rc == 0) {
            snprintf(err, errsize, "tk_event_init: %s", reply->str);
            rc = -1;
        }
        freeReplyObject(reply);
    }
    return rc;
}

int tk_inventory_avail(tk_redis_t *r, const tk_event_t *ev, tk_redis_cb cb, void *data)
{
    tk_shard_keys_t keys;
    tk_shard_keys(ev->id, &keys);
    const char *argv[] = {"FCALL", "tk_avail", "3", keys.inv, keys.res, keys.dl, ev->id};
    size_t argvlen[] = {5, 8, 1, strlen(keys.inv), strlen(keys.res), strlen(keys.dl), TK_UUID_LEN};
    return tk_redis_command(r, cb, data, 7, argv, argvlen);
}

int tk_inventory_parse_avail(const redisReply *reply, const tk_event_t *ev, int64_t *left)
{
    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY || reply->elements % 2 != 0)
        return -1;
    for (size_t i = 0; i < ev->ntypes; ++i)
        left[i] = 0; /* never claim availability Redis has not confirmed */
    for (size_t j = 0; j + 1 < reply->elements; j += 2) {
        const redisReply *name = reply->element[j], *count = reply->element[j + 1];
        if (name->type != REDIS_REPLY_STRING || count->type != REDIS_REPLY_INTEGER)
            return -1;
        const tk_ticket_type_t *t = tk_event_find_type(ev, name->str, name->len);
        if (t != NULL)
            left[t - ev->types] = count->integer;
    }
    return 0;
}
