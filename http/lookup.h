/*
 * Reads that fall back to PostgreSQL, for reservations and transactions that have
 * left Redis after being persisted. They run as worker jobs (never on a loop thread)
 * and answer through the request's async guard.
 */
#ifndef TK_LOOKUP_H
#define TK_LOOKUP_H

#include "engine/persist.h"
#include "http/respond.h"
#include "engine/worker.h"
#include "http/server.h"

typedef struct st_tk_lookup_t tk_lookup_t;
/* called back on the loop; found: 1 found, 0 unknown, -1 the database failed */
typedef void (*tk_lookup_cb)(tk_lookup_t *lookup, h2o_req_t *req, int found);

struct st_tk_lookup_t {
    tk_job_t super;
    tk_async_t *op;
    tk_thread_t *thread;
    tk_lookup_cb cb;
    char id[TK_UUID_LEN + 1];
    int found;
    tk_stored_reservation_t reservation; /* for reservation lookups */
    char txn_status[16], txn_error[256]; /* for transaction lookups */
};

/* Start a lookup of a reservation or a transaction id; answers 503 itself when the workers are saturated. */
void tk_lookup_reservation(h2o_req_t *req, tk_thread_t *thread, const char *rid, tk_lookup_cb cb);
void tk_lookup_transaction(h2o_req_t *req, tk_thread_t *thread, const char *txn, tk_lookup_cb cb);

#endif
