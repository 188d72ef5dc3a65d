/*
 * The sessionid cookie that names a caller's reservation, as the original service's
 * session did: "<reservation id>.<signature>", the signature being base64url(HMAC-SHA256
 * (TICKETD_SECRET, reservation id)). Every process with the same secret verifies every
 * other's cookies; a cookie cannot be forged or pointed at another reservation.
 */
#ifndef TK_SESSION_H
#define TK_SESSION_H

#include "engine/config.h"

#include <h2o.h>

#define TK_SESSION_SIG_LEN 43 /* 32 bytes in unpadded base64url */
#define TK_SESSION_VALUE_LEN (36 + 1 + TK_SESSION_SIG_LEN)

/* writes "<rid>.<signature>" and a NUL into out[TK_SESSION_VALUE_LEN + 1] */
void tk_session_sign(const tk_config_t *config, const char *rid, char *out);
/* Checks a cookie value. 0 and the reservation id in rid[37]; -1 when malformed or forged. */
int tk_session_verify(const tk_config_t *config, const char *value, size_t len, char *rid);
/* The sessionid value among the request's Cookie headers: 1 found, 0 absent. */
int tk_session_find_cookie(h2o_req_t *req, h2o_iovec_t *value);
/* The Set-Cookie value naming rid, living as long as the hold, in pool. */
h2o_iovec_t tk_session_cookie(h2o_mem_pool_t *pool, const tk_config_t *config, const char *rid);
/* Adds Set-Cookie naming rid, living as long as the hold. */
void tk_session_set_cookie(h2o_req_t *req, const tk_config_t *config, const char *rid);

#endif
