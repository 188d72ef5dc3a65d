/*
 * Keeping every process's catalog current. Redis holds the catalog version
 * (TK_CATALOG_VERSION_KEY of engine/inventory.h); whoever changes the catalog in PostgreSQL increments it. A
 * refresher thread in each process polls the version every 200 ms and reloads the
 * snapshot from PostgreSQL when it moved, so an event created through one process is
 * browsable through all of them within a fraction of a second. The same thread checks
 * PostgreSQL's health for /healthz, so no request ever waits on a database ping. On Redis
 * Cluster it also re-reads the topology every ~3 s and gives every master that is new
 * (failover, resharding) or lacks the function library the library and the inventory of
 * the catalog's events it owns.
 */
#ifndef TK_REFRESHER_H
#define TK_REFRESHER_H

#include "engine/config.h"
#include "engine/redis_nodes.h"
#include <libpq-fe.h>

/* Loads the catalog from PostgreSQL at the current Redis version, makes sure Redis knows
 * every event's inventory, and publishes the snapshot. */
int tk_catalog_refresh(PGconn *pg, tk_redis_nodes_t *redis, char *err, size_t errsize);
/* Increments the version after a catalog change, then refreshes this process at once. */
int tk_catalog_changed(PGconn *pg, tk_redis_nodes_t *redis, char *err, size_t errsize);
/* A catalog change PostgreSQL committed but Redis refused to announce (tk_catalog_changed
 * failed): the refresher thread announces it as soon as Redis takes the increment, so the
 * change reaches every process without a second one. */
void tk_catalog_change_owed(void);

int tk_refresher_start(const tk_config_t *config);
void tk_refresher_stop(void);
/* whether the last PostgreSQL check (at most ~1 s old) succeeded */
int tk_refresher_pg_healthy(void);

#endif
