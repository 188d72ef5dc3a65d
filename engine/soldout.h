/*
 * The sold-out fast path. When Redis answers that a type has no tickets left, the loop
 * thread remembers it for one second and answers "not enough tickets" for that type
 * without a round trip. It only ever remembers "none left", never "available", so a
 * stale entry can delay a returned ticket by at most a second but can never oversell.
 * One table per loop thread; no locks.
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
    int64_t until_ms;
} tk_soldout_entry_t;

typedef struct st_tk_soldout_t {
    tk_soldout_entry_t slots[TK_SOLDOUT_SLOTS];
} tk_soldout_t;

void tk_soldout_mark(tk_soldout_t *t, const char *event, const char *type, size_t type_len, int64_t now_ms);
int tk_soldout_check(const tk_soldout_t *t, const char *event, const char *type, size_t type_len, int64_t now_ms);

#endif
