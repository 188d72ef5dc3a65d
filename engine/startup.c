/*
 * The stores before serving: connection checks with their verdicts, and the start-up
 * sequence of engine/startup.h.
 */
#include "engine/startup.h"
#include "engine/demo.h"
#include "engine/log.h"
#include "engine/metrics.h"
#include "engine/pg.h"
#include "engine/redis_nodes.h"
#include "engine/redis_sync.h"
#include "engine/refresher.h"

#include <stdarg.h>

typedef struct st_tk_store_check_t {
    FILE *out; /* --check-config: verdicts go here; NULL: warnings are logged */
    char *err; /* the first failure, for the caller's one line */
    size_t errsize;
    int failures;
} tk_store_check_t;

static void failed(tk_store_check_t *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void failed(tk_store_check_t *c, const char *fmt, ...)
{
    char line[1800];
    va_list args;
    va_start(args, fmt);
    vsnprintf(line, sizeof(line), fmt, args);
    va_end(args);
    if (c->out != NULL)
        fprintf(c->out, "FAIL  %s\n", line);
    else if (c->failures == 0)
        snprintf(c->err, c->errsize, "%s", line);
    ++c->failures;
}

static void warned(tk_store_check_t *c, tk_config_warning_t which, const char *warning)
{
    tk_metrics_set_config_warning(which, 1);
    if (c->out != NULL)
        fprintf(c->out, "WARN  %s\n", warning);
    else
        tk_log_warn("config", "%s", warning);
}

static PGconn *check_pg(const tk_config_t *config, tk_store_check_t *c)
{
    char err[512], where[1100], warn[512];
    PGconn *pg = tk_pg_connect(config->pg_url, err, sizeof(err));
    tk_log_redact_url(config->pg_url, where, sizeof(where));
    if (pg == NULL)
        failed(c, c->out != NULL ? "PostgreSQL at %s is unreachable: %s" : "cannot connect to PostgreSQL at %s: %s", where, err);
    else if (tk_pg_durability_warning(pg, warn, sizeof(warn)) == 1)
        warned(c, TK_WARN_PG_DURABILITY, warn);
    else if (c->out != NULL)
        fprintf(c->out, "ok    PostgreSQL at %s answers with fsync and synchronous_commit on\n", where);
    return pg;
}

/* The single Redis: reachable, and its durability. */
static tk_redis_nodes_t *check_single(const tk_config_t *config, tk_store_check_t *c)
{
    char err[512], warn[512];
    tk_redis_nodes_t *redis = tk_redis_nodes_open(config, 2000, err, sizeof(err));
    if (redis == NULL)
        failed(c, c->out != NULL ? "Redis at %s:%u is unreachable: %s" : "cannot connect to Redis at %s:%u: %s", config->redis.host,
               config->redis.port, err);
    else if (tk_redis_sync_durability_warning(tk_redis_nodes_at(redis, 0), warn, sizeof(warn)) == 1)
        warned(c, TK_WARN_REDIS_AOF, warn);
    else if (c->out != NULL)
        fprintf(c->out, "ok    Redis at %s:%u answers with AOF on, fsynced on every write\n", config->redis.host,
                config->redis.port);
    return redis;
}

/* Redis Cluster: the topology the seeds publish (every slot owned), and each master
 * reachable, with its slots, replicas and durability. */
static tk_redis_nodes_t *check_cluster(const tk_config_t *config, tk_store_check_t *c)
{
    char err[512], warn[600];
    tk_redis_nodes_t *redis = tk_redis_nodes_open(config, 2000, err, sizeof(err));
    if (redis == NULL) {
        failed(c, "Redis Cluster at %s: %s", config->redis_cluster, err);
        return NULL;
    }
    size_t nmasters = tk_redis_nodes_count(redis), unowned = tk_redis_nodes_slots(redis, nmasters);
    if (unowned != 0)
        failed(c, "Redis Cluster at %s: %zu of %d slots have no master (the cluster cannot serve every event)",
               config->redis_cluster, unowned, TK_CLUSTER_SLOTS);
    else if (c->out != NULL)
        fprintf(c->out, "ok    Redis Cluster at %s: %zu masters own every slot\n", config->redis_cluster, nmasters);
    for (size_t i = 0; i < nmasters; ++i) {
        const tk_cluster_node_t *node = tk_redis_nodes_node(redis, i);
        const char *name = tk_redis_nodes_name(redis, i);
        size_t slots = tk_redis_nodes_slots(redis, i);
        redisContext *rc = tk_redis_nodes_at(redis, i);
        if (rc == NULL) {
            failed(c, "Redis master %s (%zu slots, %u replica%s) is unreachable", name, slots, node->nreplicas,
                   node->nreplicas == 1 ? "" : "s");
            continue;
        }
        int durability = tk_redis_sync_durability_warning(rc, warn, sizeof(warn));
        if (c->out != NULL)
            fprintf(c->out, "%s  Redis master %s: %zu slots, %u replica%s%s\n", durability == 0 ? "ok  " : "WARN", name, slots,
                    node->nreplicas, node->nreplicas == 1 ? "" : "s",
                    durability == 0  ? ", AOF on, fsynced on every write"
                    : durability < 0 ? ", its AOF settings cannot be read (CONFIG GET refused)"
                                     : "");
        if (durability == 1) {
            char line[700];
            snprintf(line, sizeof(line), "Redis master %s: %s", name, warn);
            warned(c, TK_WARN_REDIS_AOF, line);
        }
    }
    return redis;
}

static tk_redis_nodes_t *check_redis(const tk_config_t *config, tk_store_check_t *c)
{
    return config->ncluster_seeds != 0 ? check_cluster(config, c) : check_single(config, c);
}

int tk_startup_check_stores(const tk_config_t *config, FILE *out)
{
    tk_store_check_t c = {.out = out};
    PGconn *pg = check_pg(config, &c);
    tk_redis_nodes_t *redis = check_redis(config, &c);
    if (pg != NULL)
        PQfinish(pg);
    tk_redis_nodes_close(redis);
    return c.failures;
}

/* err gets "what failed: why" */
static int prepare(const tk_config_t *config, PGconn *pg, tk_redis_nodes_t *redis, char *err, size_t errsize)
{
    char why[512];
    if (tk_pg_migrate(pg, why, sizeof(why)) != 0) {
        snprintf(err, errsize, "PostgreSQL schema migration failed: %s", why);
        return -1;
    }
    /* every master, so a command finds the library wherever its slot lives */
    for (size_t i = 0; i < tk_redis_nodes_count(redis); ++i) {
        redisContext *master = tk_redis_nodes_at(redis, i);
        if (master == NULL) {
            snprintf(err, errsize, "loading the Redis function library failed: master %s is unreachable",
                     tk_redis_nodes_name(redis, i));
            return -1;
        }
        if (tk_redis_sync_load_functions(master, why, sizeof(why)) != 0) {
            if (tk_redis_nodes_is_cluster(redis))
                snprintf(err, errsize, "loading the Redis function library onto %s failed: %s", tk_redis_nodes_name(redis, i), why);
            else
                snprintf(err, errsize, "loading the Redis function library failed: %s", why);
            return -1;
        }
    }
    if (config->env == TK_ENV_DEVELOPMENT) {
        int loaded;
        if (tk_demo_load(pg, &loaded, why, sizeof(why)) != 0) {
            snprintf(err, errsize, "loading demo events failed: %s", why);
            return -1;
        }
        if (loaded)
            tk_log_info("demo", "loaded the demo events into the empty database");
    }
    if (tk_catalog_changed(pg, redis, why, sizeof(why)) != 0) {
        snprintf(err, errsize, "loading the catalog failed: %s", why);
        return -1;
    }
    return 0;
}

int tk_startup_prepare_stores(const tk_config_t *config, char *err, size_t errsize)
{
    tk_store_check_t c = {.err = err, .errsize = errsize};
    PGconn *pg = check_pg(config, &c);
    tk_redis_nodes_t *redis = check_redis(config, &c);
    int rc = c.failures == 0 ? prepare(config, pg, redis, err, errsize) : -1;
    if (pg != NULL)
        PQfinish(pg);
    tk_redis_nodes_close(redis);
    return rc;
}
