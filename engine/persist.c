/*
 * The batch writer's SQL. Staging tables are temporary (per session, emptied at each
 * commit), made with the prepared merges once per connection. COPY + merge was measured
 * against libpq pipeline mode (one INSERT … ON CONFLICT per row) in tests/perf/: 1.45–2×
 * faster at batches of 1000, even at 100. Within a batch the same reservation may appear
 * several times; DISTINCT ON keeps its final state (a finished status beats PENDING, then
 * the latest entry).
 */
#include "engine/persist.h"
#include "engine/money.h"
#include "engine/timefmt.h"

#include <h2o/memory.h>
#include <libpq-events.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Bounded column types: unbounded text/numeric give the staging tables TOAST tables,
 * which ON COMMIT DELETE ROWS must empty at every commit too (tests/perf/README.md
 * measured 7.5 ms against 0.3 ms per COMMIT). The bounds are the decoder's own limits. */
static const char staging_sql[] =
    "CREATE TEMP TABLE IF NOT EXISTS stage_reservations (seq int, id uuid, event_id uuid, status varchar(16), "
    "reservation_date timestamptz, pending_until timestamptz) ON COMMIT DELETE ROWS;"
    "CREATE TEMP TABLE IF NOT EXISTS stage_tickets (id uuid, reservation_id uuid, event_id uuid, type varchar(64), "
    "price numeric(12,2)) ON COMMIT DELETE ROWS;"
    "CREATE TEMP TABLE IF NOT EXISTS stage_transactions (seq int, id uuid, reservation_id uuid, status varchar(16), "
    "amount numeric(18,2), date timestamptz, error_type varchar(200)) ON COMMIT DELETE ROWS";

/* The merges, prepared once per session (planning them was a third of a small batch's
 * fixed cost); in this order: tickets name their reservation. */
enum { MERGE_RESERVATIONS, MERGE_TICKETS, MERGE_TRANSACTIONS, MERGES };
static const char *const merge_names[MERGES] = {"tk_merge_reservations", "tk_merge_tickets", "tk_merge_transactions"};
static const char *const merge_sql[MERGES] = {
    "INSERT INTO reservations (id, event_id, status, reservation_date, pending_until) "
    "SELECT DISTINCT ON (id) id, event_id, status, reservation_date, pending_until FROM stage_reservations "
    "ORDER BY id, status <> 'PENDING' DESC, seq DESC "
    "ON CONFLICT (id) DO UPDATE SET status = EXCLUDED.status, updated_at = now() "
    "WHERE reservations.status = 'PENDING' AND EXCLUDED.status <> 'PENDING'",
    "INSERT INTO ordered_tickets (id, reservation_id, event_id, type, price) "
    "SELECT DISTINCT ON (id) id, reservation_id, event_id, type, price FROM stage_tickets ORDER BY id "
    "ON CONFLICT (id) DO NOTHING",
    "INSERT INTO transactions (id, reservation_id, status, amount, date, error_type) "
    "SELECT DISTINCT ON (id) id, reservation_id, status, amount, date, error_type FROM stage_transactions "
    "ORDER BY id, status <> 'PENDING' DESC, seq DESC "
    "ON CONFLICT (id) DO UPDATE SET status = EXCLUDED.status, error_type = EXCLUDED.error_type "
    "WHERE transactions.status = 'PENDING' AND EXCLUDED.status <> 'PENDING'",
};

/* Where a failed step leaves its message, and what its SQLSTATE says: that the session
 * lost what session_prepare made (a staging table, 42P01, or a prepared merge, 26000, not
 * there, as after DISCARD ALL or on a pooled server connection), or that PostgreSQL
 * refused the rows for their content (class 22 or 23). */
typedef struct st_tk_step_error_t {
    char *msg;
    size_t size;
    int session_lost, refused;
} tk_step_error_t;

static void set_error(tk_step_error_t *e, const char *what, PGconn *conn, const PGresult *res)
{
    const char *state = res != NULL ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    e->session_lost |= state != NULL && (strcmp(state, "42P01") == 0 || strcmp(state, "26000") == 0);
    e->refused |= state != NULL && (strncmp(state, "22", 2) == 0 || strncmp(state, "23", 2) == 0);
    snprintf(e->msg, e->size, "%s: %s", what, PQerrorMessage(conn));
    for (char *p = e->msg; *p != '\0'; ++p)
        if (*p == '\n')
            *p = ' ';
}

static int exec_ok(PGconn *conn, const char *sql, tk_step_error_t *e)
{
    PGresult *res = PQexec(conn, sql);
    int ok = PQresultStatus(res) == PGRES_COMMAND_OK || PQresultStatus(res) == PGRES_TUPLES_OK;
    if (!ok)
        set_error(e, "batch", conn, res);
    PQclear(res);
    return ok ? 0 : -1;
}

/* A growable text buffer for COPY rows. */
typedef struct st_tk_copybuf_t {
    char *data;
    size_t len, cap;
} tk_copybuf_t;

static void put(tk_copybuf_t *b, const char *s, size_t len)
{
    if (b->cap - b->len < len + 1) {
        while (b->cap - b->len < len + 1)
            b->cap = b->cap == 0 ? 4096 : b->cap * 2;
        b->data = h2o_mem_realloc(b->data, b->cap);
    }
    memcpy(b->data + b->len, s, len);
    b->len += len;
}

/* a text-format COPY field: backslash, tab, newline and carriage return escaped */
static void put_field(tk_copybuf_t *b, const char *s, char terminator)
{
    for (; *s != '\0'; ++s) {
        switch (*s) {
        case '\\':
            put(b, "\\\\", 2);
            break;
        case '\t':
            put(b, "\\t", 2);
            break;
        case '\n':
            put(b, "\\n", 2);
            break;
        case '\r':
            put(b, "\\r", 2);
            break;
        default:
            put(b, s, 1);
        }
    }
    put(b, &terminator, 1);
}

static void put_time(tk_copybuf_t *b, int64_t ms, char terminator)
{
    char t[TK_RFC3339_MAX];
    tk_time_format_rfc3339(ms, t, sizeof(t));
    put_field(b, t, terminator);
}

static void put_money(tk_copybuf_t *b, int64_t minor, char terminator)
{
    char m[32];
    tk_money_format_sql(minor, m, sizeof(m));
    put_field(b, m, terminator);
}

static void put_int(tk_copybuf_t *b, int64_t v, char terminator)
{
    char n[24];
    snprintf(n, sizeof(n), "%" PRId64, v);
    put_field(b, n, terminator);
}

static int exec_prepared_ok(PGconn *conn, int merge, tk_step_error_t *e)
{
    PGresult *res = PQexecPrepared(conn, merge_names[merge], 0, NULL, NULL, NULL, 0);
    int ok = PQresultStatus(res) == PGRES_COMMAND_OK;
    if (!ok)
        set_error(e, merge_names[merge], conn, res);
    PQclear(res);
    return ok ? 0 : -1;
}

/* The session's staging tables and prepared merges are made outside any transaction (one
 * that rolled back would take them along) once per connection. That they were is noted
 * on the connection itself (libpq instance data of session_event), so the note dies with
 * the PGconn and a PQreset clears it: a connection made again starts unprepared even at
 * the same address with a backend of the same pid, as after a restarted container. Making
 * them again is harmless (IF NOT EXISTS; 42P05, already prepared, is as good). */
static char session_prepared; /* its address is the note */

static int session_event(PGEventId id, void *info, void *passthrough)
{
    (void)passthrough;
    if (id == PGEVT_CONNRESET)
        PQsetInstanceData(((PGEventConnReset *)info)->conn, session_event, NULL);
    return 1;
}

static void session_note(PGconn *conn, int prepared)
{
    PQregisterEventProc(conn, session_event, "ticketd persist", NULL); /* refused when registered already */
    PQsetInstanceData(conn, session_event, prepared ? &session_prepared : NULL);
}

static int session_prepare(PGconn *conn, tk_step_error_t *e)
{
    if (PQinstanceData(conn, session_event) == &session_prepared)
        return 0;
    if (exec_ok(conn, staging_sql, e) != 0)
        return -1;
    for (int i = 0; i < MERGES; ++i) {
        PGresult *res = PQprepare(conn, merge_names[i], merge_sql[i], 0, NULL);
        const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
        int ok = PQresultStatus(res) == PGRES_COMMAND_OK || (state != NULL && strcmp(state, "42P05") == 0);
        if (!ok)
            set_error(e, merge_names[i], conn, res);
        PQclear(res);
        if (!ok)
            return -1;
    }
    session_note(conn, 1);
    return 0;
}

static int copy_in(PGconn *conn, const char *sql, const tk_copybuf_t *rows, tk_step_error_t *e)
{
    PGresult *res = PQexec(conn, sql);
    int ok = PQresultStatus(res) == PGRES_COPY_IN;
    if (!ok)
        set_error(e, sql, conn, res);
    PQclear(res);
    if (ok)
        ok = (rows->len == 0 || PQputCopyData(conn, rows->data, (int)rows->len) == 1) && PQputCopyEnd(conn, NULL) == 1;
    while ((res = PQgetResult(conn)) != NULL) {
        if (ok && PQresultStatus(res) != PGRES_COMMAND_OK) {
            ok = 0;
            set_error(e, sql, conn, res);
        }
        PQclear(res);
    }
    if (!ok && e->msg[0] == '\0')
        set_error(e, sql, conn, NULL);
    return ok ? 0 : -1;
}

/* The staged rows in one transaction: COPY each table, merge, commit. */
static int write_staged(PGconn *conn, const tk_copybuf_t *reservations, const tk_copybuf_t *tickets,
                        const tk_copybuf_t *transactions, tk_step_error_t *e)
{
    if (session_prepare(conn, e) != 0 || exec_ok(conn, "BEGIN", e) != 0)
        return -1;
    /* a sale's batches have no transactions: their staging and merge are skipped */
    int with_transactions = transactions->len != 0;
    if (copy_in(conn, "COPY stage_reservations FROM STDIN", reservations, e) != 0 ||
        copy_in(conn, "COPY stage_tickets FROM STDIN", tickets, e) != 0 ||
        (with_transactions && copy_in(conn, "COPY stage_transactions FROM STDIN", transactions, e) != 0) ||
        exec_prepared_ok(conn, MERGE_RESERVATIONS, e) != 0 || exec_prepared_ok(conn, MERGE_TICKETS, e) != 0 ||
        (with_transactions && exec_prepared_ok(conn, MERGE_TRANSACTIONS, e) != 0) || exec_ok(conn, "COMMIT", e) != 0) {
        PQclear(PQexec(conn, "ROLLBACK"));
        return -1;
    }
    return 0;
}

tk_persist_result_t tk_persist_batch(PGconn *conn, const tk_outbox_record_t *recs, size_t n, char *err, size_t errsize)
{
    tk_copybuf_t reservations = {0}, tickets = {0}, transactions = {0};
    for (size_t i = 0; i < n; ++i) {
        const tk_outbox_record_t *r = recs + i;
        put_int(&reservations, (int64_t)i, '\t');
        put_field(&reservations, r->rid, '\t');
        put_field(&reservations, r->event, '\t');
        put_field(&reservations, r->status, '\t');
        put_time(&reservations, r->created_ms, '\t');
        put_time(&reservations, r->until_ms, '\n');
        for (size_t j = 0; j < r->ntickets; ++j) {
            put_field(&tickets, r->tickets[j].id, '\t');
            put_field(&tickets, r->rid, '\t');
            put_field(&tickets, r->event, '\t');
            put_field(&tickets, r->tickets[j].type, '\t');
            put_money(&tickets, r->tickets[j].price_minor, '\n');
        }
        if (r->has_txn) {
            put_int(&transactions, (int64_t)i, '\t');
            put_field(&transactions, r->txn_id, '\t');
            put_field(&transactions, r->rid, '\t');
            put_field(&transactions, r->txn_status, '\t');
            put_money(&transactions, r->txn_amount_minor, '\t');
            put_time(&transactions, r->txn_date_ms, '\t');
            if (r->txn_error[0] != '\0')
                put_field(&transactions, r->txn_error, '\n');
            else
                put(&transactions, "\\N\n", 3);
        }
    }

    /* A session that lost its staging tables or merges is prepared again and the batch
     * written once more: never a reason to think the records themselves were refused. */
    tk_step_error_t e = {.msg = err, .size = errsize};
    err[0] = '\0';
    int rc = write_staged(conn, &reservations, &tickets, &transactions, &e);
    if (rc != 0 && e.session_lost && PQstatus(conn) == CONNECTION_OK) {
        session_note(conn, 0);
        e = (tk_step_error_t){.msg = err, .size = errsize};
        err[0] = '\0';
        rc = write_staged(conn, &reservations, &tickets, &transactions, &e);
    }
    free(reservations.data);
    free(tickets.data);
    free(transactions.data);
    return rc == 0 ? TK_PERSIST_OK : e.refused && PQstatus(conn) == CONNECTION_OK ? TK_PERSIST_REFUSED : TK_PERSIST_UNAVAILABLE;
}

int tk_persist_read_reservation(PGconn *conn, const char *rid, tk_stored_reservation_t *out)
{
    memset(out, 0, sizeof(*out));
    const char *params[] = {rid};
    PGresult *res =
        PQexecParams(conn,
                     "SELECT r.status, r.event_id::text, (extract(epoch FROM r.reservation_date) * 1000)::bigint, "
                     "(extract(epoch FROM r.pending_until) * 1000)::bigint, t.id::text, t.type, (t.price * 100)::bigint "
                     "FROM reservations r LEFT JOIN ordered_tickets t ON t.reservation_id = r.id "
                     "WHERE r.id = $1 ORDER BY t.type, t.id",
                     1, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        PQclear(res);
        return -1;
    }
    int rows = PQntuples(res);
    if (rows == 0) {
        PQclear(res);
        return 0;
    }
    snprintf(out->status, sizeof(out->status), "%s", PQgetvalue(res, 0, 0));
    snprintf(out->event, sizeof(out->event), "%s", PQgetvalue(res, 0, 1));
    out->created_ms = strtoll(PQgetvalue(res, 0, 2), NULL, 10);
    out->until_ms = strtoll(PQgetvalue(res, 0, 3), NULL, 10);
    out->tickets = h2o_mem_alloc((size_t)rows * sizeof(*out->tickets));
    for (int i = 0; i < rows; ++i) {
        if (PQgetisnull(res, i, 4))
            continue;
        tk_outbox_ticket_t *t = out->tickets + out->ntickets++;
        snprintf(t->id, sizeof(t->id), "%s", PQgetvalue(res, i, 4));
        snprintf(t->type, sizeof(t->type), "%s", PQgetvalue(res, i, 5));
        t->price_minor = strtoll(PQgetvalue(res, i, 6), NULL, 10);
    }
    PQclear(res);
    return 1;
}

int tk_persist_read_transaction(PGconn *conn, const char *txn, char *status, size_t status_size, char *error, size_t error_size)
{
    const char *params[] = {txn};
    PGresult *res = PQexecParams(conn, "SELECT status, coalesce(error_type, '') FROM transactions WHERE id = $1", 1, NULL, params,
                                 NULL, NULL, 0);
    int rc = -1;
    if (PQresultStatus(res) == PGRES_TUPLES_OK) {
        rc = PQntuples(res) == 1;
        if (rc) {
            snprintf(status, status_size, "%s", PQgetvalue(res, 0, 0));
            snprintf(error, error_size, "%s", PQgetvalue(res, 0, 1));
        }
    }
    PQclear(res);
    return rc;
}
