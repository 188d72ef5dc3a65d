/*
 * Worker threads for the blocking work that must never run on an event loop: admin
 * writes to PostgreSQL, reads that fall back to PostgreSQL. A loop thread submits a job;
 * a worker runs it with its own PostgreSQL connection and a connection to every Redis
 * master (engine/redis_nodes.h); the job's completion is posted back to the submitting
 * loop through h2o's multithread queue. The queue is bounded: when it is full, submit
 * fails and the caller answers 503.
 */
#ifndef TK_WORKER_H
#define TK_WORKER_H

#include "engine/config.h"
#include "engine/redis_nodes.h"

#include <h2o.h>
#include <h2o/multithread.h>
#include <hiredis/hiredis.h>
#include <libpq-fe.h>

typedef struct st_tk_worker_conn_t {
    const tk_config_t *config;
    PGconn *pg;
    tk_redis_nodes_t *redis; /* every Redis master (one on a single Redis) */
} tk_worker_conn_t;

typedef struct st_tk_job_t tk_job_t;
struct st_tk_job_t {
    h2o_multithread_message_t super;
    h2o_multithread_receiver_t *origin;                 /* where done runs */
    void (*run)(tk_job_t *job, tk_worker_conn_t *conn); /* on a worker thread */
    void (*done)(tk_job_t *job);                        /* back on the origin loop */
    tk_job_t *next;
};

int tk_workers_start(const tk_config_t *config, size_t nthreads, size_t queue_limit);
void tk_workers_stop(void);
/* 0 when queued; -1 when the queue is full or the pool is stopped (done is not called) */
int tk_workers_submit(tk_job_t *job);
/* whether no job is queued, running, or done but not yet answered on its loop */
int tk_workers_idle(void);
/* the receiver callback each loop registers for completions */
void tk_workers_on_complete(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages);
/* (Re)connects PostgreSQL when missing or broken and opens the Redis masters' map when
 * missing: 0 when both are there (a master may still be away). The writer stops here: its
 * reader reconnects masters itself and skips the shards of one that is away. */
int tk_worker_conn_open(tk_worker_conn_t *conn, char *err, size_t errsize);
/* tk_worker_conn_open, then reconnects masters that went away (one that stays away fails
 * only the commands sent to it): 0 when the connections are usable */
int tk_worker_conn_ensure(tk_worker_conn_t *conn, char *err, size_t errsize);
void tk_worker_conn_dispose(tk_worker_conn_t *conn);
/* Runs fn on a usable connection. A connection that turned out to be dead (the server
 * restarted since it was last used) is remade and fn run once more, so the first job
 * after a database restart does not fail. fn must be safe to repeat after a failure
 * (a rolled-back transaction, a read). Returns fn's result, or -1. */
int tk_worker_run_pg(tk_worker_conn_t *conn, int (*fn)(PGconn *pg, void *arg), void *arg, char *err, size_t errsize);

#endif
