/*
 * The event-call plumbing: catalog lookup, snapshot reference, async guard.
 */
#include "http/event_call.h"
#include "http/respond.h"

typedef struct st_tk_event_call_t {
    tk_catalog_t *catalog; /* retained while Redis answers */
    const tk_event_t *event;
    tk_event_call_done done;
} tk_event_call_t;

static void on_reply(redisReply *reply, void *data)
{
    tk_async_t *op = data;
    tk_event_call_t *call = tk_async_data(op);
    call->done(tk_async_req(op), reply, call->event);
    tk_catalog_release(call->catalog);
    tk_async_finish(op);
}

void tk_event_call(h2o_req_t *req, tk_thread_t *thread, const char *event_id, tk_event_call_send send, tk_event_call_done done,
                   const char *unavailable)
{
    tk_catalog_t *catalog = tk_catalog_current(&thread->engine.catalog);
    const tk_event_t *ev = catalog != NULL ? tk_catalog_find(catalog, event_id) : NULL;
    if (ev == NULL) {
        tk_respond_error(req, 404, "Event does not exist", "There is no event with this id");
        return;
    }
    tk_async_t *op = tk_async_start(req, sizeof(tk_event_call_t));
    tk_event_call_t *call = tk_async_data(op);
    tk_catalog_retain(catalog);
    *call = (tk_event_call_t){.catalog = catalog, .event = ev, .done = done};
    if (send(thread->engine.redis, ev, on_reply, op) != 0) {
        tk_catalog_release(catalog);
        tk_async_finish(op);
        tk_respond_unavailable(req, unavailable);
    }
}
