/*
 * An outbox record packed as the Redis functions pack it (lua/ticketd.lua rec_encode):
 * the msgpack map {e, st, c, u, t[, x]} the writer decodes (engine/outbox.h), built from
 * the struct the decoder fills. For tests that put entries in an outbox by hand and for
 * tests/perf/writer_bench.c.
 */
#ifndef TK_TESTS_SUPPORT_OUTBOX_PACK_H
#define TK_TESTS_SUPPORT_OUTBOX_PACK_H

#include "engine/outbox.h"

#include <msgpack.h>

/* Packs rec onto pk. With rid_inside the map also carries the id as "r", as entries of
 * versions before 2026-12-07 did (today the id is the entry's own field). */
void tk_test_pack_record(msgpack_packer *pk, const tk_outbox_record_t *rec, int rid_inside);

#endif
