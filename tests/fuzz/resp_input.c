/*
 * RESP wire text into replies for the decoder fuzz targets (resp_input.h).
 */
#include "tests/fuzz/resp_input.h"

static int announces_huge_array(const uint8_t *data, size_t size)
{
    for (size_t i = 0; i < size; ++i) {
        if (data[i] != '*')
            continue;
        size_t digits = 0;
        while (i + 1 + digits < size && data[i + 1 + digits] >= '0' && data[i + 1 + digits] <= '9')
            ++digits;
        if (digits > 6)
            return 1;
    }
    return 0;
}

void tk_fuzz_each_reply(const uint8_t *data, size_t size, void (*check)(const redisReply *reply))
{
    if (announces_huge_array(data, size))
        return;
    redisReader *reader = redisReaderCreate();
    if (redisReaderFeed(reader, (const char *)data, size) == REDIS_OK) {
        void *reply;
        while (redisReaderGetReply(reader, &reply) == REDIS_OK && reply != NULL) {
            check(reply);
            freeReplyObject(reply);
        }
    }
    redisReaderFree(reader);
}
