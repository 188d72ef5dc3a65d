/*
 * Cookie signing with OpenSSL's one-shot HMAC and a constant-time comparison.
 */
#include "http/session.h"
#include "engine/uuid.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <string.h>

/* out receives the unpadded base64url of HMAC-SHA256(secret, rid) and a NUL (TK_SESSION_SIG_LEN + 1 bytes) */
static void signature_of(const tk_config_t *config, const char *rid, char *out)
{
    unsigned char mac[32];
    unsigned int maclen = sizeof(mac);
    HMAC(EVP_sha256(), config->secret, (int)config->secret_len, (const unsigned char *)rid, TK_UUID_LEN, mac, &maclen);
    h2o_base64_encode(out, mac, sizeof(mac), 1);
}

void tk_session_sign(const tk_config_t *config, const char *rid, char *out)
{
    memcpy(out, rid, TK_UUID_LEN);
    out[TK_UUID_LEN] = '.';
    signature_of(config, rid, out + TK_UUID_LEN + 1);
}

int tk_session_verify(const tk_config_t *config, const char *value, size_t len, char *rid)
{
    char expected[TK_SESSION_SIG_LEN + 1];
    if (len != TK_SESSION_VALUE_LEN || value[TK_UUID_LEN] != '.' || tk_uuid_normalize(value, TK_UUID_LEN, rid) != 0 ||
        memcmp(value, rid, TK_UUID_LEN) != 0 /* signed ids are lower case */)
        return -1;
    signature_of(config, rid, expected);
    return CRYPTO_memcmp(expected, value + TK_UUID_LEN + 1, TK_SESSION_SIG_LEN) == 0 ? 0 : -1;
}

int tk_session_find_cookie(h2o_req_t *req, h2o_iovec_t *value)
{
    for (ssize_t i = -1; (i = h2o_find_header(&req->headers, H2O_TOKEN_COOKIE, i)) != -1;) {
        h2o_iovec_t header = req->headers.entries[i].value;
        const char *p = header.base, *end = header.base + header.len;
        while (p < end) {
            while (p < end && (*p == ' ' || *p == ';'))
                ++p;
            const char *pair_end = memchr(p, ';', (size_t)(end - p));
            if (pair_end == NULL)
                pair_end = end;
            if ((size_t)(pair_end - p) > 10 && memcmp(p, "sessionid=", 10) == 0) {
                *value = h2o_iovec_init(p + 10, (size_t)(pair_end - p - 10));
                while (value->len > 0 && value->base[value->len - 1] == ' ')
                    --value->len;
                return 1;
            }
            p = pair_end;
        }
    }
    return 0;
}

h2o_iovec_t tk_session_cookie(h2o_mem_pool_t *pool, const tk_config_t *config, const char *rid)
{
    char value[TK_SESSION_VALUE_LEN + 1];
    tk_session_sign(config, rid, value);
    char *cookie = h2o_mem_alloc_pool(pool, 200);
    int len = snprintf(cookie, 200, "sessionid=%s; Max-Age=%d; Path=/; HttpOnly; SameSite=Lax", value, config->hold_seconds);
    return h2o_iovec_init(cookie, (size_t)len);
}

void tk_session_set_cookie(h2o_req_t *req, const tk_config_t *config, const char *rid)
{
    h2o_iovec_t cookie = tk_session_cookie(&req->pool, config, rid);
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_SET_COOKIE, NULL, cookie.base, cookie.len);
}
