/*
 * A small open-addressing table keyed by (event, type) with a short probe; entries
 * compare the full key, so a hash collision can never answer for another type. When
 * the probe window is full the oldest entry is replaced: losing an entry only costs a
 * round trip.
 */
#include "engine/soldout.h"

#include <string.h>

#define PROBE 4

static size_t slot_of(const char *event, const char *type, size_t type_len)
{
    uint64_t h = 1469598103934665603u; /* FNV-1a */
    for (size_t i = 0; i < TK_UUID_LEN; ++i)
        h = (h ^ (unsigned char)event[i]) * 1099511628211u;
    for (size_t i = 0; i < type_len; ++i)
        h = (h ^ (unsigned char)type[i]) * 1099511628211u;
    return (size_t)(h % TK_SOLDOUT_SLOTS);
}

static int matches(const tk_soldout_entry_t *e, const char *event, const char *type, size_t type_len)
{
    return e->type_len == type_len && memcmp(e->type, type, type_len) == 0 && memcmp(e->event, event, TK_UUID_LEN) == 0;
}

void tk_soldout_mark(tk_soldout_t *t, const char *event, const char *type, size_t type_len, int64_t now_ms)
{
    if (type_len > TK_SOLDOUT_TYPE_MAX)
        return;
    size_t base = slot_of(event, type, type_len);
    tk_soldout_entry_t *victim = NULL;
    for (size_t i = 0; i < PROBE; ++i) {
        tk_soldout_entry_t *e = t->slots + (base + i) % TK_SOLDOUT_SLOTS;
        if (matches(e, event, type, type_len) || e->until_ms <= now_ms) {
            victim = e;
            break;
        }
        if (victim == NULL || e->until_ms < victim->until_ms)
            victim = e;
    }
    if (!matches(victim, event, type, type_len))
        victim->refused = 0;
    memcpy(victim->event, event, TK_UUID_LEN);
    victim->event[TK_UUID_LEN] = '\0';
    memcpy(victim->type, type, type_len);
    victim->type_len = (uint8_t)type_len;
    victim->until_ms = now_ms + TK_SOLDOUT_TTL_MS;
}

int tk_soldout_check(tk_soldout_t *t, const char *event, const char *type, size_t type_len, int64_t now_ms)
{
    if (type_len > TK_SOLDOUT_TYPE_MAX)
        return 0;
    size_t base = slot_of(event, type, type_len);
    for (size_t i = 0; i < PROBE; ++i) {
        tk_soldout_entry_t *e = t->slots + (base + i) % TK_SOLDOUT_SLOTS;
        if (e->until_ms > now_ms && matches(e, event, type, type_len)) {
            ++e->refused;
            return 1;
        }
    }
    return 0;
}

void tk_soldout_take_refused(tk_soldout_t *t, void (*cb)(const char *event, uint32_t refused, void *data), void *data)
{
    for (size_t i = 0; i < TK_SOLDOUT_SLOTS; ++i) {
        tk_soldout_entry_t *e = t->slots + i;
        if (e->refused != 0) {
            cb(e->event, e->refused, data);
            e->refused = 0;
        }
    }
}
