/*
 * Outbox records: what the Redis functions append to tk:{s}:ob for PostgreSQL. Each
 * entry is the whole reservation: its id (field "r") and its record as msgpack (field
 * "m": {e, st, c, u, t, x}, see the header of lua/ticketd.lua), so entries can be applied
 * in any grouping, by any writer, any number of times. This decoder is the only reader of
 * that format.
 */
#ifndef TK_OUTBOX_H
#define TK_OUTBOX_H

#include "engine/uuid.h"

#include <stddef.h>
#include <stdint.h>

#define TK_OUTBOX_TYPE_MAX 256 /* bytes: 64 characters of up to 4 bytes each */
#define TK_OUTBOX_ERROR_MAX 200

typedef struct st_tk_outbox_ticket_t {
    char id[TK_UUID_LEN + 1];
    char type[TK_OUTBOX_TYPE_MAX + 1];
    int64_t price_minor;
} tk_outbox_ticket_t;

typedef struct st_tk_outbox_record_t {
    char rid[TK_UUID_LEN + 1];
    char event[TK_UUID_LEN + 1];
    char status[16]; /* PENDING, COMPLETED or CANCELLED */
    int64_t created_ms, until_ms;
    tk_outbox_ticket_t *tickets; /* heap; tk_outbox_record_dispose frees it */
    size_t ntickets;
    int has_txn;
    char txn_id[TK_UUID_LEN + 1];
    char txn_status[16]; /* PENDING, COMPLETED or ERROR */
    int64_t txn_amount_minor, txn_date_ms;
    char txn_error[TK_OUTBOX_ERROR_MAX + 1]; /* empty when none */
} tk_outbox_record_t;

/* An entry's fields: "r", the reservation's id (rid, rid_len), and "m", the record without
 * it (buf, len). Entries written before 2026-12-07 have only "m", whose record names its
 * id as "r" (rid NULL). 0 and a record; -1 when they are not a well-formed outbox entry
 * (nothing to dispose). */
int tk_outbox_decode_entry(const char *rid, size_t rid_len, const char *buf, size_t len, tk_outbox_record_t *out);
/* the record alone, with its "r" (the older format) */
int tk_outbox_decode(const char *buf, size_t len, tk_outbox_record_t *out);
void tk_outbox_record_dispose(tk_outbox_record_t *rec);
/* whether PostgreSQL's copy of the record is final (nothing can change it any more) */
int tk_outbox_record_is_final(const tk_outbox_record_t *rec);

#endif
