/*
 * The waiting room's two signed strings. A queue id names one ticket of one event's queue
 * and when it was handed out: "<event id>.<ticket>.<joined ms>.<signature>". An admission lets its holder reserve for
 * one event until an instant: "<event id>.<ticket>.<until ms>.<signature>" (ticket 0:
 * handed out while the room was off). Signatures are base64url(HMAC-SHA256(TICKETD_SECRET,
 * a label and the fields)), with a different label for each kind, so neither can be
 * forged, moved to another event or ticket, passed off as the other kind, or extended.
 * Every process with the same secret verifies every other's.
 */
#ifndef TK_WAITROOM_TOKEN_H
#define TK_WAITROOM_TOKEN_H

#include "engine/config.h"
#include "engine/uuid.h"

#include <stddef.h>
#include <stdint.h>

#define TK_WR_SIG_LEN 43 /* 32 bytes in unpadded base64url */
#define TK_WR_QUEUE_ID_MAX (TK_UUID_LEN + 1 + 20 + 1 + 20 + 1 + TK_WR_SIG_LEN + 1)
#define TK_WR_ADMISSION_MAX (TK_UUID_LEN + 1 + 20 + 1 + 20 + 1 + TK_WR_SIG_LEN + 1)

typedef struct st_tk_wr_admission_t {
    char event[TK_UUID_LEN + 1];
    int64_t ticket; /* 0: admitted while the room was off */
    int64_t until_ms;
} tk_wr_admission_t;

/* write the NUL-terminated string into out (of the _MAX size); return its length */
size_t tk_wr_queue_id_sign(const tk_config_t *config, const char *event, int64_t ticket, int64_t joined_ms, char *out);
size_t tk_wr_admission_sign(const tk_config_t *config, const tk_wr_admission_t *adm, char *out);
/* 0 and the fields when s verifies; -1 when malformed or forged (expiry is the caller's) */
int tk_wr_queue_id_verify(const tk_config_t *config, const char *s, size_t len, char *event, int64_t *ticket, int64_t *joined_ms);
int tk_wr_admission_verify(const tk_config_t *config, const char *s, size_t len, tk_wr_admission_t *adm);

#endif
