/*
 * The writer's reading of the outbox streams (engine/writer.c does the rest): the
 * consumer group of every shard, claiming what crashed writers left, and rounds of reads
 * that hand back only entries that may be committed to PostgreSQL. On a single Redis a
 * round is one XREADGROUP over every stream, blocking up to 100 ms, as it always was. On
 * Redis Cluster no command may span slots, so each stream is read alone at the master
 * that owns it, pipelined per master — every round a stream this process saw written to
 * in the last seconds (shard_activity.h: its own writes, entries read there), any other
 * once a second, so an idle catalog is not read ten times a second per writer and shard
 * — and a master with replicas must show, with WAIT,
 * that a replica has what was read before its entries are handed back, so PostgreSQL
 * never keeps a row that the replica promoted by a failover would not have (issue 15).
 * A master that cannot be reached is skipped, logged once, while the others are read;
 * what it had delivered but not seen acknowledged is read again from this consumer's
 * pending list once it, or its promoted replica, answers.
 */
#ifndef TK_WRITER_OUTBOX_H
#define TK_WRITER_OUTBOX_H

#include "engine/catalog.h"
#include "engine/cluster_slots.h"
#include "engine/outbox.h"
#include "engine/redis_nodes.h"

#include <stdint.h>

#define TK_OUTBOX_MAX_SHARDS 4096
/* entries another writer left pending this long are claimed */
#define TK_WRITER_CLAIM_IDLE_MS 10000
/* On Redis Cluster, how long the reader waits for a replica of a master to confirm the
 * outbox entries it read there before it hands them out (WAIT 1 this) */
#define TK_WRITER_WAIT_MS 1000

typedef struct st_tk_writer_entry_t {
    char shard[TK_SHARD_LEN + 1];
    char id[32];
    int decoded;
    tk_outbox_record_t rec;
    int set_aside; /* moved to the dead-letter stream: not in PostgreSQL, so Redis keeps the record */
} tk_writer_entry_t;

/* what the reader knows of one master, kept by name across refreshes of the slot map */
typedef struct st_tk_outbox_node_t {
    char name[272];   /* host:port */
    int pending;      /* read this consumer's pending entries there before new ones */
    int down;         /* unreachable since the last round that read it (logged once) */
    int unreplicated; /* no replica confirmed the last entries read there (logged once) */
    int64_t skip_until_ms, backoff_ms;
} tk_outbox_node_t;

typedef struct st_tk_outbox_reader_t {
    char consumer[96];
    char grouped[TK_OUTBOX_MAX_SHARDS][TK_SHARD_LEN + 1]; /* shards whose group exists */
    int64_t read_ms[TK_OUTBOX_MAX_SHARDS];                /* cluster: when each was last read (mono) */
    size_t ngrouped;
    tk_outbox_node_t nodes[TK_CLUSTER_MAX_MASTERS]; /* in the order of the map of this round */
    size_t nnodes;
    int64_t last_claim_ms, last_refresh_ms;
    int refresh_wanted;
} tk_outbox_reader_t;

void tk_outbox_reader_init(tk_outbox_reader_t *r, const char *consumer);
/* One round: makes the groups of new shards, claims abandoned entries every few seconds,
 * then reads up to max entries into batch (*nbatch; decoded, or decoded == 0 when an entry
 * is malformed). A round that finds nothing new takes up to 100 ms. *held_back counts the
 * masters whose entries were read but kept back this round because no replica confirmed
 * them; they stay pending and come again. 0, or -1 when Redis could not be read at all
 * (the caller backs off). */
int tk_outbox_reader_read(tk_outbox_reader_t *r, tk_redis_nodes_t *n, const tk_catalog_t *catalog, tk_writer_entry_t *batch,
                          size_t max, size_t *nbatch, uint64_t *held_back);
/* Entries handed out were not all acknowledged: the next round reads this consumer's
 * pending entries again, everywhere. */
void tk_outbox_reader_reread(tk_outbox_reader_t *r);
void tk_writer_entry_dispose(tk_writer_entry_t *e);

#endif
