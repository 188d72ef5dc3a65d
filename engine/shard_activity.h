/*
 * What this process has seen written in each shard, for the loops that would otherwise
 * ask Redis about every shard of the catalog over and over: the sweeper, the writers'
 * outbox gauge and their claims of abandoned entries. A shard is touched when this
 * process has evidence that something was written there after a moment: one of its
 * reservation calls to the shard was answered, a writer read entries of the shard's
 * outbox, the gauge found that outbox not empty. A poller that found a shard empty asks,
 * before its next look, whether the shard was touched since it looked, and otherwise
 * looks again only after a long backstop.
 *
 * Other processes' writes reach this table through the outbox: every change of a shard
 * appends an entry, and some process's writer reads it within a read round — that
 * process's sweeper then learns of the shard. Only when the process that wrote and the
 * one that read both die does a shard wait for the backstop. One table per process,
 * indexed by the shard's 16 bits; stores and loads are relaxed atomics, any thread.
 */
#ifndef TK_SHARD_ACTIVITY_H
#define TK_SHARD_ACTIVITY_H

#include <stdint.h>

#define TK_SHARD_SLOTS 65536 /* a shard is 4 hex characters */

/* the shard's slot: its 4 hex characters as a number; -1 for anything else */
int tk_shard_slot(const char *shard);

/* notes that something was written in the shard now (tk_time_mono_ms); a non-shard is ignored */
void tk_shard_touch(const char *shard);
void tk_shard_touch_slot(int slot);

/* when the slot was last touched (tk_time_mono_ms), 0 if never */
int64_t tk_shard_touched_ms(int slot);

#endif
