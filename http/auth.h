/*
 * Bearer authentication: `Authorization: Bearer <token>` compared in constant time
 * against TICKETD_ADMIN_TOKEN (admin routes) or TICKETD_METRICS_TOKEN (/metrics).
 * Tokens are never logged or echoed.
 */
#ifndef TK_AUTH_H
#define TK_AUTH_H

#include "engine/config.h"

#include <h2o.h>

/* 0 when req carries the admin token; otherwise answers 401 (no credentials) or 403
 * (wrong token, or no token configured) and returns -1 */
int tk_auth_admin(h2o_req_t *req, const tk_config_t *config);
/* 0 when req may read /metrics: it carries the metrics token, or none is configured and
 * this is development; otherwise answers 401 (no credentials) or 403 (wrong token, or
 * production without a token: /metrics refuses everyone) and returns -1 */
int tk_auth_metrics(h2o_req_t *req, const tk_config_t *config);
/* constant-time equality of two byte strings of any lengths */
int tk_auth_equal(const char *a, size_t alen, const char *b, size_t blen);

#endif
