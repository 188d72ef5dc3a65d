/*
 * tk_test_pack_record (outbox_pack.h): the record's map in the order rec_encode writes
 * it; a payment, when there is one, as the "x" map {id, st, amt, d[, err]}.
 */
#include "tests/support/outbox_pack.h"

#include <string.h>

static void pack_str(msgpack_packer *pk, const char *s)
{
    size_t len = strlen(s);
    msgpack_pack_str(pk, len);
    msgpack_pack_str_body(pk, s, len);
}

static void pack_payment(msgpack_packer *pk, const tk_outbox_record_t *rec)
{
    int has_error = rec->txn_error[0] != '\0';
    msgpack_pack_map(pk, has_error ? 5 : 4);
    pack_str(pk, "id");
    pack_str(pk, rec->txn_id);
    pack_str(pk, "st");
    pack_str(pk, rec->txn_status);
    pack_str(pk, "amt");
    msgpack_pack_int64(pk, rec->txn_amount_minor);
    pack_str(pk, "d");
    msgpack_pack_int64(pk, rec->txn_date_ms);
    if (has_error) {
        pack_str(pk, "err");
        pack_str(pk, rec->txn_error);
    }
}

void tk_test_pack_record(msgpack_packer *pk, const tk_outbox_record_t *rec, int rid_inside)
{
    msgpack_pack_map(pk, 5 + (rid_inside != 0) + (rec->has_txn != 0));
    if (rid_inside) {
        pack_str(pk, "r");
        pack_str(pk, rec->rid);
    }
    pack_str(pk, "e");
    pack_str(pk, rec->event);
    pack_str(pk, "st");
    pack_str(pk, rec->status);
    pack_str(pk, "c");
    msgpack_pack_int64(pk, rec->created_ms);
    pack_str(pk, "u");
    msgpack_pack_int64(pk, rec->until_ms);
    pack_str(pk, "t");
    msgpack_pack_array(pk, rec->ntickets); /* each [id, type, price in minor units] */
    for (size_t i = 0; i < rec->ntickets; ++i) {
        msgpack_pack_array(pk, 3);
        pack_str(pk, rec->tickets[i].id);
        pack_str(pk, rec->tickets[i].type);
        msgpack_pack_int64(pk, rec->tickets[i].price_minor);
    }
    if (rec->has_txn) {
        pack_str(pk, "x");
        pack_payment(pk, rec);
    }
}
