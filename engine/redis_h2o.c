/*
 * The adapter's five hooks. hiredis owns the file descriptor; on cleanup we close the
 * h2o socket (which closes the descriptor) and tell hiredis it is gone, so it is
 * closed exactly once.
 */
#include "engine/redis_h2o.h"

typedef struct st_tk_redis_h2o_events_t {
    redisAsyncContext *ac;
    h2o_socket_t *sock;
} tk_redis_h2o_events_t;

static void on_readable(h2o_socket_t *sock, const char *err)
{
    tk_redis_h2o_events_t *ev = sock->data;
    redisAsyncHandleRead(ev->ac);
}

static void on_writable(h2o_socket_t *sock, const char *err)
{
    tk_redis_h2o_events_t *ev = sock->data;
    redisAsyncHandleWrite(ev->ac);
}

static void add_read(void *privdata)
{
    tk_redis_h2o_events_t *ev = privdata;
    h2o_socket_read_start(ev->sock, on_readable);
}

static void del_read(void *privdata)
{
    tk_redis_h2o_events_t *ev = privdata;
    h2o_socket_read_stop(ev->sock);
}

static void add_write(void *privdata)
{
    tk_redis_h2o_events_t *ev = privdata;
    if (!h2o_socket_is_writing(ev->sock))
        h2o_socket_notify_write(ev->sock, on_writable);
}

static void del_write(void *privdata)
{
    /* h2o's write notification is one-shot: nothing to undo */
}

static void cleanup(void *privdata)
{
    tk_redis_h2o_events_t *ev = privdata;
    h2o_socket_close(ev->sock);
    ev->ac->c.fd = -1; /* h2o closed it */
    ev->ac->ev.data = NULL;
    free(ev);
}

int tk_redis_h2o_attach(redisAsyncContext *ac, h2o_loop_t *loop)
{
    if (ac->ev.data != NULL)
        return REDIS_ERR;
    tk_redis_h2o_events_t *ev = h2o_mem_alloc(sizeof(*ev));
    ev->ac = ac;
    ev->sock = h2o_evloop_socket_create(loop, ac->c.fd, H2O_SOCKET_FLAG_DONT_READ);
    ev->sock->data = ev;
    ac->ev.data = ev;
    ac->ev.addRead = add_read;
    ac->ev.delRead = del_read;
    ac->ev.addWrite = add_write;
    ac->ev.delWrite = del_write;
    ac->ev.cleanup = cleanup;
    return REDIS_OK;
}
