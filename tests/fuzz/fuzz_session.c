/*
 * libFuzzer target for http/session.c: the sessionid cookie. The input is split on
 * '\n' into Cookie header values of a minimal h2o_req_t (a pool and a header list are
 * all tk_session_find_cookie reads); whatever sessionid it finds, and the raw input
 * itself, go through tk_session_verify under a fixed secret. A value that verifies
 * must be exactly what tk_session_sign produces for the id it names — the fuzzer
 * cannot forge a cookie without the secret, so finding one would be a crash.
 */
#include "http/session.h"
#include "engine/uuid.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const char SECRET[] = "tk-fuzz-only-secret-0123456789abcdef0123";

static void check_verify(const tk_config_t *config, const char *value, size_t len)
{
    char rid[TK_UUID_LEN + 1], expected[TK_SESSION_VALUE_LEN + 1];
    if (tk_session_verify(config, value, len, rid) != 0)
        return;
    tk_session_sign(config, rid, expected);
    if (len != TK_SESSION_VALUE_LEN || memcmp(expected, value, len) != 0)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static tk_config_t config;
    if (config.secret_len == 0) {
        config.secret_len = strlen(SECRET);
        memcpy(config.secret, SECRET, config.secret_len);
        config.hold_seconds = 900;
    }
    char *copy = malloc(size + 1);
    memcpy(copy, data, size);
    check_verify(&config, copy, size);

    /* a signed cookie for the input's first 36 bytes, when they are a UUID, round-trips */
    char rid[TK_UUID_LEN + 1], back[TK_UUID_LEN + 1], value[TK_SESSION_VALUE_LEN + 1];
    if (size >= TK_UUID_LEN && tk_uuid_normalize(copy, TK_UUID_LEN, rid) == 0) {
        tk_session_sign(&config, rid, value);
        if (tk_session_verify(&config, value, strlen(value), back) != 0 || strcmp(back, rid) != 0)
            abort();
    }

    h2o_req_t req;
    memset(&req, 0, sizeof(req));
    h2o_mem_init_pool(&req.pool);
    for (size_t start = 0; start <= size && req.headers.size < 16;) {
        const char *nl = memchr(copy + start, '\n', size - start);
        size_t end = nl != NULL ? (size_t)(nl - copy) : size;
        h2o_add_header(&req.pool, &req.headers, H2O_TOKEN_COOKIE, NULL, copy + start, end - start);
        start = end + 1;
    }
    h2o_iovec_t found;
    if (tk_session_find_cookie(&req, &found)) {
        if (found.base < copy || found.base + found.len > copy + size)
            abort(); /* the value points into a header */
        check_verify(&config, found.base, found.len);
    }
    h2o_mem_clear_pool(&req.pool);
    free(copy);
    return 0;
}
