/*
 * libFuzzer target for the Redis Cluster reply decoders of engine/cluster_slots.c: the
 * CLUSTER SLOTS map (tk_slot_map_parse) and the redirect errors (tk_cluster_redirect),
 * the only replies that steer where the router sends commands. The input is RESP wire
 * text, turned into replies by hiredis' own redisReader as the connection does. An
 * accepted map must point every owned slot at a listed master with a port; a redirect
 * must name a slot in range and, unless its host is empty, a port.
 */
#include "engine/cluster_slots.h"
#include "tests/fuzz/resp_input.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static tk_slot_map_t map;

static void check_reply(const redisReply *reply)
{
    char err[256];
    if (tk_slot_map_parse(&map, reply, "seed.example", err, sizeof(err)) == 0) {
        if (map.nmasters > TK_CLUSTER_MAX_MASTERS)
            abort();
        for (size_t m = 0; m < map.nmasters; ++m)
            if (map.masters[m].port == 0 || memchr(map.masters[m].host, '\0', sizeof(map.masters[m].host)) == NULL)
                abort();
        for (size_t s = 0; s < TK_CLUSTER_SLOTS; ++s)
            if (map.owner[s] != TK_CLUSTER_NO_OWNER && map.owner[s] >= map.nmasters)
                abort();
    } else if (memchr(err, '\0', sizeof(err)) == NULL) {
        abort();
    }
    tk_redirect_t to;
    switch (tk_cluster_redirect(reply, &to)) {
    case TK_REDIRECT_MOVED:
    case TK_REDIRECT_ASK:
        if (to.slot >= TK_CLUSTER_SLOTS || to.port == 0 || memchr(to.host, '\0', sizeof(to.host)) == NULL ||
            reply->type != REDIS_REPLY_ERROR)
            abort();
        break;
    case TK_REDIRECT_TRYAGAIN:
    case TK_REDIRECT_CLUSTERDOWN:
        if (reply->type != REDIS_REPLY_ERROR)
            abort();
        break;
    case TK_REDIRECT_NONE:
        break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    tk_fuzz_each_reply(data, size, check_reply);
    return 0;
}
