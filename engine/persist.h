/*
 * Writing outbox records to PostgreSQL, and reading finished reservations and
 * transactions back once they have left Redis. A batch is one transaction: the records
 * are COPYed into session-local staging tables, then merged with INSERT … ON CONFLICT.
 * Merging is idempotent and monotonic (a row leaves PENDING once and never returns), so
 * a batch may be replayed, split, or applied after a later one by another writer.
 */
#ifndef TK_PERSIST_H
#define TK_PERSIST_H

#include "engine/outbox.h"

#include <libpq-fe.h>

/* What tk_persist_batch did. REFUSED: PostgreSQL refused a record for its content (an
 * error of SQLSTATE class 22, data exception, or 23, integrity constraint violation), so
 * writing the batch again cannot succeed; written record by record, the ones refused
 * are for an operator. UNAVAILABLE: anything else (the connection, the server's disk or
 * memory, a lock, the schema): the batch waits and is written again later. */
typedef enum en_tk_persist_result_t { TK_PERSIST_OK = 0, TK_PERSIST_UNAVAILABLE = -1, TK_PERSIST_REFUSED = -2 } tk_persist_result_t;

/* writes recs in one transaction */
tk_persist_result_t tk_persist_batch(PGconn *conn, const tk_outbox_record_t *recs, size_t n, char *err, size_t errsize);

typedef struct st_tk_stored_reservation_t {
    char status[16];
    char event[TK_UUID_LEN + 1];
    int64_t created_ms, until_ms;
    tk_outbox_ticket_t *tickets; /* heap; free() it */
    size_t ntickets;
} tk_stored_reservation_t;

/* 1 and the reservation with its tickets; 0 when PostgreSQL does not have it; -1 on error */
int tk_persist_read_reservation(PGconn *conn, const char *rid, tk_stored_reservation_t *out);
/* 1 and the transaction's status and error (empty when none); 0 when unknown; -1 on error */
int tk_persist_read_transaction(PGconn *conn, const char *txn, char *status, size_t status_size, char *error, size_t error_size);

#endif
