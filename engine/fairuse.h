/*
 * Fair use and backpressure on the hold path: what ticketd adds to a tk_reserve call so
 * that the function itself enforces, in the same round trip and on keys of the same
 * shard, a client's live holds (TICKETD_CLIENT_MAX_HOLDS), its hold rate
 * (TICKETD_CLIENT_HOLD_RATE) and the pause of a shard whose outbox is over
 * TICKETD_OUTBOX_PAUSE; and how its refusals are read back. A client is named to Redis
 * only by a keyed hash of its address (HMAC with TICKETD_SECRET), so Redis never holds
 * an address, and processes that share the secret share the limits.
 */
#ifndef TK_FAIRUSE_H
#define TK_FAIRUSE_H

#include "engine/config.h"
#include "engine/netaddr.h"

#include <h2o.h>
#include <hiredis/hiredis.h>

#define TK_CLIENT_ID_LEN 16 /* hex characters: 64 bits of the keyed hash */
#define TK_FAIRUSE_NARGS 4  /* C, max_holds, rate, outbox_limit */

/* The fair-use part of one tk_reserve call; lives until its arguments are queued (the
 * group commit copies them). Its key, tk:{s}:rt, is one of tk_reserve_batch's
 * (engine/reserve_batch.c). */
typedef struct st_tk_fairuse_t {
    char client[TK_CLIENT_ID_LEN + 1]; /* empty: no client could be named */
    char numbers[3][16];
} tk_fairuse_t;

typedef enum en_tk_fairuse_refusal_t {
    TK_FAIRUSE_ADMITTED = 0, /* not a fair-use answer: the reservation's own outcome */
    TK_FAIRUSE_TOO_MANY,     /* the client is over a limit: 429 */
    TK_FAIRUSE_PAUSED,       /* the shard's outbox is over its limit: 503 */
    TK_FAIRUSE_OUT_OF_MEMORY /* Redis refused the write at maxmemory: 503 */
} tk_fairuse_refusal_t;

/* Fills fu for a client at addr (NULL: none known) under config's limits. */
void tk_fairuse_init(tk_fairuse_t *fu, const tk_config_t *config, const tk_netaddr_t *addr);
/* Puts the TK_FAIRUSE_NARGS fair-use arguments at argv[k], the first of tk_reserve's ARGV.
 * Returns the new k. */
size_t tk_fairuse_args(tk_fairuse_t *fu, const char **argv, size_t *argvlen, size_t k);
/* Whether a tk_reserve reply is a fair-use refusal (or Redis' OOM error); the seconds to
 * wait go to *retry_after. */
tk_fairuse_refusal_t tk_fairuse_parse_refusal(const redisReply *reply, int *retry_after);
/* Whether an error reply is Redis refusing a write at maxmemory ("OOM ..."). */
int tk_fairuse_is_oom(const redisReply *reply);

#endif
