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
    h2o_multithread_receiver_t job_receiver;
    h2o_socket_t *listener;
    h2o_multithread_receiver_t control_receiver; /* "stop accepting", from the main thread */
    h2o_multithread_message_t stop_message;
    h2o_accept_ctx_t accept_ctx;
    int listen_fd;
    int ready; /* set by the loop thread once it can receive messages */
    pthread_t tid;
} tk_thread_t;

static inline tk_thread_t *tk_thread_of(h2o_req_t *req)
{
    return H2O_STRUCT_FROM_MEMBER(tk_thread_t, ctx, req->conn->ctx);
}

/* set once SIGTERM or SIGINT arrived: new writes are refused while in-flight work finishes */
extern int tk_server_draining;

/* Binds the listening sockets; on failure prints a one-line reason and returns 1. */
int tk_server_bind(const tk_config_t *config);
/* Starts the loop threads on the bound sockets and blocks until SIGINT or SIGTERM, then
 * drains. Returns the process exit status. */
int tk_server_run(void);

#endif
