/*
 * The waiting room over HTTP: joining (POST /events/queue/), polling (GET /events/queue/,
 * answered from this process's view of the room: no Redis, no malloc beyond the request
 * pool), the admin's settings and live figures (PUT/GET /admin/events/<id>/waiting-room),
 * and the gate POST /events/reservation/ passes through when the event's room is on.
 * Each route reads the request, asks engine/waitroom_api.h and renders its typed answer;
 * the Redis calls, the view and the signing stay in the engine.
 */
#include "engine/timefmt.h"
#include "engine/waitroom_api.h"
#include "http/auth.h"
#include "http/jsonr.h"
#include "http/query.h"
#include "http/respond.h"
#include "http/routes.h"

#include <errno.h>
#include <string.h>

#define UNAVAILABLE "The waiting room is unavailable right now; try again"

static void respond_no_event(h2o_req_t *req)
{
    tk_respond_error(req, 404, "Event does not exist", "There is no event with this id");
}

/* The body fields of an answer: status, then position and eta, or the admission. */
static void render_answer(tk_jsonw_t *w, tk_thread_t *thread, const tk_wr_answer_t *a)
{
    const tk_wr_verdict_t *v = &a->verdict;
    switch (v->status) {
    case TK_WR_WAITING:
        tk_jsonw_lit(w, "\"status\":\"waiting\",\"position\":");
        if (v->position > 0)
            tk_jsonw_int(w, v->position);
        else
            tk_jsonw_lit(w, "null");
        tk_jsonw_lit(w, ",\"eta_seconds\":");
        tk_jsonw_int(w, v->eta_s);
        break;
    case TK_WR_ADMITTED:
    case TK_WR_OPEN:
        tk_metrics_inc(&thread->metrics.wr_admissions);
        tk_jsonw_lit(w, "\"status\":\"admitted\",\"admission\":\"");
        tk_jsonw_raw(w, a->admission, a->admission_len);
        tk_jsonw_lit(w, "\",\"admitted_until\":");
        tk_jsonw_time(w, v->until_ms);
        break;
    case TK_WR_EXPIRED:
        tk_jsonw_lit(w, "\"status\":\"expired\"");
        break;
    }
}

typedef struct st_tk_room_op_t {
    tk_thread_t *thread;
} tk_room_op_t;

static void on_joined(const tk_wr_join_result_t *result, void *data)
{
    tk_async_t *op = data;
    tk_room_op_t *join = tk_async_data(op);
    h2o_req_t *req = tk_async_req(op);
    if (req == NULL) {
        /* the client went away; the view has the room's news all the same */
    } else if (result->outcome != TK_WR_OK) {
        tk_respond_unavailable(req, UNAVAILABLE);
    } else {
        tk_metrics_inc(&join->thread->metrics.wr_joins);
        tk_jsonw_t w;
        tk_jsonw_init(&w, &req->pool, 512);
        tk_jsonw_lit(&w, "{\"queue_id\":");
        if (result->queued) {
            tk_jsonw_lit(&w, "\"");
            tk_jsonw_raw(&w, result->queue_id, result->queue_id_len);
            tk_jsonw_lit(&w, "\",");
        } else {
            tk_jsonw_lit(&w, "null,");
        }
        render_answer(&w, join->thread, &result->answer);
        if (result->queued) {
            tk_jsonw_lit(&w, ",\"opens_at\":");
            tk_jsonw_time(&w, result->opens_at_ms);
        }
        tk_jsonw_lit(&w, "}");
        tk_respond_json(req, 201, &w);
    }
    tk_async_finish(op);
}

int tk_route_queue_join(h2o_req_t *req, tk_thread_t *thread)
{
    json_t *body = tk_jsonr_request_object(req);
    tk_wr_join_request_t request;
    if (body == NULL || tk_jsonr_require_uuid(req, body, "event_id", request.event_id) != 0)
        return 0;
    tk_async_t *op = tk_async_start(req, sizeof(tk_room_op_t));
    tk_room_op_t *join = tk_async_data(op);
    join->thread = thread;
    int rc = tk_waitroom_join(&thread->engine, &request, on_joined, op);
    if (rc != 0) {
        tk_async_finish(op);
        if (rc == -ENOENT)
            respond_no_event(req);
        else
            tk_respond_unavailable(req, UNAVAILABLE);
    }
    return 0;
}

int tk_route_queue_poll(h2o_req_t *req, tk_thread_t *thread)
{
    h2o_iovec_t id;
    int found = tk_query_get(tk_query_of(req), "queue_id", &req->pool, &id);
    if (found <= 0) {
        tk_respond_error(req, 400, "Missing queue_id", "Poll with the queue_id that POST /events/queue/ returned");
        return 0;
    }
    tk_metrics_inc(&thread->metrics.wr_polls);
    tk_wr_poll_result_t result;
    if (tk_waitroom_poll(&thread->engine, id.base, id.len, &result) != 0) {
        tk_respond_error(req, 403, "Invalid queue id", "This queue id was not issued by this server");
        return 0;
    }
    tk_jsonw_t w;
    tk_jsonw_init(&w, &req->pool, 256);
    tk_jsonw_lit(&w, "{");
    render_answer(&w, thread, &result.answer);
    tk_jsonw_lit(&w, "}");
    tk_respond_json(req, 200, &w);
    return 0;
}

/* ---- admin ------------------------------------------------------------------------- */

/* the event id of /admin/events/<id>/waiting-room; -1 when it is not a UUID */
static int admin_event_of(h2o_req_t *req, char *event)
{
    static const char prefix[] = "/admin/events/";
    h2o_iovec_t path = req->path_normalized;
    size_t plen = sizeof(prefix) - 1;
    if (path.len <= plen + TK_UUID_LEN || path.base[plen + TK_UUID_LEN] != '/')
        return -1;
    return tk_uuid_normalize(path.base + plen, TK_UUID_LEN, event);
}

static void on_room(const tk_wr_room_result_t *result, void *data)
{
    tk_async_t *op = data;
    h2o_req_t *req = tk_async_req(op);
    if (req == NULL) {
        /* the client went away */
    } else if (result->outcome != TK_WR_OK) {
        tk_respond_unavailable(req, UNAVAILABLE);
    } else {
        const tk_wr_settings_t *s = &result->settings;
        const tk_wr_figures_t *f = &result->figures;
        tk_jsonw_t w;
        tk_jsonw_init(&w, &req->pool, 512);
        tk_jsonw_lit(&w, "{\"event_id\":\"");
        tk_jsonw_raw(&w, result->event_id, TK_UUID_LEN);
        tk_jsonw_lit(&w, "\",\"enabled\":");
        if (s->enabled)
            tk_jsonw_lit(&w, "true");
        else
            tk_jsonw_lit(&w, "false");
        tk_jsonw_lit(&w, ",\"opens_at\":");
        if (result->has_room)
            tk_jsonw_time(&w, s->opens_at_ms);
        else
            tk_jsonw_lit(&w, "null");
        tk_jsonw_lit(&w, ",\"admit_per_minute\":");
        if (result->has_room)
            tk_jsonw_int(&w, s->per_minute);
        else
            tk_jsonw_lit(&w, "null");
        tk_jsonw_lit(&w, ",\"admission_seconds\":");
        tk_jsonw_int(&w, s->admission_s);
        tk_jsonw_lit(&w, ",\"waiting\":");
        tk_jsonw_int(&w, f->waiting);
        tk_jsonw_lit(&w, ",\"admitted\":");
        tk_jsonw_int(&w, f->admitted);
        tk_jsonw_lit(&w, ",\"next_position\":");
        tk_jsonw_int(&w, f->next_position);
        tk_jsonw_lit(&w, ",\"expected_wait_seconds\":");
        tk_jsonw_int(&w, f->expected_wait_s);
        tk_jsonw_lit(&w, ",\"opened\":");
        if (result->opened)
            tk_jsonw_lit(&w, "true}");
        else
            tk_jsonw_lit(&w, "false}");
        tk_respond_json(req, 200, &w);
    }
    tk_async_finish(op);
}

/* Reads the PUT body into settings; answers 400 and returns -1 when a value is bad. */
static int read_settings(h2o_req_t *req, json_t *body, tk_wr_settings_t *settings)
{
    json_t *enabled = json_object_get(body, "enabled"), *opens = json_object_get(body, "opens_at"),
           *rate = json_object_get(body, "admit_per_minute"), *adm = json_object_get(body, "admission_seconds");
    const char *why = NULL;
    memset(settings, 0, sizeof(*settings));
    if (!json_is_boolean(enabled))
        why = "enabled must be true or false";
    else if (!json_is_string(opens) ||
             tk_time_parse_rfc3339(json_string_value(opens), json_string_length(opens), &settings->opens_at_ms) != 0)
        why = "opens_at must be an RFC 3339 date-time, e.g. 2026-12-01T10:00:00Z";
    else if (!json_is_integer(rate) || json_integer_value(rate) < 1 || json_integer_value(rate) > TK_WR_MAX_RATE)
        why = "admit_per_minute must be a whole number from 1 to 1000000";
    else if (adm != NULL &&
             (!json_is_integer(adm) || json_integer_value(adm) < 30 || json_integer_value(adm) > TK_WR_MAX_ADMISSION_S))
        why = "admission_seconds must be a whole number from 30 to 86400";
    if (why != NULL) {
        tk_respond_error(req, 400, "Invalid waiting room", why);
        return -1;
    }
    settings->enabled = json_is_true(enabled);
    settings->per_minute = json_integer_value(rate);
    settings->admission_s = adm != NULL ? json_integer_value(adm) : TK_WR_DEFAULT_ADMISSION_S;
    return 0;
}

static int admin_room(h2o_req_t *req, tk_thread_t *thread, int put)
{
    tk_wr_settings_request_t request;
    if (tk_auth_admin(req, thread->config) != 0)
        return 0;
    /* an unknown event is a 404 before its body is read */
    tk_catalog_t *catalog = tk_catalog_current(&thread->engine.catalog);
    if (admin_event_of(req, request.event_id) != 0 || catalog == NULL || tk_catalog_find(catalog, request.event_id) == NULL) {
        respond_no_event(req);
        return 0;
    }
    if (put) {
        json_t *body = tk_jsonr_request_object(req);
        if (body == NULL || read_settings(req, body, &request.settings) != 0)
            return 0;
    }
    tk_async_t *op = tk_async_start(req, 0);
    int rc;
    if (put) {
        rc = tk_waitroom_settings_put(&thread->engine, &request, on_room, op);
    } else {
        tk_wr_room_query_t query;
        memcpy(query.event_id, request.event_id, sizeof(query.event_id));
        rc = tk_waitroom_settings_get(&thread->engine, &query, on_room, op);
    }
    if (rc != 0) {
        tk_async_finish(op);
        if (rc == -ENOENT)
            respond_no_event(req);
        else
            tk_respond_unavailable(req, UNAVAILABLE);
    }
    return 0;
}

int tk_route_admin_room_put(h2o_req_t *req, tk_thread_t *thread)
{
    return admin_room(req, thread, 1);
}

int tk_route_admin_room_get(h2o_req_t *req, tk_thread_t *thread)
{
    return admin_room(req, thread, 0);
}

/* ---- the reservation gate ---------------------------------------------------------- */

int tk_route_queue_gate(h2o_req_t *req, tk_thread_t *thread, const tk_event_t *ev, json_t *body, tk_wr_admission_t *adm)
{
    json_t *field = json_object_get(body, "admission");
    h2o_iovec_t token = h2o_iovec_init(NULL, 0);
    ssize_t header;
    if (json_is_string(field))
        token = h2o_iovec_init(json_string_value(field), json_string_length(field));
    else if ((header = h2o_find_header_by_str(&req->headers, H2O_STRLIT("admission"), -1)) != -1)
        token = req->headers.entries[header].value;
    int verdict = tk_waitroom_admit(&thread->engine, ev->id, token.base, token.len, adm);
    if (verdict == -EAGAIN) {
        tk_respond_unavailable(req, "Waiting rooms are not known yet; try again in a moment");
        return -1;
    }
    if (verdict != 0) {
        tk_metrics_inc(&thread->metrics.wr_refusals);
        tk_respond_error(req, 403, "Waiting room", "This event sells through a waiting room: join the queue first");
        return -1;
    }
    return 0;
}
