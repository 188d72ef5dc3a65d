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
#include <time.h>

#define POLL_INTERVAL_MS 200
#define PG_CHECK_EVERY 5 /* polls */

static pthread_mutex_t refresh_mutex = PTHREAD_MUTEX_INITIALIZER;
static pthread_t refresher_thread;
static int refresher_running, refresher_stopping, pg_healthy;
static const tk_config_t *refresher_config;

static int read_version(redisContext *redis, uint64_t *version)
{
    redisReply *reply = redisCommand(redis, "GET " TK_CATALOG_VERSION_KEY);
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
static int init_events(redisContext *redis, const tk_catalog_t *c, char *err, size_t errsize)
{
    tk_catalog_cache_t cache = {0};
    const tk_catalog_t *prev = tk_catalog_current(&cache);
    int rc;
    if (prev == NULL || prev->version >= c->version || prev->version == 0) {
        rc = tk_inventory_init_events(redis, c->events, c->nevents, err, errsize);
    } else {
        tk_event_t *fresh = h2o_mem_alloc(sizeof(*fresh) * (c->nevents + 1));
        size_t n = 0;
        for (size_t i = 0; i < c->nevents; ++i)
            if (!event_known(prev, c->events + i))
                fresh[n++] = c->events[i];
        rc = n == 0 ? 0 : tk_inventory_init_events(redis, fresh, n, err, errsize);
        free(fresh);
    }
    tk_catalog_cache_dispose(&cache);
    return rc;
}

int tk_catalog_refresh(PGconn *pg, redisContext *redis, char *err, size_t errsize)
{
    uint64_t version;
    int rc = -1;
    /* one reload at a time per process; the version is read before loading, so the
     * snapshot is at least as new as the version it is tagged with */
    pthread_mutex_lock(&refresh_mutex);
    if (read_version(redis, &version) != 0) {
        snprintf(err, errsize, "reading the catalog version: %s", redis->err ? redis->errstr : "unexpected reply");
        goto Exit;
    }
    tk_catalog_t *c = tk_pg_load_catalog(pg, version, err, errsize);
    if (c == NULL)
        goto Exit;
    if (init_events(redis, c, err, errsize) != 0) {
        tk_catalog_release(c);
        goto Exit;
    }
    if (tk_catalog_publish(c))
        tk_log_debug("catalog", "catalog version %llu published", (unsigned long long)version);
    rc = 0;
Exit:
    pthread_mutex_unlock(&refresh_mutex);
    return rc;
}

int tk_catalog_changed(PGconn *pg, redisContext *redis, char *err, size_t errsize)
{
    long long version;
    if (tk_redis_sync_integer(redis, &version, "INCR " TK_CATALOG_VERSION_KEY) != 0) {
        snprintf(err, errsize, "incrementing the catalog version: %s", redis->err ? redis->errstr : "unexpected reply");
        return -1;
    }
    return tk_catalog_refresh(pg, redis, err, errsize);
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
