/*
 * The router. On a single Redis it is one link (engine/redis_link.h) and adds nothing to
 * a command's path. On Redis Cluster it keeps a node per master it has heard of, each
 * with a link for ordinary commands and one for durable ones, and the owner of every
 * slot. A command is formatted once (RESP) and kept until its final reply, so that it
 * can be sent again:
 *   MOVED        the slot's owner is updated at once, the map re-read, the command resent;
 *   ASK          ASKING and the command go to the importing node, the map is unchanged;
 *   TRYAGAIN,    the command waits RETRY_DELAY_MS and is routed again, until
 *   CLUSTERDOWN  RETRY_BUDGET_MS after it was first sent; then its caller gets NULL (503);
 *   lost link    the caller gets NULL at once: the command may have run, and only the
 *                caller (through Idempotency-Keys) can tell whether to repeat it.
 * A command whose owner is down when it is first sent is refused (-1, 503 at once).
 * The map is re-read with CLUSTER SLOTS after a redirect, a lost connection or a
 * CLUSTERDOWN, and every REFRESH_PERIOD_MS; one read at a time, at most one per
 * REFRESH_MIN_MS however many commands ask, so a failover does not become a storm. A node
 * a new map no longer lists (seeds aside) is closed once nothing is in flight on it, and
 * its entry reused: masters that keep coming back at new addresses never fill the table.
 * A durable command runs on the master's second link and its reply is held until
 * WAIT 1 confirms a replica has the write, so that the ordinary pipeline never queues
 * behind a WAIT; commands pipelined together share one WAIT (it answers for all that was
 * written before it on its connection). A fenced read runs there too; when its reply
 * reports what a replica may not have yet, a write to the fence key and WAIT 1 follow,
 * and the reply is held until a replica has everything up to the fence, so also what the
 * read saw. The fence is written by a script flagged allow-oom, so a full Redis still
 * takes it (a payment can complete at maxmemory: tk_pay_finish is allow-oom too); a fence
 * that is refused all the same answers NOREPLICA, never the held reply.
 */
#include "engine/redis_conn.h"
#include "engine/cluster_slots.h"
#include "engine/log.h"
#include "engine/redis_link.h"
#include "engine/timefmt.h"

#include <stdlib.h>
#include <string.h>

#define MAX_NODES (2 * TK_CLUSTER_MAX_MASTERS) /* nodes in use: masters, seeds, nodes with commands in flight */
#define MAX_REDIRECTS 5
#define RETRY_DELAY_MS 50
#define RETRY_BUDGET_MS 2000
#define REFRESH_MIN_MS 100
#define REFRESH_PERIOD_MS 5000
#define NO_NODE UINT16_MAX
#define NO_SLOT UINT32_MAX

static const char ASKING_RESP[] = "*1\r\n$6\r\nASKING\r\n";
static const char WAIT_RESP[] = "*3\r\n$4\r\nWAIT\r\n$1\r\n1\r\n$3\r\n500\r\n"; /* one replica, 500 ms */
/* a fenced read's fence: SET is denyoom, a script flagged allow-oom runs at maxmemory */
static const char FENCE_SCRIPT[] = "#!lua flags=allow-oom\nreturn redis.call('SET', KEYS[1], '1')";

typedef struct st_tk_redis_node_t {
    tk_redis_link_t *link;                /* ordinary commands */
    tk_redis_link_t *durable;             /* commands followed by WAIT; made once the node is a master */
    unsigned nreplicas;                   /* replicas the latest map lists for it */
    int owns_slots;                       /* a master in the latest map */
    int retired;                          /* left the map: links stopped, the entry free for the next node heard of */
    uint64_t waits_sent;                  /* WAITs written on the durable link: its clock for batching them */
    struct st_tk_redis_cmd_t *waiting_on; /* the commands the latest WAIT answers for, until it does */
} tk_redis_node_t;

typedef struct st_tk_redis_cmd_t {
    tk_redis_t *r;
    tk_redis_cb cb;
    void *data;
    char *resp; /* the command in RESP, kept for resending */
    size_t len;
    uint32_t slot; /* NO_SLOT: keyless */
    uint16_t node; /* where it was last sent */
    uint16_t redirects;
    int durable;                         /* on the second link, answered after WAIT */
    tk_redis_needs_fence_cb needs_fence; /* fenced reads: whether this reply needs the fence */
    char fence_key[32];                  /* fenced reads: the key SET before the WAIT */
    int64_t give_up_ms;
    redisReply *held;                       /* durable: the command's reply while WAIT runs */
    uint64_t sent_after;                    /* durable: waits_sent of its node when it (or its fence) was written */
    struct st_tk_redis_cmd_t *next_waiting; /* the others the same WAIT answers for */
    h2o_timeout_entry_t retry;
    struct st_tk_redis_cmd_t *next_free;
} tk_redis_cmd_t;

struct st_tk_redis_t {
    h2o_loop_t *loop;
    const tk_config_t *config;
    int cluster;
    tk_redis_node_t nodes[MAX_NODES];
    size_t nnodes; /* read by the metrics scrape: stored with release after the node is set */
    size_t nseeds; /* the first nodes, from the configuration: never retired */
    uint16_t owner[TK_CLUSTER_SLOTS];
    size_t uncovered; /* slots the latest map gives no owner */
    int have_map;
    tk_slot_map_t *scratch; /* the map being read */
    int refreshing, refresh_wanted;
    int refresh_again; /* asked for while a read was under way: its map may predate the reason */
    uint16_t refresh_node;
    size_t next_ask; /* round robin of the node asked for the map */
    int64_t last_refresh_ms;
    h2o_timeout_t retry_timeout, throttle_timeout, period_timeout;
    h2o_timeout_entry_t throttle_entry, period_entry;
    tk_redis_cmd_t *free_cmds;
    size_t waiting; /* commands between two sends (retry timer) */
    uint64_t round_trips, redirects, refreshes;
    int was_ready; /* tk_redis_ready has been true once (counted in routers_started) */
};

/* Routers that have been ready once: a process with fewer than one per loop is still
 * starting (tk_redis_all_started). */
static size_t routers_started;

static void request_refresh(tk_redis_t *r);
static void route(tk_redis_cmd_t *cmd);

/* ---- nodes ------------------------------------------------------------------------ */

/* counts the router (owner) in routers_started the first time it is ready: the ready
 * callback of a single Redis's link and of the masters' durable links */
static void note_started(void *owner)
{
    tk_redis_t *r = owner;
    if (!r->was_ready && tk_redis_ready(r)) {
        r->was_ready = 1;
        __atomic_add_fetch(&routers_started, 1, __ATOMIC_RELEASE);
    }
}

/* the ready callback of a cluster node's ordinary link */
static void on_link_ready(void *owner)
{
    tk_redis_t *r = owner;
    if (!r->have_map || r->refresh_wanted)
        request_refresh(r);
    note_started(r);
}

static int is_at(const tk_redis_node_t *n, const char *host, uint16_t port)
{
    const tk_redis_url_t *u = tk_redis_link_url(n->link);
    return u->port == port && strcmp(u->host, host) == 0;
}

/* the node at host:port, made (its links started, in a retired entry when there is one)
 * when new; NO_NODE when the table is full */
static uint16_t node_at(tk_redis_t *r, const char *host, uint16_t port)
{
    size_t free_entry = NO_NODE;
    for (size_t i = 0; i < r->nnodes; ++i) {
        if (r->nodes[i].retired)
            free_entry = free_entry == NO_NODE ? i : free_entry;
        else if (is_at(r->nodes + i, host, port))
            return (uint16_t)i;
    }
    if (free_entry == NO_NODE && r->nnodes == MAX_NODES) {
        tk_log_error("redis", "cluster: more than %d nodes in use; ignoring %s:%u", MAX_NODES, host, port);
        return NO_NODE;
    }
    tk_redis_url_t url = r->config->cluster_seeds[0]; /* the password, db 0 */
    snprintf(url.host, sizeof(url.host), "%s", host);
    url.port = port;
    if (free_entry != NO_NODE) {
        tk_redis_node_t *n = r->nodes + free_entry;
        n->retired = 0;
        tk_redis_link_start(n->link, &url);
        if (n->durable != NULL)
            tk_redis_link_start(n->durable, &url);
        return (uint16_t)free_entry;
    }
    size_t i = r->nnodes;
    r->nodes[i] = (tk_redis_node_t){.link = tk_redis_link_create(r->loop, &url, on_link_ready, r)};
    __atomic_store_n(&r->nnodes, i + 1, __ATOMIC_RELEASE);
    return (uint16_t)i;
}

/* Nodes the map no longer lists (a master that came back at another address, as on
 * Kubernetes, or one demoted) have their links stopped and their entries freed for the next
 * nodes heard of: otherwise the table only grows, and once it is full new masters cannot be
 * reached. Kept: the seeds, which find the cluster whatever it became; the node the map was
 * just read from (this runs in its link's reply callback); and a node with commands in
 * flight, so their callbacks get their replies (a later map retires it). Links are stopped,
 * not freed, and reused with the entry: the metrics scrape reads them from another thread. */
static void retire_unlisted(tk_redis_t *r, const tk_slot_map_t *map)
{
    for (size_t i = r->nseeds; i < r->nnodes; ++i) {
        tk_redis_node_t *n = r->nodes + i;
        if (n->retired || i == r->refresh_node || tk_redis_link_in_flight(n->link) != 0 ||
            (n->durable != NULL && tk_redis_link_in_flight(n->durable) != 0))
            continue;
        size_t m = 0;
        while (m < map->nmasters && !is_at(n, map->masters[m].host, map->masters[m].port))
            ++m;
        if (m < map->nmasters)
            continue;
        tk_redis_link_stop(n->link);
        if (n->durable != NULL)
            tk_redis_link_stop(n->durable);
        n->retired = 1;
        n->owns_slots = 0;
        n->nreplicas = 0;
    }
}

static void make_master(tk_redis_t *r, uint16_t i, unsigned nreplicas)
{
    tk_redis_node_t *n = r->nodes + i;
    n->owns_slots = 1;
    n->nreplicas = nreplicas;
    if (n->durable == NULL)
        __atomic_store_n(&n->durable, tk_redis_link_create(r->loop, tk_redis_link_url(n->link), note_started, r), __ATOMIC_RELEASE);
}

/* ---- the slot map ----------------------------------------------------------------- */

static void apply_map(tk_redis_t *r, const tk_slot_map_t *map)
{
    uint16_t node_of[TK_CLUSTER_MAX_MASTERS];
    for (size_t i = 0; i < r->nnodes; ++i)
        r->nodes[i].owns_slots = 0;
    retire_unlisted(r, map);
    for (size_t m = 0; m < map->nmasters; ++m) {
        node_of[m] = node_at(r, map->masters[m].host, map->masters[m].port);
        if (node_of[m] != NO_NODE)
            make_master(r, node_of[m], map->masters[m].nreplicas);
    }
    r->uncovered = 0;
    for (size_t s = 0; s < TK_CLUSTER_SLOTS; ++s) {
        uint16_t o = map->owner[s] == TK_CLUSTER_NO_OWNER ? NO_NODE : node_of[map->owner[s]];
        r->owner[s] = o;
        r->uncovered += o == NO_NODE;
    }
    if (!r->have_map)
        tk_log_info("redis", "cluster: slot map read, %zu masters", map->nmasters);
    r->have_map = 1;
}

static void on_slots(redisReply *reply, void *data)
{
    tk_redis_t *r = data;
    char err[256];
    int again = r->refresh_again;
    r->refreshing = 0;
    r->refresh_again = 0;
    const char *asked = tk_redis_link_url(r->nodes[r->refresh_node].link)->host;
    if (reply == NULL || tk_slot_map_parse(r->scratch, reply, asked, err, sizeof(err)) != 0) {
        if (reply != NULL)
            tk_log_warn("redis", "cluster: unusable CLUSTER SLOTS reply: %s", reply->type == REDIS_REPLY_ERROR ? reply->str : err);
        request_refresh(r); /* from another node, after the throttle */
        return;
    }
    r->refresh_wanted = 0;
    apply_map(r, r->scratch);
    note_started(r);
    if (again)
        request_refresh(r);
}

/* asks a ready node for the map, round robin: a master first (a replica may not have
 * heard of a resharding yet), any node when no master answers */
static void start_refresh(tk_redis_t *r)
{
    static const char *argv[] = {"CLUSTER", "SLOTS"};
    static const size_t argvlen[] = {7, 5};
    for (int masters_only = 1; masters_only >= 0; --masters_only) {
        for (size_t k = 0; k < r->nnodes; ++k) {
            size_t i = (r->next_ask + k) % r->nnodes;
            if ((masters_only && !r->nodes[i].owns_slots) || !tk_redis_link_is_ready(r->nodes[i].link))
                continue;
            if (tk_redis_link_send(r->nodes[i].link, on_slots, r, 2, argv, argvlen) != 0)
                continue;
            r->next_ask = i + 1;
            r->refresh_node = (uint16_t)i;
            r->refreshing = 1;
            r->last_refresh_ms = tk_time_mono_ms();
            __atomic_fetch_add(&r->refreshes, 1, __ATOMIC_RELAXED);
            return;
        }
    }
    /* no node is up: the first link that becomes ready asks (on_link_ready) */
}

static void request_refresh(tk_redis_t *r)
{
    r->refresh_wanted = 1;
    if (r->refreshing)
        r->refresh_again = 1;
    if (r->refreshing || h2o_timeout_is_linked(&r->throttle_entry))
        return;
    if (tk_time_mono_ms() - r->last_refresh_ms >= REFRESH_MIN_MS)
        start_refresh(r);
    else
        h2o_timeout_link(r->loop, &r->throttle_timeout, &r->throttle_entry);
}

static void on_throttle(h2o_timeout_entry_t *entry)
{
    tk_redis_t *r = H2O_STRUCT_FROM_MEMBER(tk_redis_t, throttle_entry, entry);
    if (r->refresh_wanted && !r->refreshing)
        start_refresh(r);
}

static void on_period(h2o_timeout_entry_t *entry)
{
    tk_redis_t *r = H2O_STRUCT_FROM_MEMBER(tk_redis_t, period_entry, entry);
    h2o_timeout_link(r->loop, &r->period_timeout, &r->period_entry);
    request_refresh(r);
}

/* ---- commands --------------------------------------------------------------------- */

static tk_redis_cmd_t *cmd_alloc(tk_redis_t *r)
{
    tk_redis_cmd_t *cmd = r->free_cmds;
    if (cmd != NULL)
        r->free_cmds = cmd->next_free;
    else
        cmd = h2o_mem_alloc(sizeof(*cmd));
    return cmd;
}

static void cmd_free(tk_redis_cmd_t *cmd)
{
    tk_redis_t *r = cmd->r;
    free(cmd->resp);
    if (cmd->held != NULL)
        freeReplyObject(cmd->held);
    cmd->next_free = r->free_cmds;
    r->free_cmds = cmd;
}

static void finish(tk_redis_cmd_t *cmd, redisReply *reply)
{
    cmd->cb(reply, cmd->data);
    cmd_free(cmd);
}

static redisReply *copy_reply(const redisReply *src)
{
    redisReply *dst = calloc(1, sizeof(*dst));
    if (dst == NULL)
        h2o_fatal("no memory");
    dst->type = src->type;
    dst->integer = src->integer;
    if (src->str != NULL) {
        dst->str = malloc(src->len + 1);
        if (dst->str == NULL)
            h2o_fatal("no memory");
        memcpy(dst->str, src->str, src->len);
        dst->str[src->len] = '\0';
        dst->len = src->len;
    }
    if (src->type == REDIS_REPLY_ARRAY && src->elements != 0) {
        dst->element = calloc(src->elements, sizeof(*dst->element));
        if (dst->element == NULL)
            h2o_fatal("no memory");
        dst->elements = src->elements;
        for (size_t i = 0; i < src->elements; ++i)
            dst->element[i] = copy_reply(src->element[i]);
    }
    return dst;
}

static redisReply *error_reply(const char *text)
{
    redisReply *rep = calloc(1, sizeof(*rep));
    if (rep == NULL || (rep->str = strdup(text)) == NULL)
        h2o_fatal("no memory");
    rep->type = REDIS_REPLY_ERROR;
    rep->len = strlen(text);
    return rep;
}

/* The command waits RETRY_DELAY_MS and is routed again, unless its budget is spent. The
 * redirect cap counts hops between two waits: it stops a MOVED ping-pong that never waits,
 * while a command that keeps waiting (ASK to a node that answers TRYAGAIN, every round of a
 * migration) is bounded by the budget, as TRYAGAIN promises, not cut off after MAX_REDIRECTS
 * rounds (~250 ms). */
static void retry_later(tk_redis_cmd_t *cmd)
{
    tk_redis_t *r = cmd->r;
    if (tk_time_mono_ms() >= cmd->give_up_ms) {
        finish(cmd, NULL);
        return;
    }
    cmd->redirects = 0;
    __atomic_fetch_add(&r->waiting, 1, __ATOMIC_RELAXED);
    h2o_timeout_link(r->loop, &r->retry_timeout, &cmd->retry);
}

static void on_retry(h2o_timeout_entry_t *entry)
{
    tk_redis_cmd_t *cmd = H2O_STRUCT_FROM_MEMBER(tk_redis_cmd_t, retry, entry);
    __atomic_fetch_sub(&cmd->r->waiting, 1, __ATOMIC_RELAXED);
    route(cmd);
}

/* a held reply that no replica is known to have: the caller gets "NOREPLICA …" instead */
static void finish_unconfirmed(tk_redis_cmd_t *cmd, const char *refusal)
{
    redisReply *refused = error_reply(refusal);
    finish(cmd, refused);
    freeReplyObject(refused);
}

/* The reply to a WAIT, for every command of its batch (await_replica). */
static void on_waited(redisReply *reply, void *data)
{
    tk_redis_cmd_t *first = data;
    tk_redis_node_t *n = first->r->nodes + first->node;
    if (n->waiting_on == first)
        n->waiting_on = NULL;
    /* WAIT itself refused (a master demoted while it waited answers UNBLOCKED), or no
     * replica confirmed in time: either way the writes are not reported as replicated */
    const char *refusal = reply == NULL                            ? NULL
                          : reply->type != REDIS_REPLY_INTEGER     ? "NOREPLICA the replicas could not be asked"
                          : reply->integer < 1 && n->nreplicas > 0 ? "NOREPLICA the write reached no replica in time"
                                                                   : NULL;
    if (refusal != NULL)
        request_refresh(first->r); /* the replica may be failed by now: then the map no longer lists it */
    for (tk_redis_cmd_t *cmd = first, *next; cmd != NULL; cmd = next) {
        next = cmd->next_waiting;
        if (reply == NULL)
            finish(cmd, NULL);
        else if (refusal != NULL)
            finish_unconfirmed(cmd, refusal);
        else
            finish(cmd, cmd->held);
    }
}

/* Holds cmd's reply until a replica has the writes up to it. WAIT answers for everything
 * written before it on its connection, so a WAIT written after cmd and not answered yet
 * answers for cmd too: cmd joins its batch. Otherwise a WAIT is written for cmd. Durable
 * commands pipelined together thus share one WAIT: with the replica gone they all wait
 * 500 ms, not 500 ms each in turn. */
static void await_replica(tk_redis_cmd_t *cmd)
{
    tk_redis_node_t *n = cmd->r->nodes + cmd->node;
    if (n->waiting_on != NULL && n->waits_sent > cmd->sent_after) {
        cmd->next_waiting = n->waiting_on->next_waiting;
        n->waiting_on->next_waiting = cmd;
        return;
    }
    cmd->next_waiting = NULL;
    if (tk_redis_link_send_formatted(n->durable, on_waited, cmd, WAIT_RESP, sizeof(WAIT_RESP) - 1) != 0) {
        finish(cmd, NULL);
        return;
    }
    ++n->waits_sent;
    n->waiting_on = cmd;
}

/* The reply to a fenced read's fence. WAIT speaks for the writes of its own connection
 * only: a fence that was not written leaves the read's reply, which may report another
 * client's write, unconfirmed, and WAIT would answer for older writes. So WAIT is sent
 * once the fence is in, and a refused fence answers NOREPLICA as a WAIT that timed out. */
static void on_fenced(redisReply *reply, void *data)
{
    tk_redis_cmd_t *cmd = data;
    if (reply == NULL) {
        finish(cmd, NULL);
        return;
    }
    if (reply->type == REDIS_REPLY_ERROR) {
        tk_log_warn("redis", "cluster: fence %s refused: %s", cmd->fence_key, reply->str);
        request_refresh(cmd->r); /* a redirect, say */
        finish_unconfirmed(cmd, "NOREPLICA the fence could not be written");
        return;
    }
    await_replica(cmd);
}

/* the reply to ASKING: OK, or the command after it says what failed */
static void on_asking(redisReply *reply, void *data) {}

/* A reply to a routed command: the answer, or a redirect to follow. */
static void on_routed(redisReply *reply, void *data)
{
    tk_redis_cmd_t *cmd = data;
    tk_redis_t *r = cmd->r;
    tk_redirect_t to;
    if (reply == NULL) {
        request_refresh(r);
        finish(cmd, NULL);
        return;
    }
    switch (tk_cluster_redirect(reply, &to)) {
    case TK_REDIRECT_NONE:
        /* a master the map gives no replica (none configured, or the cluster marked it failed)
         * has nothing to wait for: WAIT would only sit out its timeout */
        if (cmd->durable && r->nodes[cmd->node].nreplicas > 0 && reply->type != REDIS_REPLY_ERROR &&
            (cmd->needs_fence == NULL || cmd->needs_fence(reply))) {
            tk_redis_link_t *link = r->nodes[cmd->node].durable;
            cmd->held = copy_reply(reply);
            const char *fence[] = {"EVAL", FENCE_SCRIPT, "1", cmd->fence_key};
            if (cmd->needs_fence == NULL)
                await_replica(cmd);
            else if (tk_redis_link_send(link, on_fenced, cmd, 4, fence, NULL) != 0)
                finish(cmd, NULL);
            else
                cmd->sent_after = r->nodes[cmd->node].waits_sent; /* the WAIT must come after the fence */
            return;
        }
        finish(cmd, reply);
        return;
    case TK_REDIRECT_MOVED:
    case TK_REDIRECT_ASK:
        __atomic_fetch_add(&r->redirects, 1, __ATOMIC_RELAXED);
        if (++cmd->redirects > MAX_REDIRECTS) {
            tk_log_warn("redis", "cluster: slot %u redirected %d times; giving up on the command", cmd->slot, MAX_REDIRECTS);
            finish(cmd, NULL);
            return;
        }
        break;
    case TK_REDIRECT_TRYAGAIN:
        retry_later(cmd);
        return;
    case TK_REDIRECT_CLUSTERDOWN:
        request_refresh(r);
        retry_later(cmd);
        return;
    }
    const char *host = to.host[0] != '\0' ? to.host : tk_redis_link_url(r->nodes[cmd->node].link)->host;
    uint16_t target = node_at(r, host, to.port);
    if (target == NO_NODE) {
        finish(cmd, NULL);
        return;
    }
    if (to.kind == TK_REDIRECT_MOVED) {
        if (to.slot < TK_CLUSTER_SLOTS)
            r->owner[to.slot] = target;
        make_master(r, target, r->nodes[target].nreplicas);
        request_refresh(r);
        route(cmd);
        return;
    }
    /* ASK: once, at the importing node, on the link the command needs */
    tk_redis_link_t *link = cmd->durable ? r->nodes[target].durable : r->nodes[target].link;
    if (link == NULL || !tk_redis_link_is_ready(link)) {
        retry_later(cmd); /* routed again then; the migration may be over */
        return;
    }
    cmd->node = target;
    cmd->sent_after = r->nodes[target].waits_sent;
    if (tk_redis_link_send_formatted(link, on_asking, NULL, ASKING_RESP, sizeof(ASKING_RESP) - 1) != 0 ||
        tk_redis_link_send_formatted(link, on_routed, cmd, cmd->resp, cmd->len) != 0) {
        finish(cmd, NULL);
        return;
    }
    __atomic_fetch_add(&r->round_trips, 1, __ATOMIC_RELAXED);
}

/* the node a command for slot goes to: its owner, or for a keyless command any master that is up */
static uint16_t pick(const tk_redis_t *r, uint32_t slot)
{
    if (slot != NO_SLOT)
        return r->have_map ? r->owner[slot] : NO_NODE;
    for (size_t i = 0; i < r->nnodes; ++i)
        if ((r->nodes[i].owns_slots || !r->have_map) && tk_redis_link_is_ready(r->nodes[i].link))
            return (uint16_t)i;
    return NO_NODE;
}

static tk_redis_link_t *link_for(const tk_redis_t *r, uint16_t node, int durable)
{
    if (node == NO_NODE)
        return NULL;
    tk_redis_link_t *link = durable ? r->nodes[node].durable : r->nodes[node].link;
    return link != NULL && tk_redis_link_is_ready(link) ? link : NULL;
}

/* (Re)sends cmd to the owner of its slot; waits and retries while there is none. */
static void route(tk_redis_cmd_t *cmd)
{
    tk_redis_t *r = cmd->r;
    uint16_t node = pick(r, cmd->slot);
    tk_redis_link_t *link = link_for(r, node, cmd->durable);
    if (link == NULL || tk_redis_link_send_formatted(link, on_routed, cmd, cmd->resp, cmd->len) != 0) {
        request_refresh(r);
        retry_later(cmd);
        return;
    }
    cmd->node = node;
    cmd->sent_after = r->nodes[node].waits_sent;
    __atomic_fetch_add(&r->round_trips, 1, __ATOMIC_RELAXED);
}

static int send_routed(tk_redis_t *r, tk_redis_cb cb, void *data, int durable, int argc, const char **argv, const size_t *argvlen,
                       tk_redis_cmd_t **sent)
{
    const char *key;
    size_t keylen;
    uint32_t slot = tk_cluster_command_key(argc, argv, argvlen, &key, &keylen) == 0 ? tk_cluster_key_slot(key, keylen) : NO_SLOT;
    uint16_t node = pick(r, slot);
    tk_redis_link_t *link = link_for(r, node, durable);
    if (link == NULL) {
        request_refresh(r); /* the owner is down or unknown: 503 now, a fresher map for the next */
        return -1;
    }
    char *resp;
    int len = redisFormatCommandArgv(&resp, argc, argv, argvlen);
    if (len < 0)
        return -1;
    tk_redis_cmd_t *cmd = cmd_alloc(r);
    *cmd = (tk_redis_cmd_t){.r = r,
                            .cb = cb,
                            .data = data,
                            .resp = resp,
                            .len = (size_t)len,
                            .slot = slot,
                            .node = node,
                            .sent_after = r->nodes[node].waits_sent,
                            .durable = durable,
                            .give_up_ms = tk_time_mono_ms() + RETRY_BUDGET_MS,
                            .retry = {.cb = on_retry}};
    if (tk_redis_link_send_formatted(link, on_routed, cmd, resp, (size_t)len) != 0) {
        cmd_free(cmd);
        return -1;
    }
    __atomic_fetch_add(&r->round_trips, 1, __ATOMIC_RELAXED);
    if (sent != NULL)
        *sent = cmd;
    return 0;
}

/* ---- the interface ---------------------------------------------------------------- */

tk_redis_t *tk_redis_create(h2o_loop_t *loop, const tk_config_t *config)
{
    tk_redis_t *r = h2o_mem_alloc(sizeof(*r));
    memset(r, 0, sizeof(*r));
    r->loop = loop;
    r->config = config;
    if (config->ncluster_seeds == 0) {
        r->nodes[0].link = tk_redis_link_create(loop, &config->redis, note_started, r);
        r->nnodes = 1;
        return r;
    }
    r->cluster = 1;
    r->scratch = h2o_mem_alloc(sizeof(*r->scratch));
    for (size_t s = 0; s < TK_CLUSTER_SLOTS; ++s)
        r->owner[s] = NO_NODE;
    h2o_timeout_init(loop, &r->retry_timeout, RETRY_DELAY_MS);
    h2o_timeout_init(loop, &r->throttle_timeout, REFRESH_MIN_MS);
    h2o_timeout_init(loop, &r->period_timeout, REFRESH_PERIOD_MS);
    r->throttle_entry.cb = on_throttle;
    r->period_entry.cb = on_period;
    h2o_timeout_link(loop, &r->period_timeout, &r->period_entry);
    r->last_refresh_ms = tk_time_mono_ms() - REFRESH_MIN_MS;
    r->refresh_wanted = 1;
    for (size_t i = 0; i < config->ncluster_seeds; ++i)
        node_at(r, config->cluster_seeds[i].host, config->cluster_seeds[i].port);
    r->nseeds = r->nnodes;
    return r;
}

int tk_redis_command(tk_redis_t *r, tk_redis_cb cb, void *data, int argc, const char **argv, const size_t *argvlen)
{
    if (r->cluster)
        return send_routed(r, cb, data, 0, argc, argv, argvlen, NULL);
    if (tk_redis_link_send(r->nodes[0].link, cb, data, argc, argv, argvlen) != 0)
        return -1;
    __atomic_fetch_add(&r->round_trips, 1, __ATOMIC_RELAXED);
    return 0;
}

int tk_redis_command_durable(tk_redis_t *r, tk_redis_cb cb, void *data, int argc, const char **argv, const size_t *argvlen)
{
    if (r->cluster)
        return send_routed(r, cb, data, 1, argc, argv, argvlen, NULL);
    return tk_redis_command(r, cb, data, argc, argv, argvlen);
}

int tk_redis_command_fenced(tk_redis_t *r, const char *fence_key, tk_redis_needs_fence_cb needs_fence, tk_redis_cb cb, void *data,
                            int argc, const char **argv, const size_t *argvlen)
{
    if (!r->cluster)
        return tk_redis_command(r, cb, data, argc, argv, argvlen);
    tk_redis_cmd_t *cmd;
    if (strlen(fence_key) >= sizeof(cmd->fence_key) || send_routed(r, cb, data, 1, argc, argv, argvlen, &cmd) != 0)
        return -1;
    cmd->needs_fence = needs_fence;
    memcpy(cmd->fence_key, fence_key, strlen(fence_key) + 1);
    return 0;
}

int tk_redis_ready(const tk_redis_t *r)
{
    if (!r->cluster)
        return tk_redis_link_is_ready(r->nodes[0].link);
    if (!r->have_map || r->uncovered != 0)
        return 0;
    for (size_t i = 0; i < r->nnodes; ++i)
        if (r->nodes[i].owns_slots && (!tk_redis_link_is_ready(r->nodes[i].link) || r->nodes[i].durable == NULL ||
                                       !tk_redis_link_is_ready(r->nodes[i].durable)))
            return 0;
    return 1;
}

int tk_redis_all_started(size_t loops)
{
    return __atomic_load_n(&routers_started, __ATOMIC_ACQUIRE) >= loops;
}

/* the four below are read by the metrics scrape from another thread */
size_t tk_redis_in_flight(const tk_redis_t *r)
{
    size_t n = __atomic_load_n(&r->nnodes, __ATOMIC_ACQUIRE), total = __atomic_load_n(&r->waiting, __ATOMIC_RELAXED);
    for (size_t i = 0; i < n; ++i) {
        total += tk_redis_link_in_flight(r->nodes[i].link);
        tk_redis_link_t *durable = __atomic_load_n(&r->nodes[i].durable, __ATOMIC_ACQUIRE);
        if (durable != NULL)
            total += tk_redis_link_in_flight(durable);
    }
    return total;
}

uint64_t tk_redis_round_trips(const tk_redis_t *r)
{
    return __atomic_load_n(&r->round_trips, __ATOMIC_RELAXED);
}

uint64_t tk_redis_redirects(const tk_redis_t *r)
{
    return __atomic_load_n(&r->redirects, __ATOMIC_RELAXED);
}

uint64_t tk_redis_map_refreshes(const tk_redis_t *r)
{
    return __atomic_load_n(&r->refreshes, __ATOMIC_RELAXED);
}
