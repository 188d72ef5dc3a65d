/*
 * Event creation as a worker job: the draft (one event, fresh ids) is built on the loop
 * thread from the request, written on a worker, and handed back to the loop's callback.
 * Once PostgreSQL committed, the event exists and the answer is 201 even when Redis then
 * refuses its inventory or the version increment: the refresher thread announces the
 * change as soon as Redis takes it (tk_catalog_change_owed), and that refresh initialises
 * the inventory. Answering 503 there would invite the admin to create the event twice.
 */
#include "engine/admin.h"
#include "engine/inventory.h"
#include "engine/log.h"
#include "engine/pg.h"
#include "engine/refresher.h"
#include "engine/worker.h"

#include <errno.h>

typedef struct st_tk_create_job_t {
    tk_job_t super;
    tk_catalog_t *draft; /* holds the one new event; on the heap, as a worker reads it */
    tk_create_outcome_t outcome;
    tk_create_cb cb;
    void *data;
} tk_create_job_t;

static tk_catalog_t *build_draft(const tk_new_event_t *request)
{
    tk_catalog_t *draft = tk_catalog_new(0);
    char id[TK_UUID_LEN + 1];
    tk_uuid_v4(id);
    tk_catalog_add_event(draft, id, request->name.base, request->name.len, request->date_ms);
    for (size_t i = 0; i < request->ntypes; ++i) {
        const tk_new_ticket_type_t *t = request->types + i;
        tk_uuid_v4(id);
        tk_catalog_add_type(draft, id, t->name.base, t->name.len, t->price_minor, t->amount);
    }
    tk_catalog_seal(draft);
    return draft;
}

typedef struct st_tk_insert_t {
    const tk_event_t *event;
    char err[512];
} tk_insert_t;

static int insert_event(PGconn *pg, void *arg)
{
    tk_insert_t *insert = arg;
    return tk_pg_insert_event(pg, insert->event, insert->err, sizeof(insert->err));
}

static void run_create(tk_job_t *job, tk_worker_conn_t *conn)
{
    tk_create_job_t *create = (tk_create_job_t *)job;
    const tk_event_t *ev = create->draft->events;
    tk_insert_t insert = {.event = ev};
    char err[512];
    create->outcome = TK_CREATE_UNAVAILABLE;
    if (tk_worker_run_pg(conn, insert_event, &insert, err, sizeof(err)) != 0) {
        tk_log_error("admin", "creating event %s failed: %s", ev->id, insert.err[0] != '\0' ? insert.err : err);
        return;
    }
    create->outcome = TK_CREATE_OK;
    if (tk_inventory_init_events(conn->redis, conn->pg, ev, 1, err, sizeof(err)) != 0 ||
        tk_catalog_changed(conn->pg, conn->redis, err, sizeof(err)) != 0) {
        tk_log_error("admin", "event %s saved; it goes on sale once Redis takes it: %s", ev->id, err);
        tk_catalog_change_owed();
        return;
    }
    tk_log_info("admin", "event %s created with %zu ticket types", ev->id, ev->ntypes);
}

static void on_create_done(tk_job_t *job)
{
    tk_create_job_t *create = (tk_create_job_t *)job;
    tk_create_result_t result = {.outcome = create->outcome, .event = create->draft->events};
    create->cb(&result, create->data);
    tk_catalog_release(create->draft);
    free(create);
}

int tk_admin_create_event(tk_engine_t *e, const tk_new_event_t *request, tk_create_cb cb, void *data)
{
    tk_create_job_t *create = h2o_mem_alloc(sizeof(*create));
    *create = (tk_create_job_t){.super = {.origin = &e->jobs, .run = run_create, .done = on_create_done},
                                .draft = build_draft(request),
                                .cb = cb,
                                .data = data};
    if (tk_workers_submit(&create->super) != 0) {
        tk_catalog_release(create->draft);
        free(create);
        return -EAGAIN;
    }
    return 0;
}
