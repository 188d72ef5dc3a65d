/*
 * Key names, argument vectors and reply decoders for the inventory functions. Vectors
 * are built on the stack or in the caller's memory; hiredis copies them into its output
 * buffer when sending. Decoders trust nothing about a reply's shape: a reply that is not
 * what the function documents is refused, never read out of bounds.
 */
#include "engine/inventory.h"
#include "engine/log.h"
#include "engine/pg.h"
#include "engine/shard_activity.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_TYPES 64

void tk_shard_keys(const char *id, tk_shard_keys_t *keys)
{
    static const char *const suffixes[TK_SHARD_NKEYS] = {"inv", "res", "dl", "pay", "ob", "tx", "gc"};
    for (int i = 0; i < TK_SHARD_NKEYS; ++i) {
        int n = snprintf(keys->names[i], TK_KEY_LEN, "tk:{%.4s}:%s", id, suffixes[i]);
        keys->lens[i] = (size_t)n;
    }
}

void tk_shard_fence_key(const char *id, char out[TK_KEY_LEN])
{
    snprintf(out, TK_KEY_LEN, "tk:{%.4s}:fence", id);
}

int tk_fcall_prefix(const char *fn, const tk_shard_keys_t *keys, const char **argv, size_t *argvlen)
{
    argv[0] = "FCALL", argvlen[0] = 5;
    argv[1] = fn, argvlen[1] = strlen(fn);
    argv[2] = "7", argvlen[2] = 1;
    for (int i = 0; i < TK_SHARD_NKEYS; ++i) {
        argv[3 + i] = keys->names[i];
        argvlen[3 + i] = keys->lens[i];
    }
    return TK_FCALL_PREFIX_LEN;
}

int tk_shard_of_outbox_key(const char *key, size_t len, char shard[TK_SHARD_LEN + 1])
{
    tk_shard_keys_t keys;
    if (len != sizeof("tk:{abcd}:ob") - 1 || memcmp(key, "tk:{", 4) != 0)
        return -1;
    for (size_t i = 4; i < 4 + TK_SHARD_LEN; ++i)
        if (!(('0' <= key[i] && key[i] <= '9') || ('a' <= key[i] && key[i] <= 'f')))
            return -1;
    tk_shard_keys(key + 4, &keys);
    if (keys.lens[TK_KEY_OB] != len || memcmp(keys.names[TK_KEY_OB], key, len) != 0)
        return -1;
    memcpy(shard, key + 4, TK_SHARD_LEN);
    shard[TK_SHARD_LEN] = '\0';
    return 0;
}

int tk_inventory_dead_letter(tk_redis_nodes_t *n, const char *shard, const char *entry_id, const char *reason, char *err,
                             size_t errsize)
{
    char ob[TK_KEY_LEN], dead[TK_KEY_LEN];
    snprintf(ob, sizeof(ob), "tk:{%.4s}:ob", shard);
    snprintf(dead, sizeof(dead), "tk:{%.4s}:dead", shard);
    const char *argv[] = {"FCALL", "tk_dead_letter", "2", ob, dead, entry_id, reason};
    size_t argvlen[] = {5, 14, 1, strlen(ob), strlen(dead), strlen(entry_id), strlen(reason)};
    redisReply *reply = tk_redis_nodes_command_argv(n, 7, argv, argvlen);
    int rc = -1;
    if (reply == NULL)
        snprintf(err, errsize, "tk_dead_letter: no answer from the master of shard %.4s", shard);
    else if (reply->type != REDIS_REPLY_INTEGER)
        snprintf(err, errsize, "tk_dead_letter: %s", reply->type == REDIS_REPLY_ERROR ? reply->str : "unexpected reply");
    else
        rc = reply->integer != 0;
    freeReplyObject(reply);
    return rc;
}

/* Appends one FCALL tk_event_init to the pipeline (sent to the master of ev's shard),
 * with seed when not NULL. The pipeline formats the command at once, so the arguments'
 * block is freed here (malloc'd, not from a memory pool: this runs on threads that end,
 * and a pool's chunks stay in its thread's recycling list). */
static void append_event_init(tk_redis_pipeline_t *p, const tk_event_t *ev, const tk_event_seed_t *seed)
{
    enum { NUMBER_MAX = 24 };
    size_t ntypes = ev->ntypes < MAX_TYPES ? ev->ntypes : MAX_TYPES;
    size_t max = TK_FCALL_PREFIX_LEN + 3 + 3 * ntypes + (seed != NULL ? 2 + 4 * seed->nlines : 0);
    char *block = h2o_mem_alloc(max * (sizeof(const char *) + sizeof(size_t) + NUMBER_MAX));
    const char **argv = (const char **)block;
    size_t *argvlen = (size_t *)(argv + max);
    char *numbers = (char *)(argvlen + max);
    tk_shard_keys_t keys;
    tk_shard_keys(ev->id, &keys);
    int argc = tk_fcall_prefix("tk_event_init", &keys, argv, argvlen);
#define ARG_TEXT(s, len) (argv[argc] = (s), argvlen[argc++] = (len))
#define ARG_INT(v) (ARG_TEXT(numbers, (size_t)snprintf(numbers, NUMBER_MAX, "%" PRId64, (int64_t)(v))), numbers += NUMBER_MAX)
    ARG_TEXT(ev->id, TK_UUID_LEN);
    ARG_INT(ev->date_ms);
    ARG_INT(ntypes);
    for (size_t i = 0; i < ntypes; ++i) {
        ARG_TEXT(ev->types[i].name.base, ev->types[i].name.len);
        ARG_INT(ev->types[i].amount);
        ARG_INT(ev->types[i].price_minor);
    }
    if (seed != NULL) {
        ARG_INT(seed->revenue_minor);
        ARG_INT(seed->nlines);
        for (size_t i = 0; i < seed->nlines; ++i) {
            const tk_event_seed_line_t *line = seed->lines + i;
            ARG_TEXT(ev->types[line->type].name.base, ev->types[line->type].name.len);
            ARG_TEXT(line->held ? "held" : "sold", 4);
            ARG_INT(line->n);
            ARG_INT(line->until_ms);
        }
    }
#undef ARG_INT
#undef ARG_TEXT
    tk_redis_pipeline_append_argv(p, argc, argv, argvlen);
    free(block);
}

/* Which events of the list the masters do not know (their inventory is missing):
 * known[i] = 1 when event i's shard has it. -1 when a master did not answer. */
static int events_known(tk_redis_nodes_t *n, const tk_event_t *events, size_t nevents, char *known, char *err, size_t errsize)
{
    tk_redis_pipeline_t *p = tk_redis_pipeline_new(n);
    for (size_t i = 0; i < nevents; ++i) {
        tk_shard_keys_t keys;
        char field[TK_UUID_LEN + 8];
        tk_shard_keys(events[i].id, &keys);
        int len = snprintf(field, sizeof(field), "%s:types", events[i].id);
        const char *argv[] = {"HEXISTS", keys.names[TK_KEY_INV], field};
        size_t argvlen[] = {7, keys.lens[TK_KEY_INV], (size_t)len};
        tk_redis_pipeline_append_argv(p, 3, argv, argvlen);
    }
    tk_redis_pipeline_exec(p);
    int rc = 0;
    for (size_t i = 0; i < nevents && rc == 0; ++i) {
        redisReply *reply = tk_redis_pipeline_reply(p, i);
        if (reply == NULL || reply->type != REDIS_REPLY_INTEGER) {
            snprintf(err, errsize, "looking up event %s: %s", events[i].id,
                     reply != NULL && reply->type == REDIS_REPLY_ERROR ? reply->str : tk_redis_pipeline_error(p, i));
            rc = -1;
        } else {
            known[i] = reply->integer != 0;
        }
    }
    tk_redis_pipeline_free(p);
    return rc;
}

int tk_inventory_init_events(tk_redis_nodes_t *n, PGconn *pg, const tk_event_t *events, size_t nevents, char *err, size_t errsize)
{
    char *known = h2o_mem_alloc(nevents + 1);
    tk_event_seed_t *seeds = h2o_mem_alloc(sizeof(*seeds) * (nevents + 1));
    memset(seeds, 0, sizeof(*seeds) * (nevents + 1));
    tk_redis_pipeline_t *p = NULL;
    int rc = events_known(n, events, nevents, known, err, errsize);
    /* an event its shard does not know starts from what PostgreSQL knows of its tickets
     * (nothing, for a new one): a Redis that lost its data must not sell them again */
    for (size_t i = 0; i < nevents && rc == 0; ++i)
        if (!known[i])
            rc = tk_pg_event_seed(pg, events + i, seeds + i, err, errsize);
    if (rc != 0)
        goto Exit;
    p = tk_redis_pipeline_new(n);
    for (size_t i = 0; i < nevents; ++i)
        append_event_init(p, events + i, known[i] ? NULL : seeds + i);
    tk_redis_pipeline_exec(p);
    for (size_t i = 0; i < nevents && rc == 0; ++i) {
        redisReply *reply = tk_redis_pipeline_reply(p, i);
        if (reply == NULL || reply->type == REDIS_REPLY_ERROR) {
            snprintf(err, errsize, "tk_event_init of event %s: %s", events[i].id,
                     reply != NULL ? reply->str : tk_redis_pipeline_error(p, i));
            rc = -1;
        } else if (!known[i] && seeds[i].nlines != 0) {
            tk_shard_touch(events[i].id); /* held tickets in its buckets: the sweeper must look */
            tk_log_warn("inventory", "event %s was missing in Redis: its inventory starts from PostgreSQL's tickets", events[i].id);
        }
    }
Exit:
    if (p != NULL)
        tk_redis_pipeline_free(p);
    for (size_t i = 0; i < nevents; ++i)
        free(seeds[i].lines);
    free(seeds);
    free(known);
    return rc;
}

/* FCALL fn on the keys of ev's shard with ev's id as the only argument */
static int call_for_event(tk_redis_t *r, const char *fn, const tk_event_t *ev, tk_redis_cb cb, void *data)
{
    tk_shard_keys_t keys;
    const char *argv[TK_FCALL_PREFIX_LEN + 1];
    size_t argvlen[TK_FCALL_PREFIX_LEN + 1];
    tk_shard_keys(ev->id, &keys);
    int argc = tk_fcall_prefix(fn, &keys, argv, argvlen);
    argv[argc] = ev->id, argvlen[argc++] = TK_UUID_LEN;
    return tk_redis_command(r, cb, data, argc, argv, argvlen);
}

int tk_inventory_avail(tk_redis_t *r, const tk_event_t *ev, tk_redis_cb cb, void *data)
{
    /* tk_avail is no-writes: FCALL_RO, so a replica could answer it */
    tk_shard_keys_t keys;
    const char *argv[TK_FCALL_PREFIX_LEN + 1];
    size_t argvlen[TK_FCALL_PREFIX_LEN + 1];
    tk_shard_keys(ev->id, &keys);
    int argc = tk_fcall_prefix("tk_avail", &keys, argv, argvlen);
    argv[0] = "FCALL_RO", argvlen[0] = 8;
    argv[argc] = ev->id, argvlen[argc++] = TK_UUID_LEN;
    return tk_redis_command(r, cb, data, argc, argv, argvlen);
}

int tk_inventory_stats(tk_redis_t *r, const tk_event_t *ev, tk_redis_cb cb, void *data)
{
    return call_for_event(r, "tk_stats", ev, cb, data);
}

int tk_inventory_turned_away(tk_redis_t *r, const char *event, uint32_t n, tk_redis_cb cb, void *data)
{
    tk_shard_keys_t keys;
    const char *argv[TK_FCALL_PREFIX_LEN + 2];
    size_t argvlen[TK_FCALL_PREFIX_LEN + 2];
    char count[16];
    tk_shard_keys(event, &keys);
    int argc = tk_fcall_prefix("tk_turned_away", &keys, argv, argvlen);
    argv[argc] = event, argvlen[argc++] = TK_UUID_LEN;
    argv[argc] = count, argvlen[argc++] = (size_t)snprintf(count, sizeof(count), "%" PRIu32, n);
    return tk_redis_command(r, cb, data, argc, argv, argvlen);
}

int tk_inventory_parse_stats(const redisReply *reply, h2o_mem_pool_t *pool, tk_event_stats_t *out)
{
    enum { HEADER = 9, PER_TYPE = 5 };
    memset(out, 0, sizeof(*out));
    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY || reply->elements < HEADER)
        return -1;
    for (size_t i = 0; i < HEADER; ++i)
        if (reply->element[i]->type != REDIS_REPLY_INTEGER)
            return -1;
    int64_t *header[HEADER] = {&out->capacity, &out->available,     &out->held,        &out->sold,  &out->cancelled,
                               &out->expired,  &out->revenue_minor, NULL /* ntypes */, &out->lag_ms};
    for (size_t i = 0; i < HEADER; ++i)
        if (header[i] != NULL)
            *header[i] = reply->element[i]->integer;
    int64_t ntypes = reply->element[7]->integer;
    /* the demand figures may follow the per-type entries (engine/history.h) */
    if (ntypes < 0 || (size_t)ntypes > (reply->elements - HEADER) / PER_TYPE)
        return -1;
    out->ntypes = (size_t)ntypes;
    out->types = h2o_mem_alloc_pool(pool, sizeof(*out->types) * (out->ntypes + 1));
    for (size_t i = 0; i < out->ntypes; ++i) {
        redisReply **e = reply->element + HEADER + PER_TYPE * i;
        if (e[0]->type != REDIS_REPLY_STRING)
            return -1;
        for (int k = 1; k < PER_TYPE; ++k)
            if (e[k]->type != REDIS_REPLY_INTEGER)
                return -1;
        out->types[i] = (tk_type_stats_t){.name = h2o_iovec_init(e[0]->str, e[0]->len),
                                          .capacity = e[1]->integer,
                                          .available = e[2]->integer,
                                          .held = e[3]->integer,
                                          .sold = e[4]->integer};
    }
    return 0;
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

int tk_inventory_ping(tk_redis_t *r, tk_redis_cb cb, void *data)
{
    static const char *argv[] = {"PING"};
    static const size_t argvlen[] = {4};
    return tk_redis_command(r, cb, data, 1, argv, argvlen);
}

int tk_inventory_parse_ping(const redisReply *reply)
{
    return reply != NULL && reply->type == REDIS_REPLY_STATUS && reply->len == 4 && memcmp(reply->str, "PONG", 4) == 0 ? 0 : -1;
}

void tk_waitroom_keys(const char *event, tk_waitroom_keys_t *keys)
{
    snprintf(keys->wr, sizeof(keys->wr), "tk:{%.4s}:wr", event);
    snprintf(keys->wa, sizeof(keys->wa), "tk:{%.4s}:wa", event);
}

void tk_inventory_idem_key(const unsigned char *digest, char *out)
{
    static const char prefix[] = "tk:idem:";
    memcpy(out, prefix, sizeof(prefix) - 1);
    h2o_hex_encode(out + sizeof(prefix) - 1, digest, 32);
}
