/*
 * Catalog snapshots: building, lookup, pagination and process-wide publication.
 * All strings of a snapshot live in heap blocks owned by it; nothing is shared with
 * other snapshots, so releasing one never touches another.
 */
#include "engine/catalog.h"
#include "engine/jsonw.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static pthread_mutex_t published_mutex = PTHREAD_MUTEX_INITIALIZER;
static tk_catalog_t *published;
static uint64_t published_generation; /* bumped under the mutex, read atomically */

tk_catalog_t *tk_catalog_new(uint64_t version)
{
    tk_catalog_t *c = h2o_mem_alloc(sizeof(*c));
    *c = (tk_catalog_t){.version = version, .refcnt = 1};
    return c;
}

static h2o_iovec_t dup_string(const char *s, size_t len)
{
    char *p = h2o_mem_alloc(len + 1);
    memcpy(p, s, len);
    p[len] = '\0';
    return h2o_iovec_init(p, len);
}

tk_event_t *tk_catalog_add_event(tk_catalog_t *c, const char *id, const char *name, size_t name_len, int64_t date_ms)
{
    if (c->nevents == c->capacity) {
        c->capacity = c->capacity == 0 ? 16 : c->capacity * 2;
        c->events = h2o_mem_realloc(c->events, c->capacity * sizeof(*c->events));
    }
    tk_event_t *ev = c->events + c->nevents++;
    memset(ev, 0, sizeof(*ev));
    snprintf(ev->id, sizeof(ev->id), "%s", id);
    ev->name = dup_string(name, name_len);
    ev->date_ms = date_ms;
    return ev;
}

void tk_catalog_add_type(tk_catalog_t *c, const char *id, const char *name, size_t name_len, int64_t price_minor, int64_t amount)
{
    tk_event_t *ev = c->events + c->nevents - 1;
    ev->types = h2o_mem_realloc(ev->types, (ev->ntypes + 1) * sizeof(*ev->types));
    tk_ticket_type_t *t = ev->types + ev->ntypes++;
    snprintf(t->id, sizeof(t->id), "%s", id);
    t->name = dup_string(name, name_len);
    t->price_minor = price_minor;
    t->amount = amount;
}

static int compare_by_date(const void *a, const void *b)
{
    const tk_event_t *x = a, *y = b;
    if (x->date_ms != y->date_ms)
        return x->date_ms < y->date_ms ? -1 : 1;
    return strcmp(x->id, y->id);
}

static int compare_by_id(const void *a, const void *b)
{
    return strcmp((*(tk_event_t *const *)a)->id, (*(tk_event_t *const *)b)->id);
}

void tk_catalog_seal(tk_catalog_t *c)
{
    if (c->nevents != 0)
        qsort(c->events, c->nevents, sizeof(*c->events), compare_by_date);
    c->by_id = h2o_mem_alloc(sizeof(*c->by_id) * (c->nevents + 1));
    for (size_t i = 0; i < c->nevents; ++i) {
        tk_event_t *ev = c->events + i;
        c->by_id[i] = ev;
        tk_jsonw_t w;
        tk_jsonw_init(&w, NULL, 128 + ev->name.len * 6);
        tk_jsonw_lit(&w, "{\"id\":\"");
        tk_jsonw_raw(&w, ev->id, TK_UUID_LEN);
        tk_jsonw_lit(&w, "\",\"name\":");
        tk_jsonw_str(&w, ev->name.base, ev->name.len);
        tk_jsonw_lit(&w, ",\"date\":");
        tk_jsonw_time(&w, ev->date_ms);
        tk_jsonw_lit(&w, "}");
        ev->json = tk_jsonw_result(&w);
    }
    if (c->nevents != 0)
        qsort(c->by_id, c->nevents, sizeof(*c->by_id), compare_by_id);
    /* events sorted by id are sorted by shard too: distinct shards are neighbours */
    c->shards = h2o_mem_alloc(sizeof(*c->shards) * (c->nevents + 1));
    for (size_t i = 0; i < c->nevents; ++i) {
        if (c->nshards != 0 && memcmp(c->shards[c->nshards - 1], c->by_id[i]->id, TK_SHARD_LEN) == 0)
            continue;
        memcpy(c->shards[c->nshards], c->by_id[i]->id, TK_SHARD_LEN);
        c->shards[c->nshards++][TK_SHARD_LEN] = '\0';
    }
}

void tk_catalog_retain(tk_catalog_t *c)
{
    __atomic_add_fetch(&c->refcnt, 1, __ATOMIC_RELAXED);
}

void tk_catalog_release(tk_catalog_t *c)
{
    if (c == NULL || __atomic_sub_fetch(&c->refcnt, 1, __ATOMIC_ACQ_REL) != 0)
        return;
    for (size_t i = 0; i < c->nevents; ++i) {
        tk_event_t *ev = c->events + i;
        for (size_t j = 0; j < ev->ntypes; ++j)
            free(ev->types[j].name.base);
        free(ev->types);
        free(ev->name.base);
        free(ev->json.base);
    }
    free(c->events);
    free(c->by_id);
    free(c->shards);
    free(c);
}

const tk_event_t *tk_catalog_find(const tk_catalog_t *c, const char *id)
{
    size_t lo = 0, hi = c->nevents;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int cmp = strcmp(c->by_id[mid]->id, id);
        if (cmp == 0)
            return c->by_id[mid];
        if (cmp < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

const tk_ticket_type_t *tk_event_find_type(const tk_event_t *ev, const char *name, size_t len)
{
    for (size_t i = 0; i < ev->ntypes; ++i) {
        if (h2o_memis(ev->types[i].name.base, ev->types[i].name.len, name, len))
            return ev->types + i;
    }
    return NULL;
}

size_t tk_catalog_first_upcoming(const tk_catalog_t *c, int64_t now_ms)
{
    size_t lo = 0, hi = c->nevents;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (c->events[mid].date_ms < now_ms)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

void tk_paginate(size_t total, int64_t page, int64_t size, tk_page_t *out)
{
    uint64_t usize = (uint64_t)size;
    out->last_page = total == 0 ? 1 : (size_t)((total + usize - 1) / usize);
    out->page = page < 1 || (uint64_t)page > out->last_page ? out->last_page : (size_t)page;
    out->first = (out->page - 1) * (size_t)usize;
    if (out->first > total)
        out->first = total;
    out->count = total - out->first < usize ? total - out->first : (size_t)usize;
}

int tk_catalog_publish(tk_catalog_t *c, int even_if_older)
{
    tk_catalog_t *old = NULL;
    int published_now = 0;
    pthread_mutex_lock(&published_mutex);
    if (published == NULL || c->version >= published->version || even_if_older) {
        old = published;
        published = c;
        __atomic_add_fetch(&published_generation, 1, __ATOMIC_RELEASE);
        published_now = 1;
    } else {
        old = c;
    }
    pthread_mutex_unlock(&published_mutex);
    tk_catalog_release(old);
    return published_now;
}

tk_catalog_t *tk_catalog_current(tk_catalog_cache_t *cache)
{
    uint64_t generation = __atomic_load_n(&published_generation, __ATOMIC_ACQUIRE);
    if (generation != cache->generation || cache->snapshot == NULL) {
        pthread_mutex_lock(&published_mutex);
        tk_catalog_t *fresh = published;
        if (fresh != NULL)
            tk_catalog_retain(fresh);
        cache->generation = published_generation;
        pthread_mutex_unlock(&published_mutex);
        tk_catalog_release(cache->snapshot);
        cache->snapshot = fresh;
    }
    return cache->snapshot;
}

void tk_catalog_cache_dispose(tk_catalog_cache_t *cache)
{
    tk_catalog_release(cache->snapshot);
    cache->snapshot = NULL;
}

uint64_t tk_catalog_current_version(void)
{
    pthread_mutex_lock(&published_mutex);
    uint64_t v = published != NULL ? published->version : 0;
    pthread_mutex_unlock(&published_mutex);
    return v;
}
