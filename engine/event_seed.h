/*
 * What PostgreSQL knows of an event's tickets that Redis must not sell again: a Redis
 * that does not know the event (it restarted without its data, or a new master) starts
 * its inventory from this instead of full capacity. Sold tickets stay sold; tickets of
 * holds whose deadline is still ahead stay held until that deadline (the holds
 * themselves are lost with Redis's data, so nobody can pay them) and then go back on
 * sale. Read by engine/pg.c, sent by engine/inventory.c (tk_event_init's seed).
 */
#ifndef TK_EVENT_SEED_H
#define TK_EVENT_SEED_H

#include <stddef.h>
#include <stdint.h>

typedef struct st_tk_event_seed_line_t {
    size_t type;      /* index into the event's types */
    int held;         /* 0: sold */
    int64_t n;        /* tickets */
    int64_t until_ms; /* held: the holds' deadline; sold: 0 */
} tk_event_seed_line_t;

typedef struct st_tk_event_seed_t {
    int64_t revenue_minor;
    size_t nlines;
    tk_event_seed_line_t *lines; /* malloc'd; free() it */
} tk_event_seed_t;

#endif
