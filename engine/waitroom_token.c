/*
 * Signing and verifying queue ids and admissions: one-shot HMAC, a constant-time
 * comparison, and a strict parser (canonical lower-case event id, plain decimal numbers
 * without leading zeros), so each value has exactly one valid spelling.
 */
#include "engine/waitroom_token.h"

#include <inttypes.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <string.h>

static void sign(const tk_config_t *config, const char *msg, size_t len, char *out)
{
    static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    unsigned char mac[32];
    unsigned int maclen = sizeof(mac);
    HMAC(EVP_sha256(), config->secret, (int)config->secret_len, (const unsigned char *)msg, len, mac, &maclen);
    size_t n = 0;
    for (size_t i = 0; i < 32; i += 3) {
        uint32_t v = (uint32_t)mac[i] << 16 | (i + 1 < 32 ? (uint32_t)mac[i + 1] << 8 : 0) | (i + 2 < 32 ? mac[i + 2] : 0);
        out[n++] = alphabet[v >> 18 & 63];
        out[n++] = alphabet[v >> 12 & 63];
        if (i + 1 < 32)
            out[n++] = alphabet[v >> 6 & 63];
        if (i + 2 < 32)
            out[n++] = alphabet[v & 63];
    }
    out[n] = '\0';
}

/* the signed message of each kind; the label keeps the kinds apart */
static size_t queue_message(const char *event, int64_t ticket, int64_t joined_ms, char *msg, size_t size)
{
    return (size_t)snprintf(msg, size, "tk-wr-queue:%.36s:%" PRId64 ":%" PRId64, event, ticket, joined_ms);
}

static size_t admission_message(const tk_wr_admission_t *adm, char *msg, size_t size)
{
    return (size_t)snprintf(msg, size, "tk-wr-admission:%.36s:%" PRId64 ":%" PRId64, adm->event, adm->ticket, adm->until_ms);
}

size_t tk_wr_queue_id_sign(const tk_config_t *config, const char *event, int64_t ticket, int64_t joined_ms, char *out)
{
    char msg[160];
    int n = snprintf(out, TK_WR_QUEUE_ID_MAX, "%.36s.%" PRId64 ".%" PRId64 ".", event, ticket, joined_ms);
    sign(config, msg, queue_message(event, ticket, joined_ms, msg, sizeof(msg)), out + n);
    return (size_t)n + TK_WR_SIG_LEN;
}

size_t tk_wr_admission_sign(const tk_config_t *config, const tk_wr_admission_t *adm, char *out)
{
    char msg[160];
    int n = snprintf(out, TK_WR_ADMISSION_MAX, "%.36s.%" PRId64 ".%" PRId64 ".", adm->event, adm->ticket, adm->until_ms);
    sign(config, msg, admission_message(adm, msg, sizeof(msg)), out + n);
    return (size_t)n + TK_WR_SIG_LEN;
}

/* A plain decimal from *p up to the next '.', 0..10^18, no leading zero; advances past the dot. */
static int read_number(const char **p, const char *end, int64_t *out)
{
    const char *s = *p;
    int64_t v = 0;
    size_t digits = 0;
    while (s < end && *s >= '0' && *s <= '9' && digits < 19) {
        v = v * 10 + (*s++ - '0');
        ++digits;
    }
    if (digits == 0 || digits > 18 || (digits > 1 && **p == '0') || s == end || *s != '.')
        return -1;
    *out = v;
    *p = s + 1;
    return 0;
}

/* the event id and the dot after it; the id must already be canonical */
static int read_event(const char **p, const char *end, char *event)
{
    if (end - *p < TK_UUID_LEN + 1 || tk_uuid_normalize(*p, TK_UUID_LEN, event) != 0 || memcmp(*p, event, TK_UUID_LEN) != 0 ||
        (*p)[TK_UUID_LEN] != '.')
        return -1;
    *p += TK_UUID_LEN + 1;
    return 0;
}

static int signature_matches(const tk_config_t *config, const char *msg, size_t msglen, const char *sig, const char *end)
{
    char expected[TK_WR_SIG_LEN + 1];
    if (end - sig != TK_WR_SIG_LEN)
        return 0;
    sign(config, msg, msglen, expected);
    return CRYPTO_memcmp(expected, sig, TK_WR_SIG_LEN) == 0;
}

int tk_wr_queue_id_verify(const tk_config_t *config, const char *s, size_t len, char *event, int64_t *ticket, int64_t *joined_ms)
{
    const char *p = s, *end = s + len;
    char msg[160];
    if (read_event(&p, end, event) != 0 || read_number(&p, end, ticket) != 0 || *ticket < 1 || read_number(&p, end, joined_ms) != 0)
        return -1;
    return signature_matches(config, msg, queue_message(event, *ticket, *joined_ms, msg, sizeof(msg)), p, end) ? 0 : -1;
}

int tk_wr_admission_verify(const tk_config_t *config, const char *s, size_t len, tk_wr_admission_t *adm)
{
    const char *p = s, *end = s + len;
    char msg[160];
    if (read_event(&p, end, adm->event) != 0 || read_number(&p, end, &adm->ticket) != 0 ||
        read_number(&p, end, &adm->until_ms) != 0)
        return -1;
    return signature_matches(config, msg, admission_message(adm, msg, sizeof(msg)), p, end) ? 0 : -1;
}
