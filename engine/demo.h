/*
 * Demo events for development: a handful of upcoming events with the seed's ticket
 * types, loaded only into an empty database (never in production).
 */
#ifndef TK_DEMO_H
#define TK_DEMO_H

#include <libpq-fe.h>
#include <stddef.h>

/* inserts the demo events when the events table is empty; *loaded tells whether it did */
int tk_demo_load(PGconn *pg, int *loaded, char *err, size_t errsize);

#endif
