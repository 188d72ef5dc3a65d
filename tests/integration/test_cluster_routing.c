/*
 * Routing tests of the asynchronous router (engine/redis_conn.c) against the cluster-test
 * profile's Redis Cluster (TICKETD_TEST_REDIS_CLUSTER, `scripts/test.sh --cluster`). The test
 * drives its own h2o loop and router, and changes the cluster underneath it the way an
 * operator's resharding does — CLUSTER SETSLOT IMPORTING / MIGRATING, MIGRATE, SETSLOT NODE on
 * every master — over plain blocking hiredis connections: a slot moved after the router read
 * the map (MOVED), a slot half migrated (ASK), a multi-key command caught mid-migration
 * (TRYAGAIN, finished or abandoned), five thousand commands at a freshly moved slot (one map
 * read, not thousands), seeds where nothing listens (refused at once, never a hang), and
 * masters announcing a new hostname (another spelling of 127.0.0.1) round after round, until
 * the router has met more addresses than its table of nodes holds.
 * Other tests run on the same cluster next, so every slot is put back where it was: by each
 * test, and again by a teardown in the parent process that compares the cluster with the
 * map taken at start (and puts every node back to announcing its IP), so a test that fails
 * half way still leaves the cluster as it found it.
 * On a single Redis only the plain path and the unreachable seeds are checked, and the test
 * exits 77 (ctest: skipped) to say that the cluster cases did not run.
 */
#include "engine/cluster_slots.h"
#include "engine/config.h"
#include "engine/redis_conn.h"
#include "engine/timefmt.h"
#include "tests/support/harness.h"
#include "tests/support/redis_direct.h"

#include <check.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_NODES 16
#define STORM 5000
#define STORM_KEYS 50
#define CONVERGE_MS 10000
#define ADDRESS_ROUNDS 140 /* each meets at least one new address: more than the router's 128 nodes */

/* ---- the cluster, seen directly --------------------------------------------------- */

typedef struct st_node_t {
    char host[64];
    int port;
    char id[64];
    int master;
    redisContext *c;
    pid_t owner;             /* the process c belongs to (check forks a child per test) */
    redisContext *inherited; /* in a test's child, the parent's c: kept (reachable), never used */
} node_t;

static node_t nodes[MAX_NODES];
static size_t nnodes;
static size_t masters[MAX_NODES]; /* indexes into nodes */
static size_t nmasters;
static uint16_t home[TK_CLUSTER_SLOTS]; /* the master owning each slot at start (index into masters) */

static redisContext *conn(size_t i)
{
    node_t *n = &nodes[i];
    if (n->c != NULL && n->owner != getpid()) {
        n->inherited = n->c; /* the parent's socket: not ours to use or close */
        n->c = NULL;
    }
    if (n->c != NULL && n->c->err) {
        redisFree(n->c);
        n->c = NULL;
    }
    if (n->c == NULL) {
        struct timeval tv = {5, 0};
        n->c = redisConnectWithTimeout(n->host, n->port, tv);
        if (n->c == NULL || n->c->err) {
            fprintf(stderr, "cluster_routing: cannot reach %s:%d\n", n->host, n->port);
            abort();
        }
        redisSetTimeout(n->c, tv);
        n->owner = getpid();
    }
    return n->c;
}

/* a command on node i; aborts the process when the node does not answer */
static redisReply *on_node(size_t i, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(conn(i), fmt, ap);
    va_end(ap);
    if (r == NULL) {
        fprintf(stderr, "cluster_routing: %s:%d: %s\n", nodes[i].host, nodes[i].port, nodes[i].c->errstr);
        abort();
    }
    return r;
}

/* the same, for commands expected to answer OK (SETSLOT, MIGRATE); says which did not */
static void expect_ok(size_t i, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(conn(i), fmt, ap);
    va_end(ap);
    if (r == NULL || r->type == REDIS_REPLY_ERROR)
        fprintf(stderr, "cluster_routing: %s:%d: '%s': %s\n", nodes[i].host, nodes[i].port, fmt,
                r != NULL ? r->str : nodes[i].c->errstr);
    if (r != NULL)
        freeReplyObject(r);
}

static size_t node_index(const char *host, int port)
{
    for (size_t i = 0; i < nnodes; ++i)
        if (nodes[i].port == port && strcmp(nodes[i].host, host) == 0)
            return i;
    return SIZE_MAX;
}

/* the seeds, their ids and which of them are masters */
static void discover(const char *seeds)
{
    for (const char *p = seeds; *p != '\0' && nnodes < MAX_NODES;) {
        size_t len = strcspn(p, ",");
        char addr[96];
        snprintf(addr, sizeof(addr), "%.*s", (int)len, p);
        char *colon = strrchr(addr, ':');
        if (colon != NULL) {
            *colon = '\0';
            snprintf(nodes[nnodes].host, sizeof(nodes[nnodes].host), "%s", addr);
            nodes[nnodes++].port = atoi(colon + 1);
        }
        p += len + (p[len] == ',');
    }
    for (size_t i = 0; i < nnodes; ++i) {
        redisReply *r = on_node(i, "CLUSTER MYID");
        snprintf(nodes[i].id, sizeof(nodes[i].id), "%s", r->type == REDIS_REPLY_STRING ? r->str : "");
        freeReplyObject(r);
        r = on_node(i, "ROLE");
        nodes[i].master = r->type == REDIS_REPLY_ARRAY && r->elements > 0 && strcmp(r->element[0]->str, "master") == 0;
        freeReplyObject(r);
        if (nodes[i].master)
            masters[nmasters++] = i;
    }
}

/* node i's view of the owner of every slot, as indexes into nodes (SIZE_MAX: none) */
static void view_of(size_t i, size_t *owner)
{
    static tk_slot_map_t map;
    char err[256];
    redisReply *r = on_node(i, "CLUSTER SLOTS");
    if (tk_slot_map_parse(&map, r, nodes[i].host, err, sizeof(err)) != 0) {
        fprintf(stderr, "cluster_routing: CLUSTER SLOTS of %s:%d: %s\n", nodes[i].host, nodes[i].port, err);
        abort();
    }
    freeReplyObject(r);
    for (size_t s = 0; s < TK_CLUSTER_SLOTS; ++s)
        owner[s] = map.owner[s] == TK_CLUSTER_NO_OWNER ? SIZE_MAX
                                                       : node_index(map.masters[map.owner[s]].host, map.masters[map.owner[s]].port);
}

static size_t master_of_node(size_t node)
{
    for (size_t m = 0; m < nmasters; ++m)
        if (masters[m] == node)
            return m;
    return SIZE_MAX;
}

/* Every node (replicas too) names master m as the owner of slot: what a client that reads
 * the map after a resharding finds. 0, or -1 when CONVERGE_MS passed first. */
static int converge(unsigned slot, size_t m)
{
    static size_t owner[TK_CLUSTER_SLOTS];
    int64_t deadline = tk_time_mono_ms() + CONVERGE_MS;
    for (size_t i = 0; i < nnodes; ++i) {
        for (;;) {
            view_of(i, owner);
            if (owner[slot] == masters[m])
                break;
            if (tk_time_mono_ms() > deadline)
                return -1;
            usleep(20 * 1000);
        }
    }
    return 0;
}

static long long keys_in_slot(size_t node, unsigned slot)
{
    redisReply *r = on_node(node, "CLUSTER COUNTKEYSINSLOT %u", slot);
    long long n = r->type == REDIS_REPLY_INTEGER ? r->integer : 0;
    freeReplyObject(r);
    return n;
}

/* MIGRATEs every key of slot from node `from` to node `to`, with ASKING first when `from`
 * serves the slot only as its importing node */
static void migrate_slot_keys(size_t from, size_t to, unsigned slot, int asking)
{
    for (;;) {
        redisReply *keys = on_node(from, "CLUSTER GETKEYSINSLOT %u 100", slot);
        if (keys->type != REDIS_REPLY_ARRAY || keys->elements == 0) {
            freeReplyObject(keys);
            return;
        }
        char port[16];
        snprintf(port, sizeof(port), "%d", nodes[to].port);
        const char *argv[7 + 100];
        size_t argvlen[7 + 100];
        int argc = 0;
        const char *head[] = {"MIGRATE", nodes[to].host, port, "", "0", "5000", "REPLACE", "KEYS"};
        for (size_t k = 0; k < 8; ++k, ++argc)
            argv[argc] = head[k], argvlen[argc] = strlen(head[k]);
        for (size_t k = 0; k < keys->elements && k < 99; ++k, ++argc)
            argv[argc] = keys->element[k]->str, argvlen[argc] = keys->element[k]->len;
        redisContext *c = conn(from);
        if (asking)
            redisAppendCommand(c, "ASKING");
        redisAppendCommandArgv(c, argc, argv, argvlen);
        redisReply *r = NULL;
        if (asking && redisGetReply(c, (void **)&r) == REDIS_OK)
            freeReplyObject(r);
        r = NULL;
        int ok = redisGetReply(c, (void **)&r) == REDIS_OK && r != NULL && r->type != REDIS_REPLY_ERROR;
        if (!ok)
            fprintf(stderr, "cluster_routing: MIGRATE slot %u %s:%d → %s:%d: %s\n", slot, nodes[from].host, nodes[from].port,
                    nodes[to].host, nodes[to].port, r != NULL ? r->str : c->errstr);
        if (r != NULL)
            freeReplyObject(r);
        freeReplyObject(keys);
        if (!ok)
            return;
    }
}

/* the first half of a resharding of slot from master a to master b: after it, a answers ASK
 * for the slot's keys it no longer has */
static void begin_migration(unsigned slot, size_t a, size_t b)
{
    expect_ok(masters[b], "CLUSTER SETSLOT %u IMPORTING %s", slot, nodes[masters[a]].id);
    expect_ok(masters[a], "CLUSTER SETSLOT %u MIGRATING %s", slot, nodes[masters[b]].id);
}

/* the second half: b owns the slot, told to b first, then a, then every other master */
static void finish_migration(unsigned slot, size_t a, size_t b)
{
    expect_ok(masters[b], "CLUSTER SETSLOT %u NODE %s", slot, nodes[masters[b]].id);
    expect_ok(masters[a], "CLUSTER SETSLOT %u NODE %s", slot, nodes[masters[b]].id);
    for (size_t m = 0; m < nmasters; ++m)
        if (m != a && m != b)
            expect_ok(masters[m], "CLUSTER SETSLOT %u NODE %s", slot, nodes[masters[b]].id);
}

/* a whole resharding of slot from a to b, as an operator does it */
static void move_slot(unsigned slot, size_t a, size_t b)
{
    begin_migration(slot, a, b);
    migrate_slot_keys(masters[a], masters[b], slot, 0);
    finish_migration(slot, a, b);
}

/* Puts slot back on its home master, stable, with all its keys, from whatever state a
 * test left it in: owned elsewhere (moved back), or still home's but half migrated (the
 * keys already sent away are fetched back through the importing node, then every master
 * forgets the migration). */
static void restore_slot(unsigned slot)
{
    static size_t owner[TK_CLUSTER_SLOTS];
    size_t h = home[slot];
    view_of(masters[h], owner);
    size_t cur = owner[slot] == SIZE_MAX ? SIZE_MAX : master_of_node(owner[slot]);
    if (cur != h && cur != SIZE_MAX) {
        for (size_t m = 0; m < nmasters; ++m)
            expect_ok(masters[m], "CLUSTER SETSLOT %u STABLE", slot);
        move_slot(slot, cur, h);
    } else {
        expect_ok(masters[h], "CLUSTER SETSLOT %u STABLE", slot); /* or it answers the keys coming home with ASK */
        for (size_t m = 0; m < nmasters; ++m) {
            if (m == h || keys_in_slot(masters[m], slot) == 0)
                continue;
            expect_ok(masters[m], "CLUSTER SETSLOT %u IMPORTING %s", slot, nodes[masters[h]].id);
            migrate_slot_keys(masters[m], masters[h], slot, 1);
        }
        for (size_t m = 0; m < nmasters; ++m)
            expect_ok(masters[m], "CLUSTER SETSLOT %u STABLE", slot);
    }
    if (converge(slot, h) != 0)
        fprintf(stderr, "cluster_routing: slot %u not back on %s:%d after %d ms\n", slot, nodes[masters[h]].host,
                nodes[masters[h]].port, CONVERGE_MS);
}

/* the slots some master has in migration (the "[slot->-id]" / "[slot-<-id]" of its own line) */
static void half_migrated(char *half)
{
    for (size_t m = 0; m < nmasters; ++m) {
        redisReply *r = on_node(masters[m], "CLUSTER NODES");
        const char *line = r->type == REDIS_REPLY_STRING ? strstr(r->str, "myself") : NULL;
        const char *end = line != NULL ? strchr(line, '\n') : NULL;
        for (const char *p = line; p != NULL && p < end && (p = strchr(p, '[')) != NULL && p < end; ++p)
            half[strtoul(p + 1, NULL, 10) % TK_CLUSTER_SLOTS] = 1;
        freeReplyObject(r);
    }
}

/* Deletes every key of these tests ("tk-test:{routing-…}") from every master — also one a
 * failed restore left on a node that does not own its slot, which only answers ASKING
 * while importing the slot. */
static void forget_test_keys(void)
{
    static size_t owner[TK_CLUSTER_SLOTS];
    for (size_t m = 0; m < nmasters; ++m) {
        view_of(masters[m], owner);
        char cursor[32] = "0";
        do {
            redisReply *r = on_node(masters[m], "SCAN %s MATCH tk-test:{routing-* COUNT 1000", cursor);
            if (r->type != REDIS_REPLY_ARRAY || r->elements != 2) {
                freeReplyObject(r);
                break;
            }
            snprintf(cursor, sizeof(cursor), "%s", r->element[0]->str);
            for (size_t k = 0; k < r->element[1]->elements; ++k) {
                const redisReply *key = r->element[1]->element[k];
                unsigned slot = tk_cluster_key_slot(key->str, key->len);
                if (owner[slot] == masters[m]) {
                    expect_ok(masters[m], "DEL %b", key->str, key->len);
                    continue;
                }
                expect_ok(masters[m], "CLUSTER SETSLOT %u IMPORTING %s", slot, nodes[owner[slot]].id);
                redisContext *c = conn(masters[m]);
                redisAppendCommand(c, "ASKING");
                redisAppendCommand(c, "DEL %b", key->str, key->len);
                for (int reply = 0; reply < 2; ++reply) {
                    void *rep = NULL;
                    if (redisGetReply(c, &rep) == REDIS_OK)
                        freeReplyObject(rep);
                }
                expect_ok(masters[m], "CLUSTER SETSLOT %u STABLE", slot);
            }
            freeReplyObject(r);
        } while (strcmp(cursor, "0") != 0);
    }
}

/* Makes the cluster look as it did at start: every slot whose owner differs in some
 * master's view, or that some master has in migration, goes through restore_slot. */
static void restore_cluster(void)
{
    static size_t owner[TK_CLUSTER_SLOTS];
    static char off[TK_CLUSTER_SLOTS];
    memset(off, 0, sizeof(off));
    half_migrated(off);
    for (size_t m = 0; m < nmasters; ++m) {
        view_of(masters[m], owner);
        for (size_t s = 0; s < TK_CLUSTER_SLOTS; ++s)
            off[s] |= owner[s] != masters[home[s]];
    }
    for (unsigned s = 0; s < TK_CLUSTER_SLOTS; ++s)
        if (off[s])
            restore_slot(s);
}

/* A key "tk-test:{routing-<what>-N}:<suffix>" whose slot master m owns and holds no key yet
 * (so that moving it moves only the test's keys); the tag into tag[64]. */
static unsigned pick_slot(size_t m, const char *what, char *tag)
{
    for (int n = 0;; ++n) {
        snprintf(tag, 64, "{routing-%s-%d}", what, n);
        unsigned slot = tk_cluster_key_slot(tag, strlen(tag));
        if (home[slot] == m && keys_in_slot(masters[m], slot) == 0)
            return slot;
    }
}

static void set_direct(const char *key, const char *value)
{
    redisReply *r = tk_test_redis_command("SET %s %s", key, value);
    ck_assert_msg(r != NULL && r->type == REDIS_REPLY_STATUS, "SET %s: %s", key, r != NULL ? r->str : "no reply");
    freeReplyObject(r);
}

static void del_direct(const char *key)
{
    freeReplyObject(tk_test_redis_command("DEL %s", key));
}

/* whether node i holds key (EXISTS on that very node; ASKING so an importing node answers too) */
static int node_has(size_t i, const char *key)
{
    redisContext *c = conn(i);
    redisAppendCommand(c, "ASKING");
    redisAppendCommand(c, "EXISTS %s", key);
    redisReply *r = NULL;
    if (redisGetReply(c, (void **)&r) == REDIS_OK)
        freeReplyObject(r);
    r = NULL;
    int has = redisGetReply(c, (void **)&r) == REDIS_OK && r != NULL && r->type == REDIS_REPLY_INTEGER && r->integer == 1;
    if (r != NULL)
        freeReplyObject(r);
    return has;
}

/* ---- the router, on a loop of our own --------------------------------------------- */

typedef struct st_result_t {
    int calls; /* more than one is a bug of its own */
    int null;  /* the callback got NULL */
    int type;
    char str[128];
    size_t elements;
    char element[2][128];
    int64_t at_ms;
} result_t;

static h2o_loop_t *loop; /* globals, so LeakSanitizer sees them reachable: routers are never closed */
static tk_redis_t *router;
static tk_config_t config;

static void on_reply(redisReply *reply, void *data)
{
    result_t *res = data;
    ++res->calls;
    res->at_ms = tk_time_mono_ms();
    res->null = reply == NULL;
    if (reply == NULL)
        return;
    res->type = reply->type;
    if (reply->str != NULL)
        snprintf(res->str, sizeof(res->str), "%.*s", (int)reply->len, reply->str);
    res->elements = reply->type == REDIS_REPLY_ARRAY ? reply->elements : 0;
    for (size_t i = 0; i < res->elements && i < 2; ++i)
        snprintf(res->element[i], sizeof(res->element[i]), "%s", reply->element[i]->str != NULL ? reply->element[i]->str : "(nil)");
}

/* runs the loop until *flag is nonzero or ms passed; whether it became nonzero */
static int run_until(const int *flag, int64_t ms)
{
    int64_t deadline = tk_time_mono_ms() + ms;
    while (!*flag && tk_time_mono_ms() < deadline)
        h2o_evloop_run(loop, 10);
    return *flag != 0;
}

static int run_until_ready(int64_t ms)
{
    int64_t deadline = tk_time_mono_ms() + ms;
    while (!tk_redis_ready(router) && tk_time_mono_ms() < deadline)
        h2o_evloop_run(loop, 10);
    return tk_redis_ready(router);
}

/* a router on the test's cluster (or single Redis), with the map read */
static void start_router(void)
{
    memset(&config, 0, sizeof(config));
    const char *seeds = tk_test_redis_cluster();
    char url[128];
    snprintf(url, sizeof(url), "redis://127.0.0.1:%d/0", tk_test_redis_port());
    ck_assert_int_eq(tk_config_parse_redis_url(url, &config.redis), 0);
    if (seeds != NULL)
        ck_assert_int_eq(tk_config_parse_cluster_seeds(&config, seeds), 0);
    loop = h2o_evloop_create();
    router = tk_redis_create(loop, &config);
    ck_assert_msg(run_until_ready(5000), "the router never became ready");
}

/* GET key through the router, waited for */
static result_t get_routed(const char *key)
{
    result_t res = {0};
    const char *argv[] = {"GET", key};
    size_t argvlen[] = {3, strlen(key)};
    ck_assert_int_eq(tk_redis_command(router, on_reply, &res, 2, argv, argvlen), 0);
    ck_assert_msg(run_until(&res.calls, 5000), "GET %s: no callback in 5 s", key);
    return res;
}

static void assert_value(const result_t *res, const char *key, const char *value)
{
    ck_assert_msg(!res->null, "GET %s: NULL reply", key);
    ck_assert_msg(res->type == REDIS_REPLY_STRING, "GET %s: reply type %d (%s)", key, res->type, res->str);
    ck_assert_str_eq(res->str, value);
}

/* ---- single Redis ------------------------------------------------------------------ */

START_TEST(single_redis_commands_work)
{
    start_router();
    set_direct("tk-test:{routing-single}:k", "single");
    result_t res = get_routed("tk-test:{routing-single}:k");
    assert_value(&res, "tk-test:{routing-single}:k", "single");
    ck_assert_uint_eq(tk_redis_redirects(router), 0);
    ck_assert_uint_eq(tk_redis_map_refreshes(router), 0);
    del_direct("tk-test:{routing-single}:k");
}
END_TEST

/* 6. Seeds where nothing listens: no map, not ready, and a command is refused at once
 * (-1) without its callback ever running — not queued to hang until some timeout. */
START_TEST(unreachable_seeds_refuse_at_once)
{
    memset(&config, 0, sizeof(config));
    char url[64];
    snprintf(url, sizeof(url), "redis://127.0.0.1:%d", tk_test_free_port());
    ck_assert_int_eq(tk_config_parse_redis_url(url, &config.cluster_seeds[0]), 0);
    config.ncluster_seeds = 1;
    loop = h2o_evloop_create();
    router = tk_redis_create(loop, &config);
    int never = 0;
    run_until(&never, 300); /* a few reconnect attempts */
    ck_assert_int_eq(tk_redis_ready(router), 0);
    result_t res = {0};
    const char *argv[] = {"GET", "tk-test:{routing-nowhere}:k"};
    size_t argvlen[] = {3, strlen(argv[1])};
    int64_t t0 = tk_time_mono_ms();
    ck_assert_int_eq(tk_redis_command(router, on_reply, &res, 2, argv, argvlen), -1);
    ck_assert_int_lt(tk_time_mono_ms() - t0, 50);
    const char *ping[] = {"PING"};
    size_t pinglen[] = {4};
    ck_assert_int_eq(tk_redis_command(router, on_reply, &res, 1, ping, pinglen), -1); /* keyless: no node is up either */
    run_until(&never, 300);
    ck_assert_int_eq(res.calls, 0); /* no callback after an error return */
}
END_TEST

/* ---- cluster ----------------------------------------------------------------------- */

/* 1. With a fresh map every command goes straight to its owner, on each master. */
START_TEST(keys_on_every_master_are_read)
{
    start_router();
    uint64_t redirects = tk_redis_redirects(router);
    for (size_t m = 0; m < nmasters; ++m) {
        char tag[64], key[96], value[32];
        pick_slot(m, "each", tag);
        snprintf(key, sizeof(key), "tk-test:%s:k", tag);
        snprintf(value, sizeof(value), "on-master-%zu", m);
        set_direct(key, value);
        ck_assert(node_has(masters[m], key));
        result_t res = get_routed(key);
        assert_value(&res, key, value);
        del_direct(key);
    }
    ck_assert_uint_eq(tk_redis_redirects(router), redirects);
}
END_TEST

/* 2. A slot moved from A to B after the router read the map: A answers MOVED, the router
 * follows it, counts it, re-reads the map, and the next command goes to B directly. */
START_TEST(moved_slot_is_followed)
{
    start_router();
    char tag[64], key[96];
    unsigned slot = pick_slot(0, "moved", tag);
    snprintf(key, sizeof(key), "tk-test:%s:k", tag);
    set_direct(key, "moved-value");
    uint64_t redirects = tk_redis_redirects(router), refreshes = tk_redis_map_refreshes(router);

    move_slot(slot, 0, 1);
    ck_assert_int_eq(converge(slot, 1), 0);
    ck_assert(node_has(masters[1], key));
    result_t res = get_routed(key);
    assert_value(&res, key, "moved-value");
    ck_assert_uint_gt(tk_redis_redirects(router), redirects);
    int never = 0;
    run_until(&never, 300); /* the map read MOVED asked for: throttled to REFRESH_MIN_MS after the last */
    ck_assert_uint_gt(tk_redis_map_refreshes(router), refreshes);
    redirects = tk_redis_redirects(router);
    res = get_routed(key);
    assert_value(&res, key, "moved-value");
    ck_assert_uint_eq(tk_redis_redirects(router), redirects);

    restore_slot(slot);
    del_direct(key);
}
END_TEST

/* 3. Slot migrating from A to B with one key already on B: A answers ASK for it and the
 * router asks B (ASKING + GET); the key still on A is served by A; the map is left alone. */
START_TEST(asked_key_is_read_from_the_importing_node)
{
    start_router();
    char tag[64], moved[96], stayed[96];
    unsigned slot = pick_slot(0, "ask", tag);
    snprintf(moved, sizeof(moved), "tk-test:%s:moved", tag);
    snprintf(stayed, sizeof(stayed), "tk-test:%s:stayed", tag);
    set_direct(moved, "on-b");
    set_direct(stayed, "on-a");
    uint64_t redirects = tk_redis_redirects(router), refreshes = tk_redis_map_refreshes(router);

    begin_migration(slot, 0, 1);
    expect_ok(masters[0], "MIGRATE %s %d %s 0 5000 REPLACE", nodes[masters[1]].host, nodes[masters[1]].port, moved);
    ck_assert(node_has(masters[1], moved) && !node_has(masters[0], moved));
    ck_assert(node_has(masters[0], stayed) && !node_has(masters[1], stayed));

    result_t res = get_routed(moved);
    assert_value(&res, moved, "on-b");
    ck_assert_uint_eq(tk_redis_redirects(router), redirects + 1);
    res = get_routed(stayed);
    assert_value(&res, stayed, "on-a");
    ck_assert_uint_eq(tk_redis_redirects(router), redirects + 1);
    ck_assert_uint_eq(tk_redis_map_refreshes(router), refreshes);

    restore_slot(slot);
    ck_assert(node_has(masters[0], moved));
    del_direct(moved);
    del_direct(stayed);
}
END_TEST

typedef struct st_finisher_t {
    h2o_timeout_entry_t entry;
    unsigned slot;
    const char *key;
    int fired;
} finisher_t;

/* from the loop, while the MGET is being retried: the rest of the keys to B, B the owner */
static void on_finish_migration(h2o_timeout_entry_t *entry)
{
    finisher_t *f = H2O_STRUCT_FROM_MEMBER(finisher_t, entry, entry);
    migrate_slot_keys(masters[0], masters[1], f->slot, 0);
    finish_migration(f->slot, 0, 1);
    f->fired = 1;
}

/* MGET of two keys of a slot half migrated (one on A, one on B): TRYAGAIN from A */
static void start_half_migration(char *tag, unsigned *slot, char *a, char *b)
{
    *slot = pick_slot(0, "tryagain", tag);
    snprintf(a, 96, "tk-test:%s:a", tag);
    snprintf(b, 96, "tk-test:%s:b", tag);
    set_direct(a, "va");
    set_direct(b, "vb");
    begin_migration(*slot, 0, 1);
    expect_ok(masters[0], "MIGRATE %s %d %s 0 5000 REPLACE", nodes[masters[1]].host, nodes[masters[1]].port, a);
    redisReply *r = on_node(masters[0], "MGET %s %s", a, b);
    ck_assert_msg(r->type == REDIS_REPLY_ERROR && strncmp(r->str, "TRYAGAIN", 8) == 0, "A answered MGET with %d %s", r->type,
                  r->str != NULL ? r->str : "");
    freeReplyObject(r);
}

static int send_mget(result_t *res, const char *a, const char *b)
{
    const char *argv[] = {"MGET", a, b};
    size_t argvlen[] = {4, strlen(a), strlen(b)};
    return tk_redis_command(router, on_reply, res, 3, argv, argvlen);
}

/* 4a. TRYAGAIN is retried: the migration finishes from a timer while the MGET waits, and
 * the MGET then succeeds (at B, after a MOVED). */
START_TEST(tryagain_is_retried_until_the_migration_ends)
{
    start_router();
    char tag[64], a[96], b[96];
    unsigned slot;
    start_half_migration(tag, &slot, a, b);

    h2o_timeout_t wait;
    h2o_timeout_init(loop, &wait, 300);
    finisher_t f = {.entry = {.cb = on_finish_migration}, .slot = slot};
    h2o_timeout_link(loop, &wait, &f.entry);
    result_t res = {0};
    int64_t t0 = tk_time_mono_ms();
    ck_assert_int_eq(send_mget(&res, a, b), 0);
    ck_assert_msg(run_until(&res.calls, 5000), "MGET: no callback in 5 s");
    ck_assert_int_eq(f.fired, 1);
    ck_assert_msg(!res.null, "MGET: NULL after %lld ms", (long long)(res.at_ms - t0));
    ck_assert_int_eq(res.type, REDIS_REPLY_ARRAY);
    ck_assert_uint_eq(res.elements, 2);
    ck_assert_str_eq(res.element[0], "va");
    ck_assert_str_eq(res.element[1], "vb");
    ck_assert_int_ge(res.at_ms - t0, 250); /* it did wait for the migration */
    int never = 0;
    run_until(&never, 200);
    ck_assert_int_eq(res.calls, 1);

    restore_slot(slot);
    del_direct(a);
    del_direct(b);
}
END_TEST

/* 4c. The same wait when A answers ASK and B, asked, answers TRYAGAIN (a multi-key command
 * whose keys have all left A, one of them not existing yet — a hold being created, say):
 * each round is a retry within the budget, not a redirect loop, so the command waits for
 * the migration to end as in 4a instead of being given up after a few hops. */
START_TEST(tryagain_after_ask_is_retried_until_the_migration_ends)
{
    start_router();
    char tag[64], a[96], b[96], absent[96];
    unsigned slot;
    start_half_migration(tag, &slot, a, b);
    snprintf(absent, sizeof(absent), "tk-test:%s:absent", tag);
    redisReply *r = on_node(masters[0], "MGET %s %s", a, absent);
    ck_assert_msg(r->type == REDIS_REPLY_ERROR && strncmp(r->str, "ASK ", 4) == 0, "A answered MGET with %d %s", r->type,
                  r->str != NULL ? r->str : "");
    freeReplyObject(r);

    h2o_timeout_t wait;
    h2o_timeout_init(loop, &wait, 600);
    finisher_t f = {.entry = {.cb = on_finish_migration}, .slot = slot};
    h2o_timeout_link(loop, &wait, &f.entry);
    result_t res = {0};
    int64_t t0 = tk_time_mono_ms();
    ck_assert_int_eq(send_mget(&res, a, absent), 0);
    ck_assert_msg(run_until(&res.calls, 5000), "MGET: no callback in 5 s");
    ck_assert_msg(!res.null, "MGET: NULL after %lld ms, before the migration ended at 600 ms", (long long)(res.at_ms - t0));
    ck_assert_int_eq(f.fired, 1);
    ck_assert_int_eq(res.type, REDIS_REPLY_ARRAY);
    ck_assert_uint_eq(res.elements, 2);
    ck_assert_str_eq(res.element[0], "va");
    ck_assert_str_eq(res.element[1], "(nil)");

    restore_slot(slot);
    del_direct(a);
    del_direct(b);
}
END_TEST

/* 4b. A migration left half done: the MGET is retried within its budget (~2 s) and then
 * answered NULL — once, and never later than ~2.5 s. */
START_TEST(tryagain_gives_up_within_the_budget)
{
    start_router();
    char tag[64], a[96], b[96];
    unsigned slot;
    start_half_migration(tag, &slot, a, b);

    result_t res = {0};
    int64_t t0 = tk_time_mono_ms();
    ck_assert_int_eq(send_mget(&res, a, b), 0);
    ck_assert_msg(run_until(&res.calls, 5000), "MGET: no callback in 5 s");
    ck_assert(res.null);
    ck_assert_int_ge(res.at_ms - t0, 1500);
    ck_assert_int_le(res.at_ms - t0, 2500);
    int never = 0;
    run_until(&never, 200);
    ck_assert_int_eq(res.calls, 1);

    restore_slot(slot);
    del_direct(a);
    del_direct(b);
}
END_TEST

/* 5. 5000 commands at a slot moved behind the router's back, sent at once: every one is
 * answered with its value, and the map is re-read a handful of times, not per redirect. */
START_TEST(refresh_storm_is_throttled)
{
    start_router();
    char tag[64], key[STORM_KEYS][96], value[STORM_KEYS][32];
    unsigned slot = pick_slot(0, "storm", tag);
    for (int k = 0; k < STORM_KEYS; ++k) {
        snprintf(key[k], sizeof(key[k]), "tk-test:%s:%d", tag, k);
        snprintf(value[k], sizeof(value[k]), "storm-%d", k);
        set_direct(key[k], value[k]);
    }
    move_slot(slot, 0, 1);
    ck_assert_int_eq(converge(slot, 1), 0);
    uint64_t redirects = tk_redis_redirects(router), refreshes = tk_redis_map_refreshes(router);

    static result_t res[STORM];
    memset(res, 0, sizeof(res));
    for (int i = 0; i < STORM; ++i) {
        const char *argv[] = {"GET", key[i % STORM_KEYS]};
        size_t argvlen[] = {3, strlen(argv[1])};
        ck_assert_int_eq(tk_redis_command(router, on_reply, &res[i], 2, argv, argvlen), 0);
    }
    int done = 0;
    int64_t deadline = tk_time_mono_ms() + 10000;
    while (done < STORM && tk_time_mono_ms() < deadline) {
        h2o_evloop_run(loop, 10);
        for (done = 0; done < STORM && res[done].calls != 0; ++done)
            ;
    }
    int never = 0;
    run_until(&never, 300); /* map reads the storm asked for, throttled, are counted when they start */
    int ok = 0, nulls = 0;
    for (int i = 0; i < STORM; ++i) {
        ck_assert_int_le(res[i].calls, 1);
        nulls += res[i].null;
        ok += res[i].calls == 1 && !res[i].null && strcmp(res[i].str, value[i % STORM_KEYS]) == 0;
    }
    uint64_t reads = tk_redis_map_refreshes(router) - refreshes;
    fprintf(stderr, "refresh storm: %d/%d answered right, %d NULL, %llu redirects, %llu map reads\n", ok, STORM, nulls,
            (unsigned long long)(tk_redis_redirects(router) - redirects), (unsigned long long)reads);
    ck_assert_int_eq(ok, STORM);
    ck_assert_uint_gt(tk_redis_redirects(router), redirects);
    ck_assert_uint_ge(reads, 1);
    ck_assert_uint_le(reads, 5);

    restore_slot(slot);
    for (int k = 0; k < STORM_KEYS; ++k)
        del_direct(key[k]);
}
END_TEST

/* The i-th (i > 0) of many names of 127.0.0.1: inet_aton, which reads numeric hosts, takes
 * leading zeros (octal: 00 is 0, 0001 is 1), so each name is another node to the router and
 * the same socket to the kernel. */
static void loopback_name(int i, char *name, size_t size)
{
    snprintf(name, size, "127.%.*s0.%.*s0.%.*s1", i % 8, "0000000", i / 8 % 8, "0000000", i / 64 % 8, "0000000");
}

/* every node back to announcing its IP (what the renaming test changes) */
static void restore_names(void)
{
    for (size_t i = 0; i < nnodes; ++i) {
        expect_ok(i, "CONFIG SET cluster-preferred-endpoint-type ip");
        expect_ok(i, "CONFIG SET cluster-announce-hostname %s", "");
    }
}

/* 7. Masters that keep coming back under new addresses (pods rescheduled on Kubernetes):
 * the router meets more distinct addresses than its table of nodes holds (every master
 * announces a new hostname each round, and the map is read again after its connections to
 * one master are lost), and still reaches every master at its latest address. */
START_TEST(masters_at_ever_new_addresses_stay_reachable)
{
    start_router();
    char key[MAX_NODES][96], name[64];
    for (size_t m = 0; m < nmasters; ++m) {
        char tag[64];
        pick_slot(m, "renamed", tag);
        snprintf(key[m], sizeof(key[m]), "tk-test:%s:k", tag);
        set_direct(key[m], "here");
    }
    for (size_t i = 0; i < nnodes; ++i) {
        expect_ok(i, "CONFIG SET cluster-announce-hostname 127.0.0.1");
        expect_ok(i, "CONFIG SET cluster-preferred-endpoint-type hostname");
    }
    for (int round = 0; round < ADDRESS_ROUNDS; ++round) {
        for (size_t m = 0; m < nmasters; ++m) {
            loopback_name(1 + round * (int)nmasters + (int)m, name, sizeof(name));
            expect_ok(masters[m], "CONFIG SET cluster-announce-hostname %s", name);
        }
        size_t m = (size_t)round % nmasters;
        uint64_t refreshes = tk_redis_map_refreshes(router);
        expect_ok(masters[m], "CLIENT KILL TYPE normal"); /* the router's links, not this one */
        result_t res = {0};
        const char *argv[] = {"GET", key[m]};
        size_t argvlen[] = {3, strlen(key[m])};
        if (tk_redis_command(router, on_reply, &res, 2, argv, argvlen) == 0) /* fails: the map is read again */
            run_until(&res.calls, 5000);
        int64_t deadline = tk_time_mono_ms() + 5000;
        while ((tk_redis_map_refreshes(router) == refreshes || tk_redis_in_flight(router) != 0) && tk_time_mono_ms() < deadline)
            h2o_evloop_run(loop, 10);
        ck_assert_msg(run_until_ready(5000), "round %d: a master is out of reach (latest name %s)", round, name);
    }
    for (size_t m = 0; m < nmasters; ++m) {
        result_t res = get_routed(key[m]);
        assert_value(&res, key[m], "here");
    }
    tk_test_redis_disconnect(); /* its connections were killed with the router's */
    for (size_t m = 0; m < nmasters; ++m)
        del_direct(key[m]);
}
END_TEST

/* ---- the runner --------------------------------------------------------------------- */

/* after each test, in the parent process: the cluster as it was, whatever the test did */
static void cluster_teardown(void)
{
    for (size_t i = 0; i < nnodes; ++i) { /* a test may have killed them (CLIENT KILL) */
        if (nodes[i].c != NULL && nodes[i].owner == getpid())
            redisFree(nodes[i].c);
        nodes[i].c = NULL;
    }
    restore_names();
    restore_cluster();
    forget_test_keys();
}

static void add_case(Suite *s, const char *name, const TTest *test, int on_cluster)
{
    TCase *tc = tcase_create(name);
    if (on_cluster)
        tcase_add_unchecked_fixture(tc, NULL, cluster_teardown);
    tcase_add_test(tc, test);
    suite_add_tcase(s, tc);
}

int main(void)
{
    const char *seeds = tk_test_redis_cluster();
    Suite *s = suite_create("cluster_routing");
    if (seeds == NULL) {
        add_case(s, "single", single_redis_commands_work, 0);
    } else {
        discover(seeds);
        if (nmasters < 2) {
            fprintf(stderr, "cluster_routing: %zu masters among the seeds; the routing cases need two\n", nmasters);
            return EXIT_FAILURE;
        }
        size_t owner[TK_CLUSTER_SLOTS];
        view_of(masters[0], owner);
        for (size_t slot = 0; slot < TK_CLUSTER_SLOTS; ++slot) {
            size_t m = master_of_node(owner[slot]);
            if (m == SIZE_MAX) {
                fprintf(stderr, "cluster_routing: slot %zu has no master among the seeds\n", slot);
                return EXIT_FAILURE;
            }
            home[slot] = (uint16_t)m;
        }
        cluster_teardown(); /* what an earlier run may have left behind */
        add_case(s, "each_master", keys_on_every_master_are_read, 1);
        add_case(s, "moved", moved_slot_is_followed, 1);
        add_case(s, "ask", asked_key_is_read_from_the_importing_node, 1);
        add_case(s, "tryagain_retried", tryagain_is_retried_until_the_migration_ends, 1);
        add_case(s, "tryagain_after_ask", tryagain_after_ask_is_retried_until_the_migration_ends, 1);
        add_case(s, "tryagain_budget", tryagain_gives_up_within_the_budget, 1);
        add_case(s, "storm", refresh_storm_is_throttled, 1);
        add_case(s, "renamed", masters_at_ever_new_addresses_stay_reachable, 1);
    }
    add_case(s, "unreachable", unreachable_seeds_refuse_at_once, 0);
    SRunner *runner = srunner_create(s);
    srunner_run_all(runner, CK_NORMAL);
    int failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    if (failed != 0)
        return EXIT_FAILURE;
    if (seeds == NULL) {
        printf("cluster_routing: TICKETD_TEST_REDIS_CLUSTER is unset: single-Redis checks passed, the cluster cases did not "
               "run\n");
        return 77; /* SKIP_RETURN_CODE */
    }
    return EXIT_SUCCESS;
}
