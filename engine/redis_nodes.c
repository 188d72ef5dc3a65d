/*
 * The blocking connections of redis_nodes.h: one hiredis context per master, the slot map
 * that says which one owns a key, and the redirect loop (MOVED, ASK, TRYAGAIN,
 * CLUSTERDOWN) that every command and every replayed pipeline entry goes through. All
 * decisions about slots and error replies are cluster_slots.c's; this file only does the
 * I/O. A single Redis is a map of one master owning every slot, reconnected in place.
 */
#include "engine/redis_nodes.h"
#include "engine/redis_sync.h"
#include "engine/timefmt.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_REDIRECTS 5
#define RETRY_FOR_MS 2000 /* TRYAGAIN and CLUSTERDOWN */
#define TRYAGAIN_PAUSE_MS 50
#define CLUSTERDOWN_PAUSE_MS 200

struct st_tk_redis_nodes_t {
    int cluster;
    int timeout_ms;
    tk_redis_url_t node_url; /* the single Redis, or the password and database of every cluster node */
    tk_redis_url_t seeds[TK_REDIS_SEEDS_MAX];
    size_t nseeds;
    tk_slot_map_t map;
    redisContext *conns[TK_CLUSTER_MAX_MASTERS];
    uint8_t reported[TK_CLUSTER_MAX_MASTERS]; /* 0: not yet counted as new, 1: by the last refresh, 2: before */
    char names[TK_CLUSTER_MAX_MASTERS][272];
};

static void *alloc_or_die(size_t size)
{
    void *p = calloc(1, size);
    if (p == NULL) {
        fprintf(stderr, "fatal: no memory for the Redis node connections\n");
        abort();
    }
    return p;
}

static redisContext *connect_node(tk_redis_nodes_t *n, const char *host, uint16_t port, char *err, size_t errsize)
{
    tk_redis_url_t url = n->node_url;
    snprintf(url.host, sizeof(url.host), "%s", host);
    url.port = port;
    return tk_redis_sync_connect(&url, n->timeout_ms, err, errsize);
}

static void drop(tk_redis_nodes_t *n, size_t i)
{
    if (n->conns[i] != NULL)
        redisFree(n->conns[i]);
    n->conns[i] = NULL;
}

/* a connection that is there and has not failed */
static int usable(const tk_redis_nodes_t *n, size_t i)
{
    return i < n->map.nmasters && n->conns[i] != NULL && !n->conns[i]->err;
}

/* CLUSTER SLOTS of c into map; -1 with why in err */
static int slots_of(redisContext *c, const char *host, tk_slot_map_t *map, char *err, size_t errsize)
{
    redisReply *reply = redisCommand(c, "CLUSTER SLOTS");
    int rc = -1;
    if (reply == NULL)
        snprintf(err, errsize, "CLUSTER SLOTS: %s", c->errstr);
    else if (reply->type == REDIS_REPLY_ERROR)
        snprintf(err, errsize, "CLUSTER SLOTS: %s", reply->str);
    else
        rc = tk_slot_map_parse(map, reply, host, err, errsize);
    freeReplyObject(reply);
    return rc;
}

/* CLUSTER SLOTS of host:port on a connection of its own, closed after */
static int slots_from(tk_redis_nodes_t *n, const char *host, uint16_t port, tk_slot_map_t *map, char *why, size_t whysize)
{
    redisContext *c = connect_node(n, host, port, why, whysize);
    if (c == NULL)
        return -1;
    int rc = slots_of(c, host, map, why, whysize);
    redisFree(c);
    return rc;
}

/* The slot map as the first node to answer sees it: the masters we hold connections to
 * first (no new connection needed), then the masters of the last map we hold none to,
 * then the seeds. The last map's masters come before the seeds because after a failover
 * the seeds may all be gone while the masters that replaced them are fine: a process
 * whose connections all dropped must still find them. */
static int read_map(tk_redis_nodes_t *n, tk_slot_map_t *map, char *err, size_t errsize)
{
    char why[512] = "no seed node";
    uint8_t tried[TK_CLUSTER_MAX_MASTERS] = {0};
    for (size_t i = 0; i < n->map.nmasters; ++i) {
        if (n->conns[i] == NULL || n->conns[i]->err)
            continue;
        if (slots_of(n->conns[i], n->map.masters[i].host, map, why, sizeof(why)) == 0)
            return 0;
        if (n->conns[i]->err)
            drop(n, i); /* broken: a connection of its own is tried below */
        else
            tried[i] = 1; /* it answered, with an error */
    }
    for (size_t i = 0; i < n->map.nmasters; ++i) {
        if (!tried[i] && slots_from(n, n->map.masters[i].host, n->map.masters[i].port, map, why, sizeof(why)) == 0)
            return 0;
    }
    for (size_t i = 0; i < n->nseeds; ++i) {
        if (slots_from(n, n->seeds[i].host, n->seeds[i].port, map, why, sizeof(why)) == 0)
            return 0;
    }
    snprintf(err, errsize, "no Redis Cluster node answered CLUSTER SLOTS (last: %s)", why);
    return -1;
}

/* Takes the map now published by the cluster: connections to masters that stay are kept,
 * the others closed, new and unreachable masters (re)connected. */
static int rebuild(tk_redis_nodes_t *n, char *err, size_t errsize)
{
    tk_slot_map_t *map = alloc_or_die(sizeof(*map));
    redisContext *conns[TK_CLUSTER_MAX_MASTERS] = {NULL};
    uint8_t reported[TK_CLUSTER_MAX_MASTERS] = {0};
    if (read_map(n, map, err, errsize) != 0) {
        free(map);
        return -1;
    }
    for (size_t i = 0; i < map->nmasters; ++i) {
        const tk_cluster_node_t *m = map->masters + i;
        int was = tk_slot_map_find(&n->map, m->host, m->port);
        if (was >= 0) {
            reported[i] = n->reported[was];
            if (n->conns[was] != NULL && !n->conns[was]->err) {
                conns[i] = n->conns[was];
                n->conns[was] = NULL;
            }
        }
        if (conns[i] == NULL) {
            char why[512];
            conns[i] = connect_node(n, m->host, m->port, why, sizeof(why));
        }
    }
    for (size_t i = 0; i < n->map.nmasters; ++i)
        drop(n, i);
    n->map = *map;
    free(map);
    for (size_t i = 0; i < n->map.nmasters; ++i) {
        n->conns[i] = conns[i];
        n->reported[i] = reported[i];
        snprintf(n->names[i], sizeof(n->names[i]), "%s:%u", n->map.masters[i].host, n->map.masters[i].port);
    }
    return 0;
}

tk_redis_nodes_t *tk_redis_nodes_open(const tk_config_t *config, int timeout_ms, char *err, size_t errsize)
{
    tk_redis_nodes_t *n = alloc_or_die(sizeof(*n));
    n->timeout_ms = timeout_ms;
    n->cluster = config->ncluster_seeds != 0;
    if (!n->cluster) {
        n->node_url = config->redis;
        tk_slot_map_single(&n->map, config->redis.host, config->redis.port);
        snprintf(n->names[0], sizeof(n->names[0]), "%s:%u", config->redis.host, config->redis.port);
        if ((n->conns[0] = tk_redis_sync_connect(&config->redis, timeout_ms, err, errsize)) == NULL)
            goto Fail;
        return n;
    }
    n->nseeds = config->ncluster_seeds;
    memcpy(n->seeds, config->cluster_seeds, sizeof(n->seeds[0]) * n->nseeds);
    n->node_url = config->cluster_seeds[0]; /* its password; a cluster has database 0 only */
    n->node_url.db = 0;
    if (rebuild(n, err, errsize) != 0)
        goto Fail;
    return n;
Fail:
    tk_redis_nodes_close(n);
    return NULL;
}

void tk_redis_nodes_close(tk_redis_nodes_t *n)
{
    if (n == NULL)
        return;
    for (size_t i = 0; i < n->map.nmasters; ++i)
        drop(n, i);
    free(n);
}

int tk_redis_nodes_is_cluster(const tk_redis_nodes_t *n)
{
    return n->cluster;
}

int tk_redis_nodes_reconnect(tk_redis_nodes_t *n, char *err, size_t errsize)
{
    if (n->cluster)
        return rebuild(n, err, errsize);
    if (n->conns[0] != NULL && n->conns[0]->err)
        drop(n, 0);
    if (n->conns[0] == NULL && (n->conns[0] = tk_redis_sync_connect(&n->node_url, n->timeout_ms, err, errsize)) == NULL)
        return -1;
    return 0;
}

int tk_redis_nodes_refresh(tk_redis_nodes_t *n, char *err, size_t errsize)
{
    if (tk_redis_nodes_reconnect(n, err, errsize) != 0)
        return -1;
    int fresh = 0;
    for (size_t i = 0; n->cluster && i < n->map.nmasters; ++i) {
        fresh += n->reported[i] == 0;
        n->reported[i] = n->reported[i] == 0 ? 1 : 2;
    }
    return fresh;
}

int tk_redis_nodes_was_new(const tk_redis_nodes_t *n, size_t i)
{
    return i < n->map.nmasters && n->reported[i] == 1;
}

int tk_redis_nodes_complete(tk_redis_nodes_t *n)
{
    for (size_t i = 0; i < n->map.nmasters; ++i)
        if (!usable(n, i))
            return 0;
    return 1;
}

size_t tk_redis_nodes_count(const tk_redis_nodes_t *n)
{
    return n->map.nmasters;
}

redisContext *tk_redis_nodes_at(tk_redis_nodes_t *n, size_t i)
{
    return i < n->map.nmasters ? n->conns[i] : NULL;
}

const char *tk_redis_nodes_name(const tk_redis_nodes_t *n, size_t i)
{
    return i < n->map.nmasters ? n->names[i] : "";
}

const tk_cluster_node_t *tk_redis_nodes_node(const tk_redis_nodes_t *n, size_t i)
{
    return i < n->map.nmasters ? n->map.masters + i : NULL;
}

size_t tk_redis_nodes_slots(const tk_redis_nodes_t *n, size_t i)
{
    size_t count = 0;
    for (size_t slot = 0; slot < TK_CLUSTER_SLOTS; ++slot) {
        uint16_t owner = n->map.owner[slot];
        count += owner == TK_CLUSTER_NO_OWNER || owner >= n->map.nmasters ? i == n->map.nmasters : owner == i;
    }
    return count;
}

static size_t owner_of_slot(const tk_redis_nodes_t *n, unsigned slot)
{
    uint16_t owner = n->map.owner[slot % TK_CLUSTER_SLOTS];
    return owner == TK_CLUSTER_NO_OWNER ? n->map.nmasters : owner;
}

size_t tk_redis_nodes_index_of(const tk_redis_nodes_t *n, const char *key, size_t len)
{
    return owner_of_slot(n, tk_cluster_key_slot(key, len));
}

redisContext *tk_redis_nodes_for_key(tk_redis_nodes_t *n, const char *key, size_t len)
{
    return tk_redis_nodes_at(n, tk_redis_nodes_index_of(n, key, len));
}

/* where a command that addresses no key goes: the first master with a connection */
static size_t first_reachable(tk_redis_nodes_t *n)
{
    for (size_t i = 0; i < n->map.nmasters; ++i)
        if (usable(n, i))
            return i;
    return n->map.nmasters;
}

/* The slot a formatted command (RESP, as redisFormatCommand writes it) addresses: 1 with
 * the slot, 0 when it addresses no key. */
static int formatted_slot(const char *cmd, size_t len, unsigned *slot)
{
    const char *p = cmd, *end = cmd + len;
    if (len < 4 || *p != '*')
        return 0;
    int argc = atoi(p + 1), has_key = 0;
    if (argc <= 0)
        return 0;
    const char **argv = alloc_or_die(sizeof(*argv) * (size_t)argc);
    size_t *argvlen = alloc_or_die(sizeof(*argvlen) * (size_t)argc);
    p = memchr(p, '\n', (size_t)(end - p));
    int i = 0;
    for (; p != NULL && i < argc; ++i) {
        ++p; /* past '\n': "$<len>\r\n<data>\r\n" */
        if (p >= end || *p != '$')
            break;
        argvlen[i] = strtoul(p + 1, NULL, 10);
        if ((p = memchr(p, '\n', (size_t)(end - p))) == NULL || (size_t)(end - p - 1) < argvlen[i] + 2)
            break;
        argv[i] = p + 1;
        p += 1 + argvlen[i] + 1; /* onto the '\n' after the data */
    }
    const char *key;
    size_t keylen;
    if (i == argc && tk_cluster_command_key(argc, argv, argvlen, &key, &keylen) == 0) {
        *slot = tk_cluster_key_slot(key, keylen);
        has_key = 1;
    }
    free(argv);
    free(argvlen);
    return has_key;
}

/* ASKING (when asked) and the command on c; NULL when the connection failed */
static redisReply *exchange(redisContext *c, const char *cmd, size_t len, int asking)
{
    redisReply *reply = NULL;
    if (asking)
        redisAppendCommand(c, "ASKING");
    redisAppendFormattedCommand(c, cmd, len);
    if (asking) {
        if (redisGetReply(c, (void **)&reply) != REDIS_OK)
            return NULL;
        freeReplyObject(reply);
        reply = NULL;
    }
    if (redisGetReply(c, (void **)&reply) != REDIS_OK)
        return NULL;
    return reply;
}

/* The redirect loop every command goes through (tk_redis_nodes_command_argv's contract). */
static redisReply *run_formatted(tk_redis_nodes_t *n, const char *cmd, size_t len)
{
    unsigned slot = 0;
    int has_key = formatted_slot(cmd, len, &slot), redirects = 0;
    int64_t give_up_at = tk_time_mono_ms() + RETRY_FOR_MS;
    tk_redirect_t to = {.kind = TK_REDIRECT_NONE}; /* ASK, or a MOVED to a node missing from the map */
    char why[512];
    for (;;) {
        size_t i = n->map.nmasters;
        redisContext *c, *once = NULL;
        if (to.kind == TK_REDIRECT_NONE) {
            i = has_key ? owner_of_slot(n, slot) : first_reachable(n);
            c = tk_redis_nodes_at(n, i);
        } else {
            int known = tk_slot_map_find(&n->map, to.host, to.port);
            if (known >= 0)
                c = tk_redis_nodes_at(n, i = (size_t)known);
            else
                c = once = connect_node(n, to.host, to.port, why, sizeof(why));
        }
        if (c == NULL)
            return NULL;
        char asked[sizeof(to.host)]; /* the host of the node asked, for a redirect that names none */
        snprintf(asked, sizeof(asked), "%s", once != NULL || i >= n->map.nmasters ? to.host : n->map.masters[i].host);
        redisReply *reply = exchange(c, cmd, len, to.kind == TK_REDIRECT_ASK);
        if (once != NULL)
            redisFree(once);
        else if (reply == NULL)
            drop(n, i);
        if (reply == NULL || !n->cluster)
            return reply;
        tk_redirect_kind_t kind = tk_cluster_redirect(reply, &to);
        to.kind = kind;
        if (kind == TK_REDIRECT_NONE)
            return reply;
        if (to.host[0] == '\0') /* "MOVED 3999 :6381": a node that does not know its address */
            memcpy(to.host, asked, sizeof(to.host));
        if (kind == TK_REDIRECT_MOVED || kind == TK_REDIRECT_ASK) {
            if (++redirects > MAX_REDIRECTS)
                return reply;
        } else if (tk_time_mono_ms() >= give_up_at) {
            return reply; /* TRYAGAIN or CLUSTERDOWN for too long */
        }
        if (kind == TK_REDIRECT_MOVED) {
            /* the map is stale: read it again; the node's own word wins over a map read
             * from a node that has not heard of the move yet */
            rebuild(n, why, sizeof(why));
            int known = tk_slot_map_find(&n->map, to.host, to.port);
            if (known >= 0 && to.slot < TK_CLUSTER_SLOTS) {
                n->map.owner[to.slot] = (uint16_t)known;
                to.kind = TK_REDIRECT_NONE;
            }
        } else if (kind == TK_REDIRECT_TRYAGAIN) {
            tk_time_sleep_ms(TRYAGAIN_PAUSE_MS);
            to.kind = TK_REDIRECT_NONE;
        } else if (kind == TK_REDIRECT_CLUSTERDOWN) {
            tk_time_sleep_ms(CLUSTERDOWN_PAUSE_MS);
            rebuild(n, why, sizeof(why)); /* a failover under way publishes a new master */
            to.kind = TK_REDIRECT_NONE;
        }
        freeReplyObject(reply);
    }
}

redisReply *tk_redis_nodes_command_argv(tk_redis_nodes_t *n, int argc, const char **argv, const size_t *argvlen)
{
    char *cmd;
    int len = redisFormatCommandArgv(&cmd, argc, argv, argvlen);
    if (len < 0)
        return NULL;
    redisReply *reply = run_formatted(n, cmd, (size_t)len);
    free(cmd);
    return reply;
}

redisReply *tk_redis_nodes_command(tk_redis_nodes_t *n, const char *fmt, ...)
{
    char *cmd;
    va_list args;
    va_start(args, fmt);
    int len = redisvFormatCommand(&cmd, fmt, args);
    va_end(args);
    if (len < 0)
        return NULL;
    redisReply *reply = run_formatted(n, cmd, (size_t)len);
    free(cmd);
    return reply;
}

/* ---- Pipelines ------------------------------------------------------------------------ */

typedef struct st_tk_pipeline_entry_t {
    char *cmd; /* formatted, kept for a replay after a redirect */
    size_t len;
    size_t node; /* the master it was sent to; n->map.nmasters: none */
    redisReply *reply;
} tk_pipeline_entry_t;

struct st_tk_redis_pipeline_t {
    tk_redis_nodes_t *n;
    tk_pipeline_entry_t *entries;
    size_t count, capacity;
    uint8_t failed[TK_CLUSTER_MAX_MASTERS];
    char errors[TK_CLUSTER_MAX_MASTERS][128];
};

tk_redis_pipeline_t *tk_redis_pipeline_new(tk_redis_nodes_t *n)
{
    tk_redis_pipeline_t *p = alloc_or_die(sizeof(*p));
    p->n = n;
    return p;
}

static void append_formatted(tk_redis_pipeline_t *p, char *cmd, int len)
{
    if (len < 0)
        return; /* a format hiredis refuses: nothing was appended (only a programming error) */
    if (p->count == p->capacity) {
        p->capacity = p->capacity != 0 ? 2 * p->capacity : 16;
        p->entries = realloc(p->entries, sizeof(*p->entries) * p->capacity);
        if (p->entries == NULL) {
            fprintf(stderr, "fatal: no memory for a Redis pipeline\n");
            abort();
        }
    }
    tk_pipeline_entry_t *e = p->entries + p->count++;
    unsigned slot;
    *e = (tk_pipeline_entry_t){.cmd = cmd, .len = (size_t)len};
    e->node = formatted_slot(cmd, e->len, &slot) ? owner_of_slot(p->n, slot) : first_reachable(p->n);
    redisContext *c = tk_redis_nodes_at(p->n, e->node);
    if (c == NULL || redisAppendFormattedCommand(c, cmd, e->len) != REDIS_OK)
        e->node = p->n->map.nmasters;
}

void tk_redis_pipeline_append_argv(tk_redis_pipeline_t *p, int argc, const char **argv, const size_t *argvlen)
{
    char *cmd;
    int len = redisFormatCommandArgv(&cmd, argc, argv, argvlen);
    append_formatted(p, cmd, len);
}

void tk_redis_pipeline_append(tk_redis_pipeline_t *p, const char *fmt, ...)
{
    char *cmd;
    va_list args;
    va_start(args, fmt);
    int len = redisvFormatCommand(&cmd, fmt, args);
    va_end(args);
    append_formatted(p, cmd, len);
}

size_t tk_redis_pipeline_exec(tk_redis_pipeline_t *p)
{
    tk_redis_nodes_t *n = p->n;
    size_t nmasters = n->map.nmasters, unanswered = 0;
    for (size_t i = 0; i < p->count; ++i) {
        tk_pipeline_entry_t *e = p->entries + i;
        if (e->node >= nmasters || p->failed[e->node])
            continue;
        redisContext *c = n->conns[e->node];
        if (redisGetReply(c, (void **)&e->reply) != REDIS_OK) {
            e->reply = NULL;
            p->failed[e->node] = 1;
            snprintf(p->errors[e->node], sizeof(p->errors[e->node]), "%s: %s", n->names[e->node], c->errstr);
        }
    }
    for (size_t i = 0; i < nmasters; ++i)
        if (p->failed[i])
            drop(n, i);
    /* every reply is read: a replay may now change the map and the connections */
    for (size_t i = 0; i < p->count; ++i) {
        tk_pipeline_entry_t *e = p->entries + i;
        tk_redirect_t to;
        if (e->reply != NULL && n->cluster && tk_cluster_redirect(e->reply, &to) != TK_REDIRECT_NONE) {
            freeReplyObject(e->reply);
            e->reply = run_formatted(n, e->cmd, e->len);
        }
        unanswered += e->reply == NULL;
    }
    return unanswered;
}

size_t tk_redis_pipeline_count(const tk_redis_pipeline_t *p)
{
    return p->count;
}

redisReply *tk_redis_pipeline_reply(tk_redis_pipeline_t *p, size_t i)
{
    return i < p->count ? p->entries[i].reply : NULL;
}

const char *tk_redis_pipeline_error(const tk_redis_pipeline_t *p, size_t i)
{
    if (i >= p->count || p->entries[i].reply != NULL)
        return "";
    size_t node = p->entries[i].node;
    return node < TK_CLUSTER_MAX_MASTERS && p->failed[node] ? p->errors[node] : "no connection to the key's master";
}

void tk_redis_pipeline_free(tk_redis_pipeline_t *p)
{
    if (p == NULL)
        return;
    for (size_t i = 0; i < p->count; ++i) {
        free(p->entries[i].cmd);
        freeReplyObject(p->entries[i].reply);
    }
    free(p->entries);
    free(p);
}
