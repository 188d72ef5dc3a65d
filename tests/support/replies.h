/*
 * Hand-built hiredis replies for the unit tests of the engine's reply decoders
 * (tests/engine/test_reservation.c, test_idem.c): the shapes a Redis function answers,
 * without a Redis. tests/engine/test_inventory.c reads RESP text instead, where the wire
 * form is the point. Every builder allocates; tk_reply_free frees a tree.
 */
#ifndef TK_TESTS_SUPPORT_REPLIES_H
#define TK_TESTS_SUPPORT_REPLIES_H

#include <hiredis/hiredis.h>
#include <stddef.h>

/* a string-like reply of type (REDIS_REPLY_STRING, _STATUS or _ERROR) holding s */
redisReply *tk_reply_str_of_type(int type, const char *s);
redisReply *tk_reply_str(const char *s);
redisReply *tk_reply_num(long long v);
/* tk_reply_arr(n, element, ...): an array that takes its n elements */
redisReply *tk_reply_arr(size_t n, ...);
void tk_reply_free(redisReply *r);

#endif
