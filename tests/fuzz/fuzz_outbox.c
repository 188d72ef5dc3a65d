/*
 * libFuzzer target for engine/outbox.c: outbox stream entries (msgpack) as the writer
 * reads them from Redis, each input decoded twice: as the record alone (with its "r",
 * as versions before 2026-12-07 wrote it) and as field "m" beside a field "r" naming a
 * reservation. A decoded record must satisfy what the writer relies on —
 * NUL-terminated ids and strings within their arrays, a known status, tickets with
 * non-negative prices — and dispose must free it; a refused entry must leave nothing
 * to free.
 */
#include "engine/outbox.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static int known(const char *s, const char *const *list)
{
    for (; *list != NULL; ++list)
        if (strcmp(s, *list) == 0)
            return 1;
    return 0;
}

/* aborts unless a decoder's answer (rc, rec) is one the writer can rely on */
static void check(int rc, tk_outbox_record_t *rec)
{
    static const char *const statuses[] = {"PENDING", "COMPLETED", "CANCELLED", NULL};
    static const char *const txn_statuses[] = {"PENDING", "COMPLETED", "ERROR", NULL};
    if (rc == 0) {
        if (strlen(rec->rid) != TK_UUID_LEN || strlen(rec->event) != TK_UUID_LEN || !known(rec->status, statuses))
            abort();
        if (rec->ntickets != 0 && rec->tickets == NULL)
            abort();
        for (size_t i = 0; i < rec->ntickets; ++i)
            if (strlen(rec->tickets[i].id) != TK_UUID_LEN || strlen(rec->tickets[i].type) > TK_OUTBOX_TYPE_MAX ||
                rec->tickets[i].price_minor < 0)
                abort();
        if (rec->has_txn && (strlen(rec->txn_id) != TK_UUID_LEN || !known(rec->txn_status, txn_statuses) ||
                             rec->txn_amount_minor < 0 || strlen(rec->txn_error) > TK_OUTBOX_ERROR_MAX))
            abort();
        (void)tk_outbox_record_is_final(rec);
        tk_outbox_record_dispose(rec);
        if (rec->tickets != NULL || rec->ntickets != 0)
            abort();
    } else if (rec->tickets != NULL) {
        abort(); /* "nothing to dispose" */
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char rid[] = "0a1b2c3d-0000-4000-8000-000000000001";
    char *copy = malloc(size + 1);
    memcpy(copy, data, size);
    tk_outbox_record_t rec;
    int rc = tk_outbox_decode(copy, size, &rec);
    check(rc, &rec);
    rc = tk_outbox_decode_entry(rid, sizeof(rid) - 1, copy, size, &rec);
    check(rc, &rec);
    free(copy);
    return 0;
}
