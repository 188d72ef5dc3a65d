/*
 * Redis Cluster's addressing, with no I/O: the CRC16 hash slot of a key (only the
 * {hash tag} counts when there is one), which key a command addresses, the slot map
 * read from CLUSTER SLOTS, and what an error reply asks of the client (MOVED, ASK,
 * TRYAGAIN, CLUSTERDOWN). The asynchronous router (redis_conn.c) and the blocking
 * connections (redis_nodes.c) both decide with these functions, so the unit tests here
 * cover both.
 */
#ifndef TK_CLUSTER_SLOTS_H
#define TK_CLUSTER_SLOTS_H

#include <hiredis/hiredis.h>
#include <stddef.h>
#include <stdint.h>

#define TK_CLUSTER_SLOTS 16384
#define TK_CLUSTER_MAX_MASTERS 64
#define TK_CLUSTER_NO_OWNER 0xffff

unsigned tk_cluster_key_slot(const char *key, size_t len);

/* The key a command addresses: FCALL and FCALL_RO their first key (none when numkeys is
 * 0), XREAD and XREADGROUP the first stream, XGROUP, XINFO and OBJECT the argument after
 * the subcommand, every other command its first argument. 0, or -1 when it addresses none (PING,
 * INFO, WAIT, FUNCTION, CLUSTER …): such commands go to a node chosen by the caller. */
int tk_cluster_command_key(int argc, const char **argv, const size_t *argvlen, const char **key, size_t *keylen);

typedef enum en_tk_redirect_kind_t {
    TK_REDIRECT_NONE,        /* not a cluster error: the reply is the answer */
    TK_REDIRECT_MOVED,       /* the slot has a new owner: update the map, retry there */
    TK_REDIRECT_ASK,         /* the slot is migrating: ASKING then the command there, map unchanged */
    TK_REDIRECT_TRYAGAIN,    /* a multi-key command during a migration: retry shortly */
    TK_REDIRECT_CLUSTERDOWN, /* the cluster cannot serve the slot now (failover under way) */
} tk_redirect_kind_t;

typedef struct st_tk_redirect_t {
    tk_redirect_kind_t kind;
    unsigned slot;
    char host[256];
    uint16_t port;
} tk_redirect_t;

/* Classifies a reply; anything but an error reply of the four kinds is TK_REDIRECT_NONE. */
tk_redirect_kind_t tk_cluster_redirect(const redisReply *reply, tk_redirect_t *out);

typedef struct st_tk_cluster_node_t {
    char host[256];
    uint16_t port;
    unsigned nreplicas; /* replicas CLUSTER SLOTS lists for it (connected or not) */
} tk_cluster_node_t;

typedef struct st_tk_slot_map_t {
    size_t nmasters;
    tk_cluster_node_t masters[TK_CLUSTER_MAX_MASTERS];
    uint16_t owner[TK_CLUSTER_SLOTS]; /* index into masters, or TK_CLUSTER_NO_OWNER */
} tk_slot_map_t;

/* One node owning every slot: a single Redis seen as a cluster of one. */
void tk_slot_map_single(tk_slot_map_t *map, const char *host, uint16_t port);
/* Fills map from a CLUSTER SLOTS reply; an empty host in it means the node answering
 * (seed_host). 0, or -1 with why in err when the reply is not a slot map. */
int tk_slot_map_parse(tk_slot_map_t *map, const redisReply *reply, const char *seed_host, char *err, size_t errsize);
/* the index of host:port among the masters, or -1 */
int tk_slot_map_find(const tk_slot_map_t *map, const char *host, uint16_t port);

#endif
