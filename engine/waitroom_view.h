/*
 * Each process's view of the waiting rooms, and the Redis calls behind it. A refresher
 * thread (never a loop thread) asks Redis every 150 ms for every room's state (one
 * pipelined round of FCALL tk_wr_sync, which also opens rooms that are due) and
 * publishes it here; once a room has opened it computes the opening shuffle from the
 * seed Redis kept. Loop threads read a room without locks (a sequence counter over
 * plain words) and without allocating, so a poll costs no Redis round trip and no malloc.
 * Joins and admin calls go to Redis from the loop threads through tk_wr_call_*.
 */
#ifndef TK_WAITROOM_VIEW_H
#define TK_WAITROOM_VIEW_H

#include "engine/config.h"
#include "engine/redis_conn.h"
#include "engine/waitroom.h"

#include <hiredis/hiredis.h>

typedef struct st_tk_wr_room_t tk_wr_room_t;

/* the room of event as this process knows it; NULL when it knows none (lock-free) */
tk_wr_room_t *tk_wr_room_find(const char *event);
/* Whether every room in Redis's index has been read at least once since the process
 * started: until then a room missing from the view may just not have been read yet. The
 * refresher marks it after its first complete round (tests that publish rooms by hand
 * mark it themselves); tk_wr_rooms_await waits up to timeout_ms for it (1 when known). */
int tk_wr_rooms_known(void);
void tk_wr_rooms_mark_known(void);
int tk_wr_rooms_await(int timeout_ms);
/* a consistent copy of the room's state, and its opening shuffle (NULL until computed) */
void tk_wr_room_read(tk_wr_room_t *room, tk_wr_state_t *st, const uint32_t **place_of);
/* Publishes a state fresh from Redis unless the view already holds a newer one. Safe on
 * a loop thread: it never computes the shuffle (the refresher does). */
void tk_wr_room_publish(const char *event, const tk_wr_state_t *st);

int tk_wr_refresher_start(const tk_config_t *config);
void tk_wr_refresher_stop(void);

/* FCALL tk_wr_join: a ticket for event (or "off"); one round trip */
int tk_wr_call_join(tk_redis_t *r, const char *event, tk_redis_cb cb, void *data);
/* FCALL tk_wr_sync: the room's state right now */
int tk_wr_call_sync(tk_redis_t *r, const char *event, tk_redis_cb cb, void *data);
/* Adds event to the index of rooms, then FCALL tk_wr_set with the settings of st
 * (enabled, opens_at_ms, per_minute, admission_s); cb gets the stored state. */
int tk_wr_call_set(tk_redis_t *r, const char *event, const tk_wr_state_t *settings, tk_redis_cb cb, void *data);

/* The addition to tk_reserve's ARGV for a hold that uses an admission (see tk_reserve in
 * lua/ticketd.lua): the two trailing arguments, written at argv[k] after every other
 * argument (the admission's key tk:{s}:wa is one of tk_reserve_batch's). Strings go into
 * pool; returns the next free index. */
struct st_tk_wr_admission_t;
size_t tk_waitroom_admission_args(const struct st_tk_wr_admission_t *adm, h2o_mem_pool_t *pool, const char **argv, size_t *argvlen,
                                  size_t k);

/* A state reply: 1 and st; 0 when the event has no room ({}); -1 when malformed */
int tk_wr_parse_state(const redisReply *reply, tk_wr_state_t *st);

typedef enum en_tk_wr_join_outcome_t { TK_WR_JOIN_QUEUED = 0, TK_WR_JOIN_OFF, TK_WR_JOIN_FAILED } tk_wr_join_outcome_t;
/* QUEUED: ticket and st; OFF: st->admission_s only */
tk_wr_join_outcome_t tk_wr_parse_join(const redisReply *reply, int64_t *ticket, tk_wr_state_t *st);

#endif
