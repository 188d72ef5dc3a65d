/*
 * Configuration: the TICKETD_* environment of API.md, parsed once at start-up into an
 * immutable tk_config_t. Each setting remembers where its value came from (default,
 * environment, generated) for `ticketd --check-config`. Production, the default, refuses
 * unsafe settings; development fills in a random secret and admin token so the README's
 * first command works out of the box. Values that do not parse are refused in both modes.
 */
#ifndef TK_CONFIG_H
#define TK_CONFIG_H

#include "engine/log.h"
#include "engine/netaddr.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define TK_SECRET_MIN_LEN 32
#define TK_ADMIN_TOKEN_MIN_LEN 32
#define TK_METRICS_TOKEN_MIN_LEN 32
#define TK_BODY_MAX (64 * 1024)
#define TK_TRUSTED_PROXIES_MAX 32

typedef enum en_tk_env_t { TK_ENV_PRODUCTION = 0, TK_ENV_DEVELOPMENT } tk_env_t;
typedef enum en_tk_source_t { TK_SOURCE_DEFAULT = 0, TK_SOURCE_ENVIRONMENT, TK_SOURCE_GENERATED } tk_source_t;

typedef enum en_tk_setting_t {
    TK_SET_ENV = 0,
    TK_SET_LISTEN,
    TK_SET_REDIS_URL,
    TK_SET_PG_URL,
    TK_SET_ADMIN_TOKEN,
    TK_SET_SECRET,
    TK_SET_HOLD_SECONDS,
    TK_SET_MAX_PER_TYPE,
    TK_SET_THREADS,
    TK_SET_PAYMENT_LATENCY_MS,
    TK_SET_LOG_LEVEL,
    TK_SET_MAX_INFLIGHT,
    TK_SET_CLIENT_MAX_HOLDS,
    TK_SET_CLIENT_HOLD_RATE,
    TK_SET_TRUSTED_PROXIES,
    TK_SET_OUTBOX_PAUSE,
    TK_SET_HTTP2,
    TK_SET_METRICS_TOKEN,
    TK_SET_MAX_CONNECTIONS,
    TK_SET_REDIS_CLUSTER,
    TK_SET__COUNT
} tk_setting_t;

#define TK_REDIS_SEEDS_MAX 16

typedef struct st_tk_redis_url_t {
    char host[256];
    uint16_t port;
    int db;
    char password[256]; /* empty: no AUTH */
} tk_redis_url_t;

typedef struct st_tk_config_t {
    tk_env_t env;
    char listen_host[256];
    uint16_t listen_port;
    char redis_url[1024];
    tk_redis_url_t redis; /* the single Redis; ignored when cluster_seeds are set */
    char redis_cluster[1024];
    tk_redis_url_t cluster_seeds[TK_REDIS_SEEDS_MAX]; /* TICKETD_REDIS_CLUSTER, host:port each */
    size_t ncluster_seeds;                            /* 0: one Redis at TICKETD_REDIS_URL */
    char pg_url[1024];
    char admin_token[512]; /* empty: admin routes refuse everyone */
    size_t admin_token_len;
    char secret[512];
    size_t secret_len;
    int hold_seconds;
    int max_per_type;
    int threads;
    int payment_latency_ms;
    tk_log_level_t log_level;
    int max_inflight; /* Redis commands in flight per loop before writes get 503 */
    /* fair use (API.md "Fair use"; 0 = off) and backpressure */
    int client_max_holds;                                 /* live holds per client, per shard */
    int client_hold_rate;                                 /* hold requests per second per client (bursts of twice that) */
    tk_netaddr_t trusted_proxies[TK_TRUSTED_PROXIES_MAX]; /* whose X-Forwarded-For is believed */
    size_t ntrusted_proxies;
    int outbox_pause;        /* unpersisted outbox entries of a shard that pause its new holds */
    int http2;               /* 1: accept HTTP/2 over cleartext (h2c upgrade, prior knowledge) */
    char metrics_token[512]; /* empty: /metrics open in development, refused in production */
    size_t metrics_token_len;
    int max_connections; /* 0: what the open-file limit leaves room for */
    tk_source_t source[TK_SET__COUNT];
} tk_config_t;

/* the environment lookup, replaceable in tests; returns NULL for unset */
typedef const char *(*tk_getenv_fn)(const char *name, void *ctx);

const char *tk_setting_name(tk_setting_t setting);
/* Parses the environment into cfg. On a value that does not parse, writes one line naming
 * the variable and what is accepted into err and returns -1. */
int tk_config_load(tk_config_t *cfg, tk_getenv_fn getenv_fn, void *ctx, char *err, size_t errsize);
/* Lists what production refuses (secret, admin and metrics tokens, --demo), one line each into
 * problems[i]; returns how many. Checks the values as loaded, before development fills in. */
size_t tk_config_production_problems(const tk_config_t *cfg, int demo_flag, char problems[][256], size_t max);
/* Development only: makes a random secret and admin token where none was given. */
void tk_config_fill_development(tk_config_t *cfg);
/* Prints one setting a line with its source; secrets as *** with their length. */
void tk_config_print(const tk_config_t *cfg, FILE *out);
int tk_config_parse_redis_url(const char *url, tk_redis_url_t *out);
/* "host:port,host:port,…" (TICKETD_REDIS_CLUSTER) appended to cfg->cluster_seeds; -1 when malformed */
int tk_config_parse_cluster_seeds(tk_config_t *cfg, const char *list);
int tk_config_parse_listen(const char *s, char *host, size_t hostsize, uint16_t *port);

#endif
