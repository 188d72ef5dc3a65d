/*
 * The shop's fallback to PostgreSQL: reads of reservations and transactions that have
 * left Redis after being persisted. They run as worker jobs, never on a loop thread, and
 * complete on the loop that asked. Engine-internal (engine/shop*.c).
 */
#ifndef TK_SHOP_STORE_H
#define TK_SHOP_STORE_H

#include "engine/shop_types.h"

struct st_tk_engine_t;

typedef struct st_tk_shop_stored_t {
    int found;                         /* 1 found, 0 unknown, -1 the database failed */
    tk_reservation_view_t reservation; /* reservation reads, when found */
    tk_txn_result_t txn;               /* transaction reads, when found: status and error */
} tk_shop_stored_t;

/* called back on the loop; stored and what it points to are valid during the call */
typedef void (*tk_shop_stored_cb)(const tk_shop_stored_t *stored, void *data);

/* 0 when the read is queued; -EAGAIN when the workers are saturated (cb is not called) */
int tk_shop_read_reservation(struct st_tk_engine_t *e, const char *rid, tk_shop_stored_cb cb, void *data);
int tk_shop_read_transaction(struct st_tk_engine_t *e, const char *txn, tk_shop_stored_cb cb, void *data);

#endif
