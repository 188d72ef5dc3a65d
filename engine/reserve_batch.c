/*
 * The group-commit batcher: per shard an open batch (callbacks and a copy of every
 * request's arguments in the batch's own pool) until the end of the loop pass or until
 * it is full; then one FCALL tk_reserve_batch and, on its reply, one callback per
 * request with its own element. Batch blocks are recycled per loop, so a warm loop
 * allocates nothing per batch beyond what its pool already holds.
 */
#include "engine/reserve_batch.h"
#include "engine/inventory.h"
#include "engine/shard_activity.h"

#include <stdio.h>
#include <string.h>

#define MAX_OPEN 16 /* shards with an open batch in one pass; one more sends them early */
#define MAX_FREE 8  /* batch blocks kept for reuse */
#define BATCH_NKEYS (TK_SHARD_NKEYS + 2)

typedef struct st_tk_reserve_member_t {
    tk_redis_cb cb;
    void *data;
} tk_reserve_member_t;

typedef struct st_tk_reserve_batch_t {
    struct st_tk_reserve_batch_t *next; /* in the free list or the failed list */
    tk_reserve_batcher_t *owner;
    char shard[TK_SHARD_LEN + 1];
    size_t n;
    tk_reserve_member_t members[TK_RESERVE_BATCH_MAX];
    H2O_VECTOR(h2o_iovec_t) args; /* in pool: per request nargs, fair, admission, its arguments */
    h2o_mem_pool_t pool;
} tk_reserve_batch_t;

struct st_tk_reserve_batcher_t {
    tk_redis_t *redis;
    h2o_loop_t *loop;
    h2o_timeout_t end_of_pass; /* zero delay: fires after the pass's sockets were served */
    h2o_timeout_entry_t flush_entry;
    tk_reserve_batch_t *open[MAX_OPEN];
    size_t nopen;
    tk_reserve_batch_t *failed; /* sent early and refused by the router: answered at the end of the pass */
    tk_reserve_batch_t *free;
    size_t nfree;
    size_t queued;
    uint64_t grouped, batches;
};

static tk_reserve_batch_t *batch_take(tk_reserve_batcher_t *b, const char *id)
{
    tk_reserve_batch_t *bt = b->free;
    if (bt != NULL) {
        b->free = bt->next;
        --b->nfree;
    } else {
        bt = h2o_mem_alloc(sizeof(*bt));
        h2o_mem_init_pool(&bt->pool);
    }
    bt->next = NULL;
    bt->owner = b;
    memcpy(bt->shard, id, TK_SHARD_LEN);
    bt->shard[TK_SHARD_LEN] = '\0';
    bt->n = 0;
    memset(&bt->args, 0, sizeof(bt->args));
    return bt;
}

static void batch_recycle(tk_reserve_batcher_t *b, tk_reserve_batch_t *bt)
{
    if (b->nfree >= MAX_FREE) {
        h2o_mem_clear_pool(&bt->pool);
        free(bt);
        return;
    }
    bt->next = b->free;
    b->free = bt;
    ++b->nfree;
}

/* Answers every request of bt with reply: its own element when reply is the array of
 * their answers, the reply itself when it is an error or missing. */
static void batch_answer(tk_reserve_batch_t *bt, redisReply *reply)
{
    int per_request = reply != NULL && reply->type == REDIS_REPLY_ARRAY;
    int well_formed = per_request && reply->elements == bt->n;
    for (size_t i = 0; i < bt->n; ++i) {
        redisReply *own = !per_request ? reply : well_formed ? reply->element[i] : NULL;
        bt->members[i].cb(own, bt->members[i].data);
    }
    batch_recycle(bt->owner, bt);
}

static void on_batch_reply(redisReply *reply, void *data)
{
    tk_reserve_batch_t *bt = data;
    if (reply != NULL && reply->type == REDIS_REPLY_ARRAY)
        tk_shard_touch(bt->shard); /* holds may have been made: the sweeper must learn their deadlines */
    batch_answer(bt, reply);
}

static h2o_iovec_t pool_copy(h2o_mem_pool_t *pool, const char *s, size_t len)
{
    char *buf = h2o_mem_alloc_pool(pool, len + 1);
    memcpy(buf, s, len);
    buf[len] = '\0';
    return h2o_iovec_init(buf, len);
}

/* Sends bt; 0, or -1 when the router refused it (the caller answers its requests). */
static int batch_send(tk_reserve_batcher_t *b, tk_reserve_batch_t *bt)
{
    tk_shard_keys_t keys;
    tk_shard_keys(bt->shard, &keys);
    char extra[2][TK_KEY_LEN], count[24];
    size_t argc = 3 + BATCH_NKEYS + 1 + bt->args.size, k = 0;
    const char **argv = h2o_mem_alloc_pool(&bt->pool, sizeof(*argv) * argc);
    size_t *argvlen = h2o_mem_alloc_pool(&bt->pool, sizeof(*argvlen) * argc);
    argv[k] = "FCALL", argvlen[k++] = 5;
    argv[k] = "tk_reserve_batch", argvlen[k++] = 16;
    argv[k] = "9", argvlen[k++] = 1;
    for (size_t i = 0; i < TK_SHARD_NKEYS; ++i, ++k)
        argv[k] = keys.names[i], argvlen[k] = keys.lens[i];
    static const char *extra_names[] = {"rt", "wa"};
    for (size_t i = 0; i < 2; ++i, ++k) {
        argvlen[k] = (size_t)snprintf(extra[i], sizeof(extra[i]), "tk:{%s}:%s", bt->shard, extra_names[i]);
        argv[k] = extra[i];
    }
    argv[k] = count, argvlen[k++] = (size_t)snprintf(count, sizeof(count), "%zu", bt->n);
    for (size_t i = 0; i < bt->args.size; ++i, ++k)
        argv[k] = bt->args.entries[i].base, argvlen[k] = bt->args.entries[i].len;
    int ret = tk_redis_command(b->redis, on_batch_reply, bt, (int)argc, argv, argvlen);
    h2o_mem_clear_pool(&bt->pool); /* the router keeps its own formatted copy */
    memset(&bt->args, 0, sizeof(bt->args));
    __atomic_fetch_sub(&b->queued, bt->n, __ATOMIC_RELAXED);
    if (ret == 0 && bt->n > 1) {
        __atomic_fetch_add(&b->grouped, bt->n, __ATOMIC_RELAXED);
        __atomic_fetch_add(&b->batches, 1, __ATOMIC_RELAXED);
    }
    return ret;
}

/* Sends every open batch; those the router refuses are answered now (in_pass: from the
 * end-of-pass timer) or at the end of the pass (while a request is being handled). */
static void send_open(tk_reserve_batcher_t *b, int in_pass)
{
    tk_reserve_batch_t *sending[MAX_OPEN];
    size_t n = b->nopen;
    memcpy(sending, b->open, sizeof(sending[0]) * n);
    b->nopen = 0; /* an answer below may queue a request, which opens a new batch */
    for (size_t i = 0; i < n; ++i) {
        tk_reserve_batch_t *bt = sending[i];
        if (batch_send(b, bt) == 0)
            continue;
        if (in_pass) {
            batch_answer(bt, NULL);
        } else {
            bt->next = b->failed;
            b->failed = bt;
        }
    }
}

static void on_end_of_pass(h2o_timeout_entry_t *entry)
{
    tk_reserve_batcher_t *b = H2O_STRUCT_FROM_MEMBER(tk_reserve_batcher_t, flush_entry, entry);
    send_open(b, 1);
    while (b->failed != NULL) {
        tk_reserve_batch_t *bt = b->failed;
        b->failed = bt->next;
        batch_answer(bt, NULL);
    }
}

tk_reserve_batcher_t *tk_reserve_batcher_create(h2o_loop_t *loop, tk_redis_t *redis)
{
    tk_reserve_batcher_t *b = h2o_mem_alloc(sizeof(*b));
    memset(b, 0, sizeof(*b));
    b->redis = redis;
    b->loop = loop;
    h2o_timeout_init(loop, &b->end_of_pass, 0);
    b->flush_entry.cb = on_end_of_pass;
    return b;
}

static tk_reserve_batch_t *open_batch_for(tk_reserve_batcher_t *b, const char *id)
{
    for (size_t i = 0; i < b->nopen; ++i) {
        tk_reserve_batch_t *bt = b->open[i];
        if (memcmp(bt->shard, id, TK_SHARD_LEN) != 0)
            continue;
        if (bt->n < TK_RESERVE_BATCH_MAX)
            return bt;
        /* full: it goes now, and a new batch of the shard takes its place */
        if (batch_send(b, bt) != 0) {
            bt->next = b->failed;
            b->failed = bt;
        }
        return b->open[i] = batch_take(b, id);
    }
    if (b->nopen == MAX_OPEN)
        send_open(b, 0);
    return b->open[b->nopen++] = batch_take(b, id);
}

void tk_reserve_batcher_add(tk_reserve_batcher_t *b, const char *id, int fair, int admission, size_t argc, const char *const *argv,
                            const size_t *argvlen, tk_redis_cb cb, void *data)
{
    tk_reserve_batch_t *bt = open_batch_for(b, id);
    bt->members[bt->n++] = (tk_reserve_member_t){.cb = cb, .data = data};
    h2o_vector_reserve(&bt->pool, &bt->args, bt->args.size + 3 + argc);
    char *nargs = h2o_mem_alloc_pool(&bt->pool, 24);
    bt->args.entries[bt->args.size++] = h2o_iovec_init(nargs, (size_t)snprintf(nargs, 24, "%zu", argc));
    bt->args.entries[bt->args.size++] = h2o_iovec_init(fair ? "1" : "0", 1);
    bt->args.entries[bt->args.size++] = h2o_iovec_init(admission ? "1" : "0", 1);
    for (size_t i = 0; i < argc; ++i)
        bt->args.entries[bt->args.size++] = pool_copy(&bt->pool, argv[i], argvlen[i]);
    __atomic_fetch_add(&b->queued, 1, __ATOMIC_RELAXED);
    if (!h2o_timeout_is_linked(&b->flush_entry))
        h2o_timeout_link(b->loop, &b->end_of_pass, &b->flush_entry);
}

size_t tk_reserve_batcher_queued(const tk_reserve_batcher_t *b)
{
    return __atomic_load_n(&b->queued, __ATOMIC_RELAXED);
}

uint64_t tk_reserve_batcher_grouped(const tk_reserve_batcher_t *b)
{
    return __atomic_load_n(&b->grouped, __ATOMIC_RELAXED);
}

uint64_t tk_reserve_batcher_batches(const tk_reserve_batcher_t *b)
{
    return __atomic_load_n(&b->batches, __ATOMIC_RELAXED);
}
