/*
 * libFuzzer target for the Redis reply decoders of engine/inventory.c. The input is RESP
 * wire text, turned into replies by hiredis' own redisReader exactly as the connection
 * does; every complete reply goes through tk_inventory_parse_avail (against a fixed
 * two-type event), tk_inventory_parse_stats and tk_inventory_parse_ping, and the input's
 * first bytes through tk_shard_of_outbox_key. An accepted reply must have the shape each
 * decoder documents; nothing may read out of bounds or allocate without limit.
 * Links engine/inventory.c and the engine it calls into (tk_engine in CMake).
 */
#include "engine/history.h"
#include "engine/inventory.h"
#include "tests/fuzz/resp_input.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static tk_catalog_t *sample_event(void)
{
    static tk_catalog_t *c;
    if (c == NULL) {
        c = tk_catalog_new(1);
        tk_catalog_add_event(c, "abcd0000-0000-4000-8000-000000000001", "Gala", 4, INT64_C(1798747200000));
        tk_catalog_add_type(c, "11111111-0000-4000-8000-000000000001", "VIP", 3, 35000, 100);
        tk_catalog_add_type(c, "22222222-0000-4000-8000-000000000002", "Standard", 8, 1000, 500);
        tk_catalog_seal(c);
    }
    return c;
}

static void check_reply(const redisReply *reply)
{
    const tk_event_t *ev = sample_event()->events;
    int64_t left[2];
    if (tk_inventory_parse_avail(reply, ev, left) == 0 && (reply->type != REDIS_REPLY_ARRAY || reply->elements % 2 != 0))
        abort();

    h2o_mem_pool_t pool;
    tk_event_stats_t s;
    h2o_mem_init_pool(&pool);
    if (tk_inventory_parse_stats(reply, &pool, &s) == 0) {
        /* the demand figures may follow the per-type entries: tk_history_parse judges them */
        if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 9 + 5 * s.ntypes)
            abort();
        for (size_t i = 0; i < s.ntypes; ++i)
            if (s.types[i].name.base == NULL && s.types[i].name.len != 0)
                abort();
        tk_demand_t d;
        if (tk_history_parse(reply, s.ntypes, &pool, &d) == 0 && reply->elements != 9 + 5 * s.ntypes &&
            reply->elements != 9 + 5 * s.ntypes + 4 + 6 * d.nsamples)
            abort();
    }
    h2o_mem_clear_pool(&pool);

    if (tk_inventory_parse_ping(reply) == 0 && (reply->type != REDIS_REPLY_STATUS || strcmp(reply->str, "PONG") != 0))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char shard[TK_SHARD_LEN + 1];
    if (tk_shard_of_outbox_key((const char *)data, size < 16 ? size : 16, shard) == 0 && strlen(shard) != TK_SHARD_LEN)
        abort();

    tk_fuzz_each_reply(data, size, check_reply);
    return 0;
}
