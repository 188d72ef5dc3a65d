/*
 * The engine's threads beside the event loops, started and stopped as one: the worker
 * pool (blocking PostgreSQL work for the loops), the catalog refresher, the persistence
 * writer and the waiting rooms' refresher. http/main.c starts them once the stores are
 * ready and stops them after the server has drained, so that the writer can still
 * persist what the last requests changed.
 */
#ifndef TK_BACKGROUND_H
#define TK_BACKGROUND_H

#include "engine/config.h"

/* 0 when every thread runs; -1 otherwise (the process should exit) */
int tk_background_start(const tk_config_t *config);
/* 1 when no worker job is queued or running (the server's drain waits for it) */
int tk_background_idle(void);
/* Stops the threads; the writer gets up to writer_drain_ms to persist the outbox first. */
void tk_background_stop(int writer_drain_ms);

#endif
