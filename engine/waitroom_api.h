/*
 * The waiting room as http/ sees it: joining (one Redis round trip), polling (from this
 * process's view of the room, no Redis), the admin's settings and live figures (one round
 * trip each way), and the admission check a reservation passes. The engine owns the Redis
 * conversation, the decoding, the view's updates and the signing of queue ids and
 * admissions; a route gets a typed result and renders it. A result and everything it points
 * to is valid during the callback (or, for the synchronous calls, until the next call) only.
 *
 * The asynchronous calls follow libuv's rule: 0 means cb will run exactly once, on e's loop;
 * a negative error means it never will. -ENOENT: no event with that id in the loop's
 * catalog; -EAGAIN: Redis cannot be asked right now (the connection is down).
 */
#ifndef TK_WAITROOM_API_H
#define TK_WAITROOM_API_H

#include "engine/engine.h"
#include "engine/uuid.h"
#include "engine/waitroom.h"
#include "engine/waitroom_token.h"

#include <stddef.h>
#include <stdint.h>

typedef enum en_tk_wr_outcome_t {
    TK_WR_OK = 0,
    TK_WR_UNAVAILABLE, /* Redis failed, or answered something the engine does not understand */
} tk_wr_outcome_t;

/* What a buyer is told: the verdict and, when it admits (ADMITTED or OPEN), the signed
 * admission that lets its holder reserve until verdict.until_ms. */
typedef struct st_tk_wr_answer_t {
    tk_wr_verdict_t verdict;
    size_t admission_len; /* 0 unless the verdict admits */
    char admission[TK_WR_ADMISSION_MAX];
} tk_wr_answer_t;

/* ---- joining ---- */

typedef struct st_tk_wr_join_request_t {
    char event_id[TK_UUID_LEN + 1]; /* canonical lower-case uuid */
} tk_wr_join_request_t;

typedef struct st_tk_wr_join_result_t {
    tk_wr_outcome_t outcome;
    const char *event_id;
    int queued;          /* OK: 1 with a place in the queue; 0 when the room is off or absent (admitted at once) */
    size_t queue_id_len; /* queued: the signed queue id the buyer polls with */
    char queue_id[TK_WR_QUEUE_ID_MAX];
    int64_t opens_at_ms;   /* queued: the room's opening */
    tk_wr_answer_t answer; /* OK: what a poll would answer right now */
} tk_wr_join_result_t;

typedef void (*tk_wr_join_cb)(const tk_wr_join_result_t *result, void *data);

int tk_waitroom_join(tk_engine_t *e, const tk_wr_join_request_t *request, tk_wr_join_cb cb, void *data);

/* ---- polling ---- */

typedef struct st_tk_wr_poll_result_t {
    char event_id[TK_UUID_LEN + 1];
    int64_t ticket;
    tk_wr_answer_t answer;
} tk_wr_poll_result_t;

/* Synchronous and lock-free: no Redis, no malloc. 0 and out; -EINVAL when queue_id does not
 * verify (malformed, forged, or signed with another secret). */
int tk_waitroom_poll(tk_engine_t *e, const char *queue_id, size_t len, tk_wr_poll_result_t *out);

/* ---- the reservation gate ---- */

/* Whether a reservation for event_id may go ahead, by this process's view of its room.
 * 0 when the room is not on (adm zeroed, ticket 0) or when token (NULL: none given) is an
 * admission for event_id that has not run out (adm filled); -EPERM otherwise; -EAGAIN
 * while the process has not read the rooms yet (just started, or Redis unreachable since):
 * a queue is never skipped because this process does not know of it. */
int tk_waitroom_admit(tk_engine_t *e, const char *event_id, const char *token, size_t len, tk_wr_admission_t *adm);

/* ---- the admin's settings ---- */

typedef struct st_tk_wr_settings_t {
    int enabled;
    int64_t opens_at_ms;
    int64_t per_minute;  /* 1..TK_WR_MAX_RATE */
    int64_t admission_s; /* 30..TK_WR_MAX_ADMISSION_S */
} tk_wr_settings_t;

typedef struct st_tk_wr_room_query_t {
    char event_id[TK_UUID_LEN + 1];
} tk_wr_room_query_t;

typedef struct st_tk_wr_settings_request_t {
    char event_id[TK_UUID_LEN + 1];
    tk_wr_settings_t settings;
} tk_wr_settings_request_t;

typedef struct st_tk_wr_room_result_t {
    tk_wr_outcome_t outcome;
    const char *event_id;
    int has_room;              /* OK: 0 when the event never had a room (settings: off, admission_s the default) */
    tk_wr_settings_t settings; /* OK: as stored */
    int opened;                /* OK: the opening happened (the early joiners are shuffled) */
    tk_wr_figures_t figures;   /* OK: live figures at the answer (next_position 1 without a room) */
} tk_wr_room_result_t;

typedef void (*tk_wr_room_cb)(const tk_wr_room_result_t *result, void *data);

/* the room's settings and live figures, fresh from Redis */
int tk_waitroom_settings_get(tk_engine_t *e, const tk_wr_room_query_t *query, tk_wr_room_cb cb, void *data);
/* stores request->settings (the caller validated them), then answers as _get does */
int tk_waitroom_settings_put(tk_engine_t *e, const tk_wr_settings_request_t *request, tk_wr_room_cb cb, void *data);

#endif
