/*
 * Building the fair-use part of tk_reserve and reading its refusals. The client id is
 * HMAC-SHA256(TICKETD_SECRET, "client:" + the client's address bytes), cut to 64 bits:
 * short enough to be cheap as a hash field, long enough that two clients of one shard
 * practically never share a count, and not reversible without the secret (an unkeyed
 * hash of an IPv4 address would be, by trying all 2^32).
 */
#include "engine/fairuse.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <string.h>

static void client_id(const tk_config_t *config, const tk_netaddr_t *addr, char *out)
{
    static const char hex[] = "0123456789abcdef";
    uint8_t material[32] = "client:";
    size_t len = 7 + tk_netaddr_client_bytes(addr, material + 7);
    unsigned char mac[32];
    unsigned int maclen = sizeof(mac);
    HMAC(EVP_sha256(), config->secret, (int)config->secret_len, material, len, mac, &maclen);
    for (size_t i = 0; i < TK_CLIENT_ID_LEN / 2; ++i) {
        out[2 * i] = hex[mac[i] >> 4];
        out[2 * i + 1] = hex[mac[i] & 15];
    }
    out[TK_CLIENT_ID_LEN] = '\0';
}

void tk_fairuse_init(tk_fairuse_t *fu, const tk_config_t *config, const tk_netaddr_t *addr)
{
    memset(fu, 0, sizeof(*fu));
    if (addr != NULL && (config->client_max_holds != 0 || config->client_hold_rate != 0))
        client_id(config, addr, fu->client);
    snprintf(fu->numbers[0], sizeof(fu->numbers[0]), "%d", config->client_max_holds);
    snprintf(fu->numbers[1], sizeof(fu->numbers[1]), "%d", config->client_hold_rate);
    snprintf(fu->numbers[2], sizeof(fu->numbers[2]), "%d", config->outbox_pause);
}

size_t tk_fairuse_args(tk_fairuse_t *fu, const char **argv, size_t *argvlen, size_t k)
{
    argv[k] = fu->client, argvlen[k++] = strlen(fu->client);
    for (size_t i = 0; i < 3; ++i, ++k) {
        argv[k] = fu->numbers[i];
        argvlen[k] = strlen(fu->numbers[i]);
    }
    return k;
}

int tk_fairuse_is_oom(const redisReply *reply)
{
    return reply != NULL && reply->type == REDIS_REPLY_ERROR && strncmp(reply->str, "OOM", 3) == 0;
}

tk_fairuse_refusal_t tk_fairuse_parse_refusal(const redisReply *reply, int *retry_after)
{
    *retry_after = 1;
    if (tk_fairuse_is_oom(reply))
        return TK_FAIRUSE_OUT_OF_MEMORY;
    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY || reply->elements != 3 ||
        reply->element[1]->type != REDIS_REPLY_STRING || reply->element[2]->type != REDIS_REPLY_INTEGER)
        return TK_FAIRUSE_ADMITTED;
    const redisReply *why = reply->element[1];
    tk_fairuse_refusal_t refusal = h2o_memis(why->str, why->len, H2O_STRLIT("too_many")) ? TK_FAIRUSE_TOO_MANY
                                   : h2o_memis(why->str, why->len, H2O_STRLIT("paused")) ? TK_FAIRUSE_PAUSED
                                                                                         : TK_FAIRUSE_ADMITTED;
    if (refusal != TK_FAIRUSE_ADMITTED && reply->element[2]->integer > 1)
        *retry_after = reply->element[2]->integer > 3600 ? 3600 : (int)reply->element[2]->integer;
    return refusal;
}
