/*
 * The blocking PostgreSQL queries. Every statement is parameterised; values travel as
 * text so money stays exact (numeric literals, never floats) and instants are RFC 3339.
 */
#include "engine/pg.h"
#include "engine/embedded.h"
#include "engine/log.h"
#include "engine/money.h"
#include "engine/timefmt.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* an arbitrary constant naming ticketd's advisory lock */
#define TK_PG_LOCK_KEY "7356201"

static void set_error(char *err, size_t errsize, const char *what, PGconn *conn)
{
    const char *msg = PQerrorMessage(conn);
    size_t len = strlen(msg);
    while (len > 0 && (msg[len - 1] == '\n' || msg[len - 1] == ' '))
        --len;
    snprintf(err, errsize, "%s: %.*s", what, (int)len, msg);
    for (char *p = err; *p != '\0'; ++p)
        if (*p == '\n')
            *p = ' ';
}

/* Server notices ("relation already exists, skipping") are debug news, not stderr noise. */
static void on_notice(void *arg, const char *message)
{
    tk_log_debug("postgres", "%.*s", (int)strcspn(message, "\n"), message);
}

PGconn *tk_pg_connect(const char *url, char *err, size_t errsize)
{
    const char *keys[] = {"dbname", "connect_timeout", "application_name", NULL};
    const char *values[] = {url, "5", "ticketd", NULL};
    PGconn *conn = PQconnectdbParams(keys, values, 1);
    if (conn == NULL) {
        snprintf(err, errsize, "out of memory");
        return NULL;
    }
    if (PQstatus(conn) != CONNECTION_OK) {
        set_error(err, errsize, "connection failed", conn);
        PQfinish(conn);
        return NULL;
    }
    PQsetNoticeProcessor(conn, on_notice, NULL);
    PQclear(PQexec(conn, "SET TIME ZONE 'UTC'"));
    return conn;
}

/* Runs a statement that returns no rows; 0 on success. */
static int exec_command(PGconn *conn, const char *sql, char *err, size_t errsize)
{
    PGresult *res = PQexec(conn, sql);
    int ok = PQresultStatus(res) == PGRES_COMMAND_OK || PQresultStatus(res) == PGRES_TUPLES_OK;
    if (!ok)
        set_error(err, errsize, sql, conn);
    PQclear(res);
    return ok ? 0 : -1;
}

int tk_pg_migrate(PGconn *conn, char *err, size_t errsize)
{
    if (exec_command(conn, "SELECT pg_advisory_lock(" TK_PG_LOCK_KEY ")", err, errsize) != 0)
        return -1;
    int rc = -1;
    if (exec_command(conn,
                     "CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, name text NOT NULL, "
                     "applied_at timestamptz NOT NULL DEFAULT now())",
                     err, errsize) != 0)
        goto Unlock;
    for (size_t i = 0; i < tk_migrations_count; ++i) {
        const tk_migration_t *m = tk_migrations + i;
        char version[16];
        snprintf(version, sizeof(version), "%d", atoi(m->name));
        const char *params[] = {version, m->name};
        PGresult *res = PQexecParams(conn, "SELECT 1 FROM schema_migrations WHERE version = $1", 1, NULL, params, NULL, NULL, 0);
        int applied = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1;
        PQclear(res);
        if (applied)
            continue;
        if (exec_command(conn, "BEGIN", err, errsize) != 0)
            goto Unlock;
        if (exec_command(conn, m->sql, err, errsize) != 0) {
            char inner[512];
            snprintf(inner, sizeof(inner), "%s", err);
            snprintf(err, errsize, "migration %s failed: %s", m->name, inner);
            PQclear(PQexec(conn, "ROLLBACK"));
            goto Unlock;
        }
        res = PQexecParams(conn, "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", 2, NULL, params, NULL, NULL, 0);
        int recorded = PQresultStatus(res) == PGRES_COMMAND_OK;
        PQclear(res);
        if (!recorded || exec_command(conn, "COMMIT", err, errsize) != 0) {
            set_error(err, errsize, "recording migration", conn);
            PQclear(PQexec(conn, "ROLLBACK"));
            goto Unlock;
        }
    }
    rc = 0;
Unlock:
    PQclear(PQexec(conn, "SELECT pg_advisory_unlock(" TK_PG_LOCK_KEY ")"));
    return rc;
}

tk_catalog_t *tk_pg_load_catalog(PGconn *conn, uint64_t version, char *err, size_t errsize)
{
    PGresult *res = PQexec(conn, "SELECT e.id::text, e.name, (extract(epoch FROM e.date) * 1000)::bigint, t.id::text, t.type, "
                                 "(t.price * 100)::bigint, t.amount "
                                 "FROM events e LEFT JOIN ticket_types t ON t.event_id = e.id "
                                 "ORDER BY e.id, t.position, t.type");
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        set_error(err, errsize, "loading the catalog", conn);
        PQclear(res);
        return NULL;
    }
    tk_catalog_t *c = tk_catalog_new(version);
    const char *current = "";
    for (int row = 0; row < PQntuples(res); ++row) {
        const char *id = PQgetvalue(res, row, 0);
        if (strcmp(id, current) != 0) {
            tk_catalog_add_event(c, id, PQgetvalue(res, row, 1), (size_t)PQgetlength(res, row, 1),
                                 strtoll(PQgetvalue(res, row, 2), NULL, 10));
            current = id;
        }
        if (!PQgetisnull(res, row, 3))
            tk_catalog_add_type(c, PQgetvalue(res, row, 3), PQgetvalue(res, row, 4), (size_t)PQgetlength(res, row, 4),
                                strtoll(PQgetvalue(res, row, 5), NULL, 10), strtoll(PQgetvalue(res, row, 6), NULL, 10));
    }
    PQclear(res);
    tk_catalog_seal(c);
    return c;
}

int tk_pg_event_seed(PGconn *conn, const tk_event_t *ev, tk_event_seed_t *out, char *err, size_t errsize)
{
    /* a held line's deadline: its holds' pending_until rounded up to the 100 ms slot Redis
     * sweeps held tickets in (BUCKET_MS in lua/ticketd.lua), one line per slot and type */
    const char *params[] = {ev->id};
    PGresult *res =
        PQexecParams(conn,
                     "SELECT ot.type, r.status = 'PENDING', count(*), (sum(ot.price) * 100)::bigint, "
                     "CASE WHEN r.status = 'PENDING' THEN (ceil(extract(epoch FROM r.pending_until) * 10) * 100)::bigint "
                     "ELSE 0 END "
                     "FROM ordered_tickets ot JOIN reservations r ON r.id = ot.reservation_id "
                     "WHERE ot.event_id = $1 AND (r.status = 'COMPLETED' OR "
                     "(r.status = 'PENDING' AND r.pending_until > now())) "
                     "GROUP BY 1, 2, 5",
                     1, NULL, params, NULL, NULL, 0);
    *out = (tk_event_seed_t){0};
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        set_error(err, errsize, "reading the event's tickets", conn);
        PQclear(res);
        return -1;
    }
    int rows = PQntuples(res);
    out->lines = h2o_mem_alloc(sizeof(*out->lines) * (size_t)(rows + 1));
    for (int row = 0; row < rows; ++row) {
        const tk_ticket_type_t *t = tk_event_find_type(ev, PQgetvalue(res, row, 0), (size_t)PQgetlength(res, row, 0));
        if (t == NULL) {
            snprintf(err, errsize, "tickets of event %s name type \"%s\", which it does not have", ev->id, PQgetvalue(res, row, 0));
            free(out->lines);
            *out = (tk_event_seed_t){0};
            PQclear(res);
            return -1;
        }
        tk_event_seed_line_t *line = out->lines + out->nlines++;
        line->type = (size_t)(t - ev->types);
        line->held = PQgetvalue(res, row, 1)[0] == 't';
        line->n = strtoll(PQgetvalue(res, row, 2), NULL, 10);
        line->until_ms = strtoll(PQgetvalue(res, row, 4), NULL, 10);
        if (!line->held)
            out->revenue_minor += strtoll(PQgetvalue(res, row, 3), NULL, 10);
    }
    PQclear(res);
    return 0;
}

/* Inserts ev and its types inside the caller's transaction. */
static int insert_event_rows(PGconn *conn, const tk_event_t *ev, char *err, size_t errsize)
{
    char date[TK_RFC3339_MAX];
    tk_time_format_rfc3339(ev->date_ms, date, sizeof(date));
    const char *event_params[] = {ev->id, ev->name.base, date};
    PGresult *res =
        PQexecParams(conn, "INSERT INTO events (id, name, date) VALUES ($1, $2, $3)", 3, NULL, event_params, NULL, NULL, 0);
    int ok = PQresultStatus(res) == PGRES_COMMAND_OK;
    PQclear(res);
    for (size_t i = 0; ok && i < ev->ntypes; ++i) {
        const tk_ticket_type_t *t = ev->types + i;
        char price[32], amount[24], position[24];
        tk_money_format_sql(t->price_minor, price, sizeof(price));
        snprintf(amount, sizeof(amount), "%" PRId64, t->amount);
        snprintf(position, sizeof(position), "%zu", i);
        const char *params[] = {t->id, ev->id, t->name.base, price, amount, position};
        res = PQexecParams(conn,
                           "INSERT INTO ticket_types (id, event_id, type, price, amount, position) VALUES ($1, $2, $3, $4, $5, $6)",
                           6, NULL, params, NULL, NULL, 0);
        ok = PQresultStatus(res) == PGRES_COMMAND_OK;
        PQclear(res);
    }
    if (!ok)
        set_error(err, errsize, "inserting an event", conn);
    return ok ? 0 : -1;
}

int tk_pg_insert_event(PGconn *conn, const tk_event_t *ev, char *err, size_t errsize)
{
    if (exec_command(conn, "BEGIN", err, errsize) != 0)
        return -1;
    if (insert_event_rows(conn, ev, err, errsize) != 0 || exec_command(conn, "COMMIT", err, errsize) != 0) {
        PQclear(PQexec(conn, "ROLLBACK"));
        return -1;
    }
    return 0;
}

int tk_pg_insert_if_empty(PGconn *conn, const tk_catalog_t *c, int *inserted, char *err, size_t errsize)
{
    *inserted = 0;
    if (exec_command(conn, "BEGIN", err, errsize) != 0)
        return -1;
    if (exec_command(conn, "SELECT pg_advisory_xact_lock(" TK_PG_LOCK_KEY ")", err, errsize) != 0)
        goto Rollback;
    PGresult *res = PQexec(conn, "SELECT EXISTS (SELECT 1 FROM events)");
    int empty = PQresultStatus(res) == PGRES_TUPLES_OK && strcmp(PQgetvalue(res, 0, 0), "f") == 0;
    PQclear(res);
    for (size_t i = 0; empty && i < c->nevents; ++i)
        if (insert_event_rows(conn, c->events + i, err, errsize) != 0)
            goto Rollback;
    if (exec_command(conn, "COMMIT", err, errsize) != 0)
        goto Rollback;
    *inserted = empty;
    return 0;
Rollback:
    PQclear(PQexec(conn, "ROLLBACK"));
    return -1;
}

/* The value of one server setting (as SHOW reports it) into buf; -1 when the query failed. */
static int show_setting(PGconn *conn, const char *sql, char *buf, size_t bufsize)
{
    PGresult *res = PQexec(conn, sql);
    int ok = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1;
    if (ok)
        snprintf(buf, bufsize, "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
    return ok ? 0 : -1;
}

int tk_pg_durability_warning(PGconn *conn, char *warn, size_t warnsize)
{
    char fsync[32], sync_commit[32];
    if (show_setting(conn, "SHOW fsync", fsync, sizeof(fsync)) != 0 ||
        show_setting(conn, "SHOW synchronous_commit", sync_commit, sizeof(sync_commit)) != 0)
        return -1;
    if (strcmp(fsync, "on") != 0 || strcmp(sync_commit, "off") == 0) {
        snprintf(warn, warnsize,
                 "PostgreSQL runs with fsync=%s synchronous_commit=%s: a crash can lose committed sales; set both on", fsync,
                 sync_commit);
        return 1;
    }
    return 0;
}

int tk_pg_ping(PGconn *conn)
{
    PGresult *res = PQexec(conn, "SELECT 1");
    int ok = PQresultStatus(res) == PGRES_TUPLES_OK;
    PQclear(res);
    return ok ? 0 : -1;
}
