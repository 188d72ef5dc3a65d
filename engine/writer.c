/*
 * The writer loop: read (own pending entries first, then new ones) → decode → one
 * PostgreSQL transaction → tk_persisted (XACK + XDEL, and schedule finished records to
 * be forgotten). A batch that fails because PostgreSQL is away, or cannot write for any
 * reason but the rows themselves (its disk is full, a lock timed out, the schema is not
 * migrated), is retried from the pending list with backoff: those records are fine. A
 * batch PostgreSQL refuses for its data (tk_persist_batch: SQLSTATE class 22 or 23) is
 * written again record by record; a record it still refuses, or an entry that cannot be
 * decoded, is moved to the shard's dead-letter stream with the reason
 * (tk_inventory_dead_letter, one atomic function call) — kept for an operator, logged,
 * counted — so one bad record can neither stall the sale's persistence nor vanish.
 */
#include "engine/writer.h"
#include "engine/catalog.h"
#include "engine/inventory.h"
#include "engine/log.h"
#include "engine/metrics.h"
#include "engine/persist.h"
#include "engine/pg.h"
#include "engine/redis_nodes.h"
#include "engine/shard_activity.h"
#include "engine/timefmt.h"
#include "engine/worker.h"
#include "engine/writer_outbox.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define BATCH_MAX 4000 /* entries per transaction: a backlog drains in few commits */
#define GAUGE_EVERY_MS 1000
#define GAUGE_IDLE_EVERY_MS 10000 /* an outbox found empty that nobody was seen writing to since */
/* Writer threads per process, each a consumer of its own: two transactions in flight keep
 * PostgreSQL busy while the other batch is read, decoded or acknowledged, so the writers
 * keep pace with an on-sale (bench/README.md, issue 14). */
#define WRITERS 2

static pthread_t writer_threads[WRITERS];
static int writer_running, writer_stopping, drain_deadline_set;
static int64_t drain_deadline_ms;
static const tk_config_t *writer_config;
static pthread_mutex_t counts_lock = PTHREAD_MUTEX_INITIALIZER;
static tk_writer_counts_t counts; /* the writers' sums (counts_lock), pushed to metrics */

typedef struct st_tk_writer_t {
    int index;              /* 0 also measures the outbox for /metrics */
    tk_writer_counts_t add; /* counted since the last publish_counts */
    tk_worker_conn_t conn;
    tk_catalog_cache_t catalog;
    tk_outbox_reader_t reader;
    int64_t last_gauge_ms;
    tk_redis_nodes_t *gauge; /* measure_outbox's own connections: it needs Redis only */
    int64_t *gauge_at;       /* per shard slot: tk_time_mono_ms of its outbox's last measure */
    uint8_t *gauge_empty;    /* per shard slot: the outbox was empty then */
    tk_writer_entry_t *batch;
    size_t nbatch;
} tk_writer_t;

/* adds w's counts to the process's and publishes the sums */
static void publish_counts(tk_writer_t *w)
{
    pthread_mutex_lock(&counts_lock);
    counts.batches += w->add.batches;
    counts.records += w->add.records;
    counts.failures += w->add.failures;
    counts.dead_letters += w->add.dead_letters;
    counts.ack_calls += w->add.ack_calls;
    counts.unreplicated += w->add.unreplicated;
    tk_metrics_set_writer(&counts);
    pthread_mutex_unlock(&counts_lock);
    w->add = (tk_writer_counts_t){0};
}

/* Publishes, for /metrics, the outbox depth and the age of its oldest entry over every
 * shard of the catalog, the shards paused by TICKETD_OUTBOX_PAUSE, and Redis' memory:
 * pipelined reads once a second on connections of its own, so the figures stay true while
 * PostgreSQL is away (that is when the outbox grows). Each shard is read at its owner, all
 * masters at once. The memory is the single Redis's, or on a cluster the master closest
 * to its maxmemory (the first to refuse writes; every master has its own limit). A master
 * that does not answer leaves its shards out of that second's figures. An outbox found
 * empty is measured again when this process sees its shard written to, else every
 * GAUGE_IDLE_EVERY_MS (shard_activity.h): an idle catalog costs no commands per shard per
 * second. One found not empty touches its shard, which is how the claims find it. */
static void measure_outbox(tk_writer_t *w, const tk_catalog_t *catalog)
{
    char err[256];
    if (w->gauge == NULL && (w->gauge = tk_redis_nodes_open(writer_config, 1000, err, sizeof(err))) == NULL)
        return;
    if (w->gauge_at == NULL) {
        w->gauge_at = h2o_mem_alloc(sizeof(*w->gauge_at) * TK_SHARD_SLOTS);
        memset(w->gauge_at, 0, sizeof(*w->gauge_at) * TK_SHARD_SLOTS);
        w->gauge_empty = h2o_mem_alloc(TK_SHARD_SLOTS);
        memset(w->gauge_empty, 0, TK_SHARD_SLOTS);
    }
    tk_redis_nodes_t *n = w->gauge;
    size_t nm = tk_redis_nodes_count(n), *owner = h2o_mem_alloc(sizeof(*owner) * (catalog->nshards + 1));
    int refresh = 0, measured = 0;
    int64_t mono = tk_time_mono_ms();
    for (size_t s = 0; s < catalog->nshards; ++s) {
        int slot = tk_shard_slot(catalog->shards[s]);
        owner[s] = SIZE_MAX; /* not measured this time */
        if (slot < 0 || (w->gauge_empty[slot] && tk_shard_touched_ms(slot) < w->gauge_at[slot] &&
                         mono - w->gauge_at[slot] < GAUGE_IDLE_EVERY_MS))
            continue;
        w->gauge_at[slot] = mono;
        tk_shard_keys_t keys;
        tk_shard_keys(catalog->shards[s], &keys);
        refresh |= (owner[s] = tk_redis_nodes_index_of(n, keys.names[TK_KEY_OB], keys.lens[TK_KEY_OB])) >= nm;
        redisContext *c = owner[s] < nm ? tk_redis_nodes_at(n, owner[s]) : NULL;
        if (c != NULL) {
            redisAppendCommand(c, "XLEN %s", keys.names[TK_KEY_OB]);
            if (!w->gauge_empty[slot]) /* an outbox empty last time: its length first, its age next time */
                redisAppendCommand(c, "XRANGE %s - + COUNT 1", keys.names[TK_KEY_OB]);
        }
    }
    for (size_t i = 0; i < nm; ++i) {
        if (tk_redis_nodes_at(n, i) != NULL)
            redisAppendCommand(tk_redis_nodes_at(n, i), "INFO memory");
    }
    int64_t depth = 0, oldest_ms = 0, paused = 0, now = tk_time_now_ms(), used = -1, max = -1;
    double fullest = -1;
    for (size_t i = 0; i < nm; ++i) {
        redisContext *c = tk_redis_nodes_at(n, i);
        redisReply *len = NULL, *first = NULL, *info = NULL;
        for (size_t s = 0; c != NULL && !c->err && s < catalog->nshards; ++s) {
            if (owner[s] != i)
                continue;
            int slot = tk_shard_slot(catalog->shards[s]);
            if (redisGetReply(c, (void **)&len) != REDIS_OK ||
                (!w->gauge_empty[slot] && redisGetReply(c, (void **)&first) != REDIS_OK))
                break; /* the connection is broken (err is set): the refresh below remakes it */
            if (len->type == REDIS_REPLY_INTEGER) {
                w->gauge_empty[slot] = len->integer == 0;
                if (len->integer != 0)
                    tk_shard_touch(catalog->shards[s]);
                depth += len->integer;
                paused += writer_config->outbox_pause != 0 && len->integer >= writer_config->outbox_pause;
            }
            if (first != NULL && first->type == REDIS_REPLY_ARRAY && first->elements == 1 &&
                first->element[0]->element[0]->type == REDIS_REPLY_STRING) {
                int64_t ts = strtoll(first->element[0]->element[0]->str, NULL, 10);
                if (oldest_ms == 0 || ts < oldest_ms)
                    oldest_ms = ts;
            }
            freeReplyObject(len);
            freeReplyObject(first);
            len = first = NULL;
        }
        freeReplyObject(len);
        freeReplyObject(first);
        if (c == NULL || c->err || redisGetReply(c, (void **)&info) != REDIS_OK) {
            refresh = 1;
            continue;
        }
        const char *u = info->type == REDIS_REPLY_STRING ? strstr(info->str, "\r\nused_memory:") : NULL;
        const char *m = info->type == REDIS_REPLY_STRING ? strstr(info->str, "\r\nmaxmemory:") : NULL;
        int64_t node_used = u != NULL ? strtoll(u + 14, NULL, 10) : -1, node_max = m != NULL ? strtoll(m + 12, NULL, 10) : -1;
        double fill = node_max > 0 ? (double)node_used / (double)node_max : 0;
        if (info->type == REDIS_REPLY_STRING && (fill > fullest || (fill == fullest && node_used > used))) {
            fullest = fill, used = node_used, max = node_max;
            measured = 1;
        }
        freeReplyObject(info);
    }
    free(owner);
    if (refresh)
        tk_redis_nodes_refresh(n, err, sizeof(err));
    if (measured)
        tk_metrics_set_redis_memory(used, max);
    tk_metrics_set_outbox(depth, oldest_ms == 0 || oldest_ms > now ? 0 : now - oldest_ms);
    tk_metrics_set_paused_shards(paused);
}

static void clear_batch(tk_writer_t *w)
{
    for (size_t i = 0; i < w->nbatch; ++i)
        tk_writer_entry_dispose(w->batch + i);
    w->nbatch = 0;
}

/* After the commit: acknowledge and delete the entries, shard by shard at the shard's
 * master, and schedule finished records to leave Redis after the grace period. A shard
 * that cannot be acknowledged (its master is away) does not stop the others; its entries
 * stay pending and are written again, which is harmless. Returns how many shards could
 * not be acknowledged, of *shards. */
static size_t acknowledge(tk_writer_t *w, size_t *shards)
{
    size_t failed = 0;
    *shards = 0;
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
            tk_writer_entry_t *b = w->batch + j;
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
        redisReply *r = tk_redis_nodes_command_argv(w->conn.redis, (int)argc, argv, argvlen);
        int ok = r != NULL && r->type == REDIS_REPLY_INTEGER;
        ++*shards;
        ++w->add.ack_calls;
        publish_counts(w);
        if (!ok) {
            tk_log_error("writer", "acknowledging shard %s failed: %s", shard,
                         r == NULL                      ? "its master did not answer"
                         : r->type == REDIS_REPLY_ERROR ? r->str
                                                        : "unexpected reply");
            ++failed;
        }
        freeReplyObject(r);
        free(argv);
        free(argvlen);
        free(members);
    }
    return failed;
}

/* Moves one entry to its shard's dead-letter stream with the reason, in one atomic call
 * that also acknowledges and deletes it, so a retried batch never sets it aside twice. */
static int set_aside(tk_writer_t *w, tk_writer_entry_t *b, const char *why)
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
        ++w->add.dead_letters;
        publish_counts(w);
    }
    return 0;
}

/* After PostgreSQL refused a batch for its data: write record by record, and set aside
 * the records it refuses. -1 when a record could not be written for another reason (the
 * database went away, its disk is full...): the batch is retried later, and what was
 * written meanwhile is written again, which is harmless. */
static int isolate_rejected(tk_writer_t *w)
{
    char err[512];
    for (size_t i = 0; i < w->nbatch; ++i) {
        tk_writer_entry_t *b = w->batch + i;
        if (!b->decoded)
            continue; /* set aside by write_batch already */
        tk_persist_result_t rc = tk_persist_batch(w->conn.pg, &b->rec, 1, err, sizeof(err));
        if (rc == TK_PERSIST_OK)
            continue;
        if (rc != TK_PERSIST_REFUSED || set_aside(w, b, err) != 0)
            return -1;
    }
    return 0;
}

/* Writes the decoded entries of the batch: TK_PERSIST_OK when committed (or nothing to
 * write), TK_PERSIST_UNAVAILABLE also when a malformed entry could not be set aside. */
static tk_persist_result_t write_batch(tk_writer_t *w, char *err, size_t errsize)
{
    tk_outbox_record_t *recs = h2o_mem_alloc(sizeof(*recs) * (w->nbatch + 1));
    size_t n = 0;
    for (size_t i = 0; i < w->nbatch; ++i) {
        if (w->batch[i].decoded)
            recs[n++] = w->batch[i].rec;
        else if (set_aside(w, w->batch + i, "not a well-formed outbox entry") != 0) {
            free(recs);
            snprintf(err, errsize, "cannot set aside the malformed entry %s", w->batch[i].id);
            return TK_PERSIST_UNAVAILABLE;
        }
    }
    tk_persist_result_t rc = n == 0 ? TK_PERSIST_OK : tk_persist_batch(w->conn.pg, recs, n, err, errsize);
    free(recs);
    if (rc == TK_PERSIST_OK) {
        ++w->add.batches;
        w->add.records += n;
        publish_counts(w);
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
    *w = (tk_writer_t){.index = (int)(intptr_t)arg};
    char host[64] = "host", consumer[96], err[512];
    int backoff_ms = 100, failing = 0, idle = 0;
    gethostname(host, sizeof(host));
    snprintf(consumer, sizeof(consumer), "%s-%d-%d", host, (int)getpid(), w->index);
    tk_outbox_reader_init(&w->reader, consumer);
    w->conn.config = writer_config;
    w->batch = h2o_mem_alloc(sizeof(*w->batch) * BATCH_MAX);

    while (!should_stop(idle)) {
        tk_catalog_t *catalog = tk_catalog_current(&w->catalog);
        if (w->index == 0 && catalog != NULL && tk_time_mono_ms() - w->last_gauge_ms >= GAUGE_EVERY_MS) {
            measure_outbox(w, catalog);
            w->last_gauge_ms = tk_time_mono_ms();
        }
        if (tk_worker_conn_open(&w->conn, err, sizeof(err)) != 0) {
            if (!failing++)
                tk_log_warn("writer", "cannot reach the stores, the outbox waits in Redis: %s", err);
            tk_time_sleep_ms(backoff_ms);
            backoff_ms = backoff_ms < 2000 ? backoff_ms * 2 : 2000;
            continue;
        }
        uint64_t held_back = 0;
        int rc = tk_outbox_reader_read(&w->reader, w->conn.redis, catalog, w->batch, BATCH_MAX, &w->nbatch, &held_back);
        if (held_back != 0) {
            w->add.unreplicated += held_back;
            publish_counts(w);
        }
        if (rc != 0) {
            clear_batch(w);
            tk_time_sleep_ms(backoff_ms);
            continue;
        }
        idle = w->nbatch == 0;
        if (w->nbatch == 0)
            continue;
        tk_persist_result_t persisted = write_batch(w, err, sizeof(err));
        int written = persisted == TK_PERSIST_OK;
        if (persisted == TK_PERSIST_REFUSED) {
            tk_log_warn("writer", "PostgreSQL refused a batch of %zu entries for its data, writing them one by one: %s", w->nbatch,
                        err);
            written = isolate_rejected(w) == 0;
        }
        if (!written) {
            if (!failing++)
                tk_log_warn("writer", "PostgreSQL write failed, %zu entries wait in Redis: %s", w->nbatch, err);
            ++w->add.failures;
            publish_counts(w);
            clear_batch(w);
            tk_outbox_reader_reread(&w->reader);
            tk_time_sleep_ms(backoff_ms);
            backoff_ms = backoff_ms < 2000 ? backoff_ms * 2 : 2000;
            continue;
        }
        size_t shards, unacknowledged = acknowledge(w, &shards);
        if (unacknowledged != 0)
            tk_outbox_reader_reread(&w->reader);
        if (unacknowledged != 0 && unacknowledged == shards) {
            /* nothing acknowledged: reading again at once would write the same batch again */
            clear_batch(w);
            tk_time_sleep_ms(backoff_ms);
            backoff_ms = backoff_ms < 2000 ? backoff_ms * 2 : 2000;
            continue;
        }
        if (failing)
            tk_log_info("writer", "persisting again after %d failed attempts", failing);
        failing = 0;
        backoff_ms = 100;
        clear_batch(w);
    }
    tk_catalog_cache_dispose(&w->catalog);
    tk_worker_conn_dispose(&w->conn);
    if (w->gauge != NULL)
        tk_redis_nodes_close(w->gauge);
    free(w->gauge_at);
    free(w->gauge_empty);
    free(w->batch);
    free(w);
    return NULL;
}

int tk_writer_start(const tk_config_t *config)
{
    writer_config = config;
    for (int i = 0; i < WRITERS; ++i) {
        if (pthread_create(&writer_threads[i], NULL, writer_main, (void *)(intptr_t)i) != 0) {
            tk_writer_stop(0); /* the ones started */
            return -1;
        }
        writer_running = i + 1;
    }
    return 0;
}

void tk_writer_stop(int timeout_ms)
{
    if (!writer_running)
        return;
    drain_deadline_ms = tk_time_mono_ms() + timeout_ms;
    drain_deadline_set = 1;
    __atomic_store_n(&writer_stopping, 1, __ATOMIC_RELEASE);
    for (int i = 0; i < writer_running; ++i)
        pthread_join(writer_threads[i], NULL);
    writer_running = 0;
}
