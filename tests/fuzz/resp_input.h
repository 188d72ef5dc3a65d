/*
 * For the fuzz targets of Redis reply decoders: turns a fuzz input (RESP wire text) into
 * replies with hiredis' own redisReader, as the connection does, and hands each to check.
 * An input that announces an array of a million elements or more is skipped: this hiredis
 * allocates the element vector up front, so such inputs would fuzz hiredis' allocator,
 * not our decoders.
 */
#ifndef TK_FUZZ_RESP_INPUT_H
#define TK_FUZZ_RESP_INPUT_H

#include <hiredis/hiredis.h>
#include <stddef.h>
#include <stdint.h>

void tk_fuzz_each_reply(const uint8_t *data, size_t size, void (*check)(const redisReply *reply));

#endif
