/*
 * Rounds of outbox reads for the writer. Every command names one shard's stream, except
 * the single-Redis read (all streams in one XREADGROUP, as before clusters) and WAIT,
 * which is sent on the connection of the master it is about. The replication proof: WAIT
 * waits for the replication offset of the calling client's last write, so a read alone
 * proves nothing on Redis 7.2+ (7.0 sets that offset after every command, 7.2 only after
 * a command that propagated), and a BLOCKed XREADGROUP served later leaves it at the
 * instant it blocked. So before WAIT the reader claims one of the entries it just read
 * for itself again (XCLAIM … JUSTID, min-idle 0): a write that is always propagated, and
 * it comes after every entry read, so a replica that acknowledges it has them all. The
 * cluster rounds never block: the read's idle wait is a sleep.
 */
#include "engine/writer_outbox.h"
#include "engine/inventory.h"
#include "engine/log.h"
#include "engine/shard_activity.h"
#include "engine/timefmt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define READ_BLOCK_MS 100
#define CLAIM_EVERY_MS 5000
#define REFRESH_AFTER_ERROR_MS 1000 /* a slot-map refresh wanted after an error, at most this often */
#define REFRESH_EVERY_MS 10000      /* and one anyway: replicas that failed or came back, new masters */
#define NODE_BACKOFF_MAX_MS 5000
#define MIN_COUNT_PER_SHARD 50
#define CLAIM_COUNT 1000
/* a shard is claimed from when this process last saw something in its outbox within this:
 * the gauge looks at every outbox at least every ten seconds and touches a non-empty one */
#define CLAIM_RECENT_MS (TK_WRITER_CLAIM_IDLE_MS + 2 * CLAIM_EVERY_MS)
/* Redis Cluster: a stream of a shard this process saw written to this recently is read
 * every round; any other once per COLD_READ_MS, which bounds the wait of entries whose
 * writer's own process did not read them (it died, or wrote without noting the shard) */
#define ACTIVE_MS 3000
#define COLD_READ_MS 1000

void tk_outbox_reader_init(tk_outbox_reader_t *r, const char *consumer)
{
    memset(r, 0, sizeof(*r));
    snprintf(r->consumer, sizeof(r->consumer), "%s", consumer);
}

void tk_outbox_reader_reread(tk_outbox_reader_t *r)
{
    for (size_t i = 0; i < r->nnodes; ++i)
        r->nodes[i].pending = 1;
}

void tk_writer_entry_dispose(tk_writer_entry_t *e)
{
    if (e->decoded)
        tk_outbox_record_dispose(&e->rec);
    e->decoded = 0;
}

/* the i-th master's connection when it can be used (one that failed keeps err set until a
 * refresh replaces it) */
static redisContext *usable(tk_redis_nodes_t *n, size_t i)
{
    redisContext *c = tk_redis_nodes_at(n, i);
    return c != NULL && !c->err ? c : NULL;
}

/* Makes the group of every new shard at the shard's master (tk_redis_nodes_command routes
 * XGROUP by its stream and follows redirects). */
static void ensure_groups(tk_outbox_reader_t *r, tk_redis_nodes_t *n, const tk_catalog_t *catalog)
{
    for (size_t i = 0; i < catalog->nshards; ++i) {
        size_t j = 0;
        while (j < r->ngrouped && strcmp(r->grouped[j], catalog->shards[i]) != 0)
            ++j;
        if (j < r->ngrouped || r->ngrouped == TK_OUTBOX_MAX_SHARDS)
            continue;
        tk_shard_keys_t keys;
        tk_shard_keys(catalog->shards[i], &keys);
        redisReply *rep = tk_redis_nodes_command(n, "XGROUP CREATE %s " TK_OUTBOX_GROUP " 0 MKSTREAM", keys.names[TK_KEY_OB]);
        if (rep == NULL || (rep->type == REDIS_REPLY_ERROR && tk_cluster_redirect(rep, &(tk_redirect_t){0}) != TK_REDIRECT_NONE))
            r->refresh_wanted = 1; /* made at the next round, once the map is right */
        int ok = rep != NULL &&
                 (rep->type == REDIS_REPLY_STATUS || (rep->type == REDIS_REPLY_ERROR && strncmp(rep->str, "BUSYGROUP", 9) == 0));
        freeReplyObject(rep);
        if (ok) {
            r->read_ms[r->ngrouped] = 0; /* read at the next round */
            snprintf(r->grouped[r->ngrouped++], TK_SHARD_LEN + 1, "%s", catalog->shards[i]);
        }
    }
}

/* Takes over entries other writers left pending for longer than the claim idle time, at
 * each shard's owner; what is claimed is read with this consumer's pending entries. Only
 * an outbox that is not empty can hold such entries, and this process has seen those
 * lately (shard_activity.h); the others cost no command. */
static void claim_abandoned(tk_outbox_reader_t *r, tk_redis_nodes_t *n)
{
    int64_t recent = tk_time_mono_ms() - CLAIM_RECENT_MS;
    for (size_t i = 0; i < r->ngrouped; ++i) {
        if (tk_shard_touched_ms(tk_shard_slot(r->grouped[i])) < recent)
            continue;
        tk_shard_keys_t keys;
        tk_shard_keys(r->grouped[i], &keys);
        redisReply *rep = tk_redis_nodes_command(n, "XAUTOCLAIM %s " TK_OUTBOX_GROUP " %s %d 0-0 COUNT %d JUSTID",
                                                 keys.names[TK_KEY_OB], r->consumer, TK_WRITER_CLAIM_IDLE_MS, CLAIM_COUNT);
        if (rep != NULL && rep->type == REDIS_REPLY_ARRAY && rep->elements >= 2 && rep->element[1]->type == REDIS_REPLY_ARRAY &&
            rep->element[1]->elements != 0) {
            tk_log_info("writer", "claimed %zu abandoned outbox entries of shard %s", rep->element[1]->elements, r->grouped[i]);
            tk_outbox_reader_reread(r);
        }
        freeReplyObject(rep);
    }
}

/* Lines the reader's view of the masters up with the map of this round: a master keeps
 * its state under its name; a new one (a promoted replica, say) starts by reading this
 * consumer's pending entries there, which is how entries read but not acknowledged
 * before a failover come back. */
static void sync_nodes(tk_outbox_reader_t *r, tk_redis_nodes_t *n)
{
    tk_outbox_node_t was[TK_CLUSTER_MAX_MASTERS];
    size_t nwas = r->nnodes, count = tk_redis_nodes_count(n);
    memcpy(was, r->nodes, sizeof(was[0]) * nwas);
    r->nnodes = count < TK_CLUSTER_MAX_MASTERS ? count : TK_CLUSTER_MAX_MASTERS;
    for (size_t i = 0; i < r->nnodes; ++i) {
        const char *name = tk_redis_nodes_name(n, i);
        size_t j = 0;
        while (j < nwas && strcmp(was[j].name, name) != 0)
            ++j;
        if (j < nwas) {
            r->nodes[i] = was[j];
        } else {
            r->nodes[i] = (tk_outbox_node_t){.pending = 1};
            snprintf(r->nodes[i].name, sizeof(r->nodes[i].name), "%s", name);
        }
    }
}

/* Leaves master i alone for a while (doubling up to NODE_BACKOFF_MAX_MS) and asks for a
 * fresh slot map; its entries read so far stay pending and are read again. */
static void node_skip(tk_outbox_reader_t *r, size_t i)
{
    tk_outbox_node_t *node = r->nodes + i;
    node->pending = 1;
    node->backoff_ms = node->backoff_ms == 0 ? 250 : node->backoff_ms * 2;
    if (node->backoff_ms > NODE_BACKOFF_MAX_MS)
        node->backoff_ms = NODE_BACKOFF_MAX_MS;
    node->skip_until_ms = tk_time_mono_ms() + node->backoff_ms;
    r->refresh_wanted = 1;
}

static void node_failed(tk_outbox_reader_t *r, size_t i, const char *why)
{
    tk_outbox_node_t *node = r->nodes + i;
    if (!node->down)
        tk_log_warn("writer", "Redis master %s cannot be read (%s): its shards wait, the others are persisted", node->name, why);
    node->down = 1;
    node_skip(r, i);
}

/* no replica confirmed in time: a replica that failed leaves the map at the next
 * refresh, and a master without replicas has nothing to wait for */
static void node_unreplicated(tk_outbox_reader_t *r, size_t i)
{
    tk_outbox_node_t *node = r->nodes + i;
    if (!node->unreplicated)
        tk_log_warn("writer", "no replica of Redis master %s confirmed its outbox entries within %d ms: they wait", node->name,
                    TK_WRITER_WAIT_MS);
    node->unreplicated = 1;
    node_skip(r, i);
}

static void node_answered(tk_outbox_reader_t *r, size_t i)
{
    tk_outbox_node_t *node = r->nodes + i;
    if (node->down)
        tk_log_info("writer", "Redis master %s answers again", node->name);
    node->down = 0;
}

static void node_proven(tk_outbox_reader_t *r, size_t i)
{
    tk_outbox_node_t *node = r->nodes + i;
    if (node->unreplicated)
        tk_log_info("writer", "outbox entries of Redis master %s are persisted again (confirmed, or it has no replica left)",
                    node->name);
    node->unreplicated = 0;
    node->backoff_ms = 0;
}

/* Decodes an entry's fields: "r" and "m", or "m" alone (entries of versions before
 * 2026-12-07). -1 also for nil fields: the entry left the stream, only its
 * acknowledgement is due. */
static int decode_entry(const redisReply *fields, tk_outbox_record_t *rec)
{
    const redisReply *rid = NULL, *m = NULL;
    if (fields->type != REDIS_REPLY_ARRAY || fields->elements % 2 != 0)
        return -1;
    for (size_t i = 0; i < fields->elements; i += 2) {
        const redisReply *name = fields->element[i], *value = fields->element[i + 1];
        if (name->type != REDIS_REPLY_STRING || value->type != REDIS_REPLY_STRING)
            return -1;
        if (name->len == 1 && name->str[0] == 'r')
            rid = value;
        else if (name->len == 1 && name->str[0] == 'm')
            m = value;
    }
    if (m == NULL)
        return -1;
    return tk_outbox_decode_entry(rid != NULL ? rid->str : NULL, rid != NULL ? rid->len : 0, m->str, m->len, rec);
}

/* Appends the entries of an XREADGROUP reply; 1 when some did not fit (they were
 * delivered, so they are pending and read again). A shard whose group is gone (a Redis
 * that lost its data) is forgotten, so the next round makes the group again. */
static int take_reply(tk_outbox_reader_t *r, const redisReply *rep, tk_writer_entry_t *batch, size_t max, size_t *nbatch)
{
    int overflow = 0;
    if (rep->type == REDIS_REPLY_ERROR) {
        if (strncmp(rep->str, "NOGROUP", 7) == 0)
            r->ngrouped = 0;
        else if (tk_cluster_redirect(rep, &(tk_redirect_t){0}) != TK_REDIRECT_NONE)
            r->refresh_wanted = 1; /* the slot moved or is failing over: read it at its owner next round */
        return 0;
    }
    for (size_t s = 0; rep->type == REDIS_REPLY_ARRAY && s < rep->elements; ++s) {
        redisReply *stream = rep->element[s];
        if (stream->type != REDIS_REPLY_ARRAY || stream->elements != 2 || stream->element[1]->type != REDIS_REPLY_ARRAY)
            continue;
        char shard[TK_SHARD_LEN + 1];
        if (stream->element[0]->type != REDIS_REPLY_STRING ||
            tk_shard_of_outbox_key(stream->element[0]->str, stream->element[0]->len, shard) != 0)
            continue;
        if (stream->element[1]->elements != 0)
            tk_shard_touch(shard); /* written by someone: this process's sweeper learns of the shard */
        for (size_t e = 0; e < stream->element[1]->elements; ++e) {
            redisReply *entry = stream->element[1]->element[e];
            if (entry->type != REDIS_REPLY_ARRAY || entry->elements != 2 || entry->element[0]->type != REDIS_REPLY_STRING)
                continue;
            if (*nbatch == max) {
                overflow = 1;
                break;
            }
            tk_writer_entry_t *b = batch + (*nbatch)++;
            memset(b, 0, sizeof(*b));
            memcpy(b->shard, shard, sizeof(b->shard));
            snprintf(b->id, sizeof(b->id), "%s", entry->element[0]->str);
            b->decoded = decode_entry(entry->element[1], &b->rec) == 0;
        }
    }
    return overflow;
}

/* Today's read on a single Redis: one XREADGROUP over every grouped stream, blocking up to
 * READ_BLOCK_MS for new entries, or this consumer's pending entries without blocking. */
static int read_single(tk_outbox_reader_t *r, tk_redis_nodes_t *n, tk_writer_entry_t *batch, size_t max, size_t *nbatch)
{
    redisContext *c = r->nnodes != 0 ? usable(n, 0) : NULL;
    if (c == NULL) {
        r->refresh_wanted = 1;
        return -1;
    }
    tk_outbox_node_t *node = r->nodes;
    size_t argc = 0, ns = r->ngrouped;
    const char **argv = h2o_mem_alloc(sizeof(*argv) * (9 + 2 * ns));
    tk_shard_keys_t *keys = h2o_mem_alloc(sizeof(*keys) * (ns + 1));
    char count[16], block[16];
    snprintf(count, sizeof(count), "%zu", max);
    snprintf(block, sizeof(block), "%d", READ_BLOCK_MS);
    const char *fixed[] = {"XREADGROUP", "GROUP", TK_OUTBOX_GROUP, r->consumer, "COUNT", count};
    for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); ++i)
        argv[argc++] = fixed[i];
    if (!node->pending) {
        argv[argc++] = "BLOCK";
        argv[argc++] = block;
    }
    argv[argc++] = "STREAMS";
    for (size_t i = 0; i < ns; ++i) {
        tk_shard_keys(r->grouped[i], keys + i);
        argv[argc++] = keys[i].names[TK_KEY_OB];
    }
    for (size_t i = 0; i < ns; ++i)
        argv[argc++] = node->pending ? "0" : ">";
    redisReply *rep = redisCommandArgv(c, (int)argc, argv, NULL);
    free(argv);
    free(keys);
    if (rep == NULL) {
        node->pending = 1;
        r->refresh_wanted = 1;
        return -1;
    }
    int rc = rep->type == REDIS_REPLY_ARRAY || rep->type == REDIS_REPLY_NIL ? 0 : -1;
    if (rep->type == REDIS_REPLY_ERROR && strncmp(rep->str, "NOGROUP", 7) == 0)
        r->ngrouped = 0;
    int overflow = rc == 0 && take_reply(r, rep, batch, max, nbatch);
    freeReplyObject(rep);
    if (overflow)
        node->pending = 1;
    else if (rc == 0 && *nbatch == 0)
        node->pending = 0; /* our pending list is empty: on to new entries */
    return rc;
}

static void drop_node_entries(tk_writer_entry_t *batch, size_t *nbatch, size_t from, size_t to)
{
    for (size_t i = from; i < to; ++i)
        tk_writer_entry_dispose(batch + i);
    memmove(batch + from, batch + to, sizeof(*batch) * (*nbatch - to));
    *nbatch -= to - from;
}

/* The last entry of a range that PostgreSQL would get a row from (NULL: none, so there is
 * nothing to prove: malformed entries only go to the dead letters, and an entry without
 * fields left the stream and only needs its acknowledgement). */
static const tk_writer_entry_t *last_decoded(const tk_writer_entry_t *batch, size_t from, size_t to)
{
    while (to > from && !batch[to - 1].decoded)
        --to;
    return to > from ? batch + to - 1 : NULL;
}

/* Asks whether a replica of a master has everything read from it this round: claims the
 * last decoded entry read there again (a propagated write after the reads), then WAITs
 * for one replica. */
static int send_proof(tk_outbox_reader_t *r, redisContext *c, const tk_writer_entry_t *last)
{
    tk_shard_keys_t keys;
    char timeout[16];
    tk_shard_keys(last->shard, &keys);
    snprintf(timeout, sizeof(timeout), "%d", TK_WRITER_WAIT_MS);
    const char *claim[] = {"XCLAIM", keys.names[TK_KEY_OB], TK_OUTBOX_GROUP, r->consumer, "0", last->id, "JUSTID"};
    const char *wait[] = {"WAIT", "1", timeout};
    return redisAppendCommandArgv(c, 7, claim, NULL) == REDIS_OK && redisAppendCommandArgv(c, 3, wait, NULL) == REDIS_OK ? 0 : -1;
}

/* 1 when proven, 0 when no replica confirmed in time, -1 when the connection failed */
static int get_proof(redisContext *c)
{
    redisReply *claim = NULL, *wait = NULL;
    if (redisGetReply(c, (void **)&claim) != REDIS_OK || redisGetReply(c, (void **)&wait) != REDIS_OK) {
        freeReplyObject(claim);
        return -1;
    }
    /* an empty claim: the entry left this consumer meanwhile, so the write did not happen */
    int proven =
        claim->type == REDIS_REPLY_ARRAY && claim->elements == 1 && wait->type == REDIS_REPLY_INTEGER && wait->integer >= 1;
    freeReplyObject(claim);
    freeReplyObject(wait);
    return proven;
}

/* On Redis Cluster: each grouped stream alone at its owner, pipelined per master and all
 * masters at once; then the replication proof of every master with replicas, again all
 * at once, so a round costs about two round trips and at most one WAIT timeout. */
static int read_cluster(tk_outbox_reader_t *r, tk_redis_nodes_t *n, tk_writer_entry_t *batch, size_t max, size_t *nbatch,
                        uint64_t *held_back)
{
    size_t ns = r->ngrouped, nm = r->nnodes, nsent = 0, sent[TK_CLUSTER_MAX_MASTERS] = {0};
    size_t from[TK_CLUSTER_MAX_MASTERS] = {0}, to[TK_CLUSTER_MAX_MASTERS] = {0};
    int proof[TK_CLUSTER_MAX_MASTERS] = {0}; /* 0: none needed, 1: asked, -1: needed but could not be asked */
    int any_pending = 0, answered = 0;
    tk_shard_keys_t *keys = h2o_mem_alloc(sizeof(*keys) * (ns + 1));
    size_t *owner = h2o_mem_alloc(sizeof(*owner) * (ns + 1));
    int64_t now = tk_time_mono_ms();
    for (size_t s = 0; s < ns; ++s) {
        tk_shard_keys(r->grouped[s], keys + s);
        if ((owner[s] = tk_redis_nodes_index_of(n, keys[s].names[TK_KEY_OB], keys[s].lens[TK_KEY_OB])) >= nm)
            r->refresh_wanted = 1; /* no master owns the slot now: a failover under way */
        else if (!r->nodes[owner[s]].pending && now - r->read_ms[s] < COLD_READ_MS &&
                 tk_shard_touched_ms(tk_shard_slot(r->grouped[s])) < now - ACTIVE_MS)
            owner[s] = SIZE_MAX; /* a quiet stream read lately: not this round */
    }
    for (size_t i = 0; i < nm; ++i) {
        if (r->nodes[i].skip_until_ms > now)
            continue;
        for (size_t s = 0; s < ns; ++s)
            sent[i] += owner[s] == i;
        if (sent[i] != 0 && usable(n, i) == NULL) {
            node_failed(r, i, tk_redis_nodes_at(n, i) != NULL ? tk_redis_nodes_at(n, i)->errstr : "no connection");
            sent[i] = 0;
        }
        nsent += sent[i];
    }
    /* a share of the batch per stream, so a round rarely reads more than fits */
    char count[16];
    snprintf(count, sizeof(count), "%zu", nsent == 0 || max / nsent < MIN_COUNT_PER_SHARD ? MIN_COUNT_PER_SHARD : max / nsent);
    for (size_t s = 0; s < ns; ++s) {
        if (owner[s] >= nm || sent[owner[s]] == 0)
            continue;
        r->read_ms[s] = now;
        const char *argv[] = {"XREADGROUP",
                              "GROUP",
                              TK_OUTBOX_GROUP,
                              r->consumer,
                              "COUNT",
                              count,
                              "STREAMS",
                              keys[s].names[TK_KEY_OB],
                              r->nodes[owner[s]].pending ? "0" : ">"};
        redisAppendCommandArgv(tk_redis_nodes_at(n, owner[s]), 9, argv, NULL);
    }
    for (size_t i = 0; i < nm; ++i) {
        if (sent[i] == 0)
            continue;
        redisContext *c = tk_redis_nodes_at(n, i);
        int overflow = 0, failed = 0;
        any_pending |= r->nodes[i].pending;
        from[i] = *nbatch;
        for (size_t k = 0; k < sent[i] && !failed; ++k) {
            redisReply *rep = NULL;
            if (redisGetReply(c, (void **)&rep) != REDIS_OK)
                failed = 1;
            else
                overflow |= take_reply(r, rep, batch, max, nbatch);
            freeReplyObject(rep);
        }
        if (failed) {
            drop_node_entries(batch, nbatch, from[i], *nbatch);
            node_failed(r, i, c->errstr);
            continue;
        }
        node_answered(r, i);
        ++answered;
        to[i] = *nbatch;
        if (overflow)
            r->nodes[i].pending = 1;
        else if (to[i] == from[i])
            r->nodes[i].pending = 0;
        const tk_writer_entry_t *last = last_decoded(batch, from[i], to[i]);
        if (last != NULL && tk_redis_nodes_node(n, i)->nreplicas > 0)
            proof[i] = send_proof(r, c, last) == 0 ? 1 : -1;
        else
            node_proven(r, i);
    }
    free(keys);
    free(owner);
    for (size_t i = nm; i-- > 0;) { /* from the last master down, so dropping keeps the earlier ranges */
        if (proof[i] == 0)
            continue;
        redisContext *c = tk_redis_nodes_at(n, i);
        int proven = proof[i] == 1 ? get_proof(c) : -1;
        if (proven == 1) {
            node_proven(r, i);
            continue;
        }
        drop_node_entries(batch, nbatch, from[i], to[i]);
        if (proven < 0) {
            node_failed(r, i, c->err ? c->errstr : "cannot send WAIT");
        } else {
            ++*held_back;
            node_unreplicated(r, i);
        }
    }
    if (*nbatch == 0 && !any_pending)
        tk_time_sleep_ms(READ_BLOCK_MS); /* what BLOCK does on a single Redis */
    return answered != 0 || nsent == 0 ? 0 : -1;
}

int tk_outbox_reader_read(tk_outbox_reader_t *r, tk_redis_nodes_t *n, const tk_catalog_t *catalog, tk_writer_entry_t *batch,
                          size_t max, size_t *nbatch, uint64_t *held_back)
{
    char err[256];
    int64_t now = tk_time_mono_ms();
    int cluster = tk_redis_nodes_is_cluster(n);
    *nbatch = 0;
    if ((r->refresh_wanted && now - r->last_refresh_ms >= REFRESH_AFTER_ERROR_MS) ||
        (cluster && now - r->last_refresh_ms >= REFRESH_EVERY_MS)) {
        if (tk_redis_nodes_refresh(n, err, sizeof(err)) < 0)
            tk_log_debug("writer", "slot map refresh failed: %s", err);
        r->refresh_wanted = 0;
        r->last_refresh_ms = now;
    }
    if (catalog != NULL)
        ensure_groups(r, n, catalog);
    if (r->ngrouped == 0) {
        tk_time_sleep_ms(READ_BLOCK_MS);
        return 0;
    }
    if (now - r->last_claim_ms >= CLAIM_EVERY_MS) {
        claim_abandoned(r, n);
        r->last_claim_ms = now;
    }
    sync_nodes(r, n);
    return cluster ? read_cluster(r, n, batch, max, nbatch, held_back) : read_single(r, n, batch, max, nbatch);
}
