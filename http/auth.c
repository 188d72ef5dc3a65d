/*
 * Bearer tokens for the admin routes and /metrics. Both sides are hashed with SHA-256 before a CRYPTO_memcmp, so neither the
 * contents nor the length of the configured token leaks through timing.
 */
#include "http/auth.h"
#include "http/respond.h"

#include <openssl/crypto.h>
#include <openssl/sha.h>

int tk_auth_equal(const char *a, size_t alen, const char *b, size_t blen)
{
    unsigned char da[SHA256_DIGEST_LENGTH], db[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)a, alen, da);
    SHA256((const unsigned char *)b, blen, db);
    return CRYPTO_memcmp(da, db, sizeof(da)) == 0;
}

/* Checks `Authorization: Bearer <token>` against token (none configured: nobody passes);
 * answers 401 when the header is missing and 403 otherwise, naming what the token is for. */
static int check_bearer(h2o_req_t *req, const char *token, size_t token_len, const char *missing, const char *wrong)
{
    ssize_t i = h2o_find_header(&req->headers, H2O_TOKEN_AUTHORIZATION, -1);
    if (i == -1) {
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_WWW_AUTHENTICATE, NULL, H2O_STRLIT("Bearer realm=\"ticketd\""));
        tk_respond_error(req, 401, "Authentication required", missing);
        return -1;
    }
    h2o_iovec_t v = req->headers.entries[i].value;
    static const char scheme[] = "bearer ";
    int is_bearer = v.len > sizeof(scheme) - 1 && h2o_lcstris(v.base, sizeof(scheme) - 1, scheme, sizeof(scheme) - 1);
    if (token_len == 0 || !is_bearer ||
        !tk_auth_equal(v.base + sizeof(scheme) - 1, v.len - (sizeof(scheme) - 1), token, token_len)) {
        tk_respond_error(req, 403, "Forbidden", wrong);
        return -1;
    }
    return 0;
}

int tk_auth_admin(h2o_req_t *req, const tk_config_t *config)
{
    return check_bearer(req, config->admin_token, config->admin_token_len, "Send the admin token as Authorization: Bearer <token>",
                        "The admin token is not valid");
}

int tk_auth_metrics(h2o_req_t *req, const tk_config_t *config)
{
    if (config->metrics_token_len == 0 && config->env == TK_ENV_DEVELOPMENT)
        return 0;
    return check_bearer(
        req, config->metrics_token, config->metrics_token_len, "Send the metrics token as Authorization: Bearer <token>",
        config->metrics_token_len == 0 ? "/metrics is closed: no TICKETD_METRICS_TOKEN is set" : "The metrics token is not valid");
}
