/*
 * Link state machine: DOWN → [RESOLVING →] CONNECTING → (PING answers PONG) → READY →
 * (error) → DOWN, with the reconnect delay doubling from 50 ms to 3.2 s and reset on
 * success; from any state STOPPED (no connection, no timer) until started again, maybe
 * at another address. A host given by name is looked up again before every connection
 * attempt (a container that comes back may have a new address), off the loop thread: a
 * short-lived thread runs getaddrinfo and the loop polls for its end, so a slow or
 * unreachable DNS server never stalls the loop's other requests. (Not getaddrinfo_a: its
 * threads are glibc's own, which ThreadSanitizer cannot follow.) A Redis that accepts
 * connections while still loading its AOF answers PING with LOADING: the connection is
 * dropped and retried, so no command is sent before Redis can run it. Per-command
 * bookkeeping lives in a free list owned by the link, so sending a command does not
 * allocate once the list is warm.
 */
#include "engine/redis_link.h"
#include "engine/log.h"
#include "engine/redis_h2o.h"
#include "engine/timefmt.h"

#include <arpa/inet.h>
#include <hiredis/async.h>
#include <netdb.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define BACKOFF_STEPS 7 /* 50 ms … 3.2 s */
#define STALL_LIMIT_MS 3000
#define RESOLVE_POLL_MS 5

typedef enum en_tk_redis_link_state_t {
    TK_LINK_STOPPED,
    TK_LINK_DOWN,
    TK_LINK_RESOLVING,
    TK_LINK_CONNECTING,
    TK_LINK_READY
} tk_redis_link_state_t;

/* a lookup's progress; whichever of the thread and the loop comes second frees it */
enum { LOOKUP_RUNNING, LOOKUP_DONE, LOOKUP_ABANDONED };

/* One lookup of a host name, shared by the link's loop and the thread doing it. The loop
 * reads the result once the thread set LOOKUP_DONE; a link stopped meanwhile abandons it,
 * and the thread frees it when done. */
typedef struct st_tk_redis_lookup_t {
    char host[sizeof(((tk_redis_url_t *)NULL)->host)];
    char addr[INET6_ADDRSTRLEN]; /* numeric, "" when the name did not resolve */
    int rc;                      /* getaddrinfo's */
    int progress;                /* atomic: LOOKUP_* */
} tk_redis_lookup_t;

typedef struct st_tk_redis_link_pending_t {
    tk_redis_link_t *conn;
    tk_redis_cb cb;
    void *data;
    struct st_tk_redis_link_pending_t *next_free;
} tk_redis_link_pending_t;

struct st_tk_redis_link_t {
    h2o_loop_t *loop;
    tk_redis_url_t url;
    redisAsyncContext *ac;
    tk_redis_link_state_t state;
    size_t in_flight;
    int64_t last_progress_ms;
    int backoff_step;
    tk_redis_link_pending_t *free_list;
    h2o_timeout_t backoff[BACKOFF_STEPS];
    h2o_timeout_entry_t reconnect_entry;
    h2o_timeout_t watchdog;
    h2o_timeout_entry_t watchdog_entry;
    struct st_tk_redis_lookup_t *lookup; /* of url.host by name, polled on resolve_poll */
    h2o_timeout_t resolve_poll;
    h2o_timeout_entry_t resolve_entry;
    void (*on_ready)(void *owner);
    void *owner;
};

static void start_connect(tk_redis_link_t *r);

static void schedule_reconnect(tk_redis_link_t *r)
{
    r->ac = NULL;
    r->state = TK_LINK_DOWN;
    if (h2o_timeout_is_linked(&r->reconnect_entry))
        return;
    h2o_timeout_link(r->loop, &r->backoff[r->backoff_step], &r->reconnect_entry);
    if (r->backoff_step < BACKOFF_STEPS - 1)
        ++r->backoff_step;
}

static void on_reconnect_timer(h2o_timeout_entry_t *entry)
{
    tk_redis_link_t *r = H2O_STRUCT_FROM_MEMBER(tk_redis_link_t, reconnect_entry, entry);
    start_connect(r);
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    tk_redis_link_t *r = ac->data;
    if (status != REDIS_OK) {
        tk_log_warn("redis", "cannot connect to %s:%u: %s", r->url.host, r->url.port, ac->errstr);
        schedule_reconnect(r);
        return;
    }
    /* READY once PING answers PONG (see on_ready_ping) */
}

static void on_ready_ping(redisAsyncContext *ac, void *reply, void *privdata)
{
    tk_redis_link_t *r = ac->data;
    redisReply *rep = reply;
    if (rep == NULL)
        return; /* the connection failed; on_disconnect reconnects */
    if (rep->type != REDIS_REPLY_STATUS || strcmp(rep->str, "PONG") != 0) {
        tk_log_warn("redis", "%s:%u is not ready (%s); retrying", r->url.host, r->url.port,
                    rep->type == REDIS_REPLY_ERROR ? rep->str : "unexpected reply");
        redisAsyncDisconnect(ac);
        return;
    }
    if (r->backoff_step != 0)
        tk_log_info("redis", "connected to %s:%u", r->url.host, r->url.port);
    r->state = TK_LINK_READY;
    r->backoff_step = 0;
    r->last_progress_ms = tk_time_mono_ms();
    if (r->on_ready != NULL)
        r->on_ready(r->owner);
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    tk_redis_link_t *r = ac->data;
    tk_log_warn("redis", "connection to %s:%u lost: %s", r->url.host, r->url.port, status == REDIS_OK ? "closed" : ac->errstr);
    schedule_reconnect(r);
}

static void on_setup_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    redisReply *rep = reply;
    if (rep != NULL && rep->type == REDIS_REPLY_ERROR) {
        tk_log_error("redis", "connection set-up refused: %s", rep->str);
        redisAsyncDisconnect(ac);
    }
}

/* Connects to addr (numeric), which is url.host or what it resolved to. */
static void connect_to(tk_redis_link_t *r, const char *addr)
{
    redisAsyncContext *ac = redisAsyncConnect(addr, r->url.port);
    if (ac == NULL || ac->err) {
        tk_log_warn("redis", "cannot connect to %s:%u: %s", r->url.host, r->url.port, ac != NULL ? ac->errstr : "out of memory");
        if (ac != NULL)
            redisAsyncFree(ac);
        schedule_reconnect(r);
        return;
    }
    ac->data = r;
    tk_redis_h2o_attach(ac, r->loop);
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    r->ac = ac;
    r->state = TK_LINK_CONNECTING;
    r->last_progress_ms = tk_time_mono_ms(); /* the watchdog gives the connection as long as a reply */
    /* queued now, sent first once connected */
    if (r->url.password[0] != '\0')
        redisAsyncCommand(ac, on_setup_reply, NULL, "AUTH %s", r->url.password);
    if (r->url.db != 0)
        redisAsyncCommand(ac, on_setup_reply, NULL, "SELECT %d", r->url.db);
    redisAsyncCommand(ac, on_ready_ping, NULL, "PING");
}

static int is_numeric_host(const char *host)
{
    unsigned char buf[sizeof(struct in6_addr)];
    return inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
}

/* On its own thread: the host's first IPv4 address, else its first IPv6 one (the order
 * hiredis tries them in when given the name). */
static void *run_lookup(void *arg)
{
    tk_redis_lookup_t *lookup = arg;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *found = NULL;
    lookup->rc = getaddrinfo(lookup->host, NULL, &hints, &found);
    const struct addrinfo *pick = NULL;
    for (const struct addrinfo *ai = found; ai != NULL; ai = ai->ai_next)
        if (pick == NULL || (pick->ai_family != AF_INET && ai->ai_family == AF_INET))
            pick = ai;
    if (pick != NULL) {
        const void *in = pick->ai_family == AF_INET6 ? (const void *)&((struct sockaddr_in6 *)pick->ai_addr)->sin6_addr
                                                     : (const void *)&((struct sockaddr_in *)pick->ai_addr)->sin_addr;
        inet_ntop(pick->ai_family, in, lookup->addr, sizeof(lookup->addr));
    }
    if (found != NULL)
        freeaddrinfo(found);
    if (__atomic_exchange_n(&lookup->progress, LOOKUP_DONE, __ATOMIC_ACQ_REL) == LOOKUP_ABANDONED)
        free(lookup);
    return NULL;
}

static void on_resolve_poll(h2o_timeout_entry_t *entry)
{
    tk_redis_link_t *r = H2O_STRUCT_FROM_MEMBER(tk_redis_link_t, resolve_entry, entry);
    tk_redis_lookup_t *lookup = r->lookup;
    if (__atomic_load_n(&lookup->progress, __ATOMIC_ACQUIRE) != LOOKUP_DONE) {
        h2o_timeout_link(r->loop, &r->resolve_poll, &r->resolve_entry);
        return;
    }
    r->lookup = NULL;
    if (lookup->addr[0] == '\0') {
        tk_log_warn("redis", "cannot resolve %s: %s", r->url.host, lookup->rc == 0 ? "no address" : gai_strerror(lookup->rc));
        schedule_reconnect(r);
    } else {
        connect_to(r, lookup->addr);
    }
    free(lookup);
}

/* Starts a connection attempt: at once to a numeric address, after a lookup to a name. */
static void start_connect(tk_redis_link_t *r)
{
    if (is_numeric_host(r->url.host)) {
        connect_to(r, r->url.host);
        return;
    }
    tk_redis_lookup_t *lookup = h2o_mem_alloc(sizeof(*lookup));
    *lookup = (tk_redis_lookup_t){0};
    memcpy(lookup->host, r->url.host, sizeof(lookup->host));
    pthread_attr_t attr;
    pthread_t thread;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    int rc = pthread_create(&thread, &attr, run_lookup, lookup);
    pthread_attr_destroy(&attr);
    if (rc != 0) {
        tk_log_warn("redis", "cannot resolve %s: no thread for the lookup (%s)", r->url.host, strerror(rc));
        free(lookup);
        schedule_reconnect(r);
        return;
    }
    r->lookup = lookup;
    r->state = TK_LINK_RESOLVING;
    h2o_timeout_link(r->loop, &r->resolve_poll, &r->resolve_entry);
}

/* Drops a connection whose oldest command has waited too long, or that has not become
 * ready in that time (a stopped server still accepts connections), so callers get an
 * answer (503) instead of hanging. redisAsyncFree, not redisAsyncDisconnect: the latter
 * would wait for the very replies that are not coming; the former fails them now (their
 * callbacks get NULL) and reports the disconnection, which schedules the reconnect. */
static void drop_connection(tk_redis_link_t *r)
{
    redisAsyncContext *ac = r->ac;
    redisAsyncFree(ac);
    if (r->ac == ac) /* never connected: hiredis reported no disconnection */
        schedule_reconnect(r);
}

static void on_watchdog(h2o_timeout_entry_t *entry)
{
    tk_redis_link_t *r = H2O_STRUCT_FROM_MEMBER(tk_redis_link_t, watchdog_entry, entry);
    int64_t waited = tk_time_mono_ms() - r->last_progress_ms;
    h2o_timeout_link(r->loop, &r->watchdog, &r->watchdog_entry);
    if (r->state == TK_LINK_READY && tk_redis_link_in_flight(r) != 0 && waited > STALL_LIMIT_MS) {
        tk_log_error("redis", "%s:%u: no reply for %d ms with %zu commands in flight; reconnecting", r->url.host, r->url.port,
                     STALL_LIMIT_MS, tk_redis_link_in_flight(r));
        drop_connection(r);
    } else if (r->state == TK_LINK_CONNECTING && waited > STALL_LIMIT_MS) {
        tk_log_warn("redis", "%s:%u: not ready after %d ms; reconnecting", r->url.host, r->url.port, STALL_LIMIT_MS);
        drop_connection(r);
    }
}

tk_redis_link_t *tk_redis_link_create(h2o_loop_t *loop, const tk_redis_url_t *url, void (*on_ready)(void *owner), void *owner)
{
    tk_redis_link_t *r = h2o_mem_alloc(sizeof(*r));
    *r = (tk_redis_link_t){.loop = loop, .on_ready = on_ready, .owner = owner};
    for (int i = 0; i < BACKOFF_STEPS; ++i)
        h2o_timeout_init(loop, &r->backoff[i], 50u << i);
    r->reconnect_entry.cb = on_reconnect_timer;
    h2o_timeout_init(loop, &r->watchdog, 1000);
    r->watchdog_entry.cb = on_watchdog;
    h2o_timeout_init(loop, &r->resolve_poll, RESOLVE_POLL_MS);
    r->resolve_entry.cb = on_resolve_poll;
    tk_redis_link_start(r, url);
    return r;
}

void tk_redis_link_start(tk_redis_link_t *r, const tk_redis_url_t *url)
{
    r->url = *url;
    r->backoff_step = 0;
    h2o_timeout_link(r->loop, &r->watchdog, &r->watchdog_entry);
    start_connect(r);
}

/* The connection is freed with its disconnect callback unset, so that nothing schedules a
 * reconnection; commands still in flight get NULL as when the connection is lost. */
void tk_redis_link_stop(tk_redis_link_t *r)
{
    redisAsyncContext *ac = r->ac;
    r->ac = NULL;
    r->state = TK_LINK_STOPPED;
    if (h2o_timeout_is_linked(&r->reconnect_entry))
        h2o_timeout_unlink(&r->reconnect_entry);
    if (h2o_timeout_is_linked(&r->watchdog_entry))
        h2o_timeout_unlink(&r->watchdog_entry);
    if (h2o_timeout_is_linked(&r->resolve_entry))
        h2o_timeout_unlink(&r->resolve_entry);
    if (r->lookup != NULL && __atomic_exchange_n(&r->lookup->progress, LOOKUP_ABANDONED, __ATOMIC_ACQ_REL) == LOOKUP_DONE)
        free(r->lookup); /* else the thread frees it when done */
    r->lookup = NULL;
    if (ac != NULL) {
        ac->onDisconnect = NULL;
        redisAsyncFree(ac);
    }
}

int tk_redis_link_is_ready(const tk_redis_link_t *r)
{
    return r->state == TK_LINK_READY;
}

const tk_redis_url_t *tk_redis_link_url(const tk_redis_link_t *r)
{
    return &r->url;
}

static void on_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    tk_redis_link_pending_t *p = privdata;
    tk_redis_link_t *r = p->conn;
    __atomic_fetch_sub(&r->in_flight, 1, __ATOMIC_RELAXED);
    r->last_progress_ms = tk_time_mono_ms();
    p->cb(reply, p->data);
    p->next_free = r->free_list;
    r->free_list = p;
}

static tk_redis_link_pending_t *pending_alloc(tk_redis_link_t *r, tk_redis_cb cb, void *data)
{
    tk_redis_link_pending_t *p = r->free_list;
    if (p != NULL)
        r->free_list = p->next_free;
    else
        p = h2o_mem_alloc(sizeof(*p));
    *p = (tk_redis_link_pending_t){.conn = r, .cb = cb, .data = data};
    return p;
}

/* after redisAsync*Command: the command is queued (rc REDIS_OK) or p goes back to the list */
static int pending_sent(tk_redis_link_t *r, tk_redis_link_pending_t *p, int rc)
{
    if (rc != REDIS_OK) {
        p->next_free = r->free_list;
        r->free_list = p;
        return -1;
    }
    if (__atomic_fetch_add(&r->in_flight, 1, __ATOMIC_RELAXED) == 0)
        r->last_progress_ms = tk_time_mono_ms();
    return 0;
}

int tk_redis_link_send(tk_redis_link_t *r, tk_redis_cb cb, void *data, int argc, const char **argv, const size_t *argvlen)
{
    if (r->state != TK_LINK_READY)
        return -1;
    tk_redis_link_pending_t *p = pending_alloc(r, cb, data);
    return pending_sent(r, p, redisAsyncCommandArgv(r->ac, on_reply, p, argc, argv, argvlen));
}

int tk_redis_link_send_formatted(tk_redis_link_t *r, tk_redis_cb cb, void *data, const char *cmd, size_t len)
{
    if (r->state != TK_LINK_READY)
        return -1;
    tk_redis_link_pending_t *p = pending_alloc(r, cb, data);
    return pending_sent(r, p, redisAsyncFormattedCommand(r->ac, on_reply, p, cmd, len));
}

/* read by the metrics scrape from another thread */
size_t tk_redis_link_in_flight(const tk_redis_link_t *r)
{
    return __atomic_load_n(&r->in_flight, __ATOMIC_RELAXED);
}
