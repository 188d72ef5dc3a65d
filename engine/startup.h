/*
 * What ticketd does with its stores before it serves, one call each for http/main.c:
 * --check-config's verdicts on PostgreSQL and Redis, and the start-up sequence —
 * connect to both (failing fast with one line naming what and where), flag their
 * durability warnings, migrate the schema, load the Redis function library, load the demo
 * events in development, and publish the catalog — on connections of its own that are
 * closed before the loops start.
 */
#ifndef TK_STARTUP_H
#define TK_STARTUP_H

#include "engine/config.h"

#include <stddef.h>
#include <stdio.h>

/* Prints one "ok", "WARN" or "FAIL" line per store to out; returns the number of FAILs
 * (unreachable stores). */
int tk_startup_check_stores(const tk_config_t *config, FILE *out);

/* The start-up sequence above. 0, or -1 with the first problem in err as one line
 * ("cannot connect to Redis at 127.0.0.1:6379: Connection refused"). */
int tk_startup_prepare_stores(const tk_config_t *config, char *err, size_t errsize);

#endif
