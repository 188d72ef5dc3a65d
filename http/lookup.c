/*
 * The PostgreSQL fallback lookups as worker jobs.
 */
#include "http/lookup.h"
#include "engine/log.h"

#include <string.h>

static int read_reservation(PGconn *pg, void *arg)
{
    tk_lookup_t *lookup = arg;
    free(lookup->reservation.tickets);
    return tk_persist_read_reservation(pg, lookup->id, &lookup->reservation);
}

static int read_transaction(PGconn *pg, void *arg)
{
    tk_lookup_t *lookup = arg;
    return tk_persist_read_transaction(pg, lookup->id, lookup->txn_status, sizeof(lookup->txn_status), lookup->txn_error,
                                       sizeof(lookup->txn_error));
}

static void run_reservation(tk_job_t *job, tk_worker_conn_t *conn)
{
    char err[256];
    tk_lookup_t *lookup = (tk_lookup_t *)job;
    lookup->found = tk_worker_run_pg(conn, read_reservation, lookup, err, sizeof(err));
}

static void run_transaction(tk_job_t *job, tk_worker_conn_t *conn)
{
    char err[256];
    tk_lookup_t *lookup = (tk_lookup_t *)job;
    lookup->found = tk_worker_run_pg(conn, read_transaction, lookup, err, sizeof(err));
}

static void on_done(tk_job_t *job)
{
    tk_lookup_t *lookup = (tk_lookup_t *)job;
    h2o_req_t *req = tk_async_req(lookup->op);
    if (req != NULL)
        lookup->cb(lookup, req, lookup->found);
    tk_async_finish(lookup->op);
    free(lookup->reservation.tickets);
    free(lookup);
}

static void start(h2o_req_t *req, tk_thread_t *thread, const char *id, tk_lookup_cb cb, void (*run)(tk_job_t *, tk_worker_conn_t *))
{
    tk_lookup_t *lookup = h2o_mem_alloc(sizeof(*lookup));
    memset(lookup, 0, sizeof(*lookup));
    lookup->super = (tk_job_t){.origin = &thread->job_receiver, .run = run, .done = on_done};
    lookup->thread = thread;
    lookup->cb = cb;
    memcpy(lookup->id, id, TK_UUID_LEN);
    lookup->op = tk_async_start(req, 0);
    if (tk_workers_submit(&lookup->super) != 0) {
        tk_async_finish(lookup->op);
        free(lookup);
        tk_respond_unavailable(req, "Too many requests are waiting for the database; try again");
    }
}

void tk_lookup_reservation(h2o_req_t *req, tk_thread_t *thread, const char *rid, tk_lookup_cb cb)
{
    start(req, thread, rid, cb, run_reservation);
}

void tk_lookup_transaction(h2o_req_t *req, tk_thread_t *thread, const char *txn, tk_lookup_cb cb)
{
    start(req, thread, txn, cb, run_transaction);
}
