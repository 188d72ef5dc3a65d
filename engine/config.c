/*
 * Parsing and checking of the TICKETD_* environment. A table names every setting and
 * its default; parsing is strict (whole numbers within a range, known words only),
 * because a typo in a sale-day configuration should stop the server, not be guessed at.
 */
#include "engine/config.h"
#include "engine/uuid.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const struct {
    const char *name;
    const char *default_value; /* NULL: no default (unset) */
} settings[TK_SET__COUNT] = {
    [TK_SET_ENV] = {"TICKETD_ENV", "production"},
    [TK_SET_LISTEN] = {"TICKETD_LISTEN", "127.0.0.1:8000"},
    [TK_SET_REDIS_URL] = {"TICKETD_REDIS_URL", "redis://127.0.0.1:6379/0"},
    [TK_SET_PG_URL] = {"TICKETD_PG_URL", "postgresql:///ticketd"},
    [TK_SET_ADMIN_TOKEN] = {"TICKETD_ADMIN_TOKEN", NULL},
    [TK_SET_SECRET] = {"TICKETD_SECRET", NULL},
    [TK_SET_HOLD_SECONDS] = {"TICKETD_HOLD_SECONDS", "900"},
    [TK_SET_MAX_PER_TYPE] = {"TICKETD_MAX_PER_TYPE", "5"},
    [TK_SET_THREADS] = {"TICKETD_THREADS", NULL /* number of cores */},
    [TK_SET_PAYMENT_LATENCY_MS] = {"TICKETD_PAYMENT_LATENCY_MS", "200"},
    [TK_SET_LOG_LEVEL] = {"TICKETD_LOG_LEVEL", "info"},
    [TK_SET_MAX_INFLIGHT] = {"TICKETD_MAX_INFLIGHT", "4096"},
    [TK_SET_CLIENT_MAX_HOLDS] = {"TICKETD_CLIENT_MAX_HOLDS", "20"},
    [TK_SET_CLIENT_HOLD_RATE] = {"TICKETD_CLIENT_HOLD_RATE", "10"},
    [TK_SET_TRUSTED_PROXIES] = {"TICKETD_TRUSTED_PROXIES", NULL},
    [TK_SET_OUTBOX_PAUSE] = {"TICKETD_OUTBOX_PAUSE", "200000"},
    [TK_SET_HTTP2] = {"TICKETD_HTTP2", "0"},
    [TK_SET_METRICS_TOKEN] = {"TICKETD_METRICS_TOKEN", NULL},
    [TK_SET_MAX_CONNECTIONS] = {"TICKETD_MAX_CONNECTIONS", NULL /* from the open-file limit */},
    [TK_SET_REDIS_CLUSTER] = {"TICKETD_REDIS_CLUSTER", NULL /* one Redis at TICKETD_REDIS_URL */},
};

const char *tk_setting_name(tk_setting_t setting)
{
    return settings[setting].name;
}

static int parse_int_in_range(const char *s, long min, long max, int *out)
{
    if (*s == '\0' || !(isdigit((unsigned char)*s) || *s == '-'))
        return -1;
    errno = 0;
    char *end;
    long v = strtol(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max)
        return -1;
    *out = (int)v;
    return 0;
}

int tk_config_parse_listen(const char *s, char *host, size_t hostsize, uint16_t *port)
{
    const char *colon = strrchr(s, ':');
    if (colon == NULL)
        return -1;
    const char *hs = s, *he = colon;
    if (*hs == '[') {
        if (he - hs < 2 || he[-1] != ']')
            return -1;
        ++hs;
        --he;
    }
    if ((size_t)(he - hs) >= hostsize)
        return -1;
    int p;
    if (parse_int_in_range(colon + 1, 1, 65535, &p) != 0)
        return -1;
    if (he == hs)
        snprintf(host, hostsize, "0.0.0.0");
    else
        snprintf(host, hostsize, "%.*s", (int)(he - hs), hs);
    *port = (uint16_t)p;
    return 0;
}

int tk_config_parse_redis_url(const char *url, tk_redis_url_t *out)
{
    memset(out, 0, sizeof(*out));
    out->port = 6379;
    if (strncmp(url, "redis://", 8) != 0)
        return -1;
    const char *p = url + 8, *at = strchr(p, '@');
    if (at != NULL) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        const char *pw = colon != NULL ? colon + 1 : p;
        if ((size_t)(at - pw) >= sizeof(out->password))
            return -1;
        snprintf(out->password, sizeof(out->password), "%.*s", (int)(at - pw), pw);
        p = at + 1;
    }
    const char *slash = strchr(p, '/');
    const char *hostend = slash != NULL ? slash : p + strlen(p);
    const char *colon = memchr(p, ':', (size_t)(hostend - p));
    const char *namend = colon != NULL ? colon : hostend;
    if (namend == p || (size_t)(namend - p) >= sizeof(out->host))
        return -1;
    snprintf(out->host, sizeof(out->host), "%.*s", (int)(namend - p), p);
    if (colon != NULL) {
        char portbuf[8];
        int port;
        if ((size_t)(hostend - colon - 1) >= sizeof(portbuf))
            return -1;
        snprintf(portbuf, sizeof(portbuf), "%.*s", (int)(hostend - colon - 1), colon + 1);
        if (parse_int_in_range(portbuf, 1, 65535, &port) != 0)
            return -1;
        out->port = (uint16_t)port;
    }
    if (slash != NULL && slash[1] != '\0' && parse_int_in_range(slash + 1, 0, 15, &out->db) != 0)
        return -1;
    return 0;
}

/* Fetches one setting from the environment or its default and records the source. */
static const char *lookup(tk_config_t *cfg, tk_setting_t setting, tk_getenv_fn getenv_fn, void *ctx)
{
    const char *v = getenv_fn(settings[setting].name, ctx);
    if (v != NULL && *v != '\0') {
        cfg->source[setting] = TK_SOURCE_ENVIRONMENT;
        return v;
    }
    cfg->source[setting] = TK_SOURCE_DEFAULT;
    return settings[setting].default_value;
}

/* TICKETD_TRUSTED_PROXIES: "10.0.0.1, 10.1.0.0/16, ::1" */
static int parse_proxies(tk_config_t *cfg, const char *list)
{
    for (const char *p = list; *p != '\0';) {
        size_t len = strcspn(p, ",");
        if (cfg->ntrusted_proxies == TK_TRUSTED_PROXIES_MAX ||
            tk_netaddr_parse_range(p, len, &cfg->trusted_proxies[cfg->ntrusted_proxies++]) != 0)
            return -1;
        p += len;
        if (*p == ',')
            ++p;
    }
    return cfg->ntrusted_proxies != 0 ? 0 : -1;
}

/* TICKETD_REDIS_CLUSTER: "127.0.0.1:7001,127.0.0.1:7002" (seed nodes; the rest is discovered) */
int tk_config_parse_cluster_seeds(tk_config_t *cfg, const char *list)
{
    for (const char *p = list; *p != '\0';) {
        size_t len = strcspn(p, ",");
        while (len != 0 && isspace((unsigned char)*p))
            ++p, --len;
        char host[256];
        tk_redis_url_t *seed = &cfg->cluster_seeds[cfg->ncluster_seeds];
        if (cfg->ncluster_seeds == TK_REDIS_SEEDS_MAX || len >= sizeof(host))
            return -1;
        snprintf(host, sizeof(host), "%.*s", (int)len, p);
        host[strcspn(host, " \t")] = '\0';
        /* a seed is a URL without scheme, password or database: reuse that parser */
        char url[300];
        snprintf(url, sizeof(url), "redis://%s", host);
        if (strchr(host, ':') == NULL || strchr(host, '/') != NULL || strchr(host, '@') != NULL ||
            tk_config_parse_redis_url(url, seed) != 0)
            return -1;
        ++cfg->ncluster_seeds;
        p += strcspn(p, ",");
        if (*p == ',' && *++p == '\0')
            return -1; /* a trailing comma names no seed */
    }
    return cfg->ncluster_seeds != 0 ? 0 : -1;
}

#define FAIL(...)                                                                                                                  \
    do {                                                                                                                           \
        snprintf(err, errsize, __VA_ARGS__);                                                                                       \
        return -1;                                                                                                                 \
    } while (0)

int tk_config_load(tk_config_t *cfg, tk_getenv_fn getenv_fn, void *ctx, char *err, size_t errsize)
{
    memset(cfg, 0, sizeof(*cfg));
    const char *v;

    v = lookup(cfg, TK_SET_ENV, getenv_fn, ctx);
    if (strcmp(v, "production") == 0)
        cfg->env = TK_ENV_PRODUCTION;
    else if (strcmp(v, "development") == 0)
        cfg->env = TK_ENV_DEVELOPMENT;
    else
        FAIL("TICKETD_ENV: '%s' is neither 'production' nor 'development'", v);

    v = lookup(cfg, TK_SET_LISTEN, getenv_fn, ctx);
    if (tk_config_parse_listen(v, cfg->listen_host, sizeof(cfg->listen_host), &cfg->listen_port) != 0)
        FAIL("TICKETD_LISTEN: '%s' is not HOST:PORT (e.g. 127.0.0.1:8000)", v);

    v = lookup(cfg, TK_SET_REDIS_URL, getenv_fn, ctx);
    if (strlen(v) >= sizeof(cfg->redis_url) || tk_config_parse_redis_url(v, &cfg->redis) != 0)
        FAIL("TICKETD_REDIS_URL: not a redis://[:password@]host[:port][/db] URL");
    snprintf(cfg->redis_url, sizeof(cfg->redis_url), "%s", v);

    if ((v = lookup(cfg, TK_SET_REDIS_CLUSTER, getenv_fn, ctx)) != NULL) {
        if (strlen(v) >= sizeof(cfg->redis_cluster) || tk_config_parse_cluster_seeds(cfg, v) != 0)
            FAIL("TICKETD_REDIS_CLUSTER: not a list of seed nodes HOST:PORT[,HOST:PORT...] (at most %d)", TK_REDIS_SEEDS_MAX);
        snprintf(cfg->redis_cluster, sizeof(cfg->redis_cluster), "%s", v);
    }

    v = lookup(cfg, TK_SET_PG_URL, getenv_fn, ctx);
    if (strlen(v) >= sizeof(cfg->pg_url))
        FAIL("TICKETD_PG_URL: longer than %zu characters", sizeof(cfg->pg_url) - 1);
    snprintf(cfg->pg_url, sizeof(cfg->pg_url), "%s", v);

    if ((v = lookup(cfg, TK_SET_ADMIN_TOKEN, getenv_fn, ctx)) != NULL) {
        if (strlen(v) >= sizeof(cfg->admin_token))
            FAIL("TICKETD_ADMIN_TOKEN: longer than %zu characters", sizeof(cfg->admin_token) - 1);
        cfg->admin_token_len = strlen(v);
        memcpy(cfg->admin_token, v, cfg->admin_token_len);
    }
    if ((v = lookup(cfg, TK_SET_SECRET, getenv_fn, ctx)) != NULL) {
        if (strlen(v) >= sizeof(cfg->secret))
            FAIL("TICKETD_SECRET: longer than %zu bytes", sizeof(cfg->secret) - 1);
        cfg->secret_len = strlen(v);
        memcpy(cfg->secret, v, cfg->secret_len);
    }

    v = lookup(cfg, TK_SET_HOLD_SECONDS, getenv_fn, ctx);
    if (parse_int_in_range(v, 1, 86400, &cfg->hold_seconds) != 0)
        FAIL("TICKETD_HOLD_SECONDS: '%s' is not a whole number of seconds from 1 to 86400", v);
    v = lookup(cfg, TK_SET_MAX_PER_TYPE, getenv_fn, ctx);
    if (parse_int_in_range(v, 1, 1000, &cfg->max_per_type) != 0)
        FAIL("TICKETD_MAX_PER_TYPE: '%s' is not a whole number from 1 to 1000", v);
    v = lookup(cfg, TK_SET_PAYMENT_LATENCY_MS, getenv_fn, ctx);
    if (parse_int_in_range(v, 0, 60000, &cfg->payment_latency_ms) != 0)
        FAIL("TICKETD_PAYMENT_LATENCY_MS: '%s' is not a whole number of milliseconds from 0 to 60000", v);
    if ((v = lookup(cfg, TK_SET_THREADS, getenv_fn, ctx)) != NULL) {
        if (parse_int_in_range(v, 1, 256, &cfg->threads) != 0)
            FAIL("TICKETD_THREADS: '%s' is not a whole number from 1 to 256", v);
    } else {
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        cfg->threads = cores < 1 ? 1 : cores > 256 ? 256 : (int)cores;
    }
    v = lookup(cfg, TK_SET_LOG_LEVEL, getenv_fn, ctx);
    if (tk_log_parse_level(v, &cfg->log_level) != 0)
        FAIL("TICKETD_LOG_LEVEL: '%s' is not one of debug, info, warn, error", v);
    v = lookup(cfg, TK_SET_MAX_INFLIGHT, getenv_fn, ctx);
    if (parse_int_in_range(v, 1, 1000000, &cfg->max_inflight) != 0)
        FAIL("TICKETD_MAX_INFLIGHT: '%s' is not a whole number from 1 to 1000000", v);
    v = lookup(cfg, TK_SET_CLIENT_MAX_HOLDS, getenv_fn, ctx);
    if (parse_int_in_range(v, 0, 1000000, &cfg->client_max_holds) != 0)
        FAIL("TICKETD_CLIENT_MAX_HOLDS: '%s' is not a whole number from 0 (no limit) to 1000000", v);
    v = lookup(cfg, TK_SET_CLIENT_HOLD_RATE, getenv_fn, ctx);
    if (parse_int_in_range(v, 0, 100000, &cfg->client_hold_rate) != 0)
        FAIL("TICKETD_CLIENT_HOLD_RATE: '%s' is not a whole number of requests per second from 0 (no limit) to 100000", v);
    if ((v = lookup(cfg, TK_SET_TRUSTED_PROXIES, getenv_fn, ctx)) != NULL && parse_proxies(cfg, v) != 0)
        FAIL("TICKETD_TRUSTED_PROXIES: '%s' is not a comma-separated list of at most %d addresses or CIDR ranges", v,
             TK_TRUSTED_PROXIES_MAX);
    v = lookup(cfg, TK_SET_OUTBOX_PAUSE, getenv_fn, ctx);
    if (parse_int_in_range(v, 0, 100000000, &cfg->outbox_pause) != 0)
        FAIL("TICKETD_OUTBOX_PAUSE: '%s' is not a whole number of outbox entries from 0 (never pause) to 100000000", v);
    v = lookup(cfg, TK_SET_HTTP2, getenv_fn, ctx);
    if (parse_int_in_range(v, 0, 1, &cfg->http2) != 0)
        FAIL("TICKETD_HTTP2: '%s' is neither 0 (HTTP/1.1 only) nor 1 (also HTTP/2 over cleartext)", v);
    if ((v = lookup(cfg, TK_SET_METRICS_TOKEN, getenv_fn, ctx)) != NULL) {
        if (strlen(v) >= sizeof(cfg->metrics_token))
            FAIL("TICKETD_METRICS_TOKEN: longer than %zu characters", sizeof(cfg->metrics_token) - 1);
        cfg->metrics_token_len = strlen(v);
        memcpy(cfg->metrics_token, v, cfg->metrics_token_len);
    }
    if ((v = lookup(cfg, TK_SET_MAX_CONNECTIONS, getenv_fn, ctx)) != NULL &&
        parse_int_in_range(v, 1, 10000000, &cfg->max_connections) != 0)
        FAIL("TICKETD_MAX_CONNECTIONS: '%s' is not a whole number from 1 to 10000000", v);
    return 0;
}

#undef FAIL

size_t tk_config_production_problems(const tk_config_t *cfg, int demo_flag, char problems[][256], size_t max)
{
    size_t n = 0;
    if (n < max && cfg->secret_len == 0)
        snprintf(problems[n++], 256,
                 "TICKETD_SECRET is not set: production needs at least %d random bytes shared by every ticketd process "
                 "(e.g. `openssl rand -hex 32`)",
                 TK_SECRET_MIN_LEN);
    else if (n < max && cfg->secret_len < TK_SECRET_MIN_LEN)
        snprintf(problems[n++], 256, "TICKETD_SECRET is %zu bytes: production needs at least %d (e.g. `openssl rand -hex 32`)",
                 cfg->secret_len, TK_SECRET_MIN_LEN);
    if (n < max && cfg->admin_token_len != 0 && cfg->admin_token_len < TK_ADMIN_TOKEN_MIN_LEN)
        snprintf(problems[n++], 256,
                 "TICKETD_ADMIN_TOKEN is %zu characters: production needs at least %d, or leave it unset to refuse all admin "
                 "requests",
                 cfg->admin_token_len, TK_ADMIN_TOKEN_MIN_LEN);
    if (n < max && cfg->metrics_token_len != 0 && cfg->metrics_token_len < TK_METRICS_TOKEN_MIN_LEN)
        snprintf(problems[n++], 256,
                 "TICKETD_METRICS_TOKEN is %zu characters: production needs at least %d, or leave it unset to refuse every "
                 "/metrics request",
                 cfg->metrics_token_len, TK_METRICS_TOKEN_MIN_LEN);
    if (n < max && demo_flag)
        snprintf(problems[n++], 256, "--demo is refused in production: demo data is for TICKETD_ENV=development only");
    return n;
}

void tk_config_fill_development(tk_config_t *cfg)
{
    if (cfg->secret_len == 0) {
        tk_random_hex(cfg->secret, 32);
        cfg->secret_len = 64;
        cfg->source[TK_SET_SECRET] = TK_SOURCE_GENERATED;
    }
    if (cfg->admin_token_len == 0) {
        tk_random_hex(cfg->admin_token, 24);
        cfg->admin_token_len = 48;
        cfg->source[TK_SET_ADMIN_TOKEN] = TK_SOURCE_GENERATED;
    }
}

void tk_config_print(const tk_config_t *cfg, FILE *out)
{
    static const char *const source_names[] = {"default", "environment", "generated"};
    char value[1100];
    for (int i = 0; i < TK_SET__COUNT; ++i) {
        switch ((tk_setting_t)i) {
        case TK_SET_ENV:
            snprintf(value, sizeof(value), "%s", cfg->env == TK_ENV_PRODUCTION ? "production" : "development");
            break;
        case TK_SET_LISTEN:
            snprintf(value, sizeof(value), "%s:%u", cfg->listen_host, cfg->listen_port);
            break;
        case TK_SET_REDIS_URL:
            tk_log_redact_url(cfg->redis_url, value, sizeof(value));
            break;
        case TK_SET_PG_URL:
            tk_log_redact_url(cfg->pg_url, value, sizeof(value));
            break;
        case TK_SET_ADMIN_TOKEN:
            if (cfg->admin_token_len == 0)
                snprintf(value, sizeof(value), "(unset: admin routes refuse everyone)");
            else
                snprintf(value, sizeof(value), "*** (%zu characters)", cfg->admin_token_len);
            break;
        case TK_SET_SECRET:
            if (cfg->secret_len == 0)
                snprintf(value, sizeof(value), "(unset)");
            else
                snprintf(value, sizeof(value), "*** (%zu bytes)", cfg->secret_len);
            break;
        case TK_SET_HOLD_SECONDS:
            snprintf(value, sizeof(value), "%d", cfg->hold_seconds);
            break;
        case TK_SET_MAX_PER_TYPE:
            snprintf(value, sizeof(value), "%d", cfg->max_per_type);
            break;
        case TK_SET_THREADS:
            snprintf(value, sizeof(value), "%d", cfg->threads);
            break;
        case TK_SET_PAYMENT_LATENCY_MS:
            snprintf(value, sizeof(value), "%d", cfg->payment_latency_ms);
            break;
        case TK_SET_LOG_LEVEL:
            snprintf(value, sizeof(value), "%s", tk_log_level_name(cfg->log_level));
            break;
        case TK_SET_MAX_INFLIGHT:
            snprintf(value, sizeof(value), "%d", cfg->max_inflight);
            break;
        case TK_SET_CLIENT_MAX_HOLDS:
            snprintf(value, sizeof(value), "%d%s", cfg->client_max_holds, cfg->client_max_holds == 0 ? " (no limit)" : "");
            break;
        case TK_SET_CLIENT_HOLD_RATE:
            snprintf(value, sizeof(value), "%d%s", cfg->client_hold_rate,
                     cfg->client_hold_rate == 0 ? " (no limit)" : " per second");
            break;
        case TK_SET_TRUSTED_PROXIES: {
            size_t n = (size_t)snprintf(value, sizeof(value), "%s", cfg->ntrusted_proxies == 0 ? "(none)" : "");
            for (size_t j = 0; j < cfg->ntrusted_proxies && n + 64 < sizeof(value); ++j) {
                if (j != 0)
                    value[n++] = ',';
                n += tk_netaddr_format(&cfg->trusted_proxies[j], value + n, sizeof(value) - n);
            }
            break;
        }
        case TK_SET_OUTBOX_PAUSE:
            snprintf(value, sizeof(value), "%d%s", cfg->outbox_pause,
                     cfg->outbox_pause == 0 ? " (never pause)" : " entries per shard");
            break;
        case TK_SET_HTTP2:
            snprintf(value, sizeof(value), "%s", cfg->http2 ? "1 (HTTP/2 over cleartext accepted)" : "0 (HTTP/1.1 only)");
            break;
        case TK_SET_METRICS_TOKEN:
            if (cfg->metrics_token_len != 0)
                snprintf(value, sizeof(value), "*** (%zu characters)", cfg->metrics_token_len);
            else if (cfg->env == TK_ENV_PRODUCTION)
                snprintf(value, sizeof(value), "(unset: /metrics refuses everyone)");
            else
                snprintf(value, sizeof(value), "(unset: /metrics open, development only)");
            break;
        case TK_SET_MAX_CONNECTIONS:
            if (cfg->max_connections == 0)
                snprintf(value, sizeof(value), "(from the open-file limit)");
            else
                snprintf(value, sizeof(value), "%d", cfg->max_connections);
            break;
        case TK_SET_REDIS_CLUSTER:
            if (cfg->ncluster_seeds == 0)
                snprintf(value, sizeof(value), "(unset: one Redis at TICKETD_REDIS_URL)");
            else
                snprintf(value, sizeof(value), "%s (TICKETD_REDIS_URL ignored)", cfg->redis_cluster);
            break;
        case TK_SET__COUNT:
            break;
        }
        fprintf(out, "%-28s %s  (%s)\n", settings[i].name, value, source_names[cfg->source[i]]);
    }
}
