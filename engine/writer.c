/*
 * The writer loop: read (own pending entries first, then new ones) → decode → one
 * PostgreSQL transaction → tk_persisted (XACK + XDEL, and schedule finished records to
 * be forgotten). A batch that fails because PostgreSQL is away is retried from the
 * pending list with backoff. A batch PostgreSQL rejects for its data is written again
 * record by record; a record that still fails, or an entry that cannot be decoded, is
 * moved to the shard's dead-letter stream with the reason (tk_inventory_dead_letter, one
 * atomic function call) — kept for an operator, logged, counted — so one bad record can
 * neither stall the sale's persistence nor vanish.
 */
#include "engine/writer.h"
#include "engine/catalog.h"
#include "engine/inventory.h"
#include "engine/log.h"
#include "engine/metrics.h"
#include "engine/persist.h"
#include "engine/redis_sync.h"
#include "engine/timefmt.h"
#include "engine/worker.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define BATCH_MAX 1000
#define READ_BLOCK_MS 100
#define CLAIM_EVERY_MS 5000
#define MAX_SHARDS 4096
#define GAUGE_EVERY_MS 1000

static pthread_t writer_thread;
static int writer_running, writer_stopping, drain_deadline_set;
static int64_t drain_deadline_ms;
static const tk_config_t *writer_config;
static tk_writer_counts_t counts; /* written by the writer thread only, pushed to metrics */

typedef struct st_tk_batch_entry_t {
    char shard[TK_SHARD_LEN + 1];
    char id[32];
    int decoded;
    tk_outbox_record_t rec;
    int set_aside; /* moved to the dead-letter stream: not in PostgreSQL, so Redis keeps the record */
} tk_batch_entry_t;

typedef struct st_tk_writer_t {
    tk_worker_conn_t conn;
    tk_catalog_cache_t catalog;
    char consumer[96];
    char grouped[MAX_SHARDS][TK_SHARD_LEN + 1]; /* shards whose group exists */
    size_t ngrouped;
    int pending_mode; /* re-read our own pending entries before new ones */
    int64_t last_claim_ms, last_gauge_ms;
    redisContext *gauge; /* measure_outbox's own connection: it needs Redis only */
    tk_batch_entry_t *batch;
    size_t nbatch;
} tk_writer_t;

static void publish_counts(void)
{
    tk_metrics_set_writer(&counts);
}

static void ensure_groups(tk_writer_t *w, const tk_catalog_t *catalog)
{
    for (size_t i = 0; i < catalog->nshards; ++i) {
        size_t j = 0;
        while (j < w->ngrouped && strcmp(w->grouped[j], catalog->shards[i]) != 0)
            ++j;
        if (j < w->ngrouped || w->ngrouped == MAX_SHARDS)
            continue;
        tk_shard_keys_t keys;
        tk_shard_keys(catalog->shards[i], &keys);
        redisReply *r = redisCommand(tk_redis_nodes_at(w->conn.redis, 0), "XGROUP CREATE %s " TK_OUTBOX_GROUP " 0 MKSTREAM",
                                     keys.names[TK_KEY_OB]);
        int ok =
            r != NULL && (r->type == REDIS_REPLY_STATUS || (r->type == REDIS_REPLY_ERROR && strncmp(r->str, "BUSYGROUP", 9) == 0));
        freeReplyObject(r);
        if (ok)
            snprintf(w->grouped[w->ngrouped++], TK_SHARD_LEN + 1, "%s", catalog->shards[i]);
    }
}

/* Takes over entries other writers left pending for longer than the claim idle time. */
static void claim_abandoned(tk_writer_t *w)
{
    for (size_t i = 0; i < w->ngrouped; ++i) {
        tk_shard_keys_t keys;
        tk_shard_keys(w->grouped[i], &keys);
        redisReply *r =
            redisCommand(tk_redis_nodes_at(w->conn.redis, 0), "XAUTOCLAIM %s " TK_OUTBOX_GROUP " %s %d 0-0 COUNT %d JUSTID",
                         keys.names[TK_KEY_OB], w->consumer, TK_WRITER_CLAIM_IDLE_MS, BATCH_MAX);
        if (r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements >= 2 && r->element[1]->type == REDIS_REPLY_ARRAY &&
            r->element[1]->elements != 0) {
            tk_log_info("writer", "claimed %zu abandoned outbox entries of shard %s", r->element[1]->elements, w->grouped[i]);
            w->pending_mode = 1;
        }
        freeReplyObject(r);
    }
}

/* Publishes, for /metrics, the outbox depth and the age of its oldest entry over every
 * shard of the catalog, the shards paused by TICKETD_OUTBOX_PAUSE, and Redis' memory:
 * pipelined reads once a second on a Redis connection of its own, so the figures stay
 * true while PostgreSQL is away (that is when the outbox grows). */
static void measure_outbox(tk_writer_t *w, const tk_catalog_t *catalog)
{
    char err[256];
    if (w->gauge != NULL && w->gauge->err) {
        redisFree(w->gauge);
        w->gauge = NULL;
    }
    if (w->gauge == NULL && (w->gauge = tk_redis_sync_connect(&writer_config->redis, 1000, err, sizeof(err))) == NULL)
        return;
    int64_t depth = 0, oldest_ms = 0, paused = 0, now = tk_time_now_ms();
    for (size_t i = 0; i < catalog->nshards; ++i) {
        tk_shard_keys_t keys;
        tk_shard_keys(catalog->shards[i], &keys);
        redisAppendCommand(w->gauge, "XLEN %s", keys.names[TK_KEY_OB]);
        redisAppendCommand(w->gauge, "XRANGE %s - + COUNT 1", keys.names[TK_KEY_OB]);
    }
    redisAppendCommand(w->gauge, "INFO memory");
    for (size_t i = 0; i < catalog->nshards; ++i) {
        redisReply *len = NULL, *first = NULL;
        if (redisGetReply(w->gauge, (void **)&len) != REDIS_OK || redisGetReply(w->gauge, (void **)&first) != REDIS_OK) {
            freeReplyObject(len);
            return; /* the connection is broken (err is set): remade next time */
        }
        if (len->type == REDIS_REPLY_INTEGER) {
            depth += len->integer;
            paused += writer_config->outbox_pause != 0 && len->integer >= writer_config->outbox_pause;
        }
        if (first->type == REDIS_REPLY_ARRAY && first->elements == 1 && first->element[0]->element[0]->type == REDIS_REPLY_STRING) {
            int64_t ts = strtoll(first->element[0]->element[0]->str, NULL, 10);
            if (oldest_ms == 0 || ts < oldest_ms)
                oldest_ms = ts;
        }
        freeReplyObject(len);
        freeReplyObject(first);
    }
    redisReply *info = NULL;
    if (redisGetReply(w->gauge, (void **)&info) != REDIS_OK)
        return;
    if (info->type == REDIS_REPLY_STRING) {
        const char *used = strstr(info->str, "\r\nused_memory:"), *max = strstr(info->str, "\r\nmaxmemory:");
        tk_metrics_set_redis_memory(used != NULL ? strtoll(used + 14, NULL, 10) : -1,
                                    max != NULL ? strtoll(max + 12, NULL, 10) : -1);
    }
    freeReplyObject(info);
    tk_metrics_set_outbox(depth, oldest_ms == 0 || oldest_ms > now ? 0 : now - oldest_ms);
    tk_metrics_set_paused_shards(paused);
}

static void clear_batch(tk_writer_t *w)
{
    for (size_t i = 0; i < w->nbatch; ++i) {
        if (w->batch[i].decoded)
            tk_outbox_record_dispose(&w->batch[i].rec);
    }
    w->nbatch = 0;
}

/* Reads up to BATCH_MAX entries over every grouped shard into w->batch. */
static int read_entries(tk_writer_t *w)
{
    size_t argc = 0, n = w->ngrouped;
    const char **argv = h2o_mem_alloc(sizeof(*argv) * (9 + 2 * n));
    tk_shard_keys_t *keys = h2o_mem_alloc(sizeof(*keys) * (n + 1));
    char count[16], block[16];
    snprintf(count, sizeof(count), "%d", BATCH_MAX);
    snprintf(block, sizeof(block), "%d", w->pending_mode ? 0 : READ_BLOCK_MS);
    const char *fixed[] = {"XREADGROUP", "GROUP", TK_OUTBOX_GROUP, w->consumer, "COUNT", count};
    for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); ++i)
        argv[argc++] = fixed[i];
    if (!w->pending_mode) {
        argv[argc++] = "BLOCK";
        argv[argc++] = block;
    }
    argv[argc++] = "STREAMS";
    for (size_t i = 0; i < n; ++i) {
        tk_shard_keys(w->grouped[i], keys + i);
        argv[argc++] = keys[i].names[TK_KEY_OB];
    }
    for (size_t i = 0; i < n; ++i)
        argv[argc++] = w->pending_mode ? "0" : ">";
    redisReply *r = redisCommandArgv(tk_redis_nodes_at(w->conn.redis, 0), (int)argc, argv, NULL);
    free(argv);
    free(keys);
    if (r == NULL)
        return -1;
    int rc = r->type == REDIS_REPLY_ARRAY || r->type == REDIS_REPLY_NIL ? 0 : -1;
    for (size_t s = 0; rc == 0 && r->type == REDIS_REPLY_ARRAY && s < r->elements; ++s) {
        redisReply *stream = r->element[s];
        if (stream->type != REDIS_REPLY_ARRAY || stream->elements != 2 || stream->element[1]->type != REDIS_REPLY_ARRAY)
            continue;
        char shard[TK_SHARD_LEN + 1];
        if (stream->element[0]->type != REDIS_REPLY_STRING ||
            tk_shard_of_outbox_key(stream->element[0]->str, stream->element[0]->len, shard) != 0)
            continue;
        for (size_t e = 0; e < stream->element[1]->elements && w->nbatch < BATCH_MAX; ++e) {
            redisReply *entry = stream->element[1]->element[e];
            if (entry->type != REDIS_REPLY_ARRAY || entry->elements != 2 || entry->element[0]->type != REDIS_REPLY_STRING)
                continue;
            tk_batch_entry_t *b = w->batch + w->nbatch++;
            memset(b, 0, sizeof(*b));
            memcpy(b->shard, shard, sizeof(b->shard));
            snprintf(b->id, sizeof(b->id), "%s", entry->element[0]->str);
            redisReply *fields = entry->element[1];
            if (fields->type == REDIS_REPLY_ARRAY && fields->elements == 2 && fields->element[1]->type == REDIS_REPLY_STRING)
                b->decoded = tk_outbox_decode(fields->element[1]->str, fields->element[1]->len, &b->rec) == 0;
        }
    }
    freeReplyObject(r);
    return rc;
}

/* After the commit: acknowledge and delete the entries, shard by shard, and schedule
 * finished records to leave Redis after the grace period. */
static int acknowledge(tk_writer_t *w)
{
    for (size_t i = 0; i < w->nbatch; ++i) {
        if (w->batch[i].shard[0] == '\0')
            continue;                 /* done with an earlier shard */
        char shard[TK_SHARD_LEN + 1]; /* a copy: the loop below clears each entry's shard as it is done */
        memcpy(shard, w->batch[i].shard, sizeof(shard));
        tk_shard_keys_t keys;
        tk_shard_keys(shard, &keys);
        size_t cap = TK_FCALL_PREFIX_LEN + 2 + 3 * (w->nbatch - i), argc = 0;
        const char **argv = h2o_mem_alloc(sizeof(*argv) * cap);
        size_t *argvlen = h2o_mem_alloc(sizeof(*argvlen) * cap);
        char(*members)[40] = h2o_mem_alloc(sizeof(*members) * 2 * (w->nbatch - i) + 1);
        size_t nmembers = 0, nids = 0;
        char grace[16], nids_text[16];
        argc = (size_t)tk_fcall_prefix("tk_persisted", &keys, argv, argvlen);
        snprintf(grace, sizeof(grace), "%d", TK_WRITER_FORGET_GRACE_MS);
        argv[argc] = grace, argvlen[argc++] = strlen(grace);
        size_t nids_at = argc++;
        for (size_t j = i; j < w->nbatch; ++j) {
            if (strcmp(w->batch[j].shard, shard) != 0)
                continue;
            argv[argc] = w->batch[j].id, argvlen[argc++] = strlen(w->batch[j].id);
            ++nids;
        }
        for (size_t j = i; j < w->nbatch; ++j) {
            tk_batch_entry_t *b = w->batch + j;
            if (strcmp(b->shard, shard) != 0)
                continue;
            if (b->decoded && !b->set_aside && tk_outbox_record_is_final(&b->rec)) {
                snprintf(members[nmembers], 40, "r:%s", b->rec.rid);
                argv[argc] = members[nmembers], argvlen[argc++] = strlen(members[nmembers++]);
            }
            if (b->decoded && !b->set_aside && b->rec.has_txn && strcmp(b->rec.txn_status, "PENDING") != 0) {
                snprintf(members[nmembers], 40, "x:%s", b->rec.txn_id);
                argv[argc] = members[nmembers], argvlen[argc++] = strlen(members[nmembers++]);
            }
            b->shard[0] = '\0';
        }
        snprintf(nids_text, sizeof(nids_text), "%zu", nids);
        argv[nids_at] = nids_text, argvlen[nids_at] = strlen(nids_text);
        redisReply *r = redisCommandArgv(tk_redis_nodes_at(w->conn.redis, 0), (int)argc, argv, argvlen);
        int ok = r != NULL && r->type == REDIS_REPLY_INTEGER;
        ++counts.ack_calls;
        publish_counts();
        if (!ok)
            tk_log_error("writer", "acknowledging shard %s failed: %s", shard,
                         r == NULL                      ? tk_redis_nodes_at(w->conn.redis, 0)->errstr
                         : r->type == REDIS_REPLY_ERROR ? r->str
                                                        : "unexpected reply");
        freeReplyObject(r);
        free(argv);
        free(argvlen);
        free(members);
        if (!ok)
            return -1; /* the entries stay pending and are written again: harmless */
    }
    return 0;
}

/* Moves one entry to its shard's dead-letter stream with the reason, in one atomic call
 * that also acknowledges and deletes it, so a retried batch never sets it aside twice. */
static int set_aside(tk_writer_t *w, tk_batch_entry_t *b, const char *why)
{
    char err[256];
    int moved = tk_inventory_dead_letter(w->conn.redis, b->shard, b->id, why, err, sizeof(err));
    if (moved < 0) {
        tk_log_error("writer", "cannot set aside outbox entry %s of shard %s: %s", b->id, b->shard, err);
        return -1;
    }
    b->set_aside = 1;
    if (moved) {
        tk_log_error("writer", "outbox entry %s of shard %s set aside in its dead-letter stream: %s", b->id, b->shard, why);
        ++counts.dead_letters;
        publish_counts();
    }
    return 0;
}

/* After PostgreSQL refused a batch for its data: write record by record, and set aside
 * what still fails. -1 when the database went away meanwhile (retry the batch later). */
static int isolate_rejected(tk_writer_t *w)
{
    char err[512];
    for (size_t i = 0; i < w->nbatch; ++i) {
        tk_batch_entry_t *b = w->batch + i;
        if (!b->decoded)
            continue; /* set aside by write_batch already */
        if (tk_persist_batch(w->conn.pg, &b->rec, 1, err, sizeof(err)) == 0)
            continue;
        if (PQstatus(w->conn.pg) != CONNECTION_OK || set_aside(w, b, err) != 0)
            return -1;
    }
    return 0;
}

/* Writes the decoded entries of the batch; 0 when committed (or nothing to write). */
static int write_batch(tk_writer_t *w, char *err, size_t errsize)
{
    tk_outbox_record_t *recs = h2o_mem_alloc(sizeof(*recs) * (w->nbatch + 1));
    size_t n = 0;
    for (size_t i = 0; i < w->nbatch; ++i) {
        if (w->batch[i].decoded)
            recs[n++] = w->batch[i].rec;
        else if (set_aside(w, w->batch + i, "not a well-formed outbox entry") != 0) {
            free(recs);
            snprintf(err, errsize, "cannot set aside the malformed entry %s", w->batch[i].id);
            return -1;
        }
    }
    int rc = n == 0 ? 0 : tk_persist_batch(w->conn.pg, recs, n, err, errsize);
    free(recs);
    if (rc == 0) {
        ++counts.batches;
        counts.records += n;
        publish_counts();
    }
    return rc;
}

static int should_stop(int idle)
{
    if (!__atomic_load_n(&writer_stopping, __ATOMIC_ACQUIRE))
        return 0;
    /* stopping: keep draining until idle or out of time */
    return idle || !drain_deadline_set || tk_time_mono_ms() >= drain_deadline_ms;
}

static void *writer_main(void *arg)
{
    tk_writer_t *w = h2o_mem_alloc(sizeof(*w));
    *w = (tk_writer_t){0};
    char host[64] = "host", err[512];
    int backoff_ms = 100, failing = 0, idle = 0;
    gethostname(host, sizeof(host));
    snprintf(w->consumer, sizeof(w->consumer), "%s-%d", host, (int)getpid());
    w->conn.config = writer_config;
    w->batch = h2o_mem_alloc(sizeof(*w->batch) * BATCH_MAX);
    w->pending_mode = 1;

    while (!should_stop(idle)) {
        tk_catalog_t *measured = tk_catalog_current(&w->catalog);
        if (measured != NULL && tk_time_mono_ms() - w->last_gauge_ms >= GAUGE_EVERY_MS) {
            measure_outbox(w, measured);
            w->last_gauge_ms = tk_time_mono_ms();
        }
        if (tk_worker_conn_ensure(&w->conn, err, sizeof(err)) != 0) {
            if (!failing++)
                tk_log_warn("writer", "cannot reach the stores, the outbox waits in Redis: %s", err);
            tk_time_sleep_ms(backoff_ms);
            backoff_ms = backoff_ms < 2000 ? backoff_ms * 2 : 2000;
            continue;
        }
        tk_catalog_t *catalog = tk_catalog_current(&w->catalog);
        if (catalog != NULL)
            ensure_groups(w, catalog);
        if (w->ngrouped == 0) {
            idle = 1;
            tk_time_sleep_ms(READ_BLOCK_MS);
            continue;
        }
        int64_t now = tk_time_mono_ms();
        if (now - w->last_claim_ms >= CLAIM_EVERY_MS) {
            claim_abandoned(w);
            w->last_claim_ms = now;
        }
        if (read_entries(w) != 0) {
            clear_batch(w);
            tk_time_sleep_ms(backoff_ms);
            continue;
        }
        idle = w->nbatch == 0;
        if (w->nbatch == 0) {
            w->pending_mode = 0; /* our pending list is empty: on to new entries */
            continue;
        }
        int written = write_batch(w, err, sizeof(err)) == 0;
        if (!written && w->conn.pg != NULL && PQstatus(w->conn.pg) == CONNECTION_OK) {
            tk_log_warn("writer", "PostgreSQL rejected a batch of %zu entries, writing them one by one: %s", w->nbatch, err);
            written = isolate_rejected(w) == 0;
        }
        if (!written) {
            if (!failing++)
                tk_log_warn("writer", "PostgreSQL write failed, %zu entries wait in Redis: %s", w->nbatch, err);
            ++counts.failures;
            publish_counts();
            clear_batch(w);
            w->pending_mode = 1;
            tk_time_sleep_ms(backoff_ms);
            backoff_ms = backoff_ms < 2000 ? backoff_ms * 2 : 2000;
            continue;
        }
        if (acknowledge(w) != 0)
            w->pending_mode = 1;
        if (failing)
            tk_log_info("writer", "persisting again after %d failed attempts", failing);
        failing = 0;
        backoff_ms = 100;
        clear_batch(w);
    }
    tk_catalog_cache_dispose(&w->catalog);
    tk_worker_conn_dispose(&w->conn);
    if (w->gauge != NULL)
        redisFree(w->gauge);
    free(w->batch);
    free(w);
    return NULL;
}

int tk_writer_start(const tk_config_t *config)
{
    writer_config = config;
    if (pthread_create(&writer_thread, NULL, writer_main, NULL) != 0)
        return -1;
    writer_running = 1;
    return 0;
}

void tk_writer_stop(int timeout_ms)
{
    if (!writer_running)
        return;
    drain_deadline_ms = tk_time_mono_ms() + timeout_ms;
    drain_deadline_set = 1;
    __atomic_store_n(&writer_stopping, 1, __ATOMIC_RELEASE);
    pthread_join(writer_thread, NULL);
    writer_running = 0;
}
