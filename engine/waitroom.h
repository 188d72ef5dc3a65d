/*
 * The waiting room's model, with no store and no HTTP: a room's state as Redis hands
 * it out (lua/ticketd.lua, section WAITING ROOM), the admission line L(t) every process
 * computes from it, the opening shuffle, and the verdict for one ticket at one instant
 * (waiting at a position, admitted until an instant, or expired). Everything here is a
 * pure function of its arguments, so every process reaches the same verdict for the same
 * ticket, and a poll is answered from memory: no Redis, no malloc.
 */
#ifndef TK_WAITROOM_H
#define TK_WAITROOM_H

#include <stddef.h>
#include <stdint.h>

#define TK_WR_MAX_SEGMENTS 64 /* as WR_MAX_SEGMENTS in the Lua */
#define TK_WR_SEED_LEN 32     /* bytes of the opening shuffle's seed */
#define TK_WR_MAX_RATE 1000000
#define TK_WR_MAX_ADMISSION_S 86400
#define TK_WR_DEFAULT_ADMISSION_S 600
#define TK_WR_REACHED_LONG_AGO 0 /* see tk_wr_admitted_at; 0, so that no arithmetic on it overflows */

/* From from_ms on, L(t) = base + floor((t - from_ms) * per_minute / 60000). */
typedef struct st_tk_wr_segment_t {
    int64_t from_ms, base, per_minute;
} tk_wr_segment_t;

/* A room as the last sync saw it. Only int64 fields, so a view can copy it word by word
 * with atomic loads (see engine/waitroom_view.c). */
typedef struct st_tk_wr_state_t {
    int64_t enabled, opens_at_ms, per_minute, admission_s;
    int64_t joined; /* tickets handed out so far */
    int64_t pre;    /* tickets handed out before the opening; -1 until the opening froze it */
    int64_t nseg;
    tk_wr_segment_t seg[TK_WR_MAX_SEGMENTS];
} tk_wr_state_t;

/* Places admitted by instant t (the admission line). */
int64_t tk_wr_line(const tk_wr_state_t *st, int64_t t);
/* The first instant at which place is admitted by the line as known; INT64_MAX when the
 * line, as it stands, never gets there (frozen or paused); TK_WR_REACHED_LONG_AGO when the
 * line had reached it before its oldest segment still kept began (its admission is over). */
int64_t tk_wr_admitted_at(const tk_wr_state_t *st, int64_t place);

/* The opening shuffle: a uniformly random permutation of the n tickets 1..n drawn with
 * Fisher-Yates from a keystream of seed (ChaCha20), so every process that knows the seed
 * computes the same places. place_of[k] is the place (1..n) of ticket k + 1. */
void tk_wr_shuffle(const uint8_t seed[TK_WR_SEED_LEN], uint32_t n, uint32_t *place_of);

typedef enum en_tk_wr_status_t {
    TK_WR_WAITING = 0,
    TK_WR_ADMITTED,
    TK_WR_EXPIRED,
    TK_WR_OPEN /* the room is off: admitted at once, with a fresh admission */
} tk_wr_status_t;

typedef struct st_tk_wr_verdict_t {
    tk_wr_status_t status;
    int64_t place;       /* 0 while unknown (before the opening, or its shuffle is not computed yet) */
    int64_t position;    /* WAITING: place - L(now), 0 while unknown */
    int64_t eta_s;       /* WAITING: expected seconds until admitted */
    int64_t admitted_ms; /* ADMITTED, EXPIRED: when the line reached the place (or the join, if later) */
    int64_t until_ms;    /* ADMITTED, EXPIRED, OPEN: when the admission ends */
} tk_wr_verdict_t;

/* The verdict for ticket, handed out at joined_ms, at instant now. place_of is the opening
 * shuffle (NULL while not computed), of st->pre entries. An admission runs from the later
 * of the instant the line reached the place and the join itself. */
void tk_wr_evaluate(const tk_wr_state_t *st, const uint32_t *place_of, int64_t ticket, int64_t joined_ms, int64_t now,
                    tk_wr_verdict_t *out);

/* The admin's live figures at now. */
typedef struct st_tk_wr_figures_t {
    int64_t waiting, admitted, next_position, expected_wait_s;
} tk_wr_figures_t;
void tk_wr_figures(const tk_wr_state_t *st, int64_t now, tk_wr_figures_t *out);

#endif
