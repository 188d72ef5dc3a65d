/*
 * The catalog: events and their ticket types, as an immutable, reference-counted
 * snapshot built from PostgreSQL. Browsing is served from the snapshot, never from a
 * query per request. A newer snapshot is published process-wide with one mutex-guarded
 * pointer swap and a generation counter; each loop thread keeps a cached reference and
 * checks the generation (one atomic load) at the start of a request. Snapshots carry the
 * Redis catalog version they were loaded at, so processes converge on the newest.
 */
#ifndef TK_CATALOG_H
#define TK_CATALOG_H

#include "engine/uuid.h"

#include <h2o.h>
#include <stdint.h>

typedef struct st_tk_ticket_type_t {
    char id[TK_UUID_LEN + 1];
    h2o_iovec_t name;
    int64_t price_minor;
    int64_t amount; /* capacity released for sale */
} tk_ticket_type_t;

typedef struct st_tk_event_t {
    char id[TK_UUID_LEN + 1];
    h2o_iovec_t name;
    int64_t date_ms;
    tk_ticket_type_t *types; /* in creation order */
    size_t ntypes;
    h2o_iovec_t json; /* pre-rendered {"id":…,"name":…,"date":…} */
} tk_event_t;

typedef struct st_tk_catalog_t {
    uint64_t version;
    tk_event_t *events; /* ordered by (date, id) once sealed */
    size_t nevents;
    tk_event_t **by_id;               /* ordered by id, for lookups */
    char (*shards)[TK_SHARD_LEN + 1]; /* the distinct shards of the events, for the sweeper */
    size_t nshards;
    size_t capacity;
    int refcnt;
} tk_catalog_t;

typedef struct st_tk_page_t {
    size_t page, last_page, first, count;
} tk_page_t;

typedef struct st_tk_catalog_cache_t {
    tk_catalog_t *snapshot;
    uint64_t generation;
} tk_catalog_cache_t;

/* building (one thread, before sealing) */
tk_catalog_t *tk_catalog_new(uint64_t version);
tk_event_t *tk_catalog_add_event(tk_catalog_t *c, const char *id, const char *name, size_t name_len, int64_t date_ms);
/* adds a type to the event added last */
void tk_catalog_add_type(tk_catalog_t *c, const char *id, const char *name, size_t name_len, int64_t price_minor, int64_t amount);
void tk_catalog_seal(tk_catalog_t *c);

void tk_catalog_retain(tk_catalog_t *c);
void tk_catalog_release(tk_catalog_t *c);

const tk_event_t *tk_catalog_find(const tk_catalog_t *c, const char *id);
const tk_ticket_type_t *tk_event_find_type(const tk_event_t *ev, const char *name, size_t len);
/* index of the first event whose date is >= now_ms (nevents when none) */
size_t tk_catalog_first_upcoming(const tk_catalog_t *c, int64_t now_ms);
/* Pagination as the original did it: a page below 1 or past the last answers the last
 * page; no items is one empty page. size must be >= 1. */
void tk_paginate(size_t total, int64_t page, int64_t size, tk_page_t *out);

/* Makes c the current catalog unless a newer version is already current (or, with
 * even_if_older, whatever is current: Redis's version went back, see refresher.c);
 * consumes the caller's reference either way. Returns 1 when c was published. */
int tk_catalog_publish(tk_catalog_t *c, int even_if_older);
/* The current catalog as seen by the calling thread (NULL before the first publish). The
 * reference belongs to the cache: retain it to keep it past the current request. */
tk_catalog_t *tk_catalog_current(tk_catalog_cache_t *cache);
void tk_catalog_cache_dispose(tk_catalog_cache_t *cache);
uint64_t tk_catalog_current_version(void);

#endif
