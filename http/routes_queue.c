/*
 * The waiting room over HTTP: joining (POST /events/queue/, one Redis round trip),
 * polling (GET /events/queue/, answered from this process's view of the room: no Redis,
 * no malloc beyond the request pool), the admin's settings and live figures
 * (PUT/GET /admin/events/<id>/waiting-room), and the gate POST /events/reservation/ passes
 * through when the event's room is on.
 */
#include "engine/timefmt.h"
#include "engine/waitroom.h"
#include "engine/waitroom_token.h"
#include "engine/waitroom_view.h"
#include "http/auth.h"
#include "http/jsonr.h"
#include "http/query.h"
#include "http/respond.h"
#include "http/routes.h"

#include <string.h>

typedef struct st_tk_room_op_t {
    tk_thread_t *thread;
    char event[TK_UUID_LEN + 1];
} tk_room_op_t;

static void respond_no_event(h2o_req_t *req)
{
    tk_respond_error(req, 404, "Event does not exist", "There is no event with this id");
}

/* "admission": "<token>", "admitted_until": "<instant>" for a verdict that admits */
static void render_admission(tk_jsonw_t *w, const tk_config_t *config, const char *event, int64_t ticket, int64_t until_ms)
{
    tk_wr_admission_t adm = {.ticket = ticket, .until_ms = until_ms};
    char token[TK_WR_ADMISSION_MAX];
    memcpy(adm.event, event, sizeof(adm.event));
    size_t len = tk_wr_admission_sign(config, &adm, token);
    tk_jsonw_lit(w, "\"admission\":\"");
    tk_jsonw_raw(w, token, len);
    tk_jsonw_lit(w, "\",\"admitted_until\":");
    tk_jsonw_time(w, until_ms);
}

/* The body fields of a verdict: status, then position and eta, or the admission. */
static void render_verdict(tk_jsonw_t *w, tk_thread_t *thread, const char *event, int64_t ticket, const tk_wr_verdict_t *v)
{
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
        tk_jsonw_lit(w, "\"status\":\"admitted\",");
        render_admission(w, thread->config, event, v->status == TK_WR_OPEN ? 0 : ticket, v->until_ms);
        break;
    case TK_WR_EXPIRED:
        tk_jsonw_lit(w, "\"status\":\"expired\"");
        break;
    }
}

static void on_joined(redisReply *reply, void *data)
{
    tk_async_t *op = data;
    tk_room_op_t *join = tk_async_data(op);
    h2o_req_t *req = tk_async_req(op);
    int64_t ticket = 0, now = tk_time_now_ms();
    tk_wr_state_t st;
    tk_wr_join_outcome_t outcome = tk_wr_parse_join(reply, &ticket, &st);
    if (outcome == TK_WR_JOIN_QUEUED)
        tk_wr_room_publish(join->event, &st);
    if (req == NULL)
        goto Exit;
    if (outcome == TK_WR_JOIN_FAILED) {
        tk_respond_unavailable(req, "The waiting room is unavailable right now; try again");
        goto Exit;
    }
    tk_metrics_inc(&join->thread->metrics.wr_joins);
    tk_jsonw_t w;
    tk_jsonw_init(&w, &req->pool, 512);
    tk_jsonw_lit(&w, "{\"queue_id\":");
    tk_wr_verdict_t v;
    if (outcome == TK_WR_JOIN_OFF) {
        v = (tk_wr_verdict_t){.status = TK_WR_OPEN, .until_ms = now + st.admission_s * 1000};
        tk_jsonw_lit(&w, "null,");
        render_verdict(&w, join->thread, join->event, 0, &v);
        tk_jsonw_lit(&w, "}");
        tk_respond_json(req, 201, &w);
        goto Exit;
    }
    char queue_id[TK_WR_QUEUE_ID_MAX];
    size_t len = tk_wr_queue_id_sign(join->thread->config, join->event, ticket, now, queue_id);
    tk_jsonw_lit(&w, "\"");
    tk_jsonw_raw(&w, queue_id, len);
    tk_jsonw_lit(&w, "\",");
    /* the answer a poll would give: the view's shuffle is the one place a fresh join reply lacks */
    const uint32_t *place_of = NULL;
    tk_wr_room_t *room = tk_wr_room_find(join->event);
    if (room != NULL) {
        tk_wr_state_t seen;
        tk_wr_room_read(room, &seen, &place_of);
    }
    tk_wr_evaluate(&st, place_of, ticket, now, now, &v);
    render_verdict(&w, join->thread, join->event, ticket, &v);
    tk_jsonw_lit(&w, ",\"opens_at\":");
    tk_jsonw_time(&w, st.opens_at_ms);
    tk_jsonw_lit(&w, "}");
    tk_respond_json(req, 201, &w);
Exit:
    tk_async_finish(op);
}

int tk_route_queue_join(h2o_req_t *req, tk_thread_t *thread)
{
    json_t *body = tk_jsonr_request_object(req);
    char event[TK_UUID_LEN + 1];
    if (body == NULL || tk_jsonr_require_uuid(req, body, "event_id", event) != 0)
        return 0;
    tk_catalog_t *catalog = tk_catalog_current(&thread->engine.catalog);
    if (catalog == NULL || tk_catalog_find(catalog, event) == NULL) {
        respond_no_event(req);
        return 0;
    }
    tk_async_t *op = tk_async_start(req, sizeof(tk_room_op_t));
    tk_room_op_t *join = tk_async_data(op);
    join->thread = thread;
    memcpy(join->event, event, sizeof(join->event));
    if (tk_wr_call_join(thread->engine.redis, join->event, on_joined, op) != 0) {
        tk_async_finish(op);
        tk_respond_unavailable(req, "The waiting room is unavailable right now; try again");
    }
    return 0;
}

int tk_route_queue_poll(h2o_req_t *req, tk_thread_t *thread)
{
    h2o_iovec_t id;
    char event[TK_UUID_LEN + 1];
    int64_t ticket, joined_ms;
    int found = tk_query_get(tk_query_of(req), "queue_id", &req->pool, &id);
    if (found <= 0) {
        tk_respond_error(req, 400, "Missing queue_id", "Poll with the queue_id that POST /events/queue/ returned");
        return 0;
    }
    tk_metrics_inc(&thread->metrics.wr_polls);
    if (tk_wr_queue_id_verify(thread->config, id.base, id.len, event, &ticket, &joined_ms) != 0) {
        tk_respond_error(req, 403, "Invalid queue id", "This queue id was not issued by this server");
        return 0;
    }
    tk_wr_verdict_t v = {.status = TK_WR_WAITING};
    tk_wr_room_t *room = tk_wr_room_find(event);
    if (room != NULL) {
        tk_wr_state_t st;
        const uint32_t *place_of;
        tk_wr_room_read(room, &st, &place_of);
        tk_wr_evaluate(&st, place_of, ticket, joined_ms, tk_time_now_ms(), &v);
    }
    tk_jsonw_t w;
    tk_jsonw_init(&w, &req->pool, 256);
    tk_jsonw_lit(&w, "{");
    render_verdict(&w, thread, event, ticket, &v);
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
    if (path.len < plen + TK_UUID_LEN || path.base[plen + TK_UUID_LEN] != '/')
        return -1;
    return tk_uuid_normalize(path.base + plen, TK_UUID_LEN, event);
}

static void render_settings(h2o_req_t *req, const char *event, const tk_wr_state_t *st, int has_room)
{
    tk_wr_figures_t f = {0};
    if (has_room)
        tk_wr_figures(st, tk_time_now_ms(), &f);
    tk_jsonw_t w;
    tk_jsonw_init(&w, &req->pool, 512);
    tk_jsonw_lit(&w, "{\"event_id\":\"");
    tk_jsonw_raw(&w, event, TK_UUID_LEN);
    tk_jsonw_lit(&w, "\",\"enabled\":");
    if (has_room && st->enabled)
        tk_jsonw_lit(&w, "true");
    else
        tk_jsonw_lit(&w, "false");
    tk_jsonw_lit(&w, ",\"opens_at\":");
    if (has_room)
        tk_jsonw_time(&w, st->opens_at_ms);
    else
        tk_jsonw_lit(&w, "null");
    tk_jsonw_lit(&w, ",\"admit_per_minute\":");
    if (has_room)
        tk_jsonw_int(&w, st->per_minute);
    else
        tk_jsonw_lit(&w, "null");
    tk_jsonw_lit(&w, ",\"admission_seconds\":");
    tk_jsonw_int(&w, has_room ? st->admission_s : TK_WR_DEFAULT_ADMISSION_S);
    tk_jsonw_lit(&w, ",\"waiting\":");
    tk_jsonw_int(&w, f.waiting);
    tk_jsonw_lit(&w, ",\"admitted\":");
    tk_jsonw_int(&w, f.admitted);
    tk_jsonw_lit(&w, ",\"next_position\":");
    tk_jsonw_int(&w, has_room ? f.next_position : 1);
    tk_jsonw_lit(&w, ",\"expected_wait_seconds\":");
    tk_jsonw_int(&w, f.expected_wait_s);
    tk_jsonw_lit(&w, ",\"opened\":");
    if (has_room && st->pre >= 0)
        tk_jsonw_lit(&w, "true}");
    else
        tk_jsonw_lit(&w, "false}");
    tk_respond_json(req, 200, &w);
}

static void on_room_state(redisReply *reply, void *data)
{
    tk_async_t *op = data;
    tk_room_op_t *call = tk_async_data(op);
    h2o_req_t *req = tk_async_req(op);
    tk_wr_state_t st;
    int has_room = tk_wr_parse_state(reply, &st);
    if (has_room == 1)
        tk_wr_room_publish(call->event, &st);
    if (req != NULL) {
        if (has_room < 0)
            tk_respond_unavailable(req, "The waiting room is unavailable right now; try again");
        else
            render_settings(req, call->event, &st, has_room);
    }
    tk_async_finish(op);
}

/* Reads the PUT body into settings; answers 400 and returns -1 when a value is bad. */
static int read_settings(h2o_req_t *req, json_t *body, tk_wr_state_t *settings)
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
    char event[TK_UUID_LEN + 1];
    if (tk_auth_admin(req, thread->config) != 0)
        return 0;
    tk_catalog_t *catalog = tk_catalog_current(&thread->engine.catalog);
    if (admin_event_of(req, event) != 0 || catalog == NULL || tk_catalog_find(catalog, event) == NULL) {
        respond_no_event(req);
        return 0;
    }
    tk_wr_state_t settings;
    if (put) {
        json_t *body = tk_jsonr_request_object(req);
        if (body == NULL || read_settings(req, body, &settings) != 0)
            return 0;
    }
    tk_async_t *op = tk_async_start(req, sizeof(tk_room_op_t));
    tk_room_op_t *call = tk_async_data(op);
    call->thread = thread;
    memcpy(call->event, event, sizeof(call->event));
    int rc = put ? tk_wr_call_set(thread->engine.redis, call->event, &settings, on_room_state, op)
                 : tk_wr_call_sync(thread->engine.redis, call->event, on_room_state, op);
    if (rc != 0) {
        tk_async_finish(op);
        tk_respond_unavailable(req, "The waiting room is unavailable right now; try again");
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
    memset(adm, 0, sizeof(*adm));
    tk_wr_room_t *room = tk_wr_room_find(ev->id);
    tk_wr_state_t st;
    const uint32_t *place_of;
    if (room == NULL)
        return 0;
    tk_wr_room_read(room, &st, &place_of);
    if (!st.enabled)
        return 0;
    json_t *field = json_object_get(body, "admission");
    h2o_iovec_t token = h2o_iovec_init(NULL, 0);
    ssize_t header;
    if (json_is_string(field))
        token = h2o_iovec_init(json_string_value(field), json_string_length(field));
    else if ((header = h2o_find_header_by_str(&req->headers, H2O_STRLIT("admission"), -1)) != -1)
        token = req->headers.entries[header].value;
    if (token.base == NULL || tk_wr_admission_verify(thread->config, token.base, token.len, adm) != 0 ||
        memcmp(adm->event, ev->id, TK_UUID_LEN) != 0 || adm->ticket < 1 || adm->until_ms <= tk_time_now_ms()) {
        tk_metrics_inc(&thread->metrics.wr_refusals);
        tk_respond_error(req, 403, "Waiting room", "This event sells through a waiting room: join the queue first");
        return -1;
    }
    return 0;
}
