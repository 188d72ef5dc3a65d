/*
 * The per-process table of shard activity (shard_activity.h): one monotonic timestamp per
 * shard slot, 512 KiB, written and read with relaxed atomics — a reader needs only some
 * touch at or after its own look, never an order between shards.
 */
#include "engine/shard_activity.h"
#include "engine/timefmt.h"
#include "engine/uuid.h"

static int64_t touched_ms[TK_SHARD_SLOTS];

int tk_shard_slot(const char *shard)
{
    int v = 0;
    for (int i = 0; i < TK_SHARD_LEN; ++i) {
        char c = shard[i];
        int d = '0' <= c && c <= '9' ? c - '0' : 'a' <= c && c <= 'f' ? c - 'a' + 10 : -1;
        if (d < 0)
            return -1;
        v = v * 16 + d;
    }
    return v;
}

void tk_shard_touch_slot(int slot)
{
    if (slot >= 0 && slot < TK_SHARD_SLOTS)
        __atomic_store_n(&touched_ms[slot], tk_time_mono_ms(), __ATOMIC_RELAXED);
}

void tk_shard_touch(const char *shard)
{
    tk_shard_touch_slot(tk_shard_slot(shard));
}

int64_t tk_shard_touched_ms(int slot)
{
    return slot >= 0 && slot < TK_SHARD_SLOTS ? __atomic_load_n(&touched_ms[slot], __ATOMIC_RELAXED) : 0;
}
