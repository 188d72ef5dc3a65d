/*
 * PostgreSQL access for the blocking side of ticketd (start-up, worker threads, the
 * catalog refresher; never an event-loop thread): connecting, numbered migrations,
 * loading the catalog, creating events, and the durability checks production warns on.
 */
#ifndef TK_PG_H
#define TK_PG_H

#include "engine/catalog.h"
#include "engine/event_seed.h"

#include <libpq-fe.h>
#include <stddef.h>

/* connects with a 5 s timeout; on failure writes a one-line reason into err and returns NULL */
PGconn *tk_pg_connect(const char *url, char *err, size_t errsize);
/* applies every embedded migration not yet recorded in schema_migrations, under an
 * advisory lock so that several processes starting at once apply each exactly once */
int tk_pg_migrate(PGconn *conn, char *err, size_t errsize);
/* loads every event with its ticket types into a sealed snapshot tagged with version */
tk_catalog_t *tk_pg_load_catalog(PGconn *conn, uint64_t version, char *err, size_t errsize);
/* What PostgreSQL knows of ev's tickets (engine/event_seed.h): tickets of COMPLETED
 * reservations, and of PENDING ones whose deadline is ahead, per type and deadline. -1
 * when the query failed or names a type ev does not have. */
int tk_pg_event_seed(PGconn *conn, const tk_event_t *ev, tk_event_seed_t *out, char *err, size_t errsize);
/* inserts one event and its types in one transaction */
int tk_pg_insert_event(PGconn *conn, const tk_event_t *ev, char *err, size_t errsize);
/* inserts the events of c in one transaction, but only when the events table is empty;
 * *inserted tells whether it did */
int tk_pg_insert_if_empty(PGconn *conn, const tk_catalog_t *c, int *inserted, char *err, size_t errsize);
/* writes a warning into warn when fsync or synchronous_commit is off; 1 when it did,
 * 0 when durable, -1 when the check itself failed */
int tk_pg_durability_warning(PGconn *conn, char *warn, size_t warnsize);
/* 0 when the server answers a trivial query */
int tk_pg_ping(PGconn *conn);

#endif
