/*
 * The persistence writers: two threads in every ticketd process that drain the Redis
 * outbox streams (one per shard, consumer group TK_OUTBOX_GROUP) into PostgreSQL in
 * batches and acknowledge entries only after their batch committed. Several writers, in
 * one process or many, share the work through the consumer group; entries a crashed
 * writer left pending are claimed (XAUTOCLAIM) once idle. While PostgreSQL is down the
 * backlog waits in Redis and sales go on; the writer never touches an HTTP thread. A
 * record PostgreSQL refuses for its data goes to the shard's dead-letter stream. The
 * writer pushes its counters into engine/metrics (tk_metrics_set_writer); metrics
 * never calls the writer. On Redis Cluster it reads every master (engine/writer_outbox.h)
 * and commits nothing a replica has not confirmed.
 */
#ifndef TK_WRITER_H
#define TK_WRITER_H

#include "engine/config.h"

#define TK_WRITER_FORGET_GRACE_MS 60000

int tk_writer_start(const tk_config_t *config);
/* drains what it can for up to timeout_ms, then stops the threads */
void tk_writer_stop(int timeout_ms);

#endif
