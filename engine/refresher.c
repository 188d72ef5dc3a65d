/*
 * The catalog refresher thread and the reload it shares with the admin route. A reload
 * reads the whole catalog from PostgreSQL (one query, kept simple) but initialises in
 * Redis only the events that are new or changed since the snapshot it follows.
 */
#include "engine/refresher.h"
#include "engine/catalog.h"
#include "engine/inventory.h"
#include "engine/log.h"
#include "engine/pg.h"
#include "engine/redis_sync.h"
#include "engine/timefmt.h"
#include "engine/worker.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define POLL_INTERVAL_MS 200
#define PG_CHECK_EVERY 5        /* polls */
#define TOPOLOGY_CHECK_EVERY 15 /* polls: ~3 s */

static pthread_mutex_t refresh_mutex = PTHREAD_MUTEX_INITIALIZER;
static pthread_t refresher_thread;
static int refresher_running, refresher_stopping, pg_healthy, change_owed;
static const tk_config_t *refresher_config;

static int read_version(tk_redis_nodes_t *redis, uint64_t *version)
{
    redisReply *reply = tk_redis_nodes_command(redis, "GET " TK_CATALOG_VERSION_KEY);
    int ok = reply != NULL && (reply->type == REDIS_REPLY_NIL || reply->type == REDIS_REPLY_STRING);
    if (ok)
        *version = reply->type == REDIS_REPLY_STRING ? strtoull(reply->str, NULL, 10) : 0;
    freeReplyObject(reply);
    return ok ? 0 : -1;
}

/* 1 when ev is in prev with the same date and ticket types: Redis already has its inventory */
static int event_known(const tk_catalog_t *prev, const tk_event_t *ev)
{
    const tk_event_t *old = tk_catalog_find(prev, ev->id);
    if (old == NULL || old->date_ms != ev->date_ms || old->ntypes != ev->ntypes)
        return 0;
    for (size_t i = 0; i < ev->ntypes; ++i) {
        const tk_ticket_type_t *a = old->types + i, *b = ev->types + i;
        if (a->amount != b->amount || a->price_minor != b->price_minor ||
            !h2o_memis(a->name.base, a->name.len, b->name.base, b->name.len))
            return 0;
    }
    return 1;
}

/* tk_event_init for the events of c that Redis may not have yet. When c follows the
 * snapshot this process published last (a higher version), that is only the events new
 * or changed since, so a catalog change costs one call, not one per event; otherwise
 * (the first load, or a version that went back: Redis was emptied) every event. */
static int init_events(tk_redis_nodes_t *redis, PGconn *pg, const tk_catalog_t *c, char *err, size_t errsize)
{
    tk_catalog_cache_t cache = {0};
    const tk_catalog_t *prev = tk_catalog_current(&cache);
    int rc;
    if (prev == NULL || prev->version >= c->version || prev->version == 0) {
        rc = tk_inventory_init_events(redis, pg, c->events, c->nevents, err, errsize);
    } else {
        tk_event_t *fresh = h2o_mem_alloc(sizeof(*fresh) * (c->nevents + 1));
        size_t n = 0;
        for (size_t i = 0; i < c->nevents; ++i)
            if (!event_known(prev, c->events + i))
                fresh[n++] = c->events[i];
        rc = n == 0 ? 0 : tk_inventory_init_events(redis, pg, fresh, n, err, errsize);
        free(fresh);
    }
    tk_catalog_cache_dispose(&cache);
    return rc;
}

int tk_catalog_refresh(PGconn *pg, tk_redis_nodes_t *redis, char *err, size_t errsize)
{
    uint64_t version;
    int rc = -1;
    /* one reload at a time per process; the version is read before loading, so the
     * snapshot is at least as new as the version it is tagged with */
    pthread_mutex_lock(&refresh_mutex);
    if (read_version(redis, &version) != 0) {
        snprintf(
            err, errsize, "reading the catalog version: no answer from Redis at %s",
            tk_redis_nodes_name(redis, tk_redis_nodes_index_of(redis, TK_CATALOG_VERSION_KEY, strlen(TK_CATALOG_VERSION_KEY))));
        goto Exit;
    }
    tk_catalog_t *c = tk_pg_load_catalog(pg, version, err, errsize);
    if (c == NULL)
        goto Exit;
    if (init_events(redis, pg, c, err, errsize) != 0) {
        tk_catalog_release(c);
        goto Exit;
    }
    /* Reloads are serialised here and each reads the version first, so a version below the
     * published one means Redis lost writes (emptied, or a failover that lost the last
     * INCRs). PostgreSQL is the truth either way: publish what was loaded and follow
     * Redis's count from here, or events created meanwhile would stay unpublished and
     * every poll would reload the catalog for nothing. */
    uint64_t published = tk_catalog_current_version();
    if (version < published)
        tk_log_warn("catalog", "the catalog version in Redis went back from %llu to %llu: following it",
                    (unsigned long long)published, (unsigned long long)version);
    if (tk_catalog_publish(c, version < published))
        tk_log_debug("catalog", "catalog version %llu published", (unsigned long long)version);
    rc = 0;
Exit:
    pthread_mutex_unlock(&refresh_mutex);
    return rc;
}

int tk_catalog_changed(PGconn *pg, tk_redis_nodes_t *redis, char *err, size_t errsize)
{
    redisReply *reply = tk_redis_nodes_command(redis, "INCR " TK_CATALOG_VERSION_KEY);
    int ok = reply != NULL && reply->type == REDIS_REPLY_INTEGER;
    if (!ok)
        snprintf(err, errsize, "incrementing the catalog version: %s",
                 reply == NULL                      ? "no answer from Redis"
                 : reply->type == REDIS_REPLY_ERROR ? reply->str
                                                    : "unexpected reply");
    freeReplyObject(reply);
    if (!ok)
        return -1;
    return tk_catalog_refresh(pg, redis, err, errsize);
}

/* 1 when the master has the function library, 0 when it lacks it, -1 when it did not answer */
static int has_library(redisContext *c)
{
    redisReply *reply = redisCommand(c, "FUNCTION LIST LIBRARYNAME ticketd");
    int rc = reply == NULL || reply->type != REDIS_REPLY_ARRAY ? -1 : reply->elements != 0;
    freeReplyObject(reply);
    return rc;
}

/* Gives master i the library and the inventory of the current catalog's events it owns
 * (tk_event_init is idempotent: events it already has are left as they are; those it
 * lacks start from what PostgreSQL knows of their tickets). */
static int equip_master(tk_redis_nodes_t *redis, PGconn *pg, size_t i, char *err, size_t errsize)
{
    redisContext *c = tk_redis_nodes_at(redis, i);
    if (c == NULL) {
        snprintf(err, errsize, "unreachable");
        return -1;
    }
    if (tk_redis_sync_load_functions(c, err, errsize) != 0)
        return -1;
    tk_catalog_cache_t cache = {0};
    const tk_catalog_t *catalog = tk_catalog_current(&cache);
    int rc = 0;
    if (catalog != NULL && catalog->nevents != 0) {
        tk_event_t *owned = h2o_mem_alloc(sizeof(*owned) * catalog->nevents);
        size_t n = 0;
        for (size_t e = 0; e < catalog->nevents; ++e) {
            tk_shard_keys_t keys;
            tk_shard_keys(catalog->events[e].id, &keys);
            if (tk_redis_nodes_index_of(redis, keys.names[TK_KEY_INV], keys.lens[TK_KEY_INV]) == i)
                owned[n++] = catalog->events[e];
        }
        rc = n == 0 ? 0 : tk_inventory_init_events(redis, pg, owned, n, err, errsize);
        free(owned);
    }
    tk_catalog_cache_dispose(&cache);
    return rc;
}

/* Masters whose equipping failed (the library may be loaded, the events not), by name:
 * the library check alone would pass them from then on. The refresher thread's own. */
static char unequipped[TK_CLUSTER_MAX_MASTERS][272];
static size_t nunequipped;

static size_t unequipped_index(const char *name)
{
    size_t i = 0;
    while (i < nunequipped && strcmp(unequipped[i], name) != 0)
        ++i;
    return i;
}

static void note_unequipped(const char *name, int failed)
{
    size_t i = unequipped_index(name);
    if (!failed && i < nunequipped)
        memmove(unequipped + i, unequipped + i + 1, sizeof(unequipped[0]) * (--nunequipped - i));
    else if (failed && i == nunequipped && nunequipped < TK_CLUSTER_MAX_MASTERS)
        snprintf(unequipped[nunequipped++], sizeof(unequipped[0]), "%s", name);
}

/* Re-reads the topology (on a cluster), and equips the masters that are new, lack the
 * library (a promoted replica has both already; a master that restarted empty has neither,
 * and a single Redis that restarted without its data is such a master too) or were left
 * half-equipped by an earlier round. */
static void watch_masters(tk_redis_nodes_t *redis, PGconn *pg)
{
    char err[512];
    int fresh = tk_redis_nodes_refresh(redis, err, sizeof(err));
    if (fresh < 0) {
        tk_log_warn("catalog", "cannot read the Redis Cluster topology: %s", err);
        return;
    }
    for (size_t i = 0; i < tk_redis_nodes_count(redis); ++i) {
        redisContext *c = tk_redis_nodes_at(redis, i);
        const char *name = tk_redis_nodes_name(redis, i);
        int is_new = tk_redis_nodes_was_new(redis, i), retry = unequipped_index(name) < nunequipped;
        if (c == NULL || (!is_new && !retry && has_library(c) != 0))
            continue;
        int failed = equip_master(redis, pg, i, err, sizeof(err)) != 0;
        note_unequipped(name, failed);
        if (failed)
            tk_log_warn("catalog", "cannot equip Redis master %s: %s", name, err);
        else if (retry)
            tk_log_info("catalog", "Redis master %s equipped after an earlier failure", name);
        else if (!is_new)
            tk_log_info("catalog", "Redis master %s lacked the function library: loaded it and its events", name);
    }
    if (fresh > 0)
        tk_log_info("catalog", "%d new Redis master(s): function library and events loaded", fresh);
}

void tk_catalog_change_owed(void)
{
    __atomic_store_n(&change_owed, 1, __ATOMIC_RELEASE);
}

/* Announces a change tk_catalog_change_owed noted. The flag is cleared before the
 * increment, so a change owed meanwhile is announced by the next poll (at worst twice). */
static void announce_owed_change(tk_worker_conn_t *conn)
{
    char err[512];
    if (!__atomic_exchange_n(&change_owed, 0, __ATOMIC_ACQ_REL))
        return;
    if (tk_catalog_changed(conn->pg, conn->redis, err, sizeof(err)) != 0) {
        __atomic_store_n(&change_owed, 1, __ATOMIC_RELEASE);
        return;
    }
    tk_log_info("catalog", "a catalog change saved while Redis refused it is now published");
}

static void *refresher_main(void *arg)
{
    tk_worker_conn_t conn = {.config = refresher_config};
    char err[512];
    int failing = 0;
    for (unsigned polls = 0; !__atomic_load_n(&refresher_stopping, __ATOMIC_ACQUIRE); ++polls, tk_time_sleep_ms(POLL_INTERVAL_MS)) {
        if (tk_worker_conn_ensure(&conn, err, sizeof(err)) != 0) {
            __atomic_store_n(&pg_healthy, conn.pg != NULL && tk_pg_ping(conn.pg) == 0, __ATOMIC_RELEASE);
            if (!failing++)
                tk_log_warn("catalog", "refresher cannot reach its stores: %s", err);
            continue;
        }
        if (polls % PG_CHECK_EVERY == 0)
            __atomic_store_n(&pg_healthy, tk_pg_ping(conn.pg) == 0, __ATOMIC_RELEASE);
        if (polls % TOPOLOGY_CHECK_EVERY == 0)
            watch_masters(conn.redis, conn.pg);
        announce_owed_change(&conn);
        uint64_t version;
        if (read_version(conn.redis, &version) != 0 || version == tk_catalog_current_version())
            continue;
        if (tk_catalog_refresh(conn.pg, conn.redis, err, sizeof(err)) != 0) {
            if (!failing++)
                tk_log_warn("catalog", "refresh failed: %s", err);
            continue;
        }
        if (failing)
            tk_log_info("catalog", "refresher recovered");
        failing = 0;
    }
    tk_worker_conn_dispose(&conn);
    return NULL;
}

int tk_refresher_start(const tk_config_t *config)
{
    refresher_config = config;
    pg_healthy = 1;
    if (pthread_create(&refresher_thread, NULL, refresher_main, NULL) != 0)
        return -1;
    refresher_running = 1;
    return 0;
}

void tk_refresher_stop(void)
{
    if (!refresher_running)
        return;
    __atomic_store_n(&refresher_stopping, 1, __ATOMIC_RELEASE);
    pthread_join(refresher_thread, NULL);
    refresher_running = 0;
}

int tk_refresher_pg_healthy(void)
{
    return __atomic_load_n(&pg_healthy, __ATOMIC_ACQUIRE);
}
