/*
 * The waiting-room calls http/ makes (waitroom_api.h): each asynchronous one is one
 * FCALL on the loop's connection (engine/waitroom_view.c spells it), decoded here into a
 * typed result; a fresh state goes into this process's view before the callback runs, so
 * the next poll already sees it. Polls and the reservation gate read the view only. Queue
 * ids and admissions are signed here, so a route never handles the secret.
 */
#include "engine/waitroom_api.h"
#include "engine/timefmt.h"
#include "engine/waitroom_view.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

typedef struct st_tk_wr_call_t {
    const tk_config_t *config;
    char event[TK_UUID_LEN + 1];
    union {
        tk_wr_join_cb join;
        tk_wr_room_cb room;
    } cb;
    void *data;
} tk_wr_call_t;

/* A call for event, when the loop's catalog knows it; NULL otherwise. */
static tk_wr_call_t *start_call(tk_engine_t *e, const char *event)
{
    tk_catalog_t *catalog = tk_engine_catalog(e);
    if (catalog == NULL || tk_catalog_find(catalog, event) == NULL)
        return NULL;
    tk_wr_call_t *call = h2o_mem_alloc(sizeof(*call));
    memset(call, 0, sizeof(*call));
    call->config = e->config;
    memcpy(call->event, event, TK_UUID_LEN);
    return call;
}

/* The answer for a verdict on ticket of event: the verdict, and the admission it earns. */
static void answer_of(const tk_config_t *config, const char *event, int64_t ticket, const tk_wr_verdict_t *v, tk_wr_answer_t *out)
{
    out->verdict = *v;
    out->admission_len = 0;
    out->admission[0] = '\0';
    if (v->status != TK_WR_ADMITTED && v->status != TK_WR_OPEN)
        return;
    tk_wr_admission_t adm = {.ticket = v->status == TK_WR_OPEN ? 0 : ticket, .until_ms = v->until_ms};
    memcpy(adm.event, event, TK_UUID_LEN);
    out->admission_len = tk_wr_admission_sign(config, &adm, out->admission);
}

/* ---- joining ------------------------------------------------------------------------ */

static void on_joined(redisReply *reply, void *data)
{
    tk_wr_call_t *call = data;
    tk_wr_join_result_t result = {.outcome = TK_WR_UNAVAILABLE, .event_id = call->event};
    int64_t ticket = 0, now = tk_time_now_ms();
    tk_wr_state_t st;
    tk_wr_verdict_t v;
    switch (tk_wr_parse_join(reply, &ticket, &st)) {
    case TK_WR_JOIN_FAILED:
        break;
    case TK_WR_JOIN_OFF:
        result.outcome = TK_WR_OK;
        v = (tk_wr_verdict_t){.status = TK_WR_OPEN, .admitted_ms = now, .until_ms = now + st.admission_s * 1000};
        answer_of(call->config, call->event, 0, &v, &result.answer);
        break;
    case TK_WR_JOIN_QUEUED: {
        tk_wr_room_publish(call->event, &st);
        result.outcome = TK_WR_OK;
        result.queued = 1;
        result.opens_at_ms = st.opens_at_ms;
        result.queue_id_len = tk_wr_queue_id_sign(call->config, call->event, ticket, now, result.queue_id);
        /* the answer a poll would give: the view's shuffle is the one thing a join reply lacks */
        const uint32_t *place_of = NULL;
        tk_wr_room_t *room = tk_wr_room_find(call->event);
        if (room != NULL) {
            tk_wr_state_t seen;
            tk_wr_room_read(room, &seen, &place_of);
        }
        tk_wr_evaluate(&st, place_of, ticket, now, now, &v);
        answer_of(call->config, call->event, ticket, &v, &result.answer);
        break;
    }
    }
    call->cb.join(&result, call->data);
    free(call);
}

int tk_waitroom_join(tk_engine_t *e, const tk_wr_join_request_t *request, tk_wr_join_cb cb, void *data)
{
    tk_wr_call_t *call = start_call(e, request->event_id);
    if (call == NULL)
        return -ENOENT;
    call->cb.join = cb;
    call->data = data;
    if (tk_wr_call_join(e->redis, call->event, on_joined, call) != 0) {
        free(call);
        return -EAGAIN;
    }
    return 0;
}

/* ---- polling and the gate ----------------------------------------------------------- */

int tk_waitroom_poll(tk_engine_t *e, const char *queue_id, size_t len, tk_wr_poll_result_t *out)
{
    int64_t joined_ms;
    if (tk_wr_queue_id_verify(e->config, queue_id, len, out->event_id, &out->ticket, &joined_ms) != 0)
        return -EINVAL;
    tk_wr_verdict_t v = {.status = TK_WR_WAITING};
    tk_wr_room_t *room = tk_wr_room_find(out->event_id);
    if (room != NULL) {
        tk_wr_state_t st;
        const uint32_t *place_of;
        tk_wr_room_read(room, &st, &place_of);
        tk_wr_evaluate(&st, place_of, out->ticket, joined_ms, tk_time_now_ms(), &v);
    }
    answer_of(e->config, out->event_id, out->ticket, &v, &out->answer);
    return 0;
}

int tk_waitroom_admit(tk_engine_t *e, const char *event_id, const char *token, size_t len, tk_wr_admission_t *adm)
{
    memset(adm, 0, sizeof(*adm));
    tk_wr_room_t *room = tk_wr_room_find(event_id);
    if (room == NULL)
        return tk_wr_rooms_known() ? 0 : -EAGAIN;
    tk_wr_state_t st;
    const uint32_t *place_of;
    tk_wr_room_read(room, &st, &place_of);
    if (!st.enabled)
        return 0;
    if (token == NULL || tk_wr_admission_verify(e->config, token, len, adm) != 0 ||
        memcmp(adm->event, event_id, TK_UUID_LEN) != 0 || adm->ticket < 1 || adm->until_ms <= tk_time_now_ms())
        return -EPERM;
    return 0;
}

/* ---- the admin's settings ----------------------------------------------------------- */

static void on_room_state(redisReply *reply, void *data)
{
    tk_wr_call_t *call = data;
    tk_wr_room_result_t result = {.outcome = TK_WR_UNAVAILABLE, .event_id = call->event};
    tk_wr_state_t st;
    int has_room = tk_wr_parse_state(reply, &st);
    if (has_room >= 0) {
        result.outcome = TK_WR_OK;
        result.has_room = has_room;
        result.settings.admission_s = TK_WR_DEFAULT_ADMISSION_S;
        result.figures.next_position = 1;
    }
    if (has_room == 1) {
        tk_wr_room_publish(call->event, &st);
        result.settings = (tk_wr_settings_t){
            .enabled = st.enabled != 0, .opens_at_ms = st.opens_at_ms, .per_minute = st.per_minute, .admission_s = st.admission_s};
        result.opened = st.pre >= 0;
        tk_wr_figures(&st, tk_time_now_ms(), &result.figures);
    }
    call->cb.room(&result, call->data);
    free(call);
}

int tk_waitroom_settings_get(tk_engine_t *e, const tk_wr_room_query_t *query, tk_wr_room_cb cb, void *data)
{
    tk_wr_call_t *call = start_call(e, query->event_id);
    if (call == NULL)
        return -ENOENT;
    call->cb.room = cb;
    call->data = data;
    if (tk_wr_call_sync(e->redis, call->event, on_room_state, call) != 0) {
        free(call);
        return -EAGAIN;
    }
    return 0;
}

int tk_waitroom_settings_put(tk_engine_t *e, const tk_wr_settings_request_t *request, tk_wr_room_cb cb, void *data)
{
    tk_wr_call_t *call = start_call(e, request->event_id);
    if (call == NULL)
        return -ENOENT;
    call->cb.room = cb;
    call->data = data;
    tk_wr_state_t settings = {.enabled = request->settings.enabled != 0,
                              .opens_at_ms = request->settings.opens_at_ms,
                              .per_minute = request->settings.per_minute,
                              .admission_s = request->settings.admission_s};
    if (tk_wr_call_set(e->redis, call->event, &settings, on_room_state, call) != 0) {
        free(call);
        return -EAGAIN;
    }
    return 0;
}
