/*
 * tk_test_redis_command (redis_direct.h): a command is formatted once and sent to the node
 * that answered last (at first the single Redis, or the first reachable cluster seed). A
 * cluster node that does not own the key answers "MOVED <slot> <host>:<port>" — the command
 * goes there and that node becomes the next first try — or, during a slot migration,
 * "ASK <slot> <host>:<port>" — it goes there once, preceded by ASKING. TRYAGAIN (a
 * multi-key command during a migration) is retried after a short pause. Connections are
 * kept per address; one that fails is dropped and reopened once.
 */
#include "tests/support/redis_direct.h"
#include "tests/support/harness.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#define TK_DIRECT_MAX_NODES 16
#define TK_DIRECT_MAX_HOPS 8

typedef struct st_tk_direct_node_t {
    char host[64];
    int port;
    redisContext *c;
} tk_direct_node_t;

static tk_direct_node_t nodes[TK_DIRECT_MAX_NODES];
static size_t nnodes;
static pid_t owner;     /* the process the kept connections belong to */
static size_t last = 0; /* index into nodes of the node that answered last */

void tk_test_redis_disconnect(void)
{
    for (size_t i = 0; i < nnodes; ++i)
        if (nodes[i].c != NULL)
            redisFree(nodes[i].c);
    nnodes = 0;
    last = 0;
}

/* the node entry for host:port, added when new */
static size_t node_index(const char *host, int port)
{
    for (size_t i = 0; i < nnodes; ++i)
        if (nodes[i].port == port && strcmp(nodes[i].host, host) == 0)
            return i;
    if (nnodes == TK_DIRECT_MAX_NODES) {
        fprintf(stderr, "redis_direct: more than %d nodes\n", TK_DIRECT_MAX_NODES);
        abort();
    }
    tk_direct_node_t *n = &nodes[nnodes];
    snprintf(n->host, sizeof(n->host), "%s", host);
    n->port = port;
    n->c = NULL;
    return nnodes++;
}

/* The addresses to start from: the cluster's seeds, or the single test Redis. */
static void add_seeds(void)
{
    const char *seeds = tk_test_redis_cluster();
    if (seeds == NULL) {
        node_index("127.0.0.1", tk_test_redis_port());
        return;
    }
    for (const char *p = seeds; *p != '\0';) {
        size_t len = strcspn(p, ",");
        char addr[96];
        snprintf(addr, sizeof(addr), "%.*s", (int)len, p);
        char *colon = strrchr(addr, ':');
        if (colon != NULL) {
            *colon = '\0';
            node_index(addr, atoi(colon + 1));
        }
        p += len + (p[len] == ',');
    }
}

/* a live connection to nodes[i], or NULL */
static redisContext *connection(size_t i)
{
    tk_direct_node_t *n = &nodes[i];
    if (n->c != NULL && n->c->err) {
        redisFree(n->c);
        n->c = NULL;
    }
    if (n->c == NULL) {
        struct timeval tv = {5, 0};
        n->c = redisConnectWithTimeout(n->host, n->port, tv);
        if (n->c != NULL && (n->c->err || redisSetTimeout(n->c, tv) != REDIS_OK)) {
            fprintf(stderr, "redis_direct: %s:%d: %s\n", n->host, n->port, n->c->errstr);
            redisFree(n->c);
            n->c = NULL;
        }
    }
    return n->c;
}

/* One exchange with nodes[i]: ASKING first when asking. NULL on a transport error. */
static redisReply *exchange(size_t i, const char *cmd, size_t len, int asking)
{
    redisContext *c = connection(i);
    if (c == NULL)
        return NULL;
    if (asking)
        redisAppendCommand(c, "ASKING");
    redisAppendFormattedCommand(c, cmd, len);
    void *reply = NULL;
    if (asking && redisGetReply(c, &reply) == REDIS_OK) {
        freeReplyObject(reply);
        reply = NULL;
    }
    if (c->err == 0)
        redisGetReply(c, &reply);
    return reply;
}

/* The node a MOVED/ASK error names ("<slot> <host>:<port>" after the word); an empty host
 * means the one the error came from. */
static size_t redirect_target(const char *args, size_t from)
{
    const char *addr = strchr(args, ' ');
    const char *colon = addr != NULL ? strrchr(addr, ':') : NULL;
    if (colon == NULL)
        return from;
    char host[64];
    if (colon == addr + 1)
        snprintf(host, sizeof(host), "%s", nodes[from].host);
    else
        snprintf(host, sizeof(host), "%.*s", (int)(colon - addr - 1), addr + 1);
    return node_index(host, atoi(colon + 1));
}

redisReply *tk_test_redis_command(const char *fmt, ...)
{
    if (owner != getpid()) { /* a forked child must not share its parent's sockets */
        for (size_t i = 0; i < nnodes; ++i)
            if (nodes[i].c != NULL)
                redisFree(nodes[i].c); /* closes the child's copies only */
        nnodes = 0;
        last = 0;
        owner = getpid();
    }
    if (nnodes == 0)
        add_seeds();

    char *cmd;
    va_list ap;
    va_start(ap, fmt);
    int len = redisvFormatCommand(&cmd, fmt, ap);
    va_end(ap);
    if (len < 0)
        return NULL;

    redisReply *reply = NULL;
    size_t at = last, tried = 0;
    int asking = 0, reconnected = 0;
    for (int hop = 0; hop < TK_DIRECT_MAX_HOPS; ++hop) {
        reply = exchange(at, cmd, (size_t)len, asking);
        if (reply == NULL) {
            /* a dropped connection is reopened once; then the next node is tried */
            if (!reconnected) {
                reconnected = 1;
                continue;
            }
            reconnected = 0;
            if (++tried >= nnodes)
                break;
            at = (at + 1) % nnodes;
            continue;
        }
        int moved = reply->type == REDIS_REPLY_ERROR && strncmp(reply->str, "MOVED ", 6) == 0;
        int ask = reply->type == REDIS_REPLY_ERROR && strncmp(reply->str, "ASK ", 4) == 0;
        int again = reply->type == REDIS_REPLY_ERROR && strncmp(reply->str, "TRYAGAIN", 8) == 0;
        if (!moved && !ask && !again) {
            if (!asking) /* an ASK target serves this one key for the moment only */
                last = at;
            break;
        }
        if (again)
            usleep(100 * 1000);
        else
            at = redirect_target(strchr(reply->str, ' ') + 1, at);
        asking = ask || (again && asking); /* TRYAGAIN at an ASK target: ASKING again */
        freeReplyObject(reply);
        reply = NULL;
    }
    redisFreeCommand(cmd);
    return reply;
}
