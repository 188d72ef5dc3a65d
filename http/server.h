/*
 * The HTTP server: one h2o event loop per TICKETD_THREADS, each with its own listening
 * socket (SO_REUSEPORT, so the kernel spreads connections), its own pipelined Redis
 * connection and its own view of the catalog. Nothing on a loop thread blocks.
 */
#ifndef TK_SERVER_H
#define TK_SERVER_H

#include "engine/config.h"
#include "engine/engine.h"
#include "engine/metrics.h"

#include <h2o.h>
#include <h2o/multithread.h>
#include <pthread.h>

typedef struct st_tk_thread_t {
    h2o_context_t ctx; /* first: requests find their thread through req->conn->ctx */
    tk_metrics_t metrics;
    size_t index;
    const tk_config_t *config;
    tk_engine_t engine; /* Redis, catalog, sold-out table, gateway, sweeper of this loop */
    h2o_multithread_queue_t *queue;
    h2o_socket_t *listener;
    h2o_multithread_receiver_t control_receiver; /* "stop accepting", from the main thread */
    h2o_multithread_message_t stop_message;
    h2o_accept_ctx_t accept_ctx;
    int listen_fd;
    int reserve_fd;                      /* /dev/null, given up for a moment to accept and close when descriptors run out */
    int ready;                           /* set by the loop thread once it can receive messages */
    size_t connections, max_connections; /* this loop's open connections and its share of the cap */
    int accept_paused;                   /* at the cap: the listener is not read until a connection closes */
    int64_t refusals_logged_ms;          /* rate limit of the "refused" log line */
    uint64_t refusals_unlogged;
    h2o_timeout_t accept_retry_timeout; /* waiting for the reserve descriptor to be free again */
    h2o_timeout_entry_t accept_retry_entry;
    size_t writes_in_flight; /* admitted writes whose requests h2o has not disposed of yet */
    pthread_t tid;
} tk_thread_t;

static inline tk_thread_t *tk_thread_of(h2o_req_t *req)
{
    return H2O_STRUCT_FROM_MEMBER(tk_thread_t, ctx, req->conn->ctx);
}

/* set once SIGTERM or SIGINT arrived: new writes are refused while in-flight work finishes */
extern int tk_server_draining;

/* Binds the listening sockets, answering requests with on_req; slot_of names a request's
 * route for the request counters. On failure prints a one-line reason and returns 1. */
int tk_server_bind(const tk_config_t *config, int (*on_req)(h2o_handler_t *self, h2o_req_t *req),
                   size_t (*slot_of)(h2o_req_t *req));
/* The socket under an HTTP/1 request (h2o 2.2 keeps the request's raw head at the start
 * of its input buffer until the response is sent), or NULL for HTTP/2. */
h2o_socket_t *tk_server_http1_socket(h2o_req_t *req);
/* Starts the loop threads on the bound sockets and blocks until SIGINT or SIGTERM, then
 * drains. Returns the process exit status. */
int tk_server_run(void);

#endif
