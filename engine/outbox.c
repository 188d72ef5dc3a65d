/*
 * msgpack decoding of outbox entries with msgpack-c's zone-based unpacker. Every field
 * is checked for type and size; unknown keys are ignored so the format can grow.
 */
#include "engine/outbox.h"

#include <h2o/memory.h>
#include <msgpack.h>
#include <stdlib.h>
#include <string.h>

static int key_is(const msgpack_object *key, const char *name)
{
    size_t len = strlen(name);
    return key->type == MSGPACK_OBJECT_STR && key->via.str.size == len && memcmp(key->via.str.ptr, name, len) == 0;
}

static int read_int(const msgpack_object *o, int64_t *out)
{
    if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER && o->via.u64 <= INT64_MAX)
        *out = (int64_t)o->via.u64;
    else if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
        *out = o->via.i64;
    else if (o->type == MSGPACK_OBJECT_FLOAT64 && o->via.f64 >= -9223372036854775808.0 && o->via.f64 < 9223372036854775808.0 &&
             o->via.f64 == (double)(int64_t)o->via.f64)
        *out = (int64_t)o->via.f64; /* Lua numbers are doubles; cmsgpack keeps integral ones as ints, but be lenient */
    else
        return -1;
    return 0;
}

static int read_str(const msgpack_object *o, char *out, size_t outsize)
{
    if (o->type != MSGPACK_OBJECT_STR || o->via.str.size >= outsize)
        return -1;
    memcpy(out, o->via.str.ptr, o->via.str.size);
    out[o->via.str.size] = '\0';
    return 0;
}

static int read_uuid(const msgpack_object *o, char *out)
{
    return o->type == MSGPACK_OBJECT_STR && tk_uuid_normalize(o->via.str.ptr, o->via.str.size, out) == 0 ? 0 : -1;
}

static int one_of(const char *s, const char *a, const char *b, const char *c)
{
    return strcmp(s, a) == 0 || strcmp(s, b) == 0 || strcmp(s, c) == 0;
}

static int decode_tickets(const msgpack_object *o, tk_outbox_record_t *rec)
{
    if (o->type != MSGPACK_OBJECT_ARRAY || rec->tickets != NULL /* "t" given twice */)
        return -1;
    rec->tickets = h2o_mem_alloc(((size_t)o->via.array.size + 1) * sizeof(*rec->tickets));
    for (uint32_t i = 0; i < o->via.array.size; ++i) {
        const msgpack_object *t = o->via.array.ptr + i;
        tk_outbox_ticket_t *ticket = rec->tickets + rec->ntickets;
        if (t->type != MSGPACK_OBJECT_ARRAY || t->via.array.size != 3 || read_uuid(t->via.array.ptr, ticket->id) != 0 ||
            read_str(t->via.array.ptr + 1, ticket->type, sizeof(ticket->type)) != 0 ||
            read_int(t->via.array.ptr + 2, &ticket->price_minor) != 0 || ticket->price_minor < 0)
            return -1;
        ++rec->ntickets;
    }
    return 0;
}

static int decode_txn(const msgpack_object *o, tk_outbox_record_t *rec)
{
    int have_id = 0, have_status = 0, have_amount = 0, have_date = 0;
    if (o->type != MSGPACK_OBJECT_MAP)
        return -1;
    for (uint32_t i = 0; i < o->via.map.size; ++i) {
        const msgpack_object *k = &o->via.map.ptr[i].key, *v = &o->via.map.ptr[i].val;
        if (key_is(k, "id"))
            have_id = read_uuid(v, rec->txn_id) == 0;
        else if (key_is(k, "st"))
            have_status = read_str(v, rec->txn_status, sizeof(rec->txn_status)) == 0;
        else if (key_is(k, "amt"))
            have_amount = read_int(v, &rec->txn_amount_minor) == 0 && rec->txn_amount_minor >= 0;
        else if (key_is(k, "d"))
            have_date = read_int(v, &rec->txn_date_ms) == 0;
        else if (key_is(k, "err") && read_str(v, rec->txn_error, sizeof(rec->txn_error)) != 0)
            return -1;
    }
    if (!(have_id && have_status && have_amount && have_date) || !one_of(rec->txn_status, "PENDING", "COMPLETED", "ERROR"))
        return -1;
    rec->has_txn = 1;
    return 0;
}

int tk_outbox_decode_entry(const char *rid, size_t rid_len, const char *buf, size_t len, tk_outbox_record_t *out)
{
    msgpack_zone zone;
    msgpack_object root;
    memset(out, 0, sizeof(*out));
    int have_rid = rid != NULL && tk_uuid_normalize(rid, rid_len, out->rid) == 0;
    msgpack_zone_init(&zone, 2048);
    size_t offset = 0;
    int ok = (rid == NULL || have_rid) && msgpack_unpack(buf, len, &offset, &zone, &root) == MSGPACK_UNPACK_SUCCESS &&
             offset == len && root.type == MSGPACK_OBJECT_MAP;
    int have_event = 0, have_status = 0, have_created = 0, have_until = 0, have_tickets = 0;
    for (uint32_t i = 0; ok && i < root.via.map.size; ++i) {
        const msgpack_object *k = &root.via.map.ptr[i].key, *v = &root.via.map.ptr[i].val;
        if (key_is(k, "r")) { /* the older format's id; an entry naming it twice must name one id */
            char named[TK_UUID_LEN + 1];
            ok = read_uuid(v, named) == 0 && (!have_rid || strcmp(named, out->rid) == 0);
            if (ok)
                memcpy(out->rid, named, sizeof(named));
            have_rid = ok;
        } else if (key_is(k, "e"))
            ok = have_event = read_uuid(v, out->event) == 0;
        else if (key_is(k, "st"))
            ok = have_status = read_str(v, out->status, sizeof(out->status)) == 0;
        else if (key_is(k, "c"))
            ok = have_created = read_int(v, &out->created_ms) == 0;
        else if (key_is(k, "u"))
            ok = have_until = read_int(v, &out->until_ms) == 0;
        else if (key_is(k, "t"))
            ok = have_tickets = decode_tickets(v, out) == 0;
        else if (key_is(k, "x"))
            ok = decode_txn(v, out) == 0;
    }
    ok = ok && have_rid && have_event && have_status && have_created && have_until && have_tickets &&
         one_of(out->status, "PENDING", "COMPLETED", "CANCELLED");
    msgpack_zone_destroy(&zone);
    if (!ok) {
        tk_outbox_record_dispose(out);
        return -1;
    }
    return 0;
}

int tk_outbox_decode(const char *buf, size_t len, tk_outbox_record_t *out)
{
    return tk_outbox_decode_entry(NULL, 0, buf, len, out);
}

void tk_outbox_record_dispose(tk_outbox_record_t *rec)
{
    free(rec->tickets);
    rec->tickets = NULL;
    rec->ntickets = 0;
}

int tk_outbox_record_is_final(const tk_outbox_record_t *rec)
{
    return strcmp(rec->status, "PENDING") != 0 && (!rec->has_txn || strcmp(rec->txn_status, "PENDING") != 0);
}
