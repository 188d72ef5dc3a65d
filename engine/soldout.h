/*
 * The sold-out fast path. When Redis answers that a type has no tickets left, the loop
 * thread remembers it for one second and answers "not enough tickets" for that type
 * without a round trip. It only ever remembers "none left", never "available", so a
 * stale entry can delay a returned ticket by at most a second but can never oversell.
 * Each refusal it answers is counted in its entry until tk_soldout_take_refused hands the
 * counts over, so that the event's turned_away figure (dm:E:away, which Redis counts for
 * the refusals it answers itself) includes them. One table per loop thread; no locks.
 */
#ifndef TK_SOLDOUT_H
#define TK_SOLDOUT_H

#include "engine/uuid.h"

#include <stddef.h>
#include <stdint.h>

#define TK_SOLDOUT_TTL_MS 1000
#define TK_SOLDOUT_SLOTS 256
#define TK_SOLDOUT_TYPE_MAX 64

typedef struct st_tk_soldout_entry_t {
    char event[TK_UUID_LEN + 1];
    char type[TK_SOLDOUT_TYPE_MAX + 1];
    uint8_t type_len;
    uint32_t refused; /* refusals answered from this entry and not taken yet */
    int64_t until_ms;
} tk_soldout_entry_t;

typedef struct st_tk_soldout_t {
    tk_soldout_entry_t slots[TK_SOLDOUT_SLOTS];
} tk_soldout_t;

void tk_soldout_mark(tk_soldout_t *t, const char *event, const char *type, size_t type_len, int64_t now_ms);
/* 1 when the type is remembered as sold out: the caller refuses the hold, and the refusal
 * is counted; 0 when Redis must be asked */
int tk_soldout_check(tk_soldout_t *t, const char *event, const char *type, size_t type_len, int64_t now_ms);
/* Calls cb for every entry with refusals counted (one per type: an event can come more
 * than once), then forgets the counts. An entry taken over by another type before its
 * count was taken loses it (it lived less than a second, in a full probe window). */
void tk_soldout_take_refused(tk_soldout_t *t, void (*cb)(const char *event, uint32_t refused, void *data), void *data);

#endif
