/*
 * Straight access to the test Redis for integration tests that look under ticketd (an
 * inventory hash, an outbox stream, a record removed by hand): one command at a time, on
 * a single Redis or, when the tests run against Redis Cluster (TICKETD_TEST_REDIS_CLUSTER),
 * on whichever node owns the command's key — found by following MOVED and ASK from any
 * node, a test-only loop that needs nothing of the engine's router.
 */
#ifndef TK_TESTS_SUPPORT_REDIS_DIRECT_H
#define TK_TESTS_SUPPORT_REDIS_DIRECT_H

#include <hiredis/hiredis.h>

/* Runs the command (formatted as redisCommand does) and returns its reply, to be freed with
 * freeReplyObject, or NULL when no node answered. On a cluster the command must address a
 * single slot; a redirect is followed (at most a few hops) and only the final reply is
 * returned. Connections are kept for the next call; a forked child opens its own. */
redisReply *tk_test_redis_command(const char *fmt, ...);
/* closes the kept connections (say, after the test restarted Redis) */
void tk_test_redis_disconnect(void);

#endif
