/*
 * Connection state machine: DOWN → CONNECTING → (PING answers PONG) → READY →
 * (error) → DOWN, with the reconnect delay doubling from 50 ms to 3.2 s and reset on
 * success. A Redis that accepts connections while still loading its AOF answers PING
 * with LOADING: the connection is dropped and retried, so no command is sent before
 * Redis can run it. Per-command
 * bookkeeping lives in a free list owned by the connection, so sending a command does
 * not allocate once the list is warm.
 */
#include "engine/redis_conn.h"
#include "engine/log.h"
#include "engine/redis_h2o.h"
#include "engine/timefmt.h"

#include <hiredis/async.h>
#include <string.h>

#define BACKOFF_STEPS 7 /* 50 ms … 3.2 s */
#define STALL_LIMIT_MS 3000

typedef enum en_tk_redis_state_t { TK_REDIS_DOWN, TK_REDIS_CONNECTING, TK_REDIS_READY } tk_redis_state_t;

typedef struct st_tk_redis_pending_t {
    tk_redis_t *conn;
    tk_redis_cb cb;
    void *data;
    struct st_tk_redis_pending_t *next_free;
} tk_redis_pending_t;

struct st_tk_redis_t {
    h2o_loop_t *loop;
    tk_redis_url_t url;
    redisAsyncContext *ac;
    tk_redis_state_t state;
    size_t in_flight;
    uint64_t round_trips;
    int64_t last_progress_ms;
    int backoff_step;
    tk_redis_pending_t *free_list;
    h2o_timeout_t backoff[BACKOFF_STEPS];
    h2o_timeout_entry_t reconnect_entry;
    h2o_timeout_t watchdog;
    h2o_timeout_entry_t watchdog_entry;
};

static void start_connect(tk_redis_t *r);

static void schedule_reconnect(tk_redis_t *r)
{
    r->ac = NULL;
    r->state = TK_REDIS_DOWN;
    if (h2o_timeout_is_linked(&r->reconnect_entry))
        return;
    h2o_timeout_link(r->loop, &r->backoff[r->backoff_step], &r->reconnect_entry);
    if (r->backoff_step < BACKOFF_STEPS - 1)
        ++r->backoff_step;
}

static void on_reconnect_timer(h2o_timeout_entry_t *entry)
{
    tk_redis_t *r = H2O_STRUCT_FROM_MEMBER(tk_redis_t, reconnect_entry, entry);
    start_connect(r);
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    tk_redis_t *r = ac->data;
    if (status != REDIS_OK) {
        tk_log_warn("redis", "cannot connect to %s:%u: %s", r->url.host, r->url.port, ac->errstr);
        schedule_reconnect(r);
        return;
    }
    /* READY once PING answers PONG (see on_ready_ping) */
}

static void on_ready_ping(redisAsyncContext *ac, void *reply, void *privdata)
{
    tk_redis_t *r = ac->data;
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
    r->state = TK_REDIS_READY;
    r->backoff_step = 0;
    r->last_progress_ms = tk_time_mono_ms();
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    tk_redis_t *r = ac->data;
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

static void start_connect(tk_redis_t *r)
{
    redisAsyncContext *ac = redisAsyncConnect(r->url.host, r->url.port);
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
    r->state = TK_REDIS_CONNECTING;
    /* queued now, sent first once connected */
    if (r->url.password[0] != '\0')
        redisAsyncCommand(ac, on_setup_reply, NULL, "AUTH %s", r->url.password);
    if (r->url.db != 0)
        redisAsyncCommand(ac, on_setup_reply, NULL, "SELECT %d", r->url.db);
    redisAsyncCommand(ac, on_ready_ping, NULL, "PING");
}

/* Drops a connection whose oldest command has waited too long, so callers get an
 * answer (503) instead of hanging on a Redis that stopped responding. */
static void on_watchdog(h2o_timeout_entry_t *entry)
{
    tk_redis_t *r = H2O_STRUCT_FROM_MEMBER(tk_redis_t, watchdog_entry, entry);
    if (r->state == TK_REDIS_READY && tk_redis_in_flight(r) != 0 && tk_time_mono_ms() - r->last_progress_ms > STALL_LIMIT_MS) {
        tk_log_error("redis", "no reply for %d ms with %zu commands in flight; reconnecting", STALL_LIMIT_MS, r->in_flight);
        redisAsyncDisconnect(r->ac);
    }
    h2o_timeout_link(r->loop, &r->watchdog, &r->watchdog_entry);
}

tk_redis_t *tk_redis_create(h2o_loop_t *loop, const tk_config_t *config)
{
    tk_redis_t *r = h2o_mem_alloc(sizeof(*r));
    *r = (tk_redis_t){.loop = loop, .url = config->redis};
    for (int i = 0; i < BACKOFF_STEPS; ++i)
        h2o_timeout_init(loop, &r->backoff[i], 50u << i);
    r->reconnect_entry.cb = on_reconnect_timer;
    h2o_timeout_init(loop, &r->watchdog, 1000);
    r->watchdog_entry.cb = on_watchdog;
    h2o_timeout_link(loop, &r->watchdog, &r->watchdog_entry);
    start_connect(r);
    return r;
}

static void on_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    tk_redis_pending_t *p = privdata;
    tk_redis_t *r = p->conn;
    __atomic_fetch_sub(&r->in_flight, 1, __ATOMIC_RELAXED);
    r->last_progress_ms = tk_time_mono_ms();
    p->cb(reply, p->data);
    p->next_free = r->free_list;
    r->free_list = p;
}

int tk_redis_command(tk_redis_t *r, tk_redis_cb cb, void *data, int argc, const char **argv, const size_t *argvlen)
{
    if (r->state != TK_REDIS_READY)
        return -1;
    tk_redis_pending_t *p = r->free_list;
    if (p != NULL)
        r->free_list = p->next_free;
    else
        p = h2o_mem_alloc(sizeof(*p));
    *p = (tk_redis_pending_t){.conn = r, .cb = cb, .data = data};
    if (redisAsyncCommandArgv(r->ac, on_reply, p, argc, argv, argvlen) != REDIS_OK) {
        p->next_free = r->free_list;
        r->free_list = p;
        return -1;
    }
    if (__atomic_fetch_add(&r->in_flight, 1, __ATOMIC_RELAXED) == 0)
        r->last_progress_ms = tk_time_mono_ms();
    __atomic_fetch_add(&r->round_trips, 1, __ATOMIC_RELAXED);
    return 0;
}

/* both are read by the metrics scrape from another thread */
size_t tk_redis_in_flight(const tk_redis_t *r)
{
    return __atomic_load_n(&r->in_flight, __ATOMIC_RELAXED);
}

uint64_t tk_redis_round_trips(const tk_redis_t *r)
{
    return __atomic_load_n(&r->round_trips, __ATOMIC_RELAXED);
}

int tk_redis_command_durable(tk_redis_t *r, tk_redis_cb cb, void *data, int argc, const char **argv, const size_t *argvlen)
{
    return tk_redis_command(r, cb, data, argc, argv, argvlen);
}

int tk_redis_ready(const tk_redis_t *r)
{
    return r->state == TK_REDIS_READY;
}

uint64_t tk_redis_redirects(const tk_redis_t *r)
{
    return 0;
}

uint64_t tk_redis_map_refreshes(const tk_redis_t *r)
{
    return 0;
}
