/*
 * Group commit of holds. The tk_reserve requests of one shard that a loop thread takes in
 * one pass of its event loop go to Redis together, as one FCALL tk_reserve_batch, when the
 * pass ends (a zero-delay timer: it runs after every readable socket of the pass was
 * served). Each request is still held or refused on its own and answered on its own; what
 * the batch shares is the call, the round trip and every read and write the requests have
 * in common (lua/ticketd.lua, RESERVING). Under load this amortises Redis' cost per hold;
 * a lone request goes alone, in the same pass, so it waits for nothing.
 */
#ifndef TK_RESERVE_BATCH_H
#define TK_RESERVE_BATCH_H

#include "engine/redis_conn.h"

#include <h2o.h>

/* The most requests in one call: bounds how long one call holds Redis' only thread. */
#define TK_RESERVE_BATCH_MAX 64

typedef struct st_tk_reserve_batcher_t tk_reserve_batcher_t;

tk_reserve_batcher_t *tk_reserve_batcher_create(h2o_loop_t *loop, tk_redis_t *redis);
/* Queues one request of the shard of id (a reservation id): argv are the arguments
 * tk_reserve takes, fair and admission say whether they carry its fair-use and admission
 * parts. The strings are copied. cb gets the request's own answer: its element of the
 * batch's reply, or the whole reply when that is an error or missing (NULL). */
void tk_reserve_batcher_add(tk_reserve_batcher_t *b, const char *id, int fair, int admission, size_t argc, const char *const *argv,
                            const size_t *argvlen, tk_redis_cb cb, void *data);
/* Requests queued and not yet sent (read from any thread). */
size_t tk_reserve_batcher_queued(const tk_reserve_batcher_t *b);
/* Requests sent in batches of two or more, and those batches (read from any thread). */
uint64_t tk_reserve_batcher_grouped(const tk_reserve_batcher_t *b);
uint64_t tk_reserve_batcher_batches(const tk_reserve_batcher_t *b);

#endif
