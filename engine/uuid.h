/*
 * UUIDs and randomness. Ids are version-4 UUIDs in canonical lower-case text, drawn
 * from the kernel CSPRNG (getrandom). A reservation id carries the shard of its event
 * in its first four hex digits (16 bits) and keeps 106 random bits, so the server can
 * name the event's Redis hash tag from the reservation id alone.
 */
#ifndef TK_UUID_H
#define TK_UUID_H

#include <stddef.h>

#define TK_UUID_LEN 36 /* "xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx" */
#define TK_SHARD_LEN 4 /* the first four hex digits of an event id */

/* fills buf with n bytes from the kernel CSPRNG; aborts if the kernel cannot supply them */
void tk_random_bytes(void *buf, size_t n);
/* writes a random v4 UUID and a NUL into out[TK_UUID_LEN + 1] */
void tk_uuid_v4(char *out);
/* as tk_uuid_v4, with the first four hex digits replaced by shard */
void tk_uuid_v4_in_shard(char *out, const char *shard);
/* accepts a UUID in any case; writes it lower-cased (with NUL) into out; -1 when malformed */
int tk_uuid_normalize(const char *in, size_t len, char *out);
/* writes n random bytes as 2n lower-case hex characters and a NUL into out */
void tk_random_hex(char *out, size_t n);

#endif
