/*
 * PostgreSQL reads as worker jobs (they replace http/lookup.c). The job is on the heap
 * (it crosses threads); the worker fills it with what engine/persist.c read, and the loop
 * turns that into the shop's typed views before calling back.
 */
#include "engine/shop_store.h"
#include "engine/engine.h"
#include "engine/persist.h"
#include "engine/worker.h"

#include <errno.h>
#include <string.h>

typedef struct st_tk_store_job_t {
    tk_job_t super;
    tk_shop_stored_cb cb;
    void *data;
    char id[TK_UUID_LEN + 1];
    int found;
    tk_stored_reservation_t reservation;
    char txn_status[16], txn_error[256];
} tk_store_job_t;

static int read_reservation(PGconn *pg, void *arg)
{
    tk_store_job_t *job = arg;
    free(job->reservation.tickets); /* from an attempt on a connection that died */
    job->reservation.tickets = NULL;
    return tk_persist_read_reservation(pg, job->id, &job->reservation);
}

static int read_transaction(PGconn *pg, void *arg)
{
    tk_store_job_t *job = arg;
    return tk_persist_read_transaction(pg, job->id, job->txn_status, sizeof(job->txn_status), job->txn_error,
                                       sizeof(job->txn_error));
}

static void run_reservation(tk_job_t *super, tk_worker_conn_t *conn)
{
    char err[256];
    tk_store_job_t *job = (tk_store_job_t *)super;
    job->found = tk_worker_run_pg(conn, read_reservation, job, err, sizeof(err));
}

static void run_transaction(tk_job_t *super, tk_worker_conn_t *conn)
{
    char err[256];
    tk_store_job_t *job = (tk_store_job_t *)super;
    job->found = tk_worker_run_pg(conn, read_transaction, job, err, sizeof(err));
}

/* the row read from PostgreSQL as the shop's view, tickets in pool; -1 on an unknown status */
static int view_of(const tk_stored_reservation_t *row, h2o_mem_pool_t *pool, tk_reservation_view_t *view)
{
    if (tk_res_status_parse(row->status, strlen(row->status), &view->status) != 0)
        return -1;
    memcpy(view->event, row->event, sizeof(view->event));
    view->created_ms = row->created_ms;
    view->until_ms = row->until_ms;
    view->ntickets = row->ntickets;
    tk_ticket_view_t *tickets = h2o_mem_alloc_pool(pool, sizeof(*tickets) * (row->ntickets + 1));
    for (size_t i = 0; i < row->ntickets; ++i)
        tickets[i] = (tk_ticket_view_t){.id = h2o_iovec_init(row->tickets[i].id, strlen(row->tickets[i].id)),
                                        .type = h2o_iovec_init(row->tickets[i].type, strlen(row->tickets[i].type)),
                                        .price_minor = row->tickets[i].price_minor};
    view->tickets = tickets;
    return 0;
}

static void on_done(tk_job_t *super)
{
    tk_store_job_t *job = (tk_store_job_t *)super;
    tk_shop_stored_t stored = {.found = job->found};
    h2o_mem_pool_t pool;
    h2o_mem_init_pool(&pool);
    if (stored.found > 0 && job->super.run == run_reservation) {
        if (view_of(&job->reservation, &pool, &stored.reservation) != 0)
            stored.found = -1;
    } else if (stored.found > 0) {
        stored.txn = (tk_txn_result_t){.outcome = TK_TXN_FOUND,
                                       .status = h2o_iovec_init(job->txn_status, strlen(job->txn_status)),
                                       .error = h2o_iovec_init(job->txn_error, strlen(job->txn_error))};
    }
    job->cb(&stored, job->data);
    h2o_mem_clear_pool(&pool);
    free(job->reservation.tickets);
    free(job);
}

static int submit(tk_engine_t *e, const char *id, void (*run)(tk_job_t *, tk_worker_conn_t *), tk_shop_stored_cb cb, void *data)
{
    tk_store_job_t *job = h2o_mem_alloc(sizeof(*job));
    memset(job, 0, sizeof(*job));
    job->super = (tk_job_t){.origin = &e->jobs, .run = run, .done = on_done};
    job->cb = cb;
    job->data = data;
    memcpy(job->id, id, TK_UUID_LEN);
    if (tk_workers_submit(&job->super) != 0) {
        free(job);
        return -EAGAIN;
    }
    return 0;
}

int tk_shop_read_reservation(tk_engine_t *e, const char *rid, tk_shop_stored_cb cb, void *data)
{
    return submit(e, rid, run_reservation, cb, data);
}

int tk_shop_read_transaction(tk_engine_t *e, const char *txn, tk_shop_stored_cb cb, void *data)
{
    return submit(e, txn, run_transaction, cb, data);
}
